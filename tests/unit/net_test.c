/* net_test: address parsing with its exact error messages, formatting,
 * comparison, and real loopback sockets for net_listen and
 * net_connect_start. Nothing here needs the network: the only name looked
 * up is "localhost" and one under the reserved .invalid TLD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "net.h"

#define ERR_MAX 256

/* parse_ok parses |text| and fails the test on an error. */
static void parse_ok(const char *text, bool allow_unix, struct net_addr *out_addr)
{
    char err[ERR_MAX] = "";

    if (net_addr_parse(text, allow_unix, out_addr, err, sizeof(err)) != 0)
        fail_msg("net_addr_parse(\"%s\") failed: %s", text, err);
}

/* parse_err parses |text|, which must fail with exactly |want|. */
static void parse_err(const char *text, bool allow_unix, const char *want)
{
    struct net_addr addr;
    char err[ERR_MAX];

    memset(err, 'x', sizeof(err));
    err[sizeof(err) - 1] = '\0';
    if (net_addr_parse(text, allow_unix, &addr, err, sizeof(err)) != -1)
        fail_msg("net_addr_parse(\"%s\") succeeded; expected: %s", text, want);
    if (strcmp(err, want) != 0)
        fail_msg("net_addr_parse(\"%s\"): got \"%s\", expected \"%s\"", text, err, want);
}

static const char *format(const struct net_addr *addr)
{
    static char text[NET_ADDR_TEXT_MAX];
    return net_addr_format(addr, text, sizeof(text));
}

static uint16_t port_of(const struct net_addr *addr)
{
    if (addr->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
    assert_int_equal(addr->ss.ss_family, AF_INET6);
    return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
}

/* ---- parsing ----------------------------------------------------------- */

static void test_parse_ipv4(void **state)
{
    struct net_addr addr;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr.ss;

    parse_ok("127.0.0.1:443", false, &addr);
    assert_int_equal(addr.ss.ss_family, AF_INET);
    assert_int_equal(addr.len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(sin->sin_port), 443);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_string_equal(format(&addr), "127.0.0.1:443");

    parse_ok("0.0.0.0:8443", true, &addr);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_ANY);
    assert_int_equal(ntohs(sin->sin_port), 8443);
}

static void test_parse_ipv6(void **state)
{
    struct net_addr addr;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addr.ss;

    parse_ok("[::1]:8443", false, &addr);
    assert_int_equal(addr.ss.ss_family, AF_INET6);
    assert_int_equal(addr.len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(sin6->sin6_port), 8443);
    assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback, sizeof(in6addr_loopback));
    assert_string_equal(format(&addr), "[::1]:8443");

    parse_ok("[::]:1", false, &addr);
    assert_memory_equal(&sin6->sin6_addr, &in6addr_any, sizeof(in6addr_any));
    assert_int_equal(ntohs(sin6->sin6_port), 1);
}

static void test_parse_resolves_localhost(void **state)
{
    struct net_addr addr;

    parse_ok("localhost:80", false, &addr);
    assert_int_equal(port_of(&addr), 80);
    /* /etc/hosts decides which comes first; either is loopback. */
    if (addr.ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr.ss;
        assert_int_equal(ntohl(sin->sin_addr.s_addr) >> 24, 127);
        assert_int_equal(addr.len, sizeof(struct sockaddr_in));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addr.ss;
        assert_int_equal(addr.ss.ss_family, AF_INET6);
        assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
        assert_string_equal(format(&addr), "[::1]:80");
    }
}

static void test_parse_port_bounds(void **state)
{
    struct net_addr addr;

    parse_ok("127.0.0.1:0", false, &addr);
    assert_int_equal(port_of(&addr), 0);
    parse_ok("127.0.0.1:65535", false, &addr);
    assert_int_equal(port_of(&addr), 65535);
    parse_ok("[::1]:65535", false, &addr);
    assert_int_equal(port_of(&addr), 65535);
    parse_ok("127.0.0.1:00080", false, &addr);
    assert_int_equal(port_of(&addr), 80);
}

