//  herd_peer.h - what a bus knows of one neighbour (the zyre pattern: a
//  peer of its own beside the node).
//
//  Two links: the bus's one SUB, connected to the neighbour's PUB (its
//  updates and heartbeats), and a DEALER of the peer's own to the
//  neighbour's sync ROUTER, for catch-up. libzmq gives up on a connection
//  whose handshake failed (a stranger on the port, a wrong key) and never
//  reconnects it: the peer rebuilds its DEALER, and connects the SUB to the
//  neighbour again, backing off (250 ms doubling to 4 s) while that goes on.
//
//  Catch-up (the Clone pattern): the peer follows the neighbour's instance
//  and sequence number; a new instance, a gap or a heartbeat ahead tells
//  the bus to ask (ICANHAZ), one request at a time, given up and asked
//  again when it goes unanswered. The bus reads and applies what comes; the
//  peer keeps where it stands. The peer never logs a record and never
//  touches the bus's table.

#ifndef HERD_PEER_H_INCLUDED
#define HERD_PEER_H_INCLUDED

#include <czmq.h>

#include "../common/herd_config.h"
#include "../common/herd_log.h"
#include "../common/herd_poller.h"

//  What the bus lends its peers for their lives (kept by the bus, read by
//  each peer when it needs it).
typedef struct {
    zsock_t *sub;               //  the bus's SUB, connected to every neighbour's PUB
    herd_poller_t *poller;      //  the bus's poller: a peer adds its DEALER to it
    zcert_t *cert;              //  this node's certificate (CURVE), or NULL
    const char *herd;           //  our herd name, for the envelope (herd_msg.h)
    int frame_max;              //  largest frame a neighbour may send us
    herd_log_t *log;
    //  Called before the SUB is disconnected from a neighbour: it must read
    //  one message from the SUB, if one waits. A poll of the SUB may hold the
    //  first frame of a neighbour's message already; once its connection is
    //  gone, libzmq asserts on the next frame (!_more, fq.cpp, libzmq #3485).
    //  NULL: nothing to read (the self-test)
    void (*settle) (void *arg);
    void *settle_arg;
} herd_peer_context_t;

typedef struct _herd_peer_t herd_peer_t;

//  Start following a neighbour: its key (CURVE), the SUB connected to its
//  PUB, a DEALER to its sync (if it has one). NULL (logged) when the SUB
//  cannot connect (a malformed endpoint).
herd_peer_t *
    herd_peer_new (const herd_peer_context_t *context, const herd_node_t *node);

//  Destroy the peer and its DEALER (taken off the poller); nulls the
//  pointer. The SUB stays connected: herd_peer_unlink first to drop it.
void
    herd_peer_destroy (herd_peer_t **self_p);

//  The neighbour's node; herd_peer_set_node for the same neighbour in a
//  reloaded config.
const herd_node_t *
    herd_peer_node (herd_peer_t *self);
void
    herd_peer_set_node (herd_peer_t *self, const herd_node_t *node);

//  The DEALER to the neighbour's sync, or NULL (it has none).
zsock_t *
    herd_peer_sync (herd_peer_t *self);

//  Receive a catch-up message from the DEALER (NULL when none waits) and
//  note when we last heard from it.
zmsg_t *
    herd_peer_recv (herd_peer_t *self);

//  "up", "down", or "refused" (the neighbour refused our last catch-up
//  request): the link's row in /readyz, metrics and herd monitor.
const char *
    herd_peer_state (herd_peer_t *self);

//  Take our subscription to the neighbour up or down (LINK): returns true
//  when that changed it. Down also drops any catch-up under way.
bool
    herd_peer_link (herd_peer_t *self, bool up);

//  Drop the SUB's connection to the neighbour if it is linked (the
//  neighbour leaves the config).
void
    herd_peer_unlink (herd_peer_t *self);

//  The SUB's handshake with the neighbour succeeded / it disconnected /
//  libzmq refused it (event: the monitor's, e.g. HANDSHAKE_FAILED_AUTH):
//  after a refused handshake libzmq never reconnects, so the peer does,
//  backing off (herd_peer_tend).
void
    herd_peer_link_up (herd_peer_t *self);
void
    herd_peer_link_down (herd_peer_t *self);
void
    herd_peer_sub_refused (herd_peer_t *self, const char *event);

//  Where the neighbour's stream stands after a message of records records
//  (0: a heartbeat) whose meta frame (herd_msg.h) named instance and seq,
//  the sequence number of its last record: NULL when it follows on, else why to catch
//  up ("first contact", "gap in stream", ...). NULL too while a catch-up is
//  under way: its end says where we are.
const char *
    herd_peer_track (herd_peer_t *self, uint64_t instance, uint64_t seq, size_t records);

//  True while the peer fetches a neighbour's whole table (it asked without
//  knowing the neighbour's instance), and true for a peer whose request
//  waits for that (deferred).
bool
    herd_peer_whole (herd_peer_t *self);
bool
    herd_peer_deferred (herd_peer_t *self);

//  Ask the neighbour for what we miss (ICANHAZ: our view of it, and count
//  and digest of our table), unless a request is out, the link is down or
//  there is no DEALER. busy: another peer fetches a whole table; a peer
//  that would too waits (deferred) and asks after it. A request the DEALER
//  refuses rebuilds the DEALER (within its back-off) and is sent again,
//  or later by herd_peer_tend. why is logged.
void
    herd_peer_request (herd_peer_t *self, bool busy, uint64_t count, uint64_t digest,
                       const char *why);

//  Count a record of the catch-up under way (size bytes).
void
    herd_peer_received (herd_peer_t *self, size_t size);

//  The neighbour refused our request (another herd or wire version): asked
//  again after a back-off, quietly.
void
    herd_peer_refused (herd_peer_t *self);

//  The catch-up ended (KTHXBAI): the stream is followed from meta, its
//  instance and seq (as in herd_peer_track; NULL, a malformed one: from
//  where we were), the link's back-off reset.
//  Logged, and described in detail ("N records, N bytes in N ms").
void
    herd_peer_caught_up (herd_peer_t *self, const uint64_t *meta, char *detail,
                         size_t detail_size);

//  Look after the links, at least once a loop turn: give up on a catch-up
//  unanswered for 5 s (its DEALER rebuilt), connect a refused SUB again.
//  Returns true when a request should be sent (again) now.
bool
    herd_peer_tend (herd_peer_t *self);

//  Self test of this class.
void
    herd_peer_test (bool verbose);

#endif
