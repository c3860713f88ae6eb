/* backend_health: the health thread (active checks, the end of passive
 * cooldowns) and the start and stop of the resolver thread. See
 * backend_group.h.
 *
 * The health thread has its own event loop. A timer ticks every TICK_MS:
 * under the registry's mutex it starts the checks that are due (one at a
 * time per server, every health.check.interval) and brings servers whose
 * passive cooldown is over back (backend_server_up). A check is
 * non-blocking throughout and bounded by health.check.timeout:
 *   tcp   the connect succeeds;
 *   http  after the connect, "GET path HTTP/1.0" with Host and
 *         Connection: close is written, and the status line read must carry
 *         a status in the expect range.
 * rise successes in a row bring a down server up, fall failures in a row
 * take an up server down; each transition is logged once with its cause.
 * A server is in when its checks have it up and it is not in a passive
 * cooldown: only changes of that are logged, so a server both detectors
 * take out gets one down line, and one up line when both let it back.
 *
 * Stopping activates |stop_ev|, whose callback breaks the loop from inside
 * it: an active event waits for the loop, whereas event_base_loopbreak
 * from another thread before the loop has started is undone by its start
 * (event_base_loop clears the flag), and the join would wait forever.
 *
 * Ownership: a check owns its socket and event and holds a reference on its
 * server; the thread keeps its checks on a list so that stopping frees
 * those in flight. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "backend_group.h"
#include "clock.h"
#include "log.h"

#define TICK_MS 50
#define STATUS_LINE_MAX 256

enum check_phase { CHECK_CONNECTING, CHECK_WRITING, CHECK_READING };

struct check {
    struct check *prev, *next;
    struct backend_server *server; /* a reference */
    struct cfg_health_check settings;
    char request[512];
    size_t request_len, written;
    char response[STATUS_LINE_MAX];
    size_t response_len;
    enum check_phase phase;
    int fd;
    struct event *ev;
    uint64_t deadline_ms;
};

static struct {
    struct event_base *base;
    struct event *tick;
    struct event *stop_ev; /* activated by backend_health_stop */
    pthread_t thread, resolver;
    bool started, resolver_started;
    struct check *checks;
} health;

static uint64_t unix_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void check_free(struct check *check)
{
    if (check->prev != NULL)
        check->prev->next = check->next;
    else
        health.checks = check->next;
    if (check->next != NULL)
        check->next->prev = check->prev;
    if (check->ev != NULL)
        event_free(check->ev);
    if (check->fd >= 0)
        close(check->fd);
    check->server->checking = false;
    backend_server_unref(check->server);
    free(check->settings.path);
    free(check);
}

static void set_reason(struct backend_server *s, const char *what)
{
    backend_registry_lock();
    snprintf(s->reason, sizeof(s->reason), "%s", what);
    backend_registry_unlock();
}

/* finish records a check's outcome (|ok|, described by |what|) and frees
 * it. */
static void finish(struct check *check, bool ok, const char *what)
{
    struct backend_server *s = check->server;
    bool up = atomic_load(&s->up);
    char cause[96];

    atomic_store(&s->last_check_unix_ms, unix_now_ms());
    if (ok) {
        s->fall_count = 0;
        if (!up && ++s->rise_count >= check->settings.rise) {
            s->rise_count = 0;
            snprintf(cause, sizeof(cause), "check passed %u times: %s", check->settings.rise,
                     what);
            /* A server in its passive cooldown is still out: its up line
             * comes when the cooldown is over. */
            if (backend_server_set(s, BACKEND_CHECKS_UP, true))
                backend_server_log_change(s, true, cause);
        } else {
            set_reason(s, what);
        }
    } else {
        s->rise_count = 0;
        if (up && ++s->fall_count >= check->settings.fall) {
            s->fall_count = 0;
            snprintf(cause, sizeof(cause), "check failed %u times: %s", check->settings.fall,
                     what);
            /* Taken out already by its connect failures: one down line. */
            if (backend_server_set(s, BACKEND_CHECKS_UP, false))
                backend_server_log_change(s, false, cause);
            else
                set_reason(s, cause);
        } else {
            set_reason(s, what);
        }
    }
    check_free(check);
}

static void on_check_event(evutil_socket_t fd, short what, void *arg);

