//  herd_collector.c - the node's monitoring path: every role's reports in,
//  the operator's views out.

#include "herd_collector.h"
#include "herd_monitor.h"
#include "../common/herd_actor.h"
#include "../common/herd_alive.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"
#include "../common/herd_report.h"

#include <pthread.h>

#define S_LATE_MS   1500    //  a snapshot goes out this long after the last when the bus is late
#define S_WAKE_MS   1000    //  the longest sleep: the loop proves it turns (herd_alive)
#define S_BATCH     64      //  reports taken per wake-up before the clock is looked at
#define S_FRAME_MAX 65536   //  largest report frame: a role's STATS are a few KB

typedef struct {
    zsock_t *pipe;                  //  actor command pipe
    zsock_t *pull;                  //  the roles' reports
    zpoller_t *poller;
    herd_monitor_t *monitor;        //  the PUB and HTTP views, or NULL (none configured)
    herd_log_t *log;
    int64_t published_at;           //  last snapshot, monotonic ms
    uint64_t malformed;             //  reports that were not, logged the first time
    bool terminated;
} s_self_t;

static void
s_self_destroy (s_self_t **self_p)
{
    s_self_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy (&self->poller);
    zsock_destroy (&self->pull);
    herd_monitor_destroy (&self->monitor);
    free (self);
    *self_p = NULL;
}

//  Bind the reports' PULL and the operator's views; NULL (logged) on failure.
static s_self_t *
s_self_new (zsock_t *pipe, const herd_collector_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    self->pipe = pipe;
    self->log = args->log;
    self->published_at = zclock_mono ();
    self->pull = zsock_new (ZMQ_PULL);
    assert (self->pull);
    zsock_set_maxmsgsize (self->pull, S_FRAME_MAX);
    if (zsock_bind (self->pull, "%s", args->endpoint) == -1) {
        herd_log_error (self->log, "monitor", "cannot bind %s: %s", args->endpoint,
                        zmq_strerror (zmq_errno ()));
        fprintf (stderr, "herd: %s: cannot bind %s: %s\n", args->node->name, args->endpoint,
                 zmq_strerror (zmq_errno ()));
        s_self_destroy (&self);
        return NULL;
    }
    if (args->node->monitor || args->node->metrics) {
        self->monitor = herd_monitor_new (args->node, args->journal, args->log);
        if (!self->monitor) {
            s_self_destroy (&self);
            return NULL;
        }
    }
    self->poller = zpoller_new (self->pipe, self->pull, NULL);
    return self;
}

//  Publish a snapshot of every role's latest counters.
static void
s_self_publish (s_self_t *self)
{
    herd_monitor_publish (self->monitor);
    self->published_at = zclock_mono ();
}

//  A report's text field as a C string (freed by the caller), NULL if empty.
static char *
s_text (herd_msg_bytes_t bytes)
{
    return bytes.size ? zsys_sprintf ("%.*s", (int) bytes.size, (const char *) bytes.data) : NULL;
}

//  Take one report: a role's STATS replace its counters (and, from another
//  process, say it lives); an event is published at once. The bus's STATS
//  also send the snapshot out, so its digest and links are fresh in it.
//  NULL, or what was wrong with the report.
static const char *
s_self_take (s_self_t *self, const herd_msg_t *in)
{
    char *role = s_text (in->role);
    int alive = role ? herd_alive_role (role) : -1;
    const char *wrong = NULL;
    if (alive != HERD_ALIVE_GATEWAY && alive != HERD_ALIVE_BUS && alive != HERD_ALIVE_PLACES)
        wrong = "no such role";
    else
    if (in->id == HERD_MSG_ID_REPORT_STATS) {
        cJSON *stats = cJSON_ParseWithLength (in->json.data, in->json.size);
        if (cJSON_IsObject (stats)) {
            herd_monitor_set (self->monitor, role, stats);
            if (alive == HERD_ALIVE_BUS)
                s_self_publish (self);
        }
        else {
            cJSON_Delete (stats);
            wrong = "STATS not a JSON object";
        }
    }
    else
    if (in->event.size == 0)
        wrong = "EVENT without an event";
    else {
        char *event = s_text (in->event), *peer = s_text (in->peer);
        char *detail = s_text (in->detail);
        herd_monitor_event (self->monitor, role, event, peer, detail);
        zstr_free (&event);
        zstr_free (&peer);
        zstr_free (&detail);
    }
    zstr_free (&role);
    return wrong;
}

