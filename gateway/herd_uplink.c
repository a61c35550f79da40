//  herd_uplink.c - the gateway's channel to its bus: updates in batches,
//  in order, never dropped, and the answers that wait for them to be
//  stored; with the gateway's own journal, kept updates, answered once it
//  holds them and sent again until the bus confirms them (herd_uplink.h).

#include "herd_uplink.h"
#include "../bus/herd_journal.h"
#include "../common/herd_msg.h"
#include "../common/herd_record.h"

#define HERD_UPLINK_UPDATES_MAX (64 * 1024) //  bytes of updates sent to the bus at once
#define HERD_UPLINK_RESEND_MS   1000    //  a kept batch unconfirmed this long goes again,
#define HERD_UPLINK_RESEND_MAX  16000   //  then after twice as long, up to this

//  An answer waiting for its update to be stored, and the batch (UPDATE
//  message) the update went in.
typedef struct {
    herd_uplink_ref_t ref;
    uint64_t batch;
    int64_t since;                  //  when the answer was ready, ms (monotonic)
} s_waiter_t;

//  A kept batch the bus has not confirmed: its records, to send again.
typedef struct {
    uint64_t batch;                 //  the number it was last sent under
    int64_t due;                    //  when to send it again, ms (monotonic)
    int64_t interval;               //  and the wait after that
    size_t size;
    char records[];                 //  '\n'-separated AT lines
} s_kept_t;

struct _herd_uplink_t {
    zsock_t *bus;
    zlist_t *backlog;               //  messages the bus could not take yet, in order (zmsg_t)
    char *updates;                  //  this turn's AT lines for the bus, '\n'-separated
    size_t updates_size;
    uint64_t batch;                 //  number of the UPDATE being filled (from 1)
    s_waiter_t *waiters;            //  answers waiting to be stored, oldest first (a ring)
    size_t waiter_head, waiter_count, waiter_capacity;
    bool sent;                      //  a send was tried since herd_uplink_sent
    //  Kept updates (herd_uplink_keep)
    herd_journal_t *journal;        //  or NULL: answers wait for the bus
    bool keeping;                   //  batches sent are kept until confirmed
    bool answering;                 //  new updates may go to the journal (answered at commit)
    bool journaling;                //  ...and those queued now do (a small turn came before)
    size_t turn_records;            //  records queued since the last commit
    uint64_t unjournaled;           //  the last batch sent without the journal (0: none)
    int64_t sent_us;                //  when herd_uplink_send_held last sent, usec
    bool held;                      //  ...and whether it holds updates back now
    char *path;                     //  the journal's file
    herd_log_t *log;
    zlist_t *kept;                  //  batches not yet confirmed, by number (s_kept_t)
    size_t kept_bytes;
    bool replaying;                 //  queueing the journal's own records: not appended again
    bool appends_failed;            //  a record the journal refused: this turn is not kept
    bool uncommitted;               //  records queued since the last commit
    int64_t now;                    //  the last commit's time, ms
    int64_t failed_at;              //  writes fail since, ms (0: they work)
};

static void
    s_rewrite (herd_uplink_t *self, bool wait);

herd_uplink_t *
herd_uplink_new (zsock_t *bus)
{
    herd_uplink_t *self = (herd_uplink_t *) zmalloc (sizeof (herd_uplink_t));
    self->bus = bus;
    self->backlog = zlist_new ();
    self->batch = 1;
    return self;
}

void
herd_uplink_destroy (herd_uplink_t **self_p)
{
    herd_uplink_t *self = *self_p;
    if (!self)
        return;
    herd_uplink_send_updates (self);
    herd_uplink_flush (self);
    while (zlist_size (self->backlog) > 0) {
        zmsg_t *msg = (zmsg_t *) zlist_pop (self->backlog);
        zmsg_destroy (&msg);
    }
    zlist_destroy (&self->backlog);
    if (self->journal && self->answering && herd_journal_flush (self->journal) == 0)
        s_rewrite (self, true);         //  to what the next start must send again
    if (self->kept)
        while (zlist_size (self->kept) > 0)
            free (zlist_pop (self->kept));
    zlist_destroy (&self->kept);
    herd_journal_destroy (&self->journal);
    free (self->path);
    free (self->waiters);
    free (self->updates);
    free (self);
    *self_p = NULL;
}

