/* http: what HTTP mode's pieces share.
 *
 * An exchange (struct http_exchange) is one request and its response. It
 * sits between a front, the client's protocol (HTTP/2 in mode_h2.c, HTTP/1.1
 * in mode_h1.c), and its upstream, the HTTP/1.1 exchange with a backend
 * server over a pooled connection (http_upstream.c, backend_pool.c):
 *
 *   front                               upstream
 *   request head -> x->req,
 *     http_upstream_start(x)       ->   connection from the pool (or queue,
 *                                       or connect), request head written
 *   body bytes -> x->req_body,
 *     http_upstream_request_body(x) ->  written (chunked when no length)
 *   request_body_taken(x, n)       <-   n bytes left x->req_body
 *   response_head(x)               <-   x->resp: a 1xx, then the final head
 *   response_data(x)               <-   bytes in x->resp_body; x->resp_done
 *   bytes taken from x->resp_body,
 *     http_upstream_response_taken  ->  the backend is read again
 *   failed(x)                      <-   x->reason says why
 *   http_upstream_release(x)       ->   connection back to the pool, or closed
 *
 * Calls from the upstream to the front (struct http_front_ops) only record
 * what changed and schedule the connection (conn_resume_later): they never
 * do client I/O, never end the connection and never free the exchange, so
 * neither side is ever re-entered. The front frees an exchange when it is
 * done with it, after http_upstream_release.
 *
 * Memory is bounded per exchange: the front stops reading the client (h1:
 * no read; h2: no window credit) while x->req_body holds
 * HTTP_BODY_BUF_MAX bytes, and the upstream stops reading the backend while
 * x->resp_body does. Both buffers exist only while they hold bytes.
 *
 * Ownership. The front owns its exchanges, and each exchange owns its
 * request, response, buffers and upstream. */
#ifndef TLSTERM_HTTP_H
#define TLSTERM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

struct backend_server;
struct conn;
struct evbuffer;
struct http_exchange;
struct http_upstream;

/* Body bytes an exchange holds per direction before its source is paused. */
#define HTTP_BODY_BUF_MAX (64 * 1024)
/* Header fields a request may have (431 beyond). */
#define HTTP_MAX_FIELDS 100
/* Fields http_request_write_head may add to what the client sent, on top of
 * HTTP_MAX_FIELDS: X-Forwarded-For, -Proto, -Host and -Port, Forwarded, the
 * request id, X-Forwarded-Client-Cert, Early-Data, and one of Content-Length
 * and Transfer-Encoding (or Connection and Upgrade for a WebSocket). Host
 * replaces the client's (or, from HTTP/2, its :authority, which counted
 * among the client's fields as a pseudo-header field). The limit is on the
 * client, like HAProxy's tune.http.maxhdr: a backend must take this many
 * more. */
#define HTTP_FORWARD_ADDED_FIELDS 10

/* enum http_reason is why tlsterm answered or cut short a request: stable
 * tokens for the access log and metrics (never renamed, only added). */
enum http_reason {
    HTTP_REASON_NONE,
    HTTP_REASON_BAD_REQUEST,              /* 400: malformed request */
    HTTP_REASON_AUTHORITY_MISMATCH,       /* 400: Host and :authority differ */
    HTTP_REASON_HEADER_TIMEOUT,           /* 408: timeouts.request_header */
    HTTP_REASON_MISDIRECTED,              /* 421: authority not covered by the certificate */
    HTTP_REASON_HEADER_TOO_LARGE,         /* 431 */
    HTTP_REASON_UNKNOWN_CODING,           /* 501: a Transfer-Encoding other than chunked */
    HTTP_REASON_BACKEND_CONNECT_FAILED,   /* 502 */
    HTTP_REASON_BACKEND_RESET,            /* 502 */
    HTTP_REASON_BACKEND_INVALID_RESPONSE, /* 502 */
    HTTP_REASON_BACKEND_BUSY,             /* 503: no slot within timeouts.queue */
    HTTP_REASON_BACKEND_TIMEOUT,          /* 504: timeouts.backend_response */
    HTTP_REASON_CLIENT_ABORTED,           /* the client reset or left mid-exchange */
    HTTP_REASON_OUT_OF_MEMORY,            /* 503 */
    HTTP_REASON_BACKEND_UNAVAILABLE,      /* 503: no server of the group is up */
    HTTP_REASON_COUNT
};

