/* clienthello_fuzz: libFuzzer target for clienthello_summarize, the parser
 * of the ClientHello bytes every client sends before anything is checked.
 * See fuzz/README.md. Beyond "no crash, no out-of-bounds read", it checks
 * what the header promises of a summary and builds its log fields, so the
 * naming and truncation code runs on every odd value the fuzzer finds. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clienthello.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct clienthello_summary summary;
    char ja4[CLIENTHELLO_JA4_LEN + 1], ja3[CLIENTHELLO_JA3_LEN + 1];
    struct log_line line;

    if (clienthello_summarize(data, size, &summary) != 0)
        return 0;

    clienthello_ja4(&summary, ja4);
    clienthello_ja3(&summary, ja3);
    assert(strlen(ja4) == CLIENTHELLO_JA4_LEN);
    assert(ja4[0] == 't' && ja4[10] == '_' && ja4[23] == '_');
    assert(strlen(ja3) == CLIENTHELLO_JA3_LEN);
    /* A body's fixed part is 2 + 32 + 1 + 2 + 2 + 1 + 1 bytes; each cipher
     * suite takes 2 more, each extension 4. */
    assert(size >= 41);
    assert((size_t)summary.num_ciphers * 2 + (size_t)summary.num_extensions * 4 <= size);
    assert(summary.num_alpn <= size);

    log_begin(&line, LOG_INFO, "fuzz");
    clienthello_log_fields(&line, &summary);
    assert(line.len <= sizeof(line.buf));
    return 0;
}
