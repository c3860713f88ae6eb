/* mode_h1: HTTP/1.1 toward the client (http mode, ALPN http/1.1 or none).
 *
 * Requests are parsed with llhttp in strict mode and answered one at a
 * time, in order: each becomes an exchange (http.h) whose upstream talks to
 * the backend. A connection goes through these steps, over and over:
 *
 *   idle       no byte of the next request yet: timeouts.idle (quiet
 *              close); at connection start timeouts.request_header.
 *   head       the head is being parsed: timeouts.request_header from its
 *              first byte (408), http.max_request_header_bytes or
 *              HTTP_MAX_FIELDS fields (431), malformed (400).
 *   exchange   the head is complete: the upstream starts, the body streams
 *              through x->req_body (the client is not read while it holds
 *              HTTP_BODY_BUF_MAX bytes), and the response is written as it
 *              comes, re-framed for this client (Content-Length, chunked,
 *              or until close for HTTP/1.0).
 *
 * The parser pauses after each head (to start the upstream before body
 * bytes arrive) and after each request. Bytes of the next request
 * (pipelining) stay unparsed in |in| until the current response is written,
 * and the client is not read while any are held: at most H1_IO_READ_LEN bytes
 * wait. Responses tlsterm writes itself (http_error_body) always say
 * `Connection: close` when the request could not be read to its end.
 *
 * After a WebSocket request that the backend accepts with 101, the head is
 * passed on and the connection becomes a tcp-mode byte stream over the same
 * backend connection (mode_tcp_adopt).
 *
 * Ownership. The mode state (struct h1) belongs to its conn from start until
 * free; it owns the parser, the input and output buffers and the current
 * exchange, which owns its upstream. The upstream's calls (front ops) only
 * set flags here and queue a resume: all client I/O happens in h1_run. */
#include "mode.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "backend_conn.h"
#include "clock.h"
#include "conn.h"
#include "h1_io.h"
#include "h1_request.h"
#include "http.h"
#include "http_hsts.h"
#include "metrics.h"
#include "worker.h"

/* Plaintext per TLS write: one full record. */
#define RECORD_LEN 16384
/* Rounds of work per turn before yielding to other connections. */
#define H1_ROUNDS 16
/* Room for tlsterm's own short response bodies. */
#define ERROR_BODY_MAX 512

enum resp_state {
    RESP_WAIT, /* no final head written yet */
    RESP_BODY, /* the final head is out, body bytes follow */
    RESP_DONE, /* every byte of the response is in |out| */
};

/* enum framing is how the response body is delimited for this client. */
enum framing { FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_CLOSE };

struct h1 {
    /* The parser; its |x| is the current exchange (NULL between requests)
     * and its |state| where the request stands. */
    struct h1_request rq;
    enum resp_state resp;
    enum framing framing;

    struct h1_io io; /* unparsed client bytes, response bytes not yet written */

    uint64_t head_deadline_ms; /* timeouts.request_header; 0: not in a head */
    bool head_bytes_seen;      /* a byte of the next request arrived */

    /* Set by the front ops, handled in h1_run. */
    bool head_news; /* x->resp holds a head not yet written */
    bool failed;
    bool upgraded;

    bool released;    /* x's upstream was released */
    bool logged;      /* x's access log line was written */
    bool close_after; /* the connection ends after this response */
    bool draining;
    bool had_request; /* a request began on this connection */
    bool await_handshake; /* the request waits for the handshake (0-RTT) */
    bool handshake_news;  /* the handshake just completed */
};

static const struct http_front_ops h1_front_ops;

static struct h1 *h1_of(const struct conn *c) { return c->mode_state; }

static bool is_head_request(const struct http_exchange *x)
{
    return x->req.method != NULL && strcmp(x->req.method, "HEAD") == 0;
}

/* ---- the exchange ----------------------------------------------------------------- */

/* exchange_begin makes the exchange for the request that begins; NULL when
 * out of memory. */
static struct http_exchange *exchange_begin(struct conn *c)
{
    struct h1 *h = h1_of(c);

    if (h->rq.x == NULL) {
        h->rq.x = http_exchange_new(c, &h1_front_ops, h);
        if (h->rq.x == NULL)
            return NULL;
        h->released = h->logged = false;
        h->had_request = true;
    }
    return h->rq.x;
}

