/* log_test: the exact lines log.c writes to stderr, in JSON and in text.
 *
 * Each test sends fd 2 to a temporary file while it logs, then reads the
 * file back. The timestamp is checked against YYYY-MM-DDTHH:MM:SS.mmmZ and
 * the clock, then replaced by "TS" so the rest of a line can be compared
 * exactly. JSON lines are also run through a strict validator: a log line
 * that a JSON parser rejects is lost to every log pipeline downstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* ---- capturing stderr -------------------------------------------------- */

struct capture {
    int saved_fd;
    int file_fd;
    char path[256];
};

/* capture_start points fd 2 at a new temporary file. */
static void capture_start(struct capture *cap)
{
    const char *dir = getenv("TMPDIR");

    snprintf(cap->path, sizeof(cap->path), "%s/log_test.XXXXXX", dir && *dir ? dir : "/tmp");
    cap->file_fd = mkstemp(cap->path);
    assert_true(cap->file_fd >= 0);
    unlink(cap->path);
    fflush(stderr);
    cap->saved_fd = dup(STDERR_FILENO);
    assert_true(cap->saved_fd >= 0);
    assert_int_equal(dup2(cap->file_fd, STDERR_FILENO), STDERR_FILENO);
}

/* capture_stop restores fd 2 and returns what was written meanwhile, NUL
 * terminated; the caller frees it. */
static char *capture_stop(struct capture *cap, size_t *out_len)
{
    off_t size;
    char *text;

    assert_int_equal(dup2(cap->saved_fd, STDERR_FILENO), STDERR_FILENO);
    close(cap->saved_fd);
    size = lseek(cap->file_fd, 0, SEEK_END);
    assert_true(size >= 0);
    text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(cap->file_fd, text, (size_t)size, 0), size);
    close(cap->file_fd);
    if (out_len != NULL)
        *out_len = (size_t)size;
    return text;
}

/* ---- timestamps ---------------------------------------------------------- */

static const char ts_shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
#define TS_LEN (sizeof(ts_shape) - 1)

/* check_ts fails unless |ts| has the shape YYYY-MM-DDTHH:MM:SS.mmmZ and is
 * within a minute of now (it is UTC: gmtime, not localtime). */
static void check_ts(const char *ts)
{
    struct tm tm = {0};
    char head[20];

    for (size_t i = 0; i < TS_LEN; i++) {
        if (ts_shape[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != ts_shape[i])
            fail_msg("timestamp '%.*s' differs from %s at %zu", (int)TS_LEN, ts, ts_shape, i);
    }
    memcpy(head, ts, 19);
    head[19] = '\0';
    assert_non_null(strptime(head, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t logged = timegm(&tm);
    time_t now = time(NULL);
    assert_true(logged <= now + 1 && logged >= now - 60);
}

/* normalize checks and replaces the timestamp of every line in |text| (the
 * value of "ts" in JSON, the first word in text) with "TS", in place. */
static void normalize(char *text)
{
    static const char json_head[] = "{\"ts\":\"";
    char *line = text;

    while (*line != '\0') {
        char *ts =
            strncmp(line, json_head, strlen(json_head)) == 0 ? line + strlen(json_head) : line;
        check_ts(ts);
        memcpy(ts, "TS", 2);
        memmove(ts + 2, ts + TS_LEN, strlen(ts + TS_LEN) + 1);
        char *newline = strchr(line, '\n');
        if (newline == NULL)
            fail_msg("line without a newline: %s", line);
        line = newline + 1;
    }
}

/* ---- a strict JSON validator --------------------------------------------- */

struct json_cursor {
    const char *p;
    const char *end;
};

static bool json_value(struct json_cursor *c, int depth);

static bool json_literal(struct json_cursor *c, const char *word)
{
    size_t len = strlen(word);
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0)
        return false;
    c->p += len;
    return true;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static bool is_hex(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* json_string accepts a string of printable ASCII and escapes: log.c
 * escapes every other byte, so raw bytes >= 0x80 are refused too. */
static bool json_string(struct json_cursor *c)
{
    if (c->p == c->end || *c->p != '"')
        return false;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            return true;
        if (ch < 0x20 || ch >= 0x80)
            return false;
        if (ch != '\\')
            continue;
        if (c->p == c->end)
            return false;
        ch = (unsigned char)*c->p++;
        if (ch == 'u') {
            for (int i = 0; i < 4; i++) {
                if (c->p == c->end || !is_hex(*c->p))
                    return false;
                c->p++;
            }
        } else if (strchr("\"\\/bfnrt", ch) == NULL || ch == '\0') {
            return false;
        }
    }
    return false;
}

static bool json_number(struct json_cursor *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p == c->end || !is_digit(*c->p))
        return false;
    if (*c->p == '0') {
        c->p++;
    } else {
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p == c->end || !is_digit(*c->p))
            return false;
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p == c->end || !is_digit(*c->p))
            return false;
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    }
    return true;
}

