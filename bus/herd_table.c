//  herd_table.c - the bus's location table (see herd_table.h).

#include "herd_table.h"
#include "../common/herd_check.h"
#include "../common/herd_record.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HERD_TABLE_MIN 1024             //  initial index slots (a power of two)

struct _herd_table_t {
    herd_entry_t **slots;               //  the index: entry pointers, NULL = empty
    size_t mask;                        //  slots - 1
    size_t count;                       //  entries stored
};

//  The index's key, drawn once per process. Client ids come from anyone, so
//  their slots must not be predictable: with a known function (the table
//  once used herd_record_hash, which is invertible) one client could send
//  thousands of ids for one slot and make every insert, on every node and
//  at every journal replay, walk all of them.
static unsigned char s_key[crypto_shorthash_KEYBYTES];
static pthread_once_t s_key_once = PTHREAD_ONCE_INIT;

static void
s_key_init (void)
{
    int rc = sodium_init ();
    assert (rc >= 0);
    (void) rc;
    randombytes_buf (s_key, sizeof (s_key));
}

uint32_t
herd_table_key (const char *client, size_t size)
{
    pthread_once (&s_key_once, s_key_init);
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash (out, (const unsigned char *) client, size, s_key);
    uint32_t key;
    memcpy (&key, out, sizeof (key));
    return key;
}

//  True if entry holds this client id.
static inline bool
s_matches (const herd_entry_t *entry, uint32_t key_hash, const char *client, size_t size)
{
    return entry->key_hash == key_hash && entry->client_size == size
           && memcmp (entry->line + entry->client_at, client, size) == 0;
}

herd_table_t *
herd_table_new (void)
{
    pthread_once (&s_key_once, s_key_init);
    herd_table_t *self = (herd_table_t *) calloc (1, sizeof (herd_table_t));
    assert (self);
    self->slots = (herd_entry_t **) calloc (HERD_TABLE_MIN, sizeof (herd_entry_t *));
    assert (self->slots);
    self->mask = HERD_TABLE_MIN - 1;
    return self;
}

