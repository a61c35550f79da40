//  herd_accept.c - the gateway's listening socket: accepting and refusing
//  clients.

#include "herd_accept.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define HERD_ACCEPT_PAUSE_MS 100            //  accepting stops this long when accept fails
#define HERD_ACCEPT_REPORT_MS 1000          //  refused connections are logged this often
#define HERD_ACCEPT_FD_RESERVE 64           //  descriptors kept from clients (at most 1/8)
#define HERD_ACCEPT_FD_MARGIN 1024          //  descriptors wanted beyond max_clients
#define HERD_ACCEPT_SNDBUF (256 * 1024)     //  client socket send buffer (the kernel doubles it)
//  TCP keepalive: first probe after 60 s of silence, then every 10 s; 6
//  unanswered probes (about 2 minutes in all) end a half-open connection
#define HERD_ACCEPT_KEEPIDLE 60
#define HERD_ACCEPT_KEEPINTVL 10
#define HERD_ACCEPT_KEEPCNT 6

struct _herd_accept_t {
    int fd;                         //  the listener
    int spare_fd;                   //  kept for EMFILE: close, accept, refuse
    int epoll;
    uint64_t data;                  //  the listener's epoll event data
    herd_log_t *log;
    int64_t now;                    //  of the current call, ms
    int64_t resume;                 //  accepting paused until then; 0 = not paused
    int64_t pause_reported;         //  when a pause was last logged
    size_t refused;                 //  connections refused since the last report
    int64_t refused_reported;       //  when the last report was logged
    char refused_why[96];           //  why the last one was refused
};

//  Bind the client address; returns the listening fd or -1 (why filled).
static int
s_listen (const char *host, int port, char *why, size_t why_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    char service[16];
    snprintf (service, sizeof (service), "%d", port);
    int rc = getaddrinfo (host, service, &hints, &found);
    if (rc != 0) {
        snprintf (why, why_size, "%s", gai_strerror (rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = found; ai && fd == -1; ai = ai->ai_next) {
        fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1)
            continue;
        int one = 1;
        setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
        if (bind (fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen (fd, 4096) == -1) {
            snprintf (why, why_size, "%s", strerror (errno));
            close (fd);
            fd = -1;
        }
    }
    freeaddrinfo (found);
    return fd;
}

herd_accept_t *
herd_accept_new (const char *host, int port, int epoll, uint64_t data, herd_log_t *log,
                 int64_t now, char *why, size_t why_size)
{
    int fd = s_listen (host, port, why, why_size);
    if (fd == -1)
        return NULL;
    herd_accept_t *self = (herd_accept_t *) calloc (1, sizeof (herd_accept_t));
    assert (self);
    self->fd = fd;
    self->epoll = epoll;
    self->data = data;
    self->log = log;
    self->refused_reported = self->pause_reported = now - HERD_ACCEPT_REPORT_MS;
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = data};
    epoll_ctl (epoll, EPOLL_CTL_ADD, fd, &event);
    return self;
}

void
herd_accept_destroy (herd_accept_t **self_p)
{
    herd_accept_t *self = *self_p;
    if (!self)
        return;
    close (self->fd);
    if (self->spare_fd >= 0)
        close (self->spare_fd);
    free (self);
    *self_p = NULL;
}

//  Log how many connections were refused since the last report, and why.
static void
s_report_refused (herd_accept_t *self)
{
    if (self->refused == 0)
        return;
    herd_log_warning (self->log, "gateway", "refused %zu connection%s: %s", self->refused,
                      self->refused == 1 ? "" : "s", self->refused_why);
    self->refused = 0;
    self->refused_reported = self->now;
}

//  Count a refused connection; logged at once, then at most once per
//  HERD_ACCEPT_REPORT_MS, so a flood of connections cannot flood the log.
static void
s_refused (herd_accept_t *self, const char *why)
{
    self->refused++;
    snprintf (self->refused_why, sizeof (self->refused_why), "%s", why);
    if (self->now - self->refused_reported >= HERD_ACCEPT_REPORT_MS)
        s_report_refused (self);
}

//  Stop accepting for a moment: accept fails in a way that waiting cures
//  (no descriptor even for the spare trick, no kernel memory), and the
//  listener, level-triggered, would otherwise wake the loop at once forever.
static void
s_pause (herd_accept_t *self, const char *why)
{
    if (self->resume)
        return;
    struct epoll_event event = {.events = 0, .data.u64 = self->data};
    epoll_ctl (self->epoll, EPOLL_CTL_MOD, self->fd, &event);
    self->resume = self->now + HERD_ACCEPT_PAUSE_MS;
    if (self->now - self->pause_reported >= HERD_ACCEPT_REPORT_MS) {
        herd_log_warning (self->log, "gateway", "accept failed (%s): not accepting for %d ms",
                          why, HERD_ACCEPT_PAUSE_MS);
        self->pause_reported = self->now;
    }
}

//  The soft limit on open descriptors now.
static size_t
s_fd_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == -1 || limit.rlim_cur == RLIM_INFINITY
        || limit.rlim_cur > (rlim_t) INT32_MAX)
        return INT32_MAX;
    return (size_t) limit.rlim_cur;
}

