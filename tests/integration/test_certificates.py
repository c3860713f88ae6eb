"""Certificates: selection by SNI (exact, wildcard, default, sni_strict) and by
key type, the checks made at load (chain order, SAN, expiry), expiry
warnings, and OCSP stapling, with openssl s_client as the client.

Every certificate has its own CN, so the subject s_client prints tells which
one was served."""

import re

import pytest

from backend import HTTP_BODY
from tlsterm_harness import (
    write_yaml,
    HTTP_REQUEST,
    Pki,
    backdate_ocsp,
    free_port,
    listener_config,
    run,
    run_tlsterm,
    s_client,
    text,
    tlsterm_config,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def pair(cert_and_key, **extra):
    cert, key = cert_and_key
    return {"cert": cert, "key": key, **extra}


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_backend_factory, pki):
    http = module_backend_factory("http")
    default = pki.issue("default", cn="default")
    a = pki.issue("a", cn="a", sans=["DNS:a.example"])
    wild = pki.issue("wild", cn="wild", sans=["DNS:*.wild.example"])
    both_ec = pki.issue("both-ecdsa", cn="both-ecdsa", sans=["DNS:both.example"])
    both_rsa = pki.issue("both-rsa", cn="both-rsa", sans=["DNS:both.example"], key="rsa")
    stapled = pki.issue("stapled", cn="stapled", sans=["DNS:stapled.example"])
    fresh = pki.ocsp_response(stapled[0], "stapled.ocsp")
    stale = backdate_ocsp(fresh, pki.dir / "stale.ocsp")
    plain = dict(min_version=None, max_version=None)
    return module_tlsterm_factory(
        tlsterm_config(
            [
                listener_config(
                    "sni", http, pki, cert=[pair(default), pair(a), pair(wild), pair(both_ec),
                                            pair(both_rsa)], **plain,
                ),
                listener_config(
                    "strict", http, pki, cert=[pair(a), pair(wild)], tls={"sni_strict": True},
                    **plain,
                ),
                listener_config(
                    "ocsp", http, pki, cert=[pair(stapled, ocsp=fresh), pair(a)], **plain,
                ),
                listener_config("stale", http, pki, cert=[pair(stapled, ocsp=stale)], **plain),
            ]
        )
    )


def connect(proxy, listener, *args, sni="localhost"):
    """connect runs s_client (with |sni|, or none) from a known port and
    returns (CompletedProcess, client address)."""
    name = ["-servername", sni] if sni else ["-noservername"]
    return s_client(proxy.port(listener), *name, "-ign_eof", *args, input=HTTP_REQUEST,
                    bind_port=free_port())


def served(result):
    """served returns the CN of the certificate s_client was given."""
    assert result.returncode == 0, text(result)
    assert HTTP_BODY in result.stdout, text(result)
    match = re.search(rb"^subject=CN = (\S+)$", result.stdout, re.M)
    assert match, text(result)
    return match.group(1).decode()


@pytest.mark.parametrize(
    "sni, cn",
    [
        ("a.example", "a"),
        ("A.Example", "a"),  # case-insensitive
        ("x.wild.example", "wild"),
        ("y.x.wild.example", "default"),  # a wildcard stands for one label
        ("wild.example", "default"),
        ("unknown.example", "default"),
        (None, "default"),
    ],
)
def test_sni_selection(proxy, pki, sni, cn):
    result, client = connect(proxy, "sni", sni=sni)
    assert served(result) == cn
    done = proxy.wait_for("handshake_done", client=client)
    assert done["sni"] == sni, done
    # The line names the certificate served by its configured file.
    assert done["cert"] == str(pki.dir / f"{cn}.pem"), done


