/* main: command line, process set-up, and the start of the server. No logic
 * of its own: everything it does is a call into a module. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/base.h>
#include <yaml.h>

#include "alloc_fail.h"
#include "config.h"
#include "log.h"
#include "report.h"
#include "seccomp_filter.h"
#include "daemon.h"
#include "generation.h"
#include "healthcheck.h"
#include "listener.h"
#include "privileges.h"
#include "tickets.h"

/* Exit codes, documented in README. */
enum {
    EXIT_OK = 0,
    EXIT_CONFIG = 1,  /* configuration or certificate errors */
    EXIT_USAGE = 2,   /* bad command line */
    EXIT_RUNTIME = 3, /* could not start: bind failed, privileges, event loop */
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: tlsterm -c FILE          run in the foreground, logging to stderr\n"
            "       tlsterm --check -c FILE  load and validate FILE and every certificate,\n"
            "                                print the effective settings; exit 0 or 1\n"
            "       tlsterm report [--json] FILE\n"
            "                                print a TLS failure report as a table (or JSON)\n"
            "       tlsterm healthcheck [-c FILE | --admin HOST:PORT] [--ready]\n"
            "                                GET /healthz (/readyz) from the admin endpoint;\n"
            "                                exit 0 on 200, else 1\n"
            "       tlsterm --version        versions of tlsterm and its libraries\n"
            "       tlsterm --help           this text\n"
            "exit codes: 0 ok, 1 configuration error, 2 usage error, 3 failed to start\n");
}

static void print_version(void)
{
    printf("tlsterm %s\n", TLSTERM_VERSION);
    printf("BoringSSL API %d (Debian package %s)\n", BORINGSSL_API_VERSION,
           BORINGSSL_PKG_VERSION);
    printf("libevent %s\n", event_get_version());
    printf("libyaml %s\n", yaml_get_version_string());
#ifdef TLSTERM_ALLOC_FAIL
    printf("allocation-failure injection: built in (a test build)\n");
#endif
    printf("nghttp2 %s\n", nghttp2_version(0)->version_str);
    printf("llhttp %d.%d.%d (from Debian's node-llhttp, strict mode)\n", LLHTTP_VERSION_MAJOR,
           LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
}

/* raise_fd_limit lifts the soft descriptor limit to the hard one: each
 * connection needs two descriptors (listener_fds_per_conn), and the default
 * soft limit of 1024 would cap tlsterm at about 500 connections. */
static void raise_fd_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &limit);
    }
}

/* load_generation loads |config_path| and builds its first generation and
 * ticket keys into |*out_tickets| (NULL when tickets are off), writing every
 * error to |errors|; it returns NULL after an error. With |human_log|, the
 * log (warnings) stays in the text format whatever the file says. */
static struct generation *load_generation(const char *config_path, struct tickets **out_tickets,
                                          bool human_log, FILE *errors)
{
    struct config *config = config_load(config_path, errors);
    struct generation *gen;

    if (config == NULL)
        return NULL;
    log_configure(human_log ? LOG_FORMAT_TEXT : config->log_format, config->log_level);
    if (config->session_tickets.enabled &&
        (*out_tickets = tickets_new(&config->session_tickets, errors)) == NULL) {
        config_free(config);
        return NULL;
    }
    gen = generation_new(config, *out_tickets, errors);
    /* Loaded as whoever started tlsterm; reloads will read as |user|. */
    if (gen != NULL && gen->config->user != NULL &&
        privileges_check_files(gen->config, errors) != 0) {
        generation_unref(gen);
        gen = NULL;
    }
    if (gen == NULL) {
        tickets_free(*out_tickets);
        *out_tickets = NULL;
    }
    return gen;
}

/* load is load_generation with its errors collected, then printed to stderr
 * with config_print_errors, so a file with thousands stays readable. */
static struct generation *load(const char *config_path, struct tickets **out_tickets,
                               bool human_log)
{
    char *error_text = NULL;
    size_t error_len = 0;
    FILE *errors = open_memstream(&error_text, &error_len);
    struct generation *gen;

    if (errors == NULL) {
        fprintf(stderr, "%s: out of memory\n", config_path);
        return NULL;
    }
    gen = load_generation(config_path, out_tickets, human_log, errors);
    fclose(errors);
    config_print_errors(error_text, stderr);
    free(error_text);
    return gen;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    bool check_only = false;
    int opt;

    /* Test builds: before any allocation of libevent's. */
    alloc_fail_init();
    /* Before anything else: no exec (tlsterm does none) may gain privileges. */
    if (privileges_forbid_new_privs() != 0)
        log_msg(LOG_WARN, "privileges", "cannot set PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

    /* A subcommand of its own, with its own arguments. */
    if (argc >= 2 && strcmp(argv[1], "report") == 0)
        return report_cli_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "healthcheck") == 0)
        return healthcheck_main(argc - 1, argv + 1);

    while ((opt = getopt_long(argc, argv, "c:tVh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'V':
            print_version();
            return EXIT_OK;
        case 'h':
            print_usage(stdout);
            return EXIT_OK;
        default:
            print_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (config_path == NULL || optind != argc) {
        fprintf(stderr, "tlsterm: %s\n",
                config_path == NULL ? "-c FILE is required" : "unexpected argument");
        print_usage(stderr);
        return EXIT_USAGE;
    }

    /* --check at a terminal is read by a person: its warnings are text
     * lines, not JSON, from the first (they come before the file says
     * which format it wants). A pipe keeps the configured format. */
    bool human_log = check_only && isatty(STDERR_FILENO);
    if (human_log)
        log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    struct tickets *tickets = NULL;
    struct generation *gen = load(config_path, &tickets, human_log);
    if (gen == NULL)
        return EXIT_CONFIG;
    /* The limit the daemon would run with, --check included. */
    raise_fd_limit();
    listener_warn_fd_limit(gen->config);
    if (check_only) {
        generation_describe(gen, stdout);
        tickets_describe(tickets, stdout);
        seccomp_filter_describe(&gen->config->security, stdout);
        printf("%s: ok\n", config_path);
        generation_unref(gen);
        tickets_free(tickets);
        return EXIT_OK;
    }

    /* Workers' event loops are woken from the main thread (drain). */
    if (evthread_use_pthreads() != 0) {
        log_msg(LOG_ERROR, "start_failed", "libevent has no thread support");
        generation_unref(gen);
        tickets_free(tickets);
        return EXIT_RUNTIME;
    }
    /* A peer that closes while we write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* From here on, no event loop waits for stderr. */
    if (log_writer_start() != 0)
        log_msg(LOG_WARN, "log_writer", "no log writer thread; logging directly");
    int status = daemon_run(config_path, gen, tickets) == 0 ? EXIT_OK : EXIT_RUNTIME;
    log_writer_stop();
    return status;
}
