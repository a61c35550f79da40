//  herd.c - the herd command: run a node or a role, start a whole herd, ask it.

#include "herd_checkup.h"
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
    "                                      per role), restarting one that dies, until\n"
    "                                      SIGINT or SIGTERM\n"
    "  herd nodes                          print 'NAME HOST:PORT' for every node\n"
    "  herd check [NODE]                   test FILE and this host's nodes: paths,\n"
    "                                      ports, certificates (nginx -t)\n"
    "  herd digest                         print 'NAME CLIENTS DIGEST' for every node (or\n"
    "                                      'NAME unreachable'); exit 0 when all agree\n"
    "  herd get CLIENT [NODE|all]          print each node's stored record of CLIENT\n"
    "  herd link NODE PEER up|down         take NODE's bus link from PEER down or up\n"
    "  herd client HOST:PORT|NAME [LINE ...]\n"
    "                                      send request lines to a node and print the\n"
    "                                      answers\n"
    "  herd monitor [--once] [--json]      live view of every node and edge\n"
    "  herd graph                          the topology as Graphviz DOT, with live state\n"
    "  herd keygen NAME|--all [-d DIR]     write a CURVE certificate pair for node NAME,\n"
    "                                      or for every node of FILE\n"
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
enum { S_OPT_ROLE = 256, S_OPT_SPLIT, S_OPT_ONCE, S_OPT_JSON, S_OPT_ALL };

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
    bool all;                   //  keygen: every node of the config
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
    S_OPT_HELP, S_OPT_CONFIG, {"dir", required_argument, NULL, 'd'},
    {"all", no_argument, NULL, S_OPT_ALL}, S_OPT_END};

