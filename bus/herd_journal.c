//  herd_journal.c - a bus's table on disk: an append-only journal of records.

#include "herd_journal.h"
#include "herd_journal_format.h"
#include "../common/herd_check.h"
#include "../common/herd_config.h"
#include "../common/herd_proto.h"
#include "../common/herd_record.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct _herd_journal_t {
    char *path;                 //  DIR/journal
    char *dir;                  //  DIR, fsync'd after a rename
    char *compact_path;         //  DIR/journal.compact
    uint64_t end;               //  end of the last whole record in the file
    char *buffer;               //  appended, not yet written (whole records)
    size_t size;
    size_t capacity;
    size_t records;             //  records appended since open or compaction
    int64_t retry_ms;           //  a failing write is not retried before
    int64_t last_sync_ms;
    int fd;
    int error;                  //  errno of the last failure
    bool tail_dirty;            //  a cut back to end failed: bytes may follow it
    bool failing;               //  the last write failed
    bool lost;                  //  records dropped: only a rewrite makes it whole
    bool unsynced;              //  writes since the last fdatasync
    //  A compaction in progress
    uint64_t compact_end;
    char *compact_buffer;
    size_t compact_size;
    size_t compact_capacity;
    size_t compact_records;
    int compact_fd;             //  -1 unless compacting
    int compact_error;          //  errno of a failed write; the commit fails
    //  In the background (herd_journal_compact_start): the compaction file's
    //  fdatasync is in flight; appends go to both files meanwhile
    char *tail;                 //  appended while syncing, for the compaction file
    size_t tail_size;
    size_t tail_capacity;
    size_t tail_records;
    bool compact_syncing;
    //  The syncer thread: one fdatasync at a time, off the caller's thread
    bool syncer_started;
    bool job_busy;              //  a job handed over and not yet collected
    bool job_finished;          //  ...and done: job_error holds its result
    bool stopping;
    int job_fd;                 //  a dup to fdatasync, -1 when none is waiting
    int job_error;
    int close_fd;               //  a replaced journal to close, -1 when none
    pthread_t syncer;
    pthread_mutex_t mutex;
    pthread_cond_t wake;        //  a job for the syncer, or stop
    pthread_cond_t done;        //  the syncer finished its job
};

//  The checksum of HERDJ001 journals: herd_record_hash as it was until
//  HERDJ002, FNV-1a a byte a step, then a splitmix64 finaliser. Kept only to
//  read (and convert) journals written before.
uint64_t
herd_journal_hash_v1 (const char *line, size_t size)
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
int
herd_journal_pwrite_all (int fd, const char *data, size_t size, uint64_t offset,
                         size_t *written_p)
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
void
herd_journal_encode (char **buffer, size_t *size, size_t *capacity, const char *mark,
                     const char *line, size_t line_size, uint64_t hash)
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
char *
herd_journal_read_file (int fd, size_t *size_p)
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
s_check (const char *data, size_t size, size_t at, const char *mark,
         herd_journal_checksum_fn *checksum_fn, char *reason)
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
s_replay_v2 (const char *data, size_t size, herd_journal_checksum_fn *checksum_fn,
             herd_journal_fn *fn, void *arg, herd_journal_stats_t *stats)
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
    self->job_fd = -1;
    self->close_fd = -1;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->wake, NULL);
    pthread_cond_init (&self->done, NULL);
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
static herd_journal_checksum_fn *
s_sniff_format (const char *data, size_t size, herd_journal_stats_t *stats, bool *v3_p,
                bool *bad_header_p)
{
    bool v3 = size >= HERD_JOURNAL_MAGIC_SIZE
              && memcmp (data, HERD_JOURNAL_FORMAT, HERD_JOURNAL_MAGIC_SIZE) == 0;
    herd_journal_checksum_fn *old_checksum = NULL;
    if (size >= HERD_JOURNAL_MAGIC_SIZE
        && memcmp (data, HERD_JOURNAL_MAGIC_V2, HERD_JOURNAL_MAGIC_SIZE) == 0)
        old_checksum = herd_record_hash;
    else
    if (size >= HERD_JOURNAL_MAGIC_SIZE
        && memcmp (data, HERD_JOURNAL_MAGIC_V1, HERD_JOURNAL_MAGIC_SIZE) == 0)
        old_checksum = herd_journal_hash_v1;
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
s_open_upgrade (herd_journal_t *self, char *data, size_t size,
                herd_journal_checksum_fn *old_checksum, herd_journal_fn *fn, void *arg,
                herd_journal_stats_t *stats, char *error)
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
    char *data = herd_journal_read_file (self->fd, &size);
    if (!data) {
        snprintf (error, 256, "cannot read %s: %s", self->path, strerror (errno));
        herd_journal_destroy (&self);
        return NULL;
    }
    bool v3, bad_header;
    herd_journal_checksum_fn *old_checksum = s_sniff_format (data, size, stats, &v3, &bad_header);
    int rc = old_checksum
                 ? s_open_upgrade (self, data, size, old_checksum, fn, arg, stats, error)
                 : s_open_replay (self, data, size, v3, bad_header, fn, arg, stats, error);
    if (rc == -1)
        herd_journal_destroy (&self);
    return self;
}

