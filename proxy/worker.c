/* worker: an event loop thread. See worker.h. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#include "backend_pool.h"
#include "clock.h"
#include "conn.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "report.h"

/* log_limiter_suppressed writes one |event| line per reason whose lines
 * |limiter| dropped since the last summary: the counts are exact. */
static void log_limiter_suppressed(struct worker *w, struct ratelimit *limiter,
                                   enum log_level level, const char *event)
{
    char reason_text[48];
    for (int r = 0; r < END_REASON_COUNT; r++) {
        uint64_t count = ratelimit_take_suppressed(limiter, (enum end_reason)r);
        if (count == 0)
            continue;
        struct log_line line;
        log_begin(&line, level, event);
        log_str(&line, "reason",
                reason_name((enum end_reason)r, 0, reason_text, sizeof(reason_text)));
        log_int(&line, "count", (long long)count);
        log_int(&line, "worker", w->id);
        log_end(&line);
    }
}

/* log_suppressed writes the summaries of the limiters: handshake_failed,
 * policy_would_fail and http2_abuse lines. */
static void log_suppressed(struct worker *w)
{
    log_limiter_suppressed(w, &w->failure_log, LOG_WARN, "handshake_failures_suppressed");
    log_limiter_suppressed(w, &w->would_fail_log, LOG_INFO, "policy_would_fail_suppressed");
    log_limiter_suppressed(w, &w->http2_abuse_log, LOG_WARN, "http2_abuse_suppressed");
    log_limiter_suppressed(w, &w->proxy_header_log, LOG_WARN,
                           "proxy_header_rejected_suppressed");
}

static void on_summary_timer(evutil_socket_t fd, short what, void *arg) { log_suppressed(arg); }

bool worker_log_failure(struct worker *w, enum end_reason reason)
{
    return ratelimit_allow(&w->failure_log, reason, clock_now_ms());
}

bool worker_log_would_fail(struct worker *w, enum end_reason reason)
{
    return ratelimit_allow(&w->would_fail_log, reason, clock_now_ms());
}

bool worker_log_http2_abuse(struct worker *w)
{
    return ratelimit_allow(&w->http2_abuse_log, END_HTTP2_ABUSE, clock_now_ms());
}

bool worker_log_proxy_rejected(struct worker *w)
{
    return ratelimit_allow(&w->proxy_header_log, END_PROXY_HEADER_REJECTED, clock_now_ms());
}

/* apply_log_limits takes the limits of |config|; the buckets' state (tokens,
 * suppressed counts) carries over a reload. */
static void apply_log_limits(struct worker *w, const struct config *config)
{
    struct ratelimit *limiters[] = {&w->failure_log, &w->would_fail_log, &w->http2_abuse_log,
                                    &w->proxy_header_log};
    for (size_t i = 0; i < sizeof(limiters) / sizeof(limiters[0]); i++) {
        limiters[i]->rate = config->failure_log_rate;
        limiters[i]->burst = config->failure_log_burst;
    }
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    log_msg(LOG_WARN, "drain_deadline", "worker %u: closing %zu connections still open", w->id,
            w->num_conns);
    conn_close_all(w, END_SHUTDOWN);
    event_base_loopbreak(w->base);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    if (w->draining)
        return;
    w->draining = true;
    for (size_t i = 0; i < w->num_listeners; i++)
        listener_close(&w->listeners[i]);
    conn_drain_all(w);
    backend_pool_close_idle(w);
    if (w->num_conns == 0) {
        event_base_loopbreak(w->base);
        return;
    }
    uint32_t ms = w->gen->config->drain_timeout_ms;
    struct timeval deadline = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(w->drain_timer, &deadline);
}

/* on_reload switches the listeners to the generation the main thread
 * handed over; connections keep theirs. */
static void on_reload(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    pthread_mutex_lock(&w->reload_lock);
    struct generation *next = w->next_gen;
    w->next_gen = NULL;
    pthread_mutex_unlock(&w->reload_lock);
    if (next == NULL)
        return;
    for (size_t i = 0; i < w->num_listeners; i++)
        listener_use_generation(&w->listeners[i], next);
    generation_unref(w->gen);
    w->gen = next;
    apply_log_limits(w, next->config);
    /* Connections made under the old settings are not reused. */
    backend_pool_close_idle(w);
    conn_reload_all(w);
}

