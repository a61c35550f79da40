//  herd_alive.h - proof that every actor's loop turns.
//
//  A process-wide table, one entry a role. Each actor's loop calls
//  herd_alive_beat once a turn with the monotonic time (zclock_mono); the loops wake at
//  least once a second (the gateway's tick, the bus's heartbeat, the places
//  worker's longest poll, the log writer's quarter second, the collector's
//  second), so a healthy actor's last turn is under about a second old. A
//  role whose actor runs in another process (a split node) is known to the
//  monitor's collector by its STATS, sent once a second from that actor's
//  loop: herd_alive_heard. A role neither
//  turned nor heard in this process is absent.
//
//  A role whose last turn (or STATS) is older than HERD_ALIVE_BOUND_MS is
//  stalled. The node's main thread calls herd_alive_check once a second,
//  which logs "ROLE stalled: ..." once when a role passes the bound and
//  "ROLE turning again after N ms" when it turns again; the node's monitor
//  shows each role's age and stalled flag in its STATS and metrics.
//
//  Beats and reads are relaxed atomics: any thread may beat or read.

#ifndef HERD_ALIVE_H_INCLUDED
#define HERD_ALIVE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "herd_log.h"

//  5 s: five times the longest sleep of any loop (1 s), so scheduling
//  delays on a loaded host, a sanitizer build or STATS that crossed
//  processes stay well under it, while an actor stuck in
//  one call (a hung disk, a lock, a runaway turn) shows within seconds
#define HERD_ALIVE_BOUND_MS 5000

typedef enum {
    HERD_ALIVE_GATEWAY,
    HERD_ALIVE_BUS,
    HERD_ALIVE_PLACES,
    HERD_ALIVE_LOG,             //  the log's writer thread
    HERD_ALIVE_MONITOR,         //  the monitor's collector (monitor/herd_collector.h)
    HERD_ALIVE_ROLES
} herd_alive_role_t;

//  The role's name: "gateway", "bus", "places", "log" or "monitor".
const char *
    herd_alive_name (herd_alive_role_t role);

//  The role called name, or -1.
int
    herd_alive_role (const char *name);

//  An actor's loop turned at now_ms (monotonic).
void
    herd_alive_beat (herd_alive_role_t role, int64_t now_ms);

//  STATS of a role running in another process arrived at now_ms; ignored
//  for a role whose loop beats in this process.
void
    herd_alive_heard (herd_alive_role_t role, int64_t now_ms);

//  How old the role's last turn (or STATS) is at now_ms; -1 when absent.
int64_t
    herd_alive_age_ms (herd_alive_role_t role, int64_t now_ms);

//  True when the role's loop beats in this process (else known by STATS).
bool
    herd_alive_local (herd_alive_role_t role);

//  True when the role is present and its age passed HERD_ALIVE_BOUND_MS.
bool
    herd_alive_stalled (herd_alive_role_t role, int64_t now_ms);

//  Log each role that stalled or turns again since the last call (one
//  thread calls it: the node's main thread, once a second). Returns the
//  roles stalled now. The first call, and one that comes more than half
//  the bound after the last (this process was stopped), judge nothing.
int
    herd_alive_check (herd_log_t *log, int64_t now_ms);

//  Self test of this class.
void
    herd_alive_test (bool verbose);

#endif
