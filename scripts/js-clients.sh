#!/usr/bin/env bash
# Installs the JavaScript client tests' dependencies (the AWS SDK for JavaScript v3, pinned by
# tests/clients/js/package-lock.json) with `npm ci`, once: a quick no-op when node_modules is
# already there. Needs node and npm (scripts/deps.sh installs Debian's nodejs and npm).
set -euo pipefail
cd "$(dirname "$0")/../tests/clients/js"
if [ -d node_modules/@aws-sdk/client-lambda ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "js-clients.sh: npm not found (run scripts/deps.sh)" >&2; exit 1; }
echo "js-clients.sh: npm ci in tests/clients/js" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