/* json_container accepts an object, or with |array| an array (as log_strs
 * writes one). */
static bool json_container(struct json_cursor *c, int depth, bool array)
{
    if (!json_literal(c, array ? "[" : "{"))
        return false;
    if (json_literal(c, array ? "]" : "}"))
        return true;
    do {
        if (!array && (!json_string(c) || !json_literal(c, ":")))
            return false;
        if (!json_value(c, depth + 1))
            return false;
    } while (json_literal(c, ","));
    return json_literal(c, array ? "]" : "}");
}

static bool json_value(struct json_cursor *c, int depth)
{
    if (depth > 8 || c->p == c->end)
        return false;
    switch (*c->p) {
    case '{':
    case '[':
        return json_container(c, depth, *c->p == '[');
    case '"':
        return json_string(c);
    case 't':
        return json_literal(c, "true");
    case 'f':
        return json_literal(c, "false");
    case 'n':
        return json_literal(c, "null");
    default:
        return json_number(c);
    }
}

/* is_json_line returns true if |text| is exactly one JSON object (no
 * whitespace, as log.c writes it) followed by one newline. */
static bool is_json_line(const char *text, size_t len)
{
    struct json_cursor c = {text, text + len - 1};

    if (len < 2 || text[len - 1] != '\n')
        return false;
    return json_container(&c, 0, false) && c.p == c.end;
}

static void test_validator_itself(void **state)
{
    static const char *const good[] = {
        "{}\n",
        "{\"a\":\"b\",\"c\":-12,\"d\":null,\"e\":true,\"f\":{\"g\":0.5e+3}}\n",
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00fF\"}\n",
        "{\"a\":[],\"b\":[\"x\",1,[null]]}\n",
    };
    static const char *const bad[] = {
        "{}",
        "{}\n\n",
        "{\"a\":\"b}\n",
        "{\"a\":\"b\",}\n",
        "{\"a\"}\n",
        "{\"a\":01}\n",
        "{\"a\":\"\\u00\"}\n",
        "{\"a\":\"\\x\"}\n",
        "{\"a\":\"\t\"}\n",
        "{\"a\":\"\xc3\xa9\"}\n",
        "{\"a\":\"b\"\n",
        "{\"a\":\"b,\"truncated\":true}\n",
        "{\"a\":[\"x\",]}\n",
        "{\"a\":[\"x\"}\n",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!is_json_line(good[i], strlen(good[i])))
            fail_msg("validator refused %s", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (is_json_line(bad[i], strlen(bad[i])))
            fail_msg("validator accepted %s", bad[i]);
    }
}

/* ---- tests --------------------------------------------------------------- */

/* This test must run first: it checks the settings before any
 * log_configure. */
static void test_defaults_are_json_and_info(void **state)
{
    struct capture cap;
    struct log_line line;
    char *out;

    assert_false(log_enabled(LOG_DEBUG));
    assert_true(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_WARN));
    assert_true(log_enabled(LOG_ERROR));

    capture_start(&cap);
    log_begin(&line, LOG_INFO, "start");
    log_end(&line);
    out = capture_stop(&cap, NULL);
    normalize(out);
    assert_string_equal(out, "{\"ts\":\"TS\",\"level\":\"info\",\"event\":\"start\"}\n");
    free(out);
}

static void test_level_names(void **state)
{
    assert_string_equal(log_level_name(LOG_DEBUG), "debug");
    assert_string_equal(log_level_name(LOG_INFO), "info");
    assert_string_equal(log_level_name(LOG_WARN), "warn");
    assert_string_equal(log_level_name(LOG_ERROR), "error");
}

