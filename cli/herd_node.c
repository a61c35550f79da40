//  herd_node.c - runs one node, or one role of it, until SIGINT or SIGTERM.
//
//  The main thread starts the actors, then waits for signals and, once a
//  second, checks that every actor's loop still turns (herd_alive). Run by
//  systemd (Type=notify) it says READY=1 once they have all started, pings
//  the watchdog only while none is stalled, and says STOPPING=1 on the way
//  out (herd_notify). SIGHUP reopens the log and reloads the config file:
//  the actors switch to it in their own threads (s_reload).

#include "herd_node.h"
#include "../common/herd_alive.h"
#include "../common/herd_msg.h"
#include "../common/herd_notify.h"
#include "../bus/herd_bus.h"
#include "../bus/herd_journal.h"
#include "../gateway/herd_gateway.h"
#include "../places/herd_places.h"
#include "../monitor/herd_collector.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
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

//  Take the lock file DIR/NAME (flock, exclusive, not waiting) and write our
//  pid into it. Returns its descriptor, to keep open while we run, or -1
//  after saying on stderr who holds it. The kernel drops the lock when the
//  process ends, however it ends; the file stays.
static int
s_lock_take (const herd_node_t *node, const char *name)
{
    //  mkdir -p the data directory (the journal would make it anyway)
    char *dir = strdup (node->data);
    assert (dir);
    for (char *slash = strchr (dir + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (dir, 0755);              //  EEXIST is fine; open says what failed
        *slash = '/';
    }
    mkdir (dir, 0755);
    free (dir);
    char path[4096];
    snprintf (path, sizeof (path), "%s/%s", node->data, name);
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1) {
        fprintf (stderr, "herd: %s: cannot open lock file %s: %s\n", node->name, path,
                 strerror (errno));
        return -1;
    }
    if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
        int error = errno;
        //  The holder writes its pid right after it takes the lock: if we
        //  came in between, the file is still empty for a moment
        char text[32] = "";
        for (int attempt = 0; attempt < 50 && atoi (text) <= 0; attempt++) {
            ssize_t size = pread (fd, text, sizeof (text) - 1, 0);
            text[size > 0 ? size : 0] = 0;
            if (atoi (text) <= 0)
                zclock_sleep (10);
        }
        if (error != EWOULDBLOCK)
            fprintf (stderr, "herd: %s: cannot lock %s: %s\n", node->name, path, strerror (error));
        else
        if (atoi (text) > 0)
            fprintf (stderr, "herd: %s: data directory %s is in use by process %d\n", node->name,
                     node->data, atoi (text));
        else
            fprintf (stderr, "herd: %s: data directory %s is in use by another process\n",
                     node->name, node->data);
        close (fd);
        return -1;
    }
    //  Always 12 bytes, written over the last holder's in place: no block
    //  to allocate, so a full disk does not keep a node from restarting
    char text[32];
    int size = snprintf (text, sizeof (text), "%-11d\n", (int) getpid ());
    if (pwrite (fd, text, (size_t) size, 0) != size || ftruncate (fd, size) == -1)
        fprintf (stderr, "herd: %s: cannot write our pid into %s: %s\n", node->name, path,
                 strerror (errno));
    return fd;
}

//  What the node says in systemctl status: what it serves, or which roles
//  are stalled (the watchdog is then held back).
static void
s_status (char *status, size_t size, const herd_node_t *node, const char *role, int stalled,
          int64_t now_ms)
{
    if (stalled) {
        int used = snprintf (status, size, "stalled:");
        for (int index = 0; index < HERD_ALIVE_ROLES && used > 0 && (size_t) used < size; index++)
            if (herd_alive_stalled (index, now_ms))
                used += snprintf (status + used, size - (size_t) used, " %s",
                                  herd_alive_name (index));
        if (used > 0 && (size_t) used < size)
            snprintf (status + used, size - (size_t) used, "; watchdog held back");
    }
    else
    if (role && !streq (role, "gateway"))
        snprintf (status, size, "%s ready", role);
    else
        snprintf (status, size, "serving clients on %s", node->client);
}

