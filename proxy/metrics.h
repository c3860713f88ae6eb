/* metrics: the counters behind /metrics, free on the hot path.
 *
 * Each writer thread (a worker) owns a struct metrics_block and is the only
 * thread that ever writes its counters; a scrape sums every block. Counters
 * are relaxed atomics, incremented with a load and a store rather than a
 * read-modify-write: with one writer no increment is lost, on x86-64 and
 * arm64 the increment compiles to the same load/add/store as a plain
 * uint64_t (no lock prefix, no barrier), and the scraping thread's concurrent
 * reads are defined behaviour and never torn. A plain uint64_t would be a
 * data race in C11 (and torn on 32-bit targets). Each block's counters sit on
 * cache lines of their own, so workers never share a line.
 *
 * Listeners are counted by name, not by index: a name keeps its counters for
 * the life of the process, across reloads, so every counter only grows
 * (Prometheus's rate() reads a decrease as a restart). A listener a reload
 * removes keeps its last values in the output; a new one starts at zero. A
 * block that is freed (its worker ended) adds its counts to a retired total,
 * so nothing counted is ever lost either.
 *
 * Label values are bounded: listener names from the configuration, and
 * fixed tables for TLS versions, cipher suites, groups, end reasons, the
 * 256 alert numbers, HTTP reasons and HTTP/2 abuse causes; backend server addresses come from
 * the configuration too, at most METRICS_POOL_SERVERS per listener. Never a
 * client address or an SNI. */
#ifndef TLSTERM_METRICS_H
#define TLSTERM_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include <time.h>

#include "h2_limits.h"
#include "http.h"
#include "net.h"
#include "reason.h"

struct evbuffer;

/* The increment must be a plain load and store for the hot path to cost
 * nothing; a platform without lock-free 64-bit atomics would take a lock. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

/* METRICS_MAX_LISTENERS is how many distinct listener names a process can
 * count, over all its reloads. It bounds the output should a configuration
 * generator rename listeners on every reload. */
#define METRICS_MAX_LISTENERS 1024

/* enum metrics_tls_version is the negotiated protocol version. */
enum metrics_tls_version {
    METRICS_TLS_1_0,
    METRICS_TLS_1_1,
    METRICS_TLS_1_2,
    METRICS_TLS_1_3,
    METRICS_TLS_OTHER,
    METRICS_TLS_VERSION_COUNT
};

/* enum metrics_cipher is the negotiated suite: the ones tlsterm's policies
 * can negotiate (three TLS 1.3, six ECDHE AEAD TLS 1.2), and "other" for the
 * suites that only allow_legacy permits. */
enum metrics_cipher {
    METRICS_CIPHER_AES_128_GCM_SHA256,
    METRICS_CIPHER_AES_256_GCM_SHA384,
    METRICS_CIPHER_CHACHA20_POLY1305_SHA256,
    METRICS_CIPHER_ECDHE_ECDSA_AES_128_GCM_SHA256,
    METRICS_CIPHER_ECDHE_RSA_AES_128_GCM_SHA256,
    METRICS_CIPHER_ECDHE_ECDSA_AES_256_GCM_SHA384,
    METRICS_CIPHER_ECDHE_RSA_AES_256_GCM_SHA384,
    METRICS_CIPHER_ECDHE_ECDSA_CHACHA20_POLY1305,
    METRICS_CIPHER_ECDHE_RSA_CHACHA20_POLY1305,
    METRICS_CIPHER_OTHER,
    METRICS_CIPHER_COUNT
};

/* enum metrics_group is the key exchange group; "none" when there was no key
 * exchange (a resumed TLS 1.2 session). */
enum metrics_group {
    METRICS_GROUP_X25519,
    METRICS_GROUP_P256,
    METRICS_GROUP_P384,
    METRICS_GROUP_OTHER,
    METRICS_GROUP_NONE,
    METRICS_GROUP_COUNT
};

/* enum metrics_connect_failure is why a backend connect failed. */
enum metrics_connect_failure {
    METRICS_CONNECT_ERROR,   /* refused, unreachable, or another socket error */
    METRICS_CONNECT_TIMEOUT, /* no answer within the connect timeout */
    METRICS_CONNECT_FAILURE_COUNT
};

/* enum metrics_proxy_reject is why a connection was refused before its
 * handshake for its PROXY protocol header (listeners[].accept_proxy). */
