"""Client certificates (client_auth): a verified client gets through and is
logged with its subject and SAN; each way of failing has its own reason,
logged with the subject of the certificate that was refused. Clients are
openssl s_client (-cert/-key), curl and Python's ssl."""

import re
import ssl

import pytest

from backend import HTTP_BODY
from tlsterm_harness import (
    HTTP_REQUEST,
    Pki,
    client_context,
    curl,
    free_port,
    listener_config,
    s_client,
    text,
    tls_connect,
    tls_recv_all,
    tlsterm_config,
)


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """The client CA and its certificates: alice (good), old (expired),
    mallory (revoked, in the CRL), bob, issued by an intermediate, and
    odd, good but with control characters in its SAN names."""
    pki = Pki(tmp_path_factory.mktemp("client-ca"), name="tlsterm client CA")
    pki.alice = pki.issue("alice", cn="alice", client=True,
                          sans=["DNS:alice.example", "email:alice@example.com", "IP:192.0.2.7"])
    # openssl's configuration turns "\\n" into a newline, after which it no
    # longer splits at commas: the last is one name, with a comma in it.
    pki.odd = pki.issue("odd", cn="odd", client=True,
                        sans=["DNS:evil\x1b[2J.example", "email:odd@example.com",
                              "DNS:new\\nline.example,DNS:forged.example"])
    pki.old = pki.issue("old", cn="old", client=True, start="20200101000000Z",
                        end="20210101000000Z")
    pki.mallory = pki.issue("mallory", cn="mallory", client=True)
    pki.revoke(pki.mallory[0])
    pki.crl_path = pki.crl()
    inter = Pki(pki.dir / "inter", name="tlsterm client intermediate", parent=pki)
    pki.bob = inter.issue("bob", cn="bob", client=True)
    pki.bob_chain = str(inter.ca)
    return pki


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """A client certificate from a CA tlsterm does not trust."""
    pki = Pki(tmp_path_factory.mktemp("stranger-ca"), name="stranger CA")
    return pki.issue("eve", cn="eve", client=True)


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_backend_factory, certs, clients):
    http = module_backend_factory("http")
    required = {"mode": "required", "ca": str(clients.ca), "crl": clients.crl_path}
    return module_tlsterm_factory(
        tlsterm_config(
            [
                listener_config("required", http, certs, tls={"client_auth": required}),
                listener_config("optional", http, certs,
                                tls={"client_auth": {"mode": "optional", "ca": str(clients.ca)}}),
                listener_config("shallow", http, certs,
                                tls={"client_auth": {"mode": "required", "ca": str(clients.ca),
                                                     "depth": 1}}),
            ]
        )
    )


def connect(proxy, certs, listener, cert_and_key=None, *args):
    """connect runs s_client with the client certificate |cert_and_key|
    (None: none) and returns (CompletedProcess, client address)."""
    auth = ["-cert", cert_and_key[0], "-key", cert_and_key[1]] if cert_and_key else []
    return s_client(proxy.port(listener), "-servername", "localhost", "-CAfile", certs.ca,
                    "-verify_return_error", "-ign_eof", *auth, *args, input=HTTP_REQUEST,
                    bind_port=free_port())


def alert_seen(result, alert, version):
    """alert_seen checks that s_client reported |alert|. In TLS 1.2 the
    server refuses the certificate before the client's handshake ends; in
    TLS 1.3 the client may already be writing and see only a reset, so the
    alert is checked for TLS 1.2 alone."""
    if version == "-tls1_2":
        assert alert in result.stderr, text(result)


def expect_refused(proxy, listener, result, client, reason, subject):
    assert HTTP_BODY not in result.stdout, text(result)
    failed = proxy.wait_for("handshake_failed", client=client)
    assert failed["reason"] == reason, failed
    assert failed["listener"] == listener, failed
    assert failed.get("client_subject") == subject, failed
    assert not proxy.find("handshake_done", client=client)
    return failed


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_verified_client(proxy, certs, clients, version):
    result, client = connect(proxy, certs, "required", clients.alice, version)
    assert result.returncode == 0, text(result)
    assert HTTP_BODY in result.stdout, text(result)
    # The CertificateRequest names the client CA, so clients can choose.
    assert re.search(rb"Acceptable client certificate CA names\n.*CN ?= ?tlsterm client CA",
                     result.stdout), text(result)
    done = proxy.wait_for("handshake_done", client=client)
    assert done["client_subject"] == "CN=alice", done
    assert done["client_san"] == ["DNS:alice.example", "email:alice@example.com",
                                  "IP:192.0.2.7"], done


