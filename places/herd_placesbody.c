//  herd_placesbody.c - shaping a Places JSON body for a WHATSAT answer.
//
//  The body is validated twice: by cJSON (the whole document) and by a tiny
//  lexer of our own that walks the original bytes (strings with escapes,
//  nesting depth). The lexer finds the top-level "results" array and the
//  byte ranges to drop; nothing is re-serialised, so Google's layout, number
//  spellings and escapes reach the client byte for byte.

#include "herd_placesbody.h"
#include "../common/herd_check.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The lexer: a read cursor over the original bytes.
typedef struct {
    const char *data;
    size_t size;
    size_t pos;
} s_lexer_t;

//  The output being built: the body minus the ranges the cut drops.
typedef struct {
    char *data;
    size_t size;
    size_t copied;              //  body bytes before this are handled
} s_output_t;

//  JSON white space (RFC 8259): nothing else may sit between tokens.
static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

//  White space inside one line, for the blank-line test.
static bool
s_is_blank (char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int
s_hex_value (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  The byte at the cursor, or -1 at the end.
static int
s_lexer_peek (const s_lexer_t *self)
{
    return self->pos < self->size ? (unsigned char) self->data[self->pos] : -1;
}

static void
s_lexer_skip_space (s_lexer_t *self)
{
    while (self->pos < self->size && s_is_space (self->data[self->pos]))
        self->pos++;
}

//  Skip the string whose opening quote is at the cursor. Checks escapes and
//  refuses raw control bytes, as RFC 8259 does. 0 or -1 if not a string.
static int
s_lexer_skip_string (s_lexer_t *self)
{
    size_t pos = self->pos + 1;
    while (pos < self->size) {
        unsigned char c = (unsigned char) self->data[pos];
        if (c == '"') {
            self->pos = pos + 1;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (pos + 1 >= self->size)
                return -1;
            char escape = self->data[pos + 1];
            if (escape == 'u') {
                if (pos + 5 >= self->size)
                    return -1;
                for (size_t i = 2; i < 6; i++)
                    if (s_hex_value (self->data[pos + i]) < 0)
                        return -1;
                pos += 6;
            }
            else
            if (escape != 0 && strchr ("\"\\/bfnrt", escape))
                pos += 2;
            else
                return -1;
        }
        else
            pos++;
    }
    return -1;
}

//  Skip one value of any kind at the cursor. Containers are walked without
//  recursion, counting depth and stepping over strings so that brackets
//  inside strings are not counted; cJSON has already checked the grammar.
static int
s_lexer_skip_value (s_lexer_t *self)
{
    int c = s_lexer_peek (self);
    if (c == '"')
        return s_lexer_skip_string (self);
    if (c == '{' || c == '[') {
        size_t depth = 0;
        while (self->pos < self->size) {
            c = (unsigned char) self->data[self->pos];
            if (c == '"') {
                if (s_lexer_skip_string (self))
                    return -1;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else
            if (c == '}' || c == ']') {
                if (depth == 0)
                    return -1;
                depth--;
                if (depth == 0) {
                    self->pos++;
                    return 0;
                }
            }
            self->pos++;
        }
        return -1;
    }
    //  A number or a literal (true, false, null)
    size_t start = self->pos;
    while (self->pos < self->size) {
        char b = self->data[self->pos];
        if ((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
            || b == '+' || b == '-' || b == '.')
            self->pos++;
        else
            break;
    }
    return self->pos > start ? 0 : -1;
}

//  True if the raw bytes of a key (between its quotes, escapes not yet
//  decoded) spell name; so "r\u0065sults" is "results", as for cJSON.
static bool
s_key_is (const char *raw, size_t size, const char *name)
{
    size_t i = 0;
    for (; *name; name++) {
        if (i >= size)
            return false;
        unsigned int c = (unsigned char) raw[i];
        if (c == '\\' && i + 1 < size) {
            char escape = raw[i + 1];
            if (escape == 'u' && i + 5 < size) {
                c = 0;
                for (size_t k = 2; k < 6; k++)
                    c = c * 16 + (unsigned int) s_hex_value (raw[i + k]);
                i += 6;
            }
            else {
                switch (escape) {
                    case 'b': c = '\b'; break;
                    case 'f': c = '\f'; break;
                    case 'n': c = '\n'; break;
                    case 'r': c = '\r'; break;
                    case 't': c = '\t'; break;
                    default:  c = (unsigned char) escape; break;
                }
                i += 2;
            }
        }
        else
            i++;
        if (c != (unsigned char) *name)
            return false;
    }
    //  cJSON keys are C strings, cut at an escaped NUL: "results\u0000x"
    //  is "results" to cJSON (and to clients reading with it)
    return i == size || (size - i >= 6 && memcmp (raw + i, "\\u0000", 6) == 0);
}

//  Copy the body up to start into the output and skip it up to end.
static void
s_output_drop (s_output_t *self, const char *body, size_t start, size_t end)
{
    memcpy (self->data + self->size, body + self->copied, start - self->copied);
    self->size += start - self->copied;
    self->copied = end;
}

//  Cut the array at the cursor to bound elements: keep the first ones byte
//  for byte, drop the others with the comma before them, keep the white
//  space before the closing bracket. An array cut to nothing becomes "[]",
//  as Google prints an empty list. Sets *kept_p; 0 or -1 if malformed.
static int
s_lexer_cut_array (s_lexer_t *self, s_output_t *output, int bound, int *kept_p)
{
    size_t open = self->pos++;
    size_t kept_end = 0;        //  end of the last element kept
    size_t last_end = 0;        //  end of the last element
    size_t close = 0;
    int count = 0;
    s_lexer_skip_space (self);
    if (s_lexer_peek (self) == ']')
        close = self->pos++;
    else
        while (true) {
            if (s_lexer_skip_value (self))
                return -1;
            count++;
            if (count <= bound)
                kept_end = self->pos;
            last_end = self->pos;
            s_lexer_skip_space (self);
            int c = s_lexer_peek (self);
            if (c == ',') {
                self->pos++;
                s_lexer_skip_space (self);
            }
            else
            if (c == ']') {
                close = self->pos++;
                break;
            }
            else
                return -1;
        }
    if (count > bound) {
        if (bound == 0)
            s_output_drop (output, self->data, open + 1, close);
        else
            s_output_drop (output, self->data, kept_end, last_end);
    }
    *kept_p = count < bound ? count : bound;
    return 0;
}

//  Walk the top-level object, cutting every top-level "results" array (a
//  JSON reader may take the first or the last of duplicate keys). Sets
//  *results_p from the first. 0 or -1 if the bytes are not one object.
static int
s_lexer_cut (s_lexer_t *self, s_output_t *output, int bound, int *results_p)
{
    bool seen_results = false;
    //  cJSON skips a UTF-8 byte order mark; so do we, and drop it
    if (self->size >= 3 && memcmp (self->data, "\xEF\xBB\xBF", 3) == 0) {
        self->pos = 3;
        output->copied = 3;
    }
    s_lexer_skip_space (self);
    if (s_lexer_peek (self) != '{')
        return -1;
    self->pos++;
    s_lexer_skip_space (self);
    if (s_lexer_peek (self) == '}')
        self->pos++;
    else
        while (true) {
            if (s_lexer_peek (self) != '"')
                return -1;
            size_t key = self->pos;
            if (s_lexer_skip_string (self))
                return -1;
            size_t key_size = self->pos - key - 2;
            s_lexer_skip_space (self);
            if (s_lexer_peek (self) != ':')
                return -1;
            self->pos++;
            s_lexer_skip_space (self);
            if (s_lexer_peek (self) == '['
                && s_key_is (self->data + key + 1, key_size, "results")) {
                int kept = 0;
                if (s_lexer_cut_array (self, output, bound, &kept))
                    return -1;
                if (!seen_results)
                    *results_p = kept;
                seen_results = true;
            }
            else
            if (s_lexer_skip_value (self))
                return -1;
            s_lexer_skip_space (self);
            int c = s_lexer_peek (self);
            if (c == ',') {
                self->pos++;
                s_lexer_skip_space (self);
            }
            else
            if (c == '}') {
                self->pos++;
                break;
            }
            else
                return -1;
        }
    s_lexer_skip_space (self);
    return self->pos == self->size ? 0 : -1;
}

//  Drop every white-space-only line and turn CRLF into LF, in place, so no
//  two newlines are adjacent; then trim white space at both ends, so the
//  text starts with '{' and ends with '}'. Returns the new length.
static size_t
s_collapse_lines (char *text, size_t size)
{
    size_t out = 0;
    size_t pos = 0;
    while (pos < size) {
        char *newline = memchr (text + pos, '\n', size - pos);
        size_t line_end = newline ? (size_t) (newline - text) : size;
        size_t content_end = line_end;
        if (content_end > pos && text[content_end - 1] == '\r')
            content_end--;
        bool blank = true;
        for (size_t i = pos; i < content_end && blank; i++)
            blank = s_is_blank (text[i]);
        if (!blank) {
            if (out > 0)
                text[out++] = '\n';
            memmove (text + out, text + pos, content_end - pos);
            out += content_end - pos;
        }
        pos = line_end + 1;
    }
    while (out > 0 && s_is_space (text[out - 1]))
        out--;
    size_t lead = 0;
    while (lead < out && s_is_space (text[lead]))
        lead++;
    memmove (text, text + lead, out - lead);
    return out - lead;
}

char *
herd_placesbody_shape (const char *body, size_t size, int bound, char **status_p,
                       int *results_p)
{
    if (status_p)
        *status_p = NULL;
    if (results_p)
        *results_p = 0;
    if (!body || size == 0)
        return NULL;
    if (bound < 0)
        bound = 0;
    //  Control bytes other than JSON white space are invalid anywhere, and
    //  a NUL would cut the C string we return short
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char) body[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return NULL;
    }
    cJSON *root = cJSON_ParseWithLength (body, size);
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        return NULL;
    }
    s_output_t output = {malloc (size + 1), 0, 0};
    s_lexer_t lexer = {body, size, 0};
    int results = 0;
    if (!output.data || s_lexer_cut (&lexer, &output, bound, &results)) {
        free (output.data);
        cJSON_Delete (root);
        return NULL;
    }
    s_output_drop (&output, body, size, size);
    output.size = s_collapse_lines (output.data, output.size);
    output.data[output.size] = 0;

    if (status_p) {
        const cJSON *status = cJSON_GetObjectItemCaseSensitive (root, "status");
        if (cJSON_IsString (status) && status->valuestring)
            *status_p = strdup (status->valuestring);
    }
    if (results_p)
        *results_p = results;
    cJSON_Delete (root);
    return output.data;
}

size_t
herd_placesbody_utf8_length (const unsigned char *text, size_t size)
{
    size_t length;
    uint32_t code;
    if (text[0] >= 0xC2 && text[0] <= 0xDF) {
        length = 2;
        code = text[0] & 0x1F;
    }
    else
    if (text[0] >= 0xE0 && text[0] <= 0xEF) {
        length = 3;
        code = text[0] & 0x0F;
    }
    else
    if (text[0] >= 0xF0 && text[0] <= 0xF4) {
        length = 4;
        code = text[0] & 0x07;
    }
    else
        return 0;
    if (length > size)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((text[i] & 0xC0) != 0x80)
            return 0;
        code = (code << 6) | (text[i] & 0x3F);
    }
    //  No overlong forms, no surrogates, nothing past U+10FFFF
    if ((length == 3 && code < 0x800) || (length == 4 && code < 0x10000)
        || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF)
        return 0;
    return length;
}

//  A new string with text escaped for a JSON string: quote, backslash and
//  control bytes escaped (\u00XX), invalid UTF-8 replaced by U+FFFD, so the
//  result is valid JSON whatever the bytes.
static char *
s_json_escape (const char *text)
{
    size_t size = strlen (text);
    char *escaped = malloc (size * 6 + 1);
    if (!escaped)
        return NULL;
    size_t out = 0;
    size_t pos = 0;
    while (pos < size) {
        unsigned char c = (unsigned char) text[pos];
        if (c == '"' || c == '\\') {
            escaped[out++] = '\\';
            escaped[out++] = (char) c;
            pos++;
        }
        else
        if (c < 0x20 || c == 0x7F) {
            out += (size_t) snprintf (escaped + out, 7, "\\u%04x", c);
            pos++;
        }
        else
        if (c < 0x80) {
            escaped[out++] = (char) c;
            pos++;
        }
        else {
            size_t length =
                herd_placesbody_utf8_length ((const unsigned char *)text + pos, size - pos);
            if (length) {
                memcpy (escaped + out, text + pos, length);
                out += length;
                pos += length;
            }
            else {
                memcpy (escaped + out, "\\ufffd", 6);
                out += 6;
                pos++;
            }
        }
    }
    escaped[out] = 0;
    return escaped;
}

char *
herd_placesbody_error (const char *status, const char *message)
{
    char *status_text = s_json_escape (status ? status : "UNKNOWN_ERROR");
    char *message_text = s_json_escape (message ? message : "");
    char *body = NULL;
    if (status_text && message_text) {
        const char *format = "{\n"
                             "   \"error_message\" : \"%s\",\n"
                             "   \"html_attributions\" : [],\n"
                             "   \"results\" : [],\n"
                             "   \"status\" : \"%s\"\n"
                             "}";
        int size = snprintf (NULL, 0, format, message_text, status_text);
        if (size >= 0)
            body = malloc ((size_t) size + 1);
        if (body)
            snprintf (body, (size_t) size + 1, format, message_text, status_text);
    }
    free (status_text);
    free (message_text);
    return body;
}

//  --------------------------------------------------------------------------
//  Parsing a whole body

//  True if the bytes hold a control byte other than JSON white space (or a
//  NUL, which would cut a C string short): never valid JSON.
static bool
s_has_control_bytes (const char *body, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char) body[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return true;
    }
    return false;
}

