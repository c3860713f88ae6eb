/* report_merge_test: report_top_merge (exact sums, the absent count of a
 * saturated table, what is dropped and marked) and report_merge (which
 * windows count: --since/--until, a duplicate report-id, overlapping
 * windows of one instance, mixed versions, the range and the sums). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"
#include "report_merge.h"

static const struct report_policy_key edge = {"edge", CFG_POLICY_INTERMEDIATE, 0x0303, 0x0304,
                                              false};

static uint64_t count_of(const struct report_top *top, const char *key)
{
    for (size_t i = 0; i < top->num; i++)
        if (strcmp(top->entries[i].key, key) == 0)
            return top->entries[i].count;
    return 0;
}

static void test_top_merge_exact(void **state)
{
    struct report_top a = {0}, b = {0};

    report_top_add(&a, "10.0.0.0/24", 3);
    report_top_add(&a, "10.0.1.0/24", 1);
    report_top_add(&b, "10.0.1.0/24", 4);
    report_top_add(&b, "10.0.2.0/24", 2);
    report_top_merge(&a, &b);
    assert_int_equal(a.num, 3);
    assert_false(a.saturated);
    assert_int_equal(count_of(&a, "10.0.0.0/24"), 3);
    assert_int_equal(count_of(&a, "10.0.1.0/24"), 5);
    assert_int_equal(count_of(&a, "10.0.2.0/24"), 2);
}

/* More than REPORT_TOP_K values together: the largest are kept, the exact
 * sums, and the table is marked saturated. */
static void test_top_merge_drops_and_marks(void **state)
{
    struct report_top a = {0}, b = {0};
    char key[32];

    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "a%02d", i);
        report_top_add(&a, key, (uint64_t)(100 + i));
        snprintf(key, sizeof(key), "b%02d", i);
        report_top_add(&b, key, (uint64_t)(1 + i));
    }
    assert_false(a.saturated);
    report_top_merge(&a, &b);
    assert_true(a.saturated);
    assert_int_equal(a.num, REPORT_TOP_K);
    assert_int_equal(count_of(&a, "a09"), 109);
    assert_int_equal(count_of(&a, "b09"), 10);
    assert_int_equal(count_of(&a, "b03"), 0); /* 4: among the 4 dropped */
    assert_int_equal(count_of(&a, "b04"), 5); /* the smallest kept */
}

/* A saturated table may have counted a value it lacks as often as its
 * smallest count: the merged count adds that, so it stays an upper bound. */
static void test_top_merge_saturated_absent(void **state)
{
    struct report_top a = {0}, b = {0};
    char key[32];

    for (int i = 0; i < REPORT_TOP_K + 1; i++) { /* one more than fits */
        snprintf(key, sizeof(key), "k%02d", i);
        report_top_add(&a, key, 5);
    }
    assert_true(a.saturated);
    /* The 17th took the place of one with 5: 10; the others are 5. */
    report_top_add(&b, "k00", 1);
    report_top_add(&b, "new", 2);
    report_top_merge(&b, &a);
    assert_true(b.saturated);
    /* "new" is only in b: it gets a's smallest count (5) on top of its 2. */
    assert_int_equal(count_of(&b, "new"), 7);
    assert_int_equal(count_of(&b, "k16"), 10);
}

static struct report_data *data_with(uint64_t successes, int failures, const char *network)
{
    struct report_data *data = report_data_new();
    assert_non_null(data);
    assert_int_equal(report_data_add_success(data, &edge, successes), 0);
    for (int i = 0; i < failures; i++)
        assert_int_equal(report_data_add_failure(data, &edge, "malformed", network, NULL, NULL),
                         0);
    return data;
}

static const char *const a_name[] = {"a"}, *const b_name[] = {"b"};
static const char *const v1[] = {"0.1.0"}, *const v2[] = {"0.2.0"};

static struct report_window window(const char *source, const char *id,
                                   const char *const *instance, const char *const *version,
                                   time_t start, time_t end, const struct report_data *data)
{
    return (struct report_window){.source = source,
                                  .organization = "o",
                                  .report_id = id,
                                  .start = start,
                                  .end = end,
                                  .instances = instance,
                                  .num_instances = 1,
                                  .versions = version,
                                  .num_versions = 1,
                                  .num_windows = 1,
                                  .data = data};
}

/* merge runs report_merge and returns its warnings (to free). */
static char *merge(const struct report_window *windows, size_t num,
                   const struct report_merge_options *options, struct report_merged *out)
{
    char *text = NULL;
    size_t len = 0;
    FILE *warnings = open_memstream(&text, &len);

    assert_non_null(warnings);
    assert_int_equal(report_merge(windows, num, options, true, warnings, out), 0);
    fclose(warnings);
    return text;
}