static void test_enabled_thresholds(void **state)
{
    static const enum log_level levels[] = {LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR};

    for (size_t min = 0; min < 4; min++) {
        log_configure(LOG_FORMAT_JSON, levels[min]);
        for (size_t level = 0; level < 4; level++) {
            if (log_enabled(levels[level]) != (level >= min))
                fail_msg("min %s: log_enabled(%s) is wrong", log_level_name(levels[min]),
                         log_level_name(levels[level]));
        }
    }
}

static void test_json_fields(void **state)
{
    struct capture cap;
    struct log_line line;
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_DEBUG);
    capture_start(&cap);
    log_begin(&line, LOG_WARN, "conn_end");
    log_str(&line, "sni", "example.com");
    log_int(&line, "bytes", -42);
    log_int(&line, "max", 9223372036854775807LL);
    log_int(&line, "min", -9223372036854775807LL - 1);
    log_strn(&line, "alpn", "h2xxxx", 2);
    log_str(&line, "detail", NULL);
    log_strn(&line, "none", NULL, 5);
    log_str(&line, "empty", "");
    log_end(&line);
    log_begin(&line, LOG_DEBUG, "second");
    log_end(&line);
    out = capture_stop(&cap, &len);

    const char *second = strchr(out, '\n') + 1;
    assert_true(is_json_line(out, (size_t)(second - out)));
    assert_true(is_json_line(second, strlen(second)));
    normalize(out);
    assert_string_equal(out, "{\"ts\":\"TS\",\"level\":\"warn\",\"event\":\"conn_end\","
                             "\"sni\":\"example.com\",\"bytes\":-42,"
                             "\"max\":9223372036854775807,\"min\":-9223372036854775808,"
                             "\"alpn\":\"h2\",\"detail\":null,\"none\":null,\"empty\":\"\"}\n"
                             "{\"ts\":\"TS\",\"level\":\"debug\",\"event\":\"second\"}\n");
    free(out);
}

static void test_json_escaping(void **state)
{
    static const char value[] =
        "q\"b\\s/n\nt\tc\x01\x1f del\x7f hi\x80\xff utf8\xc3\xa9 nul\0end";
    struct capture cap;
    struct log_line line;
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    capture_start(&cap);
    log_begin(&line, LOG_ERROR, "client_hello");
    log_strn(&line, "sni", value, sizeof(value) - 1);
    log_str(&line, "cut", value); /* log_str stops at the NUL */
    log_end(&line);
    out = capture_stop(&cap, &len);

    assert_true(is_json_line(out, len));
    normalize(out);
    assert_string_equal(out, "{\"ts\":\"TS\",\"level\":\"error\",\"event\":\"client_hello\","
                             "\"sni\":\"q\\\"b\\\\s/n\\u000at\\u0009c\\u0001\\u001f "
                             "del\\u007f hi\\u0080\\u00ff utf8\\u00c3\\u00a9 nul\\u0000end\","
                             "\"cut\":\"q\\\"b\\\\s/n\\u000at\\u0009c\\u0001\\u001f "
                             "del\\u007f hi\\u0080\\u00ff utf8\\u00c3\\u00a9 nul\"}\n");
    free(out);
}

/* escaped returns |value| (|len| bytes) escaped in |style| with |also|, in
 * a static buffer. */
static const char *escaped(const char *value, size_t len, enum log_escape_style style,
                           const char *also)
{
    static char out[256];
    size_t n = log_escape(out, sizeof(out), value, len, style, also);
    assert_int_equal(n, strlen(out));
    return out;
}

/* What reaches a person's terminal has no control character left, and a
 * backslash is doubled, so the escaped text reads back unambiguously. */
