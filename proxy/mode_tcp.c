/* mode_tcp: bytes forwarded unchanged between the client and one backend
 * connection.
 *
 * States, in order: TCP_CONNECTING (a backend connect, bounded by
 * timeouts.connect; the client is not read, so its bytes wait in the
 * kernel) and TCP_FORWARDING (bounded by timeouts.idle while both directions
 * are open, by timeouts.half_closed once one has ended).
 *
 * Each direction is a flow (up: client to backend, down: backend to client)
 * with an explicit state:
 *
 *   FLOW_OPEN     the source is read and the destination written.
 *   FLOW_ENDING   the source ended: what is buffered is written, then the
 *                 end is passed on (close_notify toward the client,
 *                 shutdown(SHUT_WR) toward the backend).
 *   FLOW_DISCARD  up only: the backend stopped taking bytes (EPIPE,
 *                 ECONNRESET) while the client was still sending. Its answer
 *                 may already be on the way, often a 413 or 401 to an
 *                 upload: the client's input is read and dropped (at most
 *                 DISCARD_MAX_BYTES for DISCARD_MAX_MS) so that it does not
 *                 pile up unread, while down delivers everything the backend
 *                 sent until its EOF or error.
 *   FLOW_DONE     nothing more moves this way.
 *
 * A flow reads only while its buffer is empty: a side whose peer cannot
 * keep up is not read, which bounds memory and pushes back on the sender
 * through TCP. The buffer (FORWARD_BUF_LEN) exists only while it holds
 * bytes, so an idle connection holds none. The connection ends when both
 * flows are done.
 *
 * backend.proxy_protocol: the PROXY header is the first thing in up's
 * buffer, so it reaches the backend before any client byte; it is not
 * client data and is not counted in bytes_in.
 *
 * Ownership. The mode state (struct tcp_forward) belongs to its conn from
 * start until free; it owns the backend connection and both buffers. */
#include "mode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "backend_conn.h"
#include "backend_group.h"
#include "clock.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "proxy_header.h"
#include "worker.h"

/* One TLS record of plaintext: a full buffer becomes one full record. */
#define FORWARD_BUF_LEN 16384
/* Buffers moved per direction before yielding to other connections. */
#define FORWARD_ROUNDS 16
/* Dynamic record sizing. After the client side has been quiet for
 * SMALL_RECORDS_AFTER_IDLE_MS, the first SMALL_RECORDS_BUDGET bytes go out in
 * records that fit one TCP segment (a 1460-byte MSS less TLS and TCP option
 * overhead), so a browser can decrypt the first bytes of a response without
 * waiting for a whole 16 KiB record to arrive; bulk transfers then use full
 * records, which cost the fewest bytes and syscalls. */
#define SMALL_RECORD_LEN 1360
#define SMALL_RECORDS_BUDGET (10 * SMALL_RECORD_LEN)
#define SMALL_RECORDS_AFTER_IDLE_MS 1000
/* FLOW_DISCARD's bounds. */
#define DISCARD_MAX_BYTES (1024 * 1024)
#define DISCARD_MAX_MS 5000

enum tcp_state { TCP_CONNECTING, TCP_FORWARDING };

enum flow_state { FLOW_OPEN, FLOW_ENDING, FLOW_DISCARD, FLOW_DONE };

struct flow {
    uint8_t *buf;        /* NULL while empty */
    uint32_t start, end; /* pending bytes are buf[start, end) */
    enum flow_state state;
};

struct tcp_forward {
    enum tcp_state state;
    struct backend_conn *backend;
    const struct net_addr *backend_server; /* |server|'s, or the adopted connection's */
    const struct cfg_backend *group;       /* chosen by the routes from the SNI */
    /* Picked (backend_group_pick), or handed over with an adopted
     * connection; counted active until tcp_free. */
    struct backend_server *server;
    /* Servers whose connect failed, each with a reference, not tried again. */
    struct backend_server *tried[CFG_BACKEND_RETRIES_MAX + 1];
    size_t num_tried;
    struct flow up;                        /* client -> backend */
    struct flow down;                      /* backend -> client */
    /* Why the backend stopped taking bytes, while up discards: the reason
     * logged at the end unless down ends worse. */
    enum end_reason backend_write_failure;
    bool out_of_memory; /* connect_next could not allocate */
    uint32_t discard_budget;
    uint32_t small_records_budget; /* bytes still to send in small records */
    uint64_t discard_until_ms;
    uint64_t connect_started_us;
    uint64_t last_activity_ms;
    uint64_t last_client_write_ms;
};

