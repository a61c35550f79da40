//  herd_bus.c - the bus actor: location table, flooding, catch-up, journal.

#include "herd_bus.h"
#include "herd_catchup.h"
#include "herd_journal.h"
#include "herd_monitor.h"
#include "herd_peer.h"
#include "herd_store.h"
#include "../common/herd_actor.h"
#include "../common/herd_alive.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"
#include "../common/herd_record.h"

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
#define HERD_BUS_REFUSALS   64      //  senders and reasons of refusals logged, each once...
#define HERD_BUS_REFUSAL_QUIET 60000 //  ...then at most one line a minute for others

//  Batches of updates a gateway handed over that wait to be stored: the
//  gateway holds their AT answers until it hears STORED first..last.
typedef struct {
    zframe_t *routing;              //  the gateway's routing id
    uint64_t first, last;           //  batch numbers, consecutive
} s_ack_t;

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
    zpoller_t *poller;
    herd_store_t *store;            //  the table: records, sequence numbers, digest
    uint64_t instance;              //  random at each start
    int64_t started_mono;           //  when the bus started: monotonic ms, and
    int64_t started_wall;           //  ... wall clock ms (for GET's applied time)
    herd_peer_t **peers;            //  one per neighbour (herd_peer.h)
    size_t peer_count;
    herd_peer_context_t peer_context;   //  what the peers borrow: SUB, poller, key, ...
    herd_catchup_t *catchup;        //  catch-ups served (herd_catchup.h)
    herd_catchup_context_t catchup_context;     //  ...and what they borrow
    herd_journal_t *journal;        //  or NULL: table in memory only
    bool fsync_always;              //  herd/fsync = always: STORED only after fdatasync
    s_ack_t *acks;                  //  batches applied, not yet confirmed stored
    size_t ack_count, ack_capacity;
    int64_t store_failed_at;        //  when storing began to fail, ms; 0 = it works
    uint64_t store_failures;        //  journal writes that failed
    herd_monitor_t *monitor_out;    //  events and counters, or NULL
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
    byte envelope[HERD_MSG_ENVELOPE_MAX];   //  our herd and wire version (herd_msg.h)
    size_t envelope_size;
    uint64_t refused;               //  messages of another herd or wire version refused
    uint64_t refusals_logged[HERD_BUS_REFUSALS];    //  hashes of sender and reason logged
    size_t refusals_logged_count;
    int64_t refusals_quiet_until;   //  all slots taken: next line not before, monotonic ms
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

//  Send a message of frames without ever blocking: a message that cannot be
//  queued at once (no connection, queue full, requester gone) is dropped.
//  Nothing is sent when the first frame cannot be: a DEALER and a ROUTER
//  refuse a message at its first frame. 0, or -1 (errno says why).
static int
s_send (zsock_t *sock, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    *msg_p = NULL;
    int rc = 0;
    zframe_t *frame = zmsg_pop (msg);
    while (frame && rc == 0) {
        int flags = ZFRAME_DONTWAIT | (zmsg_size (msg) ? ZFRAME_MORE : 0);
        rc = zframe_send (&frame, sock, flags);
        zframe_destroy (&frame);        //  left to us when not sent
        frame = rc == 0 ? zmsg_pop (msg) : NULL;
    }
    int error = zmq_errno ();
    zmsg_destroy (&msg);
    errno = error;
    return rc;
}

//  Meta frame: our instance and current sequence number.
static zframe_t *
s_self_meta (s_self_t *self)
{
    byte meta[HERD_MSG_META_SIZE];
    herd_msg_put_u64 (meta, self->instance);
    herd_msg_put_u64 (meta + 8, herd_store_seq (self->store));
    return zframe_new (meta, sizeof (meta));
}

//  Add our envelope frame (herd name and wire version) to a message.
static void
s_self_add_envelope (s_self_t *self, zmsg_t *msg)
{
    zmsg_addmem (msg, self->envelope, self->envelope_size);
}

//  Check a message's envelope frame (NULL: it has none); 0 when it is of
//  our herd and wire version, else -1 with reason set.
static int
s_self_check_envelope (s_self_t *self, zframe_t *envelope, char *reason)
{
    return herd_msg_envelope_check (envelope ? zframe_data (envelope) : NULL,
                                    envelope ? zframe_size (envelope) : 0, self->config->name,
                                    reason, HERD_MSG_REASON_MAX);
}

