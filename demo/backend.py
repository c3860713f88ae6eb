#!/usr/bin/python3
"""The demo backend for `make run`: a plain-HTTP server on 127.0.0.1:8080
serving demo/index.html, so that a newcomer can curl tlsterm at once."""
import functools
import http.server
import os
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
root = os.path.dirname(os.path.abspath(__file__))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
http.server.ThreadingHTTPServer.allow_reuse_address = True
with http.server.ThreadingHTTPServer((host, port), handler) as httpd:
    print(f"demo backend: plain HTTP on {host}:{port}, serving {root}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
