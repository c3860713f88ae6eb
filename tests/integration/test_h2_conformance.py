"""HTTP/2 (RFC 9113, with RFC 7540's numbering) and HPACK (RFC 7541)
conformance of an http-mode listener: one test per case of the public h2spec
suite (its generic, http2 and hpack sections), written here from the RFCs,
plus a few RFC 9113 cases that matter to a proxy translating to HTTP/1.1.

Each test opens its own TLS connection (ALPN h2), writes frames byte by byte
(so that it can write the malformed ones) and reads the answer with a
deadline. The answers are judged as h2spec judges them:

  connection error X   a GOAWAY with code X, or the connection closed
  stream error X       a RST_STREAM with code X on the stream, a GOAWAY with
                       any error code (RFC 9113 5.4: an endpoint MAY treat a
                       stream error as a connection error), or a close
  a response           a HEADERS frame on the stream (here: with :status 200)

A RST_STREAM with another code, or a GOAWAY with another code where a
connection error is due, fails the test; h2spec is more lenient there (it
waits for the close that follows a GOAWAY). Where the RFC allows two codes,
the case lists both and says why.

The target is chosen by H2_CONFORMANCE_TARGET:
  tlsterm  (default) the binary under test, listener `mode: http`
  haproxy  `mode http` with `alpn h2,http/1.1`: HAProxy passes all of h2spec,
           so a case that fails against it is a wrong test
  nghttpx  nghttp2's proxy, a second opinion
Each proxies to backend.py in its `http` mode (200 to every request).
"""

import os
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest
from hpack import Decoder, Encoder
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tlsterm_harness import free_port, listener_config, tlsterm_config, wait_until

TARGET = os.environ.get("H2_CONFORMANCE_TARGET", "tlsterm")
if TARGET not in ("tlsterm", "haproxy", "nghttpx"):
    raise pytest.UsageError(f"H2_CONFORMANCE_TARGET={TARGET}: want tlsterm, haproxy or nghttpx")

# The stand-ins need no tlsterm binary (conftest skips everything else).
pytestmark = [] if TARGET == "tlsterm" else [pytest.mark.no_tlsterm]

# How long a case waits for its answer (h2spec: 2 s). tlsterm is an ASan
# build; nothing here waits for a deadline unless the case fails.
CASE_TIMEOUT = float(os.environ.get("H2_CONFORMANCE_TIMEOUT", "3"))

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
UNKNOWN_TYPE = 0x16

# Flags.
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (section 7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL = 0x5, 0x6, 0x7, 0x8
COMPRESSION_ERROR = 0x9
ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM", 0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xa: "CONNECT_ERROR",
    0xb: "ENHANCE_YOUR_CALM", 0xc: "INADEQUATE_SECURITY", 0xd: "HTTP_1_1_REQUIRED",
}

# SETTINGS identifiers (section 6.5.2).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME_SIZE = 16384
# h2spec's dummy header value length (its --max-header-length default).
DUMMY_LEN = 4000

_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def error_name(code):
    return ERROR_NAMES.get(code, f"0x{code:x}")


# ---- frames on the wire -----------------------------------------------------


def frame(kind, flags, stream_id, payload=b"", length=None):
    """frame returns one frame's bytes; |length| overrides the length field
    (for frames that lie about their size)."""
    length = len(payload) if length is None else length
    return (
        length.to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload
    )


def settings(*pairs, flags=0):
    return frame(SETTINGS, flags, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data=b"\0" * 8, flags=0):
    return frame(PING, flags, 0, data)


def priority(stream_id, depends_on=0, weight=255, exclusive=False):
    dep = depends_on | (0x80000000 if exclusive else 0)
    return frame(PRIORITY, 0, stream_id, struct.pack(">IB", dep, weight))


def rst_stream(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def goaway(last_stream_id=0, code=NO_ERROR, debug=b""):
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code) + debug)


def data(stream_id, payload, end_stream=True, pad=None):
    flags = END_STREAM if end_stream else 0
    if pad is not None:
        flags |= PADDED
        payload = bytes([len(pad)]) + payload + pad
    return frame(DATA, flags, stream_id, payload)


def headers(stream_id, block, end_stream=True, end_headers=True, pad_len=None, prio=None):
    """headers returns a HEADERS frame carrying the encoded |block|;
    |prio| is (depends_on, weight, exclusive)."""
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    payload = block
    if prio is not None:
        depends_on, weight, exclusive = prio
        flags |= PRIORITY_FLAG
        dep = depends_on | (0x80000000 if exclusive else 0)
        payload = struct.pack(">IB", dep, weight) + payload
    if pad_len is not None:
        flags |= PADDED
        payload = bytes([pad_len]) + payload + b"\0" * pad_len
    return frame(HEADERS, flags, stream_id, payload)


def continuation(stream_id, block, end_headers=True):
    return frame(CONTINUATION, END_HEADERS if end_headers else 0, stream_id, block)


