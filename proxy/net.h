/* net: socket addresses (parse, format, compare) and socket options.
 *
 * Addresses appear in the configuration as "host:port", "[v6]:port" or
 * "unix:/path". They are resolved once, when the configuration loads; nothing
 * here resolves names on the event loop. */
#ifndef TLSTERM_NET_H
#define TLSTERM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* NET_ADDR_TEXT_MAX bytes hold any formatted address, "[v6]:port" or
 * "unix:/path", with its terminating NUL. */
#define NET_ADDR_TEXT_MAX 128

/* struct net_addr is a resolved socket address. It owns no memory. */
struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* net_addr_parse parses |text| ("host:port", "[v6]:port" or "unix:/path") into
 * |out_addr|. Host names are resolved with getaddrinfo (first result). When
 * |allow_unix| is false a "unix:" address is refused. It returns 0 on success,
 * or -1 and writes a short reason (no trailing period) into |err| of |err_len|
 * bytes. */
int net_addr_parse(const char *text, bool allow_unix, struct net_addr *out_addr,
                   char *err, size_t err_len);

/* net_listen_parse parses a listen address: "host:port" or "[v6]:port" as
 * net_addr_parse does (no unix path: listeners are TCP), or "*:port",
 * "[*]:port" or ":port", which mean every address: 0.0.0.0:port and
 * [::]:port (IPv6 listen sockets are IPV6_V6ONLY, so the two coexist), or
 * 0.0.0.0:port alone when the host has no IPv6 (net_have_ipv6). It writes
 * the addresses into |out_addrs| and their number, 1 or 2, into |*out_num|,
 * and returns 0, or -1 with a short reason in |err|. */
int net_listen_parse(const char *text, struct net_addr out_addrs[2], size_t *out_num,
                     char *err, size_t err_len);

/* net_have_ipv6 says whether this host can listen on IPv6: false when
 * socket(AF_INET6) fails with EAFNOSUPPORT (IPv6 is off in the kernel) or
 * binding [::] fails with EADDRNOTAVAIL. */
bool net_have_ipv6(void);

/* net_addr_parse_numeric parses a "host:port" whose host is a numeric IPv4
 * or IPv6 address (no name lookup) into |out_addr|; 0, or -1 when it is not
 * one (a host name, a unix path, a malformed address). */
int net_addr_parse_numeric(const char *text, struct net_addr *out_addr);

/* net_addr_split splits "host:port" into new strings |*out_host| and
 * |*out_port|, owned by the caller (free). It returns 0, or -1 with a short
 * reason in |err|. */
int net_addr_split(const char *text, char **out_host, char **out_port, char *err,
                   size_t err_len);

/* net_resolve_all resolves |host| and |port| with getaddrinfo (which may
 * block) into a new array |*out_addrs| of |*out_num| distinct addresses, at
 * most |max|, in getaddrinfo's order; the caller frees the array. It returns
 * 0, or -1 with a short reason in |err|. */
int net_resolve_all(const char *host, const char *port, size_t max,
                    struct net_addr **out_addrs, size_t *out_num, char *err, size_t err_len);

/* net_addr_format writes |addr| as "1.2.3.4:5", "[::1]:5" or "unix:/p" into
 * |out| of |out_len| bytes (NET_ADDR_TEXT_MAX is always enough) and returns
 * |out|. */
char *net_addr_format(const struct net_addr *addr, char *out, size_t out_len);

/* net_addr_format_sa is net_addr_format for a raw sockaddr. */
char *net_addr_format_sa(const struct sockaddr *sa, socklen_t len, char *out,
                         size_t out_len);

/* net_addr_equal returns true if |a| and |b| name the same family, address
 * and port (or the same unix path). */
bool net_addr_equal(const struct net_addr *a, const struct net_addr *b);

/* net_addr_overlaps returns true if |a| and |b| could not both be bound:
 * equal, or the same family and port where one is the wildcard address
 * (0.0.0.0 or [::]; IPv6 sockets are IPV6_V6ONLY, so families never
 * overlap). */
bool net_addr_overlaps(const struct net_addr *a, const struct net_addr *b);

/* net_listen opens a non-blocking, close-on-exec listening socket bound to
 * |addr| (SO_REUSEADDR; IPV6_V6ONLY for IPv6 so "[::]" and "0.0.0.0" can be
 * listened on together; SO_REUSEPORT if |reuseport|, so that each worker can
 * have its own socket on the same address). It returns the descriptor, or -1
 * with errno set. On success |addr| is updated with the bound address, so
 * port 0 becomes the port the kernel chose. */
int net_listen(struct net_addr *addr, int backlog, bool reuseport);

/* net_probe_free checks that |addr| can be bound by a socket without
 * SO_REUSEPORT, which fails when any other socket (another tlsterm, say)
 * listens there, even one with SO_REUSEPORT: without this check a second
 * instance would silently take half of the first one's connections. Port 0
 * is resolved into |addr|. It returns 0, or -1 with errno set. */
int net_probe_free(struct net_addr *addr);

/* net_connect_start creates a non-blocking socket and starts connecting it to
 * |addr| (TCP_NODELAY for TCP). It returns the descriptor, with errno EINPROGRESS
 * or 0 depending on whether the connect completed at once, or -1 with errno
 * set on failure. */
int net_connect_start(const struct net_addr *addr);

/* net_set_nodelay enables TCP_NODELAY on |fd|; harmless on non-TCP sockets. */
void net_set_nodelay(int fd);

#endif
