"""The costs scenario (issue 11): what PROXY protocol v2 toward the backend
and backend health checks cost, in proxy CPU µs per request, against the
same tlsterm without them. Only tlsterm runs; each variant is an instance of
its own, all forwarding to the one nginx backend (the PROXY variants to a
port of it that expects the header: `listen ... proxy_protocol`).

The variants:
- http: HTTP mode with a shared pool (the http scenario's configuration);
- http+pp2: the same with `proxy_protocol: v2` (every TLV tlsterm can send):
  backend connections are tied to one client connection, so the pool is
  per client: this is the cost the figure shows;
- http+health: the same backend as a named group with an active HTTP check
  every second and passive failure counting;
- tcp, tcp+pp2: tcp mode, one request per new TLS connection (tlsload
  `handshake -r`), where the header is written once per connection.

Each figure runs repetition 1 of every variant, then repetition 2, as the
other scenarios do. The verdict is the median, over the repetitions, of a
variant's µs per request divided by its base's in the same repetition (run
seconds apart, so a slow drift of the machine cancels out): issue 11 wants
it within 5%."""

import os
import statistics

from common import PROXY_CPU, log
from figures import Sample, check_negotiated, fig_keepalive, measured, tlsload
from http_scenario import H2_CLIENTS, H2_STREAMS, POOL_IDLE, check_protocols, h2load_sample
from peers import Server
from procs import Proc, free_port, run, wait_listening

COST_LIMIT = 1.05  # issue 11: within 5% of without


def tlsterm_cost_config(ctx, port, variant, plain_port, pp_port):
    tls = f"""    tls:
      certificates: [{{cert: {ctx['certs']}/ecdsa.pem, key: {ctx['certs']}/ecdsa.key}}]
      min_version: "1.2"
      max_version: "1.3"
"""
    http = variant.startswith("http")
    mode = "    mode: http\n" if http else ""
    server = f"127.0.0.1:{pp_port if variant.endswith('pp2') else plain_port}"
    pool = f"pool: {{idle_timeout: 600s, max_idle: {POOL_IDLE}}}" if http else ""
    groups = ""
    if variant == "http+health":
        groups = f"""backends:
  app:
    servers: ["{server}"]
    {pool}
    health:
      check: {{type: http, path: /, interval: 1s, timeout: 1s}}
      passive: {{failures: 3, cooldown: 10s}}
"""
        backend = "    backend: app\n"
    else:
        keys = [f'servers: ["{server}"]']
        if pool:
            keys.append(pool)
        if variant.endswith("pp2"):
            keys += ["proxy_protocol: v2", "proxy_protocol_unique_id: true",
                     "proxy_protocol_crc32c: true"]
        backend = f"    backend: {{{', '.join(keys)}}}\n"
    access = ", access: false" if http else ""
    return f"""workers: 1
log: {{format: json, level: warn{access}}}
{groups}listeners:
  - name: bench
{mode}    listen: ["127.0.0.1:{port}"]
{tls}{backend}    max_connections: 200000
"""


def start_variant(ctx, variant):
    d = os.path.join(ctx["tmp"], f"cost-{variant}")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    path = os.path.join(d, "tlsterm.yaml")
    with open(path, "w") as f:
        f.write(tlsterm_cost_config(ctx, port, variant, ctx["backend_ports"][0],
                                    ctx["backend_pp_port"]))
    res = run([ctx["tlsterm"], "--check", "-c", path], check=False)
    if res.returncode != 0:
        lines = [l for l in (res.stderr + res.stdout).splitlines() if l.strip()]
        return None, "`tlsterm --check`: " + " | ".join(lines[:3]).replace(path, "config")
    proc = Proc(f"tlsterm ({variant})", [ctx["tlsterm"], "-c", path], PROXY_CPU,
                os.path.join(d, "stderr.log"))
    if not wait_listening(proc, port):
        tail = proc.log_tail()
        proc.stop()
        return None, f"did not listen: {tail}"
    server = Server(variant, proc, port, "ecdsa", "cost", ctx["backend_ports"][:1])
    if variant.startswith("http"):
        why = check_protocols(ctx, server.url)
    else:
        res = run(["curl", "-sS", "--max-time", "5", "--cacert", f"{ctx['certs']}/ca.pem",
                   "-o", "/dev/null", "-w", "%{http_code}", f"{server.url}/"], check=False)
        why = None if res.stdout == "200" else f"curl: {res.returncode} {res.stdout} {res.stderr[:200]}"
    if why:
        proc.stop()
        return None, why
    return server, None


