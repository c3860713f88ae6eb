/* log: structured events on stderr. See log.h.
 *
 * The format and level are process-wide settings written once at start (and
 * on reload, between events), read on every event. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Written at start and on reload, read by every thread: relaxed atomics. */
static _Atomic enum log_format current_format = LOG_FORMAT_JSON;
static _Atomic enum log_level current_min_level = LOG_INFO;

/* The writer thread and its queue. Producers append whole lines under the
 * lock (a memcpy of at most LOG_LINE_MAX bytes); the writer swaps the queue
 * for its own buffer and writes outside the lock, where it may block on
 * stderr for as long as the reader makes it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* Signalled when |finished| is set; its clock is |finished_clock|
     * (set up once, by use_monotonic_finished_cond). */
    pthread_cond_t finished_cond;
    pthread_t thread;
    bool running;
    bool stopping;
    bool finished; /* the thread wrote everything and is about to return */
    char *queue;
    size_t queue_len;
    char *writing;
    uint64_t dropped; /* since the last log_lines_dropped line */
} writer = {.lock = PTHREAD_MUTEX_INITIALIZER,
            .wake = PTHREAD_COND_INITIALIZER,
            .finished_cond = PTHREAD_COND_INITIALIZER};

/* The clock of the bounded wait in log_writer_stop: CLOCK_MONOTONIC, so
 * that a step of the wall clock (NTP, an operator) neither stretches nor
 * cuts it; CLOCK_REALTIME only if the condition variable cannot take it. */
static clockid_t finished_clock = CLOCK_REALTIME;
static pthread_once_t finished_cond_once = PTHREAD_ONCE_INIT;

/* use_monotonic_finished_cond makes |finished_cond| wait on CLOCK_MONOTONIC.
 * Runs once, before the writer thread exists, so nothing waits on or
 * signals the condition variable it replaces. */
static void use_monotonic_finished_cond(void)
{
    pthread_condattr_t attr;

    if (pthread_condattr_init(&attr) != 0)
        return;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0) {
        /* In place: a copy of a condition variable may not be used. */
        pthread_cond_destroy(&writer.finished_cond);
        if (pthread_cond_init(&writer.finished_cond, &attr) == 0)
            finished_clock = CLOCK_MONOTONIC;
        else
            pthread_cond_init(&writer.finished_cond, NULL);
    }
    pthread_condattr_destroy(&attr);
}

/* Every line dropped since the start, for the metric. */
static _Atomic unsigned long long dropped_total;

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

/* drop_field removes the field being written, which does not fit, and
 * ends the line there. */
static void drop_field(struct log_line *line)
{
    line->len = line->field_start;
    line->truncated = true;
}

/* put_bytes appends |bytes|. When they do not fit, the field being written
 * is dropped whole and nothing more is written to the line. */
static void put_bytes(struct log_line *line, const char *bytes, size_t len)
{
    if (line->truncated)
        return;
    if (len > LOG_LINE_MAX - LOG_TAIL_RESERVE - line->len) {
        drop_field(line);
        return;
    }
    memcpy(line->buf + line->len, bytes, len);
    line->len += len;
}

static void put_str(struct log_line *line, const char *s) { put_bytes(line, s, strlen(s)); }

size_t log_utf8_sequence_len(const unsigned char *s, size_t len)
{
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* escape_one writes the escaped form of the character at |s| (|len| > 0
 * bytes available) to |esc| and sets |*out_used| to the bytes it stands
 * for; it returns the length written (at most 8 bytes). */
static size_t escape_one(const unsigned char *s, size_t len, enum log_escape_style style,
                         const char *also, char esc[8], size_t *out_used)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char ch = s[0];
    size_t seq;

    *out_used = 1;
    if (ch == '\\' || (ch == '"' && style != LOG_ESCAPE_TERMINAL)) {
        esc[0] = '\\';
        esc[1] = (char)ch;
        return 2;
    }
    if (style == LOG_ESCAPE_JSON) {
        if (ch >= 0x20 && ch < 0x7f) {
            esc[0] = (char)ch;
            return 1;
        }
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[ch >> 4];
        esc[5] = hex[ch & 15];
        return 6;
    }
    if (ch == '\n' || ch == '\r' || ch == '\t') {
        esc[0] = '\\';
        esc[1] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
        return 2;
    }
    seq = log_utf8_sequence_len(s, len);
    if (seq == 0 || ch < 0x20 || ch == 0x7f ||
        (ch < 0x80 && also != NULL && strchr(also, ch) != NULL)) {
        memcpy(esc, "\\x", 2);
        esc[2] = hex[ch >> 4];
        esc[3] = hex[ch & 15];
        return 4;
    }
    if (ch == 0xc2 && s[1] < 0xa0) { /* C1: U+0080 to U+009F */
        memcpy(esc, "\\xc2\\x", 6);
        esc[6] = hex[s[1] >> 4];
        esc[7] = hex[s[1] & 15];
        *out_used = 2;
        return 8;
    }
    memcpy(esc, s, seq);
    *out_used = seq;
    return seq;
}

