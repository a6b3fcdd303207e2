/*
 * proto.h - the one source of truth for Encore's wire protocol: limits,
 * message types, field sets, flags and wire status codes.
 * Owns:    nothing at run time; constants and plain structs only.
 * Format:  docs/protocol.md describes every frame and field byte by byte.
 *
 * A frame is a 12-byte header followed by a body:
 *   u32 body_len | u16 type | u16 flags | u32 reqid | body[body_len]
 * All integers are little-endian. A reply has FRAME_F_REPLY set, the
 * request's type and reqid, and a body that starts with a u32 wire status
 * (ST_*); on ST_OK the reply's fields follow, otherwise nothing does.
 * Server-pushed messages (MSG_CB_BREAK) have FRAME_F_PUSH and a reqid of the
 * server's own numbering (0 = no answer wanted); the client acknowledges a
 * break with a reply frame of that type and reqid (docs/protocol.md
 * "Callback breaks").
 *
 * Every message body is the list of fields named by its field set (see
 * msgtab.h), encoded in ascending bit order of enum msg_field. Which fields a
 * type carries is fixed by the table, so a decoder never trusts the peer for
 * the layout, and every field has a hard bound below.
 */
#ifndef COMMON_PROTO_H
#define COMMON_PROTO_H

#include <stdint.h>

/* Bumped on any incompatible change; a peer with another version gets
 * ST_BADVERSION in the hello reply and a closed connection. */
#define PROTO_VERSION 1
/* The documented TCP port of encore-server (DESIGN section 8). */
#define PROTO_DEFAULT_PORT 2432

#define FRAME_HDR_LEN 12
/* Bulk data moves in chunks of at most this size, so one large file never
 * holds a connection for long and other calls interleave between chunks. */
#define CHUNK_MAX (512u * 1024u)
/* Largest body: one chunk plus every other field a message may carry
 * (names, target, attrs, credentials) with generous slack. */
#define FRAME_BODY_MAX (CHUNK_MAX + 16384u)

#define NAME_MAX_LEN   255  /* one path component, as NAME_MAX on Linux */
#define TARGET_MAX_LEN 4095 /* symlink target, as PATH_MAX - 1 */
#define REALM_MAX_LEN  253  /* a DNS name */
#define VV_MAX	       8    /* replicas per volume (VSG size), DESIGN section 4 */
#define GROUPS_MAX     32   /* supplementary groups passed per call */
#define OID_LEN	       16   /* object ids are 128-bit random values */
/* Packed dirents per READDIR reply: bounded by the frame anyway; this caps
 * the work one call can ask of the server. */
#define READDIR_MAX_ENTRIES 2048
/* Calls a client may have outstanding on one connection; the server stops
 * reading from a connection that exceeds it until replies drain. */
#define CALLS_IN_FLIGHT_MAX 256
/* CML records per REINTEGRATE batch: bounds the work of one server
 * transaction (the server loop serves nothing else meanwhile: ~50 ms for
 * 512 small records on a 2-core machine) and the reply's per-record status
 * list. Fewer, larger batches make reintegration fast: each costs a few
 * synced commits on every server and on the client. */
#define CML_BATCH_MAX 512
/* Uploads (partial stores) one connection may hold at once: the store
 * records of a whole reintegration batch. At most STORES_FILE_MAX of them
 * may be larger than STORE_SMALL_MAX or sent in several chunks: the server
 * keeps each of those in a temp file (an fd); a STORE_REINT upload of at
 * most STORE_SMALL_MAX bytes in one chunk is kept in memory (so at most
 * STORES_MAX * STORE_SMALL_MAX = 4 MiB per connection). */
#define STORES_MAX	256
#define STORES_FILE_MAX 64
#define STORE_SMALL_MAX (16u << 10)
/* StoreIds per COP2_BATCH: phase two of one reintegration batch's records
 * at once (docs/disconnected.md), so the same bound. */
#define COP2_BATCH_MAX CML_BATCH_MAX
/* JSON documents on the control socket (CLI <-> encore-client). */
#define CTL_JSON_MAX (256u * 1024u)

