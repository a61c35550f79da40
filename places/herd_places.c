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
#include "../common/herd_hist.h"
#include "herd_placesbody.h"
#include "../common/herd_alive.h"
#include "../common/herd_check.h"
#include "../common/herd_decimal.h"
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

#define HERD_PLACES_MAX_BODY    ((size_t) 8 * 1024 * 1024)  //  largest answer we take
#define HERD_PLACES_MAX_FIELD   64                  //  longest lat, lon, radius, bound
#define HERD_PLACES_MAX_WAIT    1000                //  longest poll, ms
#define HERD_PLACES_BACKOFF_MS  500                 //  first retry delay, before jitter
#define HERD_PLACES_BACKOFF_X   1.5                 //  each retry waits this much longer
#define HERD_PLACES_MIN_TRY_MS  100                 //  a retry needs this much time left
#define HERD_PLACES_CACHE_BYTES ((size_t) 64 * 1024 * 1024)    //  cached bodies at most
#define HERD_PLACES_USER_AGENT  "herd/0.1"
#define HERD_PLACES_REDACTED    "<redacted>"
#define HERD_PLACES_LEGACY_HOST "maps.googleapis.com"
#define HERD_PLACES_LEGACY_PATH "/maps/api/place/nearbysearch/json"
#define HERD_PLACES_NEW_HOST    "places.googleapis.com"
#define HERD_PLACES_NEW_PATH    "/v1/places:searchNearby"

//  One NEARBY request waiting for its fetch.
typedef struct s_waiter_t s_waiter_t;
struct s_waiter_t {
    s_waiter_t *next;
    zframe_t *routing_id;       //  of the gateway that asked
    zframe_t *reqid;            //  echoed unchanged
    char *reqid_hex;            //  for the log
    int64_t arrived;            //  monotonic microseconds
    bool shared;                //  joined a fetch already in flight
};

//  One Places query: its current HTTP attempt and every request waiting.
typedef struct s_fetch_t s_fetch_t;
struct s_fetch_t {
    s_fetch_t *prev, *next;     //  the actor's list of fetches
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
    s_waiter_t *waiters;        //  in arrival order
    s_waiter_t *last_waiter;
    size_t waiter_count;
    char *body;                 //  the response so far
    size_t size, capacity;
    bool too_large;             //  the response passed HERD_PLACES_MAX_BODY
    char error[CURL_ERROR_SIZE];
};

//  One cached answer.
typedef struct s_entry_t s_entry_t;
struct s_entry_t {
    s_entry_t *prev, *next;     //  oldest first, which is also first to expire
    char *key;
    char *body;                 //  the shaped legacy body
    char *status;               //  OK or ZERO_RESULTS
    int results;
    int64_t stored;             //  monotonic microseconds
    int64_t expires;
};

//  What one attempt came to.
typedef struct {
    bool ok;                    //  answer RESULT OK
    char *body;                 //  legacy-shaped body to answer with
    char *status;               //  legacy status
    int results;
    char *error;                //  for the log: our message or Google's
    bool retryable;
    long retry_delay_ms;        //  Google's RetryInfo, or -1
    bool legacy_refused;        //  the legacy API is not enabled for the key
} s_outcome_t;

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
    s_fetch_t *fetches;         //  in flight or waiting to retry
    zhashx_t *fetch_index;      //  key -> s_fetch_t *
    unsigned long fetch_ids;
    size_t retries_waiting;     //  fetches waiting to retry
    zhashx_t *cache;            //  key -> s_entry_t *
    s_entry_t *oldest, *newest;
    size_t cache_bytes;
    uint64_t random;            //  xorshift state for the jitter
    uint64_t answered_ok;       //  counters for the monitor (STATS)
    uint64_t answered_err;
    uint64_t shared;
    uint64_t cache_hits;
    herd_hist_t latency;        //  answer latencies since the last STATS
    herd_hist_t latency_all;    //  the same since start, for metrics
    int64_t stats_since;        //  when the last STATS was taken, usec
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
s_field (zframe_t *frame)
{
    if (!frame || zframe_size (frame) == 0 || zframe_size (frame) > HERD_PLACES_MAX_FIELD
        || memchr (zframe_data (frame), 0, zframe_size (frame)))
        return NULL;
    return zframe_strdup (frame);
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

//  Degrees as a JSON number: the shortest text that reads back the same
//  ("34.06893" for "+34.068930").
static void
s_format_degrees (double degrees, char *out, size_t size)
{
    if (degrees == 0) {
        snprintf (out, size, "0");
        return;
    }
    if (degrees == (double) (long) degrees) {
        snprintf (out, size, "%.0f", degrees);
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf (out, size, "%.*g", precision, degrees);
        if (strtod (out, NULL) == degrees)
            return;
    }
}

//  -------------------------------------------------------------------------
//  Requests, fetches and cached answers

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
        while (self->waiters) {
            s_waiter_t *waiter = self->waiters;
            self->waiters = waiter->next;
            s_waiter_destroy (&waiter);
        }
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

//  Destroy a cached answer; nulls the caller's pointer.
static void
s_entry_destroy (s_entry_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_entry_t *self = *self_p;
        free (self->key);
        free (self->body);
        free (self->status);
        free (self);
        *self_p = NULL;
    }
}

//  Free what an outcome holds and clear it.
static void
s_outcome_free (s_outcome_t *self)
{
    free (self->body);
    free (self->status);
    free (self->error);
    memset (self, 0, sizeof (*self));
}

//  -------------------------------------------------------------------------
//  The actor

static void
s_self_log_answer (s_self_t *self, const s_waiter_t *waiter, const char *reply,
                   const char *status, int results, long http, int curl, const s_fetch_t *fetch,
                   const char *via, const char *url, const char *error);

//  Remove a cached answer.
static void
s_self_cache_remove (s_self_t *self, s_entry_t *entry)
{
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        self->oldest = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        self->newest = entry->prev;
    self->cache_bytes -= strlen (entry->body);
    zhashx_delete (self->cache, entry->key);
    s_entry_destroy (&entry);
}

