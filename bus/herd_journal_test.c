//  herd_journal_test.c - the self test of herd_journal: replay, damage, full disks, old formats.
//
//  Its own file for its size. It writes and damages journal files by hand,
//  so it knows their bytes (herd_journal_format.h), not only the API.

#include "herd_journal.h"
#include "herd_journal_format.h"
#include "../common/herd_check.h"
#include "../common/herd_config.h"
#include "../common/herd_proto.h"
#include "../common/herd_record.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

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
                 herd_journal_checksum_fn *checksum_fn, const char *prefix, int count)
{
    char *data = NULL;
    size_t size = 0, capacity = 0;
    for (int i = 0; i < count; i++) {
        char line[64];
        int len = snprintf (line, sizeof (line), "AT Hill +0.000000000 %s%d +1+1 %d", prefix, i, i);
        herd_journal_encode (&data, &size, &capacity, mark, line, (size_t) len,
                  checksum_fn (line, (size_t) len));
    }
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    HERD_CHECK (fd >= 0);
    HERD_CHECK_INT (herd_journal_pwrite_all (fd, magic, HERD_JOURNAL_MAGIC_SIZE, 0, NULL), 0);
    HERD_CHECK_INT (herd_journal_pwrite_all (fd, data ? data : "", size, HERD_JOURNAL_MAGIC_SIZE, NULL), 0);
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
    char *data = herd_journal_read_file (fd, &size);
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

//  A new journal in a new directory; reopened, everything replays in order.
static void
s_test_create (const char *sub, const char *path)
{
    herd_journal_t *journal;
    herd_journal_stats_t stats;
    s_seen_t seen;
    //  A new journal in a new directory
    journal = s_reopen (sub, &seen, &stats);
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
}

//  A torn tail (crash in mid-write): the good prefix loads, the rest goes.
static void
s_test_torn (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

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
}

//  A flipped byte in record 10 of 1000: the other 999 load.
static void
s_test_flipped (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

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
}

//  Damage in the middle costs the damaged records alone; at the end it is a bad tail.
static void
s_test_damage (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

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
}

//  Writes that fail half-way leave only whole records on the file.
static void
s_test_full_disk (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

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
    herd_journal_destroy (&journal);
}

//  Failing for long: the buffer is dropped, the journal lost until compacted.
static void
s_test_lost (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

    //  Failing for long: past HERD_JOURNAL_MAX_BUFFER the buffer is dropped,
    //  the journal is lost until a compaction rewrites it
    journal = s_reopen (sub, &seen, &stats);
    off_t before = s_file_size (path);
    s_limit_files ((rlim_t) before);
    size_t line_size = 1 << 20;
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
}

//  The longest record: over HERD_JOURNAL_MAX_RECORD refused, the longest AT line kept.
static void
s_test_max_record (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

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
}

//  Compaction rewrites the file from what the caller says is live.
static void
s_test_compact (const char *sub, const char *path)
{
    (void) path;
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

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
}

//  How many of this process's fds hold path after it was unlinked.
static int
s_deleted_open (const char *path)
{
    char deleted[256];
    snprintf (deleted, sizeof (deleted), "%s (deleted)", path);
    int count = 0;
    DIR *fds = opendir ("/proc/self/fd");
    struct dirent *entry;
    while (fds && (entry = readdir (fds))) {
        char target[256];
        ssize_t size = readlinkat (dirfd (fds), entry->d_name, target, sizeof (target) - 1);
        if (size > 0) {
            target[size] = 0;
            count += strcmp (target, deleted) == 0;
        }
    }
    if (fds)
        closedir (fds);
    return count;
}

//  A compaction whose fdatasync runs in the journal's thread: what is
//  appended meanwhile reaches both files, so a crash before the swap finds
//  it all in the old journal, and the new one holds it after.
static void
s_test_compact_background (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal = s_reopen (sub, &seen, &stats);
    char compact[192];
    snprintf (compact, sizeof (compact), "%s.compact", path);
    HERD_CHECK_INT (herd_journal_compact_begin (journal), 0);
    herd_journal_compact_add (journal, "AT Hill +0.000000000 live +1+1 1", 32,
                              herd_record_hash ("AT Hill +0.000000000 live +1+1 1", 32));
    HERD_CHECK_INT (herd_journal_compact_start (journal), 0);
    HERD_CHECK (herd_journal_busy (journal));
    herd_journal_append (journal, "AT Hill +0.000000000 during1 +1+1 2", 35);
    herd_journal_append (journal, "AT Hill +0.000000000 during2 +1+1 3", 35);
    HERD_CHECK_INT (herd_journal_flush (journal), 0);
    //  Before the swap both files hold them: a crash now loses nothing
    HERD_CHECK (s_file_find (path, " during2 ") >= 0);
    HERD_CHECK (s_file_find (compact, " during2 ") >= 0);
    HERD_CHECK (s_file_find (path, " live ") < 0);
    //  The swap: the journal is the compacted file and what came since
    HERD_CHECK_INT (herd_journal_compact_poll (journal, true), 1);
    HERD_CHECK (!herd_journal_busy (journal));
    HERD_CHECK_INT (herd_journal_compact_poll (journal, false), 0);
    HERD_CHECK_INT (herd_journal_records (journal), 3);
    HERD_CHECK (s_file_size (compact) == -1);
    HERD_CHECK (s_file_find (path, " live ") >= 0);
    //  The journal it replaced is closed, by the journal's thread (its page
    //  cache is freed then, which the caller need not wait for)
    for (int i = 0; i < 500 && s_deleted_open (path) > 0; i++)
        zclock_sleep (10);
    HERD_CHECK_INT (s_deleted_open (path), 0);
    herd_journal_append (journal, "AT Hill +0.000000000 after3 +1+1 4", 34);
    //  A background fdatasync a second later, collected by a later tick
    herd_journal_tick (journal);
    HERD_CHECK_INT (herd_journal_flush (journal), 0);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 4);
    HERD_CHECK_STR (seen.first, "AT Hill +0.000000000 live +1+1 1");
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 after3 +1+1 4");
    //  A compaction begun while one runs in the background waits for it
    HERD_CHECK_INT (herd_journal_compact_begin (journal), 0);
    HERD_CHECK_INT (herd_journal_compact_start (journal), 0);
    herd_journal_append (journal, "AT Hill +0.000000000 late +1+1 5", 32);
    HERD_CHECK_INT (herd_journal_compact_begin (journal), 0);
    HERD_CHECK (!herd_journal_busy (journal));
    herd_journal_compact_add (journal, "AT Hill +0.000000000 late +1+1 5", 32,
                              herd_record_hash ("AT Hill +0.000000000 late +1+1 5", 32));
    HERD_CHECK_INT (herd_journal_compact_commit (journal), 0);
    herd_journal_destroy (&journal);
    journal = s_reopen (sub, &seen, &stats);
    HERD_CHECK_INT (stats.records, 1);
    HERD_CHECK_STR (seen.last, "AT Hill +0.000000000 late +1+1 5");
    herd_journal_destroy (&journal);
}

