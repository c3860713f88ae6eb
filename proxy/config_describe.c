/* config_describe: the process-wide settings for --check (workers, limits,
 * log, admin endpoint, failure report), after the listeners' own lines.
 *
 * --check is where an operator confirms what a file means, so every value
 * is the effective one: defaults filled in, environment references expanded,
 * "auto" resolved. Paths and names from the file are escaped like any text
 * tlsterm shows. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config_internal.h"

/* put_escaped writes |text| escaped for a terminal, or "?" when out of
 * memory. */
static void put_escaped(const char *text, FILE *out)
{
    char *escaped = log_escape_dup(text, LOG_ESCAPE_TERMINAL, NULL);

    fputs(escaped != NULL ? escaped : "?", out);
    free(escaped);
}

void config_describe_process(const struct config *config, FILE *out)
{
    static const char *const level_names[] = {"debug", "info", "warn", "error"};
    const struct cfg_report *report = &config->report;
    char a[24], b[24];

    if (config->num_workers == 0)
        fprintf(out, "workers: auto (%ld on this host)\n", sysconf(_SC_NPROCESSORS_ONLN));
    else
        fprintf(out, "workers: %" PRIu32 "\n", config->num_workers);
    fprintf(out, "instance: %s\n", report->instance != NULL ? report->instance : "localhost");
    fprintf(out, "max_connections: %" PRIu32 "\n", config->max_connections);
    fprintf(out, "drain_timeout: %s\n",
            cfg_format_duration(config->drain_timeout_ms, a, sizeof(a)));
    if (config->drain_delay_ms > 0)
        fprintf(out, "drain_delay: %s (not ready, still accepting, before the drain)\n",
                cfg_format_duration(config->drain_delay_ms, a, sizeof(a)));
    fprintf(out, "user: ");
    put_escaped(
        config->user != NULL ? config->user : "(unchanged: the user that starts tlsterm)", out);
    fprintf(out, "\nreload_on_change: %s", config->reload_on_change ? "true" : "false");
    if (config->reload_on_change && config->reload_poll_ms == 0)
        fprintf(out, ", reload_poll_interval off");
    else if (config->reload_on_change)
        fprintf(out, ", reload_poll_interval %s",
                cfg_format_duration(config->reload_poll_ms, a, sizeof(a)));
    fprintf(out, "\n");
    fprintf(out,
            "log: format %s, level %s, access %s, handshake_failures rate %" PRIu32
            "/s burst %" PRIu32 " summary_interval %s\n",
            config->log_format == LOG_FORMAT_TEXT ? "text" : "json",
            level_names[config->log_level], config->log_access ? "true" : "false",
            config->failure_log_rate, config->failure_log_burst,
            cfg_format_duration(config->failure_log_summary_ms, b, sizeof(b)));
    if (config->admin.enabled) {
        char addr[NET_ADDR_TEXT_MAX];
        fprintf(out, "admin: %s (/healthz, /readyz, /metrics, /backends, /report)%s\n",
                net_addr_format(&config->admin.addr, addr, sizeof(addr)),
                config->admin.allow_public ? ", allow_public" : "");
    } else {
        fprintf(out, "admin: off\n");
    }
    fprintf(out, "report: interval %s, ",
            cfg_format_duration(report->interval_ms, a, sizeof(a)));
    if (report->dir != NULL) {
        fprintf(out, "dir ");
        put_escaped(report->dir, out);
        fprintf(out, " (keep %" PRIu32 ")", report->keep);
    } else {
        fprintf(out, "not written (no dir)");
    }
    fprintf(out, ", organization ");
    put_escaped(report->organization != NULL ? report->organization : "tlsterm", out);
    fprintf(out, "\n");
}
