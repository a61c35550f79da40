//  herd_monitor.c - a node's events and counters for operators.

#include "herd_monitor.h"
#include "../common/herd_alive.h"
#include "../common/herd_check.h"

#include <microhttpd.h>
#include <pthread.h>

struct _herd_monitor_t {
    const herd_node_t *node;
    herd_log_t *log;
    zsock_t *pub;                   //  events and STATS, or NULL
    struct MHD_Daemon *http;        //  Prometheus metrics, or NULL
    cJSON *roles;                   //  {"bus": {...}, "gateway": {...}, ...}
    pthread_mutex_t mutex;          //  guards metrics (read by the HTTP thread)
    char *metrics;
};

//  Wall-clock seconds with microseconds.
static double
s_now (void)
{
    return (double) zclock_time () / 1000.0;
}

//  Answer GET /metrics with the latest Prometheus text; 404 otherwise.
static enum MHD_Result
s_handle_http (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
               const char *version, const char *upload_data, size_t *upload_data_size,
               void **con_cls)
{
    (void) version;
    (void) upload_data;
    (void) upload_data_size;
    (void) con_cls;
    herd_monitor_t *self = (herd_monitor_t *) cls;
    bool found = streq (method, "GET") && (streq (url, "/metrics") || streq (url, "/"));
    pthread_mutex_lock (&self->mutex);
    char *body = strdup (found && self->metrics ? self->metrics : "not found\n");
    bool published = self->metrics != NULL;
    pthread_mutex_unlock (&self->mutex);
    char *alive = body && found && published
                    ? herd_monitor_alive (self->node->name, herd_alive_now_ms ())
                    : NULL;
    if (alive) {
        //  Liveness as of this request, not of the last STATS: a stalled
        //  bus publishes none, and must still show
        size_t have = strlen (body), add = strlen (alive);
        char *grown = (char *) realloc (body, have + add + 1);
        if (grown) {
            memcpy (grown + have, alive, add + 1);
            body = grown;
        }
        free (alive);
    }
    if (!body)
        return MHD_NO;
    struct MHD_Response *response =
        MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header (response, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result rc =
        MHD_queue_response (connection, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, response);
    MHD_destroy_response (response);
    return rc;
}

//  Start the metrics HTTP server on node->metrics; 0 or -1.
static int
s_start_http (herd_monitor_t *self)
{
    const char *colon = strrchr (self->node->metrics, ':');
    size_t host_size = (size_t) (colon - self->node->metrics);
    char host[256];
    snprintf (host, sizeof (host), "%.*s", (int) host_size, self->node->metrics);
    if (host[0] == '[') {           //  [v6]: strip the brackets
        memmove (host, host + 1, strlen (host));
        host[strlen (host) - 1] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    if (getaddrinfo (host, colon + 1, &hints, &found) != 0 || !found)
        return -1;
    self->http = MHD_start_daemon (
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG
            | (found->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        (uint16_t) self->node->metrics_port, NULL, NULL, s_handle_http, self,
        MHD_OPTION_SOCK_ADDR, found->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 10, MHD_OPTION_END);
    freeaddrinfo (found);
    return self->http ? 0 : -1;
}

herd_monitor_t *
herd_monitor_new (const herd_node_t *node, herd_log_t *log)
{
    herd_monitor_t *self = (herd_monitor_t *) zmalloc (sizeof (herd_monitor_t));
    self->node = node;
    self->log = log;
    self->roles = cJSON_CreateObject ();
    pthread_mutex_init (&self->mutex, NULL);
    if (node->monitor) {
        self->pub = zsock_new (ZMQ_PUB);
        //  Subscribers send only subscriptions: no stranger's frame of any size
        zsock_set_maxmsgsize (self->pub, 4096);
        zsock_set_handshake_ivl (self->pub, 3000);
        if (zsock_bind (self->pub, "%s", node->monitor) == -1) {
            herd_log_printf (log, "bus", "cannot bind monitor %s: %s", node->monitor,
                             zmq_strerror (zmq_errno ()));
            fprintf (stderr, "herd: %s: cannot bind monitor %s: %s\n", node->name,
                     node->monitor, zmq_strerror (zmq_errno ()));
            herd_monitor_destroy (&self);
            return NULL;
        }
    }
    if (node->metrics && s_start_http (self) == -1) {
        herd_log_printf (log, "bus", "cannot serve metrics on %s", node->metrics);
        fprintf (stderr, "herd: %s: cannot serve metrics on %s\n", node->name, node->metrics);
        herd_monitor_destroy (&self);
        return NULL;
    }
    return self;
}

void
herd_monitor_destroy (herd_monitor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_monitor_t *self = *self_p;
    if (self->http)
        MHD_stop_daemon (self->http);
    zsock_destroy (&self->pub);
    cJSON_Delete (self->roles);
    free (self->metrics);
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

//  Send [kind, node, json] on the monitor PUB.
static void
s_send (herd_monitor_t *self, const char *kind, cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    if (text && self->pub) {
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, kind);
        zmsg_addstr (msg, self->node->name);
        zmsg_addstr (msg, text);
        zmsg_send (&msg, self->pub);
    }
    free (text);
}

void
herd_monitor_event (herd_monitor_t *self, const char *role, const char *event, const char *peer,
                    const char *detail)
{
    if (!self || !self->pub)
        return;
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddNumberToObject (json, "time", s_now ());
    cJSON_AddStringToObject (json, "role", role);
    cJSON_AddStringToObject (json, "event", event);
    if (peer)
        cJSON_AddStringToObject (json, "peer", peer);
    if (detail)
        cJSON_AddStringToObject (json, "detail", detail);
    s_send (self, "EVENT", json);
    cJSON_Delete (json);
}

void
herd_monitor_set (herd_monitor_t *self, const char *role, cJSON *stats)
{
    int alive = herd_alive_role (role);
    if (alive != -1)
        herd_alive_heard ((herd_alive_role_t) alive, herd_alive_now_ms ());
    if (!self) {
        cJSON_Delete (stats);
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive (self->roles, role))
        cJSON_ReplaceItemInObjectCaseSensitive (self->roles, role, stats);
    else
        cJSON_AddItemToObject (self->roles, role, stats);
}

//  Append a formatted line to a growing string.
static void
s_append (char **text, size_t *size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *line = zsys_vprintf (format, args);
    va_end (args);
    if (!line)
        return;
    size_t add = strlen (line);
    char *grown = (char *) realloc (*text, *size + add + 1);
    if (grown) {
        memcpy (grown + *size, line, add + 1);
        *text = grown;
        *size += add;
    }
    zstr_free (&line);
}

//  True for names Prometheus accepts after our prefix.
static bool
s_metric_name (const char *name)
{
    for (const char *c = name; *c; c++)
        if (!isalnum ((unsigned char) *c) && *c != '_')
            return false;
    return *name != 0;
}

char *
herd_monitor_prometheus (const cJSON *snapshot)
{
    const cJSON *node = cJSON_GetObjectItemCaseSensitive (snapshot, "node");
    const char *name = cJSON_IsString (node) ? node->valuestring : "?";
    char *text = strdup ("");
    size_t size = 0;
    const cJSON *role;
    cJSON_ArrayForEach (role, snapshot) {
        if (!cJSON_IsObject (role) || !s_metric_name (role->string)
            || streq (role->string, "alive"))
            continue;
        const cJSON *item;
        cJSON_ArrayForEach (item, role) {
            if (cJSON_IsNumber (item) && s_metric_name (item->string))
                s_append (&text, &size, "herd_%s_%s{node=\"%s\"} %.17g\n", role->string,
                          item->string, name, item->valuedouble);
            else
            if (cJSON_IsObject (item) && streq (item->string, "links")) {
                const cJSON *link;
                cJSON_ArrayForEach (link, item)
                    if (cJSON_IsString (link))
                        s_append (&text, &size,
                                  "herd_%s_link_up{node=\"%s\",peer=\"%s\"} %d\n",
                                  role->string, name, link->string,
                                  streq (link->valuestring, "up") ? 1 : 0);
            }
        }
    }
    return text;
}

char *
herd_monitor_alive (const char *node, int64_t now_ms)
{
    char *text = strdup ("");
    size_t size = 0;
    for (int role = 0; role < HERD_ALIVE_ROLES; role++) {
        int64_t age = herd_alive_age_ms ((herd_alive_role_t) role, now_ms);
        if (age >= 0)
            s_append (&text, &size, "herd_actor_last_turn_age_seconds{node=\"%s\",role=\"%s\"} "
                      "%.3f\nherd_actor_stalled{node=\"%s\",role=\"%s\"} %d\n", node,
                      herd_alive_name ((herd_alive_role_t) role), (double) age / 1000.0, node,
                      herd_alive_name ((herd_alive_role_t) role),
                      age > HERD_ALIVE_BOUND_MS ? 1 : 0);
    }
    return text;
}

//  {"bus": {"last_turn_age_ms": 3, "stalled": false}, ...} of every role
//  present, as of now.
static cJSON *
s_alive_json (void)
{
    cJSON *alive = cJSON_CreateObject ();
    int64_t now = herd_alive_now_ms ();
    for (int role = 0; role < HERD_ALIVE_ROLES; role++) {
        int64_t age = herd_alive_age_ms ((herd_alive_role_t) role, now);
        if (age < 0)
            continue;
        cJSON *entry = cJSON_AddObjectToObject (alive, herd_alive_name ((herd_alive_role_t) role));
        cJSON_AddNumberToObject (entry, "last_turn_age_ms", (double) age);
        cJSON_AddBoolToObject (entry, "stalled", age > HERD_ALIVE_BOUND_MS);
    }
    return alive;
}

void
herd_monitor_publish (herd_monitor_t *self)
{
    if (!self)
        return;
    cJSON *snapshot = cJSON_Duplicate (self->roles, true);
    cJSON_AddItemToObject (snapshot, "alive", s_alive_json ());
    cJSON_AddNumberToObject (snapshot, "time", s_now ());
    cJSON_AddStringToObject (snapshot, "node", self->node->name);
    s_send (self, "STATS", snapshot);
    if (self->http) {
        char *metrics = herd_monitor_prometheus (snapshot);
        pthread_mutex_lock (&self->mutex);
        free (self->metrics);
        self->metrics = metrics;
        pthread_mutex_unlock (&self->mutex);
    }
    cJSON_Delete (snapshot);
}

void
herd_monitor_test (bool verbose)
{
    (void) verbose;
    cJSON *snapshot = cJSON_Parse (
        "{\"node\": \"Hill\", \"time\": 1.5, \"bus\": {\"clients\": 3, \"digest\": \"ab\", "
        "\"links\": {\"Smith\": \"up\", \"Jaquez\": \"down\"}}, \"gateway\": {\"connections\": "
        "7, \"whatsat_p99_ms\": 1.25, \"bad-name\": 1}, \"alive\": {\"bus\": "
        "{\"last_turn_age_ms\": 3, \"stalled\": false}}}");
    HERD_CHECK (snapshot);
    char *text = herd_monitor_prometheus (snapshot);
    HERD_CHECK_CONTAINS (text, "herd_bus_clients{node=\"Hill\"} 3\n");
    HERD_CHECK_CONTAINS (text, "herd_bus_link_up{node=\"Hill\",peer=\"Smith\"} 1\n");
    HERD_CHECK_CONTAINS (text, "herd_bus_link_up{node=\"Hill\",peer=\"Jaquez\"} 0\n");
    HERD_CHECK_CONTAINS (text, "herd_gateway_whatsat_p99_ms{node=\"Hill\"} 1.25\n");
    HERD_CHECK (!strstr (text, "digest"));
    HERD_CHECK (!strstr (text, "bad-name"));
    HERD_CHECK (!strstr (text, "alive") && !strstr (text, "last_turn"));
    free (text);
    cJSON_Delete (snapshot);

    //  Liveness: the roles present, by their loops' turns here or their
    //  STATS from another process; the absent ones not at all
    int64_t now = herd_alive_now_ms ();
    herd_alive_beat (HERD_ALIVE_GATEWAY, now - 6000);
    herd_alive_beat (HERD_ALIVE_BUS, now - 250);
    text = herd_monitor_alive ("Hill", now);
    HERD_CHECK_CONTAINS (text, "herd_actor_last_turn_age_seconds{node=\"Hill\",role=\"gateway\"} "
                               "6.000\nherd_actor_stalled{node=\"Hill\",role=\"gateway\"} 1\n");
    HERD_CHECK_CONTAINS (text, "herd_actor_last_turn_age_seconds{node=\"Hill\",role=\"bus\"} "
                               "0.250\nherd_actor_stalled{node=\"Hill\",role=\"bus\"} 0\n");
    HERD_CHECK (!strstr (text, "places"));
    free (text);
    herd_monitor_set (NULL, "places", cJSON_CreateObject ());
    HERD_CHECK (!herd_alive_local (HERD_ALIVE_PLACES));
    HERD_CHECK (herd_alive_age_ms (HERD_ALIVE_PLACES, herd_alive_now_ms ()) < 1000);
    HERD_CHECK (herd_alive_age_ms (HERD_ALIVE_PLACES, herd_alive_now_ms ()) >= 0);
}
