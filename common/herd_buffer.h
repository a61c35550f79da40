//  herd_buffer.h - a growable byte buffer with a read cursor.
//
//  Bytes are appended at size and consumed from start; making room first
//  moves what is left to the front, then doubles the capacity. The
//  gateway's connections keep their input and output in one each; the
//  benchmark and the floor server use it too. The struct is open, to be
//  embedded and read in place: data + start, herd_buffer_pending bytes.

#ifndef HERD_BUFFER_H_INCLUDED
#define HERD_BUFFER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define HERD_BUFFER_MIN 256         //  first capacity of a buffer

typedef struct {
    char *data;
    size_t size;                    //  bytes held
    size_t start;                   //  bytes consumed from the front
    size_t capacity;
} herd_buffer_t;

//  Make room for extra more bytes after size when there is none: move what
//  is left to the front, then grow. False when out of memory.
bool
    herd_buffer_grow (herd_buffer_t *self, size_t extra);

//  Make room for extra more bytes after size; false when out of memory.
//  Inline: the connections reserve on every answer, and it mostly fits.
static inline bool
herd_buffer_reserve (herd_buffer_t *self, size_t extra)
{
    return self->size + extra <= self->capacity || herd_buffer_grow (self, extra);
}

//  Append bytes; false when out of memory.
static inline bool
herd_buffer_append (herd_buffer_t *self, const char *data, size_t size)
{
    if (!herd_buffer_reserve (self, size))
        return false;
    memcpy (self->data + self->size, data, size);
    self->size += size;
    return true;
}

//  Bytes not yet consumed.
static inline size_t
herd_buffer_pending (const herd_buffer_t *self)
{
    return self->size - self->start;
}

//  Forget the contents; give the memory back when it is bigger than keep
//  bytes (0: always), so an idle owner costs (almost) nothing.
void
    herd_buffer_empty (herd_buffer_t *self, size_t keep);

//  Self test of this class.
void
    herd_buffer_test (bool verbose);

#endif