static void test_parse_unix(void **state)
{
    struct net_addr addr;
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&addr.ss;

    parse_ok("unix:/tmp/x.sock", true, &addr);
    assert_int_equal(addr.ss.ss_family, AF_UNIX);
    assert_string_equal(sun->sun_path, "/tmp/x.sock");
    assert_int_equal(addr.len,
                     offsetof(struct sockaddr_un, sun_path) + strlen("/tmp/x.sock") + 1);
    assert_string_equal(format(&addr), "unix:/tmp/x.sock");

    parse_ok("unix:relative.sock", true, &addr);
    assert_string_equal(sun->sun_path, "relative.sock");

    parse_err("unix:/tmp/x.sock", false, "unix sockets are not allowed here");
}

static void test_parse_unix_path_length(void **state)
{
    size_t path_max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;
    char text[256];
    char want[ERR_MAX];
    struct net_addr addr;

    snprintf(want, sizeof(want), "unix socket path must be 1 to %zu bytes", path_max);
    assert_string_equal(want, "unix socket path must be 1 to 107 bytes");

    /* The longest path fits, with its NUL, and formats in full. */
    strcpy(text, "unix:/");
    memset(text + 6, 'p', path_max - 1);
    text[5 + path_max] = '\0';
    parse_ok(text, true, &addr);
    assert_int_equal(strlen(((struct sockaddr_un *)&addr.ss)->sun_path), path_max);
    assert_string_equal(format(&addr), text);

    /* One byte more does not. */
    text[5 + path_max] = 'p';
    text[6 + path_max] = '\0';
    parse_err(text, true, want);
    parse_err("unix:", true, want);
}

static void test_parse_errors(void **state)
{
    static const char host_port[] = "expected \"host:port\", \"[v6]:port\" or \"unix:/path\"";
    static const char bad_port[] = "port must be a number from 0 to 65535";
    static const char bad_host[] = "missing or too long host";
    static const char brackets[] = "an IPv6 address needs brackets: \"[v6]:port\"";
    static const char bad_v6[] = "expected \"[v6 address]:port\"";
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"127.0.0.1", host_port},
        {"localhost", host_port},
        {"", host_port},
        {"127.0.0.1:", bad_port},
        {"127.0.0.1:65536", bad_port},
        {"127.0.0.1:99999999999999999999", bad_port},
        {"127.0.0.1:-1", bad_port},
        {"127.0.0.1:http", bad_port},
        {"127.0.0.1:80x", bad_port},
        {"127.0.0.1:0x50", bad_port},
        {"[::1]:", bad_port},
        {"[::1]:65536", bad_port},
        {":80", bad_host},
        {"[]:80", bad_host},
        {"::1:80", brackets},
        {"fe80::1:443", brackets},
        {"[::1]", bad_v6},
        {"[::1]80", bad_v6},
        {"[::1", bad_v6},
        {"[::1]:80]", bad_port},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        parse_err(cases[i].text, true, cases[i].want);
}

/* "*:port", "[*]:port" and ":port" mean every address; other listen
 * addresses parse as net_addr_parse does, without unix paths. */
static void test_listen_parse(void **state)
{
    static const char *const every[] = {"*:8443", "[*]:8443", ":8443"};
    struct net_addr addrs[2];
    size_t num;
    char err[ERR_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
        assert_int_equal(net_listen_parse(every[i], addrs, &num, err, sizeof(err)), 0);
        assert_int_equal(num, net_have_ipv6() ? 2 : 1);
        assert_string_equal(format(&addrs[0]), "0.0.0.0:8443");
        if (num == 2)
            assert_string_equal(format(&addrs[1]), "[::]:8443");
    }
    assert_int_equal(net_listen_parse("127.0.0.1:0", addrs, &num, err, sizeof(err)), 0);
    assert_int_equal(num, 1);
    assert_string_equal(format(&addrs[0]), "127.0.0.1:0");
    assert_int_equal(net_listen_parse("*:65536", addrs, &num, err, sizeof(err)), -1);
    assert_string_equal(err, "port must be a number from 0 to 65535");
    assert_int_equal(net_listen_parse("*:1234567", addrs, &num, err, sizeof(err)), -1);
    assert_string_equal(err, "port must be a number from 0 to 65535");
    assert_int_equal(net_listen_parse("*:", addrs, &num, err, sizeof(err)), -1);
    assert_string_equal(err, "port must be a number from 0 to 65535");
    /* Listeners are TCP only: the error suggests no unix path. */
    assert_int_equal(net_listen_parse("localhost", addrs, &num, err, sizeof(err)), -1);
    assert_string_equal(err, "expected \"host:port\", \"[v6]:port\" or \"*:port\" (every address)");
    assert_int_equal(net_listen_parse("unix:/tmp/x", addrs, &num, err, sizeof(err)), -1);
    assert_string_equal(err, "unix sockets are not allowed here");
    parse_err("localhost", false, "expected \"host:port\" or \"[v6]:port\"");
}

