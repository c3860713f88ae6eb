/* h2_limits_test: the pure logic of the HTTP/2 attack limits: the cause
 * tokens (an interface, like reason tokens), the glitch bucket, which frames
 * are glitches, the timeouts' deadlines, and which limits fire once. What
 * ends a connection is tested end to end in
 * tests/integration/test_http2_limits.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "config.h"
#include "h2_limits.h"

static const char *const expected_causes[] = {
    "rapid_reset",    "glitches",         "continuations", "control_flood",
    "outbound_queue", "settings_timeout", "write_timeout", "stream_write_timeout",
    "max_streams",
};

static struct cfg_http2 small_limits(void)
{
    return (struct cfg_http2){.glitch_burst = 3,
                              .glitch_rate = 10,
                              .settings_timeout_ms = 500,
                              .write_timeout_ms = 2000};
}

static void test_cause_tokens_are_stable(void **state)
{
    (void)state;
    assert_int_equal(H2_ABUSE_COUNT, sizeof(expected_causes) / sizeof(expected_causes[0]));
    for (int i = 0; i < H2_ABUSE_COUNT; i++)
        assert_string_equal(h2_abuse_cause_name((enum h2_abuse_cause)i), expected_causes[i]);
}

static void test_glitch_bucket_burst_and_refill(void **state)
{
    struct cfg_http2 cfg = small_limits();
    struct h2_limits limits;

    (void)state;
    h2_limits_init(&limits, &cfg, 1000, NULL);
    /* The burst, then empty. */
    for (int i = 0; i < 3; i++)
        assert_false(h2_limits_glitch(&limits, 1000));
    assert_true(h2_limits_glitch(&limits, 1000));
    /* 10 per second: one token after 100 ms, not before. */
    assert_true(h2_limits_glitch(&limits, 1050));
    assert_false(h2_limits_glitch(&limits, 1200));
    /* A long pause refills no more than the burst. */
    for (int i = 0; i < 3; i++)
        assert_false(h2_limits_glitch(&limits, 100000));
    assert_true(h2_limits_glitch(&limits, 100000));
}

static void test_which_frames_are_glitches(void **state)
{
    struct cfg_http2 cfg = small_limits();
    struct h2_limits limits;
    struct h2_limits_stream stream;

    (void)state;
    h2_limits_init(&limits, &cfg, 1, NULL);
    h2_limits_stream_init(&stream);
    /* Empty DATA: a glitch without END_STREAM only. */
    assert_string_equal(h2_limits_frame_recv(&limits, &stream, 1, NGHTTP2_DATA, 0, 0),
                        "empty_data");
    assert_null(
        h2_limits_frame_recv(&limits, &stream, 1, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 0));
    assert_null(h2_limits_frame_recv(&limits, &stream, 1, NGHTTP2_DATA, 0, 10));
    /* WINDOW_UPDATE: the first is free, then one per DATA sent, per window. */
    assert_null(h2_limits_frame_recv(&limits, NULL, 0, NGHTTP2_WINDOW_UPDATE, 0, 0));
    assert_string_equal(h2_limits_frame_recv(&limits, NULL, 0, NGHTTP2_WINDOW_UPDATE, 0, 0),
                        "window_update");
    assert_null(h2_limits_frame_recv(&limits, &stream, 1, NGHTTP2_WINDOW_UPDATE, 0, 0));
    assert_string_equal(h2_limits_frame_recv(&limits, &stream, 1, NGHTTP2_WINDOW_UPDATE, 0, 0),
                        "window_update");
    assert_null(h2_limits_frame_sent(&limits, NULL, NULL, &stream, NGHTTP2_DATA, 0));
    assert_null(h2_limits_frame_recv(&limits, NULL, 0, NGHTTP2_WINDOW_UPDATE, 0, 0));
    assert_null(h2_limits_frame_recv(&limits, &stream, 1, NGHTTP2_WINDOW_UPDATE, 0, 0));
    /* An update for a stream that has closed: DATA was in flight. */
    assert_null(h2_limits_frame_recv(&limits, NULL, 3, NGHTTP2_WINDOW_UPDATE, 0, 0));
    /* Every RST_STREAM sent is one. */
    assert_string_equal(
        h2_limits_frame_sent(&limits, NULL, NULL, &stream, NGHTTP2_RST_STREAM, 0),
        "rst_stream_sent");
    /* The SETTINGS ACK stops its timeout; a client's RST_STREAM is noted. */
    assert_int_equal(limits.settings_sent_ms, 1);
    assert_null(h2_limits_frame_recv(&limits, NULL, 0, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0));
    assert_int_equal(limits.settings_sent_ms, 0);
    assert_false(limits.reset_received);
    assert_null(h2_limits_frame_recv(&limits, NULL, 1, NGHTTP2_RST_STREAM, 0, 0));
    assert_true(limits.reset_received);
}

