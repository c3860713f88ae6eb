/* net: socket addresses and socket options. See net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

static const char unix_prefix[] = "unix:";

static int parse_unix(const char *path, struct net_addr *out_addr, char *err,
                      size_t err_len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out_addr->ss;
    size_t path_len = strlen(path);

    if (path_len == 0 || path_len >= sizeof(sun->sun_path)) {
        snprintf(err, err_len, "unix socket path must be 1 to %zu bytes",
                 sizeof(sun->sun_path) - 1);
        return -1;
    }
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, path_len + 1);
    out_addr->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + 1);
    return 0;
}

int net_addr_parse(const char *text, bool allow_unix, struct net_addr *out_addr,
                   char *err, size_t err_len)
{
    char host[256];
    const char *port;
    size_t host_len;

    memset(out_addr, 0, sizeof(*out_addr));
    if (strncmp(text, unix_prefix, sizeof(unix_prefix) - 1) == 0) {
        if (!allow_unix) {
            snprintf(err, err_len, "unix sockets are not allowed here");
            return -1;
        }
        return parse_unix(text + sizeof(unix_prefix) - 1, out_addr, err, err_len);
    }

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, err_len, "expected \"[v6 address]:port\"");
            return -1;
        }
        host_len = (size_t)(close - text - 1);
        port = close + 2;
        text++;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            snprintf(err, err_len, "expected %s",
                     allow_unix ? "\"host:port\", \"[v6]:port\" or \"unix:/path\""
                                : "\"host:port\" or \"[v6]:port\"");
            return -1;
        }
        if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
            snprintf(err, err_len, "an IPv6 address needs brackets: \"[v6]:port\"");
            return -1;
        }
        host_len = (size_t)(colon - text);
        port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(host)) {
        snprintf(err, err_len, "missing or too long host");
        return -1;
    }
    memcpy(host, text, host_len);
    host[host_len] = '\0';

    /* Digits only: strtol would also take blanks and a sign. */
    char *end;
    errno = 0;
    long port_num = strtol(port, &end, 10);
    if (*port < '0' || *port > '9' || *end != '\0' || errno != 0 || port_num > 65535) {
        snprintf(err, err_len, "port must be a number from 0 to 65535");
        return -1;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(&out_addr->ss, res->ai_addr, res->ai_addrlen);
    out_addr->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

bool net_have_ipv6(void)
{
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    int one = 1;
    bool have = true;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return errno != EAFNOSUPPORT;
    /* Port 0: a port of its own, so nothing listening is disturbed. */
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0 &&
        bind(fd, (struct sockaddr *)&any, sizeof(any)) != 0 && errno == EADDRNOTAVAIL)
        have = false;
    close(fd);
    return have;
}

int net_listen_parse(const char *text, struct net_addr out_addrs[2], size_t *out_num,
                     char *err, size_t err_len)
{
    static const char *const any_hosts[] = {"*:", "[*]:", ":"};
    char every[16];

    *out_num = 0;
    for (size_t i = 0; i < sizeof(any_hosts) / sizeof(any_hosts[0]); i++) {
        size_t prefix_len = strlen(any_hosts[i]);
        const char *port = text + prefix_len;
        if (strncmp(text, any_hosts[i], prefix_len) != 0)
            continue;
        if (strlen(port) > 5) {
            snprintf(err, err_len, "port must be a number from 0 to 65535");
            return -1;
        }
        snprintf(every, sizeof(every), "0.0.0.0:%s", port);
        if (net_addr_parse(every, false, &out_addrs[0], err, err_len) != 0)
            return -1;
        *out_num = 1;
        snprintf(every, sizeof(every), "[::]:%s", port);
        if (net_have_ipv6() && net_addr_parse(every, false, &out_addrs[1], err, err_len) == 0)
            *out_num = 2;
        return 0;
    }
    if (strchr(text, ':') == NULL) {
        snprintf(err, err_len, "expected \"host:port\", \"[v6]:port\" or \"*:port\" (every "
                               "address)");
        return -1;
    }
    if (net_addr_parse(text, false, &out_addrs[0], err, err_len) != 0)
        return -1;
    *out_num = 1;
    return 0;
}

int net_addr_parse_numeric(const char *text, struct net_addr *out_addr)
{
    char *host = NULL, *port = NULL;
    char err[64];
    int rc = -1;

    if (strncmp(text, unix_prefix, sizeof(unix_prefix) - 1) == 0 ||
        net_addr_split(text, &host, &port, err, sizeof(err)) != 0)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) == 0) {
        memset(out_addr, 0, sizeof(*out_addr));
        memcpy(&out_addr->ss, res->ai_addr, res->ai_addrlen);
        out_addr->len = res->ai_addrlen;
        freeaddrinfo(res);
        rc = 0;
    }
    free(host);
    free(port);
    return rc;
}

