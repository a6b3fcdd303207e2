/*
 * cstate.c - encore-client's persisted state for starting without network.
 * Owns:    LMDB table "state" of the cache env.
 * Borrows: struct client: cache (transactions), conn (volume table),
 *          itab (inodes), root_lock fields.
 * Locking: snapshots of inodes are taken under each inode's lock, one at a
 *          time, before the cache transaction that writes them.
 * Format:  key "R" = the realm root; "V" + u32 vol (LE) = a volume;
 *          "O" + u32 vol (LE) + oid = an object; "F" + u32 vol (LE) = a
 *          forced state (vol 0: every volume). Values start with the db
 *          header (CSTATE_MAGIC, CSTATE_VERSION) (docs/ondisk.md).
 */
#include "client/cstate.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/cache.h"
#include "client/conn.h"
#include "client/inode.h"
#include "common/db.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/xalloc.h"

#define CSTATE_MAGIC   0x31534345u /* "ECS1" */
#define CSTATE_VERSION 1
#define CSTATE_TABLE   "state"
#define OBJ_KEY_LEN    (1 + 4 + OID_LEN)
/* Volumes saved at most (conn.h keeps as many). */
#define CSTATE_VOLS_MAX 64
/* Entries of one saved listing at most: a listing is one LMDB value. */
#define CSTATE_ENTS_MAX (1u << 20)

enum obj_flags {
	OBJ_LISTING = 1u << 0,
	OBJ_TARGET = 1u << 1,
};

static void wr_wtime(struct wr *w, const struct wtime *t)
{
	wr_i64(w, t->sec);
	wr_u32(w, t->nsec);
}

static void rd_wtime(struct rd *r, struct wtime *t)
{
	t->sec = rd_i64(r);
	t->nsec = rd_u32(r);
}

static void wr_attr(struct wr *w, const struct attr *a)
{
	wr_u32(w, a->fid.vol);
	wr_bytes(w, a->fid.oid, OID_LEN);
	wr_u32(w, a->mode);
	wr_u32(w, a->nlink);
	wr_u32(w, a->uid);
	wr_u32(w, a->gid);
	wr_u64(w, a->rdev);
	wr_u64(w, a->size);
	wr_u64(w, a->blocks);
	wr_wtime(w, &a->atime);
	wr_wtime(w, &a->mtime);
	wr_wtime(w, &a->ctime);
	wr_u64(w, a->data_version);
	wr_u8(w, (uint8_t)(a->vv.n <= VV_MAX ? a->vv.n : 0));
	for (uint32_t i = 0; i < a->vv.n && i < VV_MAX; i++)
		wr_u32(w, a->vv.slot[i]);
	wr_u64(w, a->sid.client);
	wr_u64(w, a->sid.seq);
	wr_u32(w, a->flags);
}

static void rd_attr(struct rd *r, struct attr *a)
{
	const uint8_t *oid;

	memset(a, 0, sizeof(*a));
	a->fid.vol = rd_u32(r);
	oid = rd_bytes(r, OID_LEN);
	if (oid != NULL)
		memcpy(a->fid.oid, oid, OID_LEN);
	a->mode = rd_u32(r);
	a->nlink = rd_u32(r);
	a->uid = rd_u32(r);
	a->gid = rd_u32(r);
	a->rdev = rd_u64(r);
	a->size = rd_u64(r);
	a->blocks = rd_u64(r);
	rd_wtime(r, &a->atime);
	rd_wtime(r, &a->mtime);
	rd_wtime(r, &a->ctime);
	a->data_version = rd_u64(r);
	a->vv.n = rd_u8(r);
	if (a->vv.n > VV_MAX) {
		r->err = -EPROTO;
		a->vv.n = 0;
	}
	for (uint32_t i = 0; i < a->vv.n; i++)
		a->vv.slot[i] = rd_u32(r);
	a->sid.client = rd_u64(r);
	a->sid.seq = rd_u64(r);
	a->flags = rd_u32(r);
}

/* A snapshot of one inode, taken under its lock. */
struct snap {
	struct attr attr;
	struct dirent_w *ents; /* owned; NULL without a valid listing */
	size_t n_ents;
	bool listing;
	char *target; /* owned or NULL */
	bool removed;
};

