#!/usr/bin/env bash
# Runs each cmocka unit-test program given as an argument; fails if any fails.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=0
passed=0
for t in "$@"; do
    if "$t"; then
        passed=$((passed + 1))
    else
        echo "FAILED: $t" >&2
        failed=$((failed + 1))
    fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
