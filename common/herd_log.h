//  herd_log.h - a node's log file: one event a line, microsecond timestamp first.
//
//  Lines look like
//
//      2026-11-23T00:43:33.123456Z Hill gateway conn=7 in IAMAT kiwi ...
//
//  or, as JSON (herd_log_configure), one object a line:
//
//      {"time":"2026-11-23T00:43:33.123456Z","node":"Hill","role":"gateway",
//       "level":"info","conn":7,"dir":"in","line":"IAMAT kiwi ..."}
//      {"time":"...","node":"Hill","role":"bus","level":"warning","event":"link down ..."}
//
//  where line and event hold the bytes with each control byte, DEL, '\\'
//  and byte that is not part of valid UTF-8 as \xHH (the text log's escape
//  of client bytes, plus non-UTF-8), then quoted as JSON strings are; a
//  line cut at 1024 bytes has "bytes":N, its size in all.
//
//  Writes are buffered in memory and reach the file as whole lines (the file
//  is opened O_APPEND, so the roles of a split node can share one file),
//  written by the log's own thread when a 64 KB buffer fills, at the latest
//  one second after they were logged, and at flush and destroy. Thread-safe:
//  the three actors of one process share one log.

#ifndef HERD_LOG_H_INCLUDED
#define HERD_LOG_H_INCLUDED

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _herd_log_t herd_log_t;

//  Levels of events, lowest first; an event under the log's level is
//  dropped before it is formatted. herd_log_printf logs at info.
typedef enum {
    HERD_LOG_DEBUG,
    HERD_LOG_INFO,
    HERD_LOG_WARNING,
    HERD_LOG_ERROR
} herd_log_level_t;

//  The part of a log that callers read inline (herd_log_wants_conn); the
//  first member of every herd_log_t. Set it with herd_log_configure.
typedef struct {
    atomic_uint_fast64_t requests_every;    //  0: no client lines; N: serial % N == 0
} herd_log_head_t;

//  Open (create, append to) a log file; creates missing parent directories.
//  node is written on every line. Returns NULL and sets errno on failure.
herd_log_t *
    herd_log_new (const char *path, const char *node);

//  Size the log (safe at any time, from any thread; a new log logs every
//  client line, events from info, as text):
//  requests_every: 0 logs no client lines, 1 every connection's, N the
//  lines of connections whose serial is a multiple of N (a connection's
//  lines stay together); level: the lowest event level written; json: one
//  JSON object a line instead of text (see README, Logs).
void
    herd_log_configure (herd_log_t *self, uint64_t requests_every, herd_log_level_t level,
                        bool json);

//  True if the lines of client connection conn are logged: one load and a
//  branch, so a caller can skip preparing herd_log_conn's arguments.
static inline bool
herd_log_wants_conn (herd_log_t *self, uint64_t conn)
{
    if (!self)
        return false;
    uint64_t every = atomic_load_explicit (&((herd_log_head_t *) self)->requests_every,
                                           memory_order_relaxed);
    return every == 1 || (every > 1 && conn % every == 0);
}

//  Flush and close; nulls the caller's pointer.
void
    herd_log_destroy (herd_log_t **self_p);

//  Log one event of a role ("gateway", "bus", "places", "main"), at info.
void
    herd_log_printf (herd_log_t *self, const char *role, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Log one event at debug, warning, error: connection and catch-up chatter
//  is info; a link down, a failing journal, a refused or stalled peer is a
//  warning; what stops a role (cannot bind, cannot open) is an error.
void
    herd_log_debug (herd_log_t *self, const char *role, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));
void
    herd_log_warning (herd_log_t *self, const char *role, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));
void
    herd_log_error (herd_log_t *self, const char *role, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Name of a level ("debug", "info", "warning", "error").
const char *
    herd_log_level_name (herd_log_level_t level);

//  Log one event whose last part is raw client bytes: prefix, then data
//  with bytes that would break the one-event-a-line rule (\n, \r, NUL and
//  other control bytes) written as \xHH. Used for client lines in and out.
void
    herd_log_data (herd_log_t *self, const char *role, const char *prefix,
                   const char *data, size_t size);

//  Log a line received on (dir "in") or sent to (dir "out") client
//  connection conn, as "conn=N in DATA", escaped as herd_log_data does, less
//  one "\n" that ends data; nothing when herd_log_wants_conn says no. usec
//  is the event's time in microseconds since the epoch, or 0 for now (a
//  loop that reads the clock once per turn passes that time).
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
