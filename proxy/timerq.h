/* timerq: one worker's deadlines, in a binary min-heap driven by a single
 * libevent timer.
 *
 * A libevent timer per connection costs a 128-byte struct event each; an
 * entry here costs 16 bytes plus a heap slot. Connections set one deadline
 * at a time, which they mostly move later (idle timeouts): a deadline that
 * moves later is updated in the heap, and the libevent timer is re-armed only
 * when the earliest deadline changes.
 *
 * Ownership. A timerq is embedded in its worker; it owns its heap array and
 * its event, never the entries, which are embedded in their connections: a
 * connection cancels its entry before it is freed. */
#ifndef TLSTERM_TIMERQ_H
#define TLSTERM_TIMERQ_H

#include <stdint.h>

#include <event2/event.h>

struct timerq_entry;

/* timerq_fire_fn is called for an entry whose deadline has passed; the
 * entry is no longer queued and may be set again. */
typedef void (*timerq_fire_fn)(struct timerq_entry *entry);

struct timerq_entry {
    uint64_t at_ms; /* clock_now_ms() time */
    uint32_t slot;  /* 1 + its index in the heap; 0: not queued */
    /* Called instead of the queue's |fire| when set: HTTP exchanges and
     * pooled backend connections share the queue with the connections. */
    timerq_fire_fn fire;
};

struct timerq {
    struct timerq_entry **heap;
    uint32_t num, cap;
    uint64_t armed_at_ms; /* what |ev| is armed for; 0: not armed */
    struct event *ev;
    timerq_fire_fn fire;
};

/* timerq_init prepares |q| on |base|, calling |fire| for expired entries.
 * It returns 0, or -1 when out of memory; timerq_cleanup undoes either way. */
int timerq_init(struct timerq *q, struct event_base *base, timerq_fire_fn fire);

/* timerq_cleanup frees what |q| owns; its entries must be cancelled first. */
void timerq_cleanup(struct timerq *q);

/* timerq_set queues |entry| for |at_ms|, or moves it there if queued. It
 * returns 0, or -1 when out of memory (the entry is then not queued). */
int timerq_set(struct timerq *q, struct timerq_entry *entry, uint64_t at_ms);

/* timerq_cancel takes |entry| out of |q|, if it is queued. */
void timerq_cancel(struct timerq *q, struct timerq_entry *entry);

#endif
