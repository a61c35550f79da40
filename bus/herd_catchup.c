//  herd_catchup.c - the catch-ups a bus serves (see herd_catchup.h).

#include "herd_catchup.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"

#define HERD_CATCHUP_CHUNK_BYTES (64 * 1024)    //  bytes of records per KVSYNC (or one record)
#define HERD_CATCHUP_STALL       10000          //  ms a catch-up may wait on its asker

//  One catch-up being served: resumed where the asker's queue stopped it.
typedef struct {
    zframe_t *routing;              //  the asker, on the sync ROUTER
    herd_store_cursor_t *cursor;    //  the records still to send (and any changed since)
    size_t count;                   //  records sent
    int64_t progress;               //  last message queued, monotonic ms
} s_transfer_t;

struct _herd_catchup_t {
    const herd_catchup_context_t *context;
    s_transfer_t transfers[HERD_CATCHUP_SERVED];
    size_t count;                   //  the first so many are being served
};

herd_catchup_t *
herd_catchup_new (const herd_catchup_context_t *context)
{
    herd_catchup_t *self = (herd_catchup_t *) zmalloc (sizeof (herd_catchup_t));
    self->context = context;
    return self;
}

//  End a catch-up; frees its slot.
static void
s_end (herd_catchup_t *self, s_transfer_t *transfer)
{
    zframe_destroy (&transfer->routing);
    herd_store_cursor_destroy (&transfer->cursor);
    *transfer = self->transfers[--self->count];
    memset (&self->transfers[self->count], 0, sizeof (s_transfer_t));
}

void
herd_catchup_destroy (herd_catchup_t **self_p)
{
    herd_catchup_t *self = *self_p;
    if (!self)
        return;
    while (self->count)
        s_end (self, &self->transfers[0]);
    free (self);
    *self_p = NULL;
}

//  Send the KVSYNC's records from a catch-up's cursor (there is one at
//  least): up to HERD_CATCHUP_CHUNK records and HERD_CATCHUP_CHUNK_BYTES
//  (or one longer record). Returns how many.
static size_t
s_send_chunk (zsock_t *sync, herd_store_cursor_t *cursor)
{
    herd_store_record_t record, next;
    herd_store_cursor_next (cursor, &record);
    size_t count = 1, bytes = record.size;
    while (count < HERD_CATCHUP_CHUNK && herd_store_cursor_peek (cursor, &next)
           && bytes + next.size <= HERD_CATCHUP_CHUNK_BYTES) {
        herd_msg_send_frame (sync, record.line, record.size, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        herd_store_cursor_next (cursor, &record);
        count++;
        bytes += record.size;
    }
    herd_msg_send_frame (sync, record.line, record.size, ZMQ_DONTWAIT);
    return count;
}

//  The end of a catch-up: KTHXBAI with our instance and sequence number.
static void
s_send_end (const herd_catchup_context_t *context)
{
    herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_KTHXBAI, .herd = context->herd,
                                 .instance = context->instance,
                                 .seq = herd_store_seq (context->store)},
                   context->sync, ZMQ_DONTWAIT);
}

//  Send a catch-up on until its asker's queue is full: chunks of records,
//  then KTHXBAI. Never blocks. Returns true when the catch-up is over
//  (done, asker gone, or stalled too long), false when it waits.
static bool
s_pump (herd_catchup_t *self, s_transfer_t *transfer)
{
    const herd_catchup_context_t *context = self->context;
    void *sync = zsock_resolve (context->sync);
    while (true) {
        herd_store_record_t record;
        bool more = herd_store_cursor_peek (transfer->cursor, &record);
        //  What the KTHXBAI's sequence number covers must be on the wire first
        if (!more && context->flush)
            context->flush (context->flush_arg);
        //  The ROUTER takes or refuses a message at its first frame: the
        //  asker's queue is full (EAGAIN), or it is gone
        if (zmq_send (sync, zframe_data (transfer->routing), zframe_size (transfer->routing),
                      ZMQ_SNDMORE | ZMQ_DONTWAIT)
            == -1) {
            if (zmq_errno () == EAGAIN
                && zclock_mono () - transfer->progress <= HERD_CATCHUP_STALL)
                return false;
            herd_log_warning (context->log, "bus", "catch-up abandoned after %zu records: %s",
                              transfer->count,
                              zmq_errno () == EAGAIN ? "requester stopped reading"
                                                     : "requester gone");
            return true;
        }
        transfer->progress = zclock_mono ();
        if (!more) {
            s_send_end (context);
            if (context->verbose)
                zsys_debug ("bus: sent %zu records", transfer->count);
            return true;
        }
        herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_KVSYNC, .herd = context->herd},
                       context->sync, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        transfer->count += s_send_chunk (context->sync, transfer->cursor);
    }
}

