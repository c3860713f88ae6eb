"""Reports across instances: two tlsterm processes with their own
`instance` share one report.dir without overwriting each other's files;
`tlsterm report DIR` adds their windows up exactly (schema-valid with
--json), counts a duplicate once, leaves out an overlapping window of one
instance and warns about mixed versions; --since/--until and
--by-instance; GET /report?window=previous is the last written window;
tlsterm_build_info names the instance."""

import json
import re
import signal

from tlsterm_harness import admin_addr, get, reload_and_wait, run_tlsterm, to_yaml, wait_until

from test_report import (
    VALIDATOR,
    fetch_report,
    fail_garbage,
    fail_tls_1_1,
    report_config,
    succeed,
    summary,
    validate,
)
import ssl

FILE_OF = re.compile(r"tlsterm-report-\d{8}T\d{6}Z-\d{8}T\d{6}Z-(?P<instance>[A-Za-z0-9_.-]+)\.json")


def start_instance(tlsterm_factory, backend, certs, reports, name):
    config = report_config(backend, certs, interval="1s", dir=str(reports))
    config["instance"] = name
    return tlsterm_factory(config)


def test_two_instances_one_dir_merged(tlsterm_factory, backend_factory, certs, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    backend = backend_factory("echo")
    a = start_instance(tlsterm_factory, backend, certs, reports, "edge-a")
    b = start_instance(tlsterm_factory, backend, certs, reports, "edge-b")
    assert a.wait_for("started")["instance"] == "edge-a"
    assert b.wait_for("started")["instance"] == "edge-b"

    status, metrics = get(admin_addr(a), "/metrics")
    assert status == 200
    assert re.search(r'^tlsterm_build_info\{version="[^"]+",instance="edge-a",boringssl="[^"]+"\} 1$',
                     metrics.decode(), re.M), metrics.decode()

    # Real failures on both, the same listener name on each.
    fail_tls_1_1(a.port("edge"))
    fail_tls_1_1(a.port("edge"))
    fail_garbage(a.port("edge"))
    succeed(a.port("edge"), certs, ssl.TLSVersion.TLSv1_3)
    fail_garbage(b.port("edge"))
    succeed(b.port("edge"), certs, ssl.TLSVersion.TLSv1_2)
    succeed(b.port("edge"), certs, ssl.TLSVersion.TLSv1_3)
    a.wait_count("handshake_failed", 3)
    b.wait_count("handshake_failed", 1)

    # /report?window=previous is the window last written, byte for byte.
    for proxy in (a, b):
        seen = len(proxy.find("report_written"))
        written = proxy.wait_count("report_written", seen + 1)[-1]["file"]
        status, body = get(admin_addr(proxy), "/report?window=previous")
        # A newer window may have ended between the two: then it is that one's.
        newest = proxy.find("report_written")[-1]["file"]
        assert status == 200
        assert json.loads(body) == json.loads(open(newest).read()), (written, newest)
        validate(json.loads(body))

    # A clean stop writes the last, partial window: every handshake is in a file.
    assert a.stop() == 0 and b.stop() == 0
    written = {p: [e["file"] for e in p.find("report_written")] for p in (a, b)}
    names = sorted(p.name for p in reports.iterdir())
    for proxy, instance in ((a, "edge-a"), (b, "edge-b")):
        own = [n for n in names if FILE_OF.fullmatch(n)["instance"] == instance]
        # Nothing overwritten: one file per window written, all distinct.
        assert len(own) == len(written[proxy]) == len(set(written[proxy])), (own, written)
        for name in own:
            report = json.loads((reports / name).read_text())
            assert report["tlsterm"]["instances"] == [instance]
            assert instance in report["report-id"]
    assert len(names) == sum(len(w) for w in written.values())

    result = run_tlsterm("report", "--json", str(reports))
    assert result.returncode == 0, result.stderr.decode()
    merged = validate(json.loads(result.stdout))
    successes, failures, details = summary(merged)
    assert (successes, failures) == (3, 4)
    assert details["protocol_version"]["failed-session-count"] == 2
    assert details["malformed"]["failed-session-count"] == 2
    assert details["malformed"]["top-client-networks"] == [{"network": "127.0.0.0/24", "count": 2}]
    assert merged["tlsterm"]["instances"] == ["edge-a", "edge-b"]
    assert merged["tlsterm"]["windows"] == len(names)
    files = [json.loads((reports / n).read_text()) for n in names]
    assert merged["date-range"]["start-datetime"] == min(f["date-range"]["start-datetime"] for f in files)
    assert merged["date-range"]["end-datetime"] == max(f["date-range"]["end-datetime"] for f in files)
    assert result.stderr == b""

    # The table, with a column per instance.
    result = run_tlsterm("report", "--by-instance", str(reports))
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert re.search(r"^LISTENER .* FAILURES  edge-a S/F  edge-b S/F$", out, re.M), out
    assert re.search(r"^edge\s+intermediate\s+3\s+4\s+1/3\s+2/1$", out, re.M), out

    # A file given twice counts once, with a warning.
    first = reports / names[0]
    result = run_tlsterm("report", "--json", str(reports), str(first))
    assert result.returncode == 0
    assert summary(json.loads(result.stdout))[:2] == (3, 4)
    assert b"the same window, counted once" in result.stderr, result.stderr

    # A window of the same instance overlapping another: left out, warned.
    loaded = [(n, json.loads((reports / n).read_text())) for n in names]
    name, busiest = max(loaded, key=lambda nr: summary(nr[1])[1])
    copy = dict(busiest, **{"report-id": "copy-of-" + busiest["report-id"]})
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "tlsterm-report-copy.json").write_text(json.dumps(copy))
    result = run_tlsterm("report", "--json", str(reports), str(extra))
    assert result.returncode == 0, result.stderr
    assert summary(json.loads(result.stdout))[:2] == (3, 4)
    assert b"overlaps" in result.stderr and b"left out" in result.stderr, result.stderr

    # Another version's file is added up, warned about, and listed.
    other = dict(busiest, **{"report-id": "other-version",
                             "tlsterm": {"instances": ["edge-c"], "versions": ["0.0.1"],
                                         "windows": 1}})
    (extra / "tlsterm-report-copy.json").write_text(json.dumps(other))
    result = run_tlsterm("report", "--json", str(reports), str(extra))
    assert result.returncode == 0, result.stderr
    merged = validate(json.loads(result.stdout))
    assert summary(merged)[1] == 4 + summary(busiest)[1]
    assert "0.0.1" in merged["tlsterm"]["versions"] and len(merged["tlsterm"]["versions"]) == 2
    assert b"different tlsterm versions" in result.stderr, result.stderr

    # --since/--until choose the windows that lie within.
    start = min(f["date-range"]["start-datetime"] for f in files)
    result = run_tlsterm("report", "--json", "--until", start, str(reports))
    assert result.returncode == 1 and b"no report to add up" in result.stderr
    result = run_tlsterm("report", "--json", "--since", start, "--until",
                         "2100-01-01T00:00:00+01:00", str(reports))
    assert result.returncode == 0 and summary(json.loads(result.stdout))[:2] == (3, 4)
    result = run_tlsterm("report", "--since", "yesterday", str(reports))
    assert result.returncode == 2 and b"RFC 3339" in result.stderr


