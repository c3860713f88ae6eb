/* h1_request: the HTTP/1.1 request parser of mode_h1. llhttp, in strict
 * mode, fills the request of an exchange (http.h) and streams its body into
 * x->req_body; it is fed bytes and never touches a socket.
 *
 * A head's lines are checked before llhttp sees them: CRLF endings only,
 * no obs-fold, no empty name, single spaces in the request line. A head
 * is checked as it completes: exactly one Host in HTTP/1.1 (it
 * becomes the authority and leaves the fields), absolute-form targets split
 * into authority and path (with |host_must_match|, a Host that differs
 * from it: 400), no CONNECT,
 * no version but HTTP/1.x, Transfer-Encoding exactly "chunked" (another
 * coding: 501; any in HTTP/1.0: 400); at most
 * |max_header_bytes| of head and max_fields fields (431 beyond).
 * Only a WebSocket GET without a body is an upgrade; any other Upgrade
 * leaves the parser on HTTP.
 *
 * The parser pauses at the end of each head, so that the caller starts the
 * request's upstream before any body byte, and at the end of each request,
 * so that the next one waits until this one is answered.
 *
 * Ownership. A struct h1_request is embedded in its owner, which owns the
 * exchanges it gets from |begin|; the parser keeps only the target text. */
#ifndef TLSTERM_H1_REQUEST_H
#define TLSTERM_H1_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "http.h"

enum h1_request_state {
    H1_REQ_IDLE,    /* nothing of the next request parsed */
    H1_REQ_HEAD,    /* its head is being parsed */
    H1_REQ_BODY,    /* head done: the body (if any) streams to x->req_body */
    H1_REQ_DONE,    /* the whole request is in; the parser waits */
    H1_REQ_REFUSED, /* set by the owner: answered without parsing further */
};

enum h1_parse_result {
    H1_PARSE_OK,    /* bytes taken up to |*out_used|; see |state| */
    H1_PARSE_HEAD,  /* a head is complete: start its upstream, then parse on */
    H1_PARSE_ERROR, /* malformed, or over a limit: |error| says which */
};

struct h1_request {
    llhttp_t parser;
    enum h1_request_state state;
    struct http_exchange *x; /* the current request's, from |begin| */
    /* begin returns the exchange for a request that begins (|arg| is the
     * owner's); NULL when out of memory. */
    struct http_exchange *(*begin)(void *arg);
    void *arg;
    uint32_t max_header_bytes;
    uint32_t max_fields; /* HTTP_MAX_FIELDS, unless the owner says otherwise */
    /* Set by the owner: an absolute-form target whose authority is not
     * Host's is refused (authority_mismatch) instead of replacing it. */
    bool host_must_match;

    char *url; /* the request target as received, NUL-terminated */
    uint32_t url_len, url_cap;
    uint32_t head_bytes; /* of the head so far, for the size limit */
    uint32_t num_fields; /* Host included */
    uint32_t num_hosts;
    bool name_open;   /* the last field name may continue */
    bool head_paused; /* paused at a head's end: parse on even without bytes */
    bool body_news;   /* x->req_body grew or x->req_done was set: tell the upstream */
    struct {
        uint32_t line_len;  /* bytes of the current head line, CRLF aside */
        uint32_t num_lines; /* non-empty lines of the head so far */
        char prev;          /* the line's last byte */
        bool cr;            /* the last byte was a CR: an LF must follow */
        bool done;          /* the head's empty line was seen */
    } scan;                 /* scan_head's state, for the head being parsed */
    enum http_reason error;
};

/* h1_request_init readies |r| for a connection's requests. */
void h1_request_init(struct h1_request *r, uint32_t max_header_bytes,
                     struct http_exchange *(*begin)(void *arg), void *arg);

/* h1_request_parse feeds the |len| bytes at |data| (none is fine right
 * after a head) and sets |*out_used| to how many were taken: all of them,
 * unless a head or a request ended (the rest waits for the next call). */
enum h1_parse_result h1_request_parse(struct h1_request *r, const char *data, size_t len,
                                      size_t *out_used);

/* h1_request_cleanup frees what |r| holds (not its exchange). */
void h1_request_cleanup(struct h1_request *r);

#endif
