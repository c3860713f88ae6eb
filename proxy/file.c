/* file: non-blocking, regular-files-only reads. See file.h. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/mem.h>

/* type_name names what a non-regular, non-directory file is. */
static const char *type_name(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a file";
}

/* open_regular opens |path| and returns the descriptor with its status in
 * |*out_st|, or -1 after writing why into |problem|. O_NONBLOCK is the
 * point: without it, opening a FIFO waits for a writer. It changes nothing
 * for a regular file, whose reads never block, so the descriptor is read as
 * it is. */
static int open_regular(const char *path, struct stat *out_st, char *problem,
                        size_t problem_len)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

    if (fd < 0 || fstat(fd, out_st) != 0) {
        snprintf(problem, problem_len, "%s", strerror(errno));
        goto fail;
    }
    /* A directory keeps strerror's words, which operators know. */
    if (S_ISDIR(out_st->st_mode)) {
        snprintf(problem, problem_len, "%s", strerror(EISDIR));
        errno = EISDIR; /* callers tell "too large" (EFBIG) by errno */
        goto fail;
    }
    if (!S_ISREG(out_st->st_mode)) {
        snprintf(problem, problem_len, "not a regular file (%s)", type_name(out_st->st_mode));
        errno = EINVAL;
        goto fail;
    }
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

int file_check_regular(const char *path, char *problem, size_t problem_len)
{
    struct stat st;
    int fd = open_regular(path, &st, problem, problem_len);

    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int file_read_regular(const char *path, size_t max_len, struct file_contents *out,
                      char *problem, size_t problem_len)
{
    struct stat st;
    int fd = open_regular(path, &st, problem, problem_len);
    /* One byte more than allowed tells "exactly |max_len|" from "larger". */
    size_t limit = max_len + 1, cap;
    int saved_errno;

    *out = (struct file_contents){0};
    if (fd < 0)
        return -1;
    out->mode = st.st_mode;
    /* st_size only sizes the first buffer: the file may change while it is
     * read, and some (in /proc) say 0. One byte more sees the end at once. */
    cap = st.st_size >= 0 && (uint64_t)st.st_size < limit ? (size_t)st.st_size + 1 : limit;
    if (cap < 256 && limit > 256)
        cap = 256;
    out->data = malloc(cap + 1);
    if (out->data == NULL) {
        snprintf(problem, problem_len, "%s", strerror(ENOMEM));
        goto fail;
    }
    for (;;) {
        if (out->len == cap) {
            if (cap == limit)
                break;
            size_t grown_cap = cap > limit / 2 ? limit : cap * 2;
            /* Not realloc: the old block may hold key material, and is
             * wiped before it is freed. */
            uint8_t *grown = malloc(grown_cap + 1);
            if (grown == NULL) {
                snprintf(problem, problem_len, "%s", strerror(ENOMEM));
                goto fail;
            }
            memcpy(grown, out->data, out->len);
            OPENSSL_cleanse(out->data, cap + 1);
            free(out->data);
            out->data = grown;
            cap = grown_cap;
        }
        ssize_t got = read(fd, out->data + out->len, cap - out->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(problem, problem_len, "%s", strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        out->len += (size_t)got;
    }
    if (out->len > max_len) {
        snprintf(problem, problem_len, "larger than %zu bytes", max_len);
        errno = EFBIG;
        goto fail;
    }
    out->data[out->len] = '\0';
    close(fd);
    return 0;

fail:
    saved_errno = errno;
    close(fd);
    file_contents_cleanup(out);
    errno = saved_errno;
    return -1;
}

void file_contents_cleanup(struct file_contents *contents)
{
    if (contents->data != NULL) {
        OPENSSL_cleanse(contents->data, contents->len);
        free(contents->data);
    }
    *contents = (struct file_contents){0};
}

const char *file_exposure(mode_t mode)
{
    if (mode & S_IROTH)
        return "readable by others";
    if (mode & S_IWGRP)
        return "writable by group";
    if (mode & S_IWOTH)
        return "writable by others";
    return NULL;
}
