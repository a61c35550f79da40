//  herd_refusals.c - which refusals the bus logs: each sender and reason once.

#include "herd_refusals.h"
#include "../common/herd_check.h"

struct _herd_refusals_t {
    uint64_t logged[HERD_REFUSALS_PAIRS];   //  hashes of the pairs logged
    size_t count;
    int64_t quiet_until;                    //  all pairs taken: no line before, ms
};

herd_refusals_t *
herd_refusals_new (void)
{
    herd_refusals_t *self = (herd_refusals_t *) zmalloc (sizeof (herd_refusals_t));
    return self;
}

void
herd_refusals_destroy (herd_refusals_t **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

//  FNV-1a over text, from hash.
static uint64_t
s_fnv (uint64_t hash, const char *text)
{
    for (const char *c = text; *c; c++)
        hash = (hash ^ (byte) *c) * 1099511628211ULL;
    return hash;
}

bool
herd_refusals_first (herd_refusals_t *self, const char *from, const char *reason, int64_t now_ms)
{
    assert (self && from && reason);
    //  0xff cannot occur in either text: it keeps ("ab", "c") apart from ("a", "bc")
    uint64_t hash = s_fnv ((s_fnv (14695981039346656037ULL, from) ^ 0xff) * 1099511628211ULL,
                           reason);
    for (size_t i = 0; i < self->count; i++)
        if (self->logged[i] == hash)
            return false;
    if (self->count < HERD_REFUSALS_PAIRS) {
        self->logged[self->count++] = hash;
        return true;
    }
    if (now_ms < self->quiet_until)
        return false;
    self->quiet_until = now_ms + HERD_REFUSALS_QUIET_MS;
    return true;
}

void
herd_refusals_printable (herd_msg_bytes_t bytes, char *out, size_t out_size)
{
    size_t size = bytes.data ? bytes.size : 0, used = 0;
    for (size_t i = 0; i < size && used + 1 < out_size && i < 64; i++) {
        byte c = ((const byte *) bytes.data)[i];
        out[used++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
    }
    out[used] = 0;
    if (used == 0)
        snprintf (out, out_size, "?");
}

//  -------------------------------------------------------------------------
//  Self test

void
herd_refusals_test (bool verbose)
{
    if (verbose)
        printf (" * herd_refusals: ");
    herd_refusals_t *self = herd_refusals_new ();
    //  Each pair once, however often it comes
    HERD_CHECK (herd_refusals_first (self, "Smith", "herd 'b', ours 'a'", 0));
    for (int i = 0; i < 1000; i++)
        HERD_CHECK (!herd_refusals_first (self, "Smith", "herd 'b', ours 'a'", i));
    HERD_CHECK (herd_refusals_first (self, "Smith", "wire version 3, ours 2", 0));
    HERD_CHECK (herd_refusals_first (self, "Hill", "herd 'b', ours 'a'", 0));
    //  The sender and the reason are not run together
    HERD_CHECK (herd_refusals_first (self, "ab", "c", 0));
    HERD_CHECK (herd_refusals_first (self, "a", "bc", 0));
    //  Until the pairs run out; then one line a minute, whoever sends
    char from[32];
    for (int i = 5; i < HERD_REFUSALS_PAIRS; i++) {
        snprintf (from, sizeof (from), "10.0.0.%d", i);
        HERD_CHECK (herd_refusals_first (self, from, "no envelope", 1000));
    }
    HERD_CHECK (herd_refusals_first (self, "stranger", "no envelope", 1000));
    HERD_CHECK (!herd_refusals_first (self, "another", "no envelope", 1001));
    HERD_CHECK (!herd_refusals_first (self, "another", "no envelope",
                                      1000 + HERD_REFUSALS_QUIET_MS - 1));
    HERD_CHECK (herd_refusals_first (self, "another", "no envelope",
                                      1000 + HERD_REFUSALS_QUIET_MS));
    //  Logged pairs stay quiet even then
    HERD_CHECK (!herd_refusals_first (self, "Smith", "herd 'b', ours 'a'", 10000000));
    herd_refusals_destroy (&self);
    HERD_CHECK (!self);

    //  What a stranger sends is logged as printable text, cut short
    char text[80];
    herd_refusals_printable (herd_msg_str ("Smith"), text, sizeof (text));
    HERD_CHECK_STR (text, "Smith");
    herd_refusals_printable ((herd_msg_bytes_t){"a\nb\x01\xff", 5}, text, sizeof (text));
    HERD_CHECK_STR (text, "a?b??");
    herd_refusals_printable ((herd_msg_bytes_t){NULL, 0}, text, sizeof (text));
    HERD_CHECK_STR (text, "?");
    char long_name[200];
    memset (long_name, 'x', sizeof (long_name));
    herd_refusals_printable ((herd_msg_bytes_t){long_name, sizeof (long_name)}, text,
                             sizeof (text));
    HERD_CHECK_INT (strlen (text), 64);
    if (verbose)
        printf ("OK\n");
}
