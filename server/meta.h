/*
 * meta.h - encore-server's metadata store: one LMDB environment holding
 * vnodes, directory entries, volumes and the server record.
 * Owns:    DIR/meta (the LMDB env), record encodings.
 * Format:  docs/ondisk.md "Server metadata".
 * Locking: single-threaded; one write transaction at a time (the loop's
 *          batch), with nested child transactions per operation.
 *
 * Every value starts with a u32 magic and a u16 version; a record with an
 * unknown magic or version is -EIO plus a critical log, never a guess.
 * No MDB_val leaves this module: getters decode into caller structs.
 */
#ifndef SERVER_META_H
#define SERVER_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

/* ACL entries per vnode: a placeholder for the ACL work; records carry
 * the count and entries so adding ACLs needs no format change. */
#define VNODE_ACL_MAX 32
/* Largest encoded vnode: fixed part + symlink target + ACL, with slack. */
#define VNODE_REC_MAX (512 + TARGET_MAX_LEN + VNODE_ACL_MAX * 8)

struct acl_entry {
	uint32_t id;
	uint32_t rights;
};

/* One object (file, directory, symlink, device, fifo, socket). */
struct vnode {
	struct fid fid;
	uint32_t mode; /* S_IF* type and permission bits */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	uint64_t size;
	struct wtime atime;
	struct wtime mtime;
	struct wtime ctime;
	uint64_t data_version; /* names the current container of a regular file */
	struct vv vv;
	struct storeid sid;
	uint32_t flags;		 /* ATTR_F_* */
	uint8_t parent[OID_LEN]; /* directories: parent's oid (a root: its own) */
	uint32_t n_acl;		 /* <= VNODE_ACL_MAX; 0 today */
	struct acl_entry acl[VNODE_ACL_MAX];
	char target[TARGET_MAX_LEN + 1]; /* symlinks only */
};

/* One directory entry: the child's oid (same volume) and its type bits. */
struct dent {
	uint8_t oid[OID_LEN];
	uint32_t type; /* S_IFMT bits of the child */
};

/* One volume. */
struct volrec {
	uint32_t vol;
	uint64_t stamp;	    /* bumped by every update in the volume */
	uint64_t n_objects; /* live vnodes */
	uint32_t flags;
	char name[NAME_MAX_LEN + 1];
	struct vsg vsg; /* n == 0: a volume of the foundation (this server alone) */
};

/* The server's identity record. */
struct srvinfo {
	uint32_t server_id;
	uint64_t incarnation; /* bumped at every start */
	uint32_t root_vol;    /* the realm's root volume */
	char realm[REALM_MAX_LEN + 1];
};

struct meta;
struct meta_txn;

/* Opens (create: creates the directory and) the LMDB env at path, runs
 * mdb_reader_check. *out is NULL on failure. Returns 0 or -errno. */
int meta_open(const char *path, bool create, struct meta **out);
/* Closes the env. NULL is a no-op. No transaction may be open. */
void meta_close(struct meta *m);

/* Begins a transaction, nested in parent if not NULL (parent must then be a
 * write txn and is unusable until the child ends). 0 or -errno. */
int meta_begin(struct meta *m, struct meta_txn *parent, bool rdonly, struct meta_txn **out);
/* Commits and frees t. On failure t is aborted and freed. 0 or -errno. */
int meta_commit(struct meta_txn *t);
/* Aborts and frees t. NULL is a no-op. */
void meta_abort(struct meta_txn *t);

/* Vnodes, keyed by fid. get: -ENOENT if absent, -EIO if corrupt. */
int meta_vnode_get(struct meta_txn *t, const struct fid *fid, struct vnode *out);
int meta_vnode_put(struct meta_txn *t, const struct vnode *v);
int meta_vnode_del(struct meta_txn *t, const struct fid *fid);

/* Directory entries, keyed by (dir fid, name). name must be name_valid. */
int meta_dirent_get(struct meta_txn *t, const struct fid *dir, const char *name, struct dent *out);
int meta_dirent_put(struct meta_txn *t, const struct fid *dir, const char *name,
		    const struct dent *d);
int meta_dirent_del(struct meta_txn *t, const struct fid *dir, const char *name);

/* Called per entry in name order; return 0 to continue, 1 to stop, <0 to
 * abort the scan with that error. name and d are valid during the call. */
typedef int (*meta_dirent_fn)(void *arg, const char *name, const struct dent *d);
/* Scans dir's entries with names strictly after `after` ("" = from the
 * start), in byte order. Returns 1 if fn stopped it, 0 at the end, <0 error. */
