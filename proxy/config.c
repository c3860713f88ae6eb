/* config: the top level of the schema that turns a yamltree into a struct
 * config (log, workers, listeners, admin, seccomp...), config_load and
 * config_free; each section of its own is in a config_*.c.
 *
 * Each mapping level is a table of fields (key, required, handler, offset of
 * the value in the struct being filled). cfg_apply_mapping (config_schema.c)
 * walks a mapping against its table: unknown and missing keys are reported
 * there, values by their handlers. Every problem is reported once, where it stands, and
 * loading goes on, so an operator sees all of them in one run; config_load
 * returns NULL at the end if anything was reported.
 *
 * Ownership: the config owns every string and array in it. A partly filled
 * config can always be released by config_free: arrays are allocated zeroed
 * and their counts only cover initialised entries. */
#include "config.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_internal.h"
#include "admin.h"
#include "file.h"
#include "yamltree.h"

#define MAX_CONNECTIONS_LIMIT 1000000
#define LISTENER_NAME_MAX 64

static void apply_log_format(struct loader *ld, const struct field *field,
                             const struct ynode *value, void *out)
{
    static const char *const names[] = {
        [LOG_FORMAT_JSON] = "json", [LOG_FORMAT_TEXT] = "text", NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum log_format *)out = (enum log_format)chosen;
}

static void apply_log_level(struct loader *ld, const struct field *field,
                            const struct ynode *value, void *out)
{
    static const char *const names[] = {[LOG_DEBUG] = "debug",
                                        [LOG_INFO] = "info",
                                        [LOG_WARN] = "warn",
                                        [LOG_ERROR] = "error",
                                        NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum log_level *)out = (enum log_level)chosen;
}

/* apply_reload_poll reads reload_poll_interval: a duration, or "0" or "off"
 * for no poll. */
static void apply_reload_poll(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a duration or off");

    if (text == NULL)
        return;
    if (strcmp(text, "0") == 0 || strcmp(text, "off") == 0)
        *(uint32_t *)out = 0;
    else if (config_parse_duration(text, out) != 0)
        cfg_fail_at(ld, value,
                    "invalid duration '%s' for '%s'; expected a whole number above 0 with a "
                    "unit ms, s, m, h or d, at most 24h (e.g. 500ms, 60s), or 0 or off for no "
                    "poll",
                    text, field->key);
}

/* DRAIN_DELAY_MAX_MS bounds drain_delay: a load balancer's health check
 * notices in seconds; a longer delay only holds a stopping process. */
#define DRAIN_DELAY_MAX_MS (10u * 60 * 1000)

/* apply_drain_delay reads drain_delay: "0" (none) or a duration up to
 * DRAIN_DELAY_MAX_MS. */
static void apply_drain_delay(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a duration or 0");
    uint64_t ms;

    if (text == NULL)
        return;
    if (strcmp(text, "0") == 0)
        *(uint32_t *)out = 0;
    else if (cfg_parse_duration_max(text, DRAIN_DELAY_MAX_MS, &ms) == 0)
        *(uint32_t *)out = (uint32_t)ms;
    else
        cfg_fail_at(ld, value,
                    "invalid duration '%s' for '%s'; expected 0 or a whole number above 0 with "
                    "a unit ms, s or m, at most 10m (e.g. 5s)",
                    text, field->key);
}

static void apply_user(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    const char *user = cfg_expect_text(ld, field->key, value, "a string");

    /* Checked now so a typo fails at load, not after binding as root. */
    if (user != NULL && getpwnam(user) == NULL)
        cfg_fail_at(ld, value, "unknown user '%s' for 'user'; it must exist on this system",
                    user);
    else if (user != NULL)
        *(char **)out = cfg_dup_string(ld, value, user);
}

