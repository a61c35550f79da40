//  herd_buffer.c - a growable byte buffer with a read cursor.
//
//  See herd_buffer.h.

#include "herd_buffer.h"
#include "herd_check.h"

#include <stdlib.h>
#include <string.h>

bool
herd_buffer_grow (herd_buffer_t *self, size_t extra)
{
    if (self->start > 0 && self->size + extra > self->capacity) {
        memmove (self->data, self->data + self->start, self->size - self->start);
        self->size -= self->start;
        self->start = 0;
    }
    if (self->size + extra <= self->capacity)
        return true;
    size_t capacity = self->capacity ? self->capacity : HERD_BUFFER_MIN;
    while (capacity < self->size + extra)
        capacity *= 2;
    char *data = (char *) realloc (self->data, capacity);
    if (!data)
        return false;
    self->data = data;
    self->capacity = capacity;
    return true;
}

void
herd_buffer_empty (herd_buffer_t *self, size_t keep)
{
    self->start = self->size = 0;
    if (self->capacity > keep) {
        free (self->data);
        self->data = NULL;
        self->capacity = 0;
    }
}

void
herd_buffer_test (bool verbose)
{
    (void) verbose;
    herd_buffer_t buffer = {0};
    HERD_CHECK (herd_buffer_append (&buffer, "hello\nworld", 11));
    HERD_CHECK_INT (buffer.capacity, HERD_BUFFER_MIN);
    buffer.start = 6;                               //  "hello\n" consumed
    HERD_CHECK_INT (herd_buffer_pending (&buffer), 5);
    //  Room that fits after the data: nothing moves
    HERD_CHECK (herd_buffer_reserve (&buffer, HERD_BUFFER_MIN - 11));
    HERD_CHECK_INT (buffer.start, 6);
    //  Room that does not: what is left moves to the front first
    HERD_CHECK (herd_buffer_reserve (&buffer, HERD_BUFFER_MIN - 5));
    HERD_CHECK_INT (buffer.start, 0);
    HERD_CHECK_INT (buffer.capacity, HERD_BUFFER_MIN);
    HERD_CHECK (memcmp (buffer.data, "world", 5) == 0);
    //  Then the capacity doubles until it fits
    HERD_CHECK (herd_buffer_reserve (&buffer, 3 * HERD_BUFFER_MIN));
    HERD_CHECK_INT (buffer.capacity, 4 * HERD_BUFFER_MIN);
    HERD_CHECK (memcmp (buffer.data, "world", 5) == 0);
    //  Emptied: memory kept up to keep bytes, else given back
    herd_buffer_empty (&buffer, 4 * HERD_BUFFER_MIN);
    HERD_CHECK (buffer.data && herd_buffer_pending (&buffer) == 0);
    herd_buffer_empty (&buffer, 0);
    HERD_CHECK (!buffer.data && buffer.capacity == 0);
}
