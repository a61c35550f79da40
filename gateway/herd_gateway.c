//  herd_gateway.c - the gateway actor: an epoll loop serving client lines.
//
//  The loop, the dispatch of client lines (IAMAT, WHATSAT, "?") and the
//  channels to bus and places. A client connection is a herd_conn_t
//  (herd_conn.c: lines in, answers out in request order, per-connection
//  caps); the listener is a herd_accept_t (herd_accept.c). The gateway
//  keeps what is node-wide: the time-outs, max_output_total (whom it drops:
//  herd_shed.c), whose turn it is to send a WHATSAT (herd_turns.c), and
//  which answers wait for the bus to store.

#include "herd_gateway.h"
#include "herd_accept.h"
#include "herd_conn.h"
#include "herd_shed.h"
#include "herd_timers.h"
#include "herd_turns.h"
#include "herd_uplink.h"
#include "../common/herd_actor.h"
#include "../common/herd_alarm.h"
#include "../common/herd_alive.h"
#include "../common/herd_hist.h"
#include "../common/herd_msg.h"
#include "../common/herd_proto.h"
#include "../common/herd_record.h"
#include "../common/herd_report.h"

#include <cjson/cJSON.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#define HERD_GW_READ_CHUNK  (64 * 1024)     //  bytes read per read(2), into one shared buffer
#define HERD_GW_READ_BUDGET (256 * 1024)    //  bytes read per connection per turn
#define HERD_GW_ZMQ_HWM     100000          //  queued messages to places, and from both
#define HERD_GW_BUS_HWM     1000            //  queued UPDATEs (<= 64 KB each) to the bus
#define HERD_GW_ACCEPT_MAX  256             //  connections accepted per turn
#define HERD_GW_TICK_MS     1000            //  longest sleep of the loop
#define HERD_GW_AT_STACK    512             //  AT lines up to this long are built on the stack
#define HERD_GW_BACKLOG_MS  5               //  retry sending to a bus that was full this often
#define HERD_GW_ZMQ_BATCH   256             //  replies from bus and places handled per turn
#define HERD_GW_ASKED_MAX   256             //  WHATSATs of all clients in flight at once
#define HERD_GW_TRIM_BYTES  (8 * 1024 * 1024) //  answers freed before memory goes back (1 s tick)
#define HERD_GW_STORED_MS   10              //  STORED for kept updates is read this often

//  epoll tags: what an event's fd belongs to (high 32 bits of data.u64)
enum { TAG_CLIENT = 0, TAG_LISTEN = 1, TAG_PIPE = 2, TAG_BUS = 3, TAG_PLACES = 4, TAG_ALARM = 5 };

//  The connection time-outs, each a herd_timers_t
enum { TIMER_IDLE = 0, TIMER_LINE = 1, TIMER_COUNT = 2 };

//  A request id as sent to bus and places: which connection, which slot.
typedef struct {
    uint64_t serial;                //  connection serial, never reused
    uint64_t seq;                   //  slot sequence on that connection
    int32_t fd;                     //  where the connection lives
    int32_t pad;
} s_reqid_t;

//  A WHATSAT in progress: the request of its slot (herd_conn_hold).
typedef struct {
    char *line;                     //  the request line, for "? line"
    size_t line_size;
    char *radius;                   //  as the client wrote it
    int bound;
    char *at_line;                  //  the AT record once the bus answered
    size_t at_size;
    int64_t started;                //  when the line came, usec
    bool asked;                     //  counted in flight (herd_turns_sent)
} s_request_t;

typedef struct _s_self_t s_self_t;
typedef struct _s_client_t s_client_t;

//  What the gateway knows of a connection beyond the connection itself.
struct _s_client_t {
    herd_conn_t *conn;
    s_self_t *self;                 //  for the line handler
    int fd;
    uint64_t serial;
    uint32_t events;                //  epoll interest now registered
    bool dirty;                     //  on the dirty list
    herd_turn_t turn;               //  its place in the queue for a WHATSAT's turn
    herd_timer_t timers[TIMER_COUNT];   //  its places on the time-out lists
};

struct _s_self_t {
    zsock_t *pipe;
    zsock_t *bus;                   //  DEALER to the bus ROUTER
    zsock_t *places;                //  DEALER to the places ROUTER
    int epoll;
    herd_alarm_t *alarm;            //  the next deadline (herd_alarm.h), or NULL
    herd_accept_t *acceptor;        //  the listener
    s_client_t **clients;           //  indexed by fd
    size_t client_capacity;
    size_t conn_count;
    s_reqid_t *dirty;               //  clients with output to write (fd, serial)
    size_t dirty_count;
    size_t dirty_capacity;
    uint64_t next_serial;
    const herd_node_t *node;
    herd_conn_shared_t shared;      //  the connections' limits, clock, tally, hooks
    int64_t trimmed_at;             //  when memory was last given back, ms
    herd_shed_t *shed;              //  connections to drop when over max_output_total
    herd_turns_t *turns;            //  WHATSATs in flight, clients waiting for a turn
    size_t max_clients;
    int64_t max_time_ahead_s;       //  IAMAT times further ahead are refused; 0: no bound
    herd_timers_t *timers[TIMER_COUNT]; //  idle_timeout_ms, line_timeout_ms
    int64_t now;                    //  ms, monotonic, read once per turn
    struct timespec wall;           //  real time, read at most once per turn
    bool wall_valid;                //  wall was read this turn
    herd_log_t *log;
    herd_uplink_t *uplink;          //  updates to the bus, answers waiting for them
    int ack_timeout_ms;             //  an answer waiting longer closes its connection
    bool check_pipe;                //  its ZMQ_FD fired: ask ZMQ_EVENTS
    bool check_bus;                 //  its ZMQ_FD fired, or we sent to it: receive
    bool check_places;              //  its ZMQ_FD fired, or we sent to it
    bool zmq_backlog;               //  replies left for the next turn: do not sleep
    bool keeping;                   //  updates kept in the gateway's journal (herd_uplink.h)
    bool bus_watched;               //  the bus's ZMQ_FD is in the epoll set (s_self_watch_bus)
    int64_t bus_read_at;            //  when the bus was last read, ms
    size_t lookups;                 //  LOOKUPs the bus has not answered
    char *input;                    //  every read lands here (HERD_GW_READ_CHUNK bytes);
                                    //  connections keep only what they cannot parse now
    herd_report_t *report;          //  counters to the node's monitor, or NULL
    //  Counters for the monitor (STATS once a second)
    uint64_t iamats, whatsats, invalids, opened;
    uint64_t unstored;              //  connections closed: an update not stored in time
    uint64_t last_iamats, last_whatsats;
    herd_hist_t whatsat_latency;    //  line in to answer ready, since last STATS
    herd_hist_t whatsat_latency_all;    //  the same since start, for metrics
    int64_t stats_at;               //  when STATS were last sent, ms
    bool terminated;
};

