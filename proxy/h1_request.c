/* h1_request: the HTTP/1.1 request parser of mode_h1. See h1_request.h. */
#include "h1_request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

static const llhttp_settings_t h1_parser_settings;

/* head_add counts |len| bytes of a head against the size limit. */
static int head_add(struct h1_request *r, size_t len)
{
    r->head_bytes += (uint32_t)(len < UINT32_MAX ? len : UINT32_MAX);
    if (len >= UINT32_MAX || r->head_bytes > r->max_header_bytes) {
        r->error = HTTP_REASON_HEADER_TOO_LARGE;
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *parser)
{
    struct h1_request *r = parser->data;

    if ((r->x = r->begin(r->arg)) == NULL) {
        r->error = HTTP_REASON_OUT_OF_MEMORY;
        return -1;
    }
    r->state = H1_REQ_HEAD;
    r->head_bytes = r->num_fields = r->num_hosts = 0;
    r->url_len = 0;
    r->name_open = false;
    return 0;
}

/* scan_head checks the lines of a head, which llhttp 8 takes leniently and
 * a backend might split differently (request smuggling): every line ends
 * in CRLF (no bare CR or LF), no field line starts with whitespace
 * (obs-fold, RFC 9112 5.2) or a colon (an empty name), and the request
 * line has no doubled space. Empty lines before the request line are
 * allowed (RFC 9112 2.2). It stops at the head's end: a body is llhttp's,
 * and on_message_complete readies it for the next head. */
static int scan_head(struct h1_request *r, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !r->scan.done; i++) {
        char ch = data[i];
        if (r->scan.cr != (ch == '\n'))
            return -1;
        r->scan.cr = ch == '\r';
        if (ch == '\n') {
            r->scan.done = r->scan.line_len == 0 && r->scan.num_lines > 0;
            r->scan.num_lines += r->scan.line_len > 0;
            r->scan.line_len = 0;
        } else if (ch != '\r') {
            bool field_line = r->scan.num_lines > 0;
            if (field_line && r->scan.line_len == 0 && (ch == ' ' || ch == '\t' || ch == ':'))
                return -1;
            if (!field_line && ch == ' ' && r->scan.prev == ' ')
                return -1;
            r->scan.prev = ch;
            r->scan.line_len++;
        }
    }
    return 0;
}

static int on_url(llhttp_t *parser, const char *at, size_t len)
{
    struct h1_request *r = parser->data;

    if (r->state != H1_REQ_HEAD)
        return 0;
    if (head_add(r, len) != 0)
        return -1;
    /* Known from here on, for the log line of a request refused later. */
    if (r->x->req.method == NULL &&
        (r->x->req.method = strdup(llhttp_method_name(parser->method))) == NULL) {
        r->error = HTTP_REASON_OUT_OF_MEMORY;
        return -1;
    }
    if (r->url_len + len + 1 > r->url_cap) {
        uint32_t cap = r->url_cap ? r->url_cap : 256;
        while (cap < r->url_len + len + 1)
            cap *= 2;
        char *url = realloc(r->url, cap);
        if (url == NULL) {
            r->error = HTTP_REASON_OUT_OF_MEMORY;
            return -1;
        }
        r->url = url;
        r->url_cap = cap;
    }
    memcpy(r->url + r->url_len, at, len);
    r->url_len += (uint32_t)len;
    r->url[r->url_len] = '\0';
    return 0;
}

/* on_header_field and on_header_value collect a head's fields in
 * x->req.fields (llhttp hands a name or value over in pieces when it spans
 * reads). Fields after the body (chunked trailers) are dropped. */
static int on_header_field(llhttp_t *parser, const char *at, size_t len)
{
    struct h1_request *r = parser->data;
    struct http_fields *f = &r->x->req.fields;

    if (r->state != H1_REQ_HEAD)
        return 0;
    if (head_add(r, len + (r->name_open ? 0 : 4)) != 0)
        return -1;
    int result;
    if (r->name_open) {
        result = http_fields_extend(f, true, at, len);
    } else {
        if (++r->num_fields > r->max_fields) {
            r->error = HTTP_REASON_HEADER_TOO_LARGE;
            return -1;
        }
        result = http_fields_add(f, at, len, "", 0);
        r->name_open = true;
    }
    if (result != 0)
        r->error = HTTP_REASON_OUT_OF_MEMORY;
    return result;
}

