/* file_watch: inotify, fingerprints and the poll. See file_watch.h. */
#include "file_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "log.h"

/* Files are often replaced in several steps (key, then certificate; or
 * write, then rename): check this long after the last event... */
#define DEBOUNCE_MS 500
/* ...but no later than this after the first event of a burst, so that
 * events that never stop (a log written every 200 ms in the same
 * directory) cannot hold the check off. */
#define DEBOUNCE_MAX_MS 2000
/* What an event in a watched directory may mean for a file in it. */
#define DIR_EVENTS                                                                             \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |        \
     IN_DELETE_SELF | IN_MOVE_SELF)

/* struct fingerprint is what a check compares: the file the path resolves
 * to (symlinks followed), and its content's digest, taken only when the
 * rest moved. */
struct fingerprint {
    bool readable; /* it exists and could be hashed */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime; /* moves on a rewrite in place that kept the mtime */
    uint8_t digest[SHA256_DIGEST_LENGTH];
};

struct watched_file {
    char *path; /* as the configuration names it; owned */
    struct fingerprint seen;
};

struct file_list {
    struct watched_file *files; /* owned, with each path */
    size_t num;
};

struct file_watch {
    struct event_base *base;
    file_watch_changed_fn changed;
    void *changed_arg;
    int inotify_fd;
    struct event *inotify_ev;
    struct event *debounce_timer;
    struct event *poll_timer;
    uint64_t burst_start_ms; /* CLOCK_MONOTONIC of the burst's first event */
    struct file_list watched;
    /* Taken by file_watch_prepare before a reload reads the files, put in
     * force by the file_watch_set that follows its success. */
    struct file_list prepared;
    bool have_prepared;
    int *wds; /* the directory watches, each once */
    size_t num_wds;
};

