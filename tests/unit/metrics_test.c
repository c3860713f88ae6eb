/* metrics_test: counters written by several threads into their own blocks,
 * rendered, and parsed back from the Prometheus text. The parser here
 * checks the format as a scraper would (HELP and TYPE before each family,
 * families contiguous, label syntax and escapes) and every number is
 * compared with what the test counted: a series the test did not expect
 * must read 0. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>

#include "conn.h"
#include "http_metrics.h"
#include "listener.h"
#include "metrics.h"
#include "net.h"

/* ---- a parser for the text format ------------------------------------------------ */

struct sample {
    char *name;
    char *labels;   /* as written between the braces, escapes kept; "" for none */
    uint64_t micro; /* the value times 10^6, exact */
    const char *family;
};

struct family_info {
    char *name;
    char *type;
};

struct exposition {
    struct sample *samples;
    size_t num_samples;
    struct family_info families[64];
    size_t num_families;
};

static char *dup_range(const char *s, size_t len)
{
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

static bool is_name_char(char ch, bool first)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
           (!first && ch >= '0' && ch <= '9');
}

/* parse_value reads a non-negative decimal with at most 6 fraction digits
 * into millionths. */
static uint64_t parse_value(const char *s)
{
    uint64_t whole = 0, frac = 0;
    int frac_digits = 0;

    assert_true(*s >= '0' && *s <= '9');
    for (; *s >= '0' && *s <= '9'; s++)
        whole = whole * 10 + (uint64_t)(*s - '0');
    if (*s == '.') {
        s++;
        assert_true(*s >= '0' && *s <= '9');
        for (; *s >= '0' && *s <= '9'; s++, frac_digits++)
            frac = frac * 10 + (uint64_t)(*s - '0');
    }
    assert_int_equal(*s, '\0');
    assert_true(frac_digits <= 6);
    for (; frac_digits < 6; frac_digits++)
        frac *= 10;
    assert_true(whole < UINT64_MAX / 1000000);
    return whole * 1000000 + frac;
}

/* parse_labels checks the label set at |*p| ("{...}") and moves past it. */
static char *parse_labels(const char **p)
{
    const char *s = *p + 1;
    const char *start = s;

    for (;;) {
        assert_true(is_name_char(*s, true) && *s != ':');
        while (is_name_char(*s, false) && *s != ':')
            s++;
        assert_int_equal(*s++, '=');
        assert_int_equal(*s++, '"');
        while (*s != '"') {
            assert_true(*s != '\0' && *s != '\n');
            if (*s == '\\') {
                s++;
                assert_true(*s == '\\' || *s == '"' || *s == 'n');
            }
            s++;
        }
        s++;
        if (*s == '}')
            break;
        assert_int_equal(*s++, ',');
    }
    *p = s + 1;
    return dup_range(start, (size_t)(s - start));
}

static bool has_suffix(const char *name, const char *family, const char *suffix)
{
    size_t len = strlen(family);
    return strncmp(name, family, len) == 0 && strcmp(name + len, suffix) == 0;
}

static void parse_exposition(const char *text, struct exposition *e)
{
    const struct family_info *current = NULL;
    size_t cap = 0;

    memset(e, 0, sizeof(*e));
    while (*text != '\0') {
        const char *nl = strchr(text, '\n');
        assert_non_null(nl);
        char *line = dup_range(text, (size_t)(nl - text));
        text = nl + 1;

        if (strncmp(line, "# HELP ", 7) == 0) {
            const char *name = line + 7;
            const char *sp = strchr(name, ' ');
            assert_non_null(sp);
            assert_true(e->num_families < 64);
            struct family_info *f = &e->families[e->num_families++];
            f->name = dup_range(name, (size_t)(sp - name));
            for (size_t i = 0; i + 1 < e->num_families; i++)
                assert_string_not_equal(e->families[i].name, f->name);
            /* TYPE comes right after HELP. */
            nl = strchr(text, '\n');
            assert_non_null(nl);
            char *type_line = dup_range(text, (size_t)(nl - text));
            text = nl + 1;
            char prefix[160];
            snprintf(prefix, sizeof(prefix), "# TYPE %s ", f->name);
            assert_true(strncmp(type_line, prefix, strlen(prefix)) == 0);
            f->type = strdup(type_line + strlen(prefix));
            assert_true(strcmp(f->type, "counter") == 0 || strcmp(f->type, "gauge") == 0 ||
                        strcmp(f->type, "histogram") == 0);
            if (strcmp(f->type, "counter") == 0)
                assert_true(strlen(f->name) > 6 &&
                            strcmp(f->name + strlen(f->name) - 6, "_total") == 0);
            current = f;
            free(type_line);
            free(line);
            continue;
        }
        assert_true(line[0] != '#');
        assert_non_null(current); /* no sample before its family */

        const char *p = line;
        assert_true(is_name_char(*p, true));
        while (is_name_char(*p, false))
            p++;
        char *name = dup_range(line, (size_t)(p - line));
        char *labels = *p == '{' ? parse_labels(&p) : strdup("");
        assert_int_equal(*p++, ' ');
        uint64_t micro = parse_value(p);

        /* Samples belong to the family just declared: families are
         * contiguous, as the format requires. */
        if (strcmp(current->type, "histogram") == 0) {
            assert_true(has_suffix(name, current->name, "_bucket") ||
                        has_suffix(name, current->name, "_sum") ||
                        has_suffix(name, current->name, "_count"));
            if (has_suffix(name, current->name, "_bucket"))
                assert_non_null(strstr(labels, "le=\""));
        } else {
            assert_string_equal(name, current->name);
        }
        if (e->num_samples == cap) {
            cap = cap ? cap * 2 : 256;
            e->samples = realloc(e->samples, cap * sizeof(*e->samples));
            assert_non_null(e->samples);
        }
        /* No series twice. */
        for (size_t i = 0; i < e->num_samples; i++)
            assert_false(strcmp(e->samples[i].name, name) == 0 &&
                         strcmp(e->samples[i].labels, labels) == 0);
        e->samples[e->num_samples++] = (struct sample){
            .name = name, .labels = labels, .micro = micro, .family = current->name};
        free(line);
    }
}

static void exposition_free(struct exposition *e)
{
    for (size_t i = 0; i < e->num_samples; i++) {
        free(e->samples[i].name);
        free(e->samples[i].labels);
    }
    free(e->samples);
    for (size_t i = 0; i < e->num_families; i++) {
        free(e->families[i].name);
        free(e->families[i].type);
    }
}

