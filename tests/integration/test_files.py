"""The files a configuration names: anything but a regular file (a FIFO
here) is refused at once with FILE:LINE:COL, at --check and at reload, where
opening it used to block the main thread for good; and files that hold
secrets (private keys, ticket keys), or the report dir, with loose
permissions are warned about, at --check and at start."""

import base64
import json
import os
import shutil
import signal
import time

import pytest

from tlsterm_harness import (
    client_context,
    listener_config,
    reload_and_wait,
    run_tlsterm,
    text,
    tls_connect,
    tlsterm_config,
    to_yaml,
    write_yaml,
)

# Refusing a FIFO takes no time; an open(2) that blocks on one never ends.
QUICK = 10


def refused_quickly(path):
    """refused_quickly runs --check on |path| and returns its stderr, having
    asserted exit 1 within QUICK seconds."""
    started = time.monotonic()
    result = run_tlsterm("--check", "-c", str(path), timeout=QUICK)
    assert result.returncode == 1, text(result)
    assert time.monotonic() - started < QUICK
    return result.stderr.decode(errors="replace")


def fifo_config(certs, tmp_path, where):
    """fifo_config returns a configuration whose |where| file is a FIFO."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    listener = listener_config("edge", "127.0.0.1:9", certs)
    pair = listener["tls"]["certificates"][0]
    config = tlsterm_config([listener])
    if where in ("cert", "key", "ocsp"):
        pair[where] = str(fifo)
    elif where == "ca":
        listener["tls"]["client_auth"] = {"mode": "required", "ca": str(fifo)}
    else:
        config["session_tickets"] = {"key_file": str(fifo)}
    return config, fifo


def test_fifo_as_config_file_refused(tmp_path):
    fifo = tmp_path / "tlsterm.yaml"
    os.mkfifo(fifo)
    stderr = refused_quickly(fifo)
    assert f"{fifo}:1:1: cannot read file: not a regular file (a FIFO)" in stderr, stderr


@pytest.mark.parametrize("where", ["cert", "key", "ocsp", "ca", "key_file"])
def test_fifo_named_by_config_refused(certs, tmp_path, where):
    config, fifo = fifo_config(certs, tmp_path, where)
    path = write_yaml(tmp_path, config, "t.yaml")
    stderr = refused_quickly(path)
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if str(fifo) in l)
    assert f"{path}:{line}:" in stderr and f"'{fifo}': not a regular file (a FIFO)" in stderr, stderr


def test_reload_naming_a_fifo_fails_and_keeps_serving(tlsterm_factory, backend_factory, certs, tmp_path):
    listener = listener_config("edge", backend_factory("echo"), certs)
    proxy = tlsterm_factory(tlsterm_config([listener]))
    port = proxy.port("edge")
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    listener["tls"]["certificates"][0]["cert"] = str(fifo)
    proxy.config_path.write_text(to_yaml(tlsterm_config([listener])))

    failed = reload_and_wait(proxy, "reload_failed")
    assert f"'{fifo}': not a regular file (a FIFO)" in failed["error"], failed
    assert failed["error"].startswith(f"{proxy.config_path}:"), failed
    with tls_connect(port, client_context(certs.ca)) as tls:
        tls.sendall(b"x")
        assert tls.recv(1) == b"x"
    # The main thread is in its loop, not stuck in an open(2): SIGTERM works.
    assert proxy.stop(signal.SIGTERM, timeout=QUICK) == 0


# ---- permissions ------------------------------------------------------------


def permission_warnings(stderr):
    """permission_warnings returns the file_permissions log events in
    |stderr|."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "file_permissions":
                events.append(event)
    return events


def check_warnings(path):
    """check_warnings runs --check on |path|, which must pass, and returns
    its file_permissions warnings."""
    result = run_tlsterm("--check", "-c", str(path))
    assert result.returncode == 0, text(result)
    return permission_warnings(result.stderr.decode(errors="replace"))


def warned_until_fixed(path, target, problem, fixed_mode):
    """warned_until_fixed asserts that --check on |path| warns once, about
    |target| being |problem|, and no more once |target| has |fixed_mode|."""
    warnings = check_warnings(path)
    assert [w["file"] for w in warnings] == [str(target)], warnings
    assert problem in warnings[0]["msg"], warnings
    os.chmod(target, fixed_mode)
    assert check_warnings(path) == []


def key_with_mode(certs, tmp_path, mode):
    key = tmp_path / "site.key"
    shutil.copyfile(certs.ecdsa_key, key)
    os.chmod(key, mode)
    return key


@pytest.mark.parametrize(
    "mode, problem",
    [(0o604, "readable by others"), (0o620, "writable by group"), (0o602, "writable by others"),
     (0o640, None), (0o600, None), (0o400, None)],
    ids=["0604", "0620", "0602", "0640", "0600", "0400"],
)
def test_private_key_permissions(certs, tmp_path, mode, problem):
    key = key_with_mode(certs, tmp_path, mode)
    listener = listener_config("edge", "127.0.0.1:9", certs,
                               cert=[{"cert": str(certs.ecdsa_cert), "key": str(key)}])
    path = write_yaml(tmp_path, tlsterm_config([listener]), "t.yaml")
    warnings = check_warnings(path)
    if problem is None:
        assert warnings == [], warnings
        return
    assert len(warnings) == 1, warnings
    warning = warnings[0]
    assert warning["level"] == "warn" and warning["file"] == str(key), warning
    assert warning["mode"] == f"{mode:04o}" and problem in warning["msg"], warning
    assert warning["where"].startswith(f"{path}:"), warning


def test_ticket_key_file_permissions(certs, tmp_path):
    keys = tmp_path / "ticket.keys"
    keys.write_text(base64.b64encode(os.urandom(80)).decode() + "\n")
    os.chmod(keys, 0o644)
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs)])
    config["session_tickets"] = {"key_file": str(keys)}
    path = write_yaml(tmp_path, config, "t.yaml")
    warned_until_fixed(path, keys, "readable by others", 0o640)


def test_report_dir_writable_by_others(certs, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    os.chmod(reports, 0o777)
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs)])
    config["report"] = {"dir": str(reports)}
    path = write_yaml(tmp_path, config, "t.yaml")
    warned_until_fixed(path, reports, "writable by others", 0o755)


def test_permission_warning_logged_at_start(tlsterm_factory, backend_factory, certs, tmp_path):
    key = key_with_mode(certs, tmp_path, 0o604)
    listener = listener_config("edge", backend_factory("echo"), certs,
                               cert=[{"cert": str(certs.ecdsa_cert), "key": str(key)}])
    proxy = tlsterm_factory(tlsterm_config([listener]))
    warning = proxy.wait_for("file_permissions", file=str(key))
    assert warning["level"] == "warn", warning
    # A warning, not an error: it serves.
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        tls.sendall(b"x")
        assert tls.recv(1) == b"x"
