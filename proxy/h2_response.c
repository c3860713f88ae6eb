/* h2_response: the HTTP/2 front's responses (heads, bodies pulled by
 * nghttp2 from the exchange's buffer, trailers, tlsterm's own answers) and
 * the exchange's front operations, which only submit to the session and
 * schedule the connection (http.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include "h2_front.h"
#include "http_hsts.h"

/* ---- responses ------------------------------------------------------------------ */

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *source, void *user);

/* submit_head submits x->resp's head on |st|: informational, or final with
 * a body provider when a body may follow. It returns 0, -1 when out of
 * memory, or nghttp2's error. */
static int submit_head(struct h2_stream *st, bool final)
{
    struct http_exchange *x = st->x;
    /* First: it may add a field to those counted below. */
    if (final && http_hsts_add(x) != 0)
        return -1;
    const struct http_fields *fields = &x->resp.fields;
    /* nghttp2 copies the fields it is given: a common head needs no heap. */
    nghttp2_nv nva_stack[32];
    char names_stack[2048];
    nghttp2_nv *nva = fields->num + 2 <= 32 ? nva_stack : calloc(fields->num + 2, sizeof(*nva));
    char *names =
        fields->text_len < sizeof(names_stack) ? names_stack : malloc(fields->text_len + 1);
    char status[8];
    size_t n = 0;
    int rc = -1;

    if (nva == NULL || names == NULL)
        goto out;
    if (x->resp.status >= 100 && x->resp.status <= 999) {
        status[0] = (char)('0' + x->resp.status / 100);
        status[1] = (char)('0' + x->resp.status / 10 % 10);
        status[2] = (char)('0' + x->resp.status % 10);
        status[3] = '\0';
    } else {
        snprintf(status, sizeof(status), "%d", x->resp.status);
    }
    nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, strlen(status),
                            NGHTTP2_NV_FLAG_NONE};
    for (uint32_t i = 0; i < fields->num; i++) {
        /* HTTP/2 field names are lower-case (RFC 9113 8.2.1). */
        char *name = names + fields->v[i].name;
        const char *from = http_field_name(fields, i);
        for (uint32_t k = 0; k < fields->v[i].name_len; k++)
            name[k] = (char)tolower((unsigned char)from[k]);
        nva[n++] =
            (nghttp2_nv){(uint8_t *)name, (uint8_t *)http_field_value(fields, i),
                         fields->v[i].name_len, fields->v[i].value_len, NGHTTP2_NV_FLAG_NONE};
    }
    if (!final) {
        rc = nghttp2_submit_headers(st->front->session, NGHTTP2_FLAG_NONE, st->id, NULL, nva, n,
                                    NULL);
        goto out;
    }
    int status_code = x->resp.status;
    bool no_body =
        strcmp(x->req.method, "HEAD") == 0 || status_code == 204 || status_code == 304 ||
        (x->resp_done && (x->resp_body == NULL || evbuffer_get_length(x->resp_body) == 0) &&
         x->resp.trailers.num == 0);
    nghttp2_data_provider provider = {.source.ptr = st, .read_callback = read_body};
    rc =
        nghttp2_submit_response(st->front->session, st->id, nva, n, no_body ? NULL : &provider);
    st->head_sent = true;
out:
    if (nva != nva_stack)
        free(nva);
    if (names != names_stack)
        free(names);
    return rc;
}

/* reset_failed resets |st|, whose response head could not be submitted
 * (|rc|: submit_head's result, or -1 when the answer could not be built).
 * Short of memory, the access log says so rather than client_aborted. */
static void reset_failed(struct h2_stream *st, int rc)
{
    if (rc == -1 || rc == NGHTTP2_ERR_NOMEM)
        st->x->reason = HTTP_REASON_OUT_OF_MEMORY;
    nghttp2_submit_rst_stream(st->front->session, NGHTTP2_FLAG_NONE, st->id,
                              NGHTTP2_INTERNAL_ERROR);
}

/* answer makes tlsterm answer |st| itself with x->reason's status. */
void h2_answer(struct h2_stream *st)
{
    struct http_exchange *x = st->x;
    char body[64];
    char length[24];
    size_t len = http_error_body(http_reason_status(x->reason), body, sizeof(body));

    st->answered = true;
    http_response_free(&x->resp);
    x->resp.status = http_reason_status(x->reason);
    snprintf(length, sizeof(length), "%zu", len);
    if (x->resp_body != NULL)
        evbuffer_drain(x->resp_body, evbuffer_get_length(x->resp_body));
    else
        x->resp_body = evbuffer_new();
    if (x->resp_body == NULL || evbuffer_add(x->resp_body, body, len) != 0 ||
        http_fields_add(&x->resp.fields, "content-type", 12, "text/plain; charset=utf-8", 25) !=
            0 ||
        http_fields_add(&x->resp.fields, "content-length", 14, length, strlen(length)) != 0) {
        reset_failed(st, -1);
        return;
    }
    x->resp_final = x->resp_done = true;
    int rc = submit_head(st, true);
    if (rc != 0)
        reset_failed(st, rc);
}

