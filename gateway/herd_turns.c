//  herd_turns.c - whose turn it is to send a WHATSAT: the gateway's fair
//  queue.
//
//  See herd_turns.h. A doubly linked list through the owners' embedded
//  links, the longest waiting at the head, and the count in flight.

#include "herd_turns.h"
#include "../common/herd_check.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct _herd_turns_t {
    herd_turn_t *head, *tail;       //  the longest waiting first
    size_t waiting;                 //  on the list
    size_t asked;                   //  WHATSATs in flight
    size_t max_asked;
};

herd_turns_t *
herd_turns_new (size_t max_asked)
{
    herd_turns_t *self = (herd_turns_t *) calloc (1, sizeof (herd_turns_t));
    assert (self);
    self->max_asked = max_asked;
    return self;
}

void
herd_turns_destroy (herd_turns_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

bool
herd_turns_wanted (const char *line, size_t size)
{
    size_t at = 0;
    while (at < size && (line[at] == ' ' || (line[at] >= '\t' && line[at] <= '\r')))
        at++;
    return size - at > 7 && memcmp (line + at, "WHATSAT", 7) == 0
           && (line[at + 7] == ' ' || (line[at + 7] >= '\t' && line[at + 7] <= '\r'));
}

bool
herd_turns_take (herd_turns_t *self, herd_turn_t *turn, void *owner)
{
    if (turn->granted) {
        turn->granted = false;          //  one WHATSAT per turn
        return true;
    }
    if (self->asked < self->max_asked && self->waiting == 0)
        return true;
    if (turn->waiting)
        return false;                   //  keeps its place
    turn->owner = owner;
    turn->prev = self->tail;
    turn->next = NULL;
    if (self->tail)
        self->tail->next = turn;
    else
        self->head = turn;
    self->tail = turn;
    turn->waiting = true;
    self->waiting++;
    return false;
}

void
herd_turns_sent (herd_turns_t *self)
{
    self->asked++;
}

void
herd_turns_done (herd_turns_t *self)
{
    assert (self->asked > 0);
    self->asked--;
}

void
herd_turns_leave (herd_turns_t *self, herd_turn_t *turn)
{
    if (!turn->waiting)
        return;
    if (turn->prev)
        turn->prev->next = turn->next;
    else
        self->head = turn->next;
    if (turn->next)
        turn->next->prev = turn->prev;
    else
        self->tail = turn->prev;
    turn->prev = turn->next = NULL;
    turn->waiting = false;
    self->waiting--;
}

void *
herd_turns_next (herd_turns_t *self)
{
    herd_turn_t *turn = self->head;
    if (!turn || self->asked >= self->max_asked)
        return NULL;
    herd_turns_leave (self, turn);
    turn->granted = true;
    return turn->owner;
}

size_t
herd_turns_waiting (herd_turns_t *self)
{
    return self->waiting;
}

size_t
herd_turns_in_flight (herd_turns_t *self)
{
    return self->asked;
}

//  -------------------------------------------------------------------------
//  Self test

//  A WHATSAT goes when the gateway has a turn for it, as the gateway's line
//  handler does it: take, then sent if it went. True if it went.
static bool
s_test_ask (herd_turns_t *turns, herd_turn_t *turn, void *owner)
{
    if (!herd_turns_take (turns, turn, owner))
        return false;
    herd_turns_sent (turns);
    return true;
}

//  Only a WHATSAT's first field takes turns, whatever follows it.
static void
s_test_wanted (void)
{
    HERD_CHECK (herd_turns_wanted ("WHATSAT kiwi.cs.ucla.edu 10 5", 29));
    HERD_CHECK (herd_turns_wanted (" \tWHATSAT\tjunk", 14));
    HERD_CHECK (herd_turns_wanted ("WHATSAT ", 8));
    HERD_CHECK (!herd_turns_wanted ("WHATSAT", 7));
    HERD_CHECK (!herd_turns_wanted ("WHATSATS a 1 1", 14));
    HERD_CHECK (!herd_turns_wanted ("IAMAT kiwi +34-118 1.5", 22));
    HERD_CHECK (!herd_turns_wanted ("whatsat a 1 1", 13));
    HERD_CHECK (!herd_turns_wanted ("", 0));
}

//  Under the cap with none waiting, WHATSATs go at once; at the cap they
//  wait, in the order they came, and turns go only as answers free room.
static void
s_test_fifo (void)
{
    herd_turns_t *turns = herd_turns_new (2);
    herd_turn_t links[4] = {{0}};
    int owners[4] = {0, 1, 2, 3};
    HERD_CHECK (herd_turns_next (turns) == NULL);
    HERD_CHECK (s_test_ask (turns, &links[0], &owners[0]));
    HERD_CHECK (s_test_ask (turns, &links[1], &owners[1]));
    HERD_CHECK_INT (herd_turns_in_flight (turns), 2);
    HERD_CHECK (!s_test_ask (turns, &links[2], &owners[2]));
    HERD_CHECK (!s_test_ask (turns, &links[3], &owners[3]));
    HERD_CHECK (!s_test_ask (turns, &links[2], &owners[2]));   //  keeps its place
    HERD_CHECK_INT (herd_turns_waiting (turns), 2);
    HERD_CHECK (herd_turns_next (turns) == NULL);               //  no room
    herd_turns_done (turns);
    //  Room, but a client waits: a newcomer queues behind it
    HERD_CHECK (!s_test_ask (turns, &links[0], &owners[0]));
    HERD_CHECK_INT (herd_turns_waiting (turns), 3);
    HERD_CHECK (herd_turns_next (turns) == &owners[2]);
    HERD_CHECK (links[2].granted && !links[2].waiting);
    HERD_CHECK (s_test_ask (turns, &links[2], &owners[2]));     //  its turn
    HERD_CHECK (!links[2].granted);
    HERD_CHECK (herd_turns_next (turns) == NULL);
    herd_turns_done (turns);
    herd_turns_done (turns);
    HERD_CHECK (herd_turns_next (turns) == &owners[3]);
    HERD_CHECK (herd_turns_next (turns) == &owners[0]);         //  room for two
    HERD_CHECK (herd_turns_next (turns) == NULL);               //  none waits
    HERD_CHECK_INT (herd_turns_waiting (turns), 0);
    herd_turns_destroy (&turns);
    HERD_CHECK (turns == NULL);
}

//  A client that asks again after its turn waits behind the others: one
//  WHATSAT each per round, however many it pipelines.
static void
s_test_rounds (void)
{
    herd_turns_t *turns = herd_turns_new (1);
    herd_turn_t links[3] = {{0}};
    int owners[3] = {0, 1, 2};
    HERD_CHECK (s_test_ask (turns, &links[2], &owners[2]));
    for (int i = 0; i < 2; i++)
        HERD_CHECK (!s_test_ask (turns, &links[i], &owners[i]));
    int served[6];
    for (int round = 0; round < 6; round++) {
        herd_turns_done (turns);
        int *owner = (int *) herd_turns_next (turns);
        HERD_CHECK (owner != NULL);
        served[round] = *owner;
        HERD_CHECK (s_test_ask (turns, &links[*owner], owner));
        HERD_CHECK (!s_test_ask (turns, &links[*owner], owner));  //  it has more
        HERD_CHECK (herd_turns_next (turns) == NULL);
    }
    HERD_CHECK_INT (served[0], 0);
    HERD_CHECK_INT (served[1], 1);
    HERD_CHECK_INT (served[2], 0);
    HERD_CHECK_INT (served[3], 1);
    HERD_CHECK_INT (served[4], 0);
    HERD_CHECK_INT (served[5], 1);
    herd_turns_destroy (&turns);
}

//  A client that goes leaves the queue wherever it waits, and is never
//  named; leaving twice, or without waiting, does nothing.
static void
s_test_leave (void)
{
    herd_turns_t *turns = herd_turns_new (1);
    herd_turn_t first = {0}, links[4] = {{0}};
    int owners[4] = {0, 1, 2, 3};
    HERD_CHECK (s_test_ask (turns, &first, &owners[0]));
    for (int i = 0; i < 4; i++)
        HERD_CHECK (!s_test_ask (turns, &links[i], &owners[i]));
    herd_turns_leave (turns, &first);
    herd_turns_leave (turns, &links[1]);       //  the middle
    herd_turns_leave (turns, &links[1]);
    herd_turns_leave (turns, &links[3]);       //  the tail
    HERD_CHECK_INT (herd_turns_waiting (turns), 2);
    HERD_CHECK (!s_test_ask (turns, &links[3], &owners[3]));   //  back, at the tail
    herd_turns_leave (turns, &links[0]);       //  the head
    HERD_CHECK_INT (herd_turns_waiting (turns), 2);
    herd_turns_done (turns);
    HERD_CHECK (herd_turns_next (turns) == &owners[2]);
    herd_turns_sent (turns);
    herd_turns_done (turns);
    HERD_CHECK (herd_turns_next (turns) == &owners[3]);
    HERD_CHECK (herd_turns_next (turns) == NULL);
    HERD_CHECK_INT (herd_turns_waiting (turns), 0);
    herd_turns_destroy (&turns);
}

void
herd_turns_test (bool verbose)
{
    (void) verbose;
    s_test_wanted ();
    s_test_fifo ();
    s_test_rounds ();
    s_test_leave ();
}
