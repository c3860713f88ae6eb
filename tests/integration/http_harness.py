"""http_harness: what the HTTP-mode tests share.

- HttpBackend: http_backend.py as a child process; its stdout events (open,
  request, close of each backend connection) are read on a thread and can be
  waited for, like tlsterm's log.
- http_listener / http_config: a `mode: http` listener and its configuration.
- HttpProxy: the proxy under test, tlsterm, or a stand-in when the
  environment says HTTP_TEST_STANDIN=nghttpx. The stand-in validates the
  tests themselves before tlsterm implements HTTP mode: a test that checks
  what only tlsterm does (its log lines, reason tokens, metrics, behaviour
  nghttpx does not have) is marked tlsterm_only and skipped under it.
- Clients: TlsPipe (non-blocking TLS over MemoryBIOs), H1Conn (HTTP/1.1 with
  keep-alive and pipelining), H2Conn (python-h2, many streams with bodies and
  flow control), curl_sha (curl with its output hashed as it streams).

Every wait has a deadline.
"""

import hashlib
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest

from backend import pattern
from tlsterm_harness import (
    HERE,
    TIMEOUT,
    Backend,
    LogReader,
    Tlsterm,
    _matches,
    client_context,
    free_port,
    listener_config,
    tlsterm_config,
)

# HTTP_TEST_STANDIN=nghttpx runs the tests against nghttpx instead of tlsterm.
STANDIN = os.environ.get("HTTP_TEST_STANDIN") or None
if STANDIN not in (None, "nghttpx"):
    raise pytest.UsageError(f"HTTP_TEST_STANDIN={STANDIN}: only nghttpx is known")

tlsterm_only = pytest.mark.skipif(
    STANDIN is not None, reason=f"checks what only tlsterm does; the stand-in is {STANDIN}"
)


def differs_from_standin(why):
    """differs_from_standin marks a test whose expectation (from issue 9)
    the stand-in does not meet, saying how it differs."""
    return pytest.mark.skipif(STANDIN is not None, reason=f"{STANDIN} differs: {why}")


# ---- event logs ----------------------------------------------------------------