//  A frame as text fit for the log: printable ASCII, at most 64 bytes.
static void
s_printable (zframe_t *frame, char *out, size_t out_size)
{
    size_t size = frame ? zframe_size (frame) : 0, used = 0;
    for (size_t i = 0; i < size && used + 1 < out_size && i < 64; i++) {
        byte c = zframe_data (frame)[i];
        out[used++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
    }
    out[used] = 0;
    if (used == 0)
        snprintf (out, out_size, "?");
}

//  Whether to log a refusal from this sender for this reason: each pair
//  once (a flood of refused messages writes one line), and when
//  HERD_BUS_REFUSALS pairs were logged, at most one line a minute more.
static bool
s_self_refusal_new (s_self_t *self, const char *from, const char *reason)
{
    uint64_t hash = 14695981039346656037ULL;
    for (const char *c = from; *c; c++)
        hash = (hash ^ (byte) *c) * 1099511628211ULL;
    hash = (hash ^ 0xff) * 1099511628211ULL;
    for (const char *c = reason; *c; c++)
        hash = (hash ^ (byte) *c) * 1099511628211ULL;
    for (size_t i = 0; i < self->refusals_logged_count; i++)
        if (self->refusals_logged[i] == hash)
            return false;
    if (self->refusals_logged_count < HERD_BUS_REFUSALS) {
        self->refusals_logged[self->refusals_logged_count++] = hash;
        return true;
    }
    int64_t now = s_now_ms ();
    if (now < self->refusals_quiet_until)
        return false;
    self->refusals_quiet_until = now + HERD_BUS_REFUSAL_QUIET;
    return true;
}

//  Count and log (once per sender and reason) a message refused: of another
//  herd or wire version. what names the message, from its sender.
static void
s_self_refuse (s_self_t *self, const char *what, const char *from, const char *reason)
{
    self->refused++;
    if (s_self_refusal_new (self, from, reason))
        herd_log_warning (self->log, "bus", "refused %s from '%s': %s (logged once)", what, from,
                          reason);
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
    byte meta[HERD_MSG_META_SIZE];
    herd_msg_put_u64 (meta, self->instance);
    herd_msg_put_u64 (meta + 8, seq);
    void *pub = zsock_resolve (self->pub);
    //  PUB never blocks: at its high-water mark it drops, and the
    //  neighbour's catch-up brings what was dropped
    zmq_send (pub, HERD_MSG_TOPIC_UPDATE, strlen (HERD_MSG_TOPIC_UPDATE), ZMQ_SNDMORE);
    zmq_send (pub, self->envelope, self->envelope_size, ZMQ_SNDMORE);
    zmq_send (pub, records, size, ZMQ_SNDMORE);
    zmq_send (pub, self->node->name, strlen (self->node->name), ZMQ_SNDMORE);
    zmq_send (pub, meta, sizeof (meta), 0);
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
//  monotonic time since (to the millisecond); 0 while the journal loads.
static int64_t
s_self_clock (void *arg)
{
    s_self_t *self = (s_self_t *) arg;
    if (self->loading)
        return 0;
    return (self->started_wall + s_now_ms () - self->started_mono) * 1000;
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
    if (self->journal)
        herd_journal_append_hashed (self->journal, line, size, record.hash);
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

//  Rewrite the journal from the table when it holds mostly superseded
//  records, or when it had to drop records it could not write (so the
//  table, which has them, is what the journal holds again).
static void
s_self_compact (s_self_t *self)
{
    size_t live = herd_store_size (self->store);
    //  A lost journal (records dropped while writes failed) is rewritten
    if (!self->journal
        || (!herd_journal_lost (self->journal)
            && herd_journal_records (self->journal) < 2 * live + 10000))
        return;
    int64_t start = s_now_ms ();
    size_t before = herd_journal_records (self->journal);
    if (herd_journal_compact_begin (self->journal) == -1) {
        herd_log_warning (self->log, "bus", "journal compaction failed: %s", strerror (errno));
        return;
    }
    //  Every live record, from the store's change list
    herd_store_cursor_t *cursor = herd_store_cursor_new (self->store, 0);
    herd_store_record_t record;
    while (herd_store_cursor_next (cursor, &record))
        herd_journal_compact_add (self->journal, record.line, record.size, record.hash);
    herd_store_cursor_destroy (&cursor);
    if (herd_journal_compact_commit (self->journal) == -1)
        herd_log_warning (self->log, "bus", "journal compaction failed: %s", strerror (errno));
    else
        herd_log_printf (self->log, "bus", "journal compacted: %zu records to %zu in %" PRId64
                         " ms", before, live, s_now_ms () - start);
}

//  Remember that a gateway's batch was applied: STORED goes back once the
//  journal has it (s_self_confirm). Consecutive batches of one gateway
//  share one entry. Takes the routing frame.
static void
s_self_hold_ack (s_self_t *self, zframe_t **routing_p, uint64_t batch)
{
    s_ack_t *last = self->ack_count ? &self->acks[self->ack_count - 1] : NULL;
    if (last && last->last + 1 == batch && zframe_eq (last->routing, *routing_p)) {
        last->last = batch;
        zframe_destroy (routing_p);
        return;
    }
    if (self->ack_count == self->ack_capacity) {
        self->ack_capacity = self->ack_capacity ? self->ack_capacity * 2 : 8;
        self->acks = (s_ack_t *) realloc (self->acks, self->ack_capacity * sizeof (s_ack_t));
        assert (self->acks);
    }
    self->acks[self->ack_count++] = (s_ack_t){*routing_p, batch, batch};
    *routing_p = NULL;
}

//  Store what this turn applied and tell each gateway which of its batches
//  are stored. Without a journal, held by the bus is stored. With one, the
//  records must be written (fsync = everysec) or written and fdatasync'd
//  (always); when that fails nothing is confirmed, and the next turns try
//  again (the journal paces its retries) until it works or the gateway's
//  ack_timeout_ms closes the waiting clients' connections.
static void
s_self_store (s_self_t *self)
{
    if (self->journal) {
        int rc = herd_journal_flush (self->journal);
        if (rc == 0 && herd_journal_lost (self->journal))
            rc = -1;            //  records were dropped: only a rewrite restores them
        if (rc == 0 && self->fsync_always && self->ack_count > 0)
            rc = herd_journal_sync (self->journal);
        if (rc == -1) {
            if (!self->store_failed_at) {
                self->store_failed_at = s_now_ms ();
                herd_log_warning (self->log, "bus", "journal write failed: %s; updates are not "
                                  "acknowledged until it works again", strerror (errno));
                herd_monitor_event (self->monitor_out, "bus", "journal failing", NULL,
                                    strerror (errno));
            }
            self->store_failures++;
            return;
        }
        if (self->store_failed_at) {
            herd_log_printf (self->log, "bus", "journal writing again after %" PRId64 " ms",
                             s_now_ms () - self->store_failed_at);
            herd_monitor_event (self->monitor_out, "bus", "journal writing", NULL, "recovered");
            self->store_failed_at = 0;
        }
        herd_journal_tick (self->journal);
    }
    for (size_t i = 0; i < self->ack_count; i++) {
        s_ack_t *ack = &self->acks[i];
        byte first[8], last[8];
        herd_msg_put_u64 (first, ack->first);
        herd_msg_put_u64 (last, ack->last);
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &ack->routing);
        zmsg_addstr (reply, HERD_MSG_STORED);
        zmsg_addmem (reply, first, sizeof (first));
        zmsg_addmem (reply, last, sizeof (last));
        s_send (self->router, &reply);
    }
    self->ack_count = 0;
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
    zframe_t *routing = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    if (command && streq (command, HERD_MSG_UPDATE) && zmsg_size (msg) == 2
        && zframe_size (zmsg_first (msg)) == 8) {
        uint64_t batch = herd_msg_get_u64 (zframe_data (zmsg_first (msg)));
        zframe_t *line = zmsg_next (msg);
        s_self_apply_all (self, (char *) zframe_data (line), zframe_size (line), "gateway",
                          true);
        s_self_hold_ack (self, &routing, batch);
    }
    else
    if (command && streq (command, HERD_MSG_LOOKUP) && zmsg_size (msg) == 2) {
        zframe_t *reqid = zmsg_pop (msg);
        zframe_t *client = zmsg_pop (msg);
        herd_store_record_t record;
        bool found = herd_store_lookup (self->store, (char *) zframe_data (client),
                                        zframe_size (client), &record);
        zframe_destroy (&client);

        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &routing);
        zmsg_addstr (reply, found ? HERD_MSG_FOUND : HERD_MSG_NONE);
        zmsg_append (reply, &reqid);
        if (found)
            zmsg_addmem (reply, record.line, record.size);
        s_send (self->router, &reply);
    }
    else
    if (command && streq (command, "STATS") && zmsg_size (msg) == 2) {
        //  Counters of the gateway and (relayed) places, for the monitor
        char *role = zmsg_popstr (msg);
        char *json = zmsg_popstr (msg);
        cJSON *stats = json ? cJSON_Parse (json) : NULL;
        if (role && (streq (role, "gateway") || streq (role, "places")) && cJSON_IsObject (stats))
            herd_monitor_set (self->monitor_out, role, stats);
        else
            cJSON_Delete (stats);
        zstr_free (&role);
        zstr_free (&json);
    }
    else
        herd_log_warning (self->log, "bus", "dropped a malformed gateway message (%s)",
                          command ? command : "empty");
    zstr_free (&command);
    zframe_destroy (&routing);
    zmsg_destroy (&msg);
    return true;
}

//  Track a neighbour's sequence number from its stream (records: how many an
//  update carried; 0 for a heartbeat); catch up on a gap.
static void
s_self_track (s_self_t *self, herd_peer_t *peer, zframe_t *meta, size_t records)
{
    const char *why = herd_peer_track (peer, zframe_data (meta), records);
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
    zframe_t *topic = zmsg_first (msg);
    //  Another herd's or wire version's message is never read further
    bool known = zframe_streq (topic, HERD_MSG_TOPIC_UPDATE)
                 || zframe_streq (topic, HERD_MSG_TOPIC_HEARTBEAT);
    char reason[HERD_MSG_REASON_MAX];
    if (known && s_self_check_envelope (self, zmsg_next (msg), reason) == -1) {
        //  The sender is the last frame but one, in this wire and the last
        zframe_t *sender = NULL;
        size_t index = 0;
        for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg))
            if (zmsg_size (msg) >= 3 && index++ == zmsg_size (msg) - 2)
                sender = frame;
        char from[80];
        s_printable (sender, from, sizeof (from));
        s_self_refuse (self, zframe_streq (topic, HERD_MSG_TOPIC_UPDATE) ? "update" : "heartbeat",
                       from, reason);
        zmsg_destroy (&msg);
        return true;
    }
    bool update = zmsg_size (msg) == 5 && zframe_streq (topic, HERD_MSG_TOPIC_UPDATE);
    bool heartbeat = zmsg_size (msg) == 4 && zframe_streq (topic, HERD_MSG_TOPIC_HEARTBEAT);
    zframe_t *line = update ? zmsg_next (msg) : NULL;
    zframe_t *sender = zmsg_next (msg);
    zframe_t *meta = zmsg_next (msg);
    herd_peer_t *peer = (update || heartbeat) && zframe_size (meta) == HERD_MSG_META_SIZE
                         ? s_self_peer_by_name (self, (char *) zframe_data (sender),
                                                zframe_size (sender))
                         : NULL;
    if (!peer) {
        self->dropped++;
        herd_log_warning (self->log, "bus", "dropped a malformed bus message of %zu frames",
                          zmsg_size (msg));
    }
    else {
        size_t records = update ? s_self_apply_all (self, (char *) zframe_data (line),
                                                    zframe_size (line),
                                                    herd_peer_node (peer)->name, false)
                                : 0;
        s_self_track (self, peer, meta, records);
    }
    zmsg_destroy (&msg);
    return true;
}

