//  herd.c - the herd command: run a node or a role, start a whole herd, ask it.

#include "herd_client.h"
#include "herd_node.h"
#include "../common/herd_version.h"
#include "herd_watch.h"
#include "../common/herd_msg.h"

#include <czmq.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char s_usage[] =
    "usage: herd [-c FILE] COMMAND [options] [ARGS]\n"
    "       herd --version | --help\n"
    "\n"
    "  herd node NAME [--role ROLE]        run node NAME: gateway, bus and places\n"
    "                                      in one process (--role: one role of it)\n"
    "  herd up [--split]                   run every node of FILE that lives on this\n"
    "                                      host, one process per node (--split: one\n"
    "                                      per role), until SIGINT or SIGTERM\n"
    "  herd nodes                          print 'NAME HOST:PORT' for every node\n"
    "  herd digest                         print 'NAME CLIENTS DIGEST' for every node (or\n"
    "                                      'NAME unreachable'); exit 0 when all agree\n"
    "  herd get CLIENT [NODE|all]          print each node's stored record of CLIENT\n"
    "  herd link NODE PEER up|down         take NODE's bus link from PEER down or up\n"
    "  herd client HOST:PORT|NAME [LINE ...]\n"
    "                                      send request lines to a node and print the\n"
    "                                      answers\n"
    "  herd monitor [--once] [--json]      live view of every node and edge\n"
    "  herd graph                          the topology as Graphviz DOT, with live state\n"
    "  herd keygen NAME [-d DIR]           write a CURVE certificate pair for node NAME\n"
    "  herd version                        the version of herd and its libraries\n"
    "  herd help [COMMAND]                 this text, or a command's\n"
    "\n"
    "Every command that reads the herd's config takes -c FILE (--config FILE),\n"
    "before or after the command; FILE defaults to herd.cfg in the current\n"
    "directory. 'herd COMMAND --help' describes a command and its options.\n"
    "The Places API key is read from the variable named by places/key_env\n"
    "(GOOGLE_API_KEY); the variable HERD_PLACES_URL, when set, overrides\n"
    "places/url.\n";

//  Options that take no short letter.
enum { S_OPT_ROLE = 256, S_OPT_SPLIT, S_OPT_ONCE, S_OPT_JSON };

#define S_OPT_HELP   {"help", no_argument, NULL, 'h'}
#define S_OPT_CONFIG {"config", required_argument, NULL, 'c'}
#define S_OPT_END    {NULL, 0, NULL, 0}
#define S_HELP_TEXT  "  -h, --help          this text\n"
#define S_CONFIG_TEXT "  -c, --config FILE   the herd's config (default herd.cfg)\n"

//  One subcommand's command line, parsed.
typedef struct {
    const char *config;
    const char *role;           //  node: one role
    const char *dir;            //  keygen: where certificates go
    bool split;                 //  up: one process per role
    bool once;                  //  monitor: one snapshot
    bool json;                  //  monitor: as JSON
    const char *arg[3];         //  positional arguments
    int arg_count;
} s_args_t;

//  A subcommand: its synopsis and help, the options it takes, and how many
//  positional arguments.
typedef struct {
    const char *name;
    const char *synopsis;       //  after "herd NAME "
    const char *help;           //  what it does, then its options
    const char *shortopts;
    const struct option *longopts;
    int min_args, max_args;
} s_command_t;

static const struct option s_opts_config[] = {S_OPT_HELP, S_OPT_CONFIG, S_OPT_END};
static const struct option s_opts_node[] = {
    S_OPT_HELP, S_OPT_CONFIG, {"role", required_argument, NULL, S_OPT_ROLE}, S_OPT_END};
static const struct option s_opts_up[] = {
    S_OPT_HELP, S_OPT_CONFIG, {"split", no_argument, NULL, S_OPT_SPLIT}, S_OPT_END};