static char *render_text(struct metrics *m)
{
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    assert_int_equal(metrics_render(m, out), 0);
    size_t len = evbuffer_get_length(out);
    char *text = malloc(len + 1);
    assert_non_null(text);
    assert_int_equal(evbuffer_remove(out, text, len), (int)len);
    text[len] = '\0';
    evbuffer_free(out);
    return text;
}

static void render_parse(struct metrics *m, struct exposition *e)
{
    char *text = render_text(m);
    parse_exposition(text, e);
    free(text);
}

/* find returns the sample |name|{|labels|}, or NULL. */
static const struct sample *find(const struct exposition *e, const char *name,
                                 const char *labels)
{
    for (size_t i = 0; i < e->num_samples; i++)
        if (strcmp(e->samples[i].name, name) == 0 && strcmp(e->samples[i].labels, labels) == 0)
            return &e->samples[i];
    return NULL;
}

static size_t count_family(const struct exposition *e, const char *family)
{
    size_t n = 0;
    for (size_t i = 0; i < e->num_samples; i++)
        n += strcmp(e->samples[i].family, family) == 0;
    return n;
}

/* ---- expectations ------------------------------------------------------------------ */

struct expect {
    char name[96];
    char labels[256];
    uint64_t micro;
    bool seen;
};

struct expect_list {
    struct expect items[256];
    size_t num;
};

static void expect_micro(struct expect_list *l, const char *name, const char *labels,
                         uint64_t micro)
{
    assert_true(l->num < 256);
    struct expect *x = &l->items[l->num++];
    snprintf(x->name, sizeof(x->name), "%s", name);
    snprintf(x->labels, sizeof(x->labels), "%s", labels);
    x->micro = micro;
    x->seen = false;
}

static void expect(struct expect_list *l, const char *name, const char *labels, uint64_t value)
{
    expect_micro(l, name, labels, value * 1000000);
}

static const char *const le_texts[METRICS_DURATION_BUCKETS + 1] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",   "0.5",   "1",      "2.5",   "5",    "10",    "+Inf",
};

/* expect_histogram expects the cumulative |buckets| (by le, +Inf last), the
 * sum and the count. */
static void expect_histogram(struct expect_list *l, const char *family, const char *listener,
                             const uint64_t buckets[METRICS_DURATION_BUCKETS + 1],
                             uint64_t sum_us)
{
    char name[96], labels[256];
    for (int i = 0; i <= METRICS_DURATION_BUCKETS; i++) {
        snprintf(name, sizeof(name), "%s_bucket", family);
        snprintf(labels, sizeof(labels), "listener=\"%s\",le=\"%s\"", listener, le_texts[i]);
        expect(l, name, labels, buckets[i]);
    }
    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    snprintf(name, sizeof(name), "%s_sum", family);
    expect_micro(l, name, labels, sum_us);
    snprintf(name, sizeof(name), "%s_count", family);
    expect(l, name, labels, buckets[METRICS_DURATION_BUCKETS]);
}

/* Families written only once a series has been counted: they never show
 * a zero. */
static bool is_sparse(const char *family)
{
    return strcmp(family, "tlsterm_handshakes_total") == 0 ||
           strcmp(family, "tlsterm_handshake_client_alerts_total") == 0 ||
           strcmp(family, "tlsterm_policy_would_fail_total") == 0;
}

/* check_exactly checks every sample of |e| against |l|: an expected series
 * has its value, any other series reads 0, and every expected series is
 * there. */
static void check_exactly(const struct exposition *e, struct expect_list *l)
{
    for (size_t i = 0; i < e->num_samples; i++) {
        const struct sample *s = &e->samples[i];
        struct expect *x = NULL;
        for (size_t j = 0; j < l->num && x == NULL; j++)
            if (strcmp(l->items[j].name, s->name) == 0 &&
                strcmp(l->items[j].labels, s->labels) == 0)
                x = &l->items[j];
        /* tlsterm_build_info is always 1 (test_build_info checks its labels). */
        uint64_t want = x != NULL                                      ? x->micro
                        : strcmp(s->family, "tlsterm_build_info") == 0 ? 1000000
                                                                       : 0;
        if (s->micro != want || (x == NULL && is_sparse(s->family))) {
            print_error("%s{%s} is %" PRIu64 "e-6, expected %" PRIu64 "e-6\n", s->name,
                        s->labels, s->micro, want);
            fail();
        }
        if (x != NULL)
            x->seen = true;
    }
    for (size_t j = 0; j < l->num; j++) {
        if (!l->items[j].seen) {
            print_error("missing %s{%s}\n", l->items[j].name, l->items[j].labels);
            fail();
        }
    }
}

/* ---- threads writing their own blocks ---------------------------------------------- */

#define NUM_THREADS 4

struct writer {
    struct metrics *metrics;
    struct metrics_block *block;
    unsigned index;
};

/* write_known_counts counts, for writer |i|, the fixed amounts that
 * test_threads_then_render adds up by hand. */
static void *write_known_counts(void *arg)
{
    struct writer *w = arg;
    unsigned k = w->index + 1;

    w->block = metrics_block_new(w->metrics);
    assert_non_null(w->block);
    struct metrics_listener *edge = metrics_block_listener(w->block, "edge");
    struct metrics_listener *api = metrics_block_listener(w->block, "api");
    assert_non_null(edge);
    assert_non_null(api);

    for (unsigned i = 0; i < 100 * k; i++)
        metrics_conn_accepted(edge);
    for (unsigned i = 0; i < 50 * k; i++)
        metrics_conn_closed(edge, END_DONE, 0);
    for (unsigned i = 0; i < k; i++)
        metrics_conn_closed(edge, END_CLIENT_ALERT, 48);
    metrics_conn_closed(edge, END_CLIENT_ALERT, 200);
    metrics_conn_closed(edge, END_PROTOCOL_VERSION, 0);
    metrics_conn_closed(edge, END_PROTOCOL_VERSION, 0);
    for (unsigned i = 0; i < 10 * k; i++)
        metrics_handshake_done(edge, METRICS_TLS_1_3, METRICS_CIPHER_AES_128_GCM_SHA256,
                               METRICS_GROUP_X25519, false, 800);
    metrics_handshake_done(edge, METRICS_TLS_1_2, METRICS_CIPHER_ECDHE_RSA_AES_256_GCM_SHA384,
                           METRICS_GROUP_P256, true, 3000000);
    for (int i = 0; i < 5; i++)
        metrics_backend_connected(edge, 1500);
    metrics_backend_connect_failed(edge, METRICS_CONNECT_TIMEOUT);
    for (unsigned i = 0; i < w->index; i++) {
        metrics_backend_connect_failed(edge, METRICS_CONNECT_ERROR);
        metrics_early_data_accepted(edge);
    }
    metrics_bytes_client_to_backend(edge, 1000 * k);
    metrics_bytes_backend_to_client(edge, 2000 * k);
    for (int i = 0; i < 3; i++)
        metrics_would_fail(edge, END_PROTOCOL_VERSION);

    for (int i = 0; i < 7; i++) {
        metrics_conn_accepted(api);
        metrics_conn_closed(api, END_IDLE_TIMEOUT, 0);
    }
    return NULL;
}

