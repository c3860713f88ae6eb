/* proxy_header: the PROXY protocol on a client connection, both ways.
 *
 * Toward the backend (backend.proxy_protocol): the header that speaks for
 * the client connection, built from its addresses and its TLS session
 * (ALPN, SNI, the SSL TLV) and encoded by proxy_proto.h. tcp mode writes it
 * before the first client byte; http mode at the start of each backend
 * connection, which then belongs to that client connection alone
 * (cfg_backend_per_client).
 *
 * From a load balancer (listeners[].accept_proxy): the header read from
 * the client socket before the TLS handshake, without taking a byte of the
 * handshake after it: the socket is peeked, and only bytes known to be part
 * of the header are read. Its source address replaces the connection's
 * peer address (conn->client_addr), so every later user (logs,
 * X-Forwarded-For, the failure report, the outgoing PROXY header) sees the
 * real client; its destination (conn->proxied_dst) is the outgoing header's
 * destination, so both ends keep one family. A LOCAL header keeps the
 * peer's address. With backend.source: client, a header whose client is of
 * a family no server of the listener is ends the connection
 * (backend_family_unserved). The bytes read so
 * far are kept in conn->proxy_buf, owned by the conn and freed here once
 * the header is whole, or by conn_close. */
#ifndef TLSTERM_PROXY_HEADER_H
#define TLSTERM_PROXY_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "reason.h"

struct conn;

/* PROXY_HEADER_OUT_MAX bounds the header a backend gets: addresses, ALPN
 * and SNI (255 bytes each at most), the unique id and the SSL TLV. */
#define PROXY_HEADER_OUT_MAX 1536

/* proxy_header_for_backend writes the header |c|'s backend gets (its
 * listener's backend.proxy_protocol) into |out| of |out_len| bytes and
 * returns its length, or 0 when the listener sends none (or it does not
 * fit, which PROXY_HEADER_OUT_MAX rules out). */
size_t proxy_header_for_backend(const struct conn *c, uint8_t *out, size_t out_len);

/* proxy_header_trusted says whether |c|'s peer is in its listener's
 * accept_proxy.from. */
bool proxy_header_trusted(const struct conn *c);

enum proxy_header_step {
    PROXY_HEADER_WAIT,     /* more bytes are needed: wait for readability */
    PROXY_HEADER_DONE,     /* the header is read; the handshake may start */
    PROXY_HEADER_REJECTED, /* see |*out_reject|: the conn is to be refused */
    PROXY_HEADER_CLOSED,   /* the client closed or reset the connection first, or (logged:
                              backend_family_unserved) no server can take its client */
};

/* struct proxy_header_failure says why proxy_header_read did not finish. */
struct proxy_header_failure {
    enum metrics_proxy_reject reject; /* PROXY_HEADER_REJECTED */
    const char *detail;               /* ... what was wrong (static text), or NULL */
    enum end_reason reason;           /* PROXY_HEADER_CLOSED: client_closed, tcp_reset or
                                         backend_unavailable */
};

/* proxy_header_read reads what the socket of |c| has of the header; when
 * it does not return PROXY_HEADER_WAIT or _DONE, |*out_failure| says why. */
enum proxy_header_step proxy_header_read(struct conn *c,
                                         struct proxy_header_failure *out_failure);

/* proxy_header_reject counts |c|'s refusal and writes its
 * proxy_header_rejected line (rate-limited per worker): the reason, what
 * was wrong and the first bytes received, escaped. The caller closes |c|. */
void proxy_header_reject(struct conn *c, const struct proxy_header_failure *failure);

#endif
