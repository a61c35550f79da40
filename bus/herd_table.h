//  herd_table.h - the index of the node's table (herd_store): client id ->
//  its stored record.
//
//  Built for millions of clients: one allocation per client (the entry holds
//  its AT line, and its key is a view into that line), and an open-addressing
//  index of entry pointers (linear probing, grown at 3/4 full). Clients are
//  never removed, only replaced, so the index needs no tombstones. About 190
//  bytes per client with AT lines of 95 bytes (a 72-byte entry header and
//  the line in one 176-byte allocation, and 8 to 16 bytes of index); zhashx
//  took about 270 (an item and a copy of the key besides the entry).
//
//  Client ids come from anyone, so the index hashes them with a keyed hash
//  (SipHash-2-4, libsodium's crypto_shorthash) under a key drawn at random
//  once per process: nobody outside can choose ids that share a slot and
//  make every insert walk a long run (a hash flood).

#ifndef HERD_TABLE_H_INCLUDED
#define HERD_TABLE_H_INCLUDED

#include "../common/herd_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  One stored record. prev, next, seq and applied_usec belong to the caller
//  (herd_store keeps its entries on a list in change order).
typedef struct _herd_entry_t {
    struct _herd_entry_t *prev, *next;
    uint64_t seq;
    uint64_t hash;                  //  herd_record_hash of the line
    int64_t time_sec;               //  client time, for herd_record_newer
    int64_t applied_usec;           //  the caller's (herd_store: when it was applied)
    int32_t time_nsec;
    uint32_t key_hash;              //  herd_table_key of the client id
    uint32_t size;                  //  bytes of line
    uint32_t client_at;             //  the client id: line + client_at ...
    uint32_t client_size;           //  ... for client_size bytes
    char line[];
} herd_entry_t;

typedef struct _herd_table_t herd_table_t;

//  Create an empty table.
herd_table_t *
    herd_table_new (void);

//  Destroy the table and every entry in it; nulls the pointer.
void
    herd_table_destroy (herd_table_t **self_p);

//  A new entry holding a copy of line; client must lie within line, key is
//  its herd_table_key. The caller fills in seq, hash and the time, then
//  stores it.
herd_entry_t *
    herd_entry_new (const char *line, size_t size, herd_span_t client, uint32_t key);

//  The index's hash of a client id (keyed SipHash-2-4 cut to 32 bits; the
//  key is this process's, so values differ between runs and must not be
//  stored or sent), for herd_entry_new and herd_table_find (a caller that
//  looks a client up, then stores it, hashes it once). Thread-safe.
uint32_t
    herd_table_key (const char *client, size_t size);

//  The entry of a client id, or NULL.
herd_entry_t *
    herd_table_lookup (herd_table_t *self, const char *client, size_t size);

//  The same, with the client id's herd_table_key.
herd_entry_t *
    herd_table_find (herd_table_t *self, uint32_t key, const char *client, size_t size);

//  Store an entry, taking ownership; an entry of the same client is replaced
//  and freed (the caller has unlinked it from any list of its own).
void
    herd_table_put (herd_table_t *self, herd_entry_t *entry);

//  Number of clients stored.
size_t
    herd_table_size (herd_table_t *self);

//  Self test of this class.
void
    herd_table_test (bool verbose);

#endif
