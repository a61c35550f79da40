//  herd_config_test.c - the self test of herd_config: loading, defaults, every error.
//
//  Its own file for its size: most of it is data, the config texts and the
//  table of every error the loader reports with the message it must give.
//  It uses herd_config.h alone, as a caller would.

#include "herd_config.h"
#include "herd_config_scan.h"
#include "herd_check.h"

#include <czmq.h>
#include <errno.h>

//  The default herd (as herd.cfg), with its comments.
#define S_TEST_DEFAULT                                                                         \
    "#   herd.cfg - the default herd: five nodes on this host.\n"                                \
    "\n"                                                                                       \
    "herd\n"                                                                                   \
    "    run_dir = run                   #   ipc:// endpoints of split nodes\n"                 \
    "    max_line = 1048576              #   longest client line, in bytes (1 MiB)\n"           \
    "    max_output = 1048576            #   answers waiting unread per client, bytes\n"        \
    "    max_pending = 64                #   requests in flight per client\n"                   \
    "    max_clients = 10000             #   client connections at once\n"                      \
    "    idle_timeout_ms = 300000        #   close a client silent this long (5 min)\n"         \
    "    line_timeout_ms = 30000         #   time allowed to finish a line\n"                   \
    "\n"                                                                                       \
    "node = Hill\n"                                                                            \
    "    client = 127.0.0.1:12000        #   clients connect here (TCP)\n"                      \
    "    bus = tcp://127.0.0.1:13000     #   PUB endpoint neighbours subscribe to\n"            \
    "    log = logs/Hill.log\n"                                                                \
    "node = Jaquez\n"                                                                          \
    "    client = 127.0.0.1:12001\n"                                                           \
    "    bus = tcp://127.0.0.1:13001\n"                                                        \
    "    log = logs/Jaquez.log\n"                                                              \
    "node = Smith\n"                                                                           \
    "    client = 127.0.0.1:12002\n"                                                           \
    "    bus = tcp://127.0.0.1:13002\n"                                                        \
    "    log = logs/Smith.log\n"                                                               \
    "node = Singleton\n"                                                                       \
    "    client = 127.0.0.1:12003\n"                                                           \
    "    bus = tcp://127.0.0.1:13003\n"                                                        \
    "    log = logs/Singleton.log\n"                                                           \
    "node = Campbell\n"                                                                        \
    "    client = 127.0.0.1:12004\n"                                                           \
    "    bus = tcp://127.0.0.1:13004\n"                                                        \
    "    log = logs/Campbell.log\n"                                                            \
    "\n"                                                                                       \
    "edges                               #   bidirectional\n"                                   \
    "    edge = Hill Jaquez\n"                                                                 \
    "    edge = Hill Smith\n"                                                                  \
    "    edge = Singleton Jaquez\n"                                                            \
    "    edge = Singleton Smith\n"                                                             \
    "    edge = Singleton Campbell\n"                                                          \
    "    edge = Smith Campbell\n"                                                              \
    "\n"                                                                                       \
    "places\n"                                                                                 \
    "    flavour = legacy                #   Nearby Search (legacy API)\n"                      \
    "    url = https://maps.googleapis.com/maps/api/place/nearbysearch/json\n"                 \
    "    key_env = GOOGLE_API_KEY        #   the key is read from this variable\n"              \
    "    timeout_ms = 3000               #   whole request\n"                                   \
    "    connect_timeout_ms = 1000\n"                                                          \
    "    concurrency = 256               #   HTTP transfers in flight at once\n"

//  A herd name one character too long.
#define S_TEST_NAME_65 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

//  One node, lines 1-4, for error cases to build on.
#define S_TEST_NODE_A                                                                          \
    "node = A\n"                                                                               \
    "    client = 127.0.0.1:1\n"                                                               \
    "    bus = tcp://127.0.0.1:2\n"                                                            \
    "    log = a.log\n"

//  A second node, lines 5-8 after S_TEST_NODE_A.
#define S_TEST_NODE_B                                                                          \
    "node = B\n"                                                                               \
    "    client = 127.0.0.1:3\n"                                                               \
    "    bus = tcp://127.0.0.1:4\n"                                                            \
    "    log = b.log\n"

//  A text that must fail, and two things its message must contain.
typedef struct {
    const char *text;
    const char *expect;
    const char *also;
} s_test_case_t;

