//  herd_bench.c - issue 6's load generator: IAMAT throughput and latency,
//  propagation, WHATSAT concurrency, memory and flood cost, on loopback.
//
//  One process, one thread, one epoll loop, non-blocking sockets; optionally
//  pinned to one CPU (--cpu N). Every measurement is bounded in time. Each
//  mode prints a table; --csv FILE appends the same figures as CSV rows
//  (test,target,param,metric,value,unit).
//
//      herd_bench iamat --target NAME=PORT[:PID] ... [--shape NxD ...]
//      herd_bench fleet --load PORT --node NAME=PORT:PID ... [--sent-file F]
//      herd_bench flood --sent N | --sent-file F --edges E --log NAME=FILE ...
//      herd_bench propagation --origin PORT --hop K=SYNC ... [--herd NAME] [--bg-rates 0,10000]
//      herd_bench whatsat --target NAME=PORT ... [--http NAME=PORT ...] [--k 1,50,200]
//      herd_bench places [--port-file F] [--latency-ms 200]
//      herd_bench memory --port PORT --pid PID [--idle 10000] [--clients 1000000]
//      herd_bench ports N
//
//  Every server is on 127.0.0.1. See bench/run.sh, which runs them all.

#include "../common/herd_buffer.h"
#include "../common/herd_msg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_HIST_SUB_BITS  7                      //  128 buckets per power of two: < 0.8 % error
#define S_HIST_SUB       (1 << S_HIST_SUB_BITS)
#define S_HIST_BUCKETS   ((64 - S_HIST_SUB_BITS + 1) * S_HIST_SUB)
#define S_READ_CHUNK     (64 * 1024)
#define S_MAX_TARGETS    8
#define S_MAX_SHAPES     16
#define S_MAX_RUNS       15
#define S_MAX_NODES      16
#define S_MAX_LIST       16
#define S_DRAIN_NS       (3 * 1000000000LL)     //  wait for answers in flight after a run
#define S_POSITION       "+34.068930-118.445127"
#define S_NS_PER_SEC     ((int64_t) 1000000000)

//  -------------------------------------------------------------------------
//  Utilities

static FILE *s_csv = NULL;          //  --csv: rows appended here

//  Print a message and exit with status 1.
static void
s_die (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "herd_bench: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    exit (1);
}

//  Progress on stderr, so stdout holds only the tables.
static void
s_progress (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "  ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
}

//  Monotonic time in nanoseconds.
static inline int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * S_NS_PER_SEC + ts.tv_nsec;
}

//  Real time (the client's clock in IAMAT) in nanoseconds since the epoch.
static inline int64_t
s_realtime_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * S_NS_PER_SEC + ts.tv_nsec;
}

//  CPU time this process has used, in nanoseconds.
static int64_t
s_self_cpu_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t) ts.tv_sec * S_NS_PER_SEC + ts.tv_nsec;
}

