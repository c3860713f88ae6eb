/* listener: accept with limits. See listener.h. */
#include "listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

/* Connections accepted per readiness event before other work gets a turn. */
#define ACCEPT_BATCH 64
/* How often a paused listener looks again whether it may accept. */
#define PAUSE_RECHECK_MS 50

static void on_accept(evutil_socket_t fd, short what, void *arg);

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

/* pause stops accepting for a while; |why| is logged once per pause. */
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

static void on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    /* Accept again; on_accept pauses once more if a limit still holds. */
    set_accepting(arg, true);
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

/* at_limit returns the limit that forbids another connection, or NULL. */
static const char *at_limit(const struct listener *l)
{
    const struct worker *w = l->worker;
    if (atomic_load_explicit(&w->daemon->listener_conns[l->index], memory_order_relaxed) >=
        l->cfg->max_connections)
        return "the listener's max_connections is reached";
    if (atomic_load_explicit(&w->daemon->num_conns, memory_order_relaxed) >=
        w->gen->config->max_connections)
        return "the global max_connections is reached";
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

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct listen_socket *ls = arg;
    struct listener *l = ls->listener;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        const char *limit = at_limit(l);
        if (limit != NULL) {
            pause_accept(l, "max_connections", limit);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int client_fd =
            accept4(fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client_fd < 0) {
            if (accept_failed(l, errno))
                continue;
            return;
        }
        if (l->paused_logged) {
            log_msg(LOG_INFO, "accept_resumed", "listener %s, worker %u: accepting again",
                    l->cfg->name, l->worker->id);
            l->paused_logged = false;
        }
        conn_accept(l, client_fd, (struct sockaddr *)&peer, peer_len);
    }
}

void listener_conn_opened(struct listener *l)
{
    atomic_fetch_add_explicit(&l->worker->daemon->listener_conns[l->index], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&l->worker->daemon->num_conns, 1, memory_order_relaxed);
}

void listener_conn_ended(struct listener *l)
{
    atomic_fetch_sub_explicit(&l->worker->daemon->listener_conns[l->index], 1,
                              memory_order_relaxed);
    atomic_fetch_sub_explicit(&l->worker->daemon->num_conns, 1, memory_order_relaxed);
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
