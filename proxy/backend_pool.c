/* backend_pool: see backend_pool.h. */
#include "backend_pool.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend_conn.h"
#include "clock.h"
#include "http_metrics.h"
#include "timerq.h"
#include "worker.h"

/* A connection back in the pool for less than POOL_FRESH_MS is reused
 * without the peek (backend_conn_is_idle_ok), a system call per request
 * under load. Nothing a server does on its own closes a connection it
 * answered this recently (idle timeouts are seconds; a last request is
 * announced with Connection: close, and such a connection is not pooled),
 * and a close the event loop already reported has closed it here (the idle
 * watcher). What is left is a close that arrives during the current turn of
 * the loop, or that the loop reported in this turn but whose idle watcher has
 * not run yet: a server that closes right after a response without saying
 * Connection: close (RFC 9112 9.6 says it should) is the one case the peek
 * caught more often. The upstream's retry covers it for what is safe to send
 * again (http_upstream.c); for anything else (a POST) the caller says so
 * (backend_pool_take's |retry_covers| false) and the peek is made whatever
 * the connection's age, so that the request is not lost to the race. */
#define POOL_FRESH_MS 100

/* Up to POOL_SPARE_MAX entries of a server's idle list are kept for reuse
 * when their connection leaves it, so that a connection going back and
 * forth between requests costs no allocation. */
#define POOL_SPARE_MAX 64

struct pool_idle {
    struct pool_idle *prev, *next;
    struct pool_server *ps;
    struct backend_conn *conn;
    const void *owner;         /* the client conn of a private one; NULL: shared */
    struct timerq_entry timer; /* backend.pool.idle_timeout */
    uint64_t since_ms;         /* when it came back */
};

struct pool_server {
    struct pool_server *next; /* the pool's list */
    struct worker *worker;
    struct metrics_listener *metrics;
    struct net_addr addr;
    uint32_t out;      /* connections taken or opened, not yet back */
    uint32_t reserved; /* slots promised to woken waiters, not yet claimed */
    uint32_t num_idle;
    struct pool_idle *idle; /* most recently used first */
    struct pool_idle *spare; /* unused entries, linked by |next| */
    uint32_t num_spare;
    struct pool_waiter *wait_head, *wait_tail;
};

struct backend_pool {
    struct pool_server *servers;
};

struct pool_server *backend_pool_server(struct worker *w, struct metrics_listener *metrics,
                                        const struct net_addr *server)
{
    if (w->pool == NULL && (w->pool = calloc(1, sizeof(*w->pool))) == NULL)
        return NULL;
    for (struct pool_server *ps = w->pool->servers; ps != NULL; ps = ps->next)
        if (ps->metrics == metrics && net_addr_equal(&ps->addr, server))
            return ps;
    struct pool_server *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    ps->worker = w;
    ps->metrics = metrics;
    ps->addr = *server;
    ps->next = w->pool->servers;
    w->pool->servers = ps;
    return ps;
}

/* unlink_idle takes |idle| off its list and frees it (or keeps it as a
 * spare), returning its connection. */
static struct backend_conn *unlink_idle(struct pool_idle *idle)
{
    struct pool_server *ps = idle->ps;
    struct backend_conn *conn = idle->conn;

    if (idle->prev != NULL)
        idle->prev->next = idle->next;
    else
        ps->idle = idle->next;
    if (idle->next != NULL)
        idle->next->prev = idle->prev;
    ps->num_idle--;
    timerq_cancel(&ps->worker->timers, &idle->timer);
    if (ps->metrics != NULL)
        http_metrics_pool_idle(ps->metrics, &ps->addr, -1);
    if (ps->num_spare < POOL_SPARE_MAX) {
        idle->next = ps->spare;
        ps->spare = idle;
        ps->num_spare++;
    } else {
        free(idle);
    }
    return conn;
}

/* wake_waiter gives a freed slot to the first waiter. */
static void wake_waiter(struct pool_server *ps)
{
    struct pool_waiter *waiter = ps->wait_head;
    if (waiter == NULL)
        return;
    backend_pool_cancel(ps, waiter);
    /* The slot is held for it until it claims it on a later turn, so a
     * request arriving meanwhile does not overtake the queue. */
    ps->reserved++;
    waiter->woken = true;
    waiter->ready(waiter);
}

void backend_pool_claim(struct pool_server *ps, struct pool_waiter *waiter)
{
    if (!waiter->woken)
        return;
    waiter->woken = false;
    ps->reserved--;
}

void backend_pool_give_up(struct pool_server *ps, struct pool_waiter *waiter)
{
    backend_pool_cancel(ps, waiter);
    if (waiter->woken) {
        backend_pool_claim(ps, waiter);
        wake_waiter(ps); /* its slot goes to the next in line */
    }
}

static void close_idle(struct pool_idle *idle)
{
    struct pool_server *ps = idle->ps;
    backend_conn_free(unlink_idle(idle), false);
    wake_waiter(ps);
}

static void on_idle_event(struct backend_conn *conn, short what, void *arg)
{
    /* The server closed it, or said something unasked: either way it is
     * no longer a connection a request can use. */
    close_idle(arg);
}

static void on_idle_timer(struct timerq_entry *timer)
{
    close_idle((struct pool_idle *)((char *)timer - offsetof(struct pool_idle, timer)));
}

