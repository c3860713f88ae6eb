/* config_redirect_test: the settings of config_redirect.c: a `mode: redirect`
 * listener (its own schema: no tls, no backend, the keys it refuses and
 * why) and http.hsts, with the exact "FILE:LINE:COL: message" lines.
 *
 * As config_test.c does, the group setup works in a fresh temporary
 * directory with dummy certificate and key files, and the file under test is
 * always "t.yaml". */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "config_fixture.h"

static int group_setup(void **state)
{
    (void)state;
    return config_fixture_setup("config_redirect_test");
}

static int group_teardown(void **state)
{
    (void)state;
    return config_fixture_teardown();
}

#define REDIRECT_HEAD                                                                          \
    "listeners:\n"                                                                             \
    "  - name: plain\n"                                                                        \
    "    mode: redirect\n"                                                                     \
    "    listen: \"127.0.0.1:0\"\n"
#define HTTP_LISTENER                                                                          \
    "listeners:\n"                                                                             \
    "  - name: web\n"                                                                          \
    "    mode: http\n"                                                                         \
    "    listen: \"127.0.0.1:0\"\n"                                                            \
    "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"                              \
    "    backend: {servers: [\"127.0.0.1:8080\"]}\n"

static void test_redirect_defaults(void **state)
{
    struct config *config = config_fixture_load(REDIRECT_HEAD);
    const struct cfg_listener *l;

    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    l = &config->listeners[0];
    assert_int_equal(l->mode, CFG_MODE_REDIRECT);
    assert_int_equal(l->redirect.status, 308);
    assert_int_equal(l->redirect.port, 443);
    assert_int_equal(l->num_certs, 0);
    assert_null(l->backend);
    assert_int_equal(l->http.max_request_header_bytes, 64 * 1024);
    assert_int_equal(l->request_header_timeout_ms, 10000);
    assert_int_equal(l->idle_timeout_ms, 300000);
    assert_null(l->http.hsts.value);
    config_free(config);
}

static void test_redirect_all_keys(void **state)
{
    /* "mode" may come last: it chooses the schema wherever it stands. */
    struct config *config = config_fixture_load("listeners:\n"
                                                "  - name: plain\n"
                                                "    listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n"
                                                "    redirect: {status: 301, port: 8443}\n"
                                                "    http: {max_request_header_bytes: 8KiB}\n"
                                                "    timeouts: {request_header: 2s, idle: 1m}\n"
                                                "    max_connections: 50\n"
                                                "    mode: redirect\n");
    const struct cfg_listener *l;

    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    l = &config->listeners[0];
    assert_int_equal(l->mode, CFG_MODE_REDIRECT);
    assert_int_equal(l->num_listen, 2);
    assert_int_equal(l->redirect.status, 301);
    assert_int_equal(l->redirect.port, 8443);
    assert_int_equal(l->http.max_request_header_bytes, 8 * 1024);
    assert_int_equal(l->request_header_timeout_ms, 2000);
    assert_int_equal(l->idle_timeout_ms, 60000);
    assert_int_equal(l->max_connections, 50);
    config_free(config);

    static const char *const statuses[] = {"301", "302", "307", "308"};
    for (size_t i = 0; i < 4; i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), REDIRECT_HEAD "    redirect: {status: %s}\n", statuses[i]);
        config = config_fixture_load(yaml);
        assert_non_null(config);
        assert_int_equal(config->listeners[0].redirect.status, atoi(statuses[i]));
        config_free(config);
    }
}

static void test_redirect_refused_keys(void **state)
{
    config_fixture_expect_errors(
        REDIRECT_HEAD "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
                      "    backend: {servers: [\"127.0.0.1:8080\"]}\n"
                      "    http2: {max_concurrent_streams: 10}\n",
        "t.yaml:5:5: a redirect listener speaks plain HTTP: 'tls' has no place here; "
        "remove it (HTTPS is served by a listener with mode http or tcp)\n"
        "t.yaml:6:5: a redirect listener answers every request itself: 'backend' has "
        "no place here; remove it\n"
        "t.yaml:7:5: 'http2' has no effect on a redirect listener, which answers "
        "every request itself; remove it\n");
    config_fixture_expect_errors(
        REDIRECT_HEAD "    http:\n"
                      "      x_forwarded: true\n"
                      "      hsts: {max_age: 365d}\n"
                      "    timeouts: {handshake: 5s, idle: 5s, queue: 1s}\n",
        "t.yaml:6:7: 'http.x_forwarded' has no effect on a redirect listener, which "
        "answers every request itself; remove it\n"
        "t.yaml:7:7: hsts is never sent over plain HTTP (RFC 6797 7.2), so a redirect "
        "listener has none; set it on the listener with mode http that serves the "
        "HTTPS side\n"
        "t.yaml:8:16: 'timeouts.handshake' has no effect on a redirect listener, "
        "which answers every request itself; remove it\n"
        "t.yaml:8:41: 'timeouts.queue' has no effect on a redirect listener, which "
        "answers every request itself; remove it\n");
    /* Still a schema: unknown keys and missing required ones are reported. */
    config_fixture_expect_errors(
        "listeners:\n"
        "  - name: plain\n"
        "    mode: redirect\n"
        "    redirct: {}\n",
        "t.yaml:4:5: unknown key 'redirct' in a redirect listener; did you mean "
        "'redirect'? allowed: name, mode, listen, redirect, http, timeouts, "
        "max_connections, tls, backend, http2\n"
        "t.yaml:2:5: listener is missing required key 'listen'\n");
}

