//  herd_bus.c - the bus actor: location table, flooding, catch-up, journal.

#include "herd_bus.h"
#include "herd_catchup.h"
#include "herd_durable.h"
#include "herd_peer.h"
#include "herd_refusals.h"
#include "herd_store.h"
#include "../common/herd_actor.h"
#include "../common/herd_alive.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"
#include "../common/herd_poller.h"
#include "../common/herd_record.h"
#include "../common/herd_report.h"

#define HERD_BUS_HWM        200000  //  replies queued to the gateway
#define HERD_BUS_PUB_HWM    1000    //  messages (<= 64 KB each) queued per link before PUB drops
#define HERD_BUS_BATCH      1000    //  messages handled per socket per turn
#define HERD_BUS_OUTBOX     (64 * 1024) //  bytes of applied records published at once
#define HERD_BUS_HEARTBEAT  1000    //  ms between heartbeats on the PUB
#define HERD_BUS_SYNC_HWM   4       //  KVSYNCs queued per requester (each <= 1000 records)
#define HERD_BUS_PUMP_MS    5       //  ms between tries to send a waiting catch-up on
#define HERD_BUS_HANDSHAKE  3000    //  ms a connection may take for its ZMTP handshake
#define HERD_BUS_CONTROL_MAX 4096   //  largest frame in on the PUB (subscriptions) and sync
#define HERD_BUS_PREFIX_MAX 4096    //  an AT line's bytes beyond the client's line (name, diff)
#define HERD_BUS_STORE_RETRY 100    //  ms between tries to store when the journal fails

typedef struct {
    zsock_t *pipe;                  //  actor command pipe
    zsock_t *router;                //  gateway channel
    zsock_t *pub;                   //  updates out to neighbours
    zsock_t *sub;                   //  updates in from neighbours
    zsock_t *sync;                  //  catch-up and control ROUTER, or NULL
    zactor_t *monitor;              //  events of sub: bus links up/down
    zactor_t *server_monitor;       //  CURVE: refused handshakes on pub
    zactor_t *sync_monitor;         //  CURVE: refused handshakes on sync
    zactor_t *auth;                 //  CURVE: zauth with the herd's public keys
    zcert_t *cert;                  //  CURVE: this node's certificate
    herd_poller_t *poller;          //  every socket the loop reads (herd_poller.h)
    herd_store_t *store;            //  the table: records, sequence numbers, digest
    uint64_t instance;              //  random at each start
    int64_t started_mono;           //  when the bus started: monotonic usec, and
    int64_t started_wall;           //  ... wall clock usec (for GET's applied time)
    int64_t turn_usec;              //  this loop turn's applied time, 0 = not read yet
    herd_peer_t **peers;            //  one per neighbour (herd_peer.h)
    size_t peer_count;
    herd_peer_context_t peer_context;   //  what the peers borrow: SUB, poller, key, ...
    herd_catchup_t *catchup;        //  catch-ups served (herd_catchup.h)
    herd_catchup_context_t catchup_context;     //  ...and what they borrow
    herd_durable_t *durable;        //  journal and STORED acknowledgements (herd_durable.h)
    herd_report_t *report;          //  events and counters to the node's monitor, or NULL
    uint64_t catchups;              //  catch-ups completed
    const herd_config_t *config;
    const herd_node_t *node;
    herd_log_t *log;
    int64_t next_heartbeat;
    char *outbox;                   //  records applied, not yet published, '\n'-separated
    size_t outbox_size;
    uint64_t outbox_seq;            //  ...the last one's sequence number
    bool loading;                   //  replaying the journal: no publish
    bool verbose;
    bool terminated;
    uint64_t applied;               //  counters, logged at stop
    uint64_t stale;
    uint64_t dropped;
    uint64_t published;             //  records published
    uint64_t messages;              //  ...in so many messages
    uint64_t refused;               //  messages of another herd or wire version refused
    herd_refusals_t *refusals;      //  which of them were logged
    uint64_t unanswered;            //  answers on sync dropped: requester not reading, or gone
} s_self_t;

//  Monotonic milliseconds.
static int64_t
s_now_ms (void)
{
    return zclock_mono ();
}

//  The peer for a neighbour name, or NULL.
static herd_peer_t *
s_self_peer_by_name (s_self_t *self, const char *name, size_t size)
{
    for (size_t i = 0; i < self->peer_count; i++) {
        const char *peer_name = herd_peer_node (self->peers[i])->name;
        if (strlen (peer_name) == size && memcmp (peer_name, name, size) == 0)
            return self->peers[i];
    }
    return NULL;
}

//  The peer whose bus endpoint is endpoint, or NULL.
static herd_peer_t *
s_self_peer_by_endpoint (s_self_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->peer_count; i++)
        if (streq (herd_peer_node (self->peers[i])->bus, endpoint))
            return self->peers[i];
    return NULL;
}

//  Count and log (once per sender and reason) a message refused: of another
//  herd or wire version. what names the message, from its sender.
static void
s_self_refuse (s_self_t *self, const char *what, const char *from, const char *reason)
{
    self->refused++;
    if (herd_refusals_first (self->refusals, from, reason, s_now_ms ()))
        herd_log_warning (self->log, "bus", "refused %s from '%s': %s (logged once)", what, from,
                          reason);
}

//  Answer a request on the sync socket (herd_msg_answer: a requester that
//  reads its answers gets each). One a requester does not read, or that
//  has gone, is dropped: it cannot hold the bus, nor fill its memory. The
//  first drop is logged, then every thousandth.
static void
s_self_answer (s_self_t *self, const herd_msg_t *out)
{
    if (herd_msg_answer (out, self->sync) == 0)
        return;
    const char *why = zmq_errno () == EAGAIN ? "the requester does not read its answers"
                                             : "the requester is gone";
    if (self->unanswered++ % 1000 == 0)
        herd_log_warning (self->log, "bus",
                          "dropped an answer on the sync socket: %s (%" PRIu64 " so far)", why,
                          self->unanswered);
}

