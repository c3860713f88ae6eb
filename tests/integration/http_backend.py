"""A plain HTTP/1.1 backend for the HTTP-mode tests, run as its own process.

    /usr/bin/python3 http_backend.py [--idle-close SECONDS]

It listens on 127.0.0.1 on an ephemeral port and prints "PORT <n>" on stdout
once it accepts connections. After that line, stdout carries one JSON object
per line, so a test can see what happened to each backend connection:

  {"event": "open", "conn": 3, "peer": "127.0.0.1:40000"}
  {"event": "request", "conn": 3, "n": 1, "method": "GET", "path": "/x"}
  {"event": "close", "conn": 3, "how": "eof", "state": "idle", "requests": 1}

"conn" numbers connections from 1 in accept order; "n" counts the requests
on one connection (so n > 1 is a reused connection). "how" is "eof" (the
client closed), "reset" (the client reset or a write failed), "server" (this
backend closed: Connection: close, a /drop, or --idle-close) or "stopped";
"state" says where the connection was: "idle" (between requests, the only
clean place for a proxy to close), "head", "body" (reading a request) or
"response" (writing one).

--race-every N closes every Nth request that arrives on a reused connection
without answering it, as a server whose idle timeout fired just as the
request arrived: the keep-alive race, on demand.

--host ADDRESS listens on ADDRESS (an IPv4 or IPv6 literal) instead of
127.0.0.1.

--idle-close SECONDS closes a keep-alive connection that stays idle that
long after a response (FIN, not reset), as many servers do: a proxy that
reuses it at that moment meets the keep-alive race.

Behaviour by path (the query string is ignored unless named):
  /echo          the response body is the request body, streamed as it
                 arrives: Content-Length when the request had one, chunked
                 otherwise. Any size.
  /early         425 Too Early when the request says Early-Data: 1, else
                 what /headers answers.
  /headers       JSON: method, target, version, headers (a list of
                 [name, value] exactly as received, in order), peer, conn, n,
                 body_len (the body is read and counted).
  /bytes/N       the first N bytes of backend.pattern(), Content-Length;
                 ?chunked=1 sends them chunked. Streamed, any N.
  /sha           reads the body streaming; JSON {"sha256", "length"}.
  /status/N      answers status N: 204 and 304 without a body; 1xx (100,
                 103) are sent as an informational response, then 200.
  /trailers      chunked response "trailers body\\n" with trailers
                 x-trailer-one: 1 and x-trailer-two: two.
  /slow/SECONDS  response headers after SECONDS, then "slow\\n".
  /silent        reads the request and never answers.
  /continue      with Expect: 100-continue sends "100 Continue" before it
                 reads the body; JSON {"continue_sent", "length", "sha256"}.
  /close         answers with Connection: close and closes.
  /close-quiet   answers 200 "closing quietly\n" without Connection: close
                 and closes: the response's last segment carries the FIN
                 (TCP_CORK, then shutdown), so a proxy that reads the response
                 finds the connection closed at once - a server that breaks
                 RFC 9112 9.6, the keep-alive race in one turn of the proxy.
  /drop          reads the request and closes without answering.
  /drop-mid      sends headers (Content-Length 1 MiB) and 1000 body bytes,
                 then closes: a response that fails half way.
  /invalid       answers with bytes that are not HTTP.
  /hop           answers 200 with hop-by-hop fields the proxy must remove
                 (Connection: x-hop-resp, X-Hop-Resp, Keep-Alive,
                 Proxy-Connection, Upgrade) and X-End-To-End: kept.
  /hsts          answers 200 with its own Strict-Transport-Security:
                 max-age=60.
  /ws            WebSocket: checks the Upgrade request, answers 101 with the
                 Sec-WebSocket-Accept, then echoes each frame (text, binary,
                 ping as pong) unmasked until a close frame, which it
                 answers with a close frame.
  /fields/N      answers 200 "fields\\n" with N fields X-Field-<i>: <i
                 times "v">, i = 1..N: a response head of any size.
  anything else  200 "hello from http_backend\\n".
HEAD gets the headers GET would get, without a body.

asyncio on one thread, with a 1024 backlog: thousands of connections at once.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import signal
import socket
import struct
import sys

from backend import pattern

HELLO_BODY = b"hello from http_backend\n"
TRAILERS_BODY = b"trailers body\n"
TRAILERS = [("x-trailer-one", "1"), ("x-trailer-two", "two")]
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11D65"

_CHUNK = 64 * 1024
_MAX_HEAD = 1024 * 1024

REASONS = {
    100: "Continue", 101: "Switching Protocols", 103: "Early Hints", 200: "OK",
    204: "No Content", 304: "Not Modified", 400: "Bad Request", 404: "Not Found",
    500: "Internal Server Error",
}


def log(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class BadRequest(Exception):
    pass


class Request:
    """Request is one parsed request head; body() streams its body."""

    def __init__(self, conn, head):
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise BadRequest(lines[0])
        self.method, self.target, self.version = parts
        self.path, _, self.query = self.target.partition("?")
        self.headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or name != name.strip():
                raise BadRequest(line)
            self.headers.append((name, value.strip(" \t")))
        self.conn = conn
        te = [v.lower() for v in self.values("transfer-encoding")]
        self.chunked = bool(te) and te[-1].split(",")[-1].strip() == "chunked"
        lengths = self.values("content-length")
        self.length = None if self.chunked or not lengths else int(lengths[0])
        self.body_done = not self.chunked and not self.length
        self.trailers = []

    def values(self, name):
        return [v for n, v in self.headers if n.lower() == name]

    def value(self, name, default=""):
        found = self.values(name)
        return found[0] if found else default

    def tokens(self, name):
        return {t.strip().lower() for v in self.values(name) for t in v.split(",") if t.strip()}

    def wants_close(self):
        connection = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" not in connection
        return "close" in connection

    async def body(self):
        """body yields the request body in chunks, de-chunked."""
        reader = self.conn.reader
        if self.body_done:
            return
        self.conn.state = "body"
        if not self.chunked:
            left = self.length
            while left:
                data = await reader.read(min(left, _CHUNK))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
        else:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        line = await reader.readuntil(b"\r\n")
                        if line == b"\r\n":
                            break
                        name, _, value = line.decode("latin-1").partition(":")
                        self.trailers.append((name, value.strip()))
                    break
                left = size
                while left:
                    data = await reader.read(min(left, _CHUNK))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", left)
                    left -= len(data)
                    yield data
                if await reader.readexactly(2) != b"\r\n":
                    raise BadRequest("chunk without CRLF")
        self.body_done = True

    async def drain(self):
        """drain reads and drops the body; it returns (length, sha256)."""
        digest = hashlib.sha256()
        length = 0
        async for data in self.body():
            digest.update(data)
            length += len(data)
        return length, digest.hexdigest()


class Conn:
    next_id = 1
    reused_requests = 0

    def __init__(self, reader, writer, idle_close, race_every=0):
        self.reader = reader
        self.writer = writer
        self.idle_close = idle_close
        self.race_every = race_every
        self.id = Conn.next_id
        Conn.next_id += 1
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}"
        self.num_requests = 0
        self.state = "idle"
        self.close_after = False

    # -- writing

    def head(self, req, status, headers=(), length=None, chunked=False):
        """head writes the status line and |headers|, plus Content-Length
        or Transfer-Encoding and Connection."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        lines += [f"{n}: {v}" for n, v in headers]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif length is not None:
            lines.append(f"Content-Length: {length}")
        if status >= 200 and (self.close_after or req.wants_close()):
            self.close_after = True
            lines.append("Connection: close")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send(self, data, chunked=False):
        if chunked:
            if not data:
                return
            self.writer.write(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
        else:
            self.writer.write(data)
        await self.writer.drain()

    async def end_chunked(self, trailers=()):
        self.writer.write(b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in trailers)
                          + b"\r\n")
        await self.writer.drain()

    async def respond(self, req, status, body=b"", headers=(), content_type="text/plain"):
        """respond sends a whole response with a Content-Length body (none
        for HEAD, 204 and 304)."""
        headers = [("Content-Type", content_type), *headers]
        if status in (204, 304):
            self.head(req, status, headers)
        else:
            self.head(req, status, headers, length=len(body))
            if req.method != "HEAD":
                self.writer.write(body)
        await self.writer.drain()

    async def respond_json(self, req, obj, status=200):
        await self.respond(req, status, json.dumps(obj).encode() + b"\n",
                           content_type="application/json")

    # -- the connection

    async def run(self):
        log(event="open", conn=self.id, peer=self.peer)
        how = "eof"
        try:
            while not self.close_after:
                self.state = "idle"
                try:
                    if self.idle_close and self.num_requests:
                        first = await asyncio.wait_for(self.reader.read(1), self.idle_close)
                    else:
                        first = await self.reader.read(1)
                except asyncio.TimeoutError:
                    how = "server"
                    break
                if not first:
                    break
                self.state = "head"
                rest = await self.reader.readuntil(b"\r\n\r\n")
                req = Request(self, first + rest)
                self.num_requests += 1
                if self.race_every and self.num_requests > 1:
                    # The keep-alive race, made to happen: this server
                    # "closed the idle connection" just as the request
                    # arrived, so it goes unanswered.
                    Conn.reused_requests += 1
                    if Conn.reused_requests % self.race_every == 0:
                        self.state = "race"
                        how = "server"
                        break
                log(event="request", conn=self.id, n=self.num_requests, method=req.method,
                    path=req.target)
                await self.serve(req)
                if req.wants_close():
                    self.close_after = True
            else:
                how = "server"
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            how = "eof" if self.state == "idle" else "reset"
        except (ConnectionError, OSError):
            how = "reset"
        except BadRequest:
            how = "server"
        except asyncio.CancelledError:
            how = "stopped"
            raise
        finally:
            log(event="close", conn=self.id, how=how, state=self.state,
                requests=self.num_requests)
            self.writer.close()

    async def serve(self, req):
        path = req.path
        handler = ROUTES.get(path.split("/")[1] if path.startswith("/") else "")
        self.state = "body"
        if handler is None:
            await req.drain()
            self.state = "response"
            await self.respond(req, 200, HELLO_BODY)
            return
        await handler(self, req)
        self.state = "response"
        if not req.body_done:
            # A handler that answered without reading the body: read it,
            # so the next request starts where it should.
            await req.drain()