static void arm(struct check *check, short what)
{
    uint64_t now = clock_now_ms();
    uint64_t left = check->deadline_ms > now ? check->deadline_ms - now : 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};

    event_assign(check->ev, health.base, check->fd, what, on_check_event, check);
    if (event_add(check->ev, &tv) != 0)
        finish(check, false, "cannot arm the check");
}

/* parse_status reads the status of "HTTP/1.x NNN ..." in |check|'s
 * response; -1 when it is not one. */
static int parse_status(const struct check *check)
{
    const char *r = check->response;
    if (check->response_len < 12 || strncmp(r, "HTTP/1.", 7) != 0 || r[8] != ' ' ||
        r[9] < '1' || r[9] > '5' || r[10] < '0' || r[10] > '9' || r[11] < '0' || r[11] > '9')
        return -1;
    return (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
}

static void on_check_event(evutil_socket_t fd, short what, void *arg)
{
    struct check *check = arg;
    char text[96];

    if (what & EV_TIMEOUT) {
        finish(check, false,
               check->phase == CHECK_CONNECTING ? "connect timeout" : "response timeout");
        return;
    }
    if (check->phase == CHECK_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            snprintf(text, sizeof(text), "connect: %s", strerror(err));
            finish(check, false, text);
            return;
        }
        if (check->settings.type == CFG_CHECK_TCP) {
            finish(check, true, "connect ok");
            return;
        }
        check->phase = CHECK_WRITING;
    }
    if (check->phase == CHECK_WRITING) {
        ssize_t n = send(fd, check->request + check->written,
                         check->request_len - check->written, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(text, sizeof(text), "send: %s", strerror(errno));
            finish(check, false, text);
            return;
        }
        if (n > 0)
            check->written += (size_t)n;
        if (check->written < check->request_len) {
            arm(check, EV_WRITE);
            return;
        }
        check->phase = CHECK_READING;
        arm(check, EV_READ);
        return;
    }
    /* CHECK_READING: the status line is all that counts. */
    ssize_t n = recv(fd, check->response + check->response_len,
                     sizeof(check->response) - 1 - check->response_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        arm(check, EV_READ);
        return;
    }
    if (n > 0)
        check->response_len += (size_t)n;
    check->response[check->response_len] = '\0';
    if (n > 0 && memchr(check->response, '\n', check->response_len) == NULL &&
        check->response_len < sizeof(check->response) - 1) {
        arm(check, EV_READ);
        return;
    }
    int status = parse_status(check);
    if (status < 0) {
        finish(check, false, n < 0 ? "recv error" : "no HTTP status line");
        return;
    }
    snprintf(text, sizeof(text), "http status %d", status);
    finish(check, status >= check->settings.expect_min && status <= check->settings.expect_max,
           text);
}

/* start_check starts an active check of |server|, taking its reference
 * and |s|'s path. Without the mutex. */
static void start_check(struct backend_server *server, const struct backend_check_settings *s)
{
    struct check *check = calloc(1, sizeof(*check));
    char text[96];

    if (check == NULL) {
        server->checking = false;
        backend_server_unref(server);
        free(s->check.path);
        return;
    }
    check->fd = -1;
    check->server = server;
    check->settings = s->check;
    check->next = health.checks;
    if (health.checks != NULL)
        health.checks->prev = check;
    health.checks = check;
    check->deadline_ms = clock_now_ms() + s->check.timeout_ms;
    if (check->settings.type == CFG_CHECK_HTTP) {
        int len = snprintf(check->request, sizeof(check->request),
                           "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: tlsterm-health-check\r\n"
                           "Connection: close\r\n\r\n",
                           check->settings.path != NULL ? check->settings.path : "/",
                           server->addr.ss.ss_family == AF_UNIX ? "localhost" : server->name);
        if (len < 0 || (size_t)len >= sizeof(check->request)) {
            finish(check, false, "request too long");
            return;
        }
        check->request_len = (size_t)len;
    }
    if ((check->ev = event_new(health.base, -1, 0, on_check_event, check)) == NULL) {
        finish(check, false, "out of memory");
        return;
    }
    check->fd = net_connect_start(&server->addr);
    if (check->fd < 0) {
        snprintf(text, sizeof(text), "connect: %s", strerror(errno));
        finish(check, false, text);
        return;
    }
    arm(check, EV_WRITE);
}

