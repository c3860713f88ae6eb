/* conn: the life of one client connection.
 *
 * States, in the only order they can come:
 *
 *   CONN_HANDSHAKE   TLS handshake with the client, bounded by the handshake
 *                    timeout; driven by the client socket's readiness.
 *   CONN_CONNECTING  handshake done; non-blocking connect to a backend,
 *                    bounded by the connect timeout. The client is not read.
 *   CONN_FORWARDING  bytes flow both ways until both directions have ended;
 *                    bounded by the idle timeout.
 *
 * Ownership. The event loop owns a conn from conn_accept until conn_close,
 * which frees it at once. A conn owns its client socket, its SSL, its backend
 * socket once connecting, its four events, its two forwarding buffers, and a
 * reference on the generation (configuration, TLS contexts) it was accepted
 * under, so a reload never changes it. The worker and its listener outlive
 * every conn, since a worker ends only after its conns. Only conn_close
 * ends a connection: it logs the one line that says why, undoes everything
 * and frees the conn. A function that may close the conn returns
 * CONN_CLOSED, and its caller returns at once without touching the conn.
 *
 * Forwarding. Each direction (up: client to backend, down: backend to
 * client) has one buffer of FORWARD_BUF_LEN bytes, allocated only while it
 * holds bytes, so an idle connection holds none. A direction reads only
 * while its buffer is empty: a side whose peer cannot keep up is not read,
 * which bounds memory and pushes back on the sender through TCP. EOF in one
 * direction is passed on once its buffer is flushed (shutdown(SHUT_WR)
 * toward the backend, close_notify toward the client); the other direction
 * goes on. The conn ends when both directions have ended.
 *
 * Readiness. Each socket operation that could not complete records what it
 * waits for (a TLS read can wait for writability, and the reverse). A
 * socket is watched only for what a blocked operation waits for; an event
 * clears those waits and the operations are retried. */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "backend.h"
#include "clienthello.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "report_only.h"
#include "tls_ctx.h"
#include "tls_io.h"
#include "worker.h"

/* One TLS record of plaintext: a full buffer becomes one full record. */
#define FORWARD_BUF_LEN 16384
/* Buffers moved per direction before yielding to other connections. */
#define FORWARD_ROUNDS 16
/* Dynamic record sizing. After the client side has been quiet for
 * SMALL_RECORDS_AFTER_IDLE_MS, the first SMALL_RECORDS_BUDGET bytes go out in
 * records that fit one TCP segment (a 1460-byte MSS less TLS and TCP option
 * overhead), so a browser can decrypt the first bytes of a response without
 * waiting for a whole 16 KiB record to arrive; bulk transfers then use full
 * records, which cost the fewest bytes and syscalls. */
#define SMALL_RECORD_LEN 1360
#define SMALL_RECORDS_BUDGET (10 * SMALL_RECORD_LEN)
#define SMALL_RECORDS_AFTER_IDLE_MS 1000

enum conn_state {
    CONN_HANDSHAKE,
    CONN_CONNECTING,
    CONN_FORWARDING,
};

static const char *const conn_state_names[] = {
    [CONN_HANDSHAKE] = "handshake",
    [CONN_CONNECTING] = "connecting",
    [CONN_FORWARDING] = "forwarding",
};

/* enum io_wait is what a blocked operation on a socket waits for. */
enum io_wait { WAIT_NONE, WAIT_READ, WAIT_WRITE };

enum { CONN_OK = 0, CONN_CLOSED = -1 };

/* struct direction is one way of the forwarding. */
struct direction {
    uint8_t *buf; /* NULL while empty */
    uint32_t start, end; /* pending bytes are buf[start, end) */
    bool eof;  /* the source ended: nothing more to read */
    bool shut; /* the end was passed on to the destination */
    uint8_t read_wait;  /* enum io_wait of the blocked read, if any */
    uint8_t write_wait; /* enum io_wait of the blocked write, if any */
};

struct conn {
    struct conn *prev, *next; /* the worker's list of open connections */
    struct worker *worker;
    struct listener *listener;
    struct generation *gen;          /* a reference: what it was accepted under */
    const struct cfg_listener *cfg; /* its listener's settings in |gen| */
    enum conn_state state;

