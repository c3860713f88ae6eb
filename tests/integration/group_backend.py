"""A small HTTP/1.1 backend for the backend-group tests, run as its own
process.

    /usr/bin/python3 group_backend.py NAME [--host H] [--port P] [--health-file F] [--idle S]

It listens on H (default 127.0.0.1) port P (default 0: ephemeral; a fixed
port lets a test start it again where it was) and prints "PORT <n>" once it
accepts connections. Every request is answered 200 with the body "NAME\\n",
except GET /healthz when --health-file is given: its status is the number
in that file (the test writes 500 to fail the check, 200 to pass it).
With --echo-head the body also holds the first line of the request as received
(a PROXY protocol header, when one came first). Keep-alive is honoured; a
connection idle for --idle seconds (default 2) is closed.

SIGTERM stops it gracefully: the listening socket is closed first (new
connections are refused from then on), then the requests in progress are
finished and the process exits.
"""

import argparse
import select
import signal
import socket
import threading

parser = argparse.ArgumentParser()
parser.add_argument("name")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--health-file")
parser.add_argument("--idle", type=float, default=2.0)
parser.add_argument("--echo-head", action="store_true")
args = parser.parse_args()
stopping = threading.Event()


def status_of(path):
    if path == "/healthz" and args.health_file:
        with open(args.health_file) as f:
            return int(f.read().strip() or "200")
    return 200


def serve(conn):
    conn.settimeout(args.idle)
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            close = any(line.lower() == "connection: close" for line in lines[1:])
            close = close or lines[0].endswith("HTTP/1.0")
            body = f"{args.name}\n".encode()
            if args.echo_head:  # the first line as received (a PROXY header, say)
                body += lines[0].encode("latin-1") + b"\n"
            status = status_of(path)
            conn.sendall(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n".encode()
                + (body if method != "HEAD" else b""))
            if close or stopping.is_set():
                return
    except OSError:
        return
    finally:
        conn.close()


def main():
    lsock = socket.create_server((args.host, args.port), backlog=128)
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    print(f"PORT {lsock.getsockname()[1]}", flush=True)
    threads = []
    while not stopping.is_set():
        ready, _, _ = select.select([lsock], [], [], 0.02)
        if ready and not stopping.is_set():
            conn, _ = lsock.accept()
            t = threading.Thread(target=serve, args=(conn,), daemon=True)
            t.start()
            threads.append(t)
    lsock.close()
    for t in threads:
        t.join(args.idle + 1)


main()