//  -------------------------------------------------------------------------
//  Time-outs

//  Start a loop turn's clocks: the monotonic one now (the connections' too),
//  the real-time one when first asked for (s_self_wall).
static void
s_self_tick (s_self_t *self)
{
    self->now = self->shared.now = zclock_mono ();
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

//  s_self_wall_usec as the connections' hook, for their lines out.
static int64_t
s_self_wall_hook (void *arg)
{
    return s_self_wall_usec ((s_self_t *) arg);
}

//  (Re)start a client's clock of one kind now.
static void
s_timer_start (s_self_t *self, s_client_t *client, int kind)
{
    herd_timers_start (self->timers[kind], &client->timers[kind], client, self->now);
}

//  -------------------------------------------------------------------------
//  Clients

//  Close a client now, forgetting whatever it still waits for.
static void
s_client_close (s_self_t *self, s_client_t *client, const char *why)
{
    herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " closed (%s)", client->serial, why);
    epoll_ctl (self->epoll, EPOLL_CTL_DEL, client->fd, NULL);
    self->clients[client->fd] = NULL;
    self->conn_count--;
    for (int kind = 0; kind < TIMER_COUNT; kind++)
        herd_timers_stop (self->timers[kind], &client->timers[kind]);
    herd_turns_leave (self->turns, &client->turn);
    herd_conn_destroy (&client->conn);
    free (client);
}

//  The client at fd if it is still the one of serial, and not done.
static s_client_t *
s_self_client (s_self_t *self, int32_t fd, uint64_t serial)
{
    if (fd < 0 || (size_t) fd >= self->client_capacity)
        return NULL;
    s_client_t *client = self->clients[fd];
    return client && client->serial == serial && herd_conn_state (client->conn) != HERD_CONN_DONE
               ? client
               : NULL;
}

//  Put a client on the list of those with output to write this turn.
static void
s_client_mark_dirty (s_self_t *self, s_client_t *client)
{
    if (client->dirty)
        return;
    if (self->dirty_count == self->dirty_capacity) {
        size_t capacity = self->dirty_capacity ? self->dirty_capacity * 2 : 64;
        s_reqid_t *dirty = (s_reqid_t *) realloc (self->dirty, capacity * sizeof (s_reqid_t));
        assert (dirty);
        self->dirty = dirty;
        self->dirty_capacity = capacity;
    }
    self->dirty[self->dirty_count++] = (s_reqid_t){client->serial, 0, client->fd, 0};
    client->dirty = true;
}

//  Keep the client's clocks in step with what its connection did: a line
//  handled or output taken restarts the idle clock; the line clock runs
//  while an unfinished line waits (restarted when a new one began), and
//  bounds a lingering close.
static void
s_client_clocks (s_self_t *self, s_client_t *client)
{
    herd_conn_t *conn = client->conn;
    int news = herd_conn_news (conn);
    if (news & (HERD_CONN_LINES | HERD_CONN_WROTE))
        s_timer_start (self, client, TIMER_IDLE);
    if (news & HERD_CONN_LINGER)
        s_timer_start (self, client, TIMER_LINE);
    else
    if (herd_conn_state (conn) == HERD_CONN_LINGERING)
        ;                                       //  its line clock runs on
    else
    if (!herd_conn_partial (conn))
        herd_timers_stop (self->timers[TIMER_LINE], &client->timers[TIMER_LINE]);
    else
    if ((news & HERD_CONN_LINES) || !client->timers[TIMER_LINE].linked)
        s_timer_start (self, client, TIMER_LINE);   //  a new unfinished line
}

//  The client's connection changed (input, answers): clocks, and a write
//  this turn.
static void
s_client_touched (s_self_t *self, s_client_t *client)
{
    s_client_clocks (self, client);
    s_client_mark_dirty (self, client);
}

//  Condemn a client: closed, with the reason logged, when the loop next
//  writes. Never frees it here, so any caller up the stack may still look
//  at it.
#define s_client_doom(self, client, ...)                                                  \
    do {                                                                                  \
        herd_conn_doom ((client)->conn, __VA_ARGS__);                                     \
        s_client_mark_dirty ((self), (client));                                           \
    } while (0)

//  Write a client's output; arm EPOLLOUT if the socket is full, close it
//  when its connection is done.
static void
s_client_flush (s_self_t *self, s_client_t *client)
{
    herd_conn_t *conn = client->conn;
    herd_conn_flush (conn);
    if (herd_conn_state (conn) == HERD_CONN_DONE) {
        s_client_close (self, client, herd_conn_why (conn));
        return;
    }
    s_client_clocks (self, client);
    uint32_t events = herd_conn_events (conn);
    if (events != client->events) {
        struct epoll_event event = {.events = events, .data.u64 = (uint64_t) client->fd};
        epoll_ctl (self->epoll, EPOLL_CTL_MOD, client->fd, &event);
        client->events = events;
    }
}