//  Sleep for msecs milliseconds.
static void
s_sleep_ms (int msecs)
{
    struct timespec ts = {msecs / 1000, (long) (msecs % 1000) * 1000000L};
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

//  Allocate zeroed memory or die.
static void *
s_alloc (size_t size)
{
    void *data = calloc (1, size ? size : 1);
    if (!data)
        s_die ("out of memory (%zu bytes)", size);
    return data;
}

//  Write v in decimal at out; returns the number of digits.
static inline size_t
s_put_u64 (char *out, uint64_t v)
{
    char digits[20];
    size_t count = 0;
    do {
        digits[count++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < count; i++)
        out[i] = digits[count - 1 - i];
    return count;
}

//  Write v as exactly 9 decimal digits at out.
static inline void
s_put_9 (char *out, uint32_t v)
{
    for (int i = 8; i >= 0; i--) {
        out[i] = (char) ('0' + v % 10);
        v /= 10;
    }
}

//  Parse a comma-separated list of non-negative numbers; returns the count.
static size_t
s_parse_list (const char *text, double *values, size_t max)
{
    size_t count = 0;
    const char *at = text;
    while (*at && count < max) {
        char *end;
        values[count++] = strtod (at, &end);
        if (end == at)
            s_die ("bad number list '%s'", text);
        at = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            s_die ("bad number list '%s'", text);
    }
    return count;
}

//  Median of count values (sorted in place); NAN when there are none.
static double
s_median (double *values, size_t count)
{
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (!isnan (values[i]))
            values[n++] = values[i];
    if (n == 0)
        return NAN;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && values[j - 1] > values[j]; j--) {
            double swap = values[j];
            values[j] = values[j - 1];
            values[j - 1] = swap;
        }
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

//  Append one CSV row when --csv was given.
static void
s_csv_row (const char *test, const char *target, const char *param, const char *metric,
           double value, const char *unit)
{
    if (!s_csv)
        return;
    fprintf (s_csv, "%s,%s,%s,%s,%.6g,%s\n", test, target, param, metric, value, unit);
    fflush (s_csv);
}

//  Format microseconds for a table cell: "123.4", "12345", or "-".
static const char *
s_us (double us, char *buffer, size_t size)
{
    if (isnan (us))
        snprintf (buffer, size, "-");
    else
    if (us < 1000)
        snprintf (buffer, size, "%.1f", us);
    else
        snprintf (buffer, size, "%.0f", us);
    return buffer;
}

//  -------------------------------------------------------------------------
//  Latency histogram: log-linear buckets of nanoseconds

typedef struct {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[S_HIST_BUCKETS];
} s_hist_t;

//  Bucket of a value.
static inline size_t
s_hist_index (uint64_t value)
{
    if (value < S_HIST_SUB)
        return (size_t) value;
    int exponent = 63 - __builtin_clzll (value);
    return (size_t) (exponent - S_HIST_SUB_BITS + 1) * S_HIST_SUB
           + (size_t) ((value >> (exponent - S_HIST_SUB_BITS)) - S_HIST_SUB);
}

//  Middle value of a bucket.
static uint64_t
s_hist_value (size_t index)
{
    if (index < S_HIST_SUB)
        return index;
    size_t exponent = index / S_HIST_SUB + S_HIST_SUB_BITS - 1;
    uint64_t sub = index % S_HIST_SUB + S_HIST_SUB;
    uint64_t width = 1ULL << (exponent - S_HIST_SUB_BITS);
    return sub * width + width / 2;
}

//  Count one value.
static inline void
s_hist_record (s_hist_t *hist, int64_t value)
{
    uint64_t v = value > 0 ? (uint64_t) value : 0;
    hist->buckets[s_hist_index (v)]++;
    hist->count++;
    if (v > hist->max)
        hist->max = v;
}

//  The q-quantile (0 < q <= 1) in microseconds; NAN when empty.
static double
s_hist_quantile_us (const s_hist_t *hist, double q)
{
    if (hist->count == 0)
        return NAN;
    uint64_t rank = (uint64_t) ceil (q * (double) hist->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < S_HIST_BUCKETS; i++) {
        seen += hist->buckets[i];
        if (seen >= rank) {
            uint64_t value = s_hist_value (i);
            return (double) (value < hist->max ? value : hist->max) / 1000.0;
        }
    }
    return (double) hist->max / 1000.0;
}

//  -------------------------------------------------------------------------
//  Processes: CPU time, RSS and open descriptors from /proc

//  CPU time (user + system, all threads) of a process in nanoseconds; -1 if gone.
static int64_t
s_proc_cpu_ns (int pid)
{
    char path[64], text[2048];
    snprintf (path, sizeof (path), "/proc/%d/stat", pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t size = fread (text, 1, sizeof (text) - 1, file);
    fclose (file);
    text[size] = 0;
    char *at = strrchr (text, ')');         //  the name may hold spaces
    if (!at)
        return -1;
    unsigned long long utime = 0, stime = 0;
    //  after ")": state ppid pgrp session tty tpgid flags minflt cminflt
    //  majflt cmajflt utime stime
    if (sscanf (at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                &stime) != 2)
        return -1;
    long ticks = sysconf (_SC_CLK_TCK);
    return (int64_t) ((utime + stime) * (S_NS_PER_SEC / (unsigned long long) ticks));
}

//  CPU time all CPUs of the machine spent busy (not idle, not waiting for
//  I/O), in nanoseconds, from the first line of /proc/stat.
static int64_t
s_machine_busy_ns (void)
{
    FILE *file = fopen ("/proc/stat", "r");
    if (!file)
        return -1;
    unsigned long long v[8] = {0};
    int count = fscanf (file, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                        &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose (file);
    if (count < 5)
        return -1;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    long ticks = sysconf (_SC_CLK_TCK);
    return (int64_t) (busy * (S_NS_PER_SEC / (unsigned long long) ticks));
}

//  Resident set size of a process in bytes (VmRSS); -1 if gone.
static int64_t
s_proc_rss (int pid)
{
    char path[64], line[256];
    snprintf (path, sizeof (path), "/proc/%d/status", pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    int64_t rss = -1;
    while (fgets (line, sizeof (line), file))
        if (strncmp (line, "VmRSS:", 6) == 0) {
            rss = (int64_t) strtoll (line + 6, NULL, 10) * 1024;
            break;
        }
    fclose (file);
    return rss;
}

//  Number of open descriptors of a process; -1 if gone.
static long
s_proc_fds (int pid)
{
    char path[64];
    snprintf (path, sizeof (path), "/proc/%d/fd", pid);
    DIR *dir = opendir (path);
    if (!dir)
        return -1;
    long count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (entry->d_name[0] != '.')
            count++;
    closedir (dir);
    return count;
}

//  -------------------------------------------------------------------------
//  Sockets

//  Raise RLIMIT_NOFILE as far as allowed: root may raise the hard limit.
static rlim_t
s_raise_nofile (void)
{
    struct rlimit limit;
    getrlimit (RLIMIT_NOFILE, &limit);
    struct rlimit wanted = {1 << 20, 1 << 20};
    if (limit.rlim_max < wanted.rlim_max && setrlimit (RLIMIT_NOFILE, &wanted) == 0)
        return wanted.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    setrlimit (RLIMIT_NOFILE, &limit);
    getrlimit (RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
}

//  Pin this process to one CPU.
static void
s_pin_cpu (int cpu)
{
    cpu_set_t set;
    CPU_ZERO (&set);
    CPU_SET (cpu, &set);
    if (sched_setaffinity (0, sizeof (set), &set) == -1)
        s_die ("cannot pin to CPU %d: %s", cpu, strerror (errno));
}

//  The loopback address of port.
static struct sockaddr_in
s_loopback (int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    return addr;
}

//  Start a non-blocking connect to 127.0.0.1:port; returns the fd or -1.
static int
s_connect_start (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    struct sockaddr_in addr = s_loopback (port);
    if (connect (fd, (struct sockaddr *) &addr, sizeof (addr)) == -1 && errno != EINPROGRESS) {
        close (fd);
        return -1;
    }
    return fd;
}

//  Connect count sockets to port at once and wait until all are up.
//  Fills fds; returns 0, or -1 when one failed or timeout_ms passed.
static int
s_connect_many (int port, int *fds, size_t count, int timeout_ms)
{
    int epoll = epoll_create1 (EPOLL_CLOEXEC);
    size_t pending = 0;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        fds[i] = s_connect_start (port);
        if (fds[i] < 0) {
            fprintf (stderr, "herd_bench: connect to port %d: %s\n", port, strerror (errno));
            for (size_t j = 0; j < i; j++)
                close (fds[j]);
            close (epoll);
            return -1;
        }
        struct epoll_event event = {.events = EPOLLOUT, .data.u64 = i};
        epoll_ctl (epoll, EPOLL_CTL_ADD, fds[i], &event);
        pending++;
    }
    int64_t deadline = s_now_ns () + (int64_t) timeout_ms * 1000000;
    struct epoll_event events[512];
    while (pending > 0 && rc == 0) {
        int wait_ms = (int) ((deadline - s_now_ns ()) / 1000000);
        if (wait_ms <= 0) {
            fprintf (stderr, "herd_bench: %zu connects to port %d timed out\n", pending, port);
            rc = -1;
            break;
        }
        int ready = epoll_wait (epoll, events, 512, wait_ms);
        for (int i = 0; i < ready; i++) {
            int fd = fds[events[i].data.u64];
            int error = 0;
            socklen_t len = sizeof (error);
            getsockopt (fd, SOL_SOCKET, SO_ERROR, &error, &len);
            if (error) {
                fprintf (stderr, "herd_bench: connect to port %d: %s\n", port, strerror (error));
                rc = -1;
            }
            epoll_ctl (epoll, EPOLL_CTL_DEL, fd, NULL);
            pending--;
        }
    }
    close (epoll);
    if (rc == -1)
        for (size_t i = 0; i < count; i++)
            close (fds[i]);
    return rc;
}

//  A blocking connection to port with a receive time-out; -1 on failure.
static int
s_dial (int port, int timeout_ms)
{
    int fd;
    if (s_connect_many (port, &fd, 1, timeout_ms) == -1)
        return -1;
    int flags = fcntl (fd, F_GETFL);
    fcntl (fd, F_SETFL, flags & ~O_NONBLOCK);
    struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof (timeout));
    return fd;
}

//  Write all of data to a socket (blocking, or retrying on EAGAIN); -1 on error.
static int
s_send_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t rc = write (fd, data, size);
        if (rc < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (rc <= 0)
            return -1;
        data += rc;
        size -= (size_t) rc;
    }
    return 0;
}

//  -------------------------------------------------------------------------
//  Byte buffers and answers

//  The gateway's buffer (common/herd_buffer.h).
typedef herd_buffer_t s_buf_t;

//  Make room for extra bytes after size; exits when out of memory.
static void
s_buf_reserve (s_buf_t *buf, size_t extra)
{
    if (!herd_buffer_reserve (buf, extra))
        s_die ("out of memory");
}

//  Size of the first whole answer in data, 0 if not all there yet. An
//  answer is one line ("? ..." or an IAMAT's AT line), or for a WHATSAT an
//  AT line, the JSON body and an empty line (it ends with "\n\n").
static size_t
s_answer_size (const char *data, size_t size, bool whatsat)
{
    const char *newline = memchr (data, '\n', size);
    if (!newline)
        return 0;
    size_t first = (size_t) (newline - data) + 1;
    if (!whatsat || (size >= 2 && data[0] == '?' && data[1] == ' '))
        return first;
    const char *end = memmem (data + first - 1, size - first + 1, "\n\n", 2);
    return end ? (size_t) (end - data) + 2 : 0;
}

//  Read one whole answer on a blocking socket into buf (replacing what it
//  held); returns its size, or -1 on error or time-out.
static ssize_t
s_read_answer (int fd, s_buf_t *buf, bool whatsat)
{
    buf->start = buf->size = 0;
    while (true) {
        size_t size = s_answer_size (buf->data ? buf->data : "", buf->size, whatsat);
        if (size > 0)
            return (ssize_t) size;
        s_buf_reserve (buf, S_READ_CHUNK);
        ssize_t rc = read (fd, buf->data + buf->size, buf->capacity - buf->size);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        buf->size += (size_t) rc;
    }
}

//  Size of the first line of data without its '\n'.
static size_t
s_first_line (const char *data, size_t size)
{
    const char *newline = memchr (data, '\n', size);
    return newline ? (size_t) (newline - data) : size;
}

//  Size of the first whole HTTP response in data (headers and a body of
//  Content-Length bytes), 0 if not all there yet.
static size_t
s_http_size (const char *data, size_t size)
{
    const char *end = memmem (data, size, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t) (end - data) + 4, length = 0;
    const char *field = memmem (data, head, "Content-Length:", 15);
    if (!field)
        field = memmem (data, head, "content-length:", 15);
    if (field)
        length = (size_t) strtoul (field + 15, NULL, 10);
    return head + length <= size ? head + length : 0;
}

//  -------------------------------------------------------------------------
//  IAMAT load: many connections, each keeping depth requests in flight
//  (closed loop) or sent at a fixed total rate (paced)

typedef struct _s_load_t s_load_t;

typedef struct {
    int fd;
    s_load_t *load;
    s_buf_t in;
    s_buf_t out;
    bool want_out;                  //  EPOLLOUT registered
    bool dead;                      //  closed by the server or failed
    int64_t *ring;                  //  send times of the requests in flight
    size_t ring_capacity;
    size_t ring_head;
    size_t ring_count;
    char id[64];                    //  the client id of this connection
    size_t id_size;
    int64_t last_time;              //  last client time used, ns since the epoch
    char last_at[256];              //  the last AT line answered
    size_t last_at_size;
} s_conn_t;

struct _s_load_t {
    int port;
    size_t conn_count;
    size_t depth;                   //  closed loop: requests in flight per connection
    double rate;                    //  > 0: paced, requests per second in all
    uint64_t limit;                 //  > 0: send this many in all, then stop
    bool unique;                    //  a new client id for every request
    char prefix[64];                //  client ids are PREFIX-cN or PREFIX-N
    s_conn_t *conns;
    int epoll;
    int64_t t_start;                //  all connected, first requests sent
    int64_t t_measure;              //  end of the warm-up
    int64_t t_end;                  //  no more requests sent after this
    bool sending;
    s_hist_t *hist;                 //  latencies in the measurement window
    uint64_t measured;              //  answers in the window
    uint64_t sent;
    uint64_t answered;
    uint64_t errors;                //  answers other than AT lines
    uint64_t unique_next;
    size_t next_conn;               //  paced: round robin
};

//  A load on port with conns connections; depth in flight, or rate if > 0.
static s_load_t *
s_load_new (int port, size_t conns, size_t depth, double rate, const char *prefix)
{
    s_load_t *load = (s_load_t *) s_alloc (sizeof (s_load_t));
    load->port = port;
    load->conn_count = conns;
    load->depth = depth;
    load->rate = rate;
    snprintf (load->prefix, sizeof (load->prefix), "%s", prefix);
    load->conns = (s_conn_t *) s_alloc (conns * sizeof (s_conn_t));
    load->hist = (s_hist_t *) s_alloc (sizeof (s_hist_t));
    load->epoll = -1;
    for (size_t i = 0; i < conns; i++) {
        s_conn_t *conn = &load->conns[i];
        conn->fd = -1;
        conn->load = load;
        conn->ring_capacity = depth > 0 ? depth : 64;
        conn->ring = (int64_t *) s_alloc (conn->ring_capacity * sizeof (int64_t));
        int len = snprintf (conn->id, sizeof (conn->id), "%s-c%zu", prefix, i);
        conn->id_size = (size_t) len < sizeof (conn->id) ? (size_t) len : sizeof (conn->id) - 1;
    }
    return load;
}

//  Close every connection and free the load.
static void
s_load_destroy (s_load_t **load_p)
{
    s_load_t *load = *load_p;
    if (!load)
        return;
    for (size_t i = 0; i < load->conn_count; i++) {
        s_conn_t *conn = &load->conns[i];
        if (conn->fd >= 0)
            close (conn->fd);
        free (conn->in.data);
        free (conn->out.data);
        free (conn->ring);
    }
    free (load->conns);
    free (load->hist);
    free (load);
    *load_p = NULL;
}

//  Connect every connection and register it with epoll; -1 on failure.
static int
s_load_connect (s_load_t *load, int epoll)
{
    int *fds = (int *) s_alloc (load->conn_count * sizeof (int));
    int rc = s_connect_many (load->port, fds, load->conn_count, 20000);
    if (rc == 0) {
        load->epoll = epoll;
        for (size_t i = 0; i < load->conn_count; i++) {
            load->conns[i].fd = fds[i];
            struct epoll_event event = {.events = EPOLLIN, .data.ptr = &load->conns[i]};
            epoll_ctl (epoll, EPOLL_CTL_ADD, fds[i], &event);
        }
    }
    free (fds);
    return rc;
}

//  Requests sent and not yet answered.
static uint64_t
s_load_inflight (const s_load_t *load)
{
    return load->sent - load->answered;
}

//  Register the epoll interest the connection needs.
static void
s_conn_want_out (s_conn_t *conn, bool want)
{
    if (want == conn->want_out || conn->dead)
        return;
    struct epoll_event event = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = conn};
    epoll_ctl (conn->load->epoll, EPOLL_CTL_MOD, conn->fd, &event);
    conn->want_out = want;
}

//  Mark a connection dead: what it had in flight will never be answered.
static void
s_conn_kill (s_conn_t *conn, const char *why)
{
    if (conn->dead)
        return;
    s_load_t *load = conn->load;
    fprintf (stderr, "herd_bench: connection %s to port %d: %s\n", conn->id, load->port, why);
    conn->dead = true;
    epoll_ctl (load->epoll, EPOLL_CTL_DEL, conn->fd, NULL);
    load->errors += conn->ring_count;
    load->answered += conn->ring_count;
    conn->ring_count = 0;
}

//  Write pending output; arm EPOLLOUT when the socket is full.
static void
s_conn_flush (s_conn_t *conn)
{
    s_buf_t *out = &conn->out;
    while (out->size > out->start) {
        ssize_t rc = write (conn->fd, out->data + out->start, out->size - out->start);
        if (rc > 0)
            out->start += (size_t) rc;
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        else {
            s_conn_kill (conn, rc < 0 ? strerror (errno) : "write failed");
            return;
        }
    }
    if (out->size == out->start)
        out->start = out->size = 0;
    s_conn_want_out (conn, out->size > out->start);
}

//  Queue count IAMATs, each stamped now for its latency, and write them.
static void
s_conn_send (s_conn_t *conn, size_t count, int64_t now)
{
    s_load_t *load = conn->load;
    if (conn->dead || count == 0)
        return;
    if (conn->ring_count + count > conn->ring_capacity) {
        size_t capacity = conn->ring_capacity * 2;
        while (capacity < conn->ring_count + count)
            capacity *= 2;
        int64_t *ring = (int64_t *) s_alloc (capacity * sizeof (int64_t));
        for (size_t i = 0; i < conn->ring_count; i++)
            ring[i] = conn->ring[(conn->ring_head + i) % conn->ring_capacity];
        free (conn->ring);
        conn->ring = ring;
        conn->ring_capacity = capacity;
        conn->ring_head = 0;
    }
    s_buf_reserve (&conn->out, count * (sizeof (conn->id) + 96));
    char *at = conn->out.data + conn->out.size;
    int64_t clock = s_realtime_ns ();
    for (size_t i = 0; i < count; i++) {
        //  Client times strictly increase per client, so every update is
        //  newer than the last and is applied (and flooded) everywhere
        int64_t when = clock > conn->last_time ? clock : conn->last_time + 1;
        conn->last_time = when;
        memcpy (at, "IAMAT ", 6);
        at += 6;
        if (load->unique) {
            size_t len = strlen (load->prefix);
            memcpy (at, load->prefix, len);
            at += len;
            *at++ = '-';
            at += s_put_u64 (at, load->unique_next++);
        }
        else {
            memcpy (at, conn->id, conn->id_size);
            at += conn->id_size;
        }
        memcpy (at, " " S_POSITION " ", sizeof (S_POSITION) + 1);
        at += sizeof (S_POSITION) + 1;
        at += s_put_u64 (at, (uint64_t) (when / S_NS_PER_SEC));
        *at++ = '.';
        s_put_9 (at, (uint32_t) (when % S_NS_PER_SEC));
        at += 9;
        *at++ = '\n';
        conn->ring[(conn->ring_head + conn->ring_count) % conn->ring_capacity] = now;
        conn->ring_count++;
    }
    conn->out.size = (size_t) (at - conn->out.data);
    load->sent += count;
    s_conn_flush (conn);
}

//  Consume every whole answer line in the input; returns how many.
static size_t
s_conn_take_answers (s_conn_t *conn, int64_t now)
{
    s_load_t *load = conn->load;
    s_buf_t *in = &conn->in;
    size_t count = 0;
    const char *last_at = NULL;
    size_t last_at_size = 0;
    char *newline;
    while ((newline = memchr (in->data + in->start, '\n', in->size - in->start))) {
        char *line = in->data + in->start;
        size_t size = (size_t) (newline - line);
        in->start += size + 1;
        count++;
        if (conn->ring_count == 0) {
            load->errors++;             //  an answer nobody asked for
            continue;
        }
        int64_t sent = conn->ring[conn->ring_head];
        conn->ring_head = (conn->ring_head + 1) % conn->ring_capacity;
        conn->ring_count--;
        load->answered++;
        if (now >= load->t_measure && now < load->t_end) {
            s_hist_record (load->hist, now - sent);
            load->measured++;
        }
        if (size >= 3 && memcmp (line, "AT ", 3) == 0) {
            last_at = line;
            last_at_size = size;
        }
        else {
            load->errors++;
            if (load->errors <= 3)
                fprintf (stderr, "herd_bench: unexpected answer on port %d: %.*s\n", load->port,
                         (int) (size < 200 ? size : 200), line);
        }
    }
    if (last_at && last_at_size < sizeof (conn->last_at)) {
        memcpy (conn->last_at, last_at, last_at_size);
        conn->last_at_size = last_at_size;
    }
    if (in->start == in->size)
        in->start = in->size = 0;
    return count;
}

//  Read answers; in a closed loop, send one new request for each answer.
static void
s_conn_handle_read (s_conn_t *conn)
{
    s_load_t *load = conn->load;
    size_t answers = 0;
    int64_t now = 0;
    while (!conn->dead) {
        s_buf_reserve (&conn->in, S_READ_CHUNK);
        size_t room = conn->in.capacity - conn->in.size;
        ssize_t rc = read (conn->fd, conn->in.data + conn->in.size, room);
        if (rc > 0) {
            now = s_now_ns ();
            conn->in.size += (size_t) rc;
            answers += s_conn_take_answers (conn, now);
            if ((size_t) rc < room)
                break;
        }
        else
        if (rc == 0)
            s_conn_kill (conn, "closed by the server");
        else
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        else
        if (errno != EINTR)
            s_conn_kill (conn, strerror (errno));
    }
    if (load->depth > 0 && load->sending && answers > 0 && now < load->t_end) {
        size_t count = answers;
        if (load->limit > 0 && load->sent + count > load->limit)
            count = (size_t) (load->limit - load->sent);
        s_conn_send (conn, count, now);
    }
}

//  Handle an epoll event on one of the load's connections.
static void
s_load_handle (s_conn_t *conn, uint32_t events)
{
    if (events & EPOLLOUT)
        s_conn_flush (conn);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        s_conn_handle_read (conn);
}

//  Start sending: warm-up of warmup s, then a window of seconds s.
static void
s_load_begin (s_load_t *load, double warmup, double seconds)
{
    int64_t now = s_now_ns ();
    load->t_start = now;
    load->t_measure = now + (int64_t) (warmup * 1e9);
    load->t_end = load->t_measure + (int64_t) (seconds * 1e9);
    load->sending = true;
    if (load->depth > 0)
        for (size_t i = 0; i < load->conn_count; i++) {
            size_t count = load->depth;
            if (load->limit > 0 && load->sent + count > load->limit)
                count = (size_t) (load->limit - load->sent);
            s_conn_send (&load->conns[i], count, now);
        }
}

//  Housekeeping at every loop turn: the end of the window; paced sends.
static void
s_load_tick (s_load_t *load, int64_t now)
{
    if (!load->sending)
        return;
    if (now >= load->t_end || (load->limit > 0 && load->sent >= load->limit)) {
        load->sending = false;
        return;
    }
    if (load->rate > 0) {
        uint64_t due = (uint64_t) ((double) (now - load->t_start) * load->rate / 1e9);
        size_t burst = 0;
        while (load->sent < due && burst < 1000) {
            size_t count = (size_t) (due - load->sent);
            if (count > 16)
                count = 16;
            s_conn_t *conn = &load->conns[load->next_conn];
            load->next_conn = (load->next_conn + 1) % load->conn_count;
            s_conn_send (conn, count, now);
            burst += count;
            if (conn->dead)
                break;
        }
    }
}

//  Run a load on its own until its window ends and its answers are in.
static int
s_load_run (s_load_t *load, double warmup, double seconds)
{
    int epoll = epoll_create1 (EPOLL_CLOEXEC);
    if (s_load_connect (load, epoll) == -1) {
        close (epoll);
        return -1;
    }
    s_load_begin (load, warmup, seconds);
    struct epoll_event events[1024];
    while (true) {
        int count = epoll_wait (epoll, events, 1024, load->rate > 0 ? 1 : 10);
        for (int i = 0; i < count; i++)
            s_load_handle ((s_conn_t *) events[i].data.ptr, events[i].events);
        int64_t now = s_now_ns ();
        s_load_tick (load, now);
        if (!load->sending && s_load_inflight (load) == 0)
            break;
        if (now > load->t_end + S_DRAIN_NS && (load->limit == 0 || !load->sending)) {
            fprintf (stderr, "herd_bench: %" PRIu64 " answers from port %d never came\n",
                     s_load_inflight (load), load->port);
            load->errors += s_load_inflight (load);
            break;
        }
    }
    close (epoll);
    load->epoll = -1;
    return 0;
}

//  -------------------------------------------------------------------------
//  Targets: NAME=PORT[:PID]

typedef struct {
    char name[32];
    int port;
    int pid;                        //  0: unknown, no CPU figures
} s_target_t;

//  Parse NAME=PORT[:PID].
static s_target_t
s_parse_target (const char *text)
{
    s_target_t target = {{0}, 0, 0};
    const char *equals = strrchr (text, '=');      //  names may hold '='
    if (!equals || equals == text || (size_t) (equals - text) >= sizeof (target.name))
        s_die ("bad target '%s' (NAME=PORT[:PID])", text);
    memcpy (target.name, text, (size_t) (equals - text));
    if (sscanf (equals + 1, "%d:%d", &target.port, &target.pid) < 1 || target.port <= 0)
        s_die ("bad target '%s' (NAME=PORT[:PID])", text);
    return target;
}

//  Index of the target called name, or -1.
static int
s_find_target (const s_target_t *targets, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp (targets[i].name, name) == 0)
            return (int) i;
    return -1;
}

//  -------------------------------------------------------------------------
//  Mode iamat: throughput and latency per shape and target, medians of runs

typedef struct {
    double rate;                    //  answers per second in the window
    double p50, p99, p999, max;     //  microseconds
    double server_us;               //  server CPU per request, microseconds
    double gen_pct;                 //  generator CPU use over the run, % of a core
    double other_pct;               //  CPU used by neither, % of a core: noise
    double errors;
} s_result_t;

typedef struct {
    size_t conns;
    size_t depth;
} s_shape_t;

//  One run of one shape against one target.
static s_result_t
s_iamat_once (const s_target_t *target, s_shape_t shape, double warmup, double seconds,
              const char *prefix)
{
    s_result_t result = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    s_load_t *load = s_load_new (target->port, shape.conns, shape.depth, 0, prefix);
    int64_t cpu0 = target->pid ? s_proc_cpu_ns (target->pid) : -1;
    int64_t self0 = s_self_cpu_ns ();
    int64_t busy0 = s_machine_busy_ns ();
    int64_t wall0 = s_now_ns ();
    if (s_load_run (load, warmup, seconds) == 0) {
        int64_t wall = s_now_ns () - wall0;
        int64_t cpu1 = target->pid ? s_proc_cpu_ns (target->pid) : -1;
        int64_t self = s_self_cpu_ns () - self0;
        if (cpu0 >= 0 && cpu1 >= 0 && busy0 >= 0)
            result.other_pct = fmax (0, 100.0 * (double) (s_machine_busy_ns () - busy0 - self
                                                         - (cpu1 - cpu0))
                                            / (double) wall);
        result.rate = (double) load->measured / seconds;
        result.p50 = s_hist_quantile_us (load->hist, 0.50);
        result.p99 = s_hist_quantile_us (load->hist, 0.99);
        result.p999 = s_hist_quantile_us (load->hist, 0.999);
        result.max = (double) load->hist->max / 1000.0;
        if (cpu0 >= 0 && cpu1 >= 0 && load->answered > 0)
            result.server_us = (double) (cpu1 - cpu0) / 1000.0 / (double) load->answered;
        result.gen_pct = 100.0 * (double) self / (double) wall;
        result.errors = (double) load->errors;
    }
    s_load_destroy (&load);
    return result;
}

//  The issue's targets for one shape: herd / floor and herd / asyncio minima.
static void
s_iamat_goals (s_shape_t shape, double *floor_goal, double *asyncio_goal, double *p99_goal)
{
    *floor_goal = *asyncio_goal = *p99_goal = NAN;
    if (shape.conns == 50 && shape.depth == 32) {
        *floor_goal = 0.60;
        *asyncio_goal = 500;
    }
    else
    if (shape.conns == 50 && shape.depth == 1) {
        *floor_goal = 0.80;
        *asyncio_goal = 100;
        *p99_goal = 1000;
    }
    else
    if (shape.conns == 1000 && shape.depth == 1)
        *floor_goal = 0.80;
}

//  "met" or "MISSED by N %" for a measured value against a minimum goal.
static const char *
s_verdict (double value, double goal, bool at_most, char *buffer, size_t size)
{
    if (isnan (goal) || isnan (value))
        snprintf (buffer, size, "-");
    else
    if (at_most ? value < goal : value >= goal)
        snprintf (buffer, size, "met");
    else
    if (at_most)
        snprintf (buffer, size, "MISSED (%.2fx the limit)", value / goal);
    else
        snprintf (buffer, size, "MISSED (%.0f %% of goal)", 100.0 * value / goal);
    return buffer;
}

//  herd_bench iamat: the matrix of shapes x targets, interleaved runs.
static int
s_mode_iamat (int argc, char *argv[])
{
    s_target_t targets[S_MAX_TARGETS];
    size_t target_count = 0;
    s_shape_t shapes[S_MAX_SHAPES];
    size_t shape_count = 0;
    double seconds = 3, warmup = 0.5;
    size_t runs = 3;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--target") == 0 && i + 1 < argc && target_count < S_MAX_TARGETS)
            targets[target_count++] = s_parse_target (argv[++i]);
        else
        if (strcmp (argv[i], "--shape") == 0 && i + 1 < argc && shape_count < S_MAX_SHAPES) {
            if (sscanf (argv[++i], "%zux%zu", &shapes[shape_count].conns,
                        &shapes[shape_count].depth)
                    != 2
                || shapes[shape_count].conns == 0 || shapes[shape_count].depth == 0)
                s_die ("bad shape '%s' (NxD)", argv[i]);
            shape_count++;
        }
        else
        if (strcmp (argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof (argv[++i]);
        else
        if (strcmp (argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = atof (argv[++i]);
        else
        if (strcmp (argv[i], "--runs") == 0 && i + 1 < argc)
            runs = (size_t) atoi (argv[++i]);
        else
            s_die ("iamat: unknown option '%s'", argv[i]);
    }
    if (target_count == 0)
        s_die ("iamat: give at least one --target NAME=PORT[:PID]");
    if (shape_count == 0) {
        s_shape_t defaults[] = {{1, 1}, {50, 1}, {50, 32}, {1000, 1}};
        shape_count = 4;
        memcpy (shapes, defaults, sizeof (defaults));
    }
    if (runs < 1 || runs > S_MAX_RUNS || seconds <= 0)
        s_die ("iamat: --runs 1..%d, --seconds > 0", S_MAX_RUNS);

    static s_result_t results[S_MAX_SHAPES][S_MAX_TARGETS][S_MAX_RUNS];
    for (size_t s = 0; s < shape_count; s++)
        for (size_t r = 0; r < runs; r++)
            for (size_t t = 0; t < target_count; t++) {
                char prefix[64];
                snprintf (prefix, sizeof (prefix), "b%d-%zux%zu-r%zu", (int) getpid (),
                          shapes[s].conns, shapes[s].depth, r);
                s_result_t *result = &results[s][t][r];
                *result = s_iamat_once (&targets[t], shapes[s], warmup, seconds, prefix);
                s_progress ("iamat %zux%zu run %zu/%zu %-8s %10.0f req/s  p50 %.1f us  p99 "
                            "%.1f us  max %.0f us  errors %.0f",
                            shapes[s].conns, shapes[s].depth, r + 1, runs, targets[t].name,
                            result->rate, result->p50, result->p99, result->max,
                            result->errors);
                s_sleep_ms (200);   //  let the server close the connections
            }

    //  Medians over runs, per metric
    static s_result_t median[S_MAX_SHAPES][S_MAX_TARGETS];
    static double low[S_MAX_SHAPES][S_MAX_TARGETS], high[S_MAX_SHAPES][S_MAX_TARGETS];
    for (size_t s = 0; s < shape_count; s++)
        for (size_t t = 0; t < target_count; t++) {
            double values[9][S_MAX_RUNS];
            low[s][t] = INFINITY;
            high[s][t] = -INFINITY;
            for (size_t r = 0; r < runs; r++) {
                s_result_t *one = &results[s][t][r];
                double fields[] = {one->rate,      one->p50,     one->p99,
                                   one->p999,      one->max,     one->server_us,
                                   one->gen_pct,   one->errors,  one->other_pct};
                for (size_t f = 0; f < 9; f++)
                    values[f][r] = fields[f];
                low[s][t] = fmin (low[s][t], one->rate);
                high[s][t] = fmax (high[s][t], one->rate);
            }
            s_result_t *m = &median[s][t];
            m->rate = s_median (values[0], runs);
            m->p50 = s_median (values[1], runs);
            m->p99 = s_median (values[2], runs);
            m->p999 = s_median (values[3], runs);
            m->max = s_median (values[4], runs);
            m->server_us = s_median (values[5], runs);
            m->gen_pct = s_median (values[6], runs);
            m->errors = s_median (values[7], runs);
            m->other_pct = s_median (values[8], runs);
        }

    printf ("\nIAMAT throughput and latency: %.1f s window after %.1f s warm-up, median of %zu "
            "run%s (runs interleaved across targets)\n",
            seconds, warmup, runs, runs > 1 ? "s" : "");
    printf ("%-8s %-9s %11s %19s %9s %9s %9s %9s %9s %8s %6s %6s\n", "shape", "target",
            "req/s", "[min..max]", "p50 us", "p99 us", "p99.9 us", "max us", "srv us/rq",
            "gen cpu", "other", "errors");
    for (size_t s = 0; s < shape_count; s++) {
        char shape_name[32];
        snprintf (shape_name, sizeof (shape_name), "%zux%zu", shapes[s].conns, shapes[s].depth);
        for (size_t t = 0; t < target_count; t++) {
            s_result_t *m = &median[s][t];
            char range[48], a[16], b[16], c[16], d[16], e[16];
            snprintf (range, sizeof (range), "[%.0f..%.0f]", low[s][t], high[s][t]);
            printf ("%-8s %-9s %11.0f %19s %9s %9s %9s %9s %9s %7.0f%% %5.0f%% %6.0f\n",
                    shape_name, targets[t].name, m->rate, range, s_us (m->p50, a, sizeof (a)),
                    s_us (m->p99, b, sizeof (b)), s_us (m->p999, c, sizeof (c)),
                    s_us (m->max, d, sizeof (d)), s_us (m->server_us, e, sizeof (e)),
                    m->gen_pct, m->other_pct, m->errors);
            const char *names[] = {"req_per_s",     "p50",    "p99",
                                   "p99.9",         "max",    "server_cpu_per_req",
                                   "generator_cpu", "errors", "other_cpu"};
            const char *units[] = {"1/s", "us", "us", "us", "us", "us", "%", "count", "%"};
            double values[] = {m->rate, m->p50,     m->p99,    m->p999,     m->max,
                               m->server_us, m->gen_pct, m->errors, m->other_pct};
            for (size_t f = 0; f < 9; f++)
                s_csv_row ("iamat", targets[t].name, shape_name, names[f], values[f], units[f]);
            for (size_t r = 0; r < runs; r++) {
                char metric[32];
                snprintf (metric, sizeof (metric), "req_per_s_run%zu", r + 1);
                s_csv_row ("iamat", targets[t].name, shape_name, metric, results[s][t][r].rate,
                           "1/s");
            }
        }
    }

    printf ("(srv us/rq: the server's CPU, all threads, per request; gen cpu: the generator's "
            "CPU, 100 %% = its core saturated;\n other: CPU used by anything else on the "
            "machine, in %% of a core - noise, and kernel work not charged to a process)\n");

    //  Ratios and goals, when the conventional names are there
    int herd = s_find_target (targets, target_count, "herd");
    int floor_t = s_find_target (targets, target_count, "floor");
    int asyncio = s_find_target (targets, target_count, "asyncio");
    if (herd >= 0 && (floor_t >= 0 || asyncio >= 0)) {
        printf ("\nRatios (medians) and issue 6's goals\n");
        printf ("%-8s %10s %-26s %13s %-26s %-24s\n", "shape", "herd/floor", "  goal",
                "herd/asyncio", "  goal", "herd p99 < 1 ms");
        for (size_t s = 0; s < shape_count; s++) {
            char shape_name[32];
            snprintf (shape_name, sizeof (shape_name), "%zux%zu", shapes[s].conns,
                      shapes[s].depth);
            double floor_goal, asyncio_goal, p99_goal;
            s_iamat_goals (shapes[s], &floor_goal, &asyncio_goal, &p99_goal);
            double to_floor = floor_t >= 0 ? median[s][herd].rate / median[s][floor_t].rate : NAN;
            double to_asyncio =
                asyncio >= 0 ? median[s][herd].rate / median[s][asyncio].rate : NAN;
            char v1[64], v2[64], v3[64], g1[96], g2[96];
            snprintf (g1, sizeof (g1), isnan (floor_goal) ? "  -" : "  >= %.2f: %s", floor_goal,
                      s_verdict (to_floor, floor_goal, false, v1, sizeof (v1)));
            snprintf (g2, sizeof (g2), isnan (asyncio_goal) ? "  -" : "  >= %.0fx: %s",
                      asyncio_goal, s_verdict (to_asyncio, asyncio_goal, false, v2, sizeof (v2)));
            printf ("%-8s %10.3f %-26s %12.1fx %-26s %-24s\n", shape_name, to_floor, g1,
                    to_asyncio, g2,
                    isnan (p99_goal)
                        ? "-"
                        : s_verdict (median[s][herd].p99, p99_goal, true, v3, sizeof (v3)));
            s_csv_row ("iamat", "herd/floor", shape_name, "ratio", to_floor, "x");
            s_csv_row ("iamat", "herd/asyncio", shape_name, "ratio", to_asyncio, "x");
        }
        if (floor_t >= 0) {
            printf ("\nIs the generator the bottleneck? It drives the floor faster than the "
                    "herd at every shape:\n");
            for (size_t s = 0; s < shape_count; s++) {
                double f = median[s][floor_t].rate, h = median[s][herd].rate;
                printf ("  %4zux%-3zu floor %10.0f req/s  herd %10.0f req/s  floor/herd %5.2fx "
                        " %s (generator CPU with floor %.0f%%)\n",
                        shapes[s].conns, shapes[s].depth, f, h, f / h,
                        f > h ? "yes" : "NO: the figure is a bound of the generator",
                        median[s][floor_t].gen_pct);
            }
        }
    }
    return 0;
}

//  -------------------------------------------------------------------------
//  WHATSAT on a blocking connection: the AT line of the answer

//  Ask port for client; fills line (NUL-ended first line of the answer,
//  at most size - 1 bytes). Returns 0, or -1 on error.
static int
s_whatsat_line (int fd, const char *client, char *line, size_t size)
{
    static s_buf_t buf;
    char request[256];
    int len = snprintf (request, sizeof (request), "WHATSAT %s 1 1\n", client);
    if (len <= 0 || (size_t) len >= sizeof (request) || s_send_all (fd, request, (size_t) len))
        return -1;
    if (s_read_answer (fd, &buf, true) < 0)
        return -1;
    size_t first = s_first_line (buf.data, buf.size);
    if (first >= size)
        first = size - 1;
    memcpy (line, buf.data, first);
    line[first] = 0;
    return 0;
}

//  -------------------------------------------------------------------------
//  Mode fleet: load on one node of a herd; every node must apply every update

//  herd_bench fleet: IAMAT load on one node, CPU per update on every node,
//  then a WHATSAT sample on every node until all show the last updates.
static int
s_mode_fleet (int argc, char *argv[])
{
    s_target_t nodes[S_MAX_NODES];
    size_t node_count = 0;
    int load_port = 0;
    s_shape_t shape = {50, 32};
    double seconds = 3, warmup = 0.5;
    const char *sent_file = NULL;
    size_t sample = 20;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--node") == 0 && i + 1 < argc && node_count < S_MAX_NODES)
            nodes[node_count++] = s_parse_target (argv[++i]);
        else
        if (strcmp (argv[i], "--load") == 0 && i + 1 < argc)
            load_port = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--shape") == 0 && i + 1 < argc) {
            if (sscanf (argv[++i], "%zux%zu", &shape.conns, &shape.depth) != 2)
                s_die ("bad shape '%s'", argv[i]);
        }
        else
        if (strcmp (argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof (argv[++i]);
        else
        if (strcmp (argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = atof (argv[++i]);
        else
        if (strcmp (argv[i], "--sent-file") == 0 && i + 1 < argc)
            sent_file = argv[++i];
        else
        if (strcmp (argv[i], "--sample") == 0 && i + 1 < argc)
            sample = (size_t) atoi (argv[++i]);
        else
            s_die ("fleet: unknown option '%s'", argv[i]);
    }
    if (load_port == 0 || node_count == 0)
        s_die ("fleet: give --load PORT and every --node NAME=PORT:PID");
    const char *load_name = "?";
    for (size_t n = 0; n < node_count; n++)
        if (nodes[n].port == load_port)
            load_name = nodes[n].name;

    char prefix[64];
    snprintf (prefix, sizeof (prefix), "fleet%d", (int) getpid ());
    s_load_t *load = s_load_new (load_port, shape.conns, shape.depth, 0, prefix);
    int64_t cpu0[S_MAX_NODES];
    for (size_t n = 0; n < node_count; n++)
        cpu0[n] = s_proc_cpu_ns (nodes[n].pid);
    int64_t wall0 = s_now_ns ();
    if (s_load_run (load, warmup, seconds) == -1)
        s_die ("fleet: cannot load port %d", load_port);
    int64_t load_end = s_now_ns ();
    double rate = (double) load->measured / seconds;
    uint64_t acked = load->answered - load->errors;
    s_progress ("fleet: %" PRIu64 " IAMATs acknowledged by %s, %.0f/s in the window", acked,
                load_name, rate);
    if (sent_file) {
        //  First, so that the flood figures exist whatever happens next
        FILE *file = fopen (sent_file, "w");
        if (!file)
            s_die ("cannot write %s", sent_file);
        fprintf (file, "%" PRIu64 "\n", acked);
        fclose (file);
    }

    //  Every node must show the last AT line of each sampled client; a node
    //  that no longer answers is reported, not waited for
    int fds[S_MAX_NODES];
    bool gone[S_MAX_NODES] = {false};
    size_t alive = node_count;
    for (size_t n = 0; n < node_count; n++)
        if ((fds[n] = s_dial (nodes[n].port, 5000)) < 0) {
            gone[n] = true;
            alive--;
        }
    if (sample > shape.conns)
        sample = shape.conns;
    size_t checks = sample * node_count, matched = 0;
    bool *ok = (bool *) s_alloc (checks * sizeof (bool));
    //  The buses may lag far behind the gateway: allow them time to catch up
    int64_t deadline = load_end + (int64_t) (fmax (30, 10 * (seconds + warmup)) * 1e9);
    while (matched < sample * alive && s_now_ns () < deadline) {
        for (size_t c = 0; c < sample; c++) {
            s_conn_t *conn = &load->conns[c * shape.conns / sample];
            for (size_t n = 0; n < node_count; n++) {
                if (ok[c * node_count + n] || gone[n])
                    continue;
                char line[256];
                if (s_whatsat_line (fds[n], conn->id, line, sizeof (line)) == -1) {
                    gone[n] = true;
                    alive--;
                    for (size_t d = 0; d < sample; d++)
                        if (ok[d * node_count + n]) {
                            ok[d * node_count + n] = false;
                            matched--;
                        }
                    continue;
                }
                if (strlen (line) == conn->last_at_size
                    && memcmp (line, conn->last_at, conn->last_at_size) == 0) {
                    ok[c * node_count + n] = true;
                    matched++;
                }
            }
        }
        if (matched < sample * alive)
            s_sleep_ms (20);
    }
    int64_t converged = s_now_ns ();
    for (size_t n = 0; n < node_count; n++)
        if (fds[n] >= 0)
            close (fds[n]);
    free (ok);
    bool all = matched == checks;

    printf ("\nFive-node herd, IAMAT load %zux%zu on %s for %.1f s (after %.1f s warm-up)\n",
            shape.conns, shape.depth, load_name, seconds, warmup);
    char a[16], b[16];
    printf ("  acknowledged: %.0f IAMAT/s (p50 %s us, p99 %s us), %" PRIu64
            " in all, %" PRIu64 " errors\n",
            rate, s_us (s_hist_quantile_us (load->hist, 0.5), a, sizeof (a)),
            s_us (s_hist_quantile_us (load->hist, 0.99), b, sizeof (b)), acked, load->errors);
    for (size_t n = 0; n < node_count; n++)
        if (gone[n])
            printf ("  NODE %s STOPPED ANSWERING (crashed? see its stderr and log)\n",
                    nodes[n].name);
    printf ("  every node shows the last update of %zu sampled clients: %s, %.0f ms after the "
            "load ended\n",
            sample, all ? "yes" : "NO", (double) (converged - load_end) / 1e6);
    //  What the herd sustains: every update taken, until every node has it
    double sustained = (double) acked / ((double) (converged - load->t_start) / 1e9);
    if (all)
        printf ("  sustained, all nodes applied: %.0f updates/s (%" PRIu64 " updates from the "
                "first IAMAT until every node showed the last)\n",
                sustained, acked);
    s_csv_row ("fleet", load_name, "", "sustained_per_s", all ? sustained : NAN, "1/s");
    s_csv_row ("fleet", load_name, "", "acked_per_s", rate, "1/s");
    s_csv_row ("fleet", load_name, "", "acked", (double) acked, "count");
    s_csv_row ("fleet", load_name, "", "converged", all, "bool");
    s_csv_row ("fleet", load_name, "", "converge_after_load", (double) (converged - load_end) / 1e6,
               "ms");
    printf ("  %-10s %14s %14s\n", "node", "CPU s", "CPU us/update");
    double total = 0;
    for (size_t n = 0; n < node_count; n++) {
        int64_t cpu1 = s_proc_cpu_ns (nodes[n].pid);
        if (cpu1 < 0 || cpu0[n] < 0) {
            printf ("  %-10s %14s %14s\n", nodes[n].name, "gone", "-");
            continue;
        }
        double cpu = (double) (cpu1 - cpu0[n]) / 1e9;
        total += cpu;
        printf ("  %-10s %14.2f %14.2f\n", nodes[n].name, cpu, cpu * 1e6 / (double) acked);
        s_csv_row ("fleet", nodes[n].name, "", "cpu_per_update", cpu * 1e6 / (double) acked, "us");
    }
    printf ("  %-10s %14.2f %14.2f   (wall %.1f s)\n", "all", total, total * 1e6 / (double) acked,
            (double) (converged - wall0) / 1e9);
    s_load_destroy (&load);
    return all ? 0 : 1;
}

//  -------------------------------------------------------------------------
//  Mode flood: bus messages per update, from the nodes' "bus stopped" lines

//  herd_bench flood: read each log's last "bus stopped: ..." line.
static int
s_mode_flood (int argc, char *argv[])
{
    const char *names[S_MAX_NODES], *paths[S_MAX_NODES];
    size_t count = 0;
    double sent = 0, edges = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--log") == 0 && i + 1 < argc && count < S_MAX_NODES) {
            char *spec = argv[++i], *equals = strchr (spec, '=');
            if (!equals)
                s_die ("bad --log '%s' (NAME=FILE)", spec);
            *equals = 0;
            names[count] = spec;
            paths[count++] = equals + 1;
        }
        else
        if (strcmp (argv[i], "--sent") == 0 && i + 1 < argc)
            sent = atof (argv[++i]);
        else
        if (strcmp (argv[i], "--sent-file") == 0 && i + 1 < argc) {
            FILE *file = fopen (argv[++i], "r");
            if (!file || fscanf (file, "%lf", &sent) != 1)
                s_die ("cannot read %s", argv[i]);
            fclose (file);
        }
        else
        if (strcmp (argv[i], "--edges") == 0 && i + 1 < argc)
            edges = atof (argv[++i]);
        else
            s_die ("flood: unknown option '%s'", argv[i]);
    }
    if (count == 0 || sent <= 0)
        s_die ("flood: give --sent N (or --sent-file) and --log NAME=FILE for every node");
    printf ("\nFlood cost on %zu nodes, %.0f edges: %.0f updates taken by the gateways\n", count,
            edges, sent);
    printf ("  %-10s %10s %10s %10s %8s %10s\n", "node", "clients", "applied", "stale", "dropped",
            "lost");
    double applied_sum = 0, stale_sum = 0, lost_sum = 0, published_sum = 0, messages_sum = 0;
    size_t stopped = 0;
    for (size_t n = 0; n < count; n++) {
        FILE *file = fopen (paths[n], "r");
        if (!file)
            s_die ("cannot read %s", paths[n]);
        char line[4096];
        unsigned long long clients = 0, applied = 0, stale = 0, dropped = 0;
        unsigned long long published = 0, messages = 0;
        bool found = false;
        while (fgets (line, sizeof (line), file)) {
            char *at = strstr (line, " bus stopped: ");
            if (at)
                published = messages = 0;
            if (at
                && sscanf (at, " bus stopped: %llu clients, %llu applied, %llu stale, %llu dropped, "
                           "%llu published in %llu messages",
                           &clients, &applied, &stale, &dropped, &published, &messages)
                       >= 4)
                found = true;
        }
        fclose (file);
        if (!found) {
            printf ("  %-10s no 'bus stopped' line in its log: it did not stop cleanly\n",
                    names[n]);
            continue;
        }
        double lost = sent - (double) applied;
        printf ("  %-10s %10llu %10llu %10llu %8llu %10.0f\n", names[n], clients, applied, stale,
                dropped, lost);
        stopped++;
        applied_sum += (double) applied;
        stale_sum += (double) stale;
        published_sum += (double) published;
        messages_sum += (double) messages;
        lost_sum += lost > 0 ? lost : 0;
        s_csv_row ("flood", names[n], "", "applied", (double) applied, "count");
        s_csv_row ("flood", names[n], "", "stale", (double) stale, "count");
        s_csv_row ("flood", names[n], "", "lost", lost, "count");
    }
    if (stopped < count)
        printf ("  ONLY %zu OF %zu NODES STOPPED CLEANLY: the figures below miss the others\n",
                stopped, count);
    //  Every bus message a node receives is applied or stale; the gateway's
    //  hand-over of each update to its own bus is counted once in applied
    double received = (applied_sum + stale_sum) / sent;
    double wire = (applied_sum + stale_sum - sent) / sent;
    printf ("  (applied + stale) summed / updates = %.2f: 1 gateway hand-over + %.2f bus records "
            "per update\n",
            received, wire);
    if (edges > 0)
        printf ("  bound: each edge carries an update at most once each way: 2 x %.0f = %.0f "
                "records per update: %s\n",
                edges, 2 * edges, wire <= 2 * edges + 1e-9 ? "within the bound" : "ABOVE");
    if (messages_sum > 0)
        printf ("  records go out batched: %.0f published in %.0f PUB messages, %.1f records per "
                "message (each message reaches every neighbour of its sender)\n",
                published_sum, messages_sum, published_sum / messages_sum);
    printf ("  lost (updates some node never applied): %.0f of %.0f x %zu\n", lost_sum, sent,
            count);
    s_csv_row ("flood", "all", "", "received_per_update", received, "x");
    s_csv_row ("flood", "all", "", "bus_records_per_update", wire, "x");
    if (messages_sum > 0)
        s_csv_row ("flood", "all", "", "records_per_message", published_sum / messages_sum, "x");
    s_csv_row ("flood", "all", "", "lost", lost_sum, "count");
    return 0;
}

//  -------------------------------------------------------------------------
//  Mode propagation: end to end, from the IAMAT's send at one node until a
//  GET on the sync socket of a node k hops away returns that AT line. GET
//  reads the far bus's table and never calls Places.

#define S_GET_WAIT_MS   2000        //  bound on every GET's answer

typedef struct {
    int hops;
    char sync[256];                 //  its sync endpoint
    zsock_t *dealer;
    s_hist_t *hist;                 //  IAMAT send -> GET returns it
    s_hist_t *none;                 //  IAMAT send -> the last GET sent that found nothing
    s_hist_t *applied;              //  IAMAT send -> the node applied it (its RECORD says when)
} s_hop_t;

typedef struct {
    const char *herd;               //  herd name, for the envelope
    s_hop_t *hops;
    size_t hop_count;
    int origin;                     //  client connection to the origin
    s_buf_t in;                     //  its answers
    s_hist_t *rtt;                  //  GET round trips that found nothing yet
    s_hist_t *ack;                  //  IAMAT send -> its answer at the origin
    uint64_t polls, mismatches;
    //  The sample in flight
    bool started, acked, found;
    int64_t t_send_real;            //  the IAMAT's send, real time (its client time)
    size_t sample, target;
    char id[64];
    char suffix[160];               //  " id position time": how its AT line ends
    int64_t t_send, t_get, t_none;  //  t_none: the send of the last GET that found nothing
} s_prop_t;

//  Ask the target hop's node for this sample's client.
static void
s_prop_get (s_prop_t *prop)
{
    s_hop_t *hop = &prop->hops[prop->target];
    prop->t_get = s_now_ns ();
    prop->polls++;
    if (herd_msg_send (&(herd_msg_t){.id = HERD_MSG_ID_GET, .herd = prop->herd,
                                     .client = herd_msg_str (prop->id)},
                       hop->dealer, 0))
        s_die ("propagation: cannot send GET to %s in %d ms", hop->sync, S_GET_WAIT_MS);
}

//  A new sample: IAMAT a new client at the origin, then GET it at once at
//  the next hop that still needs samples (round robin).
static void
s_prop_start (s_prop_t *prop, const char *label, size_t samples)
{
    for (size_t h = 0; h < prop->hop_count; h++) {
        prop->target = (prop->sample + h) % prop->hop_count;
        if (prop->hops[prop->target].hist->count < samples)
            break;
    }
    snprintf (prop->id, sizeof (prop->id), "prop%d-%s-%zu", (int) getpid (), label,
              prop->sample);
    int64_t clock = s_realtime_ns ();
    char time[48];
    snprintf (time, sizeof (time), "%" PRId64 ".%09d", clock / S_NS_PER_SEC,
              (int) (clock % S_NS_PER_SEC));
    snprintf (prop->suffix, sizeof (prop->suffix), " %s " S_POSITION " %s", prop->id, time);
    char line[256];
    int len = snprintf (line, sizeof (line), "IAMAT%s\n", prop->suffix);
    prop->t_send = s_now_ns ();
    prop->t_send_real = clock;
    if (s_send_all (prop->origin, line, (size_t) len))
        s_die ("propagation: write to the origin failed");
    prop->started = true;
    prop->acked = prop->found = false;
    prop->t_none = 0;
    s_prop_get (prop);
}

//  Read what a non-blocking socket has into buf; exits when it is closed.
static void
s_read_available (int fd, s_buf_t *buf)
{
    while (true) {
        s_buf_reserve (buf, S_READ_CHUNK);
        ssize_t rc = read (fd, buf->data + buf->size, buf->capacity - buf->size);
        if (rc > 0)
            buf->size += (size_t) rc;
        else
        if (rc < 0 && errno == EINTR)
            continue;
        else
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        else
            s_die ("propagation: the origin closed the connection");
    }
}

//  The origin's answers: this sample's AT line, checked.
static void
s_prop_on_origin (s_prop_t *prop)
{
    s_read_available (prop->origin, &prop->in);
    size_t size;
    while (prop->in.size > prop->in.start
           && (size = s_answer_size (prop->in.data + prop->in.start,
                                     prop->in.size - prop->in.start, false))) {
        const char *answer = prop->in.data + prop->in.start;
        size_t first = s_first_line (answer, size);
        size_t tail = strlen (prop->suffix);
        prop->in.start += size;
        if (!prop->started || prop->acked || memcmp (answer, "AT ", 3) != 0 || first < tail
            || memcmp (answer + first - tail, prop->suffix, tail) != 0)
            s_die ("propagation: bad answer to IAMAT: %.*s", (int) first, answer);
        prop->acked = true;
        s_hist_record (prop->ack, s_now_ns () - prop->t_send);
    }
    if (prop->in.start == prop->in.size)
        prop->in.start = prop->in.size = 0;
}

//  Receive the target's answer to GET (waits S_GET_WAIT_MS at most) into
//  in: RECORD or NONE; exits on anything else. Destroy the message returned.
static zmsg_t *
s_prop_answer (s_prop_t *prop, herd_msg_t *in)
{
    s_hop_t *hop = &prop->hops[prop->target];
    zmsg_t *msg = zmsg_recv (hop->dealer);
    char reason[HERD_MSG_REASON_MAX];
    if (!msg)
        s_die ("propagation: no answer to GET from %s in %d ms (receive: %s)", hop->sync,
               S_GET_WAIT_MS, zmq_strerror (errno));
    if (herd_msg_decode (in, msg, HERD_MSG_CONTROL, NULL, reason, sizeof (reason)))
        s_die ("propagation: bad answer to GET from %s: %s", hop->sync, reason);
    if (in->id != HERD_MSG_ID_RECORD && in->id != HERD_MSG_ID_GET_NONE)
        s_die ("propagation: %s answered GET with %s %.*s", hop->sync,
               herd_msg_command (in->id), (int) in->reason.size, (const char *) in->reason.data);
    return msg;
}

//  The target's answer to GET: RECORD of this IAMAT ends the sample's
//  clock; NONE (or an older record) asks again.
static void
s_prop_on_get (s_prop_t *prop, int64_t now)
{
    s_hop_t *hop = &prop->hops[prop->target];
    herd_msg_t in;
    zmsg_t *msg = s_prop_answer (prop, &in);
    size_t tail = strlen (prop->suffix);
    if (in.id == HERD_MSG_ID_RECORD && in.line.size >= tail
        && memcmp ((const char *) in.line.data + in.line.size - tail, prop->suffix, tail) == 0) {
        prop->found = true;
        s_hist_record (hop->hist, now - prop->t_send);
        s_hist_record (hop->none, prop->t_none ? prop->t_none - prop->t_send : 0);
        //  Same host, same real-time clock: when the far bus applied it
        s_hist_record (hop->applied, (int64_t) in.applied * 1000 - prop->t_send_real);
    }
    else {
        if (in.id == HERD_MSG_ID_RECORD)
            prop->mismatches++;
        s_hist_record (prop->rtt, now - prop->t_get);
        prop->t_none = prop->t_get;
        s_prop_get (prop);
    }
    zmsg_destroy (&msg);
}

//  Print and record one hop's figures.
static void
s_prop_report_hop (const s_prop_t *prop, size_t h, const char *label, double bg_achieved,
                   double bg_p99)
{
    const s_hop_t *hop = &prop->hops[h];
    char a[16], b[16], c[16], d[16], e[16], f[16], g[16], param[32];
    printf ("  %-12s %4d %8" PRIu64 " %10s %10s %10s %10s %10s %10s %10s", label, hop->hops,
            hop->hist->count, s_us (s_hist_quantile_us (hop->hist, 0.5), a, sizeof (a)),
            s_us (s_hist_quantile_us (hop->hist, 0.99), b, sizeof (b)),
            s_us ((double) hop->hist->max / 1000.0, c, sizeof (c)),
            s_us (s_hist_quantile_us (hop->none, 0.5), d, sizeof (d)),
            s_us (s_hist_quantile_us (hop->none, 0.99), e, sizeof (e)),
            s_us (s_hist_quantile_us (hop->applied, 0.5), f, sizeof (f)),
            s_us (s_hist_quantile_us (hop->applied, 0.99), g, sizeof (g)));
    if (h == 0)
        printf ("   IAMAT answer p50 %s us, GET RTT p50 %s us, %" PRIu64 " GETs%s",
                s_us (s_hist_quantile_us (prop->ack, 0.5), c, sizeof (c)),
                s_us (s_hist_quantile_us (prop->rtt, 0.5), a, sizeof (a)), prop->polls,
                prop->mismatches ? ", OTHER RECORDS RETURNED" : "");
    if (h == 0 && bg_achieved > 0)
        printf (", background %.0f/s achieved, its p99 %s us", bg_achieved,
                s_us (bg_p99, b, sizeof (b)));
    printf ("\n");
    snprintf (param, sizeof (param), "%d hops", hop->hops);
    s_csv_row ("propagation", label, param, "p50", s_hist_quantile_us (hop->hist, 0.5), "us");
    s_csv_row ("propagation", label, param, "p99", s_hist_quantile_us (hop->hist, 0.99), "us");
    s_csv_row ("propagation", label, param, "max", (double) hop->hist->max / 1000.0, "us");
    s_csv_row ("propagation", label, param, "samples", (double) hop->hist->count, "count");
    s_csv_row ("propagation", label, param, "absent_p50", s_hist_quantile_us (hop->none, 0.5),
               "us");
    s_csv_row ("propagation", label, param, "applied_p50", s_hist_quantile_us (hop->applied, 0.5),
               "us");
    s_csv_row ("propagation", label, param, "applied_p99",
               s_hist_quantile_us (hop->applied, 0.99), "us");
}

//  Wait (1 ms at most) for the origin, the target's DEALER or the background
//  load; handle what came. False when a GET has had no answer in
//  S_GET_WAIT_MS.
static bool
s_prop_wait (s_prop_t *prop, int epoll)
{
    zmq_pollitem_t items[] = {{NULL, epoll, ZMQ_POLLIN, 0},
                              {zsock_resolve (prop->hops[prop->target].dealer), 0, ZMQ_POLLIN, 0}};
    int count = zmq_poll (items, prop->started && !prop->found ? 2 : 1, 1);
    if (count == -1 && errno != EINTR)
        s_die ("propagation: zmq_poll: %s", zmq_strerror (errno));
    int64_t now = s_now_ns ();
    if (count > 0 && items[1].revents & ZMQ_POLLIN)
        s_prop_on_get (prop, now);
    struct epoll_event events[1024];
    int ready = epoll_wait (epoll, events, 1024, 0);
    for (int i = 0; i < ready; i++) {
        void *ptr = events[i].data.ptr;
        if (ptr == prop)
            s_prop_on_origin (prop);
        else
            s_load_handle ((s_conn_t *) ptr, events[i].events);
    }
    bool waiting = prop->started && !prop->found;
    return !waiting || count > 0 || now - prop->t_get < S_GET_WAIT_MS * 1000000LL;
}

//  One propagation case: samples per hop at a background rate (0: idle).
static void
s_propagation_case (s_prop_t *prop, int origin_port, size_t samples, double seconds,
                    double bg_rate, size_t bg_conns)
{
    int epoll = epoll_create1 (EPOLL_CLOEXEC);
    s_load_t *bg = NULL;
    char label[32];
    snprintf (label, sizeof (label), bg_rate > 0 ? "%.0f/s" : "idle", bg_rate);
    if (bg_rate > 0) {
        char prefix[64];
        snprintf (prefix, sizeof (prefix), "bg%d-%.0f", (int) getpid (), bg_rate);
        bg = s_load_new (origin_port, bg_conns, 0, bg_rate, prefix);
        if (s_load_connect (bg, epoll) == -1)
            s_die ("propagation: cannot connect the background load");
        s_load_begin (bg, 0.5, 1e6);
    }
    if (s_connect_many (origin_port, &prop->origin, 1, 5000) == -1)
        s_die ("propagation: cannot connect to port %d", origin_port);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = prop};
    epoll_ctl (epoll, EPOLL_CTL_ADD, prop->origin, &event);
    for (size_t h = 0; h < prop->hop_count; h++) {
        memset (prop->hops[h].hist, 0, sizeof (s_hist_t));
        memset (prop->hops[h].none, 0, sizeof (s_hist_t));
        memset (prop->hops[h].applied, 0, sizeof (s_hist_t));
    }
    memset (prop->rtt, 0, sizeof (s_hist_t));
    memset (prop->ack, 0, sizeof (s_hist_t));
    prop->polls = prop->mismatches = 0;
    prop->sample = 0;
    prop->started = false;

    //  Let the background load settle before the first sample
    int64_t t_begin = s_now_ns () + (bg ? (int64_t) 5e8 : 0);
    int64_t t_stop = t_begin + (int64_t) (seconds * 1e9);
    while (true) {
        int64_t now = s_now_ns ();
        if (prop->started && prop->found && prop->acked) {
            prop->started = false;
            prop->sample++;
        }
        if (!prop->started && now >= t_begin) {
            bool enough = true;
            for (size_t h = 0; h < prop->hop_count; h++)
                enough = enough && prop->hops[h].hist->count >= samples;
            if (enough || now >= t_stop)
                break;
            s_prop_start (prop, label, samples);
        }
        if (!s_prop_wait (prop, epoll))
            s_die ("propagation: no answer to GET from %s in %d ms",
                   prop->hops[prop->target].sync, S_GET_WAIT_MS);
        if (bg)
            s_load_tick (bg, s_now_ns ());
        if (s_now_ns () > t_stop + 10 * S_NS_PER_SEC)
            s_die ("propagation: a sample never arrived (%s, hop %d)", label,
                   prop->hops[prop->target].hops);
    }
    double bg_achieved = 0, bg_p99 = NAN;
    if (bg) {
        int64_t now = s_now_ns ();
        bg_achieved = (double) bg->answered / ((double) (now - bg->t_start) / 1e9);
        bg->t_end = now;
        bg_p99 = s_hist_quantile_us (bg->hist, 0.99);
    }
    for (size_t h = 0; h < prop->hop_count; h++)
        s_prop_report_hop (prop, h, label, bg_achieved, bg_p99);
    if (bg)
        s_csv_row ("propagation", label, "background", "achieved", bg_achieved, "1/s");
    close (prop->origin);
    prop->in.start = prop->in.size = 0;
    s_load_destroy (&bg);
    close (epoll);
}

//  Each far node's GET round trip while nothing else runs (a client it
//  does not hold, one GET in flight): the granularity of the polls below.
static void
s_prop_rtt_baseline (s_prop_t *prop, size_t count)
{
    printf ("  GET round trip, herd idle (%zu GETs a node): ", count);
    snprintf (prop->id, sizeof (prop->id), "prop%d-absent", (int) getpid ());
    for (size_t h = 0; h < prop->hop_count; h++) {
        s_hist_t *hist = (s_hist_t *) s_alloc (sizeof (s_hist_t));
        prop->target = h;
        for (size_t i = 0; i < count; i++) {
            s_prop_get (prop);
            herd_msg_t in;
            zmsg_t *msg = s_prop_answer (prop, &in);
            s_hist_record (hist, s_now_ns () - prop->t_get);
            zmsg_destroy (&msg);
        }
        char a[16], b[16], param[32];
        printf ("%s%d hops p50 %s us p99 %s us", h ? ", " : "", prop->hops[h].hops,
                s_us (s_hist_quantile_us (hist, 0.5), a, sizeof (a)),
                s_us (s_hist_quantile_us (hist, 0.99), b, sizeof (b)));
        snprintf (param, sizeof (param), "%d hops", prop->hops[h].hops);
        s_csv_row ("propagation", "idle", param, "get_rtt_p50", s_hist_quantile_us (hist, 0.5),
                   "us");
        free (hist);
    }
    printf ("\n");
    prop->polls = 0;
}

//  herd_bench propagation: idle and under each background rate.
static int
s_mode_propagation (int argc, char *argv[])
{
    int origin = 0;
    s_hop_t hops[S_MAX_LIST];
    s_prop_t prop = {.herd = "herd", .hops = hops, .origin = -1};
    size_t samples = 1000, bg_conns = 4;
    double seconds = 5, rates[S_MAX_LIST] = {0, 10000};
    size_t rate_count = 2;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--origin") == 0 && i + 1 < argc)
            origin = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--herd") == 0 && i + 1 < argc)
            prop.herd = argv[++i];
        else
        if (strcmp (argv[i], "--hop") == 0 && i + 1 < argc && prop.hop_count < S_MAX_LIST) {
            s_hop_t *hop = &hops[prop.hop_count++];
            if (sscanf (argv[++i], "%d=%255s", &hop->hops, hop->sync) != 2)
                s_die ("bad --hop '%s' (HOPS=SYNC-ENDPOINT)", argv[i]);
        }
        else
        if (strcmp (argv[i], "--samples") == 0 && i + 1 < argc)
            samples = (size_t) atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof (argv[++i]);
        else
        if (strcmp (argv[i], "--bg-rates") == 0 && i + 1 < argc)
            rate_count = s_parse_list (argv[++i], rates, S_MAX_LIST);
        else
        if (strcmp (argv[i], "--bg-conns") == 0 && i + 1 < argc)
            bg_conns = (size_t) atoi (argv[++i]);
        else
            s_die ("propagation: unknown option '%s'", argv[i]);
    }
    if (origin == 0 || prop.hop_count == 0)
        s_die ("propagation: give --origin PORT and --hop K=SYNC-ENDPOINT");
    zsys_handler_set (NULL);
    for (size_t h = 0; h < prop.hop_count; h++) {
        hops[h].dealer = zsock_new_dealer (hops[h].sync);
        if (!hops[h].dealer)
            s_die ("propagation: cannot connect to %s", hops[h].sync);
        zsock_set_sndtimeo (hops[h].dealer, S_GET_WAIT_MS);
        zsock_set_rcvtimeo (hops[h].dealer, S_GET_WAIT_MS);
        hops[h].hist = (s_hist_t *) s_alloc (sizeof (s_hist_t));
        hops[h].none = (s_hist_t *) s_alloc (sizeof (s_hist_t));
        hops[h].applied = (s_hist_t *) s_alloc (sizeof (s_hist_t));
    }
    prop.rtt = (s_hist_t *) s_alloc (sizeof (s_hist_t));
    prop.ack = (s_hist_t *) s_alloc (sizeof (s_hist_t));
    printf ("\nPropagation, end to end: the clock runs from the IAMAT's send at the origin "
            "until a GET at a node k hops away (its sync socket, no Places; one in flight, "
            "asked again at once) returns that AT line. 'absent' runs until the send of the "
            "last GET that still found nothing: the node applied it between the two. "
            "'applied' runs until the node applied it, by its own clock (RECORD's applied "
            "time; one host, one clock). At most %zu samples per hop, %.0f s per case\n",
            samples, seconds);
    s_prop_rtt_baseline (&prop, 200);
    printf ("  %-12s %4s %8s %10s %10s %10s %10s %10s %10s %10s\n", "load", "hops", "samples",
            "p50 us", "p99 us", "max us", "absent p50", "absent p99", "applied p50",
            "applied p99");
    for (size_t r = 0; r < rate_count; r++)
        s_propagation_case (&prop, origin, samples, seconds, rates[r], bg_conns);
    for (size_t h = 0; h < prop.hop_count; h++) {
        zsock_destroy (&hops[h].dealer);
        free (hops[h].hist);
        free (hops[h].none);
        free (hops[h].applied);
    }
    free (prop.rtt);
    free (prop.ack);
    free (prop.in.data);
    return 0;
}

//  -------------------------------------------------------------------------
//  Mode whatsat: K WHATSATs in flight at once against a slow Places API

//  What answers look like: one line, a WHATSAT answer, an HTTP response.
enum { S_LINE, S_WHATSAT, S_HTTP };

//  Write lines[i] to fds[i] for every i at once, then wait for every answer.
//  Returns the time until the last answer in microseconds; records each
//  answer's latency in hist (if given) and counts Places bodies with status
//  OK in *ok_p.
static double
s_send_and_wait (int *fds, char **lines, size_t k, int kind, s_hist_t *hist, size_t *ok_p)
{
    s_buf_t *bufs = (s_buf_t *) s_alloc (k * sizeof (s_buf_t));
    int epoll = epoll_create1 (EPOLL_CLOEXEC);
    for (size_t i = 0; i < k; i++) {
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl (epoll, EPOLL_CTL_ADD, fds[i], &event);
    }
    int64_t t0 = s_now_ns (), t_last = t0;
    for (size_t i = 0; i < k; i++)
        if (s_send_all (fds[i], lines[i], strlen (lines[i])))
            s_die ("whatsat: write failed");
    size_t done = 0;
    struct epoll_event events[512];
    while (done < k) {
        int count = epoll_wait (epoll, events, 512, 100);
        int64_t now = s_now_ns ();
        if (now - t0 > 30 * S_NS_PER_SEC)
            s_die ("whatsat: %zu of %zu answers missing after 30 s", k - done, k);
        for (int e = 0; e < count; e++) {
            size_t i = (size_t) events[e].data.u64;
            s_buf_t *buf = &bufs[i];
            while (true) {
                s_buf_reserve (buf, S_READ_CHUNK);
                ssize_t rc = read (fds[i], buf->data + buf->size, buf->capacity - buf->size);
                if (rc <= 0)
                    break;
                buf->size += (size_t) rc;
            }
            size_t size = !buf->data       ? 0
                          : kind == S_HTTP ? s_http_size (buf->data, buf->size)
                                           : s_answer_size (buf->data, buf->size, kind == S_WHATSAT);
            if (size > 0) {
                if (hist)
                    s_hist_record (hist, now - t0);
                t_last = now;
                done++;
                if (ok_p && memmem (buf->data, size, "\"status\" : \"OK\"", 15))
                    (*ok_p)++;
                epoll_ctl (epoll, EPOLL_CTL_DEL, fds[i], NULL);
            }
        }
    }
    for (size_t i = 0; i < k; i++)
        free (bufs[i].data);
    free (bufs);
    close (epoll);
    return (double) (t_last - t0) / 1000.0;
}

//  One round: K clients, each at a place of its own (the herd shares one
//  HTTP request among identical WHATSATs: these must all differ), say
//  IAMAT; then each sends one WHATSAT at the same moment. Returns the wall
//  time in microseconds until the last answer.
static double
s_whatsat_round (int port, const char *tag, size_t k, uint64_t *place_p, s_hist_t *hist,
                 size_t *ok_p)
{
    int *fds = (int *) s_alloc (k * sizeof (int));
    if (s_connect_many (port, fds, k, 10000) == -1)
        s_die ("whatsat: cannot connect %zu clients to port %d", k, port);
    char **lines = (char **) s_alloc (k * sizeof (char *));
    for (size_t i = 0; i < k; i++) {
        lines[i] = (char *) s_alloc (256);
        uint64_t place = (*place_p)++;
        int64_t clock = s_realtime_ns ();
        snprintf (lines[i], 256, "IAMAT %s-%" PRIu64 " %+.6f-118.445127 %" PRId64 ".%09d\n", tag,
                  place, 34.0 + (double) (place % 100000) * 0.0001, clock / S_NS_PER_SEC,
                  (int) (clock % S_NS_PER_SEC));
    }
    s_send_and_wait (fds, lines, k, S_LINE, NULL, NULL);
    for (size_t i = 0; i < k; i++) {
        char id[128];
        sscanf (lines[i], "IAMAT %127s", id);
        snprintf (lines[i], 256, "WHATSAT %s 10 5\n", id);
    }
    double wall = s_send_and_wait (fds, lines, k, S_WHATSAT, hist, ok_p);
    for (size_t i = 0; i < k; i++) {
        close (fds[i]);
        free (lines[i]);
    }
    free (lines);
    free (fds);
    return wall;
}

//  One round straight at a Places server (no herd): K kept-alive
//  connections each send one Nearby Search request for a place of its own
//  at the same moment. Returns the wall time in microseconds.
static double
s_http_round (int port, size_t k, uint64_t *place_p, s_hist_t *hist, size_t *ok_p)
{
    int *fds = (int *) s_alloc (k * sizeof (int));
    //  In batches: a small accept queue must not turn connects into retries
    for (size_t at = 0; at < k; at += 100)
        if (s_connect_many (port, fds + at, k - at < 100 ? k - at : 100, 10000) == -1)
            s_die ("whatsat: cannot connect %zu clients to port %d", k, port);
    char **lines = (char **) s_alloc (k * sizeof (char *));
    for (size_t i = 0; i < k; i++) {
        lines[i] = (char *) s_alloc (256);
        uint64_t place = (*place_p)++;
        snprintf (lines[i], 256,
                  "GET /maps/api/place/nearbysearch/json?location=%.6f,-118.445127&radius=10000"
                  "&key=bench HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n",
                  34.0 + (double) (place % 100000) * 0.0001);
    }
    double wall = s_send_and_wait (fds, lines, k, S_HTTP, hist, ok_p);
    for (size_t i = 0; i < k; i++) {
        close (fds[i]);
        free (lines[i]);
    }
    free (lines);
    free (fds);
    return wall;
}

//  herd_bench whatsat: for each target and K, rounds of K at once.
static int
s_mode_whatsat (int argc, char *argv[])
{
    s_target_t targets[S_MAX_TARGETS];
    size_t target_count = 0, rounds = 3;
    double ks[S_MAX_LIST] = {1, 50, 200};
    size_t k_count = 3;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--target") == 0 && i + 1 < argc && target_count < S_MAX_TARGETS)
            targets[target_count++] = s_parse_target (argv[++i]);
        else
        if (strcmp (argv[i], "--http") == 0 && i + 1 < argc && target_count < S_MAX_TARGETS) {
            targets[target_count] = s_parse_target (argv[++i]);
            targets[target_count++].pid = -1;       //  marks a Places server, no herd
        }
        else
        if (strcmp (argv[i], "--k") == 0 && i + 1 < argc)
            k_count = s_parse_list (argv[++i], ks, S_MAX_LIST);
        else
        if (strcmp (argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = (size_t) atoi (argv[++i]);
        else
            s_die ("whatsat: unknown option '%s'", argv[i]);
    }
    if (target_count == 0 || rounds < 1 || rounds > S_MAX_RUNS)
        s_die ("whatsat: give --target NAME=PORT and --rounds 1..%d", S_MAX_RUNS);
    printf ("\nWHATSAT concurrency: K clients at K distinct places each send one WHATSAT at the "
            "same moment; median of %zu rounds\n",
            rounds);
    printf ("  %-26s %5s %12s %14s %10s %10s %10s\n", "target", "K", "wall ms", "WHATSAT/s",
            "p50 ms", "max ms", "status OK");
    uint64_t place = 0;
    for (size_t t = 0; t < target_count; t++) {
        char tag[64];
        snprintf (tag, sizeof (tag), "wsat%d-t%zu", (int) getpid (), t);
        for (size_t i = 0; i < k_count; i++) {
            size_t k = (size_t) ks[i];
            double walls[S_MAX_RUNS];
            s_hist_t *hist = (s_hist_t *) s_alloc (sizeof (s_hist_t));
            size_t ok = 0;
            for (size_t r = 0; r < rounds; r++) {
                if (targets[t].pid == -1)
                    walls[r] = s_http_round (targets[t].port, k, &place, hist, &ok);
                else
                    walls[r] = s_whatsat_round (targets[t].port, tag, k, &place, hist, &ok);
                s_sleep_ms (100);
            }
            double wall = s_median (walls, rounds) / 1000.0;
            char param[16], okays[32];
            snprintf (param, sizeof (param), "K=%zu", k);
            snprintf (okays, sizeof (okays), "%zu/%zu", ok, k * rounds);
            printf ("  %-26s %5zu %12.1f %14.1f %10.1f %10.1f %10s\n", targets[t].name, k, wall,
                    (double) k / wall * 1000.0, s_hist_quantile_us (hist, 0.5) / 1000.0,
                    (double) hist->max / 1e6, okays);
            s_csv_row ("whatsat", targets[t].name, param, "wall", wall, "ms");
            s_csv_row ("whatsat", targets[t].name, param, "throughput", (double) k / wall * 1000.0,
                       "1/s");
            s_csv_row ("whatsat", targets[t].name, param, "ok", (double) ok, "count");
            free (hist);
        }
    }
    printf ("  goal: 200 in flight at 200 ms finish in < 500 ms\n");
    return 0;
}

//  -------------------------------------------------------------------------
//  Mode memory: RSS with many idle connections, and with many clients

//  Wait until pid has at least want descriptors open; false after timeout.
static bool
s_wait_fds (int pid, long want, int timeout_ms, bool at_most)
{
    int64_t deadline = s_now_ns () + (int64_t) timeout_ms * 1000000;
    while (s_now_ns () < deadline) {
        long fds = s_proc_fds (pid);
        if (fds >= 0 && (at_most ? fds <= want : fds >= want))
            return true;
        s_sleep_ms (20);
    }
    return false;
}

//  herd_bench memory: RSS at rest, with idle connections, with many clients.
static int
s_mode_memory (int argc, char *argv[])
{
    int port = 0, pid = 0;
    size_t idle = 10000, clients = 1000000;
    const char *name = "herd";
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--pid") == 0 && i + 1 < argc)
            pid = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--idle") == 0 && i + 1 < argc)
            idle = (size_t) atol (argv[++i]);
        else
        if (strcmp (argv[i], "--clients") == 0 && i + 1 < argc)
            clients = (size_t) atol (argv[++i]);
        else
        if (strcmp (argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else
            s_die ("memory: unknown option '%s'", argv[i]);
    }
    if (port == 0 || pid == 0)
        s_die ("memory: give --port PORT --pid PID");
    rlim_t nofile = s_raise_nofile ();
    if (nofile < idle + 64)
        s_die ("memory: RLIMIT_NOFILE is %lu, %zu connections need more (run as root or "
               "raise ulimit -n)",
               (unsigned long) nofile, idle);
    printf ("\nMemory of node %s (VmRSS of pid %d)\n", name, pid);
    double mb = 1024.0 * 1024.0;
    int64_t rss0 = s_proc_rss (pid);
    long fds0 = s_proc_fds (pid);
    printf ("  %-46s %10.1f MB\n", "at rest", (double) rss0 / mb);
    s_csv_row ("memory", name, "rest", "rss", (double) rss0 / mb, "MB");

    char label[64], v1[64], v2[64];
    if (idle > 0) {
        //  Idle connections, opened in batches the node's accept queue can take
        int *fds = (int *) s_alloc (idle * sizeof (int));
        size_t opened = 0;
        while (opened < idle) {
            size_t batch = idle - opened < 1000 ? idle - opened : 1000;
            if (s_connect_many (port, fds + opened, batch, 20000) == -1)
                s_die ("memory: connecting idle clients failed after %zu", opened);
            opened += batch;
            if (!s_wait_fds (pid, fds0 + (long) opened, 20000, false))
                s_die ("memory: node %d has not accepted %zu connections (its ulimit -n?)", pid,
                       opened);
        }
        s_sleep_ms (500);
        int64_t rss_idle = s_proc_rss (pid);
        snprintf (label, sizeof (label), "%zu idle connections (nothing sent)", idle);
        printf ("  %-46s %10.1f MB  (%+.2f KB per connection)\n", label, (double) rss_idle / mb,
                (double) (rss_idle - rss0) / 1024.0 / (double) idle);
        s_csv_row ("memory", name, "idle connections", "rss", (double) rss_idle / mb, "MB");

        //  The same connections after one IAMAT each: per-connection buffers exist
        char line[256];
        s_buf_t buf = {0};
        for (size_t i = 0; i < idle; i++) {
            int64_t clock = s_realtime_ns ();
            int len = snprintf (line, sizeof (line),
                                "IAMAT idle%d-%zu " S_POSITION " %" PRId64 ".%09d\n",
                                (int) getpid (), i, clock / S_NS_PER_SEC,
                                (int) (clock % S_NS_PER_SEC));
            if (s_send_all (fds[i], line, (size_t) len))
                s_die ("memory: write failed");
        }
        for (size_t i = 0; i < idle; i++) {
            int flags = fcntl (fds[i], F_GETFL);
            fcntl (fds[i], F_SETFL, flags & ~O_NONBLOCK);
            struct timeval timeout = {10, 0};
            setsockopt (fds[i], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
            if (s_read_answer (fds[i], &buf, false) < 0)
                s_die ("memory: no answer on idle connection %zu", i);
        }
        s_sleep_ms (500);
        int64_t rss_used = s_proc_rss (pid);
        printf ("  %-46s %10.1f MB  (%+.2f KB per connection)\n",
                "the same, idle again after one IAMAT each", (double) rss_used / mb,
                (double) (rss_used - rss0) / 1024.0 / (double) idle);
        s_csv_row ("memory", name, "idle connections after one IAMAT", "rss",
                   (double) rss_used / mb, "MB");
        for (size_t i = 0; i < idle; i++)
            close (fds[i]);
        free (fds);
        free (buf.data);
        s_wait_fds (pid, fds0, 20000, true);
        s_sleep_ms (500);
        int64_t rss_closed = s_proc_rss (pid);
        printf ("  %-46s %10.1f MB\n", "all closed again", (double) rss_closed / mb);
        s_csv_row ("memory", name, "connections closed", "rss", (double) rss_closed / mb, "MB");
        printf ("  goal: %zu idle connections < 50 MB: nothing sent: %s; after one IAMAT: %s\n",
                idle, s_verdict ((double) rss_idle / mb, 50, true, v1, sizeof (v1)),
                s_verdict ((double) rss_used / mb, 50, true, v2, sizeof (v2)));
    }

    //  Distinct clients into the table
    if (clients > 0) {
        int64_t rss_before = s_proc_rss (pid);
        char prefix[64];
        snprintf (prefix, sizeof (prefix), "client%d.bench.example.org", (int) getpid ());
        s_load_t *load = s_load_new (port, 50, 32, 0, prefix);
        load->unique = true;
        load->limit = clients;
        int64_t t0 = s_now_ns ();
        if (s_load_run (load, 0, 600) == -1)
            s_die ("memory: the client load failed");
        double secs = (double) (s_now_ns () - t0) / 1e9;
        s_sleep_ms (1500);
        int64_t rss_clients = s_proc_rss (pid);
        snprintf (label, sizeof (label), "%zu distinct clients in the table", clients);
        printf ("  %-46s %10.1f MB  (%+.0f bytes per client; sent at %.0f/s)\n", label,
                (double) rss_clients / mb,
                (double) (rss_clients - rss_before) / (double) clients, (double) clients / secs);
        if (load->errors)
            printf ("  (%" PRIu64 " errors while sending them)\n", load->errors);
        s_csv_row ("memory", name, "clients", "rss", (double) rss_clients / mb, "MB");
        s_csv_row ("memory", name, "clients", "bytes_per_client",
                   (double) (rss_clients - rss_before) / (double) clients, "B");
        s_load_destroy (&load);
        printf ("  goal: %zu clients < 300 MB: %s\n", clients,
                s_verdict ((double) rss_clients / mb, 300, true, v1, sizeof (v1)));
    }
    return 0;
}

//  -------------------------------------------------------------------------
//  Mode places: a Places API double that answers every Nearby Search after
//  exactly the given latency, without CPU cost of its own, so that WHATSAT
//  concurrency measures the herd and not the stand-in's Python threads

typedef struct {
    int fd;
    uint64_t serial;                //  tells a reused descriptor apart
    s_buf_t in;
    bool waiting;                   //  a request is being held back
} s_pconn_t;

typedef struct {
    int64_t due;
    int fd;
    uint64_t serial;
} s_pending_t;

static volatile sig_atomic_t s_places_stop = 0;

//  Note SIGTERM/SIGINT for the places loop.
static void
s_places_signal (int signo)
{
    (void) signo;
    s_places_stop = 1;
}

//  The legacy Nearby Search body the double answers: five made-up places.
static char *
s_places_body (size_t *size_p)
{
    s_buf_t body = {0};
    s_buf_reserve (&body, 4096);
    int len = snprintf (body.data, body.capacity, "{\n   \"html_attributions\" : [],\n   "
                                                  "\"results\" : [\n");
    for (int i = 0; i < 5; i++)
        len += snprintf (body.data + len, body.capacity - (size_t) len,
                         "      {\n         \"name\" : \"Bench Place %d\",\n         "
                         "\"place_id\" : \"bench-place-%d\",\n         \"vicinity\" : \"%d "
                         "Bench Street\"\n      }%s\n",
                         i + 1, i + 1, i + 1, i < 4 ? "," : "");
    len += snprintf (body.data + len, body.capacity - (size_t) len,
                     "   ],\n   \"status\" : \"OK\"\n}\n");
    *size_p = (size_t) len;
    return body.data;
}

//  herd_bench places: serve until SIGTERM; every request is answered after
//  --latency-ms (default 200). Writes the port to --port-file.
static int
s_mode_places (int argc, char *argv[])
{
    int latency_ms = 200, port = 0;
    const char *port_file = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--latency-ms") == 0 && i + 1 < argc)
            latency_ms = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--port-file") == 0 && i + 1 < argc)
            port_file = argv[++i];
        else
            s_die ("places: unknown option '%s'", argv[i]);
    }
    struct sigaction action = {.sa_handler = s_places_signal};
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    int listener = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt (listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
    struct sockaddr_in addr = s_loopback (port);
    socklen_t addr_len = sizeof (addr);
    if (bind (listener, (struct sockaddr *) &addr, sizeof (addr)) == -1
        || listen (listener, 4096) == -1
        || getsockname (listener, (struct sockaddr *) &addr, &addr_len) == -1)
        s_die ("places: cannot listen: %s", strerror (errno));
    if (port_file) {
        char temp[4096];
        snprintf (temp, sizeof (temp), "%s.tmp", port_file);
        FILE *file = fopen (temp, "w");
        if (!file || fprintf (file, "%d\n", ntohs (addr.sin_port)) < 0 || fclose (file) != 0
            || rename (temp, port_file) != 0)
            s_die ("places: cannot write %s", port_file);
    }
    size_t body_size;
    char *body = s_places_body (&body_size);
    char head[256];
    int head_size = snprintf (head, sizeof (head),
                              "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n"
                              "Content-Length: %zu\r\n\r\n",
                              body_size);
    int epoll = epoll_create1 (EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl (epoll, EPOLL_CTL_ADD, listener, &event);
    size_t capacity = 1024;
    s_pconn_t **conns = (s_pconn_t **) s_alloc (capacity * sizeof (s_pconn_t *));
    //  Latency is constant, so answers fall due in arrival order: a FIFO
    s_pending_t *queue = NULL;
    size_t queue_head = 0, queue_size = 0, queue_capacity = 0;
    uint64_t serial = 0;
    struct epoll_event events[512];
    while (!s_places_stop) {
        int wait_ms = 500;
        if (queue_head < queue_size) {
            int64_t left = queue[queue_head].due - s_now_ns ();
            wait_ms = left <= 0 ? 0 : (int) (left / 1000000) + 1;
        }
        int count = epoll_wait (epoll, events, 512, wait_ms);
        for (int e = 0; e < count; e++) {
            s_pconn_t *conn = (s_pconn_t *) events[e].data.ptr;
            if (!conn) {
                int fd;
                while ((fd = accept4 (listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if ((size_t) fd >= capacity) {
                        size_t more = capacity;
                        while (more <= (size_t) fd)
                            more *= 2;
                        conns = (s_pconn_t **) realloc (conns, more * sizeof (s_pconn_t *));
                        if (!conns)
                            s_die ("out of memory");
                        memset (conns + capacity, 0, (more - capacity) * sizeof (s_pconn_t *));
                        capacity = more;
                    }
                    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
                    conns[fd] = (s_pconn_t *) s_alloc (sizeof (s_pconn_t));
                    conns[fd]->fd = fd;
                    conns[fd]->serial = ++serial;
                    struct epoll_event in = {.events = EPOLLIN, .data.ptr = conns[fd]};
                    epoll_ctl (epoll, EPOLL_CTL_ADD, fd, &in);
                }
                continue;
            }
            bool closed = false;
            while (true) {
                s_buf_reserve (&conn->in, S_READ_CHUNK);
                ssize_t rc = read (conn->fd, conn->in.data + conn->in.size,
                                   conn->in.capacity - conn->in.size);
                if (rc > 0)
                    conn->in.size += (size_t) rc;
                else {
                    closed = rc == 0 || (errno != EAGAIN && errno != EINTR);
                    break;
                }
            }
            if (closed) {
                epoll_ctl (epoll, EPOLL_CTL_DEL, conn->fd, NULL);
                close (conn->fd);
                conns[conn->fd] = NULL;
                free (conn->in.data);
                free (conn);
                continue;
            }
            //  One request at a time per connection (HTTP/1.1, no pipelining)
            const char *end = conn->waiting ? NULL
                                            : memmem (conn->in.data, conn->in.size, "\r\n\r\n", 4);
            if (end) {
                conn->in.size = 0;          //  GET: no body; the rest is ignored
                conn->waiting = true;
                if (queue_size == queue_capacity) {
                    if (queue_head > 0) {
                        memmove (queue, queue + queue_head,
                                 (queue_size - queue_head) * sizeof (s_pending_t));
                        queue_size -= queue_head;
                        queue_head = 0;
                    }
                    if (queue_size == queue_capacity) {
                        queue_capacity = queue_capacity ? queue_capacity * 2 : 1024;
                        queue = (s_pending_t *) realloc (queue,
                                                         queue_capacity * sizeof (s_pending_t));
                        if (!queue)
                            s_die ("out of memory");
                    }
                }
                queue[queue_size++] = (s_pending_t){
                    s_now_ns () + (int64_t) latency_ms * 1000000, conn->fd, conn->serial};
            }
        }
        //  Answer everything that is due, each in one write
        int64_t now = s_now_ns ();
        while (queue_head < queue_size && queue[queue_head].due <= now) {
            s_pending_t *due = &queue[queue_head++];
            s_pconn_t *conn = conns[due->fd];
            if (!conn || conn->serial != due->serial)
                continue;
            char *response = (char *) malloc ((size_t) head_size + body_size);
            if (!response)
                s_die ("out of memory");
            memcpy (response, head, (size_t) head_size);
            memcpy (response + head_size, body, body_size);
            //  Small enough for the socket buffer: one write, retried if short
            int flags = fcntl (conn->fd, F_GETFL);
            fcntl (conn->fd, F_SETFL, flags & ~O_NONBLOCK);
            s_send_all (conn->fd, response, (size_t) head_size + body_size);
            fcntl (conn->fd, F_SETFL, flags);
            free (response);
            conn->waiting = false;
        }
    }
    for (size_t fd = 0; fd < capacity; fd++)
        if (conns[fd]) {
            close (conns[fd]->fd);
            free (conns[fd]->in.data);
            free (conns[fd]);
        }
    free (conns);
    free (queue);
    free (body);
    close (listener);
    close (epoll);
    return 0;
}

//  -------------------------------------------------------------------------
//  Mode ports: free loopback ports for configurations

//  herd_bench ports N: print N distinct ports free on 127.0.0.1.
static int
s_mode_ports (int argc, char *argv[])
{
    int count = argc > 0 ? atoi (argv[0]) : 1;
    if (count < 1 || count > 1000)
        s_die ("ports: 1..1000");
    int *fds = (int *) s_alloc ((size_t) count * sizeof (int));
    for (int i = 0; i < count; i++) {
        fds[i] = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = s_loopback (0);
        socklen_t len = sizeof (addr);
        if (bind (fds[i], (struct sockaddr *) &addr, sizeof (addr)) == -1
            || getsockname (fds[i], (struct sockaddr *) &addr, &len) == -1)
            s_die ("ports: %s", strerror (errno));
        printf ("%d%s", ntohs (addr.sin_port), i + 1 < count ? " " : "\n");
    }
    for (int i = 0; i < count; i++)
        close (fds[i]);
    free (fds);
    return 0;
}

//  -------------------------------------------------------------------------

//  Print usage to stderr; exit status 2.
static int
s_usage (void)
{
    fprintf (stderr,
             "usage: herd_bench [--cpu N] [--csv FILE] MODE [options]\n"
             "  iamat --target NAME=PORT[:PID] ... [--shape NxD ...] [--seconds S] "
             "[--warmup S] [--runs R]\n"
             "  fleet --load PORT --node NAME=PORT:PID ... [--shape NxD] [--seconds S] "
             "[--sent-file F]\n"
             "  flood (--sent N | --sent-file F) --edges E --log NAME=FILE ...\n"
             "  propagation --origin PORT --hop K=SYNC-ENDPOINT ... [--herd NAME] [--samples N] "
             "[--seconds S] [--bg-rates 0,10000]\n"
             "  whatsat (--target NAME=PORT | --http NAME=PORT) ... [--k 1,50,200] "
             "[--rounds R]\n"
             "  places [--port P] [--port-file F] [--latency-ms 200]   (a Places API double)\n"
             "  memory --port PORT --pid PID [--idle N] [--clients N] [--name NAME]\n"
             "  ports N\n"
             "Targets (names 'herd', 'floor', 'asyncio' get ratios) are on 127.0.0.1.\n");
    return 2;
}

//  Global options, then one mode.
int
main (int argc, char *argv[])
{
    int i = 1;
    int cpu = -1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp (argv[i], "--cpu") == 0 && i + 1 < argc)
            cpu = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--csv") == 0 && i + 1 < argc) {
            s_csv = fopen (argv[++i], "a");
            if (!s_csv)
                s_die ("cannot open %s: %s", argv[i], strerror (errno));
            if (ftell (s_csv) == 0)
                fprintf (s_csv, "test,target,param,metric,value,unit\n");
        }
        else
            return s_usage ();
    }
    if (i >= argc)
        return s_usage ();
    signal (SIGPIPE, SIG_IGN);
    if (cpu >= 0)
        s_pin_cpu (cpu);
    s_raise_nofile ();
    setvbuf (stdout, NULL, _IOLBF, 0);
    const char *mode = argv[i];
    int rest = argc - i - 1;
    char **args = argv + i + 1;
    static const struct {
        const char *name;
        int (*run) (int argc, char *argv[]);
    } modes[] = {
        {"iamat", s_mode_iamat},         {"fleet", s_mode_fleet},
        {"flood", s_mode_flood},         {"propagation", s_mode_propagation},
        {"whatsat", s_mode_whatsat},     {"memory", s_mode_memory},
        {"ports", s_mode_ports},         {"places", s_mode_places},
    };
    int (*run) (int argc, char *argv[]) = NULL;
    for (size_t m = 0; m < sizeof (modes) / sizeof (modes[0]); m++)
        if (strcmp (mode, modes[m].name) == 0)
            run = modes[m].run;
    int rc = run ? run (rest, args) : s_usage ();
    if (s_csv)
        fclose (s_csv);
    return rc;
}