/* expect_known_counts lists what NUM_THREADS writers of write_known_counts
 * add up to: with k = 1..4, sum(k) = 10 and sum(k - 1) = 6. */
static void expect_known_counts(struct expect_list *l)
{
    static const char edge[] = "listener=\"edge\"";
    const uint64_t handshake_buckets[] = {0,   100, 100, 100, 100, 100, 100, 100,
                                          100, 100, 100, 100, 104, 104, 104};
    const uint64_t connect_buckets[] = {0,  0,  20, 20, 20, 20, 20, 20,
                                        20, 20, 20, 20, 20, 20, 20};

    memset(l, 0, sizeof(*l));
    expect(l, "tlsterm_connections_accepted_total", edge, 1000);
    expect(l, "tlsterm_connections_accepted_total", "listener=\"api\"", 28);
    expect(l, "tlsterm_connections_active", edge, 1000 - 500 - 14 - 8);
    expect(l, "tlsterm_connections_closed_total", "listener=\"edge\",reason=\"done\"", 500);
    expect(l, "tlsterm_connections_closed_total", "listener=\"edge\",reason=\"client_alert\"",
           14);
    expect(l, "tlsterm_connections_closed_total",
           "listener=\"edge\",reason=\"protocol_version\"", 8);
    expect(l, "tlsterm_connections_closed_total", "listener=\"api\",reason=\"idle_timeout\"",
           28);
    expect(l, "tlsterm_handshake_failures_total", "listener=\"edge\",reason=\"client_alert\"",
           14);
    expect(l, "tlsterm_handshake_failures_total",
           "listener=\"edge\",reason=\"protocol_version\"", 8);
    expect(l, "tlsterm_handshake_client_alerts_total", "listener=\"edge\",alert=\"unknown_ca\"",
           10);
    expect(l, "tlsterm_handshake_client_alerts_total", "listener=\"edge\",alert=\"200\"", 4);
    expect(l, "tlsterm_handshakes_total",
           "listener=\"edge\",version=\"TLSv1.3\",cipher=\"TLS_AES_128_GCM_SHA256\","
           "group=\"X25519\",resumed=\"false\"",
           100);
    expect(l, "tlsterm_handshakes_total",
           "listener=\"edge\",version=\"TLSv1.2\","
           "cipher=\"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\",group=\"P-256\",resumed=\"true\"",
           4);
    expect_histogram(l, "tlsterm_handshake_duration_seconds", "edge", handshake_buckets,
                     100 * 800 + 4 * 3000000);
    expect(l, "tlsterm_early_data_accepted_total", edge, 6);
    expect(l, "tlsterm_policy_would_fail_total",
           "listener=\"edge\",reason=\"protocol_version\"", 12);
    expect(l, "tlsterm_backend_connect_failures_total", "listener=\"edge\",cause=\"timeout\"",
           4);
    expect(l, "tlsterm_backend_connect_failures_total", "listener=\"edge\",cause=\"error\"", 6);
    expect_histogram(l, "tlsterm_backend_connect_duration_seconds", "edge", connect_buckets,
                     20 * 1500);
    expect(l, "tlsterm_forwarded_bytes_total",
           "listener=\"edge\",direction=\"client_to_backend\"", 10000);
    expect(l, "tlsterm_forwarded_bytes_total",
           "listener=\"edge\",direction=\"backend_to_client\"", 20000);
}

static void test_threads_then_render(void **state)
{
    struct metrics *m = metrics_new();
    struct writer writers[NUM_THREADS];
    pthread_t threads[NUM_THREADS];
    struct expect_list *expected = malloc(sizeof(*expected));
    struct exposition e;

    assert_non_null(m);
    assert_non_null(expected);
    for (unsigned i = 0; i < NUM_THREADS; i++) {
        writers[i] = (struct writer){.metrics = m, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, write_known_counts, &writers[i]), 0);
    }
    for (unsigned i = 0; i < NUM_THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);

    expect_known_counts(expected);
    render_parse(m, &e);
    check_exactly(&e, expected);
    /* The families with a fixed label set are written in full, zeros
     * included, for both listeners. */
    assert_int_equal(count_family(&e, "tlsterm_connections_closed_total"),
                     2 * END_REASON_COUNT);
    size_t num_handshake_reasons = 0;
    for (int r = 0; r < END_REASON_COUNT; r++)
        num_handshake_reasons += reason_is_handshake_failure((enum end_reason)r);
    assert_int_equal(count_family(&e, "tlsterm_handshake_failures_total"),
                     2 * num_handshake_reasons);
    assert_int_equal(count_family(&e, "tlsterm_handshake_duration_seconds"),
                     2 * (METRICS_DURATION_BUCKETS + 3));
    assert_int_equal(count_family(&e, "tlsterm_forwarded_bytes_total"), 4);
    assert_int_equal(count_family(&e, "tlsterm_connections_active"), 2);
    /* Listeners in the order they were first seen: every writer asked for
     * "edge" first. */
    const struct sample *first =
        find(&e, "tlsterm_connections_accepted_total", "listener=\"edge\"");
    assert_ptr_equal(first, &e.samples[0]);
    exposition_free(&e);

    /* Freeing the blocks (their workers ended) loses nothing. */
    for (unsigned i = 0; i < NUM_THREADS; i++)
        metrics_block_free(writers[i].block);
    expect_known_counts(expected);
    render_parse(m, &e);
    check_exactly(&e, expected);
    exposition_free(&e);

    free(expected);
    metrics_free(m);
}

/* ---- histogram edges ------------------------------------------------------------- */

