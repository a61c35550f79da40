//  herd_places.h - the places worker: Places API queries behind a ROUTER.
//
//  An actor that binds a ROUTER socket at the endpoint it is given and
//  answers NEARBY requests (common/herd_msg.h) with legacy-shaped Places
//  JSON, using the libcurl multi interface: all requests in flight at once,
//  kept-alive connections, one deadline per request. One slow query never
//  delays another. options->flavour picks the API: "legacy" Nearby Search
//  (GET, key in the query) or "new", Places API (New) searchNearby (POST,
//  key in X-Goog-Api-Key, X-Goog-FieldMask), whose answers and errors are
//  translated into the legacy shape (herd_placesbody.h); "auto" is legacy
//  until Google refuses the key for the legacy API, then new for good (the
//  New URL derived from the legacy one, the refused query asked again at
//  once inside its deadline, the switch logged once). Identical requests
//  in flight share one HTTP request; an optional cache answers repeats;
//  retryable failures are retried with jittered backoff inside the
//  deadline. Each attempt and each request is logged with its latency,
//  HTTP status and result count; the API key never reaches the log.

#ifndef HERD_PLACES_H_INCLUDED
#define HERD_PLACES_H_INCLUDED

#include <czmq.h>

#include "../common/herd_config.h"
#include "../common/herd_log.h"

typedef struct {
    const herd_places_options_t *options;   //  from the config
    const char *endpoint;                   //  ROUTER bind endpoint
    const char *url;                        //  overrides options->url if not NULL
    const char *key;                        //  API key, may be NULL or ""
    herd_log_t *log;                        //  shared log, not owned
    const char *monitor;                    //  the node's monitor to report to, or NULL
} herd_places_args_t;

//  The actor: zactor_new (herd_places_actor, &args). args and everything it
//  points to must live until the actor is destroyed. Like every herd actor
//  it signals twice: zactor_new consumes the first; then zsock_wait (actor)
//  returns 0 when it is serving or non-zero when set-up failed (bind, curl; the
//  reason is logged), after which the caller destroys it.
void
    herd_places_actor (zsock_t *pipe, void *args);

//  Initialise libcurl (and OpenSSL under it) for the process. Call it from
//  the main thread before the first actor starts: state OpenSSL creates in
//  the thread that initialises it is freed at exit only for the main thread.
//  Returns 0, or -1 if libcurl could not be initialised. Idempotent.
int
    herd_places_global_init (void);

//  Self test of this class: in herd_places_selftest.c, which only
//  herd_selftest links (it starts tests/places_standin.py).
void
    herd_places_test (bool verbose);

#endif
