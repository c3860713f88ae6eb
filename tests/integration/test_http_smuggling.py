"""Request smuggling and desync attempts against http mode (issue 10,
"Request smuggling, HTTP/1.1 and HTTP/2 -> HTTP/1.1").

Every case is sent by a raw TLS client: HTTP/1.1 as bytes (ALPN
http/1.1), HTTP/2 as frames written by hand (ALPN h2; field blocks are
HPACK literals built here, so nothing validates or normalises them). Behind
tlsterm sits RecordingBackend, which keeps the exact bytes each backend
connection carried. A case passes when:

  - the client is refused: HTTP/1.1 gets 400 (501 for a Transfer-Encoding
    other than exactly `chunked`) and the connection closes; HTTP/2 gets
    RST_STREAM or GOAWAY with PROTOCOL_ERROR (RFC 9113 8.1.1, 8.2), with no
    response from the backend;
  - the backend's bytes, parsed strictly (request line, fields, framing by
    Content-Length or chunked), never hold a second request hidden in the
    first one's body: no request for /smuggled ever, and at most the one
    request the case sent (usually none);
  - a well-behaved request on a new connection is served afterwards.

Each attack hides `GET /smuggled` where a desynchronised parser would read
it as the next request. The legal counterparts (a chunked upload, an h2
upload without content-length) are checked for the exact framing the
backend receives.
"""

import re
import socket
import socketserver
import ssl
import struct
import threading
import time

import pytest
from hpack import Decoder
from hyperframe.frame import Frame

from tlsterm_harness import TIMEOUT, client_context, listener_config, tlsterm_config

def smuggled(case):
    """smuggled returns the request a case hides: GET /smuggled-<case>."""
    return b"GET /smuggled-%s HTTP/1.1\r\nHost: localhost\r\n\r\n" % case.encode()


SMUGGLED = smuggled("legal")

# ---- strict HTTP/1.1 request parsing (what the backend received) ----------------

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/1\.1")
_FIELD_VALUE = re.compile(rb"[\x21-\x7e\x80-\xff]([\x20-\x7e\x80-\xff\t]*[\x21-\x7e\x80-\xff])?|")


class Desync(Exception):
    """Desync: the bytes are not a well-formed HTTP/1.1 request stream."""


class Message:
    def __init__(self, method, target, fields, body, framing):
        self.method, self.target, self.fields = method, target, fields
        self.body, self.framing = body, framing
        self.trailers = []

    def values(self, name):
        return [v for n, v in self.fields if n.lower() == name]


def parse_one(buf, pos):
    """parse_one parses the request at buf[pos:], strictly. It returns
    (Message, end) or None when the bytes end before the request does, and
    raises Desync on anything a lenient parser could read two ways."""
    head_end = buf.find(b"\r\n\r\n", pos)
    if head_end < 0:
        if b"\n" in buf[pos:].replace(b"\r\n", b""):
            raise Desync(f"bare LF in a head: {bytes(buf[pos:pos + 200])!r}")
        return None
    lines = bytes(buf[pos:head_end]).split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if not match:
        raise Desync(f"bad request line {lines[0]!r}")
    fields = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        value = value.strip(b" \t")
        if not sep or not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise Desync(f"bad field line {line!r}")
        fields.append((name.decode(), value.decode("latin-1")))
    msg = Message(match.group(1).decode(), match.group(2).decode(), fields, b"", None)
    te, cl = msg.values("transfer-encoding"), msg.values("content-length")
    if te and cl:
        raise Desync("Content-Length and Transfer-Encoding")
    if len(cl) > 1 or (cl and not re.fullmatch(r"[0-9]{1,18}", cl[0])):
        raise Desync(f"Content-Length {cl}")
    if te and te != ["chunked"]:
        raise Desync(f"Transfer-Encoding {te}")
    at = head_end + 4
    if cl:
        n = int(cl[0])
        if len(buf) < at + n:
            return None
        msg.body, msg.framing = bytes(buf[at:at + n]), "length"
        return msg, at + n
    if not te:
        msg.framing = "none"
        return msg, at
    msg.framing = "chunked"
    body = bytearray()
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None
        size_line = bytes(buf[at:line_end])
        size_text = size_line.split(b";", 1)[0]
        if not re.fullmatch(rb"[0-9a-fA-F]{1,15}", size_text):
            raise Desync(f"chunk size line {size_line!r}")
        size = int(size_text, 16)
        at = line_end + 2
        if size == 0:
            while True:
                line_end = buf.find(b"\r\n", at)
                if line_end < 0:
                    return None
                line = bytes(buf[at:line_end])
                at = line_end + 2
                if not line:
                    msg.body = bytes(body)
                    return msg, at
                name, sep, value = line.partition(b":")
                if not sep or not _TOKEN.fullmatch(name):
                    raise Desync(f"bad trailer {line!r}")
                msg.trailers.append((name.decode(), value.strip().decode("latin-1")))
        if len(buf) < at + size + 2:
            return None
        body += buf[at:at + size]
        if buf[at + size:at + size + 2] != b"\r\n":
            raise Desync(f"chunk of {size} not followed by CRLF")
        at += size + 2


