#!/usr/bin/env bash
# Install what opsbackup needs to build and test on Debian 12 (run as root).
# Idempotent: re-running installs nothing new.
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config
      libssl-dev libzstd-dev libjansson-dev libcmocka-dev libpq-dev libcurl4-openssl-dev
      python3 attr acl zstd postgresql-15 postgresql-client-15)
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