static int on_header_field_complete(llhttp_t *parser)
{
    ((struct h1_request *)parser->data)->name_open = false;
    return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len)
{
    struct h1_request *r = parser->data;

    if (r->state != H1_REQ_HEAD)
        return 0;
    if (head_add(r, len) != 0)
        return -1;
    if (http_fields_extend(&r->x->req.fields, false, at, len) != 0) {
        r->error = HTTP_REASON_OUT_OF_MEMORY;
        return -1;
    }
    return 0;
}

/* on_header_value_complete takes Host out of the fields: it becomes the
 * authority. */
static int on_header_value_complete(llhttp_t *parser)
{
    struct h1_request *r = parser->data;
    struct http_request *req = &r->x->req;
    struct http_fields *f = &req->fields;

    if (r->state != H1_REQ_HEAD || f->num == 0)
        return 0;
    const struct http_field *last = &f->v[f->num - 1];
    if (!http_name_is(http_field_name(f, f->num - 1), last->name_len, "host"))
        return 0;
    if (++r->num_hosts == 1 && last->value_len > 0) {
        req->authority = strndup(http_field_value(f, f->num - 1), last->value_len);
        if (req->authority == NULL) {
            r->error = HTTP_REASON_OUT_OF_MEMORY;
            return -1;
        }
    }
    f->bytes -= last->name_len + last->value_len;
    f->num--;
    return 0;
}

/* set_target fills x->req.target from the request target: origin form as
 * it is, absolute form split into authority (which replaces Host) and path,
 * "*" for OPTIONS only. */
static enum http_reason set_target(struct h1_request *r)
{
    struct http_request *req = &r->x->req;
    const char *url = r->url != NULL ? r->url : "";
    size_t scheme_len = strncasecmp(url, "http://", 7) == 0    ? 7
                        : strncasecmp(url, "https://", 8) == 0 ? 8
                                                               : 0;

    if (url[0] == '/' || (strcmp(url, "*") == 0 && strcmp(req->method, "OPTIONS") == 0)) {
        req->target = strdup(url);
    } else if (scheme_len > 0) {
        const char *authority = url + scheme_len;
        size_t authority_len = strcspn(authority, "/?#");
        if (authority_len == 0 || memchr(authority, '@', authority_len) != NULL)
            return HTTP_REASON_BAD_REQUEST;
        /* RFC 9112 3.2.2 lets the target's authority win over Host; a
         * proxy that passes the request on refuses them differing, as h2
         * does with :authority. */
        if (r->host_must_match && req->authority != NULL &&
            (strlen(req->authority) != authority_len ||
             strncasecmp(req->authority, authority, authority_len) != 0))
            return HTTP_REASON_AUTHORITY_MISMATCH;
        free(req->authority);
        req->authority = strndup(authority, authority_len);
        const char *path = authority + authority_len;
        size_t path_len = strlen(path);
        req->target = malloc(path_len + 2);
        if (req->target != NULL) {
            char *p = req->target;
            if (path[0] != '/')
                *p++ = '/';
            memcpy(p, path, path_len + 1);
        }
        if (req->authority == NULL)
            return HTTP_REASON_OUT_OF_MEMORY;
    } else {
        return HTTP_REASON_BAD_REQUEST;
    }
    return req->target != NULL ? HTTP_REASON_NONE : HTTP_REASON_OUT_OF_MEMORY;
}

/* head_complete checks a complete head and fills the rest of x->req. */
static enum http_reason head_complete(struct h1_request *r, llhttp_t *parser)
{
    struct http_request *req = &r->x->req;

