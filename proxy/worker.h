/* worker: one thread with its own event loop, its own listening sockets (one
 * per address, bound with SO_REUSEPORT so the kernel spreads connections),
 * its own connections, buffers, metrics block, report block and log rate
 * limiters. Nothing on a connection's path is shared with another worker
 * except the immutable generation, a few atomic counters for the connection
 * limits, and the session ticket keys (read under an uncontended rwlock, see
 * tickets.c).
 *
 * A worker holds one reference on its current generation, which its
 * listeners use; each connection holds its own reference on the generation
 * it was accepted under, so that a reload leaves it as it was. */
#ifndef TLSTERM_WORKER_H
#define TLSTERM_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "generation.h"
#include "ratelimit.h"
#include "timerq.h"

struct backend_pool;
struct conn;
struct daemon;
struct metrics_block;
struct report_block;
struct listener;

struct worker {
    unsigned id;
    struct daemon *daemon;
    struct generation *gen;
    struct event_base *base;
    pthread_t thread;
    bool started;

    struct listener *listeners; /* one per configured listener */
    size_t num_listeners;

    struct conn *conns; /* open connections, linked through conn.c */
    size_t num_conns;
    struct timerq timers;      /* the connections' deadlines */
    struct backend_pool *pool; /* HTTP mode's idle backend connections; NULL: none yet */

    bool draining;
    struct event *drain_ev;    /* activated by the main thread */
    struct event *drain_timer; /* the drain deadline */

    struct metrics_block *metrics;    /* this worker's counters */
    struct report_block *report;      /* its share of the TLS failure report */
    struct ratelimit failure_log;     /* handshake_failed lines per reason */
    struct ratelimit would_fail_log;  /* policy_would_fail lines per reason */
    struct ratelimit http2_abuse_log; /* http2_abuse lines (key END_HTTP2_ABUSE) */
    struct ratelimit proxy_header_log; /* proxy_header_rejected lines (one key) */
    struct event *summary_timer;      /* logs what failure_log suppressed */

    pthread_mutex_t reload_lock;
    struct generation *next_gen; /* handed over by worker_reload; under reload_lock */
    struct event *reload_ev;
};

/* worker_init prepares worker |id| of |daemon| for |gen| (taking a
 * reference): its event loop and listeners, without sockets yet. It returns
 * 0, or -1 (out of memory); worker_cleanup must be called either way. */
int worker_init(struct worker *worker, unsigned id, struct daemon *daemon,
                struct generation *gen);

/* worker_start starts the worker's thread, which accepts on the sockets its
 * listeners were given. It returns 0 or -1. */
int worker_start(struct worker *worker);

/* worker_drain asks the worker to stop accepting and end once its
 * connections have, or at the drain deadline. Thread-safe. */
void worker_drain(struct worker *worker);

/* worker_reload hands |gen| to the worker (taking a reference): its new
 * connections will use it. Thread-safe. */
void worker_reload(struct worker *worker, struct generation *gen);

/* worker_join waits for a started worker's thread to end. */
void worker_join(struct worker *worker);

/* worker_cleanup closes whatever the worker still has open and releases it. */
void worker_cleanup(struct worker *worker);

/* worker_log_failure returns true if a handshake_failed line for |reason|
 * may be written now, or counts it as suppressed and returns false. */
bool worker_log_failure(struct worker *worker, enum end_reason reason);

/* worker_log_would_fail is worker_log_failure for policy_would_fail lines
 * (report-only policy), with buckets of their own and the same limits. */
bool worker_log_would_fail(struct worker *worker, enum end_reason reason);

/* worker_log_http2_abuse is worker_log_failure for http2_abuse lines, with
 * a bucket of their own and the same limits. */
bool worker_log_http2_abuse(struct worker *worker);

/* worker_log_proxy_rejected is worker_log_failure for proxy_header_rejected
 * lines, with a bucket of their own and the same limits. */
bool worker_log_proxy_rejected(struct worker *worker);

/* worker_conn_closed tells the worker one of its connections has ended;
 * while draining, the last one ends the worker's loop. */
void worker_conn_closed(struct worker *worker);

#endif