//  Write every client that got output this turn. The list names clients
//  by fd and serial, so ones closed meanwhile are skipped.
static void
s_self_flush_dirty (s_self_t *self)
{
    size_t count = self->dirty_count;
    self->dirty_count = 0;
    for (size_t i = 0; i < count; i++) {
        s_client_t *client = self->clients[self->dirty[i].fd];
        if (client && client->serial == self->dirty[i].serial) {
            client->dirty = false;
            s_client_flush (self, client);
        }
    }
}

//  Clients paused at max_pending that answers brought under it read
//  again, the lines they kept first. Only clients that got answers this
//  turn can be such; those the pumping dirties are pumped too.
static void
s_self_pump (s_self_t *self)
{
    for (size_t i = 0; i < self->dirty_count; i++) {
        s_client_t *client = s_self_client (self, self->dirty[i].fd, self->dirty[i].serial);
        if (client && herd_conn_state (client->conn) == HERD_CONN_PAUSED) {
            herd_conn_pump (client->conn);
            s_client_clocks (self, client);
        }
    }
}

//  The node's unread answers and bytes more would pass max_output_total
//  (the connections' shed hook): drop clients, the slowest readers first
//  (herd_shed.h), until they fit.
static void
s_self_shed (void *arg, size_t bytes)
{
    s_self_t *self = (s_self_t *) arg;
    herd_conn_shared_t *shared = &self->shared;
    herd_shed_clear (self->shed);
    for (size_t fd = 0; fd < self->client_capacity; fd++) {
        s_client_t *client = self->clients[fd];
        if (client && herd_conn_state (client->conn) != HERD_CONN_DONE)
            herd_shed_add (self->shed, client, herd_conn_unread_since (client->conn),
                           herd_conn_held (client->conn));
    }
    char why[128];
    s_client_t *client;
    while (shared->output_total + bytes > shared->max_output_total
           && (client = (s_client_t *) herd_shed_next (self->shed, self->now,
                                                        shared->max_output_total, why,
                                                        sizeof (why))))
        s_client_doom (self, client, "%s", why);
}

//  A WHATSAT's slot is filled or gone (the connections' request_free hook):
//  no longer in flight.
static void
s_request_free (void *arg, void *request_p)
{
    s_self_t *self = (s_self_t *) arg;
    s_request_t *request = (s_request_t *) request_p;
    if (request->asked)
        herd_turns_done (self->turns);
    free (request->line);
    free (request->radius);
    free (request->at_line);
    free (request);
}

//  An iovec of constant bytes, for herd_conn_fill and herd_conn_answer.
#define S_PART(data, size) ((struct iovec){(void *) (data), (size)})

//  Fill a WHATSAT's slot with "? line\n".
static void
s_client_invalid (s_client_t *client, uint64_t seq, s_request_t *request)
{
    struct iovec parts[] = {S_PART ("? ", 2), S_PART (request->line, request->line_size),
                            S_PART ("\n", 1)};
    herd_conn_fill (client->conn, seq, parts, 3, false);
}

//  Find the client and WHATSAT a request id names; NULL if gone (or its
//  connection is being dropped).
static s_request_t *
s_self_find_request (s_self_t *self, herd_msg_bytes_t frame, s_client_t **client_p,
                     uint64_t *seq_p)
{
    s_reqid_t reqid;
    if (frame.size != sizeof (reqid))
        return NULL;
    memcpy (&reqid, frame.data, sizeof (reqid));
    s_client_t *client = s_self_client (self, reqid.fd, reqid.serial);
    s_request_t *request = client ? (s_request_t *) herd_conn_request (client->conn, reqid.seq)
                                  : NULL;
    if (request) {
        *client_p = client;
        *seq_p = reqid.seq;
    }
    return request;
}

//  The bus stored batches first..last: their answers may go out. An answer
//  of an earlier batch is one the bus never got (it restarted, or the
//  message was lost with its connection): its update is not stored, so its
//  client gets no AT; its connection is closed.
static void
s_self_stored (s_self_t *self, uint64_t first, uint64_t last)
{
    herd_uplink_ref_t ref;
    bool lost;
    while (herd_uplink_next_stored (self->uplink, first, last, &ref, &lost)) {
        s_client_t *client = s_self_client (self, ref.fd, ref.serial);
        if (!client || !herd_conn_withheld (client->conn, ref.seq))
            continue;
        if (lost) {
            self->unstored++;
            s_client_doom (self, client, "update not stored: the bus did not get it");
        }
        else {
            herd_conn_release (client->conn, ref.seq);
            s_client_touched (self, client);
        }
    }
}

//  Close the connections of answers that waited ack_timeout_ms for their
//  update to be stored (the journal cannot write, the bus is stopped): no
//  AT goes out for an update that is not stored.
static void
s_self_expire_waiters (s_self_t *self)
{
    herd_uplink_ref_t ref;
    while (herd_uplink_next_expired (self->uplink, self->now, self->ack_timeout_ms, &ref)) {
        s_client_t *client = s_self_client (self, ref.fd, ref.serial);
        if (client) {
            self->unstored++;
            s_client_doom (self, client, "update not stored within %d ms: no AT sent",
                           self->ack_timeout_ms);
        }
    }
}

//  -------------------------------------------------------------------------
//  Client lines

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

//  An IAMAT: the AT line goes to the bus with this turn's updates; the
//  client's answer, the same line, waits in its slot until the bus says
//  the update is stored.
static void
s_self_handle_iamat (s_self_t *self, s_client_t *client, const herd_cmd_t *cmd)
{
    self->iamats++;
    const struct timespec *now = s_self_wall (self);
    char stack[HERD_GW_AT_STACK];
    char *at = stack;
    size_t at_size = herd_proto_format_at (self->node->name, cmd, now->tv_sec,
                                           (int32_t) now->tv_nsec, stack, sizeof (stack));
    if (at_size >= sizeof (stack)) {
        at = (char *) malloc (at_size + 1);
        assert (at);
        herd_proto_format_at (self->node->name, cmd, now->tv_sec, (int32_t) now->tv_nsec, at,
                              at_size + 1);
    }
    uint64_t batch = herd_uplink_queue (self->uplink, at, at_size);
    struct iovec parts[] = {S_PART (at, at_size), S_PART ("\n", 1)};
    uint64_t seq = herd_conn_hold (client->conn, NULL);
    herd_conn_fill (client->conn, seq, parts, 2, true);
    if (herd_conn_state (client->conn) != HERD_CONN_DONE)
        herd_uplink_wait (self->uplink, (herd_uplink_ref_t){client->serial, seq, client->fd},
                          batch, self->now);
    if (at != stack)
        free (at);
}

