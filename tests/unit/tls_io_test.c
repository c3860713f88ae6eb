/* tls_io_test: how a failed handshake is explained.
 *
 * tls_io_classify is pure, so most cases build the packed BoringSSL error
 * by hand with ERR_PACK. A few more drive tls_io_handshake on one end of a
 * socketpair with bytes a real client could send (a plaintext alert, an
 * HTTP request, an EOF), which checks that the socket BIO keeps the tail
 * the classification needs. No handshake completes here: that is for the
 * integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "reason.h"
#include "tls_io.h"

/* A plaintext fatal alert record: TLS 1.2 record header, level 2, then the
 * alert number (0x30 = 48 = unknown_ca). */
static const uint8_t alert_unknown_ca[TLS_IO_TAIL_LEN] = {0x15, 0x03, 0x03, 0x00,
                                                          0x02, 0x02, 0x30};

static void check_failure(struct tls_io_failure failure, enum end_reason reason, uint8_t alert,
                          const char *detail)
{
    char got[48], want[48];

    if (failure.reason != reason || failure.alert != alert)
        fail_msg("got %s (alert %u), expected %s (alert %u)",
                 reason_name(failure.reason, failure.alert, got, sizeof(got)), failure.alert,
                 reason_name(reason, alert, want, sizeof(want)), alert);
    if (detail == NULL)
        assert_null(failure.detail);
    else
        assert_string_equal(failure.detail, detail);
}

static struct tls_io_failure classify_ssl(int lib_reason)
{
    return tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_SSL, lib_reason), 0, NULL, 0);
}

/* ---- tls_io_classify --------------------------------------------------- */

static void test_policy_mismatches(void **state)
{
    check_failure(classify_ssl(SSL_R_UNSUPPORTED_PROTOCOL), END_PROTOCOL_VERSION, 0,
                  "UNSUPPORTED_PROTOCOL");
    check_failure(classify_ssl(SSL_R_NO_SHARED_CIPHER), END_NO_SHARED_CIPHER, 0,
                  "NO_SHARED_CIPHER");
    check_failure(classify_ssl(SSL_R_NO_SHARED_GROUP), END_NO_SHARED_GROUP, 0,
                  "NO_SHARED_GROUP");
}

static void test_http_on_tls_port(void **state)
{
    check_failure(classify_ssl(SSL_R_HTTP_REQUEST), END_HTTP_REQUEST_ON_TLS, 0, "HTTP_REQUEST");
    check_failure(classify_ssl(SSL_R_HTTPS_PROXY_REQUEST), END_HTTP_REQUEST_ON_TLS, 0,
                  "HTTPS_PROXY_REQUEST");
}

