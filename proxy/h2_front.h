/* h2_front: what the HTTP/2 front's two files share (mode_h2.c: the
 * connection, its session, streams and limits; h2_response.c: responses and
 * the exchange's front operations). Private to them.
 *
 * Ownership. The front (struct h2_front) is its conn's mode state; it owns
 * the nghttp2 session and its streams, and each stream owns its exchange
 * (see the top of mode_h2.c). */
#ifndef TLSTERM_H2_FRONT_H
#define TLSTERM_H2_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "conn.h"
#include "h2_limits.h"
#include "h2_mem.h"
#include "http.h"

enum h2_state { H2_OPEN, H2_NOTICE, H2_GOAWAY };

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
static inline void h2_schedule(struct h2_front *f) { conn_resume_later(f->c); }

/* h2_answer makes tlsterm answer |st| itself with x->reason's status. */
void h2_answer(struct h2_stream *st);

/* h2_queue_taken puts |st| on the front's taken list: its upstream may
 * read again once the connection runs. */
void h2_queue_taken(struct h2_stream *st);

/* h2_detached_changed handles news from the upstream of a stream the
 * client closed (detached): the connection drops its bytes and frees it
 * once the upstream is done. False when |st| is not detached. */
bool h2_detached_changed(struct h2_stream *st);

#endif
