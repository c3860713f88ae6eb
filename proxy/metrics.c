/* metrics: registry, blocks and the Prometheus text. See metrics.h.
 *
 * One lock guards the registry: listener names, live blocks, retired totals,
 * certificates. Workers never take it on their hot path, only when they ask
 * for a listener's counters at setup or reload. The scrape holds it while it
 * sums and writes, so that a block cannot be freed, nor its counts moved to
 * the retired totals, halfway through a sum: each count is seen exactly
 * once. */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/base.h>

#include "log.h"

/* Counters of two workers must not share a cache line, or every increment
 * would bounce the line between their cores. */
#define CACHE_LINE 64

/* struct histogram_totals and struct listener_totals mirror the counters
 * of metrics.h as plain numbers: sums over blocks, and retired counts. */
struct histogram_totals {
    uint64_t buckets[METRICS_DURATION_BUCKETS + 1];
    uint64_t sum_us;
};

struct listener_totals {
    uint64_t accepted;
    uint64_t closed[END_REASON_COUNT];
    uint64_t client_alerts[256];
    uint64_t would_fail[END_REASON_COUNT];
    uint64_t handshakes[METRICS_TLS_VERSION_COUNT][METRICS_CIPHER_COUNT][METRICS_GROUP_COUNT]
                       [2];
    struct histogram_totals handshake_duration;
    uint64_t early_data_accepted;
    uint64_t backend_connect_failures[METRICS_CONNECT_FAILURE_COUNT];
    struct histogram_totals backend_connect_duration;
    uint64_t bytes_client_to_backend;
    uint64_t bytes_backend_to_client;
    uint64_t proxy_header_rejected[METRICS_PROXY_REJECT_COUNT];
    uint64_t http_requests[METRICS_HTTP_PROTOCOL_COUNT][METRICS_HTTP_STATUS_CLASSES];
    struct histogram_totals http_request_duration;
    uint64_t http_errors[HTTP_REASON_COUNT];
    uint64_t backend_connections[2];
    uint64_t http2_abuse[H2_ABUSE_COUNT];
};

/* struct pool_total is one server's idle gauge summed over the blocks. */
struct pool_total {
    const struct net_addr *server; /* NULL: "other" */
    int64_t idle;
};

struct cert_entry {
    char *listener;
    char *subject;
    char *serial;
    int64_t not_after;
};

struct metrics_block {
    struct metrics *metrics;
    struct metrics_block *prev, *next; /* the live blocks, under the lock */
    /* By listener slot; NULL where this block never counted. Under the
     * lock; the writer uses only the pointers it was handed. */
    struct metrics_listener *listeners[METRICS_MAX_LISTENERS];
};

struct metrics {
    pthread_mutex_t lock;
    /* Slots in order of first registration; never removed. */
    char *names[METRICS_MAX_LISTENERS];
    /* By slot: the counts of freed blocks. Allocated with the name, so
     * that freeing a block cannot fail. */
    struct listener_totals *retired[METRICS_MAX_LISTENERS];
    size_t num_listeners;
    struct metrics_block *blocks;
    struct cert_entry *certs;
    size_t num_certs;
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    char instance[65]; /* the build_info label; "" until set */
};

/* ---- label tables ------------------------------------------------------------ */

static const char *const version_labels[METRICS_TLS_VERSION_COUNT] = {
    [METRICS_TLS_1_0] = "TLSv1.0", [METRICS_TLS_1_1] = "TLSv1.1", [METRICS_TLS_1_2] = "TLSv1.2",
    [METRICS_TLS_1_3] = "TLSv1.3", [METRICS_TLS_OTHER] = "other",
};

/* IANA numbers and names, the names being what the logs print
 * (SSL_CIPHER_standard_name). */
