/* backend_balance: the choice of a server in a backend group, as a pure
 * function of the servers' states, so that it can be tested alone.
 *
 * The rules, in order:
 *  - a server is usable when health checks hold it up, it is not in a
 *    passive cooldown, and this connection has not tried it yet;
 *  - primary servers are chosen among the usable primaries; backups only
 *    when no primary is usable;
 *  - when no server is up and out of cooldown at all and |panic| is set,
 *    every server not yet tried and
 *    not in a passive cooldown is a candidate, whatever its checks say (a
 *    broken health check must not take a site down by itself; a cooldown
 *    is proof from real traffic that connects failed, so it is honoured
 *    while another server is left); when every server not yet tried is
 *    cooling, they all are candidates (a server back before its cooldown
 *    ends is used rather than every client refused);
 *  - among the candidates, |balance| picks: round_robin walks the total
 *    weight with |ticket| (one shared counter per group, so the order holds
 *    across workers), least_conn takes the fewest active connections per
 *    unit of weight (ties broken from |ticket| on), random_two takes the
 *    less loaded of two candidates drawn with |random|. */
#ifndef TLSTERM_BACKEND_BALANCE_H
#define TLSTERM_BACKEND_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* struct balance_server is what the choice reads of one server. */
struct balance_server {
    uint32_t weight; /* at least 1 */
    bool backup;
    bool up;      /* health checks hold it up */
    bool cooling; /* in a passive cooldown */
    bool tried;   /* this connection tried it already */
    int64_t active;
};

/* enum balance_outcome says how a choice was made. */
enum balance_outcome {
    BALANCE_PICKED, /* a usable server */
    BALANCE_PANIC,  /* none usable: panic routing picked one */
    BALANCE_NONE,   /* no candidate at all */
};

/* backend_balance_pick returns the index in |servers| (|num| of them) of
 * the server to connect to, or -1, and says how in |*out_outcome|. */
int backend_balance_pick(enum cfg_balance balance, bool panic,
                         const struct balance_server *servers, size_t num, uint64_t ticket,
                         uint64_t random, enum balance_outcome *out_outcome);

#endif
