/* http_metrics: HTTP mode's counters, kept per worker and listener in the
 * metrics block (metrics.h) and rendered on /metrics:
 *
 *   tlsterm_http_requests_total{listener,protocol,code}   code: 1xx..5xx
 *   tlsterm_http_request_duration_seconds{listener}       histogram
 *   tlsterm_http_errors_total{listener,reason}            http_reason tokens
 *   tlsterm_backend_connections_total{listener,reused}    per request
 *   tlsterm_backend_pool_idle{listener,server}            gauge
 */
#ifndef TLSTERM_HTTP_METRICS_H
#define TLSTERM_HTTP_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

struct conn;

/* http_metrics_request counts one finished request of |c|: its protocol
 * ("h2", "http/1.1"), final |status| (0: none was sent), |reason| when
 * tlsterm answered or cut it short, and its duration. */
void http_metrics_request(struct conn *c, const char *protocol, int status,
                          enum http_reason reason, uint64_t duration_us);

/* http_metrics_backend_conn counts a backend connection given to a request
 * of |c|: from the pool (|reused|) or new. */
void http_metrics_backend_conn(struct conn *c, bool reused);

struct metrics_listener;

/* http_metrics_pool_idle moves the idle gauge of listener |m| (a worker's
 * counters: only that worker calls it) and |server| by |delta|. */
void http_metrics_pool_idle(struct metrics_listener *m, const struct net_addr *server, int delta);

#endif
