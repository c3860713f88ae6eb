/* alloc_fail: see alloc_fail.h. Compiled only with TLSTERM_ALLOC_FAIL. */
#include "alloc_fail.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include "log.h"

enum alloc_source { SOURCE_TLSTERM, SOURCE_LIBEVENT, SOURCE_BORINGSSL, SOURCE_NONE };

static const char *const source_names[] = {
    [SOURCE_TLSTERM] = "tlsterm",
    [SOURCE_LIBEVENT] = "libevent",
    [SOURCE_BORINGSSL] = "boringssl",
    [SOURCE_NONE] = "none",
};

/* Set once by alloc_fail_init, before any thread starts. */
static bool enabled; /* TLSTERM_ALLOC_FAIL_AT was set */
static bool trace;   /* TLSTERM_ALLOC_FAIL_TRACE=1 */
/* TLSTERM_ALLOC_FAIL_STRIDE=DENSE:STEP: N grows by 1 up to DENSE, then by
 * STEP (a scenario of thousands of allocations is sampled past DENSE). */
static unsigned long dense_until = ULONG_MAX;
static unsigned long stride = 1;

/* The round: any thread allocates, the main thread starts the next. */
static atomic_bool armed;    /* between "started" and the stop signal */
static atomic_ulong fail_at; /* 0: count only */
static atomic_ulong counted;
static _Atomic int failed_source = SOURCE_NONE;
static struct event *next_round_ev; /* SIGUSR2, on the main loop */

/* The C library's functions, which --wrap names __real_*. */
void *__real_malloc(size_t size);
void *__real_calloc(size_t num, size_t size);
void *__real_realloc(void *ptr, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **out, size_t alignment, size_t size);
void *__real_aligned_alloc(size_t alignment, size_t size);
int __real_vasprintf(char **out, const char *format, va_list args)
    __attribute__((format(printf, 2, 0)));

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t num, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_posix_memalign(void **out, size_t alignment, size_t size);
void *__wrap_aligned_alloc(size_t alignment, size_t size);
int __wrap_vasprintf(char **out, const char *format, va_list args)
    __attribute__((format(printf, 2, 0)));

void *OPENSSL_memory_alloc(size_t size);
void OPENSSL_memory_free(void *ptr);
size_t OPENSSL_memory_get_size(void *ptr);

/* describe_frames writes the exported names the caller's stack passes
 * through ("?" for a function that has none, as tlsterm's own), innermost
 * first: enough to tell which library function's allocation failed. */
