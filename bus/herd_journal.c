//  herd_journal.c - a bus's table on disk: an append-only journal of records.

#include "herd_journal.h"
#include "../common/herd_check.h"
#include "../common/herd_config.h"
#include "../common/herd_proto.h"
#include "../common/herd_record.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HERD_JOURNAL_MAGIC_V2   "HERDJ002"      //  no record marks; converted
#define HERD_JOURNAL_MAGIC_V1   "HERDJ001"      //  and checksums by s_hash_v1
#define HERD_JOURNAL_MAGIC_SIZE 8
#define HERD_JOURNAL_MARK       "\nHJ3"         //  starts every HERDJ003 record
#define HERD_JOURNAL_MARK_SIZE  4
#define HERD_JOURNAL_HEAD       16              //  mark (4) + length (4) + checksum (8)
#define HERD_JOURNAL_HEAD_V2    12              //  length (4) + checksum (8)
#define HERD_JOURNAL_WRITE      (1u << 20)      //  buffered bytes written at once
#define HERD_JOURNAL_RETRY_MS   100             //  a failing write is retried this often

struct _herd_journal_t {
    char *path;                 //  DIR/journal
    char *dir;                  //  DIR, fsync'd after a rename
    char *compact_path;         //  DIR/journal.compact
    int fd;
    uint64_t end;               //  end of the last whole record in the file
    bool tail_dirty;            //  a cut back to end failed: bytes may follow it
    char *buffer;               //  appended, not yet written (whole records)
    size_t size;
    size_t capacity;
    size_t records;             //  records appended since open or compaction
    bool failing;               //  the last write failed
    bool lost;                  //  records dropped: only a rewrite makes it whole
    int error;                  //  errno of the last failure
    int64_t retry_ms;           //  a failing write is not retried before
    bool unsynced;              //  writes since the last fdatasync
    int64_t last_sync_ms;
    //  A compaction in progress
    int compact_fd;             //  -1 unless compacting
    uint64_t compact_end;
    char *compact_buffer;
    size_t compact_size;
    size_t compact_capacity;
    size_t compact_records;
    int compact_error;          //  errno of a failed write; the commit fails
};

//  A record checksum function.
typedef uint64_t (s_checksum_fn) (const char *line, size_t size);

//  The checksum of HERDJ001 journals: herd_record_hash as it was until
//  HERDJ002, FNV-1a a byte a step, then a splitmix64 finaliser. Kept only to
//  read (and convert) journals written before.
static uint64_t
s_hash_v1 (const char *line, size_t size)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < size; i++) {
        hash ^= (unsigned char) line[i];
        hash *= 0x100000001b3ULL;
    }
    hash ^= hash >> 30;
    hash *= 0xbf58476d1ce4e5b9ULL;
    hash ^= hash >> 27;
    hash *= 0x94d049bb133111ebULL;
    hash ^= hash >> 31;
    return hash;
}

//  Little-endian encoders, so journals move between machines.
static void
s_put_u32 (unsigned char *out, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out[i] = (unsigned char) (value >> (8 * i));
}

static void
s_put_u64 (unsigned char *out, uint64_t value)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char) (value >> (8 * i));
}

static uint32_t
s_get_u32 (const unsigned char *in)
{
    uint32_t value = 0;
    for (int i = 3; i >= 0; i--)
        value = (value << 8) | in[i];
    return value;
}

static uint64_t
s_get_u64 (const unsigned char *in)
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = (value << 8) | in[i];
    return value;
}

//  Write all of data to fd at offset; 0, or -1 (errno set) with *written_p
//  the bytes that did reach the file. A write that takes nothing counts as
//  a full disk.
static int
s_pwrite_all (int fd, const char *data, size_t size, uint64_t offset, size_t *written_p)
{
    size_t written = 0;
    int rc = 0;
    while (written < size) {
        ssize_t done = pwrite (fd, data + written, size - written, (off_t) (offset + written));
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0) {
            if (done == 0)
                errno = ENOSPC;
            rc = -1;
            break;
        }
        written += (size_t) done;
    }
    if (written_p)
        *written_p = written;
    return rc;
}

//  Grow a buffer to hold need bytes.
static void
s_reserve (char **buffer, size_t *capacity, size_t need)
{
    if (need <= *capacity)
        return;
    size_t grown = *capacity ? *capacity : 65536;
    while (grown < need)
        grown *= 2;
    char *data = (char *) realloc (*buffer, grown);
    if (!data)
        abort ();               //  out of memory: nothing sensible to do
    *buffer = data;
    *capacity = grown;
}

//  Encode one record at the end of a buffer (grown as needed): with mark,
//  as HERDJ003 does; without (NULL), as HERDJ001 and HERDJ002 did.
static void
s_encode (char **buffer, size_t *size, size_t *capacity, const char *mark, const char *line,
          size_t line_size, uint64_t hash)
{
    size_t head = mark ? HERD_JOURNAL_HEAD : HERD_JOURNAL_HEAD_V2;
    s_reserve (buffer, capacity, *size + head + line_size);
    unsigned char *at = (unsigned char *) *buffer + *size;
    if (mark) {
        memcpy (at, mark, HERD_JOURNAL_MARK_SIZE);
        at += HERD_JOURNAL_MARK_SIZE;
    }
    s_put_u32 (at, (uint32_t) line_size);
    s_put_u64 (at + 4, hash);
    memcpy (at + 12, line, line_size);
    *size += head + line_size;
}

//  The bytes of the whole records at the start of the first size bytes of
//  a buffer of encoded (HERDJ003) records.
static size_t
s_whole_records (const char *buffer, size_t size)
{
    size_t at = 0;
    while (size - at >= HERD_JOURNAL_HEAD) {
        uint32_t length = s_get_u32 ((const unsigned char *) buffer + at + HERD_JOURNAL_MARK_SIZE);
        if (size - at - HERD_JOURNAL_HEAD < length)
            break;
        at += HERD_JOURNAL_HEAD + length;
    }
    return at;
}