void cfg_apply_name(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out)
{
    struct cfg_listener *listener = out;
    size_t index = (size_t)(listener - ld->config->listeners);
    const char *name = cfg_expect_text(ld, field->key, value, "a string");
    size_t len;

    if (name == NULL)
        return;
    len = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    if (len == 0 || len > LISTENER_NAME_MAX || name[len] != '\0') {
        cfg_fail_at(
            ld, value,
            "invalid listener name '%s'; use 1 to %d characters from A-Z, a-z, 0-9, '_', "
            "'.' and '-'",
            name, LISTENER_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < index; i++) {
        if (ld->config->listeners[i].name != NULL &&
            strcmp(ld->config->listeners[i].name, name) == 0) {
            cfg_fail_at(ld, value, "duplicate listener name '%s' (first defined at %d:%d)",
                        name, ld->name_pos[i].line, ld->name_pos[i].col);
            return;
        }
    }
    listener->name = cfg_dup_string(ld, value, name);
    ld->name_pos[index] = cfg_pos_of(ld, value);
}

/* find_listen_addr returns the listen entry, in any listener up to and
 * including |last|, equal to |addr| (with |overlap|: that |addr| could not be
 * bound beside, see net_addr_overlaps), and its listener in |*out_owner|;
 * NULL if none. Port 0 asks the kernel for a fresh port each time, so it
 * never collides. */
static const struct cfg_listen_addr *find_listen_addr(const struct config *config,
                                                      const struct cfg_listener *last,
                                                      const struct net_addr *addr, bool overlap,
                                                      const struct cfg_listener **out_owner)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr->ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addr->ss;

    if ((addr->ss.ss_family == AF_INET && sin->sin_port == 0) ||
        (addr->ss.ss_family == AF_INET6 && sin6->sin6_port == 0))
        return NULL;
    for (const struct cfg_listener *l = config->listeners; l <= last; l++) {
        for (size_t i = 0; i < l->num_listen; i++) {
            if (overlap ? net_addr_overlaps(&l->listen[i].addr, addr)
                        : net_addr_equal(&l->listen[i].addr, addr)) {
                *out_owner = l;
                return &l->listen[i];
            }
        }
    }
    return NULL;
}

void cfg_apply_listen(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out)
{
    struct cfg_listener *listener = out;
    size_t num = cfg_list_len(ld, field->key, value, true);

    /* Room for two per entry: "*:443" is 0.0.0.0:443 and [::]:443. */
    if (num == 0 ||
        (listener->listen = cfg_new_array(ld, value, 2 * num, sizeof(*listener->listen))) == NULL)
        return;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = cfg_list_item(value, i);
        const char *text = cfg_expect_text(ld, field->key, item, "a string");
        struct net_addr addrs[2];
        size_t num_addrs;
        char reason[256];

        if (text == NULL)
            continue;
        if (net_listen_parse(text, addrs, &num_addrs, reason, sizeof(reason)) != 0) {
            cfg_fail_at(ld, item, "invalid listen address '%s': %s", text, reason);
            continue;
        }
        for (size_t a = 0; a < num_addrs; a++) {
            const struct cfg_listener *owner;
            const struct cfg_listen_addr *first =
                find_listen_addr(ld->config, listener, &addrs[a], false, &owner);
            char addr_text[NET_ADDR_TEXT_MAX];

            if (first != NULL) {
                /* "*:443" names the one of its two addresses taken. */
                if (num_addrs > 1)
                    net_addr_format(&addrs[a], addr_text, sizeof(addr_text));
                cfg_fail_at(ld, item, "duplicate listen address '%s' (first defined at %d:%d)",
                            num_addrs > 1 ? addr_text : text, first->pos.line, first->pos.col);
                continue;
            }
            listener->listen[listener->num_listen].addr = addrs[a];
            listener->listen[listener->num_listen].pos = cfg_pos_of(ld, item);
            listener->num_listen++;
        }
    }
}

void cfg_apply_max_connections(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "an integer");
    if (text != NULL)
        cfg_parse_uint(ld, field->key, value, text, 1, MAX_CONNECTIONS_LIMIT, out);
}

