#!/usr/bin/python3
"""soak_load.py CONFIG.json: the load of bench/soak, run as its own process
so that its CPU and its threads stay apart from the sampler's.

CONFIG names the two listeners (tcp_port: tcp mode; http_port: http mode),
the CA file, how long to run (seconds), the output file and the rates. The
clients, each a thread that runs until the deadline:

  tcp   TLS to the tcp listener, HTTP/1.1 spoken through it to the backend:
        1-6 requests per connection (the last with Connection: close), then
        a new connection: churn.
  h1    the same against the http listener, ALPN http/1.1.
  h2    the http listener over ALPN h2: 1-3 rounds of 4 concurrent streams
        per connection.
  bad   one bad client every few seconds, in turn: garbage bytes and a TLS
        1.1 ClientHello to either listener, plain HTTP to the tcp one (it
        must get the 400 that names https://).
  slow  slowloris: an HTTP/1.1 request head trickled a byte a second into
        the http listener, until the 408 of timeouts.request_header.

Every body is checked byte for byte: GET /blob/SIZE/SEED against the
backend's soak_body(SIZE, SEED), POST /echo against what was sent. Each
connection's certificate serial is kept (with the time the connection was
made) so bench/soak can check that a certificate swap reached the clients.

Failures are recorded with their time, never retried silently; bench/soak
decides which are expected (the ones inside a backend restart). When the
deadline passes, the totals, the failures and the serials go to the output
file as JSON."""

import json
import os
import random
import socket
import ssl
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402

from soak_backend import soak_body  # noqa: E402

# Body sizes: mostly small, some spanning many TLS records and h2 frames.
SIZES = [0, 1, 100, 100, 1000, 4096, 16384, 65543, 300000]
SEEDS = 32
MAX_FAILURES = 2000


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []
        self.serials = []  # [time the connection began, client, serial]

    def add(self, client, key, n=1):
        with self.lock:
            c = self.counts.setdefault(client, {})
            c[key] = c.get(key, 0) + n

    def fail(self, client, kind, detail):
        with self.lock:
            c = self.counts.setdefault(client, {})
            c["failures"] = c.get("failures", 0) + 1
            if len(self.failures) < MAX_FAILURES:
                self.failures.append({"t": time.time(), "client": client, "kind": kind,
                                      "detail": str(detail)[:300]})

    def serial(self, t, client, serial):
        with self.lock:
            self.serials.append([t, client, serial])


class Failure(Exception):
    """A request that did not end as it must; kind says how."""

    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind = kind


def pick_request(rng, allow_post=True, max_post=100000):
    """pick_request returns (method, path, body, expected response body)."""
    if allow_post and rng.random() < 0.2:
        body = rng.randbytes(rng.choice([1, 100, 5000, max_post]))
        return "POST", "/echo", body, body
    size, seed = rng.choice(SIZES), rng.randrange(SEEDS)
    return "GET", f"/blob/{size}/{seed}", b"", soak_body(size, seed)


def tls_connect(cfg, port, alpn):
    ctx = ssl.create_default_context(cafile=cfg["ca"])
    ctx.set_alpn_protocols([alpn])
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
    except Exception:
        raw.close()
        raise
    return tls


def counted_connect(cfg, stats, name, port, alpn):
    """counted_connect opens a client's next connection and counts it (and
    the certificate serial it was served); None after a failure, counted
    too, and a second's pause."""
    started = time.time()
    try:
        sock = tls_connect(cfg, port, alpn)
    except (OSError, ssl.SSLError) as e:
        stats.fail(name, "connect", repr(e))
        time.sleep(1)
        return None
    stats.add(name, "connections")
    stats.serial(started, name, sock.getpeercert()["serialNumber"])
    return sock


# ---- HTTP/1.1 (tcp and h1 clients) --------------------------------------------------

