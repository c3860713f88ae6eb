/* config_backend: backend groups, the top-level "backends" mapping and a
 * listener's "backend" (a group's name, or an inline mapping of the same
 * keys), parsed by one schema into struct cfg_backend.
 *
 * Host names in server addresses are resolved here when the configuration
 * loads at start and by --check: an unresolvable name is a load error, as
 * in HAProxy's default, so a typo is found before traffic is sent nowhere.
 * A reload runs on the main loop, which must not wait for a name server: it
 * takes the addresses of names already known from backend_group.c
 * (config_set_known_addrs), and a new name gets none here; the resolver
 * thread resolves it right after (backend_group_attach). From then on that
 * thread re-resolves every name each resolve_interval, keeping the last
 * good addresses when a resolution fails.
 *
 * Ownership: config->backends owns every group; a listener borrows its. */
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config_internal.h"
#include "yamltree.h"

#define GROUP_NAME_MAX 64
#define WEIGHT_MAX 256
#define RISE_FALL_MAX 100
#define COUNT_MAX 1000000

static _Atomic(config_known_addrs_fn) known_addrs;

void config_set_known_addrs(config_known_addrs_fn fn) { known_addrs = fn; }

static const struct cfg_backend backend_defaults = {
    .pool_idle_timeout_ms = 2 * 1000,
    .pool_max_idle = 64,
    .retries = 2,
    .resolve_interval_ms = 30 * 1000,
    .check = {.interval_ms = 2 * 1000,
              .timeout_ms = 1000,
              .rise = 2,
              .fall = 3,
              .expect_min = 200,
              .expect_max = 399},
    .passive_cooldown_ms = 10 * 1000,
    .panic = true,
};

static void apply_uint(struct loader *ld, const struct field *field, const struct ynode *value,
                       uint32_t min, uint32_t max, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "an integer");
    if (text != NULL)
        cfg_parse_uint(ld, field->key, value, text, min, max, out);
}

/* apply_count: a count where 0 means "none" or "unlimited", as the key says. */
static void apply_count(struct loader *ld, const struct field *field, const struct ynode *value,
                        void *out)
{
    apply_uint(ld, field, value, 0, COUNT_MAX, out);
}

static void apply_retries(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    apply_uint(ld, field, value, 0, CFG_BACKEND_RETRIES_MAX, out);
}

static void apply_rise_fall(struct loader *ld, const struct field *field,
                            const struct ynode *value, void *out)
{
    apply_uint(ld, field, value, 1, RISE_FALL_MAX, out);
}

static void apply_backend_protocol(struct loader *ld, const struct field *field,
                                   const struct ynode *value, void *out)
{
    static const char *const names[] = {
        [CFG_BACKEND_HTTP1] = "http/1.1", [CFG_BACKEND_H2] = "h2", NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum cfg_backend_protocol *)out = (enum cfg_backend_protocol)chosen;
}

static void apply_balance(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    static const char *const names[] = {[CFG_BALANCE_ROUND_ROBIN] = "round_robin",
                                        [CFG_BALANCE_LEAST_CONN] = "least_conn",
                                        [CFG_BALANCE_RANDOM_TWO] = "random_two",
                                        NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum cfg_balance *)out = (enum cfg_balance)chosen;
}

static void apply_resolve(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    static const char *const names[] = {
        [CFG_RESOLVE_ALL] = "all", [CFG_RESOLVE_FIRST] = "first", NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum cfg_resolve *)out = (enum cfg_resolve)chosen;
}

static void apply_check_type(struct loader *ld, const struct field *field,
                             const struct ynode *value, void *out)
{
    static const char *const names[] = {
        [CFG_CHECK_NONE] = "none", [CFG_CHECK_TCP] = "tcp", [CFG_CHECK_HTTP] = "http", NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum cfg_check_type *)out = (enum cfg_check_type)chosen;
}

