"""HTTP mode with real clients, one proxy for the module: curl --http2 and
--http1.1, nghttp, h2load, python-h2 and a raw HTTP/1.1 client; the headers
the backend gets (X-Forwarded-*, cookies, hop-by-hop), HEAD/204/304, 1xx,
trailers, Expect: 100-continue, pipelining, WebSocket, pool reuse and the
access log.

HTTP_TEST_STANDIN=nghttpx runs the same tests against nghttpx (see
http_harness.py)."""

import base64
import hashlib
import json
import os
import re

import pytest

from backend import pattern, pattern_sha256
from http_backend import HELLO_BODY, TRAILERS_BODY, ws_frame
from http_harness import (
    H1Conn,
    H2Conn,
    HttpProxy,
    tlsterm_only,
    differs_from_standin,
)
from tlsterm_harness import run, text


@pytest.fixture(scope="module")
def backend(module_http_backend_factory):
    return module_http_backend_factory()


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, backend, certs):
    return HttpProxy(module_tlsterm_factory, backend, certs)


def url(proxy, path):
    return f"https://localhost:{proxy.port}{path}"


def curl_args(proxy, certs):
    return ["curl", "-sS", "--max-time", "30", "--cacert", str(certs.ca),
            "--resolve", f"localhost:{proxy.port}:127.0.0.1"]


def fields(headers, name):
    """fields returns the values of |name| (any case) in a backend's
    /headers list."""
    return [v for n, v in headers if n.lower() == name]


# ---- clients ----------------------------------------------------------------------


def test_alpn_offers_h2_and_http11(proxy, certs):
    with H2Conn(proxy.port, certs) as conn:
        assert conn.pipe.alpn == "h2"
        stream = conn.get("/")
        assert (stream.status, bytes(stream.data)) == (200, HELLO_BODY)
        assert stream.header("content-length") == str(len(HELLO_BODY))
        # MAX_CONCURRENT_STREAMS is always sent (nghttp2 sends none unless told).
        assert conn.remote_settings.get(3) == 100, conn.remote_settings
    with H1Conn(proxy.port, certs) as conn:
        assert conn.pipe.alpn == "http/1.1"
        response = conn.request("GET", "/")
        assert (response.status, response.body) == (200, HELLO_BODY)
    # A client that offers no ALPN at all speaks HTTP/1.1.
    with H1Conn(proxy.port, certs, alpn=()) as conn:
        assert conn.pipe.alpn is None
        assert conn.request("GET", "/").status == 200


@pytest.mark.parametrize("version,flag", [("2", "--http2"), ("1.1", "--http1.1")])
def test_curl_several_urls_on_one_connection(proxy, certs, tmp_path, version, flag):
    paths = ["/bytes/100000", "/headers", "/bytes/70000?chunked=1", "/"]
    outputs = [tmp_path / f"out{i}" for i in range(len(paths))]
    cmd = curl_args(proxy, certs) + [flag, "-w", "%{http_version} %{response_code} %{num_connects}\n"]
    for path, out in zip(paths, outputs):
        cmd += ["-o", out, url(proxy, path)]
    result = run(cmd, timeout=40)
    assert result.returncode == 0, text(result)
    lines = result.stdout.decode().split("\n")[:-1]
    # One connection: the first transfer connected, the others reused it.
    assert lines == [f"{version} 200 1"] + [f"{version} 200 0"] * 3, lines
    assert outputs[0].read_bytes() == b"".join(pattern(100000))
    seen = json.loads(outputs[1].read_bytes())
    assert seen["method"] == "GET" and seen["target"] == "/headers"
    assert seen["version"] == "HTTP/1.1"
    assert fields(seen["headers"], "host") == [f"localhost:{proxy.port}"]
    assert outputs[2].read_bytes() == b"".join(pattern(70000))
    assert outputs[3].read_bytes() == HELLO_BODY


def test_curl_upload_chunked_and_content_length(proxy, certs, tmp_path):
    body = os.urandom(300_000)
    upload = tmp_path / "upload"
    upload.write_bytes(body)
    for flag in ("--http2", "--http1.1"):
        for source in (upload, "-"):  # "-": no length known, chunked over h1
            result = run(curl_args(proxy, certs) + [flag, "-T", source, url(proxy, "/sha")],
                         input=body, timeout=40)
            assert result.returncode == 0, (flag, source, text(result))
            answer = json.loads(result.stdout)
            assert answer == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}


