/* tickets_fuzz: libFuzzer target for the session ticket key file reader
 * (tickets.c: lines, comments, base64 keys of 80 or 48 bytes), through
 * tickets_new as a configuration with session_tickets.key_file loads it,
 * then a reload (tickets_update), tickets_describe, tickets_install and a
 * rotation. See fuzz/README.md. Each input is written to a file in a
 * private temporary directory; errors go to a memory stream. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "config.h"
#include "tickets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[300];
static SSL_CTX *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    static char dir[256];

    snprintf(dir, sizeof(dir), "%s/tickets_fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(path, sizeof(path), "%s/ticket.keys", dir);
    ctx = SSL_CTX_new(TLS_method());
    return ctx == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg_session_tickets cfg = {
        .enabled = true,
        .rotate_ms = 3600 * 1000,
        .lifetime_ms = 12 * 3600 * 1000,
        .key_file = path,
        .key_file_pos = {"t.yaml", 3, 5},
    };
    char *text = NULL;
    size_t text_len = 0;
    FILE *errors = open_memstream(&text, &text_len);
    FILE *file = fopen(path, "w");

    assert(errors != NULL && file != NULL);
    /* 0600: no warning about a key file others can read. */
    assert(fchmod(fileno(file), 0600) == 0);
    assert(fwrite(data, 1, size, file) == size && fclose(file) == 0);
    struct tickets *tickets = tickets_new(&cfg, errors);
    if (tickets != NULL) {
        assert(tickets_update(tickets, &cfg, errors) == 0);
        tickets_describe(tickets, errors);
        assert(tickets_install(tickets, ctx, cfg.lifetime_ms) == 0);
        tickets_rotate(tickets);
        tickets_free(tickets);
    } else {
        fflush(errors);
        assert(text_len > 0); /* a refused file says why */
    }
    fclose(errors);
    free(text);
    return 0;
}