//  Close the three role locks that are open.
static void
s_lock_release (int *locks)
{
    for (int i = 0; i < 3; i++)
        if (locks[i] != -1)
            close (locks[i]);
}

//  Hand the actors a reloaded config, one after the other, and wait for
//  each to take it (RELOAD, herd_msg.h). True if all did; an actor that
//  does not answer within 10 s may still read the old config, which then
//  must stay (said in the log).
static bool
s_reload_actors (zactor_t **actors, const char **names, size_t count,
                 const herd_config_t *config, herd_log_t *log)
{
    bool all = true;
    for (size_t i = 0; i < count; i++) {
        if (!actors[i])
            continue;
        zsock_send (actors[i], "sp", HERD_MSG_RELOAD, (void *) config);
        zpoller_t *poller = zpoller_new (actors[i], NULL);
        bool answered = zpoller_wait (poller, 10000) != NULL;
        zpoller_destroy (&poller);
        if (answered)
            zsock_wait (actors[i]);
        else {
            herd_log_error (log, "main", "reload: the %s did not take the new configuration "
                                         "within 10 s; the old one is kept in memory",
                            names[i]);
            all = false;
        }
    }
    return all;
}

//  SIGHUP: load the config file again and, if every change can apply
//  while the node runs (herd_config_reload_check), hand it to the actors;
//  else say why in the log and change nothing. Returns the new config, now
//  in use (the caller frees the one it replaced, unless *keep_old_p: an
//  actor did not answer), or NULL when refused.
static herd_config_t *
s_reload (const herd_config_t *running, const char *name, zactor_t **actors,
          const char **names, size_t count, herd_log_t *log, bool *keep_old_p)
{
    *keep_old_p = false;
    char *error = NULL;
    herd_config_t *next = herd_config_load (running->path, &error);
    if (!next) {
        herd_log_error (log, "main", "reload refused: %s; keeping the running configuration",
                        error);
        free (error);
        return NULL;
    }
    if (herd_config_reload_check (running, next, name, &error) == -1) {
        herd_log_error (log, "main", "reload refused: %s; keeping the running configuration",
                        error);
        free (error);
        herd_config_destroy (&next);
        return NULL;
    }
    char *changes = herd_config_reload_changes (running, next, name);
    herd_log_configure (log, next->log_requests_every, (herd_log_level_t) next->log_level,
                        next->log_json);
    *keep_old_p = !s_reload_actors (actors, names, count, next, log);
    herd_log_printf (log, "main", "reloaded configuration: %s", changes);
    free (changes);
    return next;
}

//  The main thread of a running node: what its loop needs.
typedef struct {
    const herd_config_t *config;    //  in force: the start's, or the last reload's
    const herd_node_t *node;        //  this node in config
    const char *role;               //  the one role run, or NULL for a whole node
    herd_config_t *owned;           //  the config of the last reload, if any
    herd_notify_t *notify;          //  the service manager, or NULL
    herd_log_t *log;
    zactor_t *actors[3];            //  gateway, bus, places; NULL when not run here
    zactor_t *collector;            //  the node's monitor, where the bus runs
    char said[256];                 //  the STATUS last sent
    int64_t watchdog_ms;            //  the watchdog's interval, 0 if none
    int64_t pinged_at;              //  when the watchdog was last pinged
} s_main_t;

//  Signals are taken by this thread alone, with sigwait: block them before
//  any actor thread starts, so every thread inherits the mask.
static void
s_block_signals (sigset_t *signals)
{
    zsys_handler_set (NULL);
    sigemptyset (signals);
    sigaddset (signals, SIGINT);
    sigaddset (signals, SIGTERM);
    sigaddset (signals, SIGHUP);
    pthread_sigmask (SIG_BLOCK, signals, NULL);
    signal (SIGPIPE, SIG_IGN);
}

