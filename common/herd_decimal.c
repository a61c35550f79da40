//  herd_decimal.c - the one reader of decimal numbers in herd's text.
//
//  One pass over the bytes, left to right, with no locale and no floating
//  point: the integer part is accumulated exactly (saturating, never
//  wrapping), the rest is only counted. See herd_decimal.h.

#include "herd_decimal.h"
#include "herd_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool
s_is_digit (char byte)
{
    return byte >= '0' && byte <= '9';
}

//  Count the digits at text[at..size); returns the index after them.
static size_t
s_skip_digits (const char *text, size_t size, size_t at)
{
    while (at < size && s_is_digit (text[at]))
        at++;
    return at;
}

//  The integer part: digits from text[at], into number. Returns the index
//  after them.
static size_t
s_scan_integer (const char *text, size_t size, size_t at, herd_decimal_t *number)
{
    size_t start = at;
    //  19 digits always fit (10^19 - 1 < 2^64): check for overflow only
    //  after them
    uint64_t value = 0;
    for (; at < size && at - start < 19 && s_is_digit (text[at]); at++)
        value = value * 10 + (uint64_t) (text[at] - '0');
    for (; at < size && s_is_digit (text[at]); at++) {
        uint64_t add = (uint64_t) (text[at] - '0');
        if (number->overflow || value > (UINT64_MAX - add) / 10) {
            number->overflow = true;
            value = UINT64_MAX;
        }
        else
            value = value * 10 + add;
    }
    number->integer = value;
    number->int_digits = at - start;
    return at;
}

//  The fraction digits from text[at], just after the '.', into number.
//  Returns the index after them.
static size_t
s_scan_fraction (const char *text, size_t size, size_t at, herd_decimal_t *number)
{
    size_t start = at;
    for (; at < size && s_is_digit (text[at]); at++)
        number->frac_nonzero |= text[at] != '0';
    number->frac_digits = at - start;
    return at;
}

//  The exponent from text[at], on its marker: 'e' or 'E', an optional
//  sign, at least one digit. Returns the index after it, or 0 if there is
//  a marker without a digit; at itself if there is no marker.
static size_t
s_scan_exponent (const char *text, size_t size, size_t at)
{
    if (at >= size || (text[at] != 'e' && text[at] != 'E'))
        return at;
    at++;
    if (at < size && (text[at] == '+' || text[at] == '-'))
        at++;
    size_t end = s_skip_digits (text, size, at);
    return end == at ? 0 : end;
}

size_t
herd_decimal_scan (const char *text, size_t size, int flags, herd_decimal_t *number)
{
    memset (number, 0, sizeof (*number));
    size_t at = 0;
    if ((flags & HERD_DECIMAL_SIGN) && size > 0 && (text[0] == '+' || text[0] == '-')) {
        number->negative = text[0] == '-';
        at++;
    }
    at = s_scan_integer (text, size, at, number);
    bool loose = (flags & HERD_DECIMAL_LOOSE) != 0;
    if (number->int_digits == 0 && !loose)
        return 0;
    if ((flags & HERD_DECIMAL_FRACTION) && at < size && text[at] == '.') {
        at = s_scan_fraction (text, size, at + 1, number);
        if (number->frac_digits == 0 && !loose)
            return 0;                   //  "5." is not a number here
    }
    if (number->int_digits + number->frac_digits == 0)
        return 0;                       //  "", "+", "." have no digit at all
    if (flags & HERD_DECIMAL_EXPONENT)
        at = s_scan_exponent (text, size, at);
    return at;
}

int
herd_decimal_parse_long (const char *text, long min, long max, long *value_p)
{
    herd_decimal_t number;
    size_t size = strlen (text);
    if (max < 0 || size == 0 || herd_decimal_scan (text, size, 0, &number) != size
        || number.integer > (uint64_t) max)
        return -1;
    long value = (long) number.integer;
    if (value < min)
        return -1;
    *value_p = value;
    return 0;
}

int
herd_decimal_parse_double (const char *text, int flags, double *value_p)
{
    herd_decimal_t number;
    size_t size = strlen (text);
    if (size == 0 || herd_decimal_scan (text, size, flags, &number) != size)
        return -1;
    double value = strtod (text, NULL);
    if (!isfinite (value))
        return -1;
    *value_p = value;
    return 0;
}

//  -------------------------------------------------------------------------
//  Self test

//  herd_decimal_scan of a C string: the bytes read.
static size_t
s_scan (const char *text, int flags, herd_decimal_t *number)
{
    return herd_decimal_scan (text, strlen (text), flags, number);
}

