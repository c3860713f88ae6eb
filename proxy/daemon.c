/* daemon: sockets, privileges, workers, signals and reload. See daemon.h. */
#include "daemon.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "alloc_fail.h"
#include "backend_group.h"
#include "file_watch.h"
#include "listener.h"
#include "metrics.h"
#include "privileges.h"
#include "report.h"
#include "sd_notify.h"
#include "seccomp_filter.h"
#include "tls_cert.h"
#include "tls_ctx.h"
#include "log.h"
#include "worker.h"

#define LISTEN_BACKLOG 1024
/* Certificates close to expiry are warned about at start and this often. */
#define EXPIRY_WARNING_EVERY_MS (24u * 60 * 60 * 1000)

/* struct daemon_watch is the main thread's loop and its events. It is set
 * up before the workers start, so that it cannot fail for want of
 * descriptors once they have taken them. */
struct daemon_watch {
    struct event_base *base;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct event *sighup_ev;
    struct event *rotate_timer;
    struct event *expiry_timer;      /* certificate expiry warnings, daily */
    struct event *drain_delay_timer; /* drain_delay, from the first stop signal */
    int stop_signal;                 /* the first stop signal; 0 before one came */
    bool draining;                   /* start_drain ran */
    struct file_watch *files;        /* what reload_on_change watches */
};

static void publish_certs(struct daemon *d);

