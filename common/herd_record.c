//  herd_record.c - a client location record (an AT line) and which one wins.

#include "herd_record.h"
#include "herd_check.h"

#include <string.h>

//  Eight bytes of data as a little-endian number, whatever the host's byte
//  order: the hash is stored in journals and sent between nodes. (The
//  word-at-a-time scans below only test bytes, so any order serves them.)
static inline uint64_t
s_load_le64 (const void *data)
{
    uint64_t word;
    memcpy (&word, data, 8);
#if defined (__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64 (word);
#endif
    return word;
}

#define S_ONES 0x0101010101010101ULL
#define S_HIGHS 0x8080808080808080ULL

//  The first space in [at, end), or NULL. Eight bytes a step: a word has a
//  space where word ^ "        " has a zero byte (the classic has-zero-byte
//  test, exact as a yes or no). The fields before a record's time are short,
//  and a call to memchr per field cost more than the search.
static inline const char *
s_find_space (const char *at, const char *end)
{
    while (end - at >= 8) {
        uint64_t word = s_load_le64 (at) ^ (S_ONES * ' ');
        if ((word - S_ONES) & ~word & S_HIGHS)
            break;
        at += 8;
    }
    for (; at < end; at++)
        if (*at == ' ')
            return at;
    return NULL;
}

//  True when some byte of line is NUL or white space other than ' '
//  ('\t' '\n' '\v' '\f' '\r', 9..13). Eight bytes a step: a word with no
//  byte below 14 passes at once (has-less-than test, exact as a yes or no);
//  one with such a byte is checked byte by byte, as bytes 1..8 are allowed.
static bool
s_has_control (const char *line, size_t size)
{
    size_t at = 0;
    for (; at + 8 <= size; at += 8) {
        uint64_t word = s_load_le64 (line + at);
        if ((word - S_ONES * 14) & ~word & S_HIGHS)
            break;
    }
    for (; at < size; at++) {
        unsigned char byte = (unsigned char) line[at];
        if (byte == 0 || byte - 9u < 5u)
            return true;
    }
    return false;
}

//  A time difference as herd_proto_format_diff writes it: sign, digits, '.',
//  exactly 9 digits.
static bool
s_valid_diff (herd_span_t diff)
{
    if (diff.size < 12 || (diff.data[0] != '+' && diff.data[0] != '-'))
        return false;
    size_t dot = diff.size - 10;
    if (diff.data[dot] != '.' || dot < 2)
        return false;
    for (size_t i = 1; i < diff.size; i++)
        if (i != dot && (diff.data[i] < '0' || diff.data[i] > '9'))
            return false;
    return true;
}

int
herd_record_peek (const char *line, size_t size, herd_record_t *record)
{
    if (size < 3 || memcmp (line, "AT ", 3) != 0)
        return -1;
    //  "AT origin diff client position time": four single spaces end four
    //  non-empty fields; the time is the rest, and has no space if it parses
    const char *at = line + 3, *end = line + size;
    herd_span_t *fields[] = {&record->origin, &record->diff, &record->client,
                             &record->position};
    for (int i = 0; i < 4; i++) {
        const char *space = s_find_space (at, end);
        if (!space || space == at)
            return -1;
        *fields[i] = (herd_span_t){at, (size_t) (space - at)};
        at = space + 1;
    }
    record->time = (herd_span_t){at, (size_t) (end - at)};
    record->line = (herd_span_t){line, size};
    if (herd_proto_parse_time (record->time.data, record->time.size, &record->time_sec,
                               &record->time_nsec))
        return -1;
    return 0;
}

int
herd_record_finish (herd_record_t *record)
{
    //  No other white space inside a field, and no NUL; a valid diff and
    //  position. Origin and client may hold any other bytes.
    if (s_has_control (record->line.data, record->line.size) || !s_valid_diff (record->diff)
        || herd_proto_parse_position (record->position.data, record->position.size, NULL,
                                      NULL))
        return -1;
    return 0;
}

