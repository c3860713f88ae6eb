/* file_test: file_read_regular and file_check_regular on a regular file, at
 * and over the size limit, and on what they refuse (a FIFO, at once, where
 * a plain open would block; a directory; a missing file); file_exposure's
 * rule for files that hold secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "file.h"

static char test_dir[256];

static int setup(void **state)
{
    const char *tmp = getenv("TMPDIR");

    (void)state;
    snprintf(test_dir, sizeof(test_dir), "%s/file_test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(test_dir) != NULL ? 0 : -1;
}

static const char *in_dir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", test_dir, name);
    return path;
}

static int teardown(void **state)
{
    (void)state;
    unlink(in_dir("plain"));
    unlink(in_dir("fifo"));
    return rmdir(test_dir);
}

static void test_reads_a_regular_file(void **state)
{
    struct file_contents contents;
    char problem[FILE_PROBLEM_MAX] = "";
    FILE *file = fopen(in_dir("plain"), "w");

    (void)state;
    assert_non_null(file);
    fputs("hello\n", file);
    fclose(file);
    assert_int_equal(chmod(in_dir("plain"), 0640), 0);

    assert_int_equal(file_check_regular(in_dir("plain"), problem, sizeof(problem)), 0);
    assert_int_equal(file_read_regular(in_dir("plain"), 6, &contents, problem, sizeof(problem)),
                     0);
    assert_int_equal(contents.len, 6);
    assert_string_equal((const char *)contents.data, "hello\n");
    assert_true(S_ISREG(contents.mode));
    assert_int_equal(contents.mode & 07777, 0640);
    file_contents_cleanup(&contents);
    assert_null(contents.data);

    /* One byte over the limit. */
    assert_int_equal(file_read_regular(in_dir("plain"), 5, &contents, problem, sizeof(problem)),
                     -1);
    assert_int_equal(errno, EFBIG);
    assert_string_equal(problem, "larger than 5 bytes");
    assert_null(contents.data);
}

static void test_refuses_a_fifo_at_once(void **state)
{
    struct file_contents contents;
    char problem[FILE_PROBLEM_MAX] = "";

    (void)state;
    assert_int_equal(mkfifo(in_dir("fifo"), 0600), 0);
    /* Without a writer, a blocking open would never return: alarm() makes
     * that a failure instead of a hung test. */
    alarm(10);
    assert_int_equal(file_check_regular(in_dir("fifo"), problem, sizeof(problem)), -1);
    assert_string_equal(problem, "not a regular file (a FIFO)");
    assert_int_equal(
        file_read_regular(in_dir("fifo"), 100, &contents, problem, sizeof(problem)), -1);
    alarm(0);
    assert_string_equal(problem, "not a regular file (a FIFO)");
    assert_null(contents.data);
}

static void test_refuses_directories_and_missing_files(void **state)
{
    struct file_contents contents;
    char problem[FILE_PROBLEM_MAX] = "";

    (void)state;
    assert_int_equal(file_read_regular(test_dir, 100, &contents, problem, sizeof(problem)), -1);
    assert_string_equal(problem, "Is a directory");
    assert_int_equal(file_check_regular(in_dir("absent"), problem, sizeof(problem)), -1);
    assert_string_equal(problem, "No such file or directory");
    assert_int_equal(file_read_regular("/dev/null", 100, &contents, problem, sizeof(problem)),
                     -1);
    assert_string_equal(problem, "not a regular file (a character device)");
}

static void test_exposure(void **state)
{
    (void)state;
    assert_null(file_exposure(S_IFREG | 0600));
    assert_null(file_exposure(S_IFREG | 0640));
    assert_null(file_exposure(S_IFREG | 0400));
    assert_null(file_exposure(S_IFREG | 0700));
    assert_string_equal(file_exposure(S_IFREG | 0604), "readable by others");
    assert_string_equal(file_exposure(S_IFREG | 0644), "readable by others");
    assert_string_equal(file_exposure(S_IFREG | 0620), "writable by group");
    assert_string_equal(file_exposure(S_IFREG | 0602), "writable by others");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_a_regular_file),
        cmocka_unit_test(test_refuses_a_fifo_at_once),
        cmocka_unit_test(test_refuses_directories_and_missing_files),
        cmocka_unit_test(test_exposure),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
