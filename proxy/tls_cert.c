/* tls_cert: loading and checking one certificate entry. See tls_cert.h. */
#include "tls_cert.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "file.h"
#include "log.h"
#include "ocsp.h"

/* An OCSP response is a few KiB; anything much larger is the wrong file. */
#define OCSP_FILE_MAX (64 * 1024)
/* PEM files: chains and CA bundles are small, but a large CA's CRL runs to
 * tens of MiB. */
#define PEM_FILE_MAX (64 * 1024 * 1024)
/* NIST SP 800-131A: RSA keys under 2048 bits are disallowed since 2014. */
#define RSA_BITS_MIN 2048
#define DAY_S (24 * 60 * 60)

const char *tls_cert_error_text(const char *fallback)
{
    uint32_t err = ERR_peek_last_error();
    const char *text = err ? ERR_reason_error_string(err) : NULL;
    ERR_clear_error();
    return text ? text : fallback;
}

void tls_cert_cleanup(struct tls_cert *cert)
{
    for (size_t i = 0; i < cert->num_chain; i++)
        CRYPTO_BUFFER_free(cert->chain[i]);
    free(cert->chain);
    EVP_PKEY_free(cert->key);
    for (size_t i = 0; i < cert->num_dns_names; i++)
        free(cert->dns_names[i]);
    free(cert->dns_names);
    free(cert->ocsp);
}

const char *tls_cert_format_subject(X509 *x509, char *out, size_t out_len)
{
    BIO *mem = BIO_new(BIO_s_mem());
    const uint8_t *contents;
    size_t len;

    out[0] = '\0';
    if (mem == NULL)
        return out;
    if (X509_NAME_print_ex(mem, X509_get_subject_name(x509), 0, XN_FLAG_RFC2253) >= 0 &&
        BIO_mem_contents(mem, &contents, &len))
        snprintf(out, out_len, "%.*s", (int)len, contents);
    BIO_free(mem);
    return out;
}

BIO *tls_cert_open_pem(const char *path, const char *what, const struct cfg_pos *pos,
                       struct file_contents *out_pem, FILE *errors)
{
    char problem[FILE_PROBLEM_MAX];
    BIO *bio;

    if (file_read_regular(path, PEM_FILE_MAX, out_pem, problem, sizeof(problem)) != 0) {
        cfg_error(errors, pos, "cannot read %s file '%s': %s", what, path, problem);
        return NULL;
    }
    bio = BIO_new_mem_buf(out_pem->data, (int)out_pem->len);
    if (bio == NULL) {
        cfg_error(errors, pos, "out of memory reading %s file '%s'", what, path);
        file_contents_cleanup(out_pem);
    }
    return bio;
}

/* utc_text writes |time| as "2026-11-26 18:00:00 UTC". */
static const char *utc_text(int64_t time, char *out, size_t out_len)
{
    time_t t = (time_t)time;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, out_len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, out_len, "%lld", (long long)time);
    return out;
}

/* posix_time converts |time| to seconds since the epoch; 0 or -1. */
static int posix_time(const ASN1_TIME *time, int64_t *out_time)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days, seconds, ok = epoch != NULL && ASN1_TIME_diff(&days, &seconds, epoch, time);

    ASN1_TIME_free(epoch);
    if (!ok)
        return -1;
    *out_time = (int64_t)days * DAY_S + seconds;
    return 0;
}

/* collect_names copies the SAN DNS names of |leaf| into |cert| and counts
 * its IP names into |*out_num_ips|. */
static int collect_names(struct tls_cert *cert, X509 *leaf, size_t *out_num_ips)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    *out_num_ips = 0;
    if (names == NULL)
        return 0;
    size_t num = sk_GENERAL_NAME_num(names);
    cert->dns_names = calloc(num ? num : 1, sizeof(char *));
    if (cert->dns_names == NULL)
        goto fail;
    for (size_t i = 0; i < num; i++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
        if (name->type == GEN_IPADD)
            (*out_num_ips)++;
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

/* format_serial writes |x509|'s serial number in upper-case hex. */
static void format_serial(X509 *x509, char *out, size_t out_len)
{
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x509), NULL);
    char *hex = serial != NULL ? BN_bn2hex(serial) : NULL;

    snprintf(out, out_len, "%s", hex != NULL ? hex : "unknown");
    OPENSSL_free(hex);
    BN_free(serial);
}