//  CURVE server side of a socket (PUB, sync ROUTER): our key, ZAP checks.
static void
s_self_secure_server (s_self_t *self, zsock_t *sock)
{
    if (!self->cert)
        return;
    zcert_apply (self->cert, sock);
    zsock_set_curve_server (sock, 1);
    zsock_set_zap_domain (sock, "herd");
}

//  Ask a neighbour for what we miss of its table (herd_peer_request), one
//  whole table at a time.
static void
s_self_request_sync (s_self_t *self, herd_peer_t *peer, const char *why)
{
    bool busy = false;
    for (size_t i = 0; i < self->peer_count; i++)
        busy = busy || (self->peers[i] != peer && herd_peer_whole (self->peers[i]));
    herd_peer_request (peer, busy, herd_store_size (self->store),
                       herd_store_digest (self->store), why);
}

//  Publish every record applied since the last publish as one message:
//  ["U", envelope, records, sender, meta], meta naming seq, the sequence
//  number of the last of them (herd_msg.h). One message per loop turn instead of one per
//  record: the per-message cost (allocation, queueing, a wake-up at every
//  neighbour) was most of a bus's time under load.
static void
s_self_publish_records (s_self_t *self, const char *records, size_t size, uint64_t seq)
{
    //  PUB never blocks: at its high-water mark it drops, and the
    //  neighbour's catch-up brings what was dropped
    herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_U, .herd = self->config->name,
                                 .records = {records, size},
                                 .sender = herd_msg_str (self->node->name),
                                 .instance = self->instance, .seq = seq},
                   self->pub, 0);
    self->messages++;
}

static void
s_self_publish (s_self_t *self)
{
    if (self->outbox_size == 0)
        return;
    s_self_publish_records (self, self->outbox, self->outbox_size, self->outbox_seq);
    self->outbox_size = 0;
}

//  Publish what waits, for herd_catchup before a KTHXBAI.
static void
s_self_flush (void *self)
{
    s_self_publish ((s_self_t *) self);
}

//  Queue an applied record (seq its sequence number) for the next publish,
//  publishing first what waits if it would not fit with it: a message's
//  sequence number is its last record's. A record longer than the outbox
//  (max_line allows 32 MiB) goes out at once, alone.
static void
s_self_queue (s_self_t *self, const char *line, size_t size, uint64_t seq)
{
    self->published++;
    if (self->outbox_size + 1 + size > HERD_BUS_OUTBOX)
        s_self_publish (self);
    if (size > HERD_BUS_OUTBOX) {
        s_self_publish_records (self, line, size, seq);
        return;
    }
    if (!self->outbox) {
        self->outbox = (char *) malloc (HERD_BUS_OUTBOX + 1);
        assert (self->outbox);
    }
    if (self->outbox_size > 0)
        self->outbox[self->outbox_size++] = '\n';
    memcpy (self->outbox + self->outbox_size, line, size);
    self->outbox_size += size;
    self->outbox_seq = seq;
}

//  Count and log a malformed record.
static void
s_self_drop (s_self_t *self, const char *line, size_t size, const char *from)
{
    self->dropped++;
    herd_log_data (self->log, "bus", from, line, size);
    herd_log_warning (self->log, "bus", "dropped a malformed update from %s", from);
}

//  The time a record applied now is stamped with (herd_store's clock), for
//  GET: wall-clock microseconds, as the wall clock read at start plus the
//  monotonic time since; 0 while the journal loads. Read once per loop
//  turn, when the turn's first record is applied (a clock read per record
//  was 3 % of a node's samples at 50x32): a turn's records were all
//  received by then.
static int64_t
s_self_clock (void *arg)
{
    s_self_t *self = (s_self_t *) arg;
    if (self->loading)
        return 0;
    if (self->turn_usec == 0)
        self->turn_usec = self->started_wall + zclock_usecs () - self->started_mono;
    return self->turn_usec;
}

//  Apply an AT line if it is newer than the stored one; journal and publish
//  what was applied. from names where it came from, for the log; trusted
//  when it is our own gateway, which made the line from fields it had
//  validated (herd_proto_parse), so it is not validated again. Returns true
//  if applied.
static bool
s_self_apply (s_self_t *self, const char *line, size_t size, const char *from, bool trusted)
{
    herd_store_record_t record;
    herd_store_result_t result = herd_store_apply (self->store, line, size, trusted, &record);
    if (result == HERD_STORE_MALFORMED) {
        s_self_drop (self, line, size, from);
        return false;
    }
    if (result == HERD_STORE_STALE) {
        self->stale++;
        return false;
    }
    if (self->loading)
        return true;
    self->applied++;
    herd_durable_append (self->durable, line, size, record.hash);
    s_self_queue (self, line, size, record.seq);
    if (self->verbose)
        zsys_debug ("bus %s: applied from %s: %.*s", self->node->name, from, (int) size, line);
    return true;
}

//  Apply every record of a frame: one AT line, or several separated by
//  '\n'. Returns how many records the frame held.
static size_t
s_self_apply_all (s_self_t *self, const char *data, size_t size, const char *from,
                  bool trusted)
{
    size_t count = 0;
    const char *end = data + size;
    while (true) {
        const char *newline = (const char *) memchr (data, '\n', (size_t) (end - data));
        const char *stop = newline ? newline : end;
        s_self_apply (self, data, (size_t) (stop - data), from, trusted);
        count++;
        if (!newline)
            break;
        data = newline + 1;
    }
    return count;
}

//  Replay one journal record into the table (no journal, no publish).
static void
s_self_load_record (const char *line, size_t size, void *arg)
{
    s_self_apply ((s_self_t *) arg, line, size, "journal", false);
}

//  -------------------------------------------------------------------------
//  Handlers

