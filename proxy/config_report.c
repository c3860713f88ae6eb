/* config_report: the top-level "report" mapping (the TLS failure report)
 * and the top-level "instance", the name this process signs its reports
 * and metrics with:
 *
 *   instance: edge1
 *   report: {interval: 1h, dir: /var/lib/tlsterm/reports, keep: 48,
 *            organization: "example.net"}
 *
 * Kept apart from config.c so that the report's keys live beside each other;
 * it uses the schema machinery of config_internal.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"

#define REPORT_KEEP_MAX 100000
#define REPORT_ORGANIZATION_MAX 256

static void apply_interval(struct loader *ld, const struct field *field,
                           const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a duration");
    uint64_t ms;

    if (text == NULL)
        return;
    if (cfg_parse_duration_max(text, CFG_DAY_MS, &ms) != 0 || ms < 1000)
        cfg_fail_at(ld, value,
                    "invalid report interval '%s'; expected a duration from 1s to 24h, "
                    "such as \"1h\" or \"15m\"",
                    text);
    else
        *(uint32_t *)out = (uint32_t)ms;
}

/* apply_dir requires an existing directory the daemon can write to now:
 * finding out at the end of the first window would lose that window. One
 * that others can write to only warns: anyone could add or replace reports
 * there, but a shared spool may be deliberate. */
static void apply_dir(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out)
{
    struct cfg_report *report = out;
    const char *path = cfg_expect_text(ld, field->key, value, "a directory path");
    struct stat st;
    char relative[4200];

    if (path == NULL)
        return;
    if (path[0] == '\0' || stat(path, &st) != 0) {
        cfg_fail_at(ld, value, "report dir '%s'%s does not exist (%s); create it first", path,
                    path[0] == '\0' ? "" : cfg_relative_note(path, relative, sizeof(relative)),
                    path[0] == '\0' ? "empty path" : strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        cfg_fail_at(ld, value, "report dir '%s' is not a directory", path);
        return;
    }
    if (access(path, W_OK | X_OK) != 0) {
        cfg_fail_at(ld, value, "report dir '%s' is not writable (%s); fix its permissions",
                    path, strerror(errno));
        return;
    }
    free(report->dir);
    report->dir = cfg_dup_string(ld, value, path);
    report->dir_pos = cfg_pos_of(ld, value);
    if (st.st_mode & S_IWOTH)
        cfg_warn_permissions(&report->dir_pos, path, st.st_mode,
                             "report dir '%s' is writable by others, who could add or replace "
                             "report files; make it 0755 or 0750 (chmod o-w)",
                             path);
}

static void apply_keep(struct loader *ld, const struct field *field, const struct ynode *value,
                       void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "an integer");

    /* How many report files to keep. */
    if (text != NULL)
        cfg_parse_uint(ld, field->key, value, text, 1, REPORT_KEEP_MAX, out);
}

static void apply_organization(struct loader *ld, const struct field *field,
                               const struct ynode *value, void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a string");
    char **organization = out;

    if (text == NULL)
        return;
    if (text[0] == '\0' || strlen(text) > REPORT_ORGANIZATION_MAX) {
        cfg_fail_at(ld, value, "invalid report organization; expected 1 to %d characters",
                    REPORT_ORGANIZATION_MAX);
        return;
    }
    free(*organization);
    *organization = cfg_dup_string(ld, value, text);
}

static const struct field report_fields[] = {
    {"interval", false, apply_interval, offsetof(struct cfg_report, interval_ms), NULL},
    {"dir", false, apply_dir, 0, NULL},
    {"keep", false, apply_keep, offsetof(struct cfg_report, keep), NULL},
    {"organization", false, apply_organization, offsetof(struct cfg_report, organization),
     NULL},
};
static const struct schema report_schema = {"report", "in report", report_fields,
                                            sizeof(report_fields) / sizeof(report_fields[0])};

void cfg_apply_report(struct loader *ld, const struct field *field, const struct ynode *value,
                      void *out)
{
    if (cfg_expect(ld, field->key, value, YNODE_MAPPING, "a mapping"))
        cfg_apply_mapping(ld, &report_schema, value, out);
}

void cfg_apply_instance(struct loader *ld, const struct field *field, const struct ynode *value,
                        void *out)
{
    const char *text = cfg_expect_text(ld, field->key, value, "a name");
    char **instance = out;

    if (text == NULL)
        return;
    size_t len = strlen(text);
    if (len == 0 || len > CFG_INSTANCE_MAX || strspn(text, CFG_INSTANCE_CHARS) != len) {
        char shown[96];
        log_escape(shown, sizeof(shown), text, len, LOG_ESCAPE_TERMINAL, NULL);
        cfg_fail_at(ld, value,
                    "invalid instance '%s'; expected 1 to %d letters, digits, '_', '.' or '-' "
                    "(it names report files and labels metrics), such as \"edge1\" or "
                    "\"${HOSTNAME}\"",
                    shown, CFG_INSTANCE_MAX);
        return;
    }
    free(*instance);
    *instance = cfg_dup_string(ld, value, text);
}

/* default_instance returns the host name made to fit CFG_INSTANCE_CHARS
 * (another byte becomes '_', cut to CFG_INSTANCE_MAX), "localhost" when
 * there is none; NULL when out of memory. */
static char *default_instance(void)
{
    char host[256] = "";

    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    host[CFG_INSTANCE_MAX] = '\0';
    for (char *p = host; *p != '\0'; p++)
        if (strchr(CFG_INSTANCE_CHARS, *p) == NULL)
            *p = '_';
    return strdup(host);
}

void cfg_report_defaults(struct cfg_report *report)
{
    report->interval_ms = 60 * 60 * 1000;
    report->keep = 48;
    report->instance = default_instance();
}

void cfg_report_free(struct cfg_report *report)
{
    free(report->dir);
    free(report->organization);
    free(report->instance);
}
