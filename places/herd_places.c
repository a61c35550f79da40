//  herd_places.c - the places worker: Places API queries behind a ROUTER.
//
//  One thread runs a ROUTER socket and a libcurl multi handle in one loop:
//  curl_multi_poll waits on curl's sockets and on the ZeroMQ sockets' file
//  descriptors together, so a request is started the moment it arrives and
//  answered the moment its transfer ends, whatever else is in flight.
//
//  At most options->concurrency connections are open; transfers beyond that
//  wait inside curl. options->timeout_ms runs from the moment a request is
//  taken, queueing included (curl counts a queued transfer's time): it is
//  the most a client waits for places. Every request gets exactly one log
//  line "req=HEX reply=OK|ERR|- status=... results=N http=N curl=N ms=N.N
//  url=... [error="..."]", with the key redacted from the URL and any text.

#include "herd_places.h"
#include "herd_placesbody.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HERD_PLACES_MAX_BODY   ((size_t) 8 * 1024 * 1024)   //  largest answer we take
#define HERD_PLACES_MAX_FIELD  64                  //  longest lat, lon, radius, bound
#define HERD_PLACES_MAX_WAIT   1000                //  longest poll, ms
#define HERD_PLACES_USER_AGENT "herd/0.1"
#define HERD_PLACES_REDACTED   "<redacted>"

//  One NEARBY request in flight: an easy handle and what the reply needs.
typedef struct s_request_t s_request_t;
struct s_request_t {
    s_request_t *prev, *next;   //  the actor's list of requests in flight
    CURL *easy;
    zframe_t *routing_id;       //  of the gateway that asked
    zframe_t *reqid;            //  echoed unchanged
    char *reqid_hex;            //  for the log
    char *url_logged;           //  the URL with the key redacted
    int bound;
    int64_t started;            //  monotonic microseconds
    char *body;                 //  the response so far
    size_t size, capacity;
    bool too_large;             //  the response passed HERD_PLACES_MAX_BODY
    char error[CURL_ERROR_SIZE];
};

//  The actor's state.
typedef struct {
    zsock_t *pipe;              //  actor command pipe
    zsock_t *router;            //  NEARBY requests in, RESULT replies out
    CURLM *multi;
    herd_log_t *log;            //  shared, not owned; may be NULL
    const herd_places_options_t *options;
    char *url;                  //  Nearby Search URL, without our query
    const char *key;            //  raw key, kept only to redact it
    char *key_escaped;          //  URL-escaped key; NULL if there is none
    s_request_t *requests;      //  in flight
    size_t in_flight;
    bool terminated;            //  did the caller ask us to quit?
    bool verbose;               //  trace to stderr too
} s_self_t;

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static CURLcode s_curl_init_rc = CURLE_FAILED_INIT;

//  Initialise libcurl once per process (curl_global_init is not safe to call
//  from two threads at once, and must precede any other curl call).
static void
s_curl_global_init (void)
{
    s_curl_init_rc = curl_global_init (CURL_GLOBAL_DEFAULT);
}

int
herd_places_global_init (void)
{
    pthread_once (&s_curl_once, s_curl_global_init);
    return s_curl_init_rc == CURLE_OK ? 0 : -1;
}

//  Monotonic clock in microseconds, for latencies.
static int64_t
s_now_usec (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  Log one event of the places role, and trace it when verbose.
static void
s_self_log (s_self_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_self_log (s_self_t *self, const char *format, ...)
{
    char line[2048];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof (line), format, args);
    va_end (args);
    if (self->log)
        herd_log_printf (self->log, "places", "%s", line);
    if (self->verbose || !self->log)
        zsys_info ("places: %s", line);
}

//  Copy text for a log line: the key (raw or escaped) redacted, control
//  bytes as '?', double quotes as single ones, at most size - 1 bytes.
static void
s_self_sanitise (const s_self_t *self, const char *text, char *out, size_t size)
{
    const char *keys[] = {self->key, self->key_escaped};
    size_t used = 0;
    while (*text && used + 1 < size) {
        bool redacted = false;
        for (size_t k = 0; k < 2 && !redacted; k++) {
            size_t length = keys[k] ? strlen (keys[k]) : 0;
            if (length > 0 && strncmp (text, keys[k], length) == 0) {
                size_t room = size - 1 - used;
                size_t copy = strlen (HERD_PLACES_REDACTED);
                memcpy (out + used, HERD_PLACES_REDACTED, copy < room ? copy : room);
                used += copy < room ? copy : room;
                text += length;
                redacted = true;
            }
        }
        if (redacted)
            continue;
        unsigned char c = (unsigned char) *text++;
        char safe = (char) c;
        if (c < 0x20 || c == 0x7F)
            safe = '?';
        else
        if (c == '"')
            safe = '\'';
        out[used++] = safe;
    }
    out[used] = 0;
}

//  The bytes of a frame in lower-case hex, at most 32 bytes shown, "-" if
//  empty. Caller frees.
static char *
s_hex (zframe_t *frame)
{
    static const char digits[] = "0123456789abcdef";
    size_t size = frame ? zframe_size (frame) : 0;
    size_t shown = size > 32 ? 32 : size;
    char *hex = (char *) malloc (shown * 2 + 3);
    assert (hex);
    const byte *data = frame ? zframe_data (frame) : NULL;
    for (size_t i = 0; i < shown; i++) {
        hex[i * 2] = digits[data[i] >> 4];
        hex[i * 2 + 1] = digits[data[i] & 15];
    }
    if (size == 0)
        memcpy (hex, "-", 2);
    else
    if (shown < size)
        memcpy (hex + shown * 2, "..", 3);
    else
        hex[shown * 2] = 0;
    return hex;
}

//  A frame as a C string if it is short and holds no NUL; else NULL.
//  Caller frees.
static char *
s_field (zframe_t *frame)
{
    if (!frame || zframe_size (frame) == 0 || zframe_size (frame) > HERD_PLACES_MAX_FIELD
        || memchr (zframe_data (frame), 0, zframe_size (frame)))
        return NULL;
    return zframe_strdup (frame);
}

//  Parse a decimal number: optional sign (if allowed), digits with an
//  optional fraction, and an optional exponent if allowed. Only these
//  characters, so the text is safe to put in a URL as it is. 0 or -1.
static int
s_parse_decimal (const char *text, bool sign, bool exponent, double *value_p)
{
    const char *p = text;
    if (sign && (*p == '+' || *p == '-'))
        p++;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return -1;
    if (exponent && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return -1;
    *value_p = strtod (text, NULL);
    return isfinite (*value_p) ? 0 : -1;
}

//  Metres for the radius parameter, without exponent: an integer when whole,
//  else up to 3 decimals with trailing zeros trimmed ("500", "1234.568").
static void
s_format_metres (double km, char *out, size_t size)
{
    snprintf (out, size, "%.3f", km * 1000.0);
    char *dot = strchr (out, '.');
    if (dot) {
        char *end = out + strlen (out);
        while (end > dot + 1 && end[-1] == '0')
            *--end = 0;
        if (end == dot + 1)
            *dot = 0;
    }
}

//  -------------------------------------------------------------------------
//  Requests in flight

static void
s_request_destroy (s_request_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_request_t *self = *self_p;
        if (self->easy)
            curl_easy_cleanup (self->easy);
        zframe_destroy (&self->routing_id);
        zframe_destroy (&self->reqid);
        free (self->reqid_hex);
        free (self->url_logged);
        free (self->body);
        free (self);
        *self_p = NULL;
    }
}

//  curl's write callback: append to the response, up to the cap.
static size_t
s_request_write (char *data, size_t size, size_t count, void *userp)
{
    s_request_t *self = (s_request_t *) userp;
    size_t bytes = size * count;
    if (bytes > HERD_PLACES_MAX_BODY - self->size) {
        self->too_large = true;
        return 0;                   //  curl aborts with CURLE_WRITE_ERROR
    }
    if (self->size + bytes + 1 > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 16384;
        while (capacity < self->size + bytes + 1)
            capacity *= 2;
        char *body = (char *) realloc (self->body, capacity);
        if (!body)
            return 0;
        self->body = body;
        self->capacity = capacity;
    }
    memcpy (self->body + self->size, data, bytes);
    self->size += bytes;
    return bytes;
}

//  -------------------------------------------------------------------------
//  The actor

static void
s_self_log_request (s_self_t *self, const char *reqid_hex, const char *reply,
                    const char *status, int results, long http, int curl, double ms,
                    const char *url, const char *error);

static void
s_self_destroy (s_self_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_self_t *self = *self_p;
        size_t cancelled = 0;
        while (self->requests) {
            s_request_t *request = self->requests;
            self->requests = request->next;
            double ms = (double) (s_now_usec () - request->started) / 1000.0;
            s_self_log_request (self, request->reqid_hex, "-", "CANCELLED", 0, 0, 0, ms,
                                request->url_logged, "herd: places worker stopped");
            curl_multi_remove_handle (self->multi, request->easy);
            s_request_destroy (&request);
            cancelled++;
        }
        if (cancelled)
            s_self_log (self, "stopped with %zu requests in flight, not answered", cancelled);
        if (self->multi)
            curl_multi_cleanup (self->multi);
        zsock_destroy (&self->router);
        free (self->url);
        free (self->key_escaped);
        free (self);
        *self_p = NULL;
    }
}

