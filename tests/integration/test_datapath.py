"""The data path's edge cases: a backend that answers an upload early and
closes, a unix backend whose backlog is full, socket errors that are not an
EOF, 0-RTT handshakes that never complete, and how connections end (idle and
drain deadlines with close_notify, timeouts.half_closed, the lingering
close)."""

import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend import pattern
from test_backend import fill_accept_queue
from tlsterm_harness import (
    HERE,
    TLSTERM_BIN,
    BioTlsClient,
    addr_text,
    client_context,
    listener_config,
    reset_on_close,
    tls_connect,
    tlsterm_config,
    wait_until,
)

# ---- a backend that answers an upload early ----------------------------------

ANSWER_LEN = 5000
UPLOAD_LEN = 4 * 1024 * 1024


def upload_and_read(port, ctx, upload_len, timeout=20, first=b""):
    """upload_and_read sends |upload_len| bytes over TLS while reading what
    comes back, as a browser uploading a form does; with |first|, those
    bytes go first, then a pause of half a second. It returns (bytes
    received, how the stream ended: "close_notify", "eof" or "reset")."""
    client = BioTlsClient(port, ctx)
    try:
        client.handshake()
        if first:
            client.send(first)
            time.sleep(0.5)
        client.sock.setblocking(False)
        chunk = b"u" * 16384
        queued = b""
        sent = 0
        received = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not queued and sent < upload_len:
                client.tls.write(chunk[: min(len(chunk), upload_len - sent)])
                sent += min(len(chunk), upload_len - sent)
                queued = client.outgoing.read()
            want_write = [client.sock] if queued else []
            readable, writable, _ = select.select([client.sock], want_write, [], 1)
            if writable:
                try:
                    n = client.sock.send(queued)
                    queued = queued[n:]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    queued, sent = b"", upload_len  # the proxy stopped reading
            if readable:
                try:
                    data = client.sock.recv(1 << 16)
                except ConnectionResetError:
                    return bytes(received), "reset"
                if not data:
                    client.incoming.write_eof()
                else:
                    client.incoming.write(data)
                while True:
                    try:
                        plain = client.tls.read(1 << 16)
                    except ssl.SSLWantReadError:
                        break
                    except ssl.SSLZeroReturnError:
                        return bytes(received), "close_notify"
                    except ssl.SSLEOFError:
                        return bytes(received), "eof"
                    except ssl.SSLError as e:
                        if e.reason != "UNEXPECTED_EOF_WHILE_READING":
                            raise
                        return bytes(received), "eof"
                    if not plain:
                        return bytes(received), "close_notify"
                    received += plain
        raise AssertionError(f"no end of stream after {timeout}s, {len(received)} bytes")
    finally:
        client.close()


def test_early_answer_to_an_upload_is_delivered(tlsterm_factory, backend_factory, certs):
    """The backend reads 100 bytes, answers and closes while the client is
    still uploading 4 MiB: the answer must arrive whole, followed by
    close_notify, every time (it used to be lost to a reset in most runs)."""
    proxy = tlsterm_factory(
        tlsterm_config(
            [listener_config("edge", backend_factory("answer-early", 100, ANSWER_LEN), certs)]
        )
    )
    port = proxy.port("edge")
    expected = b"".join(pattern(ANSWER_LEN))
    mark = proxy.mark()
    for run in range(10):
        received, how = upload_and_read(port, client_context(certs.ca), UPLOAD_LEN)
        assert (len(received), how) == (ANSWER_LEN, "close_notify"), f"run {run}"
        assert received == expected
    closed = proxy.wait_count("conn_closed", 10, since=mark)
    for event in closed:
        assert event["bytes_out"] == ANSWER_LEN, event
        assert event["reason"] in ("backend_reset", "done"), event


