/* watch: keeping a socket's libevent event armed for exactly what is
 * waited for, shared by both sides of a connection. */
#ifndef TLSTERM_WATCH_H
#define TLSTERM_WATCH_H

#include <event2/event.h>
#include <event2/event_struct.h>

/* watch_socket arms |ev| on |fd| for |events| (EV_READ and/or EV_WRITE, or
 * 0 to disarm it), persistent, calling |callback| with |arg|. |*armed| is
 * what |ev| is armed for now; the event loop is touched only when that
 * changes, which saves an epoll_ctl on most turns. */
static inline void watch_socket(struct event *ev, short *armed, struct event_base *base, int fd,
                                short events, event_callback_fn callback, void *arg)
{
    if (*armed == events)
        return;
    if (*armed)
        event_del(ev);
    *armed = events;
    if (events == 0)
        return;
    event_assign(ev, base, fd, events | EV_PERSIST, callback, arg);
    event_add(ev, NULL);
}

#endif