static void apply_check_path(struct loader *ld, const struct field *field,
                             const struct ynode *value, void *out)
{
    const char *path = cfg_expect_text(ld, field->key, value, "a string");

    if (path == NULL)
        return;
    /* It goes on a request line: no blanks, no control bytes. */
    for (const char *p = path; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            cfg_fail_at(ld, value,
                        "invalid path '%s'; expected a request target without "
                        "blanks or control characters, starting with '/'",
                        path);
            return;
        }
    }
    if (path[0] != '/') {
        cfg_fail_at(ld, value, "invalid path '%s'; it must start with '/'", path);
        return;
    }
    free(*(char **)out);
    *(char **)out = cfg_dup_string(ld, value, path);
}

/* apply_expect: a status "200" or a range "200-399", from 100 to 599. */
static void apply_expect(struct loader *ld, const struct field *field,
                         const struct ynode *value, void *out)
{
    struct cfg_health_check *check = out;
    const char *text = cfg_expect_text(ld, field->key, value, "a status or a range");
    unsigned lo = 0, hi = 0;
    int used = 0;

    if (text == NULL)
        return;
    if (!((sscanf(text, "%3u-%3u%n", &lo, &hi, &used) == 2 && text[used] == '\0') ||
          (sscanf(text, "%3u%n", &lo, &used) == 1 && text[used] == '\0' && (hi = lo) != 0)) ||
        lo < 100 || hi > 599 || lo > hi || text[0] < '0' || text[0] > '9') {
        cfg_fail_at(ld, value,
                    "invalid expect '%s'; expected a status or a range of statuses from 100 "
                    "to 599 (e.g. 200 or \"200-399\")",
                    text);
        return;
    }
    check->expect_min = (uint16_t)lo;
    check->expect_max = (uint16_t)hi;
}

#define CHECK_OFF(member)                                                                      \
    (offsetof(struct cfg_backend, check) + offsetof(struct cfg_health_check, member))

static const struct field check_fields[] = {
    {"type", true, apply_check_type, CHECK_OFF(type), NULL},
    {"path", false, apply_check_path, CHECK_OFF(path), NULL},
    {"interval", false, cfg_apply_duration, CHECK_OFF(interval_ms), NULL},
    {"timeout", false, cfg_apply_duration, CHECK_OFF(timeout_ms), NULL},
    {"rise", false, apply_rise_fall, CHECK_OFF(rise), NULL},
    {"fall", false, apply_rise_fall, CHECK_OFF(fall), NULL},
    {"expect", false, apply_expect, offsetof(struct cfg_backend, check), NULL},
};
static const struct schema check_schema = {"check", "in health.check", check_fields,
                                           sizeof(check_fields) / sizeof(check_fields[0])};

static const struct field passive_fields[] = {
    {"failures", false, apply_count, offsetof(struct cfg_backend, passive_failures), NULL},
    {"cooldown", false, cfg_apply_duration, offsetof(struct cfg_backend, passive_cooldown_ms),
     NULL},
};
static const struct schema passive_schema = {"passive", "in health.passive", passive_fields, 2};

static const struct field health_fields[] = {
    {"check", false, cfg_apply_nested, 0, &check_schema},
    {"passive", false, cfg_apply_nested, 0, &passive_schema},
    {"panic", false, cfg_apply_bool, offsetof(struct cfg_backend, panic), NULL},
};
static const struct schema health_schema = {"health", "in health", health_fields, 3};

/* backend.pool (http mode): idle backend connections kept per worker and
 * server; max_idle 0 turns pooling off. */
static const struct field pool_fields[] = {
    {"idle_timeout", false, cfg_apply_duration,
     offsetof(struct cfg_backend, pool_idle_timeout_ms), NULL},
    {"max_idle", false, apply_count, offsetof(struct cfg_backend, pool_max_idle), NULL},
};
static const struct schema pool_schema = {"pool", "in pool", pool_fields, 2};

/* resolve_server fills |server|'s addresses from its address text. */
static void resolve_server(struct loader *ld, const struct ynode *node,
                           struct cfg_server *server, enum cfg_resolve resolve)
{
    struct net_addr addr;
    char reason[256];
    const char *port = strrchr(server->address, ':');

