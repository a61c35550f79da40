//  floor_server.c - the floor of the machine: a minimal epoll line server
//  that parses IAMAT with the herd's own parser and answers the AT line.
//
//  No bus, no log, no per-line allocation: one thread, one epoll loop, one
//  read buffer and one write buffer per connection, one write per read.
//  herd_bench drives it with the same load as the herd, so herd / floor is
//  the share of the machine's capacity the herd achieves.
//
//      floor_server [--host 127.0.0.1] [--port 0] [--port-file F] [--name Hill]

#include "../common/herd_buffer.h"
#include "../common/herd_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_READ_CHUNK (64 * 1024)

typedef struct {
    int fd;
    herd_buffer_t in;
    herd_buffer_t out;
    bool want_out;                  //  EPOLLOUT registered
} s_conn_t;

typedef struct {
    int epoll;
    int listener;
    const char *name;
    size_t name_size;
    s_conn_t **conns;               //  indexed by fd
    size_t capacity;
} s_server_t;

static volatile sig_atomic_t s_stop = 0;

//  Note SIGTERM/SIGINT; the loop ends at its next turn.
static void
s_on_signal (int signo)
{
    (void) signo;
    s_stop = 1;
}

//  Make room for extra bytes at the end of buffer; exits when out of memory.
static void
s_buffer_reserve (herd_buffer_t *buffer, size_t extra)
{
    if (!herd_buffer_reserve (buffer, extra)) {
        perror ("floor_server: realloc");
        exit (1);
    }
}

//  Close a connection and free it.
static void
s_conn_close (s_server_t *self, s_conn_t *conn)
{
    epoll_ctl (self->epoll, EPOLL_CTL_DEL, conn->fd, NULL);
    close (conn->fd);
    self->conns[conn->fd] = NULL;
    free (conn->in.data);
    free (conn->out.data);
    free (conn);
}

//  Append the response to one line (without its '\n') to out.
static void
s_conn_answer (s_server_t *self, s_conn_t *conn, const char *line, size_t size)
{
    if (size > 0 && line[size - 1] == '\r')
        size--;
    herd_cmd_t cmd;
    herd_buffer_t *out = &conn->out;
    if (herd_proto_parse (line, size, &cmd) == 0 && cmd.kind == HERD_CMD_IAMAT) {
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        s_buffer_reserve (out, self->name_size + HERD_PROTO_DIFF_MAX + size + 8);
        char *at = out->data + out->size;
        memcpy (at, "AT ", 3);
        at += 3;
        memcpy (at, self->name, self->name_size);
        at += self->name_size;
        *at++ = ' ';
        at += herd_proto_format_diff (now.tv_sec, (int32_t) now.tv_nsec, cmd.time_sec,
                                      cmd.time_nsec, at);
        *at++ = ' ';
        //  client, position and time are contiguous in the line only when
        //  single-spaced; copy each to be exact for any white space
        const herd_span_t *fields[] = {&cmd.client, &cmd.position, &cmd.time};
        for (int i = 0; i < 3; i++) {
            memcpy (at, fields[i]->data, fields[i]->size);
            at += fields[i]->size;
            *at++ = i < 2 ? ' ' : '\n';
        }
        out->size = (size_t) (at - out->data);
    }
    else {
        //  The floor does not do WHATSAT: everything else is "? line"
        s_buffer_reserve (out, size + 3);
        memcpy (out->data + out->size, "? ", 2);
        memcpy (out->data + out->size + 2, line, size);
        out->data[out->size + 2 + size] = '\n';
        out->size += size + 3;
    }
}

//  Write what is pending; arm or disarm EPOLLOUT. Returns -1 if closed.
static int
s_conn_flush (s_server_t *self, s_conn_t *conn)
{
    herd_buffer_t *out = &conn->out;
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
            s_conn_close (self, conn);
            return -1;
        }
    }
    bool pending = out->size > out->start;
    if (!pending)
        out->start = out->size = 0;
    if (pending != conn->want_out) {
        struct epoll_event event = {.events = EPOLLIN | (pending ? EPOLLOUT : 0),
                                    .data.fd = conn->fd};
        epoll_ctl (self->epoll, EPOLL_CTL_MOD, conn->fd, &event);
        conn->want_out = pending;
    }
    return 0;
}

