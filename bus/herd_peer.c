//  herd_peer.c - what a bus knows of one neighbour (see herd_peer.h).

#include "herd_peer.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"

#define HERD_PEER_SYNC_RETRY  5000  //  ms a catch-up may go without a message before it is
                                    //  given up: its connection rebuilt, and asked again
#define HERD_PEER_HANDSHAKE   3000  //  ms a connection may take for its ZMTP handshake
#define HERD_PEER_BACKOFF_MIN 250   //  ms before a peer's connection is rebuilt, doubling...
#define HERD_PEER_BACKOFF_MAX 4000  //  ...up to this while it keeps failing

struct _herd_peer_t {
    const herd_peer_context_t *context;
    const herd_node_t *node;
    zsock_t *sync;                  //  DEALER to the neighbour's sync ROUTER
    bool linked;                    //  subscription wanted (LINK up/down)
    bool up;                        //  handshake done, not disconnected since
    bool syncing;                   //  an ICANHAZ is unanswered
    bool deferred;                  //  a full catch-up waits for another
    int64_t sync_started;           //  when, monotonic ms
    uint64_t instance;              //  the neighbour's instance we follow
    uint64_t seq;                   //  its sequence number we have up to
    int64_t sync_heard;             //  last catch-up message from it, monotonic ms
    size_t sync_records;            //  records received in this catch-up
    size_t sync_bytes;
    bool retry;                     //  an ICANHAZ could not be sent: send it when we can
    int64_t rebuild_at;             //  sync DEALER: not rebuilt again before, monotonic ms
    int64_t backoff;                //  ...and the wait after the next rebuild
    bool sub_dead;                  //  SUB connection refused for good: connect it again...
    int64_t sub_retry_at;           //  ...at this time
    int64_t sub_backoff;
    char serverkey[41];             //  its public CURVE key (Z85), when CURVE is on
    bool refused;                   //  it refused our last catch-up request (REFUSED)
};

//  The next back-off after backoff: the least, then doubling to the most.
static int64_t
s_backoff (int64_t backoff)
{
    backoff = backoff ? backoff * 2 : HERD_PEER_BACKOFF_MIN;
    return backoff > HERD_PEER_BACKOFF_MAX ? HERD_PEER_BACKOFF_MAX : backoff;
}

//  CURVE client side towards the neighbour: our key, and the key it must
//  prove.
static void
s_secure (herd_peer_t *self, zsock_t *sock)
{
    if (!self->context->cert)
        return;
    zcert_apply (self->context->cert, sock);
    zsock_set_curve_serverkey (sock, self->serverkey);
}

//  Connect the SUB to the neighbour's PUB. libzmq reads the socket's
//  commands on connect and disconnect, which can take its ZMQ_FD's edge:
//  the bus's poller is told (herd_poller.h).
static int
s_connect (herd_peer_t *self)
{
    s_secure (self, self->context->sub);    //  its key for this connect
    int rc = zsock_connect (self->context->sub, "%s", self->node->bus);
    herd_poller_touch (self->context->poller, self->context->sub);
    return rc;
}

//  Open the DEALER to the neighbour's sync ROUTER, a new socket each time:
//  a link that failed is rebuilt rather than waited on.
static void
s_open_sync (herd_peer_t *self)
{
    self->sync = zsock_new (ZMQ_DEALER);
    assert (self->sync);
    s_secure (self, self->sync);
    zsock_set_rcvhwm (self->sync, 0);
    zsock_set_rcvtimeo (self->sync, 0);
    zsock_set_sndtimeo (self->sync, 0);
    //  ICANHAZs only, one at a time: while connecting, a few wait for it
    zsock_set_sndhwm (self->sync, 16);
    zsock_set_maxmsgsize (self->sync, self->context->frame_max);
    zsock_set_handshake_ivl (self->sync, HERD_PEER_HANDSHAKE);
    zsock_set_heartbeat_ivl (self->sync, 1000);
    zsock_set_heartbeat_timeout (self->sync, 3000);
    zsock_set_connect_timeout (self->sync, 1000);
    zsock_set_reconnect_ivl_max (self->sync, 1000);
    zsock_connect (self->sync, "%s", self->node->sync);
    herd_poller_add (self->context->poller, self->sync, false);
}