cJSON *
herd_placesbody_parse (const char *body, size_t size)
{
    if (!body || size == 0 || s_has_control_bytes (body, size))
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts (body, size, &end, false);
    while (root && end && end < body + size && s_is_space (*end))
        end++;
    if (root && end != body + size) {
        cJSON_Delete (root);
        root = NULL;
    }
    return root;
}

//  --------------------------------------------------------------------------
//  Self test

//  Shape text and check the result, the status and the count kept.
static void
s_check_shape (const char *body, int bound, const char *expected, const char *status,
               int results)
{
    static char unset[] = "unset";
    char *got_status = unset;
    int got_results = -1;
    char *shaped = herd_placesbody_shape (body, strlen (body), bound, &got_status, &got_results);
    if (!expected) {
        HERD_CHECK (shaped == NULL);
        HERD_CHECK (got_status == NULL);
        HERD_CHECK_INT (got_results, 0);
        return;
    }
    HERD_CHECK_STR (shaped, expected);
    if (status)
        HERD_CHECK_STR (got_status, status);
    else
        HERD_CHECK (got_status == NULL);
    HERD_CHECK_INT (got_results, results);
    //  Always valid JSON, never two newlines in a row, no newline at an end
    cJSON *root = cJSON_Parse (shaped);
    HERD_CHECK (cJSON_IsObject (root));
    cJSON_Delete (root);
    HERD_CHECK (strstr (shaped, "\n\n") == NULL);
    HERD_CHECK (shaped[0] != '\n');
    HERD_CHECK (shaped[strlen (shaped) - 1] != '\n');
    free (shaped);
    free (got_status);
}


