/* http_hsts: Strict-Transport-Security (RFC 6797) on the HTTPS responses of
 * an http-mode listener with http.hsts: added to every final response that
 * lacks one, the backend's and tlsterm's own, on both fronts (h2, h1). A
 * redirect listener (plain HTTP) never sends it: RFC 6797 7.2 has browsers
 * ignore it there. */
#ifndef TLSTERM_HTTP_HSTS_H
#define TLSTERM_HTTP_HSTS_H

#include "http.h"

/* http_hsts_add adds the Strict-Transport-Security field of x's listener to
 * x->resp.fields, unless HSTS is off there or the response has the field
 * already. Call it for a final head only. It returns 0, or -1 when out of
 * memory. */
int http_hsts_add(struct http_exchange *x);

/* http_hsts_value returns the field value for the listener of |c| (e.g.
 * "max-age=31536000; includeSubDomains"), or NULL when HSTS is off: for a
 * front that writes its own head directly. */
const char *http_hsts_value(const struct conn *c);

#endif
