/* config_test: config_load on good files (values and defaults) and on every
 * class of mistake, asserting the exact "FILE:LINE:COL: message" lines.
 *
 * The group setup makes a fresh temporary directory with dummy certificate
 * and key files (and a FIFO) and makes it the working directory, so configs
 * can name "cert.pem" and the file under test is always "t.yaml". Teardown
 * returns to the original directory. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "config.h"
#include "config_fixture.h"

static int group_setup(void **state)
{
    (void)state;
    if (config_fixture_setup("config_test") != 0)
        return -1;
    config_fixture_write("cert2.pem", "dummy certificate\n");
    config_fixture_write("key2.pem", "dummy key\n");
    if (mkfifo("fifo", 0600) != 0)
        return -1;
    return mkdir("subdir", 0700);
}

static int group_teardown(void **state)
{
    (void)state;
    unlink("cert2.pem");
    unlink("key2.pem");
    unlink("fifo");
    rmdir("subdir");
    return config_fixture_teardown();
}

/* Short names for the fixture (config_fixture.h) in the tests below. */
static struct config *load(const char *yaml) { return config_fixture_load(yaml); }

static void expect_errors(const char *yaml, const char *expected)
{
    config_fixture_expect_errors(yaml, expected);
}

/* The end of the message for a CBC or non-forward-secret suite. */
#define LEGACY_HINT                                                                            \
    "forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305); CBC and "           \
    "non-forward-secret suites need allow_legacy: true\n"

/* A valid listener, to be completed or broken by each test. */
#define LISTENER_HEAD                                                                          \
    "listeners:\n"                                                                             \
    "  - name: edge\n"                                                                         \
    "    listen: \"127.0.0.1:0\"\n"
#define TLS_OK                                                                                 \
    "    tls:\n"                                                                               \
    "      certificates:\n"                                                                    \
    "        - cert: cert.pem\n"                                                               \
    "          key: key.pem\n"
#define BACKEND_OK                                                                             \
    "    backend:\n"                                                                           \
    "      servers: [\"127.0.0.1:8080\"]\n"
#define MINIMAL LISTENER_HEAD TLS_OK BACKEND_OK
/* A backend that speaks HTTP/2 itself, so that tcp mode may offer h2. */
#define BACKEND_H2 BACKEND_OK "      protocol: h2\n"

static void test_minimal_config_and_defaults(void **state)
{
    struct config *config = load(MINIMAL);
    const struct cfg_listener *l;

    (void)state;
    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    assert_string_equal(config->file, "t.yaml");
    assert_int_equal(config->log_format, LOG_FORMAT_JSON);
    assert_int_equal(config->log_level, LOG_INFO);
    assert_int_equal(config->drain_timeout_ms, 30000);
    assert_int_equal(config->drain_delay_ms, 0);
    assert_null(config->user);
    assert_int_equal(config->num_listeners, 1);
    l = &config->listeners[0];
    assert_string_equal(l->name, "edge");
    assert_int_equal(l->pos.line, 2);
    assert_int_equal(l->pos.col, 5);
    assert_ptr_equal(l->pos.file, config->file);
    assert_int_equal(l->num_listen, 1);
    assert_int_equal(l->listen[0].addr.ss.ss_family, AF_INET);
    assert_int_equal(l->listen[0].pos.line, 3);
    assert_int_equal(l->listen[0].pos.col, 13);
    assert_int_equal(l->num_certs, 1);
    assert_string_equal(l->certs[0].cert_path, "cert.pem");
    assert_string_equal(l->certs[0].key_path, "key.pem");
    assert_int_equal(l->certs[0].cert_pos.line, 6);
    assert_int_equal(l->certs[0].cert_pos.col, 17);
    assert_int_equal(l->certs[0].key_pos.line, 7);
    assert_ptr_equal(l->certs[0].key_pos.file, config->file);
    assert_int_equal(l->min_version, TLS1_2_VERSION);
    assert_int_equal(l->max_version, TLS1_3_VERSION);
    assert_string_equal(l->ciphers, CONFIG_DEFAULT_CIPHERS);
    assert_string_equal(l->groups, CONFIG_DEFAULT_GROUPS);
    assert_int_equal(l->backend->num_servers, 1);
    assert_int_equal(l->handshake_timeout_ms, 10000);
    assert_int_equal(l->connect_timeout_ms, 5000);
    assert_int_equal(l->idle_timeout_ms, 300000);
    assert_int_equal(l->max_connections, 10000);
    assert_int_equal(l->policy, CFG_POLICY_INTERMEDIATE);
    assert_false(l->allow_legacy);
    assert_null(l->alpn);
    assert_int_equal(l->alpn_len, 0);
    assert_false(l->alpn_required);
    assert_false(l->sni_strict);
    assert_false(l->allow_expired);
    assert_true(l->expiry_warning_ms == UINT64_C(21) * 86400000);
    assert_false(l->early_data);
    assert_int_equal(l->client_auth.mode, CFG_CLIENT_AUTH_NONE);
    assert_null(l->client_auth.ca_path);
    assert_int_equal(l->client_auth.depth, 4);
    assert_null(l->certs[0].ocsp_path);
    assert_false(config->reload_on_change);
    assert_true(config->session_tickets.enabled);
    assert_int_equal(config->session_tickets.rotate_ms, 3600000);
    assert_int_equal(config->session_tickets.lifetime_ms, 43200000);
    assert_null(config->session_tickets.key_file);
    config_free(config);
    config_free(NULL);
}

