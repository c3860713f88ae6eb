"""Every way a handshake can fail ends in exactly one handshake_failed line with
the right reason and client address; the proxy keeps serving afterwards.

All tests share one tlsterm, so the last one checks it survived them all.
"Exactly one" is checked twice: after a barrier (a complete connection made
after the failure, whose conn_closed line shows the proxy has moved on), and
by the last test on the whole log once tlsterm has exited.
"""

import random
import re
import socket
import ssl
import struct
import time

import pytest

from backend import HTTP_BODY
from tlsterm_harness import (
    HTTP_REQUEST,
    addr_text,
    client_context,
    client_hello,
    curl,
    free_port,
    listener_config,
    recv_until_eof,
    reset_on_close,
    s_client,
    text,
    tls_connect,
    tls_recv_all,
    tlsterm_config,
    with_extension,
)

POLICY_CIPHERS = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]
REASONS = {
    "protocol_version", "no_shared_cipher", "no_shared_group", "http_request_on_tls_port",
    "handshake_timeout", "client_closed", "tcp_reset", "malformed", "tls_error",
}


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_backend_factory, certs):
    http = module_backend_factory("http")
    common = dict(ciphers=POLICY_CIPHERS, groups=["X25519", "P-256"])
    return module_tlsterm_factory(
        tlsterm_config(
            [
                listener_config("edge", http, certs, **common),
                listener_config("tls13", http, certs, min_version="1.3"),
                listener_config("x25519", http, certs, groups=["X25519"]),
                listener_config("short", http, certs, handshake="1s", **common),
            ]
        )
    )


def barrier(proxy, certs):
    """barrier makes one complete request to "edge" and waits for its
    conn_closed line: whatever an earlier failure was going to log is
    logged by then."""
    mark = proxy.mark()
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        client = addr_text(tls.getsockname())
        tls.sendall(HTTP_REQUEST)
        assert tls_recv_all(tls).endswith(HTTP_BODY)
    proxy.wait_for("conn_closed", since=mark, client=client)


JA4 = re.compile(r"^t1[0-3][di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")


def expect_one_failure(proxy, certs, mark, listener, client, reason, hello):
    """expect_one_failure waits for |client|'s handshake_failed line on
    |listener| after |mark|, checks it and that it is the only one, and
    returns it. |hello| says whether the client sent a whole ClientHello,
    whose details the line must then carry (and otherwise not)."""
    failed = proxy.wait_for("handshake_failed", since=mark, client=client)
    assert failed["reason"] == reason, failed
    assert failed["listener"] == listener, failed
    assert failed["local"] == f"127.0.0.1:{proxy.port(listener)}", failed
    if hello:
        assert JA4.match(failed["ja4"]), failed
        for field in ("offered_versions", "ciphers", "extensions", "ja3"):
            assert failed[field], (field, failed)
        assert "groups" in failed and "sigalgs" in failed, failed  # may be empty
    else:
        assert "ja4" not in failed and "ciphers" not in failed, failed
    assert failed["level"] == "warn", failed
    assert isinstance(failed["detail"], str), failed
    assert isinstance(failed["duration_ms"], int) and failed["duration_ms"] >= 0, failed
    assert "sni" in failed, failed
    barrier(proxy, certs)
    every = proxy.find("handshake_failed", since=mark)
    assert every == [failed], f"expected one handshake_failed line, got {every}"
    assert not proxy.find("handshake_done", since=mark, client=client)
    return failed


def raw_connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock, addr_text(sock.getsockname())


def run_s_client(proxy, listener, *args):
    """run_s_client runs a failing s_client from a known source port and
    returns (result, client address)."""
    result, client = s_client(proxy.port(listener), *args, bind_port=free_port())
    assert result.returncode != 0, text(result)
    assert b"BEGIN CERTIFICATE" not in result.stdout, text(result)
    return result, client


