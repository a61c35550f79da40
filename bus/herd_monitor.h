//  herd_monitor.h - a node's events and counters for operators.
//
//  Owned by the bus. When the node names a monitor endpoint, it binds a PUB
//  socket there that any ZeroMQ tool can subscribe to; every message has
//  three frames:
//
//      ["EVENT", node, json]   {"time": 1700000000.123456, "role": "bus",
//                               "event": "link up", "peer": "Smith",
//                               "detail": "tcp://127.0.0.1:13002"}
//      ["STATS", node, json]   once a second: {"time": ..., "node": "Hill",
//                               "bus": {...}, "gateway": {...}, "places": {...}}
//
//  Each role's object holds its counters (numbers) and, for the bus, its
//  "links" ({"Smith": "up", ...}) and "digest". When the node names a
//  metrics address, the same counters are served as Prometheus text on
//  http://ADDRESS/metrics (libmicrohttpd), each number as
//  herd_<role>_<name>{node="NAME"} and each link as
//  herd_bus_link_up{node="NAME",peer="PEER"} 0|1.

#ifndef HERD_MONITOR_H_INCLUDED
#define HERD_MONITOR_H_INCLUDED

#include <cjson/cJSON.h>
#include <czmq.h>

#include "../common/herd_config.h"
#include "../common/herd_log.h"

typedef struct _herd_monitor_t herd_monitor_t;

//  Bind the node's monitor endpoint and metrics address (either may be
//  absent). Returns NULL (logged, printed) when one cannot be bound.
herd_monitor_t *
    herd_monitor_new (const herd_node_t *node, herd_log_t *log);

//  Stop serving; nulls the caller's pointer.
void
    herd_monitor_destroy (herd_monitor_t **self_p);

//  Publish one event.
void
    herd_monitor_event (herd_monitor_t *self, const char *role, const char *event,
                        const char *peer, const char *detail);

//  Replace a role's counters with stats (taken over).
void
    herd_monitor_set (herd_monitor_t *self, const char *role, cJSON *stats);

//  Publish a STATS snapshot of every role and refresh the metrics text.
void
    herd_monitor_publish (herd_monitor_t *self);

//  The Prometheus text for a STATS snapshot; caller frees.
char *
    herd_monitor_prometheus (const cJSON *snapshot);

//  Self test of this class.
void
    herd_monitor_test (bool verbose);

#endif
