#!/usr/bin/env bash
#  make test: build, then run the unit self-tests and the integration tests,
#  on the release build and on the ASan+UBSan build, the unit self-tests
#  under valgrind, each libFuzzer target for 30 s, and 60 s of the fault soak
#  (the two integration runs side by side). Prints one summary line
#  "herd: N passed, N failed" and exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
failures=()

tests_passed=0
tests_failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

#  Run one step; count its tests from the runner's closing line
#  ("N passed, N failed" or pytest's "N passed, N failed in ...").
step () {
    local name=$1; shift
    echo "=== $name"
    if "$@" 2>&1 | tee "$out"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
    local last n
    last=$(grep -E '[0-9]+ (passed|failed)' "$out" | tail -n 1)
    for n in $(echo "$last" | grep -oE '[0-9]+ passed' | grep -oE '^[0-9]+'); do
        tests_passed=$((tests_passed + n))
    done
    for n in $(echo "$last" | grep -oE '[0-9]+ (failed|errors?)' | grep -oE '^[0-9]+'); do
        tests_failed=$((tests_failed + n))
    done
}

#  Start a step in the background, its output kept aside; finish_steps waits
#  for them and reports each as step does, in the order they were started.
#  The two integration runs go together: their tests mostly wait on sockets
#  and timers (a run keeps one core a quarter busy), and each keeps to its
#  own slice of the port pool (HERD_PORT_SLICE, herdlib.free_ports).
bg_names=()
bg_pids=()
bg_outs=()
bg_step () {
    local name=$1; shift
    local file
    file=$(mktemp)
    "$@" >"$file" 2>&1 &
    bg_names+=("$name")
    bg_pids+=($!)
    bg_outs+=("$file")
}
finish_steps () {
    local i
    for i in "${!bg_pids[@]}"; do
        local status=0
        wait "${bg_pids[$i]}" || status=$?
        step "${bg_names[$i]}" s_replay "${bg_outs[$i]}" "$status"
        rm -f "${bg_outs[$i]}"
    done
    bg_names=()
    bg_pids=()
    bg_outs=()
}
s_replay () {
    cat "$1"
    return "$2"
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp

step "build (release)"      make -s -j"$jobs" build bin/herd
step "build (asan+ubsan)"   make -s -j"$jobs" SAN=1 build
step "unit (release)"       build/release/bin/herd_selftest
step "unit (asan+ubsan)"    build/san/bin/herd_selftest
step "unit (valgrind)"      tests/valgrind.sh build/release/bin/herd_selftest
bg_step "integration (release)" env HERD_BIN="$PWD/build/release/bin/herd" HERD_PORT_SLICE=0/2 \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
bg_step "integration (asan+ubsan)" env HERD_BIN="$PWD/build/san/bin/herd" HERD_SAN=1 HERD_PORT_SLICE=1/2 \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
finish_steps
step "fuzz (short)"         make -s -j"$jobs" fuzz-short
#  The fault soak's schedule compressed into 60 s (every kind of fault once),
#  seeded so every run injects the same faults on the same nodes
step "soak (60 s)"          env HERD_BIN="$PWD/build/release/bin/herd" \
    /usr/bin/python3 tests/soak/soak.py --seconds 60 --seed "${SOAK_SEED:-1}"

echo
for f in "${failures[@]}"; do echo "FAILED step: $f"; done
echo "steps: $passed passed, $failed failed"
echo "herd: $tests_passed passed, $tests_failed failed"
[ "$failed" -eq 0 ]
