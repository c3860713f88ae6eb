"""Backend groups: named groups, balancing across workers, connect retries
on the next server, active and passive health, panic routing, the
all-down refusal, /backends and the per-server metrics, state kept across
a reload, a rolling restart under load, and re-resolution of host names.

The backends are group_backend.py processes: each answers every request
with its own name, so a response says which server took it, and
GET /healthz answers the status written in a file the test controls.
"""

import json
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from http_harness import H1Conn
from test_backend import fill_accept_queue

from tlsterm_harness import (
    HERE,
    TIMEOUT,
    TLSTERM_BIN,
    to_yaml,
    Backend,
    addr_text,
    client_context,
    free_port,
    get,
    listener_config,
    parse_addr,
    reload_and_wait,
    samples,
    tls_connect,
    tlsterm_config,
    total,
    wait_until,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class Group:
    """Group starts group_backend.py servers and stops them at teardown."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.backends = []

    def start(self, name, port=0, health=None, host="127.0.0.1", idle=2, extra=()):
        args = ["--port", str(port), "--host", host, "--idle", str(idle), *extra]
        if health is not None:
            path = self.tmp_path / f"{name}.health"
            path.write_text(f"{health}\n")
            args += ["--health-file", str(path)]
        backend = Backend(name, *args, script="group_backend.py")
        self.backends.append(backend)
        backend.start()
        return backend

    def set_health(self, name, status):
        (self.tmp_path / f"{name}.health").write_text(f"{status}\n")

    def close(self):
        for backend in self.backends:
            backend.stop()


@pytest.fixture
def group(tmp_path):
    g = Group(tmp_path)
    yield g
    g.close()


def dead_addr():
    """dead_addr returns a loopback address where nothing listens."""
    return f"127.0.0.1:{free_port()}"


def config_with(listener, backends=None, workers=2, admin=True, level="info"):
    config = tlsterm_config([listener], level=level)
    config["workers"] = workers
    if backends is not None:
        config["backends"] = backends
    if admin:
        config["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    return config


def tcp_listener(certs, backend, connect="2s"):
    listener = listener_config("edge", "127.0.0.1:1", certs, connect=connect)
    listener["backend"] = backend
    return listener


def http_listener(certs, backend, connect="2s"):
    listener = tcp_listener(certs, backend, connect)
    listener["mode"] = "http"
    return listener


def tcp_request(proxy, certs, timeout=10):
    """tcp_request sends one request over a new TLS connection through a
    tcp-mode listener; it returns the backend's name, or None when the
    connection ended without a whole response."""
    data = b""
    try:
        with tls_connect(proxy.port("edge"), client_context(certs.ca), timeout=timeout) as tls:
            tls.sendall(REQUEST)
            while chunk := tls.recv(4096):
                data += chunk
    except (OSError, ssl.SSLError):
        pass
    if not data.startswith(b"HTTP/1.1 200") or b"\r\n\r\n" not in data:
        return None
    return data.split(b"\r\n\r\n", 1)[1].decode().strip() or None


def curl_get(proxy, certs, path="/", timeout=15, host="localhost"):
    """curl_get fetches |path| through an http-mode listener on a new
    connection (to https://|host|); it returns (status, body)."""
    port = proxy.port("edge")
    result = subprocess.run(
        ["curl", "-sS", "--http1.1", "--cacert", str(certs.ca), "--resolve",
         f"localhost:{port}:127.0.0.1", "-o", "-", "-w", "\n%{http_code}",
         f"https://{host}:{port}{path}"],
        capture_output=True, timeout=timeout)
    out = result.stdout.decode()
    body, _, status = out.rpartition("\n")
    return int(status or 0), body.strip()


def admin(proxy):
    return parse_addr(proxy.wait_for("admin_listening")["addr"])


def backends_json(proxy):
    status, body = get(admin(proxy), "/backends")
    assert status == 200
    return json.loads(body)


def server_state(proxy, group_name, address):
    for g in backends_json(proxy):
        if g["name"] == group_name:
            for s in g["servers"]:
                if s["address"] == address:
                    return s
    raise AssertionError(f"{group_name}/{address} not in /backends")


def wait_checks(proxy, group_name, address, count):
    """wait_checks waits until |count| more checks of a server ended."""
    seen = [server_state(proxy, group_name, address)["last_check"]]

    def advanced():
        last = server_state(proxy, group_name, address)["last_check"]
        if last != seen[-1]:
            seen.append(last)
        return len(seen) > count
    wait_until(advanced, what=f"{count} checks of {address}")


# ---- failover ---------------------------------------------------------------


def test_dead_and_live_tcp_mode_all_succeed(tlsterm_factory, certs, group):
    live = group.start("live")
    dead = dead_addr()
    proxy = tlsterm_factory(config_with(tcp_listener(certs, {"servers": [dead, live.addr]})))
    mark = proxy.mark()
    names = [tcp_request(proxy, certs) for _ in range(6)]
    assert names == ["live"] * 6
    # The dead server was tried (round robin reaches it) and counted.
    failed = proxy.wait_for("backend_connect_failed", since=mark)
    assert failed["backend"] == dead and failed["error"] == "Connection refused"
    values = samples(admin(proxy))
    assert total(values, "tlsterm_backend_server_connect_failures_total", server=dead) >= 1
    assert not proxy.find("conn_closed", since=mark, reason="backend_connect_failed")


def test_dead_and_live_http_mode_all_succeed(tlsterm_factory, certs, group):
    live = group.start("live")
    dead = dead_addr()
    proxy = tlsterm_factory(config_with(http_listener(certs, {"servers": [dead, live.addr]})))
    results = [curl_get(proxy, certs) for _ in range(6)]
    assert results == [(200, "live")] * 6
    assert proxy.find("backend_connect_failed", server=dead)


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_connect_timeout_goes_on_to_the_next_server(tlsterm_factory, certs, group, mode):
    full = fill_accept_queue()
    if full is None:
        pytest.skip("could not make a loopback listener that drops SYNs")
    listener_sock, fillers = full
    try:
        live = group.start("live")
        black_hole = addr_text(listener_sock.getsockname())
        make = tcp_listener if mode == "tcp" else http_listener
        proxy = tlsterm_factory(config_with(
            make(certs, {"servers": [black_hole, live.addr]}, connect="300ms"), workers=1))
        mark = proxy.mark()
        if mode == "tcp":
            assert [tcp_request(proxy, certs) for _ in range(4)] == ["live"] * 4
        else:
            assert [curl_get(proxy, certs) for _ in range(4)] == [(200, "live")] * 4
        # One cursor: each request starts at the black hole (even tickets),
        # waits out timeouts.connect, and goes on to the live server.
        timeouts = proxy.find("backend_connect_failed", since=mark)
        assert len(timeouts) == 4 and all(e["error"] == "timeout" for e in timeouts)
        values = samples(admin(proxy))
        assert total(values, "tlsterm_backend_server_connect_failures_total",
                     server=black_hole) == 4
    finally:
        for s in fillers + [listener_sock]:
            s.close()


def test_proxy_header_goes_to_the_server_a_retry_reaches(tlsterm_factory, certs, group):
    live = group.start("live", extra=["--echo-head"])
    dead = dead_addr()
    backend = {"servers": [dead, live.addr], "proxy_protocol": "v1"}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, backend), workers=1))
    mark = proxy.mark()
    for _ in range(2):  # the first starts at the dead server
        with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
            tls.sendall(REQUEST)
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
        body = data.split(b"\r\n\r\n", 1)[1].decode()
        assert body.startswith("live\nPROXY TCP4 127.0.0.1 127.0.0.1 "), body
    assert proxy.find("backend_connect_failed", since=mark, backend=dead)


