"""`tlsterm healthcheck`: the probe a container engine runs inside the image.
Exit 0 on a 200 from /healthz (/readyz with --ready), 1 with one line saying
why otherwise (refused, the status, a silent peer's timeout), 2 for bad
arguments; the address comes from --admin or from the configuration's
admin.listen."""

import signal
import socket
import threading
import time

from tlsterm_harness import (
    admin_addr,
    client_context,
    free_port,
    listener_config,
    run_tlsterm,
    text,
    tls_connect,
    tlsterm_config,
    write_yaml,
)

USAGE = b"usage: tlsterm healthcheck"


def admin_config(backend, certs, listen="127.0.0.1:0"):
    config = tlsterm_config([listener_config("edge", backend, certs)])
    config["admin"] = {"listen": listen}
    return config


def probe(*args):
    """probe runs `tlsterm healthcheck ARGS` and returns (exit code, stderr
    text), asserting that it said nothing on stdout."""
    result = run_tlsterm("healthcheck", *args)
    assert result.stdout == b"", text(result)
    return result.returncode, result.stderr.decode(errors="replace")


def test_healthy_and_ready(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(admin_config(backend_factory("echo"), certs))
    host, port = admin_addr(proxy)
    assert probe("--admin", f"{host}:{port}") == (0, "")
    assert probe("--admin", f"{host}:{port}", "--ready") == (0, "")


def test_address_from_the_configuration(tlsterm_factory, backend_factory, certs, tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    config = admin_config(backend_factory("echo"), certs, listen)
    proxy = tlsterm_factory(config)
    admin_addr(proxy)
    path = write_yaml(tmp_path, config, name="probe.yaml")
    assert probe("-c", str(path), "--ready") == (0, "")
    assert probe("--config", str(path)) == (0, "")


def test_only_admin_listen_is_read_from_the_configuration(tlsterm_factory, backend_factory,
                                                          certs, tmp_path):
    """The probe reads admin.listen and nothing else: a backend name that
    does not resolve (a DNS outage) and a certificate file that is missing
    (being renewed) must not fail the liveness probe of a healthy proxy."""
    listen = f"127.0.0.1:{free_port()}"
    proxy = tlsterm_factory(admin_config(backend_factory("echo"), certs, listen))
    admin_addr(proxy)
    config = admin_config("backend.invalid:80", certs, listen)
    config["listeners"][0]["tls"]["certificates"][0]["cert"] = str(tmp_path / "missing.pem")
    path = write_yaml(tmp_path, config, name="probe.yaml")
    assert run_tlsterm("--check", "-c", str(path)).returncode == 1  # the daemon would refuse it
    start = time.monotonic()
    assert probe("-c", str(path), "--ready") == (0, "")
    assert probe("-c", str(path)) == (0, "")
    assert time.monotonic() - start < 2.0


def test_not_ready_while_draining(tlsterm_factory, backend_factory, certs):
    proxy = tlsterm_factory(admin_config(backend_factory("echo"), certs))
    host, port = admin_addr(proxy)
    # One connection left open keeps the drain going.
    tls = tls_connect(proxy.port("edge"), client_context(certs.ca))
    proxy.send_signal(signal.SIGTERM)
    proxy.wait_for("draining")
    status, err = probe("--admin", f"{host}:{port}", "--ready")
    assert status == 1
    assert err == f"tlsterm healthcheck: {host}:{port}: GET /readyz: 503 Service Unavailable (not ready)\n", err
    # Alive all the same: liveness must not restart a draining process.
    assert probe("--admin", f"{host}:{port}") == (0, "")
    tls.close()
    assert proxy.wait_exit() == 0


def test_admin_down_is_refused():
    port = free_port()
    status, err = probe("--admin", f"127.0.0.1:{port}")
    assert status == 1
    assert err == f"tlsterm healthcheck: 127.0.0.1:{port}: connect: Connection refused\n", err


def test_silent_peer_times_out():
    # Listening but never accepting: the kernel completes the connect and
    # the request is buffered, but no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        started = time.monotonic()
        status, err = probe("--admin", f"127.0.0.1:{port}", "--ready")
        elapsed = time.monotonic() - started
    assert status == 1
    assert err == (f"tlsterm healthcheck: 127.0.0.1:{port}: timed out after 2000 ms "
                   "waiting for the response to GET /readyz\n"), err
    assert 1.9 <= elapsed < 10, elapsed


def serve_once(answer):
    """serve_once listens on loopback, answers one connection with |answer|
    after reading its request, and returns (port, thread, requests seen)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen = []

    def run():
        with server:
            server.settimeout(10)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                seen.append(data)
                conn.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server.getsockname()[1], thread, seen


def test_request_and_untrusted_answer():
    port, thread, seen = serve_once(b"HTTP/1.1 500 Oops\x1b[31m\r\nContent-Length: 6\r\n\r\nboom\x07\n")
    status, err = probe("--admin", f"127.0.0.1:{port}")
    thread.join(10)
    assert seen == [b"GET /healthz HTTP/1.1\r\nHost: tlsterm\r\nUser-Agent: tlsterm-healthcheck\r\n"
                    b"Connection: close\r\n\r\n"]
    assert status == 1
    # The peer's control bytes are escaped, never passed to the terminal.
    assert err == f"tlsterm healthcheck: 127.0.0.1:{port}: GET /healthz: 500 Oops\\x1b[31m (boom\\x07)\n", err

    port, thread, _ = serve_once(b"SSH-2.0-OpenSSH_9.2\r\n")
    status, err = probe("--admin", f"127.0.0.1:{port}")
    thread.join(10)
    assert status == 1
    assert err == (f"tlsterm healthcheck: 127.0.0.1:{port}: GET /healthz: not an HTTP/1.x "
                   "response: \"SSH-2.0-OpenSSH_9.2\"\n"), err


def test_configuration_without_admin_or_unreadable(tmp_path, certs):
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs)])
    path = write_yaml(tmp_path, config, name="noadmin.yaml")
    status, err = probe("-c", str(path))
    assert status == 1
    assert err.startswith(f"tlsterm healthcheck: {path} has no admin endpoint"), err
    assert "--admin" in err

    for admin, message in (("{listen: [127.0.0.1:9100]}", "admin listen is a sequence; "
                            "expected a string"),
                           ("{listen: 'no-port'}", "invalid admin listen address 'no-port'")):
        bad = tmp_path / "bad-admin.yaml"
        bad.write_text(f"listeners: []\nadmin: {admin}\n")
        status, err = probe("-c", str(bad))
        assert status == 1
        assert err.startswith(f"tlsterm healthcheck: {bad}:2:17: {message}"), err

    missing = tmp_path / "missing.yaml"
    status, err = probe("-c", str(missing))
    assert status == 1
    assert err.splitlines() == [f"tlsterm healthcheck: {missing} cannot be loaded:",
                                f"{missing}:1:1: cannot read file: No such file or directory"], err


def test_bad_arguments_are_usage_errors():
    for args in (["--bogus"], ["extra"], ["--admin"], ["--admin", "not-an-address"],
                 ["--admin", "127.0.0.1:9100", "-c", "/etc/tlsterm/tlsterm.yaml"]):
        result = run_tlsterm("healthcheck", *args)
        assert result.returncode == 2, (args, text(result))
        assert USAGE in result.stderr, (args, text(result))
        assert result.stderr.startswith(b"tlsterm healthcheck: "), (args, text(result))
    help_result = run_tlsterm("healthcheck", "--help")
    assert help_result.returncode == 0 and help_result.stdout.startswith(USAGE), text(help_result)
