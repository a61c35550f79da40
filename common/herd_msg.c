//  herd_msg.c - the wire codec: every message of herd_msg.h, encoded and
//  decoded from one table (the model, as zre_msg.xml is zyre's).

#include "herd_msg.h"
#include "herd_check.h"

#include <inttypes.h>

//  What a field is on the wire
typedef enum {
    S_END = 0,
    S_BYTES,        //  any bytes (herd_msg_bytes_t)
    S_U64,          //  8 bytes, little-endian (uint64_t)
    S_META,         //  16 bytes: instance, seq
    S_TABLE,        //  16 bytes: count, digest
    S_DECIMAL,      //  decimal digits (uint64_t)
    S_HEX,          //  16 hex digits (uint64_t)
    S_LINES         //  zero or more frames to the end (KVSYNC)
} s_kind_t;

typedef struct {
    s_kind_t kind;
    size_t offset;  //  of the field in herd_msg_t
    const char *name;
} s_field_t;

#define S_MAX_FIELDS 5

//  One message: a row of the model
typedef struct {
    herd_msg_id_t id;
    herd_msg_channel_t channel;
    const char *command;
    bool envelope;
    s_field_t fields[S_MAX_FIELDS + 1];
} s_row_t;

#define F(kind, field) {kind, offsetof (herd_msg_t, field), #field}
#define B(field)       F (S_BYTES, field)

static const s_row_t s_rows[] = {
    {HERD_MSG_ID_UPDATE, HERD_MSG_TO_BUS, HERD_MSG_UPDATE, false,
     {F (S_U64, batch), B (records)}},
    {HERD_MSG_ID_LOOKUP, HERD_MSG_TO_BUS, HERD_MSG_LOOKUP, false, {B (reqid), B (client)}},
    {HERD_MSG_ID_FOUND, HERD_MSG_TO_GATEWAY, HERD_MSG_FOUND, false, {B (reqid), B (line)}},
    {HERD_MSG_ID_NONE, HERD_MSG_TO_GATEWAY, HERD_MSG_NONE, false, {B (reqid)}},
    {HERD_MSG_ID_STORED, HERD_MSG_TO_GATEWAY, HERD_MSG_STORED, false,
     {F (S_U64, first), F (S_U64, last)}},
    {HERD_MSG_ID_NEARBY, HERD_MSG_TO_PLACES, HERD_MSG_NEARBY, false,
     {B (reqid), B (lat), B (lon), B (radius), B (bound)}},
    {HERD_MSG_ID_RESULT, HERD_MSG_FROM_PLACES, HERD_MSG_RESULT, false,
     {B (reqid), B (status), B (json)}},
    {HERD_MSG_ID_U, HERD_MSG_FLOOD, HERD_MSG_TOPIC_UPDATE, true,
     {B (records), B (sender), F (S_META, instance)}},
    {HERD_MSG_ID_H, HERD_MSG_FLOOD, HERD_MSG_TOPIC_HEARTBEAT, true,
     {B (sender), F (S_META, instance)}},
    {HERD_MSG_ID_ICANHAZ, HERD_MSG_TO_SYNC, HERD_MSG_ICANHAZ, true,
     {F (S_META, instance), F (S_TABLE, count)}},
    {HERD_MSG_ID_DIGEST, HERD_MSG_TO_SYNC, HERD_MSG_DIGEST, true, {{S_END, 0, NULL}}},
    {HERD_MSG_ID_LINK, HERD_MSG_TO_SYNC, HERD_MSG_LINK, true, {B (peer), B (state)}},
    {HERD_MSG_ID_GET, HERD_MSG_TO_SYNC, HERD_MSG_GET, true, {B (client)}},
    {HERD_MSG_ID_KVSYNC, HERD_MSG_CATCHUP, HERD_MSG_KVSYNC, true, {F (S_LINES, line)}},
    {HERD_MSG_ID_KTHXBAI, HERD_MSG_CATCHUP, HERD_MSG_KTHXBAI, true, {F (S_META, instance)}},
    {HERD_MSG_ID_REFUSED, HERD_MSG_CATCHUP, HERD_MSG_REFUSED, false, {B (reason)}},
    {HERD_MSG_ID_DIGEST_REPLY, HERD_MSG_CONTROL, HERD_MSG_DIGEST, false,
     {B (name), F (S_DECIMAL, count), F (S_HEX, digest), F (S_DECIMAL, applied),
      F (S_DECIMAL, stale)}},
    {HERD_MSG_ID_OK, HERD_MSG_CONTROL, HERD_MSG_OK, false, {{S_END, 0, NULL}}},
    {HERD_MSG_ID_ERROR, HERD_MSG_CONTROL, HERD_MSG_ERROR, false, {B (reason)}},
    {HERD_MSG_ID_RECORD, HERD_MSG_CONTROL, HERD_MSG_RECORD, false,
     {B (line), F (S_DECIMAL, applied), F (S_DECIMAL, seq)}},
    {HERD_MSG_ID_GET_NONE, HERD_MSG_CONTROL, HERD_MSG_NONE, false, {{S_END, 0, NULL}}},
    {HERD_MSG_ID_REFUSED, HERD_MSG_CONTROL, HERD_MSG_REFUSED, false, {B (reason)}},
    {HERD_MSG_ID_REPORT_STATS, HERD_MSG_TO_MONITOR, HERD_MSG_STATS, false, {B (role), B (json)}},
    {HERD_MSG_ID_REPORT_EVENT, HERD_MSG_TO_MONITOR, HERD_MSG_EVENT, false,
     {B (role), B (event), B (peer), B (detail)}},
    {HERD_MSG_ID_MONITOR_STATS, HERD_MSG_MONITOR, HERD_MSG_STATS, false, {B (name), B (json)}},
    {HERD_MSG_ID_MONITOR_EVENT, HERD_MSG_MONITOR, HERD_MSG_EVENT, false, {B (name), B (json)}},
};
#define S_ROWS (sizeof (s_rows) / sizeof (s_rows[0]))

