//  herd_places_selftest.c - the places worker's self test.
//
//  Test code, linked into herd_selftest only (Makefile, TESTSRC): it runs
//  the actor against tests/places_standin.py, the project's stand-in for
//  Google (herd_standin.h), as the gateway would: NEARBY requests over a
//  DEALER, the answers, the stand-in's counters and the log checked.

#include "herd_places.h"
#include "herd_google.h"
#include "herd_standin.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

//  What the tests share: the stand-in, the log, the requests sent.
typedef struct {
    herd_standin_t *standin;
    herd_log_t *log;
    char *log_path;
    char directory[64];
    herd_places_options_t legacy;   //  the options most tests start from
    const char *key;
    int requests;                   //  NEARBY requests sent, each logged once
    int actors;                     //  for a fresh inproc endpoint each
    bool verbose;
} s_test_t;

#define S_TEST_KEY         "s3cr/et k+y"
#define S_TEST_KEY_ESCAPED "s3cr%2Fet%20k%2By"

//  A reply as the gateway sees it.
typedef struct {
    char *reqid;
    char *status;
    char *json;
} s_reply_t;

//  Start an actor with these options (url: the stand-in's legacy one unless
//  given) and a DEALER talking to it, as the gateway does. A fresh endpoint
//  each time: libzmq's reaper releases an old one a moment after its actor.
static zactor_t *
s_test_actor (s_test_t *test, const herd_places_options_t *options, const char *key,
              zsock_t **dealer_p)
{
    char endpoint[64];
    snprintf (endpoint, sizeof (endpoint), "inproc://herd-places-test-%d", ++test->actors);
    herd_places_args_t args = {options, endpoint, NULL, key, test->log, NULL};
    zactor_t *places = zactor_new (herd_places_actor, &args);
    HERD_CHECK (places);
    HERD_CHECK_INT (zsock_wait (places), 0);
    if (test->verbose)
        zstr_send (places, "VERBOSE");
    char *connect = zsys_sprintf (">%s", endpoint);
    *dealer_p = zsock_new_dealer (connect);
    zstr_free (&connect);
    HERD_CHECK (*dealer_p);
    zsock_set_rcvtimeo (*dealer_p, 5000);
    return places;
}

//  Stop an actor and its DEALER.
static void
s_test_stop (zactor_t **places_p, zsock_t **dealer_p)
{
    zactor_destroy (places_p);
    zsock_destroy (dealer_p);
}

//  Send a NEARBY request as the gateway does.
static void
s_send_nearby (s_test_t *test, zsock_t *dealer, const char *reqid, const char *lat,
               const char *lon, const char *radius, const char *bound)
{
    herd_msg_t nearby = {.id = HERD_MSG_ID_NEARBY, .reqid = herd_msg_str (reqid),
                         .lat = herd_msg_str (lat), .lon = herd_msg_str (lon),
                         .radius = herd_msg_str (radius), .bound = herd_msg_str (bound)};
    HERD_CHECK_INT (herd_msg_send (&nearby, dealer, 0), 0);
    test->requests++;
}

//  A decoded field as a new string (free with zstr_free).
static char *
s_strdup (herd_msg_bytes_t bytes)
{
    return zsys_sprintf ("%.*s", (int) bytes.size, (const char *) bytes.data);
}

//  Receive one reply (5 s at most) and decode it: a RESULT.
static s_reply_t
s_recv_reply (zsock_t *dealer)
{
    zmsg_t *msg = zmsg_recv (dealer);
    HERD_CHECK (msg);
    herd_msg_t d;
    char reason[HERD_MSG_REASON_MAX];
    int rc = herd_msg_decode (&d, msg, HERD_MSG_FROM_PLACES, NULL, reason, sizeof (reason));
    HERD_CHECK_STR (rc ? reason : "", "");         //  it decodes, or says why not
    HERD_CHECK (d.id == HERD_MSG_ID_RESULT);
    s_reply_t reply = {s_strdup (d.reqid), s_strdup (d.status), s_strdup (d.json)};
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

//  Receive a reply, check it is OK for reqid with this many results.
static void
s_expect_ok (zsock_t *dealer, const char *reqid, int results)
{
    s_reply_t reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.reqid, reqid);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK (strncmp (reply.json, "{\n   \"html_attributions\" : [],\n", 31) == 0);
    cJSON *root = cJSON_Parse (reply.json);
    HERD_CHECK_INT (cJSON_GetArraySize (cJSON_GetObjectItem (root, "results")), results);
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (root, "status")),
                    results ? "OK" : "ZERO_RESULTS");
    cJSON_Delete (root);
    s_reply_free (&reply);
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

