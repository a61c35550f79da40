//  herd_conn.h - a client connection: lines in, answers out in request order.
//
//  A connection owns its socket, an input buffer and an output buffer, and
//  a queue of answer slots in request order. It reads, cuts lines (at
//  '\n', at most max_line bytes) and hands each to the gateway's handler;
//  it never parses a command. The handler answers now (herd_conn_answer)
//  or holds a slot (herd_conn_hold) that it fills later, perhaps out of
//  order (herd_conn_fill); an answer may also be withheld until the gateway
//  releases it (an IAMAT's AT, until the bus stored the update). Answers go
//  out strictly in request order.
//
//  Caps: a line over max_line is answered "? <first max_line bytes>", then
//  the connection closes, lingering (answers written, our side shut, input
//  read to EOF); more than max_output bytes of unread answers drop a client
//  that does not read; at max_pending requests in flight the connection
//  stops reading until answers go out (herd_conn_pump). The node-wide cap,
//  max_output_total, is the gateway's: the connection keeps the node's
//  tally and calls the gateway's shed hook when an answer would pass it.
//
//  The connection never calls itself back: only herd_conn_read,
//  herd_conn_pump and herd_conn_resume hand lines to the handler, and the
//  handler must call none of those three. The gateway drives it: read,
//  pump, flush, then herd_conn_events says what to wait for, or
//  herd_conn_state says HERD_CONN_DONE and herd_conn_why says why.

#ifndef HERD_CONN_H_INCLUDED
#define HERD_CONN_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../common/herd_log.h"

typedef struct _herd_conn_t herd_conn_t;

//  Where a connection is in its life.
typedef enum {
    HERD_CONN_OPEN,         //  reading lines and answering them
    HERD_CONN_PAUSED,       //  max_pending requests in flight: not reading
    HERD_CONN_DEFERRED,     //  the handler deferred a line: not reading until resumed
    HERD_CONN_FINISHED,     //  the client shut its sending side: answering what it asked
    HERD_CONN_CLOSING,      //  a line over max_line: answering, then a lingering close
    HERD_CONN_LINGERING,    //  answered, our side shut: reading to EOF before closing
    HERD_CONN_DONE          //  to be destroyed, for herd_conn_why
} herd_conn_state_t;

//  What the handler says of a line.
typedef enum {
    HERD_CONN_TAKEN,        //  handled: go on with the next line
    HERD_CONN_DEFER         //  not now: keep it, stop reading until herd_conn_resume
} herd_conn_verdict_t;

//  The gateway's line handler: line is size bytes, without its '\n'. arg is
//  the one given to herd_conn_new.
typedef herd_conn_verdict_t (herd_conn_handler_fn) (void *arg, herd_conn_t *conn,
                                                     const char *line, size_t size);

//  What the connections of one gateway share, owned by the gateway: the
//  limits (it changes them live on reload), the clock of its loop turn,
//  the node's tally of answers held, and its hooks.
typedef struct {
    size_t max_line;
    size_t max_output;              //  unread answers of one connection, bytes
    size_t max_pending;             //  requests in flight per connection
    size_t max_output_total;        //  unread answers of all connections, bytes
    size_t output_total;            //  what all connections hold now
    size_t output_freed;            //  answers' bytes freed; the gateway resets it
    int64_t now;                    //  ms, monotonic, of this loop turn
    herd_log_t *log;                //  answers logged as client lines out; may be NULL
    herd_conn_handler_fn *handler;
    //  output_total + bytes would pass max_output_total: doom connections
    //  (herd_conn_doom) until it fits
    void (*shed) (void *hook_arg, size_t bytes);
    //  a slot's request (herd_conn_hold) is done with: free it
    void (*request_free) (void *hook_arg, void *request);
    //  the real time of this loop turn, microseconds, for the log's lines
    //  out (the owner reads its clock once a turn); NULL: read the clock
    int64_t (*wall_usec) (void *hook_arg);
    void *hook_arg;
    //  herd_conn's own: answer slots freed and kept for the next requests
    //  (at most HERD_CONN_SPARE_MAX), so an IAMAT costs no malloc; the
    //  owner frees them with herd_conn_shared_release
    void *spare;
    size_t spare_count;
} herd_conn_shared_t;

//  Free what the connections left in shared (its spare slots).
void
    herd_conn_shared_release (herd_conn_shared_t *shared);

