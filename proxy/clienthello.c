/* clienthello: ClientHello summary, JA4, JA3 and log fields. See
 * clienthello.h.
 *
 * Every read of the client's bytes goes through CBS, which never reads past
 * its end. The hello is walked a few times (framing, extension bodies,
 * fingerprints) rather than copied, since a copy of an arbitrary hello
 * would need the heap. */
#include "clienthello.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/md5.h>
#include <openssl/sha.h>

/* Extension types this module looks into. */
enum {
    EXT_SERVER_NAME = 0x0000,
    EXT_SUPPORTED_GROUPS = 0x000a,
    EXT_EC_POINT_FORMATS = 0x000b,
    EXT_SIGNATURE_ALGORITHMS = 0x000d,
    EXT_ALPN = 0x0010,
    EXT_SUPPORTED_VERSIONS = 0x002b,
};

/* What the walk over the extensions found: the inner list of each decoded
 * extension whose body parsed. */
struct decoded_exts {
    CBS versions, groups, sigalgs, alpn, point_formats;
    bool has_versions, has_groups, has_sigalgs, has_alpn, has_point_formats;
};

/* list_next reads the next value of a checked list into |out|: a 16-bit
 * value, or an extension type (its body skipped) when |is_extensions|. */
static bool list_next(CBS *list, bool is_extensions, uint16_t *out)
{
    CBS body;
    return CBS_get_u16(list, out) &&
           (!is_extensions || CBS_get_u16_length_prefixed(list, &body));
}

/* ---- fingerprints ---------------------------------------------------------- */

/* ja4_skips returns true for values JA4 leaves out of its sorted lists:
 * GREASE everywhere, and SNI and ALPN among extensions, which its first
 * part already shows. */
static bool ja4_skips(uint16_t value, bool is_extensions)
{
    return clienthello_is_grease(value) ||
           (is_extensions && (value == EXT_SERVER_NAME || value == EXT_ALPN));
}

static const char hex_digits[] = "0123456789abcdef";

/* struct digest_input batches the short pieces a fingerprint string is made
 * of (",c02f", "-49199") into a few digest updates: one update per piece
 * cost more than the rest of the summary. */
struct digest_input {
    bool is_md5;
    union {
        SHA256_CTX sha256;
        MD5_CTX md5;
    } ctx;
    size_t len;
    char buf[256];
};

static void digest_begin(struct digest_input *in, bool is_md5)
{
    in->is_md5 = is_md5;
    in->len = 0;
    if (is_md5)
        MD5_Init(&in->ctx.md5);
    else
        SHA256_Init(&in->ctx.sha256);
}

static void digest_flush(struct digest_input *in)
{
    if (in->is_md5)
        MD5_Update(&in->ctx.md5, in->buf, in->len);
    else
        SHA256_Update(&in->ctx.sha256, in->buf, in->len);
    in->len = 0;
}

/* digest_room returns where the next |len| bytes (at most 8) go. */
static char *digest_room(struct digest_input *in, size_t len)
{
    if (in->len + len > sizeof(in->buf))
        digest_flush(in);
    char *room = in->buf + in->len;
    in->len += len;
    return room;
}

static void digest_char(struct digest_input *in, char ch) { *digest_room(in, 1) = ch; }

/* digest_hex4 adds |sep| unless it is NUL, then |value| as 4 lower-case hex
 * digits: JA4's form. */
static void digest_hex4(struct digest_input *in, char sep, uint16_t value)
{
    if (sep != '\0')
        digest_char(in, sep);
    char *room = digest_room(in, 4);
    room[0] = hex_digits[value >> 12];
    room[1] = hex_digits[(value >> 8) & 15];
    room[2] = hex_digits[(value >> 4) & 15];
    room[3] = hex_digits[value & 15];
}

/* digest_decimal adds |sep| unless it is NUL, then |value| in decimal:
 * JA3's form. */