static void test_malformed(void **state)
{
    static const struct {
        int lib_reason;
        const char *detail;
    } cases[] = {
        {SSL_R_WRONG_VERSION_NUMBER, "WRONG_VERSION_NUMBER"},
        {SSL_R_DECODE_ERROR, "DECODE_ERROR"},
        {SSL_R_RECORD_TOO_LARGE, "RECORD_TOO_LARGE"},
        {SSL_R_UNEXPECTED_RECORD, "UNEXPECTED_RECORD"},
        {SSL_R_CLIENTHELLO_PARSE_FAILED, "CLIENTHELLO_PARSE_FAILED"},
        {SSL_R_BAD_PACKET_LENGTH, "BAD_PACKET_LENGTH"},
        /* Record framing: a length no record can have, floods of empty
         * records or warning alerts, a broken alert, bytes after the hello. */
        {SSL_R_ENCRYPTED_LENGTH_TOO_LONG, "ENCRYPTED_LENGTH_TOO_LONG"},
        {SSL_R_DATA_LENGTH_TOO_LONG, "DATA_LENGTH_TOO_LONG"},
        {SSL_R_TOO_MANY_EMPTY_FRAGMENTS, "TOO_MANY_EMPTY_FRAGMENTS"},
        {SSL_R_TOO_MANY_WARNING_ALERTS, "TOO_MANY_WARNING_ALERTS"},
        {SSL_R_BAD_ALERT, "BAD_ALERT"},
        {SSL_R_EXCESS_HANDSHAKE_DATA, "EXCESS_HANDSHAKE_DATA"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_failure(classify_ssl(cases[i].lib_reason), END_MALFORMED, 0, cases[i].detail);
}

static void test_alert_from_the_client(void **state)
{
    check_failure(classify_ssl(SSL_AD_REASON_OFFSET + 48), END_CLIENT_ALERT, 48,
                  "TLSV1_ALERT_UNKNOWN_CA");
    check_failure(classify_ssl(SSL_AD_REASON_OFFSET + SSL_AD_BAD_CERTIFICATE), END_CLIENT_ALERT,
                  42, "SSLV3_ALERT_BAD_CERTIFICATE");
    check_failure(classify_ssl(SSL_AD_REASON_OFFSET + SSL_AD_PROTOCOL_VERSION),
                  END_CLIENT_ALERT, 70, "TLSV1_ALERT_PROTOCOL_VERSION");
    /* The whole range of alert numbers, named by BoringSSL or not. */
    check_failure(classify_ssl(SSL_AD_REASON_OFFSET), END_CLIENT_ALERT, 0,
                  "SSLV3_ALERT_CLOSE_NOTIFY");
    struct tls_io_failure last = classify_ssl(SSL_AD_REASON_OFFSET + 255);
    assert_int_equal(last.reason, END_CLIENT_ALERT);
    assert_int_equal(last.alert, 255);
    /* One past the range is not an alert. */
    struct tls_io_failure past = classify_ssl(SSL_AD_REASON_OFFSET + 256);
    assert_int_equal(past.reason, END_TLS_ERROR);
    assert_int_equal(past.alert, 0);
}

static void test_socket_ended_it(void **state)
{
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, 0, ECONNRESET, NULL, 0), END_TCP_RESET, 0,
                  "CONNECTION_RESET");
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, 0, 0, NULL, 0), END_CLIENT_CLOSED, 0,
                  "UNEXPECTED_EOF");
    check_failure(tls_io_classify(SSL_ERROR_ZERO_RETURN, 0, 0, NULL, 0), END_CLIENT_CLOSED, 0,
                  "UNEXPECTED_EOF");
    /* The same when BoringSSL queued the errno as an ERR_LIB_SYS error. */
    check_failure(
        tls_io_classify(SSL_ERROR_SYSCALL, ERR_PACK(ERR_LIB_SYS, ECONNRESET), 0, NULL, 0),
        END_TCP_RESET, 0, "CONNECTION_RESET");
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, ERR_PACK(ERR_LIB_SYS, EPIPE), 0, NULL, 0),
                  END_CLIENT_CLOSED, 0, "UNEXPECTED_EOF");
}

static void test_out_of_memory(void **state)
{
    /* The socket BIO could not keep what it read. */
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, 0, ENOMEM, NULL, 0), END_OUT_OF_MEMORY, 0,
                  "ENOMEM");
    /* BoringSSL could not allocate, in any of its libraries. */
    check_failure(tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_SSL, ERR_R_MALLOC_FAILURE), 0,
                                  NULL, 0),
                  END_OUT_OF_MEMORY, 0, "MALLOC_FAILURE");
    check_failure(tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_X509, ERR_R_MALLOC_FAILURE), 0,
                                  NULL, 0),
                  END_OUT_OF_MEMORY, 0, "MALLOC_FAILURE");
}

