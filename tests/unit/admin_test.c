/* admin_test: the admin endpoint over real sockets on 127.0.0.1, port 0.
 *
 * Each test starts its own endpoint with stub handlers and talks HTTP/1.1 to
 * it as a client would. Nothing waits with a sleep: every wait is a poll
 * with a deadline, so a broken server fails the test instead of hanging
 * it. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin.h"
#include "log.h"

/* How long a test waits for anything the server should do promptly. */
#define DEADLINE_MS 5000

/* ---- stub handlers ------------------------------------------------------------------ */

static const char stub_metrics_text[] = "# HELP tlsterm_stub_total A stub.\n"
                                        "# TYPE tlsterm_stub_total counter\n"
                                        "tlsterm_stub_total 42\n";
static const char stub_report_json[] = "{\"version\":1,\"policies\":[]}";

struct stub {
    atomic_bool ready;
    atomic_bool fail;
    atomic_int calls;
};

static bool stub_ready(void *arg)
{
    struct stub *stub = arg;
    atomic_fetch_add(&stub->calls, 1);
    return atomic_load(&stub->ready);
}

static int stub_metrics(void *arg, struct evbuffer *out)
{
    struct stub *stub = arg;
    atomic_fetch_add(&stub->calls, 1);
    if (atomic_load(&stub->fail))
        return -1;
    return evbuffer_add(out, stub_metrics_text, strlen(stub_metrics_text));
}

static int stub_report(void *arg, struct evbuffer *out)
{
    struct stub *stub = arg;
    atomic_fetch_add(&stub->calls, 1);
    return evbuffer_add(out, stub_report_json, strlen(stub_report_json));
}

static const struct admin_handlers stub_handlers = {
    .ready = stub_ready,
    .metrics = stub_metrics,
    .report = stub_report,
};

/* struct fixture is one running endpoint. */
struct fixture {
    struct stub stub;
    struct admin *admin;
    struct net_addr addr;
};

static void fixture_start_on(struct fixture *f, const char *addr_text,
                             const struct admin_options *options)
{
    struct net_addr addr;
    char err[128];

    memset(f, 0, sizeof(*f));
    atomic_init(&f->stub.ready, true);
    atomic_init(&f->stub.fail, false);
    atomic_init(&f->stub.calls, 0);
    assert_int_equal(net_addr_parse(addr_text, true, &addr, err, sizeof(err)), 0);
    f->admin = admin_start(&addr, options, &stub_handlers, &f->stub);
    assert_non_null(f->admin);
    f->addr = *admin_bound_addr(f->admin);
}

static void fixture_start(struct fixture *f, uint32_t timeout_ms, uint32_t max_conns)
{
    struct admin_options options = {.timeout_ms = timeout_ms, .max_conns = max_conns};
    fixture_start_on(f, "127.0.0.1:0", &options);
}

static void fixture_stop(struct fixture *f) { admin_stop(f->admin); }

/* ---- a client ----------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int client_connect(const struct net_addr *addr)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)&addr->ss, addr->len), 0);
    return fd;
}

static void client_send(int fd, const void *bytes, size_t len)
{
    const char *p = bytes;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* client_wait_readable returns true once |fd| is readable (data or EOF),
 * false if |timeout_ms| pass first. */
static bool client_wait_readable(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        int n = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (n > 0)
            return true;
        if (n == 0)
            return false;
        assert_int_equal(errno, EINTR);
    }
}

/* client_read_all reads until the server's EOF (or reset) and returns the
 * bytes, NUL-terminated; the caller frees them. The test fails if EOF does
 * not come within DEADLINE_MS. */
static char *client_read_all(int fd, size_t *out_len)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap + 1);
    int64_t deadline = now_ms() + DEADLINE_MS;

    assert_non_null(buf);
    for (;;) {
        int64_t left = deadline - now_ms();
        assert_true(left > 0);
        assert_true(client_wait_readable(fd, (int)left));
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0 || errno == ECONNRESET)
            break;
        assert_int_equal(errno, EINTR);
    }
    buf[len] = '\0';
    if (out_len != NULL)
        *out_len = len;
    return buf;
}

/* exchange sends |request| on a new connection and returns everything the
 * server sent before closing. */
static char *exchange(const struct net_addr *addr, const char *request, size_t request_len)
{
    int fd = client_connect(addr);
    client_send(fd, request, request_len);
    char *response = client_read_all(fd, NULL);
    close(fd);
    return response;
}