class EventLog:
    """EventLog gives find / wait_for / wait_count over a LogReader's
    events, as Tlsterm does for its log."""

    def __init__(self, reader, what):
        self.log = reader
        self.what = what

    def mark(self):
        with self.log.cond:
            return len(self.log.events)

    def find(self, event=None, since=0, predicate=None, **fields):
        with self.log.cond:
            return [e for e in self.log.events[since:] if _matches(e, event, fields, predicate)]

    def wait_count(self, event, count, timeout=TIMEOUT, since=0, predicate=None, **fields):
        deadline = time.monotonic() + timeout
        with self.log.cond:
            while True:
                found = [e for e in self.log.events[since:]
                         if _matches(e, event, fields, predicate)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.log.closed:
                    raise AssertionError(
                        f"{self.what}: waiting for {count} x {event} {fields}: found"
                        f" {len(found)}\n" + "\n".join(self.log.raw[-60:]))
                self.log.cond.wait(min(left, 0.5))

    def wait_for(self, event, timeout=TIMEOUT, since=0, predicate=None, **fields):
        return self.wait_count(event, 1, timeout, since, predicate, **fields)[0]


# ---- the backend ---------------------------------------------------------------


class HttpBackend(Backend, EventLog):
    """HttpBackend is http_backend.py as a child process (see its docstring
    for the paths it serves and the events it prints): a Backend whose
    stdout, after the port, is an event log."""

    def __init__(self, *args):
        Backend.__init__(self, None, *args, script="http_backend.py")

    def start(self, timeout=TIMEOUT):
        Backend.start(self, timeout)
        EventLog.__init__(self, LogReader(self.proc.stdout), "http_backend")
        return self

    def conn_of(self, path, since=0, timeout=TIMEOUT):
        """conn_of waits for the request for |path| and returns its event
        (conn, n)."""
        return self.wait_for("request", timeout, since, path=path)


# ---- configuration ---------------------------------------------------------------


def http_listener(name, backend, certs, *, http=None, http2=None, timeouts=None, backend_opts=None,
                  tls=None, **options):
    """http_listener returns a `mode: http` listeners entry: listener_config
    plus |http|, |http2|, more |timeouts| and more backend keys
    (max_connections, pool) from |backend_opts|."""
    listener = listener_config(name, backend, certs, tls=tls, **options)
    listener["mode"] = "http"
    listener["backend"].update(backend_opts or {})
    listener["timeouts"].update(timeouts or {})
    if http:
        listener["http"] = dict(http)
    if http2:
        listener["http2"] = dict(http2)
    return listener


def http_config(listeners, workers=1, **options):
    """http_config is tlsterm_config with the access log on and, by default,
    one worker, so that one backend pool serves every client connection."""
    config = tlsterm_config(listeners, **options)
    config["log"]["access"] = True
    if workers is not None:
        config["workers"] = workers
    return config


# ---- the proxy under test ----------------------------------------------------------


class Nghttpx:
    """Nghttpx is the stand-in: nghttpx in front of one backend, configured
    from the same options as an http listener where it has an equivalent.
    An option it cannot express skips the test."""

    def __init__(self, workdir, backend, certs, http=None, http2=None, timeouts=None,
                 backend_opts=None):
        self.workdir = Path(workdir)
        self.port = free_port()
        http, http2 = http or {}, http2 or {}
        timeouts, backend_opts = timeouts or {}, backend_opts or {}
        args = [
            "nghttpx", "--conf=/dev/null", f"-b127.0.0.1,{backend.port}", f"-f127.0.0.1,{self.port}",
            "--workers=1", "--no-ocsp", "--no-via", "--no-server-push",
            "--add-x-forwarded-for", "--backend-connections-per-host=10000",
            f"--errorlog-file={self.workdir / 'nghttpx-error.log'}",
            f"--accesslog-file={self.workdir / 'nghttpx-access.log'}",
        ]
        unsupported = [k for k in http if k not in ("trusted_proxies", "max_request_header_bytes")]
        unsupported += [k for k in timeouts if k not in ("backend_response",)]
        unsupported += [k for k in backend_opts if k not in ("max_connections", "pool")]
        if unsupported:
            pytest.skip(f"nghttpx has no equivalent of {unsupported}")
        if not http.get("trusted_proxies"):
            args.append("--strip-incoming-x-forwarded-for")
        if "max_request_header_bytes" in http:
            args.append(f"--request-header-field-buffer={http['max_request_header_bytes']}")
        if "backend_response" in timeouts:
            args.append(f"--backend-read-timeout={timeouts['backend_response']}")
        if backend_opts.get("max_connections"):
            args.append(f"--backend-connections-per-host={backend_opts['max_connections']}")
        if "idle_timeout" in backend_opts.get("pool", {}):
            args.append(f"--backend-keep-alive-timeout={backend_opts['pool']['idle_timeout']}")
        if "max_concurrent_streams" in http2:
            args.append(f"--frontend-http2-max-concurrent-streams={http2['max_concurrent_streams']}")
        if "initial_window" in http2:
            args.append(f"--frontend-http2-window-size={http2['initial_window']}")
        if "connection_window" in http2:
            args.append(f"--frontend-http2-connection-window-size={http2['connection_window']}")
        args += [str(certs.ecdsa_key), str(certs.ecdsa_cert)]
        self.argv = args
        self.proc = None

    def start(self, timeout=TIMEOUT, attempts=3):
        """start runs nghttpx and returns once it accepts connections. The
        port was free a moment ago; if nghttpx exits at once (someone took
        it), it tries another."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None and attempts > 1:
                old = f"-f127.0.0.1,{self.port}"
                self.port = free_port()
                self.argv[self.argv.index(old)] = f"-f127.0.0.1,{self.port}"
                return self.start(timeout, attempts - 1)
            assert self.proc.poll() is None, \
                f"nghttpx exited: {self.proc.stderr.read()!r} {self.dump()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, f"nghttpx did not listen\n{self.dump()}"
                time.sleep(0.05)

    def dump(self):
        log = self.workdir / "nghttpx-error.log"
        return " ".join(self.argv) + "\n" + (log.read_text()[-4000:] if log.exists() else "")

    def finish(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HttpProxy:
    """HttpProxy is the proxy under test in front of one HttpBackend:
    tlsterm with one `mode: http` listener named "web", or the stand-in.
    |tlsterm| is the Tlsterm (None for the stand-in)."""

    def __init__(self, tlsterm_factory, backend, certs, workers=1, **options):
        self.backend = backend
        if STANDIN is None:
            listener = http_listener("web", backend, certs, **options)
            self.tlsterm = tlsterm_factory(http_config([listener], workers=workers))
            self.port = self.tlsterm.port("web")
            self.standin = None
        else:
            self.tlsterm = None
            workdir = tlsterm_factory.workdir / f"nghttpx{len(tlsterm_factory.standins)}"
            workdir.mkdir()
            self.standin = Nghttpx(workdir, backend, certs, **options)
            tlsterm_factory.standins.append(self.standin)
            self.standin.start()
            self.port = self.standin.port

    def mark(self):
        return self.tlsterm.mark() if self.tlsterm else 0

    def requests(self, count=1, since=0, timeout=TIMEOUT, predicate=None, **fields):
        """requests waits for |count| access-log lines (tlsterm only) and
        returns them all."""
        assert self.tlsterm, "the access log is tlsterm's"
        return self.tlsterm.wait_count("request", count, timeout, since, predicate, **fields)

    def drain(self):
        """drain starts a graceful shutdown: SIGTERM to tlsterm, SIGQUIT
        (its graceful stop) to nghttpx."""
        if self.tlsterm:
            self.tlsterm.send_signal(signal.SIGTERM)
        else:
            self.standin.proc.send_signal(signal.SIGQUIT)

    def wait_exit(self, timeout=TIMEOUT):
        if self.tlsterm:
            return self.tlsterm.wait_exit(timeout)
        return self.standin.proc.wait(timeout)


# ---- clients ---------------------------------------------------------------------


def http_context(certs, alpn):
    ctx = client_context(certs.ca)
    ctx.set_alpn_protocols(list(alpn))
    return ctx


class TlsPipe:
    """TlsPipe is a TLS client over MemoryBIOs on a non-blocking socket:
    io() moves what it can both ways without ever blocking on one direction
    while the other is stuck."""

    def __init__(self, port, ctx, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.out = bytearray()
        self.eof = False
        self.reset = False
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                data = self.sock.recv(65536)
                assert data, "EOF during the handshake"
                self.incoming.write(data)
        self.sock.sendall(self.outgoing.read())
        self.sock.setblocking(False)

    @property
    def alpn(self):
        return self.tls.selected_alpn_protocol()

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def write(self, data):
        view = memoryview(data)
        for at in range(0, len(view), 1 << 16):
            self.tls.write(view[at:at + (1 << 16)])
        self.out += self.outgoing.read()
        try:  # what fits goes now; io() sends the rest
            del self.out[:self.sock.send(self.out)]
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            pass

    def io(self, timeout):
        """io waits up to |timeout| for the socket, sends what it can and
        returns the plaintext that arrived (b"" if none; self.eof is set
        once the stream ended)."""
        if self.eof:
            return b""
        readable, writable, _ = select.select(
            [self.sock], [self.sock] if self.out else [], [], timeout)
        if writable:
            try:
                sent = self.sock.send(self.out)
                del self.out[:sent]
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                self.out.clear()
        plain = bytearray()
        if readable:
            try:
                data = self.sock.recv(1 << 18)
            except BlockingIOError:
                data = None
            except ConnectionResetError:
                data, self.reset = b"", True
            if data == b"":
                self.incoming.write_eof()
            elif data:
                self.incoming.write(data)
            while True:
                try:
                    chunk = self.tls.read(1 << 18)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ssl.SSLError):
                    self.eof = True
                    break
                if not chunk:
                    self.eof = True
                    break
                plain += chunk
            self.out += self.outgoing.read()
        return bytes(plain)

    def flush(self, timeout=TIMEOUT):
        """flush sends everything queued and returns the plaintext that
        arrived meanwhile."""
        deadline = time.monotonic() + timeout
        received = bytearray()
        while self.out and not self.eof:
            assert time.monotonic() < deadline, "could not send within the deadline"
            received += self.io(0.05)
        return bytes(received)

    def close(self):
        self.sock.close()


class H1Response:
    def __init__(self, status, headers, body=b"", trailers=(), infos=()):
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = list(trailers)
        self.infos = list(infos)

    def header(self, name, default=None):
        found = [v for n, v in self.headers if n.lower() == name.lower()]
        return found[0] if found else default

    def json(self):
        return json.loads(self.body)


class H1Conn:
    """H1Conn is an HTTP/1.1 client connection over TLS (ALPN http/1.1):
    send() writes raw requests (pipelining is just sending several), and
    read_response() parses one response."""

    def __init__(self, port, certs, alpn=("http/1.1",)):
        self.pipe = TlsPipe(port, http_context(certs, alpn))
        self.buf = bytearray()

    def close(self):
        self.pipe.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.pipe.write(data)
        self.buf += self.pipe.flush()

    def request(self, method, path, headers=(), body=None, host="localhost"):
        """request sends one request with a Content-Length body when |body|
        is given, and returns its response."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{n}: {v}" for n, v in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        return self.read_response(method)

    def _fill(self, deadline):
        if self.pipe.eof:
            return False
        left = deadline - time.monotonic()
        assert left > 0, f"no complete response within the deadline; have {bytes(self.buf[:300])!r}"
        self.buf += self.pipe.io(min(left, 0.5))
        return True

    def _until(self, marker, deadline):
        while (at := self.buf.find(marker)) < 0:
            if not self._fill(deadline):
                raise EOFError(f"EOF before {marker!r}; have {bytes(self.buf[:300])!r}")
        out = bytes(self.buf[:at + len(marker)])
        del self.buf[:at + len(marker)]
        return out

    def _exactly(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise EOFError(f"EOF after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_eof(self, timeout=TIMEOUT):
        """read_eof returns what arrives until the proxy ends the stream."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_response(self, method="GET", timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        infos = []
        while True:
            head = self._until(b"\r\n\r\n", deadline).decode("latin-1")
            lines = head.split("\r\n")
            assert " " in lines[0], f"not a status line: {head[:300]!r}"
            version, status = lines[0].split(" ", 2)[:2]
            assert version == "HTTP/1.1", lines[0]
            status = int(status)
            headers = [tuple(s.strip() for s in line.split(":", 1)) for line in lines[1:] if line]
            if 100 <= status < 200 and status != 101:
                infos.append((status, headers))
                continue
            break
        response = H1Response(status, headers, infos=infos)
        te = (response.header("transfer-encoding") or "").lower()
        if method == "HEAD" or status in (204, 304, 101):
            return response
        if te.endswith("chunked"):
            body = bytearray()
            while True:
                size = int(self._until(b"\r\n", deadline).split(b";")[0], 16)
                if size == 0:
                    break
                body += self._exactly(size, deadline)
                assert self._exactly(2, deadline) == b"\r\n"
            while (line := self._until(b"\r\n", deadline)) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                response.trailers.append((name.strip(), value.strip()))
            response.body = bytes(body)
        elif response.header("content-length") is not None:
            response.body = self._exactly(int(response.header("content-length")), deadline)
        else:
            response.body = self.read_eof(deadline - time.monotonic())
        return response


class H2Stream:
    def __init__(self, sid, sha):
        self.id = sid
        self.status = None
        self.headers = []
        self.infos = []
        self.trailers = []
        self.sha = hashlib.sha256() if sha else None
        self.data = bytearray()
        self.length = 0
        self.ended = False
        self.reset = None
        self.pending = None
        self.end_after = False

    @property
    def done(self):
        return self.ended or self.reset is not None

    def header(self, name, default=None):
        found = [v for n, v in self.headers if n == name]
        return found[0] if found else default

    def json(self):
        return json.loads(bytes(self.data))


class _GoawayTolerantConnection(h2.connection.H2Connection):
    """python-h2 closes its side on the first GOAWAY and then refuses every
    frame; a graceful shutdown goes on sending frames for the streams below
    last_stream_id (RFC 9113 6.8), and the two-step GOAWAY sends two. This
    keeps the connection open after a GOAWAY with NO_ERROR."""

    def _receive_goaway_frame(self, frame):
        # python-h2 also drops what it had queued, the answer to a PING
        # that came just before the GOAWAY among them: a server that waits
        # for that answer before its final GOAWAY (tlsterm) would wait in
        # vain. Real clients send it; so does this one.
        queued = bytes(self._data_to_send)
        frames, events = super()._receive_goaway_frame(frame)
        if frame.error_code == 0:
            self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            self._data_to_send = bytearray(queued) + self._data_to_send
        return frames, events


class H2Conn:
    """H2Conn is a python-h2 client connection over TLS (ALPN h2). Streams
    are started with request(); wait() runs the connection (bodies are sent
    as flow control allows, received data is acknowledged at once) until a
    condition holds. |goaways| lists the ConnectionTerminated events."""

    def __init__(self, port, certs, validate=True, window=16 << 20):
        self.pipe = TlsPipe(port, http_context(certs, ["h2"]))
        assert self.pipe.alpn == "h2", f"ALPN chose {self.pipe.alpn!r}, not h2"
        config = h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=validate,
            normalize_outbound_headers=validate, validate_inbound_headers=False)
        self.h2 = _GoawayTolerantConnection(config)
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.h2.increment_flow_control_window(window)
        self.streams = {}
        self.goaways = []
        self.events = []
        self.remote_settings = {}
        self.flush()

    def close(self):
        self.pipe.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.pipe.write(data)

    def request(self, method, path, headers=(), body=None, authority="localhost", sha=False,
                end_stream=True):
        """request starts a stream. With |body| the body follows as flow
        control allows and ends the stream when |end_stream|; without it the
        HEADERS end the stream when |end_stream|. |sha| keeps a digest of the
        response body instead of the body."""
        sid = self.h2.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "https"), (":authority", authority),
                  (":path", path), *headers]
        self.h2.send_headers(sid, fields, end_stream=body is None and end_stream)
        stream = H2Stream(sid, sha)
        self.streams[sid] = stream
        if body is not None:
            stream.pending = memoryview(body)
            stream.end_after = end_stream
        self._push()
        self.flush()
        return stream

    def send(self, stream, body, end_stream=False):
        stream.pending = memoryview(bytes(stream.pending or b"") + body)
        stream.end_after = end_stream
        self._push()
        self.flush()

    def reset(self, stream, code=h2.errors.ErrorCodes.CANCEL):
        stream.pending = None
        stream.end_after = False
        self.h2.reset_stream(stream.id, code)
        self.flush()

    def _push(self):
        for stream in self.streams.values():
            if stream.pending is None or stream.done:
                continue
            try:
                while stream.pending:
                    room = min(self.h2.local_flow_control_window(stream.id),
                               self.h2.max_outbound_frame_size, len(stream.pending))
                    if room <= 0:
                        break
                    self.h2.send_data(stream.id, bytes(stream.pending[:room]))
                    stream.pending = stream.pending[room:]
                if not stream.pending and stream.end_after:
                    self.h2.end_stream(stream.id)
                    stream.end_after = False
                    stream.pending = None
            except h2.exceptions.StreamClosedError:
                stream.pending = None

    def step(self, timeout=0.2):
        if len(self.pipe.out) > (4 << 20):
            timeout = 0
        data = self.pipe.io(timeout)
        if data:
            for event in self.h2.receive_data(data):
                self._on(event)
        self._push()
        self.flush()

    def _on(self, event):
        self.events.append(event)
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.ResponseReceived):
            stream.headers = list(event.headers)
            stream.status = int(stream.header(":status"))
        elif isinstance(event, h2.events.InformationalResponseReceived):
            stream.infos.append(list(event.headers))
        elif isinstance(event, h2.events.TrailersReceived):
            stream.trailers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if stream.sha is not None:
                stream.sha.update(event.data)
            else:
                stream.data += event.data
            stream.length += len(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            stream.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaways.append(event)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.remote_settings.update({k: v.new_value for k, v in event.changed_settings.items()})

    def wait(self, condition, timeout=TIMEOUT, what="condition"):
        deadline = time.monotonic() + timeout
        while not condition():
            if self.pipe.eof:
                if condition():
                    break
                raise AssertionError(f"connection ended while waiting for {what}")
            assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
            self.step()

    def get(self, path, method="GET", headers=(), body=None, timeout=TIMEOUT, **kw):
        stream = self.request(method, path, headers, body, **kw)
        self.wait(lambda: stream.done, timeout, f"the response to {method} {path}")
        return stream


# ---- curl ------------------------------------------------------------------------


def curl_sha(url, port, certs, *args, upload=None, timeout=120):
    """curl_sha runs curl on |url| with its output hashed as it arrives
    (nothing of a big download is kept). |upload| = N feeds the first N
    bytes of backend.pattern() on curl's stdin (use "-T -"). It returns
    (exit code, sha256 hex, length, stderr text, the first 4 KiB of the
    output)."""
    cmd = ["curl", "-sS", "--max-time", str(timeout), "--cacert", str(certs.ca),
           "--resolve", f"localhost:{port}:127.0.0.1", *map(str, args), url]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if upload else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killer = threading.Timer(timeout + 10, proc.kill)
    killer.start()
    errors = []

    def feed():
        try:
            for chunk in pattern(upload):
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError as e:
            errors.append(e)

    def read_stderr():
        errors.append(proc.stderr.read())

    feeder = threading.Thread(target=feed, daemon=True) if upload else None
    if feeder:
        feeder.start()
    err_reader = threading.Thread(target=read_stderr, daemon=True)
    err_reader.start()
    digest = hashlib.sha256()
    length = 0
    head = b""
    try:
        while data := proc.stdout.read(1 << 20):
            digest.update(data)
            length += len(data)
            if len(head) < 4096:
                head += data[:4096 - len(head)]
        code = proc.wait()
    finally:
        killer.cancel()
    err_reader.join(5)
    if feeder:
        feeder.join(5)
    stderr = b"".join(e for e in errors if isinstance(e, bytes)).decode(errors="replace")
    return code, digest.hexdigest(), length, stderr, head
