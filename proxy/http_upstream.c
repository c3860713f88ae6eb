/* http_upstream: one request's HTTP/1.1 exchange with a backend server
 * (http.h).
 *
 * States, in order:
 *   UP_QUEUED      no connection slot yet (backend.max_connections); bounded
 *                  by timeouts.queue, then 503 backend_busy.
 *   UP_CONNECTING  a new connection; bounded by timeouts.connect. A connect
 *                  that fails or times out is tried again on the next
 *                  server of the group (backend.retries times; nothing of
 *                  the request was written, so any method may be), then 502
 *                  backend_connect_failed. No server up at all: 503
 *                  backend_unavailable.
 *   UP_OPEN        the request is written (head, then body as the front
 *                  hands it over: Content-Length as given, chunked when the
 *                  client gave none) and the response read and parsed
 *                  (h1_response.c). From the end of the request to the response head,
 *                  and between reads of the response after it,
 *                  timeouts.backend_response bounds the wait (504
 *                  backend_timeout); a backend that stops reading the
 *                  request for as long is given up on too.
 *
 * The keep-alive race: a pooled connection the server closes just as a
 * request goes out fails with no response byte. Such a request is sent again
 * once, on a new connection, when that is safe: its method is idempotent and
 * the body written so far is still held whole (sent_body: up to
 * HTTP_BODY_BUF_MAX bytes, kept until the first response byte), so the
 * whole request can be written again. It goes to the same server; a
 * connect there that fails (a server restarting: its idle connection went
 * stale, and it refuses new ones) goes on to the next server like any
 * failed connect. A new connection that fails the same way (a server going
 * away with the request unread in its accept queue) sends the request, on
 * the same terms, to the next server (resend_elsewhere), as nginx's
 * proxy_next_upstream does for idempotent requests. Otherwise the client
 * gets 502.
 *
 * A connection goes back to the pool only when the whole request went out,
 * the whole response came in, and the response allows keep-alive; any other
 * end closes it (with a RST when the request was cut short).
 *
 * A connection that speaks for one client connection (cfg_backend_per_client:
 * backend.proxy_protocol, whose header goes out at its start, laid in
 * |out| once the connect succeeded (put_proxy_header), or
 * backend.source: client, which carries the client's address) serves that
 * client connection alone: it goes back to the pool as the conn's own, is
 * taken again only by the conn's later requests, and is closed with the
 * conn.
 *
 * Ownership. The upstream belongs to its exchange (x->up) from
 * http_upstream_start to its release. It owns its connection (counted out of
 * its pool entry), its output buffer and its timer entry. */
#include "http.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "backend_conn.h"
#include "backend_group.h"
#include "backend_pool.h"
#include "clock.h"
#include "conn.h"
#include "h1_response.h"
#include "http_metrics.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "proxy_header.h"
#include "worker.h"

/* Reads of the backend per turn before yielding to other connections. */
#define UPSTREAM_READ_ROUNDS 16
#define UPSTREAM_READ_LEN 16384

enum up_state { UP_QUEUED, UP_CONNECTING, UP_OPEN, UP_TOO_EARLY };

struct http_upstream {
    struct http_exchange *x;
    enum up_state state;
    struct pool_server *ps;
    const struct cfg_backend *group; /* chosen by the routes from the request */
    struct backend_server *server;   /* picked, with a reference and counted active */
    /* Servers whose connect failed, each with a reference, not tried again. */
    struct backend_server *tried[CFG_BACKEND_RETRIES_MAX + 1];
    size_t num_tried;
    struct backend_conn *conn;
    struct pool_waiter waiter;
    struct timerq_entry timer;
    struct evbuffer *out;      /* request bytes not yet written */
    struct evbuffer *leftover; /* bytes after a 101 head */
    struct h1_response resp; /* the response's parser */
    uint64_t body_written;  /* request body bytes that left x->req_body */
    uint64_t body_reported; /* of those, told to the front (request_body_taken) */
    /* A copy of the body bytes written, while they fit in HTTP_BODY_BUF_MAX
     * and no response byte came: if the server closed the connection as the
     * request went out, the whole request can be sent again. NULL: nothing
     * kept (or too much to keep). */
    struct evbuffer *sent_body;
    bool body_not_held;        /* some written body bytes were not kept */
    uint64_t last_progress_ms; /* the last byte either way, for backend_response */
    uint64_t connect_started_us;
    uint64_t queue_deadline_ms; /* timeouts.queue, from the first wait */
    bool chunked;               /* the request body goes out chunked */
    bool end_queued;            /* the request's end is in |out| */
    bool req_sent;              /* the whole request was written */
    bool write_failed;          /* the server stopped taking the request */
    bool resp_started;          /* a response byte arrived */
    bool upgraded;              /* 101: the parser stopped at the new protocol */
    bool retried;
    bool sent_early; /* written before the client's handshake completed, by us */
    bool too_early;  /* the backend answered 425: sent again after the handshake */
};

