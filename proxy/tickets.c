/* tickets: session ticket keys. See tickets.h.
 *
 * The ring is read on every ticket issued or presented, from every worker,
 * and written once per rotation or reload: a read-write lock keeps that
 * simple, and an uncontended read lock costs two atomic operations per
 * handshake, next to the tens of microseconds of the handshake itself. */
#include "tickets.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/base64.h>
#include <openssl/cipher.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "clock.h"
#include "file.h"

/* More keys than lifetime / rotate can need with the limits config allows
 * (7 days / 1 hour), and more than any sane key file holds. */
#define TICKET_KEYS_MAX 200
/* A key line is 108 bytes; this leaves room for any amount of comments. */
#define KEY_FILE_MAX (1024 * 1024)

struct ticket_key {
    uint8_t name[SSL_TICKET_KEY_NAME_LEN];
    uint8_t hmac_key[32];
    uint8_t aes_key[32];
    size_t key_len; /* 16 (AES-128, 16-byte HMAC key) or 32 (AES-256) */
    uint64_t retired_ms; /* when it stopped encrypting; 0 while current */
};

struct tickets {
    pthread_rwlock_t lock;
    struct ticket_key keys[TICKET_KEYS_MAX]; /* keys[0] encrypts */
    size_t num_keys;
    bool from_file;
    uint32_t rotate_ms;
    uint32_t lifetime_ms;
};

static int tickets_ex_index = -1;
static pthread_once_t tickets_ex_once = PTHREAD_ONCE_INIT;

