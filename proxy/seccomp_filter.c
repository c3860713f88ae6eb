/* seccomp_filter: the allow-list of system calls after start. See
 * seccomp_filter.h. */
#include "seccomp_filter.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <seccomp.h>

#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
#define TLSTERM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TLSTERM_SANITIZED 1
#endif
#endif

/* Allowed with any arguments. Names, not numbers: libseccomp resolves them
 * for the architecture, and one this architecture lacks (open, stat...
 * on arm64) is skipped. Grouped by what needs them. */
static const char *const allowed_calls[] = {
    /* memory: malloc, thread stacks, BoringSSL, libevent */
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "mremap",
    /* threads and their locks; clone itself is below, with its flag */
    "futex",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "sched_yield",
    "sched_getaffinity",
    "gettid",
    "getpid",
    "exit",
    "exit_group",
    "membarrier",
    /* signals: libevent's signal events, abort(), glibc's thread cancel */
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "rt_sigtimedwait",
    "tgkill",
    "restart_syscall",
    /* time (usually the vDSO, but not always) and sleeps */
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "nanosleep",
    "clock_nanosleep",
    /* event loops: epoll, and poll in the resolver and the admin thread */
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "eventfd2",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "pipe",
    "pipe2",
    /* descriptors and files: reloads read certificates, keys, OCSP, CA,
     * CRL and ticket key files; the resolver reads /etc; a report is
     * written to a temporary file, synced and renamed; old ones deleted */
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "close",
    "close_range",
    "lseek",
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "statfs",
    "fstatfs",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "open",
    "openat",
    "readlink",
    "readlinkat",
    "getdents",
    "getdents64",
    "access",
    "faccessat",
    "faccessat2",
    "getcwd",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "fsync",
    "fdatasync",
    "fchmod",
    "umask",
    "ftruncate",
    "fadvise64",
    /* reload_on_change */
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    /* sockets: clients, backends (IP_TRANSPARENT binds included), the
     * admin endpoint, DNS, health checks, the systemd notify socket */
    "socketpair",
    "bind",
    "listen",
    "connect",
    "accept",
    "accept4",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
    /* BoringSSL's entropy */
    "getrandom",
    /* identity and limits, read only: reload's capability check, the
     * descriptor budget (prlimit64 below, without a new limit) */
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getresuid",
    "getresgid",
    "capget",
    "getrlimit",
    "getrusage",
    "sysinfo",
    "uname",
};

#ifdef TLSTERM_SANITIZED
/* What AddressSanitizer and LeakSanitizer add: the leak check at exit
 * stops the world with a tracer task (clone without CLONE_THREAD, then
 * ptrace and waitpid); reports read /proc/self/maps and symbolize in
 * process (GCC's libbacktrace). Never in a release build. */
static const char *const sanitizer_calls[] = {
    "clone",          "ptrace",      "wait4",   "waitid",  "kill",      "prctl",
    "sched_getparam", "personality", "mincore", "getppid", "setrlimit", "prlimit64",
};
#endif

/* The socket families tlsterm opens after start: IPv4 and IPv6 (clients,
 * backends, DNS), unix (a unix admin socket, systemd's notify socket,
 * libevent's socketpairs, glibc's socket for interface ioctls). Netlink
 * only as NETLINK_ROUTE (add_rules): getaddrinfo reads the local addresses
 * with it to sort (and for AI_ADDRCONFIG). */
static const int allowed_families[] = {AF_INET, AF_INET6, AF_UNIX};

/* ioctl requests: FIONREAD (libevent sizes its reads), FIONBIO, TCGETS
 * (isatty, from stdio), and SIOCGIFINDEX and SIOCGIFNAME, which glibc's
 * if_nametoindex and if_indextoname use for a scoped IPv6 address
 * ("[fe80::1%lo]:8080") that a reload parses or a resolve returns. */
static const unsigned long allowed_ioctls[] = {FIONREAD, FIONBIO, TCGETS, SIOCGIFINDEX,
                                               SIOCGIFNAME};

/* add_rule adds |action| for |name| with |num_args| argument checks, and
 * counts it in |*num_rules|. A name unknown on this architecture is
 * skipped. It returns 0, or -1 after logging why. */
static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned *num_rules,
                    unsigned num_args, const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR)
        return 0;
    int rc = seccomp_rule_add_array(ctx, action, nr, num_args, args);
    if (rc != 0) {
        log_msg(LOG_ERROR, "seccomp_failed", "cannot add %s to the filter: %s", name,
                strerror(-rc));
        return -1;
    }
    (*num_rules)++;
    return 0;
}