def parse_stream(buf):
    """parse_stream parses a whole connection's bytes: (the complete
    requests, the bytes of an unfinished last one)."""
    messages, pos = [], 0
    while pos < len(buf):
        parsed = parse_one(buf, pos)
        if parsed is None:
            break
        msg, pos = parsed
        messages.append(msg)
    return messages, bytes(buf[pos:])


# ---- the recording backend ----------------------------------------------------------


class _Recorder(socketserver.BaseRequestHandler):
    """One backend connection: every byte is recorded; each complete
    request is answered 200 "ok <target>". /early answers before it reads
    the body (then reads it on, by its framing)."""

    def handle(self):
        record = self.server.open_record()
        buf, pos, answered_early = bytearray(), 0, set()
        sock = self.request
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                with self.server.lock:
                    record["bytes"] += data
                buf += data
                while True:
                    try:
                        parsed = parse_one(buf, pos)
                    except Desync as e:
                        record["desync"] = str(e)
                        return
                    early = buf[pos:].startswith(b"POST /early")
                    if parsed is None:
                        if early and pos not in answered_early and b"\r\n\r\n" in buf[pos:]:
                            answered_early.add(pos)
                            sock.sendall(b"HTTP/1.1 417 Expectation Failed\r\n"
                                         b"Content-Length: 0\r\n\r\n")
                        break
                    msg, start, pos = parsed[0], pos, parsed[1]
                    if early:
                        if start not in answered_early:
                            sock.sendall(b"HTTP/1.1 417 Expectation Failed\r\n"
                                         b"Content-Length: 0\r\n\r\n")
                        continue
                    reply = f"ok {msg.target}\n".encode()
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(reply)
                                 + reply)
        except OSError:
            return
        finally:
            with self.server.lock:
                record["closed"] = True


