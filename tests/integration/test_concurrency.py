"""500 TLS connections open at once, all moving data through an echo backend;
then the proxy still serves, drains with nothing open, and exits 0."""

import asyncio
import os

from tlsterm_harness import async_echo, client_context, listener_config, tlsterm_config

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