//  Check the last legacy query the stand-in saw: location and radius.
static void
s_expect_query (s_test_t *test, const char *location, const char *radius)
{
    char *seen = herd_standin_stat (test->standin, "last_query", "location");
    HERD_CHECK_STR (seen, location);
    zstr_free (&seen);
    seen = herd_standin_stat (test->standin, "last_query", "radius");
    HERD_CHECK_STR (seen, radius);
    zstr_free (&seen);
}

//  Legacy answers: cut to the bound in Google's layout, blank lines gone;
//  the key reaches Google escaped, the radius in metres; one connection
//  kept alive for every request
static void
s_test_legacy_ok (s_test_t *test)
{
    herd_standin_reset (test->standin);
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, &test->legacy, test->key, &dealer);
    s_send_nearby (test, dealer, "r1", "+1", "-118.445127", "10", "2");
    s_expect_ok (dealer, "r1", 2);
    s_expect_query (test, "1,-118.445127", "10000");
    cJSON *stats = herd_standin_get (test->standin, "/_standin/stats");
    cJSON *keys = cJSON_GetObjectItem (stats, "keys_seen");
    HERD_CHECK_INT (cJSON_GetArraySize (keys), 1);
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetArrayItem (keys, 0)), S_TEST_KEY);
    cJSON_Delete (stats);

    herd_standin_mode (test->standin, "mode=blanklines");
    s_send_nearby (test, dealer, "r2", "+34.068930", "+118.445127", "1.5", "20");
    s_expect_ok (dealer, "r2", 3);
    s_expect_query (test, "34.068930,118.445127", "1500");
    s_send_nearby (test, dealer, "r3", "-1.5", "+0", "1.23456789", "1");
    s_expect_ok (dealer, "r3", 1);
    s_expect_query (test, "-1.5,0", "1234.568");
    s_send_nearby (test, dealer, "r4", "+10", "+0", "0.4", "5");
    s_expect_ok (dealer, "r4", 0);
    HERD_CHECK_INT (herd_standin_count (test->standin, "connections"), 1);
    s_test_stop (&places, &dealer);
}