static const s_command_t s_commands[] = {
    {"node", "NAME [--role gateway|bus|places] [-c FILE]",
     "Runs node NAME of FILE until SIGINT or SIGTERM: gateway, bus and places in\n"
     "one process, joined over inproc://; SIGHUP reopens its log and reloads FILE.\n\n"
     "  --role ROLE         run one role (gateway, bus or places) of node NAME,\n"
     "                      joined to the others over ipc:// in run_dir\n" S_CONFIG_TEXT
         S_HELP_TEXT,
     "hc:", s_opts_node, 1, 1},
    {"up", "[--split] [-c FILE]",
     "Runs every node of FILE that lives on this host (its client address is\n"
     "loopback, a wildcard or an address of this machine), one process per node,\n"
     "until SIGINT or SIGTERM, which stop them all; SIGHUP is passed on to each.\n"
     "A process that ends on its own is said on stderr (node, pid, exit status or\n"
     "signal) and started again after a back-off: 250 ms, doubled at each death\n"
     "within a minute of its start, up to 30 s; it keeps trying at 30 s.\n\n"
     "  --split             one process per role of each node\n" S_CONFIG_TEXT S_HELP_TEXT,
     "hc:", s_opts_up, 0, 0},
    {"nodes", "[-c FILE]",
     "Prints 'NAME HOST:PORT' (the client address) for every node of FILE.\n\n" S_CONFIG_TEXT
         S_HELP_TEXT,
     "hc:", s_opts_config, 0, 0},
    {"check", "[NODE] [-c FILE]",
     "Tests FILE as a node would load it (the same refusals, the same message),\n"
     "then, for each node this host runs (the ones 'herd up' starts) or NODE,\n"
     "tries what the node will do: make and write its log and data directories\n"
     "and run_dir, bind each TCP port it listens on (client, bus, sync, monitor,\n"
     "metrics), read its secret certificate when CURVE is on. Prints a line per\n"
     "problem or warning ('herd: check: FILE: node 'NAME': ...') and a verdict;\n"
     "exits 0 when there is no problem (warnings, such as an open bus said with\n"
     "security/curve = off, do not count), 1 otherwise.\n\n" S_CONFIG_TEXT S_HELP_TEXT,
     "hc:", s_opts_config, 0, 1},
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
    {"keygen", "NAME|--all [-d DIR] [-c FILE]",
     "Writes a CURVE certificate pair for node NAME: DIR/NAME.cert (public: copy\n"
     "it to every host) and DIR/NAME.cert_secret (mode 600: keep it on NAME's host\n"
     "only). A pair that exists is kept, never overwritten.\n\n"
     "  --all               a pair for every node of FILE, each where its cert key\n"
     "                      points (or DIR/NAME.cert); then prints the lines to\n"
     "                      paste into FILE (cert = ..., security/curve = on)\n"
     "  -d, --dir DIR       where to write them (default certs; with --all, the\n"
     "                      directory of FILE's cert paths, else certs)\n" S_CONFIG_TEXT
         S_HELP_TEXT,
     "hc:d:", s_opts_keygen, 0, 1},
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
        if (opt == S_OPT_ALL)
            args->all = true;
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

//  A control request (herd_msg.h), in the envelope of the config's herd.
static zmsg_t *
s_request (const herd_config_t *config, herd_msg_t request)
{
    request.herd = config->name;
    return herd_msg_encode (&request);
}

//  Decode a control reply (reply NULL: none came) into in; its id, or 0.
static herd_msg_id_t
s_reply (zmsg_t *reply, herd_msg_t *in)
{
    char reason[HERD_MSG_REASON_MAX];
    if (!reply || herd_msg_decode (in, reply, HERD_MSG_CONTROL, NULL, reason, sizeof (reason)))
        return (herd_msg_id_t) 0;
    return in->id;
}

//  True, and the reason printed, when a node refused a request (reply
//  ["REFUSED", reason]): of another herd or wire version.
static bool
s_refused (const herd_node_t *node, const herd_msg_t *in)
{
    if (in->id != HERD_MSG_ID_REFUSED)
        return false;
    fprintf (stderr, "herd: %s refused the request: %.*s\n", node->name, (int) in->reason.size,
             (const char *) in->reason.data);
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
        zmsg_t *request = s_request (config, (herd_msg_t){.id = HERD_MSG_ID_DIGEST});
        zmsg_t *reply = s_ask (config, node, &request, 1000);
        herd_msg_t in;
        if (s_reply (reply, &in) == HERD_MSG_ID_DIGEST_REPLY) {
            char *both = zsys_sprintf ("%" PRIu64 " %016" PRIx64, in.count, in.digest);
            printf ("%s %s\n", node->name, both);
            if (!first)
                first = both;
            else {
                if (!streq (first, both))
                    rc = 1;
                zstr_free (&both);
            }
        }
        else {
            printf ("%s %s\n", node->name, reply && s_refused (node, &in) ? "refused"
                                                                             : "unreachable");
            rc = 1;
        }
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
    zmsg_t *request = s_request (config, (herd_msg_t){.id = HERD_MSG_ID_LINK,
                                                      .peer = herd_msg_str (peer),
                                                      .state = herd_msg_str (state)});
    zmsg_t *reply = s_ask (config, node, &request, 2000);
    herd_msg_t in;
    herd_msg_id_t id = s_reply (reply, &in);
    int rc = id == HERD_MSG_ID_OK ? 0 : 1;
    if (rc)
        fprintf (stderr, "herd: link %s %s %s: %s%.*s\n", name, peer, state,
                 id == HERD_MSG_ID_REFUSED ? "refused: " : "",
                 id ? (int) in.reason.size : 9, id ? (const char *) in.reason.data : "no answer");
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
    zmsg_t *request = s_request (config, (herd_msg_t){.id = HERD_MSG_ID_GET,
                                                      .client = herd_msg_str (client)});
    zmsg_t *reply = s_ask (config, node, &request, 1000);
    herd_msg_t in;
    herd_msg_id_t id = s_reply (reply, &in);
    bool held = false;
    if (id == HERD_MSG_ID_RECORD) {
        char *line = strndup (in.line.data, in.line.size);
        //  The origin is the AT line's second field
        char origin[256] = "?";
        sscanf (line, "AT %255s", origin);
        char when[64] = "at start";
        uint64_t usec = in.applied;
        if (usec) {
            time_t sec = (time_t) (usec / 1000000);
            struct tm tm;
            gmtime_r (&sec, &tm);
            size_t size = strftime (when, sizeof (when), "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf (when + size, sizeof (when) - size, ".%03uZ",
                      (unsigned) (usec % 1000000 / 1000));
        }
        printf ("%s %s (origin %s, applied %s, seq %" PRIu64 ")\n", node->name, line, origin, when,
                in.seq);
        free (line);
        held = true;
    }
    else
    if (id == HERD_MSG_ID_GET_NONE)
        printf ("%s none\n", node->name);
    else
        printf ("%s %s\n", node->name, id && s_refused (node, &in) ? "refused" : "unreachable");
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

//  mkdir -p the directory part of path.
static void
s_make_parents (const char *path)
{
    char *copy = strdup (path);
    assert (copy);
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (copy, 0755);             //  EEXIST is fine; saving says what failed
        *slash = '/';
    }
    free (copy);
}

//  A CURVE certificate pair for node name: path (public, mode 644) and
//  path_secret (mode 600 from the start: written under umask 077), as the
//  bus loads them. An existing file is never overwritten. 0 written, 1
//  kept, -1 failed (said on stderr).
static int
s_keygen_pair (const char *name, const char *path)
{
    char *secret = zsys_sprintf ("%s_secret", path);
    int rc = 0;
    if (zsys_file_exists (secret)) {
        printf ("herd: keygen: %s exists: kept, not overwritten (to make a new pair for %s, "
                "remove it and %s)\n", secret, name, path);
        rc = 1;
    }
    else
    if (zsys_file_exists (path)) {
        printf ("herd: keygen: %s exists without its secret: kept, not overwritten (make the "
                "herd's pairs on one host and copy them)\n", path);
        rc = 1;
    }
    else {
        s_make_parents (path);
        zcert_t *cert = zcert_new ();
        zcert_set_meta (cert, "name", "%s", name);
        mode_t mask = umask (077);
        int saved = cert ? zcert_save (cert, path) : -1;
        umask (mask);
        if (saved == 0)
            saved = chmod (path, 0644);
        if (saved == 0)
            printf ("herd: keygen: wrote %s (public: give it to every host) and %s (secret: "
                    "keep it on %s's host only)\n", path, secret, name);
        else {
            fprintf (stderr, "herd: keygen: cannot write %s: %s\n", path, strerror (errno));
            rc = -1;
        }
        zcert_destroy (&cert);
    }
    zstr_free (&secret);
    return rc;
}

//  herd keygen NAME: a CURVE certificate pair for node NAME.
static int
s_keygen (const char *name, const char *dir)
{
    char *path = zsys_sprintf ("%s/%s.cert", dir, name);
    int rc = s_keygen_pair (name, path);
    if (rc >= 0)
        printf ("herd: add to node %s in herd.cfg:  cert = %s\n", name, path);
    zstr_free (&path);
    return rc < 0 ? 1 : 0;
}

//  herd keygen --all: a pair for every node of the config, where its cert
//  key points (or DIR/NAME.cert), then the lines to paste into the config.
static int
s_keygen_all (const char *config_path, const char *dir)
{
    //  The checks of cert and the protected bus are what this makes true
    char *error = NULL;
    herd_config_t *config = herd_config_load_without_security (config_path, &error);
    if (!config) {
        fprintf (stderr, "herd: bad configuration: %s\n", error ? error : config_path);
        free (error);
        return 1;
    }
    //  Nodes without a cert key go where the others' point, else to certs
    char *fallback = NULL;
    for (size_t i = 0; !dir && !fallback && i < config->node_count; i++)
        if (config->nodes[i].cert) {
            const char *cert = config->nodes[i].cert;
            const char *slash = strrchr (cert, '/');
            fallback = slash ? strndup (cert, (size_t) (slash - cert)) : strdup (".");
            assert (fallback);
        }
    char **paths = (char **) calloc (config->node_count + 1, sizeof (char *));
    assert (paths);
    int rc = 0;
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        paths[i] = !dir && node->cert
                       ? strdup (node->cert)
                       : zsys_sprintf ("%s/%s.cert", dir ? dir : fallback ? fallback : "certs",
                                       node->name);
        if (s_keygen_pair (node->name, paths[i]) < 0)
            rc = 1;
    }
    printf ("# %s: a cert line in each node's section, and CURVE on\n", config_path);
    for (size_t i = 0; i < config->node_count; i++) {
        printf ("node = %s\n    cert = %s\n", config->nodes[i].name, paths[i]);
        free (paths[i]);
    }
    printf ("security\n    curve = on\n");
    free (paths);
    free (fallback);
    herd_config_destroy (&config);
    return rc;
}

