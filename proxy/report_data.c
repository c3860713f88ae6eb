/* report_data: the counts of a TLS failure report (top-K tables, the
 * listener+policy entries and their result-types) and the JSON writer. The
 * running report (report.c) and `tlsterm report` (report_cli.c,
 * report_merge.c) share them. See report.h for the bounds. */
#include "report.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* "*": not a valid listener name, so it never collides with one. */
#define REPORT_OTHER_LISTENER "*"
#define REPORT_OTHER_RESULT "other"

/* ---- top-K tables ----------------------------------------------------------- */

void report_top_add(struct report_top *top, const char *key, uint64_t weight)
{
    size_t smallest = 0;

    for (size_t i = 0; i < top->num; i++) {
        if (strncmp(top->entries[i].key, key, REPORT_KEY_MAX - 1) == 0) {
            top->entries[i].count += weight;
            return;
        }
        if (top->entries[i].count < top->entries[smallest].count)
            smallest = i;
    }
    struct report_top_entry *entry;
    if (top->num < REPORT_TOP_K) {
        entry = &top->entries[top->num++];
        entry->count = weight;
    } else {
        entry = &top->entries[smallest];
        entry->count += weight;
        top->saturated = true;
    }
    snprintf(entry->key, sizeof(entry->key), "%s", key);
}

static int compare_top_entries(const void *a, const void *b)
{
    const struct report_top_entry *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->key, y->key);
}

size_t report_top_sorted(const struct report_top *top,
                         struct report_top_entry out[REPORT_TOP_K])
{
    memcpy(out, top->entries, top->num * sizeof(*out));
    qsort(out, top->num, sizeof(*out), compare_top_entries);
    return top->num;
}

static uint64_t smallest_count(const struct report_top *top)
{
    uint64_t smallest = UINT64_MAX;
    for (size_t i = 0; i < top->num; i++)
        if (top->entries[i].count < smallest)
            smallest = top->entries[i].count;
    return top->num > 0 ? smallest : 0;
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void report_top_merge(struct report_top *dst, const struct report_top *src)
{
    struct report_top_entry all[2 * REPORT_TOP_K];
    /* What a saturated table may have counted for a value it lacks. */
    uint64_t dst_absent = dst->saturated ? smallest_count(dst) : 0;
    uint64_t src_absent = src->saturated ? smallest_count(src) : 0;
    size_t num = 0;

    for (size_t i = 0; i < dst->num; i++) {
        all[num] = dst->entries[i];
        uint64_t from_src = src_absent;
        for (size_t j = 0; j < src->num; j++)
            if (strcmp(src->entries[j].key, dst->entries[i].key) == 0)
                from_src = src->entries[j].count;
        all[num++].count = add_saturating(dst->entries[i].count, from_src);
    }
    for (size_t j = 0; j < src->num; j++) {
        bool in_dst = false;
        for (size_t i = 0; i < dst->num && !in_dst; i++)
            in_dst = strcmp(src->entries[j].key, dst->entries[i].key) == 0;
        if (in_dst)
            continue;
        all[num] = src->entries[j];
        all[num++].count = add_saturating(src->entries[j].count, dst_absent);
    }
    qsort(all, num, sizeof(all[0]), compare_top_entries);
    dst->saturated = dst->saturated || src->saturated || num > REPORT_TOP_K;
    dst->num = num > REPORT_TOP_K ? REPORT_TOP_K : num;
    memcpy(dst->entries, all, dst->num * sizeof(all[0]));
}

const char *report_network_of(const struct sockaddr *addr, char out[REPORT_KEY_MAX])
{
    char text[INET6_ADDRSTRLEN];

    if (addr->sa_family == AF_INET6) {
        struct in6_addr a6 = ((const struct sockaddr_in6 *)addr)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            struct in_addr a4;
            memcpy(&a4, &a6.s6_addr[12], 4);
            ((uint8_t *)&a4)[3] = 0;
            inet_ntop(AF_INET, &a4, text, sizeof(text));
            snprintf(out, REPORT_KEY_MAX, "%s/24", text);
            return out;
        }
        memset(&a6.s6_addr[6], 0, 10);
        inet_ntop(AF_INET6, &a6, text, sizeof(text));
        snprintf(out, REPORT_KEY_MAX, "%s/48", text);
        return out;
    }
    if (addr->sa_family == AF_INET) {
        struct in_addr a4 = ((const struct sockaddr_in *)addr)->sin_addr;
        ((uint8_t *)&a4)[3] = 0;
        inet_ntop(AF_INET, &a4, text, sizeof(text));
        snprintf(out, REPORT_KEY_MAX, "%s/24", text);
        return out;
    }
    snprintf(out, REPORT_KEY_MAX, "unknown");
    return out;
}

