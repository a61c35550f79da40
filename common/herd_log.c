//  herd_log.c - a node's log file: buffered whole lines, microsecond timestamps.

#include "herd_log.h"
#include "herd_alive.h"
#include "herd_check.h"
#include "herd_proto.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

//  Bytes kept before a write. At 50x32 the log grows 175 MB a second, so a
//  buffer lasts as long as the writer may block in write(2) while the
//  journal's fdatasync commits the file system: 256 KB (1.5 ms) made the
//  gateway wait for the writer, p99.9 40 ms; 4 MB (23 ms), 20 ms. Its
//  pages are touched only as lines fill them: an idle node does not pay
#define HERD_LOG_BUFFER  (4 * 1024 * 1024)
#define HERD_LOG_DATA_MAX 1024         //  client bytes shown per event
#define HERD_LOG_HEAD_MAX 160          //  a header is cut to this less one byte
#define HERD_LOG_TAIL_MAX 64           //  " ...(N bytes in all)\n" and more

//  Two buffers: loggers fill one while the writer thread writes the other
//  to the file, so no logging thread waits for the disk, and the writing
//  can run on another core. A logger waits only when it fills a buffer
//  before the writer has written the other: the log loses no line.
//
//  The writer needs the mutex only to hand over a second-old buffer by
//  itself or to wake a waiting logger: it sleeps on a semaphore and frees
//  its buffer with an atomic store. (Sleeping on a condition variable made
//  it take the mutex after every write, while the gateway takes it twice per
//  request: on one core each collision cost a futex sleep and a context
//  switch, nine thousand a second at 50x32.)
struct _herd_log_t {
    herd_log_head_t head;       //  first: read inline by herd_log_wants_conn
    atomic_int level;           //  events under it are dropped
    atomic_bool json;           //  one JSON object a line
    char *node_json;            //  node, escaped for a JSON string
    size_t node_json_size;
    pthread_mutex_t mutex;      //  guards buffer, size, oldest_usec, fd
    pthread_cond_t written;     //  from the writer: other is free again
    sem_t work;                 //  to the writer: a buffer to write, or stop
    pthread_t writer;
    int fd;
    char *path;
    char *node;
    size_t node_size;           //  strlen (node), once
    char *buffer;               //  being filled
    size_t size;                //  bytes in buffer
    int64_t oldest_usec;        //  when the oldest line in buffer was logged
    char *other;                //  handed to the writer, or free
    atomic_size_t other_size;   //  bytes of other to write; 0 = free
    atomic_int waiters;         //  loggers waiting for other to be free
    atomic_bool stopping;
    off_t dropped_to;           //  the writer's: file offset of s_drop_behind's last chunk
};

//  Microseconds since the epoch, from the real-time clock.
static int64_t
s_now_usec (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  Create every missing parent directory of path (like mkdir -p of dirname).
static void
s_make_parents (const char *path)
{
    char *copy = strdup (path);
    if (!copy)
        return;
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (copy, 0755);     //  EEXIST is fine; open reports real failures
        *slash = '/';
    }
    free (copy);
}

//  Write all bytes, retrying short writes; errors are dropped (a log must
//  never stop a node).
static void
s_write_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t rc = write (fd, data, size);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return;
        data += rc;
        size -= (size_t) rc;
    }
}

//  Keep the log out of the page cache: nobody reads it back, and under
//  load it grows by 100-250 MB a second. Every HERD_LOG_DROP bytes, start
//  writing the newest stretch to disk and drop what is behind it (pages
//  not yet written back stay; a later call drops them). The freed pages are
//  reused for the next lines while they are still hot. On this project's
//  VMs, where the host takes back free memory, a fresh page costs a fault
//  to the host on first touch: 500 MB took 0.16 s or 1.35 s to write, and
//  a node at 50x32 spent 0.5 us of its 1.3 us per IAMAT in the log's
//  writes; dropping behind brought that to 0.2 us (an earlier round of
//  BENCHMARKS.md, in its git history).
#define HERD_LOG_DROP (4 * 1024 * 1024)
static void
s_drop_behind (herd_log_t *self)
{
    off_t end = lseek (self->fd, 0, SEEK_CUR);  //  O_APPEND: the end of the file
    off_t chunk = end / HERD_LOG_DROP * HERD_LOG_DROP;
    if (chunk < 2 * HERD_LOG_DROP || chunk <= self->dropped_to)
        return;
    sync_file_range (self->fd, chunk - HERD_LOG_DROP, HERD_LOG_DROP, SYNC_FILE_RANGE_WRITE);
    posix_fadvise (self->fd, 0, chunk - HERD_LOG_DROP, POSIX_FADV_DONTNEED);
    self->dropped_to = chunk;
}

//  Wait until the writer has written other; caller holds the mutex.
static void
s_wait_written_locked (herd_log_t *self)
{
    if (atomic_load (&self->other_size) == 0)
        return;
    //  Count ourselves before looking again: the writer frees other, then
    //  looks at waiters, so one of us sees the other's change
    atomic_fetch_add (&self->waiters, 1);
    while (atomic_load (&self->other_size) > 0)
        pthread_cond_wait (&self->written, &self->mutex);
    atomic_fetch_sub (&self->waiters, 1);
}