//  Keep an answer for options->cache_ttl_ms, making room first: expired
//  answers go, then the oldest while the cache is full.
static void
s_self_cache_store (s_self_t *self, const char *key, const char *body, const char *status,
                    int results)
{
    int64_t now = s_now_usec ();
    size_t bytes = strlen (body);
    if (self->options->cache_ttl_ms <= 0 || bytes > HERD_PLACES_CACHE_BYTES)
        return;
    s_entry_t *old = (s_entry_t *) zhashx_lookup (self->cache, key);
    if (old)
        s_self_cache_remove (self, old);
    while (self->oldest
           && (self->oldest->expires <= now
               || zhashx_size (self->cache) >= (size_t) self->options->cache_max
               || self->cache_bytes + bytes > HERD_PLACES_CACHE_BYTES))
        s_self_cache_remove (self, self->oldest);
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    assert (entry);
    entry->key = strdup (key);
    entry->body = strdup (body);
    entry->status = strdup (status);
    assert (entry->key && entry->body && entry->status);
    entry->results = results;
    entry->stored = now;
    entry->expires = now + (int64_t) self->options->cache_ttl_ms * 1000;
    entry->prev = self->newest;
    if (self->newest)
        self->newest->next = entry;
    else
        self->oldest = entry;
    self->newest = entry;
    self->cache_bytes += bytes;
    zhashx_insert (self->cache, key, entry);
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

//  Unlink a fetch from the actor's list and index and destroy it.
static void
s_self_forget (s_self_t *self, s_fetch_t *fetch)
{
    if (fetch->prev)
        fetch->prev->next = fetch->next;
    else
        self->fetches = fetch->next;
    if (fetch->next)
        fetch->next->prev = fetch->prev;
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
        while (self->fetches) {
            s_fetch_t *fetch = self->fetches;
            for (s_waiter_t *waiter = fetch->waiters; waiter; waiter = waiter->next) {
                s_self_log_answer (self, waiter, "-", "CANCELLED", 0, 0, 0, fetch, NULL,
                                   fetch->url_logged, "herd: places worker stopped");
                cancelled++;
            }
            s_self_forget (self, fetch);
        }
        if (cancelled)
            s_self_log (self, "stopped with %zu requests in flight, not answered", cancelled);
        s_entry_t *entry = self->oldest;
        while (entry) {
            s_entry_t *next = entry->next;
            s_entry_destroy (&entry);
            entry = next;
        }
        zhashx_destroy (&self->fetch_index);
        zhashx_destroy (&self->cache);
        if (self->multi)
            curl_multi_cleanup (self->multi);
        zsock_destroy (&self->router);
        free (self->url);
        free (self->url_new);
        free (self->url_env);
        free (self->key_escaped);
        free (self);
        *self_p = NULL;
    }
}

//  Flavour auto: the Places API (New) URL that goes with a legacy Nearby
//  Search URL. Google's own host maps.googleapis.com becomes
//  places.googleapis.com; a URL whose path ends in the legacy path (a proxy,
//  the stand-in) keeps what comes before it; any other path is dropped. The
//  query, if any, goes. Returns a new string.
static char *
s_new_url (const char *legacy)
{
    const char *host = strstr (legacy, "://");
    host = host ? host + 3 : legacy;
    size_t host_size = strcspn (host, "/?#");
    const char *path = host + host_size;
    size_t path_size = strcspn (path, "?#");
    size_t suffix_size = strlen (HERD_PLACES_LEGACY_PATH);
    if (path_size >= suffix_size
        && memcmp (path + path_size - suffix_size, HERD_PLACES_LEGACY_PATH, suffix_size) == 0)
        path_size -= suffix_size;
    else
        path_size = 0;
    bool google = host_size == strlen (HERD_PLACES_LEGACY_HOST)
                  && memcmp (host, HERD_PLACES_LEGACY_HOST, host_size) == 0;
    char *url = zsys_sprintf ("%.*s%.*s%.*s" HERD_PLACES_NEW_PATH, (int) (host - legacy), legacy,
                              google ? (int) strlen (HERD_PLACES_NEW_HOST) : (int) host_size,
                              google ? HERD_PLACES_NEW_HOST : host, (int) path_size, path);
    assert (url);
    return url;
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
    self->fetch_index = zhashx_new ();
    self->cache = zhashx_new ();
    assert (self->fetch_index && self->cache);
    self->random = (uint64_t) s_now_usec () ^ ((uint64_t) getpid () << 32)
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
    self->field_mask = self->options->enterprise_fields ? HERD_PLACESBODY_MASK_ENTERPRISE
                                                        : HERD_PLACESBODY_MASK_PRO;
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
        self->url_new = s_new_url (self->url);
    for (const char *scan = self->key; scan && *scan; scan++)
        if ((unsigned char) *scan < 0x20 || *scan == 0x7F) {
            s_self_log (self, "cannot start: the API key holds a control character");
            s_self_destroy (&self);
            return NULL;
        }
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
    char url_logged[512], url_new_logged[512] = "";
    s_self_sanitise (self, self->url, url_logged, sizeof (url_logged));
    if (self->url_new)
        s_self_sanitise (self, self->url_new, url_new_logged, sizeof (url_new_logged));
    s_self_log (self, "serving %s flavour=%s url=%s%s%s key=%s%s timeout_ms=%d "
                      "connect_timeout_ms=%d concurrency=%d retries=%d cache_ttl_ms=%d "
                      "cache_max=%d",
                args->endpoint, self->is_auto ? "auto" : self->is_new ? "new" : "legacy",
                url_logged, self->url_new ? " url_new=" : "", url_new_logged,
                self->key_escaped ? "set" : "none",
                !self->is_new && !self->is_auto    ? ""
                : self->options->enterprise_fields ? " fields=enterprise"
                                                   : " fields=pro",
                self->options->timeout_ms, self->options->connect_timeout_ms,
                self->options->concurrency, self->options->retries,
                self->options->cache_ttl_ms, self->options->cache_max);
    return self;
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
    double ms = waiter ? (double) (s_now_usec () - waiter->arrived) / 1000.0 : 0.0;
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
    s_waiter_t waiter = {NULL, NULL, NULL, s_hex (reqid), s_now_usec (), false};
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
s_self_answer (s_self_t *self, s_fetch_t *fetch, const s_outcome_t *outcome, long http,
               int curl)
{
    for (s_waiter_t *waiter = fetch->waiters; waiter; waiter = waiter->next) {
        s_self_reply (self, waiter->routing_id, waiter->reqid,
                      outcome->ok ? HERD_MSG_OK : HERD_MSG_ERR, outcome->body);
        s_self_log_answer (self, waiter, outcome->ok ? HERD_MSG_OK : HERD_MSG_ERR,
                           outcome->status, outcome->results, http, curl, fetch,
                           waiter->shared ? "shared" : NULL, fetch->url_logged,
                           outcome->ok ? NULL : outcome->error);
    }
    if (outcome->ok && outcome->body && outcome->status)
        s_self_cache_store (self, fetch->key, outcome->body, outcome->status, outcome->results);
    s_self_forget (self, fetch);
}

//  Start the next attempt of a fetch: a new easy handle given to the multi
//  handle, with whatever is left of the fetch's deadline as its time-out.
//  0, or -1 if curl refused it (outcome then says why).
static int
s_self_attempt (s_self_t *self, s_fetch_t *fetch, s_outcome_t *outcome)
{
    int64_t now = s_now_usec ();
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
    outcome->body = herd_placesbody_error ("UNKNOWN_ERROR", message);
    outcome->status = strdup ("UNKNOWN_ERROR");
    outcome->error = strdup (message);
    return -1;
}

//  Start the next attempt of a fetch; if curl refuses it, answer every
//  request waiting on the fetch with why, at once.
static void
s_self_attempt_or_answer (s_self_t *self, s_fetch_t *fetch)
{
    s_outcome_t outcome = {0};
    if (s_self_attempt (self, fetch, &outcome)) {
        s_self_log (self, "fetch=%lu attempt=%d/%d error=\"%s\" -> answered", fetch->id,
                    fetch->attempts, self->options->retries + 1, outcome.error);
        s_self_answer (self, fetch, &outcome, 0, 0);
    }
    s_outcome_free (&outcome);
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
    waiter->arrived = s_now_usec ();

    char metres[64], lat_json[64], lon_json[64];
    s_format_metres (radius_km, metres, sizeof (metres));
    s_format_degrees (latitude, lat_json, sizeof (lat_json));
    s_format_degrees (longitude, lon_json, sizeof (lon_json));
    //  Under auto, fetches before and after the switch share answers
    char *key = zsys_sprintf ("%s|%s|%s|%s|%d",
                              self->is_auto ? "auto" : self->is_new ? "new" : "legacy",
                              lat_json, lon_json, metres, bound);
    assert (key);

    //  A fresh cached answer
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->cache, key);
    if (entry && entry->expires <= waiter->arrived) {
        s_self_cache_remove (self, entry);
        entry = NULL;
    }
    if (entry) {
        s_self_reply (self, waiter->routing_id, waiter->reqid, HERD_MSG_OK, entry->body);
        char via[64];
        snprintf (via, sizeof (via), "cache hit age_ms=%.1f",
                  (double) (waiter->arrived - entry->stored) / 1000.0);
        s_self_log_answer (self, waiter, HERD_MSG_OK, entry->status, entry->results, 0, 0, NULL,
                           via, NULL, NULL);
        s_waiter_destroy (&waiter);
        zstr_free (&key);
        return;
    }
    //  The same query in flight: wait for its answer
    s_fetch_t *fetch = (s_fetch_t *) zhashx_lookup (self->fetch_index, key);
    if (fetch) {
        waiter->shared = true;
        fetch->last_waiter->next = waiter;
        fetch->last_waiter = waiter;
        fetch->waiter_count++;
        zstr_free (&key);
        return;
    }

    fetch = (s_fetch_t *) zmalloc (sizeof (s_fetch_t));
    assert (fetch);
    fetch->id = ++self->fetch_ids;
    fetch->key = key;
    fetch->bound = bound;
    fetch->waiters = fetch->last_waiter = waiter;
    fetch->waiter_count = 1;
    fetch->started = waiter->arrived;
    fetch->deadline = fetch->started + (int64_t) self->options->timeout_ms * 1000;
    fetch->is_new = self->is_new;
    if (self->is_new || self->is_auto) {
        //  Auto keeps the New body at hand for a switch mid-fetch
        fetch->post = zsys_sprintf ("{\"maxResultCount\":%d,\"locationRestriction\":"
                                    "{\"circle\":{\"center\":{\"latitude\":%s,"
                                    "\"longitude\":%s},\"radius\":%s}}}",
                                    bound, lat_json, lon_json, metres);
        assert (fetch->post);
    }
    if (self->is_new)
        s_self_fetch_new (self, fetch);
    else {
        //  A '+' in a query is a space: drop it, as the sign is optional
        char separator = strchr (self->url, '?') ? '&' : '?';
        const char *latitude_text = *lat == '+' ? lat + 1 : lat;
        const char *longitude_text = *lon == '+' ? lon + 1 : lon;
        fetch->url = zsys_sprintf ("%s%clocation=%s,%s&radius=%s%s%s", self->url, separator,
                                   latitude_text, longitude_text, metres,
                                   self->key_escaped ? "&key=" : "",
                                   self->key_escaped ? self->key_escaped : "");
        char *url_logged = zsys_sprintf ("%s%clocation=%s,%s&radius=%s%s", self->url,
                                         separator, latitude_text, longitude_text, metres,
                                         self->key_escaped ? "&key=" HERD_PLACES_REDACTED : "");
        assert (fetch->url && url_logged);
        fetch->url_logged = (char *) malloc (strlen (url_logged) + 1);
        assert (fetch->url_logged);
        s_self_sanitise (self, url_logged, fetch->url_logged, strlen (url_logged) + 1);
        zstr_free (&url_logged);
    }
    fetch->next = self->fetches;
    if (self->fetches)
        self->fetches->prev = fetch;
    self->fetches = fetch;
    zhashx_insert (self->fetch_index, fetch->key, fetch);

    s_self_attempt_or_answer (self, fetch);
}