static void tickets_ex_init(void)
{
    tickets_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void generate_key(struct ticket_key *key)
{
    RAND_bytes(key->name, sizeof(key->name));
    RAND_bytes(key->hmac_key, sizeof(key->hmac_key));
    RAND_bytes(key->aes_key, sizeof(key->aes_key));
    key->key_len = 32;
    key->retired_ms = 0;
}

/* parse_key decodes one key line of |len| bytes into |key|; 0 or -1. */
static int parse_key(const char *line, size_t len, struct ticket_key *key)
{
    uint8_t raw[96];
    size_t raw_len;
    int result = -1;

    if (EVP_DecodeBase64(raw, &raw_len, sizeof(raw), (const uint8_t *)line, len) &&
        (raw_len == 80 || raw_len == 48)) {
        key->key_len = raw_len == 80 ? 32 : 16;
        memcpy(key->name, raw, 16);
        memcpy(key->hmac_key, raw + 16, key->key_len);
        memcpy(key->aes_key, raw + 16 + key->key_len, key->key_len);
        key->retired_ms = 0;
        result = 0;
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    return result;
}

/* read_key_file fills |keys| from |cfg|'s key file; 0, or -1 after an error
 * that names the line. Lines are cut from the whole file, whatever their
 * length: a long comment stays one comment. Secrets never reach the error
 * text. */
static int read_key_file(const struct cfg_session_tickets *cfg, struct ticket_key *keys,
                         size_t *out_num_keys, FILE *errors)
{
    const struct cfg_pos *pos = &cfg->key_file_pos;
    struct file_contents file;
    char problem[FILE_PROBLEM_MAX];
    int line_no = 0, result = -1;
    size_t num = 0;

    if (file_read_regular(cfg->key_file, KEY_FILE_MAX, &file, problem, sizeof(problem)) != 0) {
        cfg_error(errors, pos, "cannot read session ticket key file '%s': %s", cfg->key_file,
                  problem);
        return -1;
    }
    cfg_warn_exposed(pos, "session ticket key", cfg->key_file, file.mode);
    const char *end = (const char *)file.data + file.len;
    for (const char *line = (const char *)file.data, *next; line < end; line = next) {
        const char *newline = memchr(line, '\n', (size_t)(end - line));
        size_t len = (size_t)((newline != NULL ? newline : end) - line);

        next = line + len + (newline != NULL);
        line_no++;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == 0 || line[0] == '#')
            continue;
        if (num == TICKET_KEYS_MAX || parse_key(line, len, &keys[num]) != 0) {
            cfg_error(errors, pos,
                      "session ticket key file '%s', line %d: expected one base64 key of 80 "
                      "bytes (or 48) per line%s",
                      cfg->key_file, line_no, num == TICKET_KEYS_MAX ? "; too many keys" : "");
            goto fail;
        }
        num++;
    }
    if (num == 0) {
        cfg_error(errors, pos, "session ticket key file '%s' holds no key", cfg->key_file);
        goto fail;
    }
    *out_num_keys = num;
    result = 0;
fail:
    file_contents_cleanup(&file);
    return result;
}

/* load replaces the keys from |cfg| (under the write lock). */
static int load(struct tickets *tickets, const struct cfg_session_tickets *cfg, FILE *errors)
{
    struct ticket_key *fresh = NULL;
    size_t num_fresh = 0;

    if (cfg->key_file != NULL) {
        fresh = calloc(TICKET_KEYS_MAX, sizeof(*fresh));
        if (fresh == NULL || read_key_file(cfg, fresh, &num_fresh, errors) != 0) {
            /* The lines read before the bad one left keys here. */
            if (fresh != NULL)
                OPENSSL_cleanse(fresh, TICKET_KEYS_MAX * sizeof(*fresh));
            free(fresh);
            return -1;
        }
    }
    pthread_rwlock_wrlock(&tickets->lock);
    tickets->rotate_ms = cfg->rotate_ms;
    tickets->lifetime_ms = cfg->lifetime_ms;
    if (fresh != NULL) {
        memcpy(tickets->keys, fresh, num_fresh * sizeof(*fresh));
        tickets->num_keys = num_fresh;
        tickets->from_file = true;
    } else if (tickets->from_file || tickets->num_keys == 0) {
        /* Generated keys survive reloads; a switch away from a key file
         * starts a new ring. */
        generate_key(&tickets->keys[0]);
        tickets->num_keys = 1;
        tickets->from_file = false;
    }
    pthread_rwlock_unlock(&tickets->lock);
    if (fresh != NULL) {
        OPENSSL_cleanse(fresh, TICKET_KEYS_MAX * sizeof(*fresh));
        free(fresh);
    }
    return 0;
}

struct tickets *tickets_new(const struct cfg_session_tickets *cfg, FILE *errors)
{
    struct tickets *tickets = calloc(1, sizeof(*tickets));
    if (tickets == NULL)
        return NULL;
    pthread_rwlock_init(&tickets->lock, NULL);
    if (load(tickets, cfg, errors) != 0) {
        tickets_free(tickets);
        return NULL;
    }
    return tickets;
}

int tickets_update(struct tickets *tickets, const struct cfg_session_tickets *cfg, FILE *errors)
{
    return load(tickets, cfg, errors);
}

void tickets_describe(struct tickets *tickets, FILE *out)
{
    if (tickets == NULL) {
        fprintf(out, "session tickets: off\n");
        return;
    }
    pthread_rwlock_rdlock(&tickets->lock);
    if (tickets->from_file)
        fprintf(out, "session tickets: %zu key%s from the key file, the first encrypts\n",
                tickets->num_keys, tickets->num_keys == 1 ? "" : "s");
    else
        fprintf(out, "session tickets: generated keys, a new one every %us\n",
                tickets->rotate_ms / 1000);
    pthread_rwlock_unlock(&tickets->lock);
}

void tickets_free(struct tickets *tickets)
{
    if (tickets == NULL)
        return;
    pthread_rwlock_destroy(&tickets->lock);
    OPENSSL_cleanse(tickets->keys, sizeof(tickets->keys));
    free(tickets);
}

uint32_t tickets_rotate_interval_ms(const struct tickets *tickets)
{
    return tickets->from_file ? 0 : tickets->rotate_ms;
}

void tickets_rotate(struct tickets *tickets)
{
    uint64_t now = clock_now_ms();

    pthread_rwlock_wrlock(&tickets->lock);
    if (!tickets->from_file) {
        /* Keep the keys that may still decrypt a ticket: one retired less
         * than a lifetime ago issued tickets that are still valid. */
        size_t keep = 0;
        tickets->keys[0].retired_ms = now;
        for (size_t i = 0; i < tickets->num_keys && keep < TICKET_KEYS_MAX - 1; i++)
            if (now - tickets->keys[i].retired_ms < tickets->lifetime_ms)
                tickets->keys[keep++] = tickets->keys[i];
        memmove(&tickets->keys[1], &tickets->keys[0], keep * sizeof(tickets->keys[0]));
        generate_key(&tickets->keys[0]);
        tickets->num_keys = keep + 1;
    }
    pthread_rwlock_unlock(&tickets->lock);
}

static int setup_ciphers(const struct ticket_key *key, uint8_t *iv, EVP_CIPHER_CTX *cipher_ctx,
                         HMAC_CTX *hmac_ctx, int encrypt)
{
    const EVP_CIPHER *cipher = key->key_len == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
    if (!HMAC_Init_ex(hmac_ctx, key->hmac_key, key->key_len, EVP_sha256(), NULL))
        return -1;
    if (encrypt)
        return EVP_EncryptInit_ex(cipher_ctx, cipher, NULL, key->aes_key, iv) ? 0 : -1;
    return EVP_DecryptInit_ex(cipher_ctx, cipher, NULL, key->aes_key, iv) ? 0 : -1;
}

/* ticket_key_cb is BoringSSL's ticket callback; see its return convention in
 * ssl.h (encrypt: 1 or -1; decrypt: 1, 2 to renew, 0 unknown key, -1). */
static int ticket_key_cb(SSL *ssl, uint8_t *key_name, uint8_t *iv, EVP_CIPHER_CTX *cipher_ctx,
                         HMAC_CTX *hmac_ctx, int encrypt)
{
    struct tickets *tickets = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tickets_ex_index);
    int result = encrypt ? -1 : 0;

    pthread_rwlock_rdlock(&tickets->lock);
    if (encrypt) {
        const struct ticket_key *key = &tickets->keys[0];
        memcpy(key_name, key->name, SSL_TICKET_KEY_NAME_LEN);
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) &&
            setup_ciphers(key, iv, cipher_ctx, hmac_ctx, 1) == 0)
            result = 1;
    } else {
        for (size_t i = 0; i < tickets->num_keys; i++) {
            const struct ticket_key *key = &tickets->keys[i];
            if (CRYPTO_memcmp(key->name, key_name, SSL_TICKET_KEY_NAME_LEN) != 0)
                continue;
            /* An older key still decrypts; the client gets a ticket under
             * the current one. */
            if (setup_ciphers(key, iv, cipher_ctx, hmac_ctx, 0) == 0)
                result = i == 0 ? 1 : 2;
            else
                result = -1;
            break;
        }
    }
    pthread_rwlock_unlock(&tickets->lock);
    return result;
}

int tickets_install(struct tickets *tickets, SSL_CTX *ctx, uint32_t lifetime_ms)
{
    pthread_once(&tickets_ex_once, tickets_ex_init);
    if (tickets_ex_index < 0 || !SSL_CTX_set_ex_data(ctx, tickets_ex_index, tickets) ||
        !SSL_CTX_set_tlsext_ticket_key_cb(ctx, ticket_key_cb))
        return -1;
    /* The session lifetime bounds how old a presented ticket may be: TLS
     * 1.2 sessions and TLS 1.3 (PSK with ECDHE) ones have separate knobs. */
    uint32_t lifetime_s = lifetime_ms / 1000 ? lifetime_ms / 1000 : 1;
    SSL_CTX_set_timeout(ctx, lifetime_s);
    SSL_CTX_set_session_psk_dhe_timeout(ctx, lifetime_s);
    return 0;
}