static void snap_encode(struct wr *w, const struct snap *s)
{
	uint8_t flags = (uint8_t)((s->listing ? OBJ_LISTING : 0) | (s->target ? OBJ_TARGET : 0));

	db_hdr_put(w, CSTATE_MAGIC, CSTATE_VERSION);
	wr_attr(w, &s->attr);
	wr_u8(w, flags);
	if (s->listing) {
		wr_u32(w, (uint32_t)s->n_ents);
		for (size_t i = 0; i < s->n_ents; i++)
			dirent_encode(w, &s->ents[i]);
	}
	if (s->target != NULL) {
		size_t len = strlen(s->target);

		wr_u16(w, (uint16_t)len);
		wr_bytes(w, s->target, len);
	}
}

int cstate_obj_decode(const uint8_t *buf, size_t len, struct attr *a, struct dirent_w **ents,
		      size_t *n_ents, char **target)
{
	struct rd r;
	uint8_t flags;

	*ents = NULL;
	*n_ents = 0;
	*target = NULL;
	rd_init(&r, buf, len);
	if (db_hdr_check(&r, CSTATE_MAGIC, CSTATE_VERSION, "client state") < 0)
		return -EIO;
	rd_attr(&r, a);
	flags = rd_u8(&r);
	if (!r.err && (flags & OBJ_LISTING)) {
		uint32_t n = rd_u32(&r);

		/* Each packed dirent takes more than one byte: bound by length. */
		if (n > CSTATE_ENTS_MAX || n > r.len - r.pos)
			r.err = -EPROTO;
		else
			*ents = xcalloc(n ? n : 1, sizeof(**ents));
		for (uint32_t i = 0; !r.err && i < n; i++) {
			if (dirent_decode(&r, &(*ents)[i]) != 1)
				r.err = -EPROTO;
		}
		if (!r.err)
			*n_ents = n;
	}
	if (!r.err && (flags & OBJ_TARGET)) {
		uint16_t tl = rd_u16(&r);
		const uint8_t *t = rd_bytes(&r, tl);

		if (t != NULL && tl <= TARGET_MAX_LEN) {
			*target = xmalloc((size_t)tl + 1);
			memcpy(*target, t, tl);
			(*target)[tl] = '\0';
		} else {
			r.err = -EPROTO;
		}
	}
	if (r.err || !rd_done(&r) || (flags & ~(OBJ_LISTING | OBJ_TARGET))) {
		log_err("cstate", "client state record malformed");
		free(*ents);
		free(*target);
		*ents = NULL;
		*target = NULL;
		*n_ents = 0;
		return -EIO;
	}
	return 0;
}

/* ---------- checkpoint ---------- */

/* Snapshots of inodes freed since the last checkpoint (their state would
 * be lost otherwise: the kernel forgets inodes, e.g. at unmount). */
#define CSTATE_PENDING_MAX (1u << 20)

struct ckpt {
	struct snap *snaps;
	size_t n, cap;
};

struct cstate {
	struct client *cl;
	pthread_mutex_t lock;
	struct ckpt pend; /* protected by lock */
	/* Serialises cstate_save_forced: the snapshot written last is the
	 * newest. Taken before the cache lock. */
	pthread_mutex_t force_lock;
};

static void ckpt_release(struct ckpt *ck)
{
	for (size_t i = 0; i < ck->n; i++) {
		free(ck->snaps[i].ents);
		free(ck->snaps[i].target);
	}
	free(ck->snaps);
	memset(ck, 0, sizeof(*ck));
}

/* Takes in's state; false if there is nothing worth saving. */
static bool snap_take(struct inode *in, struct snap *sp)
{
	struct snap s;

	if (in->ino == INODE_TOP)
		return false;
	memset(&s, 0, sizeof(s));
	pthread_mutex_lock(&in->lock);
	if (!in->have_attr) {
		pthread_mutex_unlock(&in->lock);
		return false;
	}
	s.attr = in->attr;
	s.attr.fid = in->fid;
	s.removed = in->removed;
	if (S_ISDIR(in->attr.mode) && in->list_valid && in->n_ents <= CSTATE_ENTS_MAX) {
		s.listing = true;
		s.n_ents = in->n_ents;
		s.ents = inode_ents_dup(in->ents, in->n_ents);
	}
	if (in->target != NULL && strlen(in->target) <= TARGET_MAX_LEN)
		s.target = xstrdup(in->target);
	pthread_mutex_unlock(&in->lock);
	*sp = s;
	return true;
}