static void test_escape_for_terminal(void **state)
{
    static const struct {
        const char *value;
        size_t len; /* 0: strlen(value) */
        const char *also;
        const char *escaped;
    } cases[] = {
        {"plain.example", 0, NULL, "plain.example"},
        {"a\\b", 0, NULL, "a\\\\b"},
        {"new\nline\rcr\ttab", 0, NULL, "new\\nline\\rcr\\ttab"},
        {"\x1b[2Jclear", 0, NULL, "\\x1b[2Jclear"},
        {"nul\0bel\a del\x7f", 13, NULL, "nul\\x00bel\\x07 del\\x7f"},
        {"\"quoted\"", 0, NULL, "\"quoted\""},
        /* Well-formed UTF-8 is kept; C1 controls (U+009B is CSI) are not. */
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92", 0, NULL,
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92"},
        {"csi\xc2\x9bJ", 0, NULL, "csi\\xc2\\x9bJ"},
        /* Bytes that are not UTF-8: lone, overlong, surrogate, cut short. */
        {"\xe9t\xe9", 0, NULL, "\\xe9t\\xe9"},
        {"\xc0\xaf", 0, NULL, "\\xc0\\xaf"},
        {"\xed\xa0\x80", 0, NULL, "\\xed\\xa0\\x80"},
        {"cut\xe2\x82", 0, NULL, "cut\\xe2\\x82"},
        /* Separators the caller names. */
        {"a b,c", 0, " ,", "a\\x20b\\x2cc"},
        {"a b,c", 0, ",", "a b\\x2cc"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(
            escaped(cases[i].value, cases[i].len ? cases[i].len : strlen(cases[i].value),
                    LOG_ESCAPE_TERMINAL, cases[i].also),
            cases[i].escaped);
    /* JSON keeps its own escapes: \u00XX, and the separators do not apply. */
    assert_string_equal(escaped("\x1b\"\\ ,\xc3\xa9", 7, LOG_ESCAPE_JSON, " ,"),
                        "\\u001b\\\"\\\\ ,\\u00c3\\u00a9");
}

/* log_escape reports the whole length, as snprintf does, and what it writes
 * into a buffer too small holds only whole escapes. */
static void test_escape_cut_keeps_escapes_whole(void **state)
{
    char out[8];
    char *dup;

    assert_int_equal(log_escape(NULL, 0, "ab\x1b", 3, LOG_ESCAPE_TERMINAL, NULL), 6);
    assert_int_equal(log_escape(out, sizeof(out), "abcd\x1b", 5, LOG_ESCAPE_TERMINAL, NULL), 8);
    assert_string_equal(out, "abcd"); /* not "abcd\x1" */
    assert_int_equal(log_escape(out, sizeof(out), "abc\x1b", 4, LOG_ESCAPE_TERMINAL, NULL), 7);
    assert_string_equal(out, "abc\\x1b");
    assert_int_equal(log_escape(out, 1, "abc", 3, LOG_ESCAPE_TERMINAL, NULL), 3);
    assert_string_equal(out, "");
    dup = log_escape_dup("tab\there", LOG_ESCAPE_TERMINAL, NULL);
    assert_string_equal(dup, "tab\\there");
    free(dup);
}

/* log_lists writes one line with three list fields in |format| and
 * returns the output, normalized. */
static char *log_lists(enum log_format format, size_t *out_len)
{
    static const char *const names[] = {"DNS:a.example", "URI:x:/a,b c", "DNS:e\x1b\n"};
    struct capture cap;
    struct log_line line;
    char *out;

    log_configure(format, LOG_INFO);
    capture_start(&cap);
    log_begin(&line, LOG_INFO, "handshake_done");
    log_strs(&line, "client_san", names, 3);
    log_strs(&line, "none", names, 0);
    log_strs(&line, "null", NULL, 0);
    log_end(&line);
    out = capture_stop(&cap, out_len);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    return out;
}

/* A list is a JSON array; in text, its items are separated by commas, so a
 * comma (or a space) inside an item is escaped. */
static void test_string_lists(void **state)
{
    size_t len;
    char *out = log_lists(LOG_FORMAT_JSON, &len);

    assert_true(is_json_line(out, len));
    normalize(out);
    assert_string_equal(out, "{\"ts\":\"TS\",\"level\":\"info\",\"event\":\"handshake_done\","
                             "\"client_san\":[\"DNS:a.example\",\"URI:x:/a,b c\","
                             "\"DNS:e\\u001b\\u000a\"],\"none\":[],\"null\":null}\n");
    free(out);

    out = log_lists(LOG_FORMAT_TEXT, NULL);
    normalize(out);
    assert_string_equal(out, "TS info handshake_done "
                             "client_san=\"DNS:a.example,URI:x:/a\\x2cb c,DNS:e\\x1b\\n\" "
                             "none= null=-\n");
    free(out);
}

/* A list that does not fit is dropped whole, and the line stays valid. */
static void test_string_list_too_long_is_dropped(void **state)
{
    static char item[1000];
    const char *items[8];
    struct capture cap;
    struct log_line line;
    size_t len;
    char *out;

    memset(item, 'n', sizeof(item) - 1);
    for (size_t i = 0; i < 8; i++)
        items[i] = item;
    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    capture_start(&cap);
    log_begin(&line, LOG_INFO, "handshake_done");
    log_str(&line, "sni", "a.example");
    log_strs(&line, "client_san", items, 8);
    log_end(&line);
    out = capture_stop(&cap, &len);
    assert_true(is_json_line(out, len));
    normalize(out);
    assert_string_equal(out, "{\"ts\":\"TS\",\"level\":\"info\",\"event\":\"handshake_done\","
                             "\"sni\":\"a.example\",\"truncated\":true}\n");
    free(out);
}

static void test_text_format(void **state)
{
    struct capture cap;
    struct log_line line;
    char *out;

    log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    capture_start(&cap);
    log_begin(&line, LOG_WARN, "listen_failed");
    log_str(&line, "addr", "[::1]:443");
    log_str(&line, "msg", "address in use");
    log_int(&line, "n", -3);
    log_str(&line, "detail", NULL);
    log_str(&line, "odd", "a\"b\\c\nd\xe9");
    log_strn(&line, "cut", "abcdef", 3);
    log_end(&line);
    out = capture_stop(&cap, NULL);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);

    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    normalize(out);
    assert_string_equal(out, "TS warn listen_failed addr=[::1]:443 msg=\"address in use\" "
                             "n=-3 detail=- odd=\"a\\\"b\\\\c\\nd\\xe9\" cut=abc\n");
    free(out);
}

/* Text values are quoted only when they must be, and a client's bytes
 * cannot end the line or forge a field, quoted or not. */
static void test_text_quoting_is_safe(void **state)
{
    struct capture cap;
    struct log_line line;
    char *out;
    (void)state;

    log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    capture_start(&cap);
    log_begin(&line, LOG_INFO, "request");
    log_str(&line, "plain", "GET");
    log_str(&line, "empty", "");
    log_str(&line, "eq", "a=b");
    log_str(&line, "sni", "x.example\n2026-01-01T00:00:00.000Z error forged msg=\"owned\"");
    log_str(&line, "path", "/a\"\\ b\r\x1b[31m");
    log_str(&line, "trailing", "a\\");
    log_end(&line);
    out = capture_stop(&cap, NULL);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);

    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    normalize(out);
    assert_string_equal(out, "TS info request plain=GET empty= eq=\"a=b\" "
                             "sni=\"x.example\\n2026-01-01T00:00:00.000Z error forged "
                             "msg=\\\"owned\\\"\" "
                             "path=\"/a\\\"\\\\ b\\r\\x1b[31m\" trailing=a\\\\\n");
    free(out);
}

