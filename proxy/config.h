/* config: the YAML configuration file, validated against a schema, as an
 * immutable struct config.
 *
 * config_load reads the file, applies the schema and reports every problem it
 * finds as "FILE:LINE:COL: message", so an operator fixes a file in one pass.
 * It checks syntax and values (addresses, durations, versions, cipher and
 * group names, files readable); loading certificates and keys is tls_ctx's
 * job, which reports through cfg_error with the positions kept here. */
#ifndef TLSTERM_CONFIG_H
#define TLSTERM_CONFIG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "log.h"
#include "net.h"
#include "route.h"

/* struct cfg_pos is where a value stands in a file, for error messages. |file|
 * points at the owning config's |file| string. Lines and columns count from
 * 1. */
struct cfg_pos {
    const char *file;
    int line;
    int col;
};

/* struct cfg_listen_addr is one "listen" entry: the resolved address and where
 * it was written. */
struct cfg_listen_addr {
    struct net_addr addr;
    struct cfg_pos pos;
};

/* struct cfg_cert is one certificates entry: a PEM chain (leaf first) and its
 * private key. */
struct cfg_cert {
    char *cert_path;
    char *key_path;
    char *ocsp_path; /* DER OCSP response to staple; NULL: none */
    struct cfg_pos cert_pos;
    struct cfg_pos key_pos;
    struct cfg_pos ocsp_pos;
};

/* enum cfg_policy is a listener's TLS policy preset (Mozilla's names). */
enum cfg_policy {
    CFG_POLICY_INTERMEDIATE, /* TLS 1.2 + 1.3, ECDHE + AEAD suites (default) */
    CFG_POLICY_MODERN,       /* TLS 1.3 only */
    CFG_POLICY_CUSTOM,       /* min_version, max_version, ciphers as given */
};

enum cfg_client_auth_mode {
    CFG_CLIENT_AUTH_NONE,
    CFG_CLIENT_AUTH_OPTIONAL,
    CFG_CLIENT_AUTH_REQUIRED,
};

/* struct cfg_client_auth is a listener's client-certificate (mTLS) policy. */
struct cfg_client_auth {
    enum cfg_client_auth_mode mode;
    char *ca_path;  /* PEM bundle of trusted CAs; required unless mode is none */
    char *crl_path; /* PEM CRLs; NULL: no revocation check */
    uint32_t depth; /* maximum verification depth */
    struct cfg_pos ca_pos;
    struct cfg_pos crl_pos;
};

/* struct cfg_session_tickets configures stateless session tickets for the
 * whole process (a fleet shares keys through |key_file|). */
struct cfg_session_tickets {
    bool enabled;         /* default true; "session_tickets: false" disables */
    uint32_t rotate_ms;   /* a new encryption key this often (default 1h) */
    uint32_t lifetime_ms; /* tickets stay valid this long (default 12h) */
    char *key_file;       /* keys shared by instances; NULL: generated here */
    struct cfg_pos key_file_pos;
};

/* Caps of struct cfg_candidate_policy: BoringSSL knows fewer TLS 1.2 suites,
 * and config accepts four groups, each listed once. */
enum { CFG_CANDIDATE_MAX_SUITES = 32, CFG_CANDIDATE_MAX_GROUPS = 4 };

/* struct cfg_candidate_policy is a listener's "tls.report_only": a policy
 * that is evaluated against every ClientHello but not enforced (see
 * report_only.h). It is checked with the same rules as the enforced policy
 * and holds no pointers: the lists are IANA code points in server
 * preference order. */
struct cfg_candidate_policy {
    bool enabled;
    enum cfg_policy policy;
    bool allow_legacy;
    uint16_t min_version; /* effective, after the preset */
    uint16_t max_version;
    uint16_t suites[CFG_CANDIDATE_MAX_SUITES]; /* TLS 1.2 (and older) suites */
    uint8_t num_suites;
    uint16_t groups[CFG_CANDIDATE_MAX_GROUPS];
    uint8_t num_groups;
};

/* enum cfg_backend_protocol is what a listener's backend servers speak. */
enum cfg_backend_protocol {
    CFG_BACKEND_HTTP1, /* http/1.1 (default) */
    CFG_BACKEND_H2,    /* h2: the backend speaks HTTP/2 itself over the tcp-mode stream */
};

