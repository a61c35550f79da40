//  herd_watch.h - herd monitor and herd graph: the whole herd seen from its config.
//
//  Both subscribe to every node's monitor endpoint (bus/herd_monitor.h) and
//  read the STATS snapshots the nodes publish once a second.

#ifndef HERD_WATCH_H_INCLUDED
#define HERD_WATCH_H_INCLUDED

#include <stdbool.h>

#include "../common/herd_config.h"

//  herd monitor: a table of every node (up or down, clients, digest, rates,
//  p99s, links) and every edge, refreshed in place each second until
//  SIGINT; once prints one snapshot and returns; json prints it as JSON.
//  Returns 0 when every node is up, its links are up and digests agree.
int
    herd_watch_monitor (const herd_config_t *config, bool once, bool json);

//  herd graph: the topology as Graphviz DOT with live node and link state.
int
    herd_watch_graph (const herd_config_t *config);

#endif