def test_tls11_client_refused(proxy, certs):
    mark = proxy.mark()
    result, client = run_s_client(
        proxy, "edge", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "localhost"
    )
    assert b"protocol version" in result.stderr, text(result)
    expect_one_failure(proxy, certs, mark, "edge", client, "protocol_version", hello=True)


@pytest.mark.parametrize("cipher", ["AES128-SHA", "ECDHE-ECDSA-AES256-SHA"])
def test_cipher_outside_policy(proxy, certs, cipher):
    mark = proxy.mark()
    _, client = run_s_client(proxy, "edge", "-tls1_2", "-cipher", cipher, "-servername", "localhost")
    expect_one_failure(proxy, certs, mark, "edge", client, "no_shared_cipher", hello=True)


def test_tls12_client_on_tls13_listener(proxy, certs):
    mark = proxy.mark()
    _, client = run_s_client(proxy, "tls13", "-tls1_2", "-servername", "localhost")
    expect_one_failure(proxy, certs, mark, "tls13", client, "protocol_version", hello=True)


def test_group_outside_policy(proxy, certs):
    mark = proxy.mark()
    _, client = run_s_client(proxy, "x25519", "-tls1_3", "-groups", "P-256", "-servername", "localhost")
    expect_one_failure(proxy, certs, mark, "x25519", client, "no_shared_group", hello=True)


def test_plain_http_on_tls_port(proxy, certs):
    mark = proxy.mark()
    sock, client = raw_connect(proxy.port("edge"))
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = recv_until_eof(sock, timeout=15)
    assert HTTP_BODY not in answer
    expect_one_failure(proxy, certs, mark, "edge", client, "http_request_on_tls_port", hello=False)


def test_silent_client_cut_at_handshake_timeout(proxy, certs):
    mark = proxy.mark()
    sock, client = raw_connect(proxy.port("short"))
    with sock:
        start = time.monotonic()
        answer = recv_until_eof(sock, timeout=15)
        elapsed = time.monotonic() - start
    # A timed-out client may get an alert, never data.
    assert len(answer) < 64, answer
    assert 0.9 <= elapsed < 8, f"cut after {elapsed:.2f}s, handshake timeout is 1s"
    failed = expect_one_failure(proxy, certs, mark, "short", client, "handshake_timeout", hello=False)
    assert failed["duration_ms"] >= 900, failed
    assert failed["sni"] is None, failed


def test_garbage(proxy, certs):
    garbage = bytearray(random.Random(1).randbytes(64))
    garbage[0] = 0x01  # not a handshake record (0x16), not SSLv2, not ASCII
    mark = proxy.mark()
    sock, client = raw_connect(proxy.port("edge"))
    with sock:
        sock.sendall(bytes(garbage))
        recv_until_eof(sock, timeout=15)
    expect_one_failure(proxy, certs, mark, "edge", client, "malformed", hello=False)


def send_raw(proxy, listener, data):
    """send_raw sends |data| on a new connection to |listener|, reads until
    tlsterm closes, and returns (what came back, client address)."""
    sock, client = raw_connect(proxy.port(listener))
    with sock:
        sock.sendall(data)
        return recv_until_eof(sock, timeout=15), client


def server_name(*names):
    """server_name returns a server_name extension body listing |names|,
    (name_type, name bytes) pairs."""
    entries = b"".join(bytes([kind]) + struct.pack(">H", len(name)) + name for kind, name in names)
    return struct.pack(">H", len(entries)) + entries


INVALID_SNI = {
    "empty": server_name((0, b"")),
    "256_bytes": server_name((0, b"a" * 256)),
    "nul": server_name((0, b"local\0host")),
    "two_names": server_name((0, b"localhost"), (0, b"example.com")),
    "not_host_name": server_name((1, b"localhost")),
}