//  Set up: curl, the multi handle, the ROUTER. Logs why and returns NULL on
//  failure.
static s_self_t *
s_self_new (zsock_t *pipe, const herd_places_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    assert (self);
    self->pipe = pipe;
    self->log = args ? args->log : NULL;
    if (!args || !args->options || !args->endpoint) {
        s_self_log (self, "cannot start: no options or no endpoint");
        s_self_destroy (&self);
        return NULL;
    }
    self->options = args->options;
    self->key = args->key;
    const char *url = args->url ? args->url : args->options->url;
    if (!url || !*url) {
        s_self_log (self, "cannot start: no Places API URL");
        s_self_destroy (&self);
        return NULL;
    }
    self->url = strdup (url);
    assert (self->url);
    pthread_once (&s_curl_once, s_curl_global_init);
    if (s_curl_init_rc != CURLE_OK) {
        s_self_log (self, "cannot start: curl_global_init: %s",
                    curl_easy_strerror (s_curl_init_rc));
        s_self_destroy (&self);
        return NULL;
    }
    self->multi = curl_multi_init ();
    if (!self->multi) {
        s_self_log (self, "cannot start: curl_multi_init failed");
        s_self_destroy (&self);
        return NULL;
    }
    //  Transfers beyond the limit wait inside curl for a free connection;
    //  finished connections stay open for the next request (keep-alive)
    if (self->options->concurrency > 0) {
        long concurrency = self->options->concurrency;
        curl_multi_setopt (self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, concurrency);
        curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, concurrency);
    }
    if (self->key && *self->key) {
        CURL *easy = curl_easy_init ();
        char *escaped = easy ? curl_easy_escape (easy, self->key, 0) : NULL;
        if (escaped)
            self->key_escaped = strdup (escaped);
        curl_free (escaped);
        if (easy)
            curl_easy_cleanup (easy);
        if (!self->key_escaped) {
            s_self_log (self, "cannot start: could not URL-escape the API key");
            s_self_destroy (&self);
            return NULL;
        }
    }
    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    //  Never drop a reply: the gateway waits for every one
    zsock_set_sndhwm (self->router, 0);
    if (zsock_bind (self->router, "%s", args->endpoint) == -1) {
        s_self_log (self, "cannot start: cannot bind %s: %s", args->endpoint,
                    zmq_strerror (zmq_errno ()));
        s_self_destroy (&self);
        return NULL;
    }
    char url_logged[512];
    s_self_sanitise (self, self->url, url_logged, sizeof (url_logged));
    s_self_log (self, "serving %s url=%s key=%s timeout_ms=%d connect_timeout_ms=%d "
                      "concurrency=%d",
                args->endpoint, url_logged, self->key_escaped ? "set" : "none",
                self->options->timeout_ms, self->options->connect_timeout_ms,
                self->options->concurrency);
    return self;
}

//  Send ["RESULT", reqid, status, body] to the gateway that asked.
static void
s_self_reply (s_self_t *self, zframe_t *routing_id, zframe_t *reqid, const char *status,
              const char *body)
{
    zmsg_t *reply = zmsg_new ();
    zframe_t *frame = zframe_dup (routing_id);
    zmsg_append (reply, &frame);
    zmsg_addstr (reply, HERD_MSG_RESULT);
    frame = zframe_dup (reqid);
    zmsg_append (reply, &frame);
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, body ? body : "");
    if (zmsg_send (&reply, self->router) == -1) {
        s_self_log (self, "cannot send a reply: %s", zmq_strerror (zmq_errno ()));
        zmsg_destroy (&reply);
    }
}

