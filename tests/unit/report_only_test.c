/* report_only_test: the verdict of a candidate policy on ClientHello lists,
 * case by case as BoringSSL's server negotiation decides: version first,
 * then suite, then group. The integration test checks the same with real
 * clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "report_only.h"

/* Extension bodies and suite lists, big-endian as on the wire. */
static const uint8_t versions_13_12[] = {4, 0x03, 0x04, 0x03, 0x03};
static const uint8_t versions_grease_12[] = {4, 0x3a, 0x3a, 0x03, 0x03};
static const uint8_t versions_empty[] = {0};
static const uint8_t groups_x25519[] = {0, 2, 0x00, 0x1d};
static const uint8_t groups_x25519_p384[] = {0, 4, 0x00, 0x1d, 0x00, 0x18};
static const uint8_t groups_odd[] = {0, 3, 0x00, 0x1d, 0x00};
static const uint8_t suites_13_and_ecdsa_aes128[] = {0x13, 0x01, 0xc0, 0x2b};
static const uint8_t suites_ecdsa_aes128[] = {0xc0, 0x2b};
static const uint8_t suites_rsa_aes128[] = {0xc0, 0x2f};
static const uint8_t suites_plain_rsa_aes128[] = {0x00, 0x9c}; /* AES128-GCM-SHA256 */
static const uint8_t suites_ccm_only[] = {0x13, 0x04};         /* TLS_AES_128_CCM_SHA256 */

#define EXT(array) array, sizeof(array)

/* modern returns the "modern" preset as config stores it. */
static struct cfg_candidate_policy modern(void)
{
    return (struct cfg_candidate_policy){
        .enabled = true,
        .policy = CFG_POLICY_MODERN,
        .min_version = TLS1_3_VERSION,
        .max_version = TLS1_3_VERSION,
        .suites = {0xc02b, 0xc02f},
        .num_suites = 2,
        .groups = {SSL_CURVE_X25519, SSL_CURVE_SECP256R1, SSL_CURVE_SECP384R1},
        .num_groups = 3,
    };
}

/* custom12 is a TLS 1.2-and-1.3 candidate with |suite| alone and P-384. */
static struct cfg_candidate_policy custom12(uint16_t suite)
{
    struct cfg_candidate_policy p = modern();
    p.policy = CFG_POLICY_CUSTOM;
    p.min_version = TLS1_2_VERSION;
    p.suites[0] = suite;
    p.num_suites = 1;
    p.groups[0] = SSL_CURVE_SECP384R1;
    p.num_groups = 1;
    return p;
}

/* verdict_for returns the reason |hello| fails |p| with a |key_type|
 * certificate, or END_REASON_COUNT when it passes; verdict assumes ECDSA. */
static enum end_reason verdict_for(const struct cfg_candidate_policy *p,
                                   const struct report_only_hello *hello, int key_type)
{
    enum end_reason reason = END_REASON_COUNT;
    bool fails = report_only_evaluate(p, hello, key_type, &reason);
    assert_int_equal(fails, reason != END_REASON_COUNT);
    return reason;
}

static enum end_reason verdict(const struct cfg_candidate_policy *p,
                               const struct report_only_hello *hello)
{
    return verdict_for(p, hello, EVP_PKEY_EC);
}

static void test_versions(void **state)
{
    struct cfg_candidate_policy p = modern();
    struct report_only_hello tls13 = {0x0303, EXT(suites_13_and_ecdsa_aes128),
                                      EXT(versions_13_12), EXT(groups_x25519)};
    struct report_only_hello tls12 = {0x0303, EXT(suites_13_and_ecdsa_aes128), NULL, 0,
                                      EXT(groups_x25519)};
    struct report_only_hello grease12 = tls13;

    (void)state;
    assert_int_equal(verdict(&p, &tls13), END_REASON_COUNT);
    /* No supported_versions: legacy_version (capped at TLS 1.2) and below. */
    assert_int_equal(verdict(&p, &tls12), END_PROTOCOL_VERSION);
    tls12.legacy_version = 0x0304; /* never means TLS 1.3 */
    assert_int_equal(verdict(&p, &tls12), END_PROTOCOL_VERSION);
    grease12.supported_versions = versions_grease_12;
    grease12.supported_versions_len = sizeof(versions_grease_12);
    assert_int_equal(verdict(&p, &grease12), END_PROTOCOL_VERSION);

    /* A TLS 1.0 client against a TLS 1.2 candidate. */
    p = custom12(0xc02b);
    tls12.legacy_version = 0x0301;
    assert_int_equal(verdict(&p, &tls12), END_PROTOCOL_VERSION);
    tls12.legacy_version = 0x0303;
    p.groups[0] = SSL_CURVE_X25519;
    assert_int_equal(verdict(&p, &tls12), END_REASON_COUNT);
}

