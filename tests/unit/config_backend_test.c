/* config_backend_test: backend groups in the configuration: named groups
 * and inline ones with the same keys, server entries, health settings,
 * and every error at FILE:LINE:COL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "config.h"
#include "config_fixture.h"

static int group_setup(void **state)
{
    (void)state;
    return config_fixture_setup("config_backend_test");
}

static int group_teardown(void **state)
{
    (void)state;
    return config_fixture_teardown();
}

#define LISTENER(backend)                                                                      \
    "listeners:\n"                                                                             \
    "  - name: edge\n"                                                                         \
    "    listen: \"127.0.0.1:0\"\n"                                                            \
    "    tls:\n"                                                                               \
    "      certificates:\n"                                                                    \
    "        - cert: cert.pem\n"                                                               \
    "          key: key.pem\n"                                                                 \
    "    backend: " backend "\n"

static void test_named_group_all_keys(void **state)
{
    struct config *config = config_fixture_load(
        LISTENER("app") "backends:\n"
                        "  app:\n"
                        "    servers:\n"
                        "      - \"127.0.0.1:8080\"\n"
                        "      - {address: \"localhost:8081\", weight: 2}\n"
                        "      - {address: \"unix:/run/app.sock\", backup: true}\n"
                        "    balance: least_conn\n"
                        "    retries: 3\n"
                        "    resolve_interval: 5s\n"
                        "    resolve: first\n"
                        "    health:\n"
                        "      check: {type: http, path: /healthz, interval: 2s, timeout: 1s, "
                        "rise: 4, fall: 5, expect: \"200-299\"}\n"
                        "      passive: {failures: 3, cooldown: 10s}\n"
                        "      panic: false\n");
    (void)state;
    assert_non_null(config);
    assert_int_equal(config->num_backends, 1);
    const struct cfg_backend *g = cfg_listener_backend(&config->listeners[0]);
    assert_ptr_equal(g, config->backends[0]);
    assert_string_equal(g->name, "app");
    assert_false(g->is_inline);
    assert_int_equal(g->num_servers, 3);
    assert_false(g->servers[0].is_name);
    assert_int_equal(g->servers[0].num_addrs, 1);
    assert_true(g->servers[1].is_name);
    assert_string_equal(g->servers[1].host, "localhost");
    assert_string_equal(g->servers[1].port, "8081");
    assert_int_equal(g->servers[1].num_addrs, 1); /* resolve: first */
    assert_int_equal(g->servers[1].weight, 2);
    assert_true(g->servers[2].backup);
    assert_int_equal(g->servers[2].addrs[0].ss.ss_family, AF_UNIX);
    assert_int_equal(g->balance, CFG_BALANCE_LEAST_CONN);
    assert_int_equal(g->retries, 3);
    assert_int_equal(g->resolve_interval_ms, 5000);
    assert_int_equal(g->check.type, CFG_CHECK_HTTP);
    assert_string_equal(g->check.path, "/healthz");
    assert_int_equal(g->check.rise, 4);
    assert_int_equal(g->check.fall, 5);
    assert_int_equal(g->check.expect_min, 200);
    assert_int_equal(g->check.expect_max, 299);
    assert_int_equal(g->passive_failures, 3);
    assert_int_equal(g->passive_cooldown_ms, 10000);
    assert_false(g->panic);
    config_free(config);
}

static void test_inline_group_defaults(void **state)
{
    struct config *config = config_fixture_load(LISTENER("{servers: [\"127.0.0.1:8080\"]}"));
    (void)state;
    assert_non_null(config);
    const struct cfg_backend *g = cfg_listener_backend(&config->listeners[0]);
    assert_string_equal(g->name, "edge");
    assert_true(g->is_inline);
    assert_int_equal(g->servers[0].weight, 1);
    assert_int_equal(g->balance, CFG_BALANCE_ROUND_ROBIN);
    assert_int_equal(g->retries, 2);
    assert_int_equal(g->resolve_interval_ms, 30000);
    assert_int_equal(g->resolve, CFG_RESOLVE_ALL);
    assert_int_equal(g->check.type, CFG_CHECK_NONE);
    assert_int_equal(g->passive_failures, 0);
    assert_true(g->panic);
    config_free(config);
}