//  Log the one line of a request: what was answered, and why.
static void
s_self_log_request (s_self_t *self, const char *reqid_hex, const char *reply,
                    const char *status, int results, long http, int curl, double ms,
                    const char *url, const char *error)
{
    char status_text[64];
    char error_text[512] = "";
    s_self_sanitise (self, status ? status : "-", status_text, sizeof (status_text));
    if (error && *error)
        s_self_sanitise (self, error, error_text, sizeof (error_text));
    s_self_log (self, "req=%s reply=%s status=%s results=%d http=%ld curl=%d ms=%.1f url=%s%s%s%s",
                reqid_hex, reply, status_text, results, http, curl, ms, url ? url : "-",
                *error_text ? " error=\"" : "", error_text, *error_text ? "\"" : "");
}

//  Answer a request the actor refuses before any HTTP: ERR INVALID_REQUEST.
static void
s_self_refuse (s_self_t *self, zframe_t *routing_id, zframe_t *reqid, const char *reason)
{
    char message[256];
    snprintf (message, sizeof (message), "herd: invalid NEARBY request: %s", reason);
    char *reqid_hex = s_hex (reqid);
    s_self_log_request (self, reqid_hex, HERD_MSG_ERR, "INVALID_REQUEST", 0, 0, 0, 0.0, NULL,
                        message);
    if (reqid) {
        char *body = herd_placesbody_error ("INVALID_REQUEST", message);
        s_self_reply (self, routing_id, reqid, HERD_MSG_ERR, body);
        free (body);
    }
    free (reqid_hex);
}

//  Start the transfer of one valid request. Takes the frames.
static void
s_self_start (s_self_t *self, zframe_t **routing_id_p, zframe_t **reqid_p, const char *lat,
              const char *lon, double radius_km, int bound)
{
    s_request_t *request = (s_request_t *) zmalloc (sizeof (s_request_t));
    assert (request);
    request->routing_id = *routing_id_p;
    request->reqid = *reqid_p;
    *routing_id_p = NULL;
    *reqid_p = NULL;
    request->reqid_hex = s_hex (request->reqid);
    request->bound = bound;
    request->started = s_now_usec ();

    //  A '+' in a query is a space: drop it, as the sign is optional
    char metres[64];
    s_format_metres (radius_km, metres, sizeof (metres));
    char separator = strchr (self->url, '?') ? '&' : '?';
    const char *latitude = *lat == '+' ? lat + 1 : lat;
    const char *longitude = *lon == '+' ? lon + 1 : lon;
    char *url = zsys_sprintf ("%s%clocation=%s,%s&radius=%s%s%s", self->url, separator,
                              latitude, longitude, metres,
                              self->key_escaped ? "&key=" : "",
                              self->key_escaped ? self->key_escaped : "");
    char *url_logged = zsys_sprintf ("%s%clocation=%s,%s&radius=%s%s", self->url, separator,
                                     latitude, longitude, metres,
                                     self->key_escaped ? "&key=" HERD_PLACES_REDACTED : "");
    assert (url && url_logged);
    request->url_logged = (char *) malloc (strlen (url_logged) + 1);
    assert (request->url_logged);
    s_self_sanitise (self, url_logged, request->url_logged, strlen (url_logged) + 1);
    zstr_free (&url_logged);

    CURLMcode code = CURLM_OUT_OF_MEMORY;
    request->easy = curl_easy_init ();
    if (request->easy) {
        CURL *easy = request->easy;
        curl_easy_setopt (easy, CURLOPT_URL, url);
        curl_easy_setopt (easy, CURLOPT_PRIVATE, (void *) request);
        curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_request_write);
        curl_easy_setopt (easy, CURLOPT_WRITEDATA, (void *) request);
        curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, request->error);
        curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long) self->options->timeout_ms);
        curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS,
                          (long) self->options->connect_timeout_ms);
        curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt (easy, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt (easy, CURLOPT_USERAGENT, HERD_PLACES_USER_AGENT);
        //  No CURLOPT_PIPEWAIT: it makes a new transfer wait for a pending
        //  connection to show whether it multiplexes, so one stalled
        //  connection would hold others up (the self test shows it). HTTP/2
        //  connections already open are still shared. Never follow a
        //  redirect off http(s).
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt (easy, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        code = curl_multi_add_handle (self->multi, easy);
    }
    zstr_free (&url);
    if (code != CURLM_OK) {
        char message[256];
        snprintf (message, sizeof (message), "herd: could not start the Places request: %s",
                  curl_multi_strerror (code));
        s_self_log_request (self, request->reqid_hex, HERD_MSG_ERR, "UNKNOWN_ERROR", 0, 0, 0,
                            0.0, request->url_logged, message);
        char *body = herd_placesbody_error ("UNKNOWN_ERROR", message);
        s_self_reply (self, request->routing_id, request->reqid, HERD_MSG_ERR, body);
        free (body);
        s_request_destroy (&request);
        return;
    }
    request->next = self->requests;
    if (self->requests)
        self->requests->prev = request;
    self->requests = request;
    self->in_flight++;
}

//  Handle one message on the ROUTER: ["NEARBY", reqid, lat, lon, radius-km,
//  bound] after the routing id. Anything else gets ERR INVALID_REQUEST (when
//  it carries something to use as reqid) and a log line.
static void
s_self_handle_router (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    if (!msg)
        return;
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *command = zmsg_pop (msg);
    zframe_t *reqid = zmsg_pop (msg);
    char *lat = NULL, *lon = NULL, *radius = NULL, *bound = NULL;
    char reason[160] = "";
    double latitude = 0, longitude = 0, radius_km = 0, bound_value = 0;

    if (!command || !zframe_streq (command, HERD_MSG_NEARBY))
        snprintf (reason, sizeof (reason), "not a NEARBY command");
    else
    if (zmsg_size (msg) != 4)
        snprintf (reason, sizeof (reason),
                  "expected NEARBY reqid lat lon radius-km bound, got %zu frames",
                  zmsg_size (msg) + 1 + (reqid != NULL));
    else {
        lat = s_field (zmsg_first (msg));
        lon = s_field (zmsg_next (msg));
        radius = s_field (zmsg_next (msg));
        bound = s_field (zmsg_next (msg));
        if (!lat || s_parse_decimal (lat, true, false, &latitude) || fabs (latitude) > 90)
            snprintf (reason, sizeof (reason), "latitude is not a number in [-90, 90]");
        else
        if (!lon || s_parse_decimal (lon, true, false, &longitude) || fabs (longitude) > 180)
            snprintf (reason, sizeof (reason), "longitude is not a number in [-180, 180]");
        else
        if (!radius || s_parse_decimal (radius, false, true, &radius_km) || radius_km <= 0
            || radius_km > 50)
            snprintf (reason, sizeof (reason), "radius is not a number of km in (0, 50]");
        else
        if (!bound || strlen (bound) > 2 || s_parse_decimal (bound, false, false, &bound_value)
            || strchr (bound, '.') || bound_value < 1 || bound_value > 20)
            snprintf (reason, sizeof (reason), "bound is not an integer in [1, 20]");
    }
    if (*reason)
        s_self_refuse (self, routing_id, reqid, reason);
    else
        s_self_start (self, &routing_id, &reqid, lat, lon, radius_km, (int) bound_value);

    free (lat);
    free (lon);
    free (radius);
    free (bound);
    zframe_destroy (&routing_id);
    zframe_destroy (&command);
    zframe_destroy (&reqid);
    zmsg_destroy (&msg);
}

