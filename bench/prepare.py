"""Set-up: packages, the tlsterm and tlsload builds, certificates, the
versions and the machine for the report, and the crypto libraries' own
ceiling on the proxy CPU."""

import os
import platform
import re
import subprocess

from common import (BENCH, BORINGSSL_INC, BORINGSSL_LIB, BUILD, EXTRA_PACKAGES, PROXY_CPU, ROOT,
                    BenchError, log)
from procs import run


def dpkg_installed(pkg):
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return res.stdout.strip() == "install ok installed"


def install_dependencies():
    run(["sh", os.path.join(ROOT, "scripts", "install-deps.sh"), "bench"], capture=False)
    missing = [p for p in EXTRA_PACKAGES if not dpkg_installed(p)]
    if missing:
        if os.geteuid() != 0:
            raise BenchError(f"run as root, or install: apt-get install {' '.join(missing)}")
        log(f"installing {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
               check=False, env=env).returncode != 0:
            run(["apt-get", "update", "-q"], env=env)
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, env=env)


def build(tmp, prebuilt):
    os.makedirs(BUILD, exist_ok=True)
    tl_build = os.path.join(BUILD, "tlsterm")
    if prebuilt:
        tlsterm = os.path.abspath(prebuilt)
        log(f"using {tlsterm}; building tlsload")
    else:
        log("building tlsterm (Release) and tlsload")
        run(["cmake", "-S", ROOT, "-B", tl_build, "-DCMAKE_BUILD_TYPE=Release",
             "-DTLSTERM_TESTS=OFF"])
        run(["cmake", "--build", tl_build, "-j2"])
        tlsterm = os.path.join(tl_build, "tlsterm")
    tlsload = os.path.join(BUILD, "tlsload")
    run(["gcc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wno-unused-parameter",
         f"-I{BORINGSSL_INC}", "-o", tlsload, os.path.join(BENCH, "tlsload.c"),
         f"-L{BORINGSSL_LIB}", f"-Wl,-rpath,{BORINGSSL_LIB}", "-lssl", "-lcrypto"])
    certs = os.path.join(BUILD, "certs")
    run(["sh", os.path.join(ROOT, "certs", "gen-dev-certs.sh"), certs])
    # hitch and HAProxy take the chain and the key in one file.
    for kind in ("ecdsa", "rsa"):
        with open(os.path.join(tmp, f"{kind}-full.pem"), "w") as out:
            os.fchmod(out.fileno(), 0o600)
            for part in (f"{kind}.pem", f"{kind}.key"):
                with open(os.path.join(certs, part)) as f:
                    out.write(f.read())
    return tlsterm, tlsload, certs


def first_line(argv, stream="stdout"):
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (res.stdout + "\n" + res.stderr) if stream == "both" else getattr(res, stream)
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[0] if lines else "unknown"


def versions(tlsterm):
    tl = subprocess.run([tlsterm, "--version"], capture_output=True, text=True).stdout
    return {
        "tlsterm": "; ".join(l.strip() for l in tl.splitlines() if l.strip()),
        "android-libboringssl": first_line(["dpkg-query", "-W", "-f=${Version}", "android-libboringssl-dev"]),
        "hitch": first_line(["hitch", "--version"], "both"),
        "haproxy": first_line(["haproxy", "-v"]),
        "nginx": first_line(["nginx", "-v"], "stderr"),
        "stunnel": next((l for l in subprocess.run(["stunnel4", "-version"], capture_output=True, text=True).stderr.splitlines() if l.startswith("stunnel")), "unknown"),
        "nghttpx": first_line(["nghttpx", "--version"]),
        "openssl (peers and wrk, h2load, curl)": first_line(["openssl", "version"]),
        "wrk": first_line(["wrk", "--version"], "both"),
        "h2load": first_line(["h2load", "--version"]),
        "curl": first_line(["curl", "--version"]),
    }


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    os_name = "unknown"
    try:
        with open("/etc/os-release") as f:
            os_name = next(l.split("=", 1)[1].strip().strip('"') for l in f if l.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "memory_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "os": os_name,
            "loadavg_at_start": open("/proc/loadavg").read().split()[:3]}


# ---- the ceiling ----------------------------------------------------------------

# What the http scenario alone needs of the ceiling: the ECDSA handshake.
HANDSHAKE_CEILING_KEYS = ("ecdsa_p256_sign", "x25519_keygen", "x25519_shared")


def ceiling(quick, keys=None):
    """BoringSSL's own speed on the proxy's CPU, for each operation a figure
    depends on (only |keys| of them when given)."""
    wanted = {
        "ecdsa_p256_sign": ("ECDSA P-256", r"ECDSA P-256 signing"),
        "x25519_keygen": ("Curve25519", r"Curve25519 base-point multiplication"),
        "x25519_shared": ("Curve25519", r"Curve25519 arbitrary point multiplication"),
        "rsa2048_sign": ("RSA 2048", r"RSA 2048 signing"),
        "aes128gcm_seal_16k": ("AES-128-GCM", r"AES-128-GCM \(16384 bytes\) seal"),
    }
    out = {}
    outputs = {}
    for key, (filt, pattern) in wanted.items():
        if keys is not None and key not in keys:
            continue
        if filt not in outputs:
            argv = ["bssl-tool", "speed", "-timeout", "1", "-filter", filt]
            if filt == "AES-128-GCM":
                argv += ["-chunks", "16384"]
            outputs[filt] = run(argv, cpu=PROXY_CPU, check=False).stdout
        m = re.search(pattern + r" operations in (\d+)us \(([\d.]+) ops/sec\)(?:: ([\d.]+) MB/s)?",
                      outputs[filt])
        if m:
            out[key] = float(m.group(3)) if m.group(3) else float(m.group(2))
    # Derived: the public-key work of one handshake, alone, on one core.
    if {"ecdsa_p256_sign", "x25519_keygen", "x25519_shared"} <= out.keys():
        kex = 1 / out["x25519_keygen"] + 1 / out["x25519_shared"]
        out["tls13_ecdsa_hs_per_s"] = 1 / (1 / out["ecdsa_p256_sign"] + kex)
        out["tls13_resumed_hs_per_s"] = 1 / kex
        if "rsa2048_sign" in out:
            out["tls13_rsa_hs_per_s"] = 1 / (1 / out["rsa2048_sign"] + kex)
    return out


def openssl_ceiling():
    """The same operations with OpenSSL 3 (`openssl speed`), the library of
    every peer: the peers' ceiling, on the same CPU."""
    out = {}
    res = run(["openssl", "speed", "-seconds", "1", "ecdsap256", "rsa2048", "ecdhx25519"],
              cpu=PROXY_CPU, check=False, timeout=120)
    for key, pattern in (("ecdsa_p256_sign", r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)"),
                         ("rsa2048_sign", r"rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)"),
                         ("x25519_derive", r"253 bits ecdh \(X25519\)\s+\S+\s+([\d.]+)")):
        m = re.search(pattern, res.stdout)
        if m:
            out[key] = float(m.group(1))
    res = run(["openssl", "speed", "-seconds", "1", "-evp", "aes-128-gcm", "-bytes", "16384"],
              cpu=PROXY_CPU, check=False, timeout=60)
    m = re.search(r"AES-128-GCM\s+([\d.]+)k", res.stdout)
    if m:
        out["aes128gcm_seal_16k"] = float(m.group(1)) * 1000 / 1e6
    return out
