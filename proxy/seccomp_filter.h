/* seccomp_filter: the system calls tlsterm may make once it has started
 * ("security: {seccomp: true}"), enforced by the kernel.
 *
 * The filter is an allow-list built with libseccomp and installed once the
 * daemon's initialisation is over: sockets bound, the user switched, every
 * thread (log writer, health checks, resolver, workers, admin) started. It
 * is applied to all of them at once (SECCOMP_FILTER_FLAG_TSYNC, libseccomp's
 * SCMP_FLTATR_CTL_TSYNC), and a thread started later would inherit it. What
 * comes after start is covered: serving connections in every mode, the
 * admin endpoint, reloads (files, inotify, the resolver's getaddrinfo with
 * its /etc files and DNS sockets), report writes, logging, draining and
 * exiting. What only start needs is not: exec, fork, setuid and friends,
 * mount, ptrace (but in sanitizer builds, whose leak checker needs it at
 * exit), module and key management, and clone without CLONE_THREAD.
 *
 * A call outside the list kills the whole process (SCMP_ACT_KILL_PROCESS),
 * and the kernel writes an audit record naming it (type=1326 ... syscall=N
 * in dmesg or the audit log). "seccomp: log" allows the call and only
 * writes that record, for trying the filter on a new deployment. */
#ifndef TLSTERM_SECCOMP_FILTER_H
#define TLSTERM_SECCOMP_FILTER_H

#include <stdio.h>

#include "config.h"

/* seccomp_filter_install builds the allow-list and installs it on every
 * thread of the process, in |mode| (CFG_SECCOMP_OFF: nothing to do). It
 * logs what it did ("seccomp") and returns 0, or logs why not
 * ("seccomp_failed") and returns -1. Call it once, after the last thread
 * of the start has been created. */
int seccomp_filter_install(enum cfg_seccomp mode);

/* seccomp_filter_mode returns the mode of the filter in force: what
 * seccomp_filter_install installed, CFG_SECCOMP_OFF before or without it.
 * A filter cannot be removed or loosened, so a reload compares with this,
 * not with the configuration it replaces. Main thread only. */
enum cfg_seccomp seccomp_filter_mode(void);

/* seccomp_filter_describe writes the "security" line of --check for
 * |security| to |out|. */
void seccomp_filter_describe(const struct cfg_security *security, FILE *out);

#endif
