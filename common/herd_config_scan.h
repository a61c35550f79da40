//  herd_config_scan.h - herd.cfg's text, checked line by line as zconfig reads it.
//
//  zconfig (czmq 4.2.1 src/zconfig.c) parses ZPL, but says only "syntax
//  error" and silently misreads some lines (a tab before a key, a comment
//  after an empty value). The scan walks the text line by line with
//  zconfig's own rules first, and reports the first line zconfig would
//  reject or misread with a reason; it also records every key with its
//  line and level. Once zconfig has built its tree from the same text,
//  herd_config_scan_map pairs the tree's keys (in file order) with those
//  lines, so the config's messages can say "FILE:LINE:".
//
//  The lexical half of loading a config, herd_config.c the semantic half:
//  this file knows zconfig's line rules, nothing of herd's keys.

#ifndef HERD_CONFIG_SCAN_H_INCLUDED
#define HERD_CONFIG_SCAN_H_INCLUDED

#include <czmq.h>

//  zconfig reads at most this many bytes a line
#define HERD_CONFIG_SCAN_LINE_MAX 1024

typedef struct _herd_config_scan_t herd_config_scan_t;

//  Scan text (a whole file, NUL-terminated) line by line. Returns a new
//  scan holding every key's line, or NULL with *line_p (1-based) and
//  *reason_p (caller frees) saying what is wrong with the first bad line.
//  text must outlive the scan: keys' names are read from it.
herd_config_scan_t *
    herd_config_scan_new (const char *text, int *line_p, char **reason_p);

//  Destroy a scan; NULL-safe.
void
    herd_config_scan_destroy (herd_config_scan_t **self_p);

//  Give every key of zconfig's tree of the same text its line. If the tree
//  and the scan disagree anywhere, every line stays unknown: messages go
//  without line numbers rather than with wrong ones.
void
    herd_config_scan_map (herd_config_scan_t *self, zconfig_t *root);

//  The line key came from, or 0 when unknown (also for a NULL self or key).
int
    herd_config_scan_line (herd_config_scan_t *self, zconfig_t *key);

//  Self test of this class.
void
    herd_config_scan_test (bool verbose);

#endif
