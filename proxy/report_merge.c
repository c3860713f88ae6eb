/* report_merge: which windows `tlsterm report` counts, and their sum. See
 * report_merge.h for the rules. */
#include "report_merge.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char unknown[] = "unknown";

static void format_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *instance_of(const struct report_window *w)
{
    return w->num_instances > 0 ? w->instances[0] : unknown;
}

/* The windows, sorted for one pass of checks over a copy of their indices. */
static const struct report_window *sorting;

/* by_id_then_end: same report-id together, the one that ends last first. */
static int by_id_then_end(const void *a, const void *b)
{
    const struct report_window *x = &sorting[*(const size_t *)a];
    const struct report_window *y = &sorting[*(const size_t *)b];
    int order = strcmp(x->report_id, y->report_id);
    if (order != 0)
        return order;
    return x->end > y->end ? -1 : x->end < y->end;
}

/* by_instance_then_start: one instance's windows together, in time order. */
static int by_instance_then_start(const void *a, const void *b)
{
    const struct report_window *x = &sorting[*(const size_t *)a];
    const struct report_window *y = &sorting[*(const size_t *)b];
    int order = strcmp(instance_of(x), instance_of(y));
    if (order != 0)
        return order;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* add_name adds |name| to the list |names| of |*num| unless it is there. */
static void add_name(const char **names, size_t *num, const char *name)
{
    for (size_t i = 0; i < *num; i++)
        if (strcmp(names[i], name) == 0)
            return;
    names[(*num)++] = name;
}

/* choose marks in |used| the windows that count and warns about the rest. */
static int choose(const struct report_window *windows, size_t num,
                  const struct report_merge_options *options, FILE *warnings, bool *used)
{
    size_t *order = malloc((num > 0 ? num : 1) * sizeof(*order));
    size_t num_order = 0;
    char a[32], b[32];

    if (order == NULL)
        return -1;
    for (size_t i = 0; i < num; i++) {
        const struct report_window *w = &windows[i];
        used[i] = (!options->has_since || w->start >= options->since) &&
                  (!options->has_until || w->end <= options->until);
        if (used[i])
            order[num_order++] = i;
    }
    sorting = windows;
    qsort(order, num_order, sizeof(*order), by_id_then_end);
    for (size_t i = 1; i < num_order; i++) {
        const struct report_window *kept = &windows[order[i - 1]], *w = &windows[order[i]];
        if (strcmp(kept->report_id, w->report_id) != 0 || !used[order[i - 1]])
            continue;
        fprintf(warnings,
                "tlsterm report: %s: report-id %s is also %s's: the same window, counted once "
                "(%s's, which ends last)\n",
                w->source, w->report_id, kept->source, kept->source);
        used[order[i]] = false;
        order[i] = order[i - 1]; /* the next duplicate compares with the kept one */
    }
    num_order = 0;
    for (size_t i = 0; i < num; i++)
        if (used[i] && windows[i].num_instances == 1)
            order[num_order++] = i;
    qsort(order, num_order, sizeof(*order), by_instance_then_start);
    for (size_t i = 1, kept = num_order > 0 ? order[0] : 0; i < num_order; i++) {
        const struct report_window *k = &windows[kept], *w = &windows[order[i]];
        if (strcmp(instance_of(k), instance_of(w)) != 0 || w->start >= k->end) {
            kept = order[i];
            continue;
        }
        format_time(k->start, a);
        format_time(k->end, b);
        fprintf(warnings,
                "tlsterm report: %s: its window overlaps %s's (instance %s, %s to %s): left "
                "out, so that no handshake counts twice\n",
                w->source, k->source, instance_of(w), a, b);
        used[order[i]] = false;
    }
    free(order);
    return 0;
}

/* fnv1a hashes |s| into |hash|. */
static uint64_t fnv1a(uint64_t hash, const char *s)
{
    for (; *s != '\0'; s++)
        hash = (hash ^ (unsigned char)*s) * 0x100000001b3ULL;
    return hash;
}

/* make_id names the merge after its range and the ids it counts, so that
 * merging the same windows again gives the same id. */
static void make_id(const struct report_window *windows, size_t num, const bool *used,
                    struct report_merged *out)
{
    const char **ids = malloc((num > 0 ? num : 1) * sizeof(*ids));
    uint64_t hash = 0xcbf29ce484222325ULL;
    char start[32], end[32];
    struct tm tm;
    size_t num_ids = 0;

    for (size_t i = 0; ids != NULL && i < num; i++)
        if (used[i])
            ids[num_ids++] = windows[i].report_id;
    if (ids != NULL)
        qsort(ids, num_ids, sizeof(*ids), compare_strings);
    for (size_t i = 0; i < num_ids; i++)
        hash = fnv1a(fnv1a(hash, ids[i]), "\n");
    free(ids);
    gmtime_r(&out->start, &tm);
    strftime(start, sizeof(start), "%Y%m%dT%H%M%SZ", &tm);
    gmtime_r(&out->end, &tm);
    strftime(end, sizeof(end), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out->report_id, sizeof(out->report_id), "merge-%s-%s-%016" PRIx64, start, end,
             hash);
}

/* sum adds up the windows marked in |used| into |out|. */
static int sum(const struct report_window *windows, size_t num, const bool *used,
               bool by_instance, struct report_merged *out)
{
    size_t max_names = 1;

    for (size_t i = 0; i < num; i++)
        max_names += windows[i].num_instances + windows[i].num_versions + 1;
    out->data = report_data_new();
    out->instances = calloc(max_names, sizeof(*out->instances));
    out->versions = calloc(max_names, sizeof(*out->versions));
    if (out->data == NULL || out->instances == NULL || out->versions == NULL)
        return -1;
    for (size_t i = 0; i < num; i++) {
        const struct report_window *w = &windows[i];
        if (!used[i])
            continue;
        if (report_data_merge(out->data, w->data) != 0)
            return -1;
        if (out->num_used == 0 || w->start < out->start)
            out->start = w->start;
        if (out->num_used == 0 || w->end > out->end)
            out->end = w->end;
        if (out->num_used == 0)
            out->organization = w->organization;
        else if (strcmp(out->organization, w->organization) != 0)
            out->organization = "tlsterm";
        out->num_used++;
        out->num_windows += w->num_windows;
        add_name(out->instances, &out->num_instances, instance_of(w));
        for (size_t j = 1; j < w->num_instances; j++)
            add_name(out->instances, &out->num_instances, w->instances[j]);
        if (w->num_versions == 0)
            add_name(out->versions, &out->num_versions, unknown);
        for (size_t j = 0; j < w->num_versions; j++)
            add_name(out->versions, &out->num_versions, w->versions[j]);
    }
    qsort(out->instances, out->num_instances, sizeof(*out->instances), compare_strings);
    qsort(out->versions, out->num_versions, sizeof(*out->versions), compare_strings);
    if (!by_instance)
        return 0;
    out->by_instance = calloc(out->num_instances + 1, sizeof(*out->by_instance));
    if (out->by_instance == NULL)
        return -1;
    for (size_t i = 0; i < out->num_instances; i++)
        if ((out->by_instance[i] = report_data_new()) == NULL)
            return -1;
    for (size_t i = 0; i < num; i++) {
        if (!used[i])
            continue;
        const char **found =
            bsearch(&(const char *){instance_of(&windows[i])}, out->instances,
                    out->num_instances, sizeof(*out->instances), compare_strings);
        if (report_data_merge(out->by_instance[found - out->instances], windows[i].data) != 0)
            return -1;
    }
    return 0;
}

int report_merge(const struct report_window *windows, size_t num,
                 const struct report_merge_options *options, bool by_instance, FILE *warnings,
                 struct report_merged *out)
{
    bool *used = calloc(num > 0 ? num : 1, sizeof(*used));

    memset(out, 0, sizeof(*out));
    if (used == NULL || choose(windows, num, options, warnings, used) != 0 ||
        sum(windows, num, used, by_instance, out) != 0)
        goto fail;
    if (out->num_versions > 1) {
        fprintf(warnings, "tlsterm report: the reports come from different tlsterm versions (");
        for (size_t i = 0; i < out->num_versions; i++)
            fprintf(warnings, "%s%s", i > 0 ? ", " : "", out->versions[i]);
        fprintf(warnings, "): their counts are added up; the result lists every version\n");
    }
    make_id(windows, num, used, out);
    free(used);
    return 0;
fail:
    free(used);
    report_merged_cleanup(out);
    return -1;
}

void report_merged_meta(const struct report_merged *merged, struct report_meta *out_meta)
{
    *out_meta = (struct report_meta){
        .organization = merged->organization != NULL ? merged->organization : "tlsterm",
        .report_id = merged->report_id,
        .start = merged->start,
        .end = merged->end,
        .instances = merged->instances,
        .num_instances = merged->num_instances,
        .versions = merged->versions,
        .num_versions = merged->num_versions,
        .num_windows = merged->num_windows,
    };
}

void report_merged_cleanup(struct report_merged *merged)
{
    report_data_free(merged->data);
    for (size_t i = 0; merged->by_instance != NULL && i < merged->num_instances; i++)
        report_data_free(merged->by_instance[i]);
    free(merged->by_instance);
    free(merged->instances);
    free(merged->versions);
    memset(merged, 0, sizeof(*merged));
}