@pytest.mark.parametrize(
    "args, cn",
    [
        (["-sigalgs", "ECDSA+SHA256"], "both-ecdsa"),
        (["-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"], "both-rsa"),
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "both-rsa"),
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"], "both-ecdsa"),
        (["-tls1_3"], "both-ecdsa"),
    ],
)
def test_key_type_selection(proxy, pki, args, cn):
    result, client = connect(proxy, "sni", *args, sni="both.example")
    assert served(result) == cn
    done = proxy.wait_for("handshake_done", client=client)
    assert done["cert"] == str(pki.dir / f"{cn}.pem"), done


@pytest.mark.parametrize("sni", ["a.example", "x.wild.example", "a.example.", "x.wild.example."])
def test_strict_serves_known_names(proxy, sni):
    """A name ending in the root's dot is the same host name."""
    result, _ = connect(proxy, "strict", sni=sni)
    assert served(result) in ("a", "wild")


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("sni", ["unknown.example", None])
def test_strict_refuses_unknown_sni(proxy, sni, version):
    result, client = connect(proxy, "strict", version, sni=sni)
    assert result.returncode != 0, text(result)
    assert HTTP_BODY not in result.stdout
    assert b"unrecognized name" in result.stderr, text(result)
    failed = proxy.wait_for("handshake_failed", client=client)
    assert failed["reason"] == "unknown_sni", failed
    assert failed["detail"] == "UNRECOGNIZED_NAME", failed
    assert failed["sni"] == sni, failed


def test_ocsp_stapled_for_its_certificate(proxy):
    result, _ = connect(proxy, "ocsp", "-status", sni="stapled.example")
    assert served(result) == "stapled"
    out = result.stdout.decode()
    assert "OCSP Response Status: successful (0x0)" in out, text(result)
    assert "Cert Status: good" in out, text(result)
    # The other certificate of the listener has no response.
    result, _ = connect(proxy, "ocsp", "-status", sni="a.example")
    assert served(result) == "a"
    assert b"OCSP response: no response sent" in result.stdout, text(result)


def test_stale_ocsp_not_stapled(proxy):
    warning = proxy.wait_for("ocsp_stale", listener="stale")
    assert warning["level"] == "warn", warning
    assert warning["next_update"] == "2020-01-02 00:00:00 UTC", warning
    result, _ = connect(proxy, "stale", "-status", sni="stapled.example")
    assert served(result) == "stapled"
    assert b"OCSP response: no response sent" in result.stdout, text(result)


# ---- checks at load ------------------------------------------------------------


def load(tmp_path, certificates, check=False, **tls):
    """load runs tlsterm (or --check) on a one-listener config with
    |certificates| and returns (CompletedProcess, config path)."""
    config = tlsterm_config([
        listener_config("edge", "127.0.0.1:9", None, cert=certificates, min_version=None,
                        max_version=None, tls=tls),
    ])
    path = write_yaml(tmp_path, config, "tlsterm.yaml")
    if check:
        return run_tlsterm("--check", "-c", path), path
    return run_tlsterm("-c", path), path


def refused(result, path, pattern):
    """refused asserts exit 1 and one FILE:LINE:COL error matching |pattern|;
    it returns the message."""
    assert result.returncode == 1, text(result)
    err = result.stderr.decode()
    match = re.search(rf"^{re.escape(str(path))}:\d+:\d+: ({pattern})$", err, re.M)
    assert match, text(result)
    assert '"started"' not in err
    return match.group(1)