//  What the roles run here need before they start: one copy of each role
//  of a node at a time (a lock in its data directory per role; lock: the
//  bus, which owns the journal), taken before the journal is read or the
//  log written, so a second copy leaves both alone; libcurl; the log. The
//  log, or NULL (the caller releases locks).
static herd_log_t *
s_open (const herd_config_t *config, const herd_node_t *node, const bool run[3], int *locks)
{
    static const char *lock_names[] = {"places.lock", "lock", "gateway.lock"};
    bool lock_roles[] = {run[2], run[1], run[0]};
    for (int i = 0; i < 3; i++)
        if (node->data && lock_roles[i] && (locks[i] = s_lock_take (node, lock_names[i])) == -1)
            return NULL;
    if (run[2] && herd_places_global_init () == -1) {
        fprintf (stderr, "herd: %s: cannot initialise libcurl\n", node->name);
        return NULL;
    }
    herd_log_t *log = herd_log_new (node->log, node->name);
    if (!log) {
        fprintf (stderr, "herd: %s: cannot open log file %s: %s\n", node->name, node->log,
                 strerror (errno));
        return NULL;
    }
    herd_log_configure (log, config->log_requests_every, (herd_log_level_t) config->log_level,
                        config->log_json);
    return log;
}

//  Tell the service manager STATUS, with READY=1 first when ready.
static void
s_main_status (s_main_t *self, bool ready, int stalled, int64_t now_ms)
{
    char status[sizeof (self->said)];
    s_status (status, sizeof (status), self->node, self->role, stalled, now_ms);
    if (ready)
        herd_notify_send (self->notify, "READY=1\nSTATUS=%s", status);
    else
    if (!streq (status, self->said))
        herd_notify_send (self->notify, "STATUS=%s", status);
    memcpy (self->said, status, sizeof (self->said));
}

//  A look at the actors' last turns after each wake-up: the watchdog is
//  pinged every half of its interval, but only while no actor is stalled,
//  so a node whose actor stays stuck is restarted.
static void
s_main_watch (s_main_t *self)
{
    int64_t now_ms = zclock_mono ();
    int stalled = herd_alive_check (self->log, now_ms);
    if (!self->notify)
        return;
    //  A tenth early rather than one wake-up (a second) late
    int64_t watchdog_ms = self->watchdog_ms;
    bool due = watchdog_ms && now_ms - self->pinged_at >= watchdog_ms - watchdog_ms / 10;
    if (due && !stalled) {
        herd_notify_send (self->notify, "WATCHDOG=1");
        self->pinged_at = now_ms;
    }
    s_main_status (self, false, stalled, now_ms);
}

//  SIGHUP: reopen the log first (logrotate's postrotate sends SIGHUP),
//  then reload the config.
static void
s_main_reload (s_main_t *self)
{
    if (herd_log_reopen (self->log) == -1)
        fprintf (stderr, "herd: %s: cannot reopen log file %s: %s\n", self->node->name,
                 self->node->log, strerror (errno));
    herd_log_printf (self->log, "main", "log reopened on SIGHUP");
    herd_notify_reloading (self->notify);
    static const char *actor_names[] = {"gateway", "bus", "places"};
    bool keep_old;
    herd_config_t *next = s_reload (self->config, self->node->name, self->actors, actor_names, 3,
                                    self->log, &keep_old);
    if (next) {
        self->node = herd_config_node (next, self->node->name);
        self->config = next;
        if (keep_old)
            self->owned = NULL;         //  leaked on purpose: an actor may read it
        herd_config_destroy (&self->owned);
        self->owned = next;
    }
    s_main_status (self, true, 0, 0);
}

//  Serve until SIGINT or SIGTERM, which it returns: SIGHUP reopens the log
//  and reloads, and at least once a second, a look at the actors.
static int
s_main_loop (s_main_t *self, const sigset_t *signals)
{
    while (true) {
        //  A second, or less when the next ping is due sooner; one
        //  overdue (held back by a stall) waits no less than the rest
        int64_t watchdog_ms = self->watchdog_ms;
        int64_t wait_ms = watchdog_ms && watchdog_ms < 1000 ? watchdog_ms : 1000;
        int64_t due_ms = self->pinged_at + watchdog_ms - zclock_mono ();
        if (watchdog_ms && due_ms > 0 && due_ms < wait_ms)
            wait_ms = due_ms;
        struct timespec wait = {wait_ms / 1000, (long) (wait_ms % 1000) * 1000000};
        int signo = sigtimedwait (signals, NULL, &wait);
        s_main_watch (self);
        if (signo == SIGHUP)
            s_main_reload (self);
        else
        if (signo != -1)
            return signo;
    }
}

