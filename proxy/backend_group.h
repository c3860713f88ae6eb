/* backend_group: the runtime state of backend groups and their servers,
 * outside the configuration generation, so that it survives reloads.
 *
 * A process-wide registry holds one struct backend_group per group name.
 * generation_new attaches each of its configuration's groups
 * (backend_group_attach): the group is found by name or made, and its
 * server list rebuilt from the configuration; a server whose address is
 * in the list already keeps its state (up or down, counters, cooldown), so
 * a down server stays down across a reload without a fresh check.
 *
 * Servers. One struct backend_server per (group, address): a host name
 * becomes one per address it resolves to (resolve: all) or its first.
 * Workers read its state with atomics only: |up| (health checks),
 * |cooldown_until_ms| (passive failures), |active| and the counters.
 *
 * Lists and their reclamation. A group's servers are published to workers
 * as an immutable struct server_list behind an atomic pointer. A writer (a
 * reload on the main thread, a re-resolution on the resolver thread)
 * builds a new list and swaps it in under the registry's mutex; the old
 * list is freed once no reader can hold it: a reader brackets its use of
 * the list (a pick, microseconds, never blocking) with the group's
 * |readers| counter, and the writer, after the swap, waits (yielding)
 * until it reads that counter as zero. Every access is sequentially
 * consistent, so a reader that went in before the swap is seen by the
 * writer's wait, and one that went in after it sees the new list. This
 * was chosen over keeping retired lists until some later event because it
 * frees memory at once and needs no per-worker bookkeeping; the wait is
 * only ever on the writer's (non-worker) thread.
 *
 * Ownership. struct backend_server is reference counted: each list that
 * holds it has one reference, and so has each connection (or HTTP
 * exchange) that picked it, from backend_group_pick to
 * backend_server_release, so its address stays valid for the logs of a
 * connection that outlives its list. Groups are counted by the generations
 * that attached them (and, for a moment, by the resolver thread); the last
 * detach removes the group from the registry.
 *
 * Threads. Health checks run on a thread of their own with its own event
 * loop (backend_health.c); name resolution on another (getaddrinfo blocks:
 * a slow name server delays only further resolutions, never a check, a
 * worker or a reload). Both are started by backend_health_start. */
#ifndef TLSTERM_BACKEND_GROUP_H
#define TLSTERM_BACKEND_GROUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "net.h"

struct evbuffer;
struct backend_group;

struct backend_server {
    atomic_uint refs;
    struct net_addr addr;
    char name[NET_ADDR_TEXT_MAX];       /* |addr| formatted, for logs and labels */
    char *group_name;                   /* owned copy */
    atomic_bool up;                     /* health checks hold it up (true until they say not) */
    atomic_bool passive_down;           /* in a cooldown, logged as down */
    _Atomic uint64_t cooldown_until_ms; /* clock_now_ms time */
    atomic_uint consecutive_failures;   /* connect failures in a row */
    _Atomic int64_t active;             /* connections (tcp) or requests (http) on it */
    _Atomic uint64_t connect_failures;  /* all time */
    _Atomic uint64_t last_check_unix_ms; /* 0: never checked */
    /* Under the registry's mutex: why it is in its state, for /backends. */
    char reason[96];
    /* The health thread's own. */
    uint32_t rise_count, fall_count;
    bool checking;
    uint64_t next_check_ms;
};

/* backend_group_attach finds or makes the runtime group for |cfg| and
 * (re)builds its server list from it. It returns the group with one
 * reference, or NULL when out of memory. Main thread. */
struct backend_group *backend_group_attach(const struct cfg_backend *cfg);

/* backend_group_detach drops a reference taken by backend_group_attach.
 * NULL is allowed. Any thread. */
void backend_group_detach(struct backend_group *group);

/* enum backend_pick_result says why backend_group_pick returned NULL. */
enum backend_pick_result {
    BACKEND_PICK_OK,
    BACKEND_PICK_NONE_UP,   /* no server available at all (all down, no panic) */
    BACKEND_PICK_EXHAUSTED, /* every available server was tried already */
};

