"""HTTP mode when things go wrong: the proxy answers in HTTP (never a bare
reset) with the status and access-log reason issue 9 lists, a client reset
mid-upload does not leave a dirty backend connection in the pool, and a
drain sends h2 clients the two-step GOAWAY while a stream completes.

Under HTTP_TEST_STANDIN=nghttpx the statuses are checked, the reason tokens
(tlsterm's access log) are not."""

import time

import h2.errors
import pytest

from http_harness import (
    H1Conn,
    H2Conn,
    HttpProxy,
    differs_from_standin,
    tlsterm_only,
)
from tlsterm_harness import free_port


class DeadBackend:
    """DeadBackend is a backend address nothing listens on."""

    def __init__(self):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"


@pytest.fixture
def make_proxy(tlsterm_factory, http_backend_factory, certs):
    """make_proxy(**options) starts a backend (or takes |backend|) and a
    proxy in front of it."""
    def make(backend=None, **options):
        return HttpProxy(tlsterm_factory, backend or http_backend_factory(), certs, **options)
    return make


def check_reason(proxy, mark, status, reason, count=1):
    """check_reason waits for |count| access-log lines with |status| and
    |reason| (tlsterm only; nothing to check on a stand-in)."""
    if proxy.tlsterm is None:
        return
    lines = proxy.requests(count, since=mark, status=status)
    assert all(line["reason"] == reason for line in lines), lines


def assert_proxy_answer(status, body, expected):
    assert status == expected
    assert body, "the proxy's own responses carry a short text body"


def h2_and_h1(proxy, certs, path, method="GET", headers=(), timeout=30):
    """h2_and_h1 sends the same request over h2 and over HTTP/1.1 and
    returns both responses as (status, body)."""
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get(path, method, headers, timeout=timeout)
        assert stream.reset is None, f"h2 stream reset ({stream.reset}), not an HTTP answer"
        h2_answer = (stream.status, bytes(stream.data))
    with H1Conn(proxy.port, certs) as conn:
        response = conn.request(method, path, headers)
        h1_answer = (response.status, response.body)
    return h2_answer, h1_answer


def test_backend_down_502(make_proxy, certs):
    proxy = make_proxy(DeadBackend())
    mark = proxy.mark()
    for status, body in h2_and_h1(proxy, certs, "/"):
        assert_proxy_answer(status, body, 502)
    check_reason(proxy, mark, 502, "backend_connect_failed", 2)


def test_backend_silent_504(make_proxy, certs):
    proxy = make_proxy(timeouts={"backend_response": "1s"})
    mark = proxy.mark()
    start = time.monotonic()
    for status, body in h2_and_h1(proxy, certs, "/silent"):
        assert_proxy_answer(status, body, 504)
    assert time.monotonic() - start < 15
    check_reason(proxy, mark, 504, "backend_timeout", 2)


def test_slow_upload_is_not_a_backend_timeout(make_proxy, certs):
    """timeouts.backend_response counts from the end of the request body:
    an upload that takes 2.5 s with a 1 s timeout gets its 200."""
    proxy = make_proxy(timeouts={"backend_response": "1s"})
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.request("POST", "/sha", headers=[("content-length", "5000")],
                              end_stream=False)
        for _ in range(4):
            conn.send(stream, b"s" * 1000)
            deadline = time.monotonic() + 0.5
            conn.wait(lambda: time.monotonic() > deadline or stream.done, what="a pause")
            assert not stream.done, (stream.status, bytes(stream.data))
        conn.send(stream, b"s" * 1000, end_stream=True)
        conn.wait(lambda: stream.done, what="the response")
    assert stream.status == 200, (stream.status, bytes(stream.data))
    assert stream.json()["length"] == 5000


def test_backend_reset_502(make_proxy, certs):
    proxy = make_proxy()
    mark = proxy.mark()
    for status, body in h2_and_h1(proxy, certs, "/drop", method="POST"):
        assert_proxy_answer(status, body, 502)
    check_reason(proxy, mark, 502, "backend_reset", 2)


def test_backend_invalid_response_502(make_proxy, certs):
    proxy = make_proxy()
    mark = proxy.mark()
    for status, body in h2_and_h1(proxy, certs, "/invalid", method="POST"):
        assert_proxy_answer(status, body, 502)
    check_reason(proxy, mark, 502, "backend_invalid_response", 2)


def test_response_failing_midway(make_proxy, certs):
    """Headers and 1000 of 1 MiB body bytes, then the backend closes: the h2
    stream gets RST_STREAM, the h1 connection is closed short; both after
    the bytes that came."""
    proxy = make_proxy()
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get("/drop-mid")
        # The proxy may see the close before it sent the headers on.
        assert stream.status in (None, 200)
        assert stream.reset is not None and not stream.ended
        assert stream.length <= 1000
        assert conn.get("/").status == 200  # the connection lives on
    with H1Conn(proxy.port, certs) as conn:
        # Cut short after the head went out, or a 502 when the close came
        # before it: never a response that looks complete.
        try:
            response = conn.request("GET", "/drop-mid")
        except EOFError:
            pass
        else:
            assert response.status == 502, response.status


def test_malformed_h1_request_400(make_proxy, certs):
    proxy = make_proxy()
    mark = proxy.mark()
    with H1Conn(proxy.port, certs) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n")
        response = conn.read_response()
    assert_proxy_answer(response.status, response.body, 400)
    check_reason(proxy, mark, 400, "bad_request")