size_t log_escape(char *out, size_t out_len, const char *value, size_t value_len,
                  enum log_escape_style style, const char *also)
{
    const unsigned char *s = (const unsigned char *)value;
    size_t len = 0, written = 0;

    for (size_t i = 0; i < value_len;) {
        char esc[8];
        size_t used, n = escape_one(s + i, value_len - i, style, also, esc, &used);
        if (written == len && len + n < out_len) {
            memcpy(out + len, esc, n);
            written += n;
        }
        len += n;
        i += used;
    }
    if (out_len > 0)
        out[written] = '\0';
    return len;
}

char *log_escape_dup(const char *value, enum log_escape_style style, const char *also)
{
    size_t value_len = strlen(value);
    size_t len = log_escape(NULL, 0, value, value_len, style, also);
    char *out = malloc(len + 1);

    if (out != NULL)
        log_escape(out, len + 1, value, value_len, style, also);
    return out;
}

/* put_escaped writes |value| so that it cannot break the line: in JSON as a
 * string body, in text for a terminal (inside double quotes when |quoted|)
 * with the characters of |separators| escaped too. When it does not fit,
 * the field is dropped whole. */
static void put_escaped(struct log_line *line, const char *value, size_t len,
                        const char *separators, bool quoted)
{
    enum log_escape_style style = line->format == LOG_FORMAT_JSON ? LOG_ESCAPE_JSON
                                  : quoted                        ? LOG_ESCAPE_QUOTED
                                                                  : LOG_ESCAPE_TERMINAL;

    if (line->truncated)
        return;
    size_t room = LOG_LINE_MAX - LOG_TAIL_RESERVE - line->len;
    size_t n = log_escape(line->buf + line->len, room, value, len, style, separators);
    if (n < room)
        line->len += n;
    else
        drop_field(line);
}

/* needs_quotes says whether a text log value must be written in double
 * quotes: a space would end it, and '"' or '=' would make it read as the
 * start of a quoted value or of another field. */
static bool needs_quotes(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (value[i] == ' ' || value[i] == '"' || value[i] == '=')
            return true;
    return false;
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
    line->below_level = !log_enabled(level);
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

void log_strn(struct log_line *line, const char *key, const char *value, size_t value_len)
{
    put_key(line, key);
    if (value == NULL) {
        put_str(line, line->format == LOG_FORMAT_JSON ? "null" : "-");
        return;
    }
    bool quoted = line->format == LOG_FORMAT_JSON || needs_quotes(value, value_len);
    if (quoted)
        put_str(line, "\"");
    put_escaped(line, value, value_len, NULL, quoted);
    if (quoted)
        put_str(line, "\"");
}

void log_str(struct log_line *line, const char *key, const char *value)
{
    log_strn(line, key, value, value ? strlen(value) : 0);
}

void log_strs(struct log_line *line, const char *key, const char *const *items, size_t num)
{
    bool json = line->format == LOG_FORMAT_JSON;

    put_key(line, key);
    if (items == NULL) {
        put_str(line, json ? "null" : "-");
        return;
    }
    bool quoted = false;
    for (size_t i = 0; !json && i < num; i++)
        quoted = quoted || needs_quotes(items[i], strlen(items[i]));
    put_str(line, json ? "[" : quoted ? "\"" : "");
    for (size_t i = 0; i < num; i++) {
        put_str(line, i == 0 ? "" : ",");
        put_str(line, json ? "\"" : "");
        put_escaped(line, items[i], strlen(items[i]), json ? NULL : ",", quoted && !json);
        put_str(line, json ? "\"" : "");
    }
    put_str(line, json ? "]" : quoted ? "\"" : "");
}

void log_int(struct log_line *line, const char *key, long long value)
{
    char num[24];
    put_key(line, key);
    snprintf(num, sizeof(num), "%lld", value);
    put_str(line, num);
}

void log_bool(struct log_line *line, const char *key, bool value)
{
    put_key(line, key);
    put_str(line, value ? "true" : "false");
}

void log_null(struct log_line *line, const char *key)
{
    put_key(line, key);
    put_str(line, line->format == LOG_FORMAT_JSON ? "null" : "-");
}

/* write_all writes |len| bytes to stderr, retrying short writes. */
static void write_all(const char *bytes, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, bytes, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* stderr is gone: nothing better to do with the line */
        bytes += n;
        len -= (size_t)n;
    }
}

