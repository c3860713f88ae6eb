/* yamltree_test: the node tree, its positions, and every problem yamltree
 * reports, with exact line and column. Each test writes its YAML to a fresh
 * temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "yamltree.h"

struct fixture {
    char path[256];
    char *errors;
    size_t errors_len;
};

/* write_file writes |len| bytes of |text| to a new temporary file whose name
 * goes into |f->path|. */
static void write_file(struct fixture *f, const char *text, size_t len)
{
    const char *dir = getenv("TMPDIR");
    int fd;

    snprintf(f->path, sizeof(f->path), "%s/yamltree_test.XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(f->path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* load writes |yaml| to a temporary file and loads it, keeping what was
 * reported in |f->errors| with the file name replaced by "F" so expectations
 * read "F:3:5: ...". */
static struct yamltree *load_bytes(struct fixture *f, const char *yaml, size_t len)
{
    char *raw = NULL;
    size_t raw_len = 0;
    FILE *errors = open_memstream(&raw, &raw_len);
    struct yamltree *tree;
    size_t path_len;
    char *out;

    assert_non_null(errors);
    free(f->errors);
    write_file(f, yaml, len);
    tree = yamltree_load(f->path, errors);
    fclose(errors);
    unlink(f->path);

    path_len = strlen(f->path);
    f->errors = out = calloc(1, raw_len + 1);
    assert_non_null(out);
    for (const char *p = raw; *p != '\0';) {
        if (strncmp(p, f->path, path_len) == 0) {
            *out++ = 'F';
            p += path_len;
        } else {
            *out++ = *p++;
        }
    }
    free(raw);
    return tree;
}

static struct yamltree *load(struct fixture *f, const char *yaml)
{
    return load_bytes(f, yaml, strlen(yaml));
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct fixture));
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    free(f->errors);
    free(f);
    return 0;
}

/* expect_failure loads |yaml| and checks it fails with exactly |expected|. */
static void expect_failure(void **state, const char *yaml, const char *expected)
{
    struct fixture *f = *state;
    struct yamltree *tree = load(f, yaml);

    assert_null(tree);
    assert_string_equal(f->errors, expected);
}

static void test_tree_shape_and_positions(void **state)
{
    struct fixture *f = *state;
    struct yamltree *tree = load(f, "# comment\n"
                                    "b: 1\n"
                                    "a:\n"
                                    "  - x\n"
                                    "  - {k: \"v\", j: ''}\n"
                                    "c: [1.2, ~]\n"
                                    "d:\n");
    const struct ynode *root, *a, *item, *c;

    assert_non_null(tree);
    assert_string_equal(f->errors, "");
    root = yamltree_root(tree);
    assert_int_equal(yamltree_kind(root), YNODE_MAPPING);
    assert_int_equal(yamltree_line(root), 2);
    assert_int_equal(yamltree_col(root), 1);
    assert_int_equal(yamltree_num_items(root), 4);

    /* Keys keep file order and their own positions. */
    assert_string_equal(yamltree_scalar(yamltree_key(root, 0)), "b");
    assert_string_equal(yamltree_scalar(yamltree_key(root, 1)), "a");
    assert_int_equal(yamltree_line(yamltree_key(root, 1)), 3);
    assert_string_equal(yamltree_scalar(yamltree_item(root, 0)), "1");
    assert_int_equal(yamltree_col(yamltree_item(root, 0)), 4);

    a = yamltree_get(root, "a");
    assert_int_equal(yamltree_kind(a), YNODE_SEQUENCE);
    assert_null(yamltree_scalar(a));
    assert_int_equal(yamltree_num_items(a), 2);
    assert_int_equal(yamltree_line(a), 4);
    assert_int_equal(yamltree_col(a), 3);
    item = yamltree_item(a, 1);
    assert_int_equal(yamltree_kind(item), YNODE_MAPPING);
    assert_int_equal(yamltree_line(item), 5);
    assert_int_equal(yamltree_col(item), 5);
    assert_string_equal(yamltree_scalar(yamltree_get(item, "k")), "v");
    assert_int_equal(yamltree_col(yamltree_get(item, "k")), 9);
    assert_string_equal(yamltree_scalar(yamltree_get(item, "j")), "");

    /* Scalars come back as written, untyped. */
    c = yamltree_get(root, "c");
    assert_string_equal(yamltree_scalar(yamltree_item(c, 0)), "1.2");
    assert_string_equal(yamltree_scalar(yamltree_item(c, 1)), "~");
    assert_string_equal(yamltree_scalar(yamltree_get(root, "d")), "");

    assert_null(yamltree_get(root, "missing"));
    assert_null(yamltree_get(c, "a"));
    assert_int_equal(yamltree_num_items(yamltree_get(root, "b")), 0);
    assert_string_equal(yamltree_kind_name(YNODE_SCALAR), "a scalar");
    assert_string_equal(yamltree_kind_name(YNODE_SEQUENCE), "a sequence");
    assert_string_equal(yamltree_kind_name(YNODE_MAPPING), "a mapping");
    yamltree_free(tree);
}

