/* tls_io: BoringSSL on the socket. See tls_io.h. */
#include "tls_io.h"

#include "clienthello.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* plaintext_alert returns true and the alert's number if |tail| ends with a
 * whole plaintext fatal alert record. */
static bool plaintext_alert(const uint8_t *tail, size_t tail_len, uint8_t *out_alert)
{
    if (tail_len < TLS_IO_TAIL_LEN || tail[0] != SSL3_RT_ALERT || tail[1] != 3 ||
        tail[3] != 0 || tail[4] != 2 || tail[5] != SSL3_AL_FATAL)
        return false;
    *out_alert = tail[6];
    return true;
}

struct tls_io_failure tls_io_classify(int ssl_error, uint32_t packed_error, int sys_errno,
                                      const uint8_t *tail, size_t tail_len)
{
    struct tls_io_failure failure = {.reason = END_TLS_ERROR};

    if (ssl_error == SSL_ERROR_ZERO_RETURN ||
        (ssl_error == SSL_ERROR_SYSCALL && packed_error == 0 && sys_errno == 0)) {
        /* The socket, not TLS, ended it: there is no BoringSSL reason, so
         * the detail names the socket event in the same style. */
        failure.reason = END_CLIENT_CLOSED;
        failure.detail = "UNEXPECTED_EOF";
        return failure;
    }
    if ((ssl_error == SSL_ERROR_SYSCALL && packed_error == 0 && sys_errno == ENOMEM) ||
        (packed_error != 0 && ERR_GET_REASON(packed_error) == ERR_R_MALLOC_FAILURE)) {
        /* tlsterm's socket BIO (ENOMEM) or BoringSSL itself could not
         * allocate: not the client's doing. */
        failure.reason = END_OUT_OF_MEMORY;
        failure.detail = sys_errno == ENOMEM && packed_error == 0 ? "ENOMEM" : "MALLOC_FAILURE";
        return failure;
    }
    if (ssl_error == SSL_ERROR_SYSCALL && packed_error == 0) {
        /* A socket error is never an EOF: whatever the client was sending
         * may be cut short. The detail names the errno. */
        failure.reason = END_TCP_RESET;
        failure.detail =
            sys_errno == ECONNRESET ? "CONNECTION_RESET" : strerrorname_np(sys_errno);
        if (failure.detail == NULL)
            failure.detail = "SOCKET_ERROR";
        return failure;
    }
    if (packed_error == 0)
        return failure;

    failure.detail = ERR_reason_error_string(packed_error);
    if (ERR_GET_LIB(packed_error) == ERR_LIB_SYS) {
        bool reset = ERR_GET_REASON(packed_error) == ECONNRESET;
        failure.reason = reset ? END_TCP_RESET : END_CLIENT_CLOSED;
        failure.detail = reset ? "CONNECTION_RESET" : "UNEXPECTED_EOF";
        return failure;
    }
    if (ERR_GET_LIB(packed_error) == ERR_LIB_USER) {
        switch (ERR_GET_REASON(packed_error)) {
        case TLS_IO_ERR_UNKNOWN_SNI:
            failure.reason = END_UNKNOWN_SNI;
            failure.detail = "UNRECOGNIZED_NAME";
            break;
        case TLS_IO_ERR_NO_APPLICATION_PROTOCOL:
            failure.reason = END_NO_APPLICATION_PROTOCOL;
            failure.detail = "NO_APPLICATION_PROTOCOL";
            break;
        case TLS_IO_ERR_INVALID_SNI:
            failure.reason = END_MALFORMED;
            failure.detail = "INVALID_SNI";
            break;
        default:
            break;
        }
        return failure;
    }
    if (ERR_GET_LIB(packed_error) != ERR_LIB_SSL)
        return failure;

    int lib_reason = ERR_GET_REASON(packed_error);
    /* BoringSSL reports an alert from the peer as SSL_AD_REASON_OFFSET plus
     * the alert number. */
    if (lib_reason >= SSL_AD_REASON_OFFSET && lib_reason < SSL_AD_REASON_OFFSET + 256) {
        failure.reason = END_CLIENT_ALERT;
        failure.alert = (uint8_t)(lib_reason - SSL_AD_REASON_OFFSET);
        return failure;
    }
    switch (lib_reason) {
    case SSL_R_BAD_PACKET_LENGTH:
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
        /* Once BoringSSL expects encrypted records, a client that gives up
         * in plaintext (OpenSSL does, on a certificate it rejects in TLS
         * 1.3) looks like a bad record. */
        if (plaintext_alert(tail, tail_len, &failure.alert))
            failure.reason = END_CLIENT_ALERT;
        else
            failure.reason = END_MALFORMED;
        break;
    case SSL_R_UNSUPPORTED_PROTOCOL:
        failure.reason = END_PROTOCOL_VERSION;
        break;
    case SSL_R_NO_SHARED_CIPHER:
        failure.reason = END_NO_SHARED_CIPHER;
        break;
    case SSL_R_NO_SHARED_GROUP:
        failure.reason = END_NO_SHARED_GROUP;
        break;
    case SSL_R_NO_APPLICATION_PROTOCOL:
        failure.reason = END_NO_APPLICATION_PROTOCOL;
        break;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        failure.reason = END_CLIENT_CERT_MISSING;
        break;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        /* Only client certificates are verified here; tls_io_handshake
         * refines this with the verification result. */
        failure.reason = END_CLIENT_CERT_UNTRUSTED;
        break;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        failure.reason = END_HTTP_REQUEST_ON_TLS;
        break;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_DECODE_ERROR:
    case SSL_R_PARSE_TLSEXT:
    case SSL_R_RECORD_TOO_LARGE:
    case SSL_R_EXCESSIVE_MESSAGE_SIZE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_BAD_LENGTH:
    case SSL_R_DUPLICATE_EXTENSION:
    case SSL_R_UNEXPECTED_EXTENSION:
    case SSL_R_ERROR_PARSING_EXTENSION:
    case SSL_R_CLIENTHELLO_PARSE_FAILED:
    case SSL_R_INVALID_COMPRESSION_LIST:
    case SSL_R_BAD_HANDSHAKE_RECORD:
    case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
    case SSL_R_DATA_LENGTH_TOO_LONG:
    case SSL_R_TOO_MANY_EMPTY_FRAGMENTS:
    case SSL_R_TOO_MANY_WARNING_ALERTS:
    case SSL_R_EXCESS_HANDSHAKE_DATA:
    case SSL_R_BAD_ALERT:
        failure.reason = END_MALFORMED;
        break;
    default:
        break;
    }
    return failure;
}

