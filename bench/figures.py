"""The load generators and what one sample of each figure measures: a
load (tlsload, wrk, h2load, curl) on the load CPU, with the proxy's CPU time
over the same wall time, and the loops that interleave repetitions across
proxies."""

import json
import math
import os
import re
import signal
import subprocess
import time

from common import BIG_FILE_BYTES, LATENCY_CLIENTS, LATENCY_RPS, LOAD_CPU, PROXY_CPU, log
from peers import start_proxy
from procs import cpu_busy_seconds, run, tree_cpu_seconds, tree_num_fds, tree_rss_bytes


class Sample(dict):
    pass


BACKEND_PID = []  # the backend nginx master, once started


def measured(server, fn):
    """measured runs fn() (the load) and adds the proxy's CPU time and the
    load CPU's busy share over the same wall time."""
    cpu0 = tree_cpu_seconds(server.proc.pid)
    backend0 = tree_cpu_seconds(BACKEND_PID[0]) if BACKEND_PID else 0
    busy0 = cpu_busy_seconds(LOAD_CPU)
    t0 = time.monotonic()
    sample = fn()
    wall = time.monotonic() - t0
    sample["proxy_cpu_s"] = tree_cpu_seconds(server.proc.pid) - cpu0
    sample["wall_s"] = wall
    sample["proxy_cpu_share"] = sample["proxy_cpu_s"] / wall if wall > 0 else 0
    sample["load_cpu_share"] = (cpu_busy_seconds(LOAD_CPU) - busy0) / wall if wall > 0 else 0
    if BACKEND_PID:
        sample["backend_cpu_share"] = (tree_cpu_seconds(BACKEND_PID[0]) - backend0) / wall if wall > 0 else 0
    return sample


def tlsload(ctx, args, timeout):
    res = run([ctx["tlsload"]] + args, cpu=LOAD_CPU, check=False, timeout=timeout)
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"tlsload {' '.join(args)} exited {res.returncode}: {res.stderr.strip()[-300:]}")


def check_negotiated(r, expect):
    """Raises unless the flood completed handshakes and the first one
    negotiated what the figure is about (each string in expect appears)."""
    if r["completed"] == 0:
        raise RuntimeError(f"no handshake completed: {r['first_error']}")
    got = f"{r['version']} {r['cipher']} {r['group']} {r['sigalg']} {r.get('alpn') or ''}".strip()
    missing = [e for e in expect if e not in got]
    if missing:
        raise RuntimeError(f"negotiated {got}, expected {' '.join(expect)}")


def fig_handshake(ctx, server, version, extra, expect):
    d = ctx["dur"]

    def go():
        r = tlsload(ctx, ["handshake", "-a", server.addr, "-c", "32", "-d", str(d), "-v", version]
                    + extra, timeout=d + 30)
        check_negotiated(r, expect)
        return Sample(value=r["rate"], ops=r["completed"], errors=r["errors"],
                      tickets_per_conn=r["tickets"] / max(1, r["completed"]),
                      negotiated=f"{r['version']} {r['cipher']} {r['group']} {r['sigalg']} "
                                 f"{r.get('alpn') or ''}".strip(),
                      first_error=r["first_error"])
    s = measured(server, go)
    s["cpu_us_per_op"] = s["proxy_cpu_s"] / max(1, s["ops"]) * 1e6
    return s


def fig_resume(ctx, server):
    d = ctx["dur"]

    def go():
        r = tlsload(ctx, ["resume", "-a", server.addr, "-c", "32", "-d", str(d), "-v", "1.3",
                          "-g", "X25519"], timeout=d + 30)
        check_negotiated(r, ["TLSv1.3", "X25519"])
        return Sample(value=r["rate"], ops=r["completed"], errors=r["errors"],
                      resumed_fraction=r["resumed"] / max(1, r["completed"]),
                      negotiated=f"{r['version']} {r['cipher']} {r['group']}",
                      first_error=r["first_error"])
    s = measured(server, go)
    s["cpu_us_per_op"] = s["proxy_cpu_s"] / max(1, s["ops"]) * 1e6
    return s


