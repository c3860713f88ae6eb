"""Hot reload: SIGHUP (or a changed certificate file with reload_on_change)
builds a new configuration generation beside the old one. New connections
use it; open connections keep theirs; a broken file keeps the old
configuration in force and logs FILE:LINE:COL. Old generations are freed
once their last connection ends."""

import os
import re
import shutil
import ssl


from tlsterm_harness import (
    reload_and_wait,
    StreamDigest,
    client_context,
    listener_config,
    tls_connect,
    tlsterm_config,
    to_yaml,
)

MIB = 1 << 20


def install_pair(certs, kind, workdir):
    """install_pair copies |certs|' |kind| pair to the fixed paths the config
    names, the way an operator replaces certificate files."""
    for src, dst in ((certs.pair(kind)["cert"], "site.pem"), (certs.pair(kind)["key"], "site.key")):
        tmp = workdir / (dst + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, workdir / dst)  # atomic, as certbot and friends do
    return {"cert": str(workdir / "site.pem"), "key": str(workdir / "site.key")}


def serves_ca(port, ca):
    """serves_ca returns True if a client trusting only |ca| completes a
    handshake with the listener on |port|."""
    try:
        with tls_connect(port, client_context(ca)):
            return True
    except ssl.SSLCertVerificationError:
        return False




def test_sighup_serves_new_certificate_while_old_transfer_continues(
    tlsterm_factory, backend_factory, certs, other_certs, tmp_path
):
    size = 3 * MIB
    slow = backend_factory("slow-source", size, MIB)
    pair = install_pair(certs, "ecdsa", tmp_path)
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", slow, certs, cert=[pair])]))
    port = proxy.port("edge")

    old = tls_connect(port, client_context(certs.ca))
    stream = StreamDigest(old).read(1)

    install_pair(other_certs, "ecdsa", tmp_path)
    done = reload_and_wait(proxy)
    assert done["trigger"] == "SIGHUP" and done["generation"] == 2, done
    # New connections get the new certificate; the old CA no longer verifies.
    assert serves_ca(port, other_certs.ca)
    assert not serves_ca(port, certs.ca)

    stream.read()
    old.close()
    assert stream.matches(size)
    # The transfer was the last user of generation 1, which is gone now.
    proxy.wait_for("conn_closed", predicate=lambda e: e["bytes_out"] == size)


def test_broken_certificate_keeps_old_configuration(tlsterm_factory, backend_factory, certs, tmp_path):
    echo = backend_factory("echo")
    pair = install_pair(certs, "ecdsa", tmp_path)
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", echo, certs, cert=[pair])]))
    port = proxy.port("edge")
    (tmp_path / "site.pem").write_text("this is not a certificate\n")
    failed = reload_and_wait(proxy, "reload_failed")
    # FILE:LINE:COL of the cert key in the configuration file.
    assert re.match(rf"{re.escape(str(proxy.config_path))}:\d+:\d+: .*site\.pem", failed["error"]), failed
    assert not proxy.find("reload_done")
    assert serves_ca(port, certs.ca)


def test_broken_yaml_keeps_old_configuration(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    proxy = tlsterm_factory(tlsterm_config([listener_config("edge", echo, certs)]))
    port = proxy.port("edge")
    good = proxy.config_path.read_text()
    proxy.config_path.write_text(good.replace("listeners:", "listeners:\n  - name: [unclosed\n", 1))
    failed = reload_and_wait(proxy, "reload_failed")
    assert failed["error"].startswith(f"{proxy.config_path}:"), failed
    assert serves_ca(port, certs.ca)
    # Fixed again, the next SIGHUP succeeds.
    proxy.config_path.write_text(good)
    assert reload_and_wait(proxy)["generation"] == 2


def test_changed_listeners_need_a_restart(tlsterm_factory, backend_factory, certs):
    echo = backend_factory("echo")
    config = tlsterm_config([listener_config("edge", echo, certs)])
    proxy = tlsterm_factory(config)
    config["listeners"].append(listener_config("other", echo, certs))
    proxy.config_path.write_text(to_yaml(config))
    failed = reload_and_wait(proxy, "reload_failed")
    assert "restart" in failed["error"], failed
    assert serves_ca(proxy.port("edge"), certs.ca)


def test_file_change_triggers_reload(tlsterm_factory, backend_factory, certs, other_certs, tmp_path):
    echo = backend_factory("echo")
    pair = install_pair(certs, "ecdsa", tmp_path)
    config = tlsterm_config([listener_config("edge", echo, certs, cert=[pair])])
    config["reload_on_change"] = True
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    mark = proxy.mark()
    install_pair(other_certs, "ecdsa", tmp_path)
    done = proxy.wait_for("reload_done", since=mark)
    assert done["trigger"] == "file_changed", done
    # Debounced: the key and the certificate were replaced one after the
    # other, and one reload took both.
    assert len(proxy.find("reload_done")) == 1
    assert serves_ca(port, other_certs.ca)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_hundred_reloads_free_old_generations(tlsterm_factory, backend_factory, certs, monkeypatch):
    # AddressSanitizer holds freed memory in quarantine, which would look
    # like growth; LeakSanitizer at exit still reports any real leak.
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:exitcode=86")
    monkeypatch.setenv("ASAN_OPTIONS", asan + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0")
    echo = backend_factory("echo")
    config = tlsterm_config([listener_config("edge", echo, certs)])
    config["workers"] = 2
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    rss = []
    for i in range(100):
        done = reload_and_wait(proxy)
        assert done["generation"] == i + 2
        # No connection holds an old generation. Besides the current one,
        # only those a worker has not switched away from yet may live: at
        # most one per worker. A leak would make this grow with every reload.
        assert done["generations_alive"] <= 3, done
        if i in (9, 99):
            rss.append(rss_kb(proxy.pid))
    # Between the 10th and the 100th reload memory stays flat (allocator
    # and sanitizer noise aside: well under what 90 leaked generations with
    # their certificates would take).
    assert rss[1] - rss[0] < 4096, rss
    assert serves_ca(port, certs.ca)