void tls_io_push_policy_error(enum tls_io_policy_error error)
{
    ERR_put_error(ERR_LIB_USER, 0, (int)error, __FILE__, __LINE__);
}

enum end_reason tls_io_verify_reason(long verify_result)
{
    switch (verify_result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return END_CLIENT_CERT_EXPIRED;
    case X509_V_ERR_CERT_REVOKED:
        return END_CLIENT_CERT_REVOKED;
    default:
        return END_CLIENT_CERT_UNTRUSTED;
    }
}

/* ---- the socket BIO ---------------------------------------------------- */

/* remember_tail keeps the last TLS_IO_TAIL_LEN bytes of the stream. */
static void remember_tail(struct tls_io_socket *sock, const uint8_t *bytes, size_t len)
{
    if (len >= TLS_IO_TAIL_LEN) {
        memcpy(sock->tail, bytes + len - TLS_IO_TAIL_LEN, TLS_IO_TAIL_LEN);
        sock->tail_len = TLS_IO_TAIL_LEN;
        return;
    }
    size_t keep =
        sock->tail_len + len > TLS_IO_TAIL_LEN ? TLS_IO_TAIL_LEN - len : sock->tail_len;
    memmove(sock->tail, sock->tail + sock->tail_len - keep, keep);
    memcpy(sock->tail + keep, bytes, len);
    sock->tail_len = (uint8_t)(keep + len);
}

