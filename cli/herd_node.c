//  herd_node.c - runs one node, or one role of it, until SIGINT or SIGTERM.
//
//  The main thread starts the actors, then waits for signals and, once a
//  second, checks that every actor's loop still turns (herd_alive).

#include "herd_node.h"
#include "../common/herd_alive.h"
#include "../bus/herd_bus.h"
#include "../gateway/herd_gateway.h"
#include "../places/herd_places.h"

#include <signal.h>
#include <sys/stat.h>

//  Start an actor and wait for its set-up; NULL if it failed.
static zactor_t *
s_start (zactor_fn *task, void *args)
{
    zactor_t *actor = zactor_new (task, args);
    if (actor && zsock_wait (actor) != 0)
        zactor_destroy (&actor);
    return actor;
}

int
herd_node_run (const herd_config_t *config, const herd_node_t *node, const char *role)
{
    bool split = role != NULL;
    bool all = !split;
    bool run_gateway = all || streq (role, "gateway");
    bool run_bus = all || streq (role, "bus");
    bool run_places = all || streq (role, "places");

    //  Signals are taken by this thread alone, with sigwait: block them
    //  before any actor thread starts, so every thread inherits the mask
    zsys_handler_set (NULL);
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    signal (SIGPIPE, SIG_IGN);

    if (run_places && herd_places_global_init () == -1) {
        fprintf (stderr, "herd: %s: cannot initialise libcurl\n", node->name);
        return 1;
    }
    herd_log_t *log = herd_log_new (node->log, node->name);
    if (!log) {
        fprintf (stderr, "herd: %s: cannot open log file %s: %s\n", node->name, node->log,
                 strerror (errno));
        return 1;
    }
    if (split)
        mkdir (config->run_dir, 0755);
    char *bus_endpoint = herd_config_endpoint (config, node, "bus", split);
    char *places_endpoint = herd_config_endpoint (config, node, "places", split);
    const char *url = getenv ("HERD_PLACES_URL");
    const char *key = getenv (config->places.key_env);
    herd_log_printf (log, "main", "starting %s (pid %d)%s%s", role ? role : "node",
                     (int) getpid (), url ? ", Places URL from HERD_PLACES_URL: " : "",
                     url ? url : "");

    herd_places_args_t places_args = {&config->places, places_endpoint, url, key, log};
    herd_bus_args_t bus_args = {config, node, bus_endpoint, log};
    herd_gateway_args_t gateway_args = {config, node, bus_endpoint, places_endpoint, log};
    zactor_t *places = NULL, *bus = NULL, *gateway = NULL;
    bool ok = true;
    if (run_places)
        ok = (places = s_start (herd_places_actor, &places_args)) != NULL;
    if (ok && run_bus)
        ok = (bus = s_start (herd_bus_actor, &bus_args)) != NULL;
    if (ok && run_gateway)
        ok = (gateway = s_start (herd_gateway_actor, &gateway_args)) != NULL;

    if (ok) {
        if (run_gateway)
            printf ("herd: %s %s serving clients on %s (log %s)\n", node->name,
                    split ? "gateway" : "node", node->client, node->log);
        else
            printf ("herd: %s %s ready (log %s)\n", node->name, role, node->log);
        fflush (stdout);
        herd_log_flush (log);
        int signo = 0;
        //  SIGHUP reopens the log (logrotate); SIGINT or SIGTERM stops; and
        //  at least once a second, a look at the actors' last turns
        while (true) {
            struct timespec second = {1, 0};
            signo = sigtimedwait (&signals, NULL, &second);
            herd_alive_check (log, herd_alive_now_ms ());
            if (signo == SIGHUP) {
                if (herd_log_reopen (log) == -1)
                    fprintf (stderr, "herd: %s: cannot reopen log file %s: %s\n", node->name,
                             node->log, strerror (errno));
                herd_log_printf (log, "main", "log reopened on SIGHUP");
            }
            else
            if (signo != -1)
                break;
        }
        herd_log_printf (log, "main", "stopping on %s", strsignal (signo));
    }
    else
        fprintf (stderr, "herd: %s: could not start; see %s\n", node->name, node->log);

    zactor_destroy (&gateway);
    zactor_destroy (&bus);
    zactor_destroy (&places);
    herd_log_printf (log, "main", "stopped");
    herd_log_destroy (&log);
    free (bus_endpoint);
    free (places_endpoint);
    return ok ? 0 : 1;
}
