//  herd_alive.c - proof that every actor's loop turns.

#include "herd_alive.h"
#include "herd_check.h"

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

typedef struct {
    _Atomic int64_t turned;     //  last loop turn in this process, ms; 0 never
    _Atomic int64_t heard;      //  last STATS from another process, ms; 0 never
    int64_t stalled_last;       //  the checker's: the turn it saw stall; 0 none
} s_role_t;

static s_role_t s_roles[HERD_ALIVE_ROLES];
static int64_t s_checked_at;    //  the checker's last call, ms; 0 never

static const char *s_names[HERD_ALIVE_ROLES] = {"gateway", "bus", "places", "log", "monitor"};

const char *
herd_alive_name (herd_alive_role_t role)
{
    return role < HERD_ALIVE_ROLES ? s_names[role] : "?";
}

int
herd_alive_role (const char *name)
{
    for (int role = 0; name && role < HERD_ALIVE_ROLES; role++)
        if (strcmp (name, s_names[role]) == 0)
            return role;
    return -1;
}

void
herd_alive_beat (herd_alive_role_t role, int64_t now_ms)
{
    //  0 means never: a clock at 0 (just booted) counts as 1
    atomic_store_explicit (&s_roles[role].turned, now_ms ? now_ms : 1, memory_order_relaxed);
}

void
herd_alive_heard (herd_alive_role_t role, int64_t now_ms)
{
    if (role < HERD_ALIVE_ROLES)
        atomic_store_explicit (&s_roles[role].heard, now_ms ? now_ms : 1, memory_order_relaxed);
}

bool
herd_alive_local (herd_alive_role_t role)
{
    return atomic_load_explicit (&s_roles[role].turned, memory_order_relaxed) != 0;
}

//  The role's last sign of life, ms; 0 when absent.
static int64_t
s_last (herd_alive_role_t role)
{
    int64_t turned = atomic_load_explicit (&s_roles[role].turned, memory_order_relaxed);
    return turned ? turned : atomic_load_explicit (&s_roles[role].heard, memory_order_relaxed);
}

int64_t
herd_alive_age_ms (herd_alive_role_t role, int64_t now_ms)
{
    int64_t last = s_last (role);
    if (!last)
        return -1;
    return now_ms > last ? now_ms - last : 0;
}

bool
herd_alive_stalled (herd_alive_role_t role, int64_t now_ms)
{
    return herd_alive_age_ms (role, now_ms) > HERD_ALIVE_BOUND_MS;
}

int
herd_alive_check (herd_log_t *log, int64_t now_ms)
{
    //  A check long after the last one means this process was stopped or
    //  starved (SIGSTOP, a frozen VM): every loop in it looks as old as the
    //  check's own delay, so judge only the next, punctual, check. The
    //  first check has nothing to measure its delay by: it judges nothing
    bool late = !s_checked_at || now_ms - s_checked_at > HERD_ALIVE_BOUND_MS / 2;
    s_checked_at = now_ms;
    int stalled = 0;
    for (int role = 0; role < HERD_ALIVE_ROLES; role++) {
        s_role_t *entry = &s_roles[role];
        int64_t last = s_last (role);
        if (!last)
            continue;
        if (entry->stalled_last && last != entry->stalled_last) {
            //  The stall lasted from the turn before it to a turn since the
            //  last check: exact to within the check's second
            if (log)
                herd_log_printf (log, "main", "%s turning again after %" PRId64 " ms",
                                 s_names[role], last - entry->stalled_last);
            entry->stalled_last = 0;
        }
        if (late || !herd_alive_stalled (role, now_ms))
            continue;
        stalled++;
        if (!entry->stalled_last) {
            entry->stalled_last = last;
            if (log)
                herd_log_warning (log, "main", "%s stalled: no %s for %" PRId64 " ms",
                                  s_names[role],
                                  herd_alive_local (role) ? "loop turn"
                                                          : "STATS reached the monitor",
                                  now_ms - last);
        }
    }
    return stalled;
}

//  -------------------------------------------------------------------------
//  Self test

//  An actor's loop for the test: turns a few times, then stops.
static void *
s_test_actor (void *arg)
{
    (void) arg;
    for (int turn = 0; turn < 20; turn++) {
        herd_alive_beat (HERD_ALIVE_BUS, zclock_mono ());
        zclock_sleep (2);
    }
    return NULL;
}

//  A whole file as a string; caller frees.
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "rb");
    HERD_CHECK (file);
    char *text = calloc (1, 65536);
    HERD_CHECK (text);
    size_t size = fread (text, 1, 65535, file);
    text[size] = 0;
    fclose (file);
    return text;
}

//  How many times needle occurs in haystack.
static int
s_count (const char *haystack, const char *needle)
{
    int count = 0;
    for (const char *at = haystack; (at = strstr (at, needle)); at++)
        count++;
    return count;
}

//  Role names.
static void
s_test_names (void)
{
    HERD_CHECK_STR (herd_alive_name (HERD_ALIVE_PLACES), "places");
    HERD_CHECK_INT (herd_alive_role ("gateway"), HERD_ALIVE_GATEWAY);
    HERD_CHECK_INT (herd_alive_role ("log"), HERD_ALIVE_LOG);
    HERD_CHECK_INT (herd_alive_role ("main"), -1);
    HERD_CHECK_INT (herd_alive_role (NULL), -1);

}