def test_nghttp_client(proxy, certs, tmp_path):
    body = os.urandom(200_000)
    upload = tmp_path / "upload"
    upload.write_bytes(body)
    base = f"https://127.0.0.1:{proxy.port}"
    result = run(["nghttp", "-t", "30", "-d", upload, f"{base}/sha"], timeout=40)
    assert result.returncode == 0, text(result)
    assert json.loads(result.stdout) == {"sha256": hashlib.sha256(body).hexdigest(),
                                         "length": len(body)}
    result = run(["nghttp", "-t", "30", "-n", "-s", f"{base}/bytes/100000", f"{base}/headers",
                  f"{base}/status/204"], timeout=40)
    assert result.returncode == 0, text(result)
    out = result.stdout.decode()
    # -s prints one line per stream; all three completed.
    assert len(re.findall(r"\s/(bytes/100000|headers|status/204)\s*$", out, re.M)) == 3, out


@pytest.mark.parametrize("h1", [False, True], ids=["h2", "http1.1"])
def test_h2load(proxy, h1):
    args = ["h2load", "-n", "2000", "-c", "10", "-m", "100" if not h1 else "1", "-t", "1",
            f"https://127.0.0.1:{proxy.port}/bytes/1000"]
    if h1:
        args.insert(1, "--h1")
    result = run(args, timeout=120)
    out = result.stdout.decode()
    assert result.returncode == 0, text(result)
    assert "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored" \
        in out, out
    assert "status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx" in out, out
    assert "(2000000) data" in out, out  # every body whole


# ---- what the backend gets ---------------------------------------------------------------


SPOOFED = [
    ("x-forwarded-for", "1.2.3.4"),
    ("x-forwarded-proto", "http"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "1"),
    ("x-real-ip", "1.2.3.4"),
    ("forwarded", "for=1.2.3.4;proto=http"),
]


def test_forwarded_headers_h2(proxy, certs):
    """h2 → h1: :authority becomes Host, the client address replaces a
    spoofed X-Forwarded-For, X-Forwarded-Proto is https, cookie fields are
    joined with "; "."""
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get("/headers", headers=SPOOFED + [("cookie", "a=1"), ("cookie", "b=2")])
    assert stream.status == 200
    seen = stream.json()
    headers = seen["headers"]
    assert seen["version"] == "HTTP/1.1"
    assert fields(headers, "host") == ["localhost"]
    assert fields(headers, "x-forwarded-for") == ["127.0.0.1"]
    assert fields(headers, "x-forwarded-proto") == ["https"]
    assert fields(headers, "cookie") == ["a=1; b=2"]
    assert not [n for n, _ in headers if n.startswith(":")], headers


@tlsterm_only
def test_forwarded_headers_tlsterm(proxy, certs):
    """What nghttpx does not do: X-Forwarded-Host and -Port, and X-Real-IP
    and Forwarded from an untrusted client removed."""
    for http2 in (True, False):
        if http2:
            with H2Conn(proxy.port, certs) as conn:
                seen = conn.get("/headers", headers=SPOOFED).json()
        else:
            with H1Conn(proxy.port, certs) as conn:
                seen = conn.request("GET", "/headers", SPOOFED).json()
        headers = seen["headers"]
        assert fields(headers, "x-forwarded-for") == ["127.0.0.1"]
        assert fields(headers, "x-forwarded-proto") == ["https"]
        assert fields(headers, "x-forwarded-host") == ["localhost"]
        assert fields(headers, "x-forwarded-port") == [str(proxy.port)]
        assert fields(headers, "x-real-ip") == []
        assert fields(headers, "forwarded") == []


def test_trusted_proxy_x_forwarded_for_appended(tlsterm_factory, http_backend_factory, certs):
    proxy = HttpProxy(tlsterm_factory, http_backend_factory(), certs,
                      http={"trusted_proxies": ["127.0.0.1/32"]})
    with H2Conn(proxy.port, certs) as conn:
        seen = conn.get("/headers", headers=[("x-forwarded-for", "1.2.3.4")]).json()
    assert fields(seen["headers"], "x-forwarded-for") == ["1.2.3.4, 127.0.0.1"]
    with H1Conn(proxy.port, certs) as conn:
        seen = conn.request("GET", "/headers", [("X-Forwarded-For", "1.2.3.4")]).json()
    assert fields(seen["headers"], "x-forwarded-for") == ["1.2.3.4, 127.0.0.1"]