//  Failures of the API: ERR with a clear message or Google's own body; and
//  requests refused before any HTTP
static void
s_test_legacy_errors (s_test_t *test)
{
    herd_standin_reset (test->standin);
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, &test->legacy, test->key, &dealer);
    const char *cases[][4] = {
        //  mode, reqid, legacy status, message
        {"http500", "e3", "UNKNOWN_ERROR", "herd: Places API answered HTTP 500"},
        {"malformed", "e4", "UNKNOWN_ERROR", "herd: Places API sent invalid JSON"},
        {"truncated", "e5", "UNKNOWN_ERROR", "herd: Places API sent invalid JSON"},
        {"invalid_key", "e6", "REQUEST_DENIED", "The provided API key is invalid."},
        {"huge", "e8", "UNKNOWN_ERROR", "herd: Places API sent more than 8 MiB"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        char *query = zsys_sprintf ("mode=%s", cases[i][0]);
        herd_standin_mode (test->standin, query);
        zstr_free (&query);
        s_send_nearby (test, dealer, cases[i][1], "+1", "+0", "1", "5");
        s_expect_error (dealer, cases[i][1], cases[i][2], cases[i][3]);
    }
    //  Malformed requests: ERR INVALID_REQUEST, no HTTP
    const char *invalid[][4] = {
        {"abc", "+0", "1", "5"},  {"+91", "+0", "1", "5"},   {"+1", "-180.5", "1", "5"},
        {"+1", "1e2", "1", "5"},  {"+1", "+0", "0", "5"},    {"+1", "+0", "50.5", "5"},
        {"+1", "+0", "-1", "5"},  {"+1", "+0", "nan", "5"},  {"+1", "+0", "1", "0"},
        {"+1", "+0", "1", "21"},  {"+1", "+0", "1", "2.0"},  {"+1", "+0", "1", ""},
        {"+1 ", "+0", "1", "5"},  {"+1", "+0", "1", "+5"},   {"+1", "+0&x=y", "1", "5"},
    };
    int before = herd_standin_count (test->standin, "requests");
    for (size_t i = 0; i < sizeof (invalid) / sizeof (invalid[0]); i++) {
        s_send_nearby (test, dealer, "bad", invalid[i][0], invalid[i][1], invalid[i][2],
                       invalid[i][3]);
        s_expect_error (dealer, "bad", "INVALID_REQUEST", "herd: invalid NEARBY request: ");
    }
    //  ...and malformed framing (raw frames on purpose)
    HERD_CHECK_INT (zstr_sendx (dealer, HERD_MSG_NEARBY, "short", "+1", NULL), 0);
    s_expect_error (dealer, "short", "INVALID_REQUEST", "got 3 frames");
    HERD_CHECK_INT (zstr_sendx (dealer, "NEARLY", "what", NULL), 0);
    s_expect_error (dealer, "what", "INVALID_REQUEST", "not a NEARBY command");
    HERD_CHECK_INT (zstr_send (dealer, HERD_MSG_NEARBY), 0);
    test->requests += 3;        //  the last logged, but nothing to answer it with
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), before);
    s_test_stop (&places, &dealer);
}

//  Requests in flight are independent: a fast one overtakes a slow one and
//  a hung one, and the hung one times out on time; a request in flight when
//  the actor stops is cleaned up
static void
s_test_independent (s_test_t *test)
{
    herd_standin_reset (test->standin);
    herd_standin_mode (test->standin, "lat=2&mode=hang");
    herd_standin_mode (test->standin, "lat=5&latency_ms=200");
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, &test->legacy, test->key, &dealer);
    int64_t started = zclock_usecs ();
    s_send_nearby (test, dealer, "hang", "+2", "+0", "1", "5");
    s_send_nearby (test, dealer, "slow", "+5", "+0", "1", "5");
    s_send_nearby (test, dealer, "fast", "+1", "+0", "1", "1");
    s_expect_ok (dealer, "fast", 1);
    s_expect_ok (dealer, "slow", 2);
    HERD_CHECK (zclock_usecs () - started >= 200000);
    s_expect_error (dealer, "hang", "UNKNOWN_ERROR", "herd: Places request timed out after 500 ms");
    //  curl counts in whole milliseconds from its own start: allow a little
    int64_t elapsed_ms = (zclock_usecs () - started) / 1000;
    if (test->verbose)
        printf ("hung request answered after %" PRId64 " ms\n", elapsed_ms);
    HERD_CHECK_INT (elapsed_ms >= 450 && elapsed_ms < 2000 ? 0 : elapsed_ms, 0);

    int received = herd_standin_count (test->standin, "requests");
    s_send_nearby (test, dealer, "left", "+2", "+0", "1", "5");
    for (int tries = 0; tries < 500 && herd_standin_count (test->standin, "requests") == received;
         tries++)
        zclock_sleep (10);
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), received + 1);
    s_test_stop (&places, &dealer);
}