herd_peer_t *
herd_peer_new (const herd_peer_context_t *context, const herd_node_t *node)
{
    herd_peer_t *self = (herd_peer_t *) zmalloc (sizeof (herd_peer_t));
    self->context = context;
    self->node = node;
    self->linked = true;
    if (context->cert) {
        zcert_t *public = zcert_load (node->cert);
        if (public) {
            snprintf (self->serverkey, sizeof (self->serverkey), "%s", zcert_public_txt (public));
            zcert_destroy (&public);
        }
    }
    if (s_connect (self) == -1) {
        herd_log_error (context->log, "bus", "cannot connect to %s at %s: %s", node->name,
                        node->bus, zmq_strerror (zmq_errno ()));
        free (self);
        return NULL;
    }
    if (node->sync)
        s_open_sync (self);
    return self;
}

void
herd_peer_destroy (herd_peer_t **self_p)
{
    herd_peer_t *self = *self_p;
    if (!self)
        return;
    if (self->sync) {
        herd_poller_remove (self->context->poller, self->sync);
        zsock_destroy (&self->sync);
    }
    free (self);
    *self_p = NULL;
}

const herd_node_t *
herd_peer_node (herd_peer_t *self)
{
    return self->node;
}

void
herd_peer_set_node (herd_peer_t *self, const herd_node_t *node)
{
    self->node = node;
}

zsock_t *
herd_peer_sync (herd_peer_t *self)
{
    return self->sync;
}

zmsg_t *
herd_peer_recv (herd_peer_t *self)
{
    zmsg_t *msg = zmsg_recv (self->sync);
    if (msg)
        self->sync_heard = zclock_mono ();
    return msg;
}

const char *
herd_peer_state (herd_peer_t *self)
{
    return self->refused ? "refused" : self->up ? "up" : "down";
}

//  Disconnect the SUB from the neighbour, after the bus has read a message
//  a poll may hold half of (herd_peer_context_t.settle)
static void
s_disconnect (herd_peer_t *self)
{
    if (self->context->settle)
        self->context->settle (self->context->settle_arg);
    zsock_disconnect (self->context->sub, "%s", self->node->bus);
    herd_poller_touch (self->context->poller, self->context->sub);
}

bool
herd_peer_link (herd_peer_t *self, bool up)
{
    if (up == self->linked)
        return false;
    if (up)
        s_connect (self);
    else {
        s_disconnect (self);
        self->up = false;
        self->sub_dead = false;
        self->retry = false;
        self->syncing = false;
    }
    self->linked = up;
    return true;
}

void
herd_peer_unlink (herd_peer_t *self)
{
    if (self->linked)
        s_disconnect (self);
}

void
herd_peer_link_up (herd_peer_t *self)
{
    self->up = true;
    self->sub_backoff = 0;
    //  Subscribed first, then sync: nothing falls between the two
    if (self->syncing && zclock_mono () - self->sync_heard > HERD_PEER_SYNC_RETRY)
        self->syncing = false;      //  an old request, lost with the link
}

void
herd_peer_link_down (herd_peer_t *self)
{
    self->up = false;
}

void
herd_peer_sub_refused (herd_peer_t *self, const char *event)
{
    //  After a refused handshake libzmq never reconnects: we do, and back
    //  off while the refusals go on
    if (self->linked && !streq (event, "HANDSHAKE_FAILED_NO_DETAIL") && !self->sub_dead) {
        self->sub_backoff = s_backoff (self->sub_backoff);
        self->sub_dead = true;
        self->sub_retry_at = zclock_mono () + self->sub_backoff;
    }
}

const char *
herd_peer_track (herd_peer_t *self, uint64_t instance, uint64_t seq, size_t records)
{
    if (self->syncing)
        return NULL;                //  KTHXBAI will set where we are (or herd_peer_tend
                                    //  gives up on it)
    if (instance != self->instance)
        return self->instance ? "neighbour restarted" : "first contact";
    if (records > 0 && seq == self->seq + records)
        self->seq = seq;
    else
    if (seq > self->seq)
        return records ? "gap in stream" : "behind its heartbeat";
    return NULL;
}

