/* http_response_fuzz: libFuzzer target for what a backend answers: the
 * response parser of http_upstream (llhttp with tlsterm's callbacks: fields
 * and trailers with their limits, hop-by-hop removal, 1xx, 101, 425, HEAD,
 * Content-Length), and the two health-check readers of a status line
 * (backend_health.c's active check and healthcheck.c's probe of the admin
 * endpoint). See fuzz/README.md.
 *
 * Those parsers are static functions inside modules that otherwise need a
 * connection and an event loop, so this file includes the three .c files:
 * their non-static functions, defined here, keep the linker from taking
 * the library's copies. It drives the callbacks as http_upstream's parse()
 * does, without parse()'s error handling (which tears the upstream down).
 *
 * The first input byte picks the request (GET or HEAD, WebSocket or not,
 * sent as 0-RTT early data), the second how many bytes each llhttp_execute
 * gets, the rest is the backend's bytes. */
#include "../proxy/http_upstream.c"

#include "../proxy/backend_health.c"
#include "../proxy/healthcheck.c"

#include <assert.h>
#include <fcntl.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *fuzz_data, size_t fuzz_size);

static struct conn fake_conn;
static struct cfg_listener fake_listener;
static int devnull = -1;
static unsigned num_heads, num_upgrades;

/* check_head: a head handed to the front never holds a hop-by-hop field,
 * and its status is a 3-digit one. */
static void check_head(struct http_exchange *x)
{
    const struct http_fields *f = &x->resp.fields;

    assert(x->resp.status >= 100 && x->resp.status <= 999);
    for (uint32_t i = 0; i < f->num; i++)
        assert(!http_is_hop_by_hop(http_field_name(f, i), f->v[i].name_len));
    num_heads++;
}

static void on_response_data(struct http_exchange *x)
{
    /* The front sends the bytes on: they do not pile up. */
    if (x->resp_body != NULL)
        evbuffer_drain(x->resp_body, evbuffer_get_length(x->resp_body));
}

static void on_upgraded(struct http_exchange *x) { num_upgrades++; }

static const struct http_front_ops fake_front = {
    .response_head = check_head,
    .response_data = on_response_data,
    .upgraded = on_upgraded,
};

static void fuzz_upstream(uint8_t flags, size_t chunk, const uint8_t *data, size_t size)
{
    struct http_exchange *x = http_exchange_new(&fake_conn, &fake_front, NULL);
    struct http_upstream up = {.x = x, .state = UP_OPEN};
    size_t at = 0;
    llhttp_errno_t err = HPE_OK;

    assert(x != NULL);
    x->req.method = strdup((flags & 0x01) ? "HEAD" : "GET");
    x->req.websocket = flags & 0x02;
    up.sent_early = flags & 0x04;
    up.req_sent = true;
    llhttp_init(&up.parser, HTTP_RESPONSE, &parser_settings);
    up.parser.data = &up;
    num_heads = num_upgrades = 0;

    while (at < size) {
        size_t len = size - at < chunk ? size - at : chunk;
        up.data_added = false;
        err = llhttp_execute(&up.parser, (const char *)data + at, len);
        if (err == HPE_PAUSED_UPGRADE) {
            /* Only a WebSocket request's 101 stops the parser there. */
            assert(x->resp.status == 101 && x->req.websocket);
            break;
        }
        if (up.swallow_425) {
            assert(x->resp.status == 425 && up.sent_early && !x->resp_final);
            break; /* sent again after the handshake: a new exchange */
        }
        if (err != HPE_OK)
            break; /* HPE_PAUSED: the response is complete; else invalid */
        if (up.data_added)
            on_response_data(x);
        at += len;
    }
    if (err == HPE_OK && !up.swallow_425 && size > 0)
        llhttp_finish(&up.parser); /* the backend closed: on_eof */
    if (x->resp_done) {
        assert(x->resp_final && x->resp.status >= 200);
        assert(num_heads >= 1);
    }
    /* A HEAD response is complete at its head, whatever its fields say. */
    if (x->resp_final && strcmp(x->req.method, "HEAD") == 0 && x->resp.status != 101)
        assert(x->resp_done);
    http_exchange_free(x);
}

/* fuzz_status_lines runs both health-check readers on the input as the
 * first bytes of a response. */
static void fuzz_status_lines(const uint8_t *data, size_t size)
{
    static struct check check;
    static struct probe probe = {.addr_text = "127.0.0.1:9000", .path = "/ready"};

    check.response_len = size < sizeof(check.response) - 1 ? size : sizeof(check.response) - 1;
    memcpy(check.response, data, check.response_len);
    check.response[check.response_len] = '\0';
    int status = parse_status(&check);
    assert(status == -1 || (status >= 100 && status <= 599));

    probe.response_len = size < RESPONSE_MAX ? size : RESPONSE_MAX;
    memcpy(probe.response, data, probe.response_len);
    probe.response[probe.response_len] = '\0';
    /* judge says why on stderr: not into the fuzzer's output. */
    int saved = dup(2);
    dup2(devnull, 2);
    int verdict = judge(&probe);
    dup2(saved, 2);
    close(saved);
    assert(verdict == 0 || verdict == 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    devnull = open("/dev/null", O_WRONLY);
    fake_conn.cfg = &fake_listener;
    return devnull < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *fuzz_data, size_t fuzz_size)
{
    if (fuzz_size < 2)
        return 0;
    fuzz_upstream(fuzz_data[0], fuzz_data[1] == 0 ? fuzz_size : fuzz_data[1], fuzz_data + 2,
                  fuzz_size - 2);
    fuzz_status_lines(fuzz_data + 2, fuzz_size - 2);
    return 0;
}
