//  herd_shed.h - whom the gateway drops when unread answers pass
//  max_output_total.
//
//  The gateway lists the clients that hold answers, then drops them in
//  this class's order until what the node holds fits: the one whose
//  output has waited unread the longest first (clients with no output
//  waiting, only answers held behind a slow request, last), then the one
//  holding most. A client holding nothing is never listed, so a client
//  that reads gets an answer of any size. The list is kept from one
//  shedding to the next, so it allocates only to grow.

#ifndef HERD_SHED_H_INCLUDED
#define HERD_SHED_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _herd_shed_t herd_shed_t;

//  A new, empty list.
herd_shed_t *
    herd_shed_new (void);

//  Destroy a list (not the owners listed).
void
    herd_shed_destroy (herd_shed_t **self_p);

//  Forget the clients of the last shedding.
void
    herd_shed_clear (herd_shed_t *self);

//  List owner, whose output has waited unread since since (ms; INT64_MAX:
//  none waits) and who holds bytes; not listed if it holds nothing.
void
    herd_shed_add (herd_shed_t *self, void *owner, int64_t since, size_t bytes);

//  The next owner to drop, in the order above, with why filled for its
//  log line (now in ms; max_output_total the bound it passes); NULL when
//  the list is done.
void *
    herd_shed_next (herd_shed_t *self, int64_t now, size_t max_output_total, char *why,
                    size_t why_size);

//  Self test of this class.
void
    herd_shed_test (bool verbose);

#endif