void
herd_catchup_start (herd_catchup_t *self, zframe_t *routing, uint64_t since)
{
    s_transfer_t *transfer = NULL;
    for (size_t i = 0; i < self->count && !transfer; i++)
        if (zframe_eq (self->transfers[i].routing, routing))
            transfer = &self->transfers[i];         //  it asks again: start over
    if (!transfer) {
        if (self->count == HERD_CATCHUP_SERVED) {
            herd_log_warning (self->context->log, "bus",
                              "catch-up request refused: %d being served", HERD_CATCHUP_SERVED);
            return;                                 //  it asks again after its time-out
        }
        transfer = &self->transfers[self->count++];
        transfer->routing = zframe_dup (routing);
    }
    herd_store_cursor_destroy (&transfer->cursor);
    transfer->cursor = herd_store_cursor_new (self->context->store, since);
    transfer->count = 0;
    transfer->progress = zclock_mono ();
    if (s_pump (self, transfer))
        s_end (self, transfer);
}

void
herd_catchup_pump (herd_catchup_t *self)
{
    for (size_t i = 0; i < self->count;)
        if (s_pump (self, &self->transfers[i]))
            s_end (self, &self->transfers[i]);
        else
            i++;
}

size_t
herd_catchup_serving (herd_catchup_t *self)
{
    return self->count;
}

//  -------------------------------------------------------------------------
//  Self test

//  Counts the calls, for the flush hook.
static void
s_count_flush (void *arg)
{
    (*(int *) arg)++;
}

//  Receive what the catch-up sends the asker, decoded into d (pointing into
//  the message returned; the caller destroys it).
static zmsg_t *
s_recv_reply (zsock_t *asker, herd_msg_t *d)
{
    zmsg_t *msg = zmsg_recv (asker);
    char reason[HERD_MSG_REASON_MAX];
    HERD_CHECK (msg);
    int rc = herd_msg_decode (d, msg, HERD_MSG_CATCHUP, "herd", reason, sizeof (reason));
    HERD_CHECK_STR (rc ? reason : "", "");         //  it decodes, or says why not
    HERD_CHECK (d->id == HERD_MSG_ID_KVSYNC || d->id == HERD_MSG_ID_KTHXBAI);
    return msg;
}

//  Read a catch-up as a slow asker would, one message at a time, pumping
//  between: the last line received of each client into got (a zhashx of
//  client -> line), how many lines came. Returns the KTHXBAI's sequence.
static uint64_t
s_read_all (herd_catchup_t *catchup, zsock_t *asker, zhashx_t *got, size_t *lines)
{
    zpoller_t *poller = zpoller_new (asker, NULL);
    uint64_t seq = 0;
    herd_msg_t d;
    herd_msg_bytes_t bytes;
    while (zpoller_wait (poller, 5000)) {
        zmsg_t *msg = s_recv_reply (asker, &d);
        bool done = d.id == HERD_MSG_ID_KTHXBAI;
        if (done) {
            HERD_CHECK (d.instance == 7);
            seq = d.seq;
        }
        while (herd_msg_next_line (&d, &bytes)) {
            char line[64], client[32];
            snprintf (line, sizeof (line), "%.*s", (int) bytes.size, (const char *) bytes.data);
            HERD_CHECK (sscanf (line, "AT A +0.000000000 %31s", client) == 1);
            zhashx_update (got, client, line);
            (*lines)++;
        }
        zmsg_destroy (&msg);
        if (done)
            break;
        herd_catchup_pump (catchup);
    }
    zpoller_destroy (&poller);
    return seq;
}

