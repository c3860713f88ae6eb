"""One request through tlsterm with each kind of client: curl, openssl s_client
and Python ssl, over TLS 1.3 and 1.2, with ECDSA and RSA certificates, on
IPv4 and IPv6. Each checks the body, the client's view of the session and
tlsterm's handshake_done and conn_closed lines."""

import socket
import ssl

import pytest

from backend import HTTP_BODY
from tlsterm_harness import (
    HTTP_REQUEST,
    addr_text,
    client_context,
    curl,
    free_port,
    listener_config,
    log_problems,
    s_client,
    text,
    tls_connect,
    tls_recv_all,
    tlsterm_config,
)

POLICY_CIPHERS = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]

# TLS 1.2 suites by OpenSSL name and by IANA name: either is a fine log token.
IANA_NAMES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
}


def assert_cipher(logged, expected):
    assert logged in (expected, IANA_NAMES.get(expected, expected)), (logged, expected)


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAVE_IPV6 = ipv6_available()


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_backend_factory, certs):
    http = module_backend_factory("http")
    listeners = [
        listener_config("edge", http, certs, ciphers=POLICY_CIPHERS, groups=["X25519", "P-256"]),
        listener_config("rsa", http, certs, cert="rsa", ciphers=POLICY_CIPHERS),
    ]
    if HAVE_IPV6:
        listeners.append(listener_config("v6", http, certs, listen=["127.0.0.1:0", "[::1]:0"]))
    return module_tlsterm_factory(tlsterm_config(listeners))


def check_conn(proxy, mark, client, listener, version, sni="localhost"):
    """check_conn waits for the handshake_done and conn_closed lines of
    |client| logged after |mark| and checks their common fields; it returns
    both events."""
    done = proxy.wait_for("handshake_done", since=mark, client=client)
    assert done["listener"] == listener
    assert done["version"] == version
    assert done["sni"] == sni
    assert isinstance(done["duration_ms"], int) and done["duration_ms"] >= 0
    closed = proxy.wait_for("conn_closed", since=mark, client=client)
    assert closed["listener"] == listener
    assert closed["reason"] == "done"
    assert len(proxy.find("handshake_done", since=mark, client=client)) == 1
    return done, closed


def assert_http_ok(response):
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
    assert response.endswith(b"\r\n\r\n" + HTTP_BODY), response


def test_started_and_listening(proxy):
    started = proxy.find("started")
    assert len(started) == 1
    assert started[0]["level"] == "info"
    for listening in proxy.find("listening"):
        assert listening["level"] == "info"
        assert isinstance(listening["ts"], str)
    assert proxy.port("edge") > 0


@pytest.mark.parametrize(
    "version,args",
    [("TLSv1.3", ["--tlsv1.3"]), ("TLSv1.2", ["--tlsv1.2", "--tls-max", "1.2"])],
)
def test_curl(proxy, certs, version, args):
    port = proxy.port("edge")
    local_port = free_port()
    mark = proxy.mark()
    result = curl(
        f"https://localhost:{port}/", port, certs.ca, *args, "--local-port", str(local_port)
    )
    assert result.returncode == 0, text(result)
    assert result.stdout == HTTP_BODY
    done, closed = check_conn(proxy, mark, f"127.0.0.1:{local_port}", "edge", version)
    if version == "TLSv1.2":
        assert_cipher(done["cipher"], "ECDHE-ECDSA-AES128-GCM-SHA256")
    else:
        assert done["cipher"].startswith("TLS_"), done
    assert closed["bytes_in"] > 0
    assert closed["bytes_out"] > len(HTTP_BODY)


