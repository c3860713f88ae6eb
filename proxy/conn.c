/* conn: the life of one client connection.
 *
 * States, in the only order they can come (conn.h):
 *
 *   CONN_PROXY_HEADER  accept_proxy only: the load balancer's PROXY
 *                   header, read before any TLS byte (proxy_header.h),
 *                   bounded by accept_proxy.timeout. A peer outside
 *                   accept_proxy.from is refused at accept.
 *   CONN_HANDSHAKE  TLS handshake with the client, bounded by
 *                   timeouts.handshake; driven by the client socket. A
 *                   redirect listener speaks plain HTTP: its conns skip
 *                   it and start CONN_ACTIVE at accept.
 *   CONN_ACTIVE     the listener's mode (mode.h) runs over the client
 *                   transport, with deadlines of its own. After 0-RTT data
 *                   the mode starts before the client's Finished; the
 *                   handshake is counted only once it completes, and
 *                   timeouts.handshake bounds that too.
 *   CONN_CLOSING    a graceful end (conn_linger): close_notify and a FIN
 *                   have gone out, and the client's input is read and
 *                   dropped until its EOF, LINGER_MAX_BYTES or LINGER_MS,
 *                   so that closing with unread bytes does not send a RST
 *                   that would wipe out our last ones from the client's
 *                   receive buffer.
 *
 * Ownership. The event loop owns a conn from conn_accept until conn_close,
 * which frees it at once. A conn owns its client transport (socket, SSL,
 * buffers, event), its timer queue entry, its mode state while
 * CONN_ACTIVE (which owns the backend side), and a reference on the
 * generation (configuration, TLS contexts) it was accepted under, so a
 * reload never changes it. The worker and its listener outlive every conn,
 * since a worker ends only after its conns. Only conn_close ends a
 * connection: it logs the one line that says why, undoes everything and
 * frees the conn. A function that may close the conn returns CONN_CLOSED,
 * and its caller returns at once without touching the conn.
 *
 * Timers. One entry per conn in the worker's timer queue (timerq.h),
 * queued for the earliest of its deadlines, or for now when the mode asked
 * to resume on the next turn. Deadlines that only move later (the idle
 * timeout moves with every transfer) do not move the entry: it fires early,
 * finds the deadline moved and is queued again, which costs one wakeup per
 * timeout period instead of one queue update per transfer. */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "backend_pool.h"
#include "clienthello.h"
#include "clock.h"
#include "metrics.h"
#include "mode.h"
#include "plain_http.h"
#include "proxy_header.h"
#include "report.h"
#include "report_only.h"
#include "tls_cert.h"
#include "tls_ctx.h"
#include "worker.h"

/* CONN_CLOSING's bounds: enough for a client to notice our close_notify and
 * stop sending, short enough that closing connections do not pile up. */
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1024 * 1024)

static const char *const conn_state_names[] = {
    [CONN_PROXY_HEADER] = "proxy_header",
    [CONN_HANDSHAKE] = "handshake",
    [CONN_ACTIVE] = "active",
    [CONN_CLOSING] = "closing",
};

static void on_client_event(evutil_socket_t fd, short what, void *arg);

/* conn_set_state moves |c| to |next|, which must follow its current state. */
static void conn_set_state(struct conn *c, enum conn_state next)
{
    assert((c->state == CONN_PROXY_HEADER && next == CONN_HANDSHAKE) ||
           (c->state == CONN_HANDSHAKE && next == CONN_ACTIVE) ||
           (c->state == CONN_ACTIVE && next == CONN_CLOSING));
    c->state = next;
}

static const char *client_text(const struct conn *c, char *out, size_t out_len)
{
    return net_addr_format_sa(&c->client_addr.sa, c->client_addr_len, out, out_len);
}

void conn_log_begin(struct log_line *line, const struct conn *c, enum log_level level,
                    const char *event)
{
    char client[NET_ADDR_TEXT_MAX];
    log_begin(line, level, event);
    log_str(line, "listener", c->cfg->name);
    log_str(line, "client", client_text(c, client, sizeof(client)));
    log_int(line, "worker", c->worker->id);
    if (c->cfg->backend != NULL && c->cfg->backend->proxy_protocol_unique_id) {
        char id[CONN_ID_TEXT_LEN + 1];
        log_str(line, "conn_id", conn_id_text(c, id));
    }
}

