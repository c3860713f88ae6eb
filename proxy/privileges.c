/* privileges: user switch, CAP_NET_ADMIN, and file access as the user.
 * See privileges.h. */
#include "privileges.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

bool privileges_have_net_admin(void)
{
    cap_t caps = cap_get_proc();
    cap_flag_value_t value = CAP_CLEAR;

    if (caps == NULL)
        return false;
    if (cap_get_flag(caps, CAP_NET_ADMIN, CAP_EFFECTIVE, &value) != 0)
        value = CAP_CLEAR;
    cap_free(caps);
    return value == CAP_SET;
}

/* keep_only_net_admin makes CAP_NET_ADMIN the only capability left,
 * permitted and effective. It returns 0, or -1 with errno set. */
static int keep_only_net_admin(void)
{
    const cap_value_t net_admin[] = {CAP_NET_ADMIN};
    cap_t caps = cap_init(); /* every set empty */
    int result = -1;

    if (caps != NULL && cap_set_flag(caps, CAP_PERMITTED, 1, net_admin, CAP_SET) == 0 &&
        cap_set_flag(caps, CAP_EFFECTIVE, 1, net_admin, CAP_SET) == 0)
        result = cap_set_proc(caps);
    int saved = errno;
    cap_free(caps);
    errno = saved;
    return result;
}

int privileges_drop(const char *user, bool keep_net_admin)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        log_msg(LOG_ERROR, "privileges", "user '%s' does not exist", user);
        return -1;
    }
    /* With PR_SET_KEEPCAPS the permitted set survives setuid (the
     * effective one is emptied); keep_only_net_admin then trims it. */
    if (keep_net_admin && prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0) {
        log_msg(LOG_ERROR, "privileges", "cannot keep CAP_NET_ADMIN across the switch: %s",
                strerror(errno));
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        log_msg(LOG_ERROR, "privileges", "cannot switch to user '%s': %s", user,
                strerror(errno));
        return -1;
    }
    if (keep_net_admin) {
        int failed = keep_only_net_admin();
        int saved = errno;
        prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
        if (failed != 0) {
            log_msg(LOG_ERROR, "privileges",
                    "cannot keep CAP_NET_ADMIN (backend.source: client) as user '%s': %s", user,
                    strerror(saved));
            return -1;
        }
    }
    log_msg(LOG_INFO, "privileges", "running as user '%s' (uid %u)%s", user,
            (unsigned)pw->pw_uid,
            keep_net_admin ? ", keeping CAP_NET_ADMIN for backend.source: client" : "");
    return 0;
}

int privileges_forbid_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L);
}

/* ---- file access as the user ------------------------------------------------- */

/* struct access_need is one thing the user must be able to do. */
struct access_need {
    const char *path;
    const struct cfg_pos *pos;
    bool write_dir; /* write into a directory; otherwise read a file */
};

struct access_needs {
    struct access_need *items;
    size_t num;
    bool out_of_memory;
};

/* struct access_failure is what the child reports through the pipe; index
 * SWITCH_FAILED means the switch to the user itself failed. */
struct access_failure {
    uint32_t index;
    int32_t error;
};
#define SWITCH_FAILED UINT32_MAX

static void add_need(struct access_needs *needs, const char *path, const struct cfg_pos *pos,
                     bool write_dir)
{
    struct access_need *grown = realloc(needs->items, (needs->num + 1) * sizeof(*grown));
    if (grown == NULL) {
        needs->out_of_memory = true;
        return;
    }
    needs->items = grown;
    needs->items[needs->num++] = (struct access_need){path, pos, write_dir};
}

static void add_read_need(const char *path, const struct cfg_pos *pos, void *arg)
{
    add_need(arg, path, pos, false);
}

/* try_access is what the child does for one need: open the file to read it
 * (non-blocking, in case it is a FIFO), or ask for write and search
 * permission on the directory. It returns 0 or an errno value. */
