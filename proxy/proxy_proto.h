/* proxy_proto: the PROXY protocol (HAProxy's proxy-protocol.txt), version 1
 * (a text line) and version 2 (binary, with TLVs), as pure functions: an
 * encoder that writes a header into a caller's buffer, and a parser that
 * reads one from the start of a byte stream. Neither touches a socket, so
 * both are unit-tested and fuzzed (fuzz/proxy_proto_fuzz.c); the
 * connection-side glue is proxy_header.h.
 *
 * The parser works on a prefix of the stream: it is called again with a
 * longer prefix for as long as it says PROXY_PROTO_NEED_MORE. It detects
 * the version by its signature ("PROXY " or the 12-byte v2 signature) and
 * refuses anything else: a header is never guessed. */
#ifndef TLSTERM_PROXY_PROTO_H
#define TLSTERM_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The v1 line is at most 107 bytes, CRLF included (the specification's
 * bound for "PROXY TCP6" with the longest addresses). */
#define PROXY_PROTO_V1_MAX_LEN 107
/* A v2 header is 16 bytes and a payload; the parser refuses a payload
 * longer than this (the specification allows 65535, which no sender we
 * know of needs: AWS, GCP, HAProxy and Envoy send a few hundred bytes). */
#define PROXY_PROTO_V2_MAX_PAYLOAD 2032
#define PROXY_PROTO_MAX_LEN (16 + PROXY_PROTO_V2_MAX_PAYLOAD)

/* v2 TLV types and the SSL TLV's client bits, from the specification. */
enum {
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_NOOP = 0x04,
    PP2_TYPE_UNIQUE_ID = 0x05,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
    PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
    PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
    PP2_SUBTYPE_SSL_GROUP = 0x26,
    PP2_SUBTYPE_SSL_SIG_SCHEME = 0x27,
};
enum {
    PP2_CLIENT_SSL = 0x01,
    PP2_CLIENT_CERT_CONN = 0x02,
    PP2_CLIENT_CERT_SESS = 0x04,
};
/* UNIQUE_ID is at most 128 bytes (the specification). */
#define PP2_UNIQUE_ID_MAX 128

/* struct proxy_proto_addr is one end of the proxied connection. */
struct proxy_proto_addr {
    int family;       /* AF_INET or AF_INET6; 0: unknown */
    uint8_t addr[16]; /* network byte order; 4 bytes used for AF_INET */
    uint16_t port;    /* host byte order */
};

/* struct proxy_proto_ssl is what the SSL TLV says of the client's TLS
 * connection. Each string is a C string, or NULL to leave its sub-TLV
 * out. */
struct proxy_proto_ssl {
    uint8_t client;  /* PP2_CLIENT_* bits */
    uint32_t verify; /* 0: a client certificate was presented and verified */
    const char *version;
    const char *cn; /* the client certificate's subject CN (mTLS) */
    const char *cipher;
    const char *sig_alg; /* how the certificate served is signed */
    const char *key_alg; /* the served certificate's key, e.g. "RSA2048" */
    const char *group;
    const char *sig_scheme;
};

/* struct proxy_proto_info is what a header says. With |local| (or ends of
 * unknown or different families) it says nothing of the addresses: v1
 * writes "PROXY UNKNOWN", v2 the LOCAL command (|local|) or family UNSPEC.
 * The TLVs are written by v2 only; a NULL pointer or zero length leaves
 * one out. */
struct proxy_proto_info {
    bool local;
    struct proxy_proto_addr src, dst;
    const uint8_t *alpn;
    size_t alpn_len;
    const char *authority; /* the SNI */
    const uint8_t *unique_id;
    size_t unique_id_len; /* at most PP2_UNIQUE_ID_MAX */
    const struct proxy_proto_ssl *ssl;
    bool crc32c; /* add a CRC32C TLV over the whole header */
};

/* proxy_proto_whole_text copies the |len| bytes at |text| and a NUL into
 * |out| of |out_size| bytes and returns |out|; or returns NULL, |out| left
 * as it was, when they hold a NUL or do not fit. A text TLV (the client
 * certificate's CN) is sent whole or not at all: cut at a NUL or at the
 * buffer's end it could equal another one, or split a UTF-8 character. */
const char *proxy_proto_whole_text(const uint8_t *text, size_t len, char *out, size_t out_size);

/* proxy_proto_unify_families makes |info|'s two ends one family when both
 * are known and they differ (a client of one family behind a balancer
 * reached over the other): the IPv4 end becomes an IPv4-mapped IPv6
 * address (::ffff:a.b.c.d), so the header keeps both addresses instead of
 * saying UNKNOWN. */
void proxy_proto_unify_families(struct proxy_proto_info *info);

/* proxy_proto_encode writes the version |version| (1 or 2) header for
 * |info| into |out| of |out_len| bytes and returns its length, or 0 when
 * it does not fit (or |info| cannot be written: a unique id too long, a
 * v2 payload over 65535 bytes). */
size_t proxy_proto_encode(int version, const struct proxy_proto_info *info, uint8_t *out,
                          size_t out_len);

enum proxy_proto_result {
    PROXY_PROTO_NEED_MORE, /* a valid start of a header: more bytes needed */
    PROXY_PROTO_DONE,      /* a whole header; see struct proxy_proto_header */
    PROXY_PROTO_MALFORMED, /* not a header, or a broken one */
};

/* struct proxy_proto_header is what the parser found. */
struct proxy_proto_header {
    int version;   /* 1 or 2 */
    size_t len;    /* bytes of the header: the stream goes on after them */
    bool has_addr; /* false: LOCAL, UNKNOWN, UNSPEC or unix: keep the real addresses */
    struct proxy_proto_addr src, dst;
    const char *error; /* PROXY_PROTO_MALFORMED: what is wrong (static text) */
};

/* proxy_proto_parse reads a header from the start of |buf| (|len| bytes
 * of the stream so far) into |*out|. A v2 header's TLVs are walked (each
 * must fit) and skipped, except CRC32C, which is checked when present. */
enum proxy_proto_result proxy_proto_parse(const uint8_t *buf, size_t len,
                                          struct proxy_proto_header *out);

/* proxy_proto_crc32c returns the CRC-32C (Castagnoli) of |len| bytes at
 * |data|, continuing from |crc| (0 to start). */
uint32_t proxy_proto_crc32c(uint32_t crc, const uint8_t *data, size_t len);

#endif
