#!/usr/bin/env bash
#  Installs the Debian packages herd needs, when missing:
#
#      scripts/install-deps.sh [run]    build and run (make deps, make run)
#      scripts/install-deps.sh test     those and what the tests use (make test)
#      scripts/install-deps.sh --list run|test    print the set, install nothing
#
#  Runs apt-get as root (or through sudo); does nothing when all are present.
set -euo pipefail

#  Build and run: the compiler, the libraries herd links, the stand-in Places
#  server's Python, and the nc the README's examples use
run_packages=(
    build-essential pkg-config
    libzmq3-dev libczmq-dev         #   ZeroMQ and its C binding: the bus
    libcurl4-openssl-dev            #   the Places client
    libcjson-dev                    #   Places answers and requests
    libmicrohttpd-dev               #   /metrics
    libsodium-dev                   #   the table index's keyed hash (SipHash-2-4)
    libedit-dev                     #   optional: herd client line editing and history
    python3                         #   make run: the stand-in Places server
    netcat-openbsd                  #   the README's nc examples (nc -q)
)

#  Tests, fuzzing, the benchmark, on top of the run set
test_packages=(
    python3-pytest python3-zmq      #   integration tests
    clang                           #   libFuzzer targets
    valgrind                        #   unit self tests under memcheck
    linux-perf                      #   make bench: BENCH_PROFILE=1
    iproute2                        #   integration tests: hosts as network namespaces
    systemd                         #   systemd-analyze: the unit file's checks
    logrotate                       #   logrotate -d: the rule's checks
)

list=false
if [ "${1:-}" = "--list" ]; then list=true; shift; fi
case "${1:-run}" in
    run)  packages=("${run_packages[@]}") ;;
    test) packages=("${run_packages[@]}" "${test_packages[@]}") ;;
    *)    echo "usage: $0 [--list] [run|test]" >&2; exit 2 ;;
esac
if $list; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

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
