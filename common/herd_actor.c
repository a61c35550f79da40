//  herd_actor.c - what the node's actors share: start-up and pipe commands.
//
//  See herd_actor.h.

#include "herd_actor.h"
#include "herd_check.h"
#include "herd_msg.h"

bool
herd_actor_ready (zsock_t *pipe, bool ok)
{
    zsock_signal (pipe, ok ? 0 : (byte) -1);
    if (ok)
        return true;
    //  Set-up failed (logged): wait to be destroyed
    zmsg_t *msg;
    while ((msg = zmsg_recv (pipe))) {
        char *command = zmsg_popstr (msg);
        bool term = !command || streq (command, "$TERM");
        zstr_free (&command);
        zmsg_destroy (&msg);
        if (term)
            break;
    }
    return false;
}

//  The config pointer of a RELOAD's one frame; NULL if malformed.
static const herd_config_t *
s_reload_config (zmsg_t *msg)
{
    if (zmsg_size (msg) != 1 || zframe_size (zmsg_first (msg)) != sizeof (void *))
        return NULL;
    const herd_config_t *config;
    memcpy (&config, zframe_data (zmsg_first (msg)), sizeof (config));
    return config;
}

int
herd_actor_handle_pipe (zsock_t *pipe, const herd_actor_commands_t *commands, void *self)
{
    zmsg_t *msg = zmsg_recv (pipe);
    char *command = msg ? zmsg_popstr (msg) : NULL;
    int rc = 0;
    const herd_config_t *config = NULL;
    if (!command || streq (command, "$TERM"))
        rc = -1;
    else
    if (streq (command, "VERBOSE")) {
        if (commands->verbose)
            commands->verbose (self);
    }
    else
    if (streq (command, HERD_MSG_RELOAD) && (config = s_reload_config (msg))) {
        if (commands->reload)
            commands->reload (self, config);
        zsock_signal (pipe, 0);
    }
    else
    if (commands->unknown)
        commands->unknown (self, command);
    zstr_free (&command);
    zmsg_destroy (&msg);
    return rc;
}

//  -------------------------------------------------------------------------
//  Self test

//  What the test actor was told.
typedef struct {
    int verbose;
    const herd_config_t *config;
    char unknown[32];
} s_seen_t;

static void
s_test_verbose (void *self)
{
    ((s_seen_t *) self)->verbose++;
}

static void
s_test_reload (void *self, const herd_config_t *config)
{
    ((s_seen_t *) self)->config = config;
}

static void
s_test_unknown (void *self, const char *command)
{
    snprintf (((s_seen_t *) self)->unknown, sizeof (((s_seen_t *) self)->unknown), "%s",
              command);
}

//  An actor that reports what it saw, as a string, before it stops.
static void
s_test_actor (zsock_t *pipe, void *args)
{
    zsock_signal (pipe, 0);
    if (!herd_actor_ready (pipe, args == NULL))
        return;
    static const herd_actor_commands_t commands = {s_test_verbose, s_test_reload,
                                                   s_test_unknown};
    s_seen_t seen = {0};
    while (herd_actor_handle_pipe (pipe, &commands, &seen) == 0)
        ;
    zstr_sendf (pipe, "%d %p %s", seen.verbose, (void *) seen.config, seen.unknown);
}

void
herd_actor_test (bool verbose)
{
    (void) verbose;
    herd_config_t config;
    zactor_t *actor = zactor_new (s_test_actor, NULL);
    HERD_CHECK_INT (zsock_wait (actor), 0);
    zstr_send (actor, "VERBOSE");
    zsock_send (actor, "sp", HERD_MSG_RELOAD, (void *) &config);
    HERD_CHECK_INT (zsock_wait (actor), 0);                 //  answered once reloaded
    zsock_send (actor, "ss", HERD_MSG_RELOAD, "not a pointer");   //  malformed: unknown
    zsock_send (actor, "s", "$TERM");
    char *seen = zstr_recv (actor);
    char expected[64];
    snprintf (expected, sizeof (expected), "1 %p %s", (void *) &config, HERD_MSG_RELOAD);
    HERD_CHECK_STR (seen, expected);
    zstr_free (&seen);
    zactor_destroy (&actor);

    //  Set-up failed: -1, then waits for $TERM past other commands
    actor = zactor_new (s_test_actor, (void *) "fail");
    HERD_CHECK (zsock_wait (actor) != 0);
    zstr_send (actor, "VERBOSE");
    zactor_destroy (&actor);
}