static void ckpt_add(struct ckpt *ck, const struct snap *s)
{
	if (ck->n == ck->cap) {
		ck->cap = ck->cap ? 2 * ck->cap : 64;
		ck->snaps = xrealloc(ck->snaps, ck->cap * sizeof(*ck->snaps));
	}
	ck->snaps[ck->n++] = *s;
}

static void snap_cb(void *arg, struct inode *in)
{
	struct snap s;

	if (snap_take(in, &s))
		ckpt_add(arg, &s);
}

/* itab_free_fn */
static void on_free(void *arg, struct inode *in)
{
	struct cstate *cs = arg;
	struct snap s;

	if (!snap_take(in, &s))
		return;
	pthread_mutex_lock(&cs->lock);
	if (cs->pend.n < CSTATE_PENDING_MAX) {
		ckpt_add(&cs->pend, &s);
		s.ents = NULL;
		s.target = NULL;
	}
	pthread_mutex_unlock(&cs->lock);
	free(s.ents);
	free(s.target);
}

struct cstate *cstate_new(struct client *cl)
{
	struct cstate *cs = xcalloc(1, sizeof(*cs));

	cs->cl = cl;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_mutex_init(&cs->force_lock, NULL);
	itab_set_free_hook(cl->itab, on_free, cs);
	return cs;
}

void cstate_free(struct cstate *cs)
{
	if (cs == NULL)
		return;
	itab_set_free_hook(cs->cl->itab, NULL, NULL);
	ckpt_release(&cs->pend);
	pthread_mutex_destroy(&cs->force_lock);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}

/* Puts (k, w) unless the table holds exactly that already. 1 if written. */
static int put_if_changed(MDB_txn *txn, unsigned int dbi, MDB_val *k, const struct wr *w)
{
	MDB_val v;
	int rc = mdb_get(txn, dbi, k, &v);

	if (rc == 0 && v.mv_size == w->len && memcmp(v.mv_data, w->buf, w->len) == 0)
		return 0;
	v.mv_size = w->len;
	v.mv_data = w->buf;
	rc = mdb_put(txn, dbi, k, &v, 0);
	return rc == 0 ? 1 : db_err(rc);
}

static void obj_key(const struct fid *fid, uint8_t key[OBJ_KEY_LEN])
{
	key[0] = 'O';
	le_put_u32(key + 1, fid->vol);
	memcpy(key + 5, fid->oid, OID_LEN);
}

