/* tls_ctx: the TLS side of one listener: an SSL_CTX with the listener's
 * policy (versions, TLS 1.2 suites, groups) and its certificates.
 *
 * Certificates and keys are parsed once, when the configuration loads; every
 * handshake shares them. With several certificates, the candidates are those
 * whose SAN DNS names match the client's SNI exactly, else by a one-label
 * wildcard, else all; of these the first whose key type the client can use
 * (its signature_algorithms and, for TLS 1.2, its cipher suites) is served. */
#ifndef TLSTERM_TLS_CTX_H
#define TLSTERM_TLS_CTX_H

#include <stdio.h>

#include <openssl/ssl.h>

#include "config.h"
#include "tls_io.h"

struct tls_ctx;

/* tls_ctx_new builds the TLS context for |listener|: it loads every
 * certificate chain and key, checks that each key matches its certificate
 * and applies the policy. It returns a new tls_ctx owned by the caller, or
 * NULL after writing every error as "FILE:LINE:COL: message" to |errors|.
 * |listener| must outlive the result. */
struct tls_ctx *tls_ctx_new(const struct cfg_listener *listener, FILE *errors);

/* tls_ctx_free releases |tls|. SSL objects made from it hold their own
 * references, so they may outlive it. NULL is allowed. */
void tls_ctx_free(struct tls_ctx *tls);

/* tls_ctx_new_ssl returns a new server-side SSL on |sock| (see tls_io.h),
 * owned by the caller (SSL_free), or NULL when out of memory. */
SSL *tls_ctx_new_ssl(struct tls_ctx *tls, struct tls_io_socket *sock);

/* tls_ctx_describe writes one line per setting (versions, TLS 1.2
 * suites, groups, certificates with their names and expiry) to |out|, as
 * `tlsterm --check` shows them. */
void tls_ctx_describe(const struct tls_ctx *tls, FILE *out);

/* tls_version_name returns "TLSv1.2" style names for a protocol version. */
const char *tls_version_name(uint16_t version);

#endif
