//  herd_journal_format.h - the journal's bytes on disk, private to herd_journal.c and its self-test.
//
//  A journal file is an 8-byte magic, then records. HERDJ003 (written
//  today): each record is a mark, its length (4 bytes, little-endian), its
//  checksum (herd_record_hash, 8 bytes) and the line. HERDJ002 had no
//  marks; HERDJ001 had no marks and another checksum. Both are still read,
//  and converted as they are replayed. Not part of herd_journal.h: callers
//  see records, never bytes; the self-test writes and damages files by
//  hand, so it needs them.

#ifndef HERD_JOURNAL_FORMAT_H_INCLUDED
#define HERD_JOURNAL_FORMAT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define HERD_JOURNAL_MAGIC_V2   "HERDJ002"      //  no record marks; converted
#define HERD_JOURNAL_MAGIC_V1   "HERDJ001"      //  and checksums by herd_journal_hash_v1
#define HERD_JOURNAL_MAGIC_SIZE 8
#define HERD_JOURNAL_MARK       "\nHJ3"         //  starts every HERDJ003 record
#define HERD_JOURNAL_MARK_SIZE  4
#define HERD_JOURNAL_HEAD       16              //  mark (4) + length (4) + checksum (8)
#define HERD_JOURNAL_HEAD_V2    12              //  length (4) + checksum (8)
#define HERD_JOURNAL_WRITE      (1u << 20)      //  buffered bytes written at once
#define HERD_JOURNAL_RETRY_MS   100             //  a failing write is retried this often

//  A record checksum function.
typedef uint64_t (herd_journal_checksum_fn) (const char *line, size_t size);

//  The checksum of HERDJ001 journals: herd_record_hash as it was until
//  HERDJ002. Kept only to read (and convert) journals written before.
uint64_t
    herd_journal_hash_v1 (const char *line, size_t size);

//  Encode one record at the end of a buffer (grown as needed): with mark,
//  as HERDJ003 does; without (NULL), as HERDJ001 and HERDJ002 did.
void
    herd_journal_encode (char **buffer, size_t *size, size_t *capacity, const char *mark,
                         const char *line, size_t line_size, uint64_t hash);

//  Write all of data to fd at offset; 0, or -1 (errno set) with *written_p
//  (if not NULL) the bytes that did reach the file.
int
    herd_journal_pwrite_all (int fd, const char *data, size_t size, uint64_t offset,
                             size_t *written_p);

//  Read the whole file at fd into memory (*size_p bytes); NULL on failure.
char *
    herd_journal_read_file (int fd, size_t *size_p);

#endif
