/* config_schema: the machinery every part of the configuration's schema
 * is loaded with (config_internal.h): errors reported as FILE:LINE:COL
 * with the loading going on, typed reads of a node (text, lists, arrays,
 * durations, booleans, integers, one of a set of names), and the walk of a
 * mapping against its table of fields, where unknown keys get a "did you
 * mean" and missing required ones are reported. What the keys mean is in
 * config.c and the config_*.c of each section. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_internal.h"
#include "file.h"
#include "yamltree.h"

/* vreport writes one error line. Control characters from quoted values
 * ("a\nb") become '?', so each problem stays on exactly one line. */
__attribute__((format(printf, 3, 0))) static void
vreport(FILE *errors, const struct cfg_pos *pos, const char *fmt, va_list ap)
{
    char *message = NULL;

    if (vasprintf(&message, fmt, ap) < 0) {
        fprintf(errors, "%s:%d:%d: %s\n", pos->file, pos->line, pos->col, "out of memory");
        return;
    }
    for (char *p = message; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    fprintf(errors, "%s:%d:%d: %s\n", pos->file, pos->line, pos->col, message);
    free(message);
}

void cfg_error(FILE *errors, const struct cfg_pos *pos, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(errors, pos, fmt, ap);
    va_end(ap);
}

void cfg_warn_permissions(const struct cfg_pos *pos, const char *path, mode_t mode,
                          const char *fmt, ...)
{
    struct log_line line;
    char where[512], mode_text[8], msg[1024];
    va_list ap;

    if (!log_enabled(LOG_WARN))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(where, sizeof(where), "%s:%d:%d", pos->file, pos->line, pos->col);
    snprintf(mode_text, sizeof(mode_text), "%04o", (unsigned)(mode & 07777));
    log_begin(&line, LOG_WARN, "file_permissions");
    log_str(&line, "where", where);
    log_str(&line, "file", path);
    log_str(&line, "mode", mode_text);
    log_str(&line, "msg", msg);
    log_end(&line);
}

void cfg_warn_exposed(const struct cfg_pos *pos, const char *what, const char *path,
                      mode_t mode)
{
    const char *exposure = file_exposure(mode);

    if (exposure != NULL)
        cfg_warn_permissions(pos, path, mode,
                             "%s file '%s' is %s; make it 0600 or 0640 (chmod go-w,o-r)", what,
                             path, exposure);
}

struct cfg_pos cfg_pos_of(const struct loader *ld, const struct ynode *node)
{
    return (struct cfg_pos){ld->config->file, yamltree_line(node), yamltree_col(node)};
}

void cfg_fail_at(struct loader *ld, const struct ynode *node, const char *fmt, ...)
{
    struct cfg_pos pos = cfg_pos_of(ld, node);
    va_list ap;

    va_start(ap, fmt);
    vreport(ld->errors, &pos, fmt, ap);
    va_end(ap);
    ld->num_errors++;
}

bool cfg_expect(struct loader *ld, const char *key, const struct ynode *node,
                enum ynode_kind kind, const char *noun)
{
    const char *text = yamltree_scalar(node);

    if (yamltree_kind(node) == kind)
        return true;
    if (text == NULL)
        cfg_fail_at(ld, node, "expected %s for '%s', got %s", noun, key,
                    yamltree_kind_name(yamltree_kind(node)));
    else if (text[0] == '\0')
        cfg_fail_at(ld, node, "expected %s for '%s', got an empty value", noun, key);
    else
        cfg_fail_at(ld, node, "expected %s for '%s', got '%s'", noun, key, text);
    return false;
}

const char *cfg_expect_text(struct loader *ld, const char *key, const struct ynode *node,
                            const char *noun)
{
    return cfg_expect(ld, key, node, YNODE_SCALAR, noun) ? yamltree_scalar(node) : NULL;
}

size_t cfg_list_len(struct loader *ld, const char *key, const struct ynode *node, bool one_ok)
{
    if (one_ok && yamltree_kind(node) == YNODE_SCALAR)
        return 1;
    if (!cfg_expect(ld, key, node, YNODE_SEQUENCE,
                    one_ok ? "a string or a sequence of strings" : "a sequence"))
        return 0;
    if (yamltree_num_items(node) == 0)
        cfg_fail_at(ld, node, "expected a non-empty sequence for '%s'", key);
    return yamltree_num_items(node);
}

const struct ynode *cfg_list_item(const struct ynode *node, size_t i)
{
    return yamltree_kind(node) == YNODE_SCALAR ? node : yamltree_item(node, i);
}

void *cfg_new_array(struct loader *ld, const struct ynode *node, size_t num, size_t size)
{
    void *array = calloc(num, size);

    if (array == NULL)
        cfg_fail_at(ld, node, "out of memory");
    return array;
}

char *cfg_dup_string(struct loader *ld, const struct ynode *node, const char *text)
{
    char *copy = strdup(text);

    if (copy == NULL)
        cfg_fail_at(ld, node, "out of memory");
    return copy;
}

const char *cfg_relative_note(const char *path, char *out, size_t out_len)
{
    char cwd[4096];

    if (path[0] == '/' || out_len == 0)
        snprintf(out, out_len, "%s", "");
    else if (getcwd(cwd, sizeof(cwd)) == NULL)
        snprintf(out, out_len, " (relative to the working directory, which cannot be read)");
    else
        snprintf(out, out_len, " (relative to the working directory %s)", cwd);
    return out;
}

/* edit_distance is the optimal string alignment distance (Levenshtein plus
 * adjacent swaps), enough to catch "listn" and "lsiten". Anything longer
 * than every key is simply far. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAX = 32 };
    size_t la = strlen(a), lb = strlen(b);
    size_t d[MAX + 1][MAX + 1];

    if (la > MAX || lb > MAX)
        return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* report_unknown_key reports |key_node| with the allowed keys of |schema|
 * and, when one is close and not already in |mapping|, suggests it. It
 * returns the suggested field's index, or -1. */
static int report_unknown_key(struct loader *ld, const struct schema *schema,
                              const struct ynode *mapping, const struct ynode *key_node)
{
    const char *key = yamltree_scalar(key_node);
    int nearest = -1;
    size_t nearest_distance = 3; /* a suggestion further away misleads */
    char allowed[256] = "";
    char hint[96] = "";

    for (size_t i = 0; i < schema->num_fields; i++) {
        const char *name = schema->fields[i].key;
        size_t distance = edit_distance(key, name);
        if (distance < nearest_distance && distance < strlen(key) &&
            yamltree_get(mapping, name) == NULL) {
            nearest = (int)i;
            nearest_distance = distance;
        }
        if (i > 0)
            strncat(allowed, ", ", sizeof(allowed) - strlen(allowed) - 1);
        strncat(allowed, name, sizeof(allowed) - strlen(allowed) - 1);
    }
    if (nearest >= 0)
        snprintf(hint, sizeof(hint), "; did you mean '%s'?", schema->fields[nearest].key);
    cfg_fail_at(ld, key_node, "unknown key '%s' %s%s%s allowed: %s", key, schema->where, hint,
                nearest >= 0 ? "" : ";", allowed);
    return nearest;
}

/* cfg_apply_mapping: callers set defaults first. A required key that an unknown key was taken
 * for ("did you mean") is not reported missing as well: it is one mistake. */
void cfg_apply_mapping(struct loader *ld, const struct schema *schema,
                       const struct ynode *mapping, void *target)
{
    uint32_t suggested = 0; /* bit f: field f was suggested */

    for (size_t i = 0; i < yamltree_num_items(mapping); i++) {
        const struct ynode *key_node = yamltree_key(mapping, i);
        const struct field *field = NULL;

        for (size_t f = 0; f < schema->num_fields && field == NULL; f++) {
            if (strcmp(schema->fields[f].key, yamltree_scalar(key_node)) == 0)
                field = &schema->fields[f];
        }
        if (field != NULL) {
            field->apply(ld, field, yamltree_item(mapping, i), (char *)target + field->offset);
        } else {
            int nearest = report_unknown_key(ld, schema, mapping, key_node);
            if (nearest >= 0)
                suggested |= UINT32_C(1) << nearest;
        }
    }
    for (size_t f = 0; f < schema->num_fields; f++) {
        if (schema->fields[f].required && !(suggested & (UINT32_C(1) << f)) &&
            yamltree_get(mapping, schema->fields[f].key) == NULL)
            cfg_fail_at(ld, mapping, "%s is missing required key '%s'", schema->name,
                        schema->fields[f].key);
    }
}

void cfg_apply_nested(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out)
{
    if (cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        cfg_apply_mapping(ld, field->nested, value, out);
}

int cfg_parse_duration_max(const char *text, uint64_t max_ms, uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {"d", CFG_DAY_MS}};
    uint64_t value = 0;
    const char *p = text;

    /* Stop at the cap while reading digits, so no input can overflow. */
    for (; *p >= '0' && *p <= '9'; p++) {
        value = value * 10 + (uint64_t)(*p - '0');
        if (value > max_ms)
            return -1;
    }
    if (p == text || value == 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].name) == 0 && value <= max_ms / units[i].ms) {
            *out_ms = value * units[i].ms;
            return 0;
        }
    }
    return -1;
}

