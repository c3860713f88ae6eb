"""Run by test_datapath.py inside a network namespace of its own (unshare
--net): the client's network vanishes while tlsterm forwards its upload.

    netns_socket_error.py CERTS_DIR WORK_DIR

Loopback is brought up, and net.ipv4.tcp_retries2 (a per-namespace setting)
lowered so that a lost peer is given up on within about two seconds. The
backend is a unix socket, which taking loopback down does not touch. Once
the client's first bytes reached the backend, loopback goes down and the
backend sends an answer: tlsterm's record to the client is never
acknowledged, and the socket fails with ETIMEDOUT. The script prints one JSON
line: what the backend saw after the client's bytes ("reset" or "eof") and
tlsterm's conn_closed reason and detail.
"""

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tlsterm_harness import Certs, Tlsterm, client_context, listener_config, tls_connect, tlsterm_config


def main(certs_dir, work_dir):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    Path("/proc/sys/net/ipv4/tcp_retries2").write_text("1\n")
    d = Path(certs_dir)
    certs = Certs(d, d / "ca.pem", d / "ca.key", d / "ecdsa.pem", d / "ecdsa.key",
                  d / "rsa.pem", d / "rsa.key")
    work = Path(work_dir)
    path = work / "backend.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    proxy = Tlsterm(work, tlsterm_config([listener_config("edge", f"unix:{path}", certs)]))
    proxy.start()
    verdict = {}
    try:
        tls = tls_connect(proxy.port("edge"), client_context(certs.ca))
        backend, _ = server.accept()
        backend.settimeout(30)
        tls.sendall(b"first part of an upload")
        got = b""
        while len(got) < len(b"first part of an upload"):
            got += backend.recv(100)
        client = proxy.find("handshake_done")[0]["client"]
        subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
        backend.sendall(b"an answer the client will never acknowledge")
        closed = proxy.wait_for("conn_closed", client=client, timeout=30)
        verdict["reason"] = closed["reason"]
        verdict["detail"] = closed.get("detail")
        tls.close()
        backend.close()
    finally:
        proxy.finish()
        server.close()
    print(json.dumps(verdict))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