bool
herd_peer_whole (herd_peer_t *self)
{
    return self->syncing && self->instance == 0;
}

bool
herd_peer_deferred (herd_peer_t *self)
{
    return self->deferred;
}

//  Replace the DEALER by a new one, unless it was rebuilt less than its
//  back-off ago. Returns true if rebuilt.
static bool
s_rebuild (herd_peer_t *self, const char *why)
{
    int64_t now = zclock_mono ();
    if (!self->sync || now < self->rebuild_at)
        return false;
    herd_poller_remove (self->context->poller, self->sync);
    zsock_destroy (&self->sync);        //  linger 0 (czmq's default): never waits
    s_open_sync (self);
    self->backoff = s_backoff (self->backoff);
    self->rebuild_at = now + self->backoff;
    self->syncing = false;
    herd_log_printf (self->context->log, "bus", "catch-up link to %s rebuilt (%s)",
                     self->node->name, why);
    return true;
}

//  Send ICANHAZ without blocking; 0, or -1 when the DEALER refused it (at
//  its first frame: then nothing was sent).
static int
s_send_icanhaz (herd_peer_t *self, uint64_t count, uint64_t digest)
{
    herd_poller_touch (self->context->poller, self->sync);     //  a send: see herd_poller.h
    return herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_ICANHAZ, .herd = self->context->herd,
                                        .instance = self->instance, .seq = self->seq,
                                        .count = count, .digest = digest},
                          self->sync, ZMQ_DONTWAIT);
}

void
herd_peer_request (herd_peer_t *self, bool busy, uint64_t count, uint64_t digest,
                   const char *why)
{
    if (!self->sync || self->syncing || !self->linked)
        return;
    //  Without a view of this neighbour we may get its whole table: take one
    //  whole table at a time, so the next asks with the digest it brought
    //  and usually gets nothing, rather than every neighbour's copy at once
    if (self->instance == 0 && busy) {
        self->deferred = true;
        return;
    }
    self->deferred = false;
    //  The DEALER queues while it connects; it refuses only when its
    //  connection is gone for good (a failed handshake) or many requests
    //  wait: then a new connection, now or after its back-off
    for (int attempt = 0; attempt < 2; attempt++) {
        self->retry = s_send_icanhaz (self, count, digest) == -1;
        if (!self->retry || !s_rebuild (self, "catch-up request refused"))
            break;
    }
    if (self->retry)
        return;                 //  herd_peer_tend asks again
    self->syncing = true;
    self->sync_started = self->sync_heard = zclock_mono ();
    self->sync_records = self->sync_bytes = 0;
    if (!self->refused)         //  asking again a neighbour that refuses us: quietly
        herd_log_printf (self->context->log, "bus",
                         "catch-up from %s requested (%s; since %" PRIu64 ")", self->node->name,
                         why, self->instance ? self->seq : 0);
}

void
herd_peer_received (herd_peer_t *self, size_t size)
{
    self->sync_records++;
    self->sync_bytes += size;
}

void
herd_peer_refused (herd_peer_t *self)
{
    //  Asked again after a back-off, as a catch-up that failed
    self->refused = true;
    self->syncing = false;
    self->backoff = s_backoff (self->backoff);
    self->rebuild_at = zclock_mono () + self->backoff;
    self->retry = true;
}

void
herd_peer_caught_up (herd_peer_t *self, const uint64_t *meta, char *detail, size_t detail_size)
{
    if (meta) {
        self->instance = meta[0];
        self->seq = meta[1];
    }
    int64_t took = zclock_mono () - self->sync_started;
    snprintf (detail, detail_size, "%zu records, %zu bytes in %" PRId64 " ms",
              self->sync_records, self->sync_bytes, took);
    herd_log_printf (self->context->log, "bus", "caught up with %s: %s", self->node->name,
                     detail);
    self->syncing = false;
    self->refused = false;
    self->backoff = 0;          //  the link works: rebuild at once if it fails again
}

