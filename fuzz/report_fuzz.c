/* report_fuzz: libFuzzer target for the report file reader of "tlsterm
 * report [--json] FILE" (report_cli.c: a strict JSON parser, the check
 * against the report schema's fields and types, the escaped table). See
 * fuzz/README.md. The first input byte picks --json; the rest is written
 * to a file in a private temporary directory and read by report_cli_main,
 * its output and errors sent to /dev/null. */
#include <assert.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "report.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[300];
static int devnull = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    static char dir[256];

    snprintf(dir, sizeof(dir), "%s/report_fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/report.json", dir);
    devnull = open("/dev/null", O_WRONLY);
    return devnull < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[] = {"--json", path, NULL};
    FILE *file;

    if (size < 1)
        return 0;
    file = fopen(path, "w");
    assert(file != NULL);
    assert(fwrite(data + 1, 1, size - 1, file) == size - 1 && fclose(file) == 0);

    int saved_out = dup(1), saved_err = dup(2);
    dup2(devnull, 1);
    dup2(devnull, 2);
    int status = (data[0] & 1) ? report_cli_main(2, argv) : report_cli_main(1, argv + 1);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    assert(status == 0 || status == 1);
    return 0;
}
