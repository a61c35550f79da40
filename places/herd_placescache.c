//  herd_placescache.c - the places worker's answer cache.
//
//  A zlistx in the order answers were put, which is also the order they
//  expire in (one ttl for all at a time), and a zhashx from key to the
//  answer's place in that list.

#include "herd_placescache.h"
#include "../common/herd_check.h"

#include <czmq.h>

//  One cached answer.
typedef struct {
    char *key;
    char *body;
    char *status;
    int results;
    int64_t stored;
    int64_t expires;
} s_entry_t;

struct _herd_placescache_t {
    zlistx_t *order;            //  of s_entry_t, oldest first; owns them
    zhashx_t *index;            //  key -> handle in order
    size_t bytes;               //  of the bodies kept
    size_t max_bytes;
};

//  Destroy an entry; zlistx's destructor, so it nulls the caller's pointer.
static void
s_entry_destroy (void **item_p)
{
    s_entry_t *self = (s_entry_t *) *item_p;
    if (self) {
        free (self->key);
        free (self->body);
        free (self->status);
        free (self);
        *item_p = NULL;
    }
}

herd_placescache_t *
herd_placescache_new (size_t max_bytes)
{
    herd_placescache_t *self = (herd_placescache_t *) zmalloc (sizeof (herd_placescache_t));
    assert (self);
    self->order = zlistx_new ();
    self->index = zhashx_new ();
    assert (self->order && self->index);
    zlistx_set_destructor (self->order, s_entry_destroy);
    self->max_bytes = max_bytes;
    return self;
}

void
herd_placescache_destroy (herd_placescache_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        herd_placescache_t *self = *self_p;
        zhashx_destroy (&self->index);
        zlistx_destroy (&self->order);
        free (self);
        *self_p = NULL;
    }
}

//  Drop the answer at handle in the order list.
static void
s_remove (herd_placescache_t *self, void *handle)
{
    s_entry_t *entry = (s_entry_t *) zlistx_handle_item (handle);
    self->bytes -= strlen (entry->body);
    zhashx_delete (self->index, entry->key);
    zlistx_delete (self->order, handle);
}

bool
herd_placescache_get (herd_placescache_t *self, const char *key, int64_t now,
                      herd_placescache_answer_t *answer)
{
    void *handle = zhashx_lookup (self->index, key);
    if (!handle)
        return false;
    s_entry_t *entry = (s_entry_t *) zlistx_handle_item (handle);
    if (entry->expires <= now) {
        s_remove (self, handle);
        return false;
    }
    answer->body = entry->body;
    answer->status = entry->status;
    answer->results = entry->results;
    answer->stored = entry->stored;
    return true;
}

void
herd_placescache_put (herd_placescache_t *self, const char *key, const char *body,
                      const char *status, int results, int ttl_ms, int max, int64_t now)
{
    size_t bytes = strlen (body);
    if (ttl_ms <= 0 || bytes > self->max_bytes)
        return;
    void *old = zhashx_lookup (self->index, key);
    if (old)
        s_remove (self, old);
    s_entry_t *oldest;
    while ((oldest = (s_entry_t *) zlistx_first (self->order))) {
        if (oldest->expires > now && zlistx_size (self->order) < (size_t) max
            && self->bytes + bytes <= self->max_bytes)
            break;
        s_remove (self, zlistx_cursor (self->order));
    }
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    assert (entry);
    entry->key = strdup (key);
    entry->body = strdup (body);
    entry->status = strdup (status);
    assert (entry->key && entry->body && entry->status);
    entry->results = results;
    entry->stored = now;
    entry->expires = now + (int64_t) ttl_ms * 1000;
    self->bytes += bytes;
    zhashx_insert (self->index, key, zlistx_add_end (self->order, entry));
}

size_t
herd_placescache_size (herd_placescache_t *self)
{
    return zlistx_size (self->order);
}

size_t
herd_placescache_bytes (herd_placescache_t *self)
{
    return self->bytes;
}

//  --------------------------------------------------------------------------
//  Self test

