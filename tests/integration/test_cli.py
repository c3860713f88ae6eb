"""The command line: --check on good and bad configurations (errors as
FILE:LINE:COL: message at the lines written here), refusing to start on a bad
one, exit codes, --version and --help."""

import re
import socket
import subprocess

import pytest

from tlsterm_harness import REPO, TLSTERM_BIN, free_port, run_tlsterm, sanitizer_env, text

# A good configuration, one line per entry so each error has a known line.
# Lines are numbered from 1 in the tests, as in the messages.
GOOD = """\
log: {{format: json, level: info}}
drain_timeout: 5s
listeners:
  - name: edge
    listen: ["{listen}"]
    tls:
      certificates:
        - cert: {cert}
          key: {key}
      min_version: "1.2"
      max_version: "1.3"
    backend: {{servers: ["127.0.0.1:9"]}}
    timeouts: {{handshake: 10s, connect: 5s, idle: 300s}}
    max_connections: 100
"""


def write_config(tmp_path, certs, edits=None, listen="127.0.0.1:0", name="tlsterm.yaml"):
    """write_config writes GOOD with the lines in |edits| ({line number: new
    text}) replaced and returns (path, lines)."""
    lines = GOOD.format(listen=listen, cert=certs.ecdsa_cert, key=certs.ecdsa_key).splitlines()
    for number, new in (edits or {}).items():
        lines[number - 1] = new
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def errors_of(result, path):
    """errors_of returns the (line, col, message) of every
    "FILE:LINE:COL: message" line on stderr, failing on stderr lines of
    another shape (a JSON log line is allowed)."""
    errors = []
    pattern = re.compile(re.escape(str(path)) + r":(\d+):(\d+): (.+)")
    for line in result.stderr.decode(errors="replace").splitlines():
        match = pattern.fullmatch(line)
        if match:
            errors.append((int(match.group(1)), int(match.group(2)), match.group(3)))
        else:
            assert line.startswith("{") or not line.strip(), f"unexpected stderr line {line!r}"
    return errors


def col_of(line, token):
    """col_of returns the 1-based column of |token| in |line|."""
    return line.index(token) + 1


def check_refused(path, expected_line, allowed_cols, words):
    """check_refused runs --check on |path| and asserts exit 1 with an error
    at |expected_line| (a column from |allowed_cols|) whose message contains
    every one of |words| (case-insensitive). It returns all errors."""
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    assert b": ok" not in result.stdout, text(result)
    errors = errors_of(result, path)
    assert errors, f"no FILE:LINE:COL error\n{text(result)}"
    hits = [e for e in errors if e[0] == expected_line]
    assert hits, f"no error at line {expected_line}: {errors}"
    line, col, message = hits[0]
    assert col in allowed_cols, f"column {col} not in {allowed_cols}: {hits[0]}"
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in message: {message!r}"
    return errors


def test_check_good_config(tmp_path, certs):
    path, _ = write_config(tmp_path, certs)
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 0, text(result)
    # Lines describing the effective policy may come first; the verdict is
    # the last line.
    assert result.stdout.decode().splitlines()[-1] == f"{path}: ok", text(result)
    assert b'"listening"' not in result.stderr


def test_check_unknown_key(tmp_path, certs):
    path, lines = write_config(tmp_path, certs, {11: '      max_verison: "1.3"'})
    check_refused(path, 11, {col_of(lines[10], "max_verison")}, ["max_verison"])


def test_check_bad_min_version(tmp_path, certs):
    path, lines = write_config(tmp_path, certs, {10: '      min_version: "1.1"'})
    cols = {col_of(lines[9], "min_version"), col_of(lines[9], '"1.1"')}
    check_refused(path, 10, cols, ["min_version", "1.1"])


def test_check_missing_cert_file(tmp_path, certs):
    missing = tmp_path / "no-such-cert.pem"
    path, lines = write_config(tmp_path, certs, {8: f"        - cert: {missing}"})
    cols = {col_of(lines[7], "cert"), col_of(lines[7], str(missing))}
    check_refused(path, 8, cols, [str(missing)])


def test_check_key_does_not_match_cert(tmp_path, certs):
    path, lines = write_config(tmp_path, certs, {9: f"          key: {certs.rsa_key}"})
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    errors = errors_of(result, path)
    # The message may stand at the certificate or at the key.
    hits = [e for e in errors if e[0] in (8, 9)]
    assert hits, f"no error at line 8 or 9: {errors}\n{text(result)}"
    assert "match" in hits[0][2].lower(), hits[0]


