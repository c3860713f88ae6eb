/* report_cli: "tlsterm report [--json] FILE", a report file as a table for
 * people, or passed through as JSON once it parses.
 *
 * The file is parsed by a small strict JSON parser (RFC 8259: no trailing
 * commas, no comments, depth at most JSON_MAX_DEPTH) into a tree, then
 * read as a report: a missing or mistyped field is an error naming it, so a
 * truncated or foreign file is refused with a clear message, never printed
 * half. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define JSON_MAX_DEPTH 32
#define REPORT_FILE_MAX (64 * 1024 * 1024)
/* Entries shown per top list in the table; --json shows them all. */
#define TABLE_TOP_SHOWN 5

enum json_kind { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* struct jnode is one JSON value. |text| holds a string's decoded bytes or a
 * number's text; arrays and objects have |num| |items| (and |keys|). */
struct jnode {
    enum json_kind kind;
    char *text;
    size_t num;
    struct jnode *items;
    char **keys;
};

struct jparser {
    const char *s, *end, *p;
    const char *error; /* the first problem, with |p| where it was found */
};

static void jnode_cleanup(struct jnode *n)
{
    for (size_t i = 0; i < n->num; i++) {
        jnode_cleanup(&n->items[i]);
        if (n->keys != NULL)
            free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->text);
}

static void skip_space(struct jparser *jp)
{
    while (jp->p < jp->end &&
           (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

static int fail(struct jparser *jp, const char *error)
{
    if (jp->error == NULL)
        jp->error = error;
    return -1;
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
 * NUL-terminated |*out|; a \u0000 escape is refused. */
static int parse_string(struct jparser *jp, char **out)
{
    const char *p = jp->p + 1;
    /* The decoded form is never longer than the escaped one. */
    char *text = malloc((size_t)(jp->end - p) + 1);
    size_t len = 0;

    if (text == NULL)
        return fail(jp, "out of memory");
    for (;;) {
        if (p >= jp->end) {
            jp->p = p;
            free(text);
            return fail(jp, "unterminated string");
        }
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            break;
        if (ch < 0x20) {
            jp->p = p;
            free(text);
            return fail(jp, "control character in a string");
        }
        if (ch != '\\') {
            text[len++] = (char)ch;
            p++;
            continue;
        }
        if (p + 1 >= jp->end) {
            jp->p = p;
            free(text);
            return fail(jp, "unterminated string");
        }
        char esc = p[1];
        const char *simple = strchr("\"\\/bfnrt", esc);
        if (esc != '\0' && simple != NULL) {
            text[len++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            p += 2;
            continue;
        }
        unsigned cp, low;
        if (esc != 'u' || jp->end - p < 6 || hex4(p + 2, &cp) != 0 || cp == 0) {
            jp->p = p;
            free(text);
            return fail(jp, "invalid escape in a string");
        }
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (jp->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) != 0 ||
                low < 0xdc00 || low > 0xdfff) {
                jp->p = p;
                free(text);
                return fail(jp, "unpaired surrogate in a string");
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            p += 6;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            jp->p = p;
            free(text);
            return fail(jp, "unpaired surrogate in a string");
        }
        len += put_utf8(text + len, cp);
    }
    text[len] = '\0';
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
    out->kind = JSON_NUMBER;
    out->text = strndup(start, (size_t)(p - start));
    jp->p = p;
    return out->text != NULL ? 0 : fail(jp, "out of memory");
}

static int parse_value(struct jparser *jp, struct jnode *out, int depth);

/* parse_container reads an array or, when |object|, an object. */
static int parse_container(struct jparser *jp, struct jnode *out, bool object, int depth)
{
    char close = object ? '}' : ']';
    size_t cap = 0;

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
        if (out->num == cap) {
            cap = cap ? cap * 2 : 8;
            struct jnode *items = realloc(out->items, cap * sizeof(*items));
            if (items == NULL)
                return fail(jp, "out of memory");
            out->items = items;
            if (object) {
                char **keys = realloc(out->keys, cap * sizeof(*keys));
                if (keys == NULL)
                    return fail(jp, "out of memory");
                out->keys = keys;
            }
        }
        skip_space(jp);
        if (object) {
            char *key;
            if (jp->p >= jp->end || *jp->p != '"')
                return fail(jp, "expected a string key");
            if (parse_string(jp, &key) != 0)
                return -1;
            skip_space(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                return fail(jp, "expected ':'");
            }
            jp->p++;
            out->keys[out->num] = key;
        }
        memset(&out->items[out->num], 0, sizeof(out->items[0]));
        out->num++;
        if (parse_value(jp, &out->items[out->num - 1], depth + 1) != 0)
            return -1;
        skip_space(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == close) {
            jp->p++;
            return 0;
        }
        return fail(jp, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
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
            out->text = words[i].text ? strdup(words[i].text) : NULL;
            jp->p += len;
            return 0;
        }
    }
    return parse_number(jp, out);
}

/* parse_document parses |len| bytes at |s| into |out|. On failure it writes
 * "FILE:LINE:COL: message" to stderr and returns -1. */
static int parse_document(const char *path, const char *s, size_t len, struct jnode *out)
{
    struct jparser jp = {.s = s, .end = s + len, .p = s};

    memset(out, 0, sizeof(*out));
    if (memchr(s, '\0', len) != NULL) {
        fprintf(stderr, "tlsterm: %s: not a report: it holds NUL bytes\n", path);
        return -1;
    }
    if (parse_value(&jp, out, 0) == 0) {
        skip_space(&jp);
        if (jp.p != jp.end)
            fail(&jp, "unexpected bytes after the JSON value");
    }
    if (jp.error == NULL)
        return 0;
    int line = 1, col = 1;
    for (const char *p = s; p < jp.p && p < jp.end; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    fprintf(stderr, "tlsterm: %s:%d:%d: invalid JSON: %s\n", path, line, col, jp.error);
    jnode_cleanup(out);
    return -1;
}

/* ---- reading a report ------------------------------------------------------------ */

static const struct jnode *get(const struct jnode *object, const char *key)
{
    if (object == NULL || object->kind != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < object->num; i++)
        if (strcmp(object->keys[i], key) == 0)
            return &object->items[i];
    return NULL;
}

/* struct reader checks a report's fields as the table reads them. */
struct reader {
    const char *path;
    const char *missing; /* the first field missing or of the wrong type */
};

static const struct jnode *need(struct reader *r, const struct jnode *object, const char *key,
                                enum json_kind kind)
{
    const struct jnode *value = get(object, key);
    if (value == NULL || value->kind != kind) {
        if (r->missing == NULL)
            r->missing = key;
        return NULL;
    }
    return value;
}

static const char *need_text(struct reader *r, const struct jnode *object, const char *key,
                             enum json_kind kind)
{
    const struct jnode *value = need(r, object, key, kind);
    return value != NULL ? value->text : "?";
}

/* top_text writes "key (count)" for entry |i| of the top list |list|, or
 * "" past its end. */
static const char *top_text(struct reader *r, const struct jnode *list, const char *key_name,
                            size_t i, char *out, size_t out_len)
{
    out[0] = '\0';
    if (list == NULL || i >= list->num)
        return out;
    const struct jnode *entry = &list->items[i];
    snprintf(out, out_len, "%s (%s)", need_text(r, entry, key_name, JSON_STRING),
             need_text(r, entry, "count", JSON_NUMBER));
    return out;
}

static void print_failures(struct reader *r, const struct jnode *details)
{
    printf("    %-28s %8s  %-22s %-42s %s\n", "RESULT-TYPE", "COUNT", "TOP NETWORKS", "TOP JA4",
           "TOP MAX VERSIONS");
    for (size_t i = 0; i < details->num; i++) {
        const struct jnode *d = &details->items[i];
        const struct jnode *networks = need(r, d, "top-client-networks", JSON_ARRAY);
        const struct jnode *ja4s = need(r, d, "top-ja4", JSON_ARRAY);
        const struct jnode *versions = need(r, d, "top-offered-max-versions", JSON_ARRAY);
        size_t rows = 1;
        if (networks != NULL && networks->num > rows)
            rows = networks->num;
        if (ja4s != NULL && ja4s->num > rows)
            rows = ja4s->num;
        if (rows > TABLE_TOP_SHOWN)
            rows = TABLE_TOP_SHOWN;
        for (size_t row = 0; row < rows; row++) {
            char network[64], ja4[64], version[64], row_text[256];
            /* Trailing blanks trimmed: a short row ends at its last text. */
            int len =
                snprintf(row_text, sizeof(row_text), "    %-28s %8s  %-22s %-42s %s",
                         row == 0 ? need_text(r, d, "result-type", JSON_STRING) : "",
                         row == 0 ? need_text(r, d, "failed-session-count", JSON_NUMBER) : "",
                         top_text(r, networks, "network", row, network, sizeof(network)),
                         top_text(r, ja4s, "ja4", row, ja4, sizeof(ja4)),
                         top_text(r, versions, "version", row, version, sizeof(version)));
            if (len > (int)sizeof(row_text) - 1)
                len = (int)sizeof(row_text) - 1;
            while (len > 0 && row_text[len - 1] == ' ')
                len--;
            printf("%.*s\n", len, row_text);
        }
    }
}

/* print_table prints |doc| as a table; it returns 0, or -1 when the
 * document is not a report (nothing useful printed then). */
static int print_table(struct reader *r, const struct jnode *doc)
{
    const struct jnode *range = need(r, doc, "date-range", JSON_OBJECT);
    const struct jnode *policies = need(r, doc, "policies", JSON_ARRAY);
    const char *organization = need_text(r, doc, "organization-name", JSON_STRING);
    const char *id = need_text(r, doc, "report-id", JSON_STRING);

    if (range == NULL || policies == NULL)
        return -1;
    const char *start = need_text(r, range, "start-datetime", JSON_STRING);
    const char *end = need_text(r, range, "end-datetime", JSON_STRING);
    /* Check every policy before printing any, so a bad file prints nothing. */
    for (size_t i = 0; i < policies->num; i++) {
        const struct jnode *p = &policies->items[i];
        need(r, need(r, p, "policy", JSON_OBJECT), "policy-domain", JSON_STRING);
        need(r, need(r, p, "policy", JSON_OBJECT), "policy-string", JSON_ARRAY);
        need(r, need(r, p, "summary", JSON_OBJECT), "total-successful-session-count",
             JSON_NUMBER);
        need(r, need(r, p, "summary", JSON_OBJECT), "total-failure-session-count", JSON_NUMBER);
        const struct jnode *details = need(r, p, "failure-details", JSON_ARRAY);
        for (size_t j = 0; details != NULL && j < details->num; j++) {
            const struct jnode *d = &details->items[j];
            need(r, d, "result-type", JSON_STRING);
            need(r, d, "failed-session-count", JSON_NUMBER);
            need(r, d, "top-client-networks", JSON_ARRAY);
            need(r, d, "top-ja4", JSON_ARRAY);
            need(r, d, "top-offered-max-versions", JSON_ARRAY);
        }
    }
    if (r->missing != NULL)
        return -1;

    printf("TLS failure report %s\n", id);
    printf("organization %s, from %s to %s\n\n", organization, start, end);
    if (policies->num == 0) {
        printf("no handshakes in this window\n");
        return 0;
    }
    printf("%-24s %-14s %12s %10s\n", "LISTENER", "POLICY", "SUCCESSES", "FAILURES");
    for (size_t i = 0; i < policies->num; i++) {
        const struct jnode *p = &policies->items[i];
        const struct jnode *policy = get(p, "policy");
        const struct jnode *summary = get(p, "summary");
        const struct jnode *strings = get(policy, "policy-string");
        /* The preset is the first policy-string entry, "policy: NAME". */
        const char *preset = "-";
        if (strings->num > 0 && strings->items[0].kind == JSON_STRING) {
            preset = strings->items[0].text;
            if (strncmp(preset, "policy: ", 8) == 0)
                preset += 8;
        }
        printf("%-24s %-14s %12s %10s\n", get(policy, "policy-domain")->text, preset,
               get(summary, "total-successful-session-count")->text,
               get(summary, "total-failure-session-count")->text);
        const struct jnode *details = get(p, "failure-details");
        if (details->num > 0) {
            print_failures(r, details);
            printf("\n");
        }
    }
    return 0;
}

static char *read_file(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0;

    if (f == NULL) {
        fprintf(stderr, "tlsterm: cannot open report %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *grown = cap <= REPORT_FILE_MAX ? realloc(data, cap + 1) : NULL;
            if (grown == NULL) {
                fprintf(stderr, "tlsterm: %s: too large for a report (over %d bytes)\n", path,
                        REPORT_FILE_MAX);
                goto fail;
            }
            data = grown;
        }
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "tlsterm: cannot read report %s: %s\n", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    data[len] = '\0';
    *out_len = len;
    return data;
fail:
    fclose(f);
    free(data);
    return NULL;
}

int report_cli_main(int argc, char **argv)
{
    static const char usage[] = "usage: tlsterm report [--json] FILE\n";
    bool as_json = false;
    const char *path = NULL;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && !as_json) {
            as_json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (path == NULL && (argv[i][0] != '-' || argv[i][1] == '\0')) {
            path = argv[i];
        } else {
            fprintf(stderr, "tlsterm report: unexpected argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "tlsterm report: FILE is required\n%s", usage);
        return 2;
    }

    size_t len;
    char *data = read_file(path, &len);
    struct jnode doc;
    int status = 1;
    if (data == NULL)
        return 1;
    if (parse_document(path, data, len, &doc) != 0) {
        free(data);
        return 1;
    }
    if (doc.kind != JSON_OBJECT) {
        fprintf(stderr, "tlsterm: %s: not a report: expected a JSON object\n", path);
    } else if (as_json) {
        fwrite(data, 1, len, stdout);
        status = 0;
    } else {
        struct reader r = {.path = path};
        if (print_table(&r, &doc) == 0)
            status = 0;
        else
            fprintf(stderr,
                    "tlsterm: %s: not a report: '%s' is missing or has the wrong type\n", path,
                    r.missing ? r.missing : "?");
    }
    jnode_cleanup(&doc);
    free(data);
    return status;
}