enum metrics_proxy_reject {
    METRICS_PROXY_UNTRUSTED_SOURCE, /* not from accept_proxy.from */
    METRICS_PROXY_MALFORMED,        /* no header, or a broken one */
    METRICS_PROXY_TIMEOUT,          /* no whole header within accept_proxy.timeout */
    METRICS_PROXY_REJECT_COUNT
};

/* metrics_proxy_reject_name returns the label of |reject| ("untrusted_source",
 * "malformed", "timeout"), also the reason of the proxy_header_rejected line. */
const char *metrics_proxy_reject_name(enum metrics_proxy_reject reject);

/* enum metrics_http_protocol is the protocol a request came over. */
enum metrics_http_protocol {
    METRICS_HTTP_2,   /* "h2" */
    METRICS_HTTP_1_1, /* "http/1.1" */
    METRICS_HTTP_PROTOCOL_COUNT
};

/* METRICS_HTTP_STATUS_CLASSES is the number of status classes counted:
 * 1xx to 5xx. */
#define METRICS_HTTP_STATUS_CLASSES 5

/* METRICS_POOL_SERVERS is how many backend server addresses one listener's
 * counters in one block keep an idle gauge for, over the life of the
 * process (an address is never dropped, so a scrape can read the table
 * without a lock); further addresses share the gauge of server "other". */
#define METRICS_POOL_SERVERS 64

/* METRICS_DURATION_BUCKETS is the number of finite histogram buckets, whose
 * upper bounds are 0.5ms, 1ms, 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms,
 * 500ms, 1s, 2.5s, 5s and 10s (see metrics_duration_bucket). */
#define METRICS_DURATION_BUCKETS 14

/* struct metrics_counter is one counter. It is a struct so that `c++`, which
 * on an _Atomic would be a locked read-modify-write, does not compile: the
 * helpers below are the only writers. */
struct metrics_counter {
    _Atomic uint64_t value;
};

/* struct metrics_histogram counts durations in fixed buckets. */
struct metrics_histogram {
    /* Not cumulative: one increment per observation; the scrape adds them
     * up. The last bucket is above every bound (+Inf). */
    struct metrics_counter buckets[METRICS_DURATION_BUCKETS + 1];
    struct metrics_counter sum_us;
};

/* struct metrics_pool_gauge is the number of idle pooled connections to
 * one backend server. */
struct metrics_pool_gauge {
    struct net_addr server; /* written once, before the entry is published */
    _Atomic int64_t idle;
};

/* struct metrics_listener is one block's counters for one listener. The
 * fields are public only for the inline helpers below and for
 * http_metrics.c; callers use the helpers. */
struct metrics_listener {
    struct metrics_counter accepted;
    struct metrics_counter closed[END_REASON_COUNT];
    struct metrics_counter client_alerts[256]; /* END_CLIENT_ALERT, by alert */
    struct metrics_counter would_fail[END_REASON_COUNT];
    struct metrics_counter handshakes[METRICS_TLS_VERSION_COUNT][METRICS_CIPHER_COUNT]
                                     [METRICS_GROUP_COUNT][2 /* resumed */];
    struct metrics_histogram handshake_duration;
    struct metrics_counter early_data_accepted;
    struct metrics_counter backend_connect_failures[METRICS_CONNECT_FAILURE_COUNT];
    struct metrics_histogram backend_connect_duration;
    struct metrics_counter bytes_client_to_backend;
    struct metrics_counter bytes_backend_to_client;
    struct metrics_counter proxy_header_rejected[METRICS_PROXY_REJECT_COUNT];

    /* HTTP mode, written through http_metrics.h. */
    struct metrics_counter http_requests[METRICS_HTTP_PROTOCOL_COUNT]
                                        [METRICS_HTTP_STATUS_CLASSES];
    struct metrics_histogram http_request_duration;
    struct metrics_counter http_errors[HTTP_REASON_COUNT];
    struct metrics_counter backend_connections[2 /* reused */];
    struct metrics_counter http2_abuse[H2_ABUSE_COUNT]; /* written by h2_limits.c */
    /* Entries below num_pool_servers are published: the writer fills an
     * entry's server, then stores the count with release; a scrape loads it
     * with acquire and reads only the entries below it, whose server never
     * changes again. Gauges are not retired with their block: a worker that
     * ended has no pool. */
    _Atomic uint32_t num_pool_servers;
    struct metrics_pool_gauge pool_idle[METRICS_POOL_SERVERS];
    _Atomic int64_t pool_idle_other; /* servers beyond the table */
};

