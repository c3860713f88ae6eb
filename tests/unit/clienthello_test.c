/* clienthello_test: the ClientHello summary, JA4, JA3 and log fields.
 *
 * The hellos are files in $TLSTERM_TEST_DATA/clienthello/, as hex of the
 * message body (after the 4-byte handshake header):
 * - real ones captured from openssl s_client, curl, Python ssl and a
 *   BoringSSL client with GREASE by capture.py there;
 * - synthetic ones from make_synthetic.py: the JA4 specification's worked
 *   example, a Chrome hello from FoxIO's own test data, and edge cases.
 * Expected JA4 and JA3 values come from outside proxy/clienthello.c: the
 * values FoxIO published, ja4_reference.py (an independent Python
 * implementation written from the specifications), and one worked by hand
 * with sha256sum. Every parse runs on a heap copy of exactly the bytes
 * given, so AddressSanitizer catches any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clienthello.h"
#include "log.h"

/* ---- test data ------------------------------------------------------------ */

struct hello_bytes {
    uint8_t *data;
    size_t len;
};

static int hex_value(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* load_hello reads clienthello/NAME.hex into a heap buffer of exactly its
 * size; free out->data. */
static void load_hello(const char *name, struct hello_bytes *out)
{
    const char *dir = getenv("TLSTERM_TEST_DATA");
    char path[512];
    int ch, high = -1;

    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/clienthello/%s.hex", dir, name);
    FILE *file = fopen(path, "r");
    if (file == NULL)
        fail_msg("cannot open %s", path);
    out->data = malloc(65536);
    assert_non_null(out->data);
    out->len = 0;
    while ((ch = fgetc(file)) != EOF) {
        if (ch == ' ' || ch == '\n')
            continue;
        int value = hex_value(ch);
        assert_true(value >= 0);
        if (high < 0) {
            high = value;
        } else {
            assert_true(out->len < 65536);
            out->data[out->len++] = (uint8_t)(high << 4 | value);
            high = -1;
        }
    }
    fclose(file);
    assert_int_equal(high, -1);
    out->data = realloc(out->data, out->len);
    assert_non_null(out->data);
}

/* summarize_copy runs clienthello_summarize on an exact-size heap copy of
 * the first |len| bytes of |bytes|. */
static int summarize_copy(const uint8_t *bytes, size_t len, struct clienthello_summary *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, len);
    int rc = clienthello_summarize(copy, len, out);
    free(copy);
    return rc;
}

static void summarize_file(const char *name, struct clienthello_summary *out)
{
    struct hello_bytes hello;
    load_hello(name, &hello);
    assert_int_equal(summarize_copy(hello.data, hello.len, out), 0);
    free(hello.data);
}

/* Every .hex file, with the JA4 and JA3 that ja4_reference.py prints. */
static const struct {
    const char *name;
    const char *ja4;
    const char *ja3;
} reference[] = {
    {"openssl_default", "t13d311000_e8f1e7e78f70_1f22a2ca17c4",
     "a3afc2c46ba4a7d7fbe1cfb7a3031c2f"},
    {"openssl_tls12_nosni", "t12i280600_d943125447b4_e7e480e5a997",
     "fbe7e189e37a07ee33706f86bc746344"},
    {"openssl_tls13_alpn", "t13d0411h2_16476d049b0b_78f1d400d464",
     "a1e6dab2a6c543d4955f1a1bbc91661e"},
    {"openssl_tls12_cipher", "t12d030700_52129f0a8c5e_17d5abb1b927",
     "314e5394c117781d8f69106680be6eb9"},
    {"openssl_cipher_all", "t12d840700_bd790527ddab_3c5a66c06c35",
     "09d001e2e171699aefe6f023c153d273"},
    {"curl_tls12", "t12d2807h2_d943125447b4_a44c6288192a", "87b9bfc7da97115ed2276737b09f8d74"},
    {"curl_default", "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6",
     "0149f47eabf9a20d0893e2a44e5a6323"},
    {"python_ssl", "t13d3112h1_e8f1e7e78f70_d41ae481755e", "3adacb99ecb51ed59c4f6c4ed9a7dcaa"},
    {"boringssl_grease", "t13d1814h2_e8a523a41297_43ade6aba3df",
     "75eaa66591e19655e62bd8287e81ee50"},
    {"spec_example", "t13d1516h2_8daaf6152771_e5627efa2ab1",
     "c000e2caf3a25423f9de6c8a4b12a975"},
    {"spec_example_grease", "t13d1516h2_8daaf6152771_e5627efa2ab1",
     "c000e2caf3a25423f9de6c8a4b12a975"},
    {"foxio_chrome_sigalg", "t13d1517h2_8daaf6152771_cb7bf5808d99",
     "2cd149ce869b7ee2a404f6149b4b41b7"},
    {"caps", "t00d9966pg_f18615e3aaf4_3c1e6f9a8ea4", "eeb5bad0d8edf666c4328473821f510d"},
    {"no_extensions", "t10i030000_5704bdfc91c6_000000000000",
     "d03688c92e36c87cd9bdbba5c3368d5b"},
    {"only_grease_ciphers", "t12d0002h2_000000000000_000000000000",
     "f56b0e56df61633726f096384b437677"},
    {"long_lists", "t13d9999h2_33cf8058f494_78a03e675d3c", "67b8f493c7da9def501afea51cf0c836"},
    {"versions_only_grease", "t12d010200_f06271c2b022_b9a491fefe05",
     "8ca0d105f3b798953a936d2dd6cebb78"},
    {"repeated_ciphers", "t13i030100_35f9668e23d2_b9a491fefe05",
     "7e6909cfc0c15b764974f6d4bb3763e3"},
    {"alpn_hex_abcd", "t13i0102ad_0f2cb44170f4_b9a491fefe05",
     "0f47feb5cfe942f9bed4e5cd65ba24db"},
    {"alpn_hex_30ab", "t13i01023b_0f2cb44170f4_b9a491fefe05",
     "0f47feb5cfe942f9bed4e5cd65ba24db"},
    {"alpn_hex_30abcd31", "t13i010201_0f2cb44170f4_b9a491fefe05",
     "0f47feb5cfe942f9bed4e5cd65ba24db"},
    {"alpn_single_char", "t13i0102qq_0f2cb44170f4_b9a491fefe05",
     "0f47feb5cfe942f9bed4e5cd65ba24db"},
};

