"""What an operator writes: values taken from the environment (${NAME},
${NAME:-default}, $$), "*:PORT" listening on every address, and the text log
format, whose values are readable and still safe from forged lines."""

import re
import select
import signal
import socket
import struct
import subprocess
import time

import pytest

from tlsterm_harness import (
    TIMEOUT,
    TLSTERM_BIN,
    client_context,
    client_hello,
    free_port,
    run_tlsterm,
    sanitizer_env,
    text,
    tls_connect,
    with_extension,
)


def config_text(certs, listen, backend, extra=""):
    """config_text returns a one-listener configuration as YAML text, so
    that ${...} references reach tlsterm exactly as written."""
    return f"""log: {{format: json, level: info}}
drain_timeout: ${{TT_DRAIN:-5s}}
listeners:
  - name: edge
    listen: {listen}
    tls:
      certificates:
        - cert: {certs.ecdsa_cert}
          key: {certs.ecdsa_key}
    backend: {{servers: [{backend}]}}
{extra}"""


def echo_once(port, certs, payload, host="127.0.0.1"):
    with tls_connect(port, client_context(certs.ca), host=host) as tls:
        tls.sendall(payload)
        return tls.recv(len(payload))


# ---- environment ------------------------------------------------------------


def test_environment_values_at_start(tlsterm_factory, backend_factory, certs, monkeypatch):
    """Listen address, backend and a defaulted duration come from the
    environment; the daemon serves with them."""
    echo = backend_factory("echo")
    monkeypatch.setenv("TT_LISTEN", "127.0.0.1:0")
    monkeypatch.setenv("TT_BACKEND", echo.addr)
    monkeypatch.delenv("TT_DRAIN", raising=False)
    proxy = tlsterm_factory(config_text(certs, '"${TT_LISTEN}"', '"${TT_BACKEND}"'))
    assert echo_once(proxy.port("edge"), certs, b"from env") == b"from env"


def test_check_shows_expanded_values(tmp_path, certs, monkeypatch):
    """--check prints the values after expansion, $$ included, never the
    references."""
    port = free_port()
    monkeypatch.setenv("TT_PORT", str(port))
    monkeypatch.setenv("TT_ID", "X-Trace")
    monkeypatch.delenv("TT_UNSET", raising=False)
    path = tmp_path / "env.yaml"
    path.write_text(
        config_text(
            certs,
            '"127.0.0.1:${TT_PORT}"',
            '"${TT_UNSET:-127.0.0.1:9}"',
            "    mode: http\n"
            "    http: {request_id: \"${TT_ID}\"}\n"
            "    routes:\n"
            "      - {host: \"a$$b.example\", backend: {servers: [\"127.0.0.1:10\"]}}\n",
        )
    )
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 0, text(result)
    out = result.stdout.decode()
    assert f"  listen: 127.0.0.1:{port}\n" in out, out
    assert "  backend.server: 127.0.0.1:9 weight 1\n" in out, out
    assert "  http.request_id: X-Trace\n" in out, out
    assert "  route 1: host a$b.example -> edge.route1\n" in out, out
    assert "${" not in out, out


def test_undefined_variable_is_an_error_at_its_reference(tmp_path, certs, monkeypatch):
    monkeypatch.delenv("TT_NOPE", raising=False)
    path = tmp_path / "env.yaml"
    path.write_text(config_text(certs, '"127.0.0.1:${TT_NOPE}"', '"127.0.0.1:9"'))
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    assert b": ok" not in result.stdout
    # listen: "127.0.0.1:${TT_NOPE}" is line 5; the ${ stands at column 24.
    assert result.stderr.decode().splitlines() == [
        f"{path}:5:24: environment variable 'TT_NOPE' is not set; set it, or give a default: "
        "${TT_NOPE:-default}"
    ], text(result)