static void pump(struct http_upstream *up);
static void open_new(struct http_upstream *up, bool have_slot);
static void on_timer(struct timerq_entry *timer);
static void connect_failed(struct http_upstream *up, int err);
static bool could_retry(const struct http_upstream *up);
static enum http_reason next_server(struct http_upstream *up, bool may);
static void acquire_afresh(struct http_upstream *up);

static _Thread_local uint8_t read_buf[UPSTREAM_READ_LEN];

static struct worker *worker_of(const struct http_upstream *up) { return up->x->c->worker; }

/* log_group_problem logs |event| about the group as a whole. */
static void log_group_problem(const struct http_upstream *up, const char *event,
                              const char *error)
{
    struct log_line line;
    conn_log_begin(&line, up->x->c, LOG_WARN, event);
    log_str(&line, "backend", up->group->name);
    if (up->x->stream_id != 0)
        log_int(&line, "stream", up->x->stream_id);
    log_str(&line, "error", error);
    log_end(&line);
}

/* pool_owner is the owner |up|'s connections are pooled for: its client
 * conn when they carry a PROXY header, else NULL (shared). */
static const void *pool_owner(const struct http_upstream *up)
{
    return cfg_backend_per_client(up->x->c->cfg) ? up->x->c : NULL;
}

/* log_backend_line logs a problem with |server| (its text); |resent_to|,
 * when not NULL, names the server the request went to next. */
static void log_backend_line(const struct http_upstream *up, const char *event,
                             const char *server, const char *error, const char *resent_to)
{
    struct log_line line;
    conn_log_begin(&line, up->x->c, LOG_WARN, event);
    log_str(&line, "server", server);
    if (up->x->stream_id != 0)
        log_int(&line, "stream", up->x->stream_id);
    log_str(&line, "error", error);
    if (resent_to != NULL)
        log_str(&line, "resent_to", resent_to);
    log_end(&line);
}

static void log_backend_problem(const struct http_upstream *up, const char *event,
                                const char *error)
{
    char server[NET_ADDR_TEXT_MAX];
    log_backend_line(up, event, net_addr_format(up->x->server, server, sizeof(server)), error,
                     NULL);
}

/* ---- teardown ---------------------------------------------------------------- */

/* drop_conn closes (or pools) |up|'s connection. */
static void drop_conn(struct http_upstream *up, bool abort)
{
    struct http_exchange *x = up->x;
    struct backend_conn *conn = up->conn;
    const struct cfg_backend *cfg = up->group;

    if (conn == NULL)
        return;
    up->conn = NULL;
    if (!abort && up->state == UP_OPEN && x->resp_done && up->req_sent && up->resp.reusable &&
        !up->write_failed) {
        struct worker *w = worker_of(up);
        bool keep = x->c->gen == w->gen && !w->draining;
        backend_pool_put(up->ps, conn, pool_owner(up), keep, cfg->pool_idle_timeout_ms,
                         cfg->pool_max_idle);
        return;
    }
    backend_conn_free(conn, abort || !up->req_sent);
    backend_pool_closed(up->ps);
}

static void teardown(struct http_upstream *up, bool abort)
{
    timerq_cancel(&worker_of(up)->timers, &up->timer);
    if (up->state == UP_QUEUED && up->ps != NULL)
        backend_pool_give_up(up->ps, &up->waiter);
    if (up->state == UP_TOO_EARLY)
        backend_pool_closed(up->ps); /* the slot kept for sending it again */
    drop_conn(up, abort);
    if (up->out != NULL)
        evbuffer_free(up->out);
    if (up->leftover != NULL)
        evbuffer_free(up->leftover);
    if (up->sent_body != NULL)
        evbuffer_free(up->sent_body);
    backend_server_release(up->server);
    for (size_t i = 0; i < up->num_tried; i++)
        backend_server_unref(up->tried[i]);
    up->x->up = NULL;
    free(up);
}

void http_upstream_release(struct http_exchange *x, bool abort)
{
    if (x->up != NULL)
        teardown(x->up, abort);
}

/* fail ends the upstream for |reason| and tells the front. */
static void fail(struct http_upstream *up, enum http_reason reason)
{
    struct http_exchange *x = up->x;
    x->reason = reason;
    teardown(up, true);
    x->front->failed(x);
}

/* ---- getting a connection ------------------------------------------------------- */

static void attach(struct http_upstream *up, struct backend_conn *conn)
{
    up->conn = conn;
    up->state = UP_OPEN;
    up->last_progress_ms = clock_now_ms();
}

static void on_conn_event(struct backend_conn *conn, short what, void *arg);

/* queue puts |up| at the end of its server's queue, for timeouts.queue
 * from its first wait. */
