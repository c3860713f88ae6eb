/* report_merge: which windows `tlsterm report` counts, and their sum. See
 * report_merge.h for the rules. */
#include "report_merge.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char unknown[] = "unknown";

static void format_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *instance_of_window(const struct report_window *w)
{
    return w->num_instances > 0 ? w->instances[0] : unknown;
}

/* struct plan is what choose and sum share: every window's sources, in
 * |all| from |first[i]|, |count[i]| of them (a window without a list
 * stands for itself, once per instance). */
struct plan {
    const struct report_window *windows;
    struct report_source *all;
    size_t *first, *count;
};

static int plan_init(struct plan *plan, const struct report_window *windows, size_t num)
{
    size_t total = 1;

    plan->windows = windows;
    for (size_t i = 0; i < num; i++)
        total += windows[i].num_sources > 0     ? windows[i].num_sources
                 : windows[i].num_instances > 0 ? windows[i].num_instances
                                                : 1;
    plan->all = calloc(total, sizeof(*plan->all));
    plan->first = calloc(num + 1, sizeof(*plan->first));
    plan->count = calloc(num + 1, sizeof(*plan->count));
    if (plan->all == NULL || plan->first == NULL || plan->count == NULL)
        return -1;
    for (size_t i = 0, at = 0; i < num; i++) {
        const struct report_window *w = &windows[i];
        plan->first[i] = at;
        if (w->num_sources > 0) {
            memcpy(&plan->all[at], w->sources, w->num_sources * sizeof(*w->sources));
            at += w->num_sources;
        } else {
            for (size_t j = 0; j == 0 || j < w->num_instances; j++)
                plan->all[at++] = (struct report_source){
                    .report_id = w->report_id,
                    .instance = w->num_instances > 0 ? w->instances[j] : unknown,
                    .start = w->start,
                    .end = w->end};
        }
        plan->count[i] = at - plan->first[i];
    }
    return 0;
}

static void plan_cleanup(struct plan *plan)
{
    free(plan->all);
    free(plan->first);
    free(plan->count);
}

/* by_choice_order: merges first, the largest first; then one instance's
 * windows together in time order, of two with one start the one that ends
 * last first (a file before a /report answer of its window). */