int
herd_record_parse (const char *line, size_t size, herd_record_t *record)
{
    if (herd_record_peek (line, size, record) == 0 && herd_record_finish (record) == 0)
        return 0;
    memset (record, 0, sizeof (*record));
    return -1;
}

bool
herd_record_newer (const herd_record_t *candidate, const herd_record_t *current)
{
    if (candidate->time_sec != current->time_sec)
        return candidate->time_sec > current->time_sec;
    if (candidate->time_nsec != current->time_nsec)
        return candidate->time_nsec > current->time_nsec;
    size_t common = candidate->line.size < current->line.size ? candidate->line.size
                                                               : current->line.size;
    int order = memcmp (candidate->line.data, current->line.data, common);
    if (order != 0)
        return order > 0;
    return candidate->line.size > current->line.size;
}

uint64_t
herd_record_hash (const char *line, size_t size)
{
    //  The length goes into the seed, so inputs that differ only in trailing
    //  zero bytes ("abc", "abc\0") differ; each whole word is mixed in with
    //  one multiply, the last 0..7 bytes as a zero-padded word
    uint64_t hash = 0x9e3779b97f4a7c15ULL ^ (uint64_t) size;
    while (size >= 8) {
        hash = (hash ^ s_load_le64 (line)) * 0xff51afd7ed558ccdULL;
        hash ^= hash >> 32;
        line += 8;
        size -= 8;
    }
    unsigned char tail[8] = {0};
    if (size)
        memcpy (tail, line, size);      //  line may be NULL when size is 0
    hash ^= s_load_le64 (tail);
    //  splitmix64's finaliser: every output bit depends on every input bit
    hash ^= hash >> 30;
    hash *= 0xbf58476d1ce4e5b9ULL;
    hash ^= hash >> 27;
    hash *= 0x94d049bb133111ebULL;
    hash ^= hash >> 31;
    return hash;
}

//  Parse a C string AT line; for the self test.
static int
s_parse_str (const char *line, herd_record_t *record)
{
    return herd_record_parse (line, strlen (line), record);
}

//  The AT line of PROTOCOL.md's example.
#define S_TEST_LINE                                                                            \
    "AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503"

