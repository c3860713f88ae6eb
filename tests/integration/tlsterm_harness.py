"""tlsterm_harness: everything the integration tests share.

- Certs / make_certs: the development PKI from certs/gen-dev-certs.sh.
- Backend: backend.py as a child process, with the port it prints.
- listener_config / tlsterm_config / to_yaml: configurations as dicts, written
  as YAML with absolute paths.
- Tlsterm: the daemon as a child process; a reader thread parses its JSON log
  lines, and wait_for() blocks (with a deadline) until an event appears.
- Clients: client_context / tls_connect (Python ssl), BioTlsClient (TLS over
  MemoryBIOs, for half-close), async helpers for many connections at once,
  and wrappers for curl and openssl s_client.

Every wait has a deadline (TIMEOUT by default): a hung daemon fails a test, it
never hangs the suite. The binary is an ASan/UBSan build, which is 2-3x
slower, so deadlines are generous.
"""

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from backend import pattern_sha256

HERE = Path(__file__).resolve().parent
REPO = Path(os.environ.get("TLSTERM_SOURCE_DIR") or HERE.parents[1])
TLSTERM_BIN = os.environ.get("TLSTERM_BIN") or str(REPO / "build/asan/tlsterm")
GEN_CERTS = REPO / "certs/gen-dev-certs.sh"

# The deadline for anything that should happen "soon"; tests pass shorter
# ones where the point is that something happens quickly.
TIMEOUT = 30.0

# The exit code ASAN_OPTIONS gives a sanitizer finding (set by
# tests/CMakeLists.txt; repeated here for runs of pytest by hand).
SANITIZER_EXIT = 86

HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


# ---- small utilities --------------------------------------------------------


def wait_until(predicate, timeout=TIMEOUT, what="condition", interval=0.02):
    """wait_until polls |predicate| until it returns a true value, which it
    returns, or fails the test after |timeout| seconds naming |what|."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run(cmd, input=None, timeout=TIMEOUT, env=None):
    """run runs |cmd| (a list) with bytes |input| on stdin and returns the
    CompletedProcess, stdout and stderr as bytes. A command still running
    after |timeout| seconds fails the test."""
    try:
        return subprocess.run(
            [str(c) for c in cmd],
            input=input if input is not None else b"",
            capture_output=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{cmd[0]} still running after {timeout}s: {cmd}") from e


def text(completed):
    """text returns the stdout and stderr of a CompletedProcess as one
    string, for assertion messages."""
    out = completed.stdout.decode(errors="replace")
    err = completed.stderr.decode(errors="replace")
    return f"exit {completed.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


def free_port(host="127.0.0.1"):
    """free_port returns a port that was free on |host| a moment ago: bound,
    then closed without connecting, so nothing is in TIME_WAIT on it. Use it
    for a port that must refuse connections, or for s_client -bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def addr_text(sockname):
    """addr_text formats a getsockname() result as tlsterm logs addresses:
    "127.0.0.1:5" or "[::1]:5"."""
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_addr(text_addr):
    """parse_addr splits "127.0.0.1:5" or "[::1]:5" into (host, port)."""
    host, port = text_addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


def recv_until_eof(sock, timeout=TIMEOUT):
    """recv_until_eof reads from |sock| until EOF and returns the bytes. A
    connection reset counts as EOF; what was read before it is returned."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def reset_on_close(sock):
    """reset_on_close sets SO_LINGER to zero on |sock|, so that closing it
    sends a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ---- certificates -----------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """Certs names the files of one development PKI (see gen-dev-certs.sh)."""

    dir: Path
    ca: Path
    ca_key: Path
    ecdsa_cert: Path
    ecdsa_key: Path
    rsa_cert: Path
    rsa_key: Path

    def pair(self, kind):
        """pair returns {cert, key} for "ecdsa" or "rsa", as the config's
        certificates entries want it."""
        if kind == "ecdsa":
            return {"cert": str(self.ecdsa_cert), "key": str(self.ecdsa_key)}
        if kind == "rsa":
            return {"cert": str(self.rsa_cert), "key": str(self.rsa_key)}
        raise ValueError(kind)


