/* http_forward: the request head a backend gets (http.h,
 * http_request_write_head): what the client sent, less the hop-by-hop fields
 * and any forwarding field it had no right to set, plus who the client was.
 *
 * A client's X-Forwarded-*, Forwarded, X-Real-IP and X-Forwarded-Client-Cert
 * fields are claims about someone else. They are kept only when the client
 * is one of http.trusted_proxies (then our hop is appended); from anyone
 * else they are removed, so a backend that trusts these fields can. The
 * client certificate field is always ours alone. */
#include "http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "conn.h"
#include "tls_cert.h"
#include "tls_ctx.h"

/* Fields that say where a request came from: trusted_proxies only. */
static bool is_forwarding_field(const char *name, size_t len)
{
    return http_name_is(name, len, "x-forwarded-for") ||
           http_name_is(name, len, "x-forwarded-proto") ||
           http_name_is(name, len, "x-forwarded-host") ||
           http_name_is(name, len, "x-forwarded-port") ||
           http_name_is(name, len, "forwarded") || http_name_is(name, len, "x-real-ip");
}

/* ---- the head's text ------------------------------------------------------------ */

/* struct head_text collects the request head in a buffer on the stack, so
 * that a head costs one evbuffer_add rather than one per piece (and no
 * printf): a head larger than the buffer goes out in pieces. */
struct head_text {
    struct evbuffer *out;
    size_t len;
    bool failed; /* an evbuffer_add failed: out of memory */
    char buf[4096];
};

static void head_flush(struct head_text *h)
{
    if (h->len > 0 && evbuffer_add(h->out, h->buf, h->len) != 0)
        h->failed = true;
    h->len = 0;
}

static void head_add(struct head_text *h, const void *data, size_t len)
{
    if (h->len + len > sizeof(h->buf)) {
        head_flush(h);
        if (len > sizeof(h->buf)) {
            if (evbuffer_add(h->out, data, len) != 0)
                h->failed = true;
            return;
        }
    }
    memcpy(h->buf + h->len, data, len);
    h->len += len;
}

static void head_str(struct head_text *h, const char *s) { head_add(h, s, strlen(s)); }

static void head_uint(struct head_text *h, unsigned long long v)
{
    char digits[24];
    size_t at = sizeof(digits);
    do {
        digits[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    head_add(h, digits + at, sizeof(digits) - at);
}

/* head_field writes one "name: value" line. */
static void head_field(struct head_text *h, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    head_add(h, name, name_len);
    head_add(h, ": ", 2);
    head_add(h, value, value_len);
    head_add(h, "\r\n", 2);
}

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* ---- who the client is -------------------------------------------------------------- */

/* format_ipv4 writes the dotted quad of |addr| and a NUL into |out|, which
 * has room for INET_ADDRSTRLEN bytes (inet_ntop's sprintf costs more than the
 * rest of a request head). */
static void format_ipv4(const uint8_t *addr, char *out)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = addr[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

/* client_ip writes the client's address without port into |out| and says
 * whether it is a trusted proxy. Unix listeners have no address: "unix". */
static bool client_ip(const struct conn *c, char *out, size_t out_len, bool *out_v6)
{
    const struct cfg_http *http = &c->cfg->http;
    int family = c->client_addr.sa.sa_family;
    const uint8_t *addr = NULL;
    uint8_t mapped[4];

    *out_v6 = false;
    if (c->client_addr_len == 0 || (family != AF_INET && family != AF_INET6)) {
        snprintf(out, out_len, "unix");
        return false;
    }
    if (family == AF_INET) {
        addr = (const uint8_t *)&c->client_addr.in.sin_addr;
        format_ipv4(addr, out);
    } else {
        addr = (const uint8_t *)&c->client_addr.in6.sin6_addr;
        *out_v6 = true;
        inet_ntop(family, addr, out, (socklen_t)out_len);
    }
    /* An IPv4 client on a dual-stack socket matches IPv4 entries too. */
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&c->client_addr.in6.sin6_addr)) {
        memcpy(mapped, addr + 12, 4);
        format_ipv4(mapped, out);
        *out_v6 = false;
    }
    for (size_t i = 0; i < http->num_trusted_proxies; i++)
        if (cfg_cidr_contains(&http->trusted_proxies[i], family, addr) ||
            (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&c->client_addr.in6.sin6_addr) &&
             cfg_cidr_contains(&http->trusted_proxies[i], AF_INET, mapped)))
            return true;
    return false;
}

/* listener_port returns the port the client connected to, asked of the
 * kernel once per connection (a getsockname per request otherwise); 0 when
 * there is none (unix listeners) or the kernel would not say. */
