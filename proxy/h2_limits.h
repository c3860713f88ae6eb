/* h2_limits: the attack limits of the HTTP/2 front (mode_h2.c), configured
 * under listeners[].http2 (struct cfg_http2).
 *
 * Each limit that fires ends the connection with a GOAWAY (or, for a
 * stream's write timeout, resets one stream), writes an http2_abuse log
 * line (rate-limited per worker, with the cause, the listener and the
 * client) and counts tlsterm_http2_abuse_total{listener,cause}:
 *
 *   rapid_reset           nghttp2's RST_STREAM bucket (reset_burst,
 *                         reset_rate): nghttp2 sends GOAWAY INTERNAL_ERROR
 *   glitches              tlsterm's glitch bucket (glitch_burst,
 *                         glitch_rate): GOAWAY ENHANCE_YOUR_CALM
 *   continuations         more than max_continuations CONTINUATION frames
 *                         in one header block (nghttp2's count)
 *   control_flood         SETTINGS or PING ACKs past max_outbound_acks
 *                         (nghttp2's NGHTTP2_ERR_FLOODED)
 *   outbound_queue        more than max_outbound_frames frames queued
 *                         after a read
 *   settings_timeout      our SETTINGS not acknowledged within
 *                         settings_timeout: GOAWAY SETTINGS_TIMEOUT
 *   write_timeout         the client took no bytes for write_timeout while
 *                         we had bytes for it (a full socket, or a shut
 *                         connection window)
 *   stream_write_timeout  one stream's window stayed shut for
 *                         write_timeout: RST_STREAM CANCEL, the
 *                         connection goes on
 *   max_streams           max_streams_per_connection streams opened: a
 *                         graceful GOAWAY NO_ERROR, the client reconnects
 *
 * A glitch is what a well-behaved client seldom causes and an attacker
 * causes by the thousand (MadeYouReset, CVE-2025-8671, and its kin): every
 * RST_STREAM sent to the client, an invalid frame or header field, an
 * empty DATA frame without END_STREAM, DATA on a closed stream, a
 * PRIORITY frame, and a WINDOW_UPDATE on a window no DATA was sent on since
 * the last one.
 *
 * Ownership. struct h2_limits is embedded in the front's state; it holds
 * no pointers but the configuration, which the connection's generation
 * keeps alive. */
#ifndef TLSTERM_H2_LIMITS_H
#define TLSTERM_H2_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

struct cfg_http2;
struct conn;
struct nghttp2_option;
struct nghttp2_session;

/* enum h2_abuse_cause is which limit fired: stable tokens for the log and
 * the metrics (never renamed, only added). */
enum h2_abuse_cause {
    H2_ABUSE_RAPID_RESET,
    H2_ABUSE_GLITCHES,
    H2_ABUSE_CONTINUATIONS,
    H2_ABUSE_CONTROL_FLOOD,
    H2_ABUSE_OUTBOUND_QUEUE,
    H2_ABUSE_SETTINGS_TIMEOUT,
    H2_ABUSE_WRITE_TIMEOUT,
    H2_ABUSE_STREAM_WRITE_TIMEOUT,
    H2_ABUSE_MAX_STREAMS,
    H2_ABUSE_COUNT
};

/* h2_abuse_cause_name returns |cause|'s token ("rapid_reset"...). */
const char *h2_abuse_cause_name(enum h2_abuse_cause cause);

/* h2_limits_report_fn logs and counts that |cause| fired on the connection
 * of |c|, with |detail| (NULL: none): h2_limits_report in the daemon. */
typedef void h2_limits_report_fn(struct conn *c, enum h2_abuse_cause cause, const char *detail);

/* struct h2_limits_stream is what the limits keep per stream. */
struct h2_limits_stream {
    bool data_sent;      /* DATA went out since the client's last WINDOW_UPDATE on it */
    uint64_t stalled_ms; /* bytes wait for a shut stream window since; 0: none */
};

struct h2_limits {
    const struct cfg_http2 *cfg;
    h2_limits_report_fn *report; /* what h2_limits_fire tells */
    struct ratelimit_bucket glitches;
    uint64_t settings_sent_ms; /* our SETTINGS await their ACK since; 0: none */
    uint64_t stalled_ms;       /* the client takes no bytes since; 0: it does */
    uint32_t num_streams;      /* streams opened over the connection's life */
    bool data_sent;            /* DATA went out since the last connection WINDOW_UPDATE */
    bool reset_received;       /* the client sent RST_STREAM */
    bool fired;                /* a limit ended the connection: |cause| says which */
    enum h2_abuse_cause cause;
};

/* h2_limits_init starts the limits of a connection under |cfg| at |now_ms|,
 * the moment its SETTINGS are submitted; a limit that fires is told to
 * |report|. */
void h2_limits_init(struct h2_limits *limits, const struct cfg_http2 *cfg, uint64_t now_ms,
                    h2_limits_report_fn *report);

