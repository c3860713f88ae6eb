/* backend_group: groups, servers and their lists; the resolver thread. See
 * backend_group.h (ownership, list reclamation, threads). */
#include "backend_group.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>

#include "backend_balance.h"
#include "clock.h"
#include "log.h"

struct list_entry {
    struct backend_server *server;
    uint32_t weight;
    bool backup;
};

/* struct server_list is immutable once published. */
struct server_list {
    size_t num;
    struct list_entry entries[];
};

/* struct group_source is one configured server entry, with the addresses
 * it stands for now (for a host name: the last good resolution). */
struct group_source {
    char *host; /* NULL: a literal address, never resolved again */
    char *port;
    struct net_addr *addrs;
    size_t num_addrs;
    uint32_t weight;
    bool backup;
};

struct backend_group {
    struct backend_group *next; /* the registry's list */
    char *name;
    unsigned refs; /* under the mutex */
    _Atomic(struct server_list *) list;
    atomic_uint readers;
    _Atomic uint64_t cursor;
    /* Under the mutex: the settings of the last attach. */
    struct group_source *sources;
    size_t num_sources;
    enum cfg_resolve resolve;
    uint32_t resolve_interval_ms;
    uint64_t next_resolve_ms;
    struct cfg_health_check check; /* path owned */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the resolver: stop, or a new group */
    struct backend_group *groups;
    bool resolver_stop;
} registry = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

void backend_registry_lock(void) { pthread_mutex_lock(&registry.lock); }
void backend_registry_unlock(void) { pthread_mutex_unlock(&registry.lock); }

/* ---- servers ------------------------------------------------------------------ */

void backend_server_ref(struct backend_server *server) { atomic_fetch_add(&server->refs, 1); }

void backend_server_unref(struct backend_server *server)
{
    if (server == NULL || atomic_fetch_sub(&server->refs, 1) != 1)
        return;
    free(server->group_name);
    free(server);
}

static struct backend_server *server_new(const char *group_name, const struct net_addr *addr)
{
    struct backend_server *server = calloc(1, sizeof(*server));

    if (server == NULL || (server->group_name = strdup(group_name)) == NULL) {
        free(server);
        return NULL;
    }
    atomic_init(&server->refs, 1);
    server->addr = *addr;
    net_addr_format(addr, server->name, sizeof(server->name));
    atomic_init(&server->up, true);
    snprintf(server->reason, sizeof(server->reason), "not checked");
    return server;
}

void backend_server_log_change(struct backend_server *server, bool up, const char *cause)
{
    struct log_line line;

    backend_registry_lock();
    snprintf(server->reason, sizeof(server->reason), "%s", cause);
    backend_registry_unlock();
    log_begin(&line, up ? LOG_INFO : LOG_WARN,
              up ? "backend_server_up" : "backend_server_down");
    log_str(&line, "backend", server->group_name);
    log_str(&line, "server", server->name);
    log_str(&line, "cause", cause);
    log_end(&line);
}

bool backend_server_set(struct backend_server *server, enum backend_switch which, bool value)
{
    backend_registry_lock();
    bool was_in = atomic_load(&server->up) && !atomic_load(&server->passive_down);
    atomic_store(which == BACKEND_CHECKS_UP ? &server->up : &server->passive_down, value);
    bool is_in = atomic_load(&server->up) && !atomic_load(&server->passive_down);
    backend_registry_unlock();
    return was_in != is_in;
}

void backend_server_connect_failed(struct backend_server *server, const struct cfg_backend *cfg,
                                   const char *why)
{
    char cause[96];

    atomic_fetch_add(&server->connect_failures, 1);
    unsigned run = atomic_fetch_add(&server->consecutive_failures, 1) + 1;
    if (cfg->passive_failures == 0 || run < cfg->passive_failures)
        return;
    atomic_store(&server->cooldown_until_ms, clock_now_ms() + cfg->passive_cooldown_ms);
    atomic_store(&server->consecutive_failures, 0);
    /* Logged once: by the worker that takes it out (not when another
     * worker, or the health checks, already had); the health thread says
     * when the cooldown is over. */
    if (backend_server_set(server, BACKEND_PASSIVE_DOWN, true)) {
        snprintf(cause, sizeof(cause), "passive: %u connect failures in a row, last: %s", run,
                 why);
        backend_server_log_change(server, false, cause);
    }
}