bool
herd_peer_tend (herd_peer_t *self)
{
    int64_t now = zclock_mono ();
    if (self->syncing && now - self->sync_heard > HERD_PEER_SYNC_RETRY) {
        herd_log_warning (self->context->log, "bus", "catch-up from %s unanswered for %d ms",
                          self->node->name, HERD_PEER_SYNC_RETRY);
        self->syncing = false;
        self->retry = self->up;
        s_rebuild (self, "catch-up unanswered");
    }
    bool ask = self->retry && now >= self->rebuild_at;
    if (self->sub_dead && self->linked && now >= self->sub_retry_at) {
        //  Connect the SUB to the neighbour's PUB again after libzmq gave up
        s_disconnect (self);
        s_connect (self);
        self->sub_dead = false;
        herd_log_printf (self->context->log, "bus", "link to %s connecting again",
                         self->node->name);
    }
    return ask;
}

//  -------------------------------------------------------------------------
//  Self test

//  Following a neighbour's stream: where it asks to catch up, and where
//  it follows on.
static void
s_test_track (herd_peer_t *peer)
{
    char detail[96];
    HERD_CHECK_STR (herd_peer_track (peer, 42, 7, 1), "first contact");
    herd_peer_caught_up (peer, (uint64_t[]){42, 10}, detail, sizeof (detail));
    HERD_CHECK (strncmp (detail, "0 records, 0 bytes in ", 22) == 0);
    HERD_CHECK (herd_peer_track (peer, 42, 11, 1) == NULL);
    HERD_CHECK (herd_peer_track (peer, 42, 13, 2) == NULL);
    HERD_CHECK (herd_peer_track (peer, 42, 13, 0) == NULL);    //  heartbeat
    HERD_CHECK (herd_peer_track (peer, 42, 12, 0) == NULL);    //  behind us
    HERD_CHECK_STR (herd_peer_track (peer, 42, 15, 1), "gap in stream");
    HERD_CHECK_STR (herd_peer_track (peer, 42, 14, 0), "behind its heartbeat");
    HERD_CHECK_STR (herd_peer_track (peer, 43, 1, 1), "neighbour restarted");
    //  A malformed KTHXBAI keeps where we were
    herd_peer_caught_up (peer, NULL, detail, sizeof (detail));
    HERD_CHECK (herd_peer_track (peer, 42, 14, 1) == NULL);
}

//  Requests: one at a time, deferred behind a whole table, counted, ended
//  by KTHXBAI or a refusal.
static void
s_test_request (herd_peer_t *peer, herd_peer_t *fresh)
{
    char detail[96];
    //  One that knows nothing of its neighbour waits while another fetches
    //  a whole table; one that knows asks anyway
    HERD_CHECK (!herd_peer_whole (fresh) && !herd_peer_deferred (fresh));
    herd_peer_request (fresh, true, 0, 0, "test");
    HERD_CHECK (herd_peer_deferred (fresh) && !herd_peer_whole (fresh));
    herd_peer_request (fresh, false, 0, 0, "test");
    HERD_CHECK (!herd_peer_deferred (fresh) && herd_peer_whole (fresh));
    herd_peer_request (peer, true, 5, 0x1234, "gap in stream");
    HERD_CHECK (!herd_peer_deferred (peer) && !herd_peer_whole (peer));
    //  While it is out, the stream does not ask again
    HERD_CHECK (herd_peer_track (peer, 42, 99, 1) == NULL);
    herd_peer_received (peer, 10);
    herd_peer_received (peer, 20);
    herd_peer_caught_up (peer, (uint64_t[]){42, 99}, detail, sizeof (detail));
    HERD_CHECK (strncmp (detail, "2 records, 30 bytes in ", 23) == 0);
    HERD_CHECK (herd_peer_track (peer, 42, 100, 1) == NULL);

    //  Refused: its state says so until a catch-up works; asked again after
    //  a back-off, not at once
    HERD_CHECK_STR (herd_peer_state (fresh), "down");
    herd_peer_refused (fresh);
    HERD_CHECK_STR (herd_peer_state (fresh), "refused");
    HERD_CHECK (!herd_peer_whole (fresh));
    HERD_CHECK (!herd_peer_tend (fresh));
    herd_peer_caught_up (fresh, NULL, detail, sizeof (detail));
    HERD_CHECK_STR (herd_peer_state (fresh), "down");
}