def make_certs(outdir):
    """make_certs runs certs/gen-dev-certs.sh into |outdir| and returns the
    Certs."""
    outdir = Path(outdir)
    result = run(["sh", GEN_CERTS, outdir], timeout=120)
    assert result.returncode == 0, text(result)
    return Certs(
        dir=outdir,
        ca=outdir / "ca.pem",
        ca_key=outdir / "ca.key",
        ecdsa_cert=outdir / "ecdsa.pem",
        ecdsa_key=outdir / "ecdsa.key",
        rsa_cert=outdir / "rsa.pem",
        rsa_key=outdir / "rsa.key",
    )


class Pki:
    """Pki is a throwaway certificate authority run with the openssl CLI
    (`openssl ca`), for what the development PKI cannot give: any names, key
    types and validity dates (expired, not yet valid, expiring soon),
    intermediates, client certificates, revocation with CRLs, and OCSP
    responses. Each Pki lives in its own folder; nothing is shared."""

    _CONF = """\
[ca]
default_ca = ca_default
[ca_default]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 7
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
organizationName = optional
"""

    def __init__(self, directory, name="tlsterm test CA", parent=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "issued").mkdir(exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text(f"{int.from_bytes(os.urandom(8), 'big') | 1 << 62:X}\n")
        (self.dir / "crlnumber").write_text("01\n")
        self.conf = self.dir / "ca.cnf"
        self.conf.write_text(self._CONF.format(dir=self.dir))
        self.ca = self.dir / "ca.pem"
        self.ca_key = self.dir / "ca.key"
        self._genkey(self.ca_key, "ec")
        if parent is None:
            self._check(run([
                "openssl", "req", "-new", "-x509", "-sha256", "-days", "3650",
                "-key", self.ca_key, "-subj", f"/CN={name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", self.ca,
            ]))
        else:
            # An intermediate: signed by |parent|, and its ca.pem is its own.
            cert, _ = parent.issue(f"{name}-as-issued", cn=name, key_path=self.ca_key, ca=True)
            self.ca.write_bytes(Path(cert).read_bytes())
        self.parent = parent

    @staticmethod
    def _check(result):
        assert result.returncode == 0, text(result)
        return result

    def _genkey(self, path, kind):
        args = {
            "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        }[kind]
        self._check(run(["openssl", "genpkey", "-quiet", *args, "-out", path]))

    def issue(self, name, *, cn="localhost", sans=("DNS:localhost", "IP:127.0.0.1"),
              key="ec", client=False, ca=False, start=None, end=None, days=90,
              key_path=None):
        """issue makes NAME.key and NAME.pem (the leaf alone) and returns
        (cert path, key path). |sans| may be empty (no SAN extension);
        |start| and |end| are "YYYYMMDDHHMMSSZ" strings and override
        |days|."""
        key_path = Path(key_path) if key_path else self.dir / f"{name}.key"
        cert_path = self.dir / f"{name}.pem"
        csr = self.dir / f"{name}.csr"
        ext = self.dir / f"{name}.ext"
        if not key_path.exists():
            self._genkey(key_path, key)
        self._check(run(["openssl", "req", "-new", "-key", key_path, "-subj", f"/CN={cn}",
                         "-out", csr]))
        lines = ["subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
        if ca:
            lines += ["basicConstraints=critical,CA:TRUE",
                      "keyUsage=critical,keyCertSign,cRLSign"]
        else:
            lines += ["basicConstraints=critical,CA:FALSE",
                      "keyUsage=critical,digitalSignature,keyEncipherment",
                      f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        ext.write_text("\n".join(lines) + "\n")
        dates = ["-days", str(days)]
        if start or end:
            dates = ["-startdate", start or "20200101000000Z", "-enddate", end or "20991231000000Z"]
        self._check(run(["openssl", "ca", "-batch", "-notext", "-config", self.conf,
                         "-in", csr, "-out", cert_path, "-extfile", ext, *dates]))
        return str(cert_path), str(key_path)

    def chain_file(self, name, *certs):
        """chain_file writes the PEM files |certs| one after the other into
        NAME and returns its path."""
        path = self.dir / name
        path.write_bytes(b"".join(Path(c).read_bytes() for c in certs))
        return str(path)

    def revoke(self, cert):
        self._check(run(["openssl", "ca", "-config", self.conf, "-revoke", cert]))

    def crl(self, name="crl.pem"):
        """crl writes the CA's current CRL (PEM) and returns its path."""
        path = self.dir / name
        self._check(run(["openssl", "ca", "-config", self.conf, "-gencrl", "-out", path]))
        return str(path)

    def ocsp_response(self, cert, name, days=7):
        """ocsp_response asks this CA, as its own OCSP responder, about
        |cert| and writes the DER response to NAME; it returns the path."""
        req = self.dir / f"{name}.req"
        out = self.dir / name
        self._check(run(["openssl", "ocsp", "-no_nonce", "-issuer", self.ca, "-cert", cert,
                         "-reqout", req]))
        self._check(run(["openssl", "ocsp", "-index", self.dir / "index.txt", "-rsigner",
                         self.ca, "-rkey", self.ca_key, "-CA", self.ca, "-reqin", req,
                         "-respout", out, "-ndays", str(days)]))
        return str(out)


def backdate_ocsp(response, out, next_update=b"20200102000000Z"):
    """backdate_ocsp copies the DER OCSP |response| to |out| with its
    nextUpdate replaced by |next_update| (same length), so it is stale.
    `openssl ocsp` cannot write a past nextUpdate; the signature no longer
    matches, which tlsterm does not check (clients do)."""
    der = Path(response).read_bytes()
    # nextUpdate: [0] EXPLICIT { GeneralizedTime (15 bytes) }
    marker = b"\xa0\x11\x18\x0f"
    at = der.index(marker) + len(marker)
    Path(out).write_bytes(der[:at] + next_update + der[at + 15:])
    return str(out)


# ---- the backend ------------------------------------------------------------


class Backend:
    """Backend is backend.py running in |mode| (see its docstring) as a child
    process. start() returns once it printed its port."""

    def __init__(self, mode, *args, script="backend.py"):
        modes = [] if mode is None else [mode]
        self.argv = [sys.executable, str(HERE / script), *modes, *map(str, args)]
        self.proc = None
        self.port = None

    def start(self, timeout=TIMEOUT):
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        line = _readline_with_deadline(self.proc.stdout, timeout)
        match = re.fullmatch(rb"PORT (\d+)\n", line or b"")
        assert match, f"{Path(self.argv[1]).stem} {self.argv[2:]} did not report its port: {line!r}"
        self.port = int(match.group(1))
        return self

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _readline_with_deadline(stream, timeout):
    result = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else None


# ---- configuration ----------------------------------------------------------


def listener_config(
    name,
    backend,
    certs,
    *,
    listen=("127.0.0.1:0",),
    cert="ecdsa",
    min_version="1.2",
    max_version="1.3",
    ciphers=None,
    groups=None,
    handshake="10s",
    connect="5s",
    idle="300s",
    max_connections=10000,
    tls=None,
):
    """listener_config returns one listeners entry as a dict. |backend| is a
    Backend, an "ip:port" string or a list of them; |cert| is "ecdsa",
    "rsa" or a list of pairs. A |min_version| or |max_version| of None
    leaves the key out (as a policy preset needs); |tls| adds keys to the
    tls mapping (policy, alpn, client_auth, ...)."""
    backends = backend if isinstance(backend, list) else [backend]
    servers = [b if isinstance(b, str) else b.addr for b in backends]
    tls_map = {"certificates": [certs.pair(cert)] if isinstance(cert, str) else cert}
    if min_version is not None:
        tls_map["min_version"] = min_version
    if max_version is not None:
        tls_map["max_version"] = max_version
    if ciphers is not None:
        tls_map["ciphers"] = list(ciphers)
    if groups is not None:
        tls_map["groups"] = list(groups)
    tls_map.update(tls or {})
    return {
        "name": name,
        "listen": list(listen),
        "tls": tls_map,
        "backend": {"servers": servers},
        "timeouts": {"handshake": handshake, "connect": connect, "idle": idle},
        "max_connections": max_connections,
    }


def tlsterm_config(listeners, drain_timeout="30s", level="debug"):
    """tlsterm_config returns a whole configuration as a dict."""
    return {
        "log": {"format": "json", "level": level},
        "drain_timeout": drain_timeout,
        "listeners": list(listeners),
    }


_PLAIN = re.compile(r"[A-Za-z0-9_/.][A-Za-z0-9_./:@+-]*")
_NUMBER = re.compile(r"[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?|0x[0-9a-fA-F]+|0o[0-7]+")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    s = str(value)
    if _PLAIN.fullmatch(s) and not _NUMBER.fullmatch(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s)  # a JSON string is a valid double-quoted YAML scalar


def _yaml_lines(mapping, indent, lines):
    pad = "  " * indent
    for key, value in mapping.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            _yaml_lines(value, indent + 1, lines)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            lines.append(f"{pad}{key}:")
            for item in value:
                item_lines = []
                _yaml_lines(item, indent + 2, item_lines)
                item_lines[0] = "  " * (indent + 1) + "- " + item_lines[0].lstrip()
                lines.extend(item_lines)
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [{', '.join(_yaml_scalar(v) for v in value)}]")
        else:
            lines.append(f"{pad}{key}: {_yaml_scalar(value)}")


def write_yaml(directory, config, name="tlsterm.yaml"):
    """write_yaml writes the configuration dict |config| as YAML to
    |directory|/|name| and returns the path."""
    path = Path(directory) / name
    path.write_text(to_yaml(config))
    return path


# TLSTERM_TEST_SECCOMP=1 runs the tests with the seccomp filter on: every
# whole configuration written here gets "security: {seccomp: true}" (at its
# end, so that no line of what a test wrote moves), unless it has a
# security key of its own. ctest's integration_seccomp entry sets it.
SECCOMP_TEST = os.environ.get("TLSTERM_TEST_SECCOMP") == "1"


def with_test_security(config):
    """with_test_security returns |config| (a whole configuration, dict or
    YAML text) with the seccomp filter on when SECCOMP_TEST says so."""
    if not SECCOMP_TEST:
        return config
    if isinstance(config, dict):
        if "listeners" not in config or "security" in config:
            return config
        return {**config, "security": {"seccomp": True}}
    if re.search(r"^listeners:", config, re.M) and not re.search(r"^security:", config, re.M):
        return config + ("" if config.endswith("\n") else "\n") + "security:\n  seccomp: true\n"
    return config


def to_yaml(config):
    """to_yaml writes a configuration dict as block-style YAML, the way an
    operator would (plain scalars where YAML allows them)."""
    lines = []
    _yaml_lines(with_test_security(config), 0, lines)
    return "\n".join(lines) + "\n"


# ---- the daemon -------------------------------------------------------------


def sanitizer_env():
    """sanitizer_env returns the environment for tlsterm: the test's, plus
    sanitizer options when the caller (ctest) did not set them."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", f"detect_leaks=1:abort_on_error=0:exitcode={SANITIZER_EXIT}")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def with_nofile(nofile, argv):
    """with_nofile returns |argv| run under prlimit with RLIMIT_NOFILE
    |nofile| (soft and hard), or |argv| itself when |nofile| is None.
    prlimit execs the command, so the pid stays the command's."""
    return argv if nofile is None else ["prlimit", f"--nofile={nofile}:{nofile}", *argv]


def run_tlsterm(*args, timeout=TIMEOUT, nofile=None):
    """run_tlsterm runs tlsterm with |args| to completion (--check,
    --version, a config that must be refused) and returns the
    CompletedProcess; |nofile| as for Tlsterm."""
    return run(with_nofile(nofile, [TLSTERM_BIN, *args]), timeout=timeout, env=sanitizer_env())


class LogReader:
    """LogReader reads a stream line by line on its own thread. Lines that
    parse as JSON objects become events; every line (JSON or not, such as a
    sanitizer report) is kept in raw for dumps."""

    def __init__(self, stream):
        self.events = []
        self.raw = []
        self.closed = False
        self.cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream):
        for line in iter(stream.readline, b""):
            decoded = line.decode("utf-8", errors="replace").rstrip("\n")
            try:
                event = json.loads(decoded)
            except ValueError:
                event = None
            with self.cond:
                self.raw.append(decoded)
                if isinstance(event, dict):
                    self.events.append(event)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def join(self, timeout):
        self._thread.join(timeout)


# The documented log events: their level and their keys in order. More keys
# may appear, anywhere after "event"; the documented ones keep this order.
LOG_SCHEMA = {
    "listening": ("info", ["listener", "addr"]),
    "started": ("info", []),
    "handshake_failed": ("warn", ["listener", "client", "sni", "reason", "detail", "duration_ms"]),
    "handshake_done": (
        "debug",
        ["listener", "client", "sni", "version", "cipher", "alpn", "duration_ms"],
    ),
    # tcp mode names the address "backend", http mode "server" (as its
    # access log does), with the stream for h2.
    "backend_connect_failed": ("warn", ["listener", "client", "error"]),
    "conn_closed": (
        "debug",
        ["listener", "client", "reason", "bytes_in", "bytes_out", "duration_ms"],
    ),
    "proxy_header_rejected": ("warn", ["listener", "client", "worker", "reason"]),
    "draining": ("info", ["connections"]),
    "stopped": ("info", []),
}
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_ADDR = re.compile(r"(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+")


def log_problems(raw_lines):
    """log_problems checks a JSON log against the documented format and
    returns a list of problems: lines that are not JSON objects, missing or
    misordered keys, wrong levels, malformed timestamps and addresses."""
    problems = []
    for line in raw_lines:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            problems.append(f"not a JSON object: {line!r}")
            continue
        keys = list(event)
        if keys[:3] != ["ts", "level", "event"]:
            problems.append(f"does not start with ts, level, event: {line}")
            continue
        if not _TS.fullmatch(str(event["ts"])):
            problems.append(f"bad ts: {line}")
        name = event["event"]
        if name not in LOG_SCHEMA:
            continue
        level, documented = LOG_SCHEMA[name]
        if event["level"] != level:
            problems.append(f"{name} should be {level}: {line}")
        present = [k for k in keys if k in documented]
        if present != documented:
            problems.append(f"{name} keys should be {documented} in order: {line}")
        for key in ("client", "addr"):
            if key in event and not _ADDR.fullmatch(str(event[key])):
                problems.append(f"bad {key}: {line}")
    return problems


_MISSING = object()


def _matches(event, name, fields, predicate):
    if name is not None and event.get("event") != name:
        return False
    if any(event.get(key, _MISSING) != value for key, value in fields.items()):
        return False
    return predicate is None or bool(predicate(event))


class Tlsterm:
    """Tlsterm runs the daemon on a configuration (a dict, or YAML text)
    written to |workdir|/|name|.yaml. |nofile|, when set, is its
    RLIMIT_NOFILE, soft and hard (tlsterm raises the soft one to the hard
    one). The fixture's teardown calls finish(), which requires exit code 0:
    a sanitizer finding (86) fails the test. |prefix| is argv put before
    tlsterm's, each word of which execs the next, so the pid stays tlsterm's
    (["ip", "netns", "exec", NS], setpriv ...). |env| adds variables to
    tlsterm's environment."""

    def __init__(self, workdir, config, name="tlsterm", nofile=None, prefix=(), env=None):
        self.name = name
        self.env = dict(env or {})
        self.nofile = nofile
        self.prefix = list(prefix)
        self.config_path = Path(workdir) / f"{name}.yaml"
        self.config_path.write_text(to_yaml(config) if isinstance(config, dict)
                                    else with_test_security(config))
        self.proc = None
        self.log = None
        self.stdout = None

    # -- process

    def start(self, timeout=TIMEOUT):
        """start spawns tlsterm and returns once it logged "started"
        (failing if it exits first)."""
        self.proc = subprocess.Popen(
            [*self.prefix, *with_nofile(self.nofile, [TLSTERM_BIN, "-c", str(self.config_path)])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**sanitizer_env(), **self.env},
        )
        self.log = LogReader(self.proc.stderr)
        self.stdout = LogReader(self.proc.stdout)
        self.wait_for("started", timeout=timeout)
        if SECCOMP_TEST and re.search(r"^  seccomp: true$", self.config_path.read_text(), re.M):
            # The filter is really on, for every thread.
            self.wait_for("seccomp", mode="kill")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=TIMEOUT):
        """wait_exit returns tlsterm's exit code, failing the test if it is
        still running after |timeout| seconds."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"tlsterm still running {timeout}s later\n{self.dump()}"
            ) from e
        # The log is complete only once the reader saw EOF.
        self.log.join(5)
        self.stdout.join(5)
        return code

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT):
        """stop sends |sig| and returns the exit code."""
        if self.running():
            self.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def finish(self):
        """finish is the fixture teardown: stop tlsterm if it still runs,
        then require exit code 0 and a log in the documented format."""
        if self.proc is None:
            return
        try:
            # Longer than the default drain_timeout (30s), so a connection a
            # failed test left open is cut by tlsterm, not by the harness.
            code = self.stop(timeout=45) if self.running() else self.wait_exit()
        finally:
            self.kill()
        assert code == 0, (
            f"{self.name} exited with {code}, expected 0"
            f" ({SANITIZER_EXIT} is a sanitizer finding)\n{self.dump()}"
        )
        problems = log_problems(self.log.raw)
        assert not problems, "log format:\n" + "\n".join(problems[:20])

    # -- log

    def mark(self):
        """mark returns the number of events so far: pass it as |since| to
        look only at what comes after."""
        with self.log.cond:
            return len(self.log.events)

    def find(self, event=None, since=0, predicate=None, **fields):
        """find returns the events named |event| (any when None) from index
        |since| on whose fields equal |fields| and that satisfy
        |predicate|."""
        with self.log.cond:
            return [
                e
                for e in self.log.events[since:]
                if _matches(e, event, fields, predicate)
            ]

    def wait_count(self, event, count, timeout=TIMEOUT, since=0, predicate=None, **fields):
        """wait_count waits until at least |count| matching events exist (see
        find) and returns them all; it fails after |timeout| seconds, or at
        once if tlsterm closed its log."""
        deadline = time.monotonic() + timeout
        with self.log.cond:
            while True:
                found = [
                    e
                    for e in self.log.events[since:]
                    if _matches(e, event, fields, predicate)
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.log.closed:
                    why = "log closed (tlsterm exited)" if self.log.closed else f"{timeout}s passed"
                    raise AssertionError(
                        f"waiting for {count} x {event} {fields}: found {len(found)}, {why}\n"
                        + self.dump()
                    )
                self.log.cond.wait(min(left, 0.5))

    def wait_for(self, event, timeout=TIMEOUT, since=0, predicate=None, **fields):
        """wait_for waits for the first matching event and returns it."""
        return self.wait_count(event, 1, timeout, since, predicate, **fields)[0]

    def dump(self, last=400):
        """dump returns the config and the last |last| lines of the log, raw,
        for failure messages."""
        lines = self.log.raw[-last:] if self.log else []
        out = self.stdout.raw[-50:] if self.stdout else []
        return (
            f"--- {self.config_path}\n{self.config_path.read_text()}"
            f"--- {self.name} stderr (last {len(lines)} lines)\n" + "\n".join(lines)
            + (f"\n--- {self.name} stdout\n" + "\n".join(out) if out else "")
        )

    # -- addresses

    def addrs(self, listener):
        """addrs returns the (host, port) pairs |listener| logged as
        "listening"."""
        return [parse_addr(e["addr"]) for e in self.find("listening", listener=listener)]

    def port(self, listener, host="127.0.0.1"):
        """port returns the port |listener| bound on |host|."""
        for h, p in self.addrs(listener):
            if h == host:
                return p
        raise AssertionError(f"listener {listener} is not listening on {host}\n{self.dump()}")


# ---- clients ----------------------------------------------------------------


def client_context(cafile, min_version=None, max_version=None, version=None, ciphers=None):
    """client_context returns a verifying client SSLContext trusting
    |cafile|. |version| pins one ssl.TLSVersion; |ciphers| sets the TLS 1.2
    suites."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(cafile))
    # Python ignores a TCP EOF without close_notify by default, which would
    # make every "ended with close_notify" assertion pass whatever happened.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    if version is not None:
        min_version = max_version = version
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def client_hello(cafile):
    """client_hello returns the bytes of a real TLS ClientHello for
    localhost, as a client trusting |cafile| would send it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(cafile).wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello
    return hello


def with_extension(hello, ext_type, body):
    """with_extension returns the single-record ClientHello |hello| (as
    client_hello returns it) with the body of its |ext_type| extension
    replaced by |body|, every length fixed up."""
    assert hello[0] == 0x16 and hello[5] == 1, hello[:6]
    msg = hello[9:]
    at = 2 + 32  # legacy_version, random
    at += 1 + msg[at]  # session_id
    at += 2 + struct.unpack_from(">H", msg, at)[0]  # cipher_suites
    at += 1 + msg[at]  # compression_methods
    extensions = msg[at + 2:]
    rebuilt, found, i = b"", False, 0
    while i < len(extensions):
        kind, length = struct.unpack_from(">HH", extensions, i)
        if kind == ext_type:
            rebuilt += struct.pack(">HH", kind, len(body)) + body
            found = True
        else:
            rebuilt += extensions[i:i + 4 + length]
        i += 4 + length
    assert found, f"no extension {ext_type} in the hello"
    msg = msg[:at] + struct.pack(">H", len(rebuilt)) + rebuilt
    handshake = b"\x01" + len(msg).to_bytes(3, "big") + msg
    return hello[:3] + struct.pack(">H", len(handshake)) + handshake


def tls_connect(port, ctx, host="127.0.0.1", server_hostname="localhost", timeout=TIMEOUT, **wrap):
    """tls_connect opens a TCP connection to |host|:|port| and completes a
    TLS handshake with |ctx|. It returns the SSLSocket."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(sock, server_hostname=server_hostname, **wrap)
    except BaseException:
        sock.close()
        raise


class StreamDigest:
    """StreamDigest reads a TLS stream of the backend's source pattern into
    a running sha256, so that 100 MiB never sit in the test's memory."""

    def __init__(self, tls):
        self.tls = tls
        self.sha = hashlib.sha256()
        self.received = 0

    def read(self, at_least=None):
        """read reads until |at_least| bytes have arrived in all, or to the
        end of the stream when it is None (failing if the stream ends
        first)."""
        while at_least is None or self.received < at_least:
            data = self.tls.recv(1 << 16)
            if not data:
                assert at_least is None, f"stream ended after {self.received} bytes"
                break
            self.sha.update(data)
            self.received += len(data)
        return self

    def matches(self, size):
        """matches returns True if exactly the first |size| bytes of the
        pattern arrived."""
        return self.received == size and self.sha.hexdigest() == pattern_sha256(size)


def tls_recv_all(tls, timeout=TIMEOUT):
    """tls_recv_all reads an SSLSocket until the peer's close and returns
    the bytes."""
    tls.settimeout(timeout)
    chunks = []
    while True:
        data = tls.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class BioTlsClient:
    """BioTlsClient is a TLS client over ssl.SSLObject and MemoryBIOs on a
    plain socket, so a test controls each direction on its own: SSLSocket
    cannot half-close. Everything blocks with the socket timeout."""

    def __init__(self, port, ctx, host="127.0.0.1", server_hostname="localhost", timeout=TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.tcp_eof = False

    @property
    def local_addr(self):
        return addr_text(self.sock.getsockname())

    def close(self):
        self.sock.close()

    def _flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        assert not self.tcp_eof, "read past the peer's TCP EOF"
        data = self.sock.recv(1 << 16)
        if data:
            self.incoming.write(data)
        else:
            self.tcp_eof = True
            self.incoming.write_eof()

    def handshake(self):
        """handshake completes the TLS handshake. On failure it still sends
        what OpenSSL queued (the alert) before raising."""
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except ssl.SSLError:
                self._flush()
                raise

    def send(self, data, chunk=1 << 18):
        """send encrypts |data| and writes it to the socket."""
        view = memoryview(data)
        for offset in range(0, len(view), chunk):
            self.tls.write(view[offset : offset + chunk])
            self._flush()

    def shutdown_tcp(self):
        """shutdown_tcp half-closes with a bare TCP FIN, no close_notify."""
        self._flush()
        self.sock.shutdown(socket.SHUT_WR)

    def send_close_notify(self):
        """send_close_notify sends close_notify and leaves the read side
        open: unwrap() queues the alert, then wants the peer's, which the
        test reads later."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self._flush()

    def read_to_end(self, on_data):
        """read_to_end passes decrypted data to |on_data| until the peer
        ends the TLS stream, and returns how it ended: "close_notify" (a
        clean close) or "eof" (TCP EOF without close_notify, a truncation
        attack as far as TLS knows)."""
        while True:
            try:
                data = self.tls.read(1 << 16)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
                continue
            except ssl.SSLZeroReturnError:
                return "close_notify"
            except ssl.SSLEOFError:
                return "eof"
            except ssl.SSLError as e:
                # OpenSSL 3 reports a TCP EOF without close_notify this way.
                if e.reason == "UNEXPECTED_EOF_WHILE_READING":
                    return "eof"
                raise
            if not data:
                return "close_notify"
            on_data(data)

    def read_exactly(self, n):
        """read_exactly returns the next |n| decrypted bytes, failing if the
        stream ends first."""
        out = bytearray()
        while len(out) < n:
            try:
                data = self.tls.read(n - len(out))
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
                continue
            assert data, f"stream ended after {len(out)} of {n} bytes"
            out += data
        return bytes(out)

    def abort(self):
        """abort closes the socket with a TCP RST (SO_LINGER 0)."""
        reset_on_close(self.sock)
        self.sock.close()

    def read_all(self):
        """read_all returns (bytes, how) with read_to_end's |how|."""
        chunks = []
        how = self.read_to_end(chunks.append)
        return b"".join(chunks), how

    def wait_tcp_eof(self):
        """wait_tcp_eof reads the socket after the TLS stream ended and
        returns the bytes that came before the TCP FIN: b"" when the peer
        closed cleanly. A reset raises ConnectionResetError: a peer that
        closes with unread data in its socket sends one, and loses data."""
        chunks = []
        while not self.tcp_eof:
            data = self.sock.recv(1 << 16)
            chunks.append(data)
            self.tcp_eof = not data
        return b"".join(chunks)


async def async_tls_open(port, ctx, host="127.0.0.1", timeout=TIMEOUT):
    """async_tls_open connects with asyncio streams over TLS and returns
    (reader, writer)."""
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost"),
        timeout,
    )


async def async_echo(port, ctx, payload, chunk=4096, barrier=None, timeout=TIMEOUT):
    """async_echo sends |payload| through tlsterm to an echo backend in
    |chunk|-sized writes while reading the echo on the same connection, then
    closes with close_notify and waits for tlsterm's. When |barrier| (an
    asyncio.Barrier) is given, no byte moves until every party connected.
    It returns (echoed bytes, client address)."""
    reader, writer = await async_tls_open(port, ctx, timeout=timeout)
    local = addr_text(writer.get_extra_info("sockname"))
    if barrier is not None:
        await asyncio.wait_for(barrier.wait(), timeout)

    async def send():
        for offset in range(0, len(payload), chunk):
            writer.write(payload[offset : offset + chunk])
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
        await asyncio.wait_for(sender, timeout)
    finally:
        sender.cancel()
        writer.close()
    # Closing sends close_notify; asyncio then waits for the peer's, which
    # tlsterm sends once the backend finished its side.
    await asyncio.wait_for(writer.wait_closed(), timeout)
    return echoed, local


def curl(url, port, cafile, *args, resolve_to="127.0.0.1", timeout=TIMEOUT):
    """curl runs curl on https |url| with localhost pinned to
    |resolve_to|:|port| and returns the CompletedProcess."""
    host = f"[{resolve_to}]" if ":" in resolve_to else resolve_to
    return run(
        [
            "curl", "-sS", "--max-time", str(int(timeout)), "--cacert", cafile,
            "--resolve", f"localhost:{port}:{host}", *args, url,
        ],
        timeout=timeout + 5,
    )


def s_client(port, *args, input=b"", host="127.0.0.1", bind_port=None, timeout=TIMEOUT):
    """s_client runs openssl s_client against |host|:|port| with |args|,
    feeding |input|; with |bind_port| the client's source port is fixed, so
    a test knows the "client" tlsterm will log. It returns (CompletedProcess,
    client address or None)."""
    cmd = ["openssl", "s_client", "-connect", f"{host}:{port}", *args]
    client = None
    if bind_port is not None:
        cmd += ["-bind", f"{host}:{bind_port}"]
        client = addr_text((host, bind_port))
    return run(cmd, input=input, timeout=timeout), client


# ---- the admin endpoint and reloads -------------------------------------------

def http(addr, request, timeout=10):
    """http sends raw |request| bytes to the admin endpoint and returns
    (status, body)."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(request)
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def get(addr, path):
    """get sends a GET for |path| and returns (status, body)."""
    return http(addr, f"GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n".encode())


def admin_addr(proxy):
    """admin_addr returns the (host, port) the admin endpoint logged."""
    return parse_addr(proxy.wait_for("admin_listening")["addr"])


def samples(addr):
    status, body = get(addr, "/metrics")
    assert status == 200
    values = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = sample.value
    return values


def total(values, name, **labels):
    """total sums the samples of |name| whose labels include |labels|."""
    return sum(v for (n, lbls), v in values.items()
               if n == name and all(dict(lbls).get(k) == str(w) for k, w in labels.items()))


def reload_and_wait(proxy, event="reload_done"):
    """reload_and_wait sends SIGHUP and returns the next |event| line."""
    mark = proxy.mark()
    proxy.send_signal(signal.SIGHUP)
    return proxy.wait_for(event, since=mark)
