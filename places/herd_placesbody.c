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

//  Length of the valid UTF-8 sequence at text (up to size bytes), or 0.
static size_t
s_utf8_length (const unsigned char *text, size_t size)
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
            size_t length = s_utf8_length ((const unsigned char *) text + pos, size - pos);
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
//  Places API (New): translation into the legacy shape

//  A growing output buffer; a failed allocation poisons it.
typedef struct {
    char *data;
    size_t size;
    size_t capacity;
    bool failed;
} s_buffer_t;

//  Append size bytes to the buffer, keeping it NUL-terminated.
static void
s_buffer_append (s_buffer_t *self, const char *data, size_t size)
{
    if (self->failed)
        return;
    if (self->size + size + 1 > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 4096;
        while (capacity < self->size + size + 1)
            capacity *= 2;
        char *grown = (char *) realloc (self->data, capacity);
        if (!grown) {
            self->failed = true;
            return;
        }
        self->data = grown;
        self->capacity = capacity;
    }
    memcpy (self->data + self->size, data, size);
    self->size += size;
    self->data[self->size] = 0;
}

//  Append a C string to the buffer.
static void
s_buffer_puts (s_buffer_t *self, const char *text)
{
    s_buffer_append (self, text, strlen (text));
}

//  Three spaces a level, as Google indents.
static void
s_buffer_indent (s_buffer_t *self, int level)
{
    for (int i = 0; i < level; i++)
        s_buffer_append (self, "   ", 3);
}

//  A JSON string as Google writes it: quote and backslash escaped, <, > and
//  & as \u003c, \u003e, \u0026, newline, tab and return as \n, \t, \r, other
//  control bytes and U+2028/U+2029 as \uXXXX, UTF-8 kept raw; invalid UTF-8
//  becomes \ufffd so the output is always valid JSON.
static void
s_buffer_string (s_buffer_t *self, const char *text)
{
    size_t size = strlen (text);
    s_buffer_append (self, "\"", 1);
    size_t pos = 0;
    while (pos < size) {
        unsigned char c = (unsigned char) text[pos];
        char escape[8];
        if (c == '"' || c == '\\') {
            escape[0] = '\\';
            escape[1] = (char) c;
            s_buffer_append (self, escape, 2);
            pos++;
        }
        else
        if (c == '\n' || c == '\t' || c == '\r') {
            s_buffer_puts (self, c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\r");
            pos++;
        }
        else
        if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            snprintf (escape, sizeof (escape), "\\u%04x", c);
            s_buffer_append (self, escape, 6);
            pos++;
        }
        else
        if (c < 0x80) {
            s_buffer_append (self, text + pos, 1);
            pos++;
        }
        else {
            size_t length = s_utf8_length ((const unsigned char *) text + pos, size - pos);
            if (length == 3 && memcmp (text + pos, "\xE2\x80\xA8", 3) == 0)
                s_buffer_puts (self, "\\u2028");
            else
            if (length == 3 && memcmp (text + pos, "\xE2\x80\xA9", 3) == 0)
                s_buffer_puts (self, "\\u2029");
            else
            if (length)
                s_buffer_append (self, text + pos, length);
            else
                s_buffer_puts (self, "\\ufffd");
            pos += length ? length : 1;
        }
    }
    s_buffer_append (self, "\"", 1);
}

//  A number in its shortest form that reads back the same; whole numbers
//  without a fraction ("rating" : 4), as Google prints them.
static void
s_buffer_number (s_buffer_t *self, double value)
{
    char text[64];
    if (!isfinite (value))
        snprintf (text, sizeof (text), "null");
    else
    if (value == 0)
        snprintf (text, sizeof (text), "0");
    else
    if (fabs (value) < 1e15 && value == (double) (long long) value)
        snprintf (text, sizeof (text), "%.0f", value);
    else
        for (int precision = 1; precision <= 17; precision++) {
            snprintf (text, sizeof (text), "%.*g", precision, value);
            if (strtod (text, NULL) == value)
                break;
        }
    s_buffer_puts (self, text);
}

//  Characters (not bytes) of UTF-8 text, as Python counts them.
static size_t
s_char_count (const char *text, size_t size)
{
    size_t count = 0;
    for (size_t i = 0; i < size; i++)
        if (((unsigned char) text[i] & 0xC0) != 0x80)
            count++;
    return count;
}

