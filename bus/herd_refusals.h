//  herd_refusals.h - which refusals the bus logs: each sender and reason once.
//
//  A bus refuses messages of another herd or wire version (herd_msg.h,
//  "Envelope"). A misconfigured neighbour sends them every second, a flood
//  by the thousand: the log gets one line per sender and reason, the first
//  time, for up to HERD_REFUSALS_PAIRS pairs; past that, at most one line
//  a minute, whoever sends. The count of refused messages is the caller's.

#ifndef HERD_REFUSALS_H_INCLUDED
#define HERD_REFUSALS_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "../common/herd_msg.h"

#define HERD_REFUSALS_PAIRS 64          //  senders and reasons logged, each once...
#define HERD_REFUSALS_QUIET_MS 60000    //  ...then at most one line a minute for others

typedef struct _herd_refusals_t herd_refusals_t;

herd_refusals_t *
    herd_refusals_new (void);

void
    herd_refusals_destroy (herd_refusals_t **self_p);

//  True when a refusal from this sender for this reason should be logged
//  now (now_ms: monotonic): the pair is new, or all pairs are taken and the
//  quiet minute has passed.
bool
    herd_refusals_first (herd_refusals_t *self, const char *from, const char *reason,
                         int64_t now_ms);

//  Bytes from the wire as text fit for the log: printable ASCII (others
//  '?'), at most 64 bytes, "?" when empty.
void
    herd_refusals_printable (herd_msg_bytes_t bytes, char *out, size_t out_size);

//  Self test of this class.
void
    herd_refusals_test (bool verbose);

#endif
