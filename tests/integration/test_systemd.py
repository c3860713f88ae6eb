"""systemd's notify protocol (Type=notify in conf/tlsterm.service): a
datagram socket bound by the test stands in for systemd, tlsterm finds it in
$NOTIFY_SOCKET, and the messages arrive in order: READY=1 once serving,
RELOADING=1 then READY=1 around each reload (whatever its outcome),
STOPPING=1 when the drain starts."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from tlsterm_harness import TLSTERM_BIN, listener_config, sanitizer_env, tlsterm_config, to_yaml

RECV_TIMEOUT = 10


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


def test_no_notify_socket_sends_nothing_and_bad_one_is_a_warning(
    backend_factory, certs, tmp_path, notify_dir
):
    """A relative NOTIFY_SOCKET is refused with a warning, and a socket
    that went away costs one warning: tlsterm serves on regardless."""
    echo = backend_factory("echo")
    config_path = tmp_path / "tlsterm.yaml"
    config_path.write_text(to_yaml(tlsterm_config([listener_config("edge", echo, certs)])))
    for value, expected in (
        ("relative/notify", "not an absolute path"),
        (os.path.join(notify_dir, "missing"), "cannot notify systemd"),
    ):
        env = dict(sanitizer_env(), NOTIFY_SOCKET=value)
        proc = subprocess.Popen(
            [TLSTERM_BIN, "-c", str(config_path)], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            lines = []
            for line in proc.stderr:
                lines.append(line)
                if '"started"' in line:
                    break
            proc.send_signal(signal.SIGTERM)
            _, rest = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log = "".join(lines) + rest
        assert proc.returncode == 0, log
        warnings = [l for l in log.splitlines() if '"sd_notify"' in l]
        assert len(warnings) == 1 and expected in warnings[0], log