//  A WHATSAT: hold a slot and ask the bus for the client's location first.
//  in_turn: it took its turn (s_client_handle_line), so it counts as in
//  flight.
static void
s_self_handle_whatsat (s_self_t *self, s_client_t *client, const herd_cmd_t *cmd,
                       const char *line, size_t size, bool in_turn)
{
    s_request_t *request = (s_request_t *) zmalloc (sizeof (s_request_t));
    uint64_t seq = herd_conn_hold (client->conn, request);
    if (!herd_conn_charge (client->conn, seq, size)) {
        herd_conn_fill (client->conn, seq, NULL, 0, false);     //  dropped: nothing to ask
        return;
    }
    self->whatsats++;
    request->started = zclock_usecs ();
    request->line = (char *) malloc (size ? size : 1);
    assert (request->line);
    memcpy (request->line, line, size);
    request->line_size = size;
    request->radius = strndup (cmd->radius.data, cmd->radius.size);
    request->bound = cmd->bound;
    s_reqid_t reqid = {client->serial, seq, client->fd, 0};
    herd_uplink_send_updates (self->uplink);    //  this client's IAMAT first
    self->lookups++;
    herd_uplink_send (self->uplink,
                      &(herd_msg_t){.id = HERD_MSG_ID_LOOKUP, .reqid = {&reqid, sizeof (reqid)},
                                    .client = {cmd->client.data, cmd->client.size}});
    if (in_turn) {
        request->asked = true;          //  sent to the bus: in flight
        herd_turns_sent (self->turns);
    }
}

//  Handle one complete line of a client. An invalid line is answered at
//  once, in request order (herd_conn_answer); an IAMAT's answer waits
//  until the bus says the update is stored; a WHATSAT's until bus and
//  places answered.
static void
s_self_handle_line (s_self_t *self, s_client_t *client, const char *line, size_t size,
                    bool in_turn)
{
    if (size > 0 && line[size - 1] == '\r')     //  "? line" drops a \r\n ending
        size--;
    if (herd_log_wants_conn (self->log, client->serial))
        herd_log_conn (self->log, "gateway", client->serial, "in", s_self_wall_usec (self), line,
                       size);
    herd_cmd_t cmd;
    if (herd_proto_parse (line, size, &cmd) == -1 || s_iamat_too_far_ahead (self, &cmd)) {
        self->invalids++;
        struct iovec parts[] = {S_PART ("? ", 2), S_PART (line, size), S_PART ("\n", 1)};
        herd_conn_answer (client->conn, parts, 3);
    }
    else
    if (cmd.kind == HERD_CMD_IAMAT)
        s_self_handle_iamat (self, client, &cmd);
    else
        s_self_handle_whatsat (self, client, &cmd, line, size, in_turn);
}

//  The connections' line handler. A WHATSAT waits its turn (deferred, in
//  herd_turns' queue) while HERD_GW_ASKED_MAX are in flight or other
//  clients wait: then every client gets one in turn, so clients that
//  pipeline thousands cannot put them all ahead of a client that asks one.
//  The last line, at EOF, is handled as it comes.
static herd_conn_verdict_t
s_client_handle_line (void *arg, herd_conn_t *conn, const char *line, size_t size)
{
    s_client_t *client = (s_client_t *) arg;
    s_self_t *self = client->self;
    bool whatsat =
        herd_conn_state (conn) != HERD_CONN_FINISHED && herd_turns_wanted (line, size);
    if (whatsat && !herd_turns_take (self->turns, &client->turn, client))
        return HERD_CONN_DEFER;
    s_self_handle_line (self, client, line, size, whatsat);
    return HERD_CONN_TAKEN;
}

//  -------------------------------------------------------------------------
//  Accepting connections

//  Set up the client of a newly accepted socket.
static void
s_self_add_client (s_self_t *self, int fd, const char *peer)
{
    if ((size_t) fd >= self->client_capacity) {
        size_t capacity = self->client_capacity * 2;
        while (capacity <= (size_t) fd)
            capacity *= 2;
        s_client_t **clients =
            (s_client_t **) realloc (self->clients, capacity * sizeof (s_client_t *));
        assert (clients);
        memset (clients + self->client_capacity, 0,
                (capacity - self->client_capacity) * sizeof (s_client_t *));
        self->clients = clients;
        self->client_capacity = capacity;
    }
    s_client_t *client = (s_client_t *) zmalloc (sizeof (s_client_t));
    client->self = self;
    client->fd = fd;
    client->serial = ++self->next_serial;
    client->conn = herd_conn_new (fd, client->serial, &self->shared, client);
    self->clients[fd] = client;
    self->conn_count++;
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t) fd};
    epoll_ctl (self->epoll, EPOLL_CTL_ADD, fd, &event);
    client->events = EPOLLIN;
    s_timer_start (self, client, TIMER_IDLE);
    herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " opened from %s", client->serial,
                     peer);
}

//  Accept waiting connections, a bounded number per turn (those refused
//  count).
static void
s_self_handle_accept (s_self_t *self)
{
    for (int accepted = 0; accepted < HERD_GW_ACCEPT_MAX; accepted++) {
        char peer[64];
        int fd = herd_accept_next (self->acceptor, self->conn_count, self->max_clients,
                                   self->now, peer, sizeof (peer));
        if (fd == HERD_ACCEPT_NONE)
            return;
        if (fd >= 0)
            s_self_add_client (self, fd, peer);
    }
}

