"""Allocation failure (README, "Allocation-failure testing"): in a build with
TLSTERM_ALLOC_FAIL (make test's), tlsterm makes the Nth allocation fail, and
each scenario (a handshake, tcp forwarding of a few KB, an h2 request and two
keep-alive HTTP/1.1 requests through HTTP mode, two requests to a redirect
listener, a SIGHUP reload) runs with N = 1, 2, 3, ... up to its allocation
count. Every run must end in a defined way: either the scenario succeeded,
or the client saw a clean failure (TLS alert or close, an HTTP 5xx, a
RST_STREAM or GOAWAY) and tlsterm logged why (a connection's end reason,
reload_failed); the process keeps serving (the same scenario with nothing
failing succeeds right after), and at the end exits 0 after SIGTERM with no
sanitizer report (ASan, UBSan, LeakSanitizer at exit).

One tlsterm runs a scenario's every N: SIGUSR2 starts the next round (N+1,
the count from 0; alloc_fail.h), which keeps a sweep of hundreds of rounds
within seconds instead of a process start per N. A round ends when tlsterm
logged the end of its connections, so nothing of one round is counted in
the next. The sweep stops at the first round in which nothing failed: that
round's count is the scenario's allocation count."""

import signal
import socket
import ssl
import time

import h2.errors
import pytest

from backend import pattern
from http_backend import HELLO_BODY
from http_harness import H1Conn, H2Conn, HttpBackend, http_config, http_listener
from tlsterm_harness import (
    TLSTERM_BIN,
    Backend,
    Tlsterm,
    addr_text,
    client_context,
    listener_config,
    run,
    tlsterm_config,
)


def injection_build():
    try:
        return b"allocation-failure injection" in run([TLSTERM_BIN, "--version"]).stdout
    except (OSError, AssertionError):
        return False


pytestmark = pytest.mark.skipif(not injection_build(),
                                reason="tlsterm built without -DTLSTERM_ALLOC_FAIL=ON")

# A round that takes longer than this has hung.
ROUND_DEADLINE = 15.0
# The sweep of one scenario stops (and fails) past this many rounds: a
# scenario whose count grew that much has changed and needs a look.
MAX_ROUNDS = 1500
FORWARD_LEN = 8 << 10

# A connection's end reasons that say an allocation failed on its way:
# out_of_memory (tlsterm's, or one BoringSSL reported), tls_error (BoringSSL
# failed without saying why: detail INTERNAL_ERROR).
OOM_REASONS = {"out_of_memory", "tls_error"}
# Allocation failures that Debian's BoringSSL (android-libboringssl
# 13.0.0+r24) does not handle, by the exported function on the failed
# allocation's stack. tlsterm cannot see them; the client gets a TLS error.
BORINGSSL_DEFECTS = {
    # ssl_encrypt_ticket returns -1 when the session cannot be serialized,
    # which its caller takes for success: the client gets a NewSessionTicket
    # with an empty ticket and fails the connection (LENGTH_MISMATCH), while
    # tlsterm saw a finished handshake. Fixed in later BoringSSL.
    "SSL_SESSION_to_bytes_for_ticket",
    # CRYPTO_free_ex_data copies the ex_data callbacks before it frees an
    # object's ex_data; when that copy cannot be allocated it returns and
    # leaks the ex_data stack ("TODO(davidben): This leaks memory on malloc
    # error"). tlsterm keeps nothing in an SSL's ex_data for that reason,
    # but an SSL_CTX needs its own (every callback finds the listener
    # there): LSAN_SUPPRESSIONS below lets that one leak through.
    "CRYPTO_free_ex_data",
}
# The leak of BoringSSL's just above: the ex_data stack CRYPTO_set_ex_data
# allocated. Only that block is let through; an SSL_CTX that tlsterm itself
# failed to free would still be reported.
LSAN_SUPPRESSIONS = "leak:CRYPTO_set_ex_data\n"
END_EVENTS = ("conn_closed", "handshake_failed", "accept_failed")


def one_worker(config):
    """one_worker makes every round run on the same worker, so that the
    rounds count the same allocations."""
    config["workers"] = 1
    return config


class Round:
    """Round is what one run of a scenario left: |ok| when it succeeded,
    else |failure| (what the client saw); |why| is the log line that ends
    the round's connection or reload."""

    def __init__(self, ok, failure=None, why=None):
        self.ok = ok
        self.failure = failure
        self.why = why


