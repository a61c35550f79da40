//  herd_placesnew.c - a Places API (New) answer in the legacy shape.
//
//  The New answer is parsed by cJSON, each place mapped to a legacy result
//  (a cJSON tree), and the tree printed by a small printer of our own in
//  Google's legacy layout (3 spaces, sorted keys, short scalar lists
//  inline, Google's escapes), which cJSON's printer does not do.

#include "herd_placesnew.h"
#include "herd_placesbody.h"
#include "../common/herd_check.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            size_t length =
                herd_placesbody_utf8_length ((const unsigned char *)text + pos, size - pos);
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

char *
herd_placesnew_to_legacy (const char *body, size_t size, int bound, int *results_p)
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
s_test_to_legacy (void)
{
    char expected[4096];
    int results = -1;
    char *shaped = NULL, *status = NULL;
    results = -1;
    shaped = herd_placesnew_to_legacy (s_new_body, strlen (s_new_body), 1, &results);
    snprintf (expected, sizeof (expected), "%s%s", s_new_first, s_new_tail);
    HERD_CHECK_STR (shaped, expected);
    HERD_CHECK_INT (results, 1);
    free (shaped);
    shaped = herd_placesnew_to_legacy (s_new_body, strlen (s_new_body), 20, &results);
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
    shaped = herd_placesnew_to_legacy (long_types, strlen (long_types), 5, &results);
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
s_test_to_legacy_empty (void)
{
    int results = -1;
    char *shaped = NULL;
    //  No places: ZERO_RESULTS
    const char *zero_bodies[] = {"{}", "{\n}\n", "{\"places\": []}"};
    for (size_t i = 0; i < 3; i++) {
        results = -1;
        shaped = herd_placesnew_to_legacy (zero_bodies[i], strlen (zero_bodies[i]), 5, &results);
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
        HERD_CHECK (herd_placesnew_to_legacy (not_new[i], strlen (not_new[i]), 5, &results)
                    == NULL);
        HERD_CHECK_INT (results, 0);
    }

}

void
herd_placesnew_test (bool verbose)
{
    printf (" * herd_placesnew: ");
    if (verbose)
        printf ("\n");

    //  @selftest
    s_test_to_legacy ();
    s_test_to_legacy_empty ();
    //  @end

    printf ("OK\n");
}
