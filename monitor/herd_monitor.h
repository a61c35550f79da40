//  herd_monitor.h - a node's events and counters for operators.
//
//  Owned by the node's collector (herd_collector.h), which feeds it each
//  role's reports. When the node names a monitor endpoint, it binds a PUB
//  socket there that any ZeroMQ tool can subscribe to; every message has
//  three frames:
//
//      ["EVENT", node, json]   {"time": 1700000000.123456, "role": "bus",
//                               "event": "link up", "peer": "Smith",
//                               "detail": "tcp://127.0.0.1:13002"}
//      ["STATS", node, json]   once a second: {"time": ..., "node": "Hill",
//                               "bus": {...}, "gateway": {...}, "places": {...},
//                               "alive": {"gateway": {"last_turn_age_ms": 12,
//                                         "stalled": false}, ...}}
//
//  Each role's object holds its counters (numbers) and, for the bus, its
//  "links" ({"Smith": "up", ...}) and "digest". "alive" holds, for each
//  role present (herd_alive: gateway, bus, places, log, monitor), how old its loop's
//  last turn is (a split node's gateway and places: its last STATS) and
//  whether that passed the bound. Rates (*_per_s) and percentiles (*_ms)
//  are for `herd monitor`; a role's latency histogram since start is an
//  object {"bucket": {"0.0001": n, ..., "+Inf": n}, "sum": s, "count": n}.
//
//  When the node names a metrics address, libmicrohttpd serves on it:
//
//      /metrics    Prometheus text (format 0.0.4), every family with # HELP
//                  and # TYPE: each number of a role as herd_<role>_<name>
//                  {node="NAME"}, a counter when the name ends in _total,
//                  else a gauge (rates and _ms percentiles left out); each
//                  *_seconds object as a histogram; each link as
//                  herd_bus_link_up{node,peer} 0|1; herd_build_info{node,
//                  version,journal,zmq} 1; herd_process_start_time_seconds;
//                  and each role's liveness as of the request,
//                  herd_actor_last_turn_age_seconds{node,role} and
//                  herd_actor_stalled{node,role} 0|1.
//      /livez      200 "ok", or 503 with a line for each stalled role.
//      /readyz     200 "ok", or 503 with a line for each thing not ready:
//                  a stalled role, the journal still loading (no STATS
//                  yet), no gateway STATS yet (not listening), the journal
//                  failing, a link to a neighbour not up.

#ifndef HERD_MONITOR_H_INCLUDED
#define HERD_MONITOR_H_INCLUDED

#include <cjson/cJSON.h>
#include <czmq.h>

#include "../common/herd_config.h"
#include "../common/herd_log.h"

typedef struct _herd_monitor_t herd_monitor_t;

//  Bind the node's monitor endpoint and metrics address (either may be
//  absent); journal: the journal format herd_build_info shows. Returns NULL (logged, printed) when one cannot be bound.
herd_monitor_t *
    herd_monitor_new (const herd_node_t *node, const char *journal, herd_log_t *log);

//  Stop serving; nulls the caller's pointer.
void
    herd_monitor_destroy (herd_monitor_t **self_p);

//  Publish one event.
void
    herd_monitor_event (herd_monitor_t *self, const char *role, const char *event,
                        const char *peer, const char *detail);

//  Replace a role's counters with stats (taken over). STATS of a role in
//  another process (a split node's gateway or places) are its sign of life:
//  herd_alive_heard. self may be NULL (nothing served): only that then.
void
    herd_monitor_set (herd_monitor_t *self, const char *role, cJSON *stats);

//  Publish a STATS snapshot of every role and refresh the metrics text.
void
    herd_monitor_publish (herd_monitor_t *self);

//  The Prometheus text for a STATS snapshot; caller frees.
char *
    herd_monitor_prometheus (const cJSON *snapshot);

//  The Prometheus text of every role's liveness at now_ms (herd_alive):
//  herd_actor_last_turn_age_seconds and herd_actor_stalled; caller frees.
char *
    herd_monitor_alive (const char *node, int64_t now_ms);

//  The Prometheus text of herd_build_info and
//  herd_process_start_time_seconds (started: wall-clock s); caller frees.
char *
    herd_monitor_build (const char *node, const char *journal, double started);

//  What a STATS snapshot shows not ready, a line each ("" when ready):
//  no gateway STATS yet (not listening), no bus STATS (journal loading),
//  the journal failing, a link not up. Caller frees.
char *
    herd_monitor_unready (const cJSON *snapshot);

//  Self test of this class.
void
    herd_monitor_test (bool verbose);

#endif
