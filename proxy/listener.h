/* listener: the listening sockets of one configured listener, accepting
 * connections within the listener's connection limit.
 *
 * When the limit is reached accept stops until a connection ends; when the
 * process runs out of descriptors (EMFILE/ENFILE) accept pauses briefly
 * instead of spinning on a socket that stays readable. */
#ifndef TLSTERM_LISTENER_H
#define TLSTERM_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>

#include "config.h"
#include "net.h"
#include "tls_ctx.h"

struct server;

struct listen_socket {
    struct listener *listener;
    int fd;
    struct net_addr addr; /* the bound address: port 0 resolved */
    struct event *accept_ev;
};

struct listener {
    struct server *server;
    const struct cfg_listener *cfg;
    struct tls_ctx *tls;

    struct listen_socket *sockets;
    size_t num_sockets;

    uint32_t num_conns;   /* open connections accepted here */
    uint32_t next_server; /* round-robin position in cfg->servers */
    bool accepting;       /* accept events are armed */
    bool closed;          /* draining: sockets closed for good */
    struct event *resume_timer;
};

/* listener_init prepares |listener| for |cfg| (loading its TLS context) but
 * opens no socket. It returns 0, or -1 after writing configuration errors to
 * |errors|. listener_cleanup must be called either way. */
int listener_init(struct listener *listener, struct server *server,
                  const struct cfg_listener *cfg, FILE *errors);

/* listener_bind opens, binds and starts accepting on every address; it logs
 * "listening" with the bound address for each. It returns 0, or -1 after
 * logging the failure. */
int listener_bind(struct listener *listener);

/* listener_close stops accepting and closes the sockets (for the drain). */
void listener_close(struct listener *listener);

/* listener_conn_ended is called when one of its connections ends; it resumes
 * accepting if the connection limit had paused it. */
void listener_conn_ended(struct listener *listener);

/* listener_cleanup closes and frees what |listener| owns. */
void listener_cleanup(struct listener *listener);

#endif