static void test_merge_sums_and_choices(void **state)
{
    struct report_data *d1 = data_with(10, 2, "10.0.0.0/24"),
                       *d2 = data_with(5, 1, "10.0.0.0/24"),
                       *d3 = data_with(7, 3, "10.0.9.0/24");
    const struct report_window windows[] = {
        window("a1", "id-a1", a_name, v1, 1000, 2000, d1),
        window("b1", "id-b1", b_name, v1, 1000, 2000, d2),
        window("a2", "id-a2", a_name, v1, 2000, 3000, d3),
        /* The same window read twice: counted once. */
        window("a1-again", "id-a1", a_name, v1, 1000, 2000, d1),
        /* Overlapping a1 under another id: left out. */
        window("a1-copy", "id-a1-copy", a_name, v1, 1500, 2500, d3),
    };
    struct report_merge_options all = {0};
    struct report_merged merged;
    uint64_t successes, failures;

    char *warnings = merge(windows, 5, &all, &merged);
    assert_int_equal(merged.num_used, 3);
    assert_int_equal(merged.num_windows, 3);
    assert_int_equal(merged.start, 1000);
    assert_int_equal(merged.end, 3000);
    report_data_counts(merged.data, &edge, &successes, &failures);
    assert_int_equal(successes, 22);
    assert_int_equal(failures, 6);
    assert_int_equal(merged.num_instances, 2);
    assert_string_equal(merged.instances[0], "a");
    report_data_counts(merged.by_instance[0], &edge, &successes, &failures);
    assert_int_equal(successes, 17);
    assert_int_equal(failures, 5);
    assert_non_null(strstr(warnings, "a1-again: report-id id-a1 is also a1's"));
    assert_non_null(strstr(warnings, "a1-copy: its window overlaps a1's (instance a"));
    assert_null(strstr(warnings, "versions"));
    assert_int_equal(strncmp(merged.report_id, "merge-", 6), 0);
    free(warnings);
    report_merged_cleanup(&merged);

    /* --since/--until: a window counts only when it lies within. */
    struct report_merge_options late = {.has_since = true, .since = 1500};
    warnings = merge(windows, 3, &late, &merged);
    assert_int_equal(merged.num_used, 1);
    assert_int_equal(merged.start, 2000);
    free(warnings);
    report_merged_cleanup(&merged);
    struct report_merge_options none = {.has_until = true, .until = 1999};
    warnings = merge(windows, 3, &none, &merged);
    assert_int_equal(merged.num_used, 0);
    free(warnings);
    report_merged_cleanup(&merged);

    report_data_free(d1);
    report_data_free(d2);
    report_data_free(d3);
}

static void test_merge_mixed_versions(void **state)
{
    struct report_data *d = data_with(1, 1, "10.0.0.0/24");
    struct report_window windows[] = {
        window("a1", "id-a1", a_name, v1, 1000, 2000, d),
        window("a2", "id-a2", a_name, v2, 2000, 3000, d),
        window("old", "id-old", NULL, NULL, 2000, 3000, d),
    };
    windows[2].num_instances = windows[2].num_versions = 0; /* a file from before */
    struct report_merge_options all = {0};
    struct report_merged merged;
    uint64_t successes, failures;

    char *warnings = merge(windows, 3, &all, &merged);
    assert_int_equal(merged.num_used, 3);
    assert_int_equal(merged.num_versions, 3);
    assert_string_equal(merged.versions[0], "0.1.0");
    assert_string_equal(merged.versions[2], "unknown");
    assert_string_equal(merged.instances[1], "unknown");
    report_data_counts(merged.data, &edge, &successes, &failures);
    assert_int_equal(successes, 3);
    assert_non_null(
        strstr(warnings, "different tlsterm versions (0.1.0, 0.2.0, unknown): their counts"));
    free(warnings);
    report_merged_cleanup(&merged);
    report_data_free(d);
}

/* A merge given with its own inputs counts each window once: the merge is
 * taken, its inputs are left out; a merge that shares a window with what
 * is counted is left out whole; two old files ("unknown") that overlap
 * count once. */