static void test_bad_record_that_is_a_plaintext_alert(void **state)
{
    check_failure(tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH),
                                  0, alert_unknown_ca, sizeof(alert_unknown_ca)),
                  END_CLIENT_ALERT, 48, "BAD_PACKET_LENGTH");

    /* bad_certificate after a TLS 1.0 record version, and as a bad MAC. */
    static const uint8_t alert_bad_cert[] = {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x2a};
    check_failure(
        tls_io_classify(SSL_ERROR_SSL,
                        ERR_PACK(ERR_LIB_SSL, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC), 0,
                        alert_bad_cert, sizeof(alert_bad_cert)),
        END_CLIENT_ALERT, 42, "DECRYPTION_FAILED_OR_BAD_RECORD_MAC");
}

static void test_bad_record_that_is_not_an_alert(void **state)
{
    static const uint8_t not_alerts[][TLS_IO_TAIL_LEN] = {
        {0x17, 0x03, 0x03, 0x00, 0x02, 0x02, 0x30}, /* application data */
        {0x15, 0x02, 0x03, 0x00, 0x02, 0x02, 0x30}, /* major version 2 */
        {0x15, 0x03, 0x03, 0x01, 0x02, 0x02, 0x30}, /* length 258 */
        {0x15, 0x03, 0x03, 0x00, 0x03, 0x02, 0x30}, /* length 3 */
        {0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x30}, /* warning level */
        {'G', 'E', 'T', ' ', '/', ' ', 'H'},
    };
    uint32_t bad_length = ERR_PACK(ERR_LIB_SSL, SSL_R_BAD_PACKET_LENGTH);

    for (size_t i = 0; i < sizeof(not_alerts) / sizeof(not_alerts[0]); i++)
        check_failure(
            tls_io_classify(SSL_ERROR_SSL, bad_length, 0, not_alerts[i], TLS_IO_TAIL_LEN),
            END_MALFORMED, 0, "BAD_PACKET_LENGTH");
    /* Fewer than a whole record, or nothing read at all. */
    check_failure(tls_io_classify(SSL_ERROR_SSL, bad_length, 0, alert_unknown_ca + 1,
                                  TLS_IO_TAIL_LEN - 1),
                  END_MALFORMED, 0, "BAD_PACKET_LENGTH");
    check_failure(tls_io_classify(SSL_ERROR_SSL, bad_length, 0, NULL, 0), END_MALFORMED, 0,
                  "BAD_PACKET_LENGTH");
    /* A plaintext alert in the tail does not turn other errors into one. */
    check_failure(tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER),
                                  0, alert_unknown_ca, sizeof(alert_unknown_ca)),
                  END_NO_SHARED_CIPHER, 0, "NO_SHARED_CIPHER");
}

static void test_other_errors_are_tls_error(void **state)
{
    /* An SSL reason with no mapping of its own. */
    check_failure(classify_ssl(SSL_R_HANDSHAKE_FAILURE_ON_CLIENT_HELLO), END_TLS_ERROR, 0,
                  "HANDSHAKE_FAILURE_ON_CLIENT_HELLO");
    /* A reason number BoringSSL does not know. */
    check_failure(classify_ssl(4000), END_TLS_ERROR, 0, "unknown error");
    /* Another library: its reason numbers mean something else, even one
     * that would be an alert in ERR_LIB_SSL. */
    check_failure(tls_io_classify(SSL_ERROR_SSL,
                                  ERR_PACK(ERR_LIB_X509, X509_R_CERT_ALREADY_IN_HASH_TABLE), 0,
                                  NULL, 0),
                  END_TLS_ERROR, 0, "CERT_ALREADY_IN_HASH_TABLE");
    assert_int_equal(tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_X509, 1048), 0,
                                     alert_unknown_ca, sizeof(alert_unknown_ca))
                         .reason,
                     END_TLS_ERROR);
    assert_int_equal(
        tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_EVP, SSL_R_HTTP_REQUEST), 0, NULL, 0)
            .reason,
        END_TLS_ERROR);
    /* SSL_ERROR_SSL with an empty queue: nothing more to say. */
    check_failure(tls_io_classify(SSL_ERROR_SSL, 0, ECONNRESET, NULL, 0), END_TLS_ERROR, 0,
                  NULL);
}

