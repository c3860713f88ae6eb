/* clock: the one monotonic clock every timeout, duration and rate limit in
 * tlsterm is measured with. */
#ifndef TLSTERM_CLOCK_H
#define TLSTERM_CLOCK_H

#include <stdint.h>
#include <time.h>

/* clock_now_us returns monotonic time in microseconds (CLOCK_MONOTONIC, a
 * vDSO call: no syscall). */
static inline uint64_t clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* clock_now_ms returns monotonic time in milliseconds. */
static inline uint64_t clock_now_ms(void) { return clock_now_us() / 1000; }

#endif
