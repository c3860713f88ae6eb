/* config_internal: the schema machinery that config.c and config_tls.c share.
 * Private to those files (and config_http.c, config_report.c); nothing else
 * includes it.
 *
 * A mapping level is a struct schema: a table of fields (key, required,
 * handler, offset of the value in the struct being filled). cfg_apply_mapping
 * walks a mapping against its table; handlers check one value each, report
 * every problem through cfg_fail_at (which counts it) and go on, so an
 * operator sees all problems in one run. */
#ifndef TLSTERM_CONFIG_INTERNAL_H
#define TLSTERM_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>

#include "config.h"
#include "yamltree.h"

/* struct loader is the state of one config_load. */
struct loader {
    struct config *config;
    FILE *errors;
    int num_errors;
    SSL_CTX *scratch;         /* for checking cipher and group names; lazy */
    struct cfg_pos *name_pos; /* per listener: where its name is written */
};

struct field;

/* field_apply_fn checks |value| for |field| and stores it at |out|, which is
 * the struct being filled plus the field's offset. */
typedef void (*field_apply_fn)(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out);

struct field {
    const char *key;
    bool required;
    field_apply_fn apply;
    size_t offset;
    const struct schema *nested; /* for cfg_apply_nested: the mapping's schema */
};

struct schema {
    const char *name;  /* "listener", as in "listener is missing ..." */
    const char *where; /* "in listener", as in "unknown key 'x' in listener" */
    const struct field *fields;
    size_t num_fields;
};

/* Durations: at most a day, except where a key says otherwise. */
#define CFG_DAY_MS (UINT64_C(24) * 60 * 60 * 1000)

/* cfg_pos_of returns where |node| stands, for keeping in the config. */
struct cfg_pos cfg_pos_of(const struct loader *ld, const struct ynode *node);

