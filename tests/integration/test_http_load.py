"""HTTP mode under load: 10 connections x 100 concurrent streams with
bodies, all byte-exact, and the keep-alive race: a backend that closes idle
connections after 1 s while requests arrive at that moment must cost no
client a 502 (a reused connection that fails before any response byte is
retried once on a new one)."""

import hashlib
import re
import threading

import pytest

from http_harness import H2Conn, HttpProxy
from tlsterm_harness import run, text

CONNECTIONS = 10
STREAMS = 100


def body_of(conn, index):
    """body_of returns the deterministic request body of stream |index| on
    connection |conn|: 1 byte to 64 KiB, no two alike."""
    size = (conn * STREAMS + index) * 6151 % 65536 + 1
    seed = hashlib.sha256(f"{conn}/{index}".encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def test_many_connections_many_streams_byte_exact(tlsterm_factory, http_backend_factory, certs):
    proxy = HttpProxy(tlsterm_factory, http_backend_factory(), certs)
    failures = []

    def client(n):
        try:
            with H2Conn(proxy.port, certs) as conn:
                streams = []
                for i in range(STREAMS):
                    body = body_of(n, i)
                    # Half Content-Length, half no length (chunked to the backend).
                    headers = [("content-length", str(len(body)))] if i % 2 else []
                    streams.append(conn.request("POST", f"/echo?c={n}&s={i}", headers, body))
                conn.wait(lambda: all(s.done for s in streams), 120, "100 echoed streams")
                for i, stream in enumerate(streams):
                    assert stream.status == 200 and stream.ended, (i, stream.status, stream.reset)
                    assert bytes(stream.data) == body_of(n, i), f"stream {i} of connection {n}"
        except BaseException as e:  # collected, reported by the test thread
            failures.append(f"connection {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not any(t.is_alive() for t in threads), "a client thread is still running"
    assert not failures, "\n".join(failures)
    if proxy.tlsterm:
        lines = proxy.requests(CONNECTIONS * STREAMS)
        assert all(line["status"] == 200 and line["reason"] is None for line in lines)


@pytest.mark.parametrize("h1,clients,total", [(False, 200, 2000), (True, 100, 1000)],
                         ids=["h2", "http1.1"])
def test_keepalive_race_no_502(tlsterm_factory, http_backend_factory, certs, h1, clients, total):
    """h2load: |clients| connections each send one request per second; the
    backend closes a connection idle for 1 s, so pooled connections are
    closed by the backend just as the next second's requests want them.
    Whether that timing lines up depends on how the pool spreads requests
    (a warm connection is never idle for 1 s), so the backend also loses
    every 25th request on a reused connection: the race on demand. Every
    such GET is sent again on a new connection; the client never sees a
    502."""
    backend = http_backend_factory("--idle-close", "1", "--race-every", "25")
    proxy = HttpProxy(tlsterm_factory, backend, certs)
    args = ["h2load", "-n", str(total), "-c", str(clients), "-m", "1", "--rps", "1", "-t", "1",
            f"https://127.0.0.1:{proxy.port}/bytes/100"]
    if h1:
        args.insert(1, "--h1")
    result = run(args, timeout=120)
    out = result.stdout.decode()
    assert result.returncode == 0, text(result)
    assert f"status codes: {total} 2xx, 0 3xx, 0 4xx, 0 5xx" in out, out
    assert re.search(rf"requests: {total} total, {total} started, {total} done, {total} succeeded",
                     out), out
    # The race was run: the backend closed connections with a request
    # unanswered, and reused others.
    assert backend.find("close", how="server", state="race"), "the race never happened"
    assert backend.find("request", predicate=lambda e: e["n"] > 1), "no backend connection reused"