//  Hand the buffer to the writer, once it is done with the other one;
//  caller holds the mutex.
static void
s_hand_over_locked (herd_log_t *self)
{
    if (self->size == 0)
        return;
    s_wait_written_locked (self);
    char *full = self->buffer;
    self->buffer = self->other;
    self->other = full;
    atomic_store (&self->other_size, self->size);
    self->size = 0;
    sem_post (&self->work);
}

//  Return once every line logged so far is in the file; caller holds the
//  mutex.
static void
s_drain_locked (herd_log_t *self)
{
    s_hand_over_locked (self);
    s_wait_written_locked (self);
}

//  The writer thread: writes each buffer handed to it, and every quarter
//  of a second hands over by itself a buffer whose oldest line is 3/4 of a
//  second old, so a quiet node's lines still reach the file within a second.
static void *
s_writer (void *arg)
{
    herd_log_t *self = (herd_log_t *) arg;
    sigset_t all;
    sigfillset (&all);
    pthread_sigmask (SIG_BLOCK, &all, NULL);    //  signals are the main thread's
    pthread_setname_np (pthread_self (), "herd-log");
    while (true) {
        herd_alive_beat (HERD_ALIVE_LOG, zclock_mono ());
        size_t size = atomic_load (&self->other_size);
        if (size > 0) {
            //  fd changes only under the mutex while other is free
            s_write_all (self->fd, self->other, size);
            s_drop_behind (self);
            atomic_store (&self->other_size, 0);
            if (atomic_load (&self->waiters) > 0) {
                pthread_mutex_lock (&self->mutex);
                pthread_cond_broadcast (&self->written);
                pthread_mutex_unlock (&self->mutex);
            }
            continue;
        }
        if (atomic_load (&self->stopping))
            break;
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        if (sem_timedwait (&self->work, &until) == -1 && errno == ETIMEDOUT) {
            pthread_mutex_lock (&self->mutex);
            //  Only when other is free: a logger may have handed it over
            //  since we looked, and waiting here for it to be written
            //  would wait for ourselves
            if (self->size > 0 && atomic_load (&self->other_size) == 0
                && s_now_usec () - self->oldest_usec >= 750000)
                s_hand_over_locked (self);
            pthread_mutex_unlock (&self->mutex);
        }
    }
    return NULL;
}

//  Append one complete line; caller holds the mutex.
static void
s_append_locked (herd_log_t *self, const char *line, size_t size)
{
    if (self->size + size > HERD_LOG_BUFFER)
        s_hand_over_locked (self);
    if (size > HERD_LOG_BUFFER) {
        //  Longer than a buffer: written on its own, after all before it
        s_drain_locked (self);
        s_write_all (self->fd, line, size);
        return;
    }
    if (self->size == 0)
        self->oldest_usec = s_now_usec ();
    memcpy (self->buffer + self->size, line, size);
    self->size += size;
}

static size_t
    s_escape_json (char *out, const char *data, size_t size);

herd_log_t *
herd_log_new (const char *path, const char *node)
{
    s_make_parents (path);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    herd_log_t *self = calloc (1, sizeof (herd_log_t));
    if (self) {
        self->buffer = malloc (HERD_LOG_BUFFER);
        self->other = malloc (HERD_LOG_BUFFER);
        self->node = strdup (node);
        self->node_json = malloc (strlen (node) * 5 + 1);
        self->path = strdup (path);
    }
    if (!self || !self->buffer || !self->other || !self->node || !self->node_json
        || !self->path) {
        if (self) {
            free (self->buffer);
            free (self->other);
            free (self->path);
            free (self->node);
            free (self->node_json);
            free (self);
        }
        close (fd);
        errno = ENOMEM;
        return NULL;
    }
    self->fd = fd;
    self->node_size = strlen (self->node);
    self->node_json_size = s_escape_json (self->node_json, self->node, self->node_size);
    atomic_init (&self->head.requests_every, 1);
    atomic_init (&self->level, HERD_LOG_INFO);
    atomic_init (&self->json, false);
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->written, NULL);
    sem_init (&self->work, 0, 0);
    atomic_init (&self->other_size, 0);
    atomic_init (&self->waiters, 0);
    atomic_init (&self->stopping, false);
    int rc = pthread_create (&self->writer, NULL, s_writer, self);
    if (rc != 0) {
        pthread_cond_destroy (&self->written);
        sem_destroy (&self->work);
        pthread_mutex_destroy (&self->mutex);
        close (fd);
        free (self->buffer);
        free (self->other);
        free (self->path);
        free (self->node);
        free (self->node_json);
        free (self);
        errno = rc;
        return NULL;
    }
    return self;
}

void
herd_log_destroy (herd_log_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_log_t *self = *self_p;
    pthread_mutex_lock (&self->mutex);
    s_drain_locked (self);
    pthread_mutex_unlock (&self->mutex);
    atomic_store (&self->stopping, true);
    sem_post (&self->work);
    pthread_join (self->writer, NULL);
    close (self->fd);
    pthread_cond_destroy (&self->written);
    sem_destroy (&self->work);
    pthread_mutex_destroy (&self->mutex);
    free (self->buffer);
    free (self->other);
    free (self->path);
    free (self->node);
    free (self->node_json);
    free (self);
    *self_p = NULL;
}

