//  herd_conn.c - a client connection: lines in, answers out in request order.

#include "herd_conn.h"
#include "../common/herd_buffer.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HERD_CONN_DRAIN_MAX   (4 * 1024 * 1024) //  bytes read and dropped before a close
#define HERD_CONN_IN_KEEP     0               //  an emptied input buffer bigger than this is freed
#define HERD_CONN_OUT_KEEP    512             //  an emptied output buffer bigger than this is freed
#define HERD_CONN_SLOT_INLINE 112             //  answers this long live in their slot (an AT ~90)
#define HERD_CONN_SPARE_MAX   1024            //  freed slots kept for reuse, per gateway

//  One answer in the making, in request order.
typedef struct _s_slot_t {
    struct _s_slot_t *next;
    uint64_t seq;
    bool ready;
    bool withheld;                  //  ready, but waits for herd_conn_release
    size_t held;                    //  bytes charged to the connection's output
    char *data;                     //  ready: the whole answer, in small or malloc'd
    size_t size;
    void *request;                  //  the caller's, until the slot is filled
    struct _s_slot_t *spare_next;   //  in shared's spare list
    char small[HERD_CONN_SLOT_INLINE];
} s_slot_t;

struct _herd_conn_t {
    int fd;
    uint64_t serial;
    herd_conn_shared_t *shared;
    void *arg;                      //  for the handler
    herd_conn_state_t state;
    herd_buffer_t in;                  //  an unfinished line, or lines kept while not reading
    size_t scanned;                 //  bytes of in (past start) known free of '\n'
    herd_buffer_t out;
    s_slot_t *head, *tail;          //  pending answers, oldest first
    size_t slot_count;
    uint64_t next_seq;
    size_t held;                    //  bytes the slots hold (charged to max_output)
    size_t counted;                 //  held + unsent output, as in shared->output_total
    size_t counted_out;             //  the unsent output part of it
    int64_t unread_since;           //  output waiting: when the client last read, ms
    size_t drained;                 //  bytes dropped while lingering
    int news;                       //  HERD_CONN_LINES etc. not yet asked for
    int handling;                   //  in the handler (no re-entry: asserted)
    char why[128];
};

//  -------------------------------------------------------------------------
//  Life

herd_conn_t *
herd_conn_new (int fd, uint64_t serial, herd_conn_shared_t *shared, void *arg)
{
    herd_conn_t *self = (herd_conn_t *) calloc (1, sizeof (herd_conn_t));
    assert (self);
    self->fd = fd;
    self->serial = serial;
    self->shared = shared;
    self->arg = arg;
    self->state = HERD_CONN_OPEN;
    return self;
}

//  Free one slot and its request.
static void
s_slot_destroy (herd_conn_t *self, s_slot_t **slot_p)
{
    s_slot_t *slot = *slot_p;
    if (!slot)
        return;
    if (slot->request && self->shared->request_free)
        self->shared->request_free (self->shared->hook_arg, slot->request);
    if (slot->data != slot->small)
        free (slot->data);
    if (self->shared->spare_count < HERD_CONN_SPARE_MAX) {
        slot->spare_next = (s_slot_t *) self->shared->spare;
        self->shared->spare = slot;
        self->shared->spare_count++;
    }
    else
        free (slot);
    *slot_p = NULL;
}

void
herd_conn_shared_release (herd_conn_shared_t *shared)
{
    while (shared->spare) {
        s_slot_t *slot = (s_slot_t *) shared->spare;
        shared->spare = slot->spare_next;
        free (slot);
    }
    shared->spare_count = 0;
}

//  Take the connection's bytes out of the node's tally: it is going.
static void
s_conn_uncount (herd_conn_t *self)
{
    self->shared->output_total -= self->counted;
    self->shared->output_freed += self->counted;
    self->counted = self->counted_out = 0;
}

void
herd_conn_destroy (herd_conn_t **self_p)
{
    herd_conn_t *self = *self_p;
    if (!self)
        return;
    s_conn_uncount (self);
    self->shared->output_freed += self->out.capacity;
    close (self->fd);
    while (self->head) {
        s_slot_t *next = self->head->next;
        s_slot_destroy (self, &self->head);
        self->head = next;
    }
    free (self->in.data);
    free (self->out.data);
    free (self);
    *self_p = NULL;
}

int
herd_conn_fd (herd_conn_t *self)
{
    return self->fd;
}

uint64_t
herd_conn_serial (herd_conn_t *self)
{
    return self->serial;
}

herd_conn_state_t
herd_conn_state (herd_conn_t *self)
{
    return self->state;
}

