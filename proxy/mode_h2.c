/* mode_h2: the HTTP/2 front of http mode. An nghttp2 server session is fed
 * from the client transport and each stream becomes one exchange (http.h)
 * with an HTTP/1.1 upstream.
 *
 * Input: plaintext is read into a per-thread buffer and handed to
 * nghttp2_session_mem_recv at once; nothing of the client's is kept between
 * reads except what nghttp2 itself holds. Output: nghttp2_session_mem_send
 * hands out frames, which are gathered into a per-thread buffer up to one
 * TLS record and written through the transport together; bytes the socket
 * does not take stay pending (a frame too large to gather where nghttp2 put
 * it, valid until the next mem_send; gathered bytes in a copy the front
 * owns) and nothing more is asked for, and nothing is read, until they
 * have gone: a client that does not read is not fed.
 *
 * Flow control, in two layers (automatic WINDOW_UPDATE is off): the
 * connection window is given back as soon as DATA lands in a stream's
 * bounded buffer, a stream's window only once its bytes reached the backend
 * (request_body_taken). A slow backend stalls its own stream, never the
 * others. Responses are pulled by nghttp2 through a data provider from the
 * exchange's buffer; an empty buffer defers the stream until the upstream
 * adds bytes.
 *
 * Attack limits (h2_limits.h) watch what the client sends and what it makes
 * us send: the callbacks feed them, and once one fires the connection ends
 * after its GOAWAY is written. A stream the client reset while its
 * HTTP/1.1 backend is still answering (a backend cannot be told to stop) is
 * detached: it keeps its concurrency slot, its response is read and
 * dropped, and its connection goes back to the pool when it is complete.
 *
 * States: H2_OPEN, then when the worker drains H2_NOTICE (GOAWAY with the
 * last possible stream id and a PING, RFC 9113 6.8) and, once the PING
 * comes back, H2_GOAWAY (the final GOAWAY with the last stream id
 * processed): streams the client sent before it saw the first GOAWAY are
 * still served. The connection ends when nghttp2 wants neither to read nor
 * to write.
 *
 * Ownership. The front (struct h2_front) is the conn's mode state. It owns
 * the nghttp2 session and its streams (struct h2_stream, nghttp2's stream
 * user data, until it closes; then detached streams stay on the front's list
 * alone), and each stream owns its exchange. */
#include "mode.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include "clock.h"
#include "conn.h"
#include "h2_front.h"
#include "h2_limits.h"
#include "h2_mem.h"
#include "http.h"
#include "http_hsts.h"
#include "metrics.h"
#include "route.h"
#include "tls_ctx.h"
#include "worker.h"

#define H2_READ_LEN 16384
/* One full TLS record of plaintext. */
#define H2_GATHER_LEN 16384
/* Reads per turn before yielding to other connections. */
#define H2_ROUNDS 16
/* How long a connection is idle before nghttp2's frame buffer is given back:
 * long enough that a client between requests does not pay page faults for
 * each one, short enough that idle connections hold little. */
#define H2_IDLE_RELEASE_MS 500
/* The opaque data of the drain PING. */
static const uint8_t drain_ping[8] = {'t', 'l', 's', 't', 'e', 'r', 'm', 'd'};

static _Thread_local uint8_t read_buf[H2_READ_LEN];

/* Frames nghttp2 hands out one by one are gathered here and written
 * together: the HEADERS and DATA of a turn's responses share a TLS record
 * (one SSL_write, one seal) instead of taking one each. Nothing stays in it
 * between calls (see send_frames). */
static _Thread_local uint8_t gather_buf[H2_GATHER_LEN];

static struct h2_front *front_of(const struct conn *c) { return c->mode_state; }

/* ---- streams ---------------------------------------------------------------------- */