HOP_BY_HOP_REQUEST = [
    ("Connection", "keep-alive, X-Named-Hop"),
    ("X-Named-Hop", "1"),
    ("Keep-Alive", "timeout=5"),
    ("Proxy-Connection", "keep-alive"),
    ("TE", "gzip"),
    ("X-End-To-End", "kept"),
]
# Fields named by Connection, and TE other than trailers: nghttpx passes
# them on, the issue says they are removed.
NAMED_HOP = {"x-named-hop", "te"}
NAMED_HOP_RESPONSE = {"x-hop-resp"}


def hop_by_hop_h1(proxy, certs):
    with H1Conn(proxy.port, certs) as conn:
        seen = conn.request("GET", "/headers", HOP_BY_HOP_REQUEST).json()
        response = conn.request("GET", "/hop")
    assert fields(seen["headers"], "x-end-to-end") == ["kept"]
    assert response.status == 200 and response.body == b"hop\n"
    assert response.header("x-end-to-end") == "kept"
    return {n.lower() for n, _ in seen["headers"]}, seen, response


def test_hop_by_hop_removed_h1(proxy, certs):
    request_names, seen, response = hop_by_hop_h1(proxy, certs)
    assert not request_names & {"keep-alive", "proxy-connection"}, seen["headers"]
    assert "keep-alive" not in " ".join(fields(seen["headers"], "connection")).lower()
    names = {n.lower() for n, _ in response.headers}
    assert not names & {"keep-alive", "proxy-connection", "upgrade"}, response.headers
    assert "x-hop-resp" not in (response.header("connection") or "").lower()


@differs_from_standin("passes fields named by Connection, and TE: gzip, on")
def test_hop_by_hop_named_by_connection_removed_h1(proxy, certs):
    request_names, seen, response = hop_by_hop_h1(proxy, certs)
    assert not request_names & NAMED_HOP, seen["headers"]
    assert not {n.lower() for n, _ in response.headers} & NAMED_HOP_RESPONSE, response.headers


def test_hop_by_hop_removed_h2_response(proxy, certs):
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get("/hop", headers=[("te", "trailers")])
    names = {n for n, _ in stream.headers}
    assert stream.status == 200 and bytes(stream.data) == b"hop\n"
    assert not names & {"connection", "keep-alive", "proxy-connection",
                        "upgrade", "transfer-encoding"}, stream.headers
    assert stream.header("x-end-to-end") == "kept"
    if not proxy.standin:
        assert not names & NAMED_HOP_RESPONSE, stream.headers


def test_h2_request_body_without_length_goes_chunked(proxy, certs):
    """An h2 request whose HEADERS lack END_STREAM and that has no
    Content-Length reaches the backend chunked, with its body whole."""
    body = os.urandom(100_000)
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get("/headers", method="POST", body=body)
        assert stream.status == 200
        seen = stream.json()
        assert seen["body_len"] == len(body)
        te = fields(seen["headers"], "transfer-encoding")
        assert te == ["chunked"] or fields(seen["headers"], "content-length") == [str(len(body))]
        stream = conn.get("/echo", method="POST", body=body,
                          headers=[("content-length", str(len(body)))])
        assert bytes(stream.data) == body


@tlsterm_only
def test_h2_request_without_length_is_chunked_tlsterm(proxy, certs):
    with H2Conn(proxy.port, certs) as conn:
        seen = conn.get("/headers", method="POST", body=b"x" * 1000).json()
    assert fields(seen["headers"], "transfer-encoding") == ["chunked"]
    assert fields(seen["headers"], "content-length") == []


@tlsterm_only
def test_request_id_added_and_kept(proxy, certs):
    mark = proxy.mark()
    with H2Conn(proxy.port, certs) as conn:
        added = conn.get("/headers").json()
        kept = conn.get("/headers", headers=[("x-request-id", "abc-123")]).json()
    ids = fields(added["headers"], "x-request-id")
    assert len(ids) == 1 and ids[0], added["headers"]
    assert fields(kept["headers"], "x-request-id") == ["abc-123"]
    # GET only: the previous test's POST may be logged after the mark (its
    # exchange ends once its body is through, after the client's response).
    logged = proxy.requests(2, since=mark, method="GET")
    assert [e["request_id"] for e in logged] == [ids[0], "abc-123"]


