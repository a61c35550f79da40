//  herd_google.c - Google's rules: what a Places answer means to the herd.
//
//  Kept apart from herd_placesbody.c, which only shapes bytes (and is
//  fuzzed as such), and from the places worker, which only moves them: the
//  decisions about Google's answers (answer or retry, legacy or New, when
//  auto switches) are here, in one place, tested by tables.

#include "herd_google.h"
#include "herd_placesbody.h"
#include "herd_placesnew.h"
#include "../common/herd_check.h"

#include <assert.h>
#include <math.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LEGACY_HOST "maps.googleapis.com"
#define S_NEW_HOST    "places.googleapis.com"

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

//  True for the HTTP statuses worth another try.
static bool
s_http_retryable (long http)
{
    return http >= 500 || http == 429;
}

static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    assert (copy);
    return copy;
}

void
herd_google_fail (herd_google_outcome_t *outcome, const char *message, bool retryable)
{
    outcome->ok = false;
    outcome->results = 0;
    outcome->body = herd_placesbody_error ("UNKNOWN_ERROR", message);
    outcome->status = s_strdup ("UNKNOWN_ERROR");
    outcome->error = s_strdup (message);
    outcome->retryable = retryable;
}

void
herd_google_outcome_free (herd_google_outcome_t *self)
{
    free (self->body);
    free (self->status);
    free (self->error);
    memset (self, 0, sizeof (*self));
}

//  The string member name of object, or NULL if absent or not a string.
static const char *
s_member_string (const cJSON *object, const char *name)
{
    return cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (object, name));
}

//  The legacy status for an HTTP status without a google.rpc.Status.
static const char *
s_status_for_http (long http)
{
    if (http == 400)
        return "INVALID_REQUEST";
    if (http == 401 || http == 403)
        return "REQUEST_DENIED";
    if (http == 429)
        return "OVER_QUERY_LIMIT";
    return "UNKNOWN_ERROR";
}

//  The legacy status for a google.rpc.Code name, or NULL if unknown.
static const char *
s_status_for_code (const char *code)
{
    static const char *const map[][2] = {
        {"PERMISSION_DENIED", "REQUEST_DENIED"},   {"UNAUTHENTICATED", "REQUEST_DENIED"},
        {"RESOURCE_EXHAUSTED", "OVER_QUERY_LIMIT"}, {"INVALID_ARGUMENT", "INVALID_REQUEST"},
        {"FAILED_PRECONDITION", "INVALID_REQUEST"}, {"OUT_OF_RANGE", "INVALID_REQUEST"},
        {"NOT_FOUND", "INVALID_REQUEST"},
    };
    for (size_t i = 0; code && i < sizeof (map) / sizeof (map[0]); i++)
        if (strcmp (code, map[i][0]) == 0)
            return map[i][1];
    return code ? "UNKNOWN_ERROR" : NULL;
}

//  True if a details entry is of the given google.rpc type.
static bool
s_detail_is (const cJSON *detail, const char *type)
{
    const char *name = s_member_string (detail, "@type");
    if (!name)
        return false;
    size_t length = strlen (name);
    size_t suffix = strlen (type);
    return length >= suffix && strcmp (name + length - suffix, type) == 0
           && (length == suffix || name[length - suffix - 1] == '/');
}

//  Milliseconds of a google.protobuf.Duration in JSON ("41s", "0.5s"), or
//  -1 if it is not one.
static long
s_duration_ms (const char *text)
{
    if (!text || !(*text >= '0' && *text <= '9'))
        return -1;
    char *end = NULL;
    double seconds = strtod (text, &end);
    if (!end || strcmp (end, "s") != 0 || !isfinite (seconds) || seconds < 0 || seconds > 1e6)
        return -1;
    return (long) (seconds * 1000.0 + 0.5);
}