int meta_dir_scan(struct meta_txn *t, const struct fid *dir, const char *after, meta_dirent_fn fn,
		  void *arg);
/* 1 if dir has no entries, 0 if it has some, <0 error. */
int meta_dir_empty(struct meta_txn *t, const struct fid *dir);

/* Volumes, keyed by id. */
int meta_volume_get(struct meta_txn *t, uint32_t vol, struct volrec *out);
int meta_volume_put(struct meta_txn *t, const struct volrec *v);
/* Sum of n_objects over all volumes, or <0 error. */
int meta_objects_total(struct meta_txn *t, uint64_t *out);

/* The server record. -ENOENT before init. */
int meta_info_get(struct meta_txn *t, struct srvinfo *out);
int meta_info_put(struct meta_txn *t, const struct srvinfo *in);

/* Raw key/value tables of replication (server/repl.c encodes their keys and
 * values; schemas in docs/ondisk.md). */
enum meta_kv {
	META_KV_COP2,	   /* pending phase-two entries */
	META_KV_RESLOG,	   /* directory resolution logs */
	META_KV_CONFLICTS, /* objects in conflict */
	META_KV_REINT,	   /* reintegration marks per (volume, client) (server/reint.c) */
	META_KV_N,
};
/* Copies the value of key into buf (cap bytes; a larger value is -EIO);
 * *len gets its length. -ENOENT if absent. */
int meta_kv_get(struct meta_txn *t, enum meta_kv tab, const void *key, size_t klen, void *buf,
		size_t cap, size_t *len);
int meta_kv_put(struct meta_txn *t, enum meta_kv tab, const void *key, size_t klen, const void *val,
		size_t vlen);
/* -ENOENT if absent. */
int meta_kv_del(struct meta_txn *t, enum meta_kv tab, const void *key, size_t klen);
/* Called per record; key and val are valid during the call only (the
 * callback must not write to the table it scans). 0 continues, 1 stops,
 * <0 aborts with that error. */
typedef int (*meta_kv_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
			  size_t vlen);
/* Scans the keys that start with prefix, in key order, from start (a key
 * with the prefix, inclusive) or from the first one when start is NULL.
 * Returns 1 if fn stopped, 0 at the end, <0 error. */
int meta_kv_scan(struct meta_txn *t, enum meta_kv tab, const void *prefix, size_t plen,
		 const void *start, size_t slen, meta_kv_fn fn, void *arg);
/* The same over the raw vnodes (dirents false) or dirents tables, whose
 * keys are described in docs/ondisk.md (values still encoded). */
int meta_raw_scan(struct meta_txn *t, bool dirents, const void *prefix, size_t plen,
		  const void *start, size_t slen, meta_kv_fn fn, void *arg);

/* Inline data: the bytes of a small regular file kept in the env instead
 * of a container, so one commit makes data and metadata durable (no
 * container or directory fsync). Keyed by fid; the record names the
 * data_version it holds, and a record of another version is stale (as if
 * absent). At most META_INLINE_MAX bytes: larger values cost LMDB overflow
 * pages out of proportion, and small files are where fsyncs dominate. */
#define META_INLINE_MAX (16u << 10)
/* Copies up to len bytes at off of fid's inline data of version dv into
 * buf. Returns the count (0 at or past the end), -ENOENT if fid has no
 * inline data of version dv, -EIO for a bad record. */
int meta_inline_get(struct meta_txn *t, const struct fid *fid, uint64_t dv, uint64_t off, void *buf,
		    size_t len);
/* Sets fid's inline data to len (<= META_INLINE_MAX) bytes of version dv. */
int meta_inline_put(struct meta_txn *t, const struct fid *fid, uint64_t dv, const void *data,
		    size_t len);
/* Removes fid's inline data; none is not an error. */
int meta_inline_del(struct meta_txn *t, const struct fid *fid);

/* Record codecs (exposed for tests and fuzzers). encode returns the length
 * written into buf (cap >= VNODE_REC_MAX) ; decode returns 0 or -EIO (bad
 * magic/version/length). */
size_t vnode_encode(const struct vnode *v, uint8_t *buf, size_t cap);
int vnode_decode(const uint8_t *buf, size_t len, const struct fid *fid, struct vnode *out);
size_t dent_encode(const struct dent *d, uint8_t *buf, size_t cap);
int dent_decode(const uint8_t *buf, size_t len, struct dent *out);

#endif /* SERVER_META_H */
