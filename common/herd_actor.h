//  herd_actor.h - what the node's actors (gateway, bus, places) share:
//  their start-up hand-shake and the commands on their pipe.
//
//  An actor signals zactor's start (0) at once, builds itself, then tells
//  the main thread whether that worked with a second signal (0 or -1,
//  herd_actor_ready). Its pipe then carries the commands of herd_msg.h:
//  "$TERM", "VERBOSE" and "RELOAD" with a const herd_config_t *, which
//  herd_actor_handle_pipe decodes and hands to the actor's callbacks.

#ifndef HERD_ACTOR_H_INCLUDED
#define HERD_ACTOR_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "herd_config.h"

//  What an actor does with its pipe's commands; each callback gets the
//  actor's self. A NULL callback ignores its command.
typedef struct {
    //  "VERBOSE": trace to stderr too
    void (*verbose) (void *self);
    //  "RELOAD": switch to config, already checked; the pipe is signalled
    //  (0) when the callback returns, and the caller frees the old config
    //  only then
    void (*reload) (void *self, const herd_config_t *config);
    //  any other command (or a malformed RELOAD)
    void (*unknown) (void *self, const char *command);
} herd_actor_commands_t;

//  Tell the caller whether the actor could set itself up; when it could
//  not, wait for "$TERM" (an actor returns only after it). Returns ok.
bool
    herd_actor_ready (zsock_t *pipe, bool ok);

//  Receive one command from the pipe and act on it. Returns -1 when the
//  actor must stop ("$TERM", or the pipe was interrupted), else 0.
int
    herd_actor_handle_pipe (zsock_t *pipe, const herd_actor_commands_t *commands, void *self);

//  Self test of this class.
void
    herd_actor_test (bool verbose);

#endif
