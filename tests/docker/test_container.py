"""The image in real containers (`make test-docker`): docker/Dockerfile built
and run as the sidecar of an application container, as docker/README.md
describes it.

The engine is docker when `docker info` answers, else podman as root with
runc and cgroupfs (crun refuses the hybrid cgroups of these machines), the
application's port published through slirp4netns, and tlsterm sharing the
application's network namespace (--network container:APP). Each test module
run uses its own container names; every container is removed at the end,
failure or not. The base image, the tlsterm image and the demo application
image are kept as the build cache."""

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = os.environ.get("TLSTERM_IMAGE", "localhost/tlsterm:test")
APP_IMAGE = "localhost/tlsterm-demo-app:test"
DEADLINE = 60  # seconds for a container to come up or a change to show
BIG_SIZE = 32 << 20  # a response larger than every buffer on its way


def _docker_works():
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


if _docker_works():
    ENGINE = ["docker"]
    LIMITS = []
    BUILD_FLAGS = []
    READ_ONLY = ["--read-only"]

    def app_network(port):
        return ["-p", f"127.0.0.1:{port}:8443"]
else:
    ENGINE = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    # The default limits fail with "setrlimit: operation not permitted".
    LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"]
    # --format docker keeps the image's HEALTHCHECK (OCI images have none).
    BUILD_FLAGS = ["--format", "docker"]
    # As docker's --read-only: no tmpfs on /tmp and /run either.
    READ_ONLY = ["--read-only", "--read-only-tmpfs=false"]

    def app_network(port):
        return ["--network", "slirp4netns:port_handler=slirp4netns",
                "-p", f"127.0.0.1:{port}:8443"]


def engine(*args, timeout=120, check=True, input=None):
    """engine runs the container engine with |args| and returns the
    CompletedProcess (text), failing the test on a non-zero exit when
    |check|."""
    result = subprocess.run([*ENGINE, *args], capture_output=True, text=True, timeout=timeout,
                            input=input)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(ENGINE + list(args))}: exit {result.returncode}\n"
                    f"{result.stdout}\n{result.stderr}")
    return result