#define WORKERS_MAX 256

static void apply_workers(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "\"auto\" or an integer");

    if (text == NULL)
        return;
    if (strcmp(text, "auto") == 0) /* one per CPU */
        *(uint32_t *)out = 0;
    else if (strspn(text, "0123456789") != strlen(text) || text[0] == '\0')
        cfg_fail_at(ld, value, "invalid workers '%s'; expected \"auto\" (one per CPU) or an "
                    "integer from 1 to %d", text, WORKERS_MAX);
    else
        cfg_parse_uint(ld, field->key, value, text, 1, WORKERS_MAX, out);
}

/* check_alpn_h2 refuses a tcp-mode listener that offers h2 to clients while
 * its backend speaks HTTP/1.1: the bytes reach the backend unchanged, so a
 * client that picks h2 sends an HTTP/2 preface the backend answers with an
 * error, and the client sees an empty reply (hitch's long-standing trap). */
static void check_alpn_h2(struct loader *ld, const struct ynode *listener_node,
                          const struct cfg_listener *listener)
{
    const struct ynode *tls = yamltree_get(listener_node, "tls");
    const struct ynode *alpn = tls != NULL ? yamltree_get(tls, "alpn") : NULL;

    const struct ynode *mode = yamltree_get(listener_node, "mode");
    /* Only a tcp listener passes h2 through; a mistyped mode was reported
     * already, and guessing tcp for it would only add a misleading error. */
    if (mode != NULL &&
        (yamltree_kind(mode) != YNODE_SCALAR || strcmp(yamltree_scalar(mode), "tcp") != 0))
        return;
    if (alpn == NULL || (listener->backend != NULL && listener->backend->protocol == CFG_BACKEND_H2) ||
        yamltree_kind(alpn) == YNODE_MAPPING)
        return;
    for (size_t i = 0; i < (yamltree_kind(alpn) == YNODE_SCALAR ? 1 : yamltree_num_items(alpn));
         i++) {
        const struct ynode *item = cfg_list_item(alpn, i);
        const char *name = yamltree_kind(item) == YNODE_SCALAR ? yamltree_scalar(item) : NULL;
        if (name != NULL && strcmp(name, "h2") == 0)
            cfg_fail_at(ld, item,
                        "alpn offers h2, but the backend gets the client's bytes unchanged and "
                        "speaks HTTP/1.1: a client that picks h2 would get an empty reply; "
                        "remove h2, or set 'backend.protocol: h2' if the backend speaks "
                        "HTTP/2 itself");
    }
}

static const struct field timeouts_fields[] = {
    {"handshake", false, cfg_apply_duration,
     offsetof(struct cfg_listener, handshake_timeout_ms), NULL},
    {"connect", false, cfg_apply_duration, offsetof(struct cfg_listener, connect_timeout_ms),
     NULL},
    {"idle", false, cfg_apply_duration, offsetof(struct cfg_listener, idle_timeout_ms), NULL},
    {"half_closed", false, cfg_apply_duration,
     offsetof(struct cfg_listener, half_closed_timeout_ms), NULL},
    /* http mode only (cfg_check_mode) */
    {"request_header", false, cfg_apply_duration,
     offsetof(struct cfg_listener, request_header_timeout_ms), NULL},
    {"backend_response", false, cfg_apply_duration,
     offsetof(struct cfg_listener, backend_response_timeout_ms), NULL},
    {"queue", false, cfg_apply_duration, offsetof(struct cfg_listener, queue_timeout_ms), NULL},
};
static const struct schema timeouts_schema = {"timeouts", "in timeouts", timeouts_fields, 7};

static void apply_mode(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    static const char *const names[] = {[CFG_MODE_TCP] = "tcp",
                                        [CFG_MODE_HTTP] = "http",
                                        [CFG_MODE_REDIRECT] = "redirect",
                                        NULL};
    int chosen = cfg_choose(ld, field->key, value, names);

    if (chosen >= 0)
        *(enum cfg_mode *)out = (enum cfg_mode)chosen;
}