int cstate_checkpoint(struct cstate *cs)
{
	struct client *cl = cs->cl;
	struct conn_vol_info vi[CSTATE_VOLS_MAX];
	size_t nv = conn_volumes(cl->conn, vi, CSTATE_VOLS_MAX);
	struct ckpt ck;
	struct cache_txn *t;
	unsigned int dbi;
	struct fid root;
	struct inode *rin = NULL;
	struct attr ra;
	bool have_root, have_ra = false;
	int ret, written = 0;

	pthread_mutex_lock(&cl->root_lock);
	have_root = cl->have_root;
	root = cl->root_fid;
	pthread_mutex_unlock(&cl->root_lock);
	if (have_root)
		rin = inode_get_fid(cl->itab, &root);
	if (rin != NULL) {
		pthread_mutex_lock(&rin->lock);
		have_ra = rin->have_attr;
		ra = rin->attr;
		ra.fid = root;
		pthread_mutex_unlock(&rin->lock);
		inode_put(cl->itab, rin);
	}
	/* Freed ones first: a live inode of the same fid is newer. */
	pthread_mutex_lock(&cs->lock);
	ck = cs->pend;
	memset(&cs->pend, 0, sizeof(cs->pend));
	pthread_mutex_unlock(&cs->lock);
	itab_foreach(cl->itab, snap_cb, &ck);

	ret = cache_txn_begin(cl->cache, &t);
	if (ret < 0)
		goto out;
	ret = cache_txn_table(t, CSTATE_TABLE, &dbi);
	if (ret == 0 && have_ra) {
		struct wr w;
		MDB_val k = { 1, (void *)"R" };

		wr_init(&w);
		db_hdr_put(&w, CSTATE_MAGIC, CSTATE_VERSION);
		wr_attr(&w, &ra);
		ret = put_if_changed(cache_txn_mdb(t), dbi, &k, &w);
		written += ret > 0;
		wr_release(&w);
	}
	for (size_t i = 0; ret >= 0 && i < nv; i++) {
		uint8_t key[5];
		MDB_val k = { sizeof(key), key };
		struct wr w;
		size_t nl = strlen(vi[i].name);

		if (vi[i].vsg.n == 0 || vi[i].vsg.n > VV_MAX)
			continue;
		key[0] = 'V';
		le_put_u32(key + 1, vi[i].id);
		wr_init(&w);
		db_hdr_put(&w, CSTATE_MAGIC, CSTATE_VERSION);
		wr_u16(&w, (uint16_t)nl);
		wr_bytes(&w, vi[i].name, nl);
		wr_u8(&w, (uint8_t)vi[i].vsg.n);
		for (uint32_t s = 0; s < vi[i].vsg.n; s++)
			wr_u32(&w, vi[i].vsg.ids[s]);
		ret = put_if_changed(cache_txn_mdb(t), dbi, &k, &w);
		written += ret > 0;
		wr_release(&w);
	}
	for (size_t i = 0; ret >= 0 && i < ck.n; i++) {
		uint8_t key[OBJ_KEY_LEN];
		MDB_val k = { sizeof(key), key };
		struct wr w;

		obj_key(&ck.snaps[i].attr.fid, key);
		if (ck.snaps[i].removed) {
			int rc = mdb_del(cache_txn_mdb(t), dbi, &k, NULL);

			ret = rc == 0 || rc == MDB_NOTFOUND ? 0 : db_err(rc);
			continue;
		}
		wr_init(&w);
		snap_encode(&w, &ck.snaps[i]);
		ret = put_if_changed(cache_txn_mdb(t), dbi, &k, &w);
		written += ret > 0;
		wr_release(&w);
	}
	if (ret >= 0)
		ret = cache_txn_commit(t);
	else
		cache_txn_abort(t);
out:
	ckpt_release(&ck);
	return ret < 0 ? ret : written;
}

/* ---------- restore ---------- */

struct restored {
	struct inode **ins;
	size_t n, cap;
};

static void restored_add(struct restored *r, struct inode *in)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->ins = xrealloc(r->ins, r->cap * sizeof(*r->ins));
	}
	r->ins[r->n++] = in;
}

/* Creates (or finds) the inode of a, with the saved state; untrusted until
 * revalidated. Takes ownership of ents and target. New reference. */
static struct inode *restore_obj(struct client *cl, const struct attr *a, struct dirent_w *ents,
				 size_t n, bool listing, char *target)
{
	struct inode *in = inode_get_or_create(cl->itab, &a->fid);
	struct cache_ent e;
	struct attr at = *a;

	/* A cached file's attributes are those its container matches. */
	if (S_ISREG(at.mode) && cache_get(cl->cache, &a->fid, &e) == 0 && (e.has_data || e.dirty)) {
		at = e.attr;
		at.fid = a->fid;
		at.vv = a->vv;
		at.sid = a->sid;
		if (e.has_data && !e.dirty)
			at.data_version = e.data_version;
	}
	pthread_mutex_lock(&in->lock);
	if (!in->have_attr) {
		in->attr = at;
		in->have_attr = true;
		in->cb_valid = false;
		in->stale = true;
		if (listing) {
			inode_set_listing_locked(in, ents, n);
			ents = NULL;
		}
		if (target != NULL && in->target == NULL) {
			in->target = target;
			target = NULL;
		}
	}
	pthread_mutex_unlock(&in->lock);
	free(ents);
	free(target);
	return in;
}

/* The saved record of fid (a copy; *val NULL if none). */
static int saved_obj(struct client *cl, const struct fid *fid, uint8_t **val, size_t *len)
{
	uint8_t key[OBJ_KEY_LEN];
	MDB_val k = { sizeof(key), key }, v;
	struct cache_txn *t;
	unsigned int dbi;
	int ret, rc;

	*val = NULL;
	*len = 0;
	ret = cache_txn_begin(cl->cache, &t);
	if (ret < 0)
		return ret;
	ret = cache_txn_table(t, CSTATE_TABLE, &dbi);
	if (ret == 0) {
		obj_key(fid, key);
		rc = mdb_get(cache_txn_mdb(t), dbi, &k, &v);
		if (rc == 0) {
			*val = xmalloc(v.mv_size ? v.mv_size : 1);
			memcpy(*val, v.mv_data, v.mv_size);
			*len = v.mv_size;
		} else if (rc != MDB_NOTFOUND) {
			ret = db_err(rc);
		}
	}
	cache_txn_abort(t);
	return ret;
}

