//  herd_record.c - a client location record (an AT line) and which one wins.

#include "herd_record.h"
#include "herd_check.h"

#include <string.h>

//  Split line into exactly count fields separated by single spaces; false
//  when there are more or fewer, or an empty field (two spaces in a row).
static bool
s_split_exact (const char *line, size_t size, herd_span_t *fields, size_t count)
{
    const char *at = line, *end = line + size;
    for (size_t i = 0; i < count; i++) {
        if (at >= end)
            return false;
        const char *space = memchr (at, ' ', (size_t) (end - at));
        const char *stop = (space && i + 1 < count) ? space : end;
        if (stop == at)
            return false;
        fields[i] = (herd_span_t){at, (size_t) (stop - at)};
        at = stop + 1;
    }
    for (size_t i = 0; i < count; i++)
        if (memchr (fields[i].data, ' ', fields[i].size))
            return false;
    return true;
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
herd_record_parse (const char *line, size_t size, herd_record_t *record)
{
    memset (record, 0, sizeof (*record));
    if (size < 3 || memcmp (line, "AT ", 3) != 0 || memchr (line, 0, size))
        return -1;
    herd_span_t fields[5];
    if (!s_split_exact (line + 3, size - 3, fields, 5))
        return -1;
    //  No other whitespace inside a field ('\t' '\n' '\v' '\f' '\r'): one
    //  pass over the line, not a strchr per byte (the bus parses every
    //  record it receives)
    for (size_t i = 3; i < size; i++)
        if ((unsigned char) line[i] - 9u < 5u)
            return -1;
    if (!s_valid_diff (fields[1])
        || herd_proto_parse_position (fields[3].data, fields[3].size, NULL, NULL)
        || herd_proto_parse_time (fields[4].data, fields[4].size, &record->time_sec,
                                  &record->time_nsec))
        return -1;
    record->line = (herd_span_t){line, size};
    record->origin = fields[0];
    record->diff = fields[1];
    record->client = fields[2];
    record->position = fields[3];
    record->time = fields[4];
    return 0;
}

int
herd_record_peek (const char *line, size_t size, herd_record_t *record)
{
    memset (record, 0, sizeof (*record));
    if (size < 3 || memcmp (line, "AT ", 3) != 0)
        return -1;
    //  The same split as s_split_exact: four single spaces, then the rest
    const char *at = line + 3, *end = line + size;
    herd_span_t fields[5];
    for (int i = 0; i < 4; i++) {
        const char *space = (const char *) memchr (at, ' ', (size_t) (end - at));
        if (!space || space == at)
            return -1;
        fields[i] = (herd_span_t){at, (size_t) (space - at)};
        at = space + 1;
    }
    fields[4] = (herd_span_t){at, (size_t) (end - at)};
    if (herd_proto_parse_time (fields[4].data, fields[4].size, &record->time_sec,
                               &record->time_nsec))
        return -1;
    record->line = (herd_span_t){line, size};
    record->client = fields[2];
    record->time = fields[4];
    return 0;
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

//  Eight bytes of data as a little-endian number, whatever the host's byte
//  order: the hash is stored in journals and sent between nodes.
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