//  Handle ICANHAZ: send what the requester misses.
static void
s_self_handle_icanhaz (s_self_t *self, zframe_t *routing, zmsg_t *msg)
{
    zframe_t *meta = zmsg_next (msg);
    zframe_t *digest = zmsg_next (msg);
    if (zmsg_size (msg) != 5 || zframe_size (meta) != HERD_MSG_META_SIZE
        || zframe_size (digest) != 16) {
        herd_log_warning (self->log, "bus", "dropped a malformed catch-up request");
        return;
    }
    uint64_t instance = herd_msg_get_u64 (zframe_data (meta));
    uint64_t since = herd_msg_get_u64 (zframe_data (meta) + 8);
    uint64_t count = herd_msg_get_u64 (zframe_data (digest));
    uint64_t hash = herd_msg_get_u64 (zframe_data (digest) + 8);
    if (instance == self->instance && since <= herd_store_seq (self->store))
        herd_catchup_start (self->catchup, routing, since);
    else
    if (count == herd_store_size (self->store) && hash == herd_store_digest (self->store))
        herd_catchup_start (self->catchup, routing, UINT64_MAX);    //  same table: nothing
    else
        herd_catchup_start (self->catchup, routing, 0);             //  everything
}

//  Handle LINK peer up|down: take our subscription to a neighbour down or up.
static void
s_self_handle_link (s_self_t *self, zframe_t *routing, zmsg_t *msg)
{
    //  Frames: routing id, LINK, envelope, peer, state
    char *name = zmsg_size (msg) == 5 ? zframe_strdup (zmsg_next (msg)) : NULL;
    char *state = zmsg_size (msg) == 5 ? zframe_strdup (zmsg_next (msg)) : NULL;
    herd_peer_t *peer = name ? s_self_peer_by_name (self, name, strlen (name)) : NULL;
    const char *error = NULL;
    if (!peer || !state)
        error = "no such neighbour";
    else
    if (!streq (state, "up") && !streq (state, "down"))
        error = "state must be up or down";
    else
    if (streq (state, "down") && herd_peer_link (peer, false)) {
        herd_monitor_event (self->monitor_out, "bus", "link down", name, "by command");
        herd_log_warning (self->log, "bus", "link to %s taken down by command", name);
    }
    else
    if (streq (state, "up") && herd_peer_link (peer, true))
        herd_log_printf (self->log, "bus", "link to %s brought up by command", name);
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, (zframe_t *[]){zframe_dup (routing)});
    zmsg_addstr (reply, error ? "ERROR" : "OK");
    if (error)
        zmsg_addstr (reply, error);
    s_send (self->sync, &reply);
    zstr_free (&name);
    zstr_free (&state);
}

//  Handle one message on the sync ROUTER: catch-up requests and control.
static bool
s_self_handle_sync (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->sync);
    if (!msg)
        return false;
    zframe_t *routing = zmsg_first (msg);
    zframe_t *command = zmsg_next (msg);
    if (self->verbose)
        zsys_debug ("bus %s: sync message of %zu frames", self->node->name, zmsg_size (msg));
    //  Nothing is served or obeyed for another herd or wire version: the
    //  requester is told why
    char reason[HERD_MSG_REASON_MAX];
    if (command && s_self_check_envelope (self, zmsg_next (msg), reason) == -1) {
        char command_text[72], what[80], from[80];
        s_printable (command, command_text, sizeof (command_text));
        snprintf (what, sizeof (what), "%s request", command_text);
        const char *address = zframe_meta (command, "Peer-Address");
        snprintf (from, sizeof (from), "%s", address ? address : "?");
        s_self_refuse (self, what, from, reason);
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, (zframe_t *[]){zframe_dup (routing)});
        zmsg_addstr (reply, HERD_MSG_REFUSED);
        zmsg_addstr (reply, reason);
        s_send (self->sync, &reply);
    }
    else
    if (command && zframe_streq (command, HERD_MSG_ICANHAZ))
        s_self_handle_icanhaz (self, routing, msg);
    else
    if (command && zframe_streq (command, HERD_MSG_DIGEST)) {
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, (zframe_t *[]){zframe_dup (routing)});
        zmsg_addstr (reply, HERD_MSG_DIGEST);
        zmsg_addstr (reply, self->node->name);
        zmsg_addstrf (reply, "%zu", herd_store_size (self->store));
        zmsg_addstrf (reply, "%016" PRIx64, herd_store_digest (self->store));
        zmsg_addstrf (reply, "%" PRIu64, self->applied);
        zmsg_addstrf (reply, "%" PRIu64, self->stale);
        s_send (self->sync, &reply);
    }
    else
    if (command && zframe_streq (command, HERD_MSG_LINK))
        s_self_handle_link (self, routing, msg);
    else
    if (command && zframe_streq (command, HERD_MSG_GET) && zmsg_size (msg) == 4) {
        zframe_t *client = zmsg_next (msg);
        herd_store_record_t record;
        bool found = herd_store_lookup (self->store, (char *) zframe_data (client),
                                        zframe_size (client), &record);
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, (zframe_t *[]){zframe_dup (routing)});
        zmsg_addstr (reply, found ? HERD_MSG_RECORD : HERD_MSG_NONE);
        if (found) {
            zmsg_addmem (reply, record.line, record.size);
            zmsg_addstrf (reply, "%" PRIu64, (uint64_t) record.applied_usec);
            zmsg_addstrf (reply, "%" PRIu64, record.seq);
        }
        s_send (self->sync, &reply);
    }
    else
        herd_log_warning (self->log, "bus", "dropped a malformed sync message");
    zmsg_destroy (&msg);
    return true;
}