# ---- message semantics --------------------------------------------------------------------


def test_head_204_304_have_no_body_h2(proxy, certs):
    with H2Conn(proxy.port, certs) as conn:
        head = conn.get("/bytes/1000", method="HEAD")
        assert (head.status, head.length, head.ended) == (200, 0, True)
        assert head.header("content-length") == "1000"
        for status in (204, 304):
            stream = conn.get(f"/status/{status}")
            assert (stream.status, stream.length, stream.ended) == (status, 0, True)
        assert conn.get("/").status == 200


def test_head_204_304_have_no_body_h1(proxy, certs):
    """On one keep-alive connection: a response without a body must not make
    the proxy wait for one (the next response would be lost)."""
    with H1Conn(proxy.port, certs) as conn:
        head = conn.request("HEAD", "/bytes/1000")
        assert head.status == 200 and head.header("content-length") == "1000"
        for status in (204, 304):
            response = conn.request("GET", f"/status/{status}")
            assert response.status == status
            assert response.header("transfer-encoding") is None
        response = conn.request("GET", "/")
        assert (response.status, response.body) == (200, HELLO_BODY)
        assert conn.pipe.io(0.3) == b""  # nothing more came


def test_informational_103_relayed(proxy, certs):
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get("/status/103")
    assert stream.status == 200 and bytes(stream.data) == b"status 200\n"
    assert [dict(i).get(":status") for i in stream.infos] == ["103"], stream.infos


def test_trailers_h1_chunked_become_h2_trailers(proxy, certs):
    with H2Conn(proxy.port, certs) as conn:
        stream = conn.get("/trailers", headers=[("te", "trailers")])
    assert stream.status == 200 and bytes(stream.data) == TRAILERS_BODY
    assert ("x-trailer-one", "1") in stream.trailers, stream.trailers
    assert ("x-trailer-two", "two") in stream.trailers, stream.trailers


def test_trailers_h1_to_h1(proxy, certs):
    with H1Conn(proxy.port, certs) as conn:
        response = conn.request("GET", "/trailers", [("TE", "trailers")])
        assert response.status == 200 and response.body == TRAILERS_BODY
        assert conn.request("GET", "/").status == 200


def expect_100_h2(conn, body):
    stream = conn.request("POST", "/continue", headers=[
        ("expect", "100-continue"), ("content-length", str(len(body)))], end_stream=False)
    # No body byte is sent before the 100 arrives.
    conn.wait(lambda: stream.infos or stream.done, 10, "the 100 Continue")
    assert [dict(i)[":status"] for i in stream.infos] == ["100"], (stream.status, stream.infos)
    conn.send(stream, body, end_stream=True)
    conn.wait(lambda: stream.done, what="the response")
    assert stream.status == 200
    assert stream.json() == {"continue_sent": True, "length": len(body),
                             "sha256": hashlib.sha256(body).hexdigest()}


def test_expect_100_continue_h2(tlsterm_factory, http_backend_factory, certs):
    """A fresh proxy: the request goes over a new backend connection."""
    proxy = HttpProxy(tlsterm_factory, http_backend_factory(), certs)
    with H2Conn(proxy.port, certs) as conn:
        expect_100_h2(conn, os.urandom(50_000))


@differs_from_standin("does not relay the 100 over a reused backend connection (1.52)")
def test_expect_100_continue_h2_reused_backend_connection(proxy, certs):
    with H2Conn(proxy.port, certs) as conn:
        first = conn.get("/headers").json()
        expect_100_h2(conn, os.urandom(50_000))
        assert conn.get("/headers").json()["conn"] == first["conn"]


