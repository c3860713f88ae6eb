"""Session resumption with stateless tickets (TLS 1.2 and 1.3), ticket keys
shared by two instances through a key file, keys rotated out, tickets
turned off; and TLS 1.3 0-RTT early data, refused unless enabled."""

import base64
import os
import signal
import ssl
import subprocess

import pytest

from tlsterm_harness import (
    admin_addr,
    reload_and_wait,
    samples,
    total,
    run_tlsterm,
    write_yaml,
    client_context,
    listener_config,
    tls_connect,
    tlsterm_config,
    to_yaml,
)

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def fetch_session(port, ctx, session=None):
    """fetch_session does one echo round trip (which also lets a TLS 1.3
    NewSessionTicket arrive) and returns (session, reused)."""
    with tls_connect(port, ctx, session=session) as tls:
        tls.sendall(b"x")
        assert tls.recv(1) == b"x"
        return tls.session, tls.session_reused


def write_key_file(path, num_keys=1):
    keys = [base64.b64encode(os.urandom(80)).decode() for _ in range(num_keys)]
    path.write_text("# tlsterm session ticket keys: the first one encrypts\n" + "\n".join(keys) + "\n")
    return keys


@pytest.mark.parametrize("version", VERSIONS, ids=["tls12", "tls13"])
def test_resumption(tlsterm_factory, backend_factory, certs, version):
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    config["admin"] = {"listen": "127.0.0.1:0"}
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    ctx = client_context(certs.ca, version=version)
    session, reused = fetch_session(port, ctx)
    assert not reused
    _, reused = fetch_session(port, ctx, session)
    assert reused
    done = proxy.wait_count("handshake_done", 2)
    # A JSON bool in the log (Python's 1 == True, hence the type check), as
    # the metrics' label is "true" or "false".
    assert [e["resumed"] for e in done] == [False, True], done
    assert all(type(e["resumed"]) is bool for e in done), done
    values = samples(admin_addr(proxy))
    assert total(values, "tlsterm_handshakes_total", listener="edge", resumed="true") == 1
    assert total(values, "tlsterm_handshakes_total", listener="edge", resumed="false") == 1


def test_tickets_off(tlsterm_factory, backend_factory, certs):
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    config["session_tickets"] = False
    proxy = tlsterm_factory(config)
    ctx = client_context(certs.ca, version=ssl.TLSVersion.TLSv1_3)
    session, _ = fetch_session(proxy.port("edge"), ctx)
    _, reused = fetch_session(proxy.port("edge"), ctx, session)
    assert not reused


def test_shared_key_file_resumes_across_instances_until_rotated_out(
    tlsterm_factory, backend_factory, certs, tmp_path
):
    keys = tmp_path / "ticket.keys"
    write_key_file(keys, 2)
    echo = backend_factory("echo")
    config = tlsterm_config([listener_config("edge", echo, certs)])
    config["session_tickets"] = {"key_file": str(keys)}
    a = tlsterm_factory(config)
    b = tlsterm_factory(config)
    ctx = client_context(certs.ca, version=ssl.TLSVersion.TLSv1_3)
    session, _ = fetch_session(a.port("edge"), ctx)
    _, reused = fetch_session(b.port("edge"), ctx, session)
    assert reused, "a ticket from instance A must resume on instance B"

    # Rotate the encrypting key out of the file everywhere: the ticket from A
    # (under the old first key) no longer resumes.
    write_key_file(keys, 1)
    for proxy in (a, b):
        mark = proxy.mark()
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_for("reload_done", since=mark)
    _, reused = fetch_session(b.port("edge"), ctx, session)
    assert not reused


def test_bad_key_file_is_a_config_error(certs, tmp_path, backend_factory):
    keys = tmp_path / "ticket.keys"
    keys.write_text("not base64!\n")
    config = tlsterm_config([listener_config("edge", "127.0.0.1:9", certs)])
    config["session_tickets"] = {"key_file": str(keys)}
    path = write_yaml(tmp_path, config, "t.yaml")
    result = run_tlsterm("--check", "-c", str(path))
    assert result.returncode == 1
    stderr = result.stderr.decode() if isinstance(result.stderr, bytes) else result.stderr
    assert f"{path}:" in stderr and "line 1" in stderr, stderr


def test_generated_keys_rotate_and_expire(tlsterm_factory, backend_factory, certs):
    config = tlsterm_config([listener_config("edge", backend_factory("echo"), certs)])
    config["session_tickets"] = {"rotate": "1s", "lifetime": "2s"}
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    ctx = client_context(certs.ca, version=ssl.TLSVersion.TLSv1_2)
    session, _ = fetch_session(port, ctx)
    mark = proxy.mark()
    # One rotation later, the old key still decrypts.
    proxy.wait_count("ticket_keys_rotated", 1, since=mark)
    _, reused = fetch_session(port, ctx, session)
    assert reused
    # After the lifetime, the ticket is refused.
    proxy.wait_count("ticket_keys_rotated", 4, since=mark)
    _, reused = fetch_session(port, ctx, session)
    assert not reused


