/* h2_mem: see h2_mem.h. */
#include "h2_mem.h"

#include <stdlib.h>
#include <sys/mman.h>

/* NGHTTP2_FRAMEBUF_CHUNKLEN (lib/nghttp2_session.h, not public): frame
 * header, one byte of padding length and a 16 KiB payload. nghttp2 asks for
 * it with realloc(NULL, ...) in nghttp2_session_new, before anything else
 * of that size. */
#define FRAMEBUF_LEN (9 + 1 + 16384)
#define PAGE_LEN 4096
/* The pages that lie wholly inside the buffer: the last few bytes share
 * their page with whatever follows. */
#define FRAMEBUF_PAGES_LEN (FRAMEBUF_LEN / PAGE_LEN * PAGE_LEN)

static void *mem_malloc(size_t size, void *user)
{
    struct h2_mem *m = user;
    if (size == FRAMEBUF_LEN && m->framebuf == NULL) {
        void *p = NULL;
        if (posix_memalign(&p, PAGE_LEN, size) != 0)
            return NULL;
        m->framebuf = p;
        return p;
    }
    return malloc(size);
}

static void mem_free(void *ptr, void *user)
{
    struct h2_mem *m = user;
    if (ptr != NULL && ptr == m->framebuf)
        m->framebuf = NULL;
    free(ptr);
}

static void *mem_calloc(size_t num, size_t size, void *user)
{
    (void)user;
    return calloc(num, size);
}

static void *mem_realloc(void *ptr, size_t size, void *user)
{
    struct h2_mem *m = user;
    if (ptr == NULL)
        return mem_malloc(size, user);
    void *moved = realloc(ptr, size);
    /* A frame buffer grown for larger DATA frames is an ordinary block:
     * it is not released any more. */
    if (moved != NULL && ptr == m->framebuf)
        m->framebuf = NULL;
    return moved;
}

void h2_mem_init(struct h2_mem *m)
{
    m->mem = (nghttp2_mem){
        .mem_user_data = m,
        .malloc = mem_malloc,
        .free = mem_free,
        .calloc = mem_calloc,
        .realloc = mem_realloc,
    };
    m->framebuf = NULL;
    m->framebuf_written = false;
}

void h2_mem_release(struct h2_mem *m)
{
    if (!h2_mem_releasable(m))
        return;
    madvise(m->framebuf, FRAMEBUF_PAGES_LEN, MADV_DONTNEED);
    m->framebuf_written = false;
}