/* A line takes its format when it begins, so a reconfiguration between
 * log_begin and log_end cannot mix the two. */
static void test_format_is_fixed_at_begin(void **state)
{
    struct capture cap;
    struct log_line line;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    capture_start(&cap);
    log_begin(&line, LOG_INFO, "reload");
    log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    log_str(&line, "result", "ok");
    log_end(&line);
    out = capture_stop(&cap, NULL);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);

    normalize(out);
    assert_string_equal(
        out, "{\"ts\":\"TS\",\"level\":\"info\",\"event\":\"reload\",\"result\":\"ok\"}\n");
    free(out);
}

static void test_log_msg(void **state)
{
    struct capture cap;
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_WARN);
    capture_start(&cap);
    log_msg(LOG_INFO, "dropped", "below the threshold %d", 1);
    log_msg(LOG_WARN, "reload_failed", "%s:%d:%d: unknown key \"%s\"", "tlsterm.yaml", 3, 5,
            "listne");
    log_msg(LOG_ERROR, "fatal", "%s", "");
    out = capture_stop(&cap, &len);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);

    const char *second = strchr(out, '\n') + 1;
    assert_true(is_json_line(out, (size_t)(second - out)));
    assert_true(is_json_line(second, strlen(second)));
    normalize(out);
    assert_string_equal(out, "{\"ts\":\"TS\",\"level\":\"warn\",\"event\":\"reload_failed\","
                             "\"msg\":\"tlsterm.yaml:3:5: unknown key \\\"listne\\\"\"}\n"
                             "{\"ts\":\"TS\",\"level\":\"error\",\"event\":\"fatal\","
                             "\"msg\":\"\"}\n");
    free(out);

    log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    capture_start(&cap);
    log_msg(LOG_DEBUG, "dropped", "x");
    log_msg(LOG_INFO, "started", "listening on %d sockets", 2);
    out = capture_stop(&cap, NULL);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    normalize(out);
    assert_string_equal(out, "TS info started msg=\"listening on 2 sockets\"\n");
    free(out);
}