void
herd_table_destroy (herd_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_table_t *self = *self_p;
    for (size_t i = 0; i <= self->mask; i++)
        free (self->slots[i]);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

herd_entry_t *
herd_entry_new (const char *line, size_t size, herd_span_t client, uint32_t key)
{
    assert (client.data >= line && client.data + client.size <= line + size);
    assert (size <= UINT32_MAX);
    herd_entry_t *entry = (herd_entry_t *) malloc (sizeof (herd_entry_t) + size);
    assert (entry);
    memset (entry, 0, sizeof (herd_entry_t));
    memcpy (entry->line, line, size);
    entry->size = (uint32_t) size;
    entry->client_at = (uint32_t) (client.data - line);
    entry->client_size = (uint32_t) client.size;
    entry->key_hash = key;
    return entry;
}

herd_entry_t *
herd_table_lookup (herd_table_t *self, const char *client, size_t size)
{
    return herd_table_find (self, herd_table_key (client, size), client, size);
}

herd_entry_t *
herd_table_find (herd_table_t *self, uint32_t key_hash, const char *client, size_t size)
{
    for (size_t i = key_hash & self->mask;; i = (i + 1) & self->mask) {
        herd_entry_t *entry = self->slots[i];
        if (!entry || s_matches (entry, key_hash, client, size))
            return entry;
    }
}

//  Double the index and place every entry again.
static void
s_grow (herd_table_t *self)
{
    size_t capacity = (self->mask + 1) * 2;
    herd_entry_t **slots = (herd_entry_t **) calloc (capacity, sizeof (herd_entry_t *));
    assert (slots);
    for (size_t i = 0; i <= self->mask; i++) {
        herd_entry_t *entry = self->slots[i];
        if (!entry)
            continue;
        size_t at = entry->key_hash & (capacity - 1);
        while (slots[at])
            at = (at + 1) & (capacity - 1);
        slots[at] = entry;
    }
    free (self->slots);
    self->slots = slots;
    self->mask = capacity - 1;
}

void
herd_table_put (herd_table_t *self, herd_entry_t *entry)
{
    const char *client = entry->line + entry->client_at;
    size_t i = entry->key_hash & self->mask;
    for (;; i = (i + 1) & self->mask) {
        herd_entry_t *current = self->slots[i];
        if (!current)
            break;
        if (s_matches (current, entry->key_hash, client, entry->client_size)) {
            free (current);
            self->slots[i] = entry;
            return;
        }
    }
    self->slots[i] = entry;
    self->count++;
    if (self->count * 4 > (self->mask + 1) * 3)
        s_grow (self);
}

size_t
herd_table_size (herd_table_t *self)
{
    return self->count;
}

//  An entry for "AT Hill +0.000000000 <client> +1+1 <time>".
static herd_entry_t *
s_test_entry (const char *client, int time)
{
    char line[128];
    int size = snprintf (line, sizeof (line), "AT Hill +0.000000000 %s +1+1 %d", client, time);
    herd_span_t span = {strstr (line, client), strlen (client)};
    herd_entry_t *entry = herd_entry_new (line, (size_t) size, span,
                                          herd_table_key (span.data, span.size));
    entry->time_sec = time;
    return entry;
}

//  Distinct 8-byte ids (no white space, no NUL) whose herd_record_hash has
//  the given low 32 bits: the hash run backwards from chosen outputs, as an
//  attacker would against an index that used it. Returns how many it made.
static size_t
s_colliding_ids (char (*ids)[8], size_t count, uint32_t low)
{
    //  Inverses (mod 2^64) of herd_record_hash's three multipliers
    uint64_t inverse[3] = {0xff51afd7ed558ccdULL, 0xbf58476d1ce4e5b9ULL, 0x94d049bb133111ebULL};
    for (int k = 0; k < 3; k++) {
        uint64_t odd = inverse[k], x = odd;     //  Newton: x = x (2 - odd x)
        for (int step = 0; step < 6; step++)
            x *= 2 - odd * x;
        inverse[k] = x;
    }
    size_t made = 0;
    for (uint64_t high = 1; made < count && high < (1ULL << 32); high++) {
        uint64_t x = high << 32 | low;
        x ^= x >> 31 ^ x >> 62;
        x *= inverse[2];
        x ^= x >> 27 ^ x >> 54;
        x *= inverse[1];
        x ^= x >> 30 ^ x >> 60;
        x ^= x >> 32;
        x = x * inverse[0] ^ (0x9e3779b97f4a7c15ULL ^ 8);
        bool usable = true;
        for (int i = 0; i < 8; i++) {
            ids[made][i] = (char) (x >> (8 * i));
            usable = usable && (unsigned char) ids[made][i] > ' ';
        }
        made += usable;
    }
    return made;
}

//  The longest distance of any entry from its home slot.
static size_t
s_longest_probe (herd_table_t *self)
{
    size_t longest = 0;
    for (size_t i = 0; i <= self->mask; i++)
        if (self->slots[i]) {
            size_t home = self->slots[i]->key_hash & self->mask;
            size_t distance = (i - home) & self->mask;
            longest = distance > longest ? distance : longest;
        }
    return longest;
}

//  Monotonic nanoseconds, for the benchmark.
static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  Verbose only: the cost of the bus's hot path, hashing a client id and
//  finding its entry, in a table of count clients with 16-byte ids like
//  "kiwi.cs.00012345". Nanoseconds per call, best of five passes over every
//  id (the machine may be shared). "Chained" lookups each wait for the one
//  before (the next id comes from the entry found), as the bus's do, with a
//  whole record's work between them; independent ones overlap their cache
//  misses, so a longer hash costs them more than its own time.
static void
s_benchmark (size_t count)
{
    herd_table_t *table = herd_table_new ();
    char (*ids)[32] = malloc (count * sizeof (*ids));
    assert (ids);
    for (size_t i = 0; i < count; i++) {
        snprintf (ids[i], sizeof (ids[i]), "kiwi.cs.%08zu", i);
        herd_table_put (table, s_test_entry (ids[i], (int) i));
    }
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    uint32_t sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        int64_t times[5] = {s_now_ns ()};
        for (size_t i = 0; i < count; i++)
            sink += herd_table_key (ids[i], 16);
        times[1] = s_now_ns ();
        for (size_t i = 0; i < count; i++)
            sink += herd_table_lookup (table, ids[i], 16)->key_hash;
        times[2] = s_now_ns ();
        for (size_t i = 0; i < count; i++)
            sink += herd_table_lookup (table, ids[i], 15) == NULL;
        times[3] = s_now_ns ();
        size_t at = 0;
        for (size_t i = 0; i < count; i++)
            at = ((size_t) herd_table_lookup (table, ids[at], 16)->time_sec + 7919) % count;
        sink += (uint32_t) at;
        times[4] = s_now_ns ();
        for (int k = 0; k < 4; k++) {
            double each = (double) (times[k + 1] - times[k]) / (double) count;
            best[k] = each < best[k] ? each : best[k];
        }
    }
    printf ("herd_table: %zu clients: key %.1f ns, lookup %.1f ns (hit), %.1f ns (miss), "
            "%.1f ns (hit, chained)%s\n",
            count, best[0], best[1], best[2], best[3], sink ? "" : " ");
    free (ids);
    herd_table_destroy (&table);
}