enum { NUM_REFERENCE = sizeof(reference) / sizeof(reference[0]) };

/* ---- fingerprints ------------------------------------------------------- */

static void assert_fingerprints(const struct clienthello_summary *s, const char *ja4,
                                const char *ja3)
{
    char ja4_out[CLIENTHELLO_JA4_LEN + 1], ja3_out[CLIENTHELLO_JA3_LEN + 1];

    clienthello_ja4(s, ja4_out);
    clienthello_ja3(s, ja3_out);
    assert_string_equal(ja4_out, ja4);
    if (ja3 != NULL)
        assert_string_equal(ja3_out, ja3);
}

static void test_every_hello_matches_reference(void **state)
{
    struct clienthello_summary s;

    for (size_t i = 0; i < NUM_REFERENCE; i++) {
        summarize_file(reference[i].name, &s);
        print_message("%-22s %s %s\n", reference[i].name, reference[i].ja4, reference[i].ja3);
        assert_fingerprints(&s, reference[i].ja4, reference[i].ja3);
    }
}

/* The values FoxIO published for these hellos, not computed by anyone here:
 * JA4.md's worked example (its lists of ciphers, extensions and signature
 * algorithms, built into a hello) and sigalg-grease.pcapng's Chrome hello
 * in FoxIO's test data (python/test/testdata/sigalg-grease.pcapng.json,
 * JA4_ro rebuilt into a hello). GREASE added to the example must not change
 * its fingerprint. */
static void test_published_ja4_values(void **state)
{
    struct clienthello_summary s;

    summarize_file("spec_example", &s);
    assert_fingerprints(&s, "t13d1516h2_8daaf6152771_e5627efa2ab1", NULL);
    summarize_file("spec_example_grease", &s);
    assert_fingerprints(&s, "t13d1516h2_8daaf6152771_e5627efa2ab1", NULL);
    summarize_file("foxio_chrome_sigalg", &s);
    assert_fingerprints(&s, "t13d1517h2_8daaf6152771_cb7bf5808d99", NULL);
}

/* openssl s_client -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA,
 * worked by hand from JA4.md:
 *   t: TCP; 12: no supported_versions, legacy_version 0x0303; d: SNI sent;
 *   03: c02f, 0035, 00ff; 07: extensions 0,11,10,35,22,23,13; 00: no ALPN.
 *   printf '0035,00ff,c02f' | sha256sum                             -> 52129f0a8c5e
 *   printf '000a,000b,000d,0016,0017,0023_0401,0403' | sha256sum    -> 17d5abb1b927
 * and JA3:
 *   printf '771,49199-53-255,0-11-10-35-22-23-13,29-23-30-25-24,0-1-2' | md5sum */
static void test_ja4_worked_by_hand(void **state)
{
    struct clienthello_summary s;

    summarize_file("openssl_tls12_cipher", &s);
    assert_fingerprints(&s, "t12d030700_52129f0a8c5e_17d5abb1b927",
                        "314e5394c117781d8f69106680be6eb9");
}

/* JA4.md's ALPN rules: a non-alphanumeric first or last byte shows the
 * first and last hex digit of the name; one character is both. */
static void test_ja4_alpn_characters(void **state)
{
    static const struct {
        const char *name;
        const char *alpn;
    } cases[] = {
        {"alpn_hex_abcd", "ad"},    {"alpn_hex_30ab", "3b"},   {"alpn_hex_30abcd31", "01"},
        {"alpn_single_char", "qq"}, {"openssl_default", "00"}, {"python_ssl", "h1"},
    };
    struct clienthello_summary s;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        summarize_file(cases[i].name, &s);
        assert_memory_equal(s.ja4 + 8, cases[i].alpn, 2);
    }
}

/* ---- summary fields ------------------------------------------------------ */