# ---- the routes ----------------------------------------------------------------


async def route_echo(conn, req):
    chunked = req.length is None and not req.body_done
    conn.state = "response"
    conn.head(req, 200, [("Content-Type", "application/octet-stream")],
              length=None if chunked else (req.length or 0), chunked=chunked)
    await conn.writer.drain()
    async for data in req.body():
        if req.method != "HEAD":
            await conn.send(data, chunked)
    if chunked:
        await conn.end_chunked()


async def route_headers(conn, req):
    length, _ = await req.drain()
    await conn.respond_json(req, {
        "method": req.method, "target": req.target, "version": req.version,
        "headers": req.headers, "trailers": req.trailers, "peer": conn.peer,
        "conn": conn.id, "n": conn.num_requests, "body_len": length,
    })


async def route_early(conn, req):
    """/early: 425 Too Early to a request marked Early-Data: 1 (RFC 8470),
    otherwise what /headers answers."""
    if any(n.lower() == "early-data" and v.strip() == "1" for n, v in req.headers):
        await req.drain()
        await conn.respond(req, 425, b"too early\n")
        return
    await route_headers(conn, req)


async def route_bytes(conn, req):
    await req.drain()
    n = int(req.path.split("/")[2])
    chunked = "chunked=1" in req.query.split("&")
    conn.state = "response"
    conn.head(req, 200, [("Content-Type", "application/octet-stream")],
              length=None if chunked else n, chunked=chunked)
    await conn.writer.drain()
    if req.method == "HEAD":
        return
    for chunk in pattern(n):
        await conn.send(chunk, chunked)
    if chunked:
        await conn.end_chunked()