const char *
herd_conn_why (herd_conn_t *self)
{
    return self->why;
}

void
herd_conn_doom (herd_conn_t *self, const char *format, ...)
{
    if (self->state == HERD_CONN_DONE)
        return;
    va_list args;
    va_start (args, format);
    //  NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start above (clang 14)
    vsnprintf (self->why, sizeof (self->why), format, args);
    va_end (args);
    s_conn_uncount (self);
    self->state = HERD_CONN_DONE;
}

//  -------------------------------------------------------------------------
//  Output

//  Bring the node's tally up to date with what the connection holds now
//  (its slots, and output the socket has not taken), after either changed.
//  Output that starts to wait starts the unread clock. A connection done
//  no longer counts: it is about to go.
static void
s_conn_account (herd_conn_t *self)
{
    if (self->state == HERD_CONN_DONE)
        return;
    herd_conn_shared_t *shared = self->shared;
    size_t pending = herd_buffer_pending (&self->out);
    size_t counted = self->held + pending;
    if (pending > 0 && self->counted_out == 0)
        self->unread_since = shared->now;
    if (counted < self->counted)
        shared->output_freed += self->counted - counted;
    shared->output_total = shared->output_total - self->counted + counted;
    self->counted = counted;
    self->counted_out = pending;
}

//  Write as much output as the socket takes now. A write that fails dooms
//  the connection.
static void
s_conn_write (herd_conn_t *self)
{
    herd_buffer_t *out = &self->out;
    bool progress = false;
    while (herd_buffer_pending (out) > 0 && self->state != HERD_CONN_DONE) {
        ssize_t rc = write (self->fd, out->data + out->start, herd_buffer_pending (out));
        if (rc > 0) {
            out->start += (size_t) rc;
            progress = true;
        }
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else
            herd_conn_doom (self, "%s", rc < 0 ? strerror (errno) : "write failed");
    }
    if (progress) {
        self->news |= HERD_CONN_WROTE;      //  the client is reading
        self->unread_since = self->shared->now;
    }
    if (herd_buffer_pending (out) == 0)
        herd_buffer_empty (out, HERD_CONN_OUT_KEEP);
    s_conn_account (self);
}

//  Charge bytes the connection is about to hold (an answer, a request
//  line) to its output: to slot, or, with no slot, bytes about to be
//  appended to the output buffer. When earlier output still waits unsent
//  and this would take it past max_output, first offer the socket what
//  waits; if that is not enough the client is not reading: doom it. Past
//  the node's max_output_total the gateway sheds connections, perhaps this
//  one. Returns false if doomed.
static bool
s_conn_charge (herd_conn_t *self, s_slot_t *slot, size_t bytes)
{
    if (self->state == HERD_CONN_DONE)
        return false;
    herd_conn_shared_t *shared = self->shared;
    //  What this answer already holds (its request line, its AT line) is
    //  not "earlier output": one answer alone never drops its client
    size_t own = slot ? slot->held : 0;
    size_t unsent = self->held - own + herd_buffer_pending (&self->out);
    if (unsent > 0 && unsent + own + bytes > shared->max_output) {
        s_conn_write (self);
        unsent = self->held - own + herd_buffer_pending (&self->out);
        if (unsent > 0 && unsent + own + bytes > shared->max_output)
            herd_conn_doom (self, "slow reader: %zu bytes of answers unread, max_output is %zu",
                            unsent + own + bytes, shared->max_output);
        if (self->state == HERD_CONN_DONE)
            return false;
    }
    if (shared->output_total + bytes > shared->max_output_total && shared->shed) {
        shared->shed (shared->hook_arg, bytes);
        if (self->state == HERD_CONN_DONE)
            return false;
    }
    if (slot) {
        self->held += bytes;
        slot->held += bytes;
        s_conn_account (self);
    }
    return true;
}

