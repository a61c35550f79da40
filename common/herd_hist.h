//  herd_hist.h - a latency histogram for percentiles, fixed size, no allocation.
//
//  Log-linear buckets (8 per power of two) over microseconds: recording is a
//  few instructions, percentiles are within 12.5 % of the true value. Used
//  for the p50/p99 figures the monitor publishes.

#ifndef HERD_HIST_H_INCLUDED
#define HERD_HIST_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#define HERD_HIST_BUCKETS (16 + 8 * 40)

typedef struct {
    uint64_t counts[HERD_HIST_BUCKETS];
    uint64_t total;
    uint64_t max_usec;
} herd_hist_t;

//  Record one latency in microseconds.
void
    herd_hist_add (herd_hist_t *self, uint64_t usec);

//  The p-th percentile (0..100) in milliseconds; 0 when empty.
double
    herd_hist_percentile_ms (const herd_hist_t *self, double p);

//  Forget every recorded value.
void
    herd_hist_reset (herd_hist_t *self);

//  Self test of this class.
void
    herd_hist_test (bool verbose);

#endif