/* backend_group_pick chooses a server of |group| by |cfg|'s balance and
 * health settings, among those of address |family| (AF_UNSPEC: any; a
 * connection from the client's own address needs its family), skipping the
 * |num_tried| servers of |tried|. It returns
 * the server with a reference and one more active connection, to be given
 * back with backend_server_release; or NULL and why in |*out_result|. Worker
 * threads; no locks. */
struct backend_server *backend_group_pick(struct backend_group *group,
                                          const struct cfg_backend *cfg, int family,
                                          struct backend_server *const *tried, size_t num_tried,
                                          enum backend_pick_result *out_result);

/* backend_server_release gives back what backend_group_pick took. NULL is
 * allowed. */
void backend_server_release(struct backend_server *server);

/* backend_server_connect_failed counts a failed connect to |server| (an
 * error or timeouts.connect, described by |why|) and, with passive checks
 * on in |cfg|, takes it out for the cooldown after that many in a row
 * (logged once: backend_server_down). */
void backend_server_connect_failed(struct backend_server *server, const struct cfg_backend *cfg,
                                   const char *why);

/* backend_server_connected resets |server|'s run of connect failures. */
void backend_server_connected(struct backend_server *server);

/* A server is in (new connections may go to it) when its health checks
 * hold it up and it is not in a passive cooldown. backend_server_set sets
 * one of the two under the registry's lock and says whether that changed
 * whether it is in: only then is the change logged, once, whichever thread
 * made it (a worker's connect failures, the health thread's checks). The
 * health thread's own visit, under the lock already, does the same. */
enum backend_switch { BACKEND_CHECKS_UP, BACKEND_PASSIVE_DOWN };
bool backend_server_set(struct backend_server *server, enum backend_switch which, bool value);

/* backend_server_log_change logs |server|'s transition: event
 * backend_server_down or backend_server_up, with the cause, and keeps the
 * cause as its reason. */
void backend_server_log_change(struct backend_server *server, bool up, const char *cause);

/* backend_group_render_json appends /backends' JSON to |out|: an array of
 * groups, each with its servers' state, reason, last check, active
 * connections and connect failures. 0, or -1 when out of memory. */
int backend_group_render_json(struct evbuffer *out);

/* backend_group_render_metrics appends the per-server metric families
 * (tlsterm_backend_server_up, _connections_active,
 * _connect_failures_total) to |out|. 0, or -1 when out of memory. */
int backend_group_render_metrics(struct evbuffer *out);

/* backend_group_known_addrs is a config_known_addrs_fn: the addresses a
 * group's source |host| and |port| (resolved for |resolve|) stand for now. */
int backend_group_known_addrs(const char *host, const char *port, enum cfg_resolve resolve,
                              struct net_addr **out_addrs, size_t *out_num);

/* backend_health_start starts the health-check and resolver threads; 0 or
 * -1. backend_health_stop stops and joins them (allowed when not
 * started). */
int backend_health_start(void);
void backend_health_stop(void);

/* ---- for backend_health.c ---- */

/* backend_registry_lock and _unlock guard the registry (group list, list
 * swaps, settings, reasons). */
void backend_registry_lock(void);
void backend_registry_unlock(void);

/* backend_registry_for_each_server calls |fn| for every server of every
 * group's current list with the group's settings; with the lock held. */
struct backend_check_settings {
    const char *group_name;
    struct cfg_health_check check; /* path borrowed from the group */
    bool checks_on;
};
void backend_registry_for_each_server(void (*fn)(struct backend_server *server,
                                                 const struct backend_check_settings *settings,
                                                 void *arg),
                                      void *arg);

/* backend_server_ref adds a reference to |server|. */
void backend_server_ref(struct backend_server *server);

/* backend_server_unref drops one, freeing |server| on the last. */
void backend_server_unref(struct backend_server *server);

/* backend_resolve_run is the resolver thread's loop, until
 * backend_resolve_stop. */
void *backend_resolve_run(void *arg);
void backend_resolve_stop(void);

#endif