def wait_until(predicate, what, timeout=DEADLINE):
    """wait_until polls |predicate| until it returns something true, and
    returns that, or fails the test after |timeout| seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(dockerfile, tag):
    engine("build", "--network", "host", *LIMITS, *BUILD_FLAGS, "-f", dockerfile, "-t", tag,
           REPO, timeout=1500)


def log_events(name):
    """log_events returns the JSON log lines of container |name| as dicts
    (its stderr; other lines are skipped)."""
    result = engine("logs", name, check=False)
    events = []
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def has_event(name, event, **fields):
    return [e for e in log_events(name)
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]


def served_fingerprint(port):
    """served_fingerprint returns the SHA-256 of the certificate served on
    |port| (no verification: the test compares it with the files)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(pem_path):
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def curl(port, ca, version_flag):
    """curl fetches / through the published port and returns (status,
    http_version, body)."""
    result = subprocess.run(
        ["curl", "-sS", version_flag, "--cacert", ca, "--resolve", f"localhost:{port}:127.0.0.1",
         "--max-time", "20", "-o", "-", "-w", "\n%{http_code} %{http_version}",
         f"https://localhost:{port}/"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    body, _, tail = result.stdout.rpartition("\n")
    status, version = tail.split()
    return int(status), version, body


def admin_status(app, path):
    """admin_status asks tlsterm's admin endpoint for |path| from inside the
    application container (python3 there; the admin address is loopback of
    the shared network namespace) and returns the HTTP status."""
    code = ("import urllib.request, urllib.error\n"
            "try:\n"
            f"    print(urllib.request.urlopen('http://127.0.0.1:9100{path}', timeout=5).status)\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code)\n")
    return int(engine("exec", app, "python3", "-c", code).stdout.strip())


def install_pair(certdir, pem, key):
    """install_pair puts |pem| and |key| in |certdir| as tls.crt and tls.key
    the way a rotation does: written beside, then renamed into place (the
    key first; tlsterm waits for a pair that matches). The container's user
    owns them, the key 0600."""
    for src, name, mode in ((key, "tls.key", 0o600), (pem, "tls.crt", 0o644)):
        tmp = os.path.join(certdir, f".{name}.new")
        shutil.copyfile(src, tmp)
        os.chown(tmp, 10001, 10001)
        os.chmod(tmp, mode)
        os.rename(tmp, os.path.join(certdir, name))


@pytest.fixture(scope="module")
def images():
    """images builds the tlsterm image and the demo application's (the
    engine's layer cache makes a rebuild without changes quick)."""
    build("docker/Dockerfile", IMAGE)
    build("docker/demo-app.Dockerfile", APP_IMAGE)
    size = int(engine("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    base = int(engine("image", "inspect", "--format", "{{.Size}}",
                      "docker.io/library/debian:bookworm-slim").stdout.strip())
    # The runtime stage adds the binary and its libraries (4.3 MB when
    # measured), not a toolchain.
    assert size - base < 20e6, (size, base)
    return size


@pytest.fixture(scope="module")
def pki():
    directory = tempfile.mkdtemp(prefix="tlsterm-docker-certs.")
    subprocess.run(["sh", os.path.join(REPO, "certs", "gen-dev-certs.sh"), directory], check=True,
                   capture_output=True, timeout=60)
    big = os.urandom(BIG_SIZE)
    with open(os.path.join(directory, "big.bin"), "wb") as f:
        f.write(big)
    os.chmod(os.path.join(directory, "big.bin"), 0o644)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def sidecar(images, pki):
    """sidecar starts the demo application with its port published and
    tlsterm (the image's own CMD and configuration) in its network
    namespace, root filesystem read-only, certificates mounted read-only.
    The application also serves a 32 MiB file, /big.bin. It yields a dict
    with the names, the port and the certificate folder, and removes both
    containers afterwards."""
    suffix = uuid.uuid4().hex[:8]
    app, proxy = f"tlsterm-test-app-{suffix}", f"tlsterm-test-sidecar-{suffix}"
    certdir = tempfile.mkdtemp(prefix="tlsterm-docker-mount.")
    os.chmod(certdir, 0o755)
    install_pair(certdir, os.path.join(pki, "ecdsa.pem"), os.path.join(pki, "ecdsa.key"))
    port = free_port()
    try:
        engine("run", "-d", "--name", app, *LIMITS, *app_network(port), *READ_ONLY,
               "-v", f"{os.path.join(pki, 'big.bin')}:/srv/demo/big.bin:ro", APP_IMAGE)
        engine("run", "-d", "--name", proxy, *LIMITS,
               f"--network=container:{app}", *READ_ONLY, "-v", f"{certdir}:/etc/tlsterm/certs:ro", IMAGE)
        wait_until(lambda: has_event(proxy, "listening"), "tlsterm's listening line")
        with open(os.path.join(pki, "big.bin"), "rb") as f:
            big_sha256 = hashlib.sha256(f.read()).hexdigest()
        yield {"app": app, "proxy": proxy, "port": port, "certdir": certdir, "pki": pki,
               "big_sha256": big_sha256}
    finally:
        for name in (proxy, app):
            engine("rm", "-f", "-t", "0", name, check=False, timeout=120)
        shutil.rmtree(certdir, ignore_errors=True)


def test_serves_http2_and_http1_through_the_published_port(sidecar):
    ca = os.path.join(sidecar["pki"], "ca.pem")
    for flag, expected in (("--http2", "2"), ("--http1.1", "1.1")):
        status, version, body = curl(sidecar["port"], ca, flag)
        assert (status, version) == (200, expected), body
        # The demo page, with what tlsterm told the application.
        assert "<title>" in body
        assert re.search(r"<td>X-Forwarded-Proto</td><td>https</td>", body), body
        assert re.search(r"<td>X-Forwarded-For</td><td>[0-9a-f.:]+</td>", body), body
    assert served_fingerprint(sidecar["port"]) == \
        file_fingerprint(os.path.join(sidecar["pki"], "ecdsa.pem"))


def test_runs_as_non_root_on_a_read_only_root(sidecar):
    proxy = sidecar["proxy"]
    status = engine("exec", proxy, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Name"].strip() == "tlsterm"
    assert fields["Uid"].split() == ["10001"] * 4, fields["Uid"]
    assert fields["Gid"].split() == ["10001"] * 4, fields["Gid"]
    assert int(fields["CapEff"], 16) == 0, fields["CapEff"]
    inspect = json.loads(engine("inspect", proxy).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    for path in ("/tmp/probe", "/etc/tlsterm/probe", "/etc/tlsterm/certs/probe"):
        result = engine("exec", proxy, "touch", path, check=False)
        assert result.returncode != 0, path
        assert "Read-only file system" in result.stderr, result.stderr
    # The runtime stage has no compiler or package sources left behind.
    assert engine("exec", proxy, "sh", "-c", "command -v cc gcc cmake make",
                  check=False).stdout == ""


def test_healthcheck_inside_the_container(sidecar):
    proxy = sidecar["proxy"]
    for args in ((), ("--ready",)):
        result = engine("exec", proxy, "tlsterm", "healthcheck", *args, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    if ENGINE[0] == "podman":
        # The image's HEALTHCHECK, run by the engine.
        result = engine("healthcheck", "run", proxy, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    result = engine("exec", proxy, "tlsterm", "healthcheck", "--admin", "127.0.0.1:1", check=False)
    assert result.returncode == 1
    assert result.stderr == "tlsterm healthcheck: 127.0.0.1:1: connect: Connection refused\n"


def test_rotated_certificate_is_served(sidecar):
    port, pki = sidecar["port"], sidecar["pki"]
    assert served_fingerprint(port) == file_fingerprint(os.path.join(pki, "ecdsa.pem"))
    install_pair(sidecar["certdir"], os.path.join(pki, "rsa.pem"), os.path.join(pki, "rsa.key"))
    wanted = file_fingerprint(os.path.join(pki, "rsa.pem"))
    wait_until(lambda: served_fingerprint(port) == wanted, "the rotated certificate")
    assert has_event(sidecar["proxy"], "reload_done")
    assert not has_event(sidecar["proxy"], "reload_failed")
    status, _, _ = curl(port, os.path.join(pki, "ca.pem"), "--http2")
    assert status == 200


def test_stop_drains_and_exits_zero(sidecar):
    """`stop` while a 32 MiB response is on its way: tlsterm stops being
    ready, lets the response finish byte for byte, logs stopped and exits
    0, before the engine's timeout."""
    proxy, port = sidecar["proxy"], sidecar["port"]
    ctx = ssl.create_default_context(cafile=os.path.join(sidecar["pki"], "ca.pem"))
    tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                          server_hostname="localhost")
    tls.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = tls.recv(65536)
        assert chunk, received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    assert length == BIG_SIZE
    # The client reads no more for now: the response is in flight, held by
    # flow control, when the stop begins.
    started = time.monotonic()
    stopper = subprocess.Popen([*ENGINE, "stop", "-t", "30", proxy], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: has_event(proxy, "draining"), "the draining line")
        # Draining: alive, not ready. The engine refuses exec into a
        # stopping container, so ask from the application's side of the
        # shared namespace, as a probe in the pod would.
        assert admin_status(sidecar["app"], "/readyz") == 503
        assert admin_status(sidecar["app"], "/healthz") == 200
        digest = hashlib.sha256(body)
        got = len(body)
        while got < length:
            chunk = tls.recv(1 << 20)
            assert chunk, f"connection closed after {got} of {length} bytes"
            digest.update(chunk)
            got += len(chunk)
        assert digest.hexdigest() == sidecar["big_sha256"]
        assert tls.recv(1) == b""  # Connection: close after it, as the drain asks
        _, err = stopper.communicate(timeout=60)
        assert stopper.returncode == 0, err
    finally:
        tls.close()
        if stopper.poll() is None:
            stopper.kill()
            stopper.wait()
    # Well before the engine's 30 s, so no SIGKILL was needed.
    assert time.monotonic() - started < 25
    state = json.loads(engine("inspect", proxy).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
    assert has_event(proxy, "stopped"), log_events(proxy)[-5:]