static void test_listener_policies(void **state)
{
    /* What tls_ctx's callbacks push before failing a handshake, then the
     * error BoringSSL adds after it, which the classification never sees. */
    ERR_clear_error();
    tls_io_push_policy_error(TLS_IO_ERR_UNKNOWN_SNI);
    ERR_put_error(ERR_LIB_SSL, 0, SSL_R_CLIENTHELLO_TLSEXT, __FILE__, __LINE__);
    check_failure(tls_io_classify(SSL_ERROR_SSL, ERR_peek_error(), 0, NULL, 0),
                  END_UNKNOWN_SNI, 0, "UNRECOGNIZED_NAME");
    ERR_clear_error();
    tls_io_push_policy_error(TLS_IO_ERR_NO_APPLICATION_PROTOCOL);
    ERR_put_error(ERR_LIB_SSL, 0, SSL_R_CONNECTION_REJECTED, __FILE__, __LINE__);
    check_failure(tls_io_classify(SSL_ERROR_SSL, ERR_peek_error(), 0, NULL, 0),
                  END_NO_APPLICATION_PROTOCOL, 0, "NO_APPLICATION_PROTOCOL");
    ERR_clear_error();
    /* An SNI BoringSSL refuses without an error of its own: alone on the
     * queue, it would otherwise read as the client closing. */
    tls_io_push_policy_error(TLS_IO_ERR_INVALID_SNI);
    check_failure(tls_io_classify(SSL_ERROR_SSL, ERR_peek_error(), 0, NULL, 0), END_MALFORMED,
                  0, "INVALID_SNI");
    ERR_clear_error();
    /* BoringSSL's own error for an ALPN callback that refuses. */
    check_failure(classify_ssl(SSL_R_NO_APPLICATION_PROTOCOL), END_NO_APPLICATION_PROTOCOL, 0,
                  "NO_APPLICATION_PROTOCOL");
    /* Another user-library reason is nobody's policy. */
    assert_int_equal(
        tls_io_classify(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_USER, 99), 0, NULL, 0).reason,
        END_TLS_ERROR);
}

static void test_client_certificates(void **state)
{
    check_failure(classify_ssl(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE),
                  END_CLIENT_CERT_MISSING, 0, "PEER_DID_NOT_RETURN_A_CERTIFICATE");
    /* Refined by tls_io_handshake with the verification result. */
    check_failure(classify_ssl(SSL_R_CERTIFICATE_VERIFY_FAILED), END_CLIENT_CERT_UNTRUSTED, 0,
                  "CERTIFICATE_VERIFY_FAILED");
    assert_int_equal(tls_io_verify_reason(X509_V_ERR_CERT_HAS_EXPIRED), END_CLIENT_CERT_EXPIRED);
    assert_int_equal(tls_io_verify_reason(X509_V_ERR_CERT_NOT_YET_VALID),
                     END_CLIENT_CERT_EXPIRED);
    assert_int_equal(tls_io_verify_reason(X509_V_ERR_CERT_REVOKED), END_CLIENT_CERT_REVOKED);
    static const long untrusted[] = {
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
        X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,         X509_V_ERR_CERT_SIGNATURE_FAILURE,
        X509_V_ERR_CERT_CHAIN_TOO_LONG,               X509_V_ERR_UNABLE_TO_GET_CRL,
        X509_V_ERR_CRL_HAS_EXPIRED,                   X509_V_OK,
    };
    for (size_t i = 0; i < sizeof(untrusted) / sizeof(untrusted[0]); i++)
        assert_int_equal(tls_io_verify_reason(untrusted[i]), END_CLIENT_CERT_UNTRUSTED);
}