//  Read the whole file at fd into memory; NULL on failure.
static char *
s_read_file (int fd, size_t *size_p)
{
    struct stat st;
    if (fstat (fd, &st) == -1)
        return NULL;
    size_t size = (size_t) st.st_size;
    char *data = (char *) malloc (size ? size : 1);
    if (!data)
        return NULL;
    size_t got = 0;
    while (got < size) {
        ssize_t rc = pread (fd, data + got, size - got, (off_t) got);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        got += (size_t) rc;
    }
    *size_p = got;
    return data;
}

//  Check the record at data + at: with mark (HERDJ003) or without. Returns
//  its length, or -1 with what is wrong in reason (at least 64 bytes).
static int64_t
s_check (const char *data, size_t size, size_t at, const char *mark, s_checksum_fn *checksum_fn,
         char *reason)
{
    size_t head = mark ? HERD_JOURNAL_HEAD : HERD_JOURNAL_HEAD_V2;
    if (size - at < head) {
        snprintf (reason, 64, "truncated record header");
        return -1;
    }
    const unsigned char *field = (const unsigned char *) data + at;
    if (mark) {
        if (memcmp (field, mark, HERD_JOURNAL_MARK_SIZE) != 0) {
            snprintf (reason, 64, "bad record mark");
            return -1;
        }
        field += HERD_JOURNAL_MARK_SIZE;
    }
    uint32_t length = s_get_u32 (field);
    uint64_t checksum = s_get_u64 (field + 4);
    if (length > HERD_JOURNAL_MAX_RECORD) {
        snprintf (reason, 64, "corrupt record length %u", length);
        return -1;
    }
    if (size - at - head < length) {
        snprintf (reason, 64, "truncated record");
        return -1;
    }
    //  herd_record_hash seeds with the length: a damaged length fails too
    if (checksum_fn (data + at + head, length) != checksum) {
        snprintf (reason, 64, "checksum mismatch");
        return -1;
    }
    return length;
}

//  Replay a HERDJ001 or HERDJ002 journal: records without marks, so the
//  first damaged one ends it. Fills stats; returns the good length.
static size_t
s_replay_v2 (const char *data, size_t size, s_checksum_fn *checksum_fn, herd_journal_fn *fn,
             void *arg, herd_journal_stats_t *stats)
{
    size_t at = HERD_JOURNAL_MAGIC_SIZE;
    while (at < size) {
        int64_t length = s_check (data, size, at, NULL, checksum_fn, stats->reason);
        if (length < 0)
            break;
        if (fn)
            fn (data + at + HERD_JOURNAL_HEAD_V2, (size_t) length, arg);
        stats->records++;
        at += HERD_JOURNAL_HEAD_V2 + (size_t) length;
    }
    return at;
}

//  Replay a HERDJ003 journal from offset at. A damaged stretch is skipped:
//  the reader resynchronises on the next mark that starts a whole good
//  record (a mark cannot occur inside an AT line: it holds a newline), and
//  counts the marks it passed as the damaged records. Damage with no good
//  record after it is a torn tail. Fills stats; returns the good length.
static size_t
s_replay_v3 (const char *data, size_t size, size_t at, herd_journal_fn *fn, void *arg,
             herd_journal_stats_t *stats)
{
    while (at < size) {
        char reason[64];
        int64_t length = s_check (data, size, at, HERD_JOURNAL_MARK, herd_record_hash, reason);
        if (length >= 0) {
            if (fn)
                fn (data + at + HERD_JOURNAL_HEAD, (size_t) length, arg);
            stats->records++;
            at += HERD_JOURNAL_HEAD + (size_t) length;
            continue;
        }
        //  Find the next whole good record
        size_t marks = 0, next = size;
        for (size_t from = at; from < size;) {
            const char *found = (const char *) memmem (data + from, size - from,
                                                        HERD_JOURNAL_MARK,
                                                        HERD_JOURNAL_MARK_SIZE);
            if (!found)
                break;
            size_t candidate = (size_t) (found - data);
            char ignored[64];
            if (candidate > at && s_check (data, size, candidate, HERD_JOURNAL_MARK,
                                           herd_record_hash, ignored) >= 0) {
                next = candidate;
                break;
            }
            marks++;
            from = candidate + 1;
        }
        if (next == size) {
            snprintf (stats->reason, sizeof (stats->reason), "%s", reason);
            break;                  //  a torn tail: cut off by the caller
        }
        if (stats->skip_reason[0] == 0)
            snprintf (stats->skip_reason, sizeof (stats->skip_reason), "%s at offset %zu",
                      reason, at);
        stats->skipped += marks ? marks : 1;
        stats->skipped_bytes += next - at;
        at = next;
    }
    return at;
}

//  Passes each record of an older journal to the caller's function, and to
//  the compaction that rewrites it as HERDJ003.
typedef struct {
    herd_journal_t *self;
    herd_journal_fn *fn;
    void *arg;
} s_convert_t;

static void
s_convert_record (const char *line, size_t size, void *arg)
{
    s_convert_t *convert = (s_convert_t *) arg;
    if (convert->fn)
        convert->fn (line, size, convert->arg);
    herd_journal_compact_add (convert->self, line, size, herd_record_hash (line, size));
}

//  True if data holds a whole good HERDJ003 record after its first 8 bytes:
//  a HERDJ003 journal whose header was damaged.
static bool
s_has_v3_record (const char *data, size_t size)
{
    for (size_t from = HERD_JOURNAL_MAGIC_SIZE; from < size;) {
        const char *found = (const char *) memmem (data + from, size - from, HERD_JOURNAL_MARK,
                                                    HERD_JOURNAL_MARK_SIZE);
        if (!found)
            return false;
        char ignored[64];
        if (s_check (data, size, (size_t) (found - data), HERD_JOURNAL_MARK, herd_record_hash,
                     ignored)
            >= 0)
            return true;
        from = (size_t) (found - data) + 1;
    }
    return false;
}

