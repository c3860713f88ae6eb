/* mode_redirect: a `mode: redirect` listener (plain HTTP/1.1, no TLS, no
 * backend) answers every request with a redirect to the same host and
 * target over https:// (redirect.status, 308 by default; redirect.port when
 * the HTTPS side is not on 443). This is what port 80 is for at an edge.
 *
 * Requests are parsed by h1_request (llhttp, strict) with the limits of
 * http mode (http.max_request_header_bytes, HTTP_MAX_FIELDS) and answered
 * one at a time, in order; each is one access log line ("request",
 * http/1.1) through an exchange (http.h) that never has an upstream. A
 * connection goes through these steps, over and over:
 *
 *   idle     no byte of the next request yet: timeouts.idle (quiet close);
 *            at connection start timeouts.request_header.
 *   head     the head is being parsed: timeouts.request_header from its
 *            first byte (408), too large (431), malformed (400).
 *   answer   the head is complete: the redirect (or a 400 when there is no
 *            usable Host) is written; the connection stays open for the
 *            next request unless the request had a body (it is not read:
 *            the client sends it again to the https:// URL), asked for a
 *            close, or was HTTP/1.0 without keep-alive.
 *
 * Bytes of a next request (pipelining) wait unparsed in |in| until the
 * answer is written, and the client is not read meanwhile: at most
 * H1_IO_READ_LEN bytes wait. The answer is never larger than the head it
 * answers plus a few hundred bytes.
 *
 * Ownership. The mode state (struct redirect) belongs to its conn from start
 * until free; it owns the parser, the input and output buffers and the
 * current exchange. */
#include "mode.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "clock.h"
#include "conn.h"
#include "h1_io.h"
#include "h1_request.h"
#include "http.h"
#include "metrics.h"
#include "plain_http.h"

/* Rounds of work per turn before yielding to other connections. */
#define REDIRECT_ROUNDS 16
/* Room for tlsterm's own short error bodies. */
#define ERROR_BODY_MAX 128

struct redirect {
    /* The parser; its |x| is the current exchange (NULL between requests). */
    struct h1_request rq;
    struct h1_io io; /* unparsed client bytes, answer bytes not yet written */

    uint64_t head_deadline_ms; /* timeouts.request_header; 0: not in a head */
    bool head_bytes_seen;      /* a byte of the next request arrived */

    bool answered;    /* the answer to x is in |out| */
    bool close_after; /* the connection ends after this answer */
};

static struct redirect *redirect_of(const struct conn *c) { return c->mode_state; }

/* ---- the exchange ------------------------------------------------------------------- */

/* begin_exchange makes the exchange of a request that begins; it has no
 * front ops, as it never gets an upstream. NULL when out of memory. */
static struct http_exchange *begin_exchange(void *conn)
{
    struct conn *c = conn;
    struct redirect *r = redirect_of(c);

    if (r->rq.x == NULL)
        r->rq.x = http_exchange_new(c, NULL, r);
    return r->rq.x;
}

/* exchange_end logs and frees the current exchange. */
static void exchange_end(struct redirect *r)
{
    if (r->rq.x == NULL)
        return;
    http_exchange_log(r->rq.x, "http/1.1");
    http_exchange_free(r->rq.x);
    r->rq.x = NULL;
    r->answered = false;
}

/* client_gone ends the connection after the client left or failed
 * mid-request: the request is logged as client_aborted (or out_of_memory,
 * tlsterm's failure, even once answered: the answer never went out). */
static int client_gone(struct conn *c, enum end_reason reason,
                       const struct tls_io_failure *failure)
{
    struct redirect *r = redirect_of(c);

    if (r->rq.x != NULL && r->rq.x->reason == HTTP_REASON_NONE) {
        if (reason == END_OUT_OF_MEMORY)
            r->rq.x->reason = HTTP_REASON_OUT_OF_MEMORY;
        else if (!r->answered)
            r->rq.x->reason = HTTP_REASON_CLIENT_ABORTED;
    }
    exchange_end(r);
    return conn_close(c, reason, failure);
}

/* ---- answers ----------------------------------------------------------------------- */

static bool is_head_request(const struct http_exchange *x)
{
    return x->req.method != NULL && strcmp(x->req.method, "HEAD") == 0;
}

