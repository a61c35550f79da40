//  herd_hist.h - a latency histogram for percentiles, fixed size, no allocation.
//
//  Log-linear buckets (8 per power of two) over microseconds: recording is a
//  few instructions, percentiles are within 12.5 % of the true value. Used
//  for the p50/p99 figures the monitor publishes. Alongside, exact counts at
//  fixed bounds (HERD_HIST_BOUNDS_USEC) and the sum of all values:
//  what a Prometheus histogram shows, from a copy that is never reset.

#ifndef HERD_HIST_H_INCLUDED
#define HERD_HIST_H_INCLUDED

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define HERD_HIST_BUCKETS (16 + 8 * 40)

//  Prometheus bucket bounds, microseconds: 100 us (a line answered from
//  memory) to 10 s (past any Places timeout)
#define HERD_HIST_BOUNDS_USEC                                                                  \
    {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,   \
     2500000, 5000000, 10000000}
#define HERD_HIST_BOUNDS 16

typedef struct {
    uint64_t counts[HERD_HIST_BUCKETS];
    uint64_t total;
    uint64_t max_usec;
    uint64_t sum_usec;
    uint64_t bounded[HERD_HIST_BOUNDS];    //  values in (bound i-1, bound i]
} herd_hist_t;

//  Record one latency in microseconds.
void
    herd_hist_add (herd_hist_t *self, uint64_t usec);

//  The p-th percentile (0..100) in milliseconds; 0 when empty.
double
    herd_hist_percentile_ms (const herd_hist_t *self, double p);

//  Add every value recorded in other to self (a cumulative copy).
void
    herd_hist_merge (herd_hist_t *self, const herd_hist_t *other);

//  {"bucket": {"0.0001": n, ..., "10": n, "+Inf": total}, "sum": seconds,
//  "count": total}, counts cumulative: a Prometheus histogram in the
//  monitor's STATS. Caller owns it.
cJSON *
    herd_hist_json (const herd_hist_t *self);

//  Forget every recorded value.
void
    herd_hist_reset (herd_hist_t *self);

//  Self test of this class.
void
    herd_hist_test (bool verbose);

#endif
