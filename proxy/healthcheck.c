/* healthcheck: one blocking GET to the admin endpoint, for probes.
 *
 * The exchange is a plain non-blocking socket driven by poll(2) against one
 * deadline, so every step (connect, send, receive) shares the same
 * HEALTHCHECK_TIMEOUT_MS and a silent peer cannot hold the probe longer.
 * The admin endpoint closes every connection after its response, so the
 * response is read to EOF (or until RESPONSE_MAX bytes, more than any
 * /healthz or /readyz answer). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "healthcheck.h"
#include "log.h"
#include "net.h"
#include "yamltree.h"

#define RESPONSE_MAX 1024
/* Characters of the reason phrase and body shown in the failure line. */
#define SHOWN_MAX 80

static const char usage[] =
    "usage: tlsterm healthcheck [-c FILE | --admin HOST:PORT] [--ready]\n"
    "       GET /healthz (/readyz with --ready) from the admin endpoint of FILE\n"
    "       (default " HEALTHCHECK_DEFAULT_CONFIG ") or HOST:PORT; exit 0 on 200, else 1\n";

/* struct probe is one exchange: where it goes and what came back. */
struct probe {
    char addr_text[NET_ADDR_TEXT_MAX];
    const char *path;
    uint64_t deadline_ms;
    char response[RESPONSE_MAX + 1];
    size_t response_len;
};

