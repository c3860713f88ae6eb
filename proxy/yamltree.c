/* yamltree: libyaml events to an immutable node tree with positions.
 *
 * Ownership: a yamltree owns its root; every container node owns its children
 * and every scalar node owns its text. Nodes are attached to their parent as
 * soon as they are created, so freeing the root frees everything even when a
 * parse stops half way.
 *
 * The builder keeps the open containers on a fixed stack of
 * YAMLTREE_MAX_DEPTH entries; nesting deeper than that stops the parse. Other
 * problems that are not syntax errors (anchors, aliases, tags, duplicate keys,
 * non-scalar keys, NUL bytes, environment references that cannot be
 * expanded) are reported and the parse goes on, so one run shows all of
 * them.
 *
 * Environment references in values are expanded as each scalar arrives, so
 * the tree holds only final text and every later check (addresses, files,
 * durations) sees the value the operator meant. Keys are never expanded: the
 * schema must stay readable from the file alone. */
#include "yamltree.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "file.h"

struct ynode {
    enum ynode_kind kind;
    int line;
    int col;
    char *text; /* scalars only */
    /* Sequences: the items. Mappings: key 0, value 0, key 1, value 1, ... */
    struct ynode **children;
    size_t num_children;
    size_t cap_children;
};

struct yamltree {
    struct ynode *root;
};

struct builder {
    const char *path;
    FILE *errors;
    const unsigned char *input; /* the whole file, for reader error offsets */
    size_t input_len;
    struct ynode *open[YAMLTREE_MAX_DEPTH];
    int depth;
    struct ynode *root;
    int num_documents;
    int num_errors;
};

