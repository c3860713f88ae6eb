/* backend_conn: one connection to a backend server, from the first connect()
 * to close: the non-blocking connect (with retries while a unix socket's
 * backlog is full), readiness, and plain reads and writes.
 *
 * Ownership. A backend_conn is owned by whoever created it with
 * backend_conn_open (today a tcp-mode connection; later a pool, or the
 * request that took it from the pool) and freed with backend_conn_free. It
 * owns its socket, its event and its retry timer. It reports readiness to
 * its owner through the callback given to backend_conn_open, which the owner
 * may change with backend_conn_set_owner when it hands the connection on.
 * It keeps a copy of the server's address (|server| points at it), so a
 * pooled connection outlives the list that named its server. */
#ifndef TLSTERM_BACKEND_CONN_H
#define TLSTERM_BACKEND_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "net.h"

struct backend_conn;

/* backend_conn_event_fn is called when |conn|'s socket is ready for what its
 * blocked operations wait for (EV_READ and/or EV_WRITE in |what|), or, while
 * connecting, when the connect has an outcome (backend_conn_connect_result). */
typedef void (*backend_conn_event_fn)(struct backend_conn *conn, short what, void *arg);

enum backend_conn_state {
    BACKEND_CONN_CONNECTING, /* connect() in progress, or retried on a timer */
    BACKEND_CONN_CONNECTED,
};

/* enum backend_io is the outcome of a read or write. */
enum backend_io {
    BACKEND_IO_OK,    /* bytes moved */
    BACKEND_IO_WAIT,  /* would block: backend_conn_watch waits for it */
    BACKEND_IO_EOF,   /* the server closed its side (reads only) */
    BACKEND_IO_ERROR, /* errno says why */
};

struct backend_conn {
    int fd;
    enum backend_conn_state state;
    const struct net_addr *server; /* &server_addr */
    struct net_addr server_addr;
    struct event_base *base;
    struct event ev;
    short armed;        /* what |ev| is armed for; 0: not armed */
    bool read_blocked;  /* the last read would block */
    bool write_blocked; /* the last write would block */
    bool drained;       /* the last read emptied the socket (see tls_io.h) */
    uint8_t connect_retries;
    int connect_error;      /* errno of a failed connect, once known */
    struct event *retry_ev; /* only while waiting to retry a unix connect */
    backend_conn_event_fn on_event;
    void *arg;
};

/* backend_conn_open creates a socket and starts connecting it to |server| on
 * |base|. It returns a new backend_conn, owned by the caller, whose
 * |on_event| fires once the connect has an outcome; or NULL with errno set
 * when no socket could be made or the connect failed at once. A unix socket
 * whose backlog is full (EAGAIN) is not a failure: connect() is tried again
 * on a short back-off until it goes through, or until the owner gives up
 * (timeouts.connect) and frees it. */
struct backend_conn *backend_conn_open(struct event_base *base, const struct net_addr *server,
                                       backend_conn_event_fn on_event, void *arg);

/* backend_conn_open_from is backend_conn_open with the connection coming
 * from |source| (backend.source: client): the socket is made transparent
 * (IP_TRANSPARENT or IPV6_TRANSPARENT, which need CAP_NET_ADMIN), told to
 * leave the port to connect() (IP_BIND_ADDRESS_NO_PORT, so the 4-tuple, not
 * the port alone, has to be unique) and bound to |source|'s address with
 * port 0 before it connects. |source| must be of |server|'s family
 * (EAFNOSUPPORT otherwise); its port is ignored. A failed option or bind
 * fails the open as a failed connect does, with errno set. NULL |source| is
 * backend_conn_open. */
struct backend_conn *backend_conn_open_from(struct event_base *base,
                                            const struct net_addr *server,
                                            const struct sockaddr *source,
                                            backend_conn_event_fn on_event, void *arg);

/* backend_conn_failed_locally says whether |err|, the errno of a failed
 * backend_conn_open, means this process ran out of something (descriptors:
 * EMFILE, ENFILE; socket buffers or memory: ENOBUFS, ENOMEM) rather than
 * the server failing. Such a failure says nothing about the server: it must
 * not count against its health (a passive check would take a healthy server
 * out for its cooldown), and another server would fail the same way. */
bool backend_conn_failed_locally(int err);

/* backend_conn_set_owner makes |on_event| with |arg| receive |conn|'s
 * events from now on. */
void backend_conn_set_owner(struct backend_conn *conn, backend_conn_event_fn on_event,
                            void *arg);

/* backend_conn_connect_result returns 0 once |conn| is connected (and marks
 * it so), EINPROGRESS while still connecting, or the errno value the connect
 * failed with. Call it from the event callback while connecting. */
int backend_conn_connect_result(struct backend_conn *conn);

/* backend_conn_wait_readable returns true, and records that |conn| waits
 * for readability, when a read could only find nothing (the last one
 * drained the socket). A caller checks it before it takes a buffer. */
bool backend_conn_wait_readable(struct backend_conn *conn);

/* backend_conn_recv reads up to |len| bytes into |buf|; |*out_len| is set
 * on BACKEND_IO_OK. */
enum backend_io backend_conn_recv(struct backend_conn *conn, uint8_t *buf, size_t len,
                                  size_t *out_len);

/* backend_conn_send writes up to |len| bytes of |buf|; |*out_len| is set on
 * BACKEND_IO_OK. */
enum backend_io backend_conn_send(struct backend_conn *conn, const uint8_t *buf, size_t len,
                                  size_t *out_len);

struct evbuffer;

/* backend_conn_send_buffer writes what it can of |buf| and drains what went
 * out; BACKEND_IO_OK when some bytes moved (or |buf| was empty). */
enum backend_io backend_conn_send_buffer(struct backend_conn *conn, struct evbuffer *buf);

/* backend_conn_is_idle_ok checks an idle keep-alive connection before it is
 * reused, with a non-blocking peek: true when the server has neither
 * closed it nor sent anything unasked. */
bool backend_conn_is_idle_ok(struct backend_conn *conn);

/* backend_conn_shutdown_write sends a FIN: the server sees the end of the
 * request stream and may still answer. */
void backend_conn_shutdown_write(struct backend_conn *conn);

/* backend_conn_watch arms |conn|'s event for what its blocked operations
 * wait for (a connect waits for writability), plus |extra|. */
void backend_conn_watch(struct backend_conn *conn, short extra);

/* backend_conn_free closes |conn| and frees it. With |abort| the close sends
 * a RST instead of a FIN, so the server cannot take a cut-short request for
 * a complete one. NULL is allowed. */
void backend_conn_free(struct backend_conn *conn, bool abort);

#endif
