/* route: first-match routing by SNI or by host and path (route.h). */
#include "route.h"

#include <string.h>
#include <strings.h>

bool route_name_matches(const char *pattern, const char *name, size_t len)
{
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t suffix_len = strlen(pattern + 1); /* ".example.com" */
        /* At least one byte of label before the suffix. */
        return len > suffix_len &&
               strncasecmp(name + len - suffix_len, pattern + 1, suffix_len) == 0;
    }
    return strlen(pattern) == len && strncasecmp(name, pattern, len) == 0;
}

struct cfg_backend *route_for_sni(const struct cfg_route *routes, size_t num_routes,
                                  const char *sni, struct cfg_backend *fallback)
{
    if (sni == NULL)
        return fallback;
    size_t len = strlen(sni);
    for (size_t i = 0; i < num_routes; i++) {
        if (routes[i].kind == ROUTE_SNI && route_name_matches(routes[i].sni, sni, len))
            return routes[i].backend;
    }
    return fallback;
}

const char *route_authority_host(const char *authority, size_t *len)
{
    if (authority[0] == '[') {
        const char *end = strchr(authority, ']');
        *len = end != NULL ? (size_t)(end - authority - 1) : strlen(authority + 1);
        return authority + 1;
    }
    const char *colon = strrchr(authority, ':');
    *len = colon != NULL ? (size_t)(colon - authority) : strlen(authority);
    return authority;
}

/* path_has_prefix compares |prefix| with |target| up to its query. */
static bool path_has_prefix(const char *target, const char *prefix)
{
    size_t path_len = strcspn(target, "?");
    size_t prefix_len = strlen(prefix);
    return prefix_len <= path_len && memcmp(target, prefix, prefix_len) == 0;
}

struct cfg_backend *route_for_request(const struct cfg_route *routes, size_t num_routes,
                                      const char *authority, const char *target,
                                      struct cfg_backend *fallback)
{
    size_t host_len = 0;
    const char *host = authority != NULL ? route_authority_host(authority, &host_len) : NULL;

    for (size_t i = 0; i < num_routes; i++) {
        const struct cfg_route *r = &routes[i];
        if (r->kind != ROUTE_HTTP)
            continue;
        if (r->host != NULL && (host == NULL || !route_name_matches(r->host, host, host_len)))
            continue;
        if (r->path_prefix != NULL &&
            (target == NULL || !path_has_prefix(target, r->path_prefix)))
            continue;
        return r->backend;
    }
    return fallback;
}
