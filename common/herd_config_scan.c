//  herd_config_scan.c - herd.cfg's text, checked line by line as zconfig reads it.
//
//  Each line (trailing white space trimmed, empty ones skipped) goes
//  through four steps, as zconfig's s_collect_level, s_collect_name and
//  s_collect_value read it: indentation, name, value, level. The first
//  step that fails records the line and the reason and stops the scan.

#include "herd_config_scan.h"
#include "herd_check.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>

//  One key found by the scan.
typedef struct {
    const char *name;           //  key name as written, in the caller's text
    size_t name_size;
    int line;                   //  1-based line number
    int level;                  //  indentation level, 0 = top
} s_item_t;

//  A key of the zconfig tree and the line it came from.
typedef struct {
    zconfig_t *key;
    int line;
} s_keyline_t;

struct _herd_config_scan_t {
    s_item_t *items;            //  keys found, in file order
    size_t item_count;
    s_keyline_t *keylines;      //  sorted by key address; empty if unmapped
    size_t keyline_count;
    int prev_level;             //  level of the key before, -1 at first
    int prev_line;              //  and its line, 0 at first
    int fail_line;              //  the first bad line, or 0
    char reason[512];           //  and why it is bad
};

//  The line being scanned: a NUL-terminated copy, and where it is in the text.
typedef struct {
    const char *text;           //  the trimmed copy
    const char *origin;         //  its first byte in the caller's text
    int number;                 //  1-based
} s_line_t;

static int
    s_fail (herd_config_scan_t *self, int line, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));

//  Record line as bad, for the reason printf'd. Always returns -1.
static int
s_fail (herd_config_scan_t *self, int line, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    //  NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start above (clang 14)
    vsnprintf (self->reason, sizeof (self->reason), format, args);
    va_end (args);
    self->fail_line = line;
    return -1;
}

//  A byte for a message: 'c' if printable, else its hex code.
static void
s_describe_byte (char byte, char *buffer, size_t size)
{
    unsigned char code = (unsigned char) byte;
    if (isprint (code))
        snprintf (buffer, size, "'%c'", code);
    else
        snprintf (buffer, size, "byte 0x%02x", code);
}

//  A character zconfig accepts in a name (its s_is_namechar).
static bool
s_is_namechar (char byte)
{
    return byte != 0 && (isalnum ((unsigned char) byte) || strchr ("$-_@.&+/", byte) != NULL);
}

//  Step 1, the indentation: zconfig counts only spaces, 4 a level. Sets
//  *spaces_p and *comment_p (the line holds only a comment). 0 or -1.
static int
s_scan_indent (herd_config_scan_t *self, const s_line_t *line, size_t *spaces_p, bool *comment_p)
{
    char what[32];
    const char *scan = line->text;
    while (*scan == ' ')
        scan++;
    size_t spaces = (size_t) (scan - line->text);

    //  Other white space ahead of a key is junk to zconfig
    const char *rest = scan;
    while (isspace ((unsigned char) *rest))
        rest++;
    bool comment = *rest == '#';
    if (isspace ((unsigned char) *scan) && !comment) {
        if (*scan == '\t')
            return s_fail (self, line->number, "a tab is used for indentation "
                                               "(indent with 4 spaces a level)");
        s_describe_byte (*scan, what, sizeof (what));
        return s_fail (self, line->number,
                       "%s is used for indentation (indent with 4 spaces a level)", what);
    }
    if (spaces % 4 != 0)
        return s_fail (self, line->number, "indentation is %zu spaces, not a multiple of 4%s",
                       spaces, comment ? " (zconfig rejects it even on a comment)" : "");
    *spaces_p = spaces;
    *comment_p = comment;
    return 0;
}

//  Step 2, the name at scan: zconfig's name characters, not starting or
//  ending with '/'. Returns its size, or 0 if it is bad.
static size_t
s_scan_name (herd_config_scan_t *self, const s_line_t *line, const char *name)
{
    char what[32];
    if (strlen (line->text) > HERD_CONFIG_SCAN_LINE_MAX) {
        s_fail (self, line->number, "line is %zu bytes long; zconfig reads at most %d a line",
                strlen (line->text), HERD_CONFIG_SCAN_LINE_MAX);
        return 0;
    }
    if (line->number == 1 && strncmp (line->text, "\xEF\xBB\xBF", 3) == 0) {
        s_fail (self, line->number, "the file starts with a UTF-8 byte order mark, "
                                    "which zconfig does not accept");
        return 0;
    }
    const char *scan = name;
    while (s_is_namechar (*scan))
        scan++;
    size_t name_size = (size_t) (scan - name);
    int name_len = name_size > 100 ? 100 : (int) name_size;
    if (name_size == 0) {
        s_describe_byte (*scan, what, sizeof (what));
        s_fail (self, line->number,
                "expected a key name, found %s (a line holds 'name' or 'name = value')", what);
        return 0;
    }
    if (name[0] == '/' || name[name_size - 1] == '/') {
        s_fail (self, line->number, "name '%.*s' must not start or end with '/'", name_len,
                name);
        return 0;
    }
    if (*scan && *scan != '=' && *scan != '#' && !isspace ((unsigned char) *scan)) {
        const char *end = scan;
        while (*end && *end != '=' && !isspace ((unsigned char) *end))
            end++;
        s_describe_byte (*scan, what, sizeof (what));
        s_fail (self, line->number,
                "name '%.*s' contains %s (names may use letters, digits and $ - _ @ . & + /)",
                (int) (end - name > 100 ? 100 : end - name), name, what);
        return 0;
    }
    return name_size;
}