//  Shaping a body in Google's layout: cut to the bound, blank lines gone
static void
s_test_shape_cut (void)
{
    //  Google's layout: html_attributions first, 3-space indent, blank
    //  lines and a trailing "\n\n" to collapse
    const char *google =
        "{\n"
        "   \"html_attributions\" : [],\n"
        "   \"next_page_token\" : \"AW30\",\n"
        "\n"
        "   \"results\" : [\n"
        "      {\n"
        "         \"name\" : \"Cruise \\\"Bar\\\" ]}\",\n"
        "         \"results\" : [ 1, 2, 3 ],\n"
        "         \"rating\" : 4.8\n"
        "      },\n"
        "      {\n"
        "         \"name\" : \"results\",\n"
        "         \"geometry\" : { \"location\" : { \"lat\" : -33.8, \"lng\" : 151.2 } }\n"
        "      },\n"
        "   \n"
        "      {\n"
        "         \"name\" : \"\\u003ca\\u003e \\\\\"\n"
        "      }\n"
        "   ],\n"
        "   \"status\" : \"OK\"\n"
        "}\n\n";
    const char *head = "{\n"
                       "   \"html_attributions\" : [],\n"
                       "   \"next_page_token\" : \"AW30\",\n"
                       "   \"results\" : [";
    const char *first = "\n"
                        "      {\n"
                        "         \"name\" : \"Cruise \\\"Bar\\\" ]}\",\n"
                        "         \"results\" : [ 1, 2, 3 ],\n"
                        "         \"rating\" : 4.8\n"
                        "      }";
    const char *second = ",\n"
                         "      {\n"
                         "         \"name\" : \"results\",\n"
                         "         \"geometry\" : { \"location\" : { \"lat\" : -33.8, "
                         "\"lng\" : 151.2 } }\n"
                         "      }";
    const char *third = ",\n"
                        "      {\n"
                        "         \"name\" : \"\\u003ca\\u003e \\\\\"\n"
                        "      }";
    const char *tail = "\n"
                       "   ],\n"
                       "   \"status\" : \"OK\"\n"
                       "}";
    char expected[4096];
    //  Cut to 0..3 and beyond what there is
    snprintf (expected, sizeof (expected), "%s%s", head, tail + 4);
    s_check_shape (google, 0, expected, "OK", 0);
    snprintf (expected, sizeof (expected), "%s%s%s", head, first, tail);
    s_check_shape (google, 1, expected, "OK", 1);
    snprintf (expected, sizeof (expected), "%s%s%s%s", head, first, second, tail);
    s_check_shape (google, 2, expected, "OK", 2);
    snprintf (expected, sizeof (expected), "%s%s%s%s%s", head, first, second, third, tail);
    s_check_shape (google, 3, expected, "OK", 3);
    s_check_shape (google, 20, expected, "OK", 3);
    {
        //  A negative bound counts as 0; status_p and results_p are optional
        char *shaped = herd_placesbody_shape (google, strlen (google), -1, NULL, NULL);
        snprintf (expected, sizeof (expected), "%s%s", head, tail + 4);
        HERD_CHECK_STR (shaped, expected);
        free (shaped);
    }

}

