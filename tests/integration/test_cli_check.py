"""--check as an operator reads it (the effective settings, only the suites a
handshake can pick, warnings apart from the report), the configuration
mistakes it names with a fix, and what a reload compares with: the running
process, not the previous file."""

import json
import os
import pty
import re
import subprocess

from tlsterm_harness import (
    TIMEOUT,
    TLSTERM_BIN,
    listener_config,
    reload_and_wait,
    run_tlsterm,
    sanitizer_env,
    text,
    tlsterm_config,
    to_yaml,
    write_yaml,
)

ECDSA_SUITES = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
RSA_SUITES = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"


def check(path):
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 0, text(result)
    return result


def check_fails(path):
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    assert b": ok" not in result.stdout, text(result)
    return result.stderr.decode()


def position(yaml_text, needle, nth=0):
    """position returns the (line, column) of the |nth| |needle| in
    |yaml_text|, both from 1."""
    at = -1
    for _ in range(nth + 1):
        at = yaml_text.index(needle, at + 1)
    line = yaml_text.count("\n", 0, at) + 1
    return line, at - (yaml_text.rfind("\n", 0, at) + 1) + 1


def block(stdout, name):
    """block returns the lines --check printed for listener |name|."""
    lines, inside = [], False
    for line in stdout.splitlines():
        if not line.startswith("  "):
            inside = line == f"listener {name}:"
        elif inside:
            lines.append(line.strip())
    return lines


# ---- what --check shows -----------------------------------------------------


def test_suites_follow_the_certificates(tmp_path, certs):
    """A listener with only an ECDSA certificate lists no ECDHE-RSA suite,
    one with only RSA no ECDHE-ECDSA suite, one with both lists all."""
    config = tlsterm_config([
        listener_config("ecdsa", "127.0.0.1:9", certs, cert="ecdsa"),
        listener_config("rsa", "127.0.0.1:9", certs, cert="rsa"),
        listener_config("both", "127.0.0.1:9", certs,
                        cert=[certs.pair("ecdsa"), certs.pair("rsa")]),
    ])
    out = check(write_yaml(tmp_path, config)).stdout.decode()
    assert (f"tls1.2 suites: {ECDSA_SUITES} (RSA suites left out: no RSA certificate)"
            in block(out, "ecdsa")), out
    assert (f"tls1.2 suites: {RSA_SUITES} (ECDSA suites left out: no ECDSA certificate)"
            in block(out, "rsa")), out
    both = [l for l in block(out, "both") if l.startswith("tls1.2 suites:")]
    assert both == ["tls1.2 suites: ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"], out


def test_check_output_has_no_log_lines_and_warnings_stay_on_stderr(tmp_path, certs):
    """The report on stdout holds no log line, JSON or text; a warning (a
    certificate listed twice) goes to stderr, as a log line of the
    configured format."""
    pair = certs.pair("ecdsa")
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs, cert=[pair, pair])])
    path = write_yaml(tmp_path, config)
    result = check(path)
    out = result.stdout.decode()
    assert not [l for l in out.splitlines() if l.startswith("{") or '"event"' in l], out
    assert out.splitlines()[-1] == f"{path}: ok", out
    warnings = [json.loads(l) for l in result.stderr.decode().splitlines() if l.startswith("{")]
    [dup] = [w for w in warnings if w["event"] == "duplicate_certificate"]
    line, col = position(path.read_text(), f"cert: {pair['cert']}", nth=1)
    assert dup["where"] == f"{path}:{line}:{col + len('cert: ')}", (dup, path.read_text())
    assert dup["file"] == pair["cert"]
    assert "entry 2 is that of entry 1" in dup["msg"], dup