static void assert_u16s(const uint16_t *got, const uint16_t *want, size_t num)
{
    for (size_t i = 0; i < num; i++) {
        if (got[i] != want[i])
            fail_msg("entry %zu: 0x%04x, want 0x%04x", i, got[i], want[i]);
    }
}

static void test_fields_of_openssl_hello(void **state)
{
    static const uint16_t ciphers[] = {0x1302, 0x1303, 0x1301, 0x00ff};
    static const uint16_t extensions[] = {0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51};
    static const uint16_t groups[] = {0x001d, 0x0017, 0x0018};
    static const uint16_t sigalgs[] = {0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080a,
                                       0x080b, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601};
    struct clienthello_summary s;

    summarize_file("openssl_tls13_alpn", &s);
    assert_int_equal(s.legacy_version, 0x0303);
    assert_int_equal(s.max_version, 0x0304);
    assert_int_equal(s.num_versions, 1);
    assert_int_equal(s.versions[0], 0x0304);
    assert_int_equal(s.num_ciphers, 4);
    assert_u16s(s.ciphers, ciphers, 4);
    assert_int_equal(s.num_extensions, 11);
    assert_u16s(s.extensions, extensions, 11);
    assert_int_equal(s.num_groups, 3);
    assert_u16s(s.groups, groups, 3);
    assert_int_equal(s.num_sigalgs, 14);
    assert_u16s(s.sigalgs, sigalgs, 14);
    assert_int_equal(s.num_alpn, 2);
    assert_int_equal(s.alpn_len[0], 2);
    assert_memory_equal(s.alpn[0], "h2", 2);
    assert_int_equal(s.alpn_len[1], 8);
    assert_memory_equal(s.alpn[1], "http/1.1", 8);
    assert_true(s.has_sni);
    assert_false(s.quic);
    assert_false(s.has_malformed_extension);

    summarize_file("openssl_tls12_nosni", &s);
    assert_false(s.has_sni);
    assert_int_equal(s.num_versions, 0);
    assert_int_equal(s.max_version, 0x0303);
    assert_int_equal(s.num_alpn, 0);
}

/* GREASE stays in the lists, where it is, and out of every count JA4 shows. */
static void test_grease_is_kept_in_lists(void **state)
{
    static const uint16_t versions[] = {0x9a9a, 0x0304, 0x0303};
    struct clienthello_summary s;

    summarize_file("boringssl_grease", &s);
    assert_int_equal(s.num_ciphers, 19);
    assert_true(clienthello_is_grease(s.ciphers[0]));
    assert_false(clienthello_is_grease(s.ciphers[1]));
    assert_int_equal(s.num_versions, 3);
    assert_u16s(s.versions, versions, 3);
    assert_int_equal(s.max_version, 0x0304);
    assert_int_equal(s.num_groups, 4);
    assert_int_equal(s.groups[0], 0x6a6a);
    assert_int_equal(s.num_extensions, 16);
    assert_int_equal(s.extensions[0], 0xcaca);
    assert_int_equal(s.extensions[14], 0x0a0a);
    /* 19 suites and 16 extensions, two of each GREASE: "1814" in JA4. */
    assert_memory_equal(s.ja4, "t13d1814h2", 10);

    int num_grease = 0;
    for (unsigned v = 0; v <= 0xffff; v++)
        num_grease += clienthello_is_grease((uint16_t)v);
    assert_int_equal(num_grease, 16);
    assert_true(clienthello_is_grease(0x0a0a));
    assert_true(clienthello_is_grease(0xfafa));
    assert_false(clienthello_is_grease(0x0a1a));
}

/* caps.hex goes past every cap: 100 suites, 66 extensions, 12 versions, 40
 * groups, 60 signature algorithms, 6 ALPN names of 25 bytes. */
static void test_caps_cut_lists_but_keep_counts(void **state)
{
    struct clienthello_summary s;

    summarize_file("caps", &s);
    assert_int_equal(s.num_ciphers, 100);
    assert_int_equal(s.ciphers[CLIENTHELLO_MAX_CIPHERS - 1],
                     0xc000 + CLIENTHELLO_MAX_CIPHERS - 4);
    assert_int_equal(s.num_extensions, 66);
    assert_int_equal(s.extensions[CLIENTHELLO_MAX_EXTENSIONS - 1],
                     0x1000 + CLIENTHELLO_MAX_EXTENSIONS - 7);
    assert_int_equal(s.num_versions, 12);
    assert_int_equal(s.versions[CLIENTHELLO_MAX_VERSIONS - 1], 0x7f01);
    /* The highest version is past the cap and still found. */
    assert_int_equal(s.max_version, 0x7f05);
    assert_int_equal(s.num_groups, 40);
    assert_int_equal(s.groups[CLIENTHELLO_MAX_GROUPS - 1], CLIENTHELLO_MAX_GROUPS);
    assert_int_equal(s.num_sigalgs, 60);
    assert_int_equal(s.sigalgs[CLIENTHELLO_MAX_SIGALGS - 1],
                     0x0100 + CLIENTHELLO_MAX_SIGALGS - 1);
    assert_int_equal(s.num_alpn, 6);
    for (int i = 0; i < CLIENTHELLO_MAX_ALPN; i++) {
        assert_int_equal(s.alpn_len[i], 25);
        assert_memory_equal(s.alpn[i], "protocol-number", CLIENTHELLO_ALPN_NAME_MAX);
    }
    /* JA4 counts stop at 99; its hashes cover all 100 suites and 66
     * extensions (checked against the reference above). */
    assert_memory_equal(s.ja4, "t00d9966pg", 10);
}

