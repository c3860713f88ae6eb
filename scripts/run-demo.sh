#!/bin/sh
# run-demo.sh: the demo backend on 127.0.0.1:8080 and tlsterm in front of it
# on port 8443, in the foreground. Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."
/usr/bin/python3 demo/backend.py 127.0.0.1 8080 &
backend=$!
trap 'kill "$backend" 2>/dev/null || true' EXIT
trap 'true' INT TERM  # tlsterm gets the signal too and drains; then we clean up
echo "tlsterm: try  curl --http2 --cacert certs/dev/ca.pem https://localhost:8443/"
echo "         and  curl -i http://localhost:8081/  (a redirect to https://localhost:8443/)"
status=0
build/release/tlsterm -c conf/tlsterm.yaml || status=$?
exit "$status"
