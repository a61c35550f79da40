#!/usr/bin/env bash
#  Installs the Debian packages herd needs to build, run and test, when missing.
#  Runs apt-get as root (or through sudo); does nothing when all are present.
set -euo pipefail

packages=(
    build-essential pkg-config
    libzmq3-dev libczmq-dev libcurl4-openssl-dev libcjson-dev libmicrohttpd-dev
    libsodium-dev                   #   the table index's keyed hash (SipHash-2-4)
    libedit-dev                     #   herd client: line editing and history
    python3 python3-pytest python3-zmq
    clang
    valgrind                        #   make test: unit self tests under memcheck
    linux-perf                      #   make bench: BENCH_PROFILE=1
    iproute2                        #   integration tests: hosts as network namespaces
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "herd: installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