//  Per channel: received with a routing frame first (ROUTER); every command
//  checked for an envelope, known or not (the sync socket refuses anything
//  of another herd, and a catch-up reply of another herd is refused too).
static const struct {
    bool routed, strict;
} s_channels[HERD_MSG_CHANNELS] = {
    [HERD_MSG_TO_BUS] = {true, false},
    [HERD_MSG_TO_PLACES] = {true, false},
    [HERD_MSG_TO_SYNC] = {true, true},
    [HERD_MSG_CATCHUP] = {false, true},
};

static const s_row_t *
s_row_of (herd_msg_id_t id)
{
    for (size_t i = 0; i < S_ROWS; i++)
        if (s_rows[i].id == id)
            return &s_rows[i];
    return NULL;
}

static const s_row_t *
s_row_for (herd_msg_channel_t channel, zframe_t *command)
{
    for (size_t i = 0; command && i < S_ROWS; i++)
        if (s_rows[i].channel == channel && zframe_streq (command, s_rows[i].command))
            return &s_rows[i];
    return NULL;
}

const char *
herd_msg_command (herd_msg_id_t id)
{
    const s_row_t *row = s_row_of (id);
    return row ? row->command : NULL;
}

bool
herd_msg_bytes_eq (herd_msg_bytes_t bytes, const char *text)
{
    return bytes.data && bytes.size == strlen (text) && memcmp (bytes.data, text, bytes.size) == 0;
}

herd_msg_bytes_t
herd_msg_str (const char *text)
{
    return (herd_msg_bytes_t){text, text ? strlen (text) : 0};
}

//  -------------------------------------------------------------------------
//  Encoding

#define S_FRAMES_MAX (2 + 1 + S_MAX_FIELDS + 1)     //  routing, command, envelope, fields
#define S_SCRATCH    (HERD_MSG_ENVELOPE_MAX + S_MAX_FIELDS * 24)

//  The frames of self, into data/size; numbers are written into scratch.
//  Returns how many.
static size_t
s_frames (const herd_msg_t *self, const void **data, size_t *size, char *scratch)
{
    const s_row_t *row = s_row_of (self->id);
    assert (row);
    size_t count = 0, used = 0;
    if (self->routing) {
        data[count] = zframe_data (self->routing);
        size[count++] = zframe_size (self->routing);
    }
    data[count] = row->command;
    size[count++] = strlen (row->command);
    if (row->envelope) {
        assert (self->herd);                //  a message between nodes names its herd
        data[count] = scratch;
        size[count++] = herd_msg_envelope ((unsigned char *) scratch, self->herd);
        used += HERD_MSG_ENVELOPE_MAX;
    }
    for (const s_field_t *field = row->fields; field->kind != S_END; field++) {
        const char *at = (const char *) self + field->offset;
        char *out = scratch + used;
        const uint64_t *number = (const uint64_t *) at;
        switch (field->kind) {
            case S_BYTES:
                data[count] = ((const herd_msg_bytes_t *) at)->data;
                size[count++] = ((const herd_msg_bytes_t *) at)->size;
                continue;
            case S_LINES:
                continue;       //  streamed by the caller (herd_msg_send_frame)
            case S_U64:
                herd_msg_put_u64 ((unsigned char *) out, number[0]);
                size[count] = 8;
                break;
            case S_META:
            case S_TABLE:
                herd_msg_put_meta ((unsigned char *) out, number[0], number[1]);
                size[count] = 16;
                break;
            case S_DECIMAL:
                size[count] = (size_t) sprintf (out, "%" PRIu64, number[0]);
                break;
            case S_HEX:
                size[count] = (size_t) sprintf (out, "%016" PRIx64, number[0]);
                break;
            case S_END:
                break;
        }
        data[count++] = out;
        used += 24;
    }
    return count;
}

