//  herd_config.c - herd.cfg (ZPL) read with zconfig, checked line by line and key by key.
//
//  Loading runs in three steps. A pre-scan (herd_config_scan.c) walks the
//  text line by line with zconfig's own rules (czmq 4.2.1 src/zconfig.c) and
//  reports what zconfig would reject, or silently misread, as "FILE:LINE:
//  reason"; it also records every key with its line. zconfig_str_load then
//  builds the tree, and the keys of the tree, walked in file order, are
//  paired with the recorded lines.
//  Last the tree is validated section by section into a herd_config_t, each
//  error naming the file, the line (when known), the section and the key.

#include "herd_config.h"
#include "herd_config_scan.h"
#include "herd_decimal.h"
#include "herd_check.h"
#include "herd_msg.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/un.h>
#include <unistd.h>

#define S_FILE_MAX      (16 * 1024 * 1024)  //  refuse bigger files (e.g. a device by mistake)
#define S_IPC_PATH_MAX  (sizeof (((struct sockaddr_un *) 0)->sun_path) - 1)
#define S_LONGEST_ROLE  "monitor"           //  the longest role given to herd_config_endpoint

//  State of one load: where errors go, and the line of every key.
typedef struct {
    const char *file;           //  file name used in messages
    char *error;                //  first error, or NULL
    herd_config_scan_t *scan;   //  the line of every key, once mapped
    zhash_t *names;             //  node name -> its zconfig key
    zhash_t *clients;           //  "[host]:port" -> herd_node_t * with that client
    zhash_t *buses;             //  "[host]:port" -> herd_node_t * with that bus
    zhash_t *logs;              //  log path -> herd_node_t *
    bool skip_security;         //  no certificate loaded, no protected-bus check
} s_loader_t;

//  printf-like helpers, declared so the compiler checks their formats
static char *
    s_sprintf (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
static int
    s_loader_fail (s_loader_t *self, int line, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));
static int
    s_key_fail (s_loader_t *self, zconfig_t *key, const char *context, const char *format, ...)
        __attribute__ ((format (printf, 4, 5)));

static const char *const s_top_keys[] = {"herd", "node", "edges", "places", "security", NULL};
static const char *const s_security_keys[] = {"curve", NULL};
static const char *const s_herd_keys[] = {
    "name",            "run_dir",         "max_line",         "max_output",     "max_output_total", "max_pending",
    "max_clients",     "idle_timeout_ms",  "line_timeout_ms", "max_time_ahead_s", "fsync",
    "ack_timeout_ms",  "log_requests",     "log_level",      "log_format",       NULL};
static const char *const s_node_keys[] = {"client", "bus", "log", NULL};
static const char *const s_node_allowed[] = {"client", "bus", "sync", "log", "data", "cert",
                                             "monitor", "metrics", NULL};
static const char *const s_edges_keys[] = {"edge", NULL};
static const char *const s_places_keys[] = {
    "flavour", "url", "key_env", "timeout_ms", "connect_timeout_ms", "concurrency", "retries",
    "enterprise_fields", "cache_ttl_ms", "cache_max", NULL};

//  Abort when memory is exhausted: a config loader has no better way out.
static void *
s_checked (void *pointer)
{
    if (!pointer) {
        fprintf (stderr, "herd_config: out of memory\n");
        abort ();
    }
    return pointer;
}

//  strdup that never returns NULL.
static char *
s_strdup (const char *string)
{
    return (char *) s_checked (strdup (string));
}

//  vprintf into a fresh string (czmq's) that never is NULL.
static char *
s_vsprintf (const char *format, va_list args)
{
    return (char *) s_checked (zsys_vprintf (format, args));
}

//  printf into a fresh string that never is NULL.
static char *
s_sprintf (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *string = s_vsprintf (format, args);
    va_end (args);
    return string;
}

//  True if name is one of list (NULL-terminated).
static bool
s_in_list (const char *name, const char *const list[])
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp (name, list[i]) == 0)
            return true;
    return false;
}

//  "a, b, c" from a NULL-terminated list, for messages.
static char *
s_join (const char *const list[])
{
    char *joined = s_strdup (list[0] ? list[0] : "");
    for (size_t i = 1; list[0] && list[i]; i++) {
        char *longer = s_sprintf ("%s, %s", joined, list[i]);
        free (joined);
        joined = longer;
    }
    return joined;
}

//  Split "host:port" at its last colon; "[v6]:port" loses its brackets.
//  Returns 0, or -1 with *reason_p saying why.
static int
s_split_address (const char *text, char **host_p, int *port_p, const char **reason_p)
{
    const char *colon = strrchr (text, ':');
    if (!colon) {
        *reason_p = "missing ':PORT'";
        return -1;
    }
    long port = 0;
    if (herd_decimal_parse_long (colon + 1, 1, 65535, &port)) {
        *reason_p = "PORT must be a decimal number in 1..65535";
        return -1;
    }
    const char *host = text;
    size_t host_size = (size_t) (colon - text);
    if (host_size >= 2 && host[0] == '[' && host[host_size - 1] == ']') {
        host++;
        host_size -= 2;
    }
    else
    if (memchr (host, ':', host_size)) {
        *reason_p = "an IPv6 HOST goes in brackets, [HOST]:PORT";
        return -1;
    }
    if (host_size == 0) {
        *reason_p = "HOST is empty";
        return -1;
    }
    for (size_t i = 0; i < host_size; i++)
        if (isspace ((unsigned char) host[i]) || host[i] == '[' || host[i] == ']') {
            *reason_p = "HOST contains white space or a bracket";
            return -1;
        }
    *host_p = (char *) s_checked (strndup (host, host_size));
    *port_p = (int) port;
    return 0;
}

