"""A failed handshake's line says what the client offered, captured from its
ClientHello before the failure: versions, suites, groups, signature
algorithms, ALPN, extensions, JA4 and JA3. A client that sent no
ClientHello gets none of those fields."""

import re
import socket
import subprocess

from tlsterm_harness import listener_config, tlsterm_config

JA4 = re.compile(r"^t1[0-3][di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")


def test_tls11_client_details(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", backend_factory("echo"), certs)]))
    port = proxy.port("edge")
    subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1",
                    "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "legacy.example", "-alpn", "http/1.1"],
                   input=b"", capture_output=True, timeout=30)
    failed = proxy.wait_for("handshake_failed", reason="protocol_version")
    assert failed["sni"] == "legacy.example"
    assert JA4.match(failed["ja4"]), failed
    # t = TCP, 11 = TLS 1.1 (no supported_versions), d = SNI present,
    # ALPN "http/1.1" gives h1.
    assert failed["ja4"].startswith("t11d") and failed["ja4"][8:10] == "h1", failed
    assert failed["offered_versions"] == "TLSv1.1"
    assert "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" in failed["ciphers"].split(",")
    assert failed["alpn"] == "http/1.1"
    assert "0" in failed["extensions"].split(",")  # server_name
    assert re.match(r"^[0-9a-f]{32}$", failed["ja3"]), failed


def test_tls13_client_refused_by_group_policy(tlsterm_factory, backend_factory, certs):
    listener = listener_config("edge", backend_factory("echo"), certs, groups=["X25519"])
    proxy = tlsterm_factory(tlsterm_config([listener]))
    subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{proxy.port('edge')}",
                    "-tls1_3", "-groups", "P-384", "-servername", "localhost"],
                   input=b"", capture_output=True, timeout=30)
    failed = proxy.wait_for("handshake_failed", reason="no_shared_group")
    assert failed["ja4"].startswith("t13d"), failed
    assert "TLSv1.3" in failed["offered_versions"].split(",")
    assert failed["groups"] == "secp384r1", failed
    assert "ecdsa_secp256r1_sha256" in failed["sigalgs"].split(",")


def test_no_client_hello_no_details(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", backend_factory("echo"), certs)]))
    with socket.create_connection(("127.0.0.1", proxy.port("edge"))) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        try:
            s.recv(100)
        except ConnectionResetError:
            pass  # tlsterm closes with the request unread
    failed = proxy.wait_for("handshake_failed", reason="http_request_on_tls_port")
    assert "ja4" not in failed and "ciphers" not in failed, failed
