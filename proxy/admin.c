/* admin: the admin endpoint's thread, connections and HTTP. See admin.h.
 *
 * Ownership. struct admin owns its event loop, the listening socket, the
 * stop pipe and every admin_conn; the admin thread alone touches them while
 * it runs, and admin_stop after joining it. An admin_conn owns its socket,
 * its two events and its response; only conn_close ends it, and a function
 * that may have closed the conn returns CONN_CLOSED.
 *
 * A connection goes READING (the request, into a fixed buffer) -> WRITING
 * (the whole response) -> LINGERING (our side shut, reading until the
 * client's EOF) -> closed. The lingering matters: closing a socket that
 * still has unread client bytes sends an RST, and an RST can destroy the
 * response in flight before the client reads it, which is exactly the
 * response that explains an oversize or garbage request.
 *
 * Slots. Probes must get in even when slow clients hold every slot: when a
 * connection arrives with all max_conns taken, the oldest connection still
 * READING is closed to make room (it has not even asked yet, so nothing it
 * waits for is lost), and every connection still READING then has
 * BUSY_REQUEST_MS at most to finish its request. Connections past READING
 * are never closed for room: each ends within its response's write and
 * LINGER_MS. Only when every slot is past READING does accepting pause. */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "log.h"

#define ADMIN_BACKLOG 64
/* Connections accepted per readiness event before the others get a turn. */
#define ACCEPT_BATCH 16
/* How long accepting pauses when the process is out of descriptors. */
#define ACCEPT_RETRY_MS 100
/* How long, after the response, the client has to close its side. */
#define LINGER_MS 1000
/* Reads per readiness event while lingering, so a client that floods bytes
 * cannot hold the thread. */
#define LINGER_READS 16
/* What a partial request has left once every slot has been taken. */
#define BUSY_REQUEST_MS 2000

enum conn_state { CONN_READING, CONN_WRITING, CONN_LINGERING };
enum { CONN_OK = 0, CONN_CLOSED = -1 };

/* enum parse_result is where the request stands after the bytes so far. */
enum parse_result {
    PARSE_INCOMPLETE,  /* valid so far; more bytes needed */
    PARSE_DONE,        /* the request line and headers are complete */
    PARSE_BAD,         /* not HTTP/1.x: 400 */
    PARSE_BAD_VERSION, /* a well-formed request of another HTTP version: 505 */
};

struct admin_conn {
    struct admin_conn *prev, *next;
    struct admin *admin;
    int fd;
    enum conn_state state;
    struct event io_ev;
    short io_events; /* what io_ev is armed for; 0: not armed */
    struct event timer_ev;
    uint64_t deadline_ms;      /* when timer_ev fires, clock_now_ms() time */
    struct evbuffer *response; /* NULL until the request is answered */

    /* The parser's position: bytes before |line_start| are whole,
     * validated lines; bytes before |scan_pos| have been looked at. */
    size_t request_len;
    size_t line_start;
    size_t scan_pos;
    bool in_method;         /* still in the request line's first token */
    bool have_request_line; /* method and target below are set */
    size_t method_len;
    size_t target_start, target_len;
    char request[ADMIN_REQUEST_MAX];
};

struct admin {
    struct net_addr addr;
    struct admin_handlers handlers;
    void *arg;
    uint32_t timeout_ms;
    uint32_t max_conns;

    int listen_fd;
    int stop_pipe[2]; /* admin_stop writes a byte: the loop ends */
    struct event_base *base;
    struct event *accept_ev;
    struct event *stop_ev;
    struct event *retry_timer; /* accept again after running out of descriptors */
    bool accepting;            /* accept_ev is armed */
    bool full_logged;          /* the current pause at max_conns has been logged */

    struct admin_conn *conns; /* newest first */
    uint32_t num_conns;

    pthread_t thread;
    bool started;
};

static void on_conn_io(evutil_socket_t fd, short what, void *arg);