static struct http_exchange *begin_exchange(void *conn) { return exchange_begin(conn); }

static void exchange_release(struct h1 *h, bool abort)
{
    if (h->rq.x != NULL && h->rq.x->up != NULL && !h->released) {
        h->released = true;
        http_upstream_release(h->rq.x, abort);
    }
}

static void exchange_log(struct h1 *h)
{
    if (h->rq.x != NULL && !h->logged) {
        h->logged = true;
        http_exchange_log(h->rq.x, "http/1.1");
    }
}

/* exchange_end logs and frees the current exchange; a request cut short
 * resets its backend connection. */
static void exchange_end(struct h1 *h)
{
    if (h->rq.x == NULL)
        return;
    exchange_log(h);
    exchange_release(h, !h->rq.x->req_done);
    http_exchange_free(h->rq.x);
    h->rq.x = NULL;
    h->resp = RESP_WAIT;
    h->framing = FRAMING_NONE;
    h->head_news = h->failed = h->upgraded = h->await_handshake = false;
}

/* client_gone ends the connection after the client left or failed
 * mid-exchange (or tlsterm ran out of memory): the exchange is logged as
 * client_aborted (or out_of_memory) and its backend connection reset. */
static int client_gone(struct conn *c, enum end_reason reason,
                       const struct tls_io_failure *failure)
{
    struct h1 *h = h1_of(c);

    if (h->rq.x != NULL) {
        if (h->rq.x->reason == HTTP_REASON_NONE)
            h->rq.x->reason = reason == END_OUT_OF_MEMORY ? HTTP_REASON_OUT_OF_MEMORY
                                                          : HTTP_REASON_CLIENT_ABORTED;
        exchange_log(h);
        exchange_release(h, true);
    }
    return conn_close(c, reason, failure);
}

/* ---- response heads ---------------------------------------------------------------- */

/* The writers of heads append to h1_io's |out|, which remembers a failed
 * append: a connection whose answer lost a piece is failed before any more
 * of it is written (h1_io_write), never sent with a hole in it. */

