"""The HTTP/1.1 front of http mode (mode_h1.c): keep-alive, pipelining in
order, tlsterm's own 400/408/431, uploads re-framed byte-exact (chunked and
Content-Length), and a WebSocket upgrade handed over to the byte pump.

The backend is a small threaded HTTP/1.1 server in this file, so each test
says exactly what the backend does:
  GET /ws with Upgrade: websocket  101, then "ready\\n" and an echo of every byte
  POST /echo                       200 with the request body (Content-Length)
  POST /echo-chunked               200 with the request body, chunked
  anything else                    200 with "path=<target>\\n"
"""

import hashlib
import os
import signal
import socket
import socketserver
import threading
import time

import pytest

from tlsterm_harness import (
    admin_addr,
    client_context,
    curl,
    listener_config,
    samples,
    text,
    tls_connect,
    tls_recv_all,
    tlsterm_config,
    total,
    wait_until,
)

# ---- the backend ---------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.buf = b""

    def _read_more(self):
        data = self.request.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def _take_line(self):
        while b"\r\n" not in self.buf:
            self._read_more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._read_more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_request(self):
        while b"\r\n\r\n" not in self.buf:
            self._read_more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        fields = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip()
        body = b""
        if "chunked" in fields.get("transfer-encoding", "").lower():
            while True:
                size = int(self._take_line().split(b";")[0], 16)
                if size == 0:
                    while self._take_line() != b"":
                        pass
                    break
                body += self._take(size)
                self._take(2)
        elif "content-length" in fields:
            body = self._take(int(fields["content-length"]))
        return method, target, fields, body

    def handle(self):
        try:
            while True:
                method, target, fields, body = self._read_request()
                if target == "/ws" and fields.get("upgrade", "").lower() == "websocket":
                    self.request.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\n\r\nready\n"
                    )
                    if self.buf:
                        self.request.sendall(self.buf)
                    while True:
                        data = self.request.recv(65536)
                        if not data:
                            return
                        self.request.sendall(data)
                if target == "/echo":
                    self.request.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                    )
                elif target == "/echo-chunked":
                    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    for i in range(0, len(body), 10000):
                        piece = body[i : i + 10000]
                        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
                    self.request.sendall(out + b"0\r\n\r\n")
                else:
                    reply = f"path={target}\n".encode()
                    self.request.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply
                    )
        except (EOFError, ConnectionError):
            return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def backend():
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, backend, certs):
    listener = listener_config("web", backend, certs)
    listener["mode"] = "http"
    listener["timeouts"]["request_header"] = "1s"
    listener["http"] = {"max_request_header_bytes": 8192}
    config = tlsterm_config([listener])
    config["log"]["access"] = True
    return module_tlsterm_factory(config)


def h1_connect(proxy, certs):
    ctx = client_context(str(certs.ca))
    ctx.set_alpn_protocols(["http/1.1"])
    return tls_connect(proxy.port("web"), ctx)


