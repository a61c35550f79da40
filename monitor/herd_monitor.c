//  herd_monitor.c - a node's events and counters for operators.

#include "herd_monitor.h"
#include "../common/herd_alive.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"

#include <microhttpd.h>
#include <pthread.h>

#include "../common/herd_version.h"      //  herd_build_info's version, as herd --version

struct _herd_monitor_t {
    char *name;                     //  the node's (a copy: the config may be reloaded)
    char *journal;                  //  the journal format, for herd_build_info
    herd_log_t *log;
    zsock_t *pub;                   //  events and STATS, or NULL
    struct MHD_Daemon *http;        //  metrics and health, or NULL
    cJSON *roles;                   //  {"bus": {...}, "gateway": {...}, ...}
    double started;                 //  wall clock when the monitor started, s
    pthread_mutex_t mutex;          //  guards metrics and unready (read by the HTTP thread)
    char *metrics;                  //  Prometheus text of the last STATS, or NULL
    char *unready;                  //  what is not ready as of the last STATS, "" if all is
};

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

//  What is not live now: a line for each stalled role, "" when none.
static char *
s_not_live (void)
{
    char *text = strdup ("");
    size_t size = 0;
    int64_t now = zclock_mono ();
    for (int role = 0; role < HERD_ALIVE_ROLES; role++)
        if (herd_alive_stalled ((herd_alive_role_t) role, now))
            s_append (&text, &size, "%s stalled: no %s for %.1f s\n",
                      herd_alive_name ((herd_alive_role_t) role),
                      herd_alive_local ((herd_alive_role_t) role) ? "loop turn"
                                                                 : "STATS reached the monitor",
                      (double) herd_alive_age_ms ((herd_alive_role_t) role, now) / 1000.0);
    return text;
}

//  The body and status of one request: /metrics (or /), /livez, /readyz.
static char *
s_answer (herd_monitor_t *self, const char *url, unsigned int *status)
{
    *status = MHD_HTTP_OK;
    if (streq (url, "/metrics") || streq (url, "/")) {
        pthread_mutex_lock (&self->mutex);
        char *stats = strdup (self->metrics ? self->metrics : "");
        pthread_mutex_unlock (&self->mutex);
        //  Liveness as of this request, not of the last STATS: a stalled
        //  bus publishes none, and must still show
        char *build = herd_monitor_build (self->name, self->journal, self->started);
        char *alive = herd_monitor_alive (self->name, zclock_mono ());
        char *body = stats && build && alive ? zsys_sprintf ("%s%s%s", build, stats, alive) : NULL;
        free (stats);
        free (build);
        free (alive);
        return body;
    }
    char *not_live = s_not_live ();
    if (streq (url, "/livez")) {
        if (*not_live) {
            *status = MHD_HTTP_SERVICE_UNAVAILABLE;
            return not_live;
        }
        free (not_live);
        return strdup ("ok\n");
    }
    if (streq (url, "/readyz")) {
        //  Not live is not ready either; then what the last STATS showed
        pthread_mutex_lock (&self->mutex);
        char *body = zsys_sprintf ("%s%s", not_live,
                                   self->unready ? self->unready
                                                 : "bus starting: journal not loaded yet\n");
        pthread_mutex_unlock (&self->mutex);
        free (not_live);
        if (body && *body) {
            *status = MHD_HTTP_SERVICE_UNAVAILABLE;
            return body;
        }
        free (body);
        return strdup ("ok\n");
    }
    free (not_live);
    *status = MHD_HTTP_NOT_FOUND;
    return strdup ("not found: /metrics, /livez or /readyz\n");
}

//  Answer a GET on the metrics address.
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
    unsigned int status = MHD_HTTP_METHOD_NOT_ALLOWED;
    char *body = streq (method, "GET") || streq (method, "HEAD")
                   ? s_answer (self, url, &status)
                   : strdup ("GET only\n");
    if (!body)
        return MHD_NO;
    struct MHD_Response *response =
        MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header (response, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  Start the metrics HTTP server on node->metrics; 0 or -1.
static int
s_start_http (herd_monitor_t *self, const herd_node_t *node)
{
    const char *colon = strrchr (node->metrics, ':');
    size_t host_size = (size_t) (colon - node->metrics);
    char host[256];
    snprintf (host, sizeof (host), "%.*s", (int) host_size, node->metrics);
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
        (uint16_t) node->metrics_port, NULL, NULL, s_handle_http, self,
        MHD_OPTION_SOCK_ADDR, found->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 10, MHD_OPTION_END);
    freeaddrinfo (found);
    return self->http ? 0 : -1;
}