//  Handle one message from the gateway: UPDATE or LOOKUP.
static bool
s_self_handle_router (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    if (!msg)
        return false;
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX];
    if (herd_msg_decode (&in, msg, HERD_MSG_TO_BUS, NULL, reason, sizeof (reason)) == -1)
        herd_log_warning (self->log, "bus", "dropped a malformed gateway message (%s)", reason);
    else
    if (in.id == HERD_MSG_ID_UPDATE) {
        s_self_apply_all (self, in.records.data, in.records.size, "gateway", true);
        zframe_t *routing = in.routing;
        zmsg_remove (msg, routing);
        herd_durable_hold (self->durable, &routing, in.batch);
    }
    else {
        assert (in.id == HERD_MSG_ID_LOOKUP);
        herd_store_record_t record;
        bool found = herd_store_lookup (self->store, in.client.data, in.client.size, &record);
        herd_msg_send (&(herd_msg_t){.id = found ? HERD_MSG_ID_FOUND : HERD_MSG_ID_NONE,
                                     .routing = in.routing, .reqid = in.reqid,
                                     .line = {found ? record.line : NULL, found ? record.size : 0}},
                       self->router, ZMQ_DONTWAIT);
    }
    zmsg_destroy (&msg);
    return true;
}

//  Track a neighbour's sequence number from its stream (records: how many an
//  update carried; 0 for a heartbeat); catch up on a gap.
static void
s_self_track (s_self_t *self, herd_peer_t *peer, const herd_msg_t *in, size_t records)
{
    const char *why = herd_peer_track (peer, in->instance, in->seq, records);
    if (why)
        s_self_request_sync (self, peer, why);
}

//  Handle one message from a neighbour's PUB; anything malformed is dropped.
static bool
s_self_handle_sub (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->sub);
    if (!msg)
        return false;
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX];
    int rc = herd_msg_decode (&in, msg, HERD_MSG_FLOOD, self->config->name, reason,
                              sizeof (reason));
    //  Another herd's or wire version's message is never read further
    if (rc == -1 && in.refused) {
        char from[80];
        herd_refusals_printable (in.sender, from, sizeof (from));
        s_self_refuse (self, zframe_streq (zmsg_first (msg), HERD_MSG_TOPIC_UPDATE) ? "update"
                                                                                    : "heartbeat",
                       from, reason);
        zmsg_destroy (&msg);
        return true;
    }
    herd_peer_t *peer = rc == 0 ? s_self_peer_by_name (self, in.sender.data, in.sender.size) : NULL;
    if (!peer) {
        self->dropped++;
        herd_log_warning (self->log, "bus", "dropped a malformed bus message of %zu frames",
                          zmsg_size (msg));
    }
    else {
        size_t records = in.id == HERD_MSG_ID_U
                             ? s_self_apply_all (self, in.records.data, in.records.size,
                                                 herd_peer_node (peer)->name, false)
                             : 0;
        s_self_track (self, peer, &in, records);
    }
    zmsg_destroy (&msg);
    return true;
}

//  Read the message a poll of the SUB may hold the first frame of, before a
//  neighbour's connection goes (herd_peer_context_t.settle). One read is
//  enough: only a poll reads ahead, and a whole message leaves nothing half
//  read.
static void
s_self_settle_sub (void *arg)
{
    s_self_handle_sub ((s_self_t *) arg);
}

//  Handle ICANHAZ: send what the requester misses.
static void
s_self_handle_icanhaz (s_self_t *self, const herd_msg_t *in)
{
    if (in->instance == self->instance && in->seq <= herd_store_seq (self->store))
        herd_catchup_start (self->catchup, in->routing, in->seq);
    else
    if (in->count == herd_store_size (self->store) && in->digest == herd_store_digest (self->store))
        herd_catchup_start (self->catchup, in->routing, UINT64_MAX);    //  same table: nothing
    else
        herd_catchup_start (self->catchup, in->routing, 0);             //  everything
}

//  Handle LINK peer up|down: take our subscription to a neighbour down or up.
static void
s_self_handle_link (s_self_t *self, const herd_msg_t *in)
{
    char name[HERD_MSG_NAME_MAX + 1];
    snprintf (name, sizeof (name), "%.*s", (int) in->peer.size, (const char *) in->peer.data);
    herd_peer_t *peer = in->peer.size <= HERD_MSG_NAME_MAX
                            ? s_self_peer_by_name (self, in->peer.data, in->peer.size)
                            : NULL;
    bool up = herd_msg_bytes_eq (in->state, "up"), down = herd_msg_bytes_eq (in->state, "down");
    const char *error = NULL;
    if (!peer)
        error = "no such neighbour";
    else
    if (!up && !down)
        error = "state must be up or down";
    else
    if (down && herd_peer_link (peer, false)) {
        herd_report_event (self->report, "link down", name, "by command");
        herd_log_warning (self->log, "bus", "link to %s taken down by command", name);
    }
    else
    if (up && herd_peer_link (peer, true))
        herd_log_printf (self->log, "bus", "link to %s brought up by command", name);
    s_self_answer (self, &(herd_msg_t){.id = error ? HERD_MSG_ID_ERROR : HERD_MSG_ID_OK,
                                       .routing = in->routing, .reason = herd_msg_str (error)});
}

//  Answer GET client: its record, or NONE.
static void
s_self_handle_get (s_self_t *self, const herd_msg_t *in)
{
    herd_store_record_t record;
    if (herd_store_lookup (self->store, in->client.data, in->client.size, &record))
        s_self_answer (self, &(herd_msg_t){.id = HERD_MSG_ID_RECORD, .routing = in->routing,
                                           .line = {record.line, record.size},
                                           .applied = (uint64_t) record.applied_usec,
                                           .seq = record.seq});
    else
        s_self_answer (self, &(herd_msg_t){.id = HERD_MSG_ID_GET_NONE, .routing = in->routing});
}