/* enum cfg_backend_source is the address backend connections come from. */
enum cfg_backend_source {
    CFG_BACKEND_SOURCE_PROXY,  /* the proxy's own address, as routing picks it (default) */
    CFG_BACKEND_SOURCE_CLIENT, /* the client's address (IP_TRANSPARENT; CAP_NET_ADMIN) */
};

/* enum cfg_balance is how a backend group picks a server. */
enum cfg_balance {
    CFG_BALANCE_ROUND_ROBIN, /* weighted, one cursor per group shared by all workers (default) */
    CFG_BALANCE_LEAST_CONN,  /* fewest active connections per unit of weight */
    CFG_BALANCE_RANDOM_TWO,  /* the less loaded of two picked at random */
};

/* enum cfg_resolve is what a host name in a server address becomes. */
enum cfg_resolve {
    CFG_RESOLVE_ALL,   /* one server per address (default) */
    CFG_RESOLVE_FIRST, /* the first address only */
};

enum cfg_check_type {
    CFG_CHECK_NONE, /* no active check (default) */
    CFG_CHECK_TCP,  /* a connect that succeeds within the timeout */
    CFG_CHECK_HTTP, /* GET |path| answered with a status in [expect_min, expect_max] */
};

/* struct cfg_health_check is a group's health.check. */
struct cfg_health_check {
    enum cfg_check_type type;
    char *path;           /* http: the request target (default "/") */
    uint32_t interval_ms; /* default 2s */
    uint32_t timeout_ms;  /* default 1s */
    uint32_t rise;        /* successes in a row that bring a down server up (default 2) */
    uint32_t fall;        /* failures in a row that take an up server down (default 3) */
    uint16_t expect_min;  /* http: default 200-399 */
    uint16_t expect_max;
};

/* CFG_GROUP_MAX_SERVERS caps a group's servers, after resolution;
 * CFG_BACKEND_RETRIES_MAX caps "retries". */
#define CFG_GROUP_MAX_SERVERS 64
#define CFG_BACKEND_RETRIES_MAX 10

/* struct cfg_server is one entry of a group's servers: an address as
 * written and what it resolved to when the configuration loaded. */
struct cfg_server {
    char *address; /* "host:port", "[v6]:port" or "unix:/path", as written */
    struct cfg_pos pos;
    uint32_t weight; /* 1 to 256 (default 1) */
    bool backup;     /* used only while no primary server is up */
    bool is_name;    /* |address| names a host: re-resolved every resolve_interval */
    char *host;      /* is_name: the host and the port, for getaddrinfo */
    char *port;
    struct net_addr *addrs; /* resolved at load; one for a literal address */
    size_t num_addrs;
};

/* struct cfg_backend is a backend group: a named entry of the top-level
 * "backends", or a listener's inline "backend" mapping (named after its
 * listener). Both have the same keys. The runtime state of its servers
 * (health, connection counts) lives in backend_group.h, outside the
 * configuration. */
struct cfg_backend {
    char *name;
    bool is_inline;
    size_t index; /* in config->backends */
    struct cfg_pos pos;
    struct cfg_server *servers;
    size_t num_servers;
    enum cfg_backend_protocol protocol;
    uint32_t max_connections;      /* per server and worker; 0: unlimited */
    uint32_t pool_idle_timeout_ms; /* pool.idle_timeout (default 2s) */
    uint32_t pool_max_idle;        /* pool.max_idle per worker and server (64) */
    enum cfg_balance balance;
    uint32_t retries;             /* connects tried on another server (default 2) */
    uint32_t resolve_interval_ms; /* default 30s */
    enum cfg_resolve resolve;
    struct cfg_health_check check;
    uint32_t passive_failures;    /* consecutive connect failures; 0: off (default) */
    uint32_t passive_cooldown_ms; /* out of rotation this long (default 10s) */
    bool panic;                   /* all down by checks: use them all (default true) */
    enum cfg_backend_source source; /* source (config_source.c) */
    uint8_t proxy_protocol;         /* proxy_protocol: 0 off (default), 1 or 2 (config_proxy.c) */
    bool proxy_protocol_unique_id;  /* v2 UNIQUE_ID TLV: the client connection's id */
    bool proxy_protocol_crc32c;     /* v2 CRC32C TLV */
};

