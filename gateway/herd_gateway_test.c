//  herd_gateway_test.c - the gateway's self-test: the actor against a bus
//  and places played by the test, and real client sockets. In its own file
//  because it drives the actor from outside, through herd_gateway.h and the
//  messages of herd_msg.h only; the connection's own rules are tested in
//  herd_conn.c, without ZeroMQ.

#include "herd_gateway.h"
#include "../common/herd_check.h"
#include "../common/herd_msg.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

//  What the tests share: the gateway, the bus and places it talks to, and
//  the first client, served throughout.
typedef struct {
    herd_config_t *config;
    herd_gateway_args_t args;
    zactor_t *gateway;
    zsock_t *bus, *places;
    struct sockaddr_in addr;
    int fd;
    char buffer[4096];
} s_test_t;

//  Receive what the gateway sends a test's bus or places on channel (its
//  STATS go to the monitor, never here) and decode it into d; it must
//  decode, and be id unless id is 0. Returns it (d points into it; the
//  caller destroys it), NULL on time-out.
static zmsg_t *
s_recv_decoded (zsock_t *sock, herd_msg_channel_t channel, herd_msg_id_t id, herd_msg_t *d)
{
    zmsg_t *msg = zmsg_recv (sock);
    char reason[HERD_MSG_REASON_MAX];
    int rc = msg ? herd_msg_decode (d, msg, channel, NULL, reason, sizeof (reason)) : 0;
    HERD_CHECK_STR (rc ? reason : "", "");         //  it decodes, or says why not
    HERD_CHECK (!msg || !id || d->id == id);
    return msg;
}

//  Play the bus storing a decoded UPDATE: STORED first = last = its batch,
//  so the gateway may answer its IAMATs. Batches come numbered in order.
static void
s_store (zsock_t *bus, const herd_msg_t *update)
{
    static uint64_t last = 0;
    HERD_CHECK (update->id == HERD_MSG_ID_UPDATE && update->batch > last);
    last = update->batch;
    herd_msg_t stored = {.id = HERD_MSG_ID_STORED, .routing = update->routing,
                         .first = update->batch, .last = update->batch};
    HERD_CHECK_INT (herd_msg_send (&stored, bus, 0), 0);
}

//  Play the bus answering a look-up with id (FOUND with line, or NONE);
//  takes reqid.
static void
s_reply (zsock_t *sock, zframe_t *routing, herd_msg_id_t id, zframe_t **reqid_p,
         const char *line)
{
    herd_msg_t reply = {.id = id, .routing = routing,
                        .reqid = {zframe_data (*reqid_p), zframe_size (*reqid_p)},
                        .line = herd_msg_str (line)};
    HERD_CHECK_INT (herd_msg_send (&reply, sock, 0), 0);
    zframe_destroy (reqid_p);
}

//  A client connected to the gateway, reads timing out after 5 s.
static int
s_test_connect (s_test_t *test)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    HERD_CHECK_INT (connect (fd, (struct sockaddr *) &test->addr, sizeof (test->addr)), 0);
    struct timeval timeout = {5, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof (timeout));
    return fd;
}

//  Read until the gateway closes; returns the bytes read, in test->buffer.
static size_t
s_test_read_all (s_test_t *test, int fd)
{
    size_t total = 0;
    ssize_t got;
    while ((got = read (fd, test->buffer + total, sizeof (test->buffer) - 1 - total)) > 0)
        total += (size_t) got;
    HERD_CHECK_INT (got, 0);                        //  closed by the gateway
    test->buffer[total] = 0;
    return total;
}

//  Read until test->buffer holds at least size bytes.
static void
s_test_read_some (s_test_t *test, int fd, size_t size)
{
    size_t total = 0;
    while (total < size) {
        ssize_t got = read (fd, test->buffer + total, sizeof (test->buffer) - 1 - total);
        HERD_CHECK (got > 0);
        total += (size_t) got;
    }
    test->buffer[total] = 0;
}

//  Start the gateway (max_line 100, max_pending 3, max_output 4096) and
//  connect the first client.
static void
s_test_start (s_test_t *test)
{
    int port;
    herd_check_free_ports (&port, 1);
    char text[512];
    snprintf (text, sizeof (text),
              "herd\n    max_line = 100\n    max_pending = 3\n    max_output = 4096\n"
              "node = Hill\n    client = 127.0.0.1:%d\n    bus = tcp://127.0.0.1:1\n"
              "    log = x.log\n",
              port);
    char *error = NULL;
    test->config = herd_config_load_string (text, "test.cfg", &error);
    if (!test->config)
        fprintf (stderr, "%s\n", error);
    HERD_CHECK (test->config);
    test->bus = zsock_new_router ("@inproc://gw-test-bus");
    test->places = zsock_new_router ("@inproc://gw-test-places");
    zsock_set_rcvtimeo (test->bus, 5000);
    zsock_set_rcvtimeo (test->places, 5000);
    test->args = (herd_gateway_args_t){test->config, &test->config->nodes[0],
                                       "inproc://gw-test-bus", "inproc://gw-test-places", NULL, NULL};
    test->gateway = zactor_new (herd_gateway_actor, &test->args);
    HERD_CHECK_INT (zsock_wait (test->gateway), 0);
    test->addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    inet_pton (AF_INET, "127.0.0.1", &test->addr.sin_addr);
    test->fd = s_test_connect (test);
}

