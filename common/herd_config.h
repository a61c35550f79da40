//  herd_config.h - the herd's configuration: herd.cfg (ZPL) loaded and validated.
//
//  herd.cfg is read with czmq's zconfig; this class adds what zconfig lacks:
//  every error names the file, the line or key, and the reason. A loaded
//  config is immutable and safe to share between threads.
//
//  File layout (every key documented in README.md):
//
//      herd
//          name = herd                    #  the herd's name: its buses refuse others
//          run_dir = run                  #  ipc:// sockets of split nodes
//          max_line = 1048576             #  longest client line, bytes
//          max_output = 1048576           #  unsent answers per client, bytes
//          max_pending = 64               #  unanswered requests per client
//          max_clients = 10000            #  client connections at once
//          idle_timeout_ms = 300000       #  close a silent client
//          line_timeout_ms = 30000        #  close a client trickling a line
//          max_output_total = 268435456   #  unsent answers of all clients, bytes
//          max_time_ahead_s = 86400       #  IAMAT times further ahead are refused
//          fsync = everysec               #  or always: ack only after fdatasync
//          ack_timeout_ms = 5000          #  an unstored IAMAT's connection is closed after
//          log_requests = on              #  client lines in the log: on, off, sample:N
//          log_level = info               #  events logged: debug, info, warning, error
//          log_format = text              #  or json: one object a line
//      node = Hill
//          client = 127.0.0.1:12000       #  TCP address clients connect to
//          bus = tcp://127.0.0.1:13000    #  PUB endpoint neighbours subscribe to
//          sync = tcp://127.0.0.1:14000   #  catch-up endpoint (optional)
//          log = logs/Hill.log
//          data = data/Hill               #  journal directory (optional)
//      edges
//          edge = Hill Jaquez             #  bidirectional
//      security
//          curve = on                     #  off by default; bus or sync off loopback
//                                         #  needs on, or an explicit off
//      places
//          flavour = auto                 #  or legacy, or new: Places API (New)
//          url = https://maps.googleapis.com/maps/api/place/nearbysearch/json
//          key_env = GOOGLE_API_KEY       #  the key itself never sits in the file
//          timeout_ms = 3000
//          connect_timeout_ms = 1000
//          concurrency = 256
//          retries = 2                    #  5xx, 429, resets; backoff inside timeout_ms
//          enterprise_fields = false      #  new: rating, price, open now (Enterprise SKU)
//          cache_ttl_ms = 0               #  0: no cache
//          cache_max = 10000

#ifndef HERD_CONFIG_H_INCLUDED
#define HERD_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The longest client line a node takes (herd/max_line's upper bound): an
//  AT line of it, with the longest node name and fields around it, stays
//  well inside the journal's record cap (HERD_JOURNAL_MAX_RECORD, 64 MiB)
//  and the bus's frame cap, so anything acknowledged can be stored.
#define HERD_CONFIG_MAX_LINE 33554432L

typedef struct {
    char *name;                 //  node name, as in AT lines
    char *client;               //  client address as written, "host:port"
    char *client_host;          //  host part of client
    int client_port;            //  port part of client, 1..65535
    char *bus;                  //  PUB endpoint (tcp://host:port), bound here
    char *sync;                 //  catch-up ROUTER endpoint, or NULL (no catch-up)
    char *log;                  //  log file path
    char *data;                 //  journal directory, or NULL (table in memory only)
    char *monitor;              //  events and counters PUB endpoint, or NULL
    char *metrics;              //  Prometheus HTTP address "host:port", or NULL
    int metrics_port;
    char *cert;                 //  public CURVE certificate file, or NULL; the
                                //  secret one is the same path + "_secret"
    size_t *neighbours;         //  indices into herd_config_t.nodes
    size_t neighbour_count;
} herd_node_t;

typedef struct {
    char *flavour;              //  "auto", "legacy" (Nearby Search) or "new" (Places API (New))
    char *url;                  //  full Nearby Search URL, without query
    char *key_env;              //  name of the environment variable with the key
    int timeout_ms;             //  whole request, retries included, 1..600000
    int connect_timeout_ms;     //  TCP+TLS connect, 1..600000
    int concurrency;            //  transfers in flight at once, 1..10000
    int retries;                //  retries of a retryable failure, 0..10
    bool enterprise_fields;     //  new: also ask rating, price... (Enterprise SKU)
    int cache_ttl_ms;           //  keep answers this long, 0 = no cache, 0..3600000
    int cache_max;              //  most answers cached, 1..1000000
} herd_places_options_t;

