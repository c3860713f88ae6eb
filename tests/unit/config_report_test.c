/* config_report_test: the top-level "instance" (config_report.c): the
 * default (the host name), a valid name, and the exact "FILE:LINE:COL:
 * message" of names that cannot go into a file name or a metric label. */
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

static int group_setup(void **state) { return config_fixture_setup("config_report_test"); }

static int group_teardown(void **state) { return config_fixture_teardown(); }

/* LISTENER: one listener, on lines 2 to 5 after the line 1 the tests give. */
#define LISTENER                                                                               \
    "listeners:\n"                                                                             \
    "  - name: edge\n"                                                                         \
    "    listen: [\"127.0.0.1:0\"]\n"                                                          \
    "    tls: {certificates: [{cert: cert.pem, key: key.pem}]}\n"                              \
    "    backend: {servers: [\"127.0.0.1:8080\"]}\n"

#define INSTANCE_HINT                                                                          \
    "expected 1 to 64 letters, digits, '_', '.' or '-' (it names report files and labels "     \
    "metrics), such as \"edge1\" or \"${HOSTNAME}\"\n"

static void test_instance_default_is_the_host_name(void **state)
{
    char host[256] = "";
    struct config *config = config_fixture_load(LISTENER);

    assert_non_null(config);
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    host[CFG_INSTANCE_MAX] = '\0';
    for (char *p = host; *p != '\0'; p++)
        if (strchr(CFG_INSTANCE_CHARS, *p) == NULL)
            *p = '_';
    assert_string_equal(config->report.instance, host[0] != '\0' ? host : "localhost");
    config_free(config);
}

static void test_instance_value(void **state)
{
    struct config *config = config_fixture_load("instance: edge-1.eu_west\n" LISTENER);

    assert_non_null(config);
    assert_string_equal(config->report.instance, "edge-1.eu_west");
    config_free(config);

    /* 64 characters is the most. */
    config = config_fixture_load(
        "instance: "
        "a123456789b123456789c123456789d123456789e123456789f123456789g123\n" LISTENER);
    assert_non_null(config);
    assert_int_equal(strlen(config->report.instance), 64);
    config_free(config);
}

static void test_instance_errors(void **state)
{
    config_fixture_expect_errors("instance: \"edge/1\"\n" LISTENER,
                                 "t.yaml:1:11: invalid instance 'edge/1'; " INSTANCE_HINT);
    config_fixture_expect_errors("instance: \"\"\n" LISTENER,
                                 "t.yaml:1:11: invalid instance ''; " INSTANCE_HINT);
    config_fixture_expect_errors("instance: \"a b\"\n" LISTENER,
                                 "t.yaml:1:11: invalid instance 'a b'; " INSTANCE_HINT);
    config_fixture_expect_errors("instance: \"x\\ty\"\n" LISTENER,
                                 "t.yaml:1:11: invalid instance 'x\\ty'; " INSTANCE_HINT);
    config_fixture_expect_errors(
        "instance: "
        "a123456789b123456789c123456789d123456789e123456789f123456789g1234\n" LISTENER,
        "t.yaml:1:11: invalid instance "
        "'a123456789b123456789c123456789d123456789e123456789f123456789g1234'; " INSTANCE_HINT);
    config_fixture_expect_errors(
        "instance: [edge]\n" LISTENER,
        "t.yaml:1:11: expected a name for 'instance', got a sequence\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_instance_default_is_the_host_name, config_fixture_reset),
        cmocka_unit_test_teardown(test_instance_value, config_fixture_reset),
        cmocka_unit_test_teardown(test_instance_errors, config_fixture_reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