static void queue(struct http_upstream *up)
{
    if (up->state != UP_QUEUED || up->queue_deadline_ms == 0)
        up->queue_deadline_ms = clock_now_ms() + up->x->c->cfg->queue_timeout_ms;
    up->state = UP_QUEUED;
    backend_pool_wait(up->ps, &up->waiter);
    timerq_set(&worker_of(up)->timers, &up->timer, up->queue_deadline_ms);
}

static void acquire(struct http_upstream *up)
{
    struct http_exchange *x = up->x;
    const struct cfg_backend *cfg = up->group;
    bool woken = up->waiter.woken;
    backend_pool_claim(up->ps, &up->waiter);
    /* A newcomer does not overtake requests already waiting: it queues
     * behind them, even for an idle connection. */
    if (!woken && cfg->max_connections != 0 && backend_pool_has_waiters(up->ps)) {
        queue(up);
        return;
    }
    /* A connection back in the pool a moment ago is taken unchecked only
     * when a retry would cover it turning out closed. */
    struct backend_conn *conn = backend_pool_take(up->ps, pool_owner(up), could_retry(up));

    if (conn != NULL) {
        x->reused = true;
        attach(up, conn);
        backend_conn_set_owner(conn, on_conn_event, up);
        http_metrics_backend_conn(x->c, true);
        pump(up);
        return;
    }
    /* Another client's idle private connection gives way to this one. */
    if (backend_pool_may_open(up->ps, cfg->max_connections) ||
        (pool_owner(up) != NULL && backend_pool_evict_idle(up->ps))) {
        open_new(up, false);
        return;
    }
    /* A woken waiter that still finds nothing (its idle connection was
     * closed meanwhile) keeps its place at the head. */
    if (woken) {
        backend_pool_wait_first(up->ps, &up->waiter);
        timerq_set(&worker_of(up)->timers, &up->timer, up->queue_deadline_ms);
        return;
    }
    queue(up);
}

/* on_slot runs inside whatever freed a slot (another request's teardown,
 * the pool): it only brings this request's timer forward, and acquire runs
 * from the timer on a later turn. */
static void on_slot(struct pool_waiter *waiter)
{
    struct http_upstream *up =
        (struct http_upstream *)((char *)waiter - offsetof(struct http_upstream, waiter));
    timerq_set(&worker_of(up)->timers, &up->timer, clock_now_ms());
}

/* choose_server picks a server of the group not tried yet and its pool
 * entry: HTTP_REASON_NONE, or why not (no server up: backend_unavailable;
 * all tried: backend_connect_failed; out_of_memory, with up->ps NULL). */
static enum http_reason choose_server(struct http_upstream *up)
{
    struct http_exchange *x = up->x;
    struct conn *c = x->c;
    enum backend_pick_result result;

    up->ps = NULL;
    const struct sockaddr *source = conn_backend_source(c);
    up->server = backend_group_pick(generation_group(c->gen, up->group), up->group,
                                    source != NULL ? source->sa_family : AF_UNSPEC, up->tried,
                                    up->num_tried, &result);
    if (up->server == NULL) {
        /* Every request meets it while the group is down: the lines take
         * the worker's limiter, as tcp mode's do (a summary counts the
         * rest). */
        if (result == BACKEND_PICK_NONE_UP &&
            worker_log_failure(c->worker, END_BACKEND_UNAVAILABLE))
            log_group_problem(up, "backend_unavailable", "no server of the group is up");
        return result == BACKEND_PICK_NONE_UP ? HTTP_REASON_BACKEND_UNAVAILABLE
                                              : HTTP_REASON_BACKEND_CONNECT_FAILED;
    }
    x->server_addr = up->server->addr;
    x->server = &x->server_addr;
    up->ps = backend_pool_server(c->worker, c->listener->metrics, x->server);
    return up->ps != NULL ? HTTP_REASON_NONE : HTTP_REASON_OUT_OF_MEMORY;
}

/* next_server puts the server that failed into |tried| and, when |may| and
 * the group's retries allow, picks the next one (choose_server's result);
 * else backend_connect_failed. */
static enum http_reason next_server(struct http_upstream *up, bool may)
{
    atomic_fetch_sub(&up->server->active, 1); /* the reference stays, in tried */
    up->tried[up->num_tried++] = up->server;
    up->server = NULL;
    if (!may || up->num_tried > up->group->retries)
        return HTTP_REASON_BACKEND_CONNECT_FAILED;
    return choose_server(up);
}

/* acquire_afresh waits for a connection to the server just chosen, as a
 * new request does (its queue deadline starts again). */
static void acquire_afresh(struct http_upstream *up)
{
    up->state = UP_QUEUED;
    up->queue_deadline_ms = 0;
    up->waiter.woken = up->waiter.queued = false;
    acquire(up);
}

