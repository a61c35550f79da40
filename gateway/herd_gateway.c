//  herd_gateway.c - the gateway actor: an epoll loop serving client lines.

#include "herd_gateway.h"
#include "../common/herd_alive.h"
#include "../common/herd_check.h"
#include "../common/herd_hist.h"
#include "../common/herd_msg.h"
#include "../common/herd_proto.h"
#include "../common/herd_record.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define HERD_GW_READ_CHUNK  (64 * 1024)     //  bytes read per read(2), into one shared buffer
#define HERD_GW_READ_BUDGET (256 * 1024)    //  bytes read per connection per turn
#define HERD_GW_ZMQ_HWM     100000          //  queued messages to places, and from both
#define HERD_GW_BUS_HWM     1000            //  queued UPDATEs (<= 64 KB each) to the bus
#define HERD_GW_DRAIN_MAX   (4 * 1024 * 1024) //  bytes read and dropped before a close
#define HERD_GW_BUFFER_MIN  256             //  first capacity of a connection's buffer
#define HERD_GW_IN_KEEP     0               //  an emptied input buffer bigger than this is freed
#define HERD_GW_OUT_KEEP    512             //  an emptied output buffer bigger than this is freed
#define HERD_GW_ACCEPT_MAX  256             //  connections accepted per turn
#define HERD_GW_ACCEPT_PAUSE_MS 100         //  accepting stops this long when accept fails
#define HERD_GW_REPORT_MS   1000            //  refused connections are logged this often
#define HERD_GW_FD_RESERVE  64              //  descriptors kept from clients (at most 1/8)
#define HERD_GW_FD_MARGIN   1024            //  descriptors wanted beyond max_clients
#define HERD_GW_TICK_MS     1000            //  longest sleep of the loop
#define HERD_GW_UPDATES_MAX (64 * 1024)     //  bytes of updates sent to the bus at once
#define HERD_GW_AT_STACK    512             //  AT lines up to this long are built on the stack
#define HERD_GW_BACKLOG_MS  5               //  retry sending to a bus that was full this often
#define HERD_GW_ZMQ_BATCH   256             //  replies from bus and places handled per turn
#define HERD_GW_ASKED_MAX   256             //  WHATSATs of all clients in flight at once
#define HERD_GW_SNDBUF      (256 * 1024)    //  client socket send buffer (the kernel doubles it)
#define HERD_GW_TRIM_BYTES  (8 * 1024 * 1024) //  answers freed before memory goes back (1 s tick)
//  TCP keepalive: first probe after 60 s of silence, then every 10 s; 6
//  unanswered probes (about 2 minutes in all) end a half-open connection
#define HERD_GW_KEEPIDLE    60
#define HERD_GW_KEEPINTVL   10
#define HERD_GW_KEEPCNT     6

//  epoll tags: what an event's fd belongs to (high 32 bits of data.u64)
enum { TAG_CLIENT = 0, TAG_LISTEN = 1, TAG_PIPE = 2, TAG_BUS = 3, TAG_PLACES = 4 };

//  The connection time-outs, each a list ordered by deadline (see s_timer_*)
enum { TIMER_IDLE = 0, TIMER_LINE = 1, TIMER_COUNT = 2 };

//  A request id as sent to bus and places: which connection, which slot.
typedef struct {
    uint64_t serial;                //  connection serial, never reused
    uint64_t seq;                   //  slot sequence on that connection
    int32_t fd;                     //  where the connection lives
    int32_t pad;
} s_reqid_t;

//  One response in the making, in request order on its connection.
typedef struct _s_slot_t {
    struct _s_slot_t *next;
    uint64_t seq;
    bool ready;
    bool unstored;                  //  an IAMAT's answer: waits for the bus to store it
    bool asked;                     //  a WHATSAT counted in self->asked
    size_t held;                    //  bytes charged to the connection's output
    char *data;                     //  ready: the whole response
    size_t size;
    //  WHATSAT in progress
    char *line;                     //  the request line, for "? line"
    size_t line_size;
    char *radius;                   //  as the client wrote it
    int bound;
    char *at_line;                  //  the AT record once the bus answered
    size_t at_size;
    int64_t started;                //  WHATSAT: when the line came, usec
} s_slot_t;

//  An IAMAT answer waiting for its update to be stored: which connection
//  and slot, and the batch (UPDATE message) the update went in.
typedef struct {
    uint64_t serial;
    uint64_t seq;
    uint64_t batch;
    int64_t since;                  //  when the answer was ready, ms (monotonic)
    int32_t fd;
} s_waiter_t;

//  A growable byte buffer with a read cursor.
typedef struct {
    char *data;
    size_t size;                    //  bytes held
    size_t start;                   //  bytes consumed from the front
    size_t capacity;
} s_buffer_t;

typedef struct _s_conn_t s_conn_t;

//  A connection's place on one time-out list.
typedef struct {
    s_conn_t *prev, *next;
    int64_t since;                  //  when the clock started, ms (monotonic)
    bool linked;
} s_timer_link_t;

//  A time-out list: connections in order of since, oldest first. All share
//  one time-out, so appending with the current time keeps the order, and
//  expiry only looks at the head (czmq zloop's tickets, for one time-out).
typedef struct {
    s_conn_t *head, *tail;
} s_timer_list_t;

struct _s_conn_t {
    int fd;
    uint64_t serial;
    char peer[64];
    s_buffer_t in;                  //  an unfinished line, or lines kept while paused
    size_t scanned;                 //  bytes of in (past start) known free of '\n'
    s_buffer_t out;
    s_slot_t *head, *tail;          //  pending responses, oldest first
    size_t slot_count;              //  slots in that list
    size_t held;                    //  bytes the slots hold (charged to max_output)
    size_t counted;                 //  held + unsent output, as in self->output_total
    size_t counted_out;             //  the unsent output part of it
    int64_t unread_since;           //  output waiting: when the client last read, ms
    uint64_t next_seq;
    bool eof;                       //  client shut its sending side
    bool closing;                   //  close once out is written
    bool draining;                  //  closing: output sent, reading to EOF
    size_t drained;                 //  bytes discarded while draining
    bool paused;                    //  max_pending requests in flight: not reading
    bool waiting;                   //  paused, in the queue for a WHATSAT's turn
    bool granted;                   //  may send its next WHATSAT out of turn
    bool parsing;                   //  in s_conn_handle_input (no re-entry)
    bool doomed;                    //  to be closed at once, for why
    char why[128];
    uint32_t events;                //  epoll interest now registered
    bool dirty;                     //  on the dirty list
    s_timer_link_t timers[TIMER_COUNT];
};

//  A connection that may be dropped for max_output_total (s_self_shed).
typedef struct {
    s_conn_t *conn;
    int64_t since;                  //  its unread clock; INT64_MAX: no output waits
    size_t bytes;                   //  what it holds
} s_shed_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *bus;                   //  DEALER to the bus ROUTER
    zsock_t *places;                //  DEALER to the places ROUTER
    int epoll;
    int listener;
    int spare_fd;                   //  kept for EMFILE: close, accept, refuse
    s_conn_t **conns;               //  indexed by fd
    size_t conn_capacity;
    size_t conn_count;
    s_reqid_t *dirty;               //  connections with output to write (fd, serial)
    size_t dirty_count;
    size_t dirty_capacity;
    uint64_t next_serial;
    const herd_node_t *node;
    size_t max_line;
    size_t max_output;
    size_t max_output_total;        //  unread answers of all connections, bytes
    size_t output_total;            //  what they hold now (the conns' counted)
    size_t output_freed;            //  bytes of answers freed since the last trim
    int64_t trimmed_at;             //  when memory was last given back, ms
    s_shed_t *shed;                 //  connections to drop when over max_output_total
    size_t shed_capacity;
    size_t max_pending;
    size_t asked;                   //  WHATSATs in flight (s_slot_t.asked)
    s_reqid_t *queue;               //  connections waiting for a WHATSAT's turn, FIFO
    size_t queue_head, queue_size, queue_capacity;
    size_t waiting;                 //  connections waiting (queue entries may be stale)
    size_t max_clients;
    int64_t max_time_ahead_s;       //  IAMAT times further ahead are refused; 0: no bound
    int64_t timeouts[TIMER_COUNT];  //  idle_timeout_ms, line_timeout_ms
    s_timer_list_t timers[TIMER_COUNT];
    int64_t now;                    //  ms, monotonic, read once per turn
    struct timespec wall;           //  real time, read at most once per turn
    bool wall_valid;                //  wall was read this turn
    int64_t accept_resume;          //  accepting paused until then; 0 = not paused
    int64_t pause_reported;         //  when a pause was last logged
    size_t refused;                 //  connections refused since the last report
    int64_t refused_reported;       //  when the last report was logged
    char refused_why[96];           //  why the last one was refused
    herd_log_t *log;
    char *updates;                  //  this turn's AT lines for the bus, '\n'-separated
    size_t updates_size;
    size_t updates_count;
    uint64_t batch;                 //  number of the UPDATE being filled (from 1)
    s_waiter_t *waiters;            //  answers waiting to be stored, oldest first (a ring)
    size_t waiter_head, waiter_count, waiter_capacity;
    int ack_timeout_ms;             //  a waiter older than this closes its connection
    zlist_t *backlog;               //  messages the bus could not take yet, in order (zmsg_t)
    bool check_pipe;                //  its ZMQ_FD fired: ask ZMQ_EVENTS
    bool check_places;              //  its ZMQ_FD fired, or we sent to it
    bool zmq_backlog;               //  replies left for the next turn: do not sleep
    char *input;                    //  every read lands here (HERD_GW_READ_CHUNK bytes);
                                    //  connections keep only what they cannot parse now
    //  Counters for the monitor (STATS to the bus once a second)
    uint64_t iamats, whatsats, invalids, opened;
    uint64_t unstored;              //  connections closed: an update not stored in time
    uint64_t last_iamats, last_whatsats;
    herd_hist_t whatsat_latency;    //  line in to answer ready, since last STATS
    herd_hist_t whatsat_latency_all;    //  the same since start, for metrics
    int64_t stats_at;               //  when STATS were last sent, ms
    bool verbose;
    bool terminated;
} s_self_t;

//  -------------------------------------------------------------------------
//  Buffers

//  Make room for extra more bytes; false when out of memory.
static bool
s_buffer_reserve (s_buffer_t *buffer, size_t extra)
{
    if (buffer->start > 0 && buffer->size + extra > buffer->capacity) {
        memmove (buffer->data, buffer->data + buffer->start, buffer->size - buffer->start);
        buffer->size -= buffer->start;
        buffer->start = 0;
    }
    if (buffer->size + extra <= buffer->capacity)
        return true;
    size_t capacity = buffer->capacity ? buffer->capacity : HERD_GW_BUFFER_MIN;
    while (capacity < buffer->size + extra)
        capacity *= 2;
    char *data = (char *) realloc (buffer->data, capacity);
    if (!data)
        return false;
    buffer->data = data;
    buffer->capacity = capacity;
    return true;
}

//  Append bytes; false when out of memory.
static bool
s_buffer_append (s_buffer_t *buffer, const char *data, size_t size)
{
    if (!s_buffer_reserve (buffer, size))
        return false;
    memcpy (buffer->data + buffer->size, data, size);
    buffer->size += size;
    return true;
}

//  Bytes not yet consumed.
static inline size_t
s_buffer_pending (const s_buffer_t *buffer)
{
    return buffer->size - buffer->start;
}

//  Forget an emptied buffer's contents; give its memory back when it is
//  bigger than keep bytes, so an idle connection costs (almost) nothing.
static void
s_buffer_empty (s_buffer_t *buffer, size_t keep)
{
    buffer->start = buffer->size = 0;
    if (buffer->capacity > keep) {
        free (buffer->data);
        buffer->data = NULL;
        buffer->capacity = 0;
    }
}

//  -------------------------------------------------------------------------
//  Time-outs

//  The monotonic clock in milliseconds.
static int64_t
s_clock_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  Start a loop turn's clocks: the monotonic one now, the real-time one
//  when first asked for (s_self_wall).
static void
s_self_tick (s_self_t *self)
{
    self->now = s_clock_ms ();
    self->wall_valid = false;
}

