"""The HTTP/2 attack limits of an http-mode listener (issue 10, "HTTP/2
attack limits"; proxy/h2_limits.h): Rapid Reset, glitches (MadeYouReset and
its kin), CONTINUATION floods, SETTINGS and PING floods, the outbound queue
cap, the SETTINGS ACK timeout, the write timeouts and the cap on streams per
connection.

Each attack is a raw frame script (the helpers of test_h2_conformance.py)
against a listener configured with small limits, so that it fires at once.
Each test asserts what the attacker gets (a GOAWAY with its code, a
RST_STREAM, or a close), the http2_abuse log line with its cause, the
tlsterm_http2_abuse_total counter on /metrics, and that a well-behaved
client on another connection is served before and after. Every loop is
bounded, every wait has a deadline, and the timeouts are configured in
milliseconds.
"""

import struct

import pytest

from http_harness import H2Conn, http_config, http_listener, tlsterm_only
from test_h2_conformance import (
    INITIAL_WINDOW_SIZE,
    NO_ERROR,
    PREFACE,
    Closed,
    H2Client,
    Target,
    Timeout,
    continuation,
    data,
    frame,
    headers,
    ping,
    priority,
    rst_stream,
    settings,
    window_update,
)
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame
from tlsterm_harness import admin_addr, free_port, samples, total

pytestmark = tlsterm_only

INTERNAL_ERROR, SETTINGS_TIMEOUT, REFUSED_STREAM, CANCEL = 0x2, 0x4, 0x7, 0x8
ENHANCE_YOUR_CALM = 0xB
# How many attack frames a script sends: well past every small limit below.
FLOOD = 40


@pytest.fixture
def backend(http_backend_factory):
    return http_backend_factory()


