#!/bin/sh
# gen-dev-certs.sh [OUTDIR]: make a local CA and two server certificates for
# development and tests, with the openssl command-line tool.
#
# OUTDIR (default: certs/dev in the repository) receives:
#   ca.pem, ca.key         a self-signed CA, EC P-256
#   ecdsa.pem, ecdsa.key   an ECDSA P-256 leaf signed by the CA
#   rsa.pem, rsa.key       an RSA-2048 leaf signed by the CA
# Both leaves are for CN=localhost with SAN DNS:localhost, IP:127.0.0.1 and
# IP:::1, serverAuth, valid 825 days. The .pem files hold the leaf alone: the
# CA is the clients' trust anchor (curl --cacert, s_client -CAfile).
# Keys are PKCS#8 PEM, mode 0600.
#
# The script does nothing when all six files exist, so it is safe to run
# before every test session. Never use these certificates outside a machine
# you control: the CA key sits next to them.
set -eu

script_dir=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$script_dir/dev"}

files="ca.pem ca.key ecdsa.pem ecdsa.key rsa.pem rsa.key"
missing=0
for f in $files; do
    [ -f "$out/$f" ] || missing=1
done
if [ "$missing" = 0 ]; then
    exit 0
fi

command -v openssl >/dev/null 2>&1 || {
    echo "gen-dev-certs.sh: openssl not found; install the Debian package openssl" >&2
    exit 1
}

mkdir -p "$out"
# Build everything in a scratch folder inside OUTDIR and move the files in at
# the end, so an interrupted run never leaves a half-made set behind that the
# "all files exist" check would then accept.
work=$(mktemp -d "$out/.gen.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
umask 077

days=825

openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$work/ca.key"
openssl req -new -x509 -sha256 -days "$days" -key "$work/ca.key" \
    -subj "/CN=tlsterm dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$work/ca.pem"

cat > "$work/leaf.ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT

# make_leaf NAME GENPKEY-ARGS...: key NAME.key and certificate NAME.pem.
make_leaf() {
    name=$1
    shift
    openssl genpkey -quiet "$@" -out "$work/$name.key"
    openssl req -new -sha256 -key "$work/$name.key" -subj "/CN=localhost" \
        -out "$work/$name.csr"
    # x509 -req chats on stderr even when it succeeds; show it on failure.
    if ! openssl x509 -req -sha256 -days "$days" -in "$work/$name.csr" \
        -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
        -extfile "$work/leaf.ext" -out "$work/$name.pem" 2>"$work/x509.log"; then
        cat "$work/x509.log" >&2
        exit 1
    fi
}

make_leaf ecdsa -algorithm EC -pkeyopt ec_paramgen_curve:P-256
make_leaf rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048

for f in $files; do
    chmod 600 "$work/$f"
done
# Certificates are public; only keys need 0600.
chmod 644 "$work/ca.pem" "$work/ecdsa.pem" "$work/rsa.pem"
for f in $files; do
    mv -f "$work/$f" "$out/$f"
done
echo "gen-dev-certs.sh: wrote $files to $out"
