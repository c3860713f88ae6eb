/* h2_session_fuzz: libFuzzer target for the HTTP/2 front's session
 * (h2_session.c, h2_response.c): the real nghttp2 callbacks of tlsterm
 * (request assembly in on_header, start_request's checks, the stream
 * table, detached streams, flow control, the drain's two GOAWAYs, the
 * attack limits) and its responses (heads, bodies pulled from the
 * exchange, trailers, tlsterm's own answers), driven through the seam
 * mode_h2.c binds to the connection (struct h2_session_ops, h2_front.h).
 * Here the operations are bound to a fake backend that answers each
 * request as a script says, through the exchange's front operations, as
 * http_upstream.c does; the rest of the world is a fake conn whose fields
 * the session reads (cfg, handshake_completing, client.ssl for HSTS).
 *
 * The input: byte 0, how many bytes each read brings and whether the
 * client preface is prepended (as in every h2 target); byte 1, the
 * listener's settings (forwarding fields, request id, small limits, HSTS,
 * three concurrent streams) and whether the connection starts in 0-RTT;
 * byte 2, after which read the handshake completes (low nibble) and the
 * worker drains (high); bytes 3 to 10, the backend's script, one byte per
 * request in the order they reach it (see struct fake_backend); then the
 * client's bytes. After each read, as mode_h2.c's run does: frames out,
 * the handshake and drain news, one turn of each backend, the taken list,
 * frames out again. Once the input is used up the backends get a few more
 * turns to finish.
 *
 * Beyond "no crash, no leak": every request that reaches a backend has
 * what start_request promises (origin form, an authority the certificate
 * covers, Host agreeing, a method that may go early in 0-RTT), and its
 * head as written for the backend (http_request_write_head) parses back
 * as one HTTP/1.1 request with the same method, target and authority.
 * What is sent is read as a client would (struct client_view): whole
 * frames, a graceful GOAWAY's last stream id never grows, and no stream
 * above any GOAWAY's reached a backend. An exchange's upstream is released
 * before it is logged; every backend is gone once the session is.
 *
 * Not covered here: mode_h2.c itself (socket reads and writes, gathering,
 * partial writes, the deadlines: idle, request header, SETTINGS ACK, write
 * timeouts) and the real upstream (http_upstream.c; http_response_fuzz
 * covers its parser). See fuzz/README.md. */
#include <arpa/inet.h>
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "config.h"
#include "conn.h"
#include "h1_request.h"
#include "h2_front.h"
#include "http.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SCRIPT_LEN 8
#define HEADER_LEN (3 + SCRIPT_LEN)
/* Turns the backends get after the input is used up. */
#define FINAL_TURNS 32
/* The largest piece of body a backend adds in one turn. */
#define BODY_PIECE 16384

/* ---- the connection ------------------------------------------------------------- */

/* H2_SESSION_TRACE=1 in the environment: a line per request that reaches
 * the backend and per exchange logged, for checking what a seed does. */
static int trace = -1;

static struct conn fake_conn;
static struct cfg_listener fake_listener;
static SSL *fake_ssl; /* never handshakes: HSTS only asks whether there is one */
static unsigned num_reports;

static void configure(uint8_t flags)
{
    static const struct cfg_http2 defaults = CFG_HTTP2_DEFAULTS;
    struct cfg_http *http = &fake_listener.http;

    if (fake_ssl == NULL) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_method());
        assert(ctx != NULL);
        fake_ssl = SSL_new(ctx);
        assert(fake_ssl != NULL);
        SSL_CTX_free(ctx); /* the SSL keeps its reference */
    }
    memset(&fake_conn, 0, sizeof(fake_conn));
    fake_conn.cfg = &fake_listener;
    fake_conn.local_port = 443; /* no getsockname on a fake socket */
    fake_listener.http2 = defaults;
    *http = (struct cfg_http){.max_request_header_bytes = 64 * 1024};
    http->x_forwarded = flags & 0x01;
    http->forwarded = flags & 0x02;
    http->request_id = (flags & 0x04) ? "X-Request-Id" : NULL;
    if (flags & 0x08) {
        /* Small limits, which a short input can reach. */
        fake_listener.http2.initial_window = 1000;
        fake_listener.http2.glitch_burst = 20;
        fake_listener.http2.max_continuations = 2;
        fake_listener.http2.max_streams_per_connection = 6;
        fake_listener.http2.max_outbound_frames = 40;
        fake_listener.http2.reset_burst = 4;
        http->max_request_header_bytes = 300;
    }
    if (flags & 0x10) {
        fake_conn.client.ssl = fake_ssl;
        http->hsts.value = "max-age=31536000";
    }
    if (flags & 0x80)
        fake_listener.http2.max_concurrent_streams = 3;
    fake_conn.handshake_completing = flags & 0x20;
    if (flags & 0x40) {
        fake_conn.client_addr.in6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::1", &fake_conn.client_addr.in6.sin6_addr);
        fake_conn.client_addr_len = sizeof(fake_conn.client_addr.in6);
    } else {
        fake_conn.client_addr.in.sin_family = AF_INET;
        inet_pton(AF_INET, "198.51.100.1", &fake_conn.client_addr.in.sin_addr);
        fake_conn.client_addr_len = sizeof(fake_conn.client_addr.in);
    }
}

