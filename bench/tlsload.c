/* tlsload: the TLS load client of bench/run, for what wrk and h2load cannot
 * do. One thread, non-blocking sockets, epoll, BoringSSL.
 *
 *   tlsload handshake -a HOST:PORT [-c CONC] [-d SECS] [-v 1.2|1.3] [-C SUITES] [-g GROUPS] [-r]
 *       Full-handshake flood: CONC connections at a time, for SECS seconds,
 *       each one connect, handshake (no session offered, so never resumed),
 *       with -r one "GET PATH" whose response is read, then close_notify,
 *       wait for the server to close (at most 2 s), close.
 *   tlsload resume -a HOST:PORT [-c CONC] [-d SECS] [-v ...] [-g ...] [-r]
 *       Resumption flood: one connection gets a session (it makes a request,
 *       as a BoringSSL server sends its TLS 1.3 tickets with its first
 *       write), then every connection offers that session. Each handshake is
 *       checked with SSL_session_reused and the fraction resumed is reported.
 *   tlsload hold -a HOST:PORT -n N [-c CONC] [-d SECS] [-s NUM_SOURCES] [-p PATH] [-A PROTOS]
 *       Opens N connections (CONC at a time), each: handshake, one
 *       "GET PATH HTTP/1.1" whose whole response is read, then the SSL is
 *       freed and the socket is kept open and silent: N idle, established
 *       connections. When the handshake negotiated h2 (-A h2), the request
 *       is HTTP/2 instead: the connection preface, an empty SETTINGS, one
 *       GET on stream 1; the connection is idle once that stream ended, the
 *       server's SETTINGS were acknowledged and its ACK of ours arrived.
 *       Prints "ready OK FAILED ALPN" on stdout once all N are done (ALPN:
 *       the first connection's protocol, "-" for none), then waits until
 *       stdin closes or SECS have passed since the start, and exits
 *       (closing them all). With -s S > 1, connection i binds the source
 *       address 127.0.0.(1 + i % S): one source address has only ~28k
 *       ephemeral ports.
 *
 * -A PROTOS offers ALPN, a comma-separated list such as h2,http/1.1, in
 * every mode; the protocol the first handshake negotiated is reported.
 *
 * The server's certificate is never verified: verification would cost the
 * client more CPU than the server spends on its handshake, and the client
 * shares its CPU with the backend. Instead the first completed handshake's
 * version, cipher, group and signature algorithm are reported, for bench/run
 * to check. Every mode is bounded: -d (default 10 s) caps the run, and each
 * connection must finish within 10 s or counts as a timeout.
 *
 * The result is one JSON object on stdout:
 *   {"mode":..., "completed":N, "errors":N, "timeouts":N, "seconds":S,
 *    "window":W, "in_window":N, "rate":in_window/W, "resumed":N,
 *    "responses":N, "tickets":N, "version":..., "cipher":..., "group":...,
 *    "sigalg":..., "alpn":..., "first_error":...}
 * completed counts every handshake, in_window those done within the -d
 * duration W (the rest finish during the drain that follows, at most 1 s);
 * tickets counts the session tickets received (in the floods only those
 * that arrive before the server's close is read).
 *
 * Exit status: 0 when the run went through (even with failed connections,
 * which are counted), 1 when it could not run, 2 on a usage error. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* A connection that has not finished within this long counts as a timeout. */
#define CONN_TIMEOUT_MS 10000
/* After close_notify, how long to wait for the server to close. */
#define SHUTDOWN_WAIT_MS 2000
/* After the flood's duration, how long in-flight connections may finish. */
#define DRAIN_MS 1000
/* Response bytes buffered while looking for the end of the headers. */
#define RESPONSE_BUF_LEN 4096

enum load_mode { MODE_HANDSHAKE, MODE_RESUME, MODE_HOLD };

enum slot_state {
    SLOT_FREE,
    SLOT_CONNECTING,
    SLOT_HANDSHAKE,
    SLOT_REQUEST,  /* hold: writing the request */
    SLOT_RESPONSE, /* hold: reading the response */
    SLOT_H2,       /* hold, h2: reading frames until the connection is idle */
    SLOT_SHUTDOWN, /* flood: close_notify sent, reading until the server closes */
};