bool admin_addr_is_local(const struct net_addr *addr)
{
    switch (addr->ss.ss_family) {
    case AF_UNIX:
        return true;
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr->ss;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    case AF_INET6: {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    default:
        return false;
    }
}

static void timeval_from_ms(struct timeval *tv, uint32_t ms)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

/* ---- accept and close ------------------------------------------------------------ */

static void set_accepting(struct admin *a, bool on)
{
    if (a->accepting == on)
        return;
    a->accepting = on;
    if (on)
        event_add(a->accept_ev, NULL);
    else
        event_del(a->accept_ev);
}

static int conn_close(struct admin_conn *c)
{
    struct admin *a = c->admin;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    a->num_conns--;
    if (c->io_events)
        event_del(&c->io_ev);
    event_del(&c->timer_ev);
    close(c->fd);
    if (c->response != NULL)
        evbuffer_free(c->response);
    free(c);

    /* A pause for descriptors ends with its timer; a pause at max_conns
     * ends here. */
    if (!a->accepting && !evtimer_pending(a->retry_timer, NULL))
        set_accepting(a, true);
    return CONN_CLOSED;
}

/* watch arms the connection's socket event for |events| (EV_READ or
 * EV_WRITE). */
static void watch(struct admin_conn *c, short events)
{
    if (c->io_events == events)
        return;
    if (c->io_events)
        event_del(&c->io_ev);
    c->io_events = events;
    event_assign(&c->io_ev, c->admin->base, c->fd, events | EV_PERSIST, on_conn_io, c);
    event_add(&c->io_ev, NULL);
}

static void arm_timer(struct admin_conn *c, uint32_t ms)
{
    struct timeval tv;
    timeval_from_ms(&tv, ms);
    c->deadline_ms = clock_now_ms() + ms;
    event_add(&c->timer_ev, &tv);
}

static void advance(struct admin_conn *c);

/* oldest_reading returns the connection accepted first among those still
 * READING, or NULL. */
static struct admin_conn *oldest_reading(const struct admin *a)
{
    struct admin_conn *oldest = NULL;
    for (struct admin_conn *c = a->conns; c != NULL; c = c->next)
        if (c->state == CONN_READING)
            oldest = c;
    return oldest;
}

/* catch_up_readers reads what the connections still READING have been
 * sent, before one of them is judged incomplete: a request that arrived
 * but whose readiness event has not run yet is complete, and is answered
 * rather than closed. A connection may end here. */
static void catch_up_readers(struct admin *a)
{
    struct admin_conn *next;
    for (struct admin_conn *c = a->conns; c != NULL; c = next) {
        next = c->next; /* advance may free |c|, never another */
        if (c->state == CONN_READING)
            advance(c);
    }
}

/* hurry_readers gives every connection still READING BUSY_REQUEST_MS at
 * most from now to finish its request. */
static void hurry_readers(struct admin *a)
{
    uint64_t busy_deadline = clock_now_ms() + BUSY_REQUEST_MS;
    for (struct admin_conn *c = a->conns; c != NULL; c = c->next)
        if (c->state == CONN_READING && c->deadline_ms > busy_deadline)
            arm_timer(c, BUSY_REQUEST_MS);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg);

static void conn_new(struct admin *a, int fd)
{
    struct admin_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_msg(LOG_ERROR, "admin_accept_failed", "out of memory for an admin connection");
        close(fd);
        return;
    }
    c->admin = a;
    c->fd = fd;
    c->state = CONN_READING;
    c->in_method = true;
    event_assign(&c->timer_ev, a->base, -1, 0, on_conn_timer, c);
    c->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = c;
    a->conns = c;
    a->num_conns++;
    arm_timer(c, a->timeout_ms);
    watch(c, EV_READ);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct admin *a = arg;
    if (a->num_conns < a->max_conns)
        set_accepting(a, true);
}

/* log_busy logs, once per burst, that every slot is taken and what is done
 * about it. */
static void log_busy(struct admin *a, bool making_room)
{
    if (a->full_logged)
        return;
    a->full_logged = true;
    if (making_room)
        log_msg(LOG_WARN, "admin_busy",
                "%u admin connections open; the oldest incomplete request is closed to make "
                "room, and the others have %d ms to finish",
                a->max_conns, BUSY_REQUEST_MS);
    else
        log_msg(LOG_WARN, "admin_busy", "%u admin connections open; accept paused until one ends",
                a->max_conns);
}