static void test_parse_host_too_long(void **state)
{
    char text[300];

    memset(text, 'a', 256);
    strcpy(text + 256, ":80");
    parse_err(text, false, "missing or too long host");
}

static void test_parse_unresolvable(void **state)
{
    struct net_addr addr;
    char err[ERR_MAX];
    char want[ERR_MAX];

    /* RFC 6761: .invalid never resolves. The resolver answers NXDOMAIN, or
     * without a network, a temporary failure. */
    assert_int_equal(net_addr_parse("nohost.invalid:80", false, &addr, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "cannot resolve 'nohost.invalid': %s",
             gai_strerror(EAI_NONAME));
    if (strcmp(err, want) != 0) {
        snprintf(want, sizeof(want), "cannot resolve 'nohost.invalid': %s",
                 gai_strerror(EAI_AGAIN));
        assert_string_equal(err, want);
    }
}

static void test_parse_small_error_buffer(void **state)
{
    struct net_addr addr;
    char err[8];

    assert_int_equal(net_addr_parse("127.0.0.1", false, &addr, err, sizeof(err)), -1);
    assert_string_equal(err, "expecte");
}

/* The documented grammar is "host:port" with a port "from 0 to 65535":
 * strtol's leading blanks and signs, which getaddrinfo also accepts, are
 * not part of it. A config value "127.0.0.1: 80" should be refused. */
static void test_port_is_digits_only(void **state)
{
    static const char *const lenient[] = {
        "127.0.0.1: 80", "127.0.0.1:\t80", "127.0.0.1:+80", "127.0.0.1:-0", "[::1]: 443",
    };
    int num_accepted = 0;
    struct net_addr addr;
    char err[ERR_MAX];

    for (size_t i = 0; i < sizeof(lenient) / sizeof(lenient[0]); i++) {
        if (net_addr_parse(lenient[i], false, &addr, err, sizeof(err)) == 0) {
            print_message("accepted \"%s\" as %s\n", lenient[i], format(&addr));
            num_accepted++;
        } else {
            assert_string_equal(err, "port must be a number from 0 to 65535");
        }
    }
    assert_int_equal(num_accepted, 0);
}

/* ---- formatting -------------------------------------------------------- */

static void test_format_round_trips(void **state)
{
    static const char *const texts[] = {
        "127.0.0.1:443",
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "[::1]:8443",
        "[::]:0",
        "[2001:db8::1]:65535",
        "[fe80::1]:80",
        "[::ffff:10.0.0.1]:1",
        "unix:/tmp/x.sock",
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct net_addr addr, again;
        char text[NET_ADDR_TEXT_MAX];

        parse_ok(texts[i], true, &addr);
        assert_string_equal(net_addr_format(&addr, text, sizeof(text)), texts[i]);
        parse_ok(text, true, &again);
        assert_true(net_addr_equal(&addr, &again));
        assert_int_equal(addr.len, again.len);
    }
}

static void test_format_canonicalizes(void **state)
{
    struct net_addr addr;

    parse_ok("[0:0:0:0:0:0:0:1]:443", false, &addr);
    assert_string_equal(format(&addr), "[::1]:443");
    parse_ok("[2001:DB8:0::1]:443", false, &addr);
    assert_string_equal(format(&addr), "[2001:db8::1]:443");
    parse_ok("127.0.0.1:0443", false, &addr);
    assert_string_equal(format(&addr), "127.0.0.1:443");
}

static void test_format_sa(void **state)
{
    char text[NET_ADDR_TEXT_MAX];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(5)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(65535)};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sockaddr other = {.sa_family = AF_APPLETALK};

    inet_pton(AF_INET, "1.2.3.4", &sin.sin_addr);
    assert_string_equal(
        net_addr_format_sa((struct sockaddr *)&sin, sizeof(sin), text, sizeof(text)),
        "1.2.3.4:5");

    inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr);
    assert_string_equal(
        net_addr_format_sa((struct sockaddr *)&sin6, sizeof(sin6), text, sizeof(text)),
        "[2001:db8::42]:65535");

    /* A unix address from accept or getsockname need not end in NUL: its
     * length bounds the path. */
    memcpy(sun.sun_path, "/run/a.sockXXXX", 15);
    assert_string_equal(net_addr_format_sa((struct sockaddr *)&sun,
                                           offsetof(struct sockaddr_un, sun_path) + 11, text,
                                           sizeof(text)),
                        "unix:/run/a.sock");
    /* An unnamed unix socket (a socketpair end) has no path. */
    assert_string_equal(
        net_addr_format_sa((struct sockaddr *)&sun, sizeof(sa_family_t), text, sizeof(text)),
        "unix:");

    assert_string_equal(net_addr_format_sa(&other, sizeof(other), text, sizeof(text)),
                        "unknown");
}

