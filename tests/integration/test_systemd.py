"""systemd's notify protocol (Type=notify in conf/tlsterm.service): a
datagram socket bound by the test stands in for systemd, tlsterm finds it in
$NOTIFY_SOCKET, and the messages arrive in order: READY=1 once serving,
RELOADING=1 then READY=1 around each reload (whatever its outcome),
STOPPING=1 when the stop signal comes, with EXTEND_TIMEOUT_USEC= so that
systemd's TimeoutStopSec= cannot cut drain_delay and drain_timeout short."""

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from tlsterm_harness import Tlsterm, listener_config, tlsterm_config

RECV_TIMEOUT = 10
# What tlsterm adds to drain_delay + drain_timeout in EXTEND_TIMEOUT_USEC=:
# the workers' last closes and joins after the drain's deadline.
STOP_MARGIN_USEC = 5_000_000


@pytest.fixture
def notify_dir():
    # sun_path holds 108 bytes: pytest's tmp_path may be longer.
    directory = tempfile.mkdtemp(prefix="tlsterm-notify-")
    yield directory
    shutil.rmtree(directory)


def fields(datagram):
    """fields returns the assignments of one notify message as a dict."""
    text = datagram.decode()
    assert not text.endswith("\n"), text
    return dict(line.split("=", 1) for line in text.split("\n"))


def receive(sock):
    """receive returns the next message's fields, failing after
    RECV_TIMEOUT seconds."""
    sock.settimeout(RECV_TIMEOUT)
    return fields(sock.recv(4096))


def assert_no_more(sock):
    sock.settimeout(0)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