    struct tls_io_socket client; /* the client socket, as the SSL sees it */
    int backend_fd; /* -1 until connecting */
    SSL *ssl;
    const struct net_addr *backend_addr;

    struct event client_ev;
    struct event backend_ev;
    struct event timer_ev;  /* the deadline of the current state */
    struct event resume_ev; /* continues forwarding after FORWARD_ROUNDS */
    short client_events;    /* what client_ev is armed for (0: not armed) */
    short backend_events;
    uint8_t handshake_wait; /* enum io_wait of the handshake */
    bool close_notify_sent;

    struct direction up;   /* client -> backend */
    struct direction down; /* backend -> client */

    uint64_t accepted_us;        /* metrics_clock_us() at accept */
    uint64_t connect_started_us; /* and when the backend connect began */
    uint64_t last_activity_ms;
    uint64_t last_client_write_ms;
    uint32_t small_records_budget; /* bytes still to send in small records */
    uint64_t bytes_in;  /* plaintext client -> backend */
    uint64_t bytes_out; /* plaintext backend -> client */

    struct sockaddr_storage client_addr;
    socklen_t client_addr_len;
};

static void on_client_event(evutil_socket_t fd, short what, void *arg);
static void on_backend_event(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_resume(evutil_socket_t fd, short what, void *arg);

/* conn_set_state moves |c| to |next|, which must follow its current state. */
static void conn_set_state(struct conn *c, enum conn_state next)
{
    assert((c->state == CONN_HANDSHAKE && next == CONN_CONNECTING) ||
           (c->state == CONN_CONNECTING && next == CONN_FORWARDING));
    c->state = next;
}

static const char *client_text(const struct conn *c, char *out, size_t out_len)
{
    return net_addr_format_sa((const struct sockaddr *)&c->client_addr,
                              c->client_addr_len, out, out_len);
}

/* log_conn_start begins a log line with the fields every connection event
 * carries. */
static void log_conn_start(struct log_line *line, const struct conn *c,
                           enum log_level level, const char *event)
{
    char client[NET_ADDR_TEXT_MAX];
    log_begin(line, level, event);
    log_str(line, "listener", c->cfg->name);
    log_str(line, "client", client_text(c, client, sizeof(client)));
    log_int(line, "worker", c->worker->id);
}

/* ---- teardown ------------------------------------------------------------ */

static void log_conn_end(const struct conn *c, enum end_reason reason,
                    const struct tls_io_failure *failure)
{
    char reason_text[48];
    char subject[256];
    struct log_line line;
    bool handshake_failed = reason_is_handshake_failure(reason);
    enum log_level level = handshake_failed ? LOG_WARN : LOG_DEBUG;

    if (!log_enabled(level))
        return;
    /* Rate limited per reason: a flood of bad handshakes must not become a
     * flood of lines. The worker reports what it dropped. */
    if (handshake_failed && !worker_log_failure(c->worker, reason))
        return;
    reason_name(reason, failure ? failure->alert : 0, reason_text, sizeof(reason_text));
    log_conn_start(&line, c, level, handshake_failed ? "handshake_failed" : "conn_closed");
    if (handshake_failed)
        log_str(&line, "sni", SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name));
    log_str(&line, "reason", reason_text);
    if (handshake_failed || (failure && failure->detail))
        log_str(&line, "detail", failure ? failure->detail : NULL);
    /* The certificate a client was refused for, when it sent one. */
    if (handshake_failed &&
        tls_ctx_peer_subject(c->ssl, subject, sizeof(subject)) != NULL)
        log_str(&line, "client_subject", subject);
    if (handshake_failed) {
        /* Which of the listener's addresses the client reached. */
        struct sockaddr_storage local;
        socklen_t local_len = sizeof(local);
        char local_text[NET_ADDR_TEXT_MAX];
        if (getsockname(c->client.fd, (struct sockaddr *)&local, &local_len) == 0)
            log_str(&line, "local", net_addr_format_sa((struct sockaddr *)&local, local_len,
                                                       local_text, sizeof(local_text)));
        log_int(&line, "bytes_received", (long long)c->client.bytes_read);
    }
    /* What the client offered, when a ClientHello arrived: the last fields,
     * so that on a very long line they are the ones cut. */
    if (handshake_failed && c->client.hello != NULL)
        clienthello_log_fields(&line, c->client.hello);
    if (!handshake_failed) {
        log_str(&line, "state", conn_state_names[c->state]);
        log_int(&line, "bytes_in", (long long)c->bytes_in);
        log_int(&line, "bytes_out", (long long)c->bytes_out);
    }
    log_int(&line, "duration_ms", (long long)((metrics_clock_us() - c->accepted_us) / 1000));
    log_end(&line);
}