async def route_sha(conn, req):
    length, sha = await req.drain()
    await conn.respond_json(req, {"sha256": sha, "length": length})


async def route_status(conn, req):
    await req.drain()
    status = int(req.path.split("/")[2])
    if 100 <= status < 200:
        extra = "Link: </style.css>; rel=preload\r\n" if status == 103 else ""
        conn.writer.write(f"HTTP/1.1 {status} {REASONS.get(status, 'Info')}\r\n{extra}\r\n"
                          .encode())
        status = 200
    await conn.respond(req, status, b"" if status in (204, 304) else f"status {status}\n".encode(),
                       headers=[("ETag", '"v1"')] if status == 304 else ())


async def route_trailers(conn, req):
    await req.drain()
    conn.state = "response"
    conn.head(req, 200, [("Content-Type", "text/plain"),
                         ("Trailer", ", ".join(n for n, _ in TRAILERS))], chunked=True)
    if req.method == "HEAD":
        await conn.writer.drain()
        return
    await conn.send(TRAILERS_BODY, chunked=True)
    await conn.end_chunked(TRAILERS)


async def route_slow(conn, req):
    await req.drain()
    await asyncio.sleep(float(req.path.split("/")[2]))
    await conn.respond(req, 200, b"slow\n")


async def route_silent(conn, req):
    await req.drain()
    while await conn.reader.read(_CHUNK):
        pass
    raise ConnectionResetError("the client left a silent request")