def test_report_previous_before_any_window_and_bad_queries(tlsterm_factory, backend_factory,
                                                          certs):
    proxy = tlsterm_factory(report_config(backend_factory("echo"), certs, interval="1h"))
    addr = admin_addr(proxy)
    status, body = get(addr, "/report?window=previous")
    assert status == 404 and json.loads(body) == {"error": "no window completed yet"}
    for query in ("?window=last", "?foo=1", "?window=previous&x=1"):
        status, body = get(addr, "/report" + query)
        assert status == 400, (query, status, body)
    status, body = get(addr, "/report")
    assert status == 200 and validate(json.loads(body))["tlsterm"]["windows"] == 1


def window(instance, start, end, first):
    """A one-window report of |instance| with 10 networks from 10.0.FIRST.0/24."""
    if True:
        networks = [{"network": f"10.0.{first + i}.0/24", "count": 1 + i} for i in range(10)]
        total = sum(n["count"] for n in networks)
        return {
            "organization-name": "o",
            "date-range": {"start-datetime": start, "end-datetime": end},
            "report-id": f"{instance}-{start}",
            "tlsterm": {"instances": [instance], "versions": ["9.9.9"], "windows": 1},
            "policies": [{
                "policy": {"policy-type": "tlsterm",
                           "policy-string": ["policy: modern", "min_version: TLSv1.3",
                                             "max_version: TLSv1.3"],
                           "policy-domain": "edge"},
                "summary": {"total-successful-session-count": 5,
                            "total-failure-session-count": total},
                "failure-details": [{"result-type": "malformed", "failed-session-count": total,
                                     "top-client-networks": networks, "top-ja4": [],
                                     "top-offered-max-versions": []}]}],
        }


