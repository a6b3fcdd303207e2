/*
 * repl.h - replication records of encore-server kept in LMDB: pending
 * phase-two (COP2) entries, directory resolution logs, the conflict table,
 * the volume's VSG, and the packed formats RES_SCAN, RES_LOG/RES_APPLY and
 * CONFLICTS carry on the wire.
 * Owns:    the key and value encodings of the cop2, reslog and conflicts
 *          tables (docs/ondisk.md), the packed formats (docs/protocol.md).
 * Borrows: a meta transaction from the caller for every call.
 * Locking: whoever owns the transaction (the server loop).
 */
#ifndef SERVER_REPL_H
#define SERVER_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "common/wire.h"
#include "server/meta.h"

/* Fids one update changes (object, directories, replaced target). */
#define REPL_COP2_MAX 8
/* Pending COP2 entries older than this are dropped (repl_cop2_gc): a
 * client sends COP2 right after phase one, on the connection its next call
 * uses, so minutes mean the client died between the phases or lost the
 * server. Ten minutes leave room for a slow or briefly disconnected client;
 * a COP2 later than that does nothing, which is safe (see repl_cop2_gc). */
#define REPL_COP2_TTL_S 600
/* Records one repl_cop2_gc call looks at (and so drops at most): keeps the
 * collector's transaction short next to client updates. */
#define REPL_COP2_GC_BATCH 512
/* Bytes of a cop2 key (u32 vol, u64 StoreId client, u64 seq, big-endian). */
#define REPL_COP2_KEY_LEN 20
/* Longest path recorded in the conflict table; longer ones are cut. */
#define REPL_PATH_MAX 1024

/* Directory resolution log operations. */
enum rlog_op {
	RLOG_CREATE = 1,
	RLOG_REMOVE = 2,
	RLOG_RENAME_IN = 3,
	RLOG_RENAME_OUT = 4,
	RLOG_LINK = 5,
	RLOG_SETATTR = 6,
	/* A merge's sync point: appended with the replays to every replica it
	 * reached (StoreId: the merged directory's), kept by truncation. The
	 * next merge compares only what follows the latest mark every replica
	 * holds, so a truncation that reached only some replicas leaves
	 * nothing that looks new. Name "", child: the directory. */
	RLOG_MARK = 7,
};

/* One directory operation. Packed form (wire and disk): u8 op, u8 name_len,
 * name, child oid (16), u32 mode, u32 uid, u32 gid, vv (u8 n, u32 slots),
 * storeid (16). */
struct rlog_rec {
	uint8_t op;		     /* RLOG_* */
	char name[NAME_MAX_LEN + 1]; /* entry name ("" for SETATTR) */
	uint8_t child[OID_LEN];	     /* the entry's object (SETATTR: the directory) */
	uint32_t mode;	    /* the child's type and permissions (SETATTR: the directory's) */
	uint32_t uid, gid;  /* the child's owner (SETATTR: the directory's) */
	struct vv vv;	    /* REMOVE/RENAME_OUT: the child's VV after the operation */
	struct storeid sid; /* StoreId of the update */
};
#define RLOG_WIRE_MAX (2 + NAME_MAX_LEN + OID_LEN + 12 + 1 + 4 * VV_MAX + 16)

void rlog_encode(struct wr *w, const struct rlog_rec *r);
/* 1 if a record was read, 0 at the end of the buffer, -EPROTO if malformed. */
int rlog_decode(struct rd *r, struct rlog_rec *out);

/* One object in a RES_SCAN page. Packed: oid (16), u32 mode, u32 flags,
 * vv (u8 n, u32 slots), storeid (16). */
struct scan_ent {
	uint8_t oid[OID_LEN];
	uint32_t mode;
	uint32_t flags;
	struct vv vv;
	struct storeid sid;
};
void scan_ent_encode(struct wr *w, const struct scan_ent *e);
int scan_ent_decode(struct rd *r, struct scan_ent *out);

/* The VSG of vol and this server's slot in it (0 for a volume without a
 * VSG, which then counts as {self}). -ENOENT: no such volume. */
