/* h1_response_test: the backend response parser of http_upstream
 * (h1_response.c), fed bytes with no connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "conn.h"
#include "h1_response.h"
#include "http.h"

static struct cfg_listener listener;
static struct conn fake_conn = {.cfg = &listener};
static int heads, data_calls;

static void count_head(struct http_exchange *x) { heads++; }
static void count_data(struct http_exchange *x) { data_calls++; }

static const struct http_front_ops front = {
    .response_head = count_head,
    .response_data = count_data,
};

struct parsed {
    enum h1_resp_result result;
    int status;
    size_t left; /* bytes after a 101's head */
    bool done, reusable;
    char why[128];
    char fields[256]; /* the final head's field names, comma-separated */
};

/* parse_as feeds |text| in one piece to a fresh parser for |method| (a
 * WebSocket GET with |websocket|; sent in 0-RTT, a 425 to retry, with
 * |early|). */
static struct parsed parse_as(const char *method, bool websocket, bool early, const char *text)
{
    struct http_exchange *x = http_exchange_new(&fake_conn, &front, NULL);
    struct h1_response r;
    struct parsed out = {0};
    const uint8_t *rest = NULL;

    assert_non_null(x);
    x->req.method = strdup(method);
    x->req.websocket = websocket;
    h1_response_init(&r, x);
    r.may_retry_425 = early;
    heads = data_calls = 0;
    out.result = h1_response_parse(&r, (const uint8_t *)text, strlen(text), &rest);
    out.status = x->resp.status;
    out.done = x->resp_done;
    out.reusable = r.reusable;
    if (out.result == H1_RESP_UPGRADED)
        out.left = strlen(text) - (size_t)(rest - (const uint8_t *)text);
    if (out.result == H1_RESP_ERROR)
        snprintf(out.why, sizeof(out.why), "%s", h1_response_error(&r));
    for (uint32_t i = 0; i < x->resp.fields.num; i++) {
        size_t at = strlen(out.fields);
        snprintf(out.fields + at, sizeof(out.fields) - at, "%s%.*s", i ? "," : "",
                 (int)x->resp.fields.v[i].name_len, http_field_name(&x->resp.fields, i));
    }
    http_exchange_free(x);
    return out;
}

static struct parsed parse(const char *text) { return parse_as("GET", false, false, text); }

static void test_complete_response(void **state)
{
    struct parsed p = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    assert_int_equal(p.result, H1_RESP_OK);
    assert_int_equal(p.status, 200);
    assert_true(p.done && p.reusable);
    assert_int_equal(heads, 1);
    assert_int_equal(data_calls, 1);
    /* Bytes after it: the connection is not reused. */
    p = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n");
    assert_true(p.done && !p.reusable);
    p = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    assert_true(p.done && !p.reusable);
}

/* Found by http_response_fuzz: llhttp 8 takes "HTTP/1.1 10 OK", and the
 * status 10 (< 200) went to the client as an informational head; a
 * status of fewer than three digits is now an invalid response (502). */
static void test_status_of_fewer_than_three_digits_is_invalid(void **state)
{
    struct parsed p = parse("HTTP/1.1 10 OK\r\n\r\n");
    assert_int_equal(p.result, H1_RESP_ERROR);
    assert_int_equal(p.status, 0);
    assert_true(p.why[0] != '\0');
    p = parse("HTTP/1.1 0 OK\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(p.result, H1_RESP_ERROR);
    assert_int_equal(heads, 0);
    p = parse("HTTP/1.1 103 Early Hints\r\n\r\n");
    assert_int_equal(p.result, H1_RESP_OK);
    assert_int_equal(p.status, 103);
    assert_false(p.done);
    assert_int_equal(heads, 1);
}

/* Found by http_response_fuzz: a 101 to a WebSocket request without
 * "Connection: upgrade" was not an upgrade to llhttp, which went on to
 * parse the bytes after it as more responses, one of them taken as the
 * final one (a 103 among them). Such a 101 is now invalid, and a 101
 * never has a body: llhttp stops right after its head. */
static void test_switching_protocols(void **state)
{
    struct parsed p = parse_as("GET", true, false,
                               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "\r\nHTTP/1.1 103 Early Hints\r\n\r\n");
    assert_int_equal(p.result, H1_RESP_ERROR);
    p = parse_as("GET", true, false,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nContent-Length: 5\r\n\r\nframe");
    assert_int_equal(p.result, H1_RESP_UPGRADED);
    assert_int_equal(p.status, 101);
    assert_int_equal(p.left, 5);
    /* Not asked for: invalid whatever its fields. */
    p = parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\n\r\n");
    assert_int_equal(p.result, H1_RESP_ERROR);
}

static void test_hop_by_hop_fields_dropped(void **state)
{
    struct parsed p = parse("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\n"
                            "Connection: x-secret\r\nServer: b\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(p.result, H1_RESP_OK);
    assert_string_equal(p.fields, "Server,Content-Length");
}

static void test_head_response_has_no_body(void **state)
{
    struct parsed p = parse_as("HEAD", false, false, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
    assert_int_equal(p.result, H1_RESP_OK);
    assert_true(p.done && p.reusable);
}

/* A 425 to a request sent in 0-RTT is the owner's to retry, unseen by
 * the front; to any other request it is an answer like another. */
static void test_too_early(void **state)
{
    const char *text = "HTTP/1.1 425 Too Early\r\nContent-Length: 3\r\n\r\nno!";
    struct parsed p = parse_as("GET", false, true, text);
    assert_int_equal(p.result, H1_RESP_TOO_EARLY);
    assert_int_equal(heads, 0);
    p = parse_as("GET", false, false, text);
    assert_int_equal(p.result, H1_RESP_OK);
    assert_int_equal(p.status, 425);
    assert_true(p.done);
    assert_int_equal(heads, 1);
}

static void test_fields_over_the_limit(void **state)
{
    size_t n = 1001;
    char *text = malloc(64 + n * 8);
    assert_non_null(text);
    strcpy(text, "HTTP/1.1 200 OK\r\n");
    for (size_t i = 0; i < n; i++)
        strcat(text, "A: b\r\n");
    strcat(text, "\r\n");
    struct parsed p = parse(text);
    free(text);
    assert_int_equal(p.result, H1_RESP_ERROR);
    assert_string_equal(p.why, "response fields over 256 KiB or 1000 fields");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_response),
        cmocka_unit_test(test_status_of_fewer_than_three_digits_is_invalid),
        cmocka_unit_test(test_switching_protocols),
        cmocka_unit_test(test_hop_by_hop_fields_dropped),
        cmocka_unit_test(test_head_response_has_no_body),
        cmocka_unit_test(test_too_early),
        cmocka_unit_test(test_fields_over_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
