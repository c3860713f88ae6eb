"""security.seccomp: the allow-list of system calls installed once the start
is over. A call outside it kills the process (SIGSYS) and the kernel writes
an audit record naming it; "log" lets the call through and only writes the
record. --check shows the setting, and a bad value is refused at its
position. The other paths (tcp, http, redirect, admin, reload, report
writes, drain) run with the filter on in ctest's integration_seccomp entry
(TLSTERM_TEST_SECCOMP=1 in tlsterm_harness.py).

The disallowed call comes from a hook of debug builds only:
TLSTERM_SECCOMP_SELFTEST makes tlsterm call chroot("/") right after
installing the filter."""

import os
import re
import signal
import subprocess
import time

import pytest

from backend import HTTP_BODY
from tlsterm_harness import (
    SECCOMP_TEST,
    admin_addr,
    curl,
    get,
    reload_and_wait,
    TIMEOUT,
    TLSTERM_BIN,
    Tlsterm,
    listener_config,
    run_tlsterm,
    sanitizer_env,
    text,
    tls_connect,
    client_context,
    tlsterm_config,
    to_yaml,
    write_yaml,
)

SYS_CHROOT_X86_64 = 161
# SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_LOG, as the audit record shows them.
CODE_KILL = "0x80000000"
CODE_LOG = "0x7ffc0000"


def seccomp_config(backend, certs, mode):
    config = tlsterm_config([listener_config("edge", backend, certs)])
    config["security"] = {"seccomp": mode}
    return config


def audit_records(pid):
    """audit_records returns the kernel's seccomp audit records (type=1326)
    for |pid|, or None when the kernel log cannot be read here."""
    result = subprocess.run(["dmesg"], capture_output=True, timeout=TIMEOUT)
    if result.returncode != 0:
        return None
    return [line for line in result.stdout.decode(errors="replace").splitlines()
            if "type=1326" in line and re.search(rf"\bpid={pid}\b", line)]


def wait_audit_record(pid, code):
    """wait_audit_record waits for the record of |pid|'s chroot with
    |code|, and returns it; None when the kernel log cannot be read."""
    deadline = time.monotonic() + 10
    while True:
        records = audit_records(pid)
        if records is None:
            return None
        for record in records:
            if f"syscall={SYS_CHROOT_X86_64} " in record and f"code={code}" in record:
                return record
        assert time.monotonic() < deadline, records
        time.sleep(0.05)


def test_check_shows_the_setting(certs, tmp_path):
    for mode, line in [(True, "security: seccomp on (a system call outside the allow-list "
                              "kills the process; the kernel logs it)"),
                       ("log", "security: seccomp log (a system call outside the allow-list is "
                               "allowed and logged by the kernel)"),
                       (False, "security: seccomp off")]:
        path = write_yaml(tmp_path, seccomp_config("127.0.0.1:9", certs, mode))
        result = run_tlsterm("--check", "-c", path)
        assert result.returncode == 0, text(result)
        assert line + "\n" in result.stdout.decode(), text(result)


def test_bad_value_is_refused_at_its_position(certs, tmp_path):
    path = write_yaml(tmp_path, seccomp_config("127.0.0.1:9", certs, "strict"))
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.strip() == "seccomp: strict")
    column = lines[number - 1].index("strict") + 1
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    assert (f"{path}:{number}:{column}: invalid seccomp 'strict'; expected true (a system call "
            "outside the allow-list kills the process), false or log (allowed, and logged by "
            "the kernel)") in result.stderr.decode(), text(result)
    # And the map takes no other key.
    config = seccomp_config("127.0.0.1:9", certs, True)
    config["security"]["seccomp_mode"] = "kill"
    path = write_yaml(tmp_path, config)
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    assert "unknown key 'seccomp_mode' in security" in result.stderr.decode(), text(result)


def test_the_filter_is_on_for_the_run(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(seccomp_config(backend_factory("echo"), certs, True))
    event = proxy.wait_for("seccomp")
    assert event["mode"] == "kill" and event["rules"] > 100, event
    # In force on every thread: /proc says so for each (2: filter mode).
    tasks = os.listdir(f"/proc/{proxy.pid}/task")
    assert len(tasks) >= 4, tasks
    for task in tasks:
        status = open(f"/proc/{proxy.pid}/task/{task}/status").read()
        assert re.search(r"^Seccomp:\s+2$", status, re.M), (task, status)
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), (task, status)
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        tls.sendall(b"filtered")
        assert tls.recv(8) == b"filtered"


def test_off_by_default(tlsterm_factory, backend_factory, certs):
    if SECCOMP_TEST:
        pytest.skip("the harness turns the filter on for every configuration")
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    proxy = tlsterm_factory(config)
    assert not proxy.find("seccomp")
    status = open(f"/proc/{proxy.pid}/status").read()
    assert re.search(r"^Seccomp:\s+0$", status, re.M), status