static void on_backend_event(struct backend_conn *b, short what, void *arg);

static struct tcp_forward *tcp_of(const struct conn *c) { return c->mode_state; }

static uint32_t pending(const struct flow *f) { return f->end - f->start; }

static void flow_drop_buffer(struct flow *f)
{
    free(f->buf);
    f->buf = NULL;
    f->start = f->end = 0;
}

/* take_buffer makes sure |f| has a buffer to read into; -1 if out of memory. */
static int take_buffer(struct flow *f)
{
    if (f->buf == NULL && (f->buf = malloc(FORWARD_BUF_LEN)) == NULL)
        return -1;
    f->start = f->end = 0;
    return 0;
}

/* consumed records that |n| pending bytes of |f| went out, dropping the
 * buffer once empty. */
static void consumed(struct flow *f, size_t n)
{
    f->start += (uint32_t)n;
    if (f->start == f->end)
        flow_drop_buffer(f);
}

/* ---- deadlines ------------------------------------------------------------ */

/* arm_deadline sets the conn's deadline for where the forwarding stands. */
static void arm_deadline(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    bool half_closed = t->up.state != FLOW_OPEN || t->down.state != FLOW_OPEN;
    uint64_t at = t->last_activity_ms +
                  (half_closed ? c->cfg->half_closed_timeout_ms : c->cfg->idle_timeout_ms);
    if (t->up.state == FLOW_DISCARD && t->discard_until_ms < at)
        at = t->discard_until_ms;
    conn_set_deadline(c, at);
}

/* ---- the client side -------------------------------------------------------- */

/* read_client reads plaintext from the client into up's buffer, or drops it
 * while up discards. */
static int read_client(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    struct flow *f = &t->up;
    struct tls_io_failure failure;
    size_t n = 0;

    /* A read that can only find nothing costs no buffer (and no syscall). */
    if (transport_wait_readable(&c->client))
        return CONN_OK;
    if (take_buffer(f) != 0)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    enum tls_io_result result =
        transport_read(&c->client, f->buf, FORWARD_BUF_LEN, &n, &failure);
    if (c->handshake_completing)
        conn_handshake_progress(c);
    switch (result) {
    case TLS_IO_OK:
        t->last_activity_ms = clock_now_ms();
        if (f->state == FLOW_DISCARD) {
            flow_drop_buffer(f);
            t->discard_budget -= n < t->discard_budget ? (uint32_t)n : t->discard_budget;
            if (t->discard_budget == 0)
                f->state = FLOW_DONE;
            return CONN_OK;
        }
        f->end = (uint32_t)n;
        c->bytes_in += n;
        metrics_bytes_client_to_backend(c->listener->metrics, n);
        return CONN_OK;
    case TLS_IO_WANT_READ:
    case TLS_IO_WANT_WRITE:
        break;
    case TLS_IO_EOF:
        /* timeouts.half_closed counts from the half-close, not from the
         * last bytes before it: the backend gets that long to answer. */
        t->last_activity_ms = clock_now_ms();
        f->state = f->state == FLOW_DISCARD ? FLOW_DONE : FLOW_ENDING;
        break;
    case TLS_IO_ERROR:
        /* The client's stream is cut short: the backend must not take what
         * it got for a complete request, so its side is reset. */
        return conn_close(c, failure.reason, &failure);
    }
    flow_drop_buffer(f);
    return CONN_OK;
}

