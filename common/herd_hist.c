//  herd_hist.c - a latency histogram for percentiles, fixed size, no allocation.

#include "herd_hist.h"
#include "herd_check.h"

#include <stdio.h>
#include <string.h>

static const uint64_t s_bounds_usec[HERD_HIST_BOUNDS] = HERD_HIST_BOUNDS_USEC;

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
    self->sum_usec += usec;
    for (int i = 0; i < HERD_HIST_BOUNDS; i++)
        if (usec <= s_bounds_usec[i]) {
            self->bounded[i]++;
            break;
        }
}

void
herd_hist_merge (herd_hist_t *self, const herd_hist_t *other)
{
    for (int i = 0; i < HERD_HIST_BUCKETS; i++)
        self->counts[i] += other->counts[i];
    for (int i = 0; i < HERD_HIST_BOUNDS; i++)
        self->bounded[i] += other->bounded[i];
    self->total += other->total;
    self->sum_usec += other->sum_usec;
    if (other->max_usec > self->max_usec)
        self->max_usec = other->max_usec;
}

cJSON *
herd_hist_json (const herd_hist_t *self)
{
    cJSON *json = cJSON_CreateObject ();
    cJSON *bucket = cJSON_AddObjectToObject (json, "bucket");
    uint64_t seen = 0;
    for (int i = 0; i < HERD_HIST_BOUNDS; i++) {
        char bound[32];
        snprintf (bound, sizeof (bound), "%g", (double) s_bounds_usec[i] / 1e6);
        seen += self->bounded[i];
        cJSON_AddNumberToObject (bucket, bound, (double) seen);
    }
    cJSON_AddNumberToObject (bucket, "+Inf", (double) self->total);
    cJSON_AddNumberToObject (json, "sum", (double) self->sum_usec / 1e6);
    cJSON_AddNumberToObject (json, "count", (double) self->total);
    return json;
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

    //  Prometheus buckets: exact at their bounds, cumulative, kept by a
    //  merged copy across resets
    herd_hist_t all;
    herd_hist_reset (&all);
    herd_hist_reset (&hist);
    herd_hist_add (&hist, 100);             //  le 0.0001 exactly
    herd_hist_add (&hist, 101);             //  le 0.00025
    herd_hist_add (&hist, 1000000);         //  le 1
    herd_hist_merge (&all, &hist);
    herd_hist_reset (&hist);
    herd_hist_add (&hist, 20000000);        //  past 10 s: +Inf only
    herd_hist_merge (&all, &hist);
    HERD_CHECK (all.total == 4 && all.max_usec == 20000000);
    HERD_CHECK (herd_hist_percentile_ms (&all, 100) == 20000);
    cJSON *json = herd_hist_json (&all);
    char *text = cJSON_PrintUnformatted (json);
    HERD_CHECK_CONTAINS (text, "{\"bucket\":{\"0.0001\":1,\"0.00025\":2,\"0.0005\":2,");
    HERD_CHECK_CONTAINS (text, "\"0.5\":2,\"1\":3,\"2.5\":3,\"5\":3,\"10\":3,\"+Inf\":4},");
    HERD_CHECK_CONTAINS (text, "\"sum\":21.000201,\"count\":4}");
    free (text);
    cJSON_Delete (json);
}
