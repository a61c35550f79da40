//  records_bench.c - what one record costs the bus: herd_store_apply and the
//  record parsers on one core, without sockets, threads or the log.
//
//      records_bench [--cpu N] [--rounds R] [--records N] [--clients C]
//
//  The bus of a five-node herd reads 13 records per update (BENCHMARKS.md,
//  "Flood cost"), most of them from neighbours; this isolates that work.
//  Each round times, in nanoseconds per record:
//
//      neighbour, applied  herd_store_apply of untrusted lines, each newer
//                          than the one stored (peek, key, find, finish, keep)
//      neighbour, stale    the same lines again: all stale (peek, key, find)
//      own gateway         trusted lines (the gateway validated them)
//      parse, peek         herd_record_parse and herd_record_peek alone
//
//  and prints the median of the rounds and their spread [min..max]. The
//  lines are AT lines of PROTOCOL.md's shape, C clients, times increasing.

#include "../bus/herd_store.h"
#include "../common/herd_record.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_LINE_MAX 128

typedef enum { S_APPLIED, S_STALE, S_TRUSTED, S_PARSE, S_PEEK, S_CASES } s_case_t;

static const char *s_case_names[S_CASES] = {
    "neighbour, applied", "neighbour, stale", "own gateway",
    "herd_record_parse",  "herd_record_peek",
};

static double
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec * 1e9 + (double)now.tv_nsec;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  Apply every line to store; returns how many had the result expected.
static size_t
s_apply_all (herd_store_t *store, char (*lines)[S_LINE_MAX], const size_t *sizes, size_t count,
             bool trusted, herd_store_result_t expected)
{
    size_t matched = 0;
    for (size_t i = 0; i < count; i++)
        matched += herd_store_apply (store, lines[i], sizes[i], trusted, NULL) == expected;
    return matched;
}

//  Time one case over every line; ns per record. Aborts if a record did not
//  do what the case measures (the figure would be of something else).
static double
s_time_case (s_case_t which, char (*lines)[S_LINE_MAX], const size_t *sizes, size_t count)
{
    herd_store_t *store = herd_store_new (NULL, NULL);
    if (which == S_STALE)
        s_apply_all (store, lines, sizes, count, false, HERD_STORE_APPLIED);
    herd_record_t record;
    size_t matched = 0;
    double start = s_now_ns ();
    switch (which) {
    case S_APPLIED:
        matched = s_apply_all (store, lines, sizes, count, false, HERD_STORE_APPLIED);
        break;
    case S_STALE:
        matched = s_apply_all (store, lines, sizes, count, false, HERD_STORE_STALE);
        break;
    case S_TRUSTED:
        matched = s_apply_all (store, lines, sizes, count, true, HERD_STORE_APPLIED);
        break;
    case S_PARSE:
        for (size_t i = 0; i < count; i++)
            matched += herd_record_parse (lines[i], sizes[i], &record) == 0;
        break;
    case S_PEEK:
        for (size_t i = 0; i < count; i++)
            matched += herd_record_peek (lines[i], sizes[i], &record) == 0;
        break;
    case S_CASES:
        break;
    }
    double elapsed = s_now_ns () - start;
    herd_store_destroy (&store);
    if (matched != count) {
        fprintf (stderr, "records_bench: %s: %zu of %zu records as expected\n", s_case_names[which],
                 matched, count);
        exit (1);
    }
    return elapsed / (double)count;
}

static void
s_usage (void)
{
    fprintf (stderr, "usage: records_bench [--cpu N] [--rounds R] [--records N] [--clients C]\n");
    exit (2);
}

int
main (int argc, char *argv[])
{
    long cpu = -1, rounds = 7, count = 200000, clients = 50;
    //  Options come in pairs
    if (argc % 2 == 0)
        s_usage ();
    for (int i = 1; i < argc; i += 2) {
        char *end;
        long value = strtol (argv[i + 1], &end, 10);
        if (*end || value < 0)
            s_usage ();
        if (strcmp (argv[i], "--cpu") == 0)
            cpu = value;
        else if (strcmp (argv[i], "--rounds") == 0 && value > 0)
            rounds = value;
        else if (strcmp (argv[i], "--records") == 0 && value > 0)
            count = value;
        else if (strcmp (argv[i], "--clients") == 0 && value > 0 && value <= count)
            clients = value;
        else
            s_usage ();
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO (&set);
        CPU_SET ((int)cpu, &set);
        if (sched_setaffinity (0, sizeof (set), &set) != 0)
            perror ("records_bench: sched_setaffinity");
    }
    char (*lines)[S_LINE_MAX] = malloc ((size_t)count * S_LINE_MAX);
    size_t *sizes = malloc ((size_t)count * sizeof (size_t));
    double *figures = malloc ((size_t)rounds * S_CASES * sizeof (double));
    if (!lines || !sizes || !figures) {
        free (figures);
        free (sizes);
        free (lines);
        return 1;
    }
    for (long i = 0; i < count; i++) {
        int size = snprintf (lines[i], S_LINE_MAX,
                             "AT Hill +0.%09ld client%05ld.cs.ucla.edu +34.068930-118.445127 "
                             "%ld.%09ld",
                             i % 1000000000, i % clients, 1621464827 + i / clients,
                             (i * 7919) % 1000000000);
        sizes[i] = (size_t)size;
    }
    //  Rounds interleave the cases, so noise on a shared machine hits all
    for (long round = 0; round < rounds; round++)
        for (int which = 0; which < S_CASES; which++)
            figures[which * rounds + round] =
                s_time_case ((s_case_t)which, lines, sizes, (size_t)count);
    printf ("Per record, ns: median of %ld rounds of %ld records (%ld clients) [min..max]\n",
            rounds, count, clients);
    for (int which = 0; which < S_CASES; which++) {
        double *row = figures + which * rounds;
        qsort (row, (size_t)rounds, sizeof (double), s_compare);
        printf ("  %-20s %7.1f   [%.1f..%.1f]\n", s_case_names[which], row[rounds / 2], row[0],
                row[rounds - 1]);
    }
    free (figures);
    free (sizes);
    free (lines);
    return 0;
}