//  No key: no key parameter (and Google refuses). The concurrency limit:
//  with one connection allowed, a request waits inside curl behind a slow
//  one, then reuses its connection
static void
s_test_keyless_single (s_test_t *test)
{
    herd_standin_reset (test->standin);
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, &test->legacy, NULL, &dealer);
    s_send_nearby (test, dealer, "k0", "+1", "+0", "1", "5");
    s_expect_error (dealer, "k0", "REQUEST_DENIED", "You must use an API key");
    cJSON *stats = herd_standin_get (test->standin, "/_standin/stats");
    HERD_CHECK (cJSON_IsFalse (
        cJSON_GetObjectItem (cJSON_GetObjectItem (stats, "last_query"), "key_present")));
    HERD_CHECK_INT (cJSON_GetArraySize (cJSON_GetObjectItem (stats, "keys_seen")), 0);
    cJSON_Delete (stats);
    s_test_stop (&places, &dealer);

    herd_places_options_t single = test->legacy;
    single.concurrency = 1;
    herd_standin_reset (test->standin);
    herd_standin_mode (test->standin, "latency_ms=200");
    places = s_test_actor (test, &single, test->key, &dealer);
    s_send_nearby (test, dealer, "q1", "+5", "+0", "1", "5");
    s_send_nearby (test, dealer, "q2", "+1", "+0", "1", "5");
    s_expect_ok (dealer, "q1", 2);
    s_expect_ok (dealer, "q2", 2);
    HERD_CHECK_INT (herd_standin_count (test->standin, "connections"), 1);
    s_test_stop (&places, &dealer);
}

//  Places API (New): a POST with the key and the field mask in headers,
//  never in the URL; the answer translated into the legacy shape; {} is
//  ZERO_RESULTS
static void
s_test_new_ok (s_test_t *test, herd_places_options_t *options)
{
    herd_standin_reset (test->standin);
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, options, test->key, &dealer);
    s_send_nearby (test, dealer, "n1", "+1.0", "-0", "1.5", "2");
    s_reply_t reply = s_recv_reply (dealer);
    HERD_CHECK_STR (reply.status, HERD_MSG_OK);
    HERD_CHECK_CONTAINS (reply.json, "{\n   \"html_attributions\" : [],\n   \"results\" : [\n"
                                     "      {\n         \"business_status\" : \"OPERATIONAL\",\n");
    HERD_CHECK_CONTAINS (reply.json, "\n   ],\n   \"status\" : \"OK\"\n}");
    cJSON *root = cJSON_Parse (reply.json);
    cJSON *first = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "results"), 0);
    HERD_CHECK_INT (cJSON_GetArraySize (cJSON_GetObjectItem (root, "results")), 2);
    HERD_CHECK (strncmp (cJSON_GetStringValue (cJSON_GetObjectItem (first, "place_id")), "ChIJ", 4)
                == 0);
    HERD_CHECK (cJSON_GetStringValue (cJSON_GetObjectItem (first, "vicinity")));
    HERD_CHECK (cJSON_GetObjectItem (first, "rating") == NULL);     //  not in the Pro mask
    cJSON_Delete (root);
    s_reply_free (&reply);

    cJSON *stats = herd_standin_get (test->standin, "/_standin/stats");
    HERD_CHECK_INT (cJSON_GetNumberValue (cJSON_GetObjectItem (
                        cJSON_GetObjectItem (stats, "requests_by_path"), HERD_GOOGLE_NEW_PATH)),
                    1);
    HERD_CHECK (cJSON_IsFalse (
        cJSON_GetObjectItem (cJSON_GetObjectItem (stats, "last_query"), "key_present")));
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetArrayItem (
                        cJSON_GetObjectItem (stats, "keys_seen"), 0)),
                    S_TEST_KEY);
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (stats, "last_field_mask")),
                    HERD_GOOGLE_MASK_PRO);
    cJSON *headers = cJSON_GetObjectItem (stats, "last_headers");
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (headers, "Content-Type")),
                    "application/json");
    char *body = cJSON_PrintUnformatted (cJSON_GetObjectItem (stats, "last_body"));
    HERD_CHECK_STR (body, "{\"maxResultCount\":2,\"locationRestriction\":{\"circle\":"
                          "{\"center\":{\"latitude\":1,\"longitude\":0},\"radius\":1500}}}");
    free (body);
    cJSON_Delete (stats);

    herd_standin_mode (test->standin, "mode=zero");
    s_send_nearby (test, dealer, "n10", "+10", "+0", "1", "5");
    s_expect_ok (dealer, "n10", 0);
    s_test_stop (&places, &dealer);
}