static void test_summary_is_small(void **state)
{
    print_message("sizeof(struct clienthello_summary) = %zu\n",
                  sizeof(struct clienthello_summary));
    assert_true(sizeof(struct clienthello_summary) < 512);
}

/* ---- malformed input ----------------------------------------------------- */

/* struct hello_parts describes a hello to build, well-formed or not. */
struct hello_parts {
    size_t session_id_len;
    const uint8_t *ciphers;
    size_t ciphers_len;
    size_t num_compression;
    bool has_extensions; /* whether the extensions block is there at all */
    const uint8_t *extensions;
    size_t extensions_len;
    size_t trailing_len; /* zero bytes after everything */
};

static const uint8_t one_cipher[] = {0x13, 0x01};

/* build_hello writes |parts| as a ClientHello body; free out->data. */
static void build_hello(const struct hello_parts *parts, struct hello_bytes *out)
{
    static const uint8_t zeros[64];
    CBB cbb, vec;

    assert_true(CBB_init(&cbb, 64));
    assert_true(CBB_add_u16(&cbb, 0x0303));
    assert_true(CBB_add_bytes(&cbb, zeros, 32));
    assert_true(CBB_add_u8(&cbb, (uint8_t)parts->session_id_len));
    assert_true(CBB_add_bytes(&cbb, zeros, parts->session_id_len));
    assert_true(CBB_add_u16_length_prefixed(&cbb, &vec));
    assert_true(CBB_add_bytes(&vec, parts->ciphers, parts->ciphers_len));
    assert_true(CBB_add_u8(&cbb, (uint8_t)parts->num_compression));
    assert_true(CBB_add_bytes(&cbb, zeros, parts->num_compression));
    if (parts->has_extensions) {
        assert_true(CBB_add_u16_length_prefixed(&cbb, &vec));
        assert_true(CBB_add_bytes(&vec, parts->extensions, parts->extensions_len));
    }
    assert_true(CBB_add_bytes(&cbb, zeros, parts->trailing_len));
    assert_true(CBB_finish(&cbb, &out->data, &out->len));
}

static int summarize_parts(const struct hello_parts *parts, struct clienthello_summary *out)
{
    struct hello_bytes hello;
    build_hello(parts, &hello);
    int rc = summarize_copy(hello.data, hello.len, out);
    OPENSSL_free(hello.data);
    return rc;
}

/* Each case breaks one rule BoringSSL's ClientHello parser enforces. */
static void test_malformed_framing_is_refused(void **state)
{
    static const uint8_t odd_ciphers[] = {0x13, 0x01, 0x13};
    static const uint8_t ext_cut[] = {0x00, 0x17, 0x00};
    static const uint8_t ext_long[] = {0x00, 0x17, 0x00, 0x05, 0x00};
    static const uint8_t ext_twice[] = {0x00, 0x17, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00};
    static const uint8_t ext_twice_apart[] = {0x00, 0x17, 0x00, 0x00, 0x00, 0x23,
                                              0x00, 0x00, 0x00, 0x17, 0x00, 0x00};
    static const uint8_t ext_ok[] = {0x00, 0x17, 0x00, 0x00, 0x00, 0x23, 0x00, 0x00};
    const struct hello_parts good = {0, one_cipher, 2, 1, true, ext_ok, sizeof(ext_ok), 0};
    struct clienthello_summary s;
    struct hello_parts bad;

    assert_int_equal(summarize_parts(&good, &s), 0);
    assert_int_equal(s.num_extensions, 2);

    bad = good;
    bad.session_id_len = 32;
    assert_int_equal(summarize_parts(&bad, &s), 0);
    bad.session_id_len = 33;
    assert_int_equal(summarize_parts(&bad, &s), -1);

    bad = good;
    bad.ciphers_len = 0;
    assert_int_equal(summarize_parts(&bad, &s), -1);
    bad.ciphers = odd_ciphers;
    bad.ciphers_len = sizeof(odd_ciphers);
    assert_int_equal(summarize_parts(&bad, &s), -1);

    bad = good;
    bad.num_compression = 0;
    assert_int_equal(summarize_parts(&bad, &s), -1);

    bad = good;
    bad.trailing_len = 1;
    assert_int_equal(summarize_parts(&bad, &s), -1);

    bad = good;
    bad.has_extensions = false;
    bad.trailing_len = 1; /* one byte where a 2-byte block length belongs */
    assert_int_equal(summarize_parts(&bad, &s), -1);

    const struct {
        const uint8_t *bytes;
        size_t len;
    } bad_blocks[] = {
        {ext_cut, sizeof(ext_cut)},
        {ext_long, sizeof(ext_long)},
        {ext_twice, sizeof(ext_twice)},
        {ext_twice_apart, sizeof(ext_twice_apart)},
    };
    for (size_t i = 0; i < sizeof(bad_blocks) / sizeof(bad_blocks[0]); i++) {
        bad = good;
        bad.extensions = bad_blocks[i].bytes;
        bad.extensions_len = bad_blocks[i].len;
        assert_int_equal(summarize_parts(&bad, &s), -1);
    }

    /* A repeat among more extensions than the summary sorts on the stack. */
    uint8_t many[4 * 200];
    for (size_t i = 0; i < 200; i++) {
        uint16_t type = (uint16_t)(0x3000 + 7 * (i == 150 ? 3 : i));
        many[4 * i] = (uint8_t)(type >> 8);
        many[4 * i + 1] = (uint8_t)type;
        many[4 * i + 2] = many[4 * i + 3] = 0;
    }
    bad = good;
    bad.extensions = many;
    bad.extensions_len = sizeof(many);
    assert_int_equal(summarize_parts(&bad, &s), -1);
    many[4 * 150] ^= 0x40; /* no repeat any more */
    assert_int_equal(summarize_parts(&bad, &s), 0);
    assert_int_equal(s.num_extensions, 200);

    /* An empty extensions block is allowed, like no block at all. */
    bad = good;
    bad.extensions_len = 0;
    assert_int_equal(summarize_parts(&bad, &s), 0);
    assert_int_equal(s.num_extensions, 0);
    bad.has_extensions = false;
    assert_int_equal(summarize_parts(&bad, &s), 0);

    assert_int_equal(clienthello_summarize(NULL, 0, &s), -1);
    assert_int_equal(clienthello_summarize_early(NULL, &s), -1);
}