//  -------------------------------------------------------------------------
//  Periodic work: time-outs, refusal reports, accepting again

//  Close clients whose clocks ran out. Idle: no line came and nothing was
//  written for idle_timeout_ms (a request still waiting for the bus or
//  places restarts the clock instead). Line: an unfinished line has been
//  waiting line_timeout_ms for its end, or a lingering close its EOF.
static void
s_self_handle_timers (s_self_t *self)
{
    s_client_t *client;
    while ((client = (s_client_t *) herd_timers_expired (self->timers[TIMER_IDLE], self->now))) {
        char why[96];
        bool unsent = herd_conn_unsent (client->conn) > 0;
        if (herd_conn_awaiting (client->conn) && !unsent)
            s_timer_start (self, client, TIMER_IDLE);
        else {
            snprintf (why, sizeof (why), "%s for %" PRId64 " ms",
                      unsent ? "idle: answers not read" : "idle: no request",
                      herd_timers_timeout (self->timers[TIMER_IDLE]));
            s_client_close (self, client, why);
        }
    }
    while ((client = (s_client_t *) herd_timers_expired (self->timers[TIMER_LINE], self->now))) {
        char why[96];
        snprintf (why, sizeof (why), "%s after %" PRId64 " ms",
                  herd_conn_state (client->conn) == HERD_CONN_LINGERING
                      ? "lingering close: no EOF"
                      : "slow line: no end of line",
                  herd_timers_timeout (self->timers[TIMER_LINE]));
        s_client_close (self, client, why);
    }
    s_self_expire_waiters (self);
    herd_accept_tick (self->acceptor, self->now);
}

//  Until when the loop may sleep (ms, monotonic): the nearest deadline, at
//  most a tick; 0 when it must not sleep.
static int64_t
s_self_wake_ms (s_self_t *self)
{
    if (self->zmq_backlog)
        return 0;
    //  A send since the drain may have taken a socket's ZMQ_FD edge (libzmq
    //  reads its command queue on send too): a reply that came meanwhile
    //  would then not wake epoll, and would wait for the tick. ZMQ_EVENTS
    //  settles it: input now means no sleep; none means the edge is armed
    if (herd_uplink_sent (self->uplink) && self->bus_watched
        && (zsock_events (self->bus) & ZMQ_POLLIN))
        self->check_bus = true;
    self->check_places = self->check_places && (zsock_events (self->places) & ZMQ_POLLIN);
    if (self->check_bus || self->check_places || herd_uplink_uncommitted (self->uplink))
        return 0;
    int64_t wake = self->now + HERD_GW_TICK_MS;
    for (int kind = 0; kind < TIMER_COUNT; kind++)
        if (herd_timers_deadline (self->timers[kind]) < wake)
            wake = herd_timers_deadline (self->timers[kind]);
    int64_t accept_wake = herd_accept_wake (self->acceptor);
    if (accept_wake < wake)
        wake = accept_wake;
    int64_t oldest = herd_uplink_oldest (self->uplink);
    if (oldest != INT64_MAX && oldest + self->ack_timeout_ms < wake)
        wake = oldest + self->ack_timeout_ms;
    //  Messages wait for the bus: try again soon (its ZMQ_FD does not say
    //  when it takes messages again)
    if (herd_uplink_backlog (self->uplink) > 0 && self->now + HERD_GW_BACKLOG_MS < wake)
        wake = self->now + HERD_GW_BACKLOG_MS;
    if (!self->bus_watched && herd_uplink_unconfirmed (self->uplink) > 0
        && self->bus_read_at + HERD_GW_STORED_MS < wake)
        wake = self->bus_read_at + HERD_GW_STORED_MS;
    return wake;
}

//  Wait for events until s_self_wake_ms's deadline, or sooner to send held
//  updates: the alarm keeps it, and the wait has no time-out (herd_alarm.h).
static int
s_self_wait (s_self_t *self, struct epoll_event *events, int size)
{
    int64_t wake = s_self_wake_ms (self);
    int64_t now = zclock_usecs ();
    if (wake * 1000 <= now)
        return epoll_wait (self->epoll, events, size, 0);
    int64_t deadline = wake * 1000;
    int64_t held = herd_uplink_held_for (self->uplink, now);
    if (held >= 0 && now + held < deadline)
        deadline = now + held;
    if (self->alarm && herd_alarm_set (self->alarm, deadline) == 0)
        return epoll_wait (self->epoll, events, size, -1);
    int64_t wait = deadline - now;
    struct timespec timeout = {wait / 1000000, (long) (wait % 1000000) * 1000};
    return epoll_pwait2 (self->epoll, events, size, &timeout, NULL);
}

//  -------------------------------------------------------------------------
//  Replies from bus and places

//  The answer when the places worker's queue is full, in the shape of a
//  Places error body.
static const char s_places_busy[] =
    "{\n   \"error_message\" : \"herd: too many place searches in flight\",\n"
    "   \"html_attributions\" : [],\n   \"results\" : [],\n"
    "   \"status\" : \"OVER_QUERY_LIMIT\"\n}\n\n";

