//  herd_proto.h - the client line protocol: parsing commands, formatting AT lines.
//
//  Pure functions on bytes (PROTOCOL.md is the contract). A line is given
//  without its '\n'; it may hold any bytes. Parsed fields are views into the
//  caller's line, never copies, so operands are echoed byte for byte.

#ifndef HERD_PROTO_H_INCLUDED
#define HERD_PROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  A view of bytes owned by someone else.
typedef struct {
    const char *data;
    size_t size;
} herd_span_t;

typedef enum {
    HERD_CMD_INVALID = 0,
    HERD_CMD_IAMAT,
    HERD_CMD_WHATSAT,
} herd_cmd_kind_t;

typedef struct {
    herd_cmd_kind_t kind;
    herd_span_t client;         //  client id (both commands)
    //  IAMAT
    herd_span_t position;       //  "+34.068930-118.445127"
    herd_span_t time;           //  "1621464827.959498503"
    int64_t time_sec;           //  client time, whole seconds
    int32_t time_nsec;          //  client time, nanoseconds
    //  WHATSAT
    herd_span_t radius;         //  kilometres as written, in (0, 50]
    int bound;                  //  1..20
} herd_cmd_t;

//  Parse one line (without '\n'). Returns 0 and fills cmd for a valid IAMAT
//  or WHATSAT, else -1 (cmd->kind is HERD_CMD_INVALID). Fields are split on
//  runs of space, \t, \r, \f, \v; a NUL byte anywhere makes the line invalid.
int
    herd_proto_parse (const char *line, size_t size, herd_cmd_t *cmd);

//  Parse a client time: digits (1..18), optionally '.' and 1..9 digits.
//  Returns 0 or -1.
int
    herd_proto_parse_time (const char *text, size_t size, int64_t *sec_p, int32_t *nsec_p);

//  Parse an ISO 6709 position "±DD.ddd±DDD.ddd" (both signs required,
//  latitude in [-90, 90], longitude in [-180, 180], up to 15 fraction
//  digits) into views of its two numbers, each with its sign. Returns 0 or -1.
int
    herd_proto_parse_position (const char *text, size_t size, herd_span_t *lat_p,
                               herd_span_t *lon_p);

//  Write value in decimal, no terminator, into out (at least 20 bytes).
//  Returns its length. For hot paths where snprintf shows in profiles.
size_t
    herd_proto_format_u64 (uint64_t value, char *out);

//  Write the signed time difference now - client, "+0.263873386" (sign
//  always, exactly 9 fraction digits), computed in integer nanoseconds, into
//  buffer (at least HERD_PROTO_DIFF_MAX bytes). Returns its length.
#define HERD_PROTO_DIFF_MAX 32
size_t
    herd_proto_format_diff (int64_t now_sec, int32_t now_nsec, int64_t sec, int32_t nsec,
                            char *buffer);

//  Build the AT line (no '\n') for an IAMAT at server, received at now.
//  Returns a new string of *size_p bytes; caller frees.
char *
    herd_proto_at_line (const char *server, const herd_cmd_t *iamat, int64_t now_sec,
                        int32_t now_nsec, size_t *size_p);

//  Write the same AT line, NUL-terminated, into buffer of max bytes, if it
//  fits (like snprintf). Returns its length; when that is max or more,
//  nothing was written: call again with a bigger buffer.
size_t
    herd_proto_format_at (const char *server, const herd_cmd_t *iamat, int64_t now_sec,
                          int32_t now_nsec, char *buffer, size_t max);

//  Self test of this class.
void
    herd_proto_test (bool verbose);

#endif
