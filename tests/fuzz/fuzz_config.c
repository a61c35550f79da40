//  fuzz_config.c - libFuzzer target: the config loader (herd.cfg, ZPL).
//
//  The input is the text of a config file (cut at its first NUL, as
//  herd_config_load refuses a file with one). A load either fails with a
//  message naming the file, or succeeds with a config that keeps every
//  promise the node relies on: at least one node; node names unique, valid
//  and found by herd_config_node; client and bus addresses unique and
//  parsed; sync endpoints tcp:// and unique; neighbours in range, never the
//  node itself, never twice, and symmetric; every endpoint computable and an
//  ipc path that fits a Unix socket; option values in their documented
//  ranges.

#include "../../common/herd_config.h"

#include <czmq.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define S_ORACLE(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf (stderr, "fuzz_config: oracle failed at line %d: %s\n", __LINE__,   \
                     #cond);                                                            \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

#define S_NAME "fuzz.cfg"
#define S_IPC_PATH_MAX (sizeof (((struct sockaddr_un *) 0)->sun_path) - 1)

//  zconfig prints its own complaints to stdout; keep the fuzzer's output
//  (stderr) readable.
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    if (!freopen ("/dev/null", "w", stdout))
        perror ("freopen");
    return 0;
}

//  True if text is a valid node name, [A-Za-z0-9_.-]+.
static bool
s_is_node_name (const char *text)
{
    if (!*text)
        return false;
    for (; *text; text++)
        if (!((*text >= 'A' && *text <= 'Z') || (*text >= 'a' && *text <= 'z')
              || (*text >= '0' && *text <= '9') || strchr ("_.-", *text)))
            return false;
    return true;
}

//  Check an endpoint for node and role.
static void
s_check_endpoint (const herd_config_t *config, const herd_node_t *node, const char *role,
                  bool split)
{
    char *endpoint = herd_config_endpoint (config, node, role, split);
    S_ORACLE (endpoint);
    char *expected = split ? zsys_sprintf ("ipc://%s/%s-%s.ipc", config->run_dir, node->name,
                                           role)
                           : zsys_sprintf ("inproc://herd-%s-%s", node->name, role);
    S_ORACLE (expected && strcmp (endpoint, expected) == 0);
    if (split)
        S_ORACLE (strlen (endpoint) - strlen ("ipc://") <= S_IPC_PATH_MAX);
    zstr_free (&expected);
    zstr_free (&endpoint);
}

//  Check every invariant of a loaded config.
static void
s_check_config (const herd_config_t *config)
{
    S_ORACLE (config->path && strcmp (config->path, S_NAME) == 0);
    S_ORACLE (config->run_dir && *config->run_dir);
    size_t run_dir_size = strlen (config->run_dir);
    S_ORACLE (run_dir_size == 1 || config->run_dir[run_dir_size - 1] != '/');
    S_ORACLE (config->max_line >= 64 && config->max_line <= HERD_CONFIG_MAX_LINE);
    S_ORACLE (config->node_count >= 1 && config->nodes);
    for (size_t i = 0; i < config->node_count; i++) {
        const herd_node_t *node = &config->nodes[i];
        S_ORACLE (node->name && s_is_node_name (node->name));
        S_ORACLE (herd_config_node (config, node->name) == node);
        S_ORACLE (node->client && node->client_host && *node->client_host);
        S_ORACLE (node->client_port >= 1 && node->client_port <= 65535);
        S_ORACLE (node->bus && strncmp (node->bus, "tcp://", 6) == 0);
        S_ORACLE (node->log && *node->log);
        S_ORACLE (!node->sync || strncmp (node->sync, "tcp://", 6) == 0);
        S_ORACLE (!node->sync || strcmp (node->sync, node->bus) != 0);
        S_ORACLE (!node->data || *node->data);
        for (size_t j = 0; j < i; j++) {
            const herd_node_t *other = &config->nodes[j];
            S_ORACLE (strcmp (node->name, other->name) != 0);
            S_ORACLE (strcmp (node->bus, other->bus) != 0);
            S_ORACLE (strcmp (node->log, other->log) != 0);
            S_ORACLE (!node->sync || !other->sync || strcmp (node->sync, other->sync) != 0);
            S_ORACLE (!(strcmp (node->client_host, other->client_host) == 0
                        && node->client_port == other->client_port));
        }
        //  Neighbours: in range, not itself, no duplicates, symmetric
        S_ORACLE ((node->neighbour_count == 0) == (node->neighbours == NULL));
        for (size_t k = 0; k < node->neighbour_count; k++) {
            size_t n = node->neighbours[k];
            S_ORACLE (n < config->node_count && n != i);
            for (size_t l = 0; l < k; l++)
                S_ORACLE (node->neighbours[l] != n);
            const herd_node_t *peer = &config->nodes[n];
            size_t back = 0;
            for (size_t l = 0; l < peer->neighbour_count; l++)
                back += peer->neighbours[l] == i;
            S_ORACLE (back == 1);
        }
        s_check_endpoint (config, node, "bus", false);
        s_check_endpoint (config, node, "bus", true);
        s_check_endpoint (config, node, "places", false);
        s_check_endpoint (config, node, "places", true);
    }
    const herd_places_options_t *places = &config->places;
    S_ORACLE (places->flavour && places->url && places->key_env);
    S_ORACLE (strcmp (places->flavour, "auto") == 0 || strcmp (places->flavour, "legacy") == 0
              || strcmp (places->flavour, "new") == 0);
    S_ORACLE (places->retries >= 0 && places->retries <= 10);
    S_ORACLE (places->cache_ttl_ms >= 0 && places->cache_ttl_ms <= 3600000);
    S_ORACLE (places->cache_max >= 1 && places->cache_max <= 1000000);
    S_ORACLE (strncmp (places->url, "http://", 7) == 0
              || strncmp (places->url, "https://", 8) == 0);
    S_ORACLE (places->timeout_ms >= 1 && places->timeout_ms <= 600000);
    S_ORACLE (places->connect_timeout_ms >= 1 && places->connect_timeout_ms <= 600000);
    S_ORACLE (places->concurrency >= 1 && places->concurrency <= 10000);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  An exact-size, NUL-terminated copy: ASan sees reads past the end
    char *text = malloc (size + 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    text[size] = 0;

    char *error = NULL;
    herd_config_t *config = herd_config_load_string (text, S_NAME, &error);
    bool loaded = config != NULL;
    if (config) {
        S_ORACLE (error == NULL);
        s_check_config (config);
        herd_config_destroy (&config);
        S_ORACLE (config == NULL);
    }
    else {
        //  Every failure says why, naming the file
        S_ORACLE (error && strncmp (error, S_NAME ":", strlen (S_NAME ":")) == 0);
        S_ORACLE (strlen (error) > strlen (S_NAME ":"));
        free (error);
    }
    //  Without error_p: same verdict, nothing leaks
    config = herd_config_load_string (text, S_NAME, NULL);
    S_ORACLE ((config != NULL) == loaded);
    herd_config_destroy (&config);
    free (text);
    return 0;
}
