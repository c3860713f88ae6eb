/* tls_io: BoringSSL on a non-blocking socket, and what its errors mean.
 *
 * The SSL reads and writes the socket through a small BIO of ours rather
 * than BoringSSL's socket BIO, so that a failed handshake can be explained
 * from what the client actually sent: how many bytes, and the last few (a client that rejects
 * our certificate in TLS 1.3 often sends its alert in plaintext, which BoringSSL can only
 * report as a bad record). Every call here clears the error queue first, so the classification
 * of a failure looks only at the error the call itself raised. */
#ifndef TLSTERM_TLS_IO_H
#define TLSTERM_TLS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "reason.h"

struct clienthello_summary;
struct tls_cert;

enum tls_io_result {
    TLS_IO_OK,         /* done, or |*out_len| bytes moved */
    TLS_IO_WANT_READ,  /* retry once the socket is readable */
    TLS_IO_WANT_WRITE, /* retry once the socket is writable */
    TLS_IO_EOF,        /* the peer closed: close_notify or a plain TCP EOF */
    TLS_IO_ERROR,      /* fatal; see tls_io_failure */
};

/* struct tls_io_failure describes a fatal error: the reason token, the alert
 * for END_CLIENT_ALERT, and a detail in static storage: BoringSSL's reason
 * code (e.g. "UNSUPPORTED_PROTOCOL"), or one of tlsterm's in the same style
 * when the socket ended it ("UNEXPECTED_EOF", "CONNECTION_RESET"). */
struct tls_io_failure {
    enum end_reason reason;
    uint8_t alert;
    const char *detail;
};

/* TLS_IO_TAIL_LEN bytes: a TLS record header plus a two-byte alert. */
#define TLS_IO_TAIL_LEN 7

/* TLS_IO_HEAD_LEN bytes of the start of the stream are kept: enough for
 * what BoringSSL reads before it can tell plain HTTP from TLS (a record
 * header), so that the request can be read back (tls_io_received). */
#define TLS_IO_HEAD_LEN 16

/* TLS_IO_READAHEAD_LEN is how many bytes past what the SSL asked for one
 * read may take from the socket: two full records, so that a bulk upload
 * costs at most one recv per record instead of two (header, then body). */
#define TLS_IO_READAHEAD_LEN 32768
/* TLS_IO_OUT_MAX bounds the records held back while corked (tls_io_cork):
 * four full records, written to the socket with one send. */
#define TLS_IO_OUT_MAX (4 * (16384 + 256 + 5))

/* struct tls_io_socket is the client socket as the SSL sees it. It is
 * embedded in its connection, which owns the descriptor.
 *
 * Buffers. |readahead| holds bytes read from the socket that the SSL has
 * not asked for yet, and |out| records sealed while corked that the socket
 * has not taken yet. Each is allocated only while it holds bytes, so an idle
 * connection holds neither. */
struct tls_io_socket {
    int fd;
    /* The last read took all the socket had: the next one would only find
     * EAGAIN, so it is not made until tls_io_readable says the socket has
     * more. A level-triggered event loop makes this safe: bytes that arrive
     * meanwhile leave the socket readable. */
    bool drained;
    bool corked;         /* records are gathered in |out| until tls_io_flush */
    bool eof;            /* a read found the end of the stream */
    int last_errno;      /* of the last failed socket call, 0 after an EOF */
    uint64_t bytes_read; /* raw bytes from the client, TLS framing included */
    uint8_t *readahead;
    uint32_t readahead_start, readahead_end;
    uint8_t *out;
    uint32_t out_start, out_end;
    uint8_t tail[TLS_IO_TAIL_LEN]; /* the last bytes read, oldest first */
    uint8_t tail_len;
    uint8_t head[TLS_IO_HEAD_LEN]; /* the first bytes handed to the SSL */
    uint8_t head_len;
    /* What the client offered, from its ClientHello: owned here from the
     * ClientHello until tls_io_forget_hello, so a failed handshake can be
     * explained; an established connection keeps none. */
    struct clienthello_summary *hello;
    /* would_fail says the listener's report-only policy would have failed
     * this client, for would_fail_reason (an enum end_reason); set from the
     * ClientHello by tls_io_record_would_fail. */
    bool would_fail;
    uint8_t would_fail_reason;
    uint16_t server_sigalg; /* the scheme of our handshake signature; 0: none */
    /* The certificate the ClientHello callback chose (tls_ctx.c). Here, not
     * in the SSL's ex_data: BoringSSL leaks an SSL's ex_data when an
     * allocation fails in SSL_free. */
    const struct tls_cert *served_cert;
};

