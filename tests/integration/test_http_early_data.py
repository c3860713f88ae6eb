"""0-RTT in http mode (RFC 8470), with openssl s_client sending a request as
TLS 1.3 early data on a resumed session: a GET forwarded before the
handshake completes carries Early-Data: 1; a POST waits for the handshake;
a 425 Too Early from the backend is sent again once the handshake is done,
unless the request already said Early-Data (then the client gets the 425)."""

import json
import subprocess

import pytest

from http_harness import http_config, http_listener


@pytest.fixture
def setup(tlsterm_factory, http_backend_factory, certs):
    backend = http_backend_factory()
    listener = http_listener("web", backend, certs, tls={"early_data": True})
    proxy = tlsterm_factory(http_config([listener]))
    return proxy, backend


def s_client(port, certs, tmp_path, early=None):
    """s_client makes one connection: without |early| it saves a session
    (after one request, so the ticket has arrived); with it, it resumes and
    sends |early| as early data. Returns its output."""
    sess = tmp_path / "sess.pem"
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
            "-CAfile", str(certs.ca), "-tls1_3", "-ign_eof"]
    if early is None:
        args += ["-sess_out", str(sess)]
        stdin = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    else:
        path = tmp_path / "early.txt"
        path.write_bytes(early)
        args += ["-sess_in", str(sess), "-early_data", str(path)]
        stdin = b""
    proc = subprocess.run(args, input=stdin, capture_output=True, timeout=8)
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def body_json(out):
    start = out.index("{\"method\"")
    return json.loads(out[start:out.index("\n", start)])


def early_data_fields(out):
    return [v for n, v in body_json(out)["headers"] if n.lower() == "early-data"]


def request(method, path, extra=b"", body=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".encode()
    if body:
        head += f"Content-Length: {len(body)}\r\n".encode()
    return head + extra + b"\r\n" + body


def resumed_with_early_data(proxy, port, certs, tmp_path, early):
    s_client(port, certs, tmp_path)
    mark = proxy.mark()
    out = s_client(port, certs, tmp_path, early)
    assert "Early data was accepted" in out, out
    return out, mark


def test_get_in_early_data_is_marked(setup, certs, tmp_path):
    proxy, _ = setup
    port = proxy.port("web")
    out, mark = resumed_with_early_data(proxy, port, certs, tmp_path, request("GET", "/headers"))
    assert "HTTP/1.1 200 OK" in out, out
    assert early_data_fields(out) == ["1"], out
    line = proxy.wait_count("request", 1, since=mark)[0]
    assert line["early_data"] is True and line["status"] == 200, line


def test_post_in_early_data_waits_for_the_handshake(setup, certs, tmp_path):
    proxy, _ = setup
    port = proxy.port("web")
    out, mark = resumed_with_early_data(proxy, port, certs, tmp_path,
                                        request("POST", "/headers", body=b"pay=1"))
    assert "HTTP/1.1 200 OK" in out, out
    assert early_data_fields(out) == [], out
    assert body_json(out)["body_len"] == 5


def test_425_is_sent_again_after_the_handshake(setup, certs, tmp_path):
    proxy, backend = setup
    port = proxy.port("web")
    out, mark = resumed_with_early_data(proxy, port, certs, tmp_path, request("GET", "/early"))
    assert "HTTP/1.1 200 OK" in out and "425" not in out.split("\n")[0], out
    assert early_data_fields(out) == [], out
    seen = backend.find("request", path="/early")
    assert len(seen) == 2, seen  # once early (425), once after the handshake


def test_425_for_an_upstream_marked_request_goes_to_the_client(setup, certs, tmp_path):
    proxy, backend = setup
    port = proxy.port("web")
    out, mark = resumed_with_early_data(proxy, port, certs, tmp_path,
                                        request("GET", "/early", extra=b"Early-Data: 1\r\n"))
    assert "HTTP/1.1 425" in out, out
    assert len(backend.find("request", path="/early")) == 1