static const struct option s_opts_monitor[] = {
    S_OPT_HELP, S_OPT_CONFIG, {"once", no_argument, NULL, S_OPT_ONCE},
    {"json", no_argument, NULL, S_OPT_JSON}, S_OPT_END};
static const struct option s_opts_keygen[] = {
    S_OPT_HELP, S_OPT_CONFIG, {"dir", required_argument, NULL, 'd'}, S_OPT_END};

static const s_command_t s_commands[] = {
    {"node", "NAME [--role gateway|bus|places] [-c FILE]",
     "Runs node NAME of FILE until SIGINT or SIGTERM: gateway, bus and places in\n"
     "one process, joined over inproc://; SIGHUP reopens its log.\n\n"
     "  --role ROLE         run one role (gateway, bus or places) of node NAME,\n"
     "                      joined to the others over ipc:// in run_dir\n" S_CONFIG_TEXT
         S_HELP_TEXT,
     "hc:", s_opts_node, 1, 1},
    {"up", "[--split] [-c FILE]",
     "Runs every node of FILE that lives on this host (its client address is\n"
     "loopback, a wildcard or an address of this machine), one process per node,\n"
     "until SIGINT or SIGTERM.\n\n"
     "  --split             one process per role of each node\n" S_CONFIG_TEXT S_HELP_TEXT,
     "hc:", s_opts_up, 0, 0},
    {"nodes", "[-c FILE]",
     "Prints 'NAME HOST:PORT' (the client address) for every node of FILE.\n\n" S_CONFIG_TEXT
         S_HELP_TEXT,
     "hc:", s_opts_config, 0, 0},
    {"digest", "[-c FILE]",
     "Asks every node over its sync endpoint for its client count and table\n"
     "digest and prints 'NAME CLIENTS DIGEST', or 'NAME unreachable'. Exits 0\n"
     "only when every node answered and all agree.\n\n" S_CONFIG_TEXT S_HELP_TEXT,
     "hc:", s_opts_config, 0, 0},
    {"get", "CLIENT [NODE|all] [-c FILE]",
     "Asks NODE (default: every node) over its sync endpoint for its stored\n"
     "record of CLIENT, without calling Places, and prints for each node\n"
     "  NODE AT-LINE (origin NODE, applied TIME, seq N)\n"
     "or 'NODE none' (no record) or 'NODE unreachable'. TIME is when that node\n"
     "applied the record (UTC), or 'at start' for one loaded from its journal.\n"
     "Exits 0 only when every node asked answered and holds a record.\n\n" S_CONFIG_TEXT
         S_HELP_TEXT,
     "hc:", s_opts_config, 1, 2},
    {"link", "NODE PEER up|down [-c FILE]",
     "Takes NODE's bus link from its neighbour PEER down, or brings it up again\n"
     "(coming up, NODE catches up with PEER). Exits 1 when NODE refuses or does\n"
     "not answer.\n\n" S_CONFIG_TEXT S_HELP_TEXT,
     "hc:", s_opts_config, 3, 3},
    {"client", "HOST:PORT|NAME [options] [LINE ...]", NULL, NULL, NULL, 0, 0},
    {"monitor", "[--once] [--json] [-c FILE]",
     "A live view of every node and edge of FILE, from the nodes' monitor\n"
     "endpoints, refreshed every second until SIGINT.\n\n"
     "  --once              print one snapshot; exit 0 only when all is well\n"
     "  --json              the snapshot as JSON\n" S_CONFIG_TEXT S_HELP_TEXT,
     "hc:", s_opts_monitor, 0, 0},
    {"graph", "[-c FILE]",
     "Prints the topology of FILE as Graphviz DOT with live node and link state\n"
     "(herd graph | dot -Tpng > herd.png).\n\n" S_CONFIG_TEXT S_HELP_TEXT,
     "hc:", s_opts_config, 0, 0},
    {"keygen", "NAME [-d DIR]",
     "Writes a CURVE certificate pair for node NAME: DIR/NAME.cert (public: copy\n"
     "it to every host) and DIR/NAME.cert_secret (mode 600: keep it on NAME's host\n"
     "only).\n\n"
     "  -d, --dir DIR       where to write them (default certs)\n" S_HELP_TEXT,
     "hc:d:", s_opts_keygen, 1, 1},
    {"version", "",
     "Prints 'herd VERSION', then the libzmq and czmq versions it runs with.\n\n" S_HELP_TEXT,
     "hc:", s_opts_config, 0, 0},
    {"help", "[COMMAND]", "Prints the list of commands, or COMMAND's help.\n\n" S_HELP_TEXT,
     "hc:", s_opts_config, 0, 1},
};