static int try_access(const struct access_need *need)
{
    if (need->write_dir)
        return access(need->path, W_OK | X_OK) == 0 ? 0 : errno;
    int fd = open(need->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

/* check_as_user runs in the forked child: only async-signal-safe calls
 * (the parent may have threads), hence the passwd entry looked up before
 * the fork. It reports each failure through |out| and exits. */
static void __attribute__((noreturn))
check_as_user(const struct passwd *pw, const gid_t *groups, int num_groups,
              const struct access_needs *needs, int out)
{
    struct access_failure failure;

    if (getuid() != pw->pw_uid &&
        (setgroups((size_t)num_groups, groups) != 0 || setgid(pw->pw_gid) != 0 ||
         setuid(pw->pw_uid) != 0)) {
        failure = (struct access_failure){SWITCH_FAILED, errno};
        (void)!write(out, &failure, sizeof(failure));
        _exit(1);
    }
    for (size_t i = 0; i < needs->num; i++) {
        int error = try_access(&needs->items[i]);
        if (error != 0) {
            failure = (struct access_failure){(uint32_t)i, error};
            if (write(out, &failure, sizeof(failure)) != sizeof(failure))
                _exit(1);
        }
    }
    _exit(0);
}

static void describe_failure(const struct access_need *need, int error, const char *user,
                             const char *group, bool is_config, FILE *errors)
{
    if (need->write_dir)
        cfg_error(errors, need->pos,
                  "user '%s' cannot write to report dir '%s' (%s), as each report write "
                  "will need: make it owned by '%s' (chown %s '%s'), or with systemd use "
                  "StateDirectory= or LogsDirectory= and name that directory here",
                  user, need->path, strerror(error), user, user, need->path);
    else if (strcmp(group, user) != 0)
        /* A primary group that is not the user's own (nobody's nogroup) is
         * shared: a key readable by it is readable by every other member. */
        cfg_error(errors, need->pos,
                  "user '%s' cannot read %s'%s' (%s), as every reload will need: run as a "
                  "user with a group of its own rather than '%s', which other users share "
                  "(useradd --system --user-group tlsterm, user: tlsterm, then chgrp tlsterm "
                  "'%s' && chmod g+r '%s', and let the group search its directories), or with "
                  "systemd pass it with LoadCredential= and name ${CREDENTIALS_DIRECTORY}/NAME "
                  "here",
                  user, is_config ? "the configuration file " : "", need->path, strerror(error),
                  group, need->path, need->path);
    else
        cfg_error(errors, need->pos,
                  "user '%s' cannot read %s'%s' (%s), as every reload will need: make it "
                  "readable by group '%s' (chgrp %s '%s' && chmod g+r '%s', and let the group "
                  "search its directories), or with systemd pass it with LoadCredential= and "
                  "name ${CREDENTIALS_DIRECTORY}/NAME here",
                  user, is_config ? "the configuration file " : "", need->path, strerror(error),
                  group, group, need->path, need->path);
}

int privileges_check_files(const struct config *config, FILE *errors)
{
    struct access_needs needs = {0};
    const struct cfg_pos config_pos = {config->file, 1, 1};
    gid_t groups[256];
    int num_groups = (int)(sizeof(groups) / sizeof(groups[0]));
    int pipe_fds[2] = {-1, -1};
    int result = 0;
    bool checked = false;
    char *group = NULL;
    pid_t child;

    struct passwd *pw = getpwnam(config->user);
    if (pw == NULL)
        return 0; /* config_load said so already */
    const char *user = config->user;
    struct group *gr = getgrgid(pw->pw_gid);
    group = strdup(gr != NULL ? gr->gr_name : user);
    if (group == NULL || getgrouplist(pw->pw_name, pw->pw_gid, groups, &num_groups) < 0)
        goto done;

    add_need(&needs, config->file, &config_pos, false);
    config_for_each_file_at(config, add_read_need, &needs);
    if (config->report.dir != NULL)
        add_need(&needs, config->report.dir, &config->report.dir_pos, true);
    if (needs.out_of_memory || pipe2(pipe_fds, O_CLOEXEC) != 0)
        goto done;
    fflush(NULL); /* nothing buffered is written twice */
    child = fork();
    if (child < 0)
        goto done;
    if (child == 0) {
        close(pipe_fds[0]);
        check_as_user(pw, groups, num_groups, &needs, pipe_fds[1]);
    }
    close(pipe_fds[1]);
    pipe_fds[1] = -1;
    checked = true;

    struct access_failure failure;
    ssize_t n;
    while ((n = read(pipe_fds[0], &failure, sizeof(failure))) == sizeof(failure) ||
           (n < 0 && errno == EINTR)) {
        if (n < 0)
            continue;
        if (failure.index == SWITCH_FAILED) {
            log_msg(LOG_WARN, "privileges",
                    "cannot check file access as user '%s' (%s): start tlsterm as root", user,
                    strerror(failure.error));
            break;
        }
        if (failure.index < needs.num) {
            describe_failure(&needs.items[failure.index], failure.error, user, group,
                             failure.index == 0, errors);
            result = -1;
        }
    }
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;

done:
    if (!checked)
        log_msg(LOG_WARN, "privileges", "cannot check file access as user '%s': %s", user,
                strerror(errno));
    for (size_t i = 0; i < 2; i++)
        if (pipe_fds[i] >= 0)
            close(pipe_fds[i]);
    free(needs.items);
    free(group);
    return result;
}
