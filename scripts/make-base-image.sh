#!/bin/sh
# make-base-image.sh: make docker.io/library/debian:bookworm-slim locally when
# no registry can be reached, so docker/Dockerfile stays the standard one.
#
# debootstrap --variant=minbase from Debian's archive, then what the official
# slim image adds: its apt sources (bookworm, bookworm-updates,
# bookworm-security, deb822 format), no documentation installed, apt's caches
# cleaned after each install; then imported into the container engine.
# Does nothing when the image is already there. Runs as root.
#
#   ENGINE   the engine command (default: docker when `docker info`
#            answers, else podman)
#   MIRROR   the Debian archive (default: the one this machine's apt uses,
#            else http://deb.debian.org/debian)
set -eu

image=docker.io/library/debian:bookworm-slim
if [ -n "${ENGINE:-}" ]; then
    engine=$ENGINE
elif command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
    engine=docker
else
    engine=podman
fi

if $engine image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi

if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(sed -n 's|^URIs: *\(http[^ ]*/debian\)$|\1|p' /etc/apt/sources.list.d/debian.sources \
        2>/dev/null | head -n 1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
security_mirror="${MIRROR}-security"

root=$(mktemp -d /var/tmp/tlsterm-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "make-base-image: debootstrap bookworm from $MIRROR (about two minutes)"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2
    rm -f "$root.log"
    exit 1
}
rm -f "$root.log"

# The official image's sources, in deb822 form.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# As the slim image: no documentation, and apt keeps no caches.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"* "$root/usr/share/man/"* \
    "$root/usr/share/info/"* "$root/var/log/"*.log
find "$root/usr/share/doc" -type f ! -name copyright -delete

tar -C "$root" --numeric-owner -c . |
    $engine import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "make-base-image: $image imported"
