#!/usr/bin/env bash
# Installs the npm packages of each folder given (one with package.json + package-lock.json),
# exactly as locked, with `npm ci`: when node_modules is missing or older than the lockfile. A
# quick no-op otherwise. Used by the Makefile for openapi/ui (the Swagger UI files the build
# embeds) and tests/contract (lint, browser, typed-client tools).
#
# Install scripts are not run (--ignore-scripts): none of these packages needs one, and one
# dependency of swagger-ui-dist would report to its vendor over the network.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null; then
    # Debian's nodejs comes without npm (NodeSource's bundles it): add Debian's.
    echo "node-tools.sh: npm not found; installing Debian's npm" >&2
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

for dir in "$@"; do
    stamp="$dir/node_modules/.package-lock.json"
    if [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
        continue
    fi
    echo "node-tools.sh: npm ci in $dir" >&2
    (cd "$dir" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund \
        --loglevel=error >&2)
    touch "$stamp"
done