struct inode *cstate_revive(struct client *cl, const struct fid *fid)
{
	struct cstate *cs = cl->cstate;
	struct dirent_w *ents = NULL;
	char *target = NULL;
	struct attr a;
	size_t n = 0;
	bool found = false, removed = false, listing = false;

	if (cs == NULL)
		return NULL;
	/* Freed since the last checkpoint: the newest snapshot is the last. */
	pthread_mutex_lock(&cs->lock);
	for (size_t i = cs->pend.n; i-- > 0;) {
		const struct snap *sp = &cs->pend.snaps[i];

		if (!fid_eq(&sp->attr.fid, fid))
			continue;
		found = true;
		removed = sp->removed;
		a = sp->attr;
		listing = sp->listing;
		if (listing) {
			n = sp->n_ents;
			ents = inode_ents_dup(sp->ents, n);
		}
		if (sp->target != NULL)
			target = xstrdup(sp->target);
		break;
	}
	pthread_mutex_unlock(&cs->lock);
	if (!found) {
		uint8_t *val;
		size_t len;

		if (saved_obj(cl, fid, &val, &len) < 0 || val == NULL)
			return NULL;
		if (cstate_obj_decode(val, len, &a, &ents, &n, &target) == 0 &&
		    fid_eq(&a.fid, fid)) {
			found = true;
			listing = ents != NULL;
		}
		free(val);
	}
	if (!found || removed) {
		free(ents);
		free(target);
		return NULL;
	}
	return restore_obj(cl, &a, ents, n, listing, target);
}

