//  herd_decimal.h - the one reader of decimal numbers in herd's text.
//
//  Three parsers read decimals: the config (ports, sizes, counts: plain
//  integers in a range), the client protocol (coordinates, times, radii:
//  fixed point with digit caps, read exactly, without floating point) and
//  the places worker (numbers it puts in a URL, as doubles). They all read
//  one grammar, with the parts each allows:
//
//      [sign] digits [ '.' digits ] [ ('e' | 'E') [sign] digits ]
//
//  herd_decimal_scan reads it at the start of some bytes and says what it
//  saw; the caller applies its own caps (the protocol's digit counts). The
//  two parse functions read a whole C string and apply the rules the config
//  and the places worker need. Pure functions: no locale, no allocation.
//
//  It is its own file, not part of herd_proto, because the config and the
//  places worker need it too and know nothing of the client protocol.

#ifndef HERD_DECIMAL_H_INCLUDED
#define HERD_DECIMAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  What a decimal may hold besides digits (or-ed together).
typedef enum {
    HERD_DECIMAL_SIGN = 1,      //  a leading '+' or '-'
    HERD_DECIMAL_FRACTION = 2,  //  '.' and fraction digits
    HERD_DECIMAL_EXPONENT = 4,  //  'e' or 'E', an optional sign and digits
    HERD_DECIMAL_LOOSE = 8,     //  digits on one side of the '.' suffice: "5." and ".5"
} herd_decimal_flags_t;

//  What herd_decimal_scan saw.
typedef struct {
    bool negative;              //  a '-' sign came first
    uint64_t integer;           //  the integer part; UINT64_MAX when it overflows
    bool overflow;              //  the integer part is above UINT64_MAX
    size_t int_digits;          //  digits before the '.' (leading zeros count)
    size_t frac_digits;         //  digits after the '.'
    bool frac_nonzero;          //  some fraction digit is not '0'
} herd_decimal_t;

//  Read a decimal at the start of text (size bytes, no NUL needed) as
//  flags allow, and describe it in *number. Returns the bytes read, or 0
//  when text does not start with one. A '.' or exponent marker without a
//  digit after it makes the whole number malformed (0), except "5." with
//  HERD_DECIMAL_LOOSE. Reading stops at the first byte the grammar does not
//  take, so "+34.5-118.2" reads as "+34.5" (5 bytes) with a sign allowed.
size_t
    herd_decimal_scan (const char *text, size_t size, int flags, herd_decimal_t *number);

//  The whole of text is digits only, and their value is in min..max.
//  Returns 0 with *value_p set, or -1 (*value_p untouched). Any number of
//  leading zeros; a value of any length above max is refused, not wrapped.
int
    herd_decimal_parse_long (const char *text, long min, long max, long *value_p);

//  The whole of text is one decimal as flags allow and reads (strtod) as a
//  finite double. Returns 0 with *value_p set, or -1. Only the grammar's
//  characters pass, so the text is safe to put in a URL as it is.
int
    herd_decimal_parse_double (const char *text, int flags, double *value_p);

//  Self test of this class.
void
    herd_decimal_test (bool verbose);

#endif
