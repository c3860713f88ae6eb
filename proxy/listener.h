/* listener: one worker's share of a configured listener: its own socket for
 * each listen address, accepting within the connection limits.
 *
 * The limits (the listener's max_connections and the global one) count the
 * connections of every worker, with atomic counters. A worker at a limit
 * stops accepting and looks again every few milliseconds; the kernel backlog
 * holds the clients meanwhile. When the process runs out of descriptors
 * (EMFILE/ENFILE) accept pauses the same way instead of spinning on a socket
 * that stays readable, and says so once. */
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

    uint32_t next_server; /* round-robin position in cfg->servers */
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

/* listener_conn_opened and listener_conn_ended keep the connection counts
 * that the limits are checked against. */
void listener_conn_opened(struct listener *listener);
void listener_conn_ended(struct listener *listener);

/* listener_cleanup closes and frees what |listener| owns. */
void listener_cleanup(struct listener *listener);

#endif