//  New API errors: the legacy status, Google's message; 4xx never retried,
//  nor a 429 whose RetryInfo (30 s) does not fit the deadline; 5xx retried
//  twice with backoff inside the deadline
static void
s_test_new_errors (s_test_t *test, herd_places_options_t *options)
{
    herd_standin_reset (test->standin);
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, options, test->key, &dealer);
    const char *cases[][4] = {
        //  mode, reqid, legacy status, message
        {"request_denied", "n6", "REQUEST_DENIED", "Places API (New) has not been used"},
        {"invalid_request", "n14", "INVALID_REQUEST", "Invalid request: "},
        {"invalid_key", "n13", "REQUEST_DENIED", "API key not valid."},
        {"quota_retry", "n12", "OVER_QUERY_LIMIT", "Quota exceeded for quota metric"},
        {"malformed", "n4", "UNKNOWN_ERROR", "herd: Places API sent invalid JSON"},
    };
    int64_t started = zclock_usecs ();
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        char *query = zsys_sprintf ("mode=%s", cases[i][0]);
        herd_standin_mode (test->standin, query);
        zstr_free (&query);
        s_send_nearby (test, dealer, cases[i][1], "+1", "+0", "1", "5");
        s_expect_error (dealer, cases[i][1], cases[i][2], cases[i][3]);
    }
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 5);
    HERD_CHECK ((zclock_usecs () - started) / 1000 < 3000);           //  not 30 s

    herd_standin_mode (test->standin, "mode=http500");
    started = zclock_usecs ();
    s_send_nearby (test, dealer, "n3", "+3", "+0", "1", "5");
    s_expect_error (dealer, "n3", "UNKNOWN_ERROR", "Internal error encountered.");
    int64_t elapsed_ms = (zclock_usecs () - started) / 1000;
    if (test->verbose)
        printf ("three attempts answered after %" PRId64 " ms\n", elapsed_ms);
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 5 + 3);
    HERD_CHECK_INT (elapsed_ms >= 625 && elapsed_ms < 5000 ? 0 : elapsed_ms, 0);
    s_test_stop (&places, &dealer);
}

//  Retried failures then an answer: a 500, a connection broken mid-body.
//  Identical requests in flight share one HTTP request; another bound is
//  another query
static void
s_test_new_retry_share (s_test_t *test, herd_places_options_t *options)
{
    herd_standin_reset (test->standin);
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, options, test->key, &dealer);
    herd_standin_mode (test->standin, "mode=flaky500&failures=1");
    s_send_nearby (test, dealer, "n11", "+11", "+0", "1", "5");
    s_expect_ok (dealer, "n11", 2);
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 2);
    herd_standin_mode (test->standin, "mode=flaky_broken&failures=1");
    s_send_nearby (test, dealer, "n16", "+16", "+0", "1", "5");
    s_expect_ok (dealer, "n16", 2);
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 4);

    herd_standin_mode (test->standin, "mode=ok&latency_ms=200");
    s_send_nearby (test, dealer, "s1", "+5", "+0", "2", "3");
    s_send_nearby (test, dealer, "s2", "+5.00", "+0.0", "2.0", "3");
    s_send_nearby (test, dealer, "s3", "+5", "+0", "2", "2");
    char *bodies[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        s_reply_t reply = s_recv_reply (dealer);
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
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 4 + 2);
    s_test_stop (&places, &dealer);
}