struct metrics;
struct metrics_block;

/* metrics_new returns the process's metrics, with no listener and no block
 * yet, owned by the caller (metrics_free); NULL when out of memory. */
struct metrics *metrics_new(void);

/* metrics_free releases |metrics| and every block not yet freed. Call it
 * once every writer has stopped. NULL is allowed. */
void metrics_free(struct metrics *metrics);

/* metrics_block_new returns a new block of |metrics| for one writer thread
 * (a worker), owned by the caller (metrics_block_free); NULL when out of
 * memory. Thread-safe. */
struct metrics_block *metrics_block_new(struct metrics *metrics);

/* metrics_block_free adds |block|'s counts to its metrics' retired totals and
 * releases it, with every metrics_listener it handed out. Call it once its
 * writer has stopped writing (after the worker's thread ended). NULL is
 * allowed. Thread-safe. */
void metrics_block_free(struct metrics_block *block);

/* metrics_block_listener returns |block|'s counters for the listener named
 * |listener_name|, registering the name on first use (a reload that keeps a
 * name keeps its counters). The result is owned by |block| and stays at the
 * same address until metrics_block_free; only |block|'s writer thread may
 * pass it to the helpers below. It returns NULL when out of memory or when
 * METRICS_MAX_LISTENERS names are already registered. Thread-safe, but it
 * takes a lock: call it at setup or reload, never per connection. */
struct metrics_listener *metrics_block_listener(struct metrics_block *block,
                                                const char *listener_name);

/* metrics_tls_version_of maps a protocol version (SSL_version) to its
 * label. */
enum metrics_tls_version metrics_tls_version_of(uint16_t version);

/* metrics_cipher_of maps an IANA cipher suite number
 * (SSL_CIPHER_get_protocol_id) to its label. */
enum metrics_cipher metrics_cipher_of(uint16_t suite);

/* metrics_group_of maps an IANA group number (SSL_get_curve_id; 0 for none)
 * to its label. */
enum metrics_group metrics_group_of(uint16_t group);

/* metrics_config_reloaded counts a reload that succeeded (|ok|) or was
 * refused. Thread-safe. */
void metrics_config_reloaded(struct metrics *metrics, bool ok);

/* metrics_set_instance sets the instance label of tlsterm_build_info
 * (copied, cut to 64 bytes): at start and after each reload. Thread-safe. */
void metrics_set_instance(struct metrics *metrics, const char *instance);

/* struct metrics_cert is one served certificate, for the not_after gauge.
 * The strings are the caller's; metrics_certs_set copies them. */
struct metrics_cert {
    const char *listener;
    const char *subject; /* e.g. RFC 2253 text */
    const char *serial;  /* e.g. upper-case hex */
    int64_t not_after;   /* unix time, seconds */
};

/* metrics_certs_set replaces the set of certificates reported with the
 * |num_certs| in |certs|: call it with every certificate of a generation
 * when it is loaded and becomes current. It returns 0, or -1 when out of
 * memory (the previous set stays). Thread-safe. */
int metrics_certs_set(struct metrics *metrics, const struct metrics_cert *certs,
                      size_t num_certs);

/* metrics_render appends every metric to |out| in the Prometheus text
 * exposition format 0.0.4. It returns 0, or -1 when out of memory (|out| then
 * holds a partial text the caller must discard). Thread-safe: it runs
 * beside the writers without stopping them. Each value it reports is at
 * least the one a previous call reported. */
int metrics_render(struct metrics *metrics, struct evbuffer *out);

/* ---- the hot path: called by the block's writer thread only --------------- */

/* metrics_clock_us returns a monotonic time in microseconds, for the
 * durations passed below. */
static inline uint64_t metrics_clock_us(void) { return clock_now_us(); }

/* metrics_counter_add adds |n| to |counter|. A load and a store, not a
 * read-modify-write: only one thread writes a block. */
static inline void metrics_counter_add(struct metrics_counter *counter, uint64_t n)
{
    uint64_t value = atomic_load_explicit(&counter->value, memory_order_relaxed);
    atomic_store_explicit(&counter->value, value + n, memory_order_relaxed);
}

/* metrics_duration_bound_us returns the upper bound, in microseconds, of
 * finite bucket |i| (below METRICS_DURATION_BUCKETS). */
static inline uint64_t metrics_duration_bound_us(unsigned i)
{
    static const uint64_t bounds_us[METRICS_DURATION_BUCKETS] = {
        500,    1000,   2500,   5000,    10000,   25000,   50000,
        100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
    };
    return bounds_us[i];
}