static void on_accept(evutil_socket_t listen_fd, short what, void *arg)
{
    struct admin *a = arg;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (a->num_conns >= a->max_conns)
            catch_up_readers(a);
        bool full = a->num_conns >= a->max_conns;
        if (full && oldest_reading(a) == NULL) {
            log_busy(a, false);
            set_accepting(a, false);
            return;
        }
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            /* Made only for a connection really there, and after the
             * accept, so the new one is never the one closed. */
            if (full) {
                log_busy(a, true);
                conn_close(oldest_reading(a));
            }
            conn_new(a, fd);
            if (full)
                hurry_readers(a);
            continue;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
            continue;
        case EAGAIN:
            /* The backlog is empty: a burst that filled every slot is
             * over, and the next one is worth a line again. */
            a->full_logged = false;
            return;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM: {
            /* The socket stays readable: without a pause the loop would
             * spin on it. */
            struct timeval retry;
            log_msg(LOG_WARN, "admin_accept_paused", "%s", strerror(errno));
            set_accepting(a, false);
            timeval_from_ms(&retry, ACCEPT_RETRY_MS);
            evtimer_add(a->retry_timer, &retry);
            return;
        }
        default:
            log_msg(LOG_ERROR, "admin_accept_failed", "%s", strerror(errno));
            return;
        }
    }
}

/* ---- the request ----------------------------------------------------------------- */

/* is_tchar returns true for the characters of an HTTP token (RFC 9110). */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool all_tchars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return len > 0;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* parse_request_line checks the complete request line at |line_start|
 * (|len| bytes, no line end): "METHOD SP /target SP HTTP/1.x". */
static enum parse_result parse_request_line(struct admin_conn *c, size_t line_start, size_t len)
{
    const char *line = c->request + line_start;
    const char *sp1 = memchr(line, ' ', len);
    if (sp1 == NULL)
        return PARSE_BAD;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', len - (size_t)(target - line));
    if (sp2 == NULL)
        return PARSE_BAD;
    const char *version = sp2 + 1;
    size_t version_len = len - (size_t)(version - line);

    if (!all_tchars(line, (size_t)(sp1 - line)))
        return PARSE_BAD;
    if (version_len != 8 || memcmp(version, "HTTP/", 5) != 0 || !is_digit(version[5]) ||
        version[6] != '.' || !is_digit(version[7]))
        return PARSE_BAD;
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
        return PARSE_BAD_VERSION;
    if (target == sp2 || target[0] != '/')
        return PARSE_BAD;
    for (const char *p = target; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return PARSE_BAD;
    c->method_len = (size_t)(sp1 - line);
    c->target_start = line_start + c->method_len + 1;
    c->target_len = (size_t)(sp2 - target);
    c->have_request_line = true;
    return PARSE_INCOMPLETE;
}

/* parse_header_line checks a complete header line: a token, a colon, and a
 * value whose bytes the scan has already checked. Obsolete line folding
 * (a line starting with a space) is refused, as RFC 9112 permits. */
static bool parse_header_line(const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    return colon != NULL && all_tchars(line, (size_t)(colon - line));
}

/* parse_request goes on from where the last call stopped, so that a client
 * sending a byte at a time costs each byte once. Bytes are refused as soon
 * as they cannot be HTTP: binary garbage (a TLS ClientHello on the wrong
 * port, say) gets its 400 without waiting for a line end. */
static enum parse_result parse_request(struct admin_conn *c)
{
    for (; c->scan_pos < c->request_len; c->scan_pos++) {
        unsigned char ch = (unsigned char)c->request[c->scan_pos];
        if (ch != '\n') {
            if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f)
                return PARSE_BAD;
            if (c->in_method && ch == ' ')
                c->in_method = false;
            else if (c->in_method && !is_tchar(ch) && ch != '\r')
                return PARSE_BAD;
            continue;
        }
        /* A whole line: [line_start, end), with its optional CR dropped. A
         * bare LF ends a line too (RFC 9112 allows accepting it). */
        size_t end = c->scan_pos;
        if (end > c->line_start && c->request[end - 1] == '\r')
            end--;
        size_t len = end - c->line_start;
        const char *line = c->request + c->line_start;
        if (memchr(line, '\r', len) != NULL)
            return PARSE_BAD;
        if (!c->have_request_line) {
            enum parse_result result = parse_request_line(c, c->line_start, len);
            if (result != PARSE_INCOMPLETE)
                return result;
        } else if (len == 0) {
            return PARSE_DONE;
        } else if (!parse_header_line(line, len)) {
            return PARSE_BAD;
        }
        c->line_start = c->scan_pos + 1;
    }
    return PARSE_INCOMPLETE;
}