/* A decoded extension whose body does not parse is named and left out;
 * the rest of the hello is still summarized. */
static void test_malformed_extension_body_is_noted(void **state)
{
    static const uint8_t bad_sigalgs[] = {
        0x00, 0x0d, 0x00, 0x05, 0x00, 0x03, 0x04, 0x03, 0x08, /* odd list */
        0x00, 0x10, 0x00, 0x04, 0x00, 0x02, 0x05, 0x68,       /* name past list */
        0x00, 0x2b, 0x00, 0x04, 0x02, 0x03, 0x04, 0x00,       /* trailing byte */
        0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d,       /* good groups */
        0x00, 0x00, 0x00, 0x00,                               /* empty SNI */
    };
    const struct hello_parts parts = {0,           one_cipher,          2, 1, true,
                                      bad_sigalgs, sizeof(bad_sigalgs), 0};
    struct clienthello_summary s;

    assert_int_equal(summarize_parts(&parts, &s), 0);
    assert_true(s.has_malformed_extension);
    assert_int_equal(s.malformed_extension, 0x000d); /* the first of three */
    assert_int_equal(s.num_sigalgs, 0);
    assert_int_equal(s.num_alpn, 0);
    assert_int_equal(s.num_versions, 0);
    assert_int_equal(s.max_version, 0x0303); /* legacy_version, as if absent */
    assert_int_equal(s.num_groups, 1);
    assert_int_equal(s.num_extensions, 5);
    assert_true(s.has_sni);
    /* All five extensions count; ALPN shows as absent. */
    assert_memory_equal(s.ja4, "t12d010500_", 11);
}

/* Every prefix of every hello is refused or, where it happens to end right
 * before the extensions block, parsed as a hello without extensions: the
 * one prefix besides the whole that is a valid ClientHello. */
static void test_every_prefix_is_refused_or_valid(void **state)
{
    struct clienthello_summary s;

    for (size_t i = 0; i < NUM_REFERENCE; i++) {
        struct hello_bytes hello;
        size_t num_valid = 0;

        load_hello(reference[i].name, &hello);
        for (size_t len = 0; len <= hello.len; len++) {
            int rc = summarize_copy(hello.data, len, &s);
            assert_true(rc == 0 || rc == -1);
            if (rc == 0) {
                num_valid++;
                assert_int_equal(strlen(s.ja4), CLIENTHELLO_JA4_LEN);
                if (len < hello.len)
                    assert_int_equal(s.num_extensions, 0);
            }
        }
        assert_int_equal(num_valid, strcmp(reference[i].name, "no_extensions") == 0 ? 1 : 2);
        free(hello.data);
    }
}

/* Flipping any bits of any byte never reads out of bounds (ASan watches) and
 * never yields a summary whose JA4 is not well formed. */
static void test_corrupted_bytes_never_crash(void **state)
{
    static const uint8_t masks[] = {0xff, 0x01, 0x80, 0x10};
    struct clienthello_summary s;

    for (size_t i = 0; i < NUM_REFERENCE; i++) {
        struct hello_bytes hello;
        load_hello(reference[i].name, &hello);
        for (size_t pos = 0; pos < hello.len; pos++) {
            for (size_t m = 0; m < sizeof(masks); m++) {
                hello.data[pos] ^= masks[m];
                if (summarize_copy(hello.data, hello.len, &s) == 0)
                    assert_int_equal(strlen(s.ja4), CLIENTHELLO_JA4_LEN);
                hello.data[pos] ^= masks[m];
            }
        }
        free(hello.data);
    }
}

