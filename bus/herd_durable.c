//  herd_durable.c - a bus's updates made durable: journal and STORED (see herd_durable.h).

#include "herd_durable.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"

#include <sys/resource.h>

//  Batches of updates a gateway handed over that wait to be stored: the
//  gateway holds their AT answers until it hears STORED first..last.
typedef struct {
    zframe_t *routing;              //  the gateway's routing id
    uint64_t first, last;           //  batch numbers, consecutive
} s_ack_t;

struct _herd_durable_t {
    herd_durable_context_t context;
    herd_journal_t *journal;        //  or NULL: table in memory only
    s_ack_t *acks;                  //  batches applied, not yet confirmed stored
    size_t ack_count, ack_capacity;
    int64_t store_failed_at;        //  when storing began to fail, ms; 0 = it works
    uint64_t store_failures;        //  journal writes that failed
    size_t compact_before, compact_live;    //  the compaction in progress: records
    int64_t compact_started;                //  ...before and after, its start (ms)
};

//  Open the journal and log what its load found. 0, or -1 (logged).
static int
s_open_journal (herd_durable_t *self)
{
    const herd_durable_context_t *context = &self->context;
    int64_t start = zclock_mono ();
    char error[256] = "";
    herd_journal_stats_t stats;
    self->journal = herd_journal_open (context->data, context->load, context->load_arg, &stats,
                                       error);
    if (!self->journal) {
        herd_log_error (context->log, "bus", "cannot use the journal: %s", error);
        fprintf (stderr, "herd: %s: cannot use the journal: %s\n", context->name, error);
        return -1;
    }
    herd_log_printf (context->log, "bus", "journal loaded: %zu records, %zu clients in %" PRId64
                     " ms%s%s%s", stats.records, herd_store_size (context->store),
                     zclock_mono () - start, stats.upgraded ? " (converted from format " : "",
                     stats.upgraded ? stats.format : "",
                     stats.upgraded ? " to " HERD_JOURNAL_FORMAT ")" : "");
    if (stats.skipped_bytes)
        herd_log_warning (context->log, "bus",
                          "journal damaged: %zu damaged record%s (%zu bytes) skipped, %zu good "
                          "records kept (%s)",
                          stats.skipped, stats.skipped == 1 ? "" : "s", stats.skipped_bytes,
                          stats.records, stats.skip_reason);
    if (stats.discarded)
        herd_log_warning (context->log, "bus",
                          "journal damaged: %zu bytes after %zu good records discarded (%s)",
                          stats.discarded, stats.records, stats.reason);
    return 0;
}

herd_durable_t *
herd_durable_new (const herd_durable_context_t *context)
{
    herd_durable_t *self = (herd_durable_t *) zmalloc (sizeof (herd_durable_t));
    self->context = *context;
    if (context->data && s_open_journal (self) == -1)
        herd_durable_destroy (&self);
    return self;
}

void
herd_durable_destroy (herd_durable_t **self_p)
{
    herd_durable_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->ack_count; i++)
        zframe_destroy (&self->acks[i].routing);
    free (self->acks);
    herd_journal_destroy (&self->journal);
    free (self);
    *self_p = NULL;
}

void
herd_durable_append (herd_durable_t *self, const char *line, size_t size, uint64_t hash)
{
    if (self->journal)
        herd_journal_append_hashed (self->journal, line, size, hash);
}

void
herd_durable_hold (herd_durable_t *self, zframe_t **routing_p, uint64_t batch)
{
    s_ack_t *last = self->ack_count ? &self->acks[self->ack_count - 1] : NULL;
    if (last && last->last + 1 == batch && zframe_eq (last->routing, *routing_p)) {
        last->last = batch;
        zframe_destroy (routing_p);
        return;
    }
    if (self->ack_count == self->ack_capacity) {
        self->ack_capacity = self->ack_capacity ? self->ack_capacity * 2 : 8;
        self->acks = (s_ack_t *) realloc (self->acks, self->ack_capacity * sizeof (s_ack_t));
        assert (self->acks);
    }
    self->acks[self->ack_count++] = (s_ack_t){*routing_p, batch, batch};
    *routing_p = NULL;
}

