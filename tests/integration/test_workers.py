"""Workers and connection limits: connections spread over worker threads,
the drain works with several workers, the per-listener and global
max_connections hold across workers, accept stops before descriptors run
out and backs off on EMFILE instead of spinning, and each pause is logged
once each way."""

import json
import os
import resource
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from tlsterm_harness import (
    write_yaml,
    StreamDigest,
    admin_addr,
    client_context,
    get,
    listener_config,
    text,
    tls_connect,
    tlsterm_config,
    run_tlsterm,
)

MIB = 1 << 20


def with_top(config, **top):
    """with_top adds top-level keys (workers, max_connections) to a config."""
    config.update(top)
    return config


def echo_once(port, certs, payload=b"ping"):
    with tls_connect(port, client_context(certs.ca)) as tls:
        tls.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = tls.recv(len(payload) - len(got))
            assert chunk, "EOF before the echo came back"
            got += chunk
        return got


def test_connections_spread_over_workers(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    proxy = tlsterm_factory(with_top(tlsterm_config([listener_config("edge", echo, certs)]), workers=2))
    [started] = proxy.find("started")
    assert started["workers"] == 2
    port = proxy.port("edge")
    for i in range(40):
        assert echo_once(port, certs, b"hello %d" % i) == b"hello %d" % i
    done = proxy.wait_count("handshake_done", 40)
    # SO_REUSEPORT hashes the 4-tuple: 40 source ports all landing on one
    # worker has a chance of 2^-39.
    assert {e["worker"] for e in done} == {0, 1}, done


def test_drain_with_several_workers(tlsterm_factory, backend_factory, certs):
    size = 2 * MIB
    slow = backend_factory("slow-source", size, MIB)
    proxy = tlsterm_factory(with_top(tlsterm_config([listener_config("edge", slow, certs)]), workers=2))
    port = proxy.port("edge")
    # SO_REUSEPORT hashes the 4-tuple: connections are opened until both
    # workers have some (8 at least, 40 at most: all on one worker has a
    # chance of 2^-39).
    clients = []
    while len(clients) < 40:
        clients.append(tls_connect(port, client_context(certs.ca)))
        done = proxy.wait_count("handshake_done", len(clients))
        if len(clients) >= 8 and {e["worker"] for e in done} == {0, 1}:
            break
    assert {e["worker"] for e in proxy.find("handshake_done")} == {0, 1}
    proxy.send_signal(signal.SIGTERM)
    proxy.wait_for("draining")
    for tls in clients:
        stream = StreamDigest(tls).read()
        tls.close()
        assert stream.matches(size)
    assert proxy.wait_exit() == 0
    closed = proxy.find("conn_closed")
    assert len(closed) == len(clients) and all(e["reason"] == "done" for e in closed), closed
    assert proxy.find("stopped")


def held_connections(port, count):
    """held_connections opens |count| TCP connections that never send a
    ClientHello: each one holds a descriptor in tlsterm."""
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def test_listener_max_connections_across_workers(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    config = with_top(tlsterm_config([listener_config("edge", echo, certs, max_connections=4)]), workers=2)
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    held = [tls_connect(port, client_context(certs.ca)) for _ in range(4)]
    proxy.wait_count("handshake_done", 4)
    # The fifth is queued in the kernel backlog, not served.
    waiting = socket.create_connection(("127.0.0.1", port), timeout=10)
    proxy.wait_for("max_connections")
    assert len(proxy.find("handshake_done")) == 4
    held.pop().close()
    proxy.wait_count("conn_closed", 1)
    ctx = client_context(certs.ca)
    with ctx.wrap_socket(waiting, server_hostname="localhost") as tls:
        tls.sendall(b"late")
        assert tls.recv(4) == b"late"
    for tls in held:
        tls.close()
    proxy.wait_for("accept_resumed")


def test_global_max_connections(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    listeners = [listener_config("a", echo, certs), listener_config("b", echo, certs)]
    proxy = tlsterm_factory(with_top(tlsterm_config(listeners), workers=2, max_connections=3))
    held = [tls_connect(proxy.port("a"), client_context(certs.ca)) for _ in range(2)]
    held.append(tls_connect(proxy.port("b"), client_context(certs.ca)))
    proxy.wait_count("handshake_done", 3)
    waiting = socket.create_connection(("127.0.0.1", proxy.port("b")), timeout=10)
    limit = proxy.wait_for("max_connections")
    assert "global" in limit["msg"], limit
    held.pop(0).close()
    with client_context(certs.ca).wrap_socket(waiting, server_hostname="localhost") as tls:
        tls.sendall(b"ok")
        assert tls.recv(2) == b"ok"
    for tls in held:
        tls.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_emfile_pauses_accept_then_resumes(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    proxy = tlsterm_factory(with_top(tlsterm_config([listener_config("edge", echo, certs)]), workers=1))
    port = proxy.port("edge")
    # Leave tlsterm room for exactly four more descriptors (the soft limit
    # only: lowering the hard one could not be undone without privileges).
    in_use = len(os.listdir(f"/proc/{proxy.pid}/fd"))
    soft, hard = resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (in_use + 4, hard))
    held = held_connections(port, 10)
    paused = proxy.wait_for("accept_paused")
    assert "Too many open files" in paused["msg"], paused
    # Paused, not spinning: well under a tenth of a core over a second.
    before = cpu_seconds(proxy.pid)
    time.sleep(1.0)
    assert cpu_seconds(proxy.pid) - before < 0.1
    assert len(proxy.find("accept_paused")) == 1
    for sock in held:
        sock.close()
    # The held connections end as client_closed; their descriptors free up
    # and the ones still in the backlog are accepted (and end) too.
    proxy.wait_for("accept_resumed")
    proxy.wait_count("handshake_failed", 10)
    resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert echo_once(port, certs, b"after") == b"after"


def test_second_instance_on_same_port_is_refused(tlsterm_factory, backend_factory, certs, tmp_path):
    """SO_REUSEPORT would let a second tlsterm join the first one's socket
    group and silently take half its connections: it must fail instead."""
    echo = backend_factory("echo")
    first = tlsterm_factory(with_top(tlsterm_config([listener_config("edge", echo, certs)]), workers=2))
    port = first.port("edge")
    config = with_top(tlsterm_config([listener_config("edge", echo, certs, listen=(f"127.0.0.1:{port}",))]),
                      workers=2)
    path = write_yaml(tmp_path, config, "second.yaml")
    result = run_tlsterm("-c", str(path))
    stderr = result.stderr.decode() if isinstance(result.stderr, bytes) else result.stderr
    assert result.returncode == 3, stderr
    assert "Address already in use" in stderr
    assert echo_once(port, certs, b"still mine") == b"still mine"


# RLIMIT_NOFILE for the tests below: room for a few dozen connections once the
# reserve (including the admin endpoint's 64 connections) is set aside.
FEW_FDS = 160


def few_fds_proxy(tlsterm_factory, backend_factory, certs):
    """few_fds_proxy starts one worker with an admin endpoint under FEW_FDS
    descriptors."""
    config = with_top(tlsterm_config([listener_config("edge", backend_factory("echo"), certs)]),
                      workers=1)
    config["admin"] = {"listen": "127.0.0.1:0"}
    # Every held connection ends as one handshake_failed line: none may be
    # rate limited away.
    config["log"]["handshake_failures"] = {"burst": 1000}
    return tlsterm_factory(config, nofile=FEW_FDS)


def pauses(proxy):
    return len(proxy.find("accept_paused")), len(proxy.find("accept_resumed"))


def test_out_of_descriptors_is_not_a_backend_failure(tlsterm_factory, backend_factory, certs):
    """More clients than tlsterm has descriptors for at all: those that do
    not fit wait in the backlog rather than being accepted and then failing
    their backend connect. Every one is served, byte for byte."""
    proxy = few_fds_proxy(tlsterm_factory, backend_factory, certs)
    port = proxy.port("edge")
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(FEW_FDS)]
    proxy.wait_for("accept_paused")

    def echo(i):
        payload = os.urandom(16384) + b"client %d" % i
        with client_context(certs.ca).wrap_socket(socks[i], server_hostname="localhost") as tls:
            tls.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = tls.recv(65536)
                assert chunk, f"client {i}: EOF after {len(got)} bytes"
                got += chunk
        return got == payload

    with ThreadPoolExecutor(len(socks)) as pool:
        served = list(pool.map(echo, range(len(socks))))
    proxy.wait_count("conn_closed", len(socks))
    proxy.wait_for("accept_resumed")
    assert not proxy.find("backend_connect_failed"), proxy.find("backend_connect_failed")[:3]
    assert all(served), served
    assert all(e["reason"] == "done" for e in proxy.find("conn_closed"))
    assert not proxy.find("handshake_failed")
    assert pauses(proxy) == (1, 1), proxy.find(predicate=lambda e: "accept" in e["event"])


def test_admin_answers_while_accept_is_paused(tlsterm_factory, backend_factory, certs):
    """Connections that hold all the descriptors they may (never sending a
    ClientHello) leave the reserve alone: /healthz answers while accept is
    paused, the pause is logged once, not at every look, and it ends with
    one accept_resumed once they are gone."""
    proxy = few_fds_proxy(tlsterm_factory, backend_factory, certs)
    port = proxy.port("edge")
    held = held_connections(port, FEW_FDS)
    paused = proxy.wait_for("accept_paused")
    status, body = get(admin_addr(proxy), "/healthz")
    assert status == 200, (status, body)
    time.sleep(0.5)  # ten looks at the limit, none of them logged
    assert pauses(proxy) == (1, 0)
    # Paused by the reserve, not by EMFILE.
    assert "RLIMIT_NOFILE" in paused["msg"], paused
    # max_connections (10000) is far beyond what fits: said at start.
    [warning] = proxy.find("fd_limit")
    assert warning["rlimit_nofile"] == FEW_FDS, warning
    for sock in held:
        sock.close()
    proxy.wait_count("handshake_failed", FEW_FDS)
    proxy.wait_for("accept_resumed")
    assert echo_once(port, certs, b"after") == b"after"
    assert pauses(proxy) == (1, 1), proxy.find(predicate=lambda e: "accept" in e["event"])
    # At most this many were open at once, with a backend socket each.
    [started] = proxy.find("started")
    assert 8 <= started["connection_fds"] < FEW_FDS - 32, started


def fd_limit_warnings(stderr):
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("event") == "fd_limit"]


def test_fd_limit_warning(tmp_path, backend_factory, certs):
    """--check (and a start) warn when max_connections let connections hold
    more descriptors than RLIMIT_NOFILE, whichever bound is lower: the
    global max_connections or the listeners' added up."""
    echo = backend_factory("echo")
    listeners = [listener_config(name, echo, certs, max_connections=40) for name in ("a", "b")]
    cases = [
        # (global max_connections, RLIMIT_NOFILE, which limit binds or None)
        (1000, 1000, None),  # the listeners: 2 x 40 x 2 = 160 descriptors
        (1000, 150, "listeners' max_connections"),
        (30, 150, None),  # the global one: 30 x 2 = 60
        (100, 150, "listeners' max_connections"),  # 200 > 160
        (70, 100, "max_connections"),  # 140 < 160, and > 100
    ]
    for max_connections, nofile, binding in cases:
        path = write_yaml(tmp_path, with_top(tlsterm_config(listeners), max_connections=max_connections))
        result = run_tlsterm("--check", "-c", str(path), nofile=nofile)
        assert result.returncode == 0, text(result)
        warnings = fd_limit_warnings(result.stderr)
        if binding is None:
            assert not warnings, (max_connections, nofile, warnings)
            continue
        [warning] = warnings
        assert warning["limit"] == binding, warning
        assert warning["rlimit_nofile"] == nofile, warning
        assert warning["level"] == "warn", warning