//  Descriptors at the top of the limit that clients never get: the node's
//  own sockets (bus links, Places connections) need them too.
static size_t
s_fd_reserve (size_t limit)
{
    return limit / 8 < HERD_ACCEPT_FD_RESERVE ? limit / 8 : HERD_ACCEPT_FD_RESERVE;
}

//  Take one connection off the listener when descriptors ran out, with the
//  spare descriptor freed for it, and close it: the client sees its
//  connection closed instead of waiting in the backlog, and the listener
//  stops being readable. Returns false if even that failed.
static bool
s_refuse_emfile (herd_accept_t *self)
{
    if (self->spare_fd < 0)
        return false;
    close (self->spare_fd);
    int fd = accept (self->fd, NULL, NULL);
    int error = errno;
    if (fd >= 0)
        close (fd);
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        s_refused (self, "out of file descriptors");
    errno = error;
    return fd >= 0 || error == EAGAIN || error == EWOULDBLOCK;
}

//  Set up an accepted client socket; name its peer "host:port".
static void
s_setup (int fd, struct sockaddr_storage *addr, socklen_t addr_len, char *peer,
         size_t peer_size)
{
    //  Keepalive finds clients that vanished without a FIN or RST (phone
    //  out of coverage, NAT state lost) even while the connection is idle
    int one = 1, idle = HERD_ACCEPT_KEEPIDLE, interval = HERD_ACCEPT_KEEPINTVL;
    int count = HERD_ACCEPT_KEEPCNT;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof (one));
    setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof (idle));
    setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof (interval));
    setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof (count));
    //  The kernel would let a client that never reads pin up to tcp_wmem's
    //  maximum (4 MB) of answers and make us build them all; this much
    //  still carries 40 Mbit/s at 100 ms round trip
    int sndbuf = HERD_ACCEPT_SNDBUF;
    setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof (sndbuf));
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
    getnameinfo ((struct sockaddr *) addr, addr_len, host, sizeof (host), port, sizeof (port),
                 NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf (peer, peer_size, "%s:%s", host, port);
}

//  accept4 failed: refuse or pause as the error calls for.
static int
s_accept_failed (herd_accept_t *self)
{
    if (errno == EINTR || errno == ECONNABORTED)
        return HERD_ACCEPT_AGAIN;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return HERD_ACCEPT_NONE;
    if ((errno == EMFILE || errno == ENFILE) && s_refuse_emfile (self))
        return errno == EAGAIN || errno == EWOULDBLOCK ? HERD_ACCEPT_NONE : HERD_ACCEPT_AGAIN;
    s_pause (self, strerror (errno));
    return HERD_ACCEPT_NONE;
}

