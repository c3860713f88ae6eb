/* listener: accept with limits. See listener.h. */
#include "listener.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin.h"
#include "conn.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

/* Connections accepted per readiness event before other work gets a turn. */
#define ACCEPT_BATCH 64
/* How often a paused listener looks again whether it may accept. */
#define PAUSE_RECHECK_MS 50
/* Descriptors kept from connections for the admin endpoint (a scraper and a
 * probe or two at a time), report writes, name lookups at reload and the
 * like; see listener_conn_fd_budget. */
#define FD_RESERVE 32

static void on_accept(evutil_socket_t fd, short what, void *arg);
static void on_resume_timer(evutil_socket_t fd, short what, void *arg);

static void set_accepting(struct listener *l, bool on)
{
    if (l->accepting == on || l->closed)
        return;
    l->accepting = on;
    for (size_t i = 0; i < l->num_sockets; i++) {
        if (on)
            event_add(l->sockets[i].accept_ev, NULL);
        else
            event_del(l->sockets[i].accept_ev);
    }
}

/* A pause lasts from the first connection refused for a limit (or EMFILE)
 * until the listener has accepted its whole backlog, however many times it
 * looks again meanwhile: it is logged once at each end. */

/* pause_accept stops accepting and looks again in PAUSE_RECHECK_MS. A pause
 * that starts here is logged as |event|, saying |why|. */
static void pause_accept(struct listener *l, const char *event, const char *why)
{
    struct timeval recheck = {0, PAUSE_RECHECK_MS * 1000};

    if (!l->paused_logged) {
        log_msg(LOG_WARN, event, "listener %s, worker %u: %s; accept paused", l->cfg->name,
                l->worker->id, why);
        l->paused_logged = true;
    }
    set_accepting(l, false);
    evtimer_add(l->resume_timer, &recheck);
}

/* caught_up ends the pause, if any: the backlog is empty. */
static void caught_up(struct listener *l)
{
    if (!l->paused_logged)
        return;
    log_msg(LOG_INFO, "accept_resumed", "listener %s, worker %u: accepting again", l->cfg->name,
            l->worker->id);
    l->paused_logged = false;
}

int listener_init(struct listener *l, struct worker *worker, size_t index)
{
    memset(l, 0, sizeof(*l));
    l->worker = worker;
    l->index = index;
    listener_use_generation(l, worker->gen);
    /* By name: a listener keeps its counts across reloads. */
    l->metrics = metrics_block_listener(worker->metrics, l->cfg->name);
    if (l->metrics == NULL)
        goto fail;
    l->resume_timer = evtimer_new(worker->base, on_resume_timer, l);
    l->sockets = calloc(l->cfg->num_listen, sizeof(*l->sockets));
    if (l->resume_timer == NULL || l->sockets == NULL)
        goto fail;
    l->num_sockets = l->cfg->num_listen;
    for (size_t i = 0; i < l->num_sockets; i++) {
        l->sockets[i].listener = l;
        l->sockets[i].fd = -1;
    }
    return 0;
fail:
    /* The worker counts only listeners that initialised, and cleans up
     * only those: undo here what this one took. */
    listener_cleanup(l);
    return -1;
}

void listener_use_generation(struct listener *l, struct generation *gen)
{
    l->cfg = &gen->config->listeners[l->index];
    l->tls = gen->tls[l->index];
}

void listener_adopt_socket(struct listener *l, size_t slot, int fd)
{
    l->sockets[slot].fd = fd;
}

void listener_start(struct listener *l)
{
    for (size_t i = 0; i < l->num_sockets; i++) {
        struct listen_socket *ls = &l->sockets[i];
        ls->accept_ev = event_new(l->worker->base, ls->fd, EV_READ | EV_PERSIST, on_accept, ls);
        if (ls->accept_ev == NULL) {
            log_msg(LOG_ERROR, "start_failed", "listener %s: out of memory", l->cfg->name);
            return;
        }
    }
    set_accepting(l, true);
}

/* at_limit returns the limit that forbids another connection, and in
 * |*out_event| the event that logs it, or returns NULL. */
static const char *at_limit(const struct listener *l, const char **out_event)
{
    const struct daemon *d = l->worker->daemon;

    *out_event = "max_connections";
    if (atomic_load_explicit(&d->listener_conns[l->index], memory_order_relaxed) >=
        l->cfg->max_connections)
        return "the listener's max_connections is reached";
    if (atomic_load_explicit(&d->num_conns, memory_order_relaxed) >=
        l->worker->gen->config->max_connections)
        return "the global max_connections is reached";
    *out_event = "accept_paused";
    if (atomic_load_explicit(&d->conn_fds, memory_order_relaxed) +
            listener_fds_per_conn(l->cfg) >
        atomic_load_explicit(&d->conn_fd_budget, memory_order_relaxed))
        return "the descriptors RLIMIT_NOFILE leaves connections are in use";
    return NULL;
}

/* accept_failed handles an accept error; it returns true if accepting
 * should go on. */
static bool accept_failed(struct listener *l, int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
        return true;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        /* The pending connection stays in the backlog and the socket stays
         * readable: without a pause the loop would spin on it. */
        pause_accept(l, "accept_paused", strerror(err));
        return false;
    case EAGAIN:
        return false;
    default:
        log_msg(LOG_ERROR, "accept_failed", "listener %s: %s", l->cfg->name, strerror(err));
        return false;
    }
}

/* accept_batch accepts up to ACCEPT_BATCH connections on |ls| while the
 * limits allow. It returns true when the backlog is empty. */