def test_merge_marks_upper_bounds(tmp_path):
    """Two files whose networks together are more than 16: the 16 largest
    are kept, each marked as an upper bound; the failures stay exact."""
    one = tmp_path / "one.json"
    two = tmp_path / "two.json"
    one.write_text(json.dumps(window("a", "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", 0)))
    two.write_text(json.dumps(window("b", "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", 8)))
    result = run_tlsterm("report", "--json", str(one), str(two))
    assert result.returncode == 0, result.stderr
    merged = validate(json.loads(result.stdout))
    detail = merged["policies"][0]["failure-details"][0]
    assert merged["policies"][0]["summary"] == {"total-successful-session-count": 10,
                                                "total-failure-session-count": 110}
    assert detail["failed-session-count"] == 110
    networks = detail["top-client-networks"]
    assert len(networks) == 16 and all(n.get("upper-bound") is True for n in networks)
    # 18 networks: 10.0.8.0/24 and 10.0.9.0/24 are in both (9+1, 10+2); the
    # two smallest, 10.0.0.0/24 (1) and 10.0.1.0/24 (2), are dropped.
    assert {"network": "10.0.9.0/24", "count": 12, "upper-bound": True} in networks
    assert {"network": "10.0.17.0/24", "count": 10, "upper-bound": True} in networks
    assert not any(n["network"] in ("10.0.0.0/24", "10.0.1.0/24") for n in networks)
    result = run_tlsterm("report", str(one), str(two))
    assert "10.0.9.0/24 (<=12)" in result.stdout.decode(), result.stdout.decode()


def successes_of(result):
    assert result.returncode == 0, result.stderr.decode()
    return validate(json.loads(result.stdout))["policies"][0]["summary"][
        "total-successful-session-count"]


def test_merge_given_with_its_inputs_counts_once(tmp_path):
    """m.json, the merge of a.json and b.json, given with them: each window
    counts once, with a warning for each input left out; a merge sharing a
    window with m is left out whole; two old files (no tlsterm member) that
    overlap count once."""
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(window("a", "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", 0)))
    b.write_text(json.dumps(window("b", "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", 0)))
    c.write_text(json.dumps(window("c", "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", 0)))
    m, m2 = tmp_path / "m.json", tmp_path / "m2.json"
    result = run_tlsterm("report", "--json", str(a), str(b))
    m.write_bytes(result.stdout)
    merged = json.loads(result.stdout)
    assert [s["report-id"] for s in merged["tlsterm"]["sources"]] == [
        "a-2026-11-26T16:00:00Z", "b-2026-11-26T16:00:00Z"]
    assert successes_of(result) == 10
    m2.write_bytes(run_tlsterm("report", "--json", str(b), str(c)).stdout)

    result = run_tlsterm("report", "--json", str(m), str(a), str(b))
    assert successes_of(result) == 10
    err = result.stderr.decode()
    assert f"{a}: report-id a-2026-11-26T16:00:00Z is also counted in {m} (a merge)" in err, err
    assert f"{b}: report-id b-2026-11-26T16:00:00Z is also counted in {m} (a merge)" in err, err
    # The same windows, however nested, give the same id.
    assert json.loads(result.stdout)["report-id"] == merged["report-id"]

    result = run_tlsterm("report", "--json", str(m), str(m2), str(c))
    assert successes_of(result) == 15
    err = result.stderr.decode()
    assert f"{m2}: a merge whose window (report-id b-2026-11-26T16:00:00Z, instance b) " \
           f"is also counted in {m}'s: left out whole" in err, err

    old1, old2 = tmp_path / "old1.json", tmp_path / "old2.json"
    for path, start, end in ((old1, "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z"),
                             (old2, "2026-11-26T16:30:00Z", "2026-11-26T17:30:00Z")):
        report = window("x", start, end, 0)
        del report["tlsterm"]
        report["report-id"] = path.name
        path.write_text(json.dumps(report))
    result = run_tlsterm("report", "--json", str(old1), str(old2))
    assert successes_of(result) == 5
    assert f"{old2}: its window overlaps {old1}'s (instance unknown" in result.stderr.decode()


