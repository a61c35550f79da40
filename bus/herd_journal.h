//  herd_journal.h - a bus's table on disk: an append-only journal of records.
//
//  The journal is DATA_DIR/journal: an 8-byte header "HERDJ003", then one
//  entry per applied record: a mark (the 4 bytes "\nHJ3"), length (4 bytes,
//  little-endian), checksum (herd_record_hash of the line, 8 bytes,
//  little-endian; the hash is seeded with the length, so a damaged length
//  fails it too), the AT line. Replaying it in any order rebuilds the table,
//  since the newest record of each client wins (herd_record_newer), so
//  duplicates and superseded records are harmless.
//
//  Damage: a record that fails its check (mark, length, checksum) is
//  skipped, and the reader resynchronises on the next mark that starts a
//  whole good record (a mark holds a newline, which no AT line does), so
//  one flipped byte costs one record (stats->skipped). Damage with no good
//  record after it is a torn tail: cut off (stats->discarded). A damaged
//  header in front of good records is rewritten.
//
//  Older formats, read and converted at open: their good records are
//  rewritten as HERDJ003 and swapped in as a compaction is (stats->upgraded,
//  stats->format says which). "HERDJ002": the same entries without the mark;
//  "HERDJ001": the same, checksums by the hash before HERDJ002 (FNV-1a, a
//  byte a step, then a splitmix64 finaliser). Having no marks, they end at
//  their first damaged record. A file with no known header and no good
//  HERDJ003 record is no journal: it is started afresh.
//
//  Writing: appended records are buffered and written (pwrite) by
//  herd_journal_flush at the end of every bus loop turn, always at the end
//  of the last whole record on the file. A write that fails (full disk, I/O
//  error) keeps the whole records that made it, cuts the file back after
//  them (ftruncate) and keeps the rest buffered for the next flush, so the
//  file never holds a torn record in the middle. Durability (like Redis's
//  appendfsync everysec): a process crash or SIGKILL loses only what the
//  bus had not yet flushed; herd_journal_tick fdatasyncs once a second, in
//  a thread of the journal's own, so power loss loses at most the last
//  second or two (herd_journal_sync: now, in the caller's thread). When
//  the journal holds many superseded records it is compacted: rewritten
//  from the table into a new file that replaces the old one atomically.

#ifndef HERD_JOURNAL_H_INCLUDED
#define HERD_JOURNAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The header of journals this version writes.
#define HERD_JOURNAL_FORMAT "HERDJ003"

//  The longest record (AT line) the journal stores and reads back, in bytes.
//  An AT line of herd/max_line's cap (HERD_CONFIG_MAX_LINE, 32 MiB) with
//  the longest node name and fields fits.
#define HERD_JOURNAL_MAX_RECORD (64u << 20)

//  The most bytes of records kept buffered while writes fail; past it they
//  are dropped and the journal is lost (herd_journal_lost).
#define HERD_JOURNAL_MAX_BUFFER (64u << 20)

typedef struct _herd_journal_t herd_journal_t;

//  Called for each good record at load.
typedef void (herd_journal_fn) (const char *line, size_t size, void *arg);

//  What herd_journal_open found.
typedef struct {
    size_t records;             //  good records replayed
    size_t bytes;               //  bytes kept: header, records, skipped stretches
    size_t skipped;             //  damaged records skipped between good ones
    size_t skipped_bytes;       //  bytes of the stretches skipped
    char skip_reason[128];      //  what the first was ("" when none)
    size_t discarded;           //  bytes cut off after the last good record
    char reason[128];           //  why they were cut off ("" when none)
    bool upgraded;              //  an older journal, converted to HERDJ003
    char format[16];            //  the header found ("HERDJ001".."HERDJ003"; "" if none)
} herd_journal_stats_t;

//  Open (creating dir and file as needed) the journal in dir, replay every
//  good record through fn, skip damaged ones, cut off a bad tail, and
//  convert an older journal to HERDJ003. Returns NULL and sets error (at
//  least 256 bytes) when the directory or file cannot be used or converted.
herd_journal_t *
    herd_journal_open (const char *dir, herd_journal_fn *fn, void *arg,
                       herd_journal_stats_t *stats, char *error);

