/* report_test: the top-K tables, client networks, the counts with their
 * caps, the JSON writer (exact output for a fixed input), and workers'
 * blocks recording from their own threads while a reader renders: every
 * event is counted exactly once. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "report.h"

static char *buffer_text(struct evbuffer *buf)
{
    size_t len = evbuffer_get_length(buf);
    char *text = malloc(len + 1);
    assert_non_null(text);
    evbuffer_copyout(buf, text, len);
    text[len] = '\0';
    return text;
}

static void test_top_exact_below_k(void **state)
{
    struct report_top top = {0};
    struct report_top_entry sorted[REPORT_TOP_K];

    report_top_add(&top, "b", 1);
    report_top_add(&top, "a", 1);
    report_top_add(&top, "c", 3);
    report_top_add(&top, "b", 1);
    assert_int_equal(report_top_sorted(&top, sorted), 3);
    assert_string_equal(sorted[0].key, "c");
    assert_int_equal(sorted[0].count, 3);
    assert_string_equal(sorted[1].key, "b");
    assert_int_equal(sorted[1].count, 2);
    assert_string_equal(sorted[2].key, "a"); /* ties: by key */
    assert_int_equal(sorted[2].count, 1);
}

static void test_top_space_saving_when_full(void **state)
{
    struct report_top top = {0};
    struct report_top_entry sorted[REPORT_TOP_K];
    char key[8];
    uint64_t sum = 0;

    for (int i = 0; i < REPORT_TOP_K; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        report_top_add(&top, key, i == 0 ? 1 : 5);
    }
    /* A newcomer takes the smallest entry's place and count, plus its own. */
    report_top_add(&top, "new", 1);
    assert_int_equal(report_top_sorted(&top, sorted), REPORT_TOP_K);
    for (int i = 0; i < REPORT_TOP_K; i++) {
        assert_string_not_equal(sorted[i].key, "k00");
        sum += sorted[i].count;
    }
    assert_int_equal(sum, 5 * (REPORT_TOP_K - 1) + 1 + 1);
    assert_string_equal(sorted[REPORT_TOP_K - 1].key, "new");
    assert_int_equal(sorted[REPORT_TOP_K - 1].count, 2);
    /* A flood of distinct keys keeps the table bounded and the heavy hitter on top. */
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "x%d", i);
        report_top_add(&top, key, 1);
        report_top_add(&top, "heavy", 1);
    }
    report_top_sorted(&top, sorted);
    assert_string_equal(sorted[0].key, "heavy");
    assert_true(sorted[0].count >= 10000);
}

static void test_network_of(void **state)
{
    char out[REPORT_KEY_MAX];
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    struct sockaddr other = {.sa_family = AF_UNIX};

    inet_pton(AF_INET, "203.0.113.77", &sin.sin_addr);
    assert_string_equal(report_network_of((struct sockaddr *)&sin, out), "203.0.113.0/24");
    inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &sin6.sin6_addr);
    assert_string_equal(report_network_of((struct sockaddr *)&sin6, out), "2001:db8:1::/48");
    inet_pton(AF_INET6, "::ffff:198.51.100.9", &sin6.sin6_addr);
    assert_string_equal(report_network_of((struct sockaddr *)&sin6, out), "198.51.100.0/24");
    assert_string_equal(report_network_of(&other, out), "unknown");
}

static const struct report_policy_key edge = {"edge", CFG_POLICY_INTERMEDIATE, 0x0303, 0x0304,
                                              false};
static const struct report_policy_key api = {"api", CFG_POLICY_MODERN, 0x0304, 0x0304, false};
/* edge's candidate: the same listener, counted apart. */
static const struct report_policy_key edge_modern = {"edge", CFG_POLICY_MODERN, 0x0304, 0x0304,
                                                     true};