def end_of_conn(proxy, client, since):
    """end_of_conn waits for the line that ends connection |client| (a
    handshake failure, conn_closed, or accept_failed when it never became
    one) and returns it. A None |client| (the client never learnt its
    address) takes the round's only connection."""
    return proxy.wait_for(None, timeout=ROUND_DEADLINE, since=since,
                          predicate=lambda e: e.get("event") in END_EVENTS
                          and client in (None, e.get("client")))


# ---- scenarios -----------------------------------------------------------------------


class TcpScenario:
    """A scenario through a tcp listener in front of |backend|: one TLS
    connection, on which talk() does the scenario's part."""

    def __init__(self, backend, certs):
        self.certs = certs
        self.config = one_worker(
            tlsterm_config([listener_config("edge", backend, certs)], drain_timeout="2s"))

    def run(self, proxy, since):
        sock = socket.create_connection(("127.0.0.1", proxy.port("edge")), timeout=ROUND_DEADLINE)
        client = addr_text(sock.getsockname())
        try:
            with client_context(self.certs.ca).wrap_socket(sock, server_hostname="localhost") as tls:
                failure = self.talk(tls)
        except (ssl.SSLError, OSError) as e:
            failure = f"client: {e!r}"
        finally:
            sock.close()
        end = end_of_conn(proxy, client, since)
        return Round(failure is None, failure, end)


class Handshake(TcpScenario):
    """A TLS handshake through a tcp listener, then close_notify."""

    name = "handshake"

    def talk(self, tls):
        tls.unwrap()
        return None


class Forward(TcpScenario):
    """8 KiB through a tcp listener to an echo backend and back."""

    name = "forward"

    def talk(self, tls):
        data = b"".join(pattern(FORWARD_LEN))
        tls.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = tls.recv(65536)
            if not chunk:
                break
            got += chunk
        if got == data:
            return None
        # Short is a failure the client can see; other bytes are never
        # acceptable.
        assert data.startswith(got), "the echo came back altered"
        return f"client: {len(got)} of {len(data)} bytes, then EOF"


class HttpScenario:
    """A scenario through an HTTP-mode listener in front of |backend|."""

    def __init__(self, backend, certs):
        self.certs = certs
        listener = http_listener("web", backend, certs)
        self.config = http_config([listener], drain_timeout="2s")

    def connect(self, conn_class, proxy):
        """connect opens a |conn_class| (H1Conn, H2Conn) to the listener; a
        handshake that did not complete is an OSError, as a reset is."""
        try:
            return conn_class(proxy.port("web"), self.certs)
        except AssertionError as e:  # TlsPipe: the handshake did not complete
            raise OSError(str(e)) from e


class H2Request(HttpScenario):
    """GET / over h2 through an HTTP-mode listener."""

    name = "h2"

    def run(self, proxy, since):
        failure = None
        client = None
        try:
            with self.connect(H2Conn, proxy) as conn:
                client = addr_text(conn.pipe.sock.getsockname())
                stream = conn.request("GET", "/")
                try:
                    conn.wait(lambda: stream.done or conn.goaways, ROUND_DEADLINE, "the response")
                except AssertionError as e:
                    if "connection ended" not in str(e):
                        raise
                    failure = "client: connection closed"
                if stream.reset is not None:
                    failure = f"client: RST_STREAM {h2.errors.ErrorCodes(stream.reset).name}"
                elif conn.goaways and not stream.done:
                    failure = f"client: GOAWAY {conn.goaways[0].error_code!r}"
                elif stream.status is not None and stream.status >= 500:
                    failure = f"client: HTTP {stream.status}"
                elif failure is None and (stream.status != 200 or stream.data != HELLO_BODY):
                    raise AssertionError(f"a wrong answer: {stream.status} {stream.data[:200]!r}")
        except (ssl.SSLError, OSError) as e:
            failure = f"client: {e!r}"
        end = end_of_conn(proxy, client, since)
        if failure is not None and end.get("reason") == "done":
            # The connection ended well; the failed stream has its own line.
            end = proxy.wait_for("request", timeout=ROUND_DEADLINE, since=since, client=client)
        return Round(failure is None, failure, end)


