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
    return ratelimit_bucket_take(&limiter->buckets[key], limiter->rate, limiter->burst, now_ms);
}

bool ratelimit_bucket_take(struct ratelimit_bucket *bucket, uint32_t rate, uint32_t burst,
                           uint64_t now_ms)
{
    uint64_t full = (uint64_t)burst * 1000;

    /* rate tokens per second is rate thousandths of a token per ms. */
    if (now_ms > bucket->last_ms) {
        bucket->tokens_milli += (now_ms - bucket->last_ms) * rate;
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
