#!/usr/bin/env bash
#  make test: the unit self tests under valgrind memcheck.
#
#  Usage: tests/valgrind.sh [SELFTEST]   (default build/release/bin/herd_selftest)
#
#  herd_selftest forks one child per test; valgrind follows forks, so each
#  test is checked in its own process and a child with a memory error or a
#  definite leak exits 1, which fails that test. Only definite leaks count:
#  libzmq and czmq keep per-thread and context memory "possibly lost" or
#  "still reachable" at exit by design. Prints the runner's "N passed,
#  N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
selftest=${1:-build/release/bin/herd_selftest}

#  Tests left out, each with why (none at present: herd_bus's restart used
#  to race libzmq's asynchronous close; it now waits for the ports).
skip=()

#  Every test of the registry in tests/unit/selftest.c, less the skipped
names=()
for name in $(grep -oE '\{"herd_[a-z_]+", *herd_[a-z_]+_test\}' tests/unit/selftest.c \
              | grep -oE '^\{"[a-z_]+"' | tr -d '{"'); do
    [[ " ${skip[*]} " == *" $name "* ]] || names+=("$name")
done
if [ ${#names[@]} -eq 0 ]; then
    echo "valgrind: no tests found in tests/unit/selftest.c"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "valgrind: skipped ${skip[*]} (see tests/valgrind.sh)"
timeout 900 valgrind --quiet --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --error-exitcode=1 "$selftest" "${names[@]}"
