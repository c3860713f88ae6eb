"""Log flooding is an attack vector: a burst of failed handshakes gives a
bounded number of handshake_failed lines, the rest is counted exactly in
handshake_failures_suppressed lines, and the proxy keeps serving."""

import socket
import threading

from tlsterm_harness import client_context, listener_config, tls_connect, tlsterm_config

BURST = 5000


def garbage_clients(port, count):
    """garbage_clients sends |count| connections of non-TLS bytes, a few
    threads at a time, each waiting for tlsterm to close it."""
    def worker(n):
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"\x00" * 16)
                try:
                    while s.recv(4096):
                        pass
                except ConnectionResetError:
                    pass
    threads = [threading.Thread(target=worker, args=(count // 10,)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive()


def test_failure_burst_is_rate_limited_and_counted(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    config = tlsterm_config([listener_config("edge", echo, certs)], level="info")
    config["log"]["handshake_failures"] = {"rate": 10, "burst": 50, "summary_interval": "1s"}
    config["workers"] = 2
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    garbage_clients(port, BURST)

    # Still serving, at once.
    with tls_connect(port, client_context(certs.ca)) as tls:
        tls.sendall(b"alive")
        assert tls.recv(5) == b"alive"

    assert proxy.stop() == 0
    logged = proxy.find("handshake_failed", reason="malformed")
    suppressed = sum(e["count"] for e in proxy.find("handshake_failures_suppressed", reason="malformed"))
    # Exact accounting: every failure is either a line or in a count.
    assert len(logged) + suppressed == BURST, (len(logged), suppressed)
    # Bounded: the burst per worker plus the refill over the run.
    assert len(logged) < 2 * 50 + 2 * 10 * 120, len(logged)
    assert suppressed > BURST // 2
