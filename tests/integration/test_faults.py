"""Descriptors, disk and the log reader run out; tlsterm keeps serving and
says what it dropped.

- EMFILE: with a low RLIMIT_NOFILE, accept pauses (logged, not spinning),
  the connections it holds transfer byte for byte, a backend connect that
  finds no descriptor gets a defined answer (HTTP 503, a close in tcp mode)
  and a log line, and new clients are served once descriptors free up.
- ENOSPC: a report directory on a tiny tmpfs that is full logs
  report_write_failed with the path and the errno text, leaves no temporary
  file, and the next window after space is freed writes a whole report.
- A log reader that stops reading (stderr a pipe nobody reads): requests
  still complete, the lines that did not fit are counted
  (tlsterm_log_lines_dropped_total) and said in one log_lines_dropped line
  once the reader is back, and SIGTERM still ends the process.
"""

import fcntl
import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest

from backend import pattern, pattern_sha256

from http_harness import H1Conn, H2Conn, http_config, http_listener
from tlsterm_harness import (
    LogReader,
    TIMEOUT,
    TLSTERM_BIN,
    client_context,
    free_port,
    get,
    listener_config,
    sanitizer_env,
    samples,
    tls_connect,
    tlsterm_config,
    to_yaml,
    total,
    wait_until,
)

# ---- out of descriptors ----------------------------------------------------------

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PASSIVE = {"passive": {"failures": 2, "cooldown": "60s"}}


def test_emfile_in_http_mode(tlsterm_factory, http_backend_factory, certs):
    """One h2 client holds more backend connections than RLIMIT_NOFILE (64)
    leaves: the streams that find no descriptor get a 502 and a
    backend_connect_failed line saying so, the others complete byte for
    byte; a new client waits in the backlog (accept_paused, without
    spinning) and is served once descriptors free up. Running out of
    descriptors is not the server's fault: passive health keeps it up."""
    backend = http_backend_factory()
    listener = http_listener("web", backend, certs, backend_opts={"health": PASSIVE})
    config = http_config([listener], level="info")
    proxy = tlsterm_factory(config, nofile=64)
    port = proxy.port("web")

    with H2Conn(port, certs) as conn:
        streams = [conn.request("GET", "/slow/4") for _ in range(90)]
        failed = proxy.wait_for("backend_connect_failed", error="Too many open files")
        assert failed["server"] == backend.addr, failed

        # Another client now: accept meets EMFILE and pauses, not spinning.
        late = {}

        def late_client():
            try:
                with H1Conn(port, certs) as h1:
                    h1.send(b"GET /bytes/100000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    late["response"] = h1.read_response(timeout=TIMEOUT)
            except Exception as e:  # reported by the assertions below
                late["error"] = e

        waiter = threading.Thread(target=late_client)
        waiter.start()
        paused = proxy.wait_for("accept_paused")
        assert "Too many open files" in paused["msg"], paused
        before = cpu_seconds(proxy.pid)
        time.sleep(1.0)
        assert cpu_seconds(proxy.pid) - before < 0.3, "accept spins while out of descriptors"

        conn.wait(lambda: all(s.done for s in streams), timeout=TIMEOUT, what="every stream")
        statuses = [s.status for s in streams]
        assert set(statuses) == {200, 502}, statuses
        for stream in streams:
            assert stream.ended and stream.reset is None, stream.id
            if stream.status == 200:
                assert bytes(stream.data) == b"slow\n", stream.id
        refused = proxy.find("backend_connect_failed", error="Too many open files")
        assert len(refused) == statuses.count(502), (len(refused), statuses.count(502))

        # The held connection goes on, byte for byte, once descriptors are back.
        big = conn.get("/bytes/300000", sha=True)
        assert big.status == 200 and big.length == 300000
        assert big.sha.hexdigest() == pattern_sha256(300000)

    waiter.join(TIMEOUT)
    assert not waiter.is_alive()
    assert "error" not in late, late.get("error")
    assert late["response"].status == 200, late["response"].status
    assert late["response"].body == b"".join(pattern(100000))
    proxy.wait_for("accept_resumed")
    assert len(proxy.find("accept_paused")) == 1
    # Passive health: dozens of failed connects, none the server's.
    assert not proxy.find("backend_server_down"), proxy.find("backend_server_down")
    with H2Conn(port, certs) as conn:
        assert conn.get("/after").status == 200


def test_emfile_in_tcp_mode(tlsterm_factory, backend_factory, certs):
    """A tcp-mode client accepted with the last descriptor: its backend
    connect finds none, and it gets a clean close (close_notify, no byte)
    and a backend_connect_failed line; the server is not marked down. With
    descriptors back, clients are served again."""
    echo = backend_factory("echo")
    listener = listener_config("edge", echo, certs)
    listener["backend"]["health"] = PASSIVE
    config = tlsterm_config([listener])
    config["workers"] = 1
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    soft, hard = resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE)
    refused = 0
    for attempt in range(10):
        # Room for exactly one more descriptor (the soft limit only, so that
        # it can be raised again): the client's socket takes it. A
        # descriptor still being closed when they were counted gives one
        # more: that client is served, and the count is taken again.
        closed_before = len(proxy.find("conn_closed"))
        in_use = len(os.listdir(f"/proc/{proxy.pid}/fd"))
        resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (in_use + 1, hard))
        with tls_connect(port, client_context(certs.ca)) as tls:
            tls.settimeout(TIMEOUT)
            tls.sendall(b"x")
            got = tls.recv(100)
        assert got in (b"", b"x"), got
        closed = proxy.wait_count("conn_closed", closed_before + 1)[closed_before]
        if got == b"":  # close_notify, nothing forwarded
            assert closed["reason"] == "backend_connect_failed", closed
            refused += 1
        if refused == 3:
            break
    assert refused == 3, f"{refused} refused in {attempt + 1} attempts"
    failed = proxy.find("backend_connect_failed")
    assert len(failed) == 3 and all(e["error"] == "Too many open files" for e in failed), failed
    assert not proxy.find("backend_server_down"), proxy.find("backend_server_down")

    resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (soft, hard))
    payload = os.urandom(300_000)
    assert echo_once(port, certs, payload) == payload


