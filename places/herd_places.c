//  herd_places.c - the places worker: Places API queries behind a ROUTER.
//
//  One thread runs a ROUTER socket and a libcurl multi handle in one loop:
//  curl_multi_poll waits on curl's sockets and on the ZeroMQ sockets' file
//  descriptors together, so a request is started the moment it arrives and
//  answered the moment its transfer ends, whatever else is in flight.
//
//  Requests (NEARBY) and fetches (HTTP queries) are apart: identical
//  requests in flight (same flavour, lat, lon, radius, bound) wait on one
//  fetch and are all answered when it ends; with options->cache_ttl_ms an
//  answer is kept that long (at most options->cache_max answers and
//  HERD_PLACES_CACHE_BYTES of bodies) and repeated requests are answered
//  from it. A fetch retries what is retryable (HTTP 5xx and 429, legacy
//  OVER_QUERY_LIMIT and UNKNOWN_ERROR, connection resets) up to
//  options->retries times with jittered exponential backoff; a retry waits
//  in the loop's own timer (no thread sleeps), and only starts if it can
//  end before the fetch's deadline, options->timeout_ms after it began.
//
//  At most options->concurrency connections are open; transfers beyond that
//  wait inside curl (curl counts a queued transfer's time). The log has a
//  line per attempt "fetch=N attempt=K/M ... -> what next" and exactly one
//  line per request "req=HEX reply=OK|ERR|- status=... results=N http=N
//  curl=N ms=N.N fetch=N attempts=N [shared|cache hit] url=... [error=...]",
//  with the key redacted from URLs and any text; Places API (New) gets the
//  key in a header only.

#include "herd_places.h"
#include "../common/herd_actor.h"
#include "../common/herd_hist.h"
#include "herd_google.h"
#include "herd_placesbody.h"
#include "herd_placescache.h"
#include "../common/herd_alive.h"
#include "../common/herd_decimal.h"
#include "../common/herd_msg.h"
#include "../common/herd_report.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <unistd.h>

#define HERD_PLACES_MAX_BODY    ((size_t) 8 * 1024 * 1024)  //  largest answer we take
#define HERD_PLACES_MAX_FIELD   64                  //  longest lat, lon, radius, bound
#define HERD_PLACES_MAX_WAIT    1000                //  longest poll, ms
#define HERD_PLACES_BACKOFF_MS  500                 //  first retry delay, before jitter
#define HERD_PLACES_BACKOFF_X   1.5                 //  each retry waits this much longer
#define HERD_PLACES_MIN_TRY_MS  100                 //  a retry needs this much time left
#define HERD_PLACES_CACHE_BYTES ((size_t) 64 * 1024 * 1024)    //  cached bodies at most
#define HERD_PLACES_USER_AGENT  "herd/0.1"
#define HERD_PLACES_REDACTED    "<redacted>"

//  One NEARBY request waiting for its fetch.
typedef struct s_waiter_t s_waiter_t;
struct s_waiter_t {
    zframe_t *routing_id;       //  of the gateway that asked
    zframe_t *reqid;            //  echoed unchanged
    char *reqid_hex;            //  for the log
    int64_t arrived;            //  monotonic microseconds
    bool shared;                //  joined a fetch already in flight
};