//  Answer a finished transfer, log it, and forget it.
static void
s_self_finish (s_self_t *self, s_request_t *request, CURLcode result)
{
    long http = 0;
    curl_easy_getinfo (request->easy, CURLINFO_RESPONSE_CODE, &http);
    double ms = (double) (s_now_usec () - request->started) / 1000.0;
    const herd_places_options_t *options = self->options;
    char message[CURL_ERROR_SIZE + 128] = "";
    const char *curl_error = *request->error ? request->error : curl_easy_strerror (result);
    char *shaped = NULL;
    char *status = NULL;
    int results = 0;
    bool ok = false;

    if (request->too_large)
        snprintf (message, sizeof (message), "herd: Places API sent more than %zu MiB",
                  HERD_PLACES_MAX_BODY / ((size_t) 1024 * 1024));
    else
    if (result == CURLE_OPERATION_TIMEDOUT) {
        //  Which deadline fired: the one closer to the time it took
        if (options->connect_timeout_ms < options->timeout_ms
            && ms < (options->connect_timeout_ms + options->timeout_ms) / 2.0)
            snprintf (message, sizeof (message),
                      "herd: could not connect to the Places API within %d ms",
                      options->connect_timeout_ms);
        else
            snprintf (message, sizeof (message), "herd: Places request timed out after %d ms",
                      options->timeout_ms);
    }
    else
    if (result == CURLE_COULDNT_RESOLVE_HOST || result == CURLE_COULDNT_RESOLVE_PROXY
        || result == CURLE_COULDNT_CONNECT || result == CURLE_SSL_CONNECT_ERROR
        || result == CURLE_PEER_FAILED_VERIFICATION || result == CURLE_SSL_CACERT_BADFILE
        || result == CURLE_URL_MALFORMAT || result == CURLE_UNSUPPORTED_PROTOCOL)
        snprintf (message, sizeof (message), "herd: could not reach the Places API: %s",
                  curl_error);
    else
    if (result != CURLE_OK)
        snprintf (message, sizeof (message), "herd: Places request failed: %s", curl_error);
    else {
        shaped = herd_placesbody_shape (request->body, request->size, request->bound, &status,
                                        &results);
        bool success = status && (streq (status, "OK") || streq (status, "ZERO_RESULTS"));
        bool refused = shaped && status && !success;
        if (shaped && success && http == 200)
            ok = true;
        else
        if (refused) {
            //  Google's own error body, whatever the HTTP status, goes back
            //  as it is (REQUEST_DENIED comes with 200 or 403)
        }
        else
        if (http != 200)
            snprintf (message, sizeof (message), "herd: Places API answered HTTP %ld", http);
        else
        if (!shaped)
            snprintf (message, sizeof (message), "herd: Places API sent invalid JSON");
        else
            snprintf (message, sizeof (message), "herd: Places API answer has no status");
    }

    //  What Google said about its own error, for the log
    char *google_error = NULL;
    if (shaped && !ok && !*message) {
        cJSON *root = cJSON_ParseWithLength (request->body, request->size);
        const char *text = cJSON_GetStringValue (cJSON_GetObjectItem (root, "error_message"));
        if (text)
            google_error = strdup (text);
        cJSON_Delete (root);
    }
    if (*message) {
        free (shaped);
        free (status);
        shaped = herd_placesbody_error ("UNKNOWN_ERROR", message);
        status = strdup ("UNKNOWN_ERROR");
        results = 0;
    }
    s_self_reply (self, request->routing_id, request->reqid, ok ? HERD_MSG_OK : HERD_MSG_ERR,
                  shaped);
    s_self_log_request (self, request->reqid_hex, ok ? HERD_MSG_OK : HERD_MSG_ERR, status,
                        results, http, (int) result, ms, request->url_logged,
                        *message ? message : google_error);
    free (google_error);
    free (shaped);
    free (status);

    //  Unlink and destroy
    if (request->prev)
        request->prev->next = request->next;
    else
        self->requests = request->next;
    if (request->next)
        request->next->prev = request->prev;
    self->in_flight--;
    curl_multi_remove_handle (self->multi, request->easy);
    s_request_destroy (&request);
}

//  Let curl move every transfer along, and answer those that ended.
static void
s_self_handle_curl (s_self_t *self)
{
    int running = 0;
    CURLMcode code = curl_multi_perform (self->multi, &running);
    if (code != CURLM_OK)
        s_self_log (self, "curl_multi_perform: %s", curl_multi_strerror (code));
    CURLMsg *message;
    int left = 0;
    while ((message = curl_multi_info_read (self->multi, &left))) {
        if (message->msg != CURLMSG_DONE)
            continue;
        //  The message dies with the handle: copy what we need first
        CURLcode result = message->data.result;
        char *request = NULL;
        curl_easy_getinfo (message->easy_handle, CURLINFO_PRIVATE, &request);
        if (request)
            s_self_finish (self, (s_request_t *) request, result);
    }
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
    else
        s_self_log (self, "unknown pipe command ignored");
    zstr_free (&command);
}

//  True if a ZeroMQ socket has a message waiting. Its file descriptor is
//  edge-triggered: ask before every sleep, after every send.
static bool
s_readable (zsock_t *sock)
{
    return (zsock_events (sock) & ZMQ_POLLIN) != 0;
}