static void test_format_long_v6_and_short_buffer(void **state)
{
    struct net_addr addr;
    char text[NET_ADDR_TEXT_MAX];
    char small[10];

    parse_ok("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", false, &addr);
    net_addr_format(&addr, text, sizeof(text));
    assert_string_equal(text, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

    /* A short buffer is cut, never overrun. */
    memset(small, 'x', sizeof(small));
    assert_ptr_equal(net_addr_format(&addr, small, sizeof(small)), small);
    assert_string_equal(small, "[ffff:fff");
}

/* ---- comparison -------------------------------------------------------- */

static void test_equal(void **state)
{
    struct net_addr v4, v4_same, v4_port, v4_other, v6, v6_other, v6_mapped, unix_a,
        unix_a_same, unix_b;

    parse_ok("127.0.0.1:443", true, &v4);
    parse_ok("127.0.0.1:443", true, &v4_same);
    parse_ok("127.0.0.1:444", true, &v4_port);
    parse_ok("127.0.0.2:443", true, &v4_other);
    parse_ok("[::1]:443", true, &v6);
    parse_ok("[::2]:443", true, &v6_other);
    parse_ok("[::ffff:127.0.0.1]:443", true, &v6_mapped);
    parse_ok("unix:/tmp/a.sock", true, &unix_a);
    parse_ok("unix:/tmp/a.sock", true, &unix_a_same);
    parse_ok("unix:/tmp/b.sock", true, &unix_b);

    assert_true(net_addr_equal(&v4, &v4));
    assert_true(net_addr_equal(&v4, &v4_same));
    assert_false(net_addr_equal(&v4, &v4_port));
    assert_false(net_addr_equal(&v4, &v4_other));
    assert_false(net_addr_equal(&v4, &v6));
    assert_false(net_addr_equal(&v6, &v4));
    assert_false(net_addr_equal(&v4, &v6_mapped));
    assert_false(net_addr_equal(&v6, &v6_other));
    assert_true(net_addr_equal(&unix_a, &unix_a_same));
    assert_false(net_addr_equal(&unix_a, &unix_b));
    assert_false(net_addr_equal(&unix_a, &v4));
    assert_false(net_addr_equal(&v4, &unix_a));

    struct net_addr v6_port = v6;
    ((struct sockaddr_in6 *)&v6_port.ss)->sin6_port = htons(80);
    assert_false(net_addr_equal(&v6, &v6_port));
}

/* ---- sockets ----------------------------------------------------------- */

static bool fd_has_flag(int fd, int get_cmd, int flag)
{
    int flags = fcntl(fd, get_cmd);
    assert_true(flags >= 0);
    return (flags & flag) != 0;
}

static int int_option(int fd, int level, int name)
{
    int value = -1;
    socklen_t len = sizeof(value);
    assert_int_equal(getsockopt(fd, level, name, &value, &len), 0);
    return value;
}

/* check_listening fails unless |fd| listens, non-blocking and
 * close-on-exec, on the address |addr| now holds. */
static void check_listening(int fd, const struct net_addr *addr)
{
    struct sockaddr_storage bound;
    socklen_t len = sizeof(bound);
    char want[NET_ADDR_TEXT_MAX], got[NET_ADDR_TEXT_MAX];

    assert_true(fd >= 0);
    assert_true(fd_has_flag(fd, F_GETFL, O_NONBLOCK));
    assert_true(fd_has_flag(fd, F_GETFD, FD_CLOEXEC));
    assert_int_equal(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&bound, &len), 0);
    assert_string_equal(net_addr_format(addr, want, sizeof(want)),
                        net_addr_format_sa((struct sockaddr *)&bound, len, got, sizeof(got)));
}