static void test_empty_file_has_no_root(void **state)
{
    struct fixture *f = *state;
    struct yamltree *tree = load(f, "");

    assert_non_null(tree);
    assert_null(yamltree_root(tree));
    yamltree_free(tree);

    tree = load(f, "# only a comment\n\n");
    assert_non_null(tree);
    assert_null(yamltree_root(tree));
    assert_string_equal(f->errors, "");
    yamltree_free(tree);
    yamltree_free(NULL);
}

static void test_multibyte_columns_count_characters(void **state)
{
    struct fixture *f = *state;
    struct yamltree *tree = load(f, "{\"\xc3\xa9t\xc3\xa9\": x, b: y}\n");

    assert_non_null(tree);
    assert_int_equal(yamltree_col(yamltree_get(yamltree_root(tree), "b")), 15);
    yamltree_free(tree);
}

static void test_duplicate_keys(void **state)
{
    expect_failure(state,
                   "a: 1\n"
                   "b:\n"
                   "  x: 1\n"
                   "  x: 2\n"
                   "a: 2\n"
                   "c: 3\n"
                   "a: 3\n",
                   "F:4:3: duplicate key 'x' (first defined at 3:3)\n"
                   "F:5:1: duplicate key 'a' (first defined at 1:1)\n"
                   "F:7:1: duplicate key 'a' (first defined at 1:1)\n");
}

static void test_duplicate_keys_in_flow_mapping(void **state)
{
    expect_failure(state, "m: {k: 1, j: 2, k: 3}\n",
                   "F:1:17: duplicate key 'k' (first defined at 1:5)\n");
}

static void test_control_characters_stay_on_one_line(void **state)
{
    expect_failure(state, "\"a\\nb\": 1\n\"a\\nb\": 2\n",
                   "F:2:1: duplicate key 'a?b' (first defined at 1:1)\n");
}

static void test_anchor_alias_and_tag_all_reported(void **state)
{
    expect_failure(
        state,
        "base: &b {x: 1}\n"
        "copy: *b\n"
        "str: !!str 5\n"
        "seq: !custom [1]\n",
        "F:1:7: anchors (&b) are not supported; write the value out\n"
        "F:2:7: aliases (*b) are not supported; write the value out\n"
        "F:3:6: tags (tag:yaml.org,2002:str) are not supported; write the plain value\n"
        "F:4:6: tags (!custom) are not supported; write the plain value\n");
}

static void test_alias_bomb_is_refused(void **state)
{
    expect_failure(state,
                   "a: &a [x, x]\n"
                   "b: [*a, *a]\n",
                   "F:1:4: anchors (&a) are not supported; write the value out\n"
                   "F:2:5: aliases (*a) are not supported; write the value out\n"
                   "F:2:9: aliases (*a) are not supported; write the value out\n");
}

static void test_non_scalar_key(void **state)
{
    expect_failure(state, "? [a, b]\n: 1\n",
                   "F:1:3: mapping keys must be scalars, not a sequence\n");
}

static void test_nul_in_scalar(void **state)
{
    expect_failure(state, "a: \"x\\0y\"\n",
                   "F:1:4: NUL characters are not allowed in values\n");
}

