/* config_fuzz: libFuzzer target for config_load, the YAML configuration
 * through the whole schema: yamltree (libyaml events, anchors, "${}"
 * environment expansion) and every section's checks. See fuzz/README.md.
 *
 * config_load reads a file, so each input is written to one in a private
 * temporary directory that also holds a dummy cert.pem and key.pem (a
 * config naming them gets past "no such file"). Host names are never
 * resolved: the known-addresses hook answers "not known", as on a reload.
 * A loaded config is described (what --check prints) and freed; errors go
 * to a memory stream, so their formatting runs too. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int unknown_addrs(const char *host, const char *port, enum cfg_resolve resolve,
                         struct net_addr **out_addrs, size_t *out_num)
{
    return -1;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *file = fopen(path, "w");
    if (file == NULL || fwrite(data, 1, len, file) != len || fclose(file) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    static char dir[256];

    snprintf(dir, sizeof(dir), "%s/config_fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL || chdir(dir) != 0)
        abort();
    write_file("cert.pem", "dummy certificate\n", 18);
    write_file("key.pem", "dummy key\n", 10);
    /* For "${}" references: set, empty, and with YAML syntax in it. */
    setenv("FUZZ_PORT", "8443", 1);
    setenv("FUZZ_EMPTY", "", 1);
    setenv("FUZZ_YAML", "[a, {b: c}]\n- x", 1);
    config_set_known_addrs(unknown_addrs);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = NULL;
    size_t text_len = 0;
    FILE *errors = open_memstream(&text, &text_len);
    struct config *config;

    if (errors == NULL)
        abort();
    write_file("t.yaml", data, size);
    config = config_load("t.yaml", errors);
    if (config != NULL) {
        /* As generation_describe: a redirect listener has no backend. */
        for (size_t i = 0; i < config->num_listeners; i++) {
            if (config->listeners[i].mode == CFG_MODE_REDIRECT)
                config_describe_redirect(&config->listeners[i], errors);
            else
                config_describe_listener(&config->listeners[i], errors);
        }
        config_describe_process(config, errors);
        config_free(config);
    }
    fclose(errors);
    free(text);
    return 0;
}
