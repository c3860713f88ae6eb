/* config_tls: the TLS part of the schema: a listener's "tls" mapping (policy
 * preset, versions, suites, groups, ALPN, certificates, client_auth, SNI and
 * expiry settings) and the top-level "session_tickets".
 *
 * Policy. A preset fixes versions and TLS 1.2 suites: "intermediate" (the
 * default) is TLS 1.2 and 1.3 with CONFIG_DEFAULT_CIPHERS, "modern" is TLS 1.3
 * only. min_version, max_version and ciphers belong to "custom", and writing
 * any of them without a policy key means custom, so files written before
 * presets existed keep their meaning. Anything weaker than intermediate (TLS
 * 1.0/1.1, CBC or non-forward-secret suites) needs allow_legacy: true; the
 * handlers that check versions and suites learn allow_legacy before the
 * mapping is applied, since keys come in file order.
 *
 * report_only is a second policy, a candidate that is evaluated and not
 * enforced (report_only.h). Its keys are read by the same handlers into a
 * scratch listener and resolved by the same resolve_policy, so it fails
 * with the same messages, then kept as code points.
 *
 * Ownership is config.c's: config_free calls cfg_tls_free. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>

#include "config_internal.h"
#include "file.h"

#define EXPIRY_WARNING_MAX_MS (365 * CFG_DAY_MS)
#define SESSION_TICKETS_MAX_MS (7 * CFG_DAY_MS)
#define CLIENT_AUTH_DEPTH_MAX 16
#define ALPN_WIRE_MAX 1024

static const char *const policy_names[] = {
    [CFG_POLICY_INTERMEDIATE] = "intermediate",
    [CFG_POLICY_MODERN] = "modern",
    [CFG_POLICY_CUSTOM] = "custom",
    NULL,
};

/* What each preset sets, for "needs policy: custom" messages. */
static const char *const policy_sets[] = {
    [CFG_POLICY_INTERMEDIATE] = "TLS 1.2 to 1.3 and its own TLS 1.2 suites",
    [CFG_POLICY_MODERN] = "TLS 1.3 only",
    [CFG_POLICY_CUSTOM] = "",
};

/* peek_true returns true if |mapping| has |key| written as exactly "true".
 * Only a hint for handlers that run before |key|'s own handler, which
 * reports a bad value. */
static bool peek_true(const struct ynode *mapping, const char *key)
{
    const struct ynode *node = yamltree_get(mapping, key);
    const char *text = node ? yamltree_scalar(node) : NULL;
    return text != NULL && strcmp(text, "true") == 0;
}

/* apply_file checks that the file named by |value| is a readable regular
 * file and stores a copy of its name in |*out_path| and where it was written
 * in |*out_pos|. |what| names the file in messages ("certificate"). */
static void apply_file(struct loader *ld, const char *key, const char *what,
                       const struct ynode *value, char **out_path, struct cfg_pos *out_pos)
{
    const char *path = cfg_expect_text(ld, key, value, "a file name");
    char problem[FILE_PROBLEM_MAX], relative[4200];

    if (path == NULL)
        return;
    if (file_check_regular(path, problem, sizeof(problem)) != 0) {
        cfg_fail_at(ld, value, "cannot read %s file '%s'%s: %s", what, path,
                    cfg_relative_note(path, relative, sizeof(relative)), problem);
        return;
    }
    *out_path = cfg_dup_string(ld, value, path);
    *out_pos = cfg_pos_of(ld, value);
}

/* ---- certificates --------------------------------------------------------- */

static void apply_cert_file(struct loader *ld, const struct field *field,
                            const struct ynode *value, void *out)
{
    struct cfg_cert *cert = out;

    if (strcmp(field->key, "cert") == 0)
        apply_file(ld, field->key, "certificate", value, &cert->cert_path, &cert->cert_pos);
    else if (strcmp(field->key, "key") == 0)
        apply_file(ld, field->key, "private key", value, &cert->key_path, &cert->key_pos);
    else
        apply_file(ld, field->key, "OCSP response", value, &cert->ocsp_path, &cert->ocsp_pos);
}

