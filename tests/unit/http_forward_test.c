/* http_forward_test: the head tlsterm writes to an HTTP/1.1 backend
 * (http_request_write_head) for requests parsed by h1_request, with no
 * socket: a fake connection whose listener adds no forwarding fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "config.h"
#include "conn.h"
#include "h1_request.h"
#include "http.h"

static struct cfg_listener listener; /* http: no X-Forwarded-*, no Forwarded */
static struct conn fake_conn = {.cfg = &listener, .local_port = 443};

static struct http_exchange *begin(void *arg)
{
    struct h1_request *r = arg;
    if (r->x == NULL)
        r->x = http_exchange_new(&fake_conn, NULL, NULL);
    return r->x;
}

/* forwarded parses the head |request| and returns the head written for the
 * backend, NUL-terminated (the caller frees it). */
static char *forwarded(const char *request)
{
    struct h1_request r;
    size_t used = 0;

    h1_request_init(&r, 65536, begin, &r);
    assert_int_equal(h1_request_parse(&r, request, strlen(request), &used), H1_PARSE_HEAD);
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    assert_int_equal(http_request_write_head(r.x, out), 0);
    size_t len = evbuffer_get_length(out);
    char *text = calloc(1, len + 1);
    assert_non_null(text);
    evbuffer_remove(out, text, len);
    evbuffer_free(out);
    http_exchange_free(r.x);
    h1_request_cleanup(&r);
    return text;
}

static void test_host_is_passed_on(void **state)
{
    char *head = forwarded("GET /a HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n");
    assert_string_equal(head, "GET /a HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n");
    free(head);
}

/* Found by h1_request_fuzz: an HTTP/1.0 request without Host went to the
 * backend as HTTP/1.1 without Host, which RFC 9112 3.2 has the backend
 * refuse; it now carries an empty Host, as that section says. */
static void test_http10_without_host_gets_an_empty_host(void **state)
{
    char *head = forwarded("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n");
    assert_string_equal(head, "GET / HTTP/1.1\r\nHost: \r\nAccept: */*\r\n\r\n");
    free(head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_is_passed_on),
        cmocka_unit_test(test_http10_without_host_gets_an_empty_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