//  One Places query: its current HTTP attempt and every request waiting.
typedef struct s_fetch_t s_fetch_t;
struct s_fetch_t {
    void *handle;               //  in the actor's list of fetches
    unsigned long id;           //  for the log
    char *key;                  //  what identical requests share
    CURL *easy;                 //  the attempt in flight; NULL between attempts
    struct curl_slist *headers; //  of the attempt in flight
    char *url;                  //  the request URL (legacy: with the key)
    char *url_logged;           //  the URL with the key redacted
    char *post;                 //  JSON request body (new, or auto), or NULL
    bool is_new;                //  asks the Places API (New), else legacy
    int bound;
    int attempts;               //  attempts started
    int64_t started;            //  monotonic microseconds
    int64_t deadline;           //  started + timeout_ms
    int64_t attempt_started;
    int64_t retry_at;           //  when waiting to retry, else 0
    zlistx_t *waiters;          //  s_waiter_t, in arrival order (owned)
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
    bool is_new;                //  Places API (New), else legacy
    bool is_auto;               //  flavour auto: legacy until the key is refused
    const char *field_mask;     //  X-Goog-FieldMask (new)
    char *url;                  //  Nearby Search URL in use, without our query
    char *url_new;              //  auto, before the switch: the New URL
    char *url_env;              //  HERD_PLACES_URL, or NULL: a reload keeps it
    const char *key;            //  raw key
    char *key_escaped;          //  URL-escaped key; NULL if there is none
    zlistx_t *fetches;          //  s_fetch_t, in flight or waiting to retry,
                                //  newest first; s_self_forget takes them off
    zhashx_t *fetch_index;      //  key -> s_fetch_t *
    unsigned long fetch_ids;
    size_t retries_waiting;     //  fetches waiting to retry
    herd_placescache_t *cache;  //  answers kept for options->cache_ttl_ms
    uint64_t random;            //  xorshift state for the jitter
    uint64_t answered_ok;       //  counters for the monitor (STATS)
    uint64_t answered_err;
    uint64_t shared;
    uint64_t cache_hits;
    herd_hist_t latency;        //  answer latencies since the last STATS
    herd_hist_t latency_all;    //  the same since start, for metrics
    int64_t stats_since;        //  when the last STATS was taken, usec
    herd_report_t *report;      //  counters to the node's monitor, or NULL
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

//  Log one event of the places role, and trace it when verbose.
static void
s_self_log (s_self_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_self_log (s_self_t *self, const char *format, ...)
{
    char line[2048];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof (line), format, args); // NOLINT(clang-analyzer-valist.Uninitialized): a false positive of clang-analyzer 14
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
s_field (herd_msg_bytes_t frame)
{
    if (frame.size == 0 || frame.size > HERD_PLACES_MAX_FIELD || memchr (frame.data, 0, frame.size))
        return NULL;
    return strndup (frame.data, frame.size);
}

//  -------------------------------------------------------------------------
//  Requests and fetches

//  Destroy a waiting request; nulls the caller's pointer.
static void
s_waiter_destroy (s_waiter_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_waiter_t *self = *self_p;
        zframe_destroy (&self->routing_id);
        zframe_destroy (&self->reqid);
        free (self->reqid_hex);
        free (self);
        *self_p = NULL;
    }
}

//  The same, as the destructor of a fetch's list of waiters.
static void
s_waiter_free (void **item_p)
{
    s_waiter_destroy ((s_waiter_t **) item_p);
}

//  Forget the attempt in flight (its easy handle, headers and response).
static void
s_fetch_reset (s_fetch_t *self, CURLM *multi)
{
    if (self->easy) {
        curl_multi_remove_handle (multi, self->easy);
        curl_easy_cleanup (self->easy);
        self->easy = NULL;
    }
    curl_slist_free_all (self->headers);
    self->headers = NULL;
    free (self->body);
    self->body = NULL;
    self->size = self->capacity = 0;
    self->too_large = false;
    self->error[0] = 0;
}

//  Destroy a fetch, its attempt and its waiting requests; nulls the
//  caller's pointer.
static void
s_fetch_destroy (s_fetch_t **self_p, CURLM *multi)
{
    assert (self_p);
    if (*self_p) {
        s_fetch_t *self = *self_p;
        s_fetch_reset (self, multi);
        zlistx_destroy (&self->waiters);
        free (self->key);
        free (self->url);
        free (self->url_logged);
        free (self->post);
        free (self);
        *self_p = NULL;
    }
}

//  curl's write callback: append to the response, up to the cap.
static size_t
s_fetch_write (char *data, size_t size, size_t count, void *userp)
{
    s_fetch_t *self = (s_fetch_t *) userp;
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
s_self_log_answer (s_self_t *self, const s_waiter_t *waiter, const char *reply,
                   const char *status, int results, long http, int curl, const s_fetch_t *fetch,
                   const char *via, const char *url, const char *error);

//  Send ["RESULT", reqid, status, body] to the gateway that asked.
static void
s_self_reply (s_self_t *self, zframe_t *routing_id, zframe_t *reqid, const char *status,
              const char *body)
{
    herd_msg_t reply = {.id = HERD_MSG_ID_RESULT, .routing = routing_id,
                        .reqid = {zframe_data (reqid), zframe_size (reqid)},
                        .status = herd_msg_str (status), .json = herd_msg_str (body ? body : "")};
    if (herd_msg_send (&reply, self->router, 0) == -1)
        s_self_log (self, "cannot send a reply: %s", zmq_strerror (zmq_errno ()));
}

//  Take a fetch off the actor's list and index and destroy it. Safe while
//  zlistx_first/next walk the list: zlistx moves the cursor back off a
//  deleted item, so the walk goes on with the one after it.
static void
s_self_forget (s_self_t *self, s_fetch_t *fetch)
{
    zlistx_delete (self->fetches, fetch->handle);  //  a walk's cursor steps back
    if (fetch->retry_at)
        self->retries_waiting--;
    zhashx_delete (self->fetch_index, fetch->key);
    s_fetch_destroy (&fetch, self->multi);
}

//  Stop: log every request still waiting as cancelled, free everything.
static void
s_self_destroy (s_self_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_self_t *self = *self_p;
        size_t cancelled = 0;
        s_fetch_t *fetch;
        while (self->fetches && (fetch = (s_fetch_t *) zlistx_first (self->fetches))) {
            s_waiter_t *waiter = (s_waiter_t *) zlistx_first (fetch->waiters);
            for (; waiter; waiter = (s_waiter_t *) zlistx_next (fetch->waiters)) {
                s_self_log_answer (self, waiter, "-", "CANCELLED", 0, 0, 0, fetch, NULL,
                                   fetch->url_logged, "herd: places worker stopped");
                cancelled++;
            }
            s_self_forget (self, fetch);
        }
        if (cancelled)
            s_self_log (self, "stopped with %zu requests in flight, not answered", cancelled);
        zlistx_destroy (&self->fetches);
        zhashx_destroy (&self->fetch_index);
        herd_placescache_destroy (&self->cache);
        if (self->multi)
            curl_multi_cleanup (self->multi);
        zsock_destroy (&self->router);
        herd_report_destroy (&self->report);
        free (self->url);
        free (self->url_new);
        free (self->url_env);
        free (self->key_escaped);
        free (self);
        *self_p = NULL;
    }
}

//  Set up curl: the multi handle with the concurrency limit, the escaped
//  key. Logs why and returns -1 on failure, else 0.
static int
s_self_start_curl (s_self_t *self)
{
    pthread_once (&s_curl_once, s_curl_global_init);
    if (s_curl_init_rc != CURLE_OK) {
        s_self_log (self, "cannot start: curl_global_init: %s",
                    curl_easy_strerror (s_curl_init_rc));
        return -1;
    }
    self->multi = curl_multi_init ();
    if (!self->multi) {
        s_self_log (self, "cannot start: curl_multi_init failed");
        return -1;
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
            return -1;
        }
    }
    return 0;
}

