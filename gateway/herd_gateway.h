//  herd_gateway.h - the gateway: client TCP connections and the line protocol.
//
//  An actor with one epoll loop over the listening socket, every client
//  connection and its ZeroMQ sockets (their ZMQ_FD). It reads lines with a
//  cursor into a per-connection buffer, answers IAMAT at once (and sends the
//  record to its bus), asks the bus for WHATSAT's location and the places
//  worker for the places, and writes responses in request order per
//  connection, once per loop turn. No client can hold up another.
//
//  Hostile clients cost only themselves (herd section of herd.cfg): a slow
//  reader is dropped past max_output bytes of unread answers; past
//  max_pending requests in flight a connection is not read until answers go
//  out; idle_timeout_ms and line_timeout_ms close silent and trickling
//  connections; past max_clients new connections are closed at once; client
//  sockets have TCP keepalive; running out of descriptors never spins.

#ifndef HERD_GATEWAY_H_INCLUDED
#define HERD_GATEWAY_H_INCLUDED

#include <czmq.h>

#include "../common/herd_config.h"
#include "../common/herd_log.h"

typedef struct {
    const herd_config_t *config;
    const herd_node_t *node;        //  this node: name and client address
    const char *bus_endpoint;       //  bus ROUTER to connect to
    const char *places_endpoint;    //  places ROUTER to connect to
    herd_log_t *log;                //  shared log, not owned
    const char *monitor;            //  the node's monitor to report to, or NULL
} herd_gateway_args_t;

//  The actor: zactor_new (herd_gateway_actor, &args). args and what it
//  points to must live until the actor is destroyed. After zactor_new,
//  zsock_wait (actor) returns 0 when clients can connect, or non-zero when the
//  client address could not be bound (logged and printed on stderr).
void
    herd_gateway_actor (zsock_t *pipe, void *args);

//  Self test of this class.
void
    herd_gateway_test (bool verbose);

#endif