class H1Requests(HttpScenario):
    """Two GETs on one HTTP/1.1 connection (ALPN http/1.1) through an
    HTTP-mode listener: the second on the backend connection the first
    left in the pool."""

    name = "h1"
    requests = (("/", HELLO_BODY), ("/", HELLO_BODY))

    def run(self, proxy, since):
        failure = None
        client = None
        try:
            with self.connect(H1Conn, proxy) as conn:
                client = addr_text(conn.pipe.sock.getsockname())
                for path, body in self.requests:
                    response = conn.request("GET", path)
                    if response.status >= 500:
                        failure = f"client: HTTP {response.status}"
                        break
                    if response.status != 200 or response.body != body:
                        raise AssertionError(
                            f"a wrong answer: {response.status} {len(response.body)} bytes, "
                            f"{response.body[:200]!r}")
        except (ssl.SSLError, OSError, EOFError) as e:
            failure = f"client: {e!r}"
        end = end_of_conn(proxy, client, since)
        if failure is not None and failure.startswith("client: HTTP"):
            # The connection may end well; the failed request has its line.
            end = proxy.wait_for("request", timeout=ROUND_DEADLINE, since=since, client=client,
                                 predicate=lambda e: e.get("status", 0) >= 500)
        return Round(failure is None, failure, end)


class H1LargeResponse(H1Requests):
    """A 96 KiB response over HTTP/1.1: its bytes pass through several
    buffers on their way, and no byte may go missing."""

    name = "h1_large"
    requests = (("/bytes/98304", b"".join(pattern(98304))),)