static const struct field cert_fields[] = {
    {"cert", true, apply_cert_file, 0, NULL},
    {"key", true, apply_cert_file, 0, NULL},
    {"ocsp", false, apply_cert_file, 0, NULL},
};
static const struct schema cert_schema = {"certificates entry", "in certificates entry",
                                          cert_fields, 3};

/* same_file says whether paths |a| and |b| name one file (a link, or the
 * same file spelled two ways, counts). */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    if (strcmp(a, b) == 0)
        return true;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* warn_duplicate_certs logs a "duplicate_certificate" warning for each
 * entry of |listener| whose certificate file an earlier entry already
 * names: a mistake (one meant to list another file), not an error, since
 * the listener still serves the certificate. */
static void warn_duplicate_certs(const struct cfg_listener *listener)
{
    for (size_t i = 1; i < listener->num_certs && log_enabled(LOG_WARN); i++) {
        const struct cfg_cert *cert = &listener->certs[i];
        for (size_t j = 0; cert->cert_path != NULL && j < i; j++) {
            const struct cfg_cert *first = &listener->certs[j];
            struct log_line line;
            char where[512], msg[256];

            if (first->cert_path == NULL || !same_file(first->cert_path, cert->cert_path))
                continue;
            snprintf(where, sizeof(where), "%s:%d:%d", cert->cert_pos.file, cert->cert_pos.line,
                     cert->cert_pos.col);
            snprintf(msg, sizeof(msg),
                     "the certificate file of entry %zu is that of entry %zu (at %d:%d): one of "
                     "them is never served; remove it or name the file meant",
                     i + 1, j + 1, first->cert_pos.line, first->cert_pos.col);
            log_begin(&line, LOG_WARN, "duplicate_certificate");
            log_str(&line, "where", where);
            log_str(&line, "file", cert->cert_path);
            log_str(&line, "msg", msg);
            log_end(&line);
            break;
        }
    }
}

static void apply_certificates(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out)
{
    struct cfg_listener *listener = out;
    size_t num = cfg_list_len(ld, field->key, value, false);

    if (num == 0 ||
        (listener->certs = cfg_new_array(ld, value, num, sizeof(*listener->certs))) == NULL)
        return;
    listener->num_certs = num;
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = yamltree_item(value, i);
        if (cfg_expect(ld, field->key, item, YNODE_MAPPING, "a mapping with 'cert' and 'key'"))
            cfg_apply_mapping(ld, &cert_schema, item, &listener->certs[i]);
    }
    warn_duplicate_certs(listener);
}

/* ---- policy, versions, suites, groups --------------------------------------- */

static void apply_policy(struct loader *ld, const struct field *field,
                         const struct ynode *value, void *out)
{
    int chosen = cfg_choose(ld, field->key, value, policy_names);

    if (chosen >= 0)
        *(enum cfg_policy *)out = (enum cfg_policy)chosen;
}

/* apply_version handles min_version and max_version; |out| is the
 * listener, whose allow_legacy is already known. */
static void apply_version(struct loader *ld, const struct field *field,
                          const struct ynode *value, void *out)
{
    struct cfg_listener *listener = out;
    uint16_t *slot = strcmp(field->key, "min_version") == 0 ? &listener->min_version
                                                            : &listener->max_version;
    const char *text = cfg_expect_text(ld, field->key, value, "a TLS version");
    bool legacy;

    if (text == NULL)
        return;
    legacy = strcmp(text, "1.0") == 0 || strcmp(text, "1.1") == 0;
    if (legacy && !listener->allow_legacy) {
        cfg_fail_at(ld, value,
                    "%s: TLS %s is not allowed (insecure); allowed: \"1.2\", \"1.3\" (TLS 1.0 "
                    "and 1.1 need allow_legacy: true)",
                    field->key, text);
        return;
    }
    if (strcmp(text, "1.0") == 0)
        *slot = TLS1_VERSION;
    else if (strcmp(text, "1.1") == 0)
        *slot = TLS1_1_VERSION;
    else if (strcmp(text, "1.2") == 0)
        *slot = TLS1_2_VERSION;
    else if (strcmp(text, "1.3") == 0)
        *slot = TLS1_3_VERSION;
    else
        cfg_fail_at(ld, value, "invalid TLS version '%s' for '%s'; allowed: \"1.2\", \"1.3\"%s",
                    text, field->key, listener->allow_legacy ? ", \"1.0\", \"1.1\"" : "");
}

