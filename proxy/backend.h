/* backend: choosing a backend server and starting the connection to it. */
#ifndef TLSTERM_BACKEND_H
#define TLSTERM_BACKEND_H

#include "listener.h"
#include "net.h"

/* backend_connect picks the next of |cfg|'s servers (round robin over
 * |listener|'s connections) and starts a non-blocking connect to it. It
 * returns the socket (owned by the caller) and sets |*out_server| to the
 * chosen address, which |cfg| owns; or -1 with errno set, |*out_server|
 * still set. */
int backend_connect(struct listener *listener, const struct cfg_listener *cfg,
                    const struct net_addr **out_server);

/* backend_connect_result returns 0 once a connect started by backend_connect
 * has succeeded, or the errno value it failed with. Call it when the socket
 * becomes writable. */
int backend_connect_result(int fd);

#endif