def test_malformed_reference_refuses_to_start(tmp_path, certs):
    path = tmp_path / "env.yaml"
    path.write_text(config_text(certs, '"127.0.0.1:${1X}"', '"127.0.0.1:9"'))
    result = run_tlsterm("-c", path)
    assert result.returncode == 1, text(result)
    err = result.stderr.decode()
    assert f"{path}:5:24: malformed environment reference '${{1X}}'" in err, err
    assert '"listening"' not in err


# ---- every address ---------------------------------------------------------


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("written", ["*:{port}", "[*]:{port}", ":{port}"])
def test_star_listens_on_every_address(tlsterm_factory, backend_factory, certs, written):
    """"*:PORT" binds 0.0.0.0:PORT and [::]:PORT: clients reach it on
    127.0.0.1 and on ::1."""
    echo = backend_factory("echo")
    port = free_port()
    listen = '"' + written.format(port=port) + '"'
    proxy = tlsterm_factory(config_text(certs, listen, f'"{echo.addr}"'))
    bound = sorted(proxy.addrs("edge"))
    assert echo_once(port, certs, b"v4") == b"v4"
    if not have_ipv6_loopback():
        assert bound == [("0.0.0.0", port)], bound
        pytest.skip("this host has no IPv6 loopback (::1): only the IPv4 half was tested")
    assert bound == [("0.0.0.0", port), ("::", port)], bound
    assert echo_once(port, certs, b"v6", host="::1") == b"v6"


def test_bad_listen_address_suggests_no_unix(tmp_path, certs):
    path = tmp_path / "l.yaml"
    path.write_text(config_text(certs, '"localhost"', '"127.0.0.1:9"'))
    result = run_tlsterm("--check", "-c", path)
    assert result.returncode == 1, text(result)
    err = result.stderr.decode()
    assert re.search(
        re.escape(f"{path}:5:13: invalid listen address 'localhost': expected \"host:port\", "
                  "\"[v6]:port\" or \"*:port\" (every address)"), err), err
    assert "unix" not in err, err


# ---- text log format --------------------------------------------------------


def server_name(name):
    """server_name returns a server_name extension body holding |name|."""
    entry = b"\x00" + struct.pack(">H", len(name)) + name
    return struct.pack(">H", len(entry)) + entry


def read_line_until(stream, pattern, deadline):
    """read_line_until returns the first line of |stream| matching
    |pattern| (bytes regex), and the lines before it, failing at
    |deadline|."""
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return line, seen
    raise AssertionError(f"no line matching {pattern!r} in {seen!r}")


def test_text_log_quotes_values_and_stays_safe(tmp_path, backend_factory, certs):
    """log.format text writes "msg" with its spaces, quotes what needs it,
    and a client's SNI with a newline and quotes stays inside its field."""
    echo = backend_factory("echo")
    port = free_port()
    path = tmp_path / "text.yaml"
    path.write_text(config_text(certs, f'"127.0.0.1:{port}"', f'"{echo.addr}"')
                    .replace("format: json", "format: text"))
    proc = subprocess.Popen([TLSTERM_BIN, "-c", str(path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=sanitizer_env())
    try:
        deadline = time.monotonic() + TIMEOUT
        line, _ = read_line_until(proc.stderr, rb" info started ", deadline)
        # The first word is the timestamp; the rest is exact.
        assert re.fullmatch(rb"\S+ info started .*\n", line), line
        forged = b'evil host\n2026-12-02T00:00:00.000Z error forged x="y"'
        hello = with_extension(client_hello(certs.ca), 0, server_name(forged))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(hello)
            sock.recv(1)  # the server's first answer: the hello was read
        line, seen = read_line_until(proc.stderr, rb" handshake_failed ", deadline)
        assert b' sni="evil host\\n2026-12-02T00:00:00.000Z error forged x=\\"y\\"" ' in line, line
        assert not any(b"forged" in other for other in seen if other is not line), seen
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=TIMEOUT)[1]
        assert proc.returncode == 0, rest
        stopped = [l for l in rest.splitlines() if b" stopped " in l]
        assert stopped, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