class RecordingBackend(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.lock = threading.Lock()
        self.records = []

    def open_record(self):
        record = {"bytes": bytearray(), "closed": False, "desync": None}
        with self.lock:
            self.records.append(record)
        return record

    @property
    def addr(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def snapshot(self):
        with self.lock:
            return [dict(r, bytes=bytes(r["bytes"])) for r in self.records]

    def requests(self):
        """requests parses every connection's bytes so far: [(record,
        messages, unfinished bytes)]; a Desync fails the test."""
        out = []
        for record in self.snapshot():
            assert record["desync"] is None, \
                f"the backend read a malformed stream: {record['desync']}\n{record['bytes']!r}"
            try:
                messages, rest = parse_stream(record["bytes"])
            except Desync as e:
                raise AssertionError(f"desync on a backend connection: {e}\n"
                                     f"{record['bytes']!r}") from e
            out.append((record, messages, rest))
        return out

    def targets(self):
        return [m.target for _, messages, _ in self.requests() for m in messages]


@pytest.fixture(scope="module")
def backend():
    server = RecordingBackend()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, backend, certs):
    listener = listener_config("web", backend.addr, certs)
    listener["mode"] = "http"
    listener["timeouts"]["request_header"] = "5s"
    listener["backend"]["pool"] = {"idle_timeout": "1s", "max_idle": 4}
    config = tlsterm_config([listener])
    config["log"]["access"] = True
    return module_tlsterm_factory(config)


# ---- clients --------------------------------------------------------------------------


def tls_open(proxy, certs, alpn):
    ctx = client_context(str(certs.ca))
    ctx.set_alpn_protocols([alpn])
    sock = socket.create_connection(("127.0.0.1", proxy.port("web")), timeout=TIMEOUT)
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    assert tls.selected_alpn_protocol() == alpn
    return tls


def recv_all(tls, timeout=TIMEOUT):
    """recv_all reads until the peer closes; (bytes, closed)."""
    deadline = time.monotonic() + timeout
    out = b""
    while time.monotonic() < deadline:
        tls.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = tls.recv(65536)
        except (socket.timeout, TimeoutError):
            return out, False
        except (ssl.SSLError, ConnectionError) as e:
            print(f"recv_all: {e!r} after {len(out)} bytes")
            return out, True
        if not data:
            return out, True
        out += data
    return out, False


def h1_exchange(proxy, certs, request):
    """h1_exchange sends |request| whole on a new connection and returns
    (every response status in order, all bytes received, closed)."""
    tls = tls_open(proxy, certs, "http/1.1")
    try:
        tls.sendall(request)
        raw, closed = recv_all(tls)
    finally:
        tls.close()
    statuses = [int(s) for s in re.findall(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ", raw)]
    return statuses, raw, closed


def h1_get_ok(proxy, certs, target):
    status, raw, _ = h1_exchange(
        proxy, certs, b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % target)
    assert status == [200] and raw.endswith(b"ok " + target + b"\n"), raw


# HTTP/2 frames (RFC 9113 section 6) and HPACK literals (RFC 7541 6.2.2).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PROTOCOL_ERROR = 0x1


def h2_frame(kind, flags, stream_id, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream_id)
            + payload)


def hpack_int(value, prefix_bits, flags=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out, value = [flags | limit], value - limit
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(out + [value])


def hpack_block(fields):
    """hpack_block encodes |fields| (bytes or str pairs) as literals without
    indexing and without Huffman: the bytes go on the wire as they are."""
    out = b""
    for name, value in fields:
        name = name.encode("latin-1") if isinstance(name, str) else name
        value = value.encode("latin-1") if isinstance(value, str) else value
        out += b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value
    return out


def h2_request_fields(method="GET", path="/", extra=(), authority="localhost"):
    return [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path),
            *extra]


class H2Result:
    def __init__(self):
        self.status = None
        self.body = b""
        self.rst = None  # the RST_STREAM error code on stream 1
        self.goaway = None  # the GOAWAY error code
        self.closed = False
        self.ended = False


def h2_exchange(proxy, certs, fields, body_frames=(), end_stream=None):
    """h2_exchange opens a connection, sends |fields| on stream 1 (END_STREAM
    unless |body_frames| follow) and the DATA frames (payload, end_stream)
    in |body_frames|, then reads until stream 1 ends or is reset, a GOAWAY,
    or the close. It returns an H2Result."""
    tls = tls_open(proxy, certs, "h2")
    if end_stream is None:
        end_stream = not body_frames
    out = PREFACE + h2_frame(SETTINGS, 0, 0)
    out += h2_frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), 1,
                    hpack_block(fields))
    for payload, end in body_frames:
        out += h2_frame(DATA, END_STREAM if end else 0, 1, payload)
    result = H2Result()
    decoder = Decoder()
    buf = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        tls.sendall(out)
        while time.monotonic() < deadline:
            while len(buf) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + length:
                    break
                payload, buf = buf[9:9 + length], buf[9 + length:]
                kind = frame.type
                if kind == SETTINGS and not frame.flags:
                    tls.sendall(h2_frame(SETTINGS, ACK, 0))
                elif kind == PING and "ACK" not in frame.flags:
                    tls.sendall(h2_frame(PING, ACK, 0, payload))
                elif kind == GOAWAY:
                    result.goaway = struct.unpack(">I", payload[4:8])[0]
                    return result
                elif frame.stream_id == 1:
                    if kind == RST_STREAM:
                        result.rst = struct.unpack(">I", payload)[0]
                        return result
                    if kind == HEADERS:
                        frame.parse_body(memoryview(payload))
                        for name, value in decoder.decode(frame.data, raw=True):
                            if name == b":status":
                                result.status = int(value)
                    elif kind == DATA:
                        frame.parse_body(memoryview(payload))
                        result.body += frame.data
                    if "END_STREAM" in frame.flags:
                        result.ended = True
                        return result
            tls.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = tls.recv(65536)
            except (ssl.SSLError, ConnectionError):
                data = b""
            if not data:
                result.closed = True
                return result
            buf += data
        raise AssertionError("no answer on stream 1 in time")
    finally:
        tls.close()


def h2_get_ok(proxy, certs, path):
    result = h2_exchange(proxy, certs, h2_request_fields(path=path))
    assert result.status == 200 and result.body == f"ok {path}\n".encode(), vars(result)


# ---- the checks every case shares -----------------------------------------------------


def assert_no_smuggling(backend, case, case_target, allowed=0):
    """assert_no_smuggling: the backend never saw /smuggled-<case>, read
    every connection that carried the case's bytes as a well-formed stream,
    and saw the case's own request at most |allowed| times. A connection
    left inside a request (a body cut short) must be closed with nothing
    after that request: reused, its next request would be read as body."""
    marks = (case_target.encode(), b"/smuggled-" + case.encode())
    targets = []
    for index, record in enumerate(backend.snapshot()):
        if not any(m in record["bytes"] for m in marks):
            continue
        if parse_stream(record["bytes"])[1]:
            deadline = time.monotonic() + TIMEOUT
            while not record["closed"] and time.monotonic() < deadline:
                time.sleep(0.05)
                record = backend.snapshot()[index]
            assert record["closed"], f"a backend connection stayed open mid-request: " \
                f"{record['bytes']!r}"
            # Every head tlsterm writes has its own X-Request-Id, which no
            # client bytes here carry: two in the cut part mean reuse.
            rest = parse_stream(record["bytes"])[1]
            assert rest.count(b"\r\nX-Request-Id: ") == 1, \
                f"a request after a cut one on a backend connection: {rest!r}"
        assert record["desync"] is None, \
            f"the backend read a malformed stream: {record['desync']}\n{record['bytes']!r}"
        try:
            messages, _ = parse_stream(record["bytes"])
        except Desync as e:
            raise AssertionError(f"desync on a backend connection: {e}\n"
                                 f"{record['bytes']!r}") from e
        targets += [m.target for m in messages]
    assert f"/smuggled-{case}" not in targets, targets
    assert sum(t == case_target for t in targets) <= allowed, targets


