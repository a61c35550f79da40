//  herd_uplink.h - the gateway's channel to its bus: updates in batches,
//  in order, never dropped, and the answers that wait for them to be stored.
//
//  The AT lines of a loop turn go to the bus as one UPDATE message with the
//  batch's number (herd_msg.h); the bus answers STORED once they are in its
//  journal. When the bus's queue is full (busy, stopped, restarting) a
//  message waits in a backlog, behind anything already there, so the bus
//  sees every message in order; the backlog is bounded by the clients (an
//  IAMAT or a WHATSAT holds a slot until the bus answers, and a connection
//  stops reading at max_pending). An IAMAT's answer waits (herd_uplink_wait)
//  until its batch is stored, or ack_timeout_ms.
//
//  Kept updates (herd_uplink_keep, for herd/fsync = everysec with a data
//  directory): the gateway also writes the turn's updates to a journal of
//  its own (herd_journal.h, in DATA/gateway), and an update is stored once
//  that write succeeds, at the end of the turn (herd_uplink_commit): its
//  answer goes out without the round trip to the bus and back. Every batch
//  is kept in memory too until the bus says STORED (herd_uplink_stored); a
//  batch the bus never got (it restarted) or has not stored within a second
//  is sent again, under a new number (newer wins: a repeat changes
//  nothing). At start the journal's records go to the bus again the same
//  way, so whatever the gateway acknowledged reaches the bus even when the
//  gateway dies between its write and the bus's. The journal is rewritten
//  to the batches not yet confirmed (a compaction) once it holds
//  HERD_UPLINK_KEEP_RECORDS. Answers wait for the bus again, as without a
//  journal, while its writes fail or more than HERD_UPLINK_KEEP_MAX bytes
//  wait for the bus's confirmation (a bus stopped for long); and the
//  updates of a turn that follows one of more than HERD_UPLINK_KEEP_TURN
//  updates are not journaled by the gateway at all, since under such load
//  the bus's group commit costs less per update than a second journal.

#ifndef HERD_UPLINK_H_INCLUDED
#define HERD_UPLINK_H_INCLUDED

#include <czmq.h>

#include "../common/herd_log.h"
#include "../common/herd_msg.h"

//  Bytes of kept updates the bus has not confirmed past which answers wait
//  for the bus again.
#define HERD_UPLINK_KEEP_MAX (64u << 20)

//  Records in the gateway's journal past which it is compacted.
#define HERD_UPLINK_KEEP_RECORDS 200000

//  Updates in a loop turn past which the next turn's wait for the bus
//  instead: its group commit already amortises the round trip.
#define HERD_UPLINK_KEEP_TURN 32

//  Kept updates that come within HERD_UPLINK_HOLD_GAP_US (usec) of a send
//  to the bus wait until HERD_UPLINK_HOLD_US after it, to go with the next
//  ones (herd_uplink_send_held).
#define HERD_UPLINK_HOLD_US 1000
#define HERD_UPLINK_HOLD_GAP_US 250

typedef struct _herd_uplink_t herd_uplink_t;

//  An answer waiting for its update to be stored: the gateway's names for
//  its connection and slot.
typedef struct {
    uint64_t serial;                //  the connection
    uint64_t seq;                   //  its slot
    int32_t fd;
} herd_uplink_ref_t;

//  A channel on bus (a DEALER connected to the bus, not owned).
herd_uplink_t *
    herd_uplink_new (zsock_t *bus);

//  Send what is queued, as far as the bus takes it now; drop the rest.
void
    herd_uplink_destroy (herd_uplink_t **self_p);

//  Send a message (herd_msg.h) on sock without blocking; false when its
//  queue is full.
bool
    herd_uplink_send_now (zsock_t *sock, const herd_msg_t *msg);

//  Send a message to the bus, in order after what waits: never blocks,
//  never drops.
void
    herd_uplink_send (herd_uplink_t *self, const herd_msg_t *msg);

//  Queue an AT line for the bus, sent with the rest of the turn's (a line
//  too long for a batch goes alone). Returns the number of its batch.
uint64_t
    herd_uplink_queue (herd_uplink_t *self, const char *at, size_t size);

//  Send the updates queued, as one UPDATE; before anything else goes to
//  the bus (so a client's WHATSAT follows its IAMAT).
void
    herd_uplink_send_updates (herd_uplink_t *self);

