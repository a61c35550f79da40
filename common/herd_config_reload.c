//  herd_config_reload.c - a reload (SIGHUP): what may change while a node runs, and what changed.
//
//  Compares two loaded configs through herd_config.h alone: the running
//  one and the one just read. herd_config_reload_check names what cannot
//  apply live (the process would have to restart); herd_config_reload_changes
//  describes, for the log, what will.

#include "herd_config.h"
#include "herd_check.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdarg.h>

//  True if two optional strings differ.
static bool
s_differ (const char *left, const char *right)
{
    return (left == NULL) != (right == NULL) || (left && strcmp (left, right) != 0);
}

//  Append "; " and a printf'd part to *text (NULL: start it).
static void
s_append (char **text_p, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_append (char **text_p, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *part = zsys_vprintf (format, args);
    va_end (args);
    assert (part);
    char *longer = *text_p ? zsys_sprintf ("%s; %s", *text_p, part) : strdup (part);
    assert (longer);
    free (part);
    free (*text_p);
    *text_p = longer;
}

//  Append " MARKNAME" to a word list (a fresh string, never NULL).
static void
s_add_word (char **list_p, const char *mark, const char *name)
{
    char *longer = zsys_sprintf ("%s %s%s", *list_p, mark, name);
    assert (longer);
    free (*list_p);
    *list_p = longer;
}

//  Whether node name's neighbour name is the same peer in both configs:
//  there in both, at the same bus, sync and certificate.
static bool
s_same_peer (const herd_node_t *left, const herd_node_t *right)
{
    return left && right && !s_differ (left->bus, right->bus)
           && !s_differ (left->sync, right->sync) && !s_differ (left->cert, right->cert);
}

//  True if node has a neighbour called name in config.
static bool
s_has_neighbour (const herd_config_t *config, const herd_node_t *node, const char *name)
{
    for (size_t i = 0; i < node->neighbour_count; i++)
        if (streq (config->nodes[node->neighbours[i]].name, name))
            return true;
    return false;
}

//  The node's own keys that cannot change live, into *why_p.
static void
s_check_node (const herd_config_t *running, const herd_config_t *next, const char *name,
              char **why_p)
{
    const herd_node_t *old = herd_config_node (running, name);
    const herd_node_t *now = herd_config_node (next, name);
    if (!old || !now) {
        s_append (why_p, "node '%s' is not in the file", name);
        return;
    }
    struct {
        const char *key, *before, *after;
    } keys[] = {{"client", old->client, now->client}, {"bus", old->bus, now->bus},
                {"sync", old->sync, now->sync},       {"log", old->log, now->log},
                {"data", old->data, now->data},       {"monitor", old->monitor, now->monitor},
                {"metrics", old->metrics, now->metrics}, {"cert", old->cert, now->cert}};
    for (size_t i = 0; i < sizeof (keys) / sizeof (keys[0]); i++)
        if (s_differ (keys[i].before, keys[i].after))
            s_append (why_p, "node '%s' %s %s -> %s", name, keys[i].key,
                      keys[i].before ? keys[i].before : "(none)",
                      keys[i].after ? keys[i].after : "(none)");
}

//  The herd-wide settings that cannot change live, into *why_p.
static void
s_check_herd (const herd_config_t *running, const herd_config_t *next, char **why_p)
{
    //  The name is the herd's identity on the wire: another name is another
    //  herd, which the running neighbours would refuse
    if (s_differ (running->name, next->name))
        s_append (why_p, "herd name %s -> %s", running->name, next->name);
    if (s_differ (running->run_dir, next->run_dir))
        s_append (why_p, "herd run_dir %s -> %s", running->run_dir, next->run_dir);
    if (running->fsync_always != next->fsync_always)
        s_append (why_p, "herd fsync %s -> %s", running->fsync_always ? "always" : "everysec",
                  next->fsync_always ? "always" : "everysec");
    if (running->curve != next->curve)
        s_append (why_p, "security curve %s -> %s", running->curve ? "on" : "off",
                  next->curve ? "on" : "off");
    //  The key was read from the environment at start; a running process
    //  sees no new environment
    if (s_differ (running->places.key_env, next->places.key_env))
        s_append (why_p, "places key_env %s -> %s", running->places.key_env,
                  next->places.key_env);
    //  With CURVE, the bus's ZAP handler holds the public keys of the
    //  nodes there were at start
    bool same_nodes = running->node_count == next->node_count;
    for (size_t i = 0; same_nodes && i < running->node_count; i++) {
        const herd_node_t *other = herd_config_node (next, running->nodes[i].name);
        same_nodes = other && !s_differ (other->cert, running->nodes[i].cert);
    }
    if (running->curve && next->curve && !same_nodes)
        s_append (why_p, "security curve is on and nodes or their certificates changed "
                         "(the allowed keys are loaded at start)");
}

int
herd_config_reload_check (const herd_config_t *running, const herd_config_t *next,
                          const char *name, char **why_p)
{
    char *why = NULL;
    s_check_node (running, next, name, &why);
    s_check_herd (running, next, &why);
    if (why_p) {
        *why_p = why ? zsys_sprintf ("%s: cannot change while the node runs", why) : NULL;
        assert (!why || *why_p);
    }
    bool refused = why != NULL;
    free (why);
    return refused ? -1 : 0;
}

//  Node name's neighbours: + added, - removed, ~ at other endpoints
//  (relinked), into *text_p.
static void
s_neighbour_changes (const herd_config_t *running, const herd_config_t *next,
                     const char *name, char **text_p)
{
    const herd_node_t *old = herd_config_node (running, name);
    const herd_node_t *now = herd_config_node (next, name);
    char *peers = strdup ("");
    assert (peers);
    for (size_t i = 0; now && i < now->neighbour_count; i++) {
        const herd_node_t *peer = &next->nodes[now->neighbours[i]];
        const char *mark = !old || !s_has_neighbour (running, old, peer->name) ? "+"
                           : !s_same_peer (herd_config_node (running, peer->name), peer)
                               ? "~"
                               : NULL;
        if (mark)
            s_add_word (&peers, mark, peer->name);
    }
    for (size_t i = 0; old && i < old->neighbour_count; i++) {
        const herd_node_t *peer = &running->nodes[old->neighbours[i]];
        if (!now || !s_has_neighbour (next, now, peer->name))
            s_add_word (&peers, "-", peer->name);
    }
    if (*peers)
        s_append (text_p, "neighbours%s", peers);
    free (peers);
}

//  Nodes elsewhere in the herd, added or removed, into *text_p.
static void
s_node_changes (const herd_config_t *running, const herd_config_t *next, char **text_p)
{
    char *nodes = strdup ("");
    assert (nodes);
    for (size_t i = 0; i < next->node_count; i++)
        if (!herd_config_node (running, next->nodes[i].name))
            s_add_word (&nodes, "+", next->nodes[i].name);
    for (size_t i = 0; i < running->node_count; i++)
        if (!herd_config_node (next, running->nodes[i].name))
            s_add_word (&nodes, "-", running->nodes[i].name);
    if (*nodes)
        s_append (text_p, "nodes%s", nodes);
    free (nodes);
}

//  Numbers of the herd and places sections, into *text_p.
static void
s_number_changes (const herd_config_t *running, const herd_config_t *next, char **text_p)
{
    struct {
        const char *key;
        int64_t before, after;
    } numbers[] = {
        {"max_line", (int64_t) running->max_line, (int64_t) next->max_line},
        {"max_output", (int64_t) running->max_output, (int64_t) next->max_output},
        {"max_output_total", (int64_t) running->max_output_total,
         (int64_t) next->max_output_total},
        {"max_pending", (int64_t) running->max_pending, (int64_t) next->max_pending},
        {"max_clients", (int64_t) running->max_clients, (int64_t) next->max_clients},
        {"idle_timeout_ms", running->idle_timeout_ms, next->idle_timeout_ms},
        {"line_timeout_ms", running->line_timeout_ms, next->line_timeout_ms},
        {"max_time_ahead_s", running->max_time_ahead_s, next->max_time_ahead_s},
        {"ack_timeout_ms", running->ack_timeout_ms, next->ack_timeout_ms},
        {"log_requests", (int64_t) running->log_requests_every,
         (int64_t) next->log_requests_every},
        {"places timeout_ms", running->places.timeout_ms, next->places.timeout_ms},
        {"places connect_timeout_ms", running->places.connect_timeout_ms,
         next->places.connect_timeout_ms},
        {"places concurrency", running->places.concurrency, next->places.concurrency},
        {"places retries", running->places.retries, next->places.retries},
        {"places enterprise_fields", running->places.enterprise_fields,
         next->places.enterprise_fields},
        {"places cache_ttl_ms", running->places.cache_ttl_ms, next->places.cache_ttl_ms},
        {"places cache_max", running->places.cache_max, next->places.cache_max},
    };
    for (size_t i = 0; i < sizeof (numbers) / sizeof (numbers[0]); i++)
        if (numbers[i].before != numbers[i].after)
            s_append (text_p, "%s %" PRId64 " -> %" PRId64, numbers[i].key, numbers[i].before,
                      numbers[i].after);
}

//  The log's and places' named settings, into *text_p.
static void
s_setting_changes (const herd_config_t *running, const herd_config_t *next, char **text_p)
{
    static const char *levels[] = {"debug", "info", "warning", "error"};
    if (running->log_level != next->log_level && running->log_level >= 0
        && running->log_level <= 3 && next->log_level >= 0 && next->log_level <= 3)
        s_append (text_p, "log_level %s -> %s", levels[running->log_level],
                  levels[next->log_level]);
    if (running->log_json != next->log_json)
        s_append (text_p, "log_format %s -> %s", running->log_json ? "json" : "text",
                  next->log_json ? "json" : "text");
    if (s_differ (running->places.flavour, next->places.flavour))
        s_append (text_p, "places flavour %s -> %s", running->places.flavour,
                  next->places.flavour);
    if (s_differ (running->places.url, next->places.url))
        s_append (text_p, "places url changed");    //  it may hold a key: not logged
}

char *
herd_config_reload_changes (const herd_config_t *running, const herd_config_t *next,
                            const char *name)
{
    char *text = NULL;
    s_neighbour_changes (running, next, name, &text);
    s_node_changes (running, next, &text);
    s_number_changes (running, next, &text);
    s_setting_changes (running, next, &text);
    if (!text) {
        text = strdup ("no change");
        assert (text);
    }
    return text;
}

//  -------------------------------------------------------------------------
//  Self test

//  Nodes A (client port 1, bus 2) and B (3, 4) to build tests on.
#define S_TEST_A "node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:2\n    log = a.log\n"
#define S_TEST_B "node = B\n    client = 127.0.0.1:3\n    bus = tcp://127.0.0.1:4\n    log = b.log\n"

//  A config from text that must load.
static herd_config_t *
s_test_load (const char *text)
{
    char *error = NULL;
    herd_config_t *config = herd_config_load_string (text, "t.cfg", &error);
    HERD_CHECK_STR (error ? error : "(loaded)", "(loaded)");
    HERD_CHECK (config);
    return config;
}

//  The running config of the tests: A and B linked, max_pending 64.
static herd_config_t *
s_test_running (void)
{
    return s_test_load ("herd\n    max_pending = 64\n" S_TEST_A S_TEST_B "edges\n    edge = A B\n");
}

//  What applies live is described.
static void
s_test_live (void)
{
    herd_config_t *running = s_test_running ();
    //  Same file: nothing changes
    char *why = NULL;
    HERD_CHECK_INT (herd_config_reload_check (running, running, "A", &why), 0);
    HERD_CHECK (why == NULL);
    char *changes = herd_config_reload_changes (running, running, "A");
    HERD_CHECK_STR (changes, "no change");
    free (changes);

    //  A node added, the edge moved to it, limits and places changed: live
    herd_config_t *next = s_test_load (
        "herd\n    max_pending = 128\n    log_level = debug\n" S_TEST_A S_TEST_B
        "node = C\n    client = 127.0.0.1:5\n    bus = tcp://127.0.0.1:6\n    log = c.log\n"
        "edges\n    edge = A C\nplaces\n    timeout_ms = 900\n");
    HERD_CHECK_INT (herd_config_reload_check (running, next, "A", &why), 0);
    changes = herd_config_reload_changes (running, next, "A");
    HERD_CHECK_STR (changes, "neighbours +C -B; nodes +C; max_pending 64 -> 128; "
                             "places timeout_ms 3000 -> 900; log_level info -> debug");
    free (changes);
    changes = herd_config_reload_changes (running, next, "B");
    HERD_CHECK_CONTAINS (changes, "neighbours -A; nodes +C");
    free (changes);
    herd_config_destroy (&next);

    //  A neighbour at another bus endpoint is relinked...
    next = s_test_load (S_TEST_A "node = B\n    client = 127.0.0.1:3\n"
                                 "    bus = tcp://127.0.0.1:9\n    log = b.log\n"
                                 "edges\n    edge = A B\n");
    HERD_CHECK_INT (herd_config_reload_check (running, next, "A", &why), 0);
    changes = herd_config_reload_changes (running, next, "A");
    HERD_CHECK_CONTAINS (changes, "neighbours ~B");
    free (changes);
    //  ...but this node's own bus cannot change
    HERD_CHECK_INT (herd_config_reload_check (running, next, "B", &why), -1);
    HERD_CHECK_STR (why, "node 'B' bus tcp://127.0.0.1:4 -> tcp://127.0.0.1:9: "
                         "cannot change while the node runs");
    free (why);
    herd_config_destroy (&next);
    herd_config_destroy (&running);
}

//  What cannot apply live is refused, every change named.
static void
s_test_refused (void)
{
    herd_config_t *running = s_test_running ();
    herd_config_t *next = s_test_load (
        S_TEST_A "herd\n    name = other\n    fsync = always\n"
                 "    run_dir = elsewhere\nnode = B\n    client = 127.0.0.1:7\n"
                 "    bus = tcp://127.0.0.1:4\n    log = b.log\n"
                 "places\n    key_env = OTHER_KEY\n");
    char *why = NULL;
    HERD_CHECK_INT (herd_config_reload_check (running, next, "B", &why), -1);
    HERD_CHECK_STR (why, "node 'B' client 127.0.0.1:3 -> 127.0.0.1:7; herd name herd -> other; "
                         "herd run_dir run -> "
                         "elsewhere; herd fsync everysec -> always; places key_env "
                         "GOOGLE_API_KEY -> OTHER_KEY: cannot change while the node runs");
    free (why);
    HERD_CHECK_INT (herd_config_reload_check (running, next, "Z", &why), -1);
    HERD_CHECK_CONTAINS (why, "node 'Z' is not in the file");
    free (why);
    HERD_CHECK_INT (herd_config_reload_check (running, next, "A", NULL), -1);
    herd_config_destroy (&next);
    herd_config_destroy (&running);
}

//  A config of node A with certificate cert_a (and node C with cert_c if
//  not NULL), CURVE on or off.
static herd_config_t *
s_test_load_curve (bool curve, const char *cert_a, const char *cert_c)
{
    char *node_c = cert_c ? zsys_sprintf ("node = C\n    client = 127.0.0.1:5\n"
                                          "    bus = tcp://127.0.0.1:6\n"
                                          "    log = c.log\n    cert = %s\n",
                                          cert_c)
                          : strdup ("");
    char *text = zsys_sprintf ("%snode = A\n    client = 127.0.0.1:1\n"
                               "    bus = tcp://127.0.0.1:2\n    log = a.log\n    cert = %s\n%s",
                               curve ? "security\n    curve = on\n" : "", cert_a, node_c);
    herd_config_t *config = s_test_load (text);
    free (text);
    free (node_c);
    return config;
}

//  CURVE: the allowed keys are fixed at start, so no node comes or goes.
static void
s_test_curve (void)
{
    char dir[] = "/tmp/herd_config_reload_XXXXXX";
    HERD_CHECK (mkdtemp (dir));
    char *cert_a = zsys_sprintf ("%s/a.cert", dir), *cert_c = zsys_sprintf ("%s/c.cert", dir);
    for (int i = 0; i < 2; i++) {
        zcert_t *cert = zcert_new ();
        HERD_CHECK (zcert_save (cert, i ? cert_c : cert_a) == 0);
        zcert_destroy (&cert);
    }
    herd_config_t *running = s_test_load_curve (false, cert_a, NULL);
    herd_config_t *next = s_test_load_curve (true, cert_a, NULL);
    char *why = NULL;
    HERD_CHECK_INT (herd_config_reload_check (running, next, "A", &why), -1);
    HERD_CHECK_CONTAINS (why, "security curve off -> on");
    free (why);
    herd_config_destroy (&running);
    running = next;
    next = s_test_load_curve (true, cert_a, cert_c);
    HERD_CHECK_INT (herd_config_reload_check (running, next, "A", &why), -1);
    HERD_CHECK_CONTAINS (why, "security curve is on and nodes or their certificates changed");
    free (why);
    for (int i = 0; i < 2; i++) {
        char *secret = zsys_sprintf ("%s_secret", i ? cert_c : cert_a);
        unlink (secret);
        unlink (i ? cert_c : cert_a);
        free (secret);
    }
    rmdir (dir);
    free (cert_a);
    free (cert_c);
    herd_config_destroy (&next);
    herd_config_destroy (&running);
}

void
herd_config_reload_test (bool verbose)
{
    (void) verbose;
    s_test_live ();
    s_test_refused ();
    s_test_curve ();
}