static int by_choice_order(const void *a, const void *b, void *arg)
{
    const struct plan *plan = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const struct report_source *x = &plan->all[plan->first[i]], *y = &plan->all[plan->first[j]];

    if (plan->count[i] != plan->count[j])
        return plan->count[i] > plan->count[j] ? -1 : 1;
    int order = strcmp(x->instance, y->instance);
    if (order != 0)
        return order;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end > y->end ? -1 : 1;
    return i < j ? -1 : i > j;
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

/* esc is |s| escaped for a terminal into |out|: report files are untrusted. */
static const char *esc(const char *s, char *out, size_t out_len)
{
    log_escape(out, out_len, s, strlen(s), LOG_ESCAPE_TERMINAL, NULL);
    return out;
}

/* struct counted is a source window already counted, from window |by|. */
struct counted {
    const struct report_source *src;
    size_t by;
};

/* conflict returns the counted window that |src| repeats (same report-id)
 * or overlaps (same instance), or NULL; |*same_id| says which. */
static const struct counted *conflict(const struct counted *counted, size_t num,
                                      const struct report_source *src, bool *same_id)
{
    for (size_t i = 0; i < num; i++) {
        const struct report_source *c = counted[i].src;
        *same_id = strcmp(c->report_id, src->report_id) == 0;
        if (*same_id || (strcmp(c->instance, src->instance) == 0 && src->start < c->end &&
                         c->start < src->end))
            return &counted[i];
    }
    return NULL;
}

/* warn_left_out says why window |i| is left out: its source |src| repeats
 * or overlaps |c|. */
static void warn_left_out(const struct plan *plan, size_t i, const struct report_source *src,
                          const struct counted *c, bool same_id, FILE *warnings)
{
    const struct report_window *w = &plan->windows[i], *k = &plan->windows[c->by];
    char source[2048], by[2048], id[1024], instance[256], a[32], b[32];

    esc(w->source, source, sizeof(source));
    esc(k->source, by, sizeof(by));
    esc(src->report_id, id, sizeof(id));
    esc(src->instance, instance, sizeof(instance));
    format_time(c->src->start, a);
    format_time(c->src->end, b);
    if (plan->count[i] > 1 || w->num_sources > 0)
        fprintf(warnings,
                "tlsterm report: %s: a merge whose window (report-id %s, instance %s) %s %s's: "
                "left out whole, so that no handshake counts twice\n",
                source, id, instance, same_id ? "is also counted in" : "overlaps a window of",
                by);
    else if (same_id && plan->count[c->by] == 1 && k->num_sources == 0)
        fprintf(warnings,
                "tlsterm report: %s: report-id %s is also %s's: the same window, counted once "
                "(%s's, which ends last)\n",
                source, id, by, by);
    else if (same_id)
        fprintf(warnings,
                "tlsterm report: %s: report-id %s is also counted in %s (a merge): the same "
                "window, counted once\n",
                source, id, by);
    else
        fprintf(warnings,
                "tlsterm report: %s: its window overlaps %s's (instance %s, %s to %s): left "
                "out, so that no handshake counts twice\n",
                source, by, instance, a, b);
}

/* choose marks in |used| the windows that count and warns about the rest. */
static int choose(const struct plan *plan, size_t num, const struct report_merge_options *options,
                  FILE *warnings, bool *used)
{
    size_t *order = malloc((num > 0 ? num : 1) * sizeof(*order));
    struct counted *counted = NULL;
    size_t num_order = 0, num_counted = 0, total = 0;

    for (size_t i = 0; i < num; i++)
        total += plan->count[i];
    counted = malloc((total > 0 ? total : 1) * sizeof(*counted));
    if (order == NULL || counted == NULL) {
        free(order);
        free(counted);
        return -1;
    }
    for (size_t i = 0; i < num; i++) {
        const struct report_window *w = &plan->windows[i];
        used[i] = (!options->has_since || w->start >= options->since) &&
                  (!options->has_until || w->end <= options->until);
        if (used[i])
            order[num_order++] = i;
    }
    qsort_r(order, num_order, sizeof(*order), by_choice_order, (void *)plan);
    for (size_t n = 0; n < num_order; n++) {
        size_t i = order[n];
        for (size_t j = 0; j < plan->count[i] && used[i]; j++) {
            const struct report_source *src = &plan->all[plan->first[i] + j];
            bool same_id;
            const struct counted *c = conflict(counted, num_counted, src, &same_id);
            if (c != NULL) {
                warn_left_out(plan, i, src, c, same_id, warnings);
                used[i] = false;
            }
        }
        for (size_t j = 0; j < plan->count[i] && used[i]; j++)
            counted[num_counted++] = (struct counted){&plan->all[plan->first[i] + j], i};
    }
    free(order);
    free(counted);
    return 0;
}

static int by_instance_then_start(const void *a, const void *b)
{
    const struct report_source *x = a, *y = b;
    int order = strcmp(x->instance, y->instance);
    if (order != 0)
        return order;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return strcmp(x->report_id, y->report_id);
}

/* fnv1a hashes |s| into |hash|. */
static uint64_t fnv1a(uint64_t hash, const char *s)
{
    for (; *s != '\0'; s++)
        hash = (hash ^ (unsigned char)*s) * 0x100000001b3ULL;
    return hash;
}

/* make_id names the merge after its range and the windows it counts, so
 * that merging the same windows again, however nested, gives the same id. */
static void make_id(struct report_merged *out)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    char start[32], end[32];
    struct tm tm;

    for (size_t i = 0; i < out->num_sources; i++)
        hash = fnv1a(fnv1a(hash, out->sources[i].report_id), "\n");
    gmtime_r(&out->start, &tm);
    strftime(start, sizeof(start), "%Y%m%dT%H%M%SZ", &tm);
    gmtime_r(&out->end, &tm);
    strftime(end, sizeof(end), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out->report_id, sizeof(out->report_id), "merge-%s-%s-%016" PRIx64, start, end,
             hash);
}

