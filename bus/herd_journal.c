//  herd_journal.c - a bus's table on disk: an append-only journal of records.

#include "herd_journal.h"
#include "../common/herd_check.h"
#include "../common/herd_record.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HERD_JOURNAL_MAGIC      "HERDJ002"      //  checksums: herd_record_hash
#define HERD_JOURNAL_MAGIC_V1   "HERDJ001"      //  checksums: s_hash_v1; converted
#define HERD_JOURNAL_MAGIC_SIZE 8
#define HERD_JOURNAL_HEAD       12              //  length (4) + checksum (8)
#define HERD_JOURNAL_MAX_RECORD (64u << 20)     //  a record larger is corruption
#define HERD_JOURNAL_WRITE      (1u << 20)      //  buffered bytes written at once

struct _herd_journal_t {
    char *path;                 //  DIR/journal
    char *compact_path;         //  DIR/journal.compact
    int fd;
    int compact_fd;             //  -1 unless compacting
    char *buffer;               //  appended, not yet written
    size_t size;
    size_t capacity;
    size_t records;
    bool unsynced;              //  writes since the last fsync
    int64_t last_sync_ms;
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

//  The checksum function of a journal's records, by its magic; NULL when
//  data does not start with a known one.
static s_checksum_fn *
s_checksum_of (const char *data, size_t size)
{
    if (size < HERD_JOURNAL_MAGIC_SIZE)
        return NULL;
    if (memcmp (data, HERD_JOURNAL_MAGIC, HERD_JOURNAL_MAGIC_SIZE) == 0)
        return herd_record_hash;
    if (memcmp (data, HERD_JOURNAL_MAGIC_V1, HERD_JOURNAL_MAGIC_SIZE) == 0)
        return s_hash_v1;
    return NULL;
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

//  Write all of data to fd; 0 or -1.
static int
s_write_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t rc = write (fd, data, size);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        data += rc;
        size -= (size_t) rc;
    }
    return 0;
}

//  Encode one record into a buffer (grown as needed).
static void
s_encode (char **buffer, size_t *size, size_t *capacity, const char *line, size_t line_size,
          uint64_t hash)
{
    size_t need = *size + HERD_JOURNAL_HEAD + line_size;
    if (need > *capacity) {
        size_t grown = *capacity ? *capacity : 65536;
        while (grown < need)
            grown *= 2;
        char *data = (char *) realloc (*buffer, grown);
        if (!data)
            abort ();           //  out of memory: nothing sensible to do
        *buffer = data;
        *capacity = grown;
    }
    unsigned char *head = (unsigned char *) *buffer + *size;
    s_put_u32 (head, (uint32_t) line_size);
    s_put_u64 (head + 4, hash);
    memcpy (*buffer + *size + HERD_JOURNAL_HEAD, line, line_size);
    *size = need;
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

//  Replay the records of data, checking each with checksum_fn (the
//  function of data's magic; NULL when it has none); fills stats, returns
//  the good length.
static size_t
s_replay (const char *data, size_t size, s_checksum_fn *checksum_fn, herd_journal_fn *fn,
          void *arg, herd_journal_stats_t *stats)
{
    if (!checksum_fn) {
        if (size > 0)
            snprintf (stats->reason, sizeof (stats->reason), "no journal header");
        return 0;
    }
    size_t at = HERD_JOURNAL_MAGIC_SIZE;
    while (at < size) {
        if (size - at < HERD_JOURNAL_HEAD) {
            snprintf (stats->reason, sizeof (stats->reason), "truncated record header");
            break;
        }
        const unsigned char *head = (const unsigned char *) data + at;
        uint32_t length = s_get_u32 (head);
        uint64_t checksum = s_get_u64 (head + 4);
        if (length > HERD_JOURNAL_MAX_RECORD) {
            snprintf (stats->reason, sizeof (stats->reason), "corrupt record length %u", length);
            break;
        }
        if (size - at - HERD_JOURNAL_HEAD < length) {
            snprintf (stats->reason, sizeof (stats->reason), "truncated record");
            break;
        }
        const char *line = data + at + HERD_JOURNAL_HEAD;
        if (checksum_fn (line, length) != checksum) {
            snprintf (stats->reason, sizeof (stats->reason), "checksum mismatch");
            break;
        }
        if (fn)
            fn (line, length, arg);
        stats->records++;
        at += HERD_JOURNAL_HEAD + length;
    }
    return at;
}

//  Passes each record of a HERDJ001 journal to the caller's function, and
//  to the compaction that rewrites it with HERDJ002 checksums.
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

herd_journal_t *
herd_journal_open (const char *dir, herd_journal_fn *fn, void *arg, herd_journal_stats_t *stats,
                   char *error)
{
    memset (stats, 0, sizeof (*stats));
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
    free (copy);
    herd_journal_t *self = (herd_journal_t *) calloc (1, sizeof (herd_journal_t));
    if (!self) {
        snprintf (error, 256, "out of memory");
        return NULL;
    }
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
        return NULL;
    }
    size_t size = 0;
    char *data = s_read_file (self->fd, &size);
    if (!data) {
        snprintf (error, 256, "cannot read %s: %s", self->path, strerror (errno));
        herd_journal_destroy (&self);
        return NULL;
    }
    s_checksum_fn *checksum_fn = s_checksum_of (data, size);
    //  A HERDJ001 journal is converted as it is replayed: its good records,
    //  with HERDJ002 checksums, go to journal.compact, which replaces it the
    //  way a compaction does (fsync, rename). A crash meanwhile leaves the
    //  old journal, converted again at the next start
    bool upgrade = checksum_fn == s_hash_v1;
    if (upgrade && herd_journal_compact_begin (self) == -1) {
        snprintf (error, 256, "cannot convert %s: cannot write %s: %s", self->path,
                  self->compact_path, strerror (errno));
        free (data);
        herd_journal_destroy (&self);
        return NULL;
    }
    s_convert_t convert = {self, fn, arg};
    size_t good = upgrade ? s_replay (data, size, checksum_fn, s_convert_record, &convert, stats)
                          : s_replay (data, size, checksum_fn, fn, arg, stats);
    free (data);
    stats->bytes = good;
    stats->discarded = size - good;
    if (upgrade) {
        if (herd_journal_compact_commit (self) == -1) {
            snprintf (error, 256, "cannot convert %s: cannot replace it with %s: %s",
                      self->path, self->compact_path, strerror (errno));
            herd_journal_destroy (&self);
            return NULL;
        }
        stats->upgraded = true;
        self->records = stats->records;
        return self;                    //  self->fd is at the end of the new file
    }
    self->records = stats->records;
    if (good == 0) {
        //  New (or unreadable) journal: start it with the header
        if (ftruncate (self->fd, 0) == -1
            || pwrite (self->fd, HERD_JOURNAL_MAGIC, HERD_JOURNAL_MAGIC_SIZE, 0)
                   != HERD_JOURNAL_MAGIC_SIZE) {
            snprintf (error, 256, "cannot write %s: %s", self->path, strerror (errno));
            herd_journal_destroy (&self);
            return NULL;
        }
        good = HERD_JOURNAL_MAGIC_SIZE;
    }
    else
    if (good < size && ftruncate (self->fd, (off_t) good) == -1) {
        snprintf (error, 256, "cannot cut the bad tail of %s: %s", self->path, strerror (errno));
        herd_journal_destroy (&self);
        return NULL;
    }
    lseek (self->fd, (off_t) good, SEEK_SET);
    self->last_sync_ms = zclock_mono ();
    return self;
}