bool
herd_uplink_send_now (zsock_t *sock, const herd_msg_t *msg)
{
    return herd_msg_send (msg, sock, ZMQ_DONTWAIT) == 0;
}

//  Send a message the bus could not take before; false (kept) if it still
//  cannot.
static bool
s_send_backlogged (herd_uplink_t *self, zmsg_t *msg)
{
    self->sent = true;
    void *handle = zsock_resolve (self->bus);
    size_t left = zmsg_size (msg);
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        int more = --left > 0 ? ZFRAME_MORE : 0;
        if (zframe_send (&frame, handle, ZFRAME_REUSE | ZFRAME_DONTWAIT | more) == -1)
            return false;       //  only the first frame can fail: sends are atomic
    }
    return true;
}

void
herd_uplink_flush (herd_uplink_t *self)
{
    zmsg_t *msg;
    while ((msg = (zmsg_t *) zlist_first (self->backlog)) && s_send_backlogged (self, msg)) {
        zlist_remove (self->backlog, msg);
        zmsg_destroy (&msg);
    }
}

void
herd_uplink_send (herd_uplink_t *self, const herd_msg_t *msg)
{
    self->sent = true;
    if (zlist_size (self->backlog) == 0 && herd_uplink_send_now (self->bus, msg))
        return;
    zlist_append (self->backlog, herd_msg_encode (msg));
}

size_t
herd_uplink_backlog (herd_uplink_t *self)
{
    return zlist_size (self->backlog);
}

bool
herd_uplink_sent (herd_uplink_t *self)
{
    bool sent = self->sent;
    self->sent = false;
    return sent;
}

//  Send records as UPDATE number batch.
static void
s_send_update (herd_uplink_t *self, uint64_t batch, const char *records, size_t size)
{
    herd_uplink_send (self, &(herd_msg_t){.id = HERD_MSG_ID_UPDATE, .batch = batch,
                                          .records = {records, size}});
    bool journaled = self->replaying || (self->answering && self->journaling);
    if (self->answering && !journaled)
        self->unjournaled = batch;
    if (!self->keeping || !journaled)
        return;
    //  Kept until the bus confirms it
    s_kept_t *kept = (s_kept_t *) malloc (sizeof (s_kept_t) + size);
    assert (kept);
    *kept = (s_kept_t){batch, self->now + HERD_UPLINK_RESEND_MS, HERD_UPLINK_RESEND_MS, size};
    memcpy (kept->records, records, size);
    zlist_append (self->kept, kept);
    self->kept_bytes += size;
}

//  Send the oldest kept batch again, under the next number, and move it
//  to the end of the list (which stays in order of number).
static void
s_resend_oldest (herd_uplink_t *self)
{
    herd_uplink_send_updates (self);        //  numbers stay in order of sending
    s_kept_t *kept = (s_kept_t *) zlist_pop (self->kept);
    kept->batch = self->batch++;
    kept->due = self->now + kept->interval;
    kept->interval = kept->interval * 2 > HERD_UPLINK_RESEND_MAX ? HERD_UPLINK_RESEND_MAX
                                                                 : kept->interval * 2;
    herd_uplink_send (self, &(herd_msg_t){.id = HERD_MSG_ID_UPDATE, .batch = kept->batch,
                                          .records = {kept->records, kept->size}});
    zlist_append (self->kept, kept);
}

void
herd_uplink_send_updates (herd_uplink_t *self)
{
    if (self->updates_size == 0)
        return;
    s_send_update (self, self->batch++, self->updates, self->updates_size);
    self->updates_size = 0;
}

