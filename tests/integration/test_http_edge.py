"""HTTP at the edge (issue 10, "Plain HTTP and port 80"): plain HTTP sent to a
TLS port gets a 400 that names the https:// URL, a `mode: redirect` listener
sends every plain-HTTP request to HTTPS, and `http.hsts` adds
Strict-Transport-Security to HTTPS responses.

Clients are curl and raw sockets; timeouts are tested with small configured
values."""

import socket
import time

import pytest

from http_harness import H1Conn, H2Conn, http_config, http_listener, tlsterm_only
from tlsterm_harness import (
    TIMEOUT,
    curl,
    free_port,
    listener_config,
    recv_until_eof,
    run,
    text,
    tlsterm_config,
)

pytestmark = tlsterm_only


@pytest.fixture
def backend(http_backend_factory):
    return http_backend_factory()


def plain_curl(url, *args, timeout=TIMEOUT):
    """plain_curl runs curl on an http:// |url| and returns the
    CompletedProcess; -i puts the head in stdout."""
    return run(["curl", "-sS", "-i", "--max-time", str(int(timeout)), *args, url],
               timeout=timeout + 5)


def raw_exchange(port, data, timeout=TIMEOUT):
    """raw_exchange sends |data| on a plain TCP connection and returns all
    that comes back until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return recv_until_eof(sock, timeout=timeout)


def split_response(raw):
    """split_response returns (status, headers dict with lower-case names,
    body) of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# ---- plain HTTP on a TLS port ----------------------------------------------------


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_plain_http_on_tls_port_gets_400(tlsterm_factory, certs, backend, mode):
    listener = (http_listener("edge", backend, certs) if mode == "http"
                else listener_config("edge", backend.addr, certs))
    proxy = tlsterm_factory(http_config([listener]))
    port = proxy.port("edge")
    mark = proxy.mark()
    result = plain_curl(f"http://127.0.0.1:{port}/some/path?q=1")
    assert result.returncode == 0, text(result)
    status, headers, body = split_response(result.stdout)
    assert status == 400
    assert headers["connection"] == "close"
    assert headers["content-type"].startswith("text/plain")
    assert body == f"This port speaks HTTPS; use https://127.0.0.1:{port}/\n".encode()
    assert int(headers["content-length"]) == len(body)
    failed = proxy.wait_for("handshake_failed", since=mark, reason="http_request_on_tls_port")
    assert failed["listener"] == "edge"
    # The listener still serves TLS.
    assert proxy.running()


@pytest.mark.parametrize("host, named", [
    (b"example.com", b"example.com"),
    (b"Example.COM:8443", b"Example.COM:8443"),
    (b"[::1]:443", b"[::1]:443"),
    (b"evil.example/<script>", None),
    (b"a b", None),
    (b"x" * 300, None),
    (b"", None),
])
def test_plain_http_host_is_validated(tlsterm_factory, certs, backend, host, named):
    proxy = tlsterm_factory(http_config([listener_config("edge", backend.addr, certs)]))
    raw = raw_exchange(proxy.port("edge"), b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    status, headers, body = split_response(raw)
    assert status == 400
    if named is None:
        assert body == b"This port speaks HTTPS; use https:// URLs\n"
    else:
        assert body == b"This port speaks HTTPS; use https://" + named + b"/\n"


def test_plain_http_without_host_and_in_pieces(tlsterm_factory, certs, backend):
    proxy = tlsterm_factory(http_config([listener_config("edge", backend.addr, certs)]))
    raw = raw_exchange(proxy.port("edge"), b"GET / HTTP/1.0\r\n\r\n")
    assert split_response(raw)[2] == b"This port speaks HTTPS; use https:// URLs\n"
    # Only what has arrived is read: a Host still on its way is not waited for.
    with socket.create_connection(("127.0.0.1", proxy.port("edge")), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\n")
        start = time.monotonic()
        raw = recv_until_eof(sock, timeout=TIMEOUT)
        assert time.monotonic() - start < 5
    status, _, body = split_response(raw)
    assert status == 400 and body == b"This port speaks HTTPS; use https:// URLs\n"
    proxy.wait_count("handshake_failed", 2, reason="http_request_on_tls_port")
