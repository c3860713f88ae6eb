/* h1_io: see h1_io.h. */
#include "h1_io.h"

#include <stdarg.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "clock.h"
#include "conn.h"
#include "metrics.h"

int h1_io_init(struct h1_io *io)
{
    io->out = evbuffer_new();
    return io->out != NULL ? 0 : -1;
}

void h1_io_cleanup(struct h1_io *io)
{
    h1_io_drop(io);
    if (io->out != NULL)
        evbuffer_free(io->out);
    io->out = NULL;
}

void h1_io_drop(struct h1_io *io)
{
    free(io->in);
    io->in = NULL;
    io->in_start = io->in_end = 0;
}

void h1_io_consume(struct h1_io *io, size_t n)
{
    io->in_start += (uint32_t)n;
    if (io->in_start == io->in_end)
        h1_io_drop(io);
}

static enum h1_io_result out_of_memory(struct tls_io_failure *failure)
{
    *failure = (struct tls_io_failure){.reason = END_OUT_OF_MEMORY, .detail = "OUT_OF_MEMORY"};
    return H1_IO_FAILED;
}

enum h1_io_result h1_io_read(struct conn *c, struct h1_io *io, struct tls_io_failure *failure)
{
    size_t n = 0;

    if (io->eof || c->client.read_wait != TRANSPORT_WAIT_NONE ||
        transport_wait_readable(&c->client))
        return H1_IO_IDLE;
    /* The read lands after what is still pending: a 0-RTT handshake needs
     * reading whatever the request stands at (mode_h1), and early data is
     * bounded by the session's max_early_data. */
    uint32_t have = io->in != NULL ? io->in_end : 0;
    uint8_t *grown = realloc(io->in, (size_t)have + H1_IO_READ_LEN);
    if (grown == NULL)
        return out_of_memory(failure);
    if (io->in == NULL)
        io->in_start = io->in_end = 0;
    io->in = grown;
    switch (transport_read(&c->client, io->in + io->in_end, H1_IO_READ_LEN, &n, failure)) {
    case TLS_IO_OK:
        io->in_end += (uint32_t)n;
        c->bytes_in += n;
        metrics_bytes_client_to_backend(c->listener->metrics, n);
        io->last_activity_ms = clock_now_ms();
        return H1_IO_MOVED;
    case TLS_IO_WANT_READ:
    case TLS_IO_WANT_WRITE:
        break;
    case TLS_IO_EOF:
        io->eof = true;
        if (h1_io_pending(io) == 0)
            h1_io_drop(io);
        return H1_IO_MOVED;
    case TLS_IO_ERROR:
        h1_io_drop(io);
        return H1_IO_FAILED;
    }
    if (h1_io_pending(io) == 0)
        h1_io_drop(io);
    return H1_IO_IDLE;
}

void h1_io_add(struct h1_io *io, const void *data, size_t len)
{
    if (evbuffer_add(io->out, data, len) != 0)
        io->out_failed = true;
}

void h1_io_printf(struct h1_io *io, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (evbuffer_add_vprintf(io->out, fmt, ap) < 0)
        io->out_failed = true;
    va_end(ap);
}

void h1_io_add_buffer(struct h1_io *io, struct evbuffer *src)
{
    if (evbuffer_add_buffer(io->out, src) != 0)
        io->out_failed = true;
}

enum h1_io_result h1_io_write(struct conn *c, struct h1_io *io, struct tls_io_failure *failure)
{
    size_t len = evbuffer_get_length(io->out), n = 0;

    if (io->out_failed)
        return out_of_memory(failure);
    if (len == 0 || c->client.write_wait != TRANSPORT_WAIT_NONE)
        return H1_IO_IDLE;
    if (len > H1_IO_READ_LEN)
        len = H1_IO_READ_LEN; /* one full TLS record */
    const uint8_t *data = evbuffer_pullup(io->out, (ssize_t)len);
    if (data == NULL)
        return out_of_memory(failure);
    switch (transport_write(&c->client, data, len, &n, failure)) {
    case TLS_IO_OK:
        evbuffer_drain(io->out, n);
        c->bytes_out += n;
        metrics_bytes_backend_to_client(c->listener->metrics, n);
        io->last_activity_ms = clock_now_ms();
        return H1_IO_MOVED;
    case TLS_IO_WANT_READ:
    case TLS_IO_WANT_WRITE:
        return H1_IO_IDLE;
    case TLS_IO_EOF:
    case TLS_IO_ERROR:
        break;
    }
    return H1_IO_FAILED;
}
