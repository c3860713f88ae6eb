/* h1_response: the HTTP/1.1 response parser of http_upstream. llhttp fills
 * the response of an exchange (http.h) and hands its heads and body to the
 * exchange's front as they come; it is fed bytes and never touches a
 * socket.
 *
 * What it holds a backend to: a three-digit status; at most 256 KiB and
 * 1000 fields per head (and per trailer section); a 101 only for a
 * WebSocket the client asked for, with Upgrade and Connection: upgrade. It
 * drops the hop-by-hop fields (RFC 9110 7.6.1) before the front sees a
 * head. Interim (1xx) heads go to the front as they come; a response to
 * HEAD is complete at its head; anything after a complete response means
 * its connection is not reused.
 *
 * A 425 (Too Early, RFC 8470) to a request the owner sent in 0-RTT is the
 * owner's to take back when it says so (may_retry_425): the front never
 * sees it.
 *
 * Ownership. A struct h1_response is embedded in its owner (an upstream)
 * and holds nothing of its own: what it parses goes into the exchange. */
#ifndef TLSTERM_H1_RESPONSE_H
#define TLSTERM_H1_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

struct http_exchange;

enum h1_resp_result {
    H1_RESP_OK,        /* more to come, or x->resp_done (bytes after it are not taken,
                        * and the connection is not reusable) */
    H1_RESP_TOO_EARLY, /* the 425 may_retry_425 allowed: send the request again */
    H1_RESP_UPGRADED,  /* the WebSocket's 101: what follows is the new protocol */
    H1_RESP_ERROR,     /* invalid or over a limit (h1_response_error), or out_of_memory */
};

struct h1_response {
    llhttp_t parser;
    struct http_exchange *x;
    /* Set by the owner before each parse: a 425 is its to retry. */
    bool may_retry_425;
    /* Complete, keep-alive, and nothing after it. The owner clears it when
     * it learns the connection is spent (closed, or cut short). */
    bool reusable;
    bool out_of_memory;    /* a callback could not allocate: not the backend's fault */
    bool fields_too_large; /* over the field limits */
    bool in_body;          /* the final head is parsed: fields are trailers */
    bool last_was_value;   /* the last header callback was a value */
    bool data_added;       /* bytes went to x->resp_body in this parse */
    bool too_early;        /* the response being parsed is the 425 to retry */
};

/* h1_response_init readies |r| for |x|'s response (again, when the request
 * is sent again). */
void h1_response_init(struct h1_response *r, struct http_exchange *x);

/* h1_response_parse feeds |len| bytes. H1_RESP_UPGRADED sets |*out_rest| to
 * the first byte after the 101's head. The front hears of new heads and
 * body bytes before it returns. */
enum h1_resp_result h1_response_parse(struct h1_response *r, const uint8_t *buf, size_t len,
                                      const uint8_t **out_rest);

/* h1_response_finish says whether the server's close completes the
 * response (a body that runs until EOF). */
bool h1_response_finish(struct h1_response *r);

/* h1_response_error says why the parse failed, for the log. */
const char *h1_response_error(const struct h1_response *r);

#endif