const char *report_version_name(uint16_t version, char buf[8])
{
    switch (version) {
    case 0x0300:
        return "SSLv3";
    case 0x0301:
        return "TLSv1.0";
    case 0x0302:
        return "TLSv1.1";
    case 0x0303:
        return "TLSv1.2";
    case 0x0304:
        return "TLSv1.3";
    default:
        snprintf(buf, 8, "0x%04x", version);
        return buf;
    }
}

int report_version_number(const char *name, uint16_t *out)
{
    static const struct {
        const char *name;
        uint16_t number;
    } names[] = {{"SSLv3", 0x0300},
                 {"TLSv1.0", 0x0301},
                 {"TLSv1.1", 0x0302},
                 {"TLSv1.2", 0x0303},
                 {"TLSv1.3", 0x0304}};
    unsigned number;
    int len = 0;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].number;
            return 0;
        }
    }
    if (strlen(name) != 6 || sscanf(name, "0x%4x%n", &number, &len) != 1 || len != 6)
        return -1;
    *out = (uint16_t)number;
    return 0;
}

int report_policy_number(const char *name, enum cfg_policy *out)
{
    if (strcmp(name, "intermediate") == 0)
        *out = CFG_POLICY_INTERMEDIATE;
    else if (strcmp(name, "modern") == 0)
        *out = CFG_POLICY_MODERN;
    else if (strcmp(name, "custom") == 0)
        *out = CFG_POLICY_CUSTOM;
    else
        return -1;
    return 0;
}

static const char *policy_name(enum cfg_policy policy)
{
    switch (policy) {
    case CFG_POLICY_INTERMEDIATE:
        return "intermediate";
    case CFG_POLICY_MODERN:
        return "modern";
    case CFG_POLICY_CUSTOM:
        return "custom";
    }
    return "custom";
}

/* ---- counts ------------------------------------------------------------------- */

struct report_result {
    char type[REPORT_RESULT_TYPE_MAX];
    uint64_t count;
    struct report_top networks;
    struct report_top ja4s;
    struct report_top versions;
};

struct report_policy {
    char listener[REPORT_LISTENER_MAX + 1];
    enum cfg_policy policy;
    uint16_t min_version;
    uint16_t max_version;
    bool report_only;
    uint64_t successes;
    uint64_t failures;
    struct report_result *results; /* grown as needed, up to the cap */
    size_t num_results;
};

struct report_data {
    struct report_policy *policies; /* grown as needed, up to the cap */
    size_t num_policies;
};

struct report_data *report_data_new(void) { return calloc(1, sizeof(struct report_data)); }

void report_data_free(struct report_data *data)
{
    if (data == NULL)
        return;
    for (size_t i = 0; i < data->num_policies; i++)
        free(data->policies[i].results);
    free(data->policies);
    free(data);
}

static bool same_key(const struct report_policy *p, const struct report_policy_key *key)
{
    return p->policy == key->policy && p->min_version == key->min_version &&
           p->max_version == key->max_version && p->report_only == key->report_only &&
           strcmp(p->listener, key->listener) == 0;
}

/* find_policy returns the entry for |key|, made if new; past the cap, the
 * overflow entry of its kind (real or report-only). NULL when out of
 * memory. */