def hpack_int(value, prefix_bits, first_byte_flags):
    """hpack_int encodes |value| as an HPACK integer (RFC 7541 5.1) with an
    N-bit prefix, OR-ing |first_byte_flags| into the first octet."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(text, huffman):
    raw = text.encode() if isinstance(text, str) else text
    if huffman:
        coded = _huffman.encode(raw)
        return hpack_int(len(coded), 7, 0x80) + coded
    return hpack_int(len(raw), 7, 0x00) + raw


def literal(kind, name, value, huffman):
    """literal returns one literal header field representation (RFC 7541
    6.2): |kind| is "incremental", "without" or "never"; |name| is a static
    table index or a new name."""
    prefix_bits, flags = {"incremental": (6, 0x40), "without": (4, 0x00), "never": (4, 0x10)}[kind]
    if isinstance(name, int):
        return hpack_int(name, prefix_bits, flags) + hpack_string(value, huffman)
    return bytes([flags]) + hpack_string(name, huffman) + hpack_string(value, huffman)


# ---- the client ---------------------------------------------------------------


class Closed:
    def __repr__(self):
        return "connection closed"


class Timeout:
    def __repr__(self):
        return f"nothing for {CASE_TIMEOUT}s"


CLOSED, TIMEOUT = Closed(), Timeout()


def describe(event):
    if isinstance(event, GoAwayFrame):
        return f"GOAWAY {error_name(event.error_code)} last_stream_id={event.last_stream_id}"
    if isinstance(event, RstStreamFrame):
        return f"RST_STREAM {error_name(event.error_code)} on stream {event.stream_id}"
    return repr(event)


@dataclass
class Target:
    port: int
    ca: str
    name: str


class H2Client:
    """H2Client is one HTTP/2 connection over TLS that writes whatever bytes
    a test gives it and reads frames with a deadline. It keeps the HPACK
    contexts: |encoder| for what it sends, a decoder for every header block
    the server sends."""

    def __init__(self, target):
        self.target = target
        self.authority = f"localhost:{target.port}"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=target.ca)
        ctx.set_alpn_protocols(["h2"])
        sock = socket.create_connection(("127.0.0.1", target.port), timeout=CASE_TIMEOUT)
        try:
            self.tls = ctx.wrap_socket(sock, server_hostname="localhost")
        except BaseException:
            sock.close()
            raise
        assert self.tls.selected_alpn_protocol() == "h2", self.tls.selected_alpn_protocol()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.buf = bytearray()
        self.closed = False
        self.server_settings = {}
        self.log = []

    def close(self):
        self.tls.close()

    # -- writing

    def send(self, *chunks):
        """send writes the bytes; a peer that already closed is not an error
        here (the verdict comes from what is read)."""
        try:
            self.tls.sendall(b"".join(chunks))
        except (OSError, ssl.SSLError):
            pass

    def encode(self, fields, huffman=True):
        return self.encoder.encode(fields, huffman=huffman)

    def common_headers(self, method="GET"):
        return [
            (":method", method),
            (":scheme", "https"),
            (":path", "/"),
            (":authority", self.authority),
        ]

    def dummy_headers(self, count):
        return [(f"x-dummy{i}", "x" * DUMMY_LEN) for i in range(count)]

    def request(self, stream_id=1, method="GET", end_stream=True, end_headers=True, extra=()):
        """request sends the usual request headers (plus |extra|)."""
        block = self.encode(self.common_headers(method) + list(extra))
        self.send(headers(stream_id, block, end_stream=end_stream, end_headers=end_headers))

    def handshake(self, *extra_settings):
        """handshake sends the preface and a SETTINGS frame, then reads until
        the server's SETTINGS (acknowledged) and the ACK of ours arrived."""
        self.send(PREFACE, settings((INITIAL_WINDOW_SIZE, DEFAULT_WINDOW), *extra_settings))
        deadline = time.monotonic() + CASE_TIMEOUT
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            event = self.next_event(deadline)
            assert not isinstance(event, (Closed, Timeout)), f"handshake: {event}; {self.log}"
            if isinstance(event, SettingsFrame):
                if "ACK" in event.flags:
                    got_ack = True
                else:
                    self.server_settings.update(event.settings)
                    self.send(settings(flags=ACK))
                    got_settings = True

    def max_frame_size(self):
        return self.server_settings.get(MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE)

    # -- reading

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return TIMEOUT
        self.tls.settimeout(left)
        try:
            chunk = self.tls.recv(65536)
        except (socket.timeout, TimeoutError):
            return TIMEOUT
        except (ConnectionError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            self.closed = True
            return CLOSED
        self.buf += chunk
        return None

    def _next_frame(self, deadline):
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    head, body = bytes(self.buf[:9]), bytes(self.buf[9 : 9 + length])
                    del self.buf[: 9 + length]
                    parsed, _ = Frame.parse_frame_header(memoryview(head))
                    parsed.parse_body(memoryview(body))
                    return parsed
            if self.closed:
                return CLOSED
            status = self._fill(deadline)
            if status is not None:
                return status

    def next_event(self, deadline):
        """next_event returns the next frame, CLOSED or TIMEOUT. A HEADERS
        frame comes back once its block is complete (CONTINUATIONs read),
        decoded into its .fields."""
        event = self._next_frame(deadline)
        if isinstance(event, HeadersFrame):
            block, last = bytes(event.data), event
            while "END_HEADERS" not in last.flags:
                last = self._next_frame(deadline)
                assert isinstance(last, ContinuationFrame), f"header block cut by {last!r}"
                block += bytes(last.data)
            event.fields = self.decoder.decode(block)
        self.log.append(describe(event) if not isinstance(event, (Closed, Timeout)) else event)
        return event

    def events(self):
        """events yields events until the case's deadline; the last one is
        CLOSED or TIMEOUT unless the caller stops first."""
        deadline = time.monotonic() + CASE_TIMEOUT
        while True:
            event = self.next_event(deadline)
            yield event
            if isinstance(event, (Closed, Timeout)):
                return

    # -- verdicts

    def _fail(self, expected, event):
        pytest.fail(f"expected {expected}, got {describe(event)}\nframes read: {self.log}")

    def expect_connection_error(self, *codes):
        """A connection error: GOAWAY with one of |codes|, or a close."""
        want = " or ".join(f"GOAWAY {error_name(c)}" for c in codes) + " or a close"
        for event in self.events():
            if isinstance(event, Closed):
                return
            if isinstance(event, GoAwayFrame):
                if event.error_code in codes:
                    return
                self._fail(want, event)
            if isinstance(event, Timeout):
                self._fail(want, event)

    def expect_stream_error(self, *codes, stream_id=None):
        """A stream error: RST_STREAM with one of |codes| (on |stream_id|
        when given), a GOAWAY with an error code, or a close."""
        names = " or ".join(error_name(c) for c in codes)
        want = f"RST_STREAM {names}, a GOAWAY with an error, or a close"
        for event in self.events():
            if isinstance(event, Closed):
                return
            if isinstance(event, GoAwayFrame):
                if event.error_code != NO_ERROR:
                    return
                self._fail(want, event)
            if isinstance(event, RstStreamFrame):
                if event.error_code in codes and stream_id in (None, event.stream_id):
                    return
                self._fail(want, event)
            if isinstance(event, Timeout):
                self._fail(want, event)

    def expect_close(self):
        """The connection closes (a GOAWAY may come first)."""
        for event in self.events():
            if isinstance(event, Closed):
                return
            if isinstance(event, Timeout):
                self._fail("the connection closed", event)

    def expect_response(self, stream_id=1):
        """A response: HEADERS on |stream_id| with :status 200."""
        for event in self.events():
            if isinstance(event, HeadersFrame) and event.stream_id == stream_id:
                status = dict(event.fields).get(":status")
                assert status == "200", f"response {event.fields}; {self.log}"
                return event
            self._fail_if_ended(f"a response on stream {stream_id}", event, stream_id)

    def expect_frame(self, kind, stream_id=None):
        """The first frame of type |kind| (a hyperframe class), on
        |stream_id| when given; an error or close on the way fails."""
        for event in self.events():
            if isinstance(event, kind) and (stream_id is None or event.stream_id == stream_id):
                return event
            self._fail_if_ended(kind.__name__, event, stream_id)

    def _fail_if_ended(self, want, event, stream_id):
        if isinstance(event, (Closed, Timeout, GoAwayFrame)):
            self._fail(want, event)
        if isinstance(event, RstStreamFrame) and event.stream_id == stream_id:
            self._fail(want, event)

    def expect_ping_ack(self, payload, or_close=False):
        """A PING with ACK and |payload|. A PING ACK with another payload
        fails (an answer to a PING that was itself an ACK)."""
        for event in self.events():
            if isinstance(event, Closed) and or_close:
                return
            if isinstance(event, PingFrame) and "ACK" in event.flags:
                if event.opaque_data == payload:
                    return
                self._fail(f"PING ACK {payload!r}", event)
            if isinstance(event, (Closed, Timeout, GoAwayFrame)):
                self._fail(f"PING ACK {payload!r}", event)

    def expect_stream_end(self, stream_id=1):
        """The response on |stream_id| ends (END_STREAM on HEADERS or DATA)."""
        for event in self.events():
            if (
                isinstance(event, (HeadersFrame, DataFrame))
                and event.stream_id == stream_id
                and "END_STREAM" in event.flags
            ):
                return
            self._fail_if_ended(f"the end of stream {stream_id}", event, stream_id)

    def expect_settings_ack(self):
        for event in self.events():
            if isinstance(event, SettingsFrame) and "ACK" in event.flags:
                return
            self._fail_if_ended("SETTINGS ACK", event, None)

    def expect_data_length(self, length, stream_id=1):
        """The first DATA frame on |stream_id| carries |length| octets."""
        event = self.expect_frame(DataFrame, stream_id)
        assert len(event.data) == length, f"DATA of {len(event.data)} octets, want {length}"


# ---- targets ----------------------------------------------------------------


def _wait_listening(port, proc, what, log):
    def ready():
        assert proc.poll() is None, f"{what} exited {proc.returncode}:\n{log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(ready, what=f"{what} listening on {port}")


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_haproxy(workdir, certs, backend):
    pem = workdir / "combined.pem"
    pem.write_bytes(certs.ecdsa_cert.read_bytes() + certs.ecdsa_key.read_bytes())
    port = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(
        "global\n"
        "  maxconn 1000\n"
        "defaults\n"
        "  mode http\n"
        "  timeout connect 5s\n"
        "  timeout client 30s\n"
        "  timeout server 30s\n"
        "frontend h2\n"
        f"  bind 127.0.0.1:{port} ssl crt {pem} alpn h2,http/1.1\n"
        "  default_backend plain\n"
        "backend plain\n"
        f"  server s1 {backend.addr}\n"
    )
    log = workdir / "haproxy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    _wait_listening(port, proc, "haproxy", log)
    return proc, port


def _start_nghttpx(workdir, certs, backend):
    port = free_port()
    log = workdir / "nghttpx.log"
    argv = [
        "nghttpx", "--conf=/dev/null", f"--frontend=127.0.0.1,{port}",
        f"--backend=127.0.0.1,{backend.port}", "--workers=1", "--no-ocsp",
        f"--errorlog-file={log}", "--accesslog-file=/dev/null", f"--pid-file={workdir}/pid",
        str(certs.ecdsa_key), str(certs.ecdsa_cert),
    ]
    log.write_text("")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_listening(port, proc, "nghttpx", log)
    return proc, port


@pytest.fixture(scope="module")
def target(request, certs, module_backend_factory, tmp_path_factory):
    backend = module_backend_factory("http")
    if TARGET == "tlsterm":
        listener = listener_config("h2", backend, certs)
        listener["mode"] = "http"
        proxy = request.getfixturevalue("module_tlsterm_factory")(tlsterm_config([listener]))
        yield Target(proxy.port("h2"), str(certs.ca), "tlsterm")
        return
    workdir = tmp_path_factory.mktemp(TARGET)
    start = _start_haproxy if TARGET == "haproxy" else _start_nghttpx
    proc, port = start(workdir, certs, backend)
    try:
        yield Target(port, str(certs.ca), TARGET)
    finally:
        _stop(proc)


@pytest.fixture
def raw(target):
    """raw is a connection before its preface."""
    client = H2Client(target)
    yield client
    client.close()


@pytest.fixture
def h2(raw):
    """h2 is a connection after the preface and SETTINGS exchange."""
    raw.handshake()
    return raw


# =============================================================================
# generic: the basic frame and message exchanges every server must accept
# =============================================================================


# -- generic 1: Starting HTTP/2


def test_generic_1_1_client_preface(raw):
    """The first frame the server sends is its SETTINGS (RFC 9113 3.4)."""
    raw.send(PREFACE, settings((INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
    first = raw.next_event(time.monotonic() + CASE_TIMEOUT)
    assert isinstance(first, SettingsFrame) and "ACK" not in first.flags, describe(first)


# -- generic 2: Streams and Multiplexing


def test_generic_2_1_priority_on_idle_stream(h2):
    h2.send(priority(1), ping(b"\0" * 8))
    h2.expect_ping_ack(b"\0" * 8)


def test_generic_2_2_window_update_on_half_closed_remote(h2):
    h2.send(settings((INITIAL_WINDOW_SIZE, 0)))
    h2.request(1)
    h2.send(window_update(1, 1))
    h2.expect_frame(DataFrame, 1)


def test_generic_2_3_priority_on_half_closed_remote(h2):
    h2.send(settings((INITIAL_WINDOW_SIZE, 0)))
    h2.request(1)
    h2.send(priority(1), window_update(1, 1))
    h2.expect_frame(DataFrame, 1)


def test_generic_2_4_rst_stream_on_half_closed_remote(h2):
    h2.request(1)
    h2.send(rst_stream(1, CANCEL), ping(b"\0" * 8))
    h2.expect_ping_ack(b"\0" * 8, or_close=True)


def test_generic_2_5_priority_on_closed_stream(h2):
    h2.request(1)
    h2.expect_stream_end(1)
    h2.send(priority(1), ping(b"\0" * 8))
    h2.expect_ping_ack(b"\0" * 8)


# -- generic 3.1: DATA


def test_generic_3_1_1_data(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"test"))
    h2.expect_response(1)


def test_generic_3_1_2_multiple_data(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"test", end_stream=False), data(1, b"test"))
    h2.expect_response(1)


def test_generic_3_1_3_data_with_padding(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"test", pad=b"padded"))
    h2.expect_response(1)


# -- generic 3.2: HEADERS


def test_generic_3_2_1_headers(h2):
    h2.request(1)
    h2.expect_response(1)


def test_generic_3_2_2_headers_with_padding(h2):
    h2.send(headers(1, h2.encode(h2.common_headers()), pad_len=8))
    h2.expect_response(1)


def test_generic_3_2_3_headers_with_priority(h2):
    h2.send(headers(1, h2.encode(h2.common_headers()), prio=(0, 255, False)))
    h2.expect_response(1)


# -- generic 3.3: PRIORITY


def test_generic_3_3_1_priority_weight_1(h2):
    h2.send(priority(1, 0, 0))
    h2.request(1)
    h2.expect_response(1)


def test_generic_3_3_2_priority_weight_256(h2):
    h2.send(priority(1, 0, 255))
    h2.request(1)
    h2.expect_response(1)


def test_generic_3_3_3_priority_with_dependency(h2):
    h2.send(priority(3, 1, 0))
    h2.request(1)
    h2.expect_response(1)


def test_generic_3_3_4_priority_exclusive(h2):
    h2.send(priority(1, 0, 0, exclusive=True))
    h2.request(1)
    h2.expect_response(1)


def test_generic_3_3_5_priority_on_idle_then_lower_stream(h2):
    h2.send(priority(3, 0, 255))
    h2.request(1)
    h2.expect_response(1)


# -- generic 3.4 RST_STREAM, 3.5 SETTINGS, 3.7 PING, 3.8 GOAWAY


def test_generic_3_4_1_rst_stream(h2):
    h2.request(1, end_stream=False)
    h2.send(rst_stream(1, CANCEL), ping(b"\0" * 8))
    h2.expect_ping_ack(b"\0" * 8, or_close=True)


def test_generic_3_5_1_settings(h2):
    h2.send(settings(
        (HEADER_TABLE_SIZE, 4096), (ENABLE_PUSH, 1), (MAX_CONCURRENT_STREAMS, 100),
        (INITIAL_WINDOW_SIZE, 65535), (MAX_FRAME_SIZE, 16384), (MAX_HEADER_LIST_SIZE, 100),
    ))
    h2.expect_settings_ack()


def test_generic_3_7_1_ping(h2):
    h2.send(ping(b"h2spec\0\0"))
    h2.expect_ping_ack(b"h2spec\0\0")


def test_generic_3_8_1_goaway(h2):
    h2.send(goaway(0, NO_ERROR, b"h2spec"))
    h2.expect_close()


# -- generic 3.9 WINDOW_UPDATE, 3.10 CONTINUATION


def test_generic_3_9_1_window_update_on_connection(h2):
    h2.send(window_update(0, 1), ping(b"\0" * 8))
    h2.expect_ping_ack(b"\0" * 8)


def test_generic_3_9_2_window_update_on_stream(h2):
    h2.request(1)
    h2.send(window_update(1, 1))
    h2.expect_response(1)


def test_generic_3_10_1_continuation(h2):
    block = h2.encode(h2.common_headers())
    h2.send(headers(1, block[:5], end_headers=False), continuation(1, block[5:]))
    h2.expect_response(1)


def test_generic_3_10_2_multiple_continuations(h2):
    block = h2.encode(h2.common_headers())
    h2.send(
        headers(1, block[:5], end_headers=False),
        continuation(1, block[5:10], end_headers=False),
        continuation(1, block[10:]),
    )
    h2.expect_response(1)


# -- generic 4: HTTP Message Exchanges


def test_generic_4_1_get(h2):
    h2.request(1, "GET")
    h2.expect_response(1)


def test_generic_4_2_head(h2):
    h2.request(1, "HEAD")
    h2.expect_response(1)


def test_generic_4_3_post(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"test"))
    h2.expect_response(1)


