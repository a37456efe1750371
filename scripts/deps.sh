#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, if any is missing. A quick no-op
# when everything is there. Runs apt-get as root, or through sudo.
set -euo pipefail

PACKAGES=(
    gcc make pkg-config git ca-certificates curl openssl
    libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libjansson-dev libcmocka-dev
    python3-yaml python3-jsonschema chromium
    clang-format
    python3 python3-pytest python3-boto3 awscli
    nodejs npm
)
# Extra groups, asked for with DEPS_EXTRA="bench node".
for extra in ${DEPS_EXTRA:-}; do
    case "$extra" in
    bench) PACKAGES+=(wrk hyperfine nginx gnuplot-nox procps) ;;
    node) PACKAGES+=(nodejs npm) ;;
    browser) PACKAGES+=(chromium) ;;
    *) echo "deps.sh: unknown extra '$extra'" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${PACKAGES[@]}"; do
    # NodeSource's nodejs bundles npm and conflicts with Debian's npm package.
    if [ "$p" = npm ] && command -v npm >/dev/null; then
        continue
    fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
