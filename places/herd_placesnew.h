//  herd_placesnew.h - a Places API (New) answer in the legacy shape.
//
//  A pure function on bytes, no I/O, fuzzed (tests/fuzz/fuzz_placesbody.c):
//  the New API's searchNearby answer, parsed with cJSON, becomes the body
//  a legacy Nearby Search would have sent, printed as Google prints it, so
//  a client cannot tell which API answered.

#ifndef HERD_PLACESNEW_H_INCLUDED
#define HERD_PLACESNEW_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

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
    herd_placesnew_to_legacy (const char *body, size_t size, int bound, int *results_p);

//  Self test of this class.
void
    herd_placesnew_test (bool verbose);

#endif