static bool accept_batch(struct listen_socket *ls)
{
    struct listener *l = ls->listener;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        const char *event, *limit = at_limit(l, &event);
        if (limit != NULL) {
            pause_accept(l, event, limit);
            return false;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int client_fd =
            accept4(ls->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client_fd < 0) {
            int err = errno;
            if (accept_failed(l, err))
                continue;
            return err == EAGAIN || err == EWOULDBLOCK;
        }
        conn_accept(l, client_fd, (struct sockaddr *)&peer, peer_len);
    }
    return false;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct listen_socket *ls = arg;

    if (accept_batch(ls))
        caught_up(ls->listener);
}

static void on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    struct timeval recheck = {0, PAUSE_RECHECK_MS * 1000};
    const char *event;
    bool drained = true;

    if (at_limit(l, &event) != NULL) {
        evtimer_add(l->resume_timer, &recheck);
        return;
    }
    /* Accept now rather than on the next readiness event: with an empty
     * backlog there is none, and the pause would never end. */
    set_accepting(l, true);
    for (size_t i = 0; i < l->num_sockets && l->accepting; i++)
        drained = accept_batch(&l->sockets[i]) && drained;
    if (drained && l->accepting)
        caught_up(l);
}

void listener_conn_opened(struct listener *l)
{
    struct daemon *d = l->worker->daemon;
    atomic_fetch_add_explicit(&d->listener_conns[l->index], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&d->num_conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&d->conn_fds, listener_fds_per_conn(l->cfg),
                              memory_order_relaxed);
}

void listener_conn_ended(struct listener *l)
{
    struct daemon *d = l->worker->daemon;
    atomic_fetch_sub_explicit(&d->listener_conns[l->index], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&d->num_conns, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&d->conn_fds, listener_fds_per_conn(l->cfg),
                              memory_order_relaxed);
}

/* ---- descriptors ------------------------------------------------------------ */

unsigned listener_fds_per_conn(const struct cfg_listener *cfg)
{
    (void)cfg; /* tcp mode: the client's socket and the backend's */
    return 2;
}

/* fd_soft_limit returns the soft RLIMIT_NOFILE, capped to UINT_MAX. */
static unsigned long long fd_soft_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY ||
        limit.rlim_cur > UINT_MAX)
        return UINT_MAX;
    return limit.rlim_cur;
}

/* max_fds_per_conn returns the most descriptors a connection of |config|
 * may hold, on any listener. */
static unsigned max_fds_per_conn(const struct config *config)
{
    unsigned most = 0;
    for (size_t i = 0; i < config->num_listeners; i++) {
        unsigned need = listener_fds_per_conn(&config->listeners[i]);
        most = need > most ? need : most;
    }
    return most;
}

static void count_file(const char *path, void *arg)
{
    (void)path;
    (*(unsigned long long *)arg)++;
}

unsigned listener_conn_fd_budget(const struct config *config, unsigned num_workers,
                                 unsigned fds_in_use)
{
    unsigned long long reserve = FD_RESERVE + 1; /* and the configuration file */

    /* The admin endpoint starts after the count and lives on the reserve:
     * its connections, listening socket, event loop and stop pipe. */
    if (config->admin.enabled)
        reserve += ADMIN_DEFAULT_MAX_CONNS + 4;
    config_for_each_file(config, count_file, &reserve);
    reserve += (unsigned long long)num_workers * max_fds_per_conn(config);
    unsigned long long limit = fd_soft_limit(), taken = fds_in_use + reserve;
    return limit > taken ? (unsigned)(limit - taken) : 0;
}

void listener_warn_fd_limit(const struct config *config)
{
    unsigned long long by_listeners = 0, limit = fd_soft_limit();
    unsigned long long by_global =
        (unsigned long long)config->max_connections * max_fds_per_conn(config);
    struct log_line line;

    for (size_t i = 0; i < config->num_listeners; i++)
        by_listeners += (unsigned long long)config->listeners[i].max_connections *
                        listener_fds_per_conn(&config->listeners[i]);
    bool global_binds = by_global < by_listeners;
    unsigned long long needed = global_binds ? by_global : by_listeners;
    if (needed <= limit || !log_enabled(LOG_WARN))
        return;
    log_begin(&line, LOG_WARN, "fd_limit");
    log_str(&line, "limit", global_binds ? "max_connections" : "listeners' max_connections");
    log_int(&line, "descriptors", (long long)needed);
    log_int(&line, "rlimit_nofile", (long long)limit);
    log_str(&line, "msg",
            "max_connections let connections hold more descriptors than RLIMIT_NOFILE allows: "
            "accept will pause before max_connections is reached; raise the limit "
            "(LimitNOFILE=, ulimit -n) or lower max_connections");
    log_end(&line);
}

void listener_close(struct listener *l)
{
    set_accepting(l, false);
    l->closed = true;
    for (size_t i = 0; i < l->num_sockets; i++) {
        struct listen_socket *ls = &l->sockets[i];
        if (ls->accept_ev != NULL)
            event_free(ls->accept_ev);
        ls->accept_ev = NULL;
        if (ls->fd >= 0)
            close(ls->fd);
        ls->fd = -1;
    }
    if (l->resume_timer != NULL)
        evtimer_del(l->resume_timer);
}

void listener_cleanup(struct listener *l)
{
    if (l->sockets != NULL)
        listener_close(l);
    free(l->sockets);
    if (l->resume_timer != NULL)
        event_free(l->resume_timer);
    memset(l, 0, sizeof(*l));
}