/* check_cipher returns 0 if |name| is exactly one TLS 1.2 (or older) suite
 * that is certificate-authenticated and, unless |legacy|, forward-secret and
 * AEAD. Rules and aliases ("ALL", "ECDHE+AESGCM") match several suites, or
 * one under another name, and are refused, so the list means what it says. */
static int check_cipher(struct loader *ld, const struct ynode *item, bool legacy)
{
    static const char *const tls13_suites[] = {
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
    const char *name = yamltree_scalar(item);
    const SSL_CIPHER *cipher = NULL;
    STACK_OF(SSL_CIPHER) * list;
    int set;

    for (size_t i = 0; i < 3; i++) {
        if (strcmp(name, tls13_suites[i]) == 0) {
            cfg_fail_at(ld, item,
                        "'%s' is a TLS 1.3 suite: TLS 1.3 suites cannot be configured "
                        "(BoringSSL always enables all three); list TLS 1.2 suites only",
                        name);
            return -1;
        }
    }
    ERR_clear_error();
    set = SSL_CTX_set_strict_cipher_list(ld->scratch, name);
    ERR_clear_error(); /* a failure leaves nothing to read but its queue entry */
    list = SSL_CTX_get_ciphers(ld->scratch);
    if (set == 1 && sk_SSL_CIPHER_num(list) == 1)
        cipher = sk_SSL_CIPHER_value(list, 0);
    if (cipher == NULL || (strcmp(name, SSL_CIPHER_get_name(cipher)) != 0 &&
                           strcmp(name, SSL_CIPHER_standard_name(cipher)) != 0)) {
        cfg_fail_at(ld, item,
                    "unknown cipher suite '%s' (list one suite name per item, e.g. "
                    "ECDHE-ECDSA-AES128-GCM-SHA256)",
                    name);
        return -1;
    }
    if (SSL_CIPHER_get_auth_nid(cipher) == NID_auth_psk) {
        cfg_fail_at(ld, item,
                    "cipher suite '%s' is not allowed: it authenticates with a pre-shared "
                    "key, not a certificate",
                    name);
        return -1;
    }
    if (!legacy &&
        (SSL_CIPHER_get_kx_nid(cipher) != NID_kx_ecdhe || !SSL_CIPHER_is_aead(cipher))) {
        cfg_fail_at(ld, item,
                    "cipher suite '%s' is not allowed: tlsterm only offers forward-secret AEAD "
                    "suites (ECDHE with AES-GCM or ChaCha20-Poly1305); CBC and "
                    "non-forward-secret suites need allow_legacy: true",
                    name);
        return -1;
    }
    return 0;
}

/* group_known says whether this BoringSSL takes the group |name|. */
static bool group_known(struct loader *ld, const char *name)
{
    bool known;

    ERR_clear_error();
    known = SSL_CTX_set1_curves_list(ld->scratch, name) == 1;
    ERR_clear_error();
    return known;
}

/* check_group accepts our four groups, as this BoringSSL knows them. The
 * names OpenSSL and the RFCs use for the same curves, and our names in
 * another case, get a "did you mean". */
static int check_group(struct loader *ld, const struct ynode *item, bool legacy)
{
    static const char *const allowed[] = {"X25519", "P-256", "P-384", "P-521"};
    static const struct {
        const char *alias;
        const char *name;
    } aliases[] = {{"secp256r1", "P-256"}, {"prime256v1", "P-256"}, {"secp384r1", "P-384"},
                   {"secp521r1", "P-521"}, {"x25519", "X25519"},    {"p256", "P-256"},
                   {"p384", "P-384"},      {"p521", "P-521"}};
    const char *name = yamltree_scalar(item);
    const char *meant = NULL;

    (void)legacy;
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(name, allowed[i]) == 0 && group_known(ld, name))
            return 0;
        if (strcasecmp(name, allowed[i]) == 0)
            meant = allowed[i];
    }
    for (size_t i = 0; meant == NULL && i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcasecmp(name, aliases[i].alias) == 0)
            meant = aliases[i].name;
    if (meant != NULL && group_known(ld, meant))
        cfg_fail_at(ld, item,
                    "unknown group '%s'; did you mean '%s'? allowed: X25519, P-256, P-384, "
                    "P-521",
                    name, meant);
    else
        cfg_fail_at(ld, item, "unknown group '%s'; allowed: X25519, P-256, P-384, P-521", name);
    return -1;
}

