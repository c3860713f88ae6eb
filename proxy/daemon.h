/* daemon: the running process. It binds every listening socket, drops
 * privileges, starts the workers, and runs the main thread's loop, which
 * handles signals (SIGTERM/SIGINT: drain; SIGHUP: reload), ticket key
 * rotation, and reloads when watched files change (file_watch.h). It tells
 * systemd when it is ready, reloading and stopping (sd_notify.h).
 *
 * A reload builds a complete new generation beside the current one and hands
 * it to every worker only if everything loaded; otherwise the errors are
 * logged and the current generation stays. Connections keep the generation
 * they were accepted under until they end. The set of listeners and their
 * addresses cannot change by reload (the sockets stay open): such a change
 * is refused with a message asking for a restart. */
#ifndef TLSTERM_DAEMON_H
#define TLSTERM_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>

#include "generation.h"
#include "tickets.h"

struct worker;
struct daemon_watch;
struct sd_notifier;

struct daemon {
    const char *config_path;
    struct generation *gen; /* the current generation; one reference */
    struct tickets *tickets; /* shared by every generation; may be NULL */
    struct worker *workers;
    unsigned num_workers;
    /* Open connections, over all workers, for the connection limits: in
     * all (the global max_connections) and per listener index. */
    atomic_uint num_conns;
    atomic_uint *listener_conns;
    /* Descriptors the open connections hold, and how many they may
     * (listener_conn_fd_budget, set at start and at each reload). */
    atomic_uint conn_fds;
    atomic_uint conn_fd_budget;
    unsigned fds_at_start;      /* held before the first connection */
    struct daemon_watch *watch; /* the main thread's events */
    struct metrics *metrics;    /* every worker's counters */
    struct report *report;      /* the TLS failure report, over all workers */
    struct admin *admin;        /* the admin endpoint, when configured */
    struct sd_notifier *notify; /* systemd's notify socket; NULL: none */
    atomic_bool ready;          /* serving: bound, loaded, not draining */
};

/* daemon_run serves |gen|, loaded from |config_path|, until a stop signal
 * and the drain that follows. It takes over the caller's reference on |gen|
 * and ownership of |tickets| (NULL when tickets are off). It returns 0 on a
 * clean stop, or -1 after logging why it could not start. */
int daemon_run(const char *config_path, struct generation *gen, struct tickets *tickets);

#endif