/* connect_failed counts a failed connect (its connection and slot already
 * given back), |err| its errno or 0 for the connect timeout, and tries the
 * next server of the group, or answers 502. A failure of this process's own
 * (out of descriptors) is not the server's: it does not count against the
 * server's health, and no other server is tried. */
static void connect_failed(struct http_upstream *up, int err)
{
    const struct cfg_backend *group = up->group;
    const char *error = err == 0 ? "timeout" : strerror(err);
    bool local = err != 0 && backend_conn_failed_locally(err);

    log_backend_problem(up, "backend_connect_failed", error);
    metrics_backend_connect_failed(up->x->c->listener->metrics,
                                   err == 0 ? METRICS_CONNECT_TIMEOUT : METRICS_CONNECT_ERROR);
    if (!local)
        backend_server_connect_failed(up->server, group, error);
    /* Nothing of the request went out on this connection, a retry's
     * (retry) included: it goes on to the next server like any other. */
    enum http_reason unpicked = next_server(up, !local);
    if (unpicked == HTTP_REASON_NONE) {
        acquire_afresh(up);
        return;
    }
    fail(up, unpicked == HTTP_REASON_OUT_OF_MEMORY ? unpicked : HTTP_REASON_BACKEND_CONNECT_FAILED);
}

/* open_new connects a new connection; |have_slot| when the upstream still
 * counts one from its pool entry (a retry keeps the slot of the connection
 * that failed, so that no waiter takes it in between). */
static void open_new(struct http_upstream *up, bool have_slot)
{
    struct http_exchange *x = up->x;
    struct conn *c = x->c;
    struct backend_conn *conn = backend_conn_open_from(c->worker->base, x->server,
                                                       conn_backend_source(c), on_conn_event, up);

    x->reused = false;
    if (conn == NULL) {
        int err = errno;
        if (have_slot)
            backend_pool_closed(up->ps);
        /* Out of memory is this process's failure, and not a connect's:
         * the access log says out_of_memory, the server's figures stay. */
        if (err == ENOMEM) {
            fail(up, HTTP_REASON_OUT_OF_MEMORY);
            return;
        }
        connect_failed(up, err);
        return;
    }
    if (!have_slot)
        backend_pool_opened(up->ps);
    http_metrics_backend_conn(c, false);
    up->connect_started_us = metrics_clock_us();
    up->conn = conn;
    up->state = UP_CONNECTING;
    timerq_set(&c->worker->timers, &up->timer, clock_now_ms() + c->cfg->connect_timeout_ms);
}

int http_upstream_start(struct http_exchange *x)
{
    struct http_upstream *up = calloc(1, sizeof(*up));

    if (up == NULL)
        return -1;
    up->x = x;
    x->up = up;
    up->group = route_for_request(x->c->cfg->routes, x->c->cfg->num_routes, x->req.authority,
                                  x->req.target, x->c->cfg->backend);
    up->timer.fire = on_timer;
    up->waiter.ready = on_slot;
    enum http_reason unpicked = choose_server(up);
    if (unpicked != HTTP_REASON_NONE && unpicked != HTTP_REASON_OUT_OF_MEMORY) {
        fail(up, unpicked);
        return 0;
    }
    up->out = evbuffer_new();
    if (up->ps == NULL || up->out == NULL || http_request_write_head(x, up->out) != 0) {
        up->state = UP_QUEUED; /* nothing to undo but the allocations */
        up->waiter.queued = false;
        teardown(up, true);
        return -1;
    }
    up->sent_early =
        x->c->handshake_completing && http_fields_find(&x->req.fields, "early-data", 0) < 0;
    up->chunked = x->req.has_body && x->req.content_length < 0 && !x->req.websocket;
    up->end_queued = !x->req.has_body;
    h1_response_init(&up->resp, x);
    acquire(up);
    return 0;
}

static bool is_idempotent(const char *method)
{
    static const char *const idempotent[] = {"GET", "HEAD",   "OPTIONS",
                                             "PUT", "DELETE", "TRACE"};
    for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
        if (strcmp(method, idempotent[i]) == 0)
            return true;
    return false;
}

/* retry_is_safe says whether a request that failed with no response byte
 * may be sent again (see the top of the file). */
static bool retry_is_safe(const struct http_upstream *up)
{
    if (up->retried || up->resp_started || up->body_not_held)
        return false;
    return is_idempotent(up->x->req.method);
}

/* could_retry says, before a pooled connection is taken, whether the
 * request could be sent again (retry_is_safe) should that connection turn
 * out closed: an idempotent method, no retry yet, and a body that will be
 * held whole (sent_body: a known length of up to HTTP_BODY_BUF_MAX). */
static bool could_retry(const struct http_upstream *up)
{
    const struct http_request *req = &up->x->req;
    bool body_held = !req->has_body ||
                     (req->content_length >= 0 && req->content_length <= HTTP_BODY_BUF_MAX);
    return !up->retried && body_held && is_idempotent(req->method);
}