//  herd up restarts a child that ends on its own after a back-off: 250 ms,
//  doubled at each death of a child that had run less than a minute, up to
//  30 s, and back to 250 ms once it has run a minute. It never gives up:
//  what makes a node fail at start (its port taken, its data dir locked, the
//  config file edited into a bad one) is mostly fixed outside herd up, and
//  the next try, at most 30 s later, then succeeds; each failure is said.
#define S_RESTART_FIRST_MS  250
#define S_RESTART_MAX_MS    30000
#define S_RESTART_RESET_MS  60000

//  One child process of `herd up`.
typedef struct {
    const char *name;           //  the node
    const char *role;           //  --split: its role, else NULL
    pid_t pid;                  //  0 while not running
    char label[128];            //  "NAME" or "NAME ROLE"
    int64_t started;            //  when it was started (zclock_mono)
    int64_t delay;              //  the back-off before its next restart
    int64_t restart_at;         //  when to restart it, 0 when not pending
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

//  How a child ended, as "status N" or "signal SIGNAME".
static void
s_ended (int wstatus, char *text, size_t size)
{
    if (WIFEXITED (wstatus))
        snprintf (text, size, "status %d", WEXITSTATUS (wstatus));
    else {
        const char *abbrev = sigabbrev_np (WTERMSIG (wstatus));
        if (abbrev)
            snprintf (text, size, "signal SIG%s", abbrev);
        else
            snprintf (text, size, "signal %d", WTERMSIG (wstatus));
    }
}

//  Start a child; when fork fails, its restart is put off as if it had died.
static void
s_start (s_child_t *child, const char *path)
{
    child->restart_at = 0;
    child->started = zclock_mono ();
    child->pid = s_spawn (path, child->name, child->role);
    if (child->pid < 0) {
        child->pid = 0;
        fprintf (stderr, "herd: cannot start %s: %s; trying again in %" PRId64 " ms\n",
                 child->label, strerror (errno), child->delay);
        child->restart_at = zclock_mono () + child->delay;
        child->delay = child->delay * 2 > S_RESTART_MAX_MS ? S_RESTART_MAX_MS : child->delay * 2;
    }
}

//  A child ended on its own: say so, and when to restart it.
static void
s_died (s_child_t *child, int wstatus)
{
    int64_t now = zclock_mono ();
    if (now - child->started >= S_RESTART_RESET_MS)
        child->delay = S_RESTART_FIRST_MS;
    char ended[32];
    s_ended (wstatus, ended, sizeof (ended));
    char in[32];
    if (child->delay < 1000)
        snprintf (in, sizeof (in), "%" PRId64 " ms", child->delay);
    else
        snprintf (in, sizeof (in), "%" PRId64 " s", child->delay / 1000);
    fprintf (stderr, "herd: %s %s (pid %d, %s); restarting it in %s\n", child->label,
             WIFEXITED (wstatus) ? "exited" : "died", (int) child->pid, ended, in);
    child->pid = 0;
    child->restart_at = now + child->delay;
    child->delay = child->delay * 2 > S_RESTART_MAX_MS ? S_RESTART_MAX_MS : child->delay * 2;
}

//  Start a child for each node of config on this host (three a node when
//  split, places first). Returns the number started into children.
static size_t
s_up_start (const herd_config_t *config, const char *path, bool split, s_child_t *children)
{
    static const char *roles[] = {"places", "bus", "gateway"};
    size_t count = 0;
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        if (!s_is_local (node->client_host))
            continue;
        printf ("herd: starting %-10s clients on %-21s bus %s\n", node->name, node->client,
                node->bus);
        for (size_t r = 0; r < (split ? 3u : 1u); r++) {
            s_child_t *child = &children[count++];
            child->name = node->name;
            child->role = split ? roles[r] : NULL;
            child->delay = S_RESTART_FIRST_MS;
            snprintf (child->label, sizeof (child->label), "%s%s%s", node->name,
                      split ? " " : "", split ? roles[r] : "");
            s_start (child, path);
        }
    }
    fflush (stdout);
    return count;
}