//  Order of object members: by key, byte for byte (code point order).
static int
s_compare_members (const void *a, const void *b)
{
    const cJSON *left = *(const cJSON *const *) a;
    const cJSON *right = *(const cJSON *const *) b;
    return strcmp (left->string ? left->string : "", right->string ? right->string : "");
}

#define S_INLINE_LIST_MAX 72        //  a scalar list this long or less stays on one line

//  Print a value in Google's layout: objects one member a line with sorted
//  keys and " : ", a list of scalars inline ("[ a, b ]") when that form is at
//  most S_INLINE_LIST_MAX characters, "{}" and "[]" when empty.
static void
s_buffer_value (s_buffer_t *self, const cJSON *value, int level)
{
    if (cJSON_IsObject (value) || cJSON_IsArray (value)) {
        bool object = cJSON_IsObject (value);
        int count = cJSON_GetArraySize (value);
        if (count == 0) {
            s_buffer_puts (self, object ? "{}" : "[]");
            return;
        }
        const cJSON **items = (const cJSON **) malloc ((size_t) count * sizeof (cJSON *));
        if (!items) {
            self->failed = true;
            return;
        }
        bool scalars = !object;
        int index = 0;
        for (const cJSON *item = value->child; item && index < count; item = item->next) {
            items[index++] = item;
            if (cJSON_IsObject (item) || cJSON_IsArray (item))
                scalars = false;
        }
        count = index;
        if (object)
            qsort (items, (size_t) count, sizeof (cJSON *), s_compare_members);
        if (scalars) {
            s_buffer_t line = {NULL, 0, 0, false};
            s_buffer_puts (&line, "[ ");
            for (int i = 0; i < count; i++) {
                if (i)
                    s_buffer_puts (&line, ", ");
                s_buffer_value (&line, items[i], 0);
            }
            s_buffer_puts (&line, " ]");
            bool inline_list = !line.failed
                               && s_char_count (line.data, line.size) <= S_INLINE_LIST_MAX;
            if (inline_list)
                s_buffer_append (self, line.data, line.size);
            if (line.failed)
                self->failed = true;
            free (line.data);
            if (inline_list || line.failed) {
                free (items);
                return;
            }
        }
        s_buffer_puts (self, object ? "{\n" : "[\n");
        for (int i = 0; i < count; i++) {
            s_buffer_indent (self, level + 1);
            if (object) {
                s_buffer_string (self, items[i]->string ? items[i]->string : "");
                s_buffer_puts (self, " : ");
            }
            s_buffer_value (self, items[i], level + 1);
            s_buffer_puts (self, i + 1 < count ? ",\n" : "\n");
        }
        s_buffer_indent (self, level);
        s_buffer_puts (self, object ? "}" : "]");
        free (items);
    }
    else
    if (cJSON_IsString (value))
        s_buffer_string (self, value->valuestring ? value->valuestring : "");
    else
    if (cJSON_IsNumber (value))
        s_buffer_number (self, value->valuedouble);
    else
    if (cJSON_IsBool (value))
        s_buffer_puts (self, cJSON_IsTrue (value) ? "true" : "false");
    else
        s_buffer_puts (self, "null");
}

//  The string member name of object, or NULL if absent or not a string.
static const char *
s_member_string (const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (object, name);
    return cJSON_IsString (item) ? item->valuestring : NULL;
}

//  Copy string member from of object into to under name, if it is a string.
static void
s_copy_string (cJSON *to, const char *name, const cJSON *from, const char *member)
{
    const char *text = s_member_string (from, member);
    if (text)
        cJSON_AddStringToObject (to, name, text);
}

//  Copy number member from of object into to under name, if it is a number.
static void
s_copy_number (cJSON *to, const char *name, const cJSON *from, const char *member)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (from, member);
    if (cJSON_IsNumber (item))
        cJSON_AddNumberToObject (to, name, item->valuedouble);
}