/* add_counts adds |w|'s counts to |to|: 0, -1 when out of memory, -2 after
 * saying that a count would overflow. */
static int add_counts(struct report_data *to, const struct report_window *w, FILE *warnings)
{
    char source[2048];
    int added = report_data_merge(to, w->data);

    if (added == -2)
        fprintf(warnings, "tlsterm report: %s: counts overflow\n",
                esc(w->source, source, sizeof(source)));
    return added;
}

/* sum adds up the windows marked in |used| into |out|. */
static int sum(const struct plan *plan, size_t num, const bool *used, bool by_instance,
               FILE *warnings, struct report_merged *out)
{
    const struct report_window *windows = plan->windows;
    size_t max_names = 1, max_sources = 1;
    int added;

    for (size_t i = 0; i < num; i++)
        max_names += windows[i].num_instances + windows[i].num_versions + 1;
    for (size_t i = 0; i < num; i++)
        max_sources += plan->count[i];
    out->sources = calloc(max_sources, sizeof(*out->sources));
    out->data = report_data_new();
    out->instances = calloc(max_names, sizeof(*out->instances));
    out->versions = calloc(max_names, sizeof(*out->versions));
    if (out->data == NULL || out->instances == NULL || out->versions == NULL ||
        out->sources == NULL)
        return -1;
    for (size_t i = 0; i < num; i++) {
        const struct report_window *w = &windows[i];
        if (!used[i])
            continue;
        if ((added = add_counts(out->data, w, warnings)) != 0)
            return added;
        memcpy(&out->sources[out->num_sources], &plan->all[plan->first[i]],
               plan->count[i] * sizeof(*out->sources));
        out->num_sources += plan->count[i];
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
        add_name(out->instances, &out->num_instances, instance_of_window(w));
        for (size_t j = 1; j < w->num_instances; j++)
            add_name(out->instances, &out->num_instances, w->instances[j]);
        if (w->num_versions == 0)
            add_name(out->versions, &out->num_versions, unknown);
        for (size_t j = 0; j < w->num_versions; j++)
            add_name(out->versions, &out->num_versions, w->versions[j]);
    }
    qsort(out->instances, out->num_instances, sizeof(*out->instances), compare_strings);
    qsort(out->versions, out->num_versions, sizeof(*out->versions), compare_strings);
    qsort(out->sources, out->num_sources, sizeof(*out->sources), by_instance_then_start);
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
            bsearch(&(const char *){instance_of_window(&windows[i])}, out->instances,
                    out->num_instances, sizeof(*out->instances), compare_strings);
        if ((added = add_counts(out->by_instance[found - out->instances], &windows[i],
                                warnings)) != 0)
            return added;
    }
    return 0;
}

int report_merge(const struct report_window *windows, size_t num,
                 const struct report_merge_options *options, bool by_instance, FILE *warnings,
                 struct report_merged *out)
{
    bool *used = calloc(num > 0 ? num : 1, sizeof(*used));
    struct plan plan = {0};
    int result = -1;

    memset(out, 0, sizeof(*out));
    if (used == NULL || plan_init(&plan, windows, num) != 0 ||
        choose(&plan, num, options, warnings, used) != 0 ||
        (result = sum(&plan, num, used, by_instance, warnings, out)) != 0)
        goto fail;
    if (out->num_versions > 1) {
        char version[256];
        fprintf(warnings, "tlsterm report: the reports come from different tlsterm versions (");
        for (size_t i = 0; i < out->num_versions; i++)
            fprintf(warnings, "%s%s", i > 0 ? ", " : "",
                    esc(out->versions[i], version, sizeof(version)));
        fprintf(warnings, "): their counts are added up; the result lists every version\n");
    }
    make_id(out);
    free(used);
    plan_cleanup(&plan);
    return 0;
fail:
    free(used);
    plan_cleanup(&plan);
    report_merged_cleanup(out);
    return result != 0 ? result : -1;
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
        .sources = merged->sources,
        .num_sources = merged->num_sources,
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
    free(merged->sources);
    memset(merged, 0, sizeof(*merged));
}