/* write_client sends down's pending bytes to the client as TLS records. */
static int write_client(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    struct flow *f = &t->down;
    struct tls_io_failure failure;
    size_t len = pending(f), n = 0;

    if (t->small_records_budget > 0 && len > SMALL_RECORD_LEN)
        len = SMALL_RECORD_LEN;
    switch (transport_write(&c->client, f->buf + f->start, len, &n, &failure)) {
    case TLS_IO_OK:
        c->bytes_out += n;
        metrics_bytes_backend_to_client(c->listener->metrics, n);
        t->small_records_budget -=
            n < t->small_records_budget ? (uint32_t)n : t->small_records_budget;
        t->last_client_write_ms = t->last_activity_ms = clock_now_ms();
        consumed(f, n);
        return CONN_OK;
    case TLS_IO_WANT_READ:
    case TLS_IO_WANT_WRITE:
        return CONN_OK;
    case TLS_IO_EOF:
    case TLS_IO_ERROR:
        break;
    }
    return conn_close(c, failure.reason, &failure);
}

/* ---- the backend side ------------------------------------------------------- */

/* backend_failure builds the failure of a backend socket call from errno. */
static struct tls_io_failure backend_failure(void)
{
    return (struct tls_io_failure){.reason = END_BACKEND_RESET, .detail = strerror(errno)};
}

/* start_discarding turns up to FLOW_DISCARD: the backend takes no more
 * bytes, and what the client still sends is read and dropped. */
static void start_discarding(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);

    flow_drop_buffer(&t->up);
    t->up.state = FLOW_DISCARD;
    t->backend_write_failure = END_BACKEND_RESET;
    t->discard_budget = DISCARD_MAX_BYTES;
    t->discard_until_ms = clock_now_ms() + DISCARD_MAX_MS;
}

/* write_backend sends up's pending bytes to the backend. A backend that no
 * longer takes them may still be answering: up starts discarding and down
 * goes on. */
static int write_backend(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    struct flow *f = &t->up;
    size_t n = 0;

    switch (backend_conn_send(t->backend, f->buf + f->start, pending(f), &n)) {
    case BACKEND_IO_OK:
        t->last_activity_ms = clock_now_ms(); /* a moving transfer is not idle */
        consumed(f, n);
        return CONN_OK;
    case BACKEND_IO_WAIT:
    case BACKEND_IO_EOF:
        return CONN_OK;
    case BACKEND_IO_ERROR:
        break;
    }
    struct log_line line;
    conn_log_begin(&line, c, LOG_DEBUG, "backend_write_failed");
    log_str(&line, "error", strerror(errno));
    log_int(&line, "discarding", (long long)pending(f));
    log_end(&line);
    start_discarding(c);
    return CONN_OK;
}

/* read_backend reads from the backend into down's buffer. */
static int read_backend(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    struct flow *f = &t->down;
    size_t n = 0;

    if (backend_conn_wait_readable(t->backend))
        return CONN_OK;
    if (take_buffer(f) != 0)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    switch (backend_conn_recv(t->backend, f->buf, FORWARD_BUF_LEN, &n)) {
    case BACKEND_IO_OK:
        f->end = (uint32_t)n;
        t->last_activity_ms = clock_now_ms();
        /* Decided here, while nothing is being written: a retried
         * SSL_write must not shrink. */
        if (t->last_activity_ms - t->last_client_write_ms >= SMALL_RECORDS_AFTER_IDLE_MS)
            t->small_records_budget = SMALL_RECORDS_BUDGET;
        return CONN_OK;
    case BACKEND_IO_WAIT:
        break;
    case BACKEND_IO_EOF:
        t->last_activity_ms = clock_now_ms(); /* as for the client's EOF */
        f->state = FLOW_ENDING;
        break;
    case BACKEND_IO_ERROR: {
        if (t->up.state != FLOW_DONE) {
            /* The client is still sending: most often a server that
             * answered early and closed with the upload unread, which the
             * kernel turns into a reset. Everything it sent has been
             * delivered; the client gets close_notify and a lingering close
             * rather than a reset that would wipe out that answer. */
            if (t->up.state != FLOW_DISCARD)
                start_discarding(c);
            flow_drop_buffer(f);
            f->state = FLOW_ENDING;
            return CONN_OK;
        }
        /* The client's side had ended: nothing is lost by cutting, and the
         * missing close_notify tells it the answer may be cut short. */
        struct tls_io_failure failure = backend_failure();
        return conn_close(c, END_BACKEND_RESET, &failure);
    }
    }
    flow_drop_buffer(f);
    return CONN_OK;
}