/* ---- the early callback ------------------------------------------------- */

struct early_capture {
    int calls;
    int rc_early, rc_raw;
    struct clienthello_summary early, raw;
    bool parse_matches; /* clienthello_parse gave the callback's hello */
};

static int early_capture_index = -1;

/* capture_cb summarizes the hello both ways, then stops the handshake. */
static enum ssl_select_cert_result_t capture_cb(const SSL_CLIENT_HELLO *hello)
{
    struct early_capture *cap = SSL_get_ex_data(hello->ssl, early_capture_index);
    cap->calls++;
    cap->rc_early = clienthello_summarize_early(hello, &cap->early);
    cap->rc_raw = summarize_copy(hello->client_hello, hello->client_hello_len, &cap->raw);
    SSL_CLIENT_HELLO parsed;
    cap->parse_matches =
        clienthello_parse(hello->ssl, hello->client_hello, hello->client_hello_len, &parsed) ==
            0 &&
        parsed.ssl == hello->ssl && parsed.client_hello == hello->client_hello &&
        parsed.client_hello_len == hello->client_hello_len &&
        parsed.version == hello->version && parsed.random == hello->random &&
        parsed.random_len == hello->random_len && parsed.session_id == hello->session_id &&
        parsed.session_id_len == hello->session_id_len &&
        parsed.cipher_suites == hello->cipher_suites &&
        parsed.cipher_suites_len == hello->cipher_suites_len &&
        parsed.compression_methods == hello->compression_methods &&
        parsed.compression_methods_len == hello->compression_methods_len &&
        parsed.extensions == hello->extensions &&
        parsed.extensions_len == hello->extensions_len;
    return ssl_select_cert_error;
}

/* A real BoringSSL handshake over a BIO pair: the summary from the
 * callback's parsed fields equals the one from the raw message, GREASE,
 * ALPN, SNI and all, and clienthello_parse splits the raw message as
 * BoringSSL does. */
static void test_early_callback_matches_raw(void **state)
{
    static const uint8_t alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX *client_ctx = SSL_CTX_new(TLS_method());
    SSL_CTX *server_ctx = SSL_CTX_new(TLS_method());
    struct early_capture cap = {0};
    BIO *client_bio, *server_bio;

    assert_non_null(client_ctx);
    assert_non_null(server_ctx);
    if (early_capture_index < 0)
        early_capture_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX_set_grease_enabled(client_ctx, 1);
    SSL_CTX_set_select_certificate_cb(server_ctx, capture_cb);
    SSL *client = SSL_new(client_ctx), *server = SSL_new(server_ctx);
    assert_non_null(client);
    assert_non_null(server);
    assert_true(SSL_set_ex_data(server, early_capture_index, &cap));
    assert_true(SSL_set_tlsext_host_name(client, "early.test"));
    assert_int_equal(SSL_set_alpn_protos(client, alpn, sizeof(alpn) - 1), 0);
    assert_true(BIO_new_bio_pair(&client_bio, 0, &server_bio, 0));
    SSL_set_bio(client, client_bio, client_bio);
    SSL_set_bio(server, server_bio, server_bio);

    assert_int_equal(SSL_connect(client), -1); /* hello written, waiting */
    assert_int_equal(SSL_accept(server), -1);  /* refused by capture_cb */
    ERR_clear_error();

    assert_int_equal(cap.calls, 1);
    assert_int_equal(cap.rc_early, 0);
    assert_int_equal(cap.rc_raw, 0);
    assert_memory_equal(&cap.early, &cap.raw, sizeof(cap.raw));
    assert_true(cap.parse_matches);
    assert_true(cap.early.has_sni);
    assert_int_equal(cap.early.num_alpn, 2);
    assert_true(clienthello_is_grease(cap.early.ciphers[0]));
    assert_memory_equal(cap.early.ja4, "t13d", 4);

    SSL_free(client);
    SSL_free(server);
    SSL_CTX_free(client_ctx);
    SSL_CTX_free(server_ctx);
}

/* ---- log fields --------------------------------------------------------- */

/* log_fields_of builds a line with the fields of hello NAME into |line| and
 * NUL-terminates it, without writing it. */
static void log_fields_of(const char *name, struct log_line *line)
{
    struct clienthello_summary s;

    summarize_file(name, &s);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    log_begin(line, LOG_INFO, "handshake_failed");
    clienthello_log_fields(line, &s);
    assert_false(line->truncated);
    assert_true(line->len < sizeof(line->buf));
    line->buf[line->len] = '\0';
    assert_null(strstr(line->buf, "\\u0000"));
}

static void assert_has(const struct log_line *line, const char *field)
{
    if (strstr(line->buf, field) == NULL)
        fail_msg("%s\nnot in\n%s", field, line->buf);
}