//  The real time of this loop turn: what the AT line's time difference is
//  measured from, and the log's time for the lines in and out. One read of
//  the clock per turn, not three per request; a turn's lines were all
//  received by its start.
static const struct timespec *
s_self_wall (s_self_t *self)
{
    if (!self->wall_valid) {
        clock_gettime (CLOCK_REALTIME, &self->wall);
        self->wall_valid = true;
    }
    return &self->wall;
}

//  The same, in microseconds since the epoch, for the log.
static int64_t
s_self_wall_usec (s_self_t *self)
{
    const struct timespec *wall = s_self_wall (self);
    return (int64_t) wall->tv_sec * 1000000 + wall->tv_nsec / 1000;
}

//  Take a connection off a time-out list, if it is on it.
static void
s_timer_unlink (s_self_t *self, s_conn_t *conn, int kind)
{
    s_timer_link_t *link = &conn->timers[kind];
    if (!link->linked)
        return;
    s_timer_list_t *list = &self->timers[kind];
    if (link->prev)
        link->prev->timers[kind].next = link->next;
    else
        list->head = link->next;
    if (link->next)
        link->next->timers[kind].prev = link->prev;
    else
        list->tail = link->prev;
    link->prev = link->next = NULL;
    link->linked = false;
}

//  (Re)start a connection's clock of one kind now: move it to the tail.
static void
s_timer_start (s_self_t *self, s_conn_t *conn, int kind)
{
    s_timer_unlink (self, conn, kind);
    s_timer_link_t *link = &conn->timers[kind];
    s_timer_list_t *list = &self->timers[kind];
    link->since = self->now;
    link->prev = list->tail;
    if (list->tail)
        list->tail->timers[kind].next = conn;
    else
        list->head = conn;
    list->tail = conn;
    link->linked = true;
}

//  -------------------------------------------------------------------------
//  Connections

//  Free one slot and what it holds.
static void
s_slot_destroy (s_slot_t **slot_p)
{
    s_slot_t *slot = *slot_p;
    if (!slot)
        return;
    free (slot->data);
    free (slot->line);
    free (slot->radius);
    free (slot->at_line);
    free (slot);
    *slot_p = NULL;
}

//  A WHATSAT's slot is answered or gone: no longer in flight.
static void
s_slot_done (s_self_t *self, s_slot_t *slot)
{
    if (slot->asked) {
        slot->asked = false;
        self->asked--;
    }
}

//  Bring the node's total of unread answers up to date with what the
//  connection holds now (its slots, and output the socket has not taken),
//  after either changed. Output that starts to wait starts the connection's
//  unread clock. A doomed connection no longer counts: it is about to go.
static void
s_conn_account (s_self_t *self, s_conn_t *conn)
{
    if (conn->doomed)
        return;
    size_t pending = s_buffer_pending (&conn->out);
    size_t counted = conn->held + pending;
    if (pending > 0 && conn->counted_out == 0)
        conn->unread_since = self->now;
    if (counted < conn->counted)
        self->output_freed += conn->counted - counted;
    self->output_total = self->output_total - conn->counted + counted;
    conn->counted = counted;
    conn->counted_out = pending;
}

//  Take the connection's bytes out of the node's total: it is going.
static void
s_conn_uncount (s_self_t *self, s_conn_t *conn)
{
    self->output_total -= conn->counted;
    self->output_freed += conn->counted;
    conn->counted = conn->counted_out = 0;
}

//  Close a connection now, forgetting whatever it still waits for.
static void
s_conn_close (s_self_t *self, s_conn_t *conn, const char *why)
{
    herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " closed (%s)", conn->serial, why);
    s_conn_uncount (self, conn);
    self->output_freed += conn->out.capacity;
    epoll_ctl (self->epoll, EPOLL_CTL_DEL, conn->fd, NULL);
    close (conn->fd);
    self->conns[conn->fd] = NULL;
    self->conn_count--;
    for (int kind = 0; kind < TIMER_COUNT; kind++)
        s_timer_unlink (self, conn, kind);
    if (conn->waiting)
        self->waiting--;
    while (conn->head) {
        s_slot_t *next = conn->head->next;
        s_slot_done (self, conn->head);
        s_slot_destroy (&conn->head);
        conn->head = next;
    }
    free (conn->in.data);
    free (conn->out.data);
    free (conn);
}

//  Put a connection on the list of those with output to write this turn.
static void
s_conn_mark_dirty (s_self_t *self, s_conn_t *conn)
{
    if (conn->dirty)
        return;
    if (self->dirty_count == self->dirty_capacity) {
        size_t capacity = self->dirty_capacity ? self->dirty_capacity * 2 : 64;
        s_reqid_t *dirty = (s_reqid_t *) realloc (self->dirty, capacity * sizeof (s_reqid_t));
        assert (dirty);
        self->dirty = dirty;
        self->dirty_capacity = capacity;
    }
    self->dirty[self->dirty_count++] = (s_reqid_t){conn->serial, 0, conn->fd, 0};
    conn->dirty = true;
}

//  Condemn a connection: it stops reading and answering and is closed, with
//  the reason logged, when the loop next writes. Never frees it here, so any
//  caller up the stack may still look at it.
static void
    s_conn_doom (s_self_t *self, s_conn_t *conn, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));

static void
s_conn_doom (s_self_t *self, s_conn_t *conn, const char *format, ...)
{
    if (conn->doomed)
        return;
    va_list args;
    va_start (args, format);
    char *why = zsys_vprintf (format, args);
    va_end (args);
    snprintf (conn->why, sizeof (conn->why), "%s", why ? why : format);
    zstr_free (&why);
    s_conn_uncount (self, conn);
    conn->doomed = true;
    conn->closing = true;
    s_conn_mark_dirty (self, conn);
}

//  Write as much output as the socket takes now. A write that fails dooms
//  the connection.
static void
s_conn_write (s_self_t *self, s_conn_t *conn)
{
    s_buffer_t *out = &conn->out;
    bool progress = false;
    while (s_buffer_pending (out) > 0 && !conn->doomed) {
        ssize_t rc = write (conn->fd, out->data + out->start, s_buffer_pending (out));
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
            s_conn_doom (self, conn, "%s", rc < 0 ? strerror (errno) : "write failed");
    }
    if (progress) {
        s_timer_start (self, conn, TIMER_IDLE);     //  the client is reading
        conn->unread_since = self->now;
    }
    if (s_buffer_pending (out) == 0)
        s_buffer_empty (out, HERD_GW_OUT_KEEP);
    s_conn_account (self, conn);
}

//  Order connections to drop for max_output_total: the one whose output has
//  waited unread the longest first (connections with no output waiting, only
//  answers held behind a slow request, last), then the one holding most.
static int
s_shed_compare (const void *a, const void *b)
{
    const s_shed_t *x = (const s_shed_t *) a, *y = (const s_shed_t *) b;
    if (x->since != y->since)
        return x->since < y->since ? -1 : 1;
    return x->bytes > y->bytes ? -1 : x->bytes < y->bytes;
}

//  The node's unread answers and bytes more would pass max_output_total:
//  drop connections, the slowest readers first (s_shed_compare), until they
//  fit. A connection holding nothing is never dropped, so a client that
//  reads gets an answer of any size.
static void
s_self_shed (s_self_t *self, size_t bytes)
{
    size_t count = 0;
    for (size_t fd = 0; fd < self->conn_capacity; fd++) {
        s_conn_t *conn = self->conns[fd];
        if (!conn || conn->doomed || conn->counted == 0)
            continue;
        if (count == self->shed_capacity) {
            self->shed_capacity = self->shed_capacity ? self->shed_capacity * 2 : 64;
            self->shed = (s_shed_t *) realloc (self->shed, self->shed_capacity * sizeof (s_shed_t));
            assert (self->shed);
        }
        self->shed[count++] = (s_shed_t){conn, conn->counted_out ? conn->unread_since : INT64_MAX,
                                         conn->counted};
    }
    qsort (self->shed, count, sizeof (s_shed_t), s_shed_compare);
    for (size_t i = 0; i < count && self->output_total + bytes > self->max_output_total; i++) {
        s_conn_t *conn = self->shed[i].conn;
        if (conn->counted_out)
            s_conn_doom (self, conn,
                         "slow reader: %zu bytes of answers unread for %" PRId64
                         " ms, max_output_total is %zu",
                         conn->counted, self->now - conn->unread_since, self->max_output_total);
        else
            s_conn_doom (self, conn, "%zu bytes of answers held, max_output_total is %zu",
                         conn->counted, self->max_output_total);
    }
}

//  Charge bytes a connection is about to hold (a response, a request line)
//  to its output: to slot, or, with no slot, bytes about to be appended to
//  the output buffer. When earlier output still waits unsent and this would
//  take the total past max_output, first offer the socket what waits; if
//  that is not enough the client is not reading: doom it. Returns false if
//  doomed.
static bool
s_conn_charge (s_self_t *self, s_conn_t *conn, s_slot_t *slot, size_t bytes)
{
    if (conn->doomed)
        return false;
    //  What this answer already holds (its request line, its AT line) is
    //  not "earlier output": one answer alone never drops its client
    size_t own = slot ? slot->held : 0;
    size_t unsent = conn->held - own + s_buffer_pending (&conn->out);
    if (unsent > 0 && unsent + own + bytes > self->max_output) {
        s_conn_write (self, conn);
        unsent = conn->held - own + s_buffer_pending (&conn->out);
        if (unsent > 0 && unsent + own + bytes > self->max_output && !conn->doomed)
            s_conn_doom (self, conn,
                         "slow reader: %zu bytes of answers unread, max_output is %zu",
                         unsent + own + bytes, self->max_output);
        if (conn->doomed)
            return false;
    }
    if (self->output_total + bytes > self->max_output_total) {
        s_self_shed (self, bytes);
        if (conn->doomed)
            return false;
    }
    if (slot) {
        conn->held += bytes;
        slot->held += bytes;
        s_conn_account (self, conn);
    }
    return true;
}

static void
    s_conn_handle_input (s_self_t *self, s_conn_t *conn);

//  Move every ready response at the head of the queue to the output buffer;
//  start reading again if that brought requests in flight under max_pending.
static void
s_conn_release (s_self_t *self, s_conn_t *conn)
{
    while (conn->head && conn->head->ready && !conn->head->unstored) {
        s_slot_t *slot = conn->head;
        if (!conn->doomed) {
            if (herd_log_wants_conn (self->log, conn->serial))
                herd_log_conn (self->log, "gateway", conn->serial, "out", s_self_wall_usec (self),
                               slot->data, slot->size);
            if (!s_buffer_append (&conn->out, slot->data, slot->size))
                s_conn_doom (self, conn, "out of memory");
        }
        conn->head = slot->next;
        if (!conn->head)
            conn->tail = NULL;
        conn->slot_count--;
        conn->held -= slot->held;
        s_slot_done (self, slot);
        s_slot_destroy (&slot);
    }
    if (conn->paused && !conn->waiting && !conn->parsing && !conn->closing
        && conn->slot_count < self->max_pending) {
        conn->paused = false;
        s_conn_handle_input (self, conn);   //  lines read before the pause
    }
    s_conn_account (self, conn);
    s_conn_mark_dirty (self, conn);
}

//  Append a new slot at the tail of the connection's queue.
static s_slot_t *
s_conn_new_slot (s_conn_t *conn)
{
    s_slot_t *slot = (s_slot_t *) zmalloc (sizeof (s_slot_t));
    slot->seq = conn->next_seq++;
    if (conn->tail)
        conn->tail->next = slot;
    else
        conn->head = slot;
    conn->tail = slot;
    conn->slot_count++;
    return slot;
}

//  Make slot ready with a response made of count parts, charged to the
//  connection. A doomed connection's slot is made ready empty.
static void
s_slot_fill (s_self_t *self, s_conn_t *conn, s_slot_t *slot, const struct iovec *parts,
             int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += parts[i].iov_len;
    slot->ready = true;
    s_slot_done (self, slot);
    free (slot->data);
    slot->data = NULL;
    slot->size = 0;
    //  The response replaces what the slot held for it
    conn->held -= slot->held;
    slot->held = 0;
    if (!s_conn_charge (self, conn, slot, total))
        return;
    slot->data = (char *) malloc (total ? total : 1);
    assert (slot->data);
    for (int i = 0; i < count; i++) {
        if (parts[i].iov_len)
            memcpy (slot->data + slot->size, parts[i].iov_base, parts[i].iov_len);
        slot->size += parts[i].iov_len;
    }
    free (slot->line);                  //  parts may have pointed into these
    free (slot->at_line);
    slot->line = slot->at_line = NULL;
}