int repl_vsg(struct meta_txn *t, uint32_t vol, uint32_t self, struct vsg *vsg, uint32_t *slot);

/* Records the pending COP2 entry (vol, sid) -> oids (merged with an existing
 * one). No-op for the zero StoreId. */
int repl_cop2_add(struct meta_txn *t, uint32_t vol, const struct storeid *sid,
		  const struct fid *fids, size_t n);
/* Takes (reads and deletes) the entry: *n oids into oids[REPL_COP2_MAX * 4].
 * -ENOENT if there is none. */
int repl_cop2_take(struct meta_txn *t, uint32_t vol, const struct storeid *sid,
		   uint8_t (*oids)[OID_LEN], size_t *n);

/* Decodes a cop2 table value (docs/ondisk.md): *n oids into oids (at most
 * REPL_COP2_MAX * 4; oids NULL: only counted) and the time of the update in
 * *created, unix seconds (0 for a version-1 record, which has none). -EIO
 * (logged) if the magic, the version or the length is wrong. */
int repl_cop2_decode(const uint8_t *buf, size_t len, uint8_t (*oids)[OID_LEN], size_t *n,
		     uint64_t *created);

/* Garbage collection of pending COP2 entries whose phase two never came.
 * Looks at up to max entries in key order, from just after the key `after`
 * (NULL: from the first), and deletes those recorded before `before` (unix
 * seconds; version-1 records carry no time and count as older than any).
 * *n_dropped: how many it deleted; *more: whether entries may follow, then
 * next holds the key to pass as `after` in the next call (a new
 * transaction). -EIO on a malformed record, -EINVAL if max is 0. Dropping is
 * safe at any age: the objects keep vectors as after a lost COP2. */
int repl_cop2_gc(struct meta_txn *t, uint64_t before, size_t max, const uint8_t *after,
		 uint8_t next[REPL_COP2_KEY_LEN], size_t *n_dropped, bool *more);

/* Appends r to dir's resolution log. */
int repl_log_append(struct meta_txn *t, const struct fid *dir, const struct rlog_rec *r);
/* Packs dir's log records with seq > after into w, at most max_bytes;
 * *last gets the seq of the last record packed, *eof whether none remain. */
int repl_log_read(struct meta_txn *t, const struct fid *dir, uint64_t after, struct wr *w,
		  size_t max_bytes, uint64_t *last, bool *eof);
/* True if dir's log has a record with this op, name and StoreId. */
int repl_log_has(struct meta_txn *t, const struct fid *dir, const struct rlog_rec *r);
/* Drops dir's whole log. */
int repl_log_truncate(struct meta_txn *t, const struct fid *dir);

/* Conflict table: fid -> path at marking time. */
int repl_conflict_add(struct meta_txn *t, const struct fid *fid, const char *path);
int repl_conflict_del(struct meta_txn *t, const struct fid *fid);
/* Packs entries of vol after oid `after` (NULL: from the start) into w:
 * fid (20), u16 path_len, path. *last gets the last oid, *eof whether the
 * table has no more. */
int repl_conflict_list(struct meta_txn *t, uint32_t vol, const uint8_t *after, struct wr *w,
		       size_t max_bytes, uint8_t last[OID_LEN], bool *eof);

/* Finds a directory entry naming fid: its parent's oid and name. Tries the
 * vnode's parent hint first, then every directory of the volume. */
int repl_find_name(struct meta_txn *t, const struct fid *fid, uint8_t parent[OID_LEN],
		   char name[NAME_MAX_LEN + 1]);
/* "/a/b/c" of fid within its volume (walks parents, finds names). */
int repl_path(struct meta_txn *t, const struct fid *fid, char *out, size_t len);

/* Packs a RES_SCAN page: objects of vol with oid after `after` (NULL: from
 * the start), at most max_bytes. */
int repl_scan(struct meta_txn *t, uint32_t vol, const uint8_t *after, struct wr *w,
	      size_t max_bytes, uint8_t last[OID_LEN], bool *eof);

#endif /* SERVER_REPL_H */
