/*
 * cml.h - encore-client's client modification log (docs/disconnected.md):
 * the per-volume log of updates made while a volume is not connected, kept
 * in LMDB table `cml` of the cache env and mirrored in memory, with its
 * optimisations; the repair area of local/global conflicts (table `repair`
 * plus container copies under <cachedir>/repair/); and the volume states.
 *
 * Records are appended inside a struct cml_tx: one write transaction of the
 * cache env (cache_txn) so that the cache index changes of an emulated
 * update and its record commit together, before the FUSE reply.
 *
 * Locking: cml.lock serialises transactions and the in-memory log; it is
 * taken before the cache lock (cache_txn_begin) and never while an inode
 * lock is held. cml.state_lock (volume states) is a leaf.
 */
#ifndef CLIENT_CML_H
#define CLIENT_CML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cml.h"
#include "common/proto.h"

struct cache;
struct cache_txn;
struct conn;

enum vol_state {
	VS_CONNECTED = 0,
	VS_DISCONNECTED = 1,
	VS_WEAK = 2,
	VS_REINTEGRATING = 3,
};

/* Forced states (ctl ops), sticky until reconnect. */
enum vol_force {
	VF_NONE = 0,
	VF_DISCONNECT = 1,
	VF_WEAK = 2,
};

struct cml;

/* A record copied out of the log (for reintegration). */
struct cml_item {
	uint64_t lsn;
	struct cml_rec rec;
};

/* A local/global conflict in the repair area. */
struct cml_conflict {
	uint32_t vol;
	uint64_t lsn;
	int status; /* wire status the servers answered */
	char path[1024];
	bool has_data; /* a container copy exists (cml_repair_path) */
	struct cml_rec rec;
};

/* Opens the log in the cache env (tables cml, repair) and loads it.
 * conn supplies StoreIds. 0 or -errno; *out NULL on failure. */
int cml_open(struct cache *cache, struct conn *conn, struct cml **out);
void cml_close(struct cml *m);

/* ---------- volume states ---------- */
enum vol_state cml_state(struct cml *m, uint32_t vol);
void cml_set_state(struct cml *m, uint32_t vol, enum vol_state st);
const char *cml_state_name(enum vol_state st);
/* Forces vol (0: every volume, also those seen later) into f; VF_NONE
 * lifts the forced state (reconnect). */
void cml_force(struct cml *m, uint32_t vol, enum vol_force f);
enum vol_force cml_forced(struct cml *m, uint32_t vol);
/* The state forced on every volume (cml_force with vol 0), VF_NONE once a
 * reconnect lifted it. Does not register a volume. */
enum vol_force cml_forced_all(struct cml *m);
/* Updates are logged (the volume is not connected). */
bool cml_logging(struct cml *m, uint32_t vol);
/* The cache is trusted without callbacks (disconnected). */
bool cml_emulating(struct cml *m, uint32_t vol);
/* Volumes with a state or records; returns the count (<= max). */
size_t cml_volumes(struct cml *m, uint32_t *vols, size_t max);

/* ---------- appending ---------- */
struct cml_tx {
	struct cml *m;
	struct cache_txn *ct; /* the cache transaction: index changes go here */
	bool dirty_mem;	      /* the in-memory log changed */
};

/* Starts a transaction (takes cml.lock and the cache lock). 0 or -errno. */
int cml_begin(struct cml *m, struct cml_tx *tx);
/* Commits (0 or -errno; on failure the in-memory log is reloaded) or
 * aborts; both end the transaction. */
int cml_commit(struct cml_tx *tx);
void cml_abort(struct cml_tx *tx);
/* Appends r (fid.vol is the volume) with a fresh StoreId, folding it into
 * an earlier record not yet sent where SEMANTICS allows (store after store,
 * setattr after setattr, rename chain). *obj_sid gets the StoreId the
 * object now carries (the basis of its next record). 0 or -errno. */
int cml_add(struct cml_tx *tx, struct cml_rec *r, struct storeid *obj_sid);
/* The object fid is being removed (its last name): if it was created by a
 * record not yet sent and every record naming it can vanish with it,
 * removes them all and returns 1 (log nothing); else 0. */
int cml_cancel_object(struct cml_tx *tx, const struct fid *fid);
/* The StoreId of the last record still in the log that changes fid (as
 * object, or as a directory whose entries it changes): what the servers
 * will hold once it is in. A non-directory (dir false) keeps its StoreId
 * when renamed or when one of its names is removed (server/ops.c
 * bump_link): those records do not count. false if none. */
bool cml_last_sid(struct cml *m, const struct fid *fid, bool dir, struct storeid *sid);
/* As cml_names, inside a transaction. */
bool cml_tx_names(struct cml_tx *tx, const struct fid *fid);
/* True if a record not yet reintegrated names fid (as object or dir). */
bool cml_names(struct cml *m, const struct fid *fid);
/* cml_names for each of n fids at once (one pass over the log): named[i]
 * gets the answer for fids[i]. Takes the CML lock. */
void cml_names_each(struct cml *m, const struct fid *fids, size_t n, bool *named);

/* ---------- reintegration ---------- */
/* Records of vol and bytes pending (sum of store lengths). */
void cml_count(struct cml *m, uint32_t vol, uint64_t *n, uint64_t *bytes);
/* Copies the next batch of vol into out (at most max records, at most
 * max_stores store records, at most CHUNK_MAX bytes encoded, one StoreId
 * client, only records appended at least min_age_ns ago) and marks them
 * sent (persistently). Returns the count (0: nothing ready) or -errno. */
int cml_next_batch(struct cml *m, uint32_t vol, struct cml_item *out, size_t max, size_t max_stores,
		   uint64_t min_age_ns);
/* Ends a batch in one transaction: drops the records with drop[i] (applied
 * or already applied), moves those with a conflict status (status[i] != 0)
 * to the repair area (paths[i]: where it was, for listing; the container
 * of a file is copied), leaves the others. */
int cml_finish(struct cml *m, uint32_t vol, const struct cml_item *items, size_t n,
	       const bool *drop, const int *status, const char (*paths)[1024]);

/* ---------- repair area ---------- */
/* Copies up to max conflicts into out; returns the total count. */
size_t cml_conflicts(struct cml *m, struct cml_conflict *out, size_t max);
/* Path of the container copy of a conflict. 0 or -ENAMETOOLONG. */
int cml_repair_path(struct cml *m, uint32_t vol, uint64_t lsn, char *out, size_t len);
/* Drops a conflict and its container copy. 0 or -errno. */
int cml_repair_drop(struct cml *m, uint32_t vol, uint64_t lsn);

#endif /* CLIENT_CML_H */