//  Handle catch-up records or the end of a catch-up from a neighbour.
static bool
s_self_handle_peer_sync (s_self_t *self, herd_peer_t *peer)
{
    zmsg_t *msg = herd_peer_recv (peer);
    if (!msg)
        return false;
    const char *name = herd_peer_node (peer)->name;
    zframe_t *command = zmsg_first (msg);
    char reason[HERD_MSG_REASON_MAX] = "";
    bool refused = command && zframe_streq (command, HERD_MSG_REFUSED);
    if (refused) {
        zframe_t *why = zmsg_next (msg);
        s_printable (why, reason, sizeof (reason));
        if (s_self_refusal_new (self, name, reason))
            herd_log_warning (self->log, "bus", "catch-up refused by %s: %s (logged once)", name,
                              reason);
    }
    else
    if (command && s_self_check_envelope (self, zmsg_next (msg), reason) == -1) {
        s_self_refuse (self, "catch-up", name, reason);
        refused = true;
    }
    if (refused)
        herd_peer_refused (peer);
    else
    if (command && zframe_streq (command, HERD_MSG_KVSYNC)) {
        for (zframe_t *line = zmsg_next (msg); line; line = zmsg_next (msg)) {
            s_self_apply (self, (char *) zframe_data (line), zframe_size (line), name, false);
            herd_peer_received (peer, zframe_size (line));
        }
    }
    else
    if (command && zframe_streq (command, HERD_MSG_KTHXBAI) && zmsg_size (msg) == 3) {
        zframe_t *meta = zmsg_next (msg);
        char detail[96];
        herd_peer_caught_up (peer,
                             zframe_size (meta) == HERD_MSG_META_SIZE ? zframe_data (meta) : NULL,
                             detail, sizeof (detail));
        herd_monitor_event (self->monitor_out, "bus", "caught up", name, detail);
        self->catchups++;
        for (size_t i = 0; i < self->peer_count; i++)
            if (herd_peer_deferred (self->peers[i]))
                s_self_request_sync (self, self->peers[i], "after another catch-up");
    }
    else
        herd_log_warning (self->log, "bus", "dropped a malformed catch-up message from %s", name);
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
            herd_monitor_event (self->monitor_out, "bus", "link up", name, endpoint);
            if (peer) {
                herd_peer_link_up (peer);
                s_self_request_sync (self, peer, "link up");
            }
        }
        else
        if (streq (event, "DISCONNECTED")) {
            herd_log_warning (self->log, "bus", "link down %s %s", name, endpoint);
            herd_monitor_event (self->monitor_out, "bus", "link down", name, endpoint);
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

//  Publish our counters, with the gateway's and places' latest, to the
//  monitor.
static void
s_self_publish_stats (s_self_t *self)
{
    if (!self->monitor_out)
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
    cJSON_AddNumberToObject (stats, "journal_records",
                             self->journal ? (double) herd_journal_records (self->journal) : 0);
    cJSON_AddNumberToObject (stats, "journal_failing",
                             self->journal && herd_journal_failing (self->journal) ? 1 : 0);
    cJSON_AddNumberToObject (stats, "store_failures_total", (double) self->store_failures);
    cJSON *links = cJSON_AddObjectToObject (stats, "links");
    for (size_t i = 0; i < self->peer_count; i++)
        cJSON_AddStringToObject (links, herd_peer_node (self->peers[i])->name,
                                 herd_peer_state (self->peers[i]));
    herd_monitor_set (self->monitor_out, "bus", stats);
    herd_monitor_publish (self->monitor_out);
}

//  Publish a heartbeat with our current sequence number.
static void
s_self_heartbeat (s_self_t *self)
{
    s_self_publish (self);      //  a heartbeat must not run ahead of the stream
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, HERD_MSG_TOPIC_HEARTBEAT);
    s_self_add_envelope (self, msg);
    zmsg_addstr (msg, self->node->name);
    zmsg_append (msg, (zframe_t *[]){s_self_meta (self)});
    s_send (self->pub, &msg);
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
    zpoller_destroy (&self->poller);
    zactor_destroy (&self->monitor);
    zactor_destroy (&self->server_monitor);
    zactor_destroy (&self->sync_monitor);
    herd_catchup_destroy (&self->catchup);
    free (self->peers);
    free (self->outbox);
    for (size_t i = 0; i < self->ack_count; i++)
        zframe_destroy (&self->acks[i].routing);
    free (self->acks);
    zsock_destroy (&self->sync);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->pub);
    zsock_destroy (&self->router);
    herd_store_destroy (&self->store);
    herd_journal_destroy (&self->journal);
    zactor_destroy (&self->auth);
    zcert_destroy (&self->cert);
    herd_monitor_destroy (&self->monitor_out);
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