/* report writes one "PATH:LINE:COL: message" line and counts it. */
__attribute__((format(printf, 4, 5))) static void report(struct builder *b, int line, int col,
                                                         const char *fmt, ...)
{
    va_list ap;
    char *message = NULL;
    int len;

    va_start(ap, fmt);
    len = vasprintf(&message, fmt, ap);
    va_end(ap);
    b->num_errors++;
    if (len < 0) {
        fprintf(b->errors, "%s:%d:%d: out of memory\n", b->path, line, col);
        return;
    }
    /* Keys and anchors may hold control characters; keep one line each. */
    for (char *p = message; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    fprintf(b->errors, "%s:%d:%d: %s\n", b->path, line, col, message);
    free(message);
}

static void node_free(struct ynode *node)
{
    if (node == NULL)
        return;
    for (size_t i = 0; i < node->num_children; i++)
        node_free(node->children[i]);
    free(node->children);
    free(node->text);
    free(node);
}

/* read_file reads all of |b->path| into |b->input| (NUL-terminated),
 * refusing anything but a regular file, and files over
 * YAMLTREE_MAX_FILE_SIZE. */
static int read_file(struct builder *b)
{
    struct file_contents contents;
    char problem[FILE_PROBLEM_MAX];

    if (file_read_regular(b->path, YAMLTREE_MAX_FILE_SIZE, &contents, problem,
                          sizeof(problem)) != 0) {
        if (errno == EFBIG)
            report(b, 1, 1,
                   "file is larger than %d bytes; a configuration never needs that much",
                   YAMLTREE_MAX_FILE_SIZE);
        else
            report(b, 1, 1, "cannot read file: %s", problem);
        return -1;
    }
    b->input = contents.data;
    b->input_len = contents.len;
    return 0;
}

/* attach makes |node| the root or the next child of the innermost open
 * container. It returns -1, without taking |node|, only when out of memory. */
static int attach(struct builder *b, struct ynode *node)
{
    struct ynode *parent;

    if (b->depth == 0) {
        b->root = node;
        return 0;
    }
    parent = b->open[b->depth - 1];
    if (parent->num_children == parent->cap_children) {
        size_t cap = parent->cap_children ? parent->cap_children * 2 : 4;
        struct ynode **grown = realloc(parent->children, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        parent->children = grown;
        parent->cap_children = cap;
    }
    if (parent->kind == YNODE_MAPPING && parent->num_children % 2 == 0 &&
        node->kind != YNODE_SCALAR)
        report(b, node->line, node->col, "mapping keys must be scalars, not %s",
               yamltree_kind_name(node->kind));
    parent->children[parent->num_children++] = node;
    return 0;
}

/* add_node creates a node of |kind| at |mark| and attaches it. Scalars get
 * a copy of |text_len| bytes of |text|; containers pass NULL. */
static struct ynode *add_node(struct builder *b, enum ynode_kind kind, const yaml_mark_t *mark,
                              const char *text, size_t text_len)
{
    struct ynode *node = calloc(1, sizeof(*node));

    if (node == NULL)
        goto fail;
    node->kind = kind;
    node->line = (int)mark->line + 1;
    node->col = (int)mark->column + 1;
    if (text != NULL && (node->text = strndup(text, text_len)) == NULL)
        goto fail;
    if (attach(b, node) != 0)
        goto fail;
    return node;
fail:
    node_free(node);
    report(b, (int)mark->line + 1, (int)mark->column + 1, "out of memory");
    return NULL;
}

/* check_extras reports the YAML features a configuration has no use for. An
 * anchor or tag is an error but the node is still built, so that later
 * problems are found too. */
static void check_extras(struct builder *b, const yaml_mark_t *mark, const yaml_char_t *anchor,
                         const yaml_char_t *tag)
{
    if (anchor != NULL)
        report(b, (int)mark->line + 1, (int)mark->column + 1,
               "anchors (&%s) are not supported; write the value out", (const char *)anchor);
    if (tag != NULL)
        report(b, (int)mark->line + 1, (int)mark->column + 1,
               "tags (%s) are not supported; write the plain value", (const char *)tag);
}

struct key_entry {
    const struct ynode *key;
    size_t index;
};

static int compare_keys(const void *a, const void *b)
{
    const struct key_entry *x = a, *y = b;
    int order = strcmp(x->key->text, y->key->text);

    if (order != 0)
        return order;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* check_duplicates reports every key of |mapping| that repeats an earlier
 * one, in file order. Sorting keeps this O(n log n): a 1 MiB file can hold a
 * mapping with a hundred thousand keys. Non-scalar keys, already reported
 * by attach, are left out. */
static void check_duplicates(struct builder *b, const struct ynode *mapping)
{
    size_t num_keys = mapping->num_children / 2;
    struct key_entry *entries = NULL;
    const struct ynode **first = NULL;
    size_t num_entries = 0;

    if (num_keys < 2)
        return;
    entries = calloc(num_keys, sizeof(*entries));
    first = calloc(num_keys, sizeof(*first));
    if (entries == NULL || first == NULL) {
        report(b, mapping->line, mapping->col, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < num_keys; i++) {
        if (mapping->children[2 * i]->kind != YNODE_SCALAR)
            continue;
        entries[num_entries].key = mapping->children[2 * i];
        entries[num_entries].index = i;
        num_entries++;
    }
    qsort(entries, num_entries, sizeof(*entries), compare_keys);
    for (size_t i = 1, run = 0; i < num_entries; i++) {
        if (strcmp(entries[run].key->text, entries[i].key->text) != 0)
            run = i;
        else
            first[entries[i].index] = entries[run].key;
    }
    for (size_t i = 0; i < num_keys; i++) {
        const struct ynode *key = mapping->children[2 * i];
        if (first[i] != NULL)
            report(b, key->line, key->col, "duplicate key '%s' (first defined at %d:%d)",
                   key->text, first[i]->line, first[i]->col);
    }
fail:
    free(first);
    free(entries);
}

/* syntax_error reports libyaml's own description of why it stopped. Reader
 * errors (bad encoding) carry a byte offset instead of a mark. */
static void syntax_error(struct builder *b, const yaml_parser_t *parser)
{
    int line = (int)parser->problem_mark.line + 1;
    int col = (int)parser->problem_mark.column + 1;
    const char *problem = parser->problem ? parser->problem : "unknown syntax error";

    if (parser->error == YAML_MEMORY_ERROR) {
        report(b, line, col, "out of memory");
        return;
    }
    if (parser->error == YAML_READER_ERROR) {
        line = 1;
        col = 1;
        for (size_t i = 0; i < parser->problem_offset && i < b->input_len; i++) {
            if (b->input[i] == '\n') {
                line++;
                col = 1;
            } else if ((b->input[i] & 0xC0) != 0x80) {
                col++;
            }
        }
        if (parser->problem_value != -1)
            report(b, line, col, "%s (0x%02X)", problem, (unsigned)parser->problem_value);
        else
            report(b, line, col, "%s", problem);
        return;
    }
    if (parser->context != NULL)
        report(b, line, col, "%s (%s at %d:%d)", problem, parser->context,
               (int)parser->context_mark.line + 1, (int)parser->context_mark.column + 1);
    else
        report(b, line, col, "%s", problem);
}

/* is_key says whether the next node attached is a mapping key. */
static bool is_key(const struct builder *b)
{
    const struct ynode *parent = b->depth > 0 ? b->open[b->depth - 1] : NULL;

    return parent != NULL && parent->kind == YNODE_MAPPING && parent->num_children % 2 == 0;
}

/* next_reference returns the offset of the next "${" in |text| at or after
 * |from|, skipping "$$" escapes, or |len| when there is none. */
static size_t next_reference(const char *text, size_t len, size_t from)
{
    for (size_t i = from; i + 1 < len; i++) {
        if (text[i] != '$')
            continue;
        if (text[i + 1] == '{')
            return i;
        if (text[i + 1] == '$')
            i++;
    }
    return len;
}

/* mark_offset returns the byte offset in the input of |mark|, whose index
 * and column count characters, not bytes: its line's start (after a BOM on
 * the first), then |mark->column| characters on. */
static size_t mark_offset(const struct builder *b, const yaml_mark_t *mark)
{
    const unsigned char *in = b->input;
    size_t at = 0, line = 0, col = 0;

    if (b->input_len >= 3 && in[0] == 0xEF && in[1] == 0xBB && in[2] == 0xBF)
        at = 3;
    for (; at < b->input_len && line < mark->line; at++)
        if (in[at] == '\n')
            line++;
    for (; at < b->input_len && col < mark->column; col++)
        do
            at++;
        while (at < b->input_len && (in[at] & 0xC0) == 0x80);
    return at;
}

/* reference_mark returns where the |nth| (from 0) reference of a scalar
 * stands in the file: the |nth| "${" in its source text from |start| to
 * |end|. When the source holds a different number of references than the
 * value (a quoted scalar spelled one with escapes), the scalar's own start
 * is the best position there is. */
static void reference_mark(const struct builder *b, const yaml_mark_t *start,
                           const yaml_mark_t *end, size_t nth, size_t num_in_value,
                           int *out_line, int *out_col)
{
    size_t from = mark_offset(b, start), to = mark_offset(b, end);
    const char *source = (const char *)b->input + from;
    size_t source_len = to > from ? to - from : 0;
    size_t found = 0, offset = 0, at = source_len;

    for (size_t i = next_reference(source, source_len, 0); i < source_len;
         i = next_reference(source, source_len, i + 2), found++) {
        if (found == nth)
            at = i;
    }
    *out_line = (int)start->line + 1;
    *out_col = (int)start->column + 1;
    if (found != num_in_value || at == source_len)
        return;
    for (; offset < at; offset++) {
        if (source[offset] == '\n') {
            (*out_line)++;
            *out_col = 1;
        } else if (((unsigned char)source[offset] & 0xC0) != 0x80) {
            (*out_col)++;
        }
    }
}

/* expand_env returns a new string (the caller frees it) with |text|'s
 * environment references replaced: "${NAME}" by the variable's value,
 * "${NAME:-default}" by the value or, when it is unset or empty, by the
 * default, and "$$" by "$"; any other '$' stays as written. A variable that
 * is not set and has no default, and a reference that is not one of those
 * two forms, are reported at the "${" (|start| and |end| bound the scalar in
 * the file). It returns NULL after reporting, or when out of memory. */
static char *expand_env(struct builder *b, const char *text, size_t len,
                        const yaml_mark_t *start, const yaml_mark_t *end)
{
    char *expanded = NULL;
    size_t expanded_len = 0, num_references = 0, nth = 0;
    FILE *out;
    bool failed = false;

    for (size_t i = next_reference(text, len, 0); i < len; i = next_reference(text, len, i + 2))
        num_references++;
    out = open_memstream(&expanded, &expanded_len);
    if (out == NULL) {
        report(b, (int)start->line + 1, (int)start->column + 1, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < len;) {
        const char *name, *close, *value;
        size_t name_len;
        int line, col;

        if (text[i] != '$' || i + 1 == len || (text[i + 1] != '$' && text[i + 1] != '{')) {
            fputc(text[i++], out);
            continue;
        }
        if (text[i + 1] == '$') {
            fputc('$', out);
            i += 2;
            continue;
        }
        reference_mark(b, start, end, nth++, num_references, &line, &col);
        name = text + i + 2;
        close = memchr(name, '}', len - (size_t)(name - text));
        if (close == NULL) {
            report(b, line, col,
                   "unterminated '${' in '%.*s'; write ${NAME} or ${NAME:-default}, or $$ for "
                   "a literal '$'",
                   (int)len, text);
            failed = true;
            break;
        }
        name_len = 0;
        if (isalpha((unsigned char)name[0]) || name[0] == '_') {
            while (name + name_len < close &&
                   (isalnum((unsigned char)name[name_len]) || name[name_len] == '_'))
                name_len++;
        }
        if (name_len == 0 ||
            (name + name_len != close &&
             (close - (name + name_len) < 2 || name[name_len] != ':' ||
              name[name_len + 1] != '-'))) {
            report(b, line, col,
                   "malformed environment reference '%.*s'; write ${NAME} or ${NAME:-default} "
                   "with NAME made of A-Z, a-z, 0-9 and '_', not starting with a digit, or $$ "
                   "for a literal '$'",
                   (int)(close + 1 - (text + i)), text + i);
            failed = true;
        } else {
            char *var = strndup(name, name_len);
            if (var == NULL) {
                report(b, line, col, "out of memory");
                failed = true;
                break;
            }
            value = getenv(var);
            if (name + name_len != close && (value == NULL || value[0] == '\0')) {
                fwrite(name + name_len + 2, 1, (size_t)(close - (name + name_len + 2)), out);
            } else if (value != NULL) {
                fputs(value, out);
            } else {
                report(b, line, col,
                       "environment variable '%s' is not set; set it, or give a default: "
                       "${%s:-default}",
                       var, var);
                failed = true;
            }
            free(var);
        }
        i = (size_t)(close + 1 - text);
    }
    if (fclose(out) != 0 && !failed) {
        report(b, (int)start->line + 1, (int)start->column + 1, "out of memory");
        failed = true;
    }
    if (failed) {
        free(expanded);
        return NULL;
    }
    return expanded;
}

/* handle_event applies one event to the tree. It returns -1 when the parse
 * cannot go on (out of memory, too deep, a second document). */
static int handle_event(struct builder *b, const yaml_event_t *event)
{
    const yaml_mark_t *mark = &event->start_mark;
    struct ynode *node;

    switch (event->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->num_documents > 1) {
            report(b, (int)mark->line + 1, (int)mark->column + 1,
                   "only one YAML document is allowed in a configuration file");
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        report(b, (int)mark->line + 1, (int)mark->column + 1,
               "aliases (*%s) are not supported; write the value out",
               (const char *)event->data.alias.anchor);
        /* A placeholder keeps the mapping's key/value pairing intact. */
        return add_node(b, YNODE_SCALAR, mark, "", 0) != NULL ? 0 : -1;
    case YAML_SCALAR_EVENT:
        check_extras(b, mark, event->data.scalar.anchor, event->data.scalar.tag);
        if (memchr(event->data.scalar.value, '\0', event->data.scalar.length) != NULL)
            report(b, (int)mark->line + 1, (int)mark->column + 1,
                   "NUL characters are not allowed in values");
        if (!is_key(b) && memchr(event->data.scalar.value, '$', event->data.scalar.length)) {
            char *expanded = expand_env(b, (const char *)event->data.scalar.value,
                                        event->data.scalar.length, mark, &event->end_mark);
            /* After a reported problem the text as written keeps the
             * tree's shape, so later problems are found too. */
            if (expanded != NULL) {
                node = add_node(b, YNODE_SCALAR, mark, expanded, strlen(expanded));
                free(expanded);
                return node != NULL ? 0 : -1;
            }
        }
        node = add_node(b, YNODE_SCALAR, mark, (const char *)event->data.scalar.value,
                        event->data.scalar.length);
        return node != NULL ? 0 : -1;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (event->type == YAML_SEQUENCE_START_EVENT)
            check_extras(b, mark, event->data.sequence_start.anchor,
                         event->data.sequence_start.tag);
        else
            check_extras(b, mark, event->data.mapping_start.anchor,
                         event->data.mapping_start.tag);
        if (b->depth == YAMLTREE_MAX_DEPTH) {
            report(b, (int)mark->line + 1, (int)mark->column + 1,
                   "nesting is deeper than %d levels", YAMLTREE_MAX_DEPTH);
            return -1;
        }
        node = add_node(
            b, event->type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQUENCE : YNODE_MAPPING, mark,
            NULL, 0);
        if (node == NULL)
            return -1;
        b->open[b->depth++] = node;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
        b->depth--;
        return 0;
    case YAML_MAPPING_END_EVENT:
        check_duplicates(b, b->open[--b->depth]);
        return 0;
    default:
        return 0;
    }
}

struct yamltree *yamltree_load(const char *path, FILE *errors)
{
    struct builder b = {.path = path, .errors = errors};
    yaml_parser_t parser;
    bool parser_ready = false;
    struct yamltree *tree = NULL;

    if (read_file(&b) != 0)
        goto fail;
    if (!yaml_parser_initialize(&parser)) {
        report(&b, 1, 1, "out of memory");
        goto fail;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, b.input, b.input_len);
    for (bool done = false; !done;) {
        yaml_event_t event;
        int result;

        if (!yaml_parser_parse(&parser, &event)) {
            syntax_error(&b, &parser);
            goto fail;
        }
        result = handle_event(&b, &event);
        done = event.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&event);
        if (result != 0)
            goto fail;
    }
    if (b.num_errors > 0)
        goto fail;
    tree = calloc(1, sizeof(*tree));
    if (tree == NULL) {
        report(&b, 1, 1, "out of memory");
        goto fail;
    }
    tree->root = b.root;
    b.root = NULL;
fail:
    node_free(b.root);
    if (parser_ready)
        yaml_parser_delete(&parser);
    free((void *)b.input);
    return tree;
}

void yamltree_free(struct yamltree *tree)
{
    if (tree == NULL)
        return;
    node_free(tree->root);
    free(tree);
}

const struct ynode *yamltree_root(const struct yamltree *tree) { return tree->root; }

enum ynode_kind yamltree_kind(const struct ynode *node) { return node->kind; }

const char *yamltree_kind_name(enum ynode_kind kind)
{
    switch (kind) {
    case YNODE_SCALAR:
        return "a scalar";
    case YNODE_SEQUENCE:
        return "a sequence";
    case YNODE_MAPPING:
        return "a mapping";
    }
    return "an unknown node";
}

int yamltree_line(const struct ynode *node) { return node->line; }

int yamltree_col(const struct ynode *node) { return node->col; }

const char *yamltree_scalar(const struct ynode *node)
{
    return node->kind == YNODE_SCALAR ? node->text : NULL;
}

size_t yamltree_num_items(const struct ynode *node)
{
    switch (node->kind) {
    case YNODE_SEQUENCE:
        return node->num_children;
    case YNODE_MAPPING:
        return node->num_children / 2;
    default:
        return 0;
    }
}

const struct ynode *yamltree_item(const struct ynode *node, size_t i)
{
    return node->kind == YNODE_MAPPING ? node->children[2 * i + 1] : node->children[i];
}

const struct ynode *yamltree_key(const struct ynode *mapping, size_t i)
{
    return mapping->children[2 * i];
}

const struct ynode *yamltree_get(const struct ynode *mapping, const char *key)
{
    if (mapping == NULL || mapping->kind != YNODE_MAPPING)
        return NULL;
    for (size_t i = 0; i + 1 < mapping->num_children; i += 2) {
        const char *text = mapping->children[i]->text;
        if (text != NULL && strcmp(text, key) == 0)
            return mapping->children[i + 1];
    }
    return NULL;
}