static void test_full_config(void **state)
{
    struct config *config =
        load("log:\n"
             "  format: text\n"
             "  level: debug\n"
             "drain_timeout: 1500ms\n"
             "user: root\n"
             "listeners:\n"
             "  - name: edge-1.a_b\n"
             "    listen: [\"127.0.0.1:0\", \"[::1]:0\", \"127.0.0.1:9443\"]\n"
             "    tls:\n"
             "      certificates:\n"
             "        - {cert: cert.pem, key: key.pem}\n"
             "        - {cert: cert2.pem, key: key2.pem}\n"
             "      min_version: 1.3\n"
             "      max_version: \"1.3\"\n"
             "      ciphers: [ECDHE-ECDSA-CHACHA20-POLY1305, "
             "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
             "      groups: [P-521, X25519]\n"
             "    backend:\n"
             "      servers: [\"unix:/run/app.sock\", \"[::1]:80\"]\n"
             "    timeouts: {handshake: 2s, connect: 1m, idle: 2h}\n"
             "    max_connections: 1000000\n"
             "  - name: second\n"
             "    listen: \"127.0.0.1:0\"\n" TLS_OK BACKEND_OK "    max_connections: 1\n");
    const struct cfg_listener *l;

    (void)state;
    assert_non_null(config);
    assert_int_equal(config->log_format, LOG_FORMAT_TEXT);
    assert_int_equal(config->log_level, LOG_DEBUG);
    assert_int_equal(config->drain_timeout_ms, 1500);
    assert_string_equal(config->user, "root");
    assert_int_equal(config->num_listeners, 2);
    l = &config->listeners[0];
    assert_string_equal(l->name, "edge-1.a_b");
    assert_int_equal(l->num_listen, 3);
    assert_int_equal(l->listen[1].addr.ss.ss_family, AF_INET6);
    assert_int_equal(l->listen[2].pos.col, 40);
    assert_int_equal(l->num_certs, 2);
    assert_string_equal(l->certs[1].key_path, "key2.pem");
    assert_int_equal(l->certs[1].key_pos.line, 12);
    assert_int_equal(l->certs[1].key_pos.col, 34);
    assert_int_equal(l->min_version, TLS1_3_VERSION);
    assert_int_equal(l->max_version, TLS1_3_VERSION);
    assert_string_equal(l->ciphers,
                        "ECDHE-ECDSA-CHACHA20-POLY1305:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert_string_equal(l->groups, "P-521:X25519");
    assert_int_equal(l->backend->num_servers, 2);
    assert_int_equal(l->backend->servers[0].addrs[0].ss.ss_family, AF_UNIX);
    assert_int_equal(l->handshake_timeout_ms, 2000);
    assert_int_equal(l->connect_timeout_ms, 60000);
    assert_int_equal(l->idle_timeout_ms, 7200000);
    assert_int_equal(l->max_connections, 1000000);
    assert_string_equal(config->listeners[1].name, "second");
    assert_int_equal(config->listeners[1].max_connections, 1);
    config_free(config);
}

static void test_parse_duration(void **state)
{
    static const struct {
        const char *text;
        int result;
        uint32_t ms;
    } cases[] = {
        {"1ms", 0, 1},          {"500ms", 0, 500},       {"10s", 0, 10000},
        {"5m", 0, 300000},      {"2h", 0, 7200000},      {"24h", 0, 86400000},
        {"1440m", 0, 86400000}, {"86400s", 0, 86400000}, {"86400000ms", 0, 86400000},
        {"007s", 0, 7000},      {"25h", -1, 0},          {"86401s", -1, 0},
        {"86400001ms", -1, 0},  {"1441m", -1, 0},        {"0s", -1, 0},
        {"0ms", -1, 0},         {"30", -1, 0},           {"", -1, 0},
        {"s", -1, 0},           {"-5s", -1, 0},          {"+5s", -1, 0},
        {"5 s", -1, 0},         {" 5s", -1, 0},          {"5sec", -1, 0},
        {"5S", -1, 0},          {"1.5s", -1, 0},         {"1d", 0, 86400000},
        {"5d", -1, 0},          {"2D", -1, 0},           {"99999999999999999999999h", -1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t ms = 12345;
        int result = config_parse_duration(cases[i].text, &ms);
        if (result != cases[i].result)
            fail_msg("config_parse_duration(\"%s\") returned %d", cases[i].text, result);
        assert_int_equal(ms, cases[i].result == 0 ? cases[i].ms : 12345);
    }
}

static void test_cfg_error_format(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *errors = open_memstream(&text, &len);
    struct cfg_pos pos = {"conf/x.yaml", 12, 7};

    (void)state;
    assert_non_null(errors);
    cfg_error(errors, &pos, "bad %s %d", "thing", 42);
    fclose(errors);
    assert_string_equal(text, "conf/x.yaml:12:7: bad thing 42\n");
    free(text);
}

/* print_errors returns what config_print_errors prints for |num| lines. */
static char *print_errors(size_t num)
{
    char *in = NULL, *out = NULL;
    size_t in_len = 0, out_len = 0;
    FILE *lines = open_memstream(&in, &in_len);
    FILE *printed = open_memstream(&out, &out_len);

    assert_non_null(lines);
    assert_non_null(printed);
    for (size_t i = 0; i < num; i++)
        fprintf(lines, "t.yaml:%zu:1: error %zu\n", i + 1, i + 1);
    fclose(lines);
    config_print_errors(in, printed);
    fclose(printed);
    free(in);
    return out;
}

static void test_print_errors_capped(void **state)
{
    char *out;

    (void)state;
    out = print_errors(0);
    assert_string_equal(out, "");
    free(out);
    out = print_errors(2);
    assert_string_equal(out, "t.yaml:1:1: error 1\nt.yaml:2:1: error 2\n");
    free(out);
    /* Exactly the cap: no summary line. */
    out = print_errors(CONFIG_ERRORS_SHOWN);
    assert_non_null(strstr(out, "t.yaml:100:1: error 100\n"));
    assert_null(strstr(out, "more error"));
    free(out);
    out = print_errors(CONFIG_ERRORS_SHOWN + 1);
    assert_non_null(strstr(out, "t.yaml:100:1: error 100\n... and 1 more error\n"));
    assert_null(strstr(out, "error 101"));
    free(out);
    out = print_errors(2500);
    assert_non_null(strstr(out, "t.yaml:100:1: error 100\n... and 2400 more errors\n"));
    free(out);
}

static void test_empty_files(void **state)
{
    (void)state;
    expect_errors("",
                  "t.yaml:1:1: the configuration is empty; it needs at least 'listeners'\n");
    expect_errors("# nothing\n",
                  "t.yaml:1:1: the configuration is empty; it needs at least 'listeners'\n");
    expect_errors("---\n",
                  "t.yaml:1:1: the configuration is empty; it needs at least 'listeners'\n");
    expect_errors("- a\n", "t.yaml:1:1: expected a mapping at the top level, got a sequence\n");
}

static void test_missing_file(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *errors = open_memstream(&text, &len);

    (void)state;
    assert_null(config_load("no-such.yaml", errors));
    fclose(errors);
    assert_string_equal(text,
                        "no-such.yaml:1:1: cannot read file: No such file or directory\n");
    free(text);
}

static void test_yaml_errors_pass_through(void **state)
{
    (void)state;
    expect_errors("listeners:\n  - name: a\n   bad\n",
                  "t.yaml:3:4: did not find expected '-' indicator (while parsing a block "
                  "collection at 2:3)\n");
    expect_errors("log: {level: info}\nlog: {}\n",
                  "t.yaml:2:1: duplicate key 'log' (first defined at 1:1)\n");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    /* A suggested required key is not also reported missing; a key already
     * present is not suggested. */
    expect_errors(
        "listeners:\n"
        "  - name: edge\n"
        "    lsiten: \"127.0.0.1:0\"\n" TLS_OK "    backends: y\n"
        "    zzz: 1\n"
        "    nmae: x\n"
        "logs: {}\n"
        "log: {levl: info, color: x}\n",
        "t.yaml:3:5: unknown key 'lsiten' in listener; did you mean 'listen'? allowed: "
        "name, mode, listen, tls, backend, http, http2, timeouts, max_connections, redirect, "
        "accept_proxy, routes\n"
        "t.yaml:8:5: unknown key 'backends' in listener; did you mean 'backend'? "
        "allowed: name, mode, listen, tls, backend, http, http2, timeouts, max_connections, "
        "redirect, accept_proxy, routes\n"
        "t.yaml:9:5: unknown key 'zzz' in listener; allowed: name, mode, listen, tls, backend, "
        "http, http2, timeouts, max_connections, redirect, accept_proxy, routes\n"
        "t.yaml:10:5: unknown key 'nmae' in listener; allowed: name, mode, listen, tls, "
        "backend, http, http2, timeouts, max_connections, redirect, accept_proxy, routes\n"
        "t.yaml:11:1: unknown key 'logs' at the top level; allowed: log, drain_timeout, "
        "drain_delay, user, workers, max_connections, listeners, reload_on_change, "
        "reload_poll_interval, session_tickets, admin, report, security, backends, instance\n"
        "t.yaml:12:7: unknown key 'levl' in log; did you mean 'level'? allowed: format, "
        "level, handshake_failures, access\n"
        "t.yaml:12:19: unknown key 'color' in log; allowed: format, level, "
        "handshake_failures, access\n");
    expect_errors(LISTENER_HEAD TLS_OK "    listn: x\n" BACKEND_OK,
                  "t.yaml:8:5: unknown key 'listn' in listener; allowed: "
                  "name, mode, listen, tls, backend, http, http2, timeouts, max_connections, redirect, "
                  "accept_proxy, routes\n");
    expect_errors("\"bad\\tkey\": 1\n" MINIMAL,
                  "t.yaml:1:1: unknown key 'bad?key' at the top level; allowed: log, "
                  "drain_timeout, drain_delay, user, workers, max_connections, listeners, "
                  "reload_on_change, reload_poll_interval, session_tickets, admin, report, "
                  "security, backends, instance\n");
    expect_errors(
        "logs: {}\n" MINIMAL,
        "t.yaml:1:1: unknown key 'logs' at the top level; did you mean 'log'? allowed: "
        "log, drain_timeout, drain_delay, user, workers, max_connections, listeners, "
        "reload_on_change, reload_poll_interval, session_tickets, admin, report, security, "
        "backends, instance\n");
    expect_errors(
        LISTENER_HEAD TLS_OK "      ciphres: []\n"
                             "      certificate: x\n" BACKEND_OK "    timeouts: {idel: 5s}\n",
        "t.yaml:8:7: unknown key 'ciphres' in tls; did you mean 'ciphers'? allowed: "
        "certificates, policy, min_version, max_version, ciphers, groups, allow_legacy, alpn, "
        "alpn_required, sni_strict, allow_expired, expiry_warning, early_data, "
        "client_auth, report_only\n"
        "t.yaml:9:7: unknown key 'certificate' in tls; allowed: certificates, "
        "policy, min_version, max_version, ciphers, groups, allow_legacy, alpn, "
        "alpn_required, sni_strict, allow_expired, expiry_warning, early_data, "
        "client_auth, report_only\n"
        "t.yaml:12:16: unknown key 'idel' in timeouts; did you mean 'idle'? allowed: "
        "handshake, connect, idle, half_closed, request_header, backend_response, "
        "queue\n");
}

static void test_missing_required_keys(void **state)
{
    (void)state;
    expect_errors("log: {format: json}\n",
                  "t.yaml:1:1: the configuration is missing required key 'listeners'\n");
    expect_errors("listeners:\n"
                  "  - name: a\n"
                  "  - listen: \"127.0.0.1:0\"\n"
                  "    tls: {certificates: [{cert: cert.pem}]}\n"
                  "    backend: {}\n",
                  "t.yaml:2:5: listener is missing required key 'listen'\n"
                  "t.yaml:2:5: listener is missing required key 'tls'\n"
                  "t.yaml:2:5: listener is missing required key 'backend'\n"
                  "t.yaml:4:26: certificates entry is missing required key 'key'\n"
                  "t.yaml:5:14: backend is missing required key 'servers'\n"
                  "t.yaml:3:5: listener is missing required key 'name'\n");
    expect_errors(LISTENER_HEAD "    tls: {min_version: \"1.3\"}\n" BACKEND_OK,
                  "t.yaml:4:10: tls is missing required key 'certificates'\n");
}

/* drain_delay: 0 or a duration up to 10m (the errors are in test_wrong_types). */
static void test_drain_delay(void **state)
{
    struct config *config = load("drain_delay: 2s\n" MINIMAL);

    (void)state;
    assert_non_null(config);
    assert_int_equal(config->drain_delay_ms, 2000);
    config_free(config);
    config = load("drain_delay: 0\n" MINIMAL);
    assert_non_null(config);
    assert_int_equal(config->drain_delay_ms, 0);
    config_free(config);
    config = load("drain_delay: 10m\n" MINIMAL);
    assert_non_null(config);
    assert_int_equal(config->drain_delay_ms, 600000);
    config_free(config);
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_errors("log: json\n"
                  "drain_timeout: [1s]\n"
                  "user: {name: root}\n"
                  "listeners: {name: a}\n",
                  "t.yaml:1:6: expected a mapping for 'log', got 'json'\n"
                  "t.yaml:2:16: expected a duration for 'drain_timeout', got a sequence\n"
                  "t.yaml:3:7: expected a string for 'user', got a mapping\n"
                  "t.yaml:4:12: expected a sequence for 'listeners', got a mapping\n");
    expect_errors("drain_delay: soon\n" MINIMAL,
                  "t.yaml:1:14: invalid duration 'soon' for 'drain_delay'; expected 0 or a whole "
                  "number above 0 with a unit ms, s or m, at most 10m (e.g. 5s)\n");
    expect_errors("drain_delay: 11m\n" MINIMAL,
                  "t.yaml:1:14: invalid duration '11m' for 'drain_delay'; expected 0 or a whole "
                  "number above 0 with a unit ms, s or m, at most 10m (e.g. 5s)\n");
    expect_errors("listeners:\n"
                  "  - name: [a]\n"
                  "    listen: {a: 1}\n"
                  "    tls:\n"
                  "    backend:\n"
                  "      servers: [[\"127.0.0.1:1\"]]\n"
                  "    timeouts: 5s\n"
                  "    max_connections: [1]\n"
                  "  - just a string\n",
                  "t.yaml:2:11: expected a string for 'name', got a sequence\n"
                  "t.yaml:3:13: expected a string or a sequence of strings for 'listen', got a "
                  "mapping\n"
                  "t.yaml:4:9: expected a mapping for 'tls', got an empty value\n"
                  "t.yaml:6:17: expected a string or a mapping with 'address' for 'servers', got a "
                  "sequence\n"
                  "t.yaml:7:15: expected a mapping for 'timeouts', got '5s'\n"
                  "t.yaml:8:22: expected an integer for 'max_connections', got a sequence\n"
                  "t.yaml:9:5: expected a mapping for 'listeners', got 'just a string'\n");
    expect_errors(LISTENER_HEAD "    tls:\n"
                                "      certificates: {cert: cert.pem, key: key.pem}\n"
                                "      ciphers: ECDHE-ECDSA-AES128-GCM-SHA256\n"
                                "      groups: [[X25519]]\n" BACKEND_OK,
                  "t.yaml:5:21: expected a sequence for 'certificates', got a mapping\n"
                  "t.yaml:6:16: expected a sequence for 'ciphers', got "
                  "'ECDHE-ECDSA-AES128-GCM-SHA256'\n"
                  "t.yaml:7:16: expected a string for 'groups', got a sequence\n");
    expect_errors(
        LISTENER_HEAD "    tls:\n"
                      "      certificates: [cert.pem]\n" BACKEND_OK,
        "t.yaml:5:22: expected a mapping with 'cert' and 'key' for 'certificates', got "
        "'cert.pem'\n");
}

static void test_empty_sequences(void **state)
{
    (void)state;
    expect_errors("listeners: []\n",
                  "t.yaml:1:12: expected a non-empty sequence for 'listeners'\n");
    expect_errors("listeners:\n"
                  "  - name: a\n"
                  "    listen: []\n"
                  "    tls: {certificates: [], ciphers: [], groups: []}\n"
                  "    backend: {servers: []}\n",
                  "t.yaml:3:13: expected a non-empty sequence for 'listen'\n"
                  "t.yaml:4:25: expected a non-empty sequence for 'certificates'\n"
                  "t.yaml:4:38: expected a non-empty sequence for 'ciphers'\n"
                  "t.yaml:4:50: expected a non-empty sequence for 'groups'\n"
                  "t.yaml:5:24: expected a non-empty sequence for 'servers'\n");
}

static void test_durations(void **state)
{
    (void)state;
    expect_errors(
        "drain_timeout: 30\n" MINIMAL "    timeouts:\n"
        "      handshake: 0s\n"
        "      connect: 25h\n"
        "      idle: -5m\n",
        "t.yaml:1:16: invalid duration '30' for 'drain_timeout'; expected a whole "
        "number above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
        "t.yaml:12:18: invalid duration '0s' for 'handshake'; expected a whole number "
        "above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
        "t.yaml:13:16: invalid duration '25h' for 'connect'; expected a whole number "
        "above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
        "t.yaml:14:13: invalid duration '-5m' for 'idle'; expected a whole number "
        "above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n");
    expect_errors("reload_poll_interval: sometimes\n" MINIMAL,
                  "t.yaml:1:23: invalid duration 'sometimes' for 'reload_poll_interval'; "
                  "expected a whole number above 0 with a unit ms, s, m, h or d, at most 24h "
                  "(e.g. 500ms, 60s), or 0 or off for no poll\n");
}

/* reload_poll_interval: 60s by default, a duration, or 0 / off for none. */
static void test_reload_poll_interval(void **state)
{
    static const struct {
        const char *yaml;
        uint32_t ms;
    } cases[] = {
        {"", 60000},
        {"reload_poll_interval: 200ms\n", 200},
        {"reload_poll_interval: 5m\n", 300000},
        {"reload_poll_interval: 0\n", 0},
        {"reload_poll_interval: off\n", 0},
    };
    char yaml[2048];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(yaml, sizeof(yaml), "%s%s", cases[i].yaml, MINIMAL);
        struct config *config = load(yaml);
        assert_non_null(config);
        assert_int_equal(config->reload_poll_ms, cases[i].ms);
        config_free(config);
    }
}

static void test_log_and_user(void **state)
{
    (void)state;
    expect_errors(
        "log: {format: xml, level: verbose}\n"
        "user: no-such-user-tlsterm\n" MINIMAL,
        "t.yaml:1:15: invalid format 'xml'; allowed: json, text\n"
        "t.yaml:1:27: invalid level 'verbose'; allowed: debug, info, warn, error\n"
        "t.yaml:2:7: unknown user 'no-such-user-tlsterm' for 'user'; it must exist on "
        "this system\n");
}

static void test_listener_names(void **state)
{
    (void)state;
    expect_errors(
        "listeners:\n"
        "  - name: edge\n"
        "  - name: \"has space\"\n"
        "  - name: \"\"\n"
        "  - name: "
        "a12345678901234567890123456789012345678901234567890123456789012345\n"
        "  - name: edge\n",
        "t.yaml:2:5: listener is missing required key 'listen'\n"
        "t.yaml:2:5: listener is missing required key 'tls'\n"
        "t.yaml:2:5: listener is missing required key 'backend'\n"
        "t.yaml:3:11: invalid listener name 'has space'; use 1 to 64 characters from "
        "A-Z, a-z, 0-9, '_', '.' and '-'\n"
        "t.yaml:3:5: listener is missing required key 'listen'\n"
        "t.yaml:3:5: listener is missing required key 'tls'\n"
        "t.yaml:3:5: listener is missing required key 'backend'\n"
        "t.yaml:4:11: invalid listener name ''; use 1 to 64 characters from A-Z, a-z, "
        "0-9, '_', '.' and '-'\n"
        "t.yaml:4:5: listener is missing required key 'listen'\n"
        "t.yaml:4:5: listener is missing required key 'tls'\n"
        "t.yaml:4:5: listener is missing required key 'backend'\n"
        "t.yaml:5:11: invalid listener name "
        "'a12345678901234567890123456789012345678901234567890123456789012345'; use 1 to "
        "64 characters from A-Z, a-z, 0-9, '_', '.' and '-'\n"
        "t.yaml:5:5: listener is missing required key 'listen'\n"
        "t.yaml:5:5: listener is missing required key 'tls'\n"
        "t.yaml:5:5: listener is missing required key 'backend'\n"
        "t.yaml:6:11: duplicate listener name 'edge' (first defined at 2:11)\n"
        "t.yaml:6:5: listener is missing required key 'listen'\n"
        "t.yaml:6:5: listener is missing required key 'tls'\n"
        "t.yaml:6:5: listener is missing required key 'backend'\n");
}

static void test_listen_addresses(void **state)
{
    (void)state;
    expect_errors(
        "listeners:\n"
        "  - name: a\n"
        "    listen: [\"127.0.0.1:8443\", \"[::1]:8443\", \"127.0.0.1:0\"]\n" TLS_OK BACKEND_OK
        "  - name: b\n"
        "    listen: [\"127.0.0.1:0\", \"[::1]:8443\", \"unix:/tmp/x\", \"[::1]:8444\","
        " \"[::1]:8444\", \"127.0.0.1:8443\"]\n" TLS_OK BACKEND_OK,
        "t.yaml:11:29: duplicate listen address '[::1]:8443' (first defined at 3:32)\n"
        "t.yaml:11:43: invalid listen address 'unix:/tmp/x': unix sockets are not "
        "allowed here\n"
        "t.yaml:11:72: duplicate listen address '[::1]:8444' (first defined at 11:58)\n"
        "t.yaml:11:86: duplicate listen address '127.0.0.1:8443' (first defined at "
        "3:14)\n");
}

/* "*:PORT" is two listen entries at the same position, and a duplicate of
 * either half is named by its address. */
static void test_listen_every_address(void **state)
{
    struct config *config = load("listeners:\n"
                                 "  - name: a\n"
                                 "    listen: \"*:8443\"\n" TLS_OK BACKEND_OK);
    char text[NET_ADDR_TEXT_MAX];
    size_t num_expected = net_have_ipv6() ? 2 : 1;
    (void)state;

    assert_non_null(config);
    assert_int_equal(config->listeners[0].num_listen, num_expected);
    assert_string_equal(net_addr_format(&config->listeners[0].listen[0].addr, text, sizeof(text)),
                        "0.0.0.0:8443");
    assert_int_equal(config->listeners[0].listen[0].pos.line, 3);
    assert_int_equal(config->listeners[0].listen[0].pos.col, 13);
    if (num_expected == 2) {
        assert_string_equal(
            net_addr_format(&config->listeners[0].listen[1].addr, text, sizeof(text)),
            "[::]:8443");
        assert_int_equal(config->listeners[0].listen[1].pos.col, 13);
    }
    config_free(config);
    expect_errors("listeners:\n"
                  "  - name: a\n"
                  "    listen: [\"0.0.0.0:8443\", \":8443\"]\n" TLS_OK BACKEND_OK,
                  "t.yaml:3:30: duplicate listen address '0.0.0.0:8443' (first defined at "
                  "3:14)\n");
}

/* expect_error_prefix checks for one error line that starts with |prefix|:
 * the reason after it comes from net.c and is not this module's wording. */
static void expect_error_prefix(const char *yaml, const char *prefix)
{
    struct config *config = load(yaml);

    assert_null(config);
    if (strncmp(config_fixture_errors, prefix, strlen(prefix)) != 0)
        fail_msg("got \"%s\", expected a line starting with \"%s\"", config_fixture_errors, prefix);
    assert_non_null(strchr(config_fixture_errors, '\n'));
    assert_string_equal(strchr(config_fixture_errors, '\n'), "\n");
}

static void test_bad_addresses(void **state)
{
    (void)state;
    expect_error_prefix("listeners:\n"
                        "  - name: a\n"
                        "    listen: \"127.0.0.1\"\n" TLS_OK BACKEND_OK,
                        "t.yaml:3:13: invalid listen address '127.0.0.1': ");
    expect_error_prefix(
        "listeners:\n"
        "  - name: a\n"
        "    listen: [\"127.0.0.1:0\", \"127.0.0.1:99999\"]\n" TLS_OK BACKEND_OK,
        "t.yaml:3:29: invalid listen address '127.0.0.1:99999': ");
    expect_error_prefix(LISTENER_HEAD TLS_OK "    backend:\n"
                                             "      servers: \"::1:80\"\n",
                        "t.yaml:9:16: invalid backend server address '::1:80': ");
}

static void test_certificate_files(void **state)
{
    (void)state;
    expect_errors(LISTENER_HEAD "    tls:\n"
                                "      certificates:\n"
                                "        - cert: missing.pem\n"
                                "          key: subdir\n"
                                "        - {cert: cert.pem, key: key.pem}\n" BACKEND_OK,
                  "t.yaml:6:17: cannot read certificate file 'missing.pem' (relative to the working directory DIR): No such file or "
                  "directory\n"
                  "t.yaml:7:16: cannot read private key file 'subdir' (relative to the working directory DIR): Is a directory\n");
}

static void test_tls_versions(void **state)
{
    (void)state;
    expect_errors(LISTENER_HEAD TLS_OK "      min_version: 1.1\n"
                                       "      max_version: \"1.0\"\n" BACKEND_OK,
                  "t.yaml:8:20: min_version: TLS 1.1 is not allowed (insecure); allowed: "
                  "\"1.2\", \"1.3\" (TLS 1.0 and 1.1 need allow_legacy: true)\n"
                  "t.yaml:9:20: max_version: TLS 1.0 is not allowed (insecure); allowed: "
                  "\"1.2\", \"1.3\" (TLS 1.0 and 1.1 need allow_legacy: true)\n");
    expect_errors(LISTENER_HEAD TLS_OK "      min_version: TLSv1.2\n"
                                       "      max_version: [1.3]\n" BACKEND_OK,
                  "t.yaml:8:20: invalid TLS version 'TLSv1.2' for 'min_version'; allowed: "
                  "\"1.2\", \"1.3\"\n"
                  "t.yaml:9:20: expected a TLS version for 'max_version', got a sequence\n");
    expect_errors(
        LISTENER_HEAD TLS_OK "      max_version: 1.2\n"
                             "      min_version: \"1.3\"\n" BACKEND_OK,
        "t.yaml:9:20: min_version \"1.3\" is above max_version \"1.2\" (set at 8:20)\n");
}

static void test_ciphers(void **state)
{
    (void)state;
    expect_errors(
        LISTENER_HEAD TLS_OK "      ciphers:\n"
                             "        - ECDHE-ECDSA-AES128-GCM-SHA256\n"
                             "        - NOPE-CIPHER\n"
                             "        - AES128-SHA\n"
                             "        - ECDHE-RSA-AES128-SHA\n"
                             "        - AES128-GCM-SHA256\n"
                             "        - ECDHE-PSK-CHACHA20-POLY1305\n"
                             "        - TLS_AES_128_GCM_SHA256\n"
                             "        - ALL\n"
                             "        - ECDHE+AESGCM\n" BACKEND_OK,
        "t.yaml:10:11: unknown cipher suite 'NOPE-CIPHER' (list one suite name per "
        "item, e.g. ECDHE-ECDSA-AES128-GCM-SHA256)\n"
        "t.yaml:11:11: cipher suite 'AES128-SHA' is not allowed: tlsterm only "
        "offers " LEGACY_HINT
        "t.yaml:12:11: cipher suite 'ECDHE-RSA-AES128-SHA' is not allowed: tlsterm only "
        "offers " LEGACY_HINT
        "t.yaml:13:11: cipher suite 'AES128-GCM-SHA256' is not allowed: tlsterm only "
        "offers " LEGACY_HINT
        "t.yaml:14:11: cipher suite 'ECDHE-PSK-CHACHA20-POLY1305' is not allowed: it "
        "authenticates with a pre-shared key, not a certificate\n"
        "t.yaml:15:11: 'TLS_AES_128_GCM_SHA256' is a TLS 1.3 suite: TLS 1.3 suites "
        "cannot be configured (BoringSSL always enables all three); list TLS 1.2 suites "
        "only\n"
        "t.yaml:16:11: unknown cipher suite 'ALL' (list one suite name per item, e.g. "
        "ECDHE-ECDSA-AES128-GCM-SHA256)\n"
        "t.yaml:17:11: unknown cipher suite 'ECDHE+AESGCM' (list one suite name per "
        "item, e.g. ECDHE-ECDSA-AES128-GCM-SHA256)\n");
}

static void test_groups(void **state)
{
    (void)state;
    expect_errors(LISTENER_HEAD TLS_OK "      groups: [X25519, P-224, x448, \"\"]\n" BACKEND_OK,
                  "t.yaml:8:24: unknown group 'P-224'; allowed: X25519, P-256, P-384, P-521\n"
                  "t.yaml:8:31: unknown group 'x448'; allowed: X25519, P-256, P-384, P-521\n"
                  "t.yaml:8:37: unknown group ''; allowed: X25519, P-256, P-384, P-521\n");
}

static void test_max_connections(void **state)
{
    static const char *const bad[] = {
        "0", "1000001", "abc", "-1", "1e3", "99999999999999999999", "\"\""};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char yaml[512], expected[256];
        const char *shown = strcmp(bad[i], "\"\"") == 0 ? "" : bad[i];
        snprintf(yaml, sizeof(yaml), MINIMAL "    max_connections: %s\n", bad[i]);
        snprintf(expected, sizeof(expected),
                 "t.yaml:10:22: invalid max_connections '%s'; expected an integer from 1 to "
                 "1000000\n",
                 shown);
        expect_errors(yaml, expected);
    }
}

