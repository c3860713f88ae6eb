/* config_http: a listener's HTTP-mode settings and the checks that depend on
 * its mode:
 *
 *   mode: http
 *   http: {x_forwarded: true, forwarded: false, trusted_proxies: ["10.0.0.0/8"],
 *          request_id: X-Request-Id, client_cert_header: false,
 *          max_request_header_bytes: 64KiB}
 *   http2: {max_concurrent_streams: 100, initial_window: 256KiB, connection_window: 1MiB,
 *           header_table_size: 4096, reset_burst: 1000, reset_rate: 33,
 *           glitch_burst: 1000, glitch_rate: 330, max_continuations: 8,
 *           max_streams_per_connection: 10000, max_outbound_acks: 1000,
 *           max_outbound_frames: 10000, settings_timeout: 10s, write_timeout: 30s}
 *
 * "mode" may come after the keys it governs, so the handlers here only check
 * values; cfg_check_mode runs once the listener's mapping is applied and
 * checks what needs several keys. Kept apart from config.c as config_tls.c
 * is; it uses the schema machinery of config_internal.h. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config_internal.h"
#include "log.h"

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
/* RFC 9113 6.5.2 and 6.9.1: a flow-control window is at most 2^31-1. */
#define WINDOW_MAX UINT64_C(0x7fffffff)
/* RFC 9113 6.9.2: the connection window every peer starts with. */
#define CONNECTION_WINDOW_MIN UINT64_C(65535)
#define MAX_CONCURRENT_STREAMS_MAX 10000
#define DEFAULT_REQUEST_ID "X-Request-Id"

/* parse_size reads "65536", "64KiB" or "1MiB" into |*out_bytes|. It returns
 * 0, or -1 for anything else. Ten digits times MiB fit in 64 bits. */
static int parse_size(const char *text, uint64_t *out_bytes)
{
    static const struct {
        const char *name;
        uint64_t bytes;
    } units[] = {{"", 1}, {"KiB", KIB}, {"MiB", MIB}};
    size_t digits = strspn(text, "0123456789");
    uint64_t value = 0;

    if (digits == 0 || digits > 10)
        return -1;
    for (size_t i = 0; i < digits; i++)
        value = value * 10 + (uint64_t)(text[i] - '0');
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(text + digits, units[i].name) == 0) {
            *out_bytes = value * units[i].bytes;
            return 0;
        }
    }
    return -1;
}

/* cfg_format_size writes |bytes| in the largest unit that holds it exactly
 * ("64KiB", "65535") into |out| and returns |out|. */
const char *cfg_format_size(uint64_t bytes, char *out, size_t out_len)
{
    if (bytes != 0 && bytes % MIB == 0)
        snprintf(out, out_len, "%" PRIu64 "MiB", bytes / MIB);
    else if (bytes != 0 && bytes % KIB == 0)
        snprintf(out, out_len, "%" PRIu64 "KiB", bytes / KIB);
    else
        snprintf(out, out_len, "%" PRIu64, bytes);
    return out;
}

/* apply_size stores the size |value| for |key| in |*out| if it lies from
 * |min| to |max| bytes, and reports it otherwise. */
static void apply_size(struct loader *ld, const char *key, const struct ynode *value,
                       uint64_t min, uint64_t max, uint32_t *out)
{
    const char *text = cfg_expect_text(ld, key, value, "a size");
    char min_text[24], max_text[24];
    uint64_t bytes;

    if (text == NULL)
        return;
    if (parse_size(text, &bytes) != 0 || bytes < min || bytes > max)
        cfg_fail_at(ld, value,
                    "invalid %s '%s'; expected a size from %s to %s: a number of bytes, or a "
                    "whole number with KiB or MiB (e.g. 64KiB)",
                    key, text, cfg_format_size(min, min_text, sizeof(min_text)),
                    cfg_format_size(max, max_text, sizeof(max_text)));
    else
        *out = (uint32_t)bytes;
}

void cfg_apply_max_request_header_bytes(struct loader *ld, const struct field *field,
                                        const struct ynode *value, void *out)
{
    apply_size(ld, field->key, value, KIB, MIB, out);
}