def test_generic_4_4_post_with_trailers(h2):
    h2.request(1, "POST", end_stream=False, extra=[("trailer", "x-test")])
    h2.send(data(1, b"test", end_stream=False))
    h2.send(headers(1, h2.encode([("x-test", "ok")])))
    h2.expect_response(1)


# -- generic 5: HPACK representations a decoder must accept (RFC 7541 6)

USER_AGENT = 58  # static table index of user-agent

HPACK_ACCEPTED = {
    "indexed": b"\xba",  # user-agent with the static table's empty value
    "incremental_indexed_name": literal("incremental", USER_AGENT, "h2spec", False),
    "incremental_indexed_name_huffman": literal("incremental", USER_AGENT, "h2spec", True),
    "incremental_new_name": literal("incremental", "x-test", "h2spec", False),
    "incremental_new_name_huffman": literal("incremental", "x-test", "h2spec", True),
    "without_indexed_name": literal("without", USER_AGENT, "h2spec", False),
    "without_indexed_name_huffman": literal("without", USER_AGENT, "h2spec", True),
    "without_new_name": literal("without", "x-test", "h2spec", False),
    "without_new_name_huffman": literal("without", "x-test", "h2spec", True),
    "never_indexed_name": literal("never", USER_AGENT, "h2spec", False),
    "never_indexed_name_huffman": literal("never", USER_AGENT, "h2spec", True),
    "never_new_name": literal("never", "x-test", "h2spec", False),
    "never_new_name_huffman": literal("never", "x-test", "h2spec", True),
}