/* check_issued returns true if |issuer| issued |subject| and signed it. */
static bool check_issued(X509 *issuer, X509 *subject)
{
    EVP_PKEY *key = X509_get_pubkey(issuer);
    bool ok = X509_check_issued(issuer, subject) == X509_V_OK && key != NULL &&
              X509_verify(subject, key) == 1;
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

/* load_chain reads every PEM certificate in |cfg->cert_path| into |cert|,
 * checking that each is issued by the next, and returns the leaf (owned by
 * the caller), or NULL after an error. */
static X509 *load_chain(struct tls_cert *cert, const struct cfg_cert *cfg, FILE *errors)
{
    X509 *leaf = NULL, *prev = NULL, *x509 = NULL;
    struct file_contents pem;
    BIO *bio = tls_cert_open_pem(cfg->cert_path, "certificate", &cfg->cert_pos, &pem, errors);
    if (bio == NULL)
        return NULL;
    while ((x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        uint8_t *der = NULL;
        int der_len = i2d_X509(x509, &der);
        CRYPTO_BUFFER **grown =
            realloc(cert->chain, (cert->num_chain + 1) * sizeof(*cert->chain));
        /* realloc may have moved the array: it is the one to keep. */
        if (grown != NULL)
            cert->chain = grown;
        if (der_len <= 0 || grown == NULL) {
            OPENSSL_free(der);
            cfg_error(errors, &cfg->cert_pos, "out of memory loading '%s'", cfg->cert_path);
            goto fail;
        }
        cert->chain[cert->num_chain] = CRYPTO_BUFFER_new(der, (size_t)der_len, NULL);
        OPENSSL_free(der);
        if (cert->chain[cert->num_chain] == NULL)
            goto fail;
        cert->num_chain++;
        if (prev != NULL && !check_issued(x509, prev)) {
            char issuer[TLS_CERT_SUBJECT_MAX], next[TLS_CERT_SUBJECT_MAX];
            X509_NAME_oneline(X509_get_issuer_name(prev), issuer, sizeof(issuer));
            X509_NAME_oneline(X509_get_subject_name(x509), next, sizeof(next));
            cfg_error(errors, &cfg->cert_pos,
                      "certificate chain in '%s' is out of order: certificate %zu (%s) did "
                      "not issue certificate %zu, whose issuer is %s; list the leaf first, "
                      "then each certificate's issuer",
                      cfg->cert_path, cert->num_chain, next, cert->num_chain - 1, issuer);
            goto fail;
        }
        if (prev != leaf)
            X509_free(prev);
        if (leaf == NULL)
            leaf = x509;
        prev = x509;
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
    if (prev != leaf)
        X509_free(prev);
    BIO_free(bio);
    file_contents_cleanup(&pem);
    return leaf;

fail:
    X509_free(x509);
    if (prev != leaf)
        X509_free(prev);
    X509_free(leaf);
    BIO_free(bio);
    file_contents_cleanup(&pem);
    return NULL;
}

/* load_ocsp reads and checks the OCSP response of |cfg| for |leaf|. */
static int load_ocsp(struct tls_cert *cert, const struct cfg_cert *cfg, X509 *leaf,
                     FILE *errors)
{
    struct ocsp_response response;
    const char *problem;
    uint8_t *serial = NULL;
    int serial_len;
    struct file_contents der;
    char read_problem[FILE_PROBLEM_MAX];

    if (file_read_regular(cfg->ocsp_path, OCSP_FILE_MAX, &der, read_problem,
                          sizeof(read_problem)) != 0) {
        cfg_error(errors, &cfg->ocsp_pos, "cannot read OCSP response file '%s': %s",
                  cfg->ocsp_path, read_problem);
        return -1;
    }
    /* |cert| keeps the buffer as its staple; tls_cert_cleanup frees it. */
    cert->ocsp = der.data;
    cert->ocsp_len = der.len;
    if (ocsp_parse_response(cert->ocsp, cert->ocsp_len, &response, &problem) != 0) {
        cfg_error(errors, &cfg->ocsp_pos,
                  "unusable OCSP response '%s': %s (expected DER, "
                  "as `openssl ocsp -respout` writes it)",
                  cfg->ocsp_path, problem);
        return -1;
    }
    /* i2c_ASN1_INTEGER writes the INTEGER's contents, as CertID holds
     * them; it only measures when given NULL. */
    serial_len = i2c_ASN1_INTEGER(X509_get0_serialNumber(leaf), NULL);
    if (serial_len > 0 && (serial = malloc((size_t)serial_len)) != NULL) {
        uint8_t *end = serial;
        i2c_ASN1_INTEGER(X509_get0_serialNumber(leaf), &end);
    }
    bool same = serial != NULL && (size_t)serial_len == response.serial_len &&
                memcmp(serial, response.serial, response.serial_len) == 0;
    free(serial);
    if (!same) {
        cfg_error(errors, &cfg->ocsp_pos,
                  "OCSP response '%s' is for another certificate (its serial number differs "
                  "from that of '%s')",
                  cfg->ocsp_path, cfg->cert_path);
        return -1;
    }
    if (response.cert_status != OCSP_CERT_GOOD) {
        cfg_error(errors, &cfg->ocsp_pos, "OCSP response '%s' says certificate '%s' is %s",
                  cfg->ocsp_path, cfg->cert_path,
                  response.cert_status == OCSP_CERT_REVOKED ? "revoked" : "unknown");
        return -1;
    }
    cert->ocsp_has_next_update = response.has_next_update;
    cert->ocsp_next_update = response.next_update;
    return 0;
}

/* load_key reads the private key of |cfg| and checks it against |leaf|
 * and, for RSA, its size against |listener|'s policy. A key file others may
 * read or change only warns: refusing it would stop a running fleet at its
 * next reload over what may be a deliberate setup. */
static int load_key(struct tls_cert *cert, const struct cfg_cert *cfg,
                    const struct cfg_listener *listener, X509 *leaf, FILE *errors)
{
    struct file_contents pem;
    BIO *bio = tls_cert_open_pem(cfg->key_path, "private key", &cfg->key_pos, &pem, errors);
    int result = -1;

    if (bio == NULL)
        return -1;
    cfg_warn_exposed(&cfg->key_pos, "private key", cfg->key_path, pem.mode);
    cert->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (cert->key == NULL) {
        cfg_error(errors, &cfg->key_pos, "no usable PEM private key in '%s': %s", cfg->key_path,
                  tls_cert_error_text("unreadable"));
        goto fail;
    }
    if (X509_check_private_key(leaf, cert->key) != 1) {
        ERR_clear_error();
        cfg_error(errors, &cfg->key_pos,
                  "private key '%s' does not match the certificate in '%s'", cfg->key_path,
                  cfg->cert_path);
        goto fail;
    }
    if (EVP_PKEY_id(cert->key) == EVP_PKEY_RSA && EVP_PKEY_bits(cert->key) < RSA_BITS_MIN &&
        !listener->allow_legacy) {
        cfg_error(errors, &cfg->key_pos,
                  "RSA key of %d bits; at least %d required (allow_legacy: true to accept)",
                  EVP_PKEY_bits(cert->key), RSA_BITS_MIN);
        goto fail;
    }
    result = 0;
fail:
    BIO_free(bio);
    file_contents_cleanup(&pem);
    return result;
}

/* describe_algorithms fills |cert|'s sig_alg and key_alg from |leaf| and
 * its key. */
static void describe_algorithms(struct tls_cert *cert, X509 *leaf)
{
    const char *sig = OBJ_nid2sn(X509_get_signature_nid(leaf));
    snprintf(cert->sig_alg, sizeof(cert->sig_alg), "%s", sig != NULL ? sig : "UNKNOWN");
    switch (EVP_PKEY_id(cert->key)) {
    case EVP_PKEY_RSA:
        snprintf(cert->key_alg, sizeof(cert->key_alg), "RSA%d", EVP_PKEY_bits(cert->key));
        break;
    case EVP_PKEY_EC:
        snprintf(cert->key_alg, sizeof(cert->key_alg), "EC%d", EVP_PKEY_bits(cert->key));
        break;
    case EVP_PKEY_ED25519:
        snprintf(cert->key_alg, sizeof(cert->key_alg), "ED25519");
        break;
    default:
        snprintf(cert->key_alg, sizeof(cert->key_alg), "UNKNOWN");
        break;
    }
}

int tls_cert_load(struct tls_cert *cert, const struct cfg_cert *cfg,
                  const struct cfg_listener *listener, int64_t now, FILE *errors)
{
    size_t num_ips;
    int result = -1;
    X509 *leaf;

    cert->cfg = cfg;
    leaf = load_chain(cert, cfg, errors);
    if (leaf == NULL)
        return -1;
    if (load_key(cert, cfg, listener, leaf, errors) != 0)
        goto done;
    if (collect_names(cert, leaf, &num_ips) != 0) {
        cfg_error(errors, &cfg->cert_pos, "out of memory reading names of '%s'",
                  cfg->cert_path);
        goto done;
    }
    tls_cert_format_subject(leaf, cert->subject, sizeof(cert->subject));
    format_serial(leaf, cert->serial, sizeof(cert->serial));
    describe_algorithms(cert, leaf);
    if (cert->num_dns_names == 0 && num_ips == 0) {
        cfg_error(errors, &cfg->cert_pos,
                  "certificate '%s' (%s) has no subjectAltName DNS or IP names: clients "
                  "ignore the subject CN, so none could verify it; reissue it with a SAN",
                  cfg->cert_path, cert->subject);
        goto done;
    }
    if (posix_time(X509_get0_notBefore(leaf), &cert->not_before) != 0 ||
        posix_time(X509_get0_notAfter(leaf), &cert->not_after) != 0) {
        cfg_error(errors, &cfg->cert_pos, "certificate '%s' has an unreadable validity period",
                  cfg->cert_path);
        goto done;
    }
    utc_text(cert->not_before, cert->not_before_text, sizeof(cert->not_before_text));
    utc_text(cert->not_after, cert->not_after_text, sizeof(cert->not_after_text));
    if (cert->not_after < now && !listener->allow_expired) {
        cfg_error(errors, &cfg->cert_pos,
                  "certificate '%s' (%s) expired on %s; renew it, or set allow_expired: true "
                  "to serve it anyway",
                  cfg->cert_path, cert->subject, cert->not_after_text);
        goto done;
    }
    if (cfg->ocsp_path != NULL && load_ocsp(cert, cfg, leaf, errors) != 0)
        goto done;
    result = 0;
done:
    X509_free(leaf);
    return result;
}

/* same_name compares |len| bytes of |name| with the whole of |san|, in any
 * case. */
static bool same_name(const char *san, const char *name, size_t len)
{
    return strlen(san) == len && strncasecmp(san, name, len) == 0;
}

/* name_matches compares an SNI (any case) with a lower-case SAN name, where a
 * leading "*." matches exactly one label. An SNI may end in the root's dot
 * ("example.com."), which names the same host, as BoringSSL accepts it. */
static bool name_matches(const char *san, const char *sni, bool wildcard)
{
    size_t len = strlen(sni);
    if (len > 1 && sni[len - 1] == '.')
        len--;
    if (!wildcard)
        return same_name(san, sni, len);
    if (san[0] != '*' || san[1] != '.')
        return false;
    const char *dot = memchr(sni, '.', len);
    return dot != NULL && dot != sni && same_name(san + 1, dot, len - (size_t)(dot - sni));
}

bool tls_cert_has_name(const struct tls_cert *cert, const char *sni, bool wildcard)
{
    for (size_t i = 0; i < cert->num_dns_names; i++)
        if (name_matches(cert->dns_names[i], sni, wildcard))
            return true;
    return false;
}

bool tls_cert_ocsp_fresh(const struct tls_cert *cert, int64_t now)
{
    return cert->ocsp != NULL && (!cert->ocsp_has_next_update || cert->ocsp_next_update > now);
}

void tls_cert_warn(const struct tls_cert *cert, const struct cfg_listener *listener,
                   int64_t now)
{
    const char *status = NULL;
    struct log_line line;
    char when[TLS_CERT_TIME_TEXT_MAX];

    if (cert->not_after < now)
        status = "expired";
    else if (cert->not_before > now)
        status = "not_yet_valid";
    else if ((uint64_t)(cert->not_after - now) * 1000 < listener->expiry_warning_ms)
        status = "expires_soon";
    if (status != NULL && log_enabled(LOG_WARN)) {
        log_begin(&line, LOG_WARN, "certificate_expiry");
        log_str(&line, "listener", listener->name);
        log_str(&line, "file", cert->cfg->cert_path);
        log_str(&line, "subject", cert->subject);
        log_str(&line, "status", status);
        log_str(&line, "not_before", cert->not_before_text);
        log_str(&line, "not_after", cert->not_after_text);
        log_int(&line, "days_left", (long long)((cert->not_after - now) / DAY_S));
        log_end(&line);
    }
    if (cert->ocsp != NULL && !tls_cert_ocsp_fresh(cert, now) && log_enabled(LOG_WARN)) {
        log_begin(&line, LOG_WARN, "ocsp_stale");
        log_str(&line, "listener", listener->name);
        log_str(&line, "file", cert->cfg->ocsp_path);
        log_str(&line, "certificate", cert->cfg->cert_path);
        log_str(&line, "next_update", utc_text(cert->ocsp_next_update, when, sizeof(when)));
        log_str(&line, "msg",
                "the OCSP response is past its nextUpdate and is not stapled; "
                "fetch a new one");
        log_end(&line);
    }
}