static void free_stream(struct h2_front *f, struct h2_stream *st)
{
    struct http_exchange *x = st->x;
    if (st->prev != NULL)
        st->prev->next = st->next;
    else
        f->streams = st->next;
    if (st->next != NULL)
        st->next->prev = st->prev;
    f->num_streams--;
    if (st->taken_queued) {
        struct h2_stream **p = &f->taken;
        while (*p != st)
            p = &(*p)->taken_next;
        *p = st->taken_next;
    }
    if (x != NULL) {
        bool answered = x->resp_done &&
                        (x->resp_body == NULL || evbuffer_get_length(x->resp_body) == 0);
        bool complete = answered && x->req_done;
        /* A response sent whole before the request body ended (a
         * backend's early 413) ends the stream with it (RFC 9113 8.1):
         * the client aborted nothing. */
        if (!answered && x->reason == HTTP_REASON_NONE)
            x->reason = HTTP_REASON_CLIENT_ABORTED;
        http_upstream_release(x, !complete);
        http_exchange_log(x, "h2");
        http_exchange_free(x);
    }
    free(st);
}

/* glitch counts one glitch of |kind| (h2_limits.h): past the budget, the
 * connection ends. */
static void glitch(struct h2_front *f, const char *kind)
{
    if (h2_limits_glitch(&f->limits, clock_now_ms()))
        h2_limits_fire(&f->limits, f->c, f->session, H2_ABUSE_GLITCHES, kind);
}

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    struct h2_front *f = user;
    if (hd->type == NGHTTP2_PRIORITY)
        glitch(f, "priority");
    else if (hd->type == NGHTTP2_DATA && hd->stream_id != 0 &&
             nghttp2_session_get_stream_user_data(session, hd->stream_id) == NULL)
        glitch(f, "closed_stream");
    /* A client's new stream ids only grow (RFC 9113 5.1.1): HEADERS on an
     * odd id at or below the last one, for a stream nghttp2 does not know,
     * opens nothing legitimately. nghttp2 would ignore it silently. */
    if (hd->type == NGHTTP2_HEADERS && (hd->stream_id & 1) &&
        hd->stream_id <= nghttp2_session_get_last_proc_stream_id(session) &&
        nghttp2_session_find_stream(session, hd->stream_id) == NULL)
        nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct h2_front *f = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    f->limits.num_streams++;
    /* Detached streams hold their slots too (see the top): nghttp2 counts
     * only the open ones. */
    if (f->num_streams >= f->c->cfg->http2.max_concurrent_streams) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    struct h2_stream *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        f->out_of_memory = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    st->x = http_exchange_new(f->c, &h2_front_ops, st);
    if (st->x == NULL) {
        free(st);
        f->out_of_memory = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    st->front = f;
    h2_limits_stream_init(&st->limits);
    st->id = frame->hd.stream_id;
    st->begun_ms = clock_now_ms();
    st->x->stream_id = (uint32_t)st->id;
    st->x->req.h2 = true;
    f->any_request = true;
    st->next = f->streams;
    if (f->streams != NULL)
        f->streams->prev = st;
    f->streams = st;
    f->num_streams++;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    return 0;
}

static char *dup_n(const uint8_t *s, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user)
{
    struct h2_front *f = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* request trailers are not passed on */
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL || st->rejected)
        return 0;
    struct http_request *req = &st->x->req;
    const char *n = (const char *)name;

    if (++st->fields > HTTP_MAX_FIELDS ||
        req->fields.bytes + name_len + value_len > f->c->cfg->http.max_request_header_bytes) {
        st->rejected = true;
        st->x->reason = HTTP_REASON_HEADER_TOO_LARGE;
        return 0;
    }
    char **slot = NULL;
    if (http_name_is(n, name_len, ":method"))
        slot = &req->method;
    else if (http_name_is(n, name_len, ":path"))
        slot = &req->target;
    else if (http_name_is(n, name_len, ":authority"))
        slot = &req->authority;
    else if (name_len > 0 && name[0] == ':')
        return 0; /* :scheme; nghttp2 checked the rest */
    if (slot != NULL) {
        free(*slot);
        *slot = dup_n(value, value_len);
        req->fields.bytes += (uint32_t)(name_len + value_len);
        if (*slot == NULL)
            goto out_of_memory;
        return 0;
    }
    if (http_name_is(n, name_len, "content-length")) {
        int64_t len = 0;
        for (size_t i = 0; i < value_len; i++)
            len = len * 10 + (value[i] - '0'); /* nghttp2 checked the digits */
        req->content_length = len;
    }
    if (http_fields_add(&req->fields, n, name_len, (const char *)value, value_len) != 0)
        goto out_of_memory;
    return 0;

