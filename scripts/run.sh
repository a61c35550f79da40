#!/usr/bin/env bash
#  make run: start the five-node herd of herd.cfg in the foreground.
#  Without GOOGLE_API_KEY, also start the stand-in Places server and point
#  the herd at it. Ctrl-C (SIGINT) or SIGTERM stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${HERD_CONFIG:-herd.cfg}

standin_pid=""
cleanup () {
    [ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null && wait "$standin_pid" 2>/dev/null
    return 0
}
trap cleanup EXIT

if [ -z "${GOOGLE_API_KEY:-}" ]; then
    mkdir -p run
    rm -f run/standin.port
    /usr/bin/python3 tests/places_standin.py --port 0 --port-file run/standin.port >/dev/null &
    standin_pid=$!
    for _ in $(seq 100); do [ -s run/standin.port ] && break; sleep 0.1; done
    if [ ! -s run/standin.port ]; then
        echo "herd: the stand-in Places server did not start" >&2
        exit 1
    fi
    #  The stand-in serves both flavours; use the path of the one herd.cfg picks
    flavour=$(awk '/^places/ {p = 1; next} /^[^ #]/ {p = 0} p && $1 == "flavour" {print $3}' "$config")
    if [ "$flavour" = "new" ]; then
        path=/v1/places:searchNearby
    else
        path=/maps/api/place/nearbysearch/json
    fi
    export HERD_PLACES_URL="http://127.0.0.1:$(cat run/standin.port)$path"
    export GOOGLE_API_KEY=standin
    echo "herd: GOOGLE_API_KEY is not set: WHATSAT answers come from the project's"
    echo "herd: stand-in Places server at $HERD_PLACES_URL (made-up places)."
    echo "herd: set GOOGLE_API_KEY to use the real Google Places API."
else
    echo "herd: using the Google Places API with the key in GOOGLE_API_KEY"
fi
echo "herd: try: printf 'IAMAT kiwi +34.068930-118.445127 %s\\nWHATSAT kiwi 10 3\\n' \"\$(date +%s.%N)\" | nc -q 2 127.0.0.1 12000"
echo "herd: Ctrl-C stops the herd."
#  Not exec: the trap must stop the stand-in after the herd stops
bin/herd up -c "$config" &
herd_pid=$!
trap 'kill -TERM $herd_pid 2>/dev/null' INT TERM
wait $herd_pid || true
wait $herd_pid 2>/dev/null || true
