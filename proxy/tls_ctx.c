/* tls_ctx: per-listener SSL_CTX: policy, certificate selection by SNI and
 * key type, OCSP stapling, ALPN, client certificates. See tls_ctx.h.
 *
 * Security defaults that need no code: BoringSSL has no TLS compression, never
 * renegotiates as a server, and offers only AEAD suites in TLS 1.3. The TLS 1.2
 * suites were checked by config (ECDHE + AEAD only, unless allow_legacy).
 *
 * The handshake callbacks read only the tls_ctx, which is immutable once
 * built, so every worker thread shares it without locks. A callback that
 * refuses a client pushes a tls_io_policy_error first, so the failure is
 * logged with the policy's reason (see tls_io.h). */
#include "tls_ctx.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <time.h>
#include <arpa/inet.h>

#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "file.h"
#include "clienthello.h"
#include "log.h"
#include "report_only.h"
#include "tls_cert.h"

struct tls_ctx {
    const struct cfg_listener *listener;
    SSL_CTX *ssl_ctx;
    struct tls_cert *certs;
    size_t num_certs;
};

size_t tls_ctx_num_certs(const struct tls_ctx *tls) { return tls != NULL ? tls->num_certs : 0; }

const struct tls_cert *tls_ctx_cert(const struct tls_ctx *tls, size_t i)
{
    return &tls->certs[i];
}

/* The SSL_CTX ex_data slot that points back at its tls_ctx. */
static int tls_ctx_ex_index = -1;
static pthread_once_t tls_ctx_ex_once = PTHREAD_ONCE_INIT;


static void tls_ctx_ex_init(void)
{
    tls_ctx_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

const struct tls_cert *tls_ctx_served_cert(const SSL *ssl)
{
    return tls_io_served_cert(ssl);
}

bool tls_ctx_covers(const SSL *ssl, const char *host)
{
    const struct tls_cert *cert = tls_io_served_cert(ssl);
    struct in6_addr ip;
    if (cert == NULL || inet_pton(AF_INET, host, &ip) == 1 || inet_pton(AF_INET6, host, &ip) == 1)
        return true; /* IP literals are not checked: no name to reuse a connection for */
    return tls_cert_has_name(cert, host, true);
}

const char *tls_version_name(uint16_t version)
{
    switch (version) {
    case TLS1_3_VERSION:
        return "TLSv1.3";
    case TLS1_2_VERSION:
        return "TLSv1.2";
    case TLS1_1_VERSION:
        return "TLSv1.1";
    case TLS1_VERSION:
        return "TLSv1";
    default:
        return "unknown";
    }
}

/* client_signs_for returns true if the ClientHello's signature_algorithms
 * include a scheme for |key_type|. A client that sends none (TLS 1.2 allows
 * it) is taken to accept anything. */
static bool client_signs_for(const SSL_CLIENT_HELLO *hello, int key_type)
{
    const uint8_t *data;
    size_t len;
    CBS ext, sigalgs;
    uint16_t sigalg;

    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms,
                                              &data, &len))
        return true;
    CBS_init(&ext, data, len);
    if (!CBS_get_u16_length_prefixed(&ext, &sigalgs))
        return true;
    while (CBS_get_u16(&sigalgs, &sigalg)) {
        uint8_t signature = sigalg & 0xff, hash = sigalg >> 8;
        if (key_type == EVP_PKEY_EC && signature == 0x03 && hash >= 0x04 && hash <= 0x06)
            return true; /* ecdsa_secp*_sha* */
        if (key_type == EVP_PKEY_RSA &&
            ((signature == 0x01 && hash >= 0x04 && hash <= 0x06) || /* rsa_pkcs1 */
             (hash == 0x08 && signature >= 0x04 && signature <= 0x06))) /* rsa_pss_rsae */
            return true;
        if (key_type == EVP_PKEY_ED25519 && sigalg == 0x0807)
            return true;
    }
    return false;
}

/* client_offers_tls13 returns true if the ClientHello's supported_versions
 * lists TLS 1.3. */
static bool client_offers_tls13(const SSL_CLIENT_HELLO *hello)
{
    const uint8_t *data;
    size_t len;
    CBS ext, versions;
    uint16_t version;

    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_supported_versions, &data,
                                              &len))
        return false;
    CBS_init(&ext, data, len);
    if (!CBS_get_u8_length_prefixed(&ext, &versions))
        return false;
    while (CBS_get_u16(&versions, &version)) {
        if (version == TLS1_3_VERSION)
            return true;
    }
    return false;
}