//  An iovec of constant bytes, for s_slot_fill.
#define S_PART(data, size) ((struct iovec){(void *) (data), (size)})

//  Make slot ready with "? line\n".
static void
s_slot_invalid (s_self_t *self, s_conn_t *conn, s_slot_t *slot, const char *line, size_t size)
{
    struct iovec parts[] = {S_PART ("? ", 2), S_PART (line, size), S_PART ("\n", 1)};
    s_slot_fill (self, conn, slot, parts, 3);
}

//  Find the connection and slot a request id names; NULL if gone (or its
//  connection is being dropped).
static s_slot_t *
s_self_find_slot (s_self_t *self, zframe_t *frame, s_conn_t **conn_p)
{
    s_reqid_t reqid;
    if (!frame || zframe_size (frame) != sizeof (reqid))
        return NULL;
    memcpy (&reqid, zframe_data (frame), sizeof (reqid));
    if (reqid.fd < 0 || (size_t) reqid.fd >= self->conn_capacity)
        return NULL;
    s_conn_t *conn = self->conns[reqid.fd];
    if (!conn || conn->serial != reqid.serial || conn->doomed)
        return NULL;
    for (s_slot_t *slot = conn->head; slot; slot = slot->next)
        if (slot->seq == reqid.seq && !slot->ready) {
            *conn_p = conn;
            return slot;
        }
    return NULL;
}

//  Send frames on a zmq socket without blocking; false when its queue is full.
static bool
s_send_frames (zsock_t *sock, const void *const *data, const size_t *size, int count)
{
    void *handle = zsock_resolve (sock);
    for (int i = 0; i < count; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < count ? ZMQ_SNDMORE : 0);
        if (zmq_send (handle, data[i], size[i], flags) == -1)
            return false;       //  only the first frame can fail: sends are atomic
    }
    return true;
}

//  Send a message the bus could not take before; false (kept) if it still
//  cannot.
static bool
s_self_send_backlogged (s_self_t *self, zmsg_t *msg)
{
    void *handle = zsock_resolve (self->bus);
    size_t left = zmsg_size (msg);
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        int more = --left > 0 ? ZFRAME_MORE : 0;
        if (zframe_send (&frame, handle, ZFRAME_REUSE | ZFRAME_DONTWAIT | more) == -1)
            return false;       //  only the first frame can fail: sends are atomic
    }
    return true;
}

//  Send what waits for the bus, oldest first, as far as it takes it now.
static void
s_self_flush_backlog (s_self_t *self)
{
    zmsg_t *msg;
    while ((msg = (zmsg_t *) zlist_first (self->backlog))
           && s_self_send_backlogged (self, msg)) {
        zlist_remove (self->backlog, msg);
        zmsg_destroy (&msg);
    }
}

//  Send frames to the bus, never blocking and never dropping: when its
//  queue is full (the bus is busy, stopped or restarting) the message waits
//  in the backlog, behind anything already there, so the bus sees every
//  message in order. The backlog is bounded by the clients: an IAMAT or a
//  WHATSAT holds a slot of its connection until the bus answers, and a
//  connection stops reading at max_pending slots.
static void
s_self_to_bus (s_self_t *self, const void *const *data, const size_t *size, int count)
{
    if (zlist_size (self->backlog) == 0 && s_send_frames (self->bus, data, size, count))
        return;
    zmsg_t *msg = zmsg_new ();
    for (int i = 0; i < count; i++)
        zmsg_addmem (msg, data[i], size[i]);
    zlist_append (self->backlog, msg);
}

//  Hand the updates queued this turn to the bus, as one UPDATE message of
//  records with the batch's number (herd_msg.h); the bus answers STORED
//  once they are in its journal. Called before anything else goes to the
//  bus (so a client's WHATSAT follows its IAMAT).
static void
s_self_send_updates (s_self_t *self)
{
    if (self->updates_size == 0)
        return;
    byte batch[8];
    herd_msg_put_u64 (batch, self->batch++);
    const void *data[] = {HERD_MSG_UPDATE, batch, self->updates};
    size_t sizes[] = {strlen (HERD_MSG_UPDATE), sizeof (batch), self->updates_size};
    s_self_to_bus (self, data, sizes, 3);
    self->updates_size = 0;
    self->updates_count = 0;
}

//  Queue an AT line for the bus; sent with the rest of the turn's. Returns
//  the number of the batch it goes in.
static uint64_t
s_self_queue_update (s_self_t *self, const char *at, size_t size)
{
    if (self->updates_size > 0 && self->updates_size + 1 + size > HERD_GW_UPDATES_MAX)
        s_self_send_updates (self);
    if (!self->updates) {
        self->updates = (char *) malloc (HERD_GW_UPDATES_MAX + 1);
        assert (self->updates);
    }
    if (size > HERD_GW_UPDATES_MAX) {
        //  A long line (max_line allows it) goes alone, as its own batch
        byte batch[8];
        uint64_t number = self->batch++;
        herd_msg_put_u64 (batch, number);
        const void *data[] = {HERD_MSG_UPDATE, batch, at};
        size_t sizes[] = {strlen (HERD_MSG_UPDATE), sizeof (batch), size};
        s_self_to_bus (self, data, sizes, 3);
        return number;
    }
    if (self->updates_size > 0)
        self->updates[self->updates_size++] = '\n';
    memcpy (self->updates + self->updates_size, at, size);
    self->updates_size += size;
    self->updates_count++;
    return self->batch;
}

//  The connection at fd if it is still the one of serial, and not doomed.
static s_conn_t *
s_self_conn (s_self_t *self, int32_t fd, uint64_t serial)
{
    if (fd < 0 || (size_t) fd >= self->conn_capacity)
        return NULL;
    s_conn_t *conn = self->conns[fd];
    return conn && conn->serial == serial && !conn->doomed ? conn : NULL;
}

//  Hold a ready IAMAT answer until the bus says its batch is stored.
static void
s_self_wait_store (s_self_t *self, s_conn_t *conn, s_slot_t *slot, uint64_t batch)
{
    slot->unstored = true;
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
    self->waiters[tail] = (s_waiter_t){conn->serial, slot->seq, batch, self->now, conn->fd};
    self->waiter_count++;
}

//  The oldest waiter, or NULL.
static s_waiter_t *
s_self_oldest_waiter (s_self_t *self)
{
    return self->waiter_count ? &self->waiters[self->waiter_head] : NULL;
}

static void
s_self_pop_waiter (s_self_t *self)
{
    self->waiter_head = (self->waiter_head + 1) % self->waiter_capacity;
    self->waiter_count--;
}

//  The bus stored batches first..last: their answers may go out. A waiter
//  of an earlier batch is one the bus never got (it restarted, or the
//  message was lost with its connection): its update is not stored, so its
//  client gets no AT; its connection is closed.
static void
s_self_stored (s_self_t *self, uint64_t first, uint64_t last)
{
    s_waiter_t *waiter;
    while ((waiter = s_self_oldest_waiter (self)) && waiter->batch <= last) {
        s_conn_t *conn = s_self_conn (self, waiter->fd, waiter->serial);
        s_slot_t *slot = conn ? conn->head : NULL;
        while (slot && slot->seq != waiter->seq)
            slot = slot->next;
        if (slot && waiter->batch < first) {
            self->unstored++;
            s_conn_doom (self, conn, "update not stored: the bus did not get it");
        }
        else
        if (slot) {
            slot->unstored = false;
            s_conn_release (self, conn);
        }
        s_self_pop_waiter (self);
    }
}

//  Close the connections of answers that waited ack_timeout_ms for their
//  update to be stored (the journal cannot write, the bus is stopped): no
//  AT goes out for an update that is not stored.
static void
s_self_expire_waiters (s_self_t *self)
{
    s_waiter_t *waiter;
    while ((waiter = s_self_oldest_waiter (self))
           && self->now - waiter->since >= self->ack_timeout_ms) {
        s_conn_t *conn = s_self_conn (self, waiter->fd, waiter->serial);
        if (conn) {
            self->unstored++;
            s_conn_doom (self, conn, "update not stored within %d ms: no AT sent",
                         self->ack_timeout_ms);
        }
        s_self_pop_waiter (self);
    }
}

//  Handle one complete line of a connection.

//  Answer a line at once, nothing being pending before it: append parts
//  straight to the output buffer, charged as a slot would be, and log them.
static void
s_conn_answer (s_self_t *self, s_conn_t *conn, const struct iovec *parts, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += parts[i].iov_len;
    if (!s_conn_charge (self, conn, NULL, total))
        return;
    s_buffer_t *out = &conn->out;
    if (!s_buffer_reserve (out, total)) {
        s_conn_doom (self, conn, "out of memory");
        return;
    }
    char *answer = out->data + out->size;
    for (int i = 0; i < count; i++) {
        memcpy (out->data + out->size, parts[i].iov_base, parts[i].iov_len);
        out->size += parts[i].iov_len;
    }
    if (herd_log_wants_conn (self->log, conn->serial))
        herd_log_conn (self->log, "gateway", conn->serial, "out", s_self_wall_usec (self), answer,
                       total);
    s_conn_account (self, conn);
    s_conn_mark_dirty (self, conn);
}

//  True if cmd is an IAMAT whose client time is more than max_time_ahead_s
//  ahead of this turn's clock. The latest client time wins everywhere, so
//  such a time would pin the client's location until the clock caught up.
//  Whole seconds first, then nanoseconds, as the AT line's difference is
//  computed: client times have up to 18 digits, too many to scale.
static bool
s_iamat_too_far_ahead (s_self_t *self, const herd_cmd_t *cmd)
{
    if (cmd->kind != HERD_CMD_IAMAT || self->max_time_ahead_s <= 0)
        return false;
    const struct timespec *now = s_self_wall (self);
    int64_t ahead = cmd->time_sec - (int64_t) now->tv_sec;
    return ahead > self->max_time_ahead_s
           || (ahead == self->max_time_ahead_s && cmd->time_nsec > (int32_t) now->tv_nsec);
}

//  Handle one complete line of a connection. An invalid line with nothing
//  pending before it is answered at once, without a slot; behind a pending
//  request its answer waits in a slot, in request order. An IAMAT's answer
//  always waits in a slot until the bus says the update is stored.
static void
s_conn_handle_line (s_self_t *self, s_conn_t *conn, const char *line, size_t size)
{
    if (size > 0 && line[size - 1] == '\r')     //  "? line" drops a \r\n ending
        size--;
    if (herd_log_wants_conn (self->log, conn->serial))
        herd_log_conn (self->log, "gateway", conn->serial, "in", s_self_wall_usec (self), line,
                       size);
    bool direct = !conn->head;
    herd_cmd_t cmd;
    if (herd_proto_parse (line, size, &cmd) == -1 || s_iamat_too_far_ahead (self, &cmd)) {
        self->invalids++;
        if (direct) {
            struct iovec parts[] = {S_PART ("? ", 2), S_PART (line, size), S_PART ("\n", 1)};
            s_conn_answer (self, conn, parts, 3);
            return;
        }
        s_slot_t *slot = s_conn_new_slot (conn);
        s_slot_invalid (self, conn, slot, line, size);
    }
    else
    if (cmd.kind == HERD_CMD_IAMAT) {
        self->iamats++;
        const struct timespec *now = s_self_wall (self);
        char stack[HERD_GW_AT_STACK];
        char *at = stack;
        size_t at_size = herd_proto_format_at (self->node->name, &cmd, now->tv_sec,
                                               (int32_t) now->tv_nsec, stack, sizeof (stack));
        if (at_size >= sizeof (stack)) {
            at = (char *) malloc (at_size + 1);
            assert (at);
            herd_proto_format_at (self->node->name, &cmd, now->tv_sec, (int32_t) now->tv_nsec,
                                  at, at_size + 1);
        }
        uint64_t batch = s_self_queue_update (self, at, at_size);
        struct iovec parts[] = {S_PART (at, at_size), S_PART ("\n", 1)};
        s_slot_t *slot = s_conn_new_slot (conn);
        s_slot_fill (self, conn, slot, parts, 2);
        if (!conn->doomed)
            s_self_wait_store (self, conn, slot, batch);
        if (at != stack)
            free (at);
    }
    else {
        s_slot_t *slot = s_conn_new_slot (conn);
        if (!s_conn_charge (self, conn, slot, size))
            slot->ready = true;                 //  dropped: nothing to ask
        else {
            //  WHATSAT: ask the bus for the location first
            self->whatsats++;
            slot->started = zclock_usecs ();
            slot->line = (char *) malloc (size ? size : 1);
            assert (slot->line);
            memcpy (slot->line, line, size);
            slot->line_size = size;
            slot->radius = strndup (cmd.radius.data, cmd.radius.size);
            slot->bound = cmd.bound;
            s_reqid_t reqid = {conn->serial, slot->seq, conn->fd, 0};
            s_self_send_updates (self);         //  this client's IAMAT first
            const void *data[] = {HERD_MSG_LOOKUP, &reqid, cmd.client.data};
            size_t sizes[] = {strlen (HERD_MSG_LOOKUP), sizeof (reqid), cmd.client.size};
            s_self_to_bus (self, data, sizes, 3);
        }
    }
    s_conn_release (self, conn);
}