/* check_unique reports item |i| of |list| if an earlier item has the same
 * text, and returns -1 then. */
static int check_unique(struct loader *ld, const char *key, const struct ynode *list, size_t i)
{
    const char *text = yamltree_scalar(cfg_list_item(list, i));

    for (size_t j = 0; j < i; j++) {
        const struct ynode *earlier = cfg_list_item(list, j);
        const char *earlier_text = yamltree_scalar(earlier);
        if (earlier_text != NULL && strcmp(earlier_text, text) == 0) {
            cfg_fail_at(ld, cfg_list_item(list, i),
                        "duplicate '%s' in '%s' (first listed at %d:%d)", text, key,
                        yamltree_line(earlier), yamltree_col(earlier));
            return -1;
        }
    }
    return 0;
}

/* apply_name_list checks every item of "ciphers" or "groups" and stores the
 * names colon-joined, the form BoringSSL takes. |out| is the listener. */
static void apply_name_list(struct loader *ld, const struct field *field,
                            const struct ynode *value, void *out)
{
    struct cfg_listener *listener = out;
    bool is_ciphers = strcmp(field->key, "ciphers") == 0;
    int (*check)(struct loader *, const struct ynode *, bool) =
        is_ciphers ? check_cipher : check_group;
    size_t num = cfg_list_len(ld, field->key, value, false);
    size_t joined_len = 0;
    char *joined;
    bool ok = true;

    if (num == 0)
        return;
    if (ld->scratch == NULL && (ld->scratch = SSL_CTX_new(TLS_method())) == NULL) {
        cfg_fail_at(ld, value, "cannot check '%s': out of memory", field->key);
        return;
    }
    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = yamltree_item(value, i);
        if (!cfg_expect(ld, field->key, item, YNODE_SCALAR, "a string") ||
            check(ld, item, listener->allow_legacy) != 0 ||
            check_unique(ld, field->key, value, i) != 0)
            ok = false;
        else
            joined_len += strlen(yamltree_scalar(item)) + 1;
    }
    if (!ok || (joined = cfg_new_array(ld, value, joined_len, 1)) == NULL)
        return;
    for (size_t i = 0, at = 0; i < num; i++) {
        const char *name = yamltree_scalar(yamltree_item(value, i));
        memcpy(joined + at, name, strlen(name));
        at += strlen(name);
        joined[at++] = i + 1 < num ? ':' : '\0';
    }
    *(is_ciphers ? &listener->ciphers : &listener->groups) = joined;
}

/* apply_alpn stores the protocols in ALPN wire format: each one a length
 * byte and 1 to 255 bytes, in server preference order. */
static void apply_alpn(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    struct cfg_listener *listener = out;
    size_t num = cfg_list_len(ld, field->key, value, true); /* "alpn: h2" is a list of one */
    size_t wire_len = 0;
    uint8_t *wire;
    bool ok = true;

    for (size_t i = 0; i < num; i++) {
        const struct ynode *item = cfg_list_item(value, i);
        const char *name = cfg_expect_text(ld, field->key, item, "a protocol name");
        size_t len = name ? strlen(name) : 0;
        bool printable = true;

        for (size_t j = 0; j < len; j++)
            printable &= name[j] > 0x20 && name[j] < 0x7f;
        if (name == NULL) {
            ok = false;
        } else if (len == 0 || len > 255 || !printable) {
            cfg_fail_at(ld, item,
                        "invalid ALPN protocol '%s'; expected 1 to 255 printable characters "
                        "without spaces (e.g. h2, http/1.1)",
                        name);
            ok = false;
        } else if (check_unique(ld, field->key, value, i) != 0) {
            ok = false;
        } else {
            wire_len += 1 + len;
        }
    }
    if (!ok || num == 0)
        return;
    if (wire_len > ALPN_WIRE_MAX) {
        cfg_fail_at(ld, value, "too many ALPN protocols: %zu bytes, at most %d", wire_len,
                    ALPN_WIRE_MAX);
        return;
    }
    if ((wire = cfg_new_array(ld, value, wire_len, 1)) == NULL)
        return;
    for (size_t i = 0, at = 0; i < num; i++) {
        const char *name = yamltree_scalar(cfg_list_item(value, i));
        wire[at++] = (uint8_t)strlen(name);
        memcpy(wire + at, name, strlen(name));
        at += strlen(name);
    }
    listener->alpn = wire;
    listener->alpn_len = wire_len;
}