//  Refuse a sync request of another herd or wire version: count, log once,
//  tell the requester why.
static void
s_self_refuse_request (s_self_t *self, zmsg_t *msg, const herd_msg_t *in, const char *reason)
{
    zframe_t *command = (zmsg_first (msg), zmsg_next (msg));
    char command_text[72], what[80], from[80];
    herd_refusals_printable ((herd_msg_bytes_t){zframe_data (command), zframe_size (command)}, command_text,
                 sizeof (command_text));
    snprintf (what, sizeof (what), "%s request", command_text);
    const char *address = zframe_meta (command, "Peer-Address");
    snprintf (from, sizeof (from), "%s", address ? address : "?");
    s_self_refuse (self, what, from, reason);
    s_self_answer (self, &(herd_msg_t){.id = HERD_MSG_ID_REFUSED, .routing = in->routing,
                                       .reason = herd_msg_str (reason)});
}

//  Handle one message on the sync ROUTER: catch-up requests and control.
static bool
s_self_handle_sync (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->sync);
    if (!msg)
        return false;
    if (self->verbose)
        zsys_debug ("bus %s: sync message of %zu frames", self->node->name, zmsg_size (msg));
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX];
    int rc = herd_msg_decode (&in, msg, HERD_MSG_TO_SYNC, self->config->name, reason,
                              sizeof (reason));
    //  Nothing is served or obeyed for another herd or wire version: the
    //  requester is told why
    if (rc == -1 && in.refused)
        s_self_refuse_request (self, msg, &in, reason);
    else
    if (rc == -1)
        herd_log_warning (self->log, "bus", "dropped a malformed sync message (%s)", reason);
    else
    if (in.id == HERD_MSG_ID_ICANHAZ)
        s_self_handle_icanhaz (self, &in);
    else
    if (in.id == HERD_MSG_ID_DIGEST)
        s_self_answer (self, &(herd_msg_t){.id = HERD_MSG_ID_DIGEST_REPLY, .routing = in.routing,
                                           .name = herd_msg_str (self->node->name),
                                           .count = herd_store_size (self->store),
                                           .digest = herd_store_digest (self->store),
                                           .applied = self->applied, .stale = self->stale});
    else
    if (in.id == HERD_MSG_ID_LINK)
        s_self_handle_link (self, &in);
    else
        s_self_handle_get (self, &in);
    zmsg_destroy (&msg);
    return true;
}

//  A neighbour's catch-up is over (KTHXBAI; in NULL: a malformed one, which
//  keeps where we were): what others deferred may go.
static void
s_self_caught_up (s_self_t *self, herd_peer_t *peer, const herd_msg_t *in)
{
    char detail[96];
    herd_peer_caught_up (peer, in->id == HERD_MSG_ID_KTHXBAI ? (uint64_t[]){in->instance, in->seq}
                                                            : NULL,
                         detail, sizeof (detail));
    herd_report_event (self->report, "caught up", herd_peer_node (peer)->name,
                        detail);
    self->catchups++;
    for (size_t i = 0; i < self->peer_count; i++)
        if (herd_peer_deferred (self->peers[i]))
            s_self_request_sync (self, self->peers[i], "after another catch-up");
}

//  Handle catch-up records or the end of a catch-up from a neighbour.
static bool
s_self_handle_peer_sync (s_self_t *self, herd_peer_t *peer)
{
    zmsg_t *msg = herd_peer_recv (peer);
    if (!msg)
        return false;
    const char *name = herd_peer_node (peer)->name;
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX] = "";
    int rc = herd_msg_decode (&in, msg, HERD_MSG_CATCHUP, self->config->name, reason,
                              sizeof (reason));
    if (rc == 0 && in.id == HERD_MSG_ID_REFUSED) {
        herd_refusals_printable (in.reason, reason, sizeof (reason));
        if (herd_refusals_first (self->refusals, name, reason, s_now_ms ()))
            herd_log_warning (self->log, "bus", "catch-up refused by %s: %s (logged once)", name,
                              reason);
        herd_peer_refused (peer);
    }
    else
    if (rc == -1 && in.refused) {
        s_self_refuse (self, "catch-up", name, reason);
        herd_peer_refused (peer);
    }
    else
    if (rc == 0 && in.id == HERD_MSG_ID_KVSYNC) {
        herd_msg_bytes_t line;
        while (herd_msg_next_line (&in, &line)) {
            s_self_apply (self, line.data, line.size, name, false);
            herd_peer_received (peer, line.size);
        }
    }
    else
    if (in.id == HERD_MSG_ID_KTHXBAI)       //  a malformed one keeps where we were
        s_self_caught_up (self, peer, rc == 0 ? &in : &(herd_msg_t){0});
    else
        herd_log_warning (self->log, "bus", "dropped a malformed catch-up message from %s (%s)",
                          name, reason);
    zmsg_destroy (&msg);
    return true;
}

//  Log a bus link going up or down, from the socket monitor; a link that
//  comes up is caught up with.
static void
s_self_handle_monitor (s_self_t *self)
{
    char *event = NULL, *value = NULL, *endpoint = NULL;
    if (zstr_recvx (self->monitor, &event, &value, &endpoint, NULL) == 3) {
        herd_peer_t *peer = s_self_peer_by_endpoint (self, endpoint);
        const char *name = peer ? herd_peer_node (peer)->name : "?";
        if (streq (event, "HANDSHAKE_SUCCEEDED")) {
            herd_log_printf (self->log, "bus", "link up %s %s", name, endpoint);
            herd_report_event (self->report, "link up", name, endpoint);
            if (peer) {
                herd_peer_link_up (peer);
                s_self_request_sync (self, peer, "link up");
            }
        }
        else
        if (streq (event, "DISCONNECTED")) {
            herd_log_warning (self->log, "bus", "link down %s %s", name, endpoint);
            herd_report_event (self->report, "link down", name, endpoint);
            if (peer)
                herd_peer_link_down (peer);
        }
        else {
            herd_log_warning (self->log, "bus", "link to %s %s refused: %s (%s)", name, endpoint,
                              event, value);
            if (peer)
                herd_peer_sub_refused (peer, event);
        }
    }
    zstr_free (&event);
    zstr_free (&value);
    zstr_free (&endpoint);
}