//  The subcommand called name, or NULL.
static const s_command_t *
s_command (const char *name)
{
    for (size_t i = 0; i < sizeof (s_commands) / sizeof (s_commands[0]); i++)
        if (streq (s_commands[i].name, name))
            return &s_commands[i];
    return NULL;
}

//  Print a subcommand's help: synopsis, what it does, its options.
static void
s_command_help (const s_command_t *command)
{
    printf ("usage: herd %s%s%s\n\n%s", command->name, *command->synopsis ? " " : "",
            command->synopsis, command->help);
}

//  Print a subcommand's usage error with its synopsis and where to read
//  more; returns 2, the exit code.
static int
s_usage_error (const s_command_t *command, const char *format, const char *what)
{
    fprintf (stderr, "herd %s: ", command->name);
    fprintf (stderr, format, what);
    fprintf (stderr, "\nusage: herd %s%s%s\n(see herd %s --help)\n", command->name,
             *command->synopsis ? " " : "", command->synopsis, command->name);
    return 2;
}

//  Parse a subcommand's options and arguments (argv[0] is its name); args
//  already holds the defaults. 0 to go on, 1 after printing its help, 2
//  after a usage error.
static int
s_parse_command (const s_command_t *command, int argc, char *argv[], s_args_t *args)
{
    optind = 0;                 //  glibc: start afresh, after argv[0]
    opterr = 0;                 //  the messages are ours
    char shortopts[16];
    snprintf (shortopts, sizeof (shortopts), ":%s", command->shortopts);
    int opt;
    while ((opt = getopt_long (argc, argv, shortopts, command->longopts, NULL)) != -1) {
        const char *text = argv[optind - 1];
        if (opt == 'h') {
            s_command_help (command);
            return 1;
        }
        else
        if (opt == 'c')
            args->config = optarg;
        else
        if (opt == 'd')
            args->dir = optarg;
        else
        if (opt == S_OPT_ROLE)
            args->role = optarg;
        else
        if (opt == S_OPT_SPLIT)
            args->split = true;
        else
        if (opt == S_OPT_ONCE)
            args->once = true;
        else
        if (opt == S_OPT_JSON)
            args->json = true;
        else
        if (opt == ':')
            return s_usage_error (command, "option '%s' needs a value", text);
        else {
            char letter[3] = {'-', (char) optopt, 0};
            return s_usage_error (command, "unknown option '%s'",
                                  optopt > 0 && optopt < 256 && strncmp (text, "--", 2) != 0
                                      ? letter
                                      : text);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (args->arg_count == command->max_args)
            return s_usage_error (command, "unexpected argument '%s'", argv[i]);
        args->arg[args->arg_count++] = argv[i];
    }
    if (args->arg_count < command->min_args)
        return s_usage_error (command, "%s", "an argument is missing");
    return 0;
}

//  herd version: this program's version, then its libraries'.
static int
s_version (void)
{
    int major, minor, patch, zmajor, zminor, zpatch;
    zmq_version (&zmajor, &zminor, &zpatch);
    zsys_version (&major, &minor, &patch);
    printf ("herd %s\nlibzmq %d.%d.%d, czmq %d.%d.%d\n", HERD_VERSION, zmajor, zminor, zpatch,
            major, minor, patch);
    return 0;
}

//  Load the config or print why not.
static herd_config_t *
s_load (const char *path)
{
    char *error = NULL;
    herd_config_t *config = herd_config_load (path, &error);
    if (!config) {
        fprintf (stderr, "herd: bad configuration: %s\n", error ? error : path);
        free (error);
    }
    return config;
}

//  True if host names an address of this machine (loopback, wildcard, or
//  one of its interfaces), so `herd up` runs its nodes here.
static bool
s_is_local (const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    if (getaddrinfo (host, NULL, &hints, &found) != 0)
        return false;
    struct ifaddrs *interfaces = NULL;
    getifaddrs (&interfaces);
    bool local = false;
    for (struct addrinfo *ai = found; ai && !local; ai = ai->ai_next) {
        char text[NI_MAXHOST];
        if (getnameinfo (ai->ai_addr, ai->ai_addrlen, text, sizeof (text), NULL, 0,
                         NI_NUMERICHOST) != 0)
            continue;
        if (strncmp (text, "127.", 4) == 0 || streq (text, "::1") || streq (text, "0.0.0.0")
            || streq (text, "::"))
            local = true;
        for (struct ifaddrs *it = interfaces; it && !local; it = it->ifa_next) {
            char mine[NI_MAXHOST];
            if (!it->ifa_addr
                || (it->ifa_addr->sa_family != AF_INET && it->ifa_addr->sa_family != AF_INET6))
                continue;
            socklen_t len = it->ifa_addr->sa_family == AF_INET ? sizeof (struct sockaddr_in)
                                                                : sizeof (struct sockaddr_in6);
            if (getnameinfo (it->ifa_addr, len, mine, sizeof (mine), NULL, 0, NI_NUMERICHOST)
                == 0)
                local = streq (mine, text);
        }
    }
    freeifaddrs (interfaces);
    freeaddrinfo (found);
    return local;
}

//  With CURVE on, the certificate this host speaks to the herd with: the
//  first node whose secret certificate is readable here. NULL if none.
static zcert_t *
s_local_cert (const herd_config_t *config)
{
    for (size_t i = 0; i < config->node_count; i++) {
        char *secret = zsys_sprintf ("%s_secret", config->nodes[i].cert);
        zcert_t *cert = zcert_load (secret);
        zstr_free (&secret);
        if (cert)
            return cert;
    }
    return NULL;
}

//  A control request: command, then the envelope of the config's herd
//  (herd_msg.h). The caller adds the arguments.
static zmsg_t *
s_request (const herd_config_t *config, const char *command)
{
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, command);
    byte envelope[HERD_MSG_ENVELOPE_MAX];
    zmsg_addmem (request, envelope, herd_msg_envelope (envelope, config->name));
    return request;
}