//  Flush (one last try), fdatasync and close; nulls the caller's pointer.
void
    herd_journal_destroy (herd_journal_t **self_p);

//  Append one record (buffered until herd_journal_flush). Returns 0, or -1
//  (errno EMSGSIZE, nothing stored) when size is over HERD_JOURNAL_MAX_RECORD.
//  While the journal is lost, records are counted but not buffered: the
//  rewrite from the table will hold them.
int
    herd_journal_append (herd_journal_t *self, const char *line, size_t size);

//  The same, for a caller that has the line's herd_record_hash (the bus
//  keeps it for its digest): the checksum is not computed twice.
int
    herd_journal_append_hashed (herd_journal_t *self, const char *line, size_t size,
                                uint64_t hash);

//  Write the buffered records after the last whole one on the file; call at
//  the end of each loop turn. Returns 0 when every record appended so far
//  is in the file (write done, not yet fdatasync'd), else -1 with errno set.
//  On -1 the file holds only whole records and the rest stay buffered, up
//  to HERD_JOURNAL_MAX_BUFFER. After a failure the write is retried at most
//  every 100 ms: calls in between return -1 at once (errno: the last
//  failure's), so a failing disk is not hammered; the caller should come
//  back within 100 ms or so. While the journal is lost it returns -1.
int
    herd_journal_flush (herd_journal_t *self);

//  fdatasync now if anything was written since the last one (for fsync =
//  always: flush, sync, then acknowledge). Returns 0 or -1 (errno set). A
//  failed fdatasync leaves written records in no known state: the journal
//  is then lost.
int
    herd_journal_sync (herd_journal_t *self);

//  Once a second, when anything was written since: fdatasync in the
//  journal's syncer thread, so the caller's loop does not wait for the
//  disk (a failure found on a later call makes the journal lost, as a
//  failed herd_journal_sync does). Call from the loop at least once a
//  second.
void
    herd_journal_tick (herd_journal_t *self);

//  Records in the journal: good ones loaded (or rewritten by the last
//  compaction) plus appended since, written or still buffered.
size_t
    herd_journal_records (herd_journal_t *self);

//  True while writes fail: the last flush failed, or the journal is lost.
bool
    herd_journal_failing (herd_journal_t *self);

//  True when records were dropped (over HERD_JOURNAL_MAX_BUFFER buffered
//  while writes failed, or a failed fdatasync): nothing appended is durable
//  until the caller rewrites the journal from its table (compaction). A
//  successful herd_journal_compact_commit clears it.
bool
    herd_journal_lost (herd_journal_t *self);

//  Start a compaction: a new file, filled by herd_journal_compact_add with
//  every live record, then herd_journal_compact_commit swaps it in (fdatasync,
//  rename, fsync of the directory). The journal becomes exactly the records
//  added: records still buffered are dropped, as the caller's table holds
//  them. Begin and commit return 0 or -1 (errno set; the old journal stays
//  in use, as it was).
int
    herd_journal_compact_begin (herd_journal_t *self);
void
    herd_journal_compact_add (herd_journal_t *self, const char *line, size_t size,
                              uint64_t hash);
int
    herd_journal_compact_commit (herd_journal_t *self);

//  The same commit without waiting for the disk: the file is written and
//  its fdatasync handed to the journal's syncer thread. Until it is done,
//  records appended go to both files (so a crash meanwhile finds them all
//  in the old journal); herd_journal_compact_poll then swaps the new one
//  in. 0, or -1 (errno set: EBUSY while an fdatasync is in flight; the old
//  journal stays in use).
int
    herd_journal_compact_start (herd_journal_t *self);

//  A compaction started in the background: 1 when it finished and the
//  journal is the new file, -1 when it failed (errno set; the old journal
//  stays, whole), 0 while it runs or when there is none. wait: until it
//  finishes.
int
    herd_journal_compact_poll (herd_journal_t *self, bool wait);

//  True while an fdatasync runs in the background (herd_journal_tick's or
//  a compaction's).
bool
    herd_journal_busy (herd_journal_t *self);

//  Self test of this class.
void
    herd_journal_test (bool verbose);

#endif