zmsg_t *
herd_msg_encode (const herd_msg_t *self)
{
    const void *data[S_FRAMES_MAX];
    size_t size[S_FRAMES_MAX];
    char scratch[S_SCRATCH];
    size_t count = s_frames (self, data, size, scratch);
    zmsg_t *msg = zmsg_new ();
    for (size_t i = 0; i < count; i++)
        zmsg_addmem (msg, data[i], size[i]);
    return msg;
}

int
herd_msg_send (const herd_msg_t *self, zsock_t *sock, int flags)
{
    const void *data[S_FRAMES_MAX];
    size_t size[S_FRAMES_MAX];
    char scratch[S_SCRATCH];
    size_t count = s_frames (self, data, size, scratch);
    void *handle = zsock_resolve (sock);
    for (size_t i = 0; i < count; i++) {
        int more = i + 1 < count ? ZMQ_SNDMORE : flags & ZMQ_SNDMORE;
        if (zmq_send (handle, data[i], size[i], (flags & ZMQ_DONTWAIT) | more) == -1 && i == 0)
            return -1;      //  only the first frame can fail: sends are atomic
    }
    return 0;
}

int
herd_msg_answer (const herd_msg_t *self, zsock_t *sock)
{
    if (herd_msg_send (self, sock, ZMQ_DONTWAIT) == 0)
        return 0;
    if (zmq_errno () != EAGAIN)
        return -1;
    (void) zsock_events (sock);         //  reads the requester's acknowledgements
    return herd_msg_send (self, sock, ZMQ_DONTWAIT);
}

int
herd_msg_send_frame (zsock_t *sock, const void *data, size_t size, int flags)
{
    return zmq_send (zsock_resolve (sock), data, size, flags) == -1 ? -1 : 0;
}

//  -------------------------------------------------------------------------
//  Decoding

//  A decimal (digits only, no leading zero but "0") or 16 hex digits
static bool
s_parse_number (zframe_t *frame, bool hex, uint64_t *value)
{
    const char *text = (const char *) zframe_data (frame);
    size_t size = zframe_size (frame);
    if (size == 0 || size > (hex ? 16 : 20) || (hex && size != 16)
        || (!hex && size > 1 && text[0] == '0'))
        return false;
    uint64_t number = 0;
    for (size_t i = 0; i < size; i++) {
        int digit = text[i] >= '0' && text[i] <= '9' ? text[i] - '0'
                    : hex && text[i] >= 'a' && text[i] <= 'f' ? text[i] - 'a' + 10
                                                               : -1;
        if (digit < 0 || (!hex && number > (UINT64_MAX - (uint64_t) digit) / 10))
            return false;
        number = number * (hex ? 16 : 10) + (uint64_t) digit;
    }
    *value = number;
    return true;
}

//  Decode one field from frame; 0 or -1 with reason.
static int
s_decode_field (herd_msg_t *self, const s_row_t *row, const s_field_t *field, zframe_t *frame,
                char *reason, size_t reason_size)
{
    char *at = (char *) self + field->offset;
    uint64_t *number = (uint64_t *) at;
    size_t size = zframe_size (frame);
    size_t want = field->kind == S_U64 ? 8 : field->kind == S_META || field->kind == S_TABLE ? 16 : 0;
    if (want && size != want) {
        snprintf (reason, reason_size, "%s: %s frame is %zu bytes, not %zu", row->command,
                  field->kind == S_META ? "meta" : field->kind == S_TABLE ? "digest" : field->name,
                  size, want);
        return -1;
    }
    if (field->kind == S_BYTES)
        *(herd_msg_bytes_t *) at = (herd_msg_bytes_t){zframe_data (frame), size};
    else
    if (field->kind == S_U64)
        number[0] = herd_msg_get_u64 (zframe_data (frame));
    else
    if (want) {
        number[0] = herd_msg_get_u64 (zframe_data (frame));
        number[1] = herd_msg_get_u64 (zframe_data (frame) + 8);
    }
    else
    if (!s_parse_number (frame, field->kind == S_HEX, number)) {
        snprintf (reason, reason_size, "%s: %s frame is not %s", row->command, field->name,
                  field->kind == S_HEX ? "16 hex digits" : "a decimal number");
        return -1;
    }
    return 0;
}

