/* config_proxy_test: the PROXY protocol keys (backend.proxy_protocol and
 * its TLV switches, listeners[].accept_proxy): values, defaults, and the
 * exact "FILE:LINE:COL: message" lines for every mistake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "config.h"
#include "config_fixture.h"

static int group_setup(void **state)
{
    (void)state;
    return config_fixture_setup("config_proxy_test");
}

static int group_teardown(void **state)
{
    (void)state;
    return config_fixture_teardown();
}

#define HEAD                                                                                   \
    "listeners:\n"                                                                             \
    "  - name: edge\n"                                                                         \
    "    listen: \"127.0.0.1:0\"\n"                                                            \
    "    tls:\n"                                                                               \
    "      certificates:\n"                                                                    \
    "        - cert: cert.pem\n"                                                               \
    "          key: key.pem\n"                                                                 \
    "    backend:\n"                                                                           \
    "      servers: [\"127.0.0.1:8080\"]\n"

static void test_defaults_off(void **state)
{
    struct config *config = config_fixture_load(HEAD);
    assert_non_null(config);
    const struct cfg_listener *l = &config->listeners[0];
    assert_int_equal(l->proxy_protocol, 0);
    assert_false(l->proxy_protocol_unique_id);
    assert_false(l->proxy_protocol_crc32c);
    assert_null(l->accept_proxy.from);
    assert_false(cfg_backend_per_client(l));
    config_free(config);
}

static void test_all_keys(void **state)
{
    struct config *config =
        config_fixture_load(HEAD "      proxy_protocol: v2\n"
                                 "      proxy_protocol_unique_id: true\n"
                                 "      proxy_protocol_crc32c: true\n"
                                 "    accept_proxy:\n"
                                 "      from: [\"10.0.0.0/8\", \"fd00::/8\", 192.0.2.7]\n"
                                 "      timeout: 250ms\n");
    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    const struct cfg_listener *l = &config->listeners[0];
    assert_int_equal(l->proxy_protocol, 2);
    assert_true(l->proxy_protocol_unique_id);
    assert_true(l->proxy_protocol_crc32c);
    assert_true(cfg_backend_per_client(l));
    assert_int_equal(l->accept_proxy.num_from, 3);
    assert_int_equal(l->accept_proxy.from[0].family, AF_INET);
    assert_int_equal(l->accept_proxy.from[0].prefix, 8);
    assert_int_equal(l->accept_proxy.from[1].family, AF_INET6);
    assert_int_equal(l->accept_proxy.from[2].prefix, 32);
    assert_int_equal(l->accept_proxy.timeout_ms, 250);
    static const uint8_t inside[4] = {10, 1, 2, 3}, outside[4] = {11, 0, 0, 1};
    assert_true(cfg_cidr_contains(&l->accept_proxy.from[0], AF_INET, inside));
    assert_false(cfg_cidr_contains(&l->accept_proxy.from[0], AF_INET, outside));
    config_free(config);

    /* v1, and one CIDR as a plain string; the timeout defaults to 3s. */
    config = config_fixture_load(HEAD "      proxy_protocol: v1\n"
                                      "    accept_proxy: {from: 127.0.0.1}\n");
    assert_non_null(config);
    assert_int_equal(config->listeners[0].proxy_protocol, 1);
    assert_int_equal(config->listeners[0].accept_proxy.num_from, 1);
    assert_int_equal(config->listeners[0].accept_proxy.timeout_ms, 3000);
    config_free(config);
}

static void test_mistakes(void **state)
{
    config_fixture_expect_errors(
        HEAD "      proxy_protocol: v3\n",
        "t.yaml:10:23: invalid proxy_protocol 'v3'; allowed: off, v1, v2\n");
    config_fixture_expect_errors(
        HEAD "      proxy_protocol: v1\n"
             "      proxy_protocol_unique_id: true\n"
             "      proxy_protocol_crc32c: true\n",
        "t.yaml:11:33: proxy_protocol_unique_id needs 'proxy_protocol: v2' in the same "
        "backend (only v2 carries TLVs)\n"
        "t.yaml:12:30: proxy_protocol_crc32c needs 'proxy_protocol: v2' in the same backend "
        "(only v2 carries TLVs)\n");
    config_fixture_expect_errors(
        HEAD "    accept_proxy:\n"
             "      from: [\"10.0.0.1/8\", nope, \"::/129\", 10.0.0.0/8, 10.0.0.0/8]\n"
             "      timeout: 0ms\n"
             "      tiemout: 1s\n",
        "t.yaml:11:14: invalid accept_proxy.from entry '10.0.0.1/8': bits past the /8 prefix "
        "are set; did you mean 10.0.0.0/8?\n"
        "t.yaml:11:28: invalid accept_proxy.from entry 'nope': expected an IPv4 or IPv6 "
        "address or CIDR, such as 10.0.0.0/8 or ::1/128\n"
        "t.yaml:11:34: invalid accept_proxy.from entry '::/129': the prefix length must be 0 "
        "to 128 for an IPv6 address\n"
        "t.yaml:11:56: duplicate '10.0.0.0/8' in 'accept_proxy.from'\n"
        "t.yaml:12:16: invalid duration '0ms' for 'timeout'; expected a whole number above 0 "
        "with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
        "t.yaml:13:7: unknown key 'tiemout' in accept_proxy; allowed: from, "
        "timeout\n");
    config_fixture_expect_errors(HEAD "    accept_proxy: {timeout: 1s}\n",
                                 "t.yaml:10:19: accept_proxy is missing required key 'from'\n");
    config_fixture_expect_errors(
        HEAD "    accept_proxy: 10.0.0.0/8\n",
        "t.yaml:10:19: expected a mapping for 'accept_proxy', got '10.0.0.0/8'\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults_off, config_fixture_reset),
        cmocka_unit_test_teardown(test_all_keys, config_fixture_reset),
        cmocka_unit_test_teardown(test_mistakes, config_fixture_reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