/* ---- forwarding ---------------------------------------------------------------- */

/* pass_on_eof tells the destination of |f| that its source ended. */
static int pass_on_eof(struct conn *c, struct flow *f)
{
    struct tcp_forward *t = tcp_of(c);

    if (f == &t->up) {
        /* The backend may still answer: only our write side closes. */
        backend_conn_shutdown_write(t->backend);
        f->state = FLOW_DONE;
        return CONN_OK;
    }
    enum end_reason failed = END_CLIENT_RESET;
    switch (transport_close_notify(&c->client, &failed)) {
    case TLS_IO_OK:
        f->state = FLOW_DONE;
        return CONN_OK;
    case TLS_IO_WANT_READ:
        /* 0-RTT: the client's Finished must come first, and up's reads
         * bring it (flow_blocked holds this flow until then). Waiting for
         * readability here would spin while up is not reading. A client
         * that never finishes ends through read_client or the handshake
         * deadline. */
        c->client.write_wait = TRANSPORT_WAIT_NONE;
        return CONN_OK;
    case TLS_IO_WANT_WRITE:
        return CONN_OK;
    default:
        return conn_close(c, failed, NULL);
    }
}

/* flow_blocked returns true while |f| cannot move: its source or
 * destination waits for readiness, or it has nothing more to do. */
static bool flow_blocked(const struct conn *c, const struct flow *f)
{
    const struct tcp_forward *t = tcp_of(c);
    bool up = f == &t->up;

    switch (f->state) {
    case FLOW_DONE:
        return true;
    case FLOW_DISCARD:
        return c->client.read_wait != TRANSPORT_WAIT_NONE;
    case FLOW_OPEN:
    case FLOW_ENDING:
        break;
    }
    if (!up && pending(f) == 0 && f->state == FLOW_ENDING && SSL_in_init(c->client.ssl))
        return true; /* close_notify waits for the 0-RTT handshake to finish */
    if (pending(f) > 0 || f->state == FLOW_ENDING)
        return up ? t->backend->write_blocked : c->client.write_wait != TRANSPORT_WAIT_NONE;
    return up ? c->client.read_wait != TRANSPORT_WAIT_NONE : t->backend->read_blocked;
}

typedef int (*transfer_fn)(struct conn *c);

/* pump moves |f| forward until it blocks, ends, or has had FORWARD_ROUNDS
 * turns. It returns CONN_CLOSED, or CONN_OK with |*out_more| set when it
 * stopped only to let other connections run. */
static int pump(struct conn *c, struct flow *f, transfer_fn read_source,
                transfer_fn write_destination, bool *out_more)
{
    for (int round = 0; round < FORWARD_ROUNDS; round++) {
        if (flow_blocked(c, f))
            return CONN_OK;
        int result;
        if (pending(f) > 0)
            result = write_destination(c);
        else if (f->state == FLOW_ENDING)
            result = pass_on_eof(c, f);
        else
            result = read_source(c);
        if (result != CONN_OK)
            return CONN_CLOSED;
    }
    *out_more = true;
    return CONN_OK;
}

/* finish ends the connection once both flows are done and the client has
 * every byte; it returns CONN_OK when it is not time yet. */
static int finish(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);

    if (t->down.state != FLOW_DONE || tls_io_has_output(&c->client.sock))
        return CONN_OK;
    /* The backend stopped taking bytes and its answer is delivered: the
     * client may still be sending, so the close lingers. */
    if (t->backend_write_failure != END_DONE)
        return conn_linger(c, t->backend_write_failure);
    if (t->up.state != FLOW_DONE)
        return CONN_OK;
    return conn_close(c, END_DONE, NULL);
}

/* forward runs both flows, sends the records they produced in one write,
 * and ends the connection or waits for the sockets. */
