/* http_upstream_parse_test: the backend response parser of http_upstream
 * (llhttp with its callbacks), fed bytes with no connection. The callbacks
 * are static, so this file includes http_upstream.c (its functions defined
 * here keep the linker from taking the library's copy), as
 * fuzz/http_response_fuzz.c does. */
#include "../../proxy/http_upstream.c"

#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

static struct cfg_listener listener;
static struct conn fake_conn = {.cfg = &listener};
static int heads;

static void count_head(struct http_exchange *x) { heads++; }
static void ignore(struct http_exchange *x) {}

static const struct http_front_ops front = {
    .response_head = count_head,
    .response_data = ignore,
};

/* parse_response_to feeds |text| to a fresh response parser for a GET
 * (a WebSocket one with |websocket|) and returns llhttp's verdict;
 * |*status| is the head's status (0: none), |*left| how many bytes llhttp
 * did not take. */
static llhttp_errno_t parse_response_to(bool websocket, const char *text, int *status,
                                        size_t *left)
{
    struct http_exchange *x = http_exchange_new(&fake_conn, &front, NULL);
    struct http_upstream up = {.x = x, .state = UP_OPEN};

    assert_non_null(x);
    x->req.method = strdup("GET");
    x->req.websocket = websocket;
    llhttp_init(&up.parser, HTTP_RESPONSE, &parser_settings);
    up.parser.data = &up;
    heads = 0;
    llhttp_errno_t err = llhttp_execute(&up.parser, text, strlen(text));
    *status = x->resp.status;
    *left =
        err == HPE_OK ? 0 : strlen(text) - (size_t)(llhttp_get_error_pos(&up.parser) - text);
    http_exchange_free(x);
    return err;
}

static llhttp_errno_t parse_response(const char *text, int *status)
{
    size_t left;
    return parse_response_to(false, text, status, &left);
}

static void test_complete_response_pauses(void **state)
{
    int status;
    assert_int_equal(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", &status),
                     HPE_PAUSED);
    assert_int_equal(status, 200);
    assert_int_equal(heads, 1);
}

/* Found by http_response_fuzz: llhttp 8 takes "HTTP/1.1 10 OK", and the
 * status 10 (< 200) went to the client as an informational head; a
 * status of fewer than three digits is now an invalid response (502). */
static void test_status_of_fewer_than_three_digits_is_invalid(void **state)
{
    int status;
    assert_int_equal(parse_response("HTTP/1.1 10 OK\r\n\r\n", &status),
                     HPE_CB_HEADERS_COMPLETE);
    assert_int_equal(status, 0);
    assert_int_equal(parse_response("HTTP/1.1 0 OK\r\nContent-Length: 0\r\n\r\n", &status),
                     HPE_CB_HEADERS_COMPLETE);
    assert_int_equal(heads, 0);
    assert_int_equal(parse_response("HTTP/1.1 103 Early Hints\r\n\r\n", &status), HPE_OK);
    assert_int_equal(status, 103);
    assert_int_equal(heads, 1);
}

/* Found by http_response_fuzz: a 101 to a WebSocket request without
 * "Connection: upgrade" was not an upgrade to llhttp, which went on to
 * parse the bytes after it as more responses, one of them taken as the
 * final one (a 103 among them). Such a 101 is now invalid, and a 101
 * never has a body: llhttp stops right after its head. */
static void test_switching_protocols(void **state)
{
    int status;
    size_t left;
    assert_int_equal(
        parse_response_to(true,
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
                          &status, &left),
        HPE_CB_HEADERS_COMPLETE);
    assert_int_equal(
        parse_response_to(true,
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nContent-Length: 5\r\n\r\nframe",
                          &status, &left),
        HPE_PAUSED_UPGRADE);
    assert_int_equal(status, 101);
    assert_int_equal(left, 5);
    /* Not asked for: invalid whatever its fields. */
    assert_int_equal(
        parse_response_to(false,
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\n\r\n",
                          &status, &left),
        HPE_CB_HEADERS_COMPLETE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_response_pauses),
        cmocka_unit_test(test_status_of_fewer_than_three_digits_is_invalid),
        cmocka_unit_test(test_switching_protocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
