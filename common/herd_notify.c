//  herd_notify.c - tells the service manager (systemd) how the node is.

#include "herd_notify.h"
#include "herd_check.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/un.h>
#include <time.h>

struct _herd_notify_t {
    int fd;                         //  unbound AF_UNIX datagram socket
    struct sockaddr_un address;     //  the manager's
    socklen_t address_size;
    int64_t watchdog_ms;            //  ping interval; 0 none
};

//  The watchdog interval asked of this process, in usec; 0 none.
static uint64_t
s_watchdog_usec (void)
{
    const char *usec = getenv ("WATCHDOG_USEC");
    const char *pid = getenv ("WATCHDOG_PID");
    if (!usec || !*usec)
        return 0;
    char *end;
    errno = 0;
    unsigned long long value = strtoull (usec, &end, 10);
    if (errno || *end || value == 0)
        return 0;
    //  Set by systemd to its main pid: a process it did not mean (a
    //  child, or one that inherited the environment) leaves it alone
    if (pid && *pid && strtol (pid, NULL, 10) != (long) getpid ())
        return 0;
    return value;
}

herd_notify_t *
herd_notify_new (void)
{
    const char *name = getenv ("NOTIFY_SOCKET");
    herd_notify_t *self = NULL;
    size_t length = name ? strlen (name) : 0;
    if (length == 0)
        ;                           //  not asked: the common case
    else
    if ((name[0] != '/' && name[0] != '@') || length >= sizeof (self->address.sun_path))
        fprintf (stderr, "herd: NOTIFY_SOCKET=%s: not a Unix socket path or @name; "
                         "not notifying\n", name);
    else {
        self = calloc (1, sizeof (*self));
        HERD_CHECK (self);
        self->address.sun_family = AF_UNIX;
        memcpy (self->address.sun_path, name, length);
        if (name[0] == '@')
            self->address.sun_path[0] = 0;      //  abstract: no terminator
        else
            length++;
        self->address_size = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + length);
        self->fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (self->fd == -1) {
            fprintf (stderr, "herd: cannot open a socket to NOTIFY_SOCKET: %s\n",
                     strerror (errno));
            free (self);
            self = NULL;
        }
        else {
            uint64_t usec = s_watchdog_usec ();
            self->watchdog_ms = usec ? (int64_t) (usec / 2000) : 0;
            if (usec && self->watchdog_ms == 0)
                self->watchdog_ms = 1;
        }
    }
    unsetenv ("NOTIFY_SOCKET");
    unsetenv ("WATCHDOG_USEC");
    unsetenv ("WATCHDOG_PID");
    return self;
}

void
herd_notify_destroy (herd_notify_t **self_p)
{
    if (*self_p) {
        close ((*self_p)->fd);
        free (*self_p);
        *self_p = NULL;
    }
}

int
herd_notify_send (herd_notify_t *self, const char *format, ...)
{
    if (!self)
        return 0;
    char text[1024];
    va_list args;
    va_start (args, format);
    int size = vsnprintf (text, sizeof (text), format, args); // NOLINT(clang-analyzer-valist.Uninitialized): a false positive of clang-analyzer 14
    va_end (args);
    if (size < 0)
        return -1;
    if ((size_t) size >= sizeof (text))
        size = sizeof (text) - 1;
    //  Never waits: a manager too busy to read loses a ping, not our turn
    ssize_t sent = sendto (self->fd, text, (size_t) size, MSG_DONTWAIT | MSG_NOSIGNAL,
                           (struct sockaddr *) &self->address, self->address_size);
    return sent == size ? 0 : -1;
}

int
herd_notify_reloading (herd_notify_t *self)
{
    if (!self)
        return 0;
    return herd_notify_send (self, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                             (unsigned long long) zclock_usecs ());
}

int64_t
herd_notify_watchdog_ms (herd_notify_t *self)
{
    return self ? self->watchdog_ms : 0;
}

//  -------------------------------------------------------------------------
//  Self test

//  The next datagram on fd as a string (waits up to a second); "" if none.
static const char *
s_receive (int fd)
{
    static char text[1100];
    struct timeval second = {1, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &second, sizeof (second));
    ssize_t size = recv (fd, text, sizeof (text) - 1, 0);
    text[size > 0 ? size : 0] = 0;
    return text;
}