typedef struct {
    char *path;                 //  file it was loaded from
    char *name;                 //  herd/name: 1..64 of A-Z a-z 0-9 . _ - (herd_msg.h)
    char *run_dir;              //  directory for ipc:// endpoints
    size_t max_line;            //  client line cap in bytes, 64..HERD_CONFIG_MAX_LINE
    bool curve;                 //  security/curve: CURVE on every bus socket
    bool curve_said;            //  security/curve is in the file (on, or an explicit off)
    size_t max_output;          //  unsent output per client, 1 KiB..1 GiB
    size_t max_output_total;    //  unsent output of all clients together, 1 MiB..64 GiB
    size_t max_pending;         //  unanswered requests per client, 1..1000000
    size_t max_clients;         //  client connections at once, 1..1000000
    int idle_timeout_ms;        //  silent client closed after, 100..86400000
    int line_timeout_ms;        //  unfinished line closed after, 100..86400000
    int64_t max_time_ahead_s;   //  IAMAT client time ahead of ours refused past it; 0: no bound
    bool fsync_always;          //  fsync = always: ack after fdatasync; else everysec
    int ack_timeout_ms;         //  an IAMAT's answer waits this long to be stored, 100..600000
    uint64_t log_requests_every;    //  log_requests: 0 off, 1 on, N: every Nth connection's lines
    int log_level;              //  log_level: herd_log_level_t (herd_log.h), 0 debug..3 error
    bool log_json;              //  log_format = json
    herd_node_t *nodes;
    size_t node_count;
    herd_places_options_t places;
} herd_config_t;

//  Load and validate a config file. On failure returns NULL and, if error_p
//  is not NULL, sets *error_p to a message "FILE:LINE: reason" or
//  "FILE:LINE: node 'Hill': key 'client': reason"; the caller frees it.
herd_config_t *
    herd_config_load (const char *path, char **error_p);

//  Same as herd_config_load, from a string; name stands for the file name in
//  messages.
herd_config_t *
    herd_config_load_string (const char *text, const char *name, char **error_p);

//  Same as herd_config_load without the security checks: no certificate is
//  loaded and the protected bus is not enforced. For herd keygen --all,
//  which makes the certificates those checks look for.
herd_config_t *
    herd_config_load_without_security (const char *path, char **error_p);

//  True if host, as written (no name is resolved), is a loopback address:
//  127.0.0.0/8, ::1 (or ::ffff:127.x.x.x) or "localhost". Any other name,
//  an interface name or a wildcard may be reached from other hosts.
bool
    herd_config_is_loopback (const char *host);

//  Destroy a config; nulls the caller's pointer.
void
    herd_config_destroy (herd_config_t **self_p);

//  Find a node by name, or NULL.
const herd_node_t *
    herd_config_node (const herd_config_t *self, const char *name);

//  Endpoint joining two roles of a node. role is "bus" (the gateway->bus
//  channel) or "places". When split is false: "inproc://herd-NODE-ROLE";
//  else "ipc://RUN_DIR/NODE-ROLE.ipc". Caller frees.
char *
    herd_config_endpoint (const herd_config_t *self, const herd_node_t *node,
                          const char *role, bool split);

//  For binding: endpoint with a host name in tcp://HOST:PORT replaced by
//  its first address (ZeroMQ resolves names when connecting, not when
//  binding). A new string (caller frees), or NULL when there is nothing to
//  resolve or the name does not resolve.
char *
    herd_config_resolve_endpoint (const char *endpoint);

//  Reload (SIGHUP): 0 if next can replace running in node name's process
//  without a restart, else -1 with *why_p (caller frees) naming every
//  change that cannot apply live: the node gone, its client, bus, sync,
//  log, data, monitor, metrics or cert; run_dir, fsync, security/curve,
//  places/key_env; with CURVE, nodes or certificates added or removed.
int
    herd_config_reload_check (const herd_config_t *running, const herd_config_t *next,
                              const char *name, char **why_p);

//  What a reload from running to next changes for node name, for the log:
//  "neighbours +Campbell -Smith; max_pending 64 -> 128; ...", or "no
//  change". Caller frees.
char *
    herd_config_reload_changes (const herd_config_t *running, const herd_config_t *next,
                                const char *name);

//  Self test of this class.
void
    herd_config_test (bool verbose);

//  Self test of the reload comparison (herd_config_reload.c).
void
    herd_config_reload_test (bool verbose);

#endif
