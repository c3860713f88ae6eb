/* report: the TLS failure report. See report.h for the threads, the bounds
 * and the windows. */
#include "report.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clienthello.h"
#include "log.h"

/* Events a worker queues while a reader holds its block's mutex. */
#define REPORT_PENDING_MAX 64
/* How soon a worker retries to flush its queue when no new event comes. */
#define REPORT_FLUSH_RETRY_MS 100
/* "*": not a valid listener name, so it never collides with one. */
#define REPORT_OTHER_LISTENER "*"
#define REPORT_OTHER_RESULT "other"
#define REPORT_LISTENER_MAX 64
#define REPORT_RESULT_TYPE_MAX 48
#define REPORT_FILE_PREFIX "tlsterm-report-"
#define REPORT_FILE_SUFFIX ".json"

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

static void merge_top(struct report_top *dst, const struct report_top *src)
{
    for (size_t i = 0; i < src->num; i++)
        report_top_add(dst, src->entries[i].key, src->entries[i].count);
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
        to->successes += from->successes;
        to->failures += from->failures;
        for (size_t j = 0; j < from->num_results; j++) {
            const struct report_result *fr = &from->results[j];
            struct report_result *tr = find_result(to, fr->type);
            if (tr == NULL)
                return -1;
            tr->count += fr->count;
            merge_top(&tr->networks, &fr->networks);
            merge_top(&tr->ja4s, &fr->ja4s);
            merge_top(&tr->versions, &fr->versions);
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
        jprintf(j, ", \"count\": %" PRIu64 "}", sorted[i].count);
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
    jpolicies(&j, data, "policies", false, false);
    jpolicies(&j, data, "report-only-policies", true, true);
    jprintf(&j, "}\n");
    return j.failed ? -1 : 0;
}

/* ---- the running report ---------------------------------------------------------- */

/* struct report_event is one handshake, as a worker queues it: copies, so
 * it outlives the connection and its generation. */
struct report_event {
    char listener[REPORT_LISTENER_MAX + 1];
    enum cfg_policy policy;
    uint16_t min_version;
    uint16_t max_version;
    bool report_only; /* counted for the listener's candidate policy */
    bool failed;
    char result_type[REPORT_RESULT_TYPE_MAX];
    char network[REPORT_KEY_MAX];
    char ja4[REPORT_KEY_MAX]; /* "" when no ClientHello arrived */
    char version[8];          /* likewise */
};

struct report_block {
    struct report *report;
    struct report_block *prev, *next; /* the report's blocks, under its lock */
    pthread_mutex_t lock;             /* guards |published| */
    struct report_data *published;    /* counted since the reader last took it */
    /* The worker's own: events waiting for |lock|. */
    struct report_event pending[REPORT_PENDING_MAX];
    size_t num_pending;
    struct event *flush_timer;
};

struct report {
    pthread_mutex_t lock; /* guards everything below but |timer| and |base| */
    struct report_block *blocks;
    struct report_data *window; /* the current window, up to the last take */
    time_t window_start;
    uint64_t num_windows;
    struct cfg_report cfg; /* a copy: its strings are owned */
    struct event_base *base;
    struct event *timer;
    uint32_t timer_interval_ms;
    bool started; /* report_start armed the timer: windows are real */
};

/* apply_event adds |ev| to |data|; the caller holds the block's lock. */
static void apply_event(struct report_data *data, const struct report_event *ev)
{
    const struct report_policy_key key = {ev->listener, ev->policy, ev->min_version,
                                          ev->max_version, ev->report_only};
    if (!ev->failed)
        (void)report_data_add_success(data, &key, 1);
    else
        (void)report_data_add_failure(data, &key, ev->result_type, ev->network,
                                      ev->ja4[0] ? ev->ja4 : NULL,
                                      ev->version[0] ? ev->version : NULL);
}

/* flush_locked applies the queue; the caller holds the block's lock. */
static void flush_locked(struct report_block *b)
{
    for (size_t i = 0; i < b->num_pending; i++)
        apply_event(b->published, &b->pending[i]);
    b->num_pending = 0;
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    struct report_block *b = arg;
    if (b->num_pending == 0)
        return;
    if (pthread_mutex_trylock(&b->lock) == 0) {
        flush_locked(b);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    struct timeval retry = {0, REPORT_FLUSH_RETRY_MS * 1000};
    evtimer_add(b->flush_timer, &retry);
}

/* block_record counts |ev| without waiting: under the lock if it is free,
 * else in the queue. Only a full queue waits, for a reader's pointer swap. */
static void block_record(struct report_block *b, const struct report_event *ev)
{
    if (b->num_pending == REPORT_PENDING_MAX) {
        pthread_mutex_lock(&b->lock);
    } else if (pthread_mutex_trylock(&b->lock) != 0) {
        b->pending[b->num_pending++] = *ev;
        struct timeval retry = {0, REPORT_FLUSH_RETRY_MS * 1000};
        if (b->flush_timer != NULL && !evtimer_pending(b->flush_timer, NULL))
            evtimer_add(b->flush_timer, &retry);
        return;
    }
    flush_locked(b);
    apply_event(b->published, ev);
    pthread_mutex_unlock(&b->lock);
}

static void event_key(struct report_event *ev, const struct cfg_listener *cfg)
{
    snprintf(ev->listener, sizeof(ev->listener), "%s", cfg->name);
    ev->policy = cfg->policy;
    ev->min_version = cfg->min_version;
    ev->max_version = cfg->max_version;
}

void report_block_success(struct report_block *b, const struct cfg_listener *cfg)
{
    struct report_event ev;

    if (b == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    event_key(&ev, cfg);
    block_record(b, &ev);
}

/* event_failure fills in the failure fields of |ev|. */
static void event_failure(struct report_event *ev, enum end_reason reason, uint8_t alert,
                          const struct sockaddr *client, const struct clienthello_summary *hello)
{
    char version[8];

    ev->failed = true;
    reason_name(reason, alert, ev->result_type, sizeof(ev->result_type));
    report_network_of(client, ev->network);
    if (hello != NULL) {
        char ja4[CLIENTHELLO_JA4_LEN + 1];
        clienthello_ja4(hello, ja4);
        snprintf(ev->ja4, sizeof(ev->ja4), "%s", ja4);
        snprintf(ev->version, sizeof(ev->version), "%s",
                 report_version_name(hello->max_version, version));
    }
}

void report_block_failure(struct report_block *b, const struct cfg_listener *cfg,
                          enum end_reason reason, uint8_t alert, const struct sockaddr *client,
                          const struct clienthello_summary *hello)
{
    struct report_event ev;

    if (b == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    event_key(&ev, cfg);
    event_failure(&ev, reason, alert, client, hello);
    block_record(b, &ev);
}

void report_block_candidate(struct report_block *b, const struct cfg_listener *cfg,
                            bool would_fail, enum end_reason reason,
                            const struct sockaddr *client,
                            const struct clienthello_summary *hello)
{
    struct report_event ev;

    if (b == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    snprintf(ev.listener, sizeof(ev.listener), "%s", cfg->name);
    ev.policy = cfg->report_only.policy;
    ev.min_version = cfg->report_only.min_version;
    ev.max_version = cfg->report_only.max_version;
    ev.report_only = true;
    if (would_fail)
        event_failure(&ev, reason, 0, client, hello);
    block_record(b, &ev);
}

struct report_block *report_block_new(struct report *report, struct event_base *base)
{
    struct report_block *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->report = report;
    b->published = report_data_new();
    b->flush_timer = evtimer_new(base, on_flush_timer, b);
    if (b->published == NULL || b->flush_timer == NULL) {
        report_data_free(b->published);
        if (b->flush_timer != NULL)
            event_free(b->flush_timer);
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_lock(&report->lock);
    b->next = report->blocks;
    if (report->blocks != NULL)
        report->blocks->prev = b;
    report->blocks = b;
    pthread_mutex_unlock(&report->lock);
    return b;
}

void report_block_free(struct report_block *b)
{
    if (b == NULL)
        return;
    struct report *report = b->report;
    pthread_mutex_lock(&report->lock);
    pthread_mutex_lock(&b->lock);
    flush_locked(b);
    (void)report_data_merge(report->window, b->published);
    pthread_mutex_unlock(&b->lock);
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        report->blocks = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    pthread_mutex_unlock(&report->lock);
    event_free(b->flush_timer);
    report_data_free(b->published);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* take_all moves what every block counted into the window; the caller
 * holds the report's lock. Each block's lock is held for a pointer swap. */
static int take_all(struct report *report)
{
    for (struct report_block *b = report->blocks; b != NULL; b = b->next) {
        struct report_data *fresh = report_data_new();
        if (fresh == NULL)
            return -1;
        pthread_mutex_lock(&b->lock);
        struct report_data *taken = b->published;
        b->published = fresh;
        pthread_mutex_unlock(&b->lock);
        int merged = report_data_merge(report->window, taken);
        report_data_free(taken);
        if (merged != 0)
            return -1;
    }
    return 0;
}

/* render_locked writes the window so far, ending at |end|; the caller holds
 * the report's lock. */
static int render_locked(struct report *report, time_t end, struct evbuffer *out)
{
    char start_text[32], report_id[160];
    struct tm tm;

    gmtime_r(&report->window_start, &tm);
    strftime(start_text, sizeof(start_text), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(report_id, sizeof(report_id), "%s-%s-%ld-%" PRIu64, start_text, report->cfg.instance,
             (long)getpid(), report->num_windows);
    const struct report_meta meta = {
        .organization = report->cfg.organization ? report->cfg.organization : "tlsterm",
        .report_id = report_id,
        .start = report->window_start,
        .end = end,
    };
    if (take_all(report) != 0)
        return -1;
    return report_write_json(report->window, &meta, out);
}

int report_render(struct report *report, struct evbuffer *out)
{
    pthread_mutex_lock(&report->lock);
    int result = render_locked(report, time(NULL), out);
    pthread_mutex_unlock(&report->lock);
    return result;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The UTC time in a report file's name: 20261126T160000Z. */
#define REPORT_NAME_TIME_LEN 16

static bool is_name_time(const char *s)
{
    for (size_t i = 0; i < REPORT_NAME_TIME_LEN; i++) {
        bool ok = i == 8 ? s[i] == 'T' : i == 15 ? s[i] == 'Z' : s[i] >= '0' && s[i] <= '9';
        if (!ok)
            return false;
    }
    return true;
}

/* is_own_report_file says whether |name| is a report file of |instance|:
 * exactly tlsterm-report-START-END-INSTANCE.json. Matching the whole name
 * keeps instance "edge" off the files of "edge-1" or "x-edge" in a shared
 * directory. */
static bool is_own_report_file(const char *name, const char *instance)
{
    size_t prefix = strlen(REPORT_FILE_PREFIX), instance_len = strlen(instance);
    const char *start = name + prefix, *end = start + REPORT_NAME_TIME_LEN + 1;
    const char *own = end + REPORT_NAME_TIME_LEN + 1;

    return strlen(name) == prefix + 2 * (REPORT_NAME_TIME_LEN + 1) + instance_len +
                               strlen(REPORT_FILE_SUFFIX) &&
           strncmp(name, REPORT_FILE_PREFIX, prefix) == 0 && is_name_time(start) &&
           start[REPORT_NAME_TIME_LEN] == '-' && is_name_time(end) &&
           end[REPORT_NAME_TIME_LEN] == '-' && strncmp(own, instance, instance_len) == 0 &&
           strcmp(own + instance_len, REPORT_FILE_SUFFIX) == 0;
}

/* prune deletes the oldest report files of |instance| in |dir| beyond
 * |keep|; other instances' files in a shared directory are theirs to prune.
 * Names hold the window's times, so name order is age order. */
static void prune(const char *dir, const char *instance, uint32_t keep)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t num = 0, cap = 0;
    struct dirent *entry;

    if (d == NULL)
        return;
    while ((entry = readdir(d)) != NULL) {
        if (!is_own_report_file(entry->d_name, instance))
            continue;
        if (num == cap) {
            size_t new_cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, new_cap * sizeof(*grown));
            if (grown == NULL)
                break;
            names = grown;
            cap = new_cap;
        }
        if ((names[num] = strdup(entry->d_name)) == NULL)
            break;
        num++;
    }
    closedir(d);
    if (num > 0)
        qsort(names, num, sizeof(*names), compare_names);
    for (size_t i = 0; i + keep < num; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            log_msg(LOG_WARN, "report_prune_failed", "cannot delete %s: %s", path,
                    strerror(errno));
    }
    for (size_t i = 0; i < num; i++)
        free(names[i]);
    free(names);
}

/* file_path writes DIR/tlsterm-report-START-END-INSTANCE.json, the name of
 * |instance|'s window from |start| to |end|, to |out_path|. */
static void file_path(const char *dir, const char *instance, time_t start, time_t end,
                      char *out_path, size_t out_path_len)
{
    char start_text[32], end_text[32];
    struct tm tm;

    gmtime_r(&start, &tm);
    strftime(start_text, sizeof(start_text), "%Y%m%dT%H%M%SZ", &tm);
    gmtime_r(&end, &tm);
    strftime(end_text, sizeof(end_text), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out_path, out_path_len, "%s/" REPORT_FILE_PREFIX "%s-%s-%s" REPORT_FILE_SUFFIX, dir,
             start_text, end_text, instance);
}

/* log_write_failed logs report_write_failed for |path| (NULL: no file was
 * due) with |problem|. */
static void log_write_failed(const char *path, const char *problem)
{
    struct log_line line;

    log_begin(&line, LOG_ERROR, "report_write_failed");
    if (path != NULL)
        log_str(&line, "file", path);
    log_str(&line, "error", problem);
    log_end(&line);
}

/* write_file writes |report_json| to |path| (in |dir|) atomically: a
 * temporary file in the same directory, fsync, rename, and an fsync of the
 * directory. It returns 0 or -1 after logging why. */
static int write_file(const char *dir, const char *path, struct evbuffer *report_json)
{
    char tmp_path[4096];
    int fd;

    snprintf(tmp_path, sizeof(tmp_path), "%s/.tlsterm-report-XXXXXX", dir);
    fd = mkostemp(tmp_path, O_CLOEXEC);
    if (fd < 0)
        goto fail;
    while (evbuffer_get_length(report_json) > 0)
        if (evbuffer_write(report_json, fd) < 0 && errno != EINTR)
            goto fail_unlink;
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
        goto fail_unlink;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_unlink;
    }
    fd = -1;
    if (rename(tmp_path, path) != 0)
        goto fail_unlink;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        (void)fsync(dir_fd);
        close(dir_fd);
    }
    return 0;
fail_unlink : {
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp_path);
    errno = saved;
}
fail:
    log_write_failed(path, strerror(errno));
    return -1;
}

/* end_window renders the window ending now, writes it when a directory is
 * configured, and starts the next one from zero. */
static void end_window(struct report *report)
{
    struct evbuffer *json = evbuffer_new();
    char path[4096];

    pthread_mutex_lock(&report->lock);
    time_t end = time(NULL);
    bool rendered = json != NULL && render_locked(report, end, json) == 0;
    time_t start = report->window_start;
    struct report_data *fresh = report_data_new();
    if (fresh != NULL) {
        report_data_free(report->window);
        report->window = fresh;
    }
    report->window_start = end;
    report->num_windows++;
    char *dir = report->cfg.dir ? strdup(report->cfg.dir) : NULL;
    char instance[CFG_INSTANCE_MAX + 1];
    snprintf(instance, sizeof(instance), "%s", report->cfg.instance);
    uint32_t keep = report->cfg.keep;
    pthread_mutex_unlock(&report->lock);

    if (dir != NULL)
        file_path(dir, instance, start, end, path, sizeof(path));
    if (!rendered)
        log_write_failed(dir != NULL ? path : NULL, "out of memory for the report");
    else if (dir != NULL && write_file(dir, path, json) == 0) {
        prune(dir, instance, keep);
        struct log_line line;
        log_begin(&line, LOG_INFO, "report_written");
        log_str(&line, "file", path);
        log_end(&line);
    }
    free(dir);
    if (json != NULL)
        evbuffer_free(json);
}

static void on_window_end(evutil_socket_t fd, short what, void *arg) { end_window(arg); }

/* arm_timer (re)arms the window timer when the interval changed. */
static int arm_timer(struct report *report)
{
    uint32_t ms = report->cfg.interval_ms;
    if (report->timer == NULL || ms == report->timer_interval_ms)
        return 0;
    struct timeval every = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_del(report->timer);
    if (event_add(report->timer, &every) != 0)
        return -1;
    report->timer_interval_ms = ms;
    return 0;
}

static void cleanup_cfg(struct cfg_report *cfg)
{
    free(cfg->dir);
    free(cfg->organization);
    free(cfg->instance);
}

/* copy_cfg copies |from| with its strings; an instance missing (out of
 * memory at load) becomes "localhost". */
static int copy_cfg(struct cfg_report *to, const struct cfg_report *from)
{
    *to = *from;
    to->dir = from->dir ? strdup(from->dir) : NULL;
    to->organization = from->organization ? strdup(from->organization) : NULL;
    to->instance = strdup(from->instance ? from->instance : "localhost");
    if ((from->dir && !to->dir) || (from->organization && !to->organization) ||
        to->instance == NULL) {
        cleanup_cfg(to);
        return -1;
    }
    return 0;
}

struct report *report_new(const struct cfg_report *cfg)
{
    struct report *report = calloc(1, sizeof(*report));

    if (report == NULL)
        return NULL;
    report->window = report_data_new();
    if (report->window == NULL || copy_cfg(&report->cfg, cfg) != 0) {
        report_data_free(report->window);
        free(report);
        return NULL;
    }
    pthread_mutex_init(&report->lock, NULL);
    report->window_start = time(NULL);
    return report;
}

int report_configure(struct report *report, const struct cfg_report *cfg)
{
    struct cfg_report copy;

    if (copy_cfg(&copy, cfg) != 0)
        return -1;
    pthread_mutex_lock(&report->lock);
    struct cfg_report old = report->cfg;
    report->cfg = copy;
    pthread_mutex_unlock(&report->lock);
    cleanup_cfg(&old);
    return arm_timer(report);
}

int report_start(struct report *report, struct event_base *base)
{
    report->base = base;
    report->timer = event_new(base, -1, EV_PERSIST, on_window_end, report);
    if (report->timer == NULL || arm_timer(report) != 0)
        return -1;
    report->started = true;
    return 0;
}

void report_stop(struct report *report)
{
    if (report == NULL || report->timer == NULL)
        return;
    event_free(report->timer);
    report->timer = NULL;
    report->timer_interval_ms = 0;
}

void report_finish(struct report *report)
{
    if (report != NULL && report->started && report->cfg.dir != NULL)
        end_window(report);
}

void report_free(struct report *report)
{
    if (report == NULL)
        return;
    report_stop(report);
    report_data_free(report->window);
    cleanup_cfg(&report->cfg);
    pthread_mutex_destroy(&report->lock);
    free(report);
}