//  The cache: answers kept (errors are not), the oldest evicted when full,
//  none after the TTL; enterprise fields ask more
static void
s_test_cache (s_test_t *test, herd_places_options_t *options)
{
    herd_standin_reset (test->standin);
    herd_standin_mode (test->standin, "lat=6&mode=request_denied");
    options->retries = 0;
    options->cache_ttl_ms = 60000;
    options->cache_max = 2;
    options->enterprise_fields = true;
    zsock_t *dealer;
    zactor_t *places = s_test_actor (test, options, test->key, &dealer);
    const char *steps[][3] = {
        //  reqid, latitude, HTTP requests it makes
        {"k1", "+1", "1"}, {"k1", "+1", "0"}, {"k2", "+20", "1"}, {"k1", "+1", "0"},
        {"k3", "+21", "1"}, {"k1", "+1", "1"}, {"k2", "+20", "1"}, {"k6", "+6", "1"},
        {"k6", "+6", "1"},
    };
    char *cached = NULL;
    for (size_t i = 0; i < sizeof (steps) / sizeof (steps[0]); i++) {
        int seen = herd_standin_count (test->standin, "requests");
        s_send_nearby (test, dealer, steps[i][0], steps[i][1], "+0", "1", "1");
        s_reply_t reply = s_recv_reply (dealer);
        HERD_CHECK_STR (reply.reqid, steps[i][0]);
        if (streq (reply.reqid, "k1")) {
            if (!cached)
                cached = strdup (reply.json);
            HERD_CHECK_STR (reply.json, cached);
            HERD_CHECK_CONTAINS (reply.json, "\"user_ratings_total\" : ");
        }
        s_reply_free (&reply);
        HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), seen + atoi (steps[i][2]));
    }
    free (cached);
    char *mask = herd_standin_stat (test->standin, NULL, "last_field_mask");
    HERD_CHECK_STR (mask, HERD_GOOGLE_MASK_ENTERPRISE);
    zstr_free (&mask);
    s_test_stop (&places, &dealer);

    options->cache_ttl_ms = 100;
    places = s_test_actor (test, options, test->key, &dealer);
    int seen = herd_standin_count (test->standin, "requests");
    for (int i = 0; i < 3; i++) {
        if (i == 2)
            zclock_sleep (150);
        s_send_nearby (test, dealer, "t1", "+1", "+0", "1", "1");
        s_expect_ok (dealer, "t1", 1);
    }
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), seen + 2);
    s_test_stop (&places, &dealer);
}

//  A fresh stand-in, and an actor on the legacy API that retries once
//  within a 4 s deadline; options must outlive the actor.
static zactor_t *
s_test_retrying_actor (s_test_t *test, herd_places_options_t *options, zsock_t **dealer_p)
{
    herd_standin_reset (test->standin);
    *options = test->legacy;
    options->retries = 1;
    options->timeout_ms = 4000;
    return s_test_actor (test, options, test->key, dealer_p);
}

//  Legacy retries: OVER_QUERY_LIMIT and HTTP 500 are retried, Google's own
//  REQUEST_DENIED is not. Nothing listening: ERR at once. A set-up failure:
//  the second signal is not 0, the actor still stops
static void
s_test_legacy_retries (s_test_t *test)
{
    herd_places_options_t options;
    zsock_t *dealer;
    zactor_t *places = s_test_retrying_actor (test, &options, &dealer);
    herd_standin_mode (test->standin, "mode=over_query_limit");
    s_send_nearby (test, dealer, "l15", "+15", "+0", "1", "5");
    s_expect_error (dealer, "l15", "OVER_QUERY_LIMIT", "You have exceeded your daily");
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 2);
    herd_standin_mode (test->standin, "mode=invalid_key");
    s_send_nearby (test, dealer, "l7", "+7", "+0", "1", "5");
    s_expect_error (dealer, "l7", "REQUEST_DENIED", "The provided API key is invalid.");
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 3);
    herd_standin_mode (test->standin, "mode=flaky500&failures=1");
    s_send_nearby (test, dealer, "l11", "+11", "+0", "1", "5");
    s_expect_ok (dealer, "l11", 2);
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 5);
    s_test_stop (&places, &dealer);

    int closed = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t length = sizeof (address);
    HERD_CHECK_INT (bind (closed, (struct sockaddr *) &address, sizeof (address)), 0);
    HERD_CHECK_INT (getsockname (closed, (struct sockaddr *) &address, &length), 0);
    options = test->legacy;
    options.url = zsys_sprintf ("http://127.0.0.1:%d/json", ntohs (address.sin_port));
    places = s_test_actor (test, &options, test->key, &dealer);
    s_send_nearby (test, dealer, "c1", "+1", "+0", "1", "5");
    s_expect_error (dealer, "c1", "UNKNOWN_ERROR", "herd: could not reach the Places API: ");
    s_test_stop (&places, &dealer);
    close (closed);
    zstr_free (&options.url);

    herd_places_args_t bad_args = {&test->legacy, "nonsense://nowhere", NULL, test->key,
                                   test->log, NULL};
    places = zactor_new (herd_places_actor, &bad_args);
    HERD_CHECK (places);
    HERD_CHECK (zsock_wait (places) != 0);
    zactor_destroy (&places);
}