/* struct slot is one connection in progress. At most CONC exist; a finished
 * one is reused for the next connection. */
struct slot {
    enum slot_state state;
    int fd;
    SSL *ssl;
    uint64_t started_ms;
    uint64_t shutdown_ms;
    uint32_t index; /* hold: the connection's number, which picks its source */
    uint32_t request_sent;
    uint32_t response_len;
    char *response; /* hold: RESPONSE_BUF_LEN bytes while reading the response */
    uint32_t h2_skip;      /* h2: payload bytes of the current frame still to drop */
    bool h2_stream_ended;  /* h2: stream 1 ended (END_STREAM seen) */
    bool h2_settings_acked; /* h2: the server acknowledged our SETTINGS */
};

struct options {
    enum load_mode mode;
    struct sockaddr_in target;
    const char *target_text;
    uint32_t concurrency;
    double duration_s;
    uint32_t num_hold;
    uint32_t num_sources;
    const char *version;
    const char *suites;
    const char *groups;
    const char *path;
    bool send_request;
    uint8_t alpn[64]; /* -A in wire format */
    uint32_t alpn_len;
};

struct run_stats {
    uint64_t completed;
    uint64_t errors;
    uint64_t timeouts;
    uint64_t resumed;
    uint64_t in_window; /* handshakes done before the duration ended */
    uint64_t responses;
    uint64_t tickets;
    bool first_seen;
    char version[32], cipher[64], group[32], sigalg[64], alpn[32];
    char first_error[160];
};

static struct options opts;
static struct run_stats stats;
static SSL_CTX *client_ctx;
static SSL_SESSION *resume_session; /* resume: the session every connection offers */
static int epoll_fd = -1;
static char request_text[512];
static size_t request_len;
static uint8_t h2_request[256]; /* hold, h2: preface, SETTINGS, HEADERS */
static size_t h2_request_len;
static volatile sig_atomic_t stop_requested;
static uint64_t window_end_ms = UINT64_MAX; /* the end of the measured duration */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(void)
{
    fputs("usage: tlsload handshake|resume|hold -a HOST:PORT [-c CONC] [-d SECS]\n"
          "         [-v 1.2|1.3] [-C TLS1.2-SUITES] [-g GROUPS] [-n N] [-s NUM_SOURCES]\n"
          "         [-p PATH] [-r] [-A PROTOS]\n",
          stderr);
    exit(2);
}

/* record_error keeps the first failure's text for the report. */
static void record_error(const char *what, const char *detail)
{
    stats.errors++;
    if (stats.first_error[0] == '\0')
        snprintf(stats.first_error, sizeof(stats.first_error), "%s: %s", what, detail);
}

static void record_ssl_error(const char *what, SSL *ssl, int ret)
{
    char detail[120];
    int err = SSL_get_error(ssl, ret);
    uint32_t packed = ERR_peek_error();
    if (packed != 0)
        ERR_error_string_n(packed, detail, sizeof(detail));
    else if (err == SSL_ERROR_SYSCALL)
        snprintf(detail, sizeof(detail), "%s", errno ? strerror(errno) : "unexpected EOF");
    else
        snprintf(detail, sizeof(detail), "SSL_get_error %d", err);
    ERR_clear_error();
    record_error(what, detail);
}

/* note_first_handshake records what the first handshake negotiated. */
static void note_first_handshake(SSL *ssl)
{
    if (stats.first_seen)
        return;
    stats.first_seen = true;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    const char *group = SSL_get_curve_name(SSL_get_curve_id(ssl));
    const char *sigalg = SSL_get_signature_algorithm_name(SSL_get_peer_signature_algorithm(ssl), 0);
    snprintf(stats.version, sizeof(stats.version), "%s", SSL_get_version(ssl));
    snprintf(stats.cipher, sizeof(stats.cipher), "%s",
             cipher ? SSL_CIPHER_standard_name(cipher) : "none");
    snprintf(stats.group, sizeof(stats.group), "%s", group ? group : "none");
    snprintf(stats.sigalg, sizeof(stats.sigalg), "%s", sigalg ? sigalg : "none");
    const uint8_t *alpn;
    unsigned alpn_len;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len >= sizeof(stats.alpn))
        alpn_len = sizeof(stats.alpn) - 1;
    memcpy(stats.alpn, alpn, alpn_len);
    stats.alpn[alpn_len] = '\0';
}

