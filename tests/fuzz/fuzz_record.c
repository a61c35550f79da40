//  fuzz_record.c - libFuzzer target: the bus message decoder and its order.
//
//  A bus update is ["U", at-line]; the at-line frame is untrusted bytes that
//  herd_record_parse decodes. The whole input is tried as one frame, then
//  cut at '\n' into up to three frames a, b, c. For every record parsed:
//  its fields rebuild the line exactly, and it is never newer than itself.
//  For every pair: never both a>b and b>a, and exactly one of them when the
//  lines differ (all servers converge); for three, the order is transitive.
//  A record whose diff is in herd_proto_format_diff's canonical form must be
//  what herd_proto_at_line writes for its fields. herd_record_peek accepts
//  every line herd_record_parse accepts, with the same client and time.

#include "../../common/herd_proto.h"
#include "../../common/herd_record.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ORACLE(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf (stderr, "fuzz_record: oracle failed at line %d: %s\n", __LINE__,   \
                     #cond);                                                            \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

#define S_FRAMES_MAX 3

//  True if two spans hold the same bytes.
static bool
s_same (herd_span_t a, herd_span_t b)
{
    return a.size == b.size && (a.size == 0 || memcmp (a.data, b.data, a.size) == 0);
}

//  A copy of size bytes in a buffer of exactly that size (ASan sees overreads).
static char *
s_copy (const uint8_t *data, size_t size)
{
    char *copy = malloc (size ? size : 1);
    if (copy && size)
        memcpy (copy, data, size);
    return copy;
}

//  Parse a time difference "+S.NNNNNNNNN" (at most 18 digits of seconds)
//  into signed seconds and nanoseconds; false if it does not fit or is not
//  canonical (a leading zero, or "-0.000000000"), as format_diff never
//  writes those.
static bool
s_canonical_diff (herd_span_t diff, int64_t *sec_p, int64_t *nsec_p)
{
    size_t digits = diff.size - 11;
    if (digits > 18 || (digits > 1 && diff.data[1] == '0'))
        return false;
    int64_t sec = 0, nsec = 0;
    for (size_t i = 0; i < digits; i++)
        sec = sec * 10 + (diff.data[1 + i] - '0');
    for (size_t i = 0; i < 9; i++)
        nsec = nsec * 10 + (diff.data[2 + digits + i] - '0');
    if (diff.data[0] == '-') {
        if (sec == 0 && nsec == 0)
            return false;
        sec = -sec;
        nsec = -nsec;
    }
    *sec_p = sec;
    *nsec_p = nsec;
    return true;
}

//  Check one parsed record against the bytes it came from.
static void
s_check_record (const herd_record_t *record, const char *line, size_t size)
{
    S_ORACLE (record->line.data == line && record->line.size == size);
    S_ORACLE (memchr (line, 0, size) == NULL);
    //  "AT origin diff client position time", single spaces, nothing else
    size_t rebuilt_size = 3 + record->origin.size + 1 + record->diff.size + 1
                          + record->client.size + 1 + record->position.size + 1
                          + record->time.size;
    S_ORACLE (rebuilt_size == size);
    char *rebuilt = malloc (rebuilt_size);
    S_ORACLE (rebuilt);
    size_t at = 0;
    const herd_span_t *fields[] = {&record->origin, &record->diff, &record->client,
                                   &record->position, &record->time};
    memcpy (rebuilt, "AT", 2);
    at = 2;
    for (size_t i = 0; i < 5; i++) {
        S_ORACLE (fields[i]->size > 0);
        S_ORACLE (memchr (fields[i]->data, ' ', fields[i]->size) == NULL);
        rebuilt[at++] = ' ';
        memcpy (rebuilt + at, fields[i]->data, fields[i]->size);
        at += fields[i]->size;
    }
    S_ORACLE (memcmp (rebuilt, line, size) == 0);
    free (rebuilt);

    //  The client's own fields are an IAMAT the line parser accepts, with
    //  the same time
    size_t iamat_size = 6 + record->client.size + 1 + record->position.size + 1
                        + record->time.size;
    char *iamat = malloc (iamat_size);
    S_ORACLE (iamat);
    memcpy (iamat, "IAMAT ", 6);
    at = 6;
    memcpy (iamat + at, record->client.data, record->client.size);
    at += record->client.size;
    iamat[at++] = ' ';
    memcpy (iamat + at, record->position.data, record->position.size);
    at += record->position.size;
    iamat[at++] = ' ';
    memcpy (iamat + at, record->time.data, record->time.size);
    herd_cmd_t cmd;
    S_ORACLE (herd_proto_parse (iamat, iamat_size, &cmd) == 0);
    S_ORACLE (cmd.kind == HERD_CMD_IAMAT);
    S_ORACLE (cmd.time_sec == record->time_sec && cmd.time_nsec == record->time_nsec);

    //  A canonical diff: the origin's clock was time + diff, and the AT
    //  line it wrote then is this very line
    int64_t diff_sec, diff_nsec;
    if (s_canonical_diff (record->diff, &diff_sec, &diff_nsec)) {
        int64_t now_sec = record->time_sec + diff_sec;
        int64_t now_nsec = record->time_nsec + diff_nsec;
        if (now_nsec < 0) {
            now_sec -= 1;
            now_nsec += 1000000000;
        }
        else
        if (now_nsec >= 1000000000) {
            now_sec += 1;
            now_nsec -= 1000000000;
        }
        char *origin = malloc (record->origin.size + 1);
        S_ORACLE (origin);
        memcpy (origin, record->origin.data, record->origin.size);
        origin[record->origin.size] = 0;
        size_t again_size = 0;
        char *again = herd_proto_at_line (origin, &cmd, now_sec, (int32_t) now_nsec,
                                          &again_size);
        S_ORACLE (again);
        if (again_size != size || memcmp (again, line, size) != 0) {
            fprintf (stderr, "fuzz_record: at_line rewrote\n  %.*s\nas\n  %s\n", (int) size,
                     line, again);
            abort ();
        }
        free (again);
        free (origin);
    }
    free (iamat);

    //  Never newer than itself, nor than an identical copy
    S_ORACLE (!herd_record_newer (record, record));
    herd_record_t copy = *record;
    S_ORACLE (!herd_record_newer (&copy, record));
}