/* wait_fd polls |fd| for |events| for up to five seconds. */
static void wait_fd(int fd, short events)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_true((pfd.revents & events) != 0);
}

static void test_listen_ipv4_ephemeral(void **state)
{
    struct net_addr addr;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr.ss;

    parse_ok("127.0.0.1:0", false, &addr);
    int fd = net_listen(&addr, 16, false);
    if (fd < 0)
        fail_msg("net_listen(127.0.0.1:0): %s", strerror(errno));
    check_listening(fd, &addr);
    assert_int_equal(addr.ss.ss_family, AF_INET);
    assert_int_equal(addr.len, sizeof(struct sockaddr_in));
    assert_int_not_equal(port_of(&addr), 0);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(int_option(fd, SOL_SOCKET, SO_REUSEADDR), 1);
    assert_int_equal(int_option(fd, SOL_SOCKET, SO_REUSEPORT), 0);
    close(fd);
}

static void test_listen_ipv6_ephemeral(void **state)
{
    struct net_addr addr;

    parse_ok("[::1]:0", false, &addr);
    int fd = net_listen(&addr, 16, false);
    if (fd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
        print_message("no IPv6 loopback here: %s\n", strerror(errno));
        skip();
    }
    if (fd < 0)
        fail_msg("net_listen([::1]:0): %s", strerror(errno));
    check_listening(fd, &addr);
    assert_int_equal(addr.ss.ss_family, AF_INET6);
    assert_int_not_equal(port_of(&addr), 0);
    assert_true(IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&addr.ss)->sin6_addr));
    assert_int_equal(int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    close(fd);
}

static void test_listen_port_in_use(void **state)
{
    struct net_addr addr;

    parse_ok("127.0.0.1:0", false, &addr);
    int fd = net_listen(&addr, 16, false);
    assert_true(fd >= 0);

    struct net_addr same = addr;
    errno = 0;
    assert_int_equal(net_listen(&same, 16, false), -1);
    assert_int_equal(errno, EADDRINUSE);
    /* A failed listen leaves the address as it was. */
    assert_true(net_addr_equal(&same, &addr));
    close(fd);
}

/* With reuseport, each worker binds its own socket to the same address;
 * a socket without it still cannot join them. */
static void test_listen_reuseport(void **state)
{
    struct net_addr first, second, third;

    parse_ok("127.0.0.1:0", false, &first);
    int fd1 = net_listen(&first, 16, true);
    assert_true(fd1 >= 0);
    assert_int_equal(int_option(fd1, SOL_SOCKET, SO_REUSEPORT), 1);

    second = first;
    int fd2 = net_listen(&second, 16, true);
    if (fd2 < 0)
        fail_msg("second reuseport listener on %s: %s", format(&first), strerror(errno));
    check_listening(fd2, &second);
    assert_true(net_addr_equal(&first, &second));

    third = first;
    errno = 0;
    assert_int_equal(net_listen(&third, 16, false), -1);
    assert_int_equal(errno, EADDRINUSE);

    close(fd2);
    close(fd1);
}

static void test_connect_and_accept(void **state)
{
    struct net_addr addr;
    struct sockaddr_storage peer, local;
    socklen_t peer_len = sizeof(peer), local_len = sizeof(local);
    char peer_text[NET_ADDR_TEXT_MAX], local_text[NET_ADDR_TEXT_MAX];

    parse_ok("127.0.0.1:0", false, &addr);
    int listen_fd = net_listen(&addr, 16, false);
    assert_true(listen_fd >= 0);

    errno = 12345;
    int fd = net_connect_start(&addr);
    if (fd < 0)
        fail_msg("net_connect_start(%s): %s", format(&addr), strerror(errno));
    assert_true(errno == 0 || errno == EINPROGRESS);
    assert_true(fd_has_flag(fd, F_GETFL, O_NONBLOCK));
    assert_true(fd_has_flag(fd, F_GETFD, FD_CLOEXEC));
    assert_int_equal(int_option(fd, IPPROTO_TCP, TCP_NODELAY), 1);

    wait_fd(fd, POLLOUT);
    assert_int_equal(int_option(fd, SOL_SOCKET, SO_ERROR), 0);
    wait_fd(listen_fd, POLLIN);
    int accepted = accept(listen_fd, (struct sockaddr *)&peer, &peer_len);
    assert_true(accepted >= 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&local, &local_len), 0);
    assert_string_equal(
        net_addr_format_sa((struct sockaddr *)&peer, peer_len, peer_text, sizeof(peer_text)),
        net_addr_format_sa((struct sockaddr *)&local, local_len, local_text,
                           sizeof(local_text)));

    /* And bytes flow. */
    assert_int_equal(write(fd, "ping", 4), 4);
    char buf[8];
    wait_fd(accepted, POLLIN);
    assert_int_equal(read(accepted, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);

    close(accepted);
    close(fd);
    close(listen_fd);
}