    /* Port 0 asks the kernel for any port when listening; a connect to it
     * always fails, so the server could never be reached. */
    if (strncmp(server->address, "unix:", 5) != 0 && port != NULL && port[1] != '\0' &&
        strspn(port + 1, "0") == strlen(port + 1)) {
        cfg_fail_at(ld, node,
                    "invalid backend server address '%s': port 0 cannot be connected to; give "
                    "the port the server listens on (1 to 65535)",
                    server->address);
        return;
    }
    if (strncmp(server->address, "unix:", 5) == 0 || server->address[0] == '[' ||
        net_addr_parse_numeric(server->address, &addr) == 0) {
        if (net_addr_parse(server->address, true, &addr, reason, sizeof(reason)) != 0) {
            cfg_fail_at(ld, node, "invalid backend server address '%s': %s", server->address,
                        reason);
            return;
        }
        if ((server->addrs = cfg_new_array(ld, node, 1, sizeof(addr))) == NULL)
            return;
        server->addrs[0] = addr;
        server->num_addrs = 1;
        return;
    }
    /* A host name: split, then every address it resolves to. */
    if (net_addr_split(server->address, &server->host, &server->port, reason, sizeof(reason)) !=
        0) {
        cfg_fail_at(ld, node, "invalid backend server address '%s': %s", server->address,
                    reason);
        return;
    }
    server->is_name = true;
    size_t num = 0;
    config_known_addrs_fn known = known_addrs;
    if (known != NULL) {
        /* A reload: the main loop must not wait for a name server. A name
         * the resolver thread knows keeps its addresses; a new one has none
         * until that thread resolves it, at once (backend_group_attach). */
        if (known(server->host, server->port, resolve, &server->addrs, &server->num_addrs) != 0)
            server->num_addrs = 0;
        return;
    }
    if (net_resolve_all(server->host, server->port,
                        resolve == CFG_RESOLVE_FIRST ? 1 : CFG_GROUP_MAX_SERVERS,
                        &server->addrs, &num, reason, sizeof(reason)) != 0) {
        cfg_fail_at(ld, node,
                    "invalid backend server address '%s': %s (a host name must resolve when "
                    "the configuration loads)",
                    server->address, reason);
        return;
    }
    server->num_addrs = num;
}

/* server_entry_fields: the mapping form of a server. */
struct server_entry {
    char *address;
    uint32_t weight;
    bool backup;
};

static void apply_address(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a string");
    if (text != NULL)
        *(char **)out = cfg_dup_string(ld, value, text);
}

static void apply_weight(struct loader *ld, const struct field *field,
                         const struct ynode *value, void *out)
{
    apply_uint(ld, field, value, 1, WEIGHT_MAX, out);
}

static const struct field server_fields[] = {
    {"address", true, apply_address, offsetof(struct server_entry, address), NULL},
    {"weight", false, apply_weight, offsetof(struct server_entry, weight), NULL},
    {"backup", false, cfg_apply_bool, offsetof(struct server_entry, backup), NULL},
};
static const struct schema server_schema = {"server", "in server", server_fields, 3};

/* apply_servers: each entry a string or {address, weight, backup}. */
static void apply_servers(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    struct cfg_backend *group = out;
    size_t num = cfg_list_len(ld, field->key, value, true);
    size_t total = 0;

    if (num == 0)
        return;
    if (num > CFG_GROUP_MAX_SERVERS) {
        cfg_fail_at(ld, value, "too many servers (%zu); a group has at most %d", num,
                    CFG_GROUP_MAX_SERVERS);
        return;
    }
    if ((group->servers = cfg_new_array(ld, value, num, sizeof(*group->servers))) == NULL)
        return;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = cfg_list_item(value, i);
        struct server_entry entry = {.weight = 1};
        struct cfg_server *server = &group->servers[group->num_servers];

        if (yamltree_kind(item) == YNODE_MAPPING) {
            cfg_apply_mapping(ld, &server_schema, item, &entry);
        } else {
            const char *text =
                cfg_expect_text(ld, field->key, item, "a string or a mapping with 'address'");
            if (text != NULL)
                entry.address = cfg_dup_string(ld, item, text);
        }
        if (entry.address == NULL)
            continue;
        const struct ynode *at =
            yamltree_kind(item) == YNODE_MAPPING ? yamltree_get(item, "address") : item;
        server->address = entry.address;
        server->weight = entry.weight;
        server->backup = entry.backup;
        server->pos = cfg_pos_of(ld, at);
        group->num_servers++;
        resolve_server(ld, at, server, group->resolve);
        total += server->num_addrs;
        if (total > CFG_GROUP_MAX_SERVERS) {
            cfg_fail_at(ld, at,
                        "too many servers after resolving '%s' (%zu); a group has at most %d: "
                        "use 'resolve: first'",
                        server->address, total, CFG_GROUP_MAX_SERVERS);
            return;
        }
    }
}

