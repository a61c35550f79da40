//  herd_checkup.c - herd check: a config tested before a node runs on it (nginx -t).
//
//  Every check tries the real thing the node will do, the way the node does
//  it: mkdir -p and a probe file for directories, bind and listen with
//  SO_REUSEADDR for ports, zcert_load for certificates. A port that is
//  taken is traced to the process listening on it through /proc, when
//  /proc tells.

#include "herd_checkup.h"

#include <czmq.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>

//  One run of herd check: the config, and what was found.
typedef struct {
    const char *path;           //  the config file, as given
    const herd_config_t *config;
    int problems;
} s_check_t;

static void
    s_report (s_check_t *self, bool problem, const herd_node_t *node, const char *format, ...)
        __attribute__ ((format (printf, 4, 5)));

//  Print a problem (counted) or a warning (not counted), as
//  "herd: check: FILE: node 'NAME': [warning: ]what".
static void
s_report (s_check_t *self, bool problem, const herd_node_t *node, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = zsys_vprintf (format, args);
    va_end (args);
    fprintf (stderr, "herd: check: %s: %s%s%s%s%s\n", self->path, node ? "node '" : "",
             node ? node->name : "", node ? "': " : "", problem ? "" : "warning: ", text);
    zstr_free (&text);
    if (problem)
        self->problems++;
}

//  Split "tcp://HOST:PORT" or "HOST:PORT" ("[v6]" loses its brackets) into
//  host and port; the config has validated the form already.
static void
s_split (const char *address, char *host, size_t size, int *port_p)
{
    if (strncmp (address, "tcp://", 6) == 0)
        address += 6;
    const char *colon = strrchr (address, ':');
    size_t length = colon ? (size_t) (colon - address) : strlen (address);
    if (length >= 2 && address[0] == '[' && address[length - 1] == ']') {
        address++;
        length -= 2;
    }
    snprintf (host, size, "%.*s", (int) length, address);
    *port_p = colon ? atoi (colon + 1) : 0;
}

//  Create dir as the node would (every missing parent too when parents),
//  then create, write and remove a probe file in it. 0, or -1 with errno.
static int
s_probe_dir (const char *dir, bool parents)
{
    char *copy = strdup (dir);
    assert (copy);
    for (char *slash = strchr (copy + 1, '/'); parents && slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        mkdir (copy, 0755);             //  EEXIST is fine; the probe says what failed
        *slash = '/';
    }
    mkdir (copy, 0755);
    free (copy);
    char *probe = zsys_sprintf ("%s/.herd-check-%d", dir, (int) getpid ());
    int rc = -1;
    int fd = open (probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd != -1) {
        rc = write (fd, "x", 1) == 1 ? 0 : -1;
        int error = errno;
        close (fd);
        unlink (probe);
        errno = error;
    }
    int error = errno;
    zstr_free (&probe);
    errno = error;
    return rc;
}

//  " by process PID (COMM)": who listens on TCP port, from /proc/net/tcp*
//  and the processes' descriptors; "" when that cannot be told.
static void
s_holder (int port, char *text, size_t size)
{
    text[0] = 0;
    unsigned long inode = 0;
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t i = 0; i < 2 && !inode; i++) {
        FILE *file = fopen (tables[i], "r");
        if (!file)
            continue;
        char line[512];
        bool header = true;
        while (!inode && fgets (line, sizeof (line), file)) {
            unsigned int local = 0, state = 0;
            unsigned long found = 0;
            if (!header
                && sscanf (line, "%*s %*[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu", &local,
                           &state, &found)
                       == 3
                && (int) local == port && state == 0x0A)        //  0x0A: LISTEN
                inode = found;
            header = false;
        }
        fclose (file);
    }
    if (!inode)
        return;
    char wanted[64];
    snprintf (wanted, sizeof (wanted), "socket:[%lu]", inode);
    DIR *proc = opendir ("/proc");
    struct dirent *entry;
    while (proc && (entry = readdir (proc))) {
        if (entry->d_name[0] < '1' || entry->d_name[0] > '9')
            continue;
        char path[300];
        snprintf (path, sizeof (path), "/proc/%s/fd", entry->d_name);
        DIR *fds = opendir (path);
        struct dirent *fd_entry;
        bool found = false;
        while (fds && !found && (fd_entry = readdir (fds))) {
            char link[600], target[64];
            snprintf (link, sizeof (link), "%s/%s", path, fd_entry->d_name);
            ssize_t length = readlink (link, target, sizeof (target) - 1);
            if (length > 0) {
                target[length] = 0;
                found = streq (target, wanted);
            }
        }
        if (fds)
            closedir (fds);
        if (found) {
            char comm[64] = "?";
            snprintf (path, sizeof (path), "/proc/%s/comm", entry->d_name);
            FILE *file = fopen (path, "r");
            if (file) {
                if (fgets (comm, sizeof (comm), file))
                    comm[strcspn (comm, "\n")] = 0;
                fclose (file);
            }
            snprintf (text, size, " by process %d (%s)%s", atoi (entry->d_name), comm,
                      streq (comm, "herd") ? ": is the node running already?" : "");
            break;
        }
    }
    if (proc)
        closedir (proc);
}