//  Shaping: other layouts, tricky keys; NULL for what is not a JSON object
static void
s_test_shape_edges (void)
{
    //  CRLF lines, blank lines of white space, leading and trailing newlines
    s_check_shape ("\r\n\r\n{\r\n  \"results\" : [ 1,\r\n 2 ],\r\n \t \r\n"
                   "  \"status\" : \"OK\"\r\n}\r\n\r\n",
                   1, "{\n  \"results\" : [ 1 ],\n  \"status\" : \"OK\"\n}", "OK", 1);
    //  "results" as a nested key and inside strings is not the one cut;
    //  the top-level one may come last and be spelled with an escape
    s_check_shape ("{\"a\":{\"results\":[1,2,3]},\"b\":\"\\\"results\\\":[1,2]\","
                   "\"r\\u0065sults\":[4,5,6]}",
                   1,
                   "{\"a\":{\"results\":[1,2,3]},\"b\":\"\\\"results\\\":[1,2]\","
                   "\"r\\u0065sults\":[4]}",
                   NULL, 1);
    //  Duplicate keys: both cut, the count from the first
    s_check_shape ("{\"results\":[1,2,3],\"results\":[[4],[5]]}", 2,
                   "{\"results\":[1,2],\"results\":[[4],[5]]}", NULL, 2);
    //  No results, results not an array, empty array, empty object
    s_check_shape ("{\"status\":\"ZERO_RESULTS\",\"results\":[]}", 5,
                   "{\"status\":\"ZERO_RESULTS\",\"results\":[]}", "ZERO_RESULTS", 0);
    s_check_shape ("{\"results\":{\"x\":[1,2]},\"status\":7}", 1,
                   "{\"results\":{\"x\":[1,2]},\"status\":7}", NULL, 0);
    s_check_shape ("{ }", 1, "{ }", NULL, 0);
    s_check_shape ("{\"results\" : [ \"a,b\" , \"c]\" , {\"d\":[]} ] }", 2,
                   "{\"results\" : [ \"a,b\" , \"c]\" ] }", NULL, 2);
    //  A byte order mark is dropped, as cJSON skips it
    s_check_shape ("\xEF\xBB\xBF{\"results\":[1,2]}", 1, "{\"results\":[1]}", NULL, 1);
    //  Found by tests/fuzz/fuzz_placesbody: a key cut at an escaped NUL is
    //  "results" to cJSON, so it is cut too (it reached clients uncut)
    s_check_shape ("{\"results\\u0000x\":[1,2,3],\"status\\u0000\":\"OK\"}", 1,
                   "{\"results\\u0000x\":[1],\"status\\u0000\":\"OK\"}", "OK", 1);

    //  Not a JSON object: NULL
    s_check_shape ("", 1, NULL, NULL, 0);
    s_check_shape ("[1, 2]", 1, NULL, NULL, 0);
    s_check_shape ("\"results\"", 1, NULL, NULL, 0);
    s_check_shape ("null", 1, NULL, NULL, 0);
    s_check_shape ("{\"results\": [1, 2", 1, NULL, NULL, 0);
    s_check_shape ("{\"results\": [1, 2]} trailing", 1, NULL, NULL, 0);
    s_check_shape ("{\"results\": [1, 2]}{}", 1, NULL, NULL, 0);
    s_check_shape ("{\"a\": \"raw\nnewline\"}", 1, NULL, NULL, 0);
    s_check_shape ("{\"a\": \"bad \\x escape\"}", 1, NULL, NULL, 0);
    s_check_shape ("{\"a\": 1,}", 1, NULL, NULL, 0);
    s_check_shape ("<html>500</html>", 1, NULL, NULL, 0);
    {
        //  A NUL byte anywhere, even where cJSON would skip it
        const char nul[] = "{\"results\": [1,\0 2]}";
        char *status = NULL;
        int results = -1;
        HERD_CHECK (herd_placesbody_shape (nul, sizeof (nul) - 1, 1, &status, &results) == NULL);
        HERD_CHECK (status == NULL);
        HERD_CHECK (herd_placesbody_shape (NULL, 0, 1, NULL, NULL) == NULL);
        //  Only size bytes are read: a prefix of a valid body is invalid
        const char *body = "{\"results\": [1, 2]}";
        HERD_CHECK (herd_placesbody_shape (body, 10, 1, NULL, NULL) == NULL);
    }

}

