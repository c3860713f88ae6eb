"""Run by test_backend_groups.py under `ip netns exec NS`, where iproute2
has bind-mounted /etc/netns/NS/hosts over /etc/hosts: the test controls
what the host name app.test resolves to.

    netns_resolve.py CERTS_DIR WORK_DIR HOSTS_FILE

Loopback is brought up; two backends, "first" on 127.0.0.2 and "second"
on 127.0.0.3, share one port. tlsterm's group names "app.test:PORT" with a
resolve_interval of 200ms. The hosts file (rewritten in place, keeping its
inode, so the bind mount sees it) first maps app.test to 127.0.0.2, then to
127.0.0.3, then to both (two servers), then not at all (the resolution
fails: the last addresses are kept, and a reload still loads). Last, a
reload names a new host, new.test: the reload does not wait for it, and it
has no server until the resolver thread resolves it. The script prints one
JSON line: the backends that answered in each phase, and whether the failed
resolution was logged.
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

from tlsterm_harness import (Backend, Certs, Tlsterm, client_context, listener_config,
                             tls_connect, tlsterm_config, free_port, to_yaml)

REQUEST = b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"


def ask(proxy, certs):
    with tls_connect(proxy.port("edge"), client_context(certs.ca)) as tls:
        tls.sendall(REQUEST)
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode().strip() if data.startswith(b"HTTP/1.1 200") else None


def rewrite(path, text):
    with open(path, "r+") as f:  # in place: the bind mount holds the inode
        f.seek(0)
        f.truncate()
        f.write(text)


def main(certs_dir, work_dir, hosts):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    d = Path(certs_dir)
    certs = Certs(d, d / "ca.pem", d / "ca.key", d / "ecdsa.pem", d / "ecdsa.key",
                  d / "rsa.pem", d / "rsa.key")
    port = free_port()
    backends = [Backend(name, "--host", host, "--port", str(port), script="group_backend.py")
                for name, host in (("first", "127.0.0.2"), ("second", "127.0.0.3"))]
    proxy = None
    verdict = {}
    try:
        for b in backends:
            b.start()
        listener = listener_config("edge", "127.0.0.1:1", certs)
        listener["backend"] = {"servers": [f"app.test:{port}"], "resolve_interval": "200ms"}
        proxy = Tlsterm(Path(work_dir), tlsterm_config([listener], level="info"))
        proxy.start()
        verdict["before"] = [ask(proxy, certs) for _ in range(3)]
        mark = proxy.mark()
        rewrite(hosts, "127.0.0.1 localhost\n127.0.0.3 app.test\n")
        proxy.wait_for("backend_resolved", since=mark)
        verdict["after"] = [ask(proxy, certs) for _ in range(3)]
        # Two addresses for the name: two servers (resolve: all).
        mark = proxy.mark()
        rewrite(hosts, "127.0.0.1 localhost\n127.0.0.2 app.test\n127.0.0.3 app.test\n")
        verdict["both_servers"] = proxy.wait_for("backend_resolved", since=mark)["servers"]
        verdict["both"] = sorted(ask(proxy, certs) for _ in range(4))
        mark = proxy.mark()
        rewrite(hosts, "127.0.0.1 localhost\n")
        failed = proxy.wait_for("backend_resolve_failed", since=mark)
        verdict["resolve_failed"] = failed["host"] == "app.test"
        verdict["kept"] = sorted(ask(proxy, certs) for _ in range(4))
        # A reload does not ask the name server for a name it knows: it
        # loads although app.test no longer resolves, and keeps its address.
        mark = proxy.mark()
        proxy.send_signal(signal.SIGHUP)
        verdict["reloaded"] = proxy.wait_for("reload_done", since=mark)["generation"] == 2
        verdict["after_reload"] = sorted(ask(proxy, certs) for _ in range(4))
        # A reload that names a new host: the main loop does not resolve it
        # (the reload is done whatever the name server does); the resolver
        # thread does right after. First a name that does not resolve: no
        # server until it does, the client refused at once.
        listener["backend"] = {"servers": [f"new.test:{port}"], "resolve_interval": "200ms"}
        proxy.config_path.write_text(to_yaml(tlsterm_config([listener], level="info")))
        mark = proxy.mark()
        proxy.send_signal(signal.SIGHUP)
        verdict["new_reloaded"] = proxy.wait_for("reload_done", since=mark)["generation"] == 3
        failed = proxy.wait_for("backend_resolve_failed", since=mark, host="new.test")
        verdict["new_kept"] = failed["kept"]
        verdict["new_unresolved"] = ask(proxy, certs)
        # Then the name appears: the resolver publishes it.
        mark = proxy.mark()
        rewrite(hosts, "127.0.0.1 localhost\n127.0.0.3 new.test\n")
        verdict["new_servers"] = proxy.wait_for("backend_resolved", since=mark)["servers"]
        verdict["new_resolved"] = [ask(proxy, certs) for _ in range(2)]
    finally:
        # The backends go even when tlsterm's end fails the run: they hold
        # the test's output pipes, which it reads to their end.
        try:
            if proxy is not None:
                proxy.finish()
        finally:
            for b in backends:
                b.stop()
    print(json.dumps(verdict), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