@pytest.mark.parametrize("representation", list(HPACK_ACCEPTED))
def test_generic_5_hpack_representation(h2, representation):
    block = h2.encode(h2.common_headers()) + HPACK_ACCEPTED[representation]
    h2.send(headers(1, block))
    h2.expect_response(1)


def test_generic_5_14_dynamic_table_size_update(h2):
    h2.send(headers(1, b"\x20" + h2.encode(h2.common_headers())))
    h2.expect_response(1)


def test_generic_5_15_multiple_dynamic_table_size_updates(h2):
    # Two updates before the first field: 0, then 4096 (RFC 7541 4.2).
    h2.send(headers(1, b"\x20" + hpack_int(4096, 5, 0x20) + h2.encode(h2.common_headers())))
    h2.expect_response(1)


# =============================================================================
# http2: RFC 9113 requirements, by section of RFC 7540 as h2spec numbers them
# =============================================================================


# -- 3.5 HTTP/2 Connection Preface


def test_http2_3_5_1_client_preface(raw):
    raw.send(PREFACE, settings((INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
    raw.expect_frame(SettingsFrame)


def test_http2_3_5_2_invalid_preface(raw):
    raw.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    raw.expect_close()


# -- 4.1 Frame Format


def test_http2_4_1_1_unknown_frame_type(h2):
    h2.send(frame(UNKNOWN_TYPE, 0, 0, b"\0" * 8), ping(b"\0" * 8))
    h2.expect_frame(PingFrame)


def test_http2_4_1_2_undefined_flag(h2):
    h2.send(frame(PING, 0x16, 0, b"\0" * 8))
    h2.expect_frame(PingFrame)


def test_http2_4_1_3_reserved_bit(h2):
    h2.send(frame(PING, 0x16, 0x80000000, b"\0" * 8))
    h2.expect_frame(PingFrame)


# -- 4.2 Frame Size


def test_http2_4_2_1_data_of_max_frame_size(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"x" * h2.max_frame_size()))
    h2.expect_response(1)


def test_http2_4_2_2_data_above_max_frame_size(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"x" * (h2.max_frame_size() + 1)))
    h2.expect_stream_error(FRAME_SIZE_ERROR)


def test_http2_4_2_3_headers_above_max_frame_size(h2):
    block = h2.encode(h2.common_headers() + h2.dummy_headers(5), huffman=False)
    assert len(block) > h2.max_frame_size()
    h2.send(headers(1, block))
    h2.expect_connection_error(FRAME_SIZE_ERROR)


# -- 4.3 Header Compression and Decompression


def test_http2_4_3_1_invalid_header_block(h2):
    # A literal with incremental indexing that stops before its name.
    h2.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x40"))
    h2.expect_connection_error(COMPRESSION_ERROR)


def test_http2_4_3_2_priority_inside_header_block(h2):
    h2.request(1, end_stream=False, end_headers=False)
    h2.send(priority(1), continuation(1, h2.encode(h2.dummy_headers(1))))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_4_3_3_headers_to_other_stream_inside_header_block(h2):
    h2.request(1, end_stream=False, end_headers=False)
    h2.request(3)
    h2.send(continuation(1, h2.encode(h2.dummy_headers(1))))
    h2.expect_connection_error(PROTOCOL_ERROR)


# -- 5.1 Stream States


def test_http2_5_1_1_idle_data(h2):
    h2.send(data(1, b"test"))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_5_1_2_idle_rst_stream(h2):
    h2.send(rst_stream(1, CANCEL))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_5_1_3_idle_window_update(h2):
    h2.send(window_update(1, 100))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_5_1_4_idle_continuation(h2):
    h2.send(continuation(1, h2.encode(h2.common_headers())))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_5_1_5_half_closed_remote_data(h2):
    h2.request(1)
    h2.send(data(1, b"test"))
    h2.expect_stream_error(STREAM_CLOSED)


def test_http2_5_1_6_half_closed_remote_headers(h2):
    h2.request(1)
    h2.request(1)
    h2.expect_stream_error(STREAM_CLOSED)


def test_http2_5_1_7_half_closed_remote_continuation(h2):
    block = h2.encode(h2.common_headers())
    h2.send(headers(1, block), continuation(1, block))
    h2.expect_stream_error(STREAM_CLOSED, PROTOCOL_ERROR)


# nghttp2 ignores a frame on a stream it no longer keeps (nghttpx, which
# advertises SETTINGS_NO_RFC7540_PRIORITIES and so keeps no closed streams,
# fails 5.1.8, 5.1.9, 5.1.11 and 5.1.12 that way); an nghttp2 server must
# keep closed streams to pass them.


def test_http2_5_1_8_closed_data_after_rst_stream(h2):
    h2.request(1, end_stream=False)
    h2.send(rst_stream(1, CANCEL), data(1, b"test"))
    h2.expect_stream_error(STREAM_CLOSED)


def test_http2_5_1_9_closed_headers_after_rst_stream(h2):
    h2.request(1, end_stream=False)
    h2.send(rst_stream(1, CANCEL))
    h2.request(1)
    h2.expect_stream_error(STREAM_CLOSED)


def test_http2_5_1_10_closed_continuation_after_rst_stream(h2):
    h2.request(1, end_stream=False)
    h2.send(rst_stream(1, CANCEL), continuation(1, h2.encode(h2.dummy_headers(1))))
    h2.expect_stream_error(STREAM_CLOSED, PROTOCOL_ERROR)


# On a stream closed by END_STREAM both ways, RFC 9113 5.1 asks for a
# connection error STREAM_CLOSED and 6.1 (DATA) for a stream error
# STREAM_CLOSED: either passes (HAProxy answers with RST_STREAM).


def test_http2_5_1_11_closed_data(h2):
    h2.request(1)
    h2.expect_stream_end(1)
    h2.send(data(1, b"test"))
    h2.expect_stream_error(STREAM_CLOSED)


def test_http2_5_1_12_closed_headers(h2):
    h2.request(1)
    h2.expect_stream_end(1)
    h2.request(1)
    h2.expect_stream_error(STREAM_CLOSED)


def test_http2_5_1_13_closed_continuation(h2):
    h2.request(1)
    h2.expect_stream_end(1)
    h2.send(continuation(1, h2.encode(h2.dummy_headers(1))))
    h2.expect_connection_error(STREAM_CLOSED, PROTOCOL_ERROR)


# -- 5.1.1 Stream Identifiers


def test_http2_5_1_1_1_even_stream_id(h2):
    h2.request(2)
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_5_1_1_2_smaller_stream_id(h2):
    h2.request(5)
    h2.request(3)
    # 5.1.1 says PROTOCOL_ERROR; but opening stream 5 closed the idle
    # stream 3, and a HEADERS on a closed stream is STREAM_CLOSED (5.1),
    # which is what HAProxy sends. nghttp2 ignores the HEADERS (it cannot
    # tell an unused lower stream from a forgotten one): an nghttp2 server
    # has to check stream ids itself, e.g. in on_begin_frame_callback.
    h2.expect_connection_error(PROTOCOL_ERROR, STREAM_CLOSED)


# -- 5.1.2 Stream Concurrency


def test_http2_5_1_2_1_exceed_concurrent_streams(h2):
    limit = h2.server_settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None:
        pytest.skip("the server sets no SETTINGS_MAX_CONCURRENT_STREAMS")
    # A zero window keeps every stream open: no response body can be sent.
    h2.send(settings((INITIAL_WINDOW_SIZE, 0)))
    block = h2.encode(h2.common_headers())
    h2.send(*(headers(1 + 2 * i, block) for i in range(limit + 1)))
    h2.expect_stream_error(PROTOCOL_ERROR, REFUSED_STREAM)


# -- 5.3.1 Stream Dependencies


def test_http2_5_3_1_1_headers_depending_on_itself(h2):
    h2.send(headers(1, h2.encode(h2.common_headers()), prio=(1, 255, False)))
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_5_3_1_2_priority_depending_on_itself(h2):
    h2.send(priority(1, 1, 255))
    h2.expect_stream_error(PROTOCOL_ERROR)


# -- 5.4.1 Connection Error Handling


def test_http2_5_4_1_1_invalid_ping_closes(h2):
    h2.send(frame(PING, 0, 3, b"\0" * 8))
    h2.expect_close()


# -- 5.5 Extending HTTP/2


def test_http2_5_5_1_unknown_extension_frame(h2):
    h2.send(frame(UNKNOWN_TYPE, 0, 0, b"\0" * 8), ping(b"\0" * 8))
    h2.expect_frame(PingFrame)


def test_http2_5_5_2_unknown_extension_frame_inside_header_block(h2):
    h2.request(1, end_headers=False)
    h2.send(frame(UNKNOWN_TYPE, 0, 0, b"\0" * 8))
    h2.expect_connection_error(PROTOCOL_ERROR)


# -- 6.1 DATA


def test_http2_6_1_1_data_on_stream_0(h2):
    h2.send(data(0, b"test"))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_1_2_data_on_half_closed_remote(h2):
    h2.request(1, "POST")
    h2.send(data(1, b"test"))
    h2.expect_stream_error(STREAM_CLOSED)


def test_http2_6_1_3_data_invalid_pad_length(h2):
    h2.request(1, "POST", end_stream=False, extra=[("content-length", "4")])
    # Payload of 5 octets whose pad length says 6.
    h2.send(frame(DATA, END_STREAM | PADDED, 1, b"\x06Test"))
    h2.expect_connection_error(PROTOCOL_ERROR)


# -- 6.2 HEADERS


def test_http2_6_2_1_headers_without_end_headers_then_priority(h2):
    h2.request(1, end_stream=False, end_headers=False)
    h2.send(priority(1), continuation(1, h2.encode(h2.dummy_headers(1))))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_2_2_headers_to_other_stream_inside_header_block(h2):
    h2.request(1, end_stream=False, end_headers=False)
    h2.request(3)
    h2.send(continuation(1, h2.encode(h2.dummy_headers(1))))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_2_3_headers_on_stream_0(h2):
    h2.request(0)
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_2_4_headers_invalid_pad_length(h2):
    block = h2.encode(h2.common_headers())
    # The pad length (len + 2) exceeds what is left of the payload (len).
    payload = bytes([len(block) + 2]) + block
    h2.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, payload))
    h2.expect_stream_error(PROTOCOL_ERROR)