/* policy_has_suite returns true if |cipher| is among the listener's TLS 1.2
 * suites (the few configured ones: a linear search is cheapest). */
static bool policy_has_suite(const SSL *ssl, const SSL_CIPHER *cipher)
{
    STACK_OF(SSL_CIPHER) *enabled = SSL_get_ciphers(ssl);

    for (size_t i = 0; i < sk_SSL_CIPHER_num(enabled); i++) {
        if (sk_SSL_CIPHER_value(enabled, i) == cipher)
            return true;
    }
    return false;
}

/* client_has_suite_for returns true if the ClientHello offers a cipher suite
 * that |key_type| can authenticate: any TLS 1.3 suite when both sides speak
 * TLS 1.3, else one of the listener's TLS 1.2 suites of the key's kind. A
 * suite the policy refuses does not count: a scanner offering ECDSA CBC
 * suites and RSA AEAD ones must get the RSA certificate. */
static bool client_has_suite_for(const SSL_CLIENT_HELLO *hello, int key_type,
                                 bool tls13_allowed)
{
    int wanted_auth = key_type == EVP_PKEY_RSA ? NID_auth_rsa : NID_auth_ecdsa;
    bool tls13 = tls13_allowed && client_offers_tls13(hello);
    CBS suites;
    uint16_t value;

    CBS_init(&suites, hello->cipher_suites, hello->cipher_suites_len);
    while (CBS_get_u16(&suites, &value)) {
        const SSL_CIPHER *cipher = SSL_get_cipher_by_value(value);
        if (cipher == NULL)
            continue;
        int auth = SSL_CIPHER_get_auth_nid(cipher);
        if ((auth == NID_auth_any && tls13) ||
            (auth == wanted_auth && policy_has_suite(hello->ssl, cipher)))
            return true;
    }
    return false;
}

/* client_can_use returns true if the client can be served |cert|. */
static bool client_can_use(const struct tls_ctx *tls, const SSL_CLIENT_HELLO *hello,
                           const struct tls_cert *cert)
{
    int key_type = EVP_PKEY_id(cert->key);
    bool tls13_allowed = tls->listener->max_version >= TLS1_3_VERSION;
    return client_signs_for(hello, key_type) &&
           client_has_suite_for(hello, key_type, tls13_allowed);
}

/* choose_cert returns the certificate for a ClientHello: among those whose
 * names match the SNI exactly, else by wildcard, else all of them, the first
 * the client can verify, else the first of those. */
static const struct tls_cert *choose_cert(const struct tls_ctx *tls,
                                          const SSL_CLIENT_HELLO *hello, const char *sni)
{
    for (int pass = 0; pass < 3; pass++) {
        const struct tls_cert *fallback = NULL;
        for (size_t i = 0; i < tls->num_certs; i++) {
            const struct tls_cert *cert = &tls->certs[i];
            if (pass < 2 && (sni == NULL || !tls_cert_has_name(cert, sni, pass == 1)))
                continue;
            if (client_can_use(tls, hello, cert))
                return cert;
            if (fallback == NULL)
                fallback = cert;
        }
        if (fallback != NULL)
            return fallback;
    }
    return &tls->certs[0];
}

/* select_certificate runs on the ClientHello, before the handshake goes on.
 * It picks the certificate (the SSL_CTX already serves the first), staples
 * that certificate's OCSP response while it is fresh, and refuses a client
 * that offers no ALPN at all when alpn_required (the ALPN callback only runs
 * for clients that offer some; this refusal's alert is handshake_failure). */
static enum ssl_select_cert_result_t select_certificate(const SSL_CLIENT_HELLO *hello)
{
    /* Already done by read_client_hello, except for an SSLv2-format hello,
     * which BoringSSL converts without showing it to the message callback. */
    tls_io_record_hello(hello);
    SSL *ssl = hello->ssl;
    const struct tls_ctx *tls = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_ex_index);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct tls_cert *cert = choose_cert(tls, hello, sni);
    const uint8_t *alpn;
    size_t alpn_len;
    enum end_reason would_fail;

    /* The candidate policy only watches; the listener's own decides. */
    if (tls->listener->report_only.enabled &&
        report_only_evaluate_early(&tls->listener->report_only, hello, EVP_PKEY_id(cert->key),
                                   &would_fail))
        tls_io_record_would_fail(ssl, would_fail);

    if (tls->listener->alpn_required &&
        !SSL_early_callback_ctx_extension_get(
            hello, TLSEXT_TYPE_application_layer_protocol_negotiation, &alpn, &alpn_len)) {
        tls_io_push_policy_error(TLS_IO_ERR_NO_APPLICATION_PROTOCOL);
        return ssl_select_cert_error;
    }
    if (cert != &tls->certs[0] &&
        !SSL_set_chain_and_key(ssl, cert->chain, cert->num_chain, cert->key, NULL))
        return ssl_select_cert_error;
    tls_io_record_served_cert(ssl, cert);
    if (cert->ocsp != NULL && tls_cert_ocsp_fresh(cert, time(NULL)) &&
        !SSL_set_ocsp_response(ssl, cert->ocsp, cert->ocsp_len))
        return ssl_select_cert_error;
    return ssl_select_cert_success;
}