//  True if line (without '\n') is a WHATSAT, valid or not: its first field.
static bool
s_line_is_whatsat (const char *line, size_t size)
{
    size_t at = 0;
    while (at < size && (line[at] == ' ' || (line[at] >= '\t' && line[at] <= '\r')))
        at++;
    return size - at > 7 && memcmp (line + at, "WHATSAT", 7) == 0
           && (line[at + 7] == ' ' || (line[at + 7] >= '\t' && line[at + 7] <= '\r'));
}

//  Put a connection in the queue for a WHATSAT's turn; it stops reading.
static void
s_self_enqueue (s_self_t *self, s_conn_t *conn)
{
    if (self->queue_head > 0 && self->queue_head + self->queue_size == self->queue_capacity) {
        memmove (self->queue, self->queue + self->queue_head,
                 self->queue_size * sizeof (s_reqid_t));
        self->queue_head = 0;
    }
    if (self->queue_size == self->queue_capacity) {
        self->queue_capacity = self->queue_capacity ? self->queue_capacity * 2 : 64;
        self->queue =
            (s_reqid_t *) realloc (self->queue, self->queue_capacity * sizeof (s_reqid_t));
        assert (self->queue);
    }
    self->queue[self->queue_head + self->queue_size++] = (s_reqid_t){conn->serial, 0, conn->fd, 0};
    conn->waiting = conn->paused = true;
    self->waiting++;
}

//  Handle the complete lines at the front of data (size bytes, the first
//  scanned of them known free of '\n'), enforcing the line cap; stop while
//  max_pending requests are in flight (paused), when closing, or at an
//  unfinished line. A WHATSAT waits its turn (s_self_enqueue) while
//  HERD_GW_ASKED_MAX are in flight or other connections wait: then every
//  connection gets one in turn, so clients that pipeline thousands cannot
//  put them all ahead of a client that asks one. Returns the bytes used
//  up: all of them once a line over the cap closes the connection. Caller
//  sets conn->parsing.
static size_t
s_conn_parse (s_self_t *self, s_conn_t *conn, const char *data, size_t size, size_t scanned,
              bool *lines_p)
{
    size_t used = 0;
    while (!conn->closing) {
        if (conn->slot_count >= self->max_pending) {
            conn->paused = true;
            break;
        }
        const char *start = data + used;
        size_t pending = size - used;
        const char *newline = (const char *) memchr (start + scanned, '\n', pending - scanned);
        size_t line_size = newline ? (size_t) (newline - start) : pending;
        if (line_size > self->max_line) {
            //  Over the cap: answer what we kept, then close
            s_slot_t *slot = s_conn_new_slot (conn);
            s_slot_invalid (self, conn, slot, start, self->max_line);
            herd_log_printf (self->log, "gateway",
                             "conn=%" PRIu64 " line longer than max_line %zu bytes: closing",
                             conn->serial, self->max_line);
            s_conn_release (self, conn);
            conn->closing = true;
            return size;
        }
        if (!newline)
            break;
        bool whatsat = s_line_is_whatsat (start, line_size);
        if (whatsat && !conn->granted && (self->asked >= HERD_GW_ASKED_MAX || self->waiting > 0)) {
            s_self_enqueue (self, conn);
            break;
        }
        if (whatsat)
            conn->granted = false;
        used += line_size + 1;
        scanned = 0;
        *lines_p = true;
        uint64_t seq = conn->next_seq;
        s_conn_handle_line (self, conn, start, line_size);
        s_slot_t *slot = conn->tail;
        if (whatsat && slot && slot->seq == seq && !slot->ready && !slot->asked) {
            slot->asked = true;             //  sent to the bus: in flight
            self->asked++;
        }
    }
    return used;
}

//  Handle the lines waiting in the connection's input buffer; free the
//  buffer once it is empty.
static void
s_conn_parse_buffer (s_self_t *self, s_conn_t *conn, bool *lines_p)
{
    s_buffer_t *in = &conn->in;
    size_t pending = s_buffer_pending (in);
    if (pending == 0)
        return;
    conn->parsing = true;
    size_t used = s_conn_parse (self, conn, in->data + in->start, pending, conn->scanned, lines_p);
    conn->parsing = false;
    in->start += used;
    pending -= used;
    conn->scanned = conn->paused || conn->closing ? 0 : pending;
    if (pending == 0 || conn->closing) {
        s_buffer_empty (in, HERD_GW_IN_KEEP);
        conn->scanned = 0;
    }
}

//  Keep the connection's clocks in step with its input: a line handled
//  restarts the idle clock; the line clock runs while an unfinished line
//  waits (restarted when a new one began).
static void
s_conn_input_timers (s_self_t *self, s_conn_t *conn, bool lines)
{
    if (lines)
        s_timer_start (self, conn, TIMER_IDLE);
    if (s_buffer_pending (&conn->in) == 0 || conn->paused || conn->closing)
        s_timer_unlink (self, conn, TIMER_LINE);
    else
    if (lines || !conn->timers[TIMER_LINE].linked)
        s_timer_start (self, conn, TIMER_LINE);     //  a new unfinished line
}

//  Handle the lines kept in the input buffer (after a pause ended).
static void
s_conn_handle_input (s_self_t *self, s_conn_t *conn)
{
    bool lines = false;
    s_conn_parse_buffer (self, conn, &lines);
    s_conn_input_timers (self, conn, lines);
}

//  Handle bytes just read into the shared buffer. Lines are parsed where
//  they lie; only an unfinished line, or lines left while paused, are
//  copied into the connection's own buffer. The buffer's unfinished line
//  (it holds nothing else when reading) is completed first.
static void
s_conn_handle_chunk (s_self_t *self, s_conn_t *conn, const char *data, size_t size)
{
    s_buffer_t *in = &conn->in;
    bool lines = false;
    size_t pending = s_buffer_pending (in);
    if (pending > 0) {
        const char *newline = (const char *) memchr (data, '\n', size);
        size_t take = newline ? (size_t) (newline - data) + 1 : size;
        //  Past max_line + 1 bytes the line is too long whatever follows
        size_t room = pending <= self->max_line ? self->max_line + 1 - pending : 0;
        if (!s_buffer_append (in, data, take < room ? take : room)) {
            s_conn_doom (self, conn, "out of memory");
            return;
        }
        data += take;
        size -= take;
        s_conn_parse_buffer (self, conn, &lines);
        if (s_buffer_pending (in) > 0 && size > 0 && !conn->closing) {
            //  Paused by that line: keep the rest for later, unparsed
            if (!s_buffer_append (in, data, size))
                s_conn_doom (self, conn, "out of memory");
            size = 0;
        }
    }
    if (size > 0 && !conn->closing) {
        conn->parsing = true;
        size_t used = s_conn_parse (self, conn, data, size, 0, &lines);
        conn->parsing = false;
        if (used < size && !conn->closing) {
            if (s_buffer_append (in, data + used, size - used))
                conn->scanned = conn->paused ? 0 : size - used;
            else
                s_conn_doom (self, conn, "out of memory");
        }
    }
    s_conn_input_timers (self, conn, lines);
}

static void
    s_conn_drain (s_self_t *self, s_conn_t *conn);

//  Read what a client sent, as much as its fair share of this turn.
static void
s_conn_handle_read (s_self_t *self, s_conn_t *conn)
{
    if (conn->draining) {
        s_conn_drain (self, conn);
        return;
    }
    size_t budget = HERD_GW_READ_BUDGET;
    while (budget > 0 && !conn->eof && !conn->closing && !conn->paused) {
        ssize_t rc = read (conn->fd, self->input, HERD_GW_READ_CHUNK);
        if (rc > 0) {
            budget -= (size_t) rc < budget ? (size_t) rc : budget;
            s_conn_handle_chunk (self, conn, self->input, (size_t) rc);
        }
        else
        if (rc == 0) {
            //  End of file: a last line without '\n' is still a line
            conn->eof = true;
            size_t pending = s_buffer_pending (&conn->in);
            if (pending > 0 && !conn->closing) {
                conn->parsing = true;
                s_conn_handle_line (self, conn, conn->in.data + conn->in.start, pending);
                conn->parsing = false;
            }
            s_buffer_empty (&conn->in, HERD_GW_IN_KEEP);
            conn->scanned = 0;
            s_timer_unlink (self, conn, TIMER_LINE);
            s_conn_mark_dirty (self, conn);
        }
        else
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        else
        if (errno != EINTR) {
            s_conn_close (self, conn, strerror (errno));
            return;
        }
    }
}

//  Register the epoll interest the connection's state calls for.
static void
s_conn_update_events (s_self_t *self, s_conn_t *conn)
{
    bool pending = s_buffer_pending (&conn->out) > 0;
    uint32_t events;
    if (conn->draining)
        events = EPOLLIN;
    else
    if (conn->closing || conn->eof)
        events = pending ? EPOLLOUT : 0;
    else
        events = (conn->paused ? 0 : EPOLLIN) | (pending ? EPOLLOUT : 0);
    if (events != conn->events) {
        struct epoll_event event = {.events = events, .data.u64 = (uint64_t) conn->fd};
        epoll_ctl (self->epoll, EPOLL_CTL_MOD, conn->fd, &event);
        conn->events = events;
    }
}