//  -------------------------------------------------------------------------
//  The syncer: a thread that fdatasyncs what it is handed, so that the
//  caller's loop never waits for the disk. An fdatasync of a file being
//  appended to takes as long as the disk needs for everything dirty before
//  it (on ext4, with data=ordered, for the whole file system): 70 ms and
//  more under a heavy load on this machine, every second. It also closes
//  the journal a compaction replaced: the last close of that unlinked file
//  frees its page cache, 4-18 ms at 50x32 here (perf trace on the bus).

static void *
s_syncer (void *arg)
{
    herd_journal_t *self = (herd_journal_t *) arg;
    pthread_setname_np (pthread_self (), "herd-sync");      //  for top -H, perf, gdb
    pthread_mutex_lock (&self->mutex);
    while (true) {
        while (self->job_fd < 0 && self->close_fd < 0 && !self->stopping)
            pthread_cond_wait (&self->wake, &self->mutex);
        if (self->close_fd >= 0) {
            int fd = self->close_fd;
            self->close_fd = -1;
            pthread_mutex_unlock (&self->mutex);
            close (fd);
            pthread_mutex_lock (&self->mutex);
            continue;
        }
        if (self->job_fd < 0)
            break;                      //  stopping, and nothing left to do
        int fd = self->job_fd;
        self->job_fd = -1;
        pthread_mutex_unlock (&self->mutex);
        int error = fdatasync (fd) == -1 ? errno : 0;
        close (fd);
        pthread_mutex_lock (&self->mutex);
        self->job_error = error;
        self->job_finished = true;
        pthread_cond_broadcast (&self->done);
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

//  Hand the syncer fd to fdatasync (a dup: the syncer closes it, so a
//  compaction may close the file meanwhile). 0, or -1 (fd closed).
static int
s_job_start (herd_journal_t *self, int fd)
{
    if (!self->syncer_started) {
        if (pthread_create (&self->syncer, NULL, s_syncer, self) != 0) {
            close (fd);
            errno = EAGAIN;
            return -1;
        }
        self->syncer_started = true;
    }
    pthread_mutex_lock (&self->mutex);
    self->job_fd = fd;
    self->job_busy = true;
    self->job_finished = false;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->mutex);
    return 0;
}

//  Close fd, a journal a compaction replaced, in the syncer if it runs
//  and has none to close yet; here otherwise.
static void
s_close_later (herd_journal_t *self, int fd)
{
    bool handed = false;
    if (self->syncer_started) {
        pthread_mutex_lock (&self->mutex);
        if (self->close_fd < 0 && !self->stopping) {
            self->close_fd = fd;
            handed = true;
            pthread_cond_signal (&self->wake);
        }
        pthread_mutex_unlock (&self->mutex);
    }
    if (!handed)
        close (fd);
}

//  True when the job handed over has finished (wait: once it has), its
//  result in *error (0 or an errno); false while it runs, or with none.
static bool
s_job_collect (herd_journal_t *self, bool wait, int *error)
{
    if (!self->job_busy)
        return false;
    pthread_mutex_lock (&self->mutex);
    while (wait && !self->job_finished)
        pthread_cond_wait (&self->done, &self->mutex);
    bool finished = self->job_finished;
    if (finished) {
        *error = self->job_error;
        self->job_busy = self->job_finished = false;
    }
    pthread_mutex_unlock (&self->mutex);
    return finished;
}

//  An fdatasync failed: what the kernel failed to write is in no known
//  state (Linux may drop the dirty pages and report success next time),
//  so only a rewrite from the table makes the journal whole again.
static void
s_sync_failed (herd_journal_t *self, int error)
{
    free (self->buffer);
    self->buffer = NULL;
    self->size = self->capacity = 0;
    self->lost = self->failing = true;
    self->error = error;
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
    free (self->tail);
    self->tail = NULL;
    self->tail_size = self->tail_capacity = self->tail_records = 0;
    self->compact_syncing = false;
}

void
herd_journal_destroy (herd_journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_journal_t *self = *self_p;
    int error;
    if (s_job_collect (self, true, &error) && error && !self->compact_syncing)
        s_sync_failed (self, error);
    if (self->fd >= 0) {
        self->failing = false;          //  one last try, now
        herd_journal_flush (self);
        herd_journal_sync (self);
        close (self->fd);
    }
    s_compact_abandon (self);           //  the old journal holds all a background one had
    if (self->syncer_started) {
        pthread_mutex_lock (&self->mutex);
        self->stopping = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->mutex);
        pthread_join (self->syncer, NULL);
    }
    pthread_cond_destroy (&self->wake);
    pthread_cond_destroy (&self->done);
    pthread_mutex_destroy (&self->mutex);
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
    if (self->compact_syncing) {
        //  The compaction file must hold it too: it becomes the journal
        herd_journal_encode (&self->tail, &self->tail_size, &self->tail_capacity,
                             HERD_JOURNAL_MARK, line, size, hash);
        self->tail_records++;
    }
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
    herd_journal_encode (&self->buffer, &self->size, &self->capacity, HERD_JOURNAL_MARK, line,
                         size, hash);
    //  A loop turn may apply tens of thousands of records (batches of 64 KB
    //  from the gateway and the neighbours): write them out as they come,
    //  not in one buffer that grows to the turn's size and stays that big
    if (self->size >= HERD_JOURNAL_WRITE)
        herd_journal_flush (self);
    return 0;
}