def test_merge_refuses_and_escapes_untrusted_files(tmp_path):
    """An instance name a config could not give, a window that ends before
    it starts, a network twice in a top list and counts that would wrap
    are refused naming the file; a report-id with escape bytes is escaped in
    the warnings."""
    good = window("a", "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", 0)
    (tmp_path / "good.json").write_text(json.dumps(good))
    cases = []
    bad = json.loads(json.dumps(good))
    bad["tlsterm"]["instances"] = ["edge\x1b[2J"]
    cases.append((bad, "an instance name is 1 to 64 of A-Z a-z 0-9 _ . -"))
    bad = json.loads(json.dumps(good))
    bad["tlsterm"]["instances"] = ["a" * 65]
    cases.append((bad, "an instance name is 1 to 64"))
    bad = json.loads(json.dumps(good))
    bad["date-range"]["end-datetime"] = "2026-11-26T15:00:00Z"
    cases.append((bad, "'end-datetime' is before 'start-datetime'"))
    bad = json.loads(json.dumps(good))
    networks = bad["policies"][0]["failure-details"][0]["top-client-networks"]
    networks[1]["network"] = networks[0]["network"]
    cases.append((bad, "'network' repeats an earlier entry of its top list"))
    bad = json.loads(json.dumps(good))
    bad["policies"].append(bad["policies"][0])
    cases.append((bad, "a policy that repeats an earlier entry of 'policies'"))
    bad = json.loads(json.dumps(good))
    details = bad["policies"][0]["failure-details"]
    details.append(dict(details[0], **{"result-type": "other"}))
    details[0]["failed-session-count"] = details[1]["failed-session-count"] = 2**63
    cases.append((bad, "the failure-details add up to more than 18446744073709551615"))
    bad = json.loads(json.dumps(good))
    details = bad["policies"][0]["failure-details"]
    details.append(details[0])
    cases.append((bad, "'result-type' repeats an earlier entry of its policy's failure-details"))
    for i, (content, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.json"
        path.write_text(json.dumps(content, indent=2))
        result = run_tlsterm("report", str(tmp_path / "good.json"), str(path))
        err = result.stderr.decode()
        assert result.returncode == 1 and re.search(rf"^{re.escape(str(path))}:\d+:\d+: "
                                                    rf"not a report: {re.escape(message)}",
                                                    err, re.M), (message, err)
        assert "\x1b" not in err

    huge = json.loads(json.dumps(good))
    huge["policies"][0]["summary"]["total-successful-session-count"] = 2**64 - 1
    huge["report-id"] = "huge"
    huge["tlsterm"]["instances"] = ["b"]
    (tmp_path / "huge.json").write_text(json.dumps(huge))
    result = run_tlsterm("report", str(tmp_path / "good.json"), str(tmp_path / "huge.json"))
    assert result.returncode == 1
    assert re.search(r"^tlsterm report: \S+: counts overflow$", result.stderr.decode(), re.M), \
        result.stderr.decode()

    evil = json.loads(json.dumps(good))
    evil["report-id"] = "id\x1b]0;owned\x07"
    (tmp_path / "e1.json").write_text(json.dumps(evil))
    (tmp_path / "e2.json").write_text(json.dumps(evil))
    result = run_tlsterm("report", "--by-instance", str(tmp_path / "e1.json"),
                         str(tmp_path / "e2.json"))
    assert result.returncode == 0, result.stderr.decode()
    assert b"\x1b" not in result.stderr and b"\x07" not in result.stderr
    assert b"report-id id" in result.stderr


def test_by_instance_shows_whole_long_names(tmp_path):
    """Kubernetes pod names share long prefixes: the columns hold them whole."""
    names = ["tlsterm-edge-deployment-7d9f8c6b5-abcde", "tlsterm-edge-deployment-7d9f8c6b5-fghij"]
    paths = []
    for name in names:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(window(name, "2026-11-26T16:00:00Z", "2026-11-26T17:00:00Z", 0)))
        paths.append(str(path))
    result = run_tlsterm("report", "--by-instance", *paths)
    assert result.returncode == 0, result.stderr.decode()
    header = next(l for l in result.stdout.decode().splitlines() if l.startswith("LISTENER"))
    for name in names:
        assert f"{name} S/F" in header, header


def test_reload_keeps_the_running_instance(tlsterm_factory, backend_factory, certs):
    """`instance` names the open window's report-id: a reload that changes
    it says so with reload_partial and keeps the running name, so that the
    window's /report answers and its file keep one id."""
    config = report_config(backend_factory("echo"), certs, interval="1h")
    config["instance"] = "edge-a"
    proxy = tlsterm_factory(config)
    proxy.wait_for("started")
    addr = admin_addr(proxy)
    before = fetch_report(addr)["report-id"]
    assert "-edge-a-" in before, before

    config["instance"] = "edge-b"
    proxy.config_path.write_text(to_yaml(config))
    mark = proxy.mark()
    reload_and_wait(proxy)
    [partial] = proxy.find("reload_partial", since=mark)
    assert partial["instance_running"] == "edge-a", partial
    assert partial["instance_in_file"] == "edge-b", partial
    assert partial["msg"] == "'instance' takes effect only at the next restart"
    report = fetch_report(addr)
    assert report["report-id"] == before and report["tlsterm"]["instances"] == ["edge-a"]
    status, metrics = get(addr, "/metrics")
    assert status == 200 and 'instance="edge-a"' in metrics.decode()
