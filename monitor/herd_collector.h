//  herd_collector.h - the node's monitoring path: every role's reports in,
//  the operator's views out.
//
//  An actor, one per node (in a split node, in the bus's process). It binds
//  a PULL where each role's herd_report (common/herd_report.h) pushes its
//  STATS once a second and its events as they happen: the gateway, the bus
//  and the places worker each report for themselves, over inproc:// in one
//  process or ipc:// across a split node's processes. What arrives goes to
//  the node's herd_monitor (herd_monitor.h): events are published at once on
//  the monitor PUB, and once a second a snapshot of every role's latest
//  counters is published and becomes the /metrics, /livez and /readyz pages.
//  A role's STATS from another process are its sign of life (herd_alive).
//  With neither a monitor endpoint nor a metrics address configured, the
//  collector still runs, for that sign of life alone.
//
//      gateway --\                           /--> monitor PUB (herd monitor, zmq tools)
//      bus ------+-- PULL  herd_collector --+
//      places ---/                           \--> HTTP /metrics /livez /readyz
//
//  The collector owns no state of the node: a stall or a flood of reports
//  here never slows a role (reports are dropped, not queued, when it lags).

#ifndef HERD_COLLECTOR_H_INCLUDED
#define HERD_COLLECTOR_H_INCLUDED

#include <czmq.h>

#include "../common/herd_config.h"
#include "../common/herd_log.h"

typedef struct {
    const herd_node_t *node;        //  read at set-up only (a reload may free it)
    const char *endpoint;           //  where to bind the PULL the roles report to
    const char *journal;            //  the journal format, for herd_build_info
    herd_log_t *log;                //  shared log, not owned
} herd_collector_args_t;

//  The actor: zactor_new (herd_collector_actor, &args). After zactor_new,
//  zsock_wait (actor) returns 0 when it serves, or non-zero when set-up
//  failed (a bind; logged and printed), after which destroy it.
void
    herd_collector_actor (zsock_t *pipe, void *args);

//  Self test of this class.
void
    herd_collector_test (bool verbose);

#endif
