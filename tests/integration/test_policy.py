"""TLS policy presets, legacy refusal, ALPN and the --check description, with
real clients: each preset offers exactly its documented versions and TLS 1.2
suites (sslscan, and one openssl s_client handshake per suite), and ALPN is
chosen in server order, optional or required.

One tlsterm serves every listener here: "intermediate" and "modern" have an
ECDSA and an RSA certificate each, so every suite of the preset can be
negotiated."""

import re
import shutil

import pytest

from backend import HTTP_BODY
from tlsterm_harness import (
    write_yaml,
    HTTP_REQUEST,
    free_port,
    listener_config,
    run,
    run_tlsterm,
    s_client,
    text,
    tlsterm_config,
)

INTERMEDIATE_SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
]
TLS13_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
# TLS 1.2 suites a client may offer that no preset accepts: CBC, RSA key
# exchange, and DHE (which BoringSSL lacks anyway).
REFUSED_SUITES = [
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA384",
    "AES128-GCM-SHA256",
    "AES256-SHA",
    "DHE-RSA-AES128-GCM-SHA256",
]


def both_certs(certs):
    return [certs.pair("ecdsa"), certs.pair("rsa")]


def speaks_h2(listener):
    """speaks_h2 marks |listener|'s backend as speaking HTTP/2 itself, which
    tcp mode requires before it offers h2 in ALPN, and returns it."""
    listener["backend"]["protocol"] = "h2"
    return listener


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_backend_factory, certs):
    http = module_backend_factory("http")
    preset = dict(min_version=None, max_version=None, cert=both_certs(certs))
    return module_tlsterm_factory(
        tlsterm_config(
            [
                listener_config("intermediate", http, certs, **preset),
                listener_config("modern", http, certs, tls={"policy": "modern"}, **preset),
                speaks_h2(listener_config(
                    "alpn", http, certs, min_version=None, max_version=None,
                    tls={"alpn": ["h2", "http/1.1"]},
                )),
                speaks_h2(listener_config(
                    "alpn_required", http, certs, min_version=None, max_version=None,
                    tls={"alpn": ["h2"], "alpn_required": True},
                )),
            ]
        )
    )


def handshake(proxy, listener, *args):
    """handshake runs s_client with |args| from a known port and returns
    (CompletedProcess, client address)."""
    return s_client(
        proxy.port(listener), "-servername", "localhost", "-ign_eof", *args,
        input=HTTP_REQUEST, bind_port=free_port(),
    )


def negotiated(result):
    """negotiated returns (protocol, cipher) from s_client's summary."""
    out = result.stdout.decode(errors="replace")
    protocol = re.search(r"Protocol\s*:\s*(\S+)", out)
    cipher = re.search(r"Cipher\s*:\s*(\S+)", out)
    return (protocol.group(1) if protocol else None, cipher.group(1) if cipher else None)


def expect_refused(proxy, listener, client, reason):
    failed = proxy.wait_for("handshake_failed", client=client)
    assert failed["reason"] == reason, failed
    assert failed["listener"] == listener, failed
    return failed


@pytest.mark.parametrize("suite", INTERMEDIATE_SUITES)
def test_intermediate_offers_each_tls12_suite(proxy, suite):
    result, client = handshake(proxy, "intermediate", "-tls1_2", "-cipher", suite)
    assert result.returncode == 0, text(result)
    assert negotiated(result) == ("TLSv1.2", suite), text(result)
    assert HTTP_BODY in result.stdout, text(result)
    done = proxy.wait_for("handshake_done", client=client)
    assert done["version"] == "TLSv1.2", done


@pytest.mark.parametrize("suite", TLS13_SUITES)
@pytest.mark.parametrize("listener", ["intermediate", "modern"])
def test_tls13_suites(proxy, listener, suite):
    result, _ = handshake(proxy, listener, "-tls1_3", "-ciphersuites", suite)
    assert result.returncode == 0, text(result)
    assert negotiated(result) == ("TLSv1.3", suite), text(result)