static void direction_cleanup(struct direction *d)
{
    free(d->buf);
    d->buf = NULL;
}

static void conn_unlink(struct conn *c)
{
    struct worker *w = c->worker;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->num_conns--;
}

/* conn_close ends |c| with |reason| (|failure| may be NULL) and frees it. */
static int conn_close(struct conn *c, enum end_reason reason,
                      const struct tls_io_failure *failure)
{
    struct worker *worker = c->worker;

    /* The limits count this conn out before anything is logged, so that a
     * reader of the log never sees a count that includes an ended conn. */
    listener_conn_ended(c->listener);
    metrics_conn_closed(c->listener->metrics, reason, failure ? failure->alert : 0);
    if (reason_is_handshake_failure(reason))
        report_block_failure(c->worker->report, c->cfg, reason, failure ? failure->alert : 0,
                             (const struct sockaddr *)&c->client_addr, c->client.hello);
    log_conn_end(c, reason, failure);
    if (c->client_events)
        event_del(&c->client_ev);
    if (c->backend_events)
        event_del(&c->backend_ev);
    event_del(&c->timer_ev);
    event_del(&c->resume_ev);
    SSL_free(c->ssl);
    tls_io_forget_hello(&c->client);
    close(c->client.fd);
    if (c->backend_fd >= 0)
        close(c->backend_fd);
    direction_cleanup(&c->up);
    direction_cleanup(&c->down);
    conn_unlink(c);
    generation_unref(c->gen);
    free(c);

    worker_conn_closed(worker);
    return CONN_CLOSED;
}

void conn_close_all(struct worker *worker, enum end_reason reason)
{
    while (worker->conns != NULL)
        conn_close(worker->conns, reason, NULL);
}

/* ---- events ---------------------------------------------------------------- */

/* watch arms |ev| on |fd| for |events| (EV_READ, EV_WRITE or 0), touching the
 * event loop only when that changes. */
static void watch(struct conn *c, struct event *ev, int fd, short *armed, short events,
                  event_callback_fn callback)
{
    if (*armed == events)
        return;
    if (*armed)
        event_del(ev);
    *armed = events;
    if (events == 0)
        return;
    event_assign(ev, c->worker->base, fd, events | EV_PERSIST, callback, c);
    event_add(ev, NULL);
}

static short wait_events(uint8_t wait)
{
    return wait == WAIT_READ ? EV_READ : wait == WAIT_WRITE ? EV_WRITE : 0;
}

static void arm_timer(struct conn *c, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    event_add(&c->timer_ev, &tv);
}

/* clear_waits forgets the waits that |what| (EV_READ/EV_WRITE) satisfied. */
static void clear_waits(uint8_t *waits[], size_t num_waits, short what)
{
    for (size_t i = 0; i < num_waits; i++)
        if ((*waits[i] == WAIT_READ && (what & EV_READ)) ||
            (*waits[i] == WAIT_WRITE && (what & EV_WRITE)))
            *waits[i] = WAIT_NONE;
}

/* update_events watches each socket for exactly what its blocked operations
 * wait for. */
static void update_events(struct conn *c)
{
    short client = 0, backend = 0;

    switch (c->state) {
    case CONN_HANDSHAKE:
        client = wait_events(c->handshake_wait);
        break;
    case CONN_CONNECTING:
        backend = EV_WRITE;
        break;
    case CONN_FORWARDING:
        client = wait_events(c->up.read_wait) | wait_events(c->down.write_wait);
        backend = wait_events(c->down.read_wait) | wait_events(c->up.write_wait);
        break;
    }
    watch(c, &c->client_ev, c->client.fd, &c->client_events, client, on_client_event);
    watch(c, &c->backend_ev, c->backend_fd, &c->backend_events, backend, on_backend_event);
}

