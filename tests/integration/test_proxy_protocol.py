"""The PROXY protocol, both ways.

Toward the backend (backend.proxy_protocol): a receiver written here parses
every header byte by byte (v1 line, v2 addresses, each TLV and SSL sub-TLV,
CRC32C) in tcp mode and in http mode, where backend connections belong to
one client connection; HAProxy 2.6 with `accept-proxy` is a real receiver
that logs the client address and the authority it was told.

From a load balancer (listeners[].accept_proxy): curl --haproxy-protocol
(v1), a v2 sender written here (IPv4, IPv6, LOCAL), untrusted sources,
malformed headers and a timeout, and HAProxy `send-proxy-v2` in front of
tlsterm.

Clients that must be told apart from tlsterm's own address connect from
other loopback addresses (127.0.0.2 and up): the PROXY header must carry
theirs, not 127.0.0.1."""

import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import warnings

import pytest

from http_harness import http_config, http_listener
from tlsterm_harness import (
    TIMEOUT,
    Pki,
    admin_addr,
    get,
    client_context,
    free_port,
    listener_config,
    run,
    samples,
    text,
    tlsterm_config,
    total,
    wait_until,
)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# ---- the PROXY protocol in Python: the test's own reading of the specification ----


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def header_length(buf):
    """header_length returns the length of the PROXY header at the start of
    |buf|, or None while more bytes are needed."""
    if buf.startswith(b"PROXY "):
        end = buf.find(b"\r\n")
        return None if end < 0 else end + 2
    if len(buf) >= 16:
        assert buf[:12] == V2_SIG, buf[:16]
        return 16 + struct.unpack("!H", buf[14:16])[0]
    assert V2_SIG.startswith(buf[:12]) or b"PROXY ".startswith(buf[:6]), buf
    return None


def parse_tlvs(data):
    """parse_tlvs returns the TLVs of |data| as a list of (type, value); each
    must fit exactly."""
    tlvs = []
    while data:
        assert len(data) >= 3, data
        kind, length = data[0], struct.unpack("!H", data[1:3])[0]
        assert len(data) >= 3 + length, (kind, length, data)
        tlvs.append((kind, data[3 : 3 + length]))
        data = data[3 + length :]
    return tlvs


def parse_header(raw):
    """parse_header reads a whole v1 or v2 header into a dict, checking
    every byte the specification fixes."""
    if raw.startswith(b"PROXY "):
        assert raw.endswith(b"\r\n") and len(raw) <= 107
        fields = raw[6:-2].decode().split(" ")
        if fields[0] == "UNKNOWN":
            return {"version": 1, "command": "UNKNOWN"}
        assert fields[0] in ("TCP4", "TCP6") and len(fields) == 5, fields
        return {"version": 1, "family": fields[0], "src": fields[1], "dst": fields[2],
                "sport": int(fields[3]), "dport": int(fields[4])}
    assert raw[:12] == V2_SIG
    ver_cmd, fam, length = raw[12], raw[13], struct.unpack("!H", raw[14:16])[0]
    assert ver_cmd >> 4 == 2 and len(raw) == 16 + length
    out = {"version": 2, "command": {0: "LOCAL", 1: "PROXY"}[ver_cmd & 0xF]}
    body = raw[16:]
    if fam == 0x11:
        src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
        out.update(family="TCP4", src=socket.inet_ntop(socket.AF_INET, src),
                   dst=socket.inet_ntop(socket.AF_INET, dst), sport=sport, dport=dport)
        body = body[12:]
    elif fam == 0x21:
        src, dst, sport, dport = struct.unpack("!16s16sHH", body[:36])
        out.update(family="TCP6", src=socket.inet_ntop(socket.AF_INET6, src),
                   dst=socket.inet_ntop(socket.AF_INET6, dst), sport=sport, dport=dport)
        body = body[36:]
    else:
        assert fam == 0x00, hex(fam)
    tlvs = parse_tlvs(body)
    out["tlv_types"] = [kind for kind, _ in tlvs]
    out["tlvs"] = dict(tlvs)
    assert len(out["tlvs"]) == len(tlvs), "a TLV type written twice"
    if 0x03 in out["tlvs"]:
        # CRC32C: over the whole header with the CRC's own value zeroed.
        crc = out["tlvs"][0x03]
        assert len(crc) == 4
        at = raw.rindex(b"\x03\x00\x04" + crc) + 3
        zeroed = raw[:at] + b"\0\0\0\0" + raw[at + 4 :]
        out["crc_ok"] = crc32c(zeroed) == struct.unpack("!I", crc)[0]
    if 0x20 in out["tlvs"]:
        ssl_value = out["tlvs"][0x20]
        client, verify = ssl_value[0], struct.unpack("!I", ssl_value[1:5])[0]
        subs = parse_tlvs(ssl_value[5:])
        out["ssl"] = {"client": client, "verify": verify,
                      "subs": {kind: value.decode() for kind, value in subs}}
    return out


def v2_header(command, src=None, dst=None, tlvs=b""):
    """v2_header builds a v2 header: |src| and |dst| are (ip, port) of one
    family, or None for UNSPEC."""
    if src is None:
        fam, addrs = 0x00, b""
    elif ":" in src[0]:
        fam = 0x21
        addrs = (socket.inet_pton(socket.AF_INET6, src[0]) + socket.inet_pton(socket.AF_INET6, dst[0])
                 + struct.pack("!HH", src[1], dst[1]))
    else:
        fam = 0x11
        addrs = (socket.inet_pton(socket.AF_INET, src[0]) + socket.inet_pton(socket.AF_INET, dst[0])
                 + struct.pack("!HH", src[1], dst[1]))
    cmd = {"LOCAL": 0x20, "PROXY": 0x21}[command]
    payload = addrs + tlvs
    return V2_SIG + bytes([cmd, fam]) + struct.pack("!H", len(payload)) + payload