int
herd_google_new_error (long http, const char *body, size_t size, const char **status_p,
                       char **message_p, long *retry_delay_ms_p)
{
    *status_p = s_status_for_http (http);
    *message_p = NULL;
    *retry_delay_ms_p = -1;
    cJSON *root = herd_placesbody_parse (body, size);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive (root, "error");
    if (!cJSON_IsObject (root) || !cJSON_IsObject (error)) {
        cJSON_Delete (root);
        return -1;
    }
    const char *message = s_member_string (error, "message");
    if (message)
        *message_p = strdup (message);
    const char *status = s_status_for_code (s_member_string (error, "status"));
    if (status)
        *status_p = status;
    const cJSON *detail;
    cJSON_ArrayForEach (detail, cJSON_GetObjectItemCaseSensitive (error, "details")) {
        const char *reason = s_member_string (detail, "reason");
        if (s_detail_is (detail, "google.rpc.ErrorInfo") && reason
            && strcmp (reason, "API_KEY_INVALID") == 0)
            *status_p = "REQUEST_DENIED";
        if (s_detail_is (detail, "google.rpc.RetryInfo"))
            *retry_delay_ms_p = s_duration_ms (s_member_string (detail, "retryDelay"));
    }
    cJSON_Delete (root);
    return 0;
}

//  Places API (New): 200 with places, or a google.rpc.Status.
static void
s_judge_new (long http, const char *body, size_t size, int bound,
             herd_google_outcome_t *outcome)
{
    const char *status = NULL;
    char *google_message = NULL;
    int is_status = herd_google_new_error (http, body, size, &status, &google_message,
                                           &outcome->retry_delay_ms);
    if (http == 200 && is_status != 0) {
        outcome->body = herd_placesnew_to_legacy (body, size, bound, &outcome->results);
        if (outcome->body) {
            outcome->ok = true;
            outcome->status = s_strdup (outcome->results ? "OK" : "ZERO_RESULTS");
        }
        else
            herd_google_fail (outcome, "herd: Places API sent invalid JSON", false);
    }
    else {
        //  The legacy status for Google's, or for the HTTP status
        char fallback[64];
        snprintf (fallback, sizeof (fallback), "herd: Places API answered HTTP %ld", http);
        const char *text = google_message ? google_message : fallback;
        outcome->body = herd_placesbody_error (status, text);
        outcome->status = s_strdup (status);
        outcome->error = s_strdup (text);
        outcome->retryable = s_http_retryable (http);
    }
    free (google_message);
}

//  Legacy: Google's status decides, whatever the HTTP status.
static void
s_judge_legacy (long http, const char *body, size_t size, int bound,
                herd_google_outcome_t *outcome)
{
    char *status = NULL;
    int results = 0;
    char *shaped = herd_placesbody_shape (body, size, bound, &status, &results);
    bool success = status && (strcmp (status, "OK") == 0 || strcmp (status, "ZERO_RESULTS") == 0);
    if (shaped && success && http == 200) {
        outcome->ok = true;
        outcome->body = shaped;
        outcome->status = status;
        outcome->results = results;
        return;
    }
    if (shaped && status && !success) {
        //  Google's own error body goes back as it is (REQUEST_DENIED comes
        //  with 200 or 403)
        cJSON *root = cJSON_ParseWithLength (body, size);
        const char *text = cJSON_GetStringValue (cJSON_GetObjectItem (root, "error_message"));
        if (text)
            outcome->error = s_strdup (text);
        outcome->legacy_refused = strcmp (status, "REQUEST_DENIED") == 0
                                  && s_is_legacy_refusal (text);
        cJSON_Delete (root);
        outcome->retryable = strcmp (status, "OVER_QUERY_LIMIT") == 0
                             || strcmp (status, "UNKNOWN_ERROR") == 0 || s_http_retryable (http);
        outcome->body = shaped;
        outcome->status = status;
        return;
    }
    char message[64];
    if (http != 200)
        snprintf (message, sizeof (message), "herd: Places API answered HTTP %ld", http);
    else
        snprintf (message, sizeof (message), "herd: Places API %s",
                  shaped ? "answer has no status" : "sent invalid JSON");
    herd_google_fail (outcome, message, http != 200 && s_http_retryable (http));
    free (shaped);
    free (status);
}