//  Load the journal into the table, if the node has a data directory.
static int
s_self_open_journal (s_self_t *self)
{
    if (!self->node->data)
        return 0;
    int64_t start = s_now_ms ();
    char error[256] = "";
    herd_journal_stats_t stats;
    self->loading = true;
    self->journal = herd_journal_open (self->node->data, s_self_load_record, self, &stats, error);
    self->loading = false;
    if (!self->journal) {
        herd_log_error (self->log, "bus", "cannot use the journal: %s", error);
        fprintf (stderr, "herd: %s: cannot use the journal: %s\n", self->node->name, error);
        return -1;
    }
    herd_log_printf (self->log, "bus", "journal loaded: %zu records, %zu clients in %" PRId64
                     " ms%s%s%s", stats.records, herd_store_size (self->store),
                     s_now_ms () - start, stats.upgraded ? " (converted from format " : "",
                     stats.upgraded ? stats.format : "",
                     stats.upgraded ? " to " HERD_JOURNAL_FORMAT ")" : "");
    if (stats.skipped_bytes)
        herd_log_warning (self->log, "bus",
                          "journal damaged: %zu damaged record%s (%zu bytes) skipped, %zu good "
                          "records kept (%s)",
                          stats.skipped, stats.skipped == 1 ? "" : "s", stats.skipped_bytes,
                          stats.records, stats.skip_reason);
    if (stats.discarded)
        herd_log_warning (self->log, "bus",
                          "journal damaged: %zu bytes after %zu good records discarded (%s)",
                          stats.discarded, stats.records, stats.reason);
    return 0;
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
        herd_monitor_event (self->monitor_out, "bus", "refused", NULL, event);
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
    self->poller = zpoller_new (self->pipe, self->router, self->sub, self->monitor, NULL);
    if (self->sync)
        zpoller_add (self->poller, self->sync);
    if (self->server_monitor)
        zpoller_add (self->poller, self->server_monitor);
    if (self->sync_monitor)
        zpoller_add (self->poller, self->sync_monitor);
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
    self->fsync_always = args->config->fsync_always;
    self->store = herd_store_new (s_self_clock, self);
    self->envelope_size = herd_msg_envelope (self->envelope, self->config->name);
    self->started_mono = s_now_ms ();
    self->started_wall = zclock_time ();
    //  A fresh instance id: neighbours then know our sequence numbers restarted
    while (self->instance == 0)
        self->instance = ((uint64_t) randof (0x7fffffff) << 32) ^ (uint64_t) randof (0x7fffffff)
                         ^ ((uint64_t) getpid () << 16) ^ (uint64_t) zclock_usecs ();
    //  The monitor first: while a large journal loads, /readyz says so
    bool failed = false;
    if (self->node->monitor || self->node->metrics) {
        self->monitor_out = herd_monitor_new (self->node, self->log);
        failed = !self->monitor_out;
    }
    failed = failed || s_self_open_journal (self) == -1
             || (self->config->curve && s_self_start_curve (self) == -1)
             || s_self_open_sockets (self, args->endpoint) == -1 || s_self_open_sync (self) == -1;
    if (!failed) {
        self->catchup_context = (herd_catchup_context_t){self->sync, self->store, self->instance,
                                                         self->envelope, self->envelope_size,
                                                         s_self_flush, self, self->log, false};
        self->catchup = herd_catchup_new (&self->catchup_context);
        s_self_start_monitors (self);
        self->peer_context = (herd_peer_context_t){self->sub, self->poller, self->cert,
                                                   self->envelope, self->envelope_size,
                                                   self->peer_context.frame_max, self->log};
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
            herd_monitor_event (self->monitor_out, "bus", "link down", was->name, "reload");
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

//  Handle up to a batch of messages waiting on sock with handler.
static void
s_self_drain (s_self_t *self, bool (*handler) (s_self_t *))
{
    //  The sockets have a zero receive time-out: a handler finds nothing
    //  once the socket is empty (cheaper than asking ZMQ_EVENTS each time)
    for (int i = 0; i < HERD_BUS_BATCH && handler (self); i++)
        ;
}

void
herd_bus_actor (zsock_t *pipe, void *args)
{
    pthread_setname_np (pthread_self (), "herd-bus");    //  for top -H, perf, gdb
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (herd_bus_args_t *) args);
    if (!herd_actor_ready (pipe, self != NULL))
        return;                             //  set-up failed (logged)
    herd_log_printf (self->log, "bus", "serving: bus %s, sync %s, %zu neighbours, %zu clients",
                     self->node->bus, self->node->sync ? self->node->sync : "none",
                     self->peer_count, herd_store_size (self->store));
    s_self_heartbeat (self);
    while (!self->terminated) {
        herd_alive_beat (HERD_ALIVE_BUS, s_now_ms ());          //  this loop turns
        int64_t wait = self->next_heartbeat - s_now_ms ();
        if ((self->ack_count > 0 || (self->journal && herd_journal_failing (self->journal)))
            && wait > HERD_BUS_STORE_RETRY)
            wait = HERD_BUS_STORE_RETRY;        //  storing failed: try again soon
        if (herd_catchup_serving (self->catchup) && wait > HERD_BUS_PUMP_MS)
            wait = HERD_BUS_PUMP_MS;        //  a catch-up waits on its requester
        void *which = zpoller_wait (self->poller, (int) (wait < 0 ? 0 : wait));
        if (which == self->pipe)
            s_self_handle_pipe (self);
        else
        if (which == self->router)
            s_self_drain (self, s_self_handle_router);
        else
        if (which == self->sub)
            s_self_drain (self, s_self_handle_sub);
        else
        if (which && which == self->sync)
            s_self_drain (self, s_self_handle_sync);
        else
        if (which == self->monitor)
            s_self_handle_monitor (self);
        else
        if (which && (which == self->server_monitor || which == self->sync_monitor))
            s_self_handle_refusal (self, (zactor_t *) which);
        else
        if (which) {
            for (size_t i = 0; i < self->peer_count; i++)
                if (which == herd_peer_sync (self->peers[i]))
                    for (int n = 0; n < HERD_BUS_BATCH
                                    && s_self_handle_peer_sync (self, self->peers[i]);
                         n++)
                        ;
        }
        else
        if (zpoller_terminated (self->poller))
            break;
        s_self_tend_links (self);
        s_self_publish (self);      //  what this turn applied, in one message
        if (s_now_ms () >= self->next_heartbeat) {
            s_self_heartbeat (self);
            s_self_publish_stats (self);
            s_self_compact (self);
        }
        s_self_store (self);
    }
    //  Records dropped while the journal could not write are in the table:
    //  a last rewrite keeps them, if the disk takes it now
    if (self->journal && herd_journal_lost (self->journal))
        s_self_compact (self);
    herd_log_printf (self->log, "bus", "stopped: %zu clients, %" PRIu64 " applied, %" PRIu64
                     " stale, %" PRIu64 " dropped, %" PRIu64 " published in %" PRIu64
                     " messages", herd_store_size (self->store), self->applied, self->stale,
                     self->dropped, self->published, self->messages);
    s_self_destroy (&self);
}

//  -------------------------------------------------------------------------
//  Self test

//  Receive with a bounded wait; NULL on time-out.
static zmsg_t *
s_recv_bounded (zsock_t *sock, int msecs)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    zmsg_t *msg = zpoller_wait (poller, msecs) ? zmsg_recv (sock) : NULL;
    zpoller_destroy (&poller);
    return msg;
}

//  Ask the bus for client; returns the stored line or NULL for NONE.
static char *
s_lookup (zsock_t *dealer, const char *client)
{
    zstr_sendx (dealer, HERD_MSG_LOOKUP, "req1", client, NULL);
    zmsg_t *reply = s_recv_bounded (dealer, 5000);
    HERD_CHECK (reply);
    char *kind = zmsg_popstr (reply);
    char *reqid = zmsg_popstr (reply);
    HERD_CHECK_STR (reqid, "req1");
    char *line = zmsg_popstr (reply);
    HERD_CHECK ((line != NULL) == streq (kind, HERD_MSG_FOUND));
    zstr_free (&kind);
    zstr_free (&reqid);
    zmsg_destroy (&reply);
    return line;
}

//  Hand records to the bus as the gateway does, and wait until the bus says
//  they are stored: ["STORED", n, n] for our batch n.
static void
s_update_mem (zsock_t *dealer, const char *records, size_t size)
{
    static uint64_t batch = 0;
    byte number[8];
    herd_msg_put_u64 (number, ++batch);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, HERD_MSG_UPDATE);
    zmsg_addmem (msg, number, sizeof (number));
    zmsg_addmem (msg, records, size);
    zmsg_send (&msg, dealer);
    zmsg_t *reply = s_recv_bounded (dealer, 5000);
    HERD_CHECK (reply);
    HERD_CHECK_INT (zmsg_size (reply), 3);
    HERD_CHECK (zframe_streq (zmsg_first (reply), HERD_MSG_STORED));
    HERD_CHECK (herd_msg_get_u64 (zframe_data (zmsg_next (reply))) == batch);
    HERD_CHECK (herd_msg_get_u64 (zframe_data (zmsg_next (reply))) == batch);
    zmsg_destroy (&reply);
}