void backend_server_connected(struct backend_server *server)
{
    if (atomic_load_explicit(&server->consecutive_failures, memory_order_relaxed) != 0)
        atomic_store(&server->consecutive_failures, 0);
}

void backend_server_release(struct backend_server *server)
{
    if (server == NULL)
        return;
    atomic_fetch_sub(&server->active, 1);
    backend_server_unref(server);
}

/* ---- picking ------------------------------------------------------------------ */

/* next_random is a per-thread xorshift64*: random_two needs no quality. */
static uint64_t next_random(void)
{
    static _Thread_local uint64_t state;
    if (state == 0)
        state = clock_now_us() | 1;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * UINT64_C(2685821657736338717);
}

struct backend_server *backend_group_pick(struct backend_group *group,
                                          const struct cfg_backend *cfg, int family,
                                          struct backend_server *const *tried, size_t num_tried,
                                          enum backend_pick_result *out_result)
{
    struct balance_server view[CFG_GROUP_MAX_SERVERS];
    struct backend_server *chosen = NULL;
    enum balance_outcome outcome;
    uint64_t now = clock_now_ms();

    atomic_fetch_add(&group->readers, 1);
    const struct server_list *list = atomic_load(&group->list);
    size_t num = list->num < CFG_GROUP_MAX_SERVERS ? list->num : CFG_GROUP_MAX_SERVERS;
    for (size_t i = 0; i < num; i++) {
        struct backend_server *s = list->entries[i].server;
        /* A server of another family is left out as if tried. */
        bool tried_it = family != AF_UNSPEC && s->addr.ss.ss_family != family;
        for (size_t t = 0; t < num_tried && !tried_it; t++)
            tried_it = tried[t] == s;
        view[i] = (struct balance_server){
            .weight = list->entries[i].weight,
            .backup = list->entries[i].backup,
            .up = atomic_load_explicit(&s->up, memory_order_relaxed),
            .cooling = atomic_load_explicit(&s->cooldown_until_ms, memory_order_relaxed) > now,
            .tried = tried_it,
            .active = atomic_load_explicit(&s->active, memory_order_relaxed),
        };
    }
    uint64_t ticket = cfg->balance == CFG_BALANCE_RANDOM_TWO
                          ? 0
                          : atomic_fetch_add_explicit(&group->cursor, 1, memory_order_relaxed);
    int index = backend_balance_pick(cfg->balance, cfg->panic, view, num, ticket,
                                     cfg->balance == CFG_BALANCE_RANDOM_TWO ? next_random() : 0,
                                     &outcome);
    if (index >= 0) {
        chosen = list->entries[index].server;
        backend_server_ref(chosen);
        atomic_fetch_add(&chosen->active, 1);
    }
    atomic_fetch_sub(&group->readers, 1);
    *out_result = chosen != NULL  ? BACKEND_PICK_OK
                  : num_tried > 0 ? BACKEND_PICK_EXHAUSTED
                                  : BACKEND_PICK_NONE_UP;
    return chosen;
}

/* ---- lists -------------------------------------------------------------------- */

static struct backend_server *find_in_list(const struct server_list *list,
                                           const struct net_addr *addr)
{
    for (size_t i = 0; list != NULL && i < list->num; i++)
        if (net_addr_equal(&list->entries[i].server->addr, addr))
            return list->entries[i].server;
    return NULL;
}

static void list_free(struct server_list *list)
{
    for (size_t i = 0; list != NULL && i < list->num; i++)
        backend_server_unref(list->entries[i].server);
    free(list);
}

/* rebuild_list publishes a list made from |group|'s sources, keeping the
 * server of an address already listed. Under the mutex. 0 or -1. */
