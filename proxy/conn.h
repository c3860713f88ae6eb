/* conn: one client connection, from accept to close: the TLS handshake, the
 * protocol mode that runs once it is done (mode.h), and the lingering close.
 * See the top of conn.c for the states and for who owns what.
 *
 * This header is the contract between a connection and its mode: the mode
 * sees the fields of struct conn, moves bytes through |client| (transport.h),
 * and ends the connection only through conn_close or conn_linger. */
#ifndef TLSTERM_CONN_H
#define TLSTERM_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "listener.h"
#include "log.h"
#include "proxy_proto.h"
#include "reason.h"
#include "timerq.h"
#include "transport.h"

struct mode_ops;
struct worker;

/* Results of functions that may end the connection: after CONN_CLOSED the
 * caller returns at once without touching the conn (or its mode state). */
enum { CONN_OK = 0, CONN_CLOSED = -1 };

enum conn_state {
    CONN_PROXY_HEADER, /* accept_proxy: the load balancer's PROXY header is
                          read before the handshake; accept_proxy.timeout */
    CONN_HANDSHAKE, /* TLS handshake with the client; timeouts.handshake */
    CONN_ACTIVE,    /* the mode runs, with deadlines of its own */
    CONN_CLOSING,   /* our close_notify is out: the client's input is read and
                       dropped briefly, so that closing with unread bytes
                       does not send a RST that wipes out our last ones */
};

struct conn {
    struct conn *prev, *next; /* the worker's list of open connections */
    struct worker *worker;
    struct listener *listener;
    struct generation *gen;         /* a reference: what it was accepted under */
    const struct cfg_listener *cfg; /* its listener's settings in |gen| */
    enum conn_state state;
    /* With 0-RTT data the mode starts before the client's Finished: the
     * handshake is counted, logged and reported only once it completes,
     * and it can still fail (timeouts.handshake still applies). */
    bool handshake_completing;
    bool resume_queued; /* the mode's on_resume runs on the next turn */
    bool fin_sent;      /* CONN_CLOSING: shutdown(SHUT_WR) done */

    struct transport client;
    const struct mode_ops *mode; /* set from CONN_ACTIVE on */
    void *mode_state;            /* owned by |mode| while CONN_ACTIVE */

    /* One entry in the worker's timer queue, queued for the earliest of
     * the deadlines below, or for now when a resume is queued. */
    struct timerq_entry timer;
    uint64_t deadline_ms; /* the mode's deadline; 0: none */
    uint64_t handshake_deadline_ms;

    enum end_reason closing_reason; /* CONN_CLOSING: logged at the end */
    const char *closing_state;      /* CONN_CLOSING: the mode's state before */
    uint32_t linger_budget;         /* CONN_CLOSING: bytes still to drop */

    uint64_t accepted_us; /* metrics_clock_us() at accept */
    uint64_t bytes_in;    /* plaintext client -> backend */
    uint64_t bytes_out;   /* plaintext backend -> client */

    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } client_addr; /* TCP listeners only: no room for a sockaddr_storage */
    uint8_t client_addr_len;
    /* accept_proxy: the address the balancer's client reached (the header's
     * destination, of the header's family), which the backend's own PROXY
     * header repeats; family 0: none was given, the listen socket's own
     * address is used. */
    struct proxy_proto_addr proxied_dst;
    uint16_t proxy_len; /* CONN_PROXY_HEADER: bytes of the header read so far */
    uint8_t *proxy_buf; /* CONN_PROXY_HEADER: those bytes; NULL otherwise */
    /* A random id of this client connection: the PROXY header's UNIQUE_ID
     * and the conn_id of its log lines (backend.proxy_protocol_unique_id). */
    uint64_t id;
    uint16_t local_port; /* http mode: the port reached, once asked; 0 before */
};

/* CONN_ID_TEXT_LEN is the length of conn_id_text's hex text. */
#define CONN_ID_TEXT_LEN 16

/* conn_id_text writes |c|'s id as CONN_ID_TEXT_LEN lower-case hex digits
 * and a NUL into |out| and returns |out|. */
char *conn_id_text(const struct conn *c, char out[CONN_ID_TEXT_LEN + 1]);

/* conn_accept takes ownership of the accepted socket |fd| from |listener|
 * and starts its handshake. On failure (out of memory) it closes |fd| and
 * logs; the caller has nothing to undo either way. */
void conn_accept(struct listener *listener, int fd, const struct sockaddr *peer,
                 socklen_t peer_len);

/* conn_close ends |c| at once with |reason| (|failure| may be NULL): it logs
 * the one line that says why, frees the mode state and everything else, and
 * returns CONN_CLOSED. */
int conn_close(struct conn *c, enum end_reason reason, const struct tls_io_failure *failure);

/* conn_linger ends |c| gracefully with |reason|: the mode state is freed,
 * close_notify goes out, and the client's input is drained for a short
 * while before the socket closes (CONN_CLOSING). It returns CONN_CLOSED:
 * for the mode, the connection is gone. */
int conn_linger(struct conn *c, enum end_reason reason);

/* conn_handshake_progress counts, logs and reports the handshake of |c| once
 * it has completed. A mode calls it after each client read while
 * |c->handshake_completing| (0-RTT: the client's Finished arrives among the
 * reads). */
void conn_handshake_progress(struct conn *c);

/* conn_backend_source returns the address |c|'s backend connections come
 * from (backend_conn_open_from): the client's with backend.source: client,
 * or NULL (the proxy's own, as routing picks it). It points into |c|. */
const struct sockaddr *conn_backend_source(const struct conn *c);

/* conn_set_deadline makes the mode's on_deadline run at |at_ms|
 * (clock_now_ms() time; 0: no deadline). */
void conn_set_deadline(struct conn *c, uint64_t at_ms);

/* conn_resume_later runs the mode's on_resume on a later turn of the event
 * loop, after other connections had theirs. */
void conn_resume_later(struct conn *c);

/* conn_watch_client watches the client socket for what its blocked
 * operations wait for. */
void conn_watch_client(struct conn *c);

/* conn_log_begin begins a log line with the fields every connection event
 * carries (listener, client, worker, and conn_id where the listener sends
 * it to its backend as the PROXY header's UNIQUE_ID). */
void conn_log_begin(struct log_line *line, const struct conn *c, enum log_level level,
                    const char *event);

/* conn_timer_fired is the worker's timer queue callback (timerq.h) for the
 * connection whose |timer| entry it is. */
void conn_timer_fired(struct timerq_entry *timer);

/* conn_close_all ends every open connection of |worker| with |reason|,
 * sending close_notify where it can, so clients see an orderly end rather
 * than a truncation. */
void conn_close_all(struct worker *worker, enum end_reason reason);

/* conn_reload_all tells the HTTP connections of |worker| whose listener's
 * TLS or HTTP settings changed in its new generation to end gracefully
 * (their mode's drain); all others keep going as they were. */
void conn_reload_all(struct worker *worker);

/* conn_drain_all tells the modes of |worker|'s connections that the worker
 * is draining. */
void conn_drain_all(struct worker *worker);

#endif