/* fake_covers: the certificate covers every name but those that start
 * with "other" (and the empty one). */
static bool fake_covers(struct conn *c, const char *host)
{
    return host[0] != '\0' && strncasecmp(host, "other", 5) != 0;
}

static void fake_schedule(struct conn *c) {}

static void fake_report(struct conn *c, enum h2_abuse_cause cause, const char *detail)
{
    assert(cause < H2_ABUSE_COUNT);
    num_reports++;
}

/* ---- the backend ---------------------------------------------------------------- */

/* A script byte says how the backend answers one request:
 *   bits 0-2  the outcome (enum outcome)
 *   bit 3     eager: it acts inside the calls the session makes (a pooled
 *             connection that is writable and readable at once), not only
 *             on its own turns
 *   bits 4-5  the body's size (body_sizes), or the failure (failures)
 *   bit 6     slow reader: it takes the request body only on its turns
 *   bit 7     in 0-RTT, it answered 425: the request waits for the
 *             handshake (http_upstream.c's UP_TOO_EARLY); otherwise, the
 *             head has many fields with upper-case names */
enum outcome {
    OUT_LENGTH,     /* 200 with Content-Length and a body */
    OUT_TRAILERS,   /* 200 without a length, the body, trailers */
    OUT_NO_CONTENT, /* 204 or 304 */
    OUT_HINTS,      /* 103 Early Hints, then as OUT_LENGTH */
    OUT_FAIL,       /* failed before any head: a 5xx from tlsterm */
    OUT_RESET,      /* the head, some body, then failed: RST_STREAM */
    OUT_EARLY,      /* 413 at once, the request body not read */
    OUT_NO_MEMORY,  /* http_upstream_start fails */
};

static const size_t body_sizes[4] = {0, 100, 20000, 200000};
static const enum http_reason failures[4] = {
    HTTP_REASON_BACKEND_CONNECT_FAILED, HTTP_REASON_BACKEND_TIMEOUT, HTTP_REASON_BACKEND_BUSY,
    HTTP_REASON_BACKEND_INVALID_RESPONSE};

enum phase { PHASE_HEAD, PHASE_BODY, PHASE_DONE };

/* struct fake_backend is an exchange's upstream (x->up points to it). */
struct fake_backend {
    struct fake_backend *prev, *next; /* every live one */
    struct http_exchange *x;
    uint8_t script;
    enum phase phase;
    size_t body_left;
    unsigned pieces; /* turns in PHASE_BODY */
    bool too_early;
};

static struct fake_backend *backends;
static const uint8_t *script;
static size_t num_started;
static int32_t highest_started_id; /* of the requests that reached a backend */

static struct fake_backend *backend_of(const struct http_exchange *x)
{
    return (struct fake_backend *)x->up;
}

static void unlink_backend(struct fake_backend *b)
{
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        backends = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    b->x->up = NULL;
    free(b);
}

/* fail ends |b| for |reason| and tells the front, as http_upstream.c's
 * fail does: the upstream is gone before the front hears of it. */
static void fail(struct fake_backend *b, enum http_reason reason)
{
    struct http_exchange *x = b->x;
    x->reason = reason;
    unlink_backend(b);
    x->front->failed(x);
}

/* take_body takes what the request body holds, as the backend's socket
 * would. */
static void take_body(struct fake_backend *b)
{
    struct http_exchange *x = b->x;
    size_t n = x->req_body != NULL ? evbuffer_get_length(x->req_body) : 0;
    if (n == 0)
        return;
    evbuffer_free(x->req_body);
    x->req_body = NULL;
    x->front->request_body_taken(x, n);
}

