"""Many connections at once: 500 TLS connections all moving data through an
echo backend, then good connections mixed with failing handshakes. The proxy
keeps serving, logs each connection once, and exits 0."""

import asyncio
import os

from tlsterm_harness import (
    addr_text,
    async_echo,
    client_context,
    client_hello,
    listener_config,
    tlsterm_config,
)

NUM_CONNECTIONS = 500
PAYLOAD_LEN = 32 * 1024
CHUNK = 4096
DEADLINE = 180


async def echo_all(port, ctx, payloads):
    # Nobody sends a byte before all connections completed their handshake,
    # so all of them really move data at the same time.
    barrier = asyncio.Barrier(len(payloads))
    return await asyncio.gather(
        *(async_echo(port, ctx, p, CHUNK, barrier, timeout=DEADLINE) for p in payloads),
        return_exceptions=True,
    )


def test_500_concurrent_connections(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", echo, certs)]))
    port = proxy.port("edge")
    ctx = client_context(certs.ca)
    payloads = [os.urandom(PAYLOAD_LEN) for _ in range(NUM_CONNECTIONS)]

    results = asyncio.run(echo_all(port, ctx, payloads))

    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} of {NUM_CONNECTIONS} connections failed: {errors[:5]!r}"
    wrong = [i for i, (r, p) in enumerate(zip(results, payloads)) if r[0] != p]
    assert not wrong, f"connections {wrong[:10]} got different bytes back"

    clients = {local for _, local in results}
    assert len(clients) == NUM_CONNECTIONS
    closed = proxy.wait_count(
        "conn_closed", NUM_CONNECTIONS, timeout=60, predicate=lambda e: e["client"] in clients
    )
    assert len(closed) == NUM_CONNECTIONS
    for event in closed:
        assert event["reason"] == "done", event
        assert event["bytes_in"] == PAYLOAD_LEN and event["bytes_out"] == PAYLOAD_LEN, event
    assert len(proxy.find("handshake_done")) == NUM_CONNECTIONS
    assert not proxy.find("handshake_failed")

    # Still serving after the storm.
    [(echoed, _)] = asyncio.run(echo_all(port, ctx, [b"after the storm"]))
    assert echoed == b"after the storm"
    proxy.wait_count("conn_closed", NUM_CONNECTIONS + 1)

    assert proxy.stop() == 0
    [draining] = proxy.find("draining")
    assert draining["connections"] == 0
    assert proxy.find("stopped")


GARBAGE = bytes([0x01]) + bytes(range(2, 65))  # not TLS: malformed


async def bad_client(port, kind, hello, timeout=DEADLINE):
    """bad_client fails a handshake on purpose and returns (client address,
    the reason tlsterm must log): "garbage" sends bytes that are not TLS,
    "partial" half a ClientHello and then EOF."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    local = addr_text(writer.get_extra_info("sockname"))
    if kind == "garbage":
        writer.write(GARBAGE)
        reason = "malformed"
    else:
        writer.write(hello[: len(hello) // 2])
        writer.write_eof()
        reason = "client_closed"
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(), timeout)  # until tlsterm closes
    except ConnectionResetError:
        pass  # closing with our garbage unread makes the kernel send RST
    writer.close()
    return local, reason


def test_failures_mixed_with_good_connections(tlsterm_factory, backend_factory, certs):
    """Handshake failures and good connections at the same time: each bad
    client gets exactly one handshake_failed line with its reason, each good
    one is served, and nothing else is logged about either."""
    echo = backend_factory("echo")
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", echo, certs)]))
    port = proxy.port("edge")
    ctx = client_context(certs.ca)
    hello = client_hello(certs.ca)
    num_each = 100
    payloads = [os.urandom(1024) for _ in range(num_each)]

    async def run_all():
        good = [async_echo(port, ctx, p, timeout=DEADLINE) for p in payloads]
        bad = [bad_client(port, kind, hello) for kind in ("garbage", "partial") for _ in range(num_each)]
        return await asyncio.gather(*good, *bad, return_exceptions=True)

    results = asyncio.run(run_all())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} clients failed: {errors[:5]!r}"
    good, bad = results[:num_each], dict(results[num_each:])
    assert [echoed for echoed, _ in good] == payloads
    good_clients = {local for _, local in good}

    assert proxy.stop() == 0  # the log is complete once tlsterm exited
    failed = proxy.find("handshake_failed")
    assert sorted(e["client"] for e in failed) == sorted(bad), "one line per bad client"
    for event in failed:
        assert event["reason"] == bad[event["client"]], event
    done = proxy.find("handshake_done")
    assert sorted(e["client"] for e in done) == sorted(good_clients)
    closed = proxy.find("conn_closed")
    assert sorted(e["client"] for e in closed) == sorted(good_clients)
    assert {e["reason"] for e in closed} == {"done"}
