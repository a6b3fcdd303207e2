/*
 * reslogic.h - the pure decisions of resolution: compare the replicas of a
 * file, merge the resolution logs of a directory. No I/O, no state.
 * Owns:    nothing.
 * Rules:   SEMANTICS.md "Versions" and "Resolution"; docs/replication.md.
 */
#ifndef SERVER_RESLOGIC_H
#define SERVER_RESLOGIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "server/repl.h"

enum res_action {
	RES_SAME,     /* equal vectors and StoreIds: nothing to do */
	RES_MERGE,    /* equal StoreIds, vectors differ (phase two lost): merge with max */
	RES_DOMINANT, /* one replica dominates: install it on the others */
	RES_CONFLICT, /* incomparable with different StoreIds */
};

/* Decides for n (1..VV_MAX) replicas. A replica whose last update is an
 * earlier one of the client that made the winner's (its vector ahead only
 * in its own slot: phase two lost; fewer updates in all) counts as dominated.
 * On RES_DOMINANT
 * *winner is its index;
 * on RES_SAME/RES_MERGE/RES_DOMINANT *vv is the vector every replica ends
 * with (the slot-wise max of the replicas holding the winner's StoreId). */
enum res_action res_decide(size_t n, const struct vv *vvs, const struct storeid *sids,
			   size_t *winner, struct vv *vv);

/* Remove/update: true if a replica whose copy of a removed object has
 * vector vv and StoreId sid changed it after the remover last saw it (rm is
 * the REMOVE record, rm->vv the object's vector after the removal there).
 * Not a conflict: a copy the remover's vector dominates or equals, the same
 * StoreId, or an earlier update of the remover's own client (which it saw;
 * the replica only missed the phase two of it). */
bool res_remove_update(const struct vv *vv, const struct storeid *sid, const struct rlog_rec *rm);

/* One replica's view of a directory for the log merge. */
struct res_dirview {
	const struct rlog_rec *log; /* its resolution log, oldest first */
	size_t n_log;
	const char (*names)[NAME_MAX_LEN + 1]; /* its current entries */
	const uint8_t (*oids)[OID_LEN];
	size_t n_ents;
};

/* Merges the logs of n replicas of a directory. For each replica i,
 * out[i][0..n_out[i]) gets the records it lacks, to replay in that order
 * (removals first); out[i] must hold the sum of all n_log. Returns true on
 * a collision (name/name, rename of something removed or renamed
 * elsewhere): then the directory is a conflict and out is meaningless.
 * Remove/update collisions need the children's vectors: the caller checks
 * each REMOVE in out against the replica's child. */
bool res_dir_merge(size_t n, const struct res_dirview *v, struct rlog_rec **out, size_t *n_out);

#endif /* SERVER_RESLOGIC_H */