/* sni_is_valid returns true if |hello| has no server_name extension, or one
 * that BoringSSL accepts: exactly one name, of type host_name, 1 to 255
 * bytes, without NUL (RFC 6066 section 3; BoringSSL's extract_sni). */
static bool sni_is_valid(const SSL_CLIENT_HELLO *hello)
{
    const uint8_t *data;
    size_t len;
    CBS ext, names, host_name;
    uint8_t name_type;

    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_server_name, &data, &len))
        return true;
    CBS_init(&ext, data, len);
    return CBS_get_u16_length_prefixed(&ext, &names) && CBS_len(&ext) == 0 &&
           CBS_get_u8(&names, &name_type) && name_type == TLSEXT_NAMETYPE_host_name &&
           CBS_get_u16_length_prefixed(&names, &host_name) && CBS_len(&names) == 0 &&
           CBS_len(&host_name) > 0 && CBS_len(&host_name) <= TLSEXT_MAXLEN_host_name &&
           !CBS_contains_zero_byte(&host_name);
}

/* note_signature_scheme records the signature scheme of our handshake
 * signature, which BoringSSL has no getter for, from the message |msg| of
 * |len| bytes we send: a TLS 1.3 CertificateVerify starts with it, and a TLS
 * 1.2 ECDHE ServerKeyExchange has it after the curve and the public key.
 * For the PROXY protocol's SIG_SCHEME (proxy_header.c). */
static void note_signature_scheme(SSL *ssl, const uint8_t *msg, size_t len)
{
    if (len < 4)
        return;
    if (msg[0] == SSL3_MT_CERTIFICATE_VERIFY && len >= 6) {
        tls_io_record_server_sigalg(ssl, (uint16_t)(msg[4] << 8 | msg[5]));
    } else if (msg[0] == SSL3_MT_SERVER_KEY_EXCHANGE && SSL_version(ssl) == TLS1_2_VERSION &&
               len >= 8 && msg[4] == 3 /* named_curve */) {
        size_t at = 8 + (size_t)msg[7]; /* past the public key */
        if (len >= at + 2)
            tls_io_record_server_sigalg(ssl, (uint16_t)(msg[at] << 8 | msg[at + 1]));
    }
}

/* read_client_hello is the message callback: BoringSSL shows it each
 * handshake message as it arrives, before looking into it. It is the first
 * to see a ClientHello, ahead of BoringSSL's own SNI check, which runs even
 * before select_certificate and fails an invalid SNI without an error on the
 * queue, which would read as the client closing (client_closed,
 * UNEXPECTED_EOF). So this records what the client offered, then, for an SNI
 * BoringSSL is about to refuse, pushes TLS_IO_ERR_INVALID_SNI: the fatal
 * alert is BoringSSL's, the reason (malformed) ours. The two checks are the
 * same, so an error pushed here ends the handshake: at once for a first
 * ClientHello, and for a second one (after a HelloRetryRequest), which
 * BoringSSL does not check again, at the next SSL_get_error, which sees it. */
static void read_client_hello(int is_write, int version, int content_type, const void *buf,
                              size_t len, SSL *ssl, void *arg)
{
    const uint8_t *msg = buf;
    SSL_CLIENT_HELLO hello;

    if (is_write && content_type == SSL3_RT_HANDSHAKE) {
        note_signature_scheme(ssl, msg, len);
        return;
    }

    /* A handshake message: type, 24-bit length, body. */
    if (is_write || content_type != SSL3_RT_HANDSHAKE || len < 4 ||
        msg[0] != SSL3_MT_CLIENT_HELLO || clienthello_parse(ssl, msg + 4, len - 4, &hello) != 0)
        return;
    tls_io_record_hello(&hello);
    if (!sni_is_valid(&hello))
        tls_io_push_policy_error(TLS_IO_ERR_INVALID_SNI);
}

/* check_sni enforces sni_strict. BoringSSL calls it (its servername
 * callback) for every ClientHello, with or without an SNI; failing here sends
 * the unrecognized_name alert. */