//  The bus found the WHATSAT's client at line (an AT record): ask places
//  around its position.
static void
s_self_handle_found (s_self_t *self, s_client_t *client, uint64_t seq, s_request_t *request,
                     herd_msg_bytes_t reqid, herd_msg_bytes_t line)
{
    herd_record_t record;
    herd_span_t lat, lon;
    if (herd_record_parse (line.data, line.size, &record) == -1
        || herd_proto_parse_position (record.position.data, record.position.size, &lat, &lon)
               == -1) {
        s_client_invalid (client, seq, request);
        return;
    }
    if (!herd_conn_charge (client->conn, seq, line.size))
        return;                             //  dropped meanwhile
    request->at_size = line.size;
    request->at_line = (char *) malloc (request->at_size);
    assert (request->at_line);
    memcpy (request->at_line, line.data, request->at_size);
    char bound[16];
    snprintf (bound, sizeof (bound), "%d", request->bound);
    herd_msg_t nearby = {.id = HERD_MSG_ID_NEARBY, .reqid = reqid, .lat = {lat.data, lat.size},
                         .lon = {lon.data, lon.size}, .radius = herd_msg_str (request->radius),
                         .bound = herd_msg_str (bound)};
    self->check_places = true;      //  a send may take its ZMQ_FD's edge
    if (!herd_uplink_send_now (self->places, &nearby)) {
        herd_log_warning (self->log, "gateway", "places channel full");
        struct iovec parts[] = {S_PART (request->at_line, request->at_size), S_PART ("\n", 1),
                                S_PART (s_places_busy, strlen (s_places_busy))};
        herd_conn_fill (client->conn, seq, parts, 3, false);
    }
}

//  Watch the bus's ZMQ_FD only while an answer waits for it (a WHATSAT's
//  LOOKUP, an IAMAT's STORED when updates are not kept). Kept updates need
//  its STORED too, but not at once: the loop reads them every
//  HERD_GW_STORED_MS, and at 1x1 load the gateway then wakes once per
//  IAMAT, not twice.
static void
s_self_watch_bus (s_self_t *self)
{
    bool watch = !self->keeping || self->lookups > 0 || herd_uplink_waiting (self->uplink) > 0;
    if (watch == self->bus_watched)
        return;
    struct epoll_event event = {.events = watch ? EPOLLIN : 0,
                                .data.u64 = (uint64_t) TAG_BUS << 32};
    epoll_ctl (self->epoll, EPOLL_CTL_MOD, zsock_fd (self->bus), &event);
    self->bus_watched = watch;
    self->check_bus = self->check_bus || watch;     //  what came meanwhile
}

//  Handle one reply of the bus: STORED, or FOUND or NONE for a WHATSAT.
//  False when none waits (the socket's receive time-out is zero).
static bool
s_self_handle_bus (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->bus);
    if (!msg)
        return false;
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX];
    if (herd_msg_decode (&in, msg, HERD_MSG_TO_GATEWAY, NULL, reason, sizeof (reason)) == 0) {
        if (in.id == HERD_MSG_ID_STORED) {
            herd_uplink_stored (self->uplink, in.first, in.last);
            s_self_stored (self, in.first, in.last);
        }
        else {
            s_client_t *client = NULL;
            uint64_t seq = 0;
            self->lookups -= self->lookups > 0;
            s_request_t *request = s_self_find_request (self, in.reqid, &client, &seq);
            if (request && in.id == HERD_MSG_ID_NONE)
                s_client_invalid (client, seq, request);
            else
            if (request)
                s_self_handle_found (self, client, seq, request, in.reqid, in.line);
            if (client)
                s_client_touched (self, client);
        }
    }
    zmsg_destroy (&msg);
    return true;
}

//  Handle one message of the places worker: RESULT OK|ERR json.
static void
s_self_handle_places (s_self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->places);
    if (!msg)
        return;
    herd_msg_t in;
    char reason[HERD_MSG_REASON_MAX];
    if (herd_msg_decode (&in, msg, HERD_MSG_FROM_PLACES, NULL, reason, sizeof (reason)) == 0) {
        s_client_t *client = NULL;
        uint64_t seq = 0;
        s_request_t *request = s_self_find_request (self, in.reqid, &client, &seq);
        if (request && request->at_line) {
            int64_t started = request->started;     //  the fill frees request
            struct iovec parts[] = {S_PART (request->at_line, request->at_size), S_PART ("\n", 1),
                                    S_PART (in.json.data, in.json.size), S_PART ("\n\n", 2)};
            herd_conn_fill (client->conn, seq, parts, 4, false);
            herd_hist_add (&self->whatsat_latency, (uint64_t) (zclock_usecs () - started));
            if (herd_msg_bytes_eq (in.status, HERD_MSG_ERR))
                herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " places failed",
                                 client->serial);
        }
        if (client)
            s_client_touched (self, client);
    }
    zmsg_destroy (&msg);
}

//  Once a second: our counters to the node's monitor.
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
    cJSON_AddNumberToObject (stats, "store_waiting", (double) herd_uplink_waiting (self->uplink));
    cJSON_AddNumberToObject (stats, "bus_backlog", (double) herd_uplink_backlog (self->uplink));
    cJSON_AddNumberToObject (stats, "unconfirmed_bytes",
                             (double) herd_uplink_unconfirmed (self->uplink));
    cJSON_AddNumberToObject (stats, "iamat_per_s",
                             (double) (self->iamats - self->last_iamats) / seconds);
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
    herd_report_stats (self->report, stats);
}

//  Take the limits of a reloaded config (RELOAD, herd_msg.h). They apply
//  from the next check on, to the connections open too: a line is held to
//  the max_line of when it is read, a silent client to the idle_timeout_ms
//  of when it is looked at. VERBOSE changes nothing in the gateway.
static void
s_self_reload (void *arg, const herd_config_t *config)
{
    s_self_t *self = (s_self_t *) arg;
    const herd_node_t *node = herd_config_node (config, self->node->name);
    assert (node);          //  herd_config_reload_check refused a config without it
    self->node = node;
    self->shared.max_line = config->max_line;
    self->shared.max_output = config->max_output;
    self->shared.max_output_total = config->max_output_total;
    self->shared.max_pending = config->max_pending;
    self->ack_timeout_ms = config->ack_timeout_ms;
    self->max_time_ahead_s = config->max_time_ahead_s;
    herd_timers_set_timeout (self->timers[TIMER_IDLE], config->idle_timeout_ms);
    herd_timers_set_timeout (self->timers[TIMER_LINE], config->line_timeout_ms);
    if (config->max_clients != self->max_clients) {
        self->max_clients = config->max_clients;
        herd_accept_raise_fd_limit (self->acceptor, self->max_clients);
    }
}