/* check_list_field checks the comma-separated field |key| of |line|: no
 * longer than |limit|, no empty entry, and its entries plus the N of a final
 * "+N" add up to |num_total|. It returns how many entries it shows. */
static size_t check_list_field(const struct log_line *line, const char *key, size_t limit,
                               size_t num_total)
{
    char start[64];
    snprintf(start, sizeof(start), "\"%s\":\"", key);
    const char *value = strstr(line->buf, start);
    assert_non_null(value);
    value += strlen(start);
    size_t len = (size_t)(strchr(value, '"') - value), num_shown = 0, num_more = 0;
    assert_true(len < limit);

    for (const char *item = value; item < value + len;) {
        const char *end = memchr(item, ',', (size_t)(value + len - item));
        if (end == NULL)
            end = value + len;
        assert_true(end > item);
        if (*item == '+' && end == value + len)
            num_more = strtoul(item + 1, NULL, 10);
        else
            num_shown++;
        item = end + 1;
    }
    assert_int_equal(num_shown + num_more, num_total);
    return num_shown;
}

static void test_log_fields(void **state)
{
    struct log_line line;

    log_fields_of("openssl_tls13_alpn", &line);
    assert_has(&line, "\"ja4\":\"t13d0411h2_16476d049b0b_78f1d400d464\",");
    assert_has(&line, "\"offered_versions\":\"TLSv1.3\",\"legacy_version\":\"TLSv1.2\",");
    assert_has(&line, "\"alpn\":\"h2,http/1.1\",");
    assert_has(&line, "\"ciphers\":\"TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,"
                      "TLS_AES_128_GCM_SHA256,TLS_EMPTY_RENEGOTIATION_INFO_SCSV\",");
    assert_has(&line, "\"groups\":\"x25519,secp256r1,secp384r1\",");
    assert_has(&line, "\"sigalgs\":\"ecdsa_secp256r1_sha256,ecdsa_secp384r1_sha384,"
                      "ecdsa_secp521r1_sha512,ed25519,ed448,rsa_pss_pss_sha256,"
                      "rsa_pss_pss_sha384,rsa_pss_pss_sha512,rsa_pss_rsae_sha256,"
                      "rsa_pss_rsae_sha384,rsa_pss_rsae_sha512,rsa_pkcs1_sha256,"
                      "rsa_pkcs1_sha384,rsa_pkcs1_sha512\",");
    assert_has(&line, "\"extensions\":\"0,11,10,35,16,22,23,13,43,45,51\",");
    assert_has(&line, "\"ja3\":\"a1e6dab2a6c543d4955f1a1bbc91661e\"");
    assert_null(strstr(line.buf, "malformed_extension"));

    log_fields_of("boringssl_grease", &line);
    assert_has(&line, "\"offered_versions\":\"GREASE,TLSv1.3,TLSv1.2\",");
    assert_has(&line, "\"ciphers\":\"GREASE,TLS_AES_128_GCM_SHA256,");
    assert_has(&line, "\"groups\":\"GREASE,x25519,secp256r1,secp384r1\",");
    assert_has(&line, "\"extensions\":\"GREASE,0,23,65281,10,11,35,16,5,13,18,51,45,43,"
                      "GREASE,21\",");
    assert_has(&line, ",rsa_pkcs1_sha1\",");

    /* Suites BoringSSL does not implement: named from the table. */
    log_fields_of("curl_tls12", &line);
    assert_has(&line, "\"offered_versions\":\"TLSv1.2\",");
    assert_has(&line, "\"ciphers\":\"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,"
                      "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
                      "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,");
    assert_has(&line, ",TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,");
    assert_has(&line, ",TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,");
    assert_has(&line, "\"groups\":\"x25519,secp256r1,x448,secp521r1,secp384r1\",");
}

/* Lists cut by their cap or their share of the line end in "+N", N the
 * entries not shown; ALPN names past 15 bytes end in "...". */
static void test_log_fields_of_long_lists(void **state)
{
    struct log_line line;

    log_fields_of("caps", &line);
    assert_has(&line, "\"offered_versions\":\"GREASE,SSLv3,TLSv1,TLSv1.1,TLSv1.2,TLSv1.3,"
                      "0x7f00,0x7f01,+4\",");
    assert_has(&line, "\"alpn\":\"protocol-number...,protocol-number...,protocol-number...,"
                      "protocol-number...,+2\",");
    assert_has(&line, "\"ciphers\":\"TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,"
                      "TLS_CHACHA20_POLY1305_SHA256,0xc000,");
    assert_has(&line, ",0xc01c,+68\","); /* 32 of 100 suites */
    assert_has(&line, ",0x0010,+24\","); /* 16 of 40 groups */
    assert_has(&line, ",0x0117,+36\","); /* 24 of 60 sigalgs */
    assert_has(&line, ",4121,+34\",");   /* 32 of 66 extensions */

    log_fields_of("alpn_hex_abcd", &line);
    assert_has(&line, "\"alpn\":\"%AB%CD,h2\",");

    /* 84 suites with long names: cut by the field's share of the line
     * before the cap. */
    log_fields_of("openssl_cipher_all", &line);
    assert_true(check_list_field(&line, "ciphers", 640, 84) < CLIENTHELLO_MAX_CIPHERS);
}

