/*
 * store.c - container files and partial stores of encore-server.
 * Owns:    DIR/data/<vol>/ containers, DIR/tmp/ temp files, the fds of
 *          partial stores, the server-wide pending byte count.
 * Borrows: fids from the caller; never touches metadata.
 * Locking: single-threaded (the server loop).
 * Format:  docs/ondisk.md "Containers".
 */
#include "server/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/xalloc.h"

/* Largest file: keeps offset + length arithmetic far from overflow. */
#define STORE_FILE_MAX (1ull << 52)

struct store {
	char *data; /* DIR/data */
	char *tmp;  /* DIR/tmp */
	uint64_t pending_bytes;
	uint64_t mem_bytes; /* held by in-memory uploads */
	uint64_t tmp_seq;
};

static void oid_hex(const uint8_t *oid, char out[2 * OID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < OID_LEN; i++) {
		out[2 * i] = hex[oid[i] >> 4];
		out[2 * i + 1] = hex[oid[i] & 15];
	}
	out[2 * OID_LEN] = '\0';
}

static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s", a, b);
	return p;
}

int store_open(const char *dir, struct store **out)
{
	struct store *s = xcalloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	s->data = path_join(dir, "data");
	s->tmp = path_join(dir, "tmp");
	ret = fs_mkdirs(s->data, 0700);
	if (ret < 0)
		goto err;
	ret = fs_rmtree(s->tmp);
	if (ret < 0 && ret != -ENOENT)
		goto err;
	ret = fs_mkdirs(s->tmp, 0700);
	if (ret < 0)
		goto err;
	*out = s;
	return 0;
err:
	store_close(s);
	return ret;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	free(s->data);
	free(s->tmp);
	free(s);
}

void store_path(struct store *s, const struct fid *fid, uint64_t dv, char *out, size_t len)
{
	char hex[2 * OID_LEN + 1];
	oid_hex(fid->oid, hex);
	int n = snprintf(out, len, "%s/%" PRIu32 "/%s.%" PRIx64, s->data, fid->vol, hex, dv);
	ASSERT(n > 0 && (size_t)n < len);
}

int store_tmp_create(struct store *s, int *fd, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/s%d.%" PRIu64, s->tmp, (int)getpid(), ++s->tmp_seq);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	*fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (*fd < 0)
		return -errno;
	return 0;
}

