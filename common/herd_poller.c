//  herd_poller.c - wait on many zmq sockets with few system calls.

#include "herd_poller.h"
#include "herd_alarm.h"
#include "herd_check.h"

#include <errno.h>
#include <poll.h>

typedef struct {
    void *reader;
    bool exact;                     //  hand out only with ZMQ_EVENTS' word
    bool dirty;                     //  used since it was found empty: ask it
    bool ready;                     //  its fd woke the last poll, not handed out yet
} s_item_t;

struct _herd_poller_t {
    s_item_t *items;
    struct pollfd *fds;             //  the readers', then the alarm's
    herd_alarm_t *alarm;            //  a time-out's deadline (herd_alarm.h), or NULL
    size_t count, capacity;
    bool terminated;
};

herd_poller_t *
herd_poller_new (void)
{
    herd_poller_t *self = (herd_poller_t *) zmalloc (sizeof (herd_poller_t));
    self->alarm = herd_alarm_new (-1, 0);       //  NULL: poll(2) times out itself
    return self;
}

void
herd_poller_destroy (herd_poller_t **self_p)
{
    herd_poller_t *self = *self_p;
    if (!self)
        return;
    free (self->items);
    free (self->fds);
    herd_alarm_destroy (&self->alarm);
    free (self);
    *self_p = NULL;
}

void
herd_poller_add (herd_poller_t *self, void *reader, bool exact)
{
    if (self->count == self->capacity) {
        self->capacity = self->capacity ? self->capacity * 2 : 8;
        self->items = (s_item_t *) realloc (self->items, self->capacity * sizeof (s_item_t));
        self->fds = (struct pollfd *) realloc (self->fds,
                                               (self->capacity + 1) * sizeof (struct pollfd));
        assert (self->items && self->fds);
    }
    //  New: it may hold messages already, with its fd quiet
    self->items[self->count] = (s_item_t){reader, exact, true, false};
    self->fds[self->count] = (struct pollfd){zsock_fd (reader), POLLIN, 0};
    self->count++;
}

void
herd_poller_remove (herd_poller_t *self, void *reader)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->items[i].reader == reader) {
            self->count--;
            memmove (&self->items[i], &self->items[i + 1], (self->count - i) * sizeof (s_item_t));
            memmove (&self->fds[i], &self->fds[i + 1], (self->count - i) * sizeof (struct pollfd));
            return;
        }
}

void
herd_poller_touch (herd_poller_t *self, void *reader)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->items[i].reader == reader)
            self->items[i].dirty = true;
}

void
herd_poller_settled (herd_poller_t *self, void *reader)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->items[i].reader == reader)
            self->items[i].dirty = self->items[i].ready = false;
}

//  The first reader marked ready that may have input, or NULL. An exact
//  one is asked; the ask leaves its fd armed when it has none.
static void *
s_take_ready (herd_poller_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        s_item_t *item = &self->items[i];
        if (!item->ready)
            continue;
        item->ready = false;
        if (!item->exact || (zsock_events (item->reader) & ZMQ_POLLIN)) {
            item->dirty = true;
            return item->reader;
        }
    }
    return NULL;
}

//  Ask each dirty reader: one with input is marked ready (and stays dirty:
//  its handler will use it), one without is clean again. True if any had.
static bool
s_ask_dirty (herd_poller_t *self)
{
    bool input = false;
    for (size_t i = 0; i < self->count; i++) {
        s_item_t *item = &self->items[i];
        if (!item->dirty)
            continue;
        if (zsock_events (item->reader) & ZMQ_POLLIN)
            item->ready = input = true;
        else
            item->dirty = false;
    }
    return input;
}

//  Mark the readers whose fd woke poll(2) as ready.
static void
s_mark_polled (herd_poller_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->fds[i].revents & (POLLIN | POLLERR))
            self->items[i].ready = true;
}

