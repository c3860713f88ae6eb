/* transport: the client side of a connection: TLS on the client socket (or
 * plain TCP on a redirect listener's), and which readiness each blocked
 * operation waits for.
 *
 * A TLS read can wait for writability and a TLS write for readability (a
 * handshake message or a key update in the way), so each blocked operation
 * records what it waits for, and the socket is watched for exactly that.
 * Modes read and write through here and never touch the socket.
 *
 * Ownership. A transport is embedded in its connection, which owns it. It
 * owns the client socket, the SSL (and through it the socket BIO, which
 * points back at |sock|), the socket's event and the tls_io buffers. */
#ifndef TLSTERM_TRANSPORT_H
#define TLSTERM_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include "tls_io.h"

struct tls_ctx;

/* enum transport_wait is what a blocked operation waits for. */
enum transport_wait { TRANSPORT_WAIT_NONE, TRANSPORT_WAIT_READ, TRANSPORT_WAIT_WRITE };

struct transport {
    struct tls_io_socket sock;
    SSL *ssl; /* NULL: plain TCP (a redirect listener) */
    struct event ev;
    short armed;            /* what |ev| is armed for; 0: not armed */
    uint8_t read_wait;      /* enum transport_wait of the blocked read (or handshake) */
    uint8_t write_wait;     /* of the blocked write, flush or close_notify */
    bool close_notify_sent; /* sealed and handed to the socket (or the out buffer) */
};

/* transport_init makes |t| the TLS server side of the accepted socket |fd|,
 * with an SSL from |tls|, or with |tls| NULL its plain TCP side: reads and
 * writes then go to the socket as they are, and close_notify is a no-op.
 * It returns 0, or -1 (out of memory) leaving |fd| to the caller. */
int transport_init(struct transport *t, int fd, struct tls_ctx *tls);

/* transport_cleanup stops |t|'s event, frees its SSL and buffers and closes
 * the socket. With |abort| the close sends a RST. */
void transport_cleanup(struct transport *t, bool abort);

/* transport_handshake advances the handshake; see tls_io_handshake. */
enum tls_io_result transport_handshake(struct transport *t, struct tls_io_failure *out_failure);

/* transport_read reads plaintext; see tls_io_read. While a 0-RTT handshake
 * is still completing (SSL_in_init), an EOF is a failed handshake: it
 * returns TLS_IO_ERROR with END_CLIENT_CLOSED. */
enum tls_io_result transport_read(struct transport *t, uint8_t *buf, size_t len,
                                  size_t *out_len, struct tls_io_failure *out_failure);

/* transport_wait_readable returns true, and records that |t| waits for
 * readability, when a read could only find nothing: the socket was drained,
 * nothing is kept in the read-ahead, and BoringSSL holds no unread bytes.
 * A caller checks it before it takes a buffer for a read. */
bool transport_wait_readable(struct transport *t);

/* transport_write writes plaintext; see tls_io_write. */
enum tls_io_result transport_write(struct transport *t, const uint8_t *buf, size_t len,
                                   size_t *out_len, struct tls_io_failure *out_failure);

/* transport_close_notify seals close_notify, once; see tls_io_close_notify
 * (|out_reason| may be NULL). */
enum tls_io_result transport_close_notify(struct transport *t, enum end_reason *out_reason);

/* transport_cork gathers the records written until transport_flush, so
 * records produced in one turn of the event loop leave in one send. */
static inline void transport_cork(struct transport *t) { tls_io_cork(&t->sock); }

/* transport_flush sends what transport_cork gathered; see tls_io_flush. */
enum tls_io_result transport_flush(struct transport *t);

/* transport_ready records that the socket reported |what| (EV_READ and/or
 * EV_WRITE): the waits it satisfies are cleared. */
void transport_ready(struct transport *t, short what);

/* transport_watch arms |t|'s event on |base| for what its blocked operations
 * wait for, plus |extra|, calling |callback| with |arg|. */
void transport_watch(struct transport *t, struct event_base *base, short extra,
                     event_callback_fn callback, void *arg);

#endif