static void
s_update (zsock_t *dealer, const char *records)
{
    s_update_mem (dealer, records, strlen (records));
}

//  Check that the bus holds expected for client.
static void
s_expect (zsock_t *dealer, const char *client, const char *expected)
{
    char *line = s_lookup (dealer, client);
    HERD_CHECK_STR (line, expected);
    zstr_free (&line);
}

//  Add an envelope of herd name and wire version to a message.
static void
s_add_envelope (zmsg_t *msg, const char *name, byte version)
{
    byte envelope[HERD_MSG_ENVELOPE_MAX];
    size_t size = herd_msg_envelope (envelope, name);
    envelope[0] = version;
    zmsg_addmem (msg, envelope, size);
}

//  Publish an update as neighbour B of herd "herd" (the default) would.
static void
s_publish_as (zsock_t *pub, const char *line, uint64_t seq, const char *herd, byte version)
{
    byte meta[HERD_MSG_META_SIZE];
    herd_msg_put_u64 (meta, 42);
    herd_msg_put_u64 (meta + 8, seq);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, HERD_MSG_TOPIC_UPDATE);
    s_add_envelope (msg, herd, version);
    zmsg_addstr (msg, line);
    zmsg_addstr (msg, "B");
    zmsg_addmem (msg, meta, sizeof (meta));
    zmsg_send (&msg, pub);
}

static void
s_publish_as_b (zsock_t *pub, const char *line, uint64_t seq)
{
    s_publish_as (pub, line, seq, "herd", HERD_MSG_WIRE_VERSION);
}

//  Send a control request with an envelope of herd and version (version 0:
//  no envelope, as wire version 1) and return the first two frames of the
//  reply as "KIND REASON-OR-NAME".
static char *
s_control (zsock_t *control, const char *command, const char *herd, byte version)
{
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, command);
    if (version)
        s_add_envelope (request, herd, version);
    zmsg_send (&request, control);
    zmsg_t *reply = s_recv_bounded (control, 5000);
    HERD_CHECK (reply);
    char *kind = zmsg_popstr (reply), *what = zmsg_popstr (reply);
    char *result = zsys_sprintf ("%s %s", kind, what ? what : "");
    zstr_free (&kind);
    zstr_free (&what);
    zmsg_destroy (&reply);
    return result;
}

//  Ask a bus's sync socket for its digest; returns "count digest". Asks
//  again when no answer comes (a request can be lost on a connection that
//  is closing when the bus restarts).
static char *
s_digest (zsock_t *control)
{
    zmsg_t *reply = NULL;
    for (int attempt = 0; attempt < 20 && !reply; attempt++) {
        zmsg_t *request = zmsg_new ();
        zmsg_addstr (request, HERD_MSG_DIGEST);
        s_add_envelope (request, "herd", HERD_MSG_WIRE_VERSION);
        zmsg_send (&request, control);
        reply = s_recv_bounded (control, 250);
    }
    HERD_CHECK (reply);
    char *kind = zmsg_popstr (reply), *name = zmsg_popstr (reply);
    char *count = zmsg_popstr (reply), *digest = zmsg_popstr (reply);
    HERD_CHECK_STR (kind, HERD_MSG_DIGEST);
    char *result = zsys_sprintf ("%s %s", count, digest);
    zstr_free (&kind);
    zstr_free (&name);
    zstr_free (&count);
    zstr_free (&digest);
    zmsg_destroy (&reply);
    return result;
}

//  The bus under test (node A, with a journal) and what plays around it:
//  its gateway, neighbour B's PUB and SUB, a control DEALER to A's sync.
typedef struct {
    char dir[32];
    char log_path[64];
    herd_config_t *config;
    herd_log_t *log;
    herd_bus_args_t args;
    zactor_t *bus;
    zsock_t *gateway;
    zsock_t *b_pub, *b_sub;
    zsock_t *control;
    bool verbose;
} s_test_t;

//  The first record the gateway stores, for later checks.
static const char *s_first = "AT A +0.100000000 kiwi +34.068930-118.445127 1621464827.959498503";

//  Two nodes, A (under test, with a journal) and B (played by the test).
static void
s_test_start (s_test_t *test, bool verbose)
{
    memset (test, 0, sizeof (*test));
    test->verbose = verbose;
    int ports[3];
    herd_check_free_ports (ports, 3);
    snprintf (test->dir, sizeof (test->dir), "/tmp/herd_bus_test_XXXXXX");
    HERD_CHECK (mkdtemp (test->dir));
    char text[1024];
    snprintf (text, sizeof (text),
              "node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:%d\n"
              "    sync = tcp://127.0.0.1:%d\n    log = a.log\n    data = %s/A\n"
              "node = B\n    client = 127.0.0.1:2\n    bus = tcp://127.0.0.1:%d\n"
              "    log = b.log\n"
              "edges\n    edge = A B\n",
              ports[0], ports[2], test->dir, ports[1]);
    char *error = NULL;
    test->config = herd_config_load_string (text, "test.cfg", &error);
    if (!test->config)
        fprintf (stderr, "%s\n", error);
    HERD_CHECK (test->config);
    snprintf (test->log_path, sizeof (test->log_path), "%s/a.log", test->dir);
    test->log = herd_log_new (test->log_path, "A");
    HERD_CHECK (test->log);

    test->b_pub = zsock_new (ZMQ_PUB);
    HERD_CHECK (zsock_bind (test->b_pub, "tcp://127.0.0.1:%d", ports[1]) == ports[1]);
    test->args = (herd_bus_args_t){test->config, herd_config_node (test->config, "A"),
                                   "inproc://bus-test", test->log};
    test->bus = zactor_new (herd_bus_actor, &test->args);
    HERD_CHECK_INT (zsock_wait (test->bus), 0);
    if (verbose)
        zstr_send (test->bus, "VERBOSE");
    test->gateway = zsock_new_dealer (">inproc://bus-test");
    test->b_sub = zsock_new (ZMQ_SUB);
    zsock_set_subscribe (test->b_sub, HERD_MSG_TOPIC_UPDATE);
    HERD_CHECK (zsock_connect (test->b_sub, "tcp://127.0.0.1:%d", ports[0]) == 0);
    test->control = zsock_new (ZMQ_DEALER);
    HERD_CHECK (zsock_connect (test->control, "tcp://127.0.0.1:%d", ports[2]) == 0);
}

