"""The servers under test: the plain nginx backend every proxy forwards to,
each proxy's configuration for the tcp scenario (bench/README.md, "Fairness
rules"), and starting one proxy and checking it with a first request."""

import os

import common
from common import (GROUPS, LOAD_CPU, PROXY_CPU, SMALL_PAGE, BIG_FILE_BYTES, STREAM_MODULE,
                    TLS12_SUITES, BenchError)
from procs import Proc, free_port, run, wait_listening


def start_backend(tmp, num_ports, num_pp_ports=0):
    """start_backend starts the nginx backend with |num_ports| plain ports
    and |num_pp_ports| that expect a PROXY protocol header (the costs
    scenario); it returns (proc, ports, pp_ports)."""
    root = os.path.join(tmp, "backend")
    os.makedirs(os.path.join(root, "www"), exist_ok=True)
    os.chmod(root, 0o755)
    os.chmod(os.path.join(root, "www"), 0o755)
    with open(os.path.join(root, "www", "index.html"), "wb") as f:
        f.write(SMALL_PAGE)
    with open(os.path.join(root, "www", "big"), "wb") as f:
        for _ in range(BIG_FILE_BYTES >> 20):
            f.write(os.urandom(1 << 20))
    ports = [free_port() for _ in range(num_ports)]
    pp_ports = [free_port() for _ in range(num_pp_ports)]
    listens = "\n".join([f"    listen 127.0.0.1:{p} backlog=4096;" for p in ports]
                        + [f"    listen 127.0.0.1:{p} proxy_protocol backlog=4096;"
                           for p in pp_ports])
    conf = f"""# The plain HTTP backend of bench/run: one worker, no logs, keep-alive.
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
worker_rlimit_nofile {common.NOFILE};
events {{ worker_connections {common.NOFILE - 100}; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  client_body_temp_path {root}/client_body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  types {{ text/html html; }}
  default_type application/octet-stream;
  server {{
{listens}
    root {root}/www;
    location / {{ }}
  }}
}}
"""
    path = os.path.join(root, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    proc = Proc("backend", ["nginx", "-c", path, "-p", root, "-e", os.path.join(root, "error.log")],
                LOAD_CPU, os.path.join(root, "stderr.log"))
    for p in ports + pp_ports:
        if not wait_listening(proc, p):
            raise BenchError(f"the nginx backend did not start: {proc.log_tail()}")
    return proc, ports, pp_ports


# ---- the proxies ----------------------------------------------------------------

def tlsterm_config(ctx, port, cert, backend_ports, workers_key):
    servers = ", ".join(f'"127.0.0.1:{p}"' for p in backend_ports)
    workers = "workers: 1\n" if workers_key else ""
    return f"""{workers}log: {{format: json, level: warn}}
listeners:
  - name: bench
    listen: ["127.0.0.1:{port}"]
    tls:
      certificates: [{{cert: {ctx['certs']}/{cert}.pem, key: {ctx['certs']}/{cert}.key}}]
      min_version: "1.2"
      max_version: "1.3"
    backend: {{servers: [{servers}]}}
    max_connections: 200000
"""


def nginx_common(d):
    return f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile {common.NOFILE};
events {{ worker_connections {common.NOFILE - 100}; }}
"""


def nginx_tls(ctx, cert):
    return f"""    ssl_certificate {ctx['certs']}/{cert}.pem;
    ssl_certificate_key {ctx['certs']}/{cert}.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {TLS12_SUITES};
    ssl_ecdh_curve {GROUPS.replace('P-256', 'prime256v1').replace('P-384', 'secp384r1')};
"""


def proxy_argv(name, ctx, d, port, cert, backend_ports):
    """proxy_argv writes the configuration of peer |name| into |d| and
    returns its command line: one worker, TLS 1.2 and 1.3, the same
    certificate, suites and groups as tlsterm, the same backend, no
    per-connection logging."""
    bport = backend_ports[0]
    full_pem = os.path.join(ctx["tmp"], f"{cert}-full.pem")
    if name == "tlsterm":
        path = os.path.join(d, "tlsterm.yaml")
        with open(path, "w") as f:
            f.write(tlsterm_config(ctx, port, cert, backend_ports, ctx["workers_key"]))
        return [ctx["tlsterm"], "-c", path]
    if name == "hitch":
        path = os.path.join(d, "hitch.conf")
        with open(path, "w") as f:
            f.write(f"""frontend = "[127.0.0.1]:{port}"
backend = "[127.0.0.1]:{bport}"
pem-file = "{full_pem}"
workers = 1
daemon = off
tls-protos = TLSv1.2 TLSv1.3
ciphers = "{TLS12_SUITES}"
backlog = 4096
syslog = off
log-level = 1
# hitch refuses to run its workers as root.
user = "nobody"
group = "nogroup"
ocsp-dir = "{d}/ocsp"
""")
        os.makedirs(os.path.join(d, "ocsp"), mode=0o777, exist_ok=True)
        os.chmod(os.path.join(d, "ocsp"), 0o777)
        return ["hitch", f"--config={path}"]
    if name in ("haproxy-tcp", "haproxy-http"):
        mode = name.split("-")[1]
        path = os.path.join(d, "haproxy.cfg")
        http_only = "  timeout http-keep-alive 600s\n  timeout http-request 600s\n" if mode == "http" else ""
        with open(path, "w") as f:
            f.write(f"""global
  nbthread 1
  maxconn {(common.NOFILE - 200) // 2}
  ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3
  ssl-default-bind-ciphers {TLS12_SUITES}
defaults
  mode {mode}
  timeout connect 5s
  timeout client 600s
  timeout server 600s
{http_only}frontend fe
  bind 127.0.0.1:{port} ssl crt {full_pem} curves {GROUPS}
  default_backend be
backend be
  server s1 127.0.0.1:{bport}
""")
        return ["haproxy", "-db", "-f", path]
    if name == "nginx-stream":
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(f"""load_module {STREAM_MODULE};
{nginx_common(d)}stream {{
  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
{nginx_tls(ctx, cert)}    proxy_pass 127.0.0.1:{bport};
  }}
}}
""")
        return ["nginx", "-c", path, "-p", d, "-e", os.path.join(d, "error.log")]
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
  upstream be {{ server 127.0.0.1:{bport}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
{nginx_tls(ctx, cert)}    location / {{
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Stream large bodies through memory instead of spooling to disk.
      proxy_max_temp_file_size 0;
    }}
  }}
}}
""")
        return ["nginx", "-c", path, "-p", d, "-e", os.path.join(d, "error.log")]
    if name == "stunnel":
        path = os.path.join(d, "stunnel.conf")
        with open(path, "w") as f:
            f.write(f"""foreground = yes
pid =
syslog = no
debug = 3
output = {d}/stunnel.log
[bench]
accept = 127.0.0.1:{port}
connect = 127.0.0.1:{bport}
cert = {ctx['certs']}/{cert}.pem
key = {ctx['certs']}/{cert}.key
sslVersionMin = TLSv1.2
sslVersionMax = TLSv1.3
ciphers = {TLS12_SUITES}
curves = {GROUPS}
TIMEOUTidle = 600
""")
        return ["stunnel4", path]
    if name == "nghttpx":
        return ["nghttpx", "--conf=/dev/null", f"--frontend=127.0.0.1,{port}",
                f"--backend=127.0.0.1,{bport}", "--workers=1",
                "--tls-min-proto-version=TLSv1.2", "--tls-max-proto-version=TLSv1.3",
                f"--ciphers={TLS12_SUITES}", f"--ecdh-curves={GROUPS}",
                "--frontend-keep-alive-timeout=600s", "--backend-keep-alive-timeout=600s",
                f"--errorlog-file={d}/error.log", "--log-level=WARN", "--no-ocsp",
                "--backlog=4096", f"--pid-file={d}/nghttpx.pid",
                f"{ctx['certs']}/{cert}.key", f"{ctx['certs']}/{cert}.pem"]
    raise ValueError(name)