/* ---- forwarding -------------------------------------------------------------- */

static uint32_t pending(const struct direction *d) { return d->end - d->start; }

/* take_buffer makes sure |d| has a buffer to read into; -1 if out of memory. */
static int take_buffer(struct direction *d)
{
    if (d->buf == NULL && (d->buf = malloc(FORWARD_BUF_LEN)) == NULL)
        return -1;
    d->start = d->end = 0;
    return 0;
}

/* consumed records that |n| pending bytes of |d| went out, dropping the
 * buffer once empty. */
static void consumed(struct direction *d, size_t n)
{
    d->start += (uint32_t)n;
    if (d->start == d->end)
        direction_cleanup(d);
}

/* read_client moves plaintext from the client into the up buffer. */
static int read_client(struct conn *c)
{
    struct direction *d = &c->up;
    struct tls_io_failure failure;
    size_t n = 0;

    if (take_buffer(d) != 0)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    switch (tls_io_read(c->ssl, d->buf, FORWARD_BUF_LEN, &n, &failure)) {
    case TLS_IO_OK:
        d->end = (uint32_t)n;
        c->bytes_in += n;
        metrics_bytes_client_to_backend(c->listener->metrics, n);
        c->last_activity_ms = clock_now_ms();
        return CONN_OK;
    case TLS_IO_WANT_READ:
        d->read_wait = WAIT_READ;
        break;
    case TLS_IO_WANT_WRITE:
        d->read_wait = WAIT_WRITE;
        break;
    case TLS_IO_EOF:
        d->eof = true;
        break;
    case TLS_IO_ERROR:
        return conn_close(c, failure.reason, &failure);
    }
    direction_cleanup(d);
    return CONN_OK;
}

/* backend_io_failed handles a failed send or recv on the backend socket
 * (errno says why): a would-block records |blocked_wait| in |*wait|, EINTR
 * retries on the next turn, anything else closes the conn. */
static int backend_io_failed(struct conn *c, uint8_t *wait, uint8_t blocked_wait)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *wait = blocked_wait;
        return CONN_OK;
    }
    if (errno == EINTR)
        return CONN_OK;
    struct tls_io_failure failure = {.reason = END_BACKEND_RESET, .detail = strerror(errno)};
    return conn_close(c, END_BACKEND_RESET, &failure);
}

/* write_backend sends pending up bytes to the backend. */
static int write_backend(struct conn *c)
{
    struct direction *d = &c->up;
    ssize_t n = send(c->backend_fd, d->buf + d->start, pending(d), MSG_NOSIGNAL);
    if (n >= 0) {
        consumed(d, (size_t)n);
        return CONN_OK;
    }
    return backend_io_failed(c, &d->write_wait, WAIT_WRITE);
}

/* read_backend moves bytes from the backend into the down buffer. */
static int read_backend(struct conn *c)
{
    struct direction *d = &c->down;

    if (take_buffer(d) != 0)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    ssize_t n = recv(c->backend_fd, d->buf, FORWARD_BUF_LEN, 0);
    if (n > 0) {
        d->end = (uint32_t)n;
        c->last_activity_ms = clock_now_ms();
        /* Decided here, while nothing is being written: a retried
         * SSL_write must not shrink. */
        if (c->last_activity_ms - c->last_client_write_ms >= SMALL_RECORDS_AFTER_IDLE_MS)
            c->small_records_budget = SMALL_RECORDS_BUDGET;
        return CONN_OK;
    }
    direction_cleanup(d);
    if (n == 0) {
        d->eof = true;
        return CONN_OK;
    }
    return backend_io_failed(c, &d->read_wait, WAIT_READ);
}