//  The envelope frame (the one after the command) against herd.
static int
s_check_envelope (herd_msg_t *self, zmsg_t *msg, zframe_t *envelope, const char *herd,
                  char *reason, size_t reason_size)
{
    if (envelope)
        self->envelope = (herd_msg_bytes_t){zframe_data (envelope), zframe_size (envelope)};
    if (!herd
        || herd_msg_envelope_check (envelope ? zframe_data (envelope) : NULL,
                                    envelope ? zframe_size (envelope) : 0, herd, reason,
                                    reason_size)
               == 0)
        return 0;
    self->refused = true;
    //  The sender of a flood message is the last frame but one, in this wire
    //  and the last
    size_t index = 0, frames = zmsg_size (msg);
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg))
        if (frames >= 3 && index++ == frames - 2)
            self->sender = (herd_msg_bytes_t){zframe_data (frame), zframe_size (frame)};
    return -1;
}

int
herd_msg_decode (herd_msg_t *self, zmsg_t *msg, herd_msg_channel_t channel, const char *herd,
                 char *reason, size_t reason_size)
{
    memset (self, 0, sizeof (*self));
    self->source = msg;
    zframe_t *frame = zmsg_first (msg);
    if (s_channels[channel].routed) {
        self->routing = frame;
        frame = zmsg_next (msg);
    }
    zframe_t *command = frame;
    const s_row_t *row = s_row_for (channel, command);
    size_t frames = zmsg_size (msg) - (s_channels[channel].routed && zmsg_size (msg) > 0);
    if ((row && row->envelope) || (command && !row && s_channels[channel].strict))
        if (s_check_envelope (self, msg, zmsg_next (msg), herd, reason, reason_size) == -1)
            return -1;
    if (!row) {
        char text[40];
        size_t size = command ? zframe_size (command) : 0, used = 0;
        for (size_t i = 0; i < size && used < 32; i++) {
            unsigned char c = zframe_data (command)[i];
            text[used++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
        }
        text[used] = 0;
        snprintf (reason, reason_size, command ? "unknown command '%s'" : "empty message%s",
                  text);
        return -1;
    }
    self->id = row->id;
    //  Re-walk from the command: the envelope check may have moved the cursor
    zmsg_first (msg);
    if (s_channels[channel].routed)
        zmsg_next (msg);
    if (row->envelope)
        zmsg_next (msg);
    size_t expected = 1 + row->envelope;
    for (const s_field_t *field = row->fields; field->kind != S_END; field++)
        expected += field->kind != S_LINES;
    bool lines = row->fields[0].kind == S_LINES;
    if (lines ? frames < expected : frames != expected) {
        snprintf (reason, reason_size, "%s: %zu frames, not %s%zu", row->command, frames,
                  lines ? "at least " : "", expected);
        return -1;
    }
    for (const s_field_t *field = row->fields; field->kind != S_END && field->kind != S_LINES;
         field++)
        if (s_decode_field (self, row, field, zmsg_next (msg), reason, reason_size) == -1)
            return -1;
    return 0;
}

bool
herd_msg_next_line (herd_msg_t *self, herd_msg_bytes_t *line)
{
    zframe_t *frame = self->source ? zmsg_next (self->source) : NULL;
    if (!frame)
        return false;
    *line = (herd_msg_bytes_t){zframe_data (frame), zframe_size (frame)};
    return true;
}

//  -------------------------------------------------------------------------
//  Self test

//  Frames of a message as one string: each frame's bytes, '|' between
//  (the test's messages hold no '|'), non-printable bytes as \xNN.
static void
s_dump (zmsg_t *msg, char *out, size_t out_size)
{
    size_t used = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        if (used && used + 1 < out_size)
            out[used++] = '|';
        for (size_t i = 0; i < zframe_size (frame) && used + 5 < out_size; i++) {
            unsigned char c = zframe_data (frame)[i];
            used += (size_t) (c >= 0x20 && c < 0x7f && c != '\\'
                                  ? snprintf (out + used, 2, "%c", c)
                                  : snprintf (out + used, 5, "\\x%02x", c));
        }
    }
    out[used] = 0;
}

