"""Half-close in both directions, and an abrupt end for contrast.

Client to backend: the client ends its side (a bare TCP FIN, or a TLS
close_notify) and must still get the backend's answer, which sink-sha only
sends after EOF. Backend to client: the backend closes after its data and the
client must get all of it followed by close_notify, a clean end rather than a
truncation. BioTlsClient drives TLS over MemoryBIOs, since SSLSocket cannot
half-close.
"""

import pytest

from backend import pattern, pattern_sha256
from tlsterm_harness import BioTlsClient, client_context, listener_config, tlsterm_config

PAYLOAD_LEN = 64 * 1024  # small enough for echo to answer while we still send
PAYLOAD = b"".join(pattern(PAYLOAD_LEN))
SOURCE_LEN = 300 * 1024


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_backend_factory, certs):
    return module_tlsterm_factory(
        tlsterm_config(
            [
                listener_config("sink", module_backend_factory("sink-sha"), certs),
                listener_config("echo", module_backend_factory("echo"), certs),
                listener_config("source", module_backend_factory("source", SOURCE_LEN), certs),
            ]
        )
    )


@pytest.fixture
def client_for(proxy, certs):
    clients = []

    def connect(listener):
        client = BioTlsClient(proxy.port(listener), client_context(certs.ca))
        clients.append(client)
        client.handshake()
        return client

    yield connect
    for client in clients:
        client.close()


EXPECTED_REPLY = {
    "sink": (pattern_sha256(PAYLOAD_LEN) + "\n").encode(),
    "echo": PAYLOAD,
}


@pytest.mark.parametrize("listener", ["sink", "echo"])
@pytest.mark.parametrize("end", ["tcp_fin", "close_notify", "close_notify_and_fin"])
def test_client_half_close_still_gets_reply(proxy, client_for, listener, end):
    mark = proxy.mark()
    client = client_for(listener)
    client.send(PAYLOAD)
    if end == "tcp_fin":
        client.shutdown_tcp()
    elif end == "close_notify":
        client.send_close_notify()
    else:
        # What most clients do when done sending: both at once. The FIN
        # closes only the client's sending side; the answer must still come.
        client.send_close_notify()
        client.shutdown_tcp()
    reply, how = client.read_all()
    assert reply == EXPECTED_REPLY[listener]
    assert how == "close_notify", "tlsterm ended the stream without close_notify"
    assert client.wait_tcp_eof() == b""
    closed = proxy.wait_for("conn_closed", since=mark, client=client.local_addr)
    assert closed["reason"] == "done"
    assert closed["bytes_in"] == PAYLOAD_LEN
    assert closed["bytes_out"] == len(reply)


def test_backend_close_ends_with_close_notify(proxy, client_for):
    mark = proxy.mark()
    client = client_for("source")
    data, how = client.read_all()
    assert len(data) == SOURCE_LEN
    assert data == b"".join(pattern(SOURCE_LEN))
    assert how == "close_notify", "backend EOF reached the client as a bare TCP close"
    # The client's direction is still open; the connection ends with it.
    client.send_close_notify()
    assert client.wait_tcp_eof() == b""
    closed = proxy.wait_for("conn_closed", since=mark, client=client.local_addr)
    assert closed["reason"] == "done"
    assert closed["bytes_in"] == 0
    assert closed["bytes_out"] == SOURCE_LEN


def test_client_reset_after_handshake(proxy, client_for):
    """A client that resets mid-stream is not a clean end: client_reset."""
    mark = proxy.mark()
    client = client_for("echo")
    client.send(b"x" * 1000)
    # The echo proves the bytes went through before the reset.
    assert client.read_exactly(1000) == b"x" * 1000
    local = client.local_addr
    client.abort()
    closed = proxy.wait_for("conn_closed", since=mark, client=local)
    assert closed["reason"] == "client_reset"
    assert closed["bytes_in"] == 1000 and closed["bytes_out"] == 1000