/* ---- the response ---------------------------------------------------------------- */

/* log_request writes a debug line per answered request; the method and
 * target are the client's bytes, which log_strn escapes. */
static void log_request(const struct admin_conn *c, int status)
{
    struct log_line line;

    if (!log_enabled(LOG_DEBUG))
        return;
    log_begin(&line, LOG_DEBUG, "admin_request");
    if (c->have_request_line) {
        log_strn(&line, "method", c->request, c->method_len);
        log_strn(&line, "target", c->request + c->target_start, c->target_len);
    }
    log_int(&line, "status", status);
    log_end(&line);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default: /* 505, the only other status sent */
        return "HTTP Version Not Supported";
    }
}

static const char text_plain[] = "text/plain; charset=utf-8";

/* start_response makes |body| (which it frees) the response of |c|, after
 * its headers; a HEAD response gets the headers only. On failure, out of
 * memory, the conn is closed. */
static int start_response(struct admin_conn *c, int status, const char *content_type,
                          struct evbuffer *body, bool head)
{
    char date[64];
    struct tm tm;
    time_t now = time(NULL);
    size_t body_len = body != NULL ? evbuffer_get_length(body) : 0;

    /* RFC 9110 asks an origin server with a clock for a Date. strftime's
     * day and month names are English: nothing calls setlocale. */
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
    log_request(c, status);
    c->response = evbuffer_new();
    if (body == NULL || c->response == NULL ||
        evbuffer_add_printf(c->response,
                            "HTTP/1.1 %d %s\r\n"
                            "Date: %s\r\n"
                            "Content-Type: %s\r\n"
                            "Content-Length: %zu\r\n"
                            "Cache-Control: no-store\r\n"
                            "%s"
                            "Connection: close\r\n"
                            "\r\n",
                            status, status_text(status), date, content_type, body_len,
                            status == 405 ? "Allow: GET, HEAD\r\n" : "") < 0 ||
        (!head && evbuffer_add_buffer(c->response, body) != 0)) {
        if (body != NULL)
            evbuffer_free(body);
        return conn_close(c);
    }
    evbuffer_free(body);
    c->state = CONN_WRITING;
    return CONN_OK;
}

/* respond_text starts a response with a short text body. */
static int respond_text(struct admin_conn *c, int status, const char *text, bool head)
{
    struct evbuffer *body = evbuffer_new();
    if (body != NULL && evbuffer_add(body, text, strlen(text)) != 0) {
        evbuffer_free(body);
        body = NULL;
    }
    return start_response(c, status, text_plain, body, head);
}

/* respond_json_error starts a response whose body is {"error": |message|};
 * |message| is ours, plain ASCII without quotes. */
static int respond_json_error(struct admin_conn *c, int status, const char *message, bool head)
{
    struct evbuffer *body = evbuffer_new();
    if (body != NULL && evbuffer_add_printf(body, "{\"error\": \"%s\"}\n", message) < 0) {
        evbuffer_free(body);
        body = NULL;
    }
    return start_response(c, status, "application/json", body, head);
}