//  Log a compaction that finished.
static void
s_compacted (herd_durable_t *self)
{
    herd_log_printf (self->context.log, "bus",
                     "journal compacted: %zu records to %zu in %" PRId64 " ms",
                     self->compact_before, self->compact_live,
                     zclock_mono () - self->compact_started);
}

//  Write the journal: what this turn appended is written (and with fsync =
//  always, fdatasync'd), and the journal is whole. 0, or -1 (errno set).
static int
s_write (herd_durable_t *self)
{
    //  A compaction done in the background swaps its file in first: it
    //  may be what makes a lost journal whole again
    int compacted = herd_journal_compact_poll (self->journal, false);
    if (compacted == 1)
        s_compacted (self);
    else
    if (compacted == -1)
        herd_log_warning (self->context.log, "bus", "journal compaction failed: %s",
                          strerror (errno));
    int rc = herd_journal_flush (self->journal);
    if (rc == 0 && herd_journal_lost (self->journal))
        rc = -1;            //  records were dropped: only a rewrite restores them
    if (rc == 0 && self->context.fsync_always && self->ack_count > 0)
        rc = herd_journal_sync (self->journal);
    return rc;
}

size_t
herd_durable_confirm (herd_durable_t *self, zsock_t *router)
{
    const herd_durable_context_t *context = &self->context;
    if (self->journal) {
        if (s_write (self) == -1) {
            if (!self->store_failed_at) {
                self->store_failed_at = zclock_mono ();
                herd_log_warning (context->log, "bus", "journal write failed: %s; updates are "
                                  "not acknowledged until it works again", strerror (errno));
                herd_report_event (context->report, "journal failing", NULL, strerror (errno));
            }
            self->store_failures++;
            return 0;
        }
        if (self->store_failed_at) {
            herd_log_printf (context->log, "bus", "journal writing again after %" PRId64 " ms",
                             zclock_mono () - self->store_failed_at);
            herd_report_event (context->report, "journal writing", NULL, "recovered");
            self->store_failed_at = 0;
        }
        herd_journal_tick (self->journal);
    }
    for (size_t i = 0; i < self->ack_count; i++) {
        s_ack_t *ack = &self->acks[i];
        herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_STORED, .routing = ack->routing,
                                     .first = ack->first, .last = ack->last},
                       router, ZMQ_DONTWAIT);
        zframe_destroy (&ack->routing);
    }
    size_t sent = self->ack_count;
    self->ack_count = 0;
    return sent;
}

bool
herd_durable_waiting (herd_durable_t *self)
{
    return self->ack_count > 0 || (self->journal && herd_journal_failing (self->journal));
}

//  Rewrite the journal from the table when it holds mostly superseded
//  records, or when it had to drop records it could not write (so the
//  table, which has them, is what the journal holds again). With fsync =
//  everysec the new file's fdatasync runs in the journal's thread, and the
//  loop goes on (s_compacted, from herd_durable_confirm); with always, or
//  when wait (stopping), here.
static void
s_compact (herd_durable_t *self, bool wait)
{
    const herd_durable_context_t *context = &self->context;
    size_t live = herd_store_size (context->store);
    //  A lost journal (records dropped while writes failed) is rewritten
    if (!self->journal
        || (!herd_journal_lost (self->journal)
            && herd_journal_records (self->journal) < 2 * live + 10000))
        return;
    wait = wait || context->fsync_always;
    if (!wait && herd_journal_busy (self->journal))
        return;                     //  a second later, then
    int64_t start = zclock_mono ();
    size_t before = herd_journal_records (self->journal);
    if (herd_journal_compact_begin (self->journal) == -1) {
        herd_log_warning (context->log, "bus", "journal compaction failed: %s", strerror (errno));
        return;
    }
    //  Every live record, from the store's change list
    herd_store_cursor_t *cursor = herd_store_cursor_new (context->store, 0);
    herd_store_record_t record;
    while (herd_store_cursor_next (cursor, &record))
        herd_journal_compact_add (self->journal, record.line, record.size, record.hash);
    herd_store_cursor_destroy (&cursor);
    self->compact_before = before;
    self->compact_live = live;
    self->compact_started = start;
    if ((wait ? herd_journal_compact_commit (self->journal)
              : herd_journal_compact_start (self->journal))
        == -1)
        herd_log_warning (context->log, "bus", "journal compaction failed: %s", strerror (errno));
    else
    if (wait)
        s_compacted (self);
}