//  Read and drop input of a connection being closed, until EOF.
static void
s_conn_drain (s_self_t *self, s_conn_t *conn)
{
    while (true) {
        ssize_t rc = read (conn->fd, self->input, HERD_GW_READ_CHUNK);
        if (rc > 0) {
            conn->drained += (size_t) rc;
            if (conn->drained > HERD_GW_DRAIN_MAX) {
                s_conn_close (self, conn, "line too long; input still coming");
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
            s_conn_close (self, conn, "line too long");
            return;
        }
    }
}

//  Write a connection's output; arm EPOLLOUT if the socket is full, close
//  it when it is done (closing, or EOF with nothing left to answer) or
//  doomed.
static void
s_conn_flush (s_self_t *self, s_conn_t *conn)
{
    if (!conn->doomed)
        s_conn_write (self, conn);
    if (conn->doomed) {
        s_conn_close (self, conn, conn->why);
        return;
    }
    if (s_buffer_pending (&conn->out) == 0) {
        if (conn->closing && !conn->draining && !conn->head) {
            //  Closing with unread input would send a reset that can destroy
            //  our last answer in flight: end our side, read to EOF, close.
            //  The line clock bounds how long that may take.
            shutdown (conn->fd, SHUT_WR);
            conn->draining = true;
            s_timer_start (self, conn, TIMER_LINE);
        }
        if (conn->eof && !conn->head && !conn->closing) {
            s_conn_close (self, conn, "client finished");
            return;
        }
    }
    s_conn_update_events (self, conn);
}

//  Write every connection that got output this turn. The list names
//  connections by fd and serial, so ones closed meanwhile are skipped.
static void
s_self_flush_dirty (s_self_t *self)
{
    size_t count = self->dirty_count;
    self->dirty_count = 0;
    for (size_t i = 0; i < count; i++) {
        s_conn_t *conn = self->conns[self->dirty[i].fd];
        if (conn && conn->serial == self->dirty[i].serial) {
            conn->dirty = false;
            s_conn_flush (self, conn);
        }
    }
}

//  -------------------------------------------------------------------------
//  Accepting, and refusing, connections

//  Log how many connections were refused since the last report, and why.
static void
s_self_report_refused (s_self_t *self)
{
    if (self->refused == 0)
        return;
    herd_log_warning (self->log, "gateway", "refused %zu connection%s: %s", self->refused,
                      self->refused == 1 ? "" : "s", self->refused_why);
    self->refused = 0;
    self->refused_reported = self->now;
}

//  Count a refused connection; logged at once, then at most once per
//  HERD_GW_REPORT_MS, so a flood of connections cannot flood the log.
static void
s_self_refused (s_self_t *self, const char *why)
{
    self->refused++;
    snprintf (self->refused_why, sizeof (self->refused_why), "%s", why);
    if (self->now - self->refused_reported >= HERD_GW_REPORT_MS)
        s_self_report_refused (self);
}

//  Stop accepting for a moment: accept fails in a way that waiting cures
//  (no descriptor even for the spare trick, no kernel memory), and the
//  listener, level-triggered, would otherwise wake the loop at once forever.
static void
s_self_pause_accept (s_self_t *self, const char *why)
{
    if (self->accept_resume)
        return;
    struct epoll_event event = {.events = 0, .data.u64 = (uint64_t) TAG_LISTEN << 32};
    epoll_ctl (self->epoll, EPOLL_CTL_MOD, self->listener, &event);
    self->accept_resume = self->now + HERD_GW_ACCEPT_PAUSE_MS;
    if (self->now - self->pause_reported >= HERD_GW_REPORT_MS) {
        herd_log_warning (self->log, "gateway", "accept failed (%s): not accepting for %d ms",
                          why, HERD_GW_ACCEPT_PAUSE_MS);
        self->pause_reported = self->now;
    }
}

//  The soft limit on open descriptors now.
static size_t
s_fd_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == -1 || limit.rlim_cur == RLIM_INFINITY
        || limit.rlim_cur > (rlim_t) INT32_MAX)
        return INT32_MAX;
    return (size_t) limit.rlim_cur;
}

//  Descriptors at the top of the limit that clients never get: the node's
//  own sockets (bus links, Places connections) need them too.
static size_t
s_fd_reserve (size_t limit)
{
    return limit / 8 < HERD_GW_FD_RESERVE ? limit / 8 : HERD_GW_FD_RESERVE;
}

//  Take one connection off the listener when descriptors ran out, with the
//  spare descriptor freed for it, and close it: the client sees its
//  connection closed instead of waiting in the backlog, and the listener
//  stops being readable. Returns false if even that failed.
static bool
s_self_refuse_emfile (s_self_t *self)
{
    if (self->spare_fd < 0)
        return false;
    close (self->spare_fd);
    int fd = accept (self->listener, NULL, NULL);
    int error = errno;
    if (fd >= 0)
        close (fd);
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        s_self_refused (self, "out of file descriptors");
    errno = error;
    return fd >= 0 || error == EAGAIN || error == EWOULDBLOCK;
}

//  Set up a newly accepted client socket and its connection.
static void
s_self_add_conn (s_self_t *self, int fd, struct sockaddr_storage *addr, socklen_t addr_len)
{
    if ((size_t) fd >= self->conn_capacity) {
        size_t capacity = self->conn_capacity * 2;
        while (capacity <= (size_t) fd)
            capacity *= 2;
        s_conn_t **conns = (s_conn_t **) realloc (self->conns, capacity * sizeof (s_conn_t *));
        assert (conns);
        memset (conns + self->conn_capacity, 0,
                (capacity - self->conn_capacity) * sizeof (s_conn_t *));
        self->conns = conns;
        self->conn_capacity = capacity;
    }
    //  Keepalive finds clients that vanished without a FIN or RST (phone
    //  out of coverage, NAT state lost) even while the connection is idle
    int one = 1, idle = HERD_GW_KEEPIDLE, interval = HERD_GW_KEEPINTVL, count = HERD_GW_KEEPCNT;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof (one));
    setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof (idle));
    setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof (interval));
    setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof (count));
    //  The kernel would let a client that never reads pin up to tcp_wmem's
    //  maximum (4 MB) of answers and make us build them all; this much
    //  still carries 40 Mbit/s at 100 ms round trip
    int sndbuf = HERD_GW_SNDBUF;
    setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof (sndbuf));
    s_conn_t *conn = (s_conn_t *) zmalloc (sizeof (s_conn_t));
    conn->fd = fd;
    conn->serial = ++self->next_serial;
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
    getnameinfo ((struct sockaddr *) addr, addr_len, host, sizeof (host), port, sizeof (port),
                 NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf (conn->peer, sizeof (conn->peer), "%s:%s", host, port);
    self->conns[fd] = conn;
    self->conn_count++;
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t) fd};
    epoll_ctl (self->epoll, EPOLL_CTL_ADD, fd, &event);
    conn->events = EPOLLIN;
    s_timer_start (self, conn, TIMER_IDLE);
    herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " opened from %s", conn->serial,
                     conn->peer);
}

//  Accept waiting connections, a bounded number per turn. Past max_clients,
//  or when a client would take one of the descriptors kept for the node, a
//  connection is accepted and closed at once.
static void
s_self_handle_accept (s_self_t *self)
{
    for (int accepted = 0; accepted < HERD_GW_ACCEPT_MAX; accepted++) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof (addr);
        int fd = accept4 (self->listener, (struct sockaddr *) &addr, &addr_len,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if ((errno == EMFILE || errno == ENFILE) && s_self_refuse_emfile (self)) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                continue;
            }
            s_self_pause_accept (self, strerror (errno));
            return;
        }
        size_t limit = s_fd_limit ();
        char why[96];
        if (self->conn_count >= self->max_clients)
            snprintf (why, sizeof (why), "max_clients %zu reached", self->max_clients);
        else
        if ((size_t) fd + s_fd_reserve (limit) >= limit)
            snprintf (why, sizeof (why),
                      "out of file descriptors (limit %zu, %zu kept for the node)", limit,
                      s_fd_reserve (limit));
        else {
            s_self_add_conn (self, fd, &addr, addr_len);
            continue;
        }
        close (fd);
        s_self_refused (self, why);
    }
}

//  -------------------------------------------------------------------------
//  Periodic work: time-outs, refusal reports, accepting again

//  Close connections whose clocks ran out. Idle: no line came and nothing
//  was written for idle_timeout_ms (a request still waiting for the bus or
//  places restarts the clock instead). Line: an unfinished line has been
//  waiting line_timeout_ms for its end, or a lingering close its EOF.
static void
s_self_handle_timers (s_self_t *self)
{
    s_conn_t *conn;
    while ((conn = self->timers[TIMER_IDLE].head)
           && self->now - conn->timers[TIMER_IDLE].since >= self->timeouts[TIMER_IDLE]) {
        char why[96];
        bool unsent = s_buffer_pending (&conn->out) > 0;
        bool waiting = conn->head && !conn->head->ready;
        if (waiting && !unsent)
            s_timer_start (self, conn, TIMER_IDLE);
        else {
            snprintf (why, sizeof (why), "%s for %" PRId64 " ms",
                      unsent ? "idle: answers not read" : "idle: no request",
                      self->timeouts[TIMER_IDLE]);
            s_conn_close (self, conn, why);
        }
    }
    while ((conn = self->timers[TIMER_LINE].head)
           && self->now - conn->timers[TIMER_LINE].since >= self->timeouts[TIMER_LINE]) {
        char why[96];
        snprintf (why, sizeof (why), "%s after %" PRId64 " ms",
                  conn->draining ? "lingering close: no EOF" : "slow line: no end of line",
                  self->timeouts[TIMER_LINE]);
        s_conn_close (self, conn, why);
    }
    s_self_expire_waiters (self);
    if (self->refused && self->now - self->refused_reported >= HERD_GW_REPORT_MS)
        s_self_report_refused (self);
    if (self->accept_resume && self->now >= self->accept_resume) {
        self->accept_resume = 0;
        if (self->spare_fd < 0)
            self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t) TAG_LISTEN << 32};
        epoll_ctl (self->epoll, EPOLL_CTL_MOD, self->listener, &event);
    }
}

//  How long the loop may sleep: until the nearest deadline, at most a tick.
static int
s_self_sleep_ms (s_self_t *self)
{
    if (self->zmq_backlog)
        return 0;
    int64_t wake = self->now + HERD_GW_TICK_MS;
    for (int kind = 0; kind < TIMER_COUNT; kind++) {
        s_conn_t *conn = self->timers[kind].head;
        if (conn && conn->timers[kind].since + self->timeouts[kind] < wake)
            wake = conn->timers[kind].since + self->timeouts[kind];
    }
    if (self->accept_resume && self->accept_resume < wake)
        wake = self->accept_resume;
    s_waiter_t *waiter = s_self_oldest_waiter (self);
    if (waiter && waiter->since + self->ack_timeout_ms < wake)
        wake = waiter->since + self->ack_timeout_ms;
    //  Messages wait for the bus: try again soon (its ZMQ_FD does not say
    //  when it takes messages again)
    if (zlist_size (self->backlog) > 0 && self->now + HERD_GW_BACKLOG_MS < wake)
        wake = self->now + HERD_GW_BACKLOG_MS;
    if (self->refused && self->refused_reported + HERD_GW_REPORT_MS < wake)
        wake = self->refused_reported + HERD_GW_REPORT_MS;
    int64_t now = s_clock_ms ();
    return wake <= now ? 0 : (int) (wake - now);
}

//  -------------------------------------------------------------------------
//  Replies from bus and places

//  The answer when the places worker's queue is full, in the shape of a
//  Places error body.
static const char s_places_busy[] =
    "{\n   \"error_message\" : \"herd: too many place searches in flight\",\n"
    "   \"html_attributions\" : [],\n   \"results\" : [],\n"
    "   \"status\" : \"OVER_QUERY_LIMIT\"\n}\n\n";

//  Handle one reply of the bus: FOUND or NONE.
static void
s_self_handle_bus (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->bus);
    if (!msg)
        return;
    char *kind = zmsg_popstr (msg);
    if (kind && streq (kind, HERD_MSG_STORED)) {
        zframe_t *first = zmsg_first (msg);
        zframe_t *last = zmsg_next (msg);
        if (zmsg_size (msg) == 2 && zframe_size (first) == 8 && zframe_size (last) == 8)
            s_self_stored (self, herd_msg_get_u64 (zframe_data (first)), herd_msg_get_u64 (zframe_data (last)));
        zstr_free (&kind);
        zmsg_destroy (&msg);
        return;
    }
    zframe_t *reqid = zmsg_pop (msg);
    s_conn_t *conn = NULL;
    s_slot_t *slot = s_self_find_slot (self, reqid, &conn);
    if (slot && kind && streq (kind, HERD_MSG_NONE))
        s_slot_invalid (self, conn, slot, slot->line, slot->line_size);
    else
    if (slot && kind && streq (kind, HERD_MSG_FOUND) && zmsg_size (msg) == 1) {
        zframe_t *line = zmsg_first (msg);
        herd_record_t record;
        herd_span_t lat, lon;
        if (herd_record_parse ((char *) zframe_data (line), zframe_size (line), &record) == -1
            || herd_proto_parse_position (record.position.data, record.position.size, &lat,
                                          &lon)
                   == -1)
            s_slot_invalid (self, conn, slot, slot->line, slot->line_size);
        else
        if (s_conn_charge (self, conn, slot, zframe_size (line))) {
            slot->at_size = zframe_size (line);
            slot->at_line = (char *) malloc (slot->at_size);
            assert (slot->at_line);
            memcpy (slot->at_line, zframe_data (line), slot->at_size);
            char bound[16];
            snprintf (bound, sizeof (bound), "%d", slot->bound);
            const void *data[] = {HERD_MSG_NEARBY, zframe_data (reqid), lat.data, lon.data,
                                  slot->radius, bound};
            size_t sizes[] = {strlen (HERD_MSG_NEARBY), zframe_size (reqid), lat.size, lon.size,
                              strlen (slot->radius), strlen (bound)};
            self->check_places = true;      //  a send may take its ZMQ_FD's edge
            if (!s_send_frames (self->places, data, sizes, 6)) {
                herd_log_warning (self->log, "gateway", "places channel full");
                struct iovec parts[] = {S_PART (slot->at_line, slot->at_size),
                                        S_PART ("\n", 1),
                                        S_PART (s_places_busy, strlen (s_places_busy))};
                s_slot_fill (self, conn, slot, parts, 3);
            }
        }
        else
            slot->ready = true;                 //  dropped meanwhile
    }
    if (conn)
        s_conn_release (self, conn);
    zstr_free (&kind);
    zframe_destroy (&reqid);
    zmsg_destroy (&msg);
}

