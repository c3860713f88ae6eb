"""Certificate rotation the way Kubernetes and cert-manager do it, seen by
reload_on_change: the kubelet's atomic writer swaps a "..data" symlink to a
new timestamped directory, and the files the configuration names are
symlinks through it. Every event in a watched directory starts a debounced
check of each file's fingerprint; reload_poll_interval polls the same
fingerprints for what inotify cannot see; a file touched without a change in
content reloads nothing."""

import os
import subprocess
import shutil
import ssl
import threading
import time

import pytest

from tlsterm_harness import (
    client_context,
    listener_config,
    tls_connect,
    tlsterm_config,
    wait_until,
)

HANDSHAKES_MAX = 5000  # the load loop's bound


class AtomicWriterVolume:
    """AtomicWriterVolume lays out a directory as the kubelet's atomic writer
    does for a secret volume: the data in "..<timestamp>", "..data" pointing
    at it, and each key a symlink through "..data"."""

    def __init__(self, directory, files):
        self.dir = directory
        self.dir.mkdir()
        self.stamp = 0
        self.current = self._write_payload(files)
        os.symlink(self.current, self.dir / "..data")
        for name in files:
            os.symlink(f"..data/{name}", self.dir / name)

    def _write_payload(self, files):
        self.stamp += 1
        name = f"..2026_12_01_10_00_0{self.stamp}.12345678{self.stamp}"
        payload = self.dir / name
        payload.mkdir()
        for key, source in files.items():
            shutil.copyfile(source, payload / key)
        return name

    def update(self, files):
        """update swaps in new content as the kubelet does: a new
        timestamped directory, a "..data_tmp" symlink to it renamed over
        "..data", then the old directory removed."""
        old = self.current
        self.current = self._write_payload(files)
        os.symlink(self.current, self.dir / "..data_tmp")
        os.rename(self.dir / "..data_tmp", self.dir / "..data")
        shutil.rmtree(self.dir / old)

    def path(self, name):
        return str(self.dir / name)


def pem_to_der(path):
    text = open(path).read()
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(text[:end] + "\n")


def serial_of(der):
    """serial_of returns the serial number of DER certificate |der| as hex
    (openssl x509 -serial)."""
    import subprocess

    out = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
        input=der, capture_output=True, check=True,
    ).stdout.decode()
    return out.strip().split("=", 1)[1]