def read_head(sock, buf=b""):
    """read_head reads from |sock| after |buf| until a request head is
    complete: (the head, the bytes after it), or (None, b"") at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


class FakeServer:
    """FakeServer is a loopback listener whose accept loop hands each
    connection to accepted(); subclasses set their state before calling
    __init__, which starts the loop."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = addr_text(self.listener.getsockname())
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted(sock)


class RestartingServer(FakeServer):
    """RestartingServer is a server in the middle of a restart, on cue:
    it answers "a" (keep-alive) until stop_listening(), which closes its
    listener, so that connects to it are refused, while the connections it
    has stay open; a request that then arrives on one of those is read and
    its connection closed unanswered, as a server going away does."""

    def __init__(self):
        self.listening = True
        self.dropped = threading.Event()
        self.socks = []
        super().__init__()

    def accepted(self, sock):
        self.socks.append(sock)
        threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        buf = b""
        try:
            while True:
                head, buf = read_head(sock, buf)
                if head is None:
                    return
                if not self.listening:
                    self.dropped.set()
                    return
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na\n")
        except OSError:
            return
        finally:
            sock.close()

    def stop_listening(self):
        self.listening = False
        # shutdown, not just close: it wakes the blocked accept and stops
        # the listening at once (a close alone leaves it to the accept).
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def close(self):
        self.stop_listening()
        for sock in self.socks:
            sock.close()