//  Check that key is kept with this body (or not kept, body NULL) at now.
static void
s_expect (herd_placescache_t *cache, const char *key, int64_t now, const char *body)
{
    herd_placescache_answer_t answer = {0};
    bool found = herd_placescache_get (cache, key, now, &answer);
    HERD_CHECK_INT (found, body != NULL);
    if (body)
        HERD_CHECK_STR (answer.body, body);
}

//  Time-to-live, replacing, and what is never kept
static void
s_test_ttl (void)
{
    herd_placescache_t *cache = herd_placescache_new (1024);
    herd_placescache_put (cache, "a", "{A}", "OK", 2, 100, 10, 1000);
    herd_placescache_answer_t answer = {0};
    HERD_CHECK (herd_placescache_get (cache, "a", 1000 + 99999, &answer));
    HERD_CHECK_STR (answer.status, "OK");
    HERD_CHECK_INT (answer.results, 2);
    HERD_CHECK_INT (answer.stored, 1000);
    s_expect (cache, "b", 1000, NULL);
    //  Expired at stored + ttl exactly, and dropped when asked for
    s_expect (cache, "a", 1000 + 100000, NULL);
    HERD_CHECK_INT (herd_placescache_size (cache), 0);
    HERD_CHECK_INT (herd_placescache_bytes (cache), 0);
    //  A second put replaces the first, with its own time
    herd_placescache_put (cache, "a", "{A1}", "OK", 1, 100, 10, 0);
    herd_placescache_put (cache, "a", "{A2}", "ZERO_RESULTS", 0, 100, 10, 50000);
    HERD_CHECK_INT (herd_placescache_size (cache), 1);
    HERD_CHECK_INT (herd_placescache_bytes (cache), 4);
    s_expect (cache, "a", 120000, "{A2}");
    //  No ttl, or a body larger than the whole cache: nothing kept
    herd_placescache_put (cache, "b", "{B}", "OK", 1, 0, 10, 0);
    s_expect (cache, "b", 0, NULL);
    char *large = (char *) zmalloc (1026);
    memset (large, 'x', 1025);
    herd_placescache_put (cache, "c", large, "OK", 1, 100, 10, 0);
    s_expect (cache, "c", 0, NULL);
    free (large);
    herd_placescache_destroy (&cache);
    HERD_CHECK (cache == NULL);
    herd_placescache_destroy (&cache);
}

//  Making room: the oldest goes when max answers are kept or the bytes
//  would pass the limit; expired answers go first
static void
s_test_room (void)
{
    herd_placescache_t *cache = herd_placescache_new (10);
    herd_placescache_put (cache, "a", "{A}", "OK", 1, 1000, 2, 0);
    herd_placescache_put (cache, "b", "{B}", "OK", 1, 1000, 2, 1);
    herd_placescache_put (cache, "c", "{C}", "OK", 1, 1000, 2, 2);
    s_expect (cache, "a", 3, NULL);
    s_expect (cache, "b", 3, "{B}");
    s_expect (cache, "c", 3, "{C}");
    //  6 bytes kept, 5 more pass 10: b goes though max allows 3
    herd_placescache_put (cache, "d", "{DDD}", "OK", 1, 1000, 3, 3);
    s_expect (cache, "b", 4, NULL);
    s_expect (cache, "c", 4, "{C}");
    HERD_CHECK_INT (herd_placescache_bytes (cache), 8);
    //  Both expired: both go, though there is room
    herd_placescache_put (cache, "e", "{E}", "OK", 1, 1000, 10, 1000000 + 3);
    HERD_CHECK_INT (herd_placescache_size (cache), 1);
    HERD_CHECK_INT (herd_placescache_bytes (cache), 3);
    s_expect (cache, "e", 1000000 + 4, "{E}");
    herd_placescache_destroy (&cache);
}

void
herd_placescache_test (bool verbose)
{
    printf (" * herd_placescache: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    s_test_ttl ();
    s_test_room ();
    //  @end

    printf ("OK\n");
}
