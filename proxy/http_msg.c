/* http_msg: header fields, messages, reasons and the exchange's lifetime
 * (http.h). */
#include "http.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "conn.h"
#include "metrics.h"

/* ---- reasons and statuses ------------------------------------------------------ */

static const struct {
    const char *name;
    int status;
} reasons[HTTP_REASON_COUNT] = {
    [HTTP_REASON_NONE] = {"", 0},
    [HTTP_REASON_BAD_REQUEST] = {"bad_request", 400},
    [HTTP_REASON_AUTHORITY_MISMATCH] = {"authority_mismatch", 400},
    [HTTP_REASON_HEADER_TIMEOUT] = {"header_timeout", 408},
    [HTTP_REASON_MISDIRECTED] = {"misdirected", 421},
    [HTTP_REASON_HEADER_TOO_LARGE] = {"header_too_large", 431},
    [HTTP_REASON_UNKNOWN_CODING] = {"unknown_coding", 501},
    [HTTP_REASON_BACKEND_CONNECT_FAILED] = {"backend_connect_failed", 502},
    [HTTP_REASON_BACKEND_RESET] = {"backend_reset", 502},
    [HTTP_REASON_BACKEND_INVALID_RESPONSE] = {"backend_invalid_response", 502},
    [HTTP_REASON_BACKEND_BUSY] = {"backend_busy", 503},
    [HTTP_REASON_BACKEND_TIMEOUT] = {"backend_timeout", 504},
    [HTTP_REASON_CLIENT_ABORTED] = {"client_aborted", 499},
    [HTTP_REASON_OUT_OF_MEMORY] = {"out_of_memory", 503},
    [HTTP_REASON_BACKEND_UNAVAILABLE] = {"backend_unavailable", 503},
};

const char *http_reason_name(enum http_reason reason)
{
    return reason < HTTP_REASON_COUNT ? reasons[reason].name : "";
}