//  True, and the reason printed, when a node refused a request (reply
//  ["REFUSED", reason]): of another herd or wire version.
static bool
s_refused (const herd_node_t *node, const char *kind, const char *reason)
{
    if (!kind || !streq (kind, HERD_MSG_REFUSED))
        return false;
    fprintf (stderr, "herd: %s refused the request: %s\n", node->name,
             reason ? reason : "no reason given");
    return true;
}

//  Send a request to a node's sync endpoint; its reply, or NULL after
//  timeout ms. With CURVE on, speak as a herd member.
static zmsg_t *
s_ask (const herd_config_t *config, const herd_node_t *node, zmsg_t **request_p, int timeout)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zmsg_t *reply = NULL;
    if (config->curve) {
        zcert_t *mine = s_local_cert (config);
        zcert_t *theirs = zcert_load (node->cert);
        if (mine && theirs) {
            zcert_apply (mine, dealer);
            zsock_set_curve_serverkey (dealer, zcert_public_txt (theirs));
        }
        else
            fprintf (stderr, "herd: CURVE is on but no node's secret certificate is readable "
                             "here\n");
        zcert_destroy (&mine);
        zcert_destroy (&theirs);
    }
    if (dealer && zsock_connect (dealer, "%s", node->sync) == 0) {
        zmsg_send (request_p, dealer);
        zpoller_t *poller = zpoller_new (dealer, NULL);
        if (zpoller_wait (poller, timeout))
            reply = zmsg_recv (dealer);
        zpoller_destroy (&poller);
    }
    zmsg_destroy (request_p);
    zsock_destroy (&dealer);
    return reply;
}