def test_python_crc32c_check_value():
    """The test's own CRC-32C gives the standard check value."""
    assert crc32c(b"123456789") == 0xE3069283


# ---- a receiver ----------------------------------------------------------------------


class ProxyReceiver:
    """ProxyReceiver is a backend that requires a PROXY header at the start
    of every connection and records it: in "echo" mode it then echoes what
    follows; in "http" mode it answers HTTP/1.1 requests (keep-alive) with
    JSON naming its connection, the request's number on it and the
    X-Forwarded-For it got. conns[i] is {"raw", "header", "data", "requests",
    "closed"}."""

    def __init__(self, mode):
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.conns = []
        self.cond = threading.Condition()
        self.errors = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.cond:
                record = {"raw": None, "header": None, "data": b"", "requests": [],
                          "closed": False, "index": len(self.conns)}
                self.conns.append(record)
            threading.Thread(target=self._serve, args=(sock, record), daemon=True).start()

    def _serve(self, sock, record):
        sock.settimeout(TIMEOUT)
        buf = b""
        try:
            while (length := header_length(buf)) is None or len(buf) < length:
                chunk = sock.recv(4096)
                if not chunk:
                    raise AssertionError(f"EOF within the PROXY header: {buf!r}")
                buf += chunk
            raw, rest = buf[:length], buf[length:]
            header = parse_header(raw)
            with self.cond:
                record["raw"], record["header"] = raw, header
                self.cond.notify_all()
            if self.mode == "echo":
                self._echo(sock, record, rest)
            else:
                self._http(sock, record, rest)
        except Exception as e:  # noqa: BLE001 - reported by check()
            if not self.stopped:
                with self.cond:
                    self.errors.append(repr(e))
        finally:
            sock.close()
            with self.cond:
                record["closed"] = True
                self.cond.notify_all()

    def _echo(self, sock, record, data):
        while True:
            if data:
                with self.cond:
                    record["data"] += data
                sock.sendall(data)
            data = sock.recv(65536)
            if not data:
                return

    def _http(self, sock, record, buf):
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            fields = dict(line.split(": ", 1) for line in lines[1:])
            with self.cond:
                record["requests"].append(lines[0])
                n = len(record["requests"])
            body = json.dumps({"conn": record["index"], "n": n,
                               "xff": fields.get("X-Forwarded-For")}).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def wait(self, predicate, what, timeout=TIMEOUT):
        """wait returns once |predicate|(conns) is true, failing after
        |timeout| seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.conns):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver: timed out waiting for {what}: "
                                         f"{self.conns} {self.errors}")
                self.cond.wait(min(left, 0.5))
            return list(self.conns)

    def check(self):
        assert not self.errors, self.errors

    def stop(self):
        self.stopped = True
        self.listener.close()


@pytest.fixture
def receivers():
    made = []

    def make(mode):
        receiver = ProxyReceiver(mode)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.stop()
    for receiver in made:
        receiver.check()


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """A client CA and alice's certificate (mTLS)."""
    pki = Pki(tmp_path_factory.mktemp("pp-client-ca"), name="pp client CA")
    pki.alice = pki.issue("alice", cn="alice", client=True)
    return pki