static int rebuild_list(struct backend_group *group)
{
    const struct server_list *old = atomic_load(&group->list);
    size_t num = 0;

    for (size_t i = 0; i < group->num_sources; i++)
        num += group->sources[i].num_addrs;
    if (num > CFG_GROUP_MAX_SERVERS)
        num = CFG_GROUP_MAX_SERVERS;
    struct server_list *list = calloc(1, sizeof(*list) + num * sizeof(list->entries[0]));
    if (list == NULL)
        return -1;
    for (size_t i = 0; i < group->num_sources; i++) {
        const struct group_source *src = &group->sources[i];
        for (size_t a = 0; a < src->num_addrs && list->num < num; a++) {
            struct backend_server *server = find_in_list(list, &src->addrs[a]);
            if (server != NULL)
                continue; /* the same address twice: once is enough */
            if ((server = find_in_list(old, &src->addrs[a])) != NULL)
                backend_server_ref(server);
            else if ((server = server_new(group->name, &src->addrs[a])) == NULL)
                goto fail;
            list->entries[list->num++] = (struct list_entry){
                .server = server, .weight = src->weight, .backup = src->backup};
        }
    }
    struct server_list *retired = atomic_exchange(&group->list, list);
    /* See the header: no reader holds |retired| once |readers| reads 0. */
    while (retired != NULL && atomic_load(&group->readers) != 0)
        sched_yield();
    list_free(retired);
    return 0;
fail:
    list_free(list);
    return -1;
}

/* sources_free frees |num| sources and the array. NULL is allowed (with any
 * |num|): the unwind paths of backend_group_attach pass the array after it
 * was handed to the group, or when copy_sources made none. */
static void sources_free(struct group_source *sources, size_t num)
{
    if (sources == NULL)
        return;
    for (size_t i = 0; i < num; i++) {
        free(sources[i].host);
        free(sources[i].port);
        free(sources[i].addrs);
    }
    free(sources);
}

/* copy_sources makes |group|'s sources from |cfg|'s servers. A host name
 * already resolved by the resolver keeps the addresses it found last when
 * the configuration names it again. 0 or -1. */
static int copy_sources(struct group_source **out, const struct cfg_backend *cfg)
{
    struct group_source *sources =
        calloc(cfg->num_servers ? cfg->num_servers : 1, sizeof(*sources));
    if (sources == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_servers; i++) {
        const struct cfg_server *server = &cfg->servers[i];
        struct group_source *src = &sources[i];
        src->weight = server->weight;
        src->backup = server->backup;
        src->num_addrs = server->num_addrs;
        src->addrs = calloc(server->num_addrs ? server->num_addrs : 1, sizeof(*src->addrs));
        if (src->addrs == NULL ||
            (server->is_name && ((src->host = strdup(server->host)) == NULL ||
                                 (src->port = strdup(server->port)) == NULL))) {
            sources_free(sources, i + 1);
            return -1;
        }
        if (server->num_addrs > 0) /* a name new at a reload has none yet */
            memcpy(src->addrs, server->addrs, server->num_addrs * sizeof(*src->addrs));
    }
    *out = sources;
    return 0;
}

struct backend_group *backend_group_attach(const struct cfg_backend *cfg)
{
    struct backend_group *group;
    struct group_source *sources = NULL;
    char *path = NULL;