static struct report_policy *find_policy(struct report_data *data,
                                         const struct report_policy_key *key)
{
    bool is_overflow = strcmp(key->listener, REPORT_OTHER_LISTENER) == 0;

    for (size_t i = 0; i < data->num_policies; i++)
        if (same_key(&data->policies[i], key))
            return &data->policies[i];
    /* The two overflow entries take the last two slots, so they can always
     * be made. */
    if (!is_overflow && data->num_policies >= REPORT_MAX_POLICIES - 2) {
        const struct report_policy_key overflow = {.listener = REPORT_OTHER_LISTENER,
                                                   .report_only = key->report_only};
        return find_policy(data, &overflow);
    }
    struct report_policy *grown =
        realloc(data->policies, (data->num_policies + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    data->policies = grown;
    struct report_policy *p = &data->policies[data->num_policies++];
    memset(p, 0, sizeof(*p));
    snprintf(p->listener, sizeof(p->listener), "%s", key->listener);
    p->policy = key->policy;
    p->min_version = key->min_version;
    p->max_version = key->max_version;
    p->report_only = key->report_only;
    return p;
}

static struct report_result *find_result(struct report_policy *p, const char *type)
{
    for (size_t i = 0; i < p->num_results; i++)
        if (strcmp(p->results[i].type, type) == 0)
            return &p->results[i];
    if (p->num_results >= REPORT_MAX_RESULT_TYPES - 1 && strcmp(type, REPORT_OTHER_RESULT) != 0)
        return find_result(p, REPORT_OTHER_RESULT);
    struct report_result *grown = realloc(p->results, (p->num_results + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    p->results = grown;
    struct report_result *r = &p->results[p->num_results++];
    memset(r, 0, sizeof(*r));
    snprintf(r->type, sizeof(r->type), "%s", type);
    return r;
}

int report_data_add_success(struct report_data *data, const struct report_policy_key *key,
                            uint64_t n)
{
    struct report_policy *p = find_policy(data, key);
    if (p == NULL)
        return -1;
    p->successes += n;
    return 0;
}

int report_data_add_failure(struct report_data *data, const struct report_policy_key *key,
                            const char *result_type, const char *network, const char *ja4,
                            const char *version)
{
    struct report_policy *p = find_policy(data, key);
    struct report_result *r = p != NULL ? find_result(p, result_type) : NULL;
    if (r == NULL)
        return -1;
    p->failures++;
    r->count++;
    report_top_add(&r->networks, network, 1);
    if (ja4 != NULL)
        report_top_add(&r->ja4s, ja4, 1);
    if (version != NULL)
        report_top_add(&r->versions, version, 1);
    return 0;
}

int report_data_add_result(struct report_data *data, const struct report_policy_key *key,
                           const char *result_type, uint64_t count,
                           const struct report_top *networks, const struct report_top *ja4s,
                           const struct report_top *versions)
{
    struct report_policy *p = find_policy(data, key);
    struct report_result *r = p != NULL ? find_result(p, result_type) : NULL;
    if (r == NULL)
        return -1;
    p->failures = add_saturating(p->failures, count);
    r->count = add_saturating(r->count, count);
    report_top_merge(&r->networks, networks);
    report_top_merge(&r->ja4s, ja4s);
    report_top_merge(&r->versions, versions);
    return 0;
}

void report_data_counts(const struct report_data *data, const struct report_policy_key *key,
                        uint64_t *out_successes, uint64_t *out_failures)
{
    *out_successes = *out_failures = 0;
    for (size_t i = 0; i < data->num_policies; i++) {
        if (same_key(&data->policies[i], key)) {
            *out_successes = data->policies[i].successes;
            *out_failures = data->policies[i].failures;
        }
    }
}

int report_data_merge(struct report_data *dst, const struct report_data *src)
{
    for (size_t i = 0; i < src->num_policies; i++) {
        const struct report_policy *from = &src->policies[i];
        const struct report_policy_key key = {from->listener, from->policy, from->min_version,
                                              from->max_version, from->report_only};
        struct report_policy *to = find_policy(dst, &key);
        if (to == NULL)
            return -1;
        /* A count that would wrap refuses the sum rather than lie. */
        if (__builtin_add_overflow(to->successes, from->successes, &to->successes) ||
            __builtin_add_overflow(to->failures, from->failures, &to->failures))
            return -2;
        for (size_t j = 0; j < from->num_results; j++) {
            const struct report_result *fr = &from->results[j];
            struct report_result *tr = find_result(to, fr->type);
            if (tr == NULL)
                return -1;
            if (__builtin_add_overflow(tr->count, fr->count, &tr->count))
                return -2;
            report_top_merge(&tr->networks, &fr->networks);
            report_top_merge(&tr->ja4s, &fr->ja4s);
            report_top_merge(&tr->versions, &fr->versions);
        }
    }
    return 0;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* struct json is one document being written; after the first failed
 * append nothing more is written. */
struct json {
    struct evbuffer *out;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void jprintf(struct json *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!j->failed && evbuffer_add_vprintf(j->out, fmt, ap) < 0)
        j->failed = true;
    va_end(ap);
}

/* jstring writes |s| as a JSON string. Bytes below 0x20, '"' and '\\' are
 * escaped; the rest passes as is (the strings come from the configuration,
 * which libyaml checked to be UTF-8, or are ASCII made here). */
static void jstring(struct json *j, const char *s)
{
    jprintf(j, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            jprintf(j, "\\%c", *p);
        else if (*p < 0x20)
            jprintf(j, "\\u%04x", *p);
        else
            jprintf(j, "%c", *p);
    }
    jprintf(j, "\"");
}

static void format_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void jtop(struct json *j, const char *name, const char *key_name,
                 const struct report_top *top, bool last)
{
    struct report_top_entry sorted[REPORT_TOP_K];
    size_t num = report_top_sorted(top, sorted);

    jprintf(j, "          \"%s\": [", name);
    for (size_t i = 0; i < num; i++) {
        jprintf(j, "%s\n            {\"%s\": ", i > 0 ? "," : "", key_name);
        jstring(j, sorted[i].key);
        jprintf(j, ", \"count\": %" PRIu64 "%s}", sorted[i].count,
                top->saturated ? ", \"upper-bound\": true" : "");
    }
    jprintf(j, "%s]%s\n", num > 0 ? "\n          " : "", last ? "" : ",");
}

static int compare_policies(const void *a, const void *b)
{
    const struct report_policy *x = *(const struct report_policy *const *)a;
    const struct report_policy *y = *(const struct report_policy *const *)b;
    int by_name = strcmp(x->listener, y->listener);
    if (by_name != 0)
        return by_name;
    if (x->policy != y->policy)
        return x->policy < y->policy ? -1 : 1;
    if (x->min_version != y->min_version)
        return x->min_version < y->min_version ? -1 : 1;
    return x->max_version < y->max_version ? -1 : x->max_version > y->max_version;
}

static int compare_results(const void *a, const void *b)
{
    const struct report_result *x = *(const struct report_result *const *)a;
    const struct report_result *y = *(const struct report_result *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->type, y->type);
}

static void jpolicy(struct json *j, const struct report_policy *p, bool last)
{
    char min_buf[8], max_buf[8];
    const struct report_result **results =
        calloc(p->num_results > 0 ? p->num_results : 1, sizeof(*results));

    if (results == NULL) {
        j->failed = true;
        return;
    }
    for (size_t i = 0; i < p->num_results; i++)
        results[i] = &p->results[i];
    qsort(results, p->num_results, sizeof(*results), compare_results);

    jprintf(j, "    {\n      \"policy\": {\n        \"policy-type\": \"tlsterm\",\n");
    jprintf(j,
            "        \"policy-string\": [\"policy: %s\", \"min_version: %s\", "
            "\"max_version: %s\"],\n",
            policy_name(p->policy), report_version_name(p->min_version, min_buf),
            report_version_name(p->max_version, max_buf));
    jprintf(j, "        \"policy-domain\": ");
    jstring(j, p->listener);
    jprintf(j, "\n      },\n      \"summary\": {\n");
    jprintf(j, "        \"total-successful-session-count\": %" PRIu64 ",\n", p->successes);
    jprintf(j, "        \"total-failure-session-count\": %" PRIu64 "\n      },\n", p->failures);
    jprintf(j, "      \"failure-details\": [");
    for (size_t i = 0; i < p->num_results; i++) {
        const struct report_result *r = results[i];
        jprintf(j, "%s\n        {\n          \"result-type\": ", i > 0 ? "," : "");
        jstring(j, r->type);
        jprintf(j, ",\n          \"failed-session-count\": %" PRIu64 ",\n", r->count);
        jtop(j, "top-client-networks", "network", &r->networks, false);
        jtop(j, "top-ja4", "ja4", &r->ja4s, false);
        jtop(j, "top-offered-max-versions", "version", &r->versions, true);
        jprintf(j, "        }");
    }
    jprintf(j, "%s]\n    }%s\n", p->num_results > 0 ? "\n      " : "", last ? "" : ",");
    free(results);
}

/* jpolicies writes the list |name| of |data|'s entries whose report_only
 * is |report_only|, sorted, and a comma after it unless |last|. */
static void jpolicies(struct json *j, const struct report_data *data, const char *name,
                      bool report_only, bool last)
{
    const struct report_policy **policies =
        calloc(data->num_policies > 0 ? data->num_policies : 1, sizeof(*policies));
    size_t num = 0;

    if (policies == NULL) {
        j->failed = true;
        return;
    }
    for (size_t i = 0; i < data->num_policies; i++)
        if (data->policies[i].report_only == report_only)
            policies[num++] = &data->policies[i];
    qsort(policies, num, sizeof(*policies), compare_policies);
    jprintf(j, "  \"%s\": [%s", name, num > 0 ? "\n" : "");
    for (size_t i = 0; i < num; i++)
        jpolicy(j, policies[i], i + 1 == num);
    jprintf(j, "%s]%s\n", num > 0 ? "  " : "", last ? "" : ",");
    free(policies);
}

int report_write_json(const struct report_data *data, const struct report_meta *meta,
                      struct evbuffer *out)
{
    struct json j = {.out = out};
    char start[32], end[32];

    format_time(meta->start, start);
    format_time(meta->end, end);
    jprintf(&j, "{\n  \"organization-name\": ");
    jstring(&j, meta->organization);
    jprintf(&j,
            ",\n  \"date-range\": {\n    \"start-datetime\": \"%s\",\n"
            "    \"end-datetime\": \"%s\"\n  },\n",
            start, end);
    if (meta->contact_info != NULL) {
        jprintf(&j, "  \"contact-info\": ");
        jstring(&j, meta->contact_info);
        jprintf(&j, ",\n");
    }
    jprintf(&j, "  \"report-id\": ");
    jstring(&j, meta->report_id);
    jprintf(&j, ",\n");
    if (meta->num_instances > 0) {
        jprintf(&j, "  \"tlsterm\": {\n    \"instances\": [");
        for (size_t i = 0; i < meta->num_instances; i++) {
            jprintf(&j, "%s", i > 0 ? ", " : "");
            jstring(&j, meta->instances[i]);
        }
        jprintf(&j, "],\n    \"versions\": [");
        for (size_t i = 0; i < meta->num_versions; i++) {
            jprintf(&j, "%s", i > 0 ? ", " : "");
            jstring(&j, meta->versions[i]);
        }
        jprintf(&j, "],\n    \"windows\": %" PRIu64, meta->num_windows);
        /* A merge lists the windows it counts, so that merging it again
         * with one of them counts that window once. */
        if (meta->num_sources > 0)
            jprintf(&j, ",\n    \"sources\": [");
        for (size_t i = 0; i < meta->num_sources; i++) {
            const struct report_source *src = &meta->sources[i];
            format_time(src->start, start);
            format_time(src->end, end);
            jprintf(&j, "%s\n      {\"report-id\": ", i > 0 ? "," : "");
            jstring(&j, src->report_id);
            jprintf(&j, ", \"instance\": ");
            jstring(&j, src->instance);
            jprintf(&j, ", \"start-datetime\": \"%s\", \"end-datetime\": \"%s\"}", start, end);
        }
        if (meta->num_sources > 0)
            jprintf(&j, "\n    ]");
        jprintf(&j, "\n  },\n");
    }
    jpolicies(&j, data, "policies", false, false);
    jpolicies(&j, data, "report-only-policies", true, true);
    jprintf(&j, "}\n");
    return j.failed ? -1 : 0;
}