//  Send what the bus could not take before, as far as it takes it now.
void
    herd_uplink_flush (herd_uplink_t *self);

//  Messages waiting for the bus to take them.
size_t
    herd_uplink_backlog (herd_uplink_t *self);

//  True if a send to the bus was tried since the last call. A send can
//  read libzmq's commands and so take the bus socket's ZMQ_FD edge: the
//  caller asks ZMQ_EVENTS before it sleeps (herd_poller.h says more).
bool
    herd_uplink_sent (herd_uplink_t *self);

//  An answer waits, since now (ms), for batch to be stored.
void
    herd_uplink_wait (herd_uplink_t *self, herd_uplink_ref_t ref, uint64_t batch, int64_t now);

//  The bus stored batches first..last: take the oldest answer waiting for
//  one of them into ref; true if there was one. *lost: its batch came
//  before first, so the bus never got its update.
bool
    herd_uplink_next_stored (herd_uplink_t *self, uint64_t first, uint64_t last,
                             herd_uplink_ref_t *ref, bool *lost);

//  Take the oldest answer that waited timeout ms by now into ref; true if
//  there was one.
bool
    herd_uplink_next_expired (herd_uplink_t *self, int64_t now, int64_t timeout,
                              herd_uplink_ref_t *ref);

//  When the oldest answer waiting started to (ms); INT64_MAX if none.
int64_t
    herd_uplink_oldest (herd_uplink_t *self);

//  Answers waiting to be stored.
size_t
    herd_uplink_waiting (herd_uplink_t *self);

//  The gateway's journal, DATA/gateway/journal for data (a node's data
//  directory, or NULL: none): send what it holds to the bus again now,
//  kept until the bus confirms it; with answer (fsync = everysec), keep
//  updates in it from now on, else (always) remove it once the bus
//  confirmed all it held. log: for the journal's troubles. Returns 1 when
//  updates are kept, 0 when not (no data directory; always), or -1 with
//  error (at least 256 bytes) set when the journal cannot be used.
int
    herd_uplink_keep (herd_uplink_t *self, const char *data, bool answer, herd_log_t *log,
                      char *error);

//  End of the loop turn, at now (ms): write the turn's updates to the
//  journal; send again batches the bus has not confirmed within their
//  time; compact the journal when it is due. Returns the last batch whose
//  answers may go now (herd_uplink_next_stored with first 0): every update
//  queued so far is written, including those of the batch being filled
//  (herd_uplink_send_updates sends it after the answers). 0 when nothing is
//  newly kept (no journal, or answers wait for the bus).
uint64_t
    herd_uplink_commit (herd_uplink_t *self, int64_t now);

//  The bus stored batches first..last: the kept copies of those are
//  dropped, and kept batches before first (the bus never got them) go
//  again. Call before herd_uplink_next_stored.
void
    herd_uplink_stored (herd_uplink_t *self, uint64_t first, uint64_t last);

//  Send the updates queued at the end of a loop turn, now (usec,
//  monotonic). Kept ones (answered already) that come fast, the first of
//  them within HERD_UPLINK_HOLD_GAP_US of the last send, wait until
//  HERD_UPLINK_HOLD_US after it, to go with the next: at one client's pace
//  the bus then wakes once for many, and each wake costs it about 25 us of
//  a core it may share with the gateway. Updates that come slower go at
//  once, so a trickle is not delayed. A WHATSAT's look-up is preceded by
//  herd_uplink_send_updates, so it finds them.
void
    herd_uplink_send_held (herd_uplink_t *self, int64_t now);

//  How long (usec) from now the updates held by herd_uplink_send_held may
//  wait: the loop should sleep no longer. -1 when none are held.
int64_t
    herd_uplink_held_for (herd_uplink_t *self, int64_t now);

//  True when updates were queued to be kept since the last commit: the
//  loop should not sleep before it commits them.
bool
    herd_uplink_uncommitted (herd_uplink_t *self);

//  Bytes of kept updates sent and not yet confirmed by the bus.
size_t
    herd_uplink_unconfirmed (herd_uplink_t *self);

//  Self test of this class.
void
    herd_uplink_test (bool verbose);

#endif
