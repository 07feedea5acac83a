#!/usr/bin/env bash
# Installs the Debian 12 packages kaiwa builds and tests with. Idempotent: it installs only
# what is missing, says what that is, and uses sudo when not run as root.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  clang-16 libclang-rt-16-dev  # the libFuzzer targets (make fuzz; make test runs them briefly)
  libcaf-dev librocksdb-dev libboost-dev libssl-dev
  libfmt-dev libsimdjson-dev libcli11-dev catch2
  libicu-dev  # search text analysis: NFKC + case folding, scripts (read/text.cpp)
  etcd-server  # the cluster module's etcd client is tested against a real etcd (tests/cluster)
  python3 python3-websockets
  chromium fonts-ipafont-gothic  # browser tests of the web client (and Japanese glyphs in them)
  fonts-noto-color-emoji  # emoji in the browser tests, in colour (chromium has no font of its own)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# The browser tests run on Node.js with npm; a machine that has no Node.js gets Debian's.
command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