//  The actor pipe's commands (herd_actor).
static const herd_actor_commands_t s_pipe_commands = {NULL, s_self_reload, NULL};

//  Give waiting clients their turn, oldest first, while fewer than
//  HERD_GW_ASKED_MAX WHATSATs are in flight: each may send one, then queues
//  again behind the others if it has more.
static void
s_self_grant (s_self_t *self)
{
    s_client_t *client;
    while ((client = (s_client_t *) herd_turns_next (self->turns))) {
        herd_conn_resume (client->conn);
        s_client_touched (self, client);    //  reading again, unless queued again
    }
}

//  Handle the messages waiting on the zmq sockets, at most
//  HERD_GW_ZMQ_BATCH replies from each of bus and places per turn: a flood
//  of answers (thousands of WHATSATs pipelined by clients that never read)
//  then cannot hold the loop for seconds while other clients' lines wait
//  unread; what is left is handled next turn, which does not sleep. ZMQ_FD
//  is edge-triggered, and any send may take the edge, so a socket is read
//  only when its ZMQ_FD fired, we sent to it or replies were left (each
//  look at an empty socket is two system calls: herd_poller.h).
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
            if (herd_actor_handle_pipe (self->pipe, &s_pipe_commands, self) == -1)
                self->terminated = true;
            progress = true;
        }
        self->check_pipe = false;
        //  The bus: received from until empty, which costs a system call
        //  less per reply than asking ZMQ_EVENTS first, and leaves its
        //  ZMQ_FD armed. A send since (herd_uplink_sent) is settled before
        //  the loop sleeps (s_self_wake_ms)
        if (herd_uplink_sent (self->uplink) && self->bus_watched)
            self->check_bus = true;
        if (!self->bus_watched && self->now - self->bus_read_at >= HERD_GW_STORED_MS)
            self->check_bus = true;
        if (self->check_bus)
            self->bus_read_at = self->now;
        while (self->check_bus && bus_budget > 0) {
            if (!s_self_handle_bus (self))
                self->check_bus = false;
            else {
                bus_budget--;
                progress = true;
            }
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
            self->check_bus = self->check_places = true;
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
    if (self->shared.output_freed < HERD_GW_TRIM_BYTES
        || self->now - self->trimmed_at < HERD_GW_TICK_MS)
        return;
    malloc_trim (0);
    self->shared.output_freed = 0;
    self->trimmed_at = self->now;
}

//  -------------------------------------------------------------------------
//  Set-up and loop

