#!/usr/bin/env bash
# Installs the Debian packages VoCo Store builds on, when any is missing. Safe to run repeatedly.
set -euo pipefail
packages=(liblmdb-dev libopenblas-dev libzstd-dev libjpeg62-turbo-dev libpng-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