//  Roles in a process, from nothing run, through turns, to stalls.
static void
s_test_roles (void)
{
    //  Nothing runs yet: every role absent, none stalled
    int64_t now = zclock_mono ();
    for (int role = 0; role < HERD_ALIVE_ROLES; role++) {
        HERD_CHECK_INT (herd_alive_age_ms (role, now), -1);
        HERD_CHECK (!herd_alive_local (role));
        HERD_CHECK (!herd_alive_stalled (role, now + 60000));
    }
    //  The first check judges nothing (it has no last check to measure its
    //  own delay by), so a process stopped before it made one is not taken
    //  for stalled actors
    herd_alive_heard (HERD_ALIVE_GATEWAY, now - 60000);
    HERD_CHECK_INT (herd_alive_check (NULL, now), 0);

    //  A loop in another thread turns, then stops: its turns are seen here,
    //  young at first, stalled once the bound has passed without a turn
    pthread_t thread;
    HERD_CHECK (pthread_create (&thread, NULL, s_test_actor, NULL) == 0);
    pthread_join (thread, NULL);
    now = zclock_mono ();
    HERD_CHECK (herd_alive_local (HERD_ALIVE_BUS));
    int64_t age = herd_alive_age_ms (HERD_ALIVE_BUS, now);
    HERD_CHECK (age >= 0 && age < 1000);
    HERD_CHECK (!herd_alive_stalled (HERD_ALIVE_BUS, now));
    HERD_CHECK (!herd_alive_stalled (HERD_ALIVE_BUS, now - age + HERD_ALIVE_BOUND_MS));
    HERD_CHECK (herd_alive_stalled (HERD_ALIVE_BUS, now - age + HERD_ALIVE_BOUND_MS + 1));
    HERD_CHECK_INT (herd_alive_age_ms (HERD_ALIVE_PLACES, now), -1);
    herd_alive_beat (HERD_ALIVE_BUS, now);

    //  The checker logs a stall once, and the recovery once. A log's writer
    //  thread beats the log role: healthy throughout
    char dir[] = "/tmp/herd_alive_test_XXXXXX";
    HERD_CHECK (mkdtemp (dir));
    char path[128];
    snprintf (path, sizeof (path), "%s/node.log", dir);
    herd_log_t *log = herd_log_new (path, "Hill");
    HERD_CHECK (log);
    now = zclock_mono ();
    herd_alive_beat (HERD_ALIVE_GATEWAY, now - 6000);
    HERD_CHECK_INT (herd_alive_check (log, now), 1);
    HERD_CHECK_INT (herd_alive_check (log, now + 10), 1);
    herd_alive_beat (HERD_ALIVE_GATEWAY, now + 20);
    HERD_CHECK_INT (herd_alive_check (log, now + 20), 0);
    HERD_CHECK_INT (herd_alive_check (log, now + 30), 0);

    //  A role of another process, known by its STATS
    herd_alive_heard (HERD_ALIVE_PLACES, now - 7000);
    HERD_CHECK (!herd_alive_local (HERD_ALIVE_PLACES));
    HERD_CHECK_INT (herd_alive_age_ms (HERD_ALIVE_PLACES, now), 7000);
    HERD_CHECK_INT (herd_alive_check (log, now), 1);
    herd_alive_heard (HERD_ALIVE_PLACES, now);
    HERD_CHECK_INT (herd_alive_check (log, now), 0);
    //  ... but a role that turns here is judged by its turns
    herd_alive_heard (HERD_ALIVE_GATEWAY, now - 100000);
    HERD_CHECK_INT (herd_alive_age_ms (HERD_ALIVE_GATEWAY, now + 20), 0);

    //  A check that comes late (this process was stopped) judges nothing:
    //  the next one does
    HERD_CHECK_INT (herd_alive_check (log, now - 9000), 0);
    herd_alive_beat (HERD_ALIVE_GATEWAY, now - 6000);
    HERD_CHECK_INT (herd_alive_check (log, now), 0);
    HERD_CHECK_INT (herd_alive_check (log, now + 10), 1);
    herd_alive_beat (HERD_ALIVE_GATEWAY, now + 30);
    HERD_CHECK_INT (herd_alive_check (log, now + 30), 0);

    herd_log_flush (log);
    HERD_CHECK (herd_alive_local (HERD_ALIVE_LOG));
    char *text = s_slurp (path);
    HERD_CHECK_INT (s_count (text, " stalled"), 3);
    HERD_CHECK_CONTAINS (text, " Hill main gateway stalled: no loop turn for 6000 ms\n");
    HERD_CHECK_CONTAINS (text, " Hill main gateway turning again after 6020 ms\n");
    HERD_CHECK_CONTAINS (text, " Hill main places stalled: no STATS reached the monitor for 7000 ms\n");
    HERD_CHECK_CONTAINS (text, " Hill main places turning again after 7000 ms\n");
    HERD_CHECK_CONTAINS (text, " Hill main gateway stalled: no loop turn for 6010 ms\n");
    HERD_CHECK_CONTAINS (text, " Hill main gateway turning again after 6030 ms\n");
    HERD_CHECK_INT (s_count (text, "turning again"), 3);
    free (text);
    herd_log_destroy (&log);
    unlink (path);
    rmdir (dir);
}

void
herd_alive_test (bool verbose)
{
    (void) verbose;
    s_test_names ();
    s_test_roles ();
}