def test_check_reports_every_error(tmp_path, certs):
    path, _ = write_config(
        tmp_path, certs, {10: '      min_version: "1.1"', 14: "    max_conections: 100"}
    )
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    lines = {e[0] for e in errors_of(result, path)}
    assert {10, 14} <= lines, f"one pass should report both errors: {text(result)}"


def test_check_caps_printed_errors(tmp_path):
    """A file with hundreds of errors prints the first 100, then how many
    more there are."""
    path = tmp_path / "many.yaml"
    path.write_text("".join(f"unknown_{i}: 1\n" for i in range(150)))
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    errors = errors_of_until_summary(result, path)
    # 150 unknown keys and the missing 'listeners'.
    assert len(errors) == 100, text(result)
    assert [e[0] for e in errors] == list(range(1, 101)), errors
    last = result.stderr.decode().splitlines()[-1]
    assert last == "... and 51 more errors", text(result)


def errors_of_until_summary(result, path):
    """errors_of_until_summary is errors_of for a stderr that ends in an
    "... and N more errors" line."""
    lines = result.stderr.decode().splitlines()
    assert lines and lines[-1].startswith("... and "), text(result)
    trimmed = subprocess.CompletedProcess(result.args, result.returncode, result.stdout,
                                          "\n".join(lines[:-1]).encode())
    return errors_of(trimmed, path)


def test_check_yaml_syntax_error(tmp_path, certs):
    path, _ = write_config(tmp_path, certs, {5: '    listen: ["127.0.0.1:0"'})
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    errors = errors_of(result, path)
    assert any(e[0] in (5, 6) for e in errors), text(result)


def test_check_missing_config_file(tmp_path):
    missing = tmp_path / "absent.yaml"
    result = run_tlsterm("--check", "-c", missing)
    assert result.returncode == 1, text(result)
    assert str(missing) in result.stderr.decode(), text(result)