//  The real time in microseconds, for the log: the owner's turn time.
static int64_t
s_wall_usec (herd_conn_shared_t *shared)
{
    if (shared->wall_usec)
        return shared->wall_usec (shared->hook_arg);
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

//  Log an answer as a client line out, if the log wants this connection's.
static void
s_conn_log_out (herd_conn_t *self, const char *data, size_t size)
{
    if (herd_log_wants_conn (self->shared->log, self->serial))
        herd_log_conn (self->shared->log, "gateway", self->serial, "out",
                       s_wall_usec (self->shared), data, size);
}

//  Move every ready answer at the head of the queue to the output buffer.
static void
s_conn_release_ready (herd_conn_t *self)
{
    while (self->head && self->head->ready && !self->head->withheld) {
        s_slot_t *slot = self->head;
        if (self->state != HERD_CONN_DONE) {
            s_conn_log_out (self, slot->data, slot->size);
            if (!herd_buffer_append (&self->out, slot->data, slot->size))
                herd_conn_doom (self, "out of memory");
        }
        self->head = slot->next;
        if (!self->head)
            self->tail = NULL;
        self->slot_count--;
        self->held -= slot->held;
        s_slot_destroy (self, &slot);
    }
    s_conn_account (self);
}

uint64_t
herd_conn_hold (herd_conn_t *self, void *request)
{
    s_slot_t *slot = (s_slot_t *) self->shared->spare;
    if (slot) {
        self->shared->spare = slot->spare_next;
        self->shared->spare_count--;
        memset (slot, 0, offsetof (s_slot_t, small));
    }
    else
        slot = (s_slot_t *) calloc (1, sizeof (s_slot_t));
    assert (slot);
    slot->seq = self->next_seq++;
    slot->request = request;
    if (self->tail)
        self->tail->next = slot;
    else
        self->head = slot;
    self->tail = slot;
    self->slot_count++;
    return slot->seq;
}

//  The slot seq, if still queued. The newest first: a slot is most often
//  filled or charged right after it was held.
static s_slot_t *
s_conn_slot (herd_conn_t *self, uint64_t seq)
{
    if (self->tail && self->tail->seq == seq)
        return self->tail;
    s_slot_t *slot = self->head;
    while (slot && slot->seq != seq)
        slot = slot->next;
    return slot;
}

void *
herd_conn_request (herd_conn_t *self, uint64_t seq)
{
    s_slot_t *slot = s_conn_slot (self, seq);
    return slot && !slot->ready ? slot->request : NULL;
}

bool
herd_conn_charge (herd_conn_t *self, uint64_t seq, size_t bytes)
{
    s_slot_t *slot = s_conn_slot (self, seq);
    return slot && !slot->ready && s_conn_charge (self, slot, bytes);
}

//  Make slot ready with an answer of count parts, charged to the
//  connection. A doomed connection's slot is made ready empty.
static void
s_slot_fill (herd_conn_t *self, s_slot_t *slot, const struct iovec *parts, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += parts[i].iov_len;
    slot->ready = true;
    //  The answer replaces what the slot held for it
    self->held -= slot->held;
    slot->held = 0;
    if (s_conn_charge (self, slot, total)) {
        slot->data = total <= sizeof (slot->small) ? slot->small : (char *) malloc (total);
        assert (slot->data);
        for (int i = 0; i < count; i++) {
            if (parts[i].iov_len)
                memcpy (slot->data + slot->size, parts[i].iov_base, parts[i].iov_len);
            slot->size += parts[i].iov_len;
        }
    }
    if (slot->request && self->shared->request_free)    //  parts may point into it
        self->shared->request_free (self->shared->hook_arg, slot->request);
    slot->request = NULL;
}

void
herd_conn_fill (herd_conn_t *self, uint64_t seq, const struct iovec *parts, int count,
                bool withheld)
{
    s_slot_t *slot = s_conn_slot (self, seq);
    if (!slot || slot->ready)
        return;
    s_slot_fill (self, slot, parts, count);
    slot->withheld = withheld && self->state != HERD_CONN_DONE;
    s_conn_release_ready (self);
}

bool
herd_conn_withheld (herd_conn_t *self, uint64_t seq)
{
    s_slot_t *slot = s_conn_slot (self, seq);
    return slot && slot->withheld;
}

void
herd_conn_release (herd_conn_t *self, uint64_t seq)
{
    s_slot_t *slot = s_conn_slot (self, seq);
    if (slot && slot->withheld) {
        slot->withheld = false;
        s_conn_release_ready (self);
    }
}

void
herd_conn_answer (herd_conn_t *self, const struct iovec *parts, int count)
{
    if (self->head) {
        //  Behind a pending answer: wait in a slot, in request order
        herd_conn_fill (self, herd_conn_hold (self, NULL), parts, count, false);
        return;
    }
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += parts[i].iov_len;
    if (!s_conn_charge (self, NULL, total))
        return;
    herd_buffer_t *out = &self->out;
    if (!herd_buffer_reserve (out, total)) {
        herd_conn_doom (self, "out of memory");
        return;
    }
    char *answer = out->data + out->size;
    for (int i = 0; i < count; i++) {
        memcpy (out->data + out->size, parts[i].iov_base, parts[i].iov_len);
        out->size += parts[i].iov_len;
    }
    s_conn_log_out (self, answer, total);
    s_conn_account (self);
}

void
herd_conn_flush (herd_conn_t *self)
{
    if (self->state == HERD_CONN_DONE)
        return;
    s_conn_write (self);
    if (self->state == HERD_CONN_DONE || herd_buffer_pending (&self->out) > 0 || self->head)
        return;
    if (self->state == HERD_CONN_CLOSING) {
        //  Closing with unread input would send a reset that can destroy our
        //  last answer in flight: end our side, read to EOF, then close
        shutdown (self->fd, SHUT_WR);
        self->state = HERD_CONN_LINGERING;
        self->news |= HERD_CONN_LINGER;
    }
    else
    if (self->state == HERD_CONN_FINISHED) {
        snprintf (self->why, sizeof (self->why), "client finished");
        self->state = HERD_CONN_DONE;
    }
}

uint32_t
herd_conn_events (herd_conn_t *self)
{
    uint32_t out = herd_buffer_pending (&self->out) > 0 ? EPOLLOUT : 0;
    switch (self->state) {
        case HERD_CONN_OPEN:
            return EPOLLIN | out;
        case HERD_CONN_LINGERING:
            return EPOLLIN;
        case HERD_CONN_DONE:
            return 0;
        default:
            return out;
    }
}

//  -------------------------------------------------------------------------
//  Input

//  A line over max_line: answer "? " and the first max_line bytes, in
//  request order, then close.
static void
s_conn_overlong (herd_conn_t *self, const char *line)
{
    size_t max_line = self->shared->max_line;
    struct iovec parts[] = {{(void *) "? ", 2}, {(void *) line, max_line}, {(void *) "\n", 1}};
    herd_conn_fill (self, herd_conn_hold (self, NULL), parts, 3, false);
    herd_log_printf (self->shared->log, "gateway",
                     "conn=%" PRIu64 " line longer than max_line %zu bytes: closing",
                     self->serial, max_line);
    if (self->state != HERD_CONN_DONE)
        self->state = HERD_CONN_CLOSING;
}

//  Hand the complete lines at the front of data (size bytes, the first
//  scanned of them known free of '\n') to the handler, enforcing the line
//  cap; stop at max_pending requests in flight (paused), when the handler
//  defers a line, when closing, or at an unfinished line. Returns the bytes
//  used up: all of them once a line over the cap closes the connection.
static size_t
s_conn_parse (herd_conn_t *self, const char *data, size_t size, size_t scanned)
{
    herd_conn_shared_t *shared = self->shared;
    size_t used = 0;
    while (self->state == HERD_CONN_OPEN) {
        if (self->slot_count >= shared->max_pending) {
            self->state = HERD_CONN_PAUSED;
            break;
        }
        const char *start = data + used;
        size_t pending = size - used;
        const char *newline = (const char *) memchr (start + scanned, '\n', pending - scanned);
        size_t line_size = newline ? (size_t) (newline - start) : pending;
        if (line_size > shared->max_line) {
            s_conn_overlong (self, start);
            return size;
        }
        if (!newline)
            break;
        self->handling++;
        herd_conn_verdict_t verdict = shared->handler (self->arg, self, start, line_size);
        self->handling--;
        if (verdict == HERD_CONN_DEFER) {
            if (self->state == HERD_CONN_OPEN)
                self->state = HERD_CONN_DEFERRED;
            break;
        }
        used += line_size + 1;
        scanned = 0;
        self->news |= HERD_CONN_LINES;
    }
    return used;
}

//  True if the connection no longer reads input: closing, lingering, done.
static bool
s_conn_closing (herd_conn_t *self)
{
    return self->state == HERD_CONN_CLOSING || self->state == HERD_CONN_LINGERING
           || self->state == HERD_CONN_DONE;
}

//  Hand the lines waiting in the input buffer to the handler; free the
//  buffer once it is empty.
static void
s_conn_parse_buffer (herd_conn_t *self)
{
    herd_buffer_t *in = &self->in;
    size_t pending = herd_buffer_pending (in);
    if (pending == 0)
        return;
    size_t used = s_conn_parse (self, in->data + in->start, pending, self->scanned);
    in->start += used;
    pending -= used;
    self->scanned = self->state == HERD_CONN_OPEN ? pending : 0;
    if (pending == 0 || s_conn_closing (self)) {
        herd_buffer_empty (in, HERD_CONN_IN_KEEP);
        self->scanned = 0;
    }
}

//  Handle bytes just read into scratch. Lines are handled where they lie;
//  only an unfinished line, or lines left while not reading, are copied
//  into the connection's own buffer. The buffer's unfinished line (it holds
//  nothing else when reading) is completed first.
static void
s_conn_handle_chunk (herd_conn_t *self, const char *data, size_t size)
{
    herd_buffer_t *in = &self->in;
    size_t max_line = self->shared->max_line;
    size_t pending = herd_buffer_pending (in);
    if (pending > 0) {
        const char *newline = (const char *) memchr (data, '\n', size);
        size_t take = newline ? (size_t) (newline - data) + 1 : size;
        //  Past max_line + 1 bytes the line is too long whatever follows
        size_t room = pending <= max_line ? max_line + 1 - pending : 0;
        if (!herd_buffer_append (in, data, take < room ? take : room)) {
            herd_conn_doom (self, "out of memory");
            return;
        }
        data += take;
        size -= take;
        s_conn_parse_buffer (self);
        if (herd_buffer_pending (in) > 0 && size > 0 && !s_conn_closing (self)) {
            //  Paused by that line: keep the rest for later, unparsed
            if (!herd_buffer_append (in, data, size))
                herd_conn_doom (self, "out of memory");
            size = 0;
        }
    }
    if (size > 0 && !s_conn_closing (self)) {
        size_t used = s_conn_parse (self, data, size, 0);
        if (used < size && !s_conn_closing (self)) {
            if (herd_buffer_append (in, data + used, size - used))
                self->scanned = self->state == HERD_CONN_OPEN ? size - used : 0;
            else
                herd_conn_doom (self, "out of memory");
        }
    }
}

//  The client shut its sending side: a last line without '\n' is still a
//  line, handed over whatever the caps say (the handler sees the state
//  FINISHED).
static void
s_conn_finish (herd_conn_t *self)
{
    self->state = HERD_CONN_FINISHED;
    herd_buffer_t *in = &self->in;
    size_t pending = herd_buffer_pending (in);
    if (pending > 0) {
        self->handling++;
        self->shared->handler (self->arg, self, in->data + in->start, pending);
        self->handling--;
    }
    herd_buffer_empty (in, HERD_CONN_IN_KEEP);
    self->scanned = 0;
}

//  Read and drop the input of a lingering connection, until EOF.
static void
s_conn_drain (herd_conn_t *self, char *scratch, size_t scratch_size)
{
    while (true) {
        ssize_t rc = read (self->fd, scratch, scratch_size);
        if (rc > 0) {
            self->drained += (size_t) rc;
            if (self->drained > HERD_CONN_DRAIN_MAX) {
                herd_conn_doom (self, "line too long; input still coming");
                return;
            }
        }
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        else {
            herd_conn_doom (self, "line too long");
            return;
        }
    }
}

void
herd_conn_read (herd_conn_t *self, char *scratch, size_t scratch_size, size_t budget)
{
    assert (!self->handling);
    if (self->state == HERD_CONN_LINGERING) {
        s_conn_drain (self, scratch, scratch_size);
        return;
    }
    while (budget > 0 && self->state == HERD_CONN_OPEN) {
        ssize_t rc = read (self->fd, scratch, scratch_size);
        if (rc > 0) {
            budget -= (size_t) rc < budget ? (size_t) rc : budget;
            s_conn_handle_chunk (self, scratch, (size_t) rc);
            //  Less than asked for: the socket was empty. epoll is level-
            //  triggered, so more (or EOF) wakes it again, and the read
            //  that would find EAGAIN is a system call saved per line
            if ((size_t) rc < scratch_size)
                return;
        }
        else
        if (rc == 0)
            s_conn_finish (self);
        else
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        else
        if (errno != EINTR)
            herd_conn_doom (self, "%s", strerror (errno));
    }
}

void
herd_conn_pump (herd_conn_t *self)
{
    assert (!self->handling);
    if (self->state == HERD_CONN_PAUSED && self->slot_count < self->shared->max_pending) {
        self->state = HERD_CONN_OPEN;
        s_conn_parse_buffer (self);
    }
}

void
herd_conn_resume (herd_conn_t *self)
{
    assert (!self->handling);
    if (self->state == HERD_CONN_DEFERRED) {
        self->state = HERD_CONN_OPEN;
        s_conn_parse_buffer (self);
    }
}

//  -------------------------------------------------------------------------
//  What the gateway asks

int
herd_conn_news (herd_conn_t *self)
{
    int news = self->news;
    self->news = 0;
    return news;
}

bool
herd_conn_partial (herd_conn_t *self)
{
    return self->state == HERD_CONN_OPEN && herd_buffer_pending (&self->in) > 0;
}

bool
herd_conn_awaiting (herd_conn_t *self)
{
    return self->head && !self->head->ready;
}

size_t
herd_conn_unsent (herd_conn_t *self)
{
    return herd_buffer_pending (&self->out);
}

size_t
herd_conn_held (herd_conn_t *self)
{
    return self->counted;
}

int64_t
herd_conn_unread_since (herd_conn_t *self)
{
    return self->counted_out ? self->unread_since : INT64_MAX;
}

//  -------------------------------------------------------------------------
//  Self test: a connection over socketpair(2), the test as client and
//  gateway. The handler answers "X..." lines now and holds a slot for
//  "H..." lines (their request: the line), defers "D..." lines once.

#include "../common/herd_check.h"

#include <fcntl.h>

typedef struct {
    herd_conn_shared_t shared;
    char lines[16][64];             //  lines handed over, in order
    int count;
    uint64_t held[16];              //  slots held, in order
    int holds;
    int freed;                      //  requests freed
    bool deferred;                  //  a "D" line was deferred once
    char scratch[64];               //  small: lines cut across reads
} s_test_t;

static herd_conn_verdict_t
s_test_handler (void *arg, herd_conn_t *conn, const char *line, size_t size)
{
    s_test_t *test = (s_test_t *) arg;
    if (size > 0 && line[0] == 'D' && !test->deferred) {
        test->deferred = true;
        return HERD_CONN_DEFER;
    }
    HERD_CHECK (test->count < 16 && size < 64);
    snprintf (test->lines[test->count++], 64, "%.*s", (int) size, line);
    if (size > 0 && line[0] == 'H')
        test->held[test->holds++] = herd_conn_hold (conn, strndup (line, size));
    else {
        struct iovec parts[] = {{(void *) line, size}, {(void *) "\n", 1}};
        herd_conn_answer (conn, parts, 2);
    }
    return HERD_CONN_TAKEN;
}

static void
s_test_free (void *arg, void *request)
{
    ((s_test_t *) arg)->freed++;
    free (request);
}

//  A connection to a client at *peer, with the test's limits.
static herd_conn_t *
s_test_conn (s_test_t *test, int *peer)
{
    memset (test, 0, sizeof (*test));
    test->shared = (herd_conn_shared_t){.max_line = 40, .max_output = 1 << 20, .max_pending = 3,
                                        .max_output_total = 1 << 24, .handler = s_test_handler,
                                        .request_free = s_test_free, .hook_arg = test};
    int pair[2];
    HERD_CHECK_INT (socketpair (AF_UNIX, SOCK_STREAM, 0, pair), 0);
    fcntl (pair[0], F_SETFL, O_NONBLOCK);
    *peer = pair[1];
    return herd_conn_new (pair[0], 1, &test->shared, test);
}

//  The client sends text; the connection reads it.
static void
s_test_send (s_test_t *test, herd_conn_t *conn, int peer, const char *text)
{
    HERD_CHECK_INT (write (peer, text, strlen (text)), strlen (text));
    herd_conn_read (conn, test->scratch, sizeof (test->scratch), 1 << 20);
}

//  The connection flushes; the client reads what came, as a string.
static char *
s_test_receive (herd_conn_t *conn, int peer)
{
    static char buffer[4096];
    herd_conn_flush (conn);
    ssize_t got = recv (peer, buffer, sizeof (buffer) - 1, MSG_DONTWAIT);
    buffer[got > 0 ? got : 0] = 0;
    return buffer;
}

//  Lines cut across reads, in small reads; a \r stays for the handler.
static void
s_test_lines (void)
{
    s_test_t test;
    int peer;
    herd_conn_t *conn = s_test_conn (&test, &peer);
    s_test_send (&test, conn, peer, "Xsp");
    HERD_CHECK_INT (test.count, 0);
    HERD_CHECK (herd_conn_partial (conn));
    s_test_send (&test, conn, peer, "lit\nXtwo\r\nX");
    s_test_send (&test, conn, peer, "three is a line longer than the scratch\nX4\n");
    HERD_CHECK_INT (test.count, 4);
    HERD_CHECK_STR (test.lines[0], "Xsplit");
    HERD_CHECK_STR (test.lines[1], "Xtwo\r");
    HERD_CHECK_STR (test.lines[2], "Xthree is a line longer than the scratch");
    HERD_CHECK_STR (test.lines[3], "X4");
    HERD_CHECK (!herd_conn_partial (conn));
    HERD_CHECK (herd_conn_news (conn) & HERD_CONN_LINES);
    HERD_CHECK_INT (herd_conn_news (conn), 0);
    HERD_CHECK_STR (s_test_receive (conn, peer),
                    "Xsplit\nXtwo\r\nXthree is a line longer than the scratch\nX4\n");
    HERD_CHECK (herd_conn_events (conn) == EPOLLIN);
    herd_conn_destroy (&conn);
    herd_conn_shared_release (&test.shared);
    HERD_CHECK (conn == NULL);
    HERD_CHECK_INT (test.shared.output_total, 0);
    close (peer);
}

//  Answers go out in request order, whatever order slots are filled in;
//  a withheld answer holds back those after it.
static void
s_test_order (void)
{
    s_test_t test;
    int peer;
    herd_conn_t *conn = s_test_conn (&test, &peer);
    s_test_send (&test, conn, peer, "Xa\nHb\nHc\n");
    HERD_CHECK_INT (test.holds, 2);
    HERD_CHECK_STR ((char *) herd_conn_request (conn, test.held[0]), "Hb");
    HERD_CHECK (herd_conn_awaiting (conn));
    HERD_CHECK_STR (s_test_receive (conn, peer), "Xa\n");
    s_test_send (&test, conn, peer, "Xd\n");      //  behind the held ones
    struct iovec c[] = {{(void *) "C\n", 2}};
    herd_conn_fill (conn, test.held[1], c, 1, false);
    HERD_CHECK (herd_conn_request (conn, test.held[1]) == NULL);
    HERD_CHECK_STR (s_test_receive (conn, peer), "");
    struct iovec b[] = {{(void *) "B\n", 2}};
    herd_conn_fill (conn, test.held[0], b, 1, true);
    HERD_CHECK (herd_conn_withheld (conn, test.held[0]));
    HERD_CHECK (!herd_conn_awaiting (conn));
    HERD_CHECK_STR (s_test_receive (conn, peer), "");
    herd_conn_release (conn, test.held[0]);
    HERD_CHECK_STR (s_test_receive (conn, peer), "B\nC\nXd\n");
    HERD_CHECK_INT (test.freed, 2);
    HERD_CHECK (herd_conn_news (conn) & HERD_CONN_WROTE);
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_PAUSED);     //  Xd took a slot: 3
    herd_conn_pump (conn);
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_OPEN);
    //  The client finishes with a line without '\n', held: answered, then done
    s_test_send (&test, conn, peer, "Hlast");
    shutdown (peer, SHUT_WR);
    herd_conn_read (conn, test.scratch, sizeof (test.scratch), 1 << 20);
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_FINISHED);
    HERD_CHECK_STR (test.lines[test.count - 1], "Hlast");
    herd_conn_fill (conn, test.held[2], b, 1, false);
    HERD_CHECK_STR (s_test_receive (conn, peer), "B\n");
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_DONE);
    HERD_CHECK_STR (herd_conn_why (conn), "client finished");
    herd_conn_destroy (&conn);
    herd_conn_shared_release (&test.shared);
    close (peer);
}