//  Every error the loader reports; file name "t.cfg".
static const s_test_case_t s_test_errors[] = {
    //  Syntax, found by the pre-scan
    {"herd\n   run_dir = x\n" S_TEST_NODE_A, "t.cfg:2: ", "3 spaces, not a multiple of 4"},
    {"herd\n  # a comment\n" S_TEST_NODE_A, "t.cfg:2: ",
     "2 spaces, not a multiple of 4 (zconfig rejects it even on a comment)"},
    {"herd\n    \x0brun_dir = x\n" S_TEST_NODE_A, "t.cfg:2: ", "byte 0x0b is used for indentation"},
    {"herd\n\trun_dir = x\n" S_TEST_NODE_A, "t.cfg:2: ", "a tab is used for indentation"},
    {"herd\n    \trun_dir = x\n" S_TEST_NODE_A, "t.cfg:2: ", "a tab is used for indentation"},
    {"herd\n        run_dir = x\n" S_TEST_NODE_A, "t.cfg:2: ",
     "'run_dir' is indented more than one level (4 spaces) deeper than its parent at line 1"},
    {"    herd\n" S_TEST_NODE_A, "t.cfg:1: ", "'herd' is indented, but no key before it"},
    {S_TEST_NODE_A "places\n    url = \"https://x\n", "t.cfg:6: ",
     "unterminated quote: missing closing \""},
    {S_TEST_NODE_A "places\n    url = 'https://x\n", "t.cfg:6: ",
     "unterminated quote: missing closing '"},
    {S_TEST_NODE_A "places\n    url = 'https://x' y\n", "t.cfg:6: ",
     "unexpected text after the closing quote: 'y'"},
    {S_TEST_NODE_A "no!de = B\n", "t.cfg:5: ", "name 'no!de' contains '!'"},
    {S_TEST_NODE_A "places\n    time\x01out = 1\n", "t.cfg:6: ", "contains byte 0x01"},
    {S_TEST_NODE_A "/node = B\n", "t.cfg:5: ", "name '/node' must not start or end with '/'"},
    {S_TEST_NODE_A "= B\n", "t.cfg:5: ", "expected a key name, found '='"},
    {"\xEF\xBB\xBF" S_TEST_NODE_A, "t.cfg:1: ", "UTF-8 byte order mark"},
    {S_TEST_NODE_A "edges\n    edge A B\n", "t.cfg:6: ", "expected '=' after name 'edge'"},
    {S_TEST_NODE_A "places\n    url = # none\n", "t.cfg:6: ",
     "empty value followed by a comment"},
    //  Top level
    {S_TEST_NODE_A "nodes\n", "t.cfg:5: unknown key 'nodes'",
     "(allowed: herd, node, edges, places, security)"},
    {"herd = big\n" S_TEST_NODE_A, "t.cfg:1: ", "section 'herd' takes no value"},
    {"herd\nherd\n" S_TEST_NODE_A, "t.cfg:2: ", "duplicate section 'herd' (first at line 1)"},
    {"herd\n    run_dir = x\n", "t.cfg: ", "no nodes"},
    {"", "t.cfg: ", "no nodes"},
    //  herd
    {"herd\n    dir = x\n" S_TEST_NODE_A, "t.cfg:2: herd: unknown key 'dir'",
     "(allowed: name, run_dir, max_line, max_output, max_output_total, max_pending, max_clients, "
     "idle_timeout_ms, line_timeout_ms, max_time_ahead_s, fsync, ack_timeout_ms, log_requests, "
     "log_level, log_format)"},
    {"herd\n    log_requests = sometimes\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'log_requests'",
     "'sometimes' is not on, off or sample:N (N in 1..1000000)"},
    {"herd\n    log_requests = sample:0\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'log_requests'",
     "'sample:0' is not on, off or sample:N (N in 1..1000000)"},
    {"herd\n    log_requests = sample:2x\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'log_requests'",
     "'sample:2x' is not on, off or sample:N"},
    {"herd\n    log_requests = sample:1000001\n" S_TEST_NODE_A,
     "t.cfg:2: herd: key 'log_requests'", "'sample:1000001' is not on, off or sample:N"},
    {"herd\n    log_requests = sample:\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'log_requests'",
     "'sample:' is not on, off or sample:N"},
    {"herd\n    log_level = warn\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'log_level'",
     "'warn' is not debug, info, warning or error"},
    {"herd\n    log_format = JSON\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'log_format'",
     "'JSON' is not text or json"},
    {"herd\n    log_format =\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'log_format'",
     "value is empty"},
    {"herd\n    name = my herd\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'name'",
     "'my herd' is not 1..64 characters of A-Z a-z 0-9 . _ -"},
    {"herd\n    name = caf\xC3\xA9\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'name'",
     "is not 1..64 characters"},
    {"herd\n    name = " S_TEST_NAME_65 "\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'name'",
     "is not 1..64 characters"},
    {"herd\n    name =\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'name'", "value is empty"},
    {"herd\n    name = a\n    name = b\n" S_TEST_NODE_A, "t.cfg:3: herd: ",
     "key 'name' is given twice"},
    {"herd\n    fsync = sometimes\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'fsync'",
     "'sometimes' is not everysec or always"},
    {"herd\n    max_time_ahead_s = -5\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'max_time_ahead_s'",
     "not an integer"},
    {"herd\n    max_output = 1023\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'max_output'",
     "'1023' is not an integer in 1024..1073741824"},
    {"herd\n    max_pending = 0\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'max_pending'",
     "'0' is not an integer in 1..1000000"},
    {"herd\n    max_clients = 1000001\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'max_clients'",
     "'1000001' is not an integer in 1..1000000"},
    {"herd\n    idle_timeout_ms = 99\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'idle_timeout_ms'",
     "'99' is not an integer in 100..86400000"},
    {"herd\n    line_timeout_ms = 5m\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'line_timeout_ms'",
     "'5m' is not an integer in 100..86400000"},
    {"herd\n    run_dir =\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'run_dir'", "value is empty"},
    {"herd\n    run_dir = a\n    run_dir = b\n" S_TEST_NODE_A, "t.cfg:3: herd: key 'run_dir'",
     "is given twice (first at line 2)"},
    {"herd\n    run_dir = a\n        sub = b\n" S_TEST_NODE_A, "t.cfg:3: herd: key 'run_dir'",
     "unexpected child key 'sub'"},
    {"herd\n    max_line = 12abc\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'max_line'",
     "'12abc' is not an integer in 64..33554432"},
    {"herd\n    max_line =\n" S_TEST_NODE_A, "t.cfg:2: herd: key 'max_line'",
     "'' is not an integer in 64..33554432"},
    {"herd\n    max_line = -1\n" S_TEST_NODE_A, "t.cfg:2: ", "'-1' is not an integer"},
    {"herd\n    max_line = +100\n" S_TEST_NODE_A, "t.cfg:2: ", "'+100' is not an integer"},
    {"herd\n    max_line = 63\n" S_TEST_NODE_A, "t.cfg:2: ", "'63' is not an integer"},
    {"herd\n    max_line = 33554433\n" S_TEST_NODE_A, "t.cfg:2: ", "not an integer"},
    {"herd\n    max_line = 99999999999999999999999\n" S_TEST_NODE_A, "t.cfg:2: ",
     "not an integer in 64..33554432"},
    //  node
    {"node\n    client = h:1\n    bus = tcp://h:2\n    log = l\n", "t.cfg:1: ",
     "node: name is empty"},
    {"node = 'A B'\n    client = h:1\n    bus = tcp://h:2\n    log = l\n", "t.cfg:1: node 'A B'",
     "name may only use letters, digits, '_', '.' and '-'"},
    {S_TEST_NODE_A "node = A\n", "t.cfg:5: ", "node 'A' is defined twice (first at line 1)"},
    {S_TEST_NODE_A "    port = 1\n", "t.cfg:5: node 'A': unknown key 'port'",
     "(allowed: client, bus, sync, log, data, cert, monitor, metrics)"},
    {S_TEST_NODE_A "    sync = udp://127.0.0.1:3\n", "t.cfg:5: node 'A': key 'sync'",
     "is not tcp://HOST:PORT"},
    {S_TEST_NODE_A "    sync = tcp://127.0.0.1:2\n", "t.cfg:5: node 'A': key 'sync'",
     "is already used by node 'A'"},
    {S_TEST_NODE_A "    data = \n", "t.cfg:5: node 'A': key 'data'", "value is empty"},
    {S_TEST_NODE_A "    log = again.log\n", "t.cfg:5: node 'A': key 'log'",
     "is given twice (first at line 4)"},
    {"node = A\n    bus = tcp://h:2\n    log = l\n", "t.cfg:1: node 'A'",
     "missing key 'client' (required: client, bus, log)"},
    {"node = A\n    client = h:1\n    log = l\n", "t.cfg:1: node 'A'", "missing key 'bus'"},
    {"node = A\n    client = h:1\n    bus = tcp://h:2\n", "t.cfg:1: node 'A'",
     "missing key 'log'"},
    {"node = A\n    client = 127.0.0.1\n    bus = tcp://h:2\n    log = l\n",
     "t.cfg:2: node 'A': key 'client'", "'127.0.0.1' is not HOST:PORT"},
    {"node = A\n    client = :12\n    bus = tcp://h:2\n    log = l\n",
     "t.cfg:2: node 'A': key 'client'", "':12' is not HOST:PORT (HOST is empty)"},
    {"node = A\n    client = h:0\n    bus = tcp://h:2\n    log = l\n", "t.cfg:2: ",
     "'h:0' is not HOST:PORT (PORT must be a decimal number in 1..65535)"},
    {"node = A\n    client = h:65536\n    bus = tcp://h:2\n    log = l\n", "t.cfg:2: ",
     "not HOST:PORT (PORT must be"},
    {"node = A\n    client = h:12abc\n    bus = tcp://h:2\n    log = l\n", "t.cfg:2: ",
     "not HOST:PORT (PORT must be"},
    {"node = A\n    client = ::1:5\n    bus = tcp://h:2\n    log = l\n", "t.cfg:2: ",
     "IPv6 HOST goes in brackets"},
    {"node = A\n    client = h:1\n    bus = h:2\n    log = l\n", "t.cfg:3: node 'A': key 'bus'",
     "'h:2' is not tcp://HOST:PORT (must start with tcp://)"},
    {"node = A\n    client = h:1\n    bus = tcp://h:x\n    log = l\n", "t.cfg:3: ",
     "'tcp://h:x' is not tcp://HOST:PORT (PORT must be"},
    {"node = A\n    client = h:1\n    bus = tcp://*:2\n    log = l\n", "t.cfg:3: ",
     "HOST cannot be '*'"},
    {"node = A\n    client = h:1\n    bus = tcp://h:2\n    log = ''\n",
     "t.cfg:4: node 'A': key 'log'", "value is empty"},
    {"node = A\n    client = h:1\n    bus = tcp://h:1\n    log = l\n",
     "t.cfg:3: node 'A': key 'bus'", "'tcp://h:1' is already used by node 'A' (key 'client')"},
    {S_TEST_NODE_A "node = B\n    client = 127.0.0.1:1\n    bus = tcp://h:4\n    log = b\n",
     "t.cfg:6: node 'B': key 'client'", "'127.0.0.1:1' is already used by node 'A' (key 'client')"},
    {S_TEST_NODE_A "node = B\n    client = h:3\n    bus = tcp://127.0.0.1:2\n    log = b\n",
     "t.cfg:7: node 'B': key 'bus'", "is already used by node 'A' (key 'bus')"},
    {S_TEST_NODE_A "node = B\n    client = 127.0.0.1:2\n    bus = tcp://h:4\n    log = b\n",
     "t.cfg:6: node 'B': key 'client'", "is already used by node 'A' (key 'bus')"},
    {S_TEST_NODE_A "node = B\n    client = h:3\n    bus = tcp://h:4\n    log = a.log\n",
     "t.cfg:8: node 'B': key 'log'", "'a.log' is already used by node 'A' (key 'log')"},
    {"node = A0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789\n"
     "    client = h:1\n    bus = tcp://h:2\n    log = l\n",
     "t.cfg:1: ", "more than the 107 a Unix socket allows"},
    //  edges
    {S_TEST_NODE_A "edges = A\n", "t.cfg:5: ", "section 'edges' takes no value"},
    {S_TEST_NODE_A S_TEST_NODE_B "edges\n    link = A B\n", "t.cfg:10: edges: unknown key 'link'",
     "(allowed: edge)"},
    {S_TEST_NODE_A S_TEST_NODE_B "edges\n    edge = A\n", "t.cfg:10: edges: key 'edge'",
     "'A' must name exactly two nodes (edge = A B)"},
    {S_TEST_NODE_A S_TEST_NODE_B "edges\n    edge = A B A\n", "t.cfg:10: edges: key 'edge'",
     "must name exactly two nodes"},
    {S_TEST_NODE_A S_TEST_NODE_B "edges\n    edge = A Z\n", "t.cfg:10: edges: key 'edge'",
     "'A Z': unknown node 'Z'"},
    {S_TEST_NODE_A S_TEST_NODE_B "edges\n    edge = A A\n", "t.cfg:10: edges: key 'edge'",
     "'A A': a node cannot be its own neighbour"},
    {S_TEST_NODE_A S_TEST_NODE_B "edges\n    edge = A B\n    edge = B A\n",
     "t.cfg:11: edges: key 'edge'", "'B A': duplicate edge between 'B' and 'A'"},
    {S_TEST_NODE_A S_TEST_NODE_B "edges\n    edge = A B\n        weight = 1\n",
     "t.cfg:11: edges: key 'edge'", "unexpected child key 'weight'"},
    //  places
    {S_TEST_NODE_A "places\n    flavour = New\n", "t.cfg:6: places: key 'flavour'",
     "flavour 'New' is not supported (auto, legacy or new)"},
    {S_TEST_NODE_A "places\n    retries = 11\n", "t.cfg:6: places: key 'retries'",
     "'11' is not an integer in 0..10"},
    {S_TEST_NODE_A "places\n    cache_ttl_ms = -1\n", "t.cfg:6: places: key 'cache_ttl_ms'",
     "'-1' is not an integer in 0..3600000"},
    {S_TEST_NODE_A "places\n    cache_max = 0\n", "t.cfg:6: places: key 'cache_max'",
     "'0' is not an integer in 1..1000000"},
    {S_TEST_NODE_A "places\n    enterprise_fields = yes\n",
     "t.cfg:6: places: key 'enterprise_fields'", "'yes' is not true or false"},
    {S_TEST_NODE_A "places\n    url = ftp://x/y\n", "t.cfg:6: places: key 'url'",
     "'ftp://x/y' must start with http:// or https://"},
    {S_TEST_NODE_A "places\n    url = https://\n", "t.cfg:6: places: key 'url'",
     "must start with http:// or https://"},
    {S_TEST_NODE_A "places\n    url = 'https://a b'\n", "t.cfg:6: ", "contains white space"},
    {S_TEST_NODE_A "places\n    key_env = 1KEY\n", "t.cfg:6: places: key 'key_env'",
     "'1KEY' is not a valid environment variable name"},
    {S_TEST_NODE_A "places\n    key_env = MY-KEY\n", "t.cfg:6: ",
     "'MY-KEY' is not a valid environment variable name"},
    {S_TEST_NODE_A "places\n    key = AIzaSecret\n", "t.cfg:6: places: key 'key'",
     "the API key must not be stored in the file; set key_env and the environment variable"},
    {S_TEST_NODE_A "places\n    timeout_ms = 0\n", "t.cfg:6: places: key 'timeout_ms'",
     "'0' is not an integer in 1..600000"},
    {S_TEST_NODE_A "places\n    timeout_ms = 600001\n", "t.cfg:6: ", "not an integer in 1..600000"},
    {S_TEST_NODE_A "places\n    connect_timeout_ms = 1s\n",
     "t.cfg:6: places: key 'connect_timeout_ms'", "'1s' is not an integer in 1..600000"},
    {S_TEST_NODE_A "places\n    concurrency = 10001\n", "t.cfg:6: places: key 'concurrency'",
     "'10001' is not an integer in 1..10000"},
    {S_TEST_NODE_A "places\n    proxy = x\n", "t.cfg:6: places: unknown key 'proxy'",
     "(allowed: flavour, url, key_env, timeout_ms, connect_timeout_ms, concurrency, retries, "
     "enterprise_fields, cache_ttl_ms, cache_max)"},
    {S_TEST_NODE_A "places\n    url = http://a\n    url = http://b\n",
     "t.cfg:7: places: key 'url'", "is given twice (first at line 6)"},
    //  The protected bus: off loopback without CURVE, unless curve = off is said
    {"node = A\n    client = 10.0.0.1:1\n    bus = tcp://10.0.0.1:2\n    log = l\n",
     "t.cfg:3: node 'A': key 'bus': binds 10.0.0.1 without CURVE: ",
     "set security/curve = on, or security/curve = off to accept an open bus"},
    {S_TEST_NODE_A "    sync = tcp://0.0.0.0:5\n", "t.cfg:5: node 'A': key 'sync'",
     "binds 0.0.0.0 without CURVE"},
    {S_TEST_NODE_A S_TEST_NODE_B "    sync = tcp://[::]:5\n", "t.cfg:9: node 'B': key 'sync'",
     "binds :: without CURVE"},
    {"node = A\n    client = 127.0.0.1:1\n    bus = tcp://eth0:2\n    log = l\n",
     "t.cfg:3: node 'A': key 'bus'", "binds eth0 without CURVE"},
    {"node = A\n    client = 127.0.0.1:1\n    bus = tcp://herd-a.example:2\n    log = l\n",
     "t.cfg:3: node 'A': key 'bus'", "binds herd-a.example without CURVE"},
    {"node = A\n    client = 127.0.0.1:1\n    bus = tcp://10.1.1.1:2\n    log = l\nsecurity\n",
     "t.cfg:3: node 'A': key 'bus'", "binds 10.1.1.1 without CURVE"},
};

