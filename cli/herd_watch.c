//  herd_watch.c - herd monitor and herd graph: the whole herd seen from its config.

#include "herd_watch.h"
#include "../common/herd_msg.h"

#include <cjson/cJSON.h>
#include <czmq.h>

#define HERD_WATCH_WAIT 2500        //  ms to wait for a node's snapshot

//  Collect one STATS snapshot from every node with a monitor endpoint, for
//  at most wait ms. Returns {NAME: snapshot or null}.
static cJSON *
s_collect (const herd_config_t *config, int wait)
{
    cJSON *nodes = cJSON_CreateObject ();
    zsock_t *sub = zsock_new (ZMQ_SUB);
    zsock_set_subscribe (sub, HERD_MSG_STATS);
    size_t expected = 0;
    for (size_t i = 0; i < config->node_count; i++) {
        cJSON_AddNullToObject (nodes, config->nodes[i].name);
        if (config->nodes[i].monitor && zsock_connect (sub, "%s", config->nodes[i].monitor) == 0)
            expected++;
    }
    zpoller_t *poller = zpoller_new (sub, NULL);
    int64_t deadline = zclock_mono () + wait;
    size_t seen = 0;
    while (seen < expected && zclock_mono () < deadline && !zsys_interrupted) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            continue;
        zmsg_t *msg = zmsg_recv (sub);
        herd_msg_t in;
        char reason[HERD_MSG_REASON_MAX];
        if (msg && herd_msg_decode (&in, msg, HERD_MSG_MONITOR, NULL, reason, sizeof (reason)) == 0
            && in.id == HERD_MSG_ID_MONITOR_STATS) {
            char *name = strndup (in.name.data, in.name.size);
            cJSON *slot = cJSON_GetObjectItemCaseSensitive (nodes, name);
            cJSON *snapshot = cJSON_ParseWithLength (in.json.data, in.json.size);
            if (cJSON_IsNull (slot) && cJSON_IsObject (snapshot)) {
                cJSON_ReplaceItemInObjectCaseSensitive (nodes, name, snapshot);
                snapshot = NULL;
                seen++;
            }
            cJSON_Delete (snapshot);
            free (name);
        }
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&sub);
    return nodes;
}

//  A role's field of a node snapshot, or NULL.
static const cJSON *
s_field (const cJSON *snapshot, const char *role, const char *name)
{
    const cJSON *object = cJSON_GetObjectItemCaseSensitive (snapshot, role);
    return object ? cJSON_GetObjectItemCaseSensitive (object, name) : NULL;
}

//  "up", "down" or "half": the state of the edge a-b from both ends.
static const char *
s_edge_state (const cJSON *nodes, const char *a, const char *b)
{
    const cJSON *from_a = s_field (cJSON_GetObjectItemCaseSensitive (nodes, a), "bus", "links");
    const cJSON *from_b = s_field (cJSON_GetObjectItemCaseSensitive (nodes, b), "bus", "links");
    const cJSON *a_sees = from_a ? cJSON_GetObjectItemCaseSensitive (from_a, b) : NULL;
    const cJSON *b_sees = from_b ? cJSON_GetObjectItemCaseSensitive (from_b, a) : NULL;
    const char *a_state = cJSON_GetStringValue (a_sees), *b_state = cJSON_GetStringValue (b_sees);
    bool up_a = a_state && streq (a_state, "up");
    bool up_b = b_state && streq (b_state, "up");
    return up_a && up_b ? "up" : up_a || up_b ? "half" : "down";
}

//  True when a node's snapshot shows a role whose loop stalled (herd_alive).
static bool
s_stalled (const cJSON *snapshot)
{
    const cJSON *role;
    cJSON_ArrayForEach (role, cJSON_GetObjectItemCaseSensitive (snapshot, "alive"))
        if (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (role, "stalled")))
            return true;
    return false;
}

//  Add "edges" and "digests_agree" to a collection; true when all is well.
static bool
s_judge (const herd_config_t *config, cJSON *nodes, cJSON *report)
{
    bool healthy = true;
    char *digest = NULL;
    bool agree = true;
    for (size_t i = 0; i < config->node_count; i++) {
        healthy &= !s_stalled (cJSON_GetObjectItemCaseSensitive (nodes, config->nodes[i].name));
        const cJSON *d = s_field (cJSON_GetObjectItemCaseSensitive (nodes, config->nodes[i].name),
                                  "bus", "digest");
        const cJSON *c = s_field (cJSON_GetObjectItemCaseSensitive (nodes, config->nodes[i].name),
                                  "bus", "clients");
        if (!cJSON_IsString (d) || !cJSON_IsNumber (c)) {
            healthy = agree = false;
            continue;
        }
        char *both = zsys_sprintf ("%.0f %s", c->valuedouble, d->valuestring);
        if (!digest)
            digest = both;
        else {
            agree &= streq (digest, both);
            zstr_free (&both);
        }
    }
    zstr_free (&digest);
    cJSON *edges = cJSON_AddArrayToObject (report, "edges");
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        for (size_t j = 0; j < node->neighbour_count; j++) {
            const herd_node_t *peer = &config->nodes[node->neighbours[j]];
            if (peer < node)
                continue;       //  each edge once
            const char *state = s_edge_state (nodes, node->name, peer->name);
            healthy &= streq (state, "up");
            cJSON *edge = cJSON_CreateObject ();
            cJSON_AddStringToObject (edge, "a", node->name);
            cJSON_AddStringToObject (edge, "b", peer->name);
            cJSON_AddStringToObject (edge, "state", state);
            cJSON_AddItemToArray (edges, edge);
        }
    }
    cJSON_AddBoolToObject (report, "digests_agree", agree);
    return healthy && agree;
}