def test_disallowed_call_kills_the_process(backend_factory, certs, tmp_path):
    path = write_yaml(tmp_path, seccomp_config(backend_factory("echo"), certs, True))
    env = {**sanitizer_env(), "TLSTERM_SECCOMP_SELFTEST": "1"}
    proc = subprocess.Popen([TLSTERM_BIN, "-c", str(path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        code = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.skip("a release build: no self-test hook, and tlsterm ran on")
    log = proc.stderr.read().decode()
    # Killed by the kernel, not an exit of its own: no "started", no
    # sanitizer report.
    assert code == -signal.SIGSYS, (code, log)
    assert '"event":"started"' not in log, log
    record = wait_audit_record(proc.pid, CODE_KILL)
    if record is not None:
        assert 'comm="tlsterm"' in record and "sig=31" in record, record


def test_log_mode_lets_the_call_through(backend_factory, certs, tmp_path):
    proxy = Tlsterm(tmp_path, seccomp_config(backend_factory("echo"), certs, "log"))
    saved = os.environ.get("TLSTERM_SECCOMP_SELFTEST")
    os.environ["TLSTERM_SECCOMP_SELFTEST"] = "1"
    try:
        proxy.start()
    finally:
        if saved is None:
            del os.environ["TLSTERM_SECCOMP_SELFTEST"]
        else:
            os.environ["TLSTERM_SECCOMP_SELFTEST"] = saved
    try:
        assert proxy.wait_for("seccomp")["mode"] == "log"
        if not proxy.find("seccomp_selftest"):
            pytest.skip("a release build: no self-test hook")
        with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
            tls.sendall(b"logged")
            assert tls.recv(6) == b"logged"
        record = wait_audit_record(proxy.pid, CODE_LOG)
        if record is None:
            pytest.skip("the kernel log cannot be read here")
    finally:
        assert proxy.stop() == 0


def test_reload_resolver_and_checks_under_the_filter(tlsterm_factory, backend_factory, certs):
    """The paths that start does not take run under the filter: a reload
    reads the files again and resolves a host name new to it (getaddrinfo
    on the main thread, then on the resolver thread every resolve_interval,
    with /etc/hosts and nsswitch), and the health thread checks over HTTP."""
    port = backend_factory("http").addr.rsplit(":", 1)[1]
    config = tlsterm_config([listener_config("edge", f"127.0.0.1:{port}", certs)])
    config["admin"] = {"listen": "127.0.0.1:0"}
    config["security"] = {"seccomp": True}
    proxy = tlsterm_factory(config)

    def fetch():
        result = curl(f"https://localhost:{proxy.port('edge')}/", proxy.port("edge"), certs.ca)
        assert result.returncode == 0 and result.stdout == HTTP_BODY, text(result)

    fetch()

    config["listeners"][0]["backend"] = {
        "servers": [f"localhost:{port}"], "resolve_interval": "1s",
        "health": {"check": {"type": "http", "path": "/", "interval": "200ms",
                             "timeout": "100ms"}}}
    proxy.config_path.write_text(to_yaml(config))
    reload_and_wait(proxy)
    # Resolved again by the resolver thread, twice, and checked.
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        fetch()
        time.sleep(0.25)
    assert proxy.running()
    assert get(admin_addr(proxy), "/backends")[0] == 200


def test_reload_cannot_lift_the_filter(tlsterm_factory, backend_factory, certs):
    config = seccomp_config(backend_factory("echo"), certs, True)
    proxy = tlsterm_factory(config)
    config["security"]["seccomp"] = False
    proxy.config_path.write_text(to_yaml(config))
    reload_and_wait(proxy)
    [warning] = proxy.find("reload_partial")
    assert "'security.seccomp' takes effect only at the next restart" in warning["msg"], warning
    status = open(f"/proc/{proxy.pid}/status").read()
    assert re.search(r"^Seccomp:\s+2$", status, re.M), status
    # Back to what is in force: nothing to say.
    config["security"]["seccomp"] = True
    proxy.config_path.write_text(to_yaml(config))
    reload_and_wait(proxy)
    assert len(proxy.find("reload_partial")) == 1


def test_reload_with_a_scoped_ipv6_backend(tlsterm_factory, backend_factory, certs):
    """A scoped IPv6 address ("%lo") is parsed with if_nametoindex, an
    ioctl (SIOCGIFINDEX) on a socket of glibc's: a reload that adds one
    runs under the filter, and the proxy keeps serving."""
    echo = backend_factory("echo")
    config = seccomp_config(echo, certs, True)
    proxy = tlsterm_factory(config)
    config["listeners"][0]["backend"]["servers"] = [echo.addr, "[fe80::1%lo]:8080"]
    proxy.config_path.write_text(to_yaml(config))
    reload_and_wait(proxy)
    assert proxy.running()
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        assert tls.getpeercert(binary_form=True)
    assert proxy.running()