/* TLS_WITH writes a tls mapping with one certificate and the given lines. */
#define TLS_WITH(lines) TLS_OK lines

/* A value a typo away from an allowed one gets a "did you mean", as keys
 * do; one that is merely short and different ("v3", "h3") does not. */
static void test_enum_values_get_a_suggestion(void **state)
{
    (void)state;
    expect_errors("log: {format: JSON, level: warning}\n" MINIMAL,
                  "t.yaml:1:15: invalid format 'JSON'; did you mean 'json'? allowed: json, text\n"
                  "t.yaml:1:28: invalid level 'warning'; did you mean 'warn'? allowed: debug, "
                  "info, warn, error\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      policy: moden\n") BACKEND_OK,
                  "t.yaml:8:15: invalid policy 'moden'; did you mean 'modern'? allowed: "
                  "intermediate, modern, custom\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      client_auth: {mode: optinal, ca: cert.pem}\n")
                      BACKEND_OK,
                  "t.yaml:8:27: invalid mode 'optinal'; did you mean 'optional'? allowed: none, "
                  "optional, required\n");
    expect_errors(LISTENER_HEAD "    mode: htp\n" TLS_OK BACKEND_OK,
                  "t.yaml:4:11: invalid mode 'htp'; did you mean 'http'? allowed: tcp, http, "
                  "redirect\n");
    expect_errors(LISTENER_HEAD TLS_OK BACKEND_OK "      protocol: http1.1\n",
                  "t.yaml:10:17: invalid protocol 'http1.1'; did you mean 'http/1.1'? allowed: "
                  "http/1.1, h2\n");
    expect_errors(LISTENER_HEAD TLS_OK BACKEND_OK "      protocol: h3\n",
                  "t.yaml:10:17: invalid protocol 'h3'; allowed: http/1.1, h2\n");
}

