"""What an http-mode backend learns about the client beyond X-Forwarded-For:
the verified client certificate in X-Forwarded-Client-Cert (Envoy's format,
and never a CR or LF from a certificate's names in the request head), RFC
7239 Forwarded, trusted proxies' fields kept and appended to, and the
request id switched off."""

import hashlib
import json
import ssl

import pytest

from http_harness import http_config, http_listener
from tlsterm_harness import Pki, curl, text


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("client-ca"), name="tlsterm client CA")
    pki.alice = pki.issue("alice", cn="alice", client=True,
                          sans=["DNS:alice.example", "URI:spiffe://example.org/alice"])
    # openssl's configuration turns "\\n" into a newline inside the name.
    pki.odd = pki.issue("odd", cn="odd", client=True,
                        sans=["DNS:new\\nline.example,DNS:forged.example"])
    return pki


@pytest.fixture
def backend(http_backend_factory):
    return http_backend_factory()


def get_headers(port, certs, *args, path="/headers"):
    result = curl(f"https://localhost:{port}{path}", port, str(certs.ca), *args)
    assert result.returncode == 0, text(result)
    return json.loads(result.stdout)["headers"]


def values(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


def der_sha256(pem_path):
    pem = open(pem_path).read()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def test_client_cert_header(tlsterm_factory, backend, certs, clients):
    tls = {"client_auth": {"mode": "optional", "ca": str(clients.ca)}}
    listener = http_listener("web", backend, certs, tls=tls, http={"client_cert_header": True})
    proxy = tlsterm_factory(http_config([listener]))
    port = proxy.port("web")
    cert, key = clients.alice
    headers = get_headers(port, certs, "--cert", cert, "--key", key,
                          "-H", "X-Forwarded-Client-Cert: Hash=forged")
    xfcc = values(headers, "x-forwarded-client-cert")
    assert xfcc == [f'Hash={der_sha256(cert)};Subject="CN=alice";DNS="alice.example";'
                    f'URI="spiffe://example.org/alice"'], xfcc
    # No certificate: no field, and the client's own copy is gone too.
    headers = get_headers(port, certs, "-H", "X-Forwarded-Client-Cert: Hash=forged")
    assert values(headers, "x-forwarded-client-cert") == []
    # A newline in a certificate's name stays inside the field, escaped.
    cert, key = clients.odd
    headers = get_headers(port, certs, "--cert", cert, "--key", key)
    xfcc = values(headers, "x-forwarded-client-cert")
    assert len(xfcc) == 1 and "\n" not in xfcc[0] and "%0A" in xfcc[0], xfcc
    assert values(headers, "forged.example") == [] and not any(
        n.lower().startswith("line") for n, _ in headers), headers


def test_forwarded_and_trusted_proxies(tlsterm_factory, backend, certs):
    trusted = http_listener("trusted", backend, certs,
                            http={"forwarded": True, "trusted_proxies": ["127.0.0.0/8"],
                                  "request_id": False})
    untrusted = http_listener("untrusted", backend, certs,
                              http={"forwarded": True, "x_forwarded": False,
                                    "trusted_proxies": ["10.0.0.0/8"]})
    proxy = tlsterm_factory(http_config([trusted, untrusted]))
    spoof = ["-H", "X-Forwarded-For: 192.0.2.1", "-H", "Forwarded: for=192.0.2.1",
             "-H", "X-Real-IP: 192.0.2.1", "-H", "X-Forwarded-Proto: http"]

    headers = get_headers(proxy.port("trusted"), certs, *spoof)
    assert values(headers, "x-forwarded-for") == ["192.0.2.1, 127.0.0.1"]
    assert values(headers, "forwarded") == [
        'for=192.0.2.1, for=127.0.0.1;proto=https;host="localhost:%d"' % proxy.port("trusted")]
    assert values(headers, "x-real-ip") == ["192.0.2.1"]
    assert values(headers, "x-forwarded-proto") == ["http"]
    assert values(headers, "x-request-id") == []

    headers = get_headers(proxy.port("untrusted"), certs, *spoof)
    assert values(headers, "x-forwarded-for") == []
    assert values(headers, "x-real-ip") == []
    assert values(headers, "x-forwarded-proto") == []
    assert values(headers, "forwarded") == [
        'for=127.0.0.1;proto=https;host="localhost:%d"' % proxy.port("untrusted")]
    assert len(values(headers, "x-request-id")) == 1