def test_retry_after_a_stale_connection_goes_on_to_the_next_server(tlsterm_factory, certs,
                                                                    group):
    """A rolling restart in http mode: a request takes a pooled connection
    to a that a has given up on; sent again (GET), its connect to a is
    refused, and it goes on to b instead of failing with 502."""
    a = RestartingServer()
    try:
        b = group.start("b", idle=30)
        proxy = tlsterm_factory(config_with(http_listener(certs, {"servers": [a.addr, b.addr]}),
                                            workers=1))
        # One cursor: a, b, a. The first leaves its connection to a pooled.
        assert curl_get(proxy, certs) == (200, "a")
        a.stop_listening()
        assert curl_get(proxy, certs) == (200, "b")
        mark = proxy.mark()
        assert curl_get(proxy, certs) == (200, "b")
        assert a.dropped.is_set()
        failed = proxy.wait_for("backend_connect_failed", since=mark, server=a.addr)
        assert failed["error"] == "Connection refused", failed
    finally:
        a.close()


class ResettingServer(FakeServer):
    """ResettingServer accepts, reads a request head and resets the
    connection (SO_LINGER 0) without a response byte: what a server that
    closes its listener with connections still in its accept queue (a
    graceful stop) or crashes does to a request just sent."""

    def __init__(self):
        self.requests = []
        super().__init__()

    def accepted(self, sock):
        with sock:
            head, _ = read_head(sock)
            self.requests.append((head or b"").split(b"\r\n", 1)[0])
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self):
        self.listener.close()


@pytest.mark.parametrize("method,status", [("GET", 200), ("POST", 502)])
def test_reset_new_connection_goes_on_to_the_next_server(tlsterm_factory, certs, group,
                                                         method, status):
    """A new connection reset after the request went out, before any
    response byte: an idempotent request goes on to the next server (as
    nginx's proxy_next_upstream does), a POST is answered 502, since the
    server may have acted on it."""
    a = ResettingServer()
    try:
        b = group.start("b")
        proxy = tlsterm_factory(config_with(http_listener(certs, {"servers": [a.addr, b.addr]}),
                                            workers=1))
        mark = proxy.mark()
        # One cursor: the first request goes to a.
        result = subprocess.run(
            ["curl", "-sS", "--http1.1", "--cacert", str(certs.ca), "-X", method, "--resolve",
             f"localhost:{proxy.port('edge')}:127.0.0.1", "-o", "-", "-w", "\n%{http_code}",
             f"https://localhost:{proxy.port('edge')}/x"],
            capture_output=True, timeout=TIMEOUT)
        body, _, code = result.stdout.decode().rpartition("\n")
        assert int(code) == status, (code, body, result.stderr)
        assert a.requests == [f"{method} /x HTTP/1.1".encode()], a.requests
        line = proxy.wait_for("backend_reset", since=mark, server=a.addr)
        access = proxy.wait_for("request", since=mark)
        if status == 200:
            assert body.strip() == "b"
            assert line["resent_to"] == b.addr, line
            assert access["status"] == 200 and access["reused"] is False, access
        else:
            assert "resent_to" not in line, line
            assert (access["status"], access["reason"]) == (502, "backend_reset"), access
    finally:
        a.close()