# -- 6.3 PRIORITY


def test_http2_6_3_1_priority_on_stream_0(h2):
    h2.send(priority(0))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_3_2_priority_bad_length(h2):
    h2.request(1)
    h2.send(frame(PRIORITY, 0, 1, b"\x80\x00\x00\x01"))
    h2.expect_stream_error(FRAME_SIZE_ERROR)


# -- 6.4 RST_STREAM


def test_http2_6_4_1_rst_stream_on_stream_0(h2):
    h2.send(rst_stream(0, CANCEL))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_4_2_rst_stream_on_idle_stream(h2):
    h2.send(rst_stream(1, CANCEL))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_4_3_rst_stream_bad_length(h2):
    h2.request(1)
    h2.send(frame(RST_STREAM, 0, 1, b"\0\0\0"))
    h2.expect_connection_error(FRAME_SIZE_ERROR)


# -- 6.5 SETTINGS


def test_http2_6_5_1_settings_ack_with_payload(h2):
    h2.send(frame(SETTINGS, ACK, 0, b"\0"))
    h2.expect_connection_error(FRAME_SIZE_ERROR)


def test_http2_6_5_2_settings_on_stream_1(h2):
    h2.send(frame(SETTINGS, 0, 1, struct.pack(">HI", MAX_CONCURRENT_STREAMS, 100)))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_5_3_settings_bad_length(h2):
    h2.send(frame(SETTINGS, 0, 0, b"\x00\x03\x00"))
    h2.expect_connection_error(FRAME_SIZE_ERROR)