//  A legacy {"lat", "lng"} from a New google.type.LatLng; a missing
//  coordinate is 0 (proto3 JSON may leave zero values out). NULL if latlng
//  is not an object.
static cJSON *
s_latlng (const cJSON *latlng)
{
    if (!cJSON_IsObject (latlng))
        return NULL;
    const cJSON *latitude = cJSON_GetObjectItemCaseSensitive (latlng, "latitude");
    const cJSON *longitude = cJSON_GetObjectItemCaseSensitive (latlng, "longitude");
    cJSON *point = cJSON_CreateObject ();
    cJSON_AddNumberToObject (point, "lat", cJSON_IsNumber (latitude) ? latitude->valuedouble : 0);
    cJSON_AddNumberToObject (point, "lng",
                             cJSON_IsNumber (longitude) ? longitude->valuedouble : 0);
    return point;
}

//  Append text to the buffer escaped for HTML (&, <, >, ").
static void
s_buffer_html (s_buffer_t *self, const char *text)
{
    for (; *text; text++)
        switch (*text) {
            case '&': s_buffer_puts (self, "&amp;"); break;
            case '<': s_buffer_puts (self, "&lt;"); break;
            case '>': s_buffer_puts (self, "&gt;"); break;
            case '"': s_buffer_puts (self, "&quot;"); break;
            default: s_buffer_append (self, text, 1); break;
        }
}

//  Legacy photos from New ones: name -> photo_reference, widthPx -> width,
//  heightPx -> height, authorAttributions -> html_attributions as legacy
//  writes them, <a href="URI">NAME</a>.
static cJSON *
s_photos (const cJSON *photos)
{
    cJSON *list = cJSON_CreateArray ();
    const cJSON *photo;
    cJSON_ArrayForEach (photo, photos) {
        if (!cJSON_IsObject (photo))
            continue;
        cJSON *legacy = cJSON_CreateObject ();
        s_copy_number (legacy, "height", photo, "heightPx");
        cJSON *credits = cJSON_AddArrayToObject (legacy, "html_attributions");
        const cJSON *author;
        cJSON_ArrayForEach (author, cJSON_GetObjectItemCaseSensitive (photo, "authorAttributions")) {
            const char *name = s_member_string (author, "displayName");
            const char *uri = s_member_string (author, "uri");
            if (!name && !uri)
                continue;
            s_buffer_t html = {NULL, 0, 0, false};
            if (uri) {
                s_buffer_puts (&html, "<a href=\"");
                s_buffer_html (&html, uri);
                s_buffer_puts (&html, "\">");
            }
            s_buffer_html (&html, name ? name : uri);
            if (uri)
                s_buffer_puts (&html, "</a>");
            if (!html.failed)
                cJSON_AddItemToArray (credits, cJSON_CreateString (html.data));
            free (html.data);
        }
        s_copy_string (legacy, "photo_reference", photo, "name");
        s_copy_number (legacy, "width", photo, "widthPx");
        cJSON_AddItemToArray (list, legacy);
    }
    return list;
}

//  The legacy price_level of a New priceLevel, or -1 (unspecified, unknown).
static int
s_price_level (const char *level)
{
    static const char *const levels[] = {"PRICE_LEVEL_FREE", "PRICE_LEVEL_INEXPENSIVE",
                                         "PRICE_LEVEL_MODERATE", "PRICE_LEVEL_EXPENSIVE",
                                         "PRICE_LEVEL_VERY_EXPENSIVE"};
    for (int i = 0; level && i < 5; i++)
        if (strcmp (level, levels[i]) == 0)
            return i;
    return -1;
}

