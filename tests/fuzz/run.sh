#!/usr/bin/env bash
#  Run libFuzzer targets for a while each and report what they did.
#
#  Usage: tests/fuzz/run.sh SECONDS build/fuzz/fuzz_NAME ...
#
#  Each target starts from its seed corpus tests/fuzz/corpus/NAME (replayed
#  first, so the regression inputs kept there are rerun every time) and the
#  inputs earlier runs found, build/fuzz/corpus/NAME, where new ones go.
#  Targets run side by side, one per CPU. Prints one line per target
#  (executions, time, coverage: cov = code edges, ft = features), then
#  "N passed, N failed"; a crash, leak, time-out or oracle failure fails the
#  target, its input is left in build/fuzz/crashes/ and its log in
#  build/fuzz/logs/ (FUZZ_LOGS, to keep a long run's logs apart). FUZZ_RUNS
#  caps the executions of each (default 10^9).
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS FUZZ_BINARY ..." >&2
    exit 2
fi
seconds=$1
shift
runs=${FUZZ_RUNS:-1000000000}
jobs=$(nproc 2>/dev/null || echo 2)
logs=${FUZZ_LOGS:-build/fuzz/logs}
mkdir -p build/fuzz/crashes "$logs"

#  Longest input tried, by target: a config file or a body needs more room.
s_max_len () {
    case $1 in
        fuzz_config|fuzz_placesbody) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

#  Run one target; its log says the rest.
s_run () {
    local binary=$1 name
    name=$(basename "$binary")
    local target=${name#fuzz_}
    mkdir -p "build/fuzz/corpus/$target"
    #  The seed corpus rides along read-only: new inputs go to the first dir
    "$binary" -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(s_max_len "$name")" -print_final_stats=1 \
        -artifact_prefix="build/fuzz/crashes/$target-" \
        "build/fuzz/corpus/$target" "tests/fuzz/corpus/$target" \
        >"$logs/$target.log" 2>&1
    echo $? >"$logs/$target.rc"
}

names=()
for binary in "$@"; do
    if [ ! -x "$binary" ]; then
        echo "$binary: not built" >&2
        exit 2
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n
    done
    name=$(basename "$binary")
    names+=("${name#fuzz_}")
    rm -f "$logs/${name#fuzz_}.rc"
    s_run "$binary" &
done
wait

passed=0
failed=0
for target in "${names[@]}"; do
    log=$logs/$target.log
    rc=$(cat "$logs/$target.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    #  The last status line: "#N DONE cov: C ft: F corp: U/S ..."
    status=$(grep -E '^#[0-9]+' "$log" | grep -E ' cov: ' | tail -n 1)
    cov=$(echo "$status" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$status" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$status" | sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    summary=$(printf '%-11s %10s execs in %3ss (%s/s), cov %s ft %s, corpus %s' \
        "$target" "${execs:-?}" "${took:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")
    if [ "$rc" -eq 0 ]; then
        echo "fuzz $summary: ok"
        passed=$((passed + 1))
    else
        echo "fuzz $summary: FAILED (exit $rc)"
        #  A crash names itself; anything else (a missing corpus, a bad flag)
        #  is said in the log's last lines
        if ! grep -E 'ERROR|SUMMARY|oracle failed|Test unit written' "$log" | head -n 10 |
                sed 's/^/    /' | grep .; then
            tail -n 3 "$log" | sed 's/^/    /'
        fi
        echo "    full log: $log"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