//  Scanning: what each part allows, prefixes, and exact integer parts.
static void
s_test_scan (void)
{
    herd_decimal_t number;
    const int fixed = HERD_DECIMAL_FRACTION;
    HERD_CHECK_INT (s_scan ("", fixed, &number), 0);
    HERD_CHECK_INT (s_scan ("12", 0, &number), 2);
    HERD_CHECK (number.integer == 12 && number.int_digits == 2 && !number.negative);
    HERD_CHECK_INT (s_scan ("12.5", 0, &number), 2);           //  no fraction asked for
    HERD_CHECK_INT (s_scan ("007.250", fixed, &number), 7);
    HERD_CHECK (number.integer == 7 && number.int_digits == 3 && number.frac_digits == 3);
    HERD_CHECK (number.frac_nonzero);
    HERD_CHECK_INT (s_scan ("3.000", fixed, &number), 5);
    HERD_CHECK (!number.frac_nonzero);
    //  A '.' needs digits on both sides, unless loose
    HERD_CHECK_INT (s_scan ("5.", fixed, &number), 0);
    HERD_CHECK_INT (s_scan (".5", fixed, &number), 0);
    HERD_CHECK_INT (s_scan ("5.", fixed | HERD_DECIMAL_LOOSE, &number), 2);
    HERD_CHECK_INT (s_scan (".5", fixed | HERD_DECIMAL_LOOSE, &number), 2);
    HERD_CHECK_INT (s_scan (".", fixed | HERD_DECIMAL_LOOSE, &number), 0);
    //  Signs only when allowed; a sign alone is nothing
    HERD_CHECK_INT (s_scan ("-1", fixed, &number), 0);
    HERD_CHECK_INT (s_scan ("-1.5", fixed | HERD_DECIMAL_SIGN, &number), 4);
    HERD_CHECK (number.negative && number.integer == 1);
    HERD_CHECK_INT (s_scan ("+", HERD_DECIMAL_SIGN, &number), 0);
    //  A position is two numbers back to back: the first stops at the sign
    HERD_CHECK_INT (s_scan ("+34.068930-118.445127", fixed | HERD_DECIMAL_SIGN, &number), 10);
    //  Exponents: a marker needs a digit after it
    const int real = fixed | HERD_DECIMAL_EXPONENT;
    HERD_CHECK_INT (s_scan ("1e5", real, &number), 3);
    HERD_CHECK_INT (s_scan ("1.5E-3", real, &number), 6);
    HERD_CHECK_INT (s_scan ("1e", real, &number), 0);
    HERD_CHECK_INT (s_scan ("1e+", real, &number), 0);
    HERD_CHECK_INT (s_scan ("1e5", fixed, &number), 1);
    //  The integer part saturates rather than wraps
    HERD_CHECK_INT (s_scan ("18446744073709551615", 0, &number), 20);
    HERD_CHECK (number.integer == UINT64_MAX && !number.overflow);
    HERD_CHECK_INT (s_scan ("18446744073709551616", 0, &number), 20);
    HERD_CHECK (number.integer == UINT64_MAX && number.overflow);
    //  Size bounds the read: no NUL needed
    HERD_CHECK_INT (herd_decimal_scan ("123", 2, 0, &number), 2);
    HERD_CHECK (number.integer == 12);
}

//  Whole-text integers in a range, as the config reads them.
static void
s_test_parse_long (void)
{
    long value = -7;
    HERD_CHECK_INT (herd_decimal_parse_long ("5555", 1, 65535, &value), 0);
    HERD_CHECK_INT (value, 5555);
    HERD_CHECK_INT (herd_decimal_parse_long ("0000000000000000000000065535", 1, 65535, &value), 0);
    HERD_CHECK_INT (value, 65535);
    value = -7;
    const char *refused[] = {"", "0", "65536", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1e3",
                             "99999999999999999999999999", NULL};
    for (size_t i = 0; refused[i]; i++)
        HERD_CHECK_INT (herd_decimal_parse_long (refused[i], 1, 65535, &value), -1);
    HERD_CHECK_INT (value, -7);
    HERD_CHECK_INT (herd_decimal_parse_long ("9223372036854775807", 0, 9223372036854775807L,
                                             &value),
                    0);
    HERD_CHECK (value == 9223372036854775807L);
    HERD_CHECK_INT (herd_decimal_parse_long ("9223372036854775808", 0, 9223372036854775807L,
                                             &value),
                    -1);
    HERD_CHECK_INT (herd_decimal_parse_long ("0", 0, 0, &value), 0);
    HERD_CHECK_INT (value, 0);
}

//  Whole-text doubles, as the places worker reads them.
static void
s_test_parse_double (void)
{
    const int coordinate = HERD_DECIMAL_SIGN | HERD_DECIMAL_FRACTION | HERD_DECIMAL_LOOSE;
    const int radius = HERD_DECIMAL_FRACTION | HERD_DECIMAL_EXPONENT | HERD_DECIMAL_LOOSE;
    double value = 0;
    HERD_CHECK_INT (herd_decimal_parse_double ("-118.445127", coordinate, &value), 0);
    HERD_CHECK (value == -118.445127);
    HERD_CHECK_INT (herd_decimal_parse_double ("+.5", coordinate, &value), 0);
    HERD_CHECK (value == 0.5);
    HERD_CHECK_INT (herd_decimal_parse_double ("2.5e1", radius, &value), 0);
    HERD_CHECK (value == 25.0);
    const char *refused[] = {"", "-", ".", "1e5x", "inf", "nan", "0x10", " 1", "1e999", NULL};
    for (size_t i = 0; refused[i]; i++)
        HERD_CHECK_INT (herd_decimal_parse_double (refused[i], radius, &value), -1);
    HERD_CHECK_INT (herd_decimal_parse_double ("1e3", coordinate, &value), -1);
    HERD_CHECK_INT (herd_decimal_parse_double ("-1", radius, &value), -1);
    HERD_CHECK (value == 25.0);
}

void
herd_decimal_test (bool verbose)
{
    (void) verbose;
    s_test_scan ();
    s_test_parse_long ();
    s_test_parse_double ();
}
