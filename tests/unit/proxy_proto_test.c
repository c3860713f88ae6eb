/* proxy_proto_test: the PROXY protocol encoder and parser, byte for byte
 * against the specification's layouts, and CRC-32C against its standard
 * check value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "proxy_proto.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static struct proxy_proto_addr addr4(const char *text, uint16_t port)
{
    struct proxy_proto_addr a = {.family = AF_INET, .port = port};
    assert_int_equal(inet_pton(AF_INET, text, a.addr), 1);
    return a;
}

static struct proxy_proto_addr addr6(const char *text, uint16_t port)
{
    struct proxy_proto_addr a = {.family = AF_INET6, .port = port};
    assert_int_equal(inet_pton(AF_INET6, text, a.addr), 1);
    return a;
}

/* ---- CRC-32C ---------------------------------------------------------------- */

static void test_crc32c_check_value(void **state)
{
    /* The CRC-32C check value (RFC 3720 B.4, and every CRC catalogue). */
    assert_int_equal(proxy_proto_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283);
    /* 32 bytes of zeros: RFC 3720 B.4's first example. */
    uint8_t zeros[32] = {0};
    assert_int_equal(proxy_proto_crc32c(0, zeros, sizeof(zeros)), 0x8A9136AA);
    /* Continuation: in two parts, the same. */
    uint32_t crc = proxy_proto_crc32c(0, (const uint8_t *)"1234", 4);
    assert_int_equal(proxy_proto_crc32c(crc, (const uint8_t *)"56789", 5), 0xE3069283);
}

/* ---- v1 ------------------------------------------------------------------------ */

static void check_v1(const struct proxy_proto_info *info, const char *expected)
{
    uint8_t out[128];
    size_t len = proxy_proto_encode(1, info, out, sizeof(out));
    assert_int_equal(len, strlen(expected));
    assert_memory_equal(out, expected, len);
}

static void test_v1_ipv4(void **state)
{
    struct proxy_proto_info info = {.src = addr4("192.0.2.1", 56324),
                                    .dst = addr4("198.51.100.2", 443)};
    check_v1(&info, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
}

static void test_v1_ipv6(void **state)
{
    struct proxy_proto_info info = {.src = addr6("2001:db8::1", 65535),
                                    .dst = addr6("2001:db8::2", 8443)};
    check_v1(&info, "PROXY TCP6 2001:db8::1 2001:db8::2 65535 8443\r\n");
}

static void test_v1_unknown(void **state)
{
    struct proxy_proto_info mixed = {.src = addr4("192.0.2.1", 1), .dst = addr6("::1", 2)};
    check_v1(&mixed, "PROXY UNKNOWN\r\n");
    struct proxy_proto_info local = {
        .local = true, .src = addr4("192.0.2.1", 1), .dst = addr4("192.0.2.2", 2)};
    check_v1(&local, "PROXY UNKNOWN\r\n");
}

static void test_whole_text(void **state)
{
    char out[8];

    memset(out, 'z', sizeof(out));
    assert_ptr_equal(proxy_proto_whole_text((const uint8_t *)"alice", 5, out, sizeof(out)), out);
    assert_string_equal(out, "alice");
    /* Seven bytes and the NUL fill it exactly. */
    assert_non_null(proxy_proto_whole_text((const uint8_t *)"1234567", 7, out, sizeof(out)));
    assert_string_equal(out, "1234567");
    /* An embedded NUL: not "admin". */
    memset(out, 'z', sizeof(out));
    assert_null(proxy_proto_whole_text((const uint8_t *)"admin\0x", 7, out, sizeof(out)));
    assert_null(proxy_proto_whole_text((const uint8_t *)"\0", 1, out, sizeof(out)));
    /* Too long: not cut (which could split "\xc3\xa9" or make two names equal). */
    assert_null(proxy_proto_whole_text((const uint8_t *)"1234567\xc3\xa9", 9, out, sizeof(out)));
    assert_null(proxy_proto_whole_text((const uint8_t *)"12345678", 8, out, sizeof(out)));
    assert_int_equal(out[0], 'z');
}

static void test_unify_families(void **state)
{
    /* An IPv6 client, an IPv4 destination: the IPv4 end becomes mapped. */
    struct proxy_proto_info mixed = {.src = addr6("2001:db8::7", 4343),
                                     .dst = addr4("127.0.0.1", 443)};
    proxy_proto_unify_families(&mixed);
    check_v1(&mixed, "PROXY TCP6 2001:db8::7 ::ffff:127.0.0.1 4343 443\r\n");
    /* The other way round. */
    struct proxy_proto_info other = {.src = addr4("192.0.2.1", 1), .dst = addr6("::1", 2)};
    proxy_proto_unify_families(&other);
    check_v1(&other, "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n");
    /* One family already, or an end unknown: unchanged. */
    struct proxy_proto_info same = {.src = addr4("192.0.2.1", 1), .dst = addr4("192.0.2.2", 2)};
    proxy_proto_unify_families(&same);
    check_v1(&same, "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n");
    struct proxy_proto_info half = {.src = addr4("192.0.2.1", 1)};
    proxy_proto_unify_families(&half);
    assert_int_equal(half.src.family, AF_INET);
    check_v1(&half, "PROXY UNKNOWN\r\n");
}

static void test_v1_longest_fits_107(void **state)
{
    struct proxy_proto_info info = {
        .src = addr6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
        .dst = addr6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)};
    uint8_t out[128];
    size_t len = proxy_proto_encode(1, &info, out, sizeof(out));
    assert_int_equal(len, 104);
    assert_true(len <= PROXY_PROTO_V1_MAX_LEN);
    /* A buffer one byte short: nothing is written. */
    assert_int_equal(proxy_proto_encode(1, &info, out, 103), 0);
}

