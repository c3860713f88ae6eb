"""The TLS failure report: /report on the admin endpoint counts real
clients' failures and successes exactly and matches tests/report.schema.json;
windows are written to report.dir atomically with bounded retention; `tlsterm
report FILE` prints a table and `--json` passes the file through; the
`report` key's errors carry FILE:LINE:COL."""

import json
import re
import shutil
import socket
import ssl
from pathlib import Path

import jsonschema
import pytest

from tlsterm_harness import (
    write_yaml,
    admin_addr,
    get,
    reload_and_wait,
    HTTP_REQUEST,
    REPO,
    client_context,
    listener_config,
    recv_until_eof,
    run_tlsterm,
    s_client,
    tls_connect,
    tlsterm_config,
    to_yaml,
    wait_until,
)

SCHEMA = json.loads((REPO / "tests/report.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
FILE_NAME = re.compile(r"tlsterm-report-\d{8}T\d{6}Z-\d{8}T\d{6}Z\.json")


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


@pytest.mark.parametrize("content, message", [
    (None, "cannot open report"),
    ('{"organization-name": "x",', ":1:27: invalid JSON"),
    ('{"a": 1,}', ":1:9: invalid JSON"),
    ('[1, 2]', "not a report"),
    ('{"organization-name": "x"}', "not a report: 'date-range'"),
])
def test_report_cli_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    for args in (["report", str(path)], ["report", "--json", str(path)]):
        if args[1] == "--json" and "not a report: '" in message:
            continue  # --json checks only that it parses as an object
        result = run_tlsterm(*args)
        assert result.returncode == 1, result
        assert message in result.stderr.decode(), result.stderr.decode()
        assert result.stdout == b""


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