//  Order checks on two parsed records.
static void
s_check_pair (const herd_record_t *a, const herd_record_t *b)
{
    bool ab = herd_record_newer (a, b);
    bool ba = herd_record_newer (b, a);
    S_ORACLE (!(ab && ba));
    S_ORACLE ((ab || ba) == !s_same (a->line, b->line));
    //  A later client time always wins
    if (a->time_sec > b->time_sec
        || (a->time_sec == b->time_sec && a->time_nsec > b->time_nsec))
        S_ORACLE (ab);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  The whole input as one frame
    herd_record_t whole;
    char *copy = s_copy (data, size);
    if (!copy)
        return 0;
    int rc = herd_record_parse (copy, size, &whole);
    S_ORACLE (rc == 0 || rc == -1);
    if (rc == 0)
        s_check_record (&whole, copy, size);
    //  The bus's stale check reads client and time with herd_record_peek:
    //  it must accept every record parse accepts, and agree with it
    herd_record_t peeked;
    int peek_rc = herd_record_peek (copy, size, &peeked);
    S_ORACLE (peek_rc == 0 || peek_rc == -1);
    if (rc == 0) {
        S_ORACLE (peek_rc == 0);
        S_ORACLE (s_same (peeked.client, whole.client) && s_same (peeked.time, whole.time));
        S_ORACLE (peeked.time_sec == whole.time_sec && peeked.time_nsec == whole.time_nsec);
    }

    //  Up to three frames cut at '\n'
    char *frames[S_FRAMES_MAX] = {NULL, NULL, NULL};
    herd_record_t records[S_FRAMES_MAX];
    bool parsed[S_FRAMES_MAX] = {false, false, false};
    size_t start = 0;
    for (size_t i = 0; i < S_FRAMES_MAX && start <= size; i++) {
        const uint8_t *newline =
            i + 1 < S_FRAMES_MAX ? memchr (data + start, '\n', size - start) : NULL;
        size_t end = newline ? (size_t) (newline - data) : size;
        frames[i] = s_copy (data + start, end - start);
        if (frames[i] && herd_record_parse (frames[i], end - start, &records[i]) == 0) {
            parsed[i] = true;
            s_check_record (&records[i], frames[i], end - start);
        }
        start = end + 1;
    }
    for (size_t i = 0; i < S_FRAMES_MAX; i++)
        for (size_t j = 0; j < S_FRAMES_MAX; j++)
            if (i != j && parsed[i] && parsed[j])
                s_check_pair (&records[i], &records[j]);
    //  Transitivity over every ordering of the three
    if (parsed[0] && parsed[1] && parsed[2])
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < 3; j++)
                for (size_t k = 0; k < 3; k++)
                    if (i != j && j != k && i != k
                        && herd_record_newer (&records[i], &records[j])
                        && herd_record_newer (&records[j], &records[k]))
                        S_ORACLE (herd_record_newer (&records[i], &records[k]));
    for (size_t i = 0; i < S_FRAMES_MAX; i++)
        free (frames[i]);
    free (copy);
    return 0;
}
