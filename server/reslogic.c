/*
 * reslogic.c - pure decisions of resolution (file vectors, directory log
 * merge); unit-tested in tests/unit/test_resolve.c.
 * Owns:    nothing.
 */
#include "server/reslogic.h"

#include <string.h>

#include "common/fid.h"

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
			      vv_compare(&vvs[w], &vvs[j]) == VV_DOMINATES;
		if (!dom)
			continue;
		*winner = w;
		*vv = vvs[w];
		for (size_t j = 0; j < n; j++)
			if (storeid_eq(&sids[j], &sids[w]))
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

bool res_dir_merge(size_t n, const struct res_dirview *v, struct rlog_rec **out, size_t *n_out)
{
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
					bool dup = false;
					for (size_t j = 0; j < k && !dup; j++)
						dup = rec_eq(&out[r][j], e);
					if (dup)
						continue;
					if (e->op == RLOG_RENAME_OUT &&
					    unbound_here(&v[r], &v[o], e->child))
						return true; /* renamed here, removed/renamed there */
					if (e->op == RLOG_REMOVE) {
						for (size_t j = 0; j < v[r].n_log; j++) {
							const struct rlog_rec *x = &v[r].log[j];
							if (x->op == RLOG_RENAME_OUT &&
							    memcmp(x->child, e->child, OID_LEN) ==
								    0 &&
							    !log_has(&v[o], x))
								return true;
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
				if (!freed)
					return true;
			}
			/* Two replays binding one name to different objects. */
			for (size_t u = j + 1; u < k; u++)
				if (is_bind(out[r][u].op) && strcmp(out[r][u].name, e->name) == 0 &&
				    memcmp(out[r][u].child, e->child, OID_LEN) != 0)
					return true;
		}
		n_out[r] = k;
	}
	return false;
}
