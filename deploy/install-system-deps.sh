#!/bin/sh
# Install the Debian packages a target needs, only those missing. Usage: install-system-deps.sh PKG...
# Package names map to the binary that proves them installed.
set -eu
missing=""
for pkg in "$@"; do
    case "$pkg" in
        chromium) probe=/usr/bin/chromium ;;
        redis-server) probe=/usr/bin/redis-server ;;
        # The server binary, not the directory: postgresql-client alone creates that too.
        postgresql) probe=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | head -n 1) ;;
        nginx) probe=/usr/sbin/nginx ;;
        docker-compose) probe=/usr/bin/docker-compose ;;
        docker.io) probe=/usr/sbin/dockerd ;;
        mmdebstrap) probe=/usr/bin/mmdebstrap ;;
        openssl) probe=/usr/bin/openssl ;;
        *) probe="" ;;
    esac
    if [ -z "$probe" ] || [ ! -e "$probe" ]; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing; install them as root (apt-get install$missing)" >&2
    exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing fonts-dejavu-core >/dev/null
