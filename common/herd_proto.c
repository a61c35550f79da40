//  herd_proto.c - the client line protocol: strict parsing, exact AT lines.

#include "herd_proto.h"
#include "herd_decimal.h"
#include "herd_check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HERD_MAX_FIELDS 5       //  longest command: WHATSAT id radius bound = 4

//  True for the white space of PROTOCOL.md ('\n' never reaches here).
static inline bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

//  True for an ASCII digit.
static inline bool
s_is_digit (char c)
{
    return c >= '0' && c <= '9';
}

//  True if span equals the C string word.
static bool
s_span_is (herd_span_t span, const char *word)
{
    size_t len = strlen (word);
    return span.size == len && memcmp (span.data, word, len) == 0;
}

//  Split line into at most max fields; returns the number of fields, or
//  max + 1 when there are more.
static size_t
s_split (const char *line, size_t size, herd_span_t *fields, size_t max)
{
    size_t count = 0, at = 0;
    while (at < size) {
        while (at < size && s_is_space (line[at]))
            at++;
        if (at == size)
            break;
        size_t start = at;
        while (at < size && !s_is_space (line[at]))
            at++;
        if (count == max)
            return max + 1;
        fields[count].data = line + start;
        fields[count].size = at - start;
        count++;
    }
    return count;
}

//  Parse "D+" then optionally ".D+" (herd_decimal_scan): the integer part
//  (at most int_max digits, value into *int_p) and whether any fraction
//  digit is non-zero (at most frac_max of them). Returns the bytes
//  consumed, or 0 when text does not start that way.
static size_t
s_parse_fixed (const char *text, size_t size, size_t int_max, size_t frac_max, int64_t *int_p,
               bool *frac_nonzero_p)
{
    herd_decimal_t number;
    size_t used = herd_decimal_scan (text, size, HERD_DECIMAL_FRACTION, &number);
    if (used == 0 || number.int_digits > int_max || number.frac_digits > frac_max)
        return 0;
    *int_p = (int64_t) number.integer;     //  int_max is at most 18 digits: it fits
    *frac_nonzero_p = number.frac_nonzero;
    return used;
}

//  Parse one signed coordinate with magnitude at most limit degrees;
//  returns bytes consumed or 0.
static size_t
s_parse_coordinate (const char *text, size_t size, int64_t limit)
{
    if (size < 2 || (text[0] != '+' && text[0] != '-'))
        return 0;
    int64_t degrees;
    bool frac;
    size_t used = s_parse_fixed (text + 1, size - 1, 3, 15, &degrees, &frac);
    if (used == 0 || degrees > limit || (degrees == limit && frac))
        return 0;
    return used + 1;
}

int
herd_proto_parse_position (const char *text, size_t size, herd_span_t *lat_p, herd_span_t *lon_p)
{
    size_t lat = s_parse_coordinate (text, size, 90);
    if (lat == 0)
        return -1;
    size_t lon = s_parse_coordinate (text + lat, size - lat, 180);
    if (lon == 0 || lat + lon != size)
        return -1;
    if (lat_p)
        *lat_p = (herd_span_t){text, lat};
    if (lon_p)
        *lon_p = (herd_span_t){text + lat, lon};
    return 0;
}

int
herd_proto_parse_time (const char *text, size_t size, int64_t *sec_p, int32_t *nsec_p)
{
    //  What s_parse_fixed (text, size, 18, 9) accepts, read in the same
    //  pass that computes the value: the bus reads every record's time
    size_t at = 0, stop = size < 18 ? size : 18;
    int64_t sec = 0;
    for (; at < stop && s_is_digit (text[at]); at++)
        sec = sec * 10 + (text[at] - '0');
    if (at == 0 || (at < size && s_is_digit (text[at])))
        return -1;                      //  no digit, or more than 18
    int32_t nsec = 0;
    if (at < size) {
        if (text[at] != '.')
            return -1;
        size_t first = ++at;
        stop = size - first < 9 ? size : first + 9;
        for (; at < stop && s_is_digit (text[at]); at++)
            nsec = nsec * 10 + (text[at] - '0');
        if (at == first || at != size)
            return -1;                  //  "5.", more than 9 digits, or more text
        for (size_t digits = at - first; digits < 9; digits++)
            nsec *= 10;
    }
    *sec_p = sec;
    *nsec_p = nsec;
    return 0;
}