static int forward(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    bool more = false;

    transport_cork(&c->client);
    if (pump(c, &t->up, read_client, write_backend, &more) != CONN_OK)
        return CONN_CLOSED;
    if (pump(c, &t->down, read_backend, write_client, &more) != CONN_OK)
        return CONN_CLOSED;
    if (transport_flush(&c->client) == TLS_IO_ERROR) {
        struct tls_io_failure failure = {.reason = END_CLIENT_RESET,
                                         .detail = strerror(c->client.sock.last_errno)};
        return conn_close(c, END_CLIENT_RESET, &failure);
    }
    if (finish(c) != CONN_OK)
        return CONN_CLOSED;
    conn_watch_client(c);
    backend_conn_watch(t->backend, 0);
    arm_deadline(c);
    if (more)
        conn_resume_later(c);
    return CONN_OK;
}

/* ---- connecting ------------------------------------------------------------------ */

static int connect_next(struct conn *c);

/* backend_failed logs why the backend could not be reached and tries the
 * next server of the group, up to backend.retries times; when none is left
 * it ends the connection gracefully (tcp mode has no error page: the client
 * sees close_notify). No client byte was read yet, so none is lost. */
static int backend_failed(struct conn *c, enum end_reason reason, int err)
{
    struct tcp_forward *t = tcp_of(c);
    const struct cfg_backend *group = t->group;
    const char *error = reason == END_BACKEND_CONNECT_TIMEOUT ? "timeout" : strerror(err);
    struct log_line line;

    conn_log_begin(&line, c, LOG_WARN, "backend_connect_failed");
    log_str(&line, "backend", t->backend_server != NULL ? t->server->name : "?");
    log_str(&line, "error", error);
    log_end(&line);
    metrics_backend_connect_failed(c->listener->metrics, reason == END_BACKEND_CONNECT_TIMEOUT
                                                             ? METRICS_CONNECT_TIMEOUT
                                                             : METRICS_CONNECT_ERROR);
    backend_server_connect_failed(t->server, group, error);
    backend_conn_free(t->backend, true);
    t->backend = NULL;
    atomic_fetch_sub(&t->server->active, 1); /* the reference stays, in tried */
    t->tried[t->num_tried++] = t->server;
    t->server = NULL;
    t->backend_server = NULL;
    if (t->num_tried <= group->retries && connect_next(c) == 0)
        return CONN_OK;
    return conn_linger(c, t->out_of_memory ? END_OUT_OF_MEMORY : reason);
}

/* unavailable refuses the client right after its handshake: no server of
 * the group is up, so a connect timeout would only make it wait. */
static int unavailable(struct conn *c)
{
    if (worker_log_failure(c->worker, END_BACKEND_UNAVAILABLE)) {
        struct log_line line;
        conn_log_begin(&line, c, LOG_WARN, "backend_unavailable");
        log_str(&line, "backend", tcp_of(c)->group->name);
        log_end(&line);
    }
    return conn_linger(c, END_BACKEND_UNAVAILABLE);
}

/* connect_next picks a server not tried yet and starts connecting to it:
 * 0, or -1 when there is none (or no socket could be made for any). */