static const char expected_json[] =
    "{\n"
    "  \"organization-name\": \"example.net\",\n"
    "  \"date-range\": {\n"
    "    \"start-datetime\": \"2026-11-26T16:00:00Z\",\n"
    "    \"end-datetime\": \"2026-11-26T17:00:00Z\"\n"
    "  },\n"
    "  \"contact-info\": \"ops@example.net\",\n"
    "  \"report-id\": \"r\\\"1\",\n"
    "  \"policies\": [\n"
    "    {\n"
    "      \"policy\": {\n"
    "        \"policy-type\": \"tlsterm\",\n"
    "        \"policy-string\": [\"policy: modern\", \"min_version: TLSv1.3\", \"max_version: "
    "TLSv1.3\"],\n"
    "        \"policy-domain\": \"api\"\n"
    "      },\n"
    "      \"summary\": {\n"
    "        \"total-successful-session-count\": 5,\n"
    "        \"total-failure-session-count\": 0\n"
    "      },\n"
    "      \"failure-details\": []\n"
    "    },\n"
    "    {\n"
    "      \"policy\": {\n"
    "        \"policy-type\": \"tlsterm\",\n"
    "        \"policy-string\": [\"policy: intermediate\", \"min_version: TLSv1.2\", "
    "\"max_version: TLSv1.3\"],\n"
    "        \"policy-domain\": \"edge\"\n"
    "      },\n"
    "      \"summary\": {\n"
    "        \"total-successful-session-count\": 2,\n"
    "        \"total-failure-session-count\": 3\n"
    "      },\n"
    "      \"failure-details\": [\n"
    "        {\n"
    "          \"result-type\": \"protocol_version\",\n"
    "          \"failed-session-count\": 2,\n"
    "          \"top-client-networks\": [\n"
    "            {\"network\": \"2001:db8:1::/48\", \"count\": 1},\n"
    "            {\"network\": \"203.0.113.0/24\", \"count\": 1}\n"
    "          ],\n"
    "          \"top-ja4\": [\n"
    "            {\"ja4\": \"t11i090500_c491f621fb4c_195413a0cc0f\", \"count\": 2}\n"
    "          ],\n"
    "          \"top-offered-max-versions\": [\n"
    "            {\"version\": \"TLSv1.1\", \"count\": 2}\n"
    "          ]\n"
    "        },\n"
    "        {\n"
    "          \"result-type\": \"malformed\",\n"
    "          \"failed-session-count\": 1,\n"
    "          \"top-client-networks\": [\n"
    "            {\"network\": \"203.0.113.0/24\", \"count\": 1}\n"
    "          ],\n"
    "          \"top-ja4\": [],\n"
    "          \"top-offered-max-versions\": []\n"
    "        }\n"
    "      ]\n"
    "    }\n"
    "  ],\n"
    "  \"report-only-policies\": [\n"
    "    {\n"
    "      \"policy\": {\n"
    "        \"policy-type\": \"tlsterm\",\n"
    "        \"policy-string\": [\"policy: modern\", \"min_version: TLSv1.3\", \"max_version: "
    "TLSv1.3\"],\n"
    "        \"policy-domain\": \"edge\"\n"
    "      },\n"
    "      \"summary\": {\n"
    "        \"total-successful-session-count\": 1,\n"
    "        \"total-failure-session-count\": 1\n"
    "      },\n"
    "      \"failure-details\": [\n"
    "        {\n"
    "          \"result-type\": \"protocol_version\",\n"
    "          \"failed-session-count\": 1,\n"
    "          \"top-client-networks\": [\n"
    "            {\"network\": \"198.51.100.0/24\", \"count\": 1}\n"
    "          ],\n"
    "          \"top-ja4\": [\n"
    "            {\"ja4\": \"t12d1311h2_8b80da21ef18_77989cba1f4a\", \"count\": 1}\n"
    "          ],\n"
    "          \"top-offered-max-versions\": [\n"
    "            {\"version\": \"TLSv1.2\", \"count\": 1}\n"
    "          ]\n"
    "        }\n"
    "      ]\n"
    "    }\n"
    "  ]\n"
    "}\n";

static const char tls12_ja4[] = "t12d1311h2_8b80da21ef18_77989cba1f4a";