static const struct field backend_fields[] = {
    {"servers", true, apply_servers, 0, NULL},
    {"protocol", false, apply_backend_protocol, offsetof(struct cfg_backend, protocol), NULL},
    {"max_connections", false, apply_count, offsetof(struct cfg_backend, max_connections),
     NULL},
    {"pool", false, cfg_apply_nested, 0, &pool_schema},
    {"source", false, cfg_apply_backend_source, offsetof(struct cfg_backend, source), NULL},
    /* config_proxy.c */
    {"proxy_protocol", false, cfg_apply_proxy_protocol,
     offsetof(struct cfg_backend, proxy_protocol), NULL},
    {"proxy_protocol_unique_id", false, cfg_apply_bool,
     offsetof(struct cfg_backend, proxy_protocol_unique_id), NULL},
    {"proxy_protocol_crc32c", false, cfg_apply_bool,
     offsetof(struct cfg_backend, proxy_protocol_crc32c), NULL},
    {"balance", false, apply_balance, offsetof(struct cfg_backend, balance), NULL},
    {"retries", false, apply_retries, offsetof(struct cfg_backend, retries), NULL},
    {"resolve_interval", false, cfg_apply_duration,
     offsetof(struct cfg_backend, resolve_interval_ms), NULL},
    {"resolve", false, apply_resolve, offsetof(struct cfg_backend, resolve), NULL},
    {"health", false, cfg_apply_nested, 0, &health_schema},
};
static const struct schema backend_schema = {"backend", "in backend", backend_fields,
                                             sizeof(backend_fields) /
                                                 sizeof(backend_fields[0])};

/* new_group appends a group with the defaults to config->backends. */
static struct cfg_backend *new_group(struct loader *ld, const struct ynode *node)
{
    struct config *config = ld->config;
    struct cfg_backend **grown =
        realloc(config->backends, (config->num_backends + 1) * sizeof(*grown));
    struct cfg_backend *group = malloc(sizeof(*group));

    if (grown != NULL)
        config->backends = grown;
    if (grown == NULL || group == NULL) {
        free(group);
        cfg_fail_at(ld, node, "out of memory");
        return NULL;
    }
    *group = backend_defaults;
    group->index = config->num_backends;
    group->pos = cfg_pos_of(ld, node);
    config->backends[config->num_backends++] = group;
    return group;
}

/* parse_group applies |mapping| to a new group. "resolve" is read first:
 * the servers are resolved as it says, wherever it stands. */
static struct cfg_backend *parse_group(struct loader *ld, const struct ynode *mapping)
{
    struct cfg_backend *group = new_group(ld, mapping);
    const struct ynode *resolve = yamltree_get(mapping, "resolve");

    if (group == NULL)
        return NULL;
    if (resolve != NULL && yamltree_kind(resolve) == YNODE_SCALAR &&
        strcmp(yamltree_scalar(resolve), "first") == 0)
        group->resolve = CFG_RESOLVE_FIRST; /* checked again, and reported, in its turn */
    cfg_apply_mapping(ld, &backend_schema, mapping, group);
    cfg_check_proxy_protocol(ld, mapping, group);
    if (group->check.type == CFG_CHECK_HTTP && group->check.path == NULL)
        group->check.path = cfg_dup_string(ld, mapping, "/");
    if (group->check.timeout_ms > group->check.interval_ms &&
        yamltree_get(yamltree_get(mapping, "health"), "check") != NULL)
        cfg_fail_at(ld, yamltree_get(yamltree_get(mapping, "health"), "check"),
                    "health.check.timeout (%ums) is longer than its interval (%ums); make it "
                    "shorter",
                    group->check.timeout_ms, group->check.interval_ms);
    return group;
}