//  The message s_check decoded last: its fields point into it, so it lives
//  until the next s_check (or s_check_done).
static zmsg_t *s_last;

static void
s_check_done (void)
{
    zmsg_destroy (&s_last);
}

//  Encode msg, check its frames against literal, decode it back on channel.
static void
s_check (herd_msg_t msg, herd_msg_channel_t channel, const char *literal, herd_msg_t *decoded)
{
    s_check_done ();
    zmsg_t *zmsg = s_last = herd_msg_encode (&msg);
    char text[512], reason[HERD_MSG_REASON_MAX];
    s_dump (zmsg, text, sizeof (text));
    HERD_CHECK_STR (text, literal);
    int rc = herd_msg_decode (decoded, zmsg, channel, "herd", reason, sizeof (reason));
    if (rc)
        fprintf (stderr, "%s: %s\n", literal, reason);
    HERD_CHECK_INT (rc, 0);
    HERD_CHECK_INT (decoded->id, msg.id);
    if (msg.routing)
        HERD_CHECK (zframe_eq (decoded->routing, msg.routing));
    decoded->routing = NULL;        //  the test's, about to go
}

#define S_B(text) herd_msg_str (text)
#define S_ONE "\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
#define S_TWO "\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
#define S_ENV "\\x02herd"

static void
s_test_node (void)
{
    herd_msg_t d;
    zframe_t *routing = zframe_new ("R", 1);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_UPDATE, .routing = routing, .batch = 1,
                          .records = S_B ("AT A +0.1 kiwi +1+1 1\nAT A +0.1 fig +1+1 1")},
             HERD_MSG_TO_BUS, "R|UPDATE|" S_ONE "|AT A +0.1 kiwi +1+1 1\\x0aAT A +0.1 fig +1+1 1",
             &d);
    HERD_CHECK (d.batch == 1 && d.records.size == 42);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_LOOKUP, .routing = routing, .reqid = S_B ("q"),
                          .client = S_B ("kiwi")},
             HERD_MSG_TO_BUS, "R|LOOKUP|q|kiwi", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.client, "kiwi") && herd_msg_bytes_eq (d.reqid, "q"));
    s_check ((herd_msg_t){.id = HERD_MSG_ID_FOUND, .reqid = S_B ("q"), .line = S_B ("AT x")},
             HERD_MSG_TO_GATEWAY, "FOUND|q|AT x", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.line, "AT x"));
    s_check ((herd_msg_t){.id = HERD_MSG_ID_NONE, .reqid = S_B ("q")}, HERD_MSG_TO_GATEWAY,
             "NONE|q", &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_STORED, .first = 1, .last = 2}, HERD_MSG_TO_GATEWAY,
             "STORED|" S_ONE "|" S_TWO, &d);
    HERD_CHECK (d.first == 1 && d.last == 2);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_NEARBY, .routing = routing, .reqid = S_B ("q"),
                          .lat = S_B ("+34.1"), .lon = S_B ("-118.4"), .radius = S_B ("10"),
                          .bound = S_B ("5")},
             HERD_MSG_TO_PLACES, "R|NEARBY|q|+34.1|-118.4|10|5", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.lon, "-118.4") && herd_msg_bytes_eq (d.bound, "5"));
    s_check ((herd_msg_t){.id = HERD_MSG_ID_RESULT, .reqid = S_B ("q"), .status = S_B ("ERR"),
                          .json = S_B ("{}")},
             HERD_MSG_FROM_PLACES, "RESULT|q|ERR|{}", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.status, "ERR"));
    s_check ((herd_msg_t){.id = HERD_MSG_ID_REPORT_STATS, .role = S_B ("places"),
                          .json = S_B ("{}")},
             HERD_MSG_TO_MONITOR, "STATS|places|{}", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.role, "places") && herd_msg_bytes_eq (d.json, "{}"));
    s_check ((herd_msg_t){.id = HERD_MSG_ID_REPORT_EVENT, .role = S_B ("bus"),
                          .event = S_B ("link up"), .peer = S_B ("B"), .detail = S_B ("")},
             HERD_MSG_TO_MONITOR, "EVENT|bus|link up|B|", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.event, "link up") && d.detail.size == 0);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_MONITOR_STATS, .name = S_B ("A"), .json = S_B ("{}")},
             HERD_MSG_MONITOR, "STATS|A|{}", &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_MONITOR_EVENT, .name = S_B ("A"), .json = S_B ("{}")},
             HERD_MSG_MONITOR, "EVENT|A|{}", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.name, "A"));
    s_check_done ();
    zframe_destroy (&routing);
}

