/* report_only: would a ClientHello pass a candidate policy?
 *
 * A listener's "tls.report_only" names a policy it does not enforce: every
 * ClientHello is also judged against it, and a client that completes the
 * real handshake but would fail the candidate is counted and logged as
 * policy_would_fail (conn.c). It answers "who breaks if I switch this
 * listener to TLS 1.3 only?" before switching, as CSP's report-only mode
 * does for web pages.
 *
 * The verdict follows BoringSSL's own server-side negotiation, in its order:
 * the version first (the highest of the candidate's that the client lists in
 * supported_versions, or, without that extension, legacy_version and below,
 * capped at TLS 1.2), then the cipher suite, then the group. In TLS 1.3 a
 * client needs one of the three TLS 1.3 suites and one of the candidate's
 * groups in supported_groups (a key_share without it only costs a
 * HelloRetryRequest). In TLS 1.2 and below it needs one of the candidate's
 * suites for that version whose authentication fits the certificate's key,
 * and an ECDHE suite also needs a group in common: BoringSSL drops ECDHE
 * suites without one, so that too is no_shared_cipher. Everything else
 * (signature algorithms, ALPN, SNI, client certificates) is the same under
 * both policies and left to the real handshake. */
#ifndef TLSTERM_REPORT_ONLY_H
#define TLSTERM_REPORT_ONLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"
#include "reason.h"

/* struct report_only_hello is what the verdict reads from a ClientHello: the
 * client's bytes, unparsed and untrusted. A NULL extension body (with its
 * length 0) means the extension is absent. */
struct report_only_hello {
    uint16_t legacy_version;
    const uint8_t *cipher_suites; /* u16 code points */
    size_t cipher_suites_len;
    const uint8_t *supported_versions; /* extension body: u8 length, u16 list */
    size_t supported_versions_len;
    const uint8_t *supported_groups; /* extension body: u16 length, u16 list */
    size_t supported_groups_len;
};

/* report_only_evaluate returns true if a client offering |hello| would fail
 * |candidate| with a certificate whose key is of |key_type| (EVP_PKEY_RSA,
 * EVP_PKEY_EC, EVP_PKEY_ED25519), and sets |*out_reason| to
 * END_PROTOCOL_VERSION, END_NO_SHARED_CIPHER, END_NO_SHARED_GROUP or, for a
 * malformed list BoringSSL would refuse anyway, END_MALFORMED. It returns
 * false, leaving |*out_reason| alone, when the client would pass. It is pure
 * and allocates nothing. */
bool report_only_evaluate(const struct cfg_candidate_policy *candidate,
                          const struct report_only_hello *hello, int key_type,
                          enum end_reason *out_reason);

/* report_only_evaluate_early is report_only_evaluate for the SSL_CLIENT_HELLO
 * of BoringSSL's early callback. */
bool report_only_evaluate_early(const struct cfg_candidate_policy *candidate,
                                const SSL_CLIENT_HELLO *hello, int key_type,
                                enum end_reason *out_reason);

/* report_only_policy_name returns "intermediate", "modern" or "custom". */
const char *report_only_policy_name(const struct cfg_candidate_policy *candidate);

#endif
