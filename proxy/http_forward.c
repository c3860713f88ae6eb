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

static bool cidr_contains(const struct cfg_cidr *cidr, int family, const uint8_t *addr)
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
    } else {
        addr = (const uint8_t *)&c->client_addr.in6.sin6_addr;
        *out_v6 = true;
    }
    inet_ntop(family, addr, out, (socklen_t)out_len);
    /* An IPv4 client on a dual-stack socket matches IPv4 entries too. */
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&c->client_addr.in6.sin6_addr)) {
        memcpy(mapped, addr + 12, 4);
        inet_ntop(AF_INET, mapped, out, (socklen_t)out_len);
        *out_v6 = false;
    }
    for (size_t i = 0; i < http->num_trusted_proxies; i++)
        if (cidr_contains(&http->trusted_proxies[i], family, addr) ||
            (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&c->client_addr.in6.sin6_addr) &&
             cidr_contains(&http->trusted_proxies[i], AF_INET, mapped)))
            return true;
    return false;
}

static unsigned listener_port(const struct conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(c->client.sock.fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* add_joined writes one field |name| whose value is every value of the
 * fields named |name| in |f| joined by |sep|, then |extra| (may be NULL). */
static void add_joined(struct evbuffer *out, const struct http_fields *f, const char *name,
                       const char *sep, const char *extra)
{
    bool any = false;
    evbuffer_add_printf(out, "%s: ", name);
    for (int i = http_fields_find(f, name, 0); i >= 0;
         i = http_fields_find(f, name, (uint32_t)i + 1)) {
        if (any)
            evbuffer_add(out, sep, strlen(sep));
        evbuffer_add(out, http_field_value(f, (uint32_t)i), f->v[i].value_len);
        any = true;
    }
    if (extra != NULL) {
        if (any)
            evbuffer_add(out, sep, strlen(sep));
        evbuffer_add(out, extra, strlen(extra));
    }
    evbuffer_add(out, "\r\n", 2);
}

/* add_quoted writes |s| as an RFC 9110 quoted-string. Bytes that may not
 * appear in a field value unescaped (controls, DEL, and, to keep the value
 * plain ASCII, bytes above it) are percent-encoded: a certificate's names
 * are the client's bytes, and a CR or LF among them must never start a
 * header line of its own. */
static void add_quoted(struct evbuffer *out, const char *s)
{
    evbuffer_add(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '%')
            evbuffer_add_printf(out, "%%%02X", *p);
        else if (*p == '"' || *p == '\\')
            evbuffer_add_printf(out, "\\%c", *p);
        else
            evbuffer_add(out, p, 1);
    }
    evbuffer_add(out, "\"", 1);
}

/* add_xfcc writes X-Forwarded-Client-Cert for a verified client
 * certificate, in Envoy's format. */
static void add_xfcc(struct evbuffer *out, const struct conn *c)
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
        evbuffer_add_printf(out, "X-Forwarded-Client-Cert: Hash=");
        for (size_t i = 0; i < sizeof(digest); i++)
            evbuffer_add_printf(out, "%02x", digest[i]);
        tls_cert_format_subject(leaf, subject, sizeof(subject));
        evbuffer_add(out, ";Subject=", 9);
        add_quoted(out, subject);
        if (tls_ctx_peer_san(ssl, &san) == 0)
            for (size_t i = 0; i < san.num_names; i++) {
                const char *name = san.names[i];
                if (strncmp(name, "URI:", 4) == 0) {
                    evbuffer_add(out, ";URI=", 5);
                    add_quoted(out, name + 4);
                } else if (strncmp(name, "DNS:", 4) == 0) {
                    evbuffer_add(out, ";DNS=", 5);
                    add_quoted(out, name + 4);
                }
            }
        evbuffer_add(out, "\r\n", 2);
    }
    X509_free(leaf);
}

/* new_request_id returns 32 random hex digits, or NULL. */
static char *new_request_id(void)
{
    uint8_t bytes[16];
    char *id = malloc(2 * sizeof(bytes) + 1);
    if (id == NULL)
        return NULL;
    RAND_bytes(bytes, sizeof(bytes));
    for (size_t i = 0; i < sizeof(bytes); i++)
        snprintf(id + 2 * i, 3, "%02x", bytes[i]);
    return id;
}

static bool has_no_body_method(const char *method)
{
    return strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 &&
           strcmp(method, "PATCH") != 0;
}

