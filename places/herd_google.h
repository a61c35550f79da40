//  herd_google.h - Google's rules: what a Places answer means to the herd.
//
//  Pure functions, no I/O. Given what Google sent back for one attempt (the
//  HTTP status and the body), decide the answer the gateway gets (a
//  legacy-shaped body and status), whether a retry may do better, and
//  whether it is the refusal that makes flavour auto switch to the Places
//  API (New); derive the New URL that goes with a legacy one; and build
//  what is asked (the legacy query, the New body and field mask). The bytes
//  are shaped by herd_placesbody.h and herd_placesnew.h; the transfer itself
//  (time-outs, resets, size) is judged by the places worker.

#ifndef HERD_GOOGLE_H_INCLUDED
#define HERD_GOOGLE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  What one attempt came to.
typedef struct {
    bool ok;                    //  answer RESULT OK
    char *body;                 //  legacy-shaped body to answer with
    char *status;               //  legacy status
    int results;
    char *error;                //  for the log: our message or Google's
    bool retryable;             //  a retry may give a better answer
    long retry_delay_ms;        //  Google's RetryInfo, or -1
    bool legacy_refused;        //  the legacy API is not enabled for the key
} herd_google_outcome_t;

//  Judge an HTTP answer to a Nearby Search, legacy (is_new false) or Places
//  API (New), into outcome (which must be zeroed or freed first):
//  - legacy: Google's status decides. OK or ZERO_RESULTS with HTTP 200 is
//    the answer, cut to bound; any other status goes back as Google's own
//    body, retryable if OVER_QUERY_LIMIT, UNKNOWN_ERROR, HTTP 5xx or 429,
//    and legacy_refused if it is the REQUEST_DENIED of a key whose project
//    has the Places API (New) only. Without a status: UNKNOWN_ERROR.
//  - New: HTTP 200 with places (or {}) is the answer, translated; a
//    google.rpc.Status or another HTTP status maps to the legacy status
//    (herd_google_new_error) with Google's message, retryable if HTTP
//    5xx or 429, with the RetryInfo delay.
//  Every error body is legacy-shaped (herd_placesbody_error when it is ours).
void
    herd_google_judge (bool is_new, long http, const char *body, size_t size, int bound,
                       herd_google_outcome_t *outcome);

//  Read a Places API (New) error answer that came with HTTP status http (a
//  google.rpc.Status: {"error": {"code", "message", "status", "details"}})
//  and set *status_p to the matching legacy status: PERMISSION_DENIED,
//  UNAUTHENTICATED and an invalid key (ErrorInfo API_KEY_INVALID) ->
//  REQUEST_DENIED; RESOURCE_EXHAUSTED -> OVER_QUERY_LIMIT; INVALID_ARGUMENT,
//  FAILED_PRECONDITION, OUT_OF_RANGE, NOT_FOUND -> INVALID_REQUEST; anything
//  else -> UNKNOWN_ERROR. Without a status in the body the HTTP status
//  decides (400 INVALID_REQUEST, 401/403 REQUEST_DENIED, 429
//  OVER_QUERY_LIMIT, else UNKNOWN_ERROR). Sets *message_p to Google's
//  message (a new string, or NULL) and *retry_delay_ms_p to the RetryInfo
//  delay (-1 if none). Returns 0 if body was a google.rpc.Status, else -1.
int
    herd_google_new_error (long http, const char *body, size_t size, const char **status_p,
                           char **message_p, long *retry_delay_ms_p);

//  Make outcome (zeroed or freed first) an UNKNOWN_ERROR with our message
//  ("herd: ..."), for failures before Google answered.
void
    herd_google_fail (herd_google_outcome_t *outcome, const char *message, bool retryable);

//  Free what an outcome holds and zero it.
void
    herd_google_outcome_free (herd_google_outcome_t *self);

//  Flavour auto: the Places API (New) URL that goes with a legacy Nearby
//  Search URL. Google's own host maps.googleapis.com becomes
//  places.googleapis.com; a URL whose path ends in the legacy path (a proxy,
//  the stand-in) keeps what comes before it; any other path is dropped. The
//  query, if any, goes. Returns a new string.
char *
    herd_google_new_url (const char *legacy);

//  The X-Goog-FieldMask of a Places API (New) Nearby Search: the cheapest
//  mask that fills the legacy fields. Every field of the PRO mask bills as
//  Nearby Search Pro; the ENTERPRISE mask adds rating, userRatingCount,
//  priceLevel and currentOpeningHours, which bill as Nearby Search
//  Enterprise (the whole request is billed at its costliest field).
#define HERD_GOOGLE_MASK_PRO                                                                       \
    "places.id,places.displayName,places.location,places.viewport,places.types,"                   \
    "places.businessStatus,places.shortFormattedAddress,places.formattedAddress,"                  \
    "places.plusCode,places.iconMaskBaseUri,places.iconBackgroundColor,places.photos"
#define HERD_GOOGLE_MASK_ENTERPRISE                                                                \
    HERD_GOOGLE_MASK_PRO ",places.rating,places.userRatingCount,places.priceLevel,"                \
                         "places.currentOpeningHours"

//  The mask for options->enterprise_fields.
const char *
    herd_google_field_mask (bool enterprise);

//  Metres for the radius parameter, without exponent: an integer when
//  whole, else up to 3 decimals with trailing zeros trimmed ("500",
//  "1234.568"). Writes at most size bytes to out.
void
    herd_google_format_metres (double km, char *out, size_t size);

//  Degrees as a JSON number: the shortest text that reads back the same
//  ("34.06893" for "+34.068930").
void
    herd_google_format_degrees (double degrees, char *out, size_t size);

//  A legacy Nearby Search request: url with location=LAT,LON&radius=METRES
//  and &key=KEY if key is not NULL (already URL-escaped). lat and lon are
//  the request's own decimal text, a leading '+' dropped (in a query it is
//  a space). Returns a new string.
char *
    herd_google_legacy_url (const char *url, const char *lat, const char *lon, const char *metres,
                            const char *key);

//  The JSON body of a Places API (New) searchNearby: maxResultCount bound,
//  a circle of radius metres around lat, lon (JSON numbers, as formatted
//  above). Returns a new string.
char *
    herd_google_new_body (int bound, const char *lat, const char *lon, const char *metres);

#define HERD_GOOGLE_LEGACY_PATH "/maps/api/place/nearbysearch/json"
#define HERD_GOOGLE_NEW_PATH    "/v1/places:searchNearby"

//  Self test of this class.
void
    herd_google_test (bool verbose);

#endif
