//  herd_alarm.h - a loop's next deadline as a timerfd in its epoll set.
//
//  A loop that sleeps in epoll_wait with a time-out arms a kernel timer at
//  every sleep and cancels it at every wake, and on this project's virtual
//  machines each of those reprograms the CPU's timer (a write to the TSC
//  deadline MSR, a trap to the hypervisor): 1.75 per IAMAT at 1x1 in the
//  gateway, where the floor server, sleeping without a time-out, made
//  none (perf record -e msr:write_msr). An alarm is a timerfd the loop
//  watches instead, re-armed only when a deadline comes sooner than the
//  one it is armed for. A later deadline leaves it as it is: it rings
//  early, the loop turns once for nothing and sets it again. The loop
//  then sleeps with no time-out, and the timer is not touched while the
//  deadline stays.
//
//  Times are CLOCK_MONOTONIC microseconds, as zclock_usecs.

#ifndef HERD_ALARM_H_INCLUDED
#define HERD_ALARM_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

typedef struct _herd_alarm_t herd_alarm_t;

//  A new alarm, not armed, its fd watched by epoll (if not -1) for EPOLLIN
//  with data; NULL (errno set) when no timerfd can be made.
herd_alarm_t *
    herd_alarm_new (int epoll, uint64_t data);

//  Close the alarm; nulls the pointer.
void
    herd_alarm_destroy (herd_alarm_t **self_p);

//  The fd to watch for EPOLLIN: readable once the alarm rings.
int
    herd_alarm_fd (herd_alarm_t *self);

//  Ring no later than deadline (usec): arms the timer only if it is not
//  armed for deadline or sooner. 0, or -1 (errno set) when the timer
//  cannot be armed; the caller then sleeps with a time-out.
int
    herd_alarm_set (herd_alarm_t *self, int64_t deadline);

//  The fd said it rang: read it, and the alarm is not armed any more.
void
    herd_alarm_rang (herd_alarm_t *self);

//  The deadline the alarm is armed for, or INT64_MAX.
int64_t
    herd_alarm_deadline (herd_alarm_t *self);

//  How many times the timer was armed since the alarm was made.
uint64_t
    herd_alarm_arms (herd_alarm_t *self);

//  Self test of this class.
void
    herd_alarm_test (bool verbose);

#endif
