//  herd_uplink.c - the gateway's channel to its bus: updates in batches,
//  in order, never dropped, and the answers that wait for them to be stored.

#include "herd_uplink.h"
#include "../common/herd_msg.h"

#define HERD_UPLINK_UPDATES_MAX (64 * 1024) //  bytes of updates sent to the bus at once

//  An answer waiting for its update to be stored, and the batch (UPDATE
//  message) the update went in.
typedef struct {
    herd_uplink_ref_t ref;
    uint64_t batch;
    int64_t since;                  //  when the answer was ready, ms (monotonic)
} s_waiter_t;

struct _herd_uplink_t {
    zsock_t *bus;
    zlist_t *backlog;               //  messages the bus could not take yet, in order (zmsg_t)
    char *updates;                  //  this turn's AT lines for the bus, '\n'-separated
    size_t updates_size;
    uint64_t batch;                 //  number of the UPDATE being filled (from 1)
    s_waiter_t *waiters;            //  answers waiting to be stored, oldest first (a ring)
    size_t waiter_head, waiter_count, waiter_capacity;
    bool sent;                      //  a send was tried since herd_uplink_sent
};

herd_uplink_t *
herd_uplink_new (zsock_t *bus)
{
    herd_uplink_t *self = (herd_uplink_t *) zmalloc (sizeof (herd_uplink_t));
    self->bus = bus;
    self->backlog = zlist_new ();
    self->batch = 1;
    return self;
}

void
herd_uplink_destroy (herd_uplink_t **self_p)
{
    herd_uplink_t *self = *self_p;
    if (!self)
        return;
    herd_uplink_send_updates (self);
    herd_uplink_flush (self);
    while (zlist_size (self->backlog) > 0) {
        zmsg_t *msg = (zmsg_t *) zlist_pop (self->backlog);
        zmsg_destroy (&msg);
    }
    zlist_destroy (&self->backlog);
    free (self->waiters);
    free (self->updates);
    free (self);
    *self_p = NULL;
}

bool
herd_uplink_send_now (zsock_t *sock, const herd_msg_t *msg)
{
    return herd_msg_send (msg, sock, ZMQ_DONTWAIT) == 0;
}

//  Send a message the bus could not take before; false (kept) if it still
//  cannot.
static bool
s_send_backlogged (herd_uplink_t *self, zmsg_t *msg)
{
    self->sent = true;
    void *handle = zsock_resolve (self->bus);
    size_t left = zmsg_size (msg);
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        int more = --left > 0 ? ZFRAME_MORE : 0;
        if (zframe_send (&frame, handle, ZFRAME_REUSE | ZFRAME_DONTWAIT | more) == -1)
            return false;       //  only the first frame can fail: sends are atomic
    }
    return true;
}

void
herd_uplink_flush (herd_uplink_t *self)
{
    zmsg_t *msg;
    while ((msg = (zmsg_t *) zlist_first (self->backlog)) && s_send_backlogged (self, msg)) {
        zlist_remove (self->backlog, msg);
        zmsg_destroy (&msg);
    }
}

void
herd_uplink_send (herd_uplink_t *self, const herd_msg_t *msg)
{
    self->sent = true;
    if (zlist_size (self->backlog) == 0 && herd_uplink_send_now (self->bus, msg))
        return;
    zlist_append (self->backlog, herd_msg_encode (msg));
}

size_t
herd_uplink_backlog (herd_uplink_t *self)
{
    return zlist_size (self->backlog);
}

bool
herd_uplink_sent (herd_uplink_t *self)
{
    bool sent = self->sent;
    self->sent = false;
    return sent;
}

//  Send records as UPDATE number batch.
static void
s_send_update (herd_uplink_t *self, uint64_t batch, const char *records, size_t size)
{
    herd_uplink_send (self, &(herd_msg_t){.id = HERD_MSG_ID_UPDATE, .batch = batch,
                                          .records = {records, size}});
}

void
herd_uplink_send_updates (herd_uplink_t *self)
{
    if (self->updates_size == 0)
        return;
    s_send_update (self, self->batch++, self->updates, self->updates_size);
    self->updates_size = 0;
}

uint64_t
herd_uplink_queue (herd_uplink_t *self, const char *at, size_t size)
{
    if (self->updates_size > 0 && self->updates_size + 1 + size > HERD_UPLINK_UPDATES_MAX)
        herd_uplink_send_updates (self);
    if (!self->updates) {
        self->updates = (char *) malloc (HERD_UPLINK_UPDATES_MAX + 1);
        assert (self->updates);
    }
    if (size > HERD_UPLINK_UPDATES_MAX) {
        //  A long line (max_line allows it) goes alone, as its own batch
        uint64_t number = self->batch++;
        s_send_update (self, number, at, size);
        return number;
    }
    if (self->updates_size > 0)
        self->updates[self->updates_size++] = '\n';
    memcpy (self->updates + self->updates_size, at, size);
    self->updates_size += size;
    return self->batch;
}

