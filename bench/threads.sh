#!/usr/bin/env bash
#  bench/threads.sh - where a node's CPU goes, thread by thread: one one-node
#  herd pinned to CPU 0 under IAMAT load from herd_bench on CPU 1, and perf
#  stat on the node's threads for the middle of the run. Prints, per thread
#  and per IAMAT answered: CPU time, context switches and system calls.
#
#    bash bench/threads.sh [SHAPE] [SECONDS] [BINARY]
#
#  Defaults: 1x1, 6 s, build/release/bin/herd. Needs perf (linux-perf) and
#  root or kernel.perf_event_paranoid <= 0 for the syscall tracepoint.
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-1x1} secs=${2:-6} binary=${3:-build/release/bin/herd}
[ "$secs" -ge 4 ] || { echo "threads: SECONDS must be at least 4" >&2; exit 2; }
bench=build/release/bench/herd_bench
make --no-print-directory -s "$bench"
[ -x "$binary" ] || { echo "threads: $binary is not an executable" >&2; exit 2; }
command -v perf > /dev/null || { echo "threads: needs perf" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herd-threads.XXXXXX")
pid=""
cleanup () {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
read -r client bus sync <<< "$("$bench" ports 3)"
cat > "$tmp/herd.cfg" << EOF
herd
    run_dir = $tmp/run
node = Hill
    client = 127.0.0.1:$client
    bus = tcp://127.0.0.1:$bus
    sync = tcp://127.0.0.1:$sync
    log = $tmp/node.log
    data = $tmp/data
places
EOF
HERD_PLACES_URL=http://127.0.0.1:9/unused GOOGLE_API_KEY=threads-not-a-key \
    taskset -c 0 "$binary" node Hill -c "$tmp/herd.cfg" > "$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 200); do
    grep -q "serving clients" "$tmp/out" && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/out" >&2; exit 1; }
    sleep 0.05
done
#  perf watches seconds 1 .. SECONDS-1 of the load's window
window=$((secs - 2))
( sleep 1.3; perf stat -x, --per-thread -e task-clock,context-switches,raw_syscalls:sys_enter \
      -p "$pid" -o "$tmp/perf.csv" -- sleep "$window" > /dev/null 2>&1 ) &
perf_pid=$!
"$bench" --cpu 1 iamat --target "herd=$client:$pid" --shape "$shape" --runs 1 \
    --seconds "$secs" --warmup 0.3 > "$tmp/bench.txt"
wait "$perf_pid"
rate=$(awk -v shape="$shape" '$1 == shape && $2 == "herd" { print $3 }' "$tmp/bench.txt")
echo "threads: $binary, $shape, $rate IAMAT/s; perf over ${window} s of the window (about $((rate * window)) IAMATs)"
#  perf -x, lines: thread-tid,value,unit,event,...
printf "%-16s %14s %18s %16s\n" thread "CPU us/IAMAT" switches/IAMAT syscalls/IAMAT
awk -F, -v n="$((rate * window))" '
    /^#/ || NF < 4 { next }
    { name = $1; sub (/-[0-9]+$/, "", name); v = $2 + 0
      if ($4 ~ /task-clock/) cpu[name] += v
      else if ($4 ~ /context-switches/) sw[name] += v
      else if ($4 ~ /sys_enter/) sc[name] += v
      seen[name] = 1 }
    END {
      for (t in seen) if (cpu[t] * 1000 / n >= 0.005)
          printf "%-16s %14.2f %18.2f %16.2f\n", t, cpu[t] * 1000 / n, sw[t] / n, sc[t] / n
    }' "$tmp/perf.csv" | sort -k1,1