def fig_conn_request(ctx, server):
    """New TLS connections with one request each (tlsload handshake -r):
    tcp mode writes the PROXY header once per connection."""
    d = ctx["dur"]

    def go():
        r = tlsload(ctx, ["handshake", "-a", server.addr, "-c", "32", "-d", str(d), "-v", "1.3",
                          "-g", "X25519", "-r"], timeout=d + 30)
        check_negotiated(r, ["TLSv1.3"])
        return Sample(value=r["rate"], ops=r["completed"], errors=r["errors"])
    s = measured(server, go)
    s["cpu_us_per_op"] = s["proxy_cpu_s"] / max(1, s["ops"]) * 1e6
    return s


# (figure key, title, variants with the base first, sample function)
COST_FIGURES = [
    ("h2", f"HTTP mode, h2 (h2load, {H2_CLIENTS} connections × {H2_STREAMS} streams)",
     ["http", "http+pp2", "http+health"],
     lambda c, s: h2load_sample(c, s, [f"-c{H2_CLIENTS}", f"-m{H2_STREAMS}"], "h2")),
    ("h1", "HTTP mode, HTTP/1.1 keep-alive (wrk, 50 connections)",
     ["http", "http+pp2", "http+health"], fig_keepalive),
    ("tcp_conn", "tcp mode, a new TLS 1.3 connection per request (tlsload -r, 32 at once)",
     ["tcp", "tcp+pp2"], fig_conn_request),
]


def run_costs(ctx, results):
    """run_costs fills results["costs"]: per figure and variant, the samples,
    and the median µs per request of each variant against its base."""
    costs = results.setdefault("costs", {"figures": {}, "failures": {}})
    servers = {}
    for variant in ["http", "http+pp2", "http+health", "tcp", "tcp+pp2"]:
        server, why = start_variant(ctx, variant)
        if server is None:
            costs["failures"][variant] = why
            log(f"costs: {variant} did not start: {why}")
            continue
        servers[variant] = server
    for key, title, variants, fn in COST_FIGURES:
        log(f"costs figure {key}: {title}")
        fig = costs["figures"].setdefault(key, {"title": title, "samples": {}, "failures": {}})
        running = [servers[v] for v in variants if v in servers]
        for server in running:  # warm-up: pools fill, checks start
            try:
                fn(dict(ctx, dur=1.0), server)
            except (RuntimeError, OSError) as e:
                log(f"  warm-up of {server.name}: {e}")
        for rep in range(ctx["reps"]):
            for server in running:
                try:
                    s = fn(ctx, server)
                except (RuntimeError, OSError, ValueError) as e:
                    fig["failures"][server.name] = str(e)[:300]
                    log(f"  {server.name}: failed: {str(e)[:200]}")
                    continue
                fig["samples"].setdefault(server.name, []).append(
                    {"rep": rep, "value": s["value"], "cpu_us_per_op": s["cpu_us_per_op"],
                     "errors": s.get("errors", 0)})
                log(f"  rep {rep + 1} {server.name}: {s['value']:.0f}/s, "
                    f"{s['cpu_us_per_op']:.2f} us/request")
    for server in servers.values():
        server.proc.stop()


def costs_markdown(results):
    """The markdown lines of the costs section, [] without one."""
    costs = results.get("costs")
    if not costs:
        return []
    out = ["## What PROXY v2 and health checks cost (proxy CPU µs per request, tlsterm only)", "",
           "| figure | variant | µs/request: median | min | max | against the base: median of "
           "the rounds' ratios (min–max) | "
           f"within {COST_LIMIT - 1:.0%} | rate (median) | errors |",
           "|---|---|---|---|---|---|---|---|---|"]
    for key, title, variants, _ in COST_FIGURES:
        fig = costs["figures"].get(key)
        if not fig:
            continue
        base = None
        for v in variants:
            ss = fig["samples"].get(v)
            if not ss:
                why = fig["failures"].get(v) or costs["failures"].get(v, "no samples")
                out.append(f"| {title} | {v} | failed: {why[:120]} | | | | | | |")
                continue
            us = [s["cpu_us_per_op"] for s in ss]
            med = statistics.median(us)
            if base is None:
                base = {s["rep"]: s["cpu_us_per_op"] for s in ss}
                against, verdict = "base", "–"
            else:
                # Each repetition against the base's in the same round (they
                # ran seconds apart), so a drift of the machine cancels out.
                ratios = [s["cpu_us_per_op"] / base[s["rep"]] for s in ss if s["rep"] in base]
                ratio = statistics.median(ratios) if ratios else None
                against = (f"×{ratio:.3f} (×{min(ratios):.2f}–×{max(ratios):.2f})"
                           if ratio else "–")
                verdict = "–" if ratio is None else ("yes" if ratio <= COST_LIMIT else "**no**")
            out.append(f"| {title} | {v} | {med:.2f} | {min(us):.2f} | {max(us):.2f} | {against} "
                       f"| {verdict} | {statistics.median(s['value'] for s in ss):,.0f} "
                       f"| {sum(s['errors'] for s in ss)} |")
    out.append("")
    return out