//  Keep every link moving: catch-ups served, catch-ups asked for (again),
//  refused connections made again (herd_peer_tend).
static void
s_self_tend_links (s_self_t *self)
{
    if (herd_catchup_serving (self->catchup))
        herd_poller_touch (self->poller, self->sync);       //  the pump sends on it
    herd_catchup_pump (self->catchup);
    for (size_t i = 0; i < self->peer_count; i++)
        if (herd_peer_tend (self->peers[i]))
            s_self_request_sync (self, self->peers[i], "asking again");
}

static void
    s_self_reload (s_self_t *self, const herd_config_t *config);

//  The actor pipe's commands (herd_actor).
static void
s_pipe_verbose (void *self)
{
    s_self_t *bus = (s_self_t *) self;
    bus->verbose = bus->catchup_context.verbose = true;
}

static void
s_pipe_reload (void *self, const herd_config_t *config)
{
    s_self_reload ((s_self_t *) self, config);
}

//  Handle a command on the actor pipe.
static void
s_self_handle_pipe (s_self_t *self)
{
    static const herd_actor_commands_t commands = {s_pipe_verbose, s_pipe_reload, NULL};
    if (herd_actor_handle_pipe (self->pipe, &commands, self) == -1)
        self->terminated = true;
}

//  Report our counters to the node's monitor.
static void
s_self_report_stats (s_self_t *self)
{
    if (!self->report)
        return;
    cJSON *stats = cJSON_CreateObject ();
    cJSON_AddNumberToObject (stats, "clients", (double) herd_store_size (self->store));
    char digest[17];
    snprintf (digest, sizeof (digest), "%016" PRIx64, herd_store_digest (self->store));
    cJSON_AddStringToObject (stats, "digest", digest);
    cJSON_AddNumberToObject (stats, "applied_total", (double) self->applied);
    cJSON_AddNumberToObject (stats, "stale_total", (double) self->stale);
    cJSON_AddNumberToObject (stats, "dropped_total", (double) self->dropped);
    cJSON_AddNumberToObject (stats, "refused_messages_total", (double) self->refused);
    cJSON_AddNumberToObject (stats, "sequence", (double) herd_store_seq (self->store));
    cJSON_AddNumberToObject (stats, "catchups_total", (double) self->catchups);
    herd_durable_report (self->durable, stats);
    cJSON *links = cJSON_AddObjectToObject (stats, "links");
    for (size_t i = 0; i < self->peer_count; i++)
        cJSON_AddStringToObject (links, herd_peer_node (self->peers[i])->name,
                                 herd_peer_state (self->peers[i]));
    herd_report_stats (self->report, stats);
}

//  Publish a heartbeat with our current sequence number.
static void
s_self_heartbeat (s_self_t *self)
{
    s_self_publish (self);      //  a heartbeat must not run ahead of the stream
    herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_H, .herd = self->config->name,
                                 .sender = herd_msg_str (self->node->name),
                                 .instance = self->instance, .seq = herd_store_seq (self->store)},
                   self->pub, ZMQ_DONTWAIT);
    self->next_heartbeat = s_now_ms () + HERD_BUS_HEARTBEAT;
}

//  -------------------------------------------------------------------------
//  Set-up

//  Destroy the bus state; nulls the pointer.
static void
s_self_destroy (s_self_t **self_p)
{
    s_self_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; self->peers && i < self->peer_count; i++)
        herd_peer_destroy (&self->peers[i]);
    herd_poller_destroy (&self->poller);
    zactor_destroy (&self->monitor);
    zactor_destroy (&self->server_monitor);
    zactor_destroy (&self->sync_monitor);
    herd_catchup_destroy (&self->catchup);
    free (self->peers);
    free (self->outbox);
    zsock_destroy (&self->sync);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->pub);
    zsock_destroy (&self->router);
    herd_store_destroy (&self->store);
    herd_durable_destroy (&self->durable);
    zactor_destroy (&self->auth);
    zcert_destroy (&self->cert);
    herd_report_destroy (&self->report);
    herd_refusals_destroy (&self->refusals);
    free (self);
    *self_p = NULL;
}

//  Bind endpoint on sock, logging why not; 0 or -1. A host name is resolved
//  first: ZeroMQ binds only to addresses and interface names.
static int
s_self_bind (s_self_t *self, zsock_t *sock, const char *endpoint, const char *what)
{
    char *numeric = herd_config_resolve_endpoint (endpoint);
    int rc = zsock_bind (sock, "%s", numeric ? numeric : endpoint);
    zstr_free (&numeric);
    if (rc != -1)
        return 0;
    herd_log_error (self->log, "bus", "cannot bind %s %s: %s", what, endpoint,
                    zmq_strerror (zmq_errno ()));
    fprintf (stderr, "herd: %s: cannot bind %s %s: %s\n", self->node->name, what, endpoint,
             zmq_strerror (zmq_errno ()));
    return -1;
}

//  Load the journal into the table (herd_durable), if the node has a data
//  directory: replayed, its records are neither journalled nor published.
static int
s_self_open_durable (s_self_t *self)
{
    self->loading = true;
    self->durable = herd_durable_new (&(herd_durable_context_t){
        self->store, self->node->data, self->config->fsync_always, s_self_load_record, self,
        self->node->name, self->log, self->report});
    self->loading = false;
    return self->durable ? 0 : -1;
}

