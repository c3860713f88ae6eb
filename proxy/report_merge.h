/* report_merge: the windows `tlsterm report` adds up, and their sum.
 *
 * Given reports read back from files (or from /report answers), it chooses
 * which count and adds them up:
 *   - with --since/--until, a window counts when it lies within: its start
 *     at or after since, its end at or before until. A window that only
 *     overlaps the bounds is left out, never counted in part, since a
 *     report cannot say when in its window a handshake happened;
 *   - two reports with the same report-id are one window read twice (a file
 *     and a saved /report answer, or a file given twice): it counts once,
 *     the one that ends last (a /report answer is the window so far);
 *   - two windows of one instance that overlap in time would count the
 *     same handshakes twice: the later-starting one is left out. Files
 *     from before the "tlsterm" member are all of instance "unknown", so
 *     two of them that overlap count once too;
 *   - a merged report stands for the windows it lists ("sources"), and
 *     those are checked as above: merges are taken first (the largest
 *     first), then a window already counted in one is left out, and a
 *     merge that shares or overlaps a window already counted is left out
 *     whole (it cannot be taken apart);
 *   - counts that would pass 2^64-1 when added refuse the merge.
 *   - reports written by different tlsterm versions are added up, and the
 *     result lists every version.
 * Each of these is one warning line, "tlsterm report: FILE: ...". The sum
 * is exact per listener and policy; top lists merge with report_top_merge.
 *
 * Nothing here reads files or JSON: report_cli.c does, which keeps this
 * unit-testable. */
#ifndef TLSTERM_REPORT_MERGE_H
#define TLSTERM_REPORT_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "report.h"

/* struct report_window is one report to merge. Every pointer is the
 * caller's and must outlive the struct report_merged made from it. */
struct report_window {
    const char *source; /* where it was read, for messages */
    const char *organization;
    const char *report_id;
    time_t start, end;
    /* Its "tlsterm" member; none (0) in a file from before it existed,
     * which counts as instance "unknown" and version "unknown". */
    const char *const *instances;
    size_t num_instances;
    const char *const *versions;
    size_t num_versions;
    uint64_t num_windows; /* windows it adds up: 1, or more for a merge */
    /* A merge's windows; none (0) for one window, and in a merge from
     * before they were listed: the report then stands for itself, once
     * per instance. */
    const struct report_source *sources;
    size_t num_sources;
    const struct report_data *data;
};

/* struct report_merge_options chooses the windows: those that lie within
 * [since, until] when |has_since| / |has_until|. */
struct report_merge_options {
    bool has_since, has_until;
    time_t since, until;
};

/* REPORT_MERGE_ID_MAX holds a merged report's id and its NUL. */
#define REPORT_MERGE_ID_MAX 96

/* struct report_merged is the sum, owned by the caller
 * (report_merged_cleanup). The strings point into the windows. */
struct report_merged {
    struct report_data *data;
    size_t num_used; /* windows counted; 0: nothing to report */
    time_t start, end;
    uint64_t num_windows;
    char report_id[REPORT_MERGE_ID_MAX]; /* "merge-START-END-HASH" */
    const char *organization;            /* the windows' when they agree, else "tlsterm" */
    const char **instances;              /* sorted, no repeats */
    size_t num_instances;
    const char **versions; /* sorted, no repeats */
    size_t num_versions;
    /* With by_instance: |instances|' own sums, in the same order (a window
     * of several instances, itself a merge, counts under its first). */
    struct report_data **by_instance;
    struct report_source *sources; /* the windows counted, by instance then start */
    size_t num_sources;
};

/* report_merge adds up the chosen windows of the |num| in |windows| into
 * |out|, writing a warning line to |warnings| for each report left out or
 * counted once and for mixed versions. With |by_instance| it also sums per
 * instance. It returns 0; -1 when out of memory, or -2 when a sum
 * would overflow after writing "tlsterm report: FILE: counts overflow"
 * to |warnings| (|out| is then empty). Names from the windows are
 * escaped (LOG_ESCAPE_TERMINAL) in the warnings. */
int report_merge(const struct report_window *windows, size_t num,
                 const struct report_merge_options *options, bool by_instance, FILE *warnings,
                 struct report_merged *out);

/* report_merged_meta fills |out_meta| to write |merged| with
 * report_write_json. It points into |merged|. */
void report_merged_meta(const struct report_merged *merged, struct report_meta *out_meta);

/* report_merged_cleanup releases what |merged| owns. */
void report_merged_cleanup(struct report_merged *merged);

#endif