def fig_keepalive(ctx, server):
    d = max(1, int(round(ctx["dur"])))

    def go():
        res = run(["wrk", "-t1", "-c50", f"-d{d}s", f"{server.url}/"], cpu=LOAD_CPU,
                  check=False, timeout=d + 30)
        m = re.search(r"Requests/sec:\s+([\d.]+)", res.stdout)
        total = re.search(r"(\d+) requests in", res.stdout)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", res.stdout)
        sock = re.search(r"Socket errors: (.*)", res.stdout)
        if not m:
            raise RuntimeError(f"wrk: {res.stdout[-300:]} {res.stderr[-300:]}")
        return Sample(value=float(m.group(1)), ops=int(total.group(1)) if total else 0,
                      errors=int(bad.group(1)) if bad else 0,
                      socket_errors=sock.group(1) if sock else "")
    s = measured(server, go)
    s["cpu_us_per_op"] = s["proxy_cpu_s"] / max(1, s["ops"]) * 1e6
    return s


def fig_latency(ctx, server, protocol_args=("--h1",)):
    """p50/p99 at a fixed rate: h2load with |protocol_args| (HTTP/1.1 by
    default; () for h2, one stream per connection), LATENCY_CLIENTS
    connections of LATENCY_RPS requests/s each."""
    d = max(1, int(round(ctx["dur"])))
    log_path = os.path.join(ctx["tmp"], "h2load.log")

    def go():
        if os.path.exists(log_path):
            os.unlink(log_path)
        res = run(["h2load"] + list(protocol_args) + ["-t1", f"-c{LATENCY_CLIENTS}", f"--rps={LATENCY_RPS}",
                   f"-D{d}", f"--log-file={log_path}", f"{server.url}/"],
                  cpu=LOAD_CPU, check=False, timeout=d + 30)
        times, bad = [], 0
        try:
            with open(log_path) as f:
                for line in f:
                    cols = line.split()
                    if len(cols) >= 3:
                        if cols[1] != "200":
                            bad += 1
                        times.append(int(cols[2]))
        except OSError:
            pass
        if not times:
            raise RuntimeError(f"h2load: {res.stdout[-300:]} {res.stderr[-300:]}")
        times.sort()
        pick = lambda q: times[min(len(times) - 1, int(math.ceil(q * len(times))) - 1)] / 1000.0
        return Sample(value=pick(0.99), p50_ms=pick(0.50), p99_ms=pick(0.99),
                      max_ms=times[-1] / 1000.0, ops=len(times), errors=bad,
                      achieved_rps=len(times) / d)
    return measured(server, go)


def fig_bulk(ctx, server, h2=False):
    """MB/s of bulk_downloads downloads of the 64 MiB file over one
    connection (curl); with h2, over HTTP/2 (each download checked to be)."""
    n = ctx["bulk_downloads"]
    args = ["curl", "-sS", "--cacert", f"{ctx['certs']}/ca.pem", "--tlsv1.3",
            "--tls13-ciphers", "TLS_AES_128_GCM_SHA256", "--max-time", "60",
            "-w", "%{size_download} %{time_total} %{time_pretransfer} %{http_version}\\n"]
    if h2:
        args.append("--http2")
    for _ in range(n):
        args += ["-o", "/dev/null", f"{server.url}/big"]

    def go():
        res = run(args, cpu=LOAD_CPU, check=False, timeout=120)
        size = seconds = 0.0
        for line in res.stdout.split("\n"):
            cols = line.split()
            if len(cols) == 4:
                if h2 and cols[3] != "2":
                    raise RuntimeError(f"curl --http2 got HTTP/{cols[3]}")
                size += float(cols[0])
                seconds += float(cols[1]) - float(cols[2])
        if res.returncode != 0 or size < n * BIG_FILE_BYTES:
            raise RuntimeError(f"curl exited {res.returncode}, {size:.0f} bytes: {res.stderr.strip()[-200:]}")
        return Sample(value=size / seconds / 1e6, ops=size / 1e6, errors=0)
    s = measured(server, go)
    s["cpu_us_per_op"] = s["proxy_cpu_s"] / max(1e-9, s["ops"]) * 1e6  # per MB
    return s


