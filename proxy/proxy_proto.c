/* proxy_proto: the PROXY protocol, v1 and v2. See proxy_proto.h. */
#include "proxy_proto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_signature[] = "PROXY ";

/* v2's command (low nibble of byte 12; the high nibble is the version). */
enum { V2_LOCAL = 0x0, V2_PROXY = 0x1 };
/* v2's address families (high nibble of byte 13) and transports (low). */
enum { V2_AF_UNSPEC = 0x0, V2_AF_INET = 0x1, V2_AF_INET6 = 0x2, V2_AF_UNIX = 0x3 };
enum { V2_UNSPEC = 0x0, V2_STREAM = 0x1, V2_DGRAM = 0x2 };

/* ---- CRC-32C ------------------------------------------------------------- */

/* The reflected Castagnoli polynomial 0x82F63B78, one entry per byte value
 * (zlib only has the IEEE polynomial). */
static const uint32_t crc32c_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8,
    0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3,
    0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070,
    0x25afd373, 0x36ff2087, 0xc494a384, 0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54,
    0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29,
    0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
    0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa, 0x30e349b1,
    0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
    0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696,
    0x6ef07595, 0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0,
    0x67dafa54, 0x95b17957, 0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c,
    0xfe53516f, 0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
    0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f, 0x3ac7f2eb,
    0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7, 0x61c69362, 0x93ad1061,
    0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789, 0xeb1fcbad,
    0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
    0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5,
    0xa55230e6, 0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
    0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67,
    0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043,
    0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c, 0x92a8fc17, 0x60c37f14, 0x73938ce0,
    0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db,
    0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6,
    0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81,
    0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5,
    0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19,
    0x0d3d3e1a, 0x1e6dcdee, 0xec064eed, 0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530,
    0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc,
    0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
    0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540, 0x590ab964,
    0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
    0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2,
    0x37faccf1, 0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9,
    0x4f48173d, 0xbd23943e, 0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a,
    0xc69f7b69, 0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
    0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351};

