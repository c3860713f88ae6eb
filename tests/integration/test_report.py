"""The TLS failure report: /report on the admin endpoint counts real
clients' failures and successes exactly and matches tests/report.schema.json;
windows are written to report.dir atomically with bounded retention; `tlsterm
report FILE` prints a table and `--json` passes the file through; the
`report` key's errors carry FILE:LINE:COL."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest

from tlsterm_harness import (
    TLSTERM_BIN,
    write_yaml,
    admin_addr,
    get,
    reload_and_wait,
    HTTP_REQUEST,
    REPO,
    TLSTERM_BIN,
    client_context,
    listener_config,
    recv_until_eof,
    run_tlsterm,
    s_client,
    sanitizer_env,
    tls_connect,
    tlsterm_config,
    to_yaml,
    wait_until,
)

SCHEMA = json.loads((REPO / "tests/report.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
FILE_NAME = re.compile(r"tlsterm-report-\d{8}T\d{6}Z-\d{8}T\d{6}Z-[A-Za-z0-9_.-]+\.json")


def report_config(backend, certs, **report):
    # No versions: the listener runs the "intermediate" preset, as by default.
    config = tlsterm_config([listener_config("edge", backend, certs, min_version=None,
                                             max_version=None)])
    config["workers"] = 2  # the report merges what each worker counted
    config["admin"] = {"listen": "127.0.0.1:0"}
    if report:
        config["report"] = report
    return config


def validate(report):
    errors = sorted(VALIDATOR.iter_errors(report), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    return report


def fetch_report(addr):
    status, body = get(addr, "/report")
    assert status == 200, (status, body)
    return validate(json.loads(body))


def summary(report, listener="edge"):
    """summary returns (successes, failures, {result-type: detail}) of
    |listener|'s policies added up (one policy unless a reload changed it)."""
    successes = failures = 0
    details = {}
    for policy in report["policies"]:
        if policy["policy"]["policy-domain"] != listener:
            continue
        successes += policy["summary"]["total-successful-session-count"]
        failures += policy["summary"]["total-failure-session-count"]
        for detail in policy["failure-details"]:
            details[detail["result-type"]] = detail
    return successes, failures, details