def test_reset_new_connection_without_retries_is_502(tlsterm_factory, certs, group):
    a = ResettingServer()
    try:
        b = group.start("b")
        proxy = tlsterm_factory(config_with(
            http_listener(certs, {"servers": [a.addr, b.addr], "retries": 0}), workers=1))
        mark = proxy.mark()
        assert curl_get(proxy, certs)[0] == 502
        line = proxy.wait_for("backend_reset", since=mark, server=a.addr)
        assert "resent_to" not in line, line
    finally:
        a.close()


def test_routes_must_agree_on_proxy_protocol(tmp_path, certs):
    listener = tcp_listener(certs, {"servers": ["127.0.0.1:1"]})
    listener["routes"] = [{"sni": "a.test",
                           "backend": {"servers": ["127.0.0.1:2"], "proxy_protocol": "v2"}}]
    path = tmp_path / "bad.yaml"
    path.write_text(to_yaml(config_with(listener, admin=False)))
    result = subprocess.run([TLSTERM_BIN, "--check", "-c", str(path)], capture_output=True,
                            timeout=TIMEOUT)
    assert result.returncode == 1
    assert "group 'edge.route1' differs from the listener's backend 'edge' in source or " \
        "proxy_protocol" in result.stderr.decode()


def test_retries_zero_fails_over_nothing(tlsterm_factory, certs, group):
    live = group.start("live")
    dead = dead_addr()
    proxy = tlsterm_factory(config_with(
        http_listener(certs, {"servers": [dead, live.addr], "retries": 0}), workers=1))
    statuses = [curl_get(proxy, certs)[0] for _ in range(4)]
    # One cursor, no retry: dead, live, dead, live.
    assert sorted(statuses) == [200, 200, 502, 502]


# ---- balancing ---------------------------------------------------------------


def test_weights_hold_across_workers(tlsterm_factory, certs, group):
    a = group.start("a")
    b = group.start("b")
    backend = {"servers": [{"address": a.addr}, {"address": b.addr, "weight": 3}]}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, backend), workers=2))
    names = [tcp_request(proxy, certs) for _ in range(40)]
    assert names.count("a") == 10 and names.count("b") == 30, names


def test_least_conn_avoids_the_busy_server(tlsterm_factory, certs, group):
    a = group.start("a", idle=30)
    b = group.start("b", idle=30)
    backend = {"servers": [a.addr, b.addr], "balance": "least_conn"}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, backend)))
    held = tls_connect(proxy.port("edge"), client_context(certs.ca))
    held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: stays open
    busy = held.recv(4096).split(b"\r\n\r\n", 1)[1].decode().strip()
    try:
        names = [tcp_request(proxy, certs) for _ in range(5)]
        other = "b" if busy == "a" else "a"
        assert names == [other] * 5
    finally:
        held.close()


def test_random_two_uses_both(tlsterm_factory, certs, group):
    a = group.start("a")
    b = group.start("b")
    backend = {"servers": [a.addr, b.addr], "balance": "random_two"}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, backend)))
    names = [tcp_request(proxy, certs) for _ in range(20)]
    assert set(names) <= {"a", "b"} and None not in names


def test_backup_only_when_primaries_are_down(tlsterm_factory, certs, group):
    a = group.start("a")
    spare = group.start("spare")
    backend = {"servers": [{"address": a.addr}, {"address": spare.addr, "backup": True}]}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, backend)))
    assert [tcp_request(proxy, certs) for _ in range(4)] == ["a"] * 4
    a.stop()
    assert [tcp_request(proxy, certs) for _ in range(4)] == ["spare"] * 4


# ---- health ---------------------------------------------------------------------


CHECK = {"type": "http", "path": "/healthz", "interval": "100ms", "timeout": "90ms", "rise": 2,
         "fall": 2, "expect": "200-399"}


