/* report: the TLS failure report. See report.h for the threads, the bounds
 * and the windows. */
#include "report.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clienthello.h"
#include "log.h"

/* Events a worker queues while a reader holds its block's mutex. */
#define REPORT_PENDING_MAX 64
/* How soon a worker retries to flush its queue when no new event comes. */
#define REPORT_FLUSH_RETRY_MS 100
#define REPORT_FILE_PREFIX "tlsterm-report-"
#define REPORT_FILE_SUFFIX ".json"

/* ---- the running report ---------------------------------------------------------- */

/* struct report_event is one handshake, as a worker queues it: copies, so
 * it outlives the connection and its generation. */
struct report_event {
    char listener[REPORT_LISTENER_MAX + 1];
    enum cfg_policy policy;
    uint16_t min_version;
    uint16_t max_version;
    bool report_only; /* counted for the listener's candidate policy */
    bool failed;
    char result_type[REPORT_RESULT_TYPE_MAX];
    char network[REPORT_KEY_MAX];
    char ja4[REPORT_KEY_MAX]; /* "" when no ClientHello arrived */
    char version[8];          /* likewise */
};

struct report_block {
    struct report *report;
    struct report_block *prev, *next; /* the report's blocks, under its lock */
    pthread_mutex_t lock;             /* guards |published| */
    struct report_data *published;    /* counted since the reader last took it */
    /* The worker's own: events waiting for |lock|. */
    struct report_event pending[REPORT_PENDING_MAX];
    size_t num_pending;
    struct event *flush_timer;
};

struct report {
    pthread_mutex_t lock; /* guards everything below but |timer| and |base| */
    struct report_block *blocks;
    struct report_data *window; /* the current window, up to the last take */
    time_t window_start;
    uint64_t num_windows;
    struct cfg_report cfg; /* a copy: its strings are owned */
    struct event_base *base;
    struct event *timer;
    uint32_t timer_interval_ms;
    bool started; /* report_start armed the timer: windows are real */
    /* The last completed window's JSON, for /report?window=previous; NULL
     * before the first ends. Under |lock|. */
    char *previous;
    size_t previous_len;
};

/* apply_event adds |ev| to |data|; the caller holds the block's lock. */
static void apply_event(struct report_data *data, const struct report_event *ev)
{
    const struct report_policy_key key = {ev->listener, ev->policy, ev->min_version,
                                          ev->max_version, ev->report_only};
    if (!ev->failed)
        (void)report_data_add_success(data, &key, 1);
    else
        (void)report_data_add_failure(data, &key, ev->result_type, ev->network,
                                      ev->ja4[0] ? ev->ja4 : NULL,
                                      ev->version[0] ? ev->version : NULL);
}

