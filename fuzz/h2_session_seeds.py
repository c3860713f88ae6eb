#!/usr/bin/python3
"""Writes the seed corpus of h2_session_fuzz (fuzz/corpus/h2_session/).

Each seed is the target's 11-byte header (read size and preface, listener
flags, handshake and drain moments, the backend's script: see the top of
fuzz/h2_session_fuzz.c) followed by a client's frames, made with hpack and
hyperframe (Debian's python3-h2). Run it from the repository's root:

    /usr/bin/python3 fuzz/h2_session_seeds.py fuzz/corpus/h2_session
"""
import os
import sys

from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame,
                              PingFrame, PriorityFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

PREFACE = 0x80
# Listener flags (byte 1).
X_FORWARDED, FORWARDED, REQUEST_ID, SMALL, HSTS, EARLY, IPV6, FEW = 1, 2, 4, 8, 16, 32, 64, 128
# Script bytes: outcome | eager | size or failure | slow reader | variant.
LENGTH, TRAILERS, NO_CONTENT, HINTS, FAIL, RESET, EARLY_413, NO_MEMORY = range(8)
EAGER, SLOW, VARIANT = 0x08, 0x40, 0x80


def size(n):
    return n << 4


def header(read_16s, flags, handshake_at=15, notice_at=15, script=(LENGTH,) * 8):
    assert len(script) == 8
    return bytes([PREFACE | read_16s, flags, handshake_at | notice_at << 4, *script])


class Client:
    def __init__(self):
        self.enc = Encoder()
        self.out = b""

    def add(self, frame):
        self.out += frame.serialize()
        return self

    def settings(self, **extra):
        return self.add(SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535,
                                                   **extra}))

    def headers(self, sid, fields, end_stream=True, split=0):
        block = self.enc.encode(fields)
        flags = ["END_STREAM"] if end_stream else []
        if split == 0 or split >= len(block):
            return self.add(HeadersFrame(sid, block, flags=flags + ["END_HEADERS"]))
        self.add(HeadersFrame(sid, block[:split], flags=flags))
        return self.add(ContinuationFrame(sid, block[split:], flags=["END_HEADERS"]))

    def data(self, sid, body, end_stream=True):
        return self.add(DataFrame(sid, body, flags=["END_STREAM"] if end_stream else []))


def get(path="/", authority="localhost", method="GET", extra=()):
    return [(":method", method), (":scheme", "https"), (":path", path),
            (":authority", authority), *extra]