void
herd_durable_compact (herd_durable_t *self)
{
    s_compact (self, false);
}

void
herd_durable_stop (herd_durable_t *self)
{
    if (self->journal && herd_journal_lost (self->journal))
        s_compact (self, true);
}

void
herd_durable_report (herd_durable_t *self, cJSON *stats)
{
    cJSON_AddNumberToObject (stats, "journal_records",
                             self->journal ? (double) herd_journal_records (self->journal) : 0);
    cJSON_AddNumberToObject (stats, "journal_failing",
                             self->journal && herd_journal_failing (self->journal) ? 1 : 0);
    cJSON_AddNumberToObject (stats, "store_failures_total", (double) self->store_failures);
}

//  -------------------------------------------------------------------------
//  Self test

#define S_TEST_RETRY_MS 110         //  past herd_journal_flush's 100 ms between retries

//  Replay a journal's record into the table, as the bus does at start.
static void
s_test_load (const char *line, size_t size, void *arg)
{
    herd_store_apply ((herd_store_t *) arg, line, size, false, NULL);
}

//  Apply the record of client at time n, and journal it, as the bus does.
static void
s_test_apply (herd_durable_t *durable, herd_store_t *store, const char *client, int n)
{
    char line[64];
    snprintf (line, sizeof (line), "AT A +0.000000000 %s +1+1 %d", client, n);
    herd_store_record_t record;
    HERD_CHECK (herd_store_apply (store, line, strlen (line), false, &record)
                == HERD_STORE_APPLIED);
    herd_durable_append (durable, line, strlen (line), record.hash);
}

//  Hold a batch of the gateway whose routing id is name.
static void
s_test_hold (herd_durable_t *durable, const char *name, uint64_t batch)
{
    zframe_t *routing = zframe_new (name, strlen (name));
    herd_durable_hold (durable, &routing, batch);
    HERD_CHECK (routing == NULL);                   //  taken
}

//  A gateway: a DEALER with routing id name, connected to the bus's ROUTER.
static zsock_t *
s_test_gateway (const char *name)
{
    zsock_t *gateway = zsock_new (ZMQ_DEALER);
    zsock_set_identity (gateway, name);
    zsock_set_rcvtimeo (gateway, 5000);
    HERD_CHECK (zsock_connect (gateway, "inproc://durable-test") == 0);
    return gateway;
}

//  Receive a STORED on gateway, for batches first..last.
static void
s_test_expect_stored (zsock_t *gateway, uint64_t first, uint64_t last)
{
    zmsg_t *msg = zmsg_recv (gateway);
    HERD_CHECK (msg);
    herd_msg_t d;
    char reason[HERD_MSG_REASON_MAX];
    int rc = herd_msg_decode (&d, msg, HERD_MSG_TO_GATEWAY, NULL, reason, sizeof (reason));
    HERD_CHECK_STR (rc ? reason : "", "");         //  it decodes, or says why not
    HERD_CHECK (d.id == HERD_MSG_ID_STORED);
    HERD_CHECK_INT (d.first, first);
    HERD_CHECK_INT (d.last, last);
    zmsg_destroy (&msg);
}

//  A counter of herd_durable_report.
static int64_t
s_test_counter (herd_durable_t *durable, const char *name)
{
    cJSON *stats = cJSON_CreateObject ();
    herd_durable_report (durable, stats);
    cJSON *item = cJSON_GetObjectItem (stats, name);
    HERD_CHECK (cJSON_IsNumber (item));
    int64_t value = (int64_t) item->valuedouble;
    cJSON_Delete (stats);
    return value;
}

