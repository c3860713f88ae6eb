/* report: the TLS failure report, an RFC 8460 (TLS-RPT) style JSON summary
 * of the handshakes of a time window: per listener and policy, the
 * successful and failed session counts, and the failures by result-type
 * (our reason token) with their top client networks, JA4 fingerprints and
 * offered maximum versions.
 *
 * A listener with a report-only policy (tls.report_only) also has an entry
 * for that candidate, counted with the same tables, in a separate list
 * ("report-only-policies"): of the clients that completed the real
 * handshake, those that would pass the candidate are its successes and
 * those that would fail it its failures, by the reason the candidate would
 * give. They are kept apart so that a reader adding up "policies" counts
 * only what really happened.
 *
 * Threads. Each worker owns a struct report_block and records into it from
 * the connection path without waiting on anyone: it applies an event to
 * its block's "published" data under the block's mutex only when
 * pthread_mutex_trylock gets it; when the reader holds the mutex the event
 * goes to a small private queue that the next record (or a 100 ms timer)
 * flushes. The reader (the admin thread serving /report, or the main
 * thread at the end of a window) holds a block's mutex only to swap its
 * published data for an empty one, a pointer swap, and merges what it took
 * into the window's totals outside that mutex. So a worker never blocks on
 * a reader for more than a pointer swap, and only when its queue is full.
 * A double buffer would need the reader to ask the worker to flip and wait
 * for it; this needs no round trip.
 *
 * Memory is bounded whatever the clients send: at most REPORT_MAX_POLICIES
 * listener+policy entries, report-only ones included (beyond: one entry with
 * listener "*" for each kind, real and report-only), at most
 * REPORT_MAX_RESULT_TYPES result-types each (beyond: "other"), and top
 * tables of REPORT_TOP_K entries kept with the space-saving algorithm:
 * counts are exact while a table has seen at most REPORT_TOP_K distinct
 * values, and upper bounds after that.
 *
 * Windows. A window starts when the report is made and ends every
 * interval; at its end the report is written to the configured directory
 * (temporary file, fsync, rename), the oldest files beyond `keep` are
 * deleted, and the counts start again from zero. An event still queued in a
 * worker at that moment (at most 100 ms old) counts in the next window. */
#ifndef TLSTERM_REPORT_H
#define TLSTERM_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "reason.h"

struct clienthello_summary;
struct event_base;
struct evbuffer;

#define REPORT_TOP_K 16
#define REPORT_MAX_POLICIES 64
#define REPORT_MAX_RESULT_TYPES 32
/* REPORT_KEY_MAX bytes hold any top-table key and its NUL: a network
 * ("2001:db8:1::/48"), a JA4 (36 characters) or a version. */
#define REPORT_KEY_MAX 56
/* The longest listener name and result-type (our reason tokens) kept. */
#define REPORT_LISTENER_MAX 64
#define REPORT_RESULT_TYPE_MAX 48

/* struct report_top is a top-K table: |num| entries, unsorted.
 *
 * |saturated| says the table may be missing values. While it is false the
 * counts are exact and a value not in the table was never counted. Once it
 * is true every count is an upper bound (at least the true count; the
 * report marks each with "upper-bound": true) and a value not in the table
 * was counted at most as often as the table's smallest count says. A table
 * becomes saturated when a value comes to a full table (space-saving: it
 * takes the smallest entry's place and count, plus its own), and a merge
 * keeps both promises (report_top_merge). */
struct report_top_entry {
    char key[REPORT_KEY_MAX];
    uint64_t count;
};
struct report_top {
    struct report_top_entry entries[REPORT_TOP_K];
    size_t num;
    bool saturated;
};

/* report_top_add counts |weight| more for |key| (cut to REPORT_KEY_MAX - 1
 * bytes). A key not in a full table replaces the entry with the smallest
 * count and takes that count plus |weight| (space-saving), so the counts
 * always sum to the total added; the table is saturated from then on. */
void report_top_add(struct report_top *top, const char *key, uint64_t weight);

/* report_top_merge adds |src| to |dst| so that the result keeps the promises
 * of struct report_top for the two together. A value's merged count is its
 * count in each table, and, for a saturated table that lacks it, that
 * table's smallest count (the most it can have been counted there): so the
 * sum is an upper bound of the true count. Of the union the REPORT_TOP_K
 * largest are kept (ties by key). The result is saturated when either table
 * was or when values were dropped; a dropped value, or one in neither table,
 * was counted at most as often as the smallest kept count. When neither
 * table is saturated and the union fits, every count is the exact sum. */