static void
s_self_log_serving (s_self_t *self, const char *endpoint);

//  Set up: curl, the multi handle, the ROUTER. Logs why and returns NULL on
//  failure.
static s_self_t *
s_self_new (zsock_t *pipe, const herd_places_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    assert (self);
    self->pipe = pipe;
    self->log = args ? args->log : NULL;
    self->report = herd_report_new (args ? args->monitor : NULL, "places");
    self->fetches = zlistx_new ();
    self->fetch_index = zhashx_new ();
    self->cache = herd_placescache_new (HERD_PLACES_CACHE_BYTES);
    assert (self->fetches && self->fetch_index && self->cache);
    self->random = (uint64_t) zclock_usecs () ^ ((uint64_t) getpid () << 32)
                   ^ (uint64_t) (uintptr_t) self;
    if (!self->random)
        self->random = 88172645463325252ULL;
    if (!args || !args->options || !args->endpoint) {
        s_self_log (self, "cannot start: no options or no endpoint");
        s_self_destroy (&self);
        return NULL;
    }
    self->options = args->options;
    self->key = args->key;
    self->is_new = self->options->flavour && streq (self->options->flavour, "new");
    self->is_auto = self->options->flavour && streq (self->options->flavour, "auto");
    self->field_mask = herd_google_field_mask (self->options->enterprise_fields);
    const char *url = args->url ? args->url : args->options->url;
    if (!url || !*url) {
        s_self_log (self, "cannot start: no Places API URL");
        s_self_destroy (&self);
        return NULL;
    }
    self->url = strdup (url);
    assert (self->url);
    self->url_env = args->url ? strdup (args->url) : NULL;
    if (self->is_auto)
        self->url_new = herd_google_new_url (self->url);
    for (const char *scan = self->key; scan && *scan; scan++)
        if ((unsigned char) *scan < 0x20 || *scan == 0x7F) {
            s_self_log (self, "cannot start: the API key holds a control character");
            s_self_destroy (&self);
            return NULL;
        }
    if (s_self_start_curl (self)) {
        s_self_destroy (&self);
        return NULL;
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
    s_self_log_serving (self, args->endpoint);
    return self;
}

//  Log what the actor serves and how, the key redacted.
static void
s_self_log_serving (s_self_t *self, const char *endpoint)
{
    char url_logged[512], url_new_logged[512] = "";
    s_self_sanitise (self, self->url, url_logged, sizeof (url_logged));
    if (self->url_new)
        s_self_sanitise (self, self->url_new, url_new_logged, sizeof (url_new_logged));
    s_self_log (self, "serving %s flavour=%s url=%s%s%s key=%s%s timeout_ms=%d "
                      "connect_timeout_ms=%d concurrency=%d retries=%d cache_ttl_ms=%d "
                      "cache_max=%d",
                endpoint, self->is_auto ? "auto" : self->is_new ? "new" : "legacy",
                url_logged, self->url_new ? " url_new=" : "", url_new_logged,
                self->key_escaped ? "set" : "none",
                !self->is_new && !self->is_auto    ? ""
                : self->options->enterprise_fields ? " fields=enterprise"
                                                   : " fields=pro",
                self->options->timeout_ms, self->options->connect_timeout_ms,
                self->options->concurrency, self->options->retries,
                self->options->cache_ttl_ms, self->options->cache_max);
}

//  Log the one line of a request: what was answered, and why. via is NULL
//  for the request that started its fetch, else "shared" or "cache hit".
static void
s_self_log_answer (s_self_t *self, const s_waiter_t *waiter, const char *reply,
                   const char *status, int results, long http, int curl, const s_fetch_t *fetch,
                   const char *via, const char *url, const char *error)
{
    char status_text[64];
    char error_text[512] = "";
    char fetch_text[64] = "";
    s_self_sanitise (self, status ? status : "-", status_text, sizeof (status_text));
    if (error && *error)
        s_self_sanitise (self, error, error_text, sizeof (error_text));
    if (fetch)
        snprintf (fetch_text, sizeof (fetch_text), " fetch=%lu attempts=%d", fetch->id,
                  fetch->attempts);
    double ms = waiter ? (double) (zclock_usecs () - waiter->arrived) / 1000.0 : 0.0;
    if (streq (reply, HERD_MSG_OK))
        self->answered_ok++;
    else
        self->answered_err++;
    if (via && strstr (via, "shared"))
        self->shared++;
    if (via && strstr (via, "cache"))
        self->cache_hits++;
    herd_hist_add (&self->latency, (uint64_t) (ms * 1000.0));
    s_self_log (self,
                "req=%s reply=%s status=%s results=%d http=%ld curl=%d ms=%.1f%s%s%s url=%s%s%s%s",
                waiter ? waiter->reqid_hex : "-", reply, status_text, results, http, curl, ms,
                fetch_text, via ? " " : "", via ? via : "", url ? url : "-",
                *error_text ? " error=\"" : "", error_text, *error_text ? "\"" : "");
}

//  Answer a request the actor refuses before any HTTP: ERR INVALID_REQUEST.
static void
s_self_refuse (s_self_t *self, zframe_t *routing_id, zframe_t *reqid, const char *reason)
{
    char message[256];
    snprintf (message, sizeof (message), "herd: invalid NEARBY request: %s", reason);
    s_waiter_t waiter = {NULL, NULL, s_hex (reqid), zclock_usecs (), false};
    s_self_log_answer (self, &waiter, HERD_MSG_ERR, "INVALID_REQUEST", 0, 0, 0, NULL, NULL, NULL,
                       message);
    if (reqid) {
        char *body = herd_placesbody_error ("INVALID_REQUEST", message);
        s_self_reply (self, routing_id, reqid, HERD_MSG_ERR, body);
        free (body);
    }
    free (waiter.reqid_hex);
}

//  Answer every request waiting on a fetch with the outcome, log each, keep
//  a good answer in the cache, and forget the fetch.
static void
s_self_answer (s_self_t *self, s_fetch_t *fetch, const herd_google_outcome_t *outcome, long http,
               int curl)
{
    s_waiter_t *waiter = (s_waiter_t *) zlistx_first (fetch->waiters);
    for (; waiter; waiter = (s_waiter_t *) zlistx_next (fetch->waiters)) {
        s_self_reply (self, waiter->routing_id, waiter->reqid,
                      outcome->ok ? HERD_MSG_OK : HERD_MSG_ERR, outcome->body);
        s_self_log_answer (self, waiter, outcome->ok ? HERD_MSG_OK : HERD_MSG_ERR,
                           outcome->status, outcome->results, http, curl, fetch,
                           waiter->shared ? "shared" : NULL, fetch->url_logged,
                           outcome->ok ? NULL : outcome->error);
    }
    if (outcome->ok && outcome->body && outcome->status)
        herd_placescache_put (self->cache, fetch->key, outcome->body, outcome->status,
                              outcome->results, self->options->cache_ttl_ms,
                              self->options->cache_max, zclock_usecs ());
    s_self_forget (self, fetch);
}

//  Start the next attempt of a fetch: a new easy handle given to the multi
//  handle, with whatever is left of the fetch's deadline as its time-out.
//  0, or -1 if curl refused it (outcome then says why).
static int
s_self_attempt (s_self_t *self, s_fetch_t *fetch, herd_google_outcome_t *outcome)
{
    int64_t now = zclock_usecs ();
    long left_ms = (long) ((fetch->deadline - now + 999) / 1000);
    if (left_ms < 1)
        left_ms = 1;
    long connect_ms = self->options->connect_timeout_ms;
    fetch->attempts++;
    fetch->attempt_started = now;
    fetch->retry_at = 0;

    CURLMcode code = CURLM_OUT_OF_MEMORY;
    fetch->easy = curl_easy_init ();
    if (fetch->easy) {
        CURL *easy = fetch->easy;
        curl_easy_setopt (easy, CURLOPT_URL, fetch->url);
        curl_easy_setopt (easy, CURLOPT_PRIVATE, (void *) fetch);
        curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_fetch_write);
        curl_easy_setopt (easy, CURLOPT_WRITEDATA, (void *) fetch);
        curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, fetch->error);
        curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, left_ms);
        curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms < left_ms ? connect_ms
                                                                                : left_ms);
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
        if (fetch->is_new) {
            //  The key goes in a header, never in the URL
            char *mask = zsys_sprintf ("X-Goog-FieldMask: %s", self->field_mask);
            fetch->headers = curl_slist_append (NULL, "Content-Type: application/json");
            fetch->headers = curl_slist_append (fetch->headers, "Expect:");
            fetch->headers = curl_slist_append (fetch->headers, mask);
            zstr_free (&mask);
            if (self->key && *self->key) {
                char *header = zsys_sprintf ("X-Goog-Api-Key: %s", self->key);
                fetch->headers = curl_slist_append (fetch->headers, header);
                zstr_free (&header);
            }
            curl_easy_setopt (easy, CURLOPT_HTTPHEADER, fetch->headers);
            curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE, (long) strlen (fetch->post));
            curl_easy_setopt (easy, CURLOPT_POSTFIELDS, fetch->post);
        }
        code = curl_multi_add_handle (self->multi, easy);
    }
    if (code == CURLM_OK)
        return 0;
    char message[256];
    snprintf (message, sizeof (message), "herd: could not start the Places request: %s",
              curl_multi_strerror (code));
    if (fetch->easy) {
        curl_easy_cleanup (fetch->easy);
        fetch->easy = NULL;
    }
    herd_google_fail (outcome, message, false);
    return -1;
}