static void add_field(struct http_fields *f, const char *name, const char *value)
{
    assert(http_fields_add(f, name, strlen(name), value, strlen(value)) == 0);
}

/* send_head gives the front the final head (after a 103 for OUT_HINTS). */
static void send_head(struct fake_backend *b)
{
    struct http_exchange *x = b->x;
    enum outcome outcome = b->script & 7;
    char length[24];

    if (outcome == OUT_HINTS) {
        x->resp.status = 103;
        add_field(&x->resp.fields, "Link", "</style.css>; rel=preload");
        x->front->response_head(x);
        http_fields_free(&x->resp.fields); /* on_message_begin's */
    }
    x->resp_final = true;
    if (outcome == OUT_NO_CONTENT) {
        x->resp.status = (b->script & 0x10) ? 304 : 204;
        x->resp_done = true;
        b->phase = PHASE_DONE;
    } else if (outcome == OUT_EARLY) {
        x->resp.status = 413;
        add_field(&x->resp.fields, "Content-Length", "9");
        if ((x->resp_body = evbuffer_new()) == NULL ||
            evbuffer_add(x->resp_body, "too large", 9) != 0)
            abort();
        x->resp_done = true;
        b->phase = PHASE_DONE;
    } else {
        x->resp.status = 200;
        b->phase = PHASE_BODY;
        if (outcome != OUT_TRAILERS) {
            snprintf(length, sizeof(length), "%zu", b->body_left);
            add_field(&x->resp.fields, "Content-Length", length);
            x->resp.content_length = (int64_t)b->body_left;
        }
    }
    add_field(&x->resp.fields, "Content-Type", "text/plain");
    if ((b->script & 0x80) && !x->early_data)
        for (int i = 0; i < 40; i++) {
            char name[16];
            snprintf(name, sizeof(name), "X-Field-%d", i);
            add_field(&x->resp.fields, name, "a value long enough to fill the names' stack");
        }
    x->front->response_head(x);
    if (x->resp_done)
        x->front->response_data(x);
}

/* send_body adds a piece of the body, unless the client is behind; the
 * whole response in, the backend is done (until the front releases it). */
static void send_body(struct fake_backend *b)
{
    struct http_exchange *x = b->x;
    size_t held = x->resp_body != NULL ? evbuffer_get_length(x->resp_body) : 0;
    static const char piece[BODY_PIECE] = {'x'};

    if (held >= HTTP_BODY_BUF_MAX)
        return;
    size_t n = b->body_left < BODY_PIECE ? b->body_left : BODY_PIECE;
    if (n > HTTP_BODY_BUF_MAX - held)
        n = HTTP_BODY_BUF_MAX - held;
    if (n > 0) {
        if (x->resp_body == NULL && (x->resp_body = evbuffer_new()) == NULL)
            abort();
        if (evbuffer_add(x->resp_body, piece, n) != 0)
            abort();
        b->body_left -= n;
    }
    if ((b->script & 7) == OUT_RESET && b->pieces++ > 0) {
        /* The backend went away in the middle of the body. */
        fail(b, HTTP_REASON_BACKEND_RESET);
        return;
    }
    if (b->body_left == 0 && (b->script & 7) != OUT_RESET) {
        if ((b->script & 7) == OUT_TRAILERS) {
            add_field(&x->resp.trailers, "Grpc-Status", "0");
            add_field(&x->resp.trailers, "Connection", "close"); /* dropped */
            add_field(&x->resp.trailers, "Content-Length", "5"); /* dropped */
        }
        x->resp_done = true;
        b->phase = PHASE_DONE;
    }
    x->front->response_data(x);
}

/* turn is one turn of |b|: it takes the request body and moves its answer
 * on by one step. |b| may be gone after it. */
static void turn(struct fake_backend *b)
{
    enum outcome outcome = b->script & 7;

    if (outcome != OUT_EARLY)
        take_body(b);
    if (b->too_early)
        return;
    switch (b->phase) {
    case PHASE_HEAD:
        if (outcome == OUT_FAIL)
            fail(b, failures[(b->script >> 4) & 3]);
        else
            send_head(b);
        return;
    case PHASE_BODY:
        send_body(b);
        return;
    case PHASE_DONE:
        return;
    }
}

/* llhttp_knows says whether |method| is one of llhttp's methods. */
static bool llhttp_knows(const char *method)
{
#define KNOWN_METHOD(NUM, NAME, STRING) #STRING,
    static const char *const known[] = {HTTP_ALL_METHOD_MAP(KNOWN_METHOD)};
#undef KNOWN_METHOD
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(known[i], method) == 0)
            return true;
    return false;
}

