//  herd.c - the herd command: run a node or a role, start a whole herd, list nodes.

#include "herd_node.h"

#include <czmq.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <signal.h>
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
    bool split;
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
        if (streq (arg, "--split"))
            args->split = true;
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
    if (count == 0)
        fprintf (stderr, "herd: no node of %s lives on this host\n", path);

    //  Wait for a signal; report children that end on their own
    size_t running = count;
    int status = 0;
    while (running > 0) {
        int signo = 0;
        sigwait (&signals, &signo);
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
    //  Stop the rest: SIGTERM, then SIGKILL after 5 s
    printf ("herd: stopping\n");
    fflush (stdout);
    for (size_t i = 0; i < count; i++)
        if (children[i].pid > 0)
            kill (children[i].pid, SIGTERM);
    int64_t deadline = zclock_mono () + 5000;
    for (size_t i = 0; i < count; i++) {
        while (children[i].pid > 0) {
            int wstatus;
            pid_t pid = waitpid (children[i].pid, &wstatus, WNOHANG);
            if (pid == children[i].pid || pid == -1)
                children[i].pid = 0;
            else
            if (zclock_mono () > deadline) {
                kill (children[i].pid, SIGKILL);
                waitpid (children[i].pid, &wstatus, 0);
                children[i].pid = 0;
            }
            else
                zclock_sleep (10);
        }
    }
    free (children);
    return status;
}

int
main (int argc, char *argv[])
{
    s_args_t args = {0};
    if (!s_parse_args (argc, argv, &args))
        return 2;
    if (streq (args.command, "help")) {
        printf ("%s", s_usage);
        return 0;
    }
    if (!streq (args.command, "node") && !streq (args.command, "up")
        && !streq (args.command, "nodes")) {
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
