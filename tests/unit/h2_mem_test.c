/* h2_mem_test: the nghttp2 allocator of mode_h2. The frame buffer (the
 * first block of NGHTTP2_FRAMEBUF_CHUNKLEN bytes) gets pages of its own and
 * is released only after output; a real session is created with it, so
 * that a change in what nghttp2 allocates first shows here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "h2_mem.h"

#define FRAMEBUF_LEN (9 + 1 + 16384)

static void test_framebuf_is_page_aligned_and_released(void **state)
{
    struct h2_mem m;
    h2_mem_init(&m);
    assert_false(h2_mem_releasable(&m));
    uint8_t *buf = m.mem.realloc(NULL, FRAMEBUF_LEN, m.mem.mem_user_data);
    assert_non_null(buf);
    assert_ptr_equal(buf, m.framebuf);
    assert_int_equal((uintptr_t)buf % 4096, 0);
    assert_false(h2_mem_releasable(&m)); /* nothing written yet */

    memset(buf, 'x', FRAMEBUF_LEN);
    h2_mem_note_output(&m);
    assert_true(h2_mem_releasable(&m));
    h2_mem_release(&m);
    assert_false(h2_mem_releasable(&m));
    /* Released pages read back as zeros and can be written again; the
     * bytes past the last whole page are left alone. */
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[16383], 0);
    assert_int_equal(buf[FRAMEBUF_LEN - 1], 'x');
    buf[0] = 'y';

    m.mem.free(buf, m.mem.mem_user_data);
    assert_null(m.framebuf);
    h2_mem_release(&m); /* nothing to release: no effect */
}

static void test_only_the_first_block_of_that_size_is_the_framebuf(void **state)
{
    struct h2_mem m;
    h2_mem_init(&m);
    void *first = m.mem.malloc(FRAMEBUF_LEN, m.mem.mem_user_data);
    void *second = m.mem.malloc(FRAMEBUF_LEN, m.mem.mem_user_data);
    void *other = m.mem.calloc(2, 100, m.mem.mem_user_data);
    assert_ptr_equal(m.framebuf, first);
    m.mem.free(second, m.mem.mem_user_data);
    m.mem.free(other, m.mem.mem_user_data);
    assert_ptr_equal(m.framebuf, first);

    /* Moved by realloc: an ordinary block from then on. */
    void *moved = m.mem.realloc(first, 2 * FRAMEBUF_LEN, m.mem.mem_user_data);
    assert_non_null(moved);
    assert_null(m.framebuf);
    h2_mem_note_output(&m);
    assert_false(h2_mem_releasable(&m));
    m.mem.free(moved, m.mem.mem_user_data);
}

static void test_a_session_allocates_its_framebuf_through_it(void **state)
{
    struct h2_mem m;
    nghttp2_session_callbacks *callbacks;
    nghttp2_session *session;
    const uint8_t *data;

    h2_mem_init(&m);
    assert_int_equal(nghttp2_session_callbacks_new(&callbacks), 0);
    assert_int_equal(nghttp2_session_server_new3(&session, callbacks, NULL, NULL, &m.mem), 0);
    nghttp2_session_callbacks_del(callbacks);
    assert_non_null(m.framebuf);

    /* The server's SETTINGS go out through the buffer; once sent, it may
     * be released and the session still works. */
    assert_int_equal(nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    ssize_t len = nghttp2_session_mem_send(session, &data);
    assert_true(len > 0);
    assert_true(data >= m.framebuf && data < m.framebuf + FRAMEBUF_LEN);
    h2_mem_note_output(&m);
    assert_int_equal(nghttp2_session_mem_send(session, &data), 0);
    h2_mem_release(&m);
    assert_int_equal(nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, NULL), 0);
    len = nghttp2_session_mem_send(session, &data);
    assert_int_equal(len, 9 + 8);
    assert_int_equal(data[3], NGHTTP2_PING);

    nghttp2_session_del(session);
    assert_null(m.framebuf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framebuf_is_page_aligned_and_released),
        cmocka_unit_test(test_only_the_first_block_of_that_size_is_the_framebuf),
        cmocka_unit_test(test_a_session_allocates_its_framebuf_through_it),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