static void test_backends_may_follow_listeners(void **state)
{
    (void)state;
    /* One group shared by two listeners, written after them. */
    struct config *config = config_fixture_load(
        LISTENER("app") "  - name: edge2\n"
                        "    listen: \"127.0.0.1:0\"\n"
                        "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
                        "    backend: app\n"
                        "backends:\n"
                        "  app: {servers: \"127.0.0.1:1\"}\n");
    assert_non_null(config);
    assert_ptr_equal(config->listeners[0].backend, config->listeners[1].backend);
    config_free(config);
}

static void test_group_errors(void **state)
{
    (void)state;
    config_fixture_expect_errors(LISTENER("nope") "backends:\n"
                                                  "  app: {servers: \"127.0.0.1:1\"}\n",
                                 "t.yaml:8:14: unknown backend group 'nope'; defined in "
                                 "'backends': app\n");
    config_fixture_expect_errors(LISTENER("app") "backends:\n"
                                                 "  app: {servers: \"127.0.0.1:1\"}\n"
                                                 "  app: {servers: \"127.0.0.1:2\"}\n",
                                 "t.yaml:11:3: duplicate key 'app' (first defined at 10:3)\n");
    config_fixture_expect_errors(
        LISTENER("app") "backends:\n"
                        "  app:\n"
                        "    servers:\n"
                        "      - {address: \"127.0.0.1:1\", weight: 0}\n"
                        "      - {adress: \"127.0.0.1:2\"}\n"
                        "    balance: fastest\n"
                        "    retries: 11\n"
                        "    health: {check: {type: http, expect: \"600\", timeout: 5s, "
                        "interval: 1s}}\n",
        "t.yaml:12:42: invalid weight '0'; expected an integer from 1 to 256\n"
        "t.yaml:13:10: unknown key 'adress' in server; did you mean 'address'? allowed: "
        "address, weight, backup\n"
        "t.yaml:14:14: invalid balance 'fastest'; allowed: round_robin, least_conn, "
        "random_two\n"
        "t.yaml:15:14: invalid retries '11'; expected an integer from 0 to 10\n"
        "t.yaml:16:42: invalid expect '600'; expected a status or a range of statuses from "
        "100 to 599 (e.g. 200 or \"200-399\")\n"
        "t.yaml:16:21: health.check.timeout (5000ms) is longer than its interval (1000ms); "
        "make it shorter\n");
    config_fixture_expect_errors(
        LISTENER("{servers: \"127.0.0.1:1\"}") "backends:\n"
                                               "  edge: {servers: \"127.0.0.1:1\"}\n",
        "t.yaml:8:14: listener 'edge' has an inline backend, and a group of 'backends' has "
        "its name: the two would share health state; rename one, or write 'backend: edge'\n");
}

static void test_unresolvable_name_fails_the_load(void **state)
{
    (void)state;
    /* getaddrinfo's own words vary with the resolver (no such name, or no
     * name server reachable); the rest is ours. */
    assert_null(config_fixture_load(LISTENER("{servers: \"no-such-host.invalid:80\"}")));
    assert_non_null(
        strstr(config_fixture_errors,
               "t.yaml:8:24: invalid backend server address "
               "'no-such-host.invalid:80': cannot resolve 'no-such-host.invalid': "));
    assert_non_null(strstr(config_fixture_errors,
                           "(a host name must resolve when the configuration loads)\n"));
}

