"""The tcp scenario: every proxy forwarding bytes (or, for the http-mode
peers, HTTP/1.1) with the ECDSA certificate for handshakes, resumption,
keep-alive, latency, bulk and idle memory; a second set of instances with
the RSA certificate; tlsterm alone at 50k and 100k idle connections where
the descriptor limit allows."""

import common
from common import BenchError, log
from figures import FIGURES, RSA_FIGURE, run_figure, run_idle, warm_up
from peers import start_proxy
from procs import non_loopback_listeners


def run_tcp(ctx, results, names, backend):
    """run_tcp measures every figure of the tcp scenario for the proxies in
    names into results["figures"]; a proxy that does not start is noted in
    results["start_failures"], except tlsterm, which ends the run."""
    # All proxies run at once, each on its own port, idle unless measured.
    servers = []
    for name in names:
        server, why = start_proxy(name, ctx, "ecdsa", "ecdsa")
        if server is None:
            results["start_failures"][name] = why
            log(f"{name} did not start: {why}")
            if name == "tlsterm":
                raise BenchError(f"tlsterm did not start: {why}")
            continue
        warm_up(ctx, server)
        servers.append(server)
    bad = non_loopback_listeners([backend.pid] + [s.proc.pid for s in servers])
    if bad:
        raise BenchError(f"a process listens beyond loopback: {bad}")
    log("running: " + ", ".join(s.name for s in servers))

    for figure in FIGURES:
        run_figure(ctx, results, servers, figure)
    run_idle(ctx, results, servers, ctx["idle_n"], "idle",
             f"RSS per idle TLS connection at {ctx['idle_n']:,} connections")
    # tlsterm at a second count, to check that memory grows linearly and to
    # extrapolate where 50k and 100k cannot be measured.
    tl = [s for s in servers if s.name == "tlsterm"]
    if tl:
        half = ctx["idle_n"] // 2
        run_idle(ctx, results, tl, half, "idle_half",
                 f"tlsterm alone: RSS per idle TLS connection at {half:,} connections")
    for server in servers:
        server.proc.stop()

    # RSA: a second set of instances with the RSA certificate only.
    rsa_servers = []
    for name in names:
        server, why = start_proxy(name, ctx, "rsa", "rsa")
        if server is None:
            results["start_failures"][f"{name} (RSA)"] = why
            continue
        warm_up(ctx, server)
        rsa_servers.append(server)
    run_figure(ctx, results, rsa_servers, RSA_FIGURE)
    for server in rsa_servers:
        server.proc.stop()

    # tlsterm alone at 50k and 100k idle connections, with four backend
    # addresses so that its backend side does not run out of source ports.
    big_ns = [n for n in (50000, 100000) if 2 * n + 800 <= common.NOFILE]
    if not ctx["quick"] and not big_ns:
        results["notes"].append(
            f"tlsterm at 50k and 100k idle connections: not measured, because the "
            f"RLIMIT_NOFILE hard limit here is {common.NOFILE} and this process may not raise it "
            f"(no CAP_SYS_RESOURCE): a tcp-mode proxy needs two descriptors per connection.")
    if big_ns:
        big, why = start_proxy("tlsterm", ctx, "ecdsa", "big", ctx["backend_ports"])
        if big is not None:
            for n in big_ns:
                run_idle(ctx, results, [big], n, f"idle{n // 1000}k",
                         f"tlsterm alone: RSS per idle TLS connection at {n:,} connections")
            big.proc.stop()
        else:
            results["start_failures"]["tlsterm (50k/100k)"] = why
