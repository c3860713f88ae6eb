/* backend_group_test: a group's servers at run time (backend_group.h): the
 * choice among the servers of one address family (backend.source: client),
 * a state kept when a group is attached again with the same address,
 * passive failures, and references given back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <sys/socket.h>

#include "backend_group.h"

static struct net_addr parse(const char *text)
{
    struct net_addr addr;
    char err[256];

    if (net_addr_parse(text, true, &addr, err, sizeof(err)) != 0)
        fail_msg("net_addr_parse(\"%s\"): %s", text, err);
    return addr;
}

static void test_family_and_state_across_attach(void **state)
{
    struct net_addr addrs[] = {parse("127.0.0.1:1"), parse("[::1]:2")};
    struct cfg_server servers[] = {
        {.address = "127.0.0.1:1", .weight = 1, .addrs = &addrs[0], .num_addrs = 1},
        {.address = "[::1]:2", .weight = 1, .addrs = &addrs[1], .num_addrs = 1}};
    struct cfg_backend cfg = {.name = "unit",
                              .servers = servers,
                              .num_servers = 2,
                              .retries = 2,
                              .passive_failures = 2,
                              .passive_cooldown_ms = 60000,
                              .panic = true};
    enum backend_pick_result result;
    (void)state;

    struct backend_group *group = backend_group_attach(&cfg);
    assert_non_null(group);
    for (int i = 0; i < 4; i++) {
        struct backend_server *s = backend_group_pick(group, &cfg, AF_INET6, NULL, 0, &result);
        assert_non_null(s);
        assert_int_equal(s->addr.ss.ss_family, AF_INET6);
        assert_int_equal(atomic_load(&s->active), 1);
        backend_server_release(s);
    }
    /* Two failures in a row put the v4 server in a cooldown; no panic for
     * it, and with the v6 server tried there is nothing left. */
    struct backend_server *v4 = backend_group_pick(group, &cfg, AF_INET, NULL, 0, &result);
    assert_non_null(v4);
    backend_server_connect_failed(v4, &cfg, "unit");
    backend_server_connect_failed(v4, &cfg, "unit");
    assert_true(atomic_load(&v4->passive_down));
    struct backend_server *tried[] = {v4};
    assert_null(backend_group_pick(group, &cfg, AF_INET, tried, 1, &result));
    assert_int_equal(result, BACKEND_PICK_EXHAUSTED);
    backend_server_release(v4);

    /* Attached again (a reload), the same address keeps its state. */
    struct backend_group *again = backend_group_attach(&cfg);
    assert_ptr_equal(again, group);
    struct backend_server *same = backend_group_pick(group, &cfg, AF_INET6, NULL, 0, &result);
    assert_non_null(same);
    backend_server_release(same);
    assert_null(backend_group_pick(group, &cfg, AF_INET, NULL, 0, &result));
    assert_int_equal(result, BACKEND_PICK_NONE_UP);
    backend_group_detach(again);
    backend_group_detach(group);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_state_across_attach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
