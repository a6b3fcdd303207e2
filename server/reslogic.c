/*
 * reslogic.c - pure decisions of resolution (file vectors, directory log
 * merge); unit-tested in tests/unit/test_resolve.c.
 * Owns:    nothing.
 */
#include "server/reslogic.h"

#include <string.h>

#include "common/fid.h"
#include "common/log.h"
#include "common/xalloc.h"

/* True if replica j's state is an earlier one of w's history: its last
 * update came from the client of w's last update, earlier in that client's
 * sequence, and its vector exceeds w's in at most one slot (its own: it
 * performed that update, but the client, having taken it for down, left it
 * out of the update set and COP2 never raised the others' slots for it; the
 * later updates of that client then went on without it). The client issued
 * w's update after seeing j's, so w's state includes it: no conflict. */
static bool superseded(const struct vv *vj, const struct storeid *sj, const struct vv *vw,
		       const struct storeid *sw)
{
	uint32_t n = vj->n > vw->n ? vj->n : vw->n, more = 0;

	if (sj->client != sw->client || sj->seq >= sw->seq)
		return false;
	if (n > VV_MAX)
		n = VV_MAX;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = i < vj->n ? vj->slot[i] : 0, y = i < vw->n ? vw->slot[i] : 0;
		more += x > y;
	}
	/* j is ahead in its own slot only: updates j performed alone (their
	 * phase two never raised the others' slots), all issued by w's client
	 * before w's update. That client updates one object one call at a
	 * time (fsops holds the inode's io_lock), so it issued w's update
	 * after those: w's update is the later state of that client's history
	 * (a store carries the whole contents), even where w lacks them (the
	 * only replica holding them was down, and the client's update went
	 * on without its expectation: client/fsops.c). Ahead in two slots:
	 * updates another replica saw that w's client may not have. */
	return more <= 1;
}

enum res_action res_decide(size_t n, const struct vv *vvs, const struct storeid *sids,
			   size_t *winner, struct vv *vv)
{
	bool same_sid = true, same_vv = true;

	*winner = 0;
	for (size_t i = 1; i < n; i++) {
		same_sid = same_sid && storeid_eq(&sids[i], &sids[0]);
		same_vv = same_vv && vv_compare(&vvs[i], &vvs[0]) == VV_EQUAL;
	}
	if (same_sid) {
		*vv = vvs[0];
		for (size_t i = 1; i < n; i++)
			vv_merge(vv, &vvs[i]);
		return same_vv ? RES_SAME : RES_MERGE;
	}
	for (size_t w = 0; w < n; w++) {
		bool dom = true;
		for (size_t j = 0; j < n && dom; j++)
			dom = j == w || storeid_eq(&sids[j], &sids[w]) ||
			      vv_compare(&vvs[w], &vvs[j]) == VV_DOMINATES ||
			      superseded(&vvs[j], &sids[j], &vvs[w], &sids[w]);
		if (!dom)
			continue;
		*winner = w;
		*vv = vvs[w];
		for (size_t j = 0; j < n; j++)
			if (storeid_eq(&sids[j], &sids[w]) ||
			    superseded(&vvs[j], &sids[j], &vvs[w], &sids[w]))
				vv_merge(vv, &vvs[j]);
		/* Replicas with the winner's StoreId may have had a bigger vector
		 * than the others: the merged one still dominates them all. */
		return RES_DOMINANT;
	}
	return RES_CONFLICT;
}

static bool rec_eq(const struct rlog_rec *a, const struct rlog_rec *b)
{
	return a->op == b->op && storeid_eq(&a->sid, &b->sid) && strcmp(a->name, b->name) == 0 &&
	       memcmp(a->child, b->child, OID_LEN) == 0;
}

static bool log_has(const struct res_dirview *v, const struct rlog_rec *r)
{
	for (size_t i = 0; i < v->n_log; i++)
		if (rec_eq(&v->log[i], r))
			return true;
	return false;
}

