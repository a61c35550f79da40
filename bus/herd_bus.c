//  herd_bus.c - the bus actor: location table, flooding, link monitoring.

#include "herd_bus.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"
#include "../common/herd_record.h"

#define HERD_BUS_HWM 200000         //  messages queued per link before PUB drops

//  One stored location: the AT line and its client time, parsed once.
typedef struct {
    int64_t time_sec;
    int32_t time_nsec;
    size_t size;
    char line[];
} s_entry_t;

//  Free a table entry (zhashx destructor).
static void
s_entry_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

typedef struct {
    zsock_t *pipe;                  //  actor command pipe
    zsock_t *router;                //  gateway channel
    zsock_t *pub;                   //  updates out to neighbours
    zsock_t *sub;                   //  updates in from neighbours
    zactor_t *monitor;              //  events of sub: bus links up/down
    zpoller_t *poller;
    zhashx_t *table;                //  client id -> s_entry_t
    const herd_config_t *config;
    const herd_node_t *node;
    herd_log_t *log;
    bool verbose;
    bool terminated;
    uint64_t applied;               //  updates applied (counters for logs)
    uint64_t stale;
    uint64_t dropped;
} s_self_t;

//  Name of the neighbour whose bus endpoint is endpoint, or "?".
static const char *
s_neighbour_name (s_self_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->node->neighbour_count; i++) {
        const herd_node_t *peer = &self->config->nodes[self->node->neighbours[i]];
        if (streq (peer->bus, endpoint))
            return peer->name;
    }
    return "?";
}

//  Destroy the bus state; nulls the pointer.
static void
s_self_destroy (s_self_t **self_p)
{
    s_self_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy (&self->poller);
    zactor_destroy (&self->monitor);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->pub);
    zsock_destroy (&self->router);
    zhashx_destroy (&self->table);
    free (self);
    *self_p = NULL;
}

//  Build the bus: bind the gateway channel and the PUB, connect the SUB to
//  every neighbour, start the monitor. Returns NULL (logged) on failure.
static s_self_t *
s_self_new (zsock_t *pipe, herd_bus_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    self->pipe = pipe;
    self->config = args->config;
    self->node = args->node;
    self->log = args->log;
    self->table = zhashx_new ();
    zhashx_set_destructor (self->table, s_entry_destroy);

    self->router = zsock_new (ZMQ_ROUTER);
    self->pub = zsock_new (ZMQ_PUB);
    self->sub = zsock_new (ZMQ_SUB);
    if (!self->router || !self->pub || !self->sub) {
        herd_log_printf (self->log, "bus", "cannot create sockets: %s", zmq_strerror (zmq_errno ()));
        s_self_destroy (&self);
        return NULL;
    }
    zsock_set_sndhwm (self->pub, HERD_BUS_HWM);
    zsock_set_rcvhwm (self->sub, HERD_BUS_HWM);
    zsock_set_rcvhwm (self->router, HERD_BUS_HWM);
    zsock_set_sndhwm (self->router, HERD_BUS_HWM);
    if (zsock_bind (self->router, "%s", args->endpoint) == -1) {
        herd_log_printf (self->log, "bus", "cannot bind gateway channel %s: %s", args->endpoint,
                         zmq_strerror (zmq_errno ()));
        s_self_destroy (&self);
        return NULL;
    }
    if (zsock_bind (self->pub, "%s", self->node->bus) == -1) {
        herd_log_printf (self->log, "bus", "cannot bind bus %s: %s", self->node->bus,
                         zmq_strerror (zmq_errno ()));
        s_self_destroy (&self);
        return NULL;
    }
    //  A dead neighbour is noticed by ZMTP heartbeats; a restarted one is
    //  reconnected within a second, and ZeroMQ resends our subscription.
    zsock_set_heartbeat_ivl (self->sub, 1000);
    zsock_set_heartbeat_timeout (self->sub, 3000);
    zsock_set_reconnect_ivl (self->sub, 100);
    zsock_set_reconnect_ivl_max (self->sub, 1000);
    zsock_set_subscribe (self->sub, HERD_MSG_TOPIC_UPDATE);

    self->monitor = zactor_new (zmonitor, self->sub);
    zstr_sendx (self->monitor, "LISTEN", "HANDSHAKE_SUCCEEDED", "DISCONNECTED", NULL);
    zstr_sendx (self->monitor, "START", NULL);
    zsock_wait (self->monitor);

    for (size_t i = 0; i < self->node->neighbour_count; i++) {
        const herd_node_t *peer = &self->config->nodes[self->node->neighbours[i]];
        if (zsock_connect (self->sub, "%s", peer->bus) == -1) {
            herd_log_printf (self->log, "bus", "cannot connect to %s at %s: %s", peer->name,
                             peer->bus, zmq_strerror (zmq_errno ()));
            s_self_destroy (&self);
            return NULL;
        }
    }
    self->poller = zpoller_new (self->pipe, self->router, self->sub, self->monitor, NULL);
    return self;
}

