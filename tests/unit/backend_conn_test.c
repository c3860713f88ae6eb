/* backend_conn_test: the server choice by family and the connection from
 * the client's address (backend.source: client) on real loopback sockets:
 * what the backend sees, and each way opening one fails (another family, a
 * unix server, no CAP_NET_ADMIN). The three-namespace routing is tested in
 * tests/integration/test_transparent.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/capability.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "backend_conn.h"
#include "net.h"

static struct net_addr parse(const char *text)
{
    struct net_addr addr;
    char err[256];

    if (net_addr_parse(text, true, &addr, err, sizeof(err)) != 0)
        fail_msg("net_addr_parse(\"%s\"): %s", text, err);
    return addr;
}

static void on_event(struct backend_conn *conn, short what, void *arg) {}

static void test_pick_server_of_family(void **state)
{
    const struct net_addr servers[] = {parse("127.0.0.1:1"), parse("[::1]:2"),
                                       parse("127.0.0.1:3")};
    uint32_t cursor = 0;

    /* IPv6 clients always get the one IPv6 server; IPv4 clients take turns
     * on the other two; AF_UNSPEC is plain round robin. */
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(backend_pick_server_of(servers, 3, &cursor, AF_INET6), &servers[1]);
    const struct net_addr *first = backend_pick_server_of(servers, 3, &cursor, AF_INET);
    const struct net_addr *second = backend_pick_server_of(servers, 3, &cursor, AF_INET);
    assert_true(first != second);
    assert_true(first == &servers[0] || first == &servers[2]);
    assert_true(second == &servers[0] || second == &servers[2]);
    cursor = 0;
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(backend_pick_server_of(servers, 3, &cursor, AF_UNSPEC),
                         &servers[i % 3]);
    /* None of that family: the next one all the same (open then fails). */
    const struct net_addr v4_only[] = {parse("127.0.0.1:1")};
    cursor = 0;
    assert_ptr_equal(backend_pick_server_of(v4_only, 1, &cursor, AF_INET6), &v4_only[0]);
}

static void test_other_family_fails(void **state)
{
    struct event_base *base = event_base_new();
    struct net_addr v6_server = parse("[::1]:9"), unix_server = parse("unix:/nonexistent");
    struct sockaddr_in source = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000009)};

    errno = 0;
    assert_null(
        backend_conn_open_from(base, &v6_server, (struct sockaddr *)&source, on_event, NULL));
    assert_int_equal(errno, EAFNOSUPPORT);
    errno = 0;
    assert_null(
        backend_conn_open_from(base, &unix_server, (struct sockaddr *)&source, on_event, NULL));
    assert_int_equal(errno, EAFNOSUPPORT);
    event_base_free(base);
}

/* listen_loopback returns a listening socket on 127.0.0.1 and its address. */
static int listen_loopback(struct net_addr *out_addr)
{
    *out_addr = parse("127.0.0.1:0");
    int fd = net_listen(out_addr, 8, false);
    assert_true(fd >= 0);
    return fd;
}

static bool have_net_admin(void)
{
    cap_t caps = cap_get_proc();
    cap_flag_value_t value = CAP_CLEAR;
    cap_get_flag(caps, CAP_NET_ADMIN, CAP_EFFECTIVE, &value);
    cap_free(caps);
    return value == CAP_SET;
}

static void test_connects_from_source(void **state)
{
    if (!have_net_admin())
        skip();
    struct event_base *base = event_base_new();
    struct net_addr server;
    int listen_fd = listen_loopback(&server);
    /* The port is ignored: the kernel chooses one at connect time. */
    struct sockaddr_in source = {
        .sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(0x7f000009)};

    struct backend_conn *conn =
        backend_conn_open_from(base, &server, (struct sockaddr *)&source, on_event, NULL);
    assert_non_null(conn);
    struct pollfd ready = {.fd = listen_fd, .events = POLLIN};
    assert_int_equal(poll(&ready, 1, 5000), 1);
    struct sockaddr_in peer;
    socklen_t peer_len = sizeof(peer);
    int accepted = accept(listen_fd, (struct sockaddr *)&peer, &peer_len);
    assert_true(accepted >= 0);
    assert_int_equal(ntohl(peer.sin_addr.s_addr), 0x7f000009);
    assert_int_not_equal(ntohs(peer.sin_port), 1);
    close(accepted);
    backend_conn_free(conn, false);
    close(listen_fd);
    event_base_free(base);
}

/* set_effective puts |cap| in or out of the effective set (it stays
 * permitted, so it can be had back). */
static void set_effective(cap_value_t cap, cap_flag_value_t value)
{
    cap_t caps = cap_get_proc();
    assert_int_equal(cap_set_flag(caps, CAP_EFFECTIVE, 1, &cap, value), 0);
    assert_int_equal(cap_set_proc(caps), 0);
    cap_free(caps);
}

static void test_no_capability_fails(void **state)
{
    if (!have_net_admin())
        skip();
    struct event_base *base = event_base_new();
    struct net_addr server;
    int listen_fd = listen_loopback(&server);
    struct sockaddr_in source = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000009)};

    /* IP_TRANSPARENT takes CAP_NET_RAW as well. */
    set_effective(CAP_NET_ADMIN, CAP_CLEAR);
    set_effective(CAP_NET_RAW, CAP_CLEAR);
    errno = 0;
    struct backend_conn *conn =
        backend_conn_open_from(base, &server, (struct sockaddr *)&source, on_event, NULL);
    int err = errno;
    set_effective(CAP_NET_ADMIN, CAP_SET);
    set_effective(CAP_NET_RAW, CAP_SET);
    assert_null(conn);
    assert_int_equal(err, EPERM);
    close(listen_fd);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_server_of_family),
        cmocka_unit_test(test_other_family_fails),
        cmocka_unit_test(test_connects_from_source),
        cmocka_unit_test(test_no_capability_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