//  Destroy the gateway state, closing every connection.
static void
s_self_destroy (s_self_t **self_p)
{
    s_self_t *self = *self_p;
    if (!self)
        return;
    //  STOREDs that came: the journal keeps only what they do not confirm
    while (self->keeping && s_self_handle_bus (self))
        ;
    for (size_t fd = 0; fd < self->client_capacity; fd++)
        if (self->clients[fd])
            s_client_close (self, self->clients[fd], "node stopping");
    herd_conn_shared_release (&self->shared);
    free (self->clients);
    for (int kind = 0; kind < TIMER_COUNT; kind++)
        herd_timers_destroy (&self->timers[kind]);
    free (self->dirty);
    herd_shed_destroy (&self->shed);
    herd_turns_destroy (&self->turns);
    free (self->input);
    herd_accept_destroy (&self->acceptor);
    if (self->epoll >= 0)
        close (self->epoll);
    herd_alarm_destroy (&self->alarm);
    herd_uplink_destroy (&self->uplink);
    herd_report_destroy (&self->report);
    zsock_destroy (&self->bus);
    zsock_destroy (&self->places);
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

//  Connect the DEALERs to bus and places; false (logged) on failure.
static bool
s_self_connect (s_self_t *self, herd_gateway_args_t *args)
{
    self->bus = zsock_new (ZMQ_DEALER);
    self->places = zsock_new (ZMQ_DEALER);
    assert (self->bus && self->places);
    zsock_set_sndhwm (self->bus, HERD_GW_BUS_HWM);      //  at most 64 MB waiting
    zsock_set_rcvhwm (self->bus, HERD_GW_ZMQ_HWM);
    zsock_set_rcvtimeo (self->bus, 0);      //  see s_self_drain_zmq
    //  Updates handed over still reach the bus when the gateway stops
    //  (czmq's default linger is 0: queued messages dropped)
    zsock_set_linger (self->bus, 2000);
    zsock_set_sndhwm (self->places, HERD_GW_ZMQ_HWM);
    zsock_set_rcvhwm (self->places, HERD_GW_ZMQ_HWM);
    if (zsock_connect (self->bus, "%s", args->bus_endpoint) == -1
        || zsock_connect (self->places, "%s", args->places_endpoint) == -1) {
        herd_log_error (self->log, "gateway", "cannot connect to bus or places: %s",
                        zmq_strerror (zmq_errno ()));
        return false;
    }
    self->uplink = herd_uplink_new (self->bus);
    return true;
}

//  The gateway's journal (herd_uplink_keep): false (logged, printed) when
//  it cannot be used.
static bool
s_self_keep (s_self_t *self, herd_gateway_args_t *args)
{
    char error[256] = "";
    int rc = herd_uplink_keep (self->uplink, args->node->data, !args->config->fsync_always,
                               self->log, error);
    if (rc == -1) {
        herd_log_error (self->log, "gateway", "cannot use the journal: %s", error);
        fprintf (stderr, "herd: %s: cannot use the gateway's journal: %s\n", args->node->name,
                 error);
    }
    self->keeping = rc == 1;
    return rc != -1;
}

//  Build the gateway; NULL (logged, printed) on failure.
static s_self_t *
s_self_new (zsock_t *pipe, herd_gateway_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    const herd_config_t *config = args->config;
    self->input = (char *) malloc (HERD_GW_READ_CHUNK);
    assert (self->input);
    self->pipe = pipe;
    self->node = args->node;
    self->log = args->log;
    self->report = herd_report_new (args->monitor, "gateway");
    self->shared = (herd_conn_shared_t){
        .max_line = config->max_line, .max_output = config->max_output,
        .max_pending = config->max_pending, .max_output_total = config->max_output_total,
        .log = args->log, .handler = s_client_handle_line, .shed = s_self_shed,
        .request_free = s_request_free, .wall_usec = s_self_wall_hook, .hook_arg = self};
    self->max_clients = config->max_clients;
    self->ack_timeout_ms = config->ack_timeout_ms;
    self->max_time_ahead_s = config->max_time_ahead_s;
    self->timers[TIMER_IDLE] = herd_timers_new (config->idle_timeout_ms);
    self->timers[TIMER_LINE] = herd_timers_new (config->line_timeout_ms);
    self->shed = herd_shed_new ();
    self->turns = herd_turns_new (HERD_GW_ASKED_MAX);
    s_self_tick (self);
    self->client_capacity = 1024;
    self->clients = (s_client_t **) zmalloc (self->client_capacity * sizeof (s_client_t *));
    self->epoll = epoll_create1 (EPOLL_CLOEXEC);
    self->alarm = herd_alarm_new (self->epoll, (uint64_t) TAG_ALARM << 32);  //  NULL: time-outs

    char why[256] = "";
    self->acceptor =
        herd_accept_new (args->node->client_host, args->node->client_port, self->epoll,
                         (uint64_t) TAG_LISTEN << 32, self->log, self->now, why, sizeof (why));
    if (!self->acceptor) {
        herd_log_error (self->log, "gateway", "cannot listen on %s: %s", args->node->client, why);
        fprintf (stderr, "herd: %s: cannot listen on %s: %s\n", args->node->name,
                 args->node->client, why);
        s_self_destroy (&self);
        return NULL;
    }
    herd_accept_raise_fd_limit (self->acceptor, self->max_clients);
    if (!s_self_connect (self, args) || !s_self_keep (self, args)) {
        s_self_destroy (&self);
        return NULL;
    }
    self->check_pipe = self->check_bus = self->check_places = true;    //  the first turn asks all
    s_self_watch_zmq (self, self->pipe, TAG_PIPE);
    s_self_watch_zmq (self, self->bus, TAG_BUS);
    self->bus_watched = true;
    s_self_watch_zmq (self, self->places, TAG_PLACES);
    return self;
}

//  Handle an epoll event of a client's socket.
static void
s_self_handle_client (s_self_t *self, s_client_t *client, uint32_t events)
{
    //  Hang-up or error while we are not reading (EOF seen, paused,
    //  closing): reading would not notice, and the event, level-triggered,
    //  would come back every turn
    if ((events & (EPOLLHUP | EPOLLERR)) && !(client->events & EPOLLIN)) {
        s_client_close (self, client, "connection reset");
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        herd_conn_read (client->conn, self->input, HERD_GW_READ_CHUNK, HERD_GW_READ_BUDGET);
        if (herd_conn_state (client->conn) == HERD_CONN_DONE) {
            s_client_close (self, client, herd_conn_why (client->conn));
            return;
        }
        s_client_touched (self, client);
    }
    if (events & EPOLLOUT)
        s_client_mark_dirty (self, client);
}

//  One turn's work besides waiting: replies from bus and places, paused and
//  waiting clients reading again, clocks, stats, then every answer out.
static void
s_self_turn (s_self_t *self)
{
    s_self_tick (self);
    herd_alive_beat (HERD_ALIVE_GATEWAY, self->now);        //  this loop turns
    //  Kept updates (the lines read since the last turn) are answered now,
    //  before the bus hears of them: on a busy core it may run first, and
    //  the answers would wait for it
    s_self_stored (self, 0, herd_uplink_commit (self->uplink, self->now));
    herd_uplink_flush (self->uplink);
    s_self_drain_zmq (self);
    s_self_pump (self);
    s_self_grant (self);
    s_self_handle_timers (self);
    s_self_send_stats (self);
    s_self_flush_dirty (self);
    herd_uplink_send_held (self->uplink, zclock_usecs ());  //  the turn's updates, or soon
    s_self_watch_bus (self);
    s_self_trim (self);
}

void
herd_gateway_actor (zsock_t *pipe, void *args)
{
    pthread_setname_np (pthread_self (), "herd-gateway");    //  for top -H, perf, gdb
    zsock_signal (pipe, 0);
    s_self_t *self = s_self_new (pipe, (herd_gateway_args_t *) args);
    if (!herd_actor_ready (pipe, self != NULL) || !self)
        return;                             //  set-up failed (logged)
    herd_log_printf (self->log, "gateway", "serving clients on %s", self->node->client);
    struct epoll_event events[256];
    while (!self->terminated) {
        s_self_turn (self);
        if (self->terminated)
            break;
        int count = s_self_wait (self, events, 256);
        s_self_tick (self);
        for (int i = 0; i < count; i++) {
            uint32_t tag = (uint32_t) (events[i].data.u64 >> 32);
            int fd = (int) (events[i].data.u64 & 0xffffffffu);
            if (tag == TAG_PIPE)
                self->check_pipe = true;
            else
            if (tag == TAG_BUS)
                self->check_bus = true;
            else
            if (tag == TAG_PLACES)
                self->check_places = true;
            else
            if (tag == TAG_ALARM)
                herd_alarm_rang (self->alarm);
            else
            if (tag == TAG_LISTEN)
                s_self_handle_accept (self);
            else
            if (tag == TAG_CLIENT && self->clients[fd])
                s_self_handle_client (self, self->clients[fd], events[i].events);
            //  zmq sockets are drained at the top of every turn
        }
    }
    herd_log_printf (self->log, "gateway", "stopped");
    s_self_destroy (&self);
}
