/* report_cli_merge: "tlsterm report FILE|DIR..." over several reports. Each
 * file is read and checked as report_cli.c does for one, turned back into
 * counts (struct report_data), and the windows are added up by
 * report_merge.c; the sum is written as a report (--json) or shown as the
 * table, with a column per instance under --by-instance.
 *
 * A directory stands for its tlsterm-report-*.json files (in name order);
 * the temporary files a writer renames into place start with a dot and are
 * never read. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>

#include "report.h"
#include "report_cli.h"
#include "report_merge.h"

#define REPORT_NAME_PREFIX "tlsterm-report-"
#define REPORT_NAME_SUFFIX ".json"

/* struct input is one report read: the file's bytes and tree, which the
 * window's strings point into, and its counts. */
struct input {
    char *path;
    struct file_contents contents;
    struct jdoc doc;
    const char **names; /* the window's instances, then its versions */
    struct report_source *sources; /* a merge's windows */
    struct report_data *data;
};

struct inputs {
    struct input *items;
    size_t num, cap;
};

static int add_path(struct inputs *in, const char *path)
{
    if (in->num == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        struct input *grown = realloc(in->items, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        in->items = grown;
        in->cap = cap;
    }
    struct input *item = &in->items[in->num];
    memset(item, 0, sizeof(*item));
    if ((item->path = strdup(path)) == NULL)
        return -1;
    in->num++;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_report_name(const char *name)
{
    size_t len = strlen(name), prefix = strlen(REPORT_NAME_PREFIX),
           suffix = strlen(REPORT_NAME_SUFFIX);
    return len > prefix + suffix && strncmp(name, REPORT_NAME_PREFIX, prefix) == 0 &&
           strcmp(name + len - suffix, REPORT_NAME_SUFFIX) == 0;
}

/* add_directory adds the report files of |dir| in name order. It returns
 * 0, or -1 after saying why. */
static int add_directory(struct inputs *in, const char *dir)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t num = 0, cap = 0;
    int result = -1;
    struct dirent *entry;

    if (d == NULL) {
        fprintf(stderr, "tlsterm: cannot read directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((entry = readdir(d)) != NULL) {
        if (!is_report_name(entry->d_name))
            continue;
        if (num == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof(*grown));
            if (grown == NULL)
                goto done;
            names = grown;
        }
        if ((names[num] = strdup(entry->d_name)) == NULL)
            goto done;
        num++;
    }
    qsort(names, num, sizeof(*names), compare_names);
    result = 0;
    for (size_t i = 0; i < num && result == 0; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        result = add_path(in, path);
    }
done:
    if (result != 0)
        fprintf(stderr, "tlsterm: %s: out of memory\n", dir);
    closedir(d);
    for (size_t i = 0; i < num; i++)
        free(names[i]);
    free(names);
    return result;
}

/* policy_key_of reads the listener+policy of |policy| (a checked entry)
 * into |out|, its listener pointing into the tree. It returns 0, or -1 when
 * its policy-string is not one tlsterm writes. */
static int policy_key_of(const struct jnode *policy, bool report_only,
                         struct report_policy_key *out)
{
    const struct jnode *p = report_cli_get(policy, "policy");
    const struct jnode *strings = report_cli_get(p, "policy-string");

    memset(out, 0, sizeof(*out));
    out->listener = report_cli_get(p, "policy-domain")->text;
    out->report_only = report_only;
    if (strings->num < 3 || strlen(out->listener) > REPORT_LISTENER_MAX ||
        strncmp(strings->items[0].text, "policy: ", 8) != 0 ||
        strncmp(strings->items[1].text, "min_version: ", 13) != 0 ||
        strncmp(strings->items[2].text, "max_version: ", 13) != 0)
        return -1;
    if (report_policy_number(strings->items[0].text + 8, &out->policy) != 0 ||
        report_version_number(strings->items[1].text + 13, &out->min_version) != 0 ||
        report_version_number(strings->items[2].text + 13, &out->max_version) != 0)
        return -1;
    return 0;
}

/* read_top reads the top list |list| into |out|. A marked entry makes it
 * saturated; so does a full list from a file written before the marks
 * (|unmarked_file|), which may have seen more values than it kept. */
static int read_top(const struct input *f, const struct jnode *list, const char *key_name,
                    bool unmarked_file, struct report_top *out)
{
    memset(out, 0, sizeof(*out));
    if (list->num > REPORT_TOP_K)
        return report_cli_refuse(f->path, (const char *)f->contents.data, list->at,
                                 "a top list has %zu entries; at most %d", list->num,
                                 REPORT_TOP_K);
    for (size_t i = 0; i < list->num; i++) {
        const struct jnode *entry = &list->items[i];
        const struct jnode *upper = report_cli_get(entry, "upper-bound");
        const char *key = report_cli_get(entry, key_name)->text;
        if (strlen(key) >= REPORT_KEY_MAX)
            return report_cli_refuse(f->path, (const char *)f->contents.data, entry->at,
                                     "'%s' is longer than %d bytes", key_name,
                                     REPORT_KEY_MAX - 1);
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->entries[j].key, key) == 0)
                return report_cli_refuse(f->path, (const char *)f->contents.data, entry->at,
                                         "'%s' repeats an earlier entry of its top list",
                                         key_name);
        snprintf(out->entries[i].key, sizeof(out->entries[i].key), "%s", key);
        out->entries[i].count = strtoull(report_cli_get(entry, "count")->text, NULL, 10);
        if (upper != NULL && upper->kind == JSON_BOOL && strcmp(upper->text, "true") == 0)
            out->saturated = true;
    }
    out->num = list->num;
    if (unmarked_file && list->num == REPORT_TOP_K)
        out->saturated = true;
    return 0;
}