/* remember_head keeps the first TLS_IO_HEAD_LEN bytes handed to the SSL. */
static void remember_head(struct tls_io_socket *sock, const char *bytes, size_t len)
{
    size_t room = TLS_IO_HEAD_LEN - sock->head_len;
    size_t n = len < room ? len : room;

    if (n == 0)
        return;
    memcpy(sock->head + sock->head_len, bytes, n);
    sock->head_len = (uint8_t)(sock->head_len + n);
}

/* take_readahead gives the SSL up to |len| bytes of what an earlier read
 * took beyond its request, dropping the buffer once empty. */
static int take_readahead(struct tls_io_socket *sock, char *out, int len)
{
    uint32_t n = sock->readahead_end - sock->readahead_start;
    if ((uint32_t)len < n)
        n = (uint32_t)len;
    memcpy(out, sock->readahead + sock->readahead_start, n);
    remember_head(sock, out, n);
    sock->readahead_start += n;
    if (sock->readahead_start == sock->readahead_end) {
        free(sock->readahead);
        sock->readahead = NULL;
    }
    return (int)n;
}

/* keep_readahead saves the |len| bytes a read took beyond the SSL's request.
 * They are copied out of the thread's scratch buffer into one of their own
 * size, which lives only until the SSL has asked for them. */
static int keep_readahead(struct tls_io_socket *sock, const uint8_t *bytes, size_t len)
{
    sock->readahead = malloc(len);
    if (sock->readahead == NULL)
        return -1;
    memcpy(sock->readahead, bytes, len);
    sock->readahead_start = 0;
    sock->readahead_end = (uint32_t)len;
    return 0;
}

/* The surplus of every read lands here first, so that a read that finds
 * nothing costs no allocation. One per worker thread. */
static _Thread_local uint8_t readahead_scratch[TLS_IO_READAHEAD_LEN];

static int socket_bio_read(BIO *bio, char *out, int len)
{
    struct tls_io_socket *sock = BIO_get_data(bio);
    ssize_t n;

    BIO_clear_retry_flags(bio);
    if (sock->readahead != NULL)
        return take_readahead(sock, out, len);
    if (sock->drained) {
        errno = EAGAIN;
        BIO_set_retry_read(bio);
        return -1;
    }
    struct iovec iov[2] = {{out, (size_t)len}, {readahead_scratch, sizeof(readahead_scratch)}};
    do
        n = readv(sock->fd, iov, 2);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        sock->last_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            sock->drained = true;
            BIO_set_retry_read(bio);
        }
        return -1;
    }
    if (n == 0) {
        sock->eof = true;
        sock->last_errno = 0;
        errno = 0; /* a clean EOF, not an error: see tls_io_classify */
        return 0;
    }
    sock->bytes_read += (uint64_t)n;
    /* A read that did not fill both buffers emptied the socket. */
    sock->drained = (size_t)n < (size_t)len + sizeof(readahead_scratch);
    remember_head(sock, out, n <= len ? (size_t)n : (size_t)len);
    if (n <= len) {
        remember_tail(sock, (const uint8_t *)out, (size_t)n);
        return (int)n;
    }
    size_t surplus = (size_t)n - (size_t)len;
    remember_tail(sock, (const uint8_t *)out, (size_t)len);
    remember_tail(sock, readahead_scratch, surplus);
    if (keep_readahead(sock, readahead_scratch, surplus) != 0) {
        /* Bytes the SSL would need are gone: fail the connection. */
        sock->last_errno = errno = ENOMEM;
        return -1;
    }
    return len;
}

/* Records gathered while corked go to this buffer first, so that a cork
 * whose records the socket takes at once (nearly all) costs no allocation.
 * One socket of the thread at a time uses it (|out_scratch_user|); another
 * corked meanwhile gets a buffer of its own. Bytes still in it when the
 * cork ends move to a buffer of the socket's own (keep_out). */
static _Thread_local uint8_t out_scratch[TLS_IO_OUT_MAX];
static _Thread_local const struct tls_io_socket *out_scratch_user;