# -- 6.5.2 Defined SETTINGS Parameters


def test_http2_6_5_2_1_enable_push_invalid(h2):
    h2.send(settings((ENABLE_PUSH, 2)))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_5_2_2_initial_window_size_too_large(h2):
    h2.send(settings((INITIAL_WINDOW_SIZE, 2**31)))
    h2.expect_connection_error(FLOW_CONTROL_ERROR)


def test_http2_6_5_2_3_max_frame_size_too_small(h2):
    h2.send(settings((MAX_FRAME_SIZE, 16383)))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_5_2_4_max_frame_size_too_large(h2):
    h2.send(settings((MAX_FRAME_SIZE, 2**24)))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_5_2_5_unknown_setting(h2):
    h2.send(settings((0xFF, 1)), ping(b"\0" * 8))
    h2.expect_frame(PingFrame)


# -- 6.5.3 Settings Synchronization


def test_http2_6_5_3_1_values_applied_in_order(h2):
    h2.send(settings((INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1)))
    h2.expect_settings_ack()
    h2.request(1)
    h2.expect_data_length(1)


def test_http2_6_5_3_2_settings_acknowledged(h2):
    h2.send(settings((ENABLE_PUSH, 0)))
    h2.expect_settings_ack()


# -- 6.7 PING


