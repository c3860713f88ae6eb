/* config_redirect: the settings of the edge's plain-HTTP side:
 *
 *   - name: plain
 *     mode: redirect
 *     listen: ["0.0.0.0:80"]
 *     redirect: {status: 308, port: 443}
 *     http: {max_request_header_bytes: 64KiB}
 *     timeouts: {request_header: 10s, idle: 300s}
 *
 * and HSTS on an http-mode listener:
 *
 *     http: {hsts: {max_age: 365d, include_subdomains: false, preload: false}}
 *
 * A redirect listener speaks plain HTTP and answers every request itself,
 * so its schema is a table of its own (chosen by its mode, wherever "mode"
 * stands): tls and backend are not required there but refused, as are the
 * keys that would have no effect, each with why. Kept apart from config.c
 * as config_http.c is; it uses the schema machinery of config_internal.h. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* HSTS max_age: up to ten years (browsers cap it far lower; more is a typo). */
#define HSTS_MAX_AGE_MAX_MS (UINT64_C(3650) * CFG_DAY_MS)

bool cfg_is_redirect(const struct ynode *listener_node)
{
    const struct ynode *mode = yamltree_get(listener_node, "mode");
    const char *text = mode != NULL ? yamltree_scalar(mode) : NULL;

    return text != NULL && strcmp(text, "redirect") == 0;
}

void cfg_refuse_redirect(struct loader *ld, const struct field *field,
                         const struct ynode *value, void *out)
{
    /* Reported at its key by cfg_check_not_redirect. */
}

void cfg_check_not_redirect(struct loader *ld, const struct ynode *listener_node)
{
    for (size_t i = 0; i < yamltree_num_items(listener_node); i++) {
        const struct ynode *key = yamltree_key(listener_node, i);
        if (strcmp(yamltree_scalar(key), "redirect") == 0)
            cfg_fail_at(ld, key,
                        "redirect settings need mode: redirect: this listener terminates TLS, "
                        "where 'redirect' has no effect; remove it, or make a listener of its "
                        "own with 'mode: redirect' (and no tls or backend)");
    }
}

/* ---- the redirect listener -------------------------------------------------------- */

/* refused is the handler of a key a redirect listener has no use for: it
 * takes nothing, and cfg_check_redirect reports the key with why. */
static void refused(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out)
{
}

/* The keys refused on a redirect listener ("" is the listener itself), and
 * why. */
static const struct {
    const char *section;
    const char *key;
    const char *why;
} refusals[] = {
    {"", "tls",
     "a redirect listener speaks plain HTTP: 'tls' has no place here; remove it (HTTPS is "
     "served by a listener with mode http or tcp)"},
    {"", "backend",
     "a redirect listener answers every request itself: 'backend' has no place here; remove "
     "it"},
    {"http", "hsts",
     "hsts is never sent over plain HTTP (RFC 6797 7.2), so a redirect listener has none; set "
     "it on the listener with mode http that serves the HTTPS side"},
    {"", "http2", NULL},
    {"http", "x_forwarded", NULL},
    {"http", "forwarded", NULL},
    {"http", "trusted_proxies", NULL},
    {"http", "request_id", NULL},
    {"http", "client_cert_header", NULL},
    {"timeouts", "handshake", NULL},
    {"timeouts", "connect", NULL},
    {"timeouts", "half_closed", NULL},
    {"timeouts", "backend_response", NULL},
    {"timeouts", "queue", NULL},
};

void cfg_check_redirect(struct loader *ld, const struct ynode *mapping, const char *section)
{
    if (yamltree_kind(mapping) != YNODE_MAPPING)
        return;
    for (size_t i = 0; i < yamltree_num_items(mapping); i++) {
        const struct ynode *key = yamltree_key(mapping, i);
        const char *name = yamltree_scalar(key);

        if (section[0] == '\0' &&
            (strcmp(name, "http") == 0 || strcmp(name, "timeouts") == 0)) {
            cfg_check_redirect(ld, yamltree_item(mapping, i), name);
            continue;
        }
        for (size_t r = 0; r < sizeof(refusals) / sizeof(refusals[0]); r++) {
            if (strcmp(refusals[r].section, section) != 0 || strcmp(refusals[r].key, name) != 0)
                continue;
            if (refusals[r].why != NULL)
                cfg_fail_at(ld, key, "%s", refusals[r].why);
            else
                cfg_fail_at(
                    ld, key,
                    "'%s%s%s' has no effect on a redirect listener, which answers every "
                    "request itself; remove it",
                    section, section[0] != '\0' ? "." : "", name);
        }
    }
}