static void test_merge_of_merge(void **state)
{
    struct report_data *d1 = data_with(10, 2, "10.0.0.0/24"),
                       *d2 = data_with(5, 1, "10.0.0.0/24"), *d12 = report_data_new();
    const struct report_source ab[] = {{"id-a1", "a", 1000, 2000}, {"id-b1", "b", 1000, 2000}};
    const struct report_source bc[] = {{"id-b1", "b", 1000, 2000}, {"id-c1", "c", 1000, 2000}};
    const char *const ab_names[] = {"a", "b"}, *const bc_names[] = {"b", "c"};
    struct report_merge_options all = {0};
    struct report_merged merged;
    uint64_t successes, failures;

    assert_int_equal(report_data_merge(d12, d1), 0);
    assert_int_equal(report_data_merge(d12, d2), 0);
    struct report_window windows[] = {
        window("a1", "id-a1", a_name, v1, 1000, 2000, d1),
        window("b1", "id-b1", b_name, v1, 1000, 2000, d2),
        window("m", "merge-1", ab_names, v1, 1000, 2000, d12),
        window("m2", "merge-2", bc_names, v1, 1000, 2000, d12),
    };
    windows[2].num_instances = windows[3].num_instances = 2;
    windows[2].num_windows = windows[3].num_windows = 2;
    windows[2].sources = ab;
    windows[3].sources = bc;
    windows[2].num_sources = windows[3].num_sources = 2;

    char *warnings = merge(windows, 4, &all, &merged);
    assert_int_equal(merged.num_used, 1);
    report_data_counts(merged.data, &edge, &successes, &failures);
    assert_int_equal(successes, 15);
    assert_int_equal(failures, 3);
    assert_int_equal(merged.num_sources, 2);
    assert_string_equal(merged.sources[0].report_id, "id-a1");
    assert_non_null(strstr(warnings, "a1: report-id id-a1 is also counted in m (a merge)"));
    assert_non_null(strstr(warnings, "b1: report-id id-b1 is also counted in m (a merge)"));
    assert_non_null(strstr(warnings, "m2: a merge whose window (report-id id-b1, instance b) "
                                     "is also counted in m's: left out whole"));
    char first_id[REPORT_MERGE_ID_MAX];
    snprintf(first_id, sizeof(first_id), "%s", merged.report_id);
    free(warnings);
    report_merged_cleanup(&merged);

    /* The inputs alone give the merge's id: the same windows. */
    warnings = merge(windows, 2, &all, &merged);
    assert_string_equal(merged.report_id, first_id);
    free(warnings);
    report_merged_cleanup(&merged);

    /* Files from before the "tlsterm" member are instance "unknown". */
    struct report_window old[] = {
        window("old1", "id-old1", NULL, NULL, 1000, 2000, d1),
        window("old2", "id-old2", NULL, NULL, 1500, 2500, d2),
    };
    old[0].num_instances = old[0].num_versions = old[1].num_instances = old[1].num_versions = 0;
    warnings = merge(old, 2, &all, &merged);
    assert_int_equal(merged.num_used, 1);
    assert_non_null(strstr(warnings, "old2: its window overlaps old1's (instance unknown"));
    free(warnings);
    report_merged_cleanup(&merged);

    report_data_free(d1);
    report_data_free(d2);
    report_data_free(d12);
}

/* Untrusted names are escaped in the warnings; counts that would wrap
 * refuse the merge. */
static void test_merge_escapes_and_overflow(void **state)
{
    struct report_data *big = report_data_new();
    struct report_merge_options all = {0};
    struct report_merged merged;
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(report_data_add_success(big, &edge, UINT64_MAX - 1), 0);
    const struct report_window windows[] = {
        window("f\x1b[2J", "id-\x1b]0;x\a", a_name, v1, 1000, 2000, big),
        window("g", "id-\x1b]0;x\a", a_name, v1, 1000, 2000, big),
        window("h", "id-h", b_name, v1, 1000, 2000, big),
    };
    char *warnings = merge(windows, 2, &all, &merged);
    assert_null(strchr(warnings, 0x1b));
    assert_null(strchr(warnings, '\a'));
    assert_non_null(strstr(warnings, "report-id id-"));
    free(warnings);
    report_merged_cleanup(&merged);

    FILE *out = open_memstream(&text, &len);
    assert_int_equal(report_merge(&windows[1], 2, &all, false, out, &merged), -2);
    fclose(out);
    assert_non_null(strstr(text, ": counts overflow"));
    assert_null(merged.data);
    free(text);
    report_data_free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_merge_exact),
        cmocka_unit_test(test_top_merge_drops_and_marks),
        cmocka_unit_test(test_top_merge_saturated_absent),
        cmocka_unit_test(test_merge_sums_and_choices),
        cmocka_unit_test(test_merge_mixed_versions),
        cmocka_unit_test(test_merge_of_merge),
        cmocka_unit_test(test_merge_escapes_and_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