/* metrics_duration_bucket returns the bucket of a duration of |us|
 * microseconds: the first whose bound it does not exceed (bounds are
 * inclusive, as Prometheus's "le" says), or METRICS_DURATION_BUCKETS. */
static inline unsigned metrics_duration_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < METRICS_DURATION_BUCKETS && us > metrics_duration_bound_us(i))
        i++;
    return i;
}

/* metrics_histogram_observe counts a duration of |us| microseconds. */
static inline void metrics_histogram_observe(struct metrics_histogram *histogram, uint64_t us)
{
    metrics_counter_add(&histogram->buckets[metrics_duration_bucket(us)], 1);
    metrics_counter_add(&histogram->sum_us, us);
}

/* metrics_conn_accepted counts a connection accepted on |listener|. Pair
 * each with one metrics_conn_closed: the active gauge is their difference. */
static inline void metrics_conn_accepted(struct metrics_listener *listener)
{
    metrics_counter_add(&listener->accepted, 1);
}

/* metrics_conn_closed counts a connection that ended with |reason|; |alert|
 * is the client's alert for END_CLIENT_ALERT and ignored otherwise. A
 * handshake-failure reason also counts as a handshake failure. */
static inline void metrics_conn_closed(struct metrics_listener *listener,
                                       enum end_reason reason, uint8_t alert)
{
    if (reason == END_CLIENT_ALERT)
        metrics_counter_add(&listener->client_alerts[alert], 1);
    /* A release store, paired with the scrape's acquire load: a scrape that
     * sees this close also sees the accept before it, so the active gauge
     * (accepted - closed) can never read below zero. */
    struct metrics_counter *closed = &listener->closed[reason];
    uint64_t value = atomic_load_explicit(&closed->value, memory_order_relaxed);
    atomic_store_explicit(&closed->value, value + 1, memory_order_release);
}

/* metrics_handshake_done counts a completed handshake and its duration (from
 * accept) of |duration_us| microseconds. */
static inline void metrics_handshake_done(struct metrics_listener *listener,
                                          enum metrics_tls_version version,
                                          enum metrics_cipher cipher, enum metrics_group group,
                                          bool resumed, uint64_t duration_us)
{
    metrics_counter_add(&listener->handshakes[version][cipher][group][resumed ? 1 : 0], 1);
    metrics_histogram_observe(&listener->handshake_duration, duration_us);
}

/* metrics_early_data_accepted counts a handshake that accepted 0-RTT data. */
static inline void metrics_early_data_accepted(struct metrics_listener *listener)
{
    metrics_counter_add(&listener->early_data_accepted, 1);
}

/* metrics_proxy_header_rejected counts a connection refused for |reject|. */
static inline void metrics_proxy_header_rejected(struct metrics_listener *listener,
                                                 enum metrics_proxy_reject reject)
{
    metrics_counter_add(&listener->proxy_header_rejected[reject], 1);
}

/* metrics_would_fail counts a ClientHello that the listener's report-only
 * policy would have failed with |reason|. */
static inline void metrics_would_fail(struct metrics_listener *listener, enum end_reason reason)
{
    metrics_counter_add(&listener->would_fail[reason], 1);
}

/* metrics_backend_connected counts a backend connect that succeeded after
 * |duration_us| microseconds. */
static inline void metrics_backend_connected(struct metrics_listener *listener,
                                             uint64_t duration_us)
{
    metrics_histogram_observe(&listener->backend_connect_duration, duration_us);
}

/* metrics_backend_connect_failed counts a backend connect that failed. */
static inline void metrics_backend_connect_failed(struct metrics_listener *listener,
                                                  enum metrics_connect_failure failure)
{
    metrics_counter_add(&listener->backend_connect_failures[failure], 1);
}

/* metrics_bytes_client_to_backend counts |n| plaintext bytes read from the
 * client for the backend. */
static inline void metrics_bytes_client_to_backend(struct metrics_listener *listener,
                                                   uint64_t n)
{
    metrics_counter_add(&listener->bytes_client_to_backend, n);
}

/* metrics_bytes_backend_to_client counts |n| plaintext bytes written to the
 * client from the backend. */
static inline void metrics_bytes_backend_to_client(struct metrics_listener *listener,
                                                   uint64_t n)
{
    metrics_counter_add(&listener->bytes_backend_to_client, n);
}

#endif