# ---- HTTP/1.1 ---------------------------------------------------------------------------


def post(target, fields, body):
    return b"POST %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n%s" % (target, fields, body)


def chunked_smuggle(hidden):
    return b"0\r\n\r\n" + hidden


H1_CASES = {
    # Content-Length and Transfer-Encoding together, in both orders.
    "cl_te": (400, lambda t, s: post(t, b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"
                                  % len(chunked_smuggle(s)), chunked_smuggle(s))),
    "te_cl": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                                  chunked_smuggle(s))),
    "cl_te_http10": (400, lambda t, s: b"POST %s HTTP/1.0\r\nContent-Length: 5\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" % t + chunked_smuggle(s)),
    # Two Content-Lengths that differ; a list in one field.
    "two_cl": (400, lambda t, s: post(t, b"Content-Length: 0\r\nContent-Length: %d\r\n"
                                   % len(s), s)),
    "cl_list": (400, lambda t, s: post(t, b"Content-Length: 0, %d\r\n" % len(s), s)),
    "cl_list_5_6": (400, lambda t, s: post(t, b"Content-Length: 5, 6\r\n", b"hello" + s)),
    "cl_negative": (400, lambda t, s: post(t, b"Content-Length: -1\r\n", s)),
    "cl_plus": (400, lambda t, s: post(t, b"Content-Length: +0\r\n", s)),
    "cl_space_inside": (400, lambda t, s: post(t, b"Content-Length: 0 5\r\n", s)),
    "cl_hex": (400, lambda t, s: post(t, b"Content-Length: 0x0\r\n", s)),
    "cl_overflow": (400, lambda t, s: post(t, b"Content-Length: 18446744073709551616\r\n",
                                        s)),
    # A Transfer-Encoding other than exactly chunked: 501 for a coding
    # tlsterm does not know (RFC 9112 6.1), 400 where chunked is not the
    # final coding or comes twice (6.3: the length cannot be determined).
    "te_chunked_gzip": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked, gzip\r\n",
                                            chunked_smuggle(s))),
    "te_gzip_chunked": (501, lambda t, s: post(t, b"Transfer-Encoding: gzip, chunked\r\n",
                                            chunked_smuggle(s))),
    "te_gzip": (501, lambda t, s: post(t, b"Transfer-Encoding: gzip\r\n", chunked_smuggle(s))),
    "te_xchunked": (501, lambda t, s: post(t, b"Transfer-Encoding: xchunked\r\n",
                                        chunked_smuggle(s))),
    "te_identity": (501, lambda t, s: post(t, b"Transfer-Encoding: identity\r\n",
                                        chunked_smuggle(s))),
    "te_two_fields": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n"
                                          b"Transfer-Encoding: identity\r\n",
                                          chunked_smuggle(s))),
    "te_chunked_twice": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked, chunked\r\n",
                                             chunked_smuggle(s))),
    "te_trailing_tab": (501, lambda t, s: post(t, b"Transfer-Encoding: chunked\t\r\n",
                                            chunked_smuggle(s))),
    "te_vtab": (400, lambda t, s: post(t, b"Transfer-Encoding:\x0bchunked\r\n", chunked_smuggle(s))),
    # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
    "te_http10": (400, lambda t, s: b"POST %s HTTP/1.0\r\nHost: localhost\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" % t + chunked_smuggle(s)),
    # obs-fold (RFC 9112 5.2): refused, never unfolded.
    "obs_fold": (400, lambda t, s: b"GET %s HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n b\r\n\r\n"
                 % t + s),
    "obs_fold_te": (400, lambda t, s: post(t, b"X-A: 1\r\nTransfer-Encoding:\r\n chunked\r\n",
                                        chunked_smuggle(s))),
    "obs_fold_tab": (400, lambda t, s: post(t, b"Content-Length: 0\r\n\tContent-Length: 44\r\n",
                                         s)),
    # Bare LF and bare CR line endings.
    "bare_lf_all": (400, lambda t, s: b"GET %s HTTP/1.1\nHost: localhost\n\n" % t + s),
    "bare_lf_field": (400, lambda t, s: b"GET %s HTTP/1.1\r\nHost: localhost\nX-A: 1\r\n\r\n"
                      % t + s),
    "bare_lf_end": (400, lambda t, s: post(t, b"Content-Length: 0\r\n\n", s)),
    "bare_cr_field": (400, lambda t, s: b"GET %s HTTP/1.1\r\nHost: localhost\rX-A: 1\r\n\r\n"
                      % t + s),
    "bare_cr_value": (400, lambda t, s: post(t, b"X-A: a\rContent-Length: 0\r\n"
                                          b"Content-Length: %d\r\n" % len(s), s)),
    "bare_cr_line": (400, lambda t, s: b"GET %s HTTP/1.1\rHost: localhost\r\n\r\n" % t + s),
    # Whitespace before the colon (RFC 9112 5.1: 400).
    "space_before_colon_te": (400, lambda t, s: post(t, b"Transfer-Encoding : chunked\r\n",
                                                  chunked_smuggle(s))),
    "space_before_colon_cl": (400, lambda t, s: post(t, b"Content-Length : %d\r\n"
                                                  % len(s), s)),
    "tab_before_colon": (400, lambda t, s: post(t, b"Content-Length\t: 0\r\n", s)),
    "space_before_name": (400, lambda t, s: b"GET %s HTTP/1.1\r\n Host: localhost\r\n\r\n"
                          % t + s),
    # Characters a field may not hold.
    "nul_in_value": (400, lambda t, s: post(t, b"X-A: a\x00b\r\nContent-Length: 0\r\n", s)),
    "del_in_value": (400, lambda t, s: post(t, b"X-A: a\x7fb\r\nContent-Length: 0\r\n", s)),
    "ctl_in_value": (400, lambda t, s: post(t, b"X-A: a\x01b\r\nContent-Length: 0\r\n", s)),
    "nul_in_name": (400, lambda t, s: post(t, b"X-\x00A: 1\r\nContent-Length: 0\r\n", s)),
    "high_byte_in_name": (400, lambda t, s: post(t, b"Content-Length\xff: 0\r\n", s)),
    "high_byte_name_te": (400, lambda t, s: post(t, b"Transfer-Encoding\xc2\xa0: chunked\r\n",
                                              chunked_smuggle(s))),
    "del_in_name": (400, lambda t, s: post(t, b"X-A\x7f: 1\r\nContent-Length: 0\r\n", s)),
    "empty_name": (400, lambda t, s: post(t, b": x\r\nContent-Length: 0\r\n", s)),
    # Chunk sizes: overflow (2^64 wraps to 0 in a careless parser), junk.
    "chunk_overflow_18f": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                               b"ffffffffffffffffff\r\n" + s)),
    "chunk_overflow_2_64": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                                b"10000000000000000\r\n" + s)),
    "chunk_size_junk": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                            b"5x\r\nhello\r\n" + chunked_smuggle(s))),
    "chunk_size_0x": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                          b"0x5\r\nhello\r\n" + chunked_smuggle(s))),
    "chunk_size_negative": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                                b"-5\r\nhello\r\n" + chunked_smuggle(s))),
    "chunk_size_space": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                             b"5 5\r\nhello\r\n" + chunked_smuggle(s))),
    "chunk_size_bare_lf": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                               b"5\nhello\r\n" + chunked_smuggle(s))),
    "chunk_data_too_long": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                                b"1\r\nhello\r\n" + chunked_smuggle(s))),
    "chunk_ext_bare_lf": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                              b"5;a\nb\r\nhello\r\n" + chunked_smuggle(s))),
    "chunk_last_bare_lf": (400, lambda t, s: post(t, b"Transfer-Encoding: chunked\r\n",
                                               b"0\n\r\n" + s)),
    # Request lines a backend could split differently.
    "request_line_two_spaces": (400, lambda t, s: b"GET  %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
                                % t + s),
    "request_line_space_in_target": (400, lambda t, s: b"GET %s HTTP/1.1 HTTP/1.1\r\n"
                                     b"Host: localhost\r\n\r\n" % t + s),
    "request_line_tab": (400, lambda t, s: b"GET\t%s HTTP/1.1\r\nHost: localhost\r\n\r\n"
                         % t + s),
    "request_line_trailing_space": (400, lambda t, s: b"GET %s HTTP/1.1 \r\nHost: localhost\r\n\r\n"
                                    % t + s),
    "absolute_form_other_host": (400, lambda t, s: b"GET http://evil.example%s HTTP/1.1\r\n"
                                 b"Host: localhost\r\n\r\n" % t + s),
    "http09": (400, lambda t, s: b"GET %s\r\n\r\n" % t + s),
    "http_version_2": (400, lambda t, s: b"GET %s HTTP/2.0\r\nHost: localhost\r\n\r\n" % t
                       + s),
    # Expect tricks: a GET that says a body follows; 100-continue with its
    # body in the same packet; a malformed Expect.
    "expect_cl_te": (400, lambda t, s: post(t, b"Expect: 100-continue\r\nContent-Length: 5\r\n"
                                         b"Transfer-Encoding: chunked\r\n", chunked_smuggle(s))),
    "expect_obs_fold": (400, lambda t, s: post(t, b"Expect:\r\n 100-continue\r\n"
                                            b"Content-Length: 0\r\n", s)),
    "expect_nul": (400, lambda t, s: post(t, b"Expect: 100-continue\x00\r\nContent-Length: 0\r\n",
                                       s)),
}