uint64_t
herd_uplink_queue (herd_uplink_t *self, const char *at, size_t size)
{
    if (self->answering && !self->replaying) {
        self->turn_records++;
        self->uncommitted = self->journaling;
        if (self->journaling && herd_journal_append (self->journal, at, size) == -1)
            self->appends_failed = true;
    }
    if (self->updates_size > 0 && self->updates_size + 1 + size > HERD_UPLINK_UPDATES_MAX)
        herd_uplink_send_updates (self);
    if (!self->updates) {
        self->updates = (char *) malloc (HERD_UPLINK_UPDATES_MAX + 1);
        assert (self->updates);
    }
    if (size > HERD_UPLINK_UPDATES_MAX) {
        //  A long line (max_line allows it) goes alone, as its own batch
        uint64_t number = self->batch++;
        s_send_update (self, number, at, size);
        return number;
    }
    if (self->updates_size > 0)
        self->updates[self->updates_size++] = '\n';
    memcpy (self->updates + self->updates_size, at, size);
    self->updates_size += size;
    return self->batch;
}

//  A record of the journal, at start: to the bus again.
static void
s_replay (const char *line, size_t size, void *arg)
{
    herd_uplink_queue ((herd_uplink_t *) arg, line, size);
}

int
herd_uplink_keep (herd_uplink_t *self, const char *data, bool answer, herd_log_t *log,
                  char *error)
{
    assert (!self->journal);
    if (!data)
        return 0;
    char *dir = zsys_sprintf ("%s/gateway", data);
    self->path = zsys_sprintf ("%s/journal", dir);
    if (!answer && !zsys_file_exists (self->path)) {
        zstr_free (&dir);
        return 0;                   //  always, and no journal left by everysec
    }
    self->log = log;
    self->kept = zlist_new ();
    self->now = zclock_mono ();
    herd_journal_stats_t stats;
    //  The records replayed go to the bus, kept like any batch (s_send_update)
    self->keeping = self->replaying = true;
    self->journal = herd_journal_open (dir, s_replay, self, &stats, error);
    zstr_free (&dir);
    herd_uplink_send_updates (self);
    self->replaying = false;
    if (!self->journal) {
        self->keeping = false;
        return -1;
    }
    self->answering = self->journaling = answer;
    herd_log_printf (log, "gateway", "journal loaded: %zu records sent to the bus again",
                     stats.records);
    if (stats.skipped_bytes || stats.discarded)
        herd_log_warning (log, "gateway",
                          "journal damaged: %zu damaged records skipped, %zu bytes discarded "
                          "(%s%s)", stats.skipped, stats.discarded, stats.skip_reason,
                          stats.reason);
    return answer ? 1 : 0;
}

//  Rewrite the journal to the batches the bus has not confirmed: in the
//  journal's thread (herd_journal_compact_start), or when wait (stopping)
//  here.
static void
s_rewrite (herd_uplink_t *self, bool wait)
{
    if (herd_journal_compact_poll (self->journal, wait) == -1
        || herd_journal_compact_begin (self->journal) == -1) {
        herd_log_warning (self->log, "gateway", "journal compaction failed: %s",
                          strerror (errno));
        return;
    }
    for (s_kept_t *kept = (s_kept_t *) zlist_first (self->kept); kept;
         kept = (s_kept_t *) zlist_next (self->kept)) {
        const char *line = kept->records, *end = kept->records + kept->size;
        while (line < end) {
            const char *eol = (const char *) memchr (line, '\n', (size_t) (end - line));
            size_t size = (size_t) ((eol ? eol : end) - line);
            herd_journal_compact_add (self->journal, line, size, herd_record_hash (line, size));
            line += size + 1;
        }
    }
    if ((wait ? herd_journal_compact_commit (self->journal)
              : herd_journal_compact_start (self->journal))
        == -1)
        herd_log_warning (self->log, "gateway", "journal compaction failed: %s",
                          strerror (errno));
}

//  Compact the journal once it has grown to HERD_UPLINK_KEEP_RECORDS or
//  lost records it could not write.
static void
s_compact (herd_uplink_t *self)
{
    if (herd_journal_compact_poll (self->journal, false) == -1)
        herd_log_warning (self->log, "gateway", "journal compaction failed: %s",
                          strerror (errno));
    if ((herd_journal_records (self->journal) >= HERD_UPLINK_KEEP_RECORDS
         || herd_journal_lost (self->journal))
        && !herd_journal_busy (self->journal))
        s_rewrite (self, false);
}