/* ---- v2 ------------------------------------------------------------------------ */

static void test_v2_ipv4_no_tlvs(void **state)
{
    struct proxy_proto_info info = {.src = addr4("192.0.2.1", 0x1234),
                                    .dst = addr4("198.51.100.2", 443)};
    static const uint8_t expected_tail[] = {
        0x21, 0x11, 0x00, 0x0c,                  /* v2 PROXY, TCP over IPv4, 12 bytes */
        192,  0,    2,    1,    198, 51, 100, 2, /* addresses */
        0x12, 0x34, 0x01, 0xbb,                  /* ports */
    };
    uint8_t out[64];
    size_t len = proxy_proto_encode(2, &info, out, sizeof(out));
    assert_int_equal(len, 28);
    assert_memory_equal(out, v2_sig, 12);
    assert_memory_equal(out + 12, expected_tail, sizeof(expected_tail));
}

static void test_v2_ipv6_and_local(void **state)
{
    struct proxy_proto_info info = {.src = addr6("2001:db8::1", 1), .dst = addr6("::1", 2)};
    uint8_t out[64];
    size_t len = proxy_proto_encode(2, &info, out, sizeof(out));
    assert_int_equal(len, 16 + 36);
    assert_int_equal(out[12], 0x21);
    assert_int_equal(out[13], 0x21); /* TCP over IPv6 */
    assert_int_equal(out[14], 0);
    assert_int_equal(out[15], 36);
    assert_memory_equal(out + 16, info.src.addr, 16);
    assert_memory_equal(out + 32, info.dst.addr, 16);
    assert_int_equal(out[48] << 8 | out[49], 1);
    assert_int_equal(out[50] << 8 | out[51], 2);

    info.local = true;
    len = proxy_proto_encode(2, &info, out, sizeof(out));
    static const uint8_t local[] = {0x20, 0x00, 0x00, 0x00};
    assert_int_equal(len, 16);
    assert_memory_equal(out + 12, local, 4);
}

/* expect_tlv checks that |*p| holds TLV |type| with |value|, and moves past. */
static void expect_tlv(const uint8_t **p, uint8_t type, const void *value, size_t len)
{
    assert_int_equal((*p)[0], type);
    assert_int_equal((*p)[1] << 8 | (*p)[2], len);
    assert_memory_equal(*p + 3, value, len);
    *p += 3 + len;
}