/* negotiated_h2 says whether |ssl|'s handshake selected ALPN h2. */
static bool negotiated_h2(SSL *ssl)
{
    const uint8_t *alpn;
    unsigned alpn_len;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    return alpn_len == 2 && memcmp(alpn, "h2", 2) == 0;
}

/* build_h2_request fills h2_request: the client connection preface, an
 * empty SETTINGS frame and a HEADERS frame opening stream 1 with
 * END_STREAM and END_HEADERS, its HPACK block GET https PATH with
 * :authority localhost, every field a static-table index or a literal
 * without indexing, so that no dynamic table is involved. */
static void build_h2_request(void)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    uint8_t block[160];
    size_t block_len = 0;
    size_t path_len = strlen(opts.path);
    if (path_len > 100)
        path_len = 100;
    block[block_len++] = 0x82; /* :method GET */
    block[block_len++] = 0x87; /* :scheme https */
    block[block_len++] = 0x04; /* :path, literal without indexing */
    block[block_len++] = (uint8_t)path_len;
    memcpy(block + block_len, opts.path, path_len);
    block_len += path_len;
    block[block_len++] = 0x01; /* :authority, literal without indexing */
    block[block_len++] = 9;
    memcpy(block + block_len, "localhost", 9);
    block_len += 9;
    uint8_t *p = h2_request;
    memcpy(p, preface, sizeof(preface) - 1);
    p += sizeof(preface) - 1;
    memcpy(p, settings, sizeof(settings));
    p += sizeof(settings);
    uint8_t headers[9] = {0, 0, (uint8_t)block_len, 1, 0x05, 0, 0, 0, 1};
    memcpy(p, headers, sizeof(headers));
    p += sizeof(headers);
    memcpy(p, block, block_len);
    p += block_len;
    h2_request_len = (size_t)(p - h2_request);
}

/* h2_consume reads the frame headers in s->response and drops what it
 * read, payloads unread (none is needed). It returns 1 once the connection
 * is idle (stream 1 ended, our SETTINGS acknowledged), 0 when more bytes
 * are needed, and -1 on GOAWAY, RST_STREAM, or a write failure. A SETTINGS
 * frame from the server is acknowledged at once. */
static int h2_consume(struct slot *s)
{
    static const uint8_t settings_ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
    uint32_t pos = 0;
    for (;;) {
        uint32_t avail = s->response_len - pos;
        if (s->h2_skip > 0) {
            if (avail == 0)
                break;
            uint32_t drop = s->h2_skip < avail ? s->h2_skip : avail;
            s->h2_skip -= drop;
            pos += drop;
            continue;
        }
        if (avail < 9)
            break;
        const uint8_t *h = (const uint8_t *)s->response + pos;
        uint32_t length = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        uint8_t type = h[3], flags = h[4];
        uint32_t stream = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
                          0x7fffffffu;
        pos += 9;
        s->h2_skip = length;
        if (type == 7 || (type == 3 && stream == 1)) {
            record_error("h2", type == 7 ? "GOAWAY from the server" : "RST_STREAM on stream 1");
            return -1;
        }
        if (type == 4 && (flags & 1))
            s->h2_settings_acked = true;
        else if (type == 4) {
            ERR_clear_error();
            if (SSL_write(s->ssl, settings_ack, sizeof(settings_ack)) != (int)sizeof(settings_ack)) {
                record_error("h2", "could not write the SETTINGS ACK at once");
                return -1;
            }
        }
        if (stream == 1 && (type == 0 || type == 1) && (flags & 1))
            s->h2_stream_ended = true;
    }
    memmove(s->response, s->response + pos, s->response_len - pos);
    s->response_len -= pos;
    return s->h2_stream_ended && s->h2_settings_acked && s->h2_skip == 0;
}

/* keep_first_session is the new-session callback of resume mode: it keeps
 * the first session the server issues and ignores the rest. It returns 1
 * when it took ownership of |session|. */