//  Replaying only (fsync = always): once the bus confirmed all the journal
//  held, the journal goes.
static void
s_replayed (herd_uplink_t *self)
{
    if (zlist_size (self->kept) > 0)
        return;
    herd_journal_destroy (&self->journal);
    if (unlink (self->path) == -1)
        herd_log_warning (self->log, "gateway", "cannot remove %s: %s", self->path,
                          strerror (errno));
    else
        herd_log_printf (self->log, "gateway", "journal replayed and removed (fsync = always)");
    self->keeping = false;
}

//  Write the journal; false when it could not (logged when it starts to
//  fail and when it works again). Its once-a-second fdatasync and its
//  compaction are started from here too.
static bool
s_write (herd_uplink_t *self)
{
    int rc = herd_journal_flush (self->journal);
    if (rc == 0 && !self->appends_failed && self->failed_at) {
        herd_log_printf (self->log, "gateway", "journal writing again after %" PRId64 " ms",
                         self->now - self->failed_at);
        self->failed_at = 0;
    }
    else
    if (rc == -1 && !self->failed_at) {
        herd_log_warning (self->log, "gateway", "journal write failed: %s; answers wait for "
                          "the bus until it works again", strerror (errno));
        self->failed_at = self->now;
    }
    herd_journal_tick (self->journal);
    s_compact (self);
    bool written = rc == 0 && !self->appends_failed;
    self->appends_failed = false;
    return written;
}

uint64_t
herd_uplink_commit (herd_uplink_t *self, int64_t now)
{
    self->now = now;
    self->uncommitted = false;
    if (self->journal && !self->answering)
        s_replayed (self);
    bool written = self->answering && s_write (self);
    //  A turn of many updates amortises the bus's round trip over them all
    //  (group commit), and the journal would cost more than it saves: the
    //  next turn's go to the journal only if this one's were few
    bool journaling = self->answering && self->turn_records <= HERD_UPLINK_KEEP_TURN;
    if (journaling != self->journaling) {
        herd_uplink_send_updates (self);        //  a batch is all one or the other
        self->journaling = journaling;
    }
    self->turn_records = 0;
    //  Answers go now if the journal holds every update queued in a batch
    //  that journals, and no answer of an earlier batch that did not waits
    //  for the bus (those are released by STORED alone)
    bool kept = written && self->kept_bytes <= HERD_UPLINK_KEEP_MAX
                && (self->waiter_count == 0
                    || self->waiters[self->waiter_head].batch > self->unjournaled);
    //  Batches the bus has not confirmed in time go again, while it takes
    //  messages (a bus that is stopped gets no pile of repeats)
    s_kept_t *oldest;
    while (self->keeping && (oldest = (s_kept_t *) zlist_first (self->kept))
           && oldest->due <= now && zlist_size (self->backlog) == 0)
        s_resend_oldest (self);
    //  The batch being filled is written too: its answers may go before it
    return !kept ? 0 : self->updates_size > 0 && self->journaling ? self->batch : self->batch - 1;
}

void
herd_uplink_stored (herd_uplink_t *self, uint64_t first, uint64_t last)
{
    if (!self->keeping)
        return;
    s_kept_t *kept;
    while ((kept = (s_kept_t *) zlist_first (self->kept)) && kept->batch <= last) {
        if (kept->batch < first)
            s_resend_oldest (self);     //  the bus never got it: numbered after last now
        else {
            zlist_pop (self->kept);
            self->kept_bytes -= kept->size;
            free (kept);
        }
    }
}

void
herd_uplink_send_held (herd_uplink_t *self, int64_t now)
{
    bool may_hold = self->updates_size > 0 && self->answering && self->journaling;
    //  Whether to hold is decided at the first turn of a batch: updates
    //  that came soon after the last send come fast, and more will follow
    if (may_hold && !self->held)
        self->held = now - self->sent_us < HERD_UPLINK_HOLD_GAP_US;
    self->held = self->held && may_hold && now - self->sent_us < HERD_UPLINK_HOLD_US;
    if (self->held || self->updates_size == 0)
        return;
    herd_uplink_send_updates (self);
    self->sent_us = now;
}