int http_request_write_head(struct http_exchange *x, struct evbuffer *out)
{
    const struct conn *c = x->c;
    const struct cfg_http *http = &c->cfg->http;
    const struct http_request *req = &x->req;
    const struct http_fields *f = &req->fields;
    char ip[INET6_ADDRSTRLEN + 8];
    bool v6;
    bool trusted = client_ip(c, ip, sizeof(ip), &v6);
    bool cookie_done = false;

    evbuffer_add_printf(out, "%s %s HTTP/1.1\r\n", req->method, req->target);
    if (req->authority != NULL)
        evbuffer_add_printf(out, "Host: %s\r\n", req->authority);

    for (uint32_t i = 0; i < f->num; i++) {
        const char *name = http_field_name(f, i);
        size_t len = f->v[i].name_len;
        if (http_is_hop_by_hop(name, len) || http_connection_names(f, name, len) ||
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
            if (!cookie_done)
                add_joined(out, f, "cookie", "; ", NULL);
            cookie_done = true;
            continue;
        }
        evbuffer_add(out, name, len);
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, http_field_value(f, i), f->v[i].value_len);
        evbuffer_add(out, "\r\n", 2);
    }

    if (http->x_forwarded) {
        if (trusted)
            add_joined(out, f, "x-forwarded-for", ", ", ip);
        else
            evbuffer_add_printf(out, "X-Forwarded-For: %s\r\n", ip);
        int at = trusted ? http_fields_find(f, "x-forwarded-proto", 0) : -1;
        evbuffer_add_printf(out, "X-Forwarded-Proto: %s\r\n",
                            at >= 0 ? http_field_value(f, (uint32_t)at) : "https");
        at = trusted ? http_fields_find(f, "x-forwarded-host", 0) : -1;
        if (at >= 0)
            evbuffer_add_printf(out, "X-Forwarded-Host: %s\r\n",
                                http_field_value(f, (uint32_t)at));
        else if (req->authority != NULL)
            evbuffer_add_printf(out, "X-Forwarded-Host: %s\r\n", req->authority);
        at = trusted ? http_fields_find(f, "x-forwarded-port", 0) : -1;
        if (at >= 0)
            evbuffer_add_printf(out, "X-Forwarded-Port: %s\r\n",
                                http_field_value(f, (uint32_t)at));
        else
            evbuffer_add_printf(out, "X-Forwarded-Port: %u\r\n", listener_port(c));
    }
    if (http->forwarded) {
        char hop[INET6_ADDRSTRLEN + 64];
        int n = v6 ? snprintf(hop, sizeof(hop), "for=\"[%s]\";proto=https", ip)
                   : snprintf(hop, sizeof(hop), "for=%s;proto=https", ip);
        struct evbuffer *host = evbuffer_new();
        if (host != NULL && req->authority != NULL) {
            evbuffer_add(host, ";host=", 6);
            add_quoted(host, req->authority);
            evbuffer_add(host, "", 1);
            snprintf(hop + n, sizeof(hop) - (size_t)n, "%s",
                     (const char *)evbuffer_pullup(host, -1));
        }
        if (host != NULL)
            evbuffer_free(host);
        if (trusted)
            add_joined(out, f, "forwarded", ", ", hop);
        else
            evbuffer_add_printf(out, "Forwarded: %s\r\n", hop);
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
                evbuffer_add_printf(out, "%s: %s\r\n", http->request_id, x->request_id);
        }
    }
    if (http->client_cert_header)
        add_xfcc(out, c);
    /* RFC 8470 5.1: a request forwarded before the client's handshake
     * completed says so (unless an earlier intermediary already did, whose
     * field passed on above), so the backend can answer 425. */
    if (c->handshake_completing && http_fields_find(f, "early-data", 0) < 0)
        evbuffer_add(out, "Early-Data: 1\r\n", 15);

    if (req->websocket) {
        evbuffer_add_printf(out, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    } else if (req->content_length >= 0) {
        evbuffer_add_printf(out, "Content-Length: %lld\r\n", (long long)req->content_length);
    } else if (req->has_body) {
        evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
    } else if (!has_no_body_method(req->method)) {
        evbuffer_add_printf(out, "Content-Length: 0\r\n");
    }
    return evbuffer_add(out, "\r\n", 2);
}
