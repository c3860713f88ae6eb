/* backend_conn: a connection to a backend server. See backend_conn.h. */
#include "backend_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "watch.h"

/* A unix socket whose backlog is full refuses a non-blocking connect with
 * EAGAIN and never completes it: it is tried again after CONNECT_RETRY_MIN_MS,
 * doubling up to CONNECT_RETRY_MAX_MS, until the owner's connect timeout. */
#define CONNECT_RETRY_MIN_MS 5
#define CONNECT_RETRY_MAX_MS 100

static void on_socket_event(evutil_socket_t fd, short what, void *arg);
static void on_retry(evutil_socket_t fd, short what, void *arg);

/* bind_source makes |fd| transparent and binds it to |source|'s address
 * with the port left to connect(). It returns 0, or -1 with errno set. */
static int bind_source(int fd, int family, const struct sockaddr *source)
{
    struct sockaddr_storage local;
    socklen_t local_len;
    int on = 1;

    if (source->sa_family != family) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (family == AF_INET) {
        local_len = sizeof(struct sockaddr_in);
        memcpy(&local, source, local_len);
        ((struct sockaddr_in *)&local)->sin_port = 0;
        if (setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &on, sizeof(on)) != 0)
            return -1;
    } else {
        local_len = sizeof(struct sockaddr_in6);
        memcpy(&local, source, local_len);
        ((struct sockaddr_in6 *)&local)->sin6_port = 0;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &on, sizeof(on)) != 0)
            return -1;
    }
    /* IPPROTO_IP level on IPv6 sockets too: it is an inet socket option. */
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof(on)) != 0)
        return -1;
    return bind(fd, (const struct sockaddr *)&local, local_len);
}

/* schedule_retry arms the retry timer for the next connect() attempt. It
 * returns 0, or -1 when out of memory. */
static int schedule_retry(struct backend_conn *b)
{
    uint32_t delay_ms = CONNECT_RETRY_MIN_MS
                        << (b->connect_retries < 5 ? b->connect_retries : 5);
    if (delay_ms > CONNECT_RETRY_MAX_MS)
        delay_ms = CONNECT_RETRY_MAX_MS;
    if (b->retry_ev == NULL && (b->retry_ev = evtimer_new(b->base, on_retry, b)) == NULL)
        return -1;
    if (b->connect_retries < UINT8_MAX)
        b->connect_retries++;
    struct timeval tv = {0, (suseconds_t)delay_ms * 1000};
    return evtimer_add(b->retry_ev, &tv);
}

static void drop_retry(struct backend_conn *b)
{
    if (b->retry_ev != NULL)
        event_free(b->retry_ev);
    b->retry_ev = NULL;
}

/* try_connect calls connect(). It returns 0 when the connect completed or is
 * in progress (the socket's writability tells which), 1 when it waits for a
 * retry, or -1 with errno set when it failed. */
static int try_connect(struct backend_conn *b)
{
    if (connect(b->fd, (const struct sockaddr *)&b->server->ss, b->server->len) == 0 ||
        errno == EINPROGRESS)
        return 0;
    if (errno == EAGAIN && b->server->ss.ss_family == AF_UNIX) {
        int saved = errno;
        if (schedule_retry(b) != 0) {
            errno = saved;
            return -1;
        }
        return 1;
    }
    return -1;
}

struct backend_conn *backend_conn_open(struct event_base *base, const struct net_addr *server,
                                       backend_conn_event_fn on_event, void *arg)
{
    return backend_conn_open_from(base, server, NULL, on_event, arg);
}

