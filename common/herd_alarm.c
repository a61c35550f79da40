//  herd_alarm.c - a loop's next deadline as a timerfd (see herd_alarm.h).

#include "herd_alarm.h"
#include "herd_check.h"

#include <czmq.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

struct _herd_alarm_t {
    int fd;                         //  the timerfd, CLOCK_MONOTONIC
    int64_t deadline;               //  usec it is armed for; INT64_MAX: not armed
    uint64_t arms;                  //  timerfd_settime calls, for tests and figures
};

herd_alarm_t *
herd_alarm_new (int epoll, uint64_t data)
{
    int fd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = data};
    if (fd != -1 && epoll != -1 && epoll_ctl (epoll, EPOLL_CTL_ADD, fd, &event) == -1) {
        close (fd);
        fd = -1;
    }
    if (fd == -1)
        return NULL;
    herd_alarm_t *self = (herd_alarm_t *) zmalloc (sizeof (herd_alarm_t));
    self->fd = fd;
    self->deadline = INT64_MAX;
    return self;
}

void
herd_alarm_destroy (herd_alarm_t **self_p)
{
    herd_alarm_t *self = *self_p;
    if (!self)
        return;
    close (self->fd);
    free (self);
    *self_p = NULL;
}

int
herd_alarm_fd (herd_alarm_t *self)
{
    return self->fd;
}

int
herd_alarm_set (herd_alarm_t *self, int64_t deadline)
{
    if (deadline >= self->deadline)
        return 0;
    //  An absolute time: one already past rings at once (the earliest is
    //  1 ns: 0 would disarm the timer)
    int64_t at = deadline > 0 ? deadline : 0;
    struct itimerspec spec = {
        .it_value = {.tv_sec = at / 1000000, .tv_nsec = (long) (at % 1000000) * 1000}};
    if (at == 0)
        spec.it_value.tv_nsec = 1;
    if (timerfd_settime (self->fd, TFD_TIMER_ABSTIME, &spec, NULL) == -1)
        return -1;
    self->deadline = deadline;
    self->arms++;
    return 0;
}

void
herd_alarm_rang (herd_alarm_t *self)
{
    uint64_t expirations;
    //  Nothing to read (EAGAIN) when it was armed again since it rang:
    //  re-arming clears the fd, and the new deadline still stands
    if (read (self->fd, &expirations, sizeof (expirations)) == (ssize_t) sizeof (expirations))
        self->deadline = INT64_MAX;
}

int64_t
herd_alarm_deadline (herd_alarm_t *self)
{
    return self->deadline;
}

uint64_t
herd_alarm_arms (herd_alarm_t *self)
{
    return self->arms;
}

//  Wait up to timeout_ms for the alarm's fd; true if it rang.
static bool
s_test_rings (herd_alarm_t *self, int epoll, int timeout_ms)
{
    struct epoll_event event;
    int rc = epoll_wait (epoll, &event, 1, timeout_ms);
    if (rc == 1) {
        HERD_CHECK (event.data.u64 == 42);
        herd_alarm_rang (self);
    }
    return rc == 1;
}

void
herd_alarm_test (bool verbose)
{
    (void) verbose;
    printf (" * herd_alarm: ");
    int epoll = epoll_create1 (EPOLL_CLOEXEC);
    herd_alarm_t *self = herd_alarm_new (epoll, 42);
    HERD_CHECK (self);
    HERD_CHECK (herd_alarm_deadline (self) == INT64_MAX);
    HERD_CHECK (!s_test_rings (self, epoll, 0));

    //  Armed once for a deadline set again and again, or a later one
    int64_t now = zclock_usecs ();
    int64_t soon = now + 30000;
    for (int i = 0; i < 1000; i++)
        HERD_CHECK_INT (herd_alarm_set (self, soon + i), 0);
    HERD_CHECK_INT (herd_alarm_arms (self), 1);
    HERD_CHECK (herd_alarm_deadline (self) == soon);
    //  ...and it rings at that deadline, not before, and not much after
    HERD_CHECK (!s_test_rings (self, epoll, 10));
    HERD_CHECK (s_test_rings (self, epoll, 5000));
    HERD_CHECK (zclock_usecs () >= soon);
    HERD_CHECK (herd_alarm_deadline (self) == INT64_MAX);
    HERD_CHECK (!s_test_rings (self, epoll, 0));        //  read: quiet again

    //  A sooner deadline arms it again, and that one rings
    now = zclock_usecs ();
    HERD_CHECK_INT (herd_alarm_set (self, now + 10000000), 0);
    HERD_CHECK_INT (herd_alarm_set (self, now + 20000), 0);
    HERD_CHECK_INT (herd_alarm_arms (self), 3);
    HERD_CHECK (s_test_rings (self, epoll, 5000));
    HERD_CHECK (zclock_usecs () >= now + 20000);

    //  A deadline already past rings at once, as does 0
    HERD_CHECK_INT (herd_alarm_set (self, zclock_usecs () - 1000), 0);
    HERD_CHECK (s_test_rings (self, epoll, 1000));
    HERD_CHECK_INT (herd_alarm_set (self, 0), 0);
    HERD_CHECK (s_test_rings (self, epoll, 1000));
    HERD_CHECK_INT (herd_alarm_arms (self), 5);

    //  Rang but not read, then armed again: the new deadline stands
    HERD_CHECK_INT (herd_alarm_set (self, zclock_usecs () - 1), 0);
    zclock_sleep (2);
    now = zclock_usecs ();
    herd_alarm_rang (self);
    HERD_CHECK_INT (herd_alarm_set (self, now + 20000), 0);
    herd_alarm_rang (self);                     //  a stale event: nothing to read
    HERD_CHECK (herd_alarm_deadline (self) == now + 20000);
    HERD_CHECK (s_test_rings (self, epoll, 5000));

    close (epoll);
    herd_alarm_destroy (&self);
    HERD_CHECK (self == NULL);
    herd_alarm_destroy (&self);
    printf ("OK\n");
}
