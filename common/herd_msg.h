//  herd_msg.h - every message between the components of a node and between nodes.
//
//  This header is the one place the framing is written down; the code in
//  gateway/, bus/ and places/ follows it. All messages are ZeroMQ multipart
//  messages; every frame is binary-safe (lengths come from the frame, never
//  from a NUL). Strings below are sent without a terminating NUL.
//
//  ## AT record
//
//  A client location is carried everywhere as its AT line, exactly as the
//  origin server produced it, without the trailing newline:
//
//      AT <origin> <+|-diff> <client-id> <position> <client-time>
//
//  Everything else (origin, client id, client time used for ordering) is read
//  back from the line with herd_record_parse (common/herd_record.h), so a
//  record can never disagree with itself.
//
//  ## gateway -> bus   (gateway DEALER connects, bus ROUTER binds)
//
//  One ordered channel carries updates and look-ups, so a client that sends
//  IAMAT then WHATSAT on one connection always sees its own update.
//
//      ["UPDATE", batch, records]     apply each record if newer; STORED follows
//      ["LOOKUP", reqid, client-id]   reply below
//
//  records is one AT line, or several separated by '\n' (an AT line holds
//  no '\n'), no trailing newline: the gateway sends the updates of one loop
//  turn as one message, so the bus is woken and pays per-message costs once
//  per turn, not once per IAMAT. The bus applies them in order. batch is
//  the gateway's number for the message (8 bytes, little-endian, from 1,
//  one more each message): the gateway holds the IAMATs' AT answers until
//  the bus reports the batch stored.
//
//  ## bus -> gateway
//
//      ["FOUND", reqid, at-line]      the stored record for client-id
//      ["NONE", reqid]                no server has told this bus of client-id
//      ["STORED", first, last]        batches first..last (8 bytes each, little-
//                                     endian) are stored: in the journal, after
//                                     the write (herd/fsync = everysec) or the
//                                     fdatasync (always), or held by a bus that
//                                     keeps no journal
//
//  The bus sends STORED at the end of the loop turn that wrote the batches,
//  one message per gateway for all of them (group commit), and nothing while
//  its journal cannot write. A batch the gateway sent that falls before a
//  STORED's first was lost with a bus that restarted: never stored.
//
//  ## gateway -> places   (gateway DEALER connects, places ROUTER binds)
//
//      ["NEARBY", reqid, lat, lon, radius-km, bound]
//
//  lat and lon are the decimal degrees exactly as the client wrote them,
//  with their sign ("+34.068930", "-118.445127"); radius-km as the client
//  wrote it ("10", "0.5"); bound a decimal integer 1..20. Requests are
//  independent: many may be in flight, answered in any order.
//
//  ## places -> gateway
//
//      ["RESULT", reqid, "OK", json]  json: the Places body, results cut to
//                                     bound, newline runs collapsed, no
//                                     trailing newline
//      ["RESULT", reqid, "ERR", json] json: a legacy-shaped error body
//                                     {"error_message", "html_attributions",
//                                     "results": [], "status"} with the same
//                                     clean-up; status is Google's own for the
//                                     legacy API, the matching legacy status for
//                                     the New API (PERMISSION_DENIED ->
//                                     REQUEST_DENIED, RESOURCE_EXHAUSTED ->
//                                     OVER_QUERY_LIMIT, INVALID_ARGUMENT ->
//                                     INVALID_REQUEST), else "UNKNOWN_ERROR"
//
//  Either way the gateway answers the client with the AT line, the json, and
//  an empty line. reqid is opaque to bus and places: they echo it unchanged.
//
//  ## Envelope: herd and wire version   (every bus -> bus and control message)
//
//  Every message between buses and every control request carries, right
//  after its command frame, one envelope frame:
//
//      [version][herd]                version: 1 byte, HERD_MSG_WIRE_VERSION;
//                                     herd: the sender's herd/name (1..64 of
//                                     A-Z a-z 0-9 . _ -)
//
//  A bus never applies, serves or obeys a message whose envelope names
//  another herd or another version: it counts it (refused_messages_total),
//  logs it once per sender and reason, and answers a request on its sync
//  socket with ["REFUSED", reason]. Version bytes are 1..31, now and in
//  future versions, so a frame that starts with any other byte (text, or a
//  missing frame) is no envelope: a message of wire version 1, the wire
//  before envelopes, whose frame 1 was records, a name or meta. Such a
//  message is refused too, never misread. The herd name is a guard against
//  mistakes (a node started with another herd's ports), not against an
//  attacker: that is CURVE's job (security/curve). The replies to control
//  requests (DIGEST, OK, ERROR, RECORD, NONE) carry no envelope.
//
//  ## bus -> bus   (each bus binds a PUB; its SUB connects to every neighbour)
//
//      ["U", envelope, records, sender, meta]  location updates (records as
//                                     in UPDATE)
//      ["H", envelope, sender, meta]  heartbeat, once a second
//
//  sender is the publishing node's name; meta is 16 bytes: the sender bus's
//  instance id (8 bytes, little-endian, random at each start) and the
//  sender's table sequence number (8 bytes, little-endian) after the last
//  record of the message; it grows by one for every record the sender
//  applies. The sender publishes every record it applies, in order, those
//  of one loop turn in one message (at most 64 KB of records), so an update
//  of n records ends at sequence number s when the previous one ended at
//  s - n: a gap, a heartbeat ahead of what it saw, or a new instance means
//  the subscriber missed something, and it catches up over the sync socket.
//  A sender publishes what it applied before a heartbeat or a KTHXBAI.
//
//  A bus applies an update only if it is newer than what it holds
//  (herd_record_newer) and republishes only what it applied, so floods stop
//  on any topology.
//
//  ## bus -> bus catch-up   (each bus binds a sync ROUTER; a DEALER of each
//  neighbour connects to it)
//
//      ["ICANHAZ", envelope, meta, digest]  send me what I miss. meta: the
//                                     instance and sequence number of yours I
//                                     last saw (zeros: none); digest: my
//                                     table's count and digest (8 + 8 bytes,
//                                     little-endian)
//      ["KVSYNC", envelope, at-line, ...]  up to 1000 records and 64 KB a
//                                     message (or one larger record)
//      ["KTHXBAI", envelope, meta]    done: your view of me is now meta
//      ["REFUSED", reason]            not your herd or wire version: the
//                                     requester logs it and asks again only
//                                     after a back-off (up to 4 s)
//
//  When meta names the responder's current instance, it sends only the
//  records it changed after that sequence number (a delta); otherwise its
//  whole table, in chunks, unless the digests already agree (digests of
//  nodes of different hash versions never do; see the next section). The
//  chunks go out as the requester reads them, records changed meanwhile
//  after those already sent; KTHXBAI names the sequence number when the
//  last went. A requester that gets nothing for 5 s asks again on a new
//  connection.
//
//  Frame sizes: a frame larger than the largest of its kind drops the
//  connection unread (ZMQ_MAXMSGSIZE): records frames (U, KVSYNC) at most
//  herd/max_line + 4096 bytes (at least 64 KB); anything sent to a PUB or
//  a sync socket at most 4096.
//
//  ## control   (on the same sync ROUTER; herd digest, get, link and tests)
//
//      ["DIGEST", envelope]  ->  ["DIGEST", name, count, digest-hex, applied, stale]
//      ["LINK", envelope, peer, "down"|"up"]  ->  ["OK"] | ["ERROR", reason]
//      ["GET", envelope, client-id]  ->  ["RECORD", at-line, applied-usec, seq] | ["NONE"]
//
//  Any of them with another herd's or version's envelope  ->  ["REFUSED", reason].
//
//  count, applied and stale are decimal strings; digest-hex is 16 hex
//  digits: the XOR of herd_record_hash over every stored record, so two
//  tables with the same records have the same digest whatever their history.
//  herd_record_hash reads little-endian words, so the digest is the same on
//  every host; it changed with journal format HERDJ002 (it was FNV-1a), so
//  nodes of older versions report other digests for the same table.
//  LINK takes the bus's subscription to a neighbour down or up again
//  (maintenance, and partition tests). GET reads the stored record of one
//  client, never calling Places: its AT line (the origin is its second
//  field), when this bus applied it (wall-clock microseconds since the
//  epoch, microsecond precision, decimal; 0 when it was loaded from the
//  journal at start) and its sequence number in this bus's change order
//  (decimal).

