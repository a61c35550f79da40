//  herd_placesbody.h - shaping a Places JSON body for a WHATSAT answer.
//
//  Pure functions on bytes, no I/O: cut the top-level "results" array to a
//  bound without re-serialising (Google's own bytes and layout are kept),
//  drop blank lines and trailing newlines, build the legacy-shaped error
//  body used when the Places API could not answer, and translate Places API
//  (New) answers into the legacy shape (what a New error means is
//  herd_google.h's).

#ifndef HERD_PLACESBODY_H_INCLUDED
#define HERD_PLACESBODY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

//  Validate body as JSON (cJSON) with a top-level object, and return a new
//  string: the body with its top-level "results" array cut to at most bound
//  elements, every run of newlines (and white space only lines) collapsed to
//  one newline, no leading or trailing newline. Sets *status_p to a new
//  string with the top-level "status" value (or NULL if absent) and
//  *results_p to the number of results kept. Returns NULL when body is not a
//  JSON object. Caller frees the returned strings.
char *
    herd_placesbody_shape (const char *body, size_t size, int bound,
                           char **status_p, int *results_p);

//  A legacy-shaped error body in Google's 3-space layout:
//      {
//         "error_message" : "<message, JSON-escaped>",
//         "html_attributions" : [],
//         "results" : [],
//         "status" : "<status>"
//      }
//  Caller frees.
char *
    herd_placesbody_error (const char *status, const char *message);

//  Translate a Places API (New) searchNearby answer, {"places": [...]} or
//  {} when nothing matched, into a legacy Nearby Search body in Google's
//  3-space layout with sorted keys:
//      {
//         "html_attributions" : [],
//         "results" : [ ...at most bound legacy results... ],
//         "status" : "OK"            (or "ZERO_RESULTS" when there are none)
//      }
//  Field map (README "Places API (New)"): id -> place_id, displayName.text
//  -> name, location -> geometry.location, viewport low/high ->
//  geometry.viewport southwest/northeast, shortFormattedAddress (else
//  formattedAddress) -> vicinity, types, businessStatus -> business_status,
//  plusCode -> plus_code, iconMaskBaseUri, iconBackgroundColor, photos ->
//  photo_reference (the photo's resource name), width, height,
//  html_attributions, priceLevel -> price_level 0..4, rating,
//  userRatingCount -> user_ratings_total, currentOpeningHours.openNow ->
//  opening_hours.open_now. Sets *results_p to the number of results.
//  Returns NULL when body is not a JSON object whose "places", if present,
//  is an array of objects. Caller frees.
char *
    herd_placesbody_from_new (const char *body, size_t size, int bound, int *results_p);

//  Parse size bytes as one JSON value with nothing but white space after
//  it: NULL if they are not, or hold a control byte JSON does not allow
//  there (a NUL among them). Caller frees with cJSON_Delete.
struct cJSON *
    herd_placesbody_parse (const char *body, size_t size);

//  Self test of this class.
void
    herd_placesbody_test (bool verbose);

#endif