static void test_policy_presets(void **state)
{
    struct config *config;
    const struct cfg_listener *l;

    (void)state;
    config = load(LISTENER_HEAD TLS_WITH("      policy: modern\n") BACKEND_OK);
    assert_non_null(config);
    l = &config->listeners[0];
    assert_int_equal(l->policy, CFG_POLICY_MODERN);
    assert_int_equal(l->min_version, TLS1_3_VERSION);
    assert_int_equal(l->max_version, TLS1_3_VERSION);
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      policy: intermediate\n") BACKEND_OK);
    assert_non_null(config);
    l = &config->listeners[0];
    assert_int_equal(l->policy, CFG_POLICY_INTERMEDIATE);
    assert_int_equal(l->min_version, TLS1_2_VERSION);
    assert_int_equal(l->max_version, TLS1_3_VERSION);
    assert_string_equal(l->ciphers, CONFIG_DEFAULT_CIPHERS);
    config_free(config);

    /* min_version, max_version or ciphers without a policy mean custom. */
    config = load(LISTENER_HEAD TLS_WITH("      max_version: \"1.2\"\n") BACKEND_OK);
    assert_non_null(config);
    l = &config->listeners[0];
    assert_int_equal(l->policy, CFG_POLICY_CUSTOM);
    assert_int_equal(l->min_version, TLS1_2_VERSION);
    assert_int_equal(l->max_version, TLS1_2_VERSION);
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      policy: custom\n"
                                         "      ciphers: [ECDHE-RSA-AES128-GCM-SHA256]\n")
                      BACKEND_OK);
    assert_non_null(config);
    assert_int_equal(config->listeners[0].policy, CFG_POLICY_CUSTOM);
    assert_string_equal(config->listeners[0].ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
    config_free(config);

    expect_errors(LISTENER_HEAD TLS_WITH("      policy: modern\n"
                                         "      min_version: \"1.2\"\n"
                                         "      ciphers: [ECDHE-RSA-AES128-GCM-SHA256]\n")
                      BACKEND_OK,
                  "t.yaml:9:20: min_version needs policy: custom (the preset 'modern' sets "
                  "TLS 1.3 only)\n"
                  "t.yaml:10:16: ciphers needs policy: custom (the preset 'modern' sets TLS "
                  "1.3 only)\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      max_version: \"1.3\"\n"
                                         "      policy: intermediate\n") BACKEND_OK,
                  "t.yaml:8:20: max_version needs policy: custom (the preset 'intermediate' "
                  "sets TLS 1.2 to 1.3 and its own TLS 1.2 suites)\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      policy: old\n") BACKEND_OK,
                  "t.yaml:8:15: invalid policy 'old'; allowed: intermediate, modern, custom\n");
}

/* report_only: a candidate policy, read and checked like the enforced one. */
static void test_report_only(void **state)
{
    struct config *config;
    const struct cfg_candidate_policy *candidate;

    (void)state;
    config = load(MINIMAL);
    assert_non_null(config);
    assert_false(config->listeners[0].report_only.enabled);
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      report_only: {policy: modern}\n") BACKEND_OK);
    assert_non_null(config);
    candidate = &config->listeners[0].report_only;
    assert_true(candidate->enabled);
    assert_int_equal(candidate->policy, CFG_POLICY_MODERN);
    assert_int_equal(candidate->min_version, TLS1_3_VERSION);
    assert_int_equal(candidate->max_version, TLS1_3_VERSION);
    assert_int_equal(candidate->num_groups, 3);
    assert_int_equal(candidate->groups[0], SSL_CURVE_X25519);
    assert_int_equal(candidate->groups[2], SSL_CURVE_SECP384R1);
    /* The enforced policy is left alone. */
    assert_int_equal(config->listeners[0].policy, CFG_POLICY_INTERMEDIATE);
    assert_int_equal(config->listeners[0].min_version, TLS1_2_VERSION);
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      report_only:\n"
                                         "        policy: custom\n"
                                         "        ciphers: [ECDHE-ECDSA-AES256-GCM-SHA384, "
                                         "ECDHE-RSA-AES256-GCM-SHA384]\n"
                                         "        groups: [P-384]\n") BACKEND_OK);
    assert_non_null(config);
    candidate = &config->listeners[0].report_only;
    assert_int_equal(candidate->policy, CFG_POLICY_CUSTOM);
    assert_int_equal(candidate->min_version, TLS1_2_VERSION);
    assert_int_equal(candidate->max_version, TLS1_3_VERSION);
    assert_int_equal(candidate->num_suites, 2);
    assert_int_equal(candidate->suites[0], 0xc02c);
    assert_int_equal(candidate->suites[1], 0xc030);
    assert_int_equal(candidate->num_groups, 1);
    assert_int_equal(candidate->groups[0], SSL_CURVE_SECP384R1);
    config_free(config);

    expect_errors(LISTENER_HEAD TLS_WITH("      report_only: modern\n") BACKEND_OK,
                  "t.yaml:8:20: expected a mapping with 'policy' (e.g. {policy: modern}) for "
                  "'report_only', got 'modern'\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      report_only: {min_version: \"1.3\"}\n")
                      BACKEND_OK,
                  "t.yaml:8:20: report_only is missing required key 'policy'\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      report_only: {policy: strict}\n") BACKEND_OK,
                  "t.yaml:8:29: invalid policy 'strict'; allowed: intermediate, modern, "
                  "custom\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      report_only: {policy: modern, alpn: [h2]}\n")
                      BACKEND_OK,
                  "t.yaml:8:37: unknown key 'alpn' in report_only; allowed: policy, "
                  "min_version, max_version, ciphers, groups, allow_legacy\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      report_only:\n"
                                         "        policy: modern\n"
                                         "        ciphers: [ECDHE-RSA-AES128-GCM-SHA256]\n")
                      BACKEND_OK,
                  "t.yaml:10:18: ciphers needs policy: custom (the preset 'modern' sets TLS "
                  "1.3 only)\n");
    expect_errors(
        LISTENER_HEAD TLS_WITH("      report_only:\n"
                               "        policy: custom\n"
                               "        min_version: \"1.0\"\n"
                               "        ciphers: [AES128-SHA, TLS_AES_128_GCM_SHA256]\n"
                               "        groups: [X448]\n") BACKEND_OK,
        "t.yaml:10:22: min_version: TLS 1.0 is not allowed (insecure); allowed: "
        "\"1.2\", \"1.3\" (TLS 1.0 and 1.1 need allow_legacy: true)\n"
        "t.yaml:11:19: cipher suite 'AES128-SHA' is not allowed: tlsterm only "
        "offers " LEGACY_HINT
        "t.yaml:11:31: 'TLS_AES_128_GCM_SHA256' is a TLS 1.3 suite: TLS 1.3 suites "
        "cannot be configured (BoringSSL always enables all three); list TLS 1.2 "
        "suites only\n"
        "t.yaml:12:18: unknown group 'X448'; allowed: X25519, P-256, P-384, P-521\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      report_only:\n"
                                         "        policy: custom\n"
                                         "        min_version: \"1.3\"\n"
                                         "        max_version: \"1.2\"\n") BACKEND_OK,
                  "t.yaml:10:22: min_version \"1.3\" is above max_version \"1.2\" (set at "
                  "11:22)\n");
}