def test_check_shows_admin_report_http_routes_and_candidate(tmp_path, certs):
    reports = tmp_path / "reports"
    reports.mkdir()
    web = listener_config("web", "127.0.0.1:9", certs,
                          tls={"report_only": {"policy": "custom", "min_version": "1.2",
                                               "groups": ["P-256"]}})
    web["mode"] = "http"
    web["http"] = {"hsts": {"max_age": "1d", "include_subdomains": True}}
    web["routes"] = [{"host": "api.example", "backend": {"servers": ["127.0.0.1:10"]}}]
    config = tlsterm_config([web])
    config["admin"] = {"listen": "127.0.0.1:0"}
    config["report"] = {"dir": str(reports), "interval": "15m", "keep": 3}
    config["workers"] = 2
    config["reload_on_change"] = True
    config["reload_poll_interval"] = "90s"
    out = check(write_yaml(tmp_path, config)).stdout.decode()
    lines = block(out, "web")
    for expected in [
        "listen: 127.0.0.1:0",
        "report only: custom, TLSv1.2 to TLSv1.3 (evaluated, not enforced)",
        f"report only tls1.2 suites: {ECDSA_SUITES} (RSA suites left out: no RSA certificate)",
        "report only groups: P-256",
        "route 1: host api.example -> web.route1",
        "route default: -> web",
        "http.hsts: max-age=86400; includeSubDomains",
        "connection timeouts: handshake 10s, connect 5s, idle 5m",
        "timeouts: request_header 10s, backend_response 1m, queue 5s",
    ]:
        assert expected in lines, f"{expected!r} not in {lines}"
    top = [l for l in out.splitlines() if not l.startswith("  ")]
    for expected in [
        "workers: 2",
        "admin: 127.0.0.1:0 (/healthz, /readyz, /metrics, /backends, /report)",
        "reload_on_change: true, reload_poll_interval 90s",
        f"report: interval 15m, dir {reports} (keep 3), organization tlsterm",
        "log: format json, level debug, access true, handshake_failures rate 20/s burst 100 "
        "summary_interval 10s",
    ]:
        assert expected in top, f"{expected!r} not in {top}"


# ---- mistakes named with their fix ------------------------------------------


def one_listener_yaml(certs, tls_extra="", backend='["127.0.0.1:9"]', top=""):
    return f"""{top}listeners:
  - name: edge
    listen: ["127.0.0.1:0"]
    tls:
      certificates:
        - {{cert: {certs.ecdsa_cert}, key: {certs.ecdsa_key}}}
{tls_extra}    backend: {{servers: {backend}}}
"""


def test_workers_error_names_auto(tmp_path, certs):
    path = tmp_path / "w.yaml"
    path.write_text(one_listener_yaml(certs, top="workers: two\n"))
    assert check_fails(path).splitlines() == [
        f'{path}:1:10: invalid workers \'two\'; expected "auto" (one per CPU) or an integer '
        "from 1 to 256"]


def test_openssl_group_names_get_a_suggestion(tmp_path, certs):
    yaml_text = one_listener_yaml(
        certs, tls_extra="      groups: [secp256r1, prime256v1, secp384r1, secp521r1, x25519]\n")
    path = tmp_path / "g.yaml"
    path.write_text(yaml_text)
    errors = check_fails(path).splitlines()
    expected = []
    for name, meant in [("secp256r1", "P-256"), ("prime256v1", "P-256"), ("secp384r1", "P-384"),
                        ("secp521r1", "P-521"), ("x25519", "X25519")]:
        line, col = position(yaml_text, name)
        expected.append(f"{path}:{line}:{col}: unknown group '{name}'; did you mean '{meant}'? "
                        "allowed: X25519, P-256, P-384, P-521")
    assert errors == expected


def test_alpn_accepts_one_string(tmp_path, certs):
    path = tmp_path / "a.yaml"
    path.write_text(one_listener_yaml(certs, tls_extra="      alpn: http/1.1\n"))
    assert "alpn: http/1.1" in block(check(path).stdout.decode(), "edge")
    # One string is checked like a list: h2 in front of an HTTP/1.1
    # backend is refused at it.
    yaml_text = one_listener_yaml(certs, tls_extra="      alpn: h2\n")
    path.write_text(yaml_text)
    line, col = position(yaml_text, "h2")
    [error] = check_fails(path).splitlines()
    assert error.startswith(f"{path}:{line}:{col}: alpn offers h2"), error


def test_backend_port_zero_is_refused(tmp_path, certs):
    yaml_text = one_listener_yaml(certs, backend='["127.0.0.1:0", "[::1]:00"]')
    path = tmp_path / "b.yaml"
    path.write_text(yaml_text)
    errors = check_fails(path).splitlines()
    assert errors == [
        f"{path}:{line}:{col}: invalid backend server address '{addr}': port 0 cannot be "
        "connected to; give the port the server listens on (1 to 65535)"
        # The listen address is also "127.0.0.1:0": the backend's is the second.
        for addr, nth in (("127.0.0.1:0", 1), ("[::1]:00", 0))
        for line, col in [position(yaml_text, f'"{addr}"', nth)]
    ]