static unsigned listener_port(struct conn *c)
{
    if (c->local_port != 0)
        return c->local_port;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(c->client.sock.fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        c->local_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        c->local_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return c->local_port;
}

/* add_values begins the field |name| with every value of the fields named
 * |name| in |f| joined by |sep|; the caller may append to the value and
 * ends the line. It says whether any value was written. */
static bool add_values(struct head_text *h, const struct http_fields *f, const char *name,
                       const char *sep)
{
    bool any = false;
    head_str(h, name);
    head_add(h, ": ", 2);
    for (int i = http_fields_find(f, name, 0); i >= 0;
         i = http_fields_find(f, name, (uint32_t)i + 1)) {
        if (any)
            head_str(h, sep);
        head_add(h, http_field_value(f, (uint32_t)i), f->v[i].value_len);
        any = true;
    }
    return any;
}

/* add_quoted writes |s| as an RFC 9110 quoted-string. Bytes that may not
 * appear in a field value unescaped (controls, DEL, and, to keep the value
 * plain ASCII, bytes above it) are percent-encoded: a certificate's names
 * are the client's bytes, and a CR or LF among them must never start a
 * header line of its own. */
static void add_quoted(struct head_text *h, const char *s)
{
    head_add(h, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '%') {
            char esc[3] = {'%', hex_upper[*p >> 4], hex_upper[*p & 15]};
            head_add(h, esc, 3);
        } else if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            head_add(h, esc, 2);
        } else {
            head_add(h, p, 1);
        }
    }
    head_add(h, "\"", 1);
}

/* add_xfcc writes X-Forwarded-Client-Cert for a verified client
 * certificate, in Envoy's format. */
static void add_xfcc(struct head_text *h, const struct conn *c)
{
    SSL *ssl = c->client.ssl;
    if (SSL_get_verify_result(ssl) != X509_V_OK)
        return;
    X509 *leaf = SSL_get_peer_certificate(ssl);
    if (leaf == NULL)
        return;
    uint8_t *der = NULL;
    int der_len = i2d_X509(leaf, &der);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    char subject[512];
    struct tls_ctx_san san;

    if (der_len > 0) {
        SHA256(der, (size_t)der_len, digest);
        OPENSSL_free(der);
        head_str(h, "X-Forwarded-Client-Cert: Hash=");
        for (size_t i = 0; i < sizeof(digest); i++) {
            char pair[2] = {hex_lower[digest[i] >> 4], hex_lower[digest[i] & 15]};
            head_add(h, pair, 2);
        }
        tls_cert_format_subject(leaf, subject, sizeof(subject));
        head_add(h, ";Subject=", 9);
        add_quoted(h, subject);
        if (tls_ctx_peer_san(ssl, &san) == 0)
            for (size_t i = 0; i < san.num_names; i++) {
                const char *name = san.names[i];
                if (strncmp(name, "URI:", 4) == 0) {
                    head_add(h, ";URI=", 5);
                    add_quoted(h, name + 4);
                } else if (strncmp(name, "DNS:", 4) == 0) {
                    head_add(h, ";DNS=", 5);
                    add_quoted(h, name + 4);
                }
            }
        head_add(h, "\r\n", 2);
    }
    X509_free(leaf);
}

/* Request ids are drawn from a per-thread reserve of random bytes, filled
 * 64 ids at a time: one RAND_bytes call costs about as much as the rest of
 * the id's work whatever its length. */
#define REQUEST_ID_RESERVE (16 * 64)
static _Thread_local uint8_t id_reserve[REQUEST_ID_RESERVE];
static _Thread_local size_t id_reserve_used = REQUEST_ID_RESERVE;

/* new_request_id returns 32 random hex digits, or NULL. */
static char *new_request_id(void)
{
    uint8_t bytes[16];
    char *id = malloc(2 * sizeof(bytes) + 1);
    if (id == NULL)
        return NULL;
    if (id_reserve_used + sizeof(bytes) > sizeof(id_reserve)) {
        RAND_bytes(id_reserve, sizeof(id_reserve));
        id_reserve_used = 0;
    }
    memcpy(bytes, id_reserve + id_reserve_used, sizeof(bytes));
    id_reserve_used += sizeof(bytes); /* each id's bytes are used once */
    for (size_t i = 0; i < sizeof(bytes); i++) {
        id[2 * i] = hex_lower[bytes[i] >> 4];
        id[2 * i + 1] = hex_lower[bytes[i] & 15];
    }
    id[2 * sizeof(bytes)] = '\0';
    return id;
}

static bool has_no_body_method(const char *method)
{
    return strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 &&
           strcmp(method, "PATCH") != 0;
}