//  True for an ASCII letter, whatever the locale says about other bytes.
static bool
s_is_ascii_letter (char byte)
{
    return (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z');
}

//  True if text is a valid environment variable name, [A-Za-z_][A-Za-z0-9_]*.
static bool
s_is_env_name (const char *text)
{
    if (!(s_is_ascii_letter (*text) || *text == '_'))
        return false;
    for (const char *scan = text; *scan; scan++)
        if (!(s_is_ascii_letter (*scan) || (*scan >= '0' && *scan <= '9') || *scan == '_'))
            return false;
    return true;
}

//  True if text is a valid node name: non-empty, [A-Za-z0-9_.-] only.
static bool
s_is_node_name (const char *text)
{
    if (!*text)
        return false;
    for (const char *scan = text; *scan; scan++)
        if (!(s_is_ascii_letter (*scan) || (*scan >= '0' && *scan <= '9')
              || strchr ("_.-", *scan)))
            return false;
    return true;
}

//  Value of a key, "" if it has none.
static const char *
s_value (zconfig_t *key)
{
    const char *value = zconfig_value (key);
    return value ? value : "";
}

//  A section's first key called name, or NULL (also when section is NULL).
static zconfig_t *
s_locate (zconfig_t *section, const char *name)
{
    return section ? zconfig_locate (section, name) : NULL;
}

//  Free a loader's state (not its error, which the caller takes).
static void
s_loader_free (s_loader_t *self)
{
    herd_config_scan_destroy (&self->scan);
    zhash_destroy (&self->names);
    zhash_destroy (&self->clients);
    zhash_destroy (&self->buses);
    zhash_destroy (&self->logs);
}

//  Record the first error as "FILE:LINE: reason", or "FILE: reason" when
//  line is 0 (unknown). Always returns -1.
static int
s_loader_fail (s_loader_t *self, int line, const char *format, ...)
{
    if (self->error)
        return -1;
    va_list args;
    va_start (args, format);
    char *reason = s_vsprintf (format, args);
    va_end (args);
    if (line > 0)
        self->error = s_sprintf ("%s:%d: %s", self->file, line, reason);
    else
        self->error = s_sprintf ("%s: %s", self->file, reason);
    free (reason);
    return -1;
}

//  " (first at line N)", or "" when the line is unknown.
static void
s_first_at (s_loader_t *self, zconfig_t *key, char *buffer, size_t size)
{
    int line = herd_config_scan_line (self->scan, key);
    if (line > 0)
        snprintf (buffer, size, " (first at line %d)", line);
    else
        snprintf (buffer, size, "%s", "");
}

//  Error about a key: "FILE:LINE: CONTEXT: key 'NAME': reason".
static int
s_key_fail (s_loader_t *self, zconfig_t *key, const char *context, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *reason = s_vsprintf (format, args);
    va_end (args);
    s_loader_fail (self, herd_config_scan_line (self->scan, key), "%s: key '%s': %s", context,
                   zconfig_name (key), reason);
    free (reason);
    return -1;
}

//  -------------------------------------------------------------------------
//  Validation of the tree

//  Check the children of a section: known names, leaves only, and each
//  name at most once unless repeat is true.
static int
s_check_keys (s_loader_t *self, zconfig_t *section, const char *context,
              const char *const allowed[], bool repeat)
{
    for (zconfig_t *key = zconfig_child (section); key; key = zconfig_next (key)) {
        const char *name = zconfig_name (key);
        if (!s_in_list (name, allowed)) {
            char *list = s_join (allowed);
            s_loader_fail (self, herd_config_scan_line (self->scan, key), "%s: unknown key '%s' (allowed: %s)",
                           context, name, list);
            free (list);
            return -1;
        }
        zconfig_t *child = zconfig_child (key);
        if (child)
            return s_loader_fail (self, herd_config_scan_line (self->scan, child),
                                  "%s: key '%s': unexpected child key '%s' (this key takes "
                                  "no children)",
                                  context, name, zconfig_name (child));
        if (repeat)
            continue;
        for (zconfig_t *earlier = zconfig_child (section); earlier != key;
             earlier = zconfig_next (earlier))
            if (strcmp (zconfig_name (earlier), name) == 0) {
                char first[48];
                s_first_at (self, earlier, first, sizeof (first));
                return s_loader_fail (self, herd_config_scan_line (self->scan, key),
                                      "%s: key '%s' is given twice%s", context, name, first);
            }
    }
    return 0;
}

//  A string key of a section, or default_value if absent; it must not be
//  empty.
static int
s_get_string (s_loader_t *self, zconfig_t *section, const char *context, const char *name,
              const char *default_value, char **value_p)
{
    zconfig_t *key = s_locate (section, name);
    if (key && !*s_value (key)) {
        s_key_fail (self, key, context, "value is empty");
        return -1;
    }
    *value_p = s_strdup (key ? s_value (key) : default_value);
    return 0;
}

//  An integer key of a section in min..max, or default_value if absent.
static int
s_get_int (s_loader_t *self, zconfig_t *section, const char *context, const char *name,
           long min, long max, long default_value, long *value_p)
{
    *value_p = default_value;
    zconfig_t *key = s_locate (section, name);
    if (key && herd_decimal_parse_long (s_value (key), min, max, value_p)) {
        s_key_fail (self, key, context, "'%s' is not an integer in %ld..%ld", s_value (key), min,
                    max);
        return -1;
    }
    return 0;
}

//  Check the top level: known sections, each at most once and valueless.
//  Returns the number of nodes; 0 is an error (there must be one).
static size_t
s_load_top (s_loader_t *self, zconfig_t *root, zconfig_t **sections)
{
    //  sections[] follows s_top_keys: herd, node (unused), edges, places
    size_t node_count = 0;
    for (zconfig_t *key = zconfig_child (root); key; key = zconfig_next (key)) {
        const char *name = zconfig_name (key);
        size_t index = 0;
        while (s_top_keys[index] && strcmp (s_top_keys[index], name) != 0)
            index++;
        if (!s_top_keys[index]) {
            char *list = s_join (s_top_keys);
            s_loader_fail (self, herd_config_scan_line (self->scan, key), "unknown key '%s' (allowed: %s)",
                           name, list);
            free (list);
            return 0;
        }
        if (strcmp (name, "node") == 0) {
            node_count++;
            continue;
        }
        if (*s_value (key)) {
            s_loader_fail (self, herd_config_scan_line (self->scan, key),
                           "section '%s' takes no value (found '%s'); its keys go on the lines "
                           "below, indented",
                           name, s_value (key));
            return 0;
        }
        if (sections[index]) {
            char first[48];
            s_first_at (self, sections[index], first, sizeof (first));
            s_loader_fail (self, herd_config_scan_line (self->scan, key), "duplicate section '%s'%s", name,
                           first);
            return 0;
        }
        sections[index] = key;
    }
    if (node_count == 0)
        s_loader_fail (self, 0, "no nodes: at least one 'node = NAME' section is required");
    return node_count;
}

//  The security section (optional): curve = off|on. With CURVE on, every
//  node must name its public certificate, and each must load.
static int
s_load_security (s_loader_t *self, zconfig_t *section, herd_config_t *config)
{
    if (section && s_check_keys (self, section, "security", s_security_keys, false))
        return -1;
    zconfig_t *key = section ? s_locate (section, "curve") : NULL;
    const char *value = key ? s_value (key) : "off";
    config->curve_said = key != NULL;
    if (strcmp (value, "on") == 0)
        config->curve = true;
    else
    if (strcmp (value, "off") != 0)
        return s_key_fail (self, key, "security", "'%s' is not on or off", value);
    for (size_t i = 0; config->curve && !self->skip_security && i < config->node_count; i++) {
        herd_node_t *node = &config->nodes[i];
        if (!node->cert)
            return s_loader_fail (self, 0,
                                  "node '%s': missing key 'cert' (security/curve is on: "
                                  "make one with herd keygen %s)",
                                  node->name, node->name);
        zcert_t *cert = zcert_load (node->cert);
        if (!cert)
            return s_loader_fail (self, 0,
                                  "node '%s': key 'cert': cannot load a certificate from '%s'",
                                  node->name, node->cert);
        zcert_destroy (&cert);
    }
    return 0;
}

//  The protected bus (Redis's protected mode): unless CURVE is on, every
//  node's bus and sync endpoint must bind a loopback address, or the file
//  must say security/curve = off. Checked for every node of the file, not
//  only the ones this host runs: the herd shares the file, and one open bus
//  opens the whole herd (a node applies whatever its neighbours publish).
//  The monitor is not covered: CURVE does not protect it either (herd
//  check warns about it).
static int
s_load_protected (s_loader_t *self, zconfig_t *root, herd_config_t *config)
{
    if (config->curve || config->curve_said || self->skip_security)
        return 0;
    static const char *const keys[] = {"bus", "sync"};
    size_t index = 0;
    for (zconfig_t *section = zconfig_child (root); section; section = zconfig_next (section)) {
        if (strcmp (zconfig_name (section), "node") != 0)
            continue;
        const herd_node_t *node = &config->nodes[index++];
        for (size_t i = 0; i < 2; i++) {
            zconfig_t *key = zconfig_locate (section, keys[i]);
            char *host = NULL;
            int port = 0;
            const char *reason = NULL;
            if (!key || s_split_address (s_value (key) + strlen ("tcp://"), &host, &port, &reason))
                continue;       //  absent (sync), or refused already
            int rc = 0;
            if (!herd_config_is_loopback (host)) {
                char *context = s_sprintf ("node '%s'", node->name);
                rc = s_key_fail (self, key, context,
                                 "binds %s without CURVE: set security/curve = on, or "
                                 "security/curve = off to accept an open bus",
                                 host);
                free (context);
            }
            free (host);
            if (rc)
                return rc;
        }
    }
    return 0;
}

//  The log's keys of the herd section: log_requests = on | off | sample:N,
//  log_level = debug | info | warning | error, log_format = text | json.
static int
s_load_log (s_loader_t *self, zconfig_t *section, herd_config_t *config)
{
    char *requests = NULL, *level = NULL, *format = NULL;
    int rc = -1;
    if (s_get_string (self, section, "herd", "log_requests", "on", &requests)
        || s_get_string (self, section, "herd", "log_level", "info", &level)
        || s_get_string (self, section, "herd", "log_format", "text", &format))
        goto done;
    if (strcmp (requests, "on") == 0)
        config->log_requests_every = 1;
    else
    if (strcmp (requests, "off") == 0)
        config->log_requests_every = 0;
    else {
        const char *digits = strncmp (requests, "sample:", 7) == 0 ? requests + 7 : "";
        char *end = NULL;
        unsigned long every = *digits >= '1' && *digits <= '9' ? strtoul (digits, &end, 10) : 0;
        if (!end || *end || every > 1000000) {
            s_key_fail (self, s_locate (section, "log_requests"), "herd",
                        "'%s' is not on, off or sample:N (N in 1..1000000)", requests);
            goto done;
        }
        config->log_requests_every = every;
    }
    static const char *const levels[] = {"debug", "info", "warning", "error", NULL};
    config->log_level = -1;
    for (int i = 0; levels[i]; i++)
        if (strcmp (level, levels[i]) == 0)
            config->log_level = i;
    if (config->log_level < 0) {
        s_key_fail (self, s_locate (section, "log_level"), "herd",
                    "'%s' is not debug, info, warning or error", level);
        goto done;
    }
    config->log_json = strcmp (format, "json") == 0;
    if (!config->log_json && strcmp (format, "text") != 0) {
        s_key_fail (self, s_locate (section, "log_format"), "herd", "'%s' is not text or json",
                    format);
        goto done;
    }
    rc = 0;
done:
    free (requests);
    free (level);
    free (format);
    return rc;
}

//  The herd section (optional): run_dir, and the gateway's caps and time-outs.
static int
s_load_herd (s_loader_t *self, zconfig_t *section, herd_config_t *config)
{
    if (section && s_check_keys (self, section, "herd", s_herd_keys, false))
        return -1;
    long max_line = 0, max_output = 0, max_output_total = 0, max_pending = 0, max_clients = 0;
    long idle_timeout_ms = 0, line_timeout_ms = 0, max_time_ahead_s = 0, ack_timeout_ms = 0;
    char *fsync = NULL;
    if (s_load_log (self, section, config))
        return -1;
    if (s_get_string (self, section, "herd", "name", "herd", &config->name))
        return -1;
    if (!herd_msg_name_valid (config->name, strlen (config->name)))
        return s_key_fail (self, s_locate (section, "name"), "herd",
                           "'%s' is not 1..%d characters of A-Z a-z 0-9 . _ -", config->name,
                           HERD_MSG_NAME_MAX);
    if (s_get_string (self, section, "herd", "run_dir", "run", &config->run_dir)
        || s_get_int (self, section, "herd", "max_line", 64, HERD_CONFIG_MAX_LINE, 1048576L,
                      &max_line)
        || s_get_int (self, section, "herd", "max_output", 1024, 1073741824L, 1048576L,
                      &max_output)
        || s_get_int (self, section, "herd", "max_output_total", 1048576L, 68719476736L,
                      268435456L, &max_output_total)
        || s_get_int (self, section, "herd", "max_pending", 1, 1000000L, 64, &max_pending)
        || s_get_int (self, section, "herd", "max_clients", 1, 1000000L, 10000, &max_clients)
        || s_get_int (self, section, "herd", "idle_timeout_ms", 100, 86400000L, 300000L,
                      &idle_timeout_ms)
        || s_get_int (self, section, "herd", "line_timeout_ms", 100, 86400000L, 30000L,
                      &line_timeout_ms)
        || s_get_int (self, section, "herd", "max_time_ahead_s", 0, 315360000L, 86400L,
                      &max_time_ahead_s)
        || s_get_int (self, section, "herd", "ack_timeout_ms", 100, 600000L, 5000L,
                      &ack_timeout_ms)
        || s_get_string (self, section, "herd", "fsync", "everysec", &fsync))
        return -1;
    bool always = strcmp (fsync, "always") == 0;
    if (!always && strcmp (fsync, "everysec") != 0) {
        free (fsync);
        return s_key_fail (self, s_locate (section, "fsync"), "herd",
                           "'%s' is not everysec or always", s_value (s_locate (section, "fsync")));
    }
    free (fsync);
    config->fsync_always = always;
    config->max_line = (size_t) max_line;
    config->max_output = (size_t) max_output;
    config->max_output_total = (size_t) max_output_total;
    config->max_pending = (size_t) max_pending;
    config->max_clients = (size_t) max_clients;
    config->idle_timeout_ms = (int) idle_timeout_ms;
    config->line_timeout_ms = (int) line_timeout_ms;
    config->max_time_ahead_s = (int64_t) max_time_ahead_s;
    config->ack_timeout_ms = (int) ack_timeout_ms;

    //  "run/" and "run" name the same directory; keep endpoints tidy
    size_t size = strlen (config->run_dir);
    while (size > 1 && config->run_dir[size - 1] == '/')
        config->run_dir[--size] = 0;
    return 0;
}

//  Claim a listening address for a node's key; refused if any node's client
//  or bus already uses it.
static int
s_claim_address (s_loader_t *self, zconfig_t *key, const char *context, herd_node_t *node,
                 const char *host, int port, bool is_bus)
{
    char *address = s_sprintf ("[%s]:%d", host, port);
    herd_node_t *owner = (herd_node_t *) zhash_lookup (self->clients, address);
    const char *role = "client";
    if (!owner) {
        owner = (herd_node_t *) zhash_lookup (self->buses, address);
        role = "bus";
    }
    int rc = 0;
    if (owner)
        rc = s_key_fail (self, key, context, "'%s' is already used by node '%s' (key '%s')",
                         s_value (key), owner->name, role);
    else
        zhash_insert (is_bus ? self->buses : self->clients, address, node);
    free (address);
    return rc;
}

//  A node's bus or sync endpoint: tcp://HOST:PORT, HOST not '*', not used by
//  any other client, bus or sync address.
static int
s_load_endpoint (s_loader_t *self, zconfig_t *key, const char *context, herd_node_t *node,
                 char **endpoint_p)
{
    const char *value = s_value (key);
    const char *reason = NULL;
    char *host = NULL;
    int port = 0;
    int rc = 0;
    if (strncmp (value, "tcp://", 6) != 0)
        rc = s_key_fail (self, key, context,
                         "'%s' is not tcp://HOST:PORT (must start with tcp://)", value);
    else
    if (s_split_address (value + 6, &host, &port, &reason))
        rc = s_key_fail (self, key, context, "'%s' is not tcp://HOST:PORT (%s)", value, reason);
    else
    if (strcmp (host, "*") == 0)
        rc = s_key_fail (self, key, context,
                         "'%s' is not tcp://HOST:PORT (neighbours connect to it, so "
                         "HOST cannot be '*')",
                         value);
    else {
        *endpoint_p = s_strdup (value);
        rc = s_claim_address (self, key, context, node, host, port, true);
    }
    free (host);
    return rc;
}

//  A node's name: valid, not defined before, short enough for its ipc://
//  endpoints. Sets node->name; 0 or -1.
static int
s_load_node_name (s_loader_t *self, zconfig_t *section, herd_config_t *config,
                  herd_node_t *node)
{
    const char *name = s_value (section);
    int line = herd_config_scan_line (self->scan, section);
    if (!*name)
        return s_loader_fail (self, line, "node: name is empty (write node = NAME)");
    if (!s_is_node_name (name))
        return s_loader_fail (self, line,
                              "node '%s': name may only use letters, digits, '_', '.' and '-'",
                              name);
    zconfig_t *first = (zconfig_t *) zhash_lookup (self->names, name);
    if (first) {
        char at[48];
        s_first_at (self, first, at, sizeof (at));
        return s_loader_fail (self, line, "node '%s' is defined twice%s", name, at);
    }
    zhash_insert (self->names, name, section);
    node->name = s_strdup (name);

    //  Its ipc:// endpoints when split must fit in a Unix socket path
    size_t ipc_size = strlen (config->run_dir) + strlen ("/-.ipc") + strlen (name)
                      + strlen (S_LONGEST_ROLE);
    if (ipc_size > S_IPC_PATH_MAX)
        return s_loader_fail (self, line,
                              "node '%s': ipc endpoint path '%s/%s-%s.ipc' is %zu bytes, "
                              "more than the %zu a Unix socket allows (shorten the name or "
                              "herd/run_dir)",
                              name, config->run_dir, name, S_LONGEST_ROLE, ipc_size,
                              (size_t) S_IPC_PATH_MAX);
    return 0;
}

//  A node's keys: only known ones, each once, the required ones there.
static int
s_check_node_keys (s_loader_t *self, zconfig_t *section, const char *context)
{
    int rc = s_check_keys (self, section, context, s_node_allowed, false);
    for (size_t i = 0; rc == 0 && s_node_keys[i]; i++)
        if (!zconfig_locate (section, s_node_keys[i])) {
            char *list = s_join (s_node_keys);
            rc = s_loader_fail (self, herd_config_scan_line (self->scan, section),
                                "%s: missing key '%s' (required: %s)", context, s_node_keys[i],
                                list);
            free (list);
        }
    return rc;
}

//  client = HOST:PORT
static int
s_load_client (s_loader_t *self, zconfig_t *section, const char *context, herd_node_t *node)
{
    zconfig_t *key = zconfig_locate (section, "client");
    const char *reason = NULL;
    if (s_split_address (s_value (key), &node->client_host, &node->client_port, &reason))
        return s_key_fail (self, key, context, "'%s' is not HOST:PORT (%s)", s_value (key),
                           reason);
    node->client = s_strdup (s_value (key));
    return s_claim_address (self, key, context, node, node->client_host, node->client_port,
                            false);
}

//  metrics = HOST:PORT (Prometheus text over HTTP), optional
static int
s_load_metrics (s_loader_t *self, zconfig_t *section, const char *context, herd_node_t *node)
{
    zconfig_t *key = zconfig_locate (section, "metrics");
    if (!key)
        return 0;
    char *host = NULL;
    int port = 0;
    const char *reason = NULL;
    int rc;
    if (s_split_address (s_value (key), &host, &port, &reason))
        rc = s_key_fail (self, key, context, "'%s' is not HOST:PORT (%s)", s_value (key),
                         reason);
    else {
        node->metrics = s_strdup (s_value (key));
        node->metrics_port = port;
        rc = s_claim_address (self, key, context, node, host, port, true);
    }
    free (host);
    return rc;
}

//  The node's files: cert = PATH of its public certificate and data = DIR,
//  both optional; log = PATH. No two nodes share a data or log path.
static int
s_load_node_files (s_loader_t *self, zconfig_t *section, const char *context,
                   herd_node_t *node)
{
    int rc = 0;
    zconfig_t *key;
    if ((key = zconfig_locate (section, "cert"))) {
        if (!*s_value (key))
            rc = s_key_fail (self, key, context, "value is empty");
        else
            node->cert = s_strdup (s_value (key));
    }
    if (rc == 0 && (key = zconfig_locate (section, "data"))) {
        char *claim = s_sprintf ("data:%s", s_value (key));
        herd_node_t *owner = NULL;
        if (!*s_value (key))
            rc = s_key_fail (self, key, context, "value is empty");
        else
        if ((owner = (herd_node_t *) zhash_lookup (self->logs, claim)))
            rc = s_key_fail (self, key, context,
                             "'%s' is already used by node '%s' (key 'data')", s_value (key),
                             owner->name);
        else {
            node->data = s_strdup (s_value (key));
            zhash_insert (self->logs, claim, node);
        }
        free (claim);
    }
    if (rc == 0) {
        key = zconfig_locate (section, "log");
        herd_node_t *owner = NULL;
        if (!*s_value (key))
            rc = s_key_fail (self, key, context, "value is empty");
        else
        if ((owner = (herd_node_t *) zhash_lookup (self->logs, s_value (key))))
            rc = s_key_fail (self, key, context, "'%s' is already used by node '%s' (key 'log')",
                             s_value (key), owner->name);
        else {
            node->log = s_strdup (s_value (key));
            zhash_insert (self->logs, node->log, node);
        }
    }
    return rc;
}

//  One node section: name, client, bus, sync, log, data.
static int
s_load_node (s_loader_t *self, zconfig_t *section, herd_config_t *config, herd_node_t *node)
{
    if (s_load_node_name (self, section, config, node))
        return -1;
    char *context = s_sprintf ("node '%s'", node->name);
    int rc = s_check_node_keys (self, section, context);
    if (rc == 0)
        rc = s_load_client (self, section, context, node);
    //  bus = tcp://HOST:PORT, and the optional sync = tcp://HOST:PORT
    if (rc == 0)
        rc = s_load_endpoint (self, zconfig_locate (section, "bus"), context, node, &node->bus);
    if (rc == 0 && zconfig_locate (section, "sync"))
        rc = s_load_endpoint (self, zconfig_locate (section, "sync"), context, node,
                              &node->sync);
    //  monitor = tcp://HOST:PORT (events and counters PUB), optional
    if (rc == 0 && zconfig_locate (section, "monitor"))
        rc = s_load_endpoint (self, zconfig_locate (section, "monitor"), context, node,
                              &node->monitor);
    if (rc == 0)
        rc = s_load_metrics (self, section, context, node);
    if (rc == 0)
        rc = s_load_node_files (self, section, context, node);
    free (context);
    return rc;
}

//  Add b to a's neighbours.
static void
s_add_neighbour (herd_node_t *a, size_t b)
{
    a->neighbours = (size_t *) s_checked (
        reallocarray (a->neighbours, a->neighbour_count + 1, sizeof (size_t)));
    a->neighbours[a->neighbour_count++] = b;
}

//  One "edge = A B": both names known, distinct, not linked yet.
static int
s_load_edge (s_loader_t *self, zconfig_t *key, herd_config_t *config)
{
    const char *value = s_value (key);
    char *names[2] = {NULL, NULL};
    size_t count = 0;
    const char *scan = value;
    while (true) {
        while (isspace ((unsigned char) *scan))
            scan++;
        if (!*scan)
            break;
        const char *start = scan;
        while (*scan && !isspace ((unsigned char) *scan))
            scan++;
        if (count < 2)
            names[count] = (char *) s_checked (strndup (start, (size_t) (scan - start)));
        count++;
    }
    int rc = 0;
    const herd_node_t *a = NULL, *b = NULL;
    if (count != 2)
        rc = s_key_fail (self, key, "edges", "'%s' must name exactly two nodes (edge = A B)",
                         value);
    else
    if (!(a = herd_config_node (config, names[0])))
        rc = s_key_fail (self, key, "edges", "'%s': unknown node '%s'", value, names[0]);
    else
    if (!(b = herd_config_node (config, names[1])))
        rc = s_key_fail (self, key, "edges", "'%s': unknown node '%s'", value, names[1]);
    else
    if (a == b)
        rc = s_key_fail (self, key, "edges", "'%s': a node cannot be its own neighbour", value);
    else {
        size_t ia = (size_t) (a - config->nodes);
        size_t ib = (size_t) (b - config->nodes);
        for (size_t i = 0; rc == 0 && i < a->neighbour_count; i++)
            if (a->neighbours[i] == ib)
                rc = s_key_fail (self, key, "edges", "'%s': duplicate edge between '%s' and '%s'",
                                 value, a->name, b->name);
        if (rc == 0) {
            s_add_neighbour (&config->nodes[ia], ib);
            s_add_neighbour (&config->nodes[ib], ia);
        }
    }
    free (names[0]);
    free (names[1]);
    return rc;
}

//  The places section (optional): options of the Places client.
static int
s_load_places (s_loader_t *self, zconfig_t *section, herd_config_t *config)
{
    herd_places_options_t *places = &config->places;
    zconfig_t *key = s_locate (section, "key");
    if (key)
        return s_key_fail (self, key, "places",
                           "the API key must not be stored in the file; set key_env and the "
                           "environment variable");
    if (section && s_check_keys (self, section, "places", s_places_keys, false))
        return -1;

    //  auto: legacy until Google refuses the key for it, then Places API
    //  (New); url is the legacy URL and the New one is derived from it
    if (s_get_string (self, section, "places", "flavour", "auto", &places->flavour))
        return -1;
    bool is_new = strcmp (places->flavour, "new") == 0;
    if (strcmp (places->flavour, "legacy") != 0 && strcmp (places->flavour, "auto") != 0
        && !is_new)
        return s_key_fail (self, s_locate (section, "flavour"), "places",
                           "flavour '%s' is not supported (auto, legacy or new)",
                           places->flavour);

    if (s_get_string (self, section, "places", "url",
                      is_new ? "https://places.googleapis.com/v1/places:searchNearby"
                             : "https://maps.googleapis.com/maps/api/place/nearbysearch/json",
                      &places->url))
        return -1;
    const char *rest = strncmp (places->url, "http://", 7) == 0    ? places->url + 7
                       : strncmp (places->url, "https://", 8) == 0 ? places->url + 8
                                                                   : NULL;
    if (!rest || !*rest || *rest == '/')
        return s_key_fail (self, s_locate (section, "url"), "places",
                           "'%s' must start with http:// or https:// and a host", places->url);
    for (const char *scan = places->url; *scan; scan++)
        if (isspace ((unsigned char) *scan))
            return s_key_fail (self, s_locate (section, "url"), "places",
                               "'%s' contains white space", places->url);

    if (s_get_string (self, section, "places", "key_env", "GOOGLE_API_KEY", &places->key_env))
        return -1;
    if (!s_is_env_name (places->key_env))
        return s_key_fail (self, s_locate (section, "key_env"), "places",
                           "'%s' is not a valid environment variable name "
                           "([A-Za-z_][A-Za-z0-9_]*)",
                           places->key_env);

    long timeout_ms = 0, connect_timeout_ms = 0, concurrency = 0;
    if (s_get_int (self, section, "places", "timeout_ms", 1, 600000, 3000, &timeout_ms)
        || s_get_int (self, section, "places", "connect_timeout_ms", 1, 600000, 1000,
                      &connect_timeout_ms)
        //  256: 200 WHATSATs at distinct places all go out at once (64 made
        //  four waves of the Places latency); a connection costs only a
        //  descriptor while it is open, and curl keeps at most this many
        || s_get_int (self, section, "places", "concurrency", 1, 10000, 256, &concurrency))
        return -1;
    places->timeout_ms = (int) timeout_ms;
    places->connect_timeout_ms = (int) connect_timeout_ms;
    places->concurrency = (int) concurrency;

    long retries = 0, cache_ttl_ms = 0, cache_max = 0;
    if (s_get_int (self, section, "places", "retries", 0, 10, 2, &retries)
        || s_get_int (self, section, "places", "cache_ttl_ms", 0, 3600000, 0, &cache_ttl_ms)
        || s_get_int (self, section, "places", "cache_max", 1, 1000000, 10000, &cache_max))
        return -1;
    places->retries = (int) retries;
    places->cache_ttl_ms = (int) cache_ttl_ms;
    places->cache_max = (int) cache_max;

    //  enterprise_fields = false | true
    key = s_locate (section, "enterprise_fields");
    const char *enterprise = key ? s_value (key) : "false";
    if (strcmp (enterprise, "true") != 0 && strcmp (enterprise, "false") != 0)
        return s_key_fail (self, key, "places", "'%s' is not true or false", enterprise);
    places->enterprise_fields = strcmp (enterprise, "true") == 0;
    return 0;
}

//  Validate the whole tree into config.
static int
s_load_tree (s_loader_t *self, zconfig_t *root, herd_config_t *config)
{
    zconfig_t *sections[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t node_count = s_load_top (self, root, sections);
    if (node_count == 0 || s_load_herd (self, sections[0], config))
        return -1;

    config->nodes = (herd_node_t *) s_checked (calloc (node_count, sizeof (herd_node_t)));
    config->node_count = node_count;
    size_t index = 0;
    for (zconfig_t *key = zconfig_child (root); key; key = zconfig_next (key))
        if (strcmp (zconfig_name (key), "node") == 0)
            if (s_load_node (self, key, config, &config->nodes[index++]))
                return -1;

    zconfig_t *edges = sections[2];
    if (edges) {
        if (s_check_keys (self, edges, "edges", s_edges_keys, true))
            return -1;
        for (zconfig_t *key = zconfig_child (edges); key; key = zconfig_next (key))
            if (s_load_edge (self, key, config))
                return -1;
    }
    if (s_load_security (self, sections[4], config)
        || s_load_protected (self, root, config))
        return -1;
    return s_load_places (self, sections[3], config);
}

//  -------------------------------------------------------------------------
//  Public API

//  Load and validate a config from text; name stands for the file.
static herd_config_t *
s_load_text (const char *text, const char *name, bool skip_security, char **error_p)
{
    assert (text);
    assert (name);
    if (error_p)
        *error_p = NULL;

    s_loader_t loader = {.file = name, .skip_security = skip_security};
    loader.names = (zhash_t *) s_checked (zhash_new ());
    loader.clients = (zhash_t *) s_checked (zhash_new ());
    loader.buses = (zhash_t *) s_checked (zhash_new ());
    loader.logs = (zhash_t *) s_checked (zhash_new ());

    herd_config_t *self = NULL;
    zconfig_t *root = NULL;
    int bad_line = 0;
    char *reason = NULL;
    loader.scan = herd_config_scan_new (text, &bad_line, &reason);
    if (!loader.scan) {
        s_loader_fail (&loader, bad_line, "%s", reason);
        free (reason);
    }
    else {
        //  zconfig logs its own complaints to stdout; the pre-scan should
        //  leave it none, and its verdict is what counts
        root = zconfig_str_load (text);
        if (!root)
            s_loader_fail (&loader, 0, "syntax error (zconfig rejected the file)");
    }
    if (root) {
        herd_config_scan_map (loader.scan, root);
        self = (herd_config_t *) s_checked (calloc (1, sizeof (herd_config_t)));
        self->path = s_strdup (name);
        if (s_load_tree (&loader, root, self))
            herd_config_destroy (&self);
        zconfig_destroy (&root);
    }
    s_loader_free (&loader);
    if (error_p)
        *error_p = loader.error;
    else
        free (loader.error);
    return self;
}

//  Load and validate a config from text; name stands for the file.
herd_config_t *
herd_config_load_string (const char *text, const char *name, char **error_p)
{
    return s_load_text (text, name, false, error_p);
}

//  Read a whole file into a string; NULL with *error_p set on failure.
static char *
s_read_file (const char *path, char **error_p)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        *error_p = s_sprintf ("%s: cannot open: %s", path, strerror (errno));
        return NULL;
    }
    size_t size = 0, max = 4096;
    char *text = (char *) s_checked (malloc (max + 1));
    while (true) {
        size_t got = fread (text + size, 1, max - size, file);
        size += got;
        if (size < max) {
            if (ferror (file)) {
                *error_p = s_sprintf ("%s: cannot read: %s", path, strerror (errno));
                free (text);
                text = NULL;
            }
            break;
        }
        if (max >= S_FILE_MAX) {
            *error_p = s_sprintf ("%s: file is larger than %d bytes; is it a config file?",
                                  path, S_FILE_MAX);
            free (text);
            text = NULL;
            break;
        }
        max *= 2;
        text = (char *) s_checked (realloc (text, max + 1));
    }
    fclose (file);
    if (!text)
        return NULL;
    text[size] = 0;

    //  A NUL byte would silently end the text for zconfig
    const char *nul = (const char *) memchr (text, 0, size);
    if (nul) {
        int line = 1;
        for (const char *scan = text; scan < nul; scan++)
            line += *scan == '\n';
        *error_p = s_sprintf ("%s:%d: the file contains a NUL byte", path, line);
        free (text);
        return NULL;
    }
    return text;
}

