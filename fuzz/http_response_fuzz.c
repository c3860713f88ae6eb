/* http_response_fuzz: libFuzzer target for what a backend answers: the
 * response parser of http_upstream (h1_response.c: llhttp with tlsterm's
 * callbacks, fields and trailers with their limits, hop-by-hop removal,
 * 1xx, 101, 425, HEAD, Content-Length), and the two health-check readers
 * of a status line (backend_health.c's active check and healthcheck.c's
 * probe of the admin endpoint). See fuzz/README.md.
 *
 * The health-check readers are static functions inside modules that
 * otherwise need a connection and an event loop, so this file includes
 * those two .c files: their non-static functions, defined here, keep the
 * linker from taking the library's copies.
 *
 * The first input byte picks the request (GET or HEAD, WebSocket or not,
 * sent as 0-RTT early data), the second how many bytes each parse call
 * gets, the rest is the backend's bytes. */
#include "../proxy/backend_health.c"
#include "../proxy/healthcheck.c"

#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "h1_response.h"
#include "http.h"

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
    struct h1_response r;
    size_t at = 0;
    enum h1_resp_result result = H1_RESP_OK;

    assert(x != NULL);
    x->req.method = strdup((flags & 0x01) ? "HEAD" : "GET");
    x->req.websocket = flags & 0x02;
    h1_response_init(&r, x);
    num_heads = num_upgrades = 0;

    while (at < size && !x->resp_done) {
        size_t len = size - at < chunk ? size - at : chunk;
        const uint8_t *rest = NULL;
        r.may_retry_425 = flags & 0x04; /* the request went in 0-RTT */
        result = h1_response_parse(&r, data + at, len, &rest);
        if (result == H1_RESP_UPGRADED) {
            /* Only a WebSocket request's 101 stops the parser there. */
            assert(x->resp.status == 101 && x->req.websocket && x->resp_final);
            assert(rest >= data + at && rest <= data + at + len);
            break;
        }
        if (result == H1_RESP_TOO_EARLY) {
            assert(x->resp.status == 425 && (flags & 0x04) && !x->resp_final);
            break; /* sent again after the handshake: a new exchange */
        }
        if (result == H1_RESP_ERROR) {
            const char *why = h1_response_error(&r);
            assert(r.out_of_memory || (why != NULL && why[0] != '\0'));
            break;
        }
        at += len;
    }
    if (result == H1_RESP_OK && !x->resp_done && size > 0)
        h1_response_finish(&r); /* the backend closed: on_eof */
    if (x->resp_done) {
        assert(x->resp_final && x->resp.status >= 200);
        assert(num_heads >= 1);
    } else {
        assert(!r.reusable);
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