static int keep_first_session(SSL *ssl, SSL_SESSION *session)
{
    (void)ssl;
    stats.tickets++;
    if (opts.mode != MODE_RESUME || resume_session != NULL)
        return 0;
    resume_session = session;
    return 1;
}

static int build_client_ctx(void)
{
    client_ctx = SSL_CTX_new(TLS_method());
    if (client_ctx == NULL)
        goto fail;
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    uint16_t min_version = TLS1_2_VERSION, max_version = TLS1_3_VERSION;
    if (opts.version != NULL && strcmp(opts.version, "1.3") == 0)
        min_version = TLS1_3_VERSION;
    else if (opts.version != NULL && strcmp(opts.version, "1.2") == 0)
        max_version = TLS1_2_VERSION;
    else if (opts.version != NULL) {
        fprintf(stderr, "tlsload: -v %s: use 1.2 or 1.3\n", opts.version);
        goto fail;
    }
    if (SSL_CTX_set_min_proto_version(client_ctx, min_version) != 1 ||
        SSL_CTX_set_max_proto_version(client_ctx, max_version) != 1)
        goto fail;
    if (opts.suites != NULL && SSL_CTX_set_strict_cipher_list(client_ctx, opts.suites) != 1) {
        fprintf(stderr, "tlsload: -C %s: not a valid TLS 1.2 cipher list\n", opts.suites);
        goto fail;
    }
    if (opts.groups != NULL && SSL_CTX_set1_curves_list(client_ctx, opts.groups) != 1) {
        fprintf(stderr, "tlsload: -g %s: not a valid group list\n", opts.groups);
        goto fail;
    }
    /* Every mode counts the tickets the server issues; only resume mode
     * keeps one, and only resume mode ever offers a session. */
    SSL_CTX_set_session_cache_mode(client_ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(client_ctx, keep_first_session);
    if (opts.alpn_len > 0 && SSL_CTX_set_alpn_protos(client_ctx, opts.alpn, opts.alpn_len) != 0)
        goto fail;
    return 0;
fail:
    ERR_print_errors_fp(stderr);
    return -1;
}

static void slot_release(struct slot *s)
{
    if (s->ssl != NULL)
        SSL_free(s->ssl);
    if (s->fd >= 0)
        close(s->fd);
    free(s->response);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->state = SLOT_FREE;
}

/* slot_start opens connection |index| in the free slot |s|. It returns 0, or
 * -1 (counted as an error, the slot left free) when the socket could not be
 * opened. */
static int slot_start(struct slot *s, uint32_t index)
{
    s->index = index;
    s->started_ms = now_ms();
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (s->fd < 0) {
        record_error("socket", strerror(errno));
        goto fail;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opts.num_sources > 1) {
        /* Pick the source address, leave the port to connect(), which then
         * only needs the 4-tuple to be unique. */
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in source = {.sin_family = AF_INET};
        source.sin_addr.s_addr = htonl(0x7f000001u + index % opts.num_sources);
        if (bind(s->fd, (struct sockaddr *)&source, sizeof(source)) != 0) {
            record_error("bind", strerror(errno));
            goto fail;
        }
    }
    if (connect(s->fd, (struct sockaddr *)&opts.target, sizeof(opts.target)) != 0 &&
        errno != EINPROGRESS) {
        record_error("connect", strerror(errno));
        goto fail;
    }
    s->ssl = SSL_new(client_ctx);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        record_error("SSL_new", "out of memory");
        goto fail;
    }
    SSL_set_connect_state(s->ssl);
    if (opts.mode == MODE_RESUME && resume_session != NULL &&
        SSL_set_session(s->ssl, resume_session) != 1) {
        record_error("SSL_set_session", "failed");
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = s};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        record_error("epoll_ctl", strerror(errno));
        goto fail;
    }
    s->state = SLOT_CONNECTING;
    return 0;
fail:
    slot_release(s);
    return -1;
}

/* response_complete says whether buf[0, len) holds a whole HTTP/1.1
 * response with a Content-Length (what the bench backend sends). */
static bool response_complete(const char *buf, uint32_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL)
        return false;
    size_t header_len = (size_t)(end - buf) + 4;
    size_t body_len = 0;
    for (const char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            body_len = strtoul(p + 15, NULL, 10);
            break;
        }
    }
    return len >= header_len + body_len;
}