//  Start the next attempt of a fetch; if curl refuses it, answer every
//  request waiting on the fetch with why, at once.
static void
s_self_attempt_or_answer (s_self_t *self, s_fetch_t *fetch)
{
    herd_google_outcome_t outcome = {0};
    if (s_self_attempt (self, fetch, &outcome)) {
        s_self_log (self, "fetch=%lu attempt=%d/%d error=\"%s\" -> answered", fetch->id,
                    fetch->attempts, self->options->retries + 1, outcome.error);
        s_self_answer (self, fetch, &outcome, 0, 0);
    }
    herd_google_outcome_free (&outcome);
}

//  Point a fetch at the Places API (New): the URL in use, its body already
//  in fetch->post.
static void
s_self_fetch_new (s_self_t *self, s_fetch_t *fetch)
{
    free (fetch->url);
    free (fetch->url_logged);
    fetch->is_new = true;
    fetch->url = strdup (self->url);
    fetch->url_logged = (char *) malloc (strlen (self->url) + 1);
    assert (fetch->url && fetch->url_logged && fetch->post);
    s_self_sanitise (self, self->url, fetch->url_logged, strlen (self->url) + 1);
}

static void
s_self_fetch_start (s_self_t *self, s_waiter_t *waiter, char *key, const char *lat,
                    const char *lon, const char *lat_json, const char *lon_json,
                    const char *metres, int bound);