def test_http2_6_7_1_ping(h2):
    h2.send(ping(b"h2spec\0\0"))
    h2.expect_ping_ack(b"h2spec\0\0")


def test_http2_6_7_2_ping_ack_not_answered(h2):
    h2.send(ping(b"invalid\0", flags=ACK), ping(b"h2spec\0\0"))
    h2.expect_ping_ack(b"h2spec\0\0")


def test_http2_6_7_3_ping_on_stream_1(h2):
    h2.send(frame(PING, 0, 1, b"\0" * 8))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_7_4_ping_bad_length(h2):
    h2.send(frame(PING, 0, 0, b"\0" * 6))
    h2.expect_connection_error(FRAME_SIZE_ERROR)


# -- 6.8 GOAWAY


def test_http2_6_8_1_goaway_on_stream_1(h2):
    h2.send(frame(GOAWAY, 0, 1, b"\0" * 8))
    h2.expect_connection_error(PROTOCOL_ERROR)


# -- 6.9 WINDOW_UPDATE


def test_http2_6_9_1_window_update_zero_on_connection(h2):
    h2.send(window_update(0, 0))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_9_2_window_update_zero_on_stream(h2):
    h2.request(1, end_stream=False)
    h2.send(window_update(1, 0))
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_6_9_3_window_update_bad_length(h2):
    h2.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
    h2.expect_connection_error(FRAME_SIZE_ERROR)


# -- 6.9.1 The Flow-Control Window


def test_http2_6_9_1_1_initial_window_of_1(h2):
    h2.send(settings((INITIAL_WINDOW_SIZE, 1)))
    h2.expect_settings_ack()
    h2.request(1)
    h2.expect_data_length(1)


def test_http2_6_9_1_2_connection_window_overflow(h2):
    h2.send(window_update(0, 2**31 - 1), window_update(0, 2**31 - 1))
    h2.expect_connection_error(FLOW_CONTROL_ERROR)


def test_http2_6_9_1_3_stream_window_overflow(h2):
    h2.request(1, end_stream=False)
    h2.send(window_update(1, 2**31 - 1), window_update(1, 2**31 - 1))
    h2.expect_stream_error(FLOW_CONTROL_ERROR, stream_id=1)


# -- 6.9.2 Initial Flow-Control Window Size


def test_http2_6_9_2_1_initial_window_change_applies_to_open_streams(h2):
    h2.send(settings((INITIAL_WINDOW_SIZE, 0)))
    h2.expect_settings_ack()
    h2.request(1)
    h2.send(settings((INITIAL_WINDOW_SIZE, 1)))
    h2.expect_settings_ack()
    h2.expect_data_length(1)


def test_http2_6_9_2_2_negative_window(h2):
    h2.send(settings((INITIAL_WINDOW_SIZE, 3)))
    h2.expect_settings_ack()
    h2.request(1)
    h2.expect_data_length(3)
    # The window goes from 0 to -1; an increment of 2 leaves room for 1.
    h2.send(settings((INITIAL_WINDOW_SIZE, 2)))
    h2.expect_settings_ack()
    h2.send(window_update(1, 2))
    h2.expect_data_length(1)


def test_http2_6_9_2_3_initial_window_size_above_maximum(h2):
    h2.send(frame(SETTINGS, 0, 0, b"\x00\x04\x80\x00\x00\x00"))
    h2.expect_connection_error(FLOW_CONTROL_ERROR)


# -- 6.10 CONTINUATION


def test_http2_6_10_1_multiple_continuations(h2):
    h2.request(1, end_headers=False)
    dummy = h2.encode(h2.dummy_headers(1))
    h2.send(continuation(1, dummy, end_headers=False), continuation(1, dummy))
    h2.expect_response(1)


def test_http2_6_10_2_continuation_then_data(h2):
    h2.request(1, "POST", end_stream=False, end_headers=False)
    h2.send(continuation(1, h2.encode(h2.dummy_headers(1)), end_headers=False))
    h2.send(data(1, b"test"))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_10_3_continuation_on_stream_0(h2):
    h2.request(1, end_headers=False)
    h2.send(continuation(0, h2.encode(h2.dummy_headers(1))))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_10_4_continuation_after_end_headers(h2):
    h2.request(1)
    h2.send(continuation(1, h2.encode(h2.dummy_headers(1))))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_10_5_continuation_after_continuation_end_headers(h2):
    h2.request(1, end_headers=False)
    dummy = h2.encode(h2.dummy_headers(1))
    h2.send(continuation(1, dummy), continuation(1, dummy))
    h2.expect_connection_error(PROTOCOL_ERROR)


def test_http2_6_10_6_continuation_after_data(h2):
    h2.request(1, "POST", end_stream=False, end_headers=False)
    h2.send(data(1, b"test"))
    dummy = h2.encode(h2.dummy_headers(1))
    h2.send(continuation(1, dummy, end_headers=False), continuation(0, dummy))
    h2.expect_connection_error(PROTOCOL_ERROR)


# -- 7 Error Codes


def test_http2_7_1_goaway_unknown_error_code(h2):
    h2.send(goaway(0, 0xFF), ping(b"\0" * 8))
    h2.expect_ping_ack(b"\0" * 8, or_close=True)