static void apply_initial_window(struct loader *ld, const struct field *field,
                                 const struct ynode *value, void *out)
{
    apply_size(ld, field->key, value, 1, WINDOW_MAX, out);
}

static void apply_connection_window(struct loader *ld, const struct field *field,
                                    const struct ynode *value, void *out)
{
    apply_size(ld, field->key, value, CONNECTION_WINDOW_MIN, WINDOW_MAX, out);
}

static void apply_max_concurrent_streams(struct loader *ld, const struct field *field,
                                         const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "an integer");

    if (text != NULL)
        cfg_parse_uint(ld, field->key, value, text, 1, MAX_CONCURRENT_STREAMS_MAX, out);
}

/* apply_count stores the whole number |value| for |field| in |out| if it
 * lies from |min| to |max|, and reports it otherwise. */
static void apply_count(struct loader *ld, const struct field *field, const struct ynode *value,
                        uint32_t min, uint32_t max, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "an integer");

    if (text != NULL)
        cfg_parse_uint(ld, field->key, value, text, min, max, out);
}

/* The attack limits (h2_limits.h): bursts and rates of the token buckets,
 * counts of frames and streams. */
static void apply_bucket(struct loader *ld, const struct field *field,
                         const struct ynode *value, void *out)
{
    apply_count(ld, field, value, 1, 1000000, out);
}

static void apply_max_continuations(struct loader *ld, const struct field *field,
                                    const struct ynode *value, void *out)
{
    apply_count(ld, field, value, 0, 1000, out);
}

static void apply_max_streams_per_connection(struct loader *ld, const struct field *field,
                                             const struct ynode *value, void *out)
{
    /* A client has 2^30 stream ids in all. */
    apply_count(ld, field, value, 1, 1U << 30, out);
}

static void apply_header_table_size(struct loader *ld, const struct field *field,
                                    const struct ynode *value, void *out)
{
    apply_size(ld, field->key, value, 0, 64 * KIB, out);
}

/* cfg_parse_cidr reads "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32
 * or /128) into |out|. It returns 0, or -1 with what is wrong in |reason|.
 * Bits past the prefix must be zero: "10.1.2.3/8" is more likely a typo than
 * a way to write 10.0.0.0/8, so it is refused with that suggestion. */
int cfg_parse_cidr(const char *text, struct cfg_cidr *out, char *reason, size_t reason_len)
{
    const char *slash = strchr(text, '/');
    size_t address_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
    char address[INET6_ADDRSTRLEN], network[INET6_ADDRSTRLEN];
    unsigned max_prefix, prefix;
    size_t digits;
    bool host_bits = false;

    memset(out, 0, sizeof(*out));
    if (address_len < sizeof(address)) {
        memcpy(address, text, address_len);
        address[address_len] = '\0';
    }
    if (address_len < sizeof(address) && inet_pton(AF_INET, address, out->addr) == 1) {
        out->family = AF_INET;
        max_prefix = 32;
    } else if (address_len < sizeof(address) && inet_pton(AF_INET6, address, out->addr) == 1) {
        out->family = AF_INET6;
        max_prefix = 128;
    } else {
        snprintf(reason, reason_len,
                 "expected an IPv4 or IPv6 address or CIDR, such as 10.0.0.0/8 or ::1/128");
        return -1;
    }
    prefix = max_prefix;
    if (slash != NULL) {
        digits = strspn(slash + 1, "0123456789");
        prefix = digits > 0 && digits <= 3 ? (unsigned)atoi(slash + 1) : max_prefix + 1;
        if (slash[1 + digits] != '\0' || prefix > max_prefix) {
            snprintf(reason, reason_len,
                     "the prefix length must be 0 to %u for an IPv%d address", max_prefix,
                     out->family == AF_INET ? 4 : 6);
            return -1;
        }
    }
    out->prefix = (uint8_t)prefix;
    for (unsigned bit = prefix; bit < max_prefix; bit++) {
        uint8_t mask = (uint8_t)(0x80 >> (bit % 8));
        host_bits |= (out->addr[bit / 8] & mask) != 0;
        out->addr[bit / 8] &= (uint8_t)~mask;
    }
    if (host_bits) {
        inet_ntop(out->family, out->addr, network, sizeof(network));
        snprintf(reason, reason_len, "bits past the /%u prefix are set; did you mean %s/%u?",
                 prefix, network, prefix);
        return -1;
    }
    return 0;
}