/* tls_io_readable tells |sock| that its socket is readable again (see
 * |drained|). */
static inline void tls_io_readable(struct tls_io_socket *sock) { sock->drained = false; }

/* tls_io_cork makes the SSL's writes gather in |sock|'s out buffer, up to
 * TLS_IO_OUT_MAX bytes, until tls_io_flush: records produced together leave
 * in one send. */
static inline void tls_io_cork(struct tls_io_socket *sock) { sock->corked = true; }

/* tls_io_flush ends a cork and sends what it gathered: TLS_IO_OK once all is
 * sent, TLS_IO_WANT_WRITE when the socket took only part (the rest is sent
 * by the next tls_io_flush; until then the SSL's writes report
 * WANT_WRITE), or TLS_IO_ERROR with |sock->last_errno| set. */
enum tls_io_result tls_io_flush(struct tls_io_socket *sock);

/* tls_io_has_output returns true while |sock| holds records not yet sent. */
static inline bool tls_io_has_output(const struct tls_io_socket *sock)
{
    return sock->out != NULL;
}

/* tls_io_received copies the bytes read from |sock|'s socket so far (what
 * the SSL took, then the read-ahead it has not) into |out|, at most
 * |out_len|, and returns how many. It returns 0 when the SSL took more than
 * TLS_IO_HEAD_LEN bytes: the start is no longer known. For answering plain
 * HTTP after a failed handshake (plain_http.h). */
size_t tls_io_received(const struct tls_io_socket *sock, uint8_t *out, size_t out_len);

/* tls_io_socket_cleanup frees |sock|'s buffers and ClientHello summary; the
 * descriptor stays open (its owner closes it). */
void tls_io_socket_cleanup(struct tls_io_socket *sock);

/* tls_io_attach makes |ssl| read and write |sock|, which must outlive it. It
 * returns 0, or -1 when out of memory. */
int tls_io_attach(SSL *ssl, struct tls_io_socket *sock);

/* tls_io_record_hello keeps a summary of |hello| with the socket of its SSL
 * (which tls_io_attach set up), unless it has one. Call it as the ClientHello
 * arrives, before anything can fail (tls_ctx.c does). Out of memory or a
 * malformed hello leaves no summary, which only makes a failure's log line
 * shorter. */
void tls_io_record_hello(const SSL_CLIENT_HELLO *hello);

/* tls_io_record_would_fail marks the socket of |ssl| (which tls_io_attach
 * set up) as failing the report-only policy for |reason|. Call it from the
 * early ClientHello callback; the first verdict stays. */
void tls_io_record_would_fail(const SSL *ssl, enum end_reason reason);

/* tls_io_record_served_cert notes on the socket of |ssl| the certificate its
 * handshake serves; tls_io_served_cert returns it (NULL: none noted, or no
 * socket of tls_io's). */
void tls_io_record_served_cert(const SSL *ssl, const struct tls_cert *cert);
const struct tls_cert *tls_io_served_cert(const SSL *ssl);

/* tls_io_record_server_sigalg notes on the socket of |ssl| the signature
 * scheme |sigalg| that our handshake signature used. */
void tls_io_record_server_sigalg(const SSL *ssl, uint16_t sigalg);

/* tls_io_forget_hello frees |sock|'s ClientHello summary, if any. */
void tls_io_forget_hello(struct tls_io_socket *sock);

