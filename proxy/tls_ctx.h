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
#include "tickets.h"
#include "tls_io.h"

struct tls_cert;
struct tls_ctx;

/* tls_ctx_new builds the TLS context for |listener|: it loads every
 * certificate chain and key, checks that each key matches its certificate
 * and applies the policy. Session tickets use |tickets|' keys and are valid
 * for |ticket_lifetime_ms|, or are off when |tickets| is NULL. It returns a
 * new tls_ctx owned by the caller, or NULL after writing every error as
 * "FILE:LINE:COL: message" to |errors|. |listener| and |tickets| must
 * outlive the result. */
struct tls_ctx *tls_ctx_new(const struct cfg_listener *listener, struct tickets *tickets,
                            uint32_t ticket_lifetime_ms, FILE *errors);

/* tls_ctx_free releases |tls|. SSL objects made from it hold their own
 * references, so they may outlive it. NULL is allowed. */
void tls_ctx_free(struct tls_ctx *tls);

/* tls_ctx_new_ssl returns a new server-side SSL on |sock| (see tls_io.h),
 * owned by the caller (SSL_free), or NULL when out of memory. */
SSL *tls_ctx_new_ssl(struct tls_ctx *tls, struct tls_io_socket *sock);

/* tls_ctx_describe writes one line per setting (policy, versions, TLS 1.2
 * suites, groups, ALPN, SNI, client auth, and each certificate with its key
 * type, names, expiry and OCSP status) to |out|, as `tlsterm --check` shows
 * them. */
void tls_ctx_describe(const struct tls_ctx *tls, FILE *out);

/* tls_ctx_warn_expiry logs a "certificate_expiry" warning for each of
 * |tls|'s certificates that is expired (allow_expired), not yet valid or
 * expires within expiry_warning, and an "ocsp_stale" warning for each OCSP
 * response past its nextUpdate (no longer stapled). tls_ctx_new calls it once;
 * call it daily while running. Thread-safe: it only reads |tls|. NULL (a
 * redirect listener's) is allowed. */
void tls_ctx_warn_expiry(const struct tls_ctx *tls);

/* tls_ctx_peer_subject writes the subject of the client's certificate
 * (RFC 2253, e.g. "CN=alice,O=Example") into |out| and returns |out|, or
 * returns NULL when the client sent none. After a completed handshake on a
 * listener with client_auth, a certificate that is there was verified
 * against client_auth.ca (and .crl); after a failed one it may be the
 * certificate that was refused. A subject longer than |out_len| is cut. */
const char *tls_ctx_peer_subject(const SSL *ssl, char *out, size_t out_len);

#define TLS_CTX_SAN_MAX 16
#define TLS_CTX_SAN_TEXT_MAX 512

/* struct tls_ctx_san is the subjectAltName entries of a client certificate,
 * each "TYPE:value" ("DNS:a.example", "IP:192.0.2.1", "email:x@example",
 * "URI:spiffe://x"). It owns its text: |names| point into |text|, so it
 * lives as long as the caller keeps it (on its stack, typically). The
 * values are the client's bytes, unescaped. */
struct tls_ctx_san {
    const char *names[TLS_CTX_SAN_MAX];
    size_t num_names;
    char text[TLS_CTX_SAN_TEXT_MAX]; /* the names, each NUL-terminated */
    size_t text_len;
};

/* tls_ctx_peer_san fills |out| with the client certificate's DNS, IP, email
 * and URI names, in certificate order (other types are skipped, and names
 * beyond TLS_CTX_SAN_MAX or TLS_CTX_SAN_TEXT_MAX bytes are left out whole).
 * It returns 0, or -1 when the client sent no certificate. Verified as for
 * tls_ctx_peer_subject. */
int tls_ctx_peer_san(const SSL *ssl, struct tls_ctx_san *out);

/* tls_ctx_num_certs returns how many certificates |tls| serves (0 for NULL,
 * a redirect listener's), and
 * tls_ctx_cert the |i|th, owned by |tls| (see tls_cert.h). */
size_t tls_ctx_num_certs(const struct tls_ctx *tls);
const struct tls_cert *tls_ctx_cert(const struct tls_ctx *tls, size_t i);

/* tls_ctx_covers says whether the certificate |ssl| was served names
 * |host| (a DNS name; IP literals are not checked). */
bool tls_ctx_covers(const SSL *ssl, const char *host);

/* tls_ctx_served_cert returns the certificate |ssl| was served (owned by
 * its tls_ctx), or NULL before one was chosen. */
const struct tls_cert *tls_ctx_served_cert(const SSL *ssl);

/* tls_version_name returns "TLSv1.2" style names for a protocol version. */
const char *tls_version_name(uint16_t version);

#endif