@pytest.mark.parametrize("suite", REFUSED_SUITES)
def test_intermediate_refuses_legacy_suites(proxy, suite):
    result, client = handshake(proxy, "intermediate", "-tls1_2", "-cipher", f"{suite}@SECLEVEL=0")
    assert result.returncode != 0, text(result)
    expect_refused(proxy, "intermediate", client, "no_shared_cipher")


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
@pytest.mark.parametrize("listener", ["intermediate", "modern"])
def test_old_versions_refused(proxy, listener, version):
    result, client = handshake(proxy, listener, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert result.returncode != 0, text(result)
    expect_refused(proxy, listener, client, "protocol_version")


def test_modern_refuses_tls12(proxy):
    result, client = handshake(proxy, "modern", "-tls1_2")
    assert result.returncode != 0, text(result)
    expect_refused(proxy, "modern", client, "protocol_version")


def sslscan(port):
    """sslscan returns the (version, suite) pairs sslscan saw accepted."""
    result = run(["sslscan", "--no-colour", "--no-fallback", "--no-renegotiation",
                  "--no-compression", "--no-heartbleed", "--no-groups",
                  "--sni-name=localhost", f"127.0.0.1:{port}"], timeout=120)
    assert result.returncode == 0, text(result)
    accepted = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)",
                          result.stdout.decode(errors="replace"), re.M)
    assert accepted, text(result)
    return set(accepted)


@pytest.mark.skipif(shutil.which("sslscan") is None, reason="sslscan is not installed")
def test_sslscan_sees_exactly_the_presets(proxy):
    assert sslscan(proxy.port("intermediate")) == {
        *(("TLSv1.2", s) for s in INTERMEDIATE_SUITES),
        *(("TLSv1.3", s) for s in TLS13_SUITES),
    }
    assert sslscan(proxy.port("modern")) == {("TLSv1.3", s) for s in TLS13_SUITES}


# ---- ALPN --------------------------------------------------------------------


def alpn_of(result):
    match = re.search(rb"ALPN protocol: (\S+)", result.stdout)
    return match.group(1).decode() if match else None


@pytest.mark.parametrize(
    "offer, chosen",
    [
        ("h2,http/1.1", "h2"),
        ("http/1.1,h2", "h2"),  # server preference, not the client's
        ("http/1.1", "http/1.1"),
        ("spdy/3,http/1.1", "http/1.1"),
        ("spdy/3", None),  # no overlap: on without ALPN
    ],
)
def test_alpn_server_preference(proxy, offer, chosen):
    result, client = handshake(proxy, "alpn", "-alpn", offer)
    assert result.returncode == 0, text(result)
    assert alpn_of(result) == chosen, text(result)
    assert HTTP_BODY in result.stdout, text(result)
    done = proxy.wait_for("handshake_done", client=client)
    assert done["alpn"] == chosen, done


def test_no_alpn_offered(proxy):
    result, _ = handshake(proxy, "alpn")
    assert result.returncode == 0, text(result)
    assert alpn_of(result) is None, text(result)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_alpn_required_no_overlap(proxy, version):
    result, client = handshake(proxy, "alpn_required", version, "-alpn", "http/1.1")
    assert result.returncode != 0, text(result)
    assert HTTP_BODY not in result.stdout
    assert b"no application protocol" in result.stderr, text(result)
    failed = expect_refused(proxy, "alpn_required", client, "no_application_protocol")
    assert failed["detail"] == "NO_APPLICATION_PROTOCOL", failed


def test_alpn_required_without_alpn(proxy):
    result, client = handshake(proxy, "alpn_required")
    assert result.returncode != 0, text(result)
    expect_refused(proxy, "alpn_required", client, "no_application_protocol")


def test_alpn_required_match(proxy):
    result, _ = handshake(proxy, "alpn_required", "-alpn", "http/1.1,h2")
    assert result.returncode == 0, text(result)
    assert alpn_of(result) == "h2", text(result)


# ---- legacy ------------------------------------------------------------------