static void fill_fixed(struct report_data *data)
{
    const char *ja4 = "t11i090500_c491f621fb4c_195413a0cc0f";
    assert_int_equal(report_data_add_success(data, &edge, 2), 0);
    assert_int_equal(
        report_data_add_failure(data, &edge, "malformed", "203.0.113.0/24", NULL, NULL), 0);
    assert_int_equal(report_data_add_failure(data, &edge, "protocol_version", "203.0.113.0/24",
                                             ja4, "TLSv1.1"),
                     0);
    assert_int_equal(report_data_add_failure(data, &edge, "protocol_version", "2001:db8:1::/48",
                                             ja4, "TLSv1.1"),
                     0);
    assert_int_equal(report_data_add_success(data, &api, 5), 0);
    assert_int_equal(report_data_add_success(data, &edge_modern, 1), 0);
    assert_int_equal(report_data_add_failure(data, &edge_modern, "protocol_version",
                                             "198.51.100.0/24", tls12_ja4, "TLSv1.2"),
                     0);
}

static void check_json(const struct report_data *data)
{
    const struct report_meta meta = {.organization = "example.net",
                                     .contact_info = "ops@example.net",
                                     .report_id = "r\"1",
                                     .start = 1795708800, /* 2026-11-26T16:00:00Z */
                                     .end = 1795712400};
    struct evbuffer *out = evbuffer_new();
    assert_int_equal(report_write_json(data, &meta, out), 0);
    char *text = buffer_text(out);
    /* cmocka cuts long strings: show where they part. */
    size_t at = 0;
    while (text[at] != '\0' && text[at] == expected_json[at])
        at++;
    if (text[at] != expected_json[at])
        fprintf(stderr, "JSON differs at byte %zu:\n--- got\n%s\n--- expected\n%s\n", at,
                text + at, expected_json + at);
    assert_string_equal(text, expected_json);
    free(text);
    evbuffer_free(out);
}

static void test_json_exact(void **state)
{
    struct report_data *data = report_data_new();
    fill_fixed(data);
    check_json(data);
    report_data_free(data);
}

static void test_merge_equals_direct(void **state)
{
    struct report_data *a = report_data_new(), *b = report_data_new(), *sum = report_data_new();
    const char *ja4 = "t11i090500_c491f621fb4c_195413a0cc0f";

    assert_int_equal(report_data_add_success(a, &edge, 2), 0);
    assert_int_equal(
        report_data_add_failure(a, &edge, "malformed", "203.0.113.0/24", NULL, NULL), 0);
    assert_int_equal(
        report_data_add_failure(b, &edge, "protocol_version", "203.0.113.0/24", ja4, "TLSv1.1"),
        0);
    assert_int_equal(report_data_add_failure(b, &edge, "protocol_version", "2001:db8:1::/48",
                                             ja4, "TLSv1.1"),
                     0);
    assert_int_equal(report_data_add_success(b, &api, 5), 0);
    assert_int_equal(report_data_add_success(a, &edge_modern, 1), 0);
    assert_int_equal(report_data_add_failure(b, &edge_modern, "protocol_version",
                                             "198.51.100.0/24", tls12_ja4, "TLSv1.2"),
                     0);
    assert_int_equal(report_data_merge(sum, a), 0);
    assert_int_equal(report_data_merge(sum, b), 0);
    check_json(sum);
    report_data_free(a);
    report_data_free(b);
    report_data_free(sum);
}