/* enum cfg_mode is what a listener does once a handshake is done. */
enum cfg_mode {
    CFG_MODE_TCP,      /* bytes forwarded unchanged (default) */
    CFG_MODE_HTTP,     /* HTTP/2 and HTTP/1.1 terminated, HTTP/1.1 to the backend */
    CFG_MODE_REDIRECT, /* plain HTTP/1.1, every request redirected to https:// */
};

/* struct cfg_redirect is a redirect listener's "redirect" section. */
struct cfg_redirect {
    uint16_t status; /* 301, 302, 307 or 308 (default) */
    uint16_t port;   /* of the https:// target; 443 (default) is left out of it */
};

/* struct cfg_hsts is an http-mode listener's "http.hsts" (RFC 6797). */
struct cfg_hsts {
    uint64_t max_age_s;
    bool include_subdomains;
    bool preload;
    char *value; /* the Strict-Transport-Security field value; NULL: off (default) */
};

/* struct cfg_cidr is one trusted_proxies entry: an address and prefix. */
struct cfg_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; 4 bytes used for AF_INET */
    uint8_t prefix;   /* 0..32 or 0..128 */
};

/* cfg_cidr_contains says whether |cidr| holds the address |addr| (network
 * byte order) of |family|. */
bool cfg_cidr_contains(const struct cfg_cidr *cidr, int family, const uint8_t *addr);

/* struct cfg_accept_proxy is a listener's "accept_proxy": connections from
 * |from| must start with a PROXY protocol header (v1 or v2), whose source
 * address replaces the peer's; all others are refused. */
struct cfg_accept_proxy {
    struct cfg_cidr *from; /* NULL: off (default) */
    size_t num_from;
    uint32_t timeout_ms; /* until the header is complete (default 3s) */
};

/* struct cfg_http is a listener's "http" section (http mode only). */
struct cfg_http {
    bool x_forwarded;                 /* X-Forwarded-For/-Proto/-Host/-Port (default true) */
    bool forwarded;                   /* RFC 7239 Forwarded (default false) */
    struct cfg_cidr *trusted_proxies; /* whose incoming forwarding fields are kept */
    size_t num_trusted_proxies;
    char *request_id;                  /* header added when absent; NULL: none */
    bool client_cert_header;           /* X-Forwarded-Client-Cert (XFCC) with mTLS */
    uint32_t max_request_header_bytes; /* default 64 KiB */
    struct cfg_hsts hsts;              /* added to HTTPS responses that lack it */
};

/* struct cfg_http2 is a listener's "http2" section: what its SETTINGS say
 * and the attack limits of its HTTP/2 front (h2_limits.h). */
struct cfg_http2 {
    uint32_t max_concurrent_streams;     /* default 100 */
    uint32_t initial_window;             /* stream window, default 256 KiB */
    uint32_t connection_window;          /* default 1 MiB */
    uint32_t header_table_size;          /* HPACK dynamic table, both ways: default 4096 */
    uint32_t reset_burst;                /* client RST_STREAMs at once: default 1000 */
    uint32_t reset_rate;                 /* ... refilled per second: default 33 */
    uint32_t glitch_burst;               /* glitches at once: default 1000 */
    uint32_t glitch_rate;                /* ... refilled per second: default 330 */
    uint32_t max_continuations;          /* CONTINUATION frames per header block: default 8 */
    uint32_t max_streams_per_connection; /* over a connection's life: default 10000 */
    uint32_t max_outbound_acks;          /* SETTINGS/PING ACKs queued: default 1000 */
    uint32_t max_outbound_frames;        /* frames queued after a read: default 10000 */
    uint32_t settings_timeout_ms;        /* our SETTINGS unacknowledged: default 10s */
    uint32_t write_timeout_ms;           /* no progress toward a client: default 30s */
};

/* CFG_HTTP2_DEFAULTS initializes a struct cfg_http2 with the defaults above
 * (README's http2 keys); the loader and the HTTP/2 fuzz target share it. */
#define CFG_HTTP2_DEFAULTS                                                                  \
    {.max_concurrent_streams = 100,                                                        \
     .initial_window = 256 * 1024,                                                         \
     .connection_window = 1024 * 1024,                                                     \
     .header_table_size = 4096,                                                            \
     .reset_burst = 1000,                                                                  \
     .reset_rate = 33,                                                                     \
     .glitch_burst = 1000,                                                                 \
     .glitch_rate = 330,                                                                   \
     .max_continuations = 8,                                                               \
     .max_streams_per_connection = 10000,                                                  \
     .max_outbound_acks = 1000,                                                            \
     .max_outbound_frames = 10000,                                                         \
     .settings_timeout_ms = 10 * 1000,                                                     \
     .write_timeout_ms = 30 * 1000}