static char *exchange_str(const struct net_addr *addr, const char *request)
{
    return exchange(addr, request, strlen(request));
}

/* struct response is a parsed response; it points into the text. */
struct response {
    int status;
    const char *headers; /* from the first header line to the blank line */
    size_t headers_len;
    const char *body;
    size_t body_len;
};

static struct response parse_response(const char *text)
{
    struct response r = {0};
    assert_true(strncmp(text, "HTTP/1.1 ", 9) == 0);
    r.status = atoi(text + 9);
    const char *line_end = strstr(text, "\r\n");
    assert_non_null(line_end);
    r.headers = line_end + 2;
    const char *blank = strstr(text, "\r\n\r\n");
    assert_non_null(blank);
    r.headers_len = (size_t)(blank + 2 - r.headers);
    r.body = blank + 4;
    r.body_len = strlen(r.body);
    return r;
}

/* header returns the value of header |name| (case-insensitive) as a new
 * string, or NULL. */
static char *header(const struct response *r, const char *name)
{
    size_t name_len = strlen(name);
    const char *p = r->headers;
    const char *end = r->headers + r->headers_len;
    while (p < end) {
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        if ((size_t)(eol - p) > name_len && strncasecmp(p, name, name_len) == 0 &&
            p[name_len] == ':') {
            const char *v = p + name_len + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
    return NULL;
}

static void assert_header(const struct response *r, const char *name, const char *value)
{
    char *got = header(r, name);
    assert_non_null(got);
    assert_string_equal(got, value);
    free(got);
}

/* expect_response checks the status, the body, and the headers every
 * response carries. */
static void expect_response(const char *text, int status, const char *body)
{
    struct response r = parse_response(text);
    char length[32];

    assert_int_equal(r.status, status);
    assert_header(&r, "Connection", "close");
    snprintf(length, sizeof(length), "%zu", r.body_len);
    assert_header(&r, "Content-Length", length);
    char *date = header(&r, "Date");
    assert_non_null(date);
    assert_non_null(strstr(date, " GMT"));
    free(date);
    if (body != NULL)
        assert_string_equal(r.body, body);
}

/* ---- the endpoints -------------------------------------------------------------------- */

static void test_healthz(void **state)
{
    struct fixture f;
    fixture_start(&f, 0, 0);

    char *text = exchange_str(&f.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(text, 200, "ok\n");
    struct response r = parse_response(text);
    assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
    free(text);
    /* HTTP/1.0, no headers, bare LF line ends: still served. */
    text = exchange_str(&f.addr, "GET /healthz HTTP/1.0\n\n");
    expect_response(text, 200, "ok\n");
    free(text);
    fixture_stop(&f);
}

static void test_readyz_follows_handler(void **state)
{
    struct fixture f;
    fixture_start(&f, 0, 0);

    char *text = exchange_str(&f.addr, "GET /readyz HTTP/1.1\r\n\r\n");
    expect_response(text, 200, "ready\n");
    free(text);
    atomic_store(&f.stub.ready, false);
    text = exchange_str(&f.addr, "GET /readyz HTTP/1.1\r\n\r\n");
    expect_response(text, 503, "not ready\n");
    free(text);
    /* Health does not depend on readiness. */
    text = exchange_str(&f.addr, "GET /healthz HTTP/1.1\r\n\r\n");
    expect_response(text, 200, "ok\n");
    free(text);
    fixture_stop(&f);
}

static void test_metrics(void **state)
{
    struct fixture f;
    fixture_start(&f, 0, 0);

    char *text = exchange_str(&f.addr, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       "Accept: text/plain\r\nUser-Agent: test\r\n\r\n");
    expect_response(text, 200, stub_metrics_text);
    struct response r = parse_response(text);
    assert_header(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    free(text);
    /* A query string does not change the path. */
    text = exchange_str(&f.addr, "GET /metrics?name[]=x HTTP/1.1\r\n\r\n");
    expect_response(text, 200, stub_metrics_text);
    free(text);
    fixture_stop(&f);
}

static void test_report(void **state)
{
    struct fixture f;
    fixture_start(&f, 0, 0);

    char *text = exchange_str(&f.addr, "GET /report HTTP/1.1\r\n\r\n");
    expect_response(text, 200, stub_report_json);
    struct response r = parse_response(text);
    assert_header(&r, "Content-Type", "application/json");
    free(text);
    /* No previous window kept (no report_previous handler): a 404 like an
     * endpoint without a handler, not a 400 for a valid query. */
    text = exchange_str(&f.addr, "GET /report?window=previous HTTP/1.1\r\n\r\n");
    expect_response(text, 404, "not found\n");
    free(text);
    fixture_stop(&f);
}

static void test_head(void **state)
{
    struct fixture f;
    fixture_start(&f, 0, 0);

    char *text = exchange_str(&f.addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    struct response r = parse_response(text);
    assert_int_equal(r.status, 200);
    char length[32];
    snprintf(length, sizeof(length), "%zu", strlen(stub_metrics_text));
    assert_header(&r, "Content-Length", length); /* what GET would send */
    assert_int_equal(r.body_len, 0);
    free(text);
    fixture_stop(&f);
}

static void test_handler_failure_is_500(void **state)
{
    struct fixture f;
    fixture_start(&f, 0, 0);

    atomic_store(&f.stub.fail, true);
    char *text = exchange_str(&f.addr, "GET /metrics HTTP/1.1\r\n\r\n");
    expect_response(text, 500, "internal server error\n");
    free(text);
    fixture_stop(&f);
}

static void test_not_found(void **state)
{
    static const char *const requests[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET /healthz/ HTTP/1.1\r\n\r\n",
        "GET /metricsx HTTP/1.1\r\n\r\n",
        "GET /HEALTHZ HTTP/1.1\r\n\r\n",
        "GET /metrics/../report HTTP/1.1\r\n\r\n",
        "POST /nothing HTTP/1.1\r\n\r\n",
    };
    struct fixture f;
    fixture_start(&f, 0, 0);

    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        char *text = exchange_str(&f.addr, requests[i]);
        expect_response(text, 404, "not found\n");
        free(text);
    }
    fixture_stop(&f);
}

static void test_missing_handlers_are_404(void **state)
{
    static const struct admin_handlers none = {0};
    struct net_addr addr;
    char err[128];

    assert_int_equal(net_addr_parse("127.0.0.1:0", false, &addr, err, sizeof(err)), 0);
    struct admin *admin = admin_start(&addr, NULL, &none, NULL);
    assert_non_null(admin);
    addr = *admin_bound_addr(admin);
    char *text = exchange_str(&addr, "GET /healthz HTTP/1.1\r\n\r\n");
    expect_response(text, 200, "ok\n");
    free(text);
    static const char *const paths[] = {"/readyz", "/metrics", "/report",
                                        "/report?window=previous"};
    for (size_t i = 0; i < 4; i++) {
        char request[64];
        snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\n\r\n", paths[i]);
        text = exchange_str(&addr, request);
        expect_response(text, 404, "not found\n");
        free(text);
    }
    admin_stop(admin);
}

static void test_other_methods_are_405(void **state)
{
    static const char *const requests[] = {
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "PUT /healthz HTTP/1.1\r\n\r\n",
        "DELETE /report HTTP/1.1\r\n\r\n",
        "OPTIONS /readyz HTTP/1.1\r\n\r\n",
        "get /metrics HTTP/1.1\r\n\r\n", /* methods are case-sensitive */
        /* A body the server never reads: the answer must still arrive whole
         * rather than be lost to a reset. */
        "POST /metrics HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello=world",
    };
    struct fixture f;
    fixture_start(&f, 0, 0);

    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        char *text = exchange_str(&f.addr, requests[i]);
        expect_response(text, 405, "method not allowed\n");
        struct response r = parse_response(text);
        assert_header(&r, "Allow", "GET, HEAD");
        free(text);
    }
    /* No handler ran for any of them. */
    assert_int_equal(atomic_load(&f.stub.calls), 0);
    fixture_stop(&f);
}

/* ---- hostile clients ------------------------------------------------------------------ */

static void test_oversize_request_is_431(void **state)
{
    struct fixture f;
    fixture_start(&f, 0, 0);
    size_t len = 3 * ADMIN_REQUEST_MAX;
    char *request = malloc(len);
    assert_non_null(request);

    /* One huge header. */
    memset(request, 'a', len);
    memcpy(request, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
    char *text = exchange(&f.addr, request, len);
    expect_response(text, 431, "request header fields too large\n");
    free(text);
    /* A request line longer than the limit. */
    memset(request, 'b', len);
    memcpy(request, "GET /", 5);
    text = exchange(&f.addr, request, len);
    expect_response(text, 431, NULL);
    free(text);
    /* A request of exactly the limit is served; one byte more is not. */
    for (size_t total = ADMIN_REQUEST_MAX; total <= ADMIN_REQUEST_MAX + 1; total++) {
        memset(request, 'c', total);
        memcpy(request, "GET /healthz HTTP/1.1\r\nX-Big: ", 30);
        memcpy(request + total - 4, "\r\n\r\n", 4);
        text = exchange(&f.addr, request, total);
        if (total == ADMIN_REQUEST_MAX)
            expect_response(text, 200, "ok\n");
        else
            expect_response(text, 431, NULL);
        free(text);
    }
    free(request);
    assert_int_equal(atomic_load(&f.stub.calls), 0);
    fixture_stop(&f);
}

/* CASE is a request of bytes that may include a NUL, and its status. */
#define CASE(bytes, status)                                                                    \
    {                                                                                          \
        bytes, sizeof(bytes) - 1, status                                                       \
    }

static void test_garbage_is_400(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
        int status;
    } cases[] = {
        /* The start of a TLS ClientHello: a client on the wrong port. */
        CASE("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
        CASE("hello world\r\n\r\n", 400),
        CASE("GET healthz HTTP/1.1\r\n\r\n", 400),
        CASE("GET  /healthz HTTP/1.1\r\n\r\n", 400),
        CASE("GET /healthz HTTP/1.1 \r\n\r\n", 400),
        CASE("GET /healthz\r\n\r\n", 400),
        CASE("GET /healthz FTP/1.1\r\n\r\n", 400),
        CASE("GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        CASE("GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        CASE("GET /healthz HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
        CASE("GET /healthz HTTP/1.1\r\nA: b\0c\r\n\r\n", 400),
        CASE("GET /healthz HTTP/1.1\r\nA: b\rc\r\n\r\n", 400),
        CASE("GET /h\x80z HTTP/1.1\r\n\r\n", 400),
        CASE("\r\nGET /healthz HTTP/1.1\r\n\r\n", 400),
        CASE("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        CASE("GET /healthz HTTP/0.9\r\n\r\n", 505),
        /* EOF in the middle of a request. */
        CASE("GET /healthz HTTP/1.1\r\nHost: x\r\n", 400),
    };
    struct fixture f;
    /* A long timeout: each answer must come from the bytes, not from the
     * deadline. */
    fixture_start(&f, 60000, 0);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = client_connect(&f.addr);
        client_send(fd, cases[i].bytes, cases[i].len);
        if (i == sizeof(cases) / sizeof(cases[0]) - 1)
            shutdown(fd, SHUT_WR);
        char *text = client_read_all(fd, NULL);
        close(fd);
        if (parse_response(text).status != cases[i].status)
            print_error("case %zu: %s\n", i, text);
        expect_response(text, cases[i].status, NULL);
        free(text);
    }
    /* The binary case is refused from its first byte, without waiting for
     * a line end that would never come. */
    int fd = client_connect(&f.addr);
    client_send(fd, "\x16", 1);
    char *text = client_read_all(fd, NULL);
    expect_response(text, 400, "bad request\n");
    free(text);
    close(fd);
    /* And the endpoint still serves. */
    text = exchange_str(&f.addr, "GET /healthz HTTP/1.1\r\n\r\n");
    expect_response(text, 200, "ok\n");
    free(text);
    fixture_stop(&f);
}

static void test_silent_client_is_cut_at_timeout(void **state)
{
    const uint32_t timeout_ms = 200;
    struct fixture f;
    fixture_start(&f, timeout_ms, 0);

    /* Nothing at all, then a trickle that never finishes: both end at the
     * deadline counted from the accept. */
    for (int trickle = 0; trickle < 2; trickle++) {
        int64_t start = now_ms();
        int fd = client_connect(&f.addr);
        if (trickle)
            client_send(fd, "GET /healthz HTTP/1.1\r\nHo", 25);
        char *text = client_read_all(fd, NULL);
        int64_t elapsed = now_ms() - start;
        close(fd);
        expect_response(text, 408, "request timeout\n");
        free(text);
        assert_true(elapsed >= timeout_ms - 5); /* ms rounding */
        assert_true(elapsed < DEADLINE_MS);
    }
    fixture_stop(&f);
}

static void test_many_connections_at_once(void **state)
{
    enum { NUM_CLIENTS = 40 };
    int fds[NUM_CLIENTS];
    struct fixture f;
    /* Fewer slots than clients: the rest wait in the backlog, then are
     * served as slots free. Each sends its whole request at once, so none
     * is an incomplete one to close for room. */
    fixture_start(&f, 0, 8);

    for (int i = 0; i < NUM_CLIENTS; i++) {
        const char *request =
            i % 2 ? "GET /metrics HTTP/1.1\r\n\r\n" : "GET /healthz HTTP/1.1\r\n\r\n";
        fds[i] = client_connect(&f.addr);
        client_send(fds[i], request, strlen(request));
    }
    for (int i = 0; i < NUM_CLIENTS; i++) {
        char *text = client_read_all(fds[i], NULL);
        expect_response(text, 200, i % 2 ? stub_metrics_text : "ok\n");
        free(text);
        close(fds[i]);
    }
    fixture_stop(&f);
}

static void test_connection_limit_pauses_accept(void **state)
{
    enum { MAX_CONNS = 4 };
    int answered[MAX_CONNS];
    struct fixture f;
    fixture_start(&f, 60000, MAX_CONNS);

    /* Every slot holds a completed request whose client keeps its side
     * open: nothing to close for room, so accepting pauses. */
    for (int i = 0; i < MAX_CONNS; i++) {
        answered[i] = client_connect(&f.addr);
        client_send(answered[i], "GET /healthz HTTP/1.1\r\n\r\n", 25);
        assert_true(client_wait_readable(answered[i], DEADLINE_MS));
    }
    int64_t start = now_ms();
    int waiting = client_connect(&f.addr);
    client_send(waiting, "GET /healthz HTTP/1.1\r\n\r\n", 25);
    /* Not served while every slot is taken... */
    assert_false(client_wait_readable(waiting, 300));
    /* ...and served as soon as one frees. */
    close(answered[0]);
    char *text = client_read_all(waiting, NULL);
    expect_response(text, 200, "ok\n");
    free(text);
    assert_true(now_ms() - start < DEADLINE_MS);
    close(waiting);
    /* The others got their whole answer: completed requests are never
     * closed for room. */
    for (int i = 1; i < MAX_CONNS; i++) {
        text = client_read_all(answered[i], NULL);
        expect_response(text, 200, "ok\n");
        free(text);
        close(answered[i]);
    }
    fixture_stop(&f);
}

static void test_slow_clients_make_room_for_a_probe(void **state)
{
    enum { MAX_CONNS = 4 };
    int slow[MAX_CONNS];
    struct fixture f;
    fixture_start(&f, 60000, MAX_CONNS);

    /* Slow clients take every slot: one sends nothing, the others part of
     * a request. */
    slow[0] = client_connect(&f.addr);
    for (int i = 1; i < MAX_CONNS; i++) {
        slow[i] = client_connect(&f.addr);
        client_send(slow[i], "GET /metrics HTTP/1.1\r\nHo", 25);
    }
    /* Accepted in order (the kernel's queue is FIFO): the probe is taken
     * once every slow one holds a slot. */
    int64_t start = now_ms();
    char *text = exchange_str(&f.addr, "GET /healthz HTTP/1.1\r\n\r\n");
    expect_response(text, 200, "ok\n");
    free(text);
    assert_true(now_ms() - start < 1000);
    /* The oldest was closed to make room, without an answer. */
    text = client_read_all(slow[0], NULL);
    assert_string_equal(text, "");
    free(text);
    /* The others have 2 s from the probe's arrival, not the minute
     * configured: a 408 then. */
    for (int i = 1; i < MAX_CONNS; i++) {
        text = client_read_all(slow[i], NULL);
        expect_response(text, 408, "request timeout\n");
        free(text);
        int64_t elapsed = now_ms() - start;
        assert_true(elapsed >= 2000 - 5 && elapsed < 2000 + 1500);
    }
    for (int i = 0; i < MAX_CONNS; i++)
        close(slow[i]);
    fixture_stop(&f);
}

static void test_stop_with_clients_connected(void **state)
{
    struct fixture f;
    fixture_start(&f, 60000, 0);

    int silent = client_connect(&f.addr);
    int partial = client_connect(&f.addr);
    client_send(partial, "GET /metrics HTTP/1.1\r\n", 23);
    /* A third client that got its answer and keeps its side open. */
    int done = client_connect(&f.addr);
    client_send(done, "GET /healthz HTTP/1.1\r\n\r\n", 25);
    assert_true(client_wait_readable(done, DEADLINE_MS));

    fixture_stop(&f);
    /* Every connection is closed: each client sees its EOF. */
    char *text = client_read_all(silent, NULL);
    assert_string_equal(text, "");
    free(text);
    text = client_read_all(partial, NULL);
    assert_string_equal(text, "");
    free(text);
    text = client_read_all(done, NULL);
    expect_response(text, 200, "ok\n");
    free(text);
    close(silent);
    close(partial);
    close(done);
    /* And nothing listens any more. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_not_equal(connect(fd, (const struct sockaddr *)&f.addr.ss, f.addr.len), 0);
    close(fd);
}

/* ---- addresses ------------------------------------------------------------------------- */

static void test_local_addresses(void **state)
{
    static const struct {
        const char *text;
        bool local;
    } cases[] = {
        {"127.0.0.1:9100", true},
        {"127.1.2.3:9100", true},
        {"[::1]:9100", true},
        {"[::ffff:127.0.0.1]:1", true},
        {"unix:/run/tlsterm.sock", true},
        {"0.0.0.0:9100", false},
        {"10.0.0.1:9100", false},
        {"[::]:9100", false},
        {"[::ffff:10.0.0.1]:1", false},
        {"128.0.0.1:9100", false},
        {"[fe80::1]:1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct net_addr addr;
        char err[128];
        assert_int_equal(net_addr_parse(cases[i].text, true, &addr, err, sizeof(err)), 0);
        if (admin_addr_is_local(&addr) != cases[i].local) {
            print_error("%s\n", cases[i].text);
            fail();
        }
    }
}

static void test_public_address_refused(void **state)
{
    static const char *const texts[] = {"0.0.0.0:0", "[::]:0"};
    struct stub stub = {0};

    for (size_t i = 0; i < 2; i++) {
        struct net_addr addr;
        char err[128];
        assert_int_equal(net_addr_parse(texts[i], false, &addr, err, sizeof(err)), 0);
        /* Refused before anything is bound, with default options and with
         * allow_public left false. */
        assert_null(admin_start(&addr, NULL, &stub_handlers, &stub));
        struct admin_options options = {.allow_public = false, .timeout_ms = 100};
        assert_null(admin_start(&addr, &options, &stub_handlers, &stub));
    }
}

/* ---- capturing stderr for the log line ------------------------------------------------- */

static char *capture_admin_start(struct fixture *f)
{
    char path[] = "/tmp/admin_test.XXXXXX";
    int file_fd = mkstemp(path);
    assert_true(file_fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_int_equal(dup2(file_fd, STDERR_FILENO), STDERR_FILENO);
    fixture_start(f, 0, 0);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    off_t size = lseek(file_fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(file_fd, text, (size_t)size, 0), size);
    close(file_fd);
    return text;
}

static void test_logs_bound_address(void **state)
{
    struct fixture f;
    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    char *log = capture_admin_start(&f);
    log_configure(LOG_FORMAT_JSON, LOG_WARN);
    char addr_text[NET_ADDR_TEXT_MAX], expected[256];

    net_addr_format(&f.addr, addr_text, sizeof(addr_text));
    assert_true(strcmp(addr_text, "127.0.0.1:0") != 0); /* the chosen port */
    snprintf(expected, sizeof(expected), "\"event\":\"admin_listening\",\"addr\":\"%s\"}",
             addr_text);
    assert_non_null(strstr(log, expected));
    free(log);
    fixture_stop(&f);
}

static void test_unix_socket(void **state)
{
    char dir[] = "/tmp/admin_test.XXXXXX", text_addr[128], path[96];
    struct fixture f;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/admin.sock", dir);
    snprintf(text_addr, sizeof(text_addr), "unix:%s", path);
    fixture_start_on(&f, text_addr, NULL);
    char *text = exchange_str(&f.addr, "GET /readyz HTTP/1.1\r\n\r\n");
    expect_response(text, 200, "ready\n");
    free(text);
    fixture_stop(&f);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_readyz_follows_handler),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_handler_failure_is_500),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_missing_handlers_are_404),
        cmocka_unit_test(test_other_methods_are_405),
        cmocka_unit_test(test_oversize_request_is_431),
        cmocka_unit_test(test_garbage_is_400),
        cmocka_unit_test(test_silent_client_is_cut_at_timeout),
        cmocka_unit_test(test_many_connections_at_once),
        cmocka_unit_test(test_connection_limit_pauses_accept),
        cmocka_unit_test(test_slow_clients_make_room_for_a_probe),
        cmocka_unit_test(test_stop_with_clients_connected),
        cmocka_unit_test(test_local_addresses),
        cmocka_unit_test(test_public_address_refused),
        cmocka_unit_test(test_logs_bound_address),
        cmocka_unit_test(test_unix_socket),
    };
    /* Only warnings and errors: the endpoint logs every start. */
    log_configure(LOG_FORMAT_JSON, LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
