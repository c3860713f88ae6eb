/* h2_session_fuzz: libFuzzer target for an HTTP/2 server session as the h2
 * front sets it up (mode_h2.c's h2_start): nghttp2 with tlsterm's options
 * (h2_limits_set_options: reset bucket, CONTINUATION count, ACK queue),
 * its SETTINGS and connection window, no automatic WINDOW_UPDATE, and its
 * allocator (h2_mem, which madvises the frame buffer's pages away between
 * writes). The input is the client's bytes, fed in pieces with what the
 * session sends drained after each, as the front's read/write loop does;
 * frames received go through tlsterm's abuse accounting (h2_limits: frame
 * kinds, the glitch budget), and every complete request is answered by a
 * fake backend (a 200 with a small body, through a data provider, or a
 * reset), so the send side runs too. See fuzz/README.md.
 *
 * Not covered: mode_h2.c's own callbacks (request assembly in on_header,
 * start_request's checks, the stream bookkeeping) and h2_response.c. They
 * call into the connection, the worker, TLS and the upstream at every
 * turn; driving them needs those faked or split from the callbacks (see
 * fuzz/README.md). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "config.h"
#include "h2_limits.h"
#include "h2_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The defaults of the http2 keys, as the loader sets them. */
static const struct cfg_http2 defaults = CFG_HTTP2_DEFAULTS;

struct stream {
    struct stream *prev, *next; /* the front's open streams */
    struct h2_limits_stream limits;
    size_t fields;
    size_t body_left; /* of the fake response */
};

struct front {
    nghttp2_session *session;
    struct h2_limits limits;
    struct h2_mem mem;
    uint64_t now_ms;
    bool out_of_glitches;
    struct stream *streams; /* nghttp2_session_del does not close them */
};

static void unlink_stream(struct front *f, struct stream *st)
{
    if (st->prev != NULL)
        st->prev->next = st->next;
    else
        f->streams = st->next;
    if (st->next != NULL)
        st->next->prev = st->prev;
    free(st);
}

static void glitch(struct front *f)
{
    if (h2_limits_glitch(&f->limits, f->now_ms))
        f->out_of_glitches = true; /* tlsterm would fire and close here */
}

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    struct front *f = user;
    if (hd->type == NGHTTP2_PRIORITY)
        glitch(f);
    else if (hd->type == NGHTTP2_DATA && hd->stream_id != 0 &&
             nghttp2_session_get_stream_user_data(session, hd->stream_id) == NULL)
        glitch(f);
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct front *f = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    f->limits.num_streams++;
    struct stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    h2_limits_stream_init(&st->limits);
    st->next = f->streams;
    if (f->streams != NULL)
        f->streams->prev = st;
    f->streams = st;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user)
{
    struct stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st != NULL)
        st->fields++;
    return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct stream *st = source->ptr;
    size_t n = st->body_left < length ? st->body_left : length;
    memset(buf, 'x', n);
    st->body_left -= n;
    if (st->body_left == 0)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* answer is the fake backend: by the stream id, a reset, a 200 without a
 * body, or one with a body of a few frames. */
