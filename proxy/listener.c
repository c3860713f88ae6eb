/* listener: accept with limits. See listener.h. */
#include "listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "server.h"

/* Connections accepted per readiness event before other work gets a turn. */
#define ACCEPT_BATCH 64
#define LISTEN_BACKLOG 1024
/* How long accept pauses when the process is out of descriptors. */
#define EMFILE_PAUSE_MS 100

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

static void on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    if (l->num_conns < l->cfg->max_connections)
        set_accepting(l, true);
}

int listener_init(struct listener *l, struct server *server,
                  const struct cfg_listener *cfg, FILE *errors)
{
    memset(l, 0, sizeof(*l));
    l->server = server;
    l->cfg = cfg;
    l->tls = tls_ctx_new(cfg, errors);
    if (l->tls == NULL)
        return -1;
    l->resume_timer = evtimer_new(server->base, on_resume_timer, l);
    l->sockets = calloc(cfg->num_listen, sizeof(*l->sockets));
    if (l->resume_timer == NULL || l->sockets == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_listen; i++)
        l->sockets[i].fd = -1;
    return 0;
}

int listener_bind(struct listener *l)
{
    char addr_text[NET_ADDR_TEXT_MAX];

    for (size_t i = 0; i < l->cfg->num_listen; i++) {
        struct listen_socket *ls = &l->sockets[i];
        ls->listener = l;
        ls->addr = l->cfg->listen[i].addr;
        ls->fd = net_listen(&ls->addr, LISTEN_BACKLOG);
        l->num_sockets++;
        if (ls->fd < 0) {
            log_msg(LOG_ERROR, "bind_failed", "listener %s: cannot listen on %s: %s",
                    l->cfg->name, net_addr_format(&ls->addr, addr_text, sizeof(addr_text)),
                    strerror(errno));
            return -1;
        }
        ls->accept_ev = event_new(l->server->base, ls->fd, EV_READ | EV_PERSIST, on_accept, ls);
        if (ls->accept_ev == NULL)
            return -1;

        struct log_line line;
        log_begin(&line, LOG_INFO, "listening");
        log_str(&line, "listener", l->cfg->name);
        log_str(&line, "addr", net_addr_format(&ls->addr, addr_text, sizeof(addr_text)));
        log_end(&line);
    }
    set_accepting(l, true);
    return 0;
}

/* accept_failed handles an accept error; it returns true if accepting
 * should go on. */
static bool accept_failed(struct listener *l, int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
        return true;
    case EAGAIN:
#if EAGAIN != EWOULDBLOCK
    case EWOULDBLOCK:
#endif
        return false;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM: {
        /* The pending connection stays in the backlog and the socket stays
         * readable: without a pause the loop would spin on it. */
        struct timeval pause = {0, EMFILE_PAUSE_MS * 1000};
        log_msg(LOG_WARN, "accept_paused", "listener %s: %s; pausing accept for %d ms",
                l->cfg->name, strerror(err), EMFILE_PAUSE_MS);
        set_accepting(l, false);
        evtimer_add(l->resume_timer, &pause);
        return false;
    }
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
        if (l->num_conns >= l->cfg->max_connections) {
            /* Resumed by listener_conn_ended. The kernel backlog holds the
             * clients meanwhile. */
            log_msg(LOG_WARN, "max_connections", "listener %s: %u connections open; pausing accept",
                    l->cfg->name, l->num_conns);
            set_accepting(l, false);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int client_fd = accept4(fd, (struct sockaddr *)&peer, &peer_len,
                                SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client_fd < 0) {
            if (accept_failed(l, errno))
                continue;
            return;
        }
        conn_accept(l, client_fd, (struct sockaddr *)&peer, peer_len);
    }
}

void listener_conn_ended(struct listener *l)
{
    l->num_conns--;
    if (!l->accepting && l->num_conns < l->cfg->max_connections &&
        !evtimer_pending(l->resume_timer, NULL))
        set_accepting(l, true);
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
    listener_close(l);
    free(l->sockets);
    if (l->resume_timer != NULL)
        event_free(l->resume_timer);
    tls_ctx_free(l->tls);
    memset(l, 0, sizeof(*l));
}