//  ## role -> monitor   (each actor's PUSH connects, the node's monitor
//  PULL binds: inproc://herd-NODE-monitor, ipc://RUN_DIR/NODE-monitor.ipc
//  in a split node; monitor/herd_collector.h)
//
//      ["STATS", role, json]          a role's counters, once a second from
//                                     its loop (gateway, bus, places)
//      ["EVENT", role, event, peer, detail]  something an operator should see
//                                     ("link up", "journal failing", ...);
//                                     peer and detail may be empty
//
//  Sent without waiting (common/herd_report.h): a report the monitor cannot
//  take now is dropped, never queued behind the role's work. The monitor
//  republishes them on the node's monitor PUB as
//
//      ["STATS", node, json]  ["EVENT", node, json]   (monitor/herd_monitor.h)

//  ## Actor pipes (zactor)
//
//      "$TERM"                        stop the actor (czmq convention)
//      "VERBOSE"                      trace to stderr
//      "RELOAD", config               switch to a new config (SIGHUP)
//
//  RELOAD's second frame is a const herd_config_t * (zsock_send "sp"),
//  already checked by herd_config_reload_check. The actor takes from it
//  what it caches (limits, places options, neighbours), points its
//  herd_config_t and herd_node_t pointers at it and answers with a signal
//  (zsock_signal 0). The main thread frees the old config only after every
//  actor it runs has answered.