/* respond_generated starts the response of a handler that writes |body|. */
static int respond_generated(struct admin_conn *c, int (*handler)(void *, struct evbuffer *),
                             const char *content_type, bool head)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL)
        return conn_close(c);
    if (handler(c->admin->arg, body) != 0) {
        evbuffer_free(body);
        return respond_text(c, 500, "internal server error\n", head);
    }
    return start_response(c, 200, content_type, body, head);
}

/* path_is returns true if the request's path (its target without the
 * query) is |path|. */
static bool path_is(const struct admin_conn *c, const char *path)
{
    const char *target = c->request + c->target_start;
    const char *query = memchr(target, '?', c->target_len);
    size_t len = query != NULL ? (size_t)(query - target) : c->target_len;
    return len == strlen(path) && memcmp(target, path, len) == 0;
}

/* query_of returns the request's query (after '?', up to the end of the
 * target; "" when none) and its length in |out_len|. */
static const char *query_of(const struct admin_conn *c, size_t *out_len)
{
    const char *target = c->request + c->target_start;
    const char *query = memchr(target, '?', c->target_len);

    if (query == NULL) {
        *out_len = 0;
        return "";
    }
    *out_len = c->target_len - (size_t)(query + 1 - target);
    return query + 1;
}

static bool method_is(const struct admin_conn *c, const char *method)
{
    return c->method_len == strlen(method) && memcmp(c->request, method, c->method_len) == 0;
}

enum endpoint {
    ENDPOINT_NONE,
    ENDPOINT_HEALTHZ,
    ENDPOINT_READYZ,
    ENDPOINT_METRICS,
    ENDPOINT_REPORT,
    ENDPOINT_BACKENDS
};

/* route returns the endpoint the request's path names, ENDPOINT_NONE for an
 * unknown path or one whose handler is NULL. */
static enum endpoint route(const struct admin_conn *c)
{
    const struct admin_handlers *h = &c->admin->handlers;

    if (path_is(c, "/healthz"))
        return ENDPOINT_HEALTHZ;
    if (path_is(c, "/readyz") && h->ready != NULL)
        return ENDPOINT_READYZ;
    if (path_is(c, "/metrics") && h->metrics != NULL)
        return ENDPOINT_METRICS;
    if (path_is(c, "/report") && h->report != NULL)
        return ENDPOINT_REPORT;
    if (path_is(c, "/backends") && h->backends != NULL)
        return ENDPOINT_BACKENDS;
    return ENDPOINT_NONE;
}

/* answer_report answers /report: the current window, or with the query
 * "window=previous" the last completed one (a JSON error and 404 while
 * there is none). Any other query is a 400, so that a collector's typo is
 * not answered with the wrong window. */
static int answer_report(struct admin_conn *c, bool head)
{
    static const char previous[] = "window=previous", current[] = "window=current";
    size_t query_len;
    const char *query = query_of(c, &query_len);

    if (query_len == 0 || (query_len == strlen(current) && memcmp(query, current, query_len) == 0))
        return respond_generated(c, c->admin->handlers.report, "application/json", head);
    if (query_len != strlen(previous) || memcmp(query, previous, query_len) != 0)
        return respond_text(c, 400,
                            "bad request: /report takes no query or window=previous\n", head);
    /* A valid query of an endpoint that keeps no previous window: what an
     * endpoint without a handler answers, not a 400 that blames the query. */
    if (c->admin->handlers.report_previous == NULL)
        return respond_text(c, 404, "not found\n", head);

    struct evbuffer *body = evbuffer_new();
    if (body == NULL)
        return conn_close(c);
    int result = c->admin->handlers.report_previous(c->admin->arg, body);
    if (result == 0)
        return start_response(c, 200, "application/json", body, head);
    evbuffer_free(body);
    if (result > 0)
        return respond_json_error(c, 404, "no window completed yet", head);
    return respond_text(c, 500, "internal server error\n", head);
}

