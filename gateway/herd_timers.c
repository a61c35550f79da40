//  herd_timers.c - a time-out list: the gateway's idle and line clocks.
//
//  See herd_timers.h. A doubly linked list through the owners' embedded
//  links, oldest clock at the head.

#include "herd_timers.h"
#include "../common/herd_check.h"

#include <assert.h>
#include <stdlib.h>

struct _herd_timers_t {
    herd_timer_t *head, *tail;      //  oldest clock first
    int64_t timeout;                //  ms, the same for every clock
    size_t size;
};

herd_timers_t *
herd_timers_new (int64_t timeout)
{
    herd_timers_t *self = (herd_timers_t *) calloc (1, sizeof (herd_timers_t));
    assert (self);
    self->timeout = timeout;
    return self;
}

void
herd_timers_destroy (herd_timers_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

int64_t
herd_timers_timeout (herd_timers_t *self)
{
    return self->timeout;
}

void
herd_timers_set_timeout (herd_timers_t *self, int64_t timeout)
{
    self->timeout = timeout;
}

void
herd_timers_stop (herd_timers_t *self, herd_timer_t *timer)
{
    if (!timer->linked)
        return;
    if (timer->prev)
        timer->prev->next = timer->next;
    else
        self->head = timer->next;
    if (timer->next)
        timer->next->prev = timer->prev;
    else
        self->tail = timer->prev;
    timer->prev = timer->next = NULL;
    timer->linked = false;
    self->size--;
}

void
herd_timers_start (herd_timers_t *self, herd_timer_t *timer, void *owner, int64_t now)
{
    herd_timers_stop (self, timer);
    assert (!self->tail || self->tail->since <= now);
    timer->owner = owner;
    timer->since = now;
    timer->prev = self->tail;
    if (self->tail)
        self->tail->next = timer;
    else
        self->head = timer;
    self->tail = timer;
    timer->linked = true;
    self->size++;
}

void *
herd_timers_expired (herd_timers_t *self, int64_t now)
{
    herd_timer_t *oldest = self->head;
    return oldest && now - oldest->since >= self->timeout ? oldest->owner : NULL;
}

int64_t
herd_timers_deadline (herd_timers_t *self)
{
    return self->head ? self->head->since + self->timeout : INT64_MAX;
}

size_t
herd_timers_size (herd_timers_t *self)
{
    return self->size;
}

//  -------------------------------------------------------------------------
//  Self test

//  Clocks run out in the order they (re)started, at since + timeout.
static void
s_test_order (void)
{
    herd_timers_t *timers = herd_timers_new (100);
    herd_timer_t links[3] = {{0}};
    int owners[3] = {0, 1, 2};
    HERD_CHECK (herd_timers_deadline (timers) == INT64_MAX);
    HERD_CHECK (herd_timers_expired (timers, 1000000) == NULL);
    for (int i = 0; i < 3; i++)
        herd_timers_start (timers, &links[i], &owners[i], 10 * i);
    HERD_CHECK (herd_timers_size (timers) == 3);
    HERD_CHECK (herd_timers_deadline (timers) == 100);
    HERD_CHECK (herd_timers_expired (timers, 99) == NULL);
    HERD_CHECK (herd_timers_expired (timers, 100) == &owners[0]);
    //  A restart moves the clock to the tail
    herd_timers_start (timers, &links[0], &owners[0], 100);
    HERD_CHECK (herd_timers_size (timers) == 3);
    HERD_CHECK (herd_timers_deadline (timers) == 110);
    HERD_CHECK (herd_timers_expired (timers, 120) == &owners[1]);
    herd_timers_stop (timers, &links[1]);
    HERD_CHECK (herd_timers_expired (timers, 120) == &owners[2]);
    herd_timers_stop (timers, &links[2]);
    HERD_CHECK (herd_timers_expired (timers, 120) == NULL);
    HERD_CHECK (herd_timers_deadline (timers) == 200);
    HERD_CHECK (herd_timers_expired (timers, 200) == &owners[0]);
    herd_timers_destroy (&timers);
    HERD_CHECK (timers == NULL);
}

//  Stopping anywhere keeps the list whole; stopping twice, or a clock
//  never started, does nothing; a new time-out applies to running clocks.
static void
s_test_stop (void)
{
    herd_timers_t *timers = herd_timers_new (50);
    herd_timer_t links[4] = {{0}};
    int owners[4] = {0, 1, 2, 3};
    herd_timers_stop (timers, &links[0]);
    for (int i = 0; i < 4; i++)
        herd_timers_start (timers, &links[i], &owners[i], i);
    herd_timers_stop (timers, &links[3]);       //  the tail
    herd_timers_stop (timers, &links[1]);       //  the middle
    herd_timers_stop (timers, &links[1]);
    HERD_CHECK (herd_timers_size (timers) == 2);
    HERD_CHECK (!links[1].linked && !links[3].linked);
    herd_timers_start (timers, &links[3], &owners[3], 5);   //  new tail after a stop
    herd_timers_stop (timers, &links[0]);       //  the head
    HERD_CHECK (herd_timers_expired (timers, 52) == &owners[2]);
    herd_timers_set_timeout (timers, 10);
    HERD_CHECK (herd_timers_timeout (timers) == 10);
    HERD_CHECK (herd_timers_deadline (timers) == 12);
    herd_timers_stop (timers, &links[2]);
    HERD_CHECK (herd_timers_expired (timers, 15) == &owners[3]);
    herd_timers_stop (timers, &links[3]);
    HERD_CHECK (herd_timers_size (timers) == 0);
    HERD_CHECK (herd_timers_deadline (timers) == INT64_MAX);
    herd_timers_destroy (&timers);
}

void
herd_timers_test (bool verbose)
{
    (void) verbose;
    s_test_order ();
    s_test_stop ();
}
