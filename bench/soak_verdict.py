"""What bench/soak concludes from a run: the log scanned against the list of
expected events, the clients' failures sorted into expected and not, the
certificate swaps checked against the serials the clients saw, RSS growth
and descriptors; then samples.csv, soak.png and summary.md.

The pass criteria (bench/README.md, "Soak"):
  1. RSS after warm-up grows < 5%: the median of the first minute after the
     warm-up against the median of the last minute of load. Warm-up: the
     first 2 minutes (20% of a run shorter than 10 minutes; the windows are
     then a sixth of the run each).
  2. Descriptors come back to the baseline (the fewest open over 3 s of the
     started, idle tlsterm) within 30 s of the end of the load.
  3. Every body byte-exact, and no client failure other than those a
     backend restart causes (in its window).
  4. No warn or error line in tlsterm's log, and no request answered other
     than 200, except the events listed in EXPECTED; the bad clients' reasons
     must each be seen, and a backend_server_down for every restart.
  5. Every SIGHUP reload and certificate swap went through: no reload
     failed, each new serial reached /metrics and the clients.
  6. tlsterm ran throughout and exited 0 on SIGTERM."""

import csv
import datetime
import json
import os
import statistics

# Restart window: from the stop, until this long after both servers are up
# again (pooled connections and health state settle within a few seconds).
WINDOW_BEFORE_S = 2
WINDOW_AFTER_S = 10

# Every warn/error line the run may cause: (event, field, values or None for
# any, cause, "bad" (must be seen), "restart" (only inside a restart window)).
EXPECTED = [
    ("handshake_failed", "reason", {"malformed"}, "garbage bytes (bad client)", "bad"),
    ("handshake_failed", "reason", {"http_request_on_tls_port"},
     "plain HTTP to a TLS port (bad client)", "bad"),
    ("handshake_failed", "reason", {"protocol_version"}, "a TLS 1.1 ClientHello (bad client)", "bad"),
    ("backend_server_down", None, None, "a backend server stopped (checks or passive failures)",
     "restart"),
    ("backend_connect_failed", "error", {"Connection refused"},
     "a connect to the stopped server, retried on the other", "restart"),
    # May happen, rarely (see EXPECTED_REQUESTS): a request whose backend
    # connection the stopping server reset before any response byte.
    ("backend_reset", None, None, "a backend connection the stopping server reset",
     "restart"),
]
# Access-log lines other than status 200 that the run may cause.
EXPECTED_REQUESTS = [
    (408, "header_timeout", "slowloris: the request head not complete in timeouts.request_header",
     "bad"),
    # The 502 of such a reset, in a restart window, for a POST only: not
    # idempotent, so not sent again (README, HTTP mode). An idempotent
    # request reset before any response byte goes to the other server (on a
    # new connection) or again to the same one (the keep-alive race on a
    # reused connection): its 502 fails the run.
    (502, "backend_reset", "the 502 answered to such a request", "restart"),
]
# Client failures a backend restart may cause, inside its window.
RESTART_CLIENT_FAILURES = {
    # tcp mode forwards the stopping server's close of an idle keep-alive
    # connection: a request sent at that moment gets no answer.
    ("tcp", "closed_before_response", ""),
    # The 502 of EXPECTED_REQUESTS' backend_reset (the log tells the
    # allowed cases from the others).
    ("h1", "status_502", ""),
    ("h2", "status_502", ""),
}