static const struct cfg_backend *find_group(const struct config *config, const char *name)
{
    for (size_t i = 0; i < config->num_backends; i++)
        if (!config->backends[i]->is_inline && strcmp(config->backends[i]->name, name) == 0)
            return config->backends[i];
    return NULL;
}

void cfg_apply_backends(struct loader *ld, const struct ynode *value)
{
    if (!cfg_expect(ld, "backends", value, YNODE_MAPPING, "a mapping of group names"))
        return;
    for (size_t i = 0; i < yamltree_num_items(value); i++) {
        const struct ynode *key = yamltree_key(value, i);
        const struct ynode *mapping = yamltree_item(value, i);
        const char *name = yamltree_scalar(key);
        size_t len =
            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
        const struct cfg_backend *first;

        if (len == 0 || len > GROUP_NAME_MAX || name[len] != '\0') {
            cfg_fail_at(ld, key,
                        "invalid backend group name '%s'; use 1 to %d characters from A-Z, "
                        "a-z, 0-9, '_', '.' and '-'",
                        name, GROUP_NAME_MAX);
            continue;
        }
        if ((first = find_group(ld->config, name)) != NULL) {
            cfg_fail_at(ld, key, "duplicate backend group '%s' (first defined at %d:%d)", name,
                        first->pos.line, first->pos.col);
            continue;
        }
        if (!cfg_expect(ld, name, mapping, YNODE_MAPPING, "a mapping"))
            continue;
        struct cfg_backend *group = parse_group(ld, mapping);
        if (group != NULL)
            group->name = cfg_dup_string(ld, key, name);
    }
}

void cfg_skip_backends(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    (void)ld, (void)field, (void)value, (void)out; /* read first, by cfg_apply_backends */
}

/* apply_group_ref: a group's name, or an inline group, into |*out|. */
static void apply_group_ref(struct loader *ld, const struct field *field,
                            const struct ynode *value, struct cfg_backend **out)
{

    if (yamltree_kind(value) == YNODE_SCALAR) {
        const char *name = yamltree_scalar(value);
        const struct cfg_backend *group = find_group(ld->config, name);
        char known[256] = "";

        if (group != NULL) {
            *out = (struct cfg_backend *)group;
            return;
        }
        for (size_t i = 0; i < ld->config->num_backends; i++) {
            if (ld->config->backends[i]->is_inline || ld->config->backends[i]->name == NULL)
                continue;
            snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
                     known[0] != '\0' ? ", " : "", ld->config->backends[i]->name);
        }
        cfg_fail_at(ld, value, "unknown backend group '%s'; %s%s", name,
                    known[0] != '\0' ? "defined in 'backends': "
                                     : "no group is defined in "
                                       "'backends'",
                    known);
        return;
    }
    if (!cfg_expect(ld, field->key, value, YNODE_MAPPING,
                    "a group name or a mapping with 'servers'"))
        return;
    struct cfg_backend *group = parse_group(ld, value);
    if (group != NULL) {
        group->is_inline = true;
        *out = group;
    }
}

void cfg_apply_listener_backend(struct loader *ld, const struct field *field,
                                const struct ynode *value, void *out)
{
    apply_group_ref(ld, field, value, &((struct cfg_listener *)out)->backend);
}

/* ---- routes ---------------------------------------------------------------------- */

static void apply_route_backend(struct loader *ld, const struct field *field,
                                const struct ynode *value, void *out)
{
    apply_group_ref(ld, field, value, out);
}

static void apply_route_text(struct loader *ld, const struct field *field,
                             const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a string");

    if (text == NULL)
        return;
    for (const char *p = text; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            cfg_fail_at(ld, value, "invalid %s '%s'; no blanks or control characters",
                        field->key, text);
            return;
        }
    }
    if (text[0] == '\0' || (strcmp(field->key, "path_prefix") == 0 && text[0] != '/')) {
        cfg_fail_at(ld, value, "invalid %s '%s'; %s", field->key, text,
                    strcmp(field->key, "path_prefix") == 0 ? "it must start with '/'"
                                                           : "it must not be empty");
        return;
    }
    if (strcmp(field->key, "sni") == 0 &&
        strchr(text + (text[0] == '*' ? 1 : 0), '*') != NULL) {
        cfg_fail_at(ld, value,
                    "invalid sni '%s'; expected a name, or '*.suffix' for any name under it",
                    text);
        return;
    }
    if (strcmp(field->key, "sni") == 0 && text[0] == '*' &&
        (text[1] != '.' || text[2] == '\0')) {
        cfg_fail_at(ld, value,
                    "invalid sni '%s'; expected a name, or '*.suffix' for any name under it",
                    text);
        return;
    }
    char *copy = cfg_dup_string(ld, value, text);
    /* route.h matches names against lower-case patterns. */
    for (char *p = copy; p != NULL && *p != '\0' && strcmp(field->key, "path_prefix") != 0; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    *(char **)out = copy;
}