//  Names of a node's neighbours, space-separated, for checks.
static char *
s_test_neighbours (const herd_config_t *config, const char *name)
{
    const herd_node_t *node = herd_config_node (config, name);
    HERD_CHECK (node);
    char *names = strdup ("");
    for (size_t i = 0; i < node->neighbour_count; i++) {
        HERD_CHECK (node->neighbours[i] < config->node_count);
        char *longer = zsys_sprintf ("%s%s%s", names, i ? " " : "",
                                  config->nodes[node->neighbours[i]].name);
        free (names);
        names = longer;
    }
    return names;
}

//  Check one node's neighbours against an expected list.
static void
s_test_check_neighbours (const herd_config_t *config, const char *name, const char *expected)
{
    char *names = s_test_neighbours (config, name);
    HERD_CHECK_STR (names, expected);
    free (names);
}

//  Check that a load succeeded, showing the error if it did not.
static void
s_test_ok (const herd_config_t *config, const char *error)
{
    if (error)
        fprintf (stderr, "unexpected error: %s\n", error);
    HERD_CHECK (error == NULL);
    HERD_CHECK (config);
}

//  Write text to a fresh temporary file; returns its path (caller frees).
static char *
s_test_write (const char *text, size_t size)
{
    char *path = strdup ("/tmp/herd_config_test_XXXXXX");
    int fd = mkstemp (path);
    HERD_CHECK (fd >= 0);
    HERD_CHECK_INT (write (fd, text, size), (intmax_t) size);
    close (fd);
    return path;
}

