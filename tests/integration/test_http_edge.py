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
    run_tlsterm,
    text,
    to_yaml,
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


# ---- mode: redirect --------------------------------------------------------------


def redirect_listener(name="plain", redirect=None, http=None, timeouts=None, **keys):
    """redirect_listener returns a `mode: redirect` listeners entry: no tls,
    no backend."""
    listener = {"name": name, "mode": "redirect", "listen": ["127.0.0.1:0"]}
    if redirect is not None:
        listener["redirect"] = dict(redirect)
    if http is not None:
        listener["http"] = dict(http)
    if timeouts is not None:
        listener["timeouts"] = dict(timeouts)
    listener.update(keys)
    return listener


def start_redirect(tlsterm_factory, **options):
    proxy = tlsterm_factory(http_config([redirect_listener(**options)]))
    return proxy, proxy.port("plain")


class PlainConn:
    """PlainConn is a plain-HTTP/1.1 client connection with keep-alive:
    request() sends one request and reads one response (its body by
    Content-Length)."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the connection closed")
        self.buf += data

    def read_response(self, method="GET"):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, headers, _ = split_response(head + b"\r\n\r\n")
        length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def request(self, method, target, host="www.example.com", extra=b""):
        head = f"{method} {target} HTTP/1.1\r\n".encode()
        if host is not None:
            head += f"Host: {host}\r\n".encode()
        self.sock.sendall(head + extra + b"\r\n")
        return self.read_response(method)

    def read_eof(self):
        """read_eof returns what arrives until the server closes."""
        return self.buf + recv_until_eof(self.sock)


def test_redirect_308_with_curl_and_access_log(tlsterm_factory):
    proxy, port = start_redirect(tlsterm_factory)
    mark = proxy.mark()
    result = plain_curl(f"http://127.0.0.1:{port}/some/path?q=1&r=%20x")
    assert result.returncode == 0, text(result)
    status, headers, body = split_response(result.stdout)
    assert status == 308
    # The Host's port is the plain one: the https:// URL names none (443).
    assert headers["location"] == "https://127.0.0.1/some/path?q=1&r=%20x"
    assert body == b"Redirecting to https://127.0.0.1/some/path?q=1&r=%20x\n"
    assert int(headers["content-length"]) == len(body)
    assert "connection" not in headers  # keep-alive, HTTP/1.1's default
    assert "strict-transport-security" not in headers
    line = proxy.wait_for("request", since=mark, listener="plain")
    assert line["protocol"] == "http/1.1"
    assert line["status"] == 308
    assert line["method"] == "GET"
    assert line["authority"] == f"127.0.0.1:{port}"
    assert line["path"] == "/some/path?q=1&r=%20x"
    assert line["tls_version"] is None and line["server"] is None
    # curl follows it to the TLS side: the Location is what it requests next.
    result = plain_curl(f"http://localhost:{port}/x", "-o", "/dev/null", "-w", "%{redirect_url}")
    assert result.stdout.decode().endswith("https://localhost/x")


@pytest.mark.parametrize("status, phrase", [
    (301, "Moved Permanently"), (302, "Found"), (307, "Temporary Redirect"),
    (308, "Permanent Redirect")])
def test_redirect_status_and_port(tlsterm_factory, status, phrase):
    proxy, port = start_redirect(tlsterm_factory, redirect={"status": status, "port": 8443})
    raw = raw_exchange(port, b"GET /a?b HTTP/1.1\r\nHost: Example.COM:80\r\n"
                             b"Connection: close\r\n\r\n")
    assert raw.startswith(f"HTTP/1.1 {status} {phrase}\r\n".encode())
    _, headers, _ = split_response(raw)
    assert headers["location"] == "https://Example.COM:8443/a?b"
    assert headers["connection"] == "close"
    proxy.wait_for("request", status=status)


def test_redirect_keep_alive_head_options_absolute_form(tlsterm_factory):
    proxy, port = start_redirect(tlsterm_factory)
    with PlainConn(port) as conn:
        status, headers, body = conn.request("GET", "/one")
        assert (status, headers["location"]) == (308, "https://www.example.com/one")
        status, headers, body = conn.request("HEAD", "/two", host="[2001:db8::1]:80")
        assert (status, headers["location"], body) == (308, "https://[2001:db8::1]/two", b"")
        assert int(headers["content-length"]) > 0
        status, headers, _ = conn.request("OPTIONS", "*")
        assert (status, headers["location"]) == (308, "https://www.example.com/")
        # An absolute-form target names the host; it replaces Host.
        status, headers, _ = conn.request("GET", "http://abs.example:8080/p?q", host="other")
        assert (status, headers["location"]) == (308, "https://abs.example/p?q")
        # Pipelined: answered in order on the same connection.
        conn.sock.sendall(b"GET /p1 HTTP/1.1\r\nHost: a.example\r\n\r\n"
                          b"GET /p2 HTTP/1.1\r\nHost: b.example\r\n\r\n")
        assert conn.read_response()[1]["location"] == "https://a.example/p1"
        assert conn.read_response()[1]["location"] == "https://b.example/p2"
    lines = proxy.wait_count("request", 6)
    assert len({line["client"] for line in lines}) == 1
    # HTTP/1.0 keep-alive is honoured too.
    with PlainConn(port) as conn:
        conn.sock.sendall(b"GET /old HTTP/1.0\r\nHost: h.example\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = conn.read_response()
        assert headers["connection"] == "keep-alive"
        conn.sock.sendall(b"GET /old2 HTTP/1.0\r\nHost: h.example\r\n\r\n")
        status, headers, _ = conn.read_response()
        assert (status, headers["connection"]) == (308, "close")
        assert conn.read_eof() == b""


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\n\r\n",                                      # no Host
    b"GET / HTTP/1.0\r\n\r\n",                                      # HTTP/1.0, no Host
    b"GET / HTTP/1.1\r\nHost: evil.example/path\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",  # two Hosts
    b"GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a.example\r\n\r\n",                  # space before the colon
    b"GET / HTTP/1.1\nHost: a.example\n\n",                         # bare LF
    b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
])
def test_redirect_bad_request_gets_400_and_close(tlsterm_factory, request_bytes):
    proxy, port = start_redirect(tlsterm_factory)
    raw = raw_exchange(port, request_bytes)
    status, headers, body = split_response(raw)
    assert (status, headers["connection"]) == (400, "close")
    assert "location" not in headers
    line = proxy.wait_for("request", status=400)
    assert line["reason"] == "bad_request"


def test_redirect_request_with_body_closes(tlsterm_factory):
    proxy, port = start_redirect(tlsterm_factory)
    with PlainConn(port) as conn:
        status, headers, body = conn.request("POST", "/form", extra=b"Content-Length: 11\r\n")
        assert (status, headers["connection"]) == (308, "close")
        assert headers["location"] == "https://www.example.com/form"
        conn.sock.sendall(b"hello world")
        assert conn.read_eof() == b""


def test_redirect_header_limit(tlsterm_factory):
    proxy, port = start_redirect(tlsterm_factory, http={"max_request_header_bytes": "1KiB"})
    raw = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Big: " + b"x" * 2000 +
                       b"\r\n\r\n")
    status, headers, _ = split_response(raw)
    assert (status, headers["connection"]) == (431, "close")
    assert proxy.wait_for("request", status=431)["reason"] == "header_too_large"
    # Just under the limit is fine.
    with PlainConn(port) as conn:
        assert conn.request("GET", "/", extra=b"X-Big: " + b"x" * 800 + b"\r\n")[0] == 308


def test_redirect_timeouts(tlsterm_factory):
    proxy, port = start_redirect(tlsterm_factory, timeouts={"request_header": "1s", "idle": "2s"})
    # A head that does not complete in time: 408.
    with PlainConn(port) as conn:
        start = time.monotonic()
        conn.sock.sendall(b"GET / HTTP/1.1\r\nHost: a.example\r\n")
        status, headers, _ = conn.read_response()
        assert (status, headers["connection"]) == (408, "close")
        assert 0.8 < time.monotonic() - start < 5
    assert proxy.wait_for("request", status=408)["reason"] == "header_timeout"
    # A connection that never sends a byte: closed at request_header, no answer.
    with PlainConn(port) as conn:
        start = time.monotonic()
        assert conn.read_eof() == b""
        assert 0.8 < time.monotonic() - start < 5
    # Idle after an answer: closed at timeouts.idle, quietly.
    with PlainConn(port) as conn:
        assert conn.request("GET", "/")[0] == 308
        start = time.monotonic()
        assert conn.read_eof() == b""
        assert 1.8 < time.monotonic() - start < 6
    proxy.wait_for("conn_closed", listener="plain", reason="idle_timeout")


def test_redirect_beside_https_and_check_output(tlsterm_factory, certs, backend, tmp_path):
    https = http_listener("web", backend, certs, http={"hsts": {"max_age": "365d"}})
    config = http_config([redirect_listener(redirect={"status": 301, "port": 8443}), https])
    proxy = tlsterm_factory(config)
    raw = raw_exchange(proxy.port("plain"), b"GET /x HTTP/1.1\r\nHost: a.example\r\n"
                                            b"Connection: close\r\n\r\n")
    assert split_response(raw)[1]["location"] == "https://a.example:8443/x"
    result = run_tlsterm("--check", "-c", str(proxy.config_path))
    out = result.stdout.decode()
    assert result.returncode == 0, text(result)
    assert "listener plain:\n  mode: redirect\n  redirect: 301 to https://HOST:8443/PATH\n" in out
    assert "  http.hsts: max-age=31536000\n" in out


# ---- HSTS ------------------------------------------------------------------------


HSTS_FULL = {"max_age": "365d", "include_subdomains": True, "preload": True}
HSTS_FULL_VALUE = "max-age=31536000; includeSubDomains; preload"


def start_https(tlsterm_factory, certs, backend, hsts):
    http = {"hsts": hsts} if hsts is not None else None
    proxy = tlsterm_factory(http_config([http_listener("web", backend, certs, http=http)]))
    return proxy, proxy.port("web")


def test_hsts_on_h1_and_h2_responses(tlsterm_factory, certs, backend):
    proxy, port = start_https(tlsterm_factory, certs, backend, HSTS_FULL)
    with H1Conn(port, certs) as conn:
        response = conn.request("GET", "/")
        assert response.status == 200
        assert response.header("Strict-Transport-Security") == HSTS_FULL_VALUE
        # The backend's own field is kept, not doubled.
        response = conn.request("GET", "/hsts")
        assert [v for n, v in response.headers if n.lower() == "strict-transport-security"] == \
            ["max-age=60"]
        # tlsterm's own answers carry it too (431 here).
        conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"x" * 70000 + b"\r\n\r\n")
        response = conn.read_response()
        assert response.status == 431
        assert response.header("Strict-Transport-Security") == HSTS_FULL_VALUE
    with H2Conn(port, certs) as conn:
        stream = conn.get("/")
        assert stream.status == 200
        assert stream.header("strict-transport-security") == HSTS_FULL_VALUE
        stream = conn.get("/hsts")
        assert [v for n, v in stream.headers if n == "strict-transport-security"] == ["max-age=60"]
        stream = conn.get("/status/404")
        assert stream.header("strict-transport-security") == HSTS_FULL_VALUE
    result = curl(f"https://localhost:{port}/", port, certs.ca, "-sS", "-D", "-", "-o",
                  "/dev/null")
    assert f"strict-transport-security: {HSTS_FULL_VALUE}\r\n" in result.stdout.decode()


def test_hsts_on_own_error_responses(tlsterm_factory, certs):
    # No backend listens: every request gets tlsterm's own 502.
    dead = f"127.0.0.1:{free_port()}"
    proxy = tlsterm_factory(http_config([http_listener(
        "web", dead, certs, http={"hsts": {"max_age": "1h"}})]))
    port = proxy.port("web")
    with H1Conn(port, certs) as conn:
        response = conn.request("GET", "/")
        assert response.status == 502
        assert response.header("Strict-Transport-Security") == "max-age=3600"
    with H2Conn(port, certs) as conn:
        stream = conn.get("/")
        assert stream.status == 502
        assert stream.header("strict-transport-security") == "max-age=3600"


def test_hsts_off_by_default(tlsterm_factory, certs, backend):
    proxy, port = start_https(tlsterm_factory, certs, backend, None)
    with H1Conn(port, certs) as conn:
        assert conn.request("GET", "/").header("Strict-Transport-Security") is None
    with H2Conn(port, certs) as conn:
        assert conn.get("/").header("strict-transport-security") is None


def test_hsts_check_output_and_preload_warning(tmp_path, certs, backend):
    listener = http_listener("web", backend, certs,
                             http={"hsts": {"max_age": "0", "preload": True}})
    path = tmp_path / "hsts.yaml"
    path.write_text(to_yaml(http_config([listener])))
    result = run_tlsterm("--check", "-c", str(path))
    assert result.returncode == 0, text(result)
    assert "  http.hsts: max-age=0; preload\n" in result.stdout.decode()
    warning = [line for line in result.stderr.decode().splitlines() if "hsts_preload" in line]
    assert len(warning) == 1 and "include_subdomains" in warning[0]


@pytest.mark.parametrize("listener_yaml, where, words", [
    # tls and backend on a redirect listener; redirect on the others.
    ("  - name: plain\n    mode: redirect\n    listen: 127.0.0.1:0\n    tls: {}\n",
     (6, 5), "'tls' has no place here"),
    ("  - name: plain\n    listen: 127.0.0.1:0\n    backend: {servers: [127.0.0.1:1]}\n"
     "    mode: redirect\n", (5, 5), "'backend' has no place here"),
    ("  - name: plain\n    mode: redirect\n    listen: 127.0.0.1:0\n"
     "    http: {hsts: {max_age: 1d}}\n", (6, 12), "hsts is never sent over plain HTTP"),
    ("  - name: plain\n    mode: redirect\n    listen: 127.0.0.1:0\n"
     "    timeouts: {handshake: 1s}\n", (6, 16), "'timeouts.handshake' has no effect"),
    ("  - name: plain\n    mode: redirect\n    listen: 127.0.0.1:0\n"
     "    redirect: {status: 303}\n", (6, 24), "invalid redirect status '303'"),
    ("  - name: web\n    mode: http\n    listen: 127.0.0.1:0\n    tls: {certificates: []}\n"
     "    backend: {servers: [127.0.0.1:1]}\n    redirect: {status: 301}\n",
     (8, 5), "redirect settings need mode: redirect"),
    ("  - name: web\n    mode: http\n    listen: 127.0.0.1:0\n    tls: {certificates: []}\n"
     "    backend: {servers: [127.0.0.1:1]}\n    http: {hsts: {max_age: 500ms}}\n",
     (8, 28), "invalid duration '500ms' for 'max_age'"),
])
def test_redirect_and_hsts_config_errors(tmp_path, listener_yaml, where, words):
    path = tmp_path / "bad.yaml"
    path.write_text("log: {level: warn}\nlisteners:\n" + listener_yaml)
    result = run_tlsterm("--check", "-c", str(path))
    assert result.returncode != 0
    errors = result.stderr.decode()
    assert f"{path}:{where[0]}:{where[1]}: " in errors, errors
    assert words in errors, errors