int64_t
herd_uplink_held_for (herd_uplink_t *self, int64_t now)
{
    if (!self->held || self->updates_size == 0)
        return -1;
    int64_t left = self->sent_us + HERD_UPLINK_HOLD_US - now;
    return left > 0 ? left : 0;
}

bool
herd_uplink_uncommitted (herd_uplink_t *self)
{
    return self->uncommitted;
}

size_t
herd_uplink_unconfirmed (herd_uplink_t *self)
{
    return self->kept_bytes;
}

void
herd_uplink_wait (herd_uplink_t *self, herd_uplink_ref_t ref, uint64_t batch, int64_t now)
{
    if (self->waiter_count == self->waiter_capacity) {
        size_t capacity = self->waiter_capacity ? self->waiter_capacity * 2 : 256;
        s_waiter_t *waiters = (s_waiter_t *) malloc (capacity * sizeof (s_waiter_t));
        assert (waiters);
        for (size_t i = 0; i < self->waiter_count; i++)
            waiters[i] = self->waiters[(self->waiter_head + i) % self->waiter_capacity];
        free (self->waiters);
        self->waiters = waiters;
        self->waiter_capacity = capacity;
        self->waiter_head = 0;
    }
    size_t tail = (self->waiter_head + self->waiter_count) % self->waiter_capacity;
    self->waiters[tail] = (s_waiter_t){ref, batch, now};
    self->waiter_count++;
}

//  Take the oldest waiter into ref.
static void
s_pop_waiter (herd_uplink_t *self, herd_uplink_ref_t *ref)
{
    *ref = self->waiters[self->waiter_head].ref;
    self->waiter_head = (self->waiter_head + 1) % self->waiter_capacity;
    self->waiter_count--;
}

bool
herd_uplink_next_stored (herd_uplink_t *self, uint64_t first, uint64_t last,
                         herd_uplink_ref_t *ref, bool *lost)
{
    if (self->waiter_count == 0 || self->waiters[self->waiter_head].batch > last)
        return false;
    *lost = self->waiters[self->waiter_head].batch < first;
    s_pop_waiter (self, ref);
    return true;
}

bool
herd_uplink_next_expired (herd_uplink_t *self, int64_t now, int64_t timeout,
                          herd_uplink_ref_t *ref)
{
    if (self->waiter_count == 0 || now - self->waiters[self->waiter_head].since < timeout)
        return false;
    s_pop_waiter (self, ref);
    return true;
}

int64_t
herd_uplink_oldest (herd_uplink_t *self)
{
    return self->waiter_count ? self->waiters[self->waiter_head].since : INT64_MAX;
}

size_t
herd_uplink_waiting (herd_uplink_t *self)
{
    return self->waiter_count;
}

//  -------------------------------------------------------------------------
//  Self test: batches and waiters, with a ROUTER as the bus

#include "../common/herd_check.h"

//  The bus receives an UPDATE: returns its batch number, its records in
//  *records_p.
static uint64_t
s_test_receive (zsock_t *bus, char **records_p)
{
    zmsg_t *msg = zmsg_recv (bus);
    HERD_CHECK (msg);
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX] = "";
    HERD_CHECK_STR (herd_msg_decode (&in, msg, HERD_MSG_TO_BUS, NULL, reason, sizeof (reason))
                      ? reason : "", "");
    HERD_CHECK (in.id == HERD_MSG_ID_UPDATE);
    *records_p = zsys_sprintf ("%.*s", (int) in.records.size, (const char *) in.records.data);
    zmsg_destroy (&msg);
    return in.batch;
}