//  curl's memory, with a fault to inject: while s_curl_refuse is set, the
//  allocation of an easy handle (its size learnt from curl_easy_init in
//  s_curl_learn) fails, so curl_easy_init does.
static size_t s_curl_easy_size;
static atomic_bool s_curl_learning;
static atomic_bool s_curl_refuse;

static void *
s_curl_calloc (size_t count, size_t size)
{
    if (atomic_load (&s_curl_learning) && !s_curl_easy_size)
        s_curl_easy_size = count * size;    //  curl_easy_init's first: the handle
    else
    if (atomic_load (&s_curl_refuse) && count * size == s_curl_easy_size)
        return NULL;
    return calloc (count, size);
}

//  Give curl the allocator above, before anything else uses curl: undo the
//  runner's herd_places_global_init (this test's process uses curl no
//  other way), and initialise again.
static void
s_curl_learn (void)
{
    curl_global_cleanup ();
    HERD_CHECK_INT (curl_global_init_mem (CURL_GLOBAL_DEFAULT, malloc, free, realloc, strdup,
                                          s_curl_calloc),
                    CURLE_OK);
    atomic_store (&s_curl_learning, true);
    CURL *easy = curl_easy_init ();
    atomic_store (&s_curl_learning, false);
    HERD_CHECK (easy && s_curl_easy_size > 0);
    curl_easy_cleanup (easy);
}

//  Fetches answered while the retry loop walks the list of fetches: two
//  fetches wait to retry, curl refuses both retries, each is answered and
//  forgotten in the walk, and the walk goes on to the other
static void
s_test_retry_refused (s_test_t *test)
{
    herd_places_options_t options;
    zsock_t *dealer;
    zactor_t *places = s_test_retrying_actor (test, &options, &dealer);
    herd_standin_mode (test->standin, "mode=flaky500&failures=2");
    s_send_nearby (test, dealer, "r1", "+21", "+0", "1", "5");
    s_send_nearby (test, dealer, "r2", "+22", "+0", "1", "5");
    //  Both first attempts seen (retries come 250 ms or more later)
    int64_t until = zclock_mono () + 5000;
    while (herd_standin_count (test->standin, "requests") < 2 && zclock_mono () < until)
        zclock_sleep (5);
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 2);
    atomic_store (&s_curl_refuse, true);
    bool seen[2] = {false, false};
    for (int i = 0; i < 2; i++) {
        s_reply_t reply = s_recv_reply (dealer);
        HERD_CHECK_STR (reply.status, HERD_MSG_ERR);
        HERD_CHECK_CONTAINS (reply.json, "herd: could not start the Places request");
        int index = reply.reqid[1] - '1';
        HERD_CHECK (index >= 0 && index < 2 && !seen[index]);
        seen[index] = true;
        s_reply_free (&reply);
    }
    atomic_store (&s_curl_refuse, false);
    HERD_CHECK_INT (herd_standin_count (test->standin, "requests"), 2);
    s_test_stop (&places, &dealer);
}

