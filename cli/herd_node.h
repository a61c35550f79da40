//  herd_node.h - runs one node, or one role of it, until SIGINT or SIGTERM.
//
//  All roles in one process are joined over inproc:// endpoints; a single
//  role (split mode) joins the others of its node over ipc:// endpoints in
//  the config's run_dir. The thin shell behind `herd node`.

#ifndef HERD_NODE_H_INCLUDED
#define HERD_NODE_H_INCLUDED

#include "../common/herd_config.h"

//  Run node's role ("gateway", "bus", "places", or NULL for all three) until
//  a SIGINT or SIGTERM. Returns the process exit code: 0 after a clean stop,
//  1 when the node could not start (the reason is printed on stderr), as
//  when another process runs this node or role: each role holds a lock in
//  the node's data directory, taken before the journal or the log is opened.
int
    herd_node_run (const herd_config_t *config, const herd_node_t *node, const char *role);

#endif