//  Wait for a signal, or for the next restart that is due (none: forever).
static int
s_up_wait (const sigset_t *signals, const s_child_t *children, size_t count)
{
    int64_t next = 0;
    for (size_t i = 0; i < count; i++)
        if (children[i].restart_at && (!next || children[i].restart_at < next))
            next = children[i].restart_at;
    if (!next)
        return sigwaitinfo (signals, NULL);
    int64_t wait = next - zclock_mono ();
    if (wait < 0)
        wait = 0;
    struct timespec timeout = {wait / 1000, (wait % 1000) * 1000000};
    return sigtimedwait (signals, NULL, &timeout);
}

//  Restart the children that ended on their own and whose restart is due.
static void
s_up_restart (const char *path, s_child_t *children, size_t count)
{
    int64_t now = zclock_mono ();
    bool started = false;
    for (size_t i = 0; i < count; i++)
        if (children[i].restart_at && children[i].restart_at <= now) {
            s_start (&children[i], path);
            if (children[i].pid > 0)
                printf ("herd: restarted %s (pid %d)\n", children[i].label,
                        (int) children[i].pid);
            started = true;
        }
    if (started)
        fflush (stdout);
}

//  Restart children that end on their own, until SIGINT or SIGTERM; SIGHUP
//  goes on to every child (each node reopens its log, for logrotate).
static void
s_up_supervise (const sigset_t *signals, const char *path, s_child_t *children, size_t count)
{
    while (true) {
        int signo = s_up_wait (signals, children, count);
        if (signo == SIGINT || signo == SIGTERM)
            return;
        if (signo == SIGHUP) {
            for (size_t i = 0; i < count; i++)
                if (children[i].pid > 0)
                    kill (children[i].pid, SIGHUP);
        }
        else
        if (signo == SIGCHLD) {
            pid_t pid;
            int wstatus;
            while ((pid = waitpid (-1, &wstatus, WNOHANG)) > 0)
                for (size_t i = 0; i < count; i++)
                    if (children[i].pid == pid)
                        s_died (&children[i], wstatus);
        }
        s_up_restart (path, children, count);
    }
}

