//  herd_placesbody.h - shaping a Places JSON body for a WHATSAT answer.
//
//  Pure functions on bytes, no I/O: cut the top-level "results" array to a
//  bound without re-serialising (Google's own bytes and layout are kept),
//  drop blank lines and trailing newlines, build the legacy-shaped error
//  body used when the Places API could not answer. Places API (New)
//  answers are translated by herd_placesnew.h; what a New error means is
//  herd_google.h's.

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

//  Parse size bytes as one JSON value with nothing but white space after
//  it: NULL if they are not, or hold a control byte JSON does not allow
//  there (a NUL among them). Caller frees with cJSON_Delete.
struct cJSON *
    herd_placesbody_parse (const char *body, size_t size);

//  Length of the valid UTF-8 sequence at text (up to size bytes, at least
//  1), or 0 if there is none: no overlong forms, no surrogates, nothing past
//  U+10FFFF.
size_t
    herd_placesbody_utf8_length (const unsigned char *text, size_t size);

//  Self test of this class.
void
    herd_placesbody_test (bool verbose);

#endif