void h2_queue_taken(struct h2_stream *st)
{
    if (st->taken_queued)
        return;
    st->taken_queued = true;
    st->taken_next = st->front->taken;
    st->front->taken = st;
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct h2_stream *st = source->ptr;
    struct http_exchange *x = st->x;
    size_t avail = x->resp_body != NULL ? evbuffer_get_length(x->resp_body) : 0;
    int n = 0;

    if (avail > 0) {
        n = evbuffer_remove(x->resp_body, buf, len < avail ? len : avail);
        if (n < 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        x->resp_bytes += (size_t)n;
        if (evbuffer_get_length(x->resp_body) == 0) {
            evbuffer_free(x->resp_body);
            x->resp_body = NULL;
        }
        if (x->up != NULL)
            h2_queue_taken(st);
    }
    if (x->resp_body == NULL && x->resp_done) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (x->resp.trailers.num > 0 && !st->answered) {
            const struct http_fields *t = &x->resp.trailers;
            nghttp2_nv *nva = calloc(t->num, sizeof(*nva));
            char *names = malloc(t->text_len + 1);
            if (nva != NULL && names != NULL) {
                size_t k = 0;
                for (uint32_t i = 0; i < t->num; i++) {
                    const char *name = http_field_name(t, i);
                    if (http_is_hop_by_hop(name, t->v[i].name_len) ||
                        http_name_is(name, t->v[i].name_len, "content-length"))
                        continue;
                    char *lower = names + t->v[i].name;
                    for (uint32_t j = 0; j < t->v[i].name_len; j++)
                        lower[j] = (char)tolower((unsigned char)name[j]);
                    nva[k++] =
                        (nghttp2_nv){(uint8_t *)lower, (uint8_t *)http_field_value(t, i),
                                     t->v[i].name_len, t->v[i].value_len, NGHTTP2_NV_FLAG_NONE};
                }
                if (k > 0 && nghttp2_submit_trailer(session, id, nva, k) == 0)
                    *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            }
            free(nva);
            free(names);
        }
        if (!x->req_done)
            /* RFC 9113 8.1: a complete response ends the request too. */
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        return n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return n;
}

static void resume_stream(struct h2_stream *st)
{
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->front->session, st->id);
    }
    h2_schedule(st->front);
}

/* ---- the exchange's front operations ------------------------------------------------ */

/* detached_changed handles news from the upstream of a detached stream:
 * run() drops its bytes and frees it once the upstream is done. */
bool h2_detached_changed(struct h2_stream *st)
{
    if (!st->detached)
        return false;
    h2_queue_taken(st);
    h2_schedule(st->front);
    return true;
}

static void op_response_head(struct http_exchange *x)
{
    struct h2_stream *st = x->front_data;
    if (h2_detached_changed(st) || x->resp.status == 101)
        return; /* never asked for over HTTP/2 */
    int rc = submit_head(st, x->resp_final);
    if (rc != 0)
        reset_failed(st, rc);
    h2_schedule(st->front);
}

static void op_response_data(struct http_exchange *x)
{
    if (!h2_detached_changed(x->front_data))
        resume_stream(x->front_data);
}

static void op_request_body_taken(struct http_exchange *x, size_t n)
{
    struct h2_stream *st = x->front_data;
    if (h2_detached_changed(st))
        return;
    nghttp2_session_consume_stream(st->front->session, st->id, n);
    h2_schedule(st->front);
}

static void op_failed(struct http_exchange *x)
{
    struct h2_stream *st = x->front_data;
    if (h2_detached_changed(st))
        return;
    if (st->head_sent)
        nghttp2_submit_rst_stream(st->front->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
    else
        h2_answer(st);
    h2_schedule(st->front);
}

static void op_upgraded(struct http_exchange *x)
{
    /* HTTP/2 requests never ask for an upgrade (RFC 8441 is not offered). */
    op_failed(x);
}

const struct http_front_ops h2_front_ops = {
    .response_head = op_response_head,
    .response_data = op_response_data,
    .request_body_taken = op_request_body_taken,
    .failed = op_failed,
    .upgraded = op_upgraded,
};