bool cfg_cidr_contains(const struct cfg_cidr *cidr, int family, const uint8_t *addr)
{
    if (cidr->family != family)
        return false;
    unsigned bits = cidr->prefix;
    size_t whole = bits / 8;
    if (memcmp(cidr->addr, addr, whole) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));
    return (cidr->addr[whole] & mask) == (addr[whole] & mask);
}

bool cfg_cidr_equal(const struct cfg_cidr *a, const struct cfg_cidr *b)
{
    return a->family == b->family && a->prefix == b->prefix &&
           memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* apply_trusted_proxies takes one CIDR or a sequence of them; an empty
 * sequence (the default) trusts no one. |out| is the struct cfg_http. */
static void apply_trusted_proxies(struct loader *ld, const struct field *field,
                                  const struct ynode *value, void *out)
{
    struct cfg_http *http = out;
    size_t num;

    if (yamltree_kind(value) == YNODE_SEQUENCE && yamltree_num_items(value) == 0)
        return;
    num = cfg_list_len(ld, field->key, value, true);
    if (num == 0 || (http->trusted_proxies =
                         cfg_new_array(ld, value, num, sizeof(*http->trusted_proxies))) == NULL)
        return;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = cfg_list_item(value, i);
        const char *text = cfg_expect_text(ld, field->key, item, "an address or CIDR");
        struct cfg_cidr *cidr = &http->trusted_proxies[http->num_trusted_proxies];
        char reason[160];

        if (text == NULL)
            continue;
        if (cfg_parse_cidr(text, cidr, reason, sizeof(reason)) != 0) {
            cfg_fail_at(ld, item, "invalid trusted_proxies entry '%s': %s", text, reason);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            const struct ynode *earlier = cfg_list_item(value, j);
            const char *earlier_text = yamltree_scalar(earlier);
            struct cfg_cidr parsed;

            if (earlier_text != NULL &&
                cfg_parse_cidr(earlier_text, &parsed, reason, sizeof(reason)) == 0 &&
                cfg_cidr_equal(&parsed, cidr)) {
                cfg_fail_at(ld, item,
                            "duplicate '%s' in 'trusted_proxies' (first listed at %d:%d)", text,
                            yamltree_line(earlier), yamltree_col(earlier));
                cidr = NULL;
                break;
            }
        }
        if (cidr != NULL)
            http->num_trusted_proxies++;
    }
}

/* is_token says whether |text| is an HTTP field name: an RFC 9110 token. */
static bool is_token(const char *text)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    return text[0] != '\0' && text[strspn(text, tchar)] == '\0';
}

/* apply_request_id takes a header name, "false" (no request ID) or "true"
 * (the default name). |out| is the char * to fill. */
static void apply_request_id(struct loader *ld, const struct field *field,
                             const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a header name or false");
    char **request_id = out;

    if (text == NULL || strcmp(text, "false") == 0)
        return;
    if (strcmp(text, "true") == 0)
        text = DEFAULT_REQUEST_ID;
    if (!is_token(text)) {
        cfg_fail_at(ld, value,
                    "invalid request_id '%s'; expected a header name (letters, digits and "
                    "!#$%%&'*+-.^_`|~, e.g. X-Request-Id) or false",
                    text);
        return;
    }
    *request_id = cfg_dup_string(ld, value, text);
}