//  Every actor has started (the gateway listens): say so, serve, stop.
static void
s_main_serve (s_main_t *self, const sigset_t *signals)
{
    const herd_node_t *node = self->node;
    if (self->actors[0])
        printf ("herd: %s %s serving clients on %s (log %s)\n", node->name,
                self->role ? "gateway" : "node", node->client, node->log);
    else
        printf ("herd: %s %s ready (log %s)\n", node->name, self->role, node->log);
    fflush (stdout);
    herd_log_flush (self->log);
    s_main_status (self, true, 0, 0);
    self->watchdog_ms = herd_notify_watchdog_ms (self->notify);
    self->pinged_at = zclock_mono ();
    int signo = s_main_loop (self, signals);
    herd_notify_send (self->notify, "STOPPING=1\nSTATUS=stopping on %s", strsignal (signo));
    herd_log_printf (self->log, "main", "stopping on %s", strsignal (signo));
}

int
herd_node_run (const herd_config_t *config, const herd_node_t *node, const char *role)
{
    bool split = role != NULL;
    bool all = !split;
    bool run[3] = {all || streq (role, "gateway"), all || streq (role, "bus"),
                   all || streq (role, "places")};
    sigset_t signals;
    s_block_signals (&signals);
    //  Before any thread starts: it unsets NOTIFY_SOCKET and the watchdog's
    //  variables, which no other thread may be reading
    s_main_t self = {.config = config, .node = node, .role = role, .notify = herd_notify_new ()};
    int locks[] = {-1, -1, -1};
    self.log = s_open (config, node, run, locks);
    if (!self.log) {
        s_lock_release (locks);
        herd_notify_destroy (&self.notify);
        return 1;
    }
    if (split)
        mkdir (config->run_dir, 0755);
    char *bus_endpoint = herd_config_endpoint (config, node, "bus", split);
    char *places_endpoint = herd_config_endpoint (config, node, "places", split);
    char *monitor_endpoint = herd_config_endpoint (config, node, "monitor", split);
    const char *url = getenv ("HERD_PLACES_URL");
    const char *key = getenv (config->places.key_env);
    herd_log_printf (self.log, "main", "starting %s (pid %d)%s%s", role ? role : "node",
                     (int) getpid (), url ? ", Places URL from HERD_PLACES_URL: " : "",
                     url ? url : "");

    herd_places_args_t places_args = {&config->places, places_endpoint, url, key, self.log,
                                      monitor_endpoint};
    herd_bus_args_t bus_args = {config, node, bus_endpoint, self.log, monitor_endpoint};
    herd_gateway_args_t gateway_args = {config, node, bus_endpoint, places_endpoint, self.log,
                                        monitor_endpoint};
    //  The monitor first, beside the bus: while a large journal loads,
    //  /readyz says so
    herd_collector_args_t collector_args = {node, monitor_endpoint, HERD_JOURNAL_FORMAT,
                                            self.log};
    bool ok = true;
    if (run[1])
        ok = (self.collector = s_start (herd_collector_actor, &collector_args)) != NULL;
    if (ok && run[2])
        ok = (self.actors[2] = s_start (herd_places_actor, &places_args)) != NULL;
    if (ok && run[1])
        ok = (self.actors[1] = s_start (herd_bus_actor, &bus_args)) != NULL;
    if (ok && run[0])
        ok = (self.actors[0] = s_start (herd_gateway_actor, &gateway_args)) != NULL;
    if (ok)
        s_main_serve (&self, &signals);
    else
        fprintf (stderr, "herd: %s: could not start; see %s\n", node->name, node->log);

    for (int i = 0; i < 3; i++)
        zactor_destroy (&self.actors[i]);
    zactor_destroy (&self.collector);       //  last: the roles report until they stop
    herd_log_printf (self.log, "main", "stopped");
    herd_log_destroy (&self.log);
    herd_config_destroy (&self.owned);
    free (bus_endpoint);
    free (places_endpoint);
    free (monitor_endpoint);
    s_lock_release (locks);
    herd_notify_destroy (&self.notify);
    return ok ? 0 : 1;
}