//  Load a config file, with or without its security checks.
static herd_config_t *
s_load_path (const char *path, bool skip_security, char **error_p)
{
    assert (path);
    char *error = NULL;
    herd_config_t *self = NULL;
    char *text = s_read_file (path, &error);
    if (text)
        self = s_load_text (text, path, skip_security, &error);
    free (text);
    if (error_p)
        *error_p = error;
    else
        free (error);
    return self;
}

//  Load and validate a config file.
herd_config_t *
herd_config_load (const char *path, char **error_p)
{
    return s_load_path (path, false, error_p);
}

//  Load a config file without its security checks, for herd keygen --all.
herd_config_t *
herd_config_load_without_security (const char *path, char **error_p)
{
    return s_load_path (path, true, error_p);
}

//  True if host, as written, is a loopback address.
bool
herd_config_is_loopback (const char *host)
{
    assert (host);
    if (strcasecmp (host, "localhost") == 0)
        return true;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton (AF_INET, host, &v4) == 1)
        return (ntohl (v4.s_addr) >> 24) == 127;
    if (inet_pton (AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK (&v6)
               || (IN6_IS_ADDR_V4MAPPED (&v6) && v6.s6_addr[12] == 127);
    return false;
}

//  Destroy a config; nulls the caller's pointer.
void
herd_config_destroy (herd_config_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        herd_config_t *self = *self_p;
        for (size_t i = 0; i < self->node_count; i++) {
            herd_node_t *node = &self->nodes[i];
            free (node->name);
            free (node->client);
            free (node->client_host);
            free (node->bus);
            free (node->sync);
            free (node->data);
            free (node->cert);
            free (node->monitor);
            free (node->metrics);
            free (node->log);
            free (node->neighbours);
        }
        free (self->nodes);
        free (self->path);
        free (self->name);
        free (self->run_dir);
        free (self->places.flavour);
        free (self->places.url);
        free (self->places.key_env);
        free (self);
        *self_p = NULL;
    }
}