/* begin_shutdown sends close_notify and the TCP FIN; the server's reply (or
 * EOF) is read in SLOT_SHUTDOWN. */
static void begin_shutdown(struct slot *s)
{
    SSL_shutdown(s->ssl);
    shutdown(s->fd, SHUT_WR);
    s->shutdown_ms = now_ms();
    s->state = SLOT_SHUTDOWN;
}

enum step_result { STEP_BLOCKED, STEP_DONE, STEP_FAILED };

/* slot_step drives |s| as far as it goes without blocking. STEP_DONE means
 * the connection reached its end (flood: closed; hold: idle and kept), and
 * STEP_FAILED that it failed (the error is counted); both leave the slot for
 * the caller to release. */
static enum step_result slot_step(struct slot *s, uint32_t *out_idle_fd)
{
    int ret;
    switch (s->state) {
    case SLOT_CONNECTING: {
        int err = 0;
        socklen_t err_len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0)
            err = errno;
        if (err == EINPROGRESS || err == EALREADY)
            return STEP_BLOCKED;
        if (err != 0) {
            record_error("connect", strerror(err));
            return STEP_FAILED;
        }
        s->state = SLOT_HANDSHAKE;
    }
        /* fall through */
    case SLOT_HANDSHAKE:
        ERR_clear_error();
        errno = 0;
        ret = SSL_do_handshake(s->ssl);
        if (ret != 1) {
            int err = SSL_get_error(s->ssl, ret);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return STEP_BLOCKED;
            record_ssl_error("handshake", s->ssl, ret);
            return STEP_FAILED;
        }
        note_first_handshake(s->ssl);
        stats.completed++;
        if (now_ms() <= window_end_ms)
            stats.in_window++;
        if (SSL_session_reused(s->ssl))
            stats.resumed++;
        /* Resume mode's first connection always makes a request: a
         * BoringSSL server sends its tickets with its first write. */
        if (opts.mode == MODE_HOLD || opts.send_request ||
            (opts.mode == MODE_RESUME && resume_session == NULL)) {
            s->state = SLOT_REQUEST;
            s->response = malloc(RESPONSE_BUF_LEN);
            if (s->response == NULL) {
                record_error("malloc", "out of memory");
                return STEP_FAILED;
            }
            if (opts.mode == MODE_HOLD && negotiated_h2(s->ssl)) {
                s->state = SLOT_H2;
                ERR_clear_error();
                ret = SSL_write(s->ssl, h2_request, (int)h2_request_len);
                if (ret != (int)h2_request_len) {
                    record_ssl_error("write h2 request", s->ssl, ret);
                    return STEP_FAILED;
                }
                goto h2_read;
            }
        } else {
            begin_shutdown(s);
            goto shutdown_read;
        }
        /* fall through */
    case SLOT_REQUEST:
        while (s->request_sent < request_len) {
            ERR_clear_error();
            ret = SSL_write(s->ssl, request_text + s->request_sent,
                            (int)(request_len - s->request_sent));
            if (ret <= 0) {
                int err = SSL_get_error(s->ssl, ret);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    return STEP_BLOCKED;
                record_ssl_error("write", s->ssl, ret);
                return STEP_FAILED;
            }
            s->request_sent += (uint32_t)ret;
        }
        s->state = SLOT_RESPONSE;
        /* fall through */
    case SLOT_RESPONSE:
        for (;;) {
            if (s->response_len >= RESPONSE_BUF_LEN) {
                record_error("response", "larger than the buffer");
                return STEP_FAILED;
            }
            ERR_clear_error();
            ret = SSL_read(s->ssl, s->response + s->response_len,
                           (int)(RESPONSE_BUF_LEN - s->response_len));
            if (ret <= 0) {
                int err = SSL_get_error(s->ssl, ret);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    return STEP_BLOCKED;
                record_ssl_error("read response", s->ssl, ret);
                return STEP_FAILED;
            }
            s->response_len += (uint32_t)ret;
            if (response_complete(s->response, s->response_len))
                break;
        }
        stats.responses++;
        if (opts.mode != MODE_HOLD) {
            begin_shutdown(s);
            goto shutdown_read;
        }
        /* Idle from here: the socket stays open, silent, and out of epoll;
         * the client keeps no TLS state for it. */
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
        *out_idle_fd = (uint32_t)s->fd;
        s->fd = -1;
        return STEP_DONE;
    case SLOT_H2:
    h2_read:
        for (;;) {
            int idle = h2_consume(s);
            if (idle < 0)
                return STEP_FAILED;
            if (idle)
                break;
            if (s->response_len >= RESPONSE_BUF_LEN) {
                record_error("h2", "frame headers beyond the buffer");
                return STEP_FAILED;
            }
            ERR_clear_error();
            ret = SSL_read(s->ssl, s->response + s->response_len,
                           (int)(RESPONSE_BUF_LEN - s->response_len));
            if (ret <= 0) {
                int err = SSL_get_error(s->ssl, ret);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    return STEP_BLOCKED;
                record_ssl_error("read h2 response", s->ssl, ret);
                return STEP_FAILED;
            }
            s->response_len += (uint32_t)ret;
        }
        stats.responses++;
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
        *out_idle_fd = (uint32_t)s->fd;
        s->fd = -1;
        return STEP_DONE;
    case SLOT_SHUTDOWN:
    shutdown_read:
        for (;;) {
            char sink[4096];
            ERR_clear_error();
            ret = SSL_read(s->ssl, sink, sizeof(sink));
            if (ret > 0)
                continue;
            int err = SSL_get_error(s->ssl, ret);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return STEP_BLOCKED;
            /* close_notify, EOF or a reset: the server is done either way. */
            ERR_clear_error();
            return STEP_DONE;
        }
    case SLOT_FREE:
        break;
    }
    return STEP_FAILED;
}