class Limits:
    """Limits is tlsterm with one http listener "web" configured with
    |http2| (and |http|), the admin endpoint on, and a well-behaved
    client."""

    def __init__(self, tlsterm_factory, backend, certs, http=None, **http2):
        listener = http_listener("web", backend, certs, http2=http2, http=http)
        config = http_config([listener])
        config["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
        self.proxy = tlsterm_factory(config)
        self.port = self.proxy.port("web")
        self.certs = certs
        self.target = Target(self.port, str(certs.ca), "tlsterm")
        self.good = H2Conn(self.port, certs)
        self.served("before the attack")
        self.mark = self.proxy.mark()

    def served(self, when):
        """served checks that the well-behaved client gets an answer."""
        stream = self.good.get("/headers")
        assert stream.status == 200, f"{when}: {stream.status}"

    def attacker(self, handshake=True):
        client = H2Client(self.target)
        if handshake:
            client.handshake()
        return client

    def abuse(self, cause, count=1):
        """abuse waits for the http2_abuse line of |cause|, checks the
        counter, and that the well-behaved client is still served."""
        line = self.proxy.wait_for("http2_abuse", since=self.mark, cause=cause)
        assert line["listener"] == "web" and line["client"].startswith("127.0.0.1:"), line
        values = samples(admin_addr(self.proxy))
        assert total(values, "tlsterm_http2_abuse_total", listener="web", cause=cause) >= count
        self.served(f"after {cause}")
        return line

    def closed_for_abuse(self):
        """The attacker's connection ended with reason http2_abuse."""
        return self.proxy.wait_for("conn_closed", since=self.mark, reason="http2_abuse")

    def close(self):
        self.good.close()


@pytest.fixture
def limits(tlsterm_factory, backend, certs):
    made = []

    def make(**options):
        made.append(Limits(tlsterm_factory, backend, certs, **options))
        return made[-1]

    yield make
    for item in made:
        item.close()


def request_block(client, path="/", method="GET", extra=()):
    return client.encode([(":method", method), (":scheme", "https"), (":path", path),
                          (":authority", client.authority), *extra])


# ---- Rapid Reset (CVE-2023-44487) -------------------------------------------------


def test_rapid_reset(limits):
    """nghttp2's bucket with the configured values: the reset past the burst
    gets GOAWAY INTERNAL_ERROR from nghttp2, and tlsterm ends the
    connection."""
    lim = limits(reset_burst=5, reset_rate=1)
    client = lim.attacker()
    burst = b""
    for i in range(FLOOD):
        sid = 1 + 2 * i
        burst += headers(sid, request_block(client)) + rst_stream(sid)
    client.send(burst)
    client.expect_connection_error(INTERNAL_ERROR)
    lim.abuse("rapid_reset")
    lim.closed_for_abuse()


def test_reset_stream_keeps_its_slot(limits, backend):
    """A stream the client resets while its HTTP/1.1 backend still answers
    keeps its concurrency slot: a stream beyond max_concurrent_streams is
    refused until the backend is done, and then served."""
    lim = limits(max_concurrent_streams=2)
    client = lim.attacker()
    for sid in (1, 3):
        client.send(headers(sid, request_block(client, "/slow/1")), rst_stream(sid))
    backend.wait_count("request", 2, path="/slow/1")
    client.send(headers(5, request_block(client)))
    event = client.expect_frame(RstStreamFrame, 5)
    assert event.error_code == REFUSED_STREAM, client.log
    # Once both slow responses are complete, the slots are free again.
    lim.proxy.wait_count("request", 2, since=lim.mark, path="/slow/1")
    client.send(headers(7, request_block(client)))
    client.expect_response(7)
    lines = lim.proxy.find("request", since=lim.mark, path="/slow/1")
    assert all(line["reason"] == "client_aborted" for line in lines), lines
    # Their backend connections were pooled, not cut.
    assert not backend.find("close", how="reset"), backend.find("close")


# ---- glitches (MadeYouReset, CVE-2025-8671, and others) ------------------------------


def glitch_priority(client):
    return b"".join(priority(1 + 2 * i) for i in range(FLOOD))


def glitch_empty_data(client):
    opening = headers(1, request_block(client, "/sha", "POST"), end_stream=False)
    return opening + b"".join(data(1, b"", end_stream=False) for _ in range(FLOOD))


def glitch_window_update(client):
    return b"".join(window_update(0, 1) for _ in range(FLOOD))


def glitch_made_you_reset(client):
    # A WINDOW_UPDATE that overflows a stream's window is a stream error
    # (FLOW_CONTROL_ERROR): the client makes the server reset its streams.
    return b"".join(headers(1 + 2 * i, request_block(client), end_stream=False)
                    + window_update(1 + 2 * i, 2**31 - 1) for i in range(FLOOD))


def glitch_invalid_header(client):
    return b"".join(headers(1 + 2 * i, request_block(client, extra=[("x-bad", "a\x01b")]))
                    for i in range(FLOOD))


def glitch_invalid_frame(client):
    # PING on a stream: nghttp2 finds it invalid.
    return b"".join(frame(0x6, 0, 1 + 2 * i, b"\0" * 8) for i in range(FLOOD))


@pytest.mark.parametrize("script", [
    glitch_priority, glitch_empty_data, glitch_window_update, glitch_made_you_reset,
    glitch_invalid_header,
], ids=lambda script: script.__name__[len("glitch_"):])
def test_glitches(limits, script):
    """Each kind of glitch drains the bucket; past the burst, GOAWAY
    ENHANCE_YOUR_CALM."""
    lim = limits(glitch_burst=10, glitch_rate=1)
    client = lim.attacker()
    client.send(script(client))
    client.expect_connection_error(ENHANCE_YOUR_CALM)
    line = lim.abuse("glitches")
    assert line["detail"] in ("priority", "empty_data", "window_update", "rst_stream_sent",
                              "invalid_header", "invalid_frame", "closed_stream"), line
    lim.closed_for_abuse()


def test_well_behaved_client_is_no_glitch(limits):
    """Normal traffic with a small budget: many requests and downloads, the
    windows given back as DATA arrives, never a GOAWAY."""
    lim = limits(glitch_burst=5, glitch_rate=1)
    for _ in range(3):
        streams = [lim.good.request("GET", "/bytes/200000") for _ in range(5)]
        lim.good.wait(lambda: all(s.done for s in streams), what="five downloads")
        assert all(s.status == 200 and s.length == 200000 for s in streams)
    assert lim.good.goaways == []
    assert lim.proxy.find("http2_abuse", since=lim.mark) == []


# ---- CONTINUATION floods and header limits ------------------------------------------


def test_too_many_continuations(limits):
    """More than max_continuations CONTINUATION frames in one header
    block: GOAWAY ENHANCE_YOUR_CALM."""
    lim = limits(max_continuations=2)
    client = lim.attacker()
    block = request_block(client, extra=[("x-pad", "p" * 40)])
    pieces = [block[i:i + 10] for i in range(0, len(block), 10)]
    assert len(pieces) > 4
    burst = headers(1, pieces[0], end_headers=False)
    for i, piece in enumerate(pieces[1:], 1):
        burst += continuation(1, piece, end_headers=i == len(pieces) - 1)
    client.send(burst)
    client.expect_connection_error(ENHANCE_YOUR_CALM)
    lim.abuse("continuations")
    lim.closed_for_abuse()


def test_large_header_block_is_answered_431(limits):
    """A header block over http.max_request_header_bytes, spread over
    CONTINUATIONs within the limit, is answered 431 on its stream: the
    connection goes on."""
    lim = limits(http={"max_request_header_bytes": "1KiB"})
    client = lim.attacker()
    block = request_block(client, extra=[(f"x-big{i}", "v" * 600) for i in range(3)])
    third = len(block) // 3 + 1
    client.send(headers(1, block[:third], end_headers=False),
                continuation(1, block[third:2 * third], end_headers=False),
                continuation(1, block[2 * third:]))
    event = client.expect_frame(HeadersFrame, 1)
    assert dict(event.fields)[":status"] == "431", event.fields
    client.send(headers(3, request_block(client)))
    client.expect_response(3)


# ---- SETTINGS and PING floods, the outbound queue ------------------------------------


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_control_frame_flood(limits, kind):
    """More ACKs queued than max_outbound_acks (nghttp2's FLOODED): GOAWAY
    ENHANCE_YOUR_CALM and the connection ends."""
    lim = limits(max_outbound_acks=10)
    client = lim.attacker()
    one = ping(struct.pack(">Q", 7)) if kind == "ping" else settings()
    client.send(one * FLOOD)
    client.expect_connection_error(ENHANCE_YOUR_CALM)
    lim.abuse("control_flood")
    lim.closed_for_abuse()


def test_outbound_queue_cap(limits):
    """More frames queued after one read than max_outbound_frames: GOAWAY
    ENHANCE_YOUR_CALM."""
    lim = limits(max_outbound_frames=20)
    client = lim.attacker()
    client.send(ping(struct.pack(">Q", 9)) * FLOOD)
    client.expect_connection_error(ENHANCE_YOUR_CALM)
    lim.abuse("outbound_queue")
    lim.closed_for_abuse()


# ---- timeouts --------------------------------------------------------------------------


def test_settings_timeout(limits):
    """A client that never acknowledges our SETTINGS: GOAWAY
    SETTINGS_TIMEOUT after settings_timeout."""
    lim = limits(settings_timeout="300ms")
    client = lim.attacker(handshake=False)
    client.send(PREFACE, settings())
    client.expect_connection_error(SETTINGS_TIMEOUT)
    lim.abuse("settings_timeout")
    lim.closed_for_abuse()


def test_write_timeout_connection(limits):
    """A client whose connection window stays shut while a response waits:
    GOAWAY ENHANCE_YOUR_CALM after write_timeout."""
    lim = limits(write_timeout="700ms")
    client = lim.attacker(handshake=False)
    client.handshake((INITIAL_WINDOW_SIZE, 2**31 - 1))
    client.send(headers(1, request_block(client, "/bytes/1000000")))
    received = 0
    for event in client.events():
        if isinstance(event, DataFrame):
            received += len(event.data)
        if isinstance(event, GoAwayFrame):
            assert event.error_code == ENHANCE_YOUR_CALM, client.log
            break
        assert not isinstance(event, (RstStreamFrame, Closed, Timeout)), client.log
    assert received == 65535, received
    lim.abuse("write_timeout")
    lim.closed_for_abuse()


def test_write_timeout_stream(limits):
    """A stream whose window stays shut gets RST_STREAM CANCEL after
    write_timeout; the connection and its other streams go on."""
    lim = limits(write_timeout="700ms")
    client = lim.attacker(handshake=False)
    client.handshake((INITIAL_WINDOW_SIZE, 1000))
    client.send(headers(1, request_block(client, "/bytes/100000")))
    client.send(headers(3, request_block(client)))
    client.expect_response(3)
    event = client.expect_frame(RstStreamFrame, 1)
    assert event.error_code == CANCEL, client.log
    client.send(headers(5, request_block(client)))
    client.expect_response(5)
    lim.abuse("stream_write_timeout")


# ---- streams per connection -------------------------------------------------------------


def test_max_streams_per_connection(limits, certs):
    """The last stream allowed gets its response, then a graceful GOAWAY
    NO_ERROR naming it; the client reconnects."""
    lim = limits(max_streams_per_connection=3)
    with H2Conn(lim.port, certs) as conn:
        for _ in range(3):
            stream = conn.get("/")
            assert stream.status == 200
        conn.wait(lambda: conn.goaways, what="the GOAWAY after the last stream")
        goaway = conn.goaways[0]
        assert goaway.error_code == NO_ERROR and goaway.last_stream_id == 5, goaway
        conn.wait(lambda: conn.pipe.eof, what="the close after the GOAWAY")
    line = lim.abuse("max_streams")
    assert line["level"] == "info", line
    with H2Conn(lim.port, certs) as again:
        assert again.get("/").status == 200


def test_streams_past_the_cap_in_the_same_read(limits, backend):
    """Streams that arrive in the same read as the one that reached
    max_streams_per_connection are above the GOAWAY's last stream id, which
    tells the client they were not processed (it may send them again
    elsewhere, RFC 9113 6.8): none reaches the backend, and one GOAWAY
    names the last stream allowed (found by fuzz/h2_session_fuzz.c)."""
    lim = limits(max_streams_per_connection=3)
    client = lim.attacker()
    client.send(b"".join(headers(1 + 2 * i, request_block(client, f"/echo/{i}"))
                         for i in range(8)))
    goaways, answered = [], set()
    for event in client.events():
        if isinstance(event, GoAwayFrame):
            goaways.append((event.error_code, event.last_stream_id))
        elif isinstance(event, HeadersFrame):
            answered.add(event.stream_id)
        elif isinstance(event, Timeout):
            pytest.fail(f"no close after the GOAWAY: {client.log}")
    assert goaways == [(NO_ERROR, 5)], client.log
    assert answered == {1, 3, 5}, client.log
    lim.abuse("max_streams")
    paths = sorted(line["path"] for line in backend.find("request") if line["path"] != "/headers")
    assert paths == ["/echo/0", "/echo/1", "/echo/2"], paths