void
herd_google_judge (bool is_new, long http, const char *body, size_t size, int bound,
                   herd_google_outcome_t *outcome)
{
    outcome->retry_delay_ms = -1;
    if (is_new)
        s_judge_new (http, body, size, bound, outcome);
    else
        s_judge_legacy (http, body, size, bound, outcome);
}

char *
herd_google_new_url (const char *legacy)
{
    const char *host = strstr (legacy, "://");
    host = host ? host + 3 : legacy;
    size_t host_size = strcspn (host, "/?#");
    const char *path = host + host_size;
    size_t path_size = strcspn (path, "?#");
    size_t suffix_size = strlen (HERD_GOOGLE_LEGACY_PATH);
    if (path_size >= suffix_size
        && memcmp (path + path_size - suffix_size, HERD_GOOGLE_LEGACY_PATH, suffix_size) == 0)
        path_size -= suffix_size;
    else
        path_size = 0;
    bool google = host_size == strlen (S_LEGACY_HOST)
                  && memcmp (host, S_LEGACY_HOST, host_size) == 0;
    size_t size = (size_t) (host - legacy) + host_size + strlen (S_NEW_HOST) + path_size
                  + strlen (HERD_GOOGLE_NEW_PATH) + 1;
    char *url = (char *) malloc (size);
    assert (url);
    snprintf (url, size, "%.*s%.*s%.*s" HERD_GOOGLE_NEW_PATH, (int) (host - legacy), legacy,
              google ? (int) strlen (S_NEW_HOST) : (int) host_size, google ? S_NEW_HOST : host,
              (int) path_size, path);
    return url;
}

//  --------------------------------------------------------------------------
//  What the herd asks Google

//  Metres for the radius parameter, without exponent: an integer when whole,
//  else up to 3 decimals with trailing zeros trimmed ("500", "1234.568").
void
herd_google_format_metres (double km, char *out, size_t size)
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
void
herd_google_format_degrees (double degrees, char *out, size_t size)
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

char *
herd_google_legacy_url (const char *url, const char *lat, const char *lon, const char *metres,
                        const char *key)
{
    //  A '+' in a query is a space: drop it, as the sign is optional
    char separator = strchr (url, '?') ? '&' : '?';
    char *request = NULL;
    int rc = asprintf (&request, "%s%clocation=%s,%s&radius=%s%s%s", url, separator,
                       *lat == '+' ? lat + 1 : lat, *lon == '+' ? lon + 1 : lon, metres,
                       key ? "&key=" : "", key ? key : "");
    assert (rc >= 0 && request);
    return request;
}

char *
herd_google_new_body (int bound, const char *lat, const char *lon, const char *metres)
{
    char *body = NULL;
    int rc = asprintf (&body, "{\"maxResultCount\":%d,\"locationRestriction\":"
                              "{\"circle\":{\"center\":{\"latitude\":%s,"
                              "\"longitude\":%s},\"radius\":%s}}}",
                       bound, lat, lon, metres);
    assert (rc >= 0 && body);
    return body;
}

const char *
herd_google_field_mask (bool enterprise)
{
    return enterprise ? HERD_GOOGLE_MASK_ENTERPRISE : HERD_GOOGLE_MASK_PRO;
}

//  --------------------------------------------------------------------------
//  Self test

#define S_LEGACY_OK                                                                        \
    "{\n   \"html_attributions\" : [],\n   \"results\" : [\n      {\n         \"name\" : "  \
    "\"One\"\n      },\n\n      {\n         \"name\" : \"Two\"\n      }\n   ],\n"           \
    "   \"status\" : \"OK\"\n}\n\n"