static int check_sni(SSL *ssl, int *out_alert, void *arg)
{
    const struct tls_ctx *tls = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    for (size_t i = 0; sni != NULL && i < tls->num_certs; i++) {
        if (tls_cert_has_name(&tls->certs[i], sni, false) ||
            tls_cert_has_name(&tls->certs[i], sni, true))
            return SSL_TLSEXT_ERR_NOACK;
    }
    tls_io_push_policy_error(TLS_IO_ERR_UNKNOWN_SNI);
    *out_alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* select_alpn picks the first of the listener's protocols (server
 * preference) that the client offers. With none in common the handshake goes
 * on without ALPN, or fails with no_application_protocol if alpn_required. */
static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                       unsigned in_len, void *arg)
{
    const struct cfg_listener *l = arg;
    uint8_t *selected;

    /* |peer| is searched in order, so passing our list there gives server
     * preference; BoringSSL copies the selected protocol. */
    if (SSL_select_next_proto(&selected, out_len, l->alpn, (unsigned)l->alpn_len, in,
                              in_len) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    if (!l->alpn_required)
        return SSL_TLSEXT_ERR_NOACK;
    tls_io_push_policy_error(TLS_IO_ERR_NO_APPLICATION_PROTOCOL);
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int apply_policy(struct tls_ctx *tls, FILE *errors)
{
    const struct cfg_listener *l = tls->listener;
    SSL_CTX *ctx = tls->ssl_ctx;

    if (!SSL_CTX_set_min_proto_version(ctx, l->min_version) ||
        !SSL_CTX_set_max_proto_version(ctx, l->max_version) ||
        !SSL_CTX_set_strict_cipher_list(ctx, l->ciphers) ||
        !SSL_CTX_set1_curves_list(ctx, l->groups)) {
        cfg_error(errors, &l->pos, "listener '%s': cannot apply the TLS policy: %s",
                  l->name, tls_cert_error_text("unknown error"));
        return -1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Partial writes let a record go out as soon as it is sealed; moving
     * buffers let the forwarder retry from its buffer wherever it is. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Resumption by stateless tickets only: no per-session memory here. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return 0;
}

/* load_crls adds every PEM CRL in client_auth.crl to |store|. An expired
 * CRL would make every client certificate fail (unable to get a current
 * CRL), so it is refused here instead. */
static int load_crls(const struct cfg_client_auth *auth, X509_STORE *store, FILE *errors)
{
    struct file_contents pem;
    BIO *bio = tls_cert_open_pem(auth->crl_path, "CRL", &auth->crl_pos, &pem, errors);
    X509_CRL *crl;
    int num = 0, result = -1;

    if (bio == NULL)
        return -1;
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        const ASN1_TIME *next_update = X509_CRL_get0_nextUpdate(crl);
        bool expired = next_update != NULL && X509_cmp_current_time(next_update) < 0;
        int added = !expired && X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
        if (expired) {
            cfg_error(errors, &auth->crl_pos,
                      "CRL %d in '%s' is past its nextUpdate: every client certificate would "
                      "be refused; fetch a current CRL",
                      num + 1, auth->crl_path);
            goto done;
        }
        if (!added) {
            cfg_error(errors, &auth->crl_pos, "cannot use CRL %d in '%s': %s", num + 1,
                      auth->crl_path, tls_cert_error_text("unknown error"));
            goto done;
        }
        num++;
    }
    ERR_clear_error(); /* the end of the file */
    if (num == 0) {
        cfg_error(errors, &auth->crl_pos,
                  "no PEM CRL found in '%s' (expected -----BEGIN X509 CRL-----)",
                  auth->crl_path);
        goto done;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    result = 0;
done:
    BIO_free(bio);
    file_contents_cleanup(&pem);
    return result;
}

/* load_cas adds every PEM certificate in client_auth.ca to |store| and its
 * subject to |names|; 0, or -1 after an error. Other PEM blocks are
 * skipped, as OpenSSL's file loaders skip them. */
static int load_cas(const struct cfg_client_auth *auth, X509_STORE *store,
                    STACK_OF(X509_NAME) *names, FILE *errors)
{
    struct file_contents pem;
    BIO *bio = tls_cert_open_pem(auth->ca_path, "CA", &auth->ca_pos, &pem, errors);
    X509 *ca;
    int result = -1;

    if (bio == NULL)
        return -1;
    while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ca));
        int added = X509_STORE_add_cert(store, ca);
        X509_free(ca);
        if (name == NULL || added != 1 || !sk_X509_NAME_push(names, name)) {
            X509_NAME_free(name);
            cfg_error(errors, &auth->ca_pos, "cannot use CA certificate %zu in '%s': %s",
                      sk_X509_NAME_num(names) + 1, auth->ca_path,
                      tls_cert_error_text("out of memory"));
            goto done;
        }
    }
    ERR_clear_error(); /* the end of the file */
    if (sk_X509_NAME_num(names) == 0) {
        cfg_error(errors, &auth->ca_pos,
                  "no usable PEM CA certificate in '%s' (expected -----BEGIN CERTIFICATE-----)",
                  auth->ca_path);
        goto done;
    }
    result = 0;
done:
    BIO_free(bio);
    file_contents_cleanup(&pem);
    return result;
}