static void test_histogram_bucket_edges(void **state)
{
    /* Bounds are inclusive: a duration equal to a bound is in its bucket. */
    assert_int_equal(metrics_duration_bucket(0), 0);
    assert_int_equal(metrics_duration_bucket(500), 0);
    assert_int_equal(metrics_duration_bucket(501), 1);
    assert_int_equal(metrics_duration_bucket(1000), 1);
    assert_int_equal(metrics_duration_bucket(1001), 2);
    assert_int_equal(metrics_duration_bucket(9999999), 13);
    assert_int_equal(metrics_duration_bucket(10000000), 13);
    assert_int_equal(metrics_duration_bucket(10000001), METRICS_DURATION_BUCKETS);
    assert_int_equal(metrics_duration_bucket(UINT64_MAX), METRICS_DURATION_BUCKETS);
    for (unsigned i = 1; i < METRICS_DURATION_BUCKETS; i++)
        assert_true(metrics_duration_bound_us(i) > metrics_duration_bound_us(i - 1));

    struct metrics *m = metrics_new();
    struct metrics_block *b = metrics_block_new(m);
    struct metrics_listener *l = metrics_block_listener(b, "h");
    static const uint64_t observed[] = {0, 500, 501, 1000, 1001, 10000000, 10000001};
    for (size_t i = 0; i < sizeof(observed) / sizeof(observed[0]); i++)
        metrics_backend_connected(l, observed[i]);

    struct expect_list *expected = calloc(1, sizeof(*expected));
    const uint64_t cumulative[] = {2, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 7};
    expect_histogram(expected, "tlsterm_backend_connect_duration_seconds", "h", cumulative,
                     20003003);
    struct exposition e;
    render_parse(m, &e);
    check_exactly(&e, expected);
    /* The sum is exact decimal seconds, not a rounded double. */
    const struct sample *sum =
        find(&e, "tlsterm_backend_connect_duration_seconds_sum", "listener=\"h\"");
    assert_non_null(sum);
    assert_int_equal(sum->micro, 20003003);
    char *text = render_text(m);
    assert_non_null(strstr(
        text, "tlsterm_backend_connect_duration_seconds_sum{listener=\"h\"} 20.003003\n"));
    assert_non_null(strstr(text,
                           "tlsterm_backend_connect_duration_seconds_bucket{listener=\"h\","
                           "le=\"0.0005\"} 2\n"));
    assert_non_null(strstr(
        text, "tlsterm_backend_connect_duration_seconds_bucket{listener=\"h\",le=\"10\"} 6\n"));
    free(text);
    exposition_free(&e);
    free(expected);
    metrics_block_free(b);
    metrics_free(m);
}

/* ---- label escaping ---------------------------------------------------------------- */

static void test_label_escaping(void **state)
{
    struct metrics *m = metrics_new();
    struct metrics_block *b = metrics_block_new(m);
    /* A quote, a backslash, a newline, a valid two-byte and four-byte
     * character, a stray byte, an overlong '/', a surrogate, and a sequence
     * cut short at the end. */
    static const char name[] = "we\"ird\\na\nme \xc3\xa9\xf0\x9f\x94\x92 \xff \xc0\xaf "
                               "\xed\xa0\x80 \xe2\x82";
    static const char escaped[] =
        "we\\\"ird\\\\na\\nme \xc3\xa9\xf0\x9f\x94\x92 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd";
    struct metrics_listener *l = metrics_block_listener(b, name);
    assert_non_null(l);
    metrics_conn_accepted(l);
    struct metrics_cert cert = {.listener = name,
                                .subject = "CN=\"quoted\\\",O=x",
                                .serial = "0A1B",
                                .not_after = 1767225600};
    assert_int_equal(metrics_certs_set(m, &cert, 1), 0);

    char *text = render_text(m);
    char line[512];
    snprintf(line, sizeof(line), "\ntlsterm_connections_accepted_total{listener=\"%s\"} 1\n",
             escaped);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof(line),
             "\ntlsterm_certificate_not_after_timestamp_seconds{listener=\"%s\","
             "subject=\"CN=\\\"quoted\\\\\\\",O=x\",serial=\"0A1B\"} 1767225600\n",
             escaped);
    assert_non_null(strstr(text, line));
    /* And the whole text still parses. */
    struct exposition e;
    parse_exposition(text, &e);
    exposition_free(&e);
    free(text);
    metrics_block_free(b);
    metrics_free(m);
}

/* ---- a render while workers write --------------------------------------------------- */

#define NUM_LIVE_WRITERS 3
#define NUM_RENDERS 100

struct live_writer {
    struct metrics *metrics;
    atomic_bool *stop;
    uint64_t rounds;
};

static void *write_until_stopped(void *arg)
{
    struct live_writer *w = arg;
    struct metrics_block *b = metrics_block_new(w->metrics);
    struct metrics_listener *l = metrics_block_listener(b, "live");
    assert_non_null(l);

    while (!atomic_load(w->stop)) {
        metrics_conn_accepted(l);
        metrics_handshake_done(l, METRICS_TLS_1_3, METRICS_CIPHER_CHACHA20_POLY1305_SHA256,
                               METRICS_GROUP_P384, false, w->rounds % 20000000);
        metrics_bytes_client_to_backend(l, 3);
        metrics_conn_closed(l, END_DONE, 0);
        w->rounds++;
    }
    /* The block lives on until the end of the test: freeing it here would
     * race with nothing, but keeping it shows live blocks are summed. */
    return b;
}

static void check_histogram_shape(const struct exposition *e, const char *family,
                                  const char *listener)
{
    char name[96], labels[128];
    uint64_t previous = 0;
    for (int i = 0; i <= METRICS_DURATION_BUCKETS; i++) {
        snprintf(name, sizeof(name), "%s_bucket", family);
        snprintf(labels, sizeof(labels), "listener=\"%s\",le=\"%s\"", listener, le_texts[i]);
        const struct sample *s = find(e, name, labels);
        assert_non_null(s);
        assert_true(s->micro >= previous);
        previous = s->micro;
    }
    snprintf(name, sizeof(name), "%s_count", family);
    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    const struct sample *count = find(e, name, labels);
    assert_non_null(count);
    assert_int_equal(count->micro, previous);
}