static void
s_test_bus (void)
{
    herd_msg_t d;
    zframe_t *routing = zframe_new ("R", 1);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_U, .herd = "herd", .records = S_B ("AT x"),
                          .sender = S_B ("A"), .instance = 1, .seq = 2},
             HERD_MSG_FLOOD, "U|" S_ENV "|AT x|A|" S_ONE S_TWO, &d);
    HERD_CHECK (d.instance == 1 && d.seq == 2 && herd_msg_bytes_eq (d.sender, "A"));
    HERD_CHECK (herd_msg_bytes_eq (d.envelope, "\x02herd"));
    s_check ((herd_msg_t){.id = HERD_MSG_ID_H, .herd = "herd", .sender = S_B ("A"), .instance = 2,
                          .seq = 1},
             HERD_MSG_FLOOD, "H|" S_ENV "|A|" S_TWO S_ONE, &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_ICANHAZ, .routing = routing, .herd = "herd",
                          .instance = 1, .seq = 2, .count = 2, .digest = 1},
             HERD_MSG_TO_SYNC, "R|ICANHAZ|" S_ENV "|" S_ONE S_TWO "|" S_TWO S_ONE, &d);
    HERD_CHECK (d.count == 2 && d.digest == 1 && d.seq == 2);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_DIGEST, .routing = routing, .herd = "herd"},
             HERD_MSG_TO_SYNC, "R|DIGEST|" S_ENV, &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_LINK, .routing = routing, .herd = "herd",
                          .peer = S_B ("B"), .state = S_B ("down")},
             HERD_MSG_TO_SYNC, "R|LINK|" S_ENV "|B|down", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.state, "down"));
    s_check ((herd_msg_t){.id = HERD_MSG_ID_GET, .routing = routing, .herd = "herd",
                          .client = S_B ("kiwi")},
             HERD_MSG_TO_SYNC, "R|GET|" S_ENV "|kiwi", &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_KTHXBAI, .herd = "herd", .instance = 2, .seq = 2},
             HERD_MSG_CATCHUP, "KTHXBAI|" S_ENV "|" S_TWO S_TWO, &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_REFUSED, .reason = S_B ("no")}, HERD_MSG_CATCHUP,
             "REFUSED|no", &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_DIGEST_REPLY, .name = S_B ("A"), .count = 3,
                          .digest = 0xabc, .applied = 10, .stale = 0},
             HERD_MSG_CONTROL, "DIGEST|A|3|0000000000000abc|10|0", &d);
    HERD_CHECK (d.count == 3 && d.digest == 0xabc && d.applied == 10 && d.stale == 0);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_OK}, HERD_MSG_CONTROL, "OK", &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_ERROR, .reason = S_B ("no such neighbour")},
             HERD_MSG_CONTROL, "ERROR|no such neighbour", &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_RECORD, .line = S_B ("AT x"), .applied = 17,
                          .seq = 4},
             HERD_MSG_CONTROL, "RECORD|AT x|17|4", &d);
    HERD_CHECK (d.applied == 17 && d.seq == 4);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_GET_NONE}, HERD_MSG_CONTROL, "NONE", &d);
    s_check ((herd_msg_t){.id = HERD_MSG_ID_REFUSED, .reason = S_B ("x")}, HERD_MSG_CONTROL,
             "REFUSED|x", &d);
    HERD_CHECK (herd_msg_bytes_eq (d.reason, "x"));
    s_check_done ();
    zframe_destroy (&routing);
}

//  KVSYNC: the head from the codec, the lines streamed; decoded in place.
static void
s_test_kvsync (void)
{
    zmsg_t *zmsg = herd_msg_encode (&(herd_msg_t){.id = HERD_MSG_ID_KVSYNC, .herd = "herd"});
    zmsg_addstr (zmsg, "AT a");
    zmsg_addstr (zmsg, "AT b");
    char text[128], reason[HERD_MSG_REASON_MAX];
    s_dump (zmsg, text, sizeof (text));
    HERD_CHECK_STR (text, "KVSYNC|" S_ENV "|AT a|AT b");
    herd_msg_t d;
    HERD_CHECK_INT (herd_msg_decode (&d, zmsg, HERD_MSG_CATCHUP, "herd", reason, 128), 0);
    herd_msg_bytes_t line;
    HERD_CHECK (herd_msg_next_line (&d, &line) && herd_msg_bytes_eq (line, "AT a"));
    HERD_CHECK (herd_msg_next_line (&d, &line) && herd_msg_bytes_eq (line, "AT b"));
    HERD_CHECK (!herd_msg_next_line (&d, &line));
    zmsg_destroy (&zmsg);
}

