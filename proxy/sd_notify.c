/* sd_notify: systemd's notify protocol. See sd_notify.h. */
#include "sd_notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Longer messages are a bug here: ours are a few short lines. */
#define MESSAGE_MAX 1024

struct sd_notifier {
    int fd;
    struct sockaddr_un addr;
    socklen_t addr_len;
    bool failure_logged;
};

struct sd_notifier *sd_notify_open(void)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sd_notifier *notifier;
    size_t name_len;

    if (name == NULL || name[0] == '\0')
        return NULL;
    name_len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || name_len >= sizeof(notifier->addr.sun_path)) {
        log_msg(LOG_WARN, "sd_notify",
                "NOTIFY_SOCKET is not an absolute path or @name of at "
                "most 107 bytes: systemd is not told when tlsterm is ready");
        return NULL;
    }
    notifier = calloc(1, sizeof(*notifier));
    if (notifier == NULL)
        return NULL;
    notifier->addr.sun_family = AF_UNIX;
    memcpy(notifier->addr.sun_path, name, name_len);
    /* An abstract name starts with a NUL and is exactly as long as given. */
    if (name[0] == '@')
        notifier->addr.sun_path[0] = '\0';
    notifier->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name_len);
    notifier->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notifier->fd < 0) {
        log_msg(LOG_WARN, "sd_notify", "cannot open a socket for NOTIFY_SOCKET: %s",
                strerror(errno));
        free(notifier);
        return NULL;
    }
    return notifier;
}

void sd_notify_send(struct sd_notifier *notifier, const char *fmt, ...)
{
    char message[MESSAGE_MAX];
    va_list args;
    int len;

    if (notifier == NULL)
        return;
    va_start(args, fmt);
    len = vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    if (len < 0 || (size_t)len >= sizeof(message)) {
        errno = EMSGSIZE;
    } else if (sendto(notifier->fd, message, (size_t)len, MSG_NOSIGNAL,
                      (const struct sockaddr *)&notifier->addr, notifier->addr_len) == len) {
        return;
    }
    if (!notifier->failure_logged) {
        notifier->failure_logged = true;
        log_msg(LOG_WARN, "sd_notify", "cannot notify systemd through NOTIFY_SOCKET: %s",
                strerror(errno));
    }
}

void sd_notify_reloading(struct sd_notifier *notifier, const char *status)
{
    struct timespec now;

    if (notifier == NULL)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    sd_notify_send(notifier, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s",
                   (unsigned long long)now.tv_sec * 1000000ull +
                       (unsigned long long)now.tv_nsec / 1000ull,
                   status);
}

void sd_notify_close(struct sd_notifier *notifier)
{
    if (notifier == NULL)
        return;
    close(notifier->fd);
    free(notifier);
}