void
herd_uplink_wait (herd_uplink_t *self, herd_uplink_ref_t ref, uint64_t batch, int64_t now)
{
    if (self->waiter_count == self->waiter_capacity) {
        size_t capacity = self->waiter_capacity ? self->waiter_capacity * 2 : 256;
        s_waiter_t *waiters = (s_waiter_t *) malloc (capacity * sizeof (s_waiter_t));
        assert (waiters);
        for (size_t i = 0; i < self->waiter_count; i++)
            waiters[i] = self->waiters[(self->waiter_head + i) % self->waiter_capacity];
        free (self->waiters);
        self->waiters = waiters;
        self->waiter_capacity = capacity;
        self->waiter_head = 0;
    }
    size_t tail = (self->waiter_head + self->waiter_count) % self->waiter_capacity;
    self->waiters[tail] = (s_waiter_t){ref, batch, now};
    self->waiter_count++;
}

//  Take the oldest waiter into ref.
static void
s_pop_waiter (herd_uplink_t *self, herd_uplink_ref_t *ref)
{
    *ref = self->waiters[self->waiter_head].ref;
    self->waiter_head = (self->waiter_head + 1) % self->waiter_capacity;
    self->waiter_count--;
}

bool
herd_uplink_next_stored (herd_uplink_t *self, uint64_t first, uint64_t last,
                         herd_uplink_ref_t *ref, bool *lost)
{
    if (self->waiter_count == 0 || self->waiters[self->waiter_head].batch > last)
        return false;
    *lost = self->waiters[self->waiter_head].batch < first;
    s_pop_waiter (self, ref);
    return true;
}

bool
herd_uplink_next_expired (herd_uplink_t *self, int64_t now, int64_t timeout,
                          herd_uplink_ref_t *ref)
{
    if (self->waiter_count == 0 || now - self->waiters[self->waiter_head].since < timeout)
        return false;
    s_pop_waiter (self, ref);
    return true;
}

int64_t
herd_uplink_oldest (herd_uplink_t *self)
{
    return self->waiter_count ? self->waiters[self->waiter_head].since : INT64_MAX;
}

size_t
herd_uplink_waiting (herd_uplink_t *self)
{
    return self->waiter_count;
}

//  -------------------------------------------------------------------------
//  Self test: batches and waiters, with a ROUTER as the bus

#include "../common/herd_check.h"

//  The bus receives an UPDATE: returns its batch number, its records in
//  *records_p.
static uint64_t
s_test_receive (zsock_t *bus, char **records_p)
{
    zmsg_t *msg = zmsg_recv (bus);
    HERD_CHECK (msg);
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX] = "";
    HERD_CHECK_STR (herd_msg_decode (&in, msg, HERD_MSG_TO_BUS, NULL, reason, sizeof (reason))
                      ? reason : "", "");
    HERD_CHECK (in.id == HERD_MSG_ID_UPDATE);
    *records_p = zsys_sprintf ("%.*s", (int) in.records.size, (const char *) in.records.data);
    zmsg_destroy (&msg);
    return in.batch;
}

void
herd_uplink_test (bool verbose)
{
    (void) verbose;
    zsock_t *bus = zsock_new_router ("@inproc://uplink-test");
    zsock_t *dealer = zsock_new_dealer (">inproc://uplink-test");
    zsock_set_rcvtimeo (bus, 5000);
    herd_uplink_t *self = herd_uplink_new (dealer);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT a", 4), 1);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT b", 4), 1);
    herd_uplink_send_updates (self);
    herd_uplink_send_updates (self);                //  nothing queued: nothing sent
    HERD_CHECK_INT (herd_uplink_queue (self, "AT c", 4), 2);
    herd_uplink_send_updates (self);
    char *records;
    HERD_CHECK_INT (s_test_receive (bus, &records), 1);
    HERD_CHECK_STR (records, "AT a\nAT b");
    zstr_free (&records);
    HERD_CHECK_INT (s_test_receive (bus, &records), 2);
    HERD_CHECK_STR (records, "AT c");
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_backlog (self), 0);

    //  Answers wait for their batch; an earlier batch than the first
    //  stored is lost; the oldest expires first
    herd_uplink_ref_t ref;
    bool lost;
    herd_uplink_wait (self, (herd_uplink_ref_t){1, 10, 5}, 1, 100);
    herd_uplink_wait (self, (herd_uplink_ref_t){2, 20, 6}, 2, 200);
    herd_uplink_wait (self, (herd_uplink_ref_t){3, 30, 7}, 3, 300);
    HERD_CHECK_INT (herd_uplink_waiting (self), 3);
    HERD_CHECK_INT (herd_uplink_oldest (self), 100);
    HERD_CHECK (herd_uplink_next_stored (self, 2, 2, &ref, &lost));
    HERD_CHECK (lost && ref.serial == 1 && ref.seq == 10 && ref.fd == 5);
    HERD_CHECK (herd_uplink_next_stored (self, 2, 2, &ref, &lost));
    HERD_CHECK (!lost && ref.serial == 2);
    HERD_CHECK (!herd_uplink_next_stored (self, 2, 2, &ref, &lost));
    HERD_CHECK (!herd_uplink_next_expired (self, 399, 100, &ref));
    HERD_CHECK (herd_uplink_next_expired (self, 400, 100, &ref));
    HERD_CHECK (ref.serial == 3);
    HERD_CHECK_INT (herd_uplink_oldest (self), INT64_MAX);
    herd_uplink_destroy (&self);
    HERD_CHECK (self == NULL);
    zsock_destroy (&dealer);
    zsock_destroy (&bus);
}
