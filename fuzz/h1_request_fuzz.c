/* h1_request_fuzz: libFuzzer target for the HTTP/1.1 request path of
 * mode_h1: h1_request_parse (the line scan, then llhttp in strict mode)
 * and http_request_write_head, the head tlsterm writes to the backend
 * after its rewriting (hop-by-hop fields dropped, X-Forwarded-*,
 * Forwarded, request id, Content-Length or chunked). See fuzz/README.md.
 *
 * The first input byte picks the listener's http settings and the client
 * (trusted proxy or not, IPv4 or IPv6), the second how many bytes each
 * parse call gets, the rest is what the client sends. Beyond "no crash":
 * every head written to the backend must itself parse as one request by
 * the same parser, with the same method, target and authority: tlsterm
 * never forwards what it would refuse. */
#include <arpa/inet.h>
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "h1_request.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct conn fake_conn;
static struct cfg_listener fake_listener;
static struct cfg_cidr trusted = {.family = AF_INET, .addr = {192, 0, 2, 0}, .prefix = 24};
static struct cfg_cidr trusted6 = {
    .family = AF_INET6, .addr = {0x20, 0x01, 0x0d, 0xb8}, .prefix = 32};

static struct http_exchange *begin(void *arg)
{
    struct h1_request *r = arg;
    if (r->x == NULL)
        r->x = http_exchange_new(&fake_conn, NULL, NULL);
    return r->x;
}

static void configure(uint8_t flags)
{
    struct cfg_http *http = &fake_listener.http;

    memset(&fake_conn, 0, sizeof(fake_conn));
    fake_conn.cfg = &fake_listener;
    fake_conn.local_port = 443; /* no getsockname on a fake socket */
    http->x_forwarded = flags & 0x01;
    http->forwarded = flags & 0x02;
    http->request_id = (flags & 0x04) ? "X-Request-Id" : NULL;
    http->trusted_proxies = (flags & 0x08) ? &trusted : &trusted6;
    http->num_trusted_proxies = 1;
    if (flags & 0x10) {
        fake_conn.client_addr.in6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, (flags & 0x20) ? "2001:db8::1" : "::ffff:192.0.2.7",
                  &fake_conn.client_addr.in6.sin6_addr);
        fake_conn.client_addr_len = sizeof(fake_conn.client_addr.in6);
    } else {
        fake_conn.client_addr.in.sin_family = AF_INET;
        inet_pton(AF_INET, (flags & 0x20) ? "192.0.2.7" : "198.51.100.1",
                  &fake_conn.client_addr.in.sin_addr);
        fake_conn.client_addr_len = sizeof(fake_conn.client_addr.in);
    }
    fake_conn.handshake_completing = flags & 0x40;
}

/* check_forwarded parses the head written for |x| as the backend would and
 * compares what matters. */
static void check_forwarded(const struct http_exchange *x, struct evbuffer *head)
{
    size_t len = evbuffer_get_length(head), used = 0;
    const char *text = (const char *)evbuffer_pullup(head, -1);
    struct h1_request again;

    /* An HTTP/1.0 request without Host goes on with an empty one (RFC 9112
     * 3.2), which tlsterm's own front parser refuses: nothing to compare. */
    if (x->req.authority == NULL) {
        assert(memmem(text, len, "\r\nHost: \r\n", 10) != NULL);
        return;
    }
    h1_request_init(&again, 1 << 20, begin, &again);
    /* The field limit is on what the client sends: the fields tlsterm adds
     * come on top (found by CI's fuzzing: 99 fields plus X-Forwarded-*,
     * Forwarded and a request id). */
    again.max_fields = HTTP_MAX_FIELDS + HTTP_FORWARD_ADDED_FIELDS;
    again.x = NULL;
    enum h1_parse_result result = h1_request_parse(&again, text, len, &used);
    if (result != H1_PARSE_HEAD)
        fprintf(stderr, "forwarded head refused (%s):\n%.*s", http_reason_name(again.error),
                (int)len, text);
    assert(result == H1_PARSE_HEAD);
    assert(used == len);
    assert(strcmp(again.x->req.method, x->req.method) == 0);
    assert(strcmp(again.x->req.target, x->req.target) == 0);
    assert(again.x->req.authority != NULL);
    assert(strcmp(again.x->req.authority, x->req.authority) == 0);
    http_exchange_free(again.x);
    h1_request_cleanup(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct h1_request r;
    size_t chunk, at = 0;

    if (size < 2)
        return 0;
    configure(data[0]);
    chunk = data[1] == 0 ? size : data[1];
    data += 2;
    size -= 2;

    h1_request_init(&r, (data[-2] & 0x80) ? 256 : 65536, begin, &r);
    r.host_must_match = data[-2] & 0x20;
    while (at < size || r.head_paused) {
        size_t len = size - at < chunk ? size - at : chunk, used = 0;
        enum h1_parse_result result = h1_request_parse(&r, (const char *)data + at, len, &used);

        assert(used <= len);
        at += used;
        if (result == H1_PARSE_ERROR)
            break;
        if (result == H1_PARSE_HEAD) {
            struct evbuffer *head = evbuffer_new();
            assert(head != NULL);
            if (http_request_write_head(r.x, head) == 0 && !r.x->req.websocket)
                check_forwarded(r.x, head);
            evbuffer_free(head);
            r.state = H1_REQ_BODY; /* as start_upstream does */
            continue;
        }
        if (r.state == H1_REQ_DONE) {
            /* Answered: the next request, as finish_exchange does. */
            http_exchange_free(r.x);
            r.x = NULL;
            r.state = H1_REQ_IDLE;
            continue;
        }
        if (used == 0)
            break;
    }
    http_exchange_free(r.x);
    h1_request_cleanup(&r);
    return 0;
}
