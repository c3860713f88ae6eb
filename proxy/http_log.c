/* http_log: the access log line of an exchange (http.h, http_exchange_log).
 *
 * One "request" line per request when log.access is on, whatever log.level
 * says: operators keep access logs and error logs apart. The path is the
 * client's bytes, so it is escaped by the log writer and cut at
 * ACCESS_PATH_MAX bytes. */
#include "http.h"

#include <string.h>

#include <openssl/ssl.h>

#include "clock.h"
#include "conn.h"
#include "generation.h"
#include "http_metrics.h"
#include "metrics.h"
#include "tls_ctx.h"
#include "worker.h"

#define ACCESS_PATH_MAX 1024

void http_exchange_log(struct http_exchange *x, const char *protocol)
{
    struct conn *c = x->c;
    uint64_t duration_us = metrics_clock_us() - x->started_us;
    int status = x->reason != HTTP_REASON_NONE && !x->resp_final ? http_reason_status(x->reason)
                                                                 : x->resp.status;

    /* A client that left before any answer (logged as 499, as nginx does)
     * is no request served: only its reason is counted. */
    http_metrics_request(c, protocol,
                         x->reason == HTTP_REASON_CLIENT_ABORTED && !x->resp_final ? 0 : status,
                         x->reason, duration_us);
    if (!c->gen->config->log_access)
        return;

    struct log_line line;
    char server[NET_ADDR_TEXT_MAX];
    conn_log_begin(&line, c, LOG_INFO, "request");
    log_str(&line, "protocol", protocol);
    if (x->stream_id != 0)
        log_int(&line, "stream", x->stream_id);
    log_str(&line, "method", x->req.method != NULL ? x->req.method : "");
    log_str(&line, "authority", x->req.authority != NULL ? x->req.authority : "");
    const char *path = x->req.target != NULL ? x->req.target : "";
    size_t path_len = strlen(path);
    log_strn(&line, "path", path, path_len > ACCESS_PATH_MAX ? ACCESS_PATH_MAX : path_len);
    log_int(&line, "status", status);
    log_int(&line, "bytes_in", (long long)x->req_bytes);
    log_int(&line, "bytes_out", (long long)x->resp_bytes);
    log_int(&line, "duration_ms", (long long)(duration_us / 1000));
    if (x->server != NULL)
        log_str(&line, "server", net_addr_format(x->server, server, sizeof(server)));
    else
        log_null(&line, "server");
    log_bool(&line, "reused", x->reused);
    if (x->request_id != NULL)
        log_str(&line, "request_id", x->request_id);
    else
        log_null(&line, "request_id");
    if (x->reason != HTTP_REASON_NONE)
        log_str(&line, "reason", http_reason_name(x->reason));
    else
        log_null(&line, "reason");
    if (c->client.ssl != NULL)
        log_str(&line, "tls_version", tls_version_name((uint16_t)SSL_version(c->client.ssl)));
    else
        log_null(&line, "tls_version"); /* a redirect listener's plain HTTP */
    log_bool(&line, "early_data", x->early_data);
    log_end(&line);
}
