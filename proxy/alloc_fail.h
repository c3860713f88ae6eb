/* alloc_fail: allocation-failure injection for tests (README, "Allocation-
 * failure testing"). Built only with -DTLSTERM_ALLOC_FAIL=ON, never in a
 * release; without it every function here is an empty inline.
 *
 * The build routes allocations through one counter:
 * - tlsterm's own calls (malloc, calloc, realloc, strdup, strndup,
 *   posix_memalign, aligned_alloc, vasprintf), redirected by the linker's
 *   --wrap on tlsterm's objects only; nghttp2 allocates through h2_mem.c,
 *   so its allocations are among them;
 * - libevent's, through event_set_mem_functions;
 * - BoringSSL's, through the weak OPENSSL_memory_alloc/_free/_get_size
 *   hooks its OPENSSL_malloc calls when the executable defines them.
 * libyaml has no allocator hook: its allocations are never counted.
 *
 * The environment says what to do:
 * - TLSTERM_ALLOC_FAIL_AT=N: count the allocations made from the moment the
 *   daemon serves (just before the "started" line) and make the Nth of them
 *   fail (only that one); N=0 only counts. Unset: nothing is counted,
 *   nothing fails.
 * - SIGUSR2 ends a round and starts the next, with N one higher and the
 *   count from 0: a test runs its scenario, waits until tlsterm is quiet,
 *   and repeats, so that one process tries N = 1, 2, 3, ... in turn
 *   (a process for each N costs a second of start-up and exit).
 * - TLSTERM_ALLOC_FAIL_STRIDE=DENSE:STEP: past N = DENSE, N grows by STEP,
 *   for scenarios of thousands of allocations (a reload).
 * - TLSTERM_ALLOC_FAIL_TRACE=1: print the stack of the failed allocation
 *   on stderr (ASan builds), to find the code that mishandled it.
 * The failure itself is logged ("alloc_fail_injected": at, source: which
 * allocator, frames: the exported functions on the stack, which name
 * BoringSSL's). At the end of each round (SIGUSR2, then the stop signal) an
 * "alloc_fail_stats" line gives the round's count, N, and the source of the
 * failed allocation ("none": none failed); "alloc_fail_round" then gives
 * the new N. */
#ifndef TLSTERM_ALLOC_FAIL_H
#define TLSTERM_ALLOC_FAIL_H

#include <event2/event.h>

#ifdef TLSTERM_ALLOC_FAIL

/* alloc_fail_init reads the environment and installs libevent's hooks.
 * First thing in main: before any libevent call. */
void alloc_fail_init(void);

/* alloc_fail_arm starts counting: the daemon is serving. */
void alloc_fail_arm(void);

/* alloc_fail_disarm stops counting and logs the last round's
 * alloc_fail_stats line (once; later calls do nothing). */
void alloc_fail_disarm(void);

/* alloc_fail_watch handles SIGUSR2 on |base| (the daemon's main loop) when
 * injection is on. It returns 0 or -1; alloc_fail_unwatch undoes it. */
int alloc_fail_watch(struct event_base *base);
void alloc_fail_unwatch(void);

#else

static inline void alloc_fail_init(void) {}
static inline void alloc_fail_arm(void) {}
static inline void alloc_fail_disarm(void) {}
static inline int alloc_fail_watch(struct event_base *base) { return 0; }
static inline void alloc_fail_unwatch(void) {}

#endif

#endif