/* answer starts the response to a complete request. */
static int answer(struct admin_conn *c)
{
    const struct admin_handlers *h = &c->admin->handlers;
    enum endpoint endpoint = route(c);
    bool head = method_is(c, "HEAD");

    if (endpoint == ENDPOINT_NONE)
        return respond_text(c, 404, "not found\n", head);
    if (!head && !method_is(c, "GET"))
        return respond_text(c, 405, "method not allowed\n", false);
    switch (endpoint) {
    case ENDPOINT_HEALTHZ:
        return respond_text(c, 200, "ok\n", head);
    case ENDPOINT_READYZ:
        if (h->ready(c->admin->arg))
            return respond_text(c, 200, "ready\n", head);
        return respond_text(c, 503, "not ready\n", head);
    case ENDPOINT_METRICS:
        return respond_generated(c, h->metrics, "text/plain; version=0.0.4; charset=utf-8",
                                 head);
    case ENDPOINT_BACKENDS:
        return respond_generated(c, h->backends, "application/json", head);
    default: /* ENDPOINT_REPORT; ENDPOINT_NONE was answered above */
        return answer_report(c, head);
    }
}

/* ---- reading, writing, lingering --------------------------------------------------- */

/* read_request reads what the client sent and answers once it is complete
 * or cannot be. */