//  The bus receives an UPDATE (stored at once) with one AT line; returns it.
static char *
s_test_update (s_test_t *test)
{
    herd_msg_t d;
    zmsg_t *msg = s_recv_decoded (test->bus, HERD_MSG_TO_BUS, HERD_MSG_ID_UPDATE, &d);
    HERD_CHECK (msg);
    s_store (test->bus, &d);
    char *at = zsys_sprintf ("%.*s", (int) d.records.size, (const char *) d.records.data);
    zmsg_destroy (&msg);
    return at;
}

//  The bus receives a LOOKUP of client; returns its request id, and its
//  routing id in *routing_p.
static zframe_t *
s_test_lookup (s_test_t *test, const char *client, zframe_t **routing_p)
{
    herd_msg_t d;
    zmsg_t *msg = s_recv_decoded (test->bus, HERD_MSG_TO_BUS, HERD_MSG_ID_LOOKUP, &d);
    HERD_CHECK (msg);
    HERD_CHECK (herd_msg_bytes_eq (d.client, client));
    zframe_t *reqid = zframe_new (d.reqid.data, d.reqid.size);
    if (routing_p)
        *routing_p = zframe_dup (d.routing);
    zmsg_destroy (&msg);
    return reqid;
}

//  Places receives a NEARBY at the AT line's position and answers it.
static void
s_test_nearby (s_test_t *test)
{
    herd_msg_t d;
    zmsg_t *msg = s_recv_decoded (test->places, HERD_MSG_TO_PLACES, HERD_MSG_ID_NEARBY, &d);
    HERD_CHECK (msg);
    HERD_CHECK (herd_msg_bytes_eq (d.lat, "+34.068930"));
    HERD_CHECK (herd_msg_bytes_eq (d.lon, "-118.445127"));
    HERD_CHECK (herd_msg_bytes_eq (d.radius, "10") && herd_msg_bytes_eq (d.bound, "2"));
    herd_msg_t result = {
        .id = HERD_MSG_ID_RESULT, .routing = d.routing, .reqid = d.reqid,
        .status = herd_msg_str (HERD_MSG_OK),
        .json = herd_msg_str ("{\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}")};
    HERD_CHECK_INT (herd_msg_send (&result, test->places, 0), 0);
    zmsg_destroy (&msg);
}

//  A client sends IAMAT, WHATSAT, garbage and IAMAT in one write: the
//  answers come in request order, the WHATSAT's after bus and places.
static void
s_test_pipeline (s_test_t *test)
{
    const char *request = "IAMAT kiwi +34.068930-118.445127 1621464827.959498503\r\n"
                          "WHATSAT kiwi 10 2\n"
                          "bogus line\n"
                          "IAMAT kiwi2 +1+1 1\n";
    HERD_CHECK_INT (write (test->fd, request, strlen (request)), strlen (request));
    char *at = s_test_update (test);
    HERD_CHECK (strncmp (at, "AT Hill +", 9) == 0);
    HERD_CHECK (strstr (at, " kiwi +34.068930-118.445127 1621464827.959498503"));
    zframe_t *routing;
    zframe_t *reqid = s_test_lookup (test, "kiwi", &routing);
    //  The responses after the pending WHATSAT wait for it: nothing to read
    //  but the first AT line yet
    ssize_t got = read (test->fd, test->buffer, sizeof (test->buffer) - 1);
    HERD_CHECK (got > 0);
    test->buffer[got] = 0;
    HERD_CHECK (strncmp (test->buffer, at, strlen (at)) == 0);
    HERD_CHECK_INT (got, strlen (at) + 1);
    //  The bus answers; the gateway asks places with the AT line's position
    s_reply (test->bus, routing, HERD_MSG_ID_FOUND, &reqid, at);
    zframe_destroy (&routing);
    s_test_nearby (test);
    //  The last line's IAMAT (kiwi2) went to the bus after the look-up: its
    //  AT goes out once the bus stores it
    char *at2 = s_test_update (test);
    zstr_free (&at2);
    //  Now the rest arrives, in request order
    char expected[4096];
    snprintf (expected, sizeof (expected),
              "%s\n{\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n\n"
              "? bogus line\nAT Hill ",
              at);
    s_test_read_some (test, test->fd, strlen (expected));
    HERD_CHECK (strncmp (test->buffer, expected, strlen (expected)) == 0);
    zstr_free (&at);
}

