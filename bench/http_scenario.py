"""The http scenario (issues 9 and 10): HTTP/2 and HTTP/1.1 keep-alive
requests, latency at a fixed h2 rate, a 64 MiB h2 download, full TLS 1.3
handshakes and memory per idle h2 connection, through the proxies that
terminate HTTP, each forwarding HTTP/1.1 to the same plain nginx backend
over pooled keep-alive connections.

The peers: tlsterm with a listener in `mode: http`, nghttpx (its default
reverse-proxy mode: h2 and http/1.1 to clients, HTTP/1.1 to the backend),
HAProxy `mode http` (`alpn h2,http/1.1`, `http-reuse always`) and nginx
(`listen ... ssl http2`, upstream `keepalive 128`). These are instances of
their own, started beside no other proxy: the tcp scenario's haproxy-http
and nginx-http offer no h2, so that curl and wrk speak HTTP/1.1 there.

tlsterm's http mode may not exist in the binary under test. Its
configuration is checked with `tlsterm --check` first and the instance with
one h2 and one HTTP/1.1 request; if either fails, the report says "http mode
unavailable" and why, and the peers are measured all the same."""

import math
import os
import re

import common
from common import (GROUPS, LATENCY_CLIENTS, LATENCY_RPS, LOAD_CPU, PROXY_CPU, TLS12_SUITES,
                    BenchError, log)
from figures import (Sample, fig_bulk, fig_handshake, fig_keepalive, fig_latency, measured,
                     run_figure, run_idle, warm_up)
from peers import Server, nginx_common, nginx_tls, proxy_argv
from procs import Proc, free_port, non_loopback_listeners, run, wait_listening

HTTP_PEERS = ["tlsterm", "nghttpx", "haproxy-http", "nginx-http"]
H2_CLIENTS, H2_STREAMS = 10, 10
H1_CLIENTS = 50
# Pooled backend connections each proxy may keep idle: nginx-http's
# `keepalive 128` of the tcp scenario, and as much for tlsterm, so that
# neither measures a pool cap (100 requests are in flight in the h2 figure).
POOL_IDLE = 128
# The client pins TLS 1.3 AES-128-GCM with X25519 for every proxy: without
# it, OpenSSL servers that keep their own suite order pick AES-256-GCM.
CLIENT_TLS = ["--tls13-ciphers=TLS_AES_128_GCM_SHA256", "--groups=X25519"]
CLIENT_EXPECTS = "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519"  # as h2load prints them


def tlsterm_http_config(ctx, port, backend_ports, full):
    """The tlsterm listener of the http scenario. With full, also what keeps
    it comparable to the peers (no access log, a pool of POOL_IDLE idle
    connections kept for the whole run); without, the least a listener in
    http mode needs, for a binary that does not know those keys yet."""
    servers = ", ".join(f'"127.0.0.1:{p}"' for p in backend_ports)
    workers = "workers: 1\n" if ctx["workers_key"] else ""
    access = ", access: false" if full else ""
    pool = f"\n      pool: {{idle_timeout: 600s, max_idle: {POOL_IDLE}}}" if full else ""
    return f"""{workers}log: {{format: json, level: warn{access}}}
listeners:
  - name: bench
    mode: http
    listen: ["127.0.0.1:{port}"]
    tls:
      certificates: [{{cert: {ctx['certs']}/ecdsa.pem, key: {ctx['certs']}/ecdsa.key}}]
      min_version: "1.2"
      max_version: "1.3"
    backend:
      servers: [{servers}]{pool}
    max_connections: 200000
"""


def probe_tlsterm(ctx):
    """probe_tlsterm returns (full, None) with the richest tlsterm http-mode
    configuration `tlsterm --check` accepts, or (None, why) when it accepts
    none: the first configuration's error."""
    path = os.path.join(ctx["tmp"], "probe-http.yaml")
    first_error = None
    for full in (True, False):
        with open(path, "w") as f:
            f.write(tlsterm_http_config(ctx, free_port(), [free_port()], full))
        res = run([ctx["tlsterm"], "--check", "-c", path], check=False)
        if res.returncode == 0:
            return full, None
        if first_error is None:
            lines = [l for l in (res.stderr + res.stdout).splitlines() if l.strip()]
            first_error = (f"`tlsterm --check` exited {res.returncode}: "
                           + " | ".join(lines[:3]).replace(path, "config"))
    return None, first_error


