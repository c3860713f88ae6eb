/* listener: one worker's share of a configured listener: its own socket for
 * each listen address, accepting within the connection limits.
 *
 * The limits (the listener's max_connections and the global one) count the
 * connections of every worker, with atomic counters. So do descriptors: a
 * connection holds listener_fds_per_conn of them, and accept stops before
 * the connections' share of RLIMIT_NOFILE (listener_conn_fd_budget) would
 * run out, so that an accepted client always gets its backend socket and a
 * reload, the admin endpoint and report writes always find descriptors. A
 * worker at a limit stops accepting and looks again every few milliseconds;
 * the kernel backlog holds the clients meanwhile. When the process runs out
 * of descriptors all the same (EMFILE/ENFILE), accept pauses the same way
 * instead of spinning on a socket that stays readable. A pause is logged
 * once when it starts, and once (accept_resumed) when the listener has
 * caught up with its backlog. */
#ifndef TLSTERM_LISTENER_H
#define TLSTERM_LISTENER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "net.h"
#include "generation.h"
#include "tls_ctx.h"

struct metrics_listener;
struct worker;

struct listen_socket {
    struct listener *listener;
    int fd; /* -1 until adopted */
    struct event *accept_ev;
};

struct listener {
    struct worker *worker;
    size_t index; /* in the generation's listeners */
    const struct cfg_listener *cfg;
    struct tls_ctx *tls;
    struct metrics_listener *metrics; /* this worker's counters for it */

    struct listen_socket *sockets; /* one per cfg->listen entry */
    size_t num_sockets;

    bool accepting;       /* accept events are armed */
    bool paused_logged;   /* the current pause has been logged */
    bool closed;          /* draining: sockets closed for good */
    struct event *resume_timer;
};

/* listener_init prepares |worker|'s share of listener |index| of the
 * worker's generation, without sockets. It returns 0, to be undone by
 * listener_cleanup, or -1 when out of memory, having released what it took
 * (listener_cleanup is then allowed, and does nothing). */
int listener_init(struct listener *listener, struct worker *worker, size_t index);

/* listener_adopt_socket hands the listening socket |fd| for listen entry
 * |slot| to |listener|, which closes it in the end. */
void listener_adopt_socket(struct listener *listener, size_t slot, int fd);

/* listener_use_generation makes new connections use |gen|'s settings and
 * TLS context for this listener (after a reload). */
void listener_use_generation(struct listener *listener, struct generation *gen);

/* listener_start starts accepting; call it from the worker's thread. */
void listener_start(struct listener *listener);

/* listener_close stops accepting and closes the sockets (for the drain). */
void listener_close(struct listener *listener);

/* listener_fds_per_conn returns how many descriptors a connection on |cfg|
 * holds at most: 2 in tcp mode (the client's and the backend's). A reload
 * must not change it for a listener: listener_conn_ended gives back what the
 * current configuration says. */
unsigned listener_fds_per_conn(const struct cfg_listener *cfg);

/* listener_conn_fd_budget returns how many descriptors |config|'s
 * connections may hold: the soft RLIMIT_NOFILE less |fds_in_use| (what the
 * process held before its first connection) and a reserve: 32 for the admin
 * endpoint, report writes, name lookups and the like, one for each file a
 * reload reads, and one connection per worker of |num_workers| (each may
 * accept one before the others see its count). */
unsigned listener_conn_fd_budget(const struct config *config, unsigned num_workers,
                                 unsigned fds_in_use);

/* listener_warn_fd_limit logs an fd_limit warning when |config|'s
 * max_connections (the global one, or the listeners' added up, whichever is
 * lower) let connections hold more descriptors than the soft RLIMIT_NOFILE:
 * accept would pause before max_connections is reached. */
void listener_warn_fd_limit(const struct config *config);

/* listener_conn_opened and listener_conn_ended keep the connection counts
 * that the limits are checked against. */
void listener_conn_opened(struct listener *listener);
void listener_conn_ended(struct listener *listener);

/* listener_cleanup closes and frees what |listener| owns. */
void listener_cleanup(struct listener *listener);

#endif