/* http_reason_name returns |reason|'s token ("bad_request"...), "" for none. */
const char *http_reason_name(enum http_reason reason);

/* http_reason_status returns the status tlsterm answers |reason| with. */
int http_reason_status(enum http_reason reason);

/* http_status_text returns the reason phrase of |status| ("Not Found"). */
const char *http_status_text(int status);

/* ---- header fields ---------------------------------------------------------- */

/* struct http_fields is a list of header fields. Names and values live in
 * one growing text buffer, each followed by a NUL; fields refer to them by
 * offset so the buffer may move. Its owner may lend it storage for the first
 * fields (http_fields_lend), used before the heap: the exchange does, so
 * that a usual head costs no allocation. */
struct http_field {
    uint32_t name, value; /* offsets into |text| */
    uint32_t name_len, value_len;
};

struct http_fields {
    struct http_field *v; /* |lent_v|, or the heap once it outgrew it */
    uint32_t num, cap;
    char *text; /* |lent_text|, or the heap */
    uint32_t text_len, text_cap;
    uint32_t bytes; /* sum of name and value lengths, for the size limit */
    struct http_field *lent_v; /* lent storage (http_fields_lend); NULL: none */
    char *lent_text;
    uint32_t lent_cap, lent_text_cap;
};

/* http_fields_lend gives the empty |f| |cap| fields at |v| and |text_cap|
 * bytes at |text| for its first fields. The caller keeps them as long as
 * |f|; http_fields_free leaves them lent. */
void http_fields_lend(struct http_fields *f, struct http_field *v, uint32_t cap, char *text,
                      uint32_t text_cap);

/* http_fields_add appends a field; 0, or -1 when out of memory. */
int http_fields_add(struct http_fields *f, const char *name, size_t name_len, const char *value,
                    size_t value_len);

/* http_fields_extend appends to the last field's name (|to_name|) or value:
 * llhttp hands over a name or value in pieces when it spans reads. */
int http_fields_extend(struct http_fields *f, bool to_name, const char *data, size_t len);

static inline const char *http_field_name(const struct http_fields *f, uint32_t i)
{
    return f->text + f->v[i].name;
}
static inline const char *http_field_value(const struct http_fields *f, uint32_t i)
{
    return f->text + f->v[i].value;
}

/* http_fields_find returns the index of the first field named |name| (any
 * case) at or after |from|, or -1. */
int http_fields_find(const struct http_fields *f, const char *name, uint32_t from);

/* http_fields_free releases |f|'s storage and empties it. */
void http_fields_free(struct http_fields *f);

/* http_name_is returns true when the |len| bytes at |name| equal |lit| in
 * any case. */
bool http_name_is(const char *name, size_t len, const char *lit);

/* http_token_has returns true when the comma-separated list |list| contains
 * the token |token| (any case): "keep-alive, Upgrade" has "upgrade". */
bool http_token_has(const char *list, size_t len, const char *token);

/* ---- messages ----------------------------------------------------------------- */

struct http_request {
    char *method;              /* NUL-terminated, as sent */
    char *target;              /* the path (origin form; "*" for OPTIONS *) */
    char *authority;           /* Host or :authority; NULL when none was sent */
    struct http_fields fields; /* regular fields as received (pseudo-fields and
                                  Host excluded; h2 names are lower-case) */
    int64_t content_length;    /* -1: none */
    bool has_body;             /* a body follows the head */
    bool expect_continue;      /* Expect: 100-continue */
    bool websocket;            /* h1 Upgrade: websocket */
    bool close;                /* the client said Connection: close (h1) */
    bool h2;                   /* came over HTTP/2 */
    uint8_t http_minor;        /* h1: HTTP/1.<minor> */
};