static void apply_status(struct loader *ld, const struct field *field,
                         const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "301, 302, 307 or 308");

    if (text == NULL)
        return;
    if (strcmp(text, "301") == 0 || strcmp(text, "302") == 0 || strcmp(text, "307") == 0 ||
        strcmp(text, "308") == 0)
        *(uint16_t *)out = (uint16_t)atoi(text);
    else
        cfg_fail_at(ld, value,
                    "invalid redirect status '%s'; allowed: 301, 302, 307, 308 (308 and 307 "
                    "keep the method and body; 301 and 302 may turn a POST into a GET)",
                    text);
}

static void apply_port(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a port");
    uint32_t port;

    if (text != NULL && cfg_parse_uint(ld, field->key, value, text, 1, 65535, &port) == 0)
        *(uint16_t *)out = (uint16_t)port;
}

static const struct field redirect_fields[] = {
    {"status", false, apply_status, offsetof(struct cfg_redirect, status), NULL},
    {"port", false, apply_port, offsetof(struct cfg_redirect, port), NULL},
};
static const struct schema redirect_schema = {"redirect", "in redirect", redirect_fields,
                                              sizeof(redirect_fields) /
                                                  sizeof(redirect_fields[0])};

static const struct field redirect_http_fields[] = {
    {"max_request_header_bytes", false, cfg_apply_max_request_header_bytes,
     offsetof(struct cfg_listener, http) + offsetof(struct cfg_http, max_request_header_bytes),
     NULL},
    {"hsts", false, refused, 0, NULL},
    {"x_forwarded", false, refused, 0, NULL},
    {"forwarded", false, refused, 0, NULL},
    {"trusted_proxies", false, refused, 0, NULL},
    {"request_id", false, refused, 0, NULL},
    {"client_cert_header", false, refused, 0, NULL},
};
static const struct schema redirect_http_schema = {"http", "in http", redirect_http_fields,
                                                   sizeof(redirect_http_fields) /
                                                       sizeof(redirect_http_fields[0])};

static const struct field redirect_timeouts_fields[] = {
    {"request_header", false, cfg_apply_duration,
     offsetof(struct cfg_listener, request_header_timeout_ms), NULL},
    {"idle", false, cfg_apply_duration, offsetof(struct cfg_listener, idle_timeout_ms), NULL},
    {"handshake", false, refused, 0, NULL},
    {"connect", false, refused, 0, NULL},
    {"half_closed", false, refused, 0, NULL},
    {"backend_response", false, refused, 0, NULL},
    {"queue", false, refused, 0, NULL},
};
static const struct schema redirect_timeouts_schema = {
    "timeouts", "in timeouts", redirect_timeouts_fields,
    sizeof(redirect_timeouts_fields) / sizeof(redirect_timeouts_fields[0])};

static void apply_mode(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    *(enum cfg_mode *)out = CFG_MODE_REDIRECT; /* chosen by cfg_is_redirect */
}

static const struct field redirect_listener_fields[] = {
    {"name", true, cfg_apply_name, 0, NULL},
    {"mode", true, apply_mode, offsetof(struct cfg_listener, mode), NULL},
    {"listen", true, cfg_apply_listen, 0, NULL},
    {"redirect", false, cfg_apply_nested, offsetof(struct cfg_listener, redirect),
     &redirect_schema},
    {"http", false, cfg_apply_nested, 0, &redirect_http_schema},
    {"timeouts", false, cfg_apply_nested, 0, &redirect_timeouts_schema},
    {"max_connections", false, cfg_apply_max_connections,
     offsetof(struct cfg_listener, max_connections), NULL},
    {"tls", false, refused, 0, NULL},
    {"backend", false, refused, 0, NULL},
    {"http2", false, refused, 0, NULL},
};
const struct schema cfg_redirect_listener_schema = {
    "listener", "in a redirect listener", redirect_listener_fields,
    sizeof(redirect_listener_fields) / sizeof(redirect_listener_fields[0])};

