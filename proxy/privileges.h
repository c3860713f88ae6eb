/* privileges: the user the daemon runs as, and the one capability it may
 * keep.
 *
 * tlsterm binds its sockets as whoever started it, then switches to the
 * configured user before any thread starts. Nothing is kept across that
 * switch, except CAP_NET_ADMIN when a listener uses backend.source: client:
 * every backend socket of such a listener is made transparent
 * (IP_TRANSPARENT) when it is created, which needs that capability for as
 * long as the process runs. Capabilities belong to each thread, and threads
 * copy their creator's: privileges_drop runs on the main thread before the
 * workers start, so they inherit what it kept. The log writer, started
 * earlier, keeps nothing: glibc applies setuid to every thread, and that
 * empties the sets of a thread that did not ask to keep them. */
#ifndef TLSTERM_PRIVILEGES_H
#define TLSTERM_PRIVILEGES_H

#include <stdbool.h>

/* privileges_have_net_admin says whether CAP_NET_ADMIN is in the calling
 * thread's effective set. */
bool privileges_have_net_admin(void);

/* privileges_drop switches to |user| (its groups, gid and uid). With
 * |keep_net_admin| the process keeps CAP_NET_ADMIN, permitted and
 * effective, and nothing else; without it, no capability stays. It logs
 * what it did ("privileges") and returns 0, or logs why not and returns
 * -1. */
int privileges_drop(const char *user, bool keep_net_admin);

#endif
