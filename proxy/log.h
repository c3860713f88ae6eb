/* log: one structured event per line on stderr, as JSON lines or as text.
 *
 * An event is built field by field into a fixed-size line on the caller's
 * stack, then written with one write(2) so lines from several threads never
 * interleave. Nothing here allocates but log_escape_dup. A line too long for its buffer loses
 * its last fields whole (never half a field, so it stays valid JSON) and is
 * marked "truncated" rather than dropped.
 *
 * log_escape, the escaper of log lines, is also the one that everything
 * else tlsterm shows to people goes through. */
#ifndef TLSTERM_LOG_H
#define TLSTERM_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

#define LOG_LINE_MAX 4096 /* a failed handshake with its ClientHello fits */
#define LOG_QUEUE_MAX (1024 * 1024)

/* struct log_line is one event being built. Fields are private to log.c. */
struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
    size_t field_start; /* where the field being written began */
    bool truncated;
    bool below_level; /* built but not written: its level is filtered out */
    enum log_format format;
};

/* log_configure sets the format and the lowest level written. The defaults,
 * before it is called, are JSON and info. */
void log_configure(enum log_format format, enum log_level min_level);

/* log_enabled returns true if events of |level| are written. Check it before
 * doing work that only feeds a log line. */
bool log_enabled(enum log_level level);

/* log_level_name returns "debug", "info", "warn" or "error". */
const char *log_level_name(enum log_level level);

/* log_begin starts |line| with the timestamp, |level| and |event| name. A
 * line below the configured level is built and then dropped by log_end;
 * callers with costly fields check log_enabled first. */
void log_begin(struct log_line *line, enum log_level level, const char *event);

/* enum log_escape_style says for whom log_escape writes. */
enum log_escape_style {
    /* The body of a JSON string: '"' and '\\' after a backslash; bytes
     * below 0x20 and from 0x7f as \u00XX, since a client's bytes need not
     * be UTF-8. */
    LOG_ESCAPE_JSON,
    /* For a person at a terminal: '\\' doubled; \n, \r and \t; every
     * other control character (C0, DEL, and C1 as its two UTF-8 bytes) and
     * each byte that is not part of well-formed UTF-8 as \xNN (ESC is
     * \x1b). Well-formed UTF-8 is kept. */
    LOG_ESCAPE_TERMINAL,
    /* LOG_ESCAPE_TERMINAL inside a double-quoted text log value: '"' is
     * written \" as well. */
    LOG_ESCAPE_QUOTED,
};

/* log_escape writes the |value_len| bytes of |value| escaped in |style|
 * into |out|, and with LOG_ESCAPE_TERMINAL (or _QUOTED) also each ASCII character of
 * |also| (NULL: none) as \xNN, for a separator that must stay unambiguous
 * (" " between fields, "," between list items). It NUL-terminates |out|
 * when |out_len| > 0 and returns the length of the whole escaped text, as
 * snprintf does; when that is |out_len| or more, |out| holds the escapes
 * that fit whole. This is the one escaper for everything tlsterm shows:
 * log lines, `--check`, `tlsterm report`. */
size_t log_escape(char *out, size_t out_len, const char *value, size_t value_len,
                  enum log_escape_style style, const char *also);

/* log_escape_dup returns |value| (a C string) escaped by log_escape in a
 * new string owned by the caller (free), or NULL when out of memory. */
char *log_escape_dup(const char *value, enum log_escape_style style, const char *also);

/* log_utf8_sequence_len returns the length of the well-formed UTF-8
 * sequence at |s| (|len| > 0 bytes available), or 0 if there is none (RFC
 * 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t log_utf8_sequence_len(const unsigned char *s, size_t len);

/* log_str adds a string field; a NULL |value| is written as null. Bytes are
 * escaped (JSON: LOG_ESCAPE_JSON; text: LOG_ESCAPE_TERMINAL), so untrusted
 * input (an SNI) is safe to pass: no value can end a line or forge a field.
 * In text a value that holds a space, '"' or '=' is written in double quotes
 * (LOG_ESCAPE_QUOTED: spaces as they are, '"' and '\\' after a backslash):
 * msg="address in use". */
void log_str(struct log_line *line, const char *key, const char *value);

/* log_strn is log_str for |value_len| bytes that need not end in NUL. */
void log_strn(struct log_line *line, const char *key, const char *value, size_t value_len);

/* log_strs adds a field holding the |num| strings of |items| (the caller
 * keeps them): a JSON array of strings, or in text the items separated by
 * ",", each escaped as log_str does and its commas too, so the list stays
 * unambiguous (an empty list writes nothing after "="); the whole list is
 * quoted when an item needs it, as log_str does. A NULL |items| is
 * written as null. A list too long for the line is dropped whole. */
void log_strs(struct log_line *line, const char *key, const char *const *items, size_t num);

/* log_int adds an integer field. */
void log_int(struct log_line *line, const char *key, long long value);

/* log_bool adds a true/false field; log_null adds a field with no value
 * (JSON null, "-" in text lines). */
void log_bool(struct log_line *line, const char *key, bool value);
void log_null(struct log_line *line, const char *key);

/* log_end finishes |line| and writes it to stderr with one write(2). */
void log_end(struct log_line *line);

/* log_writer_start moves writing to a thread of its own: from then on
 * log_end only copies the line into a bounded queue (LOG_QUEUE_MAX bytes),
 * so a slow stderr (a full pipe, a stalled terminal, a reader that stopped
 * reading) never blocks an event loop. When the queue is full, lines are
 * dropped and counted (log_lines_dropped_total), and once stderr takes
 * lines again the writer reports how many in one "log_lines_dropped" line
 * (count=N). Returns 0 or -1. */
int log_writer_start(void);

/* log_writer_stop writes out what is queued and ends the writer thread;
 * log_end writes directly again afterwards. It waits at most
 * LOG_STOP_WAIT_MS for stderr: a reader that stopped reading must not keep
 * the process from exiting. After that it returns with the writer thread
 * still blocked in write(2) and its queue still allocated (reachable, not
 * leaked): the caller is about to exit. */
void log_writer_stop(void);
#define LOG_STOP_WAIT_MS 2000

/* log_lines_dropped_total returns how many log lines the writer dropped
 * since the start because stderr did not keep up (the metric
 * tlsterm_log_lines_dropped_total). Thread-safe. */
unsigned long long log_lines_dropped_total(void);

/* log_msg writes a one-field event {"event":..., "msg": printf(fmt, ...)}. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