//  Take a valid request: answer it from the cache, or add it to the
//  identical fetch in flight, or start a fetch for it. Takes the frames.
static void
s_self_request (s_self_t *self, zframe_t **routing_id_p, zframe_t **reqid_p, const char *lat,
                const char *lon, double latitude, double longitude, double radius_km,
                int bound)
{
    s_waiter_t *waiter = (s_waiter_t *) zmalloc (sizeof (s_waiter_t));
    assert (waiter);
    waiter->routing_id = *routing_id_p;
    waiter->reqid = *reqid_p;
    *routing_id_p = NULL;
    *reqid_p = NULL;
    waiter->reqid_hex = s_hex (waiter->reqid);
    waiter->arrived = zclock_usecs ();

    char metres[64], lat_json[64], lon_json[64];
    herd_google_format_metres (radius_km, metres, sizeof (metres));
    herd_google_format_degrees (latitude, lat_json, sizeof (lat_json));
    herd_google_format_degrees (longitude, lon_json, sizeof (lon_json));
    //  Under auto, fetches before and after the switch share answers
    char *key = zsys_sprintf ("%s|%s|%s|%s|%d",
                              self->is_auto ? "auto" : self->is_new ? "new" : "legacy",
                              lat_json, lon_json, metres, bound);
    assert (key);

    //  A fresh cached answer
    herd_placescache_answer_t cached;
    if (herd_placescache_get (self->cache, key, waiter->arrived, &cached)) {
        s_self_reply (self, waiter->routing_id, waiter->reqid, HERD_MSG_OK, cached.body);
        char via[64];
        snprintf (via, sizeof (via), "cache hit age_ms=%.1f",
                  (double) (waiter->arrived - cached.stored) / 1000.0);
        s_self_log_answer (self, waiter, HERD_MSG_OK, cached.status, cached.results, 0, 0, NULL,
                           via, NULL, NULL);
        s_waiter_destroy (&waiter);
        zstr_free (&key);
        return;
    }
    //  The same query in flight: wait for its answer
    s_fetch_t *fetch = (s_fetch_t *) zhashx_lookup (self->fetch_index, key);
    if (fetch) {
        waiter->shared = true;
        zlistx_add_end (fetch->waiters, waiter);
        zstr_free (&key);
        return;
    }

    s_self_fetch_start (self, waiter, key, lat, lon, lat_json, lon_json, metres, bound);
}

//  Start a fetch for a request no fetch in flight can answer: the Nearby
//  Search URL (legacy) or the New body, then its first attempt. Takes the
//  waiter and the key.
static void
s_self_fetch_start (s_self_t *self, s_waiter_t *waiter, char *key, const char *lat,
                    const char *lon, const char *lat_json, const char *lon_json,
                    const char *metres, int bound)
{
    s_fetch_t *fetch = (s_fetch_t *) zmalloc (sizeof (s_fetch_t));
    assert (fetch);
    fetch->id = ++self->fetch_ids;
    fetch->key = key;
    fetch->bound = bound;
    fetch->waiters = zlistx_new ();
    assert (fetch->waiters);
    zlistx_set_destructor (fetch->waiters, s_waiter_free);
    zlistx_add_end (fetch->waiters, waiter);
    fetch->started = waiter->arrived;
    fetch->deadline = fetch->started + (int64_t) self->options->timeout_ms * 1000;
    fetch->is_new = self->is_new;
    if (self->is_new || self->is_auto)
        //  Auto keeps the New body at hand for a switch mid-fetch
        fetch->post = herd_google_new_body (bound, lat_json, lon_json, metres);
    if (self->is_new)
        s_self_fetch_new (self, fetch);
    else {
        fetch->url = herd_google_legacy_url (self->url, lat, lon, metres, self->key_escaped);
        char *url_logged = herd_google_legacy_url (self->url, lat, lon, metres,
                                                   self->key_escaped ? HERD_PLACES_REDACTED
                                                                     : NULL);
        assert (fetch->url && url_logged);
        fetch->url_logged = (char *) malloc (strlen (url_logged) + 1);
        assert (fetch->url_logged);
        s_self_sanitise (self, url_logged, fetch->url_logged, strlen (url_logged) + 1);
        free (url_logged);
    }
    fetch->handle = zlistx_add_start (self->fetches, fetch);
    zhashx_insert (self->fetch_index, fetch->key, fetch);

    s_self_attempt_or_answer (self, fetch);
}