//  Endpoints with host names are resolved for binding; numeric ones kept.
static void
s_test_resolve (void)
{
    char *resolved = herd_config_resolve_endpoint ("tcp://localhost:7");
    HERD_CHECK (resolved
                && (streq (resolved, "tcp://127.0.0.1:7") || streq (resolved, "tcp://[::1]:7")));
    free (resolved);
    HERD_CHECK (herd_config_resolve_endpoint ("tcp://127.0.0.1:7") == NULL);
    HERD_CHECK (herd_config_resolve_endpoint ("ipc://x") == NULL);

}

//  The default herd loads, with its topology and endpoints.
static void
s_test_default (void)
{
    char *error = NULL;
    herd_config_t *config = herd_config_load_string (S_TEST_DEFAULT, "herd.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->path, "herd.cfg");
    HERD_CHECK_STR (config->run_dir, "run");
    HERD_CHECK_STR (config->name, "herd");
    HERD_CHECK_INT (config->max_line, 1048576);
    HERD_CHECK_INT (config->max_output, 1048576);
    HERD_CHECK_INT (config->max_output_total, 268435456);
    HERD_CHECK_INT (config->max_time_ahead_s, 86400);
    HERD_CHECK_INT (config->ack_timeout_ms, 5000);
    HERD_CHECK (!config->fsync_always);
    HERD_CHECK_INT (config->max_pending, 64);
    HERD_CHECK_INT (config->max_clients, 10000);
    HERD_CHECK_INT (config->idle_timeout_ms, 300000);
    HERD_CHECK_INT (config->line_timeout_ms, 30000);
    HERD_CHECK_INT (config->log_requests_every, 1);
    HERD_CHECK_INT (config->log_level, 1);
    HERD_CHECK (!config->log_json);
    HERD_CHECK_INT (config->node_count, 5);
    const char *order[] = {"Hill", "Jaquez", "Smith", "Singleton", "Campbell"};
    for (size_t i = 0; i < 5; i++) {
        HERD_CHECK_STR (config->nodes[i].name, order[i]);
        HERD_CHECK (herd_config_node (config, order[i]) == &config->nodes[i]);
        HERD_CHECK_STR (config->nodes[i].client_host, "127.0.0.1");
        HERD_CHECK_INT (config->nodes[i].client_port, 12000 + (int) i);
    }
    const herd_node_t *hill = herd_config_node (config, "Hill");
    HERD_CHECK_STR (hill->client, "127.0.0.1:12000");
    HERD_CHECK_STR (hill->bus, "tcp://127.0.0.1:13000");
    HERD_CHECK_STR (hill->log, "logs/Hill.log");
    HERD_CHECK_STR (herd_config_node (config, "Campbell")->bus, "tcp://127.0.0.1:13004");
    HERD_CHECK (herd_config_node (config, "Nobody") == NULL);
    HERD_CHECK (herd_config_node (config, "hill") == NULL);
    HERD_CHECK (herd_config_node (NULL, "Hill") == NULL);
    s_test_check_neighbours (config, "Hill", "Jaquez Smith");
    s_test_check_neighbours (config, "Jaquez", "Hill Singleton");
    s_test_check_neighbours (config, "Smith", "Hill Singleton Campbell");
    s_test_check_neighbours (config, "Singleton", "Jaquez Smith Campbell");
    s_test_check_neighbours (config, "Campbell", "Singleton Smith");
    HERD_CHECK_STR (config->places.flavour, "legacy");
    HERD_CHECK_STR (config->places.url,
                    "https://maps.googleapis.com/maps/api/place/nearbysearch/json");
    HERD_CHECK_STR (config->places.key_env, "GOOGLE_API_KEY");
    HERD_CHECK_INT (config->places.timeout_ms, 3000);
    HERD_CHECK_INT (config->places.connect_timeout_ms, 1000);
    HERD_CHECK_INT (config->places.concurrency, 256);

    //  Endpoints
    char *endpoint = herd_config_endpoint (config, hill, "bus", false);
    HERD_CHECK_STR (endpoint, "inproc://herd-Hill-bus");
    free (endpoint);
    endpoint = herd_config_endpoint (config, hill, "places", true);
    HERD_CHECK_STR (endpoint, "ipc://run/Hill-places.ipc");
    free (endpoint);
    herd_config_destroy (&config);
    HERD_CHECK (config == NULL);
    herd_config_destroy (&config);

}

//  The log's keys and the herd's name.
static void
s_test_log_keys (void)
{
    char *error = NULL;
    herd_config_t *config = herd_config_load_string ("herd\n    log_requests = sample:5\n    log_level = warning\n"
                                      "    log_format = json\n" S_TEST_NODE_A, "t.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK_INT (config->log_requests_every, 5);
    HERD_CHECK_INT (config->log_level, 2);
    HERD_CHECK (config->log_json);
    herd_config_destroy (&config);
    config = herd_config_load_string ("herd\n    log_requests = off\n    log_level = debug\n"
                                      "    name = Prod-eu_1.b\n" S_TEST_NODE_A, "t.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->name, "Prod-eu_1.b");
    HERD_CHECK_INT (config->log_requests_every, 0);
    HERD_CHECK_INT (config->log_level, 0);
    herd_config_destroy (&config);

}

//  Defaults, quoting, trailing slashes, a node without edges, CRLF.
static void
s_test_minimal (void)
{
    char *error = NULL;
    const char *minimal = "herd\r\n"
                          "    run_dir = \"/var/run/herd/\"   # quoted\r\n"
                          "\t# a comment after a tab is fine for zconfig\r\n"
                          "node = Solo.1_x-y\r\n"
                          "    client = [::1]:8080\r\n"
                          "    bus = tcp://[::1]:8081\r\n"
                          "    log = 'logs/solo #1.log'\r\n"
                          "edges\r\n"
                          "places\r\n";
    herd_config_t *config = herd_config_load_string (minimal, "minimal.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->run_dir, "/var/run/herd");
    HERD_CHECK_INT (config->max_line, 1048576);
    HERD_CHECK_INT (config->node_count, 1);
    const herd_node_t *solo = &config->nodes[0];
    HERD_CHECK_STR (solo->name, "Solo.1_x-y");
    HERD_CHECK_STR (solo->client, "[::1]:8080");
    HERD_CHECK_STR (solo->client_host, "::1");
    HERD_CHECK_INT (solo->client_port, 8080);
    HERD_CHECK_STR (solo->bus, "tcp://[::1]:8081");
    HERD_CHECK_STR (solo->log, "logs/solo #1.log");
    HERD_CHECK_INT (solo->neighbour_count, 0);
    HERD_CHECK (solo->neighbours == NULL);
    HERD_CHECK_STR (config->places.flavour, "auto");
    HERD_CHECK_STR (config->places.url,
                    "https://maps.googleapis.com/maps/api/place/nearbysearch/json");
    HERD_CHECK_STR (config->places.key_env, "GOOGLE_API_KEY");
    HERD_CHECK_INT (config->places.timeout_ms, 3000);
    HERD_CHECK_INT (config->places.connect_timeout_ms, 1000);
    HERD_CHECK_INT (config->places.concurrency, 256);
    char *endpoint = herd_config_endpoint (config, solo, "bus", true);
    HERD_CHECK_STR (endpoint, "ipc:///var/run/herd/Solo.1_x-y-bus.ipc");
    free (endpoint);
    herd_config_destroy (&config);

}

//  Every option set, no herd section at all; the places flavours.
static void
s_test_places (void)
{
    char *error = NULL;
    herd_config_t *config = herd_config_load_string (S_TEST_NODE_A
                                      "places\n"
                                      "    flavour = legacy\n"
                                      "    url = http://127.0.0.1:9999/nearby\n"
                                      "    key_env = _MY_KEY2\n"
                                      "    timeout_ms = 600000\n"
                                      "    connect_timeout_ms = 1\n"
                                      "    concurrency = 10000\n",
                                      "t.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->run_dir, "run");
    HERD_CHECK_STR (config->places.url, "http://127.0.0.1:9999/nearby");
    HERD_CHECK_STR (config->places.key_env, "_MY_KEY2");
    HERD_CHECK_INT (config->places.timeout_ms, 600000);
    HERD_CHECK_INT (config->places.connect_timeout_ms, 1);
    HERD_CHECK_INT (config->places.concurrency, 10000);
    HERD_CHECK_INT (config->places.retries, 2);
    HERD_CHECK (!config->places.enterprise_fields);
    HERD_CHECK_INT (config->places.cache_ttl_ms, 0);
    HERD_CHECK_INT (config->places.cache_max, 10000);
    herd_config_destroy (&config);

    //  Places API (New): its own default URL, and the places options
    config = herd_config_load_string (S_TEST_NODE_A
                                      "places\n"
                                      "    flavour = new\n"
                                      "    retries = 0\n"
                                      "    enterprise_fields = true\n"
                                      "    cache_ttl_ms = 3600000\n"
                                      "    cache_max = 1\n",
                                      "t.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->places.flavour, "new");
    HERD_CHECK_STR (config->places.url, "https://places.googleapis.com/v1/places:searchNearby");
    HERD_CHECK_INT (config->places.retries, 0);
    HERD_CHECK (config->places.enterprise_fields);
    HERD_CHECK_INT (config->places.cache_ttl_ms, 3600000);
    HERD_CHECK_INT (config->places.cache_max, 1);
    herd_config_destroy (&config);
    config = herd_config_load_string (S_TEST_NODE_A
                                      "places\n"
                                      "    flavour = new\n"
                                      "    url = http://127.0.0.1:9/v1/places:searchNearby\n"
                                      "    enterprise_fields = false\n",
                                      "t.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->places.url, "http://127.0.0.1:9/v1/places:searchNearby");
    HERD_CHECK (!config->places.enterprise_fields);
    herd_config_destroy (&config);
    //  auto (the default, also when said): the legacy URL by default
    config = herd_config_load_string (S_TEST_NODE_A "places\n    flavour = auto\n", "t.cfg",
                                      &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->places.flavour, "auto");
    HERD_CHECK_STR (config->places.url,
                    "https://maps.googleapis.com/maps/api/place/nearbysearch/json");
    herd_config_destroy (&config);

}

//  The protected bus: loopback as written, or an explicit curve = off.
static void
s_test_protected (void)
{
    char *error = NULL;
    HERD_CHECK (herd_config_is_loopback ("127.0.0.1"));
    HERD_CHECK (herd_config_is_loopback ("127.255.0.9"));
    HERD_CHECK (herd_config_is_loopback ("::1"));
    HERD_CHECK (herd_config_is_loopback ("::ffff:127.0.0.1"));
    HERD_CHECK (herd_config_is_loopback ("localhost"));
    HERD_CHECK (herd_config_is_loopback ("LocalHost"));
    HERD_CHECK (!herd_config_is_loopback ("128.0.0.1"));
    HERD_CHECK (!herd_config_is_loopback ("10.0.0.1"));
    HERD_CHECK (!herd_config_is_loopback ("0.0.0.0"));
    HERD_CHECK (!herd_config_is_loopback ("::"));
    HERD_CHECK (!herd_config_is_loopback ("*"));
    HERD_CHECK (!herd_config_is_loopback ("lo"));
    HERD_CHECK (!herd_config_is_loopback ("eth0"));
    HERD_CHECK (!herd_config_is_loopback ("localhost.example"));
    herd_config_t *config = herd_config_load_string ("node = A\n    client = 10.0.0.1:1\n"
                                      "    bus = tcp://127.3.2.1:2\n    sync = tcp://localhost:3\n"
                                      "    monitor = tcp://10.0.0.1:4\n    log = l\n"
                                      "node = B\n    client = 10.0.0.2:1\n"
                                      "    bus = tcp://[::1]:5\n    log = m\n",
                                      "t.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK (!config->curve && !config->curve_said);
    herd_config_destroy (&config);
    const char *open_bus = "node = A\n    client = 10.0.0.1:1\n    bus = tcp://10.0.0.1:2\n"
                           "    sync = tcp://10.0.0.1:3\n    log = l\n"
                           "security\n    curve = off\n";
    config = herd_config_load_string (open_bus, "t.cfg", &error);
    s_test_ok (config, error);
    HERD_CHECK (!config->curve && config->curve_said);
    herd_config_destroy (&config);
    //  Without its security checks (keygen --all): neither the protected
    //  bus nor the certificates are looked at
    const char *unmade = "node = A\n    client = 10.0.0.1:1\n    bus = tcp://10.0.0.1:2\n"
                        "    log = l\n    cert = /nonexistent-herd-dir/A.cert\n"
                        "security\n    curve = on\n";
    char *path = s_test_write (unmade, strlen (unmade));
    config = herd_config_load (path, &error);
    HERD_CHECK (config == NULL);
    HERD_CHECK_CONTAINS (error, "cannot load a certificate from '/nonexistent-herd-dir/A.cert'");
    free (error);
    config = herd_config_load_without_security (path, &error);
    s_test_ok (config, error);
    HERD_CHECK (config->curve && config->curve_said);
    HERD_CHECK_STR (config->nodes[0].cert, "/nonexistent-herd-dir/A.cert");
    herd_config_destroy (&config);
    unlink (path);
    free (path);

}

//  Every error case of the table, and failures that leak nothing.
static void
s_test_errors_all (bool verbose)
{
    char *error = NULL;
    herd_config_t *config;
    size_t cases = sizeof (s_test_errors) / sizeof (s_test_errors[0]);
    for (size_t i = 0; i < cases; i++) {
        const s_test_case_t *test = &s_test_errors[i];
        config = herd_config_load_string (test->text, "t.cfg", &error);
        if (verbose)
            printf ("   %s\n", error ? error : "(no error)");
        if (config)
            fprintf (stderr, "case %zu loaded, expected \"%s\"\n", i, test->expect);
        HERD_CHECK (config == NULL);
        HERD_CHECK_CONTAINS (error, test->expect);
        HERD_CHECK_CONTAINS (error, test->also);
        free (error);
    }
    //  A failure without error_p leaks nothing
    HERD_CHECK (herd_config_load_string ("bad\n", "t.cfg", NULL) == NULL);
    HERD_CHECK (herd_config_load_string ("", "t.cfg", NULL) == NULL);

}

//  A long line, and loads from files: the path as given appears in
//  config and messages.
static void
s_test_files (void)
{
    char *error = NULL;
    herd_config_t *config;
    const char *long_head = S_TEST_NODE_A "places\n    url = http://x/";
    size_t used = strlen (long_head);
    char *long_text = (char *) zmalloc (used + HERD_CONFIG_SCAN_LINE_MAX + 2);
    memcpy (long_text, long_head, used);
    memset (long_text + used, 'a', HERD_CONFIG_SCAN_LINE_MAX);
    long_text[used + HERD_CONFIG_SCAN_LINE_MAX] = '\n';
    config = herd_config_load_string (long_text, "t.cfg", &error);
    HERD_CHECK (config == NULL);
    HERD_CHECK_CONTAINS (error, "t.cfg:6: line is ");
    HERD_CHECK_CONTAINS (error, "zconfig reads at most 1024 a line");
    free (error);
    free (long_text);

    char *path = s_test_write (S_TEST_DEFAULT, strlen (S_TEST_DEFAULT));
    config = herd_config_load (path, &error);
    s_test_ok (config, error);
    HERD_CHECK_STR (config->path, path);
    HERD_CHECK_INT (config->node_count, 5);
    herd_config_destroy (&config);
    unlink (path);
    free (path);

    const char *bad = S_TEST_NODE_A "node = B\n    client = h:3\n    bus = tcp://h:4\n";
    path = s_test_write (bad, strlen (bad));
    config = herd_config_load (path, &error);
    HERD_CHECK (config == NULL);
    char *expected = zsys_sprintf ("%s:5: node 'B': missing key 'log'", path);
    HERD_CHECK_CONTAINS (error, expected);
    free (expected);
    free (error);
    unlink (path);
    free (path);

    const char nul_text[] = "herd\n    run_dir = a\0b\n";
    path = s_test_write (nul_text, sizeof (nul_text) - 1);
    config = herd_config_load (path, &error);
    HERD_CHECK (config == NULL);
    expected = zsys_sprintf ("%s:2: the file contains a NUL byte", path);
    HERD_CHECK_CONTAINS (error, expected);
    free (expected);
    free (error);
    unlink (path);
    free (path);

    const char *missing = "/nonexistent-herd-dir/herd.cfg";
    config = herd_config_load (missing, &error);
    HERD_CHECK (config == NULL);
    HERD_CHECK_CONTAINS (error, "/nonexistent-herd-dir/herd.cfg: cannot open: ");
    HERD_CHECK_CONTAINS (error, strerror (ENOENT));
    free (error);
    HERD_CHECK (herd_config_load (missing, NULL) == NULL);

    config = herd_config_load ("/tmp", &error);
    HERD_CHECK (config == NULL);
    HERD_CHECK_CONTAINS (error, "/tmp: ");
    HERD_CHECK_CONTAINS (error, strerror (EISDIR));
    free (error);

}

//  The repository's herd.cfg, when run from the repository root.
static void
s_test_repository (bool verbose)
{
    char *error = NULL;
    herd_config_t *config;
    if (access ("herd.cfg", R_OK) == 0) {
        config = herd_config_load ("herd.cfg", &error);
        s_test_ok (config, error);
        HERD_CHECK (config->node_count >= 1);
        if (verbose)
            printf ("   herd.cfg: %zu nodes\n", config->node_count);
        herd_config_destroy (&config);
    }
}

void
herd_config_test (bool verbose)
{
    printf (" * herd_config: ");
    if (verbose)
        printf ("\n");
    s_test_resolve ();
    s_test_default ();
    s_test_log_keys ();
    s_test_minimal ();
    s_test_places ();
    s_test_protected ();
    s_test_errors_all (verbose);
    s_test_files ();
    s_test_repository (verbose);
    printf ("OK\n");
}
