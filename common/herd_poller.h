//  herd_poller.h - wait on many zmq sockets with few system calls.
//
//  czmq's zpoller waits with zmq_poll, which asks every socket for
//  ZMQ_EVENTS before and after it sleeps. Each ask is a getpid(2) and a
//  poll(2) on the socket's command queue (libzmq's fork check and command
//  read), so a bus with seven sockets made 26 system calls for every update
//  a client sent at 1x1 (strace, issue 15). This poller sleeps in one
//  poll(2) on the sockets' ZMQ_FDs and asks ZMQ_EVENTS only of a socket
//  whose ZMQ_FD may not tell the truth.
//
//  The contract: a socket's ZMQ_FD is readable whenever it has commands
//  libzmq has not read, but libzmq reads them on sends and option calls as
//  well as on receives, and a read can leave messages waiting with the fd
//  quiet. So the fd is trusted only after a receive that found the socket
//  empty. A reader handed out by herd_poller_wait is presumed used (its
//  handler receives and may answer on it); the owner says herd_poller_touch
//  after any other use, such as a send on a socket it did not just drain.
//  Either way the next wait asks that socket ZMQ_EVENTS before sleeping.
//
//  Readers are zsock_t or zactor_t. A reader added as exact is handed out
//  only when ZMQ_EVENTS says it has input (for handlers that block on
//  receive); others may be handed out with nothing to read, and their
//  handlers must receive without blocking.

#ifndef HERD_POLLER_H_INCLUDED
#define HERD_POLLER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

typedef struct _herd_poller_t herd_poller_t;

//  An empty poller.
herd_poller_t *
    herd_poller_new (void);

//  Destroy; nulls the caller's pointer. The readers are not destroyed.
void
    herd_poller_destroy (herd_poller_t **self_p);

//  Watch reader (a zsock_t or zactor_t); exact as above.
void
    herd_poller_add (herd_poller_t *self, void *reader, bool exact);

//  Stop watching reader; one never added is ignored.
void
    herd_poller_remove (herd_poller_t *self, void *reader);

//  Say reader was used other than by a receive that found it empty.
void
    herd_poller_touch (herd_poller_t *self, void *reader);

//  Say the last use of reader, a reader handed out by the last wait, was a
//  receive that found it empty (EAGAIN): its fd tells the truth again, and
//  the next wait need not ask it (two system calls saved per wake). Say it
//  only if nothing was sent on reader since that receive.
void
    herd_poller_settled (herd_poller_t *self, void *reader);

//  A reader that may have input, waiting at most timeout ms for one (0:
//  never wait, -1: no limit). NULL when the time ran out or poll(2) failed
//  (herd_poller_terminated), or, rarely, when the fds woke for commands
//  that brought no message; callers loop.
void *
    herd_poller_wait (herd_poller_t *self, int timeout);

//  True if the last wait failed for another reason than a signal, or
//  czmq's interrupt flag is up.
bool
    herd_poller_terminated (herd_poller_t *self);

//  Self test of this class.
void
    herd_poller_test (bool verbose);

#endif