//  Kept updates: answered at commit, sent again when lost or late,
//  replayed from the journal at start.
static void
s_test_keep (zsock_t *bus, zsock_t *dealer)
{
    char dir[] = "/tmp/herd_uplink_test_XXXXXX";
    HERD_CHECK (mkdtemp (dir));
    char error[256] = "";
    herd_uplink_t *self = herd_uplink_new (dealer);
    HERD_CHECK_INT (herd_uplink_keep (self, dir, true, NULL, error), 1);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT a", 4), 1);
    herd_uplink_wait (self, (herd_uplink_ref_t){1, 10, 5}, 1, 100);
    HERD_CHECK (herd_uplink_uncommitted (self));
    //  Written: the batch being filled may be answered before it is sent
    HERD_CHECK_INT (herd_uplink_commit (self, 100), 1);
    HERD_CHECK (!herd_uplink_uncommitted (self));
    herd_uplink_ref_t ref;
    bool lost;
    HERD_CHECK (herd_uplink_next_stored (self, 0, 1, &ref, &lost) && !lost && ref.serial == 1);
    herd_uplink_send_updates (self);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 4);
    char *records;
    HERD_CHECK_INT (s_test_receive (bus, &records), 1);
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT b", 4), 2);
    herd_uplink_send_updates (self);
    HERD_CHECK_INT (s_test_receive (bus, &records), 2);
    zstr_free (&records);
    //  The bus stored 2 but never got 1: 1 goes again, as batch 3
    herd_uplink_stored (self, 2, 2);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 4);
    HERD_CHECK_INT (s_test_receive (bus, &records), 3);
    HERD_CHECK_STR (records, "AT a");
    zstr_free (&records);
    //  Not confirmed within a second: sent again, as batch 4, and then
    //  not before two more seconds
    HERD_CHECK_INT (herd_uplink_commit (self, 1099), 3);
    HERD_CHECK_INT (herd_uplink_commit (self, 1101), 4);
    HERD_CHECK_INT (s_test_receive (bus, &records), 4);
    HERD_CHECK_STR (records, "AT a");
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_commit (self, 3000), 4);
    herd_uplink_stored (self, 4, 4);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 0);
    HERD_CHECK_INT (herd_uplink_commit (self, 9000), 4);
    //  A turn of more than HERD_UPLINK_KEEP_TURN updates: the next turn's
    //  are not journaled and wait for STORED; the one after journals
    //  again, but its answers wait while an earlier one waits for the bus
    for (int i = 0; i <= HERD_UPLINK_KEEP_TURN; i++)
        herd_uplink_queue (self, "AT m", 4);
    HERD_CHECK_INT (herd_uplink_commit (self, 9100), 5);
    HERD_CHECK_INT (s_test_receive (bus, &records), 5);
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT n", 4), 6);
    herd_uplink_wait (self, (herd_uplink_ref_t){6, 60, 6}, 6, 9150);
    HERD_CHECK (!herd_uplink_uncommitted (self));
    HERD_CHECK_INT (herd_uplink_commit (self, 9200), 0);
    HERD_CHECK_INT (s_test_receive (bus, &records), 6);
    HERD_CHECK_STR (records, "AT n");
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT o", 4), 7);
    herd_uplink_wait (self, (herd_uplink_ref_t){7, 70, 7}, 7, 9250);
    HERD_CHECK (herd_uplink_uncommitted (self));
    HERD_CHECK_INT (herd_uplink_commit (self, 9300), 0);
    herd_uplink_stored (self, 5, 6);
    HERD_CHECK (herd_uplink_next_stored (self, 5, 6, &ref, &lost) && !lost && ref.serial == 6);
    HERD_CHECK_INT (herd_uplink_commit (self, 9400), 7);
    HERD_CHECK (herd_uplink_next_stored (self, 0, 7, &ref, &lost) && !lost && ref.serial == 7);
    herd_uplink_send_updates (self);
    HERD_CHECK_INT (s_test_receive (bus, &records), 7);
    zstr_free (&records);
    herd_uplink_stored (self, 7, 7);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 0);

    //  Kept updates that come within HERD_UPLINK_HOLD_GAP_US of the last
    //  send wait until HERD_UPLINK_HOLD_US after it, and the loop is told
    //  how long it may sleep
    HERD_CHECK_INT (herd_uplink_queue (self, "AT h", 4), 8);
    herd_uplink_send_held (self, 10000000);
    HERD_CHECK_INT (herd_uplink_held_for (self, 10000000), -1);       //  sent
    HERD_CHECK_INT (s_test_receive (bus, &records), 8);
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT i", 4), 9);
    herd_uplink_send_held (self, 10000100);
    HERD_CHECK_INT (herd_uplink_held_for (self, 10000100), HERD_UPLINK_HOLD_US - 100);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT j", 4), 9);
    herd_uplink_send_held (self, 10000000 + HERD_UPLINK_HOLD_US);
    HERD_CHECK_INT (herd_uplink_held_for (self, 10000000 + HERD_UPLINK_HOLD_US), -1);
    HERD_CHECK_INT (s_test_receive (bus, &records), 9);
    HERD_CHECK_STR (records, "AT i\nAT j");
    zstr_free (&records);
    //  Updates that come slower than that go at once: a trickle waits for
    //  nothing, even within HERD_UPLINK_HOLD_US of the last send
    int64_t last = 10000000 + HERD_UPLINK_HOLD_US;
    HERD_CHECK_INT (herd_uplink_queue (self, "AT k", 4), 10);
    herd_uplink_send_held (self, last + HERD_UPLINK_HOLD_GAP_US);
    HERD_CHECK_INT (herd_uplink_held_for (self, last + HERD_UPLINK_HOLD_GAP_US), -1);
    HERD_CHECK_INT (s_test_receive (bus, &records), 10);
    HERD_CHECK_STR (records, "AT k");
    zstr_free (&records);
    //  A batch held goes whole when something else sends it first (a
    //  look-up): nothing is held after
    last += HERD_UPLINK_HOLD_GAP_US;
    HERD_CHECK_INT (herd_uplink_queue (self, "AT l", 4), 11);
    herd_uplink_send_held (self, last + 1);
    HERD_CHECK_INT (herd_uplink_held_for (self, last + 1), HERD_UPLINK_HOLD_US - 1);
    herd_uplink_send_updates (self);
    HERD_CHECK_INT (herd_uplink_held_for (self, last + 2), -1);
    HERD_CHECK_INT (s_test_receive (bus, &records), 11);
    zstr_free (&records);
    herd_uplink_stored (self, 8, 11);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 0);

    //  At stop the journal is rewritten to what the bus has not confirmed
    HERD_CHECK_INT (herd_uplink_queue (self, "AT c", 4), 12);
    herd_uplink_send_updates (self);
    HERD_CHECK_INT (s_test_receive (bus, &records), 12);
    zstr_free (&records);
    herd_uplink_destroy (&self);

    //  At start, what the journal holds goes to the bus again, kept; and
    //  more than a batch of it goes in several
    self = herd_uplink_new (dealer);
    HERD_CHECK_INT (herd_uplink_keep (self, dir, true, NULL, error), 1);
    HERD_CHECK_INT (s_test_receive (bus, &records), 1);
    HERD_CHECK_STR (records, "AT c");
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 4);
    HERD_CHECK (!herd_uplink_uncommitted (self));
    size_t bytes = 4;
    for (int i = 0; i < 3000; i++) {
        char line[64];
        int size = snprintf (line, sizeof (line), "AT Hill +0.1 client-%04d +1+1 %d", i, i);
        herd_uplink_queue (self, line, (size_t) size);
        bytes += (size_t) size;
    }
    herd_uplink_send_updates (self);
    HERD_CHECK (herd_uplink_commit (self, 100) > 1);
    for (int batch = 2; batch <= 3; batch++) {
        HERD_CHECK_INT (s_test_receive (bus, &records), batch);
        zstr_free (&records);
    }
    herd_uplink_destroy (&self);

    //  Replaying only (fsync = always): sent again and kept, but new
    //  updates are neither written nor answered at commit; once the bus
    //  confirmed all it held, the journal is removed
    self = herd_uplink_new (dealer);
    HERD_CHECK_INT (herd_uplink_keep (self, dir, false, NULL, error), 0);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), bytes + 3001 - 2);  //  two batches' '\n's
    for (int batch = 1; batch <= 2; batch++) {
        HERD_CHECK_INT (s_test_receive (bus, &records), batch);
        zstr_free (&records);
    }
    HERD_CHECK_INT (herd_uplink_queue (self, "AT z", 4), 3);
    HERD_CHECK (!herd_uplink_uncommitted (self));
    HERD_CHECK_INT (herd_uplink_commit (self, 100), 0);
    char path[64];
    snprintf (path, sizeof (path), "%s/gateway/journal", dir);
    HERD_CHECK (zsys_file_exists (path));
    herd_uplink_stored (self, 1, 2);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 0);
    HERD_CHECK_INT (herd_uplink_commit (self, 200), 0);
    HERD_CHECK (!zsys_file_exists (path));
    herd_uplink_send_updates (self);
    HERD_CHECK_INT (s_test_receive (bus, &records), 3);
    HERD_CHECK_STR (records, "AT z");
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_unconfirmed (self), 0);
    herd_uplink_destroy (&self);

    //  A journal that cannot be opened is refused, with the reason
    self = herd_uplink_new (dealer);
    HERD_CHECK_INT (herd_uplink_keep (self, "/proc/herd/nope", true, NULL, error), -1);
    HERD_CHECK_CONTAINS (error, "/proc/herd/nope");
    herd_uplink_destroy (&self);
    //  No data directory, or always with no journal left: nothing kept
    self = herd_uplink_new (dealer);
    HERD_CHECK_INT (herd_uplink_keep (self, NULL, true, NULL, error), 0);
    HERD_CHECK_INT (herd_uplink_keep (self, dir, false, NULL, error), 0);
    herd_uplink_destroy (&self);
    snprintf (path, sizeof (path), "%s/gateway", dir);
    rmdir (path);
    rmdir (dir);
}

