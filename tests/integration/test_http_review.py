"""HTTP mode under hostile or unusual peers: cases found in review of issue 9.

- A backend whose Connection field names a hop-by-hop field that is not the
  next one: the named field never reaches the client.
- An h2 request whose :path is not origin form (a :scheme other than
  http/https makes nghttp2 skip its own check): 400, nothing reaches the
  backend.
- An h2 stream that waits on the client forever (an upload that never comes,
  a header block never finished): timeouts.idle / timeouts.request_header
  end it, and its backend connection.

RawBackend answers each request with scripted bytes, for responses
http_backend.py would never send."""

import socket
import threading
import time

import pytest

from http_harness import H1Conn, H2Conn, H2Stream, HttpProxy, tlsterm_only
from test_h2_conformance import frame
from tlsterm_harness import TIMEOUT


class RawBackend:
    """RawBackend is a plain TCP server on a thread: for each request head
    it reads (and a Content-Length body, if any) it writes |response|
    (bytes, or a function of the request head returning bytes) and, unless
    |keep_alive|, closes. |heads| collects the request heads it read."""

    def __init__(self, response, keep_alive=True):
        self.response = response
        self.keep_alive = keep_alive
        self.heads = []
        self.accepted = 0
        self.closed = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                with self.lock:
                    self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[length:]
                response = self.response(head) if callable(self.response) else self.response
                conn.sendall(response)
                if not self.keep_alive:
                    return
        except OSError:
            return
        finally:
            conn.close()
            with self.lock:
                self.closed += 1

    def stop(self):
        self.sock.close()


@pytest.fixture
def raw_backend():
    backends = []

    def make(response, **kw):
        backend = RawBackend(response, **kw)
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.stop()


def open_stream(conn, fields, end_stream=True):
    """open_stream queues HEADERS with |fields| as they are (pseudo-fields
    included) on a new stream of |conn|, without sending them yet."""
    sid = conn.h2.get_next_available_stream_id()
    conn.h2.send_headers(sid, fields, end_stream=end_stream)
    stream = H2Stream(sid, False)
    conn.streams[sid] = stream
    return stream


def h2_raw_request(conn, fields, end_stream=True, timeout=TIMEOUT):
    """h2_raw_request sends |fields| as they are and waits for the stream to
    end or be reset."""
    stream = open_stream(conn, fields, end_stream)
    conn.flush()
    if end_stream:
        conn.wait(lambda: stream.done, timeout, "the answer")
    return stream


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ---- hop-by-hop fields of the response ------------------------------------------


NAMED_LATER = (b"HTTP/1.1 200 OK\r\nX-Before: 1\r\nConnection: x-secret, X-" + b"L" * 140 +
               b"\r\nServer: raw\r\nX-Secret: internal\r\nX-" + b"L" * 140 +
               b": long\r\nContent-Length: 3\r\n\r\nok\n")


@tlsterm_only
def test_response_field_named_by_connection_removed_wherever_it_is(tlsterm_factory, raw_backend,
                                                                   certs):
    """Connection names X-Secret (and a long name); other fields sit between
    them: neither may reach the client, over HTTP/1.1 or HTTP/2."""
    proxy = HttpProxy(tlsterm_factory, raw_backend(NAMED_LATER), certs)
    long_name = "x-" + "l" * 140
    with H1Conn(proxy.port, certs) as conn:
        response = conn.request("GET", "/")
    names = {n.lower() for n, _ in response.headers}
    assert response.status == 200 and response.body == b"ok\n"
    assert "x-before" in names and "server" in names
    assert not names & {"x-secret", long_name}, response.headers
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get("/")
    names = {n for n, _ in stream.headers}
    assert stream.status == 200 and "server" in names
    assert not names & {"x-secret", long_name}, stream.headers


# ---- the h2 request target ------------------------------------------------------