@pytest.mark.parametrize("case", sorted(H1_CASES))
def test_h1_refused(proxy, backend, certs, case):
    status, make = H1_CASES[case]
    target = b"/attack-%s" % case.encode()
    statuses, raw, closed = h1_exchange(proxy, certs, make(target, smuggled(case)))
    assert statuses == [status], raw
    assert b"\r\nconnection: close\r\n" in raw.lower(), raw
    assert closed, "the connection stayed open after a refused request"
    assert_no_smuggling(backend, case, target.decode())
    h1_get_ok(proxy, certs, b"/ok-h1-" + case.encode())
    assert_no_smuggling(backend, case, target.decode())


def test_h1_expect_body_is_body(proxy, backend, certs):
    """Expect: 100-continue with the body sent at once: the body is body
    (one request reaches the backend, with exactly those bytes)."""
    statuses, raw, closed = h1_exchange(
        proxy, certs, post(b"/expect-at-once", b"Expect: 100-continue\r\nContent-Length: %d\r\n"
                           b"Connection: close\r\n" % len(SMUGGLED), SMUGGLED))
    assert statuses[-1] == 200 and raw.endswith(b"ok /expect-at-once\n"), raw
    assert_no_smuggling(backend, "legal", "/expect-at-once", allowed=1)
    (msg,) = [m for _, ms, _ in backend.requests() for m in ms if m.target == "/expect-at-once"]
    assert msg.body == SMUGGLED and msg.framing == "length"