#define S_LEGACY_STATUS(status, message)                                                   \
    "{\n   \"error_message\" : \"" message "\",\n   \"html_attributions\" : [],\n"         \
    "   \"results\" : [],\n   \"status\" : \"" status "\"\n}\n"
#define S_REFUSED                                                                          \
    "You're calling a legacy API, which is not enabled for your project. Learn more: "     \
    "https://developers.google.com/maps/legacy#LegacyApiNotActivatedMapError"
#define S_NEW_ERROR(code, status, message, details)                                        \
    "{\"error\": {\"code\": " code ", \"message\": \"" message "\", \"status\": \""        \
    status "\"" details "}}"
#define S_RETRY_30S                                                                        \
    ", \"details\": [{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\", "           \
    "\"retryDelay\": \"30s\"}]"

//  One HTTP answer and what it must come to. The fields are in the order a
//  row reads (what comes in, then what it must give), not the tightest one:
//  it is a test table
typedef struct {    //  NOLINT(clang-analyzer-optin.performance.Padding)
    bool is_new;
    long http;
    const char *body;
    bool ok;
    const char *status;
    int results;                //  with bound 1
    const char *error;          //  contained in outcome.error, or NULL for none
    bool retryable;
    long delay;
    bool refused;
} s_case_t;

static const s_case_t s_cases[] = {
    //  Legacy: the status decides; Google's error bodies go back as they are
    {false, 200, S_LEGACY_OK, true, "OK", 1, NULL, false, -1, false},
    {false, 200, S_LEGACY_STATUS ("ZERO_RESULTS", ""), true, "ZERO_RESULTS", 0, NULL, false, -1,
     false},
    {false, 200, S_LEGACY_STATUS ("REQUEST_DENIED", "The provided API key is invalid."), false,
     "REQUEST_DENIED", 0, "The provided API key is invalid.", false, -1, false},
    {false, 403, S_LEGACY_STATUS ("REQUEST_DENIED", "The provided API key is invalid."), false,
     "REQUEST_DENIED", 0, "The provided API key is invalid.", false, -1, false},
    {false, 200, S_LEGACY_STATUS ("REQUEST_DENIED", S_REFUSED), false, "REQUEST_DENIED", 0,
     "calling a legacy API", false, -1, true},
    {false, 200, S_LEGACY_STATUS ("REQUEST_DENIED", "This API project is not authorized to use "
                                                    "this API."),
     false, "REQUEST_DENIED", 0, "not authorized", false, -1, false},
    {false, 200, S_LEGACY_STATUS ("OVER_QUERY_LIMIT", "You have exceeded your daily quota."),
     false, "OVER_QUERY_LIMIT", 0, "exceeded", true, -1, false},
    {false, 200, S_LEGACY_STATUS ("UNKNOWN_ERROR", "Try again."), false, "UNKNOWN_ERROR", 0,
     "Try again.", true, -1, false},
    {false, 503, S_LEGACY_STATUS ("INVALID_REQUEST", "x"), false, "INVALID_REQUEST", 0, "x", true,
     -1, false},
    {false, 200, "{\"results\": [], \"status\": \"INVALID_REQUEST\"}", false, "INVALID_REQUEST",
     0, NULL, false, -1, false},
    //  Legacy: no usable answer
    {false, 500, "<html>Internal Server Error</html>", false, "UNKNOWN_ERROR", 0,
     "herd: Places API answered HTTP 500", true, -1, false},
    {false, 429, "", false, "UNKNOWN_ERROR", 0, "herd: Places API answered HTTP 429", true, -1,
     false},
    {false, 404, "{}", false, "UNKNOWN_ERROR", 0, "herd: Places API answered HTTP 404", false, -1,
     false},
    {false, 500, S_LEGACY_OK, false, "UNKNOWN_ERROR", 0, "herd: Places API answered HTTP 500",
     true, -1, false},
    {false, 200, "{\"results\" : [ {\"name\" : \"cut", false, "UNKNOWN_ERROR", 0,
     "herd: Places API sent invalid JSON", false, -1, false},
    {false, 200, "[ \"not\", \"an\", \"object\" ]", false, "UNKNOWN_ERROR", 0,
     "herd: Places API sent invalid JSON", false, -1, false},
    {false, 200, "{\"results\": []}", false, "UNKNOWN_ERROR", 0,
     "herd: Places API answer has no status", false, -1, false},
    //  New: places translated, {} is ZERO_RESULTS
    {true, 200, "{\"places\": [{\"id\": \"A\"}, {\"id\": \"B\"}]}", true, "OK", 1, NULL, false,
     -1, false},
    {true, 200, "{}\n", true, "ZERO_RESULTS", 0, NULL, false, -1, false},
    {true, 200, "[1]", false, "UNKNOWN_ERROR", 0, "herd: Places API sent invalid JSON", false,
     -1, false},
    //  New: errors mapped to legacy statuses, 5xx and 429 retried
    {true, 403, S_NEW_ERROR ("403", "PERMISSION_DENIED", "Places API (New) has not been used", ""),
     false, "REQUEST_DENIED", 0, "Places API (New) has not been used", false, -1, false},
    {true, 400, S_NEW_ERROR ("400", "INVALID_ARGUMENT", "Invalid radius.", ""), false,
     "INVALID_REQUEST", 0, "Invalid radius.", false, -1, false},
    {true, 429, S_NEW_ERROR ("429", "RESOURCE_EXHAUSTED", "Quota exceeded.", S_RETRY_30S), false,
     "OVER_QUERY_LIMIT", 0, "Quota exceeded.", true, 30000, false},
    {true, 500, S_NEW_ERROR ("500", "INTERNAL", "Internal error encountered.", ""), false,
     "UNKNOWN_ERROR", 0, "Internal error encountered.", true, -1, false},
    {true, 403, "<html>Forbidden</html>", false, "REQUEST_DENIED", 0,
     "herd: Places API answered HTTP 403", false, -1, false},
    {true, 502, "", false, "UNKNOWN_ERROR", 0, "herd: Places API answered HTTP 502", true, -1,
     false},
    //  A legacy refusal's text from the New API switches nothing
    {true, 403, S_NEW_ERROR ("403", "PERMISSION_DENIED", S_REFUSED, ""), false, "REQUEST_DENIED",
     0, "calling a legacy API", false, -1, false},
};