struct cfg_listener {
    char *name;
    struct cfg_pos pos; /* the listener's mapping, for "defined here" notes */

    struct cfg_listen_addr *listen;
    size_t num_listen;

    struct cfg_cert *certs;
    size_t num_certs;

    enum cfg_policy policy;
    bool allow_legacy;    /* permits TLS 1.0/1.1 and non-AEAD/non-ECDHE suites (warned) */
    uint16_t min_version; /* effective, after the preset: TLS1_VERSION .. TLS1_3_VERSION */
    uint16_t max_version;
    char *ciphers; /* TLS 1.2 suites, colon-separated, in preference order */
    char *groups;  /* colon-separated, in preference order */
    uint8_t *alpn; /* ALPN protocols in server preference order, wire format
                      (length-prefixed); NULL: no ALPN */
    size_t alpn_len;
    bool alpn_required;         /* no overlap fails the handshake (no_application_protocol) */
    bool sni_strict;            /* unknown or missing SNI fails with unrecognized_name */
    bool allow_expired;         /* an expired certificate only warns */
    uint64_t expiry_warning_ms; /* warn when a certificate expires sooner (default 21d) */
    bool early_data;            /* accept TLS 1.3 0-RTT data (default false) */
    struct cfg_client_auth client_auth;
    struct cfg_candidate_policy report_only; /* tls.report_only; off unless set */

    /* The backend group: a named one or the listener's inline one, owned
     * by config->backends either way. Read it through cfg_listener_backend. */
    struct cfg_backend *backend;
    /* Routes, tried in order before |backend| (the default): the first
     * that matches chooses the group (route.h; config_backend.c reads them). */
    struct cfg_route *routes;
    size_t num_routes;
    struct cfg_accept_proxy accept_proxy;
    enum cfg_mode mode;
    struct cfg_http http;
    struct cfg_http2 http2;
    struct cfg_redirect redirect; /* mode redirect only */

    uint32_t handshake_timeout_ms;
    uint32_t connect_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t half_closed_timeout_ms;      /* inactivity once one direction has ended */
    uint32_t request_header_timeout_ms;   /* http: until a request's headers are complete */
    uint32_t backend_response_timeout_ms; /* http: request body end to response headers */
    uint32_t queue_timeout_ms;            /* http: waiting for a backend connection slot */
    uint32_t max_connections;
};

/* struct cfg_admin is the admin endpoint (/healthz, /readyz, /metrics,
 * /report), off unless configured. */
struct cfg_admin {
    bool enabled;
    struct net_addr addr;
    bool allow_public; /* permits an address other hosts can reach */
    struct cfg_pos listen_pos;
};

/* enum cfg_seccomp is "security.seccomp" (seccomp_filter.h). */
enum cfg_seccomp {
    CFG_SECCOMP_OFF,  /* false (default): no filter */
    CFG_SECCOMP_KILL, /* true: a call outside the allow-list kills the process */
    CFG_SECCOMP_LOG,  /* log: such a call is allowed and logged by the kernel */
};

/* struct cfg_security is the top-level "security" map. */
struct cfg_security {
    enum cfg_seccomp seccomp;
};

/* CFG_INSTANCE_CHARS are the bytes an instance name may hold (1 to
 * CFG_INSTANCE_MAX of them): it goes into file names and a Prometheus
 * label. */
#define CFG_INSTANCE_CHARS                                                                     \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
#define CFG_INSTANCE_MAX 64

/* struct cfg_report is the TLS failure report (report.h). */
struct cfg_report {
    uint32_t interval_ms; /* one window; default 1h, at least 1s */
    char *dir;            /* reports are written here; NULL: not written */
    uint32_t keep;        /* report files kept in |dir| (default 48) */
    char *organization;   /* "organization-name" (default "tlsterm") */
    /* The top-level "instance": this process's name in report ids, report
     * file names, the started line and tlsterm_build_info. Default: the host
     * name (made to fit CFG_INSTANCE_CHARS); NULL only when out of memory. */
    char *instance;
    struct cfg_pos dir_pos;
};

