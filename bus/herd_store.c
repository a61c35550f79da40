//  herd_store.c - the node's replicated table (see herd_store.h).

#include "herd_store.h"
#include "herd_table.h"
#include "../common/herd_check.h"
#include "../common/herd_record.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _herd_store_t {
    herd_table_t *table;                //  client id -> herd_entry_t
    herd_entry_t *head, *tail;          //  entries, oldest change first
    uint64_t seq;                       //  last sequence number given
    uint64_t digest;                    //  XOR of every entry's hash
    herd_store_cursor_t *cursors;       //  cursors open on the change list
    herd_store_clock_fn *clock;         //  stamps records applied, or NULL
    void *clock_arg;
};

struct _herd_store_cursor_t {
    herd_store_t *store;
    herd_entry_t *next;                 //  next entry, or NULL: look after seq
    uint64_t seq;                       //  sequence number passed
    herd_store_cursor_t *prev_cursor, *next_cursor;     //  the store's cursors
};

herd_store_t *
herd_store_new (herd_store_clock_fn *clock, void *arg)
{
    herd_store_t *self = (herd_store_t *) calloc (1, sizeof (herd_store_t));
    assert (self);
    self->clock = clock;
    self->clock_arg = arg;
    self->table = herd_table_new ();
    return self;
}

void
herd_store_destroy (herd_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_store_t *self = *self_p;
    //  Cursors left open go with the store, unlinked or not
    herd_store_cursor_t *cursor = self->cursors;
    while (cursor) {
        herd_store_cursor_t *next = cursor->next_cursor;
        free (cursor);
        cursor = next;
    }
    herd_table_destroy (&self->table);          //  frees every entry
    free (self);
    *self_p = NULL;
}

//  An entry as a record lent to the caller.
static void
s_record (const herd_entry_t *entry, herd_store_record_t *record)
{
    record->line = entry->line;
    record->size = entry->size;
    record->seq = entry->seq;
    record->hash = entry->hash;
    record->applied_usec = entry->applied_usec;
}

//  Take an entry off the change list. A cursor about to meet it goes on
//  with the next (its new version comes at the tail, with a sequence number
//  after the cursor's).
static void
s_unlink (herd_store_t *self, herd_entry_t *entry)
{
    for (herd_store_cursor_t *cursor = self->cursors; cursor; cursor = cursor->next_cursor)
        if (cursor->next == entry)
            cursor->next = entry->next;
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        self->head = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        self->tail = entry->prev;
    entry->prev = entry->next = NULL;
}

//  Append an entry at the tail of the change list.
static void
s_link (herd_store_t *self, herd_entry_t *entry)
{
    entry->prev = self->tail;
    entry->next = NULL;
    if (self->tail)
        self->tail->next = entry;
    else
        self->head = entry;
    self->tail = entry;
}

herd_store_result_t
herd_store_apply (herd_store_t *self, const char *line, size_t size, bool trusted,
                  herd_store_record_t *record)
{
    //  Read client and time, and validate the rest only for a record that
    //  will be stored
    herd_record_t parsed;
    if (herd_record_peek (line, size, &parsed) == -1)
        return HERD_STORE_MALFORMED;
    uint32_t key = herd_table_key (parsed.client.data, parsed.client.size);
    herd_entry_t *current = herd_table_find (self->table, key, parsed.client.data,
                                             parsed.client.size);
    if (current) {
        herd_record_t stored = {
            .line = {current->line, current->size},
            .time_sec = current->time_sec,
            .time_nsec = current->time_nsec,
        };
        if (!herd_record_newer (&parsed, &stored))
            return HERD_STORE_STALE;
    }
    if (!trusted && herd_record_finish (&parsed) == -1)
        return HERD_STORE_MALFORMED;
    if (current) {
        s_unlink (self, current);
        self->digest ^= current->hash;
    }
    herd_entry_t *entry = herd_entry_new (line, size, parsed.client, key);
    entry->seq = ++self->seq;
    entry->hash = herd_record_hash (line, size);
    entry->time_sec = parsed.time_sec;
    entry->time_nsec = parsed.time_nsec;
    entry->applied_usec = self->clock ? self->clock (self->clock_arg) : 0;
    herd_table_put (self->table, entry);        //  frees current
    s_link (self, entry);
    self->digest ^= entry->hash;
    if (record)
        s_record (entry, record);
    return HERD_STORE_APPLIED;
}

