//  herd_gateway.c - the gateway actor: an epoll loop serving client lines.

#include "herd_gateway.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"
#include "../common/herd_proto.h"
#include "../common/herd_record.h"

#include <arpa/inet.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define HERD_GW_READ_CHUNK  (64 * 1024)     //  bytes read per read(2)
#define HERD_GW_READ_BUDGET (256 * 1024)    //  bytes read per connection per turn
#define HERD_GW_ZMQ_HWM     100000          //  queued messages to bus and places
#define HERD_GW_DRAIN_MAX   (4 * 1024 * 1024) //  bytes read and dropped before a close

//  epoll tags: what an event's fd belongs to (high 32 bits of data.u64)
enum { TAG_CLIENT = 0, TAG_LISTEN = 1, TAG_PIPE = 2, TAG_BUS = 3, TAG_PLACES = 4 };

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
    char *data;                     //  ready: the whole response
    size_t size;
    //  WHATSAT in progress
    char *line;                     //  the request line, for "? line"
    size_t line_size;
    char *radius;                   //  as the client wrote it
    int bound;
    char *at_line;                  //  the AT record once the bus answered
    size_t at_size;
} s_slot_t;

//  A growable byte buffer with a read cursor.
typedef struct {
    char *data;
    size_t size;                    //  bytes held
    size_t start;                   //  bytes consumed from the front
    size_t capacity;
} s_buffer_t;

typedef struct {
    int fd;
    uint64_t serial;
    char peer[64];
    s_buffer_t in;
    size_t scanned;                 //  bytes of in (past start) known free of '\n'
    s_buffer_t out;
    s_slot_t *head, *tail;          //  pending responses, oldest first
    uint64_t next_seq;
    bool eof;                       //  client shut its sending side
    bool closing;                   //  close once out is written
    bool draining;                  //  closing: output sent, reading to EOF
    size_t drained;                 //  bytes discarded while draining
    uint32_t events;                //  epoll interest now registered
    bool dirty;                     //  on the dirty list
} s_conn_t;

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
    herd_log_t *log;
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
    size_t capacity = buffer->capacity ? buffer->capacity : 4096;
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