int
herd_accept_next (herd_accept_t *self, size_t clients, size_t max_clients, int64_t now,
                  char *peer, size_t peer_size)
{
    self->now = now;
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof (addr);
    int fd = accept4 (self->fd, (struct sockaddr *) &addr, &addr_len,
                      SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return s_accept_failed (self);
    size_t limit = s_fd_limit ();
    char why[96];
    if (clients >= max_clients)
        snprintf (why, sizeof (why), "max_clients %zu reached", max_clients);
    else
    if ((size_t) fd + s_fd_reserve (limit) >= limit)
        snprintf (why, sizeof (why), "out of file descriptors (limit %zu, %zu kept for the node)",
                  limit, s_fd_reserve (limit));
    else {
        s_setup (fd, &addr, addr_len, peer, peer_size);
        return fd;
    }
    close (fd);
    s_refused (self, why);
    return HERD_ACCEPT_AGAIN;
}

void
herd_accept_tick (herd_accept_t *self, int64_t now)
{
    self->now = now;
    if (self->refused && now - self->refused_reported >= HERD_ACCEPT_REPORT_MS)
        s_report_refused (self);
    if (self->resume && now >= self->resume) {
        self->resume = 0;
        if (self->spare_fd < 0)
            self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = self->data};
        epoll_ctl (self->epoll, EPOLL_CTL_MOD, self->fd, &event);
    }
}

int64_t
herd_accept_wake (herd_accept_t *self)
{
    int64_t wake = INT64_MAX;
    if (self->resume)
        wake = self->resume;
    if (self->refused && self->refused_reported + HERD_ACCEPT_REPORT_MS < wake)
        wake = self->refused_reported + HERD_ACCEPT_REPORT_MS;
    return wake;
}

void
herd_accept_raise_fd_limit (herd_accept_t *self, size_t max_clients)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == -1)
        return;
    rlim_t want = (rlim_t) (max_clients + HERD_ACCEPT_FD_MARGIN);
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < want) {
        limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > want
                             ? want
                             : limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
    size_t fds = s_fd_limit ();
    if (fds < max_clients + s_fd_reserve (fds))
        herd_log_warning (self->log, "gateway",
                          "file descriptor limit %zu: fewer than max_clients %zu clients fit",
                          fds, max_clients);
}

//  -------------------------------------------------------------------------
//  Self test: accept one client, refuse one past max_clients

#include "../common/herd_check.h"

void
herd_accept_test (bool verbose)
{
    (void) verbose;
    int port;
    herd_check_free_ports (&port, 1);
    int epoll = epoll_create1 (EPOLL_CLOEXEC);
    char why[128] = "";
    herd_accept_t *self = herd_accept_new ("127.0.0.1", port, epoll, 7, NULL, 0, why, sizeof (why));
    HERD_CHECK (self);
    char peer[64];
    HERD_CHECK_INT (herd_accept_next (self, 0, 1, 0, peer, sizeof (peer)), HERD_ACCEPT_NONE);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
    int client = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (client, (struct sockaddr *) &addr, sizeof (addr)), 0);
    struct epoll_event event;
    HERD_CHECK_INT (epoll_wait (epoll, &event, 1, 5000), 1);
    HERD_CHECK (event.data.u64 == 7);
    int fd = herd_accept_next (self, 0, 1, 0, peer, sizeof (peer));
    HERD_CHECK (fd >= 0);
    HERD_CHECK (strncmp (peer, "127.0.0.1:", 10) == 0);
    //  One served, max_clients 1: the next is accepted and closed
    int other = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (other, (struct sockaddr *) &addr, sizeof (addr)), 0);
    HERD_CHECK_INT (epoll_wait (epoll, &event, 1, 5000), 1);
    HERD_CHECK_INT (herd_accept_next (self, 1, 1, 0, peer, sizeof (peer)), HERD_ACCEPT_AGAIN);
    char byte;
    HERD_CHECK_INT (read (other, &byte, 1), 0);
    HERD_CHECK (herd_accept_wake (self) == INT64_MAX);     //  the first refusal is logged at once
    //  The next within a second is logged a second after the first
    int third = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (third, (struct sockaddr *) &addr, sizeof (addr)), 0);
    HERD_CHECK_INT (epoll_wait (epoll, &event, 1, 5000), 1);
    HERD_CHECK_INT (herd_accept_next (self, 1, 1, 10, peer, sizeof (peer)), HERD_ACCEPT_AGAIN);
    HERD_CHECK (herd_accept_wake (self) == HERD_ACCEPT_REPORT_MS);
    herd_accept_tick (self, HERD_ACCEPT_REPORT_MS);
    HERD_CHECK (herd_accept_wake (self) == INT64_MAX);
    close (third);
    close (other);
    close (client);
    close (fd);
    herd_accept_destroy (&self);
    HERD_CHECK (self == NULL);
    close (epoll);
}
