//  herd_checkup.h - herd check: a config tested before a node runs on it (nginx -t).
//
//  Loads the config as a node would (the same refusals, the same message),
//  then, for each node this host runs, tries what the node will do: create
//  and write its log and data directories and the run_dir, bind each of its
//  TCP ports, read its secret certificate. Nothing is left behind but the
//  directories a node would create anyway.

#ifndef HERD_CHECKUP_H_INCLUDED
#define HERD_CHECKUP_H_INCLUDED

#include <stdbool.h>

#include "../common/herd_config.h"

//  Whether a node's client host is this machine's (herd up's selection).
typedef bool (herd_checkup_local_fn) (const char *host);

//  herd check: check the config at path; with only, that node alone, else
//  every node is_local picks. Prints one line a problem or warning on
//  stderr, "herd: check: FILE: node 'NAME': ...", then a verdict. Returns
//  0 when there is no problem (warnings do not count), else 1.
int
    herd_checkup_run (const char *path, const char *only, herd_checkup_local_fn *is_local);

#endif