@pytest.mark.parametrize(
    "version,args,cipher",
    [
        ("TLSv1.3", ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"], "TLS_AES_128_GCM_SHA256"),
        # The client offers its whole default list; the policy allows one
        # suite for an ECDSA certificate, so that is the one chosen.
        ("TLSv1.2", ["-tls1_2"], "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ],
)
def test_s_client(proxy, certs, version, args, cipher):
    port = proxy.port("edge")
    mark = proxy.mark()
    result, client = s_client(
        port,
        "-servername", "localhost", "-CAfile", certs.ca, "-verify_return_error", "-ign_eof",
        *args,
        input=HTTP_REQUEST,
        bind_port=free_port(),
    )
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, text(result)
    assert "Verify return code: 0 (ok)" in out, text(result)
    assert f"New, {version}, Cipher is {cipher}" in out, text(result)
    assert HTTP_BODY.decode() in out
    done, closed = check_conn(proxy, mark, client, "edge", version)
    assert_cipher(done["cipher"], cipher)
    assert closed["bytes_in"] == len(HTTP_REQUEST)


@pytest.mark.parametrize(
    "tls_version,version",
    [(ssl.TLSVersion.TLSv1_3, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")],
)
def test_python_ssl(proxy, certs, tls_version, version):
    port = proxy.port("edge")
    mark = proxy.mark()
    ctx = client_context(certs.ca, version=tls_version)
    with tls_connect(port, ctx, suppress_ragged_eofs=False) as tls:
        assert tls.version() == version
        client = addr_text(tls.getsockname())
        cipher = tls.cipher()[0]
        tls.sendall(HTTP_REQUEST)
        # suppress_ragged_eofs=False: a TCP EOF without close_notify raises.
        response = tls_recv_all(tls)
    assert_http_ok(response)
    done, closed = check_conn(proxy, mark, client, "edge", version)
    assert_cipher(done["cipher"], cipher)
    assert done["alpn"] is None
    assert closed["bytes_in"] == len(HTTP_REQUEST)
    assert closed["bytes_out"] == len(response)
    assert isinstance(closed["duration_ms"], int)


def test_no_sni(proxy, certs):
    """A client that sends no server name is served; sni is logged null."""
    port = proxy.port("edge")
    mark = proxy.mark()
    ctx = client_context(certs.ca)
    ctx.check_hostname = False
    with tls_connect(port, ctx, server_hostname=None) as tls:
        client = addr_text(tls.getsockname())
        tls.sendall(HTTP_REQUEST)
        assert_http_ok(tls_recv_all(tls))
    check_conn(proxy, mark, client, "edge", "TLSv1.3", sni=None)


def test_rsa_certificate(proxy, certs):
    port = proxy.port("rsa")
    mark = proxy.mark()
    ctx = client_context(certs.ca, version=ssl.TLSVersion.TLSv1_2)
    with tls_connect(port, ctx) as tls:
        assert tls.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
        client = addr_text(tls.getsockname())
        tls.sendall(HTTP_REQUEST)
        assert_http_ok(tls_recv_all(tls))
    done, _ = check_conn(proxy, mark, client, "rsa", "TLSv1.2")
    assert_cipher(done["cipher"], "ECDHE-RSA-AES128-GCM-SHA256")

    result = curl(f"https://localhost:{port}/", port, certs.ca, "--tlsv1.3")
    assert result.returncode == 0, text(result)
    assert result.stdout == HTTP_BODY

    result, _ = s_client(
        port, "-servername", "localhost", "-CAfile", certs.ca, "-verify_return_error",
        "-tls1_3", "-ign_eof", input=HTTP_REQUEST,
    )
    assert result.returncode == 0, text(result)
    assert "Server public key is 2048 bit" in result.stdout.decode(), text(result)


def test_two_certificates_chosen_by_client(tlsterm_factory, backend_factory, certs):
    """A listener with an ECDSA and an RSA certificate gives each client one
    it can verify: ECDSA when offered, RSA to an RSA-only client."""
    http = backend_factory("http")
    proxy = tlsterm_factory(
        tlsterm_config(
            [listener_config("dual", http, certs, cert=[certs.pair("ecdsa"), certs.pair("rsa")])]
        )
    )
    port = proxy.port("dual")
    cases = [
        (["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"], "Server public key is 256 bit"),
        (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "Server public key is 2048 bit"),
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "Server public key is 2048 bit"),
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], "Server public key is 256 bit"),
    ]
    for args, expected in cases:
        result, _ = s_client(
            port, "-servername", "localhost", "-CAfile", certs.ca, "-verify_return_error",
            "-ign_eof", *args, input=HTTP_REQUEST,
        )
        assert result.returncode == 0, (args, text(result))
        out = result.stdout.decode(errors="replace")
        assert expected in out, (args, text(result))
        assert HTTP_BODY.decode() in out


@pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_and_two_addresses(proxy, certs):
    """Listener "v6" listens on 127.0.0.1 and ::1: one listening line per
    address, and both serve."""
    port6 = proxy.port("v6", host="::1")
    port4 = proxy.port("v6", host="127.0.0.1")
    listening = proxy.find("listening", listener="v6")
    assert sorted(e["addr"] for e in listening) == sorted([f"127.0.0.1:{port4}", f"[::1]:{port6}"])
    mark = proxy.mark()
    for host, port in (("::1", port6), ("127.0.0.1", port4)):
        with tls_connect(port, client_context(certs.ca), host=host) as tls:
            client = addr_text(tls.getsockname())
            tls.sendall(HTTP_REQUEST)
            assert_http_ok(tls_recv_all(tls))
        check_conn(proxy, mark, client, "v6", "TLSv1.3")
    assert client.startswith("127.0.0.1:")

    local_port = free_port("::1")
    result = curl(
        f"https://localhost:{port6}/", port6, certs.ca, "--local-port", str(local_port),
        resolve_to="::1",
    )
    assert result.returncode == 0, text(result)
    assert result.stdout == HTTP_BODY
    check_conn(proxy, mark, f"[::1]:{local_port}", "v6", "TLSv1.3")


def test_sni_is_escaped_in_log(proxy, certs):
    """The SNI is the client's to choose: quotes and backslashes in it must
    not break the JSON line."""
    odd = 'odd"name\\with.quotes'
    port = proxy.port("edge")
    mark = proxy.mark()
    ctx = client_context(certs.ca)
    ctx.check_hostname = False
    with tls_connect(port, ctx, server_hostname=odd) as tls:
        client = addr_text(tls.getsockname())
        tls.sendall(HTTP_REQUEST)
        assert_http_ok(tls_recv_all(tls))
    # Lines that failed to parse as JSON are not events: wait_for would miss
    # them, and raw keeps them for the message.
    done = proxy.wait_for("handshake_done", since=mark, client=client)
    assert done["sni"] == odd


def test_log_lines_follow_the_documented_format(proxy, certs):
    """Every stderr line is a JSON object with the documented keys in order
    (teardown checks this too; here it shows up as a test of its own)."""
    mark = proxy.mark()
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        client = addr_text(tls.getsockname())
        tls.sendall(HTTP_REQUEST)
        assert_http_ok(tls_recv_all(tls))
    check_conn(proxy, mark, client, "edge", "TLSv1.3")
    assert log_problems(proxy.log.raw) == []


def test_info_level_hides_debug_lines(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(
        tlsterm_config([listener_config("edge", backend_factory("http"), certs)], level="info")
    )
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        tls.sendall(HTTP_REQUEST)
        assert_http_ok(tls_recv_all(tls))
    assert proxy.stop() == 0
    assert proxy.find("stopped")
    assert not proxy.find(predicate=lambda e: e.get("level") == "debug")
    assert not proxy.find("handshake_done") and not proxy.find("conn_closed")
