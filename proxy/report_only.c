/* report_only: a ClientHello against a candidate policy. See report_only.h. */
#include "report_only.h"

#include <openssl/bytestring.h>

/* What BoringSSL assumes a client without supported_versions speaks:
 * legacy_version and the versions below it, TLS 1.2 at most. */
static const uint8_t legacy_versions[] = {0x03, 0x03, 0x03, 0x02, 0x03, 0x01};

static bool list_has_u16(CBS list, uint16_t wanted)
{
    uint16_t value;

    while (CBS_get_u16(&list, &value)) {
        if (value == wanted)
            return true;
    }
    return false;
}

/* client_versions sets |out| to the versions the client speaks, as
 * BoringSSL's negotiate_version reads them. It returns false for a malformed
 * extension. */
static bool client_versions(const struct report_only_hello *hello, CBS *out)
{
    size_t len;

    if (hello->supported_versions != NULL) {
        CBS ext;
        CBS_init(&ext, hello->supported_versions, hello->supported_versions_len);
        return CBS_get_u8_length_prefixed(&ext, out) && CBS_len(&ext) == 0 &&
               CBS_len(out) != 0 && CBS_len(out) % 2 == 0;
    }
    len = hello->legacy_version >= TLS1_2_VERSION   ? 6
          : hello->legacy_version >= TLS1_1_VERSION ? 4
          : hello->legacy_version >= TLS1_VERSION   ? 2
                                                    : 0;
    CBS_init(out, legacy_versions + sizeof(legacy_versions) - len, len);
    return true;
}

/* client_groups sets |out| to the client's supported_groups (empty when
 * absent). It returns false for a malformed extension. */
static bool client_groups(const struct report_only_hello *hello, CBS *out)
{
    CBS ext;

    if (hello->supported_groups == NULL) {
        CBS_init(out, NULL, 0);
        return true;
    }
    CBS_init(&ext, hello->supported_groups, hello->supported_groups_len);
    return CBS_get_u16_length_prefixed(&ext, out) && CBS_len(&ext) == 0 && CBS_len(out) != 0 &&
           CBS_len(out) % 2 == 0;
}

/* shared_group returns true if the client lists one of the candidate's
 * groups (tls1_get_shared_group; no list means none in common). */
static bool shared_group(const struct cfg_candidate_policy *candidate, CBS groups)
{
    for (size_t i = 0; i < candidate->num_groups; i++) {
        if (list_has_u16(groups, candidate->groups[i]))
            return true;
    }
    return false;
}

/* tls12_suite_fits returns true if |suite| can be chosen at |version| with
 * a |key_type| certificate, |ecdhe_ok| saying whether a group is shared. */
static bool tls12_suite_fits(uint16_t suite, uint16_t version, int key_type, bool ecdhe_ok)
{
    const SSL_CIPHER *cipher = SSL_get_cipher_by_value(suite);
    int kx, auth;

    if (cipher == NULL || version < SSL_CIPHER_get_min_version(cipher) ||
        version > SSL_CIPHER_get_max_version(cipher))
        return false;
    kx = SSL_CIPHER_get_kx_nid(cipher);
    auth = SSL_CIPHER_get_auth_nid(cipher);
    if (kx == NID_kx_ecdhe ? !ecdhe_ok : !(kx == NID_kx_rsa && key_type == EVP_PKEY_RSA))
        return false;
    return key_type == EVP_PKEY_RSA ? auth == NID_auth_rsa : auth == NID_auth_ecdsa;
}

bool report_only_evaluate(const struct cfg_candidate_policy *candidate,
                          const struct report_only_hello *hello, int key_type,
                          enum end_reason *out_reason)
{
    static const uint16_t versions[] = {TLS1_3_VERSION, TLS1_2_VERSION, TLS1_1_VERSION,
                                        TLS1_VERSION};
    uint16_t version = 0;
    CBS peer_versions, groups, suites;

    if (!client_versions(hello, &peer_versions) || !client_groups(hello, &groups) ||
        hello->cipher_suites_len == 0 || hello->cipher_suites_len % 2 != 0) {
        *out_reason = END_MALFORMED;
        return true;
    }
    CBS_init(&suites, hello->cipher_suites, hello->cipher_suites_len);
    for (size_t i = 0; i < 4 && version == 0; i++) {
        if (versions[i] >= candidate->min_version && versions[i] <= candidate->max_version &&
            list_has_u16(peer_versions, versions[i]))
            version = versions[i];
    }
    if (version == 0) {
        *out_reason = END_PROTOCOL_VERSION;
        return true;
    }
    if (version == TLS1_3_VERSION) {
        /* BoringSSL enables all three TLS 1.3 suites whatever the policy. */
        if (!list_has_u16(suites, 0x1301) && !list_has_u16(suites, 0x1302) &&
            !list_has_u16(suites, 0x1303)) {
            *out_reason = END_NO_SHARED_CIPHER;
            return true;
        }
        if (!shared_group(candidate, groups)) {
            *out_reason = END_NO_SHARED_GROUP;
            return true;
        }
        return false;
    }
    bool ecdhe_ok = shared_group(candidate, groups);
    for (size_t i = 0; i < candidate->num_suites; i++) {
        if (tls12_suite_fits(candidate->suites[i], version, key_type, ecdhe_ok) &&
            list_has_u16(suites, candidate->suites[i]))
            return false;
    }
    *out_reason = END_NO_SHARED_CIPHER;
    return true;
}

bool report_only_evaluate_early(const struct cfg_candidate_policy *candidate,
                                const SSL_CLIENT_HELLO *hello, int key_type,
                                enum end_reason *out_reason)
{
    struct report_only_hello summary = {
        .legacy_version = hello->version,
        .cipher_suites = hello->cipher_suites,
        .cipher_suites_len = hello->cipher_suites_len,
    };

    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_supported_versions,
                                              &summary.supported_versions,
                                              &summary.supported_versions_len))
        summary.supported_versions = NULL;
    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_supported_groups,
                                              &summary.supported_groups,
                                              &summary.supported_groups_len))
        summary.supported_groups = NULL;
    return report_only_evaluate(candidate, &summary, key_type, out_reason);
}

const char *report_only_policy_name(const struct cfg_candidate_policy *candidate)
{
    switch (candidate->policy) {
    case CFG_POLICY_INTERMEDIATE:
        return "intermediate";
    case CFG_POLICY_MODERN:
        return "modern";
    case CFG_POLICY_CUSTOM:
        break;
    }
    return "custom";
}