//  Decode frames (a '|'-separated string) on channel; expect reason.
static void
s_malformed (herd_msg_channel_t channel, const char *frames, const char *expected, bool refused)
{
    zmsg_t *zmsg = zmsg_new ();
    char copy[256];
    snprintf (copy, sizeof (copy), "%s", frames);
    for (char *next, *frame = copy; frame; frame = next) {
        next = strchr (frame, '|');
        if (next)
            *next++ = 0;
        zmsg_addstr (zmsg, frame);
    }
    herd_msg_t d;
    char reason[HERD_MSG_REASON_MAX] = "";
    HERD_CHECK_INT (herd_msg_decode (&d, zmsg, channel, "herd", reason, sizeof (reason)), -1);
    HERD_CHECK_STR (reason, expected);
    HERD_CHECK (d.refused == refused);
    zmsg_destroy (&zmsg);
}

static void
s_test_malformed (void)
{
    s_malformed (HERD_MSG_TO_BUS, "R|UPDATE|12345|AT x", "UPDATE: batch frame is 5 bytes, not 8",
                 false);
    s_malformed (HERD_MSG_TO_BUS, "R|UPDATE|12345678", "UPDATE: 2 frames, not 3", false);
    s_malformed (HERD_MSG_TO_BUS, "R|LOOKUP|q", "LOOKUP: 2 frames, not 3", false);
    s_malformed (HERD_MSG_TO_BUS, "R|STATS|gateway|{}", "unknown command 'STATS'", false);
    s_malformed (HERD_MSG_TO_BUS, "R|FOUND|q|x", "unknown command 'FOUND'", false);
    s_malformed (HERD_MSG_TO_BUS, "R", "empty message", false);
    s_malformed (HERD_MSG_TO_GATEWAY, "FOUND|q", "FOUND: 2 frames, not 3", false);
    s_malformed (HERD_MSG_TO_GATEWAY, "NONE", "NONE: 1 frames, not 2", false);
    s_malformed (HERD_MSG_TO_GATEWAY, "STORED|12345678|1", "STORED: last frame is 1 bytes, not 8",
                 false);
    s_malformed (HERD_MSG_TO_PLACES, "R|NEARBY|q|1|2|3", "NEARBY: 5 frames, not 6", false);
    s_malformed (HERD_MSG_FROM_PLACES, "RESULT|q|OK", "RESULT: 3 frames, not 4", false);
    s_malformed (HERD_MSG_TO_MONITOR, "STATS|gateway", "STATS: 2 frames, not 3", false);
    s_malformed (HERD_MSG_TO_MONITOR, "EVENT|bus|link up|B", "EVENT: 4 frames, not 5", false);
    s_malformed (HERD_MSG_FLOOD, "U|\x02herd|AT x|A|short", "U: meta frame is 5 bytes, not 16",
                 false);
    s_malformed (HERD_MSG_FLOOD, "H|\x02herd|A", "H: 3 frames, not 4", false);
    s_malformed (HERD_MSG_FLOOD, "U|AT x|A|0123456789abcdef",
                 "wire version 1 (no envelope), ours 2", true);
    s_malformed (HERD_MSG_FLOOD, "H|\x02other|A|0123456789abcdef", "herd 'other', ours 'herd'",
                 true);
    s_malformed (HERD_MSG_FLOOD, "X|\x02herd", "unknown command 'X'", false);
    s_malformed (HERD_MSG_TO_SYNC, "R|ICANHAZ|\x02herd|0123456789abcdef|short",
                 "ICANHAZ: digest frame is 5 bytes, not 16", false);
    s_malformed (HERD_MSG_TO_SYNC, "R|DIGEST|\x03herd", "wire version 3, ours 2", true);
    s_malformed (HERD_MSG_TO_SYNC, "R|WHAT|\x02other", "herd 'other', ours 'herd'", true);
    s_malformed (HERD_MSG_TO_SYNC, "R|LINK|\x02herd|B", "LINK: 3 frames, not 4", false);
    s_malformed (HERD_MSG_TO_SYNC, "R|GET|\x02herd", "GET: 2 frames, not 3", false);
    s_malformed (HERD_MSG_CATCHUP, "KVSYNC", "wire version 1 (no envelope), ours 2", true);
    s_malformed (HERD_MSG_CATCHUP, "KTHXBAI|\x02herd", "KTHXBAI: 2 frames, not 3", false);
    s_malformed (HERD_MSG_CATCHUP, "REFUSED", "REFUSED: 1 frames, not 2", false);
    s_malformed (HERD_MSG_CONTROL, "DIGEST|A|3|abc|1|0", "DIGEST: digest frame is not 16 hex digits",
                 false);
    s_malformed (HERD_MSG_CONTROL, "RECORD|AT x|-1|4", "RECORD: applied frame is not a decimal "
                 "number", false);
    s_malformed (HERD_MSG_CONTROL, "RECORD|AT x|99999999999999999999|4",
                 "RECORD: applied frame is not a decimal number", false);
    s_malformed (HERD_MSG_CONTROL, "OK|x", "OK: 2 frames, not 1", false);
    s_malformed (HERD_MSG_CONTROL, "ERROR", "ERROR: 1 frames, not 2", false);
    s_malformed (HERD_MSG_MONITOR, "EVENT|A", "EVENT: 2 frames, not 3", false);
}

