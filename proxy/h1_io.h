/* h1_io: the client side the two HTTP/1.1 modes share (mode_h1 and
 * mode_redirect): the client's bytes not yet parsed, held only while there
 * are some, and the answer bytes not yet written, sent one TLS record (or,
 * without TLS, one 16 KiB write) at a time through the transport.
 *
 * Ownership. An h1_io is embedded in its mode's state, which owns it;
 * h1_io_cleanup frees its buffers. */
#ifndef TLSTERM_H1_IO_H
#define TLSTERM_H1_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls_io.h"

struct conn;
struct evbuffer;

/* One read from the client: the most a next request may wait unparsed. */
#define H1_IO_READ_LEN 16384

struct h1_io {
    uint8_t *in;               /* unparsed client bytes; NULL while none */
    uint32_t in_start, in_end; /* pending bytes are in[in_start, in_end) */
    struct evbuffer *out;      /* answer bytes not yet written */
    /* An append to |out| failed (out of memory): what it holds is not a
     * whole answer, so no more of it is written (bytes of earlier turns
     * may have gone out), and the next h1_io_write fails the connection. */
    bool out_failed;
    uint64_t last_activity_ms; /* the client's last byte either way */
    bool eof;                  /* the client ended its stream */
};

/* enum h1_io_result is what a read or write did. */
enum h1_io_result {
    H1_IO_IDLE,   /* nothing moved: it waits for the socket, or had nothing to do */
    H1_IO_MOVED,  /* bytes moved (a read: or the client's EOF arrived) */
    H1_IO_FAILED, /* the client is gone, or out of memory: see the failure */
};

/* h1_io_init prepares |io|; 0, or -1 when out of memory (h1_io_cleanup
 * is allowed either way). */
int h1_io_init(struct h1_io *io);

/* h1_io_cleanup frees what |io| holds. */
void h1_io_cleanup(struct h1_io *io);

static inline uint32_t h1_io_pending(const struct h1_io *io)
{
    return io->in_end - io->in_start;
}

/* h1_io_drop frees the unparsed bytes; h1_io_consume marks |n| of them
 * parsed, freeing the buffer once it is empty. */
void h1_io_drop(struct h1_io *io);
void h1_io_consume(struct h1_io *io, size_t n);

/* h1_io_read reads what the client sent, after the bytes still pending (the
 * caller decides whether it may read at all). */
enum h1_io_result h1_io_read(struct conn *c, struct h1_io *io, struct tls_io_failure *failure);

/* h1_io_add, h1_io_printf and h1_io_add_buffer append to |io->out|; a
 * failure is remembered in |out_failed|, so a head is written with no
 * check after each piece. */
void h1_io_add(struct h1_io *io, const void *data, size_t len);
__attribute__((format(printf, 2, 3))) void h1_io_printf(struct h1_io *io, const char *fmt, ...);
void h1_io_add_buffer(struct h1_io *io, struct evbuffer *src);

/* h1_io_write writes up to one record of |io->out| (none after a failed
 * append: H1_IO_FAILED, out of memory). */
enum h1_io_result h1_io_write(struct conn *c, struct h1_io *io, struct tls_io_failure *failure);

#endif