PROXIES = ["tlsterm", "hitch", "haproxy-tcp", "haproxy-http", "nginx-stream", "nginx-http",
           "stunnel", "nghttpx"]


class Server:
    """Server is one running proxy under test, and how to start it again."""

    def __init__(self, name, proc, port, cert, tag, backend_ports):
        self.name, self.proc, self.port = name, proc, port
        self.cert, self.tag, self.backend_ports = cert, tag, backend_ports
        self.addr = f"127.0.0.1:{port}"
        self.url = f"https://127.0.0.1:{port}"


def start_proxy(name, ctx, cert, tag, backend_ports=None):
    """start_proxy starts one proxy and checks it with one request. It
    returns (Server, None), or (None, why) when the proxy did not start."""
    d = os.path.join(ctx["tmp"], f"{name}-{tag}")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    backend_ports = backend_ports or ctx["backend_ports"][:1]
    try:
        argv = proxy_argv(name, ctx, d, port, cert, backend_ports)
    except OSError as e:
        return None, f"configuration: {e}"
    proc = Proc(name, argv, PROXY_CPU, os.path.join(d, "stderr.log"))
    if not wait_listening(proc, port):
        why = "exited" if not proc.alive() else "not listening after 15 s"
        tail = proc.log_tail()
        proc.stop()
        return None, f"{why}: {tail}"
    server = Server(name, proc, port, cert, tag, backend_ports)
    # One real request end to end, with verification, before any figure.
    res = run(["curl", "-sS", "--max-time", "5", "--cacert", f"{ctx['certs']}/ca.pem",
               "-o", "-", f"{server.url}/"], check=False)
    if res.returncode != 0 or res.stdout.encode() != SMALL_PAGE:
        proc.stop()
        return None, f"first request failed: curl {res.returncode} {res.stderr.strip()[:200]}"
    return server, None
