//  herd_store.h - the node's replicated table: client id -> its latest AT
//  record, with the rules that make every node converge.
//
//  Apply: a record replaces the stored one of its client only when it is
//  newer (herd_record_newer: later client time; on equal times the line
//  that sorts after bytewise), so any order of the same records leaves
//  every node with the same records. Each record applied gets the next
//  sequence number of this store, and the store keeps its records on a
//  change list in sequence order (a record applied again moves to the
//  tail): what changed after sequence number s is the tail of that list,
//  which is what a catch-up (ICANHAZ since s) sends and a compaction
//  rewrites (since 0). The digest is the XOR of every stored record's
//  herd_record_hash, so two stores with the same records have the same
//  digest, whatever the order they applied them in.
//
//  A cursor walks the change list after a sequence number and may be left
//  and resumed while records are applied: a record it has not reached yet
//  that is applied again is met at its new place, and records applied
//  meanwhile come after the ones it had. The catch-up sender keeps one per
//  requester and sends as the requester reads.
//
//  The index is herd_table (a keyed open-addressing hash, see herd_table.h);
//  nothing outside this class sees it.

#ifndef HERD_STORE_H_INCLUDED
#define HERD_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _herd_store_t herd_store_t;
typedef struct _herd_store_cursor_t herd_store_cursor_t;

//  What herd_store_apply did with a record.
typedef enum {
    HERD_STORE_APPLIED,         //  newer than the stored one (or the first): stored
    HERD_STORE_STALE,           //  not newer: left alone
    HERD_STORE_MALFORMED        //  no client and time, or (untrusted) not an AT line
} herd_store_result_t;

//  A stored record, as the store lends it: valid until the next apply.
typedef struct {
    const char *line;           //  the AT line (not NUL-terminated)
    size_t size;
    uint64_t seq;               //  sequence number it was applied at
    uint64_t hash;              //  herd_record_hash of the line
    int64_t applied_usec;       //  when it was applied, by the store's clock (0: unknown)
} herd_store_record_t;

//  The caller's clock: the time a record applied now is stamped with, in
//  microseconds (0: unknown, as for a record replayed from the journal).
//  Called only for records that are applied, not for stale ones.
typedef int64_t (herd_store_clock_fn) (void *arg);

//  Create an empty store: no records, sequence number 0, digest 0. clock
//  (with arg) stamps each record applied; NULL stamps 0.
herd_store_t *
    herd_store_new (herd_store_clock_fn *clock, void *arg);

//  Destroy the store, its records and any cursor left on it; nulls the
//  pointer.
void
    herd_store_destroy (herd_store_t **self_p);

//  Apply an AT line: stored if newer than the client's stored record, with
//  the next sequence number and the clock's time. trusted
//  when the line was made from validated fields (herd_proto_parse): only
//  its client and time are read; otherwise the whole line is validated,
//  once it is known to be newer (most records a bus receives are stale).
//  When applied and record is not NULL, it is filled with the new record.
herd_store_result_t
    herd_store_apply (herd_store_t *self, const char *line, size_t size, bool trusted,
                      herd_store_record_t *record);

//  Find a client's record; true and record filled, or false.
bool
    herd_store_lookup (herd_store_t *self, const char *client, size_t size,
                       herd_store_record_t *record);

//  Number of clients stored.
size_t
    herd_store_size (herd_store_t *self);

//  XOR of the herd_record_hash of every stored record.
uint64_t
    herd_store_digest (herd_store_t *self);

//  The last sequence number given (0: nothing applied yet).
uint64_t
    herd_store_seq (herd_store_t *self);

//  A cursor over the records changed after sequence number since, in
//  change order (since 0: every record; UINT64_MAX: none). Destroy it, or
//  leave it to herd_store_destroy.
herd_store_cursor_t *
    herd_store_cursor_new (herd_store_t *self, uint64_t since);

//  Destroy a cursor; nulls the pointer.
void
    herd_store_cursor_destroy (herd_store_cursor_t **self_p);

//  The next record changed after the cursor's place, without moving; false
//  when there is none (yet: records applied later are met later).
bool
    herd_store_cursor_peek (herd_store_cursor_t *self, herd_store_record_t *record);

//  The same, and move past it.
bool
    herd_store_cursor_next (herd_store_cursor_t *self, herd_store_record_t *record);

//  The sequence number the cursor has passed: its since, or the last
//  record's it returned.
uint64_t
    herd_store_cursor_seq (herd_store_cursor_t *self);

//  Self test of this class.
void
    herd_store_test (bool verbose);

#endif