/* log_padded writes one line {"...","msg":"<value_len bytes of fill>"}
 * preceded by a field "pad" of |pad_len| bytes, and returns the output. */
static char *log_padded(size_t pad_len, char fill, size_t value_len, size_t *out_len)
{
    struct capture cap;
    struct log_line line;
    char *pad = malloc(pad_len + 1);
    char *value = malloc(value_len + 1);

    assert_non_null(pad);
    assert_non_null(value);
    memset(pad, 'p', pad_len);
    pad[pad_len] = '\0';
    memset(value, fill, value_len);
    value[value_len] = '\0';
    capture_start(&cap);
    log_begin(&line, LOG_INFO, "e");
    if (pad_len > 0)
        log_str(&line, "pad", pad);
    log_str(&line, "msg", value);
    log_end(&line);
    free(pad);
    free(value);
    return capture_stop(&cap, out_len);
}

static bool ends_with(const char *text, size_t len, const char *suffix)
{
    size_t suffix_len = strlen(suffix);
    return len >= suffix_len && memcmp(text + len - suffix_len, suffix, suffix_len) == 0;
}

static bool is_truncated(const char *out, size_t len)
{
    return ends_with(out, len, ",\"truncated\":true}\n");
}

/* longest_fit returns the longest "msg" value of plain letters that log.c
 * writes whole on a line of its own. It is found by trying, not computed
 * from log.c's private reserve, so a change there keeps these tests valid. */
static size_t longest_fit(void)
{
    static size_t found;
    size_t len;

    if (found != 0)
        return found;
    for (size_t value_len = LOG_LINE_MAX; value_len > 0; value_len--) {
        char *out = log_padded(0, 'a', value_len, &len);
        bool truncated = is_truncated(out, len);
        free(out);
        if (!truncated) {
            found = value_len;
            break;
        }
    }
    assert_int_not_equal(found, 0);
    return found;
}

/* The longest line that fits is written whole and uses nearly all of
 * LOG_LINE_MAX; one byte more is cut and marked. */
static void test_longest_line_is_not_truncated(void **state)
{
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    out = log_padded(0, 'a', longest_fit(), &len);
    assert_true(len <= LOG_LINE_MAX);
    assert_true(len >= LOG_LINE_MAX - 32);
    assert_true(ends_with(out, len, "aa\"}\n"));
    assert_true(is_json_line(out, len));
    free(out);

    out = log_padded(0, 'a', longest_fit() + 1, &len);
    assert_true(len <= LOG_LINE_MAX);
    assert_true(is_truncated(out, len));
    free(out);
}

static void test_truncated_line_is_marked_and_bounded(void **state)
{
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    out = log_padded(0, 'a', 3 * LOG_LINE_MAX, &len);
    assert_true(len <= LOG_LINE_MAX);
    assert_true(ends_with(out, len, ",\"truncated\":true}\n"));
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    free(out);

    log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    out = log_padded(0, 'a', 3 * LOG_LINE_MAX, &len);
    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    assert_true(len <= LOG_LINE_MAX);
    assert_true(ends_with(out, len, " truncated=true\n"));
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    free(out);
}

/* A truncated JSON line must still parse, wherever the cut falls: on the
 * closing quote of a value, inside an escape sequence, or inside a key. The
 * tests below each move the cut one byte at a time and report every line a
 * JSON parser would reject. */

/* check_truncated_json fails unless |out| is a truncated JSON line; it
 * returns false, after printing |what|, when the line does not parse. */