static void test_allow_legacy(void **state)
{
    struct config *config;
    const struct cfg_listener *l;

    (void)state;
    /* allow_legacy is known to the version and suite handlers even when it
     * comes after them. */
    config = load(LISTENER_HEAD TLS_WITH("      min_version: \"1.0\"\n"
                                         "      ciphers: [ECDHE-RSA-AES128-SHA, AES128-SHA, "
                                         "ECDHE-RSA-AES128-GCM-SHA256]\n"
                                         "      allow_legacy: true\n") BACKEND_OK);
    assert_non_null(config);
    l = &config->listeners[0];
    assert_true(l->allow_legacy);
    assert_int_equal(l->policy, CFG_POLICY_CUSTOM);
    assert_int_equal(l->min_version, TLS1_VERSION);
    assert_string_equal(l->ciphers,
                        "ECDHE-RSA-AES128-SHA:AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256");
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      allow_legacy: true\n"
                                         "      min_version: \"1.1\"\n") BACKEND_OK);
    assert_non_null(config);
    assert_int_equal(config->listeners[0].min_version, TLS1_1_VERSION);
    config_free(config);

    /* Still refused: PSK suites, TLS 1.3 suite names, and legacy with a preset. */
    expect_errors(LISTENER_HEAD TLS_WITH("      allow_legacy: true\n"
                                         "      ciphers: [PSK-AES128-CBC-SHA, SSLv3, "
                                         "TLS_AES_256_GCM_SHA384]\n"
                                         "      min_version: \"0.9\"\n") BACKEND_OK,
                  "t.yaml:9:17: cipher suite 'PSK-AES128-CBC-SHA' is not allowed: it "
                  "authenticates with a pre-shared key, not a certificate\n"
                  "t.yaml:9:37: unknown cipher suite 'SSLv3' (list one suite name per item, "
                  "e.g. ECDHE-ECDSA-AES128-GCM-SHA256)\n"
                  "t.yaml:9:44: 'TLS_AES_256_GCM_SHA384' is a TLS 1.3 suite: TLS 1.3 suites "
                  "cannot be configured (BoringSSL always enables all three); list TLS 1.2 "
                  "suites only\n"
                  "t.yaml:10:20: invalid TLS version '0.9' for 'min_version'; allowed: "
                  "\"1.2\", \"1.3\", \"1.0\", \"1.1\"\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      allow_legacy: true\n") BACKEND_OK,
                  "t.yaml:8:21: allow_legacy has no effect with the preset 'intermediate'; "
                  "use policy: custom with the legacy min_version or ciphers you need\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      allow_legacy: yes\n"
                                         "      min_version: \"1.0\"\n") BACKEND_OK,
                  "t.yaml:8:21: invalid allow_legacy 'yes'; expected true or false\n"
                  "t.yaml:9:20: min_version: TLS 1.0 is not allowed (insecure); allowed: "
                  "\"1.2\", \"1.3\" (TLS 1.0 and 1.1 need allow_legacy: true)\n");
}

static void test_alpn_and_switches(void **state)
{
    struct config *config;
    const struct cfg_listener *l;

    (void)state;
    config = load(LISTENER_HEAD TLS_WITH("      alpn: [h2, http/1.1]\n"
                                         "      alpn_required: true\n"
                                         "      sni_strict: true\n"
                                         "      allow_expired: true\n"
                                         "      expiry_warning: 60d\n"
                                         "      early_data: true\n") BACKEND_H2);
    assert_non_null(config);
    l = &config->listeners[0];
    assert_int_equal(l->backend->protocol, CFG_BACKEND_H2);
    assert_int_equal(l->alpn_len, 12);
    assert_memory_equal(l->alpn, "\x02h2\x08http/1.1", 12);
    assert_true(l->alpn_required);
    assert_true(l->sni_strict);
    assert_true(l->allow_expired);
    assert_true(l->expiry_warning_ms == UINT64_C(60) * 86400000);
    assert_true(l->early_data);
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      expiry_warning: 365d\n") BACKEND_OK);
    assert_non_null(config);
    assert_true(config->listeners[0].expiry_warning_ms == UINT64_C(365) * 86400000);
    config_free(config);

    expect_errors(LISTENER_HEAD TLS_WITH("      alpn: [h2, \"\", \"a b\", h2]\n"
                                         "      sni_strict: 1\n"
                                         "      early_data: [true]\n"
                                         "      expiry_warning: 366d\n") BACKEND_H2,
                  "t.yaml:8:18: invalid ALPN protocol ''; expected 1 to 255 printable "
                  "characters without spaces (e.g. h2, http/1.1)\n"
                  "t.yaml:8:22: invalid ALPN protocol 'a b'; expected 1 to 255 printable "
                  "characters without spaces (e.g. h2, http/1.1)\n"
                  "t.yaml:8:29: duplicate 'h2' in 'alpn' (first listed at 8:14)\n"
                  "t.yaml:9:19: invalid sni_strict '1'; expected true or false\n"
                  "t.yaml:10:19: expected true or false for 'early_data', got a sequence\n"
                  "t.yaml:11:23: invalid duration '366d' for 'expiry_warning'; expected a "
                  "whole number above 0 with a unit ms, s, m, h or d, at most 365d (e.g. "
                  "21d)\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      alpn_required: true\n") BACKEND_OK,
                  "t.yaml:8:22: alpn_required needs 'alpn': the protocols a client must "
                  "offer one of\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      groups: [P-256, X25519, P-256]\n") BACKEND_OK,
                  "t.yaml:8:31: duplicate 'P-256' in 'groups' (first listed at 8:16)\n");
}

static void test_h2_in_tcp_mode_needs_an_h2_backend(void **state)
{
    struct config *config;

    (void)state;
    config = load(MINIMAL);
    assert_non_null(config);
    assert_int_equal(config->listeners[0].backend->protocol, CFG_BACKEND_HTTP1);
    config_free(config);
    config = load(LISTENER_HEAD TLS_WITH("      alpn: [http/1.1]\n") BACKEND_OK);
    assert_non_null(config);
    config_free(config);
    expect_errors(
        LISTENER_HEAD TLS_WITH("      alpn: [http/1.1, h2]\n") BACKEND_OK,
        "t.yaml:8:24: alpn offers h2, but the backend gets the client's bytes "
        "unchanged and speaks HTTP/1.1: a client that picks h2 would get an empty "
        "reply; remove h2, or set 'backend.protocol: h2' if the backend speaks HTTP/2 "
        "itself\n");
    expect_errors(LISTENER_HEAD TLS_OK BACKEND_OK "      protocol: h3\n",
                  "t.yaml:10:17: invalid protocol 'h3'; allowed: http/1.1, h2\n");
}

static void test_fifo_refused(void **state)
{
    (void)state;
    expect_errors(LISTENER_HEAD "    tls:\n"
                                "      certificates:\n"
                                "        - cert: fifo\n"
                                "          key: key.pem\n" BACKEND_OK,
                  "t.yaml:6:17: cannot read certificate file 'fifo' (relative to the working directory DIR): not a regular file (a "
                  "FIFO)\n");
    expect_errors("session_tickets: {key_file: fifo}\n" LISTENER_HEAD TLS_OK BACKEND_OK,
                  "t.yaml:1:29: cannot read session ticket key file 'fifo' (relative to the working directory DIR): not a regular file "
                  "(a FIFO)\n");
}

static void test_admin_address_of_a_listener(void **state)
{
    (void)state;
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    listen: [\"127.0.0.1:8443\", \"127.0.0.1:9100\"]\n" TLS_OK BACKEND_OK
                  "admin:\n"
                  "  listen: \"127.0.0.1:9100\"\n",
                  "t.yaml:11:11: admin listen address '127.0.0.1:9100' is also a listen "
                  "address of listener 'edge' (at 3:32); give the admin endpoint an address "
                  "of its own\n");
    expect_errors(
        "listeners:\n"
        "  - name: edge\n"
        "    listen: [\"0.0.0.0:9100\", \"[::]:9200\"]\n" TLS_OK BACKEND_OK "admin:\n"
        "  listen: \"127.0.0.1:9100\"\n",
        "t.yaml:11:11: admin listen address '127.0.0.1:9100' cannot be bound beside "
        "listen address '0.0.0.0:9100' of listener 'edge' (at 3:14), which takes that "
        "port on every address; give the admin endpoint a port of its own\n");
    expect_errors("listeners:\n"
                  "  - name: edge\n"
                  "    listen: [\"0.0.0.0:9100\", \"[::]:9200\"]\n" TLS_OK BACKEND_OK "admin:\n"
                  "  listen: \"[::1]:9200\"\n",
                  "t.yaml:11:11: admin listen address '[::1]:9200' cannot be bound beside "
                  "listen address '[::]:9200' of listener 'edge' (at 3:30), which takes that "
                  "port on every address; give the admin endpoint a port of its own\n");
    /* IPv6 listeners are IPV6_V6ONLY: [::] leaves IPv4's port alone. */
    config_free(load("listeners:\n"
                     "  - name: edge\n"
                     "    listen: [\"[::]:9100\"]\n" TLS_OK BACKEND_OK "admin:\n"
                     "  listen: \"127.0.0.1:9100\"\n"));
    assert_string_equal(config_fixture_errors, "");
    /* Port 0 is a fresh port each time: no collision. */
    config_free(load(LISTENER_HEAD TLS_OK BACKEND_OK "admin:\n"
                                                     "  listen: \"127.0.0.1:0\"\n"));
    assert_string_equal(config_fixture_errors, "");
}