/* h2_limits_stream_init starts the limits of a new stream. */
void h2_limits_stream_init(struct h2_limits_stream *stream);

/* h2_limits_set_options applies the limits nghttp2 enforces itself (reset
 * bucket, CONTINUATION count, ACK queue) to |option|. */
void h2_limits_set_options(const struct cfg_http2 *cfg, struct nghttp2_option *option);

/* h2_limits_glitch counts one glitch at |now_ms|. It returns true when the
 * bucket is empty: the caller ends the connection (h2_limits_fire). */
bool h2_limits_glitch(struct h2_limits *limits, uint64_t now_ms);

/* h2_limits_frame_recv takes note of a frame received of |type| with
 * |flags| (|data_len| bytes of data without padding for DATA) on stream
 * |stream_id|, whose limits are |stream| (NULL: closed or unknown, or the
 * connection for 0). It returns the
 * kind of glitch the frame is ("empty_data", "window_update"), or NULL. */
const char *h2_limits_frame_recv(struct h2_limits *limits, struct h2_limits_stream *stream,
                                 int32_t stream_id, uint8_t type, uint8_t flags,
                                 size_t data_len);

/* h2_limits_frame_sent takes note of a frame of |type| sent on |stream|
 * (NULL as above), with |error_code| for a GOAWAY. It returns the kind of
 * glitch the frame is ("rst_stream_sent"), or NULL. A GOAWAY
 * INTERNAL_ERROR that nghttp2 sends to a client that reset streams is its
 * reset bucket emptied: the connection of |c| is ended for rapid_reset. */
const char *h2_limits_frame_sent(struct h2_limits *limits, struct conn *c,
                                 struct nghttp2_session *session,
                                 struct h2_limits_stream *stream, uint8_t type,
                                 uint32_t error_code);

/* h2_limits_after_recv checks, after nghttp2_session_mem_recv returned
 * |rv|, nghttp2's fatal codes for its own limits (FLOODED, too many
 * CONTINUATIONs) and the outbound queue, and ends the connection of |c|
 * for a limit that fired. */
void h2_limits_after_recv(struct h2_limits *limits, struct conn *c,
                          struct nghttp2_session *session, long rv);

/* h2_limits_check_timeouts ends the connection of |c| when its SETTINGS
 * ACK or its write timeout expired at |now_ms|. */
void h2_limits_check_timeouts(struct h2_limits *limits, struct conn *c,
                              struct nghttp2_session *session, uint64_t now_ms);

/* h2_limits_stream_stalled says whether |stream|'s bytes wait for its
 * shut window (|stalled|) at |now_ms|, and returns since when (0: they do
 * not). */
uint64_t h2_limits_stream_stalled(struct h2_limits_stream *stream, bool stalled,
                                  uint64_t now_ms);

/* h2_limits_fire records that |cause| ended the connection of |c|, logs and
 * counts it (limits->report), and submits the GOAWAY tlsterm sends for it
 * on |session|: ENHANCE_YOUR_CALM, SETTINGS_TIMEOUT for settings_timeout,
 * NO_ERROR with the last stream processed for max_streams, and none for
 * rapid_reset (nghttp2 sent its own). |detail| (NULL: none) says more, such
 * as the kind of the last glitch. Only the first cause counts, once (but one
 * that ends the connection still follows max_streams). */
void h2_limits_fire(struct h2_limits *limits, struct conn *c, struct nghttp2_session *session,
                    enum h2_abuse_cause cause, const char *detail);

/* h2_limits_must_close returns true when a limit fired that ends the
 * connection now (all but max_streams, which lets its streams finish). */
static inline bool h2_limits_must_close(const struct h2_limits *limits)
{
    return limits->fired && limits->cause != H2_ABUSE_MAX_STREAMS;
}

/* h2_limits_report writes the http2_abuse line of |c| for |cause| (unless
 * the worker's bucket for such lines is empty) and counts it in
 * tlsterm_http2_abuse_total. */
void h2_limits_report(struct conn *c, enum h2_abuse_cause cause, const char *detail);

/* h2_limits_set_stalled says whether the client takes no bytes while we
 * have some for it (|stalled|), at |now_ms|: the write timeout runs from
 * the first moment it stopped. */
void h2_limits_set_stalled(struct h2_limits *limits, bool stalled, uint64_t now_ms);

/* h2_limits_deadline returns the earliest moment a timeout fires: the
 * SETTINGS ACK, the connection's write timeout, or a stream's, stalled since
 * |stream_stalled_ms| (0: none). 0 when none runs. */
uint64_t h2_limits_deadline(const struct h2_limits *limits, uint64_t stream_stalled_ms);

/* h2_limits_expired returns true when something that started at |since_ms|
 * (0: never) has run for |timeout_ms| at |now_ms|. */
static inline bool h2_limits_expired(uint64_t since_ms, uint32_t timeout_ms, uint64_t now_ms)
{
    return since_ms != 0 && now_ms >= since_ms + timeout_ms;
}

#endif