//  Handle one message on the ROUTER: ["NEARBY", reqid, lat, lon, radius-km,
//  bound] after the routing id. Anything else gets ERR INVALID_REQUEST (when
//  it carries something to use as reqid) and a log line.
//  Answer STATS: our counters for the monitor, latencies since last time.
static void
s_self_send_stats (s_self_t *self, zframe_t *routing_id)
{
    int64_t now = s_now_usec ();
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
    char *text = cJSON_PrintUnformatted (stats);
    cJSON_Delete (stats);
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, (zframe_t *[]){zframe_dup (routing_id)});
    zmsg_addstr (reply, "STATS");
    zmsg_addstr (reply, text ? text : "{}");
    free (text);
    if (zmsg_send (&reply, self->router) == -1)
        zmsg_destroy (&reply);
}

static void
s_self_handle_router (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    if (!msg)
        return;
    zframe_t *routing_id = zmsg_pop (msg);
    zframe_t *command = zmsg_pop (msg);
    if (routing_id && command && zframe_streq (command, "STATS")) {
        s_self_send_stats (self, routing_id);
        zframe_destroy (&routing_id);
        zframe_destroy (&command);
        zmsg_destroy (&msg);
        return;
    }
    zframe_t *reqid = zmsg_pop (msg);
    char *lat = NULL, *lon = NULL, *radius = NULL, *bound = NULL;
    char reason[160] = "";
    double latitude = 0, longitude = 0, radius_km = 0, bound_value = 0;
    //  What herd_decimal_parse_double lets through: digits on one side of a
    //  '.' suffice; coordinates may have a sign, the radius an exponent
    const int S_PLAIN = HERD_DECIMAL_FRACTION | HERD_DECIMAL_LOOSE;
    const int S_COORDINATE = S_PLAIN | HERD_DECIMAL_SIGN;
    const int S_RADIUS = S_PLAIN | HERD_DECIMAL_EXPONENT;

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

//  True for Google's error_message when the key's project has the Places API
//  (New) only: "You're calling a legacy API, which is not enabled for your
//  project. ... Learn more: https://developers.google.com/maps/legacy#
//  LegacyApiNotActivatedMapError". Not for other REQUEST_DENIED (an invalid
//  key, a key restricted to other APIs).
static bool
s_is_legacy_refusal (const char *text)
{
    return text
           && (strstr (text, "LegacyApiNotActivatedMapError")
               || strstr (text, "calling a legacy API, which is not enabled"));
}

//  What an ended attempt came to: the answer to give, and whether a retry
//  may give a better one.
static void
s_self_judge (s_self_t *self, s_fetch_t *fetch, CURLcode result, long http,
              s_outcome_t *outcome)
{
    const herd_places_options_t *options = self->options;
    double attempt_ms = (double) (s_now_usec () - fetch->attempt_started) / 1000.0;
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
    if (result != CURLE_OK) {
        snprintf (message, sizeof (message), "herd: Places request failed: %s", curl_error);
        outcome->retryable = s_is_reset (result);
    }
    else
    if (fetch->is_new) {
        //  Places API (New): 200 with places, or a google.rpc.Status
        const char *status = NULL;
        char *google_message = NULL;
        int is_status = herd_placesbody_new_error (http, fetch->body, fetch->size, &status,
                                                   &google_message, &outcome->retry_delay_ms);
        if (http == 200 && is_status != 0) {
            outcome->body = herd_placesbody_from_new (fetch->body, fetch->size, fetch->bound,
                                                      &outcome->results);
            if (outcome->body) {
                outcome->ok = true;
                outcome->status = strdup (outcome->results ? "OK" : "ZERO_RESULTS");
            }
            else
                snprintf (message, sizeof (message), "herd: Places API sent invalid JSON");
        }
        else {
            //  The legacy status for Google's, or for the HTTP status
            char fallback[64];
            snprintf (fallback, sizeof (fallback), "herd: Places API answered HTTP %ld", http);
            const char *text = google_message ? google_message : fallback;
            outcome->body = herd_placesbody_error (status, text);
            outcome->status = strdup (status);
            outcome->error = strdup (text);
            outcome->retryable = http >= 500 || http == 429;
        }
        free (google_message);
    }
    else {
        //  Legacy: Google's status decides, whatever the HTTP status
        char *status = NULL;
        char *shaped = herd_placesbody_shape (fetch->body, fetch->size, fetch->bound, &status,
                                              &outcome->results);
        bool success = status && (streq (status, "OK") || streq (status, "ZERO_RESULTS"));
        if (shaped && success && http == 200) {
            outcome->ok = true;
            outcome->body = shaped;
            outcome->status = status;
            shaped = status = NULL;
        }
        else
        if (shaped && status && !success) {
            //  Google's own error body goes back as it is (REQUEST_DENIED
            //  comes with 200 or 403)
            cJSON *root = cJSON_ParseWithLength (fetch->body, fetch->size);
            const char *text = cJSON_GetStringValue (cJSON_GetObjectItem (root, "error_message"));
            if (text)
                outcome->error = strdup (text);
            outcome->legacy_refused = streq (status, "REQUEST_DENIED") && s_is_legacy_refusal (text);
            cJSON_Delete (root);
            outcome->retryable = streq (status, "OVER_QUERY_LIMIT")
                                 || streq (status, "UNKNOWN_ERROR") || http >= 500 || http == 429;
            outcome->body = shaped;
            outcome->status = status;
            outcome->results = 0;
            shaped = status = NULL;
        }
        else
        if (http != 200) {
            snprintf (message, sizeof (message), "herd: Places API answered HTTP %ld", http);
            outcome->retryable = http >= 500 || http == 429;
        }
        else
        if (!shaped)
            snprintf (message, sizeof (message), "herd: Places API sent invalid JSON");
        else
            snprintf (message, sizeof (message), "herd: Places API answer has no status");
        free (shaped);
        free (status);
    }
    if (*message) {
        free (outcome->body);
        free (outcome->status);
        free (outcome->error);
        outcome->ok = false;
        outcome->results = 0;
        outcome->body = herd_placesbody_error ("UNKNOWN_ERROR", message);
        outcome->status = strdup ("UNKNOWN_ERROR");
        outcome->error = strdup (message);
    }
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
s_self_switch (s_self_t *self, s_fetch_t *fetch, const s_outcome_t *refusal, long http,
               CURLcode result, double attempt_ms)
{
    char error_text[512] = "";
    s_self_sanitise (self, refusal->error ? refusal->error : "-", error_text,
                     sizeof (error_text));
    s_self_log (self,
                "fetch=%lu attempt=%d/%d waiting=%zu status=%s http=%ld curl=%d ms=%.1f url=%s "
                "error=\"%s\" -> ask the Places API (New)",
                fetch->id, fetch->attempts, self->options->retries + 1, fetch->waiter_count,
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
    double attempt_ms = (double) (s_now_usec () - fetch->attempt_started) / 1000.0;
    s_outcome_t outcome = {0};
    s_self_judge (self, fetch, result, http, &outcome);
    if (outcome.legacy_refused && self->is_auto && !fetch->is_new) {
        s_self_switch (self, fetch, &outcome, http, result, attempt_ms);
        s_outcome_free (&outcome);
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
        int64_t now = s_now_usec ();
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
                fetch->id, fetch->attempts, tries, fetch->waiter_count, status_text, http,
                (int) result, attempt_ms, fetch->url_logged, *error_text ? " error=\"" : "",
                error_text, *error_text ? "\"" : "", next);
    s_fetch_reset (fetch, self->multi);
    if (!retry)
        s_self_answer (self, fetch, &outcome, http, (int) result);
    s_outcome_free (&outcome);
}

//  Start the retries that are due; returns ms until the next one, or -1.
static long
s_self_handle_retries (s_self_t *self)
{
    if (self->retries_waiting == 0)
        return -1;
    int64_t now = s_now_usec ();
    int64_t next = 0;
    s_fetch_t *fetch = self->fetches;
    while (fetch) {
        s_fetch_t *following = fetch->next;
        if (fetch->retry_at && fetch->retry_at <= now) {
            self->retries_waiting--;
            s_self_attempt_or_answer (self, fetch);
        }
        else
        if (fetch->retry_at && (next == 0 || fetch->retry_at < next))
            next = fetch->retry_at;
        fetch = following;
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
    self->field_mask = options->enterprise_fields ? HERD_PLACESBODY_MASK_ENTERPRISE
                                                  : HERD_PLACESBODY_MASK_PRO;
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
    self->url_new = self->is_auto ? s_new_url (self->url) : NULL;
}

//  Handle a command on the actor pipe.
static void
s_self_handle_pipe (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->pipe);
    char *command = msg ? zmsg_popstr (msg) : NULL;
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "VERBOSE"))
        self->verbose = true;
    else
    if (streq (command, HERD_MSG_RELOAD) && zmsg_size (msg) == 1
        && zframe_size (zmsg_first (msg)) == sizeof (void *)) {
        const herd_config_t *config;
        memcpy (&config, zframe_data (zmsg_first (msg)), sizeof (config));
        s_self_reload (self, &config->places);
        zsock_signal (self->pipe, 0);
    }
    else
        s_self_log (self, "unknown pipe command ignored");
    zstr_free (&command);
    zmsg_destroy (&msg);
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
        herd_alive_beat (HERD_ALIVE_PLACES, s_now_usec () / 1000);     //  this loop turns
        while (!self->terminated && s_readable (self->pipe))
            s_self_handle_pipe (self);
        if (self->terminated)
            break;
        //  Take at most a batch, so a flood cannot starve the transfers
        for (int batch = 0; batch < 1000 && s_readable (self->router); batch++)
            s_self_handle_router (self);
        s_self_handle_curl (self);
        long retry_in = s_self_handle_retries (self);
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

//  --------------------------------------------------------------------------
//  Self test: a tiny HTTP server on loopback plays the Places API.
//
//  It answers by the latitude in the query (legacy GET) or in the JSON body
//  (New POST): 1 OK (three results), 2 never (hangs), 3 HTTP 500, 4 invalid
//  JSON, 5 OK after 200 ms, 6 REQUEST_DENIED (New: 403 PERMISSION_DENIED),
//  7 REQUEST_DENIED with HTTP 403, 8 a 9 MiB body, 9 a JSON array, 10
//  ZERO_RESULTS (New: {}), 11 HTTP 500 then OK, alternately, 12 New: 429
//  RESOURCE_EXHAUSTED asking to retry in 30 s, 13 New: 400 API_KEY_INVALID,
//  14 New: 400 INVALID_ARGUMENT, 15 legacy OVER_QUERY_LIMIT, 16 the
//  connection broken in the middle of the body then OK, alternately, 17
//  New: HTTP 403 with an HTML body; anything else OK. Connections are kept
//  alive.

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
static const char s_body_over[] =
    "{\n   \"error_message\" : \"You have exceeded your daily request quota for this API.\",\n"
    "   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OVER_QUERY_LIMIT\"\n}\n";
//  Places API (New): three places, the first with every mapped field
static const char s_new_ok[] =
    "{\n  \"places\": [\n    {\n"
    "      \"name\": \"places/ChIJi6C1MxquEmsR9-c-3O48ykI\",\n"
    "      \"id\": \"ChIJi6C1MxquEmsR9-c-3O48ykI\",\n"
    "      \"types\": [\"bar\", \"restaurant\", \"food\", \"point_of_interest\", "
    "\"establishment\"],\n"
    "      \"formattedAddress\": \"Circular Quay W, The Rocks NSW 2000, Australia\",\n"
    "      \"shortFormattedAddress\": \"Circular Quay W, The Rocks\",\n"
    "      \"location\": {\"latitude\": -33.8587323, \"longitude\": 151.2100055},\n"
    "      \"viewport\": {\"low\": {\"latitude\": -33.86009812989271, \"longitude\": "
    "151.2085439701072},\n"
    "                   \"high\": {\"latitude\": -33.85739847010727, \"longitude\": "
    "151.2112436298927}},\n"
    "      \"rating\": 4,\n      \"userRatingCount\": 1269,\n"
    "      \"priceLevel\": \"PRICE_LEVEL_MODERATE\",\n"
    "      \"businessStatus\": \"OPERATIONAL\",\n"
    "      \"iconMaskBaseUri\": \"https://maps.gstatic.com/mapfiles/place_api/icons/v2/bar_pinlet\",\n"
    "      \"iconBackgroundColor\": \"#FF9E67\",\n"
    "      \"displayName\": {\"text\": \"Cruise \\\"Bar\\\" & <Grill>\", \"languageCode\": \"en\"},\n"
    "      \"currentOpeningHours\": {\"openNow\": false, \"weekdayDescriptions\": []},\n"
    "      \"plusCode\": {\"globalCode\": \"4RRH46R6+G2\", \"compoundCode\": \"46R6+G2 The Rocks, "
    "New South Wales\"},\n"
    "      \"photos\": [{\"name\": \"places/ChIJi6C1MxquEmsR9-c-3O48ykI/photos/Aap_uE\", "
    "\"widthPx\": 1080, \"heightPx\": 608,\n"
    "                  \"authorAttributions\": [{\"displayName\": \"A Google User\", "
    "\"uri\": \"https://maps.google.com/maps/contrib/1\", \"photoUri\": \"//lh3/a\"}]}]\n"
    "    },\n"
    "    {\"id\": \"Two\", \"displayName\": {\"text\": \"Two\"}, \"formattedAddress\": \"2 Long St\","
    " \"location\": {\"longitude\": 1.5}, \"priceLevel\": \"PRICE_LEVEL_UNSPECIFIED\"},\n"
    "    {\"id\": \"Three\"}\n"
    "  ]\n}\n";
static const char s_new_denied[] =
    "{\n  \"error\": {\n    \"code\": 403,\n    \"message\": \"Places API (New) has not been used "
    "in project 1 before or it is disabled.\",\n    \"status\": \"PERMISSION_DENIED\"\n  }\n}\n";
static const char s_new_internal[] =
    "{\"error\": {\"code\": 500, \"message\": \"Internal error encountered.\", "
    "\"status\": \"INTERNAL\"}}";
static const char s_new_quota[] =
    "{\"error\": {\"code\": 429, \"message\": \"Quota exceeded.\", \"status\": "
    "\"RESOURCE_EXHAUSTED\", \"details\": [{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\","
    " \"retryDelay\": \"30s\"}]}}";
static const char s_new_bad_key[] =
    "{\"error\": {\"code\": 400, \"message\": \"API key not valid. Please pass a valid API key.\", "
    "\"status\": \"INVALID_ARGUMENT\", \"details\": [{\"@type\": "
    "\"type.googleapis.com/google.rpc.ErrorInfo\", \"reason\": \"API_KEY_INVALID\"}]}}";
static const char s_new_invalid[] =
    "{\"error\": {\"code\": 400, \"message\": \"Invalid radius.\", \"status\": "
    "\"INVALID_ARGUMENT\"}}";

typedef struct {
    int fd;
    char buffer[8192];
    size_t size;
    int64_t reply_at;           //  monotonic usec; 0 none pending, -1 never
    int behaviour;
    bool is_post;               //  Places API (New)
    bool fail;                  //  this time, 11 and 16 fail
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
    int seen[32];               //  requests received by behaviour
    char target[1024];          //  request target of the last request
    char head[4096];            //  head and body of the last request
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

//  The status and body of an answer to a Places API (New) request.
static const char *
s_server_new_body (s_conn_t *conn, int *code_p)
{
    switch (conn->behaviour) {
        case 3: *code_p = 500; return s_new_internal;
        case 6: *code_p = 403; return s_new_denied;
        case 10: return "{}\n";
        case 11: *code_p = conn->fail ? 500 : 200; return conn->fail ? s_new_internal : s_new_ok;
        case 12: *code_p = 429; return s_new_quota;
        case 13: *code_p = 400; return s_new_bad_key;
        case 14: *code_p = 400; return s_new_invalid;
        case 17: *code_p = 403; return "<html>Forbidden</html>";
        default: return s_new_ok;
    }
}

//  Send the answer the connection's request asked for.
static void
s_server_respond (s_conn_t *conn)
{
    int code = 200;
    const char *body = s_body_ok;
    if (conn->behaviour == 16 && conn->fail) {
        //  The connection breaks in the middle of the body
        const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"results\"";
        s_send_all (conn->fd, cut, strlen (cut));
        close (conn->fd);
        conn->fd = -1;
        return;
    }
    if (conn->behaviour == 3 || (conn->behaviour == 11 && conn->fail)) {
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
    else
    if (conn->behaviour == 15)
        body = s_body_over;
    if (conn->is_post && conn->behaviour != 4 && conn->behaviour != 8 && conn->behaviour != 9) {
        code = 200;
        body = s_server_new_body (conn, &code);
    }
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

//  Read from a connection; schedule the answer once a whole request (head
//  and, for a POST, its Content-Length of body) is in.
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
    char *length = strcasestr (conn->buffer, "\r\nContent-Length: ");
    size_t body_size = length && length < end ? strtoul (length + 18, NULL, 10) : 0;
    size_t used = (size_t) (end + 4 - conn->buffer) + body_size;
    if (conn->size < used)
        return;
    //  "GET /path?location=LAT,LNG&... HTTP/1.1" or "POST /path ..." with
    //  {..."latitude":LAT...} after the head
    conn->is_post = strncmp (conn->buffer, "POST ", 5) == 0;
    char *space = strchr (conn->buffer, ' ');
    char *target_end = space ? strchr (space + 1, ' ') : NULL;
    const char *field = conn->is_post ? "\"latitude\":" : "location=";
    char *location = strstr (conn->is_post ? end : conn->buffer, field);
    conn->behaviour = location ? (int) strtol (location + strlen (field), NULL, 10) : 0;
    pthread_mutex_lock (&self->mutex);
    if (space && target_end)
        snprintf (self->target, sizeof (self->target), "%.*s",
                  (int) (target_end - space - 1), space + 1);
    snprintf (self->head, sizeof (self->head), "%.*s", (int) used, conn->buffer);
    self->requests++;
    int seen = 0;
    if (conn->behaviour >= 0 && conn->behaviour < 32)
        seen = self->seen[conn->behaviour]++;
    conn->fail = seen % 2 == 0;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
    int64_t delay = conn->behaviour == 5 ? 200000 : 0;
    conn->reply_at = conn->behaviour == 2 ? -1 : s_now_usec () + delay;
    //  Keep what follows the request (nothing, as curl does not pipeline)
    memmove (conn->buffer, conn->buffer + used, conn->size - used + 1);
    conn->size -= used;
}

//  The server thread: accept, read, answer when due, until woken to stop.
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

//  Start the server on a free loopback port.
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

//  Stop the server thread and close everything.
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

//  The head and body of the last request the server received. Caller frees.
static char *
s_server_head (s_server_t *self)
{
    pthread_mutex_lock (&self->mutex);
    char *head = strdup (self->head);
    pthread_mutex_unlock (&self->mutex);
    return head;
}

//  Requests the server has received.
static int
s_server_requests (s_server_t *self)
{
    pthread_mutex_lock (&self->mutex);
    int requests = self->requests;
    pthread_mutex_unlock (&self->mutex);
    return requests;
}

//  Connections the server has accepted.
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

//  Send a NEARBY request as the gateway does.
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

//  Free the strings of a reply.
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
    //  Flavour auto: the New URL that goes with the legacy one
    const char *derived[][2] = {
        {"https://maps.googleapis.com/maps/api/place/nearbysearch/json",
         "https://places.googleapis.com/v1/places:searchNearby"},
        {"http://127.0.0.1:8080/maps/api/place/nearbysearch/json?x=1",
         "http://127.0.0.1:8080/v1/places:searchNearby"},
        {"https://proxy.example/google/maps/api/place/nearbysearch/json",
         "https://proxy.example/google/v1/places:searchNearby"},
        {"http://127.0.0.1:9/nearbysearch/json", "http://127.0.0.1:9/v1/places:searchNearby"},
        {"https://maps.googleapis.com.evil/maps/api/place/nearbysearch/json",
         "https://maps.googleapis.com.evil/v1/places:searchNearby"},
    };
    for (size_t i = 0; i < sizeof (derived) / sizeof (derived[0]); i++) {
        char *url_new = s_new_url (derived[i][0]);
        HERD_CHECK_STR (url_new, derived[i][1]);
        zstr_free (&url_new);
    }
    HERD_CHECK (s_is_legacy_refusal ("You're calling a legacy API, which is not enabled for "
                                     "your project. To get newer features and more, migrate "
                                     "to the Places API: https://example"));
    HERD_CHECK (s_is_legacy_refusal ("... https://developers.google.com/maps/legacy"
                                     "#LegacyApiNotActivatedMapError"));
    HERD_CHECK (!s_is_legacy_refusal ("The provided API key is invalid."));
    HERD_CHECK (!s_is_legacy_refusal ("This API project is not authorized to use this API."));
    HERD_CHECK (!s_is_legacy_refusal (NULL));

    s_server_t *server = s_server_new ();
    char directory[] = "/tmp/herd-places-test-XXXXXX";
    HERD_CHECK (mkdtemp (directory));
    char *log_path = zsys_sprintf ("%s/places.log", directory);
    herd_log_t *log = herd_log_new (log_path, "Test");
    HERD_CHECK (log);
    char *url = zsys_sprintf ("http://127.0.0.1:%d/maps/api/place/nearbysearch/json",
                              server->port);
    char flavour[] = "legacy", key_env[] = "HERD_TEST_KEY";
    herd_places_options_t options = {flavour, url, key_env, 500, 500, 8, 0, false, 0, 10000};
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

    //  Places API (New): a POST with the key and the field mask in headers,
    //  never in the URL; the answer translated into the legacy shape
    char *new_url = zsys_sprintf ("http://127.0.0.1:%d/v1/places:searchNearby", server->port);
    char flavour_new[] = "new";
    herd_places_options_t new_options = {flavour_new, new_url, key_env, 4000, 500, 8,
                                         2,           false,   0,       10000};
    herd_places_args_t new_args = {&new_options, "inproc://herd-places-test-5", NULL, key, log};
    places = zactor_new (herd_places_actor, &new_args);
    HERD_CHECK_INT (zsock_wait (places), 0);
    dealer = zsock_new_dealer (">inproc://herd-places-test-5");
    zsock_set_rcvtimeo (dealer, 5000);
    int seen = s_server_requests (server);
    s_send_nearby (dealer, "n1", "+1.0", "-0", "1.5", "2");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, "n1");
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_CONTAINS (reply.json, "{\n   \"html_attributions\" : [],\n   \"results\" : [\n"
                                     "      {\n         \"business_status\" : \"OPERATIONAL\",\n");
    HERD_CHECK_CONTAINS (reply.json, "\n         \"name\" : \"Cruise \\\"Bar\\\" \\u0026 "
                                     "\\u003cGrill\\u003e\",\n");
    HERD_CHECK_CONTAINS (reply.json, "\n      },\n      {\n         \"geometry\" : {\n");
    HERD_CHECK_CONTAINS (reply.json, "\n   ],\n   \"status\" : \"OK\"\n}");
    cJSON *root = cJSON_Parse (reply.json);
    cJSON *results = cJSON_GetObjectItem (root, "results");
    HERD_CHECK_INT (cJSON_GetArraySize (results), 2);
    cJSON *first = cJSON_GetArrayItem (results, 0);
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (first, "place_id")),
                    "ChIJi6C1MxquEmsR9-c-3O48ykI");
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (first, "vicinity")),
                    "Circular Quay W, The Rocks");
    HERD_CHECK_INT (cJSON_GetObjectItem (first, "price_level")->valueint, 2);
    HERD_CHECK_INT (cJSON_GetObjectItem (first, "user_ratings_total")->valueint, 1269);
    HERD_CHECK (cJSON_IsFalse (
        cJSON_GetObjectItem (cJSON_GetObjectItem (first, "opening_hours"), "open_now")));
    cJSON_Delete (root);
    s_reply_free (&reply);
    HERD_CHECK_INT (s_server_requests (server), seen + 1);
    target = s_server_target (server);
    HERD_CHECK_STR (target, "/v1/places:searchNearby");
    zstr_free (&target);
    char *head = s_server_head (server);
    HERD_CHECK (strncmp (head, "POST /v1/places:searchNearby HTTP/1.1\r\n", 39) == 0);
    HERD_CHECK_CONTAINS (head, "\r\nX-Goog-Api-Key: s3cr/et k+y\r\n");
    HERD_CHECK_CONTAINS (head, "\r\nX-Goog-FieldMask: " HERD_PLACESBODY_MASK_PRO "\r\n");
    HERD_CHECK_CONTAINS (head, "\r\nContent-Type: application/json\r\n");
    HERD_CHECK_CONTAINS (head, "\r\n\r\n{\"maxResultCount\":2,\"locationRestriction\":{\"circle\":"
                               "{\"center\":{\"latitude\":1,\"longitude\":0},\"radius\":1500}}}");
    HERD_CHECK (strstr (head, "key=") == NULL);
    zstr_free (&head);

    //  Nothing found: {} is ZERO_RESULTS
    s_send_nearby (dealer, "n10", "+10", "+0", "1", "5");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_CONTAINS (reply.json, "\"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"");
    s_reply_free (&reply);

    //  New API errors: the legacy status, Google's message; 4xx never
    //  retried, nor a 429 whose RetryInfo (30 s) does not fit the deadline
    seen = s_server_requests (server);
    int64_t errors_started = s_now_usec ();
    s_send_nearby (dealer, "n6", "+6", "+0", "1", "5");
    s_expect_error (dealer, "n6", "REQUEST_DENIED", "Places API (New) has not been used");
    s_send_nearby (dealer, "n14", "+14", "+0", "1", "5");
    s_expect_error (dealer, "n14", "INVALID_REQUEST", "Invalid radius.");
    s_send_nearby (dealer, "n13", "+13", "+0", "1", "5");
    s_expect_error (dealer, "n13", "REQUEST_DENIED", "API key not valid.");
    s_send_nearby (dealer, "n12", "+12", "+0", "1", "5");
    s_expect_error (dealer, "n12", "OVER_QUERY_LIMIT", "Quota exceeded.");
    s_send_nearby (dealer, "n17", "+17", "+0", "1", "5");
    s_expect_error (dealer, "n17", "REQUEST_DENIED", "herd: Places API answered HTTP 403");
    requests += 5;
    HERD_CHECK_INT (s_server_requests (server), seen + 5);
    HERD_CHECK ((s_now_usec () - errors_started) / 1000 < 3000);     //  not 30 s

    //  5xx: retried twice with backoff, inside the deadline, then answered
    seen = s_server_requests (server);
    started = s_now_usec ();
    s_send_nearby (dealer, "n3", "+3", "+0", "1", "5");
    requests++;
    s_expect_error (dealer, "n3", "UNKNOWN_ERROR", "Internal error encountered.");
    elapsed_ms = (s_now_usec () - started) / 1000;
    if (verbose)
        printf ("three attempts answered after %" PRId64 " ms\n", elapsed_ms);
    HERD_CHECK_INT (s_server_requests (server), seen + 3);
    HERD_CHECK_INT (elapsed_ms >= 625 && elapsed_ms < 5000 ? 0 : elapsed_ms, 0);

    //  A 500 then an answer; a connection broken mid-body then an answer
    seen = s_server_requests (server);
    s_send_nearby (dealer, "n11", "+11", "+0", "1", "5");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_CONTAINS (reply.json, "\"Cruise \\\"Bar\\\"");
    s_reply_free (&reply);
    HERD_CHECK_INT (s_server_requests (server), seen + 2);
    seen = s_server_requests (server);
    s_send_nearby (dealer, "n16", "+16", "+0", "1", "5");
    requests++;
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    s_reply_free (&reply);
    HERD_CHECK_INT (s_server_requests (server), seen + 2);

    //  Identical requests in flight share one HTTP request; another bound
    //  is another query
    seen = s_server_requests (server);
    s_send_nearby (dealer, "s1", "+5", "+0", "1", "3");
    s_send_nearby (dealer, "s2", "+5.00", "+0.0", "1.0", "3");
    s_send_nearby (dealer, "s3", "+5", "+0", "1", "2");
    requests += 3;
    char *bodies[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        reply = s_recv_reply (dealer);
        HERD_CHECK_STR (reply.status, HERD_MSG_OK);
        int index = reply.reqid[1] - '1';
        HERD_CHECK (index >= 0 && index < 3 && !bodies[index]);
        bodies[index] = reply.json;
        reply.json = NULL;
        s_reply_free (&reply);
    }
    HERD_CHECK_STR (bodies[0], bodies[1]);
    HERD_CHECK (strcmp (bodies[0], bodies[2]) != 0);
    for (int i = 0; i < 3; i++)
        zstr_free (&bodies[i]);
    HERD_CHECK_INT (s_server_requests (server), seen + 2);
    zactor_destroy (&places);
    zsock_destroy (&dealer);

    //  The cache: answers kept (errors are not), the oldest evicted when
    //  full, none after the TTL; enterprise fields ask more
    new_options.retries = 0;
    new_options.cache_ttl_ms = 60000;
    new_options.cache_max = 2;
    new_options.enterprise_fields = true;
    herd_places_args_t cache_args = {&new_options, "inproc://herd-places-test-6", NULL, key, log};
    places = zactor_new (herd_places_actor, &cache_args);
    HERD_CHECK_INT (zsock_wait (places), 0);
    dealer = zsock_new_dealer (">inproc://herd-places-test-6");
    zsock_set_rcvtimeo (dealer, 5000);
    const char *cache_steps[][3] = {
        //  reqid, latitude, HTTP requests it makes
        {"k1", "+1", "1"}, {"k1", "+1", "0"}, {"k2", "+20", "1"}, {"k1", "+1", "0"},
        {"k3", "+21", "1"}, {"k1", "+1", "1"}, {"k2", "+20", "1"}, {"k6", "+6", "1"},
        {"k6", "+6", "1"},
    };
    char *cached = NULL;
    for (size_t i = 0; i < sizeof (cache_steps) / sizeof (cache_steps[0]); i++) {
        seen = s_server_requests (server);
        s_send_nearby (dealer, cache_steps[i][0], cache_steps[i][1], "+0", "1", "1");
        requests++;
        reply = s_recv_reply (dealer);
        HERD_CHECK_STR (reply.reqid, cache_steps[i][0]);
        if (streq (reply.reqid, "k1")) {
            if (!cached)
                cached = strdup (reply.json);
            HERD_CHECK_STR (reply.json, cached);
        }
        s_reply_free (&reply);
        HERD_CHECK_INT (s_server_requests (server), seen + atoi (cache_steps[i][2]));
    }
    free (cached);
    head = s_server_head (server);
    HERD_CHECK_CONTAINS (head, "\r\nX-Goog-FieldMask: " HERD_PLACESBODY_MASK_ENTERPRISE "\r\n");
    zstr_free (&head);
    zactor_destroy (&places);
    zsock_destroy (&dealer);
    new_options.cache_ttl_ms = 100;
    //  A new endpoint: the old one is released by libzmq's reaper thread a
    //  moment after the actor ends, so binding it again can fail
    cache_args.endpoint = "inproc://herd-places-test-6b";
    places = zactor_new (herd_places_actor, &cache_args);
    HERD_CHECK_INT (zsock_wait (places), 0);
    dealer = zsock_new_dealer (">inproc://herd-places-test-6b");
    zsock_set_rcvtimeo (dealer, 5000);
    seen = s_server_requests (server);
    for (int i = 0; i < 3; i++) {
        if (i == 2)
            zclock_sleep (150);
        s_send_nearby (dealer, "t1", "+1", "+0", "1", "1");
        requests++;
        reply = s_recv_reply (dealer);
        HERD_CHECK_STR (reply.status, HERD_MSG_OK);
        s_reply_free (&reply);
    }
    HERD_CHECK_INT (s_server_requests (server), seen + 2);
    zactor_destroy (&places);
    zsock_destroy (&dealer);
    zstr_free (&new_url);

    //  Legacy retries: OVER_QUERY_LIMIT and HTTP 500 are retried, Google's
    //  own REQUEST_DENIED is not
    herd_places_options_t retry_options = options;
    retry_options.retries = 1;
    retry_options.timeout_ms = 4000;
    herd_places_args_t retry_args = {&retry_options, "inproc://herd-places-test-7", NULL, key,
                                     log};
    places = zactor_new (herd_places_actor, &retry_args);
    HERD_CHECK_INT (zsock_wait (places), 0);
    dealer = zsock_new_dealer (">inproc://herd-places-test-7");
    zsock_set_rcvtimeo (dealer, 5000);
    seen = s_server_requests (server);
    s_send_nearby (dealer, "l15", "+15", "+0", "1", "5");
    s_expect_error (dealer, "l15", "OVER_QUERY_LIMIT", "You have exceeded your daily");
    HERD_CHECK_INT (s_server_requests (server), seen + 2);
    s_send_nearby (dealer, "l7", "+7", "+0", "1", "5");
    s_expect_error (dealer, "l7", "REQUEST_DENIED", "The provided API key is invalid.");
    HERD_CHECK_INT (s_server_requests (server), seen + 3);
    s_send_nearby (dealer, "l11", "+11", "+0", "1", "5");
    reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_CONTAINS (reply.json, "\"Three\"");
    s_reply_free (&reply);
    HERD_CHECK_INT (s_server_requests (server), seen + 5);
    requests += 3;
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
    HERD_CHECK_CONTAINS (text, " flavour=new url=http://127.0.0.1:");
    HERD_CHECK_CONTAINS (text, " fields=pro timeout_ms=4000 ");
    HERD_CHECK_CONTAINS (text, " fields=enterprise ");
    HERD_CHECK_CONTAINS (text, " attempt=1/3 waiting=1 status=UNKNOWN_ERROR http=500 curl=0 ms=");
    HERD_CHECK_CONTAINS (text, "error=\"Internal error encountered.\" -> retry in ");
    HERD_CHECK_CONTAINS (text, " attempt=3/3 waiting=1 status=UNKNOWN_ERROR http=500 ");
    HERD_CHECK_CONTAINS (text, "-> answered (no retries left)");
    HERD_CHECK_CONTAINS (text, "status=REQUEST_DENIED http=403 curl=0 ");
    HERD_CHECK_CONTAINS (text, "-> answered (not retryable)");
    HERD_CHECK_CONTAINS (text, "-> answered (a retry in 30000 ms would not end before the "
                               "deadline, ");
    HERD_CHECK_CONTAINS (text, " http=200 curl=18 ms=");
    HERD_CHECK_CONTAINS (text, "-> answered (done)");
    HERD_CHECK_CONTAINS (text, " attempts=2 url=http://127.0.0.1:");
    HERD_CHECK_CONTAINS (text, " req=7332 reply=OK status=OK results=3 http=200 curl=0 ms=");
    HERD_CHECK_CONTAINS (text, " attempts=1 shared url=http://127.0.0.1:");
    HERD_CHECK_CONTAINS (text, " req=6b31 reply=OK status=OK results=1 http=0 curl=0 ms=");
    HERD_CHECK_CONTAINS (text, " cache hit age_ms=");
    HERD_CHECK_INT (s_count_lines (text, " cache hit "), 3);
    HERD_CHECK_INT (s_count_lines (text, " shared "), 1);
    HERD_CHECK (strstr (text, "X-Goog") == NULL);
    free (text);
    unlink (log_path);
    rmdir (directory);
    zstr_free (&log_path);
    zstr_free (&url);
    s_server_destroy (&server);
    //  @end

    printf ("OK\n");
}