bool
herd_store_lookup (herd_store_t *self, const char *client, size_t size,
                   herd_store_record_t *record)
{
    herd_entry_t *entry = herd_table_lookup (self->table, client, size);
    if (entry)
        s_record (entry, record);
    return entry != NULL;
}

size_t
herd_store_size (herd_store_t *self)
{
    return herd_table_size (self->table);
}

uint64_t
herd_store_digest (herd_store_t *self)
{
    return self->digest;
}

uint64_t
herd_store_seq (herd_store_t *self)
{
    return self->seq;
}

herd_store_cursor_t *
herd_store_cursor_new (herd_store_t *self, uint64_t since)
{
    herd_store_cursor_t *cursor = (herd_store_cursor_t *) calloc (1, sizeof (*cursor));
    assert (cursor);
    cursor->store = self;
    cursor->seq = since;
    cursor->next_cursor = self->cursors;
    if (self->cursors)
        self->cursors->prev_cursor = cursor;
    self->cursors = cursor;
    return cursor;
}

void
herd_store_cursor_destroy (herd_store_cursor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_store_cursor_t *self = *self_p;
    if (self->prev_cursor)
        self->prev_cursor->next_cursor = self->next_cursor;
    else
        self->store->cursors = self->next_cursor;
    if (self->next_cursor)
        self->next_cursor->prev_cursor = self->prev_cursor;
    free (self);
    *self_p = NULL;
}

//  The first entry changed after seq, or NULL. Walks back from the tail:
//  the list is in sequence order, and a cursor that finds nothing ahead is
//  usually near it.
static herd_entry_t *
s_first_after (herd_store_t *self, uint64_t seq)
{
    herd_entry_t *entry = self->tail;
    while (entry && entry->prev && entry->prev->seq > seq)
        entry = entry->prev;
    return entry && entry->seq > seq ? entry : NULL;
}

bool
herd_store_cursor_peek (herd_store_cursor_t *self, herd_store_record_t *record)
{
    if (!self->next)
        self->next = s_first_after (self->store, self->seq);
    if (self->next)
        s_record (self->next, record);
    return self->next != NULL;
}

bool
herd_store_cursor_next (herd_store_cursor_t *self, herd_store_record_t *record)
{
    if (!herd_store_cursor_peek (self, record))
        return false;
    self->seq = self->next->seq;
    self->next = self->next->next;
    return true;
}

uint64_t
herd_store_cursor_seq (herd_store_cursor_t *self)
{
    return self->seq;
}

//  -------------------------------------------------------------------------
//  Self test

//  Apply a NUL-terminated line, untrusted.
static herd_store_result_t
s_apply (herd_store_t *store, const char *line)
{
    return herd_store_apply (store, line, strlen (line), false, NULL);
}

//  A test clock: the time in *arg, which moves on a step each call.
static int64_t
s_clock (void *arg)
{
    int64_t *now = (int64_t *) arg;
    return (*now)++;
}

//  The client's stored line as a string (static buffer), or "none".
static const char *
s_line (herd_store_t *store, const char *client)
{
    static char text[256];
    herd_store_record_t record;
    if (!herd_store_lookup (store, client, strlen (client), &record))
        return "none";
    snprintf (text, sizeof (text), "%.*s", (int) record.size, record.line);
    return text;
}

//  Every record changed after since, in change order, as "line\n..." (the
//  caller frees it), through a cursor.
static char *
s_delta (herd_store_t *store, uint64_t since)
{
    size_t capacity = 1 << 16, used = 0;
    char *text = (char *) calloc (1, capacity);
    assert (text);
    herd_store_cursor_t *cursor = herd_store_cursor_new (store, since);
    herd_store_record_t record;
    while (herd_store_cursor_next (cursor, &record)) {
        HERD_CHECK (record.seq > since);
        HERD_CHECK (used + record.size + 2 < capacity);
        used += (size_t) snprintf (text + used, capacity - used, "%.*s\n", (int) record.size,
                                   record.line);
    }
    herd_store_cursor_destroy (&cursor);
    return text;
}