int net_addr_split(const char *text, char **out_host, char **out_port, char *err,
                   size_t err_len)
{
    const char *host = text, *colon, *port;
    size_t host_len;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, err_len, "expected \"[v6 address]:port\"");
            return -1;
        }
        host = text + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL) {
            snprintf(err, err_len, "expected \"host:port\", \"[v6]:port\" or \"unix:/path\"");
            return -1;
        }
        host_len = (size_t)(colon - text);
        port = colon + 1;
    }
    char *end;
    errno = 0;
    long port_num = strtol(port, &end, 10);
    if (host_len == 0 || host_len >= 256) {
        snprintf(err, err_len, "missing or too long host");
        return -1;
    }
    if (*port < '0' || *port > '9' || *end != '\0' || errno != 0 || port_num > 65535) {
        snprintf(err, err_len, "port must be a number from 0 to 65535");
        return -1;
    }
    *out_host = strndup(host, host_len);
    *out_port = strdup(port);
    if (*out_host == NULL || *out_port == NULL) {
        free(*out_host);
        free(*out_port);
        *out_host = *out_port = NULL;
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

int net_resolve_all(const char *host, const char *port, size_t max,
                    struct net_addr **out_addrs, size_t *out_num, char *err, size_t err_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    size_t num = 0;
    int rc = getaddrinfo(host, port, &hints, &res);

    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        num++;
    struct net_addr *addrs = calloc(num, sizeof(*addrs));
    if (addrs == NULL) {
        freeaddrinfo(res);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    num = 0;
    for (struct addrinfo *ai = res; ai != NULL && num < max; ai = ai->ai_next) {
        struct net_addr addr = {.len = ai->ai_addrlen};
        bool seen = false;
        if (ai->ai_addrlen > sizeof(addr.ss))
            continue;
        memcpy(&addr.ss, ai->ai_addr, ai->ai_addrlen);
        for (size_t i = 0; i < num && !seen; i++)
            seen = net_addr_equal(&addrs[i], &addr);
        if (!seen)
            addrs[num++] = addr;
    }
    freeaddrinfo(res);
    *out_addrs = addrs;
    *out_num = num;
    return 0;
}

char *net_addr_format_sa(const struct sockaddr *sa, socklen_t len, char *out,
                         size_t out_len)
{
    char ip[INET6_ADDRSTRLEN];

    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out, out_len, "%s:%u", ip, ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out, out_len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t path_max = len > offsetof(struct sockaddr_un, sun_path)
                              ? len - offsetof(struct sockaddr_un, sun_path)
                              : 0;
        snprintf(out, out_len, "unix:%.*s", (int)strnlen(sun->sun_path, path_max),
                 sun->sun_path);
        break;
    }
    default:
        snprintf(out, out_len, "unknown");
    }
    return out;
}

char *net_addr_format(const struct net_addr *addr, char *out, size_t out_len)
{
    return net_addr_format_sa((const struct sockaddr *)&addr->ss, addr->len, out,
                              out_len);
}

/* same_address compares |a| and |b|, of one family, as net_addr_equal does,
 * or as net_addr_overlaps does when |wildcard| is set. */
static bool same_address(const struct net_addr *a, const struct net_addr *b, bool wildcard)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    switch (a->ss.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin_port == y->sin_port &&
               (x->sin_addr.s_addr == y->sin_addr.s_addr ||
                (wildcard && (x->sin_addr.s_addr == htonl(INADDR_ANY) ||
                              y->sin_addr.s_addr == htonl(INADDR_ANY))));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin6_port == y->sin6_port &&
               (memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 ||
                (wildcard && (IN6_IS_ADDR_UNSPECIFIED(&x->sin6_addr) ||
                              IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr))));
    }
    case AF_UNIX: {
        const struct sockaddr_un *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return strcmp(x->sun_path, y->sun_path) == 0;
    }
    default:
        return false;
    }
}

bool net_addr_equal(const struct net_addr *a, const struct net_addr *b)
{
    return same_address(a, b, false);
}

bool net_addr_overlaps(const struct net_addr *a, const struct net_addr *b)
{
    return same_address(a, b, true);
}

void net_set_nodelay(int fd)
{
    int one = 1;
    /* Fails with EOPNOTSUPP on unix sockets, which is fine: they have no Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int net_listen(struct net_addr *addr, int backlog, bool reuseport)
{
    int one = 1;
    int family = addr->ss.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (family != AF_UNIX &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&addr->ss, addr->len) != 0)
        goto fail;
    if (listen(fd, backlog) != 0)
        goto fail;
    if (family != AF_UNIX) {
        socklen_t len = sizeof(addr->ss);
        if (getsockname(fd, (struct sockaddr *)&addr->ss, &len) != 0)
            goto fail;
        addr->len = len;
    }
    return fd;

fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int net_probe_free(struct net_addr *addr)
{
    int one = 1, saved;
    socklen_t len = sizeof(addr->ss);
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (addr->ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&addr->ss, addr->len) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr->ss, &len) != 0)
        goto fail;
    addr->len = len;
    close(fd);
    return 0;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int net_connect_start(const struct net_addr *addr)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    net_set_nodelay(fd);
    errno = 0;
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 &&
        errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