//  Limit the size of files this process writes (RLIMIT_FSIZE): past it,
//  writes fail with EFBIG as on a full disk.
static void
s_test_limit_files (rlim_t bytes)
{
    struct rlimit limit;
    HERD_CHECK (getrlimit (RLIMIT_FSIZE, &limit) == 0);
    limit.rlim_cur = bytes < limit.rlim_max ? bytes : limit.rlim_max;
    HERD_CHECK (setrlimit (RLIMIT_FSIZE, &limit) == 0);
}

//  Without a journal, held is stored: each run of a gateway's consecutive
//  batches is confirmed in one STORED, at the next confirm.
static void
s_test_memory (herd_durable_context_t *context, zsock_t *router, zsock_t *one, zsock_t *two)
{
    herd_durable_t *durable = herd_durable_new (context);
    HERD_CHECK (durable);
    HERD_CHECK (!herd_durable_waiting (durable));
    HERD_CHECK_INT (herd_durable_confirm (durable, router), 0);
    s_test_apply (durable, context->store, "mem", 1);
    const char *names[] = {"one", "one", "one", "two", "one"};
    for (int i = 0; i < 5; i++)
        s_test_hold (durable, names[i], (uint64_t) i + 1);
    HERD_CHECK (herd_durable_waiting (durable));
    HERD_CHECK_INT (herd_durable_confirm (durable, router), 3);
    HERD_CHECK (!herd_durable_waiting (durable));
    s_test_expect_stored (one, 1, 3);
    s_test_expect_stored (one, 5, 5);
    s_test_expect_stored (two, 4, 4);
    HERD_CHECK_INT (s_test_counter (durable, "journal_records"), 0);
    //  Not confirmed yet: dropped with the class
    s_test_hold (durable, "one", 6);
    herd_durable_destroy (&durable);
    HERD_CHECK (durable == NULL);
}

//  A journal that cannot write confirms nothing until it can again; what
//  was held then goes in one STORED.
static void
s_test_failing (herd_durable_context_t *context, zsock_t *router, zsock_t *one,
                const char *path)
{
    herd_durable_t *durable = herd_durable_new (context);
    HERD_CHECK (durable);
    signal (SIGXFSZ, SIG_IGN);
    s_test_limit_files ((rlim_t) zsys_file_size (path));
    s_test_apply (durable, context->store, "full", 1);
    s_test_hold (durable, "one", 10);
    HERD_CHECK_INT (herd_durable_confirm (durable, router), 0);
    s_test_hold (durable, "one", 11);
    HERD_CHECK_INT (herd_durable_confirm (durable, router), 0);
    HERD_CHECK (herd_durable_waiting (durable));
    HERD_CHECK_INT (s_test_counter (durable, "journal_failing"), 1);
    HERD_CHECK_INT (s_test_counter (durable, "store_failures_total"), 2);
    s_test_limit_files (RLIM_INFINITY);
    zclock_sleep (S_TEST_RETRY_MS);
    HERD_CHECK_INT (herd_durable_confirm (durable, router), 1);
    s_test_expect_stored (one, 10, 11);
    HERD_CHECK (!herd_durable_waiting (durable));
    HERD_CHECK_INT (s_test_counter (durable, "journal_failing"), 0);
    herd_durable_destroy (&durable);
}

//  A journal of mostly superseded records is rewritten from the table: in
//  the journal's thread with fsync = everysec (swapped in by a later
//  confirm), at once with always.
static void
s_test_compact (herd_durable_context_t *context, zsock_t *router)
{
    for (int round = 0; round < 2; round++) {
        context->fsync_always = round == 1;
        herd_durable_t *durable = herd_durable_new (context);
        HERD_CHECK (durable);
        for (int i = 0; i < 10010; i++)
            s_test_apply (durable, context->store, "moving", 2 + round * 10010 + i);
        HERD_CHECK_INT (herd_durable_confirm (durable, router), 0);
        int64_t live = (int64_t) herd_store_size (context->store);
        HERD_CHECK (s_test_counter (durable, "journal_records") > 10010);
        herd_durable_compact (durable);
        //  everysec: the journal's thread may be busy (a second later, then),
        //  and the new file is swapped in by a confirm once it is synced
        for (int i = 0; i < 500 && s_test_counter (durable, "journal_records") != live; i++) {
            zclock_sleep (10);
            HERD_CHECK_INT (herd_durable_confirm (durable, router), 0);
            herd_durable_compact (durable);
        }
        HERD_CHECK_INT (s_test_counter (durable, "journal_records"), live);
        herd_durable_destroy (&durable);
    }
}