static void test_deadlines(void **state)
{
    struct cfg_http2 cfg = small_limits();
    struct h2_limits limits;
    struct h2_limits_stream stream;

    (void)state;
    h2_limits_init(&limits, &cfg, 1000, NULL);
    /* The SETTINGS ACK first. */
    assert_int_equal(h2_limits_deadline(&limits, 0), 1500);
    limits.settings_sent_ms = 0;
    assert_int_equal(h2_limits_deadline(&limits, 0), 0);
    /* A stall runs from its first moment, not from the last look. */
    h2_limits_set_stalled(&limits, true, 3000);
    h2_limits_set_stalled(&limits, true, 4000);
    assert_int_equal(h2_limits_deadline(&limits, 0), 5000);
    assert_int_equal(h2_limits_deadline(&limits, 2500), 4500);
    h2_limits_set_stalled(&limits, false, 0);
    assert_int_equal(h2_limits_deadline(&limits, 0), 0);
    h2_limits_stream_init(&stream);
    assert_int_equal(h2_limits_stream_stalled(&stream, true, 7000), 7000);
    assert_int_equal(h2_limits_stream_stalled(&stream, true, 8000), 7000);
    assert_int_equal(h2_limits_stream_stalled(&stream, false, 9000), 0);
    assert_true(h2_limits_expired(7000, 2000, 9000));
    assert_false(h2_limits_expired(7000, 2000, 8999));
    assert_false(h2_limits_expired(0, 2000, 9000));
}

static unsigned num_reported;
static enum h2_abuse_cause last_reported;

static void record_report(struct conn *c, enum h2_abuse_cause cause, const char *detail)
{
    (void)c;
    (void)detail;
    num_reported++;
    last_reported = cause;
}

/* The stream cap fires once, however many HEADERS pass it before its
 * GOAWAY goes out: a second GOAWAY would carry a higher last stream id
 * (found by fuzz/h2_session_fuzz.c). An attack after it still counts. */
static void test_max_streams_fires_once(void **state)
{
    struct cfg_http2 cfg = small_limits();
    struct h2_limits limits;
    nghttp2_session_callbacks *callbacks;
    nghttp2_session *session;

    (void)state;
    assert_int_equal(nghttp2_session_callbacks_new(&callbacks), 0);
    assert_int_equal(nghttp2_session_server_new(&session, callbacks, NULL), 0);
    h2_limits_init(&limits, &cfg, 1000, record_report);
    num_reported = 0;
    h2_limits_fire(&limits, NULL, session, H2_ABUSE_MAX_STREAMS, NULL);
    h2_limits_fire(&limits, NULL, session, H2_ABUSE_MAX_STREAMS, NULL);
    assert_int_equal(num_reported, 1);
    assert_int_equal(last_reported, H2_ABUSE_MAX_STREAMS);
    assert_int_equal(nghttp2_session_get_outbound_queue_size(session), 1);
    assert_false(h2_limits_must_close(&limits));
    h2_limits_fire(&limits, NULL, session, H2_ABUSE_GLITCHES, "priority");
    assert_int_equal(num_reported, 2);
    assert_int_equal(last_reported, H2_ABUSE_GLITCHES);
    assert_true(h2_limits_must_close(&limits));
    h2_limits_fire(&limits, NULL, session, H2_ABUSE_MAX_STREAMS, NULL);
    h2_limits_fire(&limits, NULL, session, H2_ABUSE_CONTROL_FLOOD, NULL);
    assert_int_equal(num_reported, 2);
    nghttp2_session_del(session);
    nghttp2_session_callbacks_del(callbacks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cause_tokens_are_stable),
        cmocka_unit_test(test_glitch_bucket_burst_and_refill),
        cmocka_unit_test(test_which_frames_are_glitches),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_max_streams_fires_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