static void answer(struct front *f, int32_t id, struct stream *st)
{
    static const nghttp2_nv head[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE},
    };
    switch (id % 7) {
    case 0:
        nghttp2_submit_rst_stream(f->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return;
    case 1:
        nghttp2_submit_response(f->session, id, head, 2, NULL);
        return;
    default: {
        nghttp2_data_provider provider = {.source.ptr = st, .read_callback = read_body};
        st->body_left = (size_t)(id % 5) * 20000;
        nghttp2_submit_response(f->session, id, head, 2, &provider);
    }
    }
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct front *f = user;
    struct stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    size_t data_len =
        frame->hd.type == NGHTTP2_DATA ? frame->hd.length - frame->data.padlen : 0;

    if (h2_limits_frame_recv(&f->limits, st != NULL ? &st->limits : NULL, frame->hd.stream_id,
                             frame->hd.type, frame->hd.flags, data_len) != NULL)
        glitch(f);
    if (st != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA))
        answer(f, frame->hd.stream_id, st);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *user)
{
    /* As mode_h2.c: the connection's window at once, the stream's once
     * the backend took the bytes (here: at once). */
    nghttp2_session_consume_connection(session, len);
    nghttp2_session_consume_stream(session, id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code,
                           void *user)
{
    struct front *f = user;
    struct stream *st = nghttp2_session_get_stream_user_data(session, id);
    if (st != NULL) {
        nghttp2_session_set_stream_user_data(session, id, NULL);
        unlink_stream(f, st);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct front *f = user;
    struct stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    /* The GOAWAY of nghttp2's emptied reset bucket would end the
     * connection (h2_limits_fire, which needs the conn): stop there. */
    if (frame->hd.type == NGHTTP2_GOAWAY &&
        frame->goaway.error_code == NGHTTP2_INTERNAL_ERROR && f->limits.reset_received) {
        f->out_of_glitches = true;
        return 0;
    }
    if (h2_limits_frame_sent(&f->limits, NULL, session, st != NULL ? &st->limits : NULL,
                             frame->hd.type, 0) != NULL)
        glitch(f);
    return 0;
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int error,
                            void *user)
{
    glitch(user);
    return 0;
}

static int on_invalid_header(nghttp2_session *session, const nghttp2_frame *frame,
                             const uint8_t *name, size_t name_len, const uint8_t *value,
                             size_t value_len, uint8_t flags, void *user)
{
    glitch(user);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static void start(struct front *f)
{
    nghttp2_session_callbacks *callbacks = NULL;
    nghttp2_option *option = NULL;

    assert(nghttp2_session_callbacks_new(&callbacks) == 0 && nghttp2_option_new(&option) == 0);
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
    h2_limits_set_options(&defaults, option);
    h2_mem_init(&f->mem);
    assert(nghttp2_session_server_new3(&f->session, callbacks, f, option, &f->mem.mem) == 0);
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_option_del(option);

    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, defaults.header_table_size},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, defaults.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, defaults.initial_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536 + 3200},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    assert(nghttp2_submit_settings(f->session, NGHTTP2_FLAG_NONE, settings,
                                   sizeof(settings) / sizeof(settings[0])) == 0);
    assert(nghttp2_session_set_local_window_size(f->session, NGHTTP2_FLAG_NONE, 0,
                                                 (int32_t)defaults.connection_window) == 0);
    h2_limits_init(&f->limits, &defaults, f->now_ms);
}

/* drain takes everything the session would send, as the front's writes
 * do, then gives the frame buffer's pages back when nothing is left. */
static void drain(struct front *f)
{
    const uint8_t *out;
    ssize_t n;
    int rounds = 0;

    while ((n = nghttp2_session_mem_send(f->session, &out)) > 0 && ++rounds < 1000)
        h2_mem_note_output(&f->mem);
    assert(n >= 0 || n == NGHTTP2_ERR_NOMEM || rounds == 1000);
    if (!nghttp2_session_want_write(f->session) && h2_mem_releasable(&f->mem))
        h2_mem_release(&f->mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = NGHTTP2_CLIENT_MAGIC;
    struct front f = {.now_ms = 1000};
    size_t chunk, at = 0;

    if (size < 1)
        return 0;
    /* The first byte: how many bytes each read brings, and whether the
     * input starts with the client preface (the fuzzer need not find it). */
    chunk = (data[0] & 0x7f) == 0 ? size : (size_t)(data[0] & 0x7f) * 16;
    bool add_preface = data[0] & 0x80;
    data++;
    size--;
    start(&f);
    drain(&f);
    if (add_preface &&
        nghttp2_session_mem_recv(f.session, (const uint8_t *)preface, sizeof(preface) - 1) < 0)
        goto out;
    while (at < size && !f.out_of_glitches) {
        size_t len = size - at < chunk ? size - at : chunk;
        ssize_t rv = nghttp2_session_mem_recv(f.session, data + at, len);
        if (rv < 0)
            break; /* tlsterm closes the connection */
        assert((size_t)rv == len);
        at += len;
        f.now_ms += 10;
        drain(&f);
        if (!nghttp2_session_want_read(f.session) && !nghttp2_session_want_write(f.session))
            break;
    }
out:
    nghttp2_session_del(f.session);
    while (f.streams != NULL)
        unlink_stream(&f, f.streams);
    return 0;
}
