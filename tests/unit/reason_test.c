/* reason_test: the termination reason tokens. They are an interface that
 * operators grep and alert on, so test_token_list_is_stable pins the whole
 * list: a token may be added at its place, never renamed or moved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "reason.h"

/* The 48 bytes reason.h promises are always enough. */
#define REASON_TEXT_MAX 48

static const char *const expected_tokens[] = {
    "protocol_version",
    "no_shared_cipher",
    "no_shared_group",
    "http_request_on_tls_port",
    "client_alert", /* then ":" and the alert, see test_client_alert_names */
    "handshake_timeout",
    "client_closed",
    "tcp_reset",
    "malformed",
    "unknown_sni",
    "no_application_protocol",
    "client_cert_missing",
    "client_cert_untrusted",
    "client_cert_expired",
    "client_cert_revoked",
    "tls_error",
    "done",
    "idle_timeout",
    "half_closed_timeout",
    "backend_connect_failed",
    "backend_connect_timeout",
    "client_reset",
    "client_tls_error",
    "backend_reset",
    "shutdown",
    "out_of_memory",
    "http2_abuse",
    "proxy_header_rejected",
};

static void test_token_list_is_stable(void **state)
{
    char text[REASON_TEXT_MAX];

    assert_int_equal(END_REASON_COUNT, sizeof(expected_tokens) / sizeof(expected_tokens[0]));
    for (int r = 0; r < END_REASON_COUNT; r++) {
        reason_name((enum end_reason)r, 200, text, sizeof(text));
        if (r == END_CLIENT_ALERT) {
            assert_string_equal(text, "client_alert:200");
            text[strlen("client_alert")] = '\0';
        }
        assert_string_equal(text, expected_tokens[r]);
    }
}

static bool is_lower_snake(const char *token)
{
    if (token[0] < 'a' || token[0] > 'z')
        return false;
    for (const char *p = token; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return token[strlen(token) - 1] != '_';
}

static void test_tokens_are_nonempty_unique_lower_snake(void **state)
{
    char names[END_REASON_COUNT][REASON_TEXT_MAX];

    for (int r = 0; r < END_REASON_COUNT; r++) {
        /* An unnamed alert shows the bare "client_alert" prefix as its base. */
        uint8_t alert = r == END_CLIENT_ALERT ? 200 : 0;
        const char *name = reason_name((enum end_reason)r, alert, names[r], sizeof(names[r]));
        assert_ptr_equal(name, names[r]);
        if (r == END_CLIENT_ALERT) {
            assert_string_equal(name, "client_alert:200");
            names[r][strlen("client_alert")] = '\0';
        }
        assert_true(strlen(names[r]) > 0);
        assert_null(strchr(names[r], ' '));
        if (!is_lower_snake(names[r]))
            fail_msg("reason %d token '%s' is not lower_snake", r, names[r]);
        for (int other = 0; other < r; other++) {
            if (strcmp(names[r], names[other]) == 0)
                fail_msg("reasons %d and %d share the token '%s'", other, r, names[r]);
        }
    }
}

static void test_client_alert_names(void **state)
{
    char text[REASON_TEXT_MAX];

    assert_string_equal(reason_name(END_CLIENT_ALERT, 48, text, sizeof(text)),
                        "client_alert:unknown_ca");
    assert_string_equal(reason_name(END_CLIENT_ALERT, 42, text, sizeof(text)),
                        "client_alert:bad_certificate");
    assert_string_equal(reason_name(END_CLIENT_ALERT, 70, text, sizeof(text)),
                        "client_alert:protocol_version");
    assert_string_equal(reason_name(END_CLIENT_ALERT, 120, text, sizeof(text)),
                        "client_alert:no_application_protocol");
    assert_string_equal(reason_name(END_CLIENT_ALERT, 200, text, sizeof(text)),
                        "client_alert:200");
    assert_string_equal(reason_name(END_CLIENT_ALERT, 255, text, sizeof(text)),
                        "client_alert:255");
    /* The alert matters only for END_CLIENT_ALERT. */
    assert_string_equal(reason_name(END_TLS_ERROR, 48, text, sizeof(text)), "tls_error");
}

static void test_every_alert_name_fits_and_is_lower_snake(void **state)
{
    char text[REASON_TEXT_MAX];

    for (int alert = 0; alert < 256; alert++) {
        const char *name = reason_alert_name((uint8_t)alert);
        /* A truncated token would end in the last byte of the buffer. */
        size_t len = strlen(reason_name(END_CLIENT_ALERT, (uint8_t)alert, text, sizeof(text)));
        assert_true(len < sizeof(text) - 1);
        if (name == NULL)
            continue;
        assert_true(is_lower_snake(name));
        assert_int_equal(strncmp(text, "client_alert:", 13), 0);
        assert_string_equal(text + 13, name);
    }
    assert_string_equal(reason_alert_name(48), "unknown_ca");
    assert_string_equal(reason_alert_name(0), "close_notify");
    assert_null(reason_alert_name(1));
    assert_null(reason_alert_name(255));
}

static void test_handshake_failure_is_everything_before_done(void **state)
{
    for (int r = 0; r < END_REASON_COUNT; r++) {
        if (reason_is_handshake_failure((enum end_reason)r) != (r < END_DONE))
            fail_msg("reason_is_handshake_failure(%d) is wrong", r);
    }
    assert_true(reason_is_handshake_failure(END_PROTOCOL_VERSION));
    assert_true(reason_is_handshake_failure(END_TLS_ERROR));
    assert_false(reason_is_handshake_failure(END_DONE));
    assert_false(reason_is_handshake_failure(END_CLIENT_TLS_ERROR));
}

static void test_short_buffer_is_cut_and_terminated(void **state)
{
    char text[8];

    memset(text, 'x', sizeof(text));
    assert_string_equal(reason_name(END_PROTOCOL_VERSION, 0, text, sizeof(text)), "protoco");
    memset(text, 'x', sizeof(text));
    assert_string_equal(reason_name(END_CLIENT_ALERT, 48, text, sizeof(text)), "client_");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_list_is_stable),
        cmocka_unit_test(test_tokens_are_nonempty_unique_lower_snake),
        cmocka_unit_test(test_client_alert_names),
        cmocka_unit_test(test_every_alert_name_fits_and_is_lower_snake),
        cmocka_unit_test(test_handshake_failure_is_everything_before_done),
        cmocka_unit_test(test_short_buffer_is_cut_and_terminated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
