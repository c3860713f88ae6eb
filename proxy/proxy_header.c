/* proxy_header: the PROXY protocol on a client connection. See
 * proxy_header.h. */
#include "proxy_header.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/x509.h>

#include "conn.h"
#include "proxy_proto.h"
#include "tls_cert.h"
#include "tls_ctx.h"
#include "worker.h"

/* How many of the first bytes a proxy_header_rejected line shows. */
#define REJECT_SHOWN_BYTES 32
/* RFC 5280's upper bound of a common name (ub-common-name) is 64
 * characters, 4 bytes each at most in UTF-8. */
#define CN_MAX (64 * 4)

/* ---- toward the backend ---------------------------------------------------------- */

/* addr_of fills |out| from |sa|; an address of another family (a unix
 * listener's peer) stays unknown. */
static void addr_of(const struct sockaddr *sa, struct proxy_proto_addr *out)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        memcpy(out->addr, &in->sin_addr, 4);
        out->port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        out->family = AF_INET6;
        memcpy(out->addr, &in6->sin6_addr, 16);
        out->port = ntohs(in6->sin6_port);
    }
}

/* peer_cn copies the subject CN of |ssl|'s client certificate into |out|
 * (at most CN_MAX bytes and a NUL) and returns it, or NULL when there is
 * none, or it holds a NUL or is longer: cut short, it could name another
 * client ("admin\0x" is not "admin"). */
static const char *peer_cn(SSL *ssl, char out[CN_MAX + 1])
{
    X509 *peer = SSL_get_peer_certificate(ssl);
    const char *result = NULL;
    unsigned char *utf8 = NULL;

    if (peer == NULL)
        return NULL;
    X509_NAME *name = X509_get_subject_name(peer);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    X509_NAME_ENTRY *entry = i >= 0 ? X509_NAME_get_entry(name, i) : NULL;
    int len = entry != NULL ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry)) : -1;
    if (len > 0)
        result = proxy_proto_whole_text(utf8, (size_t)len, out, CN_MAX + 1);
    OPENSSL_free(utf8);
    X509_free(peer);
    return result;
}

size_t proxy_header_for_backend(const struct conn *c, uint8_t *out, size_t out_len)
{
    const struct cfg_backend *cfg = cfg_listener_backend(c->cfg);
    struct proxy_proto_info info = {0};
    struct proxy_proto_ssl ssl_info = {0};
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    char id[CONN_ID_TEXT_LEN + 1];
    char cn[CN_MAX + 1];
    SSL *ssl = c->client.ssl;

    if (cfg->proxy_protocol == 0)
        return 0;
    addr_of(&c->client_addr.sa, &info.src);
    /* Behind a balancer the destination is the one its client reached, as
     * HAProxy does: of the source's family, where the listen socket may be
     * of the other. */
    if (c->proxied_dst.family != 0)
        info.dst = c->proxied_dst;
    else if (getsockname(c->client.sock.fd, (struct sockaddr *)&local, &local_len) == 0)
        addr_of((struct sockaddr *)&local, &info.dst);
    proxy_proto_unify_families(&info);
    if (cfg->proxy_protocol_unique_id) {
        info.unique_id = (const uint8_t *)conn_id_text(c, id);
        info.unique_id_len = CONN_ID_TEXT_LEN;
    }
    info.crc32c = cfg->proxy_protocol_crc32c;
    if (ssl != NULL) {
        unsigned alpn_len = 0;
        SSL_get0_alpn_selected(ssl, &info.alpn, &alpn_len);
        info.alpn_len = alpn_len;
        info.authority = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

        X509 *peer = SSL_get_peer_certificate(ssl);
        ssl_info.client = PP2_CLIENT_SSL;
        /* The specification: 0 only when a certificate was presented and
         * verified (the handshake fails an unverified one, except with
         * client_auth optional, which still verifies what is sent). */
        ssl_info.verify = 1;
        if (peer != NULL) {
            long result = SSL_get_verify_result(ssl);
            ssl_info.client |= PP2_CLIENT_CERT_SESS;
            if (!SSL_session_reused(ssl))
                ssl_info.client |= PP2_CLIENT_CERT_CONN;
            ssl_info.verify = (uint32_t)result;
            X509_free(peer);
        }
        ssl_info.version = SSL_get_version(ssl);
        ssl_info.cn = peer_cn(ssl, cn);
        ssl_info.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
        const struct tls_cert *served = tls_ctx_served_cert(ssl);
        if (served != NULL) {
            ssl_info.sig_alg = served->sig_alg;
            ssl_info.key_alg = served->key_alg;
        }
        ssl_info.group = SSL_get_curve_name(SSL_get_curve_id(ssl));
        uint16_t sigalg = c->client.sock.server_sigalg;
        if (sigalg != 0)
            ssl_info.sig_scheme = SSL_get_signature_algorithm_name(sigalg, 1);
        info.ssl = &ssl_info;
    }
    return proxy_proto_encode(cfg->proxy_protocol, &info, out, out_len);
}

