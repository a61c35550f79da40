//  herd_record.h - a client location record (an AT line) and which one wins.
//
//  A record is the AT line its origin server produced. Its fields are read
//  back from the line, so a record travels as those bytes alone
//  (common/herd_msg.h).

#ifndef HERD_RECORD_H_INCLUDED
#define HERD_RECORD_H_INCLUDED

#include "herd_proto.h"

typedef struct {
    herd_span_t line;           //  the whole AT line, no '\n'
    herd_span_t origin;         //  server that took the IAMAT
    herd_span_t diff;           //  "+0.263873386"
    herd_span_t client;         //  client id
    herd_span_t position;       //  "+34.068930-118.445127"
    herd_span_t time;           //  client time as the client wrote it
    int64_t time_sec;
    int32_t time_nsec;
} herd_record_t;

//  Parse an AT line into views of its fields. Returns 0, or -1 when the
//  bytes are not a well-formed AT line (bus input is not trusted).
int
    herd_record_parse (const char *line, size_t size, herd_record_t *record);

//  Read only what decides whether a record is stale: its client and client
//  time (and line; the other fields' spans are set but not validated).
//  Returns 0, or -1 when even those are not there. Weaker than
//  herd_record_parse, which a record must still pass before it is stored
//  (herd_record_finish completes a peeked record); where both succeed they
//  agree on every field. The bus drops most records as stale, and this
//  spares them the full validation.
int
    herd_record_peek (const char *line, size_t size, herd_record_t *record);

//  Validate the rest of a record herd_record_peek accepted: no NUL and no
//  white space but single spaces, a well-formed diff and position. Returns
//  0 when the record is one herd_record_parse accepts (peek then finish is
//  parse, without reading the line twice), or -1.
int
    herd_record_finish (herd_record_t *record);

//  True when candidate must replace current: its client time is later, or
//  the times are equal and its line sorts after current's bytewise. Every
//  server applies the same rule, so all end with the same record.
bool
    herd_record_newer (const herd_record_t *candidate, const herd_record_t *current);

//  A 64-bit hash of an AT line: eight bytes a step, read as little-endian
//  words on every host, the length in the seed, then a splitmix64 finaliser
//  so every bit depends on every byte. Used for journal checksums and table
//  digests (sent between nodes), so its values must never change: a new
//  function needs a new journal magic (herd_journal.h) and makes old and new
//  nodes report different digests. Not for indexing ids a client chooses:
//  it is unkeyed and invertible (the table's index uses a keyed hash).
uint64_t
    herd_record_hash (const char *line, size_t size);

//  Self test of this class.
void
    herd_record_test (bool verbose);

#endif