//  A journal on dir, created with its parents if need be, its file opened
//  (created empty if absent) but not read. NULL with error set on failure.
static herd_journal_t *
s_journal_new (const char *dir, char *error)
{
    //  mkdir -p dir. Not zsys_dir_create: it gives up when a parent appears
    //  meanwhile (EEXIST), which happens when several nodes start at once
    char *copy = strdup (dir);
    if (!copy) {
        snprintf (error, 256, "out of memory");
        return NULL;
    }
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (copy, 0755);             //  EEXIST is fine; open says what failed
        *slash = '/';
    }
    mkdir (copy, 0755);
    herd_journal_t *self = (herd_journal_t *) calloc (1, sizeof (herd_journal_t));
    if (!self) {
        free (copy);
        snprintf (error, 256, "out of memory");
        return NULL;
    }
    self->dir = copy;
    self->fd = -1;
    self->compact_fd = -1;
    size_t len = strlen (dir) + 32;
    self->path = (char *) malloc (len);
    self->compact_path = (char *) malloc (len);
    if (!self->path || !self->compact_path)
        abort ();
    snprintf (self->path, len, "%s/journal", dir);
    snprintf (self->compact_path, len, "%s/journal.compact", dir);
    unlink (self->compact_path);        //  a compaction that did not finish

    self->fd = open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd == -1) {
        snprintf (error, 256, "cannot open %s: %s", self->path, strerror (errno));
        herd_journal_destroy (&self);
    }
    return self;
}

//  The format of a journal's bytes, from its header: *v3_p for HERDJ003
//  (also with a damaged header but marked records after it: *bad_header_p),
//  else the checksum of an older format, or NULL for none known.
static s_checksum_fn *
s_sniff_format (const char *data, size_t size, herd_journal_stats_t *stats, bool *v3_p,
                bool *bad_header_p)
{
    bool v3 = size >= HERD_JOURNAL_MAGIC_SIZE
              && memcmp (data, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MAGIC_SIZE) == 0;
    s_checksum_fn *old_checksum = NULL;
    if (size >= HERD_JOURNAL_MAGIC_SIZE
        && memcmp (data, HERD_JOURNAL_MAGIC_V2, HERD_JOURNAL_MAGIC_SIZE) == 0)
        old_checksum = herd_record_hash;
    else
    if (size >= HERD_JOURNAL_MAGIC_SIZE
        && memcmp (data, HERD_JOURNAL_MAGIC_V1, HERD_JOURNAL_MAGIC_SIZE) == 0)
        old_checksum = s_hash_v1;
    bool bad_header = false;
    if (!v3 && !old_checksum && size > HERD_JOURNAL_MAGIC_SIZE && s_has_v3_record (data, size)) {
        //  Records with marks after a damaged header: a HERDJ003 journal
        v3 = bad_header = true;
        stats->skipped_bytes = HERD_JOURNAL_MAGIC_SIZE;
        snprintf (stats->skip_reason, sizeof (stats->skip_reason), "damaged file header");
    }
    if (v3 || old_checksum)
        memcpy (stats->format, bad_header ? HERD_JOURNAL_FORMAT : data, HERD_JOURNAL_MAGIC_SIZE);
    *v3_p = v3;
    *bad_header_p = bad_header;
    return old_checksum;
}

//  An older journal is converted as it is replayed: its good records go to
//  journal.compact as HERDJ003, which replaces it the way a compaction does
//  (fsync, rename). A crash meanwhile leaves the old journal, converted
//  again at the next start. Takes data. 0, or -1 with error set.
static int
s_open_upgrade (herd_journal_t *self, char *data, size_t size, s_checksum_fn *old_checksum,
                herd_journal_fn *fn, void *arg, herd_journal_stats_t *stats, char *error)
{
    if (herd_journal_compact_begin (self) == -1) {
        snprintf (error, 256, "cannot convert %s: cannot write %s: %s", self->path,
                  self->compact_path, strerror (errno));
        free (data);
        return -1;
    }
    s_convert_t convert = {self, fn, arg};
    size_t good = s_replay_v2 (data, size, old_checksum, s_convert_record, &convert, stats);
    free (data);
    stats->bytes = good;
    stats->discarded = size - good;
    if (herd_journal_compact_commit (self) == -1) {
        snprintf (error, 256, "cannot convert %s: cannot replace it with %s: %s", self->path,
                  self->compact_path, strerror (errno));
        return -1;
    }
    stats->upgraded = true;
    return 0;
}

//  Replay a HERDJ003 journal (v3) or start a new one, and cut what is bad:
//  a new, unreadable or damaged header is (re)written, a bad tail cut off.
//  Takes data. 0, or -1 with error set.
static int
s_open_replay (herd_journal_t *self, char *data, size_t size, bool v3, bool bad_header,
               herd_journal_fn *fn, void *arg, herd_journal_stats_t *stats, char *error)
{
    size_t good = 0;
    if (v3)
        good = s_replay_v3 (data, size, HERD_JOURNAL_MAGIC_SIZE, fn, arg, stats);
    else
    if (size > 0)
        snprintf (stats->reason, sizeof (stats->reason), "no journal header");
    free (data);
    stats->bytes = good;
    stats->discarded = size - good;
    self->records = stats->records;
    if (good == 0 || bad_header) {
        if ((good == 0 && ftruncate (self->fd, 0) == -1)
            || pwrite (self->fd, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MAGIC_SIZE, 0)
                   != HERD_JOURNAL_MAGIC_SIZE) {
            snprintf (error, 256, "cannot write %s: %s", self->path, strerror (errno));
            return -1;
        }
        if (good == 0)
            good = HERD_JOURNAL_MAGIC_SIZE;
    }
    if (good < size && ftruncate (self->fd, (off_t) good) == -1) {
        snprintf (error, 256, "cannot cut the bad tail of %s: %s", self->path, strerror (errno));
        return -1;
    }
    self->end = good;
    self->last_sync_ms = zclock_mono ();
    return 0;
}

herd_journal_t *
herd_journal_open (const char *dir, herd_journal_fn *fn, void *arg, herd_journal_stats_t *stats,
                   char *error)
{
    memset (stats, 0, sizeof (*stats));
    herd_journal_t *self = s_journal_new (dir, error);
    if (!self)
        return NULL;
    size_t size = 0;
    char *data = s_read_file (self->fd, &size);
    if (!data) {
        snprintf (error, 256, "cannot read %s: %s", self->path, strerror (errno));
        herd_journal_destroy (&self);
        return NULL;
    }
    bool v3, bad_header;
    s_checksum_fn *old_checksum = s_sniff_format (data, size, stats, &v3, &bad_header);
    int rc = old_checksum
                 ? s_open_upgrade (self, data, size, old_checksum, fn, arg, stats, error)
                 : s_open_replay (self, data, size, v3, bad_header, fn, arg, stats, error);
    if (rc == -1)
        herd_journal_destroy (&self);
    return self;
}