struct config {
    char *file; /* the path as given; every cfg_pos.file points here */
    enum log_format log_format;
    enum log_level log_level;
    uint32_t drain_timeout_ms;
    /* drain_delay: after a stop signal, /readyz is 503 and the listeners
     * still accept for this long before the drain starts, so a load
     * balancer's health check takes the instance out first; 0: none. */
    uint32_t drain_delay_ms;
    char *user;               /* drop privileges to this user after binding; NULL: stay */
    uint32_t num_workers;     /* worker threads; 0 means "auto": one per CPU */
    uint32_t max_connections; /* over all listeners and workers */
    bool reload_on_change;    /* reload when a certificate, key or OCSP file changes */
    uint32_t reload_poll_ms;  /* with reload_on_change, also poll the files; 0: off */
    bool log_access;          /* log.access: one "request" line per HTTP request */
    struct cfg_admin admin;
    struct cfg_report report;
    struct cfg_security security;
    /* handshake_failed lines: per reason and worker, a token bucket of
     * |failure_log_burst| lines refilled at |failure_log_rate| per second;
     * what it drops is summed up every |failure_log_summary_ms|. */
    uint32_t failure_log_rate;
    uint32_t failure_log_burst;
    uint32_t failure_log_summary_ms;
    struct cfg_session_tickets session_tickets;

    struct cfg_listener *listeners;
    size_t num_listeners;

    /* Every backend group: the named ones of "backends" in file order, then
     * the listeners' inline ones. Each is owned here. */
    struct cfg_backend **backends;
    size_t num_backends;
};

/* cfg_listener_backend returns |listener|'s backend group. */
static inline const struct cfg_backend *cfg_listener_backend(const struct cfg_listener *listener)
{
    return listener->backend;
}

/* Defaults, documented in conf/tlsterm.yaml. */
#define CONFIG_DEFAULT_CIPHERS                                                                 \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CONFIG_DEFAULT_GROUPS "X25519:P-256:P-384"

/* config_known_addrs_fn looks up the addresses that |host| and |port| were
 * last resolved to (for |resolve|) without asking a name server: 0 with a
 * new array in |*out_addrs| (the caller frees it) of |*out_num| entries, or
 * -1 when the name is not known. */
typedef int (*config_known_addrs_fn)(const char *host, const char *port, enum cfg_resolve resolve,
                                     struct net_addr **out_addrs, size_t *out_num);

/* config_set_known_addrs makes later config_load calls take a host name's
 * addresses from |fn| when it knows them, and resolve only names it does
 * not: the daemon sets it so that a reload does not wait for a name server
 * (backend_group.c keeps the names resolved on its own thread). NULL (the
 * default, and what --check uses) resolves every name. */
void config_set_known_addrs(config_known_addrs_fn fn);

/* config_load parses and validates the file at |path|. It returns a new
 * config, owned by the caller and released with config_free, or NULL after
 * writing every error found to |errors|, one "FILE:LINE:COL: message" per
 * line. */
struct config *config_load(const char *path, FILE *errors);

/* cfg_listener_same_http says whether listener settings |a| and |b| (the
 * same listener before and after a reload) have the same TLS and HTTP
 * settings: when they differ, its open HTTP connections are asked to end
 * gracefully (h2 GOAWAY, h1 Connection: close) so clients reconnect under
 * the new ones. */
bool cfg_listener_same_http(const struct cfg_listener *a, const struct cfg_listener *b);

/* cfg_backend_per_client says whether |listener|'s backend connections
 * belong to one client connection: in http mode an idle one is kept for
 * that client connection's later requests only, never handed to another
 * client, and closed with it (backend_pool.h). True with backend.source:
 * client, whose connections carry the client's address, and with
 * backend.proxy_protocol, whose header speaks for one client for the whole
 * life of the connection. */
static inline bool cfg_backend_per_client(const struct cfg_listener *listener)
{
    const struct cfg_backend *group = listener->backend;
    return group != NULL &&
           (group->source == CFG_BACKEND_SOURCE_CLIENT || group->proxy_protocol != 0);
}

/* config_needs_net_admin says whether some listener of |config| uses
 * backend.source: client, whose sockets need CAP_NET_ADMIN (IP_TRANSPARENT).
 * It returns that listener, or NULL. */
