/* tickets: the keys that encrypt stateless session tickets (TLS 1.2 tickets
 * and TLS 1.3 PSK tickets, always used with (EC)DHE), shared by every
 * listener of the process and kept across reloads so that a reload does not
 * end resumption.
 *
 * Keys are either generated here and rotated every |rotate|, each one still
 * decrypting for |lifetime| after it stopped encrypting, or read from a key
 * file that several instances share (a fleet behind a load balancer): one
 * base64 line per key, 80 bytes decoded (16-byte name, 32-byte HMAC-SHA256
 * key, 32-byte AES-256 key) or 48 bytes (16, 16, 16 with AES-128, nginx's
 * format). The first line encrypts; every line decrypts. See README. */
#ifndef TLSTERM_TICKETS_H
#define TLSTERM_TICKETS_H

#include <stdio.h>

#include <openssl/ssl.h>

#include "config.h"

struct tickets;

/* tickets_new returns the key ring for |cfg| (owned by the caller), reading
 * the key file or generating a first key, or NULL after writing an error
 * "FILE:LINE:COL: message" to |errors|. |cfg| is only read during the call. */
struct tickets *tickets_new(const struct cfg_session_tickets *cfg, FILE *errors);

/* tickets_update applies a reloaded |cfg| to |tickets|: a key file is read
 * again (a fleet rotates by editing it and reloading), generated keys are
 * kept. It returns 0, or -1 after writing an error to |errors|, leaving the
 * keys as they were. */
int tickets_update(struct tickets *tickets, const struct cfg_session_tickets *cfg,
                   FILE *errors);

/* tickets_describe writes one line saying where |tickets|' keys come from
 * and how many the ring holds, as `tlsterm --check` shows it ("session
 * tickets: off" for NULL). */
void tickets_describe(struct tickets *tickets, FILE *out);

/* tickets_free releases |tickets|. NULL is allowed. No SSL_CTX installed
 * with it may be used afterwards. */
void tickets_free(struct tickets *tickets);

/* tickets_install makes |ctx| issue and accept tickets with |tickets|'
 * keys, valid for |lifetime_ms|. The lifetime is the caller's, from the
 * configuration |ctx| is built for: during a reload the new generation is
 * built before tickets_update gives the ring the new settings. It returns 0
 * or -1. */
int tickets_install(struct tickets *tickets, SSL_CTX *ctx, uint32_t lifetime_ms);

/* tickets_rotate starts encrypting with a fresh generated key and forgets
 * keys older than the lifetime; nothing for a key file. Thread-safe; called
 * from a timer every tickets_rotate_interval_ms. */
void tickets_rotate(struct tickets *tickets);

/* tickets_rotate_interval_ms returns how often tickets_rotate should run, or
 * 0 when keys come from a file. */
uint32_t tickets_rotate_interval_ms(const struct tickets *tickets);

#endif
