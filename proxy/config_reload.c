/* config_reload: what a reload may change, judged against what runs.
 *
 * Listen sockets are bound once, at start, and workers and the user are set
 * up once too, so a reload takes a configuration only when its listeners
 * are those that run, and carries the start-only settings over from the
 * running configuration (workers, user, the admin endpoint). That keeps
 * the running generation's configuration equal to what actually runs, so
 * each reload compares with the process, not with whatever file came
 * before it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* report_at writes "FILE:LINE:COL: listener 'NAME': |what|; that needs a
 * restart, not a reload" at |pos|. */
static void report_at(FILE *errors, const struct cfg_pos *pos, const char *name,
                      const char *what)
{
    cfg_error(errors, pos, "listener '%s': %s; that needs a restart, not a reload", name, what);
}

/* listen_differs reports the first listen address of |next| that is not
 * the one |running| has at the same place, at that address in the new
 * file, and returns true; false when they are all the same. */
static bool listen_differs(const struct cfg_listener *running, const struct cfg_listener *next,
                           FILE *errors)
{
    char now[NET_ADDR_TEXT_MAX], then[NET_ADDR_TEXT_MAX], what[512];

    for (size_t j = 0; j < next->num_listen || j < running->num_listen; j++) {
        if (j < next->num_listen && j < running->num_listen &&
            net_addr_equal(&running->listen[j].addr, &next->listen[j].addr))
            continue;
        if (j >= next->num_listen) {
            snprintf(what, sizeof(what),
                     "listen no longer has address %s, which the running process listens on",
                     net_addr_format(&running->listen[j].addr, now, sizeof(now)));
            report_at(errors, &next->listen[next->num_listen - 1].pos, next->name, what);
        } else if (j >= running->num_listen) {
            snprintf(what, sizeof(what),
                     "listen adds address %s, which the running process does not listen on",
                     net_addr_format(&next->listen[j].addr, now, sizeof(now)));
            report_at(errors, &next->listen[j].pos, next->name, what);
        } else {
            snprintf(what, sizeof(what), "listen address %s differs from the running %s",
                     net_addr_format(&next->listen[j].addr, now, sizeof(now)),
                     net_addr_format(&running->listen[j].addr, then, sizeof(then)));
            report_at(errors, &next->listen[j].pos, next->name, what);
        }
        return true;
    }
    return false;
}

/* same_listeners reports the first way the listeners of |next| differ
 * from those of |running| and returns false, or returns true. */
static bool same_listeners(const struct config *running, const struct config *next,
                           FILE *errors)
{
    char what[256];

    for (size_t i = 0; i < next->num_listeners || i < running->num_listeners; i++) {
        const struct cfg_listener *a =
            i < running->num_listeners ? &running->listeners[i] : NULL;
        const struct cfg_listener *b = i < next->num_listeners ? &next->listeners[i] : NULL;

        if (b == NULL) {
            snprintf(what, sizeof(what), "listener '%s' of the running process is gone",
                     a->name);
            cfg_error(errors, &next->listeners[next->num_listeners - 1].pos,
                      "%s (the number of listeners changed); that needs a restart, not a "
                      "reload",
                      what);
            return false;
        }
        if (a == NULL) {
            report_at(errors, &b->pos, b->name,
                      "a new listener (the number of listeners changed)");
            return false;
        }
        if (strcmp(a->name, b->name) != 0) {
            snprintf(what, sizeof(what),
                     "the running process has listener '%s' here (listener names or their "
                     "order changed)",
                     a->name);
            report_at(errors, &b->pos, b->name, what);
            return false;
        }
        if (listen_differs(a, b, errors))
            return false;
    }
    return true;
}

/* keep_running_admin carries the admin endpoint over from |running| to
 * |next| (it is bound once, at start), logging reload_partial when the file
 * asks for another one. */
static void keep_running_admin(const struct config *running, struct config *next)
{
    const struct cfg_admin *was = &running->admin;
    struct cfg_admin *asked = &next->admin;
    char now[NET_ADDR_TEXT_MAX], then[NET_ADDR_TEXT_MAX];

    if (was->enabled != asked->enabled ||
        (was->enabled && !net_addr_equal(&was->addr, &asked->addr))) {
        struct log_line line;
        log_begin(&line, LOG_WARN, "reload_partial");
        log_str(&line, "admin_running",
                was->enabled ? net_addr_format(&was->addr, now, sizeof(now)) : "off");
        log_str(&line, "admin_in_file",
                asked->enabled ? net_addr_format(&asked->addr, then, sizeof(then)) : "off");
        log_str(&line, "msg", "'admin.listen' takes effect only at the next restart");
        log_end(&line);
    }
    asked->enabled = was->enabled;
    asked->addr = was->addr;
    asked->allow_public = was->allow_public;
}

/* keep_running_instance carries `instance` over from |running| to |next|:
 * it names the open window's report-id, so a change mid-window would give
 * its /report answers and its file different ids, and a merge would count
 * the window twice. It logs reload_partial when the file names another.
 * It returns 0, or -1 when out of memory. */
static int keep_running_instance(const struct config *running, struct config *next,
                                 FILE *errors)
{
    const char *was = running->report.instance, *asked = next->report.instance;
    char *kept;

    if (was == NULL || (asked != NULL && strcmp(was, asked) == 0))
        return 0;
    if ((kept = strdup(was)) == NULL) {
        cfg_error(errors, &(struct cfg_pos){next->file, 1, 1}, "out of memory");
        return -1;
    }
    struct log_line line;
    log_begin(&line, LOG_WARN, "reload_partial");
    log_str(&line, "instance_running", was);
    log_str(&line, "instance_in_file", asked != NULL ? asked : "");
    log_str(&line, "msg", "'instance' takes effect only at the next restart");
    log_end(&line);
    free(next->report.instance);
    next->report.instance = kept;
    return 0;
}

int config_reload_check(const struct config *running, struct config *next, FILE *errors)
{
    bool workers_changed, user_changed;
    char *running_user = NULL;

    if (!same_listeners(running, next, errors))
        return -1;
    workers_changed = next->num_workers != running->num_workers;
    user_changed = (next->user == NULL) != (running->user == NULL) ||
                   (next->user != NULL && strcmp(next->user, running->user) != 0);
    if (keep_running_instance(running, next, errors) != 0)
        return -1;
    if (running->user != NULL && (running_user = strdup(running->user)) == NULL) {
        cfg_error(errors, &(struct cfg_pos){next->file, 1, 1}, "out of memory");
        return -1;
    }
    if (workers_changed || user_changed) {
        struct log_line line;
        log_begin(&line, LOG_WARN, "reload_partial");
        if (workers_changed)
            log_int(&line, "workers_running", running->num_workers);
        if (workers_changed)
            log_int(&line, "workers_in_file", next->num_workers);
        if (user_changed)
            log_str(&line, "user_running", running->user);
        if (user_changed)
            log_str(&line, "user_in_file", next->user);
        log_str(&line, "msg",
                workers_changed && user_changed
                    ? "'workers' and 'user' take effect only at the next restart"
                : workers_changed ? "'workers' takes effect only at the next restart"
                                  : "'user' takes effect only at the next restart");
        log_end(&line);
    }
    keep_running_admin(running, next);
    next->num_workers = running->num_workers;
    free(next->user);
    next->user = running_user;
    return 0;
}