static void test_render_while_writing(void **state)
{
    struct metrics *m = metrics_new();
    atomic_bool stop = false;
    struct live_writer writers[NUM_LIVE_WRITERS];
    pthread_t threads[NUM_LIVE_WRITERS];
    struct metrics_block *blocks[NUM_LIVE_WRITERS];
    struct exposition previous = {0}, e;

    for (int i = 0; i < NUM_LIVE_WRITERS; i++) {
        writers[i] = (struct live_writer){.metrics = m, .stop = &stop};
        assert_int_equal(pthread_create(&threads[i], NULL, write_until_stopped, &writers[i]),
                         0);
    }
    for (int r = 0; r < NUM_RENDERS; r++) {
        render_parse(m, &e);
        /* Every series only grows from one scrape to the next. */
        for (size_t i = 0; i < previous.num_samples; i++) {
            const struct sample *before = &previous.samples[i];
            if (strcmp(before->family, "tlsterm_connections_active") == 0)
                continue;
            const struct sample *now = find(&e, before->name, before->labels);
            assert_non_null(now);
            assert_true(now->micro >= before->micro);
        }
        /* Active is accepted minus closed and never wraps below zero. (It
         * may read a little high: the accepts counted while the scrape
         * read the closes count as open.) */
        const struct sample *active =
            find(&e, "tlsterm_connections_active", "listener=\"live\"");
        const struct sample *accepted =
            find(&e, "tlsterm_connections_accepted_total", "listener=\"live\"");
        if (active != NULL) {
            assert_non_null(accepted);
            assert_true(active->micro <= accepted->micro);
            check_histogram_shape(&e, "tlsterm_handshake_duration_seconds", "live");
        }
        exposition_free(&previous);
        previous = e;
    }
    exposition_free(&previous);

    atomic_store(&stop, true);
    uint64_t rounds = 0;
    for (int i = 0; i < NUM_LIVE_WRITERS; i++) {
        void *block;
        assert_int_equal(pthread_join(threads[i], &block), 0);
        blocks[i] = block;
        rounds += writers[i].rounds;
    }
    /* Once the writers stopped, the totals are exact. */
    render_parse(m, &e);
    assert_int_equal(find(&e, "tlsterm_connections_accepted_total", "listener=\"live\"")->micro,
                     rounds * 1000000);
    assert_int_equal(find(&e, "tlsterm_connections_active", "listener=\"live\"")->micro, 0);
    assert_int_equal(find(&e, "tlsterm_forwarded_bytes_total",
                          "listener=\"live\",direction=\"client_to_backend\"")
                         ->micro,
                     3 * rounds * 1000000);
    assert_int_equal(
        find(&e, "tlsterm_handshake_duration_seconds_count", "listener=\"live\"")->micro,
        rounds * 1000000);
    exposition_free(&e);
    for (int i = 0; i < NUM_LIVE_WRITERS; i++)
        metrics_block_free(blocks[i]);
    metrics_free(m);
}

/* ---- reloads, certificates and the process ----------------------------------------- */

static void test_listeners_across_reloads(void **state)
{
    struct metrics *m = metrics_new();
    struct exposition e;

    /* The first generation has listeners a and b. */
    struct metrics_block *first = metrics_block_new(m);
    metrics_conn_accepted(metrics_block_listener(first, "a"));
    struct metrics_listener *b_first = metrics_block_listener(first, "b");
    metrics_conn_accepted(b_first);
    metrics_conn_accepted(b_first);
    /* Asking again for a name gives the same counters. */
    assert_ptr_equal(metrics_block_listener(first, "b"), b_first);
    metrics_config_reloaded(m, false);
    metrics_config_reloaded(m, true);

    /* The next has b and c, in another order, counted by another block. */
    struct metrics_block *second = metrics_block_new(m);
    metrics_conn_accepted(metrics_block_listener(second, "c"));
    metrics_conn_accepted(metrics_block_listener(second, "b"));
    metrics_block_free(first);

    struct expect_list *expected = calloc(1, sizeof(*expected));
    expect(expected, "tlsterm_connections_accepted_total", "listener=\"a\"", 1);
    expect(expected, "tlsterm_connections_accepted_total", "listener=\"b\"", 3);
    expect(expected, "tlsterm_connections_accepted_total", "listener=\"c\"", 1);
    expect(expected, "tlsterm_connections_active", "listener=\"a\"", 1);
    expect(expected, "tlsterm_connections_active", "listener=\"b\"", 3);
    expect(expected, "tlsterm_connections_active", "listener=\"c\"", 1);
    expect(expected, "tlsterm_config_reloads_total", "result=\"ok\"", 1);
    expect(expected, "tlsterm_config_reloads_total", "result=\"failed\"", 1);
    struct metrics_cert certs[] = {
        {.listener = "b", .subject = "CN=old", .serial = "01", .not_after = 1700000000},
    };
    assert_int_equal(metrics_certs_set(m, certs, 1), 0);
    struct metrics_cert renewed[] = {
        {.listener = "b", .subject = "CN=new", .serial = "02", .not_after = 1800000000},
        {.listener = "c", .subject = "CN=c", .serial = "03", .not_after = 1900000000},
    };
    assert_int_equal(metrics_certs_set(m, renewed, 2), 0);
    expect(expected, "tlsterm_certificate_not_after_timestamp_seconds",
           "listener=\"b\",subject=\"CN=new\",serial=\"02\"", 1800000000);
    expect(expected, "tlsterm_certificate_not_after_timestamp_seconds",
           "listener=\"c\",subject=\"CN=c\",serial=\"03\"", 1900000000);
    render_parse(m, &e);
    check_exactly(&e, expected);
    /* Slots keep the order names were first seen in: a, b, c. */
    assert_ptr_equal(find(&e, "tlsterm_connections_accepted_total", "listener=\"a\""),
                     &e.samples[0]);
    assert_ptr_equal(find(&e, "tlsterm_connections_accepted_total", "listener=\"c\""),
                     &e.samples[2]);
    exposition_free(&e);

    /* An empty set removes every certificate. */
    assert_int_equal(metrics_certs_set(m, NULL, 0), 0);
    render_parse(m, &e);
    assert_int_equal(count_family(&e, "tlsterm_certificate_not_after_timestamp_seconds"), 0);
    exposition_free(&e);

    free(expected);
    metrics_block_free(second);
    metrics_free(m);
}