//  A slow asker gets every record, those changed while it read at their
//  new place, and a KTHXBAI after all of them.
static void
s_test_slow_asker (herd_catchup_t *catchup, herd_catchup_context_t *context, zsock_t *asker,
                   zframe_t *routing, int *flushed)
{
    char line[64];
    for (int i = 0; i < 12000; i++) {
        snprintf (line, sizeof (line), "AT A +0.000000000 c%05d +1+1 1", i);
        herd_store_apply (context->store, line, strlen (line), false, NULL);
    }
    herd_catchup_start (catchup, routing, 0);
    HERD_CHECK_INT (herd_catchup_serving (catchup), 1);      //  its queue is full
    HERD_CHECK_INT (*flushed, 0);
    const char *changes[] = {"AT A +0.000000000 c00000 +1+1 2",        //  sent: again
                             "AT A +0.000000000 c11999 +1+1 2",        //  not yet: once
                             "AT A +0.000000000 new +1+1 1"};
    for (int i = 0; i < 3; i++)
        herd_store_apply (context->store, changes[i], strlen (changes[i]), false, NULL);
    zhashx_t *got = zhashx_new ();
    zhashx_set_destructor (got, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_duplicator (got, (zhashx_duplicator_fn *) strdup);
    size_t lines = 0;
    uint64_t seq = s_read_all (catchup, asker, got, &lines);
    HERD_CHECK (seq == herd_store_seq (context->store));
    HERD_CHECK_INT (lines, 12002);
    HERD_CHECK_INT (zhashx_size (got), 12001);
    HERD_CHECK_STR ((char *) zhashx_lookup (got, "c00000"), changes[0]);
    HERD_CHECK_STR ((char *) zhashx_lookup (got, "c11999"), changes[1]);
    HERD_CHECK_STR ((char *) zhashx_lookup (got, "new"), changes[2]);
    HERD_CHECK_INT (*flushed, 1);
    HERD_CHECK_INT (herd_catchup_serving (catchup), 0);
    zhashx_destroy (&got);
}

void
herd_catchup_test (bool verbose)
{
    char log_path[] = "/tmp/herd_catchup_test_XXXXXX";
    int fd = mkstemp (log_path);
    HERD_CHECK (fd >= 0);
    close (fd);
    zsock_t *sync = zsock_new (ZMQ_ROUTER);
    zsock_set_sndhwm (sync, 4);
    zsock_set_router_mandatory (sync, 1);
    zsock_set_sndtimeo (sync, 0);
    HERD_CHECK (zsock_bind (sync, "inproc://catchup-test") == 0);
    zsock_t *asker = zsock_new (ZMQ_DEALER);
    zsock_set_rcvhwm (asker, 1);
    HERD_CHECK (zsock_connect (asker, "inproc://catchup-test") == 0);
    //  An ICANHAZ gives the asker's routing id
    HERD_CHECK_INT (herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_ICANHAZ, .herd = "herd"}, asker,
                                   0),
                    0);
    zmsg_t *ask = zmsg_recv (sync);
    herd_msg_t d;
    char reason[HERD_MSG_REASON_MAX];
    HERD_CHECK_INT (herd_msg_decode (&d, ask, HERD_MSG_TO_SYNC, "herd", reason, sizeof (reason)),
                    0);
    HERD_CHECK (d.id == HERD_MSG_ID_ICANHAZ && d.instance == 0 && d.seq == 0);
    zframe_t *routing = zframe_dup (d.routing);
    zmsg_destroy (&ask);

    int flushed = 0;
    herd_catchup_context_t context = {sync, herd_store_new (NULL, NULL), 7, "herd", s_count_flush,
                                      &flushed, herd_log_new (log_path, "A"), verbose};
    herd_catchup_t *catchup = herd_catchup_new (&context);
    s_test_slow_asker (catchup, &context, asker, routing, &flushed);

    //  Nothing since: KTHXBAI at once
    herd_catchup_start (catchup, routing, UINT64_MAX);
    HERD_CHECK_INT (herd_catchup_serving (catchup), 0);
    zmsg_t *msg = s_recv_reply (asker, &d);
    HERD_CHECK (d.id == HERD_MSG_ID_KTHXBAI && d.instance == 7);
    HERD_CHECK (d.seq == herd_store_seq (context.store));
    zmsg_destroy (&msg);
    //  An asker that is gone is given up
    zframe_t *nobody = zframe_new ("nobody", 6);
    herd_catchup_start (catchup, nobody, 0);
    HERD_CHECK_INT (herd_catchup_serving (catchup), 0);
    zframe_destroy (&nobody);
    //  One under way is dropped with the catch-ups
    herd_catchup_start (catchup, routing, 0);
    HERD_CHECK_INT (herd_catchup_serving (catchup), 1);
    herd_catchup_destroy (&catchup);
    HERD_CHECK (catchup == NULL);

    herd_log_destroy (&context.log);
    zfile_t *file = zfile_new (NULL, log_path);
    HERD_CHECK (zfile_input (file) == 0);
    zchunk_t *chunk = zfile_read (file, 65536, 0);
    char *logged = zchunk_strdup (chunk);
    HERD_CHECK_CONTAINS (logged, "catch-up abandoned after 0 records: requester gone");
    zstr_free (&logged);
    zchunk_destroy (&chunk);
    zfile_destroy (&file);
    unlink (log_path);
    herd_store_destroy (&context.store);
    zframe_destroy (&routing);
    zsock_destroy (&asker);
    zsock_destroy (&sync);
}