//  CURVE: load this node's secret certificate and start zauth with the
//  public certificates of every node of the herd, so only herd members can
//  connect to our PUB and sync sockets. 0, or -1 (logged).
static int
s_self_start_curve (s_self_t *self)
{
    char *secret = zsys_sprintf ("%s_secret", self->node->cert);
    self->cert = zcert_load (secret);
    if (!self->cert) {
        herd_log_error (self->log, "bus", "cannot load the secret certificate %s", secret);
        fprintf (stderr, "herd: %s: cannot load the secret certificate %s\n", self->node->name,
                 secret);
        zstr_free (&secret);
        return -1;
    }
    zstr_free (&secret);
    zcertstore_t *store = zcertstore_new (NULL);
    for (size_t i = 0; i < self->config->node_count; i++) {
        zcert_t *cert = zcert_load (self->config->nodes[i].cert);
        if (cert)
            zcertstore_insert (store, &cert);
    }
    self->auth = zactor_new (zauth, store);         //  takes the store
    herd_log_printf (self->log, "bus", "CURVE on: public key %s", zcert_public_txt (self->cert));
    return 0;
}

//  A monitor of the handshakes a server socket refuses.
static zactor_t *
s_refusal_monitor (zsock_t *sock)
{
    zactor_t *monitor = zactor_new (zmonitor, sock);
    zstr_sendx (monitor, "LISTEN", "HANDSHAKE_FAILED_AUTH", "HANDSHAKE_FAILED_PROTOCOL",
                "HANDSHAKE_FAILED_NO_DETAIL", NULL);
    zstr_sendx (monitor, "START", NULL);
    zsock_wait (monitor);
    return monitor;
}

//  Log a handshake refused on our PUB or sync socket (CURVE).
static void
s_self_handle_refusal (s_self_t *self, zactor_t *monitor)
{
    char *event = NULL, *value = NULL, *endpoint = NULL;
    if (zstr_recvx (monitor, &event, &value, &endpoint, NULL) == 3) {
        herd_log_warning (self->log, "bus", "refused a connection on %s: %s (%s)", endpoint,
                          event, value);
        herd_report_event (self->report, "refused", NULL, event);
    }
    zstr_free (&event);
    zstr_free (&value);
    zstr_free (&endpoint);
}

//  True if two optional strings differ.
static bool
s_differ (const char *left, const char *right)
{
    return (left == NULL) != (right == NULL) || (left && strcmp (left, right) != 0);
}

//  The gateway channel, PUB and SUB: their limits, bound. 0, or -1 (logged).
static int
s_self_open_sockets (s_self_t *self, const char *endpoint)
{
    self->router = zsock_new (ZMQ_ROUTER);
    self->pub = zsock_new (ZMQ_PUB);
    self->sub = zsock_new (ZMQ_SUB);
    assert (self->router && self->pub && self->sub);
    zsock_set_sndhwm (self->pub, HERD_BUS_PUB_HWM);     //  at most 64 MB per link
    //  No limit on what waits to be applied: a full SUB queue stops the
    //  connection's input, which with ZMTP heartbeats trips an assertion in
    //  libzmq 4.3.4 (stream_engine_base.cpp:417, libzmq #3937) under load;
    //  and what a full queue would drop is caught up anyway
    zsock_set_rcvhwm (self->sub, 0);
    zsock_set_rcvhwm (self->router, HERD_BUS_PUB_HWM);  //  UPDATEs: back-pressure beyond
    zsock_set_rcvtimeo (self->router, 0);       //  see s_self_drain
    zsock_set_rcvtimeo (self->sub, 0);
    zsock_set_sndhwm (self->router, HERD_BUS_HWM);
    //  Sockets facing the network take no frame larger than their messages
    //  can be (ZMTP says how big a frame is before it comes: a larger one
    //  drops the connection, unread), and no stranger may sit on a
    //  handshake for long
    self->peer_context.frame_max = (int) (self->config->max_line + HERD_BUS_PREFIX_MAX);
    if (self->peer_context.frame_max < HERD_BUS_OUTBOX)
        self->peer_context.frame_max = HERD_BUS_OUTBOX;
    zsock_set_maxmsgsize (self->pub, HERD_BUS_CONTROL_MAX);
    zsock_set_maxmsgsize (self->sub, self->peer_context.frame_max);
    zsock_set_handshake_ivl (self->pub, HERD_BUS_HANDSHAKE);
    zsock_set_handshake_ivl (self->sub, HERD_BUS_HANDSHAKE);
    s_self_secure_server (self, self->pub);
    //  A dead neighbour is noticed by ZMTP heartbeats within 3 s; a restarted
    //  one is reconnected within a second, and ZeroMQ resends the subscription
    zsock_set_heartbeat_ivl (self->sub, 1000);
    zsock_set_heartbeat_timeout (self->sub, 3000);
    zsock_set_reconnect_ivl (self->sub, 100);
    zsock_set_reconnect_ivl_max (self->sub, 1000);
    //  A connect to a cut-off host must not sit in the kernel's SYN retries
    //  (1, 2, 4, ... s) after the cable is back: give up and retry each second
    zsock_set_connect_timeout (self->sub, 1000);
    zsock_set_subscribe (self->sub, HERD_MSG_TOPIC_UPDATE);
    zsock_set_subscribe (self->sub, HERD_MSG_TOPIC_HEARTBEAT);
    if (s_self_bind (self, self->router, endpoint, "gateway channel") == -1
        || s_self_bind (self, self->pub, self->node->bus, "bus") == -1)
        return -1;
    return 0;
}