//  Print a number field or "-" in width columns.
static void
s_print_number (const cJSON *snapshot, const char *role, const char *name, int width,
                const char *format)
{
    const cJSON *value = s_field (snapshot, role, name);
    if (cJSON_IsNumber (value))
        printf (format, width, value->valuedouble);
    else
        printf ("%*s", width, "-");
}

//  Print the table of one collection.
static void
s_print_table (const herd_config_t *config, const cJSON *nodes, const cJSON *report)
{
    printf ("%-12s %-5s %9s %-17s %6s %9s %10s %12s %11s  %s\n", "NODE", "STATE", "CLIENTS",
            "DIGEST", "CONNS", "IAMAT/s", "WHATSAT/s", "WHATSAT p99", "PLACES p99", "LINKS");
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        const cJSON *snapshot = cJSON_GetObjectItemCaseSensitive (nodes, node->name);
        bool up = cJSON_IsObject (snapshot);
        printf ("%-12s %-5s", node->name,
                !node->monitor ? "?" : !up ? "DOWN" : s_stalled (snapshot) ? "STALL" : "up");
        s_print_number (snapshot, "bus", "clients", 10, "%*.0f");
        const cJSON *digest = s_field (snapshot, "bus", "digest");
        printf (" %-17s", cJSON_IsString (digest) ? digest->valuestring : "-");
        s_print_number (snapshot, "gateway", "connections", 6, "%*.0f");
        s_print_number (snapshot, "gateway", "iamat_per_s", 10, "%*.1f");
        s_print_number (snapshot, "gateway", "whatsat_per_s", 11, "%*.1f");
        s_print_number (snapshot, "gateway", "whatsat_p99_ms", 10, "%*.1f");
        printf (" ms");
        s_print_number (snapshot, "places", "latency_p99_ms", 9, "%*.1f");
        printf (" ms ");
        const cJSON *links = s_field (snapshot, "bus", "links");
        const cJSON *link;
        cJSON_ArrayForEach (link, links)
            if (cJSON_IsString (link))
                printf (" %s:%s", link->string, link->valuestring);
        printf ("\n");
    }
    printf ("\nedges:");
    const cJSON *edge;
    cJSON_ArrayForEach (edge, cJSON_GetObjectItemCaseSensitive (report, "edges"))
        printf (" %s-%s:%s", cJSON_GetObjectItemCaseSensitive (edge, "a")->valuestring,
                cJSON_GetObjectItemCaseSensitive (edge, "b")->valuestring,
                cJSON_GetObjectItemCaseSensitive (edge, "state")->valuestring);
    printf ("\ndigests: %s\n",
            cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (report, "digests_agree"))
                ? "all agree"
                : "DIFFER (or a node is down)");
}

int
herd_watch_monitor (const herd_config_t *config, bool once, bool json)
{
    int rc = 0;
    do {
        cJSON *nodes = s_collect (config, once ? HERD_WATCH_WAIT : 1100);
        cJSON *report = cJSON_CreateObject ();
        bool healthy = s_judge (config, nodes, report);
        rc = healthy ? 0 : 1;
        if (json) {
            cJSON_AddItemToObject (report, "nodes", nodes);
            char *text = cJSON_Print (report);
            printf ("%s\n", text);
            free (text);
        }
        else {
            if (!once)
                printf ("\033[H\033[2J");       //  refresh in place
            s_print_table (config, nodes, report);
            if (!once)
                printf ("\n(refreshing every second; Ctrl-C to stop)\n");
            cJSON_Delete (nodes);
        }
        cJSON_Delete (report);
        fflush (stdout);
    } while (!once && !zsys_interrupted);
    return rc;
}

int
herd_watch_graph (const herd_config_t *config)
{
    cJSON *nodes = s_collect (config, HERD_WATCH_WAIT);
    cJSON *report = cJSON_CreateObject ();
    bool healthy = s_judge (config, nodes, report);
    printf ("graph herd {\n    node [shape=box, style=rounded];\n");
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        bool up = cJSON_IsObject (cJSON_GetObjectItemCaseSensitive (nodes, node->name));
        printf ("    \"%s\" [label=\"%s\\n%s\", color=%s];\n", node->name, node->name,
                node->client, up ? "green" : "red");
    }
    const cJSON *edge;
    cJSON_ArrayForEach (edge, cJSON_GetObjectItemCaseSensitive (report, "edges")) {
        const char *state = cJSON_GetObjectItemCaseSensitive (edge, "state")->valuestring;
        printf ("    \"%s\" -- \"%s\" [label=\"%s\", color=%s%s];\n",
                cJSON_GetObjectItemCaseSensitive (edge, "a")->valuestring,
                cJSON_GetObjectItemCaseSensitive (edge, "b")->valuestring, state,
                streq (state, "up") ? "green" : streq (state, "half") ? "orange" : "red",
                streq (state, "up") ? "" : ", style=dashed");
    }
    printf ("}\n");
    cJSON_Delete (nodes);
    cJSON_Delete (report);
    return healthy ? 0 : 1;
}