static const char *describe_frames(char *out, size_t out_len)
{
    void *frames[12];
    int num = backtrace(frames, 12);
    size_t len = 0;

    out[0] = '\0';
    for (int i = 2; i < num && len < out_len; i++) {
        Dl_info info;
        const char *name =
            dladdr(frames[i], &info) != 0 && info.dli_sname != NULL ? info.dli_sname : "?";
        int n = snprintf(out + len, out_len - len, "%s%s", len > 0 ? "," : "", name);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    return out;
}

/* should_fail counts one allocation through |source| and says whether it is
 * the one to fail. */
static bool should_fail(enum alloc_source source)
{
    if (!enabled || !atomic_load_explicit(&armed, memory_order_relaxed))
        return false;
    unsigned long n = atomic_fetch_add(&counted, 1) + 1;
    if (n != atomic_load(&fail_at))
        return false;
    atomic_store(&failed_source, source);
    /* The log allocates nothing: it may be called from any allocator. */
    struct log_line line;
    char frames[512];
    log_begin(&line, LOG_INFO, "alloc_fail_injected");
    log_int(&line, "at", (long long)n);
    log_str(&line, "source", source_names[source]);
    log_str(&line, "frames", describe_frames(frames, sizeof(frames)));
    log_end(&line);
    if (trace) {
        fprintf(stderr, "alloc_fail: allocation %lu (%s) fails here\n", n,
                source_names[source]);
#if defined(__SANITIZE_ADDRESS__)
        __sanitizer_print_stack_trace();
#endif
    }
    /* As the C library does, so that callers that read errno see why. */
    errno = ENOMEM;
    return true;
}

void *__wrap_malloc(size_t size)
{
    return should_fail(SOURCE_TLSTERM) ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t num, size_t size)
{
    return should_fail(SOURCE_TLSTERM) ? NULL : __real_calloc(num, size);
}

void *__wrap_realloc(void *ptr, size_t size)
{
    return should_fail(SOURCE_TLSTERM) ? NULL : __real_realloc(ptr, size);
}

char *__wrap_strdup(const char *s)
{
    return should_fail(SOURCE_TLSTERM) ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return should_fail(SOURCE_TLSTERM) ? NULL : __real_strndup(s, n);
}

int __wrap_posix_memalign(void **out, size_t alignment, size_t size)
{
    return should_fail(SOURCE_TLSTERM) ? ENOMEM : __real_posix_memalign(out, alignment, size);
}

void *__wrap_aligned_alloc(size_t alignment, size_t size)
{
    return should_fail(SOURCE_TLSTERM) ? NULL : __real_aligned_alloc(alignment, size);
}

int __wrap_vasprintf(char **out, const char *format, va_list args)
{
    if (should_fail(SOURCE_TLSTERM)) {
        *out = NULL;
        return -1;
    }
    return __real_vasprintf(out, format, args);
}

/* libevent's hooks. */

static void *event_malloc(size_t size)
{
    return should_fail(SOURCE_LIBEVENT) ? NULL : __real_malloc(size);
}

static void *event_realloc(void *ptr, size_t size)
{
    return should_fail(SOURCE_LIBEVENT) ? NULL : __real_realloc(ptr, size);
}

/* BoringSSL's hooks. Once they are defined OPENSSL_realloc asks for the
 * size of a block, so each one starts with its size; the prefix keeps the
 * alignment malloc gives. */
#define BORINGSSL_PREFIX_LEN 16

void *OPENSSL_memory_alloc(size_t size)
{
    if (should_fail(SOURCE_BORINGSSL) || size > SIZE_MAX - BORINGSSL_PREFIX_LEN)
        return NULL;
    uint8_t *block = __real_malloc(size + BORINGSSL_PREFIX_LEN);
    if (block == NULL)
        return NULL;
    memcpy(block, &size, sizeof(size));
    return block + BORINGSSL_PREFIX_LEN;
}

void OPENSSL_memory_free(void *ptr)
{
    if (ptr != NULL)
        free((uint8_t *)ptr - BORINGSSL_PREFIX_LEN);
}

size_t OPENSSL_memory_get_size(void *ptr)
{
    size_t size;
    memcpy(&size, (uint8_t *)ptr - BORINGSSL_PREFIX_LEN, sizeof(size));
    return size;
}

void alloc_fail_init(void)
{
    const char *at = getenv("TLSTERM_ALLOC_FAIL_AT");
    const char *trace_env = getenv("TLSTERM_ALLOC_FAIL_TRACE");
    const char *stride_env = getenv("TLSTERM_ALLOC_FAIL_STRIDE");

    event_set_mem_functions(event_malloc, event_realloc, free);
    if (at == NULL)
        return;
    enabled = true;
    atomic_store(&fail_at, strtoul(at, NULL, 10));
    trace = trace_env != NULL && strcmp(trace_env, "1") == 0;
    if (stride_env != NULL && sscanf(stride_env, "%lu:%lu", &dense_until, &stride) != 2) {
        dense_until = ULONG_MAX;
        stride = 1;
    }
}

void alloc_fail_arm(void) { atomic_store(&armed, enabled); }

/* end_round logs what the round that ends counted. */
static void end_round(void)
{
    struct log_line line;
    log_begin(&line, LOG_INFO, "alloc_fail_stats");
    log_int(&line, "count", (long long)atomic_load(&counted));
    log_int(&line, "fail_at", (long long)atomic_load(&fail_at));
    log_str(&line, "failed", source_names[atomic_load(&failed_source)]);
    log_end(&line);
}

/* on_next_round (SIGUSR2): the test's scenario has ended and left tlsterm
 * quiet; the next run of it fails the next allocation. */
static void on_next_round(evutil_socket_t signum, short what, void *arg)
{
    if (!atomic_load(&armed))
        return;
    end_round();
    atomic_store(&counted, 0);
    atomic_store(&failed_source, SOURCE_NONE);
    unsigned long next = atomic_load(&fail_at);
    next += next < dense_until ? 1 : stride;
    atomic_store(&fail_at, next);
    struct log_line line;
    log_begin(&line, LOG_INFO, "alloc_fail_round");
    log_int(&line, "fail_at", (long long)next);
    log_end(&line);
}

int alloc_fail_watch(struct event_base *base)
{
    if (!enabled)
        return 0;
    /* Not counted: the daemon does not serve yet. */
    next_round_ev = evsignal_new(base, SIGUSR2, on_next_round, NULL);
    if (next_round_ev == NULL || event_add(next_round_ev, NULL) != 0)
        return -1;
    return 0;
}

void alloc_fail_unwatch(void)
{
    if (next_round_ev != NULL)
        event_free(next_round_ev);
    next_round_ev = NULL;
}

void alloc_fail_disarm(void)
{
    if (!enabled || !atomic_exchange(&armed, false))
        return;
    end_round();
}