//  Close a connection now, forgetting whatever it still waits for.
static void
s_conn_close (s_self_t *self, s_conn_t *conn, const char *why)
{
    herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " closed (%s)", conn->serial, why);
    epoll_ctl (self->epoll, EPOLL_CTL_DEL, conn->fd, NULL);
    close (conn->fd);
    self->conns[conn->fd] = NULL;
    self->conn_count--;
    while (conn->head) {
        s_slot_t *next = conn->head->next;
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

//  Move every ready response at the head of the queue to the output buffer.
static void
s_conn_release (s_self_t *self, s_conn_t *conn)
{
    while (conn->head && conn->head->ready) {
        s_slot_t *slot = conn->head;
        herd_log_data (self->log, "gateway", "out", slot->data, slot->size);
        if (!s_buffer_append (&conn->out, slot->data, slot->size))
            conn->closing = true;
        conn->head = slot->next;
        if (!conn->head)
            conn->tail = NULL;
        s_slot_destroy (&slot);
    }
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
    return slot;
}

//  Make slot ready with a response made of count parts.
static void
s_slot_fill (s_slot_t *slot, const struct iovec *parts, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += parts[i].iov_len;
    free (slot->data);
    slot->data = (char *) malloc (total ? total : 1);
    assert (slot->data);
    slot->size = 0;
    for (int i = 0; i < count; i++) {
        if (parts[i].iov_len)
            memcpy (slot->data + slot->size, parts[i].iov_base, parts[i].iov_len);
        slot->size += parts[i].iov_len;
    }
    slot->ready = true;
}

//  An iovec of constant bytes, for s_slot_fill.
#define S_PART(data, size) ((struct iovec){(void *) (data), (size)})

//  Make slot ready with "? line\n".
static void
s_slot_invalid (s_slot_t *slot, const char *line, size_t size)
{
    struct iovec parts[] = {S_PART ("? ", 2), S_PART (line, size), S_PART ("\n", 1)};
    s_slot_fill (slot, parts, 3);
}

//  Find the connection and slot a request id names; NULL if gone.
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
    if (!conn || conn->serial != reqid.serial)
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

//  Handle one complete line of a connection.
static void
s_conn_handle_line (s_self_t *self, s_conn_t *conn, const char *line, size_t size)
{
    if (size > 0 && line[size - 1] == '\r')     //  "? line" drops a \r\n ending
        size--;
    herd_log_data (self->log, "gateway", "in", line, size);
    s_slot_t *slot = s_conn_new_slot (conn);
    herd_cmd_t cmd;
    if (herd_proto_parse (line, size, &cmd) == -1)
        s_slot_invalid (slot, line, size);
    else
    if (cmd.kind == HERD_CMD_IAMAT) {
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        size_t at_size;
        char *at = herd_proto_at_line (self->node->name, &cmd, now.tv_sec,
                                       (int32_t) now.tv_nsec, &at_size);
        assert (at);
        const void *data[] = {HERD_MSG_UPDATE, at};
        size_t sizes[] = {strlen (HERD_MSG_UPDATE), at_size};
        if (!s_send_frames (self->bus, data, sizes, 2))
            herd_log_printf (self->log, "gateway", "bus channel full: update not stored");
        struct iovec parts[] = {S_PART (at, at_size), S_PART ("\n", 1)};
        s_slot_fill (slot, parts, 2);
        free (at);
    }
    else {
        //  WHATSAT: ask the bus for the location first
        slot->line = (char *) malloc (size ? size : 1);
        assert (slot->line);
        memcpy (slot->line, line, size);
        slot->line_size = size;
        slot->radius = strndup (cmd.radius.data, cmd.radius.size);
        slot->bound = cmd.bound;
        s_reqid_t reqid = {conn->serial, slot->seq, conn->fd, 0};
        const void *data[] = {HERD_MSG_LOOKUP, &reqid, cmd.client.data};
        size_t sizes[] = {strlen (HERD_MSG_LOOKUP), sizeof (reqid), cmd.client.size};
        if (!s_send_frames (self->bus, data, sizes, 3)) {
            herd_log_printf (self->log, "gateway", "bus channel full: look-up refused");
            s_slot_invalid (slot, slot->line, slot->line_size);
        }
    }
    s_conn_release (self, conn);
}

//  Split the input buffer into lines and handle each; enforce the line cap.
static void
s_conn_handle_input (s_self_t *self, s_conn_t *conn)
{
    s_buffer_t *in = &conn->in;
    while (!conn->closing) {
        char *start = in->data + in->start;
        size_t pending = s_buffer_pending (in);
        char *newline = (char *) memchr (start + conn->scanned, '\n', pending - conn->scanned);
        size_t line_size = newline ? (size_t) (newline - start) : pending;
        if (line_size > self->max_line) {
            //  Over the cap: answer what we kept, then close
            s_slot_t *slot = s_conn_new_slot (conn);
            s_slot_invalid (slot, start, self->max_line);
            herd_log_printf (self->log, "gateway",
                             "conn=%" PRIu64 " line longer than max_line %zu bytes: closing",
                             conn->serial, self->max_line);
            s_conn_release (self, conn);
            conn->closing = true;
            in->start = in->size = conn->scanned = 0;
            return;
        }
        if (!newline) {
            conn->scanned = pending;
            break;
        }
        in->start += line_size + 1;
        conn->scanned = 0;
        s_conn_handle_line (self, conn, start, line_size);
    }
    if (in->start == in->size)
        in->start = in->size = 0;
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
    while (budget > 0 && !conn->eof && !conn->closing) {
        if (!s_buffer_reserve (&conn->in, HERD_GW_READ_CHUNK)) {
            s_conn_close (self, conn, "out of memory");
            return;
        }
        ssize_t rc = read (conn->fd, conn->in.data + conn->in.size, HERD_GW_READ_CHUNK);
        if (rc > 0) {
            conn->in.size += (size_t) rc;
            budget -= (size_t) rc < budget ? (size_t) rc : budget;
            s_conn_handle_input (self, conn);
        }
        else
        if (rc == 0) {
            //  End of file: a last line without '\n' is still a line
            conn->eof = true;
            size_t pending = s_buffer_pending (&conn->in);
            if (pending > 0 && !conn->closing) {
                s_conn_handle_line (self, conn, conn->in.data + conn->in.start, pending);
                conn->in.start = conn->in.size = conn->scanned = 0;
            }
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
        events = EPOLLIN | (pending ? EPOLLOUT : 0);
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
    char sink[HERD_GW_READ_CHUNK];
    while (true) {
        ssize_t rc = read (conn->fd, sink, sizeof (sink));
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
//  it when it is done (closing, or EOF with nothing left to answer).
static void
s_conn_flush (s_self_t *self, s_conn_t *conn)
{
    s_buffer_t *out = &conn->out;
    while (s_buffer_pending (out) > 0) {
        ssize_t rc = write (conn->fd, out->data + out->start, s_buffer_pending (out));
        if (rc > 0)
            out->start += (size_t) rc;
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else {
            s_conn_close (self, conn, rc < 0 ? strerror (errno) : "write failed");
            return;
        }
    }
    if (s_buffer_pending (out) == 0) {
        out->start = out->size = 0;
        if (conn->closing && !conn->draining) {
            //  Closing with unread input would send a reset that can destroy
            //  our last answer in flight: end our side, read to EOF, close
            shutdown (conn->fd, SHUT_WR);
            conn->draining = true;
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

//  Accept every waiting connection.
static void
s_self_handle_accept (s_self_t *self)
{
    while (true) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof (addr);
        int fd = accept4 (self->listener, (struct sockaddr *) &addr, &addr_len,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE) {
                //  Out of descriptors: refuse this one cleanly rather than spin
                close (self->spare_fd);
                fd = accept (self->listener, NULL, NULL);
                if (fd >= 0)
                    close (fd);
                self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
                herd_log_printf (self->log, "gateway",
                                 "refused a connection: out of file descriptors");
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
                && errno != ECONNABORTED)
                herd_log_printf (self->log, "gateway", "accept failed: %s", strerror (errno));
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
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
        int one = 1;
        setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
        s_conn_t *conn = (s_conn_t *) zmalloc (sizeof (s_conn_t));
        conn->fd = fd;
        conn->serial = ++self->next_serial;
        char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
        getnameinfo ((struct sockaddr *) &addr, addr_len, host, sizeof (host), port, sizeof (port),
                     NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf (conn->peer, sizeof (conn->peer), "%s:%s", host, port);
        self->conns[fd] = conn;
        self->conn_count++;
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t) fd};
        epoll_ctl (self->epoll, EPOLL_CTL_ADD, fd, &event);
        conn->events = EPOLLIN;
        herd_log_printf (self->log, "gateway", "conn=%" PRIu64 " opened from %s", conn->serial,
                         conn->peer);
    }
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
    zframe_t *reqid = zmsg_pop (msg);
    s_conn_t *conn = NULL;
    s_slot_t *slot = s_self_find_slot (self, reqid, &conn);
    if (slot && kind && streq (kind, HERD_MSG_NONE))
        s_slot_invalid (slot, slot->line, slot->line_size);
    else
    if (slot && kind && streq (kind, HERD_MSG_FOUND) && zmsg_size (msg) == 1) {
        zframe_t *line = zmsg_first (msg);
        herd_record_t record;
        herd_span_t lat, lon;
        if (herd_record_parse ((char *) zframe_data (line), zframe_size (line), &record) == -1
            || herd_proto_parse_position (record.position.data, record.position.size, &lat,
                                          &lon)
                   == -1)
            s_slot_invalid (slot, slot->line, slot->line_size);
        else {
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
            if (!s_send_frames (self->places, data, sizes, 6)) {
                herd_log_printf (self->log, "gateway", "places channel full");
                struct iovec parts[] = {S_PART (slot->at_line, slot->at_size),
                                        S_PART ("\n", 1),
                                        S_PART (s_places_busy, strlen (s_places_busy))};
                s_slot_fill (slot, parts, 3);
            }
        }
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
    zframe_t *reqid = zmsg_pop (msg);
    char *status = zmsg_popstr (msg);
    zframe_t *json = zmsg_pop (msg);
    s_conn_t *conn = NULL;
    s_slot_t *slot = s_self_find_slot (self, reqid, &conn);
    if (slot && slot->at_line && kind && streq (kind, HERD_MSG_RESULT) && status && json) {
        struct iovec parts[] = {S_PART (slot->at_line, slot->at_size), S_PART ("\n", 1),
                                S_PART (zframe_data (json), zframe_size (json)),
                                S_PART ("\n\n", 2)};
        s_slot_fill (slot, parts, 4);
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

//  Handle a command on the actor pipe.
static void
s_self_handle_pipe (s_self_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "VERBOSE"))
        self->verbose = true;
    zstr_free (&command);
}

//  Handle every message waiting on the zmq sockets. ZMQ_FD is edge-
//  triggered, so drain until none has input, re-checking after sends.
static void
s_self_drain_zmq (s_self_t *self)
{
    bool progress = true;
    while (progress && !self->terminated) {
        progress = false;
        while (!self->terminated && (zsock_events (self->pipe) & ZMQ_POLLIN)) {
            s_self_handle_pipe (self);
            progress = true;
        }
        while (zsock_events (self->bus) & ZMQ_POLLIN) {
            s_self_handle_bus (self);
            progress = true;
        }
        while (zsock_events (self->places) & ZMQ_POLLIN) {
            s_self_handle_places (self);
            progress = true;
        }
    }
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
    if (self->listener >= 0)
        close (self->listener);
    if (self->spare_fd >= 0)
        close (self->spare_fd);
    if (self->epoll >= 0)
        close (self->epoll);
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

//  Build the gateway; NULL (logged, printed) on failure.
static s_self_t *
s_self_new (zsock_t *pipe, herd_gateway_args_t *args)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    self->pipe = pipe;
    self->node = args->node;
    self->log = args->log;
    self->max_line = args->config->max_line;
    self->listener = self->spare_fd = self->epoll = -1;
    self->conn_capacity = 1024;
    self->conns = (s_conn_t **) zmalloc (self->conn_capacity * sizeof (s_conn_t *));

    char why[256] = "";
    self->listener = s_listen (args->node->client_host, args->node->client_port, why, sizeof (why));
    if (self->listener == -1) {
        herd_log_printf (self->log, "gateway", "cannot listen on %s: %s", args->node->client, why);
        fprintf (stderr, "herd: %s: cannot listen on %s: %s\n", args->node->name,
                 args->node->client, why);
        s_self_destroy (&self);
        return NULL;
    }
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    self->bus = zsock_new (ZMQ_DEALER);
    self->places = zsock_new (ZMQ_DEALER);
    assert (self->bus && self->places);
    zsock_set_sndhwm (self->bus, HERD_GW_ZMQ_HWM);
    zsock_set_rcvhwm (self->bus, HERD_GW_ZMQ_HWM);
    //  Updates already acknowledged to clients still reach the bus when the
    //  gateway stops (czmq's default linger is 0: queued messages dropped)
    zsock_set_linger (self->bus, 2000);
    zsock_set_sndhwm (self->places, HERD_GW_ZMQ_HWM);
    zsock_set_rcvhwm (self->places, HERD_GW_ZMQ_HWM);
    if (zsock_connect (self->bus, "%s", args->bus_endpoint) == -1
        || zsock_connect (self->places, "%s", args->places_endpoint) == -1) {
        herd_log_printf (self->log, "gateway", "cannot connect to bus or places: %s",
                         zmq_strerror (zmq_errno ()));
        s_self_destroy (&self);
        return NULL;
    }
    self->epoll = epoll_create1 (EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t) TAG_LISTEN << 32};
    epoll_ctl (self->epoll, EPOLL_CTL_ADD, self->listener, &event);
    s_self_watch_zmq (self, self->pipe, TAG_PIPE);
    s_self_watch_zmq (self, self->bus, TAG_BUS);
    s_self_watch_zmq (self, self->places, TAG_PLACES);
    return self;
}

void
herd_gateway_actor (zsock_t *pipe, void *args)
{
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
        s_self_drain_zmq (self);
        s_self_flush_dirty (self);
        herd_log_tick (self->log);
        if (self->terminated)
            break;
        int count = epoll_wait (self->epoll, events, 256, 1000);
        for (int i = 0; i < count; i++) {
            uint32_t tag = (uint32_t) (events[i].data.u64 >> 32);
            int fd = (int) (events[i].data.u64 & 0xffffffffu);
            if (tag == TAG_LISTEN)
                s_self_handle_accept (self);
            else
            if (tag == TAG_CLIENT && self->conns[fd]) {
                s_conn_t *conn = self->conns[fd];
                uint64_t serial = conn->serial;
                if (conn->eof && (events[i].events & (EPOLLHUP | EPOLLERR))) {
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

void
herd_gateway_test (bool verbose)
{
    (void) verbose;
    int port = 40000 + (int) (getpid () % 20000);
    char text[512];
    snprintf (text, sizeof (text),
              "herd\n    max_line = 100\n"
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
    zmsg_t *msg = zmsg_recv (bus);
    HERD_CHECK (msg);
    zframe_t *routing = zmsg_pop (msg);
    char *command = zmsg_popstr (msg);
    HERD_CHECK_STR (command, HERD_MSG_UPDATE);
    char *at = zmsg_popstr (msg);
    HERD_CHECK (strncmp (at, "AT Hill +", 9) == 0);
    HERD_CHECK (strstr (at, " kiwi +34.068930-118.445127 1621464827.959498503"));
    zstr_free (&command);
    zframe_destroy (&routing);
    zmsg_destroy (&msg);

    msg = zmsg_recv (bus);
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
    msg = zmsg_recv (places);
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

    close (fd);
    zactor_destroy (&gateway);
    zsock_destroy (&bus);
    zsock_destroy (&places);
    herd_config_destroy (&config);
}