/* say_why writes the one failure line, "tlsterm healthcheck: ADDR: ...". */
static int say_why(const struct probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int say_why(const struct probe *p, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tlsterm healthcheck: %s: ", p->addr_text);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* wait_for polls |fd| for |events| until |p|'s deadline: 1 when ready, 0
 * when the deadline passed, -1 with errno on a poll error. */
static int wait_for(const struct probe *p, int fd, short events)
{
    for (;;) {
        uint64_t now = clock_now_ms();
        if (now >= p->deadline_ms)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)(p->deadline_ms - now));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* exchange connects, sends the GET and reads the response into |p|; it
 * returns 0, or 1 after saying why. */
static int exchange(struct probe *p, int fd, const struct net_addr *addr)
{
    char request[128];
    int request_len = snprintf(request, sizeof(request),
                               "GET %s HTTP/1.1\r\nHost: tlsterm\r\nUser-Agent: tlsterm-"
                               "healthcheck\r\nConnection: close\r\n\r\n",
                               p->path);
    int err = 0;
    socklen_t err_len = sizeof(err);
    int ready;

    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
        if (errno != EINPROGRESS)
            return say_why(p, "connect: %s", strerror(errno));
        ready = wait_for(p, fd, POLLOUT);
        if (ready == 0)
            return say_why(p, "timed out after %d ms connecting", HEALTHCHECK_TIMEOUT_MS);
        if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0)
            return say_why(p, "connect: %s", strerror(errno));
        if (err != 0)
            return say_why(p, "connect: %s", strerror(err));
    }

    for (int sent = 0; sent < request_len;) {
        ssize_t n = send(fd, request + sent, (size_t)(request_len - sent), MSG_NOSIGNAL);
        if (n > 0) {
            sent += (int)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return say_why(p, "sending the request: %s", strerror(errno));
        ready = wait_for(p, fd, POLLOUT);
        if (ready == 0)
            return say_why(p, "timed out after %d ms sending the request",
                           HEALTHCHECK_TIMEOUT_MS);
        if (ready < 0)
            return say_why(p, "poll: %s", strerror(errno));
    }

    while (p->response_len < RESPONSE_MAX) {
        ssize_t n = recv(fd, p->response + p->response_len, RESPONSE_MAX - p->response_len, 0);
        if (n > 0) {
            p->response_len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == ECONNRESET && p->response_len > 0)
            break; /* the answer arrived; what the close did after does not matter */
        if (errno != EAGAIN && errno != EINTR)
            return say_why(p, "reading the response: %s", strerror(errno));
        ready = wait_for(p, fd, POLLIN);
        if (ready == 0)
            return say_why(p, "timed out after %d ms waiting for the response to GET %s",
                           HEALTHCHECK_TIMEOUT_MS, p->path);
        if (ready < 0)
            return say_why(p, "poll: %s", strerror(errno));
    }
    p->response[p->response_len] = '\0';
    return 0;
}

/* shown escapes the bytes from |start| up to the first CR or LF (at most
 * SHOWN_MAX of them) into |out|: the peer's text is untrusted on a
 * terminal. */
static const char *shown(const char *start, char *out, size_t out_len)
{
    size_t len = strcspn(start, "\r\n");
    if (len > SHOWN_MAX)
        len = SHOWN_MAX;
    log_escape(out, out_len, start, len, LOG_ESCAPE_TERMINAL, NULL);
    return out;
}

/* judge reads the status of |p|'s response: 0 for a 200, else 1 after
 * saying which status (with the reason phrase and the body's first line) or
 * that the answer was not HTTP. */
static int judge(const struct probe *p)
{
    const char *r = p->response;
    char reason[SHOWN_MAX * 4 + 1];
    char body[SHOWN_MAX * 4 + 1];

    if (p->response_len == 0)
        return say_why(p, "connection closed without a response to GET %s", p->path);
    if (strncmp(r, "HTTP/1.", 7) != 0 || r[7] < '0' || r[7] > '9' || r[8] != ' ' ||
        r[9] < '1' || r[9] > '5' || r[10] < '0' || r[10] > '9' || r[11] < '0' || r[11] > '9' ||
        (r[12] != ' ' && r[12] != '\r'))
        return say_why(p, "GET %s: not an HTTP/1.x response: \"%s\"", p->path,
                       shown(r, reason, sizeof(reason)));
    int status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
    if (status == 200)
        return 0;
    const char *phrase = r[12] == ' ' ? r + 13 : "";
    const char *header_end = strstr(r, "\r\n\r\n");
    const char *body_start = header_end != NULL ? header_end + 4 : "";
    shown(phrase, reason, sizeof(reason));
    shown(body_start, body, sizeof(body));
    if (body[0] != '\0')
        return say_why(p, "GET %s: %d %s (%s)", p->path, status, reason, body);
    return say_why(p, "GET %s: %d %s", p->path, status, reason);
}

/* admin_addr_of_config reads admin.listen from the file at |path| into
 * |out|; it returns 0, or 1 after printing why (the file cannot be parsed,
 * it has no admin endpoint, the address is invalid). Only that key is read,
 * from the YAML tree (with ${VAR} expanded as the daemon does): loading the
 * whole configuration would resolve every backend name and read every
 * certificate, outside the probe's deadline, and a DNS outage or a key
 * being renewed would then fail the liveness probe of a healthy proxy. The
 * rest of the file is the daemon's business, and --check's. */
static int admin_addr_of_config(const char *path, struct net_addr *out)
{
    char *error_text = NULL;
    size_t error_len = 0;
    FILE *errors = open_memstream(&error_text, &error_len);
    struct yamltree *tree;
    const struct ynode *listen;
    const char *text;
    char reason[160];
    int status = 1;

    if (errors == NULL) {
        fprintf(stderr, "tlsterm healthcheck: out of memory\n");
        return 1;
    }
    tree = yamltree_load(path, errors);
    fclose(errors);
    if (tree == NULL) {
        fprintf(stderr, "tlsterm healthcheck: %s cannot be loaded:\n", path);
        config_print_errors(error_text, stderr);
        free(error_text);
        return 1;
    }
    free(error_text);
    listen = yamltree_get(yamltree_get(yamltree_root(tree), "admin"), "listen");
    text = listen != NULL ? yamltree_scalar(listen) : NULL;
    if (listen == NULL) {
        fprintf(stderr,
                "tlsterm healthcheck: %s has no admin endpoint (admin: listen:); "
                "configure one or give --admin HOST:PORT\n",
                path);
    } else if (text == NULL) {
        fprintf(stderr, "tlsterm healthcheck: %s:%d:%d: admin listen is %s; expected a string\n",
                path, yamltree_line(listen), yamltree_col(listen),
                yamltree_kind_name(yamltree_kind(listen)));
    } else if (net_addr_parse(text, false, out, reason, sizeof(reason)) != 0) {
        char escaped[NET_ADDR_TEXT_MAX];
        fprintf(stderr, "tlsterm healthcheck: %s:%d:%d: invalid admin listen address '%s': %s\n",
                path, yamltree_line(listen), yamltree_col(listen),
                shown(text, escaped, sizeof(escaped)), reason);
    } else {
        status = 0;
    }
    yamltree_free(tree);
    return status;
}

int healthcheck_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"admin", required_argument, NULL, 'a'},
        {"ready", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    const char *admin_text = NULL;
    struct probe p = {.path = "/healthz"};
    struct net_addr addr;
    char program[] = "tlsterm healthcheck"; /* what getopt's messages start with */
    int opt;

    argv[0] = program;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:a:rh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'a':
            admin_text = optarg;
            break;
        case 'r':
            p.path = "/readyz";
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default: /* getopt has said which option */
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "tlsterm healthcheck: unexpected argument '%s'\n%s", argv[optind],
                usage);
        return 2;
    }
    if (config_path != NULL && admin_text != NULL) {
        fprintf(stderr, "tlsterm healthcheck: -c and --admin exclude each other\n%s", usage);
        return 2;
    }

    if (admin_text != NULL) {
        char reason[160];
        if (net_addr_parse(admin_text, false, &addr, reason, sizeof(reason)) != 0) {
            fprintf(stderr, "tlsterm healthcheck: invalid --admin address '%s': %s\n%s",
                    admin_text, reason, usage);
            return 2;
        }
    } else if (admin_addr_of_config(config_path != NULL ? config_path
                                                        : HEALTHCHECK_DEFAULT_CONFIG,
                                    &addr) != 0) {
        return 1;
    }
    net_addr_format(&addr, p.addr_text, sizeof(p.addr_text));

    int fd = socket(addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return say_why(&p, "socket: %s", strerror(errno));
    p.deadline_ms = clock_now_ms() + HEALTHCHECK_TIMEOUT_MS;
    int status = exchange(&p, fd, &addr);
    close(fd);
    return status != 0 ? status : judge(&p);
}
