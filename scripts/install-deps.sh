#!/bin/sh
# install-deps.sh run|test|bench|docker|fuzz: install the Debian 12 packages that tlsterm
# needs for that purpose, if any are missing. Idempotent: when everything is
# installed it changes nothing and needs no network.
set -eu

run_pkgs="cmake make gcc libc6-dev android-libboringssl-dev libevent-dev libyaml-dev
  libnghttp2-dev node-llhttp libcap-dev libseccomp-dev pkg-config openssl python3 curl"
test_pkgs="$run_pkgs strace libcmocka-dev python3-pytest python3-h2 python3-prometheus-client python3-jsonschema python3-cryptography nghttp2-client sslscan iproute2 util-linux haproxy prometheus"
bench_pkgs="$test_pkgs android-boringssl wrk nginx-light hitch haproxy stunnel4 nghttp2-proxy strace python3-matplotlib"
# make test-docker: podman as root (with runc; slirp4netns publishes ports),
# debootstrap for the base image when no registry is reachable, and the
# test's clients.
# make fuzz: Debian's clang and its compiler-rt (libFuzzer, ASan, UBSan).
fuzz_pkgs="$run_pkgs clang libclang-rt-14-dev"
docker_pkgs="podman runc slirp4netns debootstrap python3 python3-pytest curl openssl"

case "${1:-}" in
run) wanted=$run_pkgs ;;
test) wanted=$test_pkgs ;;
bench) wanted=$bench_pkgs ;;
docker) wanted=$docker_pkgs ;;
fuzz) wanted=$fuzz_pkgs ;;
*) echo "usage: $0 run|test|bench|docker|fuzz" >&2; exit 2 ;;
esac

missing=""
for pkg in $wanted; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
    "install ok installed") ;;
    *) missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "tlsterm: installing missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "tlsterm: run as root (or install them yourself: apt-get install$missing)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing

# The tests run /usr/bin/prometheus themselves, on ephemeral loopback ports;
# the service Debian's package starts (on :9090, where systemd runs) is not
# wanted on a build machine.
case " $missing " in
*" prometheus "*)
    if [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
    ;;
esac
