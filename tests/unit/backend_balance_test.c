/* backend_balance_test: the choice of a server (backend_balance.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend_balance.h"

#define UP(w)                                                                                  \
    {                                                                                          \
        .weight = (w), .up = true                                                              \
    }

static int pick(enum cfg_balance balance, bool panic, const struct balance_server *s, size_t n,
                uint64_t ticket, enum balance_outcome *outcome)
{
    return backend_balance_pick(balance, panic, s, n, ticket, UINT64_C(0x0000000300000001),
                                outcome);
}

static void test_round_robin_follows_weights(void **state)
{
    struct balance_server s[] = {UP(1), UP(3)};
    enum balance_outcome outcome;
    int counts[2] = {0, 0};
    (void)state;

    for (uint64_t ticket = 0; ticket < 40; ticket++)
        counts[pick(CFG_BALANCE_ROUND_ROBIN, true, s, 2, ticket, &outcome)]++;
    assert_int_equal(counts[0], 10);
    assert_int_equal(counts[1], 30);
    assert_int_equal(outcome, BALANCE_PICKED);
}

static void test_down_cooling_and_tried_are_skipped(void **state)
{
    struct balance_server s[] = {UP(1), UP(1), UP(1), UP(1)};
    enum balance_outcome outcome;
    (void)state;

    s[0].up = false;
    s[1].cooling = true;
    s[2].tried = true;
    for (uint64_t ticket = 0; ticket < 8; ticket++)
        assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, true, s, 4, ticket, &outcome), 3);
    s[3].tried = true;
    /* Up servers exist (only tried): no panic, nothing left. */
    assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, true, s, 4, 0, &outcome), -1);
    assert_int_equal(outcome, BALANCE_NONE);
}

static void test_backups_only_without_primaries(void **state)
{
    struct balance_server s[] = {UP(1), UP(1)};
    enum balance_outcome outcome;
    (void)state;

    s[1].backup = true;
    for (uint64_t ticket = 0; ticket < 4; ticket++)
        assert_int_equal(pick(CFG_BALANCE_LEAST_CONN, true, s, 2, ticket, &outcome), 0);
    s[0].up = false;
    assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, true, s, 2, 0, &outcome), 1);
    assert_int_equal(outcome, BALANCE_PICKED);
}

static void test_panic_when_every_server_is_down(void **state)
{
    struct balance_server s[] = {UP(1), UP(1), UP(1)};
    enum balance_outcome outcome;
    (void)state;

    s[0].up = s[1].up = s[2].up = false;
    s[2].cooling = true; /* proof from traffic: not even in a panic */
    assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, true, s, 3, 0, &outcome), 0);
    assert_int_equal(outcome, BALANCE_PANIC);
    assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, true, s, 3, 1, &outcome), 1);
    assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, false, s, 3, 0, &outcome), -1);
    assert_int_equal(outcome, BALANCE_NONE);
}

static void test_panic_takes_cooling_servers_when_nothing_else_is_left(void **state)
{
    struct balance_server s[] = {UP(1), UP(1)};
    enum balance_outcome outcome;
    (void)state;

    /* One server, in a passive cooldown (its checks still hold it up): a
     * panic tries it rather than refuse the client. */
    s[0].cooling = true;
    assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, true, s, 1, 0, &outcome), 0);
    assert_int_equal(outcome, BALANCE_PANIC);
    assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, false, s, 1, 0, &outcome), -1);
    assert_int_equal(outcome, BALANCE_NONE);
    /* Tried already: not again. */
    s[0].tried = true;
    assert_int_equal(pick(CFG_BALANCE_LEAST_CONN, true, s, 1, 0, &outcome), -1);
    assert_int_equal(outcome, BALANCE_NONE);
    /* Both cooling, one down too: either may be taken, by each balance. */
    s[0].tried = false;
    s[1].cooling = true;
    s[1].up = false;
    for (uint64_t ticket = 0; ticket < 4; ticket++)
        assert_int_equal(pick(CFG_BALANCE_ROUND_ROBIN, true, s, 2, ticket, &outcome),
                         (int)(ticket % 2));
    assert_true(pick(CFG_BALANCE_RANDOM_TWO, true, s, 2, 0, &outcome) >= 0);
    assert_int_equal(outcome, BALANCE_PANIC);
    /* A server down but not cooling is preferred to a cooling one. */
    s[1].cooling = false;
    for (uint64_t ticket = 0; ticket < 4; ticket++)
        assert_int_equal(pick(CFG_BALANCE_LEAST_CONN, true, s, 2, ticket, &outcome), 1);
}

static void test_least_conn_per_weight(void **state)
{
    struct balance_server s[] = {UP(1), UP(4), UP(1)};
    enum balance_outcome outcome;
    (void)state;

    s[0].active = 2;
    s[1].active = 4; /* 1 per unit of weight */
    s[2].active = 3;
    for (uint64_t ticket = 0; ticket < 3; ticket++)
        assert_int_equal(pick(CFG_BALANCE_LEAST_CONN, true, s, 3, ticket, &outcome), 1);
    s[1].active = 8;
    assert_int_equal(pick(CFG_BALANCE_LEAST_CONN, true, s, 3, 0, &outcome), 0);
}

static void test_random_two_takes_the_lighter(void **state)
{
    struct balance_server s[] = {UP(1), UP(1), UP(1), UP(1)};
    enum balance_outcome outcome;
    (void)state;

    /* The draws are 1 and 3 (low and high halves of |random|). */
    s[1].active = 5;
    s[3].active = 1;
    assert_int_equal(pick(CFG_BALANCE_RANDOM_TWO, true, s, 4, 0, &outcome), 3);
    s[3].active = 9;
    assert_int_equal(pick(CFG_BALANCE_RANDOM_TWO, true, s, 4, 0, &outcome), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin_follows_weights),
        cmocka_unit_test(test_down_cooling_and_tried_are_skipped),
        cmocka_unit_test(test_backups_only_without_primaries),
        cmocka_unit_test(test_panic_when_every_server_is_down),
        cmocka_unit_test(test_panic_takes_cooling_servers_when_nothing_else_is_left),
        cmocka_unit_test(test_least_conn_per_weight),
        cmocka_unit_test(test_random_two_takes_the_lighter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
