"""The alert rules end to end: a real Prometheus (Debian's /usr/bin/prometheus,
run by the test on an ephemeral loopback port, storage in the test's folder)
scrapes a running tlsterm's admin endpoint every second with the shipped
scrape config and evaluates the shipped rules every second. Quiet while
clients are fine; a burst of TLS 1.1 clients then fires the protocol-version
alert, seen through Prometheus's HTTP API.

The rules are the shipped ones with every duration divided by 60 (range
windows, offsets and `for`: 5m becomes 5s, 1d becomes 24m): see
scaled_rules(). Expressions, thresholds, labels and annotations are left as
they are, so what runs here is what an operator loads."""

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from tlsterm_harness import (
    REPO,
    admin_addr,
    client_context,
    free_port,
    listener_config,
    samples,
    tls_connect,
    tlsterm_config,
    total,
    wait_until,
)

PROMETHEUS_DIR = REPO / "conf/prometheus"
PROMETHEUS_BIN = "/usr/bin/prometheus"
SCALE = 60
ALERT = "TlstermHandshakeFailuresProtocolVersion"

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
            "w": 604_800_000, "y": 31_536_000_000}
_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")


def duration_ms(text_duration):
    """duration_ms reads a Prometheus duration ("5m", "1h30m") in ms."""
    assert _DURATION.fullmatch(text_duration), text_duration
    return sum(int(n) * _UNIT_MS[unit]
               for n, unit in re.findall(r"(\d+)(ms|[smhdwy])", text_duration))


def scaled(text_duration):
    """scaled returns |text_duration| divided by SCALE, in whole ms."""
    ms = duration_ms(text_duration)
    assert ms % SCALE == 0, text_duration
    return f"{ms // SCALE}ms"


def scale_expr(expr):
    """scale_expr divides every duration of a PromQL expression: range
    selectors ([5m]), subqueries ([1h:1m]) and offsets. Every other word is
    left alone; a duration anywhere else fails the test, so a new kind of
    duration in the rules cannot slip through unscaled."""
    def brackets(match):
        return "[" + ":".join(scaled(part) if part else part
                              for part in match.group(1).split(":")) + "]"
    expr = re.sub(r"\[([0-9a-z:]+)\]", brackets, expr)
    expr = re.sub(r"\boffset\s+([0-9a-z]+)", lambda m: f"offset {scaled(m.group(1))}", expr)
    # What is left, outside label values, must hold no duration but the
    # scaled ones, in ms.
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    leftover = [d for d in re.findall(r"\b\d+(?:ms|[smhdwy])\b", outside_strings)
                if not d.endswith("ms")]
    assert not leftover, (leftover, expr)
    return expr


def scaled_rules(path):
    """scaled_rules returns the rule file at |path| with its durations
    divided by SCALE: each rule's expr and for."""
    document = yaml.safe_load(path.read_text())
    for group in document["groups"]:
        assert "interval" not in group, "a group interval would need scaling too"
        for rule in group["rules"]:
            rule["expr"] = scale_expr(rule["expr"])
            if "for" in rule:
                rule["for"] = scaled(rule["for"])
    return document


def test_scaling():
    assert scale_expr("rate(x[5m]) > 0.1 unless max_over_time(y[1d] offset 1h) > 0") == \
        "rate(x[5000ms]) > 0.1 unless max_over_time(y[1440000ms] offset 60000ms) > 0"
    assert scale_expr('max_over_time(z{a="5m"}[2h:1m])') == \
        'max_over_time(z{a="5m"}[120000ms:1000ms])'
    assert scaled("1h30m") == "90000ms"