class HandshakeLoad:
    """HandshakeLoad completes handshakes in a thread, one after another, until
    stopped (at most HANDSHAKES_MAX), recording each served certificate and
    every failure."""

    def __init__(self, port, cafile):
        self.port = port
        self.ctx = client_context(cafile)
        self.served = []
        self.failures = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for _ in range(HANDSHAKES_MAX):
            if self.stopping.is_set():
                return
            try:
                with tls_connect(self.port, self.ctx, timeout=10) as tls:
                    self.served.append(tls.getpeercert(binary_form=True))
            except (OSError, ssl.SSLError) as e:
                self.failures.append(repr(e))

    def __enter__(self):
        self.thread.start()
        return self

    def wait_served(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while len(self.served) < count and not self.failures and self.thread.is_alive():
            assert time.monotonic() < deadline, f"{len(self.served)} handshakes in {timeout}s"
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def both_cas(tmp_path, certs, other_certs):
    bundle = tmp_path / "both-ca.pem"
    bundle.write_text(certs.ca.read_text() + other_certs.ca.read_text())
    return bundle


def rotation_config(echo, certs, cert, key, **top):
    config = tlsterm_config([listener_config("edge", echo, certs, cert=[{"cert": cert, "key": key}])])
    config["reload_on_change"] = True
    config.update(top)
    return config


def test_kubernetes_secret_rotation_under_load(
    tlsterm_factory, backend_factory, certs, other_certs, tmp_path
):
    echo = backend_factory("echo")
    volume = AtomicWriterVolume(
        tmp_path / "secret", {"tls.crt": certs.ecdsa_cert, "tls.key": certs.ecdsa_key}
    )
    # No poll: the inotify path alone must see the swap.
    config = rotation_config(
        echo, certs, volume.path("tls.crt"), volume.path("tls.key"), reload_poll_interval="off"
    )
    proxy = tlsterm_factory(config)
    old_der, new_der = pem_to_der(certs.ecdsa_cert), pem_to_der(other_certs.ecdsa_cert)

    with HandshakeLoad(proxy.port("edge"), both_cas(tmp_path, certs, other_certs)) as load:
        load.wait_served(20)
        mark = proxy.mark()
        volume.update({"tls.crt": other_certs.ecdsa_cert, "tls.key": other_certs.ecdsa_key})
        done = proxy.wait_for("reload_done", since=mark)
        load.wait_served(len(load.served) + 40)

    assert not load.failures, load.failures[:5]
    assert done["trigger"] == "file_changed", done
    changed = proxy.find("files_changed", since=mark)
    assert changed and changed[0]["changed"] == 2, changed
    # One swap, one reload: the removal of the old directory that follows
    # the rename changes no file's content.
    assert len(proxy.find("reload_done")) == 1
    assert not proxy.find("reload_failed")
    assert load.served[0] == old_der
    # A handshake in flight at the swap, or accepted by a worker that had
    # not taken the new generation yet, may still get the old certificate;
    # those after it get the new one.
    assert all(der == new_der for der in load.served[-20:])
    assert serial_of(load.served[-1]) == serial_of(new_der) != serial_of(old_der)


def test_poll_sees_what_inotify_cannot(tlsterm_factory, backend_factory, certs, other_certs, tmp_path):
    """The named files are symlinks through a directory symlink kept in a
    directory nobody watches ("links"): swapping that symlink changes what
    the files resolve to without an event in the directories of the named
    files or of their targets, so only the poll can see it."""
    echo = backend_factory("echo")
    for name, pki in (("v1", certs), ("v2", other_certs)):
        (tmp_path / name).mkdir()
        shutil.copyfile(pki.ecdsa_cert, tmp_path / name / "tls.crt")
        shutil.copyfile(pki.ecdsa_key, tmp_path / name / "tls.key")
    (tmp_path / "links").mkdir()
    os.symlink("../v1", tmp_path / "links" / "current")
    (tmp_path / "named").mkdir()
    for name in ("tls.crt", "tls.key"):
        os.symlink(f"../links/current/{name}", tmp_path / "named" / name)
    config = rotation_config(
        echo, certs, str(tmp_path / "named" / "tls.crt"), str(tmp_path / "named" / "tls.key"),
        reload_poll_interval="200ms",
    )
    proxy = tlsterm_factory(config)
    port = proxy.port("edge")
    ctx = client_context(both_cas(tmp_path, certs, other_certs))

    mark = proxy.mark()
    os.symlink("../v2", tmp_path / "links" / "current.tmp")
    os.rename(tmp_path / "links" / "current.tmp", tmp_path / "links" / "current")
    done = proxy.wait_for("reload_done", since=mark)
    assert done["trigger"] == "file_poll", done
    assert not proxy.find("files_changed", since=mark, trigger="file_changed")
    with tls_connect(port, ctx) as tls:
        assert tls.getpeercert(binary_form=True) == pem_to_der(other_certs.ecdsa_cert)
    # Polls go on, and find nothing more to reload.
    proxy.wait_count("files_unchanged", 3, since=mark, trigger="file_poll")
    assert len(proxy.find("reload_done")) == 1


def test_touch_and_unrelated_files_reload_nothing(
    tlsterm_factory, backend_factory, certs, other_certs, tmp_path
):
    echo = backend_factory("echo")
    (tmp_path / "tls").mkdir()
    cert, key = tmp_path / "tls" / "site.pem", tmp_path / "tls" / "site.key"
    shutil.copyfile(certs.ecdsa_cert, cert)
    shutil.copyfile(certs.ecdsa_key, key)
    proxy = tlsterm_factory(
        rotation_config(echo, certs, str(cert), str(key), reload_poll_interval="off")
    )

    # A touch: new mtime, same content. Then a file of someone else's.
    mark = proxy.mark()
    later = time.time() + 5
    os.utime(cert, (later, later))
    proxy.wait_for("files_unchanged", since=mark, trigger="file_changed")
    mark = proxy.mark()
    (tmp_path / "tls" / "unrelated.txt").write_text("not ours\n")
    proxy.wait_for("files_unchanged", since=mark, trigger="file_changed")
    assert not proxy.find("files_changed")
    assert not proxy.find("reload_done")

    # The same content written again in place is no change either; a new
    # content is.
    mark = proxy.mark()
    cert.write_bytes(cert.read_bytes())
    proxy.wait_for("files_unchanged", since=mark, trigger="file_changed")
    assert not proxy.find("reload_done")
    mark = proxy.mark()
    shutil.copyfile(other_certs.ecdsa_key, key)
    shutil.copyfile(other_certs.ecdsa_cert, cert)
    done = proxy.wait_for("reload_done", since=mark)
    assert done["trigger"] == "file_changed", done
    with tls_connect(proxy.port("edge"), client_context(other_certs.ca)):
        pass


def replace_pair(directory, pki, kind):
    """replace_pair renames a new key and certificate over site.key and
    site.pem, as certbot does: each file changes in one step."""
    for name, source in (("site.key", getattr(pki, f"{kind}_key")),
                         ("site.pem", getattr(pki, f"{kind}_cert"))):
        shutil.copyfile(source, directory / f".{name}.new")
        os.rename(directory / f".{name}.new", directory / name)


def served_der(port, cafile):
    with tls_connect(port, client_context(cafile)) as tls:
        return tls.getpeercert(binary_form=True)


def test_change_during_reload_is_not_lost(
    tlsterm_factory, backend_factory, certs, other_certs, tmp_path
):
    """A pair replaced while a reload reads it: the fingerprints kept are
    those taken before the load, so the next check loads the newest pair.
    strace holds each open of the key 1.5 s, after it printed it: the
    second open of the key with O_NONBLOCK is the loader's (the first is the
    configuration's check of the file; fingerprints open without it), which
    has read the certificate already."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    echo = backend_factory("echo")
    directory = tmp_path / "tls"
    directory.mkdir()
    replace_pair(directory, certs, "ecdsa")
    key = directory / "site.key"
    proxy = tlsterm_factory(
        rotation_config(echo, certs, str(directory / "site.pem"), str(key),
                        reload_poll_interval="off")
    )
    cas = both_cas(tmp_path, certs, other_certs)
    trace = tmp_path / "strace.txt"
    tracer = subprocess.Popen(
        [strace, "-f", "-p", str(proxy.pid), "-P", str(key), "-e", "trace=openat",
         "-e", "inject=openat:delay_exit=1500000", "-o", str(trace)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )

    def loader_opens():
        text = trace.read_text() if trace.exists() else ""
        return sum("O_NONBLOCK" in line for line in text.splitlines())

    try:
        # strace says "attached" for each thread, the main one first.
        assert "attached" in tracer.stderr.readline()
        mark = proxy.mark()
        replace_pair(directory, other_certs, "ecdsa")
        wait_until(lambda: loader_opens() >= 2, timeout=30, what="the loader's open of the key")
        # The loader holds the new key open, 1.5 s before it reads it.
        replace_pair(directory, certs, "rsa")
        proxy.wait_count("reload_done", 2, since=mark, timeout=30)
    finally:
        tracer.terminate()
        tracer.wait(10)
    assert not proxy.find("reload_failed")
    assert served_der(proxy.port("edge"), cas) == pem_to_der(certs.rsa_cert)


def test_busy_directory_does_not_hold_the_check_off(
    tlsterm_factory, backend_factory, certs, other_certs, tmp_path
):
    """A file touched every 200 ms in the watched directory: each event
    pushes the check back, but never past 2 s after the first."""
    echo = backend_factory("echo")
    directory = tmp_path / "tls"
    directory.mkdir()
    replace_pair(directory, certs, "ecdsa")
    proxy = tlsterm_factory(
        rotation_config(echo, certs, str(directory / "site.pem"), str(directory / "site.key"),
                        reload_poll_interval="off")
    )
    noise = directory / "noise.log"
    noise.write_text("")
    mark = proxy.mark()
    start = time.monotonic()
    replace_pair(directory, other_certs, "ecdsa")
    done = None
    for _ in range(40):  # 8 s of noise at most
        with open(noise, "a") as out:
            out.write("tick\n")
        done = proxy.find("reload_done", since=mark)
        if done:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    assert done, "no reload while the directory stayed busy"
    assert done[0]["trigger"] == "file_changed", done
    assert elapsed < 3.5, elapsed
    assert served_der(proxy.port("edge"), other_certs.ca) == pem_to_der(other_certs.ecdsa_cert)


def test_rewrite_in_place_with_same_size_and_mtime(
    tlsterm_factory, backend_factory, certs, tmp_path
):
    """cp -p or rsync -t --inplace: new bytes of the same size written in
    the same inode, the mtime put back. Only the ctime says so."""
    echo = backend_factory("echo")
    directory = tmp_path / "tls"
    directory.mkdir()
    replace_pair(directory, certs, "ecdsa")
    key = directory / "site.key"
    proxy = tlsterm_factory(
        rotation_config(echo, certs, str(directory / "site.pem"), str(key),
                        reload_poll_interval="off")
    )
    before = os.stat(key)
    original = key.read_bytes()
    # Another PEM body of the same length: swap two base64 characters of
    # the body (the key no longer parses, which the reload reports).
    lines = original.split(b"\n")
    body = bytearray(lines[1])
    body[10], body[11] = body[11], body[10]
    if body[10] == body[11]:
        body[10:12] = b"AB" if bytes(body[10:12]) != b"AB" else b"BA"
    lines[1] = bytes(body)
    rewritten = b"\n".join(lines)
    assert len(rewritten) == len(original) and rewritten != original
    mark = proxy.mark()
    with open(key, "r+b") as out:
        out.write(rewritten)
    os.utime(key, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(key)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    changed = proxy.wait_for("files_changed", since=mark, trigger="file_changed")
    assert changed["file"] == str(key), changed
