"""The admin endpoint: /healthz, /readyz (503 while draining), /metrics in
Prometheus text format with counters consistent with what the test did, and
an endpoint that refuses other methods and survives garbage."""

import datetime
import re
import signal
import socket
import ssl
import subprocess
import time

from tlsterm_harness import (
    Pki,
    backdate_ocsp,
    write_yaml,
    reload_and_wait,
    to_yaml,
    admin_addr,
    free_port,
    get,
    http,
    samples,
    client_context,
    listener_config,
    total,
    run_tlsterm,
    tls_connect,
    tlsterm_config,
)


def admin_config(backend, certs):
    config = tlsterm_config([listener_config("edge", backend, certs)])
    config["admin"] = {"listen": "127.0.0.1:0"}
    return config


def test_health_and_readiness(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(admin_config(backend_factory("echo"), certs))
    addr = admin_addr(proxy)
    status, body = get(addr, "/healthz")
    assert status == 200 and body.startswith(b"ok"), (status, body)
    assert get(addr, "/readyz")[0] == 200
    assert get(addr, "/nope")[0] == 404

    # Draining (one connection still open): not ready, still alive.
    tls = tls_connect(proxy.port("edge"), client_context(certs.ca))
    proxy.send_signal(signal.SIGTERM)
    proxy.wait_for("draining")
    assert get(addr, "/readyz")[0] == 503
    assert get(addr, "/healthz")[0] == 200
    tls.close()
    assert proxy.wait_exit() == 0


def test_metrics_match_what_happened(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(admin_config(backend_factory("echo"), certs))
    addr = admin_addr(proxy)
    port = proxy.port("edge")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with tls_connect(port, client_context(certs.ca, version=version)) as tls:
            tls.sendall(b"12345")
            assert tls.recv(5) == b"12345"
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"\x00" * 16)
        s.recv(100)
    subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1",
                    "-cipher", "DEFAULT@SECLEVEL=0"], input=b"", capture_output=True, timeout=30)
    proxy.wait_count("conn_closed", 2)
    proxy.wait_count("handshake_failed", 2)

    values = samples(addr)
    assert total(values, "tlsterm_connections_accepted_total", listener="edge") == 4
    assert total(values, "tlsterm_handshakes_total", listener="edge") == 2
    assert total(values, "tlsterm_handshakes_total", version="TLSv1.3") == 1
    assert total(values, "tlsterm_handshakes_total", version="TLSv1.2") == 1
    assert total(values, "tlsterm_handshake_failures_total", reason="malformed") == 1
    assert total(values, "tlsterm_handshake_failures_total", reason="protocol_version") == 1
    assert total(values, "tlsterm_forwarded_bytes_total", direction="client_to_backend") == 10
    assert total(values, "tlsterm_forwarded_bytes_total", direction="backend_to_client") == 10
    assert total(values, "tlsterm_connections_active", listener="edge") == 0
    # Histograms count every completed handshake.
    assert total(values, "tlsterm_handshake_duration_seconds_count", listener="edge") == 2
    # The served certificate's expiry, as the openssl CLI reads it.
    enddate = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601",
                              "-in", str(certs.ecdsa_cert)], capture_output=True, text=True)
    not_after = datetime.datetime.fromisoformat(enddate.stdout.split("=", 1)[1].strip().replace("Z", "+00:00"))
    assert total(values, "tlsterm_certificate_not_after_timestamp_seconds", listener="edge") == \
        not_after.timestamp()