/* check_forwarded checks what start_request promises of a request that
 * reaches its upstream, and that the head written for the backend parses
 * back as the same request. */
static struct http_exchange *again_begin(void *arg)
{
    struct h1_request *r = arg;
    if (r->x == NULL)
        r->x = http_exchange_new(&fake_conn, NULL, NULL);
    return r->x;
}

static void check_request(struct http_exchange *x)
{
    const struct http_request *req = &x->req;
    char host[256];
    size_t host_len;

    assert(req->h2 && req->method != NULL && req->target != NULL && req->authority != NULL);
    assert(req->target[0] == '/' ||
           (strcmp(req->target, "*") == 0 && strcmp(req->method, "OPTIONS") == 0));
    int i = http_fields_find(&req->fields, "host", 0);
    assert(i < 0 ||
           strcasecmp(http_field_value(&req->fields, (uint32_t)i), req->authority) == 0);
    const char *start = route_authority_host(req->authority, &host_len);
    snprintf(host, sizeof(host), "%.*s", (int)host_len, start);
    assert(fake_covers(&fake_conn, host));
    assert(!fake_conn.handshake_completing || http_may_send_early(x));
    for (uint32_t k = 0; k < req->fields.num; k++)
        assert(http_field_name(&req->fields, k)[0] != ':');

    struct evbuffer *head = evbuffer_new();
    assert(head != NULL);
    if (http_request_write_head(x, head) != 0) {
        evbuffer_free(head);
        return;
    }
    size_t len = evbuffer_get_length(head), used = 0;
    const char *text = (const char *)evbuffer_pullup(head, -1);
    /* An extension method (any token, RFC 9110 9.1) is forwarded as it
     * came, but the HTTP/1 parser knows only llhttp's list: the head is
     * parsed back with GET in its place. */
    size_t method_len = strlen(req->method);
    assert(len > method_len && memcmp(text, req->method, method_len) == 0 &&
           text[method_len] == ' ');
    bool known = llhttp_knows(req->method);
    if (!known) {
        int drained = evbuffer_drain(head, method_len);
        int prepended = evbuffer_prepend(head, "GET", 3);
        assert(drained == 0 && prepended == 0);
        len = evbuffer_get_length(head);
        text = (const char *)evbuffer_pullup(head, -1);
    }
    struct h1_request again;
    h1_request_init(&again, 1 << 20, again_begin, &again);
    /* The client's 100 fields count its pseudo-header fields; Host and the
     * fields tlsterm adds come on top. */
    again.max_fields = HTTP_MAX_FIELDS + HTTP_FORWARD_ADDED_FIELDS;
    again.x = NULL;
    enum h1_parse_result result = h1_request_parse(&again, text, len, &used);
    if (result != H1_PARSE_HEAD)
        fprintf(stderr, "forwarded head refused (%s):\n%.*s",
                again.x != NULL ? http_reason_name(again.error) : "", (int)len, text);
    assert(result == H1_PARSE_HEAD && used == len);
    assert(strcmp(again.x->req.method, known ? req->method : "GET") == 0);
    assert(strcmp(again.x->req.target, req->target) == 0);
    assert(again.x->req.authority != NULL &&
           strcmp(again.x->req.authority, req->authority) == 0);
    http_exchange_free(again.x);
    h1_request_cleanup(&again);
    evbuffer_free(head);
}

static int fake_start(struct http_exchange *x)
{
    uint8_t s = script[num_started++ % SCRIPT_LEN];

    assert(x->up == NULL);
    check_request(x);
    if ((int32_t)x->stream_id > highest_started_id)
        highest_started_id = (int32_t)x->stream_id;
    if (trace)
        fprintf(stderr, "backend: stream %u %s %s script 0x%02x\n", x->stream_id, x->req.method,
                x->req.target, s);
    if ((s & 7) == OUT_NO_MEMORY)
        return -1;
    struct fake_backend *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -1;
    b->x = x;
    b->script = s;
    b->next = backends;
    if (backends != NULL)
        backends->prev = b;
    backends = b;
    x->up = (struct http_upstream *)b;
    if ((s & 7) == OUT_FAIL && (s & 0x08)) {
        /* No server of the group is up: it fails before it returns, and
         * no server was chosen. */
        fail(b, HTTP_REASON_BACKEND_UNAVAILABLE);
        return 0;
    }
    struct sockaddr_in *server = (struct sockaddr_in *)&x->server_addr.ss;
    server->sin_family = AF_INET;
    server->sin_port = htons(8080);
    server->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    x->server_addr.len = sizeof(*server);
    x->server = &x->server_addr;
    b->body_left = strcmp(x->req.method, "HEAD") == 0 ? 0 : body_sizes[(s >> 4) & 3];
    b->too_early = fake_conn.handshake_completing && (s & 0x80);
    if (s & 0x08)
        turn(b);
    return 0;
}

