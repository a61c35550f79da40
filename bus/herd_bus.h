//  herd_bus.h - the bus: a node's location table and the flood between nodes.
//
//  An actor that owns the node's only copy of the location table. It binds a
//  ROUTER where its gateway sends UPDATE and LOOKUP (common/herd_msg.h), binds
//  the node's PUB endpoint, and connects one SUB to the PUB endpoint of every
//  neighbour named by the edges of herd.cfg. An update is applied only if it
//  is newer than what the table holds (herd_record_newer) and republished
//  only when applied, so floods stop on any topology. Bus links going up and
//  down (ZeroMQ socket monitor) are logged.

#ifndef HERD_BUS_H_INCLUDED
#define HERD_BUS_H_INCLUDED

#include <czmq.h>

#include "../common/herd_config.h"
#include "../common/herd_log.h"

typedef struct {
    const herd_config_t *config;
    const herd_node_t *node;        //  this node
    const char *endpoint;           //  ROUTER bind endpoint for the gateway
    herd_log_t *log;                //  shared log, not owned
    const char *monitor;            //  the node's monitor to report to, or NULL
} herd_bus_args_t;

//  The actor: zactor_new (herd_bus_actor, &args). args and what it points
//  to must live until the actor is destroyed. After zactor_new,
//  zsock_wait (actor) returns 0 when the bus is serving, or non-zero when set-up
//  failed (a bind; the reason is logged), after which destroy it.
void
    herd_bus_actor (zsock_t *pipe, void *args);

//  Self test of this class.
void
    herd_bus_test (bool verbose);

#endif
