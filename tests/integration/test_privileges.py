"""user: every file a reload reads and the report directory a report write
needs are checked as that user at --check and at start (in a child that
switches to it), so a key only root can read is an error naming the file,
the user and the fix, not a failure of every later reload. PR_SET_NO_NEW_PRIVS
is always set. The tests run as root and use the system's "nobody"."""

import grp
import os
import pwd
import re
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tlsterm_harness import (
    TLSTERM_BIN,
    Tlsterm,
    listener_config,
    reload_and_wait,
    run,
    run_tlsterm,
    sanitizer_env,
    text,
    tlsterm_config,
    write_yaml,
)

NOBODY = pwd.getpwnam("nobody")
NOBODY_GROUP = grp.getgrgid(NOBODY.pw_gid).gr_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


@pytest.fixture
def shared_dir(certs):
    """A directory everyone may search, owned by root, with a copy of the
    certificate and key (mode 0600, root's: what a first install looks
    like) and a report directory."""
    directory = Path(tempfile.mkdtemp(prefix="tlsterm-priv-"))
    try:
        os.chmod(directory, 0o755)
        for name in ("ecdsa.pem", "ecdsa.key"):
            shutil.copy(certs.dir / name, directory / name)
        os.chmod(directory / "ecdsa.pem", 0o644)
        os.chmod(directory / "ecdsa.key", 0o600)
        (directory / "reports").mkdir(mode=0o755)
        yield directory
    finally:
        shutil.rmtree(directory)


def nobody_config(directory, certs, **top):
    pair = {"cert": str(directory / "ecdsa.pem"), "key": str(directory / "ecdsa.key")}
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs, cert=[pair])])
    config["user"] = "nobody"
    config.update(top)
    return config


def key_line(config_path):
    """key_line returns the line and column of the key: value."""
    for number, line in enumerate(Path(config_path).read_text().splitlines(), 1):
        if "ecdsa.key" in line:
            return number, line.index(str(Path(config_path).parent / "ecdsa.key")) + 1
    raise AssertionError("no key line")


def test_unreadable_key_is_an_error_at_check_and_start(shared_dir, certs):
    config_path = write_yaml(shared_dir, nobody_config(shared_dir, certs))
    line, col = key_line(config_path)
    key = shared_dir / "ecdsa.key"
    expected = (
        f"{config_path}:{line}:{col}: user 'nobody' cannot read '{key}' (Permission denied), "
        f"as every reload will need: run as a user with a group of its own rather than "
        f"'{NOBODY_GROUP}', which other users share (useradd --system --user-group tlsterm, "
        f"user: tlsterm, then chgrp tlsterm '{key}' && chmod g+r '{key}'"
    )
    check = run_tlsterm("--check", "-c", str(config_path))
    assert check.returncode == 1, text(check)
    assert expected in check.stderr.decode(), text(check)
    assert "LoadCredential=" in check.stderr.decode()
    assert b": ok" not in check.stdout

    # The daemon refuses to start the same way (exit 1, nothing bound).
    start = run_tlsterm("-c", str(config_path))
    assert start.returncode == 1, text(start)
    stderr = start.stderr.decode()
    assert expected in stderr and '"listening"' not in stderr, text(start)


def test_unreadable_config_and_unwritable_report_dir(shared_dir, certs):
    os.chown(shared_dir / "ecdsa.key", 0, NOBODY.pw_gid)
    os.chmod(shared_dir / "ecdsa.key", 0o640)
    config_path = write_yaml(
        shared_dir,
        nobody_config(shared_dir, certs, report={"interval": "1s", "dir": str(shared_dir / "reports")}),
    )
    os.chmod(config_path, 0o600)
    check = run_tlsterm("--check", "-c", str(config_path))
    assert check.returncode == 1, text(check)
    errors = check.stderr.decode().splitlines()
    assert (
        f"{config_path}:1:1: user 'nobody' cannot read the configuration file '{config_path}' "
        "(Permission denied)" in errors[0]
    ), text(check)
    assert re.match(
        rf"{re.escape(str(config_path))}:\d+:\d+: user 'nobody' cannot write to report dir "
        rf"'{re.escape(str(shared_dir / 'reports'))}' \(Permission denied\).*"
        r"StateDirectory=",
        errors[1],
    ), text(check)
    assert len(errors) == 2, text(check)


def test_files_readable_by_the_users_group_reload_and_report(shared_dir, certs):
    """What the error asks for works: with the key group-readable by
    nobody's group and the report dir nobody's, the daemon starts, reloads
    as nobody (it could not before: every reload failed on the key) and
    writes its reports. NoNewPrivs is set."""
    os.chown(shared_dir / "ecdsa.key", 0, NOBODY.pw_gid)
    os.chmod(shared_dir / "ecdsa.key", 0o640)
    os.chown(shared_dir / "reports", NOBODY.pw_uid, NOBODY.pw_gid)
    config = nobody_config(
        shared_dir, certs, report={"interval": "1s", "dir": str(shared_dir / "reports")}
    )
    check = run_tlsterm("--check", "-c", str(write_yaml(shared_dir, config)))
    assert check.returncode == 0, text(check)

    proxy = Tlsterm(shared_dir, config)
    try:
        proxy.start()
        proxy.wait_for("privileges")
        status = Path(f"/proc/{proxy.pid}/status").read_text()
        assert re.search(r"^Uid:\s+65534\s", status, re.M), status
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        done = reload_and_wait(proxy)
        assert done["generation"] == 2, done
        assert not proxy.find("reload_failed")
        written = proxy.wait_for("report_written")
        assert Path(written["file"]).parent == shared_dir / "reports", written
        assert not proxy.find("report_write_failed")
    finally:
        proxy.finish()


def test_no_new_privs_without_user(shared_dir, certs):
    config = nobody_config(shared_dir, certs)
    del config["user"]
    proxy = Tlsterm(shared_dir, config)
    try:
        proxy.start()
        status = Path(f"/proc/{proxy.pid}/status").read_text()
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for("reload_done")
    finally:
        proxy.finish()


def test_check_without_root_warns_that_it_cannot_switch(shared_dir, certs):
    """--check run by someone who cannot switch to user: (here nobody, for
    user: daemon) says that the check as that user was skipped, and goes on:
    the start, as root, will run it."""
    os.chmod(shared_dir / "ecdsa.key", 0o644)
    config = nobody_config(shared_dir, certs)
    config["user"] = "daemon"
    config_path = write_yaml(shared_dir, config)
    check = run(
        ["setpriv", "--reuid=nobody", f"--regid={NOBODY.pw_gid}", "--clear-groups",
         TLSTERM_BIN, "--check", "-c", config_path],
        env=sanitizer_env(),
    )
    assert check.returncode == 0, text(check)
    assert (
        "cannot check file access as user 'daemon' (Operation not permitted): start tlsterm as root"
        in check.stderr.decode()
    ), text(check)
