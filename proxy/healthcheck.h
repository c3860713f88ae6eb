/* healthcheck: "tlsterm healthcheck [-c FILE] [--admin ADDR] [--ready]", a
 * probe for container engines and orchestrators (compose `healthcheck:`,
 * Kubernetes exec probes) in an image that has no curl.
 *
 * It sends one plain HTTP/1.1 GET of /healthz (or /readyz with --ready) to
 * the admin endpoint, blocking, with HEALTHCHECK_TIMEOUT_MS for the whole
 * exchange, and exits 0 on a 200 and 1 otherwise, with one line on stderr
 * saying why (connection refused, the status, the timeout). The address is
 * --admin's, else the admin.listen of the configuration FILE (default
 * HEALTHCHECK_DEFAULT_CONFIG). It owns nothing once it returns. */
#ifndef TLSTERM_HEALTHCHECK_H
#define TLSTERM_HEALTHCHECK_H

/* HEALTHCHECK_TIMEOUT_MS bounds connect, request and response together:
 * short enough for a probe period, long enough for a loaded host. */
#define HEALTHCHECK_TIMEOUT_MS 2000
#define HEALTHCHECK_DEFAULT_CONFIG "/etc/tlsterm/tlsterm.yaml"

/* healthcheck_main runs the subcommand with the arguments after
 * "healthcheck" and returns the exit code: 0 healthy (or ready), 1 not (or
 * the configuration could not be read), 2 for a usage error. */
int healthcheck_main(int argc, char **argv);

#endif