/* drop_out frees the out buffer, or gives the scratch back. */
static void drop_out(struct tls_io_socket *sock)
{
    if (sock->out == out_scratch)
        out_scratch_user = NULL;
    else
        free(sock->out);
    sock->out = NULL;
}

/* keep_out moves what the scratch buffer holds for |sock| to a buffer of
 * its own; 0, or -1 when out of memory. */
static int keep_out(struct tls_io_socket *sock)
{
    if (sock->out != out_scratch)
        return 0;
    uint8_t *out = malloc(TLS_IO_OUT_MAX);
    if (out == NULL)
        return -1;
    sock->out_end -= sock->out_start;
    memcpy(out, out_scratch + sock->out_start, sock->out_end);
    sock->out_start = 0;
    sock->out = out;
    out_scratch_user = NULL;
    return 0;
}

/* send_out sends what the out buffer holds; 0 once empty (and freed), -1
 * with errno otherwise (EAGAIN: the socket is full). */
static int send_out(struct tls_io_socket *sock)
{
    while (sock->out_start < sock->out_end) {
        ssize_t n = send(sock->fd, sock->out + sock->out_start, sock->out_end - sock->out_start,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sock->last_errno = errno;
            return -1;
        }
        sock->out_start += (uint32_t)n;
    }
    drop_out(sock);
    return 0;
}

/* gather appends |len| bytes to the out buffer, which has room for them. */
static int gather(struct tls_io_socket *sock, const char *in, int len)
{
    if (sock->out == NULL) {
        if (out_scratch_user == NULL) {
            sock->out = out_scratch;
            out_scratch_user = sock;
        } else if ((sock->out = malloc(TLS_IO_OUT_MAX)) == NULL) {
            return -1;
        }
        sock->out_start = sock->out_end = 0;
    } else if (sock->out_start > 0) {
        memmove(sock->out, sock->out + sock->out_start, sock->out_end - sock->out_start);
        sock->out_end -= sock->out_start;
        sock->out_start = 0;
    }
    memcpy(sock->out + sock->out_end, in, (size_t)len);
    sock->out_end += (uint32_t)len;
    return len;
}

static int socket_bio_write(BIO *bio, const char *in, int len)
{
    struct tls_io_socket *sock = BIO_get_data(bio);
    ssize_t n;

    BIO_clear_retry_flags(bio);
    /* Bytes gathered earlier go first; then a corked write joins them while
     * they fit, so records produced together leave in one send. */
    if (sock->out != NULL &&
        (!sock->corked || sock->out_end - sock->out_start + (size_t)len > TLS_IO_OUT_MAX) &&
        send_out(sock) != 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(bio);
        return -1;
    }
    if (sock->corked && (size_t)len <= TLS_IO_OUT_MAX)
        return gather(sock, in, len);
    /* MSG_NOSIGNAL: a client gone away is an error to handle, not SIGPIPE. */
    do
        n = send(sock->fd, in, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        sock->last_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(bio);
    }
    return (int)n;
}

enum tls_io_result tls_io_flush(struct tls_io_socket *sock)
{
    sock->corked = false;
    if (sock->out == NULL || send_out(sock) == 0)
        return TLS_IO_OK;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        return TLS_IO_ERROR;
    if (keep_out(sock) != 0) {
        sock->last_errno = ENOMEM;
        return TLS_IO_ERROR;
    }
    return TLS_IO_WANT_WRITE;
}

size_t tls_io_received(const struct tls_io_socket *sock, uint8_t *out, size_t out_len)
{
    size_t kept = sock->readahead != NULL ? sock->readahead_end - sock->readahead_start : 0;
    size_t taken = (size_t)sock->bytes_read - kept;

    if (taken > sock->head_len)
        return 0;
    size_t n = taken < out_len ? taken : out_len;
    memcpy(out, sock->head, n);
    if (kept > out_len - n)
        kept = out_len - n;
    if (kept > 0)
        memcpy(out + n, sock->readahead + sock->readahead_start, kept);
    return n + kept;
}