//  Write "2026-11-23T00:43:33.123456Z" for time usec into out; returns its
//  length (27).
static size_t
s_stamp (char *out, int64_t usec)
{
    //  The date and time change once a second: format them then, not per
    //  line (the profile of a node under load put strftime at a quarter of
    //  the gateway's time). One cache per thread, so no lock.
    static _Thread_local time_t cached_secs = -1;
    static _Thread_local char cached[32];
    static _Thread_local size_t cached_size;
    time_t secs = (time_t) (usec / 1000000);
    if (secs != cached_secs) {
        struct tm tm;
        gmtime_r (&secs, &tm);
        cached_size = strftime (cached, sizeof (cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_secs = secs;
    }
    size_t len = cached_size;
    memcpy (out, cached, len);
    //  ".uuuuuuZ " by hand, then node and role
    unsigned micro = (unsigned) (usec % 1000000);
    out[len++] = '.';
    for (int i = 5; i >= 0; i--) {
        out[len + (size_t) i] = (char) ('0' + micro % 10);
        micro /= 10;
    }
    len += 6;
    out[len++] = 'Z';
    return len;
}

//  Write "TIMESTAMP NODE ROLE " for time usec into out (room for
//  HERD_LOG_HEAD_MAX bytes); returns its length.
static size_t
s_header (herd_log_t *self, const char *role, char *out, int64_t usec)
{
    size_t len = s_stamp (out, usec);
    size_t room = HERD_LOG_HEAD_MAX - 1 - len;
    size_t role_size = strlen (role);
    if (self->node_size + role_size + 3 <= room) {
        out[len++] = ' ';
        memcpy (out + len, self->node, self->node_size);
        len += self->node_size;
        out[len++] = ' ';
        memcpy (out + len, role, role_size);
        len += role_size;
        out[len++] = ' ';
    }
    else {
        //  A name too long: cut, as the header always was
        int rc = snprintf (out + len, HERD_LOG_HEAD_MAX - len, " %s %s ", self->node, role);
        if (rc > 0)
            len += (size_t) rc < room + 1 ? (size_t) rc : room;
    }
    return len;
}

//  True for each byte herd_log_data writes as \xHH.
static inline bool
s_must_escape (unsigned char c)
{
    return c < 0x20 || c == 0x7f || c == '\\';
}

//  A word with every byte set to byte.
#define S_BYTES(byte) ((uint64_t) 0x0101010101010101ULL * (byte))

//  True if any byte of word must be escaped: is below 0x20, or is 0x7f
//  or '\\' (the classic has-less and has-zero bit tricks, exact as a whole).
static inline bool
s_word_must_escape (uint64_t word)
{
    uint64_t below = (word - S_BYTES (0x20)) & ~word;
    uint64_t del = word ^ S_BYTES (0x7f);
    uint64_t slash = word ^ S_BYTES ('\\');
    del = (del - S_BYTES (0x01)) & ~del;
    slash = (slash - S_BYTES (0x01)) & ~slash;
    return ((below | del | slash) & S_BYTES (0x80)) != 0;
}

//  Write data into out with the bytes that would break a line as \xHH;
//  returns the bytes written (at most 4 per byte). Runs of plain bytes are
//  copied eight at a time.
static size_t
s_escape (char *out, const char *data, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0, at = 0;
    while (at < size) {
        if (at + 8 <= size) {
            uint64_t word;
            memcpy (&word, data + at, 8);
            if (!s_word_must_escape (word)) {
                memcpy (out + len, &word, 8);
                len += 8;
                at += 8;
                continue;
            }
        }
        unsigned char c = (unsigned char) data[at++];
        if (s_must_escape (c)) {
            out[len++] = '\\';
            out[len++] = 'x';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
        else
            out[len++] = (char) c;
    }
    return len;
}

//  Length of the valid UTF-8 sequence of two or more bytes at data (left
//  bytes there), or 0 when the byte there does not start one.
static size_t
s_utf8_size (const unsigned char *data, size_t left)
{
    unsigned char c = data[0];
    unsigned char low = 0x80, high = 0xbf;   //  range of the second byte
    size_t size;
    if (c >= 0xc2 && c <= 0xdf)
        size = 2;
    else
    if (c >= 0xe0 && c <= 0xef) {
        size = 3;
        if (c == 0xe0)
            low = 0xa0;                     //  no overlong forms
        if (c == 0xed)
            high = 0x9f;                    //  no surrogates
    }
    else
    if (c >= 0xf0 && c <= 0xf4) {
        size = 4;
        if (c == 0xf0)
            low = 0x90;
        if (c == 0xf4)
            high = 0x8f;                    //  nothing past U+10FFFF
    }
    else
        return 0;
    if (left < size || data[1] < low || data[1] > high)
        return 0;
    for (size_t i = 2; i < size; i++)
        if (data[i] < 0x80 || data[i] > 0xbf)
            return 0;
    return size;
}

//  Write data into out as the inside of a JSON string: the bytes
//  s_must_escape names and those not part of valid UTF-8 as \xHH (its
//  backslash escaped for JSON: \\xHH), '"' as \"; returns the bytes written
//  (at most 5 per byte). Runs of plain ASCII are copied eight at a time.
static size_t
s_escape_json (char *out, const char *data, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *bytes = (const unsigned char *) data;
    size_t len = 0, at = 0;
    while (at < size) {
        if (at + 8 <= size) {
            uint64_t word;
            memcpy (&word, data + at, 8);
            uint64_t quote = word ^ S_BYTES ('"');
            quote = (quote - S_BYTES (0x01)) & ~quote;
            if (!s_word_must_escape (word) && ((word | quote) & S_BYTES (0x80)) == 0) {
                memcpy (out + len, &word, 8);
                len += 8;
                at += 8;
                continue;
            }
        }
        unsigned char c = bytes[at];
        size_t utf8 = c >= 0x80 ? s_utf8_size (bytes + at, size - at) : 0;
        if (utf8 > 0) {
            memcpy (out + len, bytes + at, utf8);
            len += utf8;
            at += utf8;
            continue;
        }
        at++;
        if (s_must_escape (c) || c >= 0x80) {
            memcpy (out + len, "\\\\x", 3);
            len += 3;
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
        else
        if (c == '"') {
            out[len++] = '\\';
            out[len++] = '"';
        }
        else
            out[len++] = (char) c;
    }
    return len;
}

//  Room s_json_header needs for role.
static size_t
s_json_header_max (herd_log_t *self, const char *role)
{
    return 96 + self->node_json_size + strlen (role);
}

//  Write '{"time":"...","node":"...","role":"...","level":"...",' for time
//  usec into out (room for s_json_header_max); returns its length.
static size_t
s_json_header (herd_log_t *self, const char *role, herd_log_level_t level, char *out,
               int64_t usec)
{
    size_t len = 0;
#define S_PUT(text, text_size) (memcpy (out + len, (text), (text_size)), len += (text_size))
    S_PUT ("{\"time\":\"", 9);
    len += s_stamp (out + len, usec);
    S_PUT ("\",\"node\":\"", 10);
    S_PUT (self->node_json, self->node_json_size);
    S_PUT ("\",\"role\":\"", 10);
    S_PUT (role, strlen (role));
    S_PUT ("\",\"level\":\"", 11);
    const char *name = herd_log_level_name (level);
    S_PUT (name, strlen (name));
    S_PUT ("\",", 2);
#undef S_PUT
    return len;
}

const char *
herd_log_level_name (herd_log_level_t level)
{
    static const char *names[] = {"debug", "info", "warning", "error"};
    return level >= HERD_LOG_DEBUG && level <= HERD_LOG_ERROR ? names[level] : "info";
}

void
herd_log_configure (herd_log_t *self, uint64_t requests_every, herd_log_level_t level, bool json)
{
    if (!self)
        return;
    atomic_store (&self->head.requests_every, requests_every);
    atomic_store (&self->level, (int) level);
    atomic_store (&self->json, json);
}

//  Log one event at level; see herd_log_printf.
static void
s_vlog (herd_log_t *self, herd_log_level_t level, const char *role, const char *format,
        va_list args)
{
    if (!self || (int) level < atomic_load_explicit (&self->level, memory_order_relaxed))
        return;
    bool json = atomic_load_explicit (&self->json, memory_order_relaxed);
    char stack[1024];
    int64_t usec = s_now_usec ();
    size_t head = json ? 0 : s_header (self, role, stack, usec);
    va_list again;
    va_copy (again, args);
    //  clang-analyzer 14 takes a va_list parameter for uninitialised (its
    //  valist checker does not follow one passed down from va_start)
    int rc = vsnprintf (stack + head, sizeof (stack) - head - 1, format, args); // NOLINT(clang-analyzer-valist.Uninitialized)
    if (rc < 0) {
        va_end (again);
        return;
    }
    char *line = stack;
    if ((size_t) rc >= sizeof (stack) - head - 1) {
        line = malloc (head + (size_t) rc + 2);
        if (line) {
            memcpy (line, stack, head);
            vsnprintf (line + head, (size_t) rc + 1, format, again);
        }
    }
    va_end (again);
    if (!line)
        return;
    size_t size = head + (size_t) rc;
    if (json) {
        //  The event as a JSON string, after the header
        char *object = malloc (s_json_header_max (self, role) + 16 + size * 5);
        if (object) {
            size_t len = s_json_header (self, role, level, object, usec);
            memcpy (object + len, "\"event\":\"", 9);
            len += 9;
            len += s_escape_json (object + len, line, size);
            memcpy (object + len, "\"}\n", 3);
            len += 3;
            pthread_mutex_lock (&self->mutex);
            s_append_locked (self, object, len);
            pthread_mutex_unlock (&self->mutex);
            free (object);
        }
    }
    else {
        line[size++] = '\n';
        pthread_mutex_lock (&self->mutex);
        s_append_locked (self, line, size);
        pthread_mutex_unlock (&self->mutex);
    }
    if (line != stack)
        free (line);
}

#define S_LOG_AT(name, level)                                                       \
    void name (herd_log_t *self, const char *role, const char *format, ...)        \
    {                                                                               \
        va_list args;                                                               \
        va_start (args, format);                                                    \
        s_vlog (self, level, role, format, args);                                   \
        va_end (args);                                                              \
    }
S_LOG_AT (herd_log_printf, HERD_LOG_INFO)
S_LOG_AT (herd_log_debug, HERD_LOG_DEBUG)
S_LOG_AT (herd_log_warning, HERD_LOG_WARNING)
S_LOG_AT (herd_log_error, HERD_LOG_ERROR)
#undef S_LOG_AT

//  Write a whole data event of time usec, "\n" included, into line (room
//  for cap bytes, see s_log_data); returns its length.
static size_t
s_format_data (herd_log_t *self, int64_t usec, const char *role, const char *prefix,
               size_t prefix_size, const char *data, size_t size, char *line, size_t cap)
{
    size_t shown = size < HERD_LOG_DATA_MAX ? size : HERD_LOG_DATA_MAX;
    size_t len = s_header (self, role, line, usec);
    memcpy (line + len, prefix, prefix_size);
    len += prefix_size;
    line[len++] = ' ';
    len += s_escape (line + len, data, shown);
    if (shown < size)
        len += (size_t) snprintf (line + len, cap - len, " ...(%zu bytes in all)", size);
    line[len++] = '\n';
    return len;
}

//  The JSON form of s_format_data: a client line of connection conn when
//  dir is not NULL, else an event of prefix, a space and data.
static size_t
s_format_data_json (herd_log_t *self, int64_t usec, const char *role, const char *prefix,
                    size_t prefix_size, uint64_t conn, const char *dir, const char *data,
                    size_t size, char *line, size_t cap)
{
    size_t shown = size < HERD_LOG_DATA_MAX ? size : HERD_LOG_DATA_MAX;
    size_t len = s_json_header (self, role, HERD_LOG_INFO, line, usec);
    if (dir) {
        memcpy (line + len, "\"conn\":", 7);
        len += 7;
        len += herd_proto_format_u64 (conn, line + len);
        memcpy (line + len, ",\"dir\":\"", 8);
        len += 8;
        len += s_escape_json (line + len, dir, strlen (dir));
        memcpy (line + len, "\",\"line\":\"", 10);
        len += 10;
    }
    else {
        memcpy (line + len, "\"event\":\"", 9);
        len += 9;
        len += s_escape_json (line + len, prefix, prefix_size);
        line[len++] = ' ';
    }
    len += s_escape_json (line + len, data, shown);
    line[len++] = '"';
    if (shown < size)
        len += (size_t) snprintf (line + len, cap - len, ",\"bytes\":%zu", size);
    line[len++] = '}';
    line[len++] = '\n';
    return len;
}

//  Log a data event of time usec (0: now); see herd_log_data. dir, when
//  not NULL, makes it client line of connection conn (for JSON; prefix
//  says the same for text).
static void
s_log_data (herd_log_t *self, int64_t usec, const char *role, const char *prefix,
            size_t prefix_size, uint64_t conn, const char *dir, const char *data, size_t size)
{
    if (usec == 0)
        usec = s_now_usec ();
    bool json = atomic_load_explicit (&self->json, memory_order_relaxed);
    size_t shown = size < HERD_LOG_DATA_MAX ? size : HERD_LOG_DATA_MAX;
    //  The longest the line can be: header, prefix, every byte escaped, tail
    size_t cap = json ? s_json_header_max (self, role) + prefix_size * 5 + 48 + shown * 5
                            + HERD_LOG_TAIL_MAX
                      : HERD_LOG_HEAD_MAX + prefix_size + 1 + shown * 4 + HERD_LOG_TAIL_MAX;
    pthread_mutex_lock (&self->mutex);
    if (self->size + cap > HERD_LOG_BUFFER)
        s_hand_over_locked (self);
    if (cap <= HERD_LOG_BUFFER) {
        //  Straight into the buffer
        char *into = self->buffer + self->size;
        size_t len = json ? s_format_data_json (self, usec, role, prefix, prefix_size, conn,
                                                dir, data, size, into, cap)
                          : s_format_data (self, usec, role, prefix, prefix_size, data, size,
                                           into, cap);
        if (self->size == 0)
            self->oldest_usec = usec;
        self->size += len;
    }
    else {
        //  Longer than the buffer (a huge prefix): written on its own,
        //  after all before it
        s_drain_locked (self);
        char *line = malloc (cap);
        if (line) {
            size_t len = json ? s_format_data_json (self, usec, role, prefix, prefix_size,
                                                    conn, dir, data, size, line, cap)
                              : s_format_data (self, usec, role, prefix, prefix_size, data,
                                               size, line, cap);
            s_write_all (self->fd, line, len);
            free (line);
        }
    }
    pthread_mutex_unlock (&self->mutex);
}

void
herd_log_data (herd_log_t *self, const char *role, const char *prefix, const char *data,
               size_t size)
{
    if (self)
        s_log_data (self, 0, role, prefix, strlen (prefix), 0, NULL, data, size);
}

void
herd_log_conn (herd_log_t *self, const char *role, uint64_t conn, const char *dir,
               int64_t usec, const char *data, size_t size)
{
    if (!herd_log_wants_conn (self, conn))
        return;
    //  "conn=N dir", N by hand: this runs twice per request
    char prefix[64] = "conn=";
    size_t len = 5;
    len += herd_proto_format_u64 (conn, prefix + len);
    prefix[len++] = ' ';
    size_t dir_size = strnlen (dir, sizeof (prefix) - len);
    memcpy (prefix + len, dir, dir_size);
    len += dir_size;
    if (size > 0 && data[size - 1] == '\n')
        size--;                 //  the line's own end, not part of what it says
    s_log_data (self, usec, role, prefix, len, conn, dir, data, size);
}

int
herd_log_reopen (herd_log_t *self)
{
    if (!self)
        return 0;
    s_make_parents (self->path);
    int fd = open (self->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    pthread_mutex_lock (&self->mutex);
    s_drain_locked (self);          //  the writer is idle, the old file complete
    close (self->fd);
    self->fd = fd;
    self->dropped_to = 0;
    pthread_mutex_unlock (&self->mutex);
    return 0;
}

void
herd_log_flush (herd_log_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->mutex);
    s_drain_locked (self);
    pthread_mutex_unlock (&self->mutex);
}

//  A thread of the self test: log lines numbered from its id.
typedef struct {
    herd_log_t *log;
    int id;
} s_test_thread_t;

#define S_TEST_LINES 60000          //  4 threads: about 17 MB, past s_drop_behind's chunks

static void *
s_test_logger (void *arg)
{
    s_test_thread_t *thread = (s_test_thread_t *) arg;
    char line[64];
    for (int i = 0; i < S_TEST_LINES; i++) {
        int size = snprintf (line, sizeof (line), "t%d n%d", thread->id, i);
        herd_log_conn (thread->log, "gateway", (uint64_t) thread->id, "in", 0, line,
                       (size_t) size);
    }
    return NULL;
}

//  Read a whole small file into a new string; for the self test.
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = calloc (1, 1 << 20);
    size_t size = text ? fread (text, 1, (1 << 20) - 1, file) : 0;
    (void) size;
    fclose (file);
    return text;
}

//  Text lines: buffered, timed, escaped, long data shown in part, one line an event.
static void
s_test_text (const char *path)
{
    herd_log_t *log = herd_log_new (path, "Hill");
    HERD_CHECK (log);
    herd_log_printf (log, "gateway", "conn=%d opened from %s", 7, "127.0.0.1:5555");
    herd_log_data (log, "gateway", "conn=7 in", "IAMAT a\r\x01\\ b", 12);

    //  Buffered: nothing in the file before a flush or a second has passed
    char *text = s_slurp (path);
    HERD_CHECK (text);
    HERD_CHECK_STR (text, "");
    free (text);

    herd_log_flush (log);
    text = s_slurp (path);
    //  2026-11-23T00:43:33.123456Z Hill gateway conn=7 opened ...
    HERD_CHECK (strlen (text) > 28);
    HERD_CHECK (text[4] == '-' && text[10] == 'T' && text[19] == '.' && text[26] == 'Z');
    HERD_CHECK_CONTAINS (text, "Z Hill gateway conn=7 opened from 127.0.0.1:5555\n");
    HERD_CHECK_CONTAINS (text, "Hill gateway conn=7 in IAMAT a\\x0d\\x01\\x5c b\n");

    //  Client lines: "conn=N in|out", one ending "\n" not shown, the time
    //  given (2026-11-23T00:43:33.000042Z)
    herd_log_conn (log, "gateway", 18446744073709551615ULL, "in", 0, "IAMAT x", 7);
    herd_log_conn (log, "gateway", 0, "out", 1795394613000042LL, "AT x\n\n", 6);
    herd_log_flush (log);
    free (text);
    text = s_slurp (path);
    HERD_CHECK_CONTAINS (text, "Z Hill gateway conn=18446744073709551615 in IAMAT x\n");
    HERD_CHECK_CONTAINS (text, "2026-11-23T00:43:33.000042Z Hill gateway conn=0 out AT x\\x0a\n");
    free (text);

    //  Long data is shown in part, with its full size
    char *big = malloc (100000);
    memset (big, 'x', 100000);
    herd_log_data (log, "gateway", "conn=8 in", big, 100000);
    free (big);
    //  Long formatted lines are kept whole
    char word[3000];
    memset (word, 'y', sizeof (word) - 1);
    word[sizeof (word) - 1] = 0;
    herd_log_printf (log, "bus", "long %s end", word);
    herd_log_destroy (&log);
    HERD_CHECK (log == NULL);
    herd_log_destroy (&log);

    text = s_slurp (path);
    HERD_CHECK_CONTAINS (text, "...(100000 bytes in all)\n");
    HERD_CHECK_CONTAINS (text, "yyy end\n");
    //  Every event is one line
    int lines = 0;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    HERD_CHECK_INT (lines, 6);
    free (text);
}

//  Reopen after a rotation: new lines go to a new file at the same path.
static void
s_test_rotation (const char *path)
{
    herd_log_t *log;
    char *text;
    //  Reopen after a rotation: new lines go to a new file at the same path
    log = herd_log_new (path, "Hill");
    herd_log_printf (log, "main", "before rotation");
    char rotated[160];
    snprintf (rotated, sizeof (rotated), "%s.1", path);
    HERD_CHECK (rename (path, rotated) == 0);
    HERD_CHECK_INT (herd_log_reopen (log), 0);
    herd_log_printf (log, "main", "after rotation");
    herd_log_destroy (&log);
    text = s_slurp (rotated);
    HERD_CHECK_CONTAINS (text, "before rotation");
    HERD_CHECK (!strstr (text, "after rotation"));
    free (text);
    text = s_slurp (path);
    HERD_CHECK_CONTAINS (text, "after rotation");
    free (text);
    unlink (rotated);
}

//  Escaping, against a byte-at-a-time reference.
static void
s_test_escaping (const char *path)
{
    herd_log_t *log;
    char *text;
    //  Escaping, against a byte-at-a-time reference: every byte value at
    //  every offset in a word, among plain bytes
    log = herd_log_new (path, "Hill");
    char data[256 * 9];
    char expected[sizeof (data) * 4 + 1];
    size_t data_size = 0, expected_size = 0;
    for (int value = 0; value < 256; value++) {
        for (int pad = 0; pad < value % 9; pad++)
            data[data_size++] = 'a';
        data[data_size++] = (char) value;
    }
    for (size_t i = 0; i < data_size; i++) {
        unsigned char c = (unsigned char) data[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            expected_size += (size_t) sprintf (expected + expected_size, "\\x%02x", c);
        else
            expected[expected_size++] = (char) c;
    }
    expected[expected_size] = 0;
    HERD_CHECK (data_size < HERD_LOG_DATA_MAX * 2);
    for (size_t from = 0; from < data_size; from += HERD_LOG_DATA_MAX)
        herd_log_data (log, "gateway", "bytes", data + from,
                       data_size - from < HERD_LOG_DATA_MAX ? data_size - from
                                                            : HERD_LOG_DATA_MAX);
    herd_log_destroy (&log);
    text = s_slurp (path);
    char *joined = malloc (strlen (text) + 1);
    size_t joined_size = 0;
    for (char *at = strstr (text, " bytes "); at; at = strstr (at, " bytes ")) {
        at += 7;
        char *end = strchr (at, '\n');
        memcpy (joined + joined_size, at, (size_t) (end - at));
        joined_size += (size_t) (end - at);
    }
    joined[joined_size] = 0;
    HERD_CHECK_STR (joined, expected);
    free (joined);
    free (text);
    unlink (path);
}

//  A very long node name; a quiet log written by its own thread.
static void
s_test_name_and_quiet (const char *path)
{
    herd_log_t *log;
    char *text;
    //  A very long node name: the header is cut at 159 bytes, as it always was
    char name[201];
    memset (name, 'n', sizeof (name) - 1);
    name[sizeof (name) - 1] = 0;
    log = herd_log_new (path, name);
    herd_log_printf (log, "main", "x");
    herd_log_data (log, "gateway", "in", "y", 1);
    herd_log_destroy (&log);
    text = s_slurp (path);
    HERD_CHECK_INT (strlen (text), 2 * 159 + 2 + 5);
    HERD_CHECK (memcmp (text + 159, "x\n", 2) == 0);
    HERD_CHECK (memcmp (text + 2 * 159 + 2, "in y\n", 5) == 0);
    free (text);
    unlink (path);

    //  A quiet log reaches the file within a second or so, written by the
    //  log's own thread (bounded wait: 5 s)
    log = herd_log_new (path, "Hill");
    herd_log_printf (log, "main", "quiet line");
    bool seen = false;
    for (int tries = 0; tries < 500 && !seen; tries++) {
        text = s_slurp (path);
        seen = text && strstr (text, "quiet line\n");
        free (text);
        if (!seen)
            zclock_sleep (10);
    }
    HERD_CHECK (seen);
    herd_log_destroy (&log);
    unlink (path);
}

//  Four threads at once: every line whole, none lost, each in order.
static void
s_test_threads (const char *path)
{
    herd_log_t *log;
    //  Four threads at once, many buffers' worth: every line whole, none
    //  lost, each thread's lines in order
    log = herd_log_new (path, "Hill");
    s_test_thread_t threads[4];
    pthread_t ids[4];
    for (int t = 0; t < 4; t++) {
        threads[t] = (s_test_thread_t) {log, t};
        HERD_CHECK (pthread_create (&ids[t], NULL, s_test_logger, &threads[t]) == 0);
    }
    for (int t = 0; t < 4; t++)
        pthread_join (ids[t], NULL);
    herd_log_destroy (&log);
    FILE *file = fopen (path, "r");
    HERD_CHECK (file);
    int next[4] = {0, 0, 0, 0};
    char entry[256];
    while (fgets (entry, sizeof (entry), file)) {
        int t = -1, n = -1;
        char *at = strstr (entry, " gateway conn=");
        HERD_CHECK (at && sscanf (at, " gateway conn=%d in t%*d n%d", &t, &n) == 2);
        HERD_CHECK (t >= 0 && t < 4);
        HERD_CHECK_INT (n, next[t]);
        next[t]++;
    }
    fclose (file);
    for (int t = 0; t < 4; t++)
        HERD_CHECK_INT (next[t], S_TEST_LINES);
    unlink (path);
}

//  Sized: no client lines, sampled by serial, events under the level dropped.
static void
s_test_sized (const char *path)
{
    herd_log_t *log;
    char *text;
    //  Sized: no client lines, sampled by serial, events under the level
    //  dropped
    log = herd_log_new (path, "Hill");
    herd_log_configure (log, 0, HERD_LOG_WARNING, false);
    HERD_CHECK (!herd_log_wants_conn (log, 1));
    herd_log_conn (log, "gateway", 1, "in", 0, "IAMAT off", 9);
    herd_log_printf (log, "gateway", "conn=1 opened");
    herd_log_debug (log, "bus", "debug line");
    herd_log_warning (log, "bus", "link down X");
    herd_log_error (log, "bus", "cannot bind Y");
    herd_log_configure (log, 3, HERD_LOG_DEBUG, false);
    for (uint64_t conn = 1; conn <= 6; conn++)
        herd_log_conn (log, "gateway", conn, "in", 0, "IAMAT s", 7);
    herd_log_debug (log, "bus", "debug shown");
    herd_log_destroy (&log);
    text = s_slurp (path);
    HERD_CHECK (!strstr (text, "IAMAT off") && !strstr (text, "opened"));
    HERD_CHECK (!strstr (text, "debug line"));
    HERD_CHECK_CONTAINS (text, "Z Hill bus link down X\n");
    HERD_CHECK_CONTAINS (text, "Z Hill bus cannot bind Y\n");
    HERD_CHECK_CONTAINS (text, "debug shown\n");
    HERD_CHECK_CONTAINS (text, "conn=3 in IAMAT s\n");
    HERD_CHECK_CONTAINS (text, "conn=6 in IAMAT s\n");
    HERD_CHECK (!strstr (text, "conn=1 in") && !strstr (text, "conn=2 in")
                && !strstr (text, "conn=4 in") && !strstr (text, "conn=5 in"));
    free (text);
    unlink (path);
}

//  JSON lines; a log that cannot be opened.
static void
s_test_json (const char *path)
{
    herd_log_t *log;
    char *text;
    char *big;
    int lines;
    //  JSON: one object a line; client bytes as \xHH where the text log
    //  escapes them and where they are not UTF-8, '"' quoted, UTF-8 kept
    log = herd_log_new (path, "H\"ill");
    herd_log_configure (log, 1, HERD_LOG_INFO, true);
    const char client[] = "IAMAT \"q\" \x01\\ caf\xc3\xa9 \xff\xc3 \xed\xa0\x80 abcdefgh\n";
    herd_log_conn (log, "gateway", 7, "in", 1795394613000042LL, client, sizeof (client) - 1);
    herd_log_warning (log, "bus", "link down %s", "A\tB");
    herd_log_debug (log, "bus", "dropped");
    big = malloc (2000);
    memset (big, 'z', 2000);
    herd_log_conn (log, "gateway", 8, "out", 1795394613000042LL, big, 2000);
    free (big);
    herd_log_destroy (&log);
    text = s_slurp (path);
    HERD_CHECK_CONTAINS (text,
        "{\"time\":\"2026-11-23T00:43:33.000042Z\",\"node\":\"H\\\"ill\",\"role\":\"gateway\","
        "\"level\":\"info\",\"conn\":7,\"dir\":\"in\",\"line\":\"IAMAT \\\"q\\\" \\\\x01\\\\x5c "
        "caf\xc3\xa9 \\\\xff\\\\xc3 \\\\xed\\\\xa0\\\\x80 abcdefgh\"}\n");
    HERD_CHECK_CONTAINS (text, "\"role\":\"bus\",\"level\":\"warning\",\"event\":\"link down "
                               "A\\\\x09B\"}\n");
    HERD_CHECK (!strstr (text, "dropped"));
    HERD_CHECK_CONTAINS (text, "zzz\",\"bytes\":2000}\n");
    lines = 0;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    HERD_CHECK_INT (lines, 3);
    free (text);
    unlink (path);

    //  A log that cannot be opened is reported, not crashed on
    HERD_CHECK (herd_log_new ("/proc/no/such/dir/x.log", "Hill") == NULL);
    herd_log_printf (NULL, "bus", "ignored");
}

void
herd_log_test (bool verbose)
{
    (void) verbose;
    char dir[] = "/tmp/herd_log_test_XXXXXX";
    HERD_CHECK (mkdtemp (dir));
    char path[128];
    snprintf (path, sizeof (path), "%s/sub/dir/node.log", dir);

    s_test_text (path);
    s_test_rotation (path);
    s_test_escaping (path);
    s_test_name_and_quiet (path);
    s_test_threads (path);
    s_test_sized (path);
    s_test_json (path);

    unlink (path);
    snprintf (path, sizeof (path), "%s/sub/dir", dir);
    rmdir (path);
    snprintf (path, sizeof (path), "%s/sub", dir);
    rmdir (path);
    rmdir (dir);
}
