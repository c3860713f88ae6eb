/* h2_limits: the HTTP/2 front's attack limits. See h2_limits.h. */
#include "h2_limits.h"

#include <nghttp2/nghttp2.h>

#include "config.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

static const char *const cause_names[H2_ABUSE_COUNT] = {
    [H2_ABUSE_RAPID_RESET] = "rapid_reset",
    [H2_ABUSE_GLITCHES] = "glitches",
    [H2_ABUSE_CONTINUATIONS] = "continuations",
    [H2_ABUSE_CONTROL_FLOOD] = "control_flood",
    [H2_ABUSE_OUTBOUND_QUEUE] = "outbound_queue",
    [H2_ABUSE_SETTINGS_TIMEOUT] = "settings_timeout",
    [H2_ABUSE_WRITE_TIMEOUT] = "write_timeout",
    [H2_ABUSE_STREAM_WRITE_TIMEOUT] = "stream_write_timeout",
    [H2_ABUSE_MAX_STREAMS] = "max_streams",
};

const char *h2_abuse_cause_name(enum h2_abuse_cause cause)
{
    return cause < H2_ABUSE_COUNT ? cause_names[cause] : "";
}

void h2_limits_init(struct h2_limits *limits, const struct cfg_http2 *cfg, uint64_t now_ms,
                    h2_limits_report_fn *report)
{
    *limits = (struct h2_limits){
        .cfg = cfg,
        .report = report,
        .glitches = {.tokens_milli = (uint64_t)cfg->glitch_burst * 1000, .last_ms = now_ms},
        .settings_sent_ms = now_ms,
        /* The client's first connection WINDOW_UPDATE (raising the default
         * window) needs no DATA before it. */
        .data_sent = true,
    };
}

void h2_limits_stream_init(struct h2_limits_stream *stream)
{
    /* A first WINDOW_UPDATE may come before any DATA. */
    *stream = (struct h2_limits_stream){.data_sent = true};
}

void h2_limits_set_options(const struct cfg_http2 *cfg, struct nghttp2_option *option)
{
#ifdef HAVE_NGHTTP2_STREAM_RESET_RATE_LIMIT
    /* Rapid Reset (CVE-2023-44487): nghttp2's bucket of client resets. */
    nghttp2_option_set_stream_reset_rate_limit(option, cfg->reset_burst, cfg->reset_rate);
#endif
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
    /* CONTINUATION flood (CVE-2024-27316, CVE-2024-28182). */
    nghttp2_option_set_max_continuations(option, cfg->max_continuations);
#endif
    nghttp2_option_set_max_outbound_ack(option, cfg->max_outbound_acks);
    nghttp2_option_set_max_deflate_dynamic_table_size(option, cfg->header_table_size);
}

bool h2_limits_glitch(struct h2_limits *limits, uint64_t now_ms)
{
    return !ratelimit_bucket_take(&limits->glitches, limits->cfg->glitch_rate,
                                  limits->cfg->glitch_burst, now_ms);
}

const char *h2_limits_frame_recv(struct h2_limits *limits, struct h2_limits_stream *stream,
                                 int32_t stream_id, uint8_t type, uint8_t flags,
                                 size_t data_len)
{
    switch (type) {
    case NGHTTP2_SETTINGS:
        if (flags & NGHTTP2_FLAG_ACK)
            limits->settings_sent_ms = 0;
        return NULL;
    case NGHTTP2_RST_STREAM:
        limits->reset_received = true;
        return NULL;
    case NGHTTP2_DATA:
        return data_len == 0 && !(flags & NGHTTP2_FLAG_END_STREAM) ? "empty_data" : NULL;
    case NGHTTP2_WINDOW_UPDATE: {
        /* A client gives window back for DATA it read: an update with no
         * DATA sent since the last one on that window only costs us. An
         * update for a closed stream is ignored (DATA was in flight). */
        if (stream_id != 0 && stream == NULL)
            return NULL;
        bool *data_sent = stream != NULL ? &stream->data_sent : &limits->data_sent;
        bool useless = !*data_sent;
        *data_sent = false;
        return useless ? "window_update" : NULL;
    }
    default:
        return NULL;
    }
}

const char *h2_limits_frame_sent(struct h2_limits *limits, struct conn *c,
                                 struct nghttp2_session *session,
                                 struct h2_limits_stream *stream, uint8_t type,
                                 uint32_t error_code)
{
    switch (type) {
    case NGHTTP2_DATA:
        limits->data_sent = true;
        if (stream != NULL)
            stream->data_sent = true;
        return NULL;
    case NGHTTP2_RST_STREAM:
        /* MadeYouReset (CVE-2025-8671): resets a client provokes, ours
         * and nghttp2's alike. */
        return "rst_stream_sent";
    case NGHTTP2_GOAWAY:
        /* nghttp2's reset bucket, once empty, sends GOAWAY INTERNAL_ERROR
         * and goes on reading: we end it. tlsterm never sends that code. */
        if (error_code == NGHTTP2_INTERNAL_ERROR && limits->reset_received)
            h2_limits_fire(limits, c, session, H2_ABUSE_RAPID_RESET, NULL);
        return NULL;
    default:
        return NULL;
    }
}

