/* conn: one client connection, from accept to close: the TLS handshake, the
 * backend connect, and forwarding both ways. See the top of conn.c for who
 * owns what. */
#ifndef TLSTERM_CONN_H
#define TLSTERM_CONN_H

#include <sys/socket.h>

#include "listener.h"
#include "reason.h"

struct conn;
struct worker;

/* conn_accept takes ownership of the accepted socket |fd| from |listener|
 * and starts its handshake. On failure (out of memory) it closes |fd| and
 * logs; the caller has nothing to undo either way. */
void conn_accept(struct listener *listener, int fd, const struct sockaddr *peer,
                 socklen_t peer_len);

/* conn_close_all ends every open connection of |worker| with |reason|. */
void conn_close_all(struct worker *worker, enum end_reason reason);

#endif