enum frame_flags {
	FRAME_F_REPLY = 1u << 0,
	FRAME_F_PUSH = 1u << 1,
};

/* Message types. Keep numbers stable: they are on the wire. */
enum msg_type {
	MSG_HELLO = 1,
	MSG_GETROOT = 2,
	MSG_GETATTR = 3,
	MSG_LOOKUP = 4,
	MSG_SETATTR = 5,
	MSG_CREATE = 6,
	MSG_REMOVE = 7,
	MSG_RENAME = 8,
	MSG_LINK = 9,
	MSG_READLINK = 10,
	MSG_READDIR = 11,
	MSG_FETCH = 12,
	MSG_STORE = 13,
	MSG_STATFS = 14,
	MSG_PING = 15,
	MSG_STATS = 16,
	MSG_CB_BREAK = 17,
	MSG_VOLINFO = 18,     /* volume's VSG and this replica's volume stamp */
	MSG_COP2 = 19,	      /* phase two of an update: the update set */
	MSG_RESOLVE = 20,     /* ask a replica to resolve an object or a volume */
	MSG_CONFLICTS = 21,   /* list the objects in conflict in a volume */
	MSG_REPAIR = 22,      /* resolve a conflict by keeping one or all versions */
	MSG_REINTEGRATE = 23, /* apply a batch of CML records atomically (docs/disconnected.md) */
	MSG_COP2_BATCH = 24,  /* phase two of many updates: F_DATA lists (StoreId, slot mask) */
	MSG_CTL = 32,	      /* control socket only: JSON request, JSON reply */
	/* 40..59: server-to-server resolution messages (docs/replication.md). */
	MSG_RES_GET = 40,
	MSG_RES_SCAN = 41,
	MSG_RES_INSTALL = 42,
	MSG_RES_LOG = 43,
	MSG_RES_APPLY = 44,
	MSG_RES_MARK = 45,
	MSG_TYPE_MAX = 64,
};

/* Fields a message may carry, encoded in this order (ascending bit). */
enum msg_field {
	F_VERSION = 1u << 0,	 /* u32 protocol version */
	F_CLIENT_ID = 1u << 1,	 /* u64 random client id */
	F_SERVER_ID = 1u << 2,	 /* u32 server id */
	F_INCARNATION = 1u << 3, /* u64 server start counter */
	F_REALM = 1u << 4,	 /* str<=REALM_MAX_LEN */
	F_CRED = 1u << 5,	 /* struct cred */
	F_FID = 1u << 6,	 /* struct fid: object or directory operated on */
	F_FID2 = 1u << 7,	 /* struct fid: second directory, or the new object's fid */
	F_NAME = 1u << 8,	 /* str<=NAME_MAX_LEN */
	F_NAME2 = 1u << 9,	 /* str<=NAME_MAX_LEN */
	F_TARGET = 1u << 10,	 /* str<=TARGET_MAX_LEN: symlink target */
	F_SATTR = 1u << 11,	 /* struct sattr */
	F_MODE = 1u << 12,	 /* u32 mode including S_IF* type bits */
	F_RDEV = 1u << 13,	 /* u64 device number */
	F_OFFSET = 1u << 14,	 /* u64 */
	F_LENGTH = 1u << 15,	 /* u64 */
	F_HANDLE = 1u << 16,	 /* u64 store handle chosen by the client */
	F_EXPECT = 1u << 17,	 /* u64 data version the client based its update on; 0 = any */
	F_MFLAGS = 1u << 18,	 /* u32 per-type flags (RENAME_*, STORE_*, READDIR_*, CREATE_*) */
	F_ATTR = 1u << 19,	 /* struct attr */
	F_ATTR2 = 1u << 20,	 /* struct attr: of the (second) directory changed */
	F_FSSTAT = 1u << 21,	 /* struct fsstat */
	F_DATA = 1u << 22,	 /* u32 len + bytes, len <= CHUNK_MAX (CTL: <= CTL_JSON_MAX) */
	F_STOREID = 1u << 23,	 /* struct storeid of this update */
	F_VSG = 1u << 24,	 /* struct vsg: server ids in slot order */
	F_STAMP = 1u << 25,	 /* u64 volume stamp of one replica */
	F_XVER = 1u << 26,	 /* 2 struct xver: the versions the client last saw of fid
				  * and fid2 (expected versions; zero StoreId = any) */
};

