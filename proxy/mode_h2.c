/* mode_h2: the HTTP/2 front of http mode, the connection's side. The
 * session and its streams (nghttp2's callbacks, each stream one exchange
 * with an HTTP/1.1 upstream: h2_session.c, h2_response.c) do no I/O; this
 * file feeds them the client's bytes, writes what they send, keeps the
 * deadlines and binds their operations to the real upstreams and this
 * connection (session_ops).
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
 * Attack limits (h2_limits.h) watch what the client sends and what it makes
 * us send; the timeouts among them (SETTINGS ACK, writes, a stream's shut
 * window) are kept here, with the idle and request header timeouts. Once a
 * limit fires the connection ends after its GOAWAY is written.
 *
 * States (h2_session.c): H2_OPEN, H2_NOTICE once the worker drains,
 * H2_GOAWAY. The connection ends when nghttp2 wants neither to read nor to
 * write.
 *
 * Ownership. The front (struct h2_front) is the conn's mode state. It owns
 * the session (and through it the streams and their exchanges) and the
 * bytes the socket has yet to take (|spill|). */
#include "mode.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "conn.h"
#include "h2_front.h"
#include "h2_limits.h"
#include "h2_mem.h"
#include "http.h"
#include "metrics.h"
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

static _Thread_local uint8_t read_buf[H2_READ_LEN];

/* Frames nghttp2 hands out one by one are gathered here and written
 * together: the HEADERS and DATA of a turn's responses share a TLS record
 * (one SSL_write, one seal) instead of taking one each. Nothing stays in it
 * between calls (see send_frames). */
static _Thread_local uint8_t gather_buf[H2_GATHER_LEN];

static struct h2_front *front_of(const struct conn *c) { return c->mode_state; }

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

/* session_end is the reason of a session that ended without an error of
 * the client's or the socket's. */
static enum end_reason session_end(const struct h2_front *f)
{
    return f->out_of_memory ? END_OUT_OF_MEMORY : END_DONE;
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
            ssize_t rv = h2_session_recv(f, read_buf, n);
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
        h2_session_handshake_done(f);
    }
    /* Streams whose buffers were drained let their upstreams read again;
     * what they add is sent on the next turn. */
    h2_session_take(f);
    if (send_frames(f) != CONN_OK)
        return CONN_CLOSED;
    if (h2_limits_must_close(&f->limits))
        return close_abusive(f);
    /* Queued again meanwhile, or by the frames just sent. */
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

/* certificate_covers says whether the certificate served on |c| covers
 * |host|: the name the client asked for (SNI), or one the certificate
 * lists. */
static bool certificate_covers(struct conn *c, const char *host)
{
    const char *sni = SSL_get_servername(c->client.ssl, TLSEXT_NAMETYPE_host_name);
    return (sni != NULL && strcasecmp(sni, host) == 0) || tls_ctx_covers(c->client.ssl, host);
}

static void log_exchange(struct http_exchange *x) { http_exchange_log(x, "h2"); }

/* The session's world: the real upstreams (http_upstream.c) and this
 * connection. */
static const struct h2_session_ops session_ops = {
    .upstream_start = http_upstream_start,
    .upstream_request_body = http_upstream_request_body,
    .upstream_response_taken = http_upstream_response_taken,
    .upstream_handshake_done = http_upstream_handshake_done,
    .upstream_release = http_upstream_release,
    .exchange_log = log_exchange,
    .covers = certificate_covers,
    .schedule = conn_resume_later,
    .report_abuse = h2_limits_report,
};

static int h2_start(struct conn *c)
{
    struct h2_front *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    c->mode_state = f;
    f->started_ms = f->last_activity_ms = clock_now_ms();
    if (h2_session_init(f, c, &session_ops) != 0)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    if (c->worker->draining)
        c->mode->drain(c);
    return run(c);
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
    if (h2_session_notice(front_of(c)))
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
    h2_session_cleanup(f);
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