//  Step 3, the value after the name at scan, if any: '= value', quoted or
//  not, or nothing but a comment. 0 or -1.
static int
s_scan_value (herd_config_scan_t *self, const s_line_t *line, const char *name, int name_len,
              const char *scan)
{
    while (isspace ((unsigned char) *scan))
        scan++;
    if (*scan == '=') {
        const char *equals = scan++;
        while (isspace ((unsigned char) *scan))
            scan++;
        if (*scan == '"' || *scan == '\'') {
            const char *close = strchr (scan + 1, *scan);
            if (!close)
                return s_fail (self, line->number, "unterminated quote: missing closing %c",
                               *scan);
            const char *after = close + 1;
            while (isspace ((unsigned char) *after))
                after++;
            if (*after && *after != '#')
                return s_fail (self, line->number,
                               "unexpected text after the closing quote: '%.100s'", after);
        }
        else
        if (*scan == '#' && scan > equals + 1)
            //  zconfig would store the comment itself as the value
            return s_fail (self, line->number,
                           "empty value followed by a comment; zconfig would read "
                           "the comment as the value (write %.*s = \"\")",
                           name_len, name);
    }
    else
    if (*scan && *scan != '#')
        return s_fail (self, line->number,
                       "expected '=' after name '%.*s' (a line holds 'name' or "
                       "'name = value')",
                       name_len, name);
    return 0;
}

//  Step 4, the level: at most one deeper than the key before. 0 or -1.
static int
s_scan_level (herd_config_scan_t *self, const s_line_t *line, int level, const char *name,
              int name_len)
{
    if (level <= self->prev_level + 1)
        return 0;
    if (self->prev_level < 0)
        return s_fail (self, line->number,
                       "'%.*s' is indented, but no key before it can be its "
                       "parent",
                       name_len, name);
    return s_fail (self, line->number,
                   "'%.*s' is indented more than one level (4 spaces) deeper "
                   "than its parent at line %d",
                   name_len, name, self->prev_line);
}

//  Check one line (trailing white space trimmed, not empty) as zconfig
//  reads it, and record its key if it has one. 0 or -1.
static int
s_scan_line (herd_config_scan_t *self, const s_line_t *line)
{
    size_t spaces = 0;
    bool comment = false;
    if (s_scan_indent (self, line, &spaces, &comment))
        return -1;
    if (comment)
        return 0;
    const char *name = line->text + spaces;
    size_t name_size = s_scan_name (self, line, name);
    if (name_size == 0)
        return -1;
    int name_len = name_size > 100 ? 100 : (int) name_size;
    int level = (int) (spaces / 4);
    if (s_scan_value (self, line, name, name_len, name + name_size)
        || s_scan_level (self, line, level, name, name_len))
        return -1;
    self->prev_level = level;
    self->prev_line = line->number;
    s_item_t *item = &self->items[self->item_count++];
    item->name = line->origin + spaces;
    item->name_size = name_size;
    item->line = line->number;
    item->level = level;
    return 0;
}

herd_config_scan_t *
herd_config_scan_new (const char *text, int *line_p, char **reason_p)
{
    herd_config_scan_t *self = (herd_config_scan_t *) zmalloc (sizeof (herd_config_scan_t));
    size_t lines = 1;                   //  a key a line at most
    for (const char *nl = strchr (text, '\n'); nl; nl = strchr (nl + 1, '\n'))
        lines++;
    self->items = (s_item_t *) zmalloc (lines * sizeof (s_item_t));
    self->prev_level = -1;
    s_line_t line = {NULL, text, 0};
    while (*line.origin) {
        const char *eoln = strchr (line.origin, '\n');
        size_t size = eoln ? (size_t) (eoln - line.origin) : strlen (line.origin);
        line.number++;
        while (size > 0 && isspace ((unsigned char) line.origin[size - 1]))
            size--;
        if (size > 0) {
            char *copy = (char *) zmalloc (size + 1);
            memcpy (copy, line.origin, size);
            line.text = copy;
            int rc = s_scan_line (self, &line);
            free (copy);
            if (rc) {
                *line_p = self->fail_line;
                *reason_p = strdup (self->reason);
                herd_config_scan_destroy (&self);
                return NULL;
            }
        }
        line.origin = eoln ? eoln + 1 : line.origin + strlen (line.origin);
    }
    return self;
}