/* read_policies adds the entries of the list |name| of |f| to its data. */
static int read_policies(struct input *f, const char *name, bool report_only, bool unmarked)
{
    const struct jnode *list = report_cli_get(&f->doc.root, name);
    const char *data = (const char *)f->contents.data;

    for (size_t i = 0; list != NULL && i < list->num; i++) {
        const struct jnode *policy = &list->items[i];
        const struct jnode *summary = report_cli_get(policy, "summary");
        const struct jnode *details = report_cli_get(policy, "failure-details");
        struct report_policy_key key;
        uint64_t failures = 0;

        if (policy_key_of(policy, report_only, &key) != 0)
            return report_cli_refuse(f->path, data, policy->at,
                                     "a policy that tlsterm does not write (its policy-domain "
                                     "or policy-string); it cannot be added up");
        for (size_t k = 0; k < i; k++) {
            struct report_policy_key earlier;
            if (policy_key_of(&list->items[k], report_only, &earlier) == 0 &&
                strcmp(earlier.listener, key.listener) == 0 && earlier.policy == key.policy &&
                earlier.min_version == key.min_version && earlier.max_version == key.max_version)
                return report_cli_refuse(f->path, data, policy->at,
                                         "a policy that repeats an earlier entry of '%s' "
                                         "(its policy-domain and policy-string)",
                                         name);
        }
        uint64_t successes =
            strtoull(report_cli_get(summary, "total-successful-session-count")->text, NULL, 10);
        if (report_data_add_success(f->data, &key, successes) != 0)
            return -1;
        for (size_t j = 0; j < details->num; j++) {
            const struct jnode *d = &details->items[j];
            const char *type = report_cli_get(d, "result-type")->text;
            uint64_t count =
                strtoull(report_cli_get(d, "failed-session-count")->text, NULL, 10);
            struct report_top networks, ja4s, versions;
            for (size_t k = 0; k < j; k++)
                if (strcmp(report_cli_get(&details->items[k], "result-type")->text, type) == 0)
                    return report_cli_refuse(f->path, data, d->at,
                                             "'result-type' repeats an earlier entry of its "
                                             "policy's failure-details");
            if (strlen(type) >= REPORT_RESULT_TYPE_MAX)
                return report_cli_refuse(f->path, data, d->at,
                                         "'result-type' is longer than %d bytes",
                                         REPORT_RESULT_TYPE_MAX - 1);
            if (read_top(f, report_cli_get(d, "top-client-networks"), "network", unmarked,
                         &networks) != 0 ||
                read_top(f, report_cli_get(d, "top-ja4"), "ja4", unmarked, &ja4s) != 0 ||
                read_top(f, report_cli_get(d, "top-offered-max-versions"), "version", unmarked,
                         &versions) != 0)
                return -1;
            if (report_data_add_result(f->data, &key, type, count, &networks, &ja4s,
                                       &versions) != 0)
                return -1;
            if (__builtin_add_overflow(failures, count, &failures))
                return report_cli_refuse(f->path, data, d->at,
                                         "the failure-details add up to more than %" PRIu64,
                                         UINT64_MAX);
        }
        uint64_t total =
            strtoull(report_cli_get(summary, "total-failure-session-count")->text, NULL, 10);
        if (total != failures)
            return report_cli_refuse(f->path, data, summary->at,
                                     "'total-failure-session-count' is %" PRIu64
                                     " but the failure-details add up to %" PRIu64,
                                     total, failures);
    }
    return 0;
}

/* check_instance refuses an instance name that a configuration could not
 * have given (CFG_INSTANCE_CHARS, at most CFG_INSTANCE_MAX): such a name
 * would reach the table's headers and the warnings as it is. */