//  Bind address (tcp://HOST:PORT or HOST:PORT) as the node will, with
//  SO_REUSEADDR, listen, and close.
static void
s_check_port (s_check_t *self, const herd_node_t *node, const char *key, const char *address)
{
    char host[256], service[16];
    int port = 0;
    s_split (address, host, sizeof (host), &port);
    snprintf (service, sizeof (service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo (host, service, &hints, &found);
    if (rc != 0) {
        s_report (self, true, node, "key '%s': cannot resolve %s: %s", key, host,
                  gai_strerror (rc));
        return;
    }
    int error = 0;
    bool bound = false;
    for (struct addrinfo *ai = found; ai && !bound; ai = ai->ai_next) {
        int fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            error = errno;
            continue;
        }
        int one = 1;
        setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
        if (bind (fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen (fd, 1) == 0)
            bound = true;
        else
            error = errno;
        close (fd);
    }
    freeaddrinfo (found);
    if (bound)
        return;
    if (error == EADDRINUSE) {
        char holder[256];
        s_holder (port, holder, sizeof (holder));
        s_report (self, true, node, "key '%s': port %d on %s is taken%s", key, port, host,
                  holder);
    }
    else
    if (error == EADDRNOTAVAIL)
        s_report (self, true, node, "key '%s': cannot bind %s: not an address of this host",
                  key, host);
    else
        s_report (self, true, node, "key '%s': cannot bind %s port %d: %s", key, host, port,
                  strerror (error));
}

//  The log's directory can be made and written, and the log appended to.
static void
s_check_log (s_check_t *self, const herd_node_t *node)
{
    const char *slash = strrchr (node->log, '/');
    char *dir = !slash ? strdup (".")
                       : strndup (node->log, slash == node->log ? 1 : (size_t) (slash - node->log));
    assert (dir);
    if (s_probe_dir (dir, true))
        s_report (self, true, node, "key 'log': cannot write in directory %s: %s", dir,
                  strerror (errno));
    else {
        int fd = open (node->log, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd == -1 && errno != ENOENT)
            s_report (self, true, node, "key 'log': cannot append to %s: %s", node->log,
                      strerror (errno));
        if (fd != -1)
            close (fd);
    }
    free (dir);
}

//  The data directory can be made and written, and no process holds it.
static void
s_check_data (s_check_t *self, const herd_node_t *node)
{
    if (s_probe_dir (node->data, true)) {
        s_report (self, true, node, "key 'data': cannot write in directory %s: %s", node->data,
                  strerror (errno));
        return;
    }
    //  The bus's lock (herd_node.c): held while a copy of the node runs
    char *path = zsys_sprintf ("%s/lock", node->data);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd != -1 && flock (fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK) {
        char text[32] = "";
        ssize_t size = pread (fd, text, sizeof (text) - 1, 0);
        text[size > 0 ? size : 0] = 0;
        s_report (self, true, node, "key 'data': directory %s is in use by process %d: is the "
                  "node running already?", node->data, atoi (text));
    }
    if (fd != -1)
        close (fd);             //  drops our lock, if we took it
    zstr_free (&path);
}

//  CURVE: the node's secret certificate loads, and only its owner reads it.
static void
s_check_cert (s_check_t *self, const herd_node_t *node)
{
    char *secret = zsys_sprintf ("%s_secret", node->cert);
    struct stat info;
    zcert_t *cert = NULL;
    if (stat (secret, &info) == -1)
        s_report (self, true, node, "key 'cert': secret certificate %s: %s (it stays on the "
                  "host that runs the node: herd keygen writes it)", secret, strerror (errno));
    else
    if (!(cert = zcert_load (secret)) || !*zcert_secret_txt (cert)
        || streq (zcert_secret_txt (cert), "0000000000000000000000000000000000000000"))
        s_report (self, true, node, "key 'cert': cannot load a secret certificate from %s",
                  secret);
    else
    if (info.st_mode & 077)
        s_report (self, false, node, "key 'cert': secret certificate %s has mode %03o: others "
                  "can read it (chmod 600 %s)", secret, (unsigned) (info.st_mode & 0777),
                  secret);
    zcert_destroy (&cert);
    zstr_free (&secret);
}

//  Every check of one node this host runs.
static void
s_check_node (s_check_t *self, const herd_node_t *node)
{
    s_check_log (self, node);
    if (node->data)
        s_check_data (self, node);
    s_check_port (self, node, "client", node->client);
    s_check_port (self, node, "bus", node->bus);
    if (node->sync)
        s_check_port (self, node, "sync", node->sync);
    if (node->monitor)
        s_check_port (self, node, "monitor", node->monitor);
    if (node->metrics)
        s_check_port (self, node, "metrics", node->metrics);
    if (self->config->curve && node->cert)
        s_check_cert (self, node);
}

//  The open-bus warning: security/curve = off said with a bus or sync
//  endpoint off loopback, for every node of the file (as the refusal).
static void
s_warn_open_bus (s_check_t *self)
{
    const herd_config_t *config = self->config;
    if (config->curve)
        return;
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        const char *keys[] = {"bus", "sync"};
        const char *endpoints[] = {node->bus, node->sync};
        for (size_t k = 0; k < 2; k++) {
            char host[256];
            int port = 0;
            if (!endpoints[k])
                continue;
            s_split (endpoints[k], host, sizeof (host), &port);
            if (!herd_config_is_loopback (host))
                s_report (self, false, node,
                          "key '%s': binds %s with security/curve = off: anyone who can reach "
                          "port %d can read the herd's table and write into it",
                          keys[k], host, port);
        }
    }
}

//  A herd across hosts keeps the default name: a node of another herd that
//  also kept it, started by mistake on the same addresses, would join.
static void
s_warn_default_name (s_check_t *self)
{
    const herd_config_t *config = self->config;
    if (!streq (config->name, "herd"))
        return;
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        char bus[256], sync[256];
        int port = 0;
        s_split (node->bus, bus, sizeof (bus), &port);
        if (node->sync)
            s_split (node->sync, sync, sizeof (sync), &port);
        if (!herd_config_is_loopback (bus) || (node->sync && !herd_config_is_loopback (sync))) {
            s_report (self, false, NULL,
                      "herd/name is the default 'herd' and the bus leaves this host: give "
                      "each herd its own name, so that nodes of another herd are refused");
            return;
        }
    }
}