int cstate_restore(struct client *cl, struct inode ***out, size_t *n_out)
{
	struct restored res = { 0 };
	struct cache_txn *t;
	unsigned int dbi;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct attr root;
	bool have_root = false;
	int ret, rc;

	*out = NULL;
	*n_out = 0;
	ret = cache_txn_begin(cl->cache, &t);
	if (ret < 0)
		return ret;
	ret = cache_txn_table(t, CSTATE_TABLE, &dbi);
	if (ret < 0)
		goto out_abort;
	k.mv_size = 1;
	k.mv_data = (void *)"R";
	rc = mdb_get(cache_txn_mdb(t), dbi, &k, &v);
	if (rc == 0) {
		struct rd r;

		rd_init(&r, v.mv_data, v.mv_size);
		if (db_hdr_check(&r, CSTATE_MAGIC, CSTATE_VERSION, "client state root") == 0) {
			rd_attr(&r, &root);
			have_root = rd_done(&r) && S_ISDIR(root.mode);
		}
	}
	if (!have_root) {
		ret = -ENOENT;
		goto out_abort;
	}
	rc = mdb_cursor_open(cache_txn_mdb(t), dbi, &cur);
	if (rc != 0) {
		ret = db_err(rc);
		goto out_abort;
	}
	/* Copy the records out first: inodes are made after the transaction
	 * (inode_get_or_create and cache_get must not run under the cache lock). */
	struct rec {
		uint8_t *val;
		size_t len;
		bool vol;
		uint32_t vid;
	} *recs = NULL;
	size_t nrec = 0, caprec = 0;
	MDB_cursor_op op = MDB_FIRST;

	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		const uint8_t *kb = k.mv_data;

		op = MDB_NEXT;
		if (!((k.mv_size == OBJ_KEY_LEN && kb[0] == 'O') ||
		      (k.mv_size == 5 && kb[0] == 'V')))
			continue;
		if (nrec == caprec) {
			caprec = caprec ? 2 * caprec : 64;
			recs = xrealloc(recs, caprec * sizeof(*recs));
		}
		recs[nrec].val = xmalloc(v.mv_size ? v.mv_size : 1);
		memcpy(recs[nrec].val, v.mv_data, v.mv_size);
		recs[nrec].len = v.mv_size;
		recs[nrec].vol = kb[0] == 'V';
		recs[nrec].vid = recs[nrec].vol ? le_get_u32(kb + 1) : 0;
		nrec++;
	}
	mdb_cursor_close(cur);
	cache_txn_abort(t);
	ret = rc == MDB_NOTFOUND ? 0 : db_err(rc);

	for (size_t i = 0; ret == 0 && i < nrec; i++) {
		if (recs[i].vol) {
			struct rd r;
			char name[NAME_MAX_LEN + 1];
			struct vsg vsg;
			uint16_t nl;
			const uint8_t *nb;

			memset(&vsg, 0, sizeof(vsg));
			rd_init(&r, recs[i].val, recs[i].len);
			if (db_hdr_check(&r, CSTATE_MAGIC, CSTATE_VERSION, "client state volume") <
			    0)
				continue;
			nl = rd_u16(&r);
			nb = rd_bytes(&r, nl);
			vsg.n = rd_u8(&r);
			if (nb == NULL || nl > NAME_MAX_LEN || vsg.n == 0 || vsg.n > VV_MAX) {
				log_err("cstate", "client state volume record malformed");
				continue;
			}
			for (uint32_t s = 0; s < vsg.n; s++)
				vsg.ids[s] = rd_u32(&r);
			if (!rd_done(&r)) {
				log_err("cstate", "client state volume record malformed");
				continue;
			}
			memcpy(name, nb, nl);
			name[nl] = '\0';
			conn_seed_volume(cl->conn, recs[i].vid, name, &vsg);
		} else {
			struct attr a;
			struct dirent_w *ents;
			size_t n;
			char *target;
			bool listing;

			if (cstate_obj_decode(recs[i].val, recs[i].len, &a, &ents, &n, &target) < 0)
				continue;
			listing = ents != NULL;
			restored_add(&res, restore_obj(cl, &a, ents, n, listing, target));
		}
	}
	for (size_t i = 0; i < nrec; i++)
		free(recs[i].val);
	free(recs);
	if (ret < 0) {
		for (size_t i = 0; i < res.n; i++)
			inode_put(cl->itab, res.ins[i]);
		free(res.ins);
		return ret;
	}
	/* The root last: its own record (if any) restored it with a listing. */
	{
		struct inode *in = restore_obj(cl, &root, NULL, 0, false, NULL);

		pthread_mutex_lock(&cl->root_lock);
		if (!cl->have_root) {
			cl->have_root = true;
			cl->root_fid = in->fid;
			cl->root_ino = in->ino;
			inode_ref(cl->itab, in); /* kept forever, as get_root does */
		}
		pthread_mutex_unlock(&cl->root_lock);
		restored_add(&res, in);
	}
	*out = res.ins;
	*n_out = res.n;
	return (int)res.n;

out_abort:
	cache_txn_abort(t);
	return ret;
}

/* ---------- forced states ---------- */

#define FORCE_KEY_LEN 5

static void force_key(uint32_t vol, uint8_t key[FORCE_KEY_LEN])
{
	key[0] = 'F';
	le_put_u32(key + 1, vol);
}

void cstate_force_encode(struct wr *w, enum vol_force f)
{
	db_hdr_put(w, CSTATE_MAGIC, CSTATE_VERSION);
	wr_u8(w, (uint8_t)f);
}

int cstate_force_decode(const uint8_t *buf, size_t len, enum vol_force *f)
{
	struct rd r;
	uint8_t v;

	*f = VF_NONE;
	rd_init(&r, buf, len);
	if (db_hdr_check(&r, CSTATE_MAGIC, CSTATE_VERSION, "client state forced state") < 0)
		return -EIO;
	v = rd_u8(&r);
	if (!rd_done(&r) || (v != VF_DISCONNECT && v != VF_WEAK)) {
		log_err("cstate", "client state forced-state record malformed");
		return -EIO;
	}
	*f = (enum vol_force)v;
	return 0;
}

/* Deletes every "F" record of the table. */
static int force_del_all(MDB_txn *txn, unsigned int dbi)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return db_err(rc);
	for (;;) {
		k.mv_size = 1;
		k.mv_data = (void *)"F";
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc != 0 || k.mv_size < 1 || ((const uint8_t *)k.mv_data)[0] != 'F')
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : db_err(rc);
}