static bool check_truncated_json(const char *out, size_t len, const char *what)
{
    assert_true(len <= LOG_LINE_MAX);
    assert_true(is_truncated(out, len));
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    if (is_json_line(out, len))
        return true;
    print_message("%s: not JSON; the line ends: %s", what, out + len - 48);
    return false;
}

static void test_truncated_at_closing_quote_is_valid_json(void **state)
{
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    /* One byte too many: only the closing quote does not fit. */
    out = log_padded(0, 'a', longest_fit() + 1, &len);
    bool ok = check_truncated_json(out, len, "cut on the closing quote");
    free(out);
    assert_true(ok);
}

static void test_truncated_inside_value_is_valid_json(void **state)
{
    static const char fills[] = {'a', '"', '\x01'};
    int num_bad = 0;
    char what[64];
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    for (size_t f = 0; f < sizeof(fills); f++) {
        /* A pad field shifts the cut by one byte across the 2-byte and
         * 6-byte escapes. */
        for (size_t pad_len = 1; pad_len <= 8; pad_len++) {
            out = log_padded(pad_len, fills[f], LOG_LINE_MAX, &len);
            snprintf(what, sizeof(what), "fill 0x%02x, pad %zu",
                     (unsigned)(unsigned char)fills[f], pad_len);
            num_bad += !check_truncated_json(out, len, what);
            free(out);
        }
    }
    assert_int_equal(num_bad, 0);
}

static void test_truncated_inside_key_is_valid_json(void **state)
{
    static const char key[] = "a_rather_long_key_name";
    size_t fits = longest_fit();
    int num_bad = 0;
    char what[64];
    size_t len;
    char *out;

    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    /* The first value leaves |over| bytes too few for the second field's
     * ",\"key\":", so the cut falls |over| bytes into it. */
    for (size_t over = 1; over <= strlen(key) + 4; over++) {
        struct capture cap;
        struct log_line line;
        char *value = malloc(fits + 1);

        assert_non_null(value);
        memset(value, 'v', fits);
        value[fits - over] = '\0';
        capture_start(&cap);
        log_begin(&line, LOG_INFO, "e");
        log_str(&line, "msg", value);
        log_str(&line, key, "x");
        log_end(&line);
        out = capture_stop(&cap, &len);
        free(value);
        snprintf(what, sizeof(what), "cut %zu bytes into the key", over);
        num_bad += !check_truncated_json(out, len, what);
        free(out);
    }
    assert_int_equal(num_bad, 0);
}

/* The way a real line gets that long: log_msg with a message of non-ASCII
 * text (a reload error quoting a UTF-8 value), each byte escaped to six. */
static void test_long_non_ascii_log_msg_is_valid_json(void **state)
{
    char value[1000];
    struct capture cap;
    size_t len;
    char *out;

    for (size_t i = 0; i + 1 < sizeof(value); i += 2)
        memcpy(value + i, "\xc3\xa9", 2); /* "é" */
    value[sizeof(value) - 1] = '\0';
    log_configure(LOG_FORMAT_JSON, LOG_INFO);
    capture_start(&cap);
    log_msg(LOG_ERROR, "reload_failed", "bad value '%s'", value);
    out = capture_stop(&cap, &len);
    bool ok = check_truncated_json(out, len, "log_msg of 1000 bytes of UTF-8");
    free(out);
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_json_and_info),
        cmocka_unit_test(test_validator_itself),
        cmocka_unit_test(test_level_names),
        cmocka_unit_test(test_enabled_thresholds),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_escape_for_terminal),
        cmocka_unit_test(test_escape_cut_keeps_escapes_whole),
        cmocka_unit_test(test_string_lists),
        cmocka_unit_test(test_string_list_too_long_is_dropped),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_text_quoting_is_safe),
        cmocka_unit_test(test_format_is_fixed_at_begin),
        cmocka_unit_test(test_log_msg),
        cmocka_unit_test(test_longest_line_is_not_truncated),
        cmocka_unit_test(test_truncated_line_is_marked_and_bounded),
        cmocka_unit_test(test_truncated_at_closing_quote_is_valid_json),
        cmocka_unit_test(test_truncated_inside_value_is_valid_json),
        cmocka_unit_test(test_truncated_inside_key_is_valid_json),
        cmocka_unit_test(test_long_non_ascii_log_msg_is_valid_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
