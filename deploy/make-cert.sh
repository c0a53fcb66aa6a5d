#!/bin/sh
# Make a self-signed certificate for localhost, 127.0.0.1 and ::1 in DIR, unless one is there.
# Usage: deploy/make-cert.sh DIR [EXTRA_DNS_NAME ...]
set -eu
dir=${1:?usage: make-cert.sh DIR}
shift
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
    exit 0
fi
mkdir -p "$dir"
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do san="$san,DNS:$name"; done
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=localhost" -addext "subjectAltName=$san" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" 2>/dev/null
mv "$dir/key.pem.tmp" "$dir/key.pem"
mv "$dir/cert.pem.tmp" "$dir/cert.pem"
chmod 644 "$dir/cert.pem"
echo "made a self-signed certificate in $dir (valid for $san)"
