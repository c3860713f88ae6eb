/* ratelimit: per-reason token buckets. See ratelimit.h. */
#include "ratelimit.h"

void ratelimit_init(struct ratelimit *limiter, uint32_t rate, uint32_t burst)
{
    limiter->rate = rate;
    limiter->burst = burst;
    for (int i = 0; i < END_REASON_COUNT; i++)
        limiter->buckets[i] = (struct ratelimit_bucket){.tokens_milli = (uint64_t)burst * 1000};
}

bool ratelimit_allow(struct ratelimit *limiter, enum end_reason key, uint64_t now_ms)
{
    struct ratelimit_bucket *bucket = &limiter->buckets[key];
    uint64_t full = (uint64_t)limiter->burst * 1000;

    /* rate lines per second is rate thousandths of a line per ms. */
    if (now_ms > bucket->last_ms) {
        bucket->tokens_milli += (now_ms - bucket->last_ms) * limiter->rate;
        if (bucket->tokens_milli > full)
            bucket->tokens_milli = full;
    }
    bucket->last_ms = now_ms;
    if (bucket->tokens_milli >= 1000) {
        bucket->tokens_milli -= 1000;
        return true;
    }
    bucket->suppressed++;
    return false;
}

uint64_t ratelimit_take_suppressed(struct ratelimit *limiter, enum end_reason key)
{
    uint64_t suppressed = limiter->buckets[key].suppressed;
    limiter->buckets[key].suppressed = 0;
    return suppressed;
}
