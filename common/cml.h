/*
 * cml.h - the client modification log record (docs/disconnected.md): one
 * update made while disconnected, as the client keeps it in its LMDB CML and
 * as REINTEGRATE carries it to the servers.
 * Owns:    nothing; struct cml_rec is plain data with fixed-size strings.
 * Format:  docs/protocol.md "CML records (REINTEGRATE)"; the on-disk form is
 *          the same encoding behind a magic and a version (cml_rec_pack).
 *
 * Records are concatenated without padding or count: a REINTEGRATE batch is
 * the F_DATA blob holding 1..CML_BATCH_MAX records. Decoding is strict: a
 * record re-encodes to exactly the bytes it was read from, every string and
 * count is bounded, an unknown op or flag is -EPROTO.
 */
#ifndef COMMON_CML_H
#define COMMON_CML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "common/wire.h"

/* Record operations. Keep numbers stable: they are on the wire and on disk. */
enum cml_op {
	CML_CREATE = 1,	 /* every object type: mode's S_IF* bits say which */
	CML_REMOVE = 2,	 /* unlink, or rmdir with REMOVE_DIR */
	CML_RENAME = 3,	 /* flags: RENAME_F_* */
	CML_LINK = 4,	 /* hard link */
	CML_SETATTR = 5, /* chmod, chown, truncate, utimes */
	CML_STORE = 6,	 /* new contents, uploaded beforehand under a STORE_REINT handle */
};

/* Per-record reply status of REINTEGRATE (u32 each, in record order).
 * Anything else is the wire status (ST_*) of a conflict or failure; a
 * conflict's ST_PERM is reported as ST_ACCES since 1 is taken. */
enum cml_status {
	CML_ST_APPLIED = 0, /* applied by this batch */
	CML_ST_ALREADY = 1, /* applied before (same StoreId): drop the record */
};

/* Largest file a store record may name (as the server's STORE). */
#define CML_STORE_LEN_MAX (1ull << 52)

/* The version of an object as the client last saw it from the servers, or
 * as its last logged record left it: the basis the server checks. */
struct cml_ver {
	uint64_t dv;	    /* data_version; used only when vv.n == 0 */
	struct storeid sid; /* StoreId of the last update seen (or logged) */
	struct vv vv;	    /* version vector */
};

struct cml_rec {
	uint8_t op;	    /* CML_* */
	uint32_t flags;	    /* REMOVE: REMOVE_DIR; RENAME: RENAME_F_*; others 0 */
	struct storeid sid; /* this record's StoreId: client != 0, seq != 0 */
	/* The object: created (CREATE), removed (REMOVE), renamed (RENAME),
	 * linked (LINK), changed (SETATTR, STORE). */
	struct fid fid;
	struct fid dir;		     /* CREATE, REMOVE, RENAME (source), LINK: the directory */
	struct fid dir2;	     /* RENAME: the target directory */
	struct fid fid2;	     /* RENAME: the object name2 held when logged; zero oid: none */
	char name[NAME_MAX_LEN + 1]; /* entry in dir */
	char name2[NAME_MAX_LEN + 1];	 /* RENAME: entry in dir2 */
	char target[TARGET_MAX_LEN + 1]; /* CREATE of a symlink; "" otherwise */
	uint32_t mode;			 /* CREATE: S_IF* type and permission bits */
	uint64_t rdev;			 /* CREATE of a device */
	struct sattr sattr;		 /* SETATTR (absolute times: no SA_*_NOW) */
	uint64_t handle;		 /* STORE: the STORE_REINT handle holding the data */
	uint64_t length;		 /* STORE: the file's new size */
	struct wtime mtime;		 /* STORE: the file's mtime */
	struct cml_ver ver;		 /* REMOVE, SETATTR, STORE: expected version of fid */
	struct cml_ver ver2;		 /* RENAME: expected version of fid2 (when not zero) */
};

/* Bytes of the largest encoded record (a symlink create with the longest
 * names and target). */
#define CML_VER_WIRE_MAX (8 + 16 + 1 + 4 * VV_MAX)
#define CML_REC_WIRE_MAX                                                                          \
	(1 + 4 + 16 + 4 * 20 + 2 * (2 + NAME_MAX_LEN) + 2 + TARGET_MAX_LEN + 4 + 8 + 32 + 8 + 8 + \
	 12 + 2 * CML_VER_WIRE_MAX)

/* On-disk header of a packed record (client LMDB table cml). */
#define CML_DISK_MAGIC	 0x4c4d4345u /* "ECML" little-endian */
#define CML_DISK_VERSION 1

/* Name of an op ("create", ...), "unknown" if none. */
const char *cml_op_name(uint8_t op);

/* Checks every field of r against the rules decode enforces. 0 or -EINVAL. */
int cml_rec_check(const struct cml_rec *r);
/* Appends r's encoding to w. 0, or -EINVAL (w unchanged) if a field is out
 * of bounds (cml_rec_check). */
int cml_rec_encode(struct wr *w, const struct cml_rec *r);
/* Reads one record from r into out (fully overwritten). 0, or -EPROTO for
 * a truncated or malformed record (r's sticky error is set too). */
int cml_rec_decode(struct rd *r, struct cml_rec *out);

/* Next record of a batch: 1 if one was read, 0 at the end, -EPROTO if
 * malformed. */
int cml_batch_next(struct rd *r, struct cml_rec *out);
/* Validates a whole batch without applying it: every record decodes, the
 * count is 1..max, all records have the same StoreId client and strictly
 * increasing seqs, and all fids lie in volume vol. *n gets the count.
 * -EPROTO for malformed bytes, -EINVAL for a well-formed batch that breaks
 * the rules (count, client, order, volume). */
int cml_batch_check(const uint8_t *buf, size_t len, uint32_t vol, size_t max, size_t *n);

/* One entry of a COP2_BATCH list (F_DATA; docs/protocol.md "cop2_batch"):
 * the update with StoreId sid was performed by the VSG slots in mask.
 * Wire: u64 client, u64 seq, u32 mask; entries packed back to back. */
struct cml_cop2 {
	struct storeid sid; /* client != 0, seq != 0 */
	uint32_t mask;	    /* VSG slot bits: not 0, below 1 << VV_MAX */
};
#define CML_COP2_WIRE 20

/* Appends e's encoding to w. */
void cml_cop2_encode(struct wr *w, const struct cml_cop2 *e);
/* Next entry of a list: 1 if one was read, 0 at the end, -EPROTO if
 * truncated or out of bounds (zero client or seq, mask 0 or too wide). */
int cml_cop2_next(struct rd *r, struct cml_cop2 *out);
/* Validates a whole list: 1..max entries that decode, data consumed
 * exactly. *n gets the count (0 on failure). -EPROTO if malformed, -EINVAL
 * for an empty or too long list. */
int cml_cop2_check(const uint8_t *buf, size_t len, size_t max, size_t *n);

/* On-disk form: u32 magic, u16 version, the record. unpack: -EIO for a bad
 * magic, an unknown version or a malformed record (never a guess). */
int cml_rec_pack(struct wr *w, const struct cml_rec *r);
int cml_rec_unpack(const uint8_t *buf, size_t len, struct cml_rec *out);

#endif /* COMMON_CML_H */