struct backend_conn *backend_pool_take(struct pool_server *ps, const void *owner,
                                       bool retry_covers)
{
    struct pool_idle *next;
    for (struct pool_idle *idle = ps->idle; idle != NULL; idle = next) {
        next = idle->next; /* read first: unlink_idle reuses the entry */
        if (idle->owner != owner)
            continue;
        bool fresh = retry_covers && clock_now_ms() - idle->since_ms < POOL_FRESH_MS;
        struct backend_conn *conn = unlink_idle(idle);
        if (fresh || backend_conn_is_idle_ok(conn)) {
            ps->out++;
            return conn;
        }
        backend_conn_free(conn, false);
    }
    return NULL;
}

bool backend_pool_evict_idle(struct pool_server *ps)
{
    struct pool_idle *oldest = ps->idle;
    if (oldest == NULL)
        return false;
    while (oldest->next != NULL)
        oldest = oldest->next;
    /* Not close_idle: the slot goes to the caller, not to a waiter. */
    backend_conn_free(unlink_idle(oldest), false);
    return true;
}

bool backend_pool_may_open(const struct pool_server *ps, uint32_t limit)
{
    return limit == 0 || ps->out + ps->num_idle + ps->reserved < limit;
}

void backend_pool_opened(struct pool_server *ps) { ps->out++; }

/* new_idle returns a zeroed entry for |ps|'s idle list, a spare one when
 * there is one; NULL when out of memory. */
static struct pool_idle *new_idle(struct pool_server *ps)
{
    struct pool_idle *idle = ps->spare;
    if (idle == NULL)
        return calloc(1, sizeof(*idle));
    ps->spare = idle->next;
    ps->num_spare--;
    memset(idle, 0, sizeof(*idle));
    return idle;
}

void backend_pool_put(struct pool_server *ps, struct backend_conn *conn, const void *owner,
                      bool keep, uint32_t idle_timeout_ms, uint32_t max_idle)
{
    struct pool_idle *idle = NULL;

    ps->out--;
    if (keep && ps->num_idle < max_idle && (idle = new_idle(ps)) != NULL) {
        idle->ps = ps;
        idle->conn = conn;
        idle->owner = owner;
        idle->timer.fire = on_idle_timer;
        idle->since_ms = clock_now_ms();
        if (timerq_set(&ps->worker->timers, &idle->timer, idle->since_ms + idle_timeout_ms) !=
            0) {
            free(idle);
            idle = NULL;
        }
    }
    if (idle == NULL) {
        backend_conn_free(conn, false);
    } else {
        idle->next = ps->idle;
        if (ps->idle != NULL)
            ps->idle->prev = idle;
        ps->idle = idle;
        ps->num_idle++;
        if (ps->metrics != NULL)
            http_metrics_pool_idle(ps->metrics, &ps->addr, 1);
        backend_conn_set_owner(conn, on_idle_event, idle);
        conn->read_blocked = true;
        backend_conn_watch(conn, EV_READ);
    }
    /* A waiter takes the idle connection, or the slot a closed one left. */
    wake_waiter(ps);
}

void backend_pool_closed(struct pool_server *ps)
{
    ps->out--;
    wake_waiter(ps);
}

void backend_pool_wait(struct pool_server *ps, struct pool_waiter *waiter)
{
    waiter->next = NULL;
    waiter->prev = ps->wait_tail;
    if (ps->wait_tail != NULL)
        ps->wait_tail->next = waiter;
    else
        ps->wait_head = waiter;
    ps->wait_tail = waiter;
    waiter->queued = true;
}

void backend_pool_wait_first(struct pool_server *ps, struct pool_waiter *waiter)
{
    waiter->prev = NULL;
    waiter->next = ps->wait_head;
    if (ps->wait_head != NULL)
        ps->wait_head->prev = waiter;
    else
        ps->wait_tail = waiter;
    ps->wait_head = waiter;
    waiter->queued = true;
}

bool backend_pool_has_waiters(const struct pool_server *ps)
{
    return ps->wait_head != NULL || ps->reserved > 0;
}

void backend_pool_cancel(struct pool_server *ps, struct pool_waiter *waiter)
{
    if (!waiter->queued)
        return;
    if (waiter->prev != NULL)
        waiter->prev->next = waiter->next;
    else
        ps->wait_head = waiter->next;
    if (waiter->next != NULL)
        waiter->next->prev = waiter->prev;
    else
        ps->wait_tail = waiter->prev;
    waiter->prev = waiter->next = NULL;
    waiter->queued = false;
}

void backend_pool_close_idle(struct worker *w)
{
    if (w->pool == NULL)
        return;
    for (struct pool_server *ps = w->pool->servers; ps != NULL; ps = ps->next)
        while (ps->idle != NULL)
            backend_conn_free(unlink_idle(ps->idle), false);
}

void backend_pool_close_owned(struct worker *w, const void *owner)
{
    if (w->pool == NULL)
        return;
    for (struct pool_server *ps = w->pool->servers; ps != NULL; ps = ps->next) {
        struct pool_idle *next;
        for (struct pool_idle *idle = ps->idle; idle != NULL; idle = next) {
            next = idle->next;
            if (idle->owner == owner)
                close_idle(idle);
        }
    }
}

void backend_pool_free(struct worker *w)
{
    if (w->pool == NULL)
        return;
    /* The idle gauges are left alone: the metrics block goes too. */
    for (struct pool_server *ps = w->pool->servers; ps != NULL; ps = ps->next)
        ps->metrics = NULL;
    backend_pool_close_idle(w);
    while (w->pool->servers != NULL) {
        struct pool_server *ps = w->pool->servers;
        w->pool->servers = ps->next;
        while (ps->spare != NULL) {
            struct pool_idle *idle = ps->spare;
            ps->spare = idle->next;
            free(idle);
        }
        free(ps);
    }
    free(w->pool);
    w->pool = NULL;
}