static void test_every_result_is_a_handshake_failure(void **state)
{
    static const int ssl_errors[] = {SSL_ERROR_SSL, SSL_ERROR_SYSCALL, SSL_ERROR_ZERO_RETURN};
    static const int errnos[] = {0, ECONNRESET, EPIPE};

    for (size_t e = 0; e < sizeof(ssl_errors) / sizeof(ssl_errors[0]); e++) {
        for (int lib_reason = 0; lib_reason < 1400; lib_reason++) {
            for (size_t n = 0; n < sizeof(errnos) / sizeof(errnos[0]); n++) {
                struct tls_io_failure failure =
                    tls_io_classify(ssl_errors[e], ERR_PACK(ERR_LIB_SSL, lib_reason), errnos[n],
                                    alert_unknown_ca, sizeof(alert_unknown_ca));
                if (lib_reason == ERR_R_MALLOC_FAILURE && ssl_errors[e] != SSL_ERROR_ZERO_RETURN) {
                    assert_int_equal(failure.reason, END_OUT_OF_MEMORY);
                    continue;
                }
                if (!reason_is_handshake_failure(failure.reason))
                    fail_msg("ssl error %d, reason %d: not a handshake failure", ssl_errors[e],
                             lib_reason);
                if (failure.reason != END_CLIENT_ALERT)
                    assert_int_equal(failure.alert, 0);
                assert_non_null(failure.detail);
            }
        }
    }
}

/* ---- tls_io_handshake on a socket -------------------------------------- */

struct peer {
    SSL_CTX *ctx;
    SSL *ssl;
    struct tls_io_socket sock;
    int client_fd; /* the test writes here as the client */
};

static int setup_peer(void **state)
{
    struct peer *p = calloc(1, sizeof(*p));
    int fds[2];

    if (p == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0)
        return -1;
    p->ctx = SSL_CTX_new(TLS_method());
    p->ssl = p->ctx ? SSL_new(p->ctx) : NULL;
    if (p->ssl == NULL)
        return -1;
    SSL_set_accept_state(p->ssl);
    p->sock.fd = fds[0];
    p->client_fd = fds[1];
    if (tls_io_attach(p->ssl, &p->sock) != 0)
        return -1;
    *state = p;
    return 0;
}

static int teardown_peer(void **state)
{
    struct peer *p = *state;

    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    tls_io_socket_cleanup(&p->sock);
    close(p->sock.fd);
    if (p->client_fd >= 0)
        close(p->client_fd);
    free(p);
    return 0;
}

/* client_send sends |bytes| as the client and tells the socket it is
 * readable, as the event loop would. */
static void client_send(struct peer *p, const void *bytes, size_t len)
{
    assert_int_equal(send(p->client_fd, bytes, len, 0), (ssize_t)len);
    tls_io_readable(&p->sock);
}

/* check_tail fails unless the socket counted |num_read| bytes of |sent|
 * and kept the last TLS_IO_TAIL_LEN (or fewer) of them. */
static void check_tail(const struct peer *p, const uint8_t *sent, size_t num_read)
{
    size_t tail_len = num_read < TLS_IO_TAIL_LEN ? num_read : TLS_IO_TAIL_LEN;

    assert_int_equal(p->sock.bytes_read, num_read);
    assert_int_equal(p->sock.tail_len, tail_len);
    assert_memory_equal(p->sock.tail, sent + num_read - tail_len, tail_len);
}

static void test_handshake_waits_for_bytes(void **state)
{
    struct peer *p = *state;
    struct tls_io_failure failure = {.reason = END_DONE};

    assert_int_equal(tls_io_handshake(p->ssl, &p->sock, &failure), TLS_IO_WANT_READ);
    assert_int_equal(failure.reason, END_DONE); /* untouched */
    assert_int_equal(p->sock.bytes_read, 0);
    assert_int_equal(p->sock.tail_len, 0);
}

