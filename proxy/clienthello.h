/* clienthello: what a client offered in its ClientHello, as a small
 * fixed-size summary, with its JA4 and JA3 fingerprints and the log fields
 * that show them.
 *
 * The summary is filled once, as the ClientHello arrives and before
 * BoringSSL looks into it (see tls_ctx.c), and is kept in the connection so
 * that a later failure can still say what the client offered. It holds no
 * pointers and allocates nothing: it stays valid after BoringSSL frees the
 * hello.
 *
 * Lists keep the client's order and its GREASE values (RFC 8701; see
 * clienthello_is_grease), and are cut at the CLIENTHELLO_MAX_* caps below.
 * Each num_ field is the full count in the hello, GREASE included, so
 * num_X > CLIENTHELLO_MAX_X says the list was cut and by how much. The
 * fingerprints and max_version are computed from the whole hello when the
 * summary is made, never from the cut lists, so they are exact whatever the
 * caps. */
#ifndef TLSTERM_CLIENTHELLO_H
#define TLSTERM_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "log.h"

/* The caps of struct clienthello_summary. Real clients stay under them (a
 * browser offers about 16 cipher suites and 18 extensions); a client beyond
 * them is still summarized, with its lists cut. */
enum {
    CLIENTHELLO_MAX_VERSIONS = 8,
    CLIENTHELLO_MAX_CIPHERS = 32,
    CLIENTHELLO_MAX_GROUPS = 16,
    CLIENTHELLO_MAX_SIGALGS = 24,
    CLIENTHELLO_MAX_EXTENSIONS = 32,
    CLIENTHELLO_MAX_ALPN = 4,       /* ALPN protocol names kept */
    CLIENTHELLO_ALPN_NAME_MAX = 15, /* bytes kept of each */
};

/* Lengths of the fingerprints, without their NUL: JA4 looks like
 * "t13d1516h2_8daaf6152771_e5627efa2ab1", JA3 is 32 hex digits. */
enum { CLIENTHELLO_JA4_LEN = 36, CLIENTHELLO_JA3_LEN = 32 };

/* struct clienthello_summary is what one client offered. Callers read the
 * fields; only clienthello_summarize* write them. */
struct clienthello_summary {
    uint16_t legacy_version; /* ClientHello.legacy_version, e.g. 0x0303 */
    /* max_version is the highest non-GREASE entry of supported_versions,
     * else legacy_version: the best version the client can speak (the one
     * JA4 reports), taken from the whole list. */
    uint16_t max_version;
    /* supported_versions in order; num_versions is 0 when the extension is
     * absent (a client before TLS 1.3 offers legacy_version and below). */
    uint16_t num_versions;
    uint16_t versions[CLIENTHELLO_MAX_VERSIONS];
    uint16_t num_ciphers;
    uint16_t ciphers[CLIENTHELLO_MAX_CIPHERS];
    uint16_t num_groups; /* supported_groups */
    uint16_t groups[CLIENTHELLO_MAX_GROUPS];
    uint16_t num_sigalgs; /* signature_algorithms */
    uint16_t sigalgs[CLIENTHELLO_MAX_SIGALGS];
    uint16_t num_extensions; /* extension types in order */
    uint16_t extensions[CLIENTHELLO_MAX_EXTENSIONS];
    /* ALPN protocol names: alpn[i] holds the first
     * min(alpn_len[i], CLIENTHELLO_ALPN_NAME_MAX) bytes of name i, not
     * NUL-terminated; alpn_len[i] is the name's full length. Names are the
     * client's bytes: escape them before showing them. */
    uint16_t num_alpn;
    uint8_t alpn_len[CLIENTHELLO_MAX_ALPN];
    char alpn[CLIENTHELLO_MAX_ALPN][CLIENTHELLO_ALPN_NAME_MAX];
    /* malformed_extension is the type of the first extension among
     * supported_versions, supported_groups, signature_algorithms, ALPN and
     * ec_point_formats whose body does not parse, when
     * has_malformed_extension; its content is then left out of the lists
     * and fingerprints as if it were empty. Such a hello fails later with a
     * decode_error, and this says why. */
    uint16_t malformed_extension;
    bool has_malformed_extension;
    /* has_sni is true when the server_name extension is present; the name
     * itself comes from SSL_get_servername. */
    bool has_sni;
    /* quic is true for a ClientHello carried by QUIC. tlsterm terminates TLS
     * over TCP only, so it is always false for now; JA4 starts with "q"
     * instead of "t" when it is set. */
    bool quic;
    char ja4[CLIENTHELLO_JA4_LEN + 1];
    uint8_t ja3_md5[16];
};