//  Handle one reply of the places worker: RESULT OK|ERR json.
static void
s_self_handle_places (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->places);
    if (!msg)
        return;
    char *kind = zmsg_popstr (msg);
    if (kind && streq (kind, "STATS") && zmsg_size (msg) == 1) {
        //  The places worker's counters: on to the bus's monitor
        zframe_t *stats = zmsg_first (msg);
        const void *data[] = {"STATS", "places", zframe_data (stats)};
        size_t sizes[] = {5, 6, zframe_size (stats)};
        s_send_frames (self->bus, data, sizes, 3);
        zstr_free (&kind);
        zmsg_destroy (&msg);
        return;
    }
    zframe_t *reqid = zmsg_pop (msg);
    char *status = zmsg_popstr (msg);
    zframe_t *json = zmsg_pop (msg);
    s_conn_t *conn = NULL;
    s_slot_t *slot = s_self_find_slot (self, reqid, &conn);
    if (slot && slot->at_line && kind && streq (kind, HERD_MSG_RESULT) && status && json) {
        struct iovec parts[] = {S_PART (slot->at_line, slot->at_size), S_PART ("\n", 1),
                                S_PART (zframe_data (json), zframe_size (json)),
                                S_PART ("\n\n", 2)};
        s_slot_fill (self, conn, slot, parts, 4);
        herd_hist_add (&self->whatsat_latency, (uint64_t) (zclock_usecs () - slot->started));
        if (streq (status, HERD_MSG_ERR))
            herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " places failed",
                             conn->serial);
    }
    if (conn)
        s_conn_release (self, conn);
    zstr_free (&kind);
    zstr_free (&status);
    zframe_destroy (&reqid);
    zframe_destroy (&json);
    zmsg_destroy (&msg);
}
//  Once a second: our counters to the bus's monitor, and a STATS request to
//  the places worker, whose answer goes the same way.
static void
s_self_send_stats (s_self_t *self)
{
    if (self->now - self->stats_at < HERD_GW_TICK_MS)
        return;
    double seconds = self->stats_at ? (double) (self->now - self->stats_at) / 1000.0 : 1.0;
    cJSON *stats = cJSON_CreateObject ();
    cJSON_AddNumberToObject (stats, "connections", (double) self->conn_count);
    cJSON_AddNumberToObject (stats, "connections_total", (double) self->next_serial);
    cJSON_AddNumberToObject (stats, "iamat_total", (double) self->iamats);
    cJSON_AddNumberToObject (stats, "whatsat_total", (double) self->whatsats);
    cJSON_AddNumberToObject (stats, "invalid_total", (double) self->invalids);
    cJSON_AddNumberToObject (stats, "unstored_total", (double) self->unstored);
    cJSON_AddNumberToObject (stats, "store_waiting", (double) self->waiter_count);
    cJSON_AddNumberToObject (stats, "bus_backlog", (double) zlist_size (self->backlog));
    cJSON_AddNumberToObject (stats, "iamat_per_s", (double) (self->iamats - self->last_iamats) / seconds);
    cJSON_AddNumberToObject (stats, "whatsat_per_s",
                             (double) (self->whatsats - self->last_whatsats) / seconds);
    cJSON_AddNumberToObject (stats, "whatsat_p50_ms",
                             herd_hist_percentile_ms (&self->whatsat_latency, 50));
    cJSON_AddNumberToObject (stats, "whatsat_p99_ms",
                             herd_hist_percentile_ms (&self->whatsat_latency, 99));
    herd_hist_merge (&self->whatsat_latency_all, &self->whatsat_latency);
    cJSON_AddItemToObject (stats, "whatsat_seconds", herd_hist_json (&self->whatsat_latency_all));
    herd_hist_reset (&self->whatsat_latency);
    self->last_iamats = self->iamats;
    self->last_whatsats = self->whatsats;
    self->stats_at = self->now;
    char *text = cJSON_PrintUnformatted (stats);
    cJSON_Delete (stats);
    if (text) {
        const void *data[] = {"STATS", "gateway", text};
        size_t sizes[] = {5, 7, strlen (text)};
        s_send_frames (self->bus, data, sizes, 3);
        free (text);
    }
    const void *ask[] = {"STATS"};
    size_t ask_sizes[] = {5};
    s_send_frames (self->places, ask, ask_sizes, 1);
    self->check_places = true;
}

static void
    s_self_raise_fd_limit (s_self_t *self);

//  Take the limits of a reloaded config (RELOAD, herd_msg.h). They apply
//  from the next check on, to the connections open too: a line is held to
//  the max_line of when it is read, a silent client to the idle_timeout_ms
//  of when it is looked at.
static void
s_self_reload (s_self_t *self, const herd_config_t *config)
{
    const herd_node_t *node = herd_config_node (config, self->node->name);
    assert (node);          //  herd_config_reload_check refused a config without it
    self->node = node;
    self->max_line = config->max_line;
    self->max_output = config->max_output;
    self->max_output_total = config->max_output_total;
    self->max_pending = config->max_pending;
    self->ack_timeout_ms = config->ack_timeout_ms;
    self->max_time_ahead_s = config->max_time_ahead_s;
    self->timeouts[TIMER_IDLE] = config->idle_timeout_ms;
    self->timeouts[TIMER_LINE] = config->line_timeout_ms;
    if (config->max_clients != self->max_clients) {
        self->max_clients = config->max_clients;
        s_self_raise_fd_limit (self);
    }
}

//  Handle a command on the actor pipe.
static void
s_self_handle_pipe (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->pipe);
    char *command = msg ? zmsg_popstr (msg) : NULL;
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "VERBOSE"))
        self->verbose = true;
    else
    if (streq (command, HERD_MSG_RELOAD) && zmsg_size (msg) == 1
        && zframe_size (zmsg_first (msg)) == sizeof (void *)) {
        const herd_config_t *config;
        memcpy (&config, zframe_data (zmsg_first (msg)), sizeof (config));
        s_self_reload (self, config);
        zsock_signal (self->pipe, 0);
    }
    zstr_free (&command);
    zmsg_destroy (&msg);
}

//  Give waiting connections their turn, oldest first, while fewer than
//  HERD_GW_ASKED_MAX WHATSATs are in flight: each may send one, then queues
//  again behind the others if it has more.
static void
s_self_grant (s_self_t *self)
{
    while (self->queue_size > 0 && self->asked < HERD_GW_ASKED_MAX) {
        s_reqid_t entry = self->queue[self->queue_head++];
        self->queue_size--;
        if (self->queue_size == 0)
            self->queue_head = 0;
        s_conn_t *conn = self->conns[entry.fd];
        if (!conn || conn->serial != entry.serial || !conn->waiting)
            continue;                       //  closed meanwhile
        conn->waiting = conn->paused = false;
        self->waiting--;
        conn->granted = true;
        s_conn_handle_input (self, conn);
        s_conn_mark_dirty (self, conn);     //  reading again, unless queued again
    }
}

//  Handle the messages waiting on the zmq sockets, at most
//  HERD_GW_ZMQ_BATCH replies from each of bus and places per turn: a flood
//  of answers (thousands of WHATSATs pipelined by clients that never read)
//  then cannot hold the loop for seconds while other clients' lines wait
//  unread; what is left is handled next turn, which does not sleep. ZMQ_FD
//  is edge-triggered, and any send may take the edge, so a socket is asked
//  for ZMQ_EVENTS (a system call each) when its ZMQ_FD fired, we sent to
//  it or replies were left: the bus every turn (updates go to it every turn
//  under load), the pipe and places only then.
static void
s_self_drain_zmq (s_self_t *self)
{
    size_t bus_budget = HERD_GW_ZMQ_BATCH, places_budget = HERD_GW_ZMQ_BATCH;
    bool progress = true;
    self->zmq_backlog = false;
    while (progress && !self->terminated) {
        progress = false;
        while (self->check_pipe && !self->terminated
               && (zsock_events (self->pipe) & ZMQ_POLLIN)) {
            s_self_handle_pipe (self);
            progress = true;
        }
        self->check_pipe = false;
        while (bus_budget > 0 && (zsock_events (self->bus) & ZMQ_POLLIN)) {
            s_self_handle_bus (self);
            bus_budget--;
            progress = true;
        }
        bool places = self->check_places;
        self->check_places = false;
        while (places && places_budget > 0 && (zsock_events (self->places) & ZMQ_POLLIN)) {
            s_self_handle_places (self);
            places_budget--;
            progress = true;
        }
        if (bus_budget == 0 || places_budget == 0) {
            self->zmq_backlog = true;       //  look again next turn, at once
            self->check_places = true;
            break;
        }
    }
}

//  Give memory back to the system once a tick after many answers were freed
//  (never-reading clients dropped): glibc keeps freed memory in its arenas,
//  and the gateway's arena holds what the answers grew it to.
static void
s_self_trim (s_self_t *self)
{
    if (self->output_freed < HERD_GW_TRIM_BYTES || self->now - self->trimmed_at < HERD_GW_TICK_MS)
        return;
    malloc_trim (0);
    self->output_freed = 0;
    self->trimmed_at = self->now;
}

//  -------------------------------------------------------------------------
//  Set-up and loop

//  Bind the client address; returns the listening fd or -1 (errno-like
//  message in why).
static int
s_listen (const char *host, int port, char *why, size_t why_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    char service[16];
    snprintf (service, sizeof (service), "%d", port);
    int rc = getaddrinfo (host, service, &hints, &found);
    if (rc != 0) {
        snprintf (why, why_size, "%s", gai_strerror (rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = found; ai && fd == -1; ai = ai->ai_next) {
        fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1)
            continue;
        int one = 1;
        setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
        if (bind (fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen (fd, 4096) == -1) {
            snprintf (why, why_size, "%s", strerror (errno));
            close (fd);
            fd = -1;
        }
    }
    freeaddrinfo (found);
    return fd;
}

//  Destroy the gateway state, closing every connection.
static void
s_self_destroy (s_self_t **self_p)
{
    s_self_t *self = *self_p;
    if (!self)
        return;
    for (size_t fd = 0; fd < self->conn_capacity; fd++)
        if (self->conns[fd])
            s_conn_close (self, self->conns[fd], "node stopping");
    free (self->conns);
    free (self->dirty);
    free (self->shed);
    free (self->queue);
    free (self->input);
    if (self->listener >= 0)
        close (self->listener);
    if (self->spare_fd >= 0)
        close (self->spare_fd);
    if (self->epoll >= 0)
        close (self->epoll);
    s_self_send_updates (self);
    s_self_flush_backlog (self);
    while (zlist_size (self->backlog) > 0) {
        zmsg_t *msg = (zmsg_t *) zlist_pop (self->backlog);
        zmsg_destroy (&msg);
    }
    zlist_destroy (&self->backlog);
    free (self->waiters);
    zsock_destroy (&self->bus);
    zsock_destroy (&self->places);
    free (self->updates);
    free (self);
    *self_p = NULL;
}

//  Register a zmq socket's ZMQ_FD with epoll under tag.
static void
s_self_watch_zmq (s_self_t *self, zsock_t *sock, uint32_t tag)
{
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t) tag << 32};
    epoll_ctl (self->epoll, EPOLL_CTL_ADD, zsock_fd (sock), &event);
}

//  Raise the soft limit on descriptors towards max_clients plus the node's
//  own, as far as the hard limit allows (1024 is a common soft default);
//  log when clients will be refused before max_clients.
static void
s_self_raise_fd_limit (s_self_t *self)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == -1)
        return;
    rlim_t want = (rlim_t) (self->max_clients + HERD_GW_FD_MARGIN);
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < want) {
        limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > want
                             ? want
                             : limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
    size_t fds = s_fd_limit ();
    if (fds < self->max_clients + s_fd_reserve (fds))
        herd_log_warning (self->log, "gateway",
                          "file descriptor limit %zu: fewer than max_clients %zu clients fit",
                          fds, self->max_clients);
}

