/* plain_http: the answer to plain HTTP on a TLS port. See plain_http.h. */
#include "plain_http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Bytes dropped after the request head, so that closing with a small body
 * unread does not turn into a RST that wipes out the answer. */
#define DISCARD_MAX 16384

bool plain_http_valid_host(const char *host, size_t len, size_t *out_name_len)
{
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789.-";
    size_t i = 0;

    if (len == 0 || len > PLAIN_HTTP_HOST_MAX)
        return false;
    if (host[0] == '[') {
        for (i = 1; i < len && host[i] != ']'; i++)
            if (strchr("0123456789abcdefABCDEF:.", host[i]) == NULL)
                return false;
        if (i == len || i == 1)
            return false;
        i++;
    } else {
        for (; i < len && host[i] != ':'; i++)
            if (host[i] == '\0' || strchr(name_chars, host[i]) == NULL)
                return false;
        if (i == 0)
            return false;
    }
    *out_name_len = i;
    if (i == len)
        return true;
    if (host[i] != ':' || i + 1 == len || len - i - 1 > 5)
        return false;
    for (i++; i < len; i++)
        if (host[i] < '0' || host[i] > '9')
            return false;
    return true;
}

size_t plain_http_host(const uint8_t *request, size_t len, char *out, size_t out_len)
{
    const char *p = (const char *)request, *end = p + len;
    const char *eol = memchr(p, '\n', len);

    out[0] = '\0';
    /* Field lines follow the request line; a line cut off is not taken. */
    while (eol != NULL) {
        p = eol + 1;
        if (p == end || (eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
            break;
        const char *line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (line_end == p)
            break; /* the end of the head */
        if (line_end - p < 5 || strncasecmp(p, "host:", 5) != 0)
            continue;
        const char *value = p + 5, *value_end = line_end;
        while (value < value_end && (*value == ' ' || *value == '\t'))
            value++;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        size_t value_len = (size_t)(value_end - value), name_len;
        if (!plain_http_valid_host(value, value_len, &name_len) || value_len >= out_len)
            return 0;
        memcpy(out, value, value_len);
        out[value_len] = '\0';
        return value_len;
    }
    return 0;
}

size_t plain_http_response(const char *host, char *out, size_t out_len)
{
    char body[PLAIN_HTTP_HOST_MAX + 64];
    int body_len, n;

    if (host != NULL && host[0] != '\0')
        body_len =
            snprintf(body, sizeof(body), "This port speaks HTTPS; use https://%s/\n", host);
    else
        body_len = snprintf(body, sizeof(body), "This port speaks HTTPS; use https:// URLs\n");
    if (body_len < 0 || (size_t)body_len >= sizeof(body))
        return 0;
    n = snprintf(out, out_len,
                 "HTTP/1.1 400 Bad Request\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %d\r\n"
                 "Connection: close\r\n"
                 "\r\n"
                 "%s",
                 body_len, body);
    return n < 0 || (size_t)n >= out_len ? 0 : (size_t)n;
}

/* head_complete says whether the |len| bytes at |request| hold a whole head. */
static bool head_complete(const uint8_t *request, size_t len)
{
    return memmem(request, len, "\r\n\r\n", 4) != NULL ||
           memmem(request, len, "\n\n", 2) != NULL;
}

/* read_more appends to |buf| what the socket has without waiting, and
 * returns the new length. */
static size_t read_more(struct tls_io_socket *sock, uint8_t *buf, size_t len, size_t cap)
{
    while (len < cap) {
        ssize_t n = recv(sock->fd, buf + len, cap - len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        sock->bytes_read += (uint64_t)n;
        len += (size_t)n;
        if (head_complete(buf, len))
            break;
    }
    return len;
}

void plain_http_answer(struct tls_io_socket *sock)
{
    uint8_t request[PLAIN_HTTP_REQUEST_MAX];
    char host[PLAIN_HTTP_HOST_MAX + 1] = "";
    char response[512];
    size_t len = tls_io_received(sock, request, sizeof(request));

    /* Without the start of the request its field lines cannot be told
     * apart; the answer then names no host. */
    if (len > 0) {
        if (!head_complete(request, len))
            len = read_more(sock, request, len, sizeof(request));
        plain_http_host(request, len, host, sizeof(host));
    }
    /* What else the client sent (a small body) is dropped. */
    for (size_t dropped = 0; dropped < DISCARD_MAX;) {
        ssize_t n = recv(sock->fd, request, sizeof(request), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        sock->bytes_read += (uint64_t)n;
        dropped += (size_t)n;
    }
    size_t response_len = plain_http_response(host, response, sizeof(response));
    /* One try: a socket that cannot take half a kilobyte gets nothing. */
    while (send(sock->fd, response, response_len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
           errno == EINTR)
        ;
    shutdown(sock->fd, SHUT_WR);
}