int http_request_write_head(struct http_exchange *x, struct evbuffer *out)
{
    struct conn *c = x->c;
    const struct cfg_http *http = &c->cfg->http;
    const struct http_request *req = &x->req;
    const struct http_fields *f = &req->fields;
    char ip[INET6_ADDRSTRLEN + 8];
    bool v6;
    bool trusted = client_ip(c, ip, sizeof(ip), &v6);
    bool cookie_done = false;
    /* Most requests name no field in Connection (or have none). */
    bool has_connection = http_connection_names_others(f);
    struct head_text h;

    h.out = out;
    h.len = 0;
    h.failed = false;
    head_str(&h, req->method);
    head_add(&h, " ", 1);
    head_str(&h, req->target);
    head_add(&h, " HTTP/1.1\r\n", 11);
    /* RFC 9112 3.2: an HTTP/1.1 request always carries Host. Only an
     * HTTP/1.0 client may have sent none; the field is then empty, as that
     * section says for a target without an authority. */
    if (req->authority != NULL)
        head_field(&h, "Host", 4, req->authority, strlen(req->authority));
    else
        head_add(&h, "Host: \r\n", 8);

    for (uint32_t i = 0; i < f->num; i++) {
        const char *name = http_field_name(f, i);
        size_t len = f->v[i].name_len;
        if (http_is_hop_by_hop(name, len) ||
            (has_connection && http_connection_names(f, name, len)) ||
            http_name_is(name, len, "host") || http_name_is(name, len, "content-length") ||
            http_name_is(name, len, "x-forwarded-client-cert") ||
            (is_forwarding_field(name, len) && !trusted) ||
            (http_name_is(name, len, "x-forwarded-for") && http->x_forwarded) ||
            (http_name_is(name, len, "forwarded") && http->forwarded))
            continue;
        if (http_name_is(name, len, "x-forwarded-proto") ||
            http_name_is(name, len, "x-forwarded-host") ||
            http_name_is(name, len, "x-forwarded-port")) {
            if (http->x_forwarded)
                continue; /* a trusted proxy's value is rewritten below */
        }
        if (req->h2 && http_name_is(name, len, "cookie")) {
            /* RFC 9113 8.2.3: an HTTP/1.1 backend gets one Cookie field. */
            if (!cookie_done) {
                add_values(&h, f, "cookie", "; ");
                head_add(&h, "\r\n", 2);
            }
            cookie_done = true;
            continue;
        }
        head_field(&h, name, len, http_field_value(f, i), f->v[i].value_len);
    }

    if (http->x_forwarded) {
        if (trusted) {
            if (add_values(&h, f, "x-forwarded-for", ", "))
                head_add(&h, ", ", 2);
            head_str(&h, ip);
            head_add(&h, "\r\n", 2);
        } else {
            head_field(&h, "X-Forwarded-For", 15, ip, strlen(ip));
        }
        int at = trusted ? http_fields_find(f, "x-forwarded-proto", 0) : -1;
        if (at >= 0)
            head_field(&h, "X-Forwarded-Proto", 17, http_field_value(f, (uint32_t)at),
                       f->v[at].value_len);
        else
            head_field(&h, "X-Forwarded-Proto", 17, "https", 5);
        at = trusted ? http_fields_find(f, "x-forwarded-host", 0) : -1;
        if (at >= 0)
            head_field(&h, "X-Forwarded-Host", 16, http_field_value(f, (uint32_t)at),
                       f->v[at].value_len);
        else if (req->authority != NULL)
            head_field(&h, "X-Forwarded-Host", 16, req->authority, strlen(req->authority));
        at = trusted ? http_fields_find(f, "x-forwarded-port", 0) : -1;
        if (at >= 0) {
            head_field(&h, "X-Forwarded-Port", 16, http_field_value(f, (uint32_t)at),
                       f->v[at].value_len);
        } else {
            head_add(&h, "X-Forwarded-Port: ", 18);
            head_uint(&h, listener_port(c));
            head_add(&h, "\r\n", 2);
        }
    }
    if (http->forwarded) {
        if (!trusted)
            head_add(&h, "Forwarded: ", 11);
        else if (add_values(&h, f, "forwarded", ", "))
            head_add(&h, ", ", 2);
        head_str(&h, v6 ? "for=\"[" : "for=");
        head_str(&h, ip);
        head_str(&h, v6 ? "]\";proto=https" : ";proto=https");
        if (req->authority != NULL) {
            head_add(&h, ";host=", 6);
            add_quoted(&h, req->authority);
        }
        head_add(&h, "\r\n", 2);
    }
    if (http->request_id != NULL) {
        int at = http_fields_find(f, http->request_id, 0);
        if (at >= 0) {
            /* The client's id is kept (and was passed on above). */
            free(x->request_id);
            x->request_id = strdup(http_field_value(f, (uint32_t)at));
        } else {
            if (x->request_id == NULL)
                x->request_id = new_request_id();
            if (x->request_id != NULL)
                head_field(&h, http->request_id, strlen(http->request_id), x->request_id,
                           strlen(x->request_id));
        }
    }
    if (http->client_cert_header)
        add_xfcc(&h, c);
    /* RFC 8470 5.1: a request forwarded before the client's handshake
     * completed says so (unless an earlier intermediary already did, whose
     * field passed on above), so the backend can answer 425. */
    if (c->handshake_completing && http_fields_find(f, "early-data", 0) < 0)
        head_add(&h, "Early-Data: 1\r\n", 15);

    if (req->websocket) {
        head_str(&h, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    } else if (req->content_length >= 0) {
        head_add(&h, "Content-Length: ", 16);
        head_uint(&h, (unsigned long long)req->content_length);
        head_add(&h, "\r\n", 2);
    } else if (req->has_body) {
        head_str(&h, "Transfer-Encoding: chunked\r\n");
    } else if (!has_no_body_method(req->method)) {
        head_str(&h, "Content-Length: 0\r\n");
    }
    head_add(&h, "\r\n", 2);
    head_flush(&h);
    return h.failed ? -1 : 0;
}