void
herd_places_actor (zsock_t *pipe, void *args)
{
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (const herd_places_args_t *) args);
    zsock_signal (pipe, self ? 0 : (byte) -1);
    if (!self) {
        //  Set-up failed (logged): wait to be destroyed
        char *command = NULL;
        while ((command = zstr_recv (pipe)) && !streq (command, "$TERM"))
            zstr_free (&command);
        zstr_free (&command);
        return;
    }
    while (!self->terminated) {
        while (!self->terminated && s_readable (self->pipe))
            s_self_handle_pipe (self);
        if (self->terminated)
            break;
        //  Take at most a batch, so a flood cannot starve the transfers
        for (int batch = 0; batch < 1000 && s_readable (self->router); batch++)
            s_self_handle_router (self);
        s_self_handle_curl (self);
        herd_log_tick (self->log);
        if (s_readable (self->pipe) || s_readable (self->router))
            continue;
        long timeout = -1;
        curl_multi_timeout (self->multi, &timeout);
        if (timeout < 0 || timeout > HERD_PLACES_MAX_WAIT)
            timeout = HERD_PLACES_MAX_WAIT;
        struct curl_waitfd extra[2] = {
            {zsock_fd (self->pipe), CURL_WAIT_POLLIN, 0},
            {zsock_fd (self->router), CURL_WAIT_POLLIN, 0},
        };
        curl_multi_poll (self->multi, extra, 2, (int) timeout, NULL);
    }
    s_self_destroy (&self);
}

//  --------------------------------------------------------------------------
//  Self test: a tiny HTTP server on loopback plays the Places API.
//
//  It answers by the latitude in the query: 1 OK (three results), 2 never
//  (hangs), 3 HTTP 500, 4 invalid JSON, 5 OK after 200 ms, 6 REQUEST_DENIED,
//  7 REQUEST_DENIED with HTTP 403, 8 a 9 MiB body, 9 a JSON array, 10
//  ZERO_RESULTS; anything else OK. Connections are kept alive.

#define S_SERVER_CONNS 32

static const char s_body_ok[] = "{\n"
                                "   \"html_attributions\" : [],\n"
                                "   \"results\" : [\n"
                                "      {\n"
                                "         \"name\" : \"One \\\"results\\\" ]\"\n"
                                "      },\n"
                                "\n"
                                "      {\n"
                                "         \"name\" : \"Two\"\n"
                                "      },\n"
                                "      {\n"
                                "         \"name\" : \"Three\"\n"
                                "      }\n"
                                "   ],\n"
                                "   \"status\" : \"OK\"\n"
                                "}\n\n";
static const char s_body_denied[] =
    "{\n   \"error_message\" : \"The provided API key is invalid.\",\n"
    "   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"REQUEST_DENIED\"\n}\n";
static const char s_body_zero[] =
    "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n";

typedef struct {
    int fd;
    char buffer[4096];
    size_t size;
    int64_t reply_at;           //  monotonic usec; 0 none pending, -1 never
    int behaviour;
} s_conn_t;

typedef struct {
    int listener;
    int port;
    int wake[2];                //  a byte here stops the thread
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int accepted;               //  connections accepted
    int requests;               //  requests received
    char target[1024];          //  request target of the last request
    s_conn_t conns[S_SERVER_CONNS];
} s_server_t;

//  Send all bytes; false if the peer went away.
static bool
s_send_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t rc = send (fd, data, size, MSG_NOSIGNAL);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return false;
        data += rc;
        size -= (size_t) rc;
    }
    return true;
}

static void
s_server_respond (s_conn_t *conn)
{
    int code = 200;
    const char *body = s_body_ok;
    if (conn->behaviour == 3) {
        code = 500;
        body = "<html>Internal Server Error</html>";
    }
    else
    if (conn->behaviour == 4)
        body = "{\"results\" : [ {\"name\" : \"cut";
    else
    if (conn->behaviour == 6 || conn->behaviour == 7) {
        code = conn->behaviour == 6 ? 200 : 403;
        body = s_body_denied;
    }
    else
    if (conn->behaviour == 9)
        body = "[ \"not\", \"an\", \"object\" ]";
    else
    if (conn->behaviour == 10)
        body = s_body_zero;
    size_t size = conn->behaviour == 8 ? (size_t) 9 * 1024 * 1024 : strlen (body);
    char head[256];
    int head_size = snprintf (head, sizeof (head),
                              "HTTP/1.1 %d %s\r\nContent-Type: application/json; "
                              "charset=UTF-8\r\nContent-Length: %zu\r\n\r\n",
                              code, code == 200 ? "OK" : "Error", size);
    bool sent = s_send_all (conn->fd, head, (size_t) head_size);
    if (conn->behaviour == 8) {
        char *filler = (char *) malloc (65536);
        assert (filler);
        memset (filler, ' ', 65536);
        for (size_t done = 0; sent && done < size; done += 65536)
            sent = s_send_all (conn->fd, filler, 65536);
        free (filler);
    }
    else
    if (sent)
        sent = s_send_all (conn->fd, body, size);
    if (!sent) {
        close (conn->fd);
        conn->fd = -1;
    }
}

//  Read from a connection; schedule the answer once a request head is in.
static void
s_server_read (s_server_t *self, s_conn_t *conn)
{
    ssize_t rc = recv (conn->fd, conn->buffer + conn->size, sizeof (conn->buffer) - 1 - conn->size,
                       0);
    if (rc <= 0) {
        close (conn->fd);
        conn->fd = -1;
        return;
    }
    conn->size += (size_t) rc;
    conn->buffer[conn->size] = 0;
    char *end = strstr (conn->buffer, "\r\n\r\n");
    if (!end || conn->reply_at != 0)
        return;
    //  "GET /path?location=LAT,LNG&... HTTP/1.1"
    char *space = strchr (conn->buffer, ' ');
    char *target_end = space ? strchr (space + 1, ' ') : NULL;
    char *location = strstr (conn->buffer, "location=");
    conn->behaviour = location ? (int) strtol (location + strlen ("location="), NULL, 10) : 0;
    pthread_mutex_lock (&self->mutex);
    if (space && target_end)
        snprintf (self->target, sizeof (self->target), "%.*s",
                  (int) (target_end - space - 1), space + 1);
    self->requests++;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
    int64_t delay = conn->behaviour == 5 ? 200000 : 0;
    conn->reply_at = conn->behaviour == 2 ? -1 : s_now_usec () + delay;
    //  Keep what follows the head (nothing, as curl does not pipeline)
    size_t used = (size_t) (end + 4 - conn->buffer);
    memmove (conn->buffer, conn->buffer + used, conn->size - used + 1);
    conn->size -= used;
}