//  Find a node by name, or NULL.
const herd_node_t *
herd_config_node (const herd_config_t *self, const char *name)
{
    if (!self || !name)
        return NULL;
    for (size_t i = 0; i < self->node_count; i++)
        if (self->nodes[i].name && strcmp (self->nodes[i].name, name) == 0)
            return &self->nodes[i];
    return NULL;
}

//  Endpoint joining two roles of a node: inproc:// in one process, ipc://
//  under run_dir when split. Caller frees; NULL if memory is exhausted.
char *
herd_config_endpoint (const herd_config_t *self, const herd_node_t *node, const char *role,
                      bool split)
{
    assert (self);
    assert (node);
    assert (role);
    if (split)
        return zsys_sprintf ("ipc://%s/%s-%s.ipc", self->run_dir, node->name, role);
    return zsys_sprintf ("inproc://herd-%s-%s", node->name, role);
}

//  -------------------------------------------------------------------------
char *
herd_config_resolve_endpoint (const char *endpoint)
{
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return NULL;
    const char *host = endpoint + 6;
    const char *colon = strrchr (host, ':');
    if (!colon || *host == '[' || *host == '*')
        return NULL;
    char name[256];
    snprintf (name, sizeof (name), "%.*s", (int) (colon - host), host);
    unsigned char address[16];
    if (inet_pton (AF_INET, name, address) == 1 || inet_pton (AF_INET6, name, address) == 1)
        return NULL;            //  numeric already
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    if (getaddrinfo (name, NULL, &hints, &found) != 0 || !found)
        return NULL;
    char text[INET6_ADDRSTRLEN] = "";
    getnameinfo (found->ai_addr, found->ai_addrlen, text, sizeof (text), NULL, 0, NI_NUMERICHOST);
    bool v6 = found->ai_family == AF_INET6;
    freeaddrinfo (found);
    return s_sprintf (v6 ? "tcp://[%s]%s" : "tcp://%s%s", text, colon);
}
