"""Report-only policies (tls.report_only): a candidate policy judged against
every ClientHello and never enforced. Real clients (openssl s_client, curl,
Python ssl) complete their handshakes under the enforced policy, and exactly
those the candidate would refuse are logged as policy_would_fail, with the
candidate's reason, and counted in tlsterm_policy_would_fail_total.

Clients are matched to log lines by their ip:port: s_client and curl bind a
known source port, Python sockets report theirs."""

import json
import re
import ssl
import threading
import time
from pathlib import Path

import jsonschema

from backend import HTTP_BODY
from tlsterm_harness import (
    write_yaml,
    admin_addr,
    get,
    wait_until,
    REPO,
    samples,
    total,
    HTTP_REQUEST,
    addr_text,
    client_context,
    curl,
    free_port,
    listener_config,
    run_tlsterm,
    s_client,
    text,
    tls_connect,
    tlsterm_config,
)

METRIC = "tlsterm_policy_would_fail_total"
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((REPO / "tests/report.schema.json").read_text()))
ECDSA_AES128 = "ECDHE-ECDSA-AES128-GCM-SHA256"
ECDSA_AES256 = "ECDHE-ECDSA-AES256-GCM-SHA384"


def preset_listener(name, backend, certs, report_only, **kwargs):
    """preset_listener is a listener enforcing the intermediate preset (the
    default) with |report_only| as its candidate."""
    return listener_config(name, backend, certs, min_version=None, max_version=None,
                           tls={"report_only": report_only}, **kwargs)


def python_echo(port, certs, **context):
    """python_echo connects with a Python ssl client made by client_context
    (|context|), checks an echo round trip and returns (client address,
    negotiated version)."""
    with tls_connect(port, client_context(certs.ca, **context)) as tls:
        tls.sendall(b"report-only")
        assert tls.recv(11) == b"report-only"
        return addr_text(tls.getsockname()), tls.version()


def s_client_http(port, *args):
    """s_client_http sends one HTTP request through openssl s_client with
    |args|, checks the backend's answer and returns the client address."""
    result, client = s_client(port, "-servername", "localhost", "-ign_eof", *args,
                              input=HTTP_REQUEST, bind_port=free_port())
    assert result.returncode == 0 and HTTP_BODY in result.stdout, text(result)
    return client


def curl_http(port, certs, *args):
    """curl_http fetches / through curl with |args| from a known port, checks
    the answer and returns the client address."""
    local_port = free_port()
    result = curl(f"https://localhost:{port}/", port, certs.ca, *args,
                  "--local-port", str(local_port))
    assert result.returncode == 0 and result.stdout == HTTP_BODY, text(result)
    return addr_text(("127.0.0.1", local_port))


def would_fail_by_client(proxy, listener):
    """would_fail_by_client returns {client: event} of |listener|'s
    policy_would_fail lines."""
    return {e["client"]: e for e in proxy.find("policy_would_fail", listener=listener)}


def test_modern_candidate_flags_exactly_the_tls12_clients(tlsterm_factory, backend_factory,
                                                           certs):
    echo, http = backend_factory("echo"), backend_factory("http")
    modern = {"policy": "modern"}
    config = tlsterm_config([preset_listener("edge", echo, certs, modern),
                             preset_listener("web", http, certs, modern)])
    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy = tlsterm_factory(config)
    edge, web = proxy.port("edge"), proxy.port("web")

    tls12 = {"edge": [], "web": []}
    tls13 = {"edge": [], "web": []}
    for _ in range(2):
        client, version = python_echo(edge, certs, max_version=ssl.TLSVersion.TLSv1_2)
        assert version == "TLSv1.2"
        tls12["edge"].append(client)
        client, version = python_echo(edge, certs)
        assert version == "TLSv1.3"
        tls13["edge"].append(client)
    tls12["web"].append(s_client_http(web, "-tls1_2"))
    tls12["web"].append(curl_http(web, certs, "--tls-max", "1.2"))
    tls13["web"].append(s_client_http(web, "-tls1_3"))
    tls13["web"].append(curl_http(web, certs, "--tlsv1.3"))

    # Counted before the backend is even reached, so already there.
    addr = admin_addr(proxy)
    values = samples(addr)
    for listener in ("edge", "web"):
        assert total(values, METRIC, listener=listener, reason="protocol_version") == 2
        assert total(values, METRIC, listener=listener) == 2

    assert proxy.stop() == 0
    for listener in ("edge", "web"):
        flagged = would_fail_by_client(proxy, listener)
        assert sorted(flagged) == sorted(tls12[listener]), (flagged, tls12, tls13)
        for client, event in flagged.items():
            assert event["reason"] == "protocol_version"
            assert event["policy"] == "modern"
            assert event["version"] == "TLSv1.2"
            assert event["sni"] == "localhost"
            assert isinstance(event["worker"], int)
            # What the client offered, as a failed handshake shows it.
            assert event["ja4"].startswith("t12d"), event
            assert "TLSv1.3" not in event["offered_versions"].split(","), event
            assert event["ciphers"]
        # The TLS 1.3 clients completed their handshakes and are not flagged.
        done = {e["client"] for e in proxy.find("handshake_done", listener=listener)}
        assert set(tls13[listener]) <= done
        assert not proxy.find("handshake_failed", listener=listener)