def tcp_backend():
    """tcp_backend returns a listening socket on 127.0.0.1 for a test that
    plays the backend itself, and its "ip:port"."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, addr_text(server.getsockname())


def half_close_and_read(proxy, certs, payload=b"", pause=0.0):
    """half_close_and_read sends |payload| over TLS, waits |pause| seconds,
    sends close_notify and reads to the end. It returns (bytes, how the
    stream ended, as BioTlsClient.read_to_end says, the client's address)."""
    client = BioTlsClient(proxy.port("edge"), client_context(certs.ca))
    address = client.local_addr
    try:
        client.handshake()
        if payload:
            client.send(payload)
        time.sleep(pause)
        client.send_close_notify()
        data, how = client.read_all()
    finally:
        client.close()
    return data, how, address


def serve_once(server, work):
    """serve_once accepts one connection on |server| in a thread and runs
    |work| on it; it returns the thread."""
    def run():
        conn, _ = server.accept()
        with conn:
            work(conn)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_early_answer_reset_seen_on_read(tlsterm_factory, certs):
    """The backend reads 100 of the client's first 200 bytes, answers and
    closes with the rest unread, so its kernel sends a reset, which tlsterm
    sees on a read while the client pauses: the client still gets the
    answer, close_notify and no reset while it uploads."""
    server, backend_addr = tcp_backend()
    try:
        proxy = tlsterm_factory(tlsterm_config([listener_config("edge", backend_addr, certs)]))

        def answer(conn):
            conn.recv(100, socket.MSG_WAITALL)
            conn.sendall(b"".join(pattern(ANSWER_LEN)))

        thread = serve_once(server, answer)
        received, how = upload_and_read(proxy.port("edge"), client_context(certs.ca),
                                        UPLOAD_LEN, first=b"f" * 200)
        thread.join(10)
        assert (len(received), how) == (ANSWER_LEN, "close_notify")
        assert received == b"".join(pattern(ANSWER_LEN))
    finally:
        server.close()


def test_records_written_before_a_backend_reset_are_delivered(tlsterm_factory, certs):
    """The client has ended its side; the backend sends exactly one full
    record's worth and resets. The record is on its way before the reset is
    read: it must reach the client, followed by a bare close that says the
    stream was cut."""
    server, backend_addr = tcp_backend()
    try:
        proxy = tlsterm_factory(tlsterm_config([listener_config("edge", backend_addr, certs)]))

        def answer_and_reset(conn):
            while conn.recv(65536):  # the client's EOF, passed on
                pass
            conn.sendall(b"".join(pattern(16384)))
            reset_on_close(conn)

        thread = serve_once(server, answer_and_reset)
        data, how, _ = half_close_and_read(proxy, certs)
        thread.join(10)
        assert data == b"".join(pattern(16384))
        assert how == "eof"
    finally:
        server.close()


# ---- a unix backend whose backlog is full ---------------------------------------


def test_unix_backend_with_a_full_backlog_is_retried(tlsterm_factory, certs, tmp_path):
    """A non-blocking connect to a unix socket whose backlog is full fails
    with EAGAIN; tlsterm tries again until timeouts.connect instead of
    failing the client at once."""
    path = tmp_path / "backend.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)  # room for two pending connections, then EAGAIN
    try:
        listener = listener_config("edge", f"unix:{path}", certs, connect="10s")
        proxy = tlsterm_factory(tlsterm_config([listener]))
        port = proxy.port("edge")
        mark = proxy.mark()
        clients = [tls_connect(port, client_context(certs.ca)) for _ in range(5)]
        for i, tls in enumerate(clients):
            tls.sendall(b"client %d\n" % i)
        # Nobody accepts yet: the connects queue or wait for a retry.
        time.sleep(0.5)
        assert not proxy.find("backend_connect_failed", since=mark)

        def serve():
            for _ in range(len(clients)):
                conn, _ = server.accept()
                conn.sendall(conn.recv(100).upper())
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        answers = sorted(tls.recv(100) for tls in clients)
        assert answers == sorted(b"CLIENT %d\n" % i for i in range(5))
        thread.join(10)
        for tls in clients:
            tls.close()
        assert not proxy.find("backend_connect_failed", since=mark)
    finally:
        server.close()


def cpu_seconds(pid):
    """cpu_seconds returns the user+system CPU time of process |pid|."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_waiting_for_a_connect_does_not_spin(tlsterm_factory, certs):
    """The client's request arrives while the backend connect is pending:
    its socket stays readable, and must not be watched until there is
    somewhere to forward to."""
    full = fill_accept_queue()
    if full is None:
        pytest.skip("could not make a loopback listener that drops SYNs")
    listener, fillers = full
    try:
        backend = addr_text(listener.getsockname())
        proxy = tlsterm_factory(
            tlsterm_config([listener_config("edge", backend, certs, connect="3s")])
        )
        with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\n\r\n")
            time.sleep(0.2)
            before = cpu_seconds(proxy.pid)
            time.sleep(1.5)
            spent = cpu_seconds(proxy.pid) - before
        assert spent < 0.3, f"tlsterm used {spent:.2f} s of CPU in 1.5 s while connecting"
    finally:
        for s in fillers + [listener]:
            s.close()


def test_connect_failure_names_the_connecting_state(tlsterm_factory, certs, tmp_path):
    """A connect that fails at once (no such unix socket) is logged in the
    state it happened in."""
    listener = listener_config("edge", f"unix:{tmp_path / 'missing.sock'}", certs)
    proxy = tlsterm_factory(tlsterm_config([listener]))
    mark = proxy.mark()
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        client = addr_text(tls.getsockname())
        assert tls.recv(10) == b""  # close_notify
    closed = proxy.wait_for("conn_closed", since=mark, client=client)
    assert closed["reason"] == "backend_connect_failed"
    assert closed["state"] == "connecting"


# ---- socket errors are errors -----------------------------------------------------


def test_socket_error_resets_the_backend(tlsterm_factory, certs):
    """tlsterm's client socket fails mid-upload with ECONNABORTED (`ss -K`
    destroys it, as the kernel does to a connection it gives up on): the
    backend must see a reset, never an EOF that would make a cut-short
    upload look complete."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    server, backend_addr = tcp_backend()
    try:
        proxy = tlsterm_factory(tlsterm_config([listener_config("edge", backend_addr, certs)]))
        mark = proxy.mark()
        with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
            client_port = tls.getsockname()[1]
            tls.sendall(b"first part of an upload")
            backend, _ = server.accept()
            backend.settimeout(10)
            got = b""
            while len(got) < len(b"first part of an upload"):
                got += backend.recv(100)
            # tlsterm's socket is the one whose peer port is the client's.
            result = subprocess.run(
                ["ss", "-K", "-t", "dst", "127.0.0.1", "dport", "=", str(client_port)],
                capture_output=True, timeout=10,
            )
            closed = proxy.wait_for("conn_closed", since=mark, client=f"127.0.0.1:{client_port}")
            try:
                saw = "eof" if backend.recv(100) == b"" else "data"
            except ConnectionResetError:
                saw = "reset"
            backend.close()
        assert closed["reason"] == "client_reset", (closed, result.stderr)
        assert closed["detail"] == "ECONNABORTED", closed
        assert saw == "reset"
    finally:
        server.close()


