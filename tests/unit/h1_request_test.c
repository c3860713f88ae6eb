/* h1_request_test: the HTTP/1.1 request parser, fed bytes with no socket:
 * what a head becomes (method, target, authority, fields, framing), where it
 * pauses, and which requests are refused for what reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "conn.h"
#include "h1_request.h"
#include "http.h"

static struct conn fake_conn; /* http_exchange_new reads only a flag of it */

static struct http_exchange *begin(void *arg)
{
    struct h1_request *r = arg;
    if (r->x == NULL)
        r->x = http_exchange_new(&fake_conn, NULL, NULL);
    return r->x;
}

struct parsed {
    struct h1_request r;
    enum h1_parse_result result;
    size_t used;
};

/* parse runs |text| through a fresh parser as h1_run does: on, after a
 * head, with the bytes left. */
static void parse(struct parsed *p, const char *text, uint32_t max_header_bytes)
{
    size_t len = strlen(text), at = 0;

    h1_request_init(&p->r, max_header_bytes, begin, &p->r);
    for (;;) {
        size_t used = 0;
        p->result = h1_request_parse(&p->r, text + at, len - at, &used);
        at += used;
        if (p->result != H1_PARSE_HEAD)
            break;
        p->r.state = H1_REQ_BODY; /* as start_upstream does */
    }
    p->used = at;
}

static void done(struct parsed *p)
{
    http_exchange_free(p->r.x);
    h1_request_cleanup(&p->r);
}

static void test_origin_form_head(void **state)
{
    struct parsed p;
    parse(&p, "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-One: 1\r\nhost-ish: 2\r\n\r\nNEXT",
          65536);
    assert_int_equal(p.result, H1_PARSE_OK);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_int_equal(p.used, strlen("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-One: 1\r\n"
                                    "host-ish: 2\r\n\r\n"));
    struct http_request *req = &p.r.x->req;
    assert_string_equal(req->method, "GET");
    assert_string_equal(req->target, "/a?b=1");
    assert_string_equal(req->authority, "example.com");
    assert_int_equal(req->fields.num, 2); /* Host is not among them */
    assert_string_equal(http_field_name(&req->fields, 0), "X-One");
    assert_int_equal(req->content_length, -1);
    assert_false(req->has_body);
    assert_false(req->close);
    assert_int_equal(req->http_minor, 1);
    assert_true(p.r.x->req_done);
    done(&p);
}

static void test_absolute_form_takes_authority(void **state)
{
    struct parsed p;
    parse(&p, "GET http://other:8080?q HTTP/1.1\r\nHost: example.com\r\n\r\n", 65536);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_string_equal(p.r.x->req.authority, "other:8080");
    assert_string_equal(p.r.x->req.target, "/?q");
    done(&p);

    parse(&p, "GET http://other/x HTTP/1.0\r\n\r\n", 65536);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_string_equal(p.r.x->req.authority, "other");
    done(&p);
}

static void test_body_and_flags(void **state)
{
    struct parsed p;
    parse(&p, "POST /up HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
          65536);
    struct http_exchange *x = p.r.x;
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_int_equal(x->req.content_length, 5);
    assert_true(x->req.has_body && x->req.expect_continue && x->req.close);
    assert_null(x->req.authority); /* HTTP/1.0 may omit Host */
    assert_int_equal(evbuffer_get_length(x->req_body), 5);
    assert_int_equal(x->req_bytes, 5);
    done(&p);
}

static void test_chunked_body_and_websocket(void **state)
{
    struct parsed p;
    parse(
        &p,
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        65536);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_int_equal(p.r.x->req.content_length, -1);
    assert_true(p.r.x->req.has_body);
    assert_int_equal(evbuffer_get_length(p.r.x->req_body), 3);
    done(&p);

    parse(&p,
          "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
          "frames",
          65536);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_true(p.r.x->req.websocket);
    assert_int_equal(p.used, strlen("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n\r\n"));
    done(&p);

    /* Any other upgrade stays HTTP: the next request is parsed. */
    parse(&p, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
          65536);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_false(p.r.x->req.websocket);
    done(&p);
}

static void test_head_lines_across_requests(void **state)
{
    struct parsed p;
    /* An empty line before the request line is allowed (RFC 9112 2.2). */
    parse(&p, "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 65536);
    assert_int_equal(p.result, H1_PARSE_OK);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    done(&p);

    /* A body is not held to head rules; the next head is, from its start. */
    const char *first = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\n \r:";
    parse(&p, first, 65536);
    assert_int_equal(p.r.state, H1_REQ_DONE);
    assert_int_equal(p.used, strlen(first));
    struct http_exchange *x = p.r.x;
    p.r.x = NULL;
    p.r.state = H1_REQ_IDLE;
    size_t used = 0;
    const char *next = "GET / HTTP/1.1\nHost: a\r\n\r\n";
    assert_int_equal(h1_request_parse(&p.r, next, strlen(next), &used), H1_PARSE_ERROR);
    http_exchange_free(x);
    done(&p);
}

static void expect_refused(const char *text, uint32_t max_header_bytes, enum http_reason reason)
{
    struct parsed p;
    parse(&p, text, max_header_bytes);
    assert_int_equal(p.result, H1_PARSE_ERROR);
    assert_int_equal(p.r.error, reason);
    done(&p);
}

static void test_refusals(void **state)
{
    expect_refused("GARBAGE\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("GET / HTTP/1.1\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 65536,
                   HTTP_REASON_BAD_REQUEST);
    expect_refused("GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789\r\n\r\n", 24,
                   HTTP_REASON_HEADER_TOO_LARGE);

    /* Smuggling: a Host the target's authority contradicts, line endings
     * and folds a backend could read another way, codings other than
     * chunked (test_http_smuggling.py has the whole corpus). */
    struct parsed p;
    h1_request_init(&p.r, 65536, begin, &p.r);
    p.r.host_must_match = true;
    const char *text = "GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(h1_request_parse(&p.r, text, strlen(text), &p.used), H1_PARSE_ERROR);
    assert_int_equal(p.r.error, HTTP_REASON_AUTHORITY_MISMATCH);
    done(&p);
    expect_refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\n\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 65536,
                   HTTP_REASON_BAD_REQUEST);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 65536, HTTP_REASON_BAD_REQUEST);
    expect_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 65536,
                   HTTP_REASON_UNKNOWN_CODING);
    expect_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 65536,
                   HTTP_REASON_BAD_REQUEST);

    char many[4096] = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < HTTP_MAX_FIELDS; i++)
        strcat(many, "X: 1\r\n");
    strcat(many, "\r\n");
    expect_refused(many, 65536, HTTP_REASON_HEADER_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_form_head),
        cmocka_unit_test(test_absolute_form_takes_authority),
        cmocka_unit_test(test_body_and_flags),
        cmocka_unit_test(test_chunked_body_and_websocket),
        cmocka_unit_test(test_head_lines_across_requests),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