out_of_memory:
    /* nghttp2 resets the stream (INTERNAL_ERROR); the log says why. */
    st->x->reason = HTTP_REASON_OUT_OF_MEMORY;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* covered says whether the certificate served on this connection covers
 * |authority|: a client reuses an HTTP/2 connection for every name the
 * certificate lists, and any other is misdirected (RFC 9110 15.5.20). */
static bool covered(struct h2_front *f, const char *authority)
{
    char host[256];
    size_t host_len;
    if (f->authority_ok != NULL && strcmp(f->authority_ok, authority) == 0)
        return true;
    const char *start = route_authority_host(authority, &host_len);
    snprintf(host, sizeof(host), "%.*s", (int)host_len, start);
    const char *sni = SSL_get_servername(f->c->client.ssl, TLSEXT_NAMETYPE_host_name);
    bool ok =
        (sni != NULL && strcasecmp(sni, host) == 0) || tls_ctx_covers(f->c->client.ssl, host);
    if (ok) {
        free(f->authority_ok);
        f->authority_ok = strdup(authority);
    }
    return ok;
}

/* start_request checks a complete request head and starts its upstream,
 * or answers it. */
static int start_request(struct h2_front *f, struct h2_stream *st, bool end_stream)
{
    struct http_exchange *x = st->x;
    struct http_request *req = &x->req;
    int host = http_fields_find(&req->fields, "host", 0);

    x->req_done = end_stream;
    req->has_body = !end_stream;
    st->head_done = true;
    if (st->rejected) {
        h2_answer(st);
        return 0;
    }
    /* RFC 9113 8.3.1: origin form, or "*" for OPTIONS. nghttp2 checks it
     * only for the http and https schemes; the backend must never get an
     * absolute form (its authority would win over Host) or worse. */
    if (req->method == NULL || req->target == NULL ||
        (req->target[0] != '/' &&
         !(strcmp(req->target, "*") == 0 && strcmp(req->method, "OPTIONS") == 0))) {
        x->reason = HTTP_REASON_BAD_REQUEST;
        h2_answer(st);
        return 0;
    }
    if (host >= 0) {
        const char *value = http_field_value(&req->fields, (uint32_t)host);
        if (req->authority == NULL) {
            req->authority = strdup(value);
        } else if (strcasecmp(req->authority, value) != 0) {
            x->reason = HTTP_REASON_AUTHORITY_MISMATCH;
            h2_answer(st);
            return 0;
        }
    }
    if (req->authority == NULL) {
        x->reason = HTTP_REASON_BAD_REQUEST;
        h2_answer(st);
        return 0;
    }
    if (!covered(f, req->authority)) {
        x->reason = HTTP_REASON_MISDIRECTED;
        h2_answer(st);
        return 0;
    }
    if (http_fields_find(&req->fields, "expect", 0) >= 0)
        req->expect_continue = true;
    if (f->c->handshake_completing && !http_may_send_early(x)) {
        /* Early data: a method the backend could not refuse with 425
         * waits until the handshake completes (RFC 8470 5.1). */
        st->await_handshake = true;
        return 0;
    }
    if (http_upstream_start(x) != 0) {
        x->reason = HTTP_REASON_OUT_OF_MEMORY;
        h2_answer(st);
    }
    return 0;
}