//  A requester of s_test_answer: asks, reads the answer, asks again at
//  once, S_TEST_ASKS times; signals how many answers came in time.
#define S_TEST_ASKS 1000

static void
s_test_requester (zsock_t *pipe, void *args)
{
    zsock_t *dealer = zsock_new_dealer ((const char *) args);
    zsock_set_rcvtimeo (dealer, 2000);
    zsock_signal (pipe, 0);
    int answered = 0;
    for (int i = 0; i < S_TEST_ASKS; i++) {
        zstr_send (dealer, "ask");
        zmsg_t *answer = zmsg_recv (dealer);
        if (!answer)
            break;
        answered++;
        zmsg_destroy (&answer);
    }
    zsock_destroy (&dealer);
    zsock_signal (pipe, (byte) (answered == S_TEST_ASKS ? 0 : 1));
    char *term = zstr_recv (pipe);      //  $TERM
    zstr_free (&term);
}

//  herd_msg_answer: a ROUTER (SNDHWM 4, mandatory routing, as the bus's
//  sync socket) answers each request of a requester that reads every
//  answer and asks again at once, while the ROUTER is still in the loop
//  that answered: each answer goes out, where plain sends find the pipe
//  full after the first few (libzmq has not read the acknowledgements).
static void
s_test_answer (void)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_sndhwm (router, 4);
    zsock_set_router_mandatory (router, 1);
    zsock_set_rcvtimeo (router, 0);
    zsock_set_sndtimeo (router, 0);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    HERD_CHECK (port > 0);
    char *endpoint = zsys_sprintf ("tcp://127.0.0.1:%d", port);
    zactor_t *requester = zactor_new (s_test_requester, endpoint);
    zpoller_t *poller = zpoller_new (router, requester, NULL);
    int answered = 0, failed = 0;
    while (answered + failed < S_TEST_ASKS) {
        void *which = zpoller_wait (poller, 5000);
        HERD_CHECK (which == router);
        zmsg_t *request;
        //  The loop of a busy server: answer, some work, the next request
        //  (which may have come meanwhile: taken without a command read)
        while ((request = zmsg_recv (router))) {
            zframe_t *routing = zmsg_first (request);
            herd_msg_t out = {.id = HERD_MSG_ID_GET_NONE, .routing = routing};
            if (herd_msg_answer (&out, router) == 0)
                answered++;
            else
                failed++;
            zmsg_destroy (&request);
            struct timespec work = {0, 150 * 1000};
            nanosleep (&work, NULL);
        }
    }
    HERD_CHECK_INT (failed, 0);
    HERD_CHECK_INT (zsock_wait (requester), 0);     //  it had every answer
    zpoller_destroy (&poller);
    zactor_destroy (&requester);
    zstr_free (&endpoint);
    zsock_destroy (&router);
}

void
herd_msg_test (bool verbose)
{
    if (verbose)
        printf (" * herd_msg: ");
    s_test_node ();
    s_test_bus ();
    s_test_kvsync ();
    s_test_malformed ();
    s_test_answer ();
    if (verbose)
        printf ("OK\n");
}