uint32_t proxy_proto_crc32c(uint32_t crc, const uint8_t *data, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc32c_table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- encoding ------------------------------------------------------------ */

/* struct writer appends to a caller's buffer; |overflow| once something did
 * not fit, after which nothing more is written. */
struct writer {
    uint8_t *buf;
    size_t len, cap;
    bool overflow;
};

static void put(struct writer *w, const void *data, size_t len)
{
    if (w->overflow || len > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    if (len > 0)
        memcpy(w->buf + w->len, data, len);
    w->len += len;
}

static void put_u8(struct writer *w, uint8_t v) { put(w, &v, 1); }

static void put_u16(struct writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

static void put_u32(struct writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

/* put_tlv writes one TLV, unless |value| is absent. */
static void put_tlv(struct writer *w, uint8_t type, const void *value, size_t len)
{
    if (value == NULL || len == 0)
        return;
    if (len > UINT16_MAX) {
        w->overflow = true;
        return;
    }
    put_u8(w, type);
    put_u16(w, (uint16_t)len);
    put(w, value, len);
}

static void put_tlv_text(struct writer *w, uint8_t type, const char *text)
{
    put_tlv(w, type, text, text != NULL ? strlen(text) : 0);
}

/* same_known_family says whether both ends have the same, known family:
 * only then are addresses written. */
static bool same_known_family(const struct proxy_proto_info *info)
{
    return !info->local && info->src.family == info->dst.family &&
           (info->src.family == AF_INET || info->src.family == AF_INET6);
}

const char *proxy_proto_whole_text(const uint8_t *text, size_t len, char *out, size_t out_size)
{
    if (len >= out_size || memchr(text, 0, len) != NULL)
        return NULL;
    memcpy(out, text, len);
    out[len] = '\0';
    return out;
}

static bool known(const struct proxy_proto_addr *end)
{
    return end->family == AF_INET || end->family == AF_INET6;
}

static void map_to_v6(struct proxy_proto_addr *end)
{
    uint8_t v4[4];

    if (end->family != AF_INET)
        return;
    memcpy(v4, end->addr, 4);
    memset(end->addr, 0, 10);
    end->addr[10] = 0xff;
    end->addr[11] = 0xff;
    memcpy(end->addr + 12, v4, 4);
    end->family = AF_INET6;
}

void proxy_proto_unify_families(struct proxy_proto_info *info)
{
    if (!known(&info->src) || !known(&info->dst) || info->src.family == info->dst.family)
        return;
    map_to_v6(&info->src);
    map_to_v6(&info->dst);
}

static size_t encode_v1(const struct proxy_proto_info *info, uint8_t *out, size_t out_len)
{
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    char line[PROXY_PROTO_V1_MAX_LEN + 1];
    int n;

    if (!same_known_family(info)) {
        n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
    } else {
        int family = info->src.family;
        inet_ntop(family, info->src.addr, src, sizeof(src));
        inet_ntop(family, info->dst.addr, dst, sizeof(dst));
        n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                     family == AF_INET ? "TCP4" : "TCP6", src, dst, info->src.port,
                     info->dst.port);
    }
    if (n <= 0 || (size_t)n >= sizeof(line) || (size_t)n > out_len)
        return 0;
    memcpy(out, line, (size_t)n);
    return (size_t)n;
}

static void put_ssl(struct writer *w, const struct proxy_proto_ssl *ssl)
{
    size_t start = w->len;

    put_u8(w, PP2_TYPE_SSL);
    put_u16(w, 0); /* the length, once known */
    put_u8(w, ssl->client);
    put_u32(w, ssl->verify);
    put_tlv_text(w, PP2_SUBTYPE_SSL_VERSION, ssl->version);
    put_tlv_text(w, PP2_SUBTYPE_SSL_CN, ssl->cn);
    put_tlv_text(w, PP2_SUBTYPE_SSL_CIPHER, ssl->cipher);
    put_tlv_text(w, PP2_SUBTYPE_SSL_SIG_ALG, ssl->sig_alg);
    put_tlv_text(w, PP2_SUBTYPE_SSL_KEY_ALG, ssl->key_alg);
    put_tlv_text(w, PP2_SUBTYPE_SSL_GROUP, ssl->group);
    put_tlv_text(w, PP2_SUBTYPE_SSL_SIG_SCHEME, ssl->sig_scheme);
    if (w->overflow)
        return;
    size_t value_len = w->len - start - 3;
    if (value_len > UINT16_MAX) {
        w->overflow = true;
        return;
    }
    w->buf[start + 1] = (uint8_t)(value_len >> 8);
    w->buf[start + 2] = (uint8_t)value_len;
}

static size_t encode_v2(const struct proxy_proto_info *info, uint8_t *out, size_t out_len)
{
    struct writer w = {.buf = out, .cap = out_len};
    bool addresses = same_known_family(info);
    int family = info->src.family;
    size_t crc_at = 0;

    if (info->unique_id_len > PP2_UNIQUE_ID_MAX)
        return 0;
    put(&w, v2_signature, sizeof(v2_signature));
    put_u8(&w, (uint8_t)(0x20 | (info->local ? V2_LOCAL : V2_PROXY)));
    if (!addresses)
        put_u8(&w, V2_AF_UNSPEC << 4 | V2_UNSPEC);
    else
        put_u8(&w, (uint8_t)((family == AF_INET ? V2_AF_INET : V2_AF_INET6) << 4 | V2_STREAM));
    put_u16(&w, 0); /* the payload's length, once known */
    if (addresses) {
        size_t addr_len = family == AF_INET ? 4 : 16;
        put(&w, info->src.addr, addr_len);
        put(&w, info->dst.addr, addr_len);
        put_u16(&w, info->src.port);
        put_u16(&w, info->dst.port);
    }
    put_tlv(&w, PP2_TYPE_ALPN, info->alpn, info->alpn_len);
    put_tlv_text(&w, PP2_TYPE_AUTHORITY, info->authority);
    put_tlv(&w, PP2_TYPE_UNIQUE_ID, info->unique_id, info->unique_id_len);
    if (info->ssl != NULL)
        put_ssl(&w, info->ssl);
    if (info->crc32c) {
        static const uint8_t zero[4];
        crc_at = w.len + 3;
        put_tlv(&w, PP2_TYPE_CRC32C, zero, sizeof(zero));
    }
    if (w.overflow || w.len - 16 > UINT16_MAX)
        return 0;
    out[14] = (uint8_t)((w.len - 16) >> 8);
    out[15] = (uint8_t)(w.len - 16);
    if (info->crc32c) {
        /* Over the whole header with the CRC field zeroed, as it is now. */
        uint32_t crc = proxy_proto_crc32c(0, out, w.len);
        out[crc_at] = (uint8_t)(crc >> 24);
        out[crc_at + 1] = (uint8_t)(crc >> 16);
        out[crc_at + 2] = (uint8_t)(crc >> 8);
        out[crc_at + 3] = (uint8_t)crc;
    }
    return w.len;
}

size_t proxy_proto_encode(int version, const struct proxy_proto_info *info, uint8_t *out,
                          size_t out_len)
{
    if (version == 1)
        return encode_v1(info, out, out_len);
    if (version == 2)
        return encode_v2(info, out, out_len);
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

static enum proxy_proto_result malformed(struct proxy_proto_header *out, const char *error)
{
    out->error = error;
    return PROXY_PROTO_MALFORMED;
}

/* parse_port reads a decimal port (no sign, no leading zero) of |len|
 * bytes at |text|; -1 if it is not one. */
static int parse_port(const char *text, size_t len)
{
    unsigned value = 0;
    if (len == 0 || len > 5 || (text[0] == '0' && len > 1))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        value = value * 10 + (unsigned)(text[i] - '0');
    }
    return value <= UINT16_MAX ? (int)value : -1;
}

/* parse_v1_addr reads the address of |len| bytes at |text| in |family|. */
static bool parse_v1_addr(const char *text, size_t len, int family,
                          struct proxy_proto_addr *out)
{
    char copy[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(copy))
        return false;
    memcpy(copy, text, len);
    copy[len] = '\0';
    out->family = family;
    return inet_pton(family, copy, out->addr) == 1;
}

/* parse_v1_line reads the line |line| of |len| bytes (CRLF excluded) after
 * its "PROXY " signature. */
static enum proxy_proto_result parse_v1_line(const char *line, size_t len,
                                             struct proxy_proto_header *out)
{
    const char *fields[5];
    size_t lens[5];
    size_t num = 0, start = 0;
    int family;

    if (len >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (len == 7 || line[7] == ' '))
        return PROXY_PROTO_DONE; /* the rest of the line is ignored */
    /* Exactly five fields, one space apart. */
    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != ' ')
            continue;
        if (num == 5)
            return malformed(out, "v1 line has too many fields");
        fields[num] = line + start;
        lens[num++] = i - start;
        start = i + 1;
    }
    if (num != 5)
        return malformed(out, "v1 line has too few fields");
    if (lens[0] == 4 && memcmp(fields[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (lens[0] == 4 && memcmp(fields[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return malformed(out, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    if (!parse_v1_addr(fields[1], lens[1], family, &out->src) ||
        !parse_v1_addr(fields[2], lens[2], family, &out->dst))
        return malformed(out, "v1 address is not one of its protocol");
    int src_port = parse_port(fields[3], lens[3]);
    int dst_port = parse_port(fields[4], lens[4]);
    if (src_port < 0 || dst_port < 0)
        return malformed(out, "v1 port is not a number from 0 to 65535");
    out->src.port = (uint16_t)src_port;
    out->dst.port = (uint16_t)dst_port;
    out->has_addr = true;
    return PROXY_PROTO_DONE;
}

static enum proxy_proto_result parse_v1(const uint8_t *buf, size_t len,
                                        struct proxy_proto_header *out)
{
    size_t scan = len < PROXY_PROTO_V1_MAX_LEN ? len : PROXY_PROTO_V1_MAX_LEN;

    out->version = 1;
    for (size_t i = sizeof(v1_signature) - 1; i < scan; i++) {
        if (buf[i] == '\n') {
            if (buf[i - 1] != '\r')
                return malformed(out, "v1 line ends without CR LF");
            out->len = i + 1;
            return parse_v1_line((const char *)buf + 6, i - 1 - 6, out);
        }
        if (buf[i] != '\r' && (buf[i] < 0x20 || buf[i] > 0x7e))
            return malformed(out, "v1 line has a byte that is not printable ASCII");
        if (buf[i] == '\r' && i + 1 < scan && buf[i + 1] != '\n')
            return malformed(out, "v1 line has a CR not followed by LF");
    }
    if (len >= PROXY_PROTO_V1_MAX_LEN)
        return malformed(out, "v1 line longer than 107 bytes");
    return PROXY_PROTO_NEED_MORE;
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* check_tlvs walks the TLVs of the v2 header |hdr| of |hdr_len| bytes from
 * |at|: each must fit, and a CRC32C must match. */
static enum proxy_proto_result check_tlvs(const uint8_t *hdr, size_t hdr_len, size_t at,
                                          struct proxy_proto_header *out)
{
    while (at < hdr_len) {
        if (hdr_len - at < 3)
            return malformed(out, "v2 TLV cut short");
        uint8_t type = hdr[at];
        size_t value_len = get_u16(hdr + at + 1);
        size_t value_at = at + 3;
        if (value_len > hdr_len - value_at)
            return malformed(out, "v2 TLV longer than the header");
        if (type == PP2_TYPE_CRC32C) {
            static const uint8_t zero[4];
            if (value_len != 4)
                return malformed(out, "v2 CRC32C TLV is not 4 bytes");
            uint32_t crc = proxy_proto_crc32c(0, hdr, value_at);
            crc = proxy_proto_crc32c(crc, zero, 4);
            crc = proxy_proto_crc32c(crc, hdr + value_at + 4, hdr_len - value_at - 4);
            uint32_t sent =
                (uint32_t)get_u16(hdr + value_at) << 16 | get_u16(hdr + value_at + 2);
            if (crc != sent)
                return malformed(out, "v2 CRC32C does not match");
        }
        at = value_at + value_len;
    }
    return PROXY_PROTO_DONE;
}

static void get_v2_addrs(const uint8_t *block, int family, size_t addr_len,
                         struct proxy_proto_header *out)
{
    out->src.family = out->dst.family = family;
    memcpy(out->src.addr, block, addr_len);
    memcpy(out->dst.addr, block + addr_len, addr_len);
    out->src.port = get_u16(block + 2 * addr_len);
    out->dst.port = get_u16(block + 2 * addr_len + 2);
    out->has_addr = true;
}

static enum proxy_proto_result parse_v2(const uint8_t *buf, size_t len,
                                        struct proxy_proto_header *out)
{
    out->version = 2;
    if (len < 16)
        return PROXY_PROTO_NEED_MORE;
    uint8_t version = buf[12] >> 4, command = buf[12] & 0x0f;
    uint8_t family = buf[13] >> 4, transport = buf[13] & 0x0f;
    size_t payload = get_u16(buf + 14);
    size_t addr_block;

    if (version != 2)
        return malformed(out, "v2 header of an unknown version");
    if (command != V2_LOCAL && command != V2_PROXY)
        return malformed(out, "v2 command is neither LOCAL nor PROXY");
    if (payload > PROXY_PROTO_V2_MAX_PAYLOAD)
        return malformed(out, "v2 header longer than tlsterm accepts (2048 bytes)");
    switch (family) {
    case V2_AF_UNSPEC:
        addr_block = 0;
        break;
    case V2_AF_INET:
        addr_block = 12;
        break;
    case V2_AF_INET6:
        addr_block = 36;
        break;
    case V2_AF_UNIX:
        addr_block = 216;
        break;
    default:
        return malformed(out, "v2 address family unknown");
    }
    if (transport > V2_DGRAM || (transport == V2_UNSPEC) != (family == V2_AF_UNSPEC))
        return malformed(out, "v2 transport unknown");
    if (command == V2_PROXY && transport == V2_DGRAM)
        return malformed(out, "v2 header for a datagram connection");
    if (payload < addr_block)
        return malformed(out, "v2 header too short for its addresses");
    if (len < 16 + payload)
        return PROXY_PROTO_NEED_MORE;
    out->len = 16 + payload;
    enum proxy_proto_result result = check_tlvs(buf, out->len, 16 + addr_block, out);
    if (result != PROXY_PROTO_DONE)
        return result;
    /* LOCAL (a health check of the balancer's own), and unix sockets,
     * carry no address to use. */
    if (command == V2_PROXY && family == V2_AF_INET)
        get_v2_addrs(buf + 16, AF_INET, 4, out);
    else if (command == V2_PROXY && family == V2_AF_INET6)
        get_v2_addrs(buf + 16, AF_INET6, 16, out);
    return PROXY_PROTO_DONE;
}

enum proxy_proto_result proxy_proto_parse(const uint8_t *buf, size_t len,
                                          struct proxy_proto_header *out)
{
    memset(out, 0, sizeof(*out));
    size_t v1_sig_len = sizeof(v1_signature) - 1;
    size_t n1 = len < v1_sig_len ? len : v1_sig_len;
    size_t n2 = len < sizeof(v2_signature) ? len : sizeof(v2_signature);

    if (len == 0)
        return PROXY_PROTO_NEED_MORE;
    if (memcmp(buf, v1_signature, n1) == 0)
        return len < v1_sig_len ? PROXY_PROTO_NEED_MORE : parse_v1(buf, len, out);
    if (memcmp(buf, v2_signature, n2) == 0)
        return parse_v2(buf, len, out);
    return malformed(out, "no PROXY protocol signature");
}
