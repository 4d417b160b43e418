#!/usr/bin/env bash
# Installs the Debian packages VoCo Store builds on, when any is missing. Safe to run repeatedly.
set -euo pipefail
packages=(liblmdb-dev libopenblas-dev libzstd-dev libjpeg62-turbo-dev libpng-dev libhiredis-dev pkg-config)
# Needed only by the Redis Cluster tests and benchmarks (Tools/redis-cluster.sh): a failure to
# install them is reported, not fatal; those tests then say that they skipped.
optional=(redis-server redis-tools)
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
updated=no
install() {
  if [ "$updated" = no ]; then $sudo apt-get update -qq; updated=yes; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}" >&2
  install "${missing[@]}"
fi
missing=()
for p in "${optional[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages for the Redis Cluster tests: ${missing[*]}" >&2
  install "${missing[@]}" || echo "Tools/deps.sh: could not install ${missing[*]}; the Redis Cluster tests will be skipped" >&2
fi
