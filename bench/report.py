"""The report: min/median/max per proxy, the per-proxy-core figure,
tlsterm's ratio to the best peer, and the markdown written to bench/results."""

import statistics

from common import LOAD_CPU, PROXY_CPU
from cost_scenario import costs_markdown


def summarize(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio_text(tl, best, better):
    if tl is None or best is None or best == 0 or tl == 0:
        return "–"
    r = tl / best if better == "high" else best / tl
    return f"×{r:.2f}"


def build_summary(results):
    """Adds each figure's per-proxy summaries and tlsterm's ratio to the best
    peer, on the raw median and on the per-proxy-core figure."""
    for key, fig in results["figures"].items():
        better = fig["better"]
        rows = {}
        for name, samples in fig["samples"].items():
            row = {"value": summarize([s["value"] for s in samples])}
            if all("cpu_us_per_op" in s for s in samples):
                row["cpu_us_per_op"] = summarize([s["cpu_us_per_op"] for s in samples])
                row["proxy_cpu_share"] = summarize([s["proxy_cpu_share"] for s in samples])
                row["load_cpu_share"] = summarize([s["load_cpu_share"] for s in samples])
                if all("backend_cpu_share" in s for s in samples):
                    row["backend_cpu_share"] = summarize([s["backend_cpu_share"] for s in samples])
                us = row["cpu_us_per_op"]["median"]
                row["per_core"] = 1e6 / us if us > 0 else None
            if key in LATENCY_KEYS:
                row["p50_ms"] = summarize([s["p50_ms"] for s in samples])
                row["achieved_rps"] = summarize([s["achieved_rps"] for s in samples])
            elif all(s.get("p99_ms") is not None for s in samples):
                row["p50_ms"] = summarize([s["p50_ms"] for s in samples])
                row["p99_ms"] = summarize([s["p99_ms"] for s in samples])
            if key == "resumed13":
                row["resumed_fraction"] = min(s["resumed_fraction"] for s in samples)
            if "negotiated" in samples[0]:
                row["negotiated"] = samples[0]["negotiated"]
            if "tickets_per_conn" in samples[0]:
                row["tickets_per_conn"] = samples[0]["tickets_per_conn"]
            row["errors"] = sum(s.get("errors", 0) for s in samples)
            rows[name] = row
        fig["summary"] = rows
        peers = {n: r for n, r in rows.items() if n != "tlsterm"}
        pick = max if better == "high" else min
        best = pick(peers, key=lambda n: peers[n]["value"]["median"]) if peers else None
        fig["best_peer"] = best
        tl = rows.get("tlsterm")
        fig["ratio"] = (ratio_text(tl["value"]["median"], peers[best]["value"]["median"], better)
                        if tl and best else "–")
        core_peers = {n: r for n, r in peers.items() if r.get("per_core")}
        if core_peers and tl and tl.get("per_core"):
            best_core = max(core_peers, key=lambda n: core_peers[n]["per_core"])
            fig["best_peer_per_core"] = best_core
            fig["ratio_per_core"] = ratio_text(tl["per_core"], core_peers[best_core]["per_core"], "high")


# The figures whose operation is a request, and those of the http scenario
# (where a missing tlsterm row means its http mode is not there yet).
HTTP_FIGURE_KEYS = ("h2_keepalive", "h1_keepalive", "h2_latency", "h2_bulk", "http_hs13",
                    "h2_idle")
REQUEST_FIGURE_KEYS = ("keepalive", "h2_keepalive", "h1_keepalive")
LATENCY_KEYS = ("latency", "h2_latency")
BULK_KEYS = ("bulk", "h2_bulk")

CEILING_FOR = {"hs13_ecdsa": "tls13_ecdsa_hs_per_s", "hs12_ecdsa": "tls13_ecdsa_hs_per_s",
               "hs13_rsa": "tls13_rsa_hs_per_s", "resumed13": "tls13_resumed_hs_per_s",
               "bulk": "aes128gcm_seal_16k", "http_hs13": "tls13_ecdsa_hs_per_s"}

# Issue 10's targets for HTTP mode: (figure, what is compared, the ratio
# tlsterm must reach). "per_core" compares per-proxy-core rates with the best
# peer's; "low" compares medians where lower is better (best peer ÷
# tlsterm); "ceiling" compares the per-core rate with the BoringSSL ceiling.
HTTP_TARGETS = [
    ("h2_keepalive", "per_core", 1.3, "h2 requests/s per proxy core ≥ 1.3× the best peer"),
    ("h1_keepalive", "per_core", 1.2, "HTTP/1.1 keep-alive requests/s per proxy core ≥ 1.2× the best peer"),
    ("http_hs13", "per_core", 1.25, "HTTP-mode full handshakes/s per proxy core ≥ 1.25× the best peer"),
    ("http_hs13", "ceiling", 0.5, "HTTP-mode full handshakes/s per proxy core ≥ 50% of BoringSSL's ceiling"),
    ("h2_idle", "low", 3.0, "KiB per idle h2 connection ≤ ⅓ of the best peer's"),
]


def http_targets(results):
    """The markdown lines of the HTTP-mode targets table, [] when the run
    has none of its figures."""
    figs, c = results["figures"], results.get("ceiling", {})
    out = []
    for key, kind, want, label in HTTP_TARGETS:
        fig = figs.get(key)
        if not fig:
            continue
        rows = fig.get("summary", {})
        tl = rows.get("tlsterm")
        got, best_text = None, "–"
        if kind == "per_core":
            bc = fig.get("best_peer_per_core")
            if tl and tl.get("per_core") and bc:
                got = tl["per_core"] / rows[bc]["per_core"]
                best_text = f"{bc} {fmt(rows[bc]['per_core'])}"
            tl_text = fmt(tl.get("per_core")) if tl else "–"
        elif kind == "ceiling":
            ceil = c.get(CEILING_FOR[key])
            if tl and tl.get("per_core") and ceil:
                got = tl["per_core"] / ceil
                best_text = f"ceiling {fmt(ceil)}"
            tl_text = fmt(tl.get("per_core")) if tl else "–"
        else:
            best = fig.get("best_peer")
            if tl and best and tl["value"]["median"] > 0:
                got = rows[best]["value"]["median"] / tl["value"]["median"]
                best_text = f"{best} {fmt(rows[best]['value']['median'])}"
            tl_text = fmt(tl["value"]["median"]) if tl else "–"
        verdict = "–" if got is None else ("met" if got >= want else "**missed**")
        got_text = "–" if got is None else (f"{got:.0%}" if kind == "ceiling" else f"×{got:.2f}")
        want_text = f"{want:.0%}" if kind == "ceiling" else f"×{want:.2f}"
        out.append(f"| {label} | {tl_text} | {best_text} | {got_text} | {want_text} | {verdict} |")
    if not out:
        return []
    return (["## HTTP mode against issue 10's targets", "",
             "| target | tlsterm | best peer (or ceiling) | tlsterm's ratio | wanted | verdict |",
             "|---|---|---|---|---|---|"] + out + [""])


def markdown(results):
    out = []
    m, v, c = results["machine"], results["versions"], results["ceiling"]
    out.append(f"# tlsterm bench: {results['mode']} run, {results['date']}")
    out.append("")
    out.append(f"- machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, "
               f"{m['os']}, kernel {m['kernel']}; load average at start "
               f"{' '.join(m['loadavg_at_start'])}, at end {' '.join(m.get('loadavg_at_end', []))}")
    out.append(f"- settings: proxy pinned to CPU {PROXY_CPU}; load generator and backend "
               f"(nginx, 1 worker) pinned to CPU {LOAD_CPU}; {results['reps']} repetitions of "
               f"{results['duration_s']} s per figure; all on 127.0.0.1")
    out.append(f"- run took {results.get('elapsed_s', 0):.0f} s")
    busiest = max(float(x) for x in m["loadavg_at_start"][:1] + m.get("loadavg_at_end", [])[:2])
    if busiest > 1.5:
        out.append(f"- **warning: other work was running on this machine during the run** (load "
                   f"average up to {busiest:.1f}; this run's own load is about 1): raw rates and "
                   f"latencies are disturbed; the per-core and RSS figures much less so")
    for name, ver in v.items():
        out.append(f"- {name}: {ver}")
    for note in results.get("notes", []):
        out.append(f"- note: {note}")
    if results.get("start_failures"):
        for name, why in results["start_failures"].items():
            out.append(f"- **{name} did not start**: {why}")
    out.append("")
    if results["figures"]:  # a costs-only run has none
        out.append("## Summary: tlsterm against the best peer (medians)")
        out.append("")
        out.append("| figure | tlsterm | best peer | tlsterm ÷ best | per proxy core: tlsterm | best peer | tlsterm ÷ best | tlsterm vs ceiling |")
        out.append("|---|---|---|---|---|---|---|---|")
        for key, fig in results["figures"].items():
            rows = fig.get("summary", {})
            tl = rows.get("tlsterm")
            best = fig.get("best_peer")
            tl_v = fmt(tl["value"]["median"]) if tl else "failed"
            if not tl and key in HTTP_FIGURE_KEYS and "http_unavailable" in results:
                tl_v = "http mode unavailable"
            best_v = f"{best} {fmt(rows[best]['value']['median'])}" if best else "–"
            core_tl = fmt(tl.get("per_core")) if tl and tl.get("per_core") else "–"
            bc = fig.get("best_peer_per_core")
            core_best = f"{bc} {fmt(rows[bc]['per_core'])}" if bc else "–"
            ceil_key = CEILING_FOR.get(key)
            frac = "–"
            if tl and ceil_key and c.get(ceil_key):
                measure = tl.get("per_core")  # for bulk: MB per CPU-second
                if measure:
                    frac = f"{measure / c[ceil_key]:.0%} of {fmt(c[ceil_key])}"
            out.append(f"| {fig['title']} [{fig['unit']}] | {tl_v} | {best_v} | {fig.get('ratio', '–')} "
                       f"| {core_tl} | {core_best} | {fig.get('ratio_per_core', '–')} | {frac} |")
        out.append("")
        out.append("Per proxy core = operations per second of proxy CPU time (utime+stime of all its "
                   "processes and threads), i.e. the rate the proxy would reach if it had the whole "
                   "core; robust when the load generator saturates first. For RSS and latency, "
                   "lower is better and the ratio is best ÷ tlsterm (above 1: tlsterm better).")
        out.append("")
    out.extend(http_targets(results))
    out.extend(costs_markdown(results))
    for key, fig in results["figures"].items():
        out.append(f"## {fig['title']}")
        out.append("")
        rows = fig.get("summary", {})
        if key.startswith("idle") or key == "h2_idle":
            out.append("| proxy | KiB per idle connection: median | min | max | RSS at 0 (MiB) | RSS at N (MiB) | held | failed |")
            out.append("|---|---|---|---|---|---|---|---|")
            for name, row in rows.items():
                ss = fig["samples"][name]
                out.append(f"| {name} | {fmt(row['value']['median'])} | {fmt(row['value']['min'])} | "
                           f"{fmt(row['value']['max'])} | {fmt(statistics.median(s['rss0_mib'] for s in ss))} | "
                           f"{fmt(statistics.median(s['rss_n_mib'] for s in ss))} | "
                           f"{min(s['held'] for s in ss)} | {row['errors']} |")
        elif key in LATENCY_KEYS:
            out.append("| proxy | p99 ms: median | min | max | p50 ms (median) | achieved req/s | non-200 |")
            out.append("|---|---|---|---|---|---|---|")
            for name, row in rows.items():
                out.append(f"| {name} | {fmt(row['value']['median'])} | {fmt(row['value']['min'])} | "
                           f"{fmt(row['value']['max'])} | {fmt(row['p50_ms']['median'])} | "
                           f"{fmt(row['achieved_rps']['median'])} | {row['errors']} |")
        else:
            per = "MB" if key in BULK_KEYS else ("request" if key in REQUEST_FIGURE_KEYS else "handshake")
            lat = any("p99_ms" in r for r in rows.values())
            lat_h = " | p50 ms (median) | p99 ms: median | min | max" if lat else ""
            extra_h = " | negotiated" if any("negotiated" in r for r in rows.values()) else ""
            if key in HTTP_FIGURE_KEYS and "http_unavailable" in results:
                out.append(f"- **tlsterm: http mode unavailable**: {results['http_unavailable']}")
                out.append("")
            out.append(f"| proxy | {fig['unit']}: median | min | max | proxy CPU share | CPU 1 busy (of it: backend) "
                       f"| proxy CPU µs per {per} | per proxy core{lat_h}{extra_h} |")
            out.append("|---|---|---|---|---|---|---|---|" + ("---|---|---|---|" if lat else "")
                       + ("---|" if extra_h else ""))
            for name, row in rows.items():
                neg = ""
                if lat:
                    p99 = row.get("p99_ms")
                    neg = (f" | {fmt(row['p50_ms']['median'])} | {fmt(p99['median'])} | "
                           f"{fmt(p99['min'])} | {fmt(p99['max'])}" if p99 else " | – | – | – | –")
                if extra_h:
                    neg += f" | {row.get('negotiated', '')}"
                    if key == "resumed13":
                        neg += f"; resumed {row['resumed_fraction']:.1%}"
                    if key == "hs12_ecdsa" and "tickets_per_conn" in row:
                        neg += f"; tickets/conn {row['tickets_per_conn']:.1f}"
                out.append(f"| {name} | {fmt(row['value']['median'])} | {fmt(row['value']['min'])} | "
                           f"{fmt(row['value']['max'])} | {row['proxy_cpu_share']['median']:.0%} | "
                           f"{row['load_cpu_share']['median']:.0%} ({row.get('backend_cpu_share', {}).get('median', 0):.0%}) | "
                           f"{fmt(row['cpu_us_per_op']['median'])} | "
                           f"{fmt(row.get('per_core'))}{neg} |")
        for name, why in fig.get("failures", {}).items():
            out.append(f"\n- {name} failed: {why}")
        out.append("")
    if c:
        out.append("## Ceiling: BoringSSL on CPU 0 (`bssl-tool speed`), and OpenSSL 3 for the peers (`openssl speed`)")
        out.append("")
        out.append("| operation | BoringSSL (tlsterm), per second | OpenSSL 3 (peers), per second |")
        out.append("|---|---|---|")
        co = results.get("ceiling_openssl", {})
        co_key = {"x25519_shared": "x25519_derive"}
        names = {"ecdsa_p256_sign": "ECDSA P-256 sign", "x25519_keygen": "X25519 key generation (base point)",
                 "x25519_shared": "X25519 shared secret (arbitrary point)", "rsa2048_sign": "RSA-2048 sign",
                 "aes128gcm_seal_16k": "AES-128-GCM seal, 16 KiB records (MB/s)",
                 "tls13_ecdsa_hs_per_s": "→ TLS 1.3 ECDSA handshakes (sign + X25519 keygen + shared)",
                 "tls13_rsa_hs_per_s": "→ TLS 1.3 RSA handshakes (sign + X25519 keygen + shared)",
                 "tls13_resumed_hs_per_s": "→ TLS 1.3 resumed handshakes (X25519 keygen + shared)"}
        for k, label in names.items():
            if k in c:
                other = co.get(co_key.get(k, k))
                out.append(f"| {label} | {fmt(c[k])} | {fmt(other) if other else '–'} |")
    b = results.get("backend_check", {})
    if b:
        out.append("")
        out.append(f"Backend check (plain HTTP straight to the backend, wrk on CPU {PROXY_CPU}): "
                   f"{fmt(b.get('plain_req_per_s'))} req/s of the 100-byte page, "
                   f"{fmt(b.get('plain_mb_per_s'))} MB/s of the 64 MiB file; "
                   f"{b.get('verdict', '')}")
    out.append("")
    return "\n".join(out)


def extrapolate_idle(results):
    """Where 100k idle connections could not be measured, states what
    tlsterm's measured growth predicts, from its two counts."""
    figs = results["figures"]
    if "idle100k" in figs or "idle" not in figs or "idle_half" not in figs:
        return
    full = figs["idle"]["samples"].get("tlsterm")
    half = figs["idle_half"]["samples"].get("tlsterm")
    if not full or not half:
        return
    per_conn = statistics.median(s["value"] for s in full)  # KiB
    rss0 = statistics.median(s["rss0_mib"] for s in full)
    n_full, n_half = full[0]["held"], half[0]["held"]
    half_per_conn = statistics.median(s["value"] for s in half)
    estimate = rss0 + 100000 * per_conn / 1024
    results["notes"].append(
        f"tlsterm's idle connections cost {half_per_conn:.2f} KiB each at {n_half:,} and "
        f"{per_conn:.2f} KiB at {n_full:,}; growing linearly from {rss0:.1f} MiB, 100k idle "
        f"connections would take about {estimate:.0f} MiB (an extrapolation, not a measurement)")


def backend_verdict(results):
    check = results.get("backend_check", {})
    figs = results["figures"]
    ka_key = next((k for k in ("keepalive", "h1_keepalive") if k in figs), None)
    ka = figs[ka_key].get("summary", {}) if ka_key else {}
    if not ka or not check.get("plain_req_per_s"):
        return
    best_name = max(ka, key=lambda n: ka[n]["value"]["median"])
    best = ka[best_name]["value"]["median"]
    share = best / check["plain_req_per_s"]
    backend_share = ka[best_name].get("backend_cpu_share", {}).get("median", 0)
    label = "keep-alive" if ka_key == "keepalive" else "HTTP/1.1 keep-alive (http scenario)"
    check["verdict"] = (f"the fastest proxied {label} run ({best_name}) reached {share:.0%} of "
                        f"that rate while the backend used {backend_share:.0%} of CPU {LOAD_CPU}: "
                        f"CPU {LOAD_CPU} as a whole (load generator + backend) saturates before "
                        f"the backend alone would")