//  Apply an AT line if it is newer than the stored one; publish what was
//  applied. from names where it came from, for the log. Returns true if
//  applied.
static bool
s_self_apply (s_self_t *self, const char *line, size_t size, const char *from)
{
    herd_record_t record;
    if (herd_record_parse (line, size, &record) == -1) {
        self->dropped++;
        herd_log_data (self->log, "bus", from, line, size);
        herd_log_printf (self->log, "bus", "dropped a malformed update from %s", from);
        return false;
    }
    char *key = (char *) malloc (record.client.size + 1);
    assert (key);
    memcpy (key, record.client.data, record.client.size);
    key[record.client.size] = 0;

    s_entry_t *current = (s_entry_t *) zhashx_lookup (self->table, key);
    if (current) {
        herd_record_t stored = {
            .line = {current->line, current->size},
            .time_sec = current->time_sec,
            .time_nsec = current->time_nsec,
        };
        if (!herd_record_newer (&record, &stored)) {
            self->stale++;
            free (key);
            return false;
        }
    }
    s_entry_t *entry = (s_entry_t *) malloc (sizeof (s_entry_t) + size);
    assert (entry);
    entry->time_sec = record.time_sec;
    entry->time_nsec = record.time_nsec;
    entry->size = size;
    memcpy (entry->line, line, size);
    zhashx_update (self->table, key, entry);
    free (key);
    self->applied++;

    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, HERD_MSG_TOPIC_UPDATE);
    zmsg_addmem (msg, line, size);
    zmsg_send (&msg, self->pub);
    if (self->verbose)
        zsys_debug ("bus %s: applied from %s: %.*s", self->node->name, from, (int) size, line);
    return true;
}

//  Handle one message from the gateway: UPDATE or LOOKUP.
static void
s_self_handle_router (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    if (!msg)
        return;
    zframe_t *routing = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    if (command && streq (command, HERD_MSG_UPDATE) && zmsg_size (msg) == 1) {
        zframe_t *line = zmsg_first (msg);
        s_self_apply (self, (char *) zframe_data (line), zframe_size (line), "gateway");
    }
    else
    if (command && streq (command, HERD_MSG_LOOKUP) && zmsg_size (msg) == 2) {
        zframe_t *reqid = zmsg_pop (msg);
        zframe_t *client = zmsg_pop (msg);
        char *key = (char *) malloc (zframe_size (client) + 1);
        assert (key);
        memcpy (key, zframe_data (client), zframe_size (client));
        key[zframe_size (client)] = 0;
        s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->table, key);
        free (key);
        zframe_destroy (&client);

        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &routing);
        zmsg_addstr (reply, entry ? HERD_MSG_FOUND : HERD_MSG_NONE);
        zmsg_append (reply, &reqid);
        if (entry)
            zmsg_addmem (reply, entry->line, entry->size);
        zmsg_send (&reply, self->router);
    }
    else
        herd_log_printf (self->log, "bus", "dropped a malformed gateway message (%s)",
                         command ? command : "empty");
    zstr_free (&command);
    zframe_destroy (&routing);
    zmsg_destroy (&msg);
}

//  Handle one update from a neighbour; anything malformed is dropped.
static void
s_self_handle_sub (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->sub);
    if (!msg)
        return;
    zframe_t *topic = zmsg_first (msg);
    zframe_t *line = zmsg_next (msg);
    if (zmsg_size (msg) == 2 && zframe_streq (topic, HERD_MSG_TOPIC_UPDATE))
        s_self_apply (self, (char *) zframe_data (line), zframe_size (line), "neighbour");
    else {
        self->dropped++;
        herd_log_printf (self->log, "bus", "dropped a malformed bus message of %zu frames",
                         zmsg_size (msg));
    }
    zmsg_destroy (&msg);
}