//  herd digest: each node's client count and table digest, asked over its
//  sync endpoint. 0 when every node answered and all agree.
static int
s_digest (const herd_config_t *config)
{
    int rc = 0;
    char *first = NULL;
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        if (!node->sync) {
            printf ("%s no-sync-endpoint\n", node->name);
            rc = 1;
            continue;
        }
        zmsg_t *request = s_request (config, HERD_MSG_DIGEST);
        zmsg_t *reply = s_ask (config, node, &request, 1000);
        char *kind = reply ? zmsg_popstr (reply) : NULL;
        char *name = reply ? zmsg_popstr (reply) : NULL;
        char *count = reply ? zmsg_popstr (reply) : NULL;
        char *digest = reply ? zmsg_popstr (reply) : NULL;
        if (kind && streq (kind, "DIGEST") && count && digest) {
            printf ("%s %s %s\n", node->name, count, digest);
            char *both = zsys_sprintf ("%s %s", count, digest);
            if (!first)
                first = both;
            else {
                if (!streq (first, both))
                    rc = 1;
                zstr_free (&both);
            }
        }
        else {
            printf ("%s %s\n", node->name, s_refused (node, kind, name) ? "refused"
                                                                        : "unreachable");
            rc = 1;
        }
        zstr_free (&kind);
        zstr_free (&name);
        zstr_free (&count);
        zstr_free (&digest);
        zmsg_destroy (&reply);
    }
    zstr_free (&first);
    return rc;
}

//  herd link NODE PEER up|down: take NODE's subscription to PEER down or up.
static int
s_link (const herd_config_t *config, const char *name, const char *peer, const char *state)
{
    const herd_node_t *node = herd_config_node (config, name);
    if (!node || !node->sync || !peer || !state) {
        fprintf (stderr, "herd: link needs NODE PEER up|down, and NODE needs a sync endpoint\n");
        return 2;
    }
    zmsg_t *request = s_request (config, HERD_MSG_LINK);
    zmsg_addstr (request, peer);
    zmsg_addstr (request, state);
    zmsg_t *reply = s_ask (config, node, &request, 2000);
    char *status = reply ? zmsg_popstr (reply) : NULL;
    char *reason = reply ? zmsg_popstr (reply) : NULL;
    int rc = status && streq (status, "OK") ? 0 : 1;
    if (rc)
        fprintf (stderr, "herd: link %s %s %s: %s%s\n", name, peer, state,
                 status && streq (status, HERD_MSG_REFUSED) ? "refused: " : "",
                 reason ? reason : "no answer");
    zstr_free (&status);
    zstr_free (&reason);
    zmsg_destroy (&reply);
    return rc;
}