static int connect_next(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    const struct cfg_backend *group = t->group;
    enum backend_pick_result result;

    /* backend.source: client connects from the client's address, so only to
     * servers of its family. */
    const struct sockaddr *source = conn_backend_source(c);
    int family = source != NULL ? source->sa_family : AF_UNSPEC;

    while ((t->server = backend_group_pick(generation_group(c->gen, group), group, family,
                                           t->tried, t->num_tried, &result)) != NULL) {
        t->backend_server = &t->server->addr;
        t->connect_started_us = metrics_clock_us();
        t->backend = backend_conn_open_from(c->worker->base, t->backend_server, source,
                                            on_backend_event, c);
        if (t->backend != NULL) {
            conn_set_deadline(c, clock_now_ms() + c->cfg->connect_timeout_ms);
            return 0;
        }
        int err = errno;
        /* Not the server's fault: it stays t->server, for tcp_free. */
        if (err == ENOMEM) {
            t->out_of_memory = true;
            return -1;
        }
        char server[NET_ADDR_TEXT_MAX];
        struct log_line line;
        conn_log_begin(&line, c, LOG_WARN, "backend_connect_failed");
        log_str(&line, "backend", net_addr_format(t->backend_server, server, sizeof(server)));
        log_str(&line, "error", strerror(err));
        log_end(&line);
        metrics_backend_connect_failed(c->listener->metrics, METRICS_CONNECT_ERROR);
        /* Out of descriptors is this process's failure, not the server's:
         * no mark against it, and no other server would fare better. */
        bool local = backend_conn_failed_locally(err);
        if (!local)
            backend_server_connect_failed(t->server, group, strerror(err));
        atomic_fetch_sub(&t->server->active, 1);
        t->tried[t->num_tried++] = t->server;
        t->server = NULL;
        t->backend_server = NULL;
        if (local || t->num_tried > group->retries)
            break;
    }
    return -1;
}

static int tcp_start(struct conn *c)
{
    struct tcp_forward *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    c->mode_state = t;
    t->state = TCP_CONNECTING;
    t->backend_write_failure = END_DONE;
    /* The SNI is the ClientHello's, fixed for the connection: one route
     * decision per connection. */
    t->group = route_for_sni(c->cfg->routes, c->cfg->num_routes,
                             SSL_get_servername(c->client.ssl, TLSEXT_NAMETYPE_host_name),
                             c->cfg->backend);
    /* The PROXY header goes first in up's buffer, whichever server the
     * connect reaches: nothing is written before a connect succeeds. */
    if (t->group->proxy_protocol != 0) {
        if (take_buffer(&t->up) != 0)
            return conn_close(c, END_OUT_OF_MEMORY, NULL);
        t->up.end = (uint32_t)proxy_header_for_backend(c, t->up.buf, FORWARD_BUF_LEN);
        if (t->up.end == 0)
            return conn_close(c, END_OUT_OF_MEMORY, NULL);
    }
    if (connect_next(c) != 0)
        return t->out_of_memory    ? conn_linger(c, END_OUT_OF_MEMORY)
               : t->num_tried == 0 ? unavailable(c)
                                   : conn_linger(c, END_BACKEND_CONNECT_FAILED);
    /* The client is not read while connecting: its bytes wait in the
     * kernel, and a connect that fails has consumed none of them. */
    return CONN_OK;
}

static int finish_connect(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);

    int err = backend_conn_connect_result(t->backend);
    if (err == EINPROGRESS)
        return CONN_OK;
    if (err != 0)
        return backend_failed(c, END_BACKEND_CONNECT_FAILED, err);
    t->state = TCP_FORWARDING;
    backend_server_connected(t->server);
    metrics_backend_connected(c->listener->metrics, metrics_clock_us() - t->connect_started_us);
    t->last_activity_ms = clock_now_ms();
    return forward(c);
}

/* ---- adoption (after a WebSocket upgrade in http mode) -------------------------------- */

/* flow_fill puts the bytes of |from| (drained) into |f|'s buffer, which is
 * larger than FORWARD_BUF_LEN when they need it; -1 if out of memory. */
static int flow_fill(struct flow *f, struct evbuffer *from)
{
    size_t len = from != NULL ? evbuffer_get_length(from) : 0;

    if (len == 0)
        return 0;
    if (len > UINT32_MAX ||
        (f->buf = malloc(len > FORWARD_BUF_LEN ? len : FORWARD_BUF_LEN)) == NULL)
        return -1;
    evbuffer_remove(from, f->buf, len);
    f->start = 0;
    f->end = (uint32_t)len;
    return 0;
}