static void test_handshake_plaintext_alert_in_pieces(void **state)
{
    struct peer *p = *state;
    struct tls_io_failure failure;
    /* The alert arrives in three reads, as a slow client could send it. */
    static const size_t cuts[] = {2, 5, TLS_IO_TAIL_LEN};
    size_t sent = 0;

    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        client_send(p, alert_unknown_ca + sent, cuts[i] - sent);
        sent = cuts[i];
        enum tls_io_result result = tls_io_handshake(p->ssl, &p->sock, &failure);
        check_tail(p, alert_unknown_ca, sent);
        if (sent < TLS_IO_TAIL_LEN) {
            assert_int_equal(result, TLS_IO_WANT_READ);
        } else {
            assert_int_equal(result, TLS_IO_ERROR);
        }
    }
    check_failure(failure, END_CLIENT_ALERT, 48, "TLSV1_ALERT_UNKNOWN_CA");
    /* The error queue is left empty for the next SSL call. */
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_handshake_http_request(void **state)
{
    struct peer *p = *state;
    struct tls_io_failure failure;
    static const char request[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

    client_send(p, request, strlen(request));
    assert_int_equal(tls_io_handshake(p->ssl, &p->sock, &failure), TLS_IO_ERROR);
    check_failure(failure, END_HTTP_REQUEST_ON_TLS, 0, "HTTP_REQUEST");
    assert_true(p->sock.bytes_read > 0 && p->sock.bytes_read <= strlen(request));
    check_tail(p, (const uint8_t *)request, (size_t)p->sock.bytes_read);
    /* The request can be read back, to answer it (plain_http.c): what the
     * SSL took is in the kept head, the rest in the read-ahead. */
    uint8_t received[128];
    size_t len = tls_io_received(&p->sock, received, sizeof(received));
    assert_int_equal(len, (size_t)p->sock.bytes_read);
    assert_memory_equal(received, request, len);
    /* A short buffer gets the start. */
    assert_int_equal(tls_io_received(&p->sock, received, 3), 3);
    assert_memory_equal(received, "GET", 3);
}

static void test_handshake_eof(void **state)
{
    struct peer *p = *state;
    struct tls_io_failure failure;
    /* Half a ClientHello record header, then the client goes away. */
    static const uint8_t partial[] = {0x16, 0x03, 0x01};

    client_send(p, partial, sizeof(partial));
    assert_int_equal(tls_io_handshake(p->ssl, &p->sock, &failure), TLS_IO_WANT_READ);
    close(p->client_fd);
    p->client_fd = -1;
    tls_io_readable(&p->sock);
    assert_int_equal(tls_io_handshake(p->ssl, &p->sock, &failure), TLS_IO_EOF);
    check_failure(failure, END_CLIENT_CLOSED, 0, "UNEXPECTED_EOF");
    check_tail(p, partial, sizeof(partial));
}

static void test_handshake_garbage(void **state)
{
    struct peer *p = *state;
    struct tls_io_failure failure;
    /* A handshake record with an impossible version and then noise. */
    static const uint8_t garbage[] = {0x16, 0x7f, 0x7f, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8};

    client_send(p, garbage, sizeof(garbage));
    assert_int_equal(tls_io_handshake(p->ssl, &p->sock, &failure), TLS_IO_ERROR);
    assert_int_equal(failure.reason, END_MALFORMED);
    assert_non_null(failure.detail);
    check_tail(p, garbage, (size_t)p->sock.bytes_read);
}

/* ---- the socket BIO ------------------------------------------------------ */

static void test_socket_errors_are_not_eof(void **state)
{
    /* A clean EOF (errno 0) is a close; every socket error is an error that
     * names its errno, so a cut-short upload is never passed on as whole. */
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, 0, 0, NULL, 0), END_CLIENT_CLOSED, 0,
                  "UNEXPECTED_EOF");
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, 0, ECONNRESET, NULL, 0), END_TCP_RESET, 0,
                  "CONNECTION_RESET");
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, 0, ETIMEDOUT, NULL, 0), END_TCP_RESET, 0,
                  "ETIMEDOUT");
    check_failure(tls_io_classify(SSL_ERROR_SYSCALL, 0, EHOSTUNREACH, NULL, 0), END_TCP_RESET, 0,
                  "EHOSTUNREACH");
}