//  Write *size bytes of data at the end of the compaction's file and empty
//  them; a failed write fails the compaction.
static void
s_compact_put (herd_journal_t *self, const char *data, size_t *size)
{
    if (self->compact_error == 0 && *size > 0
        && herd_journal_pwrite_all (self->compact_fd, data, *size, self->compact_end, NULL) == -1)
        self->compact_error = errno;
    self->compact_end += *size;
    *size = 0;
}

//  Write what was appended during a background compaction to its file; a
//  failure fails the compaction (the old journal holds it all).
static void
s_tail_write (herd_journal_t *self)
{
    s_compact_put (self, self->tail, &self->tail_size);
}

int
herd_journal_flush (herd_journal_t *self)
{
    if (self->compact_syncing)
        s_tail_write (self);
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
    if (herd_journal_pwrite_all (self->fd, self->buffer, self->size, self->end, &written) == 0) {
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
        int error = errno;
        s_sync_failed (self, error);
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
    int error;
    if (!self->compact_syncing && s_job_collect (self, false, &error) && error)
        s_sync_failed (self, error);
    int64_t now = zclock_mono ();
    if (!self->unsynced || self->job_busy || now - self->last_sync_ms < 1000)
        return;
    int fd = dup (self->fd);
    if (fd >= 0 && s_job_start (self, fd) == 0) {
        self->unsynced = false;
        self->last_sync_ms = now;
    }
    else
        herd_journal_sync (self);       //  no thread: here, then
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
    //  One in the background finishes first (its result is then known)
    herd_journal_compact_poll (self, true);
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
    s_compact_put (self, self->compact_buffer, &self->compact_size);
}

void
herd_journal_compact_add (herd_journal_t *self, const char *line, size_t size,
                          uint64_t hash)
{
    if (self->compact_fd < 0 || self->compact_error || size > HERD_JOURNAL_MAX_RECORD)
        return;
    herd_journal_encode (&self->compact_buffer, &self->compact_size, &self->compact_capacity,
              HERD_JOURNAL_MARK, line, size, hash);
    self->compact_records++;
    if (self->compact_size >= HERD_JOURNAL_WRITE)
        s_compact_write (self);
}

//  The journal becomes the compaction file, whose records (and tail) are
//  written and whose snapshot is fdatasync'd: rename it over the journal,
//  fsync the directory, swap. 0, or -1 (errno set; the old journal stays).
static int
s_compact_swap (herd_journal_t *self)
{
    if (rename (self->compact_path, self->path) == -1) {
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
    s_close_later (self, self->fd);
    self->fd = self->compact_fd;
    self->compact_fd = -1;
    self->end = self->compact_end;
    self->tail_dirty = false;
    self->records = self->compact_records + self->tail_records;
    //  Written after the snapshot's fdatasync: the next one covers them
    self->unsynced = self->tail_records > 0;
    //  What was buffered is in the table the caller rewrote (or in the tail)
    free (self->buffer);
    self->buffer = NULL;
    self->size = self->capacity = 0;
    self->failing = self->lost = false;
    self->error = 0;
    self->last_sync_ms = zclock_mono ();
    s_compact_abandon (self);
    return 0;
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
    if (rc == -1) {
        int error = errno;
        s_compact_abandon (self);
        errno = error;
        return -1;
    }
    return s_compact_swap (self);
}

int
herd_journal_compact_start (herd_journal_t *self)
{
    if (self->compact_fd < 0 || self->job_busy) {
        errno = self->compact_fd < 0 ? EBADF : EBUSY;
        s_compact_abandon (self);
        return -1;
    }
    s_compact_write (self);
    int fd = self->compact_error ? -1 : dup (self->compact_fd);
    if (fd == -1 || s_job_start (self, fd) == -1) {
        int error = self->compact_error ? self->compact_error : errno;
        s_compact_abandon (self);
        errno = error;
        return -1;
    }
    self->compact_syncing = true;
    self->tail_size = self->tail_records = 0;
    return 0;
}

int
herd_journal_compact_poll (herd_journal_t *self, bool wait)
{
    int error = 0;
    if (!self->compact_syncing || !s_job_collect (self, wait, &error))
        return 0;
    s_tail_write (self);
    if (!error)
        error = self->compact_error;
    if (error) {
        s_compact_abandon (self);
        errno = error;
        return -1;
    }
    return s_compact_swap (self) == 0 ? 1 : -1;
}

bool
herd_journal_busy (herd_journal_t *self)
{
    return self->job_busy || self->compact_syncing;
}
