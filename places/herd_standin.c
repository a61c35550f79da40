//  herd_standin.c - tests/places_standin.py, driven from a C self-test.
//
//  Test code: linked into herd_selftest only (Makefile, TESTSRC).

#include "herd_standin.h"
#include "herd_google.h"
#include "../common/herd_check.h"

#include <czmq.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_STANDIN_SCRIPT "tests/places_standin.py"

struct _herd_standin_t {
    pid_t pid;
    char *base;                 //  http://127.0.0.1:PORT
    char *legacy_url;           //  base + the legacy path
    char *new_url;              //  base + the New path
    char directory[64];         //  holds the port file
};

//  The stand-in script's path. Caller frees.
static char *
s_standin_script (void)
{
    const char *env = getenv ("HERD_STANDIN");
    if (env && *env)
        return strdup (env);
    if (access (S_STANDIN_SCRIPT, R_OK) == 0)
        return strdup (S_STANDIN_SCRIPT);
    char exe[4096];
    ssize_t size = readlink ("/proc/self/exe", exe, sizeof (exe) - 1);
    HERD_CHECK (size > 0);
    exe[size] = 0;
    //  build/MODE/bin/herd_selftest: the repository is three folders up
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr (exe, '/');
        HERD_CHECK (slash);
        *slash = 0;
    }
    return zsys_sprintf ("%s/%s", exe, S_STANDIN_SCRIPT);
}

//  Start the stand-in on a free port and wait (10 s at most) for its port.
herd_standin_t *
herd_standin_new (void)
{
    herd_standin_t *self = (herd_standin_t *) zmalloc (sizeof (herd_standin_t));
    assert (self);
    snprintf (self->directory, sizeof (self->directory), "/tmp/herd-standin-XXXXXX");
    HERD_CHECK (mkdtemp (self->directory));
    char *port_file = zsys_sprintf ("%s/port", self->directory);
    char *script = s_standin_script ();
    const char *python = getenv ("HERD_PYTHON") ? getenv ("HERD_PYTHON") : "/usr/bin/python3";
    char *argv[] = {(char *) python, script, "--port", "0", "--port-file", port_file, NULL};
    pid_t parent = getpid ();
    self->pid = fork ();
    HERD_CHECK (self->pid >= 0);
    if (self->pid == 0) {
        //  Only system calls from here: the parent has threads
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (1);
        int null = open ("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2 (null, STDOUT_FILENO);
        execv (python, argv);
        _exit (127);
    }
    int port = 0;
    for (int tries = 0; tries < 1000 && port == 0; tries++) {
        FILE *file = fopen (port_file, "r");
        if (!file || fscanf (file, "%d", &port) != 1)
            zclock_sleep (10);
        if (file)
            fclose (file);
        HERD_CHECK (waitpid (self->pid, NULL, WNOHANG) == 0);
    }
    HERD_CHECK (port > 0);
    unlink (port_file);
    zstr_free (&port_file);
    zstr_free (&script);
    self->base = zsys_sprintf ("http://127.0.0.1:%d", port);
    self->legacy_url = zsys_sprintf ("%s" HERD_GOOGLE_LEGACY_PATH, self->base);
    self->new_url = zsys_sprintf ("%s" HERD_GOOGLE_NEW_PATH, self->base);
    return self;
}

//  Stop the stand-in (SIGTERM, it ends at once) and wait for it.
void
herd_standin_destroy (herd_standin_t **self_p)
{
    herd_standin_t *self = *self_p;
    HERD_CHECK_INT (kill (self->pid, SIGTERM), 0);
    HERD_CHECK_INT (waitpid (self->pid, NULL, 0), self->pid);
    rmdir (self->directory);
    zstr_free (&self->base);
    zstr_free (&self->legacy_url);
    zstr_free (&self->new_url);
    free (self);
    *self_p = NULL;
}

//  curl's write callback for s_standin_get: append to a zchunk.
static size_t
s_standin_write (char *data, size_t size, size_t count, void *userp)
{
    zchunk_extend ((zchunk_t *) userp, data, size * count);
    return size * count;
}

//  GET a control path (/_standin/...), check it says 200, return its JSON.
cJSON *
herd_standin_get (herd_standin_t *self, const char *path)
{
    char *url = zsys_sprintf ("%s%s", self->base, path);
    zchunk_t *chunk = zchunk_new (NULL, 0);
    CURL *easy = curl_easy_init ();
    HERD_CHECK (easy && chunk && url);
    curl_easy_setopt (easy, CURLOPT_URL, url);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_standin_write);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, (void *) chunk);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    HERD_CHECK_INT (curl_easy_perform (easy), CURLE_OK);
    long http = 0;
    curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &http);
    HERD_CHECK_INT (http, 200);
    cJSON *root = cJSON_ParseWithLength ((const char *) zchunk_data (chunk), zchunk_size (chunk));
    HERD_CHECK (root);
    curl_easy_cleanup (easy);
    zchunk_destroy (&chunk);
    zstr_free (&url);
    return root;
}