static const struct field http_fields[] = {
    {"x_forwarded", false, cfg_apply_bool, offsetof(struct cfg_http, x_forwarded), NULL},
    {"forwarded", false, cfg_apply_bool, offsetof(struct cfg_http, forwarded), NULL},
    {"trusted_proxies", false, apply_trusted_proxies, 0, NULL},
    {"request_id", false, apply_request_id, offsetof(struct cfg_http, request_id), NULL},
    {"client_cert_header", false, cfg_apply_bool, offsetof(struct cfg_http, client_cert_header),
     NULL},
    {"max_request_header_bytes", false, cfg_apply_max_request_header_bytes,
     offsetof(struct cfg_http, max_request_header_bytes), NULL},
    {"hsts", false, cfg_apply_hsts, offsetof(struct cfg_http, hsts), NULL},
};
static const struct schema http_schema = {"http", "in http", http_fields,
                                          sizeof(http_fields) / sizeof(http_fields[0])};

static const struct field http2_fields[] = {
    {"max_concurrent_streams", false, apply_max_concurrent_streams,
     offsetof(struct cfg_http2, max_concurrent_streams), NULL},
    {"initial_window", false, apply_initial_window, offsetof(struct cfg_http2, initial_window),
     NULL},
    {"connection_window", false, apply_connection_window,
     offsetof(struct cfg_http2, connection_window), NULL},
    {"header_table_size", false, apply_header_table_size,
     offsetof(struct cfg_http2, header_table_size), NULL},
    {"reset_burst", false, apply_bucket, offsetof(struct cfg_http2, reset_burst), NULL},
    {"reset_rate", false, apply_bucket, offsetof(struct cfg_http2, reset_rate), NULL},
    {"glitch_burst", false, apply_bucket, offsetof(struct cfg_http2, glitch_burst), NULL},
    {"glitch_rate", false, apply_bucket, offsetof(struct cfg_http2, glitch_rate), NULL},
    {"max_continuations", false, apply_max_continuations,
     offsetof(struct cfg_http2, max_continuations), NULL},
    {"max_streams_per_connection", false, apply_max_streams_per_connection,
     offsetof(struct cfg_http2, max_streams_per_connection), NULL},
    {"max_outbound_acks", false, apply_bucket, offsetof(struct cfg_http2, max_outbound_acks),
     NULL},
    {"max_outbound_frames", false, apply_bucket,
     offsetof(struct cfg_http2, max_outbound_frames), NULL},
    {"settings_timeout", false, cfg_apply_duration,
     offsetof(struct cfg_http2, settings_timeout_ms), NULL},
    {"write_timeout", false, cfg_apply_duration, offsetof(struct cfg_http2, write_timeout_ms),
     NULL},
};
static const struct schema http2_schema = {"http2", "in http2", http2_fields,
                                           sizeof(http2_fields) / sizeof(http2_fields[0])};

