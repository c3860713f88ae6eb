/* route: a listener's routing table (listeners[].routes), first match wins.
 *
 * A table is of one kind. In tcp mode each route names an SNI, and the
 * backend of a connection is chosen once, from its ClientHello. In HTTP mode
 * each route names a host (the request's authority, port removed) and/or a
 * path prefix, and the backend is chosen per request; there SNI only picks
 * the certificate. Mixing the kinds is a load error (config_routes.c).
 *
 * Names match without regard to case, a trailing dot ignored. A pattern
 * "*.example.com" matches any name that ends in ".example.com" with at least
 * one label before it, however many ("a.example.com", "a.b.example.com"),
 * but not "example.com" itself: routing, unlike a certificate, has no reason
 * to stop at one label. A path prefix matches bytes: "/ops/" matches
 * "/ops/x" but not "/ops"; the query is not part of the path.
 *
 * Ownership. The table and its strings belong to the listener's
 * configuration (config_free frees them); |backend| points into the same
 * configuration. Matching allocates nothing. */
#ifndef TLSTERM_ROUTE_H
#define TLSTERM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

struct cfg_backend;

enum route_kind {
    ROUTE_SNI,  /* tcp mode: |sni| */
    ROUTE_HTTP, /* http mode: |host| and/or |path_prefix| */
};

struct cfg_route {
    enum route_kind kind;
    char *sni;         /* ROUTE_SNI: a name or "*.suffix", lower case */
    char *host;        /* ROUTE_HTTP: a name or "*.suffix", lower case; NULL: any */
    char *path_prefix; /* ROUTE_HTTP: NULL: any path */
    char *backend_name;
    struct cfg_backend *backend;
};

/* route_name_matches says whether |name| (|len| bytes, any case, maybe
 * with a trailing dot) matches |pattern| (lower case: a name, or "*." and a
 * suffix). */
bool route_name_matches(const char *pattern, const char *name, size_t len);

/* route_for_sni returns the backend of the first of |routes| whose SNI
 * matches |sni| (NULL: the client sent none, which no route matches), or
 * |fallback|. */
struct cfg_backend *route_for_sni(const struct cfg_route *routes, size_t num_routes,
                                  const char *sni, struct cfg_backend *fallback);

/* route_for_request returns the backend of the first of |routes| that
 * matches the request's |authority| (Host or :authority, with or without a
 * port; NULL: none was sent, which only host-less routes match) and
 * |target| (the origin-form path, with its query), or |fallback|. */
struct cfg_backend *route_for_request(const struct cfg_route *routes, size_t num_routes,
                                      const char *authority, const char *target,
                                      struct cfg_backend *fallback);

/* route_authority_host returns where the host of |authority| starts and
 * sets |*len| to its length: the port and an IPv6 literal's brackets left
 * out. */
const char *route_authority_host(const char *authority, size_t *len);

#endif