static void *
s_server_run (void *args)
{
    s_server_t *self = (s_server_t *) args;
    while (true) {
        struct pollfd items[S_SERVER_CONNS + 2];
        s_conn_t *owners[S_SERVER_CONNS + 2];
        nfds_t count = 0;
        items[count++] = (struct pollfd) {self->wake[0], POLLIN, 0};
        items[count++] = (struct pollfd) {self->listener, POLLIN, 0};
        int64_t now = s_now_usec ();
        int timeout = -1;
        for (int i = 0; i < S_SERVER_CONNS; i++) {
            s_conn_t *conn = &self->conns[i];
            if (conn->fd < 0)
                continue;
            if (conn->reply_at > 0) {
                int64_t wait = (conn->reply_at - now) / 1000 + 1;
                if (timeout < 0 || wait < timeout)
                    timeout = wait < 0 ? 0 : (int) wait;
            }
            owners[count] = conn;
            items[count++] = (struct pollfd) {conn->fd, POLLIN, 0};
        }
        if (poll (items, count, timeout) < 0 && errno != EINTR)
            break;
        if (items[0].revents)
            break;
        if (items[1].revents & POLLIN) {
            int fd = accept (self->listener, NULL, NULL);
            int slot = 0;
            while (slot < S_SERVER_CONNS && self->conns[slot].fd >= 0)
                slot++;
            if (fd >= 0 && slot < S_SERVER_CONNS) {
                int on = 1;
                setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof (on));
                memset (&self->conns[slot], 0, sizeof (s_conn_t));
                self->conns[slot].fd = fd;
                pthread_mutex_lock (&self->mutex);
                self->accepted++;
                pthread_mutex_unlock (&self->mutex);
            }
            else
            if (fd >= 0)
                close (fd);
        }
        for (nfds_t i = 2; i < count; i++)
            if (items[i].revents && owners[i]->fd >= 0)
                s_server_read (self, owners[i]);
        now = s_now_usec ();
        for (int i = 0; i < S_SERVER_CONNS; i++) {
            s_conn_t *conn = &self->conns[i];
            if (conn->fd >= 0 && conn->reply_at > 0 && now >= conn->reply_at) {
                conn->reply_at = 0;
                s_server_respond (conn);
            }
        }
    }
    return NULL;
}

static s_server_t *
s_server_new (void)
{
    s_server_t *self = (s_server_t *) zmalloc (sizeof (s_server_t));
    assert (self);
    for (int i = 0; i < S_SERVER_CONNS; i++)
        self->conns[i].fd = -1;
    self->listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    HERD_CHECK (self->listener >= 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    HERD_CHECK_INT (bind (self->listener, (struct sockaddr *) &address, sizeof (address)), 0);
    HERD_CHECK_INT (listen (self->listener, 64), 0);
    socklen_t length = sizeof (address);
    HERD_CHECK_INT (getsockname (self->listener, (struct sockaddr *) &address, &length), 0);
    self->port = ntohs (address.sin_port);
    HERD_CHECK_INT (pipe (self->wake), 0);
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->cond, NULL);
    HERD_CHECK_INT (pthread_create (&self->thread, NULL, s_server_run, self), 0);
    return self;
}

static void
s_server_destroy (s_server_t **self_p)
{
    s_server_t *self = *self_p;
    HERD_CHECK_INT (write (self->wake[1], "x", 1), 1);
    pthread_join (self->thread, NULL);
    for (int i = 0; i < S_SERVER_CONNS; i++)
        if (self->conns[i].fd >= 0)
            close (self->conns[i].fd);
    close (self->listener);
    close (self->wake[0]);
    close (self->wake[1]);
    pthread_mutex_destroy (&self->mutex);
    pthread_cond_destroy (&self->cond);
    free (self);
    *self_p = NULL;
}

//  Wait until the server has received count requests in all; false after
//  timeout_ms.
static bool
s_server_wait_requests (s_server_t *self, int count, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime (CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock (&self->mutex);
    int rc = 0;
    while (self->requests < count && rc == 0)
        rc = pthread_cond_timedwait (&self->cond, &self->mutex, &deadline);
    bool reached = self->requests >= count;
    pthread_mutex_unlock (&self->mutex);
    return reached;
}

//  The target of the last request the server received. Caller frees.
static char *
s_server_target (s_server_t *self)
{
    pthread_mutex_lock (&self->mutex);
    char *target = strdup (self->target);
    pthread_mutex_unlock (&self->mutex);
    return target;
}

static int
s_server_requests (s_server_t *self)
{
    pthread_mutex_lock (&self->mutex);
    int requests = self->requests;
    pthread_mutex_unlock (&self->mutex);
    return requests;
}

static int
s_server_accepted (s_server_t *self)
{
    pthread_mutex_lock (&self->mutex);
    int accepted = self->accepted;
    pthread_mutex_unlock (&self->mutex);
    return accepted;
}

//  A reply as the gateway sees it.
typedef struct {
    char *reqid;
    char *status;
    char *json;
} s_reply_t;

static void
s_send_nearby (zsock_t *dealer, const char *reqid, const char *lat, const char *lon,
               const char *radius, const char *bound)
{
    HERD_CHECK_INT (zstr_sendx (dealer, HERD_MSG_NEARBY, reqid, lat, lon, radius, bound, NULL),
                    0);
}

//  Receive one reply (5 s at most) and check its framing.
static s_reply_t
s_recv_reply (zsock_t *dealer)
{
    zmsg_t *msg = zmsg_recv (dealer);
    HERD_CHECK (msg);
    HERD_CHECK_INT (zmsg_size (msg), 4);
    char *kind = zmsg_popstr (msg);
    HERD_CHECK_STR (kind, HERD_MSG_RESULT);
    zstr_free (&kind);
    s_reply_t reply;
    reply.reqid = zmsg_popstr (msg);
    reply.status = zmsg_popstr (msg);
    reply.json = zmsg_popstr (msg);
    zmsg_destroy (&msg);
    HERD_CHECK (strstr (reply.json, "\n\n") == NULL);
    HERD_CHECK (reply.json[strlen (reply.json) - 1] == '}');
    return reply;
}

static void
s_reply_free (s_reply_t *reply)
{
    zstr_free (&reply->reqid);
    zstr_free (&reply->status);
    zstr_free (&reply->json);
}

//  Receive a reply and check it is ERR with this Places status and an
//  error_message that contains message.
static void
s_expect_error (zsock_t *dealer, const char *reqid, const char *status, const char *message)
{
    s_reply_t reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, reqid);
    HERD_CHECK_STR (reply.status, HERD_MSG_ERR);
    cJSON *root = cJSON_Parse (reply.json);
    HERD_CHECK (cJSON_IsObject (root));
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (root, "status")), status);
    HERD_CHECK_CONTAINS (cJSON_GetStringValue (cJSON_GetObjectItem (root, "error_message")),
                         message);
    HERD_CHECK_INT (cJSON_GetArraySize (cJSON_GetObjectItem (root, "results")), 0);
    cJSON_Delete (root);
    s_reply_free (&reply);
}