static void test_tls13_suites_and_groups(void **state)
{
    struct cfg_candidate_policy p = modern();
    struct report_only_hello hello = {0x0303, EXT(suites_ccm_only), EXT(versions_13_12),
                                      EXT(groups_x25519)};

    (void)state;
    assert_int_equal(verdict(&p, &hello), END_NO_SHARED_CIPHER);
    hello.cipher_suites = suites_13_and_ecdsa_aes128;
    hello.cipher_suites_len = sizeof(suites_13_and_ecdsa_aes128);
    assert_int_equal(verdict(&p, &hello), END_REASON_COUNT);
    p.groups[0] = SSL_CURVE_SECP384R1;
    p.num_groups = 1;
    assert_int_equal(verdict(&p, &hello), END_NO_SHARED_GROUP);
    /* P-384 listed (a HelloRetryRequest away): passes. */
    hello.supported_groups = groups_x25519_p384;
    hello.supported_groups_len = sizeof(groups_x25519_p384);
    assert_int_equal(verdict(&p, &hello), END_REASON_COUNT);
    hello.supported_groups = NULL;
    hello.supported_groups_len = 0;
    assert_int_equal(verdict(&p, &hello), END_NO_SHARED_GROUP);
}

static void test_tls12_suites(void **state)
{
    struct cfg_candidate_policy p = custom12(0xc02c); /* ECDHE-ECDSA-AES256-GCM-SHA384 */
    struct report_only_hello hello = {0x0303, EXT(suites_ecdsa_aes128), NULL, 0,
                                      EXT(groups_x25519_p384)};

    (void)state;
    assert_int_equal(verdict(&p, &hello), END_NO_SHARED_CIPHER);
    p = custom12(0xc02b);
    assert_int_equal(verdict(&p, &hello), END_REASON_COUNT);
    /* The suite must fit the certificate's key. */
    assert_int_equal(verdict_for(&p, &hello, EVP_PKEY_RSA), END_NO_SHARED_CIPHER);
    hello.cipher_suites = suites_rsa_aes128;
    hello.cipher_suites_len = sizeof(suites_rsa_aes128);
    p = custom12(0xc02f);
    assert_int_equal(verdict_for(&p, &hello, EVP_PKEY_RSA), END_REASON_COUNT);
    assert_int_equal(verdict(&p, &hello), END_NO_SHARED_CIPHER);
    /* ECDHE without a group in common is no suite at all (BoringSSL). */
    hello.supported_groups = groups_x25519;
    hello.supported_groups_len = sizeof(groups_x25519);
    assert_int_equal(verdict_for(&p, &hello, EVP_PKEY_RSA), END_NO_SHARED_CIPHER);
    /* RSA key exchange (allow_legacy) needs no group, only an RSA key. */
    p = custom12(0x009c);
    p.allow_legacy = true;
    hello.cipher_suites = suites_plain_rsa_aes128;
    hello.cipher_suites_len = sizeof(suites_plain_rsa_aes128);
    assert_int_equal(verdict_for(&p, &hello, EVP_PKEY_RSA), END_REASON_COUNT);
    assert_int_equal(verdict(&p, &hello), END_NO_SHARED_CIPHER);
}

static void test_malformed_lists(void **state)
{
    struct cfg_candidate_policy p = modern();
    struct report_only_hello hello = {0x0303, EXT(suites_13_and_ecdsa_aes128),
                                      EXT(versions_empty), EXT(groups_x25519)};

    (void)state;
    assert_int_equal(verdict(&p, &hello), END_MALFORMED);
    hello.supported_versions = versions_13_12;
    hello.supported_versions_len = sizeof(versions_13_12);
    hello.supported_groups = groups_odd;
    hello.supported_groups_len = sizeof(groups_odd);
    assert_int_equal(verdict(&p, &hello), END_MALFORMED);
    hello.supported_groups = groups_x25519;
    hello.supported_groups_len = sizeof(groups_x25519);
    hello.cipher_suites_len = 3;
    assert_int_equal(verdict(&p, &hello), END_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_tls13_suites_and_groups),
        cmocka_unit_test(test_tls12_suites),
        cmocka_unit_test(test_malformed_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