/* write_client sends pending down bytes to the client as TLS records. */
static int write_client(struct conn *c)
{
    struct direction *d = &c->down;
    struct tls_io_failure failure;
    size_t len = pending(d), n = 0;

    if (c->small_records_budget > 0 && len > SMALL_RECORD_LEN)
        len = SMALL_RECORD_LEN;
    switch (tls_io_write(c->ssl, d->buf + d->start, len, &n, &failure)) {
    case TLS_IO_OK:
        c->bytes_out += n;
        metrics_bytes_backend_to_client(c->listener->metrics, n);
        c->small_records_budget -= n < c->small_records_budget ? (uint32_t)n : c->small_records_budget;
        c->last_client_write_ms = c->last_activity_ms;
        consumed(d, n);
        return CONN_OK;
    case TLS_IO_WANT_READ:
        d->write_wait = WAIT_READ;
        return CONN_OK;
    case TLS_IO_WANT_WRITE:
        d->write_wait = WAIT_WRITE;
        return CONN_OK;
    case TLS_IO_EOF:
    case TLS_IO_ERROR:
        break;
    }
    return conn_close(c, failure.reason, &failure);
}

/* pass_on_eof tells the destination of |d| that its source ended. */
static int pass_on_eof(struct conn *c, struct direction *d)
{
    if (d == &c->up) {
        /* The backend may still answer: only our write side closes. */
        shutdown(c->backend_fd, SHUT_WR);
        d->shut = true;
        return CONN_OK;
    }
    switch (tls_io_close_notify(c->ssl)) {
    case TLS_IO_OK:
        d->shut = true;
        return CONN_OK;
    case TLS_IO_WANT_WRITE:
        d->write_wait = WAIT_WRITE;
        return CONN_OK;
    default:
        return conn_close(c, END_CLIENT_RESET, NULL);
    }
}

typedef int (*transfer_fn)(struct conn *c);

/* pump moves |d| forward until it blocks, ends, or has had FORWARD_ROUNDS
 * turns. It returns CONN_CLOSED, or CONN_OK with |*out_more| set when it
 * stopped only to let other connections run. */
static int pump(struct conn *c, struct direction *d, transfer_fn read_source,
                transfer_fn write_destination, bool *out_more)
{
    for (int round = 0; round < FORWARD_ROUNDS; round++) {
        if (d->write_wait != WAIT_NONE || d->shut)
            return CONN_OK;
        if (pending(d) > 0) {
            if (write_destination(c) != CONN_OK)
                return CONN_CLOSED;
        } else if (d->eof) {
            if (pass_on_eof(c, d) != CONN_OK)
                return CONN_CLOSED;
        } else if (d->read_wait != WAIT_NONE) {
            return CONN_OK;
        } else if (read_source(c) != CONN_OK) {
            return CONN_CLOSED;
        }
    }
    *out_more = true;
    return CONN_OK;
}

/* forward runs both directions, then closes the conn once both have ended or
 * waits for the sockets. */
static void forward(struct conn *c)
{
    bool more = false;

    if (pump(c, &c->up, read_client, write_backend, &more) != CONN_OK)
        return;
    if (pump(c, &c->down, read_backend, write_client, &more) != CONN_OK)
        return;
    if (c->up.shut && c->down.shut) {
        conn_close(c, END_DONE, NULL);
        return;
    }
    update_events(c);
    if (more)
        event_active(&c->resume_ev, 0, 0);
}

/* ---- backend connect ------------------------------------------------------------ */

/* backend_failed logs why the backend could not be reached, tells the client
 * with a close_notify (tcp mode has no error page) and closes. */
static int backend_failed(struct conn *c, enum end_reason reason, int err)
{
    char backend[NET_ADDR_TEXT_MAX];
    struct log_line line;

    log_conn_start(&line, c, LOG_WARN, "backend_connect_failed");
    log_str(&line, "backend", net_addr_format(c->backend_addr, backend, sizeof(backend)));
    log_str(&line, "error", reason == END_BACKEND_CONNECT_TIMEOUT ? "timeout" : strerror(err));
    log_end(&line);
    metrics_backend_connect_failed(c->listener->metrics, reason == END_BACKEND_CONNECT_TIMEOUT
                                                             ? METRICS_CONNECT_TIMEOUT
                                                             : METRICS_CONNECT_ERROR);
    (void)tls_io_close_notify(c->ssl);
    return conn_close(c, reason, NULL);
}