//  Radius in kilometres: a plain decimal in (0, 50], up to 9 fraction digits.
static bool
s_valid_radius (herd_span_t span)
{
    int64_t km;
    bool frac;
    size_t used = s_parse_fixed (span.data, span.size, 9, 9, &km, &frac);
    if (used == 0 || used != span.size)
        return false;
    if (km > 50 || (km == 50 && frac))
        return false;
    return km > 0 || frac;
}

//  Bound: a plain integer in [1, 20]; returns it or 0.
static int
s_parse_bound (herd_span_t span)
{
    int64_t value;
    bool frac;
    size_t used = s_parse_fixed (span.data, span.size, 9, 0, &value, &frac);
    if (used == 0 || used != span.size || value < 1 || value > 20)
        return 0;
    return (int) value;
}

int
herd_proto_parse (const char *line, size_t size, herd_cmd_t *cmd)
{
    memset (cmd, 0, sizeof (*cmd));
    if (memchr (line, 0, size))
        return -1;
    herd_span_t fields[HERD_MAX_FIELDS];
    size_t count = s_split (line, size, fields, HERD_MAX_FIELDS);
    if (count == 4 && s_span_is (fields[0], "IAMAT")) {
        if (herd_proto_parse_position (fields[2].data, fields[2].size, NULL, NULL)
            || herd_proto_parse_time (fields[3].data, fields[3].size, &cmd->time_sec,
                                      &cmd->time_nsec))
            return -1;
        cmd->client = fields[1];
        cmd->position = fields[2];
        cmd->time = fields[3];
        cmd->kind = HERD_CMD_IAMAT;
        return 0;
    }
    if (count == 4 && s_span_is (fields[0], "WHATSAT")) {
        int bound = s_parse_bound (fields[3]);
        if (!s_valid_radius (fields[2]) || bound == 0)
            return -1;
        cmd->client = fields[1];
        cmd->radius = fields[2];
        cmd->bound = bound;
        cmd->kind = HERD_CMD_WHATSAT;
        return 0;
    }
    return -1;
}