def ocsp_next_update(response):
    """ocsp_next_update returns the nextUpdate of the DER OCSP |response|
    as the openssl CLI reads it, in unix time."""
    out = subprocess.run(["openssl", "ocsp", "-respin", str(response), "-resp_text",
                          "-noverify"], capture_output=True, text=True, timeout=30).stdout
    [when] = re.findall(r"Next Update: (.+)", out)
    return datetime.datetime.strptime(when.strip(), "%b %d %H:%M:%S %Y %Z").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_ocsp_and_reload_gauges(tlsterm_factory, backend_factory, tmp_path):
    """The OCSP gauge carries each response's nextUpdate (a stale one too,
    which is what an alert compares with the time); the reload gauge reads 0
    from a failed reload until the next good one."""
    pki = Pki(tmp_path / "pki")
    fresh_pair = pki.issue("fresh", cn="fresh", sans=["DNS:fresh.example"])
    stale_pair = pki.issue("stale", cn="stale", sans=["DNS:stale.example"])
    plain_pair = pki.issue("plain", cn="plain", sans=["DNS:plain.example"])
    fresh = pki.ocsp_response(fresh_pair[0], "fresh.ocsp")
    stale = backdate_ocsp(pki.ocsp_response(stale_pair[0], "stale-src.ocsp"),
                          pki.dir / "stale.ocsp")
    certificates = [
        {"cert": fresh_pair[0], "key": fresh_pair[1], "ocsp": fresh},
        {"cert": stale_pair[0], "key": stale_pair[1], "ocsp": stale},
        {"cert": plain_pair[0], "key": plain_pair[1]},
    ]
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), pki,
                                             cert=certificates, min_version=None,
                                             max_version=None)])
    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy = tlsterm_factory(config)
    addr = admin_addr(proxy)

    values = samples(addr)
    ocsp = {dict(labels)["subject"]: value for (name, labels), value in values.items()
            if name == "tlsterm_ocsp_response_next_update_timestamp_seconds"}
    assert ocsp == {"CN=fresh": ocsp_next_update(fresh),
                    "CN=stale": datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)
                    .timestamp()}, ocsp
    assert ocsp["CN=fresh"] > time.time()
    assert total(values, "tlsterm_config_last_reload_successful") == 1

    good = proxy.config_path.read_text()
    proxy.config_path.write_text(good.replace(str(plain_pair[0]), str(tmp_path / "gone.pem")))
    reload_and_wait(proxy, "reload_failed")
    values = samples(addr)
    assert total(values, "tlsterm_config_last_reload_successful") == 0
    assert total(values, "tlsterm_config_reloads_total", result="failed") == 1
    # The configuration in force still has its certificates.
    assert total(values, "tlsterm_ocsp_response_next_update_timestamp_seconds") == \
        sum(ocsp.values())

    proxy.config_path.write_text(good)
    reload_and_wait(proxy)
    values = samples(addr)
    assert total(values, "tlsterm_config_last_reload_successful") == 1
    assert total(values, "tlsterm_config_reloads_total", result="ok") == 1


def test_rejects_other_methods_and_garbage(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(admin_config(backend_factory("echo"), certs))
    addr = admin_addr(proxy)
    for method in ("POST", "PUT", "DELETE"):
        status, _ = http(addr, f"{method} /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".encode())
        assert status == 405
    assert http(addr, b"\x16\x03\x01\x00\x05hello\r\n\r\n")[0] == 400
    assert http(addr, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")[0] in (400, 431)
    # Still up, and the TLS side never noticed.
    assert get(addr, "/healthz")[0] == 200
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        tls.sendall(b"x")
        assert tls.recv(1) == b"x"


def test_public_admin_address_refused(certs, tmp_path):
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs)])
    config["admin"] = {"listen": "0.0.0.0:9100"}
    path = write_yaml(tmp_path, config, "t.yaml")
    result = run_tlsterm("--check", "-c", str(path))
    stderr = result.stderr.decode() if isinstance(result.stderr, bytes) else result.stderr
    assert result.returncode == 1
    assert "allow_public" in stderr and f"{path}:" in stderr, stderr


def test_admin_address_of_a_listener_refused(certs, tmp_path):
    port = free_port()
    listen = f"127.0.0.1:{port}"
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs, listen=[listen])])
    config["admin"] = {"listen": listen}
    path = write_yaml(tmp_path, config, "t.yaml")
    lines = path.read_text().splitlines()
    admin_line = next(i for i, l in enumerate(lines, 1) if l.strip().startswith("listen:") and
                      l.startswith("  listen"))
    listener_line = next(i for i, l in enumerate(lines, 1) if listen in l and i != admin_line)
    listener_col = lines[listener_line - 1].index(listen) + 1
    result = run_tlsterm("--check", "-c", str(path))
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert re.search(
        rf"^{re.escape(str(path))}:{admin_line}:\d+: admin listen address '{listen}' is also a "
        rf"listen address of listener 'edge' \(at {listener_line}:{listener_col}\)", stderr, re.M
    ), stderr