static void test_empty_metrics_render(void **state)
{
    struct metrics *m = metrics_new();
    struct exposition e;
    struct expect_list *expected = calloc(1, sizeof(*expected));

    render_parse(m, &e);
    check_exactly(&e, expected);
    /* Every family is declared, even with no series. */
    assert_int_equal(e.num_families, 22);
    assert_int_equal(e.num_samples, 3); /* build_info and the two reload results */
    exposition_free(&e);
    free(expected);
    metrics_free(m);
}

/* tlsterm_build_info: the version, the instance set (and set again after a
 * reload) and the BoringSSL build, value 1. */
static void test_build_info(void **state)
{
    struct metrics *m = metrics_new();
    struct evbuffer *out = evbuffer_new();
    char expected[256];

    metrics_set_instance(m, "edge-1");
    metrics_set_instance(m, "edge-2");
    assert_int_equal(metrics_render(m, out), 0);
    evbuffer_add(out, "", 1);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    snprintf(expected, sizeof(expected),
             "\ntlsterm_build_info{version=\"%s\",instance=\"edge-2\",boringssl=\"",
             TLSTERM_VERSION);
    const char *line = strstr(text, expected);
    assert_non_null(line);
    assert_non_null(strstr(line, "\"} 1\n"));
    assert_null(strstr(text, "edge-1"));
    evbuffer_free(out);
    metrics_free(m);
}

static void test_listener_limit(void **state)
{
    struct metrics *m = metrics_new();
    struct metrics_block *b = metrics_block_new(m);
    char name[32];

    for (int i = 0; i < METRICS_MAX_LISTENERS; i++) {
        snprintf(name, sizeof(name), "l%d", i);
        assert_non_null(metrics_block_listener(b, name));
    }
    assert_null(metrics_block_listener(b, "one_too_many"));
    assert_non_null(metrics_block_listener(b, "l7"));
    /* Another block may still use every registered name. */
    struct metrics_block *other = metrics_block_new(m);
    assert_non_null(metrics_block_listener(other, "l1023"));
    metrics_block_free(other);
    metrics_block_free(b);
    metrics_free(m);
}

static void test_label_mappings(void **state)
{
    assert_int_equal(metrics_tls_version_of(0x0304), METRICS_TLS_1_3);
    assert_int_equal(metrics_tls_version_of(0x0303), METRICS_TLS_1_2);
    assert_int_equal(metrics_tls_version_of(0x0302), METRICS_TLS_1_1);
    assert_int_equal(metrics_tls_version_of(0x0301), METRICS_TLS_1_0);
    assert_int_equal(metrics_tls_version_of(0x0300), METRICS_TLS_OTHER);
    assert_int_equal(metrics_tls_version_of(0xfefd), METRICS_TLS_OTHER);

    assert_int_equal(metrics_cipher_of(0x1301), METRICS_CIPHER_AES_128_GCM_SHA256);
    assert_int_equal(metrics_cipher_of(0x1302), METRICS_CIPHER_AES_256_GCM_SHA384);
    assert_int_equal(metrics_cipher_of(0x1303), METRICS_CIPHER_CHACHA20_POLY1305_SHA256);
    assert_int_equal(metrics_cipher_of(0xc02b), METRICS_CIPHER_ECDHE_ECDSA_AES_128_GCM_SHA256);
    assert_int_equal(metrics_cipher_of(0xc02f), METRICS_CIPHER_ECDHE_RSA_AES_128_GCM_SHA256);
    assert_int_equal(metrics_cipher_of(0xc02c), METRICS_CIPHER_ECDHE_ECDSA_AES_256_GCM_SHA384);
    assert_int_equal(metrics_cipher_of(0xc030), METRICS_CIPHER_ECDHE_RSA_AES_256_GCM_SHA384);
    assert_int_equal(metrics_cipher_of(0xcca9), METRICS_CIPHER_ECDHE_ECDSA_CHACHA20_POLY1305);
    assert_int_equal(metrics_cipher_of(0xcca8), METRICS_CIPHER_ECDHE_RSA_CHACHA20_POLY1305);
    assert_int_equal(metrics_cipher_of(0x002f), METRICS_CIPHER_OTHER); /* AES128-SHA */
    assert_int_equal(metrics_cipher_of(0), METRICS_CIPHER_OTHER);

    assert_int_equal(metrics_group_of(29), METRICS_GROUP_X25519);
    assert_int_equal(metrics_group_of(23), METRICS_GROUP_P256);
    assert_int_equal(metrics_group_of(24), METRICS_GROUP_P384);
    assert_int_equal(metrics_group_of(25), METRICS_GROUP_OTHER); /* P-521 */
    assert_int_equal(metrics_group_of(0x11ec), METRICS_GROUP_OTHER);
    assert_int_equal(metrics_group_of(0), METRICS_GROUP_NONE);
}

/* Every (version, cipher, group, resumed) label combination renders with
 * the names the logs use. */
static void test_handshake_label_values(void **state)
{
    struct metrics *m = metrics_new();
    struct metrics_block *b = metrics_block_new(m);
    struct metrics_listener *l = metrics_block_listener(b, "x");
    for (int v = 0; v < METRICS_TLS_VERSION_COUNT; v++)
        for (int c = 0; c < METRICS_CIPHER_COUNT; c++)
            for (int g = 0; g < METRICS_GROUP_COUNT; g++)
                for (int r = 0; r < 2; r++)
                    metrics_handshake_done(l, (enum metrics_tls_version)v,
                                           (enum metrics_cipher)c, (enum metrics_group)g, r, 1);
    struct exposition e;
    render_parse(m, &e);
    assert_int_equal(count_family(&e, "tlsterm_handshakes_total"), METRICS_TLS_VERSION_COUNT *
                                                                       METRICS_CIPHER_COUNT *
                                                                       METRICS_GROUP_COUNT * 2);
    assert_non_null(find(&e, "tlsterm_handshakes_total",
                         "listener=\"x\",version=\"TLSv1.0\",cipher=\"other\",group=\"none\","
                         "resumed=\"true\""));
    assert_non_null(find(&e, "tlsterm_handshakes_total",
                         "listener=\"x\",version=\"other\","
                         "cipher=\"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\","
                         "group=\"P-384\",resumed=\"false\""));
    exposition_free(&e);
    metrics_block_free(b);
    metrics_free(m);
}

/* ---- HTTP mode ------------------------------------------------------------------------ */

/* http_conn makes the little of a connection http_metrics reads: its
 * listener's counters. */
static void http_conn(struct conn *c, struct listener *listener, struct metrics_listener *l)
{
    memset(c, 0, sizeof(*c));
    memset(listener, 0, sizeof(*listener));
    listener->metrics = l;
    c->listener = listener;
}