//  A line over max_line (100) gets "? " + the first 100 bytes, then close;
//  so does one behind a pending WHATSAT, after the WHATSAT's answer.
static void
s_test_max_line (s_test_t *test)
{
    char longline[300];
    memset (longline, 'x', sizeof (longline));
    longline[sizeof (longline) - 1] = '\n';
    int fd = s_test_connect (test);
    HERD_CHECK_INT (write (fd, longline, sizeof (longline)), sizeof (longline));
    HERD_CHECK_INT (s_test_read_all (test, fd), 2 + 100 + 1);
    HERD_CHECK (test->buffer[0] == '?' && test->buffer[1] == ' ' && test->buffer[102] == '\n');
    close (fd);

    fd = s_test_connect (test);
    const char *ask = "WHATSAT kiwi 10 1\n";
    HERD_CHECK_INT (write (fd, ask, strlen (ask)), strlen (ask));
    HERD_CHECK_INT (write (fd, longline, sizeof (longline)), sizeof (longline));
    zframe_t *routing;
    zframe_t *reqid = s_test_lookup (test, "kiwi", &routing);
    s_reply (test->bus, routing, HERD_MSG_ID_NONE, &reqid, NULL);
    zframe_destroy (&routing);
    HERD_CHECK_INT (s_test_read_all (test, fd), 20 + 2 + 100 + 1);
    HERD_CHECK (strncmp (test->buffer, "? WHATSAT kiwi 10 1\n? xxx", 25) == 0);
    close (fd);
}

//  Lines split across reads: each read is parsed where it lies, only the
//  unfinished line kept; a line that grows past max_line over two reads
//  is still cut at 100 bytes.
static void
s_test_split (s_test_t *test)
{
    int fd = s_test_connect (test);
    const char *pieces[] = {"IAMAT sp", "lit +1+1 1\nIAMAT two +1+1 2\nIAM", "AT three +1+1 3\n",
                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                            "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n"};
    for (size_t i = 0; i < sizeof (pieces) / sizeof (pieces[0]); i++) {
        HERD_CHECK_INT (write (fd, pieces[i], strlen (pieces[i])), strlen (pieces[i]));
        zclock_sleep (50);                      //  likely one read each
    }
    //  The bus gets their three updates (records of one read go in one
    //  UPDATE: count records, not messages), and stores them
    size_t updates = 0;
    while (updates < 3) {
        char *records = s_test_update (test);
        updates++;
        for (char *at = records; *at; at++)
            updates += *at == '\n';
        zstr_free (&records);
    }
    HERD_CHECK_INT (updates, 3);
    s_test_read_all (test, fd);                 //  closed for the long line
    HERD_CHECK (strstr (test->buffer, " split +1+1 1\nAT Hill "));
    HERD_CHECK (strstr (test->buffer, " two +1+1 2\nAT Hill "));
    char *cut = strstr (test->buffer, " three +1+1 3\n? ");
    HERD_CHECK (cut);
    cut += strlen (" three +1+1 3\n? ");
    HERD_CHECK_INT (strlen (cut), 100 + 1);
    HERD_CHECK (cut[0] == 'x' && cut[49] == 'x' && cut[50] == 'y' && cut[99] == 'y');
    close (fd);
}

//  Back-pressure: at most max_pending (3) requests in flight; the rest
//  wait in the input until answers come.
static void
s_test_max_pending (s_test_t *test)
{
    int fd = s_test_connect (test);
    const char *five = "WHATSAT k1 10 1\nWHATSAT k2 10 1\nWHATSAT k3 10 1\n"
                       "WHATSAT k4 10 1\nWHATSAT k5 10 1\n";
    HERD_CHECK_INT (write (fd, five, strlen (five)), strlen (five));
    zframe_t *reqids[5];
    zframe_t *routing = NULL;
    for (int i = 0; i < 5; i++) {
        char client[16];
        snprintf (client, sizeof (client), "k%d", i + 1);
        zsock_set_rcvtimeo (test->bus, 5000);
        reqids[i] = s_test_lookup (test, client, i == 0 ? &routing : NULL);
        if (i == 2 || i == 3) {
            //  Three in flight: no more look-ups until one is answered
            zsock_set_rcvtimeo (test->bus, i == 2 ? 300 : 50);
            zmsg_t *msg = zmsg_recv (test->bus);
            HERD_CHECK (msg == NULL);
            s_reply (test->bus, routing, HERD_MSG_ID_NONE, &reqids[i - 2], NULL);
        }
    }
    zsock_set_rcvtimeo (test->bus, 5000);
    for (int i = 2; i < 5; i++)
        s_reply (test->bus, routing, HERD_MSG_ID_NONE, &reqids[i], NULL);
    zframe_destroy (&routing);
    const char *unknown = "? WHATSAT k1 10 1\n? WHATSAT k2 10 1\n? WHATSAT k3 10 1\n"
                          "? WHATSAT k4 10 1\n? WHATSAT k5 10 1\n";
    s_test_read_some (test, fd, strlen (unknown));
    HERD_CHECK_STR (test->buffer, unknown);
    close (fd);
}