/* flush_locked applies the queue; the caller holds the block's lock. */
static void flush_locked(struct report_block *b)
{
    for (size_t i = 0; i < b->num_pending; i++)
        apply_event(b->published, &b->pending[i]);
    b->num_pending = 0;
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    struct report_block *b = arg;
    if (b->num_pending == 0)
        return;
    if (pthread_mutex_trylock(&b->lock) == 0) {
        flush_locked(b);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    struct timeval retry = {0, REPORT_FLUSH_RETRY_MS * 1000};
    evtimer_add(b->flush_timer, &retry);
}

/* block_record counts |ev| without waiting: under the lock if it is free,
 * else in the queue. Only a full queue waits, for a reader's pointer swap. */
static void block_record(struct report_block *b, const struct report_event *ev)
{
    if (b->num_pending == REPORT_PENDING_MAX) {
        pthread_mutex_lock(&b->lock);
    } else if (pthread_mutex_trylock(&b->lock) != 0) {
        b->pending[b->num_pending++] = *ev;
        struct timeval retry = {0, REPORT_FLUSH_RETRY_MS * 1000};
        if (b->flush_timer != NULL && !evtimer_pending(b->flush_timer, NULL))
            evtimer_add(b->flush_timer, &retry);
        return;
    }
    flush_locked(b);
    apply_event(b->published, ev);
    pthread_mutex_unlock(&b->lock);
}

static void event_key(struct report_event *ev, const struct cfg_listener *cfg)
{
    snprintf(ev->listener, sizeof(ev->listener), "%s", cfg->name);
    ev->policy = cfg->policy;
    ev->min_version = cfg->min_version;
    ev->max_version = cfg->max_version;
}

void report_block_success(struct report_block *b, const struct cfg_listener *cfg)
{
    struct report_event ev;

    if (b == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    event_key(&ev, cfg);
    block_record(b, &ev);
}

/* event_failure fills in the failure fields of |ev|. */
static void event_failure(struct report_event *ev, enum end_reason reason, uint8_t alert,
                          const struct sockaddr *client, const struct clienthello_summary *hello)
{
    char version[8];

    ev->failed = true;
    reason_name(reason, alert, ev->result_type, sizeof(ev->result_type));
    report_network_of(client, ev->network);
    if (hello != NULL) {
        char ja4[CLIENTHELLO_JA4_LEN + 1];
        clienthello_ja4(hello, ja4);
        snprintf(ev->ja4, sizeof(ev->ja4), "%s", ja4);
        snprintf(ev->version, sizeof(ev->version), "%s",
                 report_version_name(hello->max_version, version));
    }
}

void report_block_failure(struct report_block *b, const struct cfg_listener *cfg,
                          enum end_reason reason, uint8_t alert, const struct sockaddr *client,
                          const struct clienthello_summary *hello)
{
    struct report_event ev;

    if (b == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    event_key(&ev, cfg);
    event_failure(&ev, reason, alert, client, hello);
    block_record(b, &ev);
}

void report_block_candidate(struct report_block *b, const struct cfg_listener *cfg,
                            bool would_fail, enum end_reason reason,
                            const struct sockaddr *client,
                            const struct clienthello_summary *hello)
{
    struct report_event ev;

    if (b == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    snprintf(ev.listener, sizeof(ev.listener), "%s", cfg->name);
    ev.policy = cfg->report_only.policy;
    ev.min_version = cfg->report_only.min_version;
    ev.max_version = cfg->report_only.max_version;
    ev.report_only = true;
    if (would_fail)
        event_failure(&ev, reason, 0, client, hello);
    block_record(b, &ev);
}

struct report_block *report_block_new(struct report *report, struct event_base *base)
{
    struct report_block *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->report = report;
    b->published = report_data_new();
    b->flush_timer = evtimer_new(base, on_flush_timer, b);
    if (b->published == NULL || b->flush_timer == NULL) {
        report_data_free(b->published);
        if (b->flush_timer != NULL)
            event_free(b->flush_timer);
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_lock(&report->lock);
    b->next = report->blocks;
    if (report->blocks != NULL)
        report->blocks->prev = b;
    report->blocks = b;
    pthread_mutex_unlock(&report->lock);
    return b;
}

void report_block_free(struct report_block *b)
{
    if (b == NULL)
        return;
    struct report *report = b->report;
    pthread_mutex_lock(&report->lock);
    pthread_mutex_lock(&b->lock);
    flush_locked(b);
    (void)report_data_merge(report->window, b->published);
    pthread_mutex_unlock(&b->lock);
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        report->blocks = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    pthread_mutex_unlock(&report->lock);
    event_free(b->flush_timer);
    report_data_free(b->published);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* take_all moves what every block counted into the window; the caller
 * holds the report's lock. Each block's lock is held for a pointer swap. */
static int take_all(struct report *report)
{
    for (struct report_block *b = report->blocks; b != NULL; b = b->next) {
        struct report_data *fresh = report_data_new();
        if (fresh == NULL)
            return -1;
        pthread_mutex_lock(&b->lock);
        struct report_data *taken = b->published;
        b->published = fresh;
        pthread_mutex_unlock(&b->lock);
        int merged = report_data_merge(report->window, taken);
        report_data_free(taken);
        if (merged != 0)
            return -1;
    }
    return 0;
}

/* render_locked writes the window so far, ending at |end|; the caller holds
 * the report's lock. */
static int render_locked(struct report *report, time_t end, struct evbuffer *out)
{
    char start_text[32], report_id[160];
    struct tm tm;

    gmtime_r(&report->window_start, &tm);
    strftime(start_text, sizeof(start_text), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(report_id, sizeof(report_id), "%s-%s-%ld-%" PRIu64, start_text, report->cfg.instance,
             (long)getpid(), report->num_windows);
    const char *instance = report->cfg.instance, *version = TLSTERM_VERSION;
    const struct report_meta meta = {
        .organization = report->cfg.organization ? report->cfg.organization : "tlsterm",
        .report_id = report_id,
        .start = report->window_start,
        .end = end,
        .instances = &instance,
        .num_instances = 1,
        .versions = &version,
        .num_versions = 1,
        .num_windows = 1,
    };
    if (take_all(report) != 0)
        return -1;
    return report_write_json(report->window, &meta, out);
}

int report_render(struct report *report, struct evbuffer *out)
{
    pthread_mutex_lock(&report->lock);
    int result = render_locked(report, time(NULL), out);
    pthread_mutex_unlock(&report->lock);
    return result;
}

int report_render_previous(struct report *report, struct evbuffer *out)
{
    pthread_mutex_lock(&report->lock);
    int result = report->previous == NULL ? 1
                 : evbuffer_add(out, report->previous, report->previous_len) != 0 ? -1
                                                                                  : 0;
    pthread_mutex_unlock(&report->lock);
    return result;
}

/* keep_previous keeps a copy of the window just rendered to |json| (which
 * it leaves as it is) for report_render_previous; the caller holds the
 * report's lock. Out of memory, the older copy is dropped too: the window
 * before last served as "previous" would be the wrong window, so
 * /report?window=previous answers 404 until the next window ends. */
static void keep_previous(struct report *report, struct evbuffer *json)
{
    size_t len = evbuffer_get_length(json);
    char *copy = malloc(len > 0 ? len : 1);

    if (copy == NULL || evbuffer_copyout(json, copy, len) != (ev_ssize_t)len) {
        free(copy);
        copy = NULL;
        len = 0;
    }
    free(report->previous);
    report->previous = copy;
    report->previous_len = len;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The UTC time in a report file's name: 20261126T160000Z. */
#define REPORT_NAME_TIME_LEN 16

static bool is_name_time(const char *s)
{
    for (size_t i = 0; i < REPORT_NAME_TIME_LEN; i++) {
        bool ok = i == 8 ? s[i] == 'T' : i == 15 ? s[i] == 'Z' : s[i] >= '0' && s[i] <= '9';
        if (!ok)
            return false;
    }
    return true;
}

/* is_own_report_file says whether |name| is a report file of |instance|:
 * exactly tlsterm-report-START-END-INSTANCE.json. Matching the whole name
 * keeps instance "edge" off the files of "edge-1" or "x-edge" in a shared
 * directory. */
static bool is_own_report_file(const char *name, const char *instance)
{
    size_t prefix = strlen(REPORT_FILE_PREFIX), instance_len = strlen(instance);
    const char *start = name + prefix, *end = start + REPORT_NAME_TIME_LEN + 1;
    const char *own = end + REPORT_NAME_TIME_LEN + 1;

    return strlen(name) == prefix + 2 * (REPORT_NAME_TIME_LEN + 1) + instance_len +
                               strlen(REPORT_FILE_SUFFIX) &&
           strncmp(name, REPORT_FILE_PREFIX, prefix) == 0 && is_name_time(start) &&
           start[REPORT_NAME_TIME_LEN] == '-' && is_name_time(end) &&
           end[REPORT_NAME_TIME_LEN] == '-' && strncmp(own, instance, instance_len) == 0 &&
           strcmp(own + instance_len, REPORT_FILE_SUFFIX) == 0;
}

/* prune deletes the oldest report files of |instance| in |dir| beyond
 * |keep|; other instances' files in a shared directory are theirs to prune.
 * Names hold the window's times, so name order is age order. */
static void prune(const char *dir, const char *instance, uint32_t keep)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t num = 0, cap = 0;
    struct dirent *entry;

    if (d == NULL)
        return;
    while ((entry = readdir(d)) != NULL) {
        if (!is_own_report_file(entry->d_name, instance))
            continue;
        if (num == cap) {
            size_t new_cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, new_cap * sizeof(*grown));
            if (grown == NULL)
                break;
            names = grown;
            cap = new_cap;
        }
        if ((names[num] = strdup(entry->d_name)) == NULL)
            break;
        num++;
    }
    closedir(d);
    if (num > 0)
        qsort(names, num, sizeof(*names), compare_names);
    for (size_t i = 0; i + keep < num; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            log_msg(LOG_WARN, "report_prune_failed", "cannot delete %s: %s", path,
                    strerror(errno));
    }
    for (size_t i = 0; i < num; i++)
        free(names[i]);
    free(names);
}

/* file_path writes DIR/tlsterm-report-START-END-INSTANCE.json, the name of
 * |instance|'s window from |start| to |end|, to |out_path|. */
static void file_path(const char *dir, const char *instance, time_t start, time_t end,
                      char *out_path, size_t out_path_len)
{
    char start_text[32], end_text[32];
    struct tm tm;

    gmtime_r(&start, &tm);
    strftime(start_text, sizeof(start_text), "%Y%m%dT%H%M%SZ", &tm);
    gmtime_r(&end, &tm);
    strftime(end_text, sizeof(end_text), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out_path, out_path_len, "%s/" REPORT_FILE_PREFIX "%s-%s-%s" REPORT_FILE_SUFFIX, dir,
             start_text, end_text, instance);
}

/* log_write_failed logs report_write_failed for |path| (NULL: no file was
 * due) with |problem|. */
static void log_write_failed(const char *path, const char *problem)
{
    struct log_line line;

    log_begin(&line, LOG_ERROR, "report_write_failed");
    if (path != NULL)
        log_str(&line, "file", path);
    log_str(&line, "error", problem);
    log_end(&line);
}

/* write_file writes |report_json| to |path| (in |dir|) atomically: a
 * temporary file in the same directory, fsync, rename, and an fsync of the
 * directory. It returns 0 or -1 after logging why. */
static int write_file(const char *dir, const char *path, struct evbuffer *report_json)
{
    char tmp_path[4096];
    int fd;

    snprintf(tmp_path, sizeof(tmp_path), "%s/.tlsterm-report-XXXXXX", dir);
    fd = mkostemp(tmp_path, O_CLOEXEC);
    if (fd < 0)
        goto fail;
    while (evbuffer_get_length(report_json) > 0)
        if (evbuffer_write(report_json, fd) < 0 && errno != EINTR)
            goto fail_unlink;
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
        goto fail_unlink;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_unlink;
    }
    fd = -1;
    if (rename(tmp_path, path) != 0)
        goto fail_unlink;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        (void)fsync(dir_fd);
        close(dir_fd);
    }
    return 0;
fail_unlink : {
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp_path);
    errno = saved;
}
fail:
    log_write_failed(path, strerror(errno));
    return -1;
}

/* end_window renders the window ending now, writes it when a directory is
 * configured, and starts the next one from zero. */
static void end_window(struct report *report)
{
    struct evbuffer *json = evbuffer_new();
    char path[4096];

    pthread_mutex_lock(&report->lock);
    time_t end = time(NULL);
    bool rendered = json != NULL && render_locked(report, end, json) == 0;
    if (rendered)
        keep_previous(report, json);
    time_t start = report->window_start;
    struct report_data *fresh = report_data_new();
    if (fresh != NULL) {
        report_data_free(report->window);
        report->window = fresh;
    }
    report->window_start = end;
    report->num_windows++;
    char *dir = report->cfg.dir ? strdup(report->cfg.dir) : NULL;
    char instance[CFG_INSTANCE_MAX + 1];
    snprintf(instance, sizeof(instance), "%s", report->cfg.instance);
    uint32_t keep = report->cfg.keep;
    pthread_mutex_unlock(&report->lock);

    if (dir != NULL)
        file_path(dir, instance, start, end, path, sizeof(path));
    if (!rendered)
        log_write_failed(dir != NULL ? path : NULL, "out of memory for the report");
    else if (dir != NULL && write_file(dir, path, json) == 0) {
        prune(dir, instance, keep);
        struct log_line line;
        log_begin(&line, LOG_INFO, "report_written");
        log_str(&line, "file", path);
        log_end(&line);
    }
    free(dir);
    if (json != NULL)
        evbuffer_free(json);
}

static void on_window_end(evutil_socket_t fd, short what, void *arg) { end_window(arg); }

/* arm_timer (re)arms the window timer when the interval changed. */
static int arm_timer(struct report *report)
{
    uint32_t ms = report->cfg.interval_ms;
    if (report->timer == NULL || ms == report->timer_interval_ms)
        return 0;
    struct timeval every = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_del(report->timer);
    if (event_add(report->timer, &every) != 0)
        return -1;
    report->timer_interval_ms = ms;
    return 0;
}

static void cleanup_cfg(struct cfg_report *cfg)
{
    free(cfg->dir);
    free(cfg->organization);
    free(cfg->instance);
}

/* copy_cfg copies |from| with its strings; an instance missing (out of
 * memory at load) becomes "localhost". */
static int copy_cfg(struct cfg_report *to, const struct cfg_report *from)
{
    *to = *from;
    to->dir = from->dir ? strdup(from->dir) : NULL;
    to->organization = from->organization ? strdup(from->organization) : NULL;
    to->instance = strdup(from->instance ? from->instance : "localhost");
    if ((from->dir && !to->dir) || (from->organization && !to->organization) ||
        to->instance == NULL) {
        cleanup_cfg(to);
        return -1;
    }
    return 0;
}

struct report *report_new(const struct cfg_report *cfg)
{
    struct report *report = calloc(1, sizeof(*report));

    if (report == NULL)
        return NULL;
    report->window = report_data_new();
    if (report->window == NULL || copy_cfg(&report->cfg, cfg) != 0) {
        report_data_free(report->window);
        free(report);
        return NULL;
    }
    pthread_mutex_init(&report->lock, NULL);
    report->window_start = time(NULL);
    return report;
}

int report_configure(struct report *report, const struct cfg_report *cfg)
{
    struct cfg_report copy;

    if (copy_cfg(&copy, cfg) != 0)
        return -1;
    pthread_mutex_lock(&report->lock);
    struct cfg_report old = report->cfg;
    report->cfg = copy;
    pthread_mutex_unlock(&report->lock);
    cleanup_cfg(&old);
    return arm_timer(report);
}

int report_start(struct report *report, struct event_base *base)
{
    report->base = base;
    report->timer = event_new(base, -1, EV_PERSIST, on_window_end, report);
    if (report->timer == NULL || arm_timer(report) != 0)
        return -1;
    report->started = true;
    return 0;
}

void report_stop(struct report *report)
{
    if (report == NULL || report->timer == NULL)
        return;
    event_free(report->timer);
    report->timer = NULL;
    report->timer_interval_ms = 0;
}

void report_finish(struct report *report)
{
    if (report != NULL && report->started && report->cfg.dir != NULL)
        end_window(report);
}

void report_free(struct report *report)
{
    if (report == NULL)
        return;
    report_stop(report);
    report_data_free(report->window);
    cleanup_cfg(&report->cfg);
    free(report->previous);
    pthread_mutex_destroy(&report->lock);
    free(report);
}