@tlsterm_only
@pytest.mark.parametrize("scheme,path", [
    ("foo", "http://evil.example/admin"),
    ("foo", "admin"),
    ("foo", "*"),
])
def test_h2_path_not_origin_form_refused(tlsterm_factory, raw_backend, certs, scheme, path):
    """RFC 9113 8.3.1: :path is origin form, or "*" for OPTIONS. nghttp2
    checks that only for http and https schemes; whatever the scheme, a
    target an HTTP/1.1 backend would read as absolute form (or not at all)
    is refused with 400 and never sent."""
    backend = raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
    proxy = HttpProxy(tlsterm_factory, backend, certs)
    mark = proxy.mark()
    with H2Conn(proxy.port, certs, validate=False) as conn:
        stream = h2_raw_request(conn, [(":method", "GET"), (":scheme", scheme),
                                       (":authority", "localhost"), (":path", path)])
        assert stream.status == 400 or stream.reset is not None, (stream.status, stream.reset)
        assert conn.get("/").status == 200  # the connection goes on
    assert [h for h in backend.heads if not h.startswith(b"GET / ")] == []
    if stream.status == 400:
        proxy.requests(1, since=mark, status=400, reason="bad_request")


# ---- deadlines of streams that wait on the client --------------------------------


@tlsterm_only
def test_h2_stalled_upload_ends_at_idle_timeout(tlsterm_factory, http_backend_factory, certs):
    """A POST whose body never comes holds its backend connection until
    timeouts.idle, not forever."""
    backend = http_backend_factory()
    proxy = HttpProxy(tlsterm_factory, backend, certs, idle="1s")
    mark = backend.mark()
    with H2Conn(proxy.port, certs) as conn:
        conn.request("POST", "/sha", body=b"", end_stream=False)
        backend.wait_for("open", since=mark)
        start = time.monotonic()
        conn.wait(lambda: conn.goaways or conn.pipe.eof, 10, "the connection's end")
        assert time.monotonic() - start < 5
    backend.wait_for("close", since=mark, timeout=5)


@tlsterm_only
def test_h2_unfinished_header_block_ends_at_request_header_timeout(tlsterm_factory,
                                                                    http_backend_factory, certs):
    """A HEADERS without END_HEADERS whose CONTINUATION never comes, after a
    first request: the connection ends at timeouts.request_header."""
    proxy = HttpProxy(tlsterm_factory, http_backend_factory(), certs,
                      timeouts={"request_header": "1s"})
    with H2Conn(proxy.port, certs) as conn:
        assert conn.get("/").status == 200
        encoded = conn.h2.encoder.encode([(":method", "GET"), (":scheme", "https"),
                                          (":authority", "localhost"), (":path", "/")])
        conn.pipe.write(frame(0x1, 0x1, 3, encoded))  # HEADERS, END_STREAM, no END_HEADERS
        start = time.monotonic()
        deadline = start + 10
        while not conn.pipe.eof:
            assert time.monotonic() < deadline, "the connection did not end"
            conn.pipe.io(0.2)
        assert time.monotonic() - start < 5


# ---- backend.max_connections and the keep-alive race ------------------------------


def max_open(backend):
    """max_open returns how many backend connections were open at once."""
    now = peak = 0
    for event in backend.find():
        if event.get("event") == "open":
            now += 1
            peak = max(peak, now)
        elif event.get("event") == "close":
            now -= 1
    return peak


@tlsterm_only
def test_retry_keeps_its_slot(tlsterm_factory, http_backend_factory, certs):
    """A GET retried after the keep-alive race reconnects in the slot of the
    connection that failed: a request queued for backend.max_connections
    does not take that slot in between, so the limit holds."""
    backend = http_backend_factory("--race-every", 1)
    proxy = HttpProxy(tlsterm_factory, backend, certs, backend_opts={"max_connections": 1},
                      timeouts={"queue": "10s"})
    with H2Conn(proxy.port, certs) as conn:
        assert conn.get("/").status == 200  # leaves one pooled connection
        backend.wait_for("request")
        # Both in one write: the second is queued while the first meets the
        # race on the pooled connection and is retried.
        first, second = (open_stream(conn, [(":method", "GET"), (":scheme", "https"),
                                             (":authority", "localhost"), (":path", "/")])
                         for _ in range(2))
        conn.flush()
        conn.wait(lambda: first.done and second.done, what="both responses")
        assert (first.status, second.status) == (200, 200)
    assert max_open(backend) == 1, backend.find()