void
herd_notify_test (bool verbose)
{
    (void) verbose;
    //  Not asked: NULL, and every call on NULL does nothing
    unsetenv ("NOTIFY_SOCKET");
    setenv ("WATCHDOG_USEC", "2000000", 1);
    herd_notify_t *notify = herd_notify_new ();
    HERD_CHECK (notify == NULL);
    HERD_CHECK (getenv ("WATCHDOG_USEC") == NULL);
    HERD_CHECK_INT (herd_notify_send (notify, "READY=1"), 0);
    HERD_CHECK_INT (herd_notify_watchdog_ms (notify), 0);
    herd_notify_destroy (&notify);

    //  Neither a path nor @name: refused
    setenv ("NOTIFY_SOCKET", "vsock:2:1234", 1);
    HERD_CHECK (herd_notify_new () == NULL);

    //  The abstract namespace, with a watchdog for us: every second
    char name[64];
    snprintf (name, sizeof (name), "@herd-notify-test-%d", (int) getpid ());
    int manager = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    HERD_CHECK (manager != -1);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    memcpy (address.sun_path + 1, name + 1, strlen (name) - 1);
    HERD_CHECK (bind (manager, (struct sockaddr *) &address,
                      (socklen_t) (offsetof (struct sockaddr_un, sun_path) + strlen (name)))
                == 0);
    char pid[16];
    snprintf (pid, sizeof (pid), "%d", (int) getpid ());
    setenv ("NOTIFY_SOCKET", name, 1);
    setenv ("WATCHDOG_USEC", "2000000", 1);
    setenv ("WATCHDOG_PID", pid, 1);
    notify = herd_notify_new ();
    HERD_CHECK (notify);
    HERD_CHECK (!getenv ("NOTIFY_SOCKET") && !getenv ("WATCHDOG_USEC") && !getenv ("WATCHDOG_PID"));
    HERD_CHECK_INT (herd_notify_watchdog_ms (notify), 1000);
    HERD_CHECK_INT (herd_notify_send (notify, "READY=1\nSTATUS=serving %s", "x:1"), 0);
    HERD_CHECK_STR (s_receive (manager), "READY=1\nSTATUS=serving x:1");
    HERD_CHECK_INT (herd_notify_send (notify, "WATCHDOG=1"), 0);
    HERD_CHECK_STR (s_receive (manager), "WATCHDOG=1");
    //  A reload: RELOADING=1 with the monotonic clock of when it began
    unsigned long long since = (unsigned long long) zclock_usecs ();
    HERD_CHECK_INT (herd_notify_reloading (notify), 0);
    const char *reloading = s_receive (manager);
    HERD_CHECK (strncmp (reloading, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    unsigned long long usec = strtoull (reloading + 27, NULL, 10);
    HERD_CHECK (usec >= since && usec < since + 5000000ULL);
    HERD_CHECK (strstr (reloading, "\nSTATUS=reloading"));
    herd_notify_destroy (&notify);
    HERD_CHECK (notify == NULL);
    HERD_CHECK_INT (herd_notify_reloading (NULL), 0);
    close (manager);

    //  A path; the watchdog is meant for another process: no pings
    char path[64];
    snprintf (path, sizeof (path), "/tmp/herd-notify-test-%d.sock", (int) getpid ());
    unlink (path);
    manager = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    address = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf (address.sun_path, sizeof (address.sun_path), "%s", path);
    HERD_CHECK (bind (manager, (struct sockaddr *) &address, sizeof (address)) == 0);
    setenv ("NOTIFY_SOCKET", path, 1);
    setenv ("WATCHDOG_USEC", "30000000", 1);
    setenv ("WATCHDOG_PID", "1", 1);
    notify = herd_notify_new ();
    HERD_CHECK (notify);
    HERD_CHECK_INT (herd_notify_watchdog_ms (notify), 0);
    HERD_CHECK_INT (herd_notify_send (notify, "STOPPING=1"), 0);
    HERD_CHECK_STR (s_receive (manager), "STOPPING=1");
    herd_notify_destroy (&notify);

    //  The manager gone: a send fails, nothing waits
    close (manager);
    unlink (path);
    setenv ("NOTIFY_SOCKET", path, 1);
    notify = herd_notify_new ();
    HERD_CHECK (notify);
    HERD_CHECK_INT (herd_notify_send (notify, "WATCHDOG=1"), -1);
    herd_notify_destroy (&notify);
}