static int parse_target(const char *text)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return -1;
    opts.target.sin_family = AF_INET;
    opts.target.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &opts.target.sin_addr) != 1)
        return -1;
    opts.target_text = text;
    return 0;
}

/* parse_alpn turns "h2,http/1.1" into ALPN wire format in opts.alpn. */
static int parse_alpn(const char *text)
{
    opts.alpn_len = 0;
    while (*text != '\0') {
        size_t len = strcspn(text, ",");
        if (len == 0 || len > 255 || opts.alpn_len + 1 + len > sizeof(opts.alpn))
            return -1;
        opts.alpn[opts.alpn_len++] = (uint8_t)len;
        memcpy(opts.alpn + opts.alpn_len, text, len);
        opts.alpn_len += (uint32_t)len;
        text += len + (text[len] == ',');
    }
    return opts.alpn_len > 0 ? 0 : -1;
}

static void parse_options(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "handshake") == 0)
        opts.mode = MODE_HANDSHAKE;
    else if (strcmp(argv[1], "resume") == 0)
        opts.mode = MODE_RESUME;
    else if (strcmp(argv[1], "hold") == 0)
        opts.mode = MODE_HOLD;
    else
        usage();
    opts.concurrency = 32;
    opts.duration_s = 10;
    opts.num_sources = 1;
    opts.path = "/";
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "a:c:d:v:C:g:n:s:p:rA:")) != -1) {
        switch (opt) {
        case 'a':
            if (parse_target(optarg) != 0) {
                fprintf(stderr, "tlsload: -a %s: use IPV4:PORT\n", optarg);
                exit(2);
            }
            break;
        case 'c': opts.concurrency = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'd': opts.duration_s = strtod(optarg, NULL); break;
        case 'v': opts.version = optarg; break;
        case 'C': opts.suites = optarg; break;
        case 'g': opts.groups = optarg; break;
        case 'n': opts.num_hold = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': opts.num_sources = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'p': opts.path = optarg; break;
        case 'r': opts.send_request = true; break;
        case 'A':
            if (parse_alpn(optarg) != 0) {
                fprintf(stderr, "tlsload: -A %s: use a comma-separated list such as h2,http/1.1\n",
                        optarg);
                exit(2);
            }
            break;
        default: usage();
        }
    }
    if (opts.target_text == NULL || opts.concurrency == 0 || opts.duration_s <= 0 ||
        opts.num_sources == 0 || opts.num_sources > 250 ||
        (opts.mode == MODE_HOLD && opts.num_hold == 0))
        usage();
    if (opts.mode == MODE_HOLD && opts.concurrency > opts.num_hold)
        opts.concurrency = opts.num_hold;
}