def test_socket_timeout_is_an_error(certs, tmp_path):
    """In a network namespace of its own, the client's network vanishes
    (loopback down) while tlsterm sends to it: its socket fails with
    ETIMEDOUT, which ends the connection as client_reset naming the errno
    (it used to be read as the client's EOF)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    result = subprocess.run(
        ["unshare", "--net", sys.executable, str(NETNS_SCRIPT), str(certs.dir), str(tmp_path)],
        capture_output=True,
        timeout=90,
        env=dict(os.environ, TLSTERM_BIN=TLSTERM_BIN),
    )
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode(errors="replace")
    verdict = json.loads(out.strip().splitlines()[-1])
    assert verdict["reason"] == "client_reset", verdict
    assert verdict["detail"] in ("ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"), verdict


NETNS_SCRIPT = HERE / "netns_socket_error.py"


# ---- 0-RTT handshakes that never complete -------------------------------------------


def capture_first_flight(port, certs, tmp_path):
    """capture_first_flight runs openssl s_client with a resumed session and
    0-RTT data through a relay, and returns what the client sent before
    hearing from the server: its ClientHello and early data, which a replay
    can send again without ever being able to finish the handshake."""
    sess = tmp_path / "sess.pem"
    early = tmp_path / "early.txt"
    early.write_bytes(b"EARLY-HELLO\n")
    base = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
            "-CAfile", str(certs.ca), "-tls1_3"]
    proc = subprocess.run(["sh", "-c", '(echo PING; sleep 1) | "$@"', "sh", *base,
                           "-sess_out", str(sess)], capture_output=True, timeout=30)
    assert sess.exists(), proc.stdout.decode(errors="replace")

    relay = socket.socket()
    relay.bind(("127.0.0.1", 0))
    relay.listen(1)
    relay_port = relay.getsockname()[1]
    captured = []

    def relay_once():
        client, _ = relay.accept()
        client.settimeout(0.5)
        flight = b""
        try:
            while True:  # everything the client sends before any answer
                data = client.recv(65536)
                if not data:
                    break
                flight += data
        except socket.timeout:
            pass
        captured.append(flight)
        client.close()

    thread = threading.Thread(target=relay_once, daemon=True)
    thread.start()
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{relay_port}", "-servername",
            "localhost", "-CAfile", str(certs.ca), "-tls1_3", "-sess_in", str(sess),
            "-early_data", str(early)]
    subprocess.run(args, input=b"", capture_output=True, timeout=30)
    thread.join(10)
    relay.close()
    assert captured and captured[0][0] == 0x16, captured
    return captured[0]


@pytest.mark.parametrize("client_end", ["eof", "silence"])
def test_early_data_without_finished_is_a_failed_handshake(
    tlsterm_factory, backend_factory, certs, tmp_path, client_end
):
    """A replayed ClientHello with 0-RTT data is accepted (the early data
    reaches the backend) but can never complete: it is a failed handshake,
    not a handshake_done, and no close_notify is claimed for it."""
    listener = listener_config("edge", backend_factory("echo"), certs, handshake="2s")
    listener["tls"]["early_data"] = True
    proxy = tlsterm_factory(tlsterm_config([listener]))
    port = proxy.port("edge")
    flight = capture_first_flight(port, certs, tmp_path)
    mark = proxy.mark()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(flight)
        client = addr_text(sock.getsockname())
        if client_end == "eof":
            time.sleep(0.3)  # let the early data reach the backend first
            sock.shutdown(socket.SHUT_WR)
        # Read until tlsterm closes.
        while True:
            try:
                if not sock.recv(65536):
                    break
            except ConnectionResetError:
                break
    failed = proxy.wait_for("handshake_failed", since=mark, client=client)
    expected = "client_closed" if client_end == "eof" else "handshake_timeout"
    assert failed["reason"] == expected, failed
    assert not proxy.find("handshake_done", since=mark, client=client)
    assert not proxy.find("conn_closed", since=mark, client=client)


# ---- how connections end --------------------------------------------------------------


def test_idle_timeout_sends_close_notify(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(
        tlsterm_config([listener_config("edge", backend_factory("echo"), certs, idle="1s")])
    )
    mark = proxy.mark()
    client = BioTlsClient(proxy.port("edge"), client_context(certs.ca))
    client_addr = client.local_addr
    try:
        client.handshake()
        client.send(b"ping")
        assert client.read_exactly(4) == b"ping"
        data, how = client.read_all()
        assert (data, how) == (b"", "close_notify")
        assert client.wait_tcp_eof() == b""
    finally:
        client.close()
    closed = proxy.wait_for("conn_closed", since=mark, client=client_addr)
    assert closed["reason"] == "idle_timeout"


def test_idle_timeout_resets_the_backend_of_an_unfinished_stream(tlsterm_factory, certs):
    """A client stalls mid-request until timeouts.idle: the backend gets a
    reset, not a FIN that would pass the partial request for complete."""
    server, backend_addr = tcp_backend()
    try:
        proxy = tlsterm_factory(
            tlsterm_config([listener_config("edge", backend_addr, certs, idle="1s")])
        )
        seen = []

        def read_until_end(conn):
            conn.settimeout(10)
            got = b""
            try:
                while True:
                    data = conn.recv(100)
                    if not data:
                        seen.append(("eof", got))
                        return
                    got += data
            except ConnectionResetError:
                seen.append(("reset", got))

        thread = serve_once(server, read_until_end)
        with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
            tls.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial")
            thread.join(10)
        assert seen and seen[0][0] == "reset", seen
        assert seen[0][1].endswith(b"partial")
    finally:
        server.close()


def test_drain_deadline_sends_close_notify(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(
        tlsterm_config(
            [listener_config("edge", backend_factory("echo"), certs)], drain_timeout="1s"
        )
    )
    client = BioTlsClient(proxy.port("edge"), client_context(certs.ca))
    client_addr = client.local_addr
    try:
        client.handshake()
        client.send(b"ping")
        assert client.read_exactly(4) == b"ping"
        proxy.send_signal(signal.SIGTERM)
        data, how = client.read_all()
        assert (data, how) == (b"", "close_notify")
    finally:
        client.close()
    assert proxy.wait_exit() == 0
    closed = proxy.find("conn_closed", client=client_addr)
    assert closed and closed[0]["reason"] == "shutdown"


def test_half_closed_timeout_ends_a_silent_half_open_connection(
    tlsterm_factory, backend_factory, certs
):
    """The client ended its side; the backend keeps its side open and says
    nothing: timeouts.half_closed ends it, long before timeouts.idle."""
    listener = listener_config("edge", backend_factory("hold"), certs)
    listener["timeouts"]["half_closed"] = "1s"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    mark = proxy.mark()
    started = time.monotonic()
    data, how, client_addr = half_close_and_read(proxy, certs, b"request")
    assert (data, how) == (b"", "close_notify")
    assert time.monotonic() - started < 10
    closed = proxy.wait_for("conn_closed", since=mark, client=client_addr)
    assert closed["reason"] == "half_closed_timeout"


def test_half_closed_timeout_counts_from_the_half_close(tlsterm_factory, certs):
    """A client quiet for longer than timeouts.half_closed before it
    half-closes still gives the backend that long to answer."""
    server, backend_addr = tcp_backend()
    try:
        listener = listener_config("edge", backend_addr, certs)
        listener["timeouts"]["half_closed"] = "1s"
        proxy = tlsterm_factory(tlsterm_config([listener]))

        def answer_after_eof(conn):
            while conn.recv(100):
                pass
            time.sleep(0.5)
            conn.sendall(b"answer")

        thread = serve_once(server, answer_after_eof)
        data, how, _ = half_close_and_read(proxy, certs, b"question", pause=1.5)
        thread.join(10)
        assert (data, how) == (b"answer", "close_notify")
    finally:
        server.close()


def test_half_closed_timeout_never_cuts_a_moving_transfer(
    tlsterm_factory, backend_factory, certs
):
    """A download that takes 3 s after the client half-closed is not cut by a
    1 s timeouts.half_closed: it is an inactivity timeout."""
    size = 150 * 1024
    listener = listener_config("edge", backend_factory("slow-source", size, 50 * 1024), certs)
    listener["timeouts"]["half_closed"] = "1s"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    data, how, _ = half_close_and_read(proxy, certs)
    assert how == "close_notify"
    assert data == b"".join(pattern(size))