//  The links: up and down from the monitor, down and up by command.
static void
s_test_links (herd_peer_t *peer)
{
    HERD_CHECK_STR (herd_peer_state (peer), "down");
    herd_peer_link_up (peer);
    HERD_CHECK_STR (herd_peer_state (peer), "up");
    herd_peer_link_down (peer);
    HERD_CHECK_STR (herd_peer_state (peer), "down");
    herd_peer_link_up (peer);
    HERD_CHECK (herd_peer_link (peer, false));
    HERD_CHECK_STR (herd_peer_state (peer), "down");
    HERD_CHECK (!herd_peer_link (peer, false));
    //  Unlinked, it asks nothing
    herd_peer_request (peer, false, 0, 0, "test");
    HERD_CHECK (!herd_peer_whole (peer));
    HERD_CHECK (herd_peer_link (peer, true));
    HERD_CHECK (!herd_peer_link (peer, true));
    herd_peer_sub_refused (peer, "HANDSHAKE_FAILED_AUTH");
    HERD_CHECK (!herd_peer_tend (peer));        //  reconnects after its back-off
}

void
herd_peer_test (bool verbose)
{
    (void) verbose;
    int ports[5];
    herd_check_free_ports (ports, 5);
    char text[512];
    snprintf (text, sizeof (text),
              "node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:%d\n"
              "    log = a.log\n"
              "node = B\n    client = 127.0.0.1:2\n    bus = tcp://127.0.0.1:%d\n"
              "    sync = tcp://127.0.0.1:%d\n    log = b.log\n"
              "node = C\n    client = 127.0.0.1:3\n    bus = tcp://127.0.0.1:%d\n"
              "    sync = tcp://127.0.0.1:%d\n    log = c.log\n"
              "edges\n    edge = A B\n    edge = A C\n",
              ports[0], ports[1], ports[2], ports[3], ports[4]);
    char *error = NULL;
    herd_config_t *config = herd_config_load_string (text, "test.cfg", &error);
    if (!config)
        fprintf (stderr, "%s\n", error);
    HERD_CHECK (config);
    char log_path[] = "/tmp/herd_peer_test_XXXXXX";
    int fd = mkstemp (log_path);
    HERD_CHECK (fd >= 0);
    close (fd);
    herd_peer_context_t context = {zsock_new (ZMQ_SUB), herd_poller_new (), NULL, config->name,
                                   65536,
                                   herd_log_new (log_path, "A"), NULL, NULL};
    //  Nothing listens at B or C: connecting is asynchronous, and requests
    //  wait in the DEALER's queue
    herd_peer_t *peer = herd_peer_new (&context, herd_config_node (config, "B"));
    herd_peer_t *fresh = herd_peer_new (&context, herd_config_node (config, "C"));
    HERD_CHECK (peer && fresh && herd_peer_sync (peer));
    HERD_CHECK_STR (herd_peer_node (peer)->name, "B");
    s_test_track (peer);
    s_test_request (peer, fresh);
    s_test_links (peer);
    herd_peer_destroy (&peer);
    HERD_CHECK (peer == NULL);
    herd_peer_destroy (&fresh);
    herd_log_destroy (&context.log);
    char *logged = NULL;
    zfile_t *file = zfile_new (NULL, log_path);
    if (zfile_input (file) == 0) {
        zchunk_t *chunk = zfile_read (file, 65536, 0);
        logged = zchunk_strdup (chunk);
        zchunk_destroy (&chunk);
    }
    zfile_destroy (&file);
    HERD_CHECK (logged);
    HERD_CHECK_CONTAINS (logged, "catch-up from C requested (test; since 0)");
    HERD_CHECK_CONTAINS (logged, "catch-up from B requested (gap in stream; since 14)");
    HERD_CHECK_CONTAINS (logged, "caught up with B: 2 records, 30 bytes in ");
    zstr_free (&logged);
    unlink (log_path);
    herd_poller_destroy (&context.poller);
    zsock_destroy (&context.sub);
    herd_config_destroy (&config);
}