static void test_read_ahead_serves_later_reads(void **state)
{
    struct peer *p = *state;
    BIO *bio = SSL_get_rbio(p->ssl);
    uint8_t sent[100], got[100];

    for (size_t i = 0; i < sizeof(sent); i++)
        sent[i] = (uint8_t)i;
    client_send(p, sent, sizeof(sent));
    /* A record header is asked for; the rest is kept, and the socket is
     * known to be empty. */
    assert_int_equal(BIO_read(bio, got, 5), 5);
    assert_non_null(p->sock.readahead);
    assert_true(p->sock.drained);
    assert_int_equal(p->sock.bytes_read, sizeof(sent));
    /* More bytes arrive, but until the event loop says the socket is
     * readable no recv is made: the kept bytes come first. */
    assert_int_equal(send(p->client_fd, sent, 10, 0), 10);
    assert_int_equal(BIO_read(bio, got + 5, 95), 95);
    assert_memory_equal(got, sent, sizeof(sent));
    assert_null(p->sock.readahead); /* held only while it holds bytes */
    assert_int_equal(BIO_read(bio, got, 10), -1);
    assert_true(BIO_should_retry(bio));
    tls_io_readable(&p->sock);
    assert_int_equal(BIO_read(bio, got, 10), 10);
    assert_int_equal(p->sock.bytes_read, sizeof(sent) + 10);
    assert_memory_equal(p->sock.tail, sent + 10 - TLS_IO_TAIL_LEN, TLS_IO_TAIL_LEN);
}

static void test_cork_gathers_writes_into_one_send(void **state)
{
    struct peer *p = *state;
    BIO *bio = SSL_get_wbio(p->ssl);
    uint8_t got[64];

    tls_io_cork(&p->sock);
    assert_int_equal(BIO_write(bio, "first,", 6), 6);
    assert_int_equal(BIO_write(bio, "second", 6), 6);
    assert_true(tls_io_has_output(&p->sock));
    assert_int_equal(recv(p->client_fd, got, sizeof(got), MSG_DONTWAIT), -1);
    assert_int_equal(tls_io_flush(&p->sock), TLS_IO_OK);
    assert_false(tls_io_has_output(&p->sock));
    assert_int_equal(recv(p->client_fd, got, sizeof(got), 0), 12);
    assert_memory_equal(got, "first,second", 12);
    /* Uncorked, a write goes straight out. */
    assert_int_equal(BIO_write(bio, "third", 5), 5);
    assert_int_equal(recv(p->client_fd, got, sizeof(got), 0), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_mismatches),
        cmocka_unit_test(test_http_on_tls_port),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_alert_from_the_client),
        cmocka_unit_test(test_socket_ended_it),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_bad_record_that_is_a_plaintext_alert),
        cmocka_unit_test(test_bad_record_that_is_not_an_alert),
        cmocka_unit_test(test_other_errors_are_tls_error),
        cmocka_unit_test(test_listener_policies),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_every_result_is_a_handshake_failure),
        cmocka_unit_test_setup_teardown(test_handshake_waits_for_bytes, setup_peer,
                                        teardown_peer),
        cmocka_unit_test_setup_teardown(test_handshake_plaintext_alert_in_pieces, setup_peer,
                                        teardown_peer),
        cmocka_unit_test_setup_teardown(test_handshake_http_request, setup_peer, teardown_peer),
        cmocka_unit_test_setup_teardown(test_handshake_eof, setup_peer, teardown_peer),
        cmocka_unit_test(test_socket_errors_are_not_eof),
        cmocka_unit_test_setup_teardown(test_read_ahead_serves_later_reads, setup_peer,
                                        teardown_peer),
        cmocka_unit_test_setup_teardown(test_cork_gathers_writes_into_one_send, setup_peer,
                                        teardown_peer),
        cmocka_unit_test_setup_teardown(test_handshake_garbage, setup_peer, teardown_peer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