void *
herd_poller_wait (herd_poller_t *self, int timeout)
{
    self->terminated = zsys_interrupted != 0;
    void *reader = s_take_ready (self);
    if (reader || self->terminated)
        return reader;
    //  A dirty reader with input is not handed out alone: the fds of the
    //  others are looked at too (without waiting), and all go out in the
    //  order added. A socket that always has input (a flood on the SUB, or
    //  from the gateway) then cannot starve the pipe or the sync socket
    if (s_ask_dirty (self)) {
        if (poll (self->fds, (nfds_t) self->count, 0) > 0)
            s_mark_polled (self);
        return s_take_ready (self);
    }
    //  A time-out is the alarm's, kept from one wait to the next, and
    //  poll(2) itself has none: the CPU's timer is not set at every sleep
    //  (herd_alarm.h). The deadline is rounded up to the next millisecond,
    //  so that waits towards the same one leave the alarm as it is
    size_t count = self->count;
    if (self->alarm && self->fds && timeout > 0) {
        int64_t deadline = (zclock_usecs () / 1000 + timeout + 1) * 1000;
        if (herd_alarm_set (self->alarm, deadline) == 0) {
            self->fds[count++] = (struct pollfd){herd_alarm_fd (self->alarm), POLLIN, 0};
            timeout = -1;
        }
    }
    int rc = poll (self->fds, (nfds_t) count, timeout);
    if (rc < 0) {
        self->terminated = errno != EINTR || zsys_interrupted;
        return NULL;
    }
    if (count > self->count && (self->fds[self->count].revents & POLLIN)) {
        herd_alarm_rang (self->alarm);          //  the time ran out
        rc--;
    }
    s_mark_polled (self);
    return rc > 0 ? s_take_ready (self) : NULL;
}

bool
herd_poller_terminated (herd_poller_t *self)
{
    return self->terminated;
}