int mode_tcp_adopt(struct conn *c, struct backend_conn *backend, struct backend_server *server,
                   struct evbuffer *to_client, struct evbuffer *to_backend)
{
    struct tcp_forward *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        backend_conn_free(backend, true);
        backend_server_release(server);
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    }
    c->mode = &mode_tcp;
    c->mode_state = t;
    t->state = TCP_FORWARDING;
    t->backend_write_failure = END_DONE;
    t->backend = backend;
    t->backend_server = backend->server;
    t->server = server; /* released in tcp_free, when the tunnel ends */
    backend_conn_set_owner(backend, on_backend_event, c);
    if (flow_fill(&t->up, to_backend) != 0 || flow_fill(&t->down, to_client) != 0)
        return conn_close(c, END_OUT_OF_MEMORY, NULL);
    t->last_activity_ms = t->last_client_write_ms = clock_now_ms();
    return forward(c);
}

/* ---- events ------------------------------------------------------------------------ */

static void on_backend_event(struct backend_conn *b, short what, void *arg)
{
    struct conn *c = arg;

    if (tcp_of(c)->state == TCP_CONNECTING)
        finish_connect(c);
    else
        forward(c);
}

static int tcp_on_client(struct conn *c)
{
    /* While connecting, the client socket is not watched for reads; a
     * pending flush of handshake records is all there is to do. */
    if (tcp_of(c)->state == TCP_CONNECTING)
        return CONN_OK;
    return forward(c);
}

static int tcp_on_resume(struct conn *c)
{
    return tcp_of(c)->state == TCP_FORWARDING ? forward(c) : CONN_OK;
}

static int tcp_on_deadline(struct conn *c)
{
    struct tcp_forward *t = tcp_of(c);
    uint64_t now = clock_now_ms();

    if (t->state == TCP_CONNECTING)
        return backend_failed(c, END_BACKEND_CONNECT_TIMEOUT, ETIMEDOUT);
    if (t->up.state == FLOW_DISCARD && now >= t->discard_until_ms) {
        /* Long enough: what the client still sends is not waited for. */
        t->up.state = FLOW_DONE;
        return forward(c);
    }
    bool half_closed = t->up.state != FLOW_OPEN || t->down.state != FLOW_OPEN;
    uint64_t limit = half_closed ? c->cfg->half_closed_timeout_ms : c->cfg->idle_timeout_ms;
    if (now - t->last_activity_ms >= limit)
        return conn_linger(c, half_closed ? END_HALF_CLOSED_TIMEOUT : END_IDLE_TIMEOUT);
    arm_deadline(c);
    return CONN_OK;
}

static int tcp_drain(struct conn *c)
{
    /* Bytes carry no message boundaries: a draining worker lets each
     * stream run to its end, up to drain_timeout. */
    return CONN_OK;
}

static const char *tcp_state_name(const struct conn *c)
{
    return tcp_of(c)->state == TCP_CONNECTING ? "connecting" : "forwarding";
}

static void tcp_free(struct conn *c, bool abort)
{
    struct tcp_forward *t = tcp_of(c);

    if (t == NULL)
        return;
    /* Bytes carry no message boundaries: unless the client ended its
     * stream, what the backend got may be a cut-short request, and a reset
     * says so where a FIN would pass it for complete. */
    backend_conn_free(t->backend, abort || t->up.state != FLOW_DONE);
    backend_server_release(t->server);
    for (size_t i = 0; i < t->num_tried; i++)
        backend_server_unref(t->tried[i]);
    flow_drop_buffer(&t->up);
    flow_drop_buffer(&t->down);
    free(t);
    c->mode_state = NULL;
}

const struct mode_ops mode_tcp = {
    .name = "tcp",
    .start = tcp_start,
    .on_client = tcp_on_client,
    .on_resume = tcp_on_resume,
    .on_deadline = tcp_on_deadline,
    .drain = tcp_drain,
    .state_name = tcp_state_name,
    .free = tcp_free,
};

const struct mode_ops *mode_for(const struct conn *c)
{
    if (c->cfg->mode == CFG_MODE_TCP)
        return &mode_tcp;
    if (c->cfg->mode == CFG_MODE_REDIRECT)
        return &mode_redirect;
    const uint8_t *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c->client.ssl, &alpn, &alpn_len);
    if (alpn_len == 2 && memcmp(alpn, "h2", 2) == 0)
        return &mode_h2;
    return &mode_h1;
}