//  Once a second: our counters to the node's monitor, latencies since
//  last time.
static void
s_self_send_stats (s_self_t *self)
{
    int64_t now = zclock_usecs ();
    if (!self->report || now - self->stats_since < 1000000)
        return;
    double seconds = self->stats_since ? (double) (now - self->stats_since) / 1e6 : 0;
    cJSON *stats = cJSON_CreateObject ();
    cJSON_AddNumberToObject (stats, "answered_ok_total", (double) self->answered_ok);
    cJSON_AddNumberToObject (stats, "answered_err_total", (double) self->answered_err);
    cJSON_AddNumberToObject (stats, "shared_total", (double) self->shared);
    cJSON_AddNumberToObject (stats, "cache_hits_total", (double) self->cache_hits);
    cJSON_AddNumberToObject (stats, "in_flight", (double) zhashx_size (self->fetch_index));
    cJSON_AddNumberToObject (stats, "requests_per_s",
                             seconds > 0 ? (double) self->latency.total / seconds : 0);
    cJSON_AddNumberToObject (stats, "latency_p50_ms", herd_hist_percentile_ms (&self->latency, 50));
    cJSON_AddNumberToObject (stats, "latency_p99_ms", herd_hist_percentile_ms (&self->latency, 99));
    herd_hist_merge (&self->latency_all, &self->latency);
    cJSON_AddItemToObject (stats, "latency_seconds", herd_hist_json (&self->latency_all));
    herd_hist_reset (&self->latency);
    self->stats_since = now;
    herd_report_stats (self->report, stats);
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
    herd_msg_t in;
    char reason[160] = "";
    int rc = herd_msg_decode (&in, msg, HERD_MSG_TO_PLACES, NULL, reason, sizeof (reason));
    //  Routing id and reqid are kept by a request; the fields stay in msg
    size_t frames = zmsg_size (msg) ? zmsg_size (msg) - 1 : 0;
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *command = zmsg_pop (msg);
    zframe_t *reqid = zmsg_pop (msg);
    char *lat = NULL, *lon = NULL, *radius = NULL, *bound = NULL;
    *reason = 0;
    double latitude = 0, longitude = 0, radius_km = 0, bound_value = 0;
    //  What herd_decimal_parse_double lets through: digits on one side of a
    //  '.' suffice; coordinates may have a sign, the radius an exponent
    const int S_PLAIN = HERD_DECIMAL_FRACTION | HERD_DECIMAL_LOOSE;
    const int S_COORDINATE = S_PLAIN | HERD_DECIMAL_SIGN;
    const int S_RADIUS = S_PLAIN | HERD_DECIMAL_EXPONENT;

    if (in.id != HERD_MSG_ID_NEARBY)
        snprintf (reason, sizeof (reason), "not a NEARBY command");
    else
    if (rc == -1)
        snprintf (reason, sizeof (reason),
                  "expected NEARBY reqid lat lon radius-km bound, got %zu frames", frames);
    else {
        lat = s_field (in.lat);
        lon = s_field (in.lon);
        radius = s_field (in.radius);
        bound = s_field (in.bound);
        if (!lat || herd_decimal_parse_double (lat, S_COORDINATE, &latitude) || fabs (latitude) > 90)
            snprintf (reason, sizeof (reason), "latitude is not a number in [-90, 90]");
        else
        if (!lon || herd_decimal_parse_double (lon, S_COORDINATE, &longitude) || fabs (longitude) > 180)
            snprintf (reason, sizeof (reason), "longitude is not a number in [-180, 180]");
        else
        if (!radius || herd_decimal_parse_double (radius, S_RADIUS, &radius_km) || radius_km <= 0
            || radius_km > 50)
            snprintf (reason, sizeof (reason), "radius is not a number of km in (0, 50]");
        else
        if (!bound || strlen (bound) > 2 || herd_decimal_parse_double (bound, S_PLAIN, &bound_value)
            || strchr (bound, '.') || bound_value < 1 || bound_value > 20)
            snprintf (reason, sizeof (reason), "bound is not an integer in [1, 20]");
    }
    if (*reason)
        s_self_refuse (self, routing_id, reqid, reason);
    else
        s_self_request (self, &routing_id, &reqid, lat, lon, latitude, longitude, radius_km,
                        (int) bound_value);

    free (lat);
    free (lon);
    free (radius);
    free (bound);
    zframe_destroy (&routing_id);
    zframe_destroy (&command);
    zframe_destroy (&reqid);
    zmsg_destroy (&msg);
}

//  True for curl results that mean the connection broke under a request
//  (reset, closed early, nothing sent back): worth another try.
static bool
s_is_reset (CURLcode result)
{
    return result == CURLE_SEND_ERROR || result == CURLE_RECV_ERROR
           || result == CURLE_GOT_NOTHING || result == CURLE_PARTIAL_FILE
           || result == CURLE_HTTP2 || result == CURLE_HTTP2_STREAM;
}

