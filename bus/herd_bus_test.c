//  herd_bus_test.c - the bus's self-test: the actor against a gateway, a
//  neighbour and a control client played by the test. In its own file
//  because it drives the actor from outside, through herd_bus.h and the
//  messages of herd_msg.h only.

#include "herd_bus.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"
#include "../common/herd_record.h"


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
                                   "inproc://bus-test", test->log, NULL};
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
