//  herd_bus_test.c - the bus's self-test: the actor against a gateway, a
//  neighbour and a control client played by the test. In its own file
//  because it drives the actor from outside, through herd_bus.h and the
//  messages of herd_msg.h only: every message it sends is encoded, and
//  every one it receives decoded, by the codec.

#include "herd_bus.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"
#include "../common/herd_record.h"

#include <inttypes.h>

//  Receive with a bounded wait; NULL on time-out.
static zmsg_t *
s_recv_bounded (zsock_t *sock, int msecs)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    zmsg_t *msg = zpoller_wait (poller, msecs) ? zmsg_recv (sock) : NULL;
    zpoller_destroy (&poller);
    return msg;
}

//  Receive a message of channel with a bounded wait and decode it into d,
//  checking our herd's envelope; it must decode, and be id unless id is 0.
//  Returns it (d points into it; the caller destroys it), NULL on time-out.
static zmsg_t *
s_recv_msg (zsock_t *sock, int msecs, herd_msg_channel_t channel, herd_msg_id_t id,
            herd_msg_t *d)
{
    zmsg_t *msg = s_recv_bounded (sock, msecs);
    char reason[HERD_MSG_REASON_MAX];
    int rc = msg ? herd_msg_decode (d, msg, channel, "herd", reason, sizeof (reason)) : 0;
    HERD_CHECK_STR (rc ? reason : "", "");         //  it decodes, or says why not
    HERD_CHECK (!msg || !id || d->id == id);
    return msg;
}

//  Ask the bus for client; returns the stored line or NULL for NONE.
static char *
s_lookup (zsock_t *dealer, const char *client)
{
    herd_msg_t lookup = {.id = HERD_MSG_ID_LOOKUP, .reqid = herd_msg_str ("req1"),
                         .client = herd_msg_str (client)};
    HERD_CHECK_INT (herd_msg_send (&lookup, dealer, 0), 0);
    herd_msg_t d;
    zmsg_t *reply = s_recv_msg (dealer, 5000, HERD_MSG_TO_GATEWAY, 0, &d);
    HERD_CHECK (reply);
    HERD_CHECK (herd_msg_bytes_eq (d.reqid, "req1"));
    HERD_CHECK (d.id == HERD_MSG_ID_FOUND || d.id == HERD_MSG_ID_NONE);
    char *line = d.id == HERD_MSG_ID_FOUND
                     ? zsys_sprintf ("%.*s", (int) d.line.size, (const char *) d.line.data)
                     : NULL;
    zmsg_destroy (&reply);
    return line;
}