static int check_instance(const struct input *f, const struct jnode *name)
{
    size_t len = strlen(name->text);

    if (len == 0 || len > CFG_INSTANCE_MAX || strspn(name->text, CFG_INSTANCE_CHARS) != len)
        return report_cli_refuse(f->path, (const char *)f->contents.data, name->at,
                                 "an instance name is 1 to %d of A-Z a-z 0-9 _ . -",
                                 CFG_INSTANCE_MAX);
    return 0;
}

/* read_range reads the times of |range| (date-range, or a source) into
 * |out_start| and |out_end|, refusing a window that ends before it starts. */
static int read_range(const struct input *f, const struct jnode *range, time_t *out_start,
                      time_t *out_end)
{
    const char *data = (const char *)f->contents.data;
    const struct jnode *start = report_cli_get(range, "start-datetime");
    const struct jnode *end = report_cli_get(range, "end-datetime");

    if (report_cli_parse_time(start->text, out_start) != 0)
        return report_cli_refuse(f->path, data, start->at, "'start-datetime' is not RFC 3339");
    if (report_cli_parse_time(end->text, out_end) != 0)
        return report_cli_refuse(f->path, data, end->at, "'end-datetime' is not RFC 3339");
    if (*out_end < *out_start)
        return report_cli_refuse(f->path, data, end->at,
                                 "'end-datetime' is before 'start-datetime'");
    return 0;
}

/* read_sources reads the "sources" of a merge, |list|, into |out|. */
static int read_sources(struct input *f, const struct jnode *list, struct report_window *out)
{
    if (list == NULL || list->num == 0)
        return 0;
    if ((f->sources = calloc(list->num, sizeof(*f->sources))) == NULL) {
        fprintf(stderr, "tlsterm: %s: out of memory\n", f->path);
        return -1;
    }
    for (size_t i = 0; i < list->num; i++) {
        const struct jnode *item = &list->items[i];
        const struct jnode *instance = report_cli_get(item, "instance");
        struct report_source *src = &f->sources[i];
        if (check_instance(f, instance) != 0 ||
            read_range(f, item, &src->start, &src->end) != 0)
            return -1;
        src->report_id = report_cli_get(item, "report-id")->text;
        src->instance = instance->text;
    }
    out->sources = f->sources;
    out->num_sources = list->num;
    return 0;
}

/* read_window loads |f| and fills |out| from it. It returns 0, or -1 after
 * saying why. */
static int read_window(struct input *f, struct report_window *out)
{
    const struct jnode *root, *range, *tlsterm;

    if (report_cli_load(f->path, &f->contents, &f->doc) != 0)
        return -1;
    root = &f->doc.root;
    range = report_cli_get(root, "date-range");
    tlsterm = report_cli_get(root, "tlsterm");
    memset(out, 0, sizeof(*out));
    out->source = f->path;
    out->organization = report_cli_get(root, "organization-name")->text;
    out->report_id = report_cli_get(root, "report-id")->text;
    out->num_windows = 1;
    if (read_range(f, range, &out->start, &out->end) != 0)
        return -1;
    if (tlsterm != NULL) {
        const struct jnode *instances = report_cli_get(tlsterm, "instances");
        const struct jnode *versions = report_cli_get(tlsterm, "versions");
        f->names = calloc(instances->num + versions->num + 1, sizeof(*f->names));
        if (f->names == NULL)
            goto oom;
        for (size_t i = 0; i < instances->num; i++) {
            if (check_instance(f, &instances->items[i]) != 0)
                return -1;
            f->names[i] = instances->items[i].text;
        }
        for (size_t i = 0; i < versions->num; i++)
            f->names[instances->num + i] = versions->items[i].text;
        out->instances = f->names;
        out->num_instances = instances->num;
        out->versions = f->names + instances->num;
        out->num_versions = versions->num;
        out->num_windows = strtoull(report_cli_get(tlsterm, "windows")->text, NULL, 10);
        if (read_sources(f, report_cli_get(tlsterm, "sources"), out) != 0)
            return -1;
    }
    if ((f->data = report_data_new()) == NULL)
        goto oom;
    if (read_policies(f, "policies", false, tlsterm == NULL) != 0 ||
        read_policies(f, "report-only-policies", true, tlsterm == NULL) != 0)
        return -1;
    out->data = f->data;
    return 0;
oom:
    fprintf(stderr, "tlsterm: %s: out of memory\n", f->path);
    return -1;
}

