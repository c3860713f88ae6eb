/* ratelimit: token buckets that keep a flood of failed handshakes from
 * becoming a flood of log lines (log flooding is an attack vector: a cheap
 * scanner must not cost the proxy its disk or its event loop).
 *
 * One struct ratelimit per worker, so no locks: each key (a termination
 * reason) has a bucket of |burst| lines refilled at |rate| per second. What a
 * bucket refuses is counted, to be reported in a summary line. */
#ifndef TLSTERM_RATELIMIT_H
#define TLSTERM_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "reason.h"

struct ratelimit_bucket {
    uint64_t tokens_milli; /* thousandths of a line, for smooth refill */
    uint64_t last_ms;
    uint64_t suppressed; /* refused since the last summary */
};

struct ratelimit {
    uint32_t rate;  /* lines per second */
    uint32_t burst; /* lines at once */
    struct ratelimit_bucket buckets[END_REASON_COUNT];
};

/* ratelimit_bucket_take refills |bucket| at |rate| tokens per second, up
 * to |burst|, then takes one token at |now_ms| (monotonic): true, or false
 * when it is empty (the refusal is counted in |bucket|->suppressed). A
 * bucket starts full when zeroed with tokens_milli = burst * 1000. */
bool ratelimit_bucket_take(struct ratelimit_bucket *bucket, uint32_t rate, uint32_t burst,
                           uint64_t now_ms);

/* ratelimit_init sets |limiter| to |rate| lines per second with |burst| at
 * once, every bucket full. */
void ratelimit_init(struct ratelimit *limiter, uint32_t rate, uint32_t burst);

/* ratelimit_allow takes a token for |key| at time |now_ms| (monotonic) and
 * returns true, or counts the refusal and returns false. */
bool ratelimit_allow(struct ratelimit *limiter, enum end_reason key, uint64_t now_ms);

/* ratelimit_take_suppressed returns how many lines |key| refused since the
 * last call, and resets that count. */
uint64_t ratelimit_take_suppressed(struct ratelimit *limiter, enum end_reason key);

#endif