def test_active_http_check_down_and_up(tlsterm_factory, certs, group):
    a = group.start("a", health=200)
    b = group.start("b", health=200)
    backends = {"app": {"servers": [a.addr, b.addr], "health": {"check": CHECK}}}
    proxy = tlsterm_factory(config_with(http_listener(certs, "app"), backends))
    mark = proxy.mark()
    group.set_health("a", 500)
    down = proxy.wait_for("backend_server_down", since=mark, server=a.addr)
    assert down["backend"] == "app"
    assert down["cause"] == "check failed 2 times: http status 500"
    state = server_state(proxy, "app", a.addr)
    assert state["state"] == "down" and state["reason"].startswith("check failed")
    assert isinstance(state["last_check"], float)
    values = samples(admin(proxy))
    assert total(values, "tlsterm_backend_server_up", backend="app", server=a.addr) == 0
    assert total(values, "tlsterm_backend_server_up", backend="app", server=b.addr) == 1
    assert [curl_get(proxy, certs)[1] for _ in range(4)] == ["b"] * 4
    mark = proxy.mark()
    group.set_health("a", 200)
    up = proxy.wait_for("backend_server_up", since=mark, server=a.addr)
    assert up["cause"] == "check passed 2 times: http status 200"
    # Once per transition: no second line while it stays up, over three
    # more checks.
    wait_checks(proxy, "app", a.addr, 3)
    assert len(proxy.find("backend_server_up", since=mark, server=a.addr)) == 1
    assert server_state(proxy, "app", a.addr)["state"] == "up"
    assert sorted(curl_get(proxy, certs)[1] for _ in range(4)) == ["a", "a", "b", "b"]


def test_tcp_check_marks_a_stopped_server_down(tlsterm_factory, certs, group):
    a = group.start("a")
    b = group.start("b")
    check = {"type": "tcp", "interval": "100ms", "timeout": "90ms", "fall": 1, "rise": 1}
    backends = {"app": {"servers": [a.addr, b.addr], "health": {"check": check}}}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, "app"), backends))
    mark = proxy.mark()
    a.stop()
    down = proxy.wait_for("backend_server_down", since=mark, server=a.addr)
    # A check connected while the server stopped is reset instead.
    assert down["cause"].startswith(("check failed 1 times: connect: Connection refused",
                                     "check failed 1 times: connect: Connection reset by peer")), down
    mark = proxy.mark()
    assert [tcp_request(proxy, certs) for _ in range(4)] == ["b"] * 4
    assert not proxy.find("backend_connect_failed", since=mark)


def test_passive_failures_and_cooldown(tlsterm_factory, certs, group):
    live = group.start("live")
    dead = dead_addr()
    backend = {"servers": [dead, live.addr],
               "health": {"passive": {"failures": 2, "cooldown": "1s"}}}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, backend), workers=1))
    mark = proxy.mark()
    assert [tcp_request(proxy, certs) for _ in range(4)] == ["live"] * 4
    down = proxy.wait_for("backend_server_down", since=mark, server=dead)
    assert down["cause"].startswith("passive: 2 connect failures in a row")
    # In its cooldown it is not tried at all.
    tried = len(proxy.find("backend_connect_failed", since=mark))
    assert tried == 2
    assert [tcp_request(proxy, certs) for _ in range(4)] == ["live"] * 4
    assert len(proxy.find("backend_connect_failed", since=mark)) == tried
    assert server_state(proxy, backend_name(proxy), dead)["state"] == "cooldown"
    up = proxy.wait_for("backend_server_up", since=mark, server=dead, timeout=10)
    assert up["cause"] == "passive cooldown over"


