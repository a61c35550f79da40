//  herd_client.c - `herd client`: request lines to a node, answers printed as received.

#include "herd_client.h"
#include "../common/herd_config.h"
#include "../common/herd_proto.h"

#include <cjson/cJSON.h>
#include <czmq.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef HERD_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#define HERD_CLIENT_POSITION    "+34.068930-118.445127"     //  --at default (UCLA)
#define HERD_CLIENT_TIMEOUT     10000                       //  --timeout default, ms
#define HERD_CLIENT_TIMEOUT_MAX 86400000                    //  a day
#define HERD_CLIENT_ANSWER_MAX  (64 * 1024 * 1024)          //  longest answer accepted
#define HERD_CLIENT_PENDING_MAX 1024        //  requests in flight before stdin waits
#define HERD_CLIENT_QUEUED_MAX  (1024 * 1024)   //  bytes unsent before stdin waits
#define HERD_CLIENT_READ_CHUNK  (64 * 1024)     //  bytes read per read(2)
#define HERD_CLIENT_QUOTE_MAX   60          //  request bytes quoted in messages
#define HERD_CLIENT_HISTORY     1000        //  lines of interactive history kept

static const char s_usage[] =
    "usage: herd client HOST:PORT|NAME [options] [LINE ...]\n"
    "\n"
    "Sends each LINE to the node as a request line and prints each answer as\n"
    "received. Without LINEs, reads request lines from stdin (pipelined, answers\n"
    "in order), or prompts for them when stdin is a terminal.\n"
    "\n"
    "  -c, --config FILE   look NAME up in FILE (default herd.cfg): its client address\n"
    "  --iamat ID          first send 'IAMAT ID POSITION NOW' with the current time\n"
    "  --at +LAT-LON       the position for --iamat (default " HERD_CLIENT_POSITION ")\n"
    "  --pretty            indent the JSON of WHATSAT answers (3 spaces)\n"
    "  --timeout MS        wait at most MS for each answer (default 10000)\n"
    "  -i, --interactive   prompt for lines even when stdin is not a terminal\n"
    "  --                  what follows is LINEs, even if it starts with '-'\n"
    "\n"
    "Exit status: 0 when every request was answered, 1 when the connection\n"
    "failed, closed early or an answer timed out, 2 for a usage error.\n";

//  The command line of `herd client`.
typedef struct {
    const char *target;         //  HOST:PORT or a node NAME
    const char *config;         //  where NAME is looked up
    const char *iamat;          //  client id for --iamat, or NULL
    const char *at;             //  position for --iamat
    bool pretty;
    bool interactive;
    int timeout;                //  ms for each answer (and for connecting)
    const char **lines;         //  LINE arguments, borrowed from argv
    int line_count;
} s_options_t;

//  One request on its way: what its answer looks like and when it was asked.
typedef struct {
    bool whatsat;               //  a valid WHATSAT: AT line, JSON, empty line
    int64_t queued_at;          //  zclock_mono when queued
    char *quote;                //  start of the line, for messages
} s_request_t;

//  A connection to a node with its requests in flight.
typedef struct {
    int fd;
    const char *peer;           //  the node as the user named it
    int timeout;
    bool pretty;
    char *in;                   //  bytes received, answers not yet printed
    size_t in_pos, in_size, in_max;
    size_t scan;                //  bytes after in_pos searched for the answer's end
    char *out;                  //  request bytes not yet sent
    size_t out_pos, out_size, out_max;
    s_request_t *requests;      //  requests awaiting answers, oldest at head
    size_t head, tail, max;
    int64_t answered_at;        //  when the last answer was complete
    char *line;                 //  stdin bytes of a line not yet ended
    size_t line_size, line_max;
    bool input_done;            //  stdin at end of file
    bool closed;                //  the node closed the connection
} s_client_t;

