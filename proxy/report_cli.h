/* report_cli: what the two halves of "tlsterm report" share. report_cli.c
 * reads one report (a strict JSON parser, the check of a report's fields)
 * and prints it as a table; report_cli_merge.c reads several, adds them up
 * (report_merge.c) and prints the sum. */
#ifndef TLSTERM_REPORT_CLI_H
#define TLSTERM_REPORT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "file.h"

enum json_kind { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* struct jnode is one JSON value, |at| bytes into the file. |text| is a
 * string's decoded bytes or a number's text (in its document's text);
 * arrays and objects have |num| |items|, which they own. An object's items
 * are its members, each with its |key| (found |key_at| bytes into the
 * file), sorted by key once the object is parsed. */
struct jnode {
    enum json_kind kind;
    const char *text;
    size_t num;
    struct jnode *items;
    const char *key;
    size_t at;
    size_t key_at;
};

/* struct jdoc is a parsed file: the tree, and |text|, which holds the
 * text of its strings and numbers, NUL-terminated. |escaped| replaces
 * |text| for the table (escape_strings). */
struct jdoc {
    struct jnode root;
    char *text;
    char *escaped;
};

/* report_cli_load reads the report at |path| ("-": standard input, then
 * named "stdin" in messages) into |out_contents| and parses and checks it
 * into |out_doc|; the caller releases both (file_contents_cleanup,
 * report_cli_doc_cleanup) whatever the result. It returns 0, or -1 after
 * writing why to stderr ("FILE:LINE:COL: message" for a problem in it). */
int report_cli_load(const char *path, struct file_contents *out_contents, struct jdoc *out_doc);

/* report_cli_parse parses and checks the report of |len| bytes at |data|
 * (called |name| in messages) into |out_doc|, which the caller releases
 * whatever the result. It returns 0, or -1 after writing why to stderr. */
int report_cli_parse(const char *name, const char *data, size_t len, struct jdoc *out_doc);

/* report_cli_parse_time reads an RFC 3339 time ("2026-11-26T16:00:00Z", or
 * with an offset such as "+02:00"; no fraction of a second) into |out|. It
 * returns 0, or -1. */
int report_cli_parse_time(const char *text, time_t *out);

/* report_cli_refuse writes "FILE:LINE:COL: not a report: ..." for the byte
 * |at| bytes into |data| and returns -1. */
int report_cli_refuse(const char *path, const char *data, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* report_cli_doc_cleanup releases what |doc| owns. */
void report_cli_doc_cleanup(struct jdoc *doc);

/* report_cli_get returns |object|'s member |key|, or NULL. */
const struct jnode *report_cli_get(const struct jnode *object, const char *key);

/* report_cli_escape_strings points every string of |doc| at its form
 * escaped for a terminal, for the table. It returns 0, or -1 when out of
 * memory. */
int report_cli_escape_strings(struct jdoc *doc);

/* struct report_cli_columns adds |num| columns named |names| to each
 * listener's row of the table: |cell| writes column |column|'s text for
 * the entry |policy| (of "report-only-policies" when |report_only|). */
struct report_cli_columns {
    size_t num;
    const char *const *names;
    void (*cell)(void *arg, size_t column, const struct jnode *policy, bool report_only,
                 char *out, size_t out_len);
    void *arg;
};

/* report_cli_print_table prints |doc|, a checked report with its strings
 * escaped, with the extra |columns| (NULL: none). */
void report_cli_print_table(const struct jnode *doc, const struct report_cli_columns *columns);

/* report_cli_merge runs "tlsterm report" over the |num_paths| in |paths|
 * (files, directories of tlsterm-report-*.json, "-") with the options
 * given; it returns the exit code (report.h's report_cli_main). */
struct report_merge_options;
int report_cli_merge(char **paths, size_t num_paths, const struct report_merge_options *options,
                     bool as_json, bool by_instance);

#endif
