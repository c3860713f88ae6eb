/* h2_session: the HTTP/2 front's streams as nghttp2 sees them. An nghttp2
 * server session with tlsterm's callbacks: each stream becomes one exchange
 * (http.h) whose request is assembled from the header fields, checked
 * (start_request) and handed to its upstream; the session's frames feed
 * the attack limits (h2_limits.h). Its responses are h2_response.c's.
 *
 * It does no I/O and knows nothing of sockets or TLS: the connection
 * (mode_h2.c) feeds it the client's bytes (h2_session_recv) and writes what
 * nghttp2 has to send, and everything else it needs from the world around
 * it goes through its operations (struct h2_session_ops, h2_front.h): the
 * upstreams, the access log, the certificate, scheduling and abuse
 * reports. That seam is what fuzz/h2_session_fuzz.c drives, with a fake
 * backend behind it.
 *
 * Flow control, in two layers (automatic WINDOW_UPDATE is off): the
 * connection window is given back as soon as DATA lands in a stream's
 * bounded buffer, a stream's window only once its bytes reached the backend
 * (request_body_taken). A slow backend stalls its own stream, never the
 * others. Responses are pulled by nghttp2 through a data provider from the
 * exchange's buffer; an empty buffer defers the stream until the upstream
 * adds bytes.
 *
 * Attack limits: the callbacks feed them, and once one fires the connection
 * ends after its GOAWAY is written. A stream the client reset while its
 * HTTP/1.1 backend is still answering (a backend cannot be told to stop) is
 * detached: it keeps its concurrency slot, its response is read and
 * dropped, and its connection goes back to the pool when it is complete.
 *
 * States: H2_OPEN, then when the worker drains H2_NOTICE (GOAWAY with the
 * last possible stream id and a PING, RFC 9113 6.8) and, once the PING
 * comes back, H2_GOAWAY (the final GOAWAY with the last stream id
 * processed): streams the client sent before it saw the first GOAWAY are
 * still served.
 *
 * Ownership. The session belongs to the front (struct h2_front); its
 * streams (struct h2_stream, nghttp2's stream user data until it closes;
 * then detached streams stay on the front's list alone) each own their
 * exchange. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include "clock.h"
#include "config.h"
#include "h2_front.h"
#include "route.h"

/* The opaque data of the drain PING. */
static const uint8_t drain_ping[8] = {'t', 'l', 's', 't', 'e', 'r', 'm', 'd'};

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
        f->ops->upstream_release(x, !complete);
        f->ops->exchange_log(x);
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

/* final_goaway_submitted says whether a GOAWAY naming the last stream
 * processed is queued or sent: the drain's second one, or the stream
 * cap's. */
static bool final_goaway_submitted(const struct h2_front *f)
{
    return f->state == H2_GOAWAY ||
           (f->limits.fired && f->limits.cause == H2_ABUSE_MAX_STREAMS);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct h2_front *f = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* A stream opened after the final GOAWAY was submitted (in the same
     * read as the PING's answer, or past the stream cap) is above its last
     * stream id: the client learns it was not processed, and may send it
     * again on another connection (RFC 9113 6.8), so no backend may see
     * it. nghttp2 closes it as refused once the GOAWAY is out. */
    if (final_goaway_submitted(f))
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
    bool ok = f->ops->covers(f->c, host);
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
    if (f->ops->upstream_start(x) != 0) {
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
        f->ops->upstream_request_body(st->x);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *user)
{
    struct h2_front *f = user;
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
    f->ops->upstream_request_body(x);
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

/* ---- the session ----------------------------------------------------------------- */

int h2_session_init(struct h2_front *f, struct conn *c, const struct h2_session_ops *ops)
{
    const struct cfg_listener *cfg = c->cfg;
    nghttp2_session_callbacks *callbacks = NULL;
    nghttp2_option *option = NULL;
    int rc = -1;

    f->c = c;
    f->ops = ops;
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&option) != 0)
        goto out;
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
        goto out;

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
        goto out;
    h2_limits_init(&f->limits, &cfg->http2, clock_now_ms(), ops->report_abuse);
    rc = 0;
out:
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_option_del(option);
    return rc;
}

ssize_t h2_session_recv(struct h2_front *f, const uint8_t *data, size_t len)
{
    ssize_t rv = nghttp2_session_mem_recv(f->session, data, len);
    h2_limits_after_recv(&f->limits, f->c, f->session, rv);
    return rv;
}

void h2_session_handshake_done(struct h2_front *f)
{
    struct h2_stream *next;
    for (struct h2_stream *st = f->streams; st != NULL; st = next) {
        next = st->next;
        if (st->await_handshake) {
            st->await_handshake = false;
            if (f->ops->upstream_start(st->x) != 0) {
                st->x->reason = HTTP_REASON_OUT_OF_MEMORY;
                h2_answer(st);
            }
        } else if (st->x != NULL) {
            f->ops->upstream_handshake_done(st->x);
        }
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
        f->ops->upstream_response_taken(x);
}

void h2_session_take(struct h2_front *f)
{
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
            f->ops->upstream_response_taken(st->x);
    }
}

bool h2_session_notice(struct h2_front *f)
{
    if (f->state != H2_OPEN)
        return false;
    f->state = H2_NOTICE;
    nghttp2_submit_shutdown_notice(f->session);
    nghttp2_submit_ping(f->session, NGHTTP2_FLAG_NONE, drain_ping);
    return true;
}

void h2_session_cleanup(struct h2_front *f)
{
    while (f->streams != NULL)
        free_stream(f, f->streams);
    nghttp2_session_del(f->session);
    f->session = NULL;
    free(f->authority_ok);
    f->authority_ok = NULL;
}