/* rewind_request makes the request ready to be written whole again: its
 * head, and the body written so far (sent_body) ahead of what is still to
 * come. Only one retry is made. -1 when out of memory. */
static int rewind_request(struct http_upstream *up)
{
    struct http_exchange *x = up->x;

    up->retried = true;
    up->resp_started = false; /* only a swallowed 425 had set it */
    evbuffer_drain(up->out, evbuffer_get_length(up->out));
    if (http_request_write_head(x, up->out) != 0)
        return -1;
    if (up->sent_body != NULL) {
        if (x->req_body == NULL)
            x->req_body = up->sent_body;
        else if (evbuffer_prepend_buffer(x->req_body, up->sent_body) != 0)
            return -1;
        if (x->req_body != up->sent_body)
            evbuffer_free(up->sent_body);
        up->sent_body = NULL;
    }
    up->body_written = 0;
    up->end_queued = !x->req.has_body;
    up->req_sent = up->write_failed = false;
    h1_response_init(&up->resp, x);
    return 0;
}

/* retry sends the request again on a new connection to the same server,
 * in the slot of the one that failed. */
static void retry(struct http_upstream *up)
{
    /* From here retry owns the slot it keeps: on failure it gives it back
     * itself, so teardown must not see UP_TOO_EARLY and give it again. */
    up->state = UP_CONNECTING;
    backend_conn_free(up->conn, !up->req_sent);
    up->conn = NULL;
    if (rewind_request(up) != 0) {
        backend_pool_closed(up->ps); /* the slot kept for the retry */
        fail(up, HTTP_REASON_OUT_OF_MEMORY);
        return;
    }
    open_new(up, true);
}

/* resend_elsewhere sends the request to the next server of the group after
 * a new connection failed with no response byte (|error|): the server went
 * away with the request unread (its listener closed while the connection
 * sat in its accept queue) or crashed. Like a failed connect, it counts
 * against the server's passive health. */
static void resend_elsewhere(struct http_upstream *up, const char *error)
{
    char failed[NET_ADDR_TEXT_MAX], next[NET_ADDR_TEXT_MAX];

    net_addr_format(up->x->server, failed, sizeof(failed));
    backend_server_connect_failed(up->server, up->group, error);
    /* No connection and no slot from here: teardown gives back nothing. */
    up->state = UP_CONNECTING;
    backend_conn_free(up->conn, true);
    up->conn = NULL;
    backend_pool_closed(up->ps);
    enum http_reason unpicked =
        rewind_request(up) != 0 ? HTTP_REASON_OUT_OF_MEMORY : next_server(up, true);
    bool resent = unpicked == HTTP_REASON_NONE;
    log_backend_line(up, "backend_reset", failed, error,
                     resent ? net_addr_format(up->x->server, next, sizeof(next)) : NULL);
    if (resent)
        acquire_afresh(up);
    else
        fail(up, unpicked == HTTP_REASON_OUT_OF_MEMORY ? unpicked : HTTP_REASON_BACKEND_RESET);
}

/* send_again sends a request that failed with no response byte again
 * (retry_is_safe): to the same server after the keep-alive race on a
 * reused connection, else to the next server. */
static void send_again(struct http_upstream *up, const char *error)
{
    if (up->x->reused)
        retry(up);
    else
        resend_elsewhere(up, error);
}

/* ---- the request --------------------------------------------------------------- */

/* keep_copy keeps a copy of the next |n| bytes of |body| for a retry (see
 * sent_body), while that is possible and useful. */
static void keep_copy(struct http_upstream *up, struct evbuffer *body, size_t n)
{
    if (up->body_not_held)
        return;
    /* A request that will never be sent again (a POST) keeps no copy:
     * the first call marks it and the others return at once. */
    if (up->retried || up->resp_started || !is_idempotent(up->x->req.method) ||
        (up->sent_body != NULL ? evbuffer_get_length(up->sent_body) : 0) + n >
            HTTP_BODY_BUF_MAX) {
        up->body_not_held = true;
        if (up->sent_body != NULL) {
            evbuffer_free(up->sent_body);
            up->sent_body = NULL;
        }
        return;
    }
    struct evbuffer_iovec vec[8];
    int num = evbuffer_peek(body, (ev_ssize_t)n, NULL, vec, 8);
    bool ok = num > 0 && num <= 8 &&
              (up->sent_body != NULL || (up->sent_body = evbuffer_new()) != NULL);
    for (int i = 0; ok && i < num && n > 0; i++) {
        size_t len = vec[i].iov_len < n ? vec[i].iov_len : n;
        ok = evbuffer_add(up->sent_body, vec[i].iov_base, len) == 0;
        n -= len;
    }
    if (!ok) {
        up->body_not_held = true;
        if (up->sent_body != NULL) {
            evbuffer_free(up->sent_body);
            up->sent_body = NULL;
        }
    }
}