def test_passive_and_active_say_down_and_up_once(tlsterm_factory, certs, group):
    """A server both detectors take out (a connect failure and the tcp
    checks) gets one backend_server_down, whichever comes first, and one
    backend_server_up once both have it back: no "passive cooldown over"
    while its checks still fail."""
    a = group.start("a")
    b = group.start("b")
    port = a.port
    check = {"type": "tcp", "interval": "100ms", "timeout": "90ms", "fall": 2, "rise": 1}
    backend = {"servers": [a.addr, b.addr],
               "health": {"check": check, "passive": {"failures": 1, "cooldown": "2s"}}}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, backend), workers=1))
    name = backend_name(proxy)
    wait_checks(proxy, name, a.addr, 1)
    mark = proxy.mark()
    a.stop()
    # Requests until one was tried on the stopped server (passive), unless
    # the checks took it out first; then the checks (active) do too.
    for _ in range(8):
        assert tcp_request(proxy, certs) == "b"
        if proxy.find("backend_connect_failed", since=mark, backend=a.addr):
            break
    wait_until(lambda: server_state(proxy, name, a.addr)["state"] == "down",
               what="the checks to take a out")
    both = bool(proxy.find("backend_connect_failed", since=mark, backend=a.addr))
    # 30 more checks: past the 2 s cooldown, with the checks still failing.
    wait_checks(proxy, name, a.addr, 30)
    downs = proxy.find("backend_server_down", since=mark, server=a.addr)
    assert len(downs) == 1, downs
    assert not proxy.find("backend_server_up", since=mark, server=a.addr)
    group.start("a", port=port)
    up = proxy.wait_for("backend_server_up", since=mark, server=a.addr)
    assert up["cause"].startswith("check passed 1 times"), up
    wait_checks(proxy, name, a.addr, 3)
    assert len(proxy.find("backend_server_up", since=mark, server=a.addr)) == 1
    assert server_state(proxy, name, a.addr)["state"] == "up"
    # Round-robin over two servers tries the stopped one within two
    # requests: both detectors took part.
    assert both


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_panic_takes_a_cooling_server_back(tlsterm_factory, certs, group, mode):
    """A group of one with passive checks: a failed connect puts the server
    in a 30s cooldown; restarted at once, it serves the next request (panic
    routing takes a cooling server when no other is left) instead of every
    client failing until the cooldown ends."""
    a = group.start("a")
    port = a.port
    backend = {"servers": [a.addr], "health": {"passive": {"failures": 1, "cooldown": "30s"}}}
    listener = (tcp_listener if mode == "tcp" else http_listener)(certs, backend)
    proxy = tlsterm_factory(config_with(listener, workers=1))

    def request():
        """The server's name, or None (tcp) or the status (http) on failure."""
        if mode == "tcp":
            return tcp_request(proxy, certs)
        status, body = curl_get(proxy, certs)
        return body if status == 200 else status

    assert request() == "a"
    a.stop()
    mark = proxy.mark()
    assert request() == (None if mode == "tcp" else 502)
    down = proxy.wait_for("backend_server_down", since=mark, server=a.addr)
    assert down["cause"].startswith("passive: 1 connect failures in a row")
    group.start("a", port=port)
    assert server_state(proxy, backend_name(proxy), a.addr)["state"] == "cooldown"
    assert request() == "a"


def backend_name(proxy):
    return backends_json(proxy)[0]["name"]


def test_panic_routing_when_checks_fail_everywhere(tlsterm_factory, certs, group):
    a = group.start("a", health=500)
    b = group.start("b", health=500)
    backends = {"app": {"servers": [a.addr, b.addr], "health": {"check": CHECK}}}
    proxy = tlsterm_factory(config_with(http_listener(certs, "app"), backends))
    proxy.wait_for("backend_server_down", server=a.addr)
    proxy.wait_for("backend_server_down", server=b.addr)
    # A broken /healthz does not take the site down.
    assert sorted(curl_get(proxy, certs)[1] for _ in range(4)) == ["a", "a", "b", "b"]


def test_all_down_without_panic_tcp_refused_at_once(tlsterm_factory, certs, group):
    a = group.start("a", health=500)
    backends = {"app": {"servers": [a.addr],
                        "health": {"check": CHECK, "panic": False}}}
    proxy = tlsterm_factory(config_with(tcp_listener(certs, "app", connect="5s"), backends,
                                        level="debug"))
    proxy.wait_for("backend_server_down", server=a.addr)
    mark = proxy.mark()
    start = time.monotonic()
    assert tcp_request(proxy, certs) is None
    assert time.monotonic() - start < 2
    closed = proxy.wait_for("conn_closed", since=mark)
    assert closed["reason"] == "backend_unavailable"
    assert proxy.find("backend_unavailable", since=mark)
    assert not proxy.find("backend_connect_failed", since=mark)


def test_all_down_without_panic_http_503(tlsterm_factory, certs, group):
    a = group.start("a", health=500)
    backends = {"app": {"servers": [a.addr],
                        "health": {"check": CHECK, "panic": False}}}
    proxy = tlsterm_factory(config_with(http_listener(certs, "app"), backends))
    proxy.wait_for("backend_server_down", server=a.addr)
    assert curl_get(proxy, certs)[0] == 503


