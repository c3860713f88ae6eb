"""backend.source: client: backend connections come from the client's own
address (IP_TRANSPARENT), so the backend sees who connected.

The proxy must sit on the backend's route back to the client, which a single
host's loopback cannot show: the tests build three network namespaces of
their own (client, proxy, backend) joined by two veth pairs, with IPv4 and
IPv6 addresses on each, the backend's default routes via the proxy, and in
the proxy's namespace the policy routing that hands the backend's replies
(addressed to the client) to the transparent socket: a rule for what arrives
on the veth toward the backend, and a local route for every address in its
table. No iptables, no forwarding: tlsterm terminates the client's
connection. This is the recipe README gives.

They need root and `ip netns` (iproute2), and skip, saying why, when a
namespace cannot be made. The failure paths (a unix server, a family with no
server, a missing capability, at start and at reload) and the capability
kept across `user:` are tested here too.
"""

import itertools
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from http_harness import HttpBackend
from tlsterm_harness import (
    TIMEOUT,
    Tlsterm,
    listener_config,
    TLSTERM_BIN,
    run,
    run_tlsterm,
    sanitizer_env,
    text,
    tlsterm_config,
    wait_until,
    write_yaml,
)

# Addresses: client <-> proxy on net 1, proxy <-> backend on net 2.
CLIENT4, PROXY4_FRONT, PROXY4_BACK, BACKEND4 = "10.77.1.2", "10.77.1.1", "10.77.2.1", "10.77.2.2"
CLIENT6, PROXY6_FRONT, PROXY6_BACK, BACKEND6 = "fd77:1::2", "fd77:1::1", "fd77:2::1", "fd77:2::2"

# Only CAP_NET_ADMIN (bit 12) in a /proc status capability mask.
NET_ADMIN_MASK = 1 << 12

_names = itertools.count()


class Topology:
    """Topology is the three namespaces and their links; names are unique
    per test run. remove() deletes them (the veths go with them)."""

    def __init__(self):
        tag = f"tlst-{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:6]}"
        self.client, self.proxy, self.backend = (f"{tag}-{role}" for role in ("c", "p", "b"))
        self.made = []

    def ip(self, *args, ns=None):
        cmd = ["ip", *(["-n", ns] if ns else []), *args]
        done = run(cmd)
        assert done.returncode == 0, f"{' '.join(cmd)}\n{text(done)}"

    def exec_in(self, ns):
        """exec_in returns the argv prefix that runs a command in |ns|."""
        return ["ip", "netns", "exec", ns]

    def build(self):
        for ns in (self.client, self.proxy, self.backend):
            done = run(["ip", "netns", "add", ns])
            if done.returncode != 0:
                if not self.made:
                    pytest.skip(f"cannot create a network namespace: {text(done)}")
                raise AssertionError(text(done))
            self.made.append(ns)
            self.ip("link", "set", "lo", "up", ns=ns)
        # Each veth is created with its ends already in their namespaces, so
        # no interface name is ever taken in the test's own namespace.
        self.ip("link", "add", "c0", "netns", self.client, "type", "veth",
                "peer", "name", "p0", "netns", self.proxy)
        self.ip("link", "add", "p1", "netns", self.proxy, "type", "veth",
                "peer", "name", "b0", "netns", self.backend)
        for ns, dev, v4, v6 in (
            (self.client, "c0", CLIENT4, CLIENT6),
            (self.proxy, "p0", PROXY4_FRONT, PROXY6_FRONT),
            (self.proxy, "p1", PROXY4_BACK, PROXY6_BACK),
            (self.backend, "b0", BACKEND4, BACKEND6),
        ):
            self.ip("addr", "add", f"{v4}/24", "dev", dev, ns=ns)
            # nodad: usable at once, no duplicate address detection to wait for.
            self.ip("-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad", ns=ns)
            self.ip("link", "set", dev, "up", ns=ns)
        # The backend answers every address through the proxy.
        self.ip("route", "add", "default", "via", PROXY4_BACK, ns=self.backend)
        self.ip("-6", "route", "add", "default", "via", PROXY6_BACK, ns=self.backend)
        # What the backend sends back arrives at the proxy addressed to the
        # client: delivered locally, to the transparent socket.
        for family, anywhere in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
            self.ip(family, "rule", "add", "iif", "p1", "lookup", "100", ns=self.proxy)
            self.ip(family, "route", "add", "local", anywhere, "dev", "lo", "table", "100",
                    ns=self.proxy)
        return self

    def remove(self):
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=TIMEOUT)
        self.made = []