@pytest.mark.parametrize("case", sorted(INVALID_SNI))
def test_invalid_sni_is_malformed(proxy, certs, case):
    """BoringSSL refuses these with a fatal alert of its own before any
    callback of tlsterm's runs, and says nothing on its error queue: the
    failure must still read as malformed, with what the client offered."""
    hello = with_extension(client_hello(certs.ca), 0, INVALID_SNI[case])
    mark = proxy.mark()
    answer, client = send_raw(proxy, "edge", hello)
    assert answer[:1] == b"\x15", answer  # an alert, from BoringSSL
    failed = expect_one_failure(proxy, certs, mark, "edge", client, "malformed", hello=True)
    assert failed["detail"] == "INVALID_SNI", failed
    assert failed["sni"] is None, failed
    assert "0" in failed["extensions"].split(","), failed


@pytest.mark.parametrize("after_hello", [False, True], ids=["alone", "after_hello"])
def test_record_too_long_is_malformed(proxy, certs, after_hello):
    """A handshake record header with a length no record can have (the limit
    is 16 KiB plus expansion), first or after a ClientHello (then with the
    negotiated record version, TLS 1.3's 0x0303)."""
    prefix = client_hello(certs.ca) if after_hello else b""
    huge = bytes([0x16, 0x03, 0x03 if after_hello else 0x01, 0xFF, 0xFF]) + bytes(64)
    mark = proxy.mark()
    _, client = send_raw(proxy, "edge", prefix + huge)
    failed = expect_one_failure(proxy, certs, mark, "edge", client, "malformed", hello=after_hello)
    assert failed["detail"] == "ENCRYPTED_LENGTH_TOO_LONG", failed


def test_empty_records_are_malformed(proxy, certs):
    """Empty handshake records carry nothing; BoringSSL stops after a few
    dozen of them."""
    mark = proxy.mark()
    _, client = send_raw(proxy, "edge", bytes([0x16, 0x03, 0x01, 0x00, 0x00]) * 40)
    failed = expect_one_failure(proxy, certs, mark, "edge", client, "malformed", hello=False)
    assert failed["detail"] == "TOO_MANY_EMPTY_FRAGMENTS", failed


def test_partial_client_hello_then_eof(proxy, certs):
    hello = client_hello(certs.ca)
    mark = proxy.mark()
    sock, client = raw_connect(proxy.port("edge"))
    with sock:
        sock.sendall(hello[: len(hello) // 2])
        sock.shutdown(socket.SHUT_WR)
        recv_until_eof(sock, timeout=15)
    expect_one_failure(proxy, certs, mark, "edge", client, "client_closed", hello=False)


def test_partial_client_hello_then_reset(proxy, certs):
    hello = client_hello(certs.ca)
    mark = proxy.mark()
    sock, client = raw_connect(proxy.port("edge"))
    sock.sendall(hello[: len(hello) // 2])
    reset_on_close(sock)
    sock.close()
    expect_one_failure(proxy, certs, mark, "edge", client, "tcp_reset", hello=False)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_client_rejects_certificate(proxy, certs, other_certs, version):
    """A client that trusts another CA aborts with an alert; OpenSSL sends
    unknown_ca for an issuer it cannot find."""
    mark = proxy.mark()
    sock, client = raw_connect(proxy.port("edge"))
    ctx = client_context(other_certs.ca, version=version)
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(sock, server_hostname="localhost")
    sock.close()
    failed = expect_one_failure(proxy, certs, mark, "edge", client, "client_alert:unknown_ca", hello=True)
    assert failed["sni"] == "localhost", failed


def test_still_serves_after_failures(proxy, certs):
    port = proxy.port("edge")
    result = curl(f"https://localhost:{port}/", port, certs.ca)
    assert result.returncode == 0, text(result)
    assert result.stdout == HTTP_BODY
    assert proxy.stop() == 0
    # On the complete log: one line per failed client, each with a reason
    # from the list.
    failures = proxy.find("handshake_failed")
    clients = [f["client"] for f in failures]
    assert len(set(clients)) == len(clients), failures
    for failed in failures:
        assert failed["reason"] in REASONS or failed["reason"].startswith("client_alert:"), failed
        assert not proxy.find("handshake_done", client=failed["client"]), failed
