/* daemon: sockets, privileges, workers and signals. See daemon.h. */
#include "daemon.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "listener.h"
#include "log.h"
#include "worker.h"

#define LISTEN_BACKLOG 1024

/* bind_all gives every worker its own socket for every listen address. The
 * first bind resolves port 0, and the other workers bind the same port. */
static int bind_all(struct daemon *d)
{
    const struct config *config = d->gen->config;
    char addr_text[NET_ADDR_TEXT_MAX];

    for (size_t i = 0; i < config->num_listeners; i++) {
        const struct cfg_listener *cfg = &config->listeners[i];
        for (size_t j = 0; j < cfg->num_listen; j++) {
            struct net_addr addr = cfg->listen[j].addr;
            for (unsigned w = 0; w < d->num_workers; w++) {
                int fd = net_listen(&addr, LISTEN_BACKLOG, d->num_workers > 1);
                if (fd < 0) {
                    log_msg(LOG_ERROR, "bind_failed", "listener %s: cannot listen on %s: %s",
                            cfg->name, net_addr_format(&addr, addr_text, sizeof(addr_text)),
                            strerror(errno));
                    return -1;
                }
                listener_adopt_socket(&d->workers[w].listeners[i], j, fd, &addr);
            }
            struct log_line line;
            log_begin(&line, LOG_INFO, "listening");
            log_str(&line, "listener", cfg->name);
            log_str(&line, "addr", net_addr_format(&addr, addr_text, sizeof(addr_text)));
            log_end(&line);
        }
    }
    return 0;
}

/* drop_privileges switches to the configured user once the sockets, which
 * may need privileged ports, are bound, and before any thread starts. */
static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        log_msg(LOG_ERROR, "privileges", "user '%s' does not exist", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        log_msg(LOG_ERROR, "privileges", "cannot switch to user '%s': %s", user,
                strerror(errno));
        return -1;
    }
    log_msg(LOG_INFO, "privileges", "running as user '%s' (uid %u)", user,
            (unsigned)pw->pw_uid);
    return 0;
}

static unsigned resolve_num_workers(const struct config *config)
{
    if (config->num_workers > 0)
        return config->num_workers;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (unsigned)cpus : 1;
}

static void on_stop_signal(evutil_socket_t signum, short what, void *arg)
{
    struct daemon *d = arg;
    struct log_line line;

    log_begin(&line, LOG_INFO, "draining");
    log_str(&line, "signal", strsignal((int)signum));
    log_int(&line, "connections", (long long)atomic_load(&d->num_conns));
    log_int(&line, "deadline_ms", d->gen->config->drain_timeout_ms);
    log_end(&line);
    for (unsigned i = 0; i < d->num_workers; i++)
        worker_drain(&d->workers[i]);
}

/* struct signal_watch is the main thread's loop, which only waits for a
 * stop signal. It is set up before the workers start, so that it cannot
 * fail for want of descriptors once they have taken them. */
struct signal_watch {
    struct event_base *base;
    struct event *sigterm_ev;
    struct event *sigint_ev;
};

static void signal_watch_cleanup(struct signal_watch *watch)
{
    if (watch->sigterm_ev != NULL)
        event_free(watch->sigterm_ev);
    if (watch->sigint_ev != NULL)
        event_free(watch->sigint_ev);
    if (watch->base != NULL)
        event_base_free(watch->base);
}

static int signal_watch_init(struct signal_watch *watch, struct daemon *d)
{
    watch->base = event_base_new();
    if (watch->base == NULL)
        goto fail;
    watch->sigterm_ev = evsignal_new(watch->base, SIGTERM, on_stop_signal, d);
    watch->sigint_ev = evsignal_new(watch->base, SIGINT, on_stop_signal, d);
    if (watch->sigterm_ev == NULL || watch->sigint_ev == NULL ||
        event_add(watch->sigterm_ev, NULL) != 0 || event_add(watch->sigint_ev, NULL) != 0)
        goto fail;
    return 0;
fail:
    log_msg(LOG_ERROR, "start_failed", "cannot set up signal handling");
    return -1;
}

int daemon_run(struct generation *gen)
{
    struct daemon d = {.gen = gen};
    struct signal_watch watch = {0};
    int status = -1;

    atomic_init(&d.num_conns, 0);
    d.num_workers = resolve_num_workers(gen->config);
    d.workers = calloc(d.num_workers, sizeof(*d.workers));
    if (d.workers == NULL)
        return -1;
    for (unsigned i = 0; i < d.num_workers; i++)
        if (worker_init(&d.workers[i], i, &d, gen) != 0)
            goto fail;
    if (bind_all(&d) != 0 || signal_watch_init(&watch, &d) != 0)
        goto fail;
    if (gen->config->user != NULL && drop_privileges(gen->config->user) != 0)
        goto fail;
    for (unsigned i = 0; i < d.num_workers; i++) {
        if (worker_start(&d.workers[i]) != 0) {
            log_msg(LOG_ERROR, "start_failed", "cannot start worker thread %u", i);
            goto fail;
        }
    }

    struct log_line line;
    log_begin(&line, LOG_INFO, "started");
    log_str(&line, "version", TLSTERM_VERSION);
    log_int(&line, "pid", (long long)getpid());
    log_int(&line, "workers", d.num_workers);
    log_int(&line, "listeners", (long long)gen->config->num_listeners);
    log_end(&line);

    /* One stop signal ends this loop: its handler asks every worker to
     * drain. Removing both signal events then gives both signals their
     * default action back, so a second one forces the stop. */
    if (event_base_loop(watch.base, EVLOOP_ONCE) == 0)
        status = 0;
    event_del(watch.sigterm_ev);
    event_del(watch.sigint_ev);

fail:
    if (status != 0) /* the workers that started must still end */
        for (unsigned i = 0; i < d.num_workers; i++)
            if (d.workers[i].started)
                worker_drain(&d.workers[i]);
    for (unsigned i = 0; i < d.num_workers; i++)
        worker_join(&d.workers[i]);
    for (unsigned i = 0; i < d.num_workers; i++)
        worker_cleanup(&d.workers[i]);
    free(d.workers);
    signal_watch_cleanup(&watch);
    if (status == 0)
        log_msg(LOG_INFO, "stopped", "all connections closed");
    return status;
}