@differs_from_standin("forwards a request whose Host differs from :authority")
def test_authority_mismatch_400(make_proxy, certs):
    proxy = make_proxy()
    mark = proxy.mark()
    with H2Conn(proxy.port, certs, validate=False) as conn:
        stream = conn.get("/headers", headers=[("host", "other.example")])
        assert stream.reset is None
        assert_proxy_answer(stream.status, bytes(stream.data), 400)
        # The same value is fine.
        assert conn.get("/headers", headers=[("host", "localhost")]).status == 200
    check_reason(proxy, mark, 400, "authority_mismatch")
    # The backend logs a request once it has answered: wait for the one
    # forwarded; the refused one never arrives.
    assert len(proxy.backend.wait_count("request", 1, path="/headers")) == 1


def test_header_too_large_431(make_proxy, certs):
    proxy = make_proxy(http={"max_request_header_bytes": 16384})
    mark = proxy.mark()
    big = [("x-big", "b" * 20000)]
    for status, body in h2_and_h1(proxy, certs, "/", headers=big):
        assert_proxy_answer(status, body, 431)
    check_reason(proxy, mark, 431, "header_too_large", 2)


def test_too_many_header_fields_431(make_proxy, certs):
    proxy = make_proxy()
    mark = proxy.mark()
    many = [(f"x-field-{i}", "v") for i in range(101)]
    for status, body in h2_and_h1(proxy, certs, "/", headers=many):
        assert_proxy_answer(status, body, 431)
    check_reason(proxy, mark, 431, "header_too_large", 2)


@tlsterm_only
def test_request_header_timeout_408(make_proxy, certs):
    proxy = make_proxy(timeouts={"request_header": "1s"})
    mark = proxy.mark()
    start = time.monotonic()
    with H1Conn(proxy.port, certs) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        response = conn.read_response(timeout=15)
        assert conn.read_eof(10) == b""
    assert_proxy_answer(response.status, response.body, 408)
    assert 0.9 < time.monotonic() - start < 10
    check_reason(proxy, mark, 408, "header_timeout")


@tlsterm_only
def test_backend_busy_503(make_proxy, certs):
    """backend.max_connections 1: while a slow request holds the only
    connection, the next one waits timeouts.queue and gets 503."""
    proxy = make_proxy(backend_opts={"max_connections": 1}, timeouts={"queue": "500ms"})
    mark = proxy.mark()
    with H2Conn(proxy.port, certs) as conn:
        slow = conn.request("GET", "/slow/3")
        conn.wait(lambda: proxy.backend.find("request", path="/slow/3"), what="the request")
        start = time.monotonic()
        queued = conn.get("/", timeout=10)
        assert time.monotonic() - start < 2.5
        assert_proxy_answer(queued.status, bytes(queued.data), 503)
        conn.wait(lambda: slow.done, what="the slow response")
        assert slow.status == 200
    check_reason(proxy, mark, 503, "backend_busy")


def test_client_reset_mid_upload_closes_backend_connection(make_proxy, certs):
    """A stream reset by the client halfway through its body: the backend
    connection that carried it is closed, not put back in the pool."""
    proxy = make_proxy()
    backend = proxy.backend
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.request("POST", "/sha", headers=[("content-length", str(10 << 20))],
                              body=b"u" * (1 << 20), end_stream=False)
        conn.wait(lambda: backend.find("request", path="/sha") and not stream.pending,
                  what="the request at the backend and the first MiB sent")
        event = backend.find("request", path="/sha")[0]
        conn.reset(stream, h2.errors.ErrorCodes.CANCEL)
        closed = backend.wait_for("close", conn=event["conn"])
        assert closed["state"] != "idle", closed
        after = conn.get("/headers")
        assert after.status == 200 and after.json()["conn"] != event["conn"]


def test_goaway_on_drain_lets_stream_in_flight_complete(make_proxy, certs):
    """SIGTERM (SIGQUIT for nghttpx) with a stream in flight: a GOAWAY with
    last_stream_id 2^31-1 first, then the final one naming the stream, which
    gets its whole response."""
    proxy = make_proxy()
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.request("GET", "/slow/2")
        conn.wait(lambda: proxy.backend.find("request", path="/slow/2"), what="the request")
        proxy.drain()
        conn.wait(lambda: stream.done and len(conn.goaways) >= 2, 20, "the response and GOAWAYs")
        assert (stream.status, bytes(stream.data), stream.ended) == (200, b"slow\n", True)
        ids = [g.last_stream_id for g in conn.goaways]
        assert ids[0] == 2**31 - 1 and ids[-1] == stream.id, ids
        assert all(g.error_code == 0 for g in conn.goaways)
    assert proxy.wait_exit(30) == 0


@differs_from_standin("closes an h1 connection on a graceful stop without Connection: close")
def test_drain_h1_gets_connection_close(make_proxy, certs):
    proxy = make_proxy()
    with H1Conn(proxy.port, certs) as conn:
        conn.send(b"GET /slow/1.5 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        proxy.backend.wait_for("request", path="/slow/1.5")
        proxy.drain()
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"slow\n")
        assert response.header("connection", "").lower() == "close"
        assert conn.read_eof(10) == b""
    assert proxy.wait_exit(30) == 0