/* clienthello_is_grease returns true if |value| is one of the sixteen GREASE
 * values of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa), which clients put in
 * their lists to keep servers tolerant and which mean nothing. */
static inline bool clienthello_is_grease(uint16_t value)
{
    return (value & 0x0f0f) == 0x0a0a && (value >> 8) == (value & 0xff);
}

/* clienthello_summarize fills |out| from a ClientHello message body:
 * |client_hello_len| bytes starting at legacy_version, without the 4-byte
 * handshake header (what SSL_CLIENT_HELLO's client_hello field holds). The
 * bytes are untrusted and only read. It returns 0, or -1 when they are not a
 * ClientHello as BoringSSL would accept it: truncated or trailing bytes, a
 * session ID over 32 bytes, an empty or odd-length cipher suite list, no
 * compression method, a malformed or repeated extension. |out| belongs to
 * the caller, holds no pointer into |client_hello|, and is unspecified after
 * -1. It allocates nothing; it uses about 9 KiB of stack
 * and, for a real client, a few microseconds. A hostile hello is bounded to
 * 17 passes over each of its lists (about 1 ms for the 16 KiB BoringSSL
 * accepts). */
int clienthello_summarize(const uint8_t *client_hello, size_t client_hello_len,
                          struct clienthello_summary *out);

/* clienthello_parse splits a ClientHello message body (as for
 * clienthello_summarize) into |out|, the SSL_CLIENT_HELLO that BoringSSL's
 * early callbacks get, with |out->ssl| set to |ssl| and every pointer into
 * |client_hello|, which must outlive |out|. It checks the framing only (the
 * first checks of clienthello_summarize) and returns 0, or -1 when that is
 * wrong. It lets tlsterm read a ClientHello before BoringSSL does (see
 * tls_ctx.c). */
int clienthello_parse(SSL *ssl, const uint8_t *client_hello, size_t client_hello_len,
                      SSL_CLIENT_HELLO *out);

/* clienthello_summarize_early is clienthello_summarize for the
 * SSL_CLIENT_HELLO that BoringSSL passes to the select-certificate callback;
 * it reads |hello|'s parsed fields, which BoringSSL has already checked.
 * Call it from that callback: |hello| is valid only there. It returns 0, or
 * -1 if |hello| is NULL or its fields are malformed. */
int clienthello_summarize_early(const SSL_CLIENT_HELLO *hello, struct clienthello_summary *out);

/* clienthello_ja4 writes |s|'s JA4 fingerprint and a NUL to |out|: JA4 for
 * a TLS client as FoxIO's technical_details/JA4.md specifies it, GREASE
 * ignored everywhere (signature algorithms included). */
void clienthello_ja4(const struct clienthello_summary *s, char out[CLIENTHELLO_JA4_LEN + 1]);

/* clienthello_ja3 writes |s|'s JA3 fingerprint (Salesforce's JA3: the MD5 of
 * version, ciphers, extensions, groups and point formats, GREASE removed) as
 * 32 lower-case hex digits and a NUL to |out|. */
void clienthello_ja3(const struct clienthello_summary *s, char out[CLIENTHELLO_JA3_LEN + 1]);

/* clienthello_log_fields adds what |s| offered to |line|, most useful first,
 * so that a line too long for its buffer loses the least useful: ja4,
 * offered_versions, legacy_version, malformed_extension (only when there
 * is one), alpn, ciphers, groups, sigalgs, extensions, ja3. Lists are
 * comma-separated names in the client's order: IANA names for cipher
 * suites, groups and signature algorithms, "TLSv1.2" style for versions,
 * decimal for extensions, "GREASE" for GREASE values and "0x1234" for values
 * without a name. ALPN names are percent-encoded outside printable ASCII and
 * for ',' and '%', and a name cut to CLIENTHELLO_ALPN_NAME_MAX ends in
 * "...". A list cut by its cap or by its share of the line ends in "+N",
 * N being the entries not shown; alpn is "" when the client sent none.
 * offered_versions is legacy_version alone when the client sent no
 * supported_versions. */
void clienthello_log_fields(struct log_line *line, const struct clienthello_summary *s);

#endif