//  Build the gateway; NULL (logged, printed) on failure.
static s_self_t *
s_self_new (zsock_t *pipe, herd_gateway_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    self->input = (char *) malloc (HERD_GW_READ_CHUNK);
    assert (self->input);
    self->pipe = pipe;
    self->node = args->node;
    self->log = args->log;
    self->max_line = args->config->max_line;
    self->max_output = args->config->max_output;
    self->max_output_total = args->config->max_output_total;
    self->max_pending = args->config->max_pending;
    self->max_clients = args->config->max_clients;
    self->ack_timeout_ms = args->config->ack_timeout_ms;
    self->batch = 1;
    self->backlog = zlist_new ();
    self->max_time_ahead_s = args->config->max_time_ahead_s;
    self->timeouts[TIMER_IDLE] = args->config->idle_timeout_ms;
    self->timeouts[TIMER_LINE] = args->config->line_timeout_ms;
    self->now = s_clock_ms ();
    self->refused_reported = self->pause_reported = self->now - HERD_GW_REPORT_MS;
    self->listener = self->spare_fd = self->epoll = -1;
    self->conn_capacity = 1024;
    self->conns = (s_conn_t **) zmalloc (self->conn_capacity * sizeof (s_conn_t *));

    char why[256] = "";
    self->listener = s_listen (args->node->client_host, args->node->client_port, why, sizeof (why));
    if (self->listener == -1) {
        herd_log_error (self->log, "gateway", "cannot listen on %s: %s", args->node->client, why);
        fprintf (stderr, "herd: %s: cannot listen on %s: %s\n", args->node->name,
                 args->node->client, why);
        s_self_destroy (&self);
        return NULL;
    }
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    s_self_raise_fd_limit (self);
    self->bus = zsock_new (ZMQ_DEALER);
    self->places = zsock_new (ZMQ_DEALER);
    assert (self->bus && self->places);
    zsock_set_sndhwm (self->bus, HERD_GW_BUS_HWM);      //  at most 64 MB waiting
    zsock_set_rcvhwm (self->bus, HERD_GW_ZMQ_HWM);
    //  Updates handed over still reach the bus when the gateway stops
    //  (czmq's default linger is 0: queued messages dropped)
    zsock_set_linger (self->bus, 2000);
    zsock_set_sndhwm (self->places, HERD_GW_ZMQ_HWM);
    zsock_set_rcvhwm (self->places, HERD_GW_ZMQ_HWM);
    if (zsock_connect (self->bus, "%s", args->bus_endpoint) == -1
        || zsock_connect (self->places, "%s", args->places_endpoint) == -1) {
        herd_log_error (self->log, "gateway", "cannot connect to bus or places: %s",
                        zmq_strerror (zmq_errno ()));
        s_self_destroy (&self);
        return NULL;
    }
    self->epoll = epoll_create1 (EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t) TAG_LISTEN << 32};
    epoll_ctl (self->epoll, EPOLL_CTL_ADD, self->listener, &event);
    self->check_pipe = self->check_places = true;       //  the first turn asks all
    s_self_watch_zmq (self, self->pipe, TAG_PIPE);
    s_self_watch_zmq (self, self->bus, TAG_BUS);
    s_self_watch_zmq (self, self->places, TAG_PLACES);
    return self;
}

void
herd_gateway_actor (zsock_t *pipe, void *args)
{
    pthread_setname_np (pthread_self (), "herd-gateway");    //  for top -H, perf, gdb
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (herd_gateway_args_t *) args);
    zsock_signal (pipe, self ? 0 : (byte) -1);
    if (!self) {
        char *command = zstr_recv (pipe);
        zstr_free (&command);
        return;
    }
    herd_log_printf (self->log, "gateway", "serving clients on %s", self->node->client);
    struct epoll_event events[256];
    while (!self->terminated) {
        s_self_tick (self);
        herd_alive_beat (HERD_ALIVE_GATEWAY, self->now);        //  this loop turns
        s_self_flush_backlog (self);
        s_self_send_updates (self);
        s_self_drain_zmq (self);
        s_self_grant (self);
        s_self_handle_timers (self);
        s_self_send_stats (self);
        s_self_send_updates (self);     //  what the last steps queued, before answers go out
        s_self_flush_dirty (self);
        s_self_trim (self);
        if (self->terminated)
            break;
        int count = epoll_wait (self->epoll, events, 256, s_self_sleep_ms (self));
        s_self_tick (self);
        for (int i = 0; i < count; i++) {
            uint32_t tag = (uint32_t) (events[i].data.u64 >> 32);
            int fd = (int) (events[i].data.u64 & 0xffffffffu);
            if (tag == TAG_PIPE)
                self->check_pipe = true;
            else
            if (tag == TAG_PLACES)
                self->check_places = true;
            else
            if (tag == TAG_LISTEN)
                s_self_handle_accept (self);
            else
            if (tag == TAG_CLIENT && self->conns[fd]) {
                s_conn_t *conn = self->conns[fd];
                uint64_t serial = conn->serial;
                //  Hang-up or error while we are not reading (EOF seen,
                //  paused, closing): reading would not notice, and the
                //  event, level-triggered, would come back every turn
                if ((events[i].events & (EPOLLHUP | EPOLLERR)) && !(conn->events & EPOLLIN)) {
                    s_conn_close (self, conn, "connection reset");
                    continue;
                }
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    s_conn_handle_read (self, conn);
                conn = self->conns[fd];        //  reading may have closed it
                if (conn && conn->serial == serial && (events[i].events & EPOLLOUT))
                    s_conn_mark_dirty (self, conn);
            }
            //  zmq sockets are drained at the top of every turn
        }
    }
    herd_log_printf (self->log, "gateway", "stopped");
    s_self_destroy (&self);
}

//  -------------------------------------------------------------------------
//  Self test: the gateway against a bus and places played by the test

//  Receive what the gateway sends a test's bus or places, passing over the
//  STATS it sends them once a second.
static zmsg_t *
s_recv_request (zsock_t *sock)
{
    while (true) {
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg || zmsg_size (msg) < 2)
            return msg;
        zmsg_first (msg);                           //  routing id
        zframe_t *command = zmsg_next (msg);
        if (!zframe_streq (command, "STATS"))
            return msg;
        zmsg_destroy (&msg);
    }
}

//  Play the bus storing an UPDATE the test received (routing id first): send
//  ["STORED", batch, batch], so the gateway may answer its IAMATs.
static void
s_store (zsock_t *bus, zmsg_t *update)
{
    zframe_t *routing = zmsg_first (update);
    HERD_CHECK (zframe_streq (zmsg_next (update), HERD_MSG_UPDATE));
    zframe_t *batch = zmsg_next (update);
    HERD_CHECK_INT (zframe_size (batch), 8);
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, (zframe_t *[]){zframe_dup (routing)});
    zmsg_addstr (reply, HERD_MSG_STORED);
    zmsg_append (reply, (zframe_t *[]){zframe_dup (batch)});
    zmsg_append (reply, (zframe_t *[]){zframe_dup (batch)});
    zmsg_send (&reply, bus);
}

