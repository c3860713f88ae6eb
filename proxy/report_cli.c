/* report_cli: "tlsterm report [--json] FILE", a report file as a table for
 * people, or passed through as JSON once it is known to be a report. With
 * several files, a directory or a merge option, report_cli_merge.c takes
 * over and uses the reading and the table here (report_cli.h).
 *
 * The file is parsed by a small strict JSON parser (RFC 8259: no trailing
 * commas, no comments, depth at most JSON_MAX_DEPTH; UTF-8 only, no
 * duplicate keys) into a tree whose memory is linear in the file: one
 * buffer for the text of every string and number, and for each array and
 * object one array of exactly its items. The tree is then checked against
 * report_rule, the fields of tests/report.schema.json with their types
 * (counts are integers of at least the schema's minimum), in both modes: a
 * truncated or foreign file is refused, never printed half. The schema's
 * patterns and its ban on unknown keys are not checked here.
 *
 * Every problem is written as "FILE:LINE:COL: message", at the byte where
 * it is (columns count bytes). The table shows the file's strings through
 * log_escape, since a report file is untrusted text on a terminal. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"
#include "log.h"
#include "report.h"
#include "report_cli.h"
#include "report_merge.h"

#define JSON_MAX_DEPTH 32
#define REPORT_FILE_MAX (64 * 1024 * 1024)
/* Entries shown per top list in the table; --json shows them all. */
#define TABLE_TOP_SHOWN 5

static const char *const kind_names[] = {
    [JSON_NULL] = "null",       [JSON_BOOL] = "a boolean", [JSON_NUMBER] = "a number",
    [JSON_STRING] = "a string", [JSON_ARRAY] = "an array", [JSON_OBJECT] = "an object"};

/* struct jparser parses into |text| (as long as the file, and one byte:
 * no string or number decodes longer than it is written, and each has a
 * byte after it for its NUL) and keeps the items of the open arrays and
 * objects on |stack| until each closes. */
struct jparser {
    const char *s, *end, *p;
    char *text;
    size_t text_len;
    struct jnode *stack;
    size_t stack_len, stack_cap;
    bool failed;
    size_t error_at; /* where the first problem is */
    char error[160]; /* what it is */
};

static void jnode_cleanup(struct jnode *n)
{
    for (size_t i = 0; i < n->num; i++)
        jnode_cleanup(&n->items[i]);
    free(n->items);
}

void report_cli_doc_cleanup(struct jdoc *doc)
{
    jnode_cleanup(&doc->root);
    free(doc->text);
    free(doc->escaped);
}