/* A tick collects under the mutex what is due and does it after: a check
 * that fails at once logs, which takes the mutex. */
#define TICK_BATCH 256

struct tick_state {
    uint64_t now;
    struct backend_server *up_again[TICK_BATCH]; /* references */
    size_t num_up_again;
    struct backend_server *to_check[TICK_BATCH];        /* references */
    struct backend_check_settings settings[TICK_BATCH]; /* path: owned copy */
    size_t num_to_check;
};

static void visit(struct backend_server *server, const struct backend_check_settings *settings,
                  void *arg)
{
    struct tick_state *t = arg;

    if (atomic_load(&server->passive_down) &&
        atomic_load(&server->cooldown_until_ms) <= t->now && t->num_up_again < TICK_BATCH) {
        bool was = true;
        /* Back in, unless its health checks still have it out (their up
         * line comes when they pass). Under the registry's lock, as
         * backend_server_set. */
        if (atomic_compare_exchange_strong(&server->passive_down, &was, false) &&
            atomic_load(&server->up)) {
            backend_server_ref(server);
            t->up_again[t->num_up_again++] = server;
        }
    }
    if (!settings->checks_on) {
        if (!atomic_load(&server->up)) {
            atomic_store(&server->up, true); /* checks were turned off by a reload */
            snprintf(server->reason, sizeof(server->reason), "health checks off");
        }
        return;
    }
    if (server->checking || server->next_check_ms > t->now || t->num_to_check >= TICK_BATCH)
        return;
    server->next_check_ms = t->now + settings->check.interval_ms;
    server->checking = true;
    backend_server_ref(server);
    t->to_check[t->num_to_check] = server;
    t->settings[t->num_to_check] = *settings;
    t->settings[t->num_to_check].check.path =
        settings->check.path != NULL ? strdup(settings->check.path) : NULL;
    t->num_to_check++;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    static struct tick_state tick; /* the health thread's own */
    struct tick_state *t = &tick;
    (void)fd, (void)what, (void)arg;

    t->num_up_again = t->num_to_check = 0;
    t->now = clock_now_ms();
    backend_registry_lock();
    backend_registry_for_each_server(visit, t);
    backend_registry_unlock();
    for (size_t i = 0; i < t->num_up_again; i++) {
        backend_server_log_change(t->up_again[i], true, "passive cooldown over");
        backend_server_unref(t->up_again[i]);
    }
    for (size_t i = 0; i < t->num_to_check; i++) {
        start_check(t->to_check[i], &t->settings[i]); /* takes the reference and the path */
    }
}

/* on_stop ends the health thread's loop, from the loop itself. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_base_loopbreak(health.base);
}

static void *health_run(void *arg)
{
    (void)arg;
    event_base_dispatch(health.base);
    return NULL;
}

int backend_health_start(void)
{
    struct timeval every = {0, TICK_MS * 1000};

    if ((health.base = event_base_new()) == NULL ||
        (health.tick = event_new(health.base, -1, EV_PERSIST, on_tick, NULL)) == NULL ||
        (health.stop_ev = event_new(health.base, -1, 0, on_stop, NULL)) == NULL ||
        event_add(health.tick, &every) != 0)
        goto fail;
    if (pthread_create(&health.thread, NULL, health_run, NULL) != 0)
        goto fail;
    health.started = true;
    if (pthread_create(&health.resolver, NULL, backend_resolve_run, NULL) != 0)
        goto fail;
    health.resolver_started = true;
    return 0;
fail:
    log_msg(LOG_ERROR, "start_failed", "cannot start the backend health and resolver threads");
    backend_health_stop();
    return -1;
}

void backend_health_stop(void)
{
    if (health.started) {
        /* Not event_base_loopbreak: the thread may not be in its loop yet. */
        event_active(health.stop_ev, 0, 0);
        pthread_join(health.thread, NULL);
        health.started = false;
    }
    if (health.resolver_started) {
        backend_resolve_stop();
        pthread_join(health.resolver, NULL);
        health.resolver_started = false;
    }
    while (health.checks != NULL)
        check_free(health.checks);
    if (health.tick != NULL)
        event_free(health.tick);
    if (health.stop_ev != NULL)
        event_free(health.stop_ev);
    if (health.base != NULL)
        event_base_free(health.base);
    health.tick = NULL;
    health.stop_ev = NULL;
    health.base = NULL;
}