class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def until(self, sep):
        while sep not in self.buf:
            self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def h1_exchange(reader, sock, method, path, body, close):
    """h1_exchange sends one request and reads its response: (status,
    fields, body). EOF before any response byte is Failure
    closed_before_response; any later one is Failure truncated."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}"
            f"{'Content-Length: %d' % len(body) + chr(13) + chr(10) if method == 'POST' else ''}\r\n")
    try:
        sock.sendall(head.encode() + body)
    except (ConnectionError, ssl.SSLError) as e:
        raise Failure("closed_before_response", f"send: {e!r}")
    got_any = False
    try:
        if not reader.buf:
            reader.fill()
        got_any = True
        lines = reader.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if "content-length" in fields:
            out = reader.exactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                n = int(reader.until(b"\r\n").split(b";")[0].strip(), 16)
                if n == 0:
                    reader.until(b"\r\n")
                    break
                parts.append(reader.exactly(n))
                reader.exactly(2)
            out = b"".join(parts)
        else:
            raise Failure("framing", f"no length in {lines[0]}")
        return status, fields, out
    except (EOFError, ConnectionError, ssl.SSLError, socket.timeout) as e:
        if not got_any:
            raise Failure("closed_before_response", repr(e))
        raise Failure("truncated", repr(e))


def h1_client(cfg, stats, name, port, alpn, deadline, rng):
    interval = 1.0 / cfg["rate_per_client"]
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        sock = counted_connect(cfg, stats, name, port, alpn)
        if sock is None:
            continue
        if alpn == "http/1.1" and name == "h1" and sock.selected_alpn_protocol() != "http/1.1":
            stats.fail(name, "alpn", sock.selected_alpn_protocol())
        reader = Reader(sock)
        n = rng.randint(1, 6)
        try:
            for i in range(n):
                if time.monotonic() >= deadline:
                    break
                method, path, body, expected = pick_request(rng)
                try:
                    status, fields, out = h1_exchange(reader, sock, method, path, body, i == n - 1)
                except Failure as f:
                    stats.fail(name, f.kind, f"{method} {path}: {f}")
                    break
                stats.add(name, "requests")
                stats.add(name, "bytes", len(out))
                if status != 200:
                    stats.fail(name, f"status_{status}", f"{method} {path}")
                elif out != expected:
                    stats.fail(name, "mismatch", f"{method} {path}: {len(out)} bytes, "
                                                 f"{len(expected)} expected")
                if i == n - 1:
                    break
                if fields.get("connection", "").lower() == "close":
                    stats.add(name, "closed_by_server")  # unasked: a reload's new settings
                    break
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            sock.close()
        next_at = max(next_at, time.monotonic() - 1.0)


# ---- HTTP/2 --------------------------------------------------------------------------

def h2_round(sock, conn, reqs, deadline_s=30):
    """h2_round sends |reqs| as concurrent streams and reads every answer:
    {stream: (req, status, body, error)}; streams a GOAWAY left unprocessed
    come back with error "refused". Returns (results, goaway_seen)."""
    streams = {}
    for req in reqs:
        method, path, body, _ = req
        sid = conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "https"), (":authority", "localhost"),
                   (":path", path)]
        if body:
            headers.append(("content-length", str(len(body))))
        conn.send_headers(sid, headers, end_stream=not body)
        if body:
            conn.send_data(sid, body, end_stream=True)
        streams[sid] = {"req": req, "status": None, "body": [], "done": False, "error": None}
    sock.sendall(conn.data_to_send())
    goaway = False
    end = time.monotonic() + deadline_s
    while not all(s["done"] for s in streams.values()):
        if time.monotonic() > end:
            raise Failure("timeout", "h2 round")
        try:
            data = sock.recv(65536)
        except (ConnectionError, ssl.SSLError, socket.timeout) as e:
            data, err = b"", repr(e)
        else:
            err = "EOF"
        if not data:
            for s in streams.values():
                if not s["done"]:
                    s["done"], s["error"] = True, ("refused" if goaway else f"closed: {err}")
            break
        for ev in conn.receive_data(data):
            s = streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and s:
                s["status"] = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                if s:
                    s["body"].append(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and s:
                s["done"] = True
            elif isinstance(ev, h2.events.StreamReset) and s:
                s["done"], s["error"] = True, f"reset {ev.error_code!r}"
            elif isinstance(ev, h2.events.ConnectionTerminated):
                goaway = True
                for sid, st in streams.items():
                    if sid > ev.last_stream_id and not st["done"]:
                        st["done"], st["error"] = True, "refused"
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except (ConnectionError, ssl.SSLError):
                pass
    return streams, goaway


def h2_client(cfg, stats, name, port, deadline, rng):
    per_round = 4
    interval = per_round / cfg["rate_per_client"]
    while time.monotonic() < deadline:
        sock = counted_connect(cfg, stats, name, port, "h2")
        if sock is None:
            continue
        try:
            if sock.selected_alpn_protocol() != "h2":
                stats.fail(name, "alpn", sock.selected_alpn_protocol())
                continue
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            conn.increment_flow_control_window(1 << 24)
            sock.sendall(conn.data_to_send())
            for _ in range(rng.randint(1, 3)):
                if time.monotonic() >= deadline:
                    break
                t0 = time.monotonic()
                reqs = [pick_request(rng, max_post=16000) for _ in range(per_round)]
                try:
                    streams, goaway = h2_round(sock, conn, reqs)
                except Failure as f:
                    stats.fail(name, f.kind, str(f))
                    break
                for s in streams.values():
                    method, path, _, expected = s["req"]
                    if s["error"] == "refused":
                        stats.add(name, "refused_by_goaway")  # never processed: fine
                        continue
                    if s["error"]:
                        stats.fail(name, "stream_error", f"{method} {path}: {s['error']}")
                        continue
                    out = b"".join(s["body"])
                    stats.add(name, "requests")
                    stats.add(name, "bytes", len(out))
                    if s["status"] != 200:
                        stats.fail(name, f"status_{s['status']}", f"{method} {path}")
                    elif out != expected:
                        stats.fail(name, "mismatch", f"{method} {path}: {len(out)} bytes, "
                                                     f"{len(expected)} expected")
                if goaway:
                    stats.add(name, "goaways")
                    break
                time.sleep(max(0.0, interval - (time.monotonic() - t0)))
            else:
                conn.close_connection()
                sock.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError) as e:
            stats.fail(name, "h2_connection", repr(e))
        finally:
            sock.close()


# ---- bad clients ---------------------------------------------------------------------

def read_until_closed(sock, limit_s):
    sock.settimeout(limit_s)
    got = b""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return got, "closed"
            got += data
    except socket.timeout:
        return got, "timeout"
    except ConnectionError:
        return got, "reset"


def bad_garbage(cfg, port, rng):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        # Not TLS (0x16 first) and not an HTTP method: a record type no TLS has.
        s.sendall(b"\x00\x01\x02soak garbage " + rng.randbytes(200))
        _, how = read_until_closed(s, 10)
        if how == "timeout":
            raise Failure("bad_client", "garbage: still open after 10 s")


def bad_plain_http(cfg, port, rng):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /soak HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got, how = read_until_closed(s, 10)
        if not got.startswith(b"HTTP/1.1 400") or b"https://" not in got:
            raise Failure("bad_client", f"plain http: got {got[:80]!r} ({how})")


def bad_tls11(cfg, port, rng):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost"):
                raise Failure("bad_client", "TLS 1.1 handshake succeeded")
        except ssl.SSLError as e:
            if "VERSION" not in str(e).upper():
                raise Failure("bad_client", f"TLS 1.1: {e!r}")


def bad_client(cfg, stats, deadline, rng):
    kinds = [("garbage", bad_garbage, cfg["tcp_port"]), ("tls11", bad_tls11, cfg["http_port"]),
             ("plain_http", bad_plain_http, cfg["tcp_port"]),
             ("garbage", bad_garbage, cfg["http_port"]), ("tls11", bad_tls11, cfg["tcp_port"]),
             ("plain_http", bad_plain_http, cfg["http_port"])]
    i = 0
    while time.monotonic() < deadline:
        kind, fn, port = kinds[i % len(kinds)]
        i += 1
        try:
            fn(cfg, port, rng)
            stats.add("bad", kind)
        except Failure as f:
            stats.fail("bad", f.kind, str(f))
        except (OSError, ssl.SSLError) as e:
            stats.fail("bad", "bad_client", f"{kind}: {e!r}")
        time.sleep(cfg["bad_interval_s"])


def slowloris(cfg, stats, deadline, rng):
    """One slow client at a time: a request head, one byte a second, never
    finished; the listener must answer 408 and close after its
    request_header timeout."""
    limit = cfg["header_timeout_s"] + 5
    while time.monotonic() + limit < deadline:
        try:
            sock = tls_connect(cfg, cfg["http_port"], "http/1.1")
        except (OSError, ssl.SSLError) as e:
            stats.fail("slow", "connect", repr(e))
            time.sleep(1)
            continue
        t0 = time.monotonic()
        head = b"GET /blob/100/1 HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
        got = b""
        try:
            sock.settimeout(1.0)
            for b in head:
                if time.monotonic() - t0 > limit:
                    break
                try:
                    sock.sendall(bytes([b]))
                except (ConnectionError, ssl.SSLError):
                    break
                try:
                    data = sock.recv(4096)
                    if not data:
                        break
                    got += data
                    if b"\r\n\r\n" in got:
                        break
                except socket.timeout:
                    pass
                except (ConnectionError, ssl.SSLError):
                    break
        finally:
            sock.close()
        if got.startswith(b"HTTP/1.1 408"):
            stats.add("slow", "answered_408")
        else:
            stats.fail("slow", "bad_client", f"slowloris got {got[:60]!r} after "
                                             f"{time.monotonic() - t0:.1f} s")


def main(path):
    with open(path) as f:
        cfg = json.load(f)
    stats = Stats()
    deadline = time.monotonic() + cfg["duration_s"]
    threads = []
    for i in range(cfg["clients_per_kind"]):
        threads.append(threading.Thread(target=h1_client, args=(
            cfg, stats, "tcp", cfg["tcp_port"], "http/1.1", deadline, random.Random(100 + i))))
        threads.append(threading.Thread(target=h1_client, args=(
            cfg, stats, "h1", cfg["http_port"], "http/1.1", deadline, random.Random(200 + i))))
        threads.append(threading.Thread(target=h2_client, args=(
            cfg, stats, "h2", cfg["http_port"], deadline, random.Random(300 + i))))
    threads.append(threading.Thread(target=bad_client, args=(cfg, stats, deadline, random.Random(4))))
    threads.append(threading.Thread(target=slowloris, args=(cfg, stats, deadline, random.Random(5))))
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 60)
    with stats.lock:
        out = {"counts": stats.counts, "failures": stats.failures, "serials": stats.serials,
               "threads_left": sum(t.is_alive() for t in threads)}
    with open(cfg["out"], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