/* apply_client_auth asks clients for a certificate and verifies it against
 * client_auth.ca (and .crl), as client_auth.mode says. */
static int apply_client_auth(struct tls_ctx *tls, FILE *errors)
{
    const struct cfg_client_auth *auth = &tls->listener->client_auth;
    SSL_CTX *ctx = tls->ssl_ctx;
    STACK_OF(X509_NAME) *names;

    if (auth->mode == CFG_CLIENT_AUTH_NONE)
        return 0;
    names = sk_X509_NAME_new_null();
    if (names == NULL || load_cas(auth, SSL_CTX_get_cert_store(ctx), names, errors) != 0) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return -1;
    }
    /* Sent in the CertificateRequest, so clients pick a matching certificate. */
    SSL_CTX_set_client_CA_list(ctx, names);
    if (auth->crl_path != NULL && load_crls(auth, SSL_CTX_get_cert_store(ctx), errors) != 0)
        return -1;
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER |
            (auth->mode == CFG_CLIENT_AUTH_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        NULL);
    SSL_CTX_set_verify_depth(ctx, (int)auth->depth);
    return 0;
}

/* apply_session_context ties sessions to this listener and its client
 * certificate policy: a session (ticket) resumes only where both are the
 * same, so a ticket from a listener without client_auth, or from before a
 * reload that required it, cannot skip the client certificate. */
static int apply_session_context(struct tls_ctx *tls)
{
    const struct cfg_listener *l = tls->listener;
    const struct cfg_client_auth *auth = &l->client_auth;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX sha;
    uint8_t mode = (uint8_t)auth->mode;

    SHA256_Init(&sha);
    SHA256_Update(&sha, l->name, strlen(l->name) + 1);
    SHA256_Update(&sha, &mode, 1);
    if (auth->ca_path != NULL)
        SHA256_Update(&sha, auth->ca_path, strlen(auth->ca_path) + 1);
    if (auth->crl_path != NULL)
        SHA256_Update(&sha, auth->crl_path, strlen(auth->crl_path) + 1);
    SHA256_Final(digest, &sha);
    return SSL_CTX_set_session_id_context(tls->ssl_ctx, digest, SSL_MAX_SID_CTX_LENGTH) == 1
               ? 0
               : -1;
}

/* apply_sessions sets up resumption (stateless tickets only) and 0-RTT. */
static int apply_sessions(struct tls_ctx *tls, struct tickets *tickets,
                          uint32_t ticket_lifetime_ms, FILE *errors)
{
    SSL_CTX *ctx = tls->ssl_ctx;

    if (tickets == NULL) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        return 0;
    }
    if (tickets_install(tickets, ctx, ticket_lifetime_ms) != 0) {
        cfg_error(errors, &tls->listener->pos, "listener '%s': cannot set up session tickets",
                  tls->listener->name);
        return -1;
    }
    SSL_CTX_set_early_data_enabled(ctx, tls->listener->early_data);
    return 0;
}

/* warn_legacy logs, at every load, that |listener| permits what the presets
 * refuse. */
static void warn_legacy(const struct cfg_listener *listener)
{
    struct log_line line;

    if (!listener->allow_legacy || !log_enabled(LOG_WARN))
        return;
    log_begin(&line, LOG_WARN, "legacy_tls");
    log_str(&line, "listener", listener->name);
    log_str(&line, "min_version", tls_version_name(listener->min_version));
    log_str(&line, "ciphers", listener->ciphers);
    log_str(&line, "msg",
            "allow_legacy is set: TLS 1.0/1.1 and CBC or non-forward-secret suites expose "
            "the clients that use them to known attacks");
    log_end(&line);
}

