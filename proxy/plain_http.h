/* plain_http: the answer to plain HTTP sent to a TLS port, and the check
 * of a Host that mode_redirect shares.
 *
 * BoringSSL recognises an HTTP request where a ClientHello should be
 * (END_HTTP_REQUEST_ON_TLS). Rather than a reset the client gets an
 * HTTP/1.1 400 in plaintext, with a one-line body that names the https://
 * URL to use, and `Connection: close`; the handshake still fails and is
 * logged as http_request_on_tls_port.
 *
 * The answer is best effort and bounded: the request is what was already
 * read plus what the socket has without waiting (at most
 * PLAIN_HTTP_REQUEST_MAX bytes), and the response goes out in one
 * non-blocking send. Nothing here ever waits for the client. */
#ifndef TLSTERM_PLAIN_HTTP_H
#define TLSTERM_PLAIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls_io.h"

/* The most of a request read to find its Host. */
#define PLAIN_HTTP_REQUEST_MAX 8192
/* The longest host (name and port) put in the body; longer ones are left out. */
#define PLAIN_HTTP_HOST_MAX 255

/* plain_http_valid_host says whether the |len| bytes at |host| are a host a
 * response may name: a DNS name or IPv4 address (letters, digits, '.' and
 * '-') or a bracketed IPv6 literal, then an optional ":port" (1 to 5
 * digits), PLAIN_HTTP_HOST_MAX bytes at most. When it is, |*out_name_len|
 * is the length without the port. Pure, for unit tests. */
bool plain_http_valid_host(const char *host, size_t len, size_t *out_name_len);

/* plain_http_host finds the Host field in the |len| bytes of request head
 * at |request| and copies its value into |out| (|out_len| bytes, at least
 * PLAIN_HTTP_HOST_MAX + 1), NUL-terminated. Only a host that is a DNS name
 * or address with an optional port is taken: letters, digits, '.', '-', a
 * bracketed IPv6 literal, ":" and digits. It returns the host's length, or
 * 0 when there is none, it is cut off, or it has any other byte (the value
 * is the client's and goes into a response). Pure, for unit tests. */
size_t plain_http_host(const uint8_t *request, size_t len, char *out, size_t out_len);

/* plain_http_response writes the whole 400 response for |host| (NULL or ""
 * leaves the host out of the body) into |out| and returns its length, at
 * most |out_len| (512 bytes always suffice). Pure, for unit tests. */
size_t plain_http_response(const char *host, char *out, size_t out_len);

/* plain_http_answer sends the 400 on |sock|'s socket, after a handshake
 * failed with END_HTTP_REQUEST_ON_TLS, and shuts down its write side. The
 * socket stays open (its owner closes it). */
void plain_http_answer(struct tls_io_socket *sock);

#endif