static const struct field listener_fields[] = {
    {"name", true, cfg_apply_name, 0, NULL},
    {"mode", false, apply_mode, offsetof(struct cfg_listener, mode), NULL},
    {"listen", true, cfg_apply_listen, 0, NULL},
    {"tls", true, cfg_apply_tls, 0, NULL},
    {"backend", true, cfg_apply_listener_backend, 0, NULL},
    {"http", false, cfg_apply_http, offsetof(struct cfg_listener, http), NULL},
    {"http2", false, cfg_apply_http2, offsetof(struct cfg_listener, http2), NULL},
    {"timeouts", false, cfg_apply_nested, 0, &timeouts_schema},
    {"max_connections", false, cfg_apply_max_connections,
     offsetof(struct cfg_listener, max_connections), NULL},
    {"redirect", false, cfg_refuse_redirect, 0, NULL},
    {"accept_proxy", false, cfg_apply_accept_proxy, offsetof(struct cfg_listener, accept_proxy),
     NULL},
    {"routes", false, cfg_apply_routes, 0, NULL},
};
static const struct schema listener_schema = {"listener", "in listener", listener_fields,
                                              sizeof(listener_fields) /
                                                  sizeof(listener_fields[0])};

/* The defaults documented in conf/tlsterm.yaml. */
static const struct cfg_listener listener_defaults = {
    .handshake_timeout_ms = 10 * 1000,
    .connect_timeout_ms = 5 * 1000,
    .idle_timeout_ms = 300 * 1000,
    .half_closed_timeout_ms = 30 * 1000,
    .request_header_timeout_ms = 10 * 1000,
    .backend_response_timeout_ms = 60 * 1000,
    .queue_timeout_ms = 5 * 1000,
    .max_connections = 10000,
    .http = {.x_forwarded = true, .max_request_header_bytes = 64 * 1024},
    .http2 = CFG_HTTP2_DEFAULTS,
    .redirect = {.status = 308, .port = 443},
};

static void apply_listeners(struct loader *ld, const struct field *field,
                            const struct ynode *value, void *out)
{
    struct config *config = out;
    size_t num = cfg_list_len(ld, field->key, value, false);

    if (num == 0 ||
        (config->listeners = cfg_new_array(ld, value, num, sizeof(*config->listeners))) ==
            NULL ||
        (ld->name_pos = cfg_new_array(ld, value, num, sizeof(*ld->name_pos))) == NULL)
        return;
    config->num_listeners = num;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = yamltree_item(value, i);
        struct cfg_listener *listener = &config->listeners[i];

        *listener = listener_defaults;
        cfg_tls_defaults(listener);
        listener->pos = cfg_pos_of(ld, item);
        if (!cfg_expect(ld, field->key, item, YNODE_MAPPING, "a mapping"))
            continue;
        /* A redirect listener has keys of its own (no tls, no backend):
         * its mode chooses the schema, wherever the key stands. */
        if (cfg_is_redirect(item)) {
            cfg_apply_mapping(ld, &cfg_redirect_listener_schema, item, listener);
            cfg_check_redirect(ld, item, "");
            continue;
        }
        cfg_apply_mapping(ld, &listener_schema, item, listener);
        cfg_name_inline_backend(ld, item, listener);
        /* Checks that read several keys, which may come in any order. */
        cfg_check_mode(ld, item, listener);
        cfg_check_routes(ld, item, listener);
        cfg_check_not_redirect(ld, item);
        cfg_check_source(ld, item, listener);
        if (listener->mode == CFG_MODE_TCP)
            check_alpn_h2(ld, item, listener);
    }
}

/* log.handshake_failures: the rate limit of handshake_failed lines. The
 * limits reuse the integer check of max_connections (1 to 1000000). */