//  Ask one node for its record of client and print what it says; true when
//  it answered and holds one.
static bool
s_get_one (const herd_config_t *config, const herd_node_t *node, const char *client)
{
    if (!node->sync) {
        printf ("%s no-sync-endpoint\n", node->name);
        return false;
    }
    zmsg_t *request = s_request (config, HERD_MSG_GET);
    zmsg_addstr (request, client);
    zmsg_t *reply = s_ask (config, node, &request, 1000);
    char *kind = reply ? zmsg_popstr (reply) : NULL;
    char *line = reply ? zmsg_popstr (reply) : NULL;
    char *applied = reply ? zmsg_popstr (reply) : NULL;
    char *seq = reply ? zmsg_popstr (reply) : NULL;
    bool held = false;
    if (kind && streq (kind, HERD_MSG_RECORD) && line && applied && seq) {
        //  The origin is the AT line's second field
        char origin[256] = "?";
        sscanf (line, "AT %255s", origin);
        char when[64] = "at start";
        uint64_t usec = strtoull (applied, NULL, 10);
        if (usec) {
            time_t sec = (time_t) (usec / 1000000);
            struct tm tm;
            gmtime_r (&sec, &tm);
            size_t size = strftime (when, sizeof (when), "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf (when + size, sizeof (when) - size, ".%03uZ",
                      (unsigned) (usec % 1000000 / 1000));
        }
        printf ("%s %s (origin %s, applied %s, seq %s)\n", node->name, line, origin, when, seq);
        held = true;
    }
    else
    if (kind && streq (kind, HERD_MSG_NONE))
        printf ("%s none\n", node->name);
    else
        printf ("%s %s\n", node->name, s_refused (node, kind, line) ? "refused" : "unreachable");
    zstr_free (&kind);
    zstr_free (&line);
    zstr_free (&applied);
    zstr_free (&seq);
    zmsg_destroy (&reply);
    return held;
}

//  herd get CLIENT [NODE|all]: each node's stored record of CLIENT, asked
//  over its sync endpoint. 0 when every node asked answered and holds one.
static int
s_get (const herd_config_t *config, const char *client, const char *which)
{
    if (!client || !*client || strpbrk (client, " \t\r\n\f\v")) {
        fprintf (stderr, "herd get: a client id has no white space: '%s'\n", client);
        return 2;
    }
    if (!streq (which, "all") && !herd_config_node (config, which)) {
        fprintf (stderr, "herd get: the config has no node '%s'\n", which);
        return 2;
    }
    int rc = 0;
    for (size_t i = 0; i < config->node_count; i++)
        if (streq (which, "all") || streq (which, config->nodes[i].name))
            if (!s_get_one (config, &config->nodes[i], client))
                rc = 1;
    fflush (stdout);
    return rc;
}

//  herd keygen NAME: a CURVE certificate pair for node NAME.
static int
s_keygen (const char *name, const char *dir)
{
    if (!name) {
        fprintf (stderr, "herd: keygen needs a NAME\n");
        return 2;
    }
    zsys_dir_create ("%s", dir);
    zcert_t *cert = zcert_new ();
    zcert_set_meta (cert, "name", "%s", name);
    char *path = zsys_sprintf ("%s/%s.cert", dir, name);
    char *secret = zsys_sprintf ("%s_secret", path);
    int rc = zcert_save (cert, path);
    if (rc == 0)
        rc = chmod (secret, 0600);
    if (rc == 0)
        printf ("herd: wrote %s (public: give it to every host) and %s (secret: keep it on "
                "%s's host only)\nherd: add to node %s in herd.cfg:  cert = %s\n",
                path, secret, name, name, path);
    else
        fprintf (stderr, "herd: cannot write %s: %s\n", path, strerror (errno));
    zstr_free (&path);
    zstr_free (&secret);
    zcert_destroy (&cert);
    return rc == 0 ? 0 : 1;
}

//  One child process of `herd up`.
typedef struct {
    pid_t pid;
    char label[128];
} s_child_t;

//  Start `herd node NAME [--role ROLE] -c FILE` as a child; its pid or -1.
static pid_t
s_spawn (const char *config, const char *name, const char *role)
{
    pid_t pid = fork ();
    if (pid == 0) {
        sigset_t none;
        sigemptyset (&none);
        pthread_sigmask (SIG_SETMASK, &none, NULL);
        char *argv[8] = {"herd", "node", (char *) name, "-c", (char *) config, NULL, NULL, NULL};
        if (role) {
            argv[5] = "--role";
            argv[6] = (char *) role;
        }
        execv ("/proc/self/exe", argv);
        fprintf (stderr, "herd: cannot run %s: %s\n", name, strerror (errno));
        _exit (127);
    }
    return pid;
}

