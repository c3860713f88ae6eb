/* privileges: user switch and CAP_NET_ADMIN. See privileges.h. */
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
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