//  A record parses into its fields; malformed ones (they may come from a
//  bad peer) are refused.
static void
s_test_parse (void)
{
    herd_record_t a;
    const char *line = S_TEST_LINE;
    HERD_CHECK_INT (s_parse_str (line, &a), 0);
    HERD_CHECK (a.origin.size == 4 && memcmp (a.origin.data, "Hill", 4) == 0);
    HERD_CHECK (a.client.size == 16 && memcmp (a.client.data, "kiwi.cs.ucla.edu", 16) == 0);
    HERD_CHECK (a.position.size == 21);
    HERD_CHECK_INT (a.time_sec, 1621464827);
    HERD_CHECK_INT (a.time_nsec, 959498503);
    HERD_CHECK_INT (a.line.size, strlen (line));
    HERD_CHECK_INT (s_parse_str ("AT Hill -12.000000001 k +0+0 5", &a), 0);

    //  Malformed records are refused (they may come from a bad peer)
    const char *bad[] = {
        "",
        "AT",
        "AT Hill +0.263873386 kiwi +34-118",
        "AT Hill +0.263873386 kiwi +34-118 1 extra",
        "AT Hill  +0.263873386 kiwi +34-118 1",
        "AT Hill +0.263873386 kiwi +34-118 1 ",
        "AT Hill 0.263873386 kiwi +34-118 1",
        "AT Hill +0.26387338 kiwi +34-118 1",
        "AT Hill +.263873386 kiwi +34-118 1",
        "AT Hill +0.263873386 kiwi +95-118 1",
        "AT Hill +0.263873386 kiwi +34-118 x",
        "AT Hill +0.263873386 ki\twi +34-118 1",
        "XX Hill +0.263873386 kiwi +34-118 1",
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        if (s_parse_str (bad[i], &a) != -1) {
            fprintf (stderr, "accepted bad record: \"%s\"\n", bad[i]);
            HERD_CHECK (false);
        }
    }
    HERD_CHECK_INT (herd_record_parse ("AT H +0.000000000 k\0 +0+0 5", 27, &a), -1);

    //  The word-at-a-time scans: a control byte or a space at every offset
    //  of a long line (in whole words and in the tail) is seen; bytes 1..8
    //  and 14..31 are not white space here, and pass
    char buffer[128];
    const char *good = "AT Hill +0.263873386 a-client-id-long-enough-for-words +34-118 1.5";
    size_t good_size = strlen (good);
    size_t client_at = 21, client_end = client_at + 33;
    HERD_CHECK_INT (herd_record_parse (good, good_size, &a), 0);
    HERD_CHECK_INT (a.client.size, client_end - client_at);
    for (size_t at = client_at; at < client_end; at++) {
        const unsigned char bytes[] = {0, '\t', '\n', '\v', '\f', '\r', ' ', 1, 8, 14, 31, 127};
        for (size_t i = 0; i < sizeof (bytes); i++) {
            memcpy (buffer, good, good_size);
            buffer[at] = (char) bytes[i];
            bool allowed = bytes[i] < 9 ? bytes[i] != 0 : bytes[i] > 13 && bytes[i] != ' ';
            int rc = herd_record_parse (buffer, good_size, &a);
            if (rc != (allowed ? 0 : -1))
                fprintf (stderr, "byte %u at %zu: parse returned %d\n", bytes[i], at, rc);
            HERD_CHECK_INT (rc, allowed ? 0 : -1);
            if (allowed)
                HERD_CHECK_INT (a.client.size, client_end - client_at);
        }
    }
    //  A control byte in the time or the diff, the last bytes of the line
    memcpy (buffer, good, good_size);
    buffer[good_size - 1] = '\r';
    HERD_CHECK_INT (herd_record_parse (buffer, good_size, &a), -1);
    HERD_CHECK_INT (herd_record_peek (buffer, good_size, &a), -1);

}

//  Which record is newer, the same on every server; peek.
static void
s_test_newer (void)
{
    herd_record_t a, b;
    const char *line = S_TEST_LINE;
    //  Later client time wins, whatever the order of arrival
    HERD_CHECK_INT (s_parse_str ("AT Hill +0.000000000 k +1+1 100.5", &a), 0);
    HERD_CHECK_INT (s_parse_str ("AT Smith +0.000000000 k +2+2 100.49", &b), 0);
    HERD_CHECK (herd_record_newer (&a, &b));
    HERD_CHECK (!herd_record_newer (&b, &a));
    HERD_CHECK_INT (s_parse_str ("AT Smith +0.000000000 k +2+2 101", &b), 0);
    HERD_CHECK (herd_record_newer (&b, &a));
    HERD_CHECK (!herd_record_newer (&a, &b));
    //  "100.5" and "100.500" are the same time
    HERD_CHECK_INT (s_parse_str ("AT Hill +0.000000000 k +1+1 100.500", &b), 0);
    HERD_CHECK (a.time_nsec == b.time_nsec);
    //  Equal times: the bytewise larger line wins, on every server
    HERD_CHECK_INT (s_parse_str ("AT Hill +0.000000000 k +1+1 100.5", &a), 0);
    HERD_CHECK_INT (s_parse_str ("AT Jaquez +0.000000000 k +1+1 100.5", &b), 0);
    HERD_CHECK (herd_record_newer (&b, &a) != herd_record_newer (&a, &b));
    HERD_CHECK (herd_record_newer (&b, &a));
    //  A record is never newer than itself: floods stop
    HERD_CHECK (!herd_record_newer (&a, &a));
    HERD_CHECK_INT (s_parse_str ("AT Hill +0.000000000 k +1+1 100.50", &b), 0);
    HERD_CHECK (herd_record_newer (&b, &a) != herd_record_newer (&a, &b));

    //  Peek reads client and time as parse does, and refuses what lacks them
    HERD_CHECK_INT (herd_record_peek (line, strlen (line), &b), 0);
    HERD_CHECK_INT (s_parse_str (line, &a), 0);
    HERD_CHECK (b.client.data == a.client.data && b.client.size == a.client.size);
    HERD_CHECK (b.time_sec == a.time_sec && b.time_nsec == a.time_nsec);
    HERD_CHECK_INT (herd_record_peek ("AT Hill +0 k +1+1", 17, &b), -1);
    HERD_CHECK_INT (herd_record_peek ("AT Hill +0 k +1+1 x", 19, &b), -1);
    HERD_CHECK_INT (herd_record_peek ("AT Hill  k +1+1 1", 17, &b), -1);
    HERD_CHECK_INT (herd_record_peek ("IAMAT Hill +0 k +1+1 1", 22, &b), -1);
    //  ...but is weaker: a bad position or diff is for parse to refuse
    HERD_CHECK_INT (herd_record_peek ("AT Hill +0 k here 1", 19, &b), 0);
    HERD_CHECK_INT (s_parse_str ("AT Hill +0 k here 1", &a), -1);

}

