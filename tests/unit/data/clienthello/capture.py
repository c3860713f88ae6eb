#!/usr/bin/python3
"""Capture real ClientHellos for clienthello_test.

Listens on a loopback port, runs one client per capture, reads the client's
first handshake message (reassembled across TLS records if needed) and writes
its body -- the bytes after the 4-byte handshake header, starting at
legacy_version, as BoringSSL's SSL_CLIENT_HELLO.client_hello holds them -- to
NAME.hex, 32 bytes a line. The connection is then closed, so every client
fails its handshake; only what it offered matters.

Run from this folder: /usr/bin/python3 capture.py [NAME...]
grease_client (a BoringSSL client, for GREASE) is built by the caller:
  cc -I/usr/include/android -o /tmp/grease_client grease_client.c \
     -L/usr/lib/x86_64-linux-gnu/android -Wl,-rpath,/usr/lib/x86_64-linux-gnu/android -lssl -lcrypto
"""
import os
import socket
import ssl
import subprocess
import sys
import threading

OPENSSL = ["openssl", "s_client", "-connect"]


def clients(port):
    addr = f"127.0.0.1:{port}"
    url = f"https://localhost:{port}/"
    return {
        # openssl s_client defaults: TLS 1.3 + 1.2, SNI given.
        "openssl_default": OPENSSL + [addr, "-servername", "example.com"],
        "openssl_tls12_nosni": OPENSSL + [addr, "-tls1_2", "-noservername"],
        "openssl_tls13_alpn": OPENSSL + [addr, "-tls1_3", "-servername", "tlsterm.test",
                                          "-alpn", "h2,http/1.1", "-groups", "X25519:P-256:P-384"],
        "openssl_tls12_cipher": OPENSSL + [addr, "-tls1_2", "-servername", "a.test",
                                            "-cipher", "ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA",
                                            "-sigalgs", "RSA+SHA256:ECDSA+SHA256"],
        # 'ALL' offers far more suites than the summary keeps: the caps test.
        "openssl_cipher_all": OPENSSL + [addr, "-tls1_2", "-servername", "many.test",
                                          "-cipher", "ALL:@SECLEVEL=0"],
        "curl_tls12": ["curl", "-sk", "--tlsv1.2", "--tls-max", "1.2", "--max-time", "5", url],
        "curl_default": ["curl", "-sk", "--max-time", "5", url],
        "python_ssl": [sys.executable, "-c", PYTHON_CLIENT, str(port)],
        "boringssl_grease": ["/tmp/grease_client", "127.0.0.1", str(port), "grease.test"],
    }


PYTHON_CLIENT = """
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as raw:
        ctx.wrap_socket(raw, server_hostname="py.test")
except (ssl.SSLError, OSError):
    pass
"""


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("client closed before sending a whole ClientHello")
        data += chunk
    return data


def read_client_hello(conn):
    """Returns the body of the first handshake message, across records."""
    handshake = b""
    while True:
        header = read_exact(conn, 5)
        if header[0] != 22:
            raise ValueError(f"record type {header[0]} is not handshake")
        handshake += read_exact(conn, int.from_bytes(header[3:5], "big"))
        if len(handshake) >= 4:
            length = int.from_bytes(handshake[1:4], "big")
            if handshake[0] != 1:
                raise ValueError("first handshake message is not a ClientHello")
            if len(handshake) >= 4 + length:
                return handshake[4:4 + length]


def capture(name, argv, listener):
    result = {}

    def serve():
        conn, _ = listener.accept()
        with conn:
            result["body"] = read_client_hello(conn)

    server = threading.Thread(target=serve)
    server.start()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=20)
    server.join(timeout=20)
    body = result["body"]
    with open(f"{name}.hex", "w") as out:
        for i in range(0, len(body), 32):
            out.write(body[i:i + 32].hex() + "\n")
    print(f"{name}: {len(body)} bytes")


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    table = clients(port)
    for name in sys.argv[1:] or table:
        capture(name, table[name], listener)


if __name__ == "__main__":
    main()