static void start_connect(struct conn *c)
{
    c->backend_fd = backend_connect(c->listener, c->cfg, &c->backend_addr);
    if (c->backend_fd < 0) {
        backend_failed(c, END_BACKEND_CONNECT_FAILED, errno);
        return;
    }
    conn_set_state(c, CONN_CONNECTING);
    c->connect_started_us = metrics_clock_us();
    arm_timer(c, c->cfg->connect_timeout_ms);
    update_events(c);
}

static void finish_connect(struct conn *c)
{
    int err = backend_connect_result(c->backend_fd);
    if (err != 0) {
        backend_failed(c, END_BACKEND_CONNECT_FAILED, err);
        return;
    }
    conn_set_state(c, CONN_FORWARDING);
    metrics_backend_connected(c->listener->metrics, metrics_clock_us() - c->connect_started_us);
    c->last_activity_ms = clock_now_ms();
    arm_timer(c, c->cfg->idle_timeout_ms);
    forward(c);
}

/* ---- handshake ---------------------------------------------------------------- */

static void log_handshake_done(const struct conn *c)
{
    struct log_line line;
    const uint8_t *alpn;
    unsigned alpn_len;
    char subject[256];
    struct tls_ctx_san san;

    if (!log_enabled(LOG_DEBUG))
        return;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    log_conn_start(&line, c, LOG_DEBUG, "handshake_done");
    log_str(&line, "sni", SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name));
    log_str(&line, "version", SSL_get_version(c->ssl));
    log_str(&line, "cipher", SSL_CIPHER_standard_name(SSL_get_current_cipher(c->ssl)));
    log_str(&line, "group", SSL_get_curve_name(SSL_get_curve_id(c->ssl)));
    log_int(&line, "resumed", SSL_session_reused(c->ssl));
    log_int(&line, "early_data", SSL_early_data_accepted(c->ssl));
    log_strn(&line, "alpn", alpn_len ? (const char *)alpn : NULL, alpn_len);
    if (tls_ctx_peer_subject(c->ssl, subject, sizeof(subject)) != NULL) {
        log_str(&line, "client_subject", subject);
        if (tls_ctx_peer_san(c->ssl, &san) == 0)
            log_strs(&line, "client_san", san.names, san.num_names);
    }
    if (c->client.hello != NULL) {
        char ja4[CLIENTHELLO_JA4_LEN + 1];
        clienthello_ja4(c->client.hello, ja4);
        log_str(&line, "ja4", ja4);
    }
    log_int(&line, "duration_ms", (long long)((metrics_clock_us() - c->accepted_us) / 1000));
    log_end(&line);
}

static void count_handshake_done(const struct conn *c)
{
    struct metrics_listener *m = c->listener->metrics;
    metrics_handshake_done(
        m, metrics_tls_version_of(SSL_version(c->ssl)),
        metrics_cipher_of(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(c->ssl))),
        metrics_group_of(SSL_get_curve_id(c->ssl)), SSL_session_reused(c->ssl),
        metrics_clock_us() - c->accepted_us);
    if (SSL_early_data_accepted(c->ssl))
        metrics_early_data_accepted(m);
    report_block_success(c->worker->report, c->cfg);
}

/* report_would_fail counts and logs a client that completed the handshake
 * but would fail the listener's report-only policy (see report_only.h). A
 * handshake that really fails is logged as handshake_failed only. */
static void report_would_fail(const struct conn *c)
{
    enum end_reason reason = (enum end_reason)c->client.would_fail_reason;
    char reason_text[48];
    struct log_line line;

    if (!c->client.would_fail)
        return;
    metrics_would_fail(c->listener->metrics, reason);
    if (!log_enabled(LOG_INFO) || !worker_log_would_fail(c->worker, reason))
        return;
    log_conn_start(&line, c, LOG_INFO, "policy_would_fail");
    log_str(&line, "sni", SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name));
    log_str(&line, "reason", reason_name(reason, 0, reason_text, sizeof(reason_text)));
    log_str(&line, "policy", report_only_policy_name(&c->cfg->report_only));
    log_str(&line, "version", SSL_get_version(c->ssl));
    if (c->client.hello != NULL)
        clienthello_log_fields(&line, c->client.hello);
    log_end(&line);
}

