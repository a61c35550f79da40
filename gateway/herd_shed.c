//  herd_shed.c - whom the gateway drops when unread answers pass
//  max_output_total.
//
//  See herd_shed.h. An array of the clients listed, sorted when the first
//  is asked for, and a cursor.

#include "herd_shed.h"
#include "../common/herd_check.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

//  A client that may be dropped.
typedef struct {
    void *owner;
    int64_t since;                  //  its unread clock; INT64_MAX: no output waits
    size_t bytes;                   //  what it holds
} s_shed_t;

struct _herd_shed_t {
    s_shed_t *list;
    size_t count, capacity;
    size_t next;                    //  the next to drop; 0: not sorted yet
};

herd_shed_t *
herd_shed_new (void)
{
    herd_shed_t *self = (herd_shed_t *) calloc (1, sizeof (herd_shed_t));
    assert (self);
    return self;
}

void
herd_shed_destroy (herd_shed_t **self_p)
{
    assert (self_p);
    herd_shed_t *self = *self_p;
    if (self) {
        free (self->list);
        free (self);
        *self_p = NULL;
    }
}

void
herd_shed_clear (herd_shed_t *self)
{
    self->count = self->next = 0;
}

void
herd_shed_add (herd_shed_t *self, void *owner, int64_t since, size_t bytes)
{
    assert (self->next == 0);
    if (bytes == 0)
        return;
    if (self->count == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 64;
        self->list = (s_shed_t *) realloc (self->list, self->capacity * sizeof (s_shed_t));
        assert (self->list);
    }
    self->list[self->count++] = (s_shed_t){owner, since, bytes};
}

//  Order clients to drop: the one whose output has waited unread the
//  longest first (clients with no output waiting last), then the one
//  holding most.
static int
s_shed_compare (const void *a, const void *b)
{
    const s_shed_t *x = (const s_shed_t *) a, *y = (const s_shed_t *) b;
    if (x->since != y->since)
        return x->since < y->since ? -1 : 1;
    return x->bytes > y->bytes ? -1 : x->bytes < y->bytes;
}

void *
herd_shed_next (herd_shed_t *self, int64_t now, size_t max_output_total, char *why,
                size_t why_size)
{
    if (self->next == 0 && self->count > 1)
        qsort (self->list, self->count, sizeof (s_shed_t), s_shed_compare);
    if (self->next == self->count)
        return NULL;
    const s_shed_t *shed = &self->list[self->next++];
    if (shed->since != INT64_MAX)
        snprintf (why, why_size,
                  "slow reader: %zu bytes of answers unread for %" PRId64
                  " ms, max_output_total is %zu",
                  shed->bytes, now - shed->since, max_output_total);
    else
        snprintf (why, why_size, "%zu bytes of answers held, max_output_total is %zu",
                  shed->bytes, max_output_total);
    return shed->owner;
}

//  -------------------------------------------------------------------------
//  Self test

//  The slowest reader first, the one holding most first among equals,
//  those with no output waiting last; those holding nothing never.
static void
s_test_order (void)
{
    herd_shed_t *shed = herd_shed_new ();
    int owners[5] = {0, 1, 2, 3, 4};
    char why[128];
    HERD_CHECK (herd_shed_next (shed, 0, 64, why, sizeof (why)) == NULL);
    herd_shed_clear (shed);
    herd_shed_add (shed, &owners[0], 100, 10);
    herd_shed_add (shed, &owners[1], INT64_MAX, 1000);
    herd_shed_add (shed, &owners[2], 150, 5);
    herd_shed_add (shed, &owners[3], 100, 20);
    herd_shed_add (shed, &owners[4], 10, 0);           //  holds nothing
    HERD_CHECK (herd_shed_next (shed, 200, 64, why, sizeof (why)) == &owners[3]);
    HERD_CHECK_STR (why, "slow reader: 20 bytes of answers unread for 100 ms, "
                         "max_output_total is 64");
    HERD_CHECK (herd_shed_next (shed, 200, 64, why, sizeof (why)) == &owners[0]);
    HERD_CHECK (herd_shed_next (shed, 200, 64, why, sizeof (why)) == &owners[2]);
    HERD_CHECK_STR (why, "slow reader: 5 bytes of answers unread for 50 ms, "
                         "max_output_total is 64");
    HERD_CHECK (herd_shed_next (shed, 200, 64, why, sizeof (why)) == &owners[1]);
    HERD_CHECK_STR (why, "1000 bytes of answers held, max_output_total is 64");
    HERD_CHECK (herd_shed_next (shed, 200, 64, why, sizeof (why)) == NULL);
    herd_shed_destroy (&shed);
    HERD_CHECK (shed == NULL);
}

//  A cleared list starts again, and grows past its first capacity.
static void
s_test_clear (void)
{
    herd_shed_t *shed = herd_shed_new ();
    int owners[200];
    char why[128];
    herd_shed_add (shed, &owners[0], 5, 1);
    HERD_CHECK (herd_shed_next (shed, 5, 1, why, sizeof (why)) == &owners[0]);
    herd_shed_clear (shed);
    for (int i = 0; i < 200; i++)
        herd_shed_add (shed, &owners[i], 1000 - i, 1);
    for (int i = 199; i >= 0; i--)
        HERD_CHECK (herd_shed_next (shed, 1000, 1, why, sizeof (why)) == &owners[i]);
    HERD_CHECK (herd_shed_next (shed, 1000, 1, why, sizeof (why)) == NULL);
    herd_shed_clear (shed);
    HERD_CHECK (herd_shed_next (shed, 1000, 1, why, sizeof (why)) == NULL);
    herd_shed_destroy (&shed);
    herd_shed_destroy (&shed);
}

void
herd_shed_test (bool verbose)
{
    (void) verbose;
    s_test_order ();
    s_test_clear ();
}