static struct timeval ms_to_timeval(uint64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* ---- fingerprints ------------------------------------------------------------ */

static bool same_stat(const struct fingerprint *a, const struct fingerprint *b)
{
    return a->readable == b->readable && a->dev == b->dev && a->ino == b->ino &&
           a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* take_fingerprint fills |out| for |path|: not readable when it cannot be
 * opened or read (a reload would then fail and say why). The stat is of the
 * open descriptor, so digest and inode describe the same file. */
static void take_fingerprint(const char *path, struct fingerprint *out)
{
    struct stat st;
    SHA256_CTX sha;
    uint8_t chunk[16384];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    *out = (struct fingerprint){.readable = false};
    if (fd < 0)
        return;
    if (fstat(fd, &st) != 0)
        goto done;
    SHA256_Init(&sha);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        SHA256_Update(&sha, chunk, (size_t)n);
    if (n < 0)
        goto done;
    SHA256_Final(out->digest, &sha);
    out->readable = true;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    out->size = st.st_size;
    out->mtime = st.st_mtim;
    out->ctime = st.st_ctim;
done:
    close(fd);
}

/* refresh_fingerprint updates |file|'s fingerprint and says whether its
 * content (or whether it can be read) changed. The content is read only
 * when the resolved inode, size, mtime or ctime moved. */
static bool refresh_fingerprint(struct watched_file *file)
{
    struct stat st;
    struct fingerprint now = {.readable = false};

    if (stat(file->path, &st) == 0) {
        now = file->seen;
        now.dev = st.st_dev;
        now.ino = st.st_ino;
        now.size = st.st_size;
        now.mtime = st.st_mtim;
        now.ctime = st.st_ctim;
        if (same_stat(&now, &file->seen))
            return false;
        take_fingerprint(file->path, &now);
    }
    bool changed =
        now.readable != file->seen.readable ||
        (now.readable && memcmp(now.digest, file->seen.digest, sizeof(now.digest)) != 0);
    file->seen = now;
    return changed;
}

/* ---- directory watches --------------------------------------------------------- */

static bool has_wd(const int *wds, size_t num, int wd)
{
    for (size_t i = 0; i < num; i++)
        if (wds[i] == wd)
            return true;
    return false;
}

/* add_dir_watch watches the directory that holds |path| and adds its watch
 * to |wds| (once). */
static void add_dir_watch(struct file_watch *watch, const char *path, int *wds, size_t *num)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return;
    int wd = inotify_add_watch(watch->inotify_fd, dirname(copy), DIR_EVENTS);
    if (wd < 0)
        log_msg(LOG_WARN, "watch_failed", "cannot watch the directory of %s: %s", path,
                strerror(errno));
    else if (!has_wd(wds, *num, wd))
        wds[(*num)++] = wd;
    free(copy);
}

/* rewatch_dirs watches the directory of each file as named and of the file
 * it resolves to (a symlink's target moves when Kubernetes swaps "..data"),
 * then drops the watches no longer needed. Watching before unwatching keeps
 * a directory in both sets watched throughout: inotify hands back the same
 * descriptor for it. */
static void rewatch_dirs(struct file_watch *watch)
{
    int *wds = calloc(2 * watch->watched.num + 1, sizeof(*wds));
    size_t num = 0;
    char resolved[PATH_MAX];

    if (wds == NULL)
        return; /* the old watches stay */
    for (size_t i = 0; i < watch->watched.num; i++) {
        add_dir_watch(watch, watch->watched.files[i].path, wds, &num);
        if (realpath(watch->watched.files[i].path, resolved) != NULL)
            add_dir_watch(watch, resolved, wds, &num);
    }
    for (size_t i = 0; i < watch->num_wds; i++)
        if (!has_wd(wds, num, watch->wds[i]))
            inotify_rm_watch(watch->inotify_fd, watch->wds[i]);
    free(watch->wds);
    watch->wds = wds;
    watch->num_wds = num;
}

static void clear_files(struct file_list *list)
{
    for (size_t i = 0; i < list->num; i++)
        free(list->files[i].path);
    free(list->files);
    *list = (struct file_list){.files = NULL};
}

/* ---- checks ------------------------------------------------------------------ */

/* check_files refreshes every fingerprint and reports a change, if any,
 * through the callback; |trigger| says what asked. */
static void check_files(struct file_watch *watch, const char *trigger)
{
    const char *first_changed = NULL;
    size_t num_changed = 0;

    for (size_t i = 0; i < watch->watched.num; i++) {
        if (refresh_fingerprint(&watch->watched.files[i])) {
            if (first_changed == NULL)
                first_changed = watch->watched.files[i].path;
            num_changed++;
        }
    }
    rewatch_dirs(watch);
    struct log_line line;
    log_begin(&line, num_changed > 0 ? LOG_INFO : LOG_DEBUG,
              num_changed > 0 ? "files_changed" : "files_unchanged");
    log_str(&line, "trigger", trigger);
    log_int(&line, "files", (long long)watch->watched.num);
    if (num_changed > 0) {
        log_int(&line, "changed", (long long)num_changed);
        log_str(&line, "file", first_changed);
    }
    log_end(&line);
    /* Last: the callback reloads, which calls file_watch_set. */
    if (num_changed > 0)
        watch->changed(watch->changed_arg, trigger);
}

static void on_debounce(evutil_socket_t fd, short what, void *arg)
{
    check_files(arg, "file_changed");
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    check_files(arg, "file_poll");
}

/* on_inotify drains the events and (re)starts the debounce timer: any
 * event in a watched directory may be the one that changed a file (the
 * "..data" rename names no file of ours), and the check sorts it out. The
 * timer is pushed back to DEBOUNCE_MS after this event, but never past
 * DEBOUNCE_MAX_MS after the burst's first. */
static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    struct file_watch *watch = arg;
    char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;

    while (read(fd, events, sizeof(events)) > 0)
        any = true;
    if (!any || watch->watched.num == 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t delay_ms = DEBOUNCE_MS;
    if (!evtimer_pending(watch->debounce_timer, NULL)) {
        watch->burst_start_ms = now_ms;
    } else {
        uint64_t waited_ms = now_ms - watch->burst_start_ms;
        if (waited_ms >= DEBOUNCE_MAX_MS)
            return; /* due already: leave it be */
        if (DEBOUNCE_MAX_MS - waited_ms < delay_ms)
            delay_ms = DEBOUNCE_MAX_MS - waited_ms;
    }
    struct timeval delay = ms_to_timeval(delay_ms);
    evtimer_add(watch->debounce_timer, &delay);
}

/* ---- lifetime ------------------------------------------------------------------ */

struct file_watch *file_watch_new(struct event_base *base, file_watch_changed_fn changed,
                                  void *arg)
{
    struct file_watch *watch = calloc(1, sizeof(*watch));

    if (watch == NULL)
        goto fail;
    *watch = (struct file_watch){.base = base, .changed = changed, .changed_arg = arg};
    watch->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch->inotify_fd < 0)
        goto fail;
    watch->inotify_ev =
        event_new(base, watch->inotify_fd, EV_READ | EV_PERSIST, on_inotify, watch);
    watch->debounce_timer = evtimer_new(base, on_debounce, watch);
    watch->poll_timer = event_new(base, -1, EV_PERSIST, on_poll, watch);
    if (watch->inotify_ev == NULL || watch->debounce_timer == NULL ||
        watch->poll_timer == NULL || event_add(watch->inotify_ev, NULL) != 0)
        goto fail;
    return watch;
fail:
    log_msg(LOG_ERROR, "start_failed", "cannot set up file watching: %s", strerror(errno));
    file_watch_free(watch);
    return NULL;
}