//  ## The codec (herd_msg.c)
//
//  Every message above is one row of a table in herd_msg.c: its channel,
//  its command frame, whether it carries the envelope, and its fields in
//  frame order. That table is the model zproto would generate code from
//  (zre_msg.xml -> zre_msg.c); written by hand because the messages are
//  few and irregular (the same command means other frames on other
//  channels: NONE, DIGEST, STATS) and because the hot paths need what a
//  generator does not give: decoding points into the received frames
//  (UPDATE and U records, KVSYNC lines are never copied) and encoding
//  sends straight from the caller's memory with zmq_send. herd_msg_encode
//  and herd_msg_send are the encoder of every row, herd_msg_decode the
//  decoder; the self-test checks each row against the literal frames.
//
//  Actor pipe commands ($TERM, VERBOSE, RELOAD) stay outside the codec:
//  they never leave the process, and RELOAD carries a pointer.

#ifndef HERD_MSG_H_INCLUDED
#define HERD_MSG_H_INCLUDED

#define HERD_MSG_UPDATE "UPDATE"
#define HERD_MSG_LOOKUP "LOOKUP"
#define HERD_MSG_FOUND  "FOUND"
#define HERD_MSG_NONE   "NONE"
#define HERD_MSG_STORED "STORED"
#define HERD_MSG_NEARBY "NEARBY"
#define HERD_MSG_RESULT "RESULT"
#define HERD_MSG_OK     "OK"
#define HERD_MSG_ERR    "ERR"
#define HERD_MSG_TOPIC_UPDATE "U"
#define HERD_MSG_TOPIC_HEARTBEAT "H"
#define HERD_MSG_ICANHAZ "ICANHAZ"
#define HERD_MSG_KVSYNC  "KVSYNC"
#define HERD_MSG_KTHXBAI "KTHXBAI"
#define HERD_MSG_DIGEST  "DIGEST"
#define HERD_MSG_LINK    "LINK"
#define HERD_MSG_GET     "GET"
#define HERD_MSG_RECORD  "RECORD"
#define HERD_MSG_REFUSED "REFUSED"
#define HERD_MSG_META_SIZE 16
#define HERD_MSG_RELOAD "RELOAD"
#define HERD_MSG_STATS  "STATS"
#define HERD_MSG_EVENT  "EVENT"
#define HERD_MSG_ERROR  "ERROR"

#define HERD_MSG_WIRE_VERSION 2     //  1: the wire before envelopes
#define HERD_MSG_NAME_MAX     64    //  longest herd name
#define HERD_MSG_ENVELOPE_MAX (1 + HERD_MSG_NAME_MAX)
#define HERD_MSG_REASON_MAX   128   //  room for a refusal's reason

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <czmq.h>

//  The wire's 64-bit integers (batch numbers, instance ids, sequence
//  numbers, counts): 8 bytes, little-endian, whatever the host.
static inline void
herd_msg_put_u64 (unsigned char *out, uint64_t value)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char) (value >> (8 * i));
}

static inline uint64_t
herd_msg_get_u64 (const unsigned char *in)
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = (value << 8) | in[i];
    return value;
}