def run_lifecycle(tlsterm_factory, backend_factory, certs, sock, notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket)
    echo = backend_factory("echo")
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", echo, certs)]))

    ready = receive(sock)
    assert ready["READY"] == "1" and "serving 1 listeners" in ready["STATUS"], ready

    mark = proxy.mark()
    proxy.send_signal(signal.SIGHUP)
    reloading = receive(sock)
    assert reloading["RELOADING"] == "1", reloading
    # CLOCK_MONOTONIC in microseconds, as systemd compares it.
    assert 0 < int(reloading["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000, reloading
    done = receive(sock)
    assert done["READY"] == "1" and "generation 2 in force" in done["STATUS"], done
    proxy.wait_for("reload_done", since=mark)

    # A failed reload ends with READY=1 too: the old configuration serves.
    good = proxy.config_path.read_text()
    proxy.config_path.write_text(good.replace("listeners:", "listeners: [", 1))
    proxy.send_signal(signal.SIGHUP)
    assert receive(sock)["RELOADING"] == "1"
    failed = receive(sock)
    assert failed["READY"] == "1" and "failed" in failed["STATUS"], failed
    proxy.wait_for("reload_failed", since=mark)
    proxy.config_path.write_text(good)

    assert proxy.stop() == 0
    stopping = receive(sock)
    assert stopping["STOPPING"] == "1" and "draining" in stopping["STATUS"], stopping
    # drain_timeout 30s, no drain_delay.
    assert int(stopping["EXTEND_TIMEOUT_USEC"]) == 30_000_000 + STOP_MARGIN_USEC, stopping
    assert_no_more(sock)
    assert not proxy.find("sd_notify")


def test_notify_socket_path(tlsterm_factory, backend_factory, certs, notify_dir, monkeypatch):
    path = os.path.join(notify_dir, "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        run_lifecycle(tlsterm_factory, backend_factory, certs, sock, path, monkeypatch)


def test_notify_abstract_socket(tlsterm_factory, backend_factory, certs, monkeypatch):
    name = f"tlsterm-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        run_lifecycle(tlsterm_factory, backend_factory, certs, sock, "@" + name, monkeypatch)


def test_stop_extends_the_stop_timeout(
    tlsterm_factory, backend_factory, certs, notify_dir, monkeypatch
):
    """drain_delay may be longer than the unit's TimeoutStopSec=: the stop
    signal tells systemd EXTEND_TIMEOUT_USEC= of drain_delay + drain_timeout
    + the margin, and the drain's start the rest (drain_timeout + the
    margin), so that systemd does not SIGKILL tlsterm mid-drain."""
    path = os.path.join(notify_dir, "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        config = tlsterm_config(
            [listener_config("edge", backend_factory("echo"), certs)], drain_timeout="7s"
        )
        # Long enough that only the second signal ends it.
        config["drain_delay"] = "50s"
        proxy = tlsterm_factory(config)
        assert receive(sock)["READY"] == "1"
        mark = proxy.mark()
        proxy.send_signal(signal.SIGTERM)
        delayed = receive(sock)
        assert delayed["STOPPING"] == "1" and "draining in 50000 ms" in delayed["STATUS"], delayed
        assert int(delayed["EXTEND_TIMEOUT_USEC"]) == 57_000_000 + STOP_MARGIN_USEC, delayed
        proxy.wait_for("drain_delayed", since=mark)
        proxy.send_signal(signal.SIGTERM)
        draining = receive(sock)
        assert draining["STOPPING"] == "1" and "draining 0" in draining["STATUS"], draining
        assert int(draining["EXTEND_TIMEOUT_USEC"]) == 7_000_000 + STOP_MARGIN_USEC, draining
        assert proxy.wait_exit() == 0
        assert_no_more(sock)


@pytest.mark.parametrize(
    "where, expected",
    [("relative/notify", "not an absolute path"), ("missing", "cannot notify systemd")],
)
def test_bad_notify_socket_is_one_warning(
    tlsterm_factory, backend_factory, certs, notify_dir, monkeypatch, where, expected
):
    """A relative NOTIFY_SOCKET is refused with a warning, and a socket
    that is not there costs one warning however many messages fail: tlsterm
    serves on regardless."""
    monkeypatch.setenv(
        "NOTIFY_SOCKET", where if where.startswith("relative") else os.path.join(notify_dir, where)
    )
    echo = backend_factory("echo")
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", echo, certs)]))
    proxy.send_signal(signal.SIGHUP)
    proxy.wait_for("reload_done")
    assert proxy.stop() == 0
    warnings = proxy.find("sd_notify")
    assert len(warnings) == 1 and expected in warnings[0]["msg"], warnings


def unit_settings():
    """unit_settings returns conf/tlsterm.service's [Service] assignments; a
    key given more than once (ExecReload=) maps to the list of its values."""
    unit = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "tlsterm.service")
    settings = {}
    for line in open(unit):
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            if key in settings:
                previous = settings[key]
                settings[key] = (previous if isinstance(previous, list) else [previous]) + [value]
            else:
                settings[key] = value
    return settings


def free_low_port():
    for port in range(1000, 600, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port below 1024")


@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv to another user needs root")
def test_runs_as_the_unit_runs_it(backend_factory, certs, notify_dir, monkeypatch):
    """What conf/tlsterm.service sets up, without systemd: another user
    (nobody for tlsterm), CAP_NET_BIND_SERVICE as the one ambient
    capability, no new privileges. tlsterm binds a port below 1024, says
    READY=1, and keeps only that capability."""
    settings = unit_settings()
    assert settings["Type"] == "notify"
    # The check first, at start and at reload: a bad file fails the command.
    check = "/usr/local/bin/tlsterm --check -c /etc/tlsterm/tlsterm.yaml"
    assert settings["ExecStartPre"] == check
    assert settings["ExecStart"] == "/usr/local/bin/tlsterm -c /etc/tlsterm/tlsterm.yaml"
    assert settings["ExecReload"] == [check, "/bin/kill -HUP $MAINPID"]
    assert settings["StandardOutput"] == "null"  # --check's description, not the log
    assert "LoadCredential" not in settings  # optional: README installs a 0640 key
    assert settings["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert settings["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert settings["NoNewPrivileges"] == "yes"
    assert int(settings["TimeoutStopSec"].rstrip("s")) > 30  # the default drain_timeout

    # Configuration and certificates where nobody can read them.
    workdir = Path(notify_dir)
    os.chmod(workdir, 0o755)
    for name in ("ecdsa.pem", "ecdsa.key"):
        shutil.copy(certs.dir / name, workdir / name)
        os.chmod(workdir / name, 0o644)
    path = os.path.join(notify_dir, "notify")
    echo = backend_factory("echo")
    port = free_low_port()
    pair = {"cert": str(workdir / "ecdsa.pem"), "key": str(workdir / "ecdsa.key")}
    listener = listener_config("edge", echo, certs, listen=(f"127.0.0.1:{port}",), cert=[pair])
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        os.chmod(path, 0o777)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        cap = settings["AmbientCapabilities"].lower().removeprefix("cap_")
        proxy = Tlsterm(
            workdir,
            tlsterm_config([listener]),
            prefix=[
                "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                f"--inh-caps=-all,+{cap}", f"--ambient-caps=-all,+{cap}",
                f"--bounding-set=-all,+{cap}", "--no-new-privs",
            ],
        )
        try:
            proxy.start()
            check_unit_process(proxy, sock, port)
        finally:
            proxy.finish()


def check_unit_process(proxy, sock, port):
    """check_unit_process checks what tlsterm does and holds under the unit's
    settings: READY=1, the low port, nobody's uid, the one capability, a
    reload and a stop told to systemd."""
    assert receive(sock)["READY"] == "1"
    assert proxy.port("edge") == port
    status = open(f"/proc/{proxy.pid}/status").read()
    assert "\nUid:\t65534\t" in status, status
    # CAP_NET_BIND_SERVICE is bit 10: permitted, effective, ambient.
    for field in ("CapPrm", "CapEff", "CapAmb"):
        assert f"\n{field}:\t{1 << 10:016x}\n" in status, status
    proxy.send_signal(signal.SIGHUP)
    assert receive(sock)["RELOADING"] == "1"
    assert receive(sock)["READY"] == "1"
    assert proxy.stop() == 0
    assert receive(sock)["STOPPING"] == "1"