void tls_io_socket_cleanup(struct tls_io_socket *sock)
{
    free(sock->readahead);
    sock->readahead = NULL;
    drop_out(sock);
    tls_io_forget_hello(sock);
}

static long socket_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    /* BoringSSL flushes after each handshake flight. Corked records are
     * sent by tls_io_flush, at the end of the event loop's turn, and never
     * from here: success tells BoringSSL the flight is on its way. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *socket_bio_method;
static pthread_once_t socket_bio_once = PTHREAD_ONCE_INIT;

static void socket_bio_method_init(void)
{
    BIO_METHOD *method = BIO_meth_new(BIO_TYPE_SOCKET, "tlsterm socket");
    if (method == NULL || !BIO_meth_set_read(method, socket_bio_read) ||
        !BIO_meth_set_write(method, socket_bio_write) ||
        !BIO_meth_set_ctrl(method, socket_bio_ctrl)) {
        BIO_meth_free(method);
        return;
    }
    socket_bio_method = method;
}

int tls_io_attach(SSL *ssl, struct tls_io_socket *sock)
{
    pthread_once(&socket_bio_once, socket_bio_method_init);
    if (socket_bio_method == NULL)
        return -1;
    BIO *bio = BIO_new(socket_bio_method);
    if (bio == NULL)
        return -1;
    BIO_set_data(bio, sock);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio); /* the SSL owns the BIO now */
    return 0;
}

void tls_io_record_hello(const SSL_CLIENT_HELLO *hello)
{
    BIO *bio = SSL_get_rbio(hello->ssl);
    struct tls_io_socket *sock = bio != NULL ? BIO_get_data(bio) : NULL;

    /* A HelloRetryRequest brings a second ClientHello: the first one says
     * what the client offered. */
    if (sock == NULL || sock->hello != NULL)
        return;
    sock->hello = malloc(sizeof(*sock->hello));
    if (sock->hello != NULL && clienthello_summarize_early(hello, sock->hello) != 0)
        tls_io_forget_hello(sock);
}

void tls_io_record_server_sigalg(const SSL *ssl, uint16_t sigalg)
{
    BIO *bio = SSL_get_rbio(ssl);
    struct tls_io_socket *sock = bio != NULL ? BIO_get_data(bio) : NULL;

    if (sock != NULL)
        sock->server_sigalg = sigalg;
}

void tls_io_record_would_fail(const SSL *ssl, enum end_reason reason)
{
    BIO *bio = SSL_get_rbio(ssl);
    struct tls_io_socket *sock = bio != NULL ? BIO_get_data(bio) : NULL;

    if (sock == NULL || sock->would_fail)
        return;
    sock->would_fail = true;
    sock->would_fail_reason = (uint8_t)reason;
}

void tls_io_record_served_cert(const SSL *ssl, const struct tls_cert *cert)
{
    BIO *bio = SSL_get_rbio(ssl);
    struct tls_io_socket *sock = bio != NULL ? BIO_get_data(bio) : NULL;

    if (sock != NULL)
        sock->served_cert = cert;
}

const struct tls_cert *tls_io_served_cert(const SSL *ssl)
{
    BIO *bio = SSL_get_rbio(ssl);
    const struct tls_io_socket *sock = bio != NULL ? BIO_get_data(bio) : NULL;

    return sock != NULL ? sock->served_cert : NULL;
}

void tls_io_forget_hello(struct tls_io_socket *sock)
{
    free(sock->hello);
    sock->hello = NULL;
}

/* ---- SSL calls ------------------------------------------------------------- */

/* fail_from captures the failure of the SSL call that returned |ret|;
 * |sock| is NULL after the handshake. */
static enum tls_io_result fail_from(SSL *ssl, int ret, const struct tls_io_socket *sock,
                                    struct tls_io_failure *out_failure)
{
    int saved_errno = errno;
    int ssl_error = SSL_get_error(ssl, ret);

