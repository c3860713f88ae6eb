/* mode: what a connection does once its handshake is done. A mode is a table
 * of operations over the connection's client transport; the listener's
 * `mode` setting (and, later, ALPN) chooses it at handshake time. Adding a
 * mode adds a file with one such table and a row in mode_for.
 *
 * Every operation that may end the connection returns CONN_OK or CONN_CLOSED
 * (conn.h); after CONN_CLOSED the mode's state is gone. */
#ifndef TLSTERM_MODE_H
#define TLSTERM_MODE_H

#include <stdbool.h>

#include "config.h"

struct conn;

struct mode_ops {
    const char *name;
    /* start begins the mode: allocate conn->mode_state, connect, read. */
    int (*start)(struct conn *c);
    /* on_client runs when the client socket reported what a blocked
     * operation waited for (the transport's waits are already cleared). */
    int (*on_client)(struct conn *c);
    /* on_resume continues after the mode yielded (conn_resume_later). */
    int (*on_resume)(struct conn *c);
    /* on_deadline runs when the deadline set with conn_set_deadline passed. */
    int (*on_deadline)(struct conn *c);
    /* drain: the worker is draining; finish what is in flight and end. */
    int (*drain)(struct conn *c);
    /* state_name names where the mode is, for the conn_closed line. */
    const char *(*state_name)(const struct conn *c);
    /* free releases conn->mode_state; with |abort| a backend connection is
     * reset rather than closed, so a cut-short stream is not taken for a
     * complete one. */
    void (*free)(struct conn *c, bool abort);
};

/* mode_tcp forwards bytes both ways, unchanged (mode_tcp.c). */
extern const struct mode_ops mode_tcp;
/* mode_h2 and mode_h1 terminate HTTP/2 and HTTP/1.1 (http mode), and send
 * HTTP/1.1 to the backend (mode_h2.c, mode_h1.c, http_upstream.c). */
extern const struct mode_ops mode_h2;
extern const struct mode_ops mode_h1;
/* mode_redirect answers plain HTTP/1.1 with a redirect to https:// (mode
 * redirect: no TLS, no backend; mode_redirect.c). */
extern const struct mode_ops mode_redirect;

/* mode_for returns the operations for connection |c| once its handshake is
 * done (at accept, for a redirect listener): its listener's mode, and in
 * http mode the protocol ALPN chose. */
const struct mode_ops *mode_for(const struct conn *c);

struct backend_conn;
struct backend_server;
struct evbuffer;

/* mode_tcp_adopt switches |c| (whose previous mode state is already freed)
 * to tcp mode over the connected backend connection |backend|, which it
 * takes over, after a WebSocket upgrade, with |server| (the server it leads
 * to, a reference counted active, given back when the tunnel ends; may be
 * NULL): |to_client| and |to_backend| hold bytes already read from one side
 * for the other (either may be NULL; they are drained and stay the
 * caller's). Returns CONN_OK or CONN_CLOSED. */
int mode_tcp_adopt(struct conn *c, struct backend_conn *backend, struct backend_server *server,
                   struct evbuffer *to_client, struct evbuffer *to_backend);

#endif
