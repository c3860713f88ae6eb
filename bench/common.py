"""Settings every part of bench/run shares: where things are, which CPU does
what, the TLS setup every proxy gets, and the run's one error type.

NOFILE is set once by bench/run (procs.nofile_limit) before anything starts;
read it as common.NOFILE, never import the name, so that the value set is
the value seen."""

import os
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BUILD = os.path.join(BENCH, ".build")
PROXY_CPU = "0"
LOAD_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# RLIMIT_NOFILE for every server and client: WANTED_NOFILE when this
# process may raise the hard limit (CAP_SYS_RESOURCE), else the hard limit it
# has (decided in main, see nofile_limit).
WANTED_NOFILE = 300000
NOFILE = 20000
BORINGSSL_INC = "/usr/include/android"
BORINGSSL_LIB = "/usr/lib/x86_64-linux-gnu/android"
TLS12_SUITES = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
GROUPS = "X25519:P-256:P-384"
# Packages bench/run needs beyond scripts/install-deps.sh bench: nginx-light
# builds its stream module as a separate package.
EXTRA_PACKAGES = ["libnginx-mod-stream"]
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
BIG_FILE_BYTES = 64 << 20
SMALL_PAGE = b"x" * 99 + b"\n"  # the 100-byte page
# The fixed rate of the latency figure: LATENCY_CLIENTS connections, each
# sending LATENCY_RPS requests per second (h2load --rps).
LATENCY_CLIENTS = 10
LATENCY_RPS = 500


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A step that the whole run depends on failed."""