@pytest.fixture(scope="module")
def topology():
    if os.geteuid() != 0:
        pytest.skip("needs root: it creates network namespaces")
    topo = Topology()
    try:
        yield topo.build()
    finally:
        topo.remove()


@pytest.fixture(scope="module")
def backends(topology):
    """One http_backend.py per family in the backend's namespace; /headers
    answers with the peer address it sees."""
    started = []
    try:
        for host in (BACKEND4, BACKEND6):
            backend = HttpBackend("--host", host)
            backend.argv = [*topology.exec_in(topology.backend), *backend.argv]
            started.append(backend.start())
        yield {"4": started[0], "6": started[1]}
    finally:
        for backend in started:
            backend.stop()


def server_addrs(backends):
    return [f"{BACKEND4}:{backends['4'].port}", f"[{BACKEND6}]:{backends['6'].port}"]


def transparent_listener(certs, servers, mode="tcp", listen=None):
    listener = listener_config(
        "edge", servers, certs,
        listen=listen or (f"{PROXY4_FRONT}:0", f"[{PROXY6_FRONT}]:0"))
    listener["backend"]["source"] = "client"
    if mode != "tcp":
        listener["mode"] = mode
    return listener


@pytest.fixture
def start_proxy(tmp_path, topology):
    """start_proxy(config, workdir=None) runs tlsterm in the proxy's
    namespace, its configuration in |workdir| (default: tmp_path)."""
    started = []

    def start(config, workdir=None):
        proxy = Tlsterm(workdir or tmp_path, config, prefix=topology.exec_in(topology.proxy))
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.finish()


def client_get(topology, certs, proxy, family, path="/headers", *args):
    """client_get fetches https://localhost/|path| with curl from the
    client's namespace through |proxy|'s |family| ("4" or "6") address and
    returns the parsed JSON body."""
    front = PROXY4_FRONT if family == "4" else PROXY6_FRONT
    port = proxy.port("edge", host=front)
    host = front if family == "4" else f"[{front}]"
    done = run([
        *topology.exec_in(topology.client), "curl", "-sS", "--max-time", str(int(TIMEOUT)),
        "--cacert", certs.ca, "--resolve", f"localhost:{port}:{host}", *args,
        f"https://localhost:{port}{path}",
    ], timeout=TIMEOUT + 5)
    assert done.returncode == 0, text(done) + "\n" + proxy.dump()
    return json.loads(done.stdout)


def peer_host(peer):
    return peer.rsplit(":", 1)[0]


# ---- the backend sees the client's address ------------------------------------


@pytest.mark.parametrize("mode", ["tcp", "http"])
@pytest.mark.parametrize("family", ["4", "6"])
def test_backend_sees_client_address(topology, backends, certs, start_proxy, mode, family):
    proxy = start_proxy(tlsterm_config([
        transparent_listener(certs, server_addrs(backends), mode=mode)]))
    answer = client_get(topology, certs, proxy, family, "/headers", "--http1.1")
    client = CLIENT4 if family == "4" else CLIENT6
    # Not the proxy's address toward the backend: the client's own.
    assert peer_host(answer["peer"]) == client, answer


