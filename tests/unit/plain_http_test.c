/* plain_http_test: the Host a 400 to plain HTTP on a TLS port may name, and
 * the response itself (plain_http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "plain_http.h"

/* host_of returns the host plain_http_host finds in |request|, "" if none. */
static const char *host_of(const char *request)
{
    static char host[PLAIN_HTTP_HOST_MAX + 1];
    size_t len = plain_http_host((const uint8_t *)request, strlen(request), host, sizeof(host));
    assert_int_equal(len, strlen(host));
    return host;
}

static void test_host_found(void **state)
{
    assert_string_equal(host_of("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "example.com");
    assert_string_equal(host_of("GET / HTTP/1.1\r\nAccept: */*\r\nhOsT:\t a.b-c.example:8443 "
                                "\r\n\r\n"),
                        "a.b-c.example:8443");
    assert_string_equal(host_of("GET / HTTP/1.1\nHost: 192.0.2.1\n\n"), "192.0.2.1");
    assert_string_equal(host_of("GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"),
                        "[2001:db8::1]:443");
    /* A head not yet complete: a whole Host line is enough. */
    assert_string_equal(host_of("GET / HTTP/1.1\r\nHost: example.com\r\nAcc"), "example.com");
}

static void test_host_refused(void **state)
{
    static const char *const requests[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: example.com", /* the line is cut off */
        "GET / HTTP/1.1\r\nX-Host: example.com\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: <script>\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:123456\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example:80x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: :80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: []\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\nHost: after.the.head\r\n\r\n",
        "Host: example.com\r\n\r\n", /* the request line is never a field */
    };
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
        assert_string_equal(host_of(requests[i]), "");
    char request[600] = "GET / HTTP/1.1\r\nHost: ";
    memset(request + strlen(request), 'a', PLAIN_HTTP_HOST_MAX + 1);
    strcat(request, "\r\n\r\n");
    assert_string_equal(host_of(request), "");
    /* A NUL inside the value ends nothing: the value is refused. */
    static const uint8_t with_nul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
    char host[PLAIN_HTTP_HOST_MAX + 1];
    assert_int_equal(plain_http_host(with_nul, sizeof(with_nul) - 1, host, sizeof(host)), 0);
}

static void test_response(void **state)
{
    char out[512];
    size_t len = plain_http_response("example.com:8443", out, sizeof(out));
    static const char expected[] = "HTTP/1.1 400 Bad Request\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 54\r\n"
                                   "Connection: close\r\n"
                                   "\r\n"
                                   "This port speaks HTTPS; use https://example.com:8443/\n";
    assert_int_equal(len, strlen(expected));
    assert_memory_equal(out, expected, len);

    len = plain_http_response(NULL, out, sizeof(out));
    out[len] = '\0';
    assert_non_null(strstr(out, "Content-Length: 42\r\n"));
    assert_non_null(strstr(out, "\r\n\r\nThis port speaks HTTPS; use https:// URLs\n"));

    /* The longest host still fits the 512 bytes promised. */
    char host[PLAIN_HTTP_HOST_MAX + 1];
    memset(host, 'a', PLAIN_HTTP_HOST_MAX);
    host[PLAIN_HTTP_HOST_MAX] = '\0';
    assert_true(plain_http_response(host, out, sizeof(out)) > PLAIN_HTTP_HOST_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_found),
        cmocka_unit_test(test_host_refused),
        cmocka_unit_test(test_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