int
herd_checkup_run (const char *path, const char *only, herd_checkup_local_fn *is_local)
{
    s_check_t self = {.path = path};
    char *error = NULL;
    herd_config_t *config = herd_config_load (path, &error);
    if (!config) {
        //  What the node says, word for word after "herd: bad configuration: "
        fprintf (stderr, "herd: check: %s\n", error ? error : path);
        fprintf (stderr, "herd: %s: configuration has 1 problem\n", path);
        free (error);
        return 1;
    }
    self.config = config;
    s_warn_open_bus (&self);
    s_warn_default_name (&self);
    size_t checked = 0;
    if (only && !herd_config_node (config, only))
        s_report (&self, true, NULL, "no node '%s'", only);
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        if (only ? streq (node->name, only) : is_local (node->client_host)) {
            s_check_node (&self, node);
            checked++;
        }
    }
    //  Split nodes (herd up --split, herd node --role) bind ipc:// there;
    //  the node makes it with a plain mkdir
    if (checked && s_probe_dir (config->run_dir, false))
        s_report (&self, true, NULL, "key 'herd/run_dir': cannot write in directory %s: %s "
                  "(split nodes bind their ipc:// sockets there)", config->run_dir,
                  strerror (errno));
    if (!checked && !only)
        s_report (&self, false, NULL, "no node lives on this host (herd up would start none; "
                  "name one: herd check NODE)");
    if (self.problems)
        fprintf (stderr, "herd: %s: configuration has %d problem%s\n", path, self.problems,
                 self.problems == 1 ? "" : "s");
    else
        printf ("herd: %s: configuration OK (%zu node%s, %zu checked here)\n", path,
                config->node_count, config->node_count == 1 ? "" : "s", checked);
    herd_config_destroy (&config);
    return self.problems ? 1 : 0;
}