//  Hashes: stable, and sensitive to every byte.
static void
s_test_hash (void)
{
    HERD_CHECK (herd_record_hash ("abc", 3) == herd_record_hash ("abc", 3));
    HERD_CHECK (herd_record_hash ("abc", 3) != herd_record_hash ("abd", 3));
    HERD_CHECK (herd_record_hash ("abc", 3) != herd_record_hash ("abc", 2));
    HERD_CHECK (herd_record_hash ("", 0) != 0);
    HERD_CHECK (herd_record_hash ("abc", 3) != herd_record_hash ("abc\0", 4));
    //  A known answer: the value is stored in every journal's checksums and
    //  sent as the herd-wide table digest, so it must never change by
    //  accident (a new function needs a new journal magic; herd_journal.h)
    const char *known = "AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 "
                        "1520023934.918963997";
    uint64_t answer = herd_record_hash (known, strlen (known));
    if (answer != 0x3adc66cf62ce9cedULL)
        fprintf (stderr, "herd_record_hash (known) is 0x%016" PRIx64 "\n", answer);
    HERD_CHECK (answer == 0x3adc66cf62ce9cedULL);
    HERD_CHECK (herd_record_hash ("", 0) == 0xe220a8397b1dcdafULL);
    //  Every byte position counts, in whole words and in the tail
    char bytes[40];
    for (size_t i = 0; i < sizeof (bytes); i++)
        bytes[i] = (char) ('a' + i % 26);
    uint64_t whole = herd_record_hash (bytes, sizeof (bytes));
    for (size_t i = 0; i < sizeof (bytes); i++) {
        bytes[i] ^= 0x01;
        HERD_CHECK (herd_record_hash (bytes, sizeof (bytes)) != whole);
        bytes[i] ^= (char) 0x81;            //  the top bit alone
        HERD_CHECK (herd_record_hash (bytes, sizeof (bytes)) != whole);
        bytes[i] ^= (char) 0x80;
    }
    HERD_CHECK (herd_record_hash (bytes, sizeof (bytes)) == whole);
    //  The length counts: zero bytes of every length 0..17 hash differently
    char zeros[17] = {0};
    uint64_t seen[18];
    for (size_t size = 0; size <= sizeof (zeros); size++) {
        seen[size] = herd_record_hash (zeros, size);
        for (size_t other = 0; other < size; other++)
            HERD_CHECK (seen[other] != seen[size]);
    }
}

void
herd_record_test (bool verbose)
{
    (void) verbose;
    s_test_parse ();
    s_test_newer ();
    s_test_hash ();
}