static void test_routes(void **state)
{
    (void)state;
    struct config *config = config_fixture_load(
        LISTENER("app") "    routes:\n"
                        "      - {sni: \"*.b.test\", backend: b}\n"
                        "      - {sni: a.test, backend: {servers: \"127.0.0.1:3\"}}\n"
                        "backends:\n"
                        "  app: {servers: \"127.0.0.1:1\"}\n"
                        "  b: {servers: \"127.0.0.1:2\"}\n");
    assert_non_null(config);
    const struct cfg_listener *l = &config->listeners[0];
    assert_int_equal(l->num_routes, 2);
    assert_string_equal(l->routes[0].sni, "*.b.test");
    assert_string_equal(l->routes[0].backend->name, "b");
    assert_string_equal(l->routes[1].backend->name, "edge.route2");
    assert_int_equal(config->num_backends, 3);
    config_free(config);

    config_fixture_expect_errors(
        LISTENER("app") "    routes:\n"
                        "      - {host: a.test, backend: app}\n"
                        "      - {sni: \"x.*\", backend: app}\n"
                        "      - {backend: nope}\n"
                        "      - {sni: a.test, path_prefix: /x, backend: app}\n"
                        "backends:\n"
                        "  app: {servers: \"127.0.0.1:1\"}\n",
        "t.yaml:11:15: invalid sni 'x.*'; expected a name, or '*.suffix' for any name under "
        "it\n"
        "t.yaml:12:19: unknown backend group 'nope'; defined in 'backends': app\n"
        "t.yaml:10:9: host and path_prefix routes are for mode http (decided per request); in "
        "mode tcp route by 'sni'\n"
        "t.yaml:12:9: route matches nothing; give it 'sni' (mode tcp), or 'host' and/or "
        "'path_prefix' (mode http)\n"
        "t.yaml:13:9: route mixes 'sni' with 'host' or 'path_prefix'; a tcp-mode listener "
        "routes by sni, an http-mode one by host and path\n");
}

static void test_inline_names_never_clash(void **state)
{
    (void)state;
    /* A group of 'backends' named like a route's inline group. */
    config_fixture_expect_errors(
        LISTENER("app") "    routes:\n"
                        "      - {sni: a.test, backend: {servers: \"127.0.0.1:3\"}}\n"
                        "backends:\n"
                        "  app: {servers: \"127.0.0.1:1\"}\n"
                        "  edge.route1: {servers: \"127.0.0.1:2\"}\n",
        "t.yaml:10:32: this inline backend is named 'edge.route1' (a route's inline group is "
        "named LISTENER.routeN), which the 'backends' group at 13:16 has too: the two would "
        "share one set of servers and health state; rename the listener or that group\n");
    /* A listener named like another listener's route group, both inline. */
    config_fixture_expect_errors(
        LISTENER("{servers: \"127.0.0.1:1\"}") "    routes:\n"
        "      - {sni: a.test, backend: {servers: \"127.0.0.1:3\"}}\n"
        "  - name: edge.route1\n"
        "    listen: \"127.0.0.1:0\"\n"
        "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
        "    backend: {servers: \"127.0.0.1:4\"}\n",
        "t.yaml:14:14: this inline backend is named 'edge.route1' (a listener's inline group "
        "takes the listener's name), which the inline group at 10:32 has too: the two would "
        "share one set of servers and health state; rename the listener or that group\n");
    /* Inline groups of distinct names, beside named ones: no error. */
    struct config *config = config_fixture_load(
        LISTENER("{servers: \"127.0.0.1:1\"}") "    routes:\n"
        "      - {sni: a.test, backend: {servers: \"127.0.0.1:3\"}}\n"
        "  - name: edge.route2\n"
        "    listen: \"127.0.0.1:0\"\n"
        "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"
        "    backend: {servers: \"127.0.0.1:4\"}\n"
        "backends:\n"
        "  edge.route3: {servers: \"127.0.0.1:5\"}\n");
    assert_non_null(config);
    assert_int_equal(config->num_backends, 4);
    config_free(config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_named_group_all_keys, config_fixture_reset),
        cmocka_unit_test_teardown(test_inline_group_defaults, config_fixture_reset),
        cmocka_unit_test_teardown(test_backends_may_follow_listeners, config_fixture_reset),
        cmocka_unit_test_teardown(test_group_errors, config_fixture_reset),
        cmocka_unit_test_teardown(test_unresolvable_name_fails_the_load, config_fixture_reset),
        cmocka_unit_test_teardown(test_routes, config_fixture_reset),
        cmocka_unit_test_teardown(test_inline_names_never_clash, config_fixture_reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
