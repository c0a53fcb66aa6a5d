#!/bin/sh
# Write a random Django secret key to FILE, unless it already holds one.
# Usage: deploy/make-secret-key.sh FILE   (compose's `secret` job; settings read it through
# DJANGO_SECRET_KEY_FILE)
set -eu
file=${1:?usage: make-secret-key.sh FILE}
if [ -s "$file" ]; then
    exit 0
fi
mkdir -p "$(dirname "$file")"
umask 077
python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > "$file.tmp"
mv "$file.tmp" "$file"
echo "made a secret key in $file"
