//  herd_report.h - what a role tells its node's monitor.
//
//  Each actor (gateway, bus, places) holds one: a PUSH socket connected to
//  the node's monitor endpoint, where the monitor's collector binds a PULL
//  (monitor/herd_collector.h). A role reports its counters once a second
//  from its own loop and its events as they happen (herd_msg.h, "role ->
//  monitor"). Reports never wait: one the monitor cannot take now (not
//  started yet, or its queue full) is dropped, so a role never slows for
//  its monitor. A NULL report (no endpoint: a self-test) drops everything.

#ifndef HERD_REPORT_H_INCLUDED
#define HERD_REPORT_H_INCLUDED

#include <cjson/cJSON.h>
#include <czmq.h>

typedef struct _herd_report_t herd_report_t;

//  Connect role's reports to endpoint; NULL endpoint gives NULL.
herd_report_t *
    herd_report_new (const char *endpoint, const char *role);

//  Disconnect; nulls the caller's pointer.
void
    herd_report_destroy (herd_report_t **self_p);

//  Report the role's counters (taken over, freed). self may be NULL.
void
    herd_report_stats (herd_report_t *self, cJSON *stats);

//  Report an event; peer and detail may be NULL. self may be NULL.
void
    herd_report_event (herd_report_t *self, const char *event, const char *peer,
                       const char *detail);

//  Reports dropped so far (the monitor could not take them).
uint64_t
    herd_report_dropped (herd_report_t *self);

//  Self test of this class.
void
    herd_report_test (bool verbose);

#endif