static const struct field failure_log_fields[] = {
    {"rate", false, cfg_apply_max_connections, offsetof(struct config, failure_log_rate), NULL},
    {"burst", false, cfg_apply_max_connections, offsetof(struct config, failure_log_burst),
     NULL},
    {"summary_interval", false, cfg_apply_duration,
     offsetof(struct config, failure_log_summary_ms), NULL},
};
static const struct schema failure_log_schema = {"handshake_failures", "in handshake_failures",
                                                 failure_log_fields, 3};

static const struct field log_fields[] = {
    {"format", false, apply_log_format, offsetof(struct config, log_format), NULL},
    {"level", false, apply_log_level, offsetof(struct config, log_level), NULL},
    {"handshake_failures", false, cfg_apply_nested, 0, &failure_log_schema},
    {"access", false, cfg_apply_bool, offsetof(struct config, log_access), NULL},
};
static const struct schema log_schema = {"log", "in log", log_fields, 4};

static void apply_admin_listen(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out)
{
    struct cfg_admin *admin = out;
    const char *text = cfg_expect_text(ld, field->key, value, "a string");
    char reason[256];

    if (text == NULL)
        return;
    if (net_addr_parse(text, false, &admin->addr, reason, sizeof(reason)) != 0) {
        cfg_fail_at(ld, value, "invalid admin listen address '%s': %s", text, reason);
        return;
    }
    admin->enabled = true;
    admin->listen_pos = cfg_pos_of(ld, value);
}

static const struct field admin_fields[] = {
    {"listen", true, apply_admin_listen, offsetof(struct config, admin), NULL},
    {"allow_public", false, cfg_apply_bool,
     offsetof(struct config, admin) + offsetof(struct cfg_admin, allow_public), NULL},
};
static const struct schema admin_schema = {"admin", "in admin", admin_fields, 2};

/* check_admin refuses an admin address other hosts can reach unless the
 * operator wrote allow_public: the endpoint has no authentication. It also
 * refuses a listener's address, which the daemon could not bind twice. */
static void check_admin(struct loader *ld)
{
    const struct config *config = ld->config;
    const struct cfg_admin *admin = &config->admin;
    const struct cfg_listen_addr *taken;
    const struct cfg_listener *owner;
    char text[NET_ADDR_TEXT_MAX];

    if (!admin->enabled)
        return;
    if (!admin->allow_public && !admin_addr_is_local(&admin->addr)) {
        cfg_error(ld->errors, &admin->listen_pos,
                  "admin listen address is not loopback; the admin endpoint has no "
                  "authentication: use 127.0.0.1 or [::1], or set allow_public: true");
        ld->num_errors++;
    }
    if (config->num_listeners > 0 &&
        (taken = find_listen_addr(config, &config->listeners[config->num_listeners - 1],
                                  &admin->addr, true, &owner)) != NULL) {
        char taken_text[NET_ADDR_TEXT_MAX];
        net_addr_format(&admin->addr, text, sizeof(text));
        net_addr_format(&taken->addr, taken_text, sizeof(taken_text));
        if (net_addr_equal(&taken->addr, &admin->addr))
            cfg_error(ld->errors, &admin->listen_pos,
                      "admin listen address '%s' is also a listen address of listener '%s' (at "
                      "%d:%d); give the admin endpoint an address of its own",
                      text, owner->name != NULL ? owner->name : "?", taken->pos.line,
                      taken->pos.col);
        else
            cfg_error(ld->errors, &admin->listen_pos,
                      "admin listen address '%s' cannot be bound beside listen address '%s' of "
                      "listener '%s' (at %d:%d), which takes that port on every address; give "
                      "the admin endpoint a port of its own",
                      text, taken_text, owner->name != NULL ? owner->name : "?",
                      taken->pos.line, taken->pos.col);
        ld->num_errors++;
    }
}