//  A line over max_line: "? " and its first max_line bytes, after the
//  answers before it, then a lingering close that ends at the client's EOF.
static void
s_test_max_line (void)
{
    s_test_t test;
    int peer;
    herd_conn_t *conn = s_test_conn (&test, &peer);
    s_test_send (&test, conn, peer, "Hfirst\n0123456789012345678901234567890123456789");
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_OPEN);
    s_test_send (&test, conn, peer, "ab\nXnever\n");
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_CLOSING);
    HERD_CHECK_INT (test.count, 1);
    HERD_CHECK_STR (s_test_receive (conn, peer), "");
    struct iovec parts[] = {{(void *) "F\n", 2}};
    herd_conn_fill (conn, test.held[0], parts, 1, false);
    HERD_CHECK_STR (s_test_receive (conn, peer),
                    "F\n? 0123456789012345678901234567890123456789\n");
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_LINGERING);
    HERD_CHECK (herd_conn_news (conn) & HERD_CONN_LINGER);
    HERD_CHECK (herd_conn_events (conn) == EPOLLIN);
    char byte;
    HERD_CHECK_INT (read (peer, &byte, 1), 0);            //  our side shut
    s_test_send (&test, conn, peer, "more input, dropped\n");
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_LINGERING);
    close (peer);
    herd_conn_read (conn, test.scratch, sizeof (test.scratch), 1 << 20);
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_DONE);
    HERD_CHECK_STR (herd_conn_why (conn), "line too long");
    herd_conn_destroy (&conn);
    herd_conn_shared_release (&test.shared);
}

