#!/bin/sh
# The official nginx image's entrypoint: run /docker-entrypoint.d/*.sh before nginx starts.
set -eu
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    for f in /docker-entrypoint.d/*.sh; do
        [ -x "$f" ] && "$f"
    done
fi
exec "$@"