void
herd_uplink_test (bool verbose)
{
    (void) verbose;
    zsock_t *bus = zsock_new_router ("@inproc://uplink-test");
    zsock_t *dealer = zsock_new_dealer (">inproc://uplink-test");
    zsock_set_rcvtimeo (bus, 5000);
    herd_uplink_t *self = herd_uplink_new (dealer);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT a", 4), 1);
    HERD_CHECK_INT (herd_uplink_queue (self, "AT b", 4), 1);
    herd_uplink_send_updates (self);
    herd_uplink_send_updates (self);                //  nothing queued: nothing sent
    HERD_CHECK_INT (herd_uplink_queue (self, "AT c", 4), 2);
    herd_uplink_send_updates (self);
    char *records;
    HERD_CHECK_INT (s_test_receive (bus, &records), 1);
    HERD_CHECK_STR (records, "AT a\nAT b");
    zstr_free (&records);
    HERD_CHECK_INT (s_test_receive (bus, &records), 2);
    HERD_CHECK_STR (records, "AT c");
    zstr_free (&records);
    HERD_CHECK_INT (herd_uplink_backlog (self), 0);

    //  Answers wait for their batch; an earlier batch than the first
    //  stored is lost; the oldest expires first
    herd_uplink_ref_t ref;
    bool lost;
    herd_uplink_wait (self, (herd_uplink_ref_t){1, 10, 5}, 1, 100);
    herd_uplink_wait (self, (herd_uplink_ref_t){2, 20, 6}, 2, 200);
    herd_uplink_wait (self, (herd_uplink_ref_t){3, 30, 7}, 3, 300);
    HERD_CHECK_INT (herd_uplink_waiting (self), 3);
    HERD_CHECK_INT (herd_uplink_oldest (self), 100);
    HERD_CHECK (herd_uplink_next_stored (self, 2, 2, &ref, &lost));
    HERD_CHECK (lost && ref.serial == 1 && ref.seq == 10 && ref.fd == 5);
    HERD_CHECK (herd_uplink_next_stored (self, 2, 2, &ref, &lost));
    HERD_CHECK (!lost && ref.serial == 2);
    HERD_CHECK (!herd_uplink_next_stored (self, 2, 2, &ref, &lost));
    HERD_CHECK (!herd_uplink_next_expired (self, 399, 100, &ref));
    HERD_CHECK (herd_uplink_next_expired (self, 400, 100, &ref));
    HERD_CHECK (ref.serial == 3);
    HERD_CHECK_INT (herd_uplink_oldest (self), INT64_MAX);
    HERD_CHECK_INT (herd_uplink_commit (self, 500), 0);     //  no journal: nothing kept
    herd_uplink_destroy (&self);
    HERD_CHECK (self == NULL);
    s_test_keep (bus, dealer);
    zsock_destroy (&dealer);
    zsock_destroy (&bus);
}
