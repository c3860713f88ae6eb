/* backend_health_test: the health and resolver threads stop whenever they
 * are asked to, even right after they were started, before the health
 * thread has entered its event loop (a stop that loop's start undid once
 * left tlsterm waiting forever at a SIGTERM soon after it started). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/thread.h>

#include "backend_group.h"

/* Starts and stops in a row; a lost stop used to hang most of them. */
#define ROUNDS 50
/* A hang ends the test (SIGALRM) instead of waiting for ctest's timeout. */
#define DEADLINE_S 60

static void test_stop_right_after_start(void **state)
{
    (void)state;
    assert_int_equal(evthread_use_pthreads(), 0);
    alarm(DEADLINE_S);
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(backend_health_start(), 0);
        backend_health_stop();
    }
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_right_after_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