//  The gateway's updates: stored, read back, never replaced by older ones;
//  several records in one UPDATE, a bad one dropped alone.
static void
s_test_gateway (s_test_t *test)
{
    //  Unknown client; an empty table
    HERD_CHECK (s_lookup (test->gateway, "kiwi") == NULL);
    char *digest = s_digest (test->control);
    HERD_CHECK_STR (digest, "0 0000000000000000");
    zstr_free (&digest);

    //  An update from the gateway is stored and read back
    s_update (test->gateway, s_first);
    s_expect (test->gateway, "kiwi", s_first);

    //  An older one never replaces it
    s_update (test->gateway, "AT A +0.100000000 kiwi +1+1 1621464827.9");
    s_expect (test->gateway, "kiwi", s_first);

    //  One UPDATE may carry several records, one a line; a bad one among
    //  them is dropped alone (the gateway's records are trusted to be well
    //  formed, being made from validated fields, but one without a client
    //  and time cannot be stored)
    s_update (test->gateway, "AT A +0.100000000 fig +1+1 10\nAT A +0.1 bad 10\n"
                             "AT A +0.100000000 date +2+2 20\nAT A +0.100000000 fig +3+3 30");
    s_expect (test->gateway, "fig", "AT A +0.100000000 fig +3+3 30");
    s_expect (test->gateway, "date", "AT A +0.100000000 date +2+2 20");
    HERD_CHECK (s_lookup (test->gateway, "bad") == NULL);
}

//  Updates applied are published to neighbours with A's name, envelope and
//  sequence number (keep updating until B's subscription is live).
static void
s_test_flood_first (s_test_t *test)
{
    zmsg_t *flooded = NULL;
    for (int i = 0; i < 100 && !flooded; i++) {
        char update[128];
        snprintf (update, sizeof (update), "AT A +0.100000000 flood +1+1 %d", 1000 + i);
        s_update (test->gateway, update);
        flooded = s_recv_bounded (test->b_sub, 100);
    }
    HERD_CHECK (flooded);
    HERD_CHECK_INT (zmsg_size (flooded), 5);
    zmsg_first (flooded);
    char reason[HERD_MSG_REASON_MAX];
    zframe_t *envelope = zmsg_next (flooded);
    HERD_CHECK_INT (herd_msg_envelope_check (zframe_data (envelope), zframe_size (envelope),
                                             "herd", reason, sizeof (reason)), 0);
    zmsg_next (flooded);
    zframe_t *sender = zmsg_next (flooded);
    HERD_CHECK (zframe_streq (sender, "A"));
    HERD_CHECK_INT (zframe_size (zmsg_next (flooded)), HERD_MSG_META_SIZE);
    zmsg_destroy (&flooded);
    while ((flooded = s_recv_bounded (test->b_sub, 100)))
        zmsg_destroy (&flooded);
}

//  More records than fit one message go out in several, and each message's
//  sequence number counts exactly the records it carries.
static void
s_test_flood_many (s_test_t *test)
{
    size_t batch_size = 2000 * 80;
    char *batch = (char *) zmalloc (batch_size);
    size_t used = 0;
    for (int i = 0; i < 2000; i++)
        used += (size_t) snprintf (batch + used, batch_size - used, "%sAT A +0.100000000 "
                                   "many-%04d.example.org +34.068930-118.445127 %d",
                                   i ? "\n" : "", i, 1000 + i);
    s_update_mem (test->gateway, batch, used);
    free (batch);
    size_t seen = 0, messages = 0;
    uint64_t last_seq = 0;
    zmsg_t *flooded;
    while (seen < 2000 && (flooded = s_recv_bounded (test->b_sub, 5000))) {
        HERD_CHECK (zframe_streq (zmsg_first (flooded), HERD_MSG_TOPIC_UPDATE));
        zmsg_next (flooded);
        zframe_t *records = zmsg_next (flooded);
        HERD_CHECK (zframe_size (records) <= 64 * 1024);
        size_t count = 1;
        for (size_t i = 0; i < zframe_size (records); i++)
            count += zframe_data (records)[i] == '\n';
        zmsg_next (flooded);
        uint64_t seq = herd_msg_get_u64 (zframe_data (zmsg_next (flooded)) + 8);
        if (messages > 0)
            HERD_CHECK (seq == last_seq + count);
        last_seq = seq;
        seen += count;
        messages++;
        zmsg_destroy (&flooded);
    }
    HERD_CHECK_INT (seen, 2000);
    HERD_CHECK (messages >= 2);
}

//  Publish line as B until client shows at A (B's link may still be coming
//  up); check it is there.
static void
s_test_publish_until (s_test_t *test, const char *line, uint64_t seq, const char *client,
                      const char *expected)
{
    char *found = NULL;
    for (int i = 0; i < 100 && !found; i++) {
        s_publish_as_b (test->b_pub, line, seq);
        found = s_lookup (test->gateway, client);
        if (!found)
            zclock_sleep (20);
    }
    HERD_CHECK_STR (found, expected);
    zstr_free (&found);
}

//  Neighbour B's updates are applied; malformed ones, and another herd's
//  or wire version's, are dropped.
static void
s_test_neighbour (s_test_t *test)
{
    const char *from_b = "AT B -0.500000000 plum +10-20 1700000000";
    s_test_publish_until (test, from_b, 1, "plum", from_b);

    //  Malformed bus input is dropped, never applied
    const char *ours = "\x02herd";
    zsock_t *b_pub = test->b_pub;
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, ours, "AT B +1 evil", "B", "0123456789abcdef",
                NULL);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, ours, "AT B +0.000000000 evil +1+1 1", NULL);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, ours, "AT B +0.000000000 evil +1+1 1", "Nobody",
                "0123456789abcdef", NULL);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, NULL);
    //  ...and so is another herd's, or another wire version's, well formed
    //  as it may be: the old wire's ["U", records, sender, meta] among them
    s_publish_as (b_pub, "AT B +0.000000000 stranger +1+1 1", 3, "other", HERD_MSG_WIRE_VERSION);
    s_publish_as (b_pub, "AT B +0.000000000 stranger +1+1 1", 3, "herd", 3);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, "AT B +0.000000000 stranger +1+1 1", "B",
                "0123456789abcdef", NULL);
    //  A later good message proves the bad ones were consumed first
    const char *marker = "AT B +0.000000000 marker +1+1 1";
    s_test_publish_until (test, marker, 2, "marker", marker);
    HERD_CHECK (s_lookup (test->gateway, "evil") == NULL);
    HERD_CHECK (s_lookup (test->gateway, "stranger") == NULL);

    //  A neighbour's update may carry several records
    s_test_publish_until (test, "AT B +0.000000000 pear +1+1 1\nAT B +0.000000000 lime +1+1 1",
                          4, "lime", "AT B +0.000000000 lime +1+1 1");
    s_expect (test->gateway, "pear", "AT B +0.000000000 pear +1+1 1");

    //  A malformed gateway message is dropped; the bus keeps serving
    zstr_sendx (test->gateway, "BOGUS", NULL);
    s_expect (test->gateway, "kiwi", s_first);
}

