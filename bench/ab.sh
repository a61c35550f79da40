#!/usr/bin/env bash
#  bench/ab.sh - compare herd binaries (or log settings) under identical IAMAT
#  load: one one-node herd per target, all pinned to the same CPU, measured by
#  herd_bench in interleaved runs, so that noise on a shared machine hits
#  every target alike. For changes too small for make bench's ratios to show.
#
#    bash bench/ab.sh SHAPE RUNS NAME=BINARY[@LOG][#KEY=VALUE...] ...
#
#  LOG is the node's log file (default: a file in the temporary directory;
#  /dev/null measures a node without log I/O). Each #KEY=VALUE is put in the
#  node's herd section (e.g. #fsync=always). Example, before and after a
#  change, and the cost of the log:
#
#    git stash && make bin/herd && cp bin/herd /tmp/herd-before && git stash pop
#    make bin/herd
#    bash bench/ab.sh 50x32 7 before=/tmp/herd-before after=bin/herd after-nolog=bin/herd@/dev/null
#    bash bench/ab.sh 1x1 7 everysec=bin/herd always=bin/herd#fsync=always
#
#  Settings (environment): AB_SERVER_CPUS (default 0), AB_CPU (the load
#  generator's, default the last), AB_SECONDS (2), AB_WARMUP (0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
    sed -n '2,/^set /p' "$0" | sed '$d; s/^#  \{0,1\}//; s/^#$//' >&2
    exit 2
fi
shape=$1 runs=$2
shift 2
ncpu=$(nproc)
gen_cpu=${AB_CPU:-$((ncpu - 1))}
server_cpus=${AB_SERVER_CPUS:-0}
bench=build/release/bench/herd_bench
make --no-print-directory -s "$bench"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herd-ab.XXXXXX")
pids=()
cleanup () {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

targets=()
for spec in "$@"; do
    name=${spec%%=*}
    binary=${spec#*=}
    log=$tmp/$name/node.log
    extra=""
    if [[ $binary == *#* ]]; then
        IFS='#' read -r -a keys <<< "${binary#*#}"
        for key in "${keys[@]}"; do
            extra+="    ${key%%=*} = ${key#*=}"$'\n'
        done
        binary=${binary%%#*}
    fi
    if [[ $binary == *@* ]]; then
        log=${binary#*@}
        binary=${binary%@*}
    fi
    [ -x "$binary" ] || { echo "ab: $binary is not an executable" >&2; exit 2; }
    read -r client bus sync <<< "$("$bench" ports 3)"
    mkdir -p "$tmp/$name"
    cat > "$tmp/$name/herd.cfg" << EOF
herd
    run_dir = $tmp/$name/run
$extra
node = Hill
    client = 127.0.0.1:$client
    bus = tcp://127.0.0.1:$bus
    sync = tcp://127.0.0.1:$sync
    log = $log
    data = $tmp/$name/data
places
EOF
    HERD_PLACES_URL=http://127.0.0.1:9/unused GOOGLE_API_KEY=ab-not-a-key \
        taskset -c "$server_cpus" "$binary" node Hill -c "$tmp/$name/herd.cfg" \
        > "$tmp/$name/out" 2>&1 &
    pids+=($!)
    targets+=(--target "$name=$client:$!")
    for _ in $(seq 200); do
        grep -q "serving clients" "$tmp/$name/out" && break
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/$name/out" >&2; exit 1; }
        sleep 0.05
    done
done
echo "ab: $shape, $runs interleaved runs; nodes on CPUs $server_cpus, load generator on CPU $gen_cpu"
"$bench" --cpu "$gen_cpu" iamat "${targets[@]}" --shape "$shape" --runs "$runs" \
    --seconds "${AB_SECONDS:-2}" --warmup "${AB_WARMUP:-0.5}" | grep -v '^  iamat '