void
herd_durable_test (bool verbose)
{
    (void) verbose;
    char dir[] = "/tmp/herd_durable_test_XXXXXX";
    HERD_CHECK (mkdtemp (dir));
    char log_path[160], path[160];
    snprintf (log_path, sizeof (log_path), "%s/log", dir);
    snprintf (path, sizeof (path), "%s/data/journal", dir);
    char *data = zsys_sprintf ("%s/data", dir);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_router_mandatory (router, 1);
    HERD_CHECK (zsock_bind (router, "inproc://durable-test") == 0);
    zsock_t *one = s_test_gateway ("one");
    zsock_t *two = s_test_gateway ("two");
    herd_durable_context_t context = {herd_store_new (NULL, NULL), NULL, false, s_test_load,
                                      NULL, "A", herd_log_new (log_path, "A"), NULL};
    context.load_arg = context.store;
    s_test_memory (&context, router, one, two);
    herd_store_destroy (&context.store);

    //  With a journal: what was confirmed is there at the next start
    context.store = context.load_arg = herd_store_new (NULL, NULL);
    context.data = data;
    context.fsync_always = true;
    herd_durable_t *durable = herd_durable_new (&context);
    HERD_CHECK (durable);
    s_test_apply (durable, context.store, "kept", 1);
    s_test_apply (durable, context.store, "kept", 2);
    s_test_hold (durable, "one", 7);
    HERD_CHECK_INT (herd_durable_confirm (durable, router), 1);
    s_test_expect_stored (one, 7, 7);
    herd_durable_destroy (&durable);
    herd_store_t *table = context.store;
    context.store = context.load_arg = herd_store_new (NULL, NULL);
    durable = herd_durable_new (&context);
    HERD_CHECK_INT (s_test_counter (durable, "journal_records"), 2);
    HERD_CHECK_INT (herd_store_size (context.store), 1);
    herd_store_record_t record;
    HERD_CHECK (herd_store_lookup (context.store, "kept", 4, &record));
    HERD_CHECK (herd_store_digest (context.store) == herd_store_digest (table));
    herd_store_destroy (&table);
    herd_durable_destroy (&durable);

    context.fsync_always = false;
    s_test_failing (&context, router, one, path);
    s_test_compact (&context, router);

    //  A journal that cannot be opened fails the start (said on stderr too)
    context.data = "/proc/herd/nope";
    HERD_CHECK (herd_durable_new (&context) == NULL);

    herd_log_destroy (&context.log);
    zfile_t *file = zfile_new (NULL, log_path);
    HERD_CHECK (zfile_input (file) == 0);
    zchunk_t *chunk = zfile_read (file, 65536, 0);
    char *logged = zchunk_strdup (chunk);
    HERD_CHECK_CONTAINS (logged, "journal loaded: 2 records, 1 clients");
    HERD_CHECK_CONTAINS (logged, "journal write failed: File too large; updates are not "
                                 "acknowledged until it works again");
    HERD_CHECK_CONTAINS (logged, "journal writing again after ");
    HERD_CHECK_CONTAINS (logged, "journal compacted: ");
    HERD_CHECK_CONTAINS (logged, "cannot use the journal: ");
    zstr_free (&logged);
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    herd_store_destroy (&context.store);
    zsock_destroy (&two);
    zsock_destroy (&one);
    zsock_destroy (&router);
    zdir_t *tmp = zdir_new (dir, NULL);
    zdir_remove (tmp, true);
    zdir_destroy (&tmp);
    zstr_free (&data);
}