void
herd_journal_destroy (herd_journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_journal_t *self = *self_p;
    if (self->fd >= 0) {
        herd_journal_flush (self);
        fdatasync (self->fd);
        close (self->fd);
    }
    if (self->compact_fd >= 0) {
        close (self->compact_fd);
        unlink (self->compact_path);
    }
    free (self->buffer);
    free (self->path);
    free (self->compact_path);
    free (self);
    *self_p = NULL;
}

void
herd_journal_append (herd_journal_t *self, const char *line, size_t size)
{
    herd_journal_append_hashed (self, line, size, herd_record_hash (line, size));
}

//  Encode one record into the buffer, and count it.
static void
s_append (herd_journal_t *self, const char *line, size_t size, uint64_t hash)
{
    s_encode (&self->buffer, &self->size, &self->capacity, line, size, hash);
    self->records++;
}

void
herd_journal_append_hashed (herd_journal_t *self, const char *line, size_t size, uint64_t hash)
{
    s_append (self, line, size, hash);
    //  A loop turn may apply tens of thousands of records (batches of 64 KB
    //  from the gateway and the neighbours): write them out as they come,
    //  not in one buffer that grows to the turn's size and stays that big
    if (self->size >= HERD_JOURNAL_WRITE)
        herd_journal_flush (self);
}

int
herd_journal_flush (herd_journal_t *self)
{
    if (self->size == 0)
        return 0;
    if (s_write_all (self->fd, self->buffer, self->size) == -1)
        return -1;
    self->size = 0;
    self->unsynced = true;
    return 0;
}

void
herd_journal_tick (herd_journal_t *self)
{
    if (self->unsynced && zclock_mono () - self->last_sync_ms >= 1000) {
        fdatasync (self->fd);
        self->unsynced = false;
        self->last_sync_ms = zclock_mono ();
    }
}

int
herd_journal_sync (herd_journal_t *self)
{
    if (!self->unsynced)
        return 0;
    if (fdatasync (self->fd) == -1)
        return -1;
    self->unsynced = false;
    self->last_sync_ms = zclock_mono ();
    return 0;
}

