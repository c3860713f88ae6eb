#!/usr/bin/python3
"""The demo backend for `make run`: a plain-HTTP/1.1 server on 127.0.0.1:8080
serving demo/index.html, so that a newcomer can curl tlsterm at once. The page
shows what tlsterm told the backend about the client: the X-Forwarded-* and
X-Request-Id fields of the request."""
import functools
import html
import http.server
import os
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
root = os.path.dirname(os.path.abspath(__file__))
SHOWN = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
         "X-Request-Id")


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so tlsterm's pool reuses connections
    # The head and the body go out in two writes: with Nagle on, the second
    # waits for the delayed ACK (40 ms a request).
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path not in ("/", "/index.html"):
            return super().do_GET()
        with open(os.path.join(root, "index.html"), encoding="utf-8") as page:
            text = page.read()
        rows = "".join(f"<tr><td>{name}</td><td>{html.escape(self.headers.get(name, '(none)'))}</td></tr>\n"
                       for name in SHOWN)
        body = text.replace("<!-- forwarded -->", rows).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("demo backend: %s %s\n" % (self.headers.get("X-Forwarded-For", "-"), fmt % args))


handler = functools.partial(Handler, directory=root)
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer.request_queue_size = 128
with http.server.ThreadingHTTPServer((host, port), handler) as httpd:
    print(f"demo backend: plain HTTP/1.1 on {host}:{port}, serving {root}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