/* instance_cell writes an instance's "SUCCESSES/FAILURES" for a row. */
static void instance_cell(void *arg, size_t column, const struct jnode *policy,
                          bool report_only, char *out, size_t out_len)
{
    const struct report_merged *merged = arg;
    struct report_policy_key key;
    uint64_t successes, failures;

    if (policy_key_of(policy, report_only, &key) != 0) {
        snprintf(out, out_len, "-");
        return;
    }
    report_data_counts(merged->by_instance[column], &key, &successes, &failures);
    snprintf(out, out_len, "%" PRIu64 "/%" PRIu64, successes, failures);
}

/* print_merged prints the table of the report |json| made of |merged|. */
static int print_merged(struct evbuffer *json, const struct report_merged *merged,
                        bool by_instance)
{
    size_t len = evbuffer_get_length(json);
    const char *text = (const char *)evbuffer_pullup(json, -1);
    struct jdoc doc;
    char **names = NULL;
    int status = 1;

    memset(&doc, 0, sizeof(doc));
    if (text == NULL || report_cli_parse("the merged report", text, len, &doc) != 0 ||
        report_cli_escape_strings(&doc) != 0)
        goto done;
    struct report_cli_columns columns = {
        .num = merged->num_instances, .cell = instance_cell, .arg = (void *)merged};
    if (by_instance) {
        names = calloc(merged->num_instances + 1, sizeof(*names));
        if (names == NULL)
            goto done;
        for (size_t i = 0; i < merged->num_instances; i++) {
            /* Instance names are CFG_INSTANCE_CHARS (checked when read), or
             * "unknown"; whole, since a fleet's names often share a long
             * prefix (Kubernetes pods) and a cut would make them collide. */
            size_t size = CFG_INSTANCE_MAX + sizeof(" S/F");
            names[i] = malloc(size);
            if (names[i] == NULL)
                goto done;
            snprintf(names[i], size, "%.*s S/F", CFG_INSTANCE_MAX, merged->instances[i]);
        }
        columns.names = (const char *const *)names;
    }
    printf("%zu report%s of %zu instance%s, %" PRIu64 " window%s\n", merged->num_used,
           merged->num_used == 1 ? "" : "s", merged->num_instances,
           merged->num_instances == 1 ? "" : "s", merged->num_windows,
           merged->num_windows == 1 ? "" : "s");
    report_cli_print_table(&doc.root, by_instance ? &columns : NULL);
    status = 0;
done:
    if (status != 0)
        fprintf(stderr, "tlsterm report: cannot show the merged report (out of memory)\n");
    for (size_t i = 0; names != NULL && i < merged->num_instances; i++)
        free(names[i]);
    free(names);
    report_cli_doc_cleanup(&doc);
    return status;
}

int report_cli_merge(char **paths, size_t num_paths, const struct report_merge_options *options,
                     bool as_json, bool by_instance)
{
    struct inputs in = {0};
    struct report_window *windows = NULL;
    struct report_merged merged = {0};
    struct evbuffer *json = evbuffer_new();
    int status = 1;

    for (size_t i = 0; i < num_paths; i++) {
        struct stat st;
        bool dir =
            strcmp(paths[i], "-") != 0 && stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode);
        if ((dir ? add_directory(&in, paths[i]) : add_path(&in, paths[i])) != 0)
            goto done;
    }
    windows = calloc(in.num > 0 ? in.num : 1, sizeof(*windows));
    if (json == NULL || windows == NULL)
        goto done;
    for (size_t i = 0; i < in.num; i++)
        if (read_window(&in.items[i], &windows[i]) != 0)
            goto done;
    int merged_status = report_merge(windows, in.num, options, by_instance, stderr, &merged);
    if (merged_status != 0) {
        if (merged_status == -1)
            fprintf(stderr, "tlsterm report: out of memory\n");
        goto done;
    }
    if (merged.num_used == 0) {
        fprintf(stderr, "tlsterm report: no report to add up (%zu read, none %s)\n", in.num,
                in.num == 0 ? "found" : "within --since/--until");
        goto done;
    }
    struct report_meta meta;
    report_merged_meta(&merged, &meta);
    if (report_write_json(merged.data, &meta, json) != 0) {
        fprintf(stderr, "tlsterm report: out of memory\n");
        goto done;
    }
    if (as_json) {
        fwrite(evbuffer_pullup(json, -1), 1, evbuffer_get_length(json), stdout);
        status = 0;
    } else {
        status = print_merged(json, &merged, by_instance);
    }
done:
    report_merged_cleanup(&merged);
    for (size_t i = 0; i < in.num; i++) {
        struct input *f = &in.items[i];
        report_cli_doc_cleanup(&f->doc);
        file_contents_cleanup(&f->contents);
        report_data_free(f->data);
        free(f->names);
        free(f->sources);
        free(f->path);
    }
    free(in.items);
    free(windows);
    if (json != NULL)
        evbuffer_free(json);
    return status;
}
