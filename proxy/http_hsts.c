/* http_hsts: Strict-Transport-Security on HTTPS responses. See http_hsts.h. */
#include "http_hsts.h"

#include <string.h>

#include "conn.h"

const char *http_hsts_value(const struct conn *c)
{
    /* Only ever set on an http-mode listener (config_redirect.c). */
    return c->client.ssl != NULL ? c->cfg->http.hsts.value : NULL;
}

int http_hsts_add(struct http_exchange *x)
{
    const char *value = http_hsts_value(x->c);

    if (value == NULL || http_fields_find(&x->resp.fields, "strict-transport-security", 0) >= 0)
        return 0;
    return http_fields_add(&x->resp.fields, "Strict-Transport-Security", 25, value,
                           strlen(value));
}