//  Ids made to share one slot of an index on herd_record_hash spread over
//  the keyed index like any others (linear probing at most 3/4 full: runs
//  of tens of slots, not one run of every id).
static void
s_test_colliding (bool verbose)
{
    char client[32];
    size_t count = 20000;
    char (*ids)[8] = malloc (count * sizeof (*ids));
    assert (ids);
    HERD_CHECK_INT (s_colliding_ids (ids, count, 0x5eed), count);
    herd_table_t *table = herd_table_new ();
    for (size_t i = 0; i < count; i++) {
        HERD_CHECK ((uint32_t) herd_record_hash (ids[i], 8) == 0x5eed);
        memcpy (client, ids[i], 8);
        client[8] = 0;
        herd_table_put (table, s_test_entry (client, (int) i));
    }
    HERD_CHECK_INT (herd_table_size (table), count);
    for (size_t i = 0; i < count; i += 97)
        HERD_CHECK (herd_table_lookup (table, ids[i], 8)->time_sec == (int64_t) i);
    size_t longest = s_longest_probe (table);
    if (verbose)
        printf ("herd_table: %zu ids colliding under herd_record_hash: longest probe %zu "
                "slots of %zu\n", count, longest, table->mask + 1);
    HERD_CHECK (longest < 500);
    herd_table_destroy (&table);
    free (ids);
}

void
herd_table_test (bool verbose)
{
    herd_table_t *table = herd_table_new ();
    HERD_CHECK_INT (herd_table_size (table), 0);
    HERD_CHECK (herd_table_lookup (table, "kiwi", 4) == NULL);

    //  Stored and found by its client id, a view into its line
    herd_table_put (table, s_test_entry ("kiwi", 1));
    herd_entry_t *found = herd_table_lookup (table, "kiwi", 4);
    HERD_CHECK (found && found->time_sec == 1);
    HERD_CHECK (found->client_size == 4 && memcmp (found->line + found->client_at, "kiwi", 4) == 0);
    HERD_CHECK (herd_table_lookup (table, "kiw", 3) == NULL);
    HERD_CHECK (herd_table_lookup (table, "kiwis", 5) == NULL);

    //  Replacing keeps one entry per client
    herd_table_put (table, s_test_entry ("kiwi", 2));
    HERD_CHECK_INT (herd_table_size (table), 1);
    HERD_CHECK (herd_table_lookup (table, "kiwi", 4)->time_sec == 2);

    //  Many clients: the index grows, every one is found, replaced in place
    char client[32];
    for (int i = 0; i < 100000; i++) {
        snprintf (client, sizeof (client), "client-%d", i);
        herd_table_put (table, s_test_entry (client, i));
    }
    HERD_CHECK_INT (herd_table_size (table), 100001);
    for (int i = 0; i < 100000; i += 7) {
        snprintf (client, sizeof (client), "client-%d", i);
        herd_table_put (table, s_test_entry (client, i + 1000000));
    }
    HERD_CHECK_INT (herd_table_size (table), 100001);
    for (int i = 0; i < 100000; i++) {
        snprintf (client, sizeof (client), "client-%d", i);
        found = herd_table_lookup (table, client, strlen (client));
        HERD_CHECK (found);
        HERD_CHECK (found->time_sec == (i % 7 == 0 ? i + 1000000 : i));
    }
    HERD_CHECK (herd_table_lookup (table, "client-100000", 13) == NULL);
    //  Ids where one is a prefix of the other
    herd_table_put (table, s_test_entry ("a", 5));
    herd_table_put (table, s_test_entry ("ab", 6));
    HERD_CHECK (herd_table_lookup (table, "a", 1)->time_sec == 5);
    HERD_CHECK (herd_table_lookup (table, "ab", 2)->time_sec == 6);
    //  The key hash reads every byte, also of ids not a multiple of 8 long
    HERD_CHECK (herd_table_key ("abcdefgh1", 9) != herd_table_key ("abcdefgh2", 9));
    HERD_CHECK (herd_table_key ("abcdefgh", 8) != herd_table_key ("abcdefgi", 8));
    HERD_CHECK (herd_table_key ("a", 1) != herd_table_key ("a\0", 2));
    HERD_CHECK (herd_table_key ("kiwi.cs.ucla.edu", 16)
                == herd_table_key ("kiwi.cs.ucla.edu", 16));
    HERD_CHECK (herd_table_find (table, herd_table_key ("ab", 2), "ab", 2)->time_sec == 6);
    herd_table_destroy (&table);
    HERD_CHECK (table == NULL);
    herd_table_destroy (&table);

    s_test_colliding (verbose);
    if (verbose) {
        s_benchmark (100000);
        s_benchmark (1000000);
    }
}