static bool is_bind(uint8_t op)
{
	return op == RLOG_CREATE || op == RLOG_LINK || op == RLOG_RENAME_IN;
}

static bool is_unbind(uint8_t op)
{
	return op == RLOG_REMOVE || op == RLOG_RENAME_OUT;
}

/* True if replica v removed or renamed child away in a record that origin
 * (the replica e comes from) does not have. */
static bool unbound_here(const struct res_dirview *v, const struct res_dirview *origin,
			 const uint8_t *child)
{
	for (size_t i = 0; i < v->n_log; i++) {
		const struct rlog_rec *r = &v->log[i];
		if (is_unbind(r->op) && memcmp(r->child, child, OID_LEN) == 0 &&
		    !log_has(origin, r))
			return true;
	}
	return false;
}

bool res_remove_update(const struct vv *vv, const struct storeid *sid, const struct rlog_rec *rm)
{
	enum vv_order o = vv_compare(vv, &rm->vv);

	if (o != VV_DOMINATES && o != VV_CONFLICT)
		return false;
	if (storeid_eq(sid, &rm->sid))
		return false;
	/* The remover's own earlier update, which this replica performed but
	 * (phase two lost) without the others' slots: seen by the remover. */
	if (sid->client == rm->sid.client && sid->seq < rm->sid.seq)
		return false;
	return true;
}

/* True if replica v removed or renamed away e's child in a record origin
 * lacks that the client of e issued after e: e is history there, and only
 * missing from v's log because v's log was truncated since (a truncation
 * that reached some replicas and not others). */
static bool undone_later(const struct res_dirview *v, const struct res_dirview *origin,
			 const struct rlog_rec *e)
{
	for (size_t i = 0; i < v->n_log; i++) {
		const struct rlog_rec *x = &v->log[i];
		if (is_unbind(x->op) && memcmp(x->child, e->child, OID_LEN) == 0 &&
		    x->sid.client == e->sid.client && x->sid.seq > e->sid.seq &&
		    !log_has(origin, x))
			return true;
	}
	return false;
}

/* True if replica v binds name to child now. */
static bool binds_now(const struct res_dirview *v, const char *name, const uint8_t *child)
{
	for (size_t i = 0; i < v->n_ents; i++)
		if (strcmp(v->names[i], name) == 0)
			return memcmp(v->oids[i], child, OID_LEN) == 0;
	return false;
}

/* True if a replica other than o and r performed bind e (its log has it)
 * and binds it no more: e was undone there later (removed, renamed away,
 * rebound), so it is history, not state, and that replica's unbind is
 * replayed. (Three replicas: one missed a bind and its undoing, one has
 * only the bind, one has both; without this the first would get the bind
 * from the second and the rebind from the third: a false name/name.) */
static bool undone_elsewhere(const struct res_dirview *v, size_t n, size_t o, size_t r,
			     const struct rlog_rec *e)
{
	for (size_t p = 0; p < n; p++) {
		if (p == o || p == r)
			continue;
		if (log_has(&v[p], e) && !binds_now(&v[p], e->name, e->child))
			return true;
	}
	return false;
}

/* True if v's log holds a mark with this StoreId. */
static bool has_mark(const struct res_dirview *v, const struct storeid *sid)
{
	for (size_t i = 0; i < v->n_log; i++)
		if (v->log[i].op == RLOG_MARK && storeid_eq(&v->log[i].sid, sid))
			return true;
	return false;
}

