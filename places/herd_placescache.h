//  herd_placescache.h - the places worker's answer cache.
//
//  Answers kept by key for a time-to-live, at most a number of answers and
//  a number of body bytes; the oldest answer is also the first to expire,
//  so making room drops expired answers, then the oldest. No I/O and no
//  clock of its own: the caller says what time it is (monotonic
//  microseconds), so the rules are tested without waiting.

#ifndef HERD_PLACESCACHE_H_INCLUDED
#define HERD_PLACESCACHE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _herd_placescache_t herd_placescache_t;

//  A cached answer as get gives it: valid until the next put or destroy.
typedef struct {
    const char *body;           //  the shaped legacy body
    const char *status;         //  OK or ZERO_RESULTS
    int results;
    int64_t stored;             //  when it was put, microseconds
} herd_placescache_answer_t;

//  Create an empty cache that holds at most max_bytes of bodies.
herd_placescache_t *
    herd_placescache_new (size_t max_bytes);

//  Destroy a cache and every answer in it; nulls the caller's pointer.
void
    herd_placescache_destroy (herd_placescache_t **self_p);

//  The answer kept for key if it is still fresh at now: true and *answer
//  filled. An expired answer is dropped and false returned.
bool
    herd_placescache_get (herd_placescache_t *self, const char *key, int64_t now,
                          herd_placescache_answer_t *answer);

//  Keep an answer for ttl_ms from now, replacing any answer for key. First
//  makes room: expired answers go, then the oldest while max answers are
//  kept or the bodies would pass max_bytes. Keeps nothing if ttl_ms <= 0
//  or body alone passes max_bytes.
void
    herd_placescache_put (herd_placescache_t *self, const char *key, const char *body,
                          const char *status, int results, int ttl_ms, int max, int64_t now);

//  How many answers are kept.
size_t
    herd_placescache_size (herd_placescache_t *self);

//  How many body bytes are kept.
size_t
    herd_placescache_bytes (herd_placescache_t *self);

//  Self test of this class.
void
    herd_placescache_test (bool verbose);

#endif