static int force_put(MDB_txn *txn, unsigned int dbi, uint32_t vol, enum vol_force f)
{
	uint8_t key[FORCE_KEY_LEN];
	MDB_val k = { sizeof(key), key }, v;
	struct wr w;
	int rc;

	force_key(vol, key);
	wr_init(&w);
	cstate_force_encode(&w, f);
	v.mv_size = w.len;
	v.mv_data = w.buf;
	rc = mdb_put(txn, dbi, &k, &v, 0);
	wr_release(&w);
	return rc == 0 ? 0 : db_err(rc);
}

int cstate_save_forced(struct cstate *cs)
{
	struct client *cl = cs != NULL ? cs->cl : NULL;
	uint32_t vols[CSTATE_VOLS_MAX];
	enum vol_force fs[CSTATE_VOLS_MAX], all;
	struct cache_txn *t;
	unsigned int dbi;
	size_t nv;
	int ret;

	if (cl == NULL || cl->cml == NULL)
		return 0;
	pthread_mutex_lock(&cs->force_lock);
	all = cml_forced_all(cl->cml);
	nv = cml_volumes(cl->cml, vols, CSTATE_VOLS_MAX);
	for (size_t i = 0; i < nv; i++)
		fs[i] = cml_forced(cl->cml, vols[i]);
	ret = cache_txn_begin(cl->cache, &t);
	if (ret < 0)
		goto out;
	ret = cache_txn_table(t, CSTATE_TABLE, &dbi);
	if (ret == 0)
		ret = force_del_all(cache_txn_mdb(t), dbi);
	if (ret == 0 && all != VF_NONE)
		ret = force_put(cache_txn_mdb(t), dbi, 0, all);
	for (size_t i = 0; ret == 0 && i < nv; i++) {
		if (vols[i] != 0 && fs[i] != VF_NONE)
			ret = force_put(cache_txn_mdb(t), dbi, vols[i], fs[i]);
	}
	if (ret == 0)
		ret = cache_txn_commit(t);
	else
		cache_txn_abort(t);
out:
	pthread_mutex_unlock(&cs->force_lock);
	return ret;
}

int cstate_restore_forced(struct client *cl)
{
	uint32_t vols[CSTATE_VOLS_MAX + 1];
	enum vol_force fs[CSTATE_VOLS_MAX + 1];
	struct cache_txn *t;
	MDB_cursor *cur;
	MDB_val k, v;
	unsigned int dbi;
	size_t n = 0;
	int ret, rc;

	if (cl->cml == NULL)
		return 0;
	ret = cache_txn_begin(cl->cache, &t);
	if (ret < 0)
		return ret;
	ret = cache_txn_table(t, CSTATE_TABLE, &dbi);
	if (ret < 0)
		goto out_abort;
	rc = mdb_cursor_open(cache_txn_mdb(t), dbi, &cur);
	if (rc != 0) {
		ret = db_err(rc);
		goto out_abort;
	}
	k.mv_size = 1;
	k.mv_data = (void *)"F";
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kb = k.mv_data;
		enum vol_force f;

		if (k.mv_size < 1 || kb[0] != 'F')
			break;
		if (k.mv_size != FORCE_KEY_LEN) {
			log_err("cstate", "client state forced-state key malformed");
			continue;
		}
		if (cstate_force_decode(v.mv_data, v.mv_size, &f) < 0)
			continue; /* logged */
		if (n == CSTATE_VOLS_MAX + 1) {
			log_warn("cstate", "more than %d forced states saved: the rest ignored",
				 CSTATE_VOLS_MAX + 1);
			break;
		}
		vols[n] = le_get_u32(kb + 1);
		fs[n++] = f;
	}
	mdb_cursor_close(cur);
	ret = rc == 0 || rc == MDB_NOTFOUND ? 0 : db_err(rc);
out_abort:
	cache_txn_abort(t);
	if (ret < 0)
		return ret;
	/* Every volume first (key order puts vol 0 first): the volumes' own
	 * records then say which differ. */
	for (size_t i = 0; i < n; i++) {
		cml_force(cl->cml, vols[i], fs[i]);
		if (vols[i] != 0 && fs[i] == VF_WEAK)
			cml_set_state(cl->cml, vols[i], VS_WEAK);
		log_notice("cstate",
			   "volume %u%s: still %s by the user (encore reconnect lifts it)", vols[i],
			   vols[i] == 0 ? " (every volume)" : "",
			   fs[i] == VF_DISCONNECT ? "disconnected" : "write-disconnected");
	}
	return (int)n;
}