    if (copy_sources(&sources, cfg) != 0 ||
        (cfg->check.path != NULL && (path = strdup(cfg->check.path)) == NULL)) {
        sources_free(sources, cfg->num_servers);
        return NULL;
    }
    backend_registry_lock();
    for (group = registry.groups; group != NULL; group = group->next)
        if (strcmp(group->name, cfg->name) == 0)
            break;
    bool made = false;
    if (group == NULL) {
        if ((group = calloc(1, sizeof(*group))) == NULL ||
            (group->name = strdup(cfg->name)) == NULL)
            goto fail;
        made = true;
    }
    sources_free(group->sources, group->num_sources);
    group->sources = sources;
    group->num_sources = cfg->num_servers;
    sources = NULL;
    free(group->check.path);
    group->check = cfg->check;
    group->check.path = path;
    path = NULL;
    group->resolve = cfg->resolve;
    group->resolve_interval_ms = cfg->resolve_interval_ms;
    group->next_resolve_ms = clock_now_ms() + cfg->resolve_interval_ms;
    /* A name new at a reload has no address yet: resolve it now. */
    for (size_t i = 0; i < group->num_sources; i++)
        if (group->sources[i].host != NULL && group->sources[i].num_addrs == 0)
            group->next_resolve_ms = 0;
    if (rebuild_list(group) != 0 && made)
        goto fail;
    if (made) {
        group->next = registry.groups;
        registry.groups = group;
    }
    group->refs++;
    pthread_cond_signal(&registry.wake);
    backend_registry_unlock();
    return group;
fail:
    if (made && group != NULL) {
        sources_free(group->sources, group->num_sources);
        free(group->check.path);
        free(group->name);
        free(group);
    }
    backend_registry_unlock();
    sources_free(sources, cfg->num_servers);
    free(path);
    return NULL;
}

void backend_group_detach(struct backend_group *group)
{
    if (group == NULL)
        return;
    backend_registry_lock();
    if (--group->refs > 0) {
        backend_registry_unlock();
        return;
    }
    for (struct backend_group **at = &registry.groups; *at != NULL; at = &(*at)->next) {
        if (*at == group) {
            *at = group->next;
            break;
        }
    }
    backend_registry_unlock();
    /* No generation holds it, so no worker reads its list any more. */
    list_free(atomic_load(&group->list));
    sources_free(group->sources, group->num_sources);
    free(group->check.path);
    free(group->name);
    free(group);
}

int backend_group_known_addrs(const char *host, const char *port, enum cfg_resolve resolve,
                              struct net_addr **out_addrs, size_t *out_num)
{
    int rc = -1;

    backend_registry_lock();
    for (struct backend_group *g = registry.groups; g != NULL && rc != 0; g = g->next) {
        for (size_t i = 0; i < g->num_sources && rc != 0; i++) {
            const struct group_source *src = &g->sources[i];
            if (src->host == NULL || g->resolve != resolve || src->num_addrs == 0 ||
                strcmp(src->host, host) != 0 || strcmp(src->port, port) != 0)
                continue;
            if ((*out_addrs = calloc(src->num_addrs, sizeof(**out_addrs))) == NULL)
                break;
            memcpy(*out_addrs, src->addrs, src->num_addrs * sizeof(**out_addrs));
            *out_num = src->num_addrs;
            rc = 0;
        }
    }
    backend_registry_unlock();
    return rc;
}

void backend_registry_for_each_server(void (*fn)(struct backend_server *server,
                                                 const struct backend_check_settings *settings,
                                                 void *arg),
                                      void *arg)
{
    for (struct backend_group *g = registry.groups; g != NULL; g = g->next) {
        const struct server_list *list = atomic_load(&g->list);
        struct backend_check_settings settings = {.group_name = g->name,
                                                  .check = g->check,
                                                  .checks_on = g->check.type != CFG_CHECK_NONE};
        for (size_t i = 0; list != NULL && i < list->num; i++)
            fn(list->entries[i].server, &settings, arg);
    }
}

/* ---- the resolver thread ------------------------------------------------------- */

/* due_source finds a host name due for resolution: its group (with a
 * reference) and index, or NULL and when the next one is due. */
static struct backend_group *due_source(uint64_t now, size_t *out_index, uint64_t *out_next)
{
    *out_next = UINT64_MAX;
    for (struct backend_group *g = registry.groups; g != NULL; g = g->next) {
        bool has_names = false;
        for (size_t i = 0; i < g->num_sources; i++)
            has_names = has_names || g->sources[i].host != NULL;
        if (!has_names)
            continue;
        if (g->next_resolve_ms > now) {
            if (g->next_resolve_ms < *out_next)
                *out_next = g->next_resolve_ms;
            continue;
        }
        /* The whole group is resolved in one round: take its first name
         * here, the others follow in the same round (see below). */
        for (size_t i = 0; i < g->num_sources; i++) {
            if (g->sources[i].host != NULL) {
                g->refs++;
                *out_index = i;
                return g;
            }
        }
    }
    return NULL;
}

