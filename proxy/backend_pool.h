/* backend_pool: a worker's keep-alive connections to its backend servers,
 * and the slots of backend.max_connections.
 *
 * Per worker, per listener and server (a struct pool_server): the idle
 * connections, most recently used first (the warmest), each closed after
 * backend.pool.idle_timeout or as soon as the server closes it; how many
 * connections are out with requests; and the requests waiting for a slot,
 * in arrival order.
 *
 * An idle connection is watched for readability: a server that closes it
 * (or sends anything unasked) gets it closed at once, and a connection idle
 * for more than a moment (any, for a request that could not be sent again)
 * is peeked at again just before it is reused (backend_conn_is_idle_ok),
 * which narrows the keep-alive race to the round trip of the request
 * itself; the upstream retries what is safe to retry in what is left of it.
 *
 * Backend connections of a listener with cfg_backend_per_client (a PROXY
 * header speaks for one client) are private: an idle one is kept with its
 * owner, the client conn, and given only to that conn's later requests;
 * the conn closes its own when it ends (backend_pool_close_owned). Slots
 * and the queue stay shared per server. Shared connections have owner
 * NULL.
 *
 * Ownership. The pool belongs to its worker (worker->pool) and owns its
 * entries, the idle connections and a few spare idle-list entries kept for
 * reuse (freed with the pool). A connection taken out belongs to the
 * taker, who gives it back with backend_pool_put or reports it closed with
 * backend_pool_closed. Waiters are owned by whoever queued them. */
#ifndef TLSTERM_BACKEND_POOL_H
#define TLSTERM_BACKEND_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"

struct backend_conn;
struct backend_pool;
struct metrics_listener;
struct pool_server;
struct worker;

/* struct pool_waiter is a request waiting for a slot; |ready| runs (off
 * the queue) when one is free, and the request tries again. */
struct pool_waiter {
    struct pool_waiter *prev, *next;
    bool queued;
    bool woken; /* a slot is reserved for it until backend_pool_claim */
    /* ready is called when a slot is free, from inside whatever freed it:
     * it only schedules; the waiter claims the slot (backend_pool_claim)
     * and tries again on a later turn. */
    void (*ready)(struct pool_waiter *waiter);
};

/* backend_pool_server returns |worker|'s entry for the listener whose
 * counters are |metrics| and |server|, creating it on first use; NULL when
 * out of memory. */
struct pool_server *backend_pool_server(struct worker *worker, struct metrics_listener *metrics,
                                        const struct net_addr *server);

/* backend_pool_take returns an idle connection of |ps| kept for |owner|
 * (NULL: shared) that passed its check, now owned by the caller and
 * counted out, or NULL. |retry_covers| says that the caller's request can
 * be sent again should the connection turn out closed: a connection back
 * for only a moment is then taken without the check (a system call); a
 * request that could not be sent again always gets the check. */
struct backend_conn *backend_pool_take(struct pool_server *ps, const void *owner,
                                       bool retry_covers);

/* backend_pool_evict_idle closes the least recently used idle connection
 * of |ps|, keeping its slot for the caller, who opens one in its place
 * (backend_pool_opened): a private connection that no other client could
 * use must not hold a slot of backend.max_connections. It returns false
 * when |ps| has none. */
bool backend_pool_evict_idle(struct pool_server *ps);

/* backend_pool_may_open says whether a new connection fits |limit|
 * (backend.max_connections; 0: no limit); the caller then counts it with
 * backend_pool_opened. */
bool backend_pool_may_open(const struct pool_server *ps, uint32_t limit);
void backend_pool_opened(struct pool_server *ps);

/* backend_pool_put gives back a connection that is clean (a whole request
 * and a whole reusable response went through it): it is kept idle for
 * |idle_timeout_ms| unless |max_idle| are already kept, or |keep| is false
 * (the worker's configuration changed or it is draining), when it is
 * closed. */
void backend_pool_put(struct pool_server *ps, struct backend_conn *conn, const void *owner,
                      bool keep, uint32_t idle_timeout_ms, uint32_t max_idle);

/* backend_pool_closed reports that a connection taken out (or opened) was
 * closed by its owner: its slot is free. */
void backend_pool_closed(struct pool_server *ps);

/* backend_pool_wait queues |waiter| for the next free slot of |ps|;
 * backend_pool_cancel takes it off the queue if it is still on it. */
void backend_pool_wait(struct pool_server *ps, struct pool_waiter *waiter);
void backend_pool_cancel(struct pool_server *ps, struct pool_waiter *waiter);

/* backend_pool_wait_first queues |waiter| at the head: a woken waiter that
 * found nothing keeps its turn. */
void backend_pool_wait_first(struct pool_server *ps, struct pool_waiter *waiter);

/* backend_pool_has_waiters says whether requests wait for |ps| (queued, or
 * woken with a slot reserved): a newcomer queues behind them. */
bool backend_pool_has_waiters(const struct pool_server *ps);

/* backend_pool_claim turns a woken waiter's reserved slot back into a free
 * one, just before it tries again (backend_pool_take, _may_open). */
void backend_pool_claim(struct pool_server *ps, struct pool_waiter *waiter);

/* backend_pool_give_up takes a waiter that no longer wants a slot off the
 * queue, passing a slot reserved for it on to the next waiter. */
void backend_pool_give_up(struct pool_server *ps, struct pool_waiter *waiter);

/* backend_pool_close_idle closes every idle connection of |worker| (a
 * reload: connections of the old configuration are not reused). */
void backend_pool_close_idle(struct worker *worker);

/* backend_pool_close_owned closes every idle connection of |worker| kept
 * for |owner| (a client conn that ends). */
void backend_pool_close_owned(struct worker *worker, const void *owner);

/* backend_pool_free closes everything |worker|'s pool still holds and
 * frees it. */
void backend_pool_free(struct worker *worker);

#endif