//  Set a mode: query as /_standin/mode takes it ("mode=hang&lat=2").
void
herd_standin_mode (herd_standin_t *self, const char *query)
{
    char *path = zsys_sprintf ("/_standin/mode?%s", query);
    cJSON_Delete (herd_standin_get (self, path));
    zstr_free (&path);
}

//  Forget modes and counters between tests.
void
herd_standin_reset (herd_standin_t *self)
{
    cJSON_Delete (herd_standin_get (self, "/_standin/reset"));
}

//  A count from the stand-in: "requests" (its stats) or "connections".
int
herd_standin_count (herd_standin_t *self, const char *name)
{
    cJSON *stats = herd_standin_get (self, streq (name, "connections") ? "/_standin/connections"
                                                                     : "/_standin/stats");
    int count = (int) cJSON_GetNumberValue (cJSON_GetObjectItem (stats, name));
    cJSON_Delete (stats);
    return count;
}

//  A string from the stand-in's stats: a top-level one, or one of an object
//  member ("last_query", "location"). Caller frees; NULL if absent.
char *
herd_standin_stat (herd_standin_t *self, const char *object, const char *name)
{
    cJSON *stats = herd_standin_get (self, "/_standin/stats");
    cJSON *parent = object ? cJSON_GetObjectItem (stats, object) : stats;
    const char *text = cJSON_GetStringValue (cJSON_GetObjectItem (parent, name));
    char *copy = text ? strdup (text) : NULL;
    cJSON_Delete (stats);
    return copy;
}

const char *
herd_standin_legacy_url (herd_standin_t *self)
{
    return self->legacy_url;
}

const char *
herd_standin_new_url (herd_standin_t *self)
{
    return self->new_url;
}

//  --------------------------------------------------------------------------
//  Self test: the control paths answer, a mode and a reset show in the stats

void
herd_standin_test (bool verbose)
{
    printf (" * herd_standin: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    herd_standin_t *standin = herd_standin_new ();
    HERD_CHECK_CONTAINS (herd_standin_legacy_url (standin), HERD_GOOGLE_LEGACY_PATH);
    HERD_CHECK_CONTAINS (herd_standin_new_url (standin), HERD_GOOGLE_NEW_PATH);
    HERD_CHECK_INT (herd_standin_count (standin, "requests"), 0);
    herd_standin_mode (standin, "mode=zero");
    char *mode = herd_standin_stat (standin, NULL, "mode");
    if (verbose)
        printf ("   mode after mode=zero: %s\n", mode ? mode : "(none)");
    zstr_free (&mode);
    herd_standin_reset (standin);
    HERD_CHECK (herd_standin_stat (standin, NULL, "no such stat") == NULL);
    HERD_CHECK (herd_standin_stat (standin, "last_query", "location") == NULL);
    herd_standin_destroy (&standin);
    HERD_CHECK (standin == NULL);
    //  @end

    printf ("OK\n");
}