/* raise_nofile makes room for |wanted| descriptors, raising the hard limit
 * too when allowed (root). */
static void raise_nofile(rlim_t wanted)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= wanted)
        return;
    if (lim.rlim_max < wanted)
        lim.rlim_max = wanted;
    lim.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
        fprintf(stderr, "tlsload: cannot raise RLIMIT_NOFILE to %lu: %s\n",
                (unsigned long)wanted, strerror(errno));
}

static void print_json_string(const char *key, const char *value)
{
    printf(",\"%s\":\"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        putchar((unsigned char)*p >= 0x20 ? *p : '?');
    }
    putchar('"');
}

/* print_report prints the result: |seconds| is the whole run, drain
 * included; |window_s| the measured duration, which gives the rate. */
static void print_report(double seconds, double window_s)
{
    static const char *const mode_names[] = {"handshake", "resume", "hold"};
    printf("{\"mode\":\"%s\",\"completed\":%llu,\"errors\":%llu,\"timeouts\":%llu,"
           "\"seconds\":%.3f,\"window\":%.3f,\"in_window\":%llu,\"rate\":%.1f,\"resumed\":%llu,\"responses\":%llu,"
           "\"tickets\":%llu",
           mode_names[opts.mode], (unsigned long long)stats.completed,
           (unsigned long long)stats.errors, (unsigned long long)stats.timeouts, seconds,
           window_s, (unsigned long long)stats.in_window,
           window_s > 0 ? (double)stats.in_window / window_s : 0.0,
           (unsigned long long)stats.resumed, (unsigned long long)stats.responses,
           (unsigned long long)stats.tickets);
    print_json_string("version", stats.version);
    print_json_string("cipher", stats.cipher);
    print_json_string("group", stats.group);
    print_json_string("sigalg", stats.sigalg);
    print_json_string("alpn", stats.alpn);
    print_json_string("first_error", stats.first_error);
    printf("}\n");
    fflush(stdout);
}

/* wait_for_stop blocks until stdin closes or says something, a stop signal
 * arrives, or |deadline_ms| passes. */