//  Forget the compaction in progress, if any.
static void
s_compact_abandon (herd_journal_t *self)
{
    if (self->compact_fd >= 0) {
        close (self->compact_fd);
        unlink (self->compact_path);
        self->compact_fd = -1;
    }
    free (self->compact_buffer);
    self->compact_buffer = NULL;
    self->compact_size = self->compact_capacity = 0;
}

void
herd_journal_destroy (herd_journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_journal_t *self = *self_p;
    if (self->fd >= 0) {
        self->failing = false;          //  one last try, now
        herd_journal_flush (self);
        herd_journal_sync (self);
        close (self->fd);
    }
    s_compact_abandon (self);
    free (self->buffer);
    free (self->path);
    free (self->dir);
    free (self->compact_path);
    free (self);
    *self_p = NULL;
}

int
herd_journal_append (herd_journal_t *self, const char *line, size_t size)
{
    if (size > HERD_JOURNAL_MAX_RECORD) {
        errno = EMSGSIZE;
        return -1;
    }
    return herd_journal_append_hashed (self, line, size, herd_record_hash (line, size));
}

int
herd_journal_append_hashed (herd_journal_t *self, const char *line, size_t size, uint64_t hash)
{
    if (size > HERD_JOURNAL_MAX_RECORD) {
        errno = EMSGSIZE;
        return -1;                  //  it could not be read back
    }
    self->records++;
    if (self->lost)
        return 0;                   //  the rewrite from the table will hold it
    if (self->failing && self->size + HERD_JOURNAL_HEAD + size > HERD_JOURNAL_MAX_BUFFER) {
        //  Writes have failed for long: stop holding records in memory
        free (self->buffer);
        self->buffer = NULL;
        self->size = self->capacity = 0;
        self->lost = true;
        return 0;
    }
    s_encode (&self->buffer, &self->size, &self->capacity, HERD_JOURNAL_MARK, line, size, hash);
    //  A loop turn may apply tens of thousands of records (batches of 64 KB
    //  from the gateway and the neighbours): write them out as they come,
    //  not in one buffer that grows to the turn's size and stays that big
    if (self->size >= HERD_JOURNAL_WRITE)
        herd_journal_flush (self);
    return 0;
}

int
herd_journal_flush (herd_journal_t *self)
{
    if (self->lost) {
        errno = self->error ? self->error : EIO;
        return -1;
    }
    if (self->size == 0) {
        self->failing = false;
        return 0;
    }
    int64_t now = zclock_mono ();
    if (self->failing && now < self->retry_ms) {
        errno = self->error;
        return -1;                  //  no syscall: a failing disk is not hammered
    }
    //  Always at the end of the last whole record: a write that failed
    //  half-way is overwritten, never followed
    size_t written = 0;
    if (s_pwrite_all (self->fd, self->buffer, self->size, self->end, &written) == 0) {
        self->end += self->size;
        self->size = 0;
        self->unsynced = true;
        self->failing = false;
        if (self->capacity > 8 * HERD_JOURNAL_WRITE) {
            free (self->buffer);        //  grown by a failure or a huge line
            self->buffer = NULL;
            self->capacity = 0;
        }
        if (self->tail_dirty && ftruncate (self->fd, (off_t) self->end) == 0)
            self->tail_dirty = false;
        return 0;
    }
    int error = errno;
    //  Keep the whole records that made it; cut the file back after them
    size_t whole = s_whole_records (self->buffer, written);
    if (whole > 0) {
        self->end += whole;
        memmove (self->buffer, self->buffer + whole, self->size - whole);
        self->size -= whole;
        self->unsynced = true;
    }
    self->tail_dirty = ftruncate (self->fd, (off_t) self->end) == -1;
    self->failing = true;
    self->error = error;
    self->retry_ms = now + HERD_JOURNAL_RETRY_MS;
    errno = error;
    return -1;
}

int
herd_journal_sync (herd_journal_t *self)
{
    if (!self->unsynced)
        return 0;
    if (fdatasync (self->fd) == -1) {
        //  What the kernel failed to write is in no known state (Linux may
        //  drop the dirty pages and report success next time): only a
        //  rewrite from the table makes the journal whole again
        int error = errno;
        free (self->buffer);
        self->buffer = NULL;
        self->size = self->capacity = 0;
        self->lost = self->failing = true;
        self->error = error;
        errno = error;
        return -1;
    }
    self->unsynced = false;
    self->last_sync_ms = zclock_mono ();
    return 0;
}

void
herd_journal_tick (herd_journal_t *self)
{
    if (self->unsynced && zclock_mono () - self->last_sync_ms >= 1000)
        herd_journal_sync (self);
}

size_t
herd_journal_records (herd_journal_t *self)
{
    return self->records;
}

bool
herd_journal_failing (herd_journal_t *self)
{
    return self->failing || self->lost;
}

bool
herd_journal_lost (herd_journal_t *self)
{
    return self->lost;
}