def fail_tls_1_1(port):
    s_client(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")


def fail_garbage(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"\x00" * 16)
        recv_until_eof(s)


def fail_plain_http(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(HTTP_REQUEST)
        recv_until_eof(s)


def succeed(port, certs, version):
    with tls_connect(port, client_context(certs.ca, version=version)) as tls:
        tls.sendall(b"ping")
        assert tls.recv(4) == b"ping"


def test_report_counts_what_happened(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(report_config(backend_factory("echo"), certs,
                                          organization="example.net"))
    addr = admin_addr(proxy)
    port = proxy.port("edge")

    empty = fetch_report(addr)
    assert empty["organization-name"] == "example.net"
    assert empty["policies"] == []

    succeed(port, certs, ssl.TLSVersion.TLSv1_2)
    succeed(port, certs, ssl.TLSVersion.TLSv1_3)
    fail_tls_1_1(port)
    fail_tls_1_1(port)
    fail_garbage(port)
    fail_plain_http(port)
    proxy.wait_count("handshake_failed", 4)

    # A worker may hold an event back for up to 100 ms while a reader has
    # its block: poll until everything arrived, then the counts are exact.
    report = wait_until(lambda: (r := fetch_report(addr)) and summary(r)[:2] == (2, 4) and r,
                        what="2 successes and 4 failures in /report")
    successes, failures, details = summary(report)
    assert len(report["policies"]) == 1
    policy = report["policies"][0]["policy"]
    assert policy["policy-type"] == "tlsterm"
    assert policy["policy-string"][0] == "policy: intermediate"
    assert sorted(details) == ["http_request_on_tls_port", "malformed", "protocol_version"]

    old = details["protocol_version"]
    assert old["failed-session-count"] == 2
    assert old["top-client-networks"] == [{"network": "127.0.0.0/24", "count": 2}]
    assert len(old["top-ja4"]) == 1 and old["top-ja4"][0]["count"] == 2
    assert old["top-ja4"][0]["ja4"].startswith("t11")
    assert old["top-offered-max-versions"] == [{"version": "TLSv1.1", "count": 2}]
    # Largest count first.
    assert report["policies"][0]["failure-details"][0]["result-type"] == "protocol_version"

    for name in ("malformed", "http_request_on_tls_port"):
        assert details[name]["failed-session-count"] == 1
        assert details[name]["top-client-networks"] == [{"network": "127.0.0.0/24", "count": 1}]
        # No ClientHello arrived: nothing to fingerprint.
        assert details[name]["top-ja4"] == []
        assert details[name]["top-offered-max-versions"] == []

    start = report["date-range"]["start-datetime"]
    later = fetch_report(addr)
    assert later["date-range"]["start-datetime"] == start  # the same window
    assert summary(later)[:2] == (2, 4)  # reading does not reset it


def test_reload_keeps_the_window_and_applies_new_settings(tlsterm_factory, backend_factory,
                                                           certs):
    backend = backend_factory("echo")
    proxy = tlsterm_factory(report_config(backend, certs, organization="before"))
    addr = admin_addr(proxy)
    fail_garbage(proxy.port("edge"))
    wait_until(lambda: summary(fetch_report(addr))[1] == 1, what="the failure in /report")

    config = report_config(backend, certs, organization="after")
    proxy.config_path.write_text(to_yaml(config))
    reload_and_wait(proxy)
    report = fetch_report(addr)
    assert report["organization-name"] == "after"
    assert summary(report)[1] == 1  # the window goes on


def test_windows_are_written_and_pruned(tlsterm_factory, backend_factory, certs, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "unrelated.txt").write_text("left alone")
    proxy = tlsterm_factory(report_config(backend_factory("echo"), certs,
                                          interval="2s", dir=str(reports), keep=2))
    port = proxy.port("edge")
    fail_garbage(port)
    proxy.wait_for("handshake_failed")

    # Read each window's file as it is announced (it survives at least two
    # more windows) until the failure has shown up in one of them.
    seen = 0
    failures = 0
    kept = None
    while failures == 0:
        event = proxy.wait_count("report_written", seen + 1)[seen]
        seen += 1
        path = Path(event["file"])
        assert path.parent == reports and FILE_NAME.fullmatch(path.name), path
        report = validate(json.loads(path.read_text()))
        failures += summary(report)[1]
        if failures:
            kept = tmp_path / "window.json"
            shutil.copy(path, kept)
        assert seen < 10, "the failure never appeared in a written report"
    assert failures == 1
    assert summary(json.loads(kept.read_text()))[2]["malformed"]["failed-session-count"] == 1

    # Retention: after more windows, only the newest two files remain, and
    # no temporary file is left behind.
    proxy.wait_count("report_written", seen + 3)
    names = sorted(p.name for p in reports.iterdir())
    report_names = [n for n in names if FILE_NAME.fullmatch(n)]
    assert len(report_names) == 2, names
    assert set(names) == set(report_names) | {"unrelated.txt"}, names
    for name in report_names:
        validate(json.loads((reports / name).read_text()))
    # Each window starts where the previous one ended.
    first, second = (json.loads((reports / n).read_text()) for n in report_names)
    assert first["date-range"]["end-datetime"] == second["date-range"]["start-datetime"]

    # The table, and the pass-through.
    result = run_tlsterm("report", str(kept))
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "LISTENER" in out and "SUCCESSES" in out and "FAILURES" in out
    assert re.search(r"^edge\s+intermediate\s+0\s+1$", out, re.M), out
    assert re.search(r"^\s+malformed\s+1\s+127\.0\.0\.0/24 \(1\)", out, re.M), out
    result = run_tlsterm("report", "--json", str(kept))
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads(kept.read_text())


def test_write_failure_names_the_file(tlsterm_factory, backend_factory, certs, tmp_path):
    """A window that cannot be written (its directory removed under the
    running process) logs report_write_failed with the file it meant and
    why, and the next windows are tried again."""
    reports = tmp_path / "reports"
    reports.mkdir()
    proxy = tlsterm_factory(report_config(backend_factory("echo"), certs, interval="1s",
                                          dir=str(reports)))
    proxy.wait_for("report_written")
    shutil.rmtree(reports)
    event = proxy.wait_for("report_write_failed")
    path = Path(event["file"])
    assert path.parent == reports and FILE_NAME.fullmatch(path.name), event
    assert event["error"] == "No such file or directory", event
    # Back again: the next window is written.
    reports.mkdir()
    seen = len(proxy.find("report_written"))
    assert Path(proxy.wait_count("report_written", seen + 1)[seen]["file"]).parent == reports


def test_report_cli_table_with_top_lists(tmp_path):
    report = {
        "organization-name": "example.net",
        "date-range": {"start-datetime": "2026-11-26T16:00:00Z",
                       "end-datetime": "2026-11-26T17:00:00Z"},
        "report-id": "id-1",
        "policies": [{
            "policy": {"policy-type": "tlsterm",
                       "policy-string": ["policy: modern", "min_version: TLSv1.3",
                                         "max_version: TLSv1.3"],
                       "policy-domain": "api"},
            "summary": {"total-successful-session-count": 7,
                        "total-failure-session-count": 3},
            "failure-details": [{
                "result-type": "protocol_version",
                "failed-session-count": 3,
                "top-client-networks": [{"network": "203.0.113.0/24", "count": 2},
                                        {"network": "2001:db8:1::/48", "count": 1}],
                "top-ja4": [{"ja4": "t12d1312h2_8b80da21ef18_77989cba1f4a", "count": 3}],
                "top-offered-max-versions": [{"version": "TLSv1.2", "count": 3}],
            }],
        }],
    }
    validate(report)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    result = run_tlsterm("report", str(path))
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert "organization example.net, from 2026-11-26T16:00:00Z to 2026-11-26T17:00:00Z" in out
    assert re.search(r"^api\s+modern\s+7\s+3$", out, re.M), out
    assert re.search(r"^\s+protocol_version\s+3\s+203\.0\.113\.0/24 \(2\)\s+"
                     r"t12d1312h2_8b80da21ef18_77989cba1f4a \(3\)\s+TLSv1\.2 \(3\)$", out, re.M), out
    # The second network gets a row of its own under the first.
    assert re.search(r"^\s+2001:db8:1::/48 \(1\)\s*$", out, re.M), out


# A small report laid out over lines, so that a problem has a telling line
# and column.
GOOD_REPORT = """\
{"organization-name": "example.net",
 "date-range": {"start-datetime": "2026-11-26T16:00:00Z",
                "end-datetime": "2026-11-26T17:00:00Z"},
 "report-id": "id-1",
 "policies": [{
  "policy": {"policy-type": "tlsterm", "policy-domain": "api",
             "policy-string": ["policy: modern", "min_version: TLSv1.3", "max_version: TLSv1.3"]},
  "summary": {"total-successful-session-count": 7, "total-failure-session-count": 3},
  "failure-details": [{"result-type": "protocol_version", "failed-session-count": 3,
                       "top-client-networks": [{"network": "203.0.113.0/24", "count": 3}],
                       "top-ja4": [], "top-offered-max-versions": []}]}]}
"""


def bad_report(old, new):
    """bad_report returns GOOD_REPORT, as bytes, with |old| (there once)
    replaced by |new| (bytes, or text to encode as UTF-8)."""
    assert GOOD_REPORT.count(old) == 1, old
    new = new if isinstance(new, bytes) else new.encode()
    return GOOD_REPORT.encode().replace(old.encode(), new)


def test_good_report_is_good(tmp_path):
    validate(json.loads(GOOD_REPORT))
    path = tmp_path / "good.json"
    path.write_text(GOOD_REPORT)
    for args in (["report", str(path)], ["report", "--json", str(path)]):
        result = run_tlsterm(*args)
        assert result.returncode == 0, text_of(result)
    assert result.stdout == GOOD_REPORT.encode()


def test_report_cli_reads_stdin_from_curl(tlsterm_factory, backend_factory, certs):
    """"curl .../report | tlsterm report -": the report the admin endpoint
    serves, piped in, prints as a table and passes through with --json."""
    proxy = tlsterm_factory(report_config(backend_factory("echo"), certs,
                                          organization="example.net"))
    addr = admin_addr(proxy)
    fail_tls_1_1(proxy.port("edge"))
    proxy.wait_count("handshake_failed", 1)
    wait_until(lambda: summary(fetch_report(addr))[1] == 1, what="the failure in /report")
    url = f"http://{addr[0]}:{addr[1]}/report"
    for extra in ([], ["--json"]):
        result = subprocess.run(
            ["bash", "-c", 'set -o pipefail; curl -sSf "$1" | "$2" report $3 -', "bash",
             url, TLSTERM_BIN, " ".join(extra)],
            capture_output=True, timeout=30, env=sanitizer_env())
        assert result.returncode == 0, text_of(result)
        out = result.stdout.decode()
        if extra:
            assert json.loads(out)["organization-name"] == "example.net", out
        else:
            assert "organization example.net" in out, out
            assert re.search(r"^\s+protocol_version\s+1\s+127\.0\.0\.0/24 \(1\)", out, re.M), out


def test_report_cli_stdin_errors_name_stdin(tmp_path):
    good = subprocess.run([TLSTERM_BIN, "report", "-"], input=GOOD_REPORT.encode(),
                          capture_output=True, timeout=30, env=sanitizer_env())
    assert good.returncode == 0, text_of(good)
    assert re.search(r"^api\s+modern\s+7\s+3$", good.stdout.decode(), re.M), text_of(good)
    bad = subprocess.run([TLSTERM_BIN, "report", "--json", "-"],
                         input=bad_report('"count": 3}]', '"count": -3}]'),
                         capture_output=True, timeout=30, env=sanitizer_env())
    assert bad.returncode == 1, text_of(bad)
    assert bad.stdout == b""
    assert bad.stderr.decode().startswith("stdin:10:"), text_of(bad)


def text_of(result):
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read report"),
    (b'{"organization-name": "x",', ":1:27: invalid JSON: expected a string key"),
    (b'{"a": 1,}', ":1:9: invalid JSON: expected a string key"),
    (b'[1, 2]', ":1:1: not a report: the file is an array, not an object"),
    (b'{}', ":1:1: not a report: 'organization-name' is missing"),
    (b'{"organization-name": "x"}', ":1:1: not a report: 'date-range' is missing"),
    # Each refusal names the line and column where the offending token starts.
    (bad_report('"report-id": "id-1",', '"report-id": "id-1", "report-id": "id-2",'),
     ':4:23: invalid JSON: duplicate key "report-id"; the first is at 4:2'),
    (bad_report('"policy-domain": "api"', b'"policy-domain": "ap\xffi"'),
     ":6:60: invalid JSON: invalid UTF-8 in a string"),
    (bad_report('"policy-domain": "api"', b'"policy-domain": "\xc0\xaf"'),  # overlong "/"
     ":6:58: invalid JSON: invalid UTF-8 in a string"),
    (bad_report('"total-failure-session-count": 3', '"total-failure-session-count": -3'),
     ":8:83: not a report: 'total-failure-session-count' is -3; expected an integer from 0 "
     "to 18446744073709551615"),
    (bad_report('"count": 3', '"count": 2.5'),
     ":10:87: not a report: 'count' is 2.5; expected an integer from 1 to "),
    (bad_report('"failed-session-count": 3', '"failed-session-count": 3e0'),
     ":9:83: not a report: 'failed-session-count' is 3e0; expected an integer from 1 to "),
    (bad_report('"failed-session-count": 3', '"failed-session-count": 0'),
     ":9:83: not a report: 'failed-session-count' is 0; expected an integer from 1 to "),
    (bad_report('"total-successful-session-count": 7',
                '"total-successful-session-count": 18446744073709551616'),
     ":8:49: not a report: 'total-successful-session-count' is 18446744073709551616; "),
    (bad_report('"report-id": "id-1"', '"report-id": 1'),
     ":4:15: not a report: 'report-id' is a number, not a string"),
    (bad_report('"top-ja4": [], ', ''),
     ":9:23: not a report: 'top-ja4' is missing"),
    (bad_report('"policy: modern"', '7'),
     ":7:32: not a report: an item of 'policy-string' is a number, not a string"),
], ids=["missing", "truncated", "trailing-comma", "array", "empty-object", "no-date-range",
        "duplicate-key", "invalid-utf8", "overlong-utf8", "negative-count", "fraction-count",
        "exponent-count", "zero-failures", "count-too-large", "wrong-type", "missing-field",
        "wrong-item-type"])
def test_report_cli_refuses_bad_files(tmp_path, content, message):
    """A file that is not a report is refused alike as a table and with
    --json, with FILE:LINE:COL, exit code 1 and nothing on stdout."""
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    for args in (["report", str(path)], ["report", "--json", str(path)]):
        result = run_tlsterm(*args)
        assert result.returncode == 1, text_of(result)
        stderr = result.stderr.decode(errors="replace")
        if content is not None:
            assert stderr.startswith(f"{path}:"), stderr
        assert message in stderr, stderr
        assert result.stdout == b""


def big_report(num_policies):
    """big_report returns a valid report of |num_policies| policies, each
    with a failure and its top lists: 31 strings (keys included) each."""
    detail = {"result-type": "protocol_version", "failed-session-count": 2,
              "top-client-networks": [{"network": "203.0.113.0/24", "count": 1},
                                      {"network": "2001:db8:1::/48", "count": 1}],
              "top-ja4": [{"ja4": "t12d1312h2_8b80da21ef18_77989cba1f4a", "count": 2}],
              "top-offered-max-versions": [{"version": "TLSv1.2", "count": 2}]}
    return {
        "organization-name": "example.net",
        "date-range": {"start-datetime": "2026-11-26T16:00:00Z",
                       "end-datetime": "2026-11-26T17:00:00Z"},
        "report-id": "big",
        "policies": [{
            "policy": {"policy-type": "tlsterm",
                       "policy-string": ["policy: modern", "min_version: TLSv1.3",
                                         "max_version: TLSv1.3"],
                       "policy-domain": f"listener-{i}"},
            "summary": {"total-successful-session-count": i, "total-failure-session-count": 2},
            "failure-details": [detail],
        } for i in range(num_policies)],
    }


def run_measured(args, stdout_path, deadline_s):
    """run_measured runs tlsterm with |args|, stdout to |stdout_path|, and
    returns (exit status, seconds, peak RSS in MB) of that child alone
    (os.wait4). A child still running after |deadline_s| is killed and
    fails the test."""
    start = time.monotonic()
    with open(stdout_path, "wb") as out:
        proc = subprocess.Popen([TLSTERM_BIN, *args], stdout=out, stderr=subprocess.PIPE,
                                env=sanitizer_env())
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        elapsed = time.monotonic() - start
        if pid != 0:
            break
        if elapsed > deadline_s:
            os.kill(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            pytest.fail(f"tlsterm {' '.join(args)} still running after {deadline_s}s")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()
    proc.stderr.close()
    return elapsed, usage.ru_maxrss / 1024


def test_report_cli_large_file_in_bounded_time_and_memory(tmp_path):
    """Memory is linear in the file: a 3.8 MB report with 217,000 strings
    once took 1.26 GB and over a minute under ASan (every string allocated
    the rest of the file). ASan alone takes about 22 MB."""
    report = big_report(7000)
    text = json.dumps(report, separators=(",", ":"))
    assert len(text) > 3_500_000 and text.count('"') // 2 > 200_000
    path = tmp_path / "big.json"
    path.write_text(text)
    seconds, rss_mb = run_measured(["report", str(path)], tmp_path / "table.txt", 20)
    assert seconds < 20 and rss_mb < 100, (seconds, rss_mb)
    table = (tmp_path / "table.txt").read_text()
    assert re.search(r"^listener-6999\s+modern\s+6999\s+2$", table, re.M)
    seconds, rss_mb = run_measured(["report", "--json", str(path)], tmp_path / "out.json", 20)
    assert seconds < 20 and rss_mb < 100, (seconds, rss_mb)
    assert (tmp_path / "out.json").read_text() == text


def test_report_cli_escapes_what_it_shows(tmp_path):
    """A report file is untrusted text: its strings reach the terminal with
    control characters escaped, so an ESC cannot clear the screen and a CR
    cannot overwrite a row with a forged one."""
    report = json.loads(GOOD_REPORT)
    report["organization-name"] = "evil\x1b]0;title\x07.example"
    report["policies"][0]["policy"]["policy-domain"] = "api\x1b[2J\rforged\u009b1m \\ é"
    report["policies"][0]["failure-details"][0]["result-type"] = "bad\nrow"
    path = tmp_path / "escape.json"
    path.write_text(json.dumps(report))
    result = run_tlsterm("report", str(path))
    assert result.returncode == 0, text_of(result)
    out = result.stdout.decode()
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), repr(out)
    assert "organization evil\\x1b]0;title\\x07.example, from" in out, out
    assert re.search(r"^api\\x1b\[2J\\rforged\\xc2\\x9b1m \\\\ é +modern +7 +3$", out,
                     re.M), out
    assert re.search(r"^    bad\\nrow +3 ", out, re.M), out
    # --json passes the file through: its escapes are JSON's own.
    result = run_tlsterm("report", "--json", str(path))
    assert result.returncode == 0 and b"\x1b" not in result.stdout


def test_report_cli_usage():
    assert run_tlsterm("report").returncode == 2
    assert run_tlsterm("report", "--bogus", "x").returncode == 2


@pytest.mark.parametrize("report, message", [
    ({"dir": "/nonexistent/reports"}, "report dir '/nonexistent/reports' does not exist"),
    ({"interval": "500ms"}, "invalid report interval '500ms'"),
    ({"keep": 0}, "invalid keep '0'; expected an integer from 1 to 100000"),
    ({"intervl": "1h"}, "unknown key 'intervl' in report; did you mean 'interval'?"),
])
def test_report_config_errors(certs, tmp_path, report, message):
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs)])
    config["report"] = report
    path = write_yaml(tmp_path, config, "t.yaml")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if text.strip().startswith(next(iter(report))))
    result = run_tlsterm("--check", "-c", str(path))
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert re.search(rf"^{re.escape(str(path))}:{line}:\d+: {re.escape(message)}", stderr,
                     re.M), stderr


def test_report_dir_must_be_a_writable_directory(certs, tmp_path):
    not_dir = tmp_path / "file"
    not_dir.write_text("")
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs)])
    config["report"] = {"dir": str(not_dir)}
    path = write_yaml(tmp_path, config, "t.yaml")
    result = run_tlsterm("--check", "-c", str(path))
    assert result.returncode == 1
    assert f"report dir '{not_dir}' is not a directory" in result.stderr.decode()


def test_report_cli_refuses_a_fifo(tmp_path):
    """A FIFO (or a device) is refused at once rather than read forever."""
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    result = run_tlsterm("report", str(fifo), timeout=10)
    assert result.returncode == 1
    assert "not a regular file (a FIFO)" in result.stderr.decode()