/* Wire status codes: errno values differ between architectures and never
 * cross the wire (err_to_status/status_to_err in err.h convert). */
enum wire_status {
	ST_OK = 0,
	ST_PERM = 1,
	ST_NOENT = 2,
	ST_IO = 3,
	ST_ACCES = 4,
	ST_EXIST = 5,
	ST_XDEV = 6,
	ST_NOTDIR = 7,
	ST_ISDIR = 8,
	ST_INVAL = 9,
	ST_FBIG = 10,
	ST_NOSPC = 11,
	ST_ROFS = 12,
	ST_MLINK = 13,
	ST_NAMETOOLONG = 14,
	ST_NOTEMPTY = 15,
	ST_STALE = 16,
	ST_NOTSUP = 17,
	ST_PROTO = 18,
	ST_BUSY = 19,
	ST_LOOP = 20,
	ST_AGAIN = 21,
	ST_NOMEM = 22,
	ST_TIMEDOUT = 23,
	ST_DQUOT = 24,
	ST_OVERFLOW = 25,
	ST_NOSYS = 26,
	ST_RANGE = 27,
	ST_BADF = 28,
	ST_CONFLICT = 100,   /* object in conflict (replication) */
	ST_VERSION = 101,    /* F_EXPECT did not match the object's data version */
	ST_BADVERSION = 102, /* unsupported protocol version in HELLO */
};

/* F_MFLAGS values, by message type. */
enum create_flags {
	CREATE_EXCL = 1u << 0, /* fail with ST_EXIST if the name exists (always set today) */
};
enum remove_flags {
	REMOVE_DIR = 1u << 0, /* rmdir: the object must be an empty directory */
};
enum rename_flags {
	RENAME_F_NOREPLACE = 1u << 0, /* as RENAME_NOREPLACE */
	RENAME_F_EXCHANGE = 1u << 1,  /* as RENAME_EXCHANGE (may answer ST_NOTSUP) */
};
enum store_flags {
	STORE_FIRST = 1u << 0, /* first chunk: start a new version under this handle */
	STORE_LAST = 1u << 1,  /* last chunk: F_LENGTH is the final size; make durable and commit */
	STORE_ABORT = 1u << 2, /* drop the partial version under this handle */
	STORE_REINT = 1u << 3, /* with LAST: keep the data under the handle for a REINTEGRATE */
};
enum resolve_flags {
	RESOLVE_VOLUME = 1u << 0, /* resolve every object of fid.vol, not just fid */
};
enum repair_flags {
	REPAIR_KEEP_ONE = 1u << 0, /* keep F_SERVER_ID's version everywhere */
	REPAIR_KEEP_ALL = 1u << 1, /* keep every version under NAME.conflict-server<N> */
};

/* Resolution messages (server to server, docs/replication.md). */
enum res_flags {
	RES_GET_PATH = 1u << 0,	      /* RES_GET: also find the parent and a name */
	RES_MARK_SET = 1u << 0,	      /* RES_MARK: set ATTR_F_CONFLICT (else clear it) */
	RES_INSTALL_STATUS = 1u << 3, /* RES_INSTALL: status and VV only, no data */
	RES_INSTALL_CLEAR = 1u << 4,  /* RES_INSTALL: also clear ATTR_F_CONFLICT (repair) */
	RES_APPLY_TRUNCATE = 1u << 0, /* RES_APPLY: then drop the directory's log */
	RES_APPLY_FORCE = 1u << 1,    /* RES_APPLY: even in a directory in conflict (repair) */
	RES_EXPECT = 1u << 5,	      /* RES_INSTALL, RES_APPLY: refuse unless F_ATTR2 holds */
	RES_EOF = 1u << 0,	      /* RES_SCAN, RES_LOG, CONFLICTS replies: nothing follows */
};