static void digest_decimal(struct digest_input *in, char sep, unsigned value)
{
    char text[5];
    size_t start = sizeof(text);

    if (sep != '\0')
        digest_char(in, sep);
    do {
        text[--start] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    memcpy(digest_room(in, sizeof(text) - start), text + start, sizeof(text) - start);
}

/* JA4 hashes its lists sorted. A list of up to SORT_MAX values, which covers
 * every real client (browsers send under 20, "openssl -cipher ALL" 84), is
 * copied to the stack and sorted there. */
enum { SORT_MAX = 128 };

/* Longer lists, from odd or hostile clients only (a hello may hold 32767
 * cipher suites), are sorted by counting without a copy: a first pass notes
 * which bands of 4096 values (the top 4 bits) occur, then one pass per band
 * present counts its values. That bounds the work to 17 passes over the list
 * and the table to 8 KiB whatever the client sends. */
enum { BAND_BITS = 12, BAND_SIZE = 1 << BAND_BITS, NUM_BANDS = 1 << (16 - BAND_BITS) };

/* digest_sorted_long is digest_sorted for lists longer than SORT_MAX. */
static size_t digest_sorted_long(struct digest_input *in, const CBS *list, bool is_extensions,
                                 bool *out_repeats)
{
    uint16_t counts[BAND_SIZE] = {0};
    uint64_t seen[BAND_SIZE / 64] = {0};
    unsigned bands = 0;
    size_t num_added = 0;
    uint16_t value;
    CBS walk = *list;

    while (list_next(&walk, is_extensions, &value)) {
        if (!ja4_skips(value, is_extensions))
            bands |= 1u << (value >> BAND_BITS);
    }
    for (unsigned band = 0; band < NUM_BANDS; band++) {
        if ((bands & (1u << band)) == 0)
            continue;
        walk = *list;
        while (list_next(&walk, is_extensions, &value)) {
            if (ja4_skips(value, is_extensions) || value >> BAND_BITS != band)
                continue;
            unsigned low = value & (BAND_SIZE - 1);
            counts[low]++;
            seen[low / 64] |= 1ull << (low % 64);
        }
        /* Add in order and leave counts and seen zeroed for the next band. */
        for (unsigned word = 0; word < BAND_SIZE / 64; word++) {
            while (seen[word] != 0) {
                unsigned low = word * 64 + (unsigned)__builtin_ctzll(seen[word]);
                seen[word] &= seen[word] - 1;
                if (counts[low] > 1)
                    *out_repeats = true;
                for (; counts[low] > 0; counts[low]--, num_added++)
                    digest_hex4(in, num_added > 0 ? ',' : '\0',
                                (uint16_t)(band << BAND_BITS | low));
            }
        }
    }
    return num_added;
}

/* digest_sorted adds the values of |list| that JA4 keeps, ascending,
 * repeats included, comma-separated. It returns how many it added and sets
 * |*out_repeats| if a value occurs twice. */
static size_t digest_sorted(struct digest_input *in, const CBS *list, bool is_extensions,
                            bool *out_repeats)
{
    uint16_t values[SORT_MAX];
    size_t num = 0;
    uint16_t value;
    CBS walk = *list;

    while (list_next(&walk, is_extensions, &value)) {
        if (ja4_skips(value, is_extensions))
            continue;
        if (num == SORT_MAX)
            return digest_sorted_long(in, list, is_extensions, out_repeats);
        values[num++] = value;
    }
    /* Insertion sort: at most SORT_MAX^2 / 2 moves, few for a real list. */
    for (size_t i = 1; i < num; i++) {
        uint16_t next = values[i];
        size_t j = i;
        for (; j > 0 && values[j - 1] > next; j--)
            values[j] = values[j - 1];
        values[j] = next;
    }
    for (size_t i = 0; i < num; i++) {
        if (i > 0 && values[i] == values[i - 1])
            *out_repeats = true;
        digest_hex4(in, i > 0 ? ',' : '\0', values[i]);
    }
    return num;
}

/* hash12 writes the first 12 hex digits of the SHA-256 of |in|, or twelve
 * zeros when |empty|: JA4 marks an empty list that way. */
static void hash12(struct digest_input *in, bool empty, char out[13])
{
    uint8_t digest[SHA256_DIGEST_LENGTH];

    digest_flush(in);
    SHA256_Final(digest, &in->ctx.sha256);
    for (int i = 0; i < 6; i++) {
        out[2 * i] = empty ? '0' : hex_digits[digest[i] >> 4];
        out[2 * i + 1] = empty ? '0' : hex_digits[digest[i] & 15];
    }
    out[12] = '\0';
}

/* ja4_version_code is JA4's two characters for |version|. */
static const char *ja4_version_code(uint16_t version)
{
    switch (version) {
    case 0x0304:
        return "13";
    case 0x0303:
        return "12";
    case 0x0302:
        return "11";
    case 0x0301:
        return "10";
    case 0x0300:
        return "s3";
    case 0x0002:
        return "s2";
    case 0xfeff:
        return "d1";
    case 0xfefd:
        return "d2";
    case 0xfefc:
        return "d3";
    default:
        return "00";
    }
}

static bool is_alnum(uint8_t ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* ja4_alpn_chars writes JA4's two ALPN characters: the first and last byte
 * of the first protocol name; if either is not ASCII alphanumeric, the first
 * and last hex digit of the name instead (JA4.md); "00" without a name. */
static void ja4_alpn_chars(const struct decoded_exts *exts, char out[2])
{
    CBS list = exts->alpn, name;

    out[0] = out[1] = '0';
    if (!exts->has_alpn || !CBS_get_u8_length_prefixed(&list, &name) || CBS_len(&name) == 0)
        return;
    uint8_t first = CBS_data(&name)[0], last = CBS_data(&name)[CBS_len(&name) - 1];
    if (is_alnum(first) && is_alnum(last)) {
        out[0] = (char)first;
        out[1] = (char)last;
    } else {
        out[0] = hex_digits[first >> 4];
        out[1] = hex_digits[last & 15];
    }
}

/* compute_ja4 fills out->ja4; |num_extensions| counts the non-GREASE
 * extensions. It returns -1 if an extension type repeats. */
static int compute_ja4(struct clienthello_summary *out, const CBS *ciphers,
                       const CBS *extensions, size_t num_extensions,
                       const struct decoded_exts *exts)
{
    struct digest_input in;
    bool repeats = false;
    char cipher_hash[13], extension_hash[13], alpn[2];

    /* JA4 counts every non-GREASE cipher suite, which is what it hashes. */
    digest_begin(&in, false);
    size_t num_ciphers = digest_sorted(&in, ciphers, false, &repeats);
    hash12(&in, num_ciphers == 0, cipher_hash);

    /* Cipher suites may repeat (BoringSSL accepts that); extensions may not. */
    repeats = false;
    digest_begin(&in, false);
    size_t num_hashed = digest_sorted(&in, extensions, true, &repeats);
    if (repeats)
        return -1;
    /* JA4.md ignores GREASE everywhere, signature algorithms included (so
     * does s2n-tls's JA4). */
    bool first_sigalg = true;
    uint16_t sigalg;
    for (CBS walk = exts->sigalgs; exts->has_sigalgs && CBS_get_u16(&walk, &sigalg);) {
        if (clienthello_is_grease(sigalg))
            continue;
        digest_hex4(&in, first_sigalg ? '_' : ',', sigalg);
        first_sigalg = false;
    }
    hash12(&in, num_hashed == 0, extension_hash);

    ja4_alpn_chars(exts, alpn);
    snprintf(out->ja4, sizeof(out->ja4), "%c%s%c%02zu%02zu%c%c_%s_%s", out->quic ? 'q' : 't',
             ja4_version_code(out->max_version), out->has_sni ? 'd' : 'i',
             num_ciphers > 99 ? (size_t)99 : num_ciphers,
             num_extensions > 99 ? (size_t)99 : num_extensions, alpn[0], alpn[1], cipher_hash,
             extension_hash);
    return 0;
}

/* digest_u16s adds the non-GREASE values of |list|, dash-separated, in
 * decimal. */
static void digest_u16s(struct digest_input *in, const CBS *list)
{
    CBS walk = *list;
    bool first = true;
    uint16_t value;

    while (CBS_get_u16(&walk, &value)) {
        if (clienthello_is_grease(value))
            continue;
        digest_decimal(in, first ? '\0' : '-', value);
        first = false;
    }
}

/* compute_ja3 fills out->ja3_md5 from
 * "version,ciphers,extensions,groups,point_formats". */
static void compute_ja3(struct clienthello_summary *out, const CBS *ciphers,
                        const CBS *extensions, const struct decoded_exts *exts)
{
    struct digest_input in;
    bool first = true;
    uint16_t type;
    uint8_t format;

    digest_begin(&in, true);
    digest_decimal(&in, '\0', out->legacy_version);
    digest_char(&in, ',');
    digest_u16s(&in, ciphers);
    digest_char(&in, ',');
    for (CBS walk = *extensions; list_next(&walk, true, &type);) {
        if (clienthello_is_grease(type))
            continue;
        digest_decimal(&in, first ? '\0' : '-', type);
        first = false;
    }
    digest_char(&in, ',');
    if (exts->has_groups)
        digest_u16s(&in, &exts->groups);
    digest_char(&in, ',');
    /* Point formats are one byte each, so never GREASE. */
    first = true;
    for (CBS walk = exts->point_formats;
         exts->has_point_formats && CBS_get_u8(&walk, &format);) {
        digest_decimal(&in, first ? '\0' : '-', format);
        first = false;
    }
    digest_flush(&in);
    MD5_Final(out->ja3_md5, &in.ctx.md5);
}

/* ---- parsing --------------------------------------------------------------- */

/* open_list checks an extension body that is one length-prefixed list (a
 * one-byte prefix if |u8_prefix|) of |item_len|-byte items and nothing else,
 * and points |out| at the list. */
static bool open_list(CBS body, bool u8_prefix, size_t item_len, CBS *out)
{
    bool ok = u8_prefix ? CBS_get_u8_length_prefixed(&body, out)
                        : CBS_get_u16_length_prefixed(&body, out);
    return ok && CBS_len(&body) == 0 && CBS_len(out) % item_len == 0;
}

/* open_alpn checks an ALPN body (a list of one-byte-prefixed names) and
 * points |out| at the list. Empty names are let through: they are BoringSSL's
 * to refuse, and JA4 says how to show them. */
static bool open_alpn(CBS body, CBS *out)
{
    CBS names, name;
    if (!CBS_get_u16_length_prefixed(&body, out) || CBS_len(&body) != 0)
        return false;
    for (names = *out; CBS_len(&names) > 0;) {
        if (!CBS_get_u8_length_prefixed(&names, &name))
            return false;
    }
    return true;
}

/* decode_extension opens the body of a |type| extension that the summary
 * looks into. A body that does not parse is noted in |out| and ignored. */
static void decode_extension(struct clienthello_summary *out, struct decoded_exts *exts,
                             uint16_t type, CBS body)
{
    bool ok = true;

    switch (type) {
    case EXT_SUPPORTED_VERSIONS:
        ok = exts->has_versions = open_list(body, true, 2, &exts->versions);
        break;
    case EXT_SUPPORTED_GROUPS:
        ok = exts->has_groups = open_list(body, false, 2, &exts->groups);
        break;
    case EXT_SIGNATURE_ALGORITHMS:
        ok = exts->has_sigalgs = open_list(body, false, 2, &exts->sigalgs);
        break;
    case EXT_EC_POINT_FORMATS:
        ok = exts->has_point_formats = open_list(body, true, 1, &exts->point_formats);
        break;
    case EXT_ALPN:
        ok = exts->has_alpn = open_alpn(body, &exts->alpn);
        break;
    default:
        break;
    }
    if (!ok && !out->has_malformed_extension) {
        out->has_malformed_extension = true;
        out->malformed_extension = type;
    }
}

/* keep_u16s stores the first |cap| values of |list| in |dst| and returns
 * how many there are. */
static uint16_t keep_u16s(const CBS *list, uint16_t *dst, size_t cap)
{
    CBS walk = *list;
    uint16_t value;
    size_t num = 0;

    while (CBS_get_u16(&walk, &value)) {
        if (num < cap)
            dst[num] = value;
        num++;
    }
    return (uint16_t)num; /* at most 65535 / 2 */
}

static void keep_alpn(struct clienthello_summary *out, const CBS *list)
{
    CBS walk = *list, name;

    while (CBS_get_u8_length_prefixed(&walk, &name)) {
        if (out->num_alpn < CLIENTHELLO_MAX_ALPN) {
            size_t len = CBS_len(&name);
            out->alpn_len[out->num_alpn] = (uint8_t)len;
            memcpy(out->alpn[out->num_alpn], CBS_data(&name),
                   len < CLIENTHELLO_ALPN_NAME_MAX ? len : CLIENTHELLO_ALPN_NAME_MAX);
        }
        out->num_alpn++; /* at most 65535 empty names */
    }
}

/* summarize fills |out| from a hello's parts: its cipher suites and its
 * extensions block (both without their length prefix). */
static int summarize(uint16_t legacy_version, CBS ciphers, CBS extensions,
                     struct clienthello_summary *out)
{
    struct decoded_exts exts;
    size_t num_real_extensions = 0;
    CBS walk, body;
    uint16_t type;

    memset(out, 0, sizeof(*out));
    memset(&exts, 0, sizeof(exts));
    out->legacy_version = out->max_version = legacy_version;

    if (CBS_len(&ciphers) < 2 || CBS_len(&ciphers) % 2 != 0)
        return -1;
    out->num_ciphers = keep_u16s(&ciphers, out->ciphers, CLIENTHELLO_MAX_CIPHERS);

    for (walk = extensions; CBS_len(&walk) > 0;) {
        if (!CBS_get_u16(&walk, &type) || !CBS_get_u16_length_prefixed(&walk, &body))
            return -1;
        if (out->num_extensions < CLIENTHELLO_MAX_EXTENSIONS)
            out->extensions[out->num_extensions] = type;
        out->num_extensions++; /* at most 65535 / 4 */
        num_real_extensions += !clienthello_is_grease(type);
        if (type == EXT_SERVER_NAME)
            out->has_sni = true;
        decode_extension(out, &exts, type, body);
    }

    if (exts.has_versions) {
        out->num_versions = keep_u16s(&exts.versions, out->versions, CLIENTHELLO_MAX_VERSIONS);
        bool found = false;
        uint16_t version;
        for (walk = exts.versions; CBS_get_u16(&walk, &version);) {
            if (!clienthello_is_grease(version) && (!found || version > out->max_version)) {
                out->max_version = version;
                found = true;
            }
        }
    }
    if (exts.has_groups)
        out->num_groups = keep_u16s(&exts.groups, out->groups, CLIENTHELLO_MAX_GROUPS);
    if (exts.has_sigalgs)
        out->num_sigalgs = keep_u16s(&exts.sigalgs, out->sigalgs, CLIENTHELLO_MAX_SIGALGS);
    if (exts.has_alpn)
        keep_alpn(out, &exts.alpn);

    if (compute_ja4(out, &ciphers, &extensions, num_real_extensions, &exts) != 0)
        return -1;
    compute_ja3(out, &ciphers, &extensions, &exts);
    return 0;
}

int clienthello_parse(SSL *ssl, const uint8_t *client_hello, size_t client_hello_len,
                      SSL_CLIENT_HELLO *out)
{
    CBS hello, random, session_id, ciphers, compression, extensions;
    uint16_t legacy_version;

    if (client_hello == NULL)
        return -1;
    /* The same checks as BoringSSL's ssl_client_hello_init, so that the
     * tests and the fuzzer see what the callback would. */
    CBS_init(&hello, client_hello, client_hello_len);
    if (!CBS_get_u16(&hello, &legacy_version) || !CBS_get_bytes(&hello, &random, 32) ||
        !CBS_get_u8_length_prefixed(&hello, &session_id) || CBS_len(&session_id) > 32 ||
        !CBS_get_u16_length_prefixed(&hello, &ciphers) ||
        !CBS_get_u8_length_prefixed(&hello, &compression) || CBS_len(&compression) < 1)
        return -1;
    CBS_init(&extensions, NULL, 0);
    if (CBS_len(&hello) > 0 &&
        (!CBS_get_u16_length_prefixed(&hello, &extensions) || CBS_len(&hello) != 0))
        return -1;
    *out = (SSL_CLIENT_HELLO){
        .ssl = ssl,
        .client_hello = client_hello,
        .client_hello_len = client_hello_len,
        .version = legacy_version,
        .random = CBS_data(&random),
        .random_len = CBS_len(&random),
        .session_id = CBS_data(&session_id),
        .session_id_len = CBS_len(&session_id),
        .cipher_suites = CBS_data(&ciphers),
        .cipher_suites_len = CBS_len(&ciphers),
        .compression_methods = CBS_data(&compression),
        .compression_methods_len = CBS_len(&compression),
        .extensions = CBS_data(&extensions),
        .extensions_len = CBS_len(&extensions),
    };
    return 0;
}

int clienthello_summarize(const uint8_t *client_hello, size_t client_hello_len,
                          struct clienthello_summary *out)
{
    SSL_CLIENT_HELLO hello;

    if (clienthello_parse(NULL, client_hello, client_hello_len, &hello) != 0)
        return -1;
    return clienthello_summarize_early(&hello, out);
}

int clienthello_summarize_early(const SSL_CLIENT_HELLO *hello, struct clienthello_summary *out)
{
    CBS ciphers, extensions;

    if (hello == NULL || hello->cipher_suites == NULL)
        return -1;
    CBS_init(&ciphers, hello->cipher_suites, hello->cipher_suites_len);
    CBS_init(&extensions, hello->extensions, hello->extensions_len);
    return summarize(hello->version, ciphers, extensions, out);
}

void clienthello_ja4(const struct clienthello_summary *s, char out[CLIENTHELLO_JA4_LEN + 1])
{
    memcpy(out, s->ja4, CLIENTHELLO_JA4_LEN + 1);
}

void clienthello_ja3(const struct clienthello_summary *s, char out[CLIENTHELLO_JA3_LEN + 1])
{
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex_digits[s->ja3_md5[i] >> 4];
        out[2 * i + 1] = hex_digits[s->ja3_md5[i] & 15];
    }
    out[CLIENTHELLO_JA3_LEN] = '\0';
}

/* ---- names ----------------------------------------------------------------- */

/* struct value_name is one entry of a name table; a NULL name ends it. */
struct value_name {
    uint16_t value;
    const char *name;
};

/* name_or_hex returns |value|'s name in |table|, or writes "0x1234" to |buf|
 * and returns that. */
static const char *name_or_hex(const struct value_name *table, uint16_t value, char buf[8])
{
    for (; table->name != NULL; table++) {
        if (table->value == value)
            return table->name;
    }
    snprintf(buf, 8, "0x%04x", value);
    return buf;
}

/* Cipher suites that clients still offer and BoringSSL does not implement,
 * so SSL_get_cipher_by_value does not know them (IANA TLS Cipher Suites
 * registry). DHE, CBC with SHA-2, CCM, Camellia, RC4 and the signalling
 * values are what OpenSSL, Java and old Windows clients send. */
static const struct value_name extra_cipher_names[] = {
    {0x0004, "TLS_RSA_WITH_RC4_128_MD5"},
    {0x0005, "TLS_RSA_WITH_RC4_128_SHA"},
    {0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"},
    {0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
    {0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"},
    {0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
    {0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"},
    {0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"},
    {0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"},
    {0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"},
    {0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0x006a, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256"},
    {0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
    {0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"},
    {0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0x00a2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"},
    {0x00a3, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384"},
    {0x00a8, "TLS_PSK_WITH_AES_128_GCM_SHA256"},
    {0x00a9, "TLS_PSK_WITH_AES_256_GCM_SHA384"},
    {0x00ac, "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256"},
    {0x00ad, "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384"},
    {0x00ff, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"},
    {0x1304, "TLS_AES_128_CCM_SHA256"},
    {0x1305, "TLS_AES_128_CCM_8_SHA256"},
    {0x5600, "TLS_FALLBACK_SCSV"},
    {0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"},
    {0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
    {0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
    {0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"},
    {0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
    {0xc09c, "TLS_RSA_WITH_AES_128_CCM"},
    {0xc09d, "TLS_RSA_WITH_AES_256_CCM"},
    {0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM"},
    {0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM"},
    {0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"},
    {0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"},
    {0xc0ae, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"},
    {0xc0af, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"},
    {0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xccab, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256"},
    {0xccae, "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256"},
    {0, NULL},
};

/* IANA TLS Supported Groups registry names, lower case as OpenSSL and
 * Wireshark print the classic ones. */
static const struct value_name group_names[] = {
    {0x0015, "secp224r1"},
    {0x0016, "secp256k1"},
    {0x0017, "secp256r1"},
    {0x0018, "secp384r1"},
    {0x0019, "secp521r1"},
    {0x001a, "brainpoolP256r1"},
    {0x001b, "brainpoolP384r1"},
    {0x001c, "brainpoolP512r1"},
    {0x001d, "x25519"},
    {0x001e, "x448"},
    {0x001f, "brainpoolP256r1tls13"},
    {0x0020, "brainpoolP384r1tls13"},
    {0x0021, "brainpoolP512r1tls13"},
    {0x0100, "ffdhe2048"},
    {0x0101, "ffdhe3072"},
    {0x0102, "ffdhe4096"},
    {0x0103, "ffdhe6144"},
    {0x0104, "ffdhe8192"},
    {0x0200, "MLKEM512"},
    {0x0201, "MLKEM768"},
    {0x0202, "MLKEM1024"},
    {0x11eb, "SecP256r1MLKEM768"},
    {0x11ec, "X25519MLKEM768"},
    {0x11ed, "SecP384r1MLKEM1024"},
    {0x4138, "CECPQ2"},
    {0x6399, "X25519Kyber768Draft00"},
    {0, NULL},
};

/* IANA TLS SignatureScheme names; the TLS 1.2 hash/signature pairs that
 * have none (SHA-224, DSA) get OpenSSL's names. */
static const struct value_name sigalg_names[] = {
    {0x0201, "rsa_pkcs1_sha1"},
    {0x0202, "dsa_sha1"},
    {0x0203, "ecdsa_sha1"},
    {0x0301, "rsa_pkcs1_sha224"},
    {0x0302, "dsa_sha224"},
    {0x0303, "ecdsa_sha224"},
    {0x0401, "rsa_pkcs1_sha256"},
    {0x0402, "dsa_sha256"},
    {0x0403, "ecdsa_secp256r1_sha256"},
    {0x0420, "rsa_pkcs1_sha256_legacy"},
    {0x0501, "rsa_pkcs1_sha384"},
    {0x0502, "dsa_sha384"},
    {0x0503, "ecdsa_secp384r1_sha384"},
    {0x0601, "rsa_pkcs1_sha512"},
    {0x0602, "dsa_sha512"},
    {0x0603, "ecdsa_secp521r1_sha512"},
    {0x0804, "rsa_pss_rsae_sha256"},
    {0x0805, "rsa_pss_rsae_sha384"},
    {0x0806, "rsa_pss_rsae_sha512"},
    {0x0807, "ed25519"},
    {0x0808, "ed448"},
    {0x0809, "rsa_pss_pss_sha256"},
    {0x080a, "rsa_pss_pss_sha384"},
    {0x080b, "rsa_pss_pss_sha512"},
    {0x081a, "ecdsa_brainpoolP256r1tls13_sha256"},
    {0x081b, "ecdsa_brainpoolP384r1tls13_sha384"},
    {0x081c, "ecdsa_brainpoolP512r1tls13_sha512"},
    {0x0904, "mldsa44"},
    {0x0905, "mldsa65"},
    {0x0906, "mldsa87"},
    {0, NULL},
};

/* Spelled as tls_version_name spells the negotiated version. */
static const struct value_name version_names[] = {
    {0x0304, "TLSv1.3"}, {0x0303, "TLSv1.2"}, {0x0302, "TLSv1.1"},
    {0x0301, "TLSv1"},   {0x0300, "SSLv3"},   {0, NULL},
};

/* Each name function returns the name of |value|, which may be written to
 * |buf|. */
typedef const char *name_fn(uint16_t value, char buf[8]);

static const char *cipher_name(uint16_t value, char buf[8])
{
    const SSL_CIPHER *cipher = SSL_get_cipher_by_value(value);
    const char *name = cipher != NULL ? SSL_CIPHER_standard_name(cipher) : NULL;
    return name != NULL ? name : name_or_hex(extra_cipher_names, value, buf);
}

static const char *group_name(uint16_t value, char buf[8])
{
    return name_or_hex(group_names, value, buf);
}

static const char *sigalg_name(uint16_t value, char buf[8])
{
    return name_or_hex(sigalg_names, value, buf);
}

static const char *version_name(uint16_t value, char buf[8])
{
    return name_or_hex(version_names, value, buf);
}

static const char *decimal_name(uint16_t value, char buf[8])
{
    snprintf(buf, 8, "%u", value);
    return buf;
}

/* ---- log fields ------------------------------------------------------------ */

/* Each list's share of the log line, in bytes, so that one long list cannot
 * crowd out the others. At their longest, all fields together take about
 * 1.9 KiB; a line that then overflows LOG_LINE_MAX loses its last fields
 * whole (log.h), which is why the least useful come last. */
enum {
    TEXT_VERSIONS = 96,
    TEXT_ALPN = 128,
    TEXT_CIPHERS = 640,
    TEXT_GROUPS = 192,
    TEXT_SIGALGS = 384,
    TEXT_EXTENSIONS = 224,
    TEXT_MAX = TEXT_CIPHERS,
    TEXT_MORE_RESERVE = sizeof(",+65535"), /* with snprintf's NUL */
};

/* struct list_text is one comma-separated field being built. */
struct list_text {
    char buf[TEXT_MAX];
    size_t len;
    size_t limit; /* bytes this field may use */
    size_t num_shown;
    bool full;
};

static void text_begin(struct list_text *text, size_t limit)
{
    text->len = 0;
    text->limit = limit;
    text->num_shown = 0;
    text->full = false;
}

/* text_add appends |item|, unless it would leave no room for the "+N" that
 * text_end may need; from then on the list is full. */
static void text_add(struct list_text *text, const char *item, size_t item_len)
{
    size_t need = item_len + (text->len > 0);
    if (text->full || text->len + need > text->limit - TEXT_MORE_RESERVE) {
        text->full = true;
        return;
    }
    if (text->len > 0)
        text->buf[text->len++] = ',';
    memcpy(text->buf + text->len, item, item_len);
    text->len += item_len;
    text->num_shown++;
}

/* text_end marks the entries of |num_total| not shown and adds the field. */
static void text_end(struct list_text *text, struct log_line *line, const char *key,
                     size_t num_total)
{
    if (text->num_shown < num_total) {
        int len = snprintf(text->buf + text->len, text->limit - text->len, "%s+%zu",
                           text->len > 0 ? "," : "", num_total - text->num_shown);
        text->len += (size_t)len;
    }
    log_strn(line, key, text->buf, text->len);
}

/* log_list adds the field |key|: the first |cap| of |num_total| |values|,
 * named by |name|. */
static void log_list(struct log_line *line, struct list_text *text, const char *key,
                     size_t limit, const uint16_t *values, size_t num_total, size_t cap,
                     name_fn *name)
{
    char buf[8];

    text_begin(text, limit);
    for (size_t i = 0; i < num_total && i < cap; i++) {
        const char *item = clienthello_is_grease(values[i]) ? "GREASE" : name(values[i], buf);
        text_add(text, item, strlen(item));
    }
    text_end(text, line, key, num_total);
}

/* alpn_item writes ALPN name |i| of |s| percent-encoded, as the header
 * says, and returns its length. */
static size_t alpn_item(const struct clienthello_summary *s, size_t i, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t kept =
        s->alpn_len[i] < CLIENTHELLO_ALPN_NAME_MAX ? s->alpn_len[i] : CLIENTHELLO_ALPN_NAME_MAX;
    size_t len = 0;

    for (size_t j = 0; j < kept; j++) {
        uint8_t ch = (uint8_t)s->alpn[i][j];
        if (ch <= 0x20 || ch >= 0x7f || ch == ',' || ch == '%') {
            out[len++] = '%';
            out[len++] = hex[ch >> 4];
            out[len++] = hex[ch & 15];
        } else {
            out[len++] = (char)ch;
        }
    }
    if (kept < s->alpn_len[i]) {
        memcpy(out + len, "...", 3);
        len += 3;
    }
    return len;
}

void clienthello_log_fields(struct log_line *line, const struct clienthello_summary *s)
{
    struct list_text text;
    char item[3 * CLIENTHELLO_ALPN_NAME_MAX + 4];
    char buf[8];

    log_strn(line, "ja4", s->ja4, CLIENTHELLO_JA4_LEN);
    if (s->num_versions > 0) {
        log_list(line, &text, "offered_versions", TEXT_VERSIONS, s->versions, s->num_versions,
                 CLIENTHELLO_MAX_VERSIONS, version_name);
    } else {
        log_str(line, "offered_versions", version_name(s->legacy_version, buf));
    }
    log_str(line, "legacy_version", version_name(s->legacy_version, buf));
    if (s->has_malformed_extension)
        log_int(line, "malformed_extension", s->malformed_extension);

    text_begin(&text, TEXT_ALPN);
    for (size_t i = 0; i < s->num_alpn && i < CLIENTHELLO_MAX_ALPN; i++)
        text_add(&text, item, alpn_item(s, i, item));
    text_end(&text, line, "alpn", s->num_alpn);

    log_list(line, &text, "ciphers", TEXT_CIPHERS, s->ciphers, s->num_ciphers,
             CLIENTHELLO_MAX_CIPHERS, cipher_name);
    log_list(line, &text, "groups", TEXT_GROUPS, s->groups, s->num_groups,
             CLIENTHELLO_MAX_GROUPS, group_name);
    log_list(line, &text, "sigalgs", TEXT_SIGALGS, s->sigalgs, s->num_sigalgs,
             CLIENTHELLO_MAX_SIGALGS, sigalg_name);
    log_list(line, &text, "extensions", TEXT_EXTENSIONS, s->extensions, s->num_extensions,
             CLIENTHELLO_MAX_EXTENSIONS, decimal_name);

    char ja3[CLIENTHELLO_JA3_LEN + 1];
    clienthello_ja3(s, ja3);
    log_str(line, "ja3", ja3);
}