//  herd up: every local node, one process each, until SIGINT or SIGTERM.
static int
s_up (const herd_config_t *config, const char *path, bool split)
{
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGCHLD);
    sigaddset (&signals, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);

    static const char *roles[] = {"places", "bus", "gateway"};
    size_t max = config->node_count * 3;
    s_child_t *children = (s_child_t *) calloc (max, sizeof (s_child_t));
    size_t count = 0;
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        if (!s_is_local (node->client_host))
            continue;
        printf ("herd: starting %-10s clients on %-21s bus %s\n", node->name, node->client,
                node->bus);
        for (size_t r = 0; r < (split ? 3u : 1u); r++) {
            s_child_t *child = &children[count++];
            child->pid = s_spawn (path, node->name, split ? roles[r] : NULL);
            snprintf (child->label, sizeof (child->label), "%s%s%s", node->name,
                      split ? " " : "", split ? roles[r] : "");
        }
    }
    fflush (stdout);
    if (count == 0) {
        fprintf (stderr, "herd: no node of %s lives on this host\n", path);
        free (children);
        return 1;
    }

    //  Wait for a signal; report children that end on their own
    size_t running = count;
    int status = 0;
    while (running > 0) {
        int signo = 0;
        sigwait (&signals, &signo);
        if (signo == SIGHUP) {
            //  Every node reopens its log (logrotate)
            for (size_t i = 0; i < count; i++)
                if (children[i].pid > 0)
                    kill (children[i].pid, SIGHUP);
            continue;
        }
        if (signo != SIGCHLD)
            break;
        pid_t pid;
        int wstatus;
        while ((pid = waitpid (-1, &wstatus, WNOHANG)) > 0)
            for (size_t i = 0; i < count; i++)
                if (children[i].pid == pid) {
                    fprintf (stderr, "herd: %s exited (%s %d)\n", children[i].label,
                             WIFEXITED (wstatus) ? "status" : "signal",
                             WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : WTERMSIG (wstatus));
                    children[i].pid = 0;
                    running--;
                    status = 1;
                }
    }
    //  Stop the rest, last started first (a split node's gateway before its
    //  bus, so what the gateway acknowledged reaches the bus): SIGTERM, then
    //  SIGKILL when one has not stopped within 5 s
    printf ("herd: stopping\n");
    fflush (stdout);
    for (size_t i = count; i-- > 0;) {
        if (children[i].pid <= 0)
            continue;
        kill (children[i].pid, SIGTERM);
        int64_t deadline = zclock_mono () + 5000;
        while (children[i].pid > 0) {
            int wstatus;
            pid_t pid = waitpid (children[i].pid, &wstatus, WNOHANG);
            if (pid == children[i].pid
                && !(WIFEXITED (wstatus) && WEXITSTATUS (wstatus) == 0)) {
                fprintf (stderr, "herd: %s did not stop cleanly (%s %d)\n", children[i].label,
                         WIFEXITED (wstatus) ? "status" : "signal",
                         WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : WTERMSIG (wstatus));
                status = 1;
            }
            if (pid == children[i].pid || pid == -1)
                children[i].pid = 0;
            else
            if (zclock_mono () > deadline) {
                fprintf (stderr, "herd: %s did not stop: killing it\n", children[i].label);
                status = 1;
                kill (children[i].pid, SIGKILL);
                waitpid (children[i].pid, &wstatus, 0);
                children[i].pid = 0;
            }
            else
                zclock_sleep (5);
        }
    }
    free (children);
    return status;
}