void
herd_config_scan_destroy (herd_config_scan_t **self_p)
{
    if (self_p && *self_p) {
        herd_config_scan_t *self = *self_p;
        free (self->items);
        free (self->keylines);
        free (self);
        *self_p = NULL;
    }
}

//  Order keylines by key address, for bsearch.
static int
s_keyline_compare (const void *left, const void *right)
{
    uintptr_t a = (uintptr_t) ((const s_keyline_t *) left)->key;
    uintptr_t b = (uintptr_t) ((const s_keyline_t *) right)->key;
    return a < b ? -1 : a > b ? 1 : 0;
}

//  Pair the tree's keys, in file order, with the scan's; -1 if the two
//  disagree anywhere.
static int
s_map_keys (herd_config_scan_t *self, zconfig_t *parent, int level, size_t *index_p)
{
    for (zconfig_t *key = zconfig_child (parent); key; key = zconfig_next (key)) {
        size_t index = *index_p;
        if (index >= self->item_count)
            return -1;
        const s_item_t *item = &self->items[index];
        const char *name = zconfig_name (key);
        if (item->level != level || strlen (name) != item->name_size
            || memcmp (item->name, name, item->name_size) != 0)
            return -1;
        self->keylines[index].key = key;
        self->keylines[index].line = item->line;
        (*index_p)++;
        if (s_map_keys (self, key, level + 1, index_p))
            return -1;
    }
    return 0;
}

void
herd_config_scan_map (herd_config_scan_t *self, zconfig_t *root)
{
    if (self->item_count == 0)
        return;
    self->keylines = (s_keyline_t *) zmalloc (self->item_count * sizeof (s_keyline_t));
    size_t index = 0;
    if (s_map_keys (self, root, 0, &index) == 0 && index == self->item_count) {
        self->keyline_count = self->item_count;
        qsort (self->keylines, self->keyline_count, sizeof (s_keyline_t), s_keyline_compare);
    }
}

int
herd_config_scan_line (herd_config_scan_t *self, zconfig_t *key)
{
    if (!self || !key || self->keyline_count == 0)
        return 0;
    s_keyline_t probe = {key, 0};
    s_keyline_t *found = (s_keyline_t *) bsearch (&probe, self->keylines, self->keyline_count,
                                                  sizeof (s_keyline_t), s_keyline_compare);
    return found ? found->line : 0;
}

//  -------------------------------------------------------------------------
//  Self test (herd_config's covers every message through the loader)

//  Scan text that must fail at line with a reason containing expect.
static void
s_test_bad (const char *text, int line, const char *expect)
{
    int bad_line = 0;
    char *reason = NULL;
    HERD_CHECK (herd_config_scan_new (text, &bad_line, &reason) == NULL);
    HERD_CHECK_INT (bad_line, line);
    HERD_CHECK_CONTAINS (reason, expect);
    free (reason);
}

void
herd_config_scan_test (bool verbose)
{
    (void) verbose;
    //  Keys get their lines once paired with zconfig's tree
    const char *text = "# top\nherd\n    run_dir = x   # why\n\nnode = A\n    log = 'a #1'\n";
    int line = 0;
    char *reason = NULL;
    herd_config_scan_t *scan = herd_config_scan_new (text, &line, &reason);
    HERD_CHECK (scan && !reason);
    zconfig_t *root = zconfig_str_load (text);
    HERD_CHECK (root);
    HERD_CHECK_INT (herd_config_scan_line (scan, zconfig_locate (root, "herd")), 0);
    herd_config_scan_map (scan, root);
    HERD_CHECK_INT (herd_config_scan_line (scan, zconfig_locate (root, "herd")), 2);
    HERD_CHECK_INT (herd_config_scan_line (scan, zconfig_locate (root, "herd/run_dir")), 3);
    HERD_CHECK_INT (herd_config_scan_line (scan, zconfig_locate (root, "node/log")), 6);
    HERD_CHECK_INT (herd_config_scan_line (scan, NULL), 0);
    HERD_CHECK_INT (herd_config_scan_line (NULL, root), 0);
    herd_config_scan_destroy (&scan);
    HERD_CHECK (scan == NULL);
    herd_config_scan_destroy (&scan);

    //  A tree of another text: no line rather than a wrong one
    scan = herd_config_scan_new ("herd\nnode\n", &line, &reason);
    herd_config_scan_map (scan, root);
    HERD_CHECK_INT (herd_config_scan_line (scan, zconfig_locate (root, "herd")), 0);
    herd_config_scan_destroy (&scan);
    zconfig_destroy (&root);

    //  One bad line for each step
    s_test_bad ("herd\n\trun_dir = x\n", 2, "a tab is used for indentation");
    s_test_bad ("a\nb c\n", 2, "expected '=' after name 'b'");
    s_test_bad ("a = \"x\n", 1, "unterminated quote");
    s_test_bad ("a\n        b\n", 2, "deeper than its parent at line 1");
}