//  At max_pending (3) requests in flight the connection stops reading; it
//  reads again when answers went out. A deferred line waits for resume.
static void
s_test_max_pending (void)
{
    s_test_t test;
    int peer;
    herd_conn_t *conn = s_test_conn (&test, &peer);
    s_test_send (&test, conn, peer, "H1\nH2\nH3\nX4\nDefer\nX6\n");
    HERD_CHECK_INT (test.count, 3);
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_PAUSED);
    HERD_CHECK (herd_conn_events (conn) == 0);
    HERD_CHECK (!herd_conn_partial (conn));
    herd_conn_pump (conn);                          //  still at the cap
    HERD_CHECK_INT (test.count, 3);
    struct iovec parts[] = {{(void *) "A\n", 2}};
    herd_conn_fill (conn, test.held[1], parts, 1, false);
    herd_conn_pump (conn);                          //  H1 still waits: 3 slots
    HERD_CHECK_INT (test.count, 3);
    herd_conn_fill (conn, test.held[0], parts, 1, false);
    herd_conn_pump (conn);
    HERD_CHECK_INT (test.count, 4);
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_DEFERRED);
    HERD_CHECK (herd_conn_events (conn) == EPOLLOUT);
    HERD_CHECK_STR (s_test_receive (conn, peer), "A\nA\n");
    herd_conn_resume (conn);
    HERD_CHECK_INT (test.count, 5);                 //  H3, X4, Defer: paused again
    HERD_CHECK_STR (test.lines[4], "Defer");
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_PAUSED);
    s_test_send (&test, conn, peer, "X7\n");          //  not read yet
    HERD_CHECK_INT (test.count, 5);
    herd_conn_fill (conn, test.held[2], parts, 1, false);
    herd_conn_pump (conn);                          //  X6, kept in the buffer
    HERD_CHECK_INT (test.count, 6);
    HERD_CHECK (herd_conn_events (conn) & EPOLLIN);
    herd_conn_read (conn, test.scratch, sizeof (test.scratch), 1 << 20);
    HERD_CHECK_INT (test.count, 7);
    HERD_CHECK_STR (s_test_receive (conn, peer), "A\nX4\nDefer\nX6\nX7\n");
    herd_conn_destroy (&conn);
    herd_conn_shared_release (&test.shared);
    close (peer);
}