    req->http_minor = llhttp_get_http_minor(parser);
    if (req->method == NULL)
        req->method = strdup(llhttp_method_name(parser->method));
    if (req->method == NULL)
        return HTTP_REASON_OUT_OF_MEMORY;
    /* A reverse proxy tunnels nothing: CONNECT is refused, as is any
     * version but HTTP/1.x. */
    if (llhttp_get_http_major(parser) != 1 || parser->method == HTTP_CONNECT)
        return HTTP_REASON_BAD_REQUEST;
    /* RFC 9112 3.2: exactly one Host in HTTP/1.1. */
    if (r->num_hosts > 1 || (req->http_minor >= 1 && req->authority == NULL))
        return HTTP_REASON_BAD_REQUEST;
    enum http_reason reason = set_target(r);
    if (reason != HTTP_REASON_NONE)
        return reason;
    /* Transfer-Encoding is exactly one "chunked" (the backend gets the body
     * re-framed); any other coding is not implemented (RFC 9112 6.1), and
     * in HTTP/1.0 the framing is faulty. */
    int te = http_fields_find(&req->fields, "transfer-encoding", 0);
    if (te >= 0 && req->http_minor == 0)
        return HTTP_REASON_BAD_REQUEST;
    if (te >= 0 &&
        (req->fields.v[te].value_len != 7 ||
         strncasecmp(http_field_value(&req->fields, (uint32_t)te), "chunked", 7) != 0 ||
         http_fields_find(&req->fields, "transfer-encoding", (uint32_t)te + 1) >= 0))
        return HTTP_REASON_UNKNOWN_CODING;
    req->content_length =
        (parser->flags & F_CONTENT_LENGTH) ? (int64_t)parser->content_length : -1;
    req->has_body = (parser->flags & F_CHUNKED) || req->content_length > 0;
    int i = http_fields_find(&req->fields, "expect", 0);
    req->expect_continue =
        i >= 0 && req->fields.v[i].value_len == 12 &&
        strncasecmp(http_field_value(&req->fields, (uint32_t)i), "100-continue", 12) == 0;
    /* llhttp saw Upgrade with Connection: upgrade. Only a WebSocket GET
     * without a body upgrades; any other upgrade is dropped (the upstream
     * removes the fields) and the connection stays HTTP. */
    i = http_fields_find(&req->fields, "upgrade", 0);
    req->websocket = parser->upgrade && strcmp(req->method, "GET") == 0 && !req->has_body &&
                     i >= 0 &&
                     http_token_has(http_field_value(&req->fields, (uint32_t)i),
                                    req->fields.v[i].value_len, "websocket");
    if (!req->websocket)
        parser->upgrade = 0;
    req->close = !llhttp_should_keep_alive(parser);
    r->x->req_done = !req->has_body;
    return HTTP_REASON_NONE;
}

static int on_headers_complete(llhttp_t *parser)
{
    struct h1_request *r = parser->data;

    if (r->state != H1_REQ_HEAD)
        return 0;
    enum http_reason reason = head_complete(r, parser);
    if (reason != HTTP_REASON_NONE) {
        r->error = reason;
        return -1;
    }
    /* Paused: the upstream starts before any body byte is taken. */
    r->head_paused = true;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *parser, const char *at, size_t len)
{
    struct h1_request *r = parser->data;
    struct http_exchange *x = r->x;

    if (x->req_body == NULL && (x->req_body = evbuffer_new()) == NULL)
        goto fail;
    if (evbuffer_add(x->req_body, at, len) != 0)
        goto fail;
    x->req_bytes += len;
    r->body_news = true;
    return 0;
fail:
    r->error = HTTP_REASON_OUT_OF_MEMORY;
    return -1;
}

static int on_message_complete(llhttp_t *parser)
{
    struct h1_request *r = parser->data;

    if (!r->x->req_done) {
        r->x->req_done = true;
        r->body_news = true;
    }
    r->state = H1_REQ_DONE;
    memset(&r->scan, 0, sizeof(r->scan));
    /* The next request waits until this one is answered. */
    return HPE_PAUSED;
}

static const llhttp_settings_t h1_parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void h1_request_init(struct h1_request *r, uint32_t max_header_bytes,
                     struct http_exchange *(*begin)(void *arg), void *arg)
{
    memset(r, 0, sizeof(*r));
    llhttp_init(&r->parser, HTTP_REQUEST, &h1_parser_settings);
    r->parser.data = r;
    r->begin = begin;
    r->arg = arg;
    r->max_header_bytes = max_header_bytes;
    r->max_fields = HTTP_MAX_FIELDS;
}

enum h1_parse_result h1_request_parse(struct h1_request *r, const char *data, size_t len,
                                      size_t *out_used)
{
    r->head_paused = false;
    if (scan_head(r, data, len) != 0) {
        r->error = HTTP_REASON_BAD_REQUEST;
        return H1_PARSE_ERROR;
    }
    llhttp_errno_t err = llhttp_execute(&r->parser, data, len);
    *out_used = len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        *out_used = (size_t)(llhttp_get_error_pos(&r->parser) - data);
        /* After an upgrade nothing more is parsed: the rest is the new
         * protocol's, or the connection closes. */
        if (err == HPE_PAUSED)
            llhttp_resume(&r->parser);
    } else if (err != HPE_OK) {
        if (r->error == HTTP_REASON_NONE)
            r->error = HTTP_REASON_BAD_REQUEST;
        return H1_PARSE_ERROR;
    }
    return r->head_paused ? H1_PARSE_HEAD : H1_PARSE_OK;
}

void h1_request_cleanup(struct h1_request *r)
{
    free(r->url);
    r->url = NULL;
    r->url_len = r->url_cap = 0;
}