void report_top_merge(struct report_top *dst, const struct report_top *src);

/* report_top_sorted copies |top|'s entries to |out|, largest count first
 * (ties by key), and returns how many there are. */
size_t report_top_sorted(const struct report_top *top,
                         struct report_top_entry out[REPORT_TOP_K]);

/* report_network_of writes the client network of |addr| to |out|: the /24
 * of an IPv4 address (IPv4-mapped IPv6 included), the /48 of an IPv6
 * address, "unknown" for anything else. It returns |out|. */
const char *report_network_of(const struct sockaddr *addr, char out[REPORT_KEY_MAX]);

/* report_version_name returns "TLSv1.2" style text for a protocol version
 * number, or writes "0x0305" style text to |buf| and returns it. */
const char *report_version_name(uint16_t version, char buf[8]);

/* struct report_policy_key identifies a listener+policy entry; |report_only|
 * marks a candidate policy's entry (see the top of this file). */
struct report_policy_key {
    const char *listener;
    enum cfg_policy policy;
    uint16_t min_version;
    uint16_t max_version;
    bool report_only;
};

/* struct report_data is the counts of some handshakes; opaque. */
struct report_data;

/* report_data_new returns empty counts, owned by the caller
 * (report_data_free), or NULL when out of memory. */
struct report_data *report_data_new(void);

/* report_data_free releases |data|. NULL is allowed. */
void report_data_free(struct report_data *data);

/* report_data_add_success counts |n| successful handshakes for |key|. It
 * returns 0, or -1 when out of memory (nothing counted). */
int report_data_add_success(struct report_data *data, const struct report_policy_key *key,
                            uint64_t n);

/* report_data_add_failure counts one failed handshake for |key| with
 * |result_type|, from client network |network|; |ja4| and |version| (the
 * offered maximum) are NULL when no ClientHello arrived. It returns 0, or -1
 * when out of memory (nothing counted). */
int report_data_add_failure(struct report_data *data, const struct report_policy_key *key,
                            const char *result_type, const char *network, const char *ja4,
                            const char *version);

/* report_data_add_result counts |count| failed handshakes for |key| with
 * |result_type| at once, whose top tables are |networks|, |ja4s| and
 * |versions| (merged with report_top_merge): a result-type read back from a
 * report. It returns 0, or -1 when out of memory (nothing counted). */
int report_data_add_result(struct report_data *data, const struct report_policy_key *key,
                           const char *result_type, uint64_t count,
                           const struct report_top *networks, const struct report_top *ja4s,
                           const struct report_top *versions);

/* report_data_counts writes |key|'s successful and failed handshakes in
 * |data| (0 and 0 for a key it lacks) to |out_successes| and |out_failures|. */
void report_data_counts(const struct report_data *data, const struct report_policy_key *key,
                        uint64_t *out_successes, uint64_t *out_failures);

/* report_version_number parses "TLSv1.2" style text or "0x0305" style text
 * (report_version_name's) into |out|. It returns 0, or -1. */
int report_version_number(const char *name, uint16_t *out);

/* report_policy_number parses "intermediate", "modern" or "custom" into
 * |out|. It returns 0, or -1. */
int report_policy_number(const char *name, enum cfg_policy *out);

/* report_data_merge adds every count of |src| to |dst|. It returns 0, -1
 * when out of memory, or -2 when a count would pass UINT64_MAX (|dst| then
 * holds part of |src|). */
int report_data_merge(struct report_data *dst, const struct report_data *src);

/* struct report_source is one instance's window that a merged report
 * counts: its "tlsterm" member's "sources" entries. */
struct report_source {
    const char *report_id;
    const char *instance;
    time_t start;
    time_t end;
};

/* struct report_meta is what a report says about itself. The "tlsterm"
 * member (left out when |num_instances| is 0) names the instances whose
 * windows it counts and the tlsterm versions that counted them, each
 * sorted and without repeats, and how many windows it adds up (1 for one
 * instance's window; more for `tlsterm report` merging several). */