static void apply_expiry_warning(struct loader *ld, const struct field *field,
                                 const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a duration");

    if (text != NULL && cfg_parse_duration_max(text, EXPIRY_WARNING_MAX_MS, out) != 0)
        cfg_fail_at(ld, value,
                    "invalid duration '%s' for '%s'; expected a whole number above 0 with a "
                    "unit ms, s, m, h or d, at most 365d (e.g. 21d)",
                    text, field->key);
}

/* ---- client_auth ------------------------------------------------------------ */

static const char *const client_auth_mode_names[] = {[CFG_CLIENT_AUTH_NONE] = "none",
                                                     [CFG_CLIENT_AUTH_OPTIONAL] = "optional",
                                                     [CFG_CLIENT_AUTH_REQUIRED] = "required",
                                                     NULL};

static void apply_client_auth_mode(struct loader *ld, const struct field *field,
                                   const struct ynode *value, void *out)
{
    int chosen = cfg_choose(ld, field->key, value, client_auth_mode_names);

    if (chosen >= 0)
        ((struct cfg_client_auth *)out)->mode = (enum cfg_client_auth_mode)chosen;
}

static void apply_client_auth_file(struct loader *ld, const struct field *field,
                                   const struct ynode *value, void *out)
{
    struct cfg_client_auth *auth = out;

    if (strcmp(field->key, "ca") == 0)
        apply_file(ld, field->key, "CA", value, &auth->ca_path, &auth->ca_pos);
    else
        apply_file(ld, field->key, "CRL", value, &auth->crl_path, &auth->crl_pos);
}

static void apply_client_auth_depth(struct loader *ld, const struct field *field,
                                    const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "an integer");

    /* 1: client certificates issued directly by a CA in 'ca'. */
    if (text != NULL)
        cfg_parse_uint(ld, field->key, value, text, 1, CLIENT_AUTH_DEPTH_MAX,
                       &((struct cfg_client_auth *)out)->depth);
}

static const struct field client_auth_fields[] = {
    {"mode", true, apply_client_auth_mode, 0, NULL},
    {"ca", false, apply_client_auth_file, 0, NULL},
    {"crl", false, apply_client_auth_file, 0, NULL},
    {"depth", false, apply_client_auth_depth, 0, NULL},
};
static const struct schema client_auth_schema = {"client_auth", "in client_auth",
                                                 client_auth_fields, 4};