def test_h1_expect_early_answer_keeps_framing(proxy, backend, certs):
    """The backend refuses an Expect: 100-continue upload at once (417,
    before the body); the client sends the body anyway, and it holds a
    request. tlsterm reads it as the body it announced, never as the next
    request, on either side."""
    tls = tls_open(proxy, certs, "http/1.1")
    try:
        tls.sendall(post(b"/early", b"Expect: 100-continue\r\nContent-Length: %d\r\n"
                         % len(SMUGGLED), b""))
        tls.settimeout(TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head:
            data = tls.recv(65536)
            assert data, head
            head += data
        assert head.startswith(b"HTTP/1.1 417 "), head
        tls.sendall(SMUGGLED)
        rest, _ = recv_all(tls, timeout=2)
    finally:
        tls.close()
    assert b"ok /smuggled" not in rest
    assert_no_smuggling(backend, "legal", "/early", allowed=1)
    h1_get_ok(proxy, certs, b"/ok-after-early")


def test_h1_legal_chunked_is_reframed_cleanly(proxy, backend, certs):
    body = b"hello, " + SMUGGLED + b" world"
    chunks = b"7;ext=1\r\n" + body[:7] + b"\r\n" + b"%x\r\n" % (len(body) - 7) + body[7:] \
        + b"\r\n0\r\nX-Trailer: t\r\n\r\n"
    statuses, raw, _ = h1_exchange(
        proxy, certs, post(b"/legal-chunked", b"Transfer-Encoding: chunked\r\n"
                           b"Connection: close\r\n", chunks))
    assert statuses == [200] and raw.endswith(b"ok /legal-chunked\n"), raw
    assert_no_smuggling(backend, "legal", "/legal-chunked", allowed=1)
    (msg,) = [m for _, ms, _ in backend.requests() for m in ms if m.target == "/legal-chunked"]
    assert msg.framing == "chunked" and msg.body == body
    assert msg.values("transfer-encoding") == ["chunked"] and not msg.values("content-length")


def test_h1_te_chunked_with_extra_space_is_chunked(proxy, backend, certs):
    """`Transfer-Encoding:  chunked`: the extra space is OWS, not part of the
    value (RFC 9110 5.5), so this is exactly chunked. tlsterm reads it
    chunked and re-frames it; the request after the last chunk is a
    pipelined request of its own, answered in turn."""
    statuses, raw, _ = h1_exchange(
        proxy, certs, post(b"/legal-te-space", b"Transfer-Encoding:  chunked\r\n",
                           b"5\r\nhello\r\n0\r\n\r\n")
        + b"GET /legal-te-space-next HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert statuses == [200, 200], raw
    assert_no_smuggling(backend, "legal", "/legal-te-space", allowed=1)
    (msg,) = [m for _, ms, _ in backend.requests() for m in ms if m.target == "/legal-te-space"]
    assert msg.framing == "chunked" and msg.body == b"hello"


def test_h1_legal_pipeline_after_length_body(proxy, backend, certs):
    """Control: a body that holds a request, framed by a right
    Content-Length, then a real pipelined request: two requests, no more."""
    statuses, raw, _ = h1_exchange(
        proxy, certs, post(b"/legal-cl", b"Content-Length: %d\r\n" % len(SMUGGLED), SMUGGLED)
        + b"GET /legal-next HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert statuses == [200, 200], raw
    targets = backend.targets()
    assert "/legal-cl" in targets and "/legal-next" in targets
    assert_no_smuggling(backend, "legal", "/legal-cl", allowed=1)


# ---- HTTP/2 -> HTTP/1.1 ---------------------------------------------------------------------


def h2_case(path, extra=(), method="POST", body=None, fields=None):
    """h2_case: (fields, DATA frames) for one case; |fields| replaces the
    whole block when given."""
    block = fields if fields is not None else h2_request_fields(method, path, extra)
    frames = [(b, i == len(body) - 1) for i, b in enumerate(body)] if body else []
    return block, frames


# The cases whose head may reach the backend before tlsterm knows better:
# the body streams, and a content-length is found wrong only by the DATA.
H2_STREAMED = {"cl_less_than_data", "cl_less_than_data_split", "cl_more_than_data"}

H2_CASES = {
    # content-length that disagrees with the DATA received.
    "cl_less_than_data": lambda p, s: h2_case(p, [("content-length", "0")], body=[s]),
    "cl_less_than_data_split": lambda p, s: h2_case(p, [("content-length", "5")],
                                                 body=[b"hello", s]),
    "cl_more_than_data": lambda p, s: h2_case(p, [("content-length", "100")], body=[s]),
    "cl_two_values": lambda p, s: h2_case(p, [("content-length", "0"), ("content-length", "44")],
                                       body=[s]),
    "cl_list": lambda p, s: h2_case(p, [("content-length", "0, 44")], body=[s]),
    "cl_negative": lambda p, s: h2_case(p, [("content-length", "-1")], body=[s]),
    "cl_plus": lambda p, s: h2_case(p, [("content-length", "+0")], body=[s]),
    # Connection-specific fields (RFC 9113 8.2.2).
    "transfer_encoding": lambda p, s: h2_case(p, [("transfer-encoding", "chunked")],
                                           body=[b"0\r\n\r\n" + s]),
    "connection": lambda p, s: h2_case(p, [("connection", "close")]),
    "connection_keep_alive": lambda p, s: h2_case(p, [("connection", "keep-alive")]),
    "keep_alive": lambda p, s: h2_case(p, [("keep-alive", "timeout=5")]),
    "upgrade": lambda p, s: h2_case(p, [("upgrade", "websocket")]),
    "proxy_connection": lambda p, s: h2_case(p, [("proxy-connection", "keep-alive")]),
    "te_gzip": lambda p, s: h2_case(p, [("te", "gzip")]),
    "te_trailers_gzip": lambda p, s: h2_case(p, [("te", "trailers, gzip")]),
    # CR, LF and NUL in names and values.
    "value_crlf_smuggle": lambda p, s: h2_case(p, [("x-a", "1\r\n\r\n" + s.decode())],
                                            method="GET"),
    "value_crlf_cl": lambda p, s: h2_case(p, [("x-a", "1\r\nContent-Length: 0")],
                                       body=[s]),
    "value_lf": lambda p, s: h2_case(p, [("x-a", "1\nTransfer-Encoding: chunked")],
                                  body=[b"0\r\n\r\n" + s]),
    "value_cr": lambda p, s: h2_case(p, [("x-a", "1\rTransfer-Encoding: chunked")],
                                  body=[b"0\r\n\r\n" + s]),
    "value_nul": lambda p, s: h2_case(p, [("x-a", "1\x00b")], method="GET"),
    "name_crlf": lambda p, s: h2_case(p, [("x-a\r\ntransfer-encoding", "chunked")],
                                   body=[b"0\r\n\r\n" + s]),
    "name_lf": lambda p, s: h2_case(p, [("x-a\nx-b", "1")], method="GET"),
    "name_nul": lambda p, s: h2_case(p, [("x-a\x00", "1")], method="GET"),
    "name_colon": lambda p, s: h2_case(p, [("x-a:b", "1")], method="GET"),
    "name_space": lambda p, s: h2_case(p, [("content-length ", "0")], body=[s]),
    "name_empty": lambda p, s: h2_case(p, [("", "1")], method="GET"),
    "value_leading_space": lambda p, s: h2_case(p, [("x-a", " 1")], method="GET"),
    "host_crlf": lambda p, s: h2_case(p, fields=[
        (":method", "GET"), (":scheme", "https"), (":path", p),
        ("host", "localhost\r\n\r\n" + s.decode())]),
    "authority_crlf": lambda p, s: h2_case(p, fields=h2_request_fields(
        "GET", p, authority="localhost\r\n\r\n" + s.decode())),
    "authority_space": lambda p, s: h2_case(p, fields=h2_request_fields(
        "GET", p, authority="localhost x")),
    # Upper-case names (RFC 9113 8.2.1).
    "uppercase_name": lambda p, s: h2_case(p, [("Content-Length", "0")], body=[s]),
    "uppercase_te": lambda p, s: h2_case(p, [("Transfer-Encoding", "chunked")],
                                      body=[b"0\r\n\r\n" + s]),
    # Pseudo-header fields: after a regular one, twice, or malformed.
    "pseudo_after_regular": lambda p, s: h2_case(p, fields=[
        (":method", "GET"), (":scheme", "https"), (":authority", "localhost"), ("x-a", "1"),
        (":path", p)]),
    "duplicate_path": lambda p, s: h2_case(p, fields=h2_request_fields("GET", p)
                                        + [(":path", s.split()[1].decode())]),
    "duplicate_method": lambda p, s: h2_case(p, fields=[(":method", "GET")]
                                          + h2_request_fields("GET", p)),
    "duplicate_authority": lambda p, s: h2_case(p, fields=h2_request_fields("GET", p)[:3]
                                             + [(":authority", "evil"), (":path", p)]),
    "unknown_pseudo": lambda p, s: h2_case(p, fields=h2_request_fields("GET", p)[:3]
                                        + [(":x", "1"), (":path", p)]),
    "path_relative": lambda p, s: h2_case(p, fields=h2_request_fields("GET", p.lstrip("/"))),
    "path_absolute_uri": lambda p, s: h2_case(p, fields=h2_request_fields(
        "GET", "http://evil.example" + p)),
    "path_asterisk_get": lambda p, s: h2_case(p, fields=h2_request_fields("GET", "*")),
    "path_space": lambda p, s: h2_case(p, fields=h2_request_fields(
        "GET", p + " HTTP/1.1\r\nHost: localhost\r\n\r\nGET " + s.split()[1].decode())),
    "path_space_only": lambda p, s: h2_case(p, fields=h2_request_fields("GET", p + " HTTP/1.1")),
    "path_tab": lambda p, s: h2_case(p, fields=h2_request_fields("GET", p + "\tHTTP/1.1")),
    "path_empty": lambda p, s: h2_case(p, fields=h2_request_fields("GET", "")),
    "path_missing": lambda p, s: h2_case(p, fields=h2_request_fields("GET", p)[:3]),
    "method_space": lambda p, s: h2_case(p, fields=h2_request_fields("GET " + s.split()[1].decode(), p)),
    "method_empty": lambda p, s: h2_case(p, fields=h2_request_fields("", p)),
}


@pytest.mark.parametrize("case", sorted(H2_CASES))
def test_h2_refused(proxy, backend, certs, case):
    path = f"/attack-h2-{case}"
    block, frames = H2_CASES[case](path, smuggled("h2-" + case))
    result = h2_exchange(proxy, certs, block, frames)
    assert result.status is None or result.status >= 400, vars(result)
    refused = (result.rst == PROTOCOL_ERROR or result.goaway == PROTOCOL_ERROR)
    assert refused, f"want RST_STREAM or GOAWAY PROTOCOL_ERROR, got {vars(result)}"
    allowed = 1 if case in H2_STREAMED else 0
    assert_no_smuggling(backend, "h2-" + case, path, allowed)
    h2_get_ok(proxy, certs, f"/ok-h2-{case}")
    assert_no_smuggling(backend, "h2-" + case, path, allowed)


def test_h2_legal_upload_without_length_goes_chunked(proxy, backend, certs):
    body = [b"first " + SMUGGLED, b"second", b"0\r\n\r\n" + SMUGGLED]
    block, frames = h2_case("/legal-h2-chunked", body=body)
    result = h2_exchange(proxy, certs, block, frames)
    assert result.status == 200 and result.body == b"ok /legal-h2-chunked\n", vars(result)
    assert_no_smuggling(backend, "legal", "/legal-h2-chunked", allowed=1)
    (msg,) = [m for _, ms, _ in backend.requests() for m in ms if m.target == "/legal-h2-chunked"]
    assert msg.framing == "chunked" and msg.body == b"".join(body)
    assert msg.values("transfer-encoding") == ["chunked"] and not msg.values("content-length")


def test_h2_legal_upload_with_length(proxy, backend, certs):
    body = [SMUGGLED, SMUGGLED]
    block, frames = h2_case("/legal-h2-length", [("content-length", str(2 * len(SMUGGLED)))],
                            body=body)
    result = h2_exchange(proxy, certs, block, frames)
    assert result.status == 200, vars(result)
    assert_no_smuggling(backend, "legal", "/legal-h2-length", allowed=1)
    (msg,) = [m for _, ms, _ in backend.requests() for m in ms if m.target == "/legal-h2-length"]
    assert msg.framing == "length" and msg.body == b"".join(body)
    assert msg.values("content-length") == [str(2 * len(SMUGGLED))]
    assert not msg.values("transfer-encoding")


def test_h2_connect_is_refused(proxy, backend, certs):
    """CONNECT is well-formed HTTP/2 (RFC 9113 8.5) but tlsterm tunnels
    nothing: 400, and the backend sees nothing."""
    result = h2_exchange(proxy, certs, [(":method", "CONNECT"), (":authority", "localhost:443")])
    assert result.status == 400, vars(result)
    assert not any(m.method == "CONNECT" for _, ms, _ in backend.requests() for m in ms)


def test_h2_options_asterisk_is_legal(proxy, backend, certs):
    result = h2_exchange(proxy, certs, h2_request_fields("OPTIONS", "*"))
    assert result.status == 200, vars(result)
    assert "*" in backend.targets()