/* add_head writes the status line and the fields every answer has. */
static void add_head(struct redirect *r, int status, size_t body_len)
{
    h1_io_printf(&r->io,
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\n",
                 status, http_status_text(status), body_len);
}

/* add_connection ends a head: Connection, then the blank line. */
static void add_connection(struct redirect *r)
{
    if (r->close_after)
        h1_io_add(&r->io, "Connection: close\r\n", 19);
    else if (r->rq.x->req.http_minor == 0)
        h1_io_add(&r->io, "Connection: keep-alive\r\n", 24);
    h1_io_add(&r->io, "\r\n", 2);
}

/* answer_error answers the current request (or the one whose head could
 * not be read) with tlsterm's own response for |reason|, then closes: what
 * follows on the connection cannot be trusted to start a request. */
static int answer_error(struct conn *c, enum http_reason reason)
{
    struct redirect *r = redirect_of(c);
    struct http_exchange *x = begin_exchange(c);
    char body[ERROR_BODY_MAX];

    if (x == NULL)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    if (x->req.target == NULL && r->rq.url_len > 0)
        x->req.target = strdup(r->rq.url); /* for the log line; NULL is fine */
    x->reason = reason;
    r->rq.state = H1_REQ_REFUSED;
    r->close_after = true;
    h1_io_drop(&r->io);
    size_t body_len = http_error_body(http_reason_status(reason), body, sizeof(body));
    add_head(r, http_reason_status(reason), body_len);
    add_connection(r);
    if (!is_head_request(x)) {
        h1_io_add(&r->io, body, body_len);
        x->resp_bytes = body_len;
    }
    r->answered = true;
    r->head_deadline_ms = 0;
    return CONN_OK;
}

/* answer_redirect answers a complete head with the redirect to its host
 * and target over https://, or with a 400 when it has no usable Host. */
static int answer_redirect(struct conn *c)
{
    struct redirect *r = redirect_of(c);
    struct http_exchange *x = r->rq.x;
    const struct cfg_redirect *cfg = &c->cfg->redirect;
    const char *authority = x->req.authority;
    size_t name_len;

    if (authority == NULL || !plain_http_valid_host(authority, strlen(authority), &name_len))
        return answer_error(c, HTTP_REASON_BAD_REQUEST);
    /* A body is not read: the client sends it again to the new URL (308
     * and 307 say so), and what it sends here is dropped by the close. A
     * WebSocket request leaves the parser at its upgrade. */
    if (x->req.has_body || x->req.close || x->req.websocket)
        r->close_after = true;
    if (r->close_after) {
        r->rq.state = H1_REQ_REFUSED;
        h1_io_drop(&r->io);
    }

    /* "OPTIONS *" asks about the server: its redirect names the root. */
    const char *target = strcmp(x->req.target, "*") == 0 ? "/" : x->req.target;
    struct evbuffer *location = evbuffer_new();
    if (location == NULL)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    bool failed = evbuffer_add_printf(location, "https://%.*s", (int)name_len, authority) < 0;
    if (cfg->port != 443)
        failed |= evbuffer_add_printf(location, ":%u", cfg->port) < 0;
    failed |= evbuffer_add(location, target, strlen(target)) != 0;
    size_t location_len = evbuffer_get_length(location);
    const char *location_text = (const char *)evbuffer_pullup(location, -1);
    if (failed || location_text == NULL) {
        evbuffer_free(location);
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    }
    static const char body_start[] = "Redirecting to ";
    size_t body_len = sizeof(body_start) - 1 + location_len + 1;

    x->resp.status = cfg->status;
    x->resp_final = x->resp_done = true;
    add_head(r, cfg->status, body_len);
    h1_io_add(&r->io, "Location: ", 10);
    h1_io_add(&r->io, location_text, location_len);
    h1_io_add(&r->io, "\r\n", 2);
    add_connection(r);
    if (!is_head_request(x)) {
        h1_io_add(&r->io, body_start, sizeof(body_start) - 1);
        h1_io_add_buffer(&r->io, location);
        h1_io_add(&r->io, "\n", 1);
        x->resp_bytes = body_len;
    }
    evbuffer_free(location);
    r->answered = true;
    return CONN_OK;
}

/* ---- the client side ----------------------------------------------------------------- */