/* resolve_group resolves every host name of |group|, unlocked while
 * getaddrinfo runs, and publishes a new list if an address changed. A
 * failed resolution keeps the last good addresses (logged:
 * backend_resolve_failed). Called and returns with the mutex held. */
static void resolve_group(struct backend_group *group)
{
    bool changed = false;

    for (size_t i = 0; i < group->num_sources; i++) {
        if (group->sources[i].host == NULL)
            continue;
        char *host = strdup(group->sources[i].host), *port = strdup(group->sources[i].port);
        size_t max = group->resolve == CFG_RESOLVE_FIRST ? 1 : CFG_GROUP_MAX_SERVERS;
        struct net_addr *addrs = NULL;
        size_t num = 0;
        char reason[256] = "out of memory";
        int rc = -1;
        bool had_addrs = group->sources[i].num_addrs > 0;

        backend_registry_unlock();
        if (host != NULL && port != NULL)
            rc = net_resolve_all(host, port, max, &addrs, &num, reason, sizeof(reason));
        if (rc == 0 && num == 0)
            rc = -1, snprintf(reason, sizeof(reason), "no address for '%s'", host);
        if (rc != 0) {
            struct log_line line;
            log_begin(&line, LOG_WARN, "backend_resolve_failed");
            log_str(&line, "backend", group->name);
            log_str(&line, "host", host != NULL ? host : "?");
            log_str(&line, "error", reason);
            log_str(&line, "kept", had_addrs ? "the last good addresses" : "none yet");
            log_end(&line);
        }
        backend_registry_lock();
        /* A reload may have changed the sources meanwhile. */
        struct group_source *src = i < group->num_sources ? &group->sources[i] : NULL;
        if (rc == 0 && src != NULL && src->host != NULL && strcmp(src->host, host) == 0 &&
            strcmp(src->port, port) == 0) {
            bool same = num == src->num_addrs;
            for (size_t a = 0; same && a < num; a++)
                same = net_addr_equal(&addrs[a], &src->addrs[a]);
            if (!same) {
                free(src->addrs);
                src->addrs = addrs;
                src->num_addrs = num;
                addrs = NULL;
                changed = true;
            }
        }
        free(addrs);
        free(host);
        free(port);
    }
    if (changed && rebuild_list(group) != 0)
        log_msg(LOG_ERROR, "backend_resolve_failed", "out of memory publishing group '%s'",
                group->name);
    if (changed) {
        struct log_line line;
        const struct server_list *list = atomic_load(&group->list);
        log_begin(&line, LOG_INFO, "backend_resolved");
        log_str(&line, "backend", group->name);
        log_int(&line, "servers", (long long)list->num);
        log_end(&line);
    }
}