static void test_v2_every_tlv(void **state)
{
    static const uint8_t alpn[] = {'h', '2'};
    static const char unique_id[] = "0123456789abcdef";
    struct proxy_proto_ssl ssl = {.client = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN |
                                            PP2_CLIENT_CERT_SESS,
                                  .verify = 0,
                                  .version = "TLSv1.3",
                                  .cn = "client.example",
                                  .cipher = "TLS_AES_128_GCM_SHA256",
                                  .sig_alg = "ecdsa-with-SHA256",
                                  .key_alg = "EC256",
                                  .group = "X25519",
                                  .sig_scheme = "ecdsa_secp256r1_sha256"};
    struct proxy_proto_info info = {.src = addr4("192.0.2.1", 1000),
                                    .dst = addr4("192.0.2.2", 443),
                                    .alpn = alpn,
                                    .alpn_len = sizeof(alpn),
                                    .authority = "www.example.com",
                                    .unique_id = (const uint8_t *)unique_id,
                                    .unique_id_len = 16,
                                    .ssl = &ssl,
                                    .crc32c = true};
    uint8_t out[512];
    size_t len = proxy_proto_encode(2, &info, out, sizeof(out));
    assert_true(len > 28);
    assert_int_equal(out[14] << 8 | out[15], len - 16);

    const uint8_t *p = out + 28;
    expect_tlv(&p, PP2_TYPE_ALPN, "h2", 2);
    expect_tlv(&p, PP2_TYPE_AUTHORITY, "www.example.com", 15);
    expect_tlv(&p, PP2_TYPE_UNIQUE_ID, unique_id, 16);

    /* SSL: client, verify, then its sub-TLVs, all inside its length. */
    assert_int_equal(p[0], PP2_TYPE_SSL);
    size_t ssl_len = (size_t)(p[1] << 8 | p[2]);
    const uint8_t *ssl_end = p + 3 + ssl_len;
    assert_int_equal(p[3], 0x07);
    static const uint8_t verified[4] = {0, 0, 0, 0};
    assert_memory_equal(p + 4, verified, 4);
    p += 8;
    expect_tlv(&p, PP2_SUBTYPE_SSL_VERSION, "TLSv1.3", 7);
    expect_tlv(&p, PP2_SUBTYPE_SSL_CN, "client.example", 14);
    expect_tlv(&p, PP2_SUBTYPE_SSL_CIPHER, "TLS_AES_128_GCM_SHA256", 22);
    expect_tlv(&p, PP2_SUBTYPE_SSL_SIG_ALG, "ecdsa-with-SHA256", 17);
    expect_tlv(&p, PP2_SUBTYPE_SSL_KEY_ALG, "EC256", 5);
    expect_tlv(&p, PP2_SUBTYPE_SSL_GROUP, "X25519", 6);
    expect_tlv(&p, PP2_SUBTYPE_SSL_SIG_SCHEME, "ecdsa_secp256r1_sha256", 22);
    assert_ptr_equal(p, ssl_end);

    /* CRC32C last: over the whole header with its own field zeroed. */
    assert_int_equal(p[0], PP2_TYPE_CRC32C);
    assert_int_equal(p[1] << 8 | p[2], 4);
    uint32_t sent = (uint32_t)p[3] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
    assert_ptr_equal(p + 7, out + len);
    uint8_t copy[512];
    memcpy(copy, out, len);
    memset(copy + (p + 3 - out), 0, 4);
    assert_int_equal(proxy_proto_crc32c(0, copy, len), sent);

    /* The parser takes it whole, CRC checked. */
    struct proxy_proto_header header;
    assert_int_equal(proxy_proto_parse(out, len, &header), PROXY_PROTO_DONE);
    assert_int_equal(header.len, len);
    assert_true(header.has_addr);
    assert_int_equal(header.src.port, 1000);
    /* One bit flipped anywhere in a TLV breaks the CRC. */
    out[40] ^= 0x01;
    assert_int_equal(proxy_proto_parse(out, len, &header), PROXY_PROTO_MALFORMED);
    assert_string_equal(header.error, "v2 CRC32C does not match");
}

static void test_v2_absent_tlvs_and_limits(void **state)
{
    struct proxy_proto_ssl ssl = {.client = PP2_CLIENT_SSL, .verify = 1};
    struct proxy_proto_info info = {
        .src = addr4("192.0.2.1", 1), .dst = addr4("192.0.2.2", 2), .ssl = &ssl};
    uint8_t out[64];
    size_t len = proxy_proto_encode(2, &info, out, sizeof(out));
    /* Only the SSL TLV, with no sub-TLV: type, length 5, client, verify 1. */
    static const uint8_t ssl_tlv[] = {0x20, 0x00, 0x05, 0x01, 0x00, 0x00, 0x00, 0x01};
    assert_int_equal(len, 28 + sizeof(ssl_tlv));
    assert_memory_equal(out + 28, ssl_tlv, sizeof(ssl_tlv));
    /* Too small a buffer, a unique id over 128 bytes, an unknown version. */
    assert_int_equal(proxy_proto_encode(2, &info, out, 30), 0);
    uint8_t id[129] = {0};
    info.unique_id = id;
    info.unique_id_len = sizeof(id);
    assert_int_equal(proxy_proto_encode(2, &info, out, sizeof(out)), 0);
    assert_int_equal(proxy_proto_encode(3, &info, out, sizeof(out)), 0);
}