static void skip_space(struct jparser *jp)
{
    while (jp->p < jp->end &&
           (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

/* fail_at records the first problem, found at |at|, and returns -1. */
static int fail_at(struct jparser *jp, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct jparser *jp, const char *at, const char *fmt, ...)
{
    va_list ap;

    if (jp->failed)
        return -1;
    jp->failed = true;
    jp->error_at = (size_t)(at - jp->s);
    va_start(ap, fmt);
    vsnprintf(jp->error, sizeof(jp->error), fmt, ap);
    va_end(ap);
    return -1;
}

static int fail(struct jparser *jp, const char *error)
{
    return fail_at(jp, jp->p, "%s", error);
}

/* position_of finds the line and column (from 1; columns count bytes) of
 * the byte |at| bytes into |s|. */
static void position_of(const char *s, size_t at, int *out_line, int *out_col)
{
    *out_line = 1;
    *out_col = 1;
    for (size_t i = 0; i < at; i++) {
        if (s[i] == '\n') {
            (*out_line)++;
            *out_col = 1;
        } else {
            (*out_col)++;
        }
    }
}

static int hex4(const char *p, unsigned *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        unsigned digit;
        if (ch >= '0' && ch <= '9')
            digit = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            digit = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            digit = (unsigned)(ch - 'A' + 10);
        else
            return -1;
        *out = *out * 16 + digit;
    }
    return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* parse_string reads a string at |jp->p| (at its opening quote) into a new
 * NUL-terminated |*out| in |jp->text|. A \u0000 escape and bytes that are
 * not UTF-8 are refused. */
static int parse_string(struct jparser *jp, const char **out)
{
    const char *p = jp->p + 1;
    char *text = jp->text + jp->text_len;
    size_t len = 0;

    for (;;) {
        if (p >= jp->end)
            return fail_at(jp, p, "unterminated string");

        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            break;
        if (ch < 0x20)
            return fail_at(jp, p, "control character in a string");

        if (ch >= 0x80) {
            size_t n = log_utf8_sequence_len((const unsigned char *)p, (size_t)(jp->end - p));
            if (n == 0)
                return fail_at(jp, p, "invalid UTF-8 in a string");

            memcpy(text + len, p, n);
            len += n;
            p += n;
            continue;
        }
        if (ch != '\\') {
            text[len++] = (char)ch;
            p++;
            continue;
        }
        if (p + 1 >= jp->end)
            return fail_at(jp, p, "unterminated string");

        char esc = p[1];
        const char *simple = strchr("\"\\/bfnrt", esc);
        if (esc != '\0' && simple != NULL) {
            text[len++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            p += 2;
            continue;
        }
        unsigned cp, low;
        if (esc != 'u' || jp->end - p < 6 || hex4(p + 2, &cp) != 0 || cp == 0)
            return fail_at(jp, p, "invalid escape in a string");

        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (jp->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) != 0 ||
                low < 0xdc00 || low > 0xdfff)
                return fail_at(jp, p, "unpaired surrogate in a string");

            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            p += 6;
        } else if (cp >= 0xdc00 && cp <= 0xdfff)
            return fail_at(jp, p, "unpaired surrogate in a string");

        len += put_utf8(text + len, cp);
    }
    text[len] = '\0';
    jp->text_len += len + 1;
    jp->p = p + 1;
    *out = text;
    return 0;
}

static int parse_number(struct jparser *jp, struct jnode *out)
{
    const char *p = jp->p, *start = p;

    if (p < jp->end && *p == '-')
        p++;
    if (p < jp->end && *p == '0')
        p++;
    else if (p < jp->end && *p >= '1' && *p <= '9')
        while (p < jp->end && *p >= '0' && *p <= '9')
            p++;
    else
        return fail(jp, "invalid value");
    if (p < jp->end && *p == '.') {
        p++;
        if (p >= jp->end || *p < '0' || *p > '9')
            return fail(jp, "invalid number");
        while (p < jp->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < jp->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < jp->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= jp->end || *p < '0' || *p > '9')
            return fail(jp, "invalid number");
        while (p < jp->end && *p >= '0' && *p <= '9')
            p++;
    }
    char *text = jp->text + jp->text_len;
    memcpy(text, start, (size_t)(p - start));
    text[p - start] = '\0';
    jp->text_len += (size_t)(p - start) + 1;
    out->kind = JSON_NUMBER;
    out->text = text;
    jp->p = p;
    return 0;
}

static int compare_members(const void *a, const void *b)
{
    const struct jnode *x = a, *y = b;
    int order = strcmp(x->key, y->key);

    if (order != 0)
        return order;
    return x->key_at < y->key_at ? -1 : x->key_at > y->key_at;
}

/* sort_members sorts |object|'s members by key and refuses a key that is
 * there twice, at its second place (the first such in the file). Sorting
 * keeps this O(n log n) for an object of any size. */
static int sort_members(struct jparser *jp, struct jnode *object)
{
    const struct jnode *first = NULL, *second = NULL;

    qsort(object->items, object->num, sizeof(object->items[0]), compare_members);
    for (size_t i = 1; i < object->num; i++) {
        const struct jnode *a = &object->items[i - 1], *b = &object->items[i];
        if (strcmp(a->key, b->key) == 0 && (second == NULL || b->key_at < second->key_at)) {
            first = a;
            second = b;
        }
    }
    if (second == NULL)
        return 0;
    char key[64];
    int line, col;
    log_escape(key, sizeof(key), second->key, strlen(second->key), LOG_ESCAPE_TERMINAL, NULL);
    position_of(jp->s, first->key_at, &line, &col);
    return fail_at(jp, jp->s + second->key_at, "duplicate key \"%s\"; the first is at %d:%d",
                   key, line, col);
}

static int parse_value(struct jparser *jp, struct jnode *out, int depth);

/* push_item moves |item| onto |jp|'s stack. */
static int push_item(struct jparser *jp, const struct jnode *item)
{
    if (jp->stack_len == jp->stack_cap) {
        size_t cap = jp->stack_cap ? jp->stack_cap * 2 : 64;
        struct jnode *stack = realloc(jp->stack, cap * sizeof(*stack));
        if (stack == NULL)
            return fail(jp, "out of memory");
        jp->stack = stack;
        jp->stack_cap = cap;
    }
    jp->stack[jp->stack_len++] = *item;
    return 0;
}

/* parse_container reads an array or, when |object|, an object. Its items
 * wait on the stack and move to an array of their exact number at the end. */
static int parse_container(struct jparser *jp, struct jnode *out, bool object, int depth)
{
    char close = object ? '}' : ']';
    size_t base = jp->stack_len;

    out->kind = object ? JSON_OBJECT : JSON_ARRAY;
    if (depth >= JSON_MAX_DEPTH)
        return fail(jp, "nested too deeply");
    jp->p++;
    skip_space(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        return 0;
    }
    for (;;) {
        struct jnode item = {.kind = JSON_NULL};
        skip_space(jp);
        if (object) {
            if (jp->p >= jp->end || *jp->p != '"')
                return fail(jp, "expected a string key");
            item.key_at = (size_t)(jp->p - jp->s);
            if (parse_string(jp, &item.key) != 0)
                return -1;
            skip_space(jp);
            if (jp->p >= jp->end || *jp->p != ':')
                return fail(jp, "expected ':'");
            jp->p++;
        }
        if (parse_value(jp, &item, depth + 1) != 0 || push_item(jp, &item) != 0) {
            jnode_cleanup(&item);
            return -1;
        }
        skip_space(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == close)
            break;
        return fail(jp, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    jp->p++;
    out->num = jp->stack_len - base;
    out->items = malloc(out->num * sizeof(*out->items));
    if (out->items == NULL) {
        out->num = 0;
        return fail(jp, "out of memory");
    }
    memcpy(out->items, jp->stack + base, out->num * sizeof(*out->items));
    jp->stack_len = base;
    return object ? sort_members(jp, out) : 0;
}

static int parse_value(struct jparser *jp, struct jnode *out, int depth)
{
    static const struct {
        const char *word;
        enum json_kind kind;
        const char *text;
    } words[] = {
        {"null", JSON_NULL, NULL}, {"true", JSON_BOOL, "true"}, {"false", JSON_BOOL, "false"}};

    skip_space(jp);
    out->at = (size_t)(jp->p - jp->s);
    if (jp->p >= jp->end)
        return fail(jp, "unexpected end of file");
    switch (*jp->p) {
    case '{':
        return parse_container(jp, out, true, depth);
    case '[':
        return parse_container(jp, out, false, depth);
    case '"':
        out->kind = JSON_STRING;
        return parse_string(jp, &out->text);
    default:
        break;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t len = strlen(words[i].word);
        if ((size_t)(jp->end - jp->p) >= len && memcmp(jp->p, words[i].word, len) == 0) {
            out->kind = words[i].kind;
            out->text = words[i].text;
            jp->p += len;
            return 0;
        }
    }
    return parse_number(jp, out);
}

/* parse_document parses |len| bytes at |s| into |out|, which the caller
 * releases with jdoc_cleanup. On failure it writes "FILE:LINE:COL: invalid
 * JSON: message" to stderr and returns -1. */
static int parse_document(const char *path, const char *s, size_t len, struct jdoc *out)
{
    struct jparser jp = {.s = s, .end = s + len, .p = s};
    int line, col;

    memset(out, 0, sizeof(*out));
    if (memchr(s, '\0', len) != NULL) {
        fprintf(stderr, "tlsterm: %s: not a report: it holds NUL bytes\n", path);
        return -1;
    }
    jp.text = out->text = malloc(len + 1);
    if (jp.text == NULL) {
        fail(&jp, "out of memory");
    } else if (parse_value(&jp, &out->root, 0) == 0) {
        skip_space(&jp);
        if (jp.p != jp.end)
            fail(&jp, "unexpected bytes after the JSON value");
    }
    for (size_t i = 0; i < jp.stack_len; i++) /* what a failure left */
        jnode_cleanup(&jp.stack[i]);
    free(jp.stack);
    if (!jp.failed)
        return 0;
    position_of(s, jp.error_at, &line, &col);
    fprintf(stderr, "%s:%d:%d: invalid JSON: %s\n", path, line, col, jp.error);
    return -1;
}

/* ---- what a report is ------------------------------------------------------------ */

/* struct rule is what one value of a report must be: |kind| (JSON_NUMBER
 * means a count, an integer of at least |min|), an object's |fields| (up
 * to one whose key is NULL) or an array's |items|. */
struct rule {
    const char *key; /* in its object; NULL for an array's items */
    enum json_kind kind;
    bool optional;
    uint64_t min;
    const struct rule *fields;
    const struct rule *items;
};

static const struct rule a_string = {.kind = JSON_STRING};

static const struct rule network_fields[] = {{.key = "network", .kind = JSON_STRING},
                                             {.key = "count", .kind = JSON_NUMBER, .min = 1},
                                             {.key = NULL}};
static const struct rule ja4_fields[] = {{.key = "ja4", .kind = JSON_STRING},
                                         {.key = "count", .kind = JSON_NUMBER, .min = 1},
                                         {.key = NULL}};
static const struct rule version_fields[] = {{.key = "version", .kind = JSON_STRING},
                                             {.key = "count", .kind = JSON_NUMBER, .min = 1},
                                             {.key = NULL}};
static const struct rule a_network = {.kind = JSON_OBJECT, .fields = network_fields};
static const struct rule a_ja4 = {.kind = JSON_OBJECT, .fields = ja4_fields};
static const struct rule a_version = {.kind = JSON_OBJECT, .fields = version_fields};

static const struct rule failure_fields[] = {
    {.key = "result-type", .kind = JSON_STRING},
    {.key = "failed-session-count", .kind = JSON_NUMBER, .min = 1},
    {.key = "top-client-networks", .kind = JSON_ARRAY, .items = &a_network},
    {.key = "top-ja4", .kind = JSON_ARRAY, .items = &a_ja4},
    {.key = "top-offered-max-versions", .kind = JSON_ARRAY, .items = &a_version},
    {.key = NULL}};
static const struct rule a_failure = {.kind = JSON_OBJECT, .fields = failure_fields};

static const struct rule policy_policy_fields[] = {
    {.key = "policy-type", .kind = JSON_STRING},
    {.key = "policy-string", .kind = JSON_ARRAY, .items = &a_string},
    {.key = "policy-domain", .kind = JSON_STRING},
    {.key = NULL}};
static const struct rule summary_fields[] = {
    {.key = "total-successful-session-count", .kind = JSON_NUMBER, .min = 0},
    {.key = "total-failure-session-count", .kind = JSON_NUMBER, .min = 0},
    {.key = NULL}};
static const struct rule policy_fields[] = {
    {.key = "policy", .kind = JSON_OBJECT, .fields = policy_policy_fields},
    {.key = "summary", .kind = JSON_OBJECT, .fields = summary_fields},
    {.key = "failure-details", .kind = JSON_ARRAY, .items = &a_failure},
    {.key = NULL}};
static const struct rule a_policy = {.kind = JSON_OBJECT, .fields = policy_fields};

static const struct rule date_range_fields[] = {{.key = "start-datetime", .kind = JSON_STRING},
                                                {.key = "end-datetime", .kind = JSON_STRING},
                                                {.key = NULL}};
static const struct rule source_fields[] = {{.key = "end-datetime", .kind = JSON_STRING},
                                            {.key = "instance", .kind = JSON_STRING},
                                            {.key = "report-id", .kind = JSON_STRING},
                                            {.key = "start-datetime", .kind = JSON_STRING},
                                            {.key = NULL}};
static const struct rule a_source = {.kind = JSON_OBJECT, .fields = source_fields};
static const struct rule tlsterm_fields[] = {
    {.key = "instances", .kind = JSON_ARRAY, .items = &a_string},
    /* Optional: one instance's window and merges written before it lack it. */
    {.key = "sources", .kind = JSON_ARRAY, .items = &a_source, .optional = true},
    {.key = "versions", .kind = JSON_ARRAY, .items = &a_string},
    {.key = "windows", .kind = JSON_NUMBER, .min = 1},
    {.key = NULL}};
static const struct rule report_fields[] = {
    {.key = "organization-name", .kind = JSON_STRING},
    {.key = "date-range", .kind = JSON_OBJECT, .fields = date_range_fields},
    {.key = "contact-info", .kind = JSON_STRING, .optional = true},
    {.key = "report-id", .kind = JSON_STRING},
    {.key = "policies", .kind = JSON_ARRAY, .items = &a_policy},
    /* Optional: files written before report-only entries lack it. */
    {.key = "report-only-policies", .kind = JSON_ARRAY, .items = &a_policy, .optional = true},
    /* Optional: files written before tlsterm named instances lack it. */
    {.key = "tlsterm", .kind = JSON_OBJECT, .fields = tlsterm_fields, .optional = true},
    {.key = NULL}};
static const struct rule report_rule = {.kind = JSON_OBJECT, .fields = report_fields};

/* get returns |object|'s member |key| (members are sorted), or NULL. */
const struct jnode *report_cli_get(const struct jnode *object, const char *key)
{
    size_t lo = 0, hi = object->num;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int order = strcmp(object->items[mid].key, key);
        if (order == 0)
            return &object->items[mid];
        if (order < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* struct report_file is a parsed report file, for messages. */
struct report_file {
    const char *path;
    const char *data;
};

/* refuse writes "FILE:LINE:COL: not a report: ..." for the byte |at| bytes
 * into the file and returns -1. */
static int refuse(const struct report_file *f, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(const struct report_file *f, size_t at, const char *fmt, ...)
{
    va_list ap;
    int line, col;

    position_of(f->data, at, &line, &col);
    fprintf(stderr, "%s:%d:%d: not a report: ", f->path, line, col);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

int report_cli_refuse(const char *path, const char *data, size_t at, const char *fmt, ...)
{
    va_list ap;
    int line, col;

    position_of(data, at, &line, &col);
    fprintf(stderr, "%s:%d:%d: not a report: ", path, line, col);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

/* check_count checks that the number |value|, called |what|, is an integer
 * of at least |min|. */
static int check_count(const struct report_file *f, const struct jnode *value, const char *what,
                       uint64_t min)
{
    const char *text = value->text;
    bool ok = text[0] >= '0' && text[0] <= '9'; /* no sign */

    if (ok) {
        char *end;
        errno = 0;
        uint64_t count = strtoull(text, &end, 10);
        ok = *end == '\0' && errno != ERANGE && count >= min; /* no fraction, no exponent */
    }
    if (!ok)
        return refuse(f, value->at,
                      "%s is %.32s; expected an integer from %" PRIu64 " to %" PRIu64, what,
                      text, min, UINT64_MAX);
    return 0;
}

/* check_value checks |value|, called |what| in messages, against |rule|;
 * it writes the first problem and returns -1, or returns 0. */
static int check_value(const struct report_file *f, const struct jnode *value, const char *what,
                       const struct rule *rule)
{
    char name[96];

    if (value->kind != rule->kind)
        return refuse(f, value->at, "%s is %s, not %s", what, kind_names[value->kind],
                      kind_names[rule->kind]);
    if (rule->kind == JSON_NUMBER)
        return check_count(f, value, what, rule->min);
    if (rule->kind == JSON_ARRAY) {
        snprintf(name, sizeof(name), "an item of %s", what);
        for (size_t i = 0; i < value->num; i++)
            if (check_value(f, &value->items[i], name, rule->items) != 0)
                return -1;
    }
    for (const struct rule *field = rule->fields; field != NULL && field->key != NULL;
         field++) {
        const struct jnode *member = report_cli_get(value, field->key);
        snprintf(name, sizeof(name), "'%s'", field->key);
        if (member == NULL && !field->optional)
            return refuse(f, value->at, "%s is missing", name);
        if (member != NULL && check_value(f, member, name, field) != 0)
            return -1;
    }
    return 0;
}

/* escape_node adds up in |*len| the bytes that the escaped strings of |n|
 * take, and with |out| writes them there and points the strings at them. */
static void escape_node(struct jnode *n, char *out, size_t *len)
{
    if (n->kind == JSON_STRING) {
        size_t n_len = log_escape(NULL, 0, n->text, strlen(n->text), LOG_ESCAPE_TERMINAL, NULL);
        if (out != NULL) {
            log_escape(out + *len, n_len + 1, n->text, strlen(n->text), LOG_ESCAPE_TERMINAL,
                       NULL);
            n->text = out + *len;
        }
        *len += n_len + 1;
    }
    for (size_t i = 0; i < n->num; i++)
        escape_node(&n->items[i], out, len);
}

/* escape_strings points every string of |doc| at its escaped form
 * (LOG_ESCAPE_TERMINAL), for the table. It returns 0, or -1 when out of
 * memory. */
int report_cli_escape_strings(struct jdoc *doc)
{
    size_t len = 0;

    escape_node(&doc->root, NULL, &len);
    doc->escaped = malloc(len + 1);
    if (doc->escaped == NULL)
        return -1;
    len = 0;
    escape_node(&doc->root, doc->escaped, &len);
    return 0;
}

/* ---- the table ------------------------------------------------------------------- */

/* top_text writes "key (count)" for entry |i| of the top list |list|, or
 * "" past its end. */
static const char *top_text(const struct jnode *list, const char *key_name, size_t i, char *out,
                            size_t out_len)
{
    out[0] = '\0';
    if (i >= list->num)
        return out;
    const struct jnode *entry = &list->items[i];
    const struct jnode *upper = report_cli_get(entry, "upper-bound");
    snprintf(out, out_len, "%s (%s%s)", report_cli_get(entry, key_name)->text,
             upper != NULL && upper->kind == JSON_BOOL ? "<=" : "",
             report_cli_get(entry, "count")->text);
    return out;
}

static void print_failures(const struct jnode *details)
{
    printf("    %-28s %8s  %-22s %-42s %s\n", "RESULT-TYPE", "COUNT", "TOP NETWORKS", "TOP JA4",
           "TOP MAX VERSIONS");
    for (size_t i = 0; i < details->num; i++) {
        const struct jnode *d = &details->items[i];
        const struct jnode *networks = report_cli_get(d, "top-client-networks");
        const struct jnode *ja4s = report_cli_get(d, "top-ja4");
        const struct jnode *versions = report_cli_get(d, "top-offered-max-versions");
        size_t rows = 1;
        if (networks->num > rows)
            rows = networks->num;
        if (ja4s->num > rows)
            rows = ja4s->num;
        if (versions->num > rows)
            rows = versions->num;
        if (rows > TABLE_TOP_SHOWN)
            rows = TABLE_TOP_SHOWN;
        for (size_t row = 0; row < rows; row++) {
            char network[64], ja4[64], version[64], row_text[256];
            /* Trailing blanks trimmed: a short row ends at its last text. */
            int len = snprintf(row_text, sizeof(row_text), "    %-28s %8s  %-22s %-42s %s",
                               row == 0 ? report_cli_get(d, "result-type")->text : "",
                               row == 0 ? report_cli_get(d, "failed-session-count")->text : "",
                               top_text(networks, "network", row, network, sizeof(network)),
                               top_text(ja4s, "ja4", row, ja4, sizeof(ja4)),
                               top_text(versions, "version", row, version, sizeof(version)));
            if (len > (int)sizeof(row_text) - 1)
                len = (int)sizeof(row_text) - 1;
            while (len > 0 && row_text[len - 1] == ' ')
                len--;
            printf("%.*s\n", len, row_text);
        }
    }
}

/* print_policies prints the table of |policies|, a checked list with its
 * strings escaped. */
static void print_policies(const struct jnode *policies, bool report_only,
                           const struct report_cli_columns *columns)
{
    printf("%-24s %-14s %12s %10s", "LISTENER", "POLICY", "SUCCESSES", "FAILURES");
    /* An instance's column is as wide as its name, numbers right-aligned. */
    for (size_t i = 0; columns != NULL && i < columns->num; i++)
        printf("  %9s", columns->names[i]);
    printf("\n");
    for (size_t i = 0; i < policies->num; i++) {
        const struct jnode *p = &policies->items[i];
        const struct jnode *policy = report_cli_get(p, "policy");
        const struct jnode *summary = report_cli_get(p, "summary");
        const struct jnode *strings = report_cli_get(policy, "policy-string");
        /* The preset is the first policy-string entry, "policy: NAME". */
        const char *preset = "-";
        if (strings->num > 0) {
            preset = strings->items[0].text;
            if (strncmp(preset, "policy: ", 8) == 0)
                preset += 8;
        }
        printf("%-24s %-14s %12s %10s", report_cli_get(policy, "policy-domain")->text, preset,
               report_cli_get(summary, "total-successful-session-count")->text,
               report_cli_get(summary, "total-failure-session-count")->text);
        for (size_t c = 0; columns != NULL && c < columns->num; c++) {
            char cell[48];
            columns->cell(columns->arg, c, p, report_only, cell, sizeof(cell));
            printf("  %*s", (int)(strlen(columns->names[c]) > 9 ? strlen(columns->names[c]) : 9),
                   cell);
        }
        printf("\n");
        const struct jnode *details = report_cli_get(p, "failure-details");
        if (details->num > 0) {
            print_failures(details);
            printf("\n");
        }
    }
}

/* print_table prints |doc|, a checked report with its strings escaped. */
void report_cli_print_table(const struct jnode *doc, const struct report_cli_columns *columns)
{
    const struct jnode *range = report_cli_get(doc, "date-range");
    const struct jnode *policies = report_cli_get(doc, "policies");
    const struct jnode *candidates = report_cli_get(doc, "report-only-policies");

    printf("TLS failure report %s\n", report_cli_get(doc, "report-id")->text);
    printf("organization %s, from %s to %s\n\n", report_cli_get(doc, "organization-name")->text,
           report_cli_get(range, "start-datetime")->text, report_cli_get(range, "end-datetime")->text);
    if (policies->num == 0)
        printf("no handshakes in this window\n");
    else
        print_policies(policies, false, columns);
    if (candidates == NULL || candidates->num == 0)
        return;
    printf("%sreport-only policies: of the completed handshakes, those that would pass "
           "(successes)\nand those that would fail (failures) each listener's candidate\n",
           policies->num == 0 ? "\n" : "");
    print_policies(candidates, true, columns);
}

/* read_file reads the report at |path| into |out|: a regular file only, as
 * for the configuration's files, so that a FIFO or a device never blocks
 * the command. It returns 0, or -1 after saying why on stderr. */
static int read_file(const char *path, struct file_contents *out)
{
    char problem[FILE_PROBLEM_MAX];

    if (file_read_regular(path, REPORT_FILE_MAX, out, problem, sizeof(problem)) == 0)
        return 0;
    fprintf(stderr, "tlsterm: cannot read report %s: %s\n", path, problem);
    return -1;
}

/* read_stdin reads the report from standard input ("tlsterm report -", for
 * "curl .../report | tlsterm report -") into |out|, at most REPORT_FILE_MAX
 * bytes, with a NUL after them as file_read_regular leaves. It returns 0, or
 * -1 after saying why on stderr. */
static int read_stdin(struct file_contents *out)
{
    size_t cap = 64 * 1024;
    size_t len = 0;
    uint8_t *data = malloc(cap + 1);

    *out = (struct file_contents){0};
    while (data != NULL) {
        if (len == cap) {
            if (cap >= REPORT_FILE_MAX) {
                fprintf(stderr, "tlsterm: cannot read report from stdin: larger than %d bytes\n",
                        REPORT_FILE_MAX);
                free(data);
                return -1;
            }
            uint8_t *bigger = realloc(data, cap * 2 + 1);
            if (bigger == NULL)
                break;
            data = bigger;
            cap *= 2;
        }
        size_t n = fread(data + len, 1, cap - len, stdin);
        len += n;
        if (n > 0)
            continue;
        if (ferror(stdin)) {
            fprintf(stderr, "tlsterm: cannot read report from stdin: %s\n", strerror(errno));
            free(data);
            return -1;
        }
        data[len] = '\0';
        out->data = data;
        out->len = len;
        return 0;
    }
    fprintf(stderr, "tlsterm: cannot read report from stdin: out of memory\n");
    free(data);
    return -1;
}

int report_cli_parse(const char *name, const char *data, size_t len, struct jdoc *out_doc)
{
    struct report_file file = {.path = name, .data = data};

    if (parse_document(name, data, len, out_doc) != 0 ||
        check_value(&file, &out_doc->root, "the file", &report_rule) != 0)
        return -1;
    return 0;
}

int report_cli_load(const char *path, struct file_contents *out_contents, struct jdoc *out_doc)
{
    bool from_stdin = strcmp(path, "-") == 0;

    memset(out_doc, 0, sizeof(*out_doc));
    if ((from_stdin ? read_stdin(out_contents) : read_file(path, out_contents)) != 0)
        return -1;
    if (from_stdin)
        path = "stdin"; /* what the messages below name: "stdin:LINE:COL: ..." */
    return report_cli_parse(path, (const char *)out_contents->data, out_contents->len, out_doc);
}

/* report_cli_parse_time reads an RFC 3339 time ("2026-11-26T16:00:00Z", or with an
 * offset such as "+02:00"; fractions of a second are refused, as reports
 * count whole seconds) into |out|. It returns 0, or -1. */
int report_cli_parse_time(const char *text, time_t *out)
{
    struct tm tm = {0};
    int year, month, day, hour, minute, second, len = 0, off_h = 0, off_m = 0;
    char sign = 'Z';

    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        bool ok = shape[i] == 'd'   ? text[i] >= '0' && text[i] <= '9'
                  : shape[i] == 'T' ? text[i] == 'T' || text[i] == 't'
                                    : text[i] == shape[i];
        if (!ok)
            return -1;
    }
    if (sscanf(text, "%4d-%2d-%2d%*1[Tt]%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute,
               &second, &len) != 6 || len != 19)
        return -1;
    const char *zone = text + len;
    if (strcmp(zone, "Z") != 0 && strcmp(zone, "z") != 0) {
        /* "+HH:MM" or "-HH:MM", digits only. */
        if (strlen(zone) != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':' ||
            strspn(zone + 1, "0123456789") != 2 || strspn(zone + 4, "0123456789") != 2)
            return -1;
        sign = zone[0];
        off_h = (zone[1] - '0') * 10 + (zone[2] - '0');
        off_m = (zone[4] - '0') * 10 + (zone[5] - '0');
        if (off_h > 23 || off_m > 59)
            return -1;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 ||
        second > 60)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    time_t t = timegm(&tm);
    long offset = (off_h * 60L + off_m) * 60L;
    *out = sign == '-' ? t + offset : sign == '+' ? t - offset : t;
    return 0;
}

/* is_directory says whether |path| names a directory (a merge of its
 * report files). */
static bool is_directory(const char *path)
{
    struct stat st;
    return strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int report_cli_main(int argc, char **argv)
{
    static const char usage[] =
        "usage: tlsterm report [--json] [--since TIME] [--until TIME] [--by-instance] "
        "FILE|DIR... (- for stdin)\n"
        "  several files, or a directory's tlsterm-report-*.json, are added up into one;\n"
        "  TIME is RFC 3339, such as 2026-11-26T16:00:00Z\n";
    struct report_merge_options options = {0};
    bool as_json = false, by_instance = false;
    char **paths = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*paths));
    size_t num_paths = 0;
    int status = 2;

    if (paths == NULL) {
        fprintf(stderr, "tlsterm report: out of memory\n");
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        bool since = strcmp(argv[i], "--since") == 0, until = strcmp(argv[i], "--until") == 0;
        if (strcmp(argv[i], "--json") == 0 && !as_json) {
            as_json = true;
        } else if (strcmp(argv[i], "--by-instance") == 0 && !by_instance) {
            by_instance = true;
        } else if ((since && !options.has_since) || (until && !options.has_until)) {
            time_t *t = since ? &options.since : &options.until;
            if (i + 1 >= argc || report_cli_parse_time(argv[i + 1], t) != 0) {
                fprintf(stderr,
                        "tlsterm report: %s needs an RFC 3339 time, such as "
                        "2026-11-26T16:00:00Z; got '%s'\n%s",
                        argv[i], i + 1 < argc ? argv[i + 1] : "", usage);
                goto done;
            }
            *(since ? &options.has_since : &options.has_until) = true;
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            status = 0;
            goto done;
        } else if (argv[i][0] != '-' || argv[i][1] == '\0') {
            paths[num_paths++] = argv[i];
        } else {
            fprintf(stderr, "tlsterm report: unexpected argument '%s'\n%s", argv[i], usage);
            goto done;
        }
    }
    if (num_paths == 0) {
        fprintf(stderr, "tlsterm report: FILE is required\n%s", usage);
        goto done;
    }
    /* One file alone is shown as it is (--json: its bytes unchanged);
     * anything else is a merge. */
    if (num_paths > 1 || is_directory(paths[0]) || options.has_since || options.has_until ||
        by_instance) {
        status = report_cli_merge(paths, num_paths, &options, as_json, by_instance);
        goto done;
    }

    struct file_contents contents = {0};
    struct jdoc doc;
    const char *path = strcmp(paths[0], "-") == 0 ? "stdin" : paths[0];
    status = 1;
    if (report_cli_load(paths[0], &contents, &doc) != 0)
        goto fail;
    if (!as_json && report_cli_escape_strings(&doc) != 0) {
        fprintf(stderr, "tlsterm: %s: out of memory\n", path);
        goto fail;
    }
    if (as_json)
        fwrite(contents.data, 1, contents.len, stdout);
    else
        report_cli_print_table(&doc.root, NULL);
    status = 0;
fail:
    report_cli_doc_cleanup(&doc);
    file_contents_cleanup(&contents);
done:
    free(paths);
    return status;
}