class Redirects:
    """Two requests on one plain keep-alive connection to a redirect
    listener, each answered 308 to https://."""

    name = "redirect"
    ANSWER = (b"HTTP/1.1 308 Permanent Redirect\r\n", b"\r\nLocation: https://localhost/a\r\n")

    def __init__(self, certs):
        listener = {"name": "plain", "mode": "redirect", "listen": ["127.0.0.1:0"]}
        self.config = http_config([listener], drain_timeout="2s")

    def run(self, proxy, since):
        failure = None
        sock = socket.create_connection(("127.0.0.1", proxy.port("plain")), timeout=ROUND_DEADLINE)
        client = addr_text(sock.getsockname())
        try:
            buf = b""
            for _ in range(2):
                sock.sendall(b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n")
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        raise EOFError(f"EOF after {buf[:200]!r}")
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                head += b"\r\n"
                if head.startswith(b"HTTP/1.1 5"):
                    failure = "client: " + head.split(b"\r\n", 1)[0].decode()
                    break
                # A whole answer or none: never one with a piece missing.
                assert head.startswith(self.ANSWER[0]) and self.ANSWER[1] in head, (
                    f"a wrong answer: {head[:300]!r}")
                length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
                while len(buf) < length:
                    data = sock.recv(65536)
                    if not data:
                        raise EOFError(f"EOF in the body after {buf[:200]!r}")
                    buf += data
                assert buf[:length] == b"Redirecting to https://localhost/a\n", buf[:length]
                buf = buf[length:]
        except (OSError, EOFError) as e:
            failure = f"client: {e!r}"
        finally:
            sock.close()
        end = end_of_conn(proxy, client, since)
        if failure is not None and failure.startswith("client: HTTP"):
            end = proxy.wait_for("request", timeout=ROUND_DEADLINE, since=since, client=client,
                                 predicate=lambda e: e.get("status", 0) >= 500)
        return Round(failure is None, failure, end)


class Reload:
    """SIGHUP: a new generation (listeners, certificates, contexts) beside
    the old one, then a handshake through whichever serves."""

    name = "reload"

    def __init__(self, backend, certs):
        self.handshake = Handshake(backend, certs)
        self.config = self.handshake.config

    def run(self, proxy, since):
        proxy.send_signal(signal.SIGHUP)
        end = proxy.wait_for(None, timeout=ROUND_DEADLINE, since=since,
                             predicate=lambda e: e.get("event") in ("reload_done", "reload_failed"))
        served = self.handshake.run(proxy, proxy.mark())
        if end["event"] == "reload_failed":
            # The failure was the reload's: the old configuration serves.
            assert served.ok, f"after {end}: not serving: {served.failure} {served.why}"
            return Round(False, "reload_failed", end)
        # The failure, if any, was in the handshake on the new generation.
        return served


# ---- the sweep ------------------------------------------------------------------------


def check_defined(scenario, n, result, injected):
    """check_defined asserts that a failed round of |scenario| at |n| is one
    the client could tell and the log explains."""
    where = f"{scenario.name}, N={n} ({injected['source']}): {result.failure}"
    assert result.why is not None, f"{where}: no log line says why"
    event = result.why["event"]
    if event == "reload_failed":
        return
    if event == "request":
        assert result.why.get("status", 0) >= 500 or result.why.get("reason") in OOM_REASONS, (
            f"{where}: access log {result.why}")
        return
    assert result.why.get("reason") in OOM_REASONS, f"{where}: ended with {result.why}"


def sweep(proxy, scenario):
    """sweep runs |scenario| once with nothing failing (round 0 counts), then
    with N = 1, 2, ... until a round in which nothing failed; it returns
    (that round's allocation count, the rounds run, the failures seen by
    reason)."""
    first = scenario.run(proxy, 0)
    assert first.ok, f"{scenario.name} fails with nothing failing: {first.failure} {first.why}"
    seen = {}
    for rounds in range(1, MAX_ROUNDS + 1):
        mark = proxy.mark()
        proxy.send_signal(signal.SIGUSR2)
        ended = proxy.wait_for("alloc_fail_stats", timeout=ROUND_DEADLINE, since=mark)
        n = proxy.wait_for("alloc_fail_round", timeout=ROUND_DEADLINE, since=mark)["fail_at"]
        if rounds > 1 and ended["failed"] == "none":
            return ended["count"], rounds - 1, seen
        mark = proxy.mark()
        started = time.monotonic()
        result = scenario.run(proxy, mark)
        assert time.monotonic() - started < 2 * ROUND_DEADLINE, f"N={n}: the round hung"
        injected = proxy.find("alloc_fail_injected", since=mark)
        if not injected:
            assert result.ok, f"{scenario.name}, N={n}: failed with nothing failing"
            continue
        if result.ok:
            seen["absorbed"] = seen.get("absorbed", 0) + 1
            continue
        frames = injected[0]["frames"].split(",")
        defect = next((f for f in frames if f in BORINGSSL_DEFECTS), None)
        if defect is not None:
            why = f"boringssl_defect:{defect}"
        else:
            check_defined(scenario, n, result, injected[0])
            why = result.why.get("reason") or result.why["event"]
        seen[why] = seen.get(why, 0) + 1
        # Nothing fails any more in this round: the scenario works again.
        again = scenario.run(proxy, proxy.mark())
        assert again.ok, f"{scenario.name}, N={n}: not serving afterwards: {again.failure}"
    raise AssertionError(f"{scenario.name}: still failing allocations after {MAX_ROUNDS} rounds")


def run_sweep(tmp_path, scenario, stride=None):
    suppressions = tmp_path / "lsan.supp"
    suppressions.write_text(LSAN_SUPPRESSIONS)
    # The slow unwinder: BoringSSL has no frame pointers, and the
    # suppression must see CRYPTO_set_ex_data on the leaked block's stack.
    env = {"TLSTERM_ALLOC_FAIL_AT": "0",
           "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86:fast_unwind_on_malloc=0",
           "LSAN_OPTIONS": f"suppressions={suppressions}:print_suppressions=0"}
    if stride:
        env["TLSTERM_ALLOC_FAIL_STRIDE"] = stride
    proxy = Tlsterm(tmp_path, scenario.config, name=scenario.name, env=env)
    try:
        proxy.start()
        count, rounds, seen = sweep(proxy, scenario)
        print(f"{scenario.name}: {count} allocations, {rounds} rounds, failures {seen}")
        code = proxy.stop(timeout=ROUND_DEADLINE)
        assert code == 0, f"exit {code} (86: a sanitizer report)\n{proxy.dump()}"
        assert not [l for l in proxy.log.raw if "Sanitizer" in l or "runtime error" in l]
    except BaseException:
        print(proxy.dump())
        raise
    finally:
        proxy.kill()
    return count, rounds, seen


@pytest.fixture(scope="module")
def echo():
    backend = Backend("echo").start()
    yield backend
    backend.stop()


def test_handshake(tmp_path, echo, certs):
    count, rounds, _ = run_sweep(tmp_path, Handshake(echo, certs))
    assert rounds >= count > 50


def test_tcp_forwarding(tmp_path, echo, certs):
    count, rounds, _ = run_sweep(tmp_path, Forward(echo, certs))
    assert rounds >= count > 50


@pytest.fixture(scope="module")
def http_backend():
    backend = HttpBackend().start()
    yield backend
    backend.stop()


@pytest.mark.parametrize("scenario", [H2Request, H1Requests, H1LargeResponse],
                         ids=lambda cls: cls.name)
def test_http(tmp_path, http_backend, certs, scenario):
    count, rounds, _ = run_sweep(tmp_path, scenario(http_backend, certs))
    assert rounds >= count > 50


def test_redirects(tmp_path, certs):
    count, rounds, _ = run_sweep(tmp_path, Redirects(certs))
    assert rounds >= count > 10


def test_reload(tmp_path, echo, certs):
    count, rounds, seen = run_sweep(tmp_path, Reload(echo, certs), stride="400:37")
    assert count > 400 and rounds >= 400
    assert seen.get("reload_failed", 0) > 0