//  True if name (size bytes) is a herd name: 1..64 of A-Z a-z 0-9 . _ -.
static inline bool
herd_msg_name_valid (const char *name, size_t size)
{
    if (size < 1 || size > HERD_MSG_NAME_MAX)
        return false;
    for (size_t i = 0; i < size; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

//  Write the envelope of herd name (a valid one) into out, which holds
//  HERD_MSG_ENVELOPE_MAX bytes; returns its size.
static inline size_t
herd_msg_envelope (unsigned char *out, const char *name)
{
    size_t size = strnlen (name, HERD_MSG_NAME_MAX);
    out[0] = HERD_MSG_WIRE_VERSION;
    memcpy (out + 1, name, size);
    return 1 + size;
}

//  Check an envelope frame (data NULL: the message has none) against our
//  herd name. 0 when it is ours; else -1 and reason (reason_size bytes)
//  says why, e.g. "herd 'other', ours 'herd'" or "wire version 1 (no
//  envelope), ours 2".
static inline int
herd_msg_envelope_check (const unsigned char *data, size_t size, const char *name, char *reason,
                         size_t reason_size)
{
    if (!data || size < 1 || data[0] < 1 || data[0] > 31) {
        snprintf (reason, reason_size, "wire version 1 (no envelope), ours %d",
                  HERD_MSG_WIRE_VERSION);
        return -1;
    }
    if (data[0] != HERD_MSG_WIRE_VERSION) {
        snprintf (reason, reason_size, "wire version %d, ours %d", data[0],
                  HERD_MSG_WIRE_VERSION);
        return -1;
    }
    const char *theirs = (const char *) data + 1;
    size_t length = size - 1;
    if (!herd_msg_name_valid (theirs, length)) {
        snprintf (reason, reason_size, "malformed envelope, ours '%s'", name);
        return -1;
    }
    if (length != strlen (name) || memcmp (theirs, name, length) != 0) {
        snprintf (reason, reason_size, "herd '%.*s', ours '%s'", (int) length, theirs, name);
        return -1;
    }
    return 0;
}

//  A meta frame (HERD_MSG_META_SIZE bytes): instance, then sequence number.
static inline void
herd_msg_put_meta (unsigned char *out, uint64_t instance, uint64_t seq)
{
    herd_msg_put_u64 (out, instance);
    herd_msg_put_u64 (out + 8, seq);
}

//  -------------------------------------------------------------------------
//  The codec

//  Where a message travels: the same command means other frames on other
//  channels. Messages received on a ROUTER start with a routing frame.
typedef enum {
    HERD_MSG_TO_BUS,            //  gateway -> bus ROUTER: UPDATE LOOKUP
    HERD_MSG_TO_GATEWAY,        //  bus -> gateway: FOUND NONE STORED
    HERD_MSG_TO_PLACES,         //  gateway -> places ROUTER: NEARBY
    HERD_MSG_FROM_PLACES,       //  places -> gateway: RESULT
    HERD_MSG_FLOOD,             //  bus PUB -> SUB: U H
    HERD_MSG_TO_SYNC,           //  -> sync ROUTER: ICANHAZ DIGEST LINK GET
    HERD_MSG_CATCHUP,           //  sync -> requesting bus: KVSYNC KTHXBAI REFUSED
    HERD_MSG_CONTROL,           //  sync -> control client: DIGEST OK ERROR RECORD NONE REFUSED
    HERD_MSG_TO_MONITOR,        //  role -> the node's monitor PULL: STATS EVENT
    HERD_MSG_MONITOR,           //  monitor PUB: STATS EVENT
    HERD_MSG_CHANNELS
} herd_msg_channel_t;

//  One message kind per row of the codec's table.
typedef enum {
    HERD_MSG_ID_UPDATE = 1,     //  batch records
    HERD_MSG_ID_LOOKUP,         //  reqid client
    HERD_MSG_ID_FOUND,          //  reqid line
    HERD_MSG_ID_NONE,           //  reqid                (bus -> gateway)
    HERD_MSG_ID_STORED,         //  first last
    HERD_MSG_ID_NEARBY,         //  reqid lat lon radius bound
    HERD_MSG_ID_RESULT,         //  reqid status json
    HERD_MSG_ID_U,              //  envelope records sender meta
    HERD_MSG_ID_H,              //  envelope sender meta
    HERD_MSG_ID_ICANHAZ,        //  envelope meta count+digest
    HERD_MSG_ID_DIGEST,         //  envelope
    HERD_MSG_ID_LINK,           //  envelope peer state
    HERD_MSG_ID_GET,            //  envelope client
    HERD_MSG_ID_KVSYNC,         //  envelope line...
    HERD_MSG_ID_KTHXBAI,        //  envelope meta
    HERD_MSG_ID_REFUSED,        //  reason               (catch-up or control)
    HERD_MSG_ID_DIGEST_REPLY,   //  name count digest applied stale (decimal, hex)
    HERD_MSG_ID_OK,             //  -
    HERD_MSG_ID_ERROR,          //  reason
    HERD_MSG_ID_RECORD,         //  line applied seq (decimal)
    HERD_MSG_ID_GET_NONE,       //  -                    (control)
    HERD_MSG_ID_REPORT_STATS,   //  role json            (role -> monitor)
    HERD_MSG_ID_REPORT_EVENT,   //  role event peer detail (role -> monitor)
    HERD_MSG_ID_MONITOR_STATS,  //  name json
    HERD_MSG_ID_MONITOR_EVENT,  //  name json
    HERD_MSG_IDS
} herd_msg_id_t;

//  A frame's bytes: decoded, they point into the received message (valid
//  while it lives); to encode, into the caller's memory. Never copied.
typedef struct {
    const void *data;
    size_t size;
} herd_msg_bytes_t;

//  A message, typed. Only the fields of its id mean anything.
typedef struct {
    herd_msg_id_t id;
    zframe_t *routing;          //  ROUTER side: decoded, the routing frame (still in the
                                //  message); to encode, sent first if not NULL
    const char *herd;           //  to encode: the herd name of the envelope
    herd_msg_bytes_t envelope;  //  decoded envelope (checked against our herd)
    uint64_t batch;             //  UPDATE
    uint64_t first, last;       //  STORED
    uint64_t instance, seq;     //  meta (U, H, ICANHAZ, KTHXBAI); RECORD's seq
    uint64_t count, digest;     //  ICANHAZ, DIGEST reply
    uint64_t applied, stale;    //  DIGEST reply; RECORD's applied (usec)
    herd_msg_bytes_t reqid, client, records, line, sender, role, json, name;
    herd_msg_bytes_t peer, state, reason, status, lat, lon, radius, bound, event, detail;
    zmsg_t *source;             //  decoded: the message (KVSYNC lines, herd_msg_next_line)
    bool refused;               //  decode failed on the envelope: another herd or version
} herd_msg_t;

//  Decode msg, received on channel, into self (zeroed first); fields point
//  into msg's frames. herd: our herd name, to check envelopes against (NULL:
//  not checked). 0, or -1 with reason (reason_size bytes) saying why, e.g.
//  "UPDATE: batch frame is 5 bytes, not 8"; self->refused when the envelope
//  was at fault (another herd or wire version: the message is refused, not
//  malformed), and then self->sender, on the flood, is the last frame but one
//  (where this wire and the last put it). The envelope is checked before
//  anything else, so a message of another version is never misread.
int
    herd_msg_decode (herd_msg_t *self, zmsg_t *msg, herd_msg_channel_t channel,
                     const char *herd, char *reason, size_t reason_size);

//  KVSYNC, decoded: the next AT line into line; false after the last.
bool
    herd_msg_next_line (herd_msg_t *self, herd_msg_bytes_t *line);

//  Encode self as a new zmsg (the routing frame too, when set).
zmsg_t *
    herd_msg_encode (const herd_msg_t *self);

//  Send self on sock straight from the fields' memory. flags: ZMQ_DONTWAIT,
//  and ZMQ_SNDMORE to go on with herd_msg_send_frame (KVSYNC's lines are
//  streamed that way). 0, or -1 when the first frame could not be sent
//  (nothing was: a message is taken or refused at its first frame).
int
    herd_msg_send (const herd_msg_t *self, zsock_t *sock, int flags);

//  Send self, an answer with its routing frame, on a ROUTER with mandatory
//  routing, without blocking. A ROUTER counts a requester's pipe full
//  until it has read the requester's acknowledgements, which libzmq does on
//  receives that find nothing and at most once a millisecond on sends: a
//  loop that answers requests arriving as fast as it answers them finds the
//  pipe of a requester that reads every answer full after SNDHWM answers.
//  So when the pipe looks full, the socket reads its commands first and
//  the answer is sent again, once. 0, or -1 with errno EAGAIN (the
//  requester does not read its answers) or EHOSTUNREACH (it is gone).
int
    herd_msg_answer (const herd_msg_t *self, zsock_t *sock);

//  Send one more frame of a message begun with herd_msg_send (.., ZMQ_SNDMORE).
int
    herd_msg_send_frame (zsock_t *sock, const void *data, size_t size, int flags);

//  The message's command frame, as sent.
const char *
    herd_msg_command (herd_msg_id_t id);

//  True if bytes are the string text.
bool
    herd_msg_bytes_eq (herd_msg_bytes_t bytes, const char *text);

//  Bytes of a C string.
herd_msg_bytes_t
    herd_msg_str (const char *text);

//  Self test of this class.
void
    herd_msg_test (bool verbose);

#endif
