/* file_watch: noticing that a file the configuration names (certificate,
 * key, OCSP, CA, CRL, ticket keys) changed, for reload_on_change.
 *
 * Files are rarely written in place: certbot renames new files over the old
 * ones, and Kubernetes swaps a whole directory by renaming a "..data_tmp"
 * symlink over "..data", through which the named files are symlinks. So
 * the directories are watched (each named file's own and its resolved
 * target's), every event in them starts a debounced check, and a check
 * compares each file's fingerprint with the one last seen: the resolved
 * file's device, inode, size, mtime and ctime, and, only when those moved, a
 * SHA-256 of its content. A change is reported only when a content (or a
 * file's existence) differs, so a touch or a busy /etc causes no reload.
 * A poll runs the same check every reload_poll_interval, for what inotify
 * cannot see (a symlink swapped in a directory that is not watched, network
 * filesystems).
 *
 * The watch lives on the main thread's event loop; the callback runs there
 * and may call file_watch_set (a reload does). */
#ifndef TLSTERM_FILE_WATCH_H
#define TLSTERM_FILE_WATCH_H

#include <event2/event.h>

#include "config.h"

struct file_watch;

/* file_watch_changed_fn is called when a watched file's content changed;
 * |trigger| says how that was noticed: "file_changed" (an inotify event)
 * or "file_poll" (the poll). */
typedef void (*file_watch_changed_fn)(void *arg, const char *trigger);

/* file_watch_new returns a watch on |base| that calls |changed| with |arg|,
 * watching nothing until file_watch_set, or NULL after logging why. The
 * caller owns it and releases it with file_watch_free, before |base|. */
struct file_watch *file_watch_new(struct event_base *base, file_watch_changed_fn changed,
                                  void *arg);

/* file_watch_prepare takes the fingerprints of the files |config| names,
 * for the file_watch_set of the same |config| that follows if the reload
 * succeeds; a reload calls it before it reads the files. A file replaced
 * while the reload reads it then differs from the fingerprint kept, and the
 * next check loads it; a fingerprint taken after the load would already
 * match the new file and hide it for good. After a failed reload they stay
 * unused (the next file_watch_prepare replaces them); the fingerprints in
 * force are then those of the check that asked for the reload, so a broken
 * file is not reloaded again until it changes. */
void file_watch_prepare(struct file_watch *watch, const struct config *config);

/* file_watch_set makes |watch| follow the files |config| names when it asks
 * for reload_on_change (and nothing otherwise), polling every
 * |config->reload_poll_ms| (0: no poll). The fingerprints file_watch_prepare
 * took (or, at the start, those taken now) are what later checks compare
 * with. A check an event already scheduled still runs. |watch| keeps no
 * pointer into |config|. */
void file_watch_set(struct file_watch *watch, const struct config *config);

/* file_watch_free stops watching and frees |watch|; NULL is accepted. */
void file_watch_free(struct file_watch *watch);

#endif