static void do_handshake(struct conn *c)
{
    struct tls_io_failure failure;

    switch (tls_io_handshake(c->ssl, &c->client, &failure)) {
    case TLS_IO_OK:
        c->handshake_wait = WAIT_NONE;
        count_handshake_done(c);
        log_handshake_done(c);
        report_would_fail(c);
        tls_io_forget_hello(&c->client); /* idle connections keep none */
        start_connect(c);
        return;
    case TLS_IO_WANT_READ:
        c->handshake_wait = WAIT_READ;
        break;
    case TLS_IO_WANT_WRITE:
        c->handshake_wait = WAIT_WRITE;
        break;
    case TLS_IO_EOF:
    case TLS_IO_ERROR:
        conn_close(c, failure.reason, &failure);
        return;
    }
    update_events(c);
}

/* ---- event callbacks ------------------------------------------------------------- */

static void on_client_event(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->state == CONN_HANDSHAKE) {
        do_handshake(c);
        return;
    }
    uint8_t *waits[] = {&c->up.read_wait, &c->down.write_wait};
    clear_waits(waits, 2, what);
    forward(c);
}

static void on_backend_event(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->state == CONN_CONNECTING) {
        finish_connect(c);
        return;
    }
    uint8_t *waits[] = {&c->down.read_wait, &c->up.write_wait};
    clear_waits(waits, 2, what);
    forward(c);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    forward(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    switch (c->state) {
    case CONN_HANDSHAKE: {
        struct tls_io_failure failure = {.reason = END_HANDSHAKE_TIMEOUT,
                                         .detail = "HANDSHAKE_TIMEOUT"};
        conn_close(c, END_HANDSHAKE_TIMEOUT, &failure);
        return;
    }
    case CONN_CONNECTING:
        backend_failed(c, END_BACKEND_CONNECT_TIMEOUT, ETIMEDOUT);
        return;
    case CONN_FORWARDING: {
        /* The deadline moves with every transfer; it is checked lazily here
         * rather than re-armed on each one. */
        uint64_t idle_ms = c->cfg->idle_timeout_ms;
        uint64_t idle_for = clock_now_ms() - c->last_activity_ms;
        if (idle_for >= idle_ms) {
            conn_close(c, END_IDLE_TIMEOUT, NULL);
            return;
        }
        arm_timer(c, idle_ms - idle_for);
        return;
    }
    }
}

/* ---- accept -------------------------------------------------------------------- */

void conn_accept(struct listener *listener, int fd, const struct sockaddr *peer,
                 socklen_t peer_len)
{
    struct worker *worker = listener->worker;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->client.fd = fd;
    c->ssl = tls_ctx_new_ssl(listener->tls, &c->client);
    if (c->ssl == NULL)
        goto fail;

    c->worker = worker;
    c->listener = listener;
    c->gen = generation_ref(worker->gen);
    c->cfg = listener->cfg;
    c->state = CONN_HANDSHAKE;
    c->backend_fd = -1;
    c->accepted_us = metrics_clock_us();
    memcpy(&c->client_addr, peer, peer_len);
    c->client_addr_len = peer_len;
    net_set_nodelay(fd);
    event_assign(&c->timer_ev, worker->base, -1, 0, on_timer, c);
    event_assign(&c->resume_ev, worker->base, -1, 0, on_resume, c);

    c->next = worker->conns;
    if (worker->conns != NULL)
        worker->conns->prev = c;
    worker->conns = c;
    worker->num_conns++;
    listener_conn_opened(listener);
    metrics_conn_accepted(listener->metrics);

    arm_timer(c, c->cfg->handshake_timeout_ms);
    /* The ClientHello has usually not arrived yet: wait for it rather than
     * spend a read that would find nothing. */
    c->handshake_wait = WAIT_READ;
    update_events(c);
    return;

fail:
    log_msg(LOG_ERROR, "accept_failed", "out of memory for a new connection");
    if (c != NULL)
        SSL_free(c->ssl);
    free(c);
    close(fd);
}