def parse_ts(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def in_window(t, restarts):
    for w in restarts:
        end = w.get("t_up") or w.get("t_started") or w["t_stop"] + 60
        if w["t_stop"] - WINDOW_BEFORE_S <= t <= end + WINDOW_AFTER_S:
            return True
    return False


def scan_log(log_path, restarts):
    """scan_log returns (counts of expected lines by cause, unexpected lines,
    totals by event)."""
    expected = {}
    unexpected = []
    events = {}
    with open(log_path, errors="replace") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                unexpected.append(("not JSON", raw))
                continue
            ev, level = line.get("event"), line.get("level")
            events[ev] = events.get(ev, 0) + 1
            t = parse_ts(line["ts"]) if "ts" in line else 0
            if ev == "request":
                if line.get("status") == 200 and not line.get("reason"):
                    continue
                for status, reason, cause, kind in EXPECTED_REQUESTS:
                    if kind == "restart" and (not in_window(t, restarts) or
                                              line.get("method") != "POST"):
                        continue
                    if line.get("status") == status and line.get("reason") == reason:
                        expected[cause] = expected.get(cause, 0) + 1
                        break
                else:
                    unexpected.append(("request", raw))
                continue
            if level not in ("warn", "error"):
                continue
            for event, field, values, cause, kind in EXPECTED:
                if ev != event or (field and line.get(field) not in values):
                    continue
                if kind == "restart" and not in_window(t, restarts):
                    continue
                expected[cause] = expected.get(cause, 0) + 1
                break
            else:
                unexpected.append((ev, raw))
    return expected, unexpected, events


def sort_failures(failures, restarts):
    """(expected by kind, unexpected list) of the clients' failures."""
    expected, unexpected = {}, []
    for f in failures:
        if (any(f["client"] == c and f["kind"] == k and f["detail"].startswith(d)
                for c, k, d in RESTART_CLIENT_FAILURES) and in_window(f["t"], restarts)):
            key = f"{f['client']} {f['kind']}"
            expected[key] = expected.get(key, 0) + 1
        else:
            unexpected.append(f)
    return expected, unexpected


def check_swaps(swaps, serials):
    """For each swap: whether /metrics showed it, how many connections saw
    its serial, and how many connections made over 1 s after the swap was
    confirmed (and before the next swap) still saw an older one."""
    out = []
    swaps = sorted(swaps, key=lambda s: s["t_swap"])
    for i, s in enumerate(swaps):
        until = swaps[i + 1]["t_swap"] if i + 1 < len(swaps) else float("inf")
        seen = stale = 0
        if s["t_confirmed"]:
            for t, _, serial in serials:
                if s["t_confirmed"] + 1 < t < until:
                    if int(serial, 16) == s["serial"]:
                        seen += 1
                    else:
                        stale += 1
        out.append(dict(s, seen=seen, stale=stale))
    return out


def median_between(samples, key, lo, hi):
    vals = [s[key] for s in samples if lo <= s["t_s"] <= hi and s["phase"] == "load"]
    return statistics.median(vals) if vals else None


def write_csv(path, samples):
    cols = ["t_s", "phase", "rss_kib", "rss_anon_kib", "rss_file_kib", "fds", "threads",
            "cpu_pct", "connections", "requests", "handshakes", "reloads_ok"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for s in samples:
            w.writerow([s.get(c, "") for c in cols])


def plot(path, samples, run_info, events, warmup, windows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    series = [("RSS (MiB)", None),
              ("descriptors", [s["fds"] for s in samples]),
              ("connections / threads", None),
              ("CPU (% of one core)", [s["cpu_pct"] for s in samples])]
    wall0 = run_info["wall0"]
    for i, (ax, (label, ys)) in enumerate(zip(axes, series)):
        if i == 0:
            ax.plot(t, [s["rss_kib"] / 1024 for s in samples], marker=".", markersize=3,
                    label="VmRSS")
            ax.plot(t, [s["rss_anon_kib"] / 1024 for s in samples], marker=".", markersize=3,
                    label="of it anonymous (heap)")
            ax.legend(loc="center right", fontsize=8)
        elif ys is None:
            ax.plot(t, [s["connections"] for s in samples], label="connections (/metrics)")
            ax.plot(t, [s["threads"] for s in samples], label="threads")
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.plot(t, ys, marker=".", markersize=3)
        ax.set_ylabel(label, fontsize=9)
        ax.axvspan(0, warmup / 60, color="0.9")
        for w in events["restarts"]:
            ax.axvspan((w["t_stop"] - wall0) / 60, ((w.get("t_up") or w["t_stop"]) - wall0) / 60,
                       color="tab:red", alpha=0.15)
        for s in events["swaps"]:
            ax.axvline((s["t_swap"] - wall0) / 60, color="tab:green", lw=0.8, ls="--")
        ax.axvline(run_info["duration_s"] / 60, color="k", lw=0.8)
        ax.grid(alpha=0.3)
    lo, hi = windows
    axes[0].axhline(lo / 1024, color="tab:blue", lw=0.6, ls=":")
    axes[0].axhline(hi / 1024, color="tab:orange", lw=0.6, ls=":")
    axes[1].axhline(run_info["fd_baseline"], color="tab:orange", lw=0.6, ls=":")
    axes[-1].set_xlabel("minutes (grey: warm-up; red: a backend server down; green: certificate "
                        "swap; black: end of load)", fontsize=9)
    fig.suptitle(f"tlsterm soak, {run_info['date']}, {run_info['minutes']:g} min", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_results(out, run_info, samples, events, load, log_path):
    """write_results writes samples.csv, soak.png and summary.md into |out|
    and returns whether the run passed."""
    duration = run_info["duration_s"]
    warmup = min(120.0, 0.2 * duration)
    window = min(60.0, (duration - warmup) / 4)
    rss_early = median_between(samples, "rss_kib", warmup, warmup + window)
    rss_late = median_between(samples, "rss_kib", duration - window, duration)
    growth = (rss_late / rss_early - 1) if rss_early and rss_late else None
    restarts = events["restarts"]
    log_expected, log_unexpected, log_events = scan_log(log_path, restarts)
    fail_expected, fail_unexpected = sort_failures(load["failures"], restarts)
    swaps = check_swaps(events["swaps"], load["serials"])
    counts = load["counts"]
    mismatches = sum(1 for f in load["failures"] if f["kind"] == "mismatch")
    requests = sum(c.get("requests", 0) for c in counts.values())
    reloads_failed = log_events.get("reload_failed", 0)
    reloads_done = log_events.get("reload_done", 0)

    missing = [cause for _, _, _, cause, kind in EXPECTED + [(0, 0, 0, c, k) for _, _, c, k in
                                                            EXPECTED_REQUESTS]
               if kind == "bad" and not log_expected.get(cause)]
    downs = log_expected.get(next(c for e, _, _, c, _ in EXPECTED if e == "backend_server_down"), 0)
    criteria = [
        ("RSS growth after warm-up < 5%",
         growth is not None and growth < 0.05,
         f"{rss_early / 1024:.1f} → {rss_late / 1024:.1f} MiB ({growth * 100:+.1f}%)"
         if growth is not None else "not enough samples"),
        ("descriptors back to the baseline after the load",
         run_info["fds_back"] and run_info["end_fds"] <= run_info["fd_baseline"],
         f"baseline {run_info['fd_baseline']}, after the load {run_info['end_fds']}"),
        ("every body byte-exact", mismatches == 0 and requests > 0,
         f"{requests:,} requests checked, {mismatches} mismatches"),
        ("no client failure but those a backend restart causes", not fail_unexpected,
         f"{len(fail_unexpected)} unexpected; expected: "
         + (", ".join(f"{k} {v}" for k, v in sorted(fail_expected.items())) or "none")),
        ("no warn/error line or non-200 request but the expected ones", not log_unexpected,
         f"{len(log_unexpected)} unexpected lines"),
        ("every bad client's reason seen", not missing,
         "all seen" if not missing else "missing: " + "; ".join(missing)),
        ("a backend_server_down for every restart", downs >= len(restarts) and restarts,
         f"{len(restarts)} restarts, {downs} backend_server_down lines"),
        ("reloads: none failed", reloads_failed == 0 and reloads_done >= len(events["reloads"]),
         f"{len(events['reloads'])} SIGHUP, {reloads_done} reload_done, {reloads_failed} reload_failed"),
        ("certificate swaps reached /metrics and the clients",
         swaps and all(s["t_confirmed"] and s["seen"] > 0 and s["stale"] == 0 for s in swaps),
         "; ".join(f"{s['serial']:X}: {s['seen']} connections"
                   + (f", {s['stale']} stale" if s["stale"] else "")
                   + ("" if s["t_confirmed"] else ", not in /metrics") for s in swaps)),
        ("tlsterm ran throughout and exited 0", run_info["exit_code"] == 0 and not events["problems"],
         f"exit {run_info['exit_code']}" + ("; " + "; ".join(events["problems"])
                                            if events["problems"] else "")),
    ]
    ok = all(bool(c[1]) for c in criteria)

    write_csv(os.path.join(out, "samples.csv"), samples)
    plot(os.path.join(out, "soak.png"), samples, run_info, events, warmup,
         (rss_early or 0, rss_late or 0))

    load_samples = [s for s in samples if s["phase"] == "load"]
    first, last = samples[0], load_samples[-1] if load_samples else samples[-1]
    md = [f"# tlsterm soak, {run_info['date']}: **{'PASS' if ok else 'FAIL'}**", "",
          f"`bench/soak --minutes {run_info['minutes']:g}`; {run_info['version']}; load average at "
          f"the end {' '.join(run_info['loadavg'])}.", "",
          "![samples](soak.png)", "", "| criterion | verdict | figures |", "|---|---|---|"]
    md += [f"| {name} | {'pass' if good else '**FAIL**'} | {fig} |" for name, good, fig in criteria]
    cpu = [s["cpu_pct"] for s in load_samples[1:]]
    md += ["", "| figure | value |", "|---|---|",
           f"| RSS at start / end of load / after | {first['rss_kib'] / 1024:.1f} / "
           f"{last['rss_kib'] / 1024:.1f} / {samples[-1]['rss_kib'] / 1024:.1f} MiB |",
           f"| anonymous RSS (heap) at start / end of load / after | "
           f"{first['rss_anon_kib'] / 1024:.1f} / {last['rss_anon_kib'] / 1024:.1f} / "
           f"{samples[-1]['rss_anon_kib'] / 1024:.1f} MiB |",
           f"| RSS median, first minute after warm-up ({warmup:.0f} s) / last minute | "
           + (f"{rss_early / 1024:.2f} / {rss_late / 1024:.2f} MiB |" if growth is not None else "- |"),
           f"| descriptors: baseline / max under load / after | {run_info['fd_baseline']} / "
           f"{max(s['fds'] for s in samples)} / {run_info['end_fds']} |",
           f"| threads: start / max / end | {first['threads']} / {max(s['threads'] for s in samples)}"
           f" / {samples[-1]['threads']} |",
           f"| connections open: max | {max(s['connections'] for s in samples)} |",
           "| CPU of one core: median / max | "
           + (f"{statistics.median(cpu):.0f}% / {max(cpu):.0f}% |" if cpu else "- |"),
           f"| requests checked (tcp / h1 / h2) | "
           f"{counts.get('tcp', {}).get('requests', 0):,} / {counts.get('h1', {}).get('requests', 0):,}"
           f" / {counts.get('h2', {}).get('requests', 0):,} |",
           f"| connections made (tcp / h1 / h2) | "
           f"{counts.get('tcp', {}).get('connections', 0):,} / "
           f"{counts.get('h1', {}).get('connections', 0):,} / "
           f"{counts.get('h2', {}).get('connections', 0):,} |",
           f"| body bytes checked | {sum(c.get('bytes', 0) for c in counts.values()) / 1e6:,.1f} MB |",
           f"| tlsterm's requests / handshakes (/metrics) | {last['requests']:,} / "
           f"{last['handshakes']:,} |",
           f"| h2 streams refused by a GOAWAY (reload with new TLS settings; retried) | "
           f"{counts.get('h2', {}).get('refused_by_goaway', 0)} |",
           f"| HTTP/1.1 responses with Connection: close (same) | "
           f"{sum(c.get('closed_by_server', 0) for c in counts.values())} |",
           "| bad clients (each answered as expected) | "
           + ", ".join(f"{k} {v}" for k, v in sorted(counts.get('bad', {}).items())
                       if k != "failures")
           + f", slowloris 408 {counts.get('slow', {}).get('answered_408', 0)} |",
           f"| reloads (SIGHUP) / certificate swaps / backend restarts | "
           f"{len(events['reloads'])} / {len(events['swaps'])} / {len(restarts)} |", ""]
    md += ["## Expected log lines and failures", "",
           "| cause | lines seen |", "|---|---|"]
    for _, _, _, cause, kind in EXPECTED:
        md.append(f"| {cause}{' (inside a restart window)' if kind == 'restart' else ''} | "
                  f"{log_expected.get(cause, 0)} |")
    for status, reason, cause, _ in EXPECTED_REQUESTS:
        md.append(f"| {cause} (`request` {status} {reason}) | {log_expected.get(cause, 0)} |")
    for key, n in sorted(fail_expected.items()):
        md.append(f"| client failure inside a restart window: {key} | {n} |")
    md += ["", "Restart windows: " + "; ".join(
        f"{w['server']} stopped at {w['t_stop'] - run_info['wall0']:.0f} s, up again at "
        f"{(w.get('t_up') or w['t_stop']) - run_info['wall0']:.0f} s" for w in restarts), ""]
    if log_unexpected:
        md += ["## Unexpected log lines (first 30)", "", "```"]
        md += [raw[:400] for _, raw in log_unexpected[:30]] + ["```", ""]
    if fail_unexpected:
        md += ["## Unexpected client failures (first 30)", "", "| t (s) | client | kind | detail |",
               "|---|---|---|---|"]
        md += [f"| {f['t'] - run_info['wall0']:.1f} | {f['client']} | {f['kind']} | "
               f"{f['detail'].replace('|', '/')} |" for f in fail_unexpected[:30]]
        md.append("")
    md += ["Log lines by event: " + ", ".join(f"{k} {v}" for k, v in sorted(log_events.items())), ""]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    return ok