static int write_client(struct conn *c, bool *progress)
{
    struct tls_io_failure failure;

    switch (h1_io_write(c, &redirect_of(c)->io, &failure)) {
    case H1_IO_IDLE:
        break;
    case H1_IO_MOVED:
        *progress = true;
        break;
    case H1_IO_FAILED:
        return client_gone(c, failure.reason, &failure);
    }
    return CONN_OK;
}

static int read_client(struct conn *c, bool *progress)
{
    struct redirect *r = redirect_of(c);
    struct tls_io_failure failure;

    if (r->io.in != NULL || r->answered || r->rq.state == H1_REQ_REFUSED)
        return CONN_OK;
    switch (h1_io_read(c, &r->io, &failure)) {
    case H1_IO_IDLE:
        break;
    case H1_IO_MOVED:
        *progress = true;
        if (!r->io.eof && r->rq.x == NULL) {
            r->head_bytes_seen = true;
            if (r->head_deadline_ms == 0)
                r->head_deadline_ms =
                    r->io.last_activity_ms + c->cfg->request_header_timeout_ms;
        }
        break;
    case H1_IO_FAILED:
        return client_gone(c, failure.reason, &failure);
    }
    return CONN_OK;
}

/* parse feeds pending client bytes to llhttp until a head is complete (and
 * answered), the parser fails, or it has taken them all. */
static int parse(struct conn *c, bool *progress)
{
    struct redirect *r = redirect_of(c);
    size_t len = r->io.in_end - r->io.in_start, used = 0;

    if (len == 0 || r->answered || r->rq.state == H1_REQ_REFUSED)
        return CONN_OK;
    *progress = true;
    enum h1_parse_result result =
        h1_request_parse(&r->rq, (const char *)r->io.in + r->io.in_start, len, &used);
    if (result == H1_PARSE_ERROR)
        return answer_error(c, r->rq.error);
    h1_io_consume(&r->io, used);
    if (result != H1_PARSE_HEAD)
        return CONN_OK;
    r->head_deadline_ms = 0;
    if (answer_redirect(c) != CONN_OK)
        return CONN_CLOSED;
    /* A request without a body ends at its head: the parser takes the
     * message's end without bytes, and stops before the next request. */
    if (r->rq.state != H1_REQ_REFUSED &&
        h1_request_parse(&r->rq, "", 0, &used) == H1_PARSE_ERROR)
        return answer_error(c, r->rq.error);
    return CONN_OK;
}

/* finish ends an exchange whose answer is written, and readies the
 * connection for the next request or closes it. */
static int finish(struct conn *c)
{
    struct redirect *r = redirect_of(c);

    exchange_end(r);
    if (r->close_after || r->rq.state != H1_REQ_DONE)
        return conn_linger(c, END_DONE);
    r->rq.state = H1_REQ_IDLE;
    r->io.last_activity_ms = clock_now_ms();
    r->head_bytes_seen = r->io.in != NULL;
    r->head_deadline_ms =
        r->io.in != NULL ? r->io.last_activity_ms + c->cfg->request_header_timeout_ms : 0;
    return CONN_OK;
}

/* check_eof ends the connection once the client's EOF leaves nothing to
 * do: quietly between requests, as an abort in the middle of a head. */
static int check_eof(struct conn *c)
{
    struct redirect *r = redirect_of(c);

    if (!r->io.eof || r->io.in != NULL)
        return CONN_OK;
    if (r->rq.x == NULL)
        return conn_linger(c, END_DONE);
    if (!r->answered) {
        struct tls_io_failure failure = {.reason = END_CLIENT_RESET,
                                         .detail = "EOF_MID_REQUEST"};
        return client_gone(c, END_CLIENT_RESET, &failure);
    }
    r->close_after = true; /* the answer still goes out */
    return CONN_OK;
}

/* step does one round of work; |*progress| says whether anything moved. */
static int step(struct conn *c, bool *progress)
{
    struct redirect *r = redirect_of(c);

    if (write_client(c, progress) != CONN_OK)
        return CONN_CLOSED;
    if (r->answered && evbuffer_get_length(r->io.out) == 0) {
        *progress = true;
        if (finish(c) != CONN_OK)
            return CONN_CLOSED;
    }
    if (parse(c, progress) != CONN_OK || read_client(c, progress) != CONN_OK)
        return CONN_CLOSED;
    return check_eof(c);
}