def test_probe_gets_in_past_64_slow_connections(tlsterm_factory, backend_factory, certs):
    """64 clients (the limit) that send part of a request and hold do not
    keep a health probe out: the oldest is closed to make room, the probe is
    answered at once, and the other slow ones get a 408 two seconds later,
    not at the 10 s request deadline. Clients that completed their request
    get their whole answer."""
    proxy = tlsterm_factory(admin_config(backend_factory("echo"), certs))
    addr = admin_addr(proxy)
    slow = []
    try:
        # Answered clients that keep their side open linger in a slot (for
        # at most a second); they are never closed for room.
        answered = []
        for _ in range(4):
            s = socket.create_connection(addr, timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
            answered.append(s)
        for _ in range(64):
            s = socket.create_connection(addr, timeout=10)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: adm")
            slow.append(s)
        # The kernel's accept queue is FIFO: the probe comes after them.
        started = time.monotonic()
        status, body = get(addr, "/healthz")
        probe_s = time.monotonic() - started
        assert status == 200 and body.startswith(b"ok"), (status, body)
        assert probe_s < 1.5, probe_s
        event = proxy.wait_for("admin_busy")
        assert "oldest incomplete request is closed" in event["msg"], event

        for s in answered:
            response = recv_all(s)
            assert response.startswith(b"HTTP/1.1 200 "), response
            s.close()
        # Each connection past the 64 slots (the probe, and a slow one per
        # answered client still lingering) closed the oldest slow client;
        # the rest are cut 2 s after the squeeze with a 408. (On a loaded
        # machine a few connects may outrun the admin thread's backlog and
        # be taken after the squeeze, with room: those keep the 10 s
        # request deadline.)
        closed = timed_out = hurried = 0
        for s in slow:
            response = recv_all(s)
            elapsed = time.monotonic() - started
            if response == b"":
                closed += 1
                continue
            assert response.startswith(b"HTTP/1.1 408 "), response
            assert elapsed < 10 + 3, elapsed
            timed_out += 1
            hurried += elapsed < 2 + 3
        assert 1 <= closed <= 1 + len(answered), (closed, timed_out)
        assert closed + timed_out == 64, (closed, timed_out)
        assert hurried >= 48, (hurried, timed_out)
        # And the endpoint serves as before.
        assert get(addr, "/healthz")[0] == 200
    finally:
        for s in slow:
            s.close()


def recv_all(sock):
    """recv_all reads |sock| until the peer's EOF and returns the bytes."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_reload_keeps_the_admin_endpoint_that_runs(tlsterm_factory, backend_factory, certs):
    """The admin endpoint is bound at start: a reload with another
    admin.listen (or none) says so with reload_partial and keeps serving on
    the running address; the file back as it runs warns no more."""
    config = admin_config(backend_factory("echo"), certs)
    proxy = tlsterm_factory(config)
    addr = admin_addr(proxy)
    other = f"127.0.0.1:{free_port()}"

    for admin, in_file in (({"listen": other}, other), (None, "off")):
        if admin is None:
            del config["admin"]
        else:
            config["admin"] = admin
        proxy.config_path.write_text(to_yaml(config))
        mark = proxy.mark()
        reload_and_wait(proxy)
        [partial] = proxy.find("reload_partial", since=mark)
        assert partial["admin_running"] == "127.0.0.1:0", partial
        assert partial["admin_in_file"] == in_file, partial
        assert partial["msg"] == "'admin.listen' takes effect only at the next restart"
        assert get(addr, "/healthz")[0] == 200
    with socket.socket() as s:
        host, port = other.rsplit(":", 1)
        assert s.connect_ex((host, int(port))) != 0, "nothing listens on the new address"

    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy.config_path.write_text(to_yaml(config))
    mark = proxy.mark()
    reload_and_wait(proxy)
    assert proxy.find("reload_partial", since=mark) == []
    assert get(addr, "/healthz")[0] == 200