/* apply_seccomp reads security.seccomp: true, false or log. */
static void apply_seccomp(struct loader *ld, const struct field *field, const struct ynode *value,
                          void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "true, false or log");
    enum cfg_seccomp *mode = out;

    if (text == NULL)
        return;
    if (strcmp(text, "true") == 0)
        *mode = CFG_SECCOMP_KILL;
    else if (strcmp(text, "false") == 0)
        *mode = CFG_SECCOMP_OFF;
    else if (strcmp(text, "log") == 0)
        *mode = CFG_SECCOMP_LOG;
    else
        cfg_fail_at(ld, value,
                    "invalid seccomp '%s'; expected true (a system call outside the allow-list "
                    "kills the process), false or log (allowed, and logged by the kernel)",
                    text);
}

static const struct field security_fields[] = {
    {"seccomp", false, apply_seccomp,
     offsetof(struct config, security) + offsetof(struct cfg_security, seccomp), NULL},
};
static const struct schema security_schema = {"security", "in security", security_fields, 1};

static const struct field top_fields[] = {
    {"log", false, cfg_apply_nested, 0, &log_schema},
    {"drain_timeout", false, cfg_apply_duration, offsetof(struct config, drain_timeout_ms),
     NULL},
    {"drain_delay", false, apply_drain_delay, offsetof(struct config, drain_delay_ms), NULL},
    {"user", false, apply_user, offsetof(struct config, user), NULL},
    {"workers", false, apply_workers, offsetof(struct config, num_workers), NULL},
    {"max_connections", false, cfg_apply_max_connections,
     offsetof(struct config, max_connections), NULL},
    {"listeners", true, apply_listeners, 0, NULL},
    {"reload_on_change", false, cfg_apply_bool, offsetof(struct config, reload_on_change),
     NULL},
    {"reload_poll_interval", false, apply_reload_poll, offsetof(struct config, reload_poll_ms),
     NULL},
    {"session_tickets", false, cfg_apply_session_tickets,
     offsetof(struct config, session_tickets), NULL},
    {"admin", false, cfg_apply_nested, 0, &admin_schema},
    {"report", false, cfg_apply_report, offsetof(struct config, report), NULL},
    {"security", false, cfg_apply_nested, 0, &security_schema},
    {"backends", false, cfg_skip_backends, 0, NULL},
    {"instance", false, cfg_apply_instance, offsetof(struct config, report.instance), NULL},
};
static const struct schema top_schema = {"the configuration", "at the top level", top_fields,
                                         sizeof(top_fields) / sizeof(top_fields[0])};

struct config *config_load(const char *path, FILE *errors)
{
    struct loader ld = {.errors = errors};
    struct yamltree *tree = NULL;
    struct config *result = NULL;
    const struct ynode *root;

    ld.config = calloc(1, sizeof(*ld.config));
    if (ld.config == NULL || (ld.config->file = strdup(path)) == NULL) {
        cfg_error(errors, &(struct cfg_pos){path, 1, 1}, "out of memory");
        goto fail;
    }
    ld.config->log_format = LOG_FORMAT_JSON;
    ld.config->log_level = LOG_INFO;
    ld.config->drain_timeout_ms = 30 * 1000;
    ld.config->reload_poll_ms = 60 * 1000;
    ld.config->num_workers = 0;
    ld.config->max_connections = 100000;
    ld.config->log_access = true;
    ld.config->failure_log_rate = 20;
    ld.config->failure_log_burst = 100;
    ld.config->failure_log_summary_ms = 10 * 1000;
    ld.config->session_tickets.enabled = true;
    ld.config->session_tickets.rotate_ms = 60 * 60 * 1000;
    ld.config->session_tickets.lifetime_ms = 12 * 60 * 60 * 1000;
    cfg_report_defaults(&ld.config->report);
    tree = yamltree_load(path, errors);
    if (tree == NULL)
        goto fail;
    root = yamltree_root(tree);
    /* A lone "---" is a document holding one empty scalar: empty too. */
    if (root == NULL ||
        (yamltree_kind(root) == YNODE_SCALAR && yamltree_scalar(root)[0] == '\0')) {
        cfg_error(errors, &(struct cfg_pos){ld.config->file, 1, 1},
                  "the configuration is empty; it needs at least 'listeners'");
        goto fail;
    }
    if (yamltree_kind(root) != YNODE_MAPPING) {
        cfg_fail_at(&ld, root, "expected a mapping at the top level, got %s",
                    yamltree_kind_name(yamltree_kind(root)));
        goto fail;
    }
    /* Groups first, wherever they stand: listeners name them. */
    if (yamltree_get(root, "backends") != NULL)
        cfg_apply_backends(&ld, yamltree_get(root, "backends"));
    cfg_apply_mapping(&ld, &top_schema, root, ld.config);
    check_admin(&ld);
    if (ld.num_errors == 0) {
        result = ld.config;
        ld.config = NULL;
    }
fail:
    SSL_CTX_free(ld.scratch);
    free(ld.name_pos);
    yamltree_free(tree);
    config_free(ld.config);
    return result;
}