//  Log a bus link going up or down, from the socket monitor.
static void
s_self_handle_monitor (s_self_t *self)
{
    char *event = NULL, *value = NULL, *endpoint = NULL;
    if (zstr_recvx (self->monitor, &event, &value, &endpoint, NULL) == 3) {
        const char *name = s_neighbour_name (self, endpoint);
        if (streq (event, "HANDSHAKE_SUCCEEDED"))
            herd_log_printf (self->log, "bus", "link up %s %s", name, endpoint);
        else
        if (streq (event, "DISCONNECTED"))
            herd_log_printf (self->log, "bus", "link down %s %s", name, endpoint);
    }
    zstr_free (&event);
    zstr_free (&value);
    zstr_free (&endpoint);
}

//  Handle a command on the actor pipe.
static void
s_self_handle_pipe (s_self_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "VERBOSE"))
        self->verbose = true;
    zstr_free (&command);
}

void
herd_bus_actor (zsock_t *pipe, void *args)
{
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (herd_bus_args_t *) args);
    zsock_signal (pipe, self ? 0 : (byte) -1);
    if (!self) {
        //  Wait for the caller's $TERM, as every actor must
        char *command = zstr_recv (pipe);
        zstr_free (&command);
        return;
    }
    herd_log_printf (self->log, "bus", "serving: bus %s, %zu neighbours", self->node->bus,
                     self->node->neighbour_count);
    while (!self->terminated) {
        void *which = zpoller_wait (self->poller, 1000);
        if (which == self->pipe)
            s_self_handle_pipe (self);
        else
        if (which == self->router)
            s_self_handle_router (self);
        else
        if (which == self->sub)
            s_self_handle_sub (self);
        else
        if (which == self->monitor)
            s_self_handle_monitor (self);
        else
        if (zpoller_terminated (self->poller))
            break;
        herd_log_tick (self->log);
    }
    herd_log_printf (self->log, "bus", "stopped: %zu clients, %" PRIu64 " applied, %" PRIu64
                     " stale, %" PRIu64 " dropped", zhashx_size (self->table), self->applied,
                     self->stale, self->dropped);
    s_self_destroy (&self);
}

//  -------------------------------------------------------------------------
//  Self test

//  Receive a reply of the bus with a bounded wait; NULL on time-out.
static zmsg_t *
s_recv_bounded (zsock_t *sock, int msecs)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    zmsg_t *msg = zpoller_wait (poller, msecs) ? zmsg_recv (sock) : NULL;
    zpoller_destroy (&poller);
    return msg;
}

//  Ask the bus for client; returns the stored line or NULL for NONE.
static char *
s_lookup (zsock_t *dealer, const char *client)
{
    zstr_sendx (dealer, HERD_MSG_LOOKUP, "req1", client, NULL);
    zmsg_t *reply = s_recv_bounded (dealer, 5000);
    HERD_CHECK (reply);
    char *kind = zmsg_popstr (reply);
    char *reqid = zmsg_popstr (reply);
    HERD_CHECK_STR (reqid, "req1");
    char *line = zmsg_popstr (reply);
    HERD_CHECK ((line != NULL) == streq (kind, HERD_MSG_FOUND));
    zstr_free (&kind);
    zstr_free (&reqid);
    zmsg_destroy (&reply);
    return line;
}