def read_response(tls, buf=b""):
    """read_response reads one response (Content-Length or chunked framing)
    from |tls| and returns (status, fields, body, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        data = tls.recv(65536)
        assert data, f"EOF before a response head: {buf!r}"
        buf += data
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        fields.setdefault(name.strip().lower(), value.strip())

    def need(n):
        nonlocal buf
        while len(buf) < n:
            data = tls.recv(65536)
            assert data, "EOF inside a response body"
            buf += data

    body = b""
    if "content-length" in fields:
        n = int(fields["content-length"])
        need(n)
        body, buf = buf[:n], buf[n:]
    elif fields.get("transfer-encoding") == "chunked":
        while True:
            while b"\r\n" not in buf:
                need(len(buf) + 1)
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                while not buf.startswith(b"\r\n"):
                    need(len(buf) + 1)
                    if buf.startswith(b"\r\n"):
                        break
                    line_end = buf.find(b"\r\n")
                    if line_end > 0:
                        buf = buf[line_end + 2 :]
                buf = buf[2:]
                break
            need(size + 2)
            body, buf = body + buf[:size], buf[size + 2 :]
    return status, fields, body, buf


def access_lines(proxy, since, count, **fields):
    proxy.wait_count("request", count, since=since, **fields)
    return proxy.find("request", since=since, **fields)


# ---- keep-alive and pipelining --------------------------------------------------------


def test_keep_alive_several_urls_one_connection(proxy, certs):
    port = proxy.port("web")
    urls = [f"https://localhost:{port}/a{i}" for i in range(4)]
    # curl() puts its |url| last.
    result = curl(urls[-1], port, str(certs.ca), "--http1.1", "-v", *urls[:-1])
    assert result.returncode == 0, text(result)
    assert result.stdout == b"".join(f"path=/a{i}\n".encode() for i in range(4))
    # curl reused its one connection for every URL.
    err = result.stderr.decode()
    assert err.count("Connected to") == 1, err
    assert "Re-using existing connection" in err or "Reusing existing connection" in err


def test_pipelined_requests_answered_in_order(proxy, certs):
    tls = h1_connect(proxy, certs)
    requests = b"".join(
        f"GET /p{i} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode() for i in range(20)
    )
    tls.sendall(requests + b"GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    buf = b""
    for i in range(20):
        status, fields, body, buf = read_response(tls, buf)
        assert (status, body) == (200, f"path=/p{i}\n".encode())
        assert "connection" not in fields
    status, fields, body, buf = read_response(tls, buf)
    assert (status, body, fields.get("connection")) == (200, b"path=/last\n", "close")
    assert buf == b"" and tls_recv_all(tls) == b""
    tls.close()


def test_absolute_form_target(proxy, certs):
    tls = h1_connect(proxy, certs)
    tls.sendall(b"GET http://localhost/abs?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, _, body, _ = read_response(tls)
    assert (status, body) == (200, b"path=/abs?q=1\n")
    tls.close()


# ---- tlsterm's own answers --------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_and_close(proxy, certs, request_bytes):
    mark = proxy.mark()
    tls = h1_connect(proxy, certs)
    tls.sendall(request_bytes)
    status, fields, body, rest = read_response(tls)
    assert status == 400 and fields.get("connection") == "close" and body
    assert rest + tls_recv_all(tls) == b""
    tls.close()
    (line,) = access_lines(proxy, mark, 1, reason="bad_request")
    assert line["status"] == 400


def test_huge_header_gets_431(proxy, certs):
    mark = proxy.mark()
    tls = h1_connect(proxy, certs)
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    status, fields, body, _ = read_response(tls)
    assert status == 431 and fields.get("connection") == "close" and body
    tls.close()
    access_lines(proxy, mark, 1, reason="header_too_large")


def test_too_many_fields_gets_431(proxy, certs):
    tls = h1_connect(proxy, certs)
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(101))
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n" + fields + b"\r\n")
    status, _, _, _ = read_response(tls)
    assert status == 431
    tls.close()


def test_slow_header_gets_408(proxy, certs):
    mark = proxy.mark()
    tls = h1_connect(proxy, certs)
    started = time.monotonic()
    tls.sendall(b"GET / HTTP/1.1\r\nHost: local")
    status, fields, _, _ = read_response(tls)
    elapsed = time.monotonic() - started
    assert status == 408 and fields.get("connection") == "close"
    assert 0.8 <= elapsed < 5, elapsed
    tls.close()
    access_lines(proxy, mark, 1, reason="header_timeout")


def test_silent_connection_closes_quietly(proxy, certs):
    tls = h1_connect(proxy, certs)
    assert tls_recv_all(tls, timeout=5) == b""
    tls.close()


# ---- uploads -------------------------------------------------------------------------------


def test_content_length_upload_echoed_byte_exact(proxy, certs):
    body = os.urandom(1 << 20)
    tls = h1_connect(proxy, certs)
    for target in (b"/echo", b"/echo-chunked"):
        tls.sendall(
            b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
            % (target, len(body))
            + body
        )
        status, fields, got, rest = read_response(tls)
        assert status == 200 and rest == b""
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    # The backend's chunked answer reaches an HTTP/1.1 client chunked.
    assert fields.get("transfer-encoding") == "chunked"
    tls.close()


def test_chunked_upload_echoed_byte_exact(proxy, certs):
    body = os.urandom(300_000)
    tls = h1_connect(proxy, certs)
    tls.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(0, len(body), 7777):
        piece = body[i : i + 7777]
        tls.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    tls.sendall(b"0\r\n\r\n")
    status, _, got, _ = read_response(tls)
    assert status == 200 and got == body
    tls.close()


def test_curl_upload_both_framings(proxy, certs, tmp_path):
    data = tmp_path / "upload.bin"
    data.write_bytes(os.urandom(2_000_000))
    port = proxy.port("web")
    url = f"https://localhost:{port}/echo"
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        result = curl(url, port, str(certs.ca), "--http1.1", "--data-binary", f"@{data}", *extra)
        assert result.returncode == 0, text(result)
        assert result.stdout == data.read_bytes()


def test_http10_response_is_close_delimited(proxy, certs):
    tls = h1_connect(proxy, certs)
    tls.sendall(b"POST /echo-chunked HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
    raw = tls_recv_all(tls)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"hello"
    tls.close()


# ---- WebSocket ------------------------------------------------------------------------------


def test_websocket_upgrade_becomes_a_byte_stream(proxy, certs):
    mark = proxy.mark()
    tls = h1_connect(proxy, certs)
    tls.sendall(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        b"early bytes\n"
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += tls.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"upgrade: websocket" in head.lower()
    expected = b"ready\nearly bytes\n"
    while len(buf) < len(expected):
        buf += tls.recv(65536)
    assert buf == expected
    for i in range(5):
        message = os.urandom(20000 * (i + 1))
        tls.sendall(message)
        got = b""
        while len(got) < len(message):
            got += tls.recv(65536)
        assert got == message
    tls.close()
    (line,) = access_lines(proxy, mark, 1, path="/ws")
    assert line["status"] == 101


def test_websocket_tunnel_counts_as_an_active_connection(tlsterm_factory, backend, certs):
    """The tunnel after a 101 is a connection to the server for as long as
    it lasts: tlsterm_backend_server_connections_active (what least_conn
    balances on) stays 1 while it is open and goes back to 0 when it ends."""
    listener = listener_config("web", backend, certs)
    listener["mode"] = "http"
    config = tlsterm_config([listener])
    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy = tlsterm_factory(config)
    admin = admin_addr(proxy)

    def active():
        return total(samples(admin), "tlsterm_backend_server_connections_active",
                     server=backend)

    assert active() == 0
    tls = h1_connect(proxy, certs)
    tls.sendall(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    buf = b""
    while b"ready\n" not in buf:
        data = tls.recv(65536)
        assert data, buf
        buf += data
    assert buf.startswith(b"HTTP/1.1 101 "), buf
    # Bytes both ways: the tunnel is the byte pump's now.
    tls.sendall(b"ping\n")
    got = b""
    while got != b"ping\n":
        data = tls.recv(65536)
        assert data, got
        got += data
    assert active() == 1
    tls.close()
    wait_until(lambda: active() == 0, what="the tunnel's server released")
    proxy.wait_for("conn_closed")


# ---- failures and drain ------------------------------------------------------------------------


def test_backend_down_gets_502_and_keep_alive(tlsterm_factory, certs, backend):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_addr = "127.0.0.1:%d" % dead.getsockname()[1]
    dead.close()
    listener = listener_config("web", dead_addr, certs)
    listener["mode"] = "http"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    tls = h1_connect(proxy, certs)
    for _ in range(2):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, fields, body, _ = read_response(tls)
        # The request was read whole: the connection stays open.
        assert status == 502 and "connection" not in fields and body
    # An upload the backend never saw is not read to its end: close.
    tls.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nxx")
    status, fields, _, _ = read_response(tls)
    assert status == 502 and fields.get("connection") == "close"
    tls.close()


def test_expect_100_continue_is_relayed(proxy, certs):
    tls = h1_connect(proxy, certs)
    tls.sendall(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    # Python's backend here does not answer 100 itself; tlsterm must not
    # invent one either: the body is sent after a pause, as curl does.
    time.sleep(0.2)
    tls.sendall(b"hello")
    status, _, body, _ = read_response(tls)
    assert (status, body) == (200, b"hello")
    tls.close()


def test_drain_closes_idle_and_says_close_on_busy(tlsterm_factory, certs, backend):
    listener = listener_config("web", backend, certs)
    listener["mode"] = "http"
    proxy = tlsterm_factory(tlsterm_config([listener], drain_timeout="10s"))
    idle = h1_connect(proxy, certs)
    idle.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert read_response(idle)[0] == 200
    busy = h1_connect(proxy, certs)
    busy.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhalf")
    time.sleep(0.2)
    proxy.send_signal(signal.SIGTERM)
    # The idle keep-alive connection ends at once, with close_notify.
    assert tls_recv_all(idle, timeout=5) == b""
    busy.sendall(b"-the-rest")
    status, fields, body, rest = read_response(busy)
    assert (status, body, fields.get("connection")) == (200, b"half-the-r", "close")
    assert rest + tls_recv_all(busy, timeout=5) == b""
    proxy.wait_exit()