void config_print_errors(const char *text, FILE *out)
{
    size_t num_shown = 0, num_left = 0;

    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        if (num_shown < CONFIG_ERRORS_SHOWN) {
            fprintf(out, "%.*s\n", (int)len, line);
            num_shown++;
        } else {
            num_left++;
        }
        line += len + (line[len] == '\n');
    }
    if (num_left > 0)
        fprintf(out, "... and %zu more error%s\n", num_left, num_left == 1 ? "" : "s");
}

void config_for_each_file_at(const struct config *config,
                             void (*fn)(const char *path, const struct cfg_pos *pos, void *arg),
                             void *arg)
{
    for (size_t i = 0; i < config->num_listeners; i++) {
        const struct cfg_listener *l = &config->listeners[i];
        for (size_t j = 0; j < l->num_certs; j++) {
            fn(l->certs[j].cert_path, &l->certs[j].cert_pos, arg);
            fn(l->certs[j].key_path, &l->certs[j].key_pos, arg);
            if (l->certs[j].ocsp_path != NULL)
                fn(l->certs[j].ocsp_path, &l->certs[j].ocsp_pos, arg);
        }
        if (l->client_auth.ca_path != NULL)
            fn(l->client_auth.ca_path, &l->client_auth.ca_pos, arg);
        if (l->client_auth.crl_path != NULL)
            fn(l->client_auth.crl_path, &l->client_auth.crl_pos, arg);
    }
    if (config->session_tickets.key_file != NULL)
        fn(config->session_tickets.key_file, &config->session_tickets.key_file_pos, arg);
}

struct each_file {
    void (*fn)(const char *path, void *arg);
    void *arg;
};

static void call_without_pos(const char *path, const struct cfg_pos *pos, void *arg)
{
    const struct each_file *each = arg;
    each->fn(path, each->arg);
}

void config_for_each_file(const struct config *config, void (*fn)(const char *path, void *arg),
                          void *arg)
{
    struct each_file each = {fn, arg};
    config_for_each_file_at(config, call_without_pos, &each);
}

void config_free(struct config *config)
{
    if (config == NULL)
        return;
    for (size_t i = 0; i < config->num_listeners; i++) {
        struct cfg_listener *listener = &config->listeners[i];
        free(listener->name);
        free(listener->listen);
        cfg_tls_free(listener);
        cfg_routes_free(listener);
        free(listener->http.trusted_proxies);
        free(listener->accept_proxy.from);
        free(listener->http.request_id);
        free(listener->http.hsts.value);
    }
    free(config->listeners);
    for (size_t i = 0; i < config->num_backends; i++)
        cfg_backend_free(config->backends[i]);
    free(config->backends);
    free(config->user);
    free(config->session_tickets.key_file);
    cfg_report_free(&config->report);
    free(config->file);
    free(config);
}