//  What an ended attempt came to: the answer to give, and whether a retry
//  may give a better one. The transfer is judged here; what Google
//  answered, by herd_google_judge.
static void
s_self_judge (s_self_t *self, s_fetch_t *fetch, CURLcode result, long http,
              herd_google_outcome_t *outcome)
{
    const herd_places_options_t *options = self->options;
    double attempt_ms = (double) (zclock_usecs () - fetch->attempt_started) / 1000.0;
    char message[CURL_ERROR_SIZE + 128] = "";
    const char *curl_error = *fetch->error ? fetch->error : curl_easy_strerror (result);
    outcome->retry_delay_ms = -1;

    if (fetch->too_large)
        snprintf (message, sizeof (message), "herd: Places API sent more than %zu MiB",
                  HERD_PLACES_MAX_BODY / ((size_t) 1024 * 1024));
    else
    if (result == CURLE_OPERATION_TIMEDOUT) {
        //  Which deadline fired: the connect one if it was the shorter and
        //  the attempt ended closer to it
        double budget_ms = (double) (fetch->deadline - fetch->attempt_started) / 1000.0;
        if (options->connect_timeout_ms < budget_ms
            && attempt_ms < (options->connect_timeout_ms + budget_ms) / 2.0)
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
    if (*message)
        herd_google_fail (outcome, message, result != CURLE_OK && s_is_reset (result));
    else
        herd_google_judge (fetch->is_new, http, fetch->body, fetch->size, fetch->bound, outcome);
}

//  A random number in [0, 1) for the jitter (xorshift64*).
static double
s_self_random (s_self_t *self)
{
    self->random ^= self->random >> 12;
    self->random ^= self->random << 25;
    self->random ^= self->random >> 27;
    return (double) ((self->random * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

//  Flavour auto, and the legacy API refused the key: from now on use the
//  Places API (New) (said once in the log), and ask it this fetch's query at
//  once, inside the same deadline, so its requests get a real answer.
static void
s_self_switch (s_self_t *self, s_fetch_t *fetch, const herd_google_outcome_t *refusal, long http,
               CURLcode result, double attempt_ms)
{
    char error_text[512] = "";
    s_self_sanitise (self, refusal->error ? refusal->error : "-", error_text,
                     sizeof (error_text));
    s_self_log (self,
                "fetch=%lu attempt=%d/%d waiting=%zu status=%s http=%ld curl=%d ms=%.1f url=%s "
                "error=\"%s\" -> ask the Places API (New)",
                fetch->id, fetch->attempts, self->options->retries + 1, zlistx_size (fetch->waiters),
                refusal->status ? refusal->status : "-", http, (int) result, attempt_ms,
                fetch->url_logged, error_text);
    if (!self->is_new) {
        free (self->url);
        self->url = self->url_new;
        self->url_new = NULL;
        self->is_new = true;
        char url_logged[512];
        s_self_sanitise (self, self->url, url_logged, sizeof (url_logged));
        s_self_log (self, "legacy Places API refused for this key: switching to Places API "
                          "(New) url=%s",
                    url_logged);
    }
    s_fetch_reset (fetch, self->multi);
    s_self_fetch_new (self, fetch);
    fetch->attempts = 0;            //  the New API gets its own retries
    s_self_attempt_or_answer (self, fetch);
}

//  An attempt ended: retry it later if that is allowed and fits before the
//  deadline, else answer every request waiting on the fetch.
static void
s_self_finish (s_self_t *self, s_fetch_t *fetch, CURLcode result)
{
    long http = 0;
    curl_easy_getinfo (fetch->easy, CURLINFO_RESPONSE_CODE, &http);
    double attempt_ms = (double) (zclock_usecs () - fetch->attempt_started) / 1000.0;
    herd_google_outcome_t outcome = {0};
    s_self_judge (self, fetch, result, http, &outcome);
    if (outcome.legacy_refused && self->is_auto && !fetch->is_new) {
        s_self_switch (self, fetch, &outcome, http, result, attempt_ms);
        herd_google_outcome_free (&outcome);
        return;
    }

    //  Backoff before retry n: BACKOFF_MS x BACKOFF_X^(n-1), jittered by
    //  x[0.5, 1.5), or Google's RetryInfo delay if longer
    int tries = self->options->retries + 1;
    char next[160] = "answered";
    bool retry = false;
    if (!outcome.retryable)
        snprintf (next, sizeof (next), "answered (%s)",
                  outcome.ok ? "done" : "not retryable");
    else
    if (fetch->attempts >= tries)
        snprintf (next, sizeof (next), "answered (no retries left)");
    else {
        double delay = HERD_PLACES_BACKOFF_MS * (0.5 + s_self_random (self));
        for (int n = 1; n < fetch->attempts; n++)
            delay *= HERD_PLACES_BACKOFF_X;
        if (outcome.retry_delay_ms > delay)
            delay = (double) outcome.retry_delay_ms;
        int64_t now = zclock_usecs ();
        int64_t retry_at = now + (int64_t) (delay * 1000.0);
        if (retry_at + HERD_PLACES_MIN_TRY_MS * 1000 > fetch->deadline)
            snprintf (next, sizeof (next),
                      "answered (a retry in %.0f ms would not end before the deadline, "
                      "%.0f ms away)",
                      delay, (double) (fetch->deadline - now) / 1000.0);
        else {
            snprintf (next, sizeof (next), "retry in %.0f ms", delay);
            fetch->retry_at = retry_at;
            self->retries_waiting++;
            retry = true;
        }
    }
    char status_text[64], error_text[512] = "";
    s_self_sanitise (self, outcome.status ? outcome.status : "-", status_text,
                     sizeof (status_text));
    if (outcome.error && !outcome.ok)
        s_self_sanitise (self, outcome.error, error_text, sizeof (error_text));
    s_self_log (self,
                "fetch=%lu attempt=%d/%d waiting=%zu status=%s http=%ld curl=%d ms=%.1f url=%s%s%s%s "
                "-> %s",
                fetch->id, fetch->attempts, tries, zlistx_size (fetch->waiters), status_text, http,
                (int) result, attempt_ms, fetch->url_logged, *error_text ? " error=\"" : "",
                error_text, *error_text ? "\"" : "", next);
    s_fetch_reset (fetch, self->multi);
    if (!retry)
        s_self_answer (self, fetch, &outcome, http, (int) result);
    herd_google_outcome_free (&outcome);
}

//  Start the retries that are due; returns ms until the next one, or -1.
static long
s_self_handle_retries (s_self_t *self)
{
    if (self->retries_waiting == 0)
        return -1;
    int64_t now = zclock_usecs ();
    int64_t next = 0;
    //  A fetch answered here (curl refused its attempt) leaves the list
    //  under the cursor: zlistx_next goes on from the one before it
    s_fetch_t *fetch = (s_fetch_t *) zlistx_first (self->fetches);
    for (; fetch; fetch = (s_fetch_t *) zlistx_next (self->fetches)) {
        if (fetch->retry_at && fetch->retry_at <= now) {
            self->retries_waiting--;
            s_self_attempt_or_answer (self, fetch);
        }
        else
        if (fetch->retry_at && (next == 0 || fetch->retry_at < next))
            next = fetch->retry_at;
    }
    return next ? (long) ((next - now + 999) / 1000) : -1;
}

//  Let curl move every transfer along, and judge those that ended.
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
        char *fetch = NULL;
        curl_easy_getinfo (message->easy_handle, CURLINFO_PRIVATE, &fetch);
        if (fetch)
            s_self_finish (self, (s_fetch_t *) fetch, result);
    }
}

//  Take the options of a reloaded config (RELOAD, herd_msg.h): timeouts,
//  retries, cache and fields apply to requests from now on (and the cache's
//  answers keep the time they were given); concurrency to the connections
//  opened from now on. A new flavour or url starts over: auto is legacy
//  again until the key is refused. HERD_PLACES_URL, when set, still wins.
static void
s_self_reload (s_self_t *self, const herd_places_options_t *options)
{
    const herd_places_options_t *old = self->options;
    self->options = options;
    self->field_mask = herd_google_field_mask (options->enterprise_fields);
    if (options->concurrency > 0) {
        long concurrency = options->concurrency;
        curl_multi_setopt (self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, concurrency);
        curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, concurrency);
    }
    bool url_changed = !self->url_env && !streq (old->url, options->url);
    if (!url_changed && streq (old->flavour, options->flavour))
        return;
    self->is_new = streq (options->flavour, "new");
    self->is_auto = streq (options->flavour, "auto");
    free (self->url);
    self->url = strdup (self->url_env ? self->url_env : options->url);
    assert (self->url);
    free (self->url_new);
    self->url_new = self->is_auto ? herd_google_new_url (self->url) : NULL;
}

//  The actor pipe's commands (herd_actor).
static void
s_pipe_verbose (void *self)
{
    ((s_self_t *) self)->verbose = true;
}

static void
s_pipe_reload (void *self, const herd_config_t *config)
{
    s_self_reload ((s_self_t *) self, &config->places);
}

static void
s_pipe_unknown (void *self, const char *command)
{
    (void) command;
    s_self_log ((s_self_t *) self, "unknown pipe command ignored");
}

//  Handle a command on the actor pipe.
static void
s_self_handle_pipe (s_self_t *self)
{
    static const herd_actor_commands_t commands = {s_pipe_verbose, s_pipe_reload, s_pipe_unknown};
    if (herd_actor_handle_pipe (self->pipe, &commands, self) == -1)
        self->terminated = true;
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
    pthread_setname_np (pthread_self (), "herd-places");    //  for top -H, perf, gdb
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (const herd_places_args_t *) args);
    if (!herd_actor_ready (pipe, self != NULL) || !self)
        return;                             //  set-up failed (logged)
    while (!self->terminated) {
        herd_alive_beat (HERD_ALIVE_PLACES, zclock_usecs () / 1000);     //  this loop turns
        while (!self->terminated && s_readable (self->pipe))
            s_self_handle_pipe (self);
        if (self->terminated)
            break;
        //  Take at most a batch, so a flood cannot starve the transfers
        for (int batch = 0; batch < 1000 && s_readable (self->router); batch++)
            s_self_handle_router (self);
        s_self_handle_curl (self);
        long retry_in = s_self_handle_retries (self);
        s_self_send_stats (self);
        if (s_readable (self->pipe) || s_readable (self->router))
            continue;
        //  Sleep until curl's next timer, the next retry, or a message
        long timeout = -1;
        curl_multi_timeout (self->multi, &timeout);
        if (retry_in >= 0 && (timeout < 0 || retry_in < timeout))
            timeout = retry_in;
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
