/* config_fixture: see config_fixture.h. */
#include "config_fixture.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

char *config_fixture_errors;

static char test_dir[256];
static int original_dir = -1;

void config_fixture_write(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    assert_int_equal(fputs(text, file) >= 0, 1);
    assert_int_equal(fclose(file), 0);
}

int config_fixture_setup(const char *name)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(test_dir, sizeof(test_dir), "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    original_dir = open(".", O_RDONLY | O_DIRECTORY);
    if (original_dir < 0 || mkdtemp(test_dir) == NULL || chdir(test_dir) != 0)
        return -1;
    config_fixture_write("cert.pem", "dummy certificate\n");
    config_fixture_write("key.pem", "dummy key\n");
    return 0;
}

int config_fixture_teardown(void)
{
    unlink("cert.pem");
    unlink("key.pem");
    unlink("t.yaml");
    if (fchdir(original_dir) != 0)
        return -1;
    close(original_dir);
    return rmdir(test_dir);
}

int config_fixture_reset(void **state)
{
    (void)state;
    free(config_fixture_errors);
    config_fixture_errors = NULL;
    return 0;
}

/* replace_cwd replaces, in place, each occurrence of the working directory
 * (a fresh temporary one per run) in |text| with "DIR", so expectations can
 * spell out the messages that name it. */
static void replace_cwd(char *text)
{
    char cwd[4096];
    size_t cwd_len;
    char *at;

    if (text == NULL || getcwd(cwd, sizeof(cwd)) == NULL || (cwd_len = strlen(cwd)) < 3)
        return;
    while ((at = strstr(text, cwd)) != NULL) {
        memcpy(at, "DIR", 3);
        memmove(at + 3, at + cwd_len, strlen(at + cwd_len) + 1);
    }
}

struct config *config_fixture_load(const char *yaml)
{
    size_t len = 0;
    FILE *errors;
    struct config *config;

    config_fixture_reset(NULL);
    errors = open_memstream(&config_fixture_errors, &len);
    assert_non_null(errors);
    config_fixture_write("t.yaml", yaml);
    config = config_load("t.yaml", errors);
    fclose(errors);
    replace_cwd(config_fixture_errors);
    return config;
}

void config_fixture_expect_errors(const char *yaml, const char *expected)
{
    struct config *config = config_fixture_load(yaml);

    assert_null(config);
    assert_string_equal(config_fixture_errors, expected);
}