def test_relative_path_error_names_the_directory(tmp_path, certs):
    yaml_text = one_listener_yaml(certs).replace(str(certs.ecdsa_cert), "certs/missing.pem")
    path = tmp_path / "r.yaml"
    path.write_text(yaml_text)
    line, col = position(yaml_text, "certs/missing.pem")
    errors = check_fails(path).splitlines()
    # run_tlsterm runs in the test's working directory.
    assert errors == [f"{path}:{line}:{col}: cannot read certificate file 'certs/missing.pem' "
                      f"(relative to the working directory {os.getcwd()}): No such file or "
                      "directory"], errors


# ---- reload compares with what runs ------------------------------------------


def test_listen_change_on_reload_is_reported_at_the_listen_line(tlsterm_factory, backend_factory,
                                                                 certs):
    echo = backend_factory("echo")
    config = tlsterm_config([listener_config("edge", echo, certs)])
    proxy = tlsterm_factory(config)
    config["listeners"][0]["listen"] = ["127.0.0.1:0", "127.0.0.2:0"]
    proxy.config_path.write_text(to_yaml(config))
    failed = reload_and_wait(proxy, "reload_failed")
    line, col = position(proxy.config_path.read_text(), "127.0.0.2:0")
    assert failed["error"] == (
        f"{proxy.config_path}:{line}:{col}: listener 'edge': listen adds address 127.0.0.2:0, "
        "which the running process does not listen on; that needs a restart, not a reload"
    ), failed
    config["listeners"][0]["listen"] = ["127.0.0.3:0"]
    proxy.config_path.write_text(to_yaml(config))
    failed = reload_and_wait(proxy, "reload_failed")
    line, col = position(proxy.config_path.read_text(), "127.0.0.3:0")
    assert failed["error"] == (
        f"{proxy.config_path}:{line}:{col}: listener 'edge': listen address 127.0.0.3:0 differs "
        "from the running 127.0.0.1:0; that needs a restart, not a reload"), failed


def test_reload_partial_compares_with_what_runs(tlsterm_factory, backend_factory, certs):
    """workers: 1 runs. A file with workers: 2 is warned about at each
    reload that keeps it (not only at the first), a failed reload between
    changes nothing, and going back to 1 warns no more."""
    echo = backend_factory("echo")
    config = tlsterm_config([listener_config("edge", echo, certs)])
    config["workers"] = 1
    proxy = tlsterm_factory(config)

    def reload_with(workers, broken=False):
        config["workers"] = workers
        body = to_yaml(config)
        proxy.config_path.write_text(body + ("bogus_key: 1\n" if broken else ""))
        mark = proxy.mark()
        done = reload_and_wait(proxy, "reload_failed" if broken else "reload_done")
        partial = proxy.find("reload_partial", since=mark)
        return done, partial

    for _ in range(2):
        _, partial = reload_with(2)
        assert [(p["workers_running"], p["workers_in_file"]) for p in partial] == [(1, 2)], partial
        assert partial[0]["msg"] == "'workers' takes effect only at the next restart"
    reload_with(1, broken=True)
    _, partial = reload_with(1)
    assert partial == [], partial
    # The process still runs one worker.
    [started] = proxy.find("started")
    assert started["workers"] == 1, started


def test_check_at_a_terminal_warns_in_text(tmp_path, certs):
    """Read by a person at a terminal, --check writes its warnings as text
    log lines, even before the file said which format it wants, and even
    when it says json; stdout is the report alone."""
    pair = certs.pair("ecdsa")
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs, cert=[pair, pair])])
    path = write_yaml(tmp_path, config)
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([TLSTERM_BIN, "--check", "-c", str(path)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=terminal, env=sanitizer_env(),
                                timeout=TIMEOUT)
        os.close(terminal)
        terminal = None
        err = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            err += chunk
    finally:
        if terminal is not None:
            os.close(terminal)
        os.close(controller)
    assert result.returncode == 0, (result.stdout, err)
    assert result.stdout.decode().splitlines()[-1] == f"{path}: ok"
    lines = err.decode().replace("\r\n", "\n").splitlines()
    assert lines and not [l for l in lines if l.startswith("{")], lines
    [dup] = [l for l in lines if " warn duplicate_certificate " in l]
    assert re.fullmatch(r"\S+ warn duplicate_certificate where=\S+ file=\S+ msg=\"the certificate "
                        r"file of entry 2 is that of entry 1 \(at \d+:\d+\): one of them is never "
                        r"served; remove it or name the file meant\"", dup), dup
