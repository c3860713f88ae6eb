/* tls_cert: one server certificate entry (chain, key, OCSP staple), loaded
 * and checked once when a configuration loads, then shared read-only by every
 * handshake of its listener.
 *
 * Loading refuses what would fail clients: a key that does not match, a
 * chain out of order (each certificate must be issued and signed by the
 * next), a leaf without SAN names, an expired leaf (unless allow_expired), and
 * an OCSP response that is unusable (wrong certificate, revoked, error
 * status). What only deserves attention (a leaf not yet valid or expiring
 * within expiry_warning, an OCSP response past its nextUpdate) is logged by
 * tls_cert_warn, at start and daily. */
#ifndef TLSTERM_TLS_CERT_H
#define TLSTERM_TLS_CERT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>

#include "config.h"
#include "file.h"

#define TLS_CERT_TIME_TEXT_MAX 32
#define TLS_CERT_SUBJECT_MAX 256
#define TLS_CERT_SERIAL_MAX 48 /* 20 bytes of serial (RFC 5280) in hex, and more */

/* struct tls_cert is one loaded entry. It owns everything it points to,
 * except |cfg|, the entry of the configuration it came from. */
struct tls_cert {
    const struct cfg_cert *cfg;
    CRYPTO_BUFFER **chain; /* leaf first */
    size_t num_chain;
    EVP_PKEY *key;
    char **dns_names; /* SAN DNS names, lower case */
    size_t num_dns_names;
    int64_t not_before; /* the leaf's validity, seconds since the epoch */
    int64_t not_after;
    char not_after_text[TLS_CERT_TIME_TEXT_MAX]; /* "2029-02-28 12:00:00 UTC" */
    char not_before_text[TLS_CERT_TIME_TEXT_MAX];
    char subject[TLS_CERT_SUBJECT_MAX]; /* RFC 2253 */
    char serial[TLS_CERT_SERIAL_MAX];   /* upper-case hex, for metrics labels */
    /* For the PROXY protocol's SSL TLV (proxy_header.c): how the leaf is
     * signed ("RSA-SHA256", OpenSSL's short name) and its key ("RSA2048",
     * "EC256", "ED25519"). */
    char sig_alg[32];
    char key_alg[16];
    uint8_t *ocsp;                      /* DER OCSP response; NULL: none */
    size_t ocsp_len;
    bool ocsp_has_next_update;
    int64_t ocsp_next_update;
};

/* tls_cert_load fills |cert| (zeroed by the caller) from |cfg| under the
 * settings of |listener| (allow_expired), checking everything above at time
 * |now|. It returns 0, or -1 after writing each problem as "FILE:LINE:COL:
 * message" to |errors|; tls_cert_cleanup releases |cert| either way. */
int tls_cert_load(struct tls_cert *cert, const struct cfg_cert *cfg,
                  const struct cfg_listener *listener, int64_t now, FILE *errors);

/* tls_cert_cleanup releases what |cert| owns. */
void tls_cert_cleanup(struct tls_cert *cert);

/* tls_cert_has_name returns true if |sni| (any case) equals one of |cert|'s
 * SAN DNS names, or with |wildcard| matches a "*.example.com" name, whose
 * star stands for exactly one label. */
bool tls_cert_has_name(const struct tls_cert *cert, const char *sni, bool wildcard);

/* tls_cert_ocsp_fresh returns true if |cert| has an OCSP response to staple
 * at time |now|: one whose nextUpdate, if any, has not passed. */
bool tls_cert_ocsp_fresh(const struct tls_cert *cert, int64_t now);

/* tls_cert_warn logs, for |listener|'s |cert| at time |now|, a
 * "certificate_expiry" warning if the leaf is expired, not yet valid or
 * expires within expiry_warning, and an "ocsp_stale" warning if its OCSP
 * response is past its nextUpdate. */
void tls_cert_warn(const struct tls_cert *cert, const struct cfg_listener *listener,
                   int64_t now);

/* tls_cert_open_pem reads the PEM file |path| whole into |out_pem| and
 * returns a memory BIO over it, owned by the caller, who frees the BIO and
 * then calls file_contents_cleanup(|out_pem|). It returns NULL after writing
 * "FILE:LINE:COL: cannot read WHAT file 'PATH': why" for |pos| to |errors|
 * (for a FIFO or anything else not a regular file, too). */
BIO *tls_cert_open_pem(const char *path, const char *what, const struct cfg_pos *pos,
                       struct file_contents *out_pem, FILE *errors);

/* tls_cert_format_subject writes |x509|'s subject (RFC 2253) into |out| and
 * returns |out| ("" if it cannot be formatted). */
const char *tls_cert_format_subject(X509 *x509, char *out, size_t out_len);

/* tls_cert_error_text returns BoringSSL's reason for the newest queued
 * error, or |fallback| when the queue is empty, and empties the queue. */
const char *tls_cert_error_text(const char *fallback);

#endif
