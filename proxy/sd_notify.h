/* sd_notify: telling systemd (Type=notify) what the daemon is doing, without
 * libsystemd. The protocol is one datagram per message to the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for an abstract socket),
 * holding newline-separated assignments: READY=1 once serving,
 * RELOADING=1 and MONOTONIC_USEC= when a reload starts and READY=1 when it
 * ends, STOPPING=1 when the stop signal comes (with EXTEND_TIMEOUT_USEC=,
 * so that systemd waits for drain_delay and drain_timeout), STATUS= for a
 * person running "systemctl status". Without $NOTIFY_SOCKET nothing is sent. */
#ifndef TLSTERM_SD_NOTIFY_H
#define TLSTERM_SD_NOTIFY_H

struct sd_notifier;

/* sd_notify_open returns a notifier for $NOTIFY_SOCKET, owned by the caller
 * and released with sd_notify_close, or NULL when the variable is unset or
 * unusable (then logged). It opens the socket now, so that messages can be
 * sent after the user switch and without new descriptors. */
struct sd_notifier *sd_notify_open(void);

/* sd_notify_send sends one message made from |fmt| like printf (e.g.
 * "READY=1\nSTATUS=serving"). With a NULL |notifier| it does nothing. A
 * failure is logged once (systemd gone, or the message too long) and
 * otherwise ignored: the daemon serves on regardless. */
void sd_notify_send(struct sd_notifier *notifier, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* sd_notify_reloading sends RELOADING=1 with the MONOTONIC_USEC= of now,
 * which systemd (253 and later) uses to tell this reload from an earlier
 * one, and STATUS= |status|. */
void sd_notify_reloading(struct sd_notifier *notifier, const char *status);

/* sd_notify_close closes the socket and frees |notifier|; NULL is
 * accepted. */
void sd_notify_close(struct sd_notifier *notifier);

#endif