char *conn_id_text(const struct conn *c, char out[CONN_ID_TEXT_LEN + 1])
{
    snprintf(out, CONN_ID_TEXT_LEN + 1, "%016" PRIx64, c->id);
    return out;
}

const struct sockaddr *conn_backend_source(const struct conn *c)
{
    const struct cfg_backend *group = cfg_listener_backend(c->cfg);
    return group != NULL && group->source == CFG_BACKEND_SOURCE_CLIENT && c->client_addr_len > 0
               ? &c->client_addr.sa
               : NULL;
}

/* ---- teardown ------------------------------------------------------------ */

/* state_name says where |c| was, for the conn_closed line: the mode's own
 * state while it runs, and the state a lingering close came from. */
static const char *state_name(const struct conn *c)
{
    if (c->state == CONN_ACTIVE && c->mode_state != NULL)
        return c->mode->state_name(c);
    if (c->state == CONN_CLOSING && c->closing_state != NULL)
        return c->closing_state;
    return conn_state_names[c->state];
}

static void log_conn_end(const struct conn *c, enum end_reason reason,
                         const struct tls_io_failure *failure)
{
    char reason_text[48];
    char subject[256];
    struct log_line line;
    bool handshake_failed = reason_is_handshake_failure(reason);
    enum log_level level = handshake_failed ? LOG_WARN : LOG_DEBUG;
    SSL *ssl = c->client.ssl;

    if (!log_enabled(level))
        return;
    /* Rate limited per reason: a flood of bad handshakes must not become a
     * flood of lines. The worker reports what it dropped. */
    if (handshake_failed && !worker_log_failure(c->worker, reason))
        return;
    reason_name(reason, failure ? failure->alert : 0, reason_text, sizeof(reason_text));
    conn_log_begin(&line, c, level, handshake_failed ? "handshake_failed" : "conn_closed");
    if (handshake_failed)
        log_str(&line, "sni", SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    log_str(&line, "reason", reason_text);
    if (handshake_failed || (failure && failure->detail))
        log_str(&line, "detail", failure ? failure->detail : NULL);
    /* The certificate a client was refused for, when it sent one. */
    if (handshake_failed && tls_ctx_peer_subject(ssl, subject, sizeof(subject)) != NULL)
        log_str(&line, "client_subject", subject);
    if (handshake_failed) {
        /* Which of the listener's addresses the client reached. */
        struct sockaddr_storage local;
        socklen_t local_len = sizeof(local);
        char local_text[NET_ADDR_TEXT_MAX];
        if (getsockname(c->client.sock.fd, (struct sockaddr *)&local, &local_len) == 0)
            log_str(&line, "local",
                    net_addr_format_sa((struct sockaddr *)&local, local_len, local_text,
                                       sizeof(local_text)));
        log_int(&line, "bytes_received", (long long)c->client.sock.bytes_read);
    }
    /* What the client offered, when a ClientHello arrived: the last fields,
     * so that on a very long line they are the ones cut. */
    if (handshake_failed && c->client.sock.hello != NULL)
        clienthello_log_fields(&line, c->client.sock.hello);
    if (!handshake_failed) {
        log_str(&line, "state", state_name(c));
        log_int(&line, "bytes_in", (long long)c->bytes_in);
        log_int(&line, "bytes_out", (long long)c->bytes_out);
    }
    log_int(&line, "duration_ms", (long long)((metrics_clock_us() - c->accepted_us) / 1000));
    log_end(&line);
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

int conn_close(struct conn *c, enum end_reason reason, const struct tls_io_failure *failure)
{
    struct worker *worker = c->worker;

    /* The limits count this conn out before anything is logged, so that a
     * reader of the log never sees a count that includes an ended conn. */
    listener_conn_ended(c->listener);
    metrics_conn_closed(c->listener->metrics, reason, failure ? failure->alert : 0);
    if (reason_is_handshake_failure(reason))
        report_block_failure(c->worker->report, c->cfg, reason, failure ? failure->alert : 0,
                             &c->client_addr.sa, c->client.sock.hello);
    log_conn_end(c, reason, failure);
    /* Records gathered by a cork in this turn go out (once, without
     * waiting): bytes_out counted them, and the close may follow a write
     * in the same turn. */
    if (tls_io_has_output(&c->client.sock))
        tls_io_flush(&c->client.sock);
    /* Anything but a finished stream is cut short: the backend gets a RST,
     * so it cannot take a partial request for a complete one. */
    if (c->mode_state != NULL)
        c->mode->free(c, reason != END_DONE);
    if (cfg_backend_per_client(c->cfg))
        backend_pool_close_owned(worker, c);
    timerq_cancel(&c->worker->timers, &c->timer);
    free(c->proxy_buf);
    transport_cleanup(&c->client, false);
    conn_unlink(c);
    generation_unref(c->gen);
    free(c);

    worker_conn_closed(worker);
    return CONN_CLOSED;
}

/* ---- timers -------------------------------------------------------------- */

/* next_deadline returns the earliest deadline of |c| (0: none). */
static uint64_t next_deadline(const struct conn *c)
{
    uint64_t at = c->deadline_ms;
    if ((c->state <= CONN_HANDSHAKE || c->handshake_completing) &&
        (at == 0 || c->handshake_deadline_ms < at))
        at = c->handshake_deadline_ms;
    return at;
}

/* rearm queues the timer for the earliest deadline, unless it is already
 * queued for no later than that. */
static void rearm(struct conn *c)
{
    uint64_t at = c->resume_queued ? clock_now_ms() : next_deadline(c);
    if (at == 0 || (c->timer.slot != 0 && c->timer.at_ms <= at))
        return;
    if (timerq_set(&c->worker->timers, &c->timer, at) != 0)
        log_msg(LOG_ERROR, "timer_failed", "out of memory for a connection deadline");
}

void conn_set_deadline(struct conn *c, uint64_t at_ms)
{
    c->deadline_ms = at_ms;
    rearm(c);
}

void conn_resume_later(struct conn *c)
{
    c->resume_queued = true;
    rearm(c);
}

void conn_watch_client(struct conn *c)
{
    transport_watch(&c->client, c->worker->base, 0, on_client_event, c);
}

/* ---- lingering close --------------------------------------------------------- */

/* linger_discard reads and drops what the client still sends. */
static int linger_discard(struct conn *c)
{
    static _Thread_local uint8_t scratch[16384];

    for (;;) {
        ssize_t n = recv(c->client.sock.fd, scratch, sizeof(scratch), 0);
        if (n > 0) {
            if ((uint32_t)n >= c->linger_budget)
                return conn_close(c, c->closing_reason, NULL);
            c->linger_budget -= (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->client.read_wait = TRANSPORT_WAIT_READ;
            conn_watch_client(c);
            return CONN_OK;
        }
        /* The client's EOF (or error): nothing can be lost any more. */
        return conn_close(c, c->closing_reason, NULL);
    }
}

/* linger_step advances CONN_CLOSING: close_notify out, then a FIN, then the
 * client's input dropped until it ends. */
static int linger_step(struct conn *c)
{
    if (!c->client.close_notify_sent) {
        switch (transport_close_notify(&c->client, NULL)) {
        case TLS_IO_OK:
            break;
        case TLS_IO_WANT_WRITE:
            conn_watch_client(c);
            return CONN_OK;
        case TLS_IO_WANT_READ:
            /* A 0-RTT handshake that never finished: no close_notify can be
             * sent, and none is recorded as sent. */
            c->client.write_wait = TRANSPORT_WAIT_NONE;
            break;
        default:
            return conn_close(c, c->closing_reason, NULL);
        }
    }
    switch (transport_flush(&c->client)) {
    case TLS_IO_OK:
        break;
    case TLS_IO_WANT_WRITE:
        conn_watch_client(c);
        return CONN_OK;
    default:
        return conn_close(c, c->closing_reason, NULL);
    }
    if (!c->fin_sent) {
        shutdown(c->client.sock.fd, SHUT_WR);
        c->fin_sent = true;
    }
    return linger_discard(c);
}

int conn_linger(struct conn *c, enum end_reason reason)
{
    /* The conn_closed line names the state the end came from. */
    c->closing_state = state_name(c);
    if (c->mode_state != NULL)
        c->mode->free(c, false);
    if (cfg_backend_per_client(c->cfg))
        backend_pool_close_owned(c->worker, c);
    conn_set_state(c, CONN_CLOSING);
    c->closing_reason = reason;
    c->linger_budget = LINGER_MAX_BYTES;
    c->handshake_completing = false;
    c->client.read_wait = c->client.write_wait = TRANSPORT_WAIT_NONE;
    conn_set_deadline(c, clock_now_ms() + LINGER_MS);
    linger_step(c);
    return CONN_CLOSED;
}

/* ---- handshake ---------------------------------------------------------------- */

static void log_handshake_done(const struct conn *c)
{
    struct log_line line;
    const uint8_t *alpn;
    unsigned alpn_len;
    char subject[256];
    struct tls_ctx_san san;
    SSL *ssl = c->client.ssl;

    if (!log_enabled(LOG_DEBUG))
        return;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    conn_log_begin(&line, c, LOG_DEBUG, "handshake_done");
    log_str(&line, "sni", SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    log_str(&line, "version", SSL_get_version(ssl));
    log_str(&line, "cipher", SSL_CIPHER_standard_name(SSL_get_current_cipher(ssl)));
    log_str(&line, "group", SSL_get_curve_name(SSL_get_curve_id(ssl)));
    /* A bool, as the metrics' resumed label is "true" or "false". */
    log_bool(&line, "resumed", SSL_session_reused(ssl));
    log_int(&line, "early_data", SSL_early_data_accepted(ssl));
    log_strn(&line, "alpn", alpn_len ? (const char *)alpn : NULL, alpn_len);
    /* With several certificates (SNI), which one this client got: its
     * file as configured, the name an operator edits and rotates. */
    const struct tls_cert *served = tls_ctx_served_cert(ssl);
    if (served != NULL)
        log_str(&line, "cert", served->cfg->cert_path);
    if (tls_ctx_peer_subject(ssl, subject, sizeof(subject)) != NULL) {
        log_str(&line, "client_subject", subject);
        if (tls_ctx_peer_san(ssl, &san) == 0)
            log_strs(&line, "client_san", san.names, san.num_names);
    }
    if (c->client.sock.hello != NULL) {
        char ja4[CLIENTHELLO_JA4_LEN + 1];
        clienthello_ja4(c->client.sock.hello, ja4);
        log_str(&line, "ja4", ja4);
    }
    log_int(&line, "duration_ms", (long long)((metrics_clock_us() - c->accepted_us) / 1000));
    log_end(&line);
}

static void count_handshake_done(const struct conn *c)
{
    struct metrics_listener *m = c->listener->metrics;
    SSL *ssl = c->client.ssl;
    metrics_handshake_done(
        m, metrics_tls_version_of(SSL_version(ssl)),
        metrics_cipher_of(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(ssl))),
        metrics_group_of(SSL_get_curve_id(ssl)), SSL_session_reused(ssl),
        metrics_clock_us() - c->accepted_us);
    if (SSL_early_data_accepted(ssl))
        metrics_early_data_accepted(m);
    report_block_success(c->worker->report, c->cfg);
}

/* report_would_fail counts a client that completed the handshake in the
 * failure report's entry for the listener's report-only policy (see
 * report_only.h), and counts and logs it when it would fail that policy. A
 * handshake that really fails is logged as handshake_failed only. */
static void report_would_fail(const struct conn *c)
{
    enum end_reason reason = (enum end_reason)c->client.sock.would_fail_reason;
    char reason_text[48];
    struct log_line line;
    SSL *ssl = c->client.ssl;

    if (!c->cfg->report_only.enabled)
        return;
    report_block_candidate(c->worker->report, c->cfg, c->client.sock.would_fail, reason,
                           &c->client_addr.sa, c->client.sock.hello);
    if (!c->client.sock.would_fail)
        return;
    metrics_would_fail(c->listener->metrics, reason);
    if (!log_enabled(LOG_INFO) || !worker_log_would_fail(c->worker, reason))
        return;
    conn_log_begin(&line, c, LOG_INFO, "policy_would_fail");
    log_str(&line, "sni", SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    log_str(&line, "reason", reason_name(reason, 0, reason_text, sizeof(reason_text)));
    log_str(&line, "policy", report_only_policy_name(&c->cfg->report_only));
    log_str(&line, "version", SSL_get_version(ssl));
    if (c->client.sock.hello != NULL)
        clienthello_log_fields(&line, c->client.sock.hello);
    log_end(&line);
}

/* handshake_complete records a handshake that has really completed: the
 * client's Finished is verified. */
static void handshake_complete(struct conn *c)
{
    c->handshake_completing = false;
    count_handshake_done(c);
    log_handshake_done(c);
    report_would_fail(c);
    tls_io_forget_hello(&c->client.sock); /* idle connections keep none */
}

void conn_handshake_progress(struct conn *c)
{
    if (c->handshake_completing && !SSL_in_init(c->client.ssl))
        handshake_complete(c);
}

/* start_mode starts the listener's mode on |c|: after the handshake, or at
 * accept on a redirect listener (plain HTTP). */
static int start_mode(struct conn *c)
{
    conn_set_state(c, CONN_ACTIVE);
    /* The mode watches the client socket for what it waits for; until it
     * says so, nothing: a request already sent would otherwise keep the
     * socket readable and the loop spinning while, say, tcp mode connects. */
    conn_watch_client(c);
    c->mode = mode_for(c);
    return c->mode->start(c);
}

static int do_handshake(struct conn *c)
{
    struct tls_io_failure failure;

    switch (transport_handshake(&c->client, &failure)) {
    case TLS_IO_OK:
        break;
    case TLS_IO_WANT_READ:
    case TLS_IO_WANT_WRITE:
        conn_watch_client(c);
        return CONN_OK;
    case TLS_IO_EOF:
    case TLS_IO_ERROR:
        /* Plain HTTP gets an answer it can show, not a reset. */
        if (failure.reason == END_HTTP_REQUEST_ON_TLS)
            plain_http_answer(&c->client.sock);
        return conn_close(c, failure.reason, &failure);
    }
    /* With 0-RTT data accepted, SSL_do_handshake succeeds before the
     * client's Finished: the mode may start on the early data, but the
     * handshake is not done until SSL_in_init says so. */
    c->handshake_completing = true;
    conn_handshake_progress(c);
    return start_mode(c);
}

/* ---- the load balancer's PROXY header ---------------------------------------------- */

/* start_handshake waits for the ClientHello, within timeouts.handshake. */
static void start_handshake(struct conn *c)
{
    c->handshake_deadline_ms = clock_now_ms() + c->cfg->handshake_timeout_ms;
    rearm(c);
    /* The ClientHello has usually not arrived yet: wait for it rather than
     * spend a read that would find nothing. */
    c->client.read_wait = TRANSPORT_WAIT_READ;
    conn_watch_client(c);
}

static int reject_proxy_header(struct conn *c, const struct proxy_header_failure *failure)
{
    proxy_header_reject(c, failure);
    return conn_close(c, END_PROXY_HEADER_REJECTED, NULL);
}

static int read_proxy_header(struct conn *c)
{
    struct proxy_header_failure failure;

    switch (proxy_header_read(c, &failure)) {
    case PROXY_HEADER_WAIT:
        c->client.read_wait = TRANSPORT_WAIT_READ;
        conn_watch_client(c);
        return CONN_OK;
    case PROXY_HEADER_REJECTED:
        return reject_proxy_header(c, &failure);
    case PROXY_HEADER_CLOSED:
        return conn_close(c, failure.reason, NULL);
    case PROXY_HEADER_DONE:
        break;
    }
    /* timeouts.handshake counts from here; the TLS bytes may be in
     * already, so the handshake is tried at once. */
    conn_set_state(c, CONN_HANDSHAKE);
    c->handshake_deadline_ms = clock_now_ms() + c->cfg->handshake_timeout_ms;
    rearm(c);
    return do_handshake(c);
}

/* ---- event callbacks ------------------------------------------------------------- */

static void on_client_event(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    transport_ready(&c->client, what);
    switch (c->state) {
    case CONN_PROXY_HEADER:
        read_proxy_header(c);
        return;
    case CONN_HANDSHAKE:
        do_handshake(c);
        return;
    case CONN_ACTIVE:
        c->mode->on_client(c);
        return;
    case CONN_CLOSING:
        linger_step(c);
        return;
    }
}

void conn_timer_fired(struct timerq_entry *timer)
{
    struct conn *c = (struct conn *)((char *)timer - offsetof(struct conn, timer));
    uint64_t now = clock_now_ms();

    if (c->resume_queued) {
        c->resume_queued = false;
        if (c->state == CONN_ACTIVE && c->mode->on_resume(c) != CONN_OK)
            return;
    }
    if (c->state == CONN_PROXY_HEADER && now >= c->handshake_deadline_ms) {
        struct proxy_header_failure failure = {.reject = METRICS_PROXY_TIMEOUT};
        reject_proxy_header(c, &failure);
        return;
    }
    if ((c->state == CONN_HANDSHAKE || c->handshake_completing) &&
        now >= c->handshake_deadline_ms) {
        struct tls_io_failure failure = {.reason = END_HANDSHAKE_TIMEOUT,
                                         .detail = "HANDSHAKE_TIMEOUT"};
        conn_close(c, END_HANDSHAKE_TIMEOUT, &failure);
        return;
    }
    if (c->deadline_ms != 0 && now >= c->deadline_ms) {
        c->deadline_ms = 0;
        if (c->state == CONN_CLOSING) {
            conn_close(c, c->closing_reason, NULL);
            return;
        }
        if (c->mode->on_deadline(c) != CONN_OK)
            return;
    }
    rearm(c);
}

/* ---- the worker's connections ------------------------------------------------------ */

void conn_close_all(struct worker *worker, enum end_reason reason)
{
    while (worker->conns != NULL) {
        struct conn *c = worker->conns;
        /* One try, without waiting: the client learns that the stream
         * ended rather than being cut. */
        if (c->state >= CONN_ACTIVE && transport_close_notify(&c->client, NULL) == TLS_IO_OK)
            transport_flush(&c->client);
        conn_close(c, reason, NULL);
    }
}

void conn_reload_all(struct worker *worker)
{
    struct conn *next;
    for (struct conn *c = worker->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != CONN_ACTIVE || c->cfg->mode != CFG_MODE_HTTP || c->gen == worker->gen)
            continue;
        /* Listeners keep their index across reloads (daemon.c refuses a
         * reload that changes them). */
        if (!cfg_listener_same_http(c->cfg, worker->listeners[c->listener->index].cfg))
            c->mode->drain(c);
    }
}

void conn_drain_all(struct worker *worker)
{
    struct conn *next;
    for (struct conn *c = worker->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == CONN_ACTIVE)
            c->mode->drain(c);
    }
}

/* ---- accept -------------------------------------------------------------------- */

void conn_accept(struct listener *listener, int fd, const struct sockaddr *peer,
                 socklen_t peer_len)
{
    struct worker *worker = listener->worker;
    bool plain = listener->cfg->mode == CFG_MODE_REDIRECT;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL || transport_init(&c->client, fd, plain ? NULL : listener->tls) != 0)
        goto fail;

    c->worker = worker;
    c->listener = listener;
    c->gen = generation_ref(worker->gen);
    c->cfg = listener->cfg;
    c->state = CONN_HANDSHAKE;
    c->accepted_us = metrics_clock_us();
    RAND_bytes((uint8_t *)&c->id, sizeof(c->id));
    if (peer_len > sizeof(c->client_addr))
        peer_len = sizeof(c->client_addr);
    memcpy(&c->client_addr, peer, peer_len);
    c->client_addr_len = (uint8_t)peer_len;
    net_set_nodelay(fd);

    c->next = worker->conns;
    if (worker->conns != NULL)
        worker->conns->prev = c;
    worker->conns = c;
    worker->num_conns++;
    listener_conn_opened(listener);
    metrics_conn_accepted(listener->metrics);

    if (plain) {
        start_mode(c);
        return;
    }
    if (c->cfg->accept_proxy.from != NULL) {
        c->state = CONN_PROXY_HEADER;
        if (!proxy_header_trusted(c)) {
            struct proxy_header_failure failure = {.reject = METRICS_PROXY_UNTRUSTED_SOURCE};
            reject_proxy_header(c, &failure);
            return;
        }
        /* The handshake deadline field bounds the header until it is read. */
        c->handshake_deadline_ms = clock_now_ms() + c->cfg->accept_proxy.timeout_ms;
        rearm(c);
        c->client.read_wait = TRANSPORT_WAIT_READ;
        conn_watch_client(c);
        return;
    }
    start_handshake(c);
    return;

fail:;
    /* No conn to close: this line is the connection's one end line. */
    struct log_line line;
    char client[NET_ADDR_TEXT_MAX];
    log_begin(&line, LOG_ERROR, "accept_failed");
    log_str(&line, "listener", listener->cfg->name);
    log_str(&line, "client", net_addr_format_sa(peer, peer_len, client, sizeof(client)));
    log_int(&line, "worker", worker->id);
    log_str(&line, "reason", "out_of_memory");
    log_end(&line);
    if (c != NULL)
        SSL_free(c->client.ssl);
    free(c);
    close(fd);
}