/* add_rules adds every rule of the allow-list to |ctx|. */
static int add_rules(scmp_filter_ctx ctx, unsigned *num_rules)
{
    for (size_t i = 0; i < sizeof(allowed_calls) / sizeof(allowed_calls[0]); i++)
        if (add_rule(ctx, SCMP_ACT_ALLOW, allowed_calls[i], num_rules, 0, NULL) != 0)
            return -1;
    for (size_t i = 0; i < sizeof(allowed_families) / sizeof(allowed_families[0]); i++) {
        const struct scmp_arg_cmp family =
            SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)allowed_families[i], 0);
        if (add_rule(ctx, SCMP_ACT_ALLOW, "socket", num_rules, 1, &family) != 0)
            return -1;
    }
    const struct scmp_arg_cmp netlink_route[] = {
        SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_NETLINK, 0),
        SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)NETLINK_ROUTE, 0)};
    if (add_rule(ctx, SCMP_ACT_ALLOW, "socket", num_rules, 2, netlink_route) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(allowed_ioctls) / sizeof(allowed_ioctls[0]); i++) {
        const struct scmp_arg_cmp request = SCMP_A1(SCMP_CMP_EQ, allowed_ioctls[i], 0);
        if (add_rule(ctx, SCMP_ACT_ALLOW, "ioctl", num_rules, 1, &request) != 0)
            return -1;
    }
    /* getrlimit is prlimit64 without a new limit in glibc: reading only. */
    const struct scmp_arg_cmp no_new_limit = SCMP_A2(SCMP_CMP_EQ, 0, 0);
    if (add_rule(ctx, SCMP_ACT_ALLOW, "prlimit64", num_rules, 1, &no_new_limit) != 0)
        return -1;
    /* glibc tries clone3 first and falls back to clone on ENOSYS; clone3's
     * flags are in memory, out of a filter's reach, while clone's are an
     * argument: threads only. */
    if (add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", num_rules, 0, NULL) != 0)
        return -1;
#ifdef TLSTERM_SANITIZED
    for (size_t i = 0; i < sizeof(sanitizer_calls) / sizeof(sanitizer_calls[0]); i++)
        if (add_rule(ctx, SCMP_ACT_ALLOW, sanitizer_calls[i], num_rules, 0, NULL) != 0)
            return -1;
#else
    const struct scmp_arg_cmp thread = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
    if (add_rule(ctx, SCMP_ACT_ALLOW, "clone", num_rules, 1, &thread) != 0)
        return -1;
#endif
    return 0;
}

/* The filter in force, for seccomp_filter_mode: a fact of the process. */
static enum cfg_seccomp installed_mode = CFG_SECCOMP_OFF;

enum cfg_seccomp seccomp_filter_mode(void) { return installed_mode; }

static const char *mode_name(enum cfg_seccomp mode)
{
    switch (mode) {
    case CFG_SECCOMP_KILL:
        return "kill";
    case CFG_SECCOMP_LOG:
        return "log";
    case CFG_SECCOMP_OFF:
        break;
    }
    return "off";
}

#ifndef NDEBUG
/* selftest makes a call outside the list when TLSTERM_SECCOMP_SELFTEST is
 * set, so that a test can watch the kernel's answer. Debug builds only. */
static void selftest(void)
{
    if (getenv("TLSTERM_SECCOMP_SELFTEST") == NULL)
        return;
    /* Seen only where the call is let through ("log"): killed, the
     * process has no time to write it. */
    log_msg(LOG_WARN, "seccomp_selftest", "calling chroot(\"/\"), which the filter forbids");
    (void)chroot("/"); /* harmless if it were allowed: "/" is already the root */
}
#endif

int seccomp_filter_install(enum cfg_seccomp mode)
{
    unsigned num_rules = 0;
    scmp_filter_ctx ctx;
    int rc;

    if (mode == CFG_SECCOMP_OFF)
        return 0;
    ctx = seccomp_init(mode == CFG_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
    if (ctx == NULL) {
        log_msg(LOG_ERROR, "seccomp_failed", "out of memory for the filter");
        return -1;
    }
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0) {
        log_msg(LOG_ERROR, "seccomp_failed", "cannot ask for every thread: %s", strerror(-rc));
        goto fail;
    }
    if (add_rules(ctx, &num_rules) != 0)
        goto fail;
    if ((rc = seccomp_load(ctx)) != 0) {
        log_msg(LOG_ERROR, "seccomp_failed", "cannot install the filter: %s", strerror(-rc));
        goto fail;
    }
    seccomp_release(ctx);
    installed_mode = mode;

    struct log_line line;
    log_begin(&line, LOG_INFO, "seccomp");
    log_str(&line, "mode", mode_name(mode));
    log_int(&line, "rules", num_rules);
    log_end(&line);
#ifndef NDEBUG
    selftest();
#endif
    return 0;
fail:
    seccomp_release(ctx);
    return -1;
}

void seccomp_filter_describe(const struct cfg_security *security, FILE *out)
{
    switch (security->seccomp) {
    case CFG_SECCOMP_KILL:
        fprintf(out, "security: seccomp on (a system call outside the allow-list kills the "
                     "process; the kernel logs it)\n");
        break;
    case CFG_SECCOMP_LOG:
        fprintf(out, "security: seccomp log (a system call outside the allow-list is allowed "
                     "and logged by the kernel)\n");
        break;
    case CFG_SECCOMP_OFF:
        fprintf(out, "security: seccomp off\n");
        break;
    }
}