//  Hand records to the bus as the gateway does, and wait until the bus says
//  they are stored: STORED first = last = our batch n.
static void
s_update_mem (zsock_t *dealer, const char *records, size_t size)
{
    static uint64_t batch = 0;
    herd_msg_t update = {.id = HERD_MSG_ID_UPDATE, .batch = ++batch, .records = {records, size}};
    HERD_CHECK_INT (herd_msg_send (&update, dealer, 0), 0);
    herd_msg_t d;
    zmsg_t *reply = s_recv_msg (dealer, 5000, HERD_MSG_TO_GATEWAY, HERD_MSG_ID_STORED, &d);
    HERD_CHECK (reply);
    HERD_CHECK (d.first == batch && d.last == batch);
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

//  A message from the codec framed as another wire version would send it,
//  on purpose: version 0 drops its envelope (the wire before envelopes),
//  another writes that version byte into it.
static zmsg_t *
s_as_version (zmsg_t *msg, byte version)
{
    zmsg_first (msg);
    zframe_t *envelope = zmsg_next (msg);
    if (version)
        zframe_data (envelope)[0] = version;
    else {
        zmsg_remove (msg, envelope);
        zframe_destroy (&envelope);
    }
    return msg;
}

//  An update as a neighbour of herd (instance 42) would publish it.
static zmsg_t *
s_update_of (const char *sender, const char *line, uint64_t seq, const char *herd)
{
    return herd_msg_encode (&(herd_msg_t){.id = HERD_MSG_ID_U, .herd = herd,
                                          .records = herd_msg_str (line),
                                          .sender = herd_msg_str (sender), .instance = 42,
                                          .seq = seq});
}

//  Publish an update as neighbour B of herd "herd" would.
static void
s_publish_as_b (zsock_t *pub, const char *line, uint64_t seq)
{
    zmsg_t *msg = s_update_of ("B", line, seq, "herd");
    zmsg_send (&msg, pub);
}

//  Send a control request and return the reply as "COMMAND REASON-OR-NAME".
static char *
s_control (zsock_t *control, zmsg_t *request)
{
    zmsg_send (&request, control);
    herd_msg_t d;
    zmsg_t *reply = s_recv_msg (control, 5000, HERD_MSG_CONTROL, 0, &d);
    HERD_CHECK (reply);
    herd_msg_bytes_t what = d.id == HERD_MSG_ID_REFUSED        ? d.reason
                            : d.id == HERD_MSG_ID_DIGEST_REPLY ? d.name
                                                               : herd_msg_str ("");
    char *result = zsys_sprintf ("%s %.*s", herd_msg_command (d.id), (int) what.size,
                                 (const char *) what.data);
    zmsg_destroy (&reply);
    return result;
}

//  Ask a bus's sync socket for its digest; returns "count digest". Asks
//  again when no answer comes (a request can be lost on a connection that
//  is closing when the bus restarts).
static char *
s_digest (zsock_t *control)
{
    herd_msg_t d;
    zmsg_t *reply = NULL;
    for (int attempt = 0; attempt < 20 && !reply; attempt++) {
        herd_msg_t digest = {.id = HERD_MSG_ID_DIGEST, .herd = "herd"};
        HERD_CHECK_INT (herd_msg_send (&digest, control, 0), 0);
        reply = s_recv_msg (control, 250, HERD_MSG_CONTROL, HERD_MSG_ID_DIGEST_REPLY, &d);
    }
    HERD_CHECK (reply);
    HERD_CHECK (herd_msg_bytes_eq (d.name, "A"));
    char *result = zsys_sprintf ("%" PRIu64 " %016" PRIx64, d.count, d.digest);
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
    herd_msg_t d;
    for (int i = 0; i < 100 && !flooded; i++) {
        char update[128];
        snprintf (update, sizeof (update), "AT A +0.100000000 flood +1+1 %d", 1000 + i);
        s_update (test->gateway, update);
        flooded = s_recv_msg (test->b_sub, 100, HERD_MSG_FLOOD, HERD_MSG_ID_U, &d);
    }
    HERD_CHECK (flooded);
    HERD_CHECK (herd_msg_bytes_eq (d.sender, "A"));
    HERD_CHECK (d.records.size > 18 && memcmp (d.records.data, "AT A +0.100000000 ", 18) == 0);
    HERD_CHECK (d.seq >= 1);
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
    herd_msg_t d;
    while (seen < 2000
           && (flooded = s_recv_msg (test->b_sub, 5000, HERD_MSG_FLOOD, HERD_MSG_ID_U, &d))) {
        HERD_CHECK (d.records.size <= 64 * 1024);
        size_t count = 1;
        for (size_t i = 0; i < d.records.size; i++)
            count += ((const char *) d.records.data)[i] == '\n';
        if (messages > 0)
            HERD_CHECK (d.seq == last_seq + count);
        last_seq = d.seq;
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

    //  Malformed bus input is dropped, never applied: a malformed record, a
    //  sender that is no neighbour; and, raw frames on purpose, an update
    //  without its meta frame and one of its command frame alone
    const char *evil = "AT B +0.000000000 evil +1+1 1";
    zsock_t *b_pub = test->b_pub;
    zmsg_t *dropped[] = {s_update_of ("B", "AT B +1 evil", 1, "herd"),
                         s_update_of ("Nobody", evil, 1, "herd")};
    for (size_t i = 0; i < sizeof (dropped) / sizeof (dropped[0]); i++)
        zmsg_send (&dropped[i], b_pub);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, "\x02herd", evil, NULL);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, NULL);
    //  ...and so is another herd's, or another wire version's, well formed
    //  as it may be: the old wire's ["U", records, sender, meta] among them
    const char *stranger = "AT B +0.000000000 stranger +1+1 1";
    zmsg_t *refused[] = {s_update_of ("B", stranger, 3, "other"),
                         s_as_version (s_update_of ("B", stranger, 3, "herd"), 3),
                         s_as_version (s_update_of ("B", stranger, 3, "herd"), 0)};
    for (size_t i = 0; i < sizeof (refused) / sizeof (refused[0]); i++)
        zmsg_send (&refused[i], b_pub);
    //  A later good message proves the bad ones were consumed first
    const char *marker = "AT B +0.000000000 marker +1+1 1";
    s_test_publish_until (test, marker, 2, "marker", marker);
    HERD_CHECK (s_lookup (test->gateway, "evil") == NULL);
    HERD_CHECK (s_lookup (test->gateway, "stranger") == NULL);

    //  A neighbour's update may carry several records
    s_test_publish_until (test, "AT B +0.000000000 pear +1+1 1\nAT B +0.000000000 lime +1+1 1",
                          4, "lime", "AT B +0.000000000 lime +1+1 1");
    s_expect (test->gateway, "pear", "AT B +0.000000000 pear +1+1 1");

    //  A malformed gateway message (raw on purpose) is dropped; the bus
    //  keeps serving
    zstr_sendx (test->gateway, "BOGUS", NULL);
    s_expect (test->gateway, "kiwi", s_first);
}