async def route_continue(conn, req):
    sent = "100-continue" in req.tokens("expect")
    if sent:
        conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await conn.writer.drain()
    length, sha = await req.drain()
    await conn.respond_json(req, {"continue_sent": sent, "length": length, "sha256": sha})


async def route_close(conn, req):
    await req.drain()
    conn.close_after = True
    await conn.respond(req, 200, b"closing\n")


async def route_close_quiet(conn, req):
    await req.drain()
    sock = conn.writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    await conn.respond(req, 200, b"closing quietly\n")  # held back by the cork
    sock.shutdown(socket.SHUT_WR)  # the FIN rides on the response's segment
    conn.close_after = True


async def route_drop(conn, req):
    await req.drain()
    conn.close_after = True


async def route_drop_mid(conn, req):
    await req.drain()
    conn.head(req, 200, [("Content-Type", "application/octet-stream")], length=1 << 20)
    conn.writer.write(b"x" * 1000)
    await conn.writer.drain()
    conn.close_after = True


async def route_invalid(conn, req):
    await req.drain()
    conn.writer.write(b"this is not HTTP at all\r\n\r\n")
    await conn.writer.drain()
    conn.close_after = True


async def route_hop(conn, req):
    await req.drain()
    await conn.respond(req, 200, b"hop\n", headers=[
        ("Connection", "x-hop-resp"), ("X-Hop-Resp", "1"), ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"), ("Upgrade", "foo/1"), ("X-End-To-End", "kept"),
    ])


async def route_hsts(conn, req):
    await req.drain()
    await conn.respond(req, 200, b"hsts\n", headers=[
        ("Strict-Transport-Security", "max-age=60"),
    ])


async def route_ws(conn, req):
    await req.drain()
    key = req.value("sec-websocket-key")
    if "websocket" not in req.tokens("upgrade") or "upgrade" not in req.tokens("connection") \
            or not key:
        await conn.respond(req, 400, b"not a websocket upgrade\n")
        return
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    conn.writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
    await conn.writer.drain()
    conn.state = "websocket"
    reader = conn.reader
    while True:
        b0, b1 = await reader.readexactly(2)
        opcode, length = b0 & 0x0F, b1 & 0x7F
        if length == 126:
            length = struct.unpack(">H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", await reader.readexactly(8))[0]
        mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        payload = bytearray(await reader.readexactly(length))
        for i in range(length):
            payload[i] ^= mask[i % 4]
        reply_op = 0xA if opcode == 0x9 else opcode
        conn.writer.write(ws_frame(reply_op, bytes(payload)))
        await conn.writer.drain()
        if opcode == 0x8:
            conn.close_after = True
            return


def ws_frame(opcode, payload, mask=None):
    """ws_frame encodes one final WebSocket frame; with |mask| (4 bytes) it
    is masked, as a client's must be."""
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


ROUTES = {
    "early": route_early,
    "echo": route_echo, "headers": route_headers, "bytes": route_bytes, "sha": route_sha,
    "status": route_status, "trailers": route_trailers, "slow": route_slow,
    "silent": route_silent, "continue": route_continue, "close": route_close,
    "close-quiet": route_close_quiet,
    "drop": route_drop, "drop-mid": route_drop_mid, "invalid": route_invalid,
    "hop": route_hop, "ws": route_ws, "hsts": route_hsts,
}



async def route_fields(conn, req):
    await req.drain()
    n = int(req.path.split("/")[2])
    await conn.respond(req, 200, b"fields\n",
                       headers=[(f"X-Field-{i}", "v" * i) for i in range(1, n + 1)])


ROUTES["fields"] = route_fields


async def main(argv):
    parser = argparse.ArgumentParser(description="HTTP/1.1 test backend")
    parser.add_argument("--idle-close", type=float, default=0.0)
    parser.add_argument("--race-every", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET

    async def handle(reader, writer):
        await Conn(reader, writer, args.idle_close, args.race_every).run()

    server = await asyncio.start_server(
        handle, args.host, 0, family=family, backlog=4096, limit=_MAX_HEAD
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
