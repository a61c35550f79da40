#!/usr/bin/env bash
#  bench/run.sh - issue 6's benchmark (make bench): builds, starts herds, the
#  floor server and the asyncio server on free loopback ports in a temporary
#  directory, runs every measurement of bench/herd_bench.c against them with
#  identical load, prints the tables and ratios, and stops all it started.
#
#  Settings (environment):
#    BENCH_SECONDS=3         measurement window of each IAMAT run, seconds
#    BENCH_WARMUP=0.5        warm-up before each window, seconds
#    BENCH_RUNS=3            IAMAT runs per shape and target (medians reported)
#    BENCH_SHAPES="1x1 50x1 50x32 1000x1"   connections x pipeline depth
#    BENCH_CPU=N             CPU of the load generator (default: the last one)
#    BENCH_SERVER_CPUS=LIST  CPUs of the servers (default: all others; "" = unpinned)
#    BENCH_IDLE_CONNS=10000  idle connections in the memory test
#    BENCH_CLIENTS=1000000   distinct clients in the memory test
#    BENCH_PROP_SAMPLES=1000 propagation samples per hop count, at most
#    BENCH_PROP_SECONDS=8    time per propagation case (idle, under load), at most
#    BENCH_BG_RATE=10000     background IAMATs/s for propagation under load
#    BENCH_ONLY="iamat whatsat fleet records propagation memory"   phases to run
#    BENCH_PROFILE=1         also profile a node under IAMAT load with perf
#    BENCH_CSV=FILE          append every figure to FILE as CSV
#    BENCH_KEEP=1            keep the temporary directory (configs, logs)
#    BENCH_HERD=PATH         benchmark this herd binary instead of building bin/herd
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECONDS:-3}
warmup=${BENCH_WARMUP:-0.5}
runs=${BENCH_RUNS:-3}
shapes=${BENCH_SHAPES:-1x1 50x1 50x32 1000x1}
ncpu=$(nproc)
gen_cpu=${BENCH_CPU:-$((ncpu - 1))}
if [ -z "${BENCH_SERVER_CPUS+set}" ]; then
    server_cpus=$(seq -s, 0 $((ncpu - 1)) | tr ',' '\n' | grep -vx "$gen_cpu" | paste -sd, -)
else
    server_cpus=$BENCH_SERVER_CPUS
fi
idle_conns=${BENCH_IDLE_CONNS:-10000}
clients=${BENCH_CLIENTS:-1000000}
prop_samples=${BENCH_PROP_SAMPLES:-1000}
prop_secs=${BENCH_PROP_SECONDS:-8}
bg_rate=${BENCH_BG_RATE:-10000}
only=" ${BENCH_ONLY:-iamat whatsat fleet records propagation memory} "
python=/usr/bin/python3
bench=build/release/bench/herd_bench
floor=build/release/bench/floor_server
records=build/release/bench/records_bench

herd=${BENCH_HERD:-bin/herd}
if [ -n "${BENCH_HERD:-}" ]; then
    make --no-print-directory -s "$bench" "$floor" "$records"
else
    make --no-print-directory -s bin/herd "$bench" "$floor" "$records"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herd-bench.XXXXXX")
pids=()

