//  herd_journal.h - a bus's table on disk: an append-only journal of records.
//
//  The journal is DATA_DIR/journal: an 8-byte header "HERDJ002", then one
//  entry per applied record: length (4 bytes, little-endian), checksum
//  (herd_record_hash, 8 bytes, little-endian), the AT line. Replaying it in
//  any order rebuilds the table, since the newest record of each client wins
//  (herd_record_newer), so duplicates and superseded records are harmless.
//
//  "HERDJ001" journals (the same layout, checksums by the hash before
//  HERDJ002: FNV-1a, a byte a step, then a splitmix64 finaliser) are read
//  and converted at open: their good records are rewritten with HERDJ002
//  checksums and swapped in as a compaction is (stats->upgraded). A file
//  with neither header is no journal: it is started afresh.
//
//  Durability (like Redis's appendfsync everysec): appended records are
//  written to the file (the kernel's page cache) at the end of every bus
//  loop turn, so a process crash or SIGKILL loses only what the bus had not
//  yet handled; the file is fsync'd once a second, so power loss loses at
//  most the last second. A torn or corrupt tail is found at load: the good
//  prefix is kept, the rest cut off and reported. When the journal holds
//  many superseded records it is compacted: rewritten from the table into a
//  new file that replaces the old one atomically (rename).

#ifndef HERD_JOURNAL_H_INCLUDED
#define HERD_JOURNAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _herd_journal_t herd_journal_t;

//  Called for each good record at load.
typedef void (herd_journal_fn) (const char *line, size_t size, void *arg);

//  What herd_journal_open found.
typedef struct {
    size_t records;             //  good records replayed
    size_t bytes;               //  bytes of good records, header included
    size_t discarded;           //  bytes cut off after the last good record
    char reason[128];           //  why they were cut off ("" when none)
    bool upgraded;              //  a HERDJ001 journal, converted to HERDJ002
} herd_journal_stats_t;

//  Open (creating dir and file as needed) the journal in dir, replay every
//  good record through fn, cut off a bad tail, and convert a HERDJ001
//  journal to HERDJ002. Returns NULL and sets error (at least 256 bytes)
//  when the directory or file cannot be used or converted.
herd_journal_t *
    herd_journal_open (const char *dir, herd_journal_fn *fn, void *arg,
                       herd_journal_stats_t *stats, char *error);

//  Flush, fsync and close; nulls the caller's pointer.
void
    herd_journal_destroy (herd_journal_t **self_p);

//  Append one record (buffered until herd_journal_flush).
void
    herd_journal_append (herd_journal_t *self, const char *line, size_t size);

//  The same, for a caller that has the line's herd_record_hash (the bus
//  keeps it for its digest): the checksum is not computed twice.
void
    herd_journal_append_hashed (herd_journal_t *self, const char *line, size_t size,
                                uint64_t hash);

//  Write buffered records to the file; call at the end of each loop turn.
//  Returns 0, or -1 if the write failed (errno set; the records stay buffered).
int
    herd_journal_flush (herd_journal_t *self);

//  fsync the file if a second has passed since the last one and there were
//  writes; call from the loop at least once a second.
void
    herd_journal_tick (herd_journal_t *self);

//  fdatasync now if anything was written since the last sync (herd/fsync =
//  always: the bus confirms updates only after it). 0, or -1 (errno set).
int
    herd_journal_sync (herd_journal_t *self);

//  True when buffered records had to be dropped (storage failed too long):
//  nothing new is durable until the bus rewrites the journal from its table
//  (a compaction), which clears it.
bool
    herd_journal_lost (herd_journal_t *self);

//  Records in the file now (good ones loaded plus appended since).
size_t
    herd_journal_records (herd_journal_t *self);

//  Start a compaction: a new file, filled by herd_journal_compact_add with
//  every live record, then herd_journal_compact_commit swaps it in.
//  Returns 0 or -1 (errno set; the old journal stays in use).
int
    herd_journal_compact_begin (herd_journal_t *self);
void
    herd_journal_compact_add (herd_journal_t *self, const char *line, size_t size,
                              uint64_t hash);
int
    herd_journal_compact_commit (herd_journal_t *self);

//  Self test of this class.
void
    herd_journal_test (bool verbose);

#endif
