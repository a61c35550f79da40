//  herd_durable.h - a bus's updates made durable: its journal, kept whole,
//  and the STORED acknowledgements its gateway waits for.
//
//  A gateway holds each IAMAT's AT answer until its bus says the update is
//  stored (README.md, "Acknowledged means stored"; herd_msg.h, STORED). The
//  bus holds each UPDATE batch it applied here, and at the end of its loop
//  turn herd_durable_confirm writes the turn's records to the journal (with
//  fsync = always, fdatasyncs it too) and only then answers STORED
//  first..last, one message per run of a gateway's consecutive batches:
//  one report per turn however many updates (group commit). When the
//  journal cannot write nothing is confirmed, and the next turns try again
//  (the journal paces its retries) until it works or the gateway's
//  ack_timeout_ms closes the waiting clients' connections. Without a
//  journal (no node/data), held by the bus is stored.
//
//  The journal is loaded into the table at start. It is rewritten from the
//  table (compacted) when it holds mostly superseded records, or when it
//  had to drop records it could not write: the table has them, so the
//  rewrite makes the journal whole again.

#ifndef HERD_DURABLE_H_INCLUDED
#define HERD_DURABLE_H_INCLUDED

#include <czmq.h>

#include "herd_journal.h"
#include "herd_store.h"
#include "../common/herd_log.h"
#include "../common/herd_report.h"

//  What the bus gives its durability (copied by herd_durable_new).
typedef struct {
    herd_store_t *store;        //  the table: what a compaction rewrites the journal from
    const char *data;           //  the journal's directory (node/data), or NULL: no journal
    bool fsync_always;          //  herd/fsync = always: STORED only after fdatasync
    herd_journal_fn *load;      //  replays each record of the journal into the table, at open
    void *load_arg;
    const char *name;           //  this node, for what is said on stderr
    herd_log_t *log;
    herd_report_t *report;      //  events to the node's monitor, or NULL
} herd_durable_context_t;

typedef struct _herd_durable_t herd_durable_t;

//  Open the journal in context->data, if any, replaying every good record
//  through context->load, and log what was found (records, damage, an
//  older format converted). NULL, logged and said on stderr, when the
//  journal cannot be used.
herd_durable_t *
    herd_durable_new (const herd_durable_context_t *context);

//  Close the journal (a last flush and fdatasync) and forget the batches
//  not yet confirmed; nulls the pointer.
void
    herd_durable_destroy (herd_durable_t **self_p);

//  Journal a record the bus applied (hash: its herd_record_hash, which the
//  table keeps); buffered until herd_durable_confirm. Nothing without a
//  journal.
void
    herd_durable_append (herd_durable_t *self, const char *line, size_t size, uint64_t hash);

//  Hold a gateway's batch, applied: STORED goes back once the journal has
//  it (herd_durable_confirm). Consecutive batches of one gateway share one
//  entry. Takes the routing frame.
void
    herd_durable_hold (herd_durable_t *self, zframe_t **routing_p, uint64_t batch);

//  Store what this loop turn applied and tell each gateway, on router, which
//  of its batches are stored; call at the end of every turn. A compaction
//  finished in the background is swapped in first. Returns the STORED
//  messages sent: 0 when nothing was held, or storing failed (logged once,
//  until it works again, which is logged too).
size_t
    herd_durable_confirm (herd_durable_t *self, zsock_t *router);

//  True while batches wait for STORED or the journal cannot write: the
//  loop should confirm again soon, not only at its next heartbeat.
bool
    herd_durable_waiting (herd_durable_t *self);

//  Rewrite the journal from the table when it holds mostly superseded
//  records, or lost records it could not write; call about once a second.
//  With fsync = everysec the new file's fdatasync runs in the journal's
//  thread and it is swapped in by a later herd_durable_confirm; with always,
//  here.
void
    herd_durable_compact (herd_durable_t *self);

//  The bus stops: records dropped while the journal could not write are in
//  the table, and a last rewrite keeps them, if the disk takes it now.
void
    herd_durable_stop (herd_durable_t *self);

//  Add the counters to a report: journal_records, journal_failing,
//  store_failures_total.
void
    herd_durable_report (herd_durable_t *self, cJSON *stats);

//  Self test of this class.
void
    herd_durable_test (bool verbose);

#endif