def candidate_entries(report, listener):
    """candidate_entries returns |report|'s report-only entries of
    |listener|, after checking the report against the schema."""
    errors = sorted(VALIDATOR.iter_errors(report), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    return [p for p in report.get("report-only-policies", [])
            if p["policy"]["policy-domain"] == listener]


def check_candidate_entry(report, tls12_ja4s, num_tls12, num_tls13):
    """check_candidate_entry checks that |report| has one report-only entry
    for edge's "modern" candidate that counts exactly the TLS 1.2 clients as
    failures (protocol_version, with their JA4 and version) and the TLS 1.3
    clients as successes, and that the real entry counts all of them as
    successes."""
    [entry] = candidate_entries(report, "edge")
    assert entry["policy"]["policy-string"] == ["policy: modern", "min_version: TLSv1.3",
                                                "max_version: TLSv1.3"]
    assert entry["summary"] == {"total-successful-session-count": num_tls13,
                                "total-failure-session-count": num_tls12}
    [detail] = entry["failure-details"]
    assert detail["result-type"] == "protocol_version"
    assert detail["failed-session-count"] == num_tls12
    assert detail["top-client-networks"] == [{"network": "127.0.0.0/24", "count": num_tls12}]
    assert {j["ja4"] for j in detail["top-ja4"]} == tls12_ja4s
    assert sum(j["count"] for j in detail["top-ja4"]) == num_tls12
    assert detail["top-offered-max-versions"] == [{"version": "TLSv1.2", "count": num_tls12}]
    # The enforced policy let every client in: the real entry has no failure.
    [real] = [p for p in report["policies"] if p["policy"]["policy-domain"] == "edge"]
    assert real["summary"] == {"total-successful-session-count": num_tls12 + num_tls13,
                               "total-failure-session-count": 0}


def test_candidate_failures_reach_the_report(tlsterm_factory, backend_factory, certs, tmp_path):
    """Who breaks if edge switches to TLS 1.3 only: /report, the written file
    and `tlsterm report` name the TLS 1.2 clients under the candidate, with
    their JA4 and version; the TLS 1.3 clients are only its successes."""
    reports = tmp_path / "reports"
    reports.mkdir()
    echo = backend_factory("echo")
    config = tlsterm_config([preset_listener("edge", echo, certs, {"policy": "modern"}),
                             listener_config("plain", echo, certs, min_version=None,
                                             max_version=None)])
    config["workers"] = 2  # each worker's counts are merged
    config["admin"] = {"listen": "127.0.0.1:0"}
    config["report"] = {"interval": "1h", "dir": str(reports)}
    proxy = tlsterm_factory(config)
    edge, plain = proxy.port("edge"), proxy.port("plain")

    num_tls12, num_tls13 = 3, 2
    for _ in range(num_tls12):
        assert python_echo(edge, certs, max_version=ssl.TLSVersion.TLSv1_2)[1] == "TLSv1.2"
    for _ in range(num_tls13):
        assert python_echo(edge, certs)[1] == "TLSv1.3"
    # A listener without a candidate has no report-only entry.
    assert python_echo(plain, certs, max_version=ssl.TLSVersion.TLSv1_2)[1] == "TLSv1.2"
    proxy.wait_count("policy_would_fail", num_tls12)
    tls12_ja4s = {e["ja4"] for e in proxy.find("policy_would_fail", listener="edge")}
    assert all(j.startswith("t12") for j in tls12_ja4s), tls12_ja4s

    addr = admin_addr(proxy)

    def fetched():
        status, body = get(addr, "/report")
        assert status == 200, (status, body)
        return json.loads(body)

    report = wait_until(lambda: (r := fetched()) and candidate_entries(r, "edge") and
                        candidate_entries(r, "edge")[0]["summary"][
                            "total-failure-session-count"] == num_tls12 and r,
                        what="the candidate's failures in /report")
    check_candidate_entry(report, tls12_ja4s, num_tls12, num_tls13)
    assert not candidate_entries(report, "plain")

    # At the end the window is written, with the same entry.
    assert proxy.stop() == 0
    [event] = proxy.find("report_written")
    written = json.loads(Path(event["file"]).read_text())
    check_candidate_entry(written, tls12_ja4s, num_tls12, num_tls13)
    assert not candidate_entries(written, "plain")

    # The table shows the candidate in a section of its own.
    result = run_tlsterm("report", event["file"])
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    real, candidates = out.split("report-only policies:")
    assert re.search(rf"^edge\s+intermediate\s+{num_tls12 + num_tls13}\s+0$", real, re.M), out
    assert re.search(rf"^edge\s+modern\s+{num_tls13}\s+{num_tls12}$", candidates, re.M), out
    assert re.search(rf"^\s+protocol_version\s+{num_tls12}\s+127\.0\.0\.0/24 \({num_tls12}\)\s+"
                     r"t12\S+ \(\d+\)\s+TLSv1\.2 \(" + str(num_tls12) + r"\)$",
                     candidates, re.M), out
    assert "plain" not in candidates


def test_custom_candidate_reasons(tlsterm_factory, backend_factory, certs):
    """A custom candidate: groups [P-384] flags X25519-only TLS 1.3 clients as
    no_shared_group; a narrower TLS 1.2 suite list flags a client offering
    only other suites as no_shared_cipher, and so does a suite that does not
    fit the certificate's key."""
    http = backend_factory("http")
    config = tlsterm_config([
        preset_listener("p384", http, certs,
                        {"policy": "custom", "min_version": "1.3", "groups": ["P-384"]}),
        preset_listener("aes256", http, certs,
                        {"policy": "custom", "ciphers": [ECDSA_AES256]}),
        preset_listener("rsa_suites", http, certs,
                        {"policy": "custom", "ciphers": ["ECDHE-RSA-AES128-GCM-SHA256"]}),
    ])
    proxy = tlsterm_factory(config)
    p384, aes256, rsa_suites = (proxy.port(n) for n in ("p384", "aes256", "rsa_suites"))

    x25519_only = s_client_http(p384, "-tls1_3", "-groups", "X25519")
    # One key share for X25519, P-384 also listed: a HelloRetryRequest away.
    both = s_client_http(p384, "-tls1_3", "-groups", "X25519:P-384")
    p384_only = s_client_http(p384, "-tls1_3", "-groups", "P-384")
    # The version is decided first: TLS 1.2 fails the candidate's min_version.
    # (P-256 too: an OpenSSL TLS 1.2 client wants the ECDSA key's curve.)
    tls12_x25519 = s_client_http(p384, "-tls1_2", "-groups", "X25519:P-256")
    passing = [both, p384_only]

    only_aes128 = s_client_http(aes256, "-tls1_2", "-cipher", ECDSA_AES128)
    with_aes256 = s_client_http(aes256, "-tls1_2", "-cipher", f"{ECDSA_AES128}:{ECDSA_AES256}")
    passing += [with_aes256, s_client_http(aes256, "-tls1_3")]
    # The candidate's only suite is offered, but it needs an RSA certificate.
    rsa_and_ecdsa = s_client_http(rsa_suites, "-tls1_2", "-cipher",
                                  f"ECDHE-RSA-AES128-GCM-SHA256:{ECDSA_AES128}")

    assert proxy.stop() == 0
    assert {c: e["reason"] for c, e in would_fail_by_client(proxy, "p384").items()} == {
        x25519_only: "no_shared_group", tls12_x25519: "protocol_version"}
    assert {c: e["reason"] for c, e in would_fail_by_client(proxy, "aes256").items()} == {
        only_aes128: "no_shared_cipher"}
    assert {c: e["reason"] for c, e in would_fail_by_client(proxy, "rsa_suites").items()} == {
        rsa_and_ecdsa: "no_shared_cipher"}
    assert all(e["policy"] == "custom" for e in proxy.find("policy_would_fail"))
    # The exact sets above leave the others out; they did complete.
    done = {e["client"] for e in proxy.find("handshake_done")}
    assert set(passing) <= done


def test_would_fail_burst_is_rate_limited_and_counted(tlsterm_factory, backend_factory, certs):
    burst, rate, bucket, workers = 1000, 10, 20, 2
    echo = backend_factory("echo")
    config = tlsterm_config([preset_listener("edge", echo, certs, {"policy": "modern"})],
                            level="info")
    config["log"]["handshake_failures"] = {"rate": rate, "burst": bucket,
                                           "summary_interval": "1s"}
    config["workers"] = workers
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    context = client_context(certs.ca, max_version=ssl.TLSVersion.TLSv1_2)

    def clients(n):
        for _ in range(n):
            with tls_connect(port, context):
                pass

    started = time.monotonic()
    threads = [threading.Thread(target=clients, args=(burst // 8,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive()
    elapsed = time.monotonic() - started

    # Still serving, at once, and a TLS 1.3 client is not flagged.
    assert python_echo(port, certs)[1] == "TLSv1.3"

    assert proxy.stop() == 0
    logged = proxy.find("policy_would_fail", reason="protocol_version")
    suppressed = sum(e["count"] for e in
                     proxy.find("policy_would_fail_suppressed", reason="protocol_version"))
    # Exact accounting: every flagged client is either a line or in a count.
    assert len(logged) + suppressed == burst, (len(logged), suppressed)
    # Bounded: each worker's bucket plus its refill over the run.
    assert len(logged) <= workers * (bucket + rate * (elapsed + 2)), (len(logged), elapsed)
    assert suppressed > 0
    # Failed-handshake buckets are separate: nothing failed here.
    assert not proxy.find("handshake_failures_suppressed")


def test_bad_report_only_blocks_are_refused_with_positions(certs, tmp_path):
    config = tlsterm_config([
        listener_config("edge", "127.0.0.1:9", certs, min_version=None, max_version=None,
                        tls={"report_only": {"policy": "modern", "min_version": "1.2",
                                             "groups": ["X448"]}}),
    ])
    path = write_yaml(tmp_path, config, "bad.yaml")
    lines = path.read_text().splitlines()

    def at(key, token):
        """at returns "FILE:LINE:COL" of |token| on the line of |key|."""
        number = next(i for i, line in enumerate(lines, 1) if line.lstrip().startswith(key))
        return f"{path}:{number}:{lines[number - 1].index(token) + 1}"

    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    stderr = result.stderr.decode()
    assert (f"{at('groups:', 'X448')}: unknown group 'X448'; allowed: X25519, P-256, P-384, "
            "P-521") in stderr, stderr
    min_version = at("min_version:", '"1.2"')
    assert (f"{min_version}: min_version needs policy: custom (the preset 'modern' sets TLS 1.3 "
            "only)") in stderr, stderr


def test_check_describes_the_candidate(certs, tmp_path):
    config = tlsterm_config([
        listener_config("edge", "127.0.0.1:9", certs, min_version=None, max_version=None,
                        tls={"report_only": {"policy": "modern"}}),
        listener_config("plain", "127.0.0.1:9", certs, min_version=None, max_version=None),
    ])
    path = write_yaml(tmp_path, config, "good.yaml")
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 0, text(result)
    edge, plain = result.stdout.decode().split("listener plain:\n")
    assert "  versions: TLSv1.2 to TLSv1.3\n" in edge
    assert "  report only: modern, TLSv1.3 to TLSv1.3 (evaluated, not enforced)\n" in edge
    assert "report only" not in plain