/* The "+N" must fit whatever length the shown entries reach: lists of long
 * names of every count, shifted so the cut falls at every offset. */
static void test_log_fields_cut_at_every_offset(void **state)
{
    static const uint16_t suites[] = {0xc02b, 0x009c, 0x1301, 0xcca9, 0xc013, 0x002f,
                                      0xc009, 0x1302, 0xc030, 0x0035, 0x000a};
    uint8_t ciphers[2 * 64];
    struct clienthello_summary s;
    struct log_line line;

    for (size_t num = 1; num <= 64; num++) {
        for (size_t shift = 0; shift < sizeof(suites) / sizeof(suites[0]); shift++) {
            for (size_t i = 0; i < num; i++) {
                uint16_t suite = suites[(i * 7 + shift) % (sizeof(suites) / sizeof(suites[0]))];
                ciphers[2 * i] = (uint8_t)(suite >> 8);
                ciphers[2 * i + 1] = (uint8_t)suite;
            }
            const struct hello_parts parts = {0, ciphers, 2 * num, 1, false, NULL, 0, 0};
            assert_int_equal(summarize_parts(&parts, &s), 0);
            log_begin(&line, LOG_INFO, "handshake_failed");
            clienthello_log_fields(&line, &s);
            line.buf[line.len] = '\0';
            assert_null(strstr(line.buf, "\\u0000"));
            check_list_field(&line, "ciphers", 640, num);
        }
    }

    /* A five-digit N: ALPN names whose percent-encoding sets their length
     * byte by byte, followed by 20000 empty names. */
    enum { NUM_EMPTY = 20000, NAME_LEN = 20 };
    static uint8_t extension[4 + 2 + 4 * (1 + NAME_LEN) + NUM_EMPTY];
    for (size_t encoded2 = 0; encoded2 <= 15; encoded2++) {
        for (size_t encoded3 = 0; encoded3 <= 15; encoded3++) {
            size_t encoded[4] = {15, encoded2, encoded3, 0}, pos = 6;
            for (size_t n = 0; n < 4; n++) {
                extension[pos++] = NAME_LEN;
                for (size_t b = 0; b < NAME_LEN; b++)
                    extension[pos++] = b < encoded[n] ? ',' : 'a';
            }
            memset(extension + pos, 0, NUM_EMPTY);
            pos += NUM_EMPTY;
            extension[0] = 0x00;
            extension[1] = 0x10;
            extension[2] = (uint8_t)((pos - 4) >> 8);
            extension[3] = (uint8_t)(pos - 4);
            extension[4] = (uint8_t)((pos - 6) >> 8);
            extension[5] = (uint8_t)(pos - 6);
            const struct hello_parts parts = {0, one_cipher, 2, 1, true, extension, pos, 0};
            assert_int_equal(summarize_parts(&parts, &s), 0);
            assert_int_equal(s.num_alpn, 4 + NUM_EMPTY);
            log_begin(&line, LOG_INFO, "handshake_failed");
            clienthello_log_fields(&line, &s);
            line.buf[line.len] = '\0';
            assert_null(strstr(line.buf, "\\u0000"));
            check_list_field(&line, "alpn", 128, 4 + NUM_EMPTY);
        }
    }
}

static void test_log_fields_malformed_extension(void **state)
{
    static const uint8_t bad_alpn[] = {0x00, 0x10, 0x00, 0x01, 0x00};
    const struct hello_parts parts = {0, one_cipher, 2, 1, true, bad_alpn, sizeof(bad_alpn), 0};
    struct clienthello_summary s;
    struct log_line line;

    assert_int_equal(summarize_parts(&parts, &s), 0);
    log_begin(&line, LOG_INFO, "handshake_failed");
    clienthello_log_fields(&line, &s);
    line.buf[line.len] = '\0';
    assert_has(&line,
               "\"legacy_version\":\"TLSv1.2\",\"malformed_extension\":16,\"alpn\":\"\",");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_hello_matches_reference),
        cmocka_unit_test(test_published_ja4_values),
        cmocka_unit_test(test_ja4_worked_by_hand),
        cmocka_unit_test(test_ja4_alpn_characters),
        cmocka_unit_test(test_fields_of_openssl_hello),
        cmocka_unit_test(test_grease_is_kept_in_lists),
        cmocka_unit_test(test_caps_cut_lists_but_keep_counts),
        cmocka_unit_test(test_summary_is_small),
        cmocka_unit_test(test_malformed_framing_is_refused),
        cmocka_unit_test(test_malformed_extension_body_is_noted),
        cmocka_unit_test(test_every_prefix_is_refused_or_valid),
        cmocka_unit_test(test_corrupted_bytes_never_crash),
        cmocka_unit_test(test_early_callback_matches_raw),
        cmocka_unit_test(test_log_fields),
        cmocka_unit_test(test_log_fields_of_long_lists),
        cmocka_unit_test(test_log_fields_cut_at_every_offset),
        cmocka_unit_test(test_log_fields_malformed_extension),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