//  Judge one case and check what it came to.
static void
s_check_case (const s_case_t *test, bool verbose)
{
    herd_google_outcome_t outcome = {0};
    herd_google_judge (test->is_new, test->http, test->body, strlen (test->body), 1, &outcome);
    if (verbose)
        printf ("   %s HTTP %ld -> %s %s results=%d retry=%d delay=%ld refused=%d \"%s\"\n",
                test->is_new ? "new" : "legacy", test->http, outcome.ok ? "OK" : "ERR",
                outcome.status, outcome.results, outcome.retryable, outcome.retry_delay_ms,
                outcome.legacy_refused, outcome.error ? outcome.error : "");
    HERD_CHECK_INT (outcome.ok, test->ok);
    HERD_CHECK_STR (outcome.status, test->status);
    HERD_CHECK_INT (outcome.results, test->results);
    if (test->error)
        HERD_CHECK_CONTAINS (outcome.error, test->error);
    else
        HERD_CHECK (outcome.error == NULL);
    HERD_CHECK_INT (outcome.retryable, test->retryable);
    HERD_CHECK_INT (outcome.retry_delay_ms, test->delay);
    HERD_CHECK_INT (outcome.legacy_refused, test->refused);
    //  The body is always legacy-shaped JSON with the same status
    cJSON *root = cJSON_Parse (outcome.body);
    HERD_CHECK (cJSON_IsObject (root));
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (root, "status")), test->status);
    HERD_CHECK_INT (cJSON_GetArraySize (cJSON_GetObjectItem (root, "results")), test->results);
    HERD_CHECK (strstr (outcome.body, "\n\n") == NULL);
    cJSON_Delete (root);
    herd_google_outcome_free (&outcome);
    HERD_CHECK (outcome.body == NULL && !outcome.ok);
}

