"""A misbehaving HTTP/1.1 backend for test_backend_faults.py, run as its own
process.

    /usr/bin/python3 bad_backend.py

It listens on 127.0.0.1 on an ephemeral port (with a small receive buffer,
so that a request body it does not read fills the window at once) and prints
"PORT <n>" on stdout once it accepts connections. After that line, stdout
carries one JSON object per line, as http_backend.py does:

  {"event": "open", "conn": 3}
  {"event": "request", "conn": 3, "n": 1, "method": "GET", "path": "/ok"}
  {"event": "close", "conn": 3, "how": "..."}

Behaviour by path, one misbehaviour each:
  /ok            200 "ok\\n" (reads and drops any Content-Length body).
  /reset-mid     head with Content-Length 1 MiB, 1000 body bytes, then a
                 TCP reset (SO_LINGER 0).
  /ka-arm        200 "armed\\n", keep-alive: the next request that arrives
                 on this connection is read (body too) and the connection
                 closed (FIN) without an answer - a server whose keep-alive timeout fired
                 exactly as the request came (the keep-alive boundary).
  /slow-head     the response head, one byte per second.
  /no-read       never reads the request body, never answers (the request
                 body meets a zero window).
  /early-413     answers 413 with Connection: close at once, without reading
                 the body, then waits 10 s without reading.
  /bad-status    "HTTP/1.1 2OO OK": not a status line.
  /cl-te         Content-Length and Transfer-Encoding: chunked together.
  /cl-negative   Content-Length: -1.
  /cl-overflow   Content-Length: 99999999999999999999999 (past 2^64).
  /huge-headers  1 MiB of header fields.
  /huge-cl       Content-Length 100 GiB, 64 KiB of body, then a close (FIN).
"""

import asyncio
import json
import socket
import struct
import sys

_RCVBUF = 16384


def log(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def head(status, fields=(), length=None):
    lines = [f"HTTP/1.1 {status}"] + [f"{n}: {v}" for n, v in fields]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reset(writer):
    """reset closes the connection with a RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Conn:
    next_id = 1

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.id = Conn.next_id
        Conn.next_id += 1
        self.n = 0
        self.armed = False

    async def read_head(self):
        """read_head returns (method, path, content_length) or None at EOF."""
        data = await self.reader.readuntil(b"\r\n\r\n")
        lines = data.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return method, target.partition("?")[0], length

    async def run(self):
        log(event="open", conn=self.id)
        how = "eof"
        try:
            while True:
                try:
                    method, path, length = await self.read_head()
                except asyncio.IncompleteReadError:
                    break
                self.n += 1
                log(event="request", conn=self.id, n=self.n, method=method, path=path)
                if self.armed:
                    # Read whole, so that the close is a FIN, not a reset.
                    await self.reader.readexactly(length)
                    how = "closed_at_boundary"
                    break
                how = await self.serve(method, path, length)
                if how:
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            how = "peer_gone"
        finally:
            log(event="close", conn=self.id, how=how)
            self.writer.transport.abort() if how == "reset" else self.writer.close()

    async def send(self, data):
        if self.writer.transport.is_closing():
            raise ConnectionResetError("the proxy closed")
        self.writer.write(data)
        await self.writer.drain()

    async def serve(self, method, path, length):
        """serve answers one request; it returns how the connection ends,
        or None to keep it."""
        w = self.writer
        if path in ("/ok", "/ka-arm"):
            await self.reader.readexactly(length)
            body = b"ok\n" if path == "/ok" else b"armed\n"
            await self.send(head("200 OK", [("Content-Type", "text/plain")], len(body)) + body)
            self.armed = path == "/ka-arm"
            return None
        if path == "/reset-mid":
            await self.reader.readexactly(length)
            await self.send(head("200 OK", (), 1 << 20) + b"r" * 1000)
            await asyncio.sleep(0.2)  # the bytes go out before the reset
            reset(w)
            return "reset"
        if path == "/slow-head":
            for byte in head("200 OK", [("X-Slow", "y" * 60)], 3) + b"ok\n":
                await self.send(bytes([byte]))
                await asyncio.sleep(1)
            return "done"
        if path == "/no-read":
            await asyncio.sleep(60)  # the proxy gives up first
            return "timeout"
        if path == "/early-413":
            await self.send(head("413 Content Too Large", [("Connection", "close")], 9)
                            + b"too big\r\n")
            # Not a byte more of the body is read; the proxy closes first.
            await asyncio.sleep(10)
            return "early_answer"
        raw = {
            "/bad-status": head("2OO OK", (), 3) + b"ok\n",
            "/cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\n3\r\nok\n\r\n0\r\n\r\n",
            "/cl-negative": head("200 OK", [("Content-Length", "-1")]) + b"ok\n",
            "/cl-overflow": head("200 OK", [("Content-Length", "9" * 23)]) + b"ok\n",
        }.get(path)
        if raw is not None:
            await self.send(raw)
            await asyncio.sleep(1)
            return "done"
        if path == "/huge-headers":
            field = b"X-Big-%07d: " + b"h" * 1000 + b"\r\n"
            await self.send(b"HTTP/1.1 200 OK\r\n")
            for i in range(1024):  # 1 MiB of fields
                await self.send(field % i)
            await self.send(b"Content-Length: 3\r\n\r\nok\n")
            return "done"
        if path == "/huge-cl":
            await self.send(head("200 OK", (), 100 << 30) + b"g" * 65536)
            await asyncio.sleep(0.2)
            return "fin"
        await self.send(head("404 Not Found", (), 0))
        return None


async def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = await asyncio.start_server(lambda r, w: Conn(r, w).run(), sock=sock)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