def test_legacy_refused_at_load(tmp_path, certs):
    config = tlsterm_config([
        listener_config("old", "127.0.0.1:9", certs, min_version="1.0",
                        ciphers=["ECDHE-ECDSA-AES128-SHA"]),
    ])
    path = write_yaml(tmp_path, config)
    for args in (["--check", "-c", path], ["-c", path]):
        result = run_tlsterm(*args)
        assert result.returncode == 1, text(result)
        err = result.stderr.decode()
        assert re.search(rf"{re.escape(str(path))}:\d+:\d+: min_version: TLS 1.0 is not allowed"
                         r".*allow_legacy: true", err), text(result)
        assert re.search(r"cipher suite 'ECDHE-ECDSA-AES128-SHA' is not allowed.*"
                         r"allow_legacy: true", err), text(result)
        assert b'"started"' not in result.stderr


def test_legacy_allowed_and_warned(tlsterm_factory, backend_factory, certs):
    http = backend_factory("http")
    proxy = tlsterm_factory(tlsterm_config([
        listener_config("old", http, certs, cert="rsa", min_version="1.0",
                        ciphers=["ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256"],
                        tls={"allow_legacy": True}),
    ]))
    warning = proxy.wait_for("legacy_tls", listener="old")
    assert warning["level"] == "warn", warning
    assert warning["min_version"] == "TLSv1", warning
    result, client = s_client(proxy.port("old"), "-tls1", "-cipher",
                              "ECDHE-RSA-AES128-SHA@SECLEVEL=0", "-servername", "localhost", "-ign_eof",
                              input=HTTP_REQUEST, bind_port=free_port())
    assert result.returncode == 0, text(result)
    assert negotiated(result) == ("TLSv1", "ECDHE-RSA-AES128-SHA"), text(result)
    assert HTTP_BODY in result.stdout
    done = proxy.wait_for("handshake_done", client=client)
    assert done["version"] == "TLSv1", done


# ---- --check -------------------------------------------------------------------


def test_check_describes_the_policy(tmp_path, certs):
    config = tlsterm_config([
        speaks_h2(listener_config("inter", "127.0.0.1:9", certs, min_version=None,
                                  max_version=None, cert=both_certs(certs),
                                  tls={"alpn": ["h2", "http/1.1"]})),
        listener_config("mod", "127.0.0.1:9", certs, min_version=None, max_version=None,
                        groups=["P-384", "X25519"],
                        tls={"policy": "modern", "sni_strict": True}),
    ])
    path = write_yaml(tmp_path, config)
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 0, text(result)
    out = result.stdout.decode()
    inter, mod = out.split("listener mod:\n")
    assert "listener inter:\n" in inter
    assert "  policy: intermediate\n" in inter
    assert "  versions: TLSv1.2 to TLSv1.3\n" in inter
    assert f"  tls1.2 suites: {':'.join(INTERMEDIATE_SUITES)}\n" in inter
    assert "  groups: X25519:P-256:P-384\n" in inter
    assert "  alpn: h2, http/1.1\n" in inter
    assert "  client auth: none\n" in inter
    assert re.search(rf"  certificate {re.escape(str(certs.ecdsa_cert))}: ECDSA; subject "
                     r"CN=localhost; names localhost; expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                     r"UTC; ocsp none\n", inter), out
    assert f"  certificate {certs.rsa_cert}: RSA;" in inter
    assert "  policy: modern\n" in mod
    assert "  versions: TLSv1.3 to TLSv1.3\n" in mod
    assert "  tls1.2 suites: (none: TLS 1.2 disabled)\n" in mod
    assert "  groups: P-384:X25519\n" in mod
    assert "  alpn: (none)\n" in mod
    assert "  sni: strict\n" in mod
    assert out.endswith(f"{path}: ok\n")


def test_h2_refused_in_front_of_an_http1_backend(tmp_path, certs):
    """tcp mode forwards bytes unchanged: offering h2 in front of an
    HTTP/1.1 backend would give every h2 client an empty reply, so the
    configuration is refused, at the h2 entry."""
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs,
                                             tls={"alpn": ["h2", "http/1.1"]})])
    path = write_yaml(tmp_path, config)
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode != 0, text(result)
    err = result.stderr.decode()
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: alpn offers h2, but the backend", err), err
    assert "backend.protocol: h2" in err