//  One legacy result from one New place; fields absent in the place are
//  absent in the result, as every legacy field is optional.
static cJSON *
s_place_to_legacy (const cJSON *place)
{
    cJSON *result = cJSON_CreateObject ();
    s_copy_string (result, "business_status", place, "businessStatus");

    cJSON *location = s_latlng (cJSON_GetObjectItemCaseSensitive (place, "location"));
    const cJSON *viewport = cJSON_GetObjectItemCaseSensitive (place, "viewport");
    cJSON *low = s_latlng (cJSON_GetObjectItemCaseSensitive (viewport, "low"));
    cJSON *high = s_latlng (cJSON_GetObjectItemCaseSensitive (viewport, "high"));
    if (location || (low && high)) {
        cJSON *geometry = cJSON_AddObjectToObject (result, "geometry");
        if (location)
            cJSON_AddItemToObject (geometry, "location", location);
        if (low && high) {
            cJSON *box = cJSON_AddObjectToObject (geometry, "viewport");
            cJSON_AddItemToObject (box, "northeast", high);
            cJSON_AddItemToObject (box, "southwest", low);
            low = high = NULL;
        }
    }
    cJSON_Delete (low);
    cJSON_Delete (high);

    s_copy_string (result, "icon_background_color", place, "iconBackgroundColor");
    s_copy_string (result, "icon_mask_base_uri", place, "iconMaskBaseUri");
    s_copy_string (result, "name", cJSON_GetObjectItemCaseSensitive (place, "displayName"), "text");
    const cJSON *hours = cJSON_GetObjectItemCaseSensitive (place, "currentOpeningHours");
    const cJSON *open_now = cJSON_GetObjectItemCaseSensitive (hours, "openNow");
    if (cJSON_IsBool (open_now))
        cJSON_AddBoolToObject (cJSON_AddObjectToObject (result, "opening_hours"), "open_now",
                               cJSON_IsTrue (open_now));
    const cJSON *photos = cJSON_GetObjectItemCaseSensitive (place, "photos");
    if (cJSON_IsArray (photos))
        cJSON_AddItemToObject (result, "photos", s_photos (photos));
    s_copy_string (result, "place_id", place, "id");
    const cJSON *plus_code = cJSON_GetObjectItemCaseSensitive (place, "plusCode");
    if (cJSON_IsObject (plus_code)) {
        cJSON *code = cJSON_AddObjectToObject (result, "plus_code");
        s_copy_string (code, "compound_code", plus_code, "compoundCode");
        s_copy_string (code, "global_code", plus_code, "globalCode");
    }
    int price = s_price_level (s_member_string (place, "priceLevel"));
    if (price >= 0)
        cJSON_AddNumberToObject (result, "price_level", price);
    s_copy_number (result, "rating", place, "rating");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive (place, "types");
    if (cJSON_IsArray (types)) {
        cJSON *list = cJSON_AddArrayToObject (result, "types");
        const cJSON *type;
        cJSON_ArrayForEach (type, types)
            if (cJSON_IsString (type))
                cJSON_AddItemToArray (list, cJSON_CreateString (type->valuestring));
    }
    s_copy_number (result, "user_ratings_total", place, "userRatingCount");
    const char *vicinity = s_member_string (place, "shortFormattedAddress");
    if (!vicinity)
        vicinity = s_member_string (place, "formattedAddress");
    if (vicinity)
        cJSON_AddStringToObject (result, "vicinity", vicinity);
    return result;
}

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