void
herd_poller_test (bool verbose)
{
    (void) verbose;
    printf (" * herd_poller: ");
    zsock_t *push = zsock_new_push ("inproc://herd-poller-test");
    zsock_t *pull = zsock_new_pull ("inproc://herd-poller-test");
    zsock_t *client = zsock_new_dealer ("inproc://herd-poller-pair");
    zsock_t *server = zsock_new_dealer ("@inproc://herd-poller-pair");
    HERD_CHECK (push && pull && client && server);
    //  client connects first; both ends are DEALERs so the order is free
    zsock_set_rcvtimeo (pull, 0);
    zsock_set_rcvtimeo (server, 0);
    herd_poller_t *poller = herd_poller_new ();
    herd_poller_add (poller, pull, false);
    herd_poller_add (poller, server, true);

    //  Nothing yet: the time runs out
    HERD_CHECK (herd_poller_wait (poller, 0) == NULL);
    HERD_CHECK (!herd_poller_terminated (poller));
    HERD_CHECK (herd_poller_wait (poller, 20) == NULL);
    //  ...after the time asked (the alarm's deadline), and a wait that
    //  loops towards the same deadline ends there too
    int64_t asked = zclock_mono ();
    HERD_CHECK (herd_poller_wait (poller, 30) == NULL);
    HERD_CHECK (zclock_mono () >= asked + 30 && zclock_mono () < asked + 1000);
    for (int i = 0; i < 3; i++) {
        int64_t start = zclock_mono ();
        int64_t left;
        while ((left = start + 30 - zclock_mono ()) > 0
               && herd_poller_wait (poller, (int) left) == NULL)
            ;
        HERD_CHECK (zclock_mono () >= start + 30 && zclock_mono () < start + 1000);
    }

    //  A message wakes the wait, which hands out its socket
    zstr_send (push, "one");
    HERD_CHECK (herd_poller_wait (poller, 1000) == pull);
    char *text = zstr_recv (pull);
    HERD_CHECK (text && streq (text, "one"));
    zstr_free (&text);
    HERD_CHECK (zstr_recv (pull) == NULL);      //  drained: found empty
    HERD_CHECK (herd_poller_wait (poller, 20) == NULL);

    //  Settled after a receive found it empty: not asked, and its fd still
    //  wakes the wait for the next message, however many came at once
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i <= round; i++)
            zstr_send (push, "again");
        HERD_CHECK (herd_poller_wait (poller, 1000) == pull);
        while ((text = zstr_recv (pull)))
            zstr_free (&text);
        herd_poller_settled (poller, pull);
        HERD_CHECK (herd_poller_wait (poller, 0) == NULL);
    }
    zstr_send (push, "late");
    HERD_CHECK (herd_poller_wait (poller, 1000) == pull);
    text = zstr_recv (pull);
    HERD_CHECK (text && streq (text, "late"));
    zstr_free (&text);
    HERD_CHECK (zstr_recv (pull) == NULL);
    herd_poller_settled (poller, pull);

    //  An exact reader is handed out only with a message
    zstr_send (client, "two");
    HERD_CHECK (herd_poller_wait (poller, 1000) == server);
    text = zstr_recv (server);
    HERD_CHECK (text && streq (text, "two"));
    zstr_free (&text);
    HERD_CHECK (herd_poller_wait (poller, 20) == NULL);

    //  The lost edge: a message arrives, then a send on the reader reads
    //  libzmq's commands, so the fd no longer says there is input. A touch
    //  makes the wait ask, and the message is found at once
    zstr_send (client, "three");
    zstr_send (server, "answer");               //  may read the commands
    HERD_CHECK (zsock_events (server) & ZMQ_POLLIN);    //  reads them for sure
    herd_poller_touch (poller, server);
    HERD_CHECK (herd_poller_wait (poller, 0) == server);
    text = zstr_recv (server);
    HERD_CHECK (text && streq (text, "three"));
    zstr_free (&text);
    text = zstr_recv (client);
    HERD_CHECK (text && streq (text, "answer"));
    zstr_free (&text);

    //  Several ready at once: each handed out, in the order added
    zstr_send (push, "four");
    zstr_send (client, "five");
    HERD_CHECK (zsock_events (server) & ZMQ_POLLIN);
    herd_poller_touch (poller, server);
    zclock_sleep (1);
    void *first = herd_poller_wait (poller, 1000);
    HERD_CHECK (first == pull || first == server);
    zstr_free (&text);
    text = zstr_recv (first);
    HERD_CHECK (text);
    zstr_free (&text);
    void *second = herd_poller_wait (poller, 1000);
    HERD_CHECK (second && second != first);
    text = zstr_recv (second);
    HERD_CHECK (text);
    zstr_free (&text);
    HERD_CHECK (zstr_recv (pull) == NULL);
    HERD_CHECK (herd_poller_wait (poller, 20) == NULL);

    //  A reader that always has input does not starve another: its handler
    //  takes one message of many each time, while the exact one gets one
    for (int i = 0; i < 100; i++)
        zstr_send (push, "flood");
    zclock_sleep (1);
    HERD_CHECK (herd_poller_wait (poller, 1000) == pull);
    text = zstr_recv (pull);
    zstr_free (&text);
    zstr_send (client, "seven");
    zclock_sleep (1);
    bool served = false;
    for (int i = 0; i < 50 && !served; i++) {
        void *which = herd_poller_wait (poller, 1000);
        HERD_CHECK (which == pull || which == server);
        text = zstr_recv (which);
        HERD_CHECK (text);
        served = which == server && streq (text, "seven");
        zstr_free (&text);
    }
    HERD_CHECK (served);
    while ((text = zstr_recv (pull)))
        zstr_free (&text);

    //  A removed reader is never handed out
    herd_poller_remove (poller, pull);
    herd_poller_remove (poller, pull);          //  twice: ignored
    zstr_send (push, "six");
    HERD_CHECK (herd_poller_wait (poller, 20) == NULL);

    herd_poller_destroy (&poller);
    HERD_CHECK (poller == NULL);
    zsock_destroy (&push);
    zsock_destroy (&pull);
    zsock_destroy (&client);
    zsock_destroy (&server);
    printf ("OK\n");
}
