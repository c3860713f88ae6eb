/* log: structured events on stderr. See log.h.
 *
 * The format and level are process-wide settings written once at start (and
 * on reload, between events), read on every event. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_format current_format = LOG_FORMAT_JSON;
static enum log_level current_min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Bytes kept back at the end of a line for the closing brace, a "truncated"
 * marker and the newline. */
#define LOG_TAIL_RESERVE 24

void log_configure(enum log_format format, enum log_level min_level)
{
    current_format = format;
    current_min_level = min_level;
}

bool log_enabled(enum log_level level) { return level >= current_min_level; }

const char *log_level_name(enum log_level level) { return level_names[level]; }

/* put_bytes appends |bytes|. When they do not fit, the field being written
 * is dropped whole and nothing more is written to the line. */
static void put_bytes(struct log_line *line, const char *bytes, size_t len)
{
    if (line->truncated)
        return;
    if (len > LOG_LINE_MAX - LOG_TAIL_RESERVE - line->len) {
        line->len = line->field_start;
        line->truncated = true;
        return;
    }
    memcpy(line->buf + line->len, bytes, len);
    line->len += len;
}

static void put_str(struct log_line *line, const char *s) { put_bytes(line, s, strlen(s)); }

/* put_escaped writes |value| so that it cannot break the line: in JSON as a
 * string body, in text with control characters, quotes, backslashes and
 * spaces escaped. Bytes >= 0x80 are escaped too, since an SNI or a client's
 * bytes need not be UTF-8. */
static void put_escaped(struct log_line *line, const char *value, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)value[i];
        char esc[6];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            put_bytes(line, esc, 2);
        } else if (ch < 0x20 || ch >= 0x7f ||
                   (ch == ' ' && line->format == LOG_FORMAT_TEXT)) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            put_bytes(line, esc, 6);
        } else {
            put_bytes(line, (const char *)&ch, 1);
        }
    }
}

static void put_key(struct log_line *line, const char *key)
{
    line->field_start = line->len;
    if (line->format == LOG_FORMAT_JSON) {
        put_str(line, ",\"");
        put_str(line, key);
        put_str(line, "\":");
    } else {
        put_str(line, " ");
        put_str(line, key);
        put_str(line, "=");
    }
}

void log_begin(struct log_line *line, enum log_level level, const char *event)
{
    struct timeval now;
    struct tm tm;
    char ts[40];

    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(now.tv_usec / 1000));

    line->len = 0;
    line->field_start = 0;
    line->truncated = false;
    line->format = current_format;
    if (line->format == LOG_FORMAT_JSON) {
        put_str(line, "{\"ts\":\"");
        put_str(line, ts);
        put_str(line, "\",\"level\":\"");
        put_str(line, level_names[level]);
        put_str(line, "\",\"event\":\"");
        put_str(line, event);
        put_str(line, "\"");
    } else {
        put_str(line, ts);
        put_str(line, " ");
        put_str(line, level_names[level]);
        put_str(line, " ");
        put_str(line, event);
    }
}

void log_strn(struct log_line *line, const char *key, const char *value,
              size_t value_len)
{
    put_key(line, key);
    if (value == NULL) {
        put_str(line, line->format == LOG_FORMAT_JSON ? "null" : "-");
        return;
    }
    if (line->format == LOG_FORMAT_JSON)
        put_str(line, "\"");
    put_escaped(line, value, value_len);
    if (line->format == LOG_FORMAT_JSON)
        put_str(line, "\"");
}

void log_str(struct log_line *line, const char *key, const char *value)
{
    log_strn(line, key, value, value ? strlen(value) : 0);
}

void log_int(struct log_line *line, const char *key, long long value)
{
    char num[24];
    put_key(line, key);
    snprintf(num, sizeof(num), "%lld", value);
    put_str(line, num);
}

void log_end(struct log_line *line)
{
    /* put_bytes kept LOG_TAIL_RESERVE bytes free for this tail. */
    const char *tail;
    if (line->format == LOG_FORMAT_JSON)
        tail = line->truncated ? ",\"truncated\":true}\n" : "}\n";
    else
        tail = line->truncated ? " truncated=true\n" : "\n";
    size_t tail_len = strlen(tail);
    memcpy(line->buf + line->len, tail, tail_len);
    line->len += tail_len;

    /* One write per line: lines from several threads never interleave. A
     * short write or EAGAIN on stderr loses the rest of the line rather than
     * blocking the event loop forever. */
    const char *p = line->buf;
    size_t left = line->len;
    while (left > 0) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
    struct log_line line;
    char msg[1024];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_begin(&line, level, event);
    log_str(&line, "msg", msg);
    log_end(&line);
}