//  Error bodies, and the shaper on them
static void
s_test_error_body (void)
{
    //  Error bodies: Google's layout, valid JSON with the right fields
    char *error = herd_placesbody_error ("UNKNOWN_ERROR", "herd: Places request timed out");
    HERD_CHECK_STR (error, "{\n"
                           "   \"error_message\" : \"herd: Places request timed out\",\n"
                           "   \"html_attributions\" : [],\n"
                           "   \"results\" : [],\n"
                           "   \"status\" : \"UNKNOWN_ERROR\"\n"
                           "}");
    free (error);
    const char *nasty = "quote \" backslash \\ newline \n tab \t bell \a del \x7f "
                        "caf\xC3\xA9 bad \xC3( \xED\xA0\x80";
    error = herd_placesbody_error ("INVALID_REQUEST", nasty);
    HERD_CHECK (strchr (error, '\t') == NULL);
    HERD_CHECK_CONTAINS (error, "newline \\u000a tab \\u0009 bell \\u0007 del \\u007f");
    HERD_CHECK_CONTAINS (error, "caf\xC3\xA9 bad \\ufffd( \\ufffd\\ufffd\\ufffd");
    cJSON *root = cJSON_Parse (error);
    HERD_CHECK (cJSON_IsObject (root));
    HERD_CHECK_STR (cJSON_GetStringValue (cJSON_GetObjectItem (root, "status")),
                    "INVALID_REQUEST");
    const char *message = cJSON_GetStringValue (cJSON_GetObjectItem (root, "error_message"));
    HERD_CHECK_CONTAINS (message, "quote \" backslash \\ newline \n tab \t bell \a");
    HERD_CHECK (cJSON_IsArray (cJSON_GetObjectItem (root, "html_attributions")));
    HERD_CHECK_INT (cJSON_GetArraySize (cJSON_GetObjectItem (root, "results")), 0);
    cJSON_Delete (root);
    //  An error body goes through the shaper unchanged
    char *status = NULL;
    int results = -1;
    char *shaped = herd_placesbody_shape (error, strlen (error), 5, &status, &results);
    HERD_CHECK_STR (shaped, error);
    HERD_CHECK_STR (status, "INVALID_REQUEST");
    HERD_CHECK_INT (results, 0);
    free (shaped);
    free (status);
    free (error);
    error = herd_placesbody_error (NULL, NULL);
    HERD_CHECK_CONTAINS (error, "\"error_message\" : \"\",");
    HERD_CHECK_CONTAINS (error, "\"status\" : \"UNKNOWN_ERROR\"");
    free (error);

}

void
herd_placesbody_test (bool verbose)
{
    printf (" * herd_placesbody: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    s_test_shape_cut ();
    s_test_shape_edges ();
    s_test_error_body ();
    //  @end

    printf ("OK\n");
}