static int read_request(struct admin_conn *c)
{
    for (;;) {
        size_t space = sizeof(c->request) - c->request_len;
        if (space == 0)
            return respond_text(c, 431, "request header fields too large\n", false);
        ssize_t n = recv(c->fd, c->request + c->request_len, space, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return CONN_OK;
        if (n < 0)
            return conn_close(c);
        if (n == 0) {
            /* The client stopped sending: a partial request is answered,
             * a connection that never sent anything just ends. */
            if (c->request_len == 0)
                return conn_close(c);
            return respond_text(c, 400, "bad request\n", false);
        }
        c->request_len += (size_t)n;
        switch (parse_request(c)) {
        case PARSE_INCOMPLETE:
            break;
        case PARSE_BAD:
            return respond_text(c, 400, "bad request\n", false);
        case PARSE_BAD_VERSION:
            return respond_text(c, 505, "only HTTP/1.0 and HTTP/1.1 are served\n", false);
        case PARSE_DONE:
            return answer(c);
        }
    }
}

/* write_response sends the response; once all of it is out it shuts our
 * side and lingers. */
static int write_response(struct admin_conn *c)
{
    while (evbuffer_get_length(c->response) > 0) {
        struct evbuffer_iovec chunk;
        evbuffer_peek(c->response, -1, NULL, &chunk, 1);
        /* send rather than evbuffer_write, whose writev would raise SIGPIPE
         * on a client that went away. */
        ssize_t n = send(c->fd, chunk.iov_base, chunk.iov_len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(c, EV_WRITE);
            return CONN_OK;
        }
        if (n < 0)
            return conn_close(c);
        evbuffer_drain(c->response, (size_t)n);
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGERING;
    arm_timer(c, c->admin->timeout_ms < LINGER_MS ? c->admin->timeout_ms : LINGER_MS);
    watch(c, EV_READ);
    return CONN_OK;
}

/* linger discards what the client still sends, and closes at its EOF. */
static int linger(struct admin_conn *c)
{
    char discard[4096];

    for (int i = 0; i < LINGER_READS; i++) {
        ssize_t n = recv(c->fd, discard, sizeof(discard), 0);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return CONN_OK;
        return conn_close(c);
    }
    return CONN_OK;
}

/* advance runs |c| as far as its socket allows. */
static void advance(struct admin_conn *c)
{
    if (c->state == CONN_READING && read_request(c) != CONN_OK)
        return;
    if (c->state == CONN_WRITING && write_response(c) != CONN_OK)
        return;
    if (c->state == CONN_LINGERING)
        linger(c);
}

static void on_conn_io(evutil_socket_t fd, short what, void *arg) { advance(arg); }

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *c = arg;

    if (c->state != CONN_READING) {
        conn_close(c);
        return;
    }
    /* The deadline passed with the request incomplete. The 408 itself gets
     * a short deadline of its own. */
    if (respond_text(c, 408, "request timeout\n", false) != CONN_OK)
        return;
    arm_timer(c, c->admin->timeout_ms < LINGER_MS ? c->admin->timeout_ms : LINGER_MS);
    advance(c);
}

/* ---- the thread ------------------------------------------------------------------ */

static void on_stop(evutil_socket_t fd, short what, void *arg) { event_base_loopbreak(arg); }

static void *admin_main(void *arg)
{
    struct admin *a = arg;
    if (event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
        log_msg(LOG_ERROR, "event_loop_failed", "admin: the event loop failed");
    return NULL;
}

/* admin_free releases what admin_start set up; the thread has ended. */
static void admin_free(struct admin *a)
{
    while (a->conns != NULL)
        conn_close(a->conns);
    if (a->accept_ev != NULL)
        event_free(a->accept_ev);
    if (a->stop_ev != NULL)
        event_free(a->stop_ev);
    if (a->retry_timer != NULL)
        event_free(a->retry_timer);
    if (a->base != NULL)
        event_base_free(a->base);
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    if (a->stop_pipe[0] >= 0)
        close(a->stop_pipe[0]);
    if (a->stop_pipe[1] >= 0)
        close(a->stop_pipe[1]);
    free(a);
}

struct admin *admin_start(const struct net_addr *addr, const struct admin_options *options,
                          const struct admin_handlers *handlers, void *arg)
{
    char addr_text[NET_ADDR_TEXT_MAX];
    const char *failure = "out of memory";
    bool allow_public = options != NULL && options->allow_public;

    net_addr_format(addr, addr_text, sizeof(addr_text));
    if (!allow_public && !admin_addr_is_local(addr)) {
        log_msg(LOG_ERROR, "admin_failed",
                "admin address %s is not loopback; the admin endpoint has no "
                "authentication: use 127.0.0.1 or [::1], or set admin.allow_public",
                addr_text);
        return NULL;
    }
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        goto fail;
    a->listen_fd = a->stop_pipe[0] = a->stop_pipe[1] = -1;
    a->addr = *addr;
    a->handlers = *handlers;
    a->arg = arg;
    a->timeout_ms = options != NULL && options->timeout_ms > 0 ? options->timeout_ms
                                                               : ADMIN_DEFAULT_TIMEOUT_MS;
    a->max_conns = options != NULL && options->max_conns > 0 ? options->max_conns
                                                             : ADMIN_DEFAULT_MAX_CONNS;

    a->listen_fd = net_listen(&a->addr, ADMIN_BACKLOG, false);
    if (a->listen_fd < 0) {
        failure = strerror(errno);
        goto fail;
    }
    a->base = event_base_new();
    if (a->base == NULL || pipe2(a->stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        goto fail;
    a->accept_ev = event_new(a->base, a->listen_fd, EV_READ | EV_PERSIST, on_accept, a);
    a->stop_ev = event_new(a->base, a->stop_pipe[0], EV_READ, on_stop, a->base);
    a->retry_timer = evtimer_new(a->base, on_retry_timer, a);
    if (a->accept_ev == NULL || a->stop_ev == NULL || a->retry_timer == NULL ||
        event_add(a->stop_ev, NULL) != 0)
        goto fail;
    set_accepting(a, true);
    if (pthread_create(&a->thread, NULL, admin_main, a) != 0) {
        failure = "cannot start the admin thread";
        goto fail;
    }
    a->started = true;

    struct log_line line;
    log_begin(&line, LOG_INFO, "admin_listening");
    log_str(&line, "addr", net_addr_format(&a->addr, addr_text, sizeof(addr_text)));
    log_end(&line);
    return a;

fail:
    log_msg(LOG_ERROR, "admin_failed", "cannot serve the admin endpoint on %s: %s", addr_text,
            failure);
    if (a != NULL)
        admin_free(a);
    return NULL;
}

const struct net_addr *admin_bound_addr(const struct admin *a) { return &a->addr; }

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    if (a->started) {
        /* A byte on the pipe, not event_base_loopbreak from here: that
         * would need libevent's thread support, which this module should
         * not depend on the caller having turned on. */
        while (write(a->stop_pipe[1], "", 1) < 0 && errno == EINTR)
            ;
        pthread_join(a->thread, NULL);
    }
    admin_free(a);
}