def test_all_down_http_lines_are_rate_limited(tlsterm_factory, certs, group):
    """Every request meets backend_unavailable while the group is down: its
    lines take the worker's handshake_failures limits (a burst of 2 and 1/s,
    the rest counted in a summary line), as tcp mode's do; every request is
    answered 503."""
    a = group.start("a", health=500)
    backends = {"app": {"servers": [a.addr], "health": {"check": CHECK, "panic": False}}}
    config = config_with(http_listener(certs, "app"), backends, workers=1)
    config["log"]["handshake_failures"] = {"rate": 1, "burst": 2, "summary_interval": "1s"}
    proxy = tlsterm_factory(config)
    proxy.wait_for("backend_server_down", server=a.addr)
    mark = proxy.mark()
    started = time.monotonic()
    statuses = []
    conn = None
    try:
        for _ in range(50):  # keep-alive, with a new connection if one is closed
            conn = conn or H1Conn(proxy.port("edge"), certs)
            response = conn.request("GET", "/")
            statuses.append(response.status)
            if (response.header("connection") or "").lower() == "close":
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
    elapsed = time.monotonic() - started
    assert statuses == [503] * 50, statuses

    def accounted():
        shown = len(proxy.find("backend_unavailable", since=mark))
        dropped = sum(e["count"] for e in proxy.find("handshake_failures_suppressed", since=mark,
                                                     reason="backend_unavailable"))
        return shown + dropped == 50 and shown

    shown = wait_until(accounted, what="every refusal shown or summed up")
    assert 2 <= shown <= 2 + int(elapsed) + 1 < 50, (shown, elapsed)


def test_down_state_survives_a_reload(tlsterm_factory, certs, group):
    a = group.start("a", health=500)
    b = group.start("b", health=200)
    slow_check = dict(CHECK, interval="20s", timeout="1s", fall=1)
    backends = {"app": {"servers": [a.addr, b.addr], "health": {"check": slow_check}}}
    proxy = tlsterm_factory(config_with(http_listener(certs, "app"), backends))
    proxy.wait_for("backend_server_down", server=a.addr)
    before = server_state(proxy, "app", a.addr)["last_check"]
    mark = proxy.mark()
    reload_and_wait(proxy)
    # No fresh check (the next is 20s away), and still down.
    state = server_state(proxy, "app", a.addr)
    assert state["state"] == "down" and state["last_check"] == before
    assert [curl_get(proxy, certs)[1] for _ in range(3)] == ["b"] * 3
    assert not proxy.find("backend_server_up", since=mark)


# ---- rolling restart -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_rolling_restart_under_load(tlsterm_factory, certs, group, mode):
    a = group.start("a", health=200, idle=1)
    b = group.start("b", health=200, idle=1)
    check = dict(CHECK, fall=1, rise=1)
    backends = {"app": {"servers": [a.addr, b.addr], "health": {"check": check}}}
    listener = (tcp_listener if mode == "tcp" else http_listener)(certs, "app")
    proxy = tlsterm_factory(config_with(listener, backends))
    request = (lambda: tcp_request(proxy, certs)) if mode == "tcp" else \
        (lambda: curl_get(proxy, certs)[1] or None)
    failures, seen = 0, []
    for server, name in ((a, "a"), (b, "b")):
        port = server.port
        server.stop()  # SIGTERM: graceful
        for _ in range(15):  # bounded: N requests while it is away
            got = request()
            failures += got is None
            seen.append(got)
        restarted = group.start(name, port=port, health=200, idle=1)
        wait_until(lambda: server_state(proxy, "app", restarted.addr)["state"] == "up",
                   what=f"{name} back up")
        for _ in range(10):
            got = request()
            failures += got is None
            seen.append(got)
    assert failures == 0, seen
    assert "a" in seen and "b" in seen


# ---- routes -------------------------------------------------------------------------


