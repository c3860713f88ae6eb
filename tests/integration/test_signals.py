"""Graceful shutdown on SIGTERM and SIGINT: listeners close at once, open
connections finish (or are cut at drain_timeout), then tlsterm exits 0."""

import asyncio
import hashlib
import signal
import socket
import ssl
import time

import pytest

from backend import pattern_sha256
from tlsterm_harness import (
    StreamDigest,
    TIMEOUT,
    addr_text,
    async_tls_open,
    client_context,
    listener_config,
    tls_connect,
    tlsterm_config,
    wait_until,
)

MIB = 1 << 20


def refuses(port):
    """refuses returns True if a TCP connect to 127.0.0.1:|port| is
    refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # This connect met the listening socket while it was being closed
        # (its handshake was queued there): not refused yet; ask again.
        return False
    return False


def assert_listeners_closed(port):
    # "At once": allow only the moment between the draining line and the
    # close of the listening socket.
    wait_until(lambda: refuses(port), timeout=2, what=f"port {port} to refuse connections")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_when_idle(tlsterm_factory, backend_factory, certs, sig):
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", backend_factory("echo"), certs)]))
    start = time.monotonic()
    assert proxy.stop(sig, timeout=15) == 0
    assert time.monotonic() - start < 10
    [draining] = proxy.find("draining")
    assert draining["connections"] == 0
    assert proxy.find("stopped")
    assert refuses(proxy.port("edge"))


def test_sigterm_drains_a_transfer(tlsterm_factory, backend_factory, certs):
    size = 2 * MIB
    slow = backend_factory("slow-source", size, MIB)
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", slow, certs)]))
    port = proxy.port("edge")
    with tls_connect(port, client_context(certs.ca), suppress_ragged_eofs=False) as tls:
        client = addr_text(tls.getsockname())
        stream = StreamDigest(tls).read(256 * 1024)
        mark = proxy.mark()
        proxy.send_signal(signal.SIGTERM)
        draining = proxy.wait_for("draining", since=mark)
        assert draining["connections"] == 1
        assert_listeners_closed(port)
        at_refusal = stream.received
        stream.read()
        assert at_refusal < size, "the transfer ended before the test could check mid-drain"
    assert stream.matches(size)
    assert proxy.wait_exit() == 0
    closed = proxy.wait_for("conn_closed", client=client)
    assert closed["reason"] == "done"
    assert closed["bytes_out"] == size
    stopped = proxy.wait_for("stopped")
    events = proxy.find()
    assert events.index(closed) < events.index(stopped)


def test_drain_deadline_closes_open_connections(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(
        tlsterm_config([listener_config("edge", backend_factory("echo"), certs)], drain_timeout="1s")
    )
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        client = addr_text(tls.getsockname())
        tls.sendall(b"ping")
        assert tls.recv(4) == b"ping"
        start = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait_exit(timeout=15) == 0
        elapsed = time.monotonic() - start
        # The connection was cut: EOF (or a reset), no more data.
        try:
            assert tls.recv(1024) == b""
        except (ConnectionResetError, ssl.SSLError):
            pass
    assert 0.9 <= elapsed < 6, f"drain_timeout 1s, exited after {elapsed:.2f}s"
    assert proxy.find("draining")[0]["connections"] == 1
    closed = proxy.wait_for("conn_closed", client=client)
    assert closed["reason"] == "shutdown"
    assert proxy.find("stopped")


def test_sigint_lets_open_connections_finish(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", backend_factory("echo"), certs)]))
    port = proxy.port("edge")
    with tls_connect(port, client_context(certs.ca)) as tls:
        client = addr_text(tls.getsockname())
        proxy.send_signal(signal.SIGINT)
        assert proxy.wait_for("draining")["connections"] == 1
        assert_listeners_closed(port)
        # The open connection still works while draining.
        tls.sendall(b"still here")
        tls.settimeout(30)
        assert tls.recv(64) == b"still here"
        assert proxy.running()
        start = time.monotonic()
    # Closing the last connection ends the drain long before its 30s.
    assert proxy.wait_exit(timeout=15) == 0
    assert time.monotonic() - start < 10
    closed = proxy.wait_for("conn_closed", client=client)
    assert closed["reason"] == "done"
    assert proxy.find("stopped")


def test_sigterm_drains_many_transfers(tlsterm_factory, backend_factory, certs):
    """Twenty downloads in flight when SIGTERM comes all finish byte-exact."""
    num, size = 20, 512 * 1024
    # About three seconds each: on a loaded machine the 20 first reads
    # can take more than one second, and a download must not end before
    # SIGTERM.
    slow = backend_factory("slow-source", size, size // 3)
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", slow, certs)]))
    port = proxy.port("edge")
    ctx = client_context(certs.ca)

    async def download(started):
        reader, writer = await async_tls_open(port, ctx)
        first = await asyncio.wait_for(reader.readexactly(64 * 1024), TIMEOUT)
        started.append(1)
        rest = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        return first + rest

    async def run_all():
        started = []
        tasks = [asyncio.create_task(download(started)) for _ in range(num)]
        while len(started) < num:
            done = [t for t in tasks if t.done()]
            assert not done, f"a download ended before SIGTERM: {done[0]!r}"
            await asyncio.sleep(0.01)
        proxy.send_signal(signal.SIGTERM)
        return await asyncio.gather(*tasks)

    results = asyncio.run(asyncio.wait_for(run_all(), TIMEOUT))
    expected = pattern_sha256(size)
    assert [hashlib.sha256(r).hexdigest() for r in results] == [expected] * num
    assert proxy.wait_exit() == 0
    assert proxy.find("draining")[0]["connections"] == num
    closed = proxy.find("conn_closed")
    assert len(closed) == num and {e["reason"] for e in closed} == {"done"}


def test_drain_delay_keeps_accepting_while_not_ready(tlsterm_factory, backend_factory, certs):
    """With drain_delay, SIGTERM turns /readyz to 503 at once (/healthz
    stays 200) while the listener still accepts and serves new clients; a
    second SIGTERM ends the delay: the drain starts, the listener refuses,
    and tlsterm exits 0. (The delay is long so that a loaded machine cannot
    end it during the round trip; the second signal keeps the test short.)"""
    from tlsterm_harness import admin_addr, get

    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    config["admin"] = {"listen": "127.0.0.1:0"}
    config["drain_delay"] = "20s"
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    admin = admin_addr(proxy)
    assert get(admin, "/readyz")[0] == 200
    mark = proxy.mark()
    proxy.send_signal(signal.SIGTERM)
    delayed = proxy.wait_for("drain_delayed", since=mark)
    assert delayed["delay_ms"] == 20000 and delayed["signal"] == "Terminated"
    assert get(admin, "/readyz") == (503, b"not ready\n")
    assert get(admin, "/healthz")[0] == 200
    with tls_connect(port, client_context(certs.ca)) as tls:
        tls.sendall(b"still served")
        assert tls.recv(64) == b"still served"
    assert proxy.find("draining", since=mark) == []
    proxy.send_signal(signal.SIGTERM)
    draining = proxy.wait_for("draining", since=mark)
    assert draining["signal"] == "Terminated"
    wait_until(lambda: refuses(port), what="the listener to close")
    assert proxy.wait_exit() == 0


def test_drain_delay_timer_starts_the_drain(tlsterm_factory, backend_factory, certs):
    """Without a second signal, the drain starts when drain_delay is over:
    drain_delayed, then draining (from the timer), then exit 0."""
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    config["drain_delay"] = "1s"
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    mark = proxy.mark()
    start = time.monotonic()
    proxy.send_signal(signal.SIGTERM)
    delayed = proxy.wait_for("drain_delayed", since=mark)
    assert delayed["delay_ms"] == 1000
    draining = proxy.wait_for("draining", since=mark)
    # No sooner than the delay (the timer, not the signal, started it).
    assert time.monotonic() - start >= 0.9
    assert draining["signal"] == "Terminated"
    assert proxy.wait_exit() == 0
    assert refuses(port)
    events = proxy.find(since=mark)
    assert events.index(delayed) < events.index(draining)
    assert proxy.find("stopped")


def test_sighup_during_drain_delay_is_ignored(tlsterm_factory, backend_factory, certs):
    """A SIGHUP after the stop signal reloads nothing (systemd would see
    RELOADING=1 and READY=1 after STOPPING=1): reload_ignored says why, and
    the drain goes on to exit 0."""
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    config["drain_delay"] = "3s"
    proxy = tlsterm_factory(config)
    mark = proxy.mark()
    proxy.send_signal(signal.SIGTERM)
    proxy.wait_for("drain_delayed", since=mark)
    proxy.send_signal(signal.SIGHUP)
    ignored = proxy.wait_for("reload_ignored", since=mark)
    assert ignored["reason"] == "stopping" and ignored["trigger"] == "SIGHUP", ignored
    assert proxy.wait_exit() == 0
    events = proxy.find(since=mark)
    # The SIGHUP came during the delay: before the drain.
    assert events.index(ignored) < events.index(proxy.find("draining", since=mark)[0])
    assert proxy.find("reload_done", since=mark) == []
    assert proxy.find("reload_failed", since=mark) == []