void h2_limits_after_recv(struct h2_limits *limits, struct conn *c,
                          struct nghttp2_session *session, long rv)
{
    enum h2_abuse_cause cause = H2_ABUSE_COUNT;
    if (rv == NGHTTP2_ERR_FLOODED)
        cause = H2_ABUSE_CONTROL_FLOOD;
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
    else if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
        cause = H2_ABUSE_CONTINUATIONS;
#endif
    else if (nghttp2_session_get_outbound_queue_size(session) >
             limits->cfg->max_outbound_frames)
        cause = H2_ABUSE_OUTBOUND_QUEUE;
    if (cause != H2_ABUSE_COUNT)
        h2_limits_fire(limits, c, session, cause, NULL);
}

void h2_limits_check_timeouts(struct h2_limits *limits, struct conn *c,
                              struct nghttp2_session *session, uint64_t now_ms)
{
    if (h2_limits_expired(limits->settings_sent_ms, limits->cfg->settings_timeout_ms, now_ms))
        h2_limits_fire(limits, c, session, H2_ABUSE_SETTINGS_TIMEOUT, NULL);
    else if (h2_limits_expired(limits->stalled_ms, limits->cfg->write_timeout_ms, now_ms))
        h2_limits_fire(limits, c, session, H2_ABUSE_WRITE_TIMEOUT, NULL);
}

uint64_t h2_limits_stream_stalled(struct h2_limits_stream *stream, bool stalled,
                                  uint64_t now_ms)
{
    if (!stalled)
        stream->stalled_ms = 0;
    else if (stream->stalled_ms == 0)
        stream->stalled_ms = now_ms;
    return stream->stalled_ms;
}

void h2_limits_report(struct conn *c, enum h2_abuse_cause cause, const char *detail)
{
    struct metrics_listener *m = c->listener->metrics;
    metrics_counter_add(&m->http2_abuse[cause], 1);
    if (!worker_log_http2_abuse(c->worker))
        return;
    struct log_line line;
    /* A graceful end at the stream cap is routine; the rest are attacks or
     * broken clients. */
    conn_log_begin(&line, c, cause == H2_ABUSE_MAX_STREAMS ? LOG_INFO : LOG_WARN,
                   "http2_abuse");
    log_str(&line, "cause", cause_names[cause]);
    if (detail != NULL)
        log_str(&line, "detail", detail);
    log_end(&line);
}

void h2_limits_fire(struct h2_limits *limits, struct conn *c, struct nghttp2_session *session,
                    enum h2_abuse_cause cause, const char *detail)
{
    /* A real attack after the graceful stream cap still ends it at once;
     * the cap itself fires once: every HEADERS past it in the same read
     * would otherwise submit one more GOAWAY, each with a higher last
     * stream id (RFC 9113 6.8 forbids that), and count again. */
    if (limits->fired && (limits->cause != H2_ABUSE_MAX_STREAMS || cause == H2_ABUSE_MAX_STREAMS))
        return;
    limits->fired = true;
    limits->cause = cause;
    limits->report(c, cause, detail);
    switch (cause) {
    case H2_ABUSE_RAPID_RESET:
        break;
    case H2_ABUSE_MAX_STREAMS:
        nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session),
                              NGHTTP2_NO_ERROR, NULL, 0);
        break;
    case H2_ABUSE_SETTINGS_TIMEOUT:
        nghttp2_session_terminate_session(session, NGHTTP2_SETTINGS_TIMEOUT);
        break;
    default:
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
        break;
    }
}

void h2_limits_set_stalled(struct h2_limits *limits, bool stalled, uint64_t now_ms)
{
    if (!stalled)
        limits->stalled_ms = 0;
    else if (limits->stalled_ms == 0)
        limits->stalled_ms = now_ms;
}

static uint64_t earliest(uint64_t a, uint64_t b) { return a == 0 || (b != 0 && b < a) ? b : a; }

uint64_t h2_limits_deadline(const struct h2_limits *limits, uint64_t stream_stalled_ms)
{
    const struct cfg_http2 *cfg = limits->cfg;
    uint64_t at = 0;
    if (limits->settings_sent_ms != 0)
        at = limits->settings_sent_ms + cfg->settings_timeout_ms;
    if (limits->stalled_ms != 0)
        at = earliest(at, limits->stalled_ms + cfg->write_timeout_ms);
    if (stream_stalled_ms != 0)
        at = earliest(at, stream_stalled_ms + cfg->write_timeout_ms);
    return at;
}