int
herd_journal_compact_begin (herd_journal_t *self)
{
    //  Write what is buffered first: if the compaction fails, the old
    //  journal is as complete as it can be
    herd_journal_flush (self);
    s_compact_abandon (self);
    self->compact_fd = open (self->compact_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (self->compact_fd == -1)
        return -1;
    self->compact_end = 0;
    self->compact_records = 0;
    self->compact_error = 0;
    s_reserve (&self->compact_buffer, &self->compact_capacity, HERD_JOURNAL_MAGIC_SIZE);
    memcpy (self->compact_buffer, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MAGIC_SIZE);
    self->compact_size = HERD_JOURNAL_MAGIC_SIZE;
    return 0;
}

//  Write the compaction's buffer; a failure fails the commit.
static void
s_compact_write (herd_journal_t *self)
{
    if (self->compact_error == 0
        && s_pwrite_all (self->compact_fd, self->compact_buffer, self->compact_size,
                         self->compact_end, NULL)
               == -1)
        self->compact_error = errno;
    self->compact_end += self->compact_size;
    self->compact_size = 0;
}

void
herd_journal_compact_add (herd_journal_t *self, const char *line, size_t size,
                          uint64_t hash)
{
    if (self->compact_fd < 0 || self->compact_error || size > HERD_JOURNAL_MAX_RECORD)
        return;
    s_encode (&self->compact_buffer, &self->compact_size, &self->compact_capacity,
              HERD_JOURNAL_MARK, line, size, hash);
    self->compact_records++;
    if (self->compact_size >= HERD_JOURNAL_WRITE)
        s_compact_write (self);
}

int
herd_journal_compact_commit (herd_journal_t *self)
{
    if (self->compact_fd < 0) {
        errno = EBADF;
        return -1;
    }
    s_compact_write (self);
    int rc = self->compact_error ? -1 : 0;
    if (rc == -1)
        errno = self->compact_error;
    if (rc == 0)
        rc = fdatasync (self->compact_fd);
    if (rc == 0)
        rc = rename (self->compact_path, self->path);
    if (rc == -1) {
        int error = errno;
        s_compact_abandon (self);
        errno = error;
        return -1;
    }
    //  The rename, too, must survive a power loss
    int dir_fd = open (self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        fsync (dir_fd);
        close (dir_fd);
    }
    close (self->fd);
    self->fd = self->compact_fd;
    self->compact_fd = -1;
    self->end = self->compact_end;
    self->tail_dirty = false;
    self->records = self->compact_records;
    //  What was buffered is in the table the caller rewrote: dropped
    free (self->buffer);
    self->buffer = NULL;
    self->size = self->capacity = 0;
    self->failing = self->lost = false;
    self->error = 0;
    self->unsynced = false;
    self->last_sync_ms = zclock_mono ();
    s_compact_abandon (self);
    return 0;
}

//  -------------------------------------------------------------------------
//  Self test

//  Collects replayed lines for the self test.
typedef struct {
    int count;
    char first[128];
    char last[128];
    size_t longest;
} s_seen_t;

static void
s_collect (const char *line, size_t size, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    if (seen->count++ == 0)
        snprintf (seen->first, sizeof (seen->first), "%.*s", (int) size, line);
    snprintf (seen->last, sizeof (seen->last), "%.*s", (int) (size < 100 ? size : 100), line);
    if (size > seen->longest)
        seen->longest = size;
}

//  Size of a file, for the self test.
static off_t
s_file_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? st.st_size : -1;
}

//  True if the file at path starts with magic, for the self test.
static bool
s_file_starts (const char *path, const char *magic)
{
    char head[HERD_JOURNAL_MAGIC_SIZE] = "";
    int fd = open (path, O_RDONLY);
    bool starts = fd >= 0 && read (fd, head, sizeof (head)) == (ssize_t) sizeof (head)
                  && memcmp (head, magic, sizeof (head)) == 0;
    if (fd >= 0)
        close (fd);
    return starts;
}

//  Write a journal by hand: magic, then count records "AT Hill
//  +0.000000000 PREFIXN +1+1 N", with mark (HERDJ003) or without, checksums
//  by checksum_fn. For the self test.
static void
s_write_journal (const char *path, const char *magic, const char *mark,
                 s_checksum_fn *checksum_fn, const char *prefix, int count)
{
    char *data = NULL;
    size_t size = 0, capacity = 0;
    for (int i = 0; i < count; i++) {
        char line[64];
        int len = snprintf (line, sizeof (line), "AT Hill +0.000000000 %s%d +1+1 %d", prefix, i, i);
        s_encode (&data, &size, &capacity, mark, line, (size_t) len,
                  checksum_fn (line, (size_t) len));
    }
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    HERD_CHECK (fd >= 0);
    HERD_CHECK_INT (s_pwrite_all (fd, magic, HERD_JOURNAL_MAGIC_SIZE, 0, NULL), 0);
    HERD_CHECK_INT (s_pwrite_all (fd, data ? data : "", size, HERD_JOURNAL_MAGIC_SIZE, NULL), 0);
    close (fd);
    free (data);
}

//  The offset in the file at path of the first occurrence of text; -1 if none.
static off_t
s_file_find (const char *path, const char *text)
{
    int fd = open (path, O_RDONLY);
    HERD_CHECK (fd >= 0);
    size_t size = 0;
    char *data = s_read_file (fd, &size);
    close (fd);
    HERD_CHECK (data);
    const char *found = (const char *) memmem (data, size, text, strlen (text));
    off_t at = found ? found - data : -1;
    free (data);
    return at;
}

//  Overwrite bytes of the file at path at offset, for the self test.
static void
s_file_poke (const char *path, off_t offset, const void *bytes, size_t size)
{
    int fd = open (path, O_WRONLY);
    HERD_CHECK (fd >= 0);
    HERD_CHECK (pwrite (fd, bytes, size, offset) == (ssize_t) size);
    close (fd);
}

//  Open the journal at dir with s_collect, for the self test.
static herd_journal_t *
s_reopen (const char *dir, s_seen_t *seen, herd_journal_stats_t *stats)
{
    char error[256] = "";
    memset (seen, 0, sizeof (*seen));
    herd_journal_t *journal = herd_journal_open (dir, s_collect, seen, stats, error);
    if (!journal)
        fprintf (stderr, "herd_journal_open: %s\n", error);
    HERD_CHECK (journal);
    HERD_CHECK_INT (seen->count, stats->records);
    return journal;
}

//  Limit the size of files this process writes (RLIMIT_FSIZE): past it,
//  writes fail with EFBIG as on a full disk. For the self test.
static void
s_limit_files (rlim_t bytes)
{
    struct rlimit limit;
    HERD_CHECK (getrlimit (RLIMIT_FSIZE, &limit) == 0);
    limit.rlim_cur = bytes < limit.rlim_max ? bytes : limit.rlim_max;
    HERD_CHECK (setrlimit (RLIMIT_FSIZE, &limit) == 0);
}