//  Read what the client sent, answer every complete line, write once.
static void
s_conn_handle_read (s_server_t *self, s_conn_t *conn)
{
    herd_buffer_t *in = &conn->in;
    while (true) {
        s_buffer_reserve (in, FLOOR_READ_CHUNK);
        size_t room = in->capacity - in->size;
        ssize_t rc = read (conn->fd, in->data + in->size, room);
        if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            s_conn_close (self, conn);
            return;
        }
        if (rc < 0)
            break;
        in->size += (size_t) rc;
        char *newline;
        while ((newline = memchr (in->data + in->start, '\n', in->size - in->start))) {
            char *line = in->data + in->start;
            s_conn_answer (self, conn, line, (size_t) (newline - line));
            in->start = (size_t) (newline - in->data) + 1;
        }
        if (in->start == in->size)
            in->start = in->size = 0;
        if ((size_t) rc < room)
            break;              //  the socket is most likely empty: save a read
    }
    s_conn_flush (self, conn);
}

//  Accept every waiting connection.
static void
s_server_accept (s_server_t *self)
{
    while (true) {
        int fd = accept4 (self->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        if ((size_t) fd >= self->capacity) {
            size_t capacity = self->capacity * 2;
            while (capacity <= (size_t) fd)
                capacity *= 2;
            self->conns = realloc (self->conns, capacity * sizeof (s_conn_t *));
            if (!self->conns) {
                perror ("floor_server: realloc");
                exit (1);
            }
            memset (self->conns + self->capacity, 0,
                    (capacity - self->capacity) * sizeof (s_conn_t *));
            self->capacity = capacity;
        }
        int one = 1;
        setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
        s_conn_t *conn = calloc (1, sizeof (s_conn_t));
        if (!conn) {
            close (fd);
            continue;
        }
        conn->fd = fd;
        self->conns[fd] = conn;
        struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl (self->epoll, EPOLL_CTL_ADD, fd, &event);
    }
}

//  Bind and listen on host:port (port 0: any free port); returns the fd.
static int
s_listen (const char *host, int port, int *port_p)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    if (inet_pton (AF_INET, host, &addr.sin_addr) != 1
        || bind (fd, (struct sockaddr *) &addr, sizeof (addr)) == -1 || listen (fd, 4096) == -1) {
        fprintf (stderr, "floor_server: cannot listen on %s:%d: %s\n", host, port,
                 strerror (errno));
        exit (1);
    }
    socklen_t len = sizeof (addr);
    getsockname (fd, (struct sockaddr *) &addr, &len);
    *port_p = ntohs (addr.sin_port);
    return fd;
}

//  Raise the descriptor limit to the hard limit, for many connections.
static void
s_raise_nofile (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
}

//  Serve until SIGTERM or SIGINT.
int
main (int argc, char *argv[])
{
    const char *host = "127.0.0.1", *port_file = NULL, *name = "Hill";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else
        if (strcmp (argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi (argv[++i]);
        else
        if (strcmp (argv[i], "--port-file") == 0 && i + 1 < argc)
            port_file = argv[++i];
        else
        if (strcmp (argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else {
            fprintf (stderr, "usage: floor_server [--host H] [--port P] [--port-file F] "
                             "[--name NAME]\n");
            return 2;
        }
    }
    s_raise_nofile ();
    signal (SIGPIPE, SIG_IGN);
    struct sigaction action = {.sa_handler = s_on_signal};
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);

    s_server_t server = {.name = name, .name_size = strlen (name), .capacity = 1024};
    server.conns = calloc (server.capacity, sizeof (s_conn_t *));
    int bound = 0;
    server.listener = s_listen (host, port, &bound);
    server.epoll = epoll_create1 (EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = server.listener};
    epoll_ctl (server.epoll, EPOLL_CTL_ADD, server.listener, &event);
    if (port_file) {
        //  Written whole, then renamed: a reader never sees half a number
        char temp[4096];
        snprintf (temp, sizeof (temp), "%s.tmp", port_file);
        FILE *file = fopen (temp, "w");
        if (!file || fprintf (file, "%d\n", bound) < 0 || fclose (file) != 0
            || rename (temp, port_file) != 0) {
            fprintf (stderr, "floor_server: cannot write %s\n", port_file);
            return 1;
        }
    }
    struct epoll_event events[512];
    while (!s_stop) {
        int count = epoll_wait (server.epoll, events, 512, 500);
        for (int i = 0; i < count; i++) {
            int fd = events[i].data.fd;
            if (fd == server.listener)
                s_server_accept (&server);
            else
            if (server.conns[fd]) {
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    s_conn_handle_read (&server, server.conns[fd]);
                else
                if (events[i].events & EPOLLOUT)
                    s_conn_flush (&server, server.conns[fd]);
            }
        }
    }
    for (size_t fd = 0; fd < server.capacity; fd++)
        if (server.conns[fd])
            s_conn_close (&server, server.conns[fd]);
    free (server.conns);
    close (server.listener);
    close (server.epoll);
    return 0;
}
