/* config_fixture: what the configuration unit tests share. A group works
 * in a fresh temporary directory holding dummy certificate and key files
 * (cert.pem, key.pem); the file under test is always "t.yaml", and what
 * config_load reported is kept in config_fixture_errors. */
#ifndef TLSTERM_CONFIG_FIXTURE_H
#define TLSTERM_CONFIG_FIXTURE_H

#include "config.h"

/* The error lines of the last config_fixture_load; NULL before one. */
extern char *config_fixture_errors;

/* config_fixture_setup makes a directory named after |name| under $TMPDIR
 * (or /tmp), enters it and writes the dummy files; 0 or -1. */
int config_fixture_setup(const char *name);

/* config_fixture_teardown removes the dummy files and t.yaml, goes back and
 * removes the directory (empty by then: a group removes what it added);
 * 0 or -1. */
int config_fixture_teardown(void);

/* config_fixture_reset frees the kept error lines (a test's teardown). */
int config_fixture_reset(void **state);

/* config_fixture_write writes |text| to |path|, failing the test if it
 * cannot. */
void config_fixture_write(const char *path, const char *text);

/* config_fixture_load writes |yaml| to t.yaml and loads it. */
struct config *config_fixture_load(const char *yaml);

/* config_fixture_expect_errors checks that |yaml| fails to load with
 * exactly |expected|. */
void config_fixture_expect_errors(const char *yaml, const char *expected);

#endif