/* arm_deadline sets the conn's deadline: the head's while one is awaited,
 * else the idle timeout (between requests, or while the client does not
 * take the answer). */
static void arm_deadline(struct conn *c)
{
    struct redirect *r = redirect_of(c);

    conn_set_deadline(c, r->head_deadline_ms != 0
                             ? r->head_deadline_ms
                             : r->io.last_activity_ms + c->cfg->idle_timeout_ms);
}

/* run does all there is to do until the client must be waited for. */
static int run(struct conn *c)
{
    bool more = true;

    for (int round = 0; round < REDIRECT_ROUNDS; round++) {
        bool progress = false;
        if (step(c, &progress) != CONN_OK)
            return CONN_CLOSED;
        if (!progress) {
            more = false;
            break;
        }
    }
    conn_watch_client(c);
    arm_deadline(c);
    if (more)
        conn_resume_later(c);
    return CONN_OK;
}

/* ---- mode ops ------------------------------------------------------------------------ */

static int redirect_start(struct conn *c)
{
    struct redirect *r = calloc(1, sizeof(*r));
    if (r == NULL || h1_io_init(&r->io) != 0) {
        if (r != NULL)
            h1_io_cleanup(&r->io);
        free(r);
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    }
    c->mode_state = r;
    h1_request_init(&r->rq, c->cfg->http.max_request_header_bytes, begin_exchange, c);
    r->io.last_activity_ms = clock_now_ms();
    /* A connection that sends nothing is closed at timeouts.request_header. */
    r->head_deadline_ms = r->io.last_activity_ms + c->cfg->request_header_timeout_ms;
    /* The request has usually not arrived yet: wait for it. */
    c->client.read_wait = TRANSPORT_WAIT_READ;
    return run(c);
}

static int redirect_on_event(struct conn *c) { return run(c); }

static int redirect_on_deadline(struct conn *c)
{
    struct redirect *r = redirect_of(c);
    uint64_t now = clock_now_ms();

    if (r->head_deadline_ms != 0) {
        if (now < r->head_deadline_ms) {
            arm_deadline(c);
            return CONN_OK;
        }
        if (!r->head_bytes_seen && r->rq.x == NULL)
            return conn_linger(c, END_IDLE_TIMEOUT);
        if (answer_error(c, HTTP_REASON_HEADER_TIMEOUT) != CONN_OK)
            return CONN_CLOSED;
        return run(c);
    }
    if (now - r->io.last_activity_ms < c->cfg->idle_timeout_ms) {
        arm_deadline(c);
        return CONN_OK;
    }
    if (r->rq.x == NULL)
        return conn_linger(c, END_IDLE_TIMEOUT);
    return client_gone(c, END_IDLE_TIMEOUT, NULL);
}

static int redirect_drain(struct conn *c)
{
    struct redirect *r = redirect_of(c);

    if (r->rq.x == NULL && r->io.in == NULL)
        return conn_linger(c, END_DONE);
    /* The answer in progress says Connection: close if its head is not out
     * yet; the connection ends after it either way. */
    r->close_after = true;
    return CONN_OK;
}

static const char *redirect_state_name(const struct conn *c)
{
    const struct redirect *r = redirect_of(c);

    if (r->answered)
        return "response";
    return r->rq.x == NULL && r->io.in == NULL ? "idle" : "request_head";
}

static void redirect_free(struct conn *c, bool abort)
{
    struct redirect *r = redirect_of(c);

    if (r == NULL)
        return;
    if (r->rq.x != NULL) {
        if (r->rq.x->reason == HTTP_REASON_NONE && !r->answered)
            r->rq.x->reason = HTTP_REASON_CLIENT_ABORTED;
        exchange_end(r);
    }
    h1_io_cleanup(&r->io);
    h1_request_cleanup(&r->rq);
    free(r);
    c->mode_state = NULL;
}

const struct mode_ops mode_redirect = {
    .name = "redirect",
    .start = redirect_start,
    .on_client = redirect_on_event,
    .on_resume = redirect_on_event,
    .on_deadline = redirect_on_deadline,
    .drain = redirect_drain,
    .state_name = redirect_state_name,
    .free = redirect_free,
};