//  Control requests of another herd or wire version are refused, and the
//  requester is told why.
static void
s_test_refused (s_test_t *test)
{
    zsock_t *control = test->control;
    herd_msg_t digest = {.id = HERD_MSG_ID_DIGEST, .herd = "herd"};
    herd_msg_t icanhaz = {.id = HERD_MSG_ID_ICANHAZ, .herd = "herd"};
    herd_msg_t other = {.id = HERD_MSG_ID_DIGEST, .herd = "other"};
    char *answer = s_control (control, herd_msg_encode (&other));
    HERD_CHECK_STR (answer, "REFUSED herd 'other', ours 'herd'");
    zstr_free (&answer);
    answer = s_control (control, s_as_version (herd_msg_encode (&digest), 0));
    HERD_CHECK_STR (answer, "REFUSED wire version 1 (no envelope), ours 2");
    zstr_free (&answer);
    answer = s_control (control, s_as_version (herd_msg_encode (&icanhaz), 1));
    HERD_CHECK_STR (answer, "REFUSED wire version 1, ours 2");
    zstr_free (&answer);
    answer = s_control (control, herd_msg_encode (&digest));
    HERD_CHECK_STR (answer, "DIGEST A");
    zstr_free (&answer);
}

//  Send ICANHAZ with meta (instance, since) and a zero digest.
static void
s_icanhaz (zsock_t *control, const uint64_t *meta)
{
    herd_msg_t ask = {.id = HERD_MSG_ID_ICANHAZ, .herd = "herd", .instance = meta[0],
                      .seq = meta[1]};
    HERD_CHECK_INT (herd_msg_send (&ask, control, 0), 0);
}

//  Read a catch-up to its KTHXBAI, whose meta goes to meta; returns how
//  many records came.
static size_t
s_read_catchup (zsock_t *control, uint64_t *meta)
{
    size_t records = 0;
    herd_msg_t d;
    herd_msg_bytes_t line;
    zmsg_t *reply;
    while ((reply = s_recv_msg (control, 5000, HERD_MSG_CATCHUP, 0, &d))) {
        HERD_CHECK (d.id == HERD_MSG_ID_KVSYNC || d.id == HERD_MSG_ID_KTHXBAI);
        bool done = d.id == HERD_MSG_ID_KTHXBAI;
        meta[0] = d.instance;
        meta[1] = d.seq;
        while (herd_msg_next_line (&d, &line))
            records++;
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
    uint64_t meta[2] = {0, 0};
    s_icanhaz (test->control, meta);
    size_t records = s_read_catchup (test->control, meta);
    HERD_CHECK (records >= 4);      //  kiwi, plum, marker, flood...
    HERD_CHECK_INT (records, atoi (digest));
    HERD_CHECK (meta[0] != 0 && meta[1] != 0);
    zstr_free (&digest);

    const char *late = "AT A +0.100000000 late +1+1 5";
    s_update (test->gateway, late);
    s_expect (test->gateway, "late", late);
    s_icanhaz (test->control, meta);
    herd_msg_t d;
    herd_msg_bytes_t line;
    zmsg_t *reply = s_recv_msg (test->control, 5000, HERD_MSG_CATCHUP, HERD_MSG_ID_KVSYNC, &d);
    HERD_CHECK (reply);
    HERD_CHECK (herd_msg_next_line (&d, &line) && herd_msg_bytes_eq (line, late));
    HERD_CHECK (!herd_msg_next_line (&d, &line));
    zmsg_destroy (&reply);
    reply = s_recv_msg (test->control, 5000, HERD_MSG_CATCHUP, HERD_MSG_ID_KTHXBAI, &d);
    HERD_CHECK (reply);
    HERD_CHECK (d.instance == meta[0] && d.seq == meta[1] + 1);
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
    HERD_CHECK_CONTAINS (text_log, "dropped a malformed bus message of 5 frames");     //  Nobody
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
