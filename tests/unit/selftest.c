//  selftest.c - runs the self test of every class, or the ones named.
//
//  Usage: herd_selftest [-v] [name ...]   e.g. herd_selftest herd_proto
//  Each test runs in a child process so one crash fails one test, not the
//  run; prints "N passed, N failed" and exits non-zero on any failure.

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/herd_actor.h"
#include "../../common/herd_alarm.h"
#include "../../common/herd_alive.h"
#include "../../common/herd_buffer.h"
#include "../../common/herd_config.h"
#include "../../common/herd_config_scan.h"
#include "../../common/herd_decimal.h"
#include "../../common/herd_hist.h"
#include "../../common/herd_log.h"
#include "../../common/herd_notify.h"
#include "../../common/herd_poller.h"
#include "../../common/herd_proto.h"
#include "../../common/herd_record.h"
#include "../../common/herd_report.h"
#include "../../bus/herd_bus.h"
#include "../../bus/herd_catchup.h"
#include "../../bus/herd_durable.h"
#include "../../bus/herd_journal.h"
#include "../../common/herd_msg.h"
#include "../../bus/herd_peer.h"
#include "../../bus/herd_refusals.h"
#include "../../bus/herd_store.h"
#include "../../bus/herd_table.h"
#include "../../gateway/herd_accept.h"
#include "../../gateway/herd_conn.h"
#include "../../gateway/herd_gateway.h"
#include "../../gateway/herd_shed.h"
#include "../../gateway/herd_timers.h"
#include "../../gateway/herd_turns.h"
#include "../../gateway/herd_uplink.h"
#include "../../places/herd_places.h"
#include "../../places/herd_google.h"
#include "../../places/herd_placesbody.h"
#include "../../places/herd_placesnew.h"
#include "../../places/herd_placescache.h"
#include "../../places/herd_standin.h"
#include "../../monitor/herd_collector.h"
#include "../../monitor/herd_monitor.h"

typedef struct {
    const char *name;
    void (*test) (bool verbose);
} test_item_t;

//  The registry: one line a class, in dependency order.
static test_item_t s_tests[] = {
    {"herd_buffer", herd_buffer_test},
    {"herd_decimal", herd_decimal_test},
    {"herd_proto", herd_proto_test},
    {"herd_record", herd_record_test},
    {"herd_hist", herd_hist_test},
    {"herd_log", herd_log_test},
    {"herd_alive", herd_alive_test},
    {"herd_notify", herd_notify_test},
    {"herd_actor", herd_actor_test},
    {"herd_poller", herd_poller_test},
    {"herd_alarm", herd_alarm_test},
    {"herd_config_scan", herd_config_scan_test},
    {"herd_config", herd_config_test},
    {"herd_config_reload", herd_config_reload_test},
    {"herd_placesbody", herd_placesbody_test},
    {"herd_placesnew", herd_placesnew_test},
    {"herd_google", herd_google_test},
    {"herd_placescache", herd_placescache_test},
    {"herd_standin", herd_standin_test},
    {"herd_places", herd_places_test},
    {"herd_msg", herd_msg_test},
    {"herd_report", herd_report_test},
    {"herd_monitor", herd_monitor_test},
    {"herd_collector", herd_collector_test},
    {"herd_table", herd_table_test},
    {"herd_store", herd_store_test},
    {"herd_refusals", herd_refusals_test},
    {"herd_peer", herd_peer_test},
    {"herd_catchup", herd_catchup_test},
    {"herd_journal", herd_journal_test},
    {"herd_durable", herd_durable_test},
    {"herd_bus", herd_bus_test},
    {"herd_timers", herd_timers_test},
    {"herd_turns", herd_turns_test},
    {"herd_shed", herd_shed_test},
    {"herd_conn", herd_conn_test},
    {"herd_accept", herd_accept_test},
    {"herd_uplink", herd_uplink_test},
    {"herd_gateway", herd_gateway_test},
};

//  Run one test in a child process; true if it passed.
static bool
s_run (const test_item_t *item, bool verbose)
{
    fflush (stdout);
    pid_t pid = fork ();
    if (pid == 0) {
        item->test (verbose);
        fflush (stdout);
        exit (0);       //  not _exit: LeakSanitizer checks at exit
    }
    int status = 0;
    waitpid (pid, &status, 0);
    bool ok = WIFEXITED (status) && WEXITSTATUS (status) == 0;
    printf ("%-20s %s\n", item->name, ok ? "ok" : "FAILED");
    return ok;
}

int
main (int argc, char *argv[])
{
    bool verbose = false;
    int first = 1;
    if (argc > 1 && strcmp (argv[1], "-v") == 0) {
        verbose = true;
        first = 2;
    }
    herd_places_global_init ();     //  in the main thread, as herd_node_run does
    size_t count = sizeof (s_tests) / sizeof (s_tests[0]);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < count; i++) {
        bool wanted = first >= argc;
        for (int a = first; a < argc; a++)
            if (strcmp (argv[a], s_tests[i].name) == 0)
                wanted = true;
        if (!wanted)
            continue;
        if (s_run (&s_tests[i], verbose))
            passed++;
        else
            failed++;
    }
    printf ("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
