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
 * workers start, so they inherit what it kept. The log writer and the
 * backend health and resolver threads, started earlier, keep nothing: glibc applies setuid to every thread, and that
 * empties the sets of a thread that did not ask to keep them. */
#ifndef TLSTERM_PRIVILEGES_H
#define TLSTERM_PRIVILEGES_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* privileges_have_net_admin says whether CAP_NET_ADMIN is in the calling
 * thread's effective set. */
bool privileges_have_net_admin(void);

/* privileges_drop switches to |user| (its groups, gid and uid). With
 * |keep_net_admin| the process keeps CAP_NET_ADMIN, permitted and
 * effective, and nothing else; without it, no capability stays. It logs
 * what it did ("privileges") and returns 0, or logs why not and returns
 * -1. */
int privileges_drop(const char *user, bool keep_net_admin);

/* privileges_forbid_new_privs sets PR_SET_NO_NEW_PRIVS: nothing this
 * process or a child could exec gains privileges (setuid bits, file
 * capabilities). It does not touch what the process holds, so the user
 * switch and keeping CAP_NET_ADMIN across it (PR_SET_KEEPCAPS) work as
 * before. It returns 0, or -1 with errno set. */
int privileges_forbid_new_privs(void);

/* privileges_check_files checks, as |config->user| (which must be set),
 * what a reload and a report write will need once the daemon runs as that
 * user: that it can read the configuration file, every certificate, key,
 * OCSP, CA, CRL and ticket key file, and write to the report directory. The
 * checks run in a short-lived child process that switches to the user, so
 * they see exactly what the kernel will allow. It writes one
 * "FILE:LINE:COL: message" per problem to |errors|, naming the file, the
 * user and the fix, and returns 0 when there is none, -1 otherwise. When
 * the check cannot switch users (not started as root), it logs a warning
 * and returns 0: the start would fail on the switch anyway. */
int privileges_check_files(const struct config *config, FILE *errors);

#endif