def test_expect_100_continue_h1(proxy, certs):
    body = os.urandom(50_000)
    with H1Conn(proxy.port, certs) as conn:
        conn.send(b"POST /continue HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        import time
        interim = conn._until(b"\r\n\r\n", time.monotonic() + 10)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        conn.send(body)
        response = conn.read_response()
    assert response.status == 200
    assert response.json() == {"continue_sent": True, "length": len(body),
                               "sha256": hashlib.sha256(body).hexdigest()}


def test_pipelined_h1_requests_answered_in_order(proxy, certs):
    """Three requests in one write: the slow first one is answered first."""
    with H1Conn(proxy.port, certs) as conn:
        conn.send(b"GET /slow/0.5 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                  b"POST /sha HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /bytes/10?chunked=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                  b"GET /headers HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first = conn.read_response()
        second = conn.read_response()
        third = conn.read_response()
        fourth = conn.read_response()
    assert (first.status, first.body) == (200, b"slow\n")
    assert second.json() == {"sha256": hashlib.sha256(b"hello").hexdigest(), "length": 5}
    assert third.body == b"".join(pattern(10))
    assert fourth.json()["target"] == "/headers"


def test_h1_connection_close_from_backend(proxy, certs):
    """A backend's Connection: close ends that backend connection, which is
    not reused; with tlsterm the client connection stays usable (nghttpx
    passes the close on to the client)."""
    with H1Conn(proxy.port, certs) as conn:
        mark = proxy.backend.mark()
        response = conn.request("GET", "/close")
        assert (response.status, response.body) == (200, b"closing\n")
        event = proxy.backend.wait_for("request", since=mark, path="/close")
        proxy.backend.wait_for("close", since=mark, conn=event["conn"], how="server")
        if proxy.standin:
            return
        assert response.header("connection") != "close"
        response = conn.request("GET", "/headers")
        assert response.status == 200 and response.json()["conn"] != event["conn"]


# ---- WebSocket -----------------------------------------------------------------------------


def read_ws_frame(conn, deadline):
    b0, b1 = conn._exactly(2, deadline)
    length = b1 & 0x7F
    if length == 126:
        length = int.from_bytes(conn._exactly(2, deadline), "big")
    elif length == 127:
        length = int.from_bytes(conn._exactly(8, deadline), "big")
    assert not b1 & 0x80, "a server frame must not be masked"
    return b0 & 0x0F, conn._exactly(length, deadline)


def test_websocket_through_http_mode(proxy, certs):
    import time
    key = base64.b64encode(os.urandom(16)).decode()
    with H1Conn(proxy.port, certs) as conn:
        conn.send(("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Key: {key}\r\n\r\n").encode())
        response = conn.read_response()
        assert response.status == 101, (response.status, response.body)
        expected = base64.b64encode(hashlib.sha1(
            key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC11D65").digest()).decode()
        assert response.header("sec-websocket-accept") == expected
        assert response.header("upgrade").lower() == "websocket"
        deadline = time.monotonic() + 20
        big = os.urandom(200_000)
        conn.send(ws_frame(0x1, b"hello", mask=os.urandom(4)))
        conn.send(ws_frame(0x2, big, mask=os.urandom(4)))
        conn.send(ws_frame(0x9, b"ping", mask=os.urandom(4)))
        assert read_ws_frame(conn, deadline) == (0x1, b"hello")
        assert read_ws_frame(conn, deadline) == (0x2, big)
        assert read_ws_frame(conn, deadline) == (0xA, b"ping")
        conn.send(ws_frame(0x8, b"\x03\xe8", mask=os.urandom(4)))
        assert read_ws_frame(conn, deadline) == (0x8, b"\x03\xe8")


@tlsterm_only
def test_h2_offers_no_extended_connect(proxy, certs):
    """RFC 8441 is not offered: SETTINGS_ENABLE_CONNECT_PROTOCOL (8) is
    absent or 0."""
    with H2Conn(proxy.port, certs) as conn:
        conn.get("/")
        assert conn.remote_settings.get(8, 0) == 0


# ---- the pool and the access log -------------------------------------------------------------


def test_pool_reuse_across_client_connections(proxy, certs):
    """Two client connections one after the other: the second request goes
    over the backend connection the first one left in the pool."""
    with H1Conn(proxy.port, certs) as conn:
        first = conn.request("GET", "/headers").json()
    with H2Conn(proxy.port, certs) as conn:
        second = conn.get("/headers").json()
    assert second["conn"] == first["conn"], (first, second)
    assert second["n"] > first["n"]


@tlsterm_only
def test_pool_reuse_in_access_log(proxy, certs):
    mark = proxy.mark()
    with H2Conn(proxy.port, certs) as conn:
        conn.get("/headers")
        conn.get("/headers")
    logged = proxy.requests(2, since=mark)
    assert logged[1]["reused"] is True, logged
    assert logged[1]["server"] == proxy.backend.addr


@tlsterm_only
def test_access_log_fields(proxy, certs):
    mark = proxy.mark()
    body = b"b" * 1234
    with H2Conn(proxy.port, certs) as conn:
        client = f"127.0.0.1:{conn.pipe.local_port}"
        stream = conn.get("/echo?x=1", method="POST", body=body,
                          headers=[("content-length", str(len(body)))])
        assert bytes(stream.data) == body
    with H1Conn(proxy.port, certs) as conn:
        h1_client = f"127.0.0.1:{conn.pipe.local_port}"
        assert conn.request("GET", "/bytes/777").status == 200
    h2_line = proxy.requests(1, since=mark, client=client)[0]
    expected = {
        "listener": "web", "protocol": "h2", "stream": stream.id, "method": "POST",
        "authority": "localhost", "path": "/echo?x=1", "status": 200, "bytes_in": len(body),
        "bytes_out": len(body), "server": proxy.backend.addr, "reason": None,
        "tls_version": "TLSv1.3", "early_data": False,
    }
    assert {k: h2_line.get(k) for k in expected} == expected, h2_line
    assert isinstance(h2_line["worker"], int)
    assert isinstance(h2_line["duration_ms"], int) and h2_line["duration_ms"] >= 0
    assert isinstance(h2_line["reused"], bool)
    assert isinstance(h2_line["request_id"], str) and h2_line["request_id"]
    keys = ["listener", "client", "worker", "protocol", "stream", "method", "authority", "path",
            "status", "bytes_in", "bytes_out", "duration_ms", "server", "reused", "request_id",
            "reason", "tls_version", "early_data"]
    assert [k for k in h2_line if k in keys] == keys, list(h2_line)
    h1_line = proxy.requests(1, since=mark, client=h1_client)[0]
    assert h1_line["protocol"] == "http/1.1"
    assert (h1_line["method"], h1_line["path"], h1_line["status"]) == ("GET", "/bytes/777", 200)
    assert (h1_line["bytes_in"], h1_line["bytes_out"]) == (0, 777)
    assert h1_line["authority"] == "localhost"


@tlsterm_only
def test_access_log_path_escaped_and_bounded(proxy, certs):
    mark = proxy.mark()
    long_path = "/headers?" + "q" * 3000 + '"\\'
    with H2Conn(proxy.port, certs) as conn:
        client = f"127.0.0.1:{conn.pipe.local_port}"
        assert conn.get(long_path).status == 200
    line = proxy.requests(1, since=mark, client=client)[0]
    assert line["path"].startswith("/headers?qqq")
    assert len(line["path"].encode()) <= 1024 + 16, len(line["path"])


# Past the storage an exchange holds for the first 16 fields and 512 bytes of
# field text, on the request's side and on the response's: the heads move to
# the heap whole, in order.
MANY_FIELDS = 40


@pytest.mark.parametrize("h2", [True, False], ids=["h2", "http1.1"])
def test_many_fields_both_ways(proxy, certs, h2):
    sent = [(f"x-many-{i}", "w" * (i * 3)) for i in range(1, MANY_FIELDS + 1)]
    if h2:
        with H2Conn(proxy.port, certs) as conn:
            seen = conn.get("/headers", headers=sent).json()
            answer = conn.get(f"/fields/{MANY_FIELDS}")
    else:
        with H1Conn(proxy.port, certs) as conn:
            seen = conn.request("GET", "/headers", sent).json()
            answer = conn.request("GET", f"/fields/{MANY_FIELDS}")
    got = [(n.lower(), v) for n, v in seen["headers"] if n.lower().startswith("x-many-")]
    assert got == sent
    body = bytes(answer.data) if h2 else answer.body
    assert answer.status == 200 and body == b"fields\n"
    fields_back = [(n.lower(), v) for n, v in answer.headers if n.lower().startswith("x-field-")]
    assert fields_back == [(f"x-field-{i}", "v" * i) for i in range(1, MANY_FIELDS + 1)]