//  Apply, lookup, newer wins, malformed and trusted lines, count and
//  digest after a replace.
static void
s_test_apply (void)
{
    int64_t now = 1234;
    herd_store_t *store = herd_store_new (s_clock, &now);
    HERD_CHECK_INT (herd_store_size (store), 0);
    HERD_CHECK (herd_store_digest (store) == 0 && herd_store_seq (store) == 0);
    HERD_CHECK_STR (s_line (store, "kiwi"), "none");

    const char *first = "AT A +0.100000000 kiwi +34.068930-118.445127 1621464827.959498503";
    herd_store_record_t record;
    HERD_CHECK_INT (herd_store_apply (store, first, strlen (first), false, &record),
                    HERD_STORE_APPLIED);
    HERD_CHECK (record.seq == 1 && record.applied_usec == 1234);
    HERD_CHECK (record.hash == herd_record_hash (first, strlen (first)));
    HERD_CHECK_STR (s_line (store, "kiwi"), first);
    HERD_CHECK (herd_store_lookup (store, "kiwi", 4, &record) && record.applied_usec == 1234);
    HERD_CHECK (herd_store_digest (store) == herd_record_hash (first, strlen (first)));

    //  Older, or the same again: stale, nothing changes
    HERD_CHECK_INT (s_apply (store, "AT A +0.100000000 kiwi +1+1 1621464827.9"),
                    HERD_STORE_STALE);
    HERD_CHECK_INT (s_apply (store, first), HERD_STORE_STALE);
    HERD_CHECK_STR (s_line (store, "kiwi"), first);
    HERD_CHECK (now == 1235);           //  the clock is read only to stamp
    HERD_CHECK (herd_store_seq (store) == 1);

    //  Malformed: no client and time; untrusted, a bad location too
    HERD_CHECK_INT (s_apply (store, "AT A +0.1 bad 10"), HERD_STORE_MALFORMED);
    HERD_CHECK_INT (s_apply (store, "AT A +0.100000000 bad nowhere 10"),
                    HERD_STORE_MALFORMED);
    HERD_CHECK_STR (s_line (store, "bad"), "none");
    //  ...which a trusted line is not checked for (its fields were)
    const char *odd = "AT A +0.100000000 odd nowhere 10";
    HERD_CHECK_INT (herd_store_apply (store, odd, strlen (odd), true, NULL),
                    HERD_STORE_APPLIED);

    //  A replace: count stays, digest trades the old hash for the new
    const char *newer = "AT B -0.200000000 kiwi +1+1 1700000000";
    uint64_t before = herd_store_digest (store);
    HERD_CHECK_INT (s_apply (store, newer), HERD_STORE_APPLIED);
    HERD_CHECK_INT (herd_store_size (store), 2);
    HERD_CHECK (herd_store_digest (store)
                == (before ^ herd_record_hash (first, strlen (first))
                    ^ herd_record_hash (newer, strlen (newer))));
    HERD_CHECK (herd_store_seq (store) == 3);
    HERD_CHECK (herd_store_lookup (store, "kiwi", 4, &record) && record.seq == 3);
    HERD_CHECK (record.applied_usec == 1236);
    HERD_CHECK_STR (s_line (store, "kiwi"), newer);

    //  Applied times are kept whole: a bus up for years reports them exact
    //  (the bus once kept 32 bits of ms since its start: 49.7 days)
    now = 1785000000000000 + (int64_t) 400 * 86400 * 1000000;
    HERD_CHECK_INT (s_apply (store, "AT B -0.200000000 kiwi +1+1 1700000001"),
                    HERD_STORE_APPLIED);
    HERD_CHECK (herd_store_lookup (store, "kiwi", 4, &record));
    HERD_CHECK (record.applied_usec == 1785000000000000 + (int64_t) 400 * 86400 * 1000000);
    herd_store_destroy (&store);
    HERD_CHECK (store == NULL);
    herd_store_destroy (&store);
}

//  The records of the convergence tests: four clients, several versions
//  each, two with the same client time from two origins.
static const char *s_updates[] = {
    "AT A +0.000000000 kiwi +1+1 100",
    "AT B +0.000000000 kiwi +2+2 200",
    "AT C +0.000000000 kiwi +3+3 150",
    "AT A +0.000000000 plum +1+1 100.5",
    "AT B +0.000000000 plum +1+1 100.25",
    "AT A +0.000000000 lime +4+4 300",
    "AT B +0.000000000 lime +5+5 300",      //  a tie: sorts after A's, so wins
    "AT C +0.000000000 pear +1+1 1",
    "AT C +0.000000000 pear +1+1 2",
};
#define S_UPDATES (sizeof (s_updates) / sizeof (s_updates[0]))