struct http_response {
    int status;                /* 0: no head yet */
    struct http_fields fields; /* hop-by-hop fields already removed */
    struct http_fields trailers;
    int64_t content_length; /* -1: none (chunked, or until EOF) */
    bool close;             /* the backend said Connection: close */
};

/* http_request_free and http_response_free release a message's storage. */
void http_request_free(struct http_request *req);
void http_response_free(struct http_response *resp);

/* http_is_hop_by_hop returns true for a field that is never passed on:
 * Connection, Keep-Alive, Proxy-Connection, Upgrade, HTTP2-Settings,
 * Transfer-Encoding, TE (the caller keeps "TE: trailers" where it may). */
bool http_is_hop_by_hop(const char *name, size_t len);

/* http_connection_names returns true when the Connection fields of |f|
 * name |name|: such a field is hop-by-hop too. */
bool http_connection_names(const struct http_fields *f, const char *name, size_t len);

/* http_connection_names_others returns true when the Connection fields of
 * |f| name anything that is not hop-by-hop already (http_is_hop_by_hop):
 * when false, http_connection_names is false for every other field, and
 * a caller need not ask field by field ("Connection: keep-alive"). */
bool http_connection_names_others(const struct http_fields *f);

/* ---- the exchange ---------------------------------------------------------------- */

/* struct http_front_ops is how an upstream tells its front what changed;
 * see the top of this file for the rules they follow. */
struct http_front_ops {
    /* response_head: x->resp holds a new head, informational (1xx) or
     * final. A 1xx head is valid only during the call (a final head may
     * follow in the same read): the front copies it out at once. */
    void (*response_head)(struct http_exchange *x);
    /* response_data: bytes were added to x->resp_body, or x->resp_done
     * was set (trailers, if any, in x->resp.trailers). */
    void (*response_data)(struct http_exchange *x);
    /* request_body_taken: |n| bytes of x->req_body went to the backend. */
    void (*request_body_taken)(struct http_exchange *x, size_t n);
    /* failed: the exchange cannot go on, for x->reason. The upstream has
     * let go of its backend connection. Before the final response head,
     * the front answers with http_reason_status; after it, it cuts the
     * response short (h2: RST_STREAM, h1: close). */
    void (*failed)(struct http_exchange *x);
    /* upgraded: the backend answered 101 to a WebSocket request; the front
     * sends the head and takes the connection (http_upstream_take). */
    void (*upgraded)(struct http_exchange *x);
};

/* An exchange holds the first HTTP_EXCHANGE_FIELDS fields of its request and
 * of its response, and HTTP_EXCHANGE_FIELD_TEXT bytes of their names and
 * values, in its own storage: enough for most heads. */
#define HTTP_EXCHANGE_FIELDS 16
#define HTTP_EXCHANGE_FIELD_TEXT 512

struct http_exchange {
    struct conn *c;
    const struct http_front_ops *front;
    void *front_data; /* the front's own state for this exchange */

    struct http_request req;
    struct evbuffer *req_body; /* body bytes not yet sent; NULL while none */
    bool req_done;             /* the whole body is in (or there is none) */
    uint64_t req_bytes;        /* body bytes received from the client */

    struct http_response resp;
    struct evbuffer *resp_body; /* body bytes not yet taken by the front */
    bool resp_final;            /* resp holds the final head */
    bool resp_done;             /* the whole response is in resp_body */
    uint64_t resp_bytes;        /* body bytes sent to the client */

    struct http_upstream *up;      /* from http_upstream_start until released */
    enum http_reason reason;       /* why tlsterm answered (failed) */
    const struct net_addr *server; /* the backend address used, once chosen (&server_addr) */
    struct net_addr server_addr;
    bool reused;                   /* its connection came from the pool */
    char *request_id;              /* the request id sent (or received); NULL: none */
    uint32_t stream_id;            /* h2 stream id; 0 for h1 */
    bool early_data;               /* the request arrived as TLS 1.3 0-RTT data */
    uint64_t started_us;           /* metrics_clock_us() at the request's start */

