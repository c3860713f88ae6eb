/* admin: the admin endpoint, a small plain HTTP/1.1 server on its own thread.
 *
 *   GET /healthz  200 "ok" while the process runs
 *   GET /readyz   200 when the ready handler says so, else 503
 *   GET /metrics  the metrics handler's text (Prometheus format 0.0.4)
 *   GET /report   the report handler's JSON
 *   GET /backends the backend groups' servers and their health, JSON
 *
 * HEAD works wherever GET does. An unknown path is 404; another method on a
 * known path is 405 with "Allow: GET, HEAD"; a request that is not HTTP/1.x
 * is 400 (505 for another HTTP version); one whose request line and headers
 * exceed ADMIN_REQUEST_MAX bytes is 431. Every response closes the
 * connection: a scraper reconnects per scrape anyway, and a server that
 * never waits for a second request has no keep-alive state to defend.
 *
 * The thread has its own event loop, so a slow scrape never stalls a
 * worker, and the handlers run there, one at a time. A connection has
 * timeout_ms in all to send its request and take its response (a client
 * that trickles bytes gains nothing); past that it gets 408 or is closed.
 * At most max_conns connections are open at once. When one more arrives,
 * the oldest connection that has not completed its request is closed to
 * make room, and the others still reading get 2 s at most from then, so
 * that slow or idle clients cannot keep a probe out; when every slot holds
 * a completed request (each ends within its response and a 1 s linger),
 * accepting pauses and the kernel's backlog holds the next ones. The
 * endpoint binds only its configured address, and only a local one
 * (loopback or unix) unless allow_public says otherwise: it has no
 * authentication. */
#ifndef TLSTERM_ADMIN_H
#define TLSTERM_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "net.h"

/* ADMIN_REQUEST_MAX bytes hold the largest request line and headers. */
#define ADMIN_REQUEST_MAX 8192
#define ADMIN_DEFAULT_TIMEOUT_MS 10000
#define ADMIN_DEFAULT_MAX_CONNS 64

/* struct admin_handlers are the endpoint's callbacks, called on the admin
 * thread with the |arg| given to admin_start, so what they read must be
 * safe to read from another thread. A NULL handler makes its path 404. */
struct admin_handlers {
    /* ready returns true when the process serves: listeners bound and
     * certificates loaded, not draining. */
    bool (*ready)(void *arg);
    /* metrics appends the metrics text to |out|; it returns 0, or -1 for a
     * 500. */
    int (*metrics)(void *arg, struct evbuffer *out);
    /* report appends the current failure report, JSON, to |out|; it returns
     * 0, or -1 for a 500. */
    int (*report)(void *arg, struct evbuffer *out);
    /* report_previous appends the last completed window of the report, JSON,
     * to |out| (GET /report?window=previous); it returns 0, 1 when no
     * window has completed yet (a 404), or -1 for a 500. */
    int (*report_previous)(void *arg, struct evbuffer *out);
    /* backends appends the backend groups' state, JSON, to |out| (GET
     * /backends); it returns 0, or -1 for a 500. */
    int (*backends)(void *arg, struct evbuffer *out);
};

/* struct admin_options tunes the endpoint; zero fields take the defaults. */
struct admin_options {
    /* allow_public permits an address that is not loopback or unix (the
     * configuration's "admin: {allow_public: true}"): the endpoint has no
     * authentication, so exposing it must be a decision written down. */
    bool allow_public;
    uint32_t timeout_ms; /* 0: ADMIN_DEFAULT_TIMEOUT_MS */
    uint32_t max_conns;  /* 0: ADMIN_DEFAULT_MAX_CONNS */
};

struct admin;

/* admin_addr_is_local returns true if |addr| is a loopback address (IPv4
 * 127/8, IPv6 ::1 or an IPv4-mapped 127/8) or a unix socket, which only this
 * host can reach. */
bool admin_addr_is_local(const struct net_addr *addr);

/* admin_start binds |addr|, logs {"event":"admin_listening","addr":...} and
 * starts the admin thread. |handlers| is copied; |options| may be NULL for
 * the defaults. It returns the running endpoint, owned by the caller
 * (admin_stop), or NULL after logging why (an address not local without
 * allow_public, bind failed, out of memory or threads). */
struct admin *admin_start(const struct net_addr *addr, const struct admin_options *options,
                          const struct admin_handlers *handlers, void *arg);

/* admin_bound_addr returns the address |admin| listens on, port 0 resolved
 * to the port the kernel chose; it is owned by |admin|. */
const struct net_addr *admin_bound_addr(const struct admin *admin);

/* admin_stop stops the admin thread, closes every connection and the
 * listening socket, and frees |admin|. No handler runs once it returns.
 * NULL is allowed. */
void admin_stop(struct admin *admin);

#endif