static void apply_client_auth(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out)
{
    struct cfg_listener *listener = out;
    struct cfg_client_auth *auth = &listener->client_auth;
    const struct ynode *mode;

    if (!cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        return;
    cfg_apply_mapping(ld, &client_auth_schema, value, auth);
    /* A missing or invalid mode was reported; the rest depends on it. */
    mode = yamltree_get(value, "mode");
    if (mode == NULL || yamltree_scalar(mode) == NULL ||
        strcmp(yamltree_scalar(mode), client_auth_mode_names[auth->mode]) != 0)
        return;
    if (auth->mode != CFG_CLIENT_AUTH_NONE && yamltree_get(value, "ca") == NULL) {
        cfg_fail_at(ld, mode,
                    "client_auth mode '%s' needs 'ca': the CA certificates that client "
                    "certificates must chain to",
                    yamltree_scalar(mode));
        return;
    }
    if (auth->mode == CFG_CLIENT_AUTH_NONE) {
        static const char *const unused[] = {"ca", "crl", "depth"};
        for (size_t i = 0; i < 3; i++) {
            const struct ynode *node = yamltree_get(value, unused[i]);
            if (node != NULL)
                cfg_fail_at(ld, node,
                            "%s has no effect with client_auth mode 'none'; remove it or set "
                            "mode: optional or required",
                            unused[i]);
        }
    }
}

/* ---- the tls mapping ---------------------------------------------------- */

static void apply_report_only(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out);

static const struct field tls_fields[] = {
    {"certificates", true, apply_certificates, 0, NULL},
    {"policy", false, apply_policy, offsetof(struct cfg_listener, policy), NULL},
    {"min_version", false, apply_version, 0, NULL},
    {"max_version", false, apply_version, 0, NULL},
    {"ciphers", false, apply_name_list, 0, NULL},
    {"groups", false, apply_name_list, 0, NULL},
    {"allow_legacy", false, cfg_apply_bool, offsetof(struct cfg_listener, allow_legacy), NULL},
    {"alpn", false, apply_alpn, 0, NULL},
    {"alpn_required", false, cfg_apply_bool, offsetof(struct cfg_listener, alpn_required),
     NULL},
    {"sni_strict", false, cfg_apply_bool, offsetof(struct cfg_listener, sni_strict), NULL},
    {"allow_expired", false, cfg_apply_bool, offsetof(struct cfg_listener, allow_expired),
     NULL},
    {"expiry_warning", false, apply_expiry_warning,
     offsetof(struct cfg_listener, expiry_warning_ms), NULL},
    {"early_data", false, cfg_apply_bool, offsetof(struct cfg_listener, early_data), NULL},
    {"client_auth", false, apply_client_auth, 0, NULL},
    {"report_only", false, apply_report_only, 0, NULL},
};
static const struct schema tls_schema = {"tls", "in tls", tls_fields,
                                         sizeof(tls_fields) / sizeof(tls_fields[0])};

/* resolve_policy applies the preset once the mapping is read, and reports
 * keys the preset makes meaningless. */
static void resolve_policy(struct loader *ld, const struct ynode *tls,
                           struct cfg_listener *listener)
{
    static const char *const custom_keys[] = {"min_version", "max_version", "ciphers"};
    const struct ynode *policy = yamltree_get(tls, "policy");
    const struct ynode *legacy = yamltree_get(tls, "allow_legacy");
    bool any_custom = false;

    for (size_t i = 0; i < 3; i++) {
        const struct ynode *node = yamltree_get(tls, custom_keys[i]);
        if (node == NULL)
            continue;
        any_custom = true;
        if (policy != NULL && listener->policy != CFG_POLICY_CUSTOM)
            cfg_fail_at(ld, node, "%s needs policy: custom (the preset '%s' sets %s)",
                        custom_keys[i], policy_names[listener->policy],
                        policy_sets[listener->policy]);
    }
    if (policy == NULL && any_custom)
        listener->policy = CFG_POLICY_CUSTOM;
    if (listener->allow_legacy && listener->policy != CFG_POLICY_CUSTOM)
        cfg_fail_at(ld, legacy,
                    "allow_legacy has no effect with the preset '%s'; use policy: custom with "
                    "the legacy min_version or ciphers you need",
                    policy_names[listener->policy]);
    if (listener->policy == CFG_POLICY_MODERN)
        listener->min_version = TLS1_3_VERSION;
    /* With the defaults, min is above max only when both are written. */
    if (listener->min_version > listener->max_version) {
        const struct ynode *min = yamltree_get(tls, "min_version");
        const struct ynode *max = yamltree_get(tls, "max_version");
        cfg_fail_at(ld, min, "min_version \"%s\" is above max_version \"%s\" (set at %d:%d)",
                    yamltree_scalar(min), yamltree_scalar(max), yamltree_line(max),
                    yamltree_col(max));
    }
}

/* ---- report_only: a candidate policy, evaluated but not enforced ---------- */

/* The candidate's keys are the enforced policy's, checked by the same
 * handlers into a scratch listener, so both read and fail alike. */
static const struct field report_only_fields[] = {
    {"policy", true, apply_policy, offsetof(struct cfg_listener, policy), NULL},
    {"min_version", false, apply_version, 0, NULL},
    {"max_version", false, apply_version, 0, NULL},
    {"ciphers", false, apply_name_list, 0, NULL},
    {"groups", false, apply_name_list, 0, NULL},
    {"allow_legacy", false, cfg_apply_bool, offsetof(struct cfg_listener, allow_legacy), NULL},
};
static const struct schema report_only_schema = {
    "report_only", "in report_only", report_only_fields,
    sizeof(report_only_fields) / sizeof(report_only_fields[0])};

/* group_id returns the IANA code point of one of check_group's names. */
static uint16_t group_id(const char *name, size_t len)
{
    static const struct {
        const char *name;
        uint16_t id;
    } groups[] = {{"X25519", SSL_CURVE_X25519},
                  {"P-256", SSL_CURVE_SECP256R1},
                  {"P-384", SSL_CURVE_SECP384R1},
                  {"P-521", SSL_CURVE_SECP521R1}};

    for (size_t i = 0; i < 4; i++) {
        if (strlen(groups[i].name) == len && memcmp(groups[i].name, name, len) == 0)
            return groups[i].id;
    }
    return 0;
}

/* store_candidate turns the checked names of |scratch| (or the defaults)
 * into the code points of |candidate|. */
static void store_candidate(struct loader *ld, const struct ynode *value,
                            const struct cfg_listener *scratch,
                            struct cfg_candidate_policy *candidate)
{
    const char *ciphers = scratch->ciphers ? scratch->ciphers : CONFIG_DEFAULT_CIPHERS;
    const char *groups = scratch->groups ? scratch->groups : CONFIG_DEFAULT_GROUPS;
    STACK_OF(SSL_CIPHER) * list;

    if (ld->scratch == NULL && (ld->scratch = SSL_CTX_new(TLS_method())) == NULL) {
        cfg_fail_at(ld, value, "cannot check 'report_only': out of memory");
        return;
    }
    ERR_clear_error();
    if (SSL_CTX_set_strict_cipher_list(ld->scratch, ciphers) != 1) {
        ERR_clear_error();
        cfg_fail_at(ld, value, "cannot apply report_only ciphers '%s'", ciphers);
        return;
    }
    list = SSL_CTX_get_ciphers(ld->scratch);
    for (size_t i = 0; i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *cipher = sk_SSL_CIPHER_value(list, i);
        if (SSL_CIPHER_get_min_version(cipher) < TLS1_3_VERSION &&
            candidate->num_suites < CFG_CANDIDATE_MAX_SUITES)
            candidate->suites[candidate->num_suites++] = SSL_CIPHER_get_protocol_id(cipher);
    }
    for (const char *at = groups; *at != '\0';) {
        size_t len = strcspn(at, ":");
        uint16_t id = group_id(at, len);
        if (id != 0 && candidate->num_groups < CFG_CANDIDATE_MAX_GROUPS)
            candidate->groups[candidate->num_groups++] = id;
        at += len + (at[len] == ':');
    }
    candidate->policy = scratch->policy;
    candidate->allow_legacy = scratch->allow_legacy;
    candidate->min_version = scratch->min_version;
    candidate->max_version = scratch->max_version;
    candidate->enabled = true;
}

/* apply_report_only reads "report_only: {policy: modern}" or a custom
 * policy into the listener's report_only. */
static void apply_report_only(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out)
{
    struct cfg_listener *listener = out;
    struct cfg_listener scratch = {0};
    int num_errors = ld->num_errors;

    if (!cfg_expect(ld, field->key, value, YNODE_MAPPING,
                    "a mapping with 'policy' (e.g. {policy: modern})"))
        return;
    cfg_tls_defaults(&scratch);
    scratch.allow_legacy = peek_true(value, "allow_legacy");
    cfg_apply_mapping(ld, &report_only_schema, value, &scratch);
    resolve_policy(ld, value, &scratch);
    if (ld->num_errors == num_errors)
        store_candidate(ld, value, &scratch, &listener->report_only);
    free(scratch.ciphers);
    free(scratch.groups);
}

void cfg_apply_tls(struct loader *ld, const struct field *field, const struct ynode *value,
                   void *out)
{
    struct cfg_listener *listener = out;

    if (!cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        return;
    listener->allow_legacy = peek_true(value, "allow_legacy");
    cfg_apply_mapping(ld, &tls_schema, value, listener);
    resolve_policy(ld, value, listener);
    /* alpn_required without alpn: cfg_check_mode, as http mode has a default. */
    if (listener->ciphers == NULL)
        listener->ciphers = cfg_dup_string(ld, value, CONFIG_DEFAULT_CIPHERS);
    if (listener->groups == NULL)
        listener->groups = cfg_dup_string(ld, value, CONFIG_DEFAULT_GROUPS);
}

void cfg_tls_defaults(struct cfg_listener *listener)
{
    listener->policy = CFG_POLICY_INTERMEDIATE;
    listener->min_version = TLS1_2_VERSION;
    listener->max_version = TLS1_3_VERSION;
    listener->expiry_warning_ms = 21 * CFG_DAY_MS;
    listener->client_auth.mode = CFG_CLIENT_AUTH_NONE;
    listener->client_auth.depth = 4;
}

void cfg_tls_free(struct cfg_listener *listener)
{
    for (size_t i = 0; i < listener->num_certs; i++) {
        free(listener->certs[i].cert_path);
        free(listener->certs[i].key_path);
        free(listener->certs[i].ocsp_path);
    }
    free(listener->certs);
    free(listener->ciphers);
    free(listener->groups);
    free(listener->alpn);
    free(listener->client_auth.ca_path);
    free(listener->client_auth.crl_path);
}

/* ---- session_tickets -------------------------------------------------------- */

static void apply_ticket_duration(struct loader *ld, const struct field *field,
                                  const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a duration");
    uint64_t ms;

    if (text == NULL)
        return;
    if (cfg_parse_duration_max(text, SESSION_TICKETS_MAX_MS, &ms) != 0)
        cfg_fail_at(ld, value,
                    "invalid duration '%s' for '%s'; expected a whole number above 0 with a "
                    "unit ms, s, m, h or d, at most 7d (e.g. 1h, 12h)",
                    text, field->key);
    else
        *(uint32_t *)out = (uint32_t)ms;
}

static void apply_key_file(struct loader *ld, const struct field *field,
                           const struct ynode *value, void *out)
{
    struct cfg_session_tickets *tickets = out;
    apply_file(ld, field->key, "session ticket key", value, &tickets->key_file,
               &tickets->key_file_pos);
}

static const struct field tickets_fields[] = {
    {"rotate", false, apply_ticket_duration, offsetof(struct cfg_session_tickets, rotate_ms),
     NULL},
    {"lifetime", false, apply_ticket_duration,
     offsetof(struct cfg_session_tickets, lifetime_ms), NULL},
    {"key_file", false, apply_key_file, 0, NULL},
};
static const struct schema tickets_schema = {"session_tickets", "in session_tickets",
                                             tickets_fields, 3};

void cfg_apply_session_tickets(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out)
{
    struct cfg_session_tickets *tickets = out;
    const struct ynode *rotate, *lifetime;

    if (yamltree_kind(value) == YNODE_SCALAR) {
        const char *text = yamltree_scalar(value);
        if (strcmp(text, "false") == 0 || strcmp(text, "true") == 0)
            tickets->enabled = strcmp(text, "true") == 0;
        else
            cfg_fail_at(ld, value,
                        "invalid session_tickets '%s'; expected false, true or a mapping with "
                        "rotate, lifetime, key_file",
                        text);
        return;
    }
    if (!cfg_expect(ld, field->key, value, YNODE_MAPPING, "false or a mapping"))
        return;
    tickets->enabled = true;
    cfg_apply_mapping(ld, &tickets_schema, value, tickets);
    rotate = yamltree_get(value, "rotate");
    lifetime = yamltree_get(value, "lifetime");
    if (tickets->lifetime_ms < tickets->rotate_ms) {
        cfg_fail_at(ld, lifetime != NULL ? lifetime : rotate,
                    "session_tickets lifetime %s is shorter than rotate %s: a ticket must stay "
                    "valid at least until its key is rotated",
                    lifetime != NULL ? yamltree_scalar(lifetime) : "12h (the default)",
                    rotate != NULL ? yamltree_scalar(rotate) : "1h (the default)");
    }
}