/* limits_frame_recv feeds the limits what |frame| says. */
static void limits_frame_recv(struct h2_front *f, const nghttp2_frame *frame)
{
    struct h2_stream *st =
        nghttp2_session_get_stream_user_data(f->session, frame->hd.stream_id);
    size_t data_len =
        frame->hd.type == NGHTTP2_DATA ? frame->hd.length - frame->data.padlen : 0;
    const char *kind =
        h2_limits_frame_recv(&f->limits, st != NULL ? &st->limits : NULL, frame->hd.stream_id,
                             frame->hd.type, frame->hd.flags, data_len);
    if (kind != NULL)
        glitch(f, kind);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        f->limits.num_streams >= f->c->cfg->http2.max_streams_per_connection)
        h2_limits_fire(&f->limits, f->c, f->session, H2_ABUSE_MAX_STREAMS, NULL);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct h2_front *f = user;
    bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;

    limits_frame_recv(f, frame);
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) &&
        memcmp(frame->ping.opaque_data, drain_ping, sizeof(drain_ping)) == 0 &&
        f->state == H2_NOTICE) {
        /* A round trip after the notice: anything the client sent before
         * it saw the notice has arrived. */
        f->state = H2_GOAWAY;
        nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session),
                              NGHTTP2_NO_ERROR, NULL, 0);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        return start_request(f, st, end_stream);
    if (end_stream && !st->x->req_done) {
        st->x->req_done = true;
        http_upstream_request_body(st->x);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *user)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, id);

    /* The connection's window is given back at once: the bytes are in a
     * stream's buffer, which that stream's own window bounds. */
    nghttp2_session_consume_connection(session, len);
    /* A stream tlsterm answered itself drops its body; one waiting for the
     * handshake (0-RTT) keeps it. */
    if (st == NULL || st->answered || (st->x->up == NULL && !st->await_handshake)) {
        nghttp2_session_consume_stream(session, id, len);
        return 0;
    }
    struct http_exchange *x = st->x;
    if (x->req_body == NULL && (x->req_body = evbuffer_new()) == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (evbuffer_add(x->req_body, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    x->req_bytes += len;
    http_upstream_request_body(x);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code,
                           void *user)
{
    struct h2_front *f = user;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    struct http_exchange *x = st->x;
    /* A request the backend has whole is answered whatever the client
     * does: the stream keeps its slot until the backend is done. */
    if (x->up != NULL && x->server != NULL && x->req_done && !x->resp_done && !st->answered) {
        st->detached = true;
        if (x->reason == HTTP_REASON_NONE)
            x->reason = HTTP_REASON_CLIENT_ABORTED;
        h2_detached_changed(st);
        return 0;
    }
    free_stream(f, st);
    return 0;
}

/* session_end is the reason of a session that ended without an error of
 * the client's or the socket's. */
static enum end_reason session_end(const struct h2_front *f)
{
    return f->out_of_memory ? END_OUT_OF_MEMORY : END_DONE;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct h2_front *f = user;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    uint32_t code = frame->hd.type == NGHTTP2_GOAWAY ? frame->goaway.error_code : 0;
    /* tlsterm never sends INTERNAL_ERROR: nghttp2 does when it, or a
     * callback, could not allocate (a failed HPACK encoding included). */
    if (frame->hd.type == NGHTTP2_GOAWAY && code == NGHTTP2_INTERNAL_ERROR)
        f->out_of_memory = true;
    const char *kind = h2_limits_frame_sent(
        &f->limits, f->c, session, st != NULL ? &st->limits : NULL, frame->hd.type, code);
    if (kind != NULL)
        glitch(f, kind);
    return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int error,
                            void *user)
{
    glitch(user, "invalid_frame");
    return 0;
}

static int on_invalid_header(nghttp2_session *session, const nghttp2_frame *frame,
                             const uint8_t *name, size_t name_len, const uint8_t *value,
                             size_t value_len, uint8_t flags, void *user)
{
    glitch(user, "invalid_header");
    /* The stream is reset, as without this callback. */
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* ---- the connection ------------------------------------------------------------------ */

static int fail_tls(struct conn *c, const struct tls_io_failure *failure)
{
    return conn_close(c, failure->reason, failure);
}

enum out_result { OUT_MOVED, OUT_BLOCKED, OUT_CLOSED };

/* write_out writes up to |len| bytes at |data| to the client: OUT_MOVED
 * with |*out_n| the bytes that went (maybe fewer: partial writes are on),
 * OUT_BLOCKED when the transport must wait, or OUT_CLOSED after a TLS
 * failure closed the connection. */
static enum out_result write_out(struct h2_front *f, const uint8_t *data, size_t len,
                                 size_t *out_n)
{
    struct conn *c = f->c;
    struct tls_io_failure failure;

    *out_n = 0;
    switch (transport_write(&c->client, data, len, out_n, &failure)) {
    case TLS_IO_OK:
        c->bytes_out += *out_n;
        metrics_bytes_backend_to_client(c->listener->metrics, *out_n);
        f->last_activity_ms = clock_now_ms();
        h2_limits_set_stalled(&f->limits, false, 0);
        return OUT_MOVED;
    case TLS_IO_WANT_READ:
    case TLS_IO_WANT_WRITE:
        return OUT_BLOCKED;
    case TLS_IO_EOF:
    case TLS_IO_ERROR:
        break;
    }
    fail_tls(c, &failure);
    return OUT_CLOSED;
}

/* gather_frames asks nghttp2 for frames while they fit in gather_buf,
 * copying them there; a frame that does not fit is left in nghttp2's
 * buffer as |*out_held| (valid until the next mem_send). It returns the
 * bytes gathered, or -1 when nghttp2 is out of memory. */
static ssize_t gather_frames(struct h2_front *f, const uint8_t **out_held, size_t *out_held_len)
{
    size_t used = 0;

    *out_held = NULL;
    *out_held_len = 0;
    for (;;) {
        const uint8_t *data;
        ssize_t len = nghttp2_session_mem_send(f->session, &data);
        if (len < 0)
            return -1;
        if (len == 0)
            return (ssize_t)used;
        h2_mem_note_output(&f->mem);
        if ((size_t)len > sizeof(gather_buf) - used) {
            *out_held = data;
            *out_held_len = (size_t)len;
            return (ssize_t)used;
        }
        memcpy(gather_buf + used, data, (size_t)len);
        used += (size_t)len;
    }
}

/* send_frames writes what nghttp2 has to send; CONN_OK or CONN_CLOSED. */
static int send_frames(struct h2_front *f)
{
    struct conn *c = f->c;

    for (;;) {
        size_t n = 0;
        enum out_result out;
        if (f->pending != NULL) {
            if ((out = write_out(f, f->pending, f->pending_len, &n)) == OUT_CLOSED)
                return CONN_CLOSED;
            if (out == OUT_BLOCKED)
                return CONN_OK;
            f->pending += n;
            f->pending_len -= n;
            if (f->pending_len > 0)
                continue;
            f->pending = NULL;
            free(f->spill);
            f->spill = NULL;
        }
        const uint8_t *held;
        size_t held_len;
        ssize_t used = gather_frames(f, &held, &held_len);
        if (used < 0)
            return conn_close(c, END_OUT_OF_MEMORY, NULL);
        if (held == NULL && used == 0)
            return CONN_OK;
        out = OUT_MOVED;
        if (used > 0 && (out = write_out(f, gather_buf, (size_t)used, &n)) == OUT_CLOSED)
            return CONN_CLOSED;
        if (n < (size_t)used) {
            /* The socket took only part: the rest (and the frame held in
             * nghttp2's buffer) must outlive gather_buf. */
            size_t rest = (size_t)used - n;
            if ((f->spill = malloc(rest + held_len)) == NULL)
                return conn_close(c, END_OUT_OF_MEMORY, NULL);
            memcpy(f->spill, gather_buf + n, rest);
            if (held_len > 0)
                memcpy(f->spill + rest, held, held_len);
            f->pending = f->spill;
            f->pending_len = rest + held_len;
        } else {
            f->pending = held; /* NULL when nothing was held back */
            f->pending_len = held_len;
        }
        if (out == OUT_BLOCKED)
            return CONN_OK;
    }
}

/* close_abusive ends the connection after a limit fired: the GOAWAY goes out
 * if the client takes it. Returns CONN_CLOSED. */
static int close_abusive(struct h2_front *f)
{
    struct conn *c = f->c;
    if (send_frames(f) != CONN_OK)
        return CONN_CLOSED;
    transport_flush(&c->client);
    return conn_linger(c, END_HTTP2_ABUSE);
}

/* read_frames reads from the client and feeds nghttp2; CONN_OK or
 * CONN_CLOSED. */
static int read_frames(struct h2_front *f, bool *out_more)
{
    struct conn *c = f->c;
    struct tls_io_failure failure;

    for (int rounds = 0; rounds < H2_ROUNDS; rounds++) {
        /* After the notice nghttp2 may want nothing more, but the PING's
         * answer is still awaited: the final GOAWAY follows it. */
        if (f->pending != NULL ||
            (!nghttp2_session_want_read(f->session) && f->state != H2_NOTICE))
            return CONN_OK;
        if (transport_wait_readable(&c->client))
            return CONN_OK;
        size_t n = 0;
        enum tls_io_result result =
            transport_read(&c->client, read_buf, H2_READ_LEN, &n, &failure);
        if (c->handshake_completing) {
            conn_handshake_progress(c);
            if (!c->handshake_completing)
                f->handshake_news = true;
        }
        switch (result) {
        case TLS_IO_OK: {
            c->bytes_in += n;
            metrics_bytes_client_to_backend(c->listener->metrics, n);
            f->last_activity_ms = clock_now_ms();
            ssize_t rv = nghttp2_session_mem_recv(f->session, read_buf, n);
            h2_limits_after_recv(&f->limits, c, f->session, rv);
            if (h2_limits_must_close(&f->limits))
                return close_abusive(f);
            if (rv < 0) {
                /* nghttp2 queued a GOAWAY where the protocol asks for one;
                 * it goes out before the connection ends. */
                if (send_frames(f) != CONN_OK)
                    return CONN_CLOSED;
                transport_flush(&c->client);
                return conn_linger(c, f->out_of_memory || rv == NGHTTP2_ERR_NOMEM
                                          ? END_OUT_OF_MEMORY
                                          : END_CLIENT_TLS_ERROR);
            }
            if (send_frames(f) != CONN_OK)
                return CONN_CLOSED;
            break;
        }
        case TLS_IO_WANT_READ:
        case TLS_IO_WANT_WRITE:
            return CONN_OK;
        case TLS_IO_EOF:
            return conn_linger(c, session_end(f));
        case TLS_IO_ERROR:
            return fail_tls(c, &failure);
        }
    }
    *out_more = true;
    return CONN_OK;
}

/* waits_for_backend says whether |st| waits for its backend, a wait its
 * upstream bounds (timeouts.backend_response): the whole request is in, or
 * the backend has yet to take what is, and the client is not behind. */
static bool waits_for_backend(const struct h2_stream *st)
{
    const struct http_exchange *x = st->x;
    if (x == NULL || x->up == NULL || x->resp_done)
        return false;
    if (x->resp_body != NULL && evbuffer_get_length(x->resp_body) >= HTTP_BODY_BUF_MAX)
        return false;
    return x->req_done || (x->req_body != NULL && evbuffer_get_length(x->req_body) > 0);
}

/* after_handshake starts what waited for the client's handshake to
 * complete: requests held back, and those the backend answered 425. */
static void after_handshake(struct h2_front *f)
{
    struct h2_stream *next;
    for (struct h2_stream *st = f->streams; st != NULL; st = next) {
        next = st->next;
        if (st->await_handshake) {
            st->await_handshake = false;
            if (http_upstream_start(st->x) != 0) {
                st->x->reason = HTTP_REASON_OUT_OF_MEMORY;
                h2_answer(st);
            }
        } else if (st->x != NULL) {
            http_upstream_handshake_done(st->x);
        }
    }
}

/* idle_deadline is when the connection is given up on: timeouts.idle when no
 * stream waits for its backend (no stream at all, streams that wait on a
 * client that sends nothing and takes nothing, or a client that takes no
 * bytes); timeouts.request_header for a stream whose header block does not
 * end (it blocks the whole connection); and before its first request,
 * timeouts.request_header from the handshake (a client that connects and
 * sends nothing holds no connection for long). 0: none. */
static uint64_t idle_deadline(const struct h2_front *f)
{
    const struct cfg_listener *cfg = f->c->cfg;
    uint64_t at = 0;
    bool backend_bound = false;

    for (const struct h2_stream *st = f->streams; st != NULL; st = st->next) {
        if (!st->head_done) {
            uint64_t head_at = st->begun_ms + cfg->request_header_timeout_ms;
            if (at == 0 || head_at < at)
                at = head_at;
        } else if (f->pending == NULL && waits_for_backend(st)) {
            backend_bound = true;
        }
    }
    if (!backend_bound) {
        uint64_t idle_at = f->last_activity_ms + cfg->idle_timeout_ms;
        if (!f->any_request && f->started_ms + cfg->request_header_timeout_ms < idle_at)
            idle_at = f->started_ms + cfg->request_header_timeout_ms;
        if (at == 0 || idle_at < at)
            at = idle_at;
    }
    return at;
}

/* deadline is the earliest of idle_deadline and the limits' timeouts. */
static uint64_t deadline(const struct h2_front *f)
{
    uint64_t idle = idle_deadline(f);
    uint64_t limits = h2_limits_deadline(&f->limits, f->stream_stalled_ms);
    return idle == 0 || (limits != 0 && limits < idle) ? limits : idle;
}

/* update_stalls notes the streams whose response bytes wait for a shut
 * stream window, and whether the client takes no bytes at all: a frame it
 * does not take, or a shut connection window with bytes waiting. */
static void update_stalls(struct h2_front *f)
{
    uint64_t now = clock_now_ms();
    bool waiting = false;

    f->stream_stalled_ms = 0;
    for (struct h2_stream *st = f->streams; st != NULL; st = st->next) {
        struct http_exchange *x = st->x;
        bool has_bytes = !st->detached && st->head_sent && x->resp_body != NULL &&
                         evbuffer_get_length(x->resp_body) > 0;
        waiting |= has_bytes;
        uint64_t since = h2_limits_stream_stalled(
            &st->limits,
            has_bytes && nghttp2_session_get_stream_remote_window_size(f->session, st->id) <= 0,
            now);
        if (since != 0 && (f->stream_stalled_ms == 0 || since < f->stream_stalled_ms))
            f->stream_stalled_ms = since;
    }
    h2_limits_set_stalled(
        &f->limits,
        f->pending != NULL ||
            (waiting && nghttp2_session_get_remote_window_size(f->session) <= 0),
        now);
}

/* reset_stalled_streams resets the streams whose window stayed shut for
 * write_timeout; the connection goes on. */
static void reset_stalled_streams(struct h2_front *f, uint64_t now)
{
    for (struct h2_stream *st = f->streams; st != NULL; st = st->next) {
        if (!h2_limits_expired(st->limits.stalled_ms, f->c->cfg->http2.write_timeout_ms, now))
            continue;
        st->limits.stalled_ms = 0;
        h2_limits_report(f->c, H2_ABUSE_STREAM_WRITE_TIMEOUT, NULL);
        nghttp2_submit_rst_stream(f->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    }
}

/* take_detached drops what the upstream of detached |st| read, and frees
 * |st| once the upstream is done (its connection pooled when complete). */
static void take_detached(struct h2_front *f, struct h2_stream *st)
{
    struct http_exchange *x = st->x;
    if (x->resp_body != NULL)
        evbuffer_drain(x->resp_body, evbuffer_get_length(x->resp_body));
    if (x->resp_done || x->up == NULL)
        free_stream(f, st);
    else
        http_upstream_response_taken(x);
}

/* release_idle_memory gives nghttp2's frame buffer back (h2_mem.h) once
 * the connection has been idle for H2_IDLE_RELEASE_MS; before that it
 * returns the earlier of |at| (the deadline, 0: none) and that moment. */
static uint64_t release_idle_memory(struct h2_front *f, uint64_t at)
{
    if (!h2_mem_releasable(&f->mem) || f->num_streams != 0 || f->pending != NULL ||
        nghttp2_session_want_write(f->session))
        return at;
    uint64_t release_at = f->last_activity_ms + H2_IDLE_RELEASE_MS;
    if (clock_now_ms() >= release_at) {
        h2_mem_release(&f->mem);
        return at;
    }
    return at == 0 || release_at < at ? release_at : at;
}

/* run does what there is to do: read, send, let upstreams read again,
 * and decide the deadline and whether the connection is over. */
static int run(struct conn *c)
{
    struct h2_front *f = front_of(c);
    bool more = false;

    transport_cork(&c->client);
    if (send_frames(f) != CONN_OK || read_frames(f, &more) != CONN_OK)
        return CONN_CLOSED;
    if (f->handshake_news) {
        f->handshake_news = false;
        after_handshake(f);
    }
    /* Streams whose buffers were drained let their upstreams read again;
     * what they add is sent on the next turn. */
    /* The list is taken whole: a stream queued again while its upstream
     * reads (a detached stream's bytes are dropped at once) waits for the
     * next turn, so a fast backend cannot hold the worker here. */
    struct h2_stream *taken = f->taken;
    f->taken = NULL;
    while (taken != NULL) {
        struct h2_stream *st = taken;
        taken = st->taken_next;
        st->taken_queued = false;
        if (st->detached)
            take_detached(f, st);
        else
            http_upstream_response_taken(st->x);
    }
    if (send_frames(f) != CONN_OK)
        return CONN_CLOSED;
    if (h2_limits_must_close(&f->limits))
        return close_abusive(f);
    if (f->taken != NULL)
        more = true;
    if (transport_flush(&c->client) == TLS_IO_ERROR) {
        struct tls_io_failure failure = {.reason = END_CLIENT_RESET,
                                         .detail = strerror(c->client.sock.last_errno)};
        return conn_close(c, END_CLIENT_RESET, &failure);
    }
    if (!nghttp2_session_want_read(f->session) && !nghttp2_session_want_write(f->session) &&
        f->pending == NULL && f->state != H2_NOTICE)
        return conn_linger(c, session_end(f));
    conn_watch_client(c);
    update_stalls(f);
    conn_set_deadline(c, release_idle_memory(f, deadline(f)));
    if (more)
        conn_resume_later(c);
    return CONN_OK;
}

static int h2_start(struct conn *c)
{
    const struct cfg_listener *cfg = c->cfg;
    struct h2_front *f = calloc(1, sizeof(*f));
    nghttp2_session_callbacks *callbacks = NULL;
    nghttp2_option *option = NULL;

    if (f == NULL)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    c->mode_state = f;
    f->c = c;
    f->started_ms = f->last_activity_ms = clock_now_ms();
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&option) != 0)
        goto oom;
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
    nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks, on_invalid_header);
    nghttp2_option_set_no_auto_window_update(option, 1);
    h2_limits_set_options(&cfg->http2, option);
    h2_mem_init(&f->mem);
    if (nghttp2_session_server_new3(&f->session, callbacks, f, option, &f->mem.mem) != 0)
        goto oom;
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_option_del(option);
    callbacks = NULL;
    option = NULL;

    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, cfg->http2.header_table_size},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->http2.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->http2.initial_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->http.max_request_header_bytes + 3200},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(f->session, NGHTTP2_FLAG_NONE, settings,
                                sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(f->session, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)cfg->http2.connection_window) != 0)
        goto oom;
    h2_limits_init(&f->limits, &cfg->http2, clock_now_ms());
    if (c->worker->draining)
        c->mode->drain(c);
    return run(c);
