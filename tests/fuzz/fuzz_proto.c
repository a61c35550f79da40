//  fuzz_proto.c - libFuzzer target: the client line parser, with an oracle.
//
//  The input is cut into lines at '\n', as the gateway cuts a connection's
//  bytes, and each line (up to 16) goes to herd_proto_parse. An accepted
//  IAMAT must give an AT line that herd_record_parse takes back with the
//  very same fields (the bus would otherwise drop or misread our own
//  updates), and a position and time in range as strtod reads them; an
//  accepted WHATSAT must hold a radius in (0, 50] and a bound in 1..20. Any
//  mismatch aborts, so libFuzzer keeps the input.

#include "../../common/herd_proto.h"
#include "../../common/herd_record.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Abort with a message when cond is false: libFuzzer reports a crash.
#define S_ORACLE(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf (stderr, "fuzz_proto: oracle failed at line %d: %s\n", __LINE__,    \
                     #cond);                                                            \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

#define S_LINES_MAX 16

//  True if two spans hold the same bytes.
static bool
s_same (herd_span_t a, herd_span_t b)
{
    return a.size == b.size && (a.size == 0 || memcmp (a.data, b.data, a.size) == 0);
}

//  True if span lies inside [line, line + size).
static bool
s_inside (herd_span_t span, const char *line, size_t size)
{
    return span.data >= line && span.size <= size
           && (size_t) (span.data - line) <= size - span.size;
}

//  strtod of a span, through a NUL-terminated copy.
static double
s_strtod (herd_span_t span)
{
    char buffer[64];
    if (span.size >= sizeof (buffer))
        return -1;
    memcpy (buffer, span.data, span.size);
    buffer[span.size] = 0;
    char *end = NULL;
    double value = strtod (buffer, &end);
    S_ORACLE (end == buffer + span.size);
    return value;
}

//  The AT line for cmd at server, received at now, must parse back whole.
static void
s_check_at (const herd_cmd_t *cmd, const char *server, int64_t now_sec, int32_t now_nsec)
{
    size_t size = 0;
    char *line = herd_proto_at_line (server, cmd, now_sec, now_nsec, &size);
    S_ORACLE (line);
    S_ORACLE (strlen (line) == size);
    herd_record_t record;
    if (herd_record_parse (line, size, &record) != 0) {
        fprintf (stderr, "fuzz_proto: our own AT line is refused: \"%s\"\n", line);
        abort ();
    }
    char diff[HERD_PROTO_DIFF_MAX];
    size_t diff_size =
        herd_proto_format_diff (now_sec, now_nsec, cmd->time_sec, cmd->time_nsec, diff);
    herd_span_t server_span = {server, strlen (server)};
    S_ORACLE (s_same (record.line, (herd_span_t){line, size}));
    S_ORACLE (s_same (record.origin, server_span));
    S_ORACLE (s_same (record.diff, (herd_span_t){diff, diff_size}));
    S_ORACLE (s_same (record.client, cmd->client));
    S_ORACLE (s_same (record.position, cmd->position));
    S_ORACLE (s_same (record.time, cmd->time));
    S_ORACLE (record.time_sec == cmd->time_sec);
    S_ORACLE (record.time_nsec == cmd->time_nsec);
    free (line);
}

//  Check one line.
static void
s_check_line (const char *line, size_t size)
{
    herd_cmd_t cmd;
    int rc = herd_proto_parse (line, size, &cmd);
    S_ORACLE (rc == 0 || rc == -1);
    if (rc != 0) {
        S_ORACLE (cmd.kind == HERD_CMD_INVALID);
        return;
    }
    S_ORACLE (memchr (line, 0, size) == NULL);
    S_ORACLE (cmd.client.size > 0 && s_inside (cmd.client, line, size));
    if (cmd.kind == HERD_CMD_IAMAT) {
        S_ORACLE (s_inside (cmd.position, line, size) && s_inside (cmd.time, line, size));
        S_ORACLE (cmd.time_sec >= 0 && cmd.time_sec <= 999999999999999999LL);
        S_ORACLE (cmd.time_nsec >= 0 && cmd.time_nsec <= 999999999);
        //  The position holds two signed numbers in range
        herd_span_t lat, lon;
        S_ORACLE (herd_proto_parse_position (cmd.position.data, cmd.position.size, &lat, &lon)
                  == 0);
        S_ORACLE (lat.size + lon.size == cmd.position.size);
        double lat_value = s_strtod (lat), lon_value = s_strtod (lon);
        S_ORACLE (lat_value >= -90 && lat_value <= 90);
        S_ORACLE (lon_value >= -180 && lon_value <= 180);
        //  The time re-parses to the same value
        int64_t sec;
        int32_t nsec;
        S_ORACLE (herd_proto_parse_time (cmd.time.data, cmd.time.size, &sec, &nsec) == 0);
        S_ORACLE (sec == cmd.time_sec && nsec == cmd.time_nsec);
        //  Servers of every name length, clocks before, at and after the client's
        s_check_at (&cmd, "Hill", 1700000000, 123456789);
        s_check_at (&cmd, "a", cmd.time_sec, cmd.time_nsec);
        s_check_at (&cmd, "Node-1.x_y", 0, 0);
        s_check_at (&cmd, "Campbell", 999999999999999999LL, 999999999);
        s_check_at (&cmd, "Smith", cmd.time_sec, 0);
    }
    else {
        S_ORACLE (cmd.kind == HERD_CMD_WHATSAT);
        S_ORACLE (s_inside (cmd.radius, line, size));
        double radius = s_strtod (cmd.radius);
        S_ORACLE (radius > 0 && radius <= 50);
        S_ORACLE (cmd.bound >= 1 && cmd.bound <= 20);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  Lines are copied to buffers of their exact size, so that ASan sees
    //  any read past the end. At most S_LINES_MAX lines a run: more lines
    //  test nothing new, and would only slow the fuzzer down
    const char *text = (const char *) data;
    size_t start = 0;
    for (size_t count = 0; count < S_LINES_MAX && start <= size; count++) {
        const char *newline = memchr (text + start, '\n', size - start);
        size_t end = newline ? (size_t) (newline - text) : size;
        char *line = malloc (end > start ? end - start : 1);
        if (!line)
            return 0;
        memcpy (line, text + start, end - start);
        s_check_line (line, end - start);
        free (line);
        start = end + 1;
    }
    return 0;
}
