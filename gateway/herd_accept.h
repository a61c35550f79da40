//  herd_accept.h - the gateway's listening socket: accepting and refusing
//  clients.
//
//  Accepts connections and sets their sockets up (non-blocking, no Nagle,
//  TCP keepalive, a bounded send buffer). Past max_clients, or when a
//  client would take one of the descriptors kept for the node's own
//  sockets, a connection is accepted and closed at once; out of
//  descriptors, a spare one is freed to do the same, so the listener never
//  spins; when even that fails, accepting pauses a moment. Refusals are
//  logged at once, then at most once a second.

#ifndef HERD_ACCEPT_H_INCLUDED
#define HERD_ACCEPT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/herd_log.h"

typedef struct _herd_accept_t herd_accept_t;

//  herd_accept_next: no connection waits now (or accepting is paused).
#define HERD_ACCEPT_NONE  -1
//  herd_accept_next: a connection was refused (or the call was
//  interrupted): call again.
#define HERD_ACCEPT_AGAIN -2

//  Listen on host:port and watch the listener in epoll with data as its
//  event data; NULL on failure, with why filled.
herd_accept_t *
    herd_accept_new (const char *host, int port, int epoll, uint64_t data, herd_log_t *log,
                     int64_t now, char *why, size_t why_size);

//  Close the listener.
void
    herd_accept_destroy (herd_accept_t **self_p);

//  Take one connection off the listener: returns the socket of a client
//  to serve, with peer set to "host:port", or HERD_ACCEPT_AGAIN or
//  HERD_ACCEPT_NONE. clients is how many are served now. now in ms.
int
    herd_accept_next (herd_accept_t *self, size_t clients, size_t max_clients, int64_t now,
                      char *peer, size_t peer_size);

//  Periodic work: log refusals not logged yet, accept again after a pause.
void
    herd_accept_tick (herd_accept_t *self, int64_t now);

//  When herd_accept_tick has work next (ms); INT64_MAX if none.
int64_t
    herd_accept_wake (herd_accept_t *self);

//  Raise the soft limit on descriptors towards max_clients plus the node's
//  own, as far as the hard limit allows; warn when clients will be refused
//  before max_clients.
void
    herd_accept_raise_fd_limit (herd_accept_t *self, size_t max_clients);

//  Self test of this class.
void
    herd_accept_test (bool verbose);

#endif
