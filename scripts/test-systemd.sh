#!/bin/sh
# test-systemd.sh: conf/tlsterm.service, as shipped, under a real systemd
# 252, booted in a podman container from Debian 12 (this machine's PID 1 is
# not systemd). It runs the commands of README's "Deploying" > "systemd"
# block, taken from README.md itself (all but "make release", which ran
# here), with a development certificate as CERT and KEY, and checks:
# systemd-analyze verify, Type=notify start and its STATUS=, the user and the
# one capability, a handshake on port 443, "systemctl reload" both ways (a
# broken file fails the command at ExecReload='s --check and the old
# generation keeps serving), a report written to StateDirectory= under
# ProtectSystem=strict, and "systemctl stop" draining to exit 0.
#
# Usage, as root: make release && sh scripts/test-systemd.sh
# Needs podman and the local image docker.io/library/debian:bookworm-slim
# (docker/README.md says how to make it without a registry). Port 443 (every
# address) and 127.0.0.1:9100 of the host must be free: the container shares
# the host's network, and conf/tlsterm-systemd.yaml listens there.
# LoadCredential= (commented out in the unit) is not exercised: in a podman
# container systemd 252 leaves the credentials directory empty, even for
# root.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/release/tlsterm
IMAGE=localhost/tlsterm-systemd-test:latest
NAME=tlsterm-systemd-test-$$
PODMAN="podman --runtime runc --cgroup-manager cgroupfs"
LIMITS="--ulimit nofile=20000:20000 --ulimit nproc=1000:1000"

fail() { echo "test-systemd: FAIL: $*" >&2; exit 1; }
[ -x "$BIN" ] || fail "no $BIN: run make release first"
command -v podman >/dev/null || fail "podman is not installed (apt-get install podman)"
podman image exists docker.io/library/debian:bookworm-slim ||
    fail "no local debian:bookworm-slim image (docker/README.md)"