static void test_client_auth(void **state)
{
    struct config *config;
    const struct cfg_client_auth *auth;

    (void)state;
    config = load(LISTENER_HEAD TLS_WITH("      client_auth:\n"
                                         "        mode: required\n"
                                         "        ca: cert.pem\n"
                                         "        crl: cert2.pem\n"
                                         "        depth: 2\n") BACKEND_OK);
    assert_non_null(config);
    auth = &config->listeners[0].client_auth;
    assert_int_equal(auth->mode, CFG_CLIENT_AUTH_REQUIRED);
    assert_string_equal(auth->ca_path, "cert.pem");
    assert_int_equal(auth->ca_pos.line, 10);
    assert_int_equal(auth->ca_pos.col, 13);
    assert_string_equal(auth->crl_path, "cert2.pem");
    assert_int_equal(auth->crl_pos.line, 11);
    assert_int_equal(auth->depth, 2);
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      client_auth: {mode: optional, ca: cert.pem}\n")
                      BACKEND_OK);
    assert_non_null(config);
    assert_int_equal(config->listeners[0].client_auth.mode, CFG_CLIENT_AUTH_OPTIONAL);
    assert_null(config->listeners[0].client_auth.crl_path);
    config_free(config);

    expect_errors(LISTENER_HEAD TLS_WITH("      client_auth: {mode: required}\n") BACKEND_OK,
                  "t.yaml:8:27: client_auth mode 'required' needs 'ca': the CA certificates "
                  "that client certificates must chain to\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      client_auth: {mode: none, crl: cert.pem}\n")
                      BACKEND_OK,
                  "t.yaml:8:38: crl has no effect with client_auth mode 'none'; remove it or "
                  "set mode: optional or required\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      client_auth:\n"
                                         "        mode: always\n"
                                         "        ca: missing.pem\n"
                                         "        depth: 17\n"
                                         "        dept: 1\n") BACKEND_OK,
                  "t.yaml:9:15: invalid mode 'always'; allowed: none, optional, required\n"
                  "t.yaml:10:13: cannot read CA file 'missing.pem' (relative to the working directory DIR): No such file or "
                  "directory\n"
                  "t.yaml:11:16: invalid depth '17'; expected an integer from 1 to 16\n"
                  "t.yaml:12:9: unknown key 'dept' in client_auth; allowed: mode, ca, crl, "
                  "depth\n");
    expect_errors(LISTENER_HEAD TLS_WITH("      client_auth: {ca: cert.pem}\n") BACKEND_OK,
                  "t.yaml:8:20: client_auth is missing required key 'mode'\n");
}

static void test_ocsp_files(void **state)
{
    struct config *config;

    (void)state;
    config = load(LISTENER_HEAD
                  "    tls:\n"
                  "      certificates:\n"
                  "        - {cert: cert.pem, key: key.pem, ocsp: cert2.pem}\n" BACKEND_OK);
    assert_non_null(config);
    assert_string_equal(config->listeners[0].certs[0].ocsp_path, "cert2.pem");
    assert_int_equal(config->listeners[0].certs[0].ocsp_pos.col, 48);
    config_free(config);
    expect_errors(LISTENER_HEAD
                  "    tls:\n"
                  "      certificates:\n"
                  "        - {cert: cert.pem, key: key.pem, ocsp: nope.der}\n" BACKEND_OK,
                  "t.yaml:6:48: cannot read OCSP response file 'nope.der' (relative to the working directory DIR): No such file or "
                  "directory\n");
}

static void test_top_level_reload_and_tickets(void **state)
{
    struct config *config;

    (void)state;
    config = load("reload_on_change: true\n"
                  "session_tickets: {rotate: 30m, lifetime: 7d, key_file: cert.pem}\n" MINIMAL);
    assert_non_null(config);
    assert_true(config->reload_on_change);
    assert_true(config->session_tickets.enabled);
    assert_int_equal(config->session_tickets.rotate_ms, 1800000);
    assert_int_equal(config->session_tickets.lifetime_ms, 604800000);
    assert_string_equal(config->session_tickets.key_file, "cert.pem");
    assert_int_equal(config->session_tickets.key_file_pos.line, 2);
    config_free(config);

    config = load("session_tickets: false\n" MINIMAL);
    assert_non_null(config);
    assert_false(config->session_tickets.enabled);
    config_free(config);

    config = load("session_tickets: {rotate: 2h}\n" MINIMAL);
    assert_non_null(config);
    assert_int_equal(config->session_tickets.rotate_ms, 7200000);
    assert_int_equal(config->session_tickets.lifetime_ms, 43200000);
    config_free(config);

    expect_errors("session_tickets: off\n" MINIMAL,
                  "t.yaml:1:18: invalid session_tickets 'off'; expected false, true or a "
                  "mapping with rotate, lifetime, key_file\n");
    expect_errors("session_tickets: {rotate: 13h}\n" MINIMAL,
                  "t.yaml:1:27: session_tickets lifetime 12h (the default) is shorter than "
                  "rotate 13h: a ticket must stay valid at least until its key is rotated\n");
    expect_errors("session_tickets:\n"
                  "  rotate: 8d\n"
                  "  lifetime: 1h\n"
                  "  key_file: nope.key\n"
                  "reload_on_change: maybe\n" MINIMAL,
                  "t.yaml:2:11: invalid duration '8d' for 'rotate'; expected a whole number "
                  "above 0 with a unit ms, s, m, h or d, at most 7d (e.g. 1h, 12h)\n"
                  "t.yaml:4:13: cannot read session ticket key file 'nope.key' (relative to the working directory DIR): No such file "
                  "or directory\n"
                  "t.yaml:5:19: invalid reload_on_change 'maybe'; expected true or false\n");
    expect_errors("session_tickets: {rotate: 2h, lifetime: 1h}\n" MINIMAL,
                  "t.yaml:1:41: session_tickets lifetime 1h is shorter than rotate 2h: a "
                  "ticket must stay valid at least until its key is rotated\n");
}

static void test_every_error_reported_once_in_order(void **state)
{
    (void)state;
    expect_errors(
        "drain_timeout: soon\n"
        "listeners:\n"
        "  - name: a\n"
        "    listen: \"127.0.0.1:7000\"\n"
        "    tls:\n"
        "      certificates: [{cert: nope.pem, key: key.pem}]\n"
        "      ciphers: [AES256-SHA]\n"
        "    backend: {servers: \"127.0.0.1:80\"}\n"
        "  - name: a\n"
        "    listen: \"127.0.0.1:7000\"\n"
        "    tls: {certificates: [{cert: cert.pem, key: key.pem}], groups: [P-999]}\n"
        "    backend: {severs: [\"127.0.0.1:80\"]}\n"
        "    max_connections: 0\n",
        "t.yaml:1:16: invalid duration 'soon' for 'drain_timeout'; expected a whole "
        "number above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
        "t.yaml:6:29: cannot read certificate file 'nope.pem' (relative to the working directory DIR): No such file or "
        "directory\n"
        "t.yaml:7:17: cipher suite 'AES256-SHA' is not allowed: tlsterm only "
        "offers " LEGACY_HINT
        "t.yaml:9:11: duplicate listener name 'a' (first defined at 3:11)\n"
        "t.yaml:10:13: duplicate listen address '127.0.0.1:7000' (first defined at "
        "4:13)\n"
        "t.yaml:11:68: unknown group 'P-999'; allowed: X25519, P-256, P-384, P-521\n"
        "t.yaml:12:15: unknown key 'severs' in backend; did you mean 'servers'? "
        "allowed: servers, protocol, max_connections, pool, source, proxy_protocol, "
        "proxy_protocol_unique_id, proxy_protocol_crc32c, balance, retries, resolve_interval, "
        "resolve, health\n"
        "t.yaml:13:22: invalid max_connections '0'; expected an integer from 1 to "
        "1000000\n");
}

/* HTTP_MODE ends MINIMAL with line 10: the listener's mode, after tls. */
#define HTTP_MODE "    mode: http\n"

static void test_http_mode_defaults(void **state)
{
    struct config *config = load(MINIMAL HTTP_MODE);
    const struct cfg_listener *l;

    (void)state;
    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    assert_true(config->log_access);
    l = &config->listeners[0];
    assert_int_equal(l->mode, CFG_MODE_HTTP);
    assert_int_equal(l->backend->protocol, CFG_BACKEND_HTTP1);
    /* No tls.alpn: h2 first, then http/1.1. */
    assert_int_equal(l->alpn_len, 12);
    assert_memory_equal(l->alpn, "\x02h2\x08http/1.1", 12);
    assert_false(l->alpn_required);
    assert_true(l->http.x_forwarded);
    assert_false(l->http.forwarded);
    assert_null(l->http.trusted_proxies);
    assert_int_equal(l->http.num_trusted_proxies, 0);
    assert_string_equal(l->http.request_id, "X-Request-Id");
    assert_false(l->http.client_cert_header);
    assert_int_equal(l->http.max_request_header_bytes, 64 * 1024);
    assert_int_equal(l->http2.max_concurrent_streams, 100);
    assert_int_equal(l->http2.initial_window, 256 * 1024);
    assert_int_equal(l->http2.connection_window, 1024 * 1024);
    assert_int_equal(l->http2.header_table_size, 4096);
    assert_int_equal(l->http2.reset_burst, 1000);
    assert_int_equal(l->http2.reset_rate, 33);
    assert_int_equal(l->http2.glitch_burst, 1000);
    assert_int_equal(l->http2.glitch_rate, 330);
    assert_int_equal(l->http2.max_continuations, 8);
    assert_int_equal(l->http2.max_streams_per_connection, 10000);
    assert_int_equal(l->http2.max_outbound_acks, 1000);
    assert_int_equal(l->http2.max_outbound_frames, 10000);
    assert_int_equal(l->http2.settings_timeout_ms, 10000);
    assert_int_equal(l->http2.write_timeout_ms, 30000);
    assert_int_equal(l->backend->max_connections, 0);
    assert_int_equal(l->backend->pool_idle_timeout_ms, 2000);
    assert_int_equal(l->backend->pool_max_idle, 64);
    assert_int_equal(l->request_header_timeout_ms, 10000);
    assert_int_equal(l->backend_response_timeout_ms, 60000);
    assert_int_equal(l->queue_timeout_ms, 5000);
    config_free(config);

    /* tcp mode, the default: no ALPN and no request ID unless written. */
    config = load(MINIMAL "    mode: tcp\n");
    assert_non_null(config);
    l = &config->listeners[0];
    assert_int_equal(l->mode, CFG_MODE_TCP);
    assert_null(l->alpn);
    assert_null(l->http.request_id);
    config_free(config);
}