enum readdir_flags {
	READDIR_EOF = 1u << 0, /* reply: no entries follow the last one returned */
};

/* struct sattr.valid bits (what SETATTR changes). */
enum sattr_valid {
	SA_MODE = 1u << 0,
	SA_UID = 1u << 1,
	SA_GID = 1u << 2,
	SA_SIZE = 1u << 3,
	SA_ATIME = 1u << 4,
	SA_MTIME = 1u << 5,
	SA_ATIME_NOW = 1u << 6,
	SA_MTIME_NOW = 1u << 7,
	SA_CTIME = 1u << 8,
};

/* A fid names an object realm-wide: volume id and 128-bit object id. 20 bytes
 * on the wire: u32 vol, 16 bytes oid. The root of every volume has the
 * well-known oid FID_ROOT_OID (fid.h). */
struct fid {
	uint32_t vol;
	uint8_t oid[OID_LEN];
};

/* Wire: i64 sec, u32 nsec (< 1e9). */
struct wtime {
	int64_t sec;
	uint32_t nsec;
};

/* Volume storage group: server ids in slot order (slot i of a version
 * vector belongs to ids[i]). Wire: u8 n (1..VV_MAX), u32 ids[n]. */
struct vsg {
	uint32_t n;
	uint32_t ids[VV_MAX];
};

/* Caller identity for permission checks. Until authentication exists the
 * client passes each caller's ids and the server enforces mode bits with
 * them. Wire: u32 uid, u32 gid, u32 n_groups (<= GROUPS_MAX), u32 groups[]. */
struct cred {
	uint32_t uid;
	uint32_t gid;
	uint32_t n_groups;
	uint32_t groups[GROUPS_MAX];
};

/* Version vector: one counter per VSG member in a fixed order.
 * Wire: u8 n (<= VV_MAX), u32 slot[n]. */
struct vv {
	uint32_t n;
	uint32_t slot[VV_MAX];
};

/* (client id, per-client sequence number) of an update, unique realm-wide.
 * Wire: u64 client, u64 seq. */
struct storeid {
	uint64_t client;
	uint64_t seq;
};

/* F_XVER: a version of an object as a client saw it (StoreId of its last
 * update and version vector; vv.n == 0: the StoreId alone). */
struct xver {
	struct storeid sid;
	struct vv vv;
};

/* Status of an object as the server holds it. Wire, in this order:
 * fid, u32 mode, u32 nlink, u32 uid, u32 gid, u64 rdev, u64 size,
 * u64 blocks (512-byte units), wtime atime, mtime, ctime, u64 data_version,
 * vv, storeid, u32 flags. */
struct attr {
	struct fid fid;
	uint32_t mode; /* S_IF* type bits and permission bits (incl. suid/sgid/sticky) */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	uint64_t size;
	uint64_t blocks;
	struct wtime atime;
	struct wtime mtime;
	struct wtime ctime;
	uint64_t data_version; /* bumped by every change of contents (data or entries) */
	struct vv vv;
	struct storeid sid;
	uint32_t flags; /* ATTR_F_* */
};

enum attr_flags {
	ATTR_F_CONFLICT = 1u << 0, /* replicas disagree; see encore conflicts */
};

/* SETATTR arguments. Wire: u32 valid, u32 mode, u32 uid, u32 gid, u64 size,
 * wtime atime, wtime mtime. */
struct sattr {
	uint32_t valid; /* SA_* */
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	struct wtime atime;
	struct wtime mtime;
};

/* STATFS reply. Wire: u32 bsize, u64 blocks, bfree, bavail, files, ffree,
 * u32 namemax. */
struct fsstat {
	uint32_t bsize;
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint32_t namemax;
};

/* One entry in a READDIR reply's F_DATA, packed back to back:
 * u8 name_len (1..NAME_MAX_LEN), name bytes, fid (20), u32 mode (type bits
 * and permissions). Decoded by dirent_decode() in msg.h. */
#define DIRENT_WIRE_MIN (1 + 1 + 20 + 4)

#endif /* COMMON_PROTO_H */