int
main (int argc, char *argv[])
{
    //  Options before the command: -c FILE, --help, --version
    static const struct option global[] = {
        S_OPT_HELP, S_OPT_CONFIG, {"version", no_argument, NULL, 'V'}, S_OPT_END};
    const char *config = "herd.cfg";
    opterr = 0;
    int opt;
    while ((opt = getopt_long (argc, argv, "+:hc:V", global, NULL)) != -1) {
        if (opt == 'h') {
            printf ("%s", s_usage);
            return 0;
        }
        else
        if (opt == 'V')
            return s_version ();
        else
        if (opt == 'c')
            config = optarg;
        else {
            fprintf (stderr, opt == ':' ? "herd: option '%s' needs a value\n(see herd --help)\n"
                                        : "herd: unknown option '%s'\n(see herd --help)\n",
                     argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf (stderr, "%s", s_usage);
        return 2;
    }
    const s_command_t *command = s_command (argv[optind]);
    if (!command) {
        fprintf (stderr, "herd: unknown command '%s'\n(see herd --help)\n", argv[optind]);
        return 2;
    }
    argc -= optind;
    argv += optind;
    //  herd client has options of its own
    if (streq (command->name, "client"))
        return herd_client_main (argc, argv, config);

    s_args_t args = {.config = config};
    int rc = s_parse_command (command, argc, argv, &args);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (streq (command->name, "help")) {
        const s_command_t *about = args.arg_count ? s_command (args.arg[0]) : NULL;
        if (args.arg_count && !about)
            return s_usage_error (command, "no command '%s'", args.arg[0]);
        if (about && streq (about->name, "client"))
            return herd_client_main (2, (char *[]){"client", "--help", NULL}, config);
        if (about)
            s_command_help (about);
        else
            printf ("%s", s_usage);
        return 0;
    }
    if (streq (command->name, "version"))
        return s_version ();
    if (streq (command->name, "keygen"))
        return s_keygen (args.arg[0], args.dir ? args.dir : "certs");
    if (args.role && !streq (args.role, "gateway") && !streq (args.role, "bus")
        && !streq (args.role, "places"))
        return s_usage_error (command, "--role must be gateway, bus or places, not '%s'",
                              args.role);
    if (streq (command->name, "link")
        && (!args.arg[2] || (!streq (args.arg[2], "up") && !streq (args.arg[2], "down"))))
        return s_usage_error (command, "the state must be up or down, not '%s'", args.arg[2]);
    if (streq (command->name, "node") || streq (command->name, "up")) {
        //  Block the stop signals from the start: a SIGTERM that comes while
        //  the config loads is then taken by sigwait, not the default action
        sigset_t signals;
        sigemptyset (&signals);
        sigaddset (&signals, SIGINT);
        sigaddset (&signals, SIGTERM);
        sigaddset (&signals, SIGHUP);
        pthread_sigmask (SIG_BLOCK, &signals, NULL);
    }
    herd_config_t *loaded = s_load (args.config);
    if (!loaded)
        return 1;
    if (streq (command->name, "nodes"))
        for (size_t i = 0; i < loaded->node_count; i++)
            printf ("%s %s\n", loaded->nodes[i].name, loaded->nodes[i].client);
    else
    if (streq (command->name, "up"))
        rc = s_up (loaded, args.config, args.split);
    else
    if (streq (command->name, "digest"))
        rc = s_digest (loaded);
    else
    if (streq (command->name, "get"))
        rc = s_get (loaded, args.arg[0], args.arg_count > 1 ? args.arg[1] : "all");
    else
    if (streq (command->name, "monitor"))
        rc = herd_watch_monitor (loaded, args.once, args.json);
    else
    if (streq (command->name, "graph"))
        rc = herd_watch_graph (loaded);
    else
    if (streq (command->name, "link"))
        rc = s_link (loaded, args.arg[0], args.arg[1], args.arg[2]);
    else {
        const herd_node_t *node = herd_config_node (loaded, args.arg[0]);
        if (!node) {
            fprintf (stderr, "herd: %s has no node '%s'\n", args.config, args.arg[0]);
            rc = 1;
        }
        else
            rc = herd_node_run (loaded, node, args.role);
    }
    herd_config_destroy (&loaded);
    return rc;
}