/* move_body moves body bytes from x->req_body to |out| (framed when
 * chunked), up to HTTP_BODY_BUF_MAX queued, and the request's end once the
 * body is complete. false when out of memory: |out| then lacks a piece, and
 * must never reach the server (a chunk without its framing would have it
 * read body bytes as the next request). */
static bool move_body(struct http_upstream *up)
{
    struct http_exchange *x = up->x;
    size_t moved = 0;
    bool failed = false;

    if (up->end_queued)
        return true;
    size_t avail = x->req_body != NULL ? evbuffer_get_length(x->req_body) : 0;
    while (avail > 0 && evbuffer_get_length(up->out) < HTTP_BODY_BUF_MAX) {
        size_t n = HTTP_BODY_BUF_MAX - evbuffer_get_length(up->out);
        if (n > avail)
            n = avail;
        if (up->chunked)
            failed |= evbuffer_add_printf(up->out, "%zx\r\n", n) < 0;
        keep_copy(up, x->req_body, n);
        failed |= !http_move_bytes(x->req_body, up->out, n);
        if (up->chunked)
            failed |= evbuffer_add(up->out, "\r\n", 2) != 0;
        avail -= n;
        moved += n;
    }
    if (x->req_body != NULL && avail == 0) {
        evbuffer_free(x->req_body);
        x->req_body = NULL;
    }
    if (x->req_done && x->req_body == NULL) {
        if (up->chunked)
            failed |= evbuffer_add(up->out, "0\r\n\r\n", 5) != 0;
        up->end_queued = true;
    }
    up->body_written += moved;
    /* Bytes sent again after a retry were reported the first time. */
    if (up->body_written > up->body_reported) {
        size_t news = (size_t)(up->body_written - up->body_reported);
        up->body_reported = up->body_written;
        x->front->request_body_taken(x, news);
    }
    return !failed;
}

/* write_request writes what it can; false when the upstream has failed. */
static bool write_request(struct http_upstream *up)
{
    if (up->write_failed || up->req_sent)
        return true;
    for (int rounds = 0; rounds < UPSTREAM_READ_ROUNDS; rounds++) {
        if (!move_body(up)) {
            fail(up, HTTP_REASON_OUT_OF_MEMORY);
            return false;
        }
        size_t before = evbuffer_get_length(up->out);
        if (before == 0)
            break;
        enum backend_io io = backend_conn_send_buffer(up->conn, up->out);
        if (io == BACKEND_IO_WAIT)
            return true;
        if (io == BACKEND_IO_ERROR) {
            int err = errno;
            if (up->resp_started) {
                /* An early answer (a 413 to an upload, say) may still be
                 * on its way: read it; the connection is not reused. */
                up->write_failed = true;
                return true;
            }
            if (retry_is_safe(up)) {
                send_again(up, strerror(err));
                return false;
            }
            log_backend_problem(up, "backend_write_failed", strerror(err));
            fail(up, HTTP_REASON_BACKEND_RESET);
            return false;
        }
        if (evbuffer_get_length(up->out) < before)
            up->last_progress_ms = clock_now_ms();
        if (up->conn->write_blocked)
            return true;
    }
    if (up->end_queued && evbuffer_get_length(up->out) == 0 && !up->req_sent) {
        up->req_sent = true;
        up->last_progress_ms = clock_now_ms();
    }
    return true;
}

void http_upstream_request_body(struct http_exchange *x)
{
    if (x->up != NULL && x->up->state == UP_OPEN)
        pump(x->up);
}

/* ---- the response ------------------------------------------------------------- */

/* send_again_after_handshake drops the connection that answered 425 and
 * sends the request again once the client's handshake is complete (at
 * once if it already is). */
static void send_again_after_handshake(struct http_upstream *up)
{
    up->resp.reusable = false;
    if (!up->x->c->handshake_completing) {
        retry(up);
        return;
    }
    /* The connection goes, its slot stays: the request goes out again. */
    backend_conn_free(up->conn, false);
    up->conn = NULL;
    up->state = UP_TOO_EARLY;
    /* The handshake's own deadline bounds the wait; this is a backstop. */
    timerq_set(&worker_of(up)->timers, &up->timer,
               clock_now_ms() + up->x->c->cfg->handshake_timeout_ms);
}

void http_upstream_handshake_done(struct http_exchange *x)
{
    struct http_upstream *up = x->up;
    if (up != NULL && up->state == UP_TOO_EARLY) {
        timerq_cancel(&worker_of(up)->timers, &up->timer);
        retry(up);
    }
}

/* parse feeds |len| bytes to the response's parser; false when the
 * upstream is gone or stopped (upgraded, or sending the request again). */