    switch (ssl_error) {
    case SSL_ERROR_WANT_READ:
        return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_IO_WANT_WRITE;
    default:
        break;
    }
    uint32_t packed_error = ERR_peek_error();
    *out_failure = tls_io_classify(ssl_error, packed_error, saved_errno,
                                   sock ? sock->tail : NULL, sock ? sock->tail_len : 0);
    ERR_clear_error();
    /* No EOF, no socket error and nothing queued: BoringSSL failed inside
     * without saying why (some of its allocation failures do). */
    if (sock != NULL && ssl_error == SSL_ERROR_SYSCALL && packed_error == 0 && saved_errno == 0 &&
        !sock->eof) {
        out_failure->reason = END_TLS_ERROR;
        out_failure->detail = "INTERNAL_ERROR";
    }
    if (out_failure->reason == END_CLIENT_CLOSED)
        return TLS_IO_EOF;
    return TLS_IO_ERROR;
}

enum tls_io_result tls_io_handshake(SSL *ssl, const struct tls_io_socket *sock,
                                    struct tls_io_failure *out_failure)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_do_handshake(ssl);
    if (ret == 1)
        return TLS_IO_OK;
    enum tls_io_result result = fail_from(ssl, ret, sock, out_failure);
    if (result == TLS_IO_ERROR && out_failure->reason == END_CLIENT_CERT_UNTRUSTED)
        out_failure->reason = tls_io_verify_reason(SSL_get_verify_result(ssl));
    return result;
}

/* after_handshake turns a handshake-failure reason into the matching reason
 * for an established connection. */
static void after_handshake(struct tls_io_failure *failure)
{
    if (failure->reason == END_OUT_OF_MEMORY)
        return;
    failure->reason =
        failure->reason == END_TCP_RESET ? END_CLIENT_RESET : END_CLIENT_TLS_ERROR;
}

enum tls_io_result tls_io_read(SSL *ssl, uint8_t *buf, size_t len, size_t *out_len,
                               struct tls_io_failure *out_failure)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (ret > 0) {
        *out_len = (size_t)ret;
        return TLS_IO_OK;
    }
    enum tls_io_result result = fail_from(ssl, ret, NULL, out_failure);
    /* After 0-RTT data the handshake may still fail: until the client's
     * Finished, a failure is a handshake failure. */
    if (result == TLS_IO_ERROR && !SSL_in_init(ssl))
        after_handshake(out_failure);
    return result;
}

enum tls_io_result tls_io_write(SSL *ssl, const uint8_t *buf, size_t len, size_t *out_len,
                                struct tls_io_failure *out_failure)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (ret > 0) {
        *out_len = (size_t)ret;
        return TLS_IO_OK;
    }
    enum tls_io_result result = fail_from(ssl, ret, NULL, out_failure);
    /* EOF while writing means the client is gone, not a half-close. */
    if (result == TLS_IO_EOF) {
        out_failure->reason = END_TCP_RESET;
        result = TLS_IO_ERROR;
    }
    if (result == TLS_IO_ERROR)
        after_handshake(out_failure);
    return result;
}

enum tls_io_result tls_io_close_notify(SSL *ssl, enum end_reason *out_reason)
{
    /* While a 0-RTT handshake is still waiting for the client's Finished,
     * SSL_shutdown returns success and sends nothing. */
    if (SSL_in_init(ssl))
        return TLS_IO_WANT_READ;
    ERR_clear_error();
    errno = 0;
    int ret = SSL_shutdown(ssl);
    if (ret >= 0)
        return TLS_IO_OK; /* 0: sent, the peer's close_notify not awaited */
    int saved_errno = errno;
    int ssl_error = SSL_get_error(ssl, ret);
    uint32_t packed_error = ERR_peek_error();
    ERR_clear_error();
    if (ssl_error == SSL_ERROR_WANT_WRITE)
        return TLS_IO_WANT_WRITE;
    if (out_reason != NULL)
        *out_reason = saved_errno == ENOMEM || ERR_GET_REASON(packed_error) == ERR_R_MALLOC_FAILURE
                          ? END_OUT_OF_MEMORY
                          : END_CLIENT_RESET;
    return TLS_IO_ERROR;
}