/* cfg_fail_at reports a problem at |node| and counts it. */
void cfg_fail_at(struct loader *ld, const struct ynode *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cfg_expect returns true if |node| is of |kind|, else reports "expected
 * |noun| for 'key', got ..." and returns false. */
bool cfg_expect(struct loader *ld, const char *key, const struct ynode *node,
                enum ynode_kind kind, const char *noun);

/* cfg_parse_uint returns 0 and stores the value of the whole number |text|
 * (digits only) in |*out| if it lies from |min| to |max|; otherwise it
 * reports "invalid KEY 'TEXT'; expected an integer from MIN to MAX" at
 * |node| and returns -1. */
int cfg_parse_uint(struct loader *ld, const char *key, const struct ynode *node,
                   const char *text, uint32_t min, uint32_t max, uint32_t *out);

/* cfg_expect_text returns the text of scalar |node|, or NULL after reporting
 * that |noun| was expected. */
const char *cfg_expect_text(struct loader *ld, const char *key, const struct ynode *node,
                            const char *noun);

/* cfg_list_len returns how many items the list |node| for |key| has: a
 * non-empty sequence, or a single string when |one_ok|. It returns 0 after
 * reporting anything else. cfg_list_item reads item |i|, not yet
 * type-checked. */
size_t cfg_list_len(struct loader *ld, const char *key, const struct ynode *node, bool one_ok);
const struct ynode *cfg_list_item(const struct ynode *node, size_t i);

/* cfg_new_array returns |num| zeroed entries of |size|, or NULL after
 * reporting at |node| that memory is short. */
void *cfg_new_array(struct loader *ld, const struct ynode *node, size_t num, size_t size);

/* cfg_dup_string returns a copy of |text|, or NULL after reporting. */
char *cfg_dup_string(struct loader *ld, const struct ynode *node, const char *text);

/* cfg_relative_note writes into |out| where the relative |path| was looked
 * for, " (relative to the working directory DIR)", or "" for an absolute
 * path, and returns |out|: tlsterm resolves relative paths against the
 * directory it was started in, not the configuration file's, and a "no
 * such file" error means little without it. */
const char *cfg_relative_note(const char *path, char *out, size_t out_len);

/* cfg_apply_mapping fills |target| from |mapping| (already checked to be one)
 * with |schema|'s handlers; absent optional keys leave |target| alone. */
void cfg_apply_mapping(struct loader *ld, const struct schema *schema,
                       const struct ynode *mapping, void *target);

/* cfg_apply_nested is the handler for a key whose value is a mapping of
 * |field->nested|, filling the same struct. */
void cfg_apply_nested(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out);

/* cfg_apply_duration is the handler for a duration ("500ms", "30s", at
 * most 24h) into a uint32_t of milliseconds. */
void cfg_apply_duration(struct loader *ld, const struct field *field, const struct ynode *value,
                        void *out);

/* cfg_apply_bool is the handler for "true" or "false" into a bool. */
void cfg_apply_bool(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out);

/* Handlers of config.c that the redirect listener's schema shares: the
 * listener's name (unique), its listen addresses (none taken twice), and a
 * count from 1 to 1000000 (durations: cfg_apply_duration above). */
void cfg_apply_name(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out);
void cfg_apply_listen(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out);
void cfg_apply_max_connections(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out);

/* cfg_parse_duration_max is config_parse_duration with a cap of |max_ms|
 * (whole days), into a 64-bit result. */
int cfg_parse_duration_max(const char *text, uint64_t max_ms, uint64_t *out_ms);

/* cfg_choose returns the index of |value| in the NULL-terminated |names|, or
 * -1 after reporting the allowed names, with a "did you mean" when |value|
 * is a near miss of one ("moden", "JSON"). */
int cfg_choose(struct loader *ld, const char *key, const struct ynode *value,
               const char *const *names);

/* cfg_parse_cidr reads "10.0.0.0/8", "2001:db8::/32" or a bare address
 * into |out|. It returns 0, or -1 with what is wrong in |reason|.
 * cfg_cidr_equal compares two parsed entries. */
int cfg_parse_cidr(const char *text, struct cfg_cidr *out, char *reason, size_t reason_len);
bool cfg_cidr_equal(const struct cfg_cidr *a, const struct cfg_cidr *b);

/* ---- config_proxy.c ---- */

/* The handlers of backend.proxy_protocol (v1 or v2) and of a listener's
 * accept_proxy ({from: [CIDR...], timeout: 3s}); cfg_check_proxy_protocol
 * checks what needs several keys once a backend group's mapping
 * |group_node| is applied. */
void cfg_apply_proxy_protocol(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out);
void cfg_apply_accept_proxy(struct loader *ld, const struct field *field,
                            const struct ynode *value, void *out);
void cfg_check_proxy_protocol(struct loader *ld, const struct ynode *group_node,
                              const struct cfg_backend *group);

/* ---- config_tls.c ---- */

/* cfg_apply_tls is the handler for a listener's "tls" mapping: policy,
 * versions, suites, groups, ALPN, certificates, client_auth. |out| is the
 * struct cfg_listener. */
void cfg_apply_tls(struct loader *ld, const struct field *field, const struct ynode *value,
                   void *out);

/* cfg_apply_session_tickets is the handler for the top-level
 * "session_tickets": false, true or a mapping. |out| is the struct
 * cfg_session_tickets, already holding the defaults. */
void cfg_apply_session_tickets(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out);

/* cfg_tls_defaults sets the TLS defaults of |listener| before its mapping is
 * applied. */
void cfg_tls_defaults(struct cfg_listener *listener);

/* cfg_tls_free releases what config_tls.c allocated in |listener|. */
void cfg_tls_free(struct cfg_listener *listener);

/* ---- config_http.c ---- */

/* cfg_apply_http and cfg_apply_http2 are the handlers for a listener's
 * "http" and "http2" mappings. |out| is the struct cfg_http or struct
 * cfg_http2, already holding the defaults. */
void cfg_apply_http(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out);
void cfg_apply_http2(struct loader *ld, const struct field *field, const struct ynode *value,
                     void *out);

/* cfg_apply_max_request_header_bytes is the handler for
 * http.max_request_header_bytes: a size from 1KiB to 1MiB. */
void cfg_apply_max_request_header_bytes(struct loader *ld, const struct field *field,
                                        const struct ynode *value, void *out);

/* cfg_format_size writes |bytes| in the largest unit that holds it exactly
 * ("64KiB", "65535"), and cfg_format_duration |ms| likewise ("2s", "5m",
 * "1500ms"), into |out|; each returns |out|. For --check. */
const char *cfg_format_size(uint64_t bytes, char *out, size_t out_len);
const char *cfg_format_duration(uint32_t ms, char *out, size_t out_len);

/* config_describe_listen writes |listener|'s listen addresses, as bound
 * ("*:443" shows as its two addresses), as one "  listen: ..." line for
 * --check. */
void config_describe_listen(const struct cfg_listener *listener, FILE *out);

/* cfg_check_mode runs after |listener|'s mapping |listener_node| is applied,
 * since "mode" may follow the keys it governs. In tcp mode it refuses the
 * http-mode keys (http, http2, backend.max_connections, backend.pool and the
 * request_header, backend_response and queue timeouts) and an alpn_required
 * without alpn. In http mode it sets the default ALPN (h2, http/1.1) and
 * request_id, and refuses other ALPN protocols, backend.protocol h2 and a
 * client_cert_header without client_auth. After a bad mode it checks
 * nothing. */
void cfg_check_mode(struct loader *ld, const struct ynode *listener_node,
                    struct cfg_listener *listener);

/* ---- config_source.c ---- */

/* cfg_apply_backend_source is the handler for backend.source: "proxy"
 * (default) or "client". |out| is the enum cfg_backend_source. */
void cfg_apply_backend_source(struct loader *ld, const struct field *field,
                              const struct ynode *value, void *out);

/* cfg_check_source runs after |listener|'s mapping |listener_node| is
 * applied. With backend.source: client it refuses, at the server, a unix
 * backend server (it has no IP address to come from) and a server of a
 * family none of the listen addresses has (no client could reach it), and,
 * at the listen address, a listen address of a family no server has (its
 * clients could reach no server). */
void cfg_check_source(struct loader *ld, const struct ynode *listener_node,
                      const struct cfg_listener *listener);

/* ---- config_redirect.c ---- */

/* cfg_is_redirect says whether the listener mapping |listener_node| says
 * "mode: redirect". */
bool cfg_is_redirect(const struct ynode *listener_node);

/* cfg_redirect_listener_schema is the schema of a redirect listener: name,
 * mode, listen, redirect, max_connections, http (max_request_header_bytes
 * only) and timeouts (request_header and idle only). tls, backend, http2
 * and the other http and timeouts keys are refused, each with why. */
extern const struct schema cfg_redirect_listener_schema;

/* cfg_check_redirect reports, in file order, each key of the redirect
 * listener |mapping| (|section| "", recursing into http and timeouts) that
 * its schema refuses, at the key, with why. */
void cfg_check_redirect(struct loader *ld, const struct ynode *mapping, const char *section);

/* cfg_refuse_redirect is the handler for "redirect" on a tcp- or http-mode
 * listener: it takes nothing, and cfg_check_not_redirect, run after the
 * listener's mapping, reports the key: it needs mode: redirect. */
void cfg_refuse_redirect(struct loader *ld, const struct field *field,
                         const struct ynode *value, void *out);
void cfg_check_not_redirect(struct loader *ld, const struct ynode *listener_node);

/* cfg_apply_hsts is the handler for http.hsts: a mapping of max_age
 * (required: a duration up to 3650d, whole seconds, or 0), include_subdomains
 * and preload. |out| is the struct cfg_hsts; its value is built here. A
 * preload without include_subdomains is warned about (hstspreload.org
 * refuses it), not refused. */
void cfg_apply_hsts(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out);

/* ---- config_backend.c ---- */

/* cfg_apply_backends reads the top-level "backends" mapping (group name ->
 * group), before the listeners that name them; cfg_skip_backends is its
 * entry in the top-level schema, which does nothing. */
void cfg_apply_backends(struct loader *ld, const struct ynode *value);
void cfg_skip_backends(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out);

/* cfg_apply_listener_backend is the handler for a listener's "backend": a
 * group name of "backends" (unknown: an error) or an inline mapping of the
 * same keys, which becomes a group of its own. |out| is the struct
 * cfg_listener. */
void cfg_apply_listener_backend(struct loader *ld, const struct field *field,
                                const struct ynode *value, void *out);

/* cfg_name_inline_backend names |listener|'s inline group after the
 * listener (and its routes' inline groups "LISTENER.routeN"), once its
 * mapping |listener_node| is applied; a name that another group has
 * already (one of 'backends', or another listener's inline group) is an
 * error at the inline group's FILE:LINE:COL. */
void cfg_name_inline_backend(struct loader *ld, const struct ynode *listener_node,
                             struct cfg_listener *listener);

/* cfg_apply_routes is the handler for a listener's "routes": a sequence of
 * {sni | host and/or path_prefix, backend}; cfg_check_routes, run once the
 * listener's mode is known, refuses a route that matches nothing, one that
 * mixes kinds, sni routes outside mode tcp, host and path routes outside
 * mode http, and both kinds in one listener. cfg_routes_free releases
 * them. */
void cfg_apply_routes(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out);
void cfg_check_routes(struct loader *ld, const struct ynode *listener_node,
                      const struct cfg_listener *listener);
void cfg_routes_free(struct cfg_listener *listener);

/* cfg_backend_free releases |group|. NULL is allowed. */
void cfg_backend_free(struct cfg_backend *group);

/* ---- config_report.c ---- */

/* cfg_apply_report is the handler for the top-level "report" mapping:
 * interval, dir, keep, organization. |out| is the struct cfg_report,
 * already holding the defaults. */
void cfg_apply_report(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out);

/* cfg_apply_instance is the handler for the top-level "instance": a name of
 * CFG_INSTANCE_CHARS; |out| is a char * holding the default. */
void cfg_apply_instance(struct loader *ld, const struct field *field, const struct ynode *value,
                        void *out);

/* cfg_report_defaults sets the report defaults (interval 1h, keep 48, the
 * instance named after the host). */
void cfg_report_defaults(struct cfg_report *report);

/* cfg_report_free releases what config_report.c allocated in |report|. */
void cfg_report_free(struct cfg_report *report);

#endif