//  A record "AT Hill +0.000000000 fillN" padded to size bytes, for the self test.
static char *
s_padded_line (int n, size_t size)
{
    char *line = (char *) malloc (size);
    HERD_CHECK (line);
    memset (line, 'p', size);
    int len = snprintf (line, size, "AT Hill +0.000000000 fill%d ", n);
    line[len] = 'p';
    memcpy (line + size - 7, " +1+1 1", 7);
    return line;
}

void
herd_journal_test (bool verbose)
{
    (void) verbose;
    char dir[] = "/tmp/herd_journal_test_XXXXXX";
    HERD_CHECK (mkdtemp (dir));
    char sub[128], path[160];
    snprintf (sub, sizeof (sub), "%s/data/Hill", dir);
    snprintf (path, sizeof (path), "%s/journal", sub);
    char error[256] = "";
    herd_journal_stats_t stats;
    s_seen_t seen;

    //  A new journal in a new directory
    herd_journal_t *journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 0);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (stats.format, "");
    for (int i = 0; i < 100; i++) {
        char line[64];
        int len = snprintf (line, sizeof (line), "AT Hill +0.000000000 c%d +1+1 %d", i, i);
        HERD_CHECK_INT (herd_journal_append (journal, line, (size_t) len), 0);
    }
    HERD_CHECK_INT (herd_journal_flush (journal), 0);
    HERD_CHECK (!herd_journal_failing (journal));
    HERD_CHECK_INT (herd_journal_sync (journal), 0);
    herd_journal_tick (journal);
    HERD_CHECK_INT (herd_journal_records (journal), 100);
    herd_journal_destroy (&journal);
    HERD_CHECK (journal == NULL);
    HERD_CHECK (s_file_starts (path, "HERDJ003"));

    //  Reopen: everything replays, in order
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 100);
    HERD_CHECK_STR (stats.format, "HERDJ003");
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 c0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 c99 +1+1 99");
    HERD_CHECK_INT (stats.bytes, s_file_size (path));
    herd_journal_destroy (&journal);

    //  A torn tail (crash in mid-write): the good prefix loads, the rest goes
    off_t full = s_file_size (path);
    HERD_CHECK (truncate (path, full - 5) == 0);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 99);
    HERD_CHECK_STR (stats.reason, "truncated record");
    HERD_CHECK_INT (stats.skipped, 0);
    HERD_CHECK (stats.discarded > 0);
    HERD_CHECK_INT (s_file_size (path), stats.bytes);
    //  ...and appends after the cut are readable again
    herd_journal_append (journal, "AT Hill +0.000000000 new +1+1 1", 31);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 100);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 new +1+1 1");
    herd_journal_destroy (&journal);
    //  A torn record header at the tail too
    HERD_CHECK (truncate (path, s_file_size (path) - 31 - 6) == 0);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 99);
    HERD_CHECK_STR (stats.reason, "truncated record header");
    herd_journal_destroy (&journal);

    //  A flipped byte in record 10 of 1000: the other 999 load
    s_write_journal (path, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MARK, herd_record_hash, "f", 1000);
    off_t victim = s_file_find (path, " f10 ");
    HERD_CHECK (victim > 0);
    s_file_poke (path, victim + 2, "X", 1);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 999);
    HERD_CHECK_INT (stats.skipped, 1);
    HERD_CHECK_INT (stats.skipped_bytes, HERD_JOURNAL_HEAD + strlen ("AT Hill +0.000000000 f10 +1+1 10"));
    HERD_CHECK_CONTAINS (stats.skip_reason, "checksum mismatch at offset ");
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (stats.reason, "");
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 f0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 f999 +1+1 999");
    //  The damage stays (a compaction drops it); appends go after the end
    herd_journal_append (journal, "AT Hill +0.000000000 after +1+1 1", 33);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 1000);
    HERD_CHECK_INT (stats.skipped, 1);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after +1+1 1");
    herd_journal_destroy (&journal);

    //  A garbage length: huge, too short, or long enough to swallow the
    //  records after it; a damaged mark. Each costs that record alone
    struct {
        const char *client;
        int offset;             //  from the record's start
        const char *bytes;
        const char *reason;
    } damage[] = {
        {" g20 ", 4, "\xff\xff\xff\xff", "corrupt record length 4294967295"},
        {" g20 ", 4, "\x05", "checksum mismatch"},
        {" g20 ", 5, "\x04", "checksum mismatch"},      //  +1 KiB: over 20 records
        {" g20 ", 5, "\x40", "truncated record"},       //  +16 KiB: past the end
        {" g20 ", 0, "X", "bad record mark"},
        {" g20 ", 8, "\x01", "checksum mismatch"},      //  the checksum itself
    };
    for (size_t i = 0; i < sizeof (damage) / sizeof (damage[0]); i++) {
        s_write_journal (path, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MARK, herd_record_hash, "g",
                         100);
        off_t line_at = s_file_find (path, damage[i].client) - 20;  //  "AT Hill +0.000000000"
        s_file_poke (path, line_at - HERD_JOURNAL_HEAD + damage[i].offset, damage[i].bytes,
                     strlen (damage[i].bytes));
        journal = s_reopen (sub, &seen, &stats);
        HERD_CHECK_INT (stats.records, 99);
        HERD_CHECK_INT (stats.skipped, 1);
        HERD_CHECK_CONTAINS (stats.skip_reason, damage[i].reason);
        HERD_CHECK_INT (stats.discarded, 0);
        HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 g99 +1+1 99");
        herd_journal_destroy (&journal);
    }
    //  Two damaged stretches, one of two records: three skipped
    s_write_journal (path, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MARK, herd_record_hash, "h", 100);
    s_file_poke (path, s_file_find (path, " h30 ") + 1, "X", 1);
    s_file_poke (path, s_file_find (path, " h60 ") + 1, "X", 1);
    s_file_poke (path, s_file_find (path, " h61 ") + 1, "X", 1);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 97);
    HERD_CHECK_INT (stats.skipped, 3);
    herd_journal_destroy (&journal);
    //  A damaged last record is a bad tail: cut off
    s_write_journal (path, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MARK, herd_record_hash, "t", 100);
    s_file_poke (path, s_file_find (path, " t99 ") + 1, "X", 1);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 99);
    HERD_CHECK_INT (stats.skipped, 0);
    HERD_CHECK_STR (stats.reason, "checksum mismatch");
    HERD_CHECK (stats.discarded > 0);
    herd_journal_destroy (&journal);
    //  A damaged header in front of good records: they load, it is rewritten
    s_write_journal (path, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MARK, herd_record_hash, "d", 100);
    s_file_poke (path, 2, "X", 1);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 100);
    HERD_CHECK_STR (stats.skip_reason, "damaged file header");
    HERD_CHECK_STR (stats.format, "HERDJ003");
    herd_journal_destroy (&journal);
    HERD_CHECK (s_file_starts (path, "HERDJ003"));
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 100);
    HERD_CHECK_INT (stats.skipped_bytes, 0);
    herd_journal_destroy (&journal);

    //  Writes that fail half-way (a file size limit fails them as a full
    //  disk does) leave only whole records on the file
    signal (SIGXFSZ, SIG_IGN);
    s_write_journal (path, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MARK, herd_record_hash, "w", 10);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 10);
    off_t before = s_file_size (path);
    s_limit_files ((rlim_t) before + 300000);
    size_t line_size = 100000;
    for (int i = 0; i < 8; i++) {
        char *line = s_padded_line (i, line_size);
        HERD_CHECK_INT (herd_journal_append (journal, line, line_size), 0);
        free (line);
    }
    HERD_CHECK_INT (herd_journal_flush (journal), -1);
    HERD_CHECK_INT (errno, EFBIG);
    HERD_CHECK (herd_journal_failing (journal));
    HERD_CHECK (!herd_journal_lost (journal));
    //  Two whole records fit under the limit: the file ends after them
    HERD_CHECK_INT (s_file_size (path), before + 2 * (HERD_JOURNAL_HEAD + line_size));
    //  Retried at most every 100 ms
    HERD_CHECK_INT (herd_journal_flush (journal), -1);
    HERD_CHECK_INT (errno, EFBIG);
    HERD_CHECK_INT (herd_journal_records (journal), 18);
    //  Space comes back: the buffered records are written after the others
    s_limit_files (RLIM_INFINITY);
    zclock_sleep (HERD_JOURNAL_RETRY_MS + 10);
    HERD_CHECK_INT (herd_journal_flush (journal), 0);
    HERD_CHECK (!herd_journal_failing (journal));
    HERD_CHECK_INT (s_file_size (path), before + 8 * (HERD_JOURNAL_HEAD + line_size));
    herd_journal_append (journal, "AT Hill +0.000000000 back +1+1 1", 32);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 19);
    HERD_CHECK_INT (stats.skipped, 0);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 back +1+1 1");

    //  Failing for long: past HERD_JOURNAL_MAX_BUFFER the buffer is dropped,
    //  the journal is lost until a compaction rewrites it
    before = s_file_size (path);
    s_limit_files ((rlim_t) before);
    line_size = 1 << 20;
    size_t appended = 0;
    for (int i = 0; !herd_journal_lost (journal); i++) {
        HERD_CHECK (i < 100);
        char *line = s_padded_line (i, line_size);
        HERD_CHECK_INT (herd_journal_append (journal, line, line_size), 0);
        free (line);
        appended++;
    }
    HERD_CHECK (appended >= HERD_JOURNAL_MAX_BUFFER / (line_size + HERD_JOURNAL_HEAD));
    HERD_CHECK (herd_journal_failing (journal));
    HERD_CHECK_INT (herd_journal_flush (journal), -1);
    HERD_CHECK_INT (s_file_size (path), before);
    //  While lost, appends are counted, not buffered
    HERD_CHECK_INT (herd_journal_append (journal, "AT Hill +0.000000000 gone +1+1 1", 32), 0);
    //  A compaction that fails (the disk still full) changes nothing
    s_limit_files (20);
    HERD_CHECK_INT (herd_journal_compact_begin (journal), 0);
    herd_journal_compact_add (journal, "AT Hill +0.000000000 live +1+1 1", 32,
                              herd_record_hash ("AT Hill +0.000000000 live +1+1 1", 32));
    HERD_CHECK_INT (herd_journal_compact_commit (journal), -1);
    HERD_CHECK (herd_journal_lost (journal));
    HERD_CHECK_INT (s_file_size (path), before);
    //  Space back: the compaction rewrites it from the table, and it is whole
    s_limit_files (RLIM_INFINITY);
    HERD_CHECK_INT (herd_journal_compact_begin (journal), 0);
    herd_journal_compact_add (journal, "AT Hill +0.000000000 live +1+1 1", 32,
                              herd_record_hash ("AT Hill +0.000000000 live +1+1 1", 32));
    HERD_CHECK_INT (herd_journal_compact_commit (journal), 0);
    HERD_CHECK (!herd_journal_lost (journal));
    HERD_CHECK (!herd_journal_failing (journal));
    HERD_CHECK_INT (herd_journal_records (journal), 1);
    herd_journal_append (journal, "AT Hill +0.000000000 after +1+1 2", 33);
    HERD_CHECK_INT (herd_journal_flush (journal), 0);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 2);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 live +1+1 1");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after +1+1 2");
    herd_journal_destroy (&journal);

    //  A record over HERD_JOURNAL_MAX_RECORD is refused, nothing written;
    //  the AT line of an IAMAT of herd/max_line's cap, with the longest
    //  fields and a node name of 255 bytes, fits and reads back
    journal = s_reopen (sub, &seen, &stats);
    off_t size_before = s_file_size (path);
    char *huge = (char *) malloc (HERD_JOURNAL_MAX_RECORD + 1);
    HERD_CHECK (huge);
    memset (huge, 'h', HERD_JOURNAL_MAX_RECORD + 1);
    HERD_CHECK_INT (herd_journal_append (journal, huge, HERD_JOURNAL_MAX_RECORD + 1), -1);
    HERD_CHECK_INT (errno, EMSGSIZE);
    HERD_CHECK_INT (herd_journal_append_hashed (journal, huge, HERD_JOURNAL_MAX_RECORD + 1, 0),
                    -1);
    HERD_CHECK_INT (herd_journal_flush (journal), 0);
    HERD_CHECK_INT (s_file_size (path), size_before);
    HERD_CHECK_INT (herd_journal_records (journal), 2);
    const char *tail = " +90.000000000000000-180.000000000000000 999999999999999999.999999999";
    size_t iamat_size = (size_t) HERD_CONFIG_MAX_LINE;
    memcpy (huge, "IAMAT ", 6);
    memcpy (huge + iamat_size - strlen (tail), tail, strlen (tail));
    herd_cmd_t iamat;
    HERD_CHECK_INT (herd_proto_parse (huge, iamat_size, &iamat), 0);
    char server[256];
    memset (server, 'N', 255);
    server[255] = 0;
    size_t at_size = herd_proto_format_at (server, &iamat, 0, 0, NULL, 0);
    char *at_line = (char *) malloc (at_size + 1);
    HERD_CHECK (at_line);
    herd_proto_format_at (server, &iamat, 0, 0, at_line, at_size + 1);
    HERD_CHECK (at_size <= HERD_JOURNAL_MAX_RECORD);
    HERD_CHECK_INT (herd_journal_append (journal, at_line, at_size), 0);
    herd_journal_append (journal, "AT Hill +0.000000000 last +1+1 3", 32);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 4);
    HERD_CHECK_INT (seen.longest, at_size);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 last +1+1 3");
    herd_journal_destroy (&journal);
    free (at_line);
    free (huge);

    //  Compaction rewrites the file from what the caller says is live
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (herd_journal_compact_begin (journal), 0);
    herd_journal_compact_add (journal, "AT Hill +0.000000000 only +1+1 1", 32,
                              herd_record_hash ("AT Hill +0.000000000 only +1+1 1", 32));
    HERD_CHECK_INT (herd_journal_compact_commit (journal), 0);
    herd_journal_append (journal, "AT Hill +0.000000000 after +1+1 2", 33);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 2);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after +1+1 2");
    herd_journal_destroy (&journal);

    //  A HERDJ002 journal (no marks) loads, and is converted to HERDJ003
    char compact[192];
    snprintf (compact, sizeof (compact), "%s.compact", path);
    s_write_journal (path, HERD_JOURNAL_MAGIC_V2, NULL, herd_record_hash, "two", 50);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_STR (stats.format, "HERDJ002");
    HERD_CHECK_INT (stats.records, 50);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 two0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 two49 +1+1 49");
    HERD_CHECK_INT (herd_journal_records (journal), 50);
    HERD_CHECK (s_file_starts (path, "HERDJ003"));
    HERD_CHECK (s_file_size (compact) == -1);
    herd_journal_append (journal, "AT Hill +0.000000000 after +1+1 3", 33);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_STR (stats.format, "HERDJ003");
    HERD_CHECK_INT (stats.records, 51);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 two0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after +1+1 3");
    herd_journal_destroy (&journal);
    //  ...with a corrupt record: its good prefix is converted
    s_write_journal (path, HERD_JOURNAL_MAGIC_V2, NULL, herd_record_hash, "two", 50);
    s_file_poke (path, s_file_find (path, " two20 ") + 1, "X", 1);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_INT (stats.records, 20);
    HERD_CHECK_STR (stats.reason, "checksum mismatch");
    herd_journal_destroy (&journal);

    //  A HERDJ001 journal (checksums: the hash before HERDJ002) too
    s_write_journal (path, HERD_JOURNAL_MAGIC_V1, NULL, s_hash_v1, "old", 50);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_STR (stats.format, "HERDJ001");
    HERD_CHECK_INT (stats.records, 50);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 old0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 old49 +1+1 49");
    HERD_CHECK (s_file_starts (path, "HERDJ003"));
    HERD_CHECK (s_file_size (compact) == -1);
    herd_journal_append (journal, "AT Hill +0.000000000 after +1+1 3", 33);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_INT (stats.records, 51);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 old0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after +1+1 3");
    herd_journal_destroy (&journal);

    //  A HERDJ001 journal with a torn tail: the good prefix is converted
    s_write_journal (path, HERD_JOURNAL_MAGIC_V1, NULL, s_hash_v1, "old", 50);
    HERD_CHECK (truncate (path, s_file_size (path) - 5) == 0);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_INT (stats.records, 49);
    HERD_CHECK_STR (stats.reason, "truncated record");
    HERD_CHECK (stats.discarded > 0);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_INT (stats.records, 49);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 old48 +1+1 48");
    herd_journal_destroy (&journal);

    //  An empty HERDJ001 journal becomes an empty HERDJ003 one
    s_write_journal (path, HERD_JOURNAL_MAGIC_V1, NULL, s_hash_v1, "old", 0);
    journal = herd_journal_open (sub, NULL, NULL, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_INT (stats.records, 0);
    herd_journal_append (journal, "AT Hill +0.000000000 one +1+1 1", 31);
    herd_journal_destroy (&journal);
    HERD_CHECK (s_file_starts (path, "HERDJ003"));
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 1);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 one +1+1 1");
    herd_journal_destroy (&journal);

    //  An unknown magic is no journal: started afresh
    int bad = open (path, O_WRONLY | O_TRUNC);
    HERD_CHECK (bad >= 0);
    HERD_CHECK_INT (s_pwrite_all (bad, "HERDJ999 whatever", 17, 0, NULL), 0);
    close (bad);
    journal = herd_journal_open (sub, NULL, NULL, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_INT (stats.records, 0);
    HERD_CHECK_STR (stats.reason, "no journal header");
    HERD_CHECK_STR (stats.format, "");
    herd_journal_destroy (&journal);
    HERD_CHECK (s_file_starts (path, "HERDJ003"));

    //  A directory that cannot be made is reported
    HERD_CHECK (herd_journal_open ("/proc/herd/nope", NULL, NULL, &stats, error) == NULL);
    HERD_CHECK_CONTAINS (error, "/proc/herd/nope/journal");

    unlink (path);
    rmdir (sub);
    snprintf (sub, sizeof (sub), "%s/data", dir);
    rmdir (sub);
    rmdir (dir);
}