struct tls_ctx *tls_ctx_new(const struct cfg_listener *listener, struct tickets *tickets,
                            uint32_t ticket_lifetime_ms, FILE *errors)
{
    bool failed = false;
    struct tls_ctx *tls = calloc(1, sizeof(*tls));
    if (tls == NULL)
        return NULL;
    tls->listener = listener;
    tls->certs = calloc(listener->num_certs, sizeof(*tls->certs));
    tls->ssl_ctx = SSL_CTX_new(TLS_method());
    if (tls->certs == NULL || tls->ssl_ctx == NULL)
        goto fail;
    pthread_once(&tls_ctx_ex_once, tls_ctx_ex_init);
    /* Every callback finds the tls_ctx here: a context without it is
     * unusable (this stores a pointer, but may allocate). */
    if (!SSL_CTX_set_ex_data(tls->ssl_ctx, tls_ctx_ex_index, tls))
        goto fail;

    /* Load every certificate even after a failure, to report all errors. */
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < listener->num_certs; i++) {
        if (tls_cert_load(&tls->certs[i], &listener->certs[i], listener, now, errors) != 0)
            failed = true;
        tls->num_certs++;
    }
    if (apply_client_auth(tls, errors) != 0)
        failed = true;
    if (failed || apply_policy(tls, errors) != 0 || apply_session_context(tls) != 0 ||
        apply_sessions(tls, tickets, ticket_lifetime_ms, errors) != 0)
        goto fail;

    const struct tls_cert *first = &tls->certs[0];
    if (!SSL_CTX_set_chain_and_key(tls->ssl_ctx, first->chain, first->num_chain,
                                   first->key, NULL)) {
        cfg_error(errors, &listener->certs[0].cert_pos, "cannot use certificate '%s': %s",
                  listener->certs[0].cert_path, tls_cert_error_text("unknown error"));
        goto fail;
    }
    SSL_CTX_set_msg_callback(tls->ssl_ctx, read_client_hello);
    SSL_CTX_set_select_certificate_cb(tls->ssl_ctx, select_certificate);
    if (listener->sni_strict) {
        SSL_CTX_set_tlsext_servername_callback(tls->ssl_ctx, check_sni);
        SSL_CTX_set_tlsext_servername_arg(tls->ssl_ctx, tls);
    }
    if (listener->alpn != NULL)
        SSL_CTX_set_alpn_select_cb(tls->ssl_ctx, select_alpn, (void *)listener);
    warn_legacy(listener);
    tls_ctx_warn_expiry(tls);
    return tls;

fail:
    tls_ctx_free(tls);
    return NULL;
}

void tls_ctx_free(struct tls_ctx *tls)
{
    if (tls == NULL)
        return;
    for (size_t i = 0; i < tls->num_certs; i++)
        tls_cert_cleanup(&tls->certs[i]);
    free(tls->certs);
    SSL_CTX_free(tls->ssl_ctx);
    free(tls);
}

SSL *tls_ctx_new_ssl(struct tls_ctx *tls, struct tls_io_socket *sock)
{
    SSL *ssl = SSL_new(tls->ssl_ctx);
    if (ssl == NULL)
        return NULL;
    if (tls_io_attach(ssl, sock) != 0) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    /* Drop the handshake-only configuration once the handshake is done: it
     * is most of an idle connection's TLS memory. */
    SSL_set_shed_handshake_config(ssl, 1);
    return ssl;
}

void tls_ctx_warn_expiry(const struct tls_ctx *tls)
{
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; tls != NULL && i < tls->num_certs; i++)
        tls_cert_warn(&tls->certs[i], tls->listener, now);
}

static const char *key_type_name(const EVP_PKEY *key)
{
    switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_RSA:
        return "RSA";
    case EVP_PKEY_ED25519:
        return "Ed25519";
    default:
        return "other";
    }
}

/* describe_alpn writes the listener's ALPN protocols, comma-separated. */
static void describe_alpn(const struct cfg_listener *l, FILE *out)
{
    if (l->alpn == NULL) {
        fprintf(out, "  alpn: (none)\n");
        return;
    }
    fprintf(out, "  alpn:");
    for (size_t at = 0; at < l->alpn_len; at += 1 + l->alpn[at])
        fprintf(out, "%s%.*s", at ? ", " : " ", (int)l->alpn[at],
                (const char *)l->alpn + at + 1);
    fprintf(out, "%s\n", l->alpn_required ? " (required)" : "");
}

/* suite_has_certificate says whether the TLS 1.2 suite |cipher| can be
 * negotiated with one of |tls|'s certificates: an ECDHE-RSA suite needs an
 * RSA key, an ECDHE-ECDSA one an ECDSA (or Ed25519) key. */
