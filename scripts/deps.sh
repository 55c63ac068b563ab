#!/usr/bin/env bash
# Install what opsbackup needs to build and test on Debian 12 (run as root).
# Idempotent: re-running installs nothing new.
#
#   scripts/deps.sh            everything, including the S3 test server (Node.js >= 20)
#   scripts/deps.sh --no-s3    only what building and running opsbackup needs (demo.sh)
set -euo pipefail
with_s3=1
[ "${1:-}" = --no-s3 ] && with_s3=0
pkgs=(build-essential meson ninja-build pkg-config
      libssl-dev libzstd-dev libjansson-dev libcmocka-dev libpq-dev libcurl4-openssl-dev
      libmicrohttpd-dev
      python3 attr acl zstd postgresql-15 postgresql-client-15 curl)
# Only the test suite needs these: headless Chromium renders the dashboard
# (test_dashboard), valgrind runs memcheck (test_valgrind), clang builds the
# fuzz targets (scripts/fuzz.sh: libFuzzer is libclang_rt.fuzzer in
# libclang-rt-14-dev), man-db and groff-base render the man pages (test_help).
[ $with_s3 = 1 ] && pkgs+=(chromium fonts-dejavu-core valgrind clang libclang-rt-14-dev
                           man-db groff-base)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The S3 test server (tests/tools/s3server): S3rver from the npm registry,
# pinned by package-lock.json, installed beside it (nothing global).  Needs
# Node.js >= 20 and npm, which the development and CI machines have; Debian
# 12's own nodejs is 18, too old for it, so it is not installed from here.
[ $with_s3 = 1 ] || exit 0
s3dir="$(cd "$(dirname "$0")/.." && pwd)/tests/tools/s3server"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "deps.sh: node/npm not found: the S3 tests need Node.js >= 20 (tests/tools/s3server/README.md)" >&2
    exit 1
fi
# npm ci only when the installed tree is missing or older than the lock file.
if [ ! -f "$s3dir/node_modules/.package-lock.json" ] ||
   [ "$s3dir/package-lock.json" -nt "$s3dir/node_modules/.package-lock.json" ]; then
    (cd "$s3dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
        echo "deps.sh: npm ci in $s3dir failed" >&2
        exit 1
    }
fi