void cfg_apply_http(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out)
{
    if (cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        cfg_apply_mapping(ld, &http_schema, value, out);
}

void cfg_apply_http2(struct loader *ld, const struct field *field, const struct ynode *value,
                     void *out)
{
    if (cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        cfg_apply_mapping(ld, &http2_schema, value, out);
}

/* is_http_only says whether |key| of |section| ("" for the listener itself)
 * only has an effect in http mode. */
static bool is_http_only(const char *section, const char *key)
{
    static const struct {
        const char *section;
        const char *key;
    } http_only[] = {
        {"", "http"},
        {"", "http2"},
        {"backend", "max_connections"},
        {"backend", "pool"},
        {"timeouts", "request_header"},
        {"timeouts", "backend_response"},
        {"timeouts", "queue"},
    };

    for (size_t i = 0; i < sizeof(http_only) / sizeof(http_only[0]); i++) {
        if (strcmp(http_only[i].section, section) == 0 && strcmp(http_only[i].key, key) == 0)
            return true;
    }
    return false;
}

/* refuse_http_keys reports, in file order, each http-mode key of the
 * tcp-mode listener |mapping| (|section| "") and of its backend and timeouts
 * mappings: they would be silently ignored there. */
static void refuse_http_keys(struct loader *ld, const char *section,
                             const struct ynode *mapping)
{
    if (yamltree_kind(mapping) != YNODE_MAPPING)
        return;
    for (size_t i = 0; i < yamltree_num_items(mapping); i++) {
        const struct ynode *key = yamltree_key(mapping, i);
        const char *name = yamltree_scalar(key);

        if (section[0] == '\0' &&
            (strcmp(name, "backend") == 0 || strcmp(name, "timeouts") == 0))
            refuse_http_keys(ld, name, yamltree_item(mapping, i));
        else if (is_http_only(section, name))
            cfg_fail_at(ld, key,
                        "http settings need mode: http: this listener is in tcp mode, "
                        "where '%s%s%s' has no effect; add 'mode: http' or remove it",
                        section, section[0] != '\0' ? "." : "", name);
    }
}

/* check_http_alpn gives an http-mode listener without tls.alpn the default
 * [h2, http/1.1], and refuses protocols other than those two in a list it
 * was given: nothing else would be served. */
static void check_http_alpn(struct loader *ld, const struct ynode *tls,
                            struct cfg_listener *listener)
{
    static const uint8_t default_alpn[] = "\x02h2\x08http/1.1";
    const struct ynode *alpn = yamltree_get(tls, "alpn");

    if (alpn == NULL) {
        if (tls == NULL || yamltree_kind(tls) != YNODE_MAPPING ||
            (listener->alpn = cfg_new_array(ld, tls, sizeof(default_alpn) - 1, 1)) == NULL)
            return;
        memcpy(listener->alpn, default_alpn, sizeof(default_alpn) - 1);
        listener->alpn_len = sizeof(default_alpn) - 1;
        return;
    }
    /* "alpn: h2" is a list of one, as apply_alpn reads it. */
    size_t num = yamltree_kind(alpn) == YNODE_SCALAR ? 1
                 : yamltree_kind(alpn) == YNODE_SEQUENCE ? yamltree_num_items(alpn)
                                                          : 0;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = cfg_list_item(alpn, i);
        const char *name = yamltree_scalar(item);
        if (name != NULL && name[0] != '\0' && strcmp(name, "h2") != 0 &&
            strcmp(name, "http/1.1") != 0)
            cfg_fail_at(ld, item,
                        "alpn offers '%s', which mode http does not serve; allowed: h2, "
                        "http/1.1 (leave alpn out for both)",
                        name);
    }
}

void cfg_check_mode(struct loader *ld, const struct ynode *listener_node,
                    struct cfg_listener *listener)
{
    const struct ynode *mode = yamltree_get(listener_node, "mode");
    const struct ynode *tls = yamltree_get(listener_node, "tls");
    const struct ynode *http = yamltree_get(listener_node, "http");
    const struct ynode *backend = yamltree_get(listener_node, "backend");
    const struct ynode *node;

    /* A bad mode was reported; what depends on it would only add noise. */
    if (mode != NULL && listener->mode == CFG_MODE_TCP &&
        (yamltree_scalar(mode) == NULL || strcmp(yamltree_scalar(mode), "tcp") != 0))
        return;
    /* tls.alpn_required is checked here as tcp mode has no default alpn. */
    if (listener->mode == CFG_MODE_TCP) {
        if (listener->alpn_required && yamltree_get(tls, "alpn") == NULL)
            cfg_fail_at(ld, yamltree_get(tls, "alpn_required"),
                        "alpn_required needs 'alpn': the protocols a client must offer one of");
        refuse_http_keys(ld, "", listener_node);
        return;
    }
    check_http_alpn(ld, tls, listener);
    const struct ynode *timeouts = yamltree_get(listener_node, "timeouts");
    if ((node = yamltree_get(timeouts, "half_closed")) != NULL)
        cfg_fail_at(ld, node,
                    "timeouts.half_closed applies to mode tcp only (one direction of a byte "
                    "stream ended); http mode bounds a connection with timeouts.idle and "
                    "request_header; remove it");
    if (listener->backend != NULL && listener->backend->protocol == CFG_BACKEND_H2 &&
        ((node = yamltree_get(backend, "protocol")) != NULL ||
         (yamltree_kind(backend) == YNODE_SCALAR && (node = backend) != NULL)))
        cfg_fail_at(
            ld, node,
            "backend protocol h2 needs mode tcp: in mode http tlsterm speaks HTTP/1.1 "
            "to the backend; remove 'protocol: h2', or use mode tcp to pass h2 through");
    if (listener->http.client_cert_header &&
        listener->client_auth.mode == CFG_CLIENT_AUTH_NONE &&
        (node = yamltree_get(http, "client_cert_header")) != NULL)
        cfg_fail_at(ld, node,
                    "client_cert_header needs client certificates: set tls.client_auth.mode to "
                    "optional or required, or remove it");
    if (yamltree_get(http, "request_id") == NULL)
        listener->http.request_id = cfg_dup_string(ld, listener_node, DEFAULT_REQUEST_ID);
}

/* cfg_format_duration writes |ms| in the largest unit that holds it exactly
 * ("2s", "5m", "1500ms") into |out| and returns |out|. */
const char *cfg_format_duration(uint32_t ms, char *out, size_t out_len)
{
    static const struct {
        const char *name;
        uint32_t ms;
    } units[] = {
        {"d", 24 * 60 * 60 * 1000}, {"h", 60 * 60 * 1000}, {"m", 60 * 1000}, {"s", 1000}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(out, out_len, "%" PRIu32 "%s", ms / units[i].ms, units[i].name);
            return out;
        }
    }
    snprintf(out, out_len, "%" PRIu32 "ms", ms);
    return out;
}

