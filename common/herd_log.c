//  herd_log.c - a node's log file: buffered whole lines, microsecond timestamps.

#include "herd_log.h"
#include "herd_check.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HERD_LOG_BUFFER  (64 * 1024)   //  bytes kept before a write
#define HERD_LOG_DATA_MAX 1024         //  client bytes shown per event

struct _herd_log_t {
    pthread_mutex_t mutex;
    int fd;
    char *path;
    char *node;
    char *buffer;
    size_t size;                //  bytes in buffer
    int64_t oldest_usec;        //  when the oldest buffered line was logged
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

//  Write the buffer out; caller holds the mutex.
static void
s_flush_locked (herd_log_t *self)
{
    if (self->size > 0)
        s_write_all (self->fd, self->buffer, self->size);
    self->size = 0;
}

//  Append one complete line; caller holds the mutex.
static void
s_append_locked (herd_log_t *self, const char *line, size_t size)
{
    if (self->size + size > HERD_LOG_BUFFER)
        s_flush_locked (self);
    if (size > HERD_LOG_BUFFER) {
        s_write_all (self->fd, line, size);
        return;
    }
    if (self->size == 0)
        self->oldest_usec = s_now_usec ();
    memcpy (self->buffer + self->size, line, size);
    self->size += size;
}

herd_log_t *
herd_log_new (const char *path, const char *node)
{
    s_make_parents (path);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    herd_log_t *self = calloc (1, sizeof (herd_log_t));
    if (self)
        self->buffer = malloc (HERD_LOG_BUFFER);
    if (self)
        self->node = strdup (node);
    if (self)
        self->path = strdup (path);
    if (!self || !self->buffer || !self->node || !self->path) {
        if (self) {
            free (self->buffer);
            free (self->path);
            free (self->node);
            free (self);
        }
        close (fd);
        errno = ENOMEM;
        return NULL;
    }
    self->fd = fd;
    pthread_mutex_init (&self->mutex, NULL);
    return self;
}

void
herd_log_destroy (herd_log_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    herd_log_t *self = *self_p;
    herd_log_flush (self);
    close (self->fd);
    pthread_mutex_destroy (&self->mutex);
    free (self->buffer);
    free (self->path);
    free (self->node);
    free (self);
    *self_p = NULL;
}

//  Write "TIMESTAMP NODE ROLE " into out (at least 96 bytes); returns length.
static size_t
s_header (herd_log_t *self, const char *role, char *out, size_t max)
{
    //  The date and time change once a second: format them then, not per
    //  line (the profile of a node under load put strftime at a quarter of
    //  the gateway's time). One cache per thread, so no lock.
    static _Thread_local time_t cached_secs = -1;
    static _Thread_local char cached[32];
    int64_t usec = s_now_usec ();
    time_t secs = (time_t) (usec / 1000000);
    if (secs != cached_secs) {
        struct tm tm;
        gmtime_r (&secs, &tm);
        strftime (cached, sizeof (cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_secs = secs;
    }
    size_t len = strlen (cached);
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
    int rc = snprintf (out + len, max - len, " %s %s ", self->node, role);
    if (rc < 0)
        return len;
    len += (size_t) rc < max - len ? (size_t) rc : max - len - 1;
    return len;
}

void
herd_log_printf (herd_log_t *self, const char *role, const char *format, ...)
{
    if (!self)
        return;
    char stack[1024];
    size_t head = s_header (self, role, stack, 160);
    va_list args, again;
    va_start (args, format);
    va_copy (again, args);
    int rc = vsnprintf (stack + head, sizeof (stack) - head - 1, format, args);
    va_end (args);
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
    line[size++] = '\n';
    pthread_mutex_lock (&self->mutex);
    s_append_locked (self, line, size);
    pthread_mutex_unlock (&self->mutex);
    if (line != stack)
        free (line);
}

void
herd_log_data (herd_log_t *self, const char *role, const char *prefix, const char *data,
               size_t size)
{
    if (!self)
        return;
    size_t shown = size < HERD_LOG_DATA_MAX ? size : HERD_LOG_DATA_MAX;
    //  header + prefix + 4 bytes per escaped byte + tail
    size_t cap = 160 + strlen (prefix) + 1 + shown * 4 + 64;
    char stack[1024];
    char *line = cap <= sizeof (stack) ? stack : malloc (cap);      //  most lines are short
    if (!line)
        return;
    size_t len = s_header (self, role, line, 160);
    len += (size_t) snprintf (line + len, cap - len, "%s ", prefix);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char) data[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            line[len++] = '\\';
            line[len++] = 'x';
            line[len++] = hex[c >> 4];
            line[len++] = hex[c & 15];
        }
        else
            line[len++] = (char) c;
    }
    if (shown < size)
        len += (size_t) snprintf (line + len, cap - len, " ...(%zu bytes in all)", size);
    line[len++] = '\n';
    pthread_mutex_lock (&self->mutex);
    s_append_locked (self, line, len);
    pthread_mutex_unlock (&self->mutex);
    if (line != stack)
        free (line);
}

void
herd_log_tick (herd_log_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->mutex);
    if (self->size > 0 && s_now_usec () - self->oldest_usec >= 1000000)
        s_flush_locked (self);
    pthread_mutex_unlock (&self->mutex);
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
    s_flush_locked (self);
    close (self->fd);
    self->fd = fd;
    pthread_mutex_unlock (&self->mutex);
    return 0;
}

void
herd_log_flush (herd_log_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->mutex);
    s_flush_locked (self);
    pthread_mutex_unlock (&self->mutex);
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

void
herd_log_test (bool verbose)
{
    (void) verbose;
    char dir[] = "/tmp/herd_log_test_XXXXXX";
    HERD_CHECK (mkdtemp (dir));
    char path[128];
    snprintf (path, sizeof (path), "%s/sub/dir/node.log", dir);

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
    HERD_CHECK_INT (lines, 4);
    free (text);

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

    //  A log that cannot be opened is reported, not crashed on
    HERD_CHECK (herd_log_new ("/proc/no/such/dir/x.log", "Hill") == NULL);
    herd_log_printf (NULL, "bus", "ignored");

    unlink (path);
    snprintf (path, sizeof (path), "%s/sub/dir", dir);
    rmdir (path);
    snprintf (path, sizeof (path), "%s/sub", dir);
    rmdir (path);
    rmdir (dir);
}