def hold(ctx, server, n, sources, alpn=None):
    """hold starts tlsload holding n idle connections to the server (with
    alpn, offering it: "h2" makes each connection's one request an HTTP/2
    one); it prints "ready OK FAILED ALPN" once they are open, and keeps them
    until its stdin closes or hold_deadline passes (so a hung run still
    ends)."""
    argv = ["taskset", "-c", LOAD_CPU, ctx["tlsload"], "hold", "-a", server.addr, "-n", str(n),
            "-c", "200", "-d", str(ctx["hold_deadline"]), "-s", str(sources)]
    if alpn:
        argv += ["-A", alpn]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    return p


def fig_idle_rss(ctx, server, n, alpn=None):
    """RSS per idle TLS connection: (RSS with n idle established connections
    - RSS before) / n, each connection having served one request (with
    alpn "h2", an HTTP/2 one, SETTINGS exchanged both ways)."""
    sources = 1 if n <= 28000 else math.ceil(n / 25000)
    time.sleep(0.5)
    rss0 = tree_rss_bytes(server.proc.pid)
    t0 = time.monotonic()
    p = hold(ctx, server, n, sources, alpn)
    try:
        line = ""
        while True:  # tlsload ends by itself at hold_deadline: EOF then
            line = p.stdout.readline()
            if line.startswith("ready") or not line:
                break
        if not line.startswith("ready"):
            p.wait(10)
            raise RuntimeError(f"tlsload hold gave no ready line: {p.stderr.read()[-300:]}")
        ok, failed = (int(x) for x in line.split()[1:3])
        got_alpn = (line.split() + ["-"])[3]
        if alpn and got_alpn != alpn:
            raise RuntimeError(f"tlsload hold negotiated ALPN {got_alpn}, expected {alpn}")
        setup_s = time.monotonic() - t0
        time.sleep(1.0)  # let the proxy finish whatever follows the response
        rss_n = tree_rss_bytes(server.proc.pid)
        fds_n = tree_num_fds(server.proc.pid)
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if ok == 0:
        raise RuntimeError(f"no connection held ({failed} failed)")
    return Sample(value=(rss_n - rss0) / ok / 1024.0, rss0_mib=rss0 / 1048576,
                  rss_n_mib=rss_n / 1048576, held=ok, errors=failed,
                  proxy_fds=fds_n, setup_s=setup_s)


# ---- the figures ----------------------------------------------------------------------