void *backend_resolve_run(void *arg)
{
    (void)arg;
    backend_registry_lock();
    while (!registry.resolver_stop) {
        uint64_t now = clock_now_ms(), next;
        size_t index;
        struct backend_group *group = due_source(now, &index, &next);

        if (group == NULL) {
            /* The condition variable waits on CLOCK_REALTIME (its
             * default); only the wait's length matters here. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t wait_ms = next == UINT64_MAX ? 60 * 1000 : next - now;
            until.tv_sec += (time_t)(wait_ms / 1000);
            until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&registry.wake, &registry.lock, &until);
            continue;
        }
        group->next_resolve_ms = now + group->resolve_interval_ms;
        resolve_group(group);
        backend_registry_unlock();
        backend_group_detach(group);
        backend_registry_lock();
    }
    backend_registry_unlock();
    return NULL;
}

void backend_resolve_stop(void)
{
    backend_registry_lock();
    registry.resolver_stop = true;
    pthread_cond_signal(&registry.wake);
    backend_registry_unlock();
}

/* ---- /backends and metrics ----------------------------------------------------- */

/* escaped writes |text| (a unix path may hold anything) as the body of a
 * JSON string, which also suits a Prometheus label value, into |out|. */
static const char *escaped(const char *text, char *out, size_t out_len)
{
    log_escape(out, out_len, text, strlen(text), LOG_ESCAPE_JSON, NULL);
    return out;
}

int backend_group_render_json(struct evbuffer *out)
{
    int rc = 0;

    backend_registry_lock();
    rc |= evbuffer_add_printf(out, "[") < 0;
    for (struct backend_group *g = registry.groups; g != NULL; g = g->next) {
        const struct server_list *list = atomic_load(&g->list);
        static const char *const check_names[] = {"none", "tcp", "http"};
        rc |= evbuffer_add_printf(out, "%s{\"name\":\"%s\",\"check\":\"%s\",\"servers\":[",
                                  g == registry.groups ? "" : ",", g->name,
                                  check_names[g->check.type]) < 0;
        for (size_t i = 0; list != NULL && i < list->num; i++) {
            const struct backend_server *s = list->entries[i].server;
            bool up = atomic_load(&s->up);
            bool cooling = atomic_load(&s->cooldown_until_ms) > clock_now_ms();
            uint64_t checked = atomic_load(&s->last_check_unix_ms);
            char last[32] = "null", name[NET_ADDR_TEXT_MAX * 6];
            if (checked != 0)
                snprintf(last, sizeof(last), "%" PRIu64 ".%03u", checked / 1000,
                         (unsigned)(checked % 1000));
            rc |= evbuffer_add_printf(
                      out,
                      "%s{\"address\":\"%s\",\"state\":\"%s\",\"reason\":\"%s\","
                      "\"last_check\":%s,\"weight\":%u,\"backup\":%s,\"active\":%" PRId64
                      ",\"connect_failures\":%" PRIu64 "}",
                      i == 0 ? "" : ",", escaped(s->name, name, sizeof(name)),
                      !up       ? "down"
                      : cooling ? "cooldown"
                                : "up",
                      s->reason, last, list->entries[i].weight,
                      list->entries[i].backup ? "true" : "false",
                      (int64_t)atomic_load(&s->active),
                      (uint64_t)atomic_load(&s->connect_failures)) < 0;
        }
        rc |= evbuffer_add_printf(out, "]}") < 0;
    }
    rc |= evbuffer_add_printf(out, "]\n") < 0;
    backend_registry_unlock();
    return rc ? -1 : 0;
}

int backend_group_render_metrics(struct evbuffer *out)
{
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        {"tlsterm_backend_server_up", "gauge",
         "1 when the server takes new connections (checks up, no passive cooldown)"},
        {"tlsterm_backend_server_connections_active", "gauge",
         "Connections (tcp mode) or requests (http mode) on the server now"},
        {"tlsterm_backend_server_connect_failures_total", "counter",
         "Connects to the server that failed or timed out"},
    };
    int rc = 0;

    backend_registry_lock();
    for (size_t f = 0; f < 3; f++) {
        rc |= evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name,
                                  families[f].help, families[f].name, families[f].type) < 0;
        for (struct backend_group *g = registry.groups; g != NULL; g = g->next) {
            const struct server_list *list = atomic_load(&g->list);
            for (size_t i = 0; list != NULL && i < list->num; i++) {
                const struct backend_server *s = list->entries[i].server;
                char name[NET_ADDR_TEXT_MAX * 6];
                uint64_t value;
                if (f == 0)
                    value = atomic_load(&s->up) &&
                            atomic_load(&s->cooldown_until_ms) <= clock_now_ms();
                else if (f == 1)
                    value = (uint64_t)atomic_load(&s->active);
                else
                    value = atomic_load(&s->connect_failures);
                rc |= evbuffer_add_printf(out, "%s{backend=\"%s\",server=\"%s\"} %" PRIu64 "\n",
                                          families[f].name, g->name,
                                          escaped(s->name, name, sizeof(name)), value) < 0;
            }
        }
    }
    backend_registry_unlock();
    return rc ? -1 : 0;
}
