//  herd_hist.c - a latency histogram for percentiles, fixed size, no allocation.

#include "herd_hist.h"
#include "herd_check.h"

#include <string.h>

//  Bucket of a value: exact below 16, then 8 buckets per power of two.
static int
s_bucket (uint64_t usec)
{
    if (usec < 16)
        return (int) usec;
    int exponent = 63 - __builtin_clzll (usec);            //  >= 4
    int mantissa = (int) ((usec >> (exponent - 3)) & 7);
    int bucket = 16 + (exponent - 4) * 8 + mantissa;
    return bucket < HERD_HIST_BUCKETS ? bucket : HERD_HIST_BUCKETS - 1;
}

//  The upper bound of a bucket, in microseconds.
static uint64_t
s_upper (int bucket)
{
    if (bucket < 16)
        return (uint64_t) bucket;
    int exponent = (bucket - 16) / 8 + 4;
    uint64_t mantissa = (uint64_t) ((bucket - 16) % 8);
    return ((8 + mantissa + 1) << (exponent - 3)) - 1;
}

void
herd_hist_add (herd_hist_t *self, uint64_t usec)
{
    self->counts[s_bucket (usec)]++;
    self->total++;
    if (usec > self->max_usec)
        self->max_usec = usec;
}

double
herd_hist_percentile_ms (const herd_hist_t *self, double p)
{
    if (self->total == 0)
        return 0;
    uint64_t rank = (uint64_t) ((p / 100.0) * (double) self->total + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HERD_HIST_BUCKETS; i++) {
        seen += self->counts[i];
        if (seen >= rank) {
            uint64_t upper = s_upper (i);
            return (double) (upper < self->max_usec ? upper : self->max_usec) / 1000.0;
        }
    }
    return (double) self->max_usec / 1000.0;
}

void
herd_hist_reset (herd_hist_t *self)
{
    memset (self, 0, sizeof (*self));
}

void
herd_hist_test (bool verbose)
{
    (void) verbose;
    herd_hist_t hist;
    herd_hist_reset (&hist);
    HERD_CHECK (herd_hist_percentile_ms (&hist, 99) == 0);
    //  1..1000 ms, one each: p50 ~ 500 ms, p99 ~ 990 ms, within 12.5 %
    for (uint64_t ms = 1; ms <= 1000; ms++)
        herd_hist_add (&hist, ms * 1000);
    double p50 = herd_hist_percentile_ms (&hist, 50);
    double p99 = herd_hist_percentile_ms (&hist, 99);
    HERD_CHECK (p50 >= 500 && p50 <= 500 * 1.125);
    HERD_CHECK (p99 >= 990 && p99 <= 1000);
    HERD_CHECK (herd_hist_percentile_ms (&hist, 100) == 1000);
    //  Small values are exact; huge ones do not overflow the buckets
    herd_hist_reset (&hist);
    herd_hist_add (&hist, 7);
    HERD_CHECK (herd_hist_percentile_ms (&hist, 50) == 0.007);
    herd_hist_add (&hist, UINT64_MAX / 2);
    HERD_CHECK (herd_hist_percentile_ms (&hist, 100) > 1e9);
    //  Every bucket's bound covers the values that land in it
    for (uint64_t v = 1; v < 5000000; v = v * 3 / 2 + 1)
        HERD_CHECK (s_upper (s_bucket (v)) >= v);
}
