//  herd_turns.h - whose turn it is to send a WHATSAT: the gateway's fair
//  queue.
//
//  A WHATSAT costs a look-up on the bus and a search on places, so at most
//  max_asked of all clients are in flight at once. Past that, or while any
//  client waits, a client's WHATSAT waits its turn: the client joins the
//  queue, and its connection stops reading (herd_conn's DEFER). Turns go
//  oldest first, one WHATSAT each; a client with more joins the queue
//  again behind the others, so clients that pipeline thousands cannot put
//  them all ahead of a client that asks one. The queue is intrusive, like
//  herd_timers.h: the owner embeds a herd_turn_t, so joining and leaving
//  never allocate, and a client that goes leaves its place at once.

#ifndef HERD_TURNS_H_INCLUDED
#define HERD_TURNS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct _herd_turns_t herd_turns_t;

//  An owner's place in the queue, embedded in it; zero it before the first
//  use. Read-only to the owner.
typedef struct _herd_turn_t herd_turn_t;
struct _herd_turn_t {
    herd_turn_t *prev, *next;
    void *owner;                    //  given to herd_turns_take
    bool waiting;                   //  in the queue for its turn
    bool granted;                   //  given its turn: its next WHATSAT goes out of turn
};

//  A new, empty queue that lets max_asked WHATSATs be in flight at once.
herd_turns_t *
    herd_turns_new (size_t max_asked);

//  Destroy a queue; its entries' links are left as they are (the owners
//  are the caller's to free).
void
    herd_turns_destroy (herd_turns_t **self_p);

//  True if line (without '\n') takes turns: a WHATSAT, valid or not (its
//  first field). Other lines are handled as they come.
bool
    herd_turns_wanted (const char *line, size_t size);

//  The owner of turn has a WHATSAT: true if it may send it now (it was
//  given its turn, or fewer than max_asked are in flight and none waits);
//  else it joins the queue's tail, to wait for herd_turns_next to name it.
bool
    herd_turns_take (herd_turns_t *self, herd_turn_t *turn, void *owner);

//  A WHATSAT that herd_turns_take let go was sent: one more in flight.
void
    herd_turns_sent (herd_turns_t *self);

//  A WHATSAT counted by herd_turns_sent is answered or gone: one fewer.
void
    herd_turns_done (herd_turns_t *self);

//  While fewer than max_asked are in flight: the owner whose turn it is,
//  taken off the queue and granted (its next herd_turns_take is true);
//  else, or when none waits, NULL.
void *
    herd_turns_next (herd_turns_t *self);

//  Turn's owner goes: it leaves the queue, if it waits.
void
    herd_turns_leave (herd_turns_t *self, herd_turn_t *turn);

//  How many owners wait in the queue.
size_t
    herd_turns_waiting (herd_turns_t *self);

//  How many WHATSATs are in flight.
size_t
    herd_turns_in_flight (herd_turns_t *self);

//  Self test of this class.
void
    herd_turns_test (bool verbose);

#endif