static void test_caps(void **state)
{
    struct report_data *data = report_data_new();
    struct evbuffer *out = evbuffer_new();
    const struct report_meta meta = {.organization = "o", .report_id = "i"};
    char name[32];

    for (int i = 0; i < 3 * REPORT_MAX_POLICIES; i++) {
        snprintf(name, sizeof(name), "l%03d", i);
        const struct report_policy_key key = {name, CFG_POLICY_INTERMEDIATE, 0x0303, 0x0304,
                                              false};
        const struct report_policy_key candidate = {name, CFG_POLICY_MODERN, 0x0304, 0x0304,
                                                    true};
        assert_int_equal(report_data_add_success(data, &key, 1), 0);
        assert_int_equal(report_data_add_success(data, &candidate, 1), 0);
    }
    for (int i = 0; i < 3 * REPORT_MAX_RESULT_TYPES; i++) {
        snprintf(name, sizeof(name), "client_alert:%d", i);
        assert_int_equal(report_data_add_failure(data, &edge, name, "unknown", NULL, NULL), 0);
    }
    assert_int_equal(report_write_json(data, &meta, out), 0);
    char *text = buffer_text(out);
    size_t domains = 0, results = 0;
    for (const char *p = text; (p = strstr(p, "\"policy-domain\"")) != NULL; p++)
        domains++;
    for (const char *p = text; (p = strstr(p, "\"result-type\"")) != NULL; p++)
        results++;
    /* Real entries up to the cap less the two overflow slots, then one
     * overflow entry of each kind. */
    assert_int_equal(domains, REPORT_MAX_POLICIES);
    assert_int_equal(results, REPORT_MAX_RESULT_TYPES);
    const char *candidates = strstr(text, "\"report-only-policies\"");
    assert_non_null(candidates);
    const char *real_overflow = strstr(text, "\"policy-domain\": \"*\"");
    assert_true(real_overflow != NULL && real_overflow < candidates);
    assert_non_null(strstr(candidates, "\"policy-domain\": \"*\""));
    assert_non_null(strstr(text, "\"result-type\": \"other\""));
    free(text);
    evbuffer_free(out);
    report_data_free(data);
}

/* ---- blocks on several threads ------------------------------------------------ */

#define NUM_THREADS 4
#define EVENTS_PER_THREAD 20000

struct recorder {
    struct report *report;
    struct cfg_listener cfg;
};

static void *record(void *arg)
{
    struct recorder *r = arg;
    struct event_base *base = event_base_new();
    struct report_block *block = report_block_new(r->report, base);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};

    assert_non_null(block);
    for (int i = 0; i < EVENTS_PER_THREAD; i++) {
        if (i % 2 == 0)
            report_block_success(block, &r->cfg);
        else
            report_block_failure(block, &r->cfg, END_MALFORMED, 0, (struct sockaddr *)&sin,
                                 NULL);
    }
    report_block_free(block); /* the worker ends: its queue goes to the window */
    event_base_free(base);
    return NULL;
}

static void test_blocks_count_exactly(void **state)
{
    const struct cfg_report cfg = {.interval_ms = 3600000, .keep = 1};
    struct recorder recorder = {.cfg = {.name = "edge",
                                        .policy = CFG_POLICY_INTERMEDIATE,
                                        .min_version = 0x0303,
                                        .max_version = 0x0304}};
    pthread_t threads[NUM_THREADS];

    recorder.report = report_new(&cfg);
    assert_non_null(recorder.report);
    for (int i = 0; i < NUM_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, record, &recorder), 0);
    /* Render while they record: the reader takes their counts as it goes. */
    for (int i = 0; i < 200; i++) {
        struct evbuffer *out = evbuffer_new();
        assert_int_equal(report_render(recorder.report, out), 0);
        evbuffer_free(out);
    }
    for (int i = 0; i < NUM_THREADS; i++)
        pthread_join(threads[i], NULL);

    struct evbuffer *out = evbuffer_new();
    assert_int_equal(report_render(recorder.report, out), 0);
    char *text = buffer_text(out);
    char expected[128];
    snprintf(expected, sizeof(expected), "\"total-successful-session-count\": %d,",
             NUM_THREADS * EVENTS_PER_THREAD / 2);
    assert_non_null(strstr(text, expected));
    snprintf(expected, sizeof(expected), "\"total-failure-session-count\": %d\n",
             NUM_THREADS * EVENTS_PER_THREAD / 2);
    assert_non_null(strstr(text, expected));
    snprintf(expected, sizeof(expected), "{\"network\": \"127.0.0.0/24\", \"count\": %d}",
             NUM_THREADS * EVENTS_PER_THREAD / 2);
    assert_non_null(strstr(text, expected));
    assert_non_null(strstr(text, "\"organization-name\": \"tlsterm\""));
    free(text);
    evbuffer_free(out);
    report_free(recorder.report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_exact_below_k),
        cmocka_unit_test(test_top_space_saving_when_full),
        cmocka_unit_test(test_network_of),
        cmocka_unit_test(test_json_exact),
        cmocka_unit_test(test_merge_equals_direct),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_blocks_count_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