static const char *bool_text(bool value) { return value ? "true" : "false"; }

static void describe_cidrs(const struct cfg_cidr *cidrs, size_t num, FILE *out)
{
    for (size_t i = 0; i < num; i++) {
        char address[INET6_ADDRSTRLEN];
        inet_ntop(cidrs[i].family, cidrs[i].addr, address, sizeof(address));
        fprintf(out, "%s%s/%u", i > 0 ? ", " : " ", address, cidrs[i].prefix);
    }
}

/* describe_proxy_protocol writes the PROXY protocol settings (both ways). */
static void describe_proxy_protocol(const struct cfg_listener *l, FILE *out)
{
    const struct cfg_backend *group = cfg_listener_backend(l);
    char a[24];

    if (group->proxy_protocol == 0)
        fprintf(out, "  backend.proxy_protocol: off\n");
    else
        fprintf(out, "  backend.proxy_protocol: v%u%s%s%s\n", group->proxy_protocol,
                group->proxy_protocol_unique_id ? ", unique_id" : "",
                group->proxy_protocol_crc32c ? ", crc32c" : "",
                l->mode == CFG_MODE_HTTP ? " (backend connections per client connection)" : "");
    if (l->accept_proxy.from == NULL) {
        fprintf(out, "  accept_proxy: off\n");
        return;
    }
    fprintf(out, "  accept_proxy: from");
    describe_cidrs(l->accept_proxy.from, l->accept_proxy.num_from, out);
    fprintf(out, "; timeout %s\n", cfg_format_duration(l->accept_proxy.timeout_ms, a, sizeof(a)));
}

void config_describe_listen(const struct cfg_listener *l, FILE *out)
{
    fprintf(out, "  listen:");
    for (size_t i = 0; i < l->num_listen; i++) {
        char text[NET_ADDR_TEXT_MAX];
        fprintf(out, "%s %s", i > 0 ? "," : "",
                net_addr_format(&l->listen[i].addr, text, sizeof(text)));
    }
    fprintf(out, "\n");
}

