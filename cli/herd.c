//  herd.c - the herd command: run a node or a role, start a whole herd, list nodes.

#include "herd_client.h"
#include "herd_node.h"
#include "herd_watch.h"

#include <czmq.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char s_usage[] =
    "usage: herd COMMAND [options]\n"
    "\n"
    "  herd node NAME [-c FILE]            run node NAME: gateway, bus and places\n"
    "                                      in one process, joined over inproc://\n"
    "  herd node NAME --role ROLE [-c FILE]\n"
    "                                      run one role (gateway, bus or places) of\n"
    "                                      node NAME, joined to the others over ipc://\n"
    "  herd up [-c FILE] [--split]         run every node of FILE that lives on this\n"
    "                                      host, one process per node (--split: one\n"
    "                                      per role), until SIGINT or SIGTERM\n"
    "  herd nodes [-c FILE]                print 'NAME HOST:PORT' for every node\n"
    "  herd digest [-c FILE]               print 'NAME CLIENTS DIGEST' for every node (or\n"
    "                                      'NAME unreachable'); exit 0 when all agree\n"
    "  herd link NODE PEER up|down [-c FILE]\n"
    "                                      take NODE's bus link from PEER down or up\n"
    "  herd client HOST:PORT|NAME [--iamat ID] [--pretty] [LINE ...]\n"
    "                                      send request lines to a node and print the\n"
    "                                      answers (LINEs, stdin, or a prompt on a\n"
    "                                      terminal); 'herd client --help' for more\n"
    "  herd monitor [-c FILE] [--once] [--json]\n"
    "                                      live view of every node and edge (from their\n"
    "                                      monitor endpoints); --once: one snapshot\n"
    "  herd graph [-c FILE]                the topology as Graphviz DOT, with live state\n"
    "  herd keygen NAME [-d DIR]           write a CURVE certificate pair for node NAME:\n"
    "                                      DIR/NAME.cert and DIR/NAME.cert_secret (DIR\n"
    "                                      defaults to certs)\n"
    "  herd help                           this text\n"
    "\n"
    "FILE defaults to herd.cfg in the current directory. The Places API key is\n"
    "read from the variable named by places/key_env (GOOGLE_API_KEY); the\n"
    "variable HERD_PLACES_URL, when set, overrides places/url.\n";

//  Parsed command line.
typedef struct {
    const char *command;
    const char *name;
    const char *config;
    const char *role;
    const char *extra[2];       //  link: PEER and up|down
    const char *dir;            //  keygen: where certificates go
    bool split;
    bool once;                  //  monitor: one snapshot
    bool json;                  //  monitor: as JSON
} s_args_t;

//  Parse argv; false (after printing why) when it does not make sense.
static bool
s_parse_args (int argc, char *argv[], s_args_t *args)
{
    args->config = "herd.cfg";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if ((streq (arg, "-c") || streq (arg, "--config")) && i + 1 < argc)
            args->config = argv[++i];
        else
        if (streq (arg, "--role") && i + 1 < argc)
            args->role = argv[++i];
        else
        if (streq (arg, "-d") && i + 1 < argc)
            args->dir = argv[++i];
        else
        if (streq (arg, "--split"))
            args->split = true;
        else
        if (streq (arg, "--once"))
            args->once = true;
        else
        if (streq (arg, "--json"))
            args->json = true;
        else
        if (streq (arg, "-h") || streq (arg, "--help"))
            args->command = "help";
        else
        if (arg[0] == '-') {
            fprintf (stderr, "herd: unknown option '%s'\n\n%s", arg, s_usage);
            return false;
        }
        else
        if (!args->command)
            args->command = arg;
        else
        if (!args->name)
            args->name = arg;
        else
        if (!args->extra[0])
            args->extra[0] = arg;
        else
        if (!args->extra[1])
            args->extra[1] = arg;
        else {
            fprintf (stderr, "herd: unexpected argument '%s'\n\n%s", arg, s_usage);
            return false;
        }
    }
    if (!args->command) {
        fprintf (stderr, "%s", s_usage);
        return false;
    }
    return true;
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
        zmsg_t *request = zmsg_new ();
        zmsg_addstr (request, "DIGEST");
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
            printf ("%s unreachable\n", node->name);
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
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, "LINK");
    zmsg_addstr (request, peer);
    zmsg_addstr (request, state);
    zmsg_t *reply = s_ask (config, node, &request, 2000);
    char *status = reply ? zmsg_popstr (reply) : NULL;
    char *reason = reply ? zmsg_popstr (reply) : NULL;
    int rc = status && streq (status, "OK") ? 0 : 1;
    if (rc)
        fprintf (stderr, "herd: link %s %s %s: %s\n", name, peer, state,
                 reason ? reason : "no answer");
    zstr_free (&status);
    zstr_free (&reason);
    zmsg_destroy (&reply);
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
    //  herd client has options of its own
    if (argc > 1 && streq (argv[1], "client"))
        return herd_client_main (argc - 1, argv + 1);
    s_args_t args = {0};
    if (!s_parse_args (argc, argv, &args))
        return 2;
    if (streq (args.command, "help")) {
        printf ("%s", s_usage);
        return 0;
    }
    if (streq (args.command, "keygen"))
        return s_keygen (args.name, args.dir ? args.dir : "certs");
    if (!streq (args.command, "node") && !streq (args.command, "up")
        && !streq (args.command, "nodes") && !streq (args.command, "digest")
        && !streq (args.command, "link") && !streq (args.command, "monitor")
        && !streq (args.command, "graph")) {
        fprintf (stderr, "herd: unknown command '%s'\n\n%s", args.command, s_usage);
        return 2;
    }
    if (streq (args.command, "node") && !args.name) {
        fprintf (stderr, "herd: node needs a NAME\n\n%s", s_usage);
        return 2;
    }
    if (args.role && !streq (args.role, "gateway") && !streq (args.role, "bus")
        && !streq (args.role, "places")) {
        fprintf (stderr, "herd: --role must be gateway, bus or places, not '%s'\n", args.role);
        return 2;
    }
    if (streq (args.command, "node") || streq (args.command, "up")) {
        //  Block the stop signals from the start: a SIGTERM that comes while
        //  the config loads is then taken by sigwait, not the default action
        sigset_t signals;
        sigemptyset (&signals);
        sigaddset (&signals, SIGINT);
        sigaddset (&signals, SIGTERM);
        sigaddset (&signals, SIGHUP);
        pthread_sigmask (SIG_BLOCK, &signals, NULL);
    }
    herd_config_t *config = s_load (args.config);
    if (!config)
        return 1;
    int rc = 0;
    if (streq (args.command, "nodes"))
        for (size_t i = 0; i < config->node_count; i++)
            printf ("%s %s\n", config->nodes[i].name, config->nodes[i].client);
    else
    if (streq (args.command, "up"))
        rc = s_up (config, args.config, args.split);
    else
    if (streq (args.command, "digest"))
        rc = s_digest (config);
    else
    if (streq (args.command, "monitor"))
        rc = herd_watch_monitor (config, args.once, args.json);
    else
    if (streq (args.command, "graph"))
        rc = herd_watch_graph (config);
    else
    if (streq (args.command, "link"))
        rc = s_link (config, args.name, args.extra[0], args.extra[1]);
    else {
        const herd_node_t *node = herd_config_node (config, args.name);
        if (!node) {
            fprintf (stderr, "herd: %s has no node '%s'\n", args.config, args.name);
            rc = 1;
        }
        else
            rc = herd_node_run (config, node, args.role);
    }
    herd_config_destroy (&config);
    return rc;
}
