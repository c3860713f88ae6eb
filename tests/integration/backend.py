"""A plain-TCP backend for the integration tests, run as its own process.

    /usr/bin/python3 backend.py MODE [ARGS...]

It listens on 127.0.0.1 on an ephemeral port and prints "PORT <n>" on stdout
once it accepts connections; the harness reads that line (with a deadline) to
learn where to point tlsterm. It runs until SIGTERM or SIGINT.

Modes:
  echo               echo every byte back; on EOF from the client finish
                     echoing, then shutdown(SHUT_WR) and close.
  http               minimal HTTP/1.1: every request (Content-Length bodies are
                     read and dropped) gets "200 OK" with HTTP_BODY; keep-alive
                     unless the request asks for "Connection: close" or is
                     HTTP/1.0 without keep-alive.
  sink-sha           read until EOF, then write the sha256 hex digest of
                     everything read and "\\n", and close. The reply only comes
                     after a half-close, so it proves half-close works.
  source N           write the first N bytes of pattern() and close.
  slow-source N RATE the same at about RATE bytes per second.
  answer-early N M   read N bytes, write the first M bytes of pattern() and
                     close at once, with the client's further bytes unread
                     (the kernel then resets the connection): a server that
                     refuses an upload with an early answer.
  hold               read and drop everything; after EOF keep the connection
                     open and silent.

The module also serves the tests: pattern() and pattern_sha256() give the
bytes "source" sends, so a test computes what it must receive.

asyncio on one thread: the concurrency test holds 500+ connections at once.
"""

import asyncio
import hashlib
import signal
import socket
import sys

HTTP_BODY = b"hello from backend\n"

_CHUNK = 64 * 1024
_BASE = b"".join(
    hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(_CHUNK // 32)
)


def pattern_chunk(index):
    """pattern_chunk returns the 64 KiB chunk number |index| of the pattern:
    a fixed pseudo-random block whose first 8 bytes are replaced by the
    chunk's index, so no two chunks are equal and a lost, repeated or
    reordered chunk changes the digest."""
    return index.to_bytes(8, "big") + _BASE[8:]


def pattern(n):
    """pattern yields the first |n| bytes of the source pattern, in chunks of
    at most 64 KiB."""
    index = 0
    while n > 0:
        chunk = pattern_chunk(index)[:n]
        yield chunk
        n -= len(chunk)
        index += 1


def pattern_sha256(n):
    """pattern_sha256 returns the sha256 hex digest of the first |n| bytes of
    the source pattern."""
    digest = hashlib.sha256()
    for chunk in pattern(n):
        digest.update(chunk)
    return digest.hexdigest()


async def _close(writer):
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def serve_echo(reader, writer):
    while True:
        data = await reader.read(_CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()


async def serve_http(reader, writer):
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        lines = head.decode("latin-1").split("\r\n")
        version = lines[0].rsplit(" ", 1)[-1]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip().lower()
        length = int(headers.get("content-length", "0"))
        if length:
            await reader.readexactly(length)
        connection = headers.get("connection", "")
        keep_alive = (
            connection != "close"
            if version == "HTTP/1.1"
            else connection == "keep-alive"
        )
        response = (
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: %s\r\n\r\n"
            % (len(HTTP_BODY), b"keep-alive" if keep_alive else b"close")
        ) + HTTP_BODY
        writer.write(response)
        await writer.drain()
        if not keep_alive:
            return


async def serve_sink_sha(reader, writer):
    digest = hashlib.sha256()
    while True:
        data = await reader.read(_CHUNK)
        if not data:
            break
        digest.update(data)
    writer.write(digest.hexdigest().encode() + b"\n")
    await writer.drain()


async def serve_source(reader, writer, n, rate=None):
    """serve_source writes pattern(n), at about |rate| bytes per second when
    |rate| is given: a slice every 50 ms, timed against the start so the
    average holds however late the loop wakes."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    for chunk in pattern(n):
        while chunk:
            piece = chunk if rate is None else chunk[: max(1, rate // 20)]
            if rate is not None:
                due = start + sent / rate
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
            chunk = chunk[len(piece):]


async def serve_answer_early(reader, writer, n, m):
    await reader.readexactly(n)
    for chunk in pattern(m):
        writer.write(chunk)
    await writer.drain()


async def serve_hold(reader, writer):
    while await reader.read(_CHUNK):
        pass
    await asyncio.Event().wait()


def make_handler(mode, args):
    if mode == "echo":
        serve = serve_echo
    elif mode == "http":
        serve = serve_http
    elif mode == "sink-sha":
        serve = serve_sink_sha
    elif mode == "source":
        n = int(args[0])

        async def serve(reader, writer):
            await serve_source(reader, writer, n)

    elif mode == "slow-source":
        n, rate = int(args[0]), int(args[1])

        async def serve(reader, writer):
            await serve_source(reader, writer, n, rate)

    elif mode == "answer-early":
        n, m = int(args[0]), int(args[1])

        async def serve(reader, writer):
            await serve_answer_early(reader, writer, n, m)

    elif mode == "hold":
        serve = serve_hold
    else:
        raise SystemExit(f"backend.py: unknown mode {mode!r}")

    async def handle(reader, writer):
        # A client that resets (tlsterm closing on shutdown, a test that
        # aborts) is part of the game, not a backend failure.
        try:
            await serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            await _close(writer)

    return handle


async def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    handler = make_handler(argv[0], argv[1:])
    server = await asyncio.start_server(
        handler, "127.0.0.1", 0, family=socket.AF_INET, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