def test_http_connections_not_shared_between_clients(topology, backends, certs, start_proxy):
    """Two client connections, one after the other: with source: proxy the
    second would reuse the first one's idle backend connection; here the
    first one's serves only its own client connection's requests and is
    closed when that ends, and the second gets its own, from its own
    address."""
    listener = transparent_listener(certs, server_addrs(backends), mode="http")
    # A pooled connection would stay open for a minute: long past the wait.
    listener["backend"]["pool"] = {"idle_timeout": "60s"}
    proxy = start_proxy(tlsterm_config([listener]))
    backend = backends["4"]
    since = backend.mark()
    # Two requests on one client connection: the second reuses the backend
    # connection its own client connection opened (kept for it alone).
    port = proxy.port("edge", host=PROXY4_FRONT)
    url = f"https://localhost:{port}/headers"
    done = run([*topology.exec_in(topology.client), "curl", "-sS", "--http2", "--max-time",
                str(int(TIMEOUT)), "--cacert", certs.ca, "--resolve",
                f"localhost:{port}:{PROXY4_FRONT}", "-w", "\n@@\n", url, url],
               timeout=TIMEOUT + 5)
    assert done.returncode == 0, text(done) + "\n" + proxy.dump()
    first, again = [json.loads(b) for b in done.stdout.split(b"\n@@\n") if b.strip()]
    assert again["conn"] == first["conn"] and (first["n"], again["n"]) == (1, 2)
    # Closed by tlsterm once its client connection ended, idle after its two
    # requests: not kept for anyone else.
    backend.wait_for("close", timeout=10, since=since, conn=first["conn"], requests=2,
                     state="idle")
    second = client_get(topology, certs, proxy, "4", "/headers", "--http1.1")
    assert second["conn"] != first["conn"]
    assert second["n"] == 1
    assert peer_host(first["peer"]) == peer_host(second["peer"]) == CLIENT4
    assert first["peer"] != second["peer"]  # each its own port


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_no_port_left_is_a_connect_failure(topology, backends, certs, start_proxy, mode):
    """A backend socket the kernel refuses at open time (here: connect()
    finds no free port for the client's address, as the proxy's namespace
    has a single ephemeral port and a first connection holds it) fails like
    any connect: logged with its error, the client told (tcp: closed
    without a byte; http: 502), and tlsterm goes on."""
    listener = transparent_listener(certs, [f"{BACKEND4}:{backends['4'].port}"], mode=mode,
                                    listen=(f"{PROXY4_FRONT}:0",))
    proxy = start_proxy(tlsterm_config([listener]))
    port = proxy.port("edge", host=PROXY4_FRONT)
    # Set once the listening port is chosen (from the same range), and not
    # to that port, nor to one an earlier case left in TIME_WAIT.
    sysctl = [*topology.exec_in(topology.proxy), "sysctl", "-n"]
    saved = run([*sysctl, "net.ipv4.ip_local_port_range"]).stdout.decode().split()
    only = {"tcp": 41000, "http": 42000}[mode]
    only += only == port
    run([*sysctl, "-w", f"net.ipv4.ip_local_port_range={only} {only}"])
    try:
        curl = [*topology.exec_in(topology.client), "curl", "-sS", "--max-time", "20",
                "--http1.1", "--cacert", str(certs.ca), "--resolve",
                f"localhost:{port}:{PROXY4_FRONT}", "-o", "/dev/null", "-w", "%{http_code}"]
        since = backends["4"].mark()
        holder = subprocess.Popen([*curl, f"https://localhost:{port}/slow/3"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            backends["4"].wait_for("request", since=since, path="/slow/3")
            done = run([*curl, f"https://localhost:{port}/headers"])
            failed = proxy.wait_for("backend_connect_failed")
            assert failed["error"] == "Cannot assign requested address", failed
            if mode == "http":
                assert done.stdout == b"502", text(done)
            else:
                assert done.returncode != 0 and done.stdout == b"000", text(done)
            out, _ = holder.communicate(timeout=TIMEOUT)
            assert out == b"200"
        finally:
            holder.kill()
            holder.wait()
    finally:
        run([*sysctl, "-w", f"net.ipv4.ip_local_port_range={saved[0]} {saved[1]}"])


def test_kept_capability_with_user(topology, backends, certs, start_proxy, nobody_dir):
    """With user: and a listener that uses source: client, the running
    process keeps CAP_NET_ADMIN and nothing else, on every thread; its
    worker threads can still open transparent sockets, and a reload that
    keeps source: client goes through."""
    listener = transparent_listener(certs, server_addrs(backends))
    listener["tls"]["certificates"] = [
        {"cert": str(nobody_dir / "ecdsa.pem"), "key": str(nobody_dir / "ecdsa.key")}]
    config = tlsterm_config([listener])
    config["user"] = "nobody"
    config["workers"] = 2
    config_path = write_yaml(nobody_dir, config)
    os.chown(config_path, pwd.getpwnam("nobody").pw_uid, -1)
    proxy = start_proxy(config_path.read_text(), workdir=nobody_dir)
    proxy.wait_for("privileges", predicate=lambda e: "keeping CAP_NET_ADMIN" in e.get("msg", ""))
    tasks = {task.name: capabilities(task / "status")
             for task in Path(f"/proc/{proxy.pid}/task").iterdir()}
    assert all(caps["Uid"] != 0 for caps in tasks.values()), tasks
    # The main thread and the two workers it starts after the switch keep
    # CAP_NET_ADMIN, permitted and effective, and nothing else; the log
    # writer, started before, keeps nothing (setuid empties a thread's sets
    # unless it asked to keep them).
    assert tasks[str(proxy.pid)]["CapEff"] == NET_ADMIN_MASK, tasks
    kept = [caps for caps in tasks.values() if caps["CapEff"] != 0]
    assert len(kept) == 3, tasks
    assert all(caps["CapEff"] == caps["CapPrm"] == NET_ADMIN_MASK for caps in kept), tasks
    assert all(caps["CapPrm"] in (0, NET_ADMIN_MASK) for caps in tasks.values()), tasks
    for family, client in (("4", CLIENT4), ("6", CLIENT6)):
        answer = client_get(topology, certs, proxy, family, "/headers")
        assert peer_host(answer["peer"]) == client
    since = proxy.mark()
    proxy.send_signal(signal.SIGHUP)
    proxy.wait_for("reload_done", since=since)
    answer = client_get(topology, certs, proxy, "4", "/headers")
    assert peer_host(answer["peer"]) == CLIENT4


def capabilities(status_path):
    """capabilities reads CapEff, CapPrm (as integers) and the real uid from
    a /proc status file."""
    fields = dict(line.split(":", 1) for line in Path(status_path).read_text().splitlines())
    return {"CapEff": int(fields["CapEff"], 16), "CapPrm": int(fields["CapPrm"], 16),
            "Uid": int(fields["Uid"].split()[0])}


# ---- capabilities: kept only when needed, checked at start and at reload ------

# Runs a command as root without CAP_NET_ADMIN (util-linux's setpriv).
WITHOUT_NET_ADMIN = ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin"]


def loopback_listener(certs, source=None):
    """A listener on loopback in the test's own namespace: what the checks
    at start and reload look at needs no route."""
    listener = listener_config("edge", "127.0.0.1:9", certs)
    if source is not None:
        listener["backend"]["source"] = source
    return listener


@pytest.fixture
def nobody_dir(certs):
    """A directory that user nobody owns, with a copy of the certificates:
    what a reload reads after the switch to that user."""
    nobody = pwd.getpwnam("nobody")
    directory = Path(tempfile.mkdtemp(prefix="tlsterm-nobody-"))
    try:
        for name in ("ecdsa.pem", "ecdsa.key"):
            shutil.copy(certs.dir / name, directory / name)
        for path in (directory, *directory.iterdir()):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        yield directory
    finally:
        shutil.rmtree(directory)


def test_plain_user_keeps_nothing_and_reload_cannot_add_source_client(nobody_dir, certs):
    """Without a listener that uses source: client, user: drops every
    capability; a reload that then introduces source: client is refused,
    since the capability cannot be had back, and the running configuration
    stays."""
    listener = loopback_listener(certs)
    listener["tls"]["certificates"] = [
        {"cert": str(nobody_dir / "ecdsa.pem"), "key": str(nobody_dir / "ecdsa.key")}]
    config = tlsterm_config([listener])
    config["user"] = "nobody"
    proxy = Tlsterm(nobody_dir, config)
    os.chown(proxy.config_path, pwd.getpwnam("nobody").pw_uid, -1)
    try:
        proxy.start()
        for task in Path(f"/proc/{proxy.pid}/task").iterdir():
            caps = capabilities(task / "status")
            assert caps["CapEff"] == caps["CapPrm"] == 0, (task, caps)
        assert "keeping" not in proxy.wait_for("privileges")["msg"]
        config["listeners"][0]["backend"]["source"] = "client"
        write_yaml(nobody_dir, config)
        since = proxy.mark()
        proxy.send_signal(signal.SIGHUP)
        failed = proxy.wait_for("reload_failed", since=since)
        assert re.fullmatch(
            re.escape(str(proxy.config_path)) + r":\d+:\d+: listener edge: backend.source: "
            r"client needs CAP_NET_ADMIN, which the running process does not have .*",
            failed["error"]), failed
        assert not proxy.find("reload_done", since=since)
    finally:
        proxy.finish()


def test_missing_capability_refused_at_start(tmp_path, certs):
    path = write_yaml(tmp_path, tlsterm_config([loopback_listener(certs, "client")]))
    done = run([*WITHOUT_NET_ADMIN, TLSTERM_BIN, "-c", path],
               env=sanitizer_env())
    assert done.returncode == 3, text(done)  # could not start: privileges
    err = done.stderr.decode()
    assert "backend.source: client needs CAP_NET_ADMIN (listener edge)" in err, text(done)
    assert '"started"' not in err and '"listening"' not in err


def test_missing_capability_refused_at_reload(tmp_path, certs):
    """Started as root but without CAP_NET_ADMIN (fine: no listener needs
    it), a reload that introduces source: client is refused."""
    config = tlsterm_config([loopback_listener(certs)])
    proxy = Tlsterm(tmp_path, config, prefix=WITHOUT_NET_ADMIN)
    try:
        proxy.start()
        assert capabilities(f"/proc/{proxy.pid}/status")["CapEff"] & NET_ADMIN_MASK == 0
        config["listeners"][0]["backend"]["source"] = "client"
        write_yaml(tmp_path, config)
        since = proxy.mark()
        proxy.send_signal(signal.SIGHUP)
        failed = proxy.wait_for("reload_failed", since=since)
        assert "listener edge: backend.source: client needs CAP_NET_ADMIN" in failed["error"]
        # Back to source: proxy, the same reload goes through.
        config["listeners"][0]["backend"]["source"] = "proxy"
        write_yaml(tmp_path, config)
        since = proxy.mark()
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for("reload_done", since=since)
    finally:
        proxy.finish()


def test_proxy_protocol_alone_needs_no_capability(tmp_path, certs):
    """backend.proxy_protocol keeps backend connections per client, but
    they come from the proxy's own address: started without CAP_NET_ADMIN,
    a listener with only proxy_protocol runs and forwards, and a reload
    that keeps it (v2 to v1) goes through."""
    from test_proxy_protocol import ProxyReceiver, tls_from, recv_exactly
    from tlsterm_harness import client_context

    receiver = ProxyReceiver("echo")
    listener = listener_config("edge", receiver.addr, certs)
    listener["backend"]["proxy_protocol"] = "v2"
    config = tlsterm_config([listener])
    proxy = Tlsterm(tmp_path, config, prefix=WITHOUT_NET_ADMIN)
    try:
        proxy.start()
        assert capabilities(f"/proc/{proxy.pid}/status")["CapEff"] & NET_ADMIN_MASK == 0
        assert not proxy.find("privileges")
        tls = tls_from("127.0.0.5", proxy.port("edge"), client_context(certs.ca))
        tls.sendall(b"pp")
        assert recv_exactly(tls, 2) == b"pp"
        tls.close()
        header = receiver.wait(lambda cs: cs and cs[0]["header"], "a header")[0]["header"]
        assert header["version"] == 2 and header["src"] == "127.0.0.5"
        config["listeners"][0]["backend"]["proxy_protocol"] = "v1"
        write_yaml(tmp_path, config)
        since = proxy.mark()
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for("reload_done", since=since)
        assert not proxy.find("reload_failed", since=since)
    finally:
        proxy.finish()
        receiver.stop()
    receiver.check()


def test_proxy_protocol_with_user_drops_every_capability(nobody_dir, certs):
    """With user:, a listener with only proxy_protocol keeps no capability
    (CAP_NET_ADMIN is for source: client alone)."""
    listener = loopback_listener(certs)
    listener["backend"]["proxy_protocol"] = "v2"
    listener["tls"]["certificates"] = [
        {"cert": str(nobody_dir / "ecdsa.pem"), "key": str(nobody_dir / "ecdsa.key")}]
    config = tlsterm_config([listener])
    config["user"] = "nobody"
    proxy = Tlsterm(nobody_dir, config)
    try:
        proxy.start()
        for task in Path(f"/proc/{proxy.pid}/task").iterdir():
            caps = capabilities(task / "status")
            assert caps["CapEff"] == caps["CapPrm"] == 0, (task, caps)
        assert "keeping" not in proxy.wait_for("privileges")["msg"]
    finally:
        proxy.finish()


# ---- configuration errors ------------------------------------------------------

CONFIG_HEAD = """\
listeners:
  - name: edge
    listen: [{listen}]
    tls:
      certificates:
        - {{cert: {cert}, key: {key}}}
    backend:
      source: {source}
      servers:
"""


def write_config(tmp_path, certs, servers, listen='"127.0.0.1:0"', source="client"):
    body = CONFIG_HEAD.format(listen=listen, cert=certs.ecdsa_cert, key=certs.ecdsa_key,
                              source=source)
    body += "".join(f'        - "{server}"\n' for server in servers)
    path = tmp_path / "t.yaml"
    path.write_text(body)
    return path


def check_errors(path):
    done = run_tlsterm("--check", "-c", path)
    assert done.returncode == 1, text(done)
    return done.stderr.decode()


def test_unix_server_refused(tmp_path, certs):
    path = write_config(tmp_path, certs, ["127.0.0.1:8080", "unix:/run/app.sock"])
    err = check_errors(path)
    # Line 11 is the second server; column 11 its value.
    assert f"{path}:11:11: backend server 'unix:/run/app.sock' is a unix socket, but " \
           "backend.source: client connects from the client's IP address" in err, err
    assert err.count(f"{path}:") == 1, err


def test_server_of_a_family_no_listen_address_has(tmp_path, certs):
    path = write_config(tmp_path, certs, ["127.0.0.1:8080", "[::1]:8080"])
    err = check_errors(path)
    assert f"{path}:11:11: backend server '[::1]:8080' is IPv6, but no listen address of " \
           "listener 'edge' is" in err, err
    assert err.count(f"{path}:") == 1, err


def test_listen_address_of_a_family_no_server_has(tmp_path, certs):
    path = write_config(tmp_path, certs, ["[::1]:8080"], listen='"[::1]:0", "127.0.0.1:0"')
    err = check_errors(path)
    # Line 3, the second listen address.
    assert f"{path}:3:25: listen address '127.0.0.1:0' takes IPv4 clients, but no backend " \
           "server is IPv4" in err, err
    assert err.count(f"{path}:") == 1, err


def test_bad_source_value_and_check_output(tmp_path, certs):
    path = write_config(tmp_path, certs, ["127.0.0.1:8080"], source="clients")
    err = check_errors(path)
    assert (f"{path}:8:15: invalid source 'clients'; did you mean 'client'? allowed: proxy, "
            "client") in err, err
    for source, shown in (("client", "client (the client's address; needs CAP_NET_ADMIN)"),
                          ("proxy", "proxy")):
        path = write_config(tmp_path, certs, ["127.0.0.1:8080", "127.0.0.2:8080"],
                            source=source)
        done = run_tlsterm("--check", "-c", path)
        assert done.returncode == 0, text(done)
        assert f"  backend.source: {shown}\n" in done.stdout.decode(), text(done)