static void test_http_mode_all_keys(void **state)
{
    struct config *config =
        load("log: {access: false}\n" LISTENER_HEAD TLS_WITH(
            "      client_auth: {mode: optional, ca: cert.pem}\n") BACKEND_OK
             "      max_connections: 32\n"
             "      pool: {idle_timeout: 1500ms, max_idle: 0}\n"
             "    http:\n"
             "      x_forwarded: false\n"
             "      forwarded: true\n"
             "      trusted_proxies: [\"10.0.0.0/8\", \"::1/128\", 192.168.1.7, "
             "\"2001:db8::/32\", 0.0.0.0/0]\n"
             "      request_id: Request-ID_2\n"
             "      client_cert_header: true\n"
             "      max_request_header_bytes: 1MiB\n"
             "    http2: {max_concurrent_streams: 10000, initial_window: 2147483647,\n"
             "            connection_window: 65535}\n"
             "    timeouts: {request_header: 2s, backend_response: 2m, queue: 100ms}\n"
             "    mode: http\n");
    const struct cfg_listener *l;
    const struct cfg_cidr *cidr;

    (void)state;
    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    assert_false(config->log_access);
    l = &config->listeners[0];
    assert_int_equal(l->mode, CFG_MODE_HTTP);
    assert_int_equal(l->backend->max_connections, 32);
    assert_int_equal(l->backend->pool_idle_timeout_ms, 1500);
    assert_int_equal(l->backend->pool_max_idle, 0);
    assert_false(l->http.x_forwarded);
    assert_true(l->http.forwarded);
    assert_int_equal(l->http.num_trusted_proxies, 5);
    cidr = l->http.trusted_proxies;
    assert_int_equal(cidr[0].family, AF_INET);
    assert_memory_equal(cidr[0].addr, "\x0a\x00\x00\x00", 4);
    assert_int_equal(cidr[0].prefix, 8);
    assert_int_equal(cidr[1].family, AF_INET6);
    assert_memory_equal(cidr[1].addr, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    assert_int_equal(cidr[1].prefix, 128);
    assert_int_equal(cidr[2].family, AF_INET);
    assert_memory_equal(cidr[2].addr, "\xc0\xa8\x01\x07", 4);
    assert_int_equal(cidr[2].prefix, 32);
    assert_int_equal(cidr[3].family, AF_INET6);
    assert_memory_equal(cidr[3].addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    assert_int_equal(cidr[3].prefix, 32);
    assert_int_equal(cidr[4].prefix, 0);
    assert_string_equal(l->http.request_id, "Request-ID_2");
    assert_true(l->http.client_cert_header);
    assert_int_equal(l->http.max_request_header_bytes, 1024 * 1024);
    assert_int_equal(l->http2.max_concurrent_streams, 10000);
    assert_int_equal(l->http2.initial_window, 2147483647);
    assert_int_equal(l->http2.connection_window, 65535);
    assert_int_equal(l->request_header_timeout_ms, 2000);
    assert_int_equal(l->backend_response_timeout_ms, 120000);
    assert_int_equal(l->queue_timeout_ms, 100);
    config_free(config);

    /* One address for trusted_proxies; request_id false and true; sizes in
     * bytes and KiB; an empty trusted_proxies. */
    config =
        load(MINIMAL HTTP_MODE "    http: {trusted_proxies: \"fe80::/10\", request_id: false,\n"
                               "           max_request_header_bytes: 1024}\n"
                               "    http2: {initial_window: 1, connection_window: 64KiB}\n"
                               "  - name: two\n"
                               "    listen: \"127.0.0.1:0\"\n" TLS_OK BACKEND_OK HTTP_MODE
                               "    http: {trusted_proxies: [], request_id: true}\n");
    assert_non_null(config);
    l = &config->listeners[0];
    assert_int_equal(l->http.num_trusted_proxies, 1);
    assert_int_equal(l->http.trusted_proxies[0].prefix, 10);
    assert_memory_equal(l->http.trusted_proxies[0].addr, "\xfe\x80", 2);
    assert_null(l->http.request_id);
    assert_int_equal(l->http.max_request_header_bytes, 1024);
    assert_int_equal(l->http2.initial_window, 1);
    assert_int_equal(l->http2.connection_window, 65536);
    l = &config->listeners[1];
    assert_int_equal(l->http.num_trusted_proxies, 0);
    assert_string_equal(l->http.request_id, "X-Request-Id");
    config_free(config);
}

static void test_http2_limits(void **state)
{
    struct config *config =
        load(MINIMAL HTTP_MODE "    http2:\n"
                               "      header_table_size: 0\n"
                               "      reset_burst: 10\n"
                               "      reset_rate: 1\n"
                               "      glitch_burst: 1000000\n"
                               "      glitch_rate: 5\n"
                               "      max_continuations: 0\n"
                               "      max_streams_per_connection: 1073741824\n"
                               "      max_outbound_acks: 20\n"
                               "      max_outbound_frames: 50\n"
                               "      settings_timeout: 500ms\n"
                               "      write_timeout: 2m\n");
    const struct cfg_http2 *h2;

    (void)state;
    assert_non_null(config);
    assert_string_equal(config_fixture_errors, "");
    h2 = &config->listeners[0].http2;
    assert_int_equal(h2->header_table_size, 0);
    assert_int_equal(h2->reset_burst, 10);
    assert_int_equal(h2->reset_rate, 1);
    assert_int_equal(h2->glitch_burst, 1000000);
    assert_int_equal(h2->glitch_rate, 5);
    assert_int_equal(h2->max_continuations, 0);
    assert_int_equal(h2->max_streams_per_connection, 1U << 30);
    assert_int_equal(h2->max_outbound_acks, 20);
    assert_int_equal(h2->max_outbound_frames, 50);
    assert_int_equal(h2->settings_timeout_ms, 500);
    assert_int_equal(h2->write_timeout_ms, 120000);
    config_free(config);

    /* Each out of range, at its value. */
    expect_errors(
        MINIMAL HTTP_MODE "    http2:\n"
                          "      header_table_size: 65537\n"
                          "      reset_burst: 0\n"
                          "      reset_rate: 1000001\n"
                          "      glitch_burst: -1\n"
                          "      glitch_rate: 0\n"
                          "      max_continuations: 1001\n"
                          "      max_streams_per_connection: 0\n"
                          "      max_outbound_acks: 0\n"
                          "      max_outbound_frames: x\n"
                          "      settings_timeout: 0s\n"
                          "      write_timeout: 25h\n"
                          "      glitches: 1\n",
        "t.yaml:12:26: invalid header_table_size '65537'; expected a size from 0 to 64KiB: a "
        "number of bytes, or a whole number with KiB or MiB (e.g. 64KiB)\n"
        "t.yaml:13:20: invalid reset_burst '0'; expected an integer from 1 to 1000000\n"
        "t.yaml:14:19: invalid reset_rate '1000001'; expected an integer from 1 to 1000000\n"
        "t.yaml:15:21: invalid glitch_burst '-1'; expected an integer from 1 to 1000000\n"
        "t.yaml:16:20: invalid glitch_rate '0'; expected an integer from 1 to 1000000\n"
        "t.yaml:17:26: invalid max_continuations '1001'; expected an integer from 0 to 1000\n"
        "t.yaml:18:35: invalid max_streams_per_connection '0'; expected an integer from 1 to "
        "1073741824\n"
        "t.yaml:19:26: invalid max_outbound_acks '0'; expected an integer from 1 to 1000000\n"
        "t.yaml:20:28: invalid max_outbound_frames 'x'; expected an integer from 1 to "
        "1000000\n"
        "t.yaml:21:25: invalid duration '0s' for 'settings_timeout'; expected a whole number "
        "above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
        "t.yaml:22:22: invalid duration '25h' for 'write_timeout'; expected a whole number "
        "above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
        "t.yaml:23:7: unknown key 'glitches' in http2; allowed: "
        "max_concurrent_streams, initial_window, connection_window, header_table_size, "
        "reset_burst, reset_rate, glitch_burst, glitch_rate, max_continuations, "
        "max_streams_per_connection, max_outbound_acks, max_outbound_frames, "
        "settings_timeout, write_timeout\n");
}

static void test_http_keys_refused_in_tcp_mode(void **state)
{
    (void)state;
    /* Reported in file order, at each key; "mode: tcp" written or not. */
    expect_errors(MINIMAL "      max_connections: 4\n"
                          "      pool: {max_idle: 1}\n"
                          "    http: {x_forwarded: false}\n"
                          "    http2: {}\n"
                          "    timeouts: {idle: 1s, request_header: 1s, backend_response: 1s, "
                          "queue: 1s}\n",
                  "t.yaml:10:7: http settings need mode: http: this listener is in tcp mode, "
                  "where 'backend.max_connections' has no effect; add 'mode: "
                  "http' or remove it\n"
                  "t.yaml:11:7: http settings need mode: http: this listener is in tcp mode, "
                  "where 'backend.pool' has no effect; add 'mode: http' or "
                  "remove it\n"
                  "t.yaml:12:5: http settings need mode: http: this listener is in tcp mode, "
                  "where 'http' has no effect; add 'mode: http' or remove it\n"
                  "t.yaml:13:5: http settings need mode: http: this listener is in tcp mode, "
                  "where 'http2' has no effect; add 'mode: http' or remove it\n"
                  "t.yaml:14:26: http settings need mode: http: this listener is in tcp mode, "
                  "where 'timeouts.request_header' has no effect; add 'mode: "
                  "http' or remove it\n"
                  "t.yaml:14:46: http settings need mode: http: this listener is in tcp mode, "
                  "where 'timeouts.backend_response' has no effect; add 'mode: "
                  "http' or remove it\n"
                  "t.yaml:14:68: http settings need mode: http: this listener is in tcp mode, "
                  "where 'timeouts.queue' has no effect; add 'mode: http' or "
                  "remove it\n");
    expect_errors(
        MINIMAL "    mode: tcp\n"
                "    http2: {max_concurrent_streams: 5}\n",
        "t.yaml:11:5: http settings need mode: http: this listener is in tcp mode, "
        "where 'http2' has no effect; add 'mode: http' or remove it\n");
    /* A bad mode is reported alone: what depends on it would be noise. */
    expect_errors(MINIMAL "    mode: https\n"
                          "    http: {}\n",
                  "t.yaml:10:11: invalid mode 'https'; did you mean 'http'? allowed: tcp, http, "
                  "redirect\n");
}

static void test_http_mode_errors(void **state)
{
    (void)state;
    expect_errors(MINIMAL "      max_connections: -1\n"
                          "      pool: {idle_timeout: 0s, max_idle: 1000001, max: 1}\n"
                          "    http:\n"
                          "      x_forwarded: yes\n"
                          "      request_id: \"X Request\"\n"
                          "      max_request_header_bytes: 1023\n"
                          "      request_ids: a\n"
                          "    http2:\n"
                          "      max_concurrent_streams: 10001\n"
                          "      initial_window: 2048MiB\n"
                          "      connection_window: 65534\n"
                          "    timeouts: {request_header: 0s, queue: 5}\n" HTTP_MODE
                          "log: {access: no}\n",
                  "t.yaml:10:24: invalid max_connections '-1'; expected an integer from 0 to "
                  "1000000\n"
                  "t.yaml:11:28: invalid duration '0s' for 'idle_timeout'; expected a whole "
                  "number above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, "
                  "5m)\n"
                  "t.yaml:11:42: invalid max_idle '1000001'; expected an integer from 0 to "
                  "1000000\n"
                  "t.yaml:11:51: unknown key 'max' in pool; allowed: idle_timeout, max_idle\n"
                  "t.yaml:13:20: invalid x_forwarded 'yes'; expected true or false\n"
                  "t.yaml:14:19: invalid request_id 'X Request'; expected a header name "
                  "(letters, digits and !#$%&'*+-.^_`|~, e.g. X-Request-Id) or false\n"
                  "t.yaml:15:33: invalid max_request_header_bytes '1023'; expected a size from "
                  "1KiB to 1MiB: a number of bytes, or a whole number with KiB or MiB (e.g. "
                  "64KiB)\n"
                  "t.yaml:16:7: unknown key 'request_ids' in http; "
                  "allowed: x_forwarded, forwarded, trusted_proxies, request_id, "
                  "client_cert_header, max_request_header_bytes, hsts\n"
                  "t.yaml:18:31: invalid max_concurrent_streams '10001'; expected an integer "
                  "from 1 to 10000\n"
                  "t.yaml:19:23: invalid initial_window '2048MiB'; expected a size from 1 to "
                  "2147483647: a number of bytes, or a whole number with KiB or MiB (e.g. "
                  "64KiB)\n"
                  "t.yaml:20:26: invalid connection_window '65534'; expected a size from 65535 "
                  "to 2147483647: a number of bytes, or a whole number with KiB or MiB (e.g. "
                  "64KiB)\n"
                  "t.yaml:21:32: invalid duration '0s' for 'request_header'; expected a whole "
                  "number above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, "
                  "5m)\n"
                  "t.yaml:21:43: invalid duration '5' for 'queue'; expected a whole number "
                  "above 0 with a unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)\n"
                  "t.yaml:23:15: invalid access 'no'; expected true or false\n");
    /* Sizes: no spaces, no other units, no lower case. */
    expect_errors(MINIMAL HTTP_MODE
                  "    http2: {initial_window: 64 KiB, connection_window: 1mib}\n",
                  "t.yaml:11:29: invalid initial_window '64 KiB'; expected a size from 1 to "
                  "2147483647: a number of bytes, or a whole number with KiB or MiB (e.g. "
                  "64KiB)\n"
                  "t.yaml:11:56: invalid connection_window '1mib'; expected a size from 65535 "
                  "to 2147483647: a number of bytes, or a whole number with KiB or MiB (e.g. "
                  "64KiB)\n");
    expect_errors(MINIMAL HTTP_MODE "    http: [x_forwarded]\n",
                  "t.yaml:11:11: expected a mapping for 'http', got a sequence\n");
}

static void test_http_mode_cross_checks(void **state)
{
    (void)state;
    /* client_cert_header needs client_auth, wherever the keys stand. */
    expect_errors(LISTENER_HEAD HTTP_MODE
                  "    http: {client_cert_header: true}\n" TLS_OK BACKEND_OK,
                  "t.yaml:5:32: client_cert_header needs client certificates: set "
                  "tls.client_auth.mode to optional or required, or remove it\n");
    /* backend.protocol h2 is a tcp-mode pass-through. */
    expect_errors(MINIMAL "      protocol: h2\n" HTTP_MODE,
                  "t.yaml:10:17: backend protocol h2 needs mode tcp: in mode http tlsterm "
                  "speaks HTTP/1.1 to the backend; remove 'protocol: h2', or use mode tcp to "
                  "pass h2 through\n");
}

static void test_http_mode_alpn(void **state)
{
    struct config *config;

    (void)state;
    /* h2 needs no h2 backend in http mode; the order given is kept. */
    config = load(LISTENER_HEAD TLS_WITH("      alpn: [http/1.1, h2]\n") BACKEND_OK HTTP_MODE);
    assert_non_null(config);
    assert_int_equal(config->listeners[0].alpn_len, 12);
    assert_memory_equal(config->listeners[0].alpn, "\x08http/1.1\x02h2", 12);
    config_free(config);

    config = load(LISTENER_HEAD TLS_WITH("      alpn: [http/1.1]\n") BACKEND_OK HTTP_MODE);
    assert_non_null(config);
    assert_memory_equal(config->listeners[0].alpn, "\x08http/1.1", 9);
    config_free(config);

    /* alpn_required with the default alpn. */
    config = load(LISTENER_HEAD TLS_WITH("      alpn_required: true\n") BACKEND_OK HTTP_MODE);
    assert_non_null(config);
    assert_true(config->listeners[0].alpn_required);
    assert_int_equal(config->listeners[0].alpn_len, 12);
    config_free(config);

    expect_errors(LISTENER_HEAD TLS_WITH("      alpn: [h2, spdy/3, http/1.1, h3]\n")
                      BACKEND_OK HTTP_MODE,
                  "t.yaml:8:18: alpn offers 'spdy/3', which mode http does not serve; "
                  "allowed: h2, http/1.1 (leave alpn out for both)\n"
                  "t.yaml:8:36: alpn offers 'h3', which mode http does not serve; allowed: h2, "
                  "http/1.1 (leave alpn out for both)\n");
}

static void test_trusted_proxies(void **state)
{
    (void)state;
    expect_errors(
        MINIMAL HTTP_MODE "    http:\n"
                          "      trusted_proxies:\n"
                          "        - 10.0.0.1/8\n"
                          "        - \"::1/129\"\n"
                          "        - 10.0.0.0/33\n"
                          "        - nope\n"
                          "        - 10.0.0.0/08\n"
                          "        - \"10.0.0.0/\"\n"
                          "        - 10.0.0.0/8 \n"
                          "        - [1.2.3.4]\n"
                          "        - \"[::1]\"\n"
                          "        - 1.2.3.4/-1\n"
                          "        - 2001:db8::1/64\n",
        "t.yaml:13:11: invalid trusted_proxies entry '10.0.0.1/8': bits past the /8 "
        "prefix are set; did you mean 10.0.0.0/8?\n"
        "t.yaml:14:11: invalid trusted_proxies entry '::1/129': the prefix length "
        "must be 0 to 128 for an IPv6 address\n"
        "t.yaml:15:11: invalid trusted_proxies entry '10.0.0.0/33': the prefix length "
        "must be 0 to 32 for an IPv4 address\n"
        "t.yaml:16:11: invalid trusted_proxies entry 'nope': expected an IPv4 or IPv6 "
        "address or CIDR, such as 10.0.0.0/8 or ::1/128\n"
        "t.yaml:18:11: invalid trusted_proxies entry '10.0.0.0/': the prefix length "
        "must be 0 to 32 for an IPv4 address\n"
        "t.yaml:19:11: duplicate '10.0.0.0/8' in 'trusted_proxies' (first listed at "
        "17:11)\n"
        "t.yaml:20:11: expected an address or CIDR for 'trusted_proxies', got a "
        "sequence\n"
        "t.yaml:21:11: invalid trusted_proxies entry '[::1]': expected an IPv4 or "
        "IPv6 address or CIDR, such as 10.0.0.0/8 or ::1/128\n"
        "t.yaml:22:11: invalid trusted_proxies entry '1.2.3.4/-1': the prefix length "
        "must be 0 to 32 for an IPv4 address\n"
        "t.yaml:23:11: invalid trusted_proxies entry '2001:db8::1/64': bits past the "
        "/64 prefix are set; did you mean 2001:db8::/64?\n");
    expect_errors(MINIMAL HTTP_MODE "    http: {trusted_proxies: {a: b}}\n",
                  "t.yaml:11:29: expected a string or a sequence of strings for "
                  "'trusted_proxies', got a mapping\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_minimal_config_and_defaults, config_fixture_reset),
        cmocka_unit_test_teardown(test_full_config, config_fixture_reset),
        cmocka_unit_test_teardown(test_parse_duration, config_fixture_reset),
        cmocka_unit_test_teardown(test_reload_poll_interval, config_fixture_reset),
        cmocka_unit_test_teardown(test_cfg_error_format, config_fixture_reset),
        cmocka_unit_test_teardown(test_print_errors_capped, config_fixture_reset),
        cmocka_unit_test_teardown(test_empty_files, config_fixture_reset),
        cmocka_unit_test_teardown(test_missing_file, config_fixture_reset),
        cmocka_unit_test_teardown(test_yaml_errors_pass_through, config_fixture_reset),
        cmocka_unit_test_teardown(test_unknown_keys, config_fixture_reset),
        cmocka_unit_test_teardown(test_missing_required_keys, config_fixture_reset),
        cmocka_unit_test_teardown(test_drain_delay, config_fixture_reset),
        cmocka_unit_test_teardown(test_wrong_types, config_fixture_reset),
        cmocka_unit_test_teardown(test_empty_sequences, config_fixture_reset),
        cmocka_unit_test_teardown(test_durations, config_fixture_reset),
        cmocka_unit_test_teardown(test_log_and_user, config_fixture_reset),
        cmocka_unit_test_teardown(test_listener_names, config_fixture_reset),
        cmocka_unit_test_teardown(test_listen_addresses, config_fixture_reset),
        cmocka_unit_test_teardown(test_listen_every_address, config_fixture_reset),
        cmocka_unit_test_teardown(test_bad_addresses, config_fixture_reset),
        cmocka_unit_test_teardown(test_certificate_files, config_fixture_reset),
        cmocka_unit_test_teardown(test_tls_versions, config_fixture_reset),
        cmocka_unit_test_teardown(test_ciphers, config_fixture_reset),
        cmocka_unit_test_teardown(test_groups, config_fixture_reset),
        cmocka_unit_test_teardown(test_max_connections, config_fixture_reset),
        cmocka_unit_test_teardown(test_enum_values_get_a_suggestion, config_fixture_reset),
        cmocka_unit_test_teardown(test_policy_presets, config_fixture_reset),
        cmocka_unit_test_teardown(test_allow_legacy, config_fixture_reset),
        cmocka_unit_test_teardown(test_report_only, config_fixture_reset),
        cmocka_unit_test_teardown(test_alpn_and_switches, config_fixture_reset),
        cmocka_unit_test_teardown(test_h2_in_tcp_mode_needs_an_h2_backend, config_fixture_reset),
        cmocka_unit_test_teardown(test_fifo_refused, config_fixture_reset),
        cmocka_unit_test_teardown(test_admin_address_of_a_listener, config_fixture_reset),
        cmocka_unit_test_teardown(test_client_auth, config_fixture_reset),
        cmocka_unit_test_teardown(test_ocsp_files, config_fixture_reset),
        cmocka_unit_test_teardown(test_top_level_reload_and_tickets, config_fixture_reset),
        cmocka_unit_test_teardown(test_every_error_reported_once_in_order, config_fixture_reset),
        cmocka_unit_test_teardown(test_http_mode_defaults, config_fixture_reset),
        cmocka_unit_test_teardown(test_http_mode_all_keys, config_fixture_reset),
        cmocka_unit_test_teardown(test_http2_limits, config_fixture_reset),
        cmocka_unit_test_teardown(test_http_keys_refused_in_tcp_mode, config_fixture_reset),
        cmocka_unit_test_teardown(test_http_mode_errors, config_fixture_reset),
        cmocka_unit_test_teardown(test_http_mode_cross_checks, config_fixture_reset),
        cmocka_unit_test_teardown(test_http_mode_alpn, config_fixture_reset),
        cmocka_unit_test_teardown(test_trusted_proxies, config_fixture_reset),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