void
herd_gateway_test (bool verbose)
{
    int port;
    herd_check_free_ports (&port, 1);
    char text[512];
    snprintf (text, sizeof (text),
              "herd\n    max_line = 100\n    max_pending = 3\n    max_output = 4096\n"
              "node = Hill\n    client = 127.0.0.1:%d\n    bus = tcp://127.0.0.1:1\n"
              "    log = x.log\n",
              port);
    char *error = NULL;
    herd_config_t *config = herd_config_load_string (text, "test.cfg", &error);
    if (!config)
        fprintf (stderr, "%s\n", error);
    HERD_CHECK (config);
    zsock_t *bus = zsock_new_router ("@inproc://gw-test-bus");
    zsock_t *places = zsock_new_router ("@inproc://gw-test-places");
    herd_gateway_args_t args = {config, &config->nodes[0], "inproc://gw-test-bus",
                                "inproc://gw-test-places", NULL};
    zactor_t *gateway = zactor_new (herd_gateway_actor, &args);
    HERD_CHECK_INT (zsock_wait (gateway), 0);

    //  A client sends IAMAT, WHATSAT, garbage in one write
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
    HERD_CHECK_INT (connect (fd, (struct sockaddr *) &addr, sizeof (addr)), 0);
    struct timeval timeout = {5, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    const char *request = "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\r\n"
                          "WHATSAT kiwi 10 2\n"
                          "bogus line\n"
                          "IAMAT kiwi2 +1+1 1\n";
    HERD_CHECK_INT (write (fd, request, strlen (request)), strlen (request));

    //  The bus receives the update, then the look-up
    zsock_set_rcvtimeo (bus, 5000);
    zmsg_t *msg = s_recv_request (bus);
    HERD_CHECK (msg);
    s_store (bus, msg);
    zframe_t *routing = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    HERD_CHECK_STR (command, HERD_MSG_UPDATE);
    zframe_t *batch = zmsg_pop (msg);
    HERD_CHECK_INT (zframe_size (batch), 8);
    zframe_destroy (&batch);
    char *at = zmsg_popstr (msg);
    HERD_CHECK (strncmp (at, "AT Hill +", 9) == 0);
    HERD_CHECK (strstr (at, " kiwi +34.068930-118.445127 1621464827.959498503"));
    zstr_free (&command);
    zframe_destroy (&routing);
    zmsg_destroy (&msg);

    msg = s_recv_request (bus);
    HERD_CHECK (msg);
    routing = zmsg_pop (msg);
    command = zmsg_popstr (msg);
    HERD_CHECK_STR (command, HERD_MSG_LOOKUP);
    zframe_t *reqid = zmsg_pop (msg);
    char *client = zmsg_popstr (msg);
    HERD_CHECK_STR (client, "kiwi");
    zstr_free (&command);
    zstr_free (&client);
    zmsg_destroy (&msg);

    //  The responses after the pending WHATSAT wait for it: nothing to read
    //  but the first AT line yet
    char buffer[4096];
    ssize_t got = read (fd, buffer, sizeof (buffer) - 1);
    HERD_CHECK (got > 0);
    buffer[got] = 0;
    HERD_CHECK (strncmp (buffer, at, strlen (at)) == 0);
    HERD_CHECK_INT (got, strlen (at) + 1);

    //  The bus answers; the gateway asks places with the AT line's position
    msg = zmsg_new ();
    zmsg_append (msg, &routing);
    zmsg_addstr (msg, HERD_MSG_FOUND);
    zmsg_append (msg, &reqid);
    zmsg_addstr (msg, at);
    zmsg_send (&msg, bus);
    zsock_set_rcvtimeo (places, 5000);
    msg = s_recv_request (places);
    HERD_CHECK (msg);
    routing = zmsg_pop (msg);
    command = zmsg_popstr (msg);
    HERD_CHECK_STR (command, HERD_MSG_NEARBY);
    reqid = zmsg_pop (msg);
    char *lat = zmsg_popstr (msg), *lon = zmsg_popstr (msg);
    char *radius = zmsg_popstr (msg), *bound = zmsg_popstr (msg);
    HERD_CHECK_STR (lat, "+34.068930");
    HERD_CHECK_STR (lon, "-118.445127");
    HERD_CHECK_STR (radius, "10");
    HERD_CHECK_STR (bound, "2");
    zstr_free (&command);
    zstr_free (&lat);
    zstr_free (&lon);
    zstr_free (&radius);
    zstr_free (&bound);
    zmsg_destroy (&msg);

    msg = zmsg_new ();
    zmsg_append (msg, &routing);
    zmsg_addstr (msg, HERD_MSG_RESULT);
    zmsg_append (msg, &reqid);
    zmsg_addstr (msg, HERD_MSG_OK);
    zmsg_addstr (msg, "{\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}");
    zmsg_send (&msg, places);

    //  The last line's IAMAT (kiwi2) went to the bus after the look-up: its
    //  AT goes out once the bus stores it
    msg = s_recv_request (bus);
    HERD_CHECK (msg);
    s_store (bus, msg);
    zmsg_destroy (&msg);

    //  Now the rest arrives, in request order
    char expected[4096];
    snprintf (expected, sizeof (expected),
              "%s\n{\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n\n"
              "? bogus line\nAT Hill ",
              at);
    size_t total = 0;
    while (total < strlen (expected)) {
        got = read (fd, buffer + total, sizeof (buffer) - 1 - total);
        HERD_CHECK (got > 0);
        total += (size_t) got;
    }
    buffer[total] = 0;
    HERD_CHECK (strncmp (buffer, expected, strlen (expected)) == 0);
    zstr_free (&at);

    //  A line over max_line (100) gets "? " + the first 100 bytes, then close
    char longline[300];
    memset (longline, 'x', sizeof (longline));
    longline[sizeof (longline) - 1] = '\n';
    int fd2 = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (fd2, (struct sockaddr *) &addr, sizeof (addr)), 0);
    setsockopt (fd2, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    HERD_CHECK_INT (write (fd2, longline, sizeof (longline)), sizeof (longline));
    total = 0;
    while ((got = read (fd2, buffer + total, sizeof (buffer) - 1 - total)) > 0)
        total += (size_t) got;
    HERD_CHECK_INT (got, 0);                //  closed by the gateway
    HERD_CHECK_INT (total, 2 + 100 + 1);
    HERD_CHECK (buffer[0] == '?' && buffer[1] == ' ' && buffer[102] == '\n');
    close (fd2);

    //  Lines split across reads: each read is parsed where it lies, only the
    //  unfinished line kept; a line that grows past max_line over two reads
    //  is still cut at 100 bytes
    int fd6 = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (fd6, (struct sockaddr *) &addr, sizeof (addr)), 0);
    setsockopt (fd6, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    const char *pieces[] = {"IAMAT sp", "lit +1+1 1\nIAMAT two +1+1 2\nIAM",
                            "AT three +1+1 3\n", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                            "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n"};
    for (size_t i = 0; i < sizeof (pieces) / sizeof (pieces[0]); i++) {
        HERD_CHECK_INT (write (fd6, pieces[i], strlen (pieces[i])), strlen (pieces[i]));
        zclock_sleep (50);                      //  likely one read each
    }
    //  The bus gets their three updates (records of one read go in one
    //  UPDATE: count records, not messages), and stores them
    size_t updates = 0;
    while (updates < 3) {
        msg = s_recv_request (bus);
        HERD_CHECK (msg);
        s_store (bus, msg);
        zmsg_first (msg);                       //  routing id
        zframe_t *frame = zmsg_next (msg);
        HERD_CHECK (zframe_streq (frame, HERD_MSG_UPDATE));
        zmsg_next (msg);                        //  batch
        frame = zmsg_next (msg);
        updates++;
        for (size_t i = 0; i < zframe_size (frame); i++)
            updates += zframe_data (frame)[i] == '\n';
        zmsg_destroy (&msg);
    }
    HERD_CHECK_INT (updates, 3);
    total = 0;
    while ((got = read (fd6, buffer + total, sizeof (buffer) - 1 - total)) > 0)
        total += (size_t) got;
    HERD_CHECK_INT (got, 0);                    //  closed for the long line
    buffer[total] = 0;
    HERD_CHECK (strstr (buffer, " split +1+1 1\nAT Hill "));
    HERD_CHECK (strstr (buffer, " two +1+1 2\nAT Hill "));
    char *cut = strstr (buffer, " three +1+1 3\n? ");
    HERD_CHECK (cut);
    cut += strlen (" three +1+1 3\n? ");
    HERD_CHECK_INT (strlen (cut), 100 + 1);
    HERD_CHECK (cut[0] == 'x' && cut[49] == 'x' && cut[50] == 'y' && cut[99] == 'y');
    close (fd6);

    //  An over-long line behind a pending WHATSAT: the WHATSAT is still
    //  answered before the "? " and the close
    int fd5 = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (fd5, (struct sockaddr *) &addr, sizeof (addr)), 0);
    setsockopt (fd5, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    const char *ask = "WHATSAT kiwi 10 1\n";
    HERD_CHECK_INT (write (fd5, ask, strlen (ask)), strlen (ask));
    HERD_CHECK_INT (write (fd5, longline, sizeof (longline)), sizeof (longline));
    msg = s_recv_request (bus);
    HERD_CHECK (msg);
    zframe_destroy (&routing);
    routing = zmsg_pop (msg);
    command = zmsg_popstr (msg);
    HERD_CHECK_STR (command, HERD_MSG_LOOKUP);
    zstr_free (&command);
    reqid = zmsg_pop (msg);
    zmsg_destroy (&msg);
    msg = zmsg_new ();
    zframe_t *back = zframe_dup (routing);
    zmsg_append (msg, &back);
    zmsg_addstr (msg, HERD_MSG_NONE);
    zmsg_append (msg, &reqid);
    zmsg_send (&msg, bus);
    total = 0;
    while ((got = read (fd5, buffer + total, sizeof (buffer) - 1 - total)) > 0)
        total += (size_t) got;
    HERD_CHECK_INT (got, 0);
    buffer[total] = 0;
    HERD_CHECK_INT (total, 20 + 2 + 100 + 1);
    HERD_CHECK (strncmp (buffer, "? WHATSAT kiwi 10 1\n? xxx", 25) == 0);
    close (fd5);

    //  Back-pressure: at most max_pending (3) requests in flight; the rest
    //  wait in the input until answers come
    int fd3 = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (fd3, (struct sockaddr *) &addr, sizeof (addr)), 0);
    setsockopt (fd3, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    const char *five = "WHATSAT k1 10 1\nWHATSAT k2 10 1\nWHATSAT k3 10 1\n"
                       "WHATSAT k4 10 1\nWHATSAT k5 10 1\n";
    HERD_CHECK_INT (write (fd3, five, strlen (five)), strlen (five));
    zframe_t *reqids[5];
    for (int i = 0; i < 5; i++) {
        zsock_set_rcvtimeo (bus, 5000);
        msg = s_recv_request (bus);
        HERD_CHECK (msg);
        if (i == 0) {
            zframe_destroy (&routing);
            routing = zmsg_pop (msg);
        }
        else {
            zframe_t *other = zmsg_pop (msg);
            zframe_destroy (&other);
        }
        command = zmsg_popstr (msg);
        HERD_CHECK_STR (command, HERD_MSG_LOOKUP);
        reqids[i] = zmsg_pop (msg);
        client = zmsg_popstr (msg);
        char expected_client[16];
        snprintf (expected_client, sizeof (expected_client), "k%d", i + 1);
        HERD_CHECK_STR (client, expected_client);
        zstr_free (&command);
        zstr_free (&client);
        zmsg_destroy (&msg);
        if (i == 2 || i == 3) {
            //  Three in flight: no more look-ups until one is answered
            zsock_set_rcvtimeo (bus, i == 2 ? 300 : 50);
            msg = s_recv_request (bus);
            HERD_CHECK (msg == NULL);
            msg = zmsg_new ();
            zframe_t *copy = zframe_dup (routing);
            zmsg_append (msg, &copy);
            zmsg_addstr (msg, HERD_MSG_NONE);
            zmsg_append (msg, &reqids[i - 2]);
            zmsg_send (&msg, bus);
        }
    }
    for (int i = 2; i < 5; i++) {
        msg = zmsg_new ();
        zframe_t *copy = zframe_dup (routing);
        zmsg_append (msg, &copy);
        zmsg_addstr (msg, HERD_MSG_NONE);
        zmsg_append (msg, &reqids[i]);
        zmsg_send (&msg, bus);
    }
    const char *unknown = "? WHATSAT k1 10 1\n? WHATSAT k2 10 1\n? WHATSAT k3 10 1\n"
                          "? WHATSAT k4 10 1\n? WHATSAT k5 10 1\n";
    total = 0;
    while (total < strlen (unknown)) {
        got = read (fd3, buffer + total, sizeof (buffer) - 1 - total);
        HERD_CHECK (got > 0);
        total += (size_t) got;
    }
    buffer[total] = 0;
    HERD_CHECK_STR (buffer, unknown);
    close (fd3);

    //  A client that writes and never reads is dropped once more than
    //  max_output (4096) bytes of answers wait beyond what the kernel takes
    int fd4 = socket (AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt (fd4, SOL_SOCKET, SO_RCVBUF, &small, sizeof (small));
    HERD_CHECK_INT (connect (fd4, (struct sockaddr *) &addr, sizeof (addr)), 0);
    struct timeval short_timeout = {0, 100000};
    setsockopt (fd4, SOL_SOCKET, SO_SNDTIMEO, &short_timeout, sizeof (short_timeout));
    char lines[64 * 1024];
    //  (invalid lines: answered at once, with no bus in between)
    const char *iamat = "a never reading client's line, invalid, answered at once: ? ...\n";
    size_t line_size = strlen (iamat), filled = 0;
    while (filled + line_size <= sizeof (lines)) {
        memcpy (lines + filled, iamat, line_size);
        filled += line_size;
    }
    size_t sent = 0;
    bool dropped = false;
    for (int round = 0; round < 4000 && !dropped; round++) {
        ssize_t rc = send (fd4, lines, filled, MSG_NOSIGNAL);
        if (rc > 0)
            sent += (size_t) rc;
        else
        if (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            dropped = true;     //  reset or broken pipe: the gateway closed it
        else {
            //  The gateway stopped taking input, or we were too fast:
            //  a dropped connection shows as readable with an error or EOF
            char byte;
            ssize_t peek = recv (fd4, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            (void) peek;
        }
    }
    if (verbose)
        printf ("   never-reading client dropped after %zu bytes sent\n", sent);
    HERD_CHECK (dropped);
    HERD_CHECK (sent < 256 * 1024 * 1024);
    close (fd4);

    //  Everyone else is still served. The updates of one read go to the bus
    //  as one UPDATE, in order
    const char *again = "IAMAT still +1+1 1\n";
    HERD_CHECK_INT (write (fd, again, strlen (again)), strlen (again));
    bool still = false;
    int64_t deadline = zclock_mono () + 10000;
    while (!still && zclock_mono () < deadline && (msg = s_recv_request (bus))) {
        zmsg_first (msg);
        still = zframe_streq (zmsg_next (msg), HERD_MSG_UPDATE)
                && memmem (zframe_data (zmsg_last (msg)), zframe_size (zmsg_last (msg)),
                           " still ", 7);
        if (still)
            s_store (bus, msg);
        zmsg_destroy (&msg);
    }
    HERD_CHECK (still);
    got = read (fd, buffer, sizeof (buffer) - 1);
    HERD_CHECK (got > 0);
    buffer[got] = 0;
    HERD_CHECK (strncmp (buffer, "AT Hill ", 8) == 0);
    HERD_CHECK (strstr (buffer, " still +1+1 1\n"));
    zframe_destroy (&routing);
    const char *three = "IAMAT a +1+1 1\nIAMAT b +1+1 2\nIAMAT c +1+1 3\n";
    HERD_CHECK_INT (write (fd, three, strlen (three)), strlen (three));
    msg = s_recv_request (bus);
    HERD_CHECK (msg);
    s_store (bus, msg);
    zmsg_first (msg);
    HERD_CHECK (zframe_streq (zmsg_next (msg), HERD_MSG_UPDATE));
    zmsg_next (msg);                            //  batch
    char *records = zframe_strdup (zmsg_next (msg));
    HERD_CHECK (zmsg_next (msg) == NULL);
    zmsg_destroy (&msg);
    char *b_at = strstr (records, " b +1+1 2\nAT Hill ");
    HERD_CHECK (strncmp (records, "AT Hill ", 8) == 0);
    HERD_CHECK (strstr (records, " a +1+1 1\nAT Hill ") && b_at);
    HERD_CHECK (strcmp (records + strlen (records) - 9, " c +1+1 3") == 0);
    zstr_free (&records);
    total = 0;
    while (total < 3 || buffer[total - 1] != '\n' || !strstr (buffer, " c +1+1 3\n")) {
        got = read (fd, buffer + total, sizeof (buffer) - 1 - total);
        HERD_CHECK (got > 0);
        total += (size_t) got;
        buffer[total] = 0;
    }

    close (fd);
    zactor_destroy (&gateway);
    zsock_destroy (&bus);
    zsock_destroy (&places);
    herd_config_destroy (&config);
}