static bool suite_has_certificate(const struct tls_ctx *tls, const SSL_CIPHER *cipher)
{
    int auth = SSL_CIPHER_get_auth_nid(cipher);

    for (size_t i = 0; i < tls->num_certs; i++) {
        int key = EVP_PKEY_id(tls->certs[i].key);
        if (auth == NID_auth_any || (auth == NID_auth_rsa && key == EVP_PKEY_RSA) ||
            (auth == NID_auth_ecdsa && (key == EVP_PKEY_EC || key == EVP_PKEY_ED25519)))
            return true;
    }
    return false;
}

/* describe_tls12_suites writes the |num| TLS 1.2 suites of |suites| (IANA
 * code points, in preference order) that |tls|'s certificates can serve
 * after |label|, and says which kind was left out for want of a
 * certificate: a suite no handshake can pick only misleads. */
static void describe_tls12_suites(const struct tls_ctx *tls, const char *label,
                                  const uint16_t *suites, size_t num, FILE *out)
{
    bool left_rsa = false, left_ecdsa = false, any = false;

    fprintf(out, "  %s:", label);
    for (size_t i = 0; i < num; i++) {
        const SSL_CIPHER *cipher = SSL_get_cipher_by_value(suites[i]);
        if (cipher == NULL || SSL_CIPHER_get_min_version(cipher) > TLS1_2_VERSION)
            continue;
        if (!suite_has_certificate(tls, cipher)) {
            left_rsa = left_rsa || SSL_CIPHER_get_auth_nid(cipher) == NID_auth_rsa;
            left_ecdsa = left_ecdsa || SSL_CIPHER_get_auth_nid(cipher) == NID_auth_ecdsa;
            continue;
        }
        fprintf(out, "%s%s", any ? ":" : " ", SSL_CIPHER_get_name(cipher));
        any = true;
    }
    fprintf(out, "%s%s%s\n", any ? "" : " (none)",
            left_rsa ? " (RSA suites left out: no RSA certificate)" : "",
            left_ecdsa ? " (ECDSA suites left out: no ECDSA certificate)" : "");
}

/* describe_suites writes the listener's TLS 1.2 suites, as its SSL_CTX
 * holds them. */
static void describe_suites(const struct tls_ctx *tls, FILE *out)
{
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(tls->ssl_ctx);
    uint16_t suites[64];
    size_t num = 0;

    if (tls->listener->min_version > TLS1_2_VERSION) {
        fprintf(out, "  tls1.2 suites: (none: TLS 1.2 disabled)\n");
        return;
    }
    for (size_t i = 0; i < sk_SSL_CIPHER_num(ciphers) && num < 64; i++)
        suites[num++] = SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(ciphers, i));
    describe_tls12_suites(tls, "tls1.2 suites", suites, num, out);
}

/* describe_candidate writes the report-only policy's versions, suites and
 * groups. */
static void describe_candidate(const struct tls_ctx *tls, FILE *out)
{
    const struct cfg_candidate_policy *candidate = &tls->listener->report_only;

    fprintf(out, "  report only: %s, %s to %s (evaluated, not enforced)\n",
            report_only_policy_name(candidate), tls_version_name(candidate->min_version),
            tls_version_name(candidate->max_version));
    if (candidate->min_version > TLS1_2_VERSION)
        fprintf(out, "  report only tls1.2 suites: (none: TLS 1.2 disabled)\n");
    else
        describe_tls12_suites(tls, "report only tls1.2 suites", candidate->suites,
                              candidate->num_suites, out);
    fprintf(out, "  report only groups:");
    for (size_t i = 0; i < candidate->num_groups; i++) {
        const char *name = SSL_get_curve_name(candidate->groups[i]);
        fprintf(out, "%s%s", i ? ":" : " ", name != NULL ? name : "?");
    }
    fprintf(out, "%s\n", candidate->num_groups ? "" : " (none)");
}

