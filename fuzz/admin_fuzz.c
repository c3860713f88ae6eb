/* admin_fuzz: libFuzzer target for the admin endpoint's request parser
 * (admin.c: the byte scan, the request line, header lines) and its answer
 * (routing, method, status and headers): the endpoint is public with
 * allow_public. See fuzz/README.md.
 *
 * The parser is static inside a module that otherwise runs a thread with
 * an event loop and sockets, so this file includes admin.c (its functions,
 * defined here, keep the linker from taking the library's copy) and drives
 * a connection as read_request does: bytes appended to its request buffer
 * (up to ADMIN_REQUEST_MAX, then 431), parse_request after each read,
 * answer when complete, a 400 when the client stops early. The first
 * input byte says how many bytes each read brings; debug logging is on so
 * that the request line's escaping runs too (its lines go to /dev/null). */
#include "../proxy/admin.c"

#include <assert.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int devnull = -1;

static bool ready(void *arg) { return *(const bool *)arg; }

static int generate(void *arg, struct evbuffer *out)
{
    return evbuffer_add_printf(out, "{\"fuzz\": true}\n") < 0 ? -1 : 0;
}

static int fail_to_generate(void *arg, struct evbuffer *out) { return -1; }

static struct admin fake_admin = {
    .handlers = {.ready = ready,
                 .metrics = generate,
                 .report = fail_to_generate,
                 .backends = generate},
};

/* respond finishes the request as read_request would, its log line muted. */
static int respond(struct admin_conn *c, enum parse_result result, bool eof)
{
    int saved = dup(2), rc;

    dup2(devnull, 2);
    if (result == PARSE_DONE)
        rc = answer(c);
    else if (result == PARSE_BAD)
        rc = respond_text(c, 400, "bad request\n", false);
    else if (result == PARSE_BAD_VERSION)
        rc = respond_text(c, 505, "only HTTP/1.0 and HTTP/1.1 are served\n", false);
    else if (eof)
        rc = respond_text(c, 400, "bad request\n", false);
    else
        rc = respond_text(c, 431, "request header fields too large\n", false);
    dup2(saved, 2);
    close(saved);
    return rc;
}

static void check_response(const struct admin_conn *c, enum parse_result result)
{
    size_t len = evbuffer_get_length(c->response);
    const char *text = (const char *)evbuffer_pullup(c->response, -1);

    assert(len > 17 && memcmp(text, "HTTP/1.1 ", 9) == 0);
    assert(memmem(text, len, "\r\n\r\n", 4) != NULL);
    if (result == PARSE_DONE) {
        /* Only a well-formed request line gets this far. */
        assert(c->have_request_line && c->method_len > 0 &&
               all_tchars(c->request, c->method_len));
        assert(c->target_len > 0 && c->request[c->target_start] == '/');
        assert(c->target_start + c->target_len < c->request_len);
    } else {
        assert(memcmp(text + 9, "200", 3) != 0);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    devnull = open("/dev/null", O_WRONLY);
    log_configure(LOG_FORMAT_JSON, LOG_DEBUG);
    return devnull < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool is_ready;
    struct admin_conn *c;
    enum parse_result result = PARSE_INCOMPLETE;
    size_t chunk, at = 0;

    if (size < 1)
        return 0;
    chunk = data[0] == 0 ? size : data[0];
    is_ready = data[0] & 1;
    data++;
    size--;
    c = calloc(1, sizeof(*c));
    assert(c != NULL);
    c->admin = &fake_admin;
    fake_admin.arg = &is_ready;
    c->fd = -1;
    c->in_method = true;
    while (result == PARSE_INCOMPLETE && at < size) {
        size_t space = sizeof(c->request) - c->request_len;
        if (space == 0)
            break; /* 431 */
        size_t n = size - at < chunk ? size - at : chunk;
        if (n > space)
            n = space;
        memcpy(c->request + c->request_len, data + at, n);
        c->request_len += n;
        at += n;
        result = parse_request(c);
        assert(c->scan_pos <= c->request_len && c->line_start <= c->scan_pos + 1);
    }
    if (result == PARSE_INCOMPLETE && c->request_len == 0) {
        free(c); /* a connection that sent nothing just ends */
        return 0;
    }
    assert(respond(c, result, at == size) == CONN_OK);
    check_response(c, result);
    evbuffer_free(c->response);
    free(c);
    return 0;
}
