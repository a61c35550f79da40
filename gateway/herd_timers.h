//  herd_timers.h - a time-out list: the gateway's idle and line clocks.
//
//  Every entry on one list has the same time-out, so the list is kept in
//  the order the clocks started: (re)starting a clock moves its entry to
//  the tail, and what has run out is always at the head (czmq zloop's
//  tickets, for one time-out). The list is intrusive: the owner embeds a
//  herd_timer_t per list it may be on, so starting, restarting and
//  stopping a clock never allocate. They happen on every line and read,
//  where czmq's zlistx would allocate a node each time a stopped clock
//  starts again.

#ifndef HERD_TIMERS_H_INCLUDED
#define HERD_TIMERS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _herd_timers_t herd_timers_t;

//  An entry's place on one list, embedded in its owner; zero it before the
//  first use. Read-only to the owner.
typedef struct _herd_timer_t herd_timer_t;
struct _herd_timer_t {
    herd_timer_t *prev, *next;
    void *owner;                    //  given to herd_timers_start
    int64_t since;                  //  when the clock started, ms
    bool linked;                    //  on the list
};

//  A new, empty list whose clocks run out after timeout ms.
herd_timers_t *
    herd_timers_new (int64_t timeout);

//  Destroy a list; its entries' links are left as they are (the owners
//  are the caller's to free).
void
    herd_timers_destroy (herd_timers_t **self_p);

//  The time-out, and a new one (a reload): it applies to the running
//  clocks too.
int64_t
    herd_timers_timeout (herd_timers_t *self);
void
    herd_timers_set_timeout (herd_timers_t *self, int64_t timeout);

//  (Re)start timer's clock at now (ms, never less than the last start's):
//  it moves to the tail.
void
    herd_timers_start (herd_timers_t *self, herd_timer_t *timer, void *owner, int64_t now);

//  Stop timer's clock, if it runs.
void
    herd_timers_stop (herd_timers_t *self, herd_timer_t *timer);

//  The owner of the oldest clock if it has run out by now, else NULL. It
//  stays on the list: stop or restart it (or its owner goes, stopping it)
//  before asking again.
void *
    herd_timers_expired (herd_timers_t *self, int64_t now);

//  When the oldest clock runs out, ms; INT64_MAX if none runs.
int64_t
    herd_timers_deadline (herd_timers_t *self);

//  How many clocks run.
size_t
    herd_timers_size (herd_timers_t *self);

//  Self test of this class.
void
    herd_timers_test (bool verbose);

#endif
