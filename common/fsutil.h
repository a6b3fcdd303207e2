/*
 * fsutil.h - durable file-system helpers: atomic replace (tmp, fsync,
 * rename, fsync dir), mkdir -p, fsync of a directory, whole-file read and
 * write. The only way Encore replaces files (STYLE section 7).
 */
#ifndef COMMON_FSUTIL_H
#define COMMON_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mkdir -p with mode; 0 or -errno. */
int fs_mkdirs(const char *path, mode_t mode);
/* fsync of the directory at path; 0 or -errno. */
int fs_fsync_dir(const char *path);
/* fsync of the directory containing path. */
int fs_fsync_parent(const char *path);
/* Writes data to path durably: path.tmp.<pid>, fsync, rename, fsync dir. 0 or -errno. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Reads a whole file of at most max bytes into a new NUL-terminated buffer
 * (*out, free with free()), *len_out its length. -EFBIG if larger. */
int fs_read_file(const char *path, size_t max, char **out, size_t *len_out);
/* Writes all of buf at offset (retrying on short writes/EINTR). 0 or -errno. */
int fs_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Reads exactly len bytes at off unless EOF; returns bytes read or -errno. */
ssize_t fs_pread_all(int fd, void *buf, size_t len, off_t off);
/* Recursively removes path (like rm -rf); 0 or -errno. */
int fs_rmtree(const char *path);
/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif /* COMMON_FSUTIL_H */