int http_reason_status(enum http_reason reason)
{
    return reason < HTTP_REASON_COUNT ? reasons[reason].status : 500;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

size_t http_error_body(int status, char *out, size_t out_len)
{
    int n = snprintf(out, out_len, "%d %s\n", status, http_status_text(status));
    return n < 0 ? 0 : (size_t)n >= out_len ? out_len - 1 : (size_t)n;
}

/* ---- header fields -------------------------------------------------------------- */

/* text_reserve makes room for |len| more bytes of text; 0 or -1. */
static int text_reserve(struct http_fields *f, size_t len)
{
    if ((size_t)f->text_len + len <= f->text_cap)
        return 0;
    if (f->text_cap == 0 && len <= f->lent_text_cap) {
        f->text = f->lent_text;
        f->text_cap = f->lent_text_cap;
        return 0;
    }
    size_t cap = f->text_cap ? f->text_cap : 256;
    while (cap < (size_t)f->text_len + len)
        cap *= 2;
    if (cap > UINT32_MAX)
        return -1;
    bool was_lent = f->text != NULL && f->text == f->lent_text;
    char *text = realloc(was_lent ? NULL : f->text, cap);
    if (text == NULL)
        return -1;
    if (was_lent)
        memcpy(text, f->lent_text, f->text_len);
    f->text = text;
    f->text_cap = (uint32_t)cap;
    return 0;
}

int http_fields_add(struct http_fields *f, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    if (f->num == f->cap && f->cap == 0 && f->lent_cap > 0) {
        f->v = f->lent_v;
        f->cap = f->lent_cap;
    } else if (f->num == f->cap) {
        uint32_t cap = f->cap ? f->cap * 2 : 16;
        bool was_lent = f->v != NULL && f->v == f->lent_v;
        struct http_field *v = realloc(was_lent ? NULL : f->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        if (was_lent)
            memcpy(v, f->lent_v, f->num * sizeof(*v));
        f->v = v;
        f->cap = cap;
    }
    if (text_reserve(f, name_len + value_len + 2) != 0)
        return -1;
    struct http_field *field = &f->v[f->num++];
    field->name = f->text_len;
    field->name_len = (uint32_t)name_len;
    memcpy(f->text + f->text_len, name, name_len);
    f->text_len += (uint32_t)name_len;
    f->text[f->text_len++] = '\0';
    field->value = f->text_len;
    field->value_len = (uint32_t)value_len;
    memcpy(f->text + f->text_len, value, value_len);
    f->text_len += (uint32_t)value_len;
    f->text[f->text_len++] = '\0';
    f->bytes += (uint32_t)(name_len + value_len);
    return 0;
}

int http_fields_extend(struct http_fields *f, bool to_name, const char *data, size_t len)
{
    if (f->num == 0)
        return -1;
    struct http_field *field = &f->v[f->num - 1];
    if (to_name) {
        /* The name is extended only before its value began: move the empty
         * value's NUL along. */
        if (field->value_len != 0 || text_reserve(f, len) != 0)
            return -1;
        field = &f->v[f->num - 1];
        memcpy(f->text + field->name + field->name_len, data, len);
        field->name_len += (uint32_t)len;
        f->text[field->name + field->name_len] = '\0';
        field->value = field->name + field->name_len + 1;
        f->text[field->value] = '\0';
        f->text_len = field->value + 1;
    } else {
        if (text_reserve(f, len) != 0)
            return -1;
        field = &f->v[f->num - 1];
        memcpy(f->text + field->value + field->value_len, data, len);
        field->value_len += (uint32_t)len;
        f->text[field->value + field->value_len] = '\0';
        f->text_len = field->value + field->value_len + 1;
    }
    f->bytes += (uint32_t)len;
    return 0;
}

int http_fields_find(const struct http_fields *f, const char *name, uint32_t from)
{
    size_t len = strlen(name);
    for (uint32_t i = from; i < f->num; i++)
        if (f->v[i].name_len == len && strcasecmp(http_field_name(f, i), name) == 0)
            return (int)i;
    return -1;
}

void http_fields_lend(struct http_fields *f, struct http_field *v, uint32_t cap, char *text,
                      uint32_t text_cap)
{
    f->lent_v = v;
    f->lent_cap = cap;
    f->lent_text = text;
    f->lent_text_cap = text_cap;
}

void http_fields_free(struct http_fields *f)
{
    if (f->v != f->lent_v)
        free(f->v);
    if (f->text != f->lent_text)
        free(f->text);
    f->v = NULL;
    f->text = NULL;
    f->num = f->cap = f->text_len = f->text_cap = f->bytes = 0;
}

bool http_name_is(const char *name, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(name, lit, len) == 0;
}

/* next_token finds the next element of the comma-separated |list| at or
 * after |*at|: false when there is none; else its bytes are |*out_start| to
 * |*out_end| (without the spaces around it) and |*at| is past it. */
static bool next_token(const char *list, size_t len, size_t *at, size_t *out_start,
                       size_t *out_end)
{
    size_t i = *at;
    while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
        i++;
    if (i == len)
        return false;
    size_t start = i;
    while (i < len && list[i] != ',')
        i++;
    size_t end = i;
    while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
        end--;
    *at = i;
    *out_start = start;
    *out_end = end;
    return true;
}

/* token_list_has is http_token_has for a token of |token_len| bytes. */
static bool token_list_has(const char *list, size_t len, const char *token, size_t token_len)
{
    size_t at = 0, start, end;
    while (next_token(list, len, &at, &start, &end))
        if (end - start == token_len && strncasecmp(list + start, token, token_len) == 0)
            return true;
    return false;
}

bool http_token_has(const char *list, size_t len, const char *token)
{
    return token_list_has(list, len, token, strlen(token));
}

bool http_is_hop_by_hop(const char *name, size_t len)
{
    /* By length first: most fields are judged by one comparison or none. */
    switch (len) {
    case 2:
        return strncasecmp(name, "te", 2) == 0;
    case 7:
        return strncasecmp(name, "upgrade", 7) == 0;
    case 10:
        return strncasecmp(name, "connection", 10) == 0 ||
               strncasecmp(name, "keep-alive", 10) == 0;
    case 14:
        return strncasecmp(name, "http2-settings", 14) == 0;
    case 16:
        return strncasecmp(name, "proxy-connection", 16) == 0;
    case 17:
        return strncasecmp(name, "transfer-encoding", 17) == 0;
    default:
        return false;
    }
}

bool http_connection_names_others(const struct http_fields *f)
{
    for (int i = http_fields_find(f, "connection", 0); i >= 0;
         i = http_fields_find(f, "connection", (uint32_t)i + 1)) {
        const char *list = http_field_value(f, (uint32_t)i);
        size_t at = 0, start, end;
        while (next_token(list, f->v[i].value_len, &at, &start, &end))
            if (!http_is_hop_by_hop(list + start, end - start))
                return true;
    }
    return false;
}

bool http_connection_names(const struct http_fields *f, const char *name, size_t len)
{
    for (int i = http_fields_find(f, "connection", 0); i >= 0;
         i = http_fields_find(f, "connection", (uint32_t)i + 1))
        if (token_list_has(http_field_value(f, (uint32_t)i), f->v[i].value_len, name, len))
            return true;
    return false;
}

/* ---- messages and exchanges ------------------------------------------------------- */

void http_request_free(struct http_request *req)
{
    free(req->method);
    free(req->target);
    free(req->authority);
    http_fields_free(&req->fields);
}

void http_response_free(struct http_response *resp)
{
    http_fields_free(&resp->fields);
    http_fields_free(&resp->trailers);
}

struct http_exchange *http_exchange_new(struct conn *c, const struct http_front_ops *front,
                                        void *front_data)
{
    struct http_exchange *x = malloc(sizeof(*x));
    if (x == NULL)
        return NULL;
    /* The lent field storage at the end is written before it is read. */
    memset(x, 0, offsetof(struct http_exchange, req_first_fields));
    http_fields_lend(&x->req.fields, x->req_first_fields, HTTP_EXCHANGE_FIELDS,
                     x->req_first_text, HTTP_EXCHANGE_FIELD_TEXT);
    http_fields_lend(&x->resp.fields, x->resp_first_fields, HTTP_EXCHANGE_FIELDS,
                     x->resp_first_text, HTTP_EXCHANGE_FIELD_TEXT);
    x->c = c;
    x->front = front;
    x->front_data = front_data;
    x->req.content_length = -1;
    x->resp.content_length = -1;
    x->started_us = metrics_clock_us();
    x->early_data = c->handshake_completing;
    return x;
}

void http_exchange_free(struct http_exchange *x)
{
    if (x == NULL)
        return;
    if (x->up != NULL)
        http_upstream_release(x, true);
    http_request_free(&x->req);
    http_response_free(&x->resp);
    if (x->req_body != NULL)
        evbuffer_free(x->req_body);
    if (x->resp_body != NULL)
        evbuffer_free(x->resp_body);
    free(x->request_id);
    free(x);
}

bool http_may_send_early(const struct http_exchange *x)
{
    const char *m = x->req.method;
    return m != NULL &&
           (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0);
}

bool http_move_bytes(struct evbuffer *src, struct evbuffer *dst, size_t n)
{
    size_t before = evbuffer_get_length(dst);
    int moved = evbuffer_remove_buffer(src, dst, n);
    return moved >= 0 && (size_t)moved == n && evbuffer_get_length(dst) == before + n;
}