//  Control requests of another herd or wire version are refused, and the
//  requester is told why.
static void
s_test_refused (s_test_t *test)
{
    zsock_t *control = test->control;
    char *answer = s_control (control, HERD_MSG_DIGEST, "other", HERD_MSG_WIRE_VERSION);
    HERD_CHECK_STR (answer, "REFUSED herd 'other', ours 'herd'");
    zstr_free (&answer);
    answer = s_control (control, HERD_MSG_DIGEST, "herd", 0);
    HERD_CHECK_STR (answer, "REFUSED wire version 1 (no envelope), ours 2");
    zstr_free (&answer);
    answer = s_control (control, HERD_MSG_ICANHAZ, "herd", 1);
    HERD_CHECK_STR (answer, "REFUSED wire version 1, ours 2");
    zstr_free (&answer);
    answer = s_control (control, HERD_MSG_DIGEST, "herd", HERD_MSG_WIRE_VERSION);
    HERD_CHECK_STR (answer, "DIGEST A");
    zstr_free (&answer);
}

//  Send ICANHAZ with meta (instance, since) and a zero digest.
static void
s_icanhaz (zsock_t *control, const byte *meta)
{
    byte zeros[16] = {0};
    zmsg_t *ask = zmsg_new ();
    zmsg_addstr (ask, HERD_MSG_ICANHAZ);
    s_add_envelope (ask, "herd", HERD_MSG_WIRE_VERSION);
    zmsg_addmem (ask, meta ? meta : zeros, HERD_MSG_META_SIZE);
    zmsg_addmem (ask, zeros, 16);
    zmsg_send (&ask, control);
}

//  Read a catch-up to its KTHXBAI, whose meta goes to meta; returns how
//  many records came.
static size_t
s_read_catchup (zsock_t *control, byte *meta)
{
    size_t records = 0;
    zmsg_t *reply;
    char reason[HERD_MSG_REASON_MAX];
    while ((reply = s_recv_bounded (control, 5000))) {
        char *kind = zmsg_popstr (reply);
        zframe_t *envelope = zmsg_pop (reply);
        HERD_CHECK_INT (herd_msg_envelope_check (zframe_data (envelope), zframe_size (envelope),
                                                 "herd", reason, sizeof (reason)), 0);
        zframe_destroy (&envelope);
        bool done = streq (kind, HERD_MSG_KTHXBAI);
        if (done)
            memcpy (meta, zframe_data (zmsg_first (reply)), HERD_MSG_META_SIZE);
        else
            records += zmsg_size (reply);
        zstr_free (&kind);
        zmsg_destroy (&reply);
        if (done)
            break;
    }
    return records;
}

//  Catch-up: a requester with an empty table gets every record; one that
//  knows our instance gets only what changed since.
static void
s_test_catchup (s_test_t *test)
{
    char *digest = s_digest (test->control);
    s_icanhaz (test->control, NULL);
    byte meta[HERD_MSG_META_SIZE];
    size_t records = s_read_catchup (test->control, meta);
    HERD_CHECK (records >= 4);      //  kiwi, plum, marker, flood...
    HERD_CHECK_INT (records, atoi (digest));
    zstr_free (&digest);

    s_update (test->gateway, "AT A +0.100000000 late +1+1 5");
    s_expect (test->gateway, "late", "AT A +0.100000000 late +1+1 5");
    s_icanhaz (test->control, meta);
    zmsg_t *reply = s_recv_bounded (test->control, 5000);
    HERD_CHECK (reply);
    char *kind = zmsg_popstr (reply);
    HERD_CHECK_STR (kind, HERD_MSG_KVSYNC);
    HERD_CHECK_INT (zmsg_size (reply), 2);
    zmsg_first (reply);
    HERD_CHECK (zframe_streq (zmsg_next (reply), "AT A +0.100000000 late +1+1 5"));
    zstr_free (&kind);
    zmsg_destroy (&reply);
    reply = s_recv_bounded (test->control, 5000);
    kind = zmsg_popstr (reply);
    HERD_CHECK_STR (kind, HERD_MSG_KTHXBAI);
    zstr_free (&kind);
    zmsg_destroy (&reply);
}

//  The journal brings the table back after a restart.
static void
s_test_restart (s_test_t *test)
{
    char *digest = s_digest (test->control);
    zactor_destroy (&test->bus);
    //  A new inproc endpoint: libzmq's reaper releases the old one a moment
    //  after the actor ends
    test->args.endpoint = "inproc://bus-test-2";
    //  ...and its TCP ports too: retry the start a few times (bounded)
    int started = -1;
    for (int attempt = 0; attempt < 100 && started != 0; attempt++) {
        test->bus = zactor_new (herd_bus_actor, &test->args);
        started = zsock_wait (test->bus);
        if (started != 0) {
            zactor_destroy (&test->bus);
            zclock_sleep (20);
        }
    }
    HERD_CHECK_INT (started, 0);
    if (test->verbose)
        zstr_send (test->bus, "VERBOSE");
    char *again = s_digest (test->control);
    HERD_CHECK_STR (again, digest);
    zstr_free (&again);
    zstr_free (&digest);
    //  inproc:// does not reconnect to a new binder: the gateway would be
    //  restarted with its bus
    zsock_destroy (&test->gateway);
    test->gateway = zsock_new_dealer (">inproc://bus-test-2");
    s_expect (test->gateway, "kiwi", s_first);
}

//  Stop everything; the log shows the link to B and the dropped messages.
static void
s_test_stop (s_test_t *test)
{
    zactor_destroy (&test->bus);
    zsock_destroy (&test->gateway);
    zsock_destroy (&test->control);
    zsock_destroy (&test->b_sub);
    zsock_destroy (&test->b_pub);
    herd_log_destroy (&test->log);

    FILE *file = fopen (test->log_path, "r");
    HERD_CHECK (file);
    char *text_log = (char *) zmalloc (1 << 16);
    size_t got = fread (text_log, 1, (1 << 16) - 1, file);
    text_log[got] = 0;
    fclose (file);
    HERD_CHECK_CONTAINS (text_log, "bus link up B tcp://127.0.0.1:");
    HERD_CHECK_CONTAINS (text_log, "dropped a malformed update from B");
    HERD_CHECK_CONTAINS (text_log, "dropped a malformed bus message of 3 frames");
    HERD_CHECK_CONTAINS (text_log, "refused update from 'B': herd 'other', ours 'herd'");
    HERD_CHECK_CONTAINS (text_log, "refused update from 'B': wire version 3, ours 2");
    HERD_CHECK_CONTAINS (text_log, "refused update from 'B': wire version 1 (no envelope), "
                                   "ours 2");
    HERD_CHECK_CONTAINS (text_log, "refused DIGEST request from '127.0.0.1': herd 'other'");
    HERD_CHECK_CONTAINS (text_log, "journal loaded: ");
    free (text_log);
    herd_config_destroy (&test->config);
    zsys_dir_delete ("%s/A", test->dir);
    char path[128];
    snprintf (path, sizeof (path), "%s/A/journal", test->dir);
    unlink (path);
    snprintf (path, sizeof (path), "%s/A", test->dir);
    rmdir (path);
    unlink (test->log_path);
    rmdir (test->dir);
}

void
herd_bus_test (bool verbose)
{
    s_test_t test;
    s_test_start (&test, verbose);
    s_test_gateway (&test);
    s_test_flood_first (&test);
    s_test_flood_many (&test);
    s_test_neighbour (&test);
    s_test_refused (&test);
    s_test_catchup (&test);
    s_test_restart (&test);
    s_test_stop (&test);
}
