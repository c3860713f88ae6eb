/* tls_ctx: per-listener SSL_CTX, certificates and SNI selection. See
 * tls_ctx.h.
 *
 * Security defaults that need no code: BoringSSL has no TLS compression, never
 * renegotiates as a server, and offers only AEAD suites in TLS 1.3. The TLS 1.2
 * suites were checked by config (ECDHE + AEAD only). */
#include "tls_ctx.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* struct tls_cert is one certificate entry, parsed once. */
struct tls_cert {
    CRYPTO_BUFFER **chain; /* leaf first */
    size_t num_chain;
    EVP_PKEY *key;
    char **dns_names; /* SAN DNS names, lower case */
    size_t num_dns_names;
    char not_after[32]; /* for --check, e.g. "2029-02-28 12:00:00 UTC" */
    char subject[256];
};

struct tls_ctx {
    const struct cfg_listener *listener;
    SSL_CTX *ssl_ctx;
    struct tls_cert *certs;
    size_t num_certs;
};

/* The SSL_CTX ex_data slot that points back at its tls_ctx. */
static int tls_ctx_ex_index = -1;
static pthread_once_t tls_ctx_ex_once = PTHREAD_ONCE_INIT;

static void tls_ctx_ex_init(void)
{
    tls_ctx_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
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

/* last_error_text returns BoringSSL's reason for the newest queued error, or
 * |fallback| when the queue is empty, and empties the queue. */
static const char *last_error_text(const char *fallback)
{
    uint32_t err = ERR_peek_last_error();
    const char *text = err ? ERR_reason_error_string(err) : NULL;
    ERR_clear_error();
    return text ? text : fallback;
}

static void cert_cleanup(struct tls_cert *cert)
{
    for (size_t i = 0; i < cert->num_chain; i++)
        CRYPTO_BUFFER_free(cert->chain[i]);
    free(cert->chain);
    EVP_PKEY_free(cert->key);
    for (size_t i = 0; i < cert->num_dns_names; i++)
        free(cert->dns_names[i]);
    free(cert->dns_names);
}

/* collect_dns_names copies the SAN DNS names of |leaf| into |cert|. */
static int collect_dns_names(struct tls_cert *cert, X509 *leaf)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    if (names == NULL)
        return 0;
    size_t num = sk_GENERAL_NAME_num(names);
    cert->dns_names = calloc(num ? num : 1, sizeof(char *));
    if (cert->dns_names == NULL)
        goto fail;
    for (size_t i = 0; i < num; i++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
        if (name->type != GEN_DNS)
            continue;
        const unsigned char *bytes = ASN1_STRING_get0_data(name->d.dNSName);
        int len = ASN1_STRING_length(name->d.dNSName);
        char *copy = strndup((const char *)bytes, (size_t)len);
        if (copy == NULL)
            goto fail;
        for (char *p = copy; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        cert->dns_names[cert->num_dns_names++] = copy;
    }
    GENERAL_NAMES_free(names);
    return 0;

fail:
    GENERAL_NAMES_free(names);
    return -1;
}

static void describe_leaf(struct tls_cert *cert, X509 *leaf)
{
    BIO *mem = BIO_new(BIO_s_mem());
    const uint8_t *contents;
    size_t len;

    cert->subject[0] = '\0';
    cert->not_after[0] = '\0';
    if (mem == NULL)
        return;
    X509_NAME_print_ex(mem, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253);
    if (BIO_mem_contents(mem, &contents, &len))
        snprintf(cert->subject, sizeof(cert->subject), "%.*s", (int)len, contents);
    BIO_reset(mem);
    ASN1_TIME_print(mem, X509_get0_notAfter(leaf));
    if (BIO_mem_contents(mem, &contents, &len))
        snprintf(cert->not_after, sizeof(cert->not_after), "%.*s", (int)len, contents);
    BIO_free(mem);
}

/* load_chain reads every PEM certificate in |cfg->cert_path| into |cert|
 * and returns the leaf (owned by the caller), or NULL after an error. */
static X509 *load_chain(struct tls_cert *cert, const struct cfg_cert *cfg, FILE *errors)
{
    X509 *leaf = NULL, *x509 = NULL;
    BIO *bio = BIO_new_file(cfg->cert_path, "r");
    if (bio == NULL) {
        cfg_error(errors, &cfg->cert_pos, "cannot read certificate file '%s': %s",
                  cfg->cert_path, strerror(errno));
        ERR_clear_error();
        return NULL;
    }
    while ((x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        uint8_t *der = NULL;
        int der_len = i2d_X509(x509, &der);
        CRYPTO_BUFFER **grown =
            realloc(cert->chain, (cert->num_chain + 1) * sizeof(*cert->chain));
        if (der_len <= 0 || grown == NULL) {
            OPENSSL_free(der);
            cfg_error(errors, &cfg->cert_pos, "out of memory loading '%s'", cfg->cert_path);
            goto fail;
        }
        cert->chain = grown;
        cert->chain[cert->num_chain] = CRYPTO_BUFFER_new(der, (size_t)der_len, NULL);
        OPENSSL_free(der);
        if (cert->chain[cert->num_chain] == NULL)
            goto fail;
        cert->num_chain++;
        if (leaf == NULL)
            leaf = x509;
        else
            X509_free(x509);
        x509 = NULL;
    }
    /* The loop ends on "no start line" at the end of the file: expected. */
    ERR_clear_error();
    if (leaf == NULL) {
        cfg_error(errors, &cfg->cert_pos,
                  "no PEM certificate found in '%s' (expected -----BEGIN CERTIFICATE-----)",
                  cfg->cert_path);
        goto fail;
    }
    BIO_free(bio);
    return leaf;

fail:
    X509_free(x509);
    X509_free(leaf);
    BIO_free(bio);
    return NULL;
}

/* load_cert fills |cert| from the files of |cfg|; 0 or -1 after an error. */
static int load_cert(struct tls_cert *cert, const struct cfg_cert *cfg, FILE *errors)
{
    BIO *bio = NULL;
    X509 *leaf = load_chain(cert, cfg, errors);
    if (leaf == NULL)
        return -1;

    bio = BIO_new_file(cfg->key_path, "r");
    if (bio == NULL) {
        cfg_error(errors, &cfg->key_pos, "cannot read private key file '%s': %s",
                  cfg->key_path, strerror(errno));
        ERR_clear_error();
        goto fail;
    }
    cert->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (cert->key == NULL) {
        cfg_error(errors, &cfg->key_pos, "no usable PEM private key in '%s': %s",
                  cfg->key_path, last_error_text("unreadable"));
        goto fail;
    }
    if (X509_check_private_key(leaf, cert->key) != 1) {
        ERR_clear_error();
        cfg_error(errors, &cfg->key_pos,
                  "private key '%s' does not match the certificate in '%s'",
                  cfg->key_path, cfg->cert_path);
        goto fail;
    }
    if (collect_dns_names(cert, leaf) != 0) {
        cfg_error(errors, &cfg->cert_pos, "out of memory reading names of '%s'",
                  cfg->cert_path);
        goto fail;
    }
    describe_leaf(cert, leaf);
    BIO_free(bio);
    X509_free(leaf);
    return 0;

fail:
    BIO_free(bio);
    X509_free(leaf);
    return -1;
}

/* name_matches compares an SNI (any case) with a lower-case SAN name, where a
 * leading "*." matches exactly one label. */
static bool name_matches(const char *san, const char *sni, bool wildcard)
{
    if (!wildcard)
        return strcasecmp(san, sni) == 0;
    if (san[0] != '*' || san[1] != '.')
        return false;
    const char *dot = strchr(sni, '.');
    return dot != NULL && dot != sni && strcasecmp(san + 1, dot) == 0;
}

static bool cert_has_name(const struct tls_cert *cert, const char *sni, bool wildcard)
{
    for (size_t i = 0; i < cert->num_dns_names; i++)
        if (name_matches(cert->dns_names[i], sni, wildcard))
            return true;
    return false;
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

/* client_has_suite_for returns true if the ClientHello offers a cipher suite
 * that |key_type| can authenticate: any TLS 1.3 suite when this listener
 * allows TLS 1.3, else a TLS 1.2 suite of the key's kind. */
static bool client_has_suite_for(const SSL_CLIENT_HELLO *hello, int key_type,
                                 bool tls13_allowed)
{
    int wanted_auth = key_type == EVP_PKEY_RSA ? NID_auth_rsa : NID_auth_ecdsa;
    CBS suites;
    uint16_t value;

    CBS_init(&suites, hello->cipher_suites, hello->cipher_suites_len);
    while (CBS_get_u16(&suites, &value)) {
        const SSL_CIPHER *cipher = SSL_get_cipher_by_value(value);
        if (cipher == NULL)
            continue;
        int auth = SSL_CIPHER_get_auth_nid(cipher);
        if ((auth == NID_auth_any && tls13_allowed) || auth == wanted_auth)
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
            if (pass < 2 && (sni == NULL || !cert_has_name(cert, sni, pass == 1)))
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

/* select_certificate runs on the ClientHello, before the handshake goes on;
 * the SSL_CTX already serves the first certificate, so only another choice
 * needs work. */
static enum ssl_select_cert_result_t select_certificate(const SSL_CLIENT_HELLO *hello)
{
    SSL *ssl = hello->ssl;
    const struct tls_ctx *tls = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ctx_ex_index);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct tls_cert *cert = choose_cert(tls, hello, sni);

    if (cert == &tls->certs[0])
        return ssl_select_cert_success;
    if (!SSL_set_chain_and_key(ssl, cert->chain, cert->num_chain, cert->key, NULL))
        return ssl_select_cert_error;
    return ssl_select_cert_success;
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
                  l->name, last_error_text("unknown error"));
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

struct tls_ctx *tls_ctx_new(const struct cfg_listener *listener, FILE *errors)
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
    SSL_CTX_set_ex_data(tls->ssl_ctx, tls_ctx_ex_index, tls);

    /* Load every certificate even after a failure, to report all errors. */
    for (size_t i = 0; i < listener->num_certs; i++) {
        if (load_cert(&tls->certs[i], &listener->certs[i], errors) != 0)
            failed = true;
        tls->num_certs++;
    }
    if (failed || apply_policy(tls, errors) != 0)
        goto fail;

    const struct tls_cert *first = &tls->certs[0];
    if (!SSL_CTX_set_chain_and_key(tls->ssl_ctx, first->chain, first->num_chain,
                                   first->key, NULL)) {
        cfg_error(errors, &listener->certs[0].cert_pos, "cannot use certificate '%s': %s",
                  listener->certs[0].cert_path, last_error_text("unknown error"));
        goto fail;
    }
    if (tls->num_certs > 1)
        SSL_CTX_set_select_certificate_cb(tls->ssl_ctx, select_certificate);
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
        cert_cleanup(&tls->certs[i]);
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

void tls_ctx_describe(const struct tls_ctx *tls, FILE *out)
{
    const struct cfg_listener *l = tls->listener;
    fprintf(out, "listener %s:\n", l->name);
    fprintf(out, "  versions: %s to %s\n", tls_version_name(l->min_version),
            tls_version_name(l->max_version));
    fprintf(out, "  tls1.2 suites: %s\n",
            l->min_version > TLS1_2_VERSION ? "(none: TLS 1.2 disabled)" : l->ciphers);
    fprintf(out, "  tls1.3 suites: TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                 "TLS_CHACHA20_POLY1305_SHA256\n");
    fprintf(out, "  groups: %s\n", l->groups);
    for (size_t i = 0; i < tls->num_certs; i++) {
        const struct tls_cert *cert = &tls->certs[i];
        fprintf(out, "  certificate %s: subject %s; names", l->certs[i].cert_path,
                cert->subject);
        for (size_t j = 0; j < cert->num_dns_names; j++)
            fprintf(out, "%s%s", j ? ", " : " ", cert->dns_names[j]);
        fprintf(out, "%s; expires %s\n", cert->num_dns_names ? "" : " (none)",
                cert->not_after);
    }
}