//  The sync ROUTER (catch-up and control), if the node has one: its
//  limits, bound. 0, or -1 (logged).
static int
s_self_open_sync (s_self_t *self)
{
    if (!self->node->sync)
        return 0;
    self->sync = zsock_new (ZMQ_ROUTER);
    //  A catch-up goes out as its requester reads (s_self_pump): what
    //  waits for one requester is bounded, and mandatory routing tells
    //  us when it is full or gone
    zsock_set_sndhwm (self->sync, HERD_BUS_SYNC_HWM);
    zsock_set_router_mandatory (self->sync, 1);
    zsock_set_sndtimeo (self->sync, 0);
    zsock_set_rcvtimeo (self->sync, 0);
    zsock_set_maxmsgsize (self->sync, HERD_BUS_CONTROL_MAX);
    zsock_set_handshake_ivl (self->sync, HERD_BUS_HANDSHAKE);
    s_self_secure_server (self, self->sync);
    return s_self_bind (self, self->sync, self->node->sync, "sync");
}

//  The socket monitors (links up and down on the SUB; with CURVE, refused
//  handshakes on PUB and sync) and the poller over every socket.
static void
s_self_start_monitors (s_self_t *self)
{
    self->monitor = zactor_new (zmonitor, self->sub);
    zstr_sendx (self->monitor, "LISTEN", "HANDSHAKE_SUCCEEDED", "DISCONNECTED",
                "HANDSHAKE_FAILED_AUTH", "HANDSHAKE_FAILED_PROTOCOL",
                "HANDSHAKE_FAILED_NO_DETAIL", NULL);
    zstr_sendx (self->monitor, "START", NULL);
    zsock_wait (self->monitor);
    if (self->cert) {
        self->server_monitor = s_refusal_monitor (self->pub);
        if (self->sync)
            self->sync_monitor = s_refusal_monitor (self->sync);
    }
    //  Exact: the pipe and the monitors' handlers block on receive
    self->poller = herd_poller_new ();
    herd_poller_add (self->poller, self->pipe, true);
    herd_poller_add (self->poller, self->router, false);
    herd_poller_add (self->poller, self->sub, false);
    herd_poller_add (self->poller, self->monitor, true);
    if (self->sync)
        herd_poller_add (self->poller, self->sync, false);
    if (self->server_monitor)
        herd_poller_add (self->poller, self->server_monitor, true);
    if (self->sync_monitor)
        herd_poller_add (self->poller, self->sync_monitor, true);
}

//  Build the bus: load the journal, bind the gateway channel, PUB and sync,
//  connect to every neighbour, start the monitor. NULL (logged) on failure.
static s_self_t *
s_self_new (zsock_t *pipe, herd_bus_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    self->pipe = pipe;
    self->config = args->config;
    self->node = args->node;
    self->log = args->log;
    self->store = herd_store_new (s_self_clock, self);
    struct timespec wall;
    clock_gettime (CLOCK_REALTIME, &wall);
    self->started_mono = zclock_usecs ();
    self->started_wall = (int64_t) wall.tv_sec * 1000000 + wall.tv_nsec / 1000;
    //  A fresh instance id: neighbours then know our sequence numbers restarted
    while (self->instance == 0)
        self->instance = ((uint64_t) randof (0x7fffffff) << 32) ^ (uint64_t) randof (0x7fffffff)
                         ^ ((uint64_t) getpid () << 16) ^ (uint64_t) zclock_usecs ();
    self->report = herd_report_new (args->monitor, "bus");
    self->refusals = herd_refusals_new ();
    bool failed = s_self_open_durable (self) == -1
             || (self->config->curve && s_self_start_curve (self) == -1)
             || s_self_open_sockets (self, args->endpoint) == -1 || s_self_open_sync (self) == -1;
    if (!failed) {
        self->catchup_context = (herd_catchup_context_t){self->sync, self->store, self->instance,
                                                         self->config->name,
                                                         s_self_flush, self, self->log, false};
        self->catchup = herd_catchup_new (&self->catchup_context);
        s_self_start_monitors (self);
        self->peer_context = (herd_peer_context_t){self->sub, self->poller, self->cert,
                                                   self->config->name,
                                                   self->peer_context.frame_max, self->log,
                                                   s_self_settle_sub, self};
        self->peer_count = self->node->neighbour_count;
        self->peers = (herd_peer_t **) zmalloc ((self->peer_count + 1) * sizeof (herd_peer_t *));
        for (size_t i = 0; i < self->peer_count && !failed; i++) {
            self->peers[i] = herd_peer_new (&self->peer_context,
                                            &self->config->nodes[self->node->neighbours[i]]);
            failed = !self->peers[i];
        }
    }
    if (failed)
        s_self_destroy (&self);
    return self;
}