void config_describe_redirect(const struct cfg_listener *l, FILE *out)
{
    char a[24], b[24];

    fprintf(out, "listener %s:\n", l->name);
    fprintf(out, "  mode: redirect\n");
    if (l->redirect.port == 443)
        fprintf(out, "  redirect: %u to https://HOST/PATH\n", l->redirect.status);
    else
        fprintf(out, "  redirect: %u to https://HOST:%u/PATH\n", l->redirect.status,
                l->redirect.port);
    config_describe_listen(l, out);
    fprintf(out, "  http.max_request_header_bytes: %s\n",
            cfg_format_size(l->http.max_request_header_bytes, a, sizeof(a)));
    fprintf(out, "  timeouts: request_header %s, idle %s\n",
            cfg_format_duration(l->request_header_timeout_ms, a, sizeof(a)),
            cfg_format_duration(l->idle_timeout_ms, b, sizeof(b)));
}

/* ---- HSTS ------------------------------------------------------------------------ */

static void apply_max_age(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a duration");
    uint64_t ms;

    if (text == NULL)
        return;
    /* "0" is how a site tells browsers to forget its policy (RFC 6797 6.1.1). */
    if (strcmp(text, "0") == 0) {
        *(uint64_t *)out = 0;
        return;
    }
    if (cfg_parse_duration_max(text, HSTS_MAX_AGE_MAX_MS, &ms) != 0 || ms % 1000 != 0)
        cfg_fail_at(
            ld, value,
            "invalid duration '%s' for 'max_age'; expected whole seconds with a unit s, "
            "m, h or d, at most 3650d (e.g. 365d), or 0 to make browsers forget the "
            "policy",
            text);
    else
        *(uint64_t *)out = ms / 1000;
}

static const struct field hsts_fields[] = {
    {"max_age", true, apply_max_age, offsetof(struct cfg_hsts, max_age_s), NULL},
    {"include_subdomains", false, cfg_apply_bool, offsetof(struct cfg_hsts, include_subdomains),
     NULL},
    {"preload", false, cfg_apply_bool, offsetof(struct cfg_hsts, preload), NULL},
};
static const struct schema hsts_schema = {"hsts", "in hsts", hsts_fields,
                                          sizeof(hsts_fields) / sizeof(hsts_fields[0])};

/* warn_preload logs that |hsts| at |node| asks for preload without
 * includeSubDomains: the preload list refuses such a site. */
static void warn_preload(const struct loader *ld, const struct ynode *node)
{
    struct cfg_pos pos = cfg_pos_of(ld, node);
    struct log_line line;
    char where[512];

    if (!log_enabled(LOG_WARN))
        return;
    snprintf(where, sizeof(where), "%s:%d:%d", pos.file, pos.line, pos.col);
    log_begin(&line, LOG_WARN, "hsts_preload");
    log_str(&line, "where", where);
    log_str(&line, "msg",
            "hsts.preload is set without include_subdomains: the HSTS preload list "
            "(hstspreload.org) requires includeSubDomains; set include_subdomains: true");
    log_end(&line);
}

void cfg_apply_hsts(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out)
{
    struct cfg_hsts *hsts = out;
    int num_errors = ld->num_errors;
    char text[64];

    if (!cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        return;
    cfg_apply_mapping(ld, &hsts_schema, value, hsts);
    if (ld->num_errors != num_errors)
        return;
    snprintf(text, sizeof(text), "max-age=%" PRIu64 "%s%s", hsts->max_age_s,
             hsts->include_subdomains ? "; includeSubDomains" : "",
             hsts->preload ? "; preload" : "");
    free(hsts->value);
    hsts->value = cfg_dup_string(ld, value, text);
    if (hsts->preload && !hsts->include_subdomains)
        warn_preload(ld, yamltree_get(value, "preload"));
}