static bool parse(struct http_upstream *up, const uint8_t *buf, size_t len)
{
    struct http_exchange *x = up->x;
    const uint8_t *rest = NULL;

    /* A 425 is ours to retry only for a request we sent early, once, and
     * held whole (a body's copy is dropped at the first response byte). */
    up->resp.may_retry_425 = up->sent_early && !up->too_early && !up->body_not_held;
    switch (h1_response_parse(&up->resp, buf, len, &rest)) {
    case H1_RESP_OK:
        return true;
    case H1_RESP_TOO_EARLY:
        up->too_early = true;
        send_again_after_handshake(up);
        return false;
    case H1_RESP_UPGRADED: {
        size_t rest_len = (size_t)(buf + len - rest);
        if (rest_len > 0 && ((up->leftover = evbuffer_new()) == NULL ||
                             evbuffer_add(up->leftover, rest, rest_len) != 0)) {
            /* The first bytes of the new protocol cannot be lost. */
            fail(up, HTTP_REASON_OUT_OF_MEMORY);
            return false;
        }
        up->upgraded = true;
        timerq_cancel(&worker_of(up)->timers, &up->timer);
        x->front->upgraded(x);
        return false;
    }
    case H1_RESP_ERROR:
        break;
    }
    if (up->resp.out_of_memory) {
        /* Not the backend's fault: no backend_invalid_response line. */
        fail(up, HTTP_REASON_OUT_OF_MEMORY);
        return false;
    }
    log_backend_problem(up, "backend_invalid_response", h1_response_error(&up->resp));
    fail(up, HTTP_REASON_BACKEND_INVALID_RESPONSE);
    return false;
}

/* on_eof handles the server's end of the connection (|err| 0) or a socket
 * error. */
static void on_eof(struct http_upstream *up, int err)
{
    struct http_exchange *x = up->x;

    up->resp.reusable = false;
    if (!up->resp_started) {
        if (retry_is_safe(up)) {
            send_again(up, err != 0 ? strerror(err) : "closed before any response");
            return;
        }
        log_backend_problem(up, "backend_reset",
                            err != 0 ? strerror(err) : "closed before any response");
        fail(up, HTTP_REASON_BACKEND_RESET);
        return;
    }
    if (err == 0 && h1_response_finish(&up->resp)) {
        /* The body ran until EOF. */
        timerq_cancel(&worker_of(up)->timers, &up->timer);
        x->front->response_data(x);
        return;
    }
    if (x->resp_done)
        return;
    log_backend_problem(up, "backend_reset",
                        err != 0 ? strerror(err) : "closed in the middle of the response");
    fail(up, x->resp_final ? HTTP_REASON_BACKEND_RESET : HTTP_REASON_BACKEND_INVALID_RESPONSE);
}

static bool client_is_behind(const struct http_exchange *x)
{
    return x->resp_body != NULL && evbuffer_get_length(x->resp_body) >= HTTP_BODY_BUF_MAX;
}

/* read_response reads and parses what the server sent; false when the
 * upstream is gone or stopped. */
static bool read_response(struct http_upstream *up)
{
    struct http_exchange *x = up->x;

    for (int rounds = 0; rounds < UPSTREAM_READ_ROUNDS; rounds++) {
        if (x->resp_done || up->upgraded)
            return true;
        if (client_is_behind(x))
            return true; /* wait for the client */
        size_t n = 0;
        enum backend_io io = backend_conn_recv(up->conn, read_buf, sizeof(read_buf), &n);
        if (io == BACKEND_IO_WAIT)
            return true;
        if (io == BACKEND_IO_EOF || io == BACKEND_IO_ERROR) {
            /* The upstream failed, is retrying, or has the whole
             * response: there is nothing more to do in this turn. */
            on_eof(up, io == BACKEND_IO_EOF ? 0 : errno);
            return false;
        }
        if (!up->resp_started && up->sent_body != NULL) {
            /* The server answers: there will be no retry. */
            evbuffer_free(up->sent_body);
            up->sent_body = NULL;
            up->body_not_held = true;
        }
        up->resp_started = true;
        /* Bytes of the head are no progress: timeouts.backend_response
         * bounds the wait for the whole head, or a server trickling it a
         * byte at a time would hold the request for ever. Once the head
         * is in, each read is (a backend silent mid-response). */
        bool head_done = x->resp_final;
        if (head_done)
            up->last_progress_ms = clock_now_ms();
        if (!parse(up, read_buf, n))
            return false;
        if (!head_done && x->resp_final)
            up->last_progress_ms = clock_now_ms();
    }
    return true;
}

/* arm_deadline sets timeouts.backend_response where the exchange waits for
 * the server: for the response head after the request, for more of the
 * response, or for it to take more of the request. */