# Each figure: key, title, unit, which way is better, and how to run one sample.
FIGURES = [
    ("hs13_ecdsa", "Full handshakes/s, TLS 1.3, ECDSA P-256 + X25519", "handshakes/s", "high",
     lambda c, s: fig_handshake(c, s, "1.3", ["-g", "X25519"], ["TLSv1.3", "X25519", "ecdsa"])),
    ("hs12_ecdsa", "Full handshakes/s, TLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256 (X25519)",
     "handshakes/s", "high",
     # TLS 1.2 needs P-256 among the groups to accept a P-256 certificate.
     lambda c, s: fig_handshake(c, s, "1.2", ["-g", "X25519:P-256", "-C", "ECDHE-ECDSA-AES128-GCM-SHA256"],
                                ["TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "X25519"])),
    ("resumed13", "Resumed handshakes/s, TLS 1.3 ticket (psk_dhe_ke, X25519)", "handshakes/s",
     "high", fig_resume),
    ("keepalive", "Keep-alive requests/s, 100-byte responses (wrk, 50 connections)", "req/s",
     "high", fig_keepalive),
    ("latency", f"p99 latency at a fixed {LATENCY_CLIENTS * LATENCY_RPS} req/s "
                f"(h2load --h1, {LATENCY_CLIENTS} connections)", "ms", "low", fig_latency),
    ("bulk", "Bulk download MB/s, 64 MiB file, TLS 1.3 AES-128-GCM, one connection (curl)",
     "MB/s", "high", fig_bulk),
]
RSA_FIGURE = ("hs13_rsa", "Full handshakes/s, TLS 1.3, RSA-2048 + X25519", "handshakes/s",
              "high", lambda c, s: fig_handshake(c, s, "1.3", ["-g", "X25519"], ["TLSv1.3", "X25519", "rsa"]))


def run_figure(ctx, results, servers, figure):
    key, title, unit, better, fn = figure
    log(f"figure {key}: {title}")
    fig = results["figures"].setdefault(key, {"title": title, "unit": unit, "better": better,
                                               "samples": {}, "failures": {}})
    # Repetitions are interleaved across proxies, so a slow drift of the
    # machine (another job, thermal state) spreads over all of them.
    for rep in range(ctx["reps"]):
        for server in servers:
            if not server.proc.alive():
                fig["failures"].setdefault(server.name, "the proxy exited")
                continue
            try:
                sample = fn(ctx, server)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
                fig["failures"][server.name] = str(e)[:300]
                log(f"  {server.name}: failed: {str(e)[:200]}")
                continue
            fig["samples"].setdefault(server.name, []).append(sample)
            extra = ""
            if "cpu_us_per_op" in sample:
                extra = f", proxy CPU {sample['proxy_cpu_share']:.0%}, {sample['cpu_us_per_op']:.1f} us/op"
            log(f"  rep {rep + 1} {server.name}: {sample['value']:.1f} {unit}{extra}")


def restart_fresh(ctx, server):
    """Replaces server's process by a new one, warmed up: RSS deltas are
    only meaningful from a fresh heap (an allocator keeps freed memory, so a
    second round in the same process would reuse the first one's)."""
    server.proc.stop()
    fresh, why = start_proxy(server.name, ctx, server.cert, server.tag, server.backend_ports)
    if fresh is None:
        raise RuntimeError(f"restart failed: {why}")
    warm_up(ctx, fresh)
    server.proc, server.port, server.addr, server.url = fresh.proc, fresh.port, fresh.addr, fresh.url


def run_idle(ctx, results, servers, n, key, title, restart=restart_fresh, alpn=None):
    """run_idle measures fig_idle_rss at n connections for each server,
    each repetition in a process made fresh by restart(ctx, server)."""
    log(f"figure {key}: {title}")
    fig = results["figures"].setdefault(key, {"title": title, "unit": "KiB/conn", "better": "low",
                                               "n": n, "samples": {}, "failures": {}})
    reps = ctx["idle_reps"] if n <= 10000 else ctx["big_idle_reps"]
    for rep in range(reps):
        for server in servers:
            if not server.proc.alive():
                fig["failures"].setdefault(server.name, "the proxy exited")
                continue
            try:
                restart(ctx, server)
                s = fig_idle_rss(ctx, server, n, alpn)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as e:
                fig["failures"][server.name] = str(e)[:300]
                log(f"  {server.name}: failed: {str(e)[:200]}")
                continue
            fig["samples"].setdefault(server.name, []).append(s)
            log(f"  rep {rep + 1} {server.name}: {s['value']:.2f} KiB/conn "
                f"({s['rss0_mib']:.1f} -> {s['rss_n_mib']:.1f} MiB, {s['held']} held, "
                f"{s['errors']} failed, set up in {s['setup_s']:.1f} s)")


def warm_up(ctx, server):
    """A few connections and requests, so that lazily made state (ticket
    keys, backend pools, allocator arenas) exists before any measurement."""
    try:
        tlsload(ctx, ["handshake", "-a", server.addr, "-c", "8", "-d", "0.3", "-r"], timeout=30)
    except RuntimeError as e:
        log(f"  warm-up of {server.name}: {e}")


def backend_check(ctx, results):
    """How fast the backend is alone, to show it is not the bottleneck: wrk
    and curl on the proxy CPU (idle at this point) against the plain
    backend on the load CPU."""
    url = f"http://127.0.0.1:{ctx['backend_ports'][0]}"
    res = run(["wrk", "-t1", "-c50", "-d3s", f"{url}/"], cpu=PROXY_CPU, check=False, timeout=60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", res.stdout)
    res2 = run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", f"{url}/big"],
               cpu=PROXY_CPU, check=False, timeout=60)
    check = {"plain_req_per_s": float(m.group(1)) if m else None,
             "plain_mb_per_s": float(res2.stdout or 0) / 1e6}
    results["backend_check"] = check
