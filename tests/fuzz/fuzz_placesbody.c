//  fuzz_placesbody.c - libFuzzer target: shaping untrusted Places HTTP bodies.
//
//  The first byte picks the bound (-2..21, so out-of-range bounds are tried
//  too), the rest is the HTTP body. When herd_placesbody_shape returns a
//  body it must be a JSON object per cJSON, hold no "\n\n", neither start nor
//  end with '\n', keep the same "status", have every top-level "results"
//  array cut to the bound and report the kept count of the first one, and be
//  a fixed point (but for a '\r' left before a '\n'). A body it refuses
//  must be one cJSON refuses too, or one of the cases where cJSON is laxer
//  than RFC 8259. The rest also goes to herd_placesnew_to_legacy as a
//  Places API (New) answer (its legacy body: valid JSON, at most bound
//  results, a matching status) and to herd_placesbody_error as a message,
//  whose body must be valid JSON that the shaper leaves as it is.

#include "../../places/herd_placesbody.h"
#include "../../places/herd_placesnew.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ORACLE(cond)                                                                  \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf (stderr, "fuzz_placesbody: oracle failed at line %d: %s\n",         \
                     __LINE__, #cond);                                                  \
            abort ();                                                                   \
        }                                                                               \
    } while (0)

//  Size of the first top-level "results" member that is an array, or -1.
static int
s_first_results (const cJSON *root)
{
    for (const cJSON *item = root->child; item; item = item->next)
        if (item->string && strcmp (item->string, "results") == 0 && cJSON_IsArray (item))
            return cJSON_GetArraySize (item);
    return -1;
}

//  The top-level "status" string of root, or NULL.
static const char *
s_status (const cJSON *root)
{
    const cJSON *status = cJSON_GetObjectItemCaseSensitive (root, "status");
    return cJSON_IsString (status) ? status->valuestring : NULL;
}

