//  herd_check.h - assertions for the self tests that print both values.
//
//  Self tests (name_test functions) use these instead of assert so that a
//  failure says what was expected and what came; they abort on failure, so
//  the runner reports the test as failed.

#ifndef HERD_CHECK_H_INCLUDED
#define HERD_CHECK_H_INCLUDED

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HERD_CHECK(cond)                                                                \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

#define HERD_CHECK_INT(actual, expected)                                                \
    do {                                                                                \
        intmax_t a_ = (intmax_t) (actual), e_ = (intmax_t) (expected);                  \
        if (a_ != e_) {                                                                 \
            fprintf (stderr, "%s:%d: %s is %jd, expected %jd\n", __FILE__, __LINE__,    \
                     #actual, a_, e_);                                                  \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

#define HERD_CHECK_STR(actual, expected)                                                \
    do {                                                                                \
        const char *a_ = (actual), *e_ = (expected);                                    \
        if (!a_ || !e_ || strcmp (a_, e_) != 0) {                                       \
            fprintf (stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__,        \
                     __LINE__, #actual, a_ ? a_ : "(null)", e_ ? e_ : "(null)");        \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

//  True if haystack contains needle (both C strings); for error messages.
#define HERD_CHECK_CONTAINS(haystack, needle)                                           \
    do {                                                                                \
        const char *h_ = (haystack), *n_ = (needle);                                    \
        if (!h_ || !strstr (h_, n_)) {                                                  \
            fprintf (stderr, "%s:%d: %s is \"%s\", expected to contain \"%s\"\n",       \
                     __FILE__, __LINE__, #haystack, h_ ? h_ : "(null)", n_);            \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

//  Fill ports with count distinct loopback ports free now: the kernel's picks
//  for sockets bound to port 0, all held until all are picked (a fixed or
//  pid-based port can collide with another test's sockets).
static inline void
herd_check_free_ports (int *ports, int count)
{
    int fds[16];
    HERD_CHECK (count <= 16);
    for (int i = 0; i < count; i++) {
        fds[i] = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET};
        inet_pton (AF_INET, "127.0.0.1", &addr.sin_addr);
        socklen_t size = sizeof (addr);
        HERD_CHECK (bind (fds[i], (struct sockaddr *) &addr, sizeof (addr)) == 0);
        HERD_CHECK (getsockname (fds[i], (struct sockaddr *) &addr, &size) == 0);
        ports[i] = ntohs (addr.sin_port);
    }
    for (int i = 0; i < count; i++)
        close (fds[i]);
}

#endif