static void add_status_line(struct h1_io *io, int status)
{
    char line[16] = "HTTP/1.1 ";
    size_t len = 9;
    if (status >= 100 && status <= 999) {
        line[len++] = (char)('0' + status / 100);
        line[len++] = (char)('0' + status / 10 % 10);
        line[len++] = (char)('0' + status % 10);
        line[len++] = ' ';
        h1_io_add(io, line, len);
        h1_io_add(io, http_status_text(status), strlen(http_status_text(status)));
        h1_io_add(io, "\r\n", 2);
    } else {
        h1_io_printf(io, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    }
}

/* add_fields writes |f| except Content-Length, which framing decides. The
 * lines are gathered on the stack first: one evbuffer_add per few fields,
 * not four per field. */
static void add_fields(struct h1_io *io, const struct http_fields *f)
{
    char buf[2048];
    size_t len = 0;
    for (uint32_t i = 0; i < f->num; i++) {
        size_t name_len = f->v[i].name_len, value_len = f->v[i].value_len;
        if (http_name_is(http_field_name(f, i), name_len, "content-length"))
            continue;
        if (len + name_len + value_len + 4 > sizeof(buf)) {
            h1_io_add(io, buf, len);
            len = 0;
        }
        if (name_len + value_len + 4 > sizeof(buf)) {
            h1_io_add(io, http_field_name(f, i), name_len);
            h1_io_add(io, ": ", 2);
            h1_io_add(io, http_field_value(f, i), value_len);
            h1_io_add(io, "\r\n", 2);
            continue;
        }
        memcpy(buf + len, http_field_name(f, i), name_len);
        memcpy(buf + len + name_len, ": ", 2);
        memcpy(buf + len + name_len + 2, http_field_value(f, i), value_len);
        memcpy(buf + len + name_len + 2 + value_len, "\r\n", 2);
        len += name_len + value_len + 4;
    }
    if (len > 0)
        h1_io_add(io, buf, len);
}

static void add_content_length(struct h1_io *io, int64_t length)
{
    char line[48];
    size_t at = sizeof(line) - 2;
    memcpy(line + at, "\r\n", 2);
    uint64_t v = (uint64_t)length;
    do {
        line[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    at -= 16;
    memcpy(line + at, "Content-Length: ", 16);
    h1_io_add(io, line + at, sizeof(line) - at);
}

/* add_connection ends a final head: Connection, then the blank line. */
static void add_connection(struct h1 *h)
{
    if (h->close_after)
        h1_io_add(&h->io, "Connection: close\r\n", 19);
    else if (h->rq.x->req.http_minor == 0)
        h1_io_add(&h->io, "Connection: keep-alive\r\n", 24);
    h1_io_add(&h->io, "\r\n", 2);
}

/* write_final_head writes x->resp's final head with the framing this
 * client gets. */
static void write_final_head(struct h1 *h)
{
    struct http_exchange *x = h->rq.x;
    int status = x->resp.status;
    bool no_body = is_head_request(x) || status == 204 || status == 304;

    /* A WebSocket request the backend refused left the parser paused on an
     * upgrade: nothing more can be parsed on this connection. */
    if (x->req.close || h->draining || x->req.websocket)
        h->close_after = true;
    add_status_line(&h->io, status);
    /* Out of memory only costs the response its HSTS field. */
    (void)http_hsts_add(x);
    add_fields(&h->io, &x->resp.fields);
    if (status == 204 || status == 304) {
        h->framing = FRAMING_NONE;
    } else if (x->resp.content_length >= 0) {
        add_content_length(&h->io, x->resp.content_length);
        h->framing = no_body ? FRAMING_NONE : FRAMING_LENGTH;
    } else if (no_body) {
        h->framing = FRAMING_NONE;
    } else if (x->req.http_minor >= 1) {
        h1_io_add(&h->io, "Transfer-Encoding: chunked\r\n", 28);
        h->framing = FRAMING_CHUNKED;
    } else {
        h->framing = FRAMING_CLOSE; /* HTTP/1.0: the end is the close */
        h->close_after = true;
    }
    add_connection(h);
    h->resp = RESP_BODY;
}

/* write_head writes the final head x->resp holds (1xx heads were copied
 * out by front_response_head). */
static void write_head(struct h1 *h)
{
    h->head_news = false;
    write_final_head(h);
}

/* cut_short_end is the connection's end reason when a response that
 * partly went out fails for |reason|: only a close can tell the client,
 * and the log says whose fault it was. */
static enum end_reason cut_short_end(enum http_reason reason)
{
    if (reason == HTTP_REASON_OUT_OF_MEMORY)
        return END_OUT_OF_MEMORY;
    if (reason >= HTTP_REASON_BACKEND_CONNECT_FAILED && reason <= HTTP_REASON_BACKEND_TIMEOUT)
        return END_BACKEND_RESET;
    return END_CLIENT_RESET;
}

/* respond_error answers the current request with tlsterm's own response
 * for |reason|, or, when a response head already went out, ends the
 * connection. The connection closes after it unless the request was read
 * to its end and nothing else asks for a close. */
static int respond_error(struct conn *c, enum http_reason reason)
{
    struct h1 *h = h1_of(c);
    struct http_exchange *x = exchange_begin(c);
    char body[ERROR_BODY_MAX];

    if (x == NULL)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    x->reason = reason;
    h->await_handshake = false; /* answered here: never forwarded */
    if (h->resp != RESP_WAIT) {
        /* The client has part of a response: only a close can say it is
         * cut short. */
        return client_gone(c, cut_short_end(reason), NULL);
    }
    if (x->req.target == NULL && h->rq.url_len > 0)
        x->req.target = strdup(h->rq.url); /* for the log line; NULL is fine */
    exchange_release(h, true);
    if (!x->req_done || h->rq.state == H1_REQ_HEAD || h->rq.state == H1_REQ_IDLE) {
        h->rq.state = H1_REQ_REFUSED;
        h->close_after = true;
        h1_io_drop(&h->io);
    }
    if (x->req.close || h->draining)
        h->close_after = true;
    int status = http_reason_status(reason);
    x->resp.status = status;
    size_t body_len = http_error_body(status, body, sizeof(body));
    if (body_len > sizeof(body))
        body_len = sizeof(body);
    add_status_line(&h->io, status);
    h1_io_printf(&h->io, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n",
                 body_len);
    if (http_hsts_value(c) != NULL)
        h1_io_printf(&h->io, "Strict-Transport-Security: %s\r\n", http_hsts_value(c));
    add_connection(h);
    if (!is_head_request(x)) {
        h1_io_add(&h->io, body, body_len);
        x->resp_bytes += body_len;
    }
    h->framing = FRAMING_NONE;
    h->resp = RESP_DONE;
    h->head_deadline_ms = 0;
    return CONN_OK;
}

/* ---- response bodies ---------------------------------------------------------------- */

/* take_body moves response body bytes from x->resp_body into |out|, framed,
 * while |out| holds less than a record; at the end of the response it adds
 * the last chunk with the trailers. */
static void take_body(struct h1 *h, bool *progress)
{
    struct http_exchange *x = h->rq.x;
    bool took = false;

    while (x->resp_body != NULL && evbuffer_get_length(h->io.out) < RECORD_LEN) {
        size_t n = evbuffer_get_length(x->resp_body);
        if (n == 0)
            break;
        if (n > RECORD_LEN)
            n = RECORD_LEN;
        took = true;
        if (h->framing == FRAMING_NONE) {
            evbuffer_drain(x->resp_body, n); /* HEAD, 204, 304: no body */
            continue;
        }
        if (h->framing == FRAMING_CHUNKED)
            h1_io_printf(&h->io, "%zx\r\n", n);
        if (!http_move_bytes(x->resp_body, h->io.out, n))
            h->io.out_failed = true;
        if (h->framing == FRAMING_CHUNKED)
            h1_io_add(&h->io, "\r\n", 2);
        x->resp_bytes += n;
    }
    if (x->resp_body != NULL && evbuffer_get_length(x->resp_body) == 0) {
        evbuffer_free(x->resp_body);
        x->resp_body = NULL;
    }
    if (took) {
        *progress = true;
        http_upstream_response_taken(x);
    }
    if (x->resp_done && x->resp_body == NULL) {
        if (h->framing == FRAMING_CHUNKED) {
            h1_io_add(&h->io, "0\r\n", 3);
            add_fields(&h->io, &x->resp.trailers);
            h1_io_add(&h->io, "\r\n", 2);
        }
        h->resp = RESP_DONE;
        *progress = true;
    }
}

/* ---- the client side ------------------------------------------------------------------ */

/* write_client writes up to a record of |out| to the client. */
static int write_client(struct conn *c, bool *progress)
{
    struct tls_io_failure failure;

    switch (h1_io_write(c, &h1_of(c)->io, &failure)) {
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

/* can_read returns true when a read from the client may bring bytes this
 * mode has room for. */
static bool can_read(const struct conn *c)
{
    const struct h1 *h = h1_of(c);

    if (h->io.in != NULL || h->io.eof || c->client.read_wait != TRANSPORT_WAIT_NONE)
        return false;
    switch (h->rq.state) {
    case H1_REQ_IDLE:
    case H1_REQ_HEAD:
        return true;
    case H1_REQ_BODY:
        return h->rq.x->req_body == NULL ||
               evbuffer_get_length(h->rq.x->req_body) < HTTP_BODY_BUF_MAX;
    case H1_REQ_DONE:
        /* The next request (pipelined) is read, not parsed, and its EOF
         * noticed, unless there will be none. */
        return !h->close_after && !h->rq.x->req.close && !h->draining;
    case H1_REQ_REFUSED:
        break;
    }
    return false;
}

static int read_client(struct conn *c, bool *progress)
{
    struct h1 *h = h1_of(c);
    struct tls_io_failure failure;

    /* While a 0-RTT handshake completes, the client is read whatever the
     * request stands at: its Finished is among the bytes, and a response
     * may wait for it. */
    if (!can_read(c) && !c->handshake_completing)
        return CONN_OK;
    bool was_eof = h->io.eof;
    enum h1_io_result result = h1_io_read(c, &h->io, &failure);
    if (c->handshake_completing) {
        conn_handshake_progress(c);
        if (!c->handshake_completing)
            h->handshake_news = *progress = true;
    }
    if (result == H1_IO_FAILED)
        return client_gone(c, failure.reason, &failure);
    if (result == H1_IO_MOVED) {
        *progress = true;
        if (h->io.eof == was_eof && h->rq.state == H1_REQ_IDLE && h->rq.x == NULL) {
            h->head_bytes_seen = true;
            if (h->head_deadline_ms == 0)
                h->head_deadline_ms =
                    h->io.last_activity_ms + c->cfg->request_header_timeout_ms;
        }
    }
    return CONN_OK;
}

/* ---- parsing ------------------------------------------------------------------------------
 */

static bool can_parse(const struct h1 *h)
{
    switch (h->rq.state) {
    case H1_REQ_IDLE:
    case H1_REQ_HEAD:
        return true;
    case H1_REQ_BODY:
        return h->rq.x->req_body == NULL ||
               evbuffer_get_length(h->rq.x->req_body) < HTTP_BODY_BUF_MAX;
    case H1_REQ_DONE:
    case H1_REQ_REFUSED:
        break;
    }
    return false;
}

/* start_upstream hands a complete head to the upstream. */
static int start_upstream(struct conn *c)
{
    struct h1 *h = h1_of(c);

    h->rq.state = H1_REQ_BODY;
    if (c->handshake_completing && !http_may_send_early(h->rq.x)) {
        /* Early data: a method the backend could not refuse with 425
         * waits until the handshake completes (RFC 8470 5.1). */
        h->await_handshake = true;
        return CONN_OK;
    }
    if (http_upstream_start(h->rq.x) != 0)
        return respond_error(c, HTTP_REASON_OUT_OF_MEMORY);
    return CONN_OK;
}

/* after_handshake starts what waited for the client's handshake to
 * complete: a request held back, or one the backend answered 425. */
static int after_handshake(struct conn *c)
{
    struct h1 *h = h1_of(c);
    if (h->rq.x == NULL)
        return CONN_OK;
    if (h->await_handshake) {
        h->await_handshake = false;
        if (h->rq.state == H1_REQ_REFUSED || h->resp != RESP_WAIT)
            return CONN_OK; /* answered meanwhile (400...): never forwarded */
        if (http_upstream_start(h->rq.x) != 0)
            return respond_error(c, HTTP_REASON_OUT_OF_MEMORY);
        return CONN_OK;
    }
    http_upstream_handshake_done(h->rq.x);
    return CONN_OK;
}

/* parse feeds the pending client bytes to llhttp, until it pauses (a head
 * or a request ended), fails, or has taken them all. */
static int parse(struct conn *c, bool *progress)
{
    struct h1 *h = h1_of(c);
    size_t len = h1_io_pending(&h->io);

    /* After a head's pause the parser goes on even without bytes: a
     * request without a body completes there. */
    if ((len == 0 && !h->rq.head_paused) || !can_parse(h))
        return CONN_OK;
    *progress = true;
    const char *data = h->io.in != NULL ? (const char *)h->io.in + h->io.in_start : "";
    size_t used = 0;
    enum h1_parse_result result = h1_request_parse(&h->rq, data, len, &used);
    if (result == H1_PARSE_ERROR)
        return respond_error(c, h->rq.error);
    h1_io_consume(&h->io, used);
    if (result == H1_PARSE_HEAD) {
        h->head_deadline_ms = 0;
        if (start_upstream(c) != CONN_OK)
            return CONN_CLOSED;
        return parse(c, progress);
    }
    if (h->rq.body_news && h->rq.x != NULL && h->rq.x->up != NULL) {
        h->rq.body_news = false;
        http_upstream_request_body(h->rq.x);
    }
    return CONN_OK;
}

/* ---- running ----------------------------------------------------------------------------- */

/* finish_exchange ends an exchange whose response is written, and readies
 * the connection for the next request or closes it. */
static int finish_exchange(struct conn *c)
{
    struct h1 *h = h1_of(c);
    bool complete = h->rq.x->req_done && h->rq.state == H1_REQ_DONE;

    exchange_end(h);
    /* A request whose body was not read to its end (an early answer) leaves
     * unknown bytes ahead: the connection cannot carry another. */
    if (h->close_after || !complete)
        return conn_linger(c, END_DONE);
    h->rq.state = H1_REQ_IDLE;
    h->io.last_activity_ms = clock_now_ms();
    h->head_bytes_seen = h->io.in != NULL;
    h->head_deadline_ms =
        h->io.in != NULL ? h->io.last_activity_ms + c->cfg->request_header_timeout_ms : 0;
    return CONN_OK;
}

/* handle_failed carries out the upstream's failure. */
static int handle_failed(struct conn *c)
{
    struct h1 *h = h1_of(c);

    h->failed = false;
    if (h->resp == RESP_WAIT)
        return respond_error(c, h->rq.x->reason);
    /* Part of the response went out: the upstream's failure is the
     * backend's, unless tlsterm ran out of memory. */
    return client_gone(c,
                       h->rq.x->reason == HTTP_REASON_OUT_OF_MEMORY ? END_OUT_OF_MEMORY
                                                                    : END_BACKEND_RESET,
                       NULL);
}

/* check_eof ends the connection once the client's EOF leaves nothing to
 * do: quietly between requests, as an abort in the middle of one. */
static int check_eof(struct conn *c)
{
    struct h1 *h = h1_of(c);

    if (!h->io.eof || h->io.in != NULL)
        return CONN_OK;
    if (h->rq.x == NULL)
        return conn_linger(c, END_DONE);
    if (h->rq.state == H1_REQ_HEAD || h->rq.state == H1_REQ_BODY) {
        struct tls_io_failure failure = {.reason = END_CLIENT_RESET,
                                         .detail = "EOF_MID_REQUEST"};
        return client_gone(c, END_CLIENT_RESET, &failure);
    }
    h->close_after = true; /* the response still goes out */
    return CONN_OK;
}

/* step does one round of work; |*progress| says whether anything moved. */
static int step(struct conn *c, bool *progress)
{
    struct h1 *h = h1_of(c);

    if (h->upgraded)
        return CONN_OK;
    if (h->handshake_news) {
        h->handshake_news = false;
        *progress = true;
        if (after_handshake(c) != CONN_OK)
            return CONN_CLOSED;
    }
    if (h->rq.x != NULL && h->failed) {
        *progress = true;
        if (handle_failed(c) != CONN_OK)
            return CONN_CLOSED;
    }
    if (h->rq.x != NULL && h->head_news && h->resp == RESP_WAIT) {
        *progress = true;
        write_head(h);
    }
    if (h->rq.x != NULL && h->resp == RESP_BODY)
        take_body(h, progress);
    if (write_client(c, progress) != CONN_OK)
        return CONN_CLOSED;
    if (h->rq.x != NULL && h->resp == RESP_DONE && evbuffer_get_length(h->io.out) == 0) {
        *progress = true;
        if (finish_exchange(c) != CONN_OK)
            return CONN_CLOSED;
    }
    if (parse(c, progress) != CONN_OK || read_client(c, progress) != CONN_OK)
        return CONN_CLOSED;
    return check_eof(c);
}

/* idle_applies returns true when timeouts.idle bounds the wait: between
 * requests, and while an exchange waits for the client (to take response
 * bytes, or to send body bytes). Waits for the backend are the upstream's
 * to bound. */
static bool idle_applies(const struct conn *c)
{
    const struct h1 *h = h1_of(c);

    return h->rq.x == NULL || c->client.write_wait != TRANSPORT_WAIT_NONE ||
           (h->rq.state == H1_REQ_BODY && c->client.read_wait != TRANSPORT_WAIT_NONE);
}

/* arm_deadline sets the conn's deadline for where the connection stands. */
static void arm_deadline(struct conn *c)
{
    struct h1 *h = h1_of(c);
    uint64_t at = 0;

    if (h->head_deadline_ms != 0)
        at = h->head_deadline_ms;
    else if (idle_applies(c))
        at = h->io.last_activity_ms + c->cfg->idle_timeout_ms;
    conn_set_deadline(c, at);
}

static int upgrade(struct conn *c);

/* h1_run does all there is to do until the client or the upstream must be
 * waited for, then sends the records it produced in one write. */
static int h1_run(struct conn *c)
{
    struct h1 *h = h1_of(c);
    bool more = true;

    if (h->upgraded)
        return upgrade(c);
    transport_cork(&c->client);
    for (int round = 0; round < H1_ROUNDS; round++) {
        bool progress = false;
        if (step(c, &progress) != CONN_OK)
            return CONN_CLOSED;
        if (!progress) {
            more = false;
            break;
        }
    }
    if (transport_flush(&c->client) == TLS_IO_ERROR) {
        struct tls_io_failure failure = {.reason = END_CLIENT_RESET,
                                         .detail = strerror(c->client.sock.last_errno)};
        return client_gone(c, END_CLIENT_RESET, &failure);
    }
    conn_watch_client(c);
    arm_deadline(c);
    if (more || h->upgraded)
        conn_resume_later(c);
    return CONN_OK;
}

/* ---- WebSocket -----------------------------------------------------------------------------
 */

/* upgrade passes the backend's 101 on and hands the connection to tcp mode
 * with the backend connection: bytes either side sent past the heads go
 * first. */
static int upgrade(struct conn *c)
{
    struct h1 *h = h1_of(c);
    struct http_exchange *x = h->rq.x;
    struct evbuffer *to_client, *to_backend = evbuffer_new(), *leftover = NULL;

    add_status_line(&h->io, x->resp.status);
    add_fields(&h->io, &x->resp.fields);
    if (http_fields_find(&x->resp.fields, "upgrade", 0) < 0)
        h1_io_add(&h->io, "Upgrade: websocket\r\n", 20);
    if (http_fields_find(&x->resp.fields, "connection", 0) < 0)
        h1_io_add(&h->io, "Connection: Upgrade\r\n", 21);
    h1_io_add(&h->io, "\r\n", 2);
    if (to_backend == NULL || h->io.out_failed ||
        (h->io.in != NULL &&
         evbuffer_add(to_backend, h->io.in + h->io.in_start, h1_io_pending(&h->io)) != 0)) {
        if (to_backend != NULL)
            evbuffer_free(to_backend);
        return client_gone(c, END_OUT_OF_MEMORY, NULL);
    }
    to_client = h->io.out;
    h->io.out = NULL;
    struct backend_server *server = NULL;
    struct backend_conn *backend = http_upstream_take(x, &leftover, &server);
    h->released = true;
    if (leftover != NULL) {
        evbuffer_add_buffer(to_client, leftover); /* moves its chains: no allocation */
        evbuffer_free(leftover);
    }
    int result;
    if (backend == NULL) {
        h->io.out = to_client;
        x->reason = HTTP_REASON_BACKEND_RESET;
        result = client_gone(c, END_BACKEND_RESET, NULL);
    } else {
        exchange_end(h);
        mode_h1.free(c, false);
        result = mode_tcp_adopt(c, backend, server, to_client, to_backend);
        evbuffer_free(to_client);
    }
    evbuffer_free(to_backend);
    return result;
}

/* ---- front ops: record, then run on a later turn -------------------------------------------
 */

static void front_response_head(struct http_exchange *x)
{
    struct h1 *h = x->front_data;
    if (x->resp.status < 200) {
        /* A 1xx head is only there during this call (a final one may follow
         * in the same read): it is copied out now, to HTTP/1.1 clients. */
        if (x->req.http_minor >= 1 && h->resp == RESP_WAIT) {
            add_status_line(&h->io, x->resp.status);
            add_fields(&h->io, &x->resp.fields);
            h1_io_add(&h->io, "\r\n", 2);
        }
    } else {
        h->head_news = true;
    }
    conn_resume_later(x->c);
}

static void front_response_data(struct http_exchange *x) { conn_resume_later(x->c); }

static void front_request_body_taken(struct http_exchange *x, size_t n)
{
    conn_resume_later(x->c);
}

static void front_failed(struct http_exchange *x)
{
    ((struct h1 *)x->front_data)->failed = true;
    conn_resume_later(x->c);
}

static void front_upgraded(struct http_exchange *x)
{
    ((struct h1 *)x->front_data)->upgraded = true;
    conn_resume_later(x->c);
}

static const struct http_front_ops h1_front_ops = {
    .response_head = front_response_head,
    .response_data = front_response_data,
    .request_body_taken = front_request_body_taken,
    .failed = front_failed,
    .upgraded = front_upgraded,
};

/* ---- mode ops
 * -------------------------------------------------------------------------------- */

static int h1_start(struct conn *c)
{
    struct h1 *h = calloc(1, sizeof(*h));
    if (h == NULL || h1_io_init(&h->io) != 0) {
        if (h != NULL)
            h1_io_cleanup(&h->io);
        free(h);
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    }
    c->mode_state = h;
    h1_request_init(&h->rq, c->cfg->http.max_request_header_bytes, begin_exchange, c);
    h->rq.host_must_match = true; /* the request goes on to a backend */
    h->io.last_activity_ms = clock_now_ms();
    /* A connection that sends nothing is closed at timeouts.request_header. */
    h->head_deadline_ms = h->io.last_activity_ms + c->cfg->request_header_timeout_ms;
    return h1_run(c);
}

static int h1_on_client(struct conn *c) { return h1_run(c); }

static int h1_on_resume(struct conn *c) { return h1_run(c); }

static int h1_on_deadline(struct conn *c)
{
    struct h1 *h = h1_of(c);
    uint64_t now = clock_now_ms();

    if (h->head_deadline_ms != 0) {
        if (now < h->head_deadline_ms) {
            arm_deadline(c);
            return CONN_OK;
        }
        if (!h->head_bytes_seen && h->rq.x == NULL)
            return conn_linger(c, END_IDLE_TIMEOUT);
        if (respond_error(c, HTTP_REASON_HEADER_TIMEOUT) != CONN_OK)
            return CONN_CLOSED;
        return h1_run(c);
    }
    if (!idle_applies(c) || now - h->io.last_activity_ms < c->cfg->idle_timeout_ms) {
        arm_deadline(c);
        return CONN_OK;
    }
    if (h->rq.x == NULL)
        return conn_linger(c, END_IDLE_TIMEOUT);
    return client_gone(c, END_IDLE_TIMEOUT, NULL);
}

static int h1_drain(struct conn *c)
{
    struct h1 *h = h1_of(c);

    h->draining = true;
    /* An idle connection ends now, unless a reload (not the shutdown)
     * finds it before its first request: its client has just connected and
     * its request is most likely on the way. Closing would fail that
     * request on a connection never used, which curl and browsers do not
     * send again (they do after a reused connection closes). It gets that
     * one request, answered with Connection: close. */
    if (h->rq.x == NULL && h->io.in == NULL && (h->had_request || c->worker->draining))
        return conn_linger(c, END_DONE);
    /* The response in progress, or the next one, says Connection: close
     * if its head is not out yet; the connection ends after it either way. */
    h->close_after = true;
    return CONN_OK;
}

static const char *h1_state_name(const struct conn *c)
{
    const struct h1 *h = h1_of(c);

    switch (h->rq.state) {
    case H1_REQ_IDLE:
        return h->rq.x == NULL && h->io.in == NULL ? "idle" : "request_head";
    case H1_REQ_HEAD:
        return "request_head";
    case H1_REQ_BODY:
        return "request_body";
    case H1_REQ_DONE:
        return h->resp == RESP_WAIT ? "waiting_response" : "response";
    case H1_REQ_REFUSED:
        break;
    }
    return "error_response";
}

static void h1_free(struct conn *c, bool abort)
{
    struct h1 *h = h1_of(c);

    if (h == NULL)
        return;
    if (h->rq.x != NULL) {
        if (h->rq.x->reason == HTTP_REASON_NONE && h->resp != RESP_DONE)
            h->rq.x->reason = HTTP_REASON_CLIENT_ABORTED;
        exchange_log(h);
        exchange_release(h, true);
        http_exchange_free(h->rq.x);
    }
    h1_io_cleanup(&h->io);
    h1_request_cleanup(&h->rq);
    free(h);
    c->mode_state = NULL;
}

const struct mode_ops mode_h1 = {
    .name = "http/1.1",
    .start = h1_start,
    .on_client = h1_on_client,
    .on_resume = h1_on_resume,
    .on_deadline = h1_on_deadline,
    .drain = h1_drain,
    .state_name = h1_state_name,
    .free = h1_free,
};