def test_http2_7_2_rst_stream_unknown_error_code(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(rst_stream(1, 0xFF), ping(b"\0" * 8))
    h2.expect_ping_ack(b"\0" * 8)


# -- 8.1 HTTP Request/Response Exchange


def test_http2_8_1_1_second_headers_without_end_stream(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"test", end_stream=False))
    h2.send(headers(1, h2.encode([("x-test", "ok")]), end_stream=False))
    h2.expect_stream_error(PROTOCOL_ERROR)


# -- 8.1.2 HTTP Header Fields (RFC 9113 8.2, 8.3)


def test_http2_8_1_2_1_uppercase_field_name(h2):
    h2.request(1, extra=[("X-TEST", "ok")])
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_1_1_unknown_pseudo_header(h2):
    h2.request(1, extra=[(":test", "ok")])
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_1_2_response_pseudo_header_in_request(h2):
    h2.request(1, extra=[(":status", "200")])
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_1_3_pseudo_header_in_trailers(h2):
    h2.request(1, "POST", end_stream=False)
    h2.send(data(1, b"test", end_stream=False))
    # Without END_STREAM, as h2spec sends it (HAProxy answers a pseudo-header
    # in trailers that do end the stream with INTERNAL_ERROR).
    h2.send(headers(1, h2.encode([(":method", "POST")]), end_stream=False))
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_1_4_pseudo_header_after_regular_field(h2):
    h2.send(headers(1, h2.encode([("x-test", "ok")] + h2.common_headers())))
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_2_1_connection_specific_field(h2):
    h2.request(1, extra=[("connection", "keep-alive")])
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_2_2_te_other_than_trailers(h2):
    h2.request(1, extra=[("trailers", "test"), ("te", "trailers, deflate")])
    h2.expect_stream_error(PROTOCOL_ERROR)


def _without(fields, name):
    return [f for f in fields if f[0] != name]


def test_http2_8_1_2_3_1_empty_path(h2):
    fields = [(n, "" if n == ":path" else v) for n, v in h2.common_headers()]
    h2.send(headers(1, h2.encode(fields)))
    h2.expect_stream_error(PROTOCOL_ERROR)


@pytest.mark.parametrize("name", [":method", ":scheme", ":path"])
def test_http2_8_1_2_3_omitted_pseudo_header(h2, name):
    h2.send(headers(1, h2.encode(_without(h2.common_headers(), name))))
    h2.expect_stream_error(PROTOCOL_ERROR)


@pytest.mark.parametrize("name", [":method", ":scheme", ":path"])
def test_http2_8_1_2_3_duplicated_pseudo_header(h2, name):
    fields = h2.common_headers()
    fields.insert(3, (name, dict(fields)[name]))
    h2.send(headers(1, h2.encode(fields)))
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_6_1_content_length_differs_from_data(h2):
    h2.request(1, "POST", end_stream=False, extra=[("content-length", "1")])
    h2.send(data(1, b"test"))
    h2.expect_stream_error(PROTOCOL_ERROR)


def test_http2_8_1_2_6_2_content_length_differs_from_sum_of_data(h2):
    h2.request(1, "POST", end_stream=False, extra=[("content-length", "1")])
    h2.send(data(1, b"test", end_stream=False), data(1, b"test"))
    h2.expect_stream_error(PROTOCOL_ERROR)


# -- 8.2 Server Push


def test_http2_8_2_1_push_promise_from_client(h2):
    block = h2.encode(h2.common_headers())
    h2.send(frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 3) + block))
    h2.expect_connection_error(PROTOCOL_ERROR)


# =============================================================================
# hpack: RFC 7541 decoding errors, each a connection error COMPRESSION_ERROR
# =============================================================================


def _with_representation(h2, representation, before=False):
    block = h2.encode(h2.common_headers())
    return representation + block if before else block + representation


def test_hpack_2_3_3_index_out_of_range(h2):
    # Index 126: past the 61 static entries and the dynamic table.
    h2.send(headers(1, _with_representation(h2, b"\xfe")))
    h2.expect_connection_error(COMPRESSION_ERROR)


def test_hpack_4_2_table_size_update_at_end_of_block(h2):
    h2.send(headers(1, _with_representation(h2, b"\x21")))
    h2.expect_connection_error(COMPRESSION_ERROR)


def test_hpack_5_2_1_huffman_padding_longer_than_7_bits(h2):
    # x-test: test, with a whole octet of EOS padding after the value.
    rep = b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff"
    h2.send(headers(1, _with_representation(h2, rep)))
    h2.expect_connection_error(COMPRESSION_ERROR)


def test_hpack_5_2_2_huffman_padded_by_zero(h2):
    rep = b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90"
    h2.send(headers(1, _with_representation(h2, rep)))
    h2.expect_connection_error(COMPRESSION_ERROR)


def test_hpack_5_2_3_huffman_contains_eos(h2):
    rep = b"\x00\x85\xf2\xb2\x4a\x87\xff\xff\xff\xfd\x25\x42\x7f"
    h2.send(headers(1, _with_representation(h2, rep)))
    h2.expect_connection_error(COMPRESSION_ERROR)


def test_hpack_6_1_1_index_0(h2):
    h2.send(headers(1, _with_representation(h2, b"\x80")))
    h2.expect_connection_error(COMPRESSION_ERROR)


def test_hpack_6_3_1_table_size_update_above_setting(h2):
    limit = h2.server_settings.get(HEADER_TABLE_SIZE, 4096)
    h2.send(headers(1, _with_representation(h2, hpack_int(limit + 1, 5, 0x20), before=True)))
    h2.expect_connection_error(COMPRESSION_ERROR)


# =============================================================================
# RFC 9113 8.2.1: field values that HTTP/1.1 would read as framing. A proxy
# that let them through would split one request into two on the backend.
# =============================================================================


@pytest.mark.parametrize(
    "name,value",
    [
        ("x-test", "ok\r\nx-injected: 1"),
        ("x-test", "ok\nx-injected: 1"),
        ("x-test", "ok\x00"),
        ("x test", "ok"),
        ("x-test:", "ok"),
    ],
    ids=["crlf-in-value", "lf-in-value", "nul-in-value", "space-in-name", "colon-in-name"],
)
def test_rfc9113_8_2_1_invalid_field(h2, name, value):
    h2.request(1, extra=[(name, value)])
    h2.expect_stream_error(PROTOCOL_ERROR)