def seeds():
    c = Client().settings()
    c.add(SettingsFrame(0, flags=["ACK"]))
    c.headers(1, get(extra=[("user-agent", "curl/7.88")]))
    c.add(WindowUpdateFrame(0, 1 << 20)).add(WindowUpdateFrame(1, 1 << 20))
    yield "get", header(0, X_FORWARDED), c.out

    c = Client().settings()
    c.headers(1, get(method="POST", extra=[("content-length", "10"),
                                             ("content-type", "text/plain")]), end_stream=False)
    c.data(1, b"hello", end_stream=False).data(1, b"world")
    c.headers(3, get(method="POST", path="/upload"), end_stream=False)
    c.data(3, b"x" * 3000, end_stream=False).data(3, b"")
    c.add(WindowUpdateFrame(0, 100000)).add(WindowUpdateFrame(1, 100000))
    yield "post", header(4, X_FORWARDED | FORWARDED | REQUEST_ID,
                         script=(LENGTH | size(2), TRAILERS | size(1) | SLOW, EARLY_413,
                                 RESET | size(3), LENGTH, LENGTH, LENGTH, LENGTH)), c.out

    c = Client().settings()
    c.headers(1, get(path="/continued", extra=[("x-long", "v" * 200), ("accept", "*/*")]),
              split=20)
    c.headers(3, get(method="HEAD"))
    c.headers(5, get(extra=[("host", "localhost")]))
    yield "continuation", header(0, HSTS, script=(HINTS | size(1) | VARIANT, NO_CONTENT,
                                                  NO_CONTENT | size(1), LENGTH, LENGTH,
                                                  LENGTH, LENGTH, LENGTH)), c.out

    # A client that resets streams the backend still answers (detached),
    # and one whose backend fails before or after its head.
    c = Client().settings()
    for sid in (1, 3, 5, 7, 9):
        c.headers(sid, get(path="/slow/%d" % sid))
    c.add(RstStreamFrame(1, error_code=8)).add(RstStreamFrame(3, error_code=8))
    c.add(PriorityFrame(5, depends_on=3, stream_weight=200))
    c.add(WindowUpdateFrame(5, 1000)).add(DataFrame(11, b"late"))
    yield "reset", header(2, 0, script=(LENGTH | size(3) | SLOW, LENGTH | size(2), FAIL | size(1),
                                        FAIL | EAGER, RESET | size(2), NO_MEMORY, LENGTH,
                                        LENGTH)), c.out

    # 0-RTT: a GET goes early (one the backend answers 425 waits), a POST
    # waits for the handshake, which completes after the third read.
    c = Client().settings()
    c.headers(1, get(path="/early"))
    c.headers(3, get(method="POST", extra=[("content-length", "4")]), end_stream=False)
    c.data(3, b"body")
    c.headers(5, get(path="/too-early"))
    c.add(PingFrame(0, opaque_data=b"12345678"))
    yield "early_data", header(2, EARLY, handshake_at=3,
                               script=(LENGTH | size(1), LENGTH | size(1) | EAGER,
                                       LENGTH | VARIANT | EAGER, LENGTH, LENGTH, LENGTH, LENGTH,
                                       LENGTH)), c.out

    # The worker drains after the first read: the client answers the
    # notice's PING and sends one more request before the final GOAWAY.
    c = Client().settings()
    c.headers(1, get())
    c.add(PingFrame(0, opaque_data=b"tlstermd", flags=["ACK"]))
    c.headers(3, get(path="/after-notice"))
    c.add(GoAwayFrame(0, last_stream_id=0, error_code=0))
    yield "drain", header(3, 0, notice_at=0), c.out

    # What start_request refuses or answers itself: an authority the
    # certificate does not cover (421), Host against :authority (400), an
    # absolute path, OPTIONS *, no authority, a header block over the
    # small limit (431); and more streams than max_concurrent_streams.
    c = Client().settings()
    c.headers(1, get(authority="other.example"))
    c.headers(3, get(extra=[("host", "elsewhere")]))
    c.headers(5, get(path="http://localhost/"))
    c.headers(7, get(path="*", method="OPTIONS"))
    c.headers(9, [(":method", "GET"), (":scheme", "https"), (":path", "/")])
    c.headers(11, get(extra=[("cookie", "c" * 400)]))
    for sid in range(13, 25, 2):
        c.headers(sid, get(path="/%d" % sid))
    yield "refused", header(1, SMALL | FEW), c.out

    # Past max_streams_per_connection (6 with the small limits) in one
    # read: a graceful GOAWAY, and the streams after it are not started.
    c = Client().settings()
    for sid in range(1, 33, 2):
        c.headers(sid, get(path="/%d" % sid))
    c.add(RstStreamFrame(1, error_code=8))
    yield "max_streams", header(0, SMALL), c.out

    # As many fields as a client may send (100, the four pseudo-header
    # fields among them), in 0-RTT: the head a backend gets has Host, the
    # forwarding fields, the request id and Early-Data on top.
    c = Client().settings()
    c.headers(1, get(extra=[("x-f%d" % i, "v") for i in range(96)]))
    yield "many_fields", header(0, X_FORWARDED | FORWARDED | REQUEST_ID | EARLY), c.out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/h2_session"
    os.makedirs(out, exist_ok=True)
    for name, head, frames in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(head + frames)


if __name__ == "__main__":
    main()