//  What happened that the gateway's clocks want to know, since it last
//  asked (herd_conn_news).
#define HERD_CONN_LINES   1         //  lines were handled
#define HERD_CONN_WROTE   2         //  the client took output
#define HERD_CONN_LINGER  4         //  a lingering close began

//  Take a connected, non-blocking socket; serial names the connection in
//  the log; arg goes to the handler.
herd_conn_t *
    herd_conn_new (int fd, uint64_t serial, herd_conn_shared_t *shared, void *arg);

//  Close the socket, free the slots (and their requests), take what the
//  connection held out of the node's tally.
void
    herd_conn_destroy (herd_conn_t **self_p);

//  The socket.
int
    herd_conn_fd (herd_conn_t *self);

//  The serial given to herd_conn_new.
uint64_t
    herd_conn_serial (herd_conn_t *self);

//  Where the connection is.
herd_conn_state_t
    herd_conn_state (herd_conn_t *self);

//  Why it is done (HERD_CONN_DONE), or "".
const char *
    herd_conn_why (herd_conn_t *self);

//  Read what the client sent, at most budget bytes through scratch (shared
//  by all connections), and hand each complete line to the handler. Reads
//  and drops input while lingering.
void
    herd_conn_read (herd_conn_t *self, char *scratch, size_t scratch_size, size_t budget);

//  Paused at max_pending and now under it: read again, handing the lines
//  kept to the handler first.
void
    herd_conn_pump (herd_conn_t *self);

//  Deferred: read again, handing the deferred line to the handler first.
void
    herd_conn_resume (herd_conn_t *self);

//  Answer the current request now: its answer goes out after those before
//  it. parts are copied.
void
    herd_conn_answer (herd_conn_t *self, const struct iovec *parts, int count);

//  Hold a slot for an answer to come, in request order; request (may be
//  NULL) is the caller's, freed by the shared request_free once the slot is
//  filled or the connection destroyed. Returns the slot's sequence number.
uint64_t
    herd_conn_hold (herd_conn_t *self, void *request);

//  The request of slot seq if it waits for its answer, else NULL.
void *
    herd_conn_request (herd_conn_t *self, uint64_t seq);

//  Charge bytes that slot seq's request holds (a copy of its line) to the
//  connection's output; false if that dropped the client (done).
bool
    herd_conn_charge (herd_conn_t *self, uint64_t seq, size_t bytes);

//  Fill slot seq with an answer of count parts (copied; they may point into
//  its request, freed after). A withheld answer waits, ready, until
//  herd_conn_release; ready answers at the head of the queue go to output.
void
    herd_conn_fill (herd_conn_t *self, uint64_t seq, const struct iovec *parts, int count,
                    bool withheld);

//  True if slot seq holds a withheld answer.
bool
    herd_conn_withheld (herd_conn_t *self, uint64_t seq);

//  Let slot seq's withheld answer go out in its turn.
void
    herd_conn_release (herd_conn_t *self, uint64_t seq);

//  Condemn the connection: it reads and answers no more and is done, for
//  why. Never frees it.
void
    herd_conn_doom (herd_conn_t *self, const char *format, ...)
        __attribute__ ((format (printf, 2, 3)));

//  Write what the socket takes now; after the last answer, begin a
//  lingering close (closing) or be done (the client finished).
void
    herd_conn_flush (herd_conn_t *self);

//  The epoll events the connection waits for now (EPOLLIN, EPOLLOUT).
uint32_t
    herd_conn_events (herd_conn_t *self);

//  Return and forget the HERD_CONN_LINES/WROTE/LINGER that happened.
int
    herd_conn_news (herd_conn_t *self);

//  True while an unfinished line waits for its end (the line clock runs).
bool
    herd_conn_partial (herd_conn_t *self);

//  True while the oldest request waits for its answer.
bool
    herd_conn_awaiting (herd_conn_t *self);

//  Bytes of output the socket has not taken yet.
size_t
    herd_conn_unsent (herd_conn_t *self);

//  Bytes the connection holds in the node's tally (slots and unsent output).
size_t
    herd_conn_held (herd_conn_t *self);

//  Since when (shared now) unsent output has waited unread; INT64_MAX when
//  none waits.
int64_t
    herd_conn_unread_since (herd_conn_t *self);

//  Self test of this class.
void
    herd_conn_test (bool verbose);

#endif
