/* http_metrics: HTTP mode's counters (http_metrics.h).
 *
 * They live in struct metrics_listener beside the TLS ones and follow the
 * rules of metrics.h: only the worker that owns a block writes it, with a
 * relaxed load and store; metrics.c sums and renders them at scrape.
 *
 * The idle gauge is kept per backend server, which is not known when the
 * block is made: a worker registers an address in its own table on first
 * use. The scrape reads that table without a lock, so an entry is written
 * in full before the count that publishes it (a release store, paired with
 * the scrape's acquire load), and is never changed or removed after:
 * its gauge goes back to 0 instead. */
#include "http_metrics.h"

#include <string.h>

#include "conn.h"
#include "listener.h"
#include "metrics.h"

/* gauge_add moves |gauge| by |delta|: one writer, as metrics_counter_add. */
static void gauge_add(_Atomic int64_t *gauge, int delta)
{
    int64_t value = atomic_load_explicit(gauge, memory_order_relaxed);
    atomic_store_explicit(gauge, value + delta, memory_order_relaxed);
}

void http_metrics_request(struct conn *c, const char *protocol, int status,
                          enum http_reason reason, uint64_t duration_us)
{
    struct metrics_listener *m = c->listener->metrics;
    enum metrics_http_protocol p =
        strcmp(protocol, "h2") == 0 ? METRICS_HTTP_2 : METRICS_HTTP_1_1;

    /* No status, no class: a request cut short before any answer counts
     * only as its duration and its reason. */
    if (status >= 100 && status <= 599)
        metrics_counter_add(&m->http_requests[p][status / 100 - 1], 1);
    metrics_histogram_observe(&m->http_request_duration, duration_us);
    if (reason != HTTP_REASON_NONE && reason < HTTP_REASON_COUNT)
        metrics_counter_add(&m->http_errors[reason], 1);
}

void http_metrics_backend_conn(struct conn *c, bool reused)
{
    metrics_counter_add(&c->listener->metrics->backend_connections[reused ? 1 : 0], 1);
}

/* pool_gauge returns |m|'s idle gauge for |server|, registering the server
 * on first use, or the shared "other" gauge once the table is full. */
static _Atomic int64_t *pool_gauge(struct metrics_listener *m, const struct net_addr *server)
{
    /* Relaxed: this thread wrote the count itself. */
    uint32_t n = atomic_load_explicit(&m->num_pool_servers, memory_order_relaxed);

    for (uint32_t i = 0; i < n; i++)
        if (net_addr_equal(&m->pool_idle[i].server, server))
            return &m->pool_idle[i].idle;
    if (n == METRICS_POOL_SERVERS)
        return &m->pool_idle_other;
    m->pool_idle[n].server = *server;
    atomic_store_explicit(&m->num_pool_servers, n + 1, memory_order_release);
    return &m->pool_idle[n].idle;
}

void http_metrics_pool_idle(struct metrics_listener *m, const struct net_addr *server,
                            int delta)
{
    gauge_add(pool_gauge(m, server), delta);
}
