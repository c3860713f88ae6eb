"""Bulk transfers through tlsterm, checked byte for byte with sha256: client to
backend, backend to client, and both ways at once on one connection."""

import asyncio
import os
import time

import pytest

from backend import pattern, pattern_sha256
from tlsterm_harness import (
    StreamDigest,
    BioTlsClient,
    addr_text,
    async_echo,
    client_context,
    listener_config,
    tls_connect,
    tlsterm_config,
)

MIB = 1 << 20
SIZES = [pytest.param(MIB, id="1MiB"), pytest.param(100 * MIB, id="100MiB")]


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_backend_factory, certs):
    listeners = [
        listener_config("sink", module_backend_factory("sink-sha"), certs),
        listener_config("echo", module_backend_factory("echo"), certs),
    ]
    for size in (MIB, 100 * MIB):
        listeners.append(
            listener_config(f"source{size}", module_backend_factory("source", size), certs)
        )
    return module_tlsterm_factory(tlsterm_config(listeners))


@pytest.mark.parametrize("size", SIZES)
def test_client_to_backend(proxy, certs, size):
    mark = proxy.mark()
    client = BioTlsClient(proxy.port("sink"), client_context(certs.ca))
    try:
        client.handshake()
        for chunk in pattern(size):
            client.send(chunk)
        # The backend answers only after EOF: close_notify half-closes.
        client.send_close_notify()
        reply, how = client.read_all()
        local = client.local_addr
    finally:
        client.close()
    assert reply == (pattern_sha256(size) + "\n").encode()
    assert how == "close_notify"
    closed = proxy.wait_for("conn_closed", since=mark, client=local)
    assert closed["reason"] == "done"
    assert closed["bytes_in"] == size
    assert closed["bytes_out"] == len(reply)


@pytest.mark.parametrize("size", SIZES)
def test_backend_to_client(proxy, certs, size):
    mark = proxy.mark()
    # suppress_ragged_eofs=False: only a close_notify ends the stream cleanly.
    with tls_connect(proxy.port(f"source{size}"), client_context(certs.ca), suppress_ragged_eofs=False) as tls:
        local = addr_text(tls.getsockname())
        stream = StreamDigest(tls).read()
    assert stream.matches(size)
    closed = proxy.wait_for("conn_closed", since=mark, client=local)
    assert closed["reason"] == "done"
    assert closed["bytes_in"] == 0
    assert closed["bytes_out"] == size


def test_echo_both_ways_at_once(proxy, certs):
    """1 MiB goes up while the echo comes down on the same connection: the
    two directions must not wait on each other."""
    mark = proxy.mark()
    payload = os.urandom(MIB)
    echoed, local = asyncio.run(
        async_echo(proxy.port("echo"), client_context(certs.ca), payload, chunk=16384)
    )
    assert echoed == payload
    closed = proxy.wait_for("conn_closed", since=mark, client=local)
    assert closed["reason"] == "done"
    assert closed["bytes_in"] == MIB
    assert closed["bytes_out"] == MIB


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_slow_reader_keeps_buffers_bounded(proxy, certs):
    """The client stops reading while the backend could push 100 MiB in well
    under a second: tlsterm must stop reading the backend instead of
    buffering it. Its resident memory is watched for two seconds."""
    size = 100 * MIB
    with tls_connect(proxy.port(f"source{size}"), client_context(certs.ca)) as tls:
        stream = StreamDigest(tls).read(MIB)
        before = rss_bytes(proxy.pid)
        peak = before
        window_end = time.monotonic() + 2
        while time.monotonic() < window_end:
            peak = max(peak, rss_bytes(proxy.pid))
            assert peak - before < 48 * MIB, f"tlsterm grew by {(peak - before) >> 20} MiB"
            time.sleep(0.05)
        stream.read()
    assert stream.matches(size)