static void test_http_requests(void **state)
{
    struct metrics *m = metrics_new();
    struct metrics_block *b = metrics_block_new(m);
    struct metrics_listener *web = metrics_block_listener(b, "web");
    struct metrics_listener *tcp = metrics_block_listener(b, "tcp");
    struct listener listener;
    struct conn c;

    http_conn(&c, &listener, web);
    metrics_conn_accepted(tcp);
    for (int i = 0; i < 3; i++)
        http_metrics_request(&c, "h2", 200, HTTP_REASON_NONE, 400);
    http_metrics_request(&c, "h2", 404, HTTP_REASON_NONE, 2000);
    http_metrics_request(&c, "h2", 101, HTTP_REASON_NONE, 700);
    http_metrics_request(&c, "http/1.1", 304, HTTP_REASON_NONE, 1000);
    http_metrics_request(&c, "http/1.1", 503, HTTP_REASON_BACKEND_BUSY, 3000000);
    http_metrics_request(&c, "http/1.1", 503, HTTP_REASON_BACKEND_BUSY, 3000000);
    http_metrics_request(&c, "http/1.1", 421, HTTP_REASON_MISDIRECTED, 100);
    /* Cut short after the final head went out: its status, and a reason. */
    http_metrics_request(&c, "h2", 200, HTTP_REASON_BACKEND_RESET, 60000);
    /* The client left before any answer: no class, but a duration and
     * a reason. */
    http_metrics_request(&c, "http/1.1", 0, HTTP_REASON_CLIENT_ABORTED, 20000000);
    http_metrics_request(&c, "h2", 499, HTTP_REASON_CLIENT_ABORTED, 5000);
    http_metrics_backend_conn(&c, true);
    http_metrics_backend_conn(&c, true);
    http_metrics_backend_conn(&c, false);
    metrics_counter_add(&web->http2_abuse[H2_ABUSE_GLITCHES], 1);

    struct expect_list *expected = calloc(1, sizeof(*expected));
    static const char web_h2[] = "listener=\"web\",protocol=\"h2\",code=";
    static const char web_h1[] = "listener=\"web\",protocol=\"http/1.1\",code=";
    char labels[128];
    static const struct {
        const char *prefix;
        const char *code;
        uint64_t n;
    } requests[] = {
        {web_h2, "\"2xx\"", 4}, {web_h2, "\"4xx\"", 2}, {web_h2, "\"1xx\"", 1},
        {web_h1, "\"3xx\"", 1}, {web_h1, "\"5xx\"", 2}, {web_h1, "\"4xx\"", 1},
    };
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        snprintf(labels, sizeof(labels), "%s%s", requests[i].prefix, requests[i].code);
        expect(expected, "tlsterm_http_requests_total", labels, requests[i].n);
    }
    const uint64_t duration_buckets[] = {4, 6, 7, 8, 8, 8, 8, 9, 9, 9, 9, 9, 11, 11, 12};
    expect_histogram(expected, "tlsterm_http_request_duration_seconds", "web", duration_buckets,
                     3 * 400 + 2000 + 700 + 1000 + 2 * 3000000 + 100 + 60000 + 20000000 + 5000);
    expect(expected, "tlsterm_http_errors_total", "listener=\"web\",reason=\"backend_busy\"",
           2);
    expect(expected, "tlsterm_http_errors_total", "listener=\"web\",reason=\"misdirected\"", 1);
    expect(expected, "tlsterm_http_errors_total", "listener=\"web\",reason=\"backend_reset\"",
           1);
    expect(expected, "tlsterm_http_errors_total", "listener=\"web\",reason=\"client_aborted\"",
           2);
    expect(expected, "tlsterm_backend_connections_total", "listener=\"web\",reused=\"true\"",
           2);
    expect(expected, "tlsterm_backend_connections_total", "listener=\"web\",reused=\"false\"",
           1);
    expect(expected, "tlsterm_http2_abuse_total", "listener=\"web\",cause=\"glitches\"", 1);
    expect(expected, "tlsterm_connections_accepted_total", "listener=\"tcp\"", 1);
    expect(expected, "tlsterm_connections_active", "listener=\"tcp\"", 1);

    struct exposition e;
    render_parse(m, &e);
    check_exactly(&e, expected);
    /* Full label sets for the HTTP listener, zeros included; nothing for
     * the listener that never served HTTP. */
    assert_int_equal(count_family(&e, "tlsterm_http_requests_total"),
                     METRICS_HTTP_PROTOCOL_COUNT * METRICS_HTTP_STATUS_CLASSES);
    assert_int_equal(count_family(&e, "tlsterm_http_errors_total"), HTTP_REASON_COUNT - 1);
    for (int r = HTTP_REASON_NONE + 1; r < HTTP_REASON_COUNT; r++) {
        snprintf(labels, sizeof(labels), "listener=\"web\",reason=\"%s\"",
                 http_reason_name((enum http_reason)r));
        assert_non_null(find(&e, "tlsterm_http_errors_total", labels));
    }
    assert_int_equal(count_family(&e, "tlsterm_http_request_duration_seconds"),
                     METRICS_DURATION_BUCKETS + 3);
    assert_int_equal(count_family(&e, "tlsterm_backend_connections_total"), 2);
    assert_int_equal(count_family(&e, "tlsterm_http2_abuse_total"), H2_ABUSE_COUNT);
    for (int a = 0; a < H2_ABUSE_COUNT; a++) {
        snprintf(labels, sizeof(labels), "listener=\"web\",cause=\"%s\"",
                 h2_abuse_cause_name((enum h2_abuse_cause)a));
        assert_non_null(find(&e, "tlsterm_http2_abuse_total", labels));
    }
    assert_int_equal(count_family(&e, "tlsterm_backend_pool_idle"), 0);
    exposition_free(&e);

    /* The counters survive their block, as every counter does. */
    metrics_block_free(b);
    char *text = render_text(m);
    assert_non_null(strstr(text, "\ntlsterm_http_requests_total{listener=\"web\","
                                 "protocol=\"http/1.1\",code=\"5xx\"} 2\n"));
    assert_non_null(strstr(
        text, "\ntlsterm_backend_connections_total{listener=\"web\",reused=\"true\"} 2\n"));
    free(text);
    free(expected);
    metrics_free(m);
}