def test_bad_config_refuses_to_start(tmp_path, certs):
    port = free_port()
    path, _ = write_config(
        tmp_path, certs, {10: '      min_version: "1.1"'}, listen=f"127.0.0.1:{port}"
    )
    result = run_tlsterm("-c", path)
    assert result.returncode == 1, text(result)
    assert any(e[0] == 10 for e in errors_of(result, path)), text(result)
    assert b'"listening"' not in result.stderr and b'"started"' not in result.stderr
    # Nothing is left bound on the port it would have used.
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_bind_failure_exits_3(tmp_path, certs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path, _ = write_config(tmp_path, certs, listen=f"127.0.0.1:{port}")
        result = run_tlsterm("-c", path)
    assert result.returncode == 3, text(result)
    assert f"127.0.0.1:{port}".encode() in result.stderr, text(result)
    assert b'"started"' not in result.stderr


def test_version():
    result = run_tlsterm("--version")
    assert result.returncode == 0, text(result)
    out = result.stdout.decode()
    for word in ("tlsterm", "BoringSSL", "libevent", "libyaml", "nghttp2"):
        assert word in out, f"{word} missing from --version: {out!r}"


def test_help():
    result = run_tlsterm("--help")
    assert result.returncode == 0, text(result)
    out = result.stdout.decode()
    assert "--check" in out and "-c" in out, out


@pytest.mark.parametrize("args", [["--no-such-option"], ["-c"]], ids=["unknown", "missing-arg"])
def test_usage_error_exits_2(args):
    result = run_tlsterm(*args)
    assert result.returncode == 2, text(result)
    assert result.stderr.strip(), "a usage error should say what is wrong"


def test_example_config_checks(certs, tmp_path):
    """conf/tlsterm.yaml, the documented example, loads as shipped (its
    certificate paths are relative to the working directory: certs/dev)."""
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "dev").symlink_to(certs.dir)
    example = REPO / "conf" / "tlsterm.yaml"
    result = subprocess.run([TLSTERM_BIN, "--check", "-c", str(example)], cwd=tmp_path,
                            capture_output=True, text=True, env=sanitizer_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"{example}: ok"


# An http-mode listener with the HTTP settings written out, and a tcp one.
HTTP_GOOD = """\
listeners:
  - name: web
    listen: ["127.0.0.1:0"]
    tls:
      certificates: [{{cert: {cert}, key: {key}}}]
    backend:
      servers: ["127.0.0.1:9"]
      max_connections: 16
      pool: {{idle_timeout: 1500ms, max_idle: 8}}
    http:
      trusted_proxies: ["10.0.0.0/8", "::1"]
      forwarded: true
      max_request_header_bytes: 32KiB
    http2: {{max_concurrent_streams: 50}}
    timeouts: {{request_header: 5s, queue: 1m}}
    mode: http
  - name: raw
    listen: ["127.0.0.1:0"]
    tls:
      certificates: [{{cert: {cert}, key: {key}}}]
    backend: {{servers: ["127.0.0.1:9"], protocol: h2}}
    timeouts: {{idle: 60s}}
"""


def write_http_config(tmp_path, certs, edits=None):
    """write_http_config is write_config for HTTP_GOOD."""
    lines = HTTP_GOOD.format(cert=certs.ecdsa_cert, key=certs.ecdsa_key).splitlines()
    for number, new in (edits or {}).items():
        lines[number - 1] = new
    path = tmp_path / "http.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def listener_block(stdout, name):
    """listener_block returns the lines --check printed for listener |name|."""
    block, inside = [], False
    for line in stdout.splitlines():
        if not line.startswith("  "):
            inside = line == f"listener {name}:"
        elif inside:
            block.append(line.strip())
    return block


def test_check_prints_http_settings(tmp_path, certs):
    path, _ = write_http_config(tmp_path, certs)
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 0, text(result)
    out = result.stdout.decode()
    assert out.splitlines()[-1] == f"{path}: ok", text(result)
    web = listener_block(out, "web")
    for expected in [
        "mode: http",
        "alpn: h2, http/1.1",  # the http-mode default
        "backend.protocol: http/1.1",
        "backend.max_connections: 16 per server and worker",
        "backend.pool: max_idle 8 per server and worker, idle_timeout 1500ms",
        "http.x_forwarded: true",
        "http.forwarded: true",
        "http.trusted_proxies: 10.0.0.0/8, ::1/128",
        "http.request_id: X-Request-Id",
        "http.client_cert_header: false",
        "http.max_request_header_bytes: 32KiB",
        "http2: max_concurrent_streams 50, initial_window 256KiB, connection_window 1MiB",
        "http2 limits: header_table_size 4KiB, reset_burst 1000, reset_rate 33/s, "
        "glitch_burst 1000, glitch_rate 330/s, max_continuations 8, "
        "max_streams_per_connection 10000, max_outbound_acks 1000, max_outbound_frames 10000, "
        "settings_timeout 10s, write_timeout 30s",
        "timeouts: request_header 5s, backend_response 1m, queue 1m",
    ]:
        assert expected in web, f"{expected!r} not in {web}"
    raw = listener_block(out, "raw")
    assert "mode: tcp" in raw and "backend.protocol: h2" in raw, raw
    assert not any(line.startswith(("http", "timeouts")) for line in raw), raw


def test_check_http_settings_on_tcp_listener(tmp_path, certs):
    """An http section on a tcp listener is refused at its key."""
    path, lines = write_http_config(tmp_path, certs, {22: "    http: {forwarded: true}"})
    check_refused(path, 22, {col_of(lines[21], "http")}, ["mode: http", "http"])


def test_check_bad_http_value(tmp_path, certs):
    path, lines = write_http_config(
        tmp_path, certs, {11: '      trusted_proxies: ["10.0.0.0/33"]'}
    )
    check_refused(path, 11, {col_of(lines[10], '"10.0.0.0/33"')},
                  ["trusted_proxies", "10.0.0.0/33", "prefix"])


def test_check_mode_typo_and_tcp_only_timeout(tmp_path, certs):
    """A mistyped mode is the only error its listener gets (no tcp-mode
    guess about its alpn), and timeouts.half_closed, tcp only, is refused
    on an http listener."""
    ecdsa = certs.pair("ecdsa")
    path = tmp_path / "t.yaml"
    path.write_text(f"""listeners:
  - name: a
    mode: htp
    listen: ["127.0.0.1:0"]
    tls:
      certificates: [{{cert: {ecdsa['cert']}, key: {ecdsa['key']}}}]
      alpn: [h2, http/1.1]
    backend: {{servers: ["127.0.0.1:1"]}}
  - name: b
    mode: http
    listen: ["127.0.0.1:0"]
    tls:
      certificates: [{{cert: {ecdsa['cert']}, key: {ecdsa['key']}}}]
    backend: {{servers: ["127.0.0.1:1"]}}
    timeouts: {{half_closed: 5s}}
""")
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    errors = result.stderr.decode().strip().splitlines()
    assert errors == [
        f"{path}:3:11: invalid mode 'htp'; did you mean 'http'? allowed: tcp, http, redirect",
        f"{path}:15:29: timeouts.half_closed applies to mode tcp only (one direction of a byte "
        "stream ended); http mode bounds a connection with timeouts.idle and request_header; "
        "remove it",
    ], errors