//  Any order of the same updates gives the same records and digest; ties
//  of client time break the same way everywhere.
static void
s_test_converge (void)
{
    herd_store_t *reference = herd_store_new (NULL, NULL);
    for (size_t i = 0; i < S_UPDATES; i++)
        s_apply (reference, s_updates[i]);
    HERD_CHECK_INT (herd_store_size (reference), 4);
    HERD_CHECK_STR (s_line (reference, "kiwi"), "AT B +0.000000000 kiwi +2+2 200");
    HERD_CHECK_STR (s_line (reference, "plum"), "AT A +0.000000000 plum +1+1 100.5");
    HERD_CHECK_STR (s_line (reference, "lime"), "AT B +0.000000000 lime +5+5 300");
    HERD_CHECK_STR (s_line (reference, "pear"), "AT C +0.000000000 pear +1+1 2");

    //  Many orders (a fixed-seed shuffle), each with duplicates as a bus
    //  gets them from several neighbours
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        size_t order[S_UPDATES];
        for (size_t i = 0; i < S_UPDATES; i++)
            order[i] = i;
        for (size_t i = S_UPDATES - 1; i > 0; i--) {
            seed = seed * 1103515245 + 12345;
            size_t j = (seed >> 16) % (i + 1), swap = order[i];
            order[i] = order[j];
            order[j] = swap;
        }
        herd_store_t *store = herd_store_new (NULL, NULL);
        for (size_t i = 0; i < S_UPDATES; i++) {
            s_apply (store, s_updates[order[i]]);
            if (i % 3 == 0)
                s_apply (store, s_updates[order[i / 2]]);
        }
        HERD_CHECK_INT (herd_store_size (store), herd_store_size (reference));
        HERD_CHECK (herd_store_digest (store) == herd_store_digest (reference));
        const char *clients[] = {"kiwi", "plum", "lime", "pear"};
        for (size_t c = 0; c < 4; c++) {
            char expected[256];
            snprintf (expected, sizeof (expected), "%s", s_line (reference, clients[c]));
            HERD_CHECK_STR (s_line (store, clients[c]), expected);
        }
        //  Its whole change list carries those records, each once
        char *all = s_delta (store, 0), *want = s_delta (reference, 0);
        HERD_CHECK_INT (strlen (all), strlen (want));
        free (all);
        free (want);
        herd_store_destroy (&store);
    }
    herd_store_destroy (&reference);
}

//  A delta since s holds exactly the changes after s, each client once at
//  its latest place; since 0 is every record, UINT64_MAX none.
static void
s_test_delta (void)
{
    herd_store_t *store = herd_store_new (NULL, NULL);
    s_apply (store, "AT A +0.000000000 kiwi +1+1 1");       //  seq 1
    s_apply (store, "AT A +0.000000000 plum +1+1 1");       //  2
    s_apply (store, "AT A +0.000000000 lime +1+1 1");       //  3
    uint64_t mark = herd_store_seq (store);
    HERD_CHECK (mark == 3);
    s_apply (store, "AT A +0.000000000 pear +1+1 1");       //  4
    s_apply (store, "AT A +0.000000000 kiwi +1+1 2");       //  5: kiwi moves
    s_apply (store, "AT A +0.000000000 pear +1+1 2");       //  6: pear, twice after mark
    s_apply (store, "AT A +0.000000000 plum +1+1 0");       //  stale: not a change

    char *delta = s_delta (store, mark);
    HERD_CHECK_STR (delta, "AT A +0.000000000 kiwi +1+1 2\nAT A +0.000000000 pear +1+1 2\n");
    free (delta);
    delta = s_delta (store, 0);
    HERD_CHECK_STR (delta, "AT A +0.000000000 plum +1+1 1\nAT A +0.000000000 lime +1+1 1\n"
                           "AT A +0.000000000 kiwi +1+1 2\nAT A +0.000000000 pear +1+1 2\n");
    free (delta);
    delta = s_delta (store, 5);
    HERD_CHECK_STR (delta, "AT A +0.000000000 pear +1+1 2\n");
    free (delta);
    delta = s_delta (store, herd_store_seq (store));
    HERD_CHECK_STR (delta, "");
    free (delta);
    delta = s_delta (store, UINT64_MAX);
    HERD_CHECK_STR (delta, "");
    free (delta);
    herd_store_destroy (&store);
}