size_t
herd_proto_format_u64 (uint64_t value, char *out)
{
    char digits[20];
    size_t count = 0;
    do {
        digits[count++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (size_t i = 0; i < count; i++)
        out[i] = digits[count - 1 - i];
    return count;
}

size_t
herd_proto_format_diff (int64_t now_sec, int32_t now_nsec, int64_t sec, int32_t nsec,
                        char *buffer)
{
    //  Seconds fit: client seconds have at most 18 digits
    int64_t dsec = now_sec - sec;
    int64_t dnsec = (int64_t) now_nsec - nsec;
    if (dsec > 0 && dnsec < 0) {
        dsec -= 1;
        dnsec += 1000000000;
    }
    else
    if (dsec < 0 && dnsec > 0) {
        dsec += 1;
        dnsec -= 1000000000;
    }
    bool negative = dsec < 0 || (dsec == 0 && dnsec < 0);
    uint64_t abs_sec = negative ? (uint64_t) 0 - (uint64_t) dsec : (uint64_t) dsec;
    int64_t abs_nsec = dnsec < 0 ? -dnsec : dnsec;
    //  "%c%llu.%09lld" by hand: this runs for every IAMAT, and snprintf
    //  showed in the gateway's profile
    size_t len = 0;
    buffer[len++] = negative ? '-' : '+';
    len += herd_proto_format_u64 (abs_sec, buffer + len);
    buffer[len++] = '.';
    for (int i = 8; i >= 0; i--) {
        buffer[len + (size_t) i] = (char) ('0' + abs_nsec % 10);
        abs_nsec /= 10;
    }
    len += 9;
    buffer[len] = 0;
    return len;
}

size_t
herd_proto_format_at (const char *server, const herd_cmd_t *iamat, int64_t now_sec,
                      int32_t now_nsec, char *buffer, size_t max)
{
    char diff[HERD_PROTO_DIFF_MAX];
    size_t diff_size =
        herd_proto_format_diff (now_sec, now_nsec, iamat->time_sec, iamat->time_nsec, diff);
    size_t server_size = strlen (server);
    size_t size = 3 + server_size + 1 + diff_size + 1 + iamat->client.size + 1
                  + iamat->position.size + 1 + iamat->time.size;
    if (size >= max)
        return size;
    char *at = buffer;
    memcpy (at, "AT ", 3);
    at += 3;
    memcpy (at, server, server_size);
    at += server_size;
    *at++ = ' ';
    memcpy (at, diff, diff_size);
    at += diff_size;
    *at++ = ' ';
    memcpy (at, iamat->client.data, iamat->client.size);
    at += iamat->client.size;
    *at++ = ' ';
    memcpy (at, iamat->position.data, iamat->position.size);
    at += iamat->position.size;
    *at++ = ' ';
    memcpy (at, iamat->time.data, iamat->time.size);
    at += iamat->time.size;
    *at = 0;
    return size;
}

char *
herd_proto_at_line (const char *server, const herd_cmd_t *iamat, int64_t now_sec,
                    int32_t now_nsec, size_t *size_p)
{
    size_t size = herd_proto_format_at (server, iamat, now_sec, now_nsec, NULL, 0);
    char *line = malloc (size + 1);
    if (!line)
        return NULL;
    herd_proto_format_at (server, iamat, now_sec, now_nsec, line, size + 1);
    *size_p = size;
    return line;
}

//  Parse a C string line; for the self test.
static int
s_parse_str (const char *line, herd_cmd_t *cmd)
{
    return herd_proto_parse (line, strlen (line), cmd);
}

//  Format a difference into a static buffer; for the self test.
static const char *
s_diff (int64_t now_sec, int32_t now_nsec, int64_t sec, int32_t nsec)
{
    static char buffer[HERD_PROTO_DIFF_MAX];
    herd_proto_format_diff (now_sec, now_nsec, sec, nsec, buffer);
    return buffer;
}

//  Decimal formatting, against snprintf, at the edges.
static void
s_test_format_u64 (void)
{
    uint64_t values[] = {0, 7, 10, 999, 1000000007, UINT64_MAX};
    for (size_t i = 0; i < sizeof (values) / sizeof (values[0]); i++) {
        char got[24] = "", want[24];
        size_t size = herd_proto_format_u64 (values[i], got);
        snprintf (want, sizeof (want), "%" PRIu64, values[i]);
        HERD_CHECK_INT (size, strlen (want));
        HERD_CHECK_STR (got, want);
    }

}

//  IAMAT, the example of PROTOCOL.md, and its AT line exactly.
static void
s_test_iamat (void)
{
    herd_cmd_t cmd;
    const char *line = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503";
    HERD_CHECK_INT (s_parse_str (line, &cmd), 0);
    HERD_CHECK_INT (cmd.kind, HERD_CMD_IAMAT);
    HERD_CHECK (cmd.client.size == 16 && memcmp (cmd.client.data, "kiwi.cs.ucla.edu", 16) == 0);
    HERD_CHECK (cmd.position.data == line + 23 && cmd.position.size == 21);
    HERD_CHECK_INT (cmd.time_sec, 1621464827);
    HERD_CHECK_INT (cmd.time_nsec, 959498503);

    //  The AT line, exactly
    size_t size;
    char *at = herd_proto_at_line ("Hill", &cmd, 1621464828, 223371889, &size);
    HERD_CHECK_STR (at, "AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 "
                        "1621464827.959498503");
    HERD_CHECK_INT (size, strlen (at));
    //  The same into a caller's buffer: written only when it fits
    char small[128];
    memset (small, '#', sizeof (small));
    HERD_CHECK_INT (herd_proto_format_at ("Hill", &cmd, 1621464828, 223371889, small, size),
                    size);
    HERD_CHECK (small[0] == '#');
    HERD_CHECK_INT (herd_proto_format_at ("Hill", &cmd, 1621464828, 223371889, small, size + 1),
                    size);
    HERD_CHECK_STR (small, at);
    HERD_CHECK_INT (herd_proto_format_at ("Hill", &cmd, 1621464828, 223371889, NULL, 0), size);
    free (at);

}

//  White space, client ids of any bytes and length, positions, times.
static void
s_test_fields (void)
{
    herd_cmd_t cmd;
    //  White space: tabs, CR, FF, VT, leading and trailing
    HERD_CHECK_INT (s_parse_str (" \t IAMAT\ta\v+1+2\f1 \r", &cmd), 0);
    HERD_CHECK (cmd.client.size == 1 && cmd.time_sec == 1 && cmd.time_nsec == 0);
    HERD_CHECK_INT (s_parse_str ("IAMAT a +1+2 1\r", &cmd), 0);

    //  Client ids are any non-white-space bytes, of any length
    HERD_CHECK_INT (s_parse_str ("IAMAT \xff\xfe\x01\x7f +0+0 0", &cmd), 0);
    HERD_CHECK_INT (cmd.client.size, 4);
    size_t huge = 70000;
    char *long_line = malloc (huge + 32);
    memcpy (long_line, "IAMAT ", 6);
    memset (long_line + 6, 'k', huge);
    memcpy (long_line + 6 + huge, " +1.5-2.5 12.5", 15);
    HERD_CHECK_INT (herd_proto_parse (long_line, strlen (long_line), &cmd), 0);
    HERD_CHECK_INT (cmd.client.size, huge);
    HERD_CHECK_INT (cmd.time_nsec, 500000000);
    free (long_line);

    //  Positions: both signs, ranges inclusive
    HERD_CHECK_INT (s_parse_str ("IAMAT a +90-180 1", &cmd), 0);
    HERD_CHECK_INT (s_parse_str ("IAMAT a -90.000+180.0000 1", &cmd), 0);
    HERD_CHECK_INT (s_parse_str ("IAMAT a -0.5+0.5 1", &cmd), 0);
    herd_span_t lat, lon;
    HERD_CHECK_INT (herd_proto_parse_position ("+34.068930-118.445127", 21, &lat, &lon), 0);
    HERD_CHECK (lat.size == 10 && memcmp (lat.data, "+34.068930", 10) == 0);
    HERD_CHECK (lon.size == 11 && memcmp (lon.data, "-118.445127", 11) == 0);

    //  Times: fraction optional, 1 to 9 digits
    int64_t sec;
    int32_t nsec;
    HERD_CHECK_INT (herd_proto_parse_time ("5.1", 3, &sec, &nsec), 0);
    HERD_CHECK (sec == 5 && nsec == 100000000);
    HERD_CHECK_INT (herd_proto_parse_time ("0.000000001", 11, &sec, &nsec), 0);
    HERD_CHECK (sec == 0 && nsec == 1);
    HERD_CHECK_INT (herd_proto_parse_time ("999999999999999999", 18, &sec, &nsec), 0);
    HERD_CHECK_INT (sec, 999999999999999999LL);
    HERD_CHECK_INT (herd_proto_parse_time ("0123456789.123456789", 20, &sec, &nsec), 0);
    HERD_CHECK (sec == 123456789 && nsec == 123456789);
    HERD_CHECK_INT (herd_proto_parse_time ("7.50", 4, &sec, &nsec), 0);
    HERD_CHECK (sec == 7 && nsec == 500000000);
    //  ...and nothing else: no sign, no exponent, at most 18 and 9 digits,
    //  a digit on both sides of the '.', nothing after
    const char *bad_times[] = {"", ".", "5.", ".5", "+5", "-5", "5e3", "5.1e3", "5.1.2", "5 ",
                               "9999999999999999999", "1.0000000001", "1.x", "x"};
    for (size_t i = 0; i < sizeof (bad_times) / sizeof (bad_times[0]); i++)
        HERD_CHECK_INT (herd_proto_parse_time (bad_times[i], strlen (bad_times[i]), &sec, &nsec),
                        -1);
    //  The size bounds the read: digits past it are not the time's
    HERD_CHECK_INT (herd_proto_parse_time ("12.5", 2, &sec, &nsec), 0);
    HERD_CHECK (sec == 12 && nsec == 0);
    HERD_CHECK_INT (herd_proto_parse_time ("12.53", 4, &sec, &nsec), 0);
    HERD_CHECK (sec == 12 && nsec == 500000000);
}

//  WHATSAT, and every invalid form of PROTOCOL.md.
static void
s_test_whatsat_and_invalid (void)
{
    herd_cmd_t cmd;
    HERD_CHECK_INT (s_parse_str ("WHATSAT kiwi.cs.ucla.edu 10 5", &cmd), 0);
    HERD_CHECK_INT (cmd.kind, HERD_CMD_WHATSAT);
    HERD_CHECK_INT (cmd.bound, 5);
    HERD_CHECK (cmd.radius.size == 2 && memcmp (cmd.radius.data, "10", 2) == 0);
    HERD_CHECK_INT (s_parse_str ("WHATSAT a 50 20", &cmd), 0);
    HERD_CHECK_INT (s_parse_str ("WHATSAT a 0.001 1", &cmd), 0);
    HERD_CHECK_INT (s_parse_str ("WHATSAT a 50.000 01", &cmd), 0);
    HERD_CHECK_INT (cmd.bound, 1);

    //  Every invalid form of PROTOCOL.md, and odd values
    const char *invalid[] = {
        "",
        "   \t ",
        "HELLO a b c",
        "iamat a +1+2 3",
        "IAMAT",
        "IAMAT a +1+2",
        "IAMAT a +1+2 3 4",
        "IAMAT a 1+2 3",            //  latitude sign missing
        "IAMAT a +1 2 3",
        "IAMAT a +1+ 3",
        "IAMAT a +91+0 3",
        "IAMAT a +90.0001+0 3",
        "IAMAT a +0+180.5 3",
        "IAMAT a +0-181 3",
        "IAMAT a +1.+2 3",
        "IAMAT a +.5+2 3",
        "IAMAT a +-1+2 3",
        "IAMAT a +0x10+2 3",
        "IAMAT a +1e2+2 3",
        "IAMAT a +nan+2 3",
        "IAMAT a +1+2+3 3",
        "IAMAT a +1+2 -3",
        "IAMAT a +1+2 +3",
        "IAMAT a +1+2 3.",
        "IAMAT a +1+2 .3",
        "IAMAT a +1+2 1.0123456789",     //  10 fraction digits
        "IAMAT a +1+2 1e9",
        "IAMAT a +1+2 1234567890123456789",  //  19 digits of seconds
        "IAMAT a +1+2 1,5",
        "IAMAT a +1+2 0x10",
        "WHATSAT a 10",
        "WHATSAT a 10 5 6",
        "WHATSAT a 0 5",
        "WHATSAT a 0.000 5",
        "WHATSAT a 50.001 5",
        "WHATSAT a 60 5",
        "WHATSAT a -1 5",
        "WHATSAT a +10 5",
        "WHATSAT a 1e1 5",
        "WHATSAT a nan 5",
        "WHATSAT a 10 0",
        "WHATSAT a 10 21",
        "WHATSAT a 10 5.0",
        "WHATSAT a 10 -5",
        "WHATSAT a 10 99999999999999999999",
        "WHATSAT a 10.123456789012345678901234567890 5",
        "whatsat a 10 5",
    };
    for (size_t i = 0; i < sizeof (invalid) / sizeof (invalid[0]); i++) {
        if (s_parse_str (invalid[i], &cmd) != -1) {
            fprintf (stderr, "accepted invalid line: \"%s\"\n", invalid[i]);
            HERD_CHECK (false);
        }
        HERD_CHECK_INT (cmd.kind, HERD_CMD_INVALID);
    }
    //  A NUL byte makes a line invalid
    HERD_CHECK_INT (herd_proto_parse ("IAMAT a\0b +1+2 3", 16, &cmd), -1);

}

//  Time differences: sign always, 9 digits, borrow across seconds.
static void
s_test_diff (void)
{
    HERD_CHECK_STR (s_diff (10, 0, 10, 0), "+0.000000000");
    HERD_CHECK_STR (s_diff (10, 5, 10, 0), "+0.000000005");
    HERD_CHECK_STR (s_diff (10, 0, 10, 5), "-0.000000005");
    HERD_CHECK_STR (s_diff (11, 100, 10, 200), "+0.999999900");
    HERD_CHECK_STR (s_diff (10, 200, 11, 100), "-0.999999900");
    HERD_CHECK_STR (s_diff (12, 0, 10, 999999999), "+1.000000001");
    HERD_CHECK_STR (s_diff (10, 0, 12, 1), "-2.000000001");
    HERD_CHECK_STR (s_diff (1700000000, 0, 999999999999999999LL, 999999999),
                    "-999999998299999999.999999999");
    HERD_CHECK_STR (s_diff (1700000000, 123456789, 0, 0), "+1700000000.123456789");
}

void
herd_proto_test (bool verbose)
{
    (void) verbose;
    s_test_format_u64 ();
    s_test_iamat ();
    s_test_fields ();
    s_test_whatsat_and_invalid ();
    s_test_diff ();
}
