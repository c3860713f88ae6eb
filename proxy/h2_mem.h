/* h2_mem: the allocator of each nghttp2 session (mode_h2.c), which lets an
 * idle HTTP/2 connection give most of nghttp2's memory back.
 *
 * nghttp2 1.52 allocates about 25 KB per server session when it is created
 * and keeps it for the session's life (bench/README.md, "Idle h2 memory"),
 * and none of it can be sized by an option. The largest block is the
 * outbound frame buffer, NGHTTP2_FRAMEBUF_CHUNKLEN bytes (a 16 KiB frame and
 * its header), whose contents matter only while a frame is being written.
 * h2_mem gives that one block pages of its own, and h2_mem_release returns
 * those pages to the kernel (madvise MADV_DONTNEED: the addresses stay
 * valid and read back as zeros); the next frame faults them in again.
 * Every other allocation is the C library's. */
#ifndef TLSTERM_H2_MEM_H
#define TLSTERM_H2_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

struct h2_mem {
    nghttp2_mem mem;       /* for nghttp2_session_server_new3; points back here */
    uint8_t *framebuf;     /* the frame buffer, page-aligned; NULL before or when
                              nghttp2 moved it (then it is an ordinary block) */
    bool framebuf_written; /* written since it was last released */
};

/* h2_mem_init prepares |m|, which must stay at its address for the life of
 * the session that uses |m->mem|. */
void h2_mem_init(struct h2_mem *m);

/* h2_mem_note_output records that nghttp2 wrote a frame into its buffer. */
static inline void h2_mem_note_output(struct h2_mem *m) { m->framebuf_written = true; }

/* h2_mem_releasable says whether the frame buffer holds pages that
 * h2_mem_release would give back. */
static inline bool h2_mem_releasable(const struct h2_mem *m)
{
    return m->framebuf != NULL && m->framebuf_written;
}

/* h2_mem_release gives the frame buffer's pages back to the kernel. Only
 * when no frame is in it: nghttp2 has nothing to send and every frame
 * mem_send returned was written whole. */
void h2_mem_release(struct h2_mem *m);

#endif