#  Stop every process this script started, by pid; remove the temp dir.
cleanup () {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

#  Pass --csv to every measurement when asked.
csv_args=()
[ -n "${BENCH_CSV:-}" ] && csv_args=(--csv "$(realpath -m "$BENCH_CSV")")
pin=()
[ -n "$server_cpus" ] && pin=(taskset -c "$server_cpus")

#  Run the load generator pinned to its CPU.
hb () {
    "$bench" --cpu "$gen_cpu" "${csv_args[@]}" "$@"
}

#  Wait until 127.0.0.1:port accepts connections while pid lives.
wait_port () {
    local port=$1 pid=$2 what=$3
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || { echo "bench: $what exited; see $tmp" >&2; exit 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: $what does not accept connections on $port" >&2
    exit 1
}

#  Wait until a port file is written; print its port.
wait_port_file () {
    for _ in $(seq 200); do
        [ -s "$1" ] && { cat "$1"; return 0; }
        sleep 0.05
    done
    echo "bench: no port in $1" >&2
    exit 1
}

#  Stop the given pids with SIGTERM and wait for them (SIGKILL after 20 s);
#  say so when one had died or did not exit cleanly, with its last words.
stop () {
    local pid rc
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for _ in $(seq 400); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ]; then
            echo "bench: process $pid exited with status $rc$([ "$rc" -gt 128 ] && echo " (signal $((rc - 128)))"); last stderr lines of the herds:"
            grep -v 'serving clients on' "$tmp/herd.out" 2>/dev/null | tail -3 | sed 's/^/    /'
        fi
    done
}

#  A measurement that failed does not stop the others.
failed () {
    echo "bench: the $1 measurement failed (exit $2); going on with the next"
}

#  The keys of herd.cfg's first node: every generated node gets the same
#  ones (client, bus, sync, monitor, log, data, ...), so the bench runs the
#  herd as configured by default, whatever keys it grows.
mapfile -t node_keys < <(awk '/^node = / {n++; next} n == 1 && /^    [a-z_]+ *=/ {
    sub(/#.*/, ""); sub(/^ +/, ""); sub(/ +$/, ""); print; next } n == 1 && /^[^ #]/ {exit}' herd.cfg)

#  write_config NAME FILE "NODE ..." "A:B ..." [PLACES_LINES]: a herd config
#  named NAME on free ports, every node with herd.cfg's keys; sets
#  port_of[NODE] (its client port), sync_of[NODE] (its sync endpoint, if
#  any), log_of[NODE].
declare -A port_of sync_of log_of
write_config () {
    local name=$1 file=$2 nodes=$3 edges=$4 places=${5:-}
    local count ports i=0 node edge line key value
    count=$(wc -w <<< "$nodes")
    read -r -a ports <<< "$("$bench" ports $((${#node_keys[@]} * count)))"
    {
        echo "herd"
        echo "    name = $name"
        echo "    run_dir = $tmp/$name/run"
        for node in $nodes; do
            log_of[$node]=$tmp/$name/logs/$node.log
            echo "node = $node"
            for line in "${node_keys[@]}"; do
                key=${line%%=*}; key=${key// /}
                value=${line#*=}; value=${value# }
                case "$key:$value" in
                    log:*) value=${log_of[$node]} ;;
                    data:*) value=$tmp/$name/data/$node ;;
                    *:tcp://*:[0-9]*) value=tcp://127.0.0.1:${ports[$i]}; i=$((i + 1)) ;;
                    *:*:[0-9]*) value=127.0.0.1:${ports[$i]}; i=$((i + 1)) ;;
                esac
                [ "$key" = client ] && port_of[$node]=${value##*:}
                [ "$key" = sync ] && sync_of[$node]=$value
                echo "    $key = $value"
            done
        done
        if [ -n "$edges" ]; then
            echo "edges"
            for edge in $edges; do
                echo "    edge = ${edge%%:*} ${edge##*:}"
            done
        fi
        echo "places"
        [ -n "$places" ] && echo "$places"
        true
    } > "$file"
}

#  start_node CONFIG NODE PLACES_URL: run one node; sets pid_of[NODE].
declare -A pid_of
start_node () {
    HERD_PLACES_URL=$3 GOOGLE_API_KEY=bench-not-a-key \
        "${pin[@]}" "$herd" node "$2" -c "$1" >> "$tmp/herd.out" 2>&1 &
    pid_of[$2]=$!
    pids+=($!)
}

#  wait_links NODE DEGREE: until the node's log shows DEGREE bus links up.
wait_links () {
    for _ in $(seq 200); do
        [ "$(grep -c ' bus link up ' "${log_of[$1]}" 2>/dev/null)" -ge "$2" ] && return 0
        sleep 0.05
    done
    echo "bench: $1 has not linked to its $2 neighbours" >&2
    exit 1
}

#  Run a phase when BENCH_ONLY names it.
want () {
    [[ "$only" == *" $1 "* ]]
}

#  Start the stand-in Places server with latency ms, on the servers' CPUs
#  like every other server (unpinned, its threads hop between CPUs and pass
#  the GIL across them: 200 concurrent requests took ~1.5x as long); sets
#  standin_url. Not to be called in $(...): its pid must reach pids.
start_standin () {
    "${pin[@]}" "$python" tests/places_standin.py --port 0 --port-file "$tmp/standin$1.port" \
        --latency-ms "$1" > /dev/null 2>&1 &
    pids+=($!)
    standin_url="http://127.0.0.1:$(wait_port_file "$tmp/standin$1.port")/maps/api/place/nearbysearch/json"
}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
started=$(date +%s)

echo "herd benchmark (issue 6) - $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "machine: $ncpu CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $(uname -r)"
echo "herd: $herd; load generator pinned to CPU $gen_cpu; servers on CPUs ${server_cpus:-any}; ulimit -n $(ulimit -n)"
busy=$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 >= 20 {printf "%s(%s%%) ", $2, $1}')
[ -n "$busy" ] && echo "WARNING: other processes are using CPU: $busy- figures will be noisy"

#  WHATSAT concurrency uses the stand-in at 200 ms, and herd_bench's own
#  Places double at 200 ms (no CPU cost of its own). Elsewhere WHATSAT only
#  checks AT lines: those herds get a Places URL where nothing listens, so
#  the answer (AT line + error body) comes back at once
if want whatsat; then
    start_standin 200
    standin200=$standin_url
    "${pin[@]}" "$bench" places --port-file "$tmp/double.port" --latency-ms 200 &
    pids+=($!)
    double_port=$(wait_port_file "$tmp/double.port")
    double200="http://127.0.0.1:$double_port/maps/api/place/nearbysearch/json"
fi
noplaces="http://127.0.0.1:$("$bench" ports 1)/maps/api/place/nearbysearch/json"

#  One node, the floor and asyncio under identical IAMAT load; WHATSAT
#  concurrency against the stand-in at 200 ms
if want iamat || want whatsat; then
    write_config fast "$tmp/fast.cfg" "Hill" ""
    fast_port=${port_of[Hill]}
    #  the default was 64 until the benchmark showed 200 WHATSATs going out in waves
    write_config conc "$tmp/conc.cfg" "Hill" "" "    concurrency = 64"
    conc_port=${port_of[Hill]}
    write_config one "$tmp/one.cfg" "Hill" ""
    one_port=${port_of[Hill]}
    start_node "$tmp/one.cfg" Hill "${standin200:-$noplaces}"
    herd_pid=${pid_of[Hill]}
    wait_port "${port_of[Hill]}" "$herd_pid" "the one-node herd"
fi
if want iamat; then
    "${pin[@]}" "$floor" --port 0 --port-file "$tmp/floor.port" --name Hill &
    floor_pid=$!
    pids+=($floor_pid)
    "${pin[@]}" "$python" bench/asyncio_server.py --port 0 --port-file "$tmp/asyncio.port" \
        --name Hill --log "$tmp/asyncio.log" &
    asyncio_pid=$!
    pids+=($asyncio_pid)
    floor_port=$(wait_port_file "$tmp/floor.port")
    asyncio_port=$(wait_port_file "$tmp/asyncio.port")
    shape_args=()
    for shape in $shapes; do shape_args+=(--shape "$shape"); done
    echo
    echo "== IAMAT: one-node herd (logging on) vs the floor vs asyncio =="
    hb iamat --target "floor=$floor_port:$floor_pid" --target "herd=${port_of[Hill]}:$herd_pid" \
        --target "asyncio=$asyncio_port:$asyncio_pid" "${shape_args[@]}" \
        --seconds "$secs" --warmup "$warmup" --runs "$runs" || failed iamat $?
    stop "$floor_pid" "$asyncio_pid"
fi
if want whatsat; then
    start_node "$tmp/fast.cfg" Hill "$double200"
    fast_pid=${pid_of[Hill]}
    start_node "$tmp/conc.cfg" Hill "$double200"
    conc_pid=${pid_of[Hill]}
    wait_port "$fast_port" "$fast_pid" "the herd on the Places double"
    wait_port "$conc_port" "$conc_pid" "the herd with concurrency 64"
    echo
    echo "== WHATSAT concurrency: Places at 200 ms (the stand-in; herd_bench's double) =="
    hb whatsat --http "stand-in alone=$(cat "$tmp/standin200.port")" \
        --target "herd -> stand-in=$one_port" \
        --http "double alone=$double_port" --target "herd -> double=$fast_port" \
        --target "herd -> double conc=64=$conc_port" --k 1,50,200 --rounds 3 || failed whatsat $?
    stop "$fast_pid" "$conc_pid"
fi
if want iamat || want whatsat; then
    stop "$herd_pid"
fi

#  The default five-node topology: load on Hill, flood cost from the logs
if want fleet; then
    names="Hill Jaquez Smith Singleton Campbell"
    edges="Hill:Jaquez Hill:Smith Singleton:Jaquez Singleton:Smith Singleton:Campbell Smith:Campbell"
    write_config five "$tmp/five.cfg" "$names" "$edges"
    node_args=()
    for node in $names; do
        start_node "$tmp/five.cfg" "$node" "$noplaces"
    done
    for node in $names; do
        wait_port "${port_of[$node]}" "${pid_of[$node]}" "$node"
        node_args+=(--node "$node=${port_of[$node]}:${pid_of[$node]}")
    done
    for node in $names; do
        wait_links "$node" "$(tr ' ' '\n' <<< "$edges" | grep -cw "$node")"
    done
    echo
    echo "== The five-node herd: load on one node, every node applies every update =="
    hb fleet --load "${port_of[Hill]}" "${node_args[@]}" --shape 50x32 \
        --seconds "$secs" --warmup "$warmup" --sent-file "$tmp/fleet.sent" || failed fleet $?
    if "$herd" --help 2>&1 | grep -q "herd digest"; then
        echo "  herd digest (every node's table digest; exit 0 when all agree):"
        "$herd" digest -c "$tmp/five.cfg" 2>&1 | sed 's/^/    /' || true
    fi
    log_args=()
    for node in $names; do
        stop "${pid_of[$node]}"
        log_args+=(--log "$node=${log_of[$node]}")
    done
    hb flood --sent-file "$tmp/fleet.sent" --edges 6 "${log_args[@]}" || failed flood $?
fi

#  What one record costs the bus (the fleet's 13 records per update), on
#  the servers' first CPU; built from this tree, whatever BENCH_HERD says
if want records; then
    echo
    echo "== One record in the bus: herd_store_apply and the parsers, no sockets =="
    "$records" --cpu "${server_cpus%%[,-]*}" --rounds 7 | sed 's/^/  /' || failed records $?
fi

#  Propagation on a chain, the only way to have 3 hops (the default
#  topology's diameter is 2)
if want propagation; then
    write_config chain "$tmp/chain.cfg" "P0 P1 P2 P3" "P0:P1 P1:P2 P2:P3"
    #  The far nodes are asked over their sync sockets (GET)
    for node in P1 P2 P3; do
        [ -n "${sync_of[$node]:-}" ] || { echo "bench: herd.cfg's nodes have no sync endpoint" >&2; exit 1; }
    done
    for node in P0 P1 P2 P3; do
        start_node "$tmp/chain.cfg" "$node" "$noplaces"
    done
    for node in P0 P1 P2 P3; do
        wait_port "${port_of[$node]}" "${pid_of[$node]}" "$node"
    done
    wait_links P0 1; wait_links P1 2; wait_links P2 2; wait_links P3 1
    echo
    echo "== Propagation on the chain P0 - P1 - P2 - P3 (IAMAT at P0, GET at P1..P3) =="
    hb propagation --herd chain --origin "${port_of[P0]}" --hop "1=${sync_of[P1]}" \
        --hop "2=${sync_of[P2]}" --hop "3=${sync_of[P3]}" --samples "$prop_samples" \
        --seconds "$prop_secs" --bg-rates "0,$bg_rate" || failed propagation $?
    stop "${pid_of[P0]}" "${pid_of[P1]}" "${pid_of[P2]}" "${pid_of[P3]}"
fi

#  Memory: a fresh node for the idle connections, another for the clients,
#  so that neither figure carries the other's heap
if want memory; then
    echo
    echo "== Memory: fresh one-node herds (their ulimit -n: $(ulimit -n)) =="
    for what in idle clients; do
        write_config "mem-$what" "$tmp/mem-$what.cfg" "Hill" ""
        start_node "$tmp/mem-$what.cfg" Hill "$noplaces"
        wait_port "${port_of[Hill]}" "${pid_of[Hill]}" "the memory node"
        sleep 0.5
        if [ "$what" = idle ]; then
            hb memory --port "${port_of[Hill]}" --pid "${pid_of[Hill]}" --idle "$idle_conns" \
                --clients 0 --name Hill || failed memory $?
        else
            hb memory --port "${port_of[Hill]}" --pid "${pid_of[Hill]}" --idle 0 \
                --clients "$clients" --name Hill || failed memory $?
        fi
        stop "${pid_of[Hill]}"
    done
fi

#  Where the time goes: perf profile of a node under IAMAT load
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    if ! command -v perf > /dev/null; then
        echo "bench: BENCH_PROFILE=1 needs perf (Debian linux-perf; scripts/install-deps.sh)" >&2
    else
        write_config prof "$tmp/prof.cfg" "Hill" ""
        start_node "$tmp/prof.cfg" Hill "$noplaces"
        wait_port "${port_of[Hill]}" "${pid_of[Hill]}" "the profiled node"
        for shape in ${BENCH_PROFILE_SHAPES:-50x1 50x32}; do
            perf record -q -g -o "$tmp/perf-$shape.data" -p "${pid_of[Hill]}" \
                -- sleep "$secs" > /dev/null 2>&1 &
            perf_pid=$!
            hb iamat --target "herd=${port_of[Hill]}:${pid_of[Hill]}" --shape "$shape" \
                --seconds "$secs" --warmup 0 --runs 1 > /dev/null 2>&1
            wait "$perf_pid" || true
            echo
            echo "== Profile of the node under IAMAT load $shape (perf, self time) =="
            perf report -i "$tmp/perf-$shape.data" --stdio --no-children --sort comm,dso,sym \
                --percent-limit 1.5 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
        done
        stop "${pid_of[Hill]}"
    fi
fi

echo
echo "bench: done in $(($(date +%s) - started)) s"