/* ---- from a load balancer -------------------------------------------------------- */

bool proxy_header_trusted(const struct conn *c)
{
    const struct cfg_accept_proxy *accept = &c->cfg->accept_proxy;
    const struct sockaddr *sa = &c->client_addr.sa;
    const uint8_t *addr;
    uint8_t mapped[4];
    int family = sa->sa_family;

    if (family == AF_INET) {
        addr = (const uint8_t *)&c->client_addr.in.sin_addr;
    } else if (family == AF_INET6) {
        addr = (const uint8_t *)&c->client_addr.in6.sin6_addr;
        /* An IPv4 balancer reaching a dual-stack socket. */
        if (IN6_IS_ADDR_V4MAPPED(&c->client_addr.in6.sin6_addr)) {
            memcpy(mapped, addr + 12, 4);
            for (size_t i = 0; i < accept->num_from; i++)
                if (cfg_cidr_contains(&accept->from[i], AF_INET, mapped))
                    return true;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < accept->num_from; i++)
        if (cfg_cidr_contains(&accept->from[i], family, addr))
            return true;
    return false;
}

/* use_source makes the header's source |src| the connection's peer. */
static void use_source(struct conn *c, const struct proxy_proto_addr *src)
{
    memset(&c->client_addr, 0, sizeof(c->client_addr));
    if (src->family == AF_INET) {
        c->client_addr.in.sin_family = AF_INET;
        memcpy(&c->client_addr.in.sin_addr, src->addr, 4);
        c->client_addr.in.sin_port = htons(src->port);
        c->client_addr_len = sizeof(c->client_addr.in);
    } else {
        c->client_addr.in6.sin6_family = AF_INET6;
        memcpy(&c->client_addr.in6.sin6_addr, src->addr, 16);
        c->client_addr.in6.sin6_port = htons(src->port);
        c->client_addr_len = sizeof(c->client_addr.in6);
    }
}

/* group_serves says whether |group| may have a server of |family|: a host
 * name new at a reload has no address in the configuration (the resolver
 * thread finds them), so it may. */
static bool group_serves(const struct cfg_backend *group, int family)
{
    for (size_t i = 0; group != NULL && i < group->num_servers; i++) {
        if (group->servers[i].is_name && group->servers[i].num_addrs == 0)
            return true;
        for (size_t k = 0; k < group->servers[i].num_addrs; k++)
            if (group->servers[i].addrs[k].ss.ss_family == family)
                return true;
    }
    return false;
}

/* family_served says whether a backend can take |c| now that its client
 * is the header's. With backend.source: client a connection comes from the
 * client's address, so it goes to a server of the client's family only;
 * the load checks match servers to the listen addresses, but the header
 * may name a client of the other family (an IPv6 client behind an IPv4
 * balancer). When no group of the listener has a server of that family,
 * the connection is ended here, saying so, rather than failing later as
 * an unexplained backend_unavailable. */
static bool family_served(const struct conn *c)
{
    const struct cfg_listener *cfg = c->cfg;
    int family = c->client_addr.sa.sa_family;
    struct log_line line;

    if (cfg->backend == NULL || cfg->backend->source != CFG_BACKEND_SOURCE_CLIENT ||
        group_serves(cfg->backend, family))
        return true;
    for (size_t i = 0; i < cfg->num_routes; i++)
        if (group_serves(cfg->routes[i].backend, family))
            return true;
    /* Every such client hits it: rate-limited as backend_unavailable. */
    if (!worker_log_failure(c->worker, END_BACKEND_UNAVAILABLE))
        return false;
    conn_log_begin(&line, c, LOG_WARN, "backend_family_unserved");
    log_str(&line, "family", family == AF_INET ? "IPv4" : "IPv6");
    log_str(&line, "msg",
            "the PROXY header's client is of a family no backend server is, and "
            "backend.source: client connects from the client's address: add a server of "
            "that family, or use source: proxy");
    log_end(&line);
    return false;
}

/* take reads |len| bytes the socket was seen to hold into the buffer. */
static int take(struct conn *c, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(c->client.sock.fd, c->proxy_buf + c->proxy_len, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        /* Not in sock.bytes_read: that counts what TLS got (tls_io.h). */
        c->proxy_len = (uint16_t)(c->proxy_len + n);
        len -= (size_t)n;
    }
    return 0;
}

static enum proxy_header_step closed(struct proxy_header_failure *out, enum end_reason reason)
{
    out->reason = reason;
    return PROXY_HEADER_CLOSED;
}

static enum proxy_header_step rejected(struct proxy_header_failure *out,
                                       enum metrics_proxy_reject reject, const char *detail)
{
    out->reject = reject;
    out->detail = detail;
    return PROXY_HEADER_REJECTED;
}

enum proxy_header_step proxy_header_read(struct conn *c, struct proxy_header_failure *out)
{
    struct proxy_proto_header header;

    memset(out, 0, sizeof(*out));
    if (c->proxy_buf == NULL && (c->proxy_buf = malloc(PROXY_PROTO_MAX_LEN)) == NULL)
        return closed(out, END_OUT_OF_MEMORY);
    for (;;) {
        size_t room = PROXY_PROTO_MAX_LEN - c->proxy_len;
        ssize_t n = recv(c->client.sock.fd, c->proxy_buf + c->proxy_len, room, MSG_PEEK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return PROXY_HEADER_WAIT;
        if (n < 0)
            return closed(out, END_TCP_RESET);
        if (n == 0) {
            if (c->proxy_len == 0)
                return closed(out, END_CLIENT_CLOSED);
            return rejected(out, METRICS_PROXY_MALFORMED,
                            "the connection ended within the header");
        }
        size_t seen = c->proxy_len + (size_t)n;
        switch (proxy_proto_parse(c->proxy_buf, seen, &header)) {
        case PROXY_PROTO_MALFORMED:
            /* The bytes are shown as they came: take what was peeked. */
            c->proxy_len = (uint16_t)seen;
            return rejected(out, METRICS_PROXY_MALFORMED, header.error);
        case PROXY_PROTO_NEED_MORE:
            /* Every byte seen belongs to the header: take them, so the
             * socket is not reported readable again for the same ones. */
            if (take(c, (size_t)n) != 0)
                return closed(out, END_TCP_RESET);
            continue;
        case PROXY_PROTO_DONE:
            /* Only the header: what follows is the TLS handshake's. */
            if (take(c, header.len - c->proxy_len) != 0)
                return closed(out, END_TCP_RESET);
            break;
        }
        if (header.has_addr) {
            use_source(c, &header.src);
            c->proxied_dst = header.dst;
        }
        free(c->proxy_buf);
        c->proxy_buf = NULL;
        c->proxy_len = 0;
        if (header.has_addr && !family_served(c))
            return closed(out, END_BACKEND_UNAVAILABLE);
        return PROXY_HEADER_DONE;
    }
}

void proxy_header_reject(struct conn *c, const struct proxy_header_failure *failure)
{
    struct log_line line;
    size_t shown = c->proxy_len < REJECT_SHOWN_BYTES ? c->proxy_len : REJECT_SHOWN_BYTES;

    metrics_proxy_header_rejected(c->listener->metrics, failure->reject);
    if (!log_enabled(LOG_WARN) || !worker_log_proxy_rejected(c->worker))
        return;
    conn_log_begin(&line, c, LOG_WARN, "proxy_header_rejected");
    log_str(&line, "reason", metrics_proxy_reject_name(failure->reject));
    if (failure->detail != NULL)
        log_str(&line, "detail", failure->detail);
    if (failure->reject != METRICS_PROXY_UNTRUSTED_SOURCE) {
        log_strn(&line, "first_bytes", (const char *)c->proxy_buf, c->proxy_buf ? shown : 0);
        log_int(&line, "bytes_received", (long long)c->proxy_len);
    }
    log_end(&line);
}