//  The log: one line a request, with the reqid in hex; never the key
static void
s_test_log (s_test_t *test)
{
    herd_log_destroy (&test->log);
    FILE *file = fopen (test->log_path, "r");
    HERD_CHECK (file);
    size_t capacity = (size_t) 1024 * 1024;
    char *text = (char *) zmalloc (capacity);
    size_t size = fread (text, 1, capacity - 1, file);
    text[size] = 0;
    fclose (file);
    if (test->verbose)
        printf ("%s", text);
    HERD_CHECK_INT (s_count_lines (text, " places req="), test->requests);
    HERD_CHECK (strstr (text, "s3cr") == NULL);
    HERD_CHECK (strstr (text, S_TEST_KEY_ESCAPED) == NULL);
    HERD_CHECK (strstr (text, "X-Goog") == NULL);
    const char *expected[] = {
        " places req=7231 reply=OK status=OK results=2 http=200 curl=0 ms=",
        "&radius=10000&key=<redacted>",
        "reply=ERR status=UNKNOWN_ERROR results=0 http=500 curl=0",
        "reply=ERR status=REQUEST_DENIED results=0 http=403",
        "curl=28 ms=",
        "req=6c656674 reply=- status=CANCELLED",
        "stopped with 1 requests in flight, not answered",
        "cannot start: cannot bind nonsense://nowhere",
        " flavour=new url=http://127.0.0.1:",
        " fields=pro timeout_ms=4000 ",
        " fields=enterprise ",
        " attempt=1/3 waiting=1 status=UNKNOWN_ERROR http=500 curl=0 ms=",
        "error=\"Internal error encountered.\" -> retry in ",
        " attempt=3/3 waiting=1 status=UNKNOWN_ERROR http=500 ",
        "-> answered (no retries left)",
        "status=REQUEST_DENIED http=403 curl=0 ",
        "-> answered (not retryable)",
        "-> answered (a retry in 30000 ms would not end before the deadline, ",
        " http=200 curl=18 ms=",
        "-> answered (done)",
        " attempts=2 url=http://127.0.0.1:",
        " req=7332 reply=OK status=OK results=3 http=200 curl=0 ms=",
        " attempts=1 shared url=http://127.0.0.1:",
        " req=6b31 reply=OK status=OK results=1 http=0 curl=0 ms=",
        " cache hit age_ms=",
    };
    for (size_t i = 0; i < sizeof (expected) / sizeof (expected[0]); i++)
        HERD_CHECK_CONTAINS (text, expected[i]);
    HERD_CHECK_INT (s_count_lines (text, " cache hit "), 3);
    HERD_CHECK_INT (s_count_lines (text, " shared "), 1);
    free (text);
}

void
herd_places_test (bool verbose)
{
    printf (" * herd_places: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    s_curl_learn ();
    s_test_t test = {0};
    test.verbose = verbose;
    test.key = S_TEST_KEY;
    test.standin = herd_standin_new ();
    snprintf (test.directory, sizeof (test.directory), "/tmp/herd-places-test-XXXXXX");
    HERD_CHECK (mkdtemp (test.directory));
    test.log_path = zsys_sprintf ("%s/places.log", test.directory);
    test.log = herd_log_new (test.log_path, "Test");
    HERD_CHECK (test.log);
    char flavour[] = "legacy", key_env[] = "HERD_TEST_KEY";
    char *legacy_url = strdup (herd_standin_legacy_url (test.standin));
    char *new_url = strdup (herd_standin_new_url (test.standin));
    HERD_CHECK (legacy_url && new_url);
    herd_places_options_t legacy = {flavour, legacy_url, key_env, 500, 500, 8, 0, false, 0, 10000};
    test.legacy = legacy;
    s_test_legacy_ok (&test);
    s_test_legacy_errors (&test);
    s_test_independent (&test);
    s_test_keyless_single (&test);

    char flavour_new[] = "new";
    herd_places_options_t new_options = {flavour_new, new_url, key_env, 4000, 500, 8, 2, false, 0,
                                         10000};
    s_test_new_ok (&test, &new_options);
    s_test_new_errors (&test, &new_options);
    s_test_new_retry_share (&test, &new_options);
    s_test_cache (&test, &new_options);
    s_test_legacy_retries (&test);
    s_test_retry_refused (&test);
    s_test_log (&test);

    unlink (test.log_path);
    rmdir (test.directory);
    zstr_free (&test.log_path);
    free (legacy_url);
    free (new_url);
    herd_standin_destroy (&test.standin);
    //  @end

    printf ("OK\n");
}