    /* Storage lent to req.fields and resp.fields (http_fields_lend). Last,
     * and not zeroed by http_exchange_new: it is written before it is
     * read. */
    struct http_field req_first_fields[HTTP_EXCHANGE_FIELDS];
    struct http_field resp_first_fields[HTTP_EXCHANGE_FIELDS];
    char req_first_text[HTTP_EXCHANGE_FIELD_TEXT];
    char resp_first_text[HTTP_EXCHANGE_FIELD_TEXT];
};

/* http_exchange_new returns a new exchange of |c| for |front|, or NULL when
 * out of memory. */
struct http_exchange *http_exchange_new(struct conn *c, const struct http_front_ops *front,
                                        void *front_data);

/* http_move_bytes moves |n| bytes of |src| to the end of |dst|; false when
 * they did not all arrive (out of memory). evbuffer_remove_buffer alone
 * cannot tell: when it must copy part of a chain and that allocation fails,
 * libevent 2.1 drops those bytes from |src| and still returns |n|. */
bool http_move_bytes(struct evbuffer *src, struct evbuffer *dst, size_t n);

/* http_exchange_free releases |x| (its upstream must be released first,
 * which http_exchange_free does with abort if it was not). NULL is allowed. */
void http_exchange_free(struct http_exchange *x);

/* http_exchange_log writes x's access log line ("request") and counts its
 * metrics, once, when the exchange ends. |protocol| is "h2" or "http/1.1". */
void http_exchange_log(struct http_exchange *x, const char *protocol);

/* http_error_body writes tlsterm's own short text body for |status| into
 * |out| (at most |out_len|) and returns its length. */
size_t http_error_body(int status, char *out, size_t out_len);

/* ---- the upstream ----------------------------------------------------------- */

/* http_upstream_start checks x->req (Host/:authority, limits already done by
 * the front), prepares the request for the backend and starts it: a pooled
 * connection, a queue slot, or a connect. Outcomes arrive through the front
 * ops, possibly before it returns (failed, when no server is reachable at
 * once). It returns 0, or -1 when out of memory. */
int http_upstream_start(struct http_exchange *x);

/* http_may_send_early says whether x's request may go to the backend
 * while the client's handshake is still completing (its bytes came as TLS
 * 1.3 early data): only GET, HEAD and OPTIONS, which RFC 8470 lets a
 * server answer 425 to; other methods wait for the handshake. */
bool http_may_send_early(const struct http_exchange *x);

/* http_upstream_handshake_done tells x's upstream that the client's
 * handshake completed: a request the backend answered 425 Too Early is
 * sent again now. */
void http_upstream_handshake_done(struct http_exchange *x);

/* http_upstream_request_body tells the upstream that x->req_body has new
 * bytes or that x->req_done was set. */
void http_upstream_request_body(struct http_exchange *x);

/* http_upstream_response_taken tells the upstream the front took bytes
 * from x->resp_body (or a 1xx head): it reads the backend again when it had
 * paused. */
void http_upstream_response_taken(struct http_exchange *x);

/* http_upstream_release ends x's upstream: its connection goes back to the
 * pool when request and response were both complete and reusable; otherwise
 * it is closed, with a RST when |abort| (a request cut short must not look
 * complete to the server). */
void http_upstream_release(struct http_exchange *x, bool abort);

/* http_upstream_take hands over x's backend connection after a 101: the
 * caller owns the returned connection, and the bytes the backend sent after
 * the 101 head are moved to |leftover| (created if NULL). With it goes the
 * server it leads to, in |*server|: a reference, still counted active
 * (least_conn, tlsterm_backend_server_connections_active) while the tunnel
 * lasts, which the caller gives back with backend_server_release; NULL when
 * no connection is returned. The upstream is released. */
struct backend_conn *http_upstream_take(struct http_exchange *x, struct evbuffer **leftover,
                                        struct backend_server **server);

/* ---- client address headers ---------------------------------------------------- */

/* http_request_write_head writes x's request head for the backend into
 * |out|: the request line, Host, the fields that may pass, the forwarding
 * fields (http.x_forwarded, http.forwarded, request id, XFCC) and the
 * framing (Content-Length or chunked). Returns 0, or -1 when out of memory. */
int http_request_write_head(struct http_exchange *x, struct evbuffer *out);

#endif