static void test_syntax_error_uses_libyaml_text(void **state)
{
    expect_failure(state,
                   "a:\n"
                   "  b: 1\n"
                   " c: 2\n",
                   "F:3:2: did not find expected key (while parsing a block mapping at 1:1)\n");
    expect_failure(
        state, "a: [1, 2\n",
        "F:2:1: did not find expected ',' or ']' (while parsing a flow sequence at 1:4)\n");
    expect_failure(state, "a: b: c\n",
                   "F:1:5: mapping values are not allowed in this context\n");
}

static void test_errors_before_syntax_error_are_kept(void **state)
{
    expect_failure(
        state,
        "a: 1\n"
        "a: 2\n"
        "b: *x\n"
        "c: [\n",
        "F:3:4: aliases (*x) are not supported; write the value out\n"
        "F:5:1: did not find expected node content (while parsing a flow node at 5:1)\n");
}

static void test_invalid_utf8(void **state)
{
    expect_failure(state, "a: 1\nb: x\xff\n", "F:2:5: invalid leading UTF-8 octet (0xFF)\n");
}

static void test_second_document(void **state)
{
    expect_failure(state, "a: 1\n---\nb: 2\n",
                   "F:2:1: only one YAML document is allowed in a configuration file\n");
}

/* nested builds |depth| nested flow sequences: "[[[]]]" is depth 3. */
static char *nested(int depth)
{
    char *text = calloc(1, (size_t)depth * 2 + 2);

    assert_non_null(text);
    memset(text, '[', (size_t)depth);
    memset(text + depth, ']', (size_t)depth);
    text[depth * 2] = '\n';
    return text;
}

static void test_depth_limit(void **state)
{
    struct fixture *f = *state;
    char *text = nested(YAMLTREE_MAX_DEPTH);
    struct yamltree *tree = load(f, text);

    assert_non_null(tree);
    yamltree_free(tree);
    free(text);

    text = nested(YAMLTREE_MAX_DEPTH + 1);
    expect_failure(state, text, "F:1:65: nesting is deeper than 64 levels\n");
    free(text);
}

static void test_size_limit(void **state)
{
    struct fixture *f = *state;
    size_t len = YAMLTREE_MAX_FILE_SIZE;
    char *text = malloc(len + 1);
    struct yamltree *tree;

    /* A comment line of exactly the limit loads; one byte more does not. */
    assert_non_null(text);
    memset(text, ' ', len + 1);
    text[0] = '#';
    text[len - 1] = '\n';
    tree = load_bytes(f, text, len);
    assert_non_null(tree);
    assert_null(yamltree_root(tree));
    yamltree_free(tree);

    text[len - 1] = ' ';
    text[len] = '\n';
    assert_null(load_bytes(f, text, len + 1));
    assert_string_equal(f->errors,
                        "F:1:1: file is larger than 1048576 bytes; a configuration never needs "
                        "that much\n");
    free(text);
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    char *raw = NULL;
    size_t raw_len = 0;
    FILE *errors = open_memstream(&raw, &raw_len);

    assert_null(yamltree_load("/nonexistent/tlsterm.yaml", errors));
    fclose(errors);
    assert_string_equal(
        raw, "/nonexistent/tlsterm.yaml:1:1: cannot read file: No such file or directory\n");
    free(raw);
    (void)f;
}

static void test_directory_is_not_a_file(void **state)
{
    char *raw = NULL;
    size_t raw_len = 0;
    FILE *errors = open_memstream(&raw, &raw_len);

    assert_null(yamltree_load("/", errors));
    fclose(errors);
    assert_string_equal(raw, "/:1:1: cannot read file: Is a directory\n");
    free(raw);
    (void)state;
}