const struct cfg_listener *config_needs_net_admin(const struct config *config);

/* config_reload_check decides whether |next|, loaded by a reload, can
 * replace |running|, the configuration of the running generation. Listen
 * sockets are bound at start, so |next| must have the same listeners, in
 * the same order, with the same addresses: otherwise it returns -1 after
 * writing "FILE:LINE:COL: message" to |errors| at what differs in |next|'s
 * file (the listen value, or the listener). Workers and the user are set up
 * at start too: it logs a "reload_partial" warning when |next| changes them
 * (fields workers_running/workers_in_file, user_running/user_in_file, msg),
 * and another one when it changes admin.listen (admin_running/admin_in_file,
 * msg: the endpoint is bound at start), and puts the running values into
 * |next|, so the running generation's
 * configuration always says what runs and the next reload compares with
 * that, not with the file before it. It returns 0 then. */
int config_reload_check(const struct config *running, struct config *next, FILE *errors);

/* config_free releases |config| and everything it owns. NULL is allowed. */
void config_free(struct config *config);

/* CONFIG_ERRORS_SHOWN is how many errors config_print_errors prints: enough
 * to fix a file in one pass, not so many that a wrong file (a certificate
 * given as the configuration) buries the first lines. */
#define CONFIG_ERRORS_SHOWN 100

/* config_describe_listener writes |listener|'s mode and backend protocol
 * and, in http mode, its effective HTTP settings (http, http2, backend pool
 * and limits, the http-mode timeouts) to |out| for --check: one "  key:
 * value" line each, to follow tls_ctx_describe's lines. */
void config_describe_listener(const struct cfg_listener *listener, FILE *out);

/* config_describe_process writes the process-wide settings of |config|
 * (workers, max_connections, drain_timeout, user, reload_on_change, log,
 * admin and report) to |out| for --check, one "key: value" line each, after
 * the listeners' lines. */
void config_describe_process(const struct config *config, FILE *out);

/* config_print_errors writes the first CONFIG_ERRORS_SHOWN lines of |text|
 * (error lines, each ending in '\n') to |out|, then, if more are left, one
 * line "... and N more errors". */
void config_print_errors(const char *text, FILE *out);

/* config_for_each_file calls |fn| with |arg| for each certificate, key,
 * OCSP, CA, CRL and ticket key file that |config| names, in that order: the
 * files a reload reads besides the configuration file itself. */
void config_for_each_file(const struct config *config, void (*fn)(const char *path, void *arg),
                          void *arg);

/* config_for_each_file_at is config_for_each_file with where each file is
 * named in the configuration, for messages about it. */
void config_for_each_file_at(const struct config *config,
                             void (*fn)(const char *path, const struct cfg_pos *pos, void *arg),
                             void *arg);

/* config_describe_redirect writes a redirect listener's header line and
 * settings (target, status, request limits and timeouts) to |out| for
 * --check, as tls_ctx_describe and config_describe_listener do for the
 * others. */
void config_describe_redirect(const struct cfg_listener *listener, FILE *out);

/* config_parse_duration parses a duration written as a whole number and a
 * unit, "ms", "s", "m", "h" or "d" ("500ms", "30s", "5m"), into |out_ms|. It
 * returns 0, or -1 (leaving |out_ms| alone) for no unit, another unit, zero,
 * a sign, spaces, or anything above 24h. */
int config_parse_duration(const char *text, uint32_t *out_ms);

/* cfg_error writes "FILE:LINE:COL: message\n" for |pos| to |errors|. */
void cfg_error(FILE *errors, const struct cfg_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cfg_warn_permissions logs a "file_permissions" warning about |path|,
 * named at |pos|, whose mode is |mode|: the fields "where" (FILE:LINE:COL),
 * "file", "mode" (octal) and "msg", printf(|fmt|, ...). A warning does not
 * fail the load; it goes to the log, which --check prints on stderr too. */
void cfg_warn_permissions(const struct cfg_pos *pos, const char *path, mode_t mode,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* cfg_warn_exposed warns (cfg_warn_permissions) when the |what| file
 * |path|, which holds a secret (a private key, ticket keys), is readable by
 * others or writable by group or others. Readable by group is fine: that is
 * how a service user is given read access. */
void cfg_warn_exposed(const struct cfg_pos *pos, const char *what, const char *path,
                      mode_t mode);

#endif