char *
herd_placesbody_from_new (const char *body, size_t size, int bound, int *results_p)
{
    if (results_p)
        *results_p = 0;
    cJSON *root = herd_placesbody_parse (body, size);
    const cJSON *places = cJSON_GetObjectItemCaseSensitive (root, "places");
    bool valid = cJSON_IsObject (root) && (!places || cJSON_IsArray (places));
    const cJSON *checked = valid ? places : NULL;
    const cJSON *place;
    cJSON_ArrayForEach (place, checked)
        if (!cJSON_IsObject (place))
            valid = false;
    if (!valid) {
        cJSON_Delete (root);
        return NULL;
    }
    cJSON *legacy = cJSON_CreateObject ();
    cJSON_AddArrayToObject (legacy, "html_attributions");
    cJSON *results = cJSON_AddArrayToObject (legacy, "results");
    int count = 0;
    cJSON_ArrayForEach (place, places) {
        if (count >= bound)
            break;
        cJSON_AddItemToArray (results, s_place_to_legacy (place));
        count++;
    }
    cJSON_AddStringToObject (legacy, "status", count ? "OK" : "ZERO_RESULTS");
    s_buffer_t output = {NULL, 0, 0, false};
    s_buffer_value (&output, legacy, 0);
    cJSON_Delete (legacy);
    cJSON_Delete (root);
    if (output.failed) {
        free (output.data);
        return NULL;
    }
    if (results_p)
        *results_p = count;
    return output.data;
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

//  Places API (New) -> legacy: every mapped field, Google's layout
//  (sorted keys, 3 spaces, short scalar lists inline, <>& escaped)
static const char s_new_body[] =
    "{\"places\": [{\"id\": \"ChIJ1\", \"name\": \"places/ChIJ1\", \"displayName\": "
    "{\"text\": \"Caf\xC3\xA9 \\\"A\\\" & <B>\", \"languageCode\": \"en\"}, "
    "\"location\": {\"latitude\": -33.8587323, \"longitude\": 151.2100055}, "
    "\"viewport\": {\"low\": {\"latitude\": -33.86, \"longitude\": 151.2}, "
    "\"high\": {\"latitude\": -33.85, \"longitude\": 151.3}}, "
    "\"types\": [\"cafe\", \"food\"], \"businessStatus\": \"OPERATIONAL\", "
    "\"formattedAddress\": \"1 Long Rd, Sydney NSW 2000, Australia\", "
    "\"shortFormattedAddress\": \"1 Long Rd, Sydney\", "
    "\"plusCode\": {\"globalCode\": \"4RRH46R6+G2\", \"compoundCode\": \"46R6+G2 Sydney\"}, "
    "\"iconMaskBaseUri\": \"https://x/cafe_pinlet\", \"iconBackgroundColor\": \"#FF9E67\", "
    "\"photos\": [{\"name\": \"places/ChIJ1/photos/P1\", \"widthPx\": 4032, "
    "\"heightPx\": 3024, \"authorAttributions\": [{\"displayName\": \"Jo & Al\", "
    "\"uri\": \"https://maps.google.com/maps/contrib/7\"}, {\"displayName\": \"Anon\"}]}], "
    "\"priceLevel\": \"PRICE_LEVEL_VERY_EXPENSIVE\", \"rating\": 4.5, "
    "\"userRatingCount\": 12, \"currentOpeningHours\": {\"openNow\": true}, "
    "\"websiteUri\": \"https://not.mapped\"}, "
    "{\"id\": \"Two\", \"formattedAddress\": \"2 Rd\", \"location\": {\"longitude\": 1}, "
    "\"priceLevel\": \"PRICE_LEVEL_UNSPECIFIED\", \"rating\": 0.1}, {}]}";
static const char s_new_first[] =
    "{\n"
    "   \"html_attributions\" : [],\n"
    "   \"results\" : [\n"
    "      {\n"
    "         \"business_status\" : \"OPERATIONAL\",\n"
    "         \"geometry\" : {\n"
    "            \"location\" : {\n"
    "               \"lat\" : -33.8587323,\n"
    "               \"lng\" : 151.2100055\n"
    "            },\n"
    "            \"viewport\" : {\n"
    "               \"northeast\" : {\n"
    "                  \"lat\" : -33.85,\n"
    "                  \"lng\" : 151.3\n"
    "               },\n"
    "               \"southwest\" : {\n"
    "                  \"lat\" : -33.86,\n"
    "                  \"lng\" : 151.2\n"
    "               }\n"
    "            }\n"
    "         },\n"
    "         \"icon_background_color\" : \"#FF9E67\",\n"
    "         \"icon_mask_base_uri\" : \"https://x/cafe_pinlet\",\n"
    "         \"name\" : \"Caf\xC3\xA9 \\\"A\\\" \\u0026 \\u003cB\\u003e\",\n"
    "         \"opening_hours\" : {\n"
    "            \"open_now\" : true\n"
    "         },\n"
    "         \"photos\" : [\n"
    "            {\n"
    "               \"height\" : 3024,\n"
    "               \"html_attributions\" : [\n"
    "                  \"\\u003ca href=\\\"https://maps.google.com/maps/contrib/7\\\"\\u003e"
    "Jo \\u0026amp; Al\\u003c/a\\u003e\",\n"
    "                  \"Anon\"\n"
    "               ],\n"
    "               \"photo_reference\" : \"places/ChIJ1/photos/P1\",\n"
    "               \"width\" : 4032\n"
    "            }\n"
    "         ],\n"
    "         \"place_id\" : \"ChIJ1\",\n"
    "         \"plus_code\" : {\n"
    "            \"compound_code\" : \"46R6+G2 Sydney\",\n"
    "            \"global_code\" : \"4RRH46R6+G2\"\n"
    "         },\n"
    "         \"price_level\" : 4,\n"
    "         \"rating\" : 4.5,\n"
    "         \"types\" : [ \"cafe\", \"food\" ],\n"
    "         \"user_ratings_total\" : 12,\n"
    "         \"vicinity\" : \"1 Long Rd, Sydney\"\n"
    "      }";
static const char s_new_rest[] =
    ",\n"
    "      {\n"
    "         \"geometry\" : {\n"
    "            \"location\" : {\n"
    "               \"lat\" : 0,\n"
    "               \"lng\" : 1\n"
    "            }\n"
    "         },\n"
    "         \"place_id\" : \"Two\",\n"
    "         \"rating\" : 0.1,\n"
    "         \"vicinity\" : \"2 Rd\"\n"
    "      },\n"
    "      {}";
static const char s_new_tail[] = "\n"
                       "   ],\n"
                       "   \"status\" : \"OK\"\n"
                       "}";

//  Translating a New answer: cut to the bound, read back the same by the shaper
static void
s_test_from_new (void)
{
    char expected[4096];
    int results = -1;
    char *shaped = NULL, *status = NULL;
    results = -1;
    shaped = herd_placesbody_from_new (s_new_body, strlen (s_new_body), 1, &results);
    snprintf (expected, sizeof (expected), "%s%s", s_new_first, s_new_tail);
    HERD_CHECK_STR (shaped, expected);
    HERD_CHECK_INT (results, 1);
    free (shaped);
    shaped = herd_placesbody_from_new (s_new_body, strlen (s_new_body), 20, &results);
    snprintf (expected, sizeof (expected), "%s%s%s", s_new_first, s_new_rest, s_new_tail);
    HERD_CHECK_STR (shaped, expected);
    HERD_CHECK_INT (results, 3);
    //  What the shaper makes of it: the same bytes, valid JSON
    status = NULL;
    char *again = herd_placesbody_shape (shaped, strlen (shaped), 20, &status, &results);
    HERD_CHECK_STR (again, shaped);
    HERD_CHECK_STR (status, "OK");
    HERD_CHECK_INT (results, 3);
    free (again);
    free (status);
    free (shaped);
    //  A long list of scalars goes one item a line
    const char *long_types = "{\"places\": [{\"types\": [\"point_of_interest\", "
                             "\"establishment\", \"travel_agency\", \"lodging\", "
                             "\"bar\"]}]}";
    shaped = herd_placesbody_from_new (long_types, strlen (long_types), 5, &results);
    HERD_CHECK_CONTAINS (shaped, "         \"types\" : [\n"
                                 "            \"point_of_interest\",\n"
                                 "            \"establishment\",\n"
                                 "            \"travel_agency\",\n"
                                 "            \"lodging\",\n"
                                 "            \"bar\"\n"
                                 "         ]\n");
    free (shaped);
}

//  New answers without places, and what is not a New answer
static void
s_test_from_new_empty (void)
{
    int results = -1;
    char *shaped = NULL;
    //  No places: ZERO_RESULTS
    const char *zero_bodies[] = {"{}", "{\n}\n", "{\"places\": []}"};
    for (size_t i = 0; i < 3; i++) {
        results = -1;
        shaped = herd_placesbody_from_new (zero_bodies[i], strlen (zero_bodies[i]), 5, &results);
        HERD_CHECK_STR (shaped, "{\n"
                                "   \"html_attributions\" : [],\n"
                                "   \"results\" : [],\n"
                                "   \"status\" : \"ZERO_RESULTS\"\n"
                                "}");
        HERD_CHECK_INT (results, 0);
        free (shaped);
    }
    //  Not a New answer: NULL
    const char *not_new[] = {"", "[]", "{\"places\": {}}", "{\"places\": [1]}",
                             "{\"places\": [", "<html>", "{\"places\": []} x"};
    for (size_t i = 0; i < sizeof (not_new) / sizeof (not_new[0]); i++) {
        results = -1;
        HERD_CHECK (herd_placesbody_from_new (not_new[i], strlen (not_new[i]), 5, &results)
                    == NULL);
        HERD_CHECK_INT (results, 0);
    }

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
    s_test_from_new ();
    s_test_from_new_empty ();
    //  @end

    printf ("OK\n");
}