static void fake_request_body(struct http_exchange *x)
{
    struct fake_backend *b = backend_of(x);
    if (b != NULL && !(b->script & 0x40))
        turn(b);
}

static void fake_response_taken(struct http_exchange *x)
{
    struct fake_backend *b = backend_of(x);
    if (b != NULL && (b->script & 0x08) && !x->resp_done)
        turn(b);
}

static void fake_handshake_done(struct http_exchange *x)
{
    struct fake_backend *b = backend_of(x);
    if (b != NULL && b->too_early) {
        b->too_early = false; /* sent again */
        if (b->script & 0x08)
            turn(b);
    }
}

static void fake_release(struct http_exchange *x, bool abort)
{
    if (x->up != NULL)
        unlink_backend(backend_of(x));
}

static void fake_log(struct http_exchange *x)
{
    assert(x->up == NULL); /* released first */
    assert(x->reason < HTTP_REASON_COUNT);
    if (trace)
        fprintf(stderr, "logged stream %u: %s %s status %d reason %s in %llu out %llu\n",
                x->stream_id, x->req.method != NULL ? x->req.method : "-",
                x->req.target != NULL ? x->req.target : "-",
                x->reason != HTTP_REASON_NONE && !x->resp_final ? http_reason_status(x->reason)
                                                                : x->resp.status,
                http_reason_name(x->reason), (unsigned long long)x->req_bytes,
                (unsigned long long)x->resp_bytes);
}

static const struct h2_session_ops fake_ops = {
    .upstream_start = fake_start,
    .upstream_request_body = fake_request_body,
    .upstream_response_taken = fake_response_taken,
    .upstream_handshake_done = fake_handshake_done,
    .upstream_release = fake_release,
    .exchange_log = fake_log,
    .covers = fake_covers,
    .schedule = fake_schedule,
    .report_abuse = fake_report,
};

/* backends_turn gives every live backend a turn; one may end (fail) during
 * its own, never another's. */
static void backends_turn(void)
{
    struct fake_backend *next;
    for (struct fake_backend *b = backends; b != NULL; b = next) {
        next = b->next;
        turn(b);
    }
}

/* ---- the client ----------------------------------------------------------------- */

/* What the client sees of the frames sent: they are read one by one, and
 * the last stream id of each GOAWAY is kept (INT32_MAX in the drain
 * notice's). It never grows, and no stream above it may ever have reached
 * a backend, whether it started before the GOAWAY went out or after: RFC
 * 9113 6.8 lets the client send such streams again elsewhere. */
struct client_view {
    uint8_t head[9 + 8]; /* a frame's header and a GOAWAY's first 8 bytes */
    size_t head_len;
    size_t payload_left;
    int32_t goaway_last_id; /* INT32_MAX: no GOAWAY but the notice */
};

static struct client_view view;

static void view_frames(const uint8_t *out, size_t len)
{
    while (len > 0) {
        if (view.head_len < 9) {
            size_t n = 9 - view.head_len < len ? 9 - view.head_len : len;
            memcpy(view.head + view.head_len, out, n);
            view.head_len += n;
            out += n;
            len -= n;
            if (view.head_len < 9)
                return;
            view.payload_left = (size_t)view.head[0] << 16 | view.head[1] << 8 | view.head[2];
            assert(view.payload_left <= 16384); /* SETTINGS_MAX_FRAME_SIZE's default */
        }
        bool goaway = view.head[3] == NGHTTP2_GOAWAY;
        size_t n = view.payload_left < len ? view.payload_left : len;
        if (goaway && view.head_len < sizeof(view.head)) {
            size_t copy =
                sizeof(view.head) - view.head_len < n ? sizeof(view.head) - view.head_len : n;
            memcpy(view.head + view.head_len, out, copy);
            view.head_len += copy;
        }
        out += n;
        len -= n;
        view.payload_left -= n;
        if (view.payload_left > 0)
            return;
        if (goaway) {
            assert(view.head_len == sizeof(view.head));
            const uint8_t *p = view.head + 9;
            int32_t last =
                (int32_t)((uint32_t)(p[0] & 0x7f) << 24 | p[1] << 16 | p[2] << 8 | p[3]);
            /* RFC 9113 6.8: the last stream id never grows. nghttp2 keeps
             * to that only against GOAWAYs already sent: a connection
             * error found in the same read as a graceful GOAWAY (the
             * stream cap's, the drain's) goes out with nghttp2's last
             * processed id, which may be higher (see fuzz/README.md). */
            uint32_t code = (uint32_t)p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7];
            assert(code != NGHTTP2_NO_ERROR || last <= view.goaway_last_id);
            if (last < view.goaway_last_id)
                view.goaway_last_id = last;
            if (trace)
                fprintf(stderr, "GOAWAY last stream %d, code %u\n", last, code);
        }
        view.head_len = 0;
    }
}