def connect_from(source_ip, port, timeout=TIMEOUT):
    """connect_from opens a TCP connection to 127.0.0.1:|port| from
    |source_ip| (another loopback address)."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source_ip, 0))


def tls_from(source_ip, port, ctx, raw=None):
    sock = raw or connect_from(source_ip, port)
    return ctx.wrap_socket(sock, server_hostname="localhost")


def recv_exactly(tls, n):
    data = b""
    while len(data) < n:
        chunk = tls.recv(n - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


# ---- toward the backend: tcp mode ------------------------------------------------------


def test_tcp_v2_every_tlv_with_mtls(tlsterm_factory, receivers, certs, clients):
    """tcp mode, v2 with every TLV: the receiver checks each byte against what
    the client and tlsterm's log say of the same connection, and the header
    is not client data (bytes_in counts the client's bytes only)."""
    receiver = receivers("echo")
    listener = listener_config("pp", receiver.addr, certs,
                               tls={"alpn": ["http/1.1"],
                                    "client_auth": {"mode": "optional", "ca": str(clients.ca)}})
    listener["backend"].update(proxy_protocol="v2", proxy_protocol_unique_id=True,
                               proxy_protocol_crc32c=True)
    proxy = tlsterm_factory(tlsterm_config([listener]))
    port = proxy.port("pp")

    ctx = client_context(certs.ca)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(*clients.alice)
    tls = tls_from("127.0.0.2", port, ctx)
    client_ip, client_port = tls.getsockname()[:2]
    tls.sendall(b"ping")
    assert recv_exactly(tls, 4) == b"ping"
    cipher, version = tls.cipher()[0], tls.version()
    tls.close()

    conn = receiver.wait(lambda cs: cs and cs[0]["header"], "a header")[0]
    h = conn["header"]
    done = proxy.wait_for("handshake_done", client=f"{client_ip}:{client_port}")
    closed = proxy.wait_for("conn_closed", client=f"{client_ip}:{client_port}")
    assert h["version"] == 2 and h["command"] == "PROXY" and h["family"] == "TCP4"
    assert (h["src"], h["sport"]) == ("127.0.0.2", client_port)
    assert (h["dst"], h["dport"]) == ("127.0.0.1", port)
    tlvs = h["tlvs"]
    assert h["tlv_types"] == [0x01, 0x02, 0x05, 0x20, 0x03]
    assert tlvs[0x01] == b"http/1.1"
    assert tlvs[0x02] == b"localhost"
    # UNIQUE_ID is the conn_id of the connection's log lines.
    assert len(done["conn_id"]) == 16 and tlvs[0x05] == done["conn_id"].encode()
    assert closed["conn_id"] == done["conn_id"]
    assert h["crc_ok"] is True
    s = h["ssl"]
    assert s["client"] == 0x01 | 0x02 | 0x04  # SSL, CERT_CONN, CERT_SESS
    assert s["verify"] == 0
    assert s["subs"] == {
        0x21: version,  # "TLSv1.3"
        0x22: "alice",
        0x23: cipher,  # OpenSSL's name: "TLS_AES_256_GCM_SHA384" or the like
        0x24: "ecdsa-with-SHA256",  # the dev CA (P-256) signs with SHA-256
        0x25: "EC256",
        0x26: done["group"],
        0x27: "ecdsa_secp256r1_sha256",
    }
    assert version == "TLSv1.3" and done["version"] == "TLSv1.3"
    # The header went out before the client's bytes, and only they count.
    assert conn["data"] == b"ping"
    assert closed["bytes_in"] == 4 and closed["bytes_out"] == 4


def issue_raw_cn(pki, name, cn):
    """issue_raw_cn makes a client certificate signed by |pki|'s CA whose
    subject CN is |cn| as given, past what openssl's CLI allows (a NUL, more
    than 64 characters), with python3-cryptography; returns (cert, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = pki.dir / f"{name}.pem", pki.dir / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.mark.parametrize("cn, sent", [
    ("admin\0x", None),              # a NUL: not "admin"
    ("a" * 257, None),                # longer than 256 bytes: not cut to another name
    ("é" * 64, "é" * 64),             # 128 bytes of UTF-8, 64 characters: whole
], ids=["nul", "too_long", "utf8_64"])
def test_tcp_v2_client_cn_whole_or_absent(tlsterm_factory, receivers, certs, clients, cn, sent):
    """The CN sub-TLV carries the certificate's CN whole, or is left out:
    never cut at an embedded NUL or at a length, where it could name
    another client or split a UTF-8 character."""
    receiver = receivers("echo")
    listener = listener_config("pp", receiver.addr, certs,
                               tls={"client_auth": {"mode": "required", "ca": str(clients.ca)}})
    listener["backend"]["proxy_protocol"] = "v2"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    ctx = client_context(certs.ca)
    ctx.load_cert_chain(*issue_raw_cn(clients, f"cn-{len(cn)}-{cn[:5].encode().hex()}", cn))
    tls = tls_from("127.0.0.6", proxy.port("pp"), ctx)
    tls.sendall(b"x")
    assert recv_exactly(tls, 1) == b"x"
    tls.close()
    h = receiver.wait(lambda cs: cs and cs[0]["header"], "a header")[0]["header"]
    s = h["ssl"]
    assert s["client"] & 0x02 and s["verify"] == 0, s  # a certificate, verified
    assert s["subs"].get(0x22) == sent, s["subs"]


def test_tcp_v2_tls12_rsa_without_client_cert(tlsterm_factory, receivers, certs):
    """TLS 1.2 with the RSA certificate and no client certificate: no CN,
    verify non-zero, only the SSL bit; the signature scheme comes from the
    ServerKeyExchange."""
    receiver = receivers("echo")
    listener = listener_config("pp", receiver.addr, certs, cert="rsa", max_version="1.2")
    listener["backend"]["proxy_protocol"] = "v2"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    ctx = client_context(certs.ca)
    tls = tls_from("127.0.0.3", proxy.port("pp"), ctx)
    tls.sendall(b"x")
    assert recv_exactly(tls, 1) == b"x"
    cipher = tls.cipher()[0]
    tls.close()
    h = receiver.wait(lambda cs: cs and cs[0]["header"], "a header")[0]["header"]
    assert h["src"] == "127.0.0.3"
    assert h["tlv_types"] == [0x02, 0x20]  # no ALPN, no UNIQUE_ID, no CRC32C
    s = h["ssl"]
    assert s["client"] == 0x01 and s["verify"] != 0
    assert 0x22 not in s["subs"]
    assert s["subs"][0x21] == "TLSv1.2"
    assert s["subs"][0x23] == cipher == "ECDHE-RSA-AES128-GCM-SHA256"
    assert s["subs"][0x25] == "RSA2048"
    assert s["subs"][0x27].startswith("rsa_"), s["subs"]


def test_tcp_v1_exact_line(tlsterm_factory, receivers, certs):
    """v1: the exact text line, then the client's bytes."""
    receiver = receivers("echo")
    listener = listener_config("pp", receiver.addr, certs)
    listener["backend"]["proxy_protocol"] = "v1"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    port = proxy.port("pp")
    tls = tls_from("127.0.0.4", port, client_context(certs.ca))
    client_port = tls.getsockname()[1]
    tls.sendall(b"hello")
    assert recv_exactly(tls, 5) == b"hello"
    tls.close()
    conn = receiver.wait(lambda cs: cs and cs[0]["raw"], "a header")[0]
    assert conn["raw"] == f"PROXY TCP4 127.0.0.4 127.0.0.1 {client_port} {port}\r\n".encode()
    wait_until(lambda: receiver.conns[0]["closed"], what="the backend connection's end")
    assert receiver.conns[0]["data"] == b"hello"


# ---- toward the backend: http mode --------------------------------------------------------


def h1_get(tls, path):
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = tls.recv(65536)
        assert chunk, buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int([line.split(b": ")[1] for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += tls.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


def test_http_backend_connections_per_client(tlsterm_factory, receivers, certs):
    """http mode: two requests of one client connection share one backend
    connection carrying one header; another client connection never gets
    it, though it is idle; and a client connection's idle backend
    connection closes with it."""
    receiver = receivers("http")
    listener = http_listener("pp", receiver.addr, certs, tls={"alpn": ["http/1.1"]},
                             backend_opts={"proxy_protocol": "v2",
                                           "proxy_protocol_unique_id": True})
    proxy = tlsterm_factory(http_config([listener]))
    port = proxy.port("pp")
    ctx = client_context(certs.ca)
    ctx.set_alpn_protocols(["http/1.1"])

    a = tls_from("127.0.0.5", port, ctx)
    first, second = h1_get(a, "/one"), h1_get(a, "/two")
    assert first["conn"] == second["conn"] and (first["n"], second["n"]) == (1, 2)
    # While a's backend connection sits idle, b gets one of its own.
    b = tls_from("127.0.0.6", port, ctx)
    third = h1_get(b, "/three")
    assert third["conn"] != first["conn"] and third["n"] == 1
    conns = receiver.conns
    assert len(conns) == 2
    ha, hb = conns[first["conn"]]["header"], conns[third["conn"]]["header"]
    assert (ha["src"], hb["src"]) == ("127.0.0.5", "127.0.0.6")
    assert ha["sport"] == a.getsockname()[1] and hb["sport"] == b.getsockname()[1]
    assert first["xff"] == "127.0.0.5" and third["xff"] == "127.0.0.6"
    assert conns[first["conn"]]["requests"] == ["GET /one HTTP/1.1", "GET /two HTTP/1.1"]
    # The request lines carry the client connection's id, the UNIQUE_ID.
    requests = proxy.wait_count("request", 3)
    ids = {r["path"]: r["conn_id"] for r in requests}
    assert ids["/one"] == ids["/two"] == ha["tlvs"][0x05].decode()
    assert ids["/three"] == hb["tlvs"][0x05].decode() != ids["/one"]
    # a ends: its idle backend connection is closed, b's stays.
    a.close()
    receiver.wait(lambda cs: cs[first["conn"]]["closed"], "a's backend connection to close")
    assert not receiver.conns[third["conn"]]["closed"]
    assert h1_get(b, "/four")["conn"] == third["conn"]
    b.close()
    receiver.wait(lambda cs: cs[third["conn"]]["closed"], "b's backend connection to close")
    assert len(receiver.conns) == 2


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_http_failover_sends_the_header_once(tlsterm_factory, receivers, certs, version):
    """http mode, servers [dead, live]: a request whose connect to the dead
    server is refused goes on to the live one, whose connection starts with
    one header and then the request; the client connection's later
    requests, failing over again or not, reuse that backend connection with
    no header in between."""
    receiver = receivers("http")
    dead = socket.socket()  # bound, never listening: connects are refused
    dead.bind(("127.0.0.1", 0))
    dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"
    try:
        listener = http_listener("pp", [dead_addr, receiver.addr], certs,
                                 tls={"alpn": ["http/1.1"]},
                                 backend_opts={"proxy_protocol": version})
        proxy = tlsterm_factory(http_config([listener]))  # one worker: one cursor
        ctx = client_context(certs.ca)
        ctx.set_alpn_protocols(["http/1.1"])
        mark = proxy.mark()
        tls = tls_from("127.0.0.8", proxy.port("pp"), ctx)
        # Round robin from the dead server: /r0 and /r2 fail over.
        answers = [h1_get(tls, f"/r{i}") for i in range(4)]
        assert [a["n"] for a in answers] == [1, 2, 3, 4], answers
        assert {a["conn"] for a in answers} == {0}, answers
        failed = proxy.find("backend_connect_failed", since=mark, server=dead_addr)
        assert failed and failed[0]["error"] == "Connection refused", failed
        conns = receiver.wait(lambda cs: len(cs) == 1 and cs[0]["header"], "the header")
        assert len(conns) == 1, conns
        header = conns[0]["header"]
        assert header["src"] == "127.0.0.8" and header["sport"] == tls.getsockname()[1], header
        assert conns[0]["requests"] == [f"GET /r{i} HTTP/1.1" for i in range(4)], conns[0]
        tls.close()
        receiver.wait(lambda cs: cs[0]["closed"], "the backend connection to close")
        assert len(receiver.conns) == 1
    finally:
        dead.close()


def test_check_describes_proxy_settings(tmp_path, certs):
    """--check shows both directions' settings."""
    listener = http_listener("pp", "127.0.0.1:9", certs,
                             backend_opts={"proxy_protocol": "v2", "proxy_protocol_crc32c": True})
    listener["accept_proxy"] = {"from": ["10.0.0.0/8", "fd00::/8"], "timeout": "2s"}
    path = tmp_path / "t.yaml"
    from tlsterm_harness import run_tlsterm, to_yaml
    path.write_text(to_yaml(tlsterm_config([listener])))
    result = run_tlsterm("--check", "-c", path)
    out = text(result)
    assert result.returncode == 0, out
    assert ("backend.proxy_protocol: v2, crc32c (backend connections per client connection)"
            in out)
    assert "accept_proxy: from 10.0.0.0/8, fd00::/8; timeout 2s" in out


# ---- HAProxy as a receiver ------------------------------------------------------------------


def start_haproxy(workdir, config_text, port):
    """start_haproxy runs haproxy in the foreground on |config_text| (which
    logs raw lines to stdout) and returns (process, log lines list); it
    returns once |port| accepts connections."""
    path = workdir / "haproxy.cfg"
    path.write_text(config_text)
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []

    def read():
        for line in proc.stdout:
            lines.append(line.decode(errors="replace").rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()

    def listening():
        assert proc.poll() is None, "haproxy exited:\n" + "\n".join(lines)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, what="haproxy to listen")
    return proc, lines


def stop_process(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


HAPROXY_DEFAULTS = (
    "global\n"
    "  log stdout format raw local0\n"
    "defaults\n"
    "  log global\n"
    "  timeout connect 5s\n"
    "  timeout client 30s\n"
    "  timeout server 30s\n"
)

haproxy_missing = pytest.mark.skipif(shutil.which("haproxy") is None,
                                     reason="haproxy not installed (scripts/install-deps.sh test)")


@haproxy_missing
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_haproxy_accept_proxy_receives(tlsterm_factory, certs, tmp_path, version):
    """HAProxy 2.6 with accept-proxy behind tlsterm (tcp mode, plain HTTP
    inside TLS) logs the client's real address and, with v2, the SNI as
    the authority."""
    hap_port = free_port()
    proc, lines = start_haproxy(tmp_path, HAPROXY_DEFAULTS + (
        "frontend fe\n"
        "  mode http\n"
        f"  bind 127.0.0.1:{hap_port} accept-proxy\n"
        '  log-format "pp ci=%ci cp=%cp authority=%[fc_pp_authority] uid=%[fc_pp_unique_id]"\n'
        '  http-request return status 200 content-type text/plain string "via haproxy"\n'
    ), hap_port)
    try:
        listener = listener_config("pp", f"127.0.0.1:{hap_port}", certs)
        listener["backend"]["proxy_protocol"] = version
        if version == "v2":
            listener["backend"]["proxy_protocol_unique_id"] = True
        proxy = tlsterm_factory(tlsterm_config([listener]))
        port = proxy.port("pp")
        tls = tls_from("127.0.0.7", port, client_context(certs.ca))
        client_port = tls.getsockname()[1]
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
        tls.close()
        assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"via haproxy")
        line = wait_until(lambda: next((l for l in lines if l.startswith("pp ")), None),
                          what="haproxy's log line")
        done = proxy.wait_for("handshake_done", client=f"127.0.0.7:{client_port}")
        if version == "v2":
            assert line == (f"pp ci=127.0.0.7 cp={client_port} authority=localhost "
                            f"uid={done['conn_id']}")
        else:
            assert line == f"pp ci=127.0.0.7 cp={client_port} authority=- uid=-"
    finally:
        stop_process(proc)


# ---- from a load balancer ------------------------------------------------------------------


@pytest.fixture
def balanced(tlsterm_factory, backend_factory, certs):
    """An http-mode listener that takes PROXY headers from loopback (with
    a small timeout), one that trusts only 192.0.2.0/24, and the admin
    endpoint; the HTTP backend echoes request headers."""
    from http_harness import HttpBackend

    backend = HttpBackend().start()
    lb = http_listener("lb", backend, certs, tls={"alpn": ["http/1.1"]})
    lb["accept_proxy"] = {"from": ["127.0.0.0/8", "::1"], "timeout": "300ms"}
    strict = http_listener("strict", backend, certs)
    strict["accept_proxy"] = {"from": ["192.0.2.0/24"]}
    config = http_config([lb, strict])
    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy = tlsterm_factory(config)
    yield proxy, backend
    backend.stop()


def xff_seen(backend_json):
    return dict((k.lower(), v) for k, v in backend_json["headers"])["x-forwarded-for"]


def test_accept_proxy_curl_v1(balanced, certs):
    """curl --haproxy-protocol sends a v1 line; tlsterm takes the address
    in it for the log and X-Forwarded-For."""
    proxy, _ = balanced
    port = proxy.port("lb")
    result = run(["curl", "-sS", "--max-time", "20", "--haproxy-protocol", "--interface",
                  "127.0.0.8", "--cacert", certs.ca, "--resolve", f"localhost:{port}:127.0.0.1",
                  f"https://localhost:{port}/headers"], timeout=TIMEOUT)
    assert result.returncode == 0, text(result)
    body = json.loads(result.stdout)
    assert xff_seen(body) == "127.0.0.8"
    request = proxy.wait_for("request", path="/headers")
    assert request["client"].startswith("127.0.0.8:")


def h1_over(raw_sock, certs, path="/headers"):
    ctx = client_context(certs.ca)
    ctx.set_alpn_protocols(["http/1.1"])
    tls = ctx.wrap_socket(raw_sock, server_hostname="localhost")
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    response = b""
    while chunk := tls.recv(65536):
        response += chunk
    tls.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


@pytest.mark.parametrize("src", [("203.0.113.7", 4242), ("2001:db8::7", 4343)])
def test_accept_proxy_v2_sender(balanced, certs, src):
    """A v2 PROXY header from a Python sender, with a TLV to skip: its
    source address replaces the peer's in the handshake line, the request
    line and X-Forwarded-For; the TLS handshake right after it in the same
    segment is untouched."""
    proxy, _ = balanced
    port = proxy.port("lb")
    dst = ("198.51.100.1", 443) if ":" not in src[0] else ("2001:db8::1", 443)
    sock = connect_from("127.0.0.1", port)
    sock.sendall(v2_header("PROXY", src, dst, tlvs=b"\x04\x00\x03abc"))
    body = h1_over(sock, certs, f"/headers?src={src[1]}")
    expected = f"[{src[0]}]:{src[1]}" if ":" in src[0] else f"{src[0]}:{src[1]}"
    assert xff_seen(body) == src[0]
    proxy.wait_for("handshake_done", client=expected)
    assert proxy.wait_for("request", path=f"/headers?src={src[1]}")["client"] == expected


def test_accept_proxy_v2_local_keeps_the_peer(balanced, certs):
    """A LOCAL header (a balancer's health check) keeps the real peer."""
    proxy, _ = balanced
    sock = connect_from("127.0.0.9", proxy.port("lb"))
    peer_port = sock.getsockname()[1]
    sock.sendall(v2_header("LOCAL", ("203.0.113.9", 1), ("203.0.113.10", 2)))
    body = h1_over(sock, certs, "/headers?local")
    assert xff_seen(body) == "127.0.0.9"
    request = proxy.wait_for("request", path="/headers?local")
    assert request["client"] == f"127.0.0.9:{peer_port}"


def rejected_count(proxy, listener, reason):
    return total(samples(admin_addr(proxy)), "tlsterm_proxy_header_rejected_total",
                 listener=listener, reason=reason)


def expect_closed(sock):
    """expect_closed waits for tlsterm to close |sock| (EOF or reset)."""
    sock.settimeout(TIMEOUT)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    sock.close()


def test_accept_proxy_untrusted_source(balanced):
    """A peer outside accept_proxy.from is refused at once, with a
    proxy_header_rejected line and a count."""
    proxy, backend = balanced
    mark = proxy.mark()
    sock = connect_from("127.0.0.1", proxy.port("strict"))
    peer_port = sock.getsockname()[1]
    sock.sendall(v2_header("PROXY", ("203.0.113.7", 1), ("198.51.100.1", 443)))
    expect_closed(sock)
    line = proxy.wait_for("proxy_header_rejected", since=mark, listener="strict")
    assert line["reason"] == "untrusted_source"
    assert line["client"] == f"127.0.0.1:{peer_port}"
    assert line["level"] == "warn"
    closed = proxy.wait_for("conn_closed", since=mark, listener="strict")
    assert closed["reason"] == "proxy_header_rejected"
    assert rejected_count(proxy, "strict", "untrusted_source") == 1
    assert not backend.find("open")


def test_accept_proxy_malformed(balanced, certs):
    """A TLS ClientHello without a header, or a broken header, is refused
    as malformed, its first bytes escaped in the line."""
    proxy, _ = balanced
    port = proxy.port("lb")
    mark = proxy.mark()
    sock = connect_from("127.0.0.1", port)
    sock.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n\x16\x03\x01")
    expect_closed(sock)
    line = proxy.wait_for("proxy_header_rejected", since=mark, listener="lb")
    assert line["reason"] == "malformed"
    assert line["detail"] == "v1 port is not a number from 0 to 65535"
    # The first 32 bytes, what the line shows.
    assert line["first_bytes"] == "PROXY TCP4 1.2.3.4 5.6.7.8 99999"
    assert line["bytes_received"] == 39

    mark = proxy.mark()
    # A client that speaks TLS directly: no header is guessed.
    ctx = client_context(certs.ca)
    with pytest.raises((ssl.SSLError, OSError)):
        tls_from("127.0.0.1", port, ctx).recv(1)
    line = proxy.wait_for("proxy_header_rejected", since=mark, listener="lb")
    assert line["reason"] == "malformed" and line["detail"] == "no PROXY protocol signature"
    # A JSON line escapes control bytes (\u0016): decoded, they are the bytes.
    assert line["first_bytes"].startswith("\x16\x03\x01")
    assert rejected_count(proxy, "lb", "malformed") == 2


def test_accept_proxy_timeout(balanced):
    """A header that never completes is refused at accept_proxy.timeout
    (300ms here), not at the handshake timeout."""
    proxy, _ = balanced
    mark = proxy.mark()
    sock = connect_from("127.0.0.1", proxy.port("lb"))
    started = time.monotonic()
    sock.sendall(b"PROXY TCP4 10.1")
    expect_closed(sock)
    elapsed = time.monotonic() - started
    line = proxy.wait_for("proxy_header_rejected", since=mark, listener="lb")
    assert line["reason"] == "timeout"
    assert line["first_bytes"] == "PROXY TCP4 10.1"
    assert 0.25 <= elapsed < 5, elapsed
    assert rejected_count(proxy, "lb", "timeout") == 1


@haproxy_missing
def test_haproxy_send_proxy_v2_in_front(tlsterm_factory, certs, tmp_path):
    """HAProxy in tcp mode with send-proxy-v2 in front of tlsterm: tlsterm
    logs the client's own address, which only the header carries."""
    from http_harness import HttpBackend

    backend = HttpBackend().start()
    try:
        listener = http_listener("lb", backend, certs)
        listener["accept_proxy"] = {"from": ["127.0.0.1"]}
        proxy = tlsterm_factory(http_config([listener]))
        hap_port = free_port()
        proc, _ = start_haproxy(tmp_path, HAPROXY_DEFAULTS + (
            "listen front\n"
            "  mode tcp\n"
            f"  bind 127.0.0.1:{hap_port}\n"
            f"  server tlsterm 127.0.0.1:{proxy.port('lb')} send-proxy-v2\n"
        ), hap_port)
        try:
            sock = connect_from("127.0.0.10", hap_port)
            client_port = sock.getsockname()[1]
            body = h1_over(sock, certs, "/headers?via=haproxy")
            assert xff_seen(body) == "127.0.0.10"
            proxy.wait_for("handshake_done", client=f"127.0.0.10:{client_port}")
            request = proxy.wait_for("request", path="/headers?via=haproxy")
            assert request["client"] == f"127.0.0.10:{client_port}"
        finally:
            stop_process(proc)
    finally:
        backend.stop()


def test_accept_proxy_failures_name_the_real_client(balanced, certs):
    """After the header, a failed handshake is the real client's: the
    handshake_failed line (with its JA4) and the failure report's networks
    name the header's source, and plain HTTP still gets its 400."""
    proxy, _ = balanced
    port = proxy.port("lb")
    # Plain HTTP behind the balancer: the answer that names https://.
    sock = connect_from("127.0.0.1", port)
    sock.sendall(v2_header("PROXY", ("203.0.113.50", 5050), ("198.51.100.1", 443))
                 + b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
    sock.settimeout(TIMEOUT)
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    assert response.startswith(b"HTTP/1.1 400"), response
    assert b"https://localhost" in response
    failed = proxy.wait_for("handshake_failed", client="203.0.113.50:5050")
    assert failed["reason"] == "http_request_on_tls_port"

    # A TLS 1.1-only ClientHello behind the balancer: refused, with its JA4.
    sock = connect_from("127.0.0.1", port)
    sock.sendall(b"PROXY TCP6 2001:db8::50 2001:db8::1 6060 443\r\n")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(sock, server_hostname="localhost")
    sock.close()
    failed = proxy.wait_for("handshake_failed", client="[2001:db8::50]:6060")
    assert failed["reason"] == "protocol_version" and failed["ja4"].startswith("t11")

    def networks():
        status, body = get(admin_addr(proxy), "/report")
        assert status == 200
        found = {}
        for policy in json.loads(body)["policies"]:
            for detail in policy["failure-details"]:
                for entry in detail["top-client-networks"]:
                    found[entry["network"]] = found.get(entry["network"], 0) + entry["count"]
        return found

    found = wait_until(lambda: (n := networks()) and len(n) >= 2 and n, what="both in /report")
    assert found.get("203.0.113.0/24") == 1
    assert any(k.startswith("2001:db8:") for k in found), found
    assert not any(k.startswith("127.") for k in found), found


def test_http2_streams_use_the_clients_own_connections(tlsterm_factory, receivers, certs):
    """An HTTP/2 client's streams: one after the other they reuse the
    client's backend connection; at once they open more, each starting
    with the header of the same client connection (same UNIQUE_ID); none
    is given to another client."""
    from http_harness import H2Conn

    receiver = receivers("http")
    listener = http_listener("pp", receiver.addr, certs,
                             backend_opts={"proxy_protocol": "v2",
                                           "proxy_protocol_unique_id": True})
    proxy = tlsterm_factory(http_config([listener]))
    port = proxy.port("pp")
    with H2Conn(port, certs) as h2c:
        first = h2c.get("/a").json()
        second = h2c.get("/b").json()
        assert first["conn"] == second["conn"] and second["n"] == 2
        streams = [h2c.request("GET", f"/c{i}") for i in range(3)]
        h2c.wait(lambda: all(s.done for s in streams), what="three streams at once")
        used = {s.json()["conn"] for s in streams}
        assert first["conn"] in used
        ids = {receiver.conns[i]["header"]["tlvs"][0x05] for i in used | {first["conn"]}}
        assert len(ids) == 1, ids
        count = len(receiver.conns)
        with H2Conn(port, certs) as other:
            theirs = other.get("/d").json()
        assert theirs["conn"] == count  # a new connection, not one of the first client's
        assert receiver.conns[theirs["conn"]]["header"]["tlvs"][0x05] not in ids
    receiver.wait(lambda cs: all(c["closed"] for c in cs), "every backend connection to close")


def test_accept_proxy_source_reaches_the_backend_header(tlsterm_factory, receivers, certs):
    """Both ways at once: the balancer's client, and the address it
    reached, are the ones the backend's own PROXY header names."""
    receiver = receivers("echo")
    listener = listener_config("pp", receiver.addr, certs)
    listener["accept_proxy"] = {"from": ["127.0.0.0/8"]}
    listener["backend"]["proxy_protocol"] = "v1"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    port = proxy.port("pp")
    sock = connect_from("127.0.0.1", port)
    sock.sendall(v2_header("PROXY", ("198.51.100.77", 7777), ("192.0.2.1", 443)))
    tls = client_context(certs.ca).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"hi")
    assert recv_exactly(tls, 2) == b"hi"
    tls.close()
    conn = receiver.wait(lambda cs: cs and cs[0]["raw"], "a header")[0]
    # The destination is the one the balancer's client reached, as HAProxy
    # sends it, not tlsterm's listen address.
    assert conn["raw"] == b"PROXY TCP4 198.51.100.77 192.0.2.1 7777 443\r\n"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_accept_proxy_ipv6_client_behind_ipv4_balancer(tlsterm_factory, receivers, certs,
                                                       version):
    """An IPv6 client behind a balancer that reaches tlsterm over IPv4: the
    backend's header keeps the client's address and port and the
    destination the balancer's client reached (TCP6, as HAProxy does),
    not UNKNOWN or UNSPEC for the mixed families."""
    receiver = receivers("echo")
    listener = listener_config("pp", receiver.addr, certs)
    listener["accept_proxy"] = {"from": ["127.0.0.0/8"]}
    listener["backend"]["proxy_protocol"] = version
    proxy = tlsterm_factory(tlsterm_config([listener]))
    sock = connect_from("127.0.0.1", proxy.port("pp"))
    sock.sendall(v2_header("PROXY", ("2001:db8::77", 7777), ("2001:db8::1", 8443)))
    tls = client_context(certs.ca).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"hi")
    assert recv_exactly(tls, 2) == b"hi"
    tls.close()
    conn = receiver.wait(lambda cs: cs and cs[0]["raw"], "a header")[0]
    if version == "v1":
        assert conn["raw"] == b"PROXY TCP6 2001:db8::77 2001:db8::1 7777 8443\r\n"
    h = conn["header"]
    if version == "v2":
        assert h["command"] == "PROXY"
    assert h["family"] == "TCP6", h
    assert (h["src"], h["sport"]) == ("2001:db8::77", 7777)
    assert (h["dst"], h["dport"]) == ("2001:db8::1", 8443)


@pytest.mark.skipif(os.geteuid() != 0, reason="source: client needs CAP_NET_ADMIN")
def test_accept_proxy_client_family_without_server_is_logged(tlsterm_factory, certs):
    """backend.source: client behind a balancer: a header naming an IPv6
    client when every server is IPv4 ends the connection before the
    handshake with backend_family_unserved (and conn_closed's reason
    backend_unavailable), not a silent failure later; an IPv4 client
    passes that check."""
    listener = listener_config("pp", "127.0.0.1:9", certs)
    listener["accept_proxy"] = {"from": ["127.0.0.0/8"]}
    listener["backend"]["source"] = "client"
    proxy = tlsterm_factory(tlsterm_config([listener]))
    port = proxy.port("pp")
    sock = connect_from("127.0.0.1", port)
    sock.sendall(v2_header("PROXY", ("2001:db8::78", 7878), ("2001:db8::1", 443)))
    expect_closed(sock)
    unserved = proxy.wait_for("backend_family_unserved", client="[2001:db8::78]:7878")
    assert unserved["family"] == "IPv6" and "backend.source: client" in unserved["msg"]
    closed = proxy.wait_for("conn_closed", client="[2001:db8::78]:7878")
    assert closed["reason"] == "backend_unavailable"
    # An IPv4 client passes on to the handshake and the connect (which
    # fails here: nothing listens on port 9).
    sock = connect_from("127.0.0.1", port)
    sock.sendall(v2_header("PROXY", ("127.0.0.3", 7879), ("127.0.0.1", port)))
    try:
        client_context(certs.ca).wrap_socket(sock, server_hostname="localhost").close()
    except (ssl.SSLError, OSError):
        sock.close()
    proxy.wait_for("conn_closed", client="127.0.0.3:7879")
    assert not proxy.find("backend_family_unserved", client="127.0.0.3:7879")


def test_accept_proxy_lines_are_rate_limited(tlsterm_factory, certs):
    """proxy_header_rejected lines take the handshake_failures limits (a
    bucket of their own): a burst of 2 and 1/s, the rest counted in a
    summary line; the counter counts every refusal."""
    listener = listener_config("strict", "127.0.0.1:9", certs)
    listener["accept_proxy"] = {"from": ["192.0.2.0/24"]}
    config = tlsterm_config([listener])
    config["log"]["handshake_failures"] = {"rate": 1, "burst": 2, "summary_interval": "1s"}
    config["workers"] = 1  # the buckets are per worker
    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy = tlsterm_factory(config)
    port = proxy.port("strict")
    started = time.monotonic()
    for _ in range(10):
        expect_closed(connect_from("127.0.0.1", port))
    elapsed = time.monotonic() - started
    wait_until(lambda: rejected_count(proxy, "strict", "untrusted_source") == 10,
               what="ten refusals counted")
    summary = proxy.wait_for("proxy_header_rejected_suppressed")
    assert summary["reason"] == "proxy_header_rejected"

    def accounted():
        shown = len(proxy.find("proxy_header_rejected"))
        dropped = sum(e["count"] for e in proxy.find("proxy_header_rejected_suppressed"))
        return shown + dropped == 10 and shown

    shown = wait_until(accounted, what="every refusal shown or summed up")
    # The burst, and one token per second refilled meanwhile.
    assert 2 <= shown <= 2 + int(elapsed) + 1 < 10, (shown, elapsed)
