/* transport: TLS on the client socket. See transport.h. */
#include "transport.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls_ctx.h"
#include "watch.h"

int transport_init(struct transport *t, int fd, struct tls_ctx *tls)
{
    t->sock.fd = fd;
    if (tls == NULL)
        return 0;
    t->ssl = tls_ctx_new_ssl(tls, &t->sock);
    return t->ssl != NULL ? 0 : -1;
}

void transport_cleanup(struct transport *t, bool abort)
{
    if (t->armed)
        event_del(&t->ev);
    t->armed = 0;
    SSL_free(t->ssl);
    t->ssl = NULL;
    tls_io_socket_cleanup(&t->sock);
    if (abort) {
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        setsockopt(t->sock.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    }
    close(t->sock.fd);
}

/* wait_for maps a blocked result to what it waits for. */
static uint8_t wait_for(enum tls_io_result result)
{
    return result == TLS_IO_WANT_READ    ? TRANSPORT_WAIT_READ
           : result == TLS_IO_WANT_WRITE ? TRANSPORT_WAIT_WRITE
                                         : TRANSPORT_WAIT_NONE;
}

enum tls_io_result transport_handshake(struct transport *t, struct tls_io_failure *out_failure)
{
    enum tls_io_result result = tls_io_handshake(t->ssl, &t->sock, out_failure);
    t->read_wait = wait_for(result);
    return result;
}

/* socket_failure describes the socket error |err| of an established plain
 * connection. */
static enum tls_io_result socket_failure(int err, struct tls_io_failure *out_failure)
{
    const char *name = err == ECONNRESET ? "CONNECTION_RESET" : strerrorname_np(err);
    *out_failure = (struct tls_io_failure){.reason = END_CLIENT_RESET,
                                           .detail = name != NULL ? name : "SOCKET_ERROR"};
    return TLS_IO_ERROR;
}

/* plain_read and plain_write are transport_read and transport_write without
 * TLS. A read that does not fill |buf| emptied the socket (|drained|). */
static enum tls_io_result plain_read(struct transport *t, uint8_t *buf, size_t len,
                                     size_t *out_len, struct tls_io_failure *out_failure)
{
    ssize_t n;

    if (t->sock.drained)
        return TLS_IO_WANT_READ;
    do
        n = recv(t->sock.fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        *out_len = (size_t)n;
        t->sock.bytes_read += (uint64_t)n;
        t->sock.drained = (size_t)n < len;
        return TLS_IO_OK;
    }
    if (n == 0)
        return TLS_IO_EOF;
    t->sock.last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->sock.drained = true;
        return TLS_IO_WANT_READ;
    }
    return socket_failure(errno, out_failure);
}

static enum tls_io_result plain_write(struct transport *t, const uint8_t *buf, size_t len,
                                      size_t *out_len, struct tls_io_failure *out_failure)
{
    ssize_t n;

    do
        n = send(t->sock.fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        *out_len = (size_t)n;
        return TLS_IO_OK;
    }
    t->sock.last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return TLS_IO_WANT_WRITE;
    return socket_failure(errno, out_failure);
}

enum tls_io_result transport_read(struct transport *t, uint8_t *buf, size_t len,
                                  size_t *out_len, struct tls_io_failure *out_failure)
{
    if (t->ssl == NULL) {
        enum tls_io_result plain = plain_read(t, buf, len, out_len, out_failure);
        t->read_wait = wait_for(plain);
        return plain;
    }
    enum tls_io_result result = tls_io_read(t->ssl, buf, len, out_len, out_failure);
    t->read_wait = wait_for(result);
    if (result == TLS_IO_EOF && SSL_in_init(t->ssl)) {
        /* The client sent 0-RTT data and left without its Finished. */
        *out_failure =
            (struct tls_io_failure){.reason = END_CLIENT_CLOSED, .detail = "UNEXPECTED_EOF"};
        return TLS_IO_ERROR;
    }
    return result;
}

bool transport_wait_readable(struct transport *t)
{
    if (!t->sock.drained || t->sock.readahead != NULL ||
        (t->ssl != NULL && SSL_has_pending(t->ssl)))
        return false;
    t->read_wait = TRANSPORT_WAIT_READ;
    return true;
}

enum tls_io_result transport_write(struct transport *t, const uint8_t *buf, size_t len,
                                   size_t *out_len, struct tls_io_failure *out_failure)
{
    enum tls_io_result result = t->ssl != NULL
                                    ? tls_io_write(t->ssl, buf, len, out_len, out_failure)
                                    : plain_write(t, buf, len, out_len, out_failure);
    t->write_wait = wait_for(result);
    return result;
}

enum tls_io_result transport_close_notify(struct transport *t, enum end_reason *out_reason)
{
    if (t->close_notify_sent || t->ssl == NULL)
        return TLS_IO_OK;
    enum tls_io_result result = tls_io_close_notify(t->ssl, out_reason);
    t->write_wait = wait_for(result);
    t->close_notify_sent = result == TLS_IO_OK;
    return result;
}

enum tls_io_result transport_flush(struct transport *t)
{
    enum tls_io_result result = tls_io_flush(&t->sock);
    if (result == TLS_IO_WANT_WRITE)
        t->write_wait = TRANSPORT_WAIT_WRITE;
    return result;
}

void transport_ready(struct transport *t, short what)
{
    if (what & EV_READ)
        tls_io_readable(&t->sock);
    uint8_t *waits[] = {&t->read_wait, &t->write_wait};
    for (size_t i = 0; i < 2; i++)
        if ((*waits[i] == TRANSPORT_WAIT_READ && (what & EV_READ)) ||
            (*waits[i] == TRANSPORT_WAIT_WRITE && (what & EV_WRITE)))
            *waits[i] = TRANSPORT_WAIT_NONE;
}

static short wait_events(uint8_t wait)
{
    return wait == TRANSPORT_WAIT_READ ? EV_READ : wait == TRANSPORT_WAIT_WRITE ? EV_WRITE : 0;
}

void transport_watch(struct transport *t, struct event_base *base, short extra,
                     event_callback_fn callback, void *arg)
{
    short events = extra | wait_events(t->read_wait) | wait_events(t->write_wait);
    if (tls_io_has_output(&t->sock))
        events |= EV_WRITE;
    watch_socket(&t->ev, &t->armed, base, t->sock.fd, events, callback, arg);
}
