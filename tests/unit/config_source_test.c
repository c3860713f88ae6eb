/* config_source_test: backend.source (config_source.c): the default, the
 * values, config_needs_net_admin (source: client only, not proxy_protocol)
 * and cfg_backend_per_client, and the load
 * errors of source: client with their exact "FILE:LINE:COL: message" lines
 * (unix servers, a server's family without a listen address, a listen
 * address's family without a server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "config_fixture.h"

static int group_setup(void **state) { return config_fixture_setup("config_source_test"); }

static int group_teardown(void **state) { return config_fixture_teardown(); }

/* LISTENER(listen, backend): one listener; |backend| is the backend
 * mapping's inner keys, on line 5. */
#define LISTENER(listen, backend)                                                              \
    "listeners:\n"                                                                             \
    "  - name: edge\n"                                                                         \
    "    listen: " listen "\n"                                                                 \
    "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"                              \
    "    backend: {" backend "}\n"

static void test_default_and_values(void **state)
{
    struct config *config = config_fixture_load(
        LISTENER("[\"127.0.0.1:0\"]", "servers: [\"127.0.0.1:8080\", \"unix:/run/a.sock\"]"));
    assert_non_null(config);
    assert_int_equal(config->listeners[0].backend->source, CFG_BACKEND_SOURCE_PROXY);
    assert_false(cfg_backend_per_client(&config->listeners[0]));
    assert_null(config_needs_net_admin(config));
    config_free(config);

    config = config_fixture_load("listeners:\n"
                                 "  - name: plain\n"
                                 "    listen: \"127.0.0.1:0\"\n"
                                 "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
                                 "    backend: {servers: [\"127.0.0.1:8080\"]}\n"
                                 "  - name: edge\n"
                                 "    mode: http\n"
                                 "    listen: [\"127.0.0.1:1\", \"[::1]:1\"]\n"
                                 "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
                                 "    backend:\n"
                                 "      source: client\n"
                                 "      servers: [\"[::1]:8080\", \"127.0.0.1:8080\"]\n");
    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    assert_int_equal(config->listeners[1].backend->source, CFG_BACKEND_SOURCE_CLIENT);
    assert_true(cfg_backend_per_client(&config->listeners[1]));
    assert_ptr_equal(config_needs_net_admin(config), &config->listeners[1]);
    config_free(config);
}

static void test_proxy_protocol_needs_no_net_admin(void **state)
{
    /* A PROXY header keeps connections per client, but they come from the
     * proxy's own address: no IP_TRANSPARENT, no CAP_NET_ADMIN. */
    struct config *config = config_fixture_load(
        LISTENER("\"127.0.0.1:0\"", "servers: \"127.0.0.1:8080\", proxy_protocol: v2"));
    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    assert_true(cfg_backend_per_client(&config->listeners[0]));
    assert_null(config_needs_net_admin(config));
    config_free(config);

    /* source: client with a PROXY header still needs it. */
    config = config_fixture_load(LISTENER(
        "\"127.0.0.1:0\"", "servers: \"127.0.0.1:8080\", source: client, proxy_protocol: v1"));
    assert_non_null(config);
    assert_ptr_equal(config_needs_net_admin(config), &config->listeners[0]);
    config_free(config);
}

static void test_bad_value(void **state)
{
    config_fixture_expect_errors(
        LISTENER("\"127.0.0.1:0\"", "servers: \"127.0.0.1:8080\", source: transparent"),
        "t.yaml:5:50: invalid source 'transparent'; allowed: proxy, client\n");
}

static void test_unix_server(void **state)
{
    /* Only the unix server: its family's listen address is not reported
     * as unserved on top. */
    config_fixture_expect_errors(
        LISTENER("\"127.0.0.1:0\"", "source: client, servers: \"unix:/run/a.sock\""),
        "t.yaml:5:40: backend server 'unix:/run/a.sock' is a unix socket, but "
        "backend.source: client connects from the client's IP address; use a TCP address, "
        "or source: proxy\n");
}

static void test_families(void **state)
{
    config_fixture_expect_errors(
        LISTENER("\"127.0.0.1:0\"", "source: client, servers: [\"127.0.0.1:1\", \"[::1]:2\"]"),
        "t.yaml:5:56: backend server '[::1]:2' is IPv6, but no listen address of listener "
        "'edge' is: with backend.source: client a server takes clients of its own family "
        "only; listen on an IPv6 address too, or use source: proxy\n");
    config_fixture_expect_errors(
        LISTENER("[\"[::1]:0\", \"127.0.0.1:0\"]", "source: client, servers: \"[::1]:2\""),
        "t.yaml:3:25: listen address '127.0.0.1:0' takes IPv4 clients, but no backend server "
        "is IPv4: with backend.source: client a client is sent to a server of its own "
        "family; add an IPv4 server, or use source: proxy\n");
}

static void test_bad_server_reported_alone(void **state)
{
    /* A server that does not parse is reported; the checks that match
     * servers to their positions wait for it to be fixed. */
    config_fixture_expect_errors(
        LISTENER("\"127.0.0.1:0\"", "source: client, servers: [\"nope\", \"[::1]:2\"]"),
        "t.yaml:5:41: invalid backend server address 'nope': expected \"host:port\", "
        "\"[v6]:port\" or \"unix:/path\"\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_default_and_values, config_fixture_reset),
        cmocka_unit_test_teardown(test_proxy_protocol_needs_no_net_admin, config_fixture_reset),
        cmocka_unit_test_teardown(test_bad_value, config_fixture_reset),
        cmocka_unit_test_teardown(test_unix_server, config_fixture_reset),
        cmocka_unit_test_teardown(test_families, config_fixture_reset),
        cmocka_unit_test_teardown(test_bad_server_reported_alone, config_fixture_reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