static void arm_deadline(struct http_upstream *up)
{
    struct http_exchange *x = up->x;
    bool waiting_client = client_is_behind(x);
    bool waiting_server = !x->resp_done && !waiting_client &&
                          (up->req_sent || up->resp_started || up->conn->write_blocked);
    if (waiting_server)
        timerq_set(&worker_of(up)->timers, &up->timer,
                   up->last_progress_ms + x->c->cfg->backend_response_timeout_ms);
    else
        timerq_cancel(&worker_of(up)->timers, &up->timer);
}

static void pump(struct http_upstream *up)
{
    if (!write_request(up) || !read_response(up))
        return;
    if (up->x->resp_done) {
        timerq_cancel(&worker_of(up)->timers, &up->timer);
        return; /* the front releases it when the client has it all */
    }
    arm_deadline(up);
    /* A response the client is behind on is not read: nor is the socket
     * watched for it, which would only report the same bytes again. */
    backend_conn_watch(up->conn, client_is_behind(up->x) ? 0 : EV_READ);
}

/* put_proxy_header puts the PROXY header (backend.proxy_protocol) ahead of
 * the request in |out| once a new connection is up: nothing was written on
 * it yet, so the header goes out first, and once. It is not laid before the
 * connect succeeds: a connect that fails goes on to another server, or to
 * the client's own idle connection there, which carries its header
 * already. 0, or -1 when out of memory. */
static int put_proxy_header(struct http_upstream *up)
{
    uint8_t header[PROXY_HEADER_OUT_MAX];

    if (up->group->proxy_protocol == 0)
        return 0;
    size_t len = proxy_header_for_backend(up->x->c, header, sizeof(header));
    return len != 0 && evbuffer_prepend(up->out, header, len) == 0 ? 0 : -1;
}

static void on_conn_event(struct backend_conn *conn, short what, void *arg)
{
    struct http_upstream *up = arg;

    if (up->state == UP_CONNECTING) {
        int result = backend_conn_connect_result(conn);
        if (result == EINPROGRESS) {
            backend_conn_watch(conn, 0);
            return;
        }
        timerq_cancel(&worker_of(up)->timers, &up->timer);
        if (result != 0) {
            drop_conn(up, true); /* and its slot */
            connect_failed(up, result);
            return;
        }
        backend_server_connected(up->server);
        if (put_proxy_header(up) != 0) {
            fail(up, HTTP_REASON_OUT_OF_MEMORY); /* closes it, and gives its slot back */
            return;
        }
        up->state = UP_OPEN;
        up->last_progress_ms = clock_now_ms();
        metrics_backend_connected(up->x->c->listener->metrics,
                                  metrics_clock_us() - up->connect_started_us);
    }
    pump(up);
}

void http_upstream_response_taken(struct http_exchange *x)
{
    struct http_upstream *up = x->up;
    if (up != NULL && up->state == UP_OPEN && !x->resp_done && !up->upgraded)
        pump(up);
}

static void on_timer(struct timerq_entry *timer)
{
    struct http_upstream *up =
        (struct http_upstream *)((char *)timer - offsetof(struct http_upstream, timer));

    switch (up->state) {
    case UP_QUEUED:
        if (up->waiter.woken) {
            acquire(up); /* a slot came free */
            return;
        }
        log_backend_problem(up, "backend_busy", "no connection slot within timeouts.queue");
        fail(up, HTTP_REASON_BACKEND_BUSY);
        return;
    case UP_CONNECTING:
        drop_conn(up, true); /* and its slot */
        connect_failed(up, 0);
        return;
    case UP_TOO_EARLY:
        log_backend_problem(up, "backend_timeout",
                            "425 Too Early, and the handshake never completed");
        fail(up, HTTP_REASON_BACKEND_TIMEOUT);
        return;
    case UP_OPEN:
        log_backend_problem(up, "backend_timeout",
                            "no response within timeouts.backend_response");
        fail(up, HTTP_REASON_BACKEND_TIMEOUT);
        return;
    }
}

struct backend_conn *http_upstream_take(struct http_exchange *x, struct evbuffer **leftover,
                                        struct backend_server **server)
{
    struct http_upstream *up = x->up;
    struct backend_conn *conn = up->conn;

    /* The tunnel is a connection to the server as long as it lasts. */
    *server = NULL;
    if (conn != NULL) {
        *server = up->server;
        up->server = NULL;
    }

    if (up->leftover != NULL && evbuffer_get_length(up->leftover) > 0) {
        /* Handed over, not copied: the bytes cannot be lost to an
         * allocation (evbuffer_add_buffer moves chains). */
        if (*leftover == NULL) {
            *leftover = up->leftover;
            up->leftover = NULL;
        } else {
            evbuffer_add_buffer(*leftover, up->leftover);
        }
    }
    up->conn = NULL;
    /* The tunnel is no longer a pooled connection: its slot is free. */
    backend_pool_closed(up->ps);
    teardown(up, false);
    return conn;
}
