/* h2_front: what the HTTP/2 front's three files share (mode_h2.c: the
 * connection's I/O and deadlines; h2_session.c: the nghttp2 session, its
 * callbacks, streams and limits; h2_response.c: responses and the
 * exchange's front operations). Private to them, and to the fuzz target
 * that drives the session without a connection (fuzz/h2_session_fuzz.c).
 *
 * The session and the responses do no I/O: what they need from the world
 * around them goes through struct h2_session_ops, except two fields of the
 * conn they read (cfg, handshake_completing; the exchanges they make read
 * client.ssl too, for HSTS). mode_h2.c binds the operations to the real
 * upstreams and connection.
 *
 * Ownership. The front (struct h2_front) is its conn's mode state; it owns
 * the nghttp2 session and its streams, and each stream owns its exchange
 * (see the top of h2_session.c). */
#ifndef TLSTERM_H2_FRONT_H
#define TLSTERM_H2_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <nghttp2/nghttp2.h>

#include "conn.h"
#include "h2_limits.h"
#include "h2_mem.h"
#include "http.h"

enum h2_state { H2_OPEN, H2_NOTICE, H2_GOAWAY };

/* struct h2_session_ops is what the session asks of the world around it.
 * The upstream operations are http.h's http_upstream_* and follow its
 * rules: inside any of them, an upstream may call the exchange's front
 * operations (h2_front_ops), which only submit to the session and
 * schedule; it never frees an exchange nor ends the connection. */
struct h2_session_ops {
    /* upstream_start starts x's upstream: 0, or -1 when out of memory
     * (http_upstream_start). */
    int (*upstream_start)(struct http_exchange *x);
    /* upstream_request_body: x->req_body has new bytes, or x->req_done
     * was set (http_upstream_request_body). */
    void (*upstream_request_body)(struct http_exchange *x);
    /* upstream_response_taken: bytes left x->resp_body, the upstream may
     * read again (http_upstream_response_taken). */
    void (*upstream_response_taken)(struct http_exchange *x);
    /* upstream_handshake_done: the client's handshake completed
     * (http_upstream_handshake_done). */
    void (*upstream_handshake_done)(struct http_exchange *x);
    /* upstream_release ends x's upstream, if any, and sets x->up to NULL
     * (http_upstream_release). */
    void (*upstream_release)(struct http_exchange *x, bool abort);
    /* exchange_log writes x's access log line and counts it, once, as it
     * ends (http_exchange_log). */
    void (*exchange_log)(struct http_exchange *x);
    /* covers says whether the certificate served on |c| covers |host|. */
    bool (*covers)(struct conn *c, const char *host);
    /* schedule makes the connection run on a later turn (conn_resume_later):
     * nghttp2 has frames to send, or the taken list streams. */
    void (*schedule)(struct conn *c);
    /* report_abuse logs and counts a limit that fired (h2_limits_report). */
    h2_limits_report_fn *report_abuse;
};

struct h2_stream {
    struct h2_stream *prev, *next; /* the front's streams */
    struct h2_stream *taken_next;  /* on the front's taken list */
    bool taken_queued;
    struct h2_front *front;
    struct http_exchange *x;
    int32_t id;
    uint64_t begun_ms;    /* its HEADERS began: timeouts.request_header */
    bool head_done;       /* the request head is complete (start_request) */
    bool head_sent;       /* the final head is submitted */
    bool deferred;        /* the data provider waits for bytes */
    bool answered;        /* tlsterm answered itself: no upstream */
    bool rejected;        /* bad_request / header_too_large seen among the fields */
    bool await_handshake; /* 0-RTT: the request waits for the handshake */
    bool detached;        /* closed by the client; the upstream finishes (see the top) */
    uint32_t fields;
    struct h2_limits_stream limits;
};

struct h2_front {
    struct conn *c;
    const struct h2_session_ops *ops;
    nghttp2_session *session;
    enum h2_state state;
    const uint8_t *pending; /* frames not yet written whole: in nghttp2's
                               buffer, or in |spill| */
    size_t pending_len;
    uint8_t *spill; /* owned: gathered frames the socket did not take */
    struct h2_stream *streams;
    uint32_t num_streams;
    struct h2_stream *taken; /* streams whose upstream may read again */
    char *authority_ok;      /* the last authority the certificate covered */
    bool any_request;        /* a request's headers have arrived */
    bool out_of_memory;      /* an allocation failed and ended the session:
                                its end is logged as out_of_memory */
    bool handshake_news;     /* the 0-RTT handshake just completed */
    uint64_t started_ms;
    uint64_t last_activity_ms;
    struct h2_limits limits;
    uint64_t stream_stalled_ms; /* the earliest of the streams' stalled_ms */
    struct h2_mem mem;          /* the session's allocator */
};

/* h2_front_ops are the operations an exchange's upstream calls
 * (h2_response.c). */
extern const struct http_front_ops h2_front_ops;

/* h2_schedule makes the front run on a later turn: nghttp2 has frames to
 * send (the upstream side only records and schedules). */
static inline void h2_schedule(struct h2_front *f) { f->ops->schedule(f->c); }

/* h2_answer makes tlsterm answer |st| itself with x->reason's status. */
void h2_answer(struct h2_stream *st);

/* h2_queue_taken puts |st| on the front's taken list: its upstream may
 * read again once the connection runs. */
void h2_queue_taken(struct h2_stream *st);

/* h2_detached_changed handles news from the upstream of a stream the
 * client closed (detached): the connection drops its bytes and frees it
 * once the upstream is done. False when |st| is not detached. */
bool h2_detached_changed(struct h2_stream *st);

/* ---- the session (h2_session.c) -------------------------------------------------- */

/* h2_session_init starts the session of the zeroed front |f| for the
 * connection |c| under c->cfg, with |ops|: nghttp2 with tlsterm's callbacks,
 * options and allocator, its SETTINGS and connection window submitted, the
 * limits started. 0, or -1 when out of memory (h2_session_cleanup undoes
 * what was done either way). */
int h2_session_init(struct h2_front *f, struct conn *c, const struct h2_session_ops *ops);

/* h2_session_recv feeds |len| bytes of the client's to the session and
 * checks the limits nghttp2 keeps (h2_limits_after_recv); it returns
 * nghttp2_session_mem_recv's result (negative: the connection must end,
 * after the GOAWAY nghttp2 may have queued). */
ssize_t h2_session_recv(struct h2_front *f, const uint8_t *data, size_t len);

/* h2_session_handshake_done starts what waited for the client's handshake
 * to complete (c->handshake_completing went false): requests held back,
 * and those the backend answered 425. */
void h2_session_handshake_done(struct h2_front *f);

/* h2_session_take lets the upstreams of the streams on the taken list read
 * again (a detached stream's bytes are dropped; it is freed once its
 * upstream is done). Streams queued again meanwhile stay on the list for
 * the next turn. */
void h2_session_take(struct h2_front *f);

/* h2_session_notice submits the drain notice (GOAWAY with the last
 * possible stream id, and a PING) and returns true, once: false when the
 * session is past H2_OPEN. */
bool h2_session_notice(struct h2_front *f);

/* h2_session_cleanup frees the streams (their upstreams released, their
 * exchanges logged) and the session. */
void h2_session_cleanup(struct h2_front *f);

#endif