/* ---- parsing -------------------------------------------------------------------- */

/* parse_every_prefix checks that each proper prefix of |buf| needs more,
 * and that |buf| with trailing bytes parses to |len|. */
static void parse_every_prefix(const uint8_t *buf, size_t len, struct proxy_proto_header *out)
{
    uint8_t with_tail[PROXY_PROTO_MAX_LEN + 8];
    for (size_t i = 0; i < len; i++)
        assert_int_equal(proxy_proto_parse(buf, i, out), PROXY_PROTO_NEED_MORE);
    memcpy(with_tail, buf, len);
    memcpy(with_tail + len, "\x16\x03\x01\x02", 4); /* a ClientHello follows */
    assert_int_equal(proxy_proto_parse(with_tail, len + 4, out), PROXY_PROTO_DONE);
    assert_int_equal(out->len, len);
}

static void test_parse_v1(void **state)
{
    static const char line[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    struct proxy_proto_header h;
    parse_every_prefix((const uint8_t *)line, strlen(line), &h);
    assert_int_equal(h.version, 1);
    assert_true(h.has_addr);
    assert_int_equal(h.src.family, AF_INET);
    struct proxy_proto_addr src = addr4("192.0.2.1", 56324);
    assert_memory_equal(h.src.addr, src.addr, 4);
    assert_int_equal(h.src.port, 56324);
    assert_int_equal(h.dst.port, 443);

    static const char line6[] = "PROXY TCP6 2001:db8::1 ::1 1 0\r\n";
    parse_every_prefix((const uint8_t *)line6, strlen(line6), &h);
    assert_int_equal(h.src.family, AF_INET6);
    assert_int_equal(h.src.port, 1);

    static const char unknown[] = "PROXY UNKNOWN whatever follows\r\n";
    parse_every_prefix((const uint8_t *)unknown, strlen(unknown), &h);
    assert_false(h.has_addr);
}

static void test_parse_v2(void **state)
{
    struct proxy_proto_info info = {
        .src = addr6("2001:db8::7", 4242), .dst = addr6("::1", 443), .authority = "a.example"};
    uint8_t out[128];
    struct proxy_proto_header h;
    size_t len = proxy_proto_encode(2, &info, out, sizeof(out));
    parse_every_prefix(out, len, &h);
    assert_int_equal(h.version, 2);
    assert_true(h.has_addr);
    assert_memory_equal(h.src.addr, info.src.addr, 16);
    assert_int_equal(h.src.port, 4242);

    /* LOCAL: valid, but no address to use. */
    info.local = true;
    len = proxy_proto_encode(2, &info, out, sizeof(out));
    parse_every_prefix(out, len, &h);
    assert_false(h.has_addr);
}

static void expect_malformed(const void *buf, size_t len, const char *error)
{
    struct proxy_proto_header h;
    assert_int_equal(proxy_proto_parse(buf, len, &h), PROXY_PROTO_MALFORMED);
    assert_string_equal(h.error, error);
}

static void test_parse_malformed_v1(void **state)
{
    static const char *const no_sig[] = {"\x16\x03\x01", "GET / HTTP/1.1\r\n", "PROXZ"};
    for (size_t i = 0; i < 3; i++)
        expect_malformed(no_sig[i], strlen(no_sig[i]), "no PROXY protocol signature");
    const char *cases[][2] = {
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1 line ends without CR LF"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "v1 line has a CR not followed by LF"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1 line has too few fields"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "v1 line has too many fields"},
        {"PROXY TCP4  1.2.3.4 5.6.7.8 1\r\n", "v1 address is not one of its protocol"},
        {"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "v1 protocol is not TCP4, TCP6 or UNKNOWN"},
        {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "v1 address is not one of its protocol"},
        {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "v1 address is not one of its protocol"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "v1 port is not a number from 0 to 65535"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "v1 port is not a number from 0 to 65535"},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "v1 port is not a number from 0 to 65535"},
        {"PROXY TCP4 1.2.3.4\x01", "v1 line has a byte that is not printable ASCII"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_malformed(cases[i][0], strlen(cases[i][0]), cases[i][1]);

    /* 107 bytes without a line end: longer than any v1 line. */
    char longline[120];
    memset(longline, 'A', sizeof(longline));
    memcpy(longline, "PROXY ", 6);
    struct proxy_proto_header h;
    assert_int_equal(proxy_proto_parse((uint8_t *)longline, 106, &h), PROXY_PROTO_NEED_MORE);
    expect_malformed(longline, 107, "v1 line longer than 107 bytes");
}

static void test_parse_malformed_v2(void **state)
{
    uint8_t buf[PROXY_PROTO_MAX_LEN + 32];
    struct proxy_proto_info info = {
        .src = addr4("192.0.2.1", 1), .dst = addr4("192.0.2.2", 2), .authority = "x"};
    size_t len = proxy_proto_encode(2, &info, buf, sizeof(buf));
    assert_int_equal(len, 32);

    uint8_t bad[64];
    memcpy(bad, buf, len);
    bad[12] = 0x11; /* version 1 in a v2 header */
    expect_malformed(bad, len, "v2 header of an unknown version");
    memcpy(bad, buf, len);
    bad[12] = 0x22;
    expect_malformed(bad, len, "v2 command is neither LOCAL nor PROXY");
    memcpy(bad, buf, len);
    bad[13] = 0x41;
    expect_malformed(bad, len, "v2 address family unknown");
    memcpy(bad, buf, len);
    bad[13] = 0x13;
    expect_malformed(bad, len, "v2 transport unknown");
    memcpy(bad, buf, len);
    bad[13] = 0x12;
    expect_malformed(bad, len, "v2 header for a datagram connection");
    memcpy(bad, buf, len);
    bad[15] = 11;
    expect_malformed(bad, len, "v2 header too short for its addresses");
    memcpy(bad, buf, len);
    bad[30] = 5; /* the AUTHORITY TLV says 5 bytes, 1 is there */
    expect_malformed(bad, len, "v2 TLV longer than the header");
    memcpy(bad, buf, len);
    bad[15] = 14; /* two bytes of a TLV header */
    expect_malformed(bad, len - 2, "v2 TLV cut short");
    memcpy(bad, buf, len);
    bad[14] = 0x08; /* 2048 + 4 bytes */
    bad[15] = 0x04;
    expect_malformed(bad, len, "v2 header longer than tlsterm accepts (2048 bytes)");

    /* The largest payload accepted: 2032 bytes of NOOP TLV after IPv4. */
    memcpy(bad, buf, 28);
    size_t payload = PROXY_PROTO_V2_MAX_PAYLOAD;
    memcpy(buf, bad, 28);
    buf[14] = (uint8_t)(payload >> 8);
    buf[15] = (uint8_t)payload;
    size_t noop = payload - 12 - 3;
    buf[28] = PP2_TYPE_NOOP;
    buf[29] = (uint8_t)(noop >> 8);
    buf[30] = (uint8_t)noop;
    memset(buf + 31, 0, noop);
    struct proxy_proto_header h;
    assert_int_equal(proxy_proto_parse(buf, 16 + payload, &h), PROXY_PROTO_DONE);
    assert_int_equal(h.len, PROXY_PROTO_MAX_LEN);

    /* A CRC32C TLV of the wrong size. */
    static const uint8_t crc3[] = {0x21, 0x00, 0x00, 0x06, PP2_TYPE_CRC32C,
                                   0x00, 0x03, 1,    2,    3};
    memcpy(bad, v2_sig, 12);
    memcpy(bad + 12, crc3, sizeof(crc3));
    bad[13] = 0x00; /* UNSPEC: no address block */
    expect_malformed(bad, 12 + sizeof(crc3), "v2 CRC32C TLV is not 4 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value),
        cmocka_unit_test(test_v1_ipv4),
        cmocka_unit_test(test_v1_ipv6),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_whole_text),
        cmocka_unit_test(test_unify_families),
        cmocka_unit_test(test_v1_longest_fits_107),
        cmocka_unit_test(test_v2_ipv4_no_tlvs),
        cmocka_unit_test(test_v2_ipv6_and_local),
        cmocka_unit_test(test_v2_every_tlv),
        cmocka_unit_test(test_v2_absent_tlvs_and_limits),
        cmocka_unit_test(test_parse_v1),
        cmocka_unit_test(test_parse_v2),
        cmocka_unit_test(test_parse_malformed_v1),
        cmocka_unit_test(test_parse_malformed_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