//  Handle one report waiting on the PULL; false when none was. Only the
//  node's own roles report, so a malformed one is a bug or a stranger on
//  a split node's ipc socket: the first is logged, the rest counted.
static bool
s_self_handle_report (s_self_t *self)
{
    if (!(zsock_events (self->pull) & ZMQ_POLLIN))
        return false;
    zmsg_t *msg = zmsg_recv (self->pull);
    if (!msg)
        return false;
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX];
    const char *wrong = reason;
    if (herd_msg_decode (&in, msg, HERD_MSG_TO_MONITOR, NULL, reason, sizeof (reason)) == 0)
        wrong = s_self_take (self, &in);
    if (wrong && self->malformed++ == 0)
        herd_log_warning (self->log, "monitor", "dropped a malformed report (%s); further ones "
                          "are counted, not logged", wrong);
    zmsg_destroy (&msg);
    return true;
}

//  Handle a command on the actor pipe: nothing to reload (the collector
//  keeps no pointer into the config), so only $TERM and VERBOSE.
static void
s_self_handle_pipe (s_self_t *self)
{
    static const herd_actor_commands_t commands = {NULL, NULL, NULL};
    if (herd_actor_handle_pipe (self->pipe, &commands, self) == -1)
        self->terminated = true;
}

void
herd_collector_actor (zsock_t *pipe, void *args)
{
    pthread_setname_np (pthread_self (), "herd-monitor");     //  for top -H, perf, gdb
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (herd_collector_args_t *) args);
    if (!herd_actor_ready (pipe, self != NULL)) {
        s_self_destroy (&self);                 //  set-up failed (logged): NULL
        return;
    }
    while (!self->terminated) {
        int64_t now = zclock_mono ();
        herd_alive_beat (HERD_ALIVE_MONITOR, now);          //  this loop turns
        int64_t wait = self->published_at + S_LATE_MS - now;
        void *which = zpoller_wait (self->poller,
                                    (int) (wait < 0 ? 0 : wait > S_WAKE_MS ? S_WAKE_MS : wait));
        if (which == self->pipe)
            s_self_handle_pipe (self);
        else
        if (which == self->pull)
            for (int n = 0; n < S_BATCH && s_self_handle_report (self); n++)
                ;                   //  a burst of reports, a bounded share of the turn
        else
        if (zpoller_terminated (self->poller))
            break;
        //  The bus is late (loading its journal, stalled, or not here): the
        //  snapshot goes out anyway, its liveness fresh
        if (zclock_mono () - self->published_at >= S_LATE_MS)
            s_self_publish (self);
    }
    s_self_destroy (&self);
}

//  -------------------------------------------------------------------------
//  Self test

#define S_TEST_PULL    "inproc://herd-collector-test"
#define S_TEST_MONITOR "inproc://herd-collector-test-monitor"

//  The next message on the test's SUB of kind ("STATS" or "EVENT"), its
//  JSON parsed; others passed over. Fails after 5 s.
static cJSON *
s_test_next (zsock_t *sub, const char *kind)
{
    int64_t deadline = zclock_mono () + 5000;
    while (zclock_mono () < deadline) {
        zsock_set_rcvtimeo (sub, 100);
        zmsg_t *msg = zmsg_recv (sub);
        if (!msg)
            continue;
        herd_msg_t in;
        char reason[HERD_MSG_REASON_MAX];
        HERD_CHECK_INT (herd_msg_decode (&in, msg, HERD_MSG_MONITOR, NULL, reason,
                                         sizeof (reason)), 0);
        HERD_CHECK (herd_msg_bytes_eq (in.name, "Hill"));
        cJSON *json = streq (herd_msg_command (in.id), kind)
                        ? cJSON_ParseWithLength (in.json.data, in.json.size)
                        : NULL;
        zmsg_destroy (&msg);
        if (json)
            return json;
    }
    HERD_CHECK (!"a monitor message within 5 s");
    return NULL;
}

