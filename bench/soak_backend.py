#!/usr/bin/python3
"""soak_backend.py PORT NAME: the HTTP/1.1 backend of bench/soak, one of the
two servers of the soak's backend group, run as its own process.

It listens on 127.0.0.1:PORT (SO_REUSEADDR, so a restart takes the same port
at once) and prints "READY" on stdout once it accepts connections.

Paths (the query string is ignored):
  /healthz          200 "ok\\n" (the group's health check).
  /blob/SIZE/SEED   SIZE bytes of soak_body(SIZE, SEED), Content-Length: a
                    body the client can check byte for byte.
  /echo             the request body back (Content-Length requests only).
Every response carries X-Server: NAME. Keep-alive unless the request says
Connection: close.

SIGTERM is a graceful stop: the listening socket closes at once (new
connects are refused, so the proxy goes to the other server), a request
being read or answered is finished and answered with Connection: close,
idle keep-alive connections are closed, and the process exits once no
connection is left (at most 10 s)."""

import asyncio
import random
import signal
import sys

_bodies = {}


def soak_body(size, seed):
    """soak_body returns the |size| bytes the backend sends for
    /blob/SIZE/SEED: pseudo-random bytes from a generator seeded with
    (size, seed), so the client computes the same bytes to compare."""
    key = (size, seed)
    body = _bodies.get(key)
    if body is None:
        body = random.Random(size * 1000003 + seed).randbytes(size)
        if len(_bodies) < 512:
            _bodies[key] = body
    return body


class Backend:
    def __init__(self, name):
        self.name = name.encode()
        self.stopping = False
        self.conns = {}  # writer -> "idle" or "busy"

    async def serve(self, reader, writer):
        self.conns[writer] = "idle"
        try:
            while not self.stopping:
                head = await reader.readuntil(b"\r\n\r\n")
                self.conns[writer] = "busy"
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                fields = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.strip()
                body = b""
                if "content-length" in fields:
                    body = await reader.readexactly(int(fields["content-length"]))
                path = target.split("?", 1)[0]
                status, out = 200, b""
                if path == "/healthz":
                    out = b"ok\n"
                elif path.startswith("/blob/"):
                    parts = path.split("/")
                    out = soak_body(int(parts[2]), int(parts[3]))
                elif path == "/echo":
                    out = body
                else:
                    status, out = 404, b"not found\n"
                close = self.stopping or fields.get("connection", "").lower() == "close"
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nX-Server: %s\r\n%s\r\n"
                             % (status, b"OK" if status == 200 else b"Not Found", len(out),
                                self.name, b"Connection: close\r\n" if close else b""))
                if method != "HEAD":
                    writer.write(out)
                await writer.drain()
                self.conns[writer] = "idle"
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError, IndexError):
            pass
        finally:
            self.conns.pop(writer, None)
            writer.close()

    def stop(self, server):
        """stop begins the graceful stop: no new connections, idle ones
        closed now, busy ones after their response."""
        self.stopping = True
        server.close()
        for writer, state in list(self.conns.items()):
            if state == "idle":
                writer.close()


async def main(port, name):
    backend = Backend(name)
    server = await asyncio.start_server(backend.serve, "127.0.0.1", port, reuse_address=True,
                                        backlog=1024, limit=1 << 16)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("READY", flush=True)
    await stop.wait()
    backend.stop(server)
    for _ in range(100):
        if not backend.conns:
            break
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