def test_chain_order(tmp_path, pki, tlsterm_factory, backend_factory):
    inter = Pki(tmp_path / "inter", name="tlsterm test intermediate", parent=pki)
    leaf, key = inter.issue("leaf", cn="chained")
    good = inter.chain_file("good.pem", leaf, inter.ca)
    bad = inter.chain_file("bad.pem", inter.ca, leaf)
    result, path = load(tmp_path, [{"cert": bad, "key": key}])
    refused(result, path, r"certificate chain in '.*bad\.pem' is out of order: certificate 2 "
                          r"\(/CN=chained\) did not issue certificate 1, whose issuer is "
                          r"/CN=tlsterm test CA; list the leaf first, then each certificate's "
                          r"issuer")
    http = backend_factory("http")
    proxy = tlsterm_factory(tlsterm_config([
        listener_config("edge", http, pki, cert=[{"cert": good, "key": key}]),
    ]))
    # The client trusts only the root: the intermediate must come from us.
    result, _ = s_client(proxy.port("edge"), "-servername", "localhost", "-CAfile", pki.ca,
                         "-verify_return_error", "-ign_eof", input=HTTP_REQUEST)
    assert served(result) == "chained"
    assert b"Verify return code: 0 (ok)" in result.stdout, text(result)


def test_short_rsa_key_refused_unless_allow_legacy(tmp_path, pki):
    key = tmp_path / "rsa1024.key"
    run_check = run(["openssl", "genpkey", "-quiet", "-algorithm", "RSA", "-pkeyopt",
                     "rsa_keygen_bits:1024", "-out", key])
    assert run_check.returncode == 0, text(run_check)
    cert, key = pki.issue("rsa1024", cn="rsa1024", key_path=key)
    result, path = load(tmp_path, [{"cert": cert, "key": key}], check=True)
    refused(result, path, r"RSA key of 1024 bits; at least 2048 required "
                          r"\(allow_legacy: true to accept\)")
    result, _ = load(tmp_path, [{"cert": cert, "key": key}], check=True, policy="custom",
                     allow_legacy=True)
    assert result.returncode == 0, text(result)
    # 2048 bits pass without allow_legacy.
    result, _ = load(tmp_path, [pair(pki.issue("rsa2048", cn="rsa2048", key="rsa"))], check=True)
    assert result.returncode == 0, text(result)


def test_certificate_without_san_refused(tmp_path, pki):
    cert, key = pki.issue("nosan", cn="nosan", sans=[])
    result, path = load(tmp_path, [{"cert": cert, "key": key}], check=True)
    refused(result, path, r"certificate '.*nosan\.pem' \(CN=nosan\) has no subjectAltName DNS "
                          r"or IP names: clients ignore the subject CN, so none could verify "
                          r"it; reissue it with a SAN")


def test_expired_certificate(tmp_path, pki, tlsterm_factory, backend_factory):
    cert, key = pki.issue("expired", cn="expired", start="20200101000000Z",
                          end="20210101000000Z")
    for check in (True, False):
        result, path = load(tmp_path, [{"cert": cert, "key": key}], check=check)
        refused(result, path, r"certificate '.*expired\.pem' \(CN=expired\) expired on "
                              r"2021-01-01 00:00:00 UTC; renew it, or set allow_expired: true "
                              r"to serve it anyway")
    http = backend_factory("http")
    proxy = tlsterm_factory(tlsterm_config([
        listener_config("edge", http, pki, cert=[{"cert": cert, "key": key}],
                        tls={"allow_expired": True}),
    ]))
    warning = proxy.wait_for("certificate_expiry", listener="edge")
    assert warning["level"] == "warn", warning
    assert warning["status"] == "expired", warning
    assert warning["subject"] == "CN=expired", warning
    assert warning["not_after"] == "2021-01-01 00:00:00 UTC", warning
    assert warning["file"] == cert, warning
    result, _ = s_client(proxy.port("edge"), "-servername", "localhost", "-ign_eof",
                         input=HTTP_REQUEST)
    assert served(result) == "expired"


