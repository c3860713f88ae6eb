"""A fleet on one machine (README, "Running a fleet"): three tlsterm
instances started from one configuration text (one ticket key file, one
report directory) behind HAProxy 2.6 in tcp mode (`balance roundrobin`,
`send-proxy-v2`; the listener takes the header with `accept_proxy`), whose
health check is `option httpchk GET /readyz` on each instance's admin
endpoint.

- A session one instance issued resumes on every instance, TLS 1.2 and 1.3.
- Failing clients spread over the instances each show up on exactly one
  instance, under their own address (the PROXY header's), never HAProxy's.
- SIGTERM to one instance while clients keep connecting: with `drain_delay`
  its /readyz turns 503, HAProxy's check takes it out while its listener
  still accepts, then it drains and exits 0; no client request fails.
- The merged `tlsterm report` of the three report files equals the sum of
  the three /report answers taken just before the stop.

Clients connect from loopback addresses other than 127.0.0.1 (HAProxy's
own), each failing client from a /24 of its own, so that the report's
networks tell them apart."""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections import Counter

import pytest

from tlsterm_harness import (
    TIMEOUT,
    TLSTERM_BIN,
    admin_addr,
    client_context,
    free_port,
    get,
    run,
    sanitizer_env,
    text,
    wait_until,
)

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="haproxy not installed (scripts/install-deps.sh test)")

NAMES = ("edge-a", "edge-b", "edge-c")
VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def fleet_config(certs, key_file, report_dir, drain_delay="2s"):
    """fleet_config is the one configuration text of every instance; the
    ports are the kernel's (0), read back from each instance's log."""
    return f"""instance: ${{TLSTERM_INSTANCE}}
log: {{format: json, level: debug}}
drain_timeout: 10s
drain_delay: {drain_delay}
admin: {{listen: "127.0.0.1:0"}}
session_tickets: {{key_file: {key_file}}}
report: {{dir: {report_dir}, interval: 1h}}
listeners:
  - name: edge
    listen: "127.0.0.1:0"
    accept_proxy: {{from: ["127.0.0.1"], timeout: 2s}}
    tls:
      certificates: [{{cert: {certs.ecdsa_cert}, key: {certs.ecdsa_key}}}]
    backend: {{servers: ["{{backend}}"]}}
"""


