/* h1_response: the HTTP/1.1 response parser of http_upstream (see
 * h1_response.h). */
#include "h1_response.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "http.h"

/* A response's fields (or trailers) beyond these are refused: a backend
 * answering with megabytes of fields is broken. */
#define RESP_FIELDS_MAX_BYTES (256 * 1024)
#define RESP_FIELDS_MAX_NUM 1000

static struct h1_response *resp_of(llhttp_t *p) { return p->data; }

static int on_message_begin(llhttp_t *p)
{
    struct h1_response *r = resp_of(p);
    http_fields_free(&r->x->resp.fields);
    r->last_was_value = false;
    return 0;
}

/* on_header_piece adds a piece of a field's name or value (llhttp hands
 * them over in pieces when they span reads). */
static int on_header_piece(llhttp_t *p, bool is_name, const char *at, size_t len)
{
    struct h1_response *r = resp_of(p);
    struct http_response *resp = &r->x->resp;
    struct http_fields *f = r->in_body ? &resp->trailers : &resp->fields;
    int rc;

    if (is_name && (r->last_was_value || f->num == 0))
        rc = http_fields_add(f, at, len, "", 0);
    else if (is_name)
        rc = http_fields_extend(f, true, at, len);
    else
        rc = http_fields_extend(f, false, at, len);
    r->last_was_value = !is_name;
    if (f->bytes > RESP_FIELDS_MAX_BYTES || f->num > RESP_FIELDS_MAX_NUM) {
        r->fields_too_large = true; /* said so in the log, not as a callback error */
        return -1;
    }
    if (rc != 0) {
        r->out_of_memory = true;
        return -1;
    }
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    return on_header_piece(p, true, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    return on_header_piece(p, false, at, len);
}

/* drop_hop_by_hop removes the fields that are not passed on from |f|:
 * every field is judged against the Connection fields as received before
 * any is removed. 0, or -1 when out of memory. */
static int drop_hop_by_hop(struct http_fields *f)
{
    bool on_stack[HTTP_EXCHANGE_FIELDS];
    bool *drop = f->num <= HTTP_EXCHANGE_FIELDS ? on_stack : calloc(f->num, sizeof(*drop));
    bool named = http_connection_names_others(f);
    uint32_t kept = 0;

    if (drop == NULL)
        return -1;
    for (uint32_t i = 0; i < f->num; i++) {
        const char *name = http_field_name(f, i);
        drop[i] = http_is_hop_by_hop(name, f->v[i].name_len) ||
                  (named && http_connection_names(f, name, f->v[i].name_len));
    }
    for (uint32_t i = 0; i < f->num; i++)
        if (!drop[i])
            f->v[kept++] = f->v[i];
    f->num = kept;
    if (drop != on_stack)
        free(drop);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct h1_response *r = resp_of(p);
    struct http_exchange *x = r->x;
    int status = p->status_code;

    /* RFC 9112 4: a status code is three digits. llhttp 8 takes one or
     * two as well ("HTTP/1.1 10 OK"), which would pass on as a 1xx. */
    if (status < 100)
        return -1;
    x->resp.status = status;
    x->resp.close = !llhttp_should_keep_alive(p);
    if (drop_hop_by_hop(&x->resp.fields) != 0) {
        r->out_of_memory = true;
        return -1;
    }
    r->last_was_value = false;
    if (status < 200 && status != 101) {
        x->front->response_head(x);
        return 0;
    }
    if (status == 425 && r->may_retry_425) {
        /* Too Early, for a request sent before the handshake completed:
         * the owner's to send again once it has (RFC 8470 5.2). The client
         * never sees this answer. */
        r->too_early = true;
        return 1; /* its body, if any, is skipped */
    }
    x->resp_final = true;
    r->in_body = true;
    x->resp.content_length = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED)
                                 ? (int64_t)p->content_length
                                 : -1;
    if (status == 101) {
        /* An upgrade nobody asked for, or one without Upgrade and
         * Connection: upgrade (RFC 9110 7.8), which llhttp would not stop
         * at: it would parse what follows as more responses. */
        if (!x->req.websocket || !p->upgrade)
            return -1;
        return 1; /* no body (RFC 9110 15.2): llhttp stops, HPE_PAUSED_UPGRADE */
    }
    x->front->response_head(x);
    /* A response to HEAD has no body, whatever its fields say. */
    return strcmp(x->req.method, "HEAD") == 0 ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct h1_response *r = resp_of(p);
    struct http_exchange *x = r->x;
    if ((x->resp_body == NULL && (x->resp_body = evbuffer_new()) == NULL) ||
        evbuffer_add(x->resp_body, at, len) != 0) {
        r->out_of_memory = true;
        return -1;
    }
    r->data_added = true;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct h1_response *r = resp_of(p);
    struct http_exchange *x = r->x;

    if (r->too_early)
        return HPE_PAUSED;
    if (!x->resp_final)
        return 0; /* a 1xx: the final response follows */
    if (x->resp.status == 101)
        return 0;
    x->resp_done = true;
    r->reusable = llhttp_should_keep_alive(p);
    r->data_added = true;
    /* Anything after the response is not ours to read. */
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void h1_response_init(struct h1_response *r, struct http_exchange *x)
{
    memset(r, 0, sizeof(*r));
    llhttp_init(&r->parser, HTTP_RESPONSE, &parser_settings);
    r->parser.data = r;
    r->x = x;
}

enum h1_resp_result h1_response_parse(struct h1_response *r, const uint8_t *buf, size_t len,
                                      const uint8_t **out_rest)
{
    struct http_exchange *x = r->x;

    r->data_added = false;
    llhttp_errno_t err = llhttp_execute(&r->parser, (const char *)buf, len);
    if (r->too_early)
        return H1_RESP_TOO_EARLY;
    if (err == HPE_OK || err == HPE_PAUSED) {
        if (err == HPE_PAUSED && (const uint8_t *)llhttp_get_error_pos(&r->parser) != buf + len)
            r->reusable = false; /* bytes after the response */
        if (r->data_added)
            x->front->response_data(x);
        return H1_RESP_OK;
    }
    if (err == HPE_PAUSED_UPGRADE && x->resp.status == 101) {
        *out_rest = (const uint8_t *)llhttp_get_error_pos(&r->parser);
        return H1_RESP_UPGRADED;
    }
    return H1_RESP_ERROR;
}

bool h1_response_finish(struct h1_response *r)
{
    return llhttp_finish(&r->parser) == HPE_OK && r->x->resp_done;
}

const char *h1_response_error(const struct h1_response *r)
{
    if (r->fields_too_large)
        return "response fields over 256 KiB or 1000 fields";
    const char *why = llhttp_get_error_reason(&r->parser);
    return why != NULL && why[0] != '\0' ? why : llhttp_errno_name(llhttp_get_errno(&r->parser));
}