//  Check a shaped body against the input it came from.
static void
s_check_shaped (const char *body, size_t size, int bound, const char *shaped,
                const char *status, int results)
{
    int limit = bound < 0 ? 0 : bound;
    size_t shaped_size = strlen (shaped);
    S_ORACLE (shaped_size > 0);
    S_ORACLE (strstr (shaped, "\n\n") == NULL);
    S_ORACLE (shaped[0] != '\n' && shaped[shaped_size - 1] != '\n');
    S_ORACLE (results >= 0 && results <= limit);

    cJSON *input = cJSON_ParseWithLength (body, size);
    cJSON *output = cJSON_ParseWithLength (shaped, shaped_size);
    S_ORACLE (cJSON_IsObject (input));
    S_ORACLE (cJSON_IsObject (output));
    //  The same status as Google sent
    const char *in_status = s_status (input);
    const char *out_status = s_status (output);
    S_ORACLE ((status == NULL) == (in_status == NULL));
    S_ORACLE ((out_status == NULL) == (in_status == NULL));
    if (status) {
        S_ORACLE (strcmp (status, in_status) == 0);
        S_ORACLE (strcmp (out_status, in_status) == 0);
    }
    //  Every top-level results array within the bound; the count is the
    //  first one's, which held min(its size, bound) before
    for (const cJSON *item = output->child; item; item = item->next)
        if (item->string && strcmp (item->string, "results") == 0 && cJSON_IsArray (item))
            S_ORACLE (cJSON_GetArraySize (item) <= limit);
    int in_first = s_first_results (input);
    int out_first = s_first_results (output);
    S_ORACLE (results == (out_first < 0 ? 0 : out_first));
    S_ORACLE (results == (in_first < 0 ? 0 : in_first < limit ? in_first : limit));
    //  Same members otherwise: as many top-level keys
    S_ORACLE (cJSON_GetArraySize (input) == cJSON_GetArraySize (output));
    cJSON_Delete (input);
    cJSON_Delete (output);

    //  Shaping again changes nothing, except that each line loses one more
    //  '\r' before its '\n' (only one is taken as CRLF: "x\r\r\n" gives
    //  "x\r\n", still no empty line, also for readers that split on \r\n)
    S_ORACLE (strstr (shaped, "\n\r\n") == NULL);
    char *expected = malloc (shaped_size + 1);
    S_ORACLE (expected);
    size_t expected_size = 0;
    for (size_t i = 0; i < shaped_size; i++)
        if (!(shaped[i] == '\r' && shaped[i + 1] == '\n'))
            expected[expected_size++] = shaped[i];
    expected[expected_size] = 0;
    char *status_again = NULL;
    int results_again = -1;
    char *again = herd_placesbody_shape (shaped, shaped_size, bound, &status_again,
                                         &results_again);
    S_ORACLE (again && strcmp (again, expected) == 0);
    free (expected);
    S_ORACLE (results_again == results);
    S_ORACLE ((status_again == NULL) == (status == NULL));
    S_ORACLE (!status || strcmp (status_again, status) == 0);
    free (again);
    free (status_again);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int bound = (int) (data[0] % 24) - 2;
    size_t body_size = size - 1;
    //  An exact-size copy: ASan sees reads past the end
    char *body = malloc (body_size ? body_size : 1);
    if (!body)
        return 0;
    memcpy (body, data + 1, body_size);

    char *status = NULL;
    int results = -1;
    char *shaped = herd_placesbody_shape (body, body_size, bound, &status, &results);
    if (shaped)
        s_check_shaped (body, body_size, bound, shaped, status, results);
    else {
        S_ORACLE (status == NULL && results == 0);
        //  A false refusal: one JSON object (trailing white space only) of
        //  printable bytes. cJSON is laxer than RFC 8259 in two ways the
        //  shaper is not, on purpose: raw control bytes (even \t \n \r)
        //  inside strings, and "\u" escapes without 4 hex digits (cJSON
        //  reads them as U+0000). Bodies with either are left out.
        bool lax = false;
        for (size_t i = 0; i < body_size; i++) {
            lax |= (unsigned char) body[i] < 0x20;
            if (body[i] == '\\' && i + 1 < body_size && body[i + 1] == 'u')
                for (size_t k = i + 2; k < i + 6; k++)
                    lax |= k >= body_size || !strchr ("0123456789abcdefABCDEF", body[k])
                           || body[k] == 0;
        }
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts (body, body_size, &end, false);
        bool trailing = false;
        for (const char *scan = end; root && scan < body + body_size; scan++)
            trailing |= *scan != ' ';
        if (cJSON_IsObject (root) && !lax && !trailing) {
            fprintf (stderr, "fuzz_placesbody: a JSON object was refused\n");
            abort ();
        }
        cJSON_Delete (root);
    }
    free (shaped);
    free (status);

    //  The same bytes as a Places API (New) answer: the legacy body made of
    //  it is valid JSON, at most bound results, status OK or ZERO_RESULTS
    //  to match, and the shaper (which the gateway's answer goes through)
    //  takes it with the same count
    int count = -1;
    char *legacy = herd_placesnew_to_legacy (body, body_size, bound, &count);
    if (legacy) {
        int limit = bound < 0 ? 0 : bound;
        size_t legacy_size = strlen (legacy);
        S_ORACLE (count >= 0 && count <= limit);
        S_ORACLE (legacy_size > 0 && strstr (legacy, "\n\n") == NULL);
        S_ORACLE (legacy[legacy_size - 1] != '\n');
        cJSON *root = cJSON_Parse (legacy);
        S_ORACLE (cJSON_IsObject (root));
        const cJSON *results = cJSON_GetObjectItemCaseSensitive (root, "results");
        S_ORACLE (cJSON_IsArray (results) && cJSON_GetArraySize (results) == count);
        const char *legacy_status = s_status (root);
        S_ORACLE (legacy_status
                  && strcmp (legacy_status, count ? "OK" : "ZERO_RESULTS") == 0);
        cJSON_Delete (root);
        int shaped_count = -1;
        char *again = herd_placesbody_shape (legacy, legacy_size, bound, NULL, &shaped_count);
        S_ORACLE (again && shaped_count == count);
        free (again);
        free (legacy);
    }
    else
        S_ORACLE (count == 0);

    //  The same bytes as an error message and status
    char *text = malloc (body_size + 1);
    if (text) {
        memcpy (text, body, body_size);
        text[body_size] = 0;
        char *error = herd_placesbody_error (text, text);
        S_ORACLE (error);
        cJSON *root = cJSON_Parse (error);
        S_ORACLE (cJSON_IsObject (root));
        S_ORACLE (cJSON_IsString (cJSON_GetObjectItemCaseSensitive (root, "status")));
        S_ORACLE (cJSON_IsString (cJSON_GetObjectItemCaseSensitive (root, "error_message")));
        S_ORACLE (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (root, "results")) == 0);
        cJSON_Delete (root);
        char *shaped_error = herd_placesbody_shape (error, strlen (error), bound, NULL, NULL);
        S_ORACLE (shaped_error && strcmp (shaped_error, error) == 0);
        free (shaped_error);
        free (error);
        free (text);
    }
    free (body);
    return 0;
}