static struct timeval ms_to_timeval(uint64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* ---- start ----------------------------------------------------------------- */

/* bind_all gives every worker its own socket for every listen address, all
 * in one SO_REUSEPORT group. A probe bind first makes sure nobody else
 * listens there (and resolves port 0 to a port nobody uses). */
static int bind_all(struct daemon *d)
{
    const struct config *config = d->gen->config;
    char addr_text[NET_ADDR_TEXT_MAX];

    for (size_t i = 0; i < config->num_listeners; i++) {
        const struct cfg_listener *cfg = &config->listeners[i];
        for (size_t j = 0; j < cfg->num_listen; j++) {
            struct net_addr addr = cfg->listen[j].addr;
            bool reuseport = d->num_workers > 1;
            if (reuseport && net_probe_free(&addr) != 0) {
                log_msg(LOG_ERROR, "bind_failed", "listener %s: cannot listen on %s: %s",
                        cfg->name, net_addr_format(&addr, addr_text, sizeof(addr_text)),
                        strerror(errno));
                return -1;
            }
            for (unsigned w = 0; w < d->num_workers; w++) {
                int fd = net_listen(&addr, LISTEN_BACKLOG, reuseport);
                if (fd < 0) {
                    log_msg(LOG_ERROR, "bind_failed", "listener %s: cannot listen on %s: %s",
                            cfg->name, net_addr_format(&addr, addr_text, sizeof(addr_text)),
                            strerror(errno));
                    return -1;
                }
                listener_adopt_socket(&d->workers[w].listeners[i], j, fd);
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

/* check_net_admin refuses to start when a listener uses backend.source:
 * client and the process lacks CAP_NET_ADMIN: every connection would fail
 * at its first backend socket otherwise. */
static int check_net_admin(const struct config *config)
{
    const struct cfg_listener *listener = config_needs_net_admin(config);

    if (listener == NULL || privileges_have_net_admin())
        return 0;
    log_msg(LOG_ERROR, "privileges",
            "backend.source: client needs CAP_NET_ADMIN (listener %s), which this process "
            "does not have: run tlsterm as root, or give it the capability (systemd: "
            "AmbientCapabilities=CAP_NET_ADMIN), or use source: proxy",
            listener->name);
    return -1;
}

static unsigned resolve_num_workers(const struct config *config)
{
    if (config->num_workers > 0)
        return config->num_workers;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (unsigned)cpus : 1;
}

/* count_open_fds returns how many descriptors the process holds, or 0 when
 * /proc cannot tell (the reserve then has to cover them). */
static unsigned count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    unsigned num = 0;

    if (dir == NULL)
        return 0;
    while (readdir(dir) != NULL)
        num++;
    closedir(dir);
    return num > 3 ? num - 3 : 0; /* less ".", ".." and the listing's own */
}

/* set_conn_fd_budget sets how many descriptors connections may hold under
 * the current configuration and RLIMIT_NOFILE. */
static void set_conn_fd_budget(struct daemon *d)
{
    atomic_store(&d->conn_fd_budget,
                 listener_conn_fd_budget(d->gen->config, d->num_workers, d->fds_at_start));
}

/* ---- reload -------------------------------------------------------------------- */

/* log_reload_errors logs each "FILE:LINE:COL: message" line of |errors|. */
static void log_reload_errors(const char *errors)
{
    const char *line = errors;
    while (*line != '\0') {
        size_t len = strcspn(line, "\n");
        struct log_line event;
        log_begin(&event, LOG_ERROR, "reload_failed");
        log_strn(&event, "error", line, len);
        log_str(&event, "msg", "the running configuration stays in force");
        log_end(&event);
        line += len + (line[len] == '\n');
    }
}

/* build_next loads the configuration file into a new generation, or
 * returns NULL after writing why to |errors|, having changed nothing in
 * force. */
static struct generation *build_next(struct daemon *d, FILE *errors)
{
    struct config *config = config_load(d->config_path, errors);
    if (config == NULL)
        return NULL;
    /* Before anything reads the certificates, keys and ticket keys. */
    file_watch_prepare(d->watch->files, config);
    /* Same listeners; workers and user kept as they run (reload_partial). */
    if (config_reload_check(d->gen->config, config, errors) != 0) {
        config_free(config);
        return NULL;
    }
    /* The capability cannot be had back once dropped at start. */
    const struct cfg_listener *transparent = config_needs_net_admin(config);
    if (transparent != NULL && !privileges_have_net_admin()) {
        fprintf(errors,
                "%s:%d:%d: listener %s: backend.source: client needs CAP_NET_ADMIN, which the "
                "running process does not have (it started without a listener that uses it, "
                "or without the capability); that needs a restart with the capability\n",
                d->config_path, transparent->pos.line, transparent->pos.col,
                transparent->name);
        config_free(config);
        return NULL;
    }
    /* The generation owns |config| from here on, and the settings with it. */
    const struct cfg_session_tickets *tickets_cfg = &config->session_tickets;
    bool tickets_on = tickets_cfg->enabled;
    struct tickets *fresh = NULL;
    if (tickets_on && d->tickets == NULL &&
        (fresh = tickets_new(tickets_cfg, errors)) == NULL) {
        config_free(config);
        return NULL;
    }
    struct generation *next =
        generation_new(config, tickets_on ? (d->tickets ? d->tickets : fresh) : NULL, errors);
    if (next == NULL) {
        tickets_free(fresh);
        return NULL;
    }
    /* Last, since it changes keys in force: a key file read again. */
    if (tickets_on && d->tickets != NULL &&
        tickets_update(d->tickets, &next->config->session_tickets, errors) != 0) {
        generation_unref(next);
        return NULL;
    }
    if (fresh != NULL)
        d->tickets = fresh;
    return next;
}

/* arm_rotation runs the ticket key rotation on the current schedule. */
static void arm_rotation(struct daemon *d)
{
    uint32_t every_ms = d->tickets != NULL ? tickets_rotate_interval_ms(d->tickets) : 0;
    event_del(d->watch->rotate_timer);
    if (every_ms > 0) {
        struct timeval every = ms_to_timeval(every_ms);
        event_add(d->watch->rotate_timer, &every);
    }
}

/* swap_generation builds the next generation and puts it in force, or logs
 * why not; it returns the generation now in force's id, or 0 when the
 * reload failed. */
static unsigned swap_generation(struct daemon *d, const char *why)
{
    char *error_text = NULL;
    size_t error_len = 0;
    FILE *errors = open_memstream(&error_text, &error_len);
    struct generation *next = NULL;

    if (errors == NULL) {
        log_msg(LOG_ERROR, "reload_failed", "out of memory");
        metrics_config_reloaded(d->metrics, false);
        return 0;
    }
    next = build_next(d, errors);
    fclose(errors);
    metrics_config_reloaded(d->metrics, next != NULL);
    if (next == NULL) {
        /* Every failure writes why; only memory can have failed unsaid
         * (the message itself may not have fit). */
        if (error_text == NULL || error_text[0] == '\0')
            log_msg(LOG_ERROR, "reload_failed",
                    "out of memory: the running configuration stays in force");
        else
            log_reload_errors(error_text);
        free(error_text);
        return 0;
    }
    free(error_text);

    log_configure(next->config->log_format, next->config->log_level);
    for (unsigned i = 0; i < d->num_workers; i++)
        worker_reload(&d->workers[i], next);
    generation_unref(d->gen);
    d->gen = next;
    listener_warn_fd_limit(next->config);
    set_conn_fd_budget(d);
    file_watch_set(d->watch->files, next->config);
    publish_certs(d);
    arm_rotation(d);
    if (next->config->report.instance != NULL)
        metrics_set_instance(d->metrics, next->config->report.instance);
    if (report_configure(d->report, &next->config->report) != 0)
        log_msg(LOG_ERROR, "reload_partial", "out of memory: the report settings stay as they were");
    if (next->config->security.seccomp != seccomp_filter_mode())
        log_msg(LOG_WARN, "reload_partial",
                "'security.seccomp' takes effect only at the next restart: the filter in force "
                "stays as it is");

    struct log_line line;
    log_begin(&line, LOG_INFO, "reload_done");
    log_str(&line, "trigger", why);
    log_int(&line, "generation", next->id);
    log_int(&line, "generations_alive", generation_num_alive());
    log_end(&line);
    return next->id;
}

/* reload is swap_generation told to systemd: reloading at the start, and
 * ready again at the end, whatever the outcome (which STATUS= says). */
static void reload(struct daemon *d, const char *why)
{
    /* A reload after the stop signal would tell systemd RELOADING=1 and
     * READY=1 after STOPPING=1, and replace the STATUS= that says when the
     * drain starts; the configuration that would come is never served. */
    if (d->watch->stop_signal != 0) {
        struct log_line line;
        log_begin(&line, LOG_INFO, "reload_ignored");
        log_str(&line, "trigger", why);
        log_str(&line, "reason", "stopping");
        log_str(&line, "msg", "a stop signal came: no reload while tlsterm stops");
        log_end(&line);
        return;
    }
    sd_notify_reloading(d->notify, why);
    unsigned generation = swap_generation(d, why);
    if (generation > 0)
        sd_notify_send(d->notify, "READY=1\nSTATUS=reloaded (%s): generation %u in force", why,
                       generation);
    else
        sd_notify_send(d->notify,
                       "READY=1\nSTATUS=reload (%s) failed, see the log: the running "
                       "configuration stays in force",
                       why);
}

static void on_sighup(evutil_socket_t signum, short what, void *arg)
{
    reload(arg, "SIGHUP");
}

static void on_files_changed(void *arg, const char *trigger)
{
    reload(arg, trigger);
}

/* ---- signals and timers ------------------------------------------------------ */

/* What stopping may take after the drain's deadline: the workers' last
 * closes and joins, and the final log lines. */
#define STOP_MARGIN_MS 5000u

/* stop_extension_usec is the EXTEND_TIMEOUT_USEC= told to systemd when a
 * stop phase starts: |ms_left| (the rest of the delay and the drain) plus
 * the margin, in microseconds. systemd then waits at least that long before
 * its SIGKILL, whatever TimeoutStopSec= says, so a drain_delay and
 * drain_timeout longer than TimeoutStopSec= are not cut short. */
static unsigned long long stop_extension_usec(uint64_t ms_left)
{
    return (unsigned long long)(ms_left + STOP_MARGIN_MS) * 1000u;
}

/* start_drain closes every listener and lets the open connections finish
 * (the workers' drain), then ends the main loop. */
static void start_drain(struct daemon *d)
{
    struct log_line line;

    /* Two signals can be handled in the loop's last turn. */
    if (d->watch->draining)
        return;
    d->watch->draining = true;
    evtimer_del(d->watch->drain_delay_timer);
    log_begin(&line, LOG_INFO, "draining");
    log_str(&line, "signal", strsignal(d->watch->stop_signal));
    log_int(&line, "connections", (long long)atomic_load(&d->num_conns));
    log_int(&line, "deadline_ms", d->gen->config->drain_timeout_ms);
    log_end(&line);
    sd_notify_send(d->notify,
                   "STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu\nSTATUS=draining %u connections",
                   stop_extension_usec(d->gen->config->drain_timeout_ms),
                   atomic_load(&d->num_conns));
    for (unsigned i = 0; i < d->num_workers; i++)
        worker_drain(&d->workers[i]);
    event_base_loopbreak(d->watch->base);
}

static void on_drain_delay_over(evutil_socket_t fd, short what, void *arg) { start_drain(arg); }

/* on_stop_signal starts the drain, or with drain_delay first only turns
 * /readyz to 503 while the listeners keep accepting: a load balancer that
 * polls /readyz takes the instance out before its listeners close, so no
 * new connection finds them closed. Another stop signal during the delay
 * starts the drain at once. */
static void on_stop_signal(evutil_socket_t signum, short what, void *arg)
{
    struct daemon *d = arg;
    uint32_t delay_ms = d->gen->config->drain_delay_ms;
    struct log_line line;

    /* Not ready from before the line that says so: a load balancer polling
     * /readyz stops sending new clients. */
    atomic_store(&d->ready, false);
    alloc_fail_disarm();
    if (d->watch->stop_signal != 0 || delay_ms == 0) {
        if (d->watch->stop_signal == 0)
            d->watch->stop_signal = (int)signum;
        start_drain(d);
        return;
    }
    d->watch->stop_signal = (int)signum;
    struct timeval delay = ms_to_timeval(delay_ms);
    if (evtimer_add(d->watch->drain_delay_timer, &delay) != 0) {
        start_drain(d);
        return;
    }
    log_begin(&line, LOG_INFO, "drain_delayed");
    log_str(&line, "signal", strsignal((int)signum));
    log_int(&line, "delay_ms", delay_ms);
    log_str(&line, "msg", "/readyz answers 503; the listeners accept until the delay ends");
    log_end(&line);
    sd_notify_send(d->notify,
                   "STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu\nSTATUS=not ready, draining in %u ms",
                   stop_extension_usec((uint64_t)delay_ms + d->gen->config->drain_timeout_ms),
                   delay_ms);
}

static void on_rotate_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    tickets_rotate(d->tickets);
    log_msg(LOG_INFO, "ticket_keys_rotated", "session tickets now use a new key");
}

static void on_expiry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    for (size_t i = 0; i < d->gen->config->num_listeners; i++)
        tls_ctx_warn_expiry(d->gen->tls[i]);
}

static void daemon_watch_free(struct daemon_watch *watch)
{
    if (watch == NULL)
        return;
    struct event *events[] = {watch->sigterm_ev, watch->sigint_ev, watch->sighup_ev,
                              watch->rotate_timer, watch->expiry_timer,
                              watch->drain_delay_timer};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (events[i] != NULL)
            event_free(events[i]);
    file_watch_free(watch->files);
    alloc_fail_unwatch();
    if (watch->base != NULL)
        event_base_free(watch->base);
    free(watch);
}

static int daemon_watch_init(struct daemon *d)
{
    struct daemon_watch *watch = calloc(1, sizeof(*watch));
    if (watch == NULL)
        goto fail;
    d->watch = watch;
    watch->base = event_base_new();
    if (watch->base == NULL)
        goto fail;
    /* Persistent for drain_delay, during which a second stop signal starts
     * the drain; once it starts, the loop ends and these are freed, so a
     * signal during the drain has its default action. */
    watch->sigterm_ev =
        event_new(watch->base, SIGTERM, EV_SIGNAL | EV_PERSIST, on_stop_signal, d);
    watch->sigint_ev = event_new(watch->base, SIGINT, EV_SIGNAL | EV_PERSIST, on_stop_signal, d);
    watch->sighup_ev = event_new(watch->base, SIGHUP, EV_SIGNAL | EV_PERSIST, on_sighup, d);
    watch->rotate_timer = event_new(watch->base, -1, EV_PERSIST, on_rotate_timer, d);
    watch->expiry_timer = event_new(watch->base, -1, EV_PERSIST, on_expiry_timer, d);
    watch->drain_delay_timer = evtimer_new(watch->base, on_drain_delay_over, d);
    struct timeval daily = ms_to_timeval(EXPIRY_WARNING_EVERY_MS);
    if (watch->sigterm_ev == NULL || watch->sigint_ev == NULL || watch->sighup_ev == NULL ||
        watch->rotate_timer == NULL || watch->expiry_timer == NULL ||
        watch->drain_delay_timer == NULL || event_add(watch->expiry_timer, &daily) != 0 ||
        event_add(watch->sigterm_ev, NULL) != 0 || event_add(watch->sigint_ev, NULL) != 0 ||
        event_add(watch->sighup_ev, NULL) != 0)
        goto fail;
    arm_rotation(d);
    if (alloc_fail_watch(watch->base) != 0)
        goto fail;
    watch->files = file_watch_new(watch->base, on_files_changed, d);
    if (watch->files == NULL)
        goto fail;
    file_watch_set(watch->files, d->gen->config);
    return 0;
fail:
    log_msg(LOG_ERROR, "start_failed", "cannot set up signal handling and file watching");
    return -1;
}

/* ---- admin endpoint -------------------------------------------------------------- */

static bool admin_ready(void *arg)
{
    struct daemon *d = arg;
    return atomic_load(&d->ready);
}

static int admin_metrics(void *arg, struct evbuffer *out)
{
    struct daemon *d = arg;
    if (metrics_render(d->metrics, out) != 0)
        return -1;
    return backend_group_render_metrics(out);
}

static int admin_backends(void *arg, struct evbuffer *out)
{
    (void)arg;
    return backend_group_render_json(out);
}

static int admin_report(void *arg, struct evbuffer *out)
{
    struct daemon *d = arg;
    return report_render(d->report, out);
}

static int admin_report_previous(void *arg, struct evbuffer *out)
{
    struct daemon *d = arg;
    return report_render_previous(d->report, out);
}

/* publish_certs sets the certificate expiry gauge to the current
 * generation's certificates. */
static void publish_certs(struct daemon *d)
{
    const struct generation *gen = d->gen;
    size_t num = 0;

    for (size_t i = 0; i < gen->config->num_listeners; i++)
        num += tls_ctx_num_certs(gen->tls[i]);
    struct metrics_cert *certs = calloc(num ? num : 1, sizeof(*certs));
    if (certs == NULL)
        return;
    num = 0;
    for (size_t i = 0; i < gen->config->num_listeners; i++) {
        for (size_t j = 0; j < tls_ctx_num_certs(gen->tls[i]); j++) {
            const struct tls_cert *cert = tls_ctx_cert(gen->tls[i], j);
            certs[num++] = (struct metrics_cert){.listener = gen->config->listeners[i].name,
                                                 .subject = cert->subject,
                                                 .serial = cert->serial,
                                                 .not_after = cert->not_after,
                                                 /* and the OCSP gauge */
                                                 .has_ocsp_next_update =
                                                     cert->ocsp != NULL &&
                                                     cert->ocsp_has_next_update,
                                                 .ocsp_next_update = cert->ocsp_next_update};
        }
    }
    metrics_certs_set(d->metrics, certs, num);
    free(certs);
}

static int start_admin(struct daemon *d)
{
    const struct cfg_admin *cfg = &d->gen->config->admin;
    const struct admin_handlers handlers = {
        .ready = admin_ready,
        .metrics = admin_metrics,
        .report = admin_report,
        .report_previous = admin_report_previous,
        .backends = admin_backends};
    const struct admin_options options = {.allow_public = cfg->allow_public};

    if (!cfg->enabled)
        return 0;
    d->admin = admin_start(&cfg->addr, &options, &handlers, d);
    return d->admin != NULL ? 0 : -1;
}

/* ---- run ------------------------------------------------------------------------- */

int daemon_run(const char *config_path, struct generation *gen, struct tickets *tickets)
{
    struct daemon d = {.config_path = config_path, .gen = gen, .tickets = tickets};
    int status = -1;

    atomic_init(&d.num_conns, 0);
    atomic_init(&d.conn_fds, 0);
    atomic_init(&d.conn_fd_budget, 0);
    atomic_init(&d.ready, false);
    d.notify = sd_notify_open();
    d.metrics = metrics_new();
    d.report = report_new(&gen->config->report);
    d.num_workers = resolve_num_workers(gen->config);
    d.workers = calloc(d.num_workers, sizeof(*d.workers));
    d.listener_conns = calloc(gen->config->num_listeners, sizeof(*d.listener_conns));
    if (d.metrics == NULL || d.report == NULL || d.workers == NULL || d.listener_conns == NULL)
        goto fail;
    for (unsigned i = 0; i < d.num_workers; i++)
        if (worker_init(&d.workers[i], i, &d, gen) != 0)
            goto fail;
    if (check_net_admin(gen->config) != 0 || bind_all(&d) != 0 || daemon_watch_init(&d) != 0 ||
        report_start(d.report, d.watch->base) != 0)
        goto fail;
    /* Before the user switch, which empties the health and resolver
     * threads' capabilities: they need none (privileges.h). */
    if (backend_health_start() != 0)
        goto fail;
    /* Counted while /proc/self is still ours to read, before privileges go;
     * the admin endpoint, started last, lives on the reserve. */
    d.fds_at_start = count_open_fds();
    set_conn_fd_budget(&d);
    if (gen->config->user != NULL &&
        privileges_drop(gen->config->user, config_needs_net_admin(gen->config) != NULL) != 0)
        goto fail;
    for (unsigned i = 0; i < d.num_workers; i++) {
        if (worker_start(&d.workers[i]) != 0) {
            log_msg(LOG_ERROR, "start_failed", "cannot start worker thread %u", i);
            goto fail;
        }
    }
    config_set_known_addrs(backend_group_known_addrs);
    publish_certs(&d);
    metrics_set_instance(d.metrics,
                         gen->config->report.instance ? gen->config->report.instance : "localhost");
    atomic_store(&d.ready, true);
    if (start_admin(&d) != 0)
        goto fail;
    /* Last: every thread of the start exists (log writer, health and
     * resolver, workers, admin), the sockets are bound and the user is
     * switched, so the filter, synced to all threads, need not allow any
     * of that. */
    if (seccomp_filter_install(gen->config->security.seccomp) != 0)
        goto fail;

    alloc_fail_arm();
    struct log_line line;
    log_begin(&line, LOG_INFO, "started");
    log_str(&line, "version", TLSTERM_VERSION);
    log_str(&line, "instance",
            gen->config->report.instance ? gen->config->report.instance : "localhost");
    log_int(&line, "pid", (long long)getpid());
    log_int(&line, "workers", d.num_workers);
    log_int(&line, "listeners", (long long)gen->config->num_listeners);
    log_int(&line, "connection_fds", atomic_load(&d.conn_fd_budget));
    log_end(&line);
    sd_notify_send(d.notify, "READY=1\nSTATUS=serving %zu listeners with %u workers",
                   gen->config->num_listeners, d.num_workers);

    /* Runs until a stop signal (and drain_delay after it): start_drain asks
     * every worker to drain and breaks the loop. Freeing the signal events
     * below gives the signals their default action back, so a second one
     * forces the stop. */
    if (event_base_dispatch(d.watch->base) >= 0)
        status = 0;

fail:
    atomic_store(&d.ready, false);
    report_stop(d.report); /* its timer is on the watch's loop */
    daemon_watch_free(d.watch);
    d.watch = NULL;
    for (unsigned i = 0; d.workers != NULL && i < d.num_workers; i++)
        if (d.workers[i].started)
            worker_drain(&d.workers[i]);
    for (unsigned i = 0; d.workers != NULL && i < d.num_workers; i++)
        worker_join(&d.workers[i]);
    /* The admin endpoint answers (503 on /readyz) until the drain is over. */
    admin_stop(d.admin);
    backend_health_stop();
    config_set_known_addrs(NULL);
    for (unsigned i = 0; d.workers != NULL && i < d.num_workers; i++)
        worker_cleanup(&d.workers[i]);
    report_finish(d.report); /* the last, partial window */
    report_free(d.report);
    free(d.workers);
    free(d.listener_conns);
    metrics_free(d.metrics);
    generation_unref(d.gen);
    tickets_free(d.tickets);
    sd_notify_close(d.notify);
    if (status == 0)
        log_msg(LOG_INFO, "stopped", "all connections closed");
    return status;
}