# ---- a log reader that stops reading ------------------------------------------

# The smallest pipe the kernel makes: one page. tlsterm's queue (1 MiB,
# LOG_QUEUE_MAX) then fills after about a thousand access log lines.
PIPE_SIZE = 4096
LONG_PATH = "/" + "p" * 1000  # the access log keeps 1024 bytes of a path


class StalledStderr:
    """StalledStderr runs tlsterm with stderr on a one-page pipe that nobody
    reads until resume() is called; the test finds its listener and admin
    endpoint on ports chosen beforehand, since the log is not read."""

    def __init__(self, workdir, config):
        self.config_path = workdir / "tlsterm.yaml"
        self.config_path.write_text(to_yaml(config))
        read_end, write_end = os.pipe()
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.read_end = read_end
        self.proc = subprocess.Popen(
            [TLSTERM_BIN, "-c", str(self.config_path)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=write_end, env=sanitizer_env())
        os.close(write_end)
        self.log = None

    def resume(self):
        """resume starts reading the log (a LogReader on the pipe)."""
        self.log = LogReader(os.fdopen(self.read_end, "rb"))
        self.read_end = None

    def find(self, event):
        with self.log.cond:
            return [e for e in self.log.events if e.get("event") == event]

    def finish(self, timeout=TIMEOUT):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self.read_end is not None:
                os.close(self.read_end)
                self.read_end = None


@pytest.fixture
def stalled(tmp_path, http_backend_factory, certs):
    """stalled is a StalledStderr in http mode (access log on) with an admin
    endpoint, serving; its teardown stops it and checks the exit code."""
    backend = http_backend_factory()
    port, admin = free_port(), free_port()
    listener = http_listener("web", backend, certs, listen=(f"127.0.0.1:{port}",))
    config = http_config([listener], level="info")
    config["admin"] = {"listen": f"127.0.0.1:{admin}"}
    # Every failed handshake is a line: none is rate limited away.
    config["log"]["handshake_failures"] = {"burst": 100000, "rate": 100000}
    proxy = StalledStderr(tmp_path, config)
    proxy.port, proxy.admin = port, ("127.0.0.1", admin)

    def up():
        assert proxy.proc.poll() is None, f"tlsterm exited with {proxy.proc.returncode}"
        try:
            return get(proxy.admin, "/readyz")[0] == 200
        except OSError:
            return False

    wait_until(up, what="the admin endpoint")
    yield proxy
    code = proxy.finish()
    assert code == 0, f"tlsterm exited with {code}"


def failed_handshakes(port, count):
    """failed_handshakes opens |count| connections that send bytes that are
    not TLS, each ending in a handshake_failed line."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(b"\x16\x03\x01\x00\x05hello")
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass


def test_stalled_log_reader_does_not_stop_serving(stalled, certs):
    # Enough log for the queue many times over while nothing reads it:
    # request lines of a kilobyte, and failed handshakes.
    started = time.monotonic()
    slowest = 0.0
    with H1Conn(stalled.port, certs) as conn:
        for i in range(3000):
            t = time.monotonic()
            conn.send(f"GET {LONG_PATH}?{i} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            response = conn.read_response(timeout=10)
            assert response.status == 200, (i, response.status)
            assert response.body == b"hello from http_backend\n"
            slowest = max(slowest, time.monotonic() - t)
            if i % 500 == 0:
                failed_handshakes(stalled.port, 20)
    elapsed = time.monotonic() - started
    # A fresh connection and an h2 request still go through.
    with H2Conn(stalled.port, certs) as h2conn:
        stream = h2conn.get("/after", timeout=10)
        assert stream.status == 200 and bytes(stream.data) == b"hello from http_backend\n"
    dropped = total(samples(stalled.admin), "tlsterm_log_lines_dropped_total")
    assert dropped > 1000, dropped

    # The reader is back: the queue comes out, then the count of what did
    # not fit, exactly what the metric says.
    stalled.resume()
    wait_until(lambda: sum(e["count"] for e in stalled.find("log_lines_dropped")) >= dropped,
               what="log_lines_dropped lines adding up to the metric")
    # Quiet now: the lines add up to the metric exactly.
    final = total(samples(stalled.admin), "tlsterm_log_lines_dropped_total")
    wait_until(lambda: sum(e["count"] for e in stalled.find("log_lines_dropped")) == final,
               what=f"log_lines_dropped lines adding up to {final}")
    lines = stalled.find("log_lines_dropped")
    assert all(e["level"] == "warn" and e["count"] > 0 for e in lines), lines
    # What was written is whole lines: every one parsed as JSON.
    with stalled.log.cond:
        broken = [line for line in stalled.log.raw if not line.startswith("{")]
    assert not broken, broken[:3]
    assert stalled.find("request"), "no access log line came out at all"
    print(f"3000 requests in {elapsed:.1f}s, slowest {slowest:.2f}s, {dropped:.0f} lines dropped")


def test_sigterm_ends_the_process_while_the_log_reader_is_stalled(stalled, certs):
    with H1Conn(stalled.port, certs) as conn:
        for i in range(1500):
            conn.send(f"GET {LONG_PATH}?{i} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            assert conn.read_response(timeout=10).status == 200
    assert total(samples(stalled.admin), "tlsterm_log_lines_dropped_total") > 0
    # Nobody reads: the drain ends, and the last flush of the log gives up
    # after LOG_STOP_WAIT_MS (2 s) rather than waiting for ever.
    t = time.monotonic()
    assert stalled.finish(timeout=20) == 0
    assert time.monotonic() - t < 15


# ---- a full report directory ---------------------------------------------------

SCHEMA_VALIDATOR = None


def validate_report(report):
    global SCHEMA_VALIDATOR
    import jsonschema
    from tlsterm_harness import REPO

    if SCHEMA_VALIDATOR is None:
        schema = json.loads((REPO / "tests/report.schema.json").read_text())
        SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(schema)
    errors = sorted(SCHEMA_VALIDATOR.iter_errors(report), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    return report


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """tiny_tmpfs mounts a 64 KiB tmpfs on a fresh folder and returns it;
    unmounted at the end. It needs root (CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "reports"
    mnt.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs",
                             str(mnt)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(directory):
    """fill writes directory/filler until the filesystem is full and returns
    its path."""
    path = directory / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28, e  # ENOSPC
    finally:
        os.close(fd)
    return path


def echo_once(port, certs, payload):
    with tls_connect(port, client_context(certs.ca)) as tls:
        tls.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = tls.recv(65536)
            assert chunk, f"EOF after {len(got)} bytes"
            got += chunk
        return got


def test_full_report_directory(tlsterm_factory, backend_factory, certs, tiny_tmpfs):
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    config["report"] = {"interval": "1s", "dir": str(tiny_tmpfs)}
    filler = fill(tiny_tmpfs)
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")

    # Two windows in a row find no space: each says which file and why.
    failed = proxy.wait_count("report_write_failed", 2)
    for event in failed:
        assert event["level"] == "error", event
        assert event["error"] == "No space left on device", event
        assert os.path.dirname(event["file"]) == str(tiny_tmpfs), event
    # Nothing half-written is left: no temporary file, no report.
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]
    # Serving meanwhile, and the window counts what happens.
    payload = os.urandom(200_000)
    assert echo_once(port, certs, payload) == payload

    # Space again: the next window is written whole, and valid.
    seen = len(proxy.find("report_written"))
    filler.unlink()
    written = proxy.wait_count("report_written", seen + 1)[seen]
    path = written["file"]
    assert os.path.dirname(path) == str(tiny_tmpfs), written
    report = validate_report(json.loads(open(path).read()))
    assert report["policies"], report
    names = [p.name for p in tiny_tmpfs.iterdir()]
    assert not [n for n in names if n.startswith(".")], names
    assert echo_once(port, certs, b"still serving") == b"still serving"
