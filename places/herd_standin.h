//  herd_standin.h - tests/places_standin.py, driven from a C self-test.
//
//  Test code, linked into herd_selftest only. Starts the project's stand-in
//  for Google as the integration tests start it (a free port, learnt from
//  its port file) and steers it through its control paths (/_standin/...):
//  modes, per latitude if asked (a hung, a slow and a fast request at once),
//  counters and what it saw last. The script is found through HERD_STANDIN,
//  else from the current directory (make test runs from the repository
//  root), else from the binary (build/MODE/bin/herd_selftest); Python is
//  HERD_PYTHON, else /usr/bin/python3. The stand-in dies with us
//  (PDEATHSIG), even when a check aborts. Every method checks (HERD_CHECK)
//  rather than return an error: a test cannot go on without its stand-in.

#ifndef HERD_STANDIN_H_INCLUDED
#define HERD_STANDIN_H_INCLUDED

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct _herd_standin_t herd_standin_t;

//  Start the stand-in on a free port and wait (10 s at most) for its port.
herd_standin_t *
    herd_standin_new (void);

//  Stop the stand-in (SIGTERM, it ends at once) and wait for it; nulls the
//  caller's pointer.
void
    herd_standin_destroy (herd_standin_t **self_p);

//  Its legacy Nearby Search URL (http://127.0.0.1:PORT + the legacy path).
const char *
    herd_standin_legacy_url (herd_standin_t *self);

//  Its Places API (New) URL (http://127.0.0.1:PORT + the New path).
const char *
    herd_standin_new_url (herd_standin_t *self);

//  GET a control path (/_standin/...), check it says 200, return its JSON.
//  Caller frees with cJSON_Delete.
cJSON *
    herd_standin_get (herd_standin_t *self, const char *path);

//  Set a mode: query as /_standin/mode takes it ("mode=hang&lat=2").
void
    herd_standin_mode (herd_standin_t *self, const char *query);

//  Forget modes and counters between tests.
void
    herd_standin_reset (herd_standin_t *self);

//  A count from the stand-in: "requests" (its stats) or "connections".
int
    herd_standin_count (herd_standin_t *self, const char *name);

//  A string from the stand-in's stats: a top-level one, or one of an
//  object member ("last_query", "location"). Caller frees; NULL if absent.
char *
    herd_standin_stat (herd_standin_t *self, const char *object, const char *name);

//  Self test of this class.
void
    herd_standin_test (bool verbose);

#endif