//  Stop one child: SIGTERM, then SIGKILL when it has not stopped within
//  5 s. 0 if it stopped cleanly, else 1.
static int
s_up_stop_child (s_child_t *child)
{
    int status = 0;
    kill (child->pid, SIGTERM);
    int64_t deadline = zclock_mono () + 5000;
    while (child->pid > 0) {
        int wstatus;
        pid_t pid = waitpid (child->pid, &wstatus, WNOHANG);
        if (pid == child->pid && !(WIFEXITED (wstatus) && WEXITSTATUS (wstatus) == 0)) {
            char ended[32];
            s_ended (wstatus, ended, sizeof (ended));
            fprintf (stderr, "herd: %s did not stop cleanly (%s)\n", child->label, ended);
            status = 1;
        }
        if (pid == child->pid || pid == -1)
            child->pid = 0;
        else
        if (zclock_mono () > deadline) {
            fprintf (stderr, "herd: %s did not stop: killing it\n", child->label);
            status = 1;
            kill (child->pid, SIGKILL);
            waitpid (child->pid, &wstatus, 0);
            child->pid = 0;
        }
        else
            zclock_sleep (5);
    }
    return status;
}

//  Stop the rest, last started first (a split node's gateway before its
//  bus, so what the gateway acknowledged reaches the bus). A child waiting
//  for its restart stays stopped. 0 if all stopped cleanly, else 1.
static int
s_up_stop (s_child_t *children, size_t count)
{
    printf ("herd: stopping\n");
    for (size_t i = 0; i < count; i++)
        if (children[i].restart_at)
            printf ("herd: not restarting %s\n", children[i].label);
    fflush (stdout);
    int status = 0;
    for (size_t i = count; i-- > 0;)
        if (children[i].pid > 0 && s_up_stop_child (&children[i]))
            status = 1;
    return status;
}

//  herd up: every local node, one process each, until SIGINT or SIGTERM;
//  a node that dies is started again.
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

    s_child_t *children = (s_child_t *) calloc (config->node_count * 3, sizeof (s_child_t));
    size_t count = s_up_start (config, path, split, children);
    if (count == 0) {
        fprintf (stderr, "herd: no node of %s lives on this host\n", path);
        free (children);
        return 1;
    }
    s_up_supervise (&signals, path, children, count);
    int status = s_up_stop (children, count);
    free (children);
    return status;
}