//  A number in a role's object of a snapshot, or -1.
static double
s_test_number (const cJSON *snapshot, const char *role, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (
        cJSON_GetObjectItemCaseSensitive (snapshot, role), name);
    return cJSON_IsNumber (item) ? item->valuedouble : -1;
}

void
herd_collector_test (bool verbose)
{
    if (verbose)
        printf (" * herd_collector: ");
    herd_node_t node = {.name = "Hill", .monitor = S_TEST_MONITOR};
    herd_collector_args_t args = {&node, S_TEST_PULL, "HERDJ009", NULL};
    zactor_t *collector = zactor_new (herd_collector_actor, &args);
    HERD_CHECK (collector && zsock_wait (collector) == 0);
    zsock_t *sub = zsock_new_sub (S_TEST_MONITOR, "");
    herd_report_t *gateway = herd_report_new (S_TEST_PULL, "gateway");
    herd_report_t *bus = herd_report_new (S_TEST_PULL, "bus");

    //  No bus yet (its journal loading): a snapshot comes anyway, within
    //  S_LATE_MS, with the collector's own liveness in it
    cJSON *snapshot = s_test_next (sub, "STATS");
    HERD_CHECK (cJSON_GetObjectItemCaseSensitive (
        cJSON_GetObjectItemCaseSensitive (snapshot, "alive"), "monitor"));
    HERD_CHECK (!cJSON_GetObjectItemCaseSensitive (snapshot, "bus"));
    cJSON_Delete (snapshot);

    //  An event goes out at once, as the role said it
    herd_report_event (bus, "link up", "Smith", "tcp://127.0.0.1:13002");
    cJSON *event = s_test_next (sub, "EVENT");
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (event, "role")), "bus");
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (event, "event")), "link up");
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (event, "peer")), "Smith");
    cJSON_Delete (event);

    //  Hostile or broken reports change nothing: an unknown role, STATS
    //  that are no object, a malformed frame list
    zsock_t *stranger = zsock_new_push (S_TEST_PULL);
    zstr_sendx (stranger, "STATS", "log", "{\"clients\": 99}", NULL);
    zstr_sendx (stranger, "STATS", "gateway", "[1, 2]", NULL);
    zstr_sendx (stranger, "STATS", "gateway", NULL);
    zstr_sendx (stranger, "EVENT", "bus", "", "", "", NULL);

    //  The gateway's counters and the bus's: a snapshot with both (the two
    //  reports travel on two sockets, so either may come first)
    cJSON *stats = cJSON_CreateObject ();
    cJSON_AddNumberToObject (stats, "connections", 7);
    herd_report_stats (gateway, stats);
    stats = cJSON_CreateObject ();
    cJSON_AddNumberToObject (stats, "clients", 3);
    herd_report_stats (bus, stats);
    int64_t deadline = zclock_mono () + 5000;
    while (true) {
        snapshot = s_test_next (sub, "STATS");
        if (s_test_number (snapshot, "bus", "clients") == 3
            && s_test_number (snapshot, "gateway", "connections") == 7)
            break;
        cJSON_Delete (snapshot);
        HERD_CHECK (zclock_mono () < deadline);
    }
    HERD_CHECK (!cJSON_GetObjectItemCaseSensitive (snapshot, "log"));
    cJSON_Delete (snapshot);
    HERD_CHECK (herd_report_dropped (gateway) == 0 && herd_report_dropped (bus) == 0);

    zsock_destroy (&stranger);
    herd_report_destroy (&gateway);
    herd_report_destroy (&bus);
    zsock_destroy (&sub);
    zactor_destroy (&collector);
    if (verbose)
        printf ("OK\n");
}