//  Print a usage error, the synopsis and where to read more; returns 2,
//  the exit code.
static int
s_usage_error (const char *what, const char *arg)
{
    fprintf (stderr,
             "herd client: %s%s%s%s\nusage: herd client HOST:PORT|NAME [options] [LINE ...]\n"
             "(see herd client --help)\n",
             what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    return 2;
}

//  Parse a decimal integer within [min, max] that fills all of text; 0 or -1.
static int
s_parse_int (const char *text, long min, long max, int *value_p)
{
    if (!text || !*text || strspn (text, "0123456789") != strlen (text) || strlen (text) > 10)
        return -1;
    long value = strtol (text, NULL, 10);
    if (value < min || value > max)
        return -1;
    *value_p = (int) value;
    return 0;
}

//  Options of herd client without a short letter.
enum { S_OPT_IAMAT = 256, S_OPT_AT, S_OPT_PRETTY, S_OPT_TIMEOUT };

//  Parse argv (argv[0] is "client"). 0 to go on, 1 when help was printed,
//  2 after a usage error was printed.
static int
s_parse_options (int argc, char *argv[], s_options_t *opts)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"iamat", required_argument, NULL, S_OPT_IAMAT},
        {"at", required_argument, NULL, S_OPT_AT},
        {"pretty", no_argument, NULL, S_OPT_PRETTY},
        {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
        {"interactive", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opts->at = HERD_CLIENT_POSITION;
    opts->timeout = HERD_CLIENT_TIMEOUT;
    opts->lines = (const char **) calloc ((size_t) argc, sizeof (char *));
    optind = 0;                 //  glibc: start afresh, after argv[0]
    opterr = 0;                 //  the messages are ours
    int opt;
    while ((opt = getopt_long (argc, argv, ":c:ih", options, NULL)) != -1) {
        const char *text = argv[optind - 1];
        if (opt == 'c')
            opts->config = optarg;
        else
        if (opt == S_OPT_IAMAT)
            opts->iamat = optarg;
        else
        if (opt == S_OPT_AT)
            opts->at = optarg;
        else
        if (opt == S_OPT_TIMEOUT) {
            if (s_parse_int (optarg, 1, HERD_CLIENT_TIMEOUT_MAX, &opts->timeout))
                return s_usage_error ("--timeout wants milliseconds from 1 to 86400000, not",
                                      optarg);
        }
        else
        if (opt == S_OPT_PRETTY)
            opts->pretty = true;
        else
        if (opt == 'i')
            opts->interactive = true;
        else
        if (opt == 'h') {
            printf ("%s", s_usage);
            return 1;
        }
        else
        if (opt == ':')
            return s_usage_error ("a value is missing after", text);
        else {
            char letter[3] = {'-', (char) optopt, 0};
            return s_usage_error ("unknown option",
                                  optopt > 0 && optopt < 256 && strncmp (text, "--", 2) != 0
                                      ? letter
                                      : text);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (!opts->target)
            opts->target = argv[i];
        else
            opts->lines[opts->line_count++] = argv[i];
    }
    if (!opts->target)
        return s_usage_error ("needs HOST:PORT or a node NAME", NULL);
    if (opts->iamat && (!*opts->iamat || strpbrk (opts->iamat, " \t\r\n\f\v")))
        return s_usage_error ("--iamat wants a client id without white space, not", opts->iamat);
    herd_span_t lat, lon;
    if (herd_proto_parse_position (opts->at, strlen (opts->at), &lat, &lon))
        return s_usage_error ("--at wants a position like " HERD_CLIENT_POSITION ", not",
                              opts->at);
    return 0;
}

//  Find the address to connect to: HOST:PORT as given ([v6]:PORT too), or
//  the client address of node NAME in the config. Sets *host_p (caller
//  frees), *port_p and *peer_p (the node as named in messages; caller
//  frees). Returns 0, or the exit code after printing why not.
static int
s_resolve (const s_options_t *opts, char **host_p, int *port_p, char **peer_p)
{
    const char *colon = strrchr (opts->target, ':');
    if (colon) {
        const char *host = opts->target;
        size_t host_size = (size_t) (colon - host);
        if (host[0] == '[' && host_size >= 2 && host[host_size - 1] == ']') {
            host++;
            host_size -= 2;
        }
        if (host_size == 0 || s_parse_int (colon + 1, 1, 65535, port_p))
            return s_usage_error ("wants HOST:PORT (port 1 to 65535), not", opts->target);
        *host_p = strndup (host, host_size);
        *peer_p = strdup (opts->target);
        return 0;
    }
    char *error = NULL;
    herd_config_t *config = herd_config_load (opts->config, &error);
    if (!config) {
        fprintf (stderr, "herd client: bad configuration: %s\n", error ? error : opts->config);
        free (error);
        return 1;
    }
    const herd_node_t *node = herd_config_node (config, opts->target);
    int rc = 0;
    if (node) {
        *host_p = strdup (node->client_host);
        *port_p = node->client_port;
        *peer_p = zsys_sprintf ("%s (%s)", node->name, node->client);
    }
    else {
        fprintf (stderr, "herd client: %s has no node '%s' (and it is not HOST:PORT)\n",
                 opts->config, opts->target);
        rc = 1;
    }
    herd_config_destroy (&config);
    return rc;
}

//  Connect to host:port within timeout ms; a non-blocking socket, or -1
//  after printing why not.
static int
s_connect (const char *host, int port, int timeout, const char *peer)
{
    char service[16];
    snprintf (service, sizeof (service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    int gai = getaddrinfo (host, service, &hints, &found);
    if (gai != 0) {
        fprintf (stderr, "herd client: cannot connect to %s: %s\n", peer, gai_strerror (gai));
        return -1;
    }
    int64_t deadline = zclock_mono () + timeout;
    int fd = -1;
    int error = 0;
    for (struct addrinfo *ai = found; ai && fd < 0; ai = ai->ai_next) {
        fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                     ai->ai_protocol);
        if (fd < 0) {
            error = errno;
            continue;
        }
        if (connect (fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        error = errno;
        if (error == EINPROGRESS) {
            struct pollfd item = {.fd = fd, .events = POLLOUT};
            int64_t left = deadline - zclock_mono ();
            int ready = left > 0 ? poll (&item, 1, (int) left) : 0;
            socklen_t size = sizeof (error);
            if (ready == 0)
                error = ETIMEDOUT;
            else
            if (ready < 0 || getsockopt (fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0)
                error = errno;
            if (error == 0)
                break;
        }
        close (fd);
        fd = -1;
    }
    freeaddrinfo (found);
    if (fd < 0) {
        if (error == ETIMEDOUT)
            fprintf (stderr, "herd client: cannot connect to %s: no answer within %d ms\n",
                     peer, timeout);
        else
            fprintf (stderr, "herd client: cannot connect to %s: %s\n", peer,
                     strerror (error));
        return -1;
    }
    int one = 1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    return fd;
}

//  Create a client of a connected socket, which it then owns.
static s_client_t *
s_client_new (int fd, const char *peer, int timeout, bool pretty)
{
    s_client_t *self = (s_client_t *) calloc (1, sizeof (s_client_t));
    self->fd = fd;
    self->peer = peer;
    self->timeout = timeout;
    self->pretty = pretty;
    self->answered_at = zclock_mono ();
    return self;
}

//  Destroy a client and close its socket; nulls the caller's pointer.
static void
s_client_destroy (s_client_t **self_p)
{
    s_client_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = self->head; i < self->tail; i++)
        free (self->requests[i].quote);
    free (self->requests);
    free (self->in);
    free (self->out);
    free (self->line);
    close (self->fd);
    free (self);
    *self_p = NULL;
}

//  Make room for size more bytes after *used in a growing buffer.
static void
s_reserve (char **buffer_p, size_t *max_p, size_t used, size_t size)
{
    if (used + size <= *max_p)
        return;
    size_t max = *max_p ? *max_p : 4096;
    while (max < used + size)
        max *= 2;
    *buffer_p = (char *) realloc (*buffer_p, max);
    *max_p = max;
}

//  Queue one request line (without its '\n'): its bytes to send, and what
//  its answer will look like (the node's own parser decides).
static void
s_client_queue (s_client_t *self, const char *line, size_t size)
{
    if (self->out_pos == self->out_size)
        self->out_pos = self->out_size = 0;
    s_reserve (&self->out, &self->out_max, self->out_size, size + 1);
    memcpy (self->out + self->out_size, line, size);
    self->out[self->out_size + size] = '\n';
    self->out_size += size + 1;

    if (self->head == self->tail)
        self->head = self->tail = 0;
    if (self->tail == self->max) {
        //  Slide the live requests down, or grow
        if (self->head > 0) {
            memmove (self->requests, self->requests + self->head,
                     (self->tail - self->head) * sizeof (s_request_t));
            self->tail -= self->head;
            self->head = 0;
        }
        if (self->tail == self->max) {
            self->max = self->max ? self->max * 2 : 16;
            self->requests =
                (s_request_t *) realloc (self->requests, self->max * sizeof (s_request_t));
        }
    }
    herd_cmd_t cmd;
    s_request_t *request = &self->requests[self->tail++];
    request->whatsat = herd_proto_parse (line, size, &cmd) == 0 && cmd.kind == HERD_CMD_WHATSAT;
    request->queued_at = zclock_mono ();
    size_t quote = size < HERD_CLIENT_QUOTE_MAX ? size : HERD_CLIENT_QUOTE_MAX;
    request->quote = zsys_sprintf ("%.*s%s", (int) quote, line, quote < size ? "..." : "");
}

//  Queue each line of text: it is split at '\n', and a final '\n' ends the
//  last line rather than starting an empty one.
static void
s_client_queue_text (s_client_t *self, const char *text, size_t size)
{
    size_t at = 0;
    do {
        const char *nl = (const char *) memchr (text + at, '\n', size - at);
        size_t end = nl ? (size_t) (nl - text) : size;
        s_client_queue (self, text + at, end - at);
        at = end + 1;
    } while (at < size);
}

#define S_INLINE_LIST_MAX 72        //  a scalar list this long or less stays on one line

//  End of the JSON string that starts at text (its closing quote).
static const char *
s_string_end (const char *text)
{
    const char *end = text + 1;
    while (*end && *end != '"')
        end += end[0] == '\\' && end[1] ? 2 : 1;
    return end;
}

//  If the array at text ('[') holds scalars only, its inline form "[ a, b ]"
//  (a new string) and its closing ']' in *end_p; else NULL.
static char *
s_scalar_list (const char *text, const char **end_p)
{
    //  Find the closing ']', or a nested array or object
    const char *end = text + 1;
    while (*end && *end != ']' && *end != '[' && *end != '{') {
        if (*end == '"')
            end = s_string_end (end);
        if (*end)
            end++;
    }
    if (*end != ']')
        return NULL;
    char *line = (char *) malloc ((size_t) (end - text) * 2 + 4);
    size_t size = 0;
    line[size++] = '[';
    line[size++] = ' ';
    for (const char *at = text + 1; at < end; at++) {
        if (*at == '"') {
            const char *close = s_string_end (at);
            memcpy (line + size, at, (size_t) (close - at) + 1);
            size += (size_t) (close - at) + 1;
            at = close;
        }
        else
        if (*at == ',') {
            line[size++] = ',';
            line[size++] = ' ';
        }
        else
        if (*at != ' ' && *at != '\t' && *at != '\r' && *at != '\n')
            line[size++] = *at;
    }
    memcpy (line + size, " ]", 3);
    *end_p = end;
    return line;
}

//  Characters (not bytes) of UTF-8 text.
static size_t
s_char_count (const char *text)
{
    size_t count = 0;
    for (; *text; text++)
        if (((unsigned char) *text & 0xC0) != 0x80)
            count++;
    return count;
}

//  Print valid JSON text in Google's layout: 3-space indents, "key" : value,
//  empty arrays and objects as [] and {}, a list of scalars inline ("[ a, b ]")
//  when that is at most S_INLINE_LIST_MAX characters. Only white space
//  changes: strings and numbers are printed exactly as the node sent them.
static void
s_print_pretty (const char *text)
{
    int depth = 0;
    for (const char *at = text; *at; at++) {
        char c = *at;
        const char *next = at + 1 + strspn (at + 1, " \t\r\n");
        char *inline_list = NULL;
        if (c == '"') {
            //  A string, escapes and all
            const char *end = s_string_end (at);
            fwrite (at, 1, (size_t) (end - at) + (*end ? 1 : 0), stdout);
            at = *end ? end : end - 1;
        }
        else
        if ((c == '{' && *next == '}') || (c == '[' && *next == ']')) {
            printf ("%c%c", c, *next);
            at = next;
        }
        else
        if (c == '[' && (inline_list = s_scalar_list (at, &next))
            && s_char_count (inline_list) <= S_INLINE_LIST_MAX) {
            fputs (inline_list, stdout);
            at = next;
        }
        else
        if (c == '{' || c == '[')
            printf ("%c\n%*s", c, ++depth * 3, "");
        else
        if (c == '}' || c == ']')
            printf ("\n%*s%c", --depth * 3, "", c);
        else
        if (c == ',')
            printf (",\n%*s", depth * 3, "");
        else
        if (c == ':')
            fputs (" : ", stdout);
        else
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            putchar (c);
        free (inline_list);
    }
}

//  Print one whole answer: as received, or with --pretty the JSON of a
//  WHATSAT answer re-indented (as received when it is not valid JSON).
static void
s_client_print (s_client_t *self, bool whatsat, const char *data, size_t size)
{
    const char *nl = (const char *) memchr (data, '\n', size);
    char *body = NULL;
    if (self->pretty && whatsat && nl && size - (size_t) (nl - data) >= 3) {
        size_t body_size = size - (size_t) (nl - data) - 3;
        body = strndup (nl + 1, body_size);
        //  Whole and valid, without NUL bytes, or printed as received
        cJSON *json = cJSON_ParseWithOpts (body, NULL, true);
        if (!json || strlen (body) != body_size)
            zstr_free (&body);
        cJSON_Delete (json);
    }
    if (body) {
        fwrite (data, 1, (size_t) (nl - data) + 1, stdout);
        s_print_pretty (body);
        fputs ("\n\n", stdout);
        free (body);
    }
    else
        fwrite (data, 1, size, stdout);
    fflush (stdout);
}

//  Size of the answer at the start of data (whatsat: the request was a
//  WHATSAT), or 0 while it is incomplete. *scan_p: bytes already searched.
static size_t
s_answer_size (const char *data, size_t size, bool whatsat, size_t *scan_p)
{
    size_t from = *scan_p;
    const char *end = NULL;
    if (from >= size)
        return 0;           //  nothing new to search
    if (!whatsat || (size >= 2 && memcmp (data, "? ", 2) == 0)) {
        end = (const char *) memchr (data + from, '\n', size - from);
        if (end)
            return (size_t) (end - data) + 1;
    }
    else
    if (size >= 2) {
        //  The AT line, the JSON, then the empty line: the first "\n\n"
        from = from > 0 ? from - 1 : 0;
        end = (const char *) memmem (data + from, size - from, "\n\n", 2);
        if (end)
            return (size_t) (end - data) + 2;
    }
    *scan_p = size;
    return 0;
}

//  Print every answer that is complete, in request order; -1 after printing
//  why when an answer grows beyond reason.
static int
s_client_answers (s_client_t *self)
{
    while (self->head < self->tail) {
        s_request_t *request = &self->requests[self->head];
        size_t size = s_answer_size (self->in + self->in_pos, self->in_size - self->in_pos,
                                     request->whatsat, &self->scan);
        if (size == 0) {
            if (self->in_size - self->in_pos > HERD_CLIENT_ANSWER_MAX) {
                fprintf (stderr, "herd client: the answer from %s to '%s' is over %d bytes\n",
                         self->peer, request->quote, HERD_CLIENT_ANSWER_MAX);
                return -1;
            }
            break;
        }
        s_client_print (self, request->whatsat, self->in + self->in_pos, size);
        self->in_pos += size;
        self->scan = 0;
        self->answered_at = zclock_mono ();
        zstr_free (&request->quote);
        self->head++;
    }
    //  Keep what is left at the start of the buffer
    if (self->in_pos > 0) {
        memmove (self->in, self->in + self->in_pos, self->in_size - self->in_pos);
        self->in_size -= self->in_pos;
        self->in_pos = 0;
    }
    return 0;
}

//  Read what the node sent; -1 after printing why on an error.
static int
s_client_receive (s_client_t *self)
{
    s_reserve (&self->in, &self->in_max, self->in_size, HERD_CLIENT_READ_CHUNK);
    ssize_t got = recv (self->fd, self->in + self->in_size, HERD_CLIENT_READ_CHUNK, 0);
    if (got > 0)
        self->in_size += (size_t) got;
    else
    if (got == 0)
        self->closed = true;
    else
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (errno == ECONNRESET)
            self->closed = true;
        else {
            fprintf (stderr, "herd client: reading from %s: %s\n", self->peer,
                     strerror (errno));
            return -1;
        }
    }
    return 0;
}

//  Send what is queued, as far as the socket takes it; -1 after printing
//  why on an error.
static int
s_client_send (s_client_t *self)
{
    while (self->out_pos < self->out_size) {
        ssize_t sent = send (self->fd, self->out + self->out_pos,
                             self->out_size - self->out_pos, MSG_NOSIGNAL);
        if (sent > 0)
            self->out_pos += (size_t) sent;
        else
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        else
        if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            self->closed = true;
            break;
        }
        else {
            fprintf (stderr, "herd client: writing to %s: %s\n", self->peer,
                     strerror (errno));
            return -1;
        }
    }
    return 0;
}

//  Read stdin and queue each whole line; at end of file a last line without
//  '\n' is still a line.
static void
s_client_read_input (s_client_t *self, int input)
{
    s_reserve (&self->line, &self->line_max, self->line_size, HERD_CLIENT_READ_CHUNK);
    ssize_t got = read (input, self->line + self->line_size, HERD_CLIENT_READ_CHUNK);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0) {
        if (got < 0)
            fprintf (stderr, "herd client: reading stdin: %s\n", strerror (errno));
        if (self->line_size > 0)
            s_client_queue (self, self->line, self->line_size);
        self->line_size = 0;
        self->input_done = true;
        return;
    }
    size_t from = self->line_size;
    self->line_size += (size_t) got;
    size_t start = 0;
    const char *nl;
    while ((nl = (const char *) memchr (self->line + from, '\n', self->line_size - from))) {
        size_t end = (size_t) (nl - self->line);
        s_client_queue (self, self->line + start, end - start);
        start = from = end + 1;
    }
    memmove (self->line, self->line + start, self->line_size - start);
    self->line_size -= start;
}

//  Send the queued requests and print their answers, reading more request
//  lines from input (a file descriptor, or -1 for none) until it ends. 0 when
//  every request got its answer; -1 after printing why not.
static int
s_client_pump (s_client_t *self, int input)
{
    bool reading = input >= 0 && !self->input_done;
    while (true) {
        if (s_client_answers (self))
            return -1;
        if (self->closed) {
            if (self->head < self->tail)
                fprintf (stderr, "herd client: %s closed the connection before answering '%s'\n",
                         self->peer, self->requests[self->head].quote);
            else
            if (reading && !self->input_done)
                fprintf (stderr, "herd client: %s closed the connection\n", self->peer);
            else
                return 0;
            return -1;
        }
        if (self->head == self->tail && (!reading || self->input_done))
            return 0;

        struct pollfd items[2] = {{.fd = self->fd, .events = POLLIN}, {.fd = -1}};
        if (self->out_pos < self->out_size)
            items[0].events |= POLLOUT;
        if (reading && !self->input_done && self->tail - self->head < HERD_CLIENT_PENDING_MAX
            && self->out_size - self->out_pos < HERD_CLIENT_QUEUED_MAX)
            items[1] = (struct pollfd){.fd = input, .events = POLLIN};
        //  The oldest request waits from when it was asked or the answer
        //  before it came, whichever is later
        int wait = -1;
        int64_t deadline = 0;
        if (self->head < self->tail) {
            int64_t since = self->requests[self->head].queued_at;
            deadline = (since > self->answered_at ? since : self->answered_at) + self->timeout;
            int64_t left = deadline - zclock_mono ();
            wait = left > 0 ? (int) left : 0;
        }
        int ready = poll (items, 2, wait);
        if (ready < 0 && errno != EINTR) {
            fprintf (stderr, "herd client: poll: %s\n", strerror (errno));
            return -1;
        }
        if (ready == 0 && self->head < self->tail && zclock_mono () >= deadline) {
            fprintf (stderr, "herd client: no answer from %s within %d ms to '%s'\n", self->peer,
                     self->timeout, self->requests[self->head].quote);
            return -1;
        }
        if (ready <= 0)
            continue;
        if (items[0].revents & POLLOUT && s_client_send (self))
            return -1;
        if (items[0].revents & (POLLIN | POLLHUP | POLLERR) && s_client_receive (self))
            return -1;
        if (items[1].revents)
            s_client_read_input (self, input);
        if (self->out_pos < self->out_size && !self->closed && s_client_send (self))
            return -1;
    }
}

#ifdef HERD_HAVE_LIBEDIT
//  The history file of interactive sessions: ~/.herd_history, or NULL.
static char *
s_history_path (void)
{
    const char *home = getenv ("HOME");
    return home && *home ? zsys_sprintf ("%s/.herd_history", home) : NULL;
}
#endif

//  Prompt for one line; a new string without its '\n', or NULL at end of
//  input.
static char *
s_prompt (const char *prompt)
{
#ifdef HERD_HAVE_LIBEDIT
    return readline (prompt);
#else
    fputs (prompt, stdout);
    fflush (stdout);
    char *line = NULL;
    size_t max = 0;
    ssize_t size = getline (&line, &max, stdin);
    if (size < 0) {
        free (line);
        return NULL;
    }
    if (size > 0 && line[size - 1] == '\n')
        line[size - 1] = '\0';
    return line;
#endif
}

//  The interactive session: a prompt, one request at a time, blank lines
//  skipped, until end of input. 0, or -1 after printing why.
static int
s_client_interactive (s_client_t *self, const char *name)
{
    char *prompt = zsys_sprintf ("%s> ", name);
    bool tty = isatty (STDIN_FILENO);
    if (tty)
        fprintf (stderr, "herd client: connected to %s; Ctrl-D ends\n", self->peer);
#ifdef HERD_HAVE_LIBEDIT
    char *history = s_history_path ();
    using_history ();
    stifle_history (HERD_CLIENT_HISTORY);
    if (history)
        read_history (history);
#endif
    int rc = 0;
    char *line;
    while (rc == 0 && (line = s_prompt (prompt))) {
        size_t size = strlen (line);
        if (strspn (line, " \t\r\f\v") < size) {
#ifdef HERD_HAVE_LIBEDIT
            add_history (line);
#endif
            s_client_queue (self, line, size);
            rc = s_client_pump (self, -1);
        }
        free (line);
    }
    if (rc == 0 && tty)
        fputs ("\n", stdout);
#ifdef HERD_HAVE_LIBEDIT
    if (history)
        write_history (history);
    clear_history ();
    free (history);
#endif
    free (prompt);
    return rc;
}

//  Build 'IAMAT ID POSITION NOW', NOW being this moment's POSIX time with
//  nanoseconds. Caller frees.
static char *
s_iamat_line (const char *id, const char *position)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return zsys_sprintf ("IAMAT %s %s %lld.%09ld", id, position, (long long) now.tv_sec,
                         (long) now.tv_nsec);
}

int
herd_client_main (int argc, char *argv[], const char *config)
{
    s_options_t opts = {.config = config};
    int rc = s_parse_options (argc, argv, &opts);
    if (rc == 1) {
        //  --help
        free (opts.lines);
        return 0;
    }
    char *host = NULL;
    char *peer = NULL;
    int port = 0;
    if (rc == 0)
        rc = s_resolve (&opts, &host, &port, &peer);
    int fd = rc == 0 ? s_connect (host, port, opts.timeout, peer) : -1;
    if (rc == 0 && fd < 0)
        rc = 1;
    if (rc == 0) {
        s_client_t *client = s_client_new (fd, peer, opts.timeout, opts.pretty);
        if (opts.iamat) {
            char *line = s_iamat_line (opts.iamat, opts.at);
            s_client_queue (client, line, strlen (line));
            zstr_free (&line);
        }
        for (int i = 0; i < opts.line_count; i++)
            s_client_queue_text (client, opts.lines[i], strlen (opts.lines[i]));
        rc = s_client_pump (client, -1) ? 1 : 0;
        bool asked = opts.iamat || opts.line_count > 0;
        if (rc == 0 && (opts.interactive || (!asked && isatty (STDIN_FILENO))))
            rc = s_client_interactive (client, opts.target) ? 1 : 0;
        else
        if (rc == 0 && !asked)
            rc = s_client_pump (client, STDIN_FILENO) ? 1 : 0;
        s_client_destroy (&client);
    }
    free (opts.lines);
    free (host);
    free (peer);
    return rc;
}