//  Take a reloaded config (RELOAD, herd_msg.h; herd_config_reload_check
//  passed it): neighbours no longer in it are unlinked and forgotten (their
//  catch-up, their row in the links, readiness and metrics), new ones are
//  linked as at start, and one at another endpoint or certificate is both.
//  A new max_line changes the largest frame a neighbour may send, which
//  libzmq takes only on a new connection: every link is then made again
//  (catch-up brings what passed meanwhile). What the other links were
//  doing goes on untouched.
static void
s_self_reload (s_self_t *self, const herd_config_t *config)
{
    const herd_node_t *node = herd_config_node (config, self->node->name);
    assert (node);
    int frame_max = (int) (config->max_line + HERD_BUS_PREFIX_MAX);
    if (frame_max < HERD_BUS_OUTBOX)
        frame_max = HERD_BUS_OUTBOX;
    bool relink = frame_max != self->peer_context.frame_max;
    self->peer_context.frame_max = frame_max;
    zsock_set_maxmsgsize (self->sub, self->peer_context.frame_max);
    herd_peer_t **peers
        = (herd_peer_t **) zmalloc ((node->neighbour_count + 1) * sizeof (herd_peer_t *));
    size_t count = 0;
    //  Keep the neighbours that stay as they were
    for (size_t i = 0; i < self->peer_count; i++) {
        herd_peer_t *peer = self->peers[i];
        const herd_node_t *was = herd_peer_node (peer);
        const herd_node_t *now = herd_config_node (config, was->name);
        bool kept = !relink && now && !s_differ (now->bus, was->bus)
                    && !s_differ (now->sync, was->sync) && !s_differ (now->cert, was->cert);
        for (size_t n = 0; kept && n < node->neighbour_count; n++)
            if (&config->nodes[node->neighbours[n]] == now) {
                herd_peer_set_node (peer, now);
                peers[count++] = peer;
                peer = NULL;                //  moved
                break;
            }
        if (peer) {
            herd_log_printf (self->log, "bus", "link to %s dropped on reload", was->name);
            herd_report_event (self->report, "link down", was->name, "reload");
            herd_peer_unlink (peer);
            herd_peer_destroy (&peer);
        }
    }
    //  Link the new ones (or the ones made again)
    for (size_t n = 0; n < node->neighbour_count; n++) {
        const herd_node_t *now = &config->nodes[node->neighbours[n]];
        bool have = false;
        for (size_t i = 0; i < count && !have; i++)
            have = herd_peer_node (peers[i]) == now;
        if (!have && (peers[count] = herd_peer_new (&self->peer_context, now))) {
            herd_log_printf (self->log, "bus", "link to %s added on reload", now->name);
            count++;
        }
    }
    free (self->peers);
    self->peers = peers;
    self->peer_count = count;
    self->config = config;
    self->node = node;
    //  A catch-up deferred behind one that went may go now
    for (size_t i = 0; i < self->peer_count; i++)
        if (herd_peer_deferred (self->peers[i]))
            s_self_request_sync (self, self->peers[i], "after a reload");
}

//  A drain of sock handled handled messages: if it stopped because a
//  receive found sock empty, the poller need not ask sock before it
//  sleeps (herd_poller.h). Sends on sock later in the turn touch it.
static void
s_self_settled (s_self_t *self, void *sock, int handled)
{
    if (handled < HERD_BUS_BATCH && zmq_errno () == EAGAIN)
        herd_poller_settled (self->poller, sock);
}

//  Handle up to a batch of messages waiting on sock with handler.
static void
s_self_drain (s_self_t *self, void *sock, bool (*handler) (s_self_t *))
{
    //  The sockets have a zero receive time-out: a handler finds nothing
    //  once the socket is empty (cheaper than asking ZMQ_EVENTS each time)
    int handled = 0;
    while (handled < HERD_BUS_BATCH && handler (self))
        handled++;
    s_self_settled (self, sock, handled);
}

void
herd_bus_actor (zsock_t *pipe, void *args)
{
    pthread_setname_np (pthread_self (), "herd-bus");    //  for top -H, perf, gdb
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (herd_bus_args_t *) args);
    if (!herd_actor_ready (pipe, self != NULL) || !self)
        return;                             //  set-up failed (logged)
    herd_log_printf (self->log, "bus", "serving: bus %s, sync %s, %zu neighbours, %zu clients",
                     self->node->bus, self->node->sync ? self->node->sync : "none",
                     self->peer_count, herd_store_size (self->store));
    s_self_heartbeat (self);
    while (!self->terminated) {
        herd_alive_beat (HERD_ALIVE_BUS, s_now_ms ());          //  this loop turns
        int64_t wait = self->next_heartbeat - s_now_ms ();
        if (herd_durable_waiting (self->durable) && wait > HERD_BUS_STORE_RETRY)
            wait = HERD_BUS_STORE_RETRY;        //  storing failed: try again soon
        if (herd_catchup_serving (self->catchup) && wait > HERD_BUS_PUMP_MS)
            wait = HERD_BUS_PUMP_MS;        //  a catch-up waits on its requester
        void *which = herd_poller_wait (self->poller, (int) (wait < 0 ? 0 : wait));
        self->turn_usec = 0;                //  s_self_clock reads it again
        if (which == self->pipe)
            s_self_handle_pipe (self);
        else
        if (which == self->router)
            s_self_drain (self, self->router, s_self_handle_router);
        else
        if (which == self->sub)
            s_self_drain (self, self->sub, s_self_handle_sub);
        else
        if (which && which == self->sync)
            s_self_drain (self, self->sync, s_self_handle_sync);
        else
        if (which == self->monitor)
            s_self_handle_monitor (self);
        else
        if (which && (which == self->server_monitor || which == self->sync_monitor))
            s_self_handle_refusal (self, (zactor_t *) which);
        else
        if (which) {
            for (size_t i = 0; i < self->peer_count; i++)
                if (which == herd_peer_sync (self->peers[i])) {
                    int handled = 0;
                    while (handled < HERD_BUS_BATCH
                           && s_self_handle_peer_sync (self, self->peers[i]))
                        handled++;
                    s_self_settled (self, herd_peer_sync (self->peers[i]), handled);
                }
        }
        else
        if (herd_poller_terminated (self->poller))
            break;
        s_self_tend_links (self);
        s_self_publish (self);      //  what this turn applied, in one message
        if (s_now_ms () >= self->next_heartbeat) {
            s_self_heartbeat (self);
            s_self_report_stats (self);
            herd_durable_compact (self->durable);
        }
        //  What this turn applied is stored, and STORED goes to the gateway
        if (herd_durable_confirm (self->durable, self->router))
            herd_poller_touch (self->poller, self->router);     //  sent on: see herd_poller.h
    }
    //  Records dropped while the journal could not write are in the table:
    //  a last rewrite keeps them, if the disk takes it now
    herd_durable_stop (self->durable);
    herd_log_printf (self->log, "bus", "stopped: %zu clients, %" PRIu64 " applied, %" PRIu64
                     " stale, %" PRIu64 " dropped, %" PRIu64 " published in %" PRIu64
                     " messages", herd_store_size (self->store), self->applied, self->stale,
                     self->dropped, self->published, self->messages);
    s_self_destroy (&self);
}