/* finish_line appends the closing brace (or the text line's end), the
 * truncation mark and the newline, in the room put_bytes kept for them. */
static void finish_line(struct log_line *line)
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
}

/* log_end_direct writes |line| itself, for the writer thread. */
static void log_end_direct(struct log_line *line)
{
    finish_line(line);
    write_all(line->buf, line->len);
}

void log_end(struct log_line *line)
{
    if (line->below_level)
        return;
    finish_line(line);

    pthread_mutex_lock(&writer.lock);
    if (writer.running) {
        if (writer.queue_len + line->len <= LOG_QUEUE_MAX) {
            memcpy(writer.queue + writer.queue_len, line->buf, line->len);
            writer.queue_len += line->len;
            pthread_cond_signal(&writer.wake);
        } else {
            writer.dropped++;
            atomic_fetch_add_explicit(&dropped_total, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&writer.lock);
        return;
    }
    pthread_mutex_unlock(&writer.lock);
    write_all(line->buf, line->len);
}

static void *writer_main(void *arg)
{
    pthread_mutex_lock(&writer.lock);
    for (;;) {
        while (writer.queue_len == 0 && writer.dropped == 0 && !writer.stopping)
            pthread_cond_wait(&writer.wake, &writer.lock);
        if (writer.queue_len == 0 && writer.dropped == 0 && writer.stopping)
            break;
        char *full = writer.queue;
        size_t full_len = writer.queue_len;
        uint64_t dropped = writer.dropped;
        writer.queue = writer.writing;
        writer.queue_len = 0;
        writer.writing = full;
        writer.dropped = 0;
        pthread_mutex_unlock(&writer.lock);

        write_all(full, full_len);
        if (dropped > 0) {
            struct log_line line;
            log_begin(&line, LOG_WARN, "log_lines_dropped");
            log_int(&line, "count", (long long)dropped);
            log_str(&line, "msg", "stderr could not keep up");
            log_end_direct(&line);
        }
        pthread_mutex_lock(&writer.lock);
    }
    writer.finished = true;
    pthread_cond_signal(&writer.finished_cond);
    pthread_mutex_unlock(&writer.lock);
    return NULL;
}

int log_writer_start(void)
{
    pthread_once(&finished_cond_once, use_monotonic_finished_cond);
    char *queue = malloc(LOG_QUEUE_MAX), *writing = malloc(LOG_QUEUE_MAX);
    if (queue == NULL || writing == NULL)
        goto fail;
    pthread_mutex_lock(&writer.lock);
    writer.queue = queue;
    writer.writing = writing;
    writer.queue_len = 0;
    writer.stopping = false;
    writer.finished = false;
    writer.running = true;
    pthread_mutex_unlock(&writer.lock);
    if (pthread_create(&writer.thread, NULL, writer_main, NULL) != 0) {
        pthread_mutex_lock(&writer.lock);
        writer.running = false;
        writer.queue = writer.writing = NULL;
        pthread_mutex_unlock(&writer.lock);
        goto fail;
    }
    return 0;
fail:
    free(queue);
    free(writing);
    return -1;
}

void log_writer_stop(void)
{
    pthread_mutex_lock(&writer.lock);
    if (!writer.running) {
        pthread_mutex_unlock(&writer.lock);
        return;
    }
    writer.stopping = true;
    pthread_cond_signal(&writer.wake);
    /* Bounded: with a reader that stopped reading, the writer stays
     * blocked in write(2) and the process exits all the same. */
    struct timespec deadline;
    clock_gettime(finished_clock, &deadline);
    deadline.tv_sec += LOG_STOP_WAIT_MS / 1000;
    deadline.tv_nsec += (long)(LOG_STOP_WAIT_MS % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    while (!writer.finished &&
           pthread_cond_timedwait(&writer.finished_cond, &writer.lock, &deadline) == 0)
        ;
    bool finished = writer.finished;
    pthread_mutex_unlock(&writer.lock);
    if (!finished)
        return;
    pthread_join(writer.thread, NULL);

    pthread_mutex_lock(&writer.lock);
    writer.running = false;
    free(writer.queue);
    free(writer.writing);
    writer.queue = writer.writing = NULL;
    pthread_mutex_unlock(&writer.lock);
}

unsigned long long log_lines_dropped_total(void)
{
    return atomic_load_explicit(&dropped_total, memory_order_relaxed);
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