def http_proxy_argv(name, ctx, d, port, backend_ports, tlsterm_full):
    """http_proxy_argv writes the http-scenario configuration of |name| into
    |d| and returns its command line: one worker, the ECDSA certificate, h2
    and http/1.1 offered in ALPN, pooled HTTP/1.1 keep-alive to the backend,
    no access log."""
    bport = backend_ports[0]
    if name == "tlsterm":
        path = os.path.join(d, "tlsterm.yaml")
        with open(path, "w") as f:
            f.write(tlsterm_http_config(ctx, port, backend_ports, tlsterm_full))
        return [ctx["tlsterm"], "-c", path]
    if name == "nghttpx":
        # The tcp scenario's nghttpx already is its reverse-proxy mode.
        return proxy_argv(name, ctx, d, port, "ecdsa", backend_ports)
    if name == "haproxy-http":
        path = os.path.join(d, "haproxy.cfg")
        full_pem = os.path.join(ctx["tmp"], "ecdsa-full.pem")
        with open(path, "w") as f:
            f.write(f"""global
  nbthread 1
  maxconn {(common.NOFILE - 200) // 2}
  ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3
  ssl-default-bind-ciphers {TLS12_SUITES}
defaults
  mode http
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
  timeout http-request 600s
frontend fe
  bind 127.0.0.1:{port} ssl crt {full_pem} curves {GROUPS} alpn h2,http/1.1
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:{bport}
""")
        return ["haproxy", "-db", "-f", path]
    if name == "nginx-http":
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(f"""{nginx_common(d)}http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream be {{ server 127.0.0.1:{bport}; keepalive {POOL_IDLE}; }}
  server {{
    listen 127.0.0.1:{port} ssl http2 backlog=4096;
{nginx_tls(ctx, "ecdsa")}    location / {{
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
        return ["nginx", "-c", path, "-p", d, "-e", os.path.join(d, "error.log")]
    raise ValueError(name)


def check_protocols(ctx, url):
    """None if url serves the 100-byte page over h2 and over HTTP/1.1 (curl,
    verifying the certificate), else what went wrong."""
    for flag, want in (("--http2", "2"), ("--http1.1", "1.1")):
        res = run(["curl", "-sS", "--max-time", "5", "--cacert", f"{ctx['certs']}/ca.pem", flag,
                   "-o", "/dev/null", "-w", "%{http_code} %{http_version} %{size_download}",
                   f"{url}/"], check=False)
        if res.returncode != 0 or res.stdout.split() != ["200", want, "100"]:
            return (f"curl {flag}: exit {res.returncode}, got '{res.stdout.strip()}' "
                    f"(want '200 {want} 100') {res.stderr.strip()[:200]}")
    return None


def start_http_proxy(name, ctx, tlsterm_full=None):
    """start_http_proxy starts one proxy of the http scenario and checks it
    with an h2 and an HTTP/1.1 request. It returns (Server, None), or (None,
    why) when it did not start or did not answer both."""
    d = os.path.join(ctx["tmp"], f"{name}-http")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    backend_ports = ctx["backend_ports"][:1]
    try:
        argv = http_proxy_argv(name, ctx, d, port, backend_ports, tlsterm_full)
    except OSError as e:
        return None, f"configuration: {e}"
    proc = Proc(f"{name} (http)", argv, PROXY_CPU, os.path.join(d, "stderr.log"))
    if not wait_listening(proc, port):
        why = "exited" if not proc.alive() else "not listening after 15 s"
        tail = proc.log_tail()
        proc.stop()
        return None, f"{why}: {tail}"
    server = Server(name, proc, port, "ecdsa", "http", backend_ports)
    why = check_protocols(ctx, server.url)
    if why:
        proc.stop()
        return None, why
    return server, None


def h2load_sample(ctx, server, args, alpn):
    """One h2load run of the figure's duration against server: requests/s,
    the requests that did not end in 2xx, the negotiated TLS and ALPN
    (which must be alpn), and p50/p99 from every request's time."""
    d = max(1, int(round(ctx["dur"])))
    log_path = os.path.join(ctx["tmp"], "h2load-http.log")

    def go():
        if os.path.exists(log_path):
            os.unlink(log_path)
        res = run(["h2load", "-t1"] + args + CLIENT_TLS + [f"-D{d}", f"--log-file={log_path}",
                                                            f"{server.url}/"],
                  cpu=LOAD_CPU, check=False, timeout=d + 30)
        out = res.stdout
        rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
        reqs = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        codes = re.search(r"status codes: (\d+) 2xx", out)
        if not rate or not reqs:
            raise RuntimeError(f"h2load exited {res.returncode}: {out[-300:]} {res.stderr[-300:]}")
        tls = {k: (re.search(rf"^{k}: (.*)$", out, re.M) or [None, "?"])[1].strip()
               for k in ("TLS Protocol", "Cipher", "Server Temp Key", "Application protocol")}
        got = (f"{tls['TLS Protocol']} {tls['Cipher']} "
               f"{tls['Server Temp Key'].replace(',', ' ').split()[0]} {tls['Application protocol']}")
        if got != f"{CLIENT_EXPECTS} {alpn}":
            raise RuntimeError(f"negotiated {got}, expected {CLIENT_EXPECTS} {alpn}")
        ok_2xx = int(codes.group(1)) if codes else 0
        if ok_2xx == 0:
            raise RuntimeError(f"no 2xx response: {out[-300:]}")
        times = []
        with open(log_path) as f:
            for line in f:
                cols = line.split()
                if len(cols) >= 3 and cols[1].startswith("2"):
                    times.append(int(cols[2]))
        times.sort()
        pick = (lambda q: times[max(0, math.ceil(q * len(times)) - 1)] / 1000.0
                if times else None)
        return Sample(value=float(rate.group(1)), ops=ok_2xx,
                      errors=int(reqs.group(2)) + int(reqs.group(1)) - ok_2xx,
                      negotiated=got,
                      p50_ms=pick(0.50), p99_ms=pick(0.99))
    s = measured(server, go)
    s["cpu_us_per_op"] = s["proxy_cpu_s"] / max(1, s["ops"]) * 1e6
    return s


HTTP_FIGURES = [
    ("h2_keepalive", f"HTTP mode: h2 keep-alive requests/s, 100-byte responses (h2load, "
                     f"{H2_CLIENTS} connections × {H2_STREAMS} streams)", "req/s", "high",
     lambda c, s: h2load_sample(c, s, [f"-c{H2_CLIENTS}", f"-m{H2_STREAMS}"], "h2")),
    ("h1_keepalive", f"HTTP mode: HTTP/1.1 keep-alive requests/s, 100-byte responses (wrk, "
                     f"{H1_CLIENTS} connections)", "req/s", "high", fig_keepalive),
    ("h2_latency", f"HTTP mode: p99 latency at a fixed {LATENCY_CLIENTS * LATENCY_RPS} req/s "
                   f"(h2load, h2, {LATENCY_CLIENTS} connections, one stream each)", "ms", "low",
     lambda c, s: fig_latency(c, s, ())),
    ("h2_bulk", "HTTP mode: h2 download MB/s, 64 MiB file, TLS 1.3 AES-128-GCM, one connection "
                "(curl --http2)", "MB/s", "high", lambda c, s: fig_bulk(c, s, h2=True)),
    ("http_hs13", "HTTP mode: full handshakes/s, TLS 1.3, ECDSA P-256 + X25519, ALPN h2, "
                  "no request", "handshakes/s", "high",
     lambda c, s: fig_handshake(c, s, "1.3", ["-g", "X25519", "-A", "h2,http/1.1"],
                                ["TLSv1.3", "X25519", "ecdsa", "h2"])),
]


def restart_http_fresh(ctx, server):
    """Replaces server's process by a fresh http-scenario instance, warmed
    up (fig_idle_rss needs a fresh heap, see figures.restart_fresh)."""
    server.proc.stop()
    fresh, why = start_http_proxy(server.name, ctx, ctx.get("tlsterm_http_full"))
    if fresh is None:
        raise RuntimeError(f"restart failed: {why}")
    warm_up(ctx, fresh)
    server.proc, server.port, server.addr, server.url = fresh.proc, fresh.port, fresh.addr, fresh.url


def http_idle_n(ctx):
    """The idle h2 connection count: the tcp scenario's count, smaller in
    a quick run (each proxy is restarted and fills it, 4 times over)."""
    return min(ctx["idle_n"], 500) if ctx["quick"] else ctx["idle_n"]


def run_http(ctx, results, names, backend):
    """run_http measures the http scenario's figures for the proxies in
    names (a subset of HTTP_PEERS) into results["figures"]. A tlsterm without
    http mode is recorded in results["http_unavailable"]; a peer that does
    not start, in results["start_failures"]."""
    servers = []
    for name in names:
        if name == "tlsterm":
            full, why = probe_tlsterm(ctx)
            if full is not None:
                ctx["tlsterm_http_full"] = full
                server, why = start_http_proxy(name, ctx, full)
            if full is None or server is None:
                results["http_unavailable"] = why
                results["notes"].append(f"tlsterm: http mode unavailable: {why}")
                log(f"tlsterm: http mode unavailable: {why}")
                continue
            if not full:
                results["notes"].append("tlsterm http mode: the binary refused `log.access: false` "
                                        "or `backend.pool`, so it ran with its defaults for them")
        else:
            server, why = start_http_proxy(name, ctx)
            if server is None:
                results["start_failures"][f"{name} (http)"] = why
                log(f"{name} (http) did not start: {why}")
                continue
        servers.append(server)
    bad = non_loopback_listeners([backend.pid] + [s.proc.pid for s in servers])
    if bad:
        raise BenchError(f"a process listens beyond loopback: {bad}")
    if not servers:
        return
    log("http scenario, running: " + ", ".join(s.name for s in servers))
    # Warm-up: the pools fill and every lazily made state exists.
    for server in servers:
        try:
            h2load_sample(dict(ctx, dur=1.0), server, [f"-c{H2_CLIENTS}", f"-m{H2_STREAMS}"], "h2")
        except (RuntimeError, OSError) as e:
            log(f"  warm-up of {server.name} (http): {e}")
    for figure in HTTP_FIGURES:
        run_figure(ctx, results, servers, figure)
    n = http_idle_n(ctx)
    run_idle(ctx, results, servers, n, "h2_idle",
             f"HTTP mode: RSS per idle h2 connection at {n:,} connections (one request served, "
             f"SETTINGS exchanged)", restart=restart_http_fresh, alpn="h2")
    for server in servers:
        server.proc.stop()