herd_monitor_t *
herd_monitor_new (const herd_node_t *node, const char *journal, herd_log_t *log)
{
    herd_monitor_t *self = (herd_monitor_t *) zmalloc (sizeof (herd_monitor_t));
    self->name = strdup (node->name);
    self->journal = strdup (journal);
    assert (self->name && self->journal);
    self->log = log;
    self->roles = cJSON_CreateObject ();
    self->started = (double) zclock_time () / 1000.0;
    pthread_mutex_init (&self->mutex, NULL);
    if (node->monitor) {
        self->pub = zsock_new (ZMQ_PUB);
        //  Subscribers send only subscriptions: no stranger's frame of any size
        zsock_set_maxmsgsize (self->pub, 4096);
        zsock_set_handshake_ivl (self->pub, 3000);
        if (zsock_bind (self->pub, "%s", node->monitor) == -1) {
            herd_log_error (log, "monitor", "cannot bind monitor %s: %s", node->monitor,
                            zmq_strerror (zmq_errno ()));
            fprintf (stderr, "herd: %s: cannot bind monitor %s: %s\n", node->name,
                     node->monitor, zmq_strerror (zmq_errno ()));
            herd_monitor_destroy (&self);
            return NULL;
        }
    }
    if (node->metrics && s_start_http (self, node) == -1) {
        herd_log_error (log, "monitor", "cannot serve metrics on %s", node->metrics);
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
    free (self->unready);
    free (self->name);
    free (self->journal);
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

//  Send [kind, node, json] on the monitor PUB.
static void
s_send (herd_monitor_t *self, const char *kind, cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    if (text && self->pub)
        herd_msg_send (&(herd_msg_t){.id = streq (kind, HERD_MSG_STATS) ? HERD_MSG_ID_MONITOR_STATS
                                                                       : HERD_MSG_ID_MONITOR_EVENT,
                                     .name = herd_msg_str (self->name),
                                     .json = herd_msg_str (text)},
                       self->pub, 0);
    free (text);
}

void
herd_monitor_event (herd_monitor_t *self, const char *role, const char *event, const char *peer,
                    const char *detail)
{
    if (!self || !self->pub)
        return;
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddNumberToObject (json, "time", (double) zclock_time () / 1000.0);
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
        herd_alive_heard ((herd_alive_role_t) alive, zclock_mono ());
    if (!self) {
        cJSON_Delete (stats);
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive (self->roles, role))
        cJSON_ReplaceItemInObjectCaseSensitive (self->roles, role, stats);
    else
        cJSON_AddItemToObject (self->roles, role, stats);
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

static bool
s_ends (const char *text, const char *suffix)
{
    size_t length = strlen (text), suffix_length = strlen (suffix);
    return length >= suffix_length && streq (text + length - suffix_length, suffix);
}

//  What each family means; a number a role adds later gets a plain help
static const struct {
    const char *name;
    const char *help;
} s_helps[] = {
    {"herd_bus_clients", "Clients in the node's location table."},
    {"herd_bus_applied_total", "Location records applied to the table."},
    {"herd_bus_stale_total", "Location records ignored: not newer than the one held."},
    {"herd_bus_dropped_total", "Malformed updates dropped."},
    {"herd_bus_refused_messages_total", "Bus messages and requests of another herd or wire "
                                        "version refused."},
    {"herd_bus_sequence", "The bus's last published sequence number."},
    {"herd_bus_catchups_total", "Catch-ups from a neighbour completed."},
    {"herd_bus_journal_records", "Records in the journal."},
    {"herd_bus_journal_failing", "1 while the journal cannot be written."},
    {"herd_bus_store_failures_total", "Journal writes that failed."},
    {"herd_bus_link_up", "1 when the bus's link to the peer is up."},
    {"herd_gateway_connections", "Client connections open."},
    {"herd_gateway_connections_total", "Client connections accepted."},
    {"herd_gateway_iamat_total", "IAMAT lines handled."},
    {"herd_gateway_whatsat_total", "WHATSAT lines handled."},
    {"herd_gateway_invalid_total", "Invalid lines answered with '?'."},
    {"herd_gateway_unstored_total", "Connections closed: an IAMAT not stored in time."},
    {"herd_gateway_store_waiting", "IAMAT answers waiting for the bus to store them."},
    {"herd_gateway_bus_backlog", "Messages waiting for the bus to take them."},
    {"herd_gateway_unconfirmed_bytes", "Bytes of updates the gateway's journal holds that "
                                       "the bus has not yet confirmed."},
    {"herd_gateway_whatsat_seconds", "WHATSAT latency, line in to answer ready."},
    {"herd_places_answered_ok_total", "Places requests answered with results."},
    {"herd_places_answered_err_total", "Places requests answered with an error."},
    {"herd_places_shared_total", "Places requests that joined a fetch in flight."},
    {"herd_places_cache_hits_total", "Places requests answered from the cache."},
    {"herd_places_in_flight", "Places fetches in flight."},
    {"herd_places_latency_seconds", "Places request latency, asked to answered."},
};

//  # HELP and # TYPE of one family.
static void
s_family (char **text, size_t *size, const char *name, const char *type)
{
    const char *help = NULL;
    for (size_t i = 0; i < sizeof (s_helps) / sizeof (s_helps[0]) && !help; i++)
        if (streq (s_helps[i].name, name))
            help = s_helps[i].help;
    if (help)
        s_append (text, size, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    else
        s_append (text, size, "# HELP %s The herd's %s %s.\n# TYPE %s %s\n", name, name + 5,
                  type, name, type);
}

//  A histogram from herd_hist_json: {"bucket": {"0.001": n, ..., "+Inf":
//  n}, "sum": s, "count": n}; nothing if it is not one.
static void
s_histogram (char **text, size_t *size, const char *name, const char *node,
             const cJSON *hist)
{
    const cJSON *bucket = cJSON_GetObjectItemCaseSensitive (hist, "bucket");
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive (hist, "sum");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive (hist, "count");
    if (!cJSON_IsObject (bucket) || !cJSON_IsNumber (sum) || !cJSON_IsNumber (count))
        return;
    s_family (text, size, name, "histogram");
    const cJSON *le;
    cJSON_ArrayForEach (le, bucket)
        if (cJSON_IsNumber (le) && (streq (le->string, "+Inf") || strtod (le->string, NULL) > 0))
            s_append (text, size, "%s_bucket{node=\"%s\",le=\"%s\"} %.17g\n", name, node,
                      le->string, le->valuedouble);
    s_append (text, size, "%s_sum{node=\"%s\"} %.17g\n%s_count{node=\"%s\"} %.17g\n", name, node,
              sum->valuedouble, name, node, count->valuedouble);
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
            if (!s_metric_name (item->string))
                continue;
            char *family = zsys_sprintf ("herd_%s_%s", role->string, item->string);
            if (!family)
                continue;
            //  Rates (Prometheus computes them) and percentiles in ms (the
            //  histograms in seconds say more) stay in the STATS only
            if (cJSON_IsNumber (item) && !s_ends (family, "_per_s") && !s_ends (family, "_ms")) {
                s_family (&text, &size, family, s_ends (family, "_total") ? "counter" : "gauge");
                s_append (&text, &size, "%s{node=\"%s\"} %.17g\n", family, name,
                          item->valuedouble);
            }
            else
            if (cJSON_IsObject (item) && streq (item->string, "links")) {
                zstr_free (&family);
                family = zsys_sprintf ("herd_%s_link_up", role->string);
                if (cJSON_GetArraySize (item) > 0)
                    s_family (&text, &size, family, "gauge");
                const cJSON *link;
                cJSON_ArrayForEach (link, item)
                    if (cJSON_IsString (link))
                        s_append (&text, &size, "%s{node=\"%s\",peer=\"%s\"} %d\n", family,
                                  name, link->string, streq (link->valuestring, "up") ? 1 : 0);
            }
            else
            if (cJSON_IsObject (item) && s_ends (family, "_seconds"))
                s_histogram (&text, &size, family, name, item);
            zstr_free (&family);
        }
    }
    return text;
}

char *
herd_monitor_alive (const char *node, int64_t now_ms)
{
    char *ages = strdup (""), *stalled = strdup ("");
    size_t ages_size = 0, stalled_size = 0;
    for (int role = 0; role < HERD_ALIVE_ROLES; role++) {
        int64_t age = herd_alive_age_ms ((herd_alive_role_t) role, now_ms);
        const char *name = herd_alive_name ((herd_alive_role_t) role);
        if (age < 0)
            continue;
        s_append (&ages, &ages_size, "herd_actor_last_turn_age_seconds{node=\"%s\",role=\"%s\"} "
                  "%.3f\n", node, name, (double) age / 1000.0);
        s_append (&stalled, &stalled_size, "herd_actor_stalled{node=\"%s\",role=\"%s\"} %d\n",
                  node, name, age > HERD_ALIVE_BOUND_MS ? 1 : 0);
    }
    char *text = ages && stalled
                   ? zsys_sprintf ("# HELP herd_actor_last_turn_age_seconds How long ago the "
                                   "role's loop last turned (another process's: its last STATS)."
                                   "\n# TYPE herd_actor_last_turn_age_seconds gauge\n%s"
                                   "# HELP herd_actor_stalled 1 when the role's last turn is "
                                   "older than the bound (%d s).\n"
                                   "# TYPE herd_actor_stalled gauge\n%s",
                                   ages, HERD_ALIVE_BOUND_MS / 1000, stalled)
                   : NULL;
    free (ages);
    free (stalled);
    return text;
}

char *
herd_monitor_build (const char *node, const char *journal, double started)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    return zsys_sprintf (
        "# HELP herd_build_info The herd build the node runs: 1, its facts as labels.\n"
        "# TYPE herd_build_info gauge\n"
        "herd_build_info{node=\"%s\",version=\"%s\",journal=\"%s\",zmq=\"%d.%d.%d\"} 1\n"
        "# HELP herd_process_start_time_seconds When the node's process started, "
        "seconds since the epoch.\n"
        "# TYPE herd_process_start_time_seconds gauge\n"
        "herd_process_start_time_seconds{node=\"%s\"} %.3f\n",
        node, HERD_VERSION, journal, major, minor, patch, node, started);
}

char *
herd_monitor_unready (const cJSON *snapshot)
{
    char *text = strdup ("");
    size_t size = 0;
    const cJSON *bus = cJSON_GetObjectItemCaseSensitive (snapshot, "bus");
    if (!cJSON_IsObject (cJSON_GetObjectItemCaseSensitive (snapshot, "gateway")))
        s_append (&text, &size, "gateway not listening yet\n");
    if (!cJSON_IsObject (bus))
        s_append (&text, &size, "bus starting: journal not loaded yet\n");
    const cJSON *failing = cJSON_GetObjectItemCaseSensitive (bus, "journal_failing");
    if (cJSON_IsNumber (failing) && failing->valuedouble != 0)
        s_append (&text, &size, "journal failing: updates are not being stored\n");
    const cJSON *link;
    cJSON_ArrayForEach (link, cJSON_GetObjectItemCaseSensitive (bus, "links"))
        if (cJSON_IsString (link) && !streq (link->valuestring, "up"))
            s_append (&text, &size, "link to %s %s\n", link->string, link->valuestring);
    return text;
}

//  {"bus": {"last_turn_age_ms": 3, "stalled": false}, ...} of every role
//  present, as of now.
static cJSON *
s_alive_json (void)
{
    cJSON *alive = cJSON_CreateObject ();
    int64_t now = zclock_mono ();
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
    cJSON_AddNumberToObject (snapshot, "time", (double) zclock_time () / 1000.0);
    cJSON_AddStringToObject (snapshot, "node", self->name);
    s_send (self, "STATS", snapshot);
    if (self->http) {
        char *metrics = herd_monitor_prometheus (snapshot);
        char *unready = herd_monitor_unready (snapshot);
        pthread_mutex_lock (&self->mutex);
        free (self->metrics);
        self->metrics = metrics;
        free (self->unready);
        self->unready = unready;
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
        "\"applied_total\": 9, \"links\": {\"Smith\": \"up\", \"Jaquez\": \"down\"}}, "
        "\"gateway\": {\"connections\": 7, \"whatsat_p99_ms\": 1.25, \"iamat_per_s\": 2, "
        "\"bad-name\": 1, \"whatsat_seconds\": {\"bucket\": {\"0.001\": 1, \"1\": 2, "
        "\"+Inf\": 3}, \"sum\": 12.5, \"count\": 3}}, \"alive\": {\"bus\": "
        "{\"last_turn_age_ms\": 3, \"stalled\": false}}}");
    HERD_CHECK (snapshot);
    char *text = herd_monitor_prometheus (snapshot);
    HERD_CHECK_CONTAINS (text, "# HELP herd_bus_clients Clients in the node's location table.\n"
                               "# TYPE herd_bus_clients gauge\nherd_bus_clients{node=\"Hill\"} 3\n");
    HERD_CHECK_CONTAINS (text, "# TYPE herd_bus_applied_total counter\n"
                               "herd_bus_applied_total{node=\"Hill\"} 9\n");
    HERD_CHECK_CONTAINS (text, "# TYPE herd_bus_link_up gauge\n"
                               "herd_bus_link_up{node=\"Hill\",peer=\"Smith\"} 1\n"
                               "herd_bus_link_up{node=\"Hill\",peer=\"Jaquez\"} 0\n");
    HERD_CHECK_CONTAINS (text, "# TYPE herd_gateway_whatsat_seconds histogram\n"
                               "herd_gateway_whatsat_seconds_bucket{node=\"Hill\",le=\"0.001\"} 1\n"
                               "herd_gateway_whatsat_seconds_bucket{node=\"Hill\",le=\"1\"} 2\n"
                               "herd_gateway_whatsat_seconds_bucket{node=\"Hill\",le=\"+Inf\"} 3\n"
                               "herd_gateway_whatsat_seconds_sum{node=\"Hill\"} 12.5\n"
                               "herd_gateway_whatsat_seconds_count{node=\"Hill\"} 3\n");
    HERD_CHECK (!strstr (text, "_ms") && !strstr (text, "_per_s"));
    HERD_CHECK (!strstr (text, "digest"));
    HERD_CHECK (!strstr (text, "bad-name"));
    HERD_CHECK (!strstr (text, "alive") && !strstr (text, "last_turn"));
    free (text);

    //  Ready: gateway heard, bus heard, journal writing, every link up
    text = herd_monitor_unready (snapshot);
    HERD_CHECK_STR (text, "link to Jaquez down\n");
    free (text);
    cJSON *bus = cJSON_GetObjectItemCaseSensitive (snapshot, "bus");
    cJSON_ReplaceItemInObjectCaseSensitive (cJSON_GetObjectItemCaseSensitive (bus, "links"),
                                            "Jaquez", cJSON_CreateString ("up"));
    cJSON_AddNumberToObject (bus, "journal_failing", 0);
    text = herd_monitor_unready (snapshot);
    HERD_CHECK_STR (text, "");
    free (text);
    cJSON_DeleteItemFromObjectCaseSensitive (snapshot, "gateway");
    text = herd_monitor_unready (snapshot);
    HERD_CHECK_STR (text, "gateway not listening yet\n");
    free (text);
    cJSON_Delete (snapshot);

    text = herd_monitor_build ("Hill", "HERDJ009", 1700000000.25);
    HERD_CHECK_CONTAINS (text, "# TYPE herd_build_info gauge\nherd_build_info{node=\"Hill\","
                               "version=\"" HERD_VERSION "\",journal=\"HERDJ009\"");
    HERD_CHECK_CONTAINS (text, "herd_process_start_time_seconds{node=\"Hill\"} 1700000000.250\n");
    free (text);

    //  Liveness: the roles present, by their loops' turns here or their
    //  STATS from another process; the absent ones not at all
    int64_t now = zclock_mono ();
    herd_alive_beat (HERD_ALIVE_GATEWAY, now - 6000);
    herd_alive_beat (HERD_ALIVE_BUS, now - 250);
    text = herd_monitor_alive ("Hill", now);
    HERD_CHECK_CONTAINS (text, "# TYPE herd_actor_last_turn_age_seconds gauge\n"
                               "herd_actor_last_turn_age_seconds{node=\"Hill\",role=\"gateway\"} "
                               "6.000\nherd_actor_last_turn_age_seconds{node=\"Hill\",role=\"bus\"} "
                               "0.250\n# HELP herd_actor_stalled ");
    HERD_CHECK_CONTAINS (text, "# TYPE herd_actor_stalled gauge\n"
                               "herd_actor_stalled{node=\"Hill\",role=\"gateway\"} 1\n"
                               "herd_actor_stalled{node=\"Hill\",role=\"bus\"} 0\n");
    HERD_CHECK (!strstr (text, "places"));
    free (text);
    text = s_not_live ();
    HERD_CHECK_CONTAINS (text, "gateway stalled: no loop turn for 6.");
    HERD_CHECK (!strstr (text, "bus"));
    free (text);
    herd_monitor_set (NULL, "places", cJSON_CreateObject ());
    HERD_CHECK (!herd_alive_local (HERD_ALIVE_PLACES));
    HERD_CHECK (herd_alive_age_ms (HERD_ALIVE_PLACES, zclock_mono ()) < 1000);
    HERD_CHECK (herd_alive_age_ms (HERD_ALIVE_PLACES, zclock_mono ()) >= 0);
}