struct report_meta {
    const char *organization;
    const char *contact_info; /* NULL: left out */
    const char *report_id;
    time_t start;
    time_t end;
    const char *const *instances;
    size_t num_instances;
    const char *const *versions;
    size_t num_versions;
    uint64_t num_windows;
    /* A merge's windows, written as "sources" (0: left out, as for one
     * instance's window, which is its own source). */
    const struct report_source *sources;
    size_t num_sources;
};

/* report_write_json appends the report of |data| described by |meta| to
 * |out|: one JSON object, two-space indented, ending in a newline; policies
 * sorted by listener then policy, result-types by count (largest first)
 * then name; the report-only entries in "report-only-policies", sorted the
 * same way. It returns 0, or -1 when out of memory. */
int report_write_json(const struct report_data *data, const struct report_meta *meta,
                      struct evbuffer *out);

/* ---- the running report ------------------------------------------------------ */

struct report;
struct report_block;

/* report_new returns the process's report, its first window starting now,
 * configured by |cfg| (copied), owned by the caller (report_free); NULL
 * when out of memory. */
struct report *report_new(const struct cfg_report *cfg);

/* report_configure applies |cfg| (after a reload): the organization, the
 * directory and `keep` at once, the interval from the next window. It
 * returns 0, or -1 when out of memory (the old settings stay). Call it on
 * the thread that called report_start. */
int report_configure(struct report *report, const struct cfg_report *cfg);

/* report_start arms the end-of-window timer on |base| (the main thread's
 * loop). It returns 0 or -1. */
int report_start(struct report *report, struct event_base *base);

/* report_stop disarms the timer; call it before |base| is freed. */
void report_stop(struct report *report);

/* report_render appends the current window so far, as JSON, to |out|. It
 * returns 0, or -1 when out of memory. Thread-safe. */
int report_render(struct report *report, struct evbuffer *out);

/* report_render_previous appends the last completed window, as it was
 * written (or would have been, without a directory), to |out|. It returns
 * 0, 1 when no window has completed yet, or -1 when out of memory.
 * Thread-safe. */
int report_render_previous(struct report *report, struct evbuffer *out);

/* report_finish ends the current window as its timer would, writing it to
 * the directory if one is configured. Call it once the workers stopped. */
void report_finish(struct report *report);

/* report_free releases |report|; every block must have been freed. NULL is
 * allowed. */
void report_free(struct report *report);

/* report_block_new returns a block of |report| for the worker whose loop is
 * |base|, owned by the caller (report_block_free); NULL when out of memory.
 * Thread-safe. */
struct report_block *report_block_new(struct report *report, struct event_base *base);

/* report_block_free adds what |block| still holds to its report's window
 * and releases it. Call it on the worker's thread or after the worker
 * stopped. NULL is allowed. */
void report_block_free(struct report_block *block);

/* report_block_success counts a completed handshake on listener |cfg|.
 * Only the block's worker calls it; it never waits for a lock. NULL
 * |block| is allowed (no report). */
void report_block_success(struct report_block *block, const struct cfg_listener *cfg);

/* report_block_failure counts a handshake on listener |cfg| that failed
 * with |reason| (and the client's |alert| for END_CLIENT_ALERT), from
 * |client|, which offered |hello| (NULL when none arrived). Only the
 * block's worker calls it; it never waits for a lock. NULL |block| is
 * allowed. */
void report_block_failure(struct report_block *block, const struct cfg_listener *cfg,
                          enum end_reason reason, uint8_t alert, const struct sockaddr *client,
                          const struct clienthello_summary *hello);

/* report_block_candidate counts a handshake on listener |cfg|, which has a
 * report-only policy, that really completed: as a success of the candidate
 * when |would_fail| is false, else as a failure with |reason| (what
 * report_only_evaluate said), from |client|, which offered |hello| (NULL
 * once forgotten). Only the block's worker calls it; it never waits for a
 * lock. NULL |block| is allowed. */
void report_block_candidate(struct report_block *block, const struct cfg_listener *cfg,
                            bool would_fail, enum end_reason reason,
                            const struct sockaddr *client,
                            const struct clienthello_summary *hello);

/* report_cli_main runs "tlsterm report [--json] [--since T] [--until T]
 * [--by-instance] FILE|DIR..." with the arguments after "report" and
 * returns the exit code: 0, 1 for a missing or invalid file (or nothing
 * left to merge), 2 for a usage error. (report_cli.c) */
int report_cli_main(int argc, char **argv);

#endif