WORK=$(mktemp -d /tmp/tlsterm-systemd-XXXXXX)
cleanup() {
    $PODMAN rm -f "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cat >"$WORK/Containerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv procps \
    android-libboringssl libevent-core-2.1-7 libevent-pthreads-2.1-7 libyaml-0-2 libnghttp2-14 \
    libcap2 && rm -rf /var/lib/apt/lists/*
EOF
$PODMAN build -q --network host $LIMITS -t "$IMAGE" "$WORK" >/dev/null

# What README's install commands take from the source tree, and the
# commands themselves: the first sh block under "### systemd".
mkdir -p "$WORK/src/build/release" "$WORK/src/conf"
cp "$BIN" "$WORK/src/build/release/tlsterm"
cp "$ROOT/conf/tlsterm.service" "$ROOT/conf/tlsterm-systemd.yaml" "$WORK/src/conf/"
sh "$ROOT/certs/gen-dev-certs.sh" "$WORK/certs" >/dev/null 2>&1
awk '/^### systemd$/ { in_section = 1 }
     in_section && /^```sh$/ { in_block = 1; next }
     in_block && /^```$/ { exit }
     in_block && $0 != "make release" { print }' "$ROOT/README.md" >"$WORK/install.sh"
grep -q "systemctl enable --now tlsterm" "$WORK/install.sh" ||
    fail "no install block under README's ### systemd"

$PODMAN run -d --name "$NAME" --privileged --systemd=always --network host $LIMITS \
    -v "$WORK:/work:ro" "$IMAGE" /sbin/init >/dev/null
in_container() { $PODMAN exec "$NAME" sh -c "$1"; }
i=0
until in_container 'systemctl is-system-running 2>/dev/null | grep -Eq "running|degraded"'; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "systemd did not come up in the container"
    sleep 0.1
done

in_container 'set -e; cd /work/src; export CERT=/work/certs/ecdsa.pem KEY=/work/certs/ecdsa.key
set -x; . /work/install.sh' >"$WORK/install.log" 2>&1 || {
    cat "$WORK/install.log" >&2
    in_container 'journalctl -u tlsterm --no-pager | tail -20' >&2
    fail "README's install commands"
}
in_container 'stat -c "%a %U:%G" /etc/tlsterm/tls.key' | grep -qx "640 root:tlsterm" ||
    fail "key not 0640 root:tlsterm"
in_container 'systemd-analyze verify /etc/systemd/system/tlsterm.service' ||
    fail "systemd-analyze verify"

status() { in_container 'systemctl show -p StatusText --value tlsterm'; }
# kill -HUP returns before the reload ends: wait for its STATUS=.
expect_status() {
    i=0
    until status | grep -qF "$1"; do
        i=$((i + 1))
        [ $i -lt 100 ] || fail "status '$(status)', expected '$1'"
        sleep 0.1
    done
}
expect_status "serving 1 listeners"
proc=$(in_container 'cat /proc/$(systemctl show -p MainPID --value tlsterm)/status')
echo "$proc" | grep -Eq "^Uid:[[:space:]]+$(in_container 'id -u tlsterm')[[:space:]]" || fail "not user tlsterm"
echo "$proc" | grep -Eq '^CapEff:[[:space:]]+0000000000000400$' || fail "capabilities: $proc"
echo "$proc" | grep -Eq '^NoNewPrivs:[[:space:]]+1$' || fail "NoNewPrivs"
echo | openssl s_client -connect 127.0.0.1:443 -servername localhost -CAfile "$WORK/certs/ca.pem" \
    2>/dev/null | grep -q "Verify return code: 0 (ok)" || fail "handshake on 127.0.0.1:443"

in_container 'systemctl reload tlsterm' || fail "systemctl reload"
expect_status "generation 2 in force"
in_container 'journalctl -u tlsterm --no-pager -g reload_done' | grep -q '"generation":2' ||
    fail "no reload_done line"
# A broken file: ExecReload='s --check fails the command, with the error in
# the journal, and the running generation is never asked.
in_container 'cp /etc/tlsterm/tlsterm.yaml /tmp/good.yaml
sed -i "s/^listeners:/listeners: [/" /etc/tlsterm/tlsterm.yaml' || fail "breaking the file"
in_container 'systemctl reload tlsterm' 2>/dev/null && fail "systemctl reload of a broken file succeeded"
in_container 'journalctl -u tlsterm --no-pager' | grep -q '/etc/tlsterm/tlsterm.yaml:[0-9]*:[0-9]*: ' ||
    fail "no FILE:LINE:COL of the broken file in the journal"
in_container 'systemctl is-active tlsterm' >/dev/null || fail "not active after a failed reload"
expect_status "generation 2 in force"
in_container 'journalctl -u tlsterm --no-pager -g reload_failed' 2>/dev/null | grep -q reload_failed &&
    fail "the daemon was asked to reload a broken file"
echo | openssl s_client -connect 127.0.0.1:443 -servername localhost -CAfile "$WORK/certs/ca.pem" \
    2>/dev/null | grep -q "Verify return code: 0 (ok)" || fail "handshake after a failed reload"
in_container 'cp /tmp/good.yaml /etc/tlsterm/tlsterm.yaml && systemctl reload tlsterm' ||
    fail "systemctl reload (file fixed)"
expect_status "generation 3 in force"

in_container 'systemctl stop tlsterm' || fail "systemctl stop"
in_container 'journalctl -u tlsterm --no-pager' >"$WORK/journal" 2>&1 || true
grep -q '"event":"report_written","file":"/var/lib/tlsterm/' "$WORK/journal" || fail "no report in StateDirectory"
grep -q '"event":"stopped"' "$WORK/journal" || fail "no stopped line"
[ "$(in_container 'systemctl show -p ExecMainStatus --value tlsterm')" = 0 ] || fail "exit status"
echo "test-systemd: ok (systemd $(in_container 'systemctl --version | head -1 | cut -d" " -f2'))"
