#!/usr/bin/env bash
# Runs the integration tests (tests/integration, pytest) against $LGW_BIN.
# Debian's pytest runs under /usr/bin/python3 (the python3 first on PATH may be another build).
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