int config_parse_duration(const char *text, uint32_t *out_ms)
{
    uint64_t ms;

    if (cfg_parse_duration_max(text, CFG_DAY_MS, &ms) != 0)
        return -1;
    *out_ms = (uint32_t)ms;
    return 0;
}

void cfg_apply_duration(struct loader *ld, const struct field *field, const struct ynode *value,
                        void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a duration");

    if (text != NULL && config_parse_duration(text, out) != 0)
        cfg_fail_at(ld, value,
                    "invalid duration '%s' for '%s'; expected a whole number above 0 with a "
                    "unit ms, s, m, h or d, at most 24h (e.g. 500ms, 30s, 5m)",
                    text, field->key);
}

void cfg_apply_bool(struct loader *ld, const struct field *field, const struct ynode *value,
                    void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "true or false");

    if (text == NULL)
        return;
    /* YAML 1.2's booleans only: "yes" and "on" are YAML 1.1 surprises. */
    if (strcmp(text, "true") == 0)
        *(bool *)out = true;
    else if (strcmp(text, "false") == 0)
        *(bool *)out = false;
    else
        cfg_fail_at(ld, value, "invalid %s '%s'; expected true or false", field->key, text);
}

int cfg_choose(struct loader *ld, const char *key, const struct ynode *value,
               const char *const *names)
{
    const char *text = cfg_expect_text(ld, key, value, "a string");
    char allowed[128] = "";
    int nearest = -1;
    size_t nearest_distance = 3; /* as for keys: further away misleads */

    if (text == NULL)
        return -1;
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(text, names[i]) == 0)
            return i;
        /* A value is short, so it must be mostly right ("v3" is not a typo of
         * "v1"); another case of a name ("JSON"), or a name cut short or
         * lengthened, is always a near miss. */
        size_t distance = strcasecmp(text, names[i]) == 0 ? 0 : edit_distance(text, names[i]);
        size_t shorter = strlen(text) < strlen(names[i]) ? strlen(text) : strlen(names[i]);
        if (shorter >= 3 && strncasecmp(text, names[i], shorter) == 0)
            distance = 1; /* "warning" for "warn", "inter" for "intermediate" */
        if (distance < nearest_distance && distance * 2 < strlen(text)) {
            nearest = i;
            nearest_distance = distance;
        }
        snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s",
                 i > 0 ? ", " : "", names[i]);
    }
    if (nearest >= 0)
        cfg_fail_at(ld, value, "invalid %s '%s'; did you mean '%s'? allowed: %s", key, text,
                    names[nearest], allowed);
    else
        cfg_fail_at(ld, value, "invalid %s '%s'; allowed: %s", key, text, allowed);
    return -1;
}

int cfg_parse_uint(struct loader *ld, const char *key, const struct ynode *node,
                   const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
    size_t digits = strspn(text, "0123456789");
    unsigned long long number = 0;

    /* Ten digits cover any uint32_t; more cannot be in range, nor overflow
     * the parse. strtoull alone would also take blanks and a sign. */
    if (digits > 0 && digits <= 10 && text[digits] == '\0')
        number = strtoull(text, NULL, 10);
    if (digits == 0 || digits > 10 || text[digits] != '\0' || number < min || number > max) {
        cfg_fail_at(ld, node, "invalid %s '%s'; expected an integer from %u to %u", key, text,
                    min, max);
        return -1;
    }
    *out = (uint32_t)number;
    return 0;
}