//  A HERDJ002 journal loads, and is converted to HERDJ003.
static void
s_test_v2 (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    herd_journal_t *journal;

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
}

//  HERDJ001 journals, whole, torn or empty, are converted too.
static void
s_test_v1 (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    s_seen_t seen;
    char error[256] = "";
    herd_journal_t *journal;
    char compact[192];
    snprintf (compact, sizeof (compact), "%s.compact", path);

    //  A HERDJ001 journal (checksums: the hash before HERDJ002) too
    s_write_journal (path, HERD_JOURNAL_MAGIC_V1, NULL, herd_journal_hash_v1, "old", 50);
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
    s_write_journal (path, HERD_JOURNAL_MAGIC_V1, NULL, herd_journal_hash_v1, "old", 50);
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
    s_write_journal (path, HERD_JOURNAL_MAGIC_V1, NULL, herd_journal_hash_v1, "old", 0);
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
}

//  An unknown magic is no journal; a directory that cannot be made is reported.
static void
s_test_unknown (const char *sub, const char *path)
{
    herd_journal_stats_t stats;
    char error[256] = "";
    herd_journal_t *journal;

    //  An unknown magic is no journal: started afresh
    int bad = open (path, O_WRONLY | O_TRUNC);
    HERD_CHECK (bad >= 0);
    HERD_CHECK_INT (herd_journal_pwrite_all (bad, "HERDJ999 whatever", 17, 0, NULL), 0);
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
    s_test_create (sub, path);
    s_test_torn (sub, path);
    s_test_flipped (sub, path);
    s_test_damage (sub, path);
    s_test_full_disk (sub, path);
    s_test_lost (sub, path);
    s_test_max_record (sub, path);
    s_test_compact (sub, path);
    s_test_compact_background (sub, path);
    s_test_v2 (sub, path);
    s_test_v1 (sub, path);
    s_test_unknown (sub, path);

    unlink (path);
    rmdir (sub);
    snprintf (sub, sizeof (sub), "%s/data", dir);
    rmdir (sub);
    rmdir (dir);
}
