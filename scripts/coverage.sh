#!/usr/bin/env bash
#  scripts/coverage.sh BUILD FILE.c ... - the share of each file's lines the
#  unit self-tests run (gcov), after `make coverage` ran them in BUILD, an
#  instrumented build. Prints one line a file, then the total. What the
#  self-tests leave, the integration tests cover; this says how much of a
#  class its own self-test states directly.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
shift
lines=0 run=0
for file in "$@"; do
    summary=$(gcov -n -o "$build/$(dirname "$file")" "$file" 2>/dev/null |
              grep -A1 "^File '$file'" | sed -n 's/^Lines executed:\([0-9.]*\)% of \([0-9]*\)$/\1 \2/p')
    if [ -z "$summary" ]; then
        printf '%-34s not run\n' "$file"
        continue
    fi
    read -r percent count <<<"$summary"
    printf '%-34s %6s%% of %5s lines\n' "$file" "$percent" "$count"
    lines=$((lines + count))
    run=$((run + $(awk -v p="$percent" -v n="$count" 'BEGIN { printf "%d", p * n / 100 + 0.5 }')))
done
awk -v r="$run" -v n="$lines" 'BEGIN { printf "%-34s %6.2f%% of %5d lines\n", "total", 100 * r / n, n }'