int store_install(struct store *s, const char *tmppath, const struct fid *fid, uint64_t dv)
{
	char path[512];
	store_path(s, fid, dv, path, sizeof(path));
	if (rename(tmppath, path) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	char vdir[512];
	snprintf(vdir, sizeof(vdir), "%s/%" PRIu32, s->data, fid->vol);
	int ret = fs_mkdirs(vdir, 0700);
	if (ret < 0)
		return ret;
	ret = fs_fsync_parent(vdir);
	if (ret < 0)
		return ret;
	if (rename(tmppath, path) < 0)
		return -errno;
	return 0;
}

int store_sync_vol(struct store *s, uint32_t vol)
{
	char vdir[512];
	snprintf(vdir, sizeof(vdir), "%s/%" PRIu32, s->data, vol);
	return fs_fsync_dir(vdir);
}

ssize_t store_read(struct store *s, const struct fid *fid, uint64_t dv, void *buf, size_t len,
		   uint64_t off)
{
	char path[512];
	ssize_t n;
	int fd;

	store_path(s, fid, dv, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = fs_pread_all(fd, buf, len, (off_t)off);
	close(fd);
	return n;
}

int store_open_ro(struct store *s, const struct fid *fid, uint64_t dv, uint64_t *size)
{
	char path[512];
	struct stat st;
	int fd;

	store_path(s, fid, dv, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int store_copy(struct store *s, const struct fid *fid, uint64_t dv, uint64_t len, int fd)
{
	char path[512];
	loff_t in_off = 0, out_off = 0;
	int ret = 0;
	int in;

	if (len == 0)
		return 0;
	store_path(s, fid, dv, path, sizeof(path));
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errno == ENOENT ? 0 : -errno;
	while ((uint64_t)in_off < len) {
		ssize_t n = copy_file_range(in, &in_off, fd, &out_off, len - (uint64_t)in_off, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0)
			break; /* short container: the rest reads as zeros */
	}
	close(in);
	return ret;
}

void store_unlink(struct store *s, const struct fid *fid, uint64_t dv)
{
	char path[512];
	store_path(s, fid, dv, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("store", "cannot remove container '%s': %s", path, strerror(errno));
}

void store_set_init(struct store_set *ss)
{
	ss->n = 0;
	ss->n_files = 0;
	for (size_t i = 0; i < STORE_PARTIAL_MAX; i++) {
		ss->slot[i].fd = -1;
		ss->slot[i].mem = NULL;
	}
}

static bool slot_used(const struct pstore *p)
{
	return p->fd >= 0 || p->mem != NULL;
}

struct pstore *store_set_find(struct store_set *ss, uint64_t handle)
{
	if (ss->n == 0)
		return NULL;
	for (size_t i = 0; i < STORE_PARTIAL_MAX; i++)
		if (slot_used(&ss->slot[i]) && ss->slot[i].handle == handle)
			return &ss->slot[i];
	return NULL;
}

/* A free slot for handle, or NULL with *err set. */
static struct pstore *slot_new(struct store_set *ss, uint64_t handle, int *err)
{
	if (store_set_find(ss, handle) != NULL) {
		*err = -EEXIST;
		return NULL;
	}
	if (ss->n >= STORE_PARTIAL_MAX) {
		*err = -EBUSY;
		return NULL;
	}
	for (size_t i = 0; i < STORE_PARTIAL_MAX; i++)
		if (!slot_used(&ss->slot[i]))
			return &ss->slot[i];
	ASSERT(false); /* ss->n counts the used slots */
	return NULL;
}

bool store_mem_room(struct store *s, size_t len)
{
	return len <= STORE_MEM_MAX && s->mem_bytes + len <= STORE_MEM_BYTES_MAX;
}

int store_set_add_mem(struct store *s, struct store_set *ss, uint64_t handle, const struct fid *fid,
		      const void *data, size_t data_len, size_t len, struct pstore **out)
{
	struct pstore *p;
	int ret;

	*out = NULL;
	if (data_len > len || !store_mem_room(s, len))
		return -EINVAL;
	p = slot_new(ss, handle, &ret);
	if (p == NULL)
		return ret;
	p->mem = xcalloc(len > 0 ? len : 1, 1);
	if (data_len > 0)
		memcpy(p->mem, data, data_len);
	p->fd = -1;
	p->path[0] = '\0';
	p->handle = handle;
	p->fid = *fid;
	p->bytes = len;
	s->mem_bytes += len;
	ss->n++;
	*out = p;
	return 0;
}

int store_set_add(struct store *s, struct store_set *ss, uint64_t handle, const struct fid *fid,
		  struct pstore **out)
{
	struct pstore *p;
	int ret;

	*out = NULL;
	if (ss->n_files >= STORE_FILES_MAX)
		return store_set_find(ss, handle) != NULL ? -EEXIST : -EBUSY;
	p = slot_new(ss, handle, &ret);
	if (p == NULL)
		return ret;
	ret = store_tmp_create(s, &p->fd, p->path, sizeof(p->path));
	if (ret < 0) {
		p->fd = -1;
		return ret;
	}
	p->handle = handle;
	p->fid = *fid;
	p->bytes = 0;
	ss->n++;
	ss->n_files++;
	*out = p;
	return 0;
}

int store_set_write(struct store *s, struct pstore *p, const void *buf, size_t len, uint64_t off)
{
	uint64_t end;

	if (p->mem != NULL)
		return -EINVAL;
	if (__builtin_add_overflow(off, (uint64_t)len, &end) || end > STORE_FILE_MAX)
		return -EFBIG;
	if (end > p->bytes) {
		uint64_t grow = end - p->bytes;
		if (s->pending_bytes + grow > STORE_PENDING_BYTES_MAX)
			return -ENOSPC;
		s->pending_bytes += grow;
		p->bytes = end;
	}
	if (len == 0)
		return 0;
	return fs_pwrite_all(p->fd, buf, len, (off_t)off);
}

static void pstore_forget(struct store *s, struct store_set *ss, struct pstore *p)
{
	if (p->mem != NULL) {
		free(p->mem); /* its bytes were never pending on disk */
		p->mem = NULL;
		ASSERT(s->mem_bytes >= p->bytes);
		s->mem_bytes -= p->bytes;
	} else {
		ASSERT(s->pending_bytes >= p->bytes);
		s->pending_bytes -= p->bytes;
		ASSERT(ss->n_files > 0);
		ss->n_files--;
	}
	p->fd = -1;
	p->bytes = 0;
	ss->n--;
}

void store_set_drop(struct store *s, struct store_set *ss, struct pstore *p)
{
	if (p->fd >= 0) {
		close(p->fd);
		unlink(p->path);
	}
	pstore_forget(s, ss, p);
}

void store_set_detach(struct store *s, struct store_set *ss, struct pstore *p)
{
	pstore_forget(s, ss, p);
}

void store_set_release(struct store *s, struct store_set *ss)
{
	for (size_t i = 0; i < STORE_PARTIAL_MAX && ss->n > 0; i++)
		if (slot_used(&ss->slot[i]))
			store_set_drop(s, ss, &ss->slot[i]);
}