/* tls_io_handshake advances the server handshake on |ssl|. On TLS_IO_EOF and
 * TLS_IO_ERROR it fills |out_failure| with a handshake-failure reason. */
enum tls_io_result tls_io_handshake(SSL *ssl, const struct tls_io_socket *sock,
                                    struct tls_io_failure *out_failure);

/* tls_io_read reads up to |len| plaintext bytes into |buf|; |*out_len| is set
 * on TLS_IO_OK. A TCP EOF without close_notify counts as TLS_IO_EOF: the
 * half-close is passed on to the backend either way. A socket error
 * (ECONNRESET, ETIMEDOUT, EHOSTUNREACH...) is TLS_IO_ERROR, never an EOF: what
 * the client sent may be cut short. */
enum tls_io_result tls_io_read(SSL *ssl, uint8_t *buf, size_t len, size_t *out_len,
                               struct tls_io_failure *out_failure);

/* tls_io_write writes up to |len| bytes from |buf| (partial writes enabled:
 * |*out_len| may be less than |len|). After TLS_IO_WANT_WRITE the caller
 * retries with the same |buf| start and at least the same |len|. */
enum tls_io_result tls_io_write(SSL *ssl, const uint8_t *buf, size_t len, size_t *out_len,
                                struct tls_io_failure *out_failure);

/* tls_io_close_notify sends close_notify without waiting for the peer's.
 * It returns TLS_IO_OK once sealed (corked: once in the out buffer; flush
 * it), TLS_IO_WANT_WRITE to be retried, TLS_IO_WANT_READ while the handshake
 * is still completing after 0-RTT data (BoringSSL cannot send it before the
 * client's Finished; retry once more has been read), or TLS_IO_ERROR with
 * |*out_reason| (unless NULL) END_OUT_OF_MEMORY when an allocation failed,
 * else END_CLIENT_RESET. */
enum tls_io_result tls_io_close_notify(SSL *ssl, enum end_reason *out_reason);

/* enum tls_io_policy_error names the checks of tlsterm's own handshake
 * callbacks (tls_ctx.c). A callback that refuses a client pushes its error to
 * the error queue, under ERR_LIB_USER, before it fails the handshake; being
 * the oldest entry, it is the one tls_io_classify sees, so the reason names
 * the policy rather than BoringSSL's generic error for a failed callback. */
enum tls_io_policy_error {
    TLS_IO_ERR_UNKNOWN_SNI = 1,         /* sni_strict refused the SNI */
    TLS_IO_ERR_NO_APPLICATION_PROTOCOL, /* alpn_required, no protocol in common */
    TLS_IO_ERR_INVALID_SNI,             /* a server_name BoringSSL refuses (malformed) */
};

/* tls_io_push_policy_error pushes |error| to the calling thread's error
 * queue. */
void tls_io_push_policy_error(enum tls_io_policy_error error);

/* tls_io_verify_reason maps the result of verifying a client certificate
 * (an X509_V_ERR_* value, from SSL_get_verify_result) to its reason:
 * END_CLIENT_CERT_EXPIRED (outside its validity period),
 * END_CLIENT_CERT_REVOKED, or END_CLIENT_CERT_UNTRUSTED for anything else.
 * It is pure, for unit tests. */
enum end_reason tls_io_verify_reason(long verify_result);

/* tls_io_classify maps the result of a failed SSL call during the handshake
 * to a reason: |ssl_error| from SSL_get_error, |packed_error| the first entry
 * of the error queue (0 if empty), |sys_errno| the errno after the call, and
 * |tail| (|tail_len| bytes, may be 0) the last bytes read from the client.
 * Every reason is a handshake failure's except END_OUT_OF_MEMORY (an
 * allocation of BoringSSL's or of the socket BIO's failed), which is not the
 * client's. It is pure, for unit tests. */
struct tls_io_failure tls_io_classify(int ssl_error, uint32_t packed_error, int sys_errno,
                                      const uint8_t *tail, size_t tail_len);

#endif