bool backend_conn_failed_locally(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

struct backend_conn *backend_conn_open_from(struct event_base *base,
                                            const struct net_addr *server,
                                            const struct sockaddr *source,
                                            backend_conn_event_fn on_event, void *arg)
{
    struct backend_conn *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    b->fd = socket(server->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (b->fd < 0)
        goto fail;
    if (source != NULL && bind_source(b->fd, server->ss.ss_family, source) != 0)
        goto fail;
    net_set_nodelay(b->fd);
    b->state = BACKEND_CONN_CONNECTING;
    b->server_addr = *server;
    b->server = &b->server_addr;
    b->base = base;
    b->on_event = on_event;
    b->arg = arg;
    if (try_connect(b) < 0)
        goto fail;
    backend_conn_watch(b, 0);
    return b;

fail : {
    int saved = errno;
    backend_conn_free(b, false);
    errno = saved;
    return NULL;
}
}

void backend_conn_set_owner(struct backend_conn *b, backend_conn_event_fn on_event, void *arg)
{
    b->on_event = on_event;
    b->arg = arg;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct backend_conn *b = arg;

    int result = try_connect(b);
    if (result == 1)
        return;
    if (result < 0) {
        b->connect_error = errno;
        b->on_event(b, EV_WRITE, b->arg);
        return;
    }
    drop_retry(b);
    backend_conn_watch(b, 0);
}

int backend_conn_connect_result(struct backend_conn *b)
{
    if (b->state == BACKEND_CONN_CONNECTED)
        return 0;
    if (b->connect_error != 0)
        return b->connect_error;
    if (b->retry_ev != NULL)
        return EINPROGRESS;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0)
        b->state = BACKEND_CONN_CONNECTED;
    else
        b->connect_error = err;
    return err;
}

bool backend_conn_wait_readable(struct backend_conn *b)
{
    if (!b->drained)
        return false;
    b->read_blocked = true;
    return true;
}

enum backend_io backend_conn_recv(struct backend_conn *b, uint8_t *buf, size_t len,
                                  size_t *out_len)
{
    if (backend_conn_wait_readable(b))
        return BACKEND_IO_WAIT;
    for (;;) {
        ssize_t n = recv(b->fd, buf, len, 0);
        if (n > 0) {
            /* A short read emptied the socket: the next one waits for an
             * event instead of spending a syscall on EAGAIN. */
            b->drained = (size_t)n < len;
            *out_len = (size_t)n;
            return BACKEND_IO_OK;
        }
        if (n == 0)
            return BACKEND_IO_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            b->drained = b->read_blocked = true;
            return BACKEND_IO_WAIT;
        }
        return BACKEND_IO_ERROR;
    }
}

enum backend_io backend_conn_send(struct backend_conn *b, const uint8_t *buf, size_t len,
                                  size_t *out_len)
{
    for (;;) {
        ssize_t n = send(b->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            /* A partial send filled the socket buffer. */
            b->write_blocked = (size_t)n < len;
            *out_len = (size_t)n;
            return BACKEND_IO_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            b->write_blocked = true;
            return BACKEND_IO_WAIT;
        }
        return BACKEND_IO_ERROR;
    }
}

void backend_conn_shutdown_write(struct backend_conn *b) { shutdown(b->fd, SHUT_WR); }

void backend_conn_watch(struct backend_conn *b, short extra)
{
    short events = extra;
    if (b->state == BACKEND_CONN_CONNECTING)
        events |= b->retry_ev == NULL && b->connect_error == 0 ? EV_WRITE : 0;
    else
        events |= (b->read_blocked ? EV_READ : 0) | (b->write_blocked ? EV_WRITE : 0);
    watch_socket(&b->ev, &b->armed, b->base, b->fd, events, on_socket_event, b);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct backend_conn *b = arg;

    if (what & EV_READ)
        b->read_blocked = b->drained = false;
    if (what & EV_WRITE)
        b->write_blocked = false;
    b->on_event(b, what, b->arg);
}

enum backend_io backend_conn_send_buffer(struct backend_conn *b, struct evbuffer *buf)
{
    size_t len = evbuffer_get_length(buf);
    if (len == 0)
        return BACKEND_IO_OK;
    for (;;) {
        int n = evbuffer_write_atmost(buf, b->fd, -1);
        if (n >= 0) {
            b->write_blocked = (size_t)n < len;
            return BACKEND_IO_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            b->write_blocked = true;
            return BACKEND_IO_WAIT;
        }
        return BACKEND_IO_ERROR;
    }
}

bool backend_conn_is_idle_ok(struct backend_conn *b)
{
    uint8_t byte;
    ssize_t n;
    do
        n = recv(b->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void backend_conn_free(struct backend_conn *b, bool abort)
{
    if (b == NULL)
        return;
    if (b->armed)
        event_del(&b->ev);
    drop_retry(b);
    if (b->fd >= 0) {
        if (abort) {
            struct linger reset = {.l_onoff = 1, .l_linger = 0};
            setsockopt(b->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        }
        close(b->fd);
    }
    free(b);
}