def s_client_early(port, certs, sess_file, early_file, out_session=False):
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
            "-CAfile", str(certs.ca), "-tls1_3"]
    if out_session:
        args += ["-sess_out", str(sess_file)]
    else:
        args += ["-sess_in", str(sess_file), "-early_data", str(early_file)]
    # Closing stdin a second later ends s_client, after the ticket (or the
    # echo of the early data) has arrived.
    # A line on stdin comes back from the echo backend: reading it makes
    # s_client process the NewSessionTicket that arrived before it.
    proc = subprocess.run(["sh", "-c", '(echo PING; sleep 1) | "$@"', "sh", *args],
                          capture_output=True, timeout=30)
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
def test_early_data(tlsterm_factory, backend_factory, certs, tmp_path, enabled):
    listener = listener_config("edge", backend_factory("echo"), certs)
    listener["tls"]["early_data"] = enabled
    proxy = tlsterm_factory(tlsterm_config([listener]))
    port = proxy.port("edge")
    sess = tmp_path / "sess.pem"
    early = tmp_path / "early.txt"
    early.write_bytes(b"EARLY-HELLO\n")
    out = s_client_early(port, certs, sess, early, out_session=True)
    assert sess.exists(), out
    out = s_client_early(port, certs, sess, early)
    done = proxy.wait_count("handshake_done", 2)
    assert done[1]["resumed"] is True, done
    if enabled:
        assert "Early data was accepted" in out, out
        assert done[1]["early_data"] == 1
        # The echo backend got the early bytes and sent them back.
        assert "EARLY-HELLO" in out
    else:
        # Its tickets do not allow 0-RTT, so the client does not even try.
        assert "Max Early Data: 0" in out, out
        assert "Early data was not sent" in out or "Early data was rejected" in out, out
        assert done[1]["early_data"] == 0


def test_long_comment_in_key_file_stays_a_comment(tlsterm_factory, backend_factory, certs, tmp_path):
    """A comment line is one line whatever its length: a tail that looks like
    a key (here after 255 bytes, where a fixed line buffer would cut) is not
    a key."""
    echo = backend_factory("echo")
    hidden, real = (base64.b64encode(os.urandom(80)).decode() for _ in range(2))
    comment = "#" + "-" * (255 - 1) + hidden
    assert len(comment) > 255 and comment[255:] == hidden
    keys = tmp_path / "ticket.keys"
    keys.write_text(f"{comment}\n{real}\n")
    only_hidden = tmp_path / "hidden.keys"
    only_hidden.write_text(hidden + "\n")

    config = tlsterm_config([listener_config("edge", echo, certs)])
    config["session_tickets"] = {"key_file": str(keys)}
    path = write_yaml(tmp_path, config, "t.yaml")

    # A ticket under the hidden key does not resume where the long comment is.
    proxy = tlsterm_factory(config)
    config["session_tickets"] = {"key_file": str(only_hidden)}
    other = tlsterm_factory(config)
    ctx = client_context(certs.ca, version=ssl.TLSVersion.TLSv1_2)
    session, _ = fetch_session(other.port("edge"), ctx)
    _, reused = fetch_session(proxy.port("edge"), ctx, session)
    assert not reused

    result = run_tlsterm("--check", "-c", str(path))
    assert result.returncode == 0, result
    assert "session tickets: 1 key from the key file" in result.stdout.decode(), result


@pytest.mark.parametrize("version", VERSIONS, ids=["tls12", "tls13"])
def test_lifetime_change_applies_at_the_reload(tlsterm_factory, backend_factory, certs, version):
    """The ticket lifetime hint clients get follows a reload at once, not one
    reload later."""
    listener = listener_config("edge", backend_factory("echo"), certs)
    config = tlsterm_config([listener])
    config["session_tickets"] = {"lifetime": "12h"}
    proxy = tlsterm_factory(config)
    ctx = client_context(certs.ca, version=version)
    session, _ = fetch_session(proxy.port("edge"), ctx)
    # TLS 1.3 tickets carry what is left of the session's lifetime, counted
    # in whole seconds since the session began: a second may have passed.
    assert 12 * 3600 - 1 <= session.ticket_lifetime_hint <= 12 * 3600

    config["session_tickets"] = {"lifetime": "2h"}
    proxy.config_path.write_text(to_yaml(config))
    reload_and_wait(proxy)
    session, _ = fetch_session(proxy.port("edge"), ctx)
    assert 2 * 3600 - 1 <= session.ticket_lifetime_hint <= 2 * 3600