/* add_file appends |path| to the file_list |arg|, with its fingerprint. */
static void add_file(const char *path, void *arg)
{
    struct file_list *list = arg;
    struct watched_file *grown = realloc(list->files, (list->num + 1) * sizeof(*list->files));
    char *copy = strdup(path);

    if (grown == NULL || copy == NULL) {
        free(copy);
        if (grown != NULL)
            list->files = grown;
        log_msg(LOG_WARN, "watch_failed", "out of memory: %s is not watched", path);
        return;
    }
    list->files = grown;
    struct watched_file *file = &list->files[list->num++];
    *file = (struct watched_file){.path = copy};
    take_fingerprint(path, &file->seen);
}

void file_watch_prepare(struct file_watch *watch, const struct config *config)
{
    clear_files(&watch->prepared);
    if (config->reload_on_change)
        config_for_each_file(config, add_file, &watch->prepared);
    watch->have_prepared = true;
}

void file_watch_set(struct file_watch *watch, const struct config *config)
{
    clear_files(&watch->watched);
    /* A debounce pending stays: an event seen while the reload ran may be
     * a change it did not load, still to be checked. */
    event_del(watch->poll_timer);
    if (watch->have_prepared) {
        watch->watched = watch->prepared;
        watch->prepared = (struct file_list){.files = NULL};
        watch->have_prepared = false;
    } else if (config->reload_on_change) {
        config_for_each_file(config, add_file, &watch->watched);
    }
    if (config->reload_on_change) {
        if (config->reload_poll_ms > 0) {
            struct timeval every = ms_to_timeval(config->reload_poll_ms);
            event_add(watch->poll_timer, &every);
        }
    }
    rewatch_dirs(watch);
}

void file_watch_free(struct file_watch *watch)
{
    if (watch == NULL)
        return;
    struct event *events[] = {watch->inotify_ev, watch->debounce_timer, watch->poll_timer};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (events[i] != NULL)
            event_free(events[i]);
    clear_files(&watch->watched);
    clear_files(&watch->prepared);
    free(watch->wds);
    if (watch->inotify_fd >= 0)
        close(watch->inotify_fd);
    free(watch);
}
