/* file: reading the files a configuration names (the configuration itself,
 * certificates, keys, CA and CRL bundles, OCSP responses, ticket key files).
 *
 * Every such file is opened with O_NONBLOCK and refused unless it is a
 * regular file. A plain open(2) of a FIFO waits for a writer, and a daemon
 * whose main thread waits there ignores SIGTERM; a device may never end. So
 * every load path (--check, start, reload) reads through here, and nothing
 * else opens these files. */
#ifndef TLSTERM_FILE_H
#define TLSTERM_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* FILE_PROBLEM_MAX is enough for any text file_check_regular and
 * file_read_regular write into |problem|. */
#define FILE_PROBLEM_MAX 64

/* struct file_contents is a whole file read into memory. */
struct file_contents {
    uint8_t *data; /* |len| bytes and a NUL after them; owned */
    size_t len;
    mode_t mode; /* type and permission bits of the file that was read */
};

/* file_check_regular returns 0 if |path| opens for reading, by the effective
 * user (unlike access(2)), and is a regular file. Otherwise it returns -1
 * after writing why into |problem| (FILE_PROBLEM_MAX bytes): strerror's text
 * ("No such file or directory", "Is a directory") or "not a regular file (a
 * FIFO)". */
int file_check_regular(const char *path, char *problem, size_t problem_len);

/* file_read_regular reads all of the regular file |path|, at most |max_len|
 * bytes, into |out|, which the caller releases with file_contents_cleanup.
 * It returns 0, or -1 with |out| empty after writing why into |problem|: as
 * file_check_regular, or "larger than N bytes" (errno is then EFBIG, for
 * callers with more to say). */
int file_read_regular(const char *path, size_t max_len, struct file_contents *out,
                      char *problem, size_t problem_len);

/* file_contents_cleanup wipes and frees what |contents| holds (keys are
 * secrets) and empties it. An empty |contents| is allowed. */
void file_contents_cleanup(struct file_contents *contents);

/* file_exposure returns what makes a file with |mode| unfit to hold a secret
 * (a private key, ticket keys): "readable by others", "writable by group"
 * or "writable by others" (the first that applies), or NULL. Readable by
 * group is fine: that is how a service user is given read access. */
const char *file_exposure(mode_t mode);

#endif