void config_describe_listener(const struct cfg_listener *l, FILE *out)
{
    static const char *const protocol_names[] = {
        [CFG_BACKEND_HTTP1] = "http/1.1", [CFG_BACKEND_H2] = "h2"};
    const struct cfg_http *http = &l->http;
    char a[24], b[24], c[24];

    fprintf(out, "  mode: %s\n", l->mode == CFG_MODE_HTTP ? "http" : "tcp");
    config_describe_listen(l, out);
    const struct cfg_backend *group = cfg_listener_backend(l);
    static const char *const balance_names[] = {[CFG_BALANCE_ROUND_ROBIN] = "round_robin",
                                                [CFG_BALANCE_LEAST_CONN] = "least_conn",
                                                [CFG_BALANCE_RANDOM_TWO] = "random_two"};
    static const char *const check_names[] = {
        [CFG_CHECK_NONE] = "none", [CFG_CHECK_TCP] = "tcp", [CFG_CHECK_HTTP] = "http"};
    fprintf(out, "  backend: %s%s, balance %s, retries %" PRIu32 ", health.check %s%s\n",
            group->name, group->is_inline ? " (inline)" : "", balance_names[group->balance],
            group->retries, check_names[group->check.type],
            group->panic ? "" : ", panic off");
    for (size_t i = 0; i < group->num_servers; i++) {
        const struct cfg_server *server = &group->servers[i];
        char *address = log_escape_dup(server->address, LOG_ESCAPE_TERMINAL, NULL);
        fprintf(out, "  backend.server: %s weight %" PRIu32 "%s", address ? address : "?",
                server->weight, server->backup ? " backup" : "");
        free(address);
        for (size_t k = 0; server->is_name && k < server->num_addrs; k++) {
            char text[NET_ADDR_TEXT_MAX];
            fprintf(out, "%s%s", k == 0 ? " -> " : ", ",
                    net_addr_format(&server->addrs[k], text, sizeof(text)));
        }
        fprintf(out, "\n");
    }
    for (size_t i = 0; i < l->num_routes; i++) {
        const struct cfg_route *route = &l->routes[i];
        const char *parts[3][2] = {
            {"sni", route->sni}, {"host", route->host}, {"path_prefix", route->path_prefix}};
        fprintf(out, "  route %zu:", i + 1);
        for (size_t k = 0; k < 3; k++) {
            char *text = parts[k][1] != NULL
                             ? log_escape_dup(parts[k][1], LOG_ESCAPE_TERMINAL, " ")
                             : NULL;
            if (parts[k][1] != NULL)
                fprintf(out, " %s %s", parts[k][0], text != NULL ? text : "?");
            free(text);
        }
        fprintf(out, " -> %s\n", route->backend != NULL ? route->backend->name : "?");
    }
    if (l->num_routes > 0)
        fprintf(out, "  route default: -> %s\n", group->name);
    fprintf(out, "  backend.protocol: %s\n", protocol_names[group->protocol]);
    fprintf(out, "  backend.source: %s\n",
            group->source == CFG_BACKEND_SOURCE_CLIENT
                ? "client (the client's address; needs CAP_NET_ADMIN)"
                : "proxy");
    describe_proxy_protocol(l, out);
    fprintf(out, "  connection timeouts: handshake %s, connect %s, idle %s",
            cfg_format_duration(l->handshake_timeout_ms, a, sizeof(a)),
            cfg_format_duration(l->connect_timeout_ms, b, sizeof(b)),
            cfg_format_duration(l->idle_timeout_ms, c, sizeof(c)));
    if (l->mode != CFG_MODE_HTTP)
        fprintf(out, ", half_closed %s",
                cfg_format_duration(l->half_closed_timeout_ms, a, sizeof(a)));
    fprintf(out, "\n  max_connections: %" PRIu32 "\n", l->max_connections);
    if (l->mode != CFG_MODE_HTTP)
        return;
    if (group->max_connections == 0)
        fprintf(out, "  backend.max_connections: unlimited\n");
    else
        fprintf(out, "  backend.max_connections: %" PRIu32 " per server and worker\n",
                group->max_connections);
    fprintf(out,
            "  backend.pool: max_idle %" PRIu32 " per server and worker%s, idle_timeout %s\n",
            group->pool_max_idle, group->pool_max_idle == 0 ? " (no pooling)" : "",
            cfg_format_duration(group->pool_idle_timeout_ms, a, sizeof(a)));
    fprintf(out, "  http.x_forwarded: %s\n", bool_text(http->x_forwarded));
    fprintf(out, "  http.forwarded: %s\n", bool_text(http->forwarded));
    fprintf(out, "  http.trusted_proxies:");
    describe_cidrs(http->trusted_proxies, http->num_trusted_proxies, out);
    fprintf(out, "%s\n", http->num_trusted_proxies == 0 ? " (none)" : "");
    fprintf(out, "  http.request_id: %s\n",
            http->request_id != NULL ? http->request_id : "(none)");
    fprintf(out, "  http.client_cert_header: %s\n", bool_text(http->client_cert_header));
    fprintf(out, "  http.max_request_header_bytes: %s\n",
            cfg_format_size(http->max_request_header_bytes, a, sizeof(a)));
    fprintf(out, "  http.hsts: %s\n", http->hsts.value != NULL ? http->hsts.value : "off");
    const struct cfg_http2 *h2 = &l->http2;
    fprintf(out,
            "  http2: max_concurrent_streams %" PRIu32 ", initial_window %s, "
            "connection_window %s\n",
            h2->max_concurrent_streams, cfg_format_size(h2->initial_window, a, sizeof(a)),
            cfg_format_size(h2->connection_window, b, sizeof(b)));
    fprintf(out,
            "  http2 limits: header_table_size %s, reset_burst %" PRIu32 ", reset_rate %" PRIu32
            "/s, glitch_burst %" PRIu32 ", glitch_rate %" PRIu32
            "/s, max_continuations %" PRIu32 ", max_streams_per_connection %" PRIu32
            ", max_outbound_acks %" PRIu32 ", max_outbound_frames %" PRIu32
            ", settings_timeout %s, write_timeout %s\n",
            cfg_format_size(h2->header_table_size, c, sizeof(c)), h2->reset_burst,
            h2->reset_rate, h2->glitch_burst, h2->glitch_rate, h2->max_continuations,
            h2->max_streams_per_connection, h2->max_outbound_acks, h2->max_outbound_frames,
            cfg_format_duration(h2->settings_timeout_ms, a, sizeof(a)),
            cfg_format_duration(h2->write_timeout_ms, b, sizeof(b)));
    fprintf(out, "  timeouts: request_header %s, backend_response %s, queue %s\n",
            cfg_format_duration(l->request_header_timeout_ms, a, sizeof(a)),
            cfg_format_duration(l->backend_response_timeout_ms, b, sizeof(b)),
            cfg_format_duration(l->queue_timeout_ms, c, sizeof(c)));
}

