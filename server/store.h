/*
 * store.h - container files of encore-server: one file per object version,
 * DIR/data/<vol>/<oid hex>.<data_version hex>, and the in-progress stores
 * under DIR/tmp.
 * Owns:    DIR/data/, DIR/tmp/ and the fds of partial stores.
 * Locking: single-threaded (the server loop).
 * Format:  docs/ondisk.md "Containers".
 *
 * A container is written under DIR/tmp, then renamed to its version's name
 * (never over an existing version the metadata refers to). The caller
 * fsyncs it and the volume directory before the metadata commit, and
 * unlinks the previous version after the commit.
 */
#ifndef SERVER_STORE_H
#define SERVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/proto.h"

/* Partial stores one connection may have open (proto.h STORES_MAX), of
 * which STORE_FILES_MAX in temp files, each holding an fd. */
#define STORE_PARTIAL_MAX STORES_MAX
#define STORE_FILES_MAX	  STORES_FILE_MAX
/* Bytes all partial stores of the server may hold in DIR/tmp, so clients
 * that never finish cannot fill the disk. */
#define STORE_PENDING_BYTES_MAX (8ull << 30)
/* A complete one-chunk upload of at most this size for a REINTEGRATE
 * (STORE_REINT) is kept in memory, not in a temp file: such a file is
 * installed inline (META_INLINE_MAX, not smaller), and creating and
 * unlinking a temp file per small file costs more than the rest of its
 * reintegration (ext4 inode allocation after many unlinks). At most
 * STORE_PARTIAL_MAX * STORE_MEM_MAX bytes of memory per connection. */
#define STORE_MEM_MAX STORE_SMALL_MAX
/* Bytes all in-memory uploads of the server may hold (many connections
 * each with STORE_PARTIAL_MAX of them); beyond it uploads go to temp files. */
#define STORE_MEM_BYTES_MAX (256ull << 20)

struct store;

/* Opens the container area under dir: creates data/ and tmp/, and clears
 * tmp/ (in-progress stores of a previous run). *out NULL on failure. */
int store_open(const char *dir, struct store **out);
void store_close(struct store *s);

/* Formats the container path of (fid, dv) into out. */
void store_path(struct store *s, const struct fid *fid, uint64_t dv, char *out, size_t len);

/* Creates a new temp file in tmp/; *fd gets an O_RDWR fd, path its name. */
int store_tmp_create(struct store *s, int *fd, char *path, size_t len);
/* Renames temp file tmppath to the container of (fid, dv), creating the
 * volume directory if needed. 0 or -errno. */
int store_install(struct store *s, const char *tmppath, const struct fid *fid, uint64_t dv);
/* fsyncs DIR/data/<vol>. */
int store_sync_vol(struct store *s, uint32_t vol);
/* Reads up to len bytes at off of the container of (fid, dv). A missing
 * container reads as empty (files that were never written). Returns the
 * byte count or -errno. */
ssize_t store_read(struct store *s, const struct fid *fid, uint64_t dv, void *buf, size_t len,
		   uint64_t off);
/* Opens the container of (fid, dv) read-only; *size gets its length.
 * Returns the fd (the caller closes it) or -errno (-ENOENT: none). A
 * container is never written once installed, so the fd reads that version
 * even after it is replaced and unlinked. */
int store_open_ro(struct store *s, const struct fid *fid, uint64_t dv, uint64_t *size);
/* Copies the first len bytes of (fid, dv) into fd (from offset 0). */
int store_copy(struct store *s, const struct fid *fid, uint64_t dv, uint64_t len, int fd);
/* Removes the container of (fid, dv); a missing one is not an error. */
void store_unlink(struct store *s, const struct fid *fid, uint64_t dv);

/* One partial (chunked) store of a connection: in a temp file (fd), or a
 * complete small upload in memory (mem; fd is -1). */
struct pstore {
	uint64_t handle; /* chosen by the client */
	struct fid fid;
	int fd;		/* owned; -1 when the slot is free or mem holds the data */
	uint8_t *mem;	/* owned: bytes bytes of data, or NULL */
	uint64_t bytes; /* highest offset written, accounted in pending bytes (file only) */
	char path[256];
};

/* The partial stores of one connection. */
struct store_set {
	struct pstore slot[STORE_PARTIAL_MAX];
	unsigned n;	  /* slots in use */
	unsigned n_files; /* of which in temp files */
};

void store_set_init(struct store_set *ss);
/* The partial store with this handle, or NULL. */
struct pstore *store_set_find(struct store_set *ss, uint64_t handle);
/* Opens a new partial store (a temp file). -EBUSY if the connection has
 * STORE_PARTIAL_MAX already (or STORE_FILES_MAX in temp files), -EEXIST
 * if the handle is in use. */
int store_set_add(struct store *s, struct store_set *ss, uint64_t handle, const struct fid *fid,
		  struct pstore **out);
/* True if an upload of len bytes may be kept in memory now (len <=
 * STORE_MEM_MAX, within STORE_MEM_BYTES_MAX for the server). */
bool store_mem_room(struct store *s, size_t len);
/* Keeps a complete upload in memory: data (data_len bytes) zero-extended
 * to len bytes (data_len <= len, store_mem_room, else -EINVAL). Errors as
 * store_set_add. */
int store_set_add_mem(struct store *s, struct store_set *ss, uint64_t handle, const struct fid *fid,
		      const void *data, size_t data_len, size_t len, struct pstore **out);
/* Writes a chunk at off, within the server's pending byte budget (-ENOSPC
 * beyond it, -EFBIG past the largest file offset); -EINVAL for an upload
 * kept in memory (it is complete). */
int store_set_write(struct store *s, struct pstore *p, const void *buf, size_t len, uint64_t off);
/* Closes and unlinks a partial store and frees its slot. */
void store_set_drop(struct store *s, struct store_set *ss, struct pstore *p);
/* Detaches p from the set without closing its fd or unlinking its file:
 * the caller takes ownership of p->fd (the store was installed). */
void store_set_detach(struct store *s, struct store_set *ss, struct pstore *p);
/* Drops every partial store (the connection closed). */
void store_set_release(struct store *s, struct store_set *ss);

#endif /* SERVER_STORE_H */
