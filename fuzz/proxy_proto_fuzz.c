/* proxy_proto_fuzz: libFuzzer target for proxy_proto, the PROXY protocol
 * parser that reads a load balancer's header before anything else on a
 * connection, and its encoder. See fuzz/README.md.
 *
 * Two checks per input. The parser runs on the bytes as they are, and on
 * every prefix up to the verdict: a prefix of a header may only need more,
 * never be judged differently, and a header found is never longer than the
 * input. Then the input drives the encoder (addresses, ports, TLV values
 * taken from it) and what the encoder writes must parse back to the same
 * addresses and length: a round trip. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parse(const uint8_t *data, size_t size)
{
    struct proxy_proto_header header, prefix;
    enum proxy_proto_result result = proxy_proto_parse(data, size, &header);

    if (result == PROXY_PROTO_MALFORMED) {
        assert(header.error != NULL);
        return;
    }
    if (result == PROXY_PROTO_NEED_MORE)
        return;
    assert(header.len > 0 && header.len <= size && header.len <= PROXY_PROTO_MAX_LEN);
    assert(header.version == 1 || header.version == 2);
    if (header.has_addr)
        assert(header.src.family == AF_INET || header.src.family == AF_INET6);
    /* The header alone parses the same; any shorter prefix needs more. */
    assert(proxy_proto_parse(data, header.len, &prefix) == PROXY_PROTO_DONE);
    assert(prefix.len == header.len);
    assert(proxy_proto_parse(data, header.len - 1, &prefix) == PROXY_PROTO_NEED_MORE);
}

/* take copies |len| bytes of the input into |out| (zeros past its end). */
static const void *take(const uint8_t **data, size_t *size, void *out, size_t len)
{
    size_t n = *size < len ? *size : len;
    memset(out, 0, len);
    memcpy(out, *data, n);
    *data += n;
    *size -= n;
    return out;
}

static void check_round_trip(const uint8_t *data, size_t size)
{
    uint8_t flags = 0, lens[4];
    char authority[64] = {0}, cn[32] = {0}, cipher[32] = {0};
    uint8_t alpn[32], unique_id[PP2_UNIQUE_ID_MAX];
    struct proxy_proto_info info = {0};
    struct proxy_proto_ssl ssl = {0};
    uint8_t out[PROXY_PROTO_MAX_LEN];
    struct proxy_proto_header header;

    take(&data, &size, &flags, 1);
    take(&data, &size, lens, sizeof(lens));
    info.local = flags & 0x01;
    info.src.family = info.dst.family = (flags & 0x02) ? AF_INET6 : AF_INET;
    take(&data, &size, info.src.addr, 16);
    take(&data, &size, info.dst.addr, 16);
    take(&data, &size, &info.src.port, 2);
    take(&data, &size, &info.dst.port, 2);
    info.alpn_len = lens[0] % sizeof(alpn);
    info.alpn = take(&data, &size, alpn, info.alpn_len);
    info.unique_id_len = lens[1] % (PP2_UNIQUE_ID_MAX + 1);
    info.unique_id = take(&data, &size, unique_id, info.unique_id_len);
    /* C strings: NULs cut them short, as a real SNI cannot hold one. */
    info.authority = take(&data, &size, authority, sizeof(authority) - 1);
    if (flags & 0x04) {
        ssl.client = (uint8_t)lens[2];
        ssl.verify = lens[3];
        ssl.cn = take(&data, &size, cn, sizeof(cn) - 1);
        ssl.cipher = take(&data, &size, cipher, sizeof(cipher) - 1);
        ssl.version = "TLSv1.3";
        info.ssl = &ssl;
    }
    info.crc32c = flags & 0x08;
    int version = (flags & 0x10) ? 1 : 2;

    size_t len = proxy_proto_encode(version, &info, out, sizeof(out));
    assert(len > 0);
    assert(version == 2 || len <= PROXY_PROTO_V1_MAX_LEN);
    assert(proxy_proto_parse(out, len, &header) == PROXY_PROTO_DONE);
    assert(header.len == len && header.version == version);
    assert(header.has_addr == !info.local);
    if (header.has_addr) {
        size_t addr_len = info.src.family == AF_INET ? 4 : 16;
        assert(header.src.family == info.src.family);
        assert(memcmp(header.src.addr, info.src.addr, addr_len) == 0);
        assert(memcmp(header.dst.addr, info.dst.addr, addr_len) == 0);
        assert(header.src.port == info.src.port && header.dst.port == info.dst.port);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse(data, size);
    check_round_trip(data, size);
    return 0;
}
