//  herd_notify.h - tells the service manager (systemd) how the node is.
//
//  The sd_notify protocol without libsystemd: one datagram a message, of
//  KEY=VALUE lines ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=..."),
//  sent to the AF_UNIX datagram socket named by $NOTIFY_SOCKET (a leading
//  '@' names one in the abstract namespace). $WATCHDOG_USEC asks for
//  "WATCHDOG=1" at least that often (we ping at half of it); $WATCHDOG_PID,
//  when set, names the process it is meant for: another process ignores it.
//  See sd_notify(3) and sd_watchdog_enabled(3).
//
//  Without $NOTIFY_SOCKET (not run by systemd, or Type=simple) new returns
//  NULL and every call on NULL does nothing: no socket, no cost. new unsets
//  the three variables, so no process we start takes our messages for its.

#ifndef HERD_NOTIFY_H_INCLUDED
#define HERD_NOTIFY_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

typedef struct _herd_notify_t herd_notify_t;

//  The service manager's socket from the environment; NULL when there is
//  none (or it cannot be used: said on stderr).
herd_notify_t *
    herd_notify_new (void);

//  Close the socket.
void
    herd_notify_destroy (herd_notify_t **self_p);

//  Send one message (printf format: lines of KEY=VALUE). 0, or -1 when
//  it could not be sent (the manager is gone or busy; nothing waits).
int
    herd_notify_send (herd_notify_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Say a reload began (SIGHUP): "RELOADING=1" with "MONOTONIC_USEC=" of
//  now, as systemd asks of Type=notify-reload services; "READY=1" ends it.
//  0, or -1 as herd_notify_send.
int
    herd_notify_reloading (herd_notify_t *self);

//  How often to send "WATCHDOG=1", in ms (half of $WATCHDOG_USEC, at
//  least 1); 0 when no watchdog is asked of this process.
int64_t
    herd_notify_watchdog_ms (herd_notify_t *self);

//  Self test of this class.
void
    herd_notify_test (bool verbose);

#endif
