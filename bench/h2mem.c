/* h2mem: what one nghttp2 server session holds in memory, set up with the
 * options and SETTINGS of tlsterm's mode_h2.c, at each step: created,
 * SETTINGS submitted and sent, one request received (h2load's SETTINGS and
 * a GET with :authority and user-agent indexed) and answered with a 100-byte
 * body, the client's SETTINGS ACK received (idle). A counting nghttp2_mem
 * prints the live bytes, the peak and the size of every live block.
 *
 *   gcc -O1 -o h2mem bench/h2mem.c -lnghttp2
 *   ./h2mem [MAX_DEFLATE_TABLE [HEADER_TABLE_SIZE]]
 *
 * MAX_DEFLATE_TABLE is nghttp2_option_set_max_deflate_dynamic_table_size
 * (tlsterm: 4096); HEADER_TABLE_SIZE, when given, is advertised in our
 * SETTINGS instead of ENABLE_PUSH. bench/README.md ("Idle h2 memory") has
 * what it showed for nghttp2 1.52. Not part of bench/run. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB 4096
static void *blocks[MAXB];
static size_t sizes[MAXB];
static size_t live, peak;

static void track(void *p, size_t n) {
    for (int i = 0; i < MAXB; i++) if (!blocks[i]) { blocks[i] = p; sizes[i] = n; live += n; if (live > peak) peak = live; return; }
}
static void untrack(void *p) {
    if (!p) return;
    for (int i = 0; i < MAXB; i++) if (blocks[i] == p) { live -= sizes[i]; blocks[i] = NULL; return; }
}
static void *m_malloc(size_t n, void *u) { void *p = malloc(n); track(p, n); return p; }
static void m_free(void *p, void *u) { untrack(p); free(p); }
static void *m_calloc(size_t a, size_t b, void *u) { void *p = calloc(a, b); track(p, a * b); return p; }
static void *m_realloc(void *p, size_t n, void *u) { untrack(p); void *q = realloc(p, n); track(q, n); return q; }

static void report(const char *step) {
    int num = 0;
    printf("%-40s live %6zu bytes, peak %6zu:", step, live, peak);
    for (int i = 0; i < MAXB; i++) if (blocks[i]) { num++; printf(" %zu", sizes[i]); }
    printf(" (%d blocks)\n", num);
}

static nghttp2_session *session;
static int32_t req_stream;
static ssize_t body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                    nghttp2_data_source *src, void *u) {
    memset(buf, 'x', 100); *flags |= NGHTTP2_DATA_FLAG_EOF; return 100;
}
static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *u) {
    if (f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) req_stream = f->hd.stream_id;
    return 0;
}
static void drain_send(void) { const uint8_t *d; while (nghttp2_session_mem_send(session, &d) > 0) ; }

int main(int argc, char **argv) {
    uint32_t table = argc > 1 ? (uint32_t)atoi(argv[1]) : 4096;
    nghttp2_mem mem = {NULL, m_malloc, m_free, m_calloc, m_realloc};
    nghttp2_session_callbacks *cb; nghttp2_option *opt;
    nghttp2_session_callbacks_new(&cb); nghttp2_option_new(&opt);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, table);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_continuations(opt, 8);
    report("before");
    nghttp2_session_server_new3(&session, cb, NULL, opt, &mem);
    nghttp2_session_callbacks_del(cb); nghttp2_option_del(opt);
    report("session_server_new3");
    nghttp2_settings_entry st[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 262144},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536 + 3200}, {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    if (argc > 2) st[3] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, (uint32_t)atoi(argv[2])};
    nghttp2_submit_settings(session, 0, st, 4);
    nghttp2_session_set_local_window_size(session, 0, 0, 1 << 20);
    report("settings submitted");
    drain_send();
    report("settings sent");
    /* The client: preface, SETTINGS (h2load's), HEADERS GET / on stream 1 with a few fields. */
    uint8_t in[512]; size_t n = 0;
    memcpy(in, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24); n = 24;
    uint8_t s[] = {0,0,12, 4,0, 0,0,0,0, 0,3,0,0,0,100, 0,4,0,0,0xff,0xff};
    memcpy(in + n, s, sizeof(s)); n += sizeof(s);
    uint8_t blk[64]; size_t bl = 0;
    blk[bl++] = 0x82; blk[bl++] = 0x87; blk[bl++] = 0x84;
    blk[bl++] = 0x41; blk[bl++] = 15; memcpy(blk + bl, "127.0.0.1:18443", 15); bl += 15; /* :authority, incremental indexing */
    blk[bl++] = 0x40 | 58; blk[bl++] = 11; memcpy(blk + bl, "h2load nghttp2", 11); bl += 11; /* user-agent */
    uint8_t h[9] = {0,0,(uint8_t)bl, 1, 5, 0,0,0,1};
    memcpy(in + n, h, 9); n += 9; memcpy(in + n, blk, bl); n += bl;
    nghttp2_session_mem_recv(session, in, n);
    report("request received");
    nghttp2_nv nva[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
        {(uint8_t *)"server", (uint8_t *)"nginx/1.22.1", 6, 12, 0},
        {(uint8_t *)"date", (uint8_t *)"Tue, 01 Dec 2026 20:30:00 GMT", 4, 29, 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/octet-stream", 12, 24, 0},
        {(uint8_t *)"content-length", (uint8_t *)"100", 14, 3, 0}};
    nghttp2_data_provider dp = {.read_callback = body};
    nghttp2_submit_response(session, req_stream, nva, 5, &dp);
    drain_send();
    report("response sent");
    uint8_t ack[9] = {0,0,0,4,1,0,0,0,0};
    nghttp2_session_mem_recv(session, ack, 9);
    drain_send();
    report("client SETTINGS ACK received: idle");
    nghttp2_session_del(session);
    report("deleted");
    return 0;
}