bool res_dir_merge(size_t n, const struct res_dirview *all, struct rlog_rec **out, size_t *n_out)
{
	struct res_dirview v[VV_MAX];

	/* Only what follows the latest mark every replica holds: before it
	 * they were equal, and a truncation may have dropped it from some. */
	ASSERT(n <= VV_MAX);
	memcpy(v, all, n * sizeof(v[0]));
	for (size_t i = all[0].n_log; n > 0 && i-- > 0;) {
		const struct rlog_rec *m = &all[0].log[i];
		bool common = m->op == RLOG_MARK;
		for (size_t o = 1; o < n && common; o++)
			common = has_mark(&all[o], &m->sid);
		if (!common)
			continue;
		for (size_t o = 0; o < n; o++) {
			size_t j = all[o].n_log;
			while (j > 0 && !(all[o].log[j - 1].op == RLOG_MARK &&
					  storeid_eq(&all[o].log[j - 1].sid, &m->sid)))
				j--;
			v[o].log = all[o].log + j;
			v[o].n_log = all[o].n_log - j;
		}
		break;
	}
	for (size_t r = 0; r < n; r++) {
		size_t k = 0;
		/* Pass 0: unbinds, pass 1: binds, pass 2: setattr. */
		for (int pass = 0; pass < 3; pass++) {
			for (size_t o = 0; o < n; o++) {
				if (o == r)
					continue;
				for (size_t i = 0; i < v[o].n_log; i++) {
					const struct rlog_rec *e = &v[o].log[i];
					bool want = pass == 0	? is_unbind(e->op)
						    : pass == 1 ? is_bind(e->op)
								: e->op == RLOG_SETATTR;
					if (!want || log_has(&v[r], e))
						continue;
					/* A bind the origin itself undid later (removed,
					 * renamed away, rebound) is history, not state: its
					 * unbind is replayed too, and replaying the bind
					 * after it would bring the name back. */
					if (is_bind(e->op) &&
					    (!binds_now(&v[o], e->name, e->child) ||
					     undone_later(&v[r], &v[o], e) ||
					     undone_elsewhere(v, n, o, r, e)))
						continue;
					bool dup = false;
					for (size_t j = 0; j < k && !dup; j++)
						dup = rec_eq(&out[r][j], e);
					if (dup)
						continue;
					if (e->op == RLOG_RENAME_OUT &&
					    unbound_here(&v[r], &v[o], e->child)) {
						/* renamed here, removed/renamed there */
						log_info(
							"resolve",
							"directory conflict: '%s' renamed away on one replica, removed or renamed on another",
							e->name);
						return true;
					}
					if (e->op == RLOG_REMOVE) {
						for (size_t j = 0; j < v[r].n_log; j++) {
							const struct rlog_rec *x = &v[r].log[j];
							if (x->op == RLOG_RENAME_OUT &&
							    memcmp(x->child, e->child, OID_LEN) ==
								    0 &&
							    !log_has(&v[o], x)) {
								log_info(
									"resolve",
									"directory conflict: '%s' removed on one replica, renamed away on another",
									e->name);
								return true;
							}
						}
					}
					out[r][k++] = *e;
				}
			}
		}
		/* Name/name: a bind of a name that replica r holds for another
		 * object that none of r's replays unbinds. */
		for (size_t j = 0; j < k; j++) {
			const struct rlog_rec *e = &out[r][j];
			if (!is_bind(e->op))
				continue;
			for (size_t x = 0; x < v[r].n_ents; x++) {
				if (strcmp(v[r].names[x], e->name) != 0 ||
				    memcmp(v[r].oids[x], e->child, OID_LEN) == 0)
					continue;
				bool freed = false;
				for (size_t u = 0; u < k && !freed; u++)
					freed = is_unbind(out[r][u].op) &&
						strcmp(out[r][u].name, e->name) == 0 &&
						memcmp(out[r][u].child, v[r].oids[x], OID_LEN) == 0;
				if (!freed) {
					log_info(
						"resolve",
						"directory conflict: name '%s' bound to different objects",
						e->name);
					return true;
				}
			}
			/* Two replays binding one name to different objects. */
			for (size_t u = j + 1; u < k; u++)
				if (is_bind(out[r][u].op) && strcmp(out[r][u].name, e->name) == 0 &&
				    memcmp(out[r][u].child, e->child, OID_LEN) != 0) {
					log_info(
						"resolve",
						"directory conflict: two replays bind '%s' to different objects",
						e->name);
					return true;
				}
		}
		n_out[r] = k;
	}
	return false;
}