def test_client_san_names_are_escaped(proxy, certs, clients):
    """client_san is a JSON array of the names as the certificate has them,
    so a comma inside a name cannot pass for a second name; the log line
    itself carries their control characters escaped."""
    result, client = connect(proxy, certs, "required", clients.odd)
    assert result.returncode == 0, text(result)
    done = proxy.wait_for("handshake_done", client=client)
    assert done["client_san"] == ["DNS:evil\x1b[2J.example", "email:odd@example.com",
                                  "DNS:new\nline.example,DNS:forged.example"], done
    line = next(raw for raw in proxy.log.raw if '"handshake_done"' in raw and client in raw)
    assert "\x1b" not in line and '"DNS:evil\\u001b[2J.example"' in line, line


def test_curl_and_python_clients(proxy, certs, clients):
    port = proxy.port("required")
    result = curl(f"https://localhost:{port}/", port, certs.ca, "--cert", clients.alice[0], "--key",
                  clients.alice[1])
    assert result.returncode == 0, text(result)
    assert result.stdout.endswith(HTTP_BODY), text(result)
    ctx = client_context(certs.ca)
    ctx.load_cert_chain(clients.alice[0], clients.alice[1])
    with tls_connect(port, ctx) as tls:
        tls.sendall(HTTP_REQUEST)
        assert tls_recv_all(tls).endswith(HTTP_BODY)


def test_intermediate_and_depth(proxy, certs, clients):
    # s_client sends the intermediate only with -cert_chain.
    chain = ["-cert_chain", clients.bob_chain]
    result, client = connect(proxy, certs, "optional", clients.bob, *chain)
    assert HTTP_BODY in result.stdout, text(result)
    done = proxy.wait_for("handshake_done", client=client)
    assert done["client_subject"] == "CN=bob", done
    # (Bob is tested on "optional": "required" checks a CRL, and there is
    # none for the intermediate.) depth 1: only certificates issued by a CA
    # in 'ca' itself.
    result, client = connect(proxy, certs, "shallow", clients.bob, *chain)
    expect_refused(proxy, "shallow", result, client, "client_cert_untrusted", "CN=bob")
    result, _ = connect(proxy, certs, "shallow", clients.alice)
    assert HTTP_BODY in result.stdout, text(result)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_missing_certificate(proxy, certs, version):
    result, client = connect(proxy, certs, "required", None, version)
    failed = expect_refused(proxy, "required", result, client, "client_cert_missing", None)
    assert failed["detail"] == "PEER_DID_NOT_RETURN_A_CERTIFICATE", failed
    alert_seen(result, b"handshake failure", version)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_untrusted_certificate(proxy, certs, stranger, version):
    result, client = connect(proxy, certs, "required", stranger, version)
    failed = expect_refused(proxy, "required", result, client, "client_cert_untrusted",
                            "CN=eve")
    assert failed["detail"] == "CERTIFICATE_VERIFY_FAILED", failed
    alert_seen(result, b"unknown ca", version)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_expired_certificate(proxy, certs, clients, version):
    result, client = connect(proxy, certs, "required", clients.old, version)
    expect_refused(proxy, "required", result, client, "client_cert_expired", "CN=old")
    alert_seen(result, b"certificate expired", version)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_revoked_certificate(proxy, certs, clients, version):
    result, client = connect(proxy, certs, "required", clients.mallory, version)
    expect_refused(proxy, "required", result, client, "client_cert_revoked", "CN=mallory")
    alert_seen(result, b"certificate revoked", version)


def test_optional_without_certificate(proxy, certs):
    result, client = connect(proxy, certs, "optional", None)
    assert result.returncode == 0, text(result)
    assert HTTP_BODY in result.stdout, text(result)
    done = proxy.wait_for("handshake_done", client=client)
    assert "client_subject" not in done, done


def test_optional_with_certificates(proxy, certs, clients, stranger):
    result, client = connect(proxy, certs, "optional", clients.alice)
    assert HTTP_BODY in result.stdout, text(result)
    assert proxy.wait_for("handshake_done", client=client)["client_subject"] == "CN=alice"
    # A certificate that is sent is verified, even when none is required.
    result, client = connect(proxy, certs, "optional", stranger)
    expect_refused(proxy, "optional", result, client, "client_cert_untrusted", "CN=eve")


def test_python_client_without_certificate(proxy, certs):
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with tls_connect(proxy.port("required"), client_context(certs.ca)) as tls:
            # TLS 1.3: the refusal arrives after the client's handshake.
            tls.sendall(HTTP_REQUEST)
            tls_recv_all(tls)