void worker_reload(struct worker *w, struct generation *gen)
{
    generation_ref(gen);
    pthread_mutex_lock(&w->reload_lock);
    struct generation *superseded = w->next_gen;
    w->next_gen = gen;
    pthread_mutex_unlock(&w->reload_lock);
    generation_unref(superseded);
    event_active(w->reload_ev, 0, 0);
}

int worker_init(struct worker *w, unsigned id, struct daemon *daemon, struct generation *gen)
{
    const struct config *config = gen->config;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->daemon = daemon;
    pthread_mutex_init(&w->reload_lock, NULL);
    w->gen = generation_ref(gen); /* from here on, worker_cleanup undoes */
    w->base = event_base_new();
    if (w->base == NULL)
        return -1;
    w->drain_ev = event_new(w->base, -1, 0, on_drain, w);
    w->drain_timer = evtimer_new(w->base, on_drain_deadline, w);
    w->reload_ev = event_new(w->base, -1, 0, on_reload, w);
    w->summary_timer = event_new(w->base, -1, EV_PERSIST, on_summary_timer, w);
    w->metrics = metrics_block_new(daemon->metrics);
    if ((w->report = report_block_new(daemon->report, w->base)) == NULL)
        return -1;
    w->listeners = calloc(config->num_listeners, sizeof(*w->listeners));
    if (timerq_init(&w->timers, w->base, conn_timer_fired) != 0)
        return -1;
    if (w->drain_ev == NULL || w->drain_timer == NULL || w->reload_ev == NULL ||
        w->summary_timer == NULL || w->metrics == NULL || w->listeners == NULL)
        return -1;
    ratelimit_init(&w->failure_log, config->failure_log_rate, config->failure_log_burst);
    ratelimit_init(&w->would_fail_log, config->failure_log_rate, config->failure_log_burst);
    ratelimit_init(&w->http2_abuse_log, config->failure_log_rate, config->failure_log_burst);
    ratelimit_init(&w->proxy_header_log, config->failure_log_rate, config->failure_log_burst);
    struct timeval every = {.tv_sec = config->failure_log_summary_ms / 1000,
                            .tv_usec = (config->failure_log_summary_ms % 1000) * 1000};
    event_add(w->summary_timer, &every);
    for (size_t i = 0; i < config->num_listeners; i++) {
        if (listener_init(&w->listeners[i], w, i) != 0)
            return -1;
        w->num_listeners++;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (size_t i = 0; i < w->num_listeners; i++)
        listener_start(&w->listeners[i]);
    /* The loop runs until the drain ends it, even while no event is armed
     * (every listener paused at its connection limit, say). */
    if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
        log_msg(LOG_ERROR, "event_loop_failed", "worker %u: the event loop failed", w->id);
    return NULL;
}

int worker_start(struct worker *w)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return -1;
    w->started = true;
    return 0;
}

void worker_drain(struct worker *w) { event_active(w->drain_ev, 0, 0); }

void worker_join(struct worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = false;
}

void worker_conn_closed(struct worker *w)
{
    if (w->draining && w->num_conns == 0)
        event_base_loopbreak(w->base);
}

void worker_cleanup(struct worker *w)
{
    if (w->gen == NULL) /* never initialised */
        return;
    conn_close_all(w, END_SHUTDOWN);
    backend_pool_free(w);
    timerq_cleanup(&w->timers);
    for (size_t i = 0; i < w->num_listeners; i++)
        listener_cleanup(&w->listeners[i]);
    metrics_block_free(w->metrics); /* after the closes, which it counts */
    report_block_free(w->report);   /* likewise; before the loop it has a timer on */
    free(w->listeners);
    if (w->drain_ev != NULL)
        event_free(w->drain_ev);
    if (w->drain_timer != NULL)
        event_free(w->drain_timer);
    if (w->reload_ev != NULL)
        event_free(w->reload_ev);
    if (w->summary_timer != NULL) {
        log_suppressed(w); /* the last counts, so the totals stay exact */
        event_free(w->summary_timer);
    }
    generation_unref(w->next_gen);
    pthread_mutex_destroy(&w->reload_lock);
    if (w->base != NULL)
        event_base_free(w->base);
    generation_unref(w->gen);
    memset(w, 0, sizeof(*w));
}