class Haproxy:
    """Haproxy runs haproxy in the foreground on a tcp-mode frontend that
    balances over |servers| [(name, tls port, admin port)]; its log (raw
    lines on stdout) is kept in |lines|."""

    def __init__(self, workdir, servers):
        self.port = free_port()
        self.stats = workdir / "haproxy.sock"
        config = [
            "global",
            "  log stdout format raw local0",
            f"  stats socket {self.stats} level admin",
            "defaults",
            "  mode tcp",
            "  log global",
            "  timeout connect 2s",
            "  timeout client 30s",
            "  timeout server 30s",
            # Not the check interval (the default): a loaded machine can
            # take longer than 100 ms to answer, and a check that times out
            # would take an instance out, or all three.
            "  timeout check 2s",
            # A refused connect (an instance that closed its listener) is
            # tried again, on another server.
            "  retries 3",
            "  option redispatch",
            "frontend fe",
            f"  bind 127.0.0.1:{self.port}",
            '  log-format "conn client=%ci:%cp server=%s"',
            "  default_backend fleet",
            "backend fleet",
            "  balance roundrobin",
            "  option httpchk GET /readyz",
            "  http-check expect status 200",
            "  default-server send-proxy-v2 check inter 100ms fall 2 rise 2",
        ]
        config += [f"  server {name} 127.0.0.1:{port} check port {admin}"
                   for name, port, admin in servers]
        path = workdir / "haproxy.cfg"
        path.write_text("\n".join(config) + "\n")
        self.lines = []
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(path)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()
        wait_until(self._bound, what="haproxy to bind its frontend")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def _bound(self):
        """_bound is true once the stats socket exists and the frontend port
        is taken: probed with a bind, not a connection, which HAProxy would
        pass on to an instance."""
        assert self.proc.poll() is None, "haproxy exited:\n" + "\n".join(self.lines)
        if not self.stats.exists():
            return False
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", self.port))
                return False
            except OSError:
                return True

    def server_states(self):
        """server_states returns {server: operational state} from the stats
        socket ("2" is up, "0" down)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.stats))
            s.sendall(b"show servers state fleet\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        rows = [l.split() for l in out.decode().splitlines() if l and not l.startswith("#")]
        return {row[3]: row[5] for row in rows[1:] if len(row) > 5}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Fleet:
    def __init__(self, instances, haproxy):
        self.instances = instances   # {name: Tlsterm}
        self.haproxy = haproxy

    def handled(self, event, client):
        """handled returns {instance name: events} of the instances that
        logged |event| for |client| ("host:port")."""
        found = {name: t.find(event, client=client) for name, t in self.instances.items()}
        return {name: events for name, events in found.items() if events}


@pytest.fixture
def fleet(tlsterm_factory, backend_factory, certs, tmp_path):
    """fleet starts an echo backend, three instances on one configuration
    text (the instance name from the environment) and HAProxy before them;
    it waits until HAProxy sees every instance up."""
    from test_sessions import write_key_file

    key_file = tmp_path / "ticket.keys"
    write_key_file(key_file)
    key_file.chmod(0o600)
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    echo = backend_factory("echo")
    config = fleet_config(certs, key_file, report_dir).replace("{backend}", echo.addr)
    instances = {}
    for name in NAMES:
        instances[name] = tlsterm_factory(config, prefix=["env", f"TLSTERM_INSTANCE={name}"])
        assert instances[name].find("started")[0]["instance"] == name
    texts = {t.config_path.read_text() for t in instances.values()}
    assert len(texts) == 1, "one configuration for the fleet"
    servers = [(name, t.port("edge"), admin_addr(t)[1]) for name, t in instances.items()]
    haproxy = Haproxy(tmp_path, servers)
    try:
        wait_until(lambda: haproxy.server_states() == {n: "2" for n in NAMES},
                   what="haproxy to see the three instances up")
        yield Fleet(instances, haproxy)
    finally:
        haproxy.stop()
        stop_at_once(instances.values())


def stop_at_once(instances):
    """stop_at_once skips drain_delay at teardown: SIGTERM, and a second one
    once the delay started, which starts the drain; then it waits for the
    exits (the factory checks their code, 0)."""
    running = [t for t in instances if t.running()]
    marks = {t: t.mark() for t in running}
    for t in running:
        t.send_signal(signal.SIGTERM)
    for t in running:
        t.wait_for("drain_delayed", since=marks[t])
        t.send_signal(signal.SIGTERM)
    for t in running:
        t.wait_exit()


def tls_via(fleet, source, ctx, session=None):
    """tls_via connects to HAProxy from |source| and returns the TLS socket
    after the handshake."""
    sock = socket.create_connection(("127.0.0.1", fleet.haproxy.port), timeout=TIMEOUT,
                                    source_address=(source, 0))
    return ctx.wrap_socket(sock, server_hostname="localhost", session=session)


def echo_round_trip(tls):
    payload = os.urandom(32)
    tls.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = tls.recv(len(payload) - len(got))
        assert chunk, f"EOF after {len(got)} bytes"
        got += chunk
    assert got == payload


# ---- resumption across instances ---------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=["tls12", "tls13"])
def test_session_resumes_on_every_instance(fleet, certs, version):
    """One full handshake, then the session offered three times: round robin
    takes the three to the three instances, and each resumes it, the two
    that did not issue it included."""
    ctx = client_context(certs.ca, version=version)
    with tls_via(fleet, "127.0.0.2", ctx) as tls:
        echo_round_trip(tls)   # lets the TLS 1.3 ticket arrive
        session, first = tls.session, "127.0.0.2:%d" % tls.getsockname()[1]
        assert not tls.session_reused
    [issuer] = fleet.handled("handshake_done", first)
    resumed_on = {}
    for _ in range(3):
        with tls_via(fleet, "127.0.0.2", ctx, session=session) as tls:
            echo_round_trip(tls)
            assert tls.session_reused
            client = "127.0.0.2:%d" % tls.getsockname()[1]
        found = wait_until(lambda: fleet.handled("handshake_done", client),
                           what=f"handshake_done for {client}")
        [(name, [done])] = found.items()
        assert done["resumed"] is True and done["version"] == (
            "TLSv1.2" if version == ssl.TLSVersion.TLSv1_2 else "TLSv1.3"), done
        resumed_on[name] = client
    assert set(resumed_on) == set(NAMES), resumed_on
    assert fleet.instances[issuer].find("handshake_done", client=first)[0]["resumed"] is False


# ---- failures, with the clients' addresses -------------------------------------------


def report_of(instance):
    status, body = get(admin_addr(instance), "/report")
    assert status == 200
    return json.loads(body)


def failure_networks(report):
    """failure_networks returns Counter({(result-type, network): count})."""
    counts = Counter()
    for policy in report["policies"]:
        for detail in policy["failure-details"]:
            for net in detail["top-client-networks"]:
                counts[(detail["result-type"], net["network"])] += net["count"]
    return counts


FAILING = [f"127.0.{n}.2" for n in range(10, 16)]   # six clients, six /24 networks


def fail_handshakes(fleet, other_certs):
    """fail_handshakes has each FAILING client refuse the served certificate
    (a CA it does not know) and returns their addresses ("host:port")."""
    clients = []
    for source in FAILING:
        sock = socket.create_connection(("127.0.0.1", fleet.haproxy.port), timeout=TIMEOUT,
                                        source_address=(source, 0))
        clients.append(f"{source}:{sock.getsockname()[1]}")
        with pytest.raises(ssl.SSLCertVerificationError):
            client_context(other_certs.ca).wrap_socket(sock, server_hostname="localhost")
        sock.close()
    return clients


def test_failures_carry_the_clients_addresses(fleet, certs, other_certs):
    """Six clients fail their handshake through HAProxy; round robin spreads
    them two per instance. Each failure is logged by exactly one instance
    with the client's own address and port, and counted once in that
    instance's /report under the client's network; 127.0.0.0/24 (HAProxy)
    appears nowhere."""
    clients = fail_handshakes(fleet, other_certs)
    per_instance = Counter()
    for client in clients:
        found = wait_until(lambda: fleet.handled("handshake_failed", client),
                           what=f"handshake_failed for {client}")
        [(name, [failed])] = found.items()
        assert failed["reason"] == "client_alert:unknown_ca", failed
        per_instance[name] += 1
    assert per_instance == {name: 2 for name in NAMES}
    networks = Counter()
    for name, instance in fleet.instances.items():
        wait_until(lambda: sum(failure_networks(report_of(instance)).values()) == 2,
                   what=f"2 failures in {name}'s /report")
        networks.update(failure_networks(report_of(instance)))
    assert networks == {("client_alert:unknown_ca", f"127.0.{n}.0/24"): 1 for n in range(10, 16)}


# ---- the drain behind the load balancer ----------------------------------------------


class ClientLoop:
    """ClientLoop runs |threads| clients, each making requests (a new TLS
    connection through HAProxy, one echo round trip, close) one after the
    other until stop() or |max_requests| each. Every failure is kept."""

    def __init__(self, fleet, certs, threads=4, max_requests=3000):
        self.fleet = fleet
        self.ctx = client_context(certs.ca)
        self.max_requests = max_requests
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.threads = [threading.Thread(target=self._run, args=(f"127.0.1.{i + 2}",), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, source):
        for _ in range(self.max_requests):
            if self.done.is_set():
                return
            try:
                with tls_via(self.fleet, source, self.ctx) as tls:
                    echo_round_trip(tls)
                with self.lock:
                    self.ok += 1
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.failures.append(f"{source}: {e!r}")

    def count(self):
        with self.lock:
            return self.ok

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(TIMEOUT)
        assert not any(t.is_alive() for t in self.threads), "client threads still running"


def test_drain_behind_haproxy_loses_no_request(fleet, certs):
    """SIGTERM to edge-b while four clients keep making requests:
    drain_delayed (its /readyz turns 503, the listener still accepts),
    HAProxy's check marks it DOWN (Layer7, 503) and stops sending to it,
    then the drain, and a clean exit. Not one client request fails, and the
    other two instances serve on."""
    victim = fleet.instances["edge-b"]
    loop = ClientLoop(fleet, certs)
    try:
        # Every instance is serving the loop's clients.
        for t in fleet.instances.values():
            t.wait_count("handshake_done", 5, predicate=lambda e: e["client"].startswith("127.0.1."))
        mark = victim.mark()
        victim.send_signal(signal.SIGTERM)
        delayed = victim.wait_for("drain_delayed", since=mark)
        assert delayed["delay_ms"] == 2000 and delayed["signal"] == "Terminated"
        down = wait_until(lambda: next((l for l in fleet.haproxy.lines
                                        if "Server fleet/edge-b is DOWN" in l), None),
                          what="haproxy to mark edge-b down")
        assert "Layer7 wrong status" in down and "503" in down, down
        # Taken out by its health check while its listener still accepted:
        # the 2 s delay is ten times the two failed checks it takes.
        assert victim.find("draining", since=mark) == [], "drain_delay ended before the check"
        draining = victim.wait_for("draining", since=mark)
        assert draining["signal"] == "Terminated"
        assert victim.wait_exit() == 0
        victim.wait_for("stopped", since=mark)
        # The instance served during the delay: accepted connections after
        # drain_delayed are served, none refused.
        after = loop.count()
        wait_until(lambda: loop.count() >= after + 40, what="40 more requests after the stop")
    finally:
        loop.stop()
    assert loop.failures == [], loop.failures[:10]
    assert fleet.haproxy.server_states() == {"edge-a": "2", "edge-b": "0", "edge-c": "2"}
    # The survivors took the later requests; nothing reached edge-b after its
    # "stopped" line (it is gone), and HAProxy logged every connection's server.
    served = Counter(l.split("server=")[1] for l in fleet.haproxy.lines if l.startswith("conn "))
    assert served["edge-a"] > 0 and served["edge-c"] > 0 and served["edge-b"] > 0, served


# ---- the merged report --------------------------------------------------------------


def report_sum_key(report):
    """report_sum_key reduces a report to what adding reports must keep
    exactly: per policy, successes and failures, and per result-type the
    count and every top list's counts."""
    out = Counter()
    for list_name in ("policies", "report-only-policies"):
        for policy in report.get(list_name, []):
            key = (list_name, policy["policy"]["policy-domain"],
                   tuple(policy["policy"]["policy-string"]))
            summary = policy["summary"]
            out[key + ("successes",)] += summary["total-successful-session-count"]
            out[key + ("failures",)] += summary["total-failure-session-count"]
            for detail in policy["failure-details"]:
                rt = key + (detail["result-type"],)
                out[rt + ("count",)] += detail["failed-session-count"]
                for top, field in (("top-client-networks", "network"), ("top-ja4", "ja4"),
                                   ("top-offered-max-versions", "version")):
                    for entry in detail[top]:
                        out[rt + (top, entry[field])] += entry["count"]
    return +out