void tls_ctx_describe(const struct tls_ctx *tls, FILE *out)
{
    static const char *const policy_names[] = {[CFG_POLICY_INTERMEDIATE] = "intermediate",
                                               [CFG_POLICY_MODERN] = "modern",
                                               [CFG_POLICY_CUSTOM] = "custom"};
    static const char *const auth_names[] = {[CFG_CLIENT_AUTH_NONE] = "none",
                                             [CFG_CLIENT_AUTH_OPTIONAL] = "optional",
                                             [CFG_CLIENT_AUTH_REQUIRED] = "required"};
    const struct cfg_listener *l = tls->listener;
    const struct cfg_client_auth *auth = &l->client_auth;
    int64_t now = (int64_t)time(NULL);

    fprintf(out, "listener %s:\n", l->name);
    fprintf(out, "  policy: %s%s\n", policy_names[l->policy],
            l->allow_legacy ? " (allow_legacy)" : "");
    fprintf(out, "  versions: %s to %s\n", tls_version_name(l->min_version),
            tls_version_name(l->max_version));
    describe_suites(tls, out);
    fprintf(out, "  tls1.3 suites: TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                 "TLS_CHACHA20_POLY1305_SHA256\n");
    fprintf(out, "  groups: %s\n", l->groups);
    if (l->report_only.enabled)
        describe_candidate(tls, out);
    describe_alpn(l, out);
    fprintf(out, "  sni: %s\n", l->sni_strict ? "strict" : "default certificate for others");
    fprintf(out, "  client auth: %s", auth_names[auth->mode]);
    if (auth->mode != CFG_CLIENT_AUTH_NONE)
        fprintf(out, "; ca %s; crl %s; depth %u", auth->ca_path,
                auth->crl_path ? auth->crl_path : "(none)", auth->depth);
    fprintf(out, "\n");
    for (size_t i = 0; i < tls->num_certs; i++) {
        const struct tls_cert *cert = &tls->certs[i];
        fprintf(out, "  certificate %s: %s; subject %s; names", l->certs[i].cert_path,
                key_type_name(cert->key), cert->subject);
        for (size_t j = 0; j < cert->num_dns_names; j++) {
            /* The certificate's bytes: escaped, commas too, for the list. */
            char *name = log_escape_dup(cert->dns_names[j], LOG_ESCAPE_TERMINAL, ",");
            fprintf(out, "%s%s", j ? ", " : " ", name ? name : "?");
            free(name);
        }
        fprintf(out, "%s; expires %s%s; ocsp %s\n", cert->num_dns_names ? "" : " (none)",
                cert->not_after_text, cert->not_after < now ? " (EXPIRED)" : "",
                cert->ocsp == NULL                  ? "none"
                : tls_cert_ocsp_fresh(cert, now) ? "stapled"
                                                    : "stale, not stapled");
    }
}

/* peer_leaf returns the client's certificate, a reference the caller frees,
 * or NULL when it sent none. */
static X509 *peer_leaf(const SSL *ssl) { return SSL_get_peer_certificate(ssl); }

const char *tls_ctx_peer_subject(const SSL *ssl, char *out, size_t out_len)
{
    X509 *leaf = peer_leaf(ssl);

    if (leaf == NULL)
        return NULL;
    tls_cert_format_subject(leaf, out, out_len);
    X509_free(leaf);
    return out;
}

/* add_name adds "TYPE:value" to |san| if it fits. */
static void add_name(struct tls_ctx_san *san, const char *type, const char *value,
                     size_t value_len)
{
    char *name = san->text + san->text_len;
    size_t room = sizeof(san->text) - san->text_len;
    int n = snprintf(name, room, "%s:%.*s", type, (int)value_len, value);

    if (san->num_names == TLS_CTX_SAN_MAX || n < 0 || (size_t)n >= room)
        return; /* a name that does not fit is left out whole */
    san->names[san->num_names++] = name;
    san->text_len += (size_t)n + 1;
}

int tls_ctx_peer_san(const SSL *ssl, struct tls_ctx_san *out)
{
    X509 *leaf = peer_leaf(ssl);
    GENERAL_NAMES *names;

    if (leaf == NULL)
        return -1;
    out->num_names = 0;
    out->text_len = 0;
    names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (size_t i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
        const ASN1_STRING *text = NULL;
        const char *type = NULL;
        char ip[INET6_ADDRSTRLEN];

        if (name->type == GEN_DNS) {
            type = "DNS", text = name->d.dNSName;
        } else if (name->type == GEN_EMAIL) {
            type = "email", text = name->d.rfc822Name;
        } else if (name->type == GEN_URI) {
            type = "URI", text = name->d.uniformResourceIdentifier;
        } else if (name->type == GEN_IPADD) {
            int len = ASN1_STRING_length(name->d.iPAddress);
            int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : AF_UNSPEC;
            if (family != AF_UNSPEC &&
                inet_ntop(family, ASN1_STRING_get0_data(name->d.iPAddress), ip, sizeof(ip)))
                add_name(out, "IP", ip, strlen(ip));
            continue;
        }
        if (text != NULL)
            add_name(out, type, (const char *)ASN1_STRING_get0_data(text),
                     (size_t)ASN1_STRING_length(text));
    }
    GENERAL_NAMES_free(names);
    X509_free(leaf);
    return 0;
}
