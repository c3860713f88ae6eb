/* server: one event loop with its listeners, its open connections, signals
 * and the graceful drain.
 *
 * The server owns the configuration it was built from, each listener (and
 * through them the TLS contexts), and every open connection. */
#ifndef TLSTERM_SERVER_H
#define TLSTERM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <event2/event.h>

#include "config.h"

struct conn;
struct listener;

struct server {
    struct event_base *base;
    struct config *config;
    struct listener *listeners;
    size_t num_listeners;

    struct conn *conns; /* open connections, a list linked through conn.c */
    size_t num_conns;

    bool draining;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct event *drain_timer;
};

/* server_new builds everything |config| describes except the sockets: the
 * event loop and each listener's TLS context with its certificates. It takes
 * ownership of |config|. It returns the server, or NULL after writing every
 * configuration error to |errors| (FILE:LINE:COL: message). `--check` stops
 * here, so it checks exactly what the daemon would load. */
struct server *server_new(struct config *config, FILE *errors);

/* server_bind opens every listening socket and logs a "listening" event per
 * address, then drops privileges when the configuration names a user. It
 * returns 0, or -1 after logging what failed. */
int server_bind(struct server *server);

/* server_run serves until SIGTERM or SIGINT and the drain that follows. It
 * returns 0 on a clean stop, -1 if the event loop failed. */
int server_run(struct server *server);

/* server_free closes whatever is still open and releases |server| with its
 * configuration. NULL is allowed. */
void server_free(struct server *server);

/* server_describe writes each listener's effective TLS policy to |out|. */
void server_describe(const struct server *server, FILE *out);

/* server_conn_closed tells the server one connection has ended; while
 * draining, the last one ends the event loop. */
void server_conn_closed(struct server *server);

#endif