static const struct {
    uint16_t suite;
    const char *label;
} cipher_table[METRICS_CIPHER_COUNT] = {
    [METRICS_CIPHER_AES_128_GCM_SHA256] = {0x1301, "TLS_AES_128_GCM_SHA256"},
    [METRICS_CIPHER_AES_256_GCM_SHA384] = {0x1302, "TLS_AES_256_GCM_SHA384"},
    [METRICS_CIPHER_CHACHA20_POLY1305_SHA256] = {0x1303, "TLS_CHACHA20_POLY1305_SHA256"},
    [METRICS_CIPHER_ECDHE_ECDSA_AES_128_GCM_SHA256] =
        {0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    [METRICS_CIPHER_ECDHE_RSA_AES_128_GCM_SHA256] = {0xc02f,
                                                     "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    [METRICS_CIPHER_ECDHE_ECDSA_AES_256_GCM_SHA384] =
        {0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    [METRICS_CIPHER_ECDHE_RSA_AES_256_GCM_SHA384] = {0xc030,
                                                     "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    [METRICS_CIPHER_ECDHE_ECDSA_CHACHA20_POLY1305] =
        {0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    [METRICS_CIPHER_ECDHE_RSA_CHACHA20_POLY1305] =
        {0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    [METRICS_CIPHER_OTHER] = {0, "other"},
};

/* Names as SSL_get_curve_name spells them, as in the logs. */
static const struct {
    uint16_t group;
    const char *label;
} group_table[METRICS_GROUP_COUNT] = {
    [METRICS_GROUP_X25519] = {29, "X25519"}, [METRICS_GROUP_P256] = {23, "P-256"},
    [METRICS_GROUP_P384] = {24, "P-384"},    [METRICS_GROUP_OTHER] = {0, "other"},
    [METRICS_GROUP_NONE] = {0, "none"},
};

static const char *const connect_failure_labels[METRICS_CONNECT_FAILURE_COUNT] = {
    [METRICS_CONNECT_ERROR] = "error",
    [METRICS_CONNECT_TIMEOUT] = "timeout",
};

static const char *const proxy_reject_labels[METRICS_PROXY_REJECT_COUNT] = {
    [METRICS_PROXY_UNTRUSTED_SOURCE] = "untrusted_source",
    [METRICS_PROXY_MALFORMED] = "malformed",
    [METRICS_PROXY_TIMEOUT] = "timeout",
};

const char *metrics_proxy_reject_name(enum metrics_proxy_reject reject)
{
    return proxy_reject_labels[reject];
}

static const char *const http_protocol_labels[METRICS_HTTP_PROTOCOL_COUNT] = {
    [METRICS_HTTP_2] = "h2",
    [METRICS_HTTP_1_1] = "http/1.1",
};

static const char *const http_status_class_labels[METRICS_HTTP_STATUS_CLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx",
};

enum metrics_tls_version metrics_tls_version_of(uint16_t version)
{
    switch (version) {
    case 0x0301:
        return METRICS_TLS_1_0;
    case 0x0302:
        return METRICS_TLS_1_1;
    case 0x0303:
        return METRICS_TLS_1_2;
    case 0x0304:
        return METRICS_TLS_1_3;
    default:
        return METRICS_TLS_OTHER;
    }
}

enum metrics_cipher metrics_cipher_of(uint16_t suite)
{
    for (int i = 0; i < METRICS_CIPHER_OTHER; i++)
        if (cipher_table[i].suite == suite)
            return (enum metrics_cipher)i;
    return METRICS_CIPHER_OTHER;
}

enum metrics_group metrics_group_of(uint16_t group)
{
    if (group == 0)
        return METRICS_GROUP_NONE;
    for (int i = 0; i < METRICS_GROUP_OTHER; i++)
        if (group_table[i].group == group)
            return (enum metrics_group)i;
    return METRICS_GROUP_OTHER;
}

/* reason_label writes the label of |reason|: its token, with the alerts of
 * END_CLIENT_ALERT grouped as one "client_alert" (they have a metric of
 * their own). */
static const char *reason_label(enum end_reason reason, char *out, size_t out_len)
{
    if (reason == END_CLIENT_ALERT) {
        snprintf(out, out_len, "client_alert");
        return out;
    }
    return reason_name(reason, 0, out, out_len);
}

/* ---- registry and blocks --------------------------------------------------------- */

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    atomic_init(&m->reloads_ok, 0);
    atomic_init(&m->reloads_failed, 0);
    return m;
}

static void free_certs(struct cert_entry *certs, size_t num_certs)
{
    for (size_t i = 0; i < num_certs; i++) {
        free(certs[i].listener);
        free(certs[i].subject);
        free(certs[i].serial);
    }
    free(certs);
}

/* block_release frees |b| without adding up its counts; under the lock. */
static void block_release(struct metrics_block *b)
{
    struct metrics *m = b->metrics;

    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        m->blocks = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    for (size_t i = 0; i < m->num_listeners; i++)
        free(b->listeners[i]);
    free(b);
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    while (m->blocks != NULL)
        block_release(m->blocks);
    for (size_t i = 0; i < m->num_listeners; i++) {
        free(m->names[i]);
        free(m->retired[i]);
    }
    free_certs(m->certs, m->num_certs);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void metrics_set_instance(struct metrics *m, const char *instance)
{
    pthread_mutex_lock(&m->lock);
    snprintf(m->instance, sizeof(m->instance), "%s", instance);
    pthread_mutex_unlock(&m->lock);
}

struct metrics_block *metrics_block_new(struct metrics *m)
{
    struct metrics_block *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->metrics = m;
    pthread_mutex_lock(&m->lock);
    b->next = m->blocks;
    if (m->blocks != NULL)
        m->blocks->prev = b;
    m->blocks = b;
    pthread_mutex_unlock(&m->lock);
    return b;
}

static void add_histogram(struct histogram_totals *t, const struct metrics_histogram *h)
{
    for (int i = 0; i <= METRICS_DURATION_BUCKETS; i++)
        t->buckets[i] += atomic_load_explicit(&h->buckets[i].value, memory_order_relaxed);
    t->sum_us += atomic_load_explicit(&h->sum_us.value, memory_order_relaxed);
}

static uint64_t load(const struct metrics_counter *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}

/* add_listener adds the counters of |l|, which its writer may be changing,
 * to |t|. */
static void add_listener(struct listener_totals *t, const struct metrics_listener *l)
{
    /* The closes first, with acquire loads paired with metrics_conn_closed's
     * release stores: every close seen here has its accept seen below. */
    for (int r = 0; r < END_REASON_COUNT; r++)
        t->closed[r] += atomic_load_explicit(&l->closed[r].value, memory_order_acquire);
    t->accepted += load(&l->accepted);
    for (int a = 0; a < 256; a++)
        t->client_alerts[a] += load(&l->client_alerts[a]);
    for (int r = 0; r < END_REASON_COUNT; r++)
        t->would_fail[r] += load(&l->would_fail[r]);
    for (int v = 0; v < METRICS_TLS_VERSION_COUNT; v++)
        for (int c = 0; c < METRICS_CIPHER_COUNT; c++)
            for (int g = 0; g < METRICS_GROUP_COUNT; g++)
                for (int res = 0; res < 2; res++)
                    t->handshakes[v][c][g][res] += load(&l->handshakes[v][c][g][res]);
    add_histogram(&t->handshake_duration, &l->handshake_duration);
    t->early_data_accepted += load(&l->early_data_accepted);
    for (int f = 0; f < METRICS_CONNECT_FAILURE_COUNT; f++)
        t->backend_connect_failures[f] += load(&l->backend_connect_failures[f]);
    add_histogram(&t->backend_connect_duration, &l->backend_connect_duration);
    t->bytes_client_to_backend += load(&l->bytes_client_to_backend);
    t->bytes_backend_to_client += load(&l->bytes_backend_to_client);
    for (int p = 0; p < METRICS_PROXY_REJECT_COUNT; p++)
        t->proxy_header_rejected[p] += load(&l->proxy_header_rejected[p]);
    for (int p = 0; p < METRICS_HTTP_PROTOCOL_COUNT; p++)
        for (int k = 0; k < METRICS_HTTP_STATUS_CLASSES; k++)
            t->http_requests[p][k] += load(&l->http_requests[p][k]);
    add_histogram(&t->http_request_duration, &l->http_request_duration);
    for (int e = 0; e < HTTP_REASON_COUNT; e++)
        t->http_errors[e] += load(&l->http_errors[e]);
    for (int reused = 0; reused < 2; reused++)
        t->backend_connections[reused] += load(&l->backend_connections[reused]);
    for (int a = 0; a < H2_ABUSE_COUNT; a++)
        t->http2_abuse[a] += load(&l->http2_abuse[a]);
}

void metrics_block_free(struct metrics_block *b)
{
    if (b == NULL)
        return;
    struct metrics *m = b->metrics;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->num_listeners; i++)
        if (b->listeners[i] != NULL)
            add_listener(m->retired[i], b->listeners[i]);
    block_release(b);
    pthread_mutex_unlock(&m->lock);
}

/* find_slot returns the slot of |name|, registering it if new, or -1 when
 * out of memory or slots; under the lock. */
static int find_slot(struct metrics *m, const char *name, size_t *out_slot)
{
    for (size_t i = 0; i < m->num_listeners; i++) {
        if (strcmp(m->names[i], name) == 0) {
            *out_slot = i;
            return 0;
        }
    }
    if (m->num_listeners == METRICS_MAX_LISTENERS)
        return -1;
    char *copy = strdup(name);
    struct listener_totals *retired = calloc(1, sizeof(*retired));
    if (copy == NULL || retired == NULL) {
        free(copy);
        free(retired);
        return -1;
    }
    m->names[m->num_listeners] = copy;
    m->retired[m->num_listeners] = retired;
    *out_slot = m->num_listeners++;
    return 0;
}

/* listener_counters_new returns zeroed counters on cache lines of their
 * own, or NULL. All-zero bytes are a valid zero for a lock-free atomic
 * uint64_t, which is what memset relies on. */
static struct metrics_listener *listener_counters_new(void)
{
    size_t size = (sizeof(struct metrics_listener) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    struct metrics_listener *l = aligned_alloc(CACHE_LINE, size);
    if (l != NULL)
        memset(l, 0, size);
    return l;
}

struct metrics_listener *metrics_block_listener(struct metrics_block *b,
                                                const char *listener_name)
{
    struct metrics *m = b->metrics;
    struct metrics_listener *l = NULL;
    size_t slot;

    pthread_mutex_lock(&m->lock);
    if (find_slot(m, listener_name, &slot) != 0)
        goto done;
    if (b->listeners[slot] == NULL)
        b->listeners[slot] = listener_counters_new();
    l = b->listeners[slot];
done:
    pthread_mutex_unlock(&m->lock);
    return l;
}

void metrics_config_reloaded(struct metrics *m, bool ok)
{
    atomic_fetch_add_explicit(ok ? &m->reloads_ok : &m->reloads_failed, 1,
                              memory_order_relaxed);
}

int metrics_certs_set(struct metrics *m, const struct metrics_cert *certs, size_t num_certs)
{
    struct cert_entry *entries = calloc(num_certs > 0 ? num_certs : 1, sizeof(*entries));
    if (entries == NULL)
        return -1;
    for (size_t i = 0; i < num_certs; i++) {
        entries[i].listener = strdup(certs[i].listener);
        entries[i].subject = strdup(certs[i].subject);
        entries[i].serial = strdup(certs[i].serial);
        entries[i].not_after = certs[i].not_after;
        if (entries[i].listener == NULL || entries[i].subject == NULL ||
            entries[i].serial == NULL) {
            free_certs(entries, i + 1);
            return -1;
        }
    }
    pthread_mutex_lock(&m->lock);
    struct cert_entry *old = m->certs;
    size_t num_old = m->num_certs;
    m->certs = entries;
    m->num_certs = num_certs;
    pthread_mutex_unlock(&m->lock);
    free_certs(old, num_old);
    return 0;
}

/* ---- the text format ------------------------------------------------------------- */

/* struct render is one scrape being written. After the first failed append
 * nothing more is written. */
struct render {
    struct evbuffer *out;
    bool failed;
};

struct label {
    const char *key;
    const char *value;
};

static void put(struct render *r, const char *bytes, size_t len)
{
    if (!r->failed && evbuffer_add(r->out, bytes, len) != 0)
        r->failed = true;
}

static void put_str(struct render *r, const char *s) { put(r, s, strlen(s)); }

/* put_label_value writes |value| as the text format requires: backslash,
 * double quote and newline escaped, and valid UTF-8, so a byte that is not
 * part of a well-formed sequence becomes U+FFFD. */
static void put_label_value(struct render *r, const char *value)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *s = (const unsigned char *)value;
    size_t len = strlen(value);

    for (size_t i = 0; i < len;) {
        size_t n = log_utf8_sequence_len(s + i, len - i);
        if (n == 0) {
            put(r, replacement, 3);
            i++;
        } else if (s[i] == '\\') {
            put(r, "\\\\", 2);
            i++;
        } else if (s[i] == '"') {
            put(r, "\\\"", 2);
            i++;
        } else if (s[i] == '\n') {
            put(r, "\\n", 2);
            i++;
        } else {
            put(r, (const char *)s + i, n);
            i += n;
        }
    }
}

/* family writes the HELP and TYPE lines that start a metric family. */
static void family(struct render *r, const char *name, const char *type, const char *help)
{
    put_str(r, "# HELP ");
    put_str(r, name);
    put_str(r, " ");
    put_str(r, help);
    put_str(r, "\n# TYPE ");
    put_str(r, name);
    put_str(r, " ");
    put_str(r, type);
    put_str(r, "\n");
}

/* sample writes one line: |name| (with |suffix|, may be ""), its labels and
 * |value|, already formatted. */
static void sample(struct render *r, const char *name, const char *suffix,
                   const struct label *labels, size_t num_labels, const char *value)
{
    put_str(r, name);
    put_str(r, suffix);
    for (size_t i = 0; i < num_labels; i++) {
        put_str(r, i == 0 ? "{" : ",");
        put_str(r, labels[i].key);
        put_str(r, "=\"");
        put_label_value(r, labels[i].value);
        put_str(r, "\"");
    }
    put_str(r, num_labels > 0 ? "} " : " ");
    put_str(r, value);
    put_str(r, "\n");
}

static void sample_u64(struct render *r, const char *name, const struct label *labels,
                       size_t num_labels, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRIu64, value);
    sample(r, name, "", labels, num_labels, text);
}

/* seconds_text writes |us| microseconds as exact decimal seconds ("0.0025",
 * "10"), never through a double. */
static const char *seconds_text(uint64_t us, char *out, size_t out_len)
{
    uint64_t frac = us % 1000000;
    int len = snprintf(out, out_len, "%" PRIu64 ".%06" PRIu64, us / 1000000, frac);
    while (len > 0 && out[len - 1] == '0')
        len--;
    if (len > 0 && out[len - 1] == '.')
        len--;
    out[len] = '\0';
    return out;
}

static void histogram(struct render *r, const char *name, const char *listener,
                      const struct histogram_totals *h)
{
    char le[32], value[24];
    uint64_t cumulative = 0;
    struct label labels[] = {{"listener", listener}, {"le", le}};

    for (int i = 0; i <= METRICS_DURATION_BUCKETS; i++) {
        cumulative += h->buckets[i];
        if (i < METRICS_DURATION_BUCKETS)
            seconds_text(metrics_duration_bound_us((unsigned)i), le, sizeof(le));
        else
            snprintf(le, sizeof(le), "+Inf");
        snprintf(value, sizeof(value), "%" PRIu64, cumulative);
        sample(r, name, "_bucket", labels, 2, value);
    }
    sample(r, name, "_sum", labels, 1, seconds_text(h->sum_us, value, sizeof(value)));
    /* The count is the +Inf bucket by definition: taken from the same
     * snapshot, it always agrees with it. */
    snprintf(value, sizeof(value), "%" PRIu64, cumulative);
    sample(r, name, "_count", labels, 1, value);
}

/* render_listeners writes every per-listener family, for the
 * |num_listeners| |names| and their |totals|. */
static void render_listeners(struct render *r, char *const *names,
                             const struct listener_totals *totals, size_t num_listeners)
{
    static const char accepted[] = "tlsterm_connections_accepted_total";
    static const char active[] = "tlsterm_connections_active";
    static const char closed[] = "tlsterm_connections_closed_total";
    static const char failures[] = "tlsterm_handshake_failures_total";
    static const char alerts[] = "tlsterm_handshake_client_alerts_total";
    static const char handshakes[] = "tlsterm_handshakes_total";
    static const char handshake_duration[] = "tlsterm_handshake_duration_seconds";
    static const char early_data[] = "tlsterm_early_data_accepted_total";
    static const char would_fail[] = "tlsterm_policy_would_fail_total";
    static const char connect_failures[] = "tlsterm_backend_connect_failures_total";
    static const char connect_duration[] = "tlsterm_backend_connect_duration_seconds";
    static const char bytes[] = "tlsterm_forwarded_bytes_total";
    static const char proxy_rejected[] = "tlsterm_proxy_header_rejected_total";
    char reason[48], alert[8];
    size_t i;

    family(r, accepted, "counter", "Connections accepted.");
    for (i = 0; i < num_listeners; i++)
        sample_u64(r, accepted, &(struct label){"listener", names[i]}, 1, totals[i].accepted);

    family(r, active, "gauge", "Connections open now (accepted and not yet closed).");
    for (i = 0; i < num_listeners; i++) {
        uint64_t num_closed = 0;
        for (int e = 0; e < END_REASON_COUNT; e++)
            num_closed += totals[i].closed[e];
        sample_u64(r, active, &(struct label){"listener", names[i]}, 1,
                   totals[i].accepted - num_closed);
    }

    family(r, closed, "counter",
           "Connections closed, by end reason (handshake failures included).");
    for (i = 0; i < num_listeners; i++)
        for (int e = 0; e < END_REASON_COUNT; e++) {
            struct label labels[] = {
                {"listener", names[i]},
                {"reason", reason_label((enum end_reason)e, reason, sizeof(reason))}};
            sample_u64(r, closed, labels, 2, totals[i].closed[e]);
        }

    family(r, failures, "counter", "Handshakes that failed, by reason.");
    for (i = 0; i < num_listeners; i++)
        for (int e = 0; e < END_REASON_COUNT; e++) {
            if (!reason_is_handshake_failure((enum end_reason)e))
                continue;
            struct label labels[] = {
                {"listener", names[i]},
                {"reason", reason_label((enum end_reason)e, reason, sizeof(reason))}};
            sample_u64(r, failures, labels, 2, totals[i].closed[e]);
        }

    family(r, alerts, "counter",
           "Handshakes the client aborted with an alert, by alert (written once seen).");
    for (i = 0; i < num_listeners; i++)
        for (int a = 0; a < 256; a++) {
            if (totals[i].client_alerts[a] == 0)
                continue;
            const char *name = reason_alert_name((uint8_t)a);
            if (name == NULL) {
                snprintf(alert, sizeof(alert), "%d", a);
                name = alert;
            }
            struct label labels[] = {{"listener", names[i]}, {"alert", name}};
            sample_u64(r, alerts, labels, 2, totals[i].client_alerts[a]);
        }

    family(r, handshakes, "counter", "Handshakes completed (written once seen).");
    for (i = 0; i < num_listeners; i++)
        for (int v = 0; v < METRICS_TLS_VERSION_COUNT; v++)
            for (int c = 0; c < METRICS_CIPHER_COUNT; c++)
                for (int g = 0; g < METRICS_GROUP_COUNT; g++)
                    for (int res = 0; res < 2; res++) {
                        uint64_t n = totals[i].handshakes[v][c][g][res];
                        if (n == 0)
                            continue;
                        struct label labels[] = {{"listener", names[i]},
                                                 {"version", version_labels[v]},
                                                 {"cipher", cipher_table[c].label},
                                                 {"group", group_table[g].label},
                                                 {"resumed", res ? "true" : "false"}};
                        sample_u64(r, handshakes, labels, 5, n);
                    }

    family(r, handshake_duration, "histogram",
           "Time from accept to the end of a completed handshake.");
    for (i = 0; i < num_listeners; i++)
        histogram(r, handshake_duration, names[i], &totals[i].handshake_duration);

    family(r, early_data, "counter", "Handshakes that accepted TLS 1.3 early data.");
    for (i = 0; i < num_listeners; i++)
        sample_u64(r, early_data, &(struct label){"listener", names[i]}, 1,
                   totals[i].early_data_accepted);

    family(r, would_fail, "counter",
           "ClientHellos the report-only policy would fail, by reason (written once seen).");
    for (i = 0; i < num_listeners; i++)
        for (int e = 0; e < END_REASON_COUNT; e++) {
            if (totals[i].would_fail[e] == 0)
                continue;
            struct label labels[] = {
                {"listener", names[i]},
                {"reason", reason_label((enum end_reason)e, reason, sizeof(reason))}};
            sample_u64(r, would_fail, labels, 2, totals[i].would_fail[e]);
        }

    family(r, proxy_rejected, "counter",
           "Connections refused for their PROXY protocol header (accept_proxy), by reason "
           "(written once seen).");
    for (i = 0; i < num_listeners; i++)
        for (int p = 0; p < METRICS_PROXY_REJECT_COUNT; p++) {
            if (totals[i].proxy_header_rejected[p] == 0)
                continue;
            struct label labels[] = {{"listener", names[i]}, {"reason", proxy_reject_labels[p]}};
            sample_u64(r, proxy_rejected, labels, 2, totals[i].proxy_header_rejected[p]);
        }

    family(r, connect_failures, "counter", "Backend connects that failed, by cause.");
    for (i = 0; i < num_listeners; i++)
        for (int f = 0; f < METRICS_CONNECT_FAILURE_COUNT; f++) {
            struct label labels[] = {{"listener", names[i]},
                                     {"cause", connect_failure_labels[f]}};
            sample_u64(r, connect_failures, labels, 2, totals[i].backend_connect_failures[f]);
        }

    family(r, connect_duration, "histogram", "Time taken by backend connects that succeeded.");
    for (i = 0; i < num_listeners; i++)
        histogram(r, connect_duration, names[i], &totals[i].backend_connect_duration);

    family(r, bytes, "counter", "Plaintext bytes forwarded, by direction.");
    for (i = 0; i < num_listeners; i++) {
        struct label up[] = {{"listener", names[i]}, {"direction", "client_to_backend"}};
        struct label down[] = {{"listener", names[i]}, {"direction", "backend_to_client"}};
        sample_u64(r, bytes, up, 2, totals[i].bytes_client_to_backend);
        sample_u64(r, bytes, down, 2, totals[i].bytes_backend_to_client);
    }
}

/* serves_http returns true once |t|'s listener has finished an HTTP
 * request, given one a backend connection or met an HTTP/2 attack. The HTTP families leave out
 * the listeners that never did (tcp mode) rather than list zeros for them;
 * once in, a listener stays in, its label sets written in full. */
static bool serves_http(const struct listener_totals *t)
{
    uint64_t n = t->backend_connections[0] + t->backend_connections[1];
    for (int i = 0; i <= METRICS_DURATION_BUCKETS; i++)
        n += t->http_request_duration.buckets[i];
    for (int a = 0; a < H2_ABUSE_COUNT; a++)
        n += t->http2_abuse[a];
    return n > 0;
}

/* render_http writes HTTP mode's per-listener counter families, for the
 * |num_listeners| |names| and their |totals|. */
static void render_http(struct render *r, char *const *names,
                        const struct listener_totals *totals, size_t num_listeners)
{
    static const char requests[] = "tlsterm_http_requests_total";
    static const char duration[] = "tlsterm_http_request_duration_seconds";
    static const char errors[] = "tlsterm_http_errors_total";
    static const char backend_conns[] = "tlsterm_backend_connections_total";
    static const char abuse[] = "tlsterm_http2_abuse_total";
    size_t i;

    family(r, requests, "counter",
           "HTTP requests answered, by client protocol and status class of the final "
           "response.");
    for (i = 0; i < num_listeners; i++) {
        if (!serves_http(&totals[i]))
            continue;
        for (int p = 0; p < METRICS_HTTP_PROTOCOL_COUNT; p++)
            for (int k = 0; k < METRICS_HTTP_STATUS_CLASSES; k++) {
                struct label labels[] = {{"listener", names[i]},
                                         {"protocol", http_protocol_labels[p]},
                                         {"code", http_status_class_labels[k]}};
                sample_u64(r, requests, labels, 3, totals[i].http_requests[p][k]);
            }
    }

    family(r, duration, "histogram",
           "Time from the start of an HTTP request to its end, answered or not.");
    for (i = 0; i < num_listeners; i++)
        if (serves_http(&totals[i]))
            histogram(r, duration, names[i], &totals[i].http_request_duration);

    family(r, errors, "counter",
           "HTTP requests tlsterm answered itself or cut short, by reason.");
    for (i = 0; i < num_listeners; i++) {
        if (!serves_http(&totals[i]))
            continue;
        for (int e = HTTP_REASON_NONE + 1; e < HTTP_REASON_COUNT; e++) {
            struct label labels[] = {{"listener", names[i]},
                                     {"reason", http_reason_name((enum http_reason)e)}};
            sample_u64(r, errors, labels, 2, totals[i].http_errors[e]);
        }
    }

    family(r, backend_conns, "counter",
           "Backend connections given to HTTP requests: from the pool (reused) or new.");
    for (i = 0; i < num_listeners; i++) {
        if (!serves_http(&totals[i]))
            continue;
        for (int reused = 0; reused < 2; reused++) {
            struct label labels[] = {{"listener", names[i]},
                                     {"reused", reused ? "true" : "false"}};
            sample_u64(r, backend_conns, labels, 2, totals[i].backend_connections[reused]);
        }
    }

    family(r, abuse, "counter",
           "HTTP/2 connections (or streams) an attack limit ended, by cause.");
    for (i = 0; i < num_listeners; i++) {
        if (!serves_http(&totals[i]))
            continue;
        for (int a = 0; a < H2_ABUSE_COUNT; a++) {
            struct label labels[] = {{"listener", names[i]},
                                     {"cause", h2_abuse_cause_name((enum h2_abuse_cause)a)}};
            sample_u64(r, abuse, labels, 2, totals[i].http2_abuse[a]);
        }
    }
}

static void sample_i64(struct render *r, const char *name, const struct label *labels,
                       size_t num_labels, int64_t value)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, value);
    sample(r, name, "", labels, num_labels, text);
}

/* render_pool_idle writes the idle gauge of every listener and backend
 * server, summed over the live blocks; under the lock. A freed block is
 * left out: its worker's pool is gone, and so are its idle connections.
 * |pool| has room for METRICS_POOL_SERVERS entries per live block. */
static void render_pool_idle(struct render *r, const struct metrics *m, struct pool_total *pool)
{
    static const char idle[] = "tlsterm_backend_pool_idle";
    char server[NET_ADDR_TEXT_MAX];

    family(r, idle, "gauge", "Idle pooled backend connections, by backend server.");
    for (size_t i = 0; i < m->num_listeners; i++) {
        size_t num_pool = 0;
        bool overflowed = false;
        int64_t other = 0;

        for (const struct metrics_block *b = m->blocks; b != NULL; b = b->next) {
            const struct metrics_listener *l = b->listeners[i];
            if (l == NULL)
                continue;
            /* Acquire, paired with the writer's release: the servers of
             * the entries below |n| are written in full. */
            uint32_t n = atomic_load_explicit(&l->num_pool_servers, memory_order_acquire);
            for (uint32_t j = 0; j < n; j++) {
                const struct metrics_pool_gauge *gauge = &l->pool_idle[j];
                size_t k = 0;
                while (k < num_pool && !net_addr_equal(pool[k].server, &gauge->server))
                    k++;
                if (k == num_pool)
                    pool[num_pool++] = (struct pool_total){.server = &gauge->server};
                pool[k].idle += atomic_load_explicit(&gauge->idle, memory_order_relaxed);
            }
            if (n == METRICS_POOL_SERVERS) {
                overflowed = true;
                other += atomic_load_explicit(&l->pool_idle_other, memory_order_relaxed);
            }
        }
        for (size_t k = 0; k < num_pool; k++) {
            struct label labels[] = {
                {"listener", m->names[i]},
                {"server", net_addr_format(pool[k].server, server, sizeof(server))}};
            sample_i64(r, idle, labels, 2, pool[k].idle);
        }
        if (overflowed) {
            struct label labels[] = {{"listener", m->names[i]}, {"server", "other"}};
            sample_i64(r, idle, labels, 2, other);
        }
    }
}

/* render_process writes the families of the process as a whole; under the
 * lock, for the certificates. */
static void render_process(struct render *r, const struct metrics *m)
{
    static const char reloads[] = "tlsterm_config_reloads_total";
    static const char not_after[] = "tlsterm_certificate_not_after_timestamp_seconds";
    static const char build_info[] = "tlsterm_build_info";
    char value[24], boringssl[64];

    /* BoringSSL has no version number of its own: the Debian package's
     * version names the build, and the API version stands in without it. */
    if (strcmp(BORINGSSL_PKG_VERSION, "unknown") != 0)
        snprintf(boringssl, sizeof(boringssl), "%s", BORINGSSL_PKG_VERSION);
    else
        snprintf(boringssl, sizeof(boringssl), "API %d", BORINGSSL_API_VERSION);
    family(r, build_info, "gauge",
           "Always 1: the tlsterm version, the instance and the BoringSSL build.");
    struct label build_labels[] = {
        {"version", TLSTERM_VERSION}, {"instance", m->instance}, {"boringssl", boringssl}};
    sample(r, build_info, "", build_labels, 3, "1");

    family(r, reloads, "counter", "Configuration reloads, by result.");
    sample_u64(r, reloads, &(struct label){"result", "ok"}, 1,
               atomic_load_explicit(&m->reloads_ok, memory_order_relaxed));
    sample_u64(r, reloads, &(struct label){"result", "failed"}, 1,
               atomic_load_explicit(&m->reloads_failed, memory_order_relaxed));

    family(r, not_after, "gauge", "Expiry of each certificate served, in unix time.");
    for (size_t i = 0; i < m->num_certs; i++) {
        const struct cert_entry *cert = &m->certs[i];
        struct label labels[] = {
            {"listener", cert->listener}, {"subject", cert->subject}, {"serial", cert->serial}};
        snprintf(value, sizeof(value), "%" PRId64, cert->not_after);
        sample(r, not_after, "", labels, 3, value);
    }
}

int metrics_render(struct metrics *m, struct evbuffer *out)
{
    struct render r = {.out = out};

    pthread_mutex_lock(&m->lock);
    size_t num_listeners = m->num_listeners;
    size_t num_blocks = 0;
    for (const struct metrics_block *b = m->blocks; b != NULL; b = b->next)
        num_blocks++;
    struct listener_totals *totals =
        calloc(num_listeners > 0 ? num_listeners : 1, sizeof(*totals));
    struct pool_total *pool =
        calloc(num_blocks > 0 ? num_blocks * METRICS_POOL_SERVERS : 1, sizeof(*pool));
    if (totals == NULL || pool == NULL) {
        pthread_mutex_unlock(&m->lock);
        free(totals);
        free(pool);
        return -1;
    }
    for (size_t i = 0; i < num_listeners; i++) {
        totals[i] = *m->retired[i];
        for (const struct metrics_block *b = m->blocks; b != NULL; b = b->next)
            if (b->listeners[i] != NULL)
                add_listener(&totals[i], b->listeners[i]);
    }
    render_listeners(&r, m->names, totals, num_listeners);
    render_http(&r, m->names, totals, num_listeners);
    render_pool_idle(&r, m, pool);
    render_process(&r, m);
    pthread_mutex_unlock(&m->lock);
    free(totals);
    free(pool);
    return r.failed ? -1 : 0;
}
