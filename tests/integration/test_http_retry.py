"""The keep-alive race, request by request: the backend (--race-every 1)
drops every request that arrives on a reused connection unanswered, as a
server whose idle timeout fired just as the request came. tlsterm sends it
again on a new connection when that is safe (an idempotent method, and the
body, if any, still held whole: up to 64 KiB of it is kept until the first
response byte), and answers 502 otherwise. A request it could not send
again is never given a pooled connection unchecked (the /close-quiet
backend closes right after its response)."""

import hashlib

import pytest

from http_harness import H1Conn, HttpProxy


@pytest.fixture
def proxy(tlsterm_factory, http_backend_factory, certs):
    return HttpProxy(tlsterm_factory, http_backend_factory("--race-every", "1"), certs)


def warm(conn):
    """A first request, answered: its connection goes to the pool."""
    assert conn.request("GET", "/").status == 200


@pytest.mark.parametrize("size", [0, 1000, 60000])
def test_put_is_sent_again_with_its_body(proxy, certs, size):
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    mark = proxy.mark()
    with H1Conn(proxy.port, certs) as conn:
        warm(conn)
        response = conn.request("PUT", "/sha", body=body)
    assert response.status == 200, response.status
    assert response.json() == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}
    line = proxy.requests(2, since=mark)[1]
    assert line["method"] == "PUT" and line["status"] == 200 and line["reused"] is False, line
    assert proxy.backend.find("close", how="server", state="race")


def test_post_is_not_sent_again(proxy, certs):
    mark = proxy.mark()
    with H1Conn(proxy.port, certs) as conn:
        warm(conn)
        response = conn.request("POST", "/sha", body=b"hello")
    assert response.status == 502
    line = proxy.requests(2, since=mark)[1]
    assert line["reason"] == "backend_reset", line


def test_post_is_not_given_a_connection_closed_a_moment_ago(tlsterm_factory,
                                                             http_backend_factory, certs):
    """A connection back in the pool a moment ago is taken without a look
    (a system call saved) only by a request a retry would cover: a POST
    pipelined behind a response whose connection the server closed with it
    (no Connection: close) gets a new connection, not 502."""
    quiet = HttpProxy(tlsterm_factory, http_backend_factory(), certs)
    mark = quiet.mark()
    with H1Conn(quiet.port, certs) as conn:
        # One write: the POST is taken up as soon as the first response is
        # in, in the same turn of the proxy that read it and its FIN.
        conn.send(b"GET /close-quiet HTTP/1.1\r\nHost: localhost\r\n\r\n"
                  b"POST /sha HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        first = conn.read_response()
        second = conn.read_response()
    assert first.status == 200 and first.body == b"closing quietly\n"
    assert second.status == 200, (second.status, second.body)
    assert second.json() == {"sha256": hashlib.sha256(b"hello").hexdigest(), "length": 5}
    lines = quiet.requests(2, since=mark)
    assert [(l["method"], l["status"], l["reused"]) for l in lines] == \
        [("GET", 200, False), ("POST", 200, False)], lines
    quiet.backend.wait_for("close", how="server", requests=1)