@pytest.mark.parametrize(
    "dates, status",
    [
        (dict(days=5), "expires_soon"),
        (dict(start="20990101000000Z", end="20991231000000Z"), "not_yet_valid"),
    ],
)
def test_expiry_warnings(pki, tlsterm_factory, backend_factory, dates, status):
    cert, key = pki.issue(f"warn-{status}", cn=status, **dates)
    calm, calm_key = pki.issue("calm", cn="calm", days=60)
    http = backend_factory("http")
    proxy = tlsterm_factory(tlsterm_config([
        listener_config("edge", http, pki,
                        cert=[{"cert": cert, "key": key}, {"cert": calm, "key": calm_key}]),
    ]))
    warning = proxy.wait_for("certificate_expiry", listener="edge")
    assert warning["status"] == status, warning
    assert warning["subject"] == f"CN={status}", warning
    if status == "expires_soon":
        assert warning["days_left"] in (4, 5), warning
    # 60 days is beyond the default expiry_warning of 21d: no line for it.
    assert proxy.find("certificate_expiry", file=calm) == []


def test_expiry_warning_setting(pki, tlsterm_factory, backend_factory):
    cert, key = pki.issue("sixty", cn="sixty", days=60)
    http = backend_factory("http")
    proxy = tlsterm_factory(tlsterm_config([
        listener_config("edge", http, pki, cert=[{"cert": cert, "key": key}],
                        tls={"expiry_warning": "90d"}),
    ]))
    warning = proxy.wait_for("certificate_expiry", listener="edge")
    assert warning["status"] == "expires_soon", warning


def test_unusable_ocsp_refused(tmp_path, pki):
    one, one_key = pki.issue("one", cn="one")
    other, _ = pki.issue("other", cn="other")
    wrong = pki.ocsp_response(other, "other.ocsp")
    result, path = load(tmp_path, [{"cert": one, "key": one_key, "ocsp": wrong}], check=True)
    refused(result, path, r"OCSP response '.*other\.ocsp' is for another certificate \(its "
                          r"serial number differs from that of '.*one\.pem'\)")
    revoked, revoked_key = pki.issue("revoked", cn="revoked")
    pki.revoke(revoked)
    response = pki.ocsp_response(revoked, "revoked.ocsp")
    result, path = load(tmp_path, [{"cert": revoked, "key": revoked_key, "ocsp": response}],
                        check=True)
    refused(result, path, r"OCSP response '.*revoked\.ocsp' says certificate '.*revoked\.pem' "
                          r"is revoked")
    garbage = tmp_path / "garbage.ocsp"
    garbage.write_bytes(b"-----BEGIN OCSP-----\n")
    result, path = load(tmp_path, [{"cert": one, "key": one_key, "ocsp": str(garbage)}],
                        check=True)
    refused(result, path, r"unusable OCSP response '.*garbage\.ocsp': not a DER OCSP response "
                          r"\(expected DER, as `openssl ocsp -respout` writes it\)")


def test_check_shows_ocsp_and_expiry(tmp_path, pki):
    cert, key = pki.issue("described", cn="described", sans=["DNS:d.example", "IP:127.0.0.1"])
    response = pki.ocsp_response(cert, "described.ocsp")
    result, path = load(tmp_path, [{"cert": cert, "key": key, "ocsp": response}], check=True)
    assert result.returncode == 0, text(result)
    assert re.search(r"  certificate .*described\.pem: ECDSA; subject CN=described; names "
                     r"d\.example; expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; ocsp stapled\n",
                     result.stdout.decode()), text(result)


def test_check_escapes_san_names(tmp_path, pki):
    """SAN names are the certificate's bytes: --check shows their control
    characters escaped (and commas, which separate the list), so a name can
    neither clear the screen nor forge a line."""
    cert, key = pki.issue("control", cn="control",
                          sans=["DNS:localhost", "DNS:evil\x1b[1m.example",
                                "DNS:new\\nline.example"])
    result, path = load(tmp_path, [{"cert": cert, "key": key}], check=True)
    assert result.returncode == 0, text(result)
    out = result.stdout.decode()
    assert "\x1b" not in out, text(result)
    assert re.search(r"  certificate .*control\.pem: ECDSA; subject CN=control; names "
                     r"localhost, evil\\x1b\[1m\.example, new\\nline\.example; expires ", out), \
        text(result)
