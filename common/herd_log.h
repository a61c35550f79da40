//  herd_log.h - a node's log file: one event a line, microsecond timestamp first.
//
//  Lines look like
//
//      2026-11-23T00:43:33.123456Z Hill gateway conn=7 in IAMAT kiwi ...
//
//  Writes are buffered in memory and reach the file as whole lines (the file
//  is opened O_APPEND, so the roles of a split node can share one file),
//  written by the log's own thread when a 64 KB buffer fills, at the latest
//  one second after they were logged, and at flush and destroy. Thread-safe:
//  the three actors of one process share one log.

#ifndef HERD_LOG_H_INCLUDED
#define HERD_LOG_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _herd_log_t herd_log_t;

//  Open (create, append to) a log file; creates missing parent directories.
//  node is written on every line. Returns NULL and sets errno on failure.
herd_log_t *
    herd_log_new (const char *path, const char *node);

//  Flush and close; nulls the caller's pointer.
void
    herd_log_destroy (herd_log_t **self_p);

//  Log one event of a role ("gateway", "bus", "places", "main").
void
    herd_log_printf (herd_log_t *self, const char *role, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Log one event whose last part is raw client bytes: prefix, then data
//  with bytes that would break the one-event-a-line rule (\n, \r, NUL and
//  other control bytes) written as \xHH. Used for client lines in and out.
void
    herd_log_data (herd_log_t *self, const char *role, const char *prefix,
                   const char *data, size_t size);

//  Log a line received on (dir "in") or sent to (dir "out") client
//  connection conn, as "conn=N in DATA", escaped as herd_log_data does, less
//  one "\n" that ends data. usec is the event's time in microseconds since
//  the epoch, or 0 for now (a loop that reads the clock once per turn passes
//  that time).
void
    herd_log_conn (herd_log_t *self, const char *role, uint64_t conn, const char *dir,
                   int64_t usec, const char *data, size_t size);

//  Write buffered lines, then close and reopen the file by its path (after
//  logrotate moved it away). Returns 0, or -1 (errno set) when the file
//  cannot be opened again; the old file stays in use then.
int
    herd_log_reopen (herd_log_t *self);

//  Write all buffered lines now.
void
    herd_log_flush (herd_log_t *self);

//  Self test of this class.
void
    herd_log_test (bool verbose);

#endif