/* Environment references in values are expanded; keys never are. */
static void test_environment_expansion(void **state)
{
    struct fixture *f = *state;
    struct yamltree *tree;
    const struct ynode *root, *list;

    assert_int_equal(setenv("YT_PORT", "8443", 1), 0);
    assert_int_equal(setenv("YT_EMPTY", "", 1), 0);
    assert_int_equal(setenv("YT_DOLLAR", "a${YT_PORT}b", 1), 0);
    unsetenv("YT_UNSET");
    tree = load(f, "listen: \"127.0.0.1:${YT_PORT}\"\n"
                   "${YT_PORT}: key\n"
                   "defaulted: ${YT_UNSET:-x y}\n"
                   "empty: ${YT_EMPTY:-fallback}\n"
                   "set_empty: ${YT_EMPTY}\n"
                   "escaped: $${YT_PORT} $$ $x a$\n"
                   "once: ${YT_DOLLAR}\n"
                   "list: [\"${YT_PORT}\", '${YT_UNSET:-}']\n");
    assert_non_null(tree);
    assert_string_equal(f->errors, "");
    root = yamltree_root(tree);
    assert_string_equal(yamltree_scalar(yamltree_get(root, "listen")), "127.0.0.1:8443");
    /* Positions stay those of the value as written. */
    assert_int_equal(yamltree_col(yamltree_get(root, "listen")), 9);
    assert_string_equal(yamltree_scalar(yamltree_key(root, 1)), "${YT_PORT}");
    assert_string_equal(yamltree_scalar(yamltree_get(root, "defaulted")), "x y");
    assert_string_equal(yamltree_scalar(yamltree_get(root, "empty")), "fallback");
    assert_string_equal(yamltree_scalar(yamltree_get(root, "set_empty")), "");
    assert_string_equal(yamltree_scalar(yamltree_get(root, "escaped")), "${YT_PORT} $ $x a$");
    /* A value is expanded once: references it holds stay as they are. */
    assert_string_equal(yamltree_scalar(yamltree_get(root, "once")), "a${YT_PORT}b");
    list = yamltree_get(root, "list");
    assert_string_equal(yamltree_scalar(yamltree_item(list, 0)), "8443");
    assert_string_equal(yamltree_scalar(yamltree_item(list, 1)), "");
    yamltree_free(tree);
    unsetenv("YT_PORT");
    unsetenv("YT_EMPTY");
    unsetenv("YT_DOLLAR");
}

/* Each reference that cannot be expanded is reported at its "${", and the
 * parse goes on to the next. */
static void test_environment_errors(void **state)
{
    unsetenv("YT_UNSET");
    assert_int_equal(setenv("YT_SET", "v", 1), 0);
    expect_failure(state,
                   "a: \"x ${YT_SET} ${YT_UNSET}\"\n"
                   "b: ${}\n"
                   "c:\n"
                   "  - pre ${1X} post\n"
                   "d: ${YT_SET-x}\n"
                   "e: ab${\n",
                   "F:1:17: environment variable 'YT_UNSET' is not set; set it, or give a "
                   "default: ${YT_UNSET:-default}\n"
                   "F:2:4: malformed environment reference '${}'; write ${NAME} or "
                   "${NAME:-default} with NAME made of A-Z, a-z, 0-9 and '_', not starting "
                   "with a digit, or $$ for a literal '$'\n"
                   "F:4:9: malformed environment reference '${1X}'; write ${NAME} or "
                   "${NAME:-default} with NAME made of A-Z, a-z, 0-9 and '_', not starting "
                   "with a digit, or $$ for a literal '$'\n"
                   "F:5:4: malformed environment reference '${YT_SET-x}'; write ${NAME} or "
                   "${NAME:-default} with NAME made of A-Z, a-z, 0-9 and '_', not starting "
                   "with a digit, or $$ for a literal '$'\n"
                   "F:6:6: unterminated '${' in 'ab${'; write ${NAME} or ${NAME:-default}, or "
                   "$$ for a literal '$'\n");
    unsetenv("YT_SET");
}

/* libyaml's marks count characters: a reference after multibyte text on
 * earlier lines (and before it on its own) is still reported at its "${". */
static void test_environment_error_after_multibyte_lines(void **state)
{
    unsetenv("YT_UNSET");
    expect_failure(state,
                   "# caf\xc3\xa9 cr\xc3\xa8" "me br\xc3\xbbl\xc3\xa9" "e\n"
                   "name: \"\xc3\xa9t\xc3\xa9\"\n"
                   "a: \"\xc3\xa9\xc3\xa9 ${YT_UNSET}\"\n",
                   "F:3:8: environment variable 'YT_UNSET' is not set; set it, or give a "
                   "default: ${YT_UNSET:-default}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tree_shape_and_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_has_no_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multibyte_columns_count_characters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys_in_flow_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_characters_stay_on_one_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_anchor_alias_and_tag_all_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_alias_bomb_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_scalar_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_in_scalar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error_uses_libyaml_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_before_syntax_error_are_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_document, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_is_not_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_error_after_multibyte_lines, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
