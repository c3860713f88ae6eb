/* daemon: the running process: it binds every listening socket, drops
 * privileges, starts the workers, and turns SIGTERM/SIGINT into a drain.
 *
 * The main thread only waits for signals; workers do all the work. */
#ifndef TLSTERM_DAEMON_H
#define TLSTERM_DAEMON_H

#include <stdatomic.h>

#include "generation.h"

struct worker;

struct daemon {
    struct generation *gen;
    struct worker *workers;
    unsigned num_workers;
    /* Open connections over all listeners and workers, for the global
     * max_connections. */
    atomic_uint num_conns;
};

/* daemon_run serves |gen| until a stop signal and the drain that follows;
 * each worker holds its own reference on |gen| meanwhile. It returns 0 on a clean stop, or -1 after logging why
 * it could not start (bind failed, privileges, threads). */
int daemon_run(struct generation *gen);

#endif