static void wait_for_stop(uint64_t deadline_ms)
{
    while (!stop_requested) {
        uint64_t now = now_ms();
        if (now >= deadline_ms)
            return;
        struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
        int wait = (int)(deadline_ms - now < 200 ? deadline_ms - now : 200);
        if (poll(&in, 1, wait) > 0)
            return;
    }
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop_signal);
    signal(SIGINT, on_stop_signal);
    raise_nofile((opts.mode == MODE_HOLD ? opts.num_hold : opts.concurrency) + 64);
    request_len = (size_t)snprintf(request_text, sizeof(request_text),
                                   "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", opts.path);
    build_h2_request();

    int status = 1;
    struct slot *slots = NULL;
    struct epoll_event *events = NULL;
    int *idle_fds = NULL;
    uint32_t num_idle = 0;
    if (build_client_ctx() != 0)
        goto done;
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    slots = calloc(opts.concurrency, sizeof(*slots));
    if (opts.mode == MODE_HOLD)
        idle_fds = calloc(opts.num_hold, sizeof(*idle_fds));
    events = calloc(opts.concurrency, sizeof(*events));
    if (epoll_fd < 0 || slots == NULL || events == NULL ||
        (opts.mode == MODE_HOLD && idle_fds == NULL)) {
        fprintf(stderr, "tlsload: out of memory\n");
        goto done;
    }
    for (uint32_t i = 0; i < opts.concurrency; i++)
        slots[i].fd = -1;

    uint64_t start_ms = now_ms();
    uint64_t end_ms = start_ms + (uint64_t)(opts.duration_s * 1000);
    window_end_ms = end_ms;
    uint32_t next_index = 0;
    uint32_t num_active = 0;
    bool hold_reported = false;
    /* Resume mode: one connection alone first, to get the session. */
    uint32_t width = opts.mode == MODE_RESUME ? 1 : opts.concurrency;
    bool draining = false;
    uint64_t drain_end_ms = 0;

    for (;;) {
        uint64_t now = now_ms();
        if (!draining && (now >= end_ms || stop_requested)) {
            draining = true;
            drain_end_ms = now + DRAIN_MS;
        }
        if (opts.mode == MODE_RESUME && width == 1 && num_active == 0 && next_index > 0) {
            if (resume_session == NULL) {
                fprintf(stderr, "tlsload: the server issued no session ticket (%s)\n",
                        stats.first_error[0] ? stats.first_error : "no error");
                goto done;
            }
            /* The first connection, which made the session, is not counted. */
            stats.completed = stats.in_window = stats.resumed = 0;
            stats.responses = stats.tickets = 0;
            width = opts.concurrency;
            start_ms = now;
            end_ms = start_ms + (uint64_t)(opts.duration_s * 1000);
            window_end_ms = end_ms;
        }
        /* Fill the free slots. */
        for (uint32_t i = 0; i < width && !draining; i++) {
            if (slots[i].state != SLOT_FREE)
                continue;
            if (opts.mode == MODE_HOLD && next_index >= opts.num_hold)
                break;
            if (opts.mode == MODE_RESUME && width == 1 && next_index > 0)
                break;
            if (slot_start(&slots[i], next_index++) == 0)
                num_active++;
        }
        if (opts.mode == MODE_HOLD && !hold_reported &&
            num_active == 0 && next_index >= opts.num_hold) {
            printf("ready %u %llu %s\n", num_idle, (unsigned long long)stats.errors,
               stats.alpn[0] ? stats.alpn : "-");
            fflush(stdout);
            hold_reported = true;
            wait_for_stop(end_ms);
            break;
        }
        if (num_active == 0 && draining)
            break;
        if (draining && now >= drain_end_ms)
            break;

        int num_events = epoll_wait(epoll_fd, events, (int)opts.concurrency, 100);
        if (num_events < 0 && errno != EINTR) {
            perror("tlsload: epoll_wait");
            goto done;
        }
        for (int e = 0; e < num_events; e++) {
            struct slot *s = events[e].data.ptr;
            if (s->state == SLOT_FREE)
                continue;
            uint32_t idle_fd = 0;
            enum step_result result = slot_step(s, &idle_fd);
            if (result == STEP_BLOCKED)
                continue;
            if (result == STEP_DONE && opts.mode == MODE_HOLD)
                idle_fds[num_idle++] = (int)idle_fd;
            slot_release(s);
            num_active--;
        }
        /* Deadlines: a connection past its time is abandoned. A flood
         * connection that already sent close_notify is simply closed after
         * SHUTDOWN_WAIT_MS; its handshake was counted. */
        now = now_ms();
        for (uint32_t i = 0; i < opts.concurrency; i++) {
            struct slot *s = &slots[i];
            if (s->state == SLOT_FREE)
                continue;
            bool late_shutdown =
                s->state == SLOT_SHUTDOWN && now - s->shutdown_ms > SHUTDOWN_WAIT_MS;
            if (!late_shutdown && now - s->started_ms <= CONN_TIMEOUT_MS)
                continue;
            if (!late_shutdown) {
                stats.timeouts++;
                record_error("timeout", "connection did not finish in 10 s");
            }
            slot_release(s);
            num_active--;
        }
    }
    uint64_t finish_ms = now_ms();
    double seconds = (double)(finish_ms - start_ms) / 1000.0;
    double window_s = (double)((finish_ms < end_ms ? finish_ms : end_ms) - start_ms) / 1000.0;
    if (opts.mode == MODE_HOLD && !hold_reported) {
        printf("ready %u %llu %s\n", num_idle, (unsigned long long)stats.errors,
               stats.alpn[0] ? stats.alpn : "-");
        fflush(stdout);
    }
    print_report(seconds, window_s);
    status = 0;
done:
    for (uint32_t i = 0; slots != NULL && i < opts.concurrency; i++)
        if (slots[i].state != SLOT_FREE)
            slot_release(&slots[i]);
    for (uint32_t i = 0; i < num_idle; i++)
        close(idle_fds[i]);
    free(idle_fds);
    free(events);
    free(slots);
    SSL_SESSION_free(resume_session);
    SSL_CTX_free(client_ctx);
    return status;
}