//  A client that writes and never reads is dropped once more than
//  max_output (4096) bytes of answers wait beyond what the kernel takes.
static void
s_test_never_reads (s_test_t *test, bool verbose)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof (small));
    HERD_CHECK_INT (connect (fd, (struct sockaddr *) &test->addr, sizeof (test->addr)), 0);
    struct timeval short_timeout = {0, 100000};
    setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &short_timeout, sizeof (short_timeout));
    static char lines[64 * 1024];
    //  (invalid lines: answered at once, with no bus in between)
    const char *invalid = "a never reading client's line, invalid, answered at once: ? ...\n";
    size_t line_size = strlen (invalid), filled = 0;
    while (filled + line_size <= sizeof (lines)) {
        memcpy (lines + filled, invalid, line_size);
        filled += line_size;
    }
    size_t sent = 0;
    bool dropped = false;
    for (int round = 0; round < 4000 && !dropped; round++) {
        ssize_t rc = send (fd, lines, filled, MSG_NOSIGNAL);
        if (rc > 0)
            sent += (size_t) rc;
        else
        if (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            dropped = true;     //  reset or broken pipe: the gateway closed it
        else {
            //  The gateway stopped taking input, or we were too fast:
            //  a dropped connection shows as readable with an error or EOF
            char byte;
            ssize_t peek = recv (fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            (void) peek;
        }
    }
    if (verbose)
        printf ("   never-reading client dropped after %zu bytes sent\n", sent);
    HERD_CHECK (dropped);
    HERD_CHECK (sent < 256 * 1024 * 1024);
    close (fd);
}

//  Everyone else is still served.
static void
s_test_still_served (s_test_t *test)
{
    const char *again = "IAMAT still +1+1 1\n";
    HERD_CHECK_INT (write (test->fd, again, strlen (again)), strlen (again));
    bool still = false;
    int64_t deadline = zclock_mono () + 10000;
    zmsg_t *msg;
    herd_msg_t d;
    while (!still && zclock_mono () < deadline
           && (msg = s_recv_decoded (test->bus, HERD_MSG_TO_BUS, 0, &d))) {
        still = d.id == HERD_MSG_ID_UPDATE && memmem (d.records.data, d.records.size, " still ", 7);
        if (still)
            s_store (test->bus, &d);
        zmsg_destroy (&msg);
    }
    HERD_CHECK (still);
    ssize_t got = read (test->fd, test->buffer, sizeof (test->buffer) - 1);
    HERD_CHECK (got > 0);
    test->buffer[got] = 0;
    HERD_CHECK (strncmp (test->buffer, "AT Hill ", 8) == 0);
    HERD_CHECK (strstr (test->buffer, " still +1+1 1\n"));
}

//  The updates of one read go to the bus as one UPDATE, in order.
static void
s_test_one_update (s_test_t *test)
{
    const char *three = "IAMAT a +1+1 1\nIAMAT b +1+1 2\nIAMAT c +1+1 3\n";
    HERD_CHECK_INT (write (test->fd, three, strlen (three)), strlen (three));
    char *records = s_test_update (test);
    char *b_at = strstr (records, " b +1+1 2\nAT Hill ");
    HERD_CHECK (strncmp (records, "AT Hill ", 8) == 0);
    HERD_CHECK (strstr (records, " a +1+1 1\nAT Hill ") && b_at);
    HERD_CHECK (strcmp (records + strlen (records) - 9, " c +1+1 3") == 0);
    zstr_free (&records);
    size_t total = 0;
    while (total < 3 || test->buffer[total - 1] != '\n' || !strstr (test->buffer, " c +1+1 3\n")) {
        ssize_t got = read (test->fd, test->buffer + total, sizeof (test->buffer) - 1 - total);
        HERD_CHECK (got > 0);
        total += (size_t) got;
        test->buffer[total] = 0;
    }
}

void
herd_gateway_test (bool verbose)
{
    s_test_t test;
    memset (&test, 0, sizeof (test));
    s_test_start (&test);
    s_test_pipeline (&test);
    s_test_max_line (&test);
    s_test_split (&test);
    s_test_max_pending (&test);
    s_test_never_reads (&test, verbose);
    s_test_still_served (&test);
    s_test_one_update (&test);
    close (test.fd);
    zactor_destroy (&test.gateway);
    zsock_destroy (&test.bus);
    zsock_destroy (&test.places);
    herd_config_destroy (&test.config);
}
