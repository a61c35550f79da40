#!/usr/bin/env bash
#  make test: build, then run the unit self-tests and the integration tests,
#  on the release build and on the ASan+UBSan build. Prints one summary line
#  "herd: N passed, N failed" and exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
failures=()

step () {
    local name=$1; shift
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp

step "build (release)"      make -s -j"$jobs" build bin/herd
step "build (asan+ubsan)"   make -s -j"$jobs" SAN=1 build
step "unit (release)"       build/release/bin/herd_selftest
step "unit (asan+ubsan)"    build/san/bin/herd_selftest
step "integration (release)" env HERD_BIN="$PWD/build/release/bin/herd" \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
step "integration (asan+ubsan)" env HERD_BIN="$PWD/build/san/bin/herd" HERD_SAN=1 \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "herd: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