static const struct field route_fields[] = {
    {"sni", false, apply_route_text, offsetof(struct cfg_route, sni), NULL},
    {"host", false, apply_route_text, offsetof(struct cfg_route, host), NULL},
    {"path_prefix", false, apply_route_text, offsetof(struct cfg_route, path_prefix), NULL},
    {"backend", true, apply_route_backend, offsetof(struct cfg_route, backend), NULL},
};
static const struct schema route_schema = {"route", "in route", route_fields, 4};

void cfg_apply_routes(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out)
{
    struct cfg_listener *listener = out;
    size_t num = cfg_list_len(ld, field->key, value, false);

    if (num == 0 ||
        (listener->routes = cfg_new_array(ld, value, num, sizeof(*listener->routes))) == NULL)
        return;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = yamltree_item(value, i);
        struct cfg_route *route = &listener->routes[listener->num_routes++];

        if (cfg_expect(ld, field->key, item, YNODE_MAPPING, "a mapping"))
            cfg_apply_mapping(ld, &route_schema, item, route);
        route->kind = route->sni != NULL ? ROUTE_SNI : ROUTE_HTTP;
        if (route->backend != NULL)
            route->backend_name = cfg_dup_string(
                ld, item, route->backend->is_inline ? "(inline)" : route->backend->name);
    }
}

void cfg_check_routes(struct loader *ld, const struct ynode *listener_node,
                      const struct cfg_listener *listener)
{
    const struct ynode *routes = yamltree_get(listener_node, "routes");
    const struct ynode *first_sni = NULL, *first_http = NULL;

    for (size_t i = 0; i < listener->num_routes; i++) {
        const struct cfg_route *route = &listener->routes[i];
        const struct ynode *node = yamltree_item(routes, i);
        bool http_kind = route->host != NULL || route->path_prefix != NULL;

        if (route->sni == NULL && !http_kind) {
            /* A match that was written but refused is reported already. */
            if (yamltree_get(node, "sni") != NULL || yamltree_get(node, "host") != NULL ||
                yamltree_get(node, "path_prefix") != NULL)
                continue;
            cfg_fail_at(ld, node,
                        "route matches nothing; give it 'sni' (mode tcp), or 'host' "
                        "and/or 'path_prefix' (mode http)");
            continue;
        }
        if (route->sni != NULL && http_kind) {
            cfg_fail_at(ld, node,
                        "route mixes 'sni' with 'host' or 'path_prefix'; a tcp-mode "
                        "listener routes by sni, an http-mode one by host and path");
            continue;
        }
        if (route->sni != NULL && first_sni == NULL)
            first_sni = node;
        if (http_kind && first_http == NULL)
            first_http = node;
        if (route->sni != NULL && listener->mode != CFG_MODE_TCP)
            cfg_fail_at(ld, yamltree_get(node, "sni"),
                        "sni routes are for mode tcp (decided once per connection); in mode "
                        "http route each request by 'host' and 'path_prefix'");
        else if (http_kind && listener->mode != CFG_MODE_HTTP)
            cfg_fail_at(ld, node,
                        "host and path_prefix routes are for mode http (decided per request); "
                        "in mode tcp route by 'sni'");
        else if (route->backend != NULL && listener->backend != NULL &&
                 (route->backend->source != listener->backend->source ||
                  route->backend->proxy_protocol != listener->backend->proxy_protocol ||
                  route->backend->proxy_protocol_unique_id !=
                      listener->backend->proxy_protocol_unique_id ||
                  route->backend->proxy_protocol_crc32c !=
                      listener->backend->proxy_protocol_crc32c))
            cfg_fail_at(ld, yamltree_get(node, "backend"),
                        "group '%s' differs from the listener's backend '%s' in source or "
                        "proxy_protocol; a listener's groups must agree on them (they decide "
                        "how its client connections are kept and what they carry)",
                        route->backend->name != NULL ? route->backend->name : "(inline)",
                        listener->backend->name != NULL ? listener->backend->name : "(inline)");
        else if (first_sni != NULL && first_http != NULL)
            cfg_fail_at(ld, node,
                        "routes mix sni routes (first at %d:%d) with host and path "
                        "routes; use one kind per listener",
                        yamltree_line(first_sni == node ? first_http : first_sni),
                        yamltree_col(first_sni == node ? first_http : first_sni));
    }
}