static void test_redirect_bad_values(void **state)
{
    config_fixture_expect_errors(
        REDIRECT_HEAD "    redirect: {status: 303, port: 0}\n"
                      "    http: {max_request_header_bytes: 10}\n",
        "t.yaml:5:24: invalid redirect status '303'; allowed: 301, 302, 307, 308 (308 "
        "and 307 keep the method and body; 301 and 302 may turn a POST into a GET)\n"
        "t.yaml:5:35: invalid port '0'; expected an integer from 1 to 65535\n"
        "t.yaml:6:38: invalid max_request_header_bytes '10'; expected a size from "
        "1KiB to 1MiB: a number of bytes, or a whole number with KiB or MiB (e.g. "
        "64KiB)\n");
    config_fixture_expect_errors(
        REDIRECT_HEAD "    redirect: {port: 70000, host: x}\n",
        "t.yaml:5:22: invalid port '70000'; expected an integer from 1 to 65535\n"
        "t.yaml:5:29: unknown key 'host' in redirect; allowed: status, port\n");
}

static void test_redirect_keys_on_other_listeners(void **state)
{
    config_fixture_expect_errors(
        HTTP_LISTENER "    redirect: {status: 301}\n",
        "t.yaml:7:5: redirect settings need mode: redirect: this listener terminates "
        "TLS, where 'redirect' has no effect; remove it, or make a listener of its "
        "own with 'mode: redirect' (and no tls or backend)\n");
    /* tls and backend stay required in tcp and http mode. */
    config_fixture_expect_errors("listeners:\n"
                                 "  - name: web\n"
                                 "    mode: http\n"
                                 "    listen: \"127.0.0.1:0\"\n",
                                 "t.yaml:2:5: listener is missing required key 'tls'\n"
                                 "t.yaml:2:5: listener is missing required key 'backend'\n");
}

static void test_hsts(void **state)
{
    static const struct {
        const char *yaml;
        uint64_t max_age_s;
        const char *value;
    } cases[] = {
        {"{max_age: 365d}", 31536000, "max-age=31536000"},
        {"{max_age: 3650d, include_subdomains: true}", 315360000,
         "max-age=315360000; includeSubDomains"},
        {"{max_age: 2h, include_subdomains: true, preload: true}", 7200,
         "max-age=7200; includeSubDomains; preload"},
        {"{max_age: 0, preload: false}", 0, "max-age=0"},
        {"{max_age: 90s, preload: true}", 90, "max-age=90; preload"}, /* warned only */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), HTTP_LISTENER "    http: {hsts: %s}\n", cases[i].yaml);
        struct config *config = config_fixture_load(yaml);
        assert_non_null(config);
        assert_string_equal(config_fixture_errors, "");
        assert_int_equal(config->listeners[0].http.hsts.max_age_s, cases[i].max_age_s);
        assert_string_equal(config->listeners[0].http.hsts.value, cases[i].value);
        config_free(config);
    }
    config_fixture_expect_errors(
        HTTP_LISTENER "    http: {hsts: {max_age: 3651d}}\n"
                      "  - name: web2\n"
                      "    mode: http\n"
                      "    listen: \"127.0.0.1:0\"\n"
                      "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
                      "    backend: {servers: [\"127.0.0.1:8080\"]}\n"
                      "    http: {hsts: {max_age: 1500ms, preload: yes}}\n"
                      "  - name: web3\n"
                      "    mode: http\n"
                      "    listen: \"127.0.0.1:0\"\n"
                      "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
                      "    backend: {servers: [\"127.0.0.1:8080\"]}\n"
                      "    http: {hsts: {include_subdomains: true}}\n"
                      "  - name: web4\n"
                      "    mode: http\n"
                      "    listen: \"127.0.0.1:0\"\n"
                      "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
                      "    backend: {servers: [\"127.0.0.1:8080\"]}\n"
                      "    http: {hsts: true}\n",
        "t.yaml:7:28: invalid duration '3651d' for 'max_age'; expected whole seconds "
        "with a unit s, m, h or d, at most 3650d (e.g. 365d), or 0 to make browsers "
        "forget the policy\n"
        "t.yaml:13:28: invalid duration '1500ms' for 'max_age'; expected whole "
        "seconds with a unit s, m, h or d, at most 3650d (e.g. 365d), or 0 to make "
        "browsers forget the policy\n"
        "t.yaml:13:45: invalid preload 'yes'; expected true or false\n"
        "t.yaml:19:18: hsts is missing required key 'max_age'\n"
        "t.yaml:25:18: expected a mapping for 'hsts', got 'true'\n");
    /* tcp mode has no http section at all. */
    config_fixture_expect_errors(
        "listeners:\n"
        "  - name: edge\n"
        "    listen: \"127.0.0.1:0\"\n"
        "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
        "    backend: {servers: [\"127.0.0.1:8080\"]}\n"
        "    http: {hsts: {max_age: 1d}}\n",
        "t.yaml:6:5: http settings need mode: http: this listener is in tcp mode, "
        "where 'http' has no effect; add 'mode: http' or remove it\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_redirect_defaults, config_fixture_reset),
        cmocka_unit_test_teardown(test_redirect_all_keys, config_fixture_reset),
        cmocka_unit_test_teardown(test_redirect_refused_keys, config_fixture_reset),
        cmocka_unit_test_teardown(test_redirect_bad_values, config_fixture_reset),
        cmocka_unit_test_teardown(test_redirect_keys_on_other_listeners, config_fixture_reset),
        cmocka_unit_test_teardown(test_hsts, config_fixture_reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
