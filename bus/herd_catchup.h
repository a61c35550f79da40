//  herd_catchup.h - the catch-ups a bus serves (the server side of the
//  Clone pattern; the asking side is herd_peer).
//
//  A neighbour's ICANHAZ asks for every record changed after a sequence
//  number. The answer goes out on the bus's sync ROUTER as KVSYNC chunks
//  (HERD_CATCHUP_CHUNK records or 64 KB, or one longer record) and ends
//  with KTHXBAI, which names our instance and sequence number: what the
//  asker follows from. The chunks go out as the asker reads them: the
//  ROUTER holds at most a few messages per asker (its send high-water
//  mark) and refuses the next, and the catch-up resumes from its store
//  cursor on the next pump. So an asker that reads slowly, or never, costs
//  a bounded queue and a cursor, not a copy of the table; records applied
//  meanwhile are sent too (the cursor meets them), and the KTHXBAI covers
//  them. An asker that stops reading for 10 s, or is gone, is given up.

#ifndef HERD_CATCHUP_H_INCLUDED
#define HERD_CATCHUP_H_INCLUDED

#include <czmq.h>

#include "herd_store.h"
#include "../common/herd_log.h"

#define HERD_CATCHUP_CHUNK      1000    //  records per KVSYNC message
#define HERD_CATCHUP_SERVED     16      //  catch-ups served at once; more asks wait for a retry

//  What the bus lends its catch-ups (kept by the bus, read when needed).
typedef struct {
    zsock_t *sync;              //  the sync ROUTER: mandatory routing, no send time-out
    herd_store_t *store;        //  the table served
    uint64_t instance;          //  the bus's instance, for KTHXBAI
    const char *herd;           //  our herd name, for the envelope (herd_msg.h)
    void (*flush) (void *arg);  //  publishes what was applied, before a KTHXBAI names it
    void *flush_arg;
    herd_log_t *log;
    bool verbose;
} herd_catchup_context_t;

typedef struct _herd_catchup_t herd_catchup_t;

//  No catch-up served yet.
herd_catchup_t *
    herd_catchup_new (const herd_catchup_context_t *context);

//  Drop every catch-up under way; nulls the pointer.
void
    herd_catchup_destroy (herd_catchup_t **self_p);

//  Serve the records changed after since (0: all; UINT64_MAX: none) to the
//  asker at routing: as much as its queue takes now, the rest as it reads.
//  An asker that asks again starts over; when HERD_CATCHUP_SERVED are
//  being served the ask is refused (logged), and asked again later.
void
    herd_catchup_start (herd_catchup_t *self, zframe_t *routing, uint64_t since);

//  Send the waiting catch-ups on (call each loop turn).
void
    herd_catchup_pump (herd_catchup_t *self);

//  Catch-ups waiting on their askers (the loop then turns more often).
size_t
    herd_catchup_serving (herd_catchup_t *self);

//  Self test of this class.
void
    herd_catchup_test (bool verbose);

#endif