void
herd_bus_test (bool verbose)
{
    //  Two nodes, A (under test) and B (played by the test's own PUB/SUB)
    int port_a = 20000 + (int) (getpid () % 20000);
    int port_b = port_a + 1;
    char text[1024];
    snprintf (text, sizeof (text),
              "node = A\n    client = 127.0.0.1:1\n    bus = tcp://127.0.0.1:%d\n"
              "    log = a.log\n"
              "node = B\n    client = 127.0.0.1:2\n    bus = tcp://127.0.0.1:%d\n"
              "    log = b.log\n"
              "edges\n    edge = A B\n",
              port_a, port_b);
    char *error = NULL;
    herd_config_t *config = herd_config_load_string (text, "test.cfg", &error);
    if (!config)
        fprintf (stderr, "%s\n", error);
    HERD_CHECK (config);

    char log_path[64];
    snprintf (log_path, sizeof (log_path), "/tmp/herd_bus_test_%d.log", (int) getpid ());
    herd_log_t *log = herd_log_new (log_path, "A");
    HERD_CHECK (log);

    zsock_t *b_pub = zsock_new (ZMQ_PUB);
    HERD_CHECK (zsock_bind (b_pub, "tcp://127.0.0.1:%d", port_b) == port_b);

    herd_bus_args_t args = {config, herd_config_node (config, "A"), "inproc://bus-test", log};
    zactor_t *bus = zactor_new (herd_bus_actor, &args);
    HERD_CHECK_INT (zsock_wait (bus), 0);
    if (verbose)
        zstr_send (bus, "VERBOSE");

    zsock_t *gateway = zsock_new_dealer (">inproc://bus-test");
    zsock_t *b_sub = zsock_new (ZMQ_SUB);
    zsock_set_subscribe (b_sub, HERD_MSG_TOPIC_UPDATE);
    HERD_CHECK (zsock_connect (b_sub, "tcp://127.0.0.1:%d", port_a) == 0);

    //  Unknown client
    HERD_CHECK (s_lookup (gateway, "kiwi") == NULL);

    //  An update from the gateway is stored and read back
    const char *first = "AT A +0.100000000 kiwi +34.068930-118.445127 1621464827.959498503";
    zstr_sendx (gateway, HERD_MSG_UPDATE, first, NULL);
    char *line = s_lookup (gateway, "kiwi");
    HERD_CHECK_STR (line, first);
    zstr_free (&line);

    //  An older one never replaces it
    zstr_sendx (gateway, HERD_MSG_UPDATE, "AT A +0.100000000 kiwi +1+1 1621464827.9", NULL);
    line = s_lookup (gateway, "kiwi");
    HERD_CHECK_STR (line, first);
    zstr_free (&line);

    //  Updates applied are published to neighbours: keep updating until B's
    //  subscription is live (slow joiner), bounded
    zmsg_t *flooded = NULL;
    for (int i = 0; i < 100 && !flooded; i++) {
        char update[128];
        snprintf (update, sizeof (update), "AT A +0.100000000 flood +1+1 %d", 1000 + i);
        zstr_sendx (gateway, HERD_MSG_UPDATE, update, NULL);
        flooded = s_recv_bounded (b_sub, 100);
    }
    HERD_CHECK (flooded);
    HERD_CHECK_INT (zmsg_size (flooded), 2);
    zmsg_destroy (&flooded);

    //  An update from neighbour B is applied (bounded: B's link may still be
    //  coming up, so repeat it until it shows)
    const char *from_b = "AT B -0.500000000 plum +10-20 1700000000";
    line = NULL;
    for (int i = 0; i < 100 && !line; i++) {
        zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, from_b, NULL);
        zclock_sleep (20);
        line = s_lookup (gateway, "plum");
    }
    HERD_CHECK_STR (line, from_b);
    zstr_free (&line);

    //  Malformed bus input is dropped, never applied
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, "AT B +1 evil", NULL);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, "AT B +0.000000000 evil +1+1 1", "extra", NULL);
    zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, NULL);
    //  A later good message proves the bad ones were consumed first
    const char *marker = "AT B +0.000000000 marker +1+1 1";
    line = NULL;
    for (int i = 0; i < 100 && !line; i++) {
        zstr_sendx (b_pub, HERD_MSG_TOPIC_UPDATE, marker, NULL);
        line = s_lookup (gateway, "marker");
    }
    HERD_CHECK_STR (line, marker);
    zstr_free (&line);
    HERD_CHECK (s_lookup (gateway, "evil") == NULL);

    //  A malformed gateway message is dropped; the bus keeps serving
    zstr_sendx (gateway, "BOGUS", NULL);
    line = s_lookup (gateway, "kiwi");
    HERD_CHECK_STR (line, first);
    zstr_free (&line);

    zactor_destroy (&bus);
    zsock_destroy (&gateway);
    zsock_destroy (&b_sub);
    zsock_destroy (&b_pub);
    herd_log_destroy (&log);

    //  The log shows the link to B and the dropped messages
    FILE *file = fopen (log_path, "r");
    HERD_CHECK (file);
    char *text_log = (char *) zmalloc (1 << 16);
    size_t got = fread (text_log, 1, (1 << 16) - 1, file);
    text_log[got] = 0;
    fclose (file);
    HERD_CHECK_CONTAINS (text_log, "bus link up B tcp://127.0.0.1:");
    HERD_CHECK_CONTAINS (text_log, "dropped a malformed update from neighbour");
    HERD_CHECK_CONTAINS (text_log, "dropped a malformed bus message of 3 frames");
    free (text_log);
    unlink (log_path);
    herd_config_destroy (&config);
}