/* ---- reload ------------------------------------------------------------------- */

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_bytes(const void *a, size_t a_len, const void *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

bool cfg_listener_same_http(const struct cfg_listener *a, const struct cfg_listener *b)
{
    if (a->mode != b->mode || a->policy != b->policy || a->min_version != b->min_version ||
        a->max_version != b->max_version || !same_str(a->ciphers, b->ciphers) ||
        !same_str(a->groups, b->groups) ||
        !same_bytes(a->alpn, a->alpn_len, b->alpn, b->alpn_len) ||
        a->early_data != b->early_data || a->num_certs != b->num_certs ||
        a->client_auth.mode != b->client_auth.mode ||
        !same_str(a->client_auth.ca_path, b->client_auth.ca_path) ||
        !same_str(a->client_auth.crl_path, b->client_auth.crl_path))
        return false;
    for (size_t i = 0; i < a->num_certs; i++)
        if (!same_str(a->certs[i].cert_path, b->certs[i].cert_path) ||
            !same_str(a->certs[i].key_path, b->certs[i].key_path))
            return false;
    const struct cfg_http *ha = &a->http, *hb = &b->http;
    if (ha->x_forwarded != hb->x_forwarded || ha->forwarded != hb->forwarded ||
        !same_str(ha->request_id, hb->request_id) ||
        !same_str(ha->hsts.value, hb->hsts.value) ||
        ha->client_cert_header != hb->client_cert_header ||
        ha->max_request_header_bytes != hb->max_request_header_bytes ||
        !same_bytes(ha->trusted_proxies, ha->num_trusted_proxies * sizeof(*ha->trusted_proxies),
                    hb->trusted_proxies,
                    hb->num_trusted_proxies * sizeof(*hb->trusted_proxies)))
        return false;
    return memcmp(&a->http2, &b->http2, sizeof(a->http2)) == 0;
}