void cfg_routes_free(struct cfg_listener *listener)
{
    for (size_t i = 0; i < listener->num_routes; i++) {
        free(listener->routes[i].sni);
        free(listener->routes[i].host);
        free(listener->routes[i].path_prefix);
        free(listener->routes[i].backend_name);
    }
    free(listener->routes);
}

/* name_inline gives the inline |group| (written at |at|) the name |name|,
 * unless a group of 'backends' or another inline group has it already:
 * groups are found by name at run time (backend_group.c's registry), so
 * the two would share one entry and overwrite each other's servers. A
 * name from 'backends' may hold '.' ("edge.route1") or be a listener's, and
 * listener names may hold '.' too, so such clashes can be written. */
static void name_inline(struct loader *ld, const struct ynode *at, struct cfg_backend *group,
                        const char *name, const char *made_how)
{
    for (size_t i = 0; i < ld->config->num_backends; i++) {
        const struct cfg_backend *other = ld->config->backends[i];
        if (other == group || other->name == NULL || strcmp(other->name, name) != 0)
            continue;
        cfg_fail_at(ld, at,
                    "this inline backend is named '%s' (%s), which the %s group at %d:%d "
                    "has too: the two would share one set of servers and health state; rename "
                    "the listener or that group",
                    name, made_how, other->is_inline ? "inline" : "'backends'", other->pos.line,
                    other->pos.col);
        return;
    }
    group->name = cfg_dup_string(ld, at, name);
}

void cfg_name_inline_backend(struct loader *ld, const struct ynode *listener_node,
                             struct cfg_listener *listener)
{
    struct cfg_backend *group = listener->backend;
    const struct ynode *routes = yamltree_get(listener_node, "routes");

    /* A route's inline group is named "LISTENER.routeN" (N from 1). */
    for (size_t i = 0; listener->name != NULL && i < listener->num_routes; i++) {
        struct cfg_backend *route_group = listener->routes[i].backend;
        /* LISTENER_NAME_MAX (64) and the suffix fit: nothing is cut. */
        char name[128];
        if (route_group == NULL || !route_group->is_inline || route_group->name != NULL)
            continue;
        snprintf(name, sizeof(name), "%s.route%zu", listener->name, i + 1);
        name_inline(ld, yamltree_get(yamltree_item(routes, i), "backend"), route_group, name,
                    "a route's inline group is named LISTENER.routeN");
    }

    if (group == NULL || !group->is_inline || listener->name == NULL || group->name != NULL)
        return;
    if (find_group(ld->config, listener->name) != NULL) {
        cfg_fail_at(ld, yamltree_get(listener_node, "backend"),
                    "listener '%s' has an inline backend, and a group of 'backends' has its "
                    "name: the two would share health state; rename one, or write 'backend: "
                    "%s'",
                    listener->name, listener->name);
        return;
    }
    name_inline(ld, yamltree_get(listener_node, "backend"), group, listener->name,
                "a listener's inline group takes the listener's name");
}

void cfg_backend_free(struct cfg_backend *group)
{
    if (group == NULL)
        return;
    for (size_t i = 0; i < group->num_servers; i++) {
        free(group->servers[i].address);
        free(group->servers[i].host);
        free(group->servers[i].port);
        free(group->servers[i].addrs);
    }
    free(group->servers);
    free(group->check.path);
    free(group->name);
    free(group);
}