//  A cursor left and resumed while records are applied: one it has not
//  reached that changes is met at its new place, one it passed comes
//  again, later ones come after; peek does not move it.
static void
s_test_cursor (void)
{
    herd_store_t *store = herd_store_new (NULL, NULL);
    s_apply (store, "AT A +0.000000000 a +1+1 1");      //  seq 1
    s_apply (store, "AT A +0.000000000 b +1+1 1");      //  2
    s_apply (store, "AT A +0.000000000 c +1+1 1");      //  3
    herd_store_cursor_t *cursor = herd_store_cursor_new (store, 0);
    herd_store_cursor_t *other = herd_store_cursor_new (store, 2);
    herd_store_record_t record;
    HERD_CHECK (herd_store_cursor_peek (cursor, &record) && record.seq == 1);
    HERD_CHECK (herd_store_cursor_next (cursor, &record) && record.seq == 1);
    HERD_CHECK (herd_store_cursor_seq (cursor) == 1);
    HERD_CHECK (herd_store_cursor_peek (cursor, &record) && record.seq == 2);
    //  b, next in line, changes: the cursor goes on with c, then b
    s_apply (store, "AT A +0.000000000 b +1+1 2");      //  4
    s_apply (store, "AT A +0.000000000 a +1+1 2");      //  5: passed, comes again
    HERD_CHECK (herd_store_cursor_next (cursor, &record) && record.seq == 3);
    HERD_CHECK (herd_store_cursor_next (cursor, &record) && record.seq == 4);
    HERD_CHECK (herd_store_cursor_next (cursor, &record) && record.seq == 5);
    HERD_CHECK (!herd_store_cursor_next (cursor, &record));
    HERD_CHECK (herd_store_cursor_seq (cursor) == 5);
    //  At the end it waits: what is applied later is met later
    s_apply (store, "AT A +0.000000000 d +1+1 1");      //  6
    HERD_CHECK (herd_store_cursor_next (cursor, &record) && record.seq == 6);
    HERD_CHECK (memcmp (record.line, "AT A +0.000000000 d", 19) == 0);
    //  The other cursor, after 2: c, b, a, d
    uint64_t seen[4];
    for (int i = 0; i < 4; i++) {
        HERD_CHECK (herd_store_cursor_next (other, &record));
        seen[i] = record.seq;
    }
    HERD_CHECK (seen[0] == 3 && seen[1] == 4 && seen[2] == 5 && seen[3] == 6);
    HERD_CHECK (!herd_store_cursor_peek (other, &record));
    herd_store_cursor_destroy (&cursor);
    HERD_CHECK (cursor == NULL);
    //  A cursor left open is destroyed with its store
    herd_store_destroy (&store);
}

//  Many clients: every one found after the index grows, replaced in place,
//  the change list and digest kept with them.
static void
s_test_many (void)
{
    herd_store_t *store = herd_store_new (NULL, NULL);
    char line[128];
    uint64_t digest = 0;
    for (int i = 0; i < 50000; i++) {
        snprintf (line, sizeof (line), "AT A +0.000000000 client-%d +1+1 %d", i, i);
        HERD_CHECK_INT (s_apply (store, line), HERD_STORE_APPLIED);
        if (i % 5 != 0)
            digest ^= herd_record_hash (line, strlen (line));
    }
    for (int i = 0; i < 50000; i += 5) {
        snprintf (line, sizeof (line), "AT A +0.000000000 client-%d +1+1 %d", i, i + 100000);
        HERD_CHECK_INT (s_apply (store, line), HERD_STORE_APPLIED);
        digest ^= herd_record_hash (line, strlen (line));
    }
    HERD_CHECK_INT (herd_store_size (store), 50000);
    HERD_CHECK (herd_store_digest (store) == digest);
    HERD_CHECK (herd_store_seq (store) == 60000);
    //  The change list: every client once, in sequence order
    herd_store_cursor_t *cursor = herd_store_cursor_new (store, 0);
    herd_store_record_t record;
    size_t count = 0;
    uint64_t last = 0;
    while (herd_store_cursor_next (cursor, &record)) {
        HERD_CHECK (record.seq > last);
        last = record.seq;
        count++;
    }
    HERD_CHECK_INT (count, 50000);
    herd_store_cursor_destroy (&cursor);
    snprintf (line, sizeof (line), "%s", s_line (store, "client-10"));
    HERD_CHECK_STR (line, "AT A +0.000000000 client-10 +1+1 100010");
    HERD_CHECK_STR (s_line (store, "client-11"), "AT A +0.000000000 client-11 +1+1 11");
    HERD_CHECK_STR (s_line (store, "client-50000"), "none");
    herd_store_destroy (&store);
}

void
herd_store_test (bool verbose)
{
    (void) verbose;
    s_test_apply ();
    s_test_converge ();
    s_test_delta ();
    s_test_cursor ();
    s_test_many ();
}