//  Places API (New) errors: legacy status, Google's message, RetryInfo
static void
s_test_new_error (bool verbose)
{
    //  Places API (New) errors: legacy status, Google's message, RetryInfo
    struct {
        long http;
        const char *body;
        int rc;
        const char *status;
        const char *message;
        long delay;
    } errors[] = {
        {403, "{\"error\": {\"code\": 403, \"message\": \"Places API (New) has not been used\", "
              "\"status\": \"PERMISSION_DENIED\"}}",
         0, "REQUEST_DENIED", "Places API (New) has not been used", -1},
        {429, "{\"error\": {\"code\": 429, \"message\": \"Quota exceeded.\", \"status\": "
              "\"RESOURCE_EXHAUSTED\", \"details\": [{\"@type\": "
              "\"type.googleapis.com/google.rpc.RetryInfo\", \"retryDelay\": \"41s\"}]}}",
         0, "OVER_QUERY_LIMIT", "Quota exceeded.", 41000},
        {400, "{\"error\": {\"code\": 400, \"message\": \"FieldMask is a required parameter.\", "
              "\"status\": \"INVALID_ARGUMENT\"}}",
         0, "INVALID_REQUEST", "FieldMask is a required parameter.", -1},
        {400, "{\"error\": {\"code\": 400, \"message\": \"API key not valid.\", \"status\": "
              "\"INVALID_ARGUMENT\", \"details\": [{\"@type\": "
              "\"type.googleapis.com/google.rpc.ErrorInfo\", \"reason\": \"API_KEY_INVALID\"}]}}",
         0, "REQUEST_DENIED", "API key not valid.", -1},
        {500, "{\"error\": {\"code\": 500, \"message\": \"Internal error encountered.\", "
              "\"status\": \"INTERNAL\"}}",
         0, "UNKNOWN_ERROR", "Internal error encountered.", -1},
        {503, "{\"error\": {\"code\": 503, \"status\": \"UNAVAILABLE\", \"details\": [{\"@type\": "
              "\"google.rpc.RetryInfo\", \"retryDelay\": \"0.25s\"}]}}",
         0, "UNKNOWN_ERROR", NULL, 250},
        {401, "{\"error\": {\"code\": 401, \"message\": \"m\", \"status\": \"UNAUTHENTICATED\"}}",
         0, "REQUEST_DENIED", "m", -1},
        {404, "{\"error\": {\"message\": \"Not found\", \"status\": \"NOT_FOUND\"}}", 0,
         "INVALID_REQUEST", "Not found", -1},
        {429, "<html>Too many</html>", -1, "OVER_QUERY_LIMIT", NULL, -1},
        {403, "{\"error\": \"denied\"}", -1, "REQUEST_DENIED", NULL, -1},
        {400, "", -1, "INVALID_REQUEST", NULL, -1},
        {502, "{\"error\": {\"details\": [{\"@type\": \"x.RetryInfo\", \"retryDelay\": \"1s\"}]}}",
         0, "UNKNOWN_ERROR", NULL, -1},
        {200, "{\"error\": {\"code\": 429, \"status\": \"RESOURCE_EXHAUSTED\", \"details\": "
              "[{\"@type\": \"google.rpc.RetryInfo\", \"retryDelay\": \"-1s\"}]}}",
         0, "OVER_QUERY_LIMIT", NULL, -1},
    };
    for (size_t i = 0; i < sizeof (errors) / sizeof (errors[0]); i++) {
        const char *status_text = NULL;
        char *message_text = NULL;
        long delay = 0;
        int rc = herd_google_new_error (errors[i].http, errors[i].body, strlen (errors[i].body),
                                        &status_text, &message_text, &delay);
        if (verbose)
            printf ("   HTTP %ld -> %d %s \"%s\" %ld\n", errors[i].http, rc, status_text,
                    message_text ? message_text : "", delay);
        HERD_CHECK_INT (rc, errors[i].rc);
        HERD_CHECK_STR (status_text, errors[i].status);
        if (errors[i].message)
            HERD_CHECK_STR (message_text, errors[i].message);
        else
            HERD_CHECK (message_text == NULL);
        HERD_CHECK_INT (delay, errors[i].delay);
        free (message_text);
    }
}

