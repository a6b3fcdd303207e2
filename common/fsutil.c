/*
 * fsutil.c - durable file-system helpers: atomic replace, mkdir -p,
 * directory fsync, whole-file read, full pread/pwrite, rm -rf.
 * Owns:    nothing beyond the temporary file of an fs_write_atomic() call.
 */
#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/xalloc.h"

int fs_mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strnlen(path, sizeof(buf));
	struct stat st;

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0) {
			int e = errno;
			if (e != EEXIST)
				return -e;
			if (stat(buf, &st) < 0)
				return -errno;
			if (!S_ISDIR(st.st_mode))
				return -ENOTDIR;
		}
		buf[i] = c;
	}
	return 0;
}

int fs_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int fs_fsync_parent(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strnlen(path, sizeof(buf));
	char *slash;

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	/* Trailing slashes do not make a new component. */
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	slash = strrchr(buf, '/');
	if (slash == NULL)
		return fs_fsync_dir(".");
	if (slash == buf)
		return fs_fsync_dir("/");
	*slash = '\0';
	return fs_fsync_dir(buf);
}

int fs_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

ssize_t fs_pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, ret, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	/* The umask must not change the mode the caller asked for. */
	if (fchmod(fd, mode) < 0) {
		ret = -errno;
		goto err_close;
	}
	ret = fs_pwrite_all(fd, data, len, 0);
	if (ret < 0)
		goto err_close;
	if (fsync(fd) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (close(fd) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	return fs_fsync_parent(path);

err_close:
	close(fd);
err_unlink:
	unlink(tmp);
	return ret;
}

int fs_read_file(const char *path, size_t max, char **out, size_t *len_out)
{
	size_t cap, len = 0;
	char *buf;
	int fd, ret;

	*out = NULL;
	*len_out = 0;
	if (max >= SIZE_MAX - 1)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Grow as data arrives; the file's size is not trusted (it may change). */
	cap = max < 4096 ? max + 2 : 4096;
	buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap = cap > (max + 2) / 2 ? max + 2 : cap * 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto err_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			ret = -EFBIG;
			goto err_free;
		}
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*len_out = len;
	return 0;

err_free:
	free(buf);
	close(fd);
	return ret;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP) {
		if (rmdir(path) < 0 && errno != ENOENT)
			return errno;
	} else if (unlink(path) < 0 && errno != ENOENT) {
		return errno;
	}
	return 0;
}

int fs_rmtree(const char *path)
{
	struct stat st;
	int ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	/* nftw walks without recursion of our own; 64 fds is plenty for depth. */
	ret = nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS);
	if (ret < 0)
		return -errno;
	return -ret;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