bool
herd_journal_lost (herd_journal_t *self)
{
    (void) self;
    return false;
}

size_t
herd_journal_records (herd_journal_t *self)
{
    return self->records;
}

int
herd_journal_compact_begin (herd_journal_t *self)
{
    herd_journal_flush (self);
    self->compact_fd = open (self->compact_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (self->compact_fd == -1)
        return -1;
    self->records = 0;
    return s_write_all (self->compact_fd, HERD_JOURNAL_MAGIC, HERD_JOURNAL_MAGIC_SIZE);
}

void
herd_journal_compact_add (herd_journal_t *self, const char *line, size_t size,
                          uint64_t hash)
{
    s_append (self, line, size, hash);
    if (self->size >= HERD_JOURNAL_WRITE
        && s_write_all (self->compact_fd, self->buffer, self->size) == 0)
        self->size = 0;
}

int
herd_journal_compact_commit (herd_journal_t *self)
{
    int rc = s_write_all (self->compact_fd, self->buffer, self->size);
    self->size = 0;
    if (rc == 0)
        rc = fdatasync (self->compact_fd);
    if (rc == 0)
        rc = rename (self->compact_path, self->path);
    if (rc == -1) {
        close (self->compact_fd);
        self->compact_fd = -1;
        unlink (self->compact_path);
        return -1;
    }
    close (self->fd);
    self->fd = self->compact_fd;
    self->compact_fd = -1;
    self->unsynced = false;
    self->last_sync_ms = zclock_mono ();
    return 0;
}

//  -------------------------------------------------------------------------
//  Self test

//  Collects replayed lines for the self test.
typedef struct {
    int count;
    char first[128];
    char last[128];
} s_seen_t;

static void
s_collect (const char *line, size_t size, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    if (seen->count++ == 0)
        snprintf (seen->first, sizeof (seen->first), "%.*s", (int) size, line);
    snprintf (seen->last, sizeof (seen->last), "%.*s", (int) size, line);
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

//  Write a HERDJ001 journal by hand, as a node before HERDJ002 did: its
//  magic, then count records "AT Hill +0.000000000 oldN +1+1 N" with
//  s_hash_v1 checksums. For the self test.
static void
s_write_v1 (const char *path, int count)
{
    char *data = NULL;
    size_t size = 0, capacity = 0;
    for (int i = 0; i < count; i++) {
        char line[64];
        int len = snprintf (line, sizeof (line), "AT Hill +0.000000000 old%d +1+1 %d", i, i);
        s_encode (&data, &size, &capacity, line, (size_t) len, s_hash_v1 (line, (size_t) len));
    }
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    HERD_CHECK (fd >= 0);
    HERD_CHECK_INT (s_write_all (fd, HERD_JOURNAL_MAGIC_V1, HERD_JOURNAL_MAGIC_SIZE), 0);
    HERD_CHECK_INT (s_write_all (fd, data ? data : "", size), 0);
    close (fd);
    free (data);
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
    s_seen_t seen = {0, "", ""};

    //  A new journal in a new directory
    herd_journal_t *journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK_INT (stats.records, 0);
    HERD_CHECK_INT (stats.discarded, 0);
    for (int i = 0; i < 100; i++) {
        char line[64];
        int len = snprintf (line, sizeof (line), "AT Hill +0.000000000 c%d +1+1 %d", i, i);
        herd_journal_append (journal, line, (size_t) len);
    }
    HERD_CHECK_INT (herd_journal_flush (journal), 0);
    herd_journal_tick (journal);
    HERD_CHECK_INT (herd_journal_records (journal), 100);
    herd_journal_destroy (&journal);
    HERD_CHECK (journal == NULL);
    HERD_CHECK (s_file_starts (path, "HERDJ002"));

    //  Reopen: everything replays, in order
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK_INT (stats.records, 100);
    HERD_CHECK_INT (seen.count, 100);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 c99 +1+1 99");
    herd_journal_destroy (&journal);

    //  A torn tail (crash in mid-write): the good prefix loads, the rest goes
    off_t full = s_file_size (path);
    HERD_CHECK (truncate (path, full - 5) == 0);
    seen.count = 0;
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK_INT (stats.records, 99);
    HERD_CHECK_STR (stats.reason, "truncated record");
    HERD_CHECK (stats.discarded > 0);
    //  ...and appends after the cut are readable again
    herd_journal_append (journal, "AT Hill +0.000000000 new +1+1 1", 31);
    herd_journal_destroy (&journal);
    seen.count = 0;
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK_INT (stats.records, 100);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 new +1+1 1");
    herd_journal_destroy (&journal);

    //  A corrupt record in the middle: what precedes it survives
    int fd = open (path, O_RDWR);
    HERD_CHECK (fd >= 0);
    char content[8192];
    ssize_t got = pread (fd, content, sizeof (content), 0);
    HERD_CHECK (got > 0);
    char *victim = (char *) memmem (content, (size_t) got, " c45 ", 5);
    HERD_CHECK (victim);
    HERD_CHECK (pwrite (fd, "X", 1, victim + 1 - content) == 1);
    close (fd);
    seen.count = 0;
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK_STR (stats.reason, "checksum mismatch");
    HERD_CHECK_INT (stats.records, 45);
    HERD_CHECK_INT (seen.count, stats.records);

    //  Compaction rewrites the file from what the caller says is live
    HERD_CHECK_INT (herd_journal_compact_begin (journal), 0);
    herd_journal_compact_add (journal, "AT Hill +0.000000000 only +1+1 1", 32,
                              herd_record_hash ("AT Hill +0.000000000 only +1+1 1", 32));
    HERD_CHECK_INT (herd_journal_compact_commit (journal), 0);
    herd_journal_append (journal, "AT Hill +0.000000000 after +1+1 2", 33);
    herd_journal_destroy (&journal);
    seen.count = 0;
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK_INT (stats.records, 2);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after +1+1 2");
    herd_journal_destroy (&journal);

    //  A HERDJ001 journal (checksums: the hash before HERDJ002) loads, and is
    //  converted to HERDJ002 in place
    char compact[192];
    snprintf (compact, sizeof (compact), "%s.compact", path);
    s_write_v1 (path, 50);
    memset (&seen, 0, sizeof (seen));
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_INT (stats.records, 50);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_INT (seen.count, 50);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 old0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 old49 +1+1 49");
    HERD_CHECK_INT (herd_journal_records (journal), 50);
    HERD_CHECK (s_file_starts (path, "HERDJ002"));
    HERD_CHECK (s_file_size (compact) == -1);
    //  ...appends go after the converted records...
    herd_journal_append (journal, "AT Hill +0.000000000 after +1+1 3", 33);
    herd_journal_destroy (&journal);
    //  ...and a reopen replays the same records, with the new checksums
    memset (&seen, 0, sizeof (seen));
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_INT (stats.records, 51);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 old0 +1+1 0");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after +1+1 3");
    herd_journal_destroy (&journal);
    memset (&seen, 0, sizeof (seen));
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK_INT (stats.records, 51);
    herd_journal_destroy (&journal);

    //  A HERDJ001 journal with a torn tail: the good prefix is converted
    s_write_v1 (path, 50);
    HERD_CHECK (truncate (path, s_file_size (path) - 5) == 0);
    memset (&seen, 0, sizeof (seen));
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_INT (stats.records, 49);
    HERD_CHECK_STR (stats.reason, "truncated record");
    HERD_CHECK (stats.discarded > 0);
    herd_journal_destroy (&journal);
    memset (&seen, 0, sizeof (seen));
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_INT (stats.records, 49);
    HERD_CHECK_INT (stats.discarded, 0);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 old48 +1+1 48");
    herd_journal_destroy (&journal);

    //  An empty HERDJ001 journal becomes an empty HERDJ002 one
    s_write_v1 (path, 0);
    journal = herd_journal_open (sub, NULL, NULL, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK (stats.upgraded);
    HERD_CHECK_INT (stats.records, 0);
    herd_journal_append (journal, "AT Hill +0.000000000 one +1+1 1", 31);
    herd_journal_destroy (&journal);
    HERD_CHECK (s_file_starts (path, "HERDJ002"));
    memset (&seen, 0, sizeof (seen));
    journal = herd_journal_open (sub, s_collect, &seen, &stats, error);
    HERD_CHECK_INT (stats.records, 1);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 one +1+1 1");
    herd_journal_destroy (&journal);

    //  An unknown magic is no journal: started afresh
    int bad = open (path, O_WRONLY | O_TRUNC);
    HERD_CHECK (bad >= 0);
    HERD_CHECK_INT (s_write_all (bad, "HERDJ999 whatever", 17), 0);
    close (bad);
    journal = herd_journal_open (sub, NULL, NULL, &stats, error);
    HERD_CHECK (journal);
    HERD_CHECK (!stats.upgraded);
    HERD_CHECK_INT (stats.records, 0);
    HERD_CHECK_STR (stats.reason, "no journal header");
    herd_journal_destroy (&journal);
    HERD_CHECK (s_file_starts (path, "HERDJ002"));

    //  A directory that cannot be made is reported
    HERD_CHECK (herd_journal_open ("/proc/herd/nope", NULL, NULL, &stats, error) == NULL);
    HERD_CHECK_CONTAINS (error, "/proc/herd/nope/journal");

    unlink (path);
    rmdir (sub);
    snprintf (sub, sizeof (sub), "%s/data", dir);
    rmdir (sub);
    rmdir (dir);
}