/* send_all takes everything the session would send, as the front's writes
 * do on a client that reads, and gives the frame buffer's pages back when
 * the connection is quiet (release_idle_memory). */
static void send_all(struct h2_front *f)
{
    const uint8_t *out;
    ssize_t n;
    int rounds = 0;

    while ((n = nghttp2_session_mem_send(f->session, &out)) > 0 && ++rounds < 10000) {
        h2_mem_note_output(&f->mem);
        view_frames(out, (size_t)n);
    }
    assert(n >= 0 || n == NGHTTP2_ERR_NOMEM);
    if (highest_started_id > view.goaway_last_id)
        fprintf(stderr, "stream %d went to a backend, above the GOAWAY's last stream id %d\n",
                highest_started_id, view.goaway_last_id);
    assert(highest_started_id <= view.goaway_last_id);
    if (f->num_streams == 0 && !nghttp2_session_want_write(f->session) &&
        h2_mem_releasable(&f->mem))
        h2_mem_release(&f->mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = NGHTTP2_CLIENT_MAGIC;

    if (trace < 0)
        trace = getenv("H2_SESSION_TRACE") != NULL;
    if (size < HEADER_LEN)
        return 0;
    size_t chunk = (data[0] & 0x7f) == 0 ? size : (size_t)(data[0] & 0x7f) * 16;
    bool add_preface = data[0] & 0x80;
    configure(data[1]);
    unsigned handshake_at = data[2] & 0x0f, notice_at = data[2] >> 4;
    script = data + 3;
    num_started = 0;
    num_reports = 0;
    highest_started_id = 0;
    view = (struct client_view){.goaway_last_id = INT32_MAX};
    data += HEADER_LEN;
    size -= HEADER_LEN;

    struct h2_front *f = calloc(1, sizeof(*f));
    assert(f != NULL);
    assert(h2_session_init(f, &fake_conn, &fake_ops) == 0);
    send_all(f);
    if (add_preface && h2_session_recv(f, (const uint8_t *)preface, sizeof(preface) - 1) < 0)
        goto out;
    size_t at = 0;
    for (unsigned reads = 0, final_turns = 0; final_turns < FINAL_TURNS; reads++) {
        if (at < size) {
            size_t len = size - at < chunk ? size - at : chunk;
            ssize_t rv = h2_session_recv(f, data + at, len);
            at += len;
            if (rv < 0 || h2_limits_must_close(&f->limits)) {
                send_all(f); /* the GOAWAY, then the connection ends */
                break;
            }
            assert((size_t)rv == len);
        } else {
            final_turns++;
        }
        send_all(f);
        if (reads == handshake_at && fake_conn.handshake_completing) {
            fake_conn.handshake_completing = false;
            h2_session_handshake_done(f);
        }
        if (reads == notice_at)
            h2_session_notice(f);
        backends_turn();
        h2_session_take(f);
        send_all(f);
        if (h2_limits_must_close(&f->limits))
            break;
        if (!nghttp2_session_want_read(f->session) && !nghttp2_session_want_write(f->session) &&
            f->state != H2_NOTICE)
            break;
        if (at == size && backends == NULL && f->taken == NULL)
            break;
    }
out:
    if (trace)
        fprintf(stderr, "end: state %d, limits fired %d (cause %d), %u reports\n", f->state,
                f->limits.fired, f->limits.cause, num_reports);
    h2_session_cleanup(f);
    assert(backends == NULL);
    free(f);
    return 0;
}
