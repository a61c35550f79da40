//  herd_table.c - the bus's location table (see herd_table.h).

#include "herd_table.h"
#include "../common/herd_check.h"
#include "../common/herd_record.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HERD_TABLE_MIN 1024             //  initial index slots (a power of two)

struct _herd_table_t {
    herd_entry_t **slots;               //  the index: entry pointers, NULL = empty
    size_t mask;                        //  slots - 1
    size_t count;                       //  entries stored
};

//  The index's hash of a client id: herd_record_hash (eight bytes a step),
//  cut to 32 bits, so the project has one hash to keep fast and correct.
static inline uint32_t
s_key_hash (const char *client, size_t size)
{
    return (uint32_t) herd_record_hash (client, size);
}

uint32_t
herd_table_key (const char *client, size_t size)
{
    return s_key_hash (client, size);
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
    return herd_table_find (self, s_key_hash (client, size), client, size);
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

void
herd_table_test (bool verbose)
{
    (void) verbose;
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
                == (uint32_t) herd_record_hash ("kiwi.cs.ucla.edu", 16));
    HERD_CHECK (herd_table_find (table, herd_table_key ("ab", 2), "ab", 2)->time_sec == 6);
    herd_table_destroy (&table);
    HERD_CHECK (table == NULL);
    herd_table_destroy (&table);
}