def test_merged_report_equals_the_sum_of_the_instances(fleet, certs, other_certs, tmp_path):
    """Failures and successes spread over the three instances; /report of
    each, then a stop of all three (each writes its last window into the
    shared directory, under its own instance name); `tlsterm report DIR
    --json` merges the three files into exactly the sum of the three
    answers, where every failing client's network is counted once."""
    fail_handshakes(fleet, other_certs)
    ctx = client_context(certs.ca)
    for _ in range(6):
        with tls_via(fleet, "127.0.0.3", ctx) as tls:
            echo_round_trip(tls)
    for t in fleet.instances.values():
        wait_until(lambda: sum(p["summary"]["total-successful-session-count"]
                               + p["summary"]["total-failure-session-count"]
                               for p in report_of(t)["policies"]) == 4,
                   what="2 successes and 2 failures in each /report")
    answers = {name: report_of(t) for name, t in fleet.instances.items()}
    for name, report in answers.items():
        assert name in report["report-id"], report["report-id"]
    stop_at_once(fleet.instances.values())
    for t in fleet.instances.values():
        assert t.wait_exit() == 0
    report_dir = tmp_path / "reports"
    files = sorted(p.name for p in report_dir.iterdir())
    assert len(files) == 3 and all(any(n in f for f in files) for n in NAMES), files
    result = run([TLSTERM_BIN, "report", "--json", report_dir], env=sanitizer_env())
    assert result.returncode == 0, text(result)
    merged = json.loads(result.stdout)
    expected = Counter()
    for report in answers.values():
        expected.update(report_sum_key(report))
    assert report_sum_key(merged) == expected
    networks = failure_networks(merged)
    assert networks == {("client_alert:unknown_ca", f"127.0.{n}.0/24"): 1 for n in range(10, 16)}