//  Options before the command: -c FILE, --help, --version. -1 to go on
//  (*config_p set), else the exit code.
static int
s_global_options (int argc, char *argv[], const char **config_p)
{
    static const struct option global[] = {
        S_OPT_HELP, S_OPT_CONFIG, {"version", no_argument, NULL, 'V'}, S_OPT_END};
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
            *config_p = optarg;
        else {
            fprintf (stderr, opt == ':' ? "herd: option '%s' needs a value\n(see herd --help)\n"
                                        : "herd: unknown option '%s'\n(see herd --help)\n",
                     argv[optind - 1]);
            return 2;
        }
    }
    return -1;
}

//  herd help [COMMAND].
static int
s_help (const s_command_t *command, const s_args_t *args)
{
    const s_command_t *about = args->arg_count ? s_command (args->arg[0]) : NULL;
    if (args->arg_count && !about)
        return s_usage_error (command, "no command '%s'", args->arg[0]);
    if (about && streq (about->name, "client"))
        return herd_client_main (2, (char *[]){"client", "--help", NULL}, args->config);
    if (about)
        s_command_help (about);
    else
        printf ("%s", s_usage);
    return 0;
}

//  The commands that need no loaded config (help, version, keygen, check),
//  and the checks of the others' arguments. -1 to go on, else the exit code.
static int
s_run_unloaded (const s_command_t *command, const s_args_t *args)
{
    if (streq (command->name, "help"))
        return s_help (command, args);
    if (streq (command->name, "version"))
        return s_version ();
    if (streq (command->name, "keygen")) {
        if (args->all && args->arg_count)
            return s_usage_error (command, "--all makes every node's pair: no NAME ('%s')",
                                  args->arg[0]);
        if (!args->all && !args->arg_count)
            return s_usage_error (command, "%s", "give a node NAME, or --all");
        if (args->all)
            return s_keygen_all (args->config, args->dir);
        return s_keygen (args->arg[0], args->dir ? args->dir : "certs");
    }
    if (streq (command->name, "check"))
        return herd_checkup_run (args->config, args->arg_count ? args->arg[0] : NULL,
                                 s_is_local);
    if (args->role && !streq (args->role, "gateway") && !streq (args->role, "bus")
        && !streq (args->role, "places"))
        return s_usage_error (command, "--role must be gateway, bus or places, not '%s'",
                              args->role);
    if (streq (command->name, "link")
        && (!args->arg[2] || (!streq (args->arg[2], "up") && !streq (args->arg[2], "down"))))
        return s_usage_error (command, "the state must be up or down, not '%s'", args->arg[2]);
    return -1;
}

//  The commands that work on the loaded config; the exit code.
static int
s_run_loaded (const s_command_t *command, const s_args_t *args, herd_config_t *loaded)
{
    const char *name = command->name;
    if (streq (name, "nodes")) {
        for (size_t i = 0; i < loaded->node_count; i++)
            printf ("%s %s\n", loaded->nodes[i].name, loaded->nodes[i].client);
        return 0;
    }
    if (streq (name, "up"))
        return s_up (loaded, args->config, args->split);
    if (streq (name, "digest"))
        return s_digest (loaded);
    if (streq (name, "get"))
        return s_get (loaded, args->arg[0], args->arg_count > 1 ? args->arg[1] : "all");
    if (streq (name, "monitor"))
        return herd_watch_monitor (loaded, args->once, args->json);
    if (streq (name, "graph"))
        return herd_watch_graph (loaded);
    if (streq (name, "link"))
        return s_link (loaded, args->arg[0], args->arg[1], args->arg[2]);
    const herd_node_t *node = herd_config_node (loaded, args->arg[0]);
    if (!node) {
        fprintf (stderr, "herd: %s has no node '%s'\n", args->config, args->arg[0]);
        return 1;
    }
    return herd_node_run (loaded, node, args->role);
}

int
main (int argc, char *argv[])
{
    const char *config = "herd.cfg";
    int rc = s_global_options (argc, argv, &config);
    if (rc != -1)
        return rc;
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
    rc = s_parse_command (command, argc, argv, &args);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    rc = s_run_unloaded (command, &args);
    if (rc != -1)
        return rc;
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
    rc = s_run_loaded (command, &args, loaded);
    herd_config_destroy (&loaded);
    return rc;
}