static struct net_addr addr_of(const char *text)
{
    struct net_addr addr;
    char err[128];
    assert_int_equal(net_addr_parse(text, false, &addr, err, sizeof(err)), 0);
    return addr;
}

static void test_pool_idle_gauge(void **state)
{
    struct metrics *m = metrics_new();
    struct metrics_block *first = metrics_block_new(m);
    struct metrics_block *second = metrics_block_new(m);
    struct metrics_listener *web1 = metrics_block_listener(first, "web");
    struct metrics_listener *web2 = metrics_block_listener(second, "web");
    struct metrics_listener *api2 = metrics_block_listener(second, "api");
    struct net_addr a = addr_of("127.0.0.1:8080");
    struct net_addr a_again = addr_of("127.0.0.1:8080");
    struct net_addr v6 = addr_of("[::1]:9000");

    /* Each worker moves its own gauges; a scrape adds them up by server. */
    for (int i = 0; i < 3; i++)
        http_metrics_pool_idle(web1, &a, 1);
    http_metrics_pool_idle(web1, &a, -1);
    http_metrics_pool_idle(web1, &v6, 1);
    http_metrics_pool_idle(web2, &v6, 1);
    http_metrics_pool_idle(web2, &a_again, 1);
    http_metrics_pool_idle(web2, &a_again, 1);
    http_metrics_pool_idle(api2, &a, 1);
    http_metrics_pool_idle(api2, &a, -1);

    struct expect_list *expected = calloc(1, sizeof(*expected));
    expect(expected, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"127.0.0.1:8080\"",
           4);
    expect(expected, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"[::1]:9000\"", 2);
    expect(expected, "tlsterm_backend_pool_idle", "listener=\"api\",server=\"127.0.0.1:8080\"",
           0);
    struct exposition e;
    render_parse(m, &e);
    check_exactly(&e, expected);
    assert_int_equal(count_family(&e, "tlsterm_backend_pool_idle"), 3);
    exposition_free(&e);

    /* A worker that ended has no pool: its gauges leave the sum. */
    metrics_block_free(second);
    render_parse(m, &e);
    assert_int_equal(
        find(&e, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"127.0.0.1:8080\"")
            ->micro,
        2 * 1000000);
    assert_int_equal(
        find(&e, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"[::1]:9000\"")->micro,
        1 * 1000000);
    assert_null(
        find(&e, "tlsterm_backend_pool_idle", "listener=\"api\",server=\"127.0.0.1:8080\""));
    exposition_free(&e);

    /* Past METRICS_POOL_SERVERS servers, a listener's further ones share
     * server "other", which moves both ways like the others. */
    char text[64];
    for (int i = 2; i < METRICS_POOL_SERVERS + 2; i++) {
        snprintf(text, sizeof(text), "10.0.0.1:%d", 1000 + i);
        struct net_addr server = addr_of(text);
        http_metrics_pool_idle(web1, &server, 1);
        http_metrics_pool_idle(web1, &server, 1);
        http_metrics_pool_idle(web1, &server, -1);
    }
    render_parse(m, &e);
    assert_int_equal(count_family(&e, "tlsterm_backend_pool_idle"), METRICS_POOL_SERVERS + 1);
    assert_non_null(
        find(&e, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"10.0.0.1:1063\""));
    assert_null(
        find(&e, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"10.0.0.1:1064\""));
    assert_int_equal(
        find(&e, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"other\"")->micro,
        2 * 1000000);
    exposition_free(&e);

    free(expected);
    metrics_block_free(first);
    metrics_free(m);
}

/* register_servers_while_rendered registers METRICS_POOL_SERVERS servers in
 * its own block, one idle connection each, while the test scrapes. */
static void *register_servers_while_rendered(void *arg)
{
    struct metrics_listener *l = arg;
    char text[64];
    for (int i = 0; i < METRICS_POOL_SERVERS; i++) {
        snprintf(text, sizeof(text), "[2001:db8::%x]:%d", i + 1, 2000 + i);
        struct net_addr server = addr_of(text);
        http_metrics_pool_idle(l, &server, 1);
    }
    return NULL;
}

/* A scrape beside a worker registering servers sees each server whole,
 * never an address being written. */
static void test_pool_idle_while_registering(void **state)
{
    struct metrics *m = metrics_new();
    struct metrics_block *blocks[2];
    pthread_t threads[2];

    for (int t = 0; t < 2; t++) {
        blocks[t] = metrics_block_new(m);
        struct metrics_listener *l = metrics_block_listener(blocks[t], "web");
        assert_non_null(l);
        assert_int_equal(pthread_create(&threads[t], NULL, register_servers_while_rendered, l),
                         0);
    }
    for (int r = 0; r < 50; r++) {
        struct exposition e;
        render_parse(m, &e);
        for (size_t i = 0; i < e.num_samples; i++) {
            if (strcmp(e.samples[i].family, "tlsterm_backend_pool_idle") != 0)
                continue;
            const char *labels = e.samples[i].labels;
            if (strcmp(labels, "listener=\"web\",server=\"other\"") == 0) {
                assert_int_equal(e.samples[i].micro, 0);
                continue;
            }
            assert_non_null(strstr(labels, "listener=\"web\",server=\"[2001:db8::"));
            assert_true(e.samples[i].micro <= 2 * 1000000);
        }
        exposition_free(&e);
    }
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    struct exposition e;
    render_parse(m, &e);
    /* A full table shows "other" too, ready for the next server. */
    assert_int_equal(count_family(&e, "tlsterm_backend_pool_idle"), METRICS_POOL_SERVERS + 1);
    assert_int_equal(
        find(&e, "tlsterm_backend_pool_idle", "listener=\"web\",server=\"[2001:db8::40]:2063\"")
            ->micro,
        2 * 1000000);
    exposition_free(&e);
    for (int t = 0; t < 2; t++)
        metrics_block_free(blocks[t]);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_then_render),
        cmocka_unit_test(test_histogram_bucket_edges),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_render_while_writing),
        cmocka_unit_test(test_listeners_across_reloads),
        cmocka_unit_test(test_empty_metrics_render),
        cmocka_unit_test(test_build_info),
        cmocka_unit_test(test_listener_limit),
        cmocka_unit_test(test_label_mappings),
        cmocka_unit_test(test_handshake_label_values),
        cmocka_unit_test(test_http_requests),
        cmocka_unit_test(test_pool_idle_gauge),
        cmocka_unit_test(test_pool_idle_while_registering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