oom:
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_option_del(option);
    return conn_close(c, END_OUT_OF_MEMORY, NULL);
}

static int h2_on_client(struct conn *c) { return run(c); }

static int h2_on_resume(struct conn *c) { return run(c); }

static int h2_on_deadline(struct conn *c)
{
    struct h2_front *f = front_of(c);
    uint64_t now = clock_now_ms();

    h2_limits_check_timeouts(&f->limits, c, f->session, now);
    if (h2_limits_must_close(&f->limits))
        return close_abusive(f);
    reset_stalled_streams(f, now);
    uint64_t at = idle_deadline(f);
    if (at == 0 || now < at)
        return run(c);
    nghttp2_submit_goaway(f->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(f->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    if (send_frames(f) != CONN_OK)
        return CONN_CLOSED;
    transport_flush(&c->client);
    return conn_linger(c, END_IDLE_TIMEOUT);
}

static int h2_drain(struct conn *c)
{
    struct h2_front *f = front_of(c);
    if (f->state != H2_OPEN)
        return CONN_OK;
    f->state = H2_NOTICE;
    nghttp2_submit_shutdown_notice(f->session);
    nghttp2_submit_ping(f->session, NGHTTP2_FLAG_NONE, drain_ping);
    conn_resume_later(c);
    return CONN_OK;
}

static const char *h2_state_name(const struct conn *c)
{
    static const char *const names[] = {"h2", "h2_goaway_notice", "h2_goaway"};
    return names[front_of(c)->state];
}

static void h2_free(struct conn *c, bool abort)
{
    struct h2_front *f = front_of(c);
    if (f == NULL)
        return;
    while (f->streams != NULL)
        free_stream(f, f->streams);
    nghttp2_session_del(f->session);
    free(f->authority_ok);
    free(f->spill);
    free(f);
    c->mode_state = NULL;
}

const struct mode_ops mode_h2 = {
    .name = "h2",
    .start = h2_start,
    .on_client = h2_on_client,
    .on_resume = h2_on_resume,
    .on_deadline = h2_on_deadline,
    .drain = h2_drain,
    .state_name = h2_state_name,
    .free = h2_free,
};
