/* server: the event loop, signals and drain. See server.h. */
#include "server.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "log.h"

struct server *server_new(struct config *config, FILE *errors)
{
    bool failed = false;
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        config_free(config);
        return NULL;
    }
    s->config = config;
    s->base = event_base_new();
    s->listeners = calloc(config->num_listeners, sizeof(*s->listeners));
    if (s->base == NULL || s->listeners == NULL) {
        fprintf(errors, "%s: out of memory\n", config->file);
        goto fail;
    }
    /* Build every listener even after a failure, to report every error. */
    for (size_t i = 0; i < config->num_listeners; i++) {
        if (listener_init(&s->listeners[i], s, &config->listeners[i], errors) != 0)
            failed = true;
        s->num_listeners++;
    }
    if (failed)
        goto fail;
    return s;

fail:
    server_free(s);
    return NULL;
}

/* drop_privileges switches to the configured user once the sockets, which
 * may need privileged ports, are bound. */
static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        log_msg(LOG_ERROR, "privileges", "user '%s' does not exist", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        log_msg(LOG_ERROR, "privileges", "cannot switch to user '%s': %s", user,
                strerror(errno));
        return -1;
    }
    log_msg(LOG_INFO, "privileges", "running as user '%s' (uid %u)", user,
            (unsigned)pw->pw_uid);
    return 0;
}

int server_bind(struct server *s)
{
    for (size_t i = 0; i < s->num_listeners; i++)
        if (listener_bind(&s->listeners[i]) != 0)
            return -1;
    if (s->config->user != NULL && drop_privileges(s->config->user) != 0)
        return -1;
    return 0;
}

void server_conn_closed(struct server *s)
{
    if (s->draining && s->num_conns == 0)
        event_base_loopbreak(s->base);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    log_msg(LOG_WARN, "drain_deadline", "closing %zu connections still open", s->num_conns);
    conn_close_all(s, END_SHUTDOWN);
    event_base_loopbreak(s->base);
}

static void on_stop_signal(evutil_socket_t signum, short what, void *arg)
{
    struct server *s = arg;
    struct log_line line;

    if (s->draining)
        return;
    s->draining = true;
    for (size_t i = 0; i < s->num_listeners; i++)
        listener_close(&s->listeners[i]);

    log_begin(&line, LOG_INFO, "draining");
    log_str(&line, "signal", strsignal((int)signum));
    log_int(&line, "connections", (long long)s->num_conns);
    log_int(&line, "deadline_ms", s->config->drain_timeout_ms);
    log_end(&line);

    if (s->num_conns == 0) {
        event_base_loopbreak(s->base);
        return;
    }
    uint32_t ms = s->config->drain_timeout_ms;
    struct timeval deadline = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(s->drain_timer, &deadline);
}

int server_run(struct server *s)
{
    s->sigterm_ev = evsignal_new(s->base, SIGTERM, on_stop_signal, s);
    s->sigint_ev = evsignal_new(s->base, SIGINT, on_stop_signal, s);
    s->drain_timer = evtimer_new(s->base, on_drain_deadline, s);
    if (s->sigterm_ev == NULL || s->sigint_ev == NULL || s->drain_timer == NULL ||
        evsignal_add(s->sigterm_ev, NULL) != 0 || evsignal_add(s->sigint_ev, NULL) != 0) {
        log_msg(LOG_ERROR, "start_failed", "cannot set up signal handling");
        return -1;
    }

    struct log_line line;
    log_begin(&line, LOG_INFO, "started");
    log_str(&line, "version", TLSTERM_VERSION);
    log_int(&line, "pid", (long long)getpid());
    log_int(&line, "listeners", (long long)s->num_listeners);
    log_end(&line);

    if (event_base_dispatch(s->base) < 0) {
        log_msg(LOG_ERROR, "event_loop_failed", "the event loop failed");
        return -1;
    }
    log_msg(LOG_INFO, "stopped", "all connections closed");
    return 0;
}

void server_describe(const struct server *s, FILE *out)
{
    for (size_t i = 0; i < s->num_listeners; i++)
        tls_ctx_describe(s->listeners[i].tls, out);
}

void server_free(struct server *s)
{
    if (s == NULL)
        return;
    conn_close_all(s, END_SHUTDOWN);
    for (size_t i = 0; i < s->num_listeners; i++)
        listener_cleanup(&s->listeners[i]);
    free(s->listeners);
    if (s->sigterm_ev != NULL)
        event_free(s->sigterm_ev);
    if (s->sigint_ev != NULL)
        event_free(s->sigint_ev);
    if (s->drain_timer != NULL)
        event_free(s->drain_timer);
    if (s->base != NULL)
        event_base_free(s->base);
    config_free(s->config);
    free(s);
}
