//  herd_report.c - what a role tells its node's monitor.

#include "herd_report.h"
#include "herd_check.h"
#include "herd_msg.h"

//  Reports queued for a monitor that is slow to read: a few seconds of
//  STATS from each role, and a burst of events
#define S_QUEUE 64

struct _herd_report_t {
    zsock_t *push;
    char *role;
    uint64_t dropped;
};

herd_report_t *
herd_report_new (const char *endpoint, const char *role)
{
    assert (role);
    if (!endpoint)
        return NULL;
    herd_report_t *self = (herd_report_t *) zmalloc (sizeof (herd_report_t));
    self->push = zsock_new (ZMQ_PUSH);
    assert (self->push);
    self->role = strdup (role);
    assert (self->role);
    zsock_set_sndhwm (self->push, S_QUEUE);
    zsock_set_linger (self->push, 0);
    //  Nothing queues for a monitor not there yet: such reports are dropped
    zsock_set_immediate (self->push, 1);
    if (zsock_connect (self->push, "%s", endpoint) == -1) {
        herd_report_destroy (&self);
        return NULL;
    }
    return self;
}

void
herd_report_destroy (herd_report_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_report_t *self = *self_p;
    zsock_destroy (&self->push);
    free (self->role);
    free (self);
    *self_p = NULL;
}

//  Send a report without waiting; count it dropped when it cannot go now.
static void
s_send (herd_report_t *self, const herd_msg_t *msg)
{
    if (herd_msg_send (msg, self->push, ZMQ_DONTWAIT) == -1)
        self->dropped++;
}

void
herd_report_stats (herd_report_t *self, cJSON *stats)
{
    if (self) {
        char *text = cJSON_PrintUnformatted (stats);
        if (text)
            s_send (self, &(herd_msg_t){.id = HERD_MSG_ID_REPORT_STATS,
                                        .role = herd_msg_str (self->role),
                                        .json = herd_msg_str (text)});
        free (text);
    }
    cJSON_Delete (stats);
}

void
herd_report_event (herd_report_t *self, const char *event, const char *peer, const char *detail)
{
    assert (event);
    if (self)
        s_send (self, &(herd_msg_t){.id = HERD_MSG_ID_REPORT_EVENT,
                                    .role = herd_msg_str (self->role),
                                    .event = herd_msg_str (event),
                                    .peer = herd_msg_str (peer ? peer : ""),
                                    .detail = herd_msg_str (detail ? detail : "")});
}

uint64_t
herd_report_dropped (herd_report_t *self)
{
    return self ? self->dropped : 0;
}

//  -------------------------------------------------------------------------
//  Self test

//  Receive the next report on pull that is not a "probe" or "queued"
//  event, decoded into in (the message is kept for the fields).
static zmsg_t *
s_receive (zsock_t *pull, herd_msg_t *in)
{
    while (true) {
        zsock_set_rcvtimeo (pull, 5000);
        zmsg_t *msg = zmsg_recv (pull);
        HERD_CHECK (msg);
        char reason[HERD_MSG_REASON_MAX];
        HERD_CHECK_INT (herd_msg_decode (in, msg, HERD_MSG_TO_MONITOR, NULL, reason,
                                         sizeof (reason)), 0);
        if (in->id != HERD_MSG_ID_REPORT_EVENT
            || (!herd_msg_bytes_eq (in->event, "probe") && !herd_msg_bytes_eq (in->event, "queued")))
            return msg;
        zmsg_destroy (&msg);
    }
}

void
herd_report_test (bool verbose)
{
    if (verbose)
        printf (" * herd_report: ");
    //  No endpoint: nothing is sent, and what is handed over is freed
    herd_report_t *none = herd_report_new (NULL, "gateway");
    HERD_CHECK (!none);
    herd_report_stats (none, cJSON_CreateObject ());
    herd_report_event (none, "link up", NULL, NULL);
    HERD_CHECK (herd_report_dropped (none) == 0);

    //  No monitor yet: reports never wait; past a queue's worth (inproc
    //  queues for a peer to come) they are dropped
    herd_report_t *self = herd_report_new ("inproc://herd-report-test", "bus");
    HERD_CHECK (self);
    int64_t started = zclock_mono ();
    for (int i = 0; i < 1000; i++)
        herd_report_event (self, "queued", "Hill", NULL);
    HERD_CHECK (zclock_mono () - started < 1000);
    HERD_CHECK (herd_report_dropped (self) >= 1000 - 2 * S_QUEUE);
    herd_report_destroy (&self);
    HERD_CHECK (!self);

    //  To a monitor that is there, reports arrive in order, typed
    zsock_t *pull = zsock_new_pull ("inproc://herd-report-test-bound");
    HERD_CHECK (pull);
    self = herd_report_new ("inproc://herd-report-test-bound", "bus");
    int64_t deadline = zclock_mono () + 5000;
    while (!(zsock_events (pull) & ZMQ_POLLIN)) {
        HERD_CHECK (zclock_mono () < deadline);
        herd_report_event (self, "probe", NULL, NULL);
        zclock_sleep (1);
    }
    cJSON *stats = cJSON_CreateObject ();
    cJSON_AddNumberToObject (stats, "clients", 3);
    herd_report_stats (self, stats);
    herd_report_event (self, "journal failing", NULL, "No space left on device");
    herd_msg_t in;
    zmsg_t *msg = s_receive (pull, &in);
    HERD_CHECK (in.id == HERD_MSG_ID_REPORT_STATS && herd_msg_bytes_eq (in.role, "bus"));
    HERD_CHECK (herd_msg_bytes_eq (in.json, "{\"clients\":3}"));
    zmsg_destroy (&msg);
    msg = s_receive (pull, &in);
    HERD_CHECK (in.id == HERD_MSG_ID_REPORT_EVENT && in.peer.size == 0);
    HERD_CHECK (herd_msg_bytes_eq (in.event, "journal failing"));
    HERD_CHECK (herd_msg_bytes_eq (in.detail, "No space left on device"));
    zmsg_destroy (&msg);

    //  A monitor that does not read: the queue fills, then reports drop,
    //  and the role never waits
    uint64_t dropped = herd_report_dropped (self);
    started = zclock_mono ();
    for (int i = 0; i < 5000; i++)     //  past our queue and the monitor's (1000)
        herd_report_event (self, "flood", NULL, NULL);
    HERD_CHECK (zclock_mono () - started < 1000);
    HERD_CHECK (herd_report_dropped (self) > dropped);
    HERD_CHECK (herd_report_dropped (self) < dropped + 5000);

    herd_report_destroy (&self);
    HERD_CHECK (!self);
    zsock_destroy (&pull);
    if (verbose)
        printf ("OK\n");
}