//  A client that does not read is dropped past max_output; the node's cap
//  calls the shed hook.
static void
s_test_shed (void *arg, size_t bytes)
{
    (void) bytes;
    s_test_t *test = (s_test_t *) arg;
    test->freed += 100;
}

static void
s_test_max_output (void)
{
    s_test_t test;
    int peer;
    herd_conn_t *conn = s_test_conn (&test, &peer);
    test.shared.max_output = 4096;
    int small = 4096;
    setsockopt (herd_conn_fd (conn), SOL_SOCKET, SO_SNDBUF, &small, sizeof (small));
    char line[32];
    memset (line, 'x', sizeof (line));
    struct iovec parts[] = {{line, sizeof (line)}};
    int answers = 0;
    while (herd_conn_state (conn) != HERD_CONN_DONE && answers < 100000) {
        herd_conn_answer (conn, parts, 1);
        answers++;
    }
    HERD_CHECK_INT (herd_conn_state (conn), HERD_CONN_DONE);
    HERD_CHECK (strstr (herd_conn_why (conn), "slow reader"));
    HERD_CHECK_INT (test.shared.output_total, 0);   //  out of the tally once doomed
    herd_conn_destroy (&conn);
    herd_conn_shared_release (&test.shared);
    close (peer);
    //  Past max_output_total: the gateway's hook is asked to shed
    conn = s_test_conn (&test, &peer);
    test.shared.max_output_total = 10;
    test.shared.shed = s_test_shed;
    herd_conn_answer (conn, parts, 1);
    HERD_CHECK_INT (test.freed, 100);
    HERD_CHECK_INT (herd_conn_held (conn), sizeof (line));
    HERD_CHECK (herd_conn_unread_since (conn) == 0);
    herd_conn_flush (conn);
    HERD_CHECK_INT (herd_conn_held (conn), 0);
    HERD_CHECK (herd_conn_unread_since (conn) == INT64_MAX);
    herd_conn_destroy (&conn);
    herd_conn_shared_release (&test.shared);
    close (peer);
}

void
herd_conn_test (bool verbose)
{
    if (verbose)
        printf ("   lines, order, max_line, max_pending, max_output\n");
    s_test_lines ();
    s_test_order ();
    s_test_max_line ();
    s_test_max_pending ();
    s_test_max_output ();
}