//  Count the lines of text that contain needle.
static int
s_count_lines (const char *text, const char *needle)
{
    int count = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr (line, '\n');
        size_t size = end ? (size_t) (end - line) : strlen (line);
        const char *hit = strstr (line, needle);
        if (hit && hit < line + size)
            count++;
        line = end ? end + 1 : NULL;
    }
    return count;
}

void
herd_places_test (bool verbose)
{
    printf (" * herd_places: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    s_server_t *server = s_server_new ();
    char directory[] = "/tmp/herd-places-test-XXXXXX";
    HERD_CHECK (mkdtemp (directory));
    char *log_path = zsys_sprintf ("%s/places.log", directory);
    herd_log_t *log = herd_log_new (log_path, "Test");
    HERD_CHECK (log);
    char *url = zsys_sprintf ("http://127.0.0.1:%d/maps/api/place/nearbysearch/json",
                              server->port);
    char flavour[] = "legacy", key_env[] = "HERD_TEST_KEY";
    herd_places_options_t options = {flavour, url, key_env, 500, 500, 8};
    const char *key = "s3cr/et k+y";
    const char *key_escaped = "s3cr%2Fet%20k%2By";
    int requests = 0;           //  NEARBY requests sent, each logged once

    //  Set-up failure: the second signal is not 0, the actor still stops
    herd_places_args_t bad_args = {&options, "nonsense://nowhere", NULL, key, log};
    zactor_t *places = zactor_new (herd_places_actor, &bad_args);
    HERD_CHECK (places);
    HERD_CHECK (zsock_wait (places) != 0);
    zactor_destroy (&places);

    herd_places_args_t args = {&options, "inproc://herd-places-test", NULL, key, log};
    places = zactor_new (herd_places_actor, &args);
    HERD_CHECK (places);
    HERD_CHECK_INT (zsock_wait (places), 0);
    if (verbose)
        zstr_send (places, "VERBOSE");
    zsock_t *dealer = zsock_new_dealer (">inproc://herd-places-test");
    HERD_CHECK (dealer);
    zsock_set_rcvtimeo (dealer, 5000);

    //  OK, cut to the bound with Google's layout; the key reaches the
    //  server, escaped, and the radius is in metres
    s_send_nearby (dealer, "r1", "+1", "-118.445127", "10", "2");
    requests++;
    s_reply_t reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, "r1");
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_STR (reply.json, "{\n"
                                "   \"html_attributions\" : [],\n"
                                "   \"results\" : [\n"
                                "      {\n"
                                "         \"name\" : \"One \\\"results\\\" ]\"\n"
                                "      },\n"
                                "      {\n"
                                "         \"name\" : \"Two\"\n"
                                "      }\n"
                                "   ],\n"
                                "   \"status\" : \"OK\"\n"
                                "}");
    s_reply_free (&reply);
    char *target = s_server_target (server);
    char *expected = zsys_sprintf ("/maps/api/place/nearbysearch/json?location=1,-118.445127"
                                   "&radius=10000&key=%s",
                                   key_escaped);
    HERD_CHECK_STR (target, expected);
    zstr_free (&expected);
    zstr_free (&target);

    //  A second request reuses the connection (keep-alive)
    s_send_nearby (dealer, "r2", "+34.068930", "+118.445127", "0.5", "20");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, "r2");
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_CONTAINS (reply.json, "\"Three\"");
    s_reply_free (&reply);
    HERD_CHECK_INT (s_server_accepted (server), 1);
    target = s_server_target (server);
    HERD_CHECK_CONTAINS (target, "?location=34.068930,118.445127&radius=500&key=");
    zstr_free (&target);
    s_send_nearby (dealer, "r3", "-1.5", "+0", "1.23456789", "1");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK (strstr (reply.json, "\"Two\"") == NULL);
    s_reply_free (&reply);
    target = s_server_target (server);
    HERD_CHECK_CONTAINS (target, "?location=-1.5,0&radius=1234.568&key=");
    zstr_free (&target);
    s_send_nearby (dealer, "r4", "+10", "+0", "50", "5");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_CONTAINS (reply.json, "\"ZERO_RESULTS\"");
    s_reply_free (&reply);

    //  Failures of the API: ERR with a clear message or Google's own body
    s_send_nearby (dealer, "e3", "+3", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "e3", "UNKNOWN_ERROR", "herd: Places API answered HTTP 500");
    s_send_nearby (dealer, "e4", "+4", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "e4", "UNKNOWN_ERROR", "herd: Places API sent invalid JSON");
    s_send_nearby (dealer, "e9", "+9", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "e9", "UNKNOWN_ERROR", "herd: Places API sent invalid JSON");
    s_send_nearby (dealer, "e6", "+6", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "e6", "REQUEST_DENIED", "The provided API key is invalid.");
    s_send_nearby (dealer, "e7", "+7", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "e7", "REQUEST_DENIED", "The provided API key is invalid.");
    s_send_nearby (dealer, "e8", "+8", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "e8", "UNKNOWN_ERROR", "herd: Places API sent more than 8 MiB");

    //  Malformed requests: ERR INVALID_REQUEST, no HTTP
    const char *invalid[][4] = {
        {"abc", "+0", "1", "5"},  {"+91", "+0", "1", "5"},   {"+1", "-180.5", "1", "5"},
        {"+1", "1e2", "1", "5"},  {"+1", "+0", "0", "5"},    {"+1", "+0", "50.5", "5"},
        {"+1", "+0", "-1", "5"},  {"+1", "+0", "nan", "5"},  {"+1", "+0", "1", "0"},
        {"+1", "+0", "1", "21"},  {"+1", "+0", "1", "2.0"},  {"+1", "+0", "1", ""},
        {"+1 ", "+0", "1", "5"},  {"+1", "+0", "1", "+5"},   {"+1", "+0&x=y", "1", "5"},
    };
    int before = s_server_accepted (server);
    for (size_t i = 0; i < sizeof (invalid) / sizeof (invalid[0]); i++) {
        s_send_nearby (dealer, "bad", invalid[i][0], invalid[i][1], invalid[i][2],
                       invalid[i][3]);
        requests++;
        s_expect_error (dealer, "bad", "INVALID_REQUEST", "herd: invalid NEARBY request: ");
    }
    HERD_CHECK_INT (zstr_sendx (dealer, HERD_MSG_NEARBY, "short", "+1", NULL), 0);
    requests++;
    s_expect_error (dealer, "short", "INVALID_REQUEST", "got 3 frames");
    HERD_CHECK_INT (zstr_sendx (dealer, "NEARLY", "what", NULL), 0);
    requests++;
    s_expect_error (dealer, "what", "INVALID_REQUEST", "not a NEARBY command");
    HERD_CHECK_INT (zstr_send (dealer, HERD_MSG_NEARBY), 0);
    requests++;             //  logged, but nothing to answer it with
    HERD_CHECK_INT (s_server_accepted (server), before);

    //  Requests in flight are independent: a fast one overtakes a slow one
    //  and a hung one, and the hung one times out on time
    int64_t started = s_now_usec ();
    s_send_nearby (dealer, "hang", "+2", "+0", "1", "5");
    s_send_nearby (dealer, "slow", "+5", "+0", "1", "5");
    s_send_nearby (dealer, "fast", "+1", "+0", "1", "1");
    requests += 3;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, "fast");
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    s_reply_free (&reply);
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, "slow");
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK (s_now_usec () - started >= 200000);
    s_reply_free (&reply);
    s_expect_error (dealer, "hang", "UNKNOWN_ERROR", "herd: Places request timed out after 500 ms");
    //  curl counts in whole milliseconds from its own start: allow a little
    int64_t elapsed_ms = (s_now_usec () - started) / 1000;
    if (verbose)
        printf ("hung request answered after %" PRId64 " ms\n", elapsed_ms);
    HERD_CHECK_INT (elapsed_ms >= 450 && elapsed_ms < 2000 ? 0 : elapsed_ms, 0);

    //  A request in flight when the actor stops is cleaned up
    int received = s_server_requests (server);
    s_send_nearby (dealer, "left", "+2", "+0", "1", "5");
    requests++;
    HERD_CHECK (s_server_wait_requests (server, received + 1, 5000));
    zactor_destroy (&places);
    zsock_destroy (&dealer);

    //  No key: no key parameter. Nothing listening: ERR at once.
    herd_places_args_t keyless_args = {&options, "inproc://herd-places-test-2", NULL, NULL, log};
    places = zactor_new (herd_places_actor, &keyless_args);
    HERD_CHECK_INT (zsock_wait (places), 0);
    dealer = zsock_new_dealer (">inproc://herd-places-test-2");
    zsock_set_rcvtimeo (dealer, 5000);
    s_send_nearby (dealer, "k0", "+1", "+0", "1", "5");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    s_reply_free (&reply);
    target = s_server_target (server);
    HERD_CHECK_STR (target, "/maps/api/place/nearbysearch/json?location=1,0&radius=1000");
    zstr_free (&target);
    zactor_destroy (&places);
    zsock_destroy (&dealer);

    //  The concurrency limit: with one connection allowed, a fast request
    //  waits inside curl behind a slow one, then reuses its connection
    herd_places_options_t single = options;
    single.concurrency = 1;
    herd_places_args_t single_args = {&single, "inproc://herd-places-test-4", NULL, key, log};
    places = zactor_new (herd_places_actor, &single_args);
    HERD_CHECK_INT (zsock_wait (places), 0);
    dealer = zsock_new_dealer (">inproc://herd-places-test-4");
    zsock_set_rcvtimeo (dealer, 5000);
    before = s_server_accepted (server);
    s_send_nearby (dealer, "q1", "+5", "+0", "1", "5");
    s_send_nearby (dealer, "q2", "+1", "+0", "1", "5");
    requests += 2;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, "q1");
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    s_reply_free (&reply);
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, "q2");
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    s_reply_free (&reply);
    HERD_CHECK_INT (s_server_accepted (server), before + 1);
    zactor_destroy (&places);
    zsock_destroy (&dealer);

    int closed = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t length = sizeof (address);
    HERD_CHECK_INT (bind (closed, (struct sockaddr *) &address, sizeof (address)), 0);
    HERD_CHECK_INT (getsockname (closed, (struct sockaddr *) &address, &length), 0);
    char *closed_url = zsys_sprintf ("http://127.0.0.1:%d/json", ntohs (address.sin_port));
    herd_places_args_t closed_args = {&options, "inproc://herd-places-test-3", closed_url, key,
                                      log};
    places = zactor_new (herd_places_actor, &closed_args);
    HERD_CHECK_INT (zsock_wait (places), 0);
    dealer = zsock_new_dealer (">inproc://herd-places-test-3");
    zsock_set_rcvtimeo (dealer, 5000);
    s_send_nearby (dealer, "c1", "+1", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "c1", "UNKNOWN_ERROR", "herd: could not reach the Places API: ");
    zactor_destroy (&places);
    zsock_destroy (&dealer);
    close (closed);
    zstr_free (&closed_url);

    //  The log: one line a request, with the reqid in hex; never the key
    herd_log_destroy (&log);
    FILE *file = fopen (log_path, "r");
    HERD_CHECK (file);
    size_t capacity = (size_t) 1024 * 1024;
    char *text = (char *) zmalloc (capacity);
    size_t size = fread (text, 1, capacity - 1, file);
    text[size] = 0;
    fclose (file);
    if (verbose)
        printf ("%s", text);
    HERD_CHECK_INT (s_count_lines (text, " places req="), requests);
    HERD_CHECK (strstr (text, "s3cr") == NULL);
    HERD_CHECK (strstr (text, key_escaped) == NULL);
    HERD_CHECK_CONTAINS (text, " places req=7231 reply=OK status=OK results=2 http=200 curl=0 ms=");
    HERD_CHECK_CONTAINS (text, "&radius=10000&key=<redacted>");
    HERD_CHECK_CONTAINS (text, "reply=ERR status=UNKNOWN_ERROR results=0 http=500 curl=0");
    HERD_CHECK_CONTAINS (text, "reply=ERR status=REQUEST_DENIED results=0 http=403");
    HERD_CHECK_CONTAINS (text, "curl=28 ms=");
    HERD_CHECK_CONTAINS (text, "req=6c656674 reply=- status=CANCELLED");
    HERD_CHECK_CONTAINS (text, "stopped with 1 requests in flight, not answered");
    HERD_CHECK_CONTAINS (text, "cannot start: cannot bind nonsense://nowhere");
    free (text);
    unlink (log_path);
    rmdir (directory);
    zstr_free (&log_path);
    zstr_free (&url);
    s_server_destroy (&server);
    //  @end

    printf ("OK\n");
}
