/* timerq: deadlines in a min-heap. See timerq.h. */
#include "timerq.h"

#include <stdlib.h>

#include "clock.h"

static void on_timer(evutil_socket_t fd, short what, void *arg);

int timerq_init(struct timerq *q, struct event_base *base, timerq_fire_fn fire)
{
    q->heap = NULL;
    q->num = q->cap = 0;
    q->armed_at_ms = 0;
    q->fire = fire;
    q->ev = evtimer_new(base, on_timer, q);
    return q->ev != NULL ? 0 : -1;
}

void timerq_cleanup(struct timerq *q)
{
    if (q->ev != NULL)
        event_free(q->ev);
    q->ev = NULL;
    free(q->heap);
    q->heap = NULL;
    q->num = q->cap = 0;
}

static void place(struct timerq *q, uint32_t i, struct timerq_entry *e)
{
    q->heap[i] = e;
    e->slot = i + 1;
}

static void sift_up(struct timerq *q, uint32_t i)
{
    struct timerq_entry *e = q->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (q->heap[parent]->at_ms <= e->at_ms)
            break;
        place(q, i, q->heap[parent]);
        i = parent;
    }
    place(q, i, e);
}

static void sift_down(struct timerq *q, uint32_t i)
{
    struct timerq_entry *e = q->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= q->num)
            break;
        if (child + 1 < q->num && q->heap[child + 1]->at_ms < q->heap[child]->at_ms)
            child++;
        if (e->at_ms <= q->heap[child]->at_ms)
            break;
        place(q, i, q->heap[child]);
        i = child;
    }
    place(q, i, e);
}

/* arm makes the libevent timer fire at the earliest deadline. */
static void arm(struct timerq *q)
{
    if (q->num == 0) {
        if (q->armed_at_ms != 0)
            evtimer_del(q->ev);
        q->armed_at_ms = 0;
        return;
    }
    uint64_t at = q->heap[0]->at_ms;
    if (at == q->armed_at_ms)
        return;
    uint64_t now = clock_now_ms();
    uint64_t ms = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    q->armed_at_ms = at;
    evtimer_add(q->ev, &tv);
}

/* take removes the entry at heap index |i|. */
static void take(struct timerq *q, uint32_t i)
{
    struct timerq_entry *e = q->heap[i];
    e->slot = 0;
    q->num--;
    if (i == q->num)
        return;
    struct timerq_entry *last = q->heap[q->num];
    place(q, i, last);
    if (i > 0 && q->heap[(i - 1) / 2]->at_ms > last->at_ms)
        sift_up(q, i);
    else
        sift_down(q, i);
}

int timerq_set(struct timerq *q, struct timerq_entry *e, uint64_t at_ms)
{
    if (e->slot != 0) {
        uint64_t before = e->at_ms;
        e->at_ms = at_ms;
        if (at_ms < before)
            sift_up(q, e->slot - 1);
        else
            sift_down(q, e->slot - 1);
    } else {
        if (q->num == q->cap) {
            uint32_t cap = q->cap ? 2 * q->cap : 64;
            struct timerq_entry **heap = realloc(q->heap, cap * sizeof(*heap));
            if (heap == NULL)
                return -1;
            q->heap = heap;
            q->cap = cap;
        }
        e->at_ms = at_ms;
        q->heap[q->num++] = e;
        sift_up(q, q->num - 1);
    }
    arm(q);
    return 0;
}

void timerq_cancel(struct timerq *q, struct timerq_entry *e)
{
    if (e->slot == 0)
        return;
    take(q, e->slot - 1);
    arm(q);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct timerq *q = arg;
    uint64_t now = clock_now_ms();

    q->armed_at_ms = 0;
    /* A callback may set entries again, even for now: at most as many
     * entries fire as were queued, so that none can keep the loop here. */
    for (uint32_t budget = q->num; budget > 0 && q->num > 0 && q->heap[0]->at_ms <= now;
         budget--) {
        struct timerq_entry *e = q->heap[0];
        take(q, 0);
        (e->fire != NULL ? e->fire : q->fire)(e);
    }
    arm(q);
}