def fleet_config(workdir, rules_path, admin):
    """fleet_config returns the shipped prometheus.yaml with one-second
    intervals, |rules_path| for its rules, no Alertmanager, and its file
    discovery pointed at a target file in |workdir| that lists |admin|."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yaml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules_path)]
    config.pop("alerting", None)
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "tlsterm"]
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    targets = workdir / "targets"
    targets.mkdir()
    (targets / "test.yaml").write_text(yaml.safe_dump([{"targets": [f"{admin[0]}:{admin[1]}"]}]))
    [discovery] = job["file_sd_configs"]
    discovery["files"] = [str(targets / "*.yaml")]
    return config


class Prometheus:
    """Prometheus is /usr/bin/prometheus on 127.0.0.1:|port|, its data and
    log in |workdir|."""

    def __init__(self, workdir, config_path):
        self.port = free_port()
        self.log_path = workdir / "prometheus.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS_BIN, f"--config.file={config_path}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path, **params):
        """get returns the JSON of GET |path|?|params|."""
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def ready(self):
        assert self.proc.poll() is None, f"prometheus exited\n{self.dump()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql):
        """query returns the instant vector of |promql| as [(labels, value)]."""
        answer = self.get("/api/v1/query", query=promql)
        assert answer["status"] == "success", answer
        return [(s["metric"], float(s["value"][1])) for s in answer["data"]["result"]]

    def alerts(self):
        """alerts returns the pending and firing alerts."""
        return self.get("/api/v1/alerts")["data"]["alerts"]

    def wait(self, predicate, what, timeout=30):
        """wait is wait_until with Prometheus's log in the failure."""
        try:
            return wait_until(predicate, timeout=timeout, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.dump()}") from None

    def rules(self):
        return [rule for group in self.get("/api/v1/rules")["data"]["groups"]
                for rule in group["rules"]]

    def dump(self):
        self.log.flush()
        return "--- prometheus log\n" + self.log_path.read_text(errors="replace")[-6000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class ClientLoop:
    """ClientLoop runs |connect| over and over on a thread of its own until
    stop(), at most |limit| times, |pause| seconds apart."""

    def __init__(self, connect, limit, pause=0.0):
        self.connect, self.limit, self.pause = connect, limit, pause
        self.count = 0
        self.errors = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while self.count < self.limit and not self.stopping.is_set():
            try:
                self.connect()
            except Exception as e:  # reported by stop()
                self.errors.append(repr(e))
                return
            self.count += 1
            self.stopping.wait(self.pause)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors
        return self.count


@pytest.fixture
def prometheus_factory(tmp_path):
    started = []

    def start(config_path):
        instance = Prometheus(tmp_path, config_path)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


def test_protocol_version_alert_fires_in_prometheus(tlsterm_factory, backend_factory, certs,
                                                     tmp_path, prometheus_factory):
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)],
                            level="info")
    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy = tlsterm_factory(config)
    admin = admin_addr(proxy)
    port = proxy.port("edge")

    rules_path = tmp_path / "tlsterm-alerts.scaled.yaml"
    rules_path.write_text(yaml.safe_dump(scaled_rules(PROMETHEUS_DIR / "tlsterm-alerts.yaml"),
                                         sort_keys=False))
    config_path = tmp_path / "prometheus.yaml"
    config_path.write_text(yaml.safe_dump(fleet_config(tmp_path, rules_path, admin),
                                          sort_keys=False))
    prometheus = prometheus_factory(config_path)

    # Every family the rules read is one tlsterm declares, and every
    # handshake failure reason it counts has an alert of its own.
    declared = set(re.findall(r"^# TYPE (\S+) ", _metrics_text(admin), re.M))
    # (Recorded series, job_listener:tlsterm_...:rate5m, are the rules' own.)
    shipped = (PROMETHEUS_DIR / "tlsterm-alerts.yaml").read_text()
    used = set(re.findall(r"(?<![\w:])tlsterm_[a-z0-9_]+\b(?!:)", shipped))
    assert used - declared == set()
    reasons = {dict(labels)["reason"] for (name, labels) in samples(admin)
               if name == "tlsterm_handshake_failures_total"}
    alerted = set(re.findall(r'reason="([a-z_]+)"\} >', shipped))
    assert reasons and reasons == alerted, (reasons, alerted)

    # Clients that are fine, all along: the failure ratio is defined (0, not
    # 0/0) from the first scrapes on.
    good_ctx = client_context(certs.ca)
    good = ClientLoop(lambda: tls_connect(port, good_ctx).close(), limit=1200, pause=0.1).start()
    try:
        prometheus.wait(prometheus.ready, "prometheus ready")
        prometheus.wait(lambda: prometheus.query('up{job="tlsterm"} == 1'), "a scrape of tlsterm")
        ratio = ('job_listener_reason:tlsterm_handshake_failure_ratio:rate5m'
                 '{job="tlsterm",listener="edge",reason="protocol_version"}')
        prometheus.wait(lambda: prometheus.query(f"{ratio} == 0"), "a protocol_version ratio of 0")
        # Every rule evaluated without an error, and nothing is pending or
        # firing on a healthy tlsterm (the certificates have 825 days).
        rules = prometheus.wait(lambda: (rules := prometheus.rules()) and all(
            rule["health"] != "unknown" for rule in rules) and rules, "every rule evaluated")
        broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not broken, broken
        assert prometheus.alerts() == []

        # The burst: TLS 1.1 clients, which the listener (TLS 1.2 and 1.3)
        # refuses with protocol_version, until the alert fires (bounded).
        bad = ClientLoop(lambda: _tls11_client(port), limit=600).start()
        try:
            firing = prometheus.wait(lambda: _alert(prometheus, "firing"), f"{ALERT} firing",
                                     timeout=45)
        finally:
            num_bad = bad.stop()
    finally:
        num_good = good.stop()

    assert firing["labels"] == {"alertname": ALERT, "job": "tlsterm", "listener": "edge",
                                "reason": "protocol_version", "severity": "warning"}
    assert "tls.min_version" in firing["annotations"]["summary"], firing
    assert "listener edge" in firing["annotations"]["description"], firing
    assert float(firing["value"]) > 0.05, firing
    # tlsterm counted every client of both loops: the burst was what the
    # alert saw.
    def counted():
        values = samples(admin)
        return (total(values, "tlsterm_handshake_failures_total", reason="protocol_version"),
                total(values, "tlsterm_handshakes_total", listener="edge"))

    wait_until(lambda: counted() == (num_bad, num_good),
               what=f"{num_bad} TLS 1.1 clients and {num_good} others counted")
    assert proxy.find("handshake_failed", reason="protocol_version")


def _metrics_text(admin):
    with urllib.request.urlopen(f"http://{admin[0]}:{admin[1]}/metrics", timeout=10) as r:
        return r.read().decode()


def _tls11_client(port):
    """_tls11_client runs one openssl s_client offering only TLS 1.1; tlsterm
    must refuse it."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1",
         "-cipher", "DEFAULT@SECLEVEL=0"],
        input=b"", capture_output=True, timeout=30)
    assert result.returncode != 0, result.stdout


def _alert(prometheus, state):
    """_alert returns the protocol-version alert in |state|, or None."""
    for alert in prometheus.alerts():
        if alert["labels"].get("alertname") == ALERT and alert["state"] == state:
            return alert
    return None