static void test_connect_refused(void **state)
{
    struct net_addr addr;

    /* Take a free port, then close it so nothing listens there. */
    parse_ok("127.0.0.1:0", false, &addr);
    int listen_fd = net_listen(&addr, 1, false);
    assert_true(listen_fd >= 0);
    close(listen_fd);

    int fd = net_connect_start(&addr);
    if (fd < 0) {
        assert_int_equal(errno, ECONNREFUSED);
        return;
    }
    assert_true(errno == EINPROGRESS);
    wait_fd(fd, POLLOUT);
    assert_int_equal(int_option(fd, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    close(fd);
}

static void test_unix_listen_and_connect(void **state)
{
    const char *dir = getenv("TMPDIR");
    char tmpdir[200], text[256];
    struct net_addr addr;

    snprintf(tmpdir, sizeof(tmpdir), "%s/net_test.XXXXXX", dir && *dir ? dir : "/tmp");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(text, sizeof(text), "unix:%s/s", tmpdir);
    parse_ok(text, true, &addr);

    int listen_fd = net_listen(&addr, 4, false);
    if (listen_fd < 0)
        fail_msg("net_listen(%s): %s", text, strerror(errno));
    assert_true(fd_has_flag(listen_fd, F_GETFL, O_NONBLOCK));
    assert_string_equal(format(&addr), text);

    /* The path exists now: a second listener is refused. */
    struct net_addr again = addr;
    errno = 0;
    assert_int_equal(net_listen(&again, 4, false), -1);
    assert_int_equal(errno, EADDRINUSE);

    int fd = net_connect_start(&addr);
    assert_true(fd >= 0);
    assert_true(errno == 0 || errno == EINPROGRESS);
    wait_fd(listen_fd, POLLIN);
    int accepted = accept(listen_fd, NULL, NULL);
    assert_true(accepted >= 0);
    /* net_set_nodelay is harmless on a unix socket. */
    net_set_nodelay(accepted);
    assert_int_equal(write(fd, "x", 1), 1);
    char ch = 0;
    wait_fd(accepted, POLLIN);
    assert_int_equal(read(accepted, &ch, 1), 1);
    assert_int_equal(ch, 'x');

    close(accepted);
    close(fd);
    close(listen_fd);
    snprintf(text, sizeof(text), "%s/s", tmpdir);
    unlink(text);
    rmdir(tmpdir);
}

static void test_set_nodelay(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(int_option(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    net_set_nodelay(fd);
    assert_int_equal(int_option(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4),
        cmocka_unit_test(test_parse_ipv6),
        cmocka_unit_test(test_parse_resolves_localhost),
        cmocka_unit_test(test_parse_port_bounds),
        cmocka_unit_test(test_parse_unix),
        cmocka_unit_test(test_parse_unix_path_length),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test(test_parse_host_too_long),
        cmocka_unit_test(test_parse_unresolvable),
        cmocka_unit_test(test_parse_small_error_buffer),
        cmocka_unit_test(test_port_is_digits_only),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_format_canonicalizes),
        cmocka_unit_test(test_format_sa),
        cmocka_unit_test(test_format_long_v6_and_short_buffer),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_listen_ipv4_ephemeral),
        cmocka_unit_test(test_listen_ipv6_ephemeral),
        cmocka_unit_test(test_listen_port_in_use),
        cmocka_unit_test(test_listen_reuseport),
        cmocka_unit_test(test_connect_and_accept),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_unix_listen_and_connect),
        cmocka_unit_test(test_set_nodelay),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