//  What we ask: the radius in metres and degrees as JSON numbers, the
//  legacy URL and the New body
static void
s_test_request (void)
{
    const struct {
        double value;
        const char *metres, *degrees;
    } cases[] = {
        {10, "10000", "10"},           {0.5, "500", "0.5"},
        {1.23456789, "1234.568", "1.23456789"}, {34.06893, "34068.93", "34.06893"},
        {-1.5, "-1500", "-1.5"},       {0, "0", "0"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        char text[64];
        herd_google_format_metres (cases[i].value, text, sizeof (text));
        HERD_CHECK_STR (text, cases[i].metres);
        herd_google_format_degrees (cases[i].value, text, sizeof (text));
        HERD_CHECK_STR (text, cases[i].degrees);
    }
    char *url = herd_google_legacy_url ("http://h/json", "+1.50", "-2", "1500", "k%2B");
    HERD_CHECK_STR (url, "http://h/json?location=1.50,-2&radius=1500&key=k%2B");
    free (url);
    url = herd_google_legacy_url ("http://h/json?x=1", "0", "+0", "10", NULL);
    HERD_CHECK_STR (url, "http://h/json?x=1&location=0,0&radius=10");
    free (url);
    char *body = herd_google_new_body (20, "34.06893", "-118.4", "1234.568");
    HERD_CHECK_STR (body, "{\"maxResultCount\":20,\"locationRestriction\":{\"circle\":"
                          "{\"center\":{\"latitude\":34.06893,\"longitude\":-118.4},"
                          "\"radius\":1234.568}}}");
    free (body);
    HERD_CHECK (strstr (herd_google_field_mask (true), herd_google_field_mask (false)));
}

void
herd_google_test (bool verbose)
{
    printf (" * herd_google: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    for (size_t i = 0; i < sizeof (s_cases) / sizeof (s_cases[0]); i++)
        s_check_case (&s_cases[i], verbose);

    s_test_new_error (verbose);
    s_test_request ();

    //  Our own failures: UNKNOWN_ERROR with our message
    herd_google_outcome_t outcome = {0};
    herd_google_fail (&outcome, "herd: Places request timed out after 500 ms", false);
    HERD_CHECK (!outcome.ok && !outcome.retryable);
    HERD_CHECK_STR (outcome.status, "UNKNOWN_ERROR");
    HERD_CHECK_STR (outcome.error, "herd: Places request timed out after 500 ms");
    HERD_CHECK_CONTAINS (outcome.body, "\"error_message\" : \"herd: Places request timed out");
    herd_google_outcome_free (&outcome);

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
        char *url_new = herd_google_new_url (derived[i][0]);
        HERD_CHECK_STR (url_new, derived[i][1]);
        free (url_new);
    }
    HERD_CHECK (s_is_legacy_refusal ("... https://developers.google.com/maps/legacy"
                                     "#LegacyApiNotActivatedMapError"));
    HERD_CHECK (!s_is_legacy_refusal (NULL));
    //  @end

    printf ("OK\n");
}
