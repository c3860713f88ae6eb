"""What the client sees when the backend is missing, unreachable, resets, or
when the connection goes idle."""

import select
import socket
import ssl
import threading
import time

import pytest

from tlsterm_harness import (
    HTTP_REQUEST,
    addr_text,
    client_context,
    curl,
    free_port,
    listener_config,
    reset_on_close,
    text,
    tls_connect,
    tlsterm_config,
)


def test_backend_down(tlsterm_factory, certs):
    """Nothing listens on the backend port: the handshake completes, then the
    client gets close_notify and no data."""
    dead = f"127.0.0.1:{free_port()}"
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", dead, certs)]))
    port = proxy.port("edge")
    mark = proxy.mark()
    # suppress_ragged_eofs=False: recv returns b"" only on close_notify.
    with tls_connect(port, client_context(certs.ca), suppress_ragged_eofs=False) as tls:
        client = addr_text(tls.getsockname())
        assert tls.recv(1024) == b""
    failed = proxy.wait_for("backend_connect_failed", since=mark, client=client)
    assert failed["level"] == "warn"
    assert failed["listener"] == "edge"
    assert failed["backend"] == dead
    assert failed["error"] == "Connection refused"
    closed = proxy.wait_for("conn_closed", since=mark, client=client)
    assert closed["reason"] == "backend_connect_failed"
    assert closed["bytes_in"] == 0 and closed["bytes_out"] == 0
    # The handshake itself succeeded.
    assert proxy.find("handshake_done", since=mark, client=client)
    assert not proxy.find("handshake_failed", since=mark)

    # curl: empty reply (52) or a receive error (56) if its request crossed
    # the close; never a body.
    result = curl(f"https://localhost:{port}/", port, certs.ca)
    assert result.returncode in (52, 56), text(result)
    assert result.stdout == b""
    proxy.wait_count("backend_connect_failed", 2, since=mark)


def fill_accept_queue():
    """fill_accept_queue returns (listening socket, filler sockets) for a
    127.0.0.1 listener whose accept queue is full, so that Linux drops new
    SYNs and a connect to it hangs; or None when this kernel does not
    behave so."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
        _, writable, _ = select.select([], [filler], [], 0.5)
        if not writable:
            return listener, fillers
    for s in fillers + [listener]:
        s.close()
    return None


def test_backend_connect_timeout(tlsterm_factory, certs):
    full = fill_accept_queue()
    if full is None:
        pytest.skip("could not make a loopback listener that drops SYNs")
    listener, fillers = full
    try:
        backend = addr_text(listener.getsockname())
        proxy = tlsterm_factory(
            tlsterm_config([listener_config("edge", backend, certs, connect="1s")])
        )
        mark = proxy.mark()
        start = time.monotonic()
        with tls_connect(proxy.port("edge"), client_context(certs.ca), suppress_ragged_eofs=False) as tls:
            client = addr_text(tls.getsockname())
            assert tls.recv(1024) == b""
        elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 8, f"connect timeout of 1s fired after {elapsed:.2f}s"
        failed = proxy.wait_for("backend_connect_failed", since=mark, client=client)
        assert failed["backend"] == backend
        assert failed["error"] == "timeout"
        closed = proxy.wait_for("conn_closed", since=mark, client=client)
        assert closed["reason"] == "backend_connect_timeout"
    finally:
        for s in fillers + [listener]:
            s.close()


def test_backend_reset(tlsterm_factory, certs):
    """The backend answers a request with a TCP RST: the client's
    connection ends and the reason is backend_reset."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(30)
    got = []

    def reset_one():
        conn, _ = server.accept()
        with conn:
            conn.settimeout(30)
            got.append(conn.recv(65536))
            reset_on_close(conn)

    thread = threading.Thread(target=reset_one, daemon=True)
    thread.start()
    try:
        proxy = tlsterm_factory(
            tlsterm_config([listener_config("edge", addr_text(server.getsockname()), certs)])
        )
        mark = proxy.mark()
        with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
            client = addr_text(tls.getsockname())
            tls.sendall(HTTP_REQUEST)
            tls.settimeout(30)
            try:
                assert tls.recv(1024) == b""
            except (ConnectionResetError, ssl.SSLError):
                pass
        thread.join(30)
        assert got == [HTTP_REQUEST]
        closed = proxy.wait_for("conn_closed", since=mark, client=client)
        assert closed["reason"] == "backend_reset", closed
        assert closed["bytes_in"] == len(HTTP_REQUEST)
        assert closed["bytes_out"] == 0
    finally:
        server.close()


def test_idle_timeout(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", echo, certs, idle="1s")]))
    mark = proxy.mark()
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        client = addr_text(tls.getsockname())
        tls.sendall(b"ping")
        tls.settimeout(30)
        assert tls.recv(4) == b"ping"
        start = time.monotonic()
        try:
            assert tls.recv(1024) == b""
        except (ConnectionResetError, ssl.SSLError):
            pass
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 8, f"idle timeout of 1s fired after {elapsed:.2f}s"
    closed = proxy.wait_for("conn_closed", since=mark, client=client)
    assert closed["reason"] == "idle_timeout"
    assert closed["bytes_in"] == 4 and closed["bytes_out"] == 4