def test_routes_by_sni_in_tcp_mode(tlsterm_factory, certs, group):
    a, b, c = group.start("a"), group.start("b"), group.start("c")
    listener = tcp_listener(certs, "c")
    listener["routes"] = [{"sni": "*.b.test", "backend": "b"},
                          {"sni": "a.test", "backend": {"servers": [a.addr]}}]
    backends = {"b": {"servers": [b.addr]}, "c": {"servers": [c.addr]}}
    proxy = tlsterm_factory(config_with(listener, backends))

    def via(sni):
        ctx = client_context(certs.ca)
        ctx.check_hostname = False  # the certificate is localhost's
        with tls_connect(proxy.port("edge"), ctx, server_hostname=sni) as tls:
            tls.sendall(REQUEST)
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode().strip()

    assert [via("a.test"), via("x.b.test"), via("y.x.b.test"), via("b.test"), via("other")] == \
        ["a", "b", "b", "c", "c"]
    names = {g["name"] for g in backends_json(proxy)}
    assert {"b", "c", "edge.route2"} <= names


def test_routes_by_host_and_path_in_http_mode(tlsterm_factory, certs, group):
    site, api, ip = group.start("site"), group.start("api"), group.start("ip")
    listener = http_listener(certs, "site")
    listener["routes"] = [{"host": "127.0.0.1", "backend": {"servers": [ip.addr]}},
                          {"path_prefix": "/api/", "backend": "api"}]
    backends = {"site": {"servers": [site.addr]}, "api": {"servers": [api.addr]}}
    proxy = tlsterm_factory(config_with(listener, backends))
    assert curl_get(proxy, certs, "/") == (200, "site")
    assert curl_get(proxy, certs, "/api/v1") == (200, "api")
    assert curl_get(proxy, certs, "/api/v1", host="127.0.0.1") == (200, "ip")
    assert curl_get(proxy, certs, "/apiv1") == (200, "site")


def test_check_prints_the_route_table(tmp_path, certs):
    listener = tcp_listener(certs, "c")
    listener["routes"] = [{"sni": "*.b.test", "backend": "b"}]
    config = config_with(listener, {"b": {"servers": ["127.0.0.1:2"]},
                                    "c": {"servers": ["127.0.0.1:3"]}}, admin=False)
    path = tmp_path / "routes.yaml"
    path.write_text(to_yaml(config))
    result = subprocess.run([TLSTERM_BIN, "--check", "-c", str(path)], capture_output=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "  route 1: sni *.b.test -> b\n" in out
    assert "  route default: -> c\n" in out


# ---- re-resolution ---------------------------------------------------------------

NETNS_SCRIPT = HERE / "netns_resolve.py"


def test_re_resolution_through_hosts_file(tmp_path, certs):
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is needed")
    ns = f"tlsterm-grp-{int(time.time() * 1000) % 1000000}"
    hosts_dir = Path("/etc/netns") / ns
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.decode().strip()}")
    try:
        hosts_dir.mkdir(parents=True, exist_ok=True)
        (hosts_dir / "hosts").write_text("127.0.0.1 localhost\n127.0.0.2 app.test\n")
        result = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, str(NETNS_SCRIPT), str(certs.ca.parent),
             str(tmp_path), str(hosts_dir / "hosts")],
            capture_output=True, timeout=120, env=None)
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()[-4000:]
        verdict = json.loads(result.stdout.decode().strip().splitlines()[-1])
        assert verdict["before"] == ["first"] * 3
        assert verdict["after"] == ["second"] * 3
        assert verdict["both_servers"] == 2
        assert verdict["both"] == ["first", "first", "second", "second"]
        # A failed resolution keeps the last addresses; so does a reload.
        assert verdict["resolve_failed"]
        assert verdict["kept"] == ["first", "first", "second", "second"]
        assert verdict["reloaded"]
        assert verdict["after_reload"] == ["first", "first", "second", "second"]
        # A name new at a reload is resolved by the resolver thread, not by
        # the reload: none yet while it does not resolve (tcp mode refuses
        # the client), then its server once it does.
        assert verdict["new_reloaded"]
        assert verdict["new_kept"] == "none yet"
        assert verdict["new_unresolved"] is None
        assert verdict["new_servers"] == 1
        assert verdict["new_resolved"] == ["second", "second"]
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        shutil.rmtree(hosts_dir, ignore_errors=True)
