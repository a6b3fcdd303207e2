/*
 * cml.c - encore-client's client modification log, repair area and volume
 *         states (docs/disconnected.md).
 * Owns:    LMDB tables `cml` and `repair` of the cache env, the in-memory
 *          mirror of the log, <cachedir>/repair/ (container copies), the
 *          volume state table.
 * Borrows: the cache env (cache_txn), StoreIds from conn.
 * Locking: lock protects the log (vols[].recs) and its tables; state_lock
 *          the states. Order: lock -> cache lock; state_lock is a leaf.
 * Format:  cml key = u32 vol (BE) + u64 lsn (BE); value = cml_rec_pack.
 *          Key lsn 0 of a volume holds u64 (LE) the highest lsn sent.
 *          repair key likewise; value = u32 status, u16 path len, path, u8
 *          has_data, cml_rec_pack.
 */
#include "client/cml.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/cache.h"
#include "client/conn.h"
#include "common/db.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/xalloc.h"

#define CML_KEY_LEN 12
#define CML_VOLS    64

struct mrec {
	uint64_t lsn;
	uint64_t t_ns;	   /* monotonic time appended (load time after a restart) */
	struct cml_rec *r; /* owned */
};

struct mvol {
	uint32_t id;
	enum vol_state state;
	enum vol_force force;
	uint64_t sent_lsn; /* records at or below were sent at least once */
	struct mrec *recs; /* owned, in lsn order */
	size_t n, cap;
	uint64_t bytes;
};

struct cml {
	struct cache *cache;
	struct conn *conn;
	char *repair_dir;
	unsigned int dbi_cml, dbi_repair;
	pthread_mutex_t lock;
	uint64_t next_lsn; /* protected by lock */
	pthread_mutex_t state_lock;
	struct mvol vols[CML_VOLS]; /* ids and states: state_lock; recs: lock */
	size_t n_vols;		    /* protected by state_lock */
	enum vol_force force_all;   /* protected by state_lock */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void be_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void be_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t be_get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | p[i];
	return v;
}

static uint64_t be_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void key_make(uint32_t vol, uint64_t lsn, uint8_t key[CML_KEY_LEN])
{
	be_put_u32(key, vol);
	be_put_u64(key + 4, lsn);
}

/* Finds or adds vol (caller holds state_lock); NULL if the table is full. */
static struct mvol *vol_get_locked(struct cml *m, uint32_t vol)
{
	struct mvol *v;

	for (size_t i = 0; i < m->n_vols; i++)
		if (m->vols[i].id == vol)
			return &m->vols[i];
	if (m->n_vols == CML_VOLS)
		return NULL;
	v = &m->vols[m->n_vols++];
	memset(v, 0, sizeof(*v));
	v->id = vol;
	v->force = m->force_all;
	v->state = v->force == VF_DISCONNECT ? VS_DISCONNECTED
		   : v->force == VF_WEAK     ? VS_WEAK
					     : VS_CONNECTED;
	return v;
}

static struct mvol *vol_get(struct cml *m, uint32_t vol)
{
	struct mvol *v;

	pthread_mutex_lock(&m->state_lock);
	v = vol_get_locked(m, vol);
	pthread_mutex_unlock(&m->state_lock);
	return v;
}

static bool fid_zero(const struct fid *f)
{
	static const uint8_t zero[OID_LEN];

	return memcmp(f->oid, zero, OID_LEN) == 0;
}

/* ---------- states ---------- */

const char *cml_state_name(enum vol_state st)
{
	switch (st) {
	case VS_CONNECTED:
		return "connected";
	case VS_DISCONNECTED:
		return "disconnected";
	case VS_WEAK:
		return "weak";
	case VS_REINTEGRATING:
		return "reintegrating";
	}
	return "unknown";
}

enum vol_state cml_state(struct cml *m, uint32_t vol)
{
	enum vol_state st = VS_CONNECTED;

	if (m == NULL)
		return st;
	pthread_mutex_lock(&m->state_lock);
	for (size_t i = 0; i < m->n_vols; i++)
		if (m->vols[i].id == vol)
			st = m->vols[i].state;
	if (m->force_all == VF_DISCONNECT)
		st = VS_DISCONNECTED;
	pthread_mutex_unlock(&m->state_lock);
	return st;
}

void cml_set_state(struct cml *m, uint32_t vol, enum vol_state st)
{
	struct mvol *v;

	pthread_mutex_lock(&m->state_lock);
	v = vol_get_locked(m, vol);
	if (v != NULL && v->state != st) {
		log_notice("cml", "volume %u: %s -> %s", vol, cml_state_name(v->state),
			   cml_state_name(st));
		v->state = st;
	}
	pthread_mutex_unlock(&m->state_lock);
}

void cml_force(struct cml *m, uint32_t vol, enum vol_force f)
{
	pthread_mutex_lock(&m->state_lock);
	if (vol == 0) {
		m->force_all = f;
		for (size_t i = 0; i < m->n_vols; i++) {
			m->vols[i].force = f;
			if (f == VF_DISCONNECT)
				m->vols[i].state = VS_DISCONNECTED;
			else if (f == VF_WEAK && m->vols[i].state == VS_CONNECTED)
				m->vols[i].state = VS_WEAK;
		}
	} else {
		struct mvol *v = vol_get_locked(m, vol);

		if (f == VF_NONE)
			m->force_all = VF_NONE;
		if (v != NULL) {
			v->force = f;
			if (f == VF_DISCONNECT)
				v->state = VS_DISCONNECTED;
			else if (f == VF_WEAK && v->state == VS_CONNECTED)
				v->state = VS_WEAK;
		}
	}
	pthread_mutex_unlock(&m->state_lock);
}

enum vol_force cml_forced(struct cml *m, uint32_t vol)
{
	enum vol_force f;
	struct mvol *v;

	pthread_mutex_lock(&m->state_lock);
	v = vol_get_locked(m, vol);
	f = v != NULL ? v->force : m->force_all;
	pthread_mutex_unlock(&m->state_lock);
	return f;
}

enum vol_force cml_forced_all(struct cml *m)
{
	enum vol_force f;

	pthread_mutex_lock(&m->state_lock);
	f = m->force_all;
	pthread_mutex_unlock(&m->state_lock);
	return f;
}

bool cml_logging(struct cml *m, uint32_t vol)
{
	return cml_state(m, vol) != VS_CONNECTED;
}

bool cml_emulating(struct cml *m, uint32_t vol)
{
	return cml_state(m, vol) == VS_DISCONNECTED;
}

size_t cml_volumes(struct cml *m, uint32_t *vols, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&m->state_lock);
	for (size_t i = 0; i < m->n_vols && n < max; i++)
		vols[n++] = m->vols[i].id;
	pthread_mutex_unlock(&m->state_lock);
	return n;
}

/* ---------- the log ---------- */

static void mvol_clear(struct mvol *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->recs[i].r);
	free(v->recs);
	v->recs = NULL;
	v->n = v->cap = 0;
	v->bytes = 0;
	v->sent_lsn = 0;
}

static void mvol_push(struct mvol *v, uint64_t lsn, struct cml_rec *r)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 64;
		v->recs = xrealloc(v->recs, v->cap * sizeof(*v->recs));
	}
	v->recs[v->n].lsn = lsn;
	v->recs[v->n].t_ns = mono_ns();
	v->recs[v->n].r = r;
	v->n++;
	if (r->op == CML_STORE)
		v->bytes += r->length;
}

static void mvol_remove(struct mvol *v, size_t i)
{
	if (v->recs[i].r->op == CML_STORE)
		v->bytes -= v->recs[i].r->length < v->bytes ? v->recs[i].r->length : v->bytes;
	free(v->recs[i].r);
	memmove(&v->recs[i], &v->recs[i + 1], (v->n - i - 1) * sizeof(v->recs[0]));
	v->n--;
}

/* Loads every record (caller holds lock; in a read txn of its own). */
static int load_locked(struct cml *m)
{
	struct cache_txn *ct;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int ret, rc;

	for (size_t i = 0; i < m->n_vols; i++)
		mvol_clear(&m->vols[i]);
	ret = cache_txn_begin(m->cache, &ct);
	if (ret < 0)
		return ret;
	rc = mdb_cursor_open(cache_txn_mdb(ct), m->dbi_cml, &cur);
	if (rc != 0) {
		cache_txn_abort(ct);
		return db_err(rc);
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		uint32_t vol;
		uint64_t lsn;
		struct mvol *mv;
		struct cml_rec *r;

		op = MDB_NEXT;
		if (k.mv_size != CML_KEY_LEN)
			continue;
		vol = be_get_u32(k.mv_data);
		lsn = be_get_u64((uint8_t *)k.mv_data + 4);
		mv = vol_get(m, vol);
		if (mv == NULL)
			continue;
		if (lsn >= m->next_lsn)
			m->next_lsn = lsn + 1;
		if (lsn == 0) {
			if (v.mv_size == 8)
				mv->sent_lsn = le_get_u64(v.mv_data);
			continue;
		}
		r = xmalloc(sizeof(*r));
		if (cml_rec_unpack(v.mv_data, v.mv_size, r) < 0) {
			log_err("cml", "volume %u: CML record %llu is unreadable; skipped", vol,
				(unsigned long long)lsn);
			free(r);
			continue;
		}
		mvol_push(mv, lsn, r);
	}
	mdb_cursor_close(cur);
	cache_txn_abort(ct);
	/* A log left by an earlier run: its objects are what the cache
	 * shows until it is in (the thread then moves the volume on). */
	pthread_mutex_lock(&m->state_lock);
	for (size_t i = 0; i < m->n_vols; i++)
		if (m->vols[i].n > 0 && m->vols[i].state == VS_CONNECTED)
			m->vols[i].state = VS_REINTEGRATING;
	pthread_mutex_unlock(&m->state_lock);
	return rc == MDB_NOTFOUND ? 0 : db_err(rc);
}

int cml_open(struct cache *cache, struct conn *conn, struct cml **out)
{
	struct cml *m = xcalloc(1, sizeof(*m));
	struct cache_txn *ct;
	char path[4096];
	uint64_t n = 0;
	int ret;

	*out = NULL;
	m->cache = cache;
	m->conn = conn;
	m->next_lsn = 1;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->state_lock, NULL);
	if (snprintf(path, sizeof(path), "%s/repair", cache_dir(cache)) >= (int)sizeof(path)) {
		ret = -ENAMETOOLONG;
		goto err;
	}
	ret = fs_mkdirs(path, 0700);
	if (ret < 0)
		goto err;
	m->repair_dir = xstrdup(path);
	ret = cache_txn_begin(cache, &ct);
	if (ret < 0)
		goto err;
	ret = cache_txn_table(ct, "cml", &m->dbi_cml);
	if (ret == 0)
		ret = cache_txn_table(ct, "repair", &m->dbi_repair);
	if (ret == 0)
		ret = cache_txn_commit(ct);
	else
		cache_txn_abort(ct);
	if (ret < 0)
		goto err;
	pthread_mutex_lock(&m->lock);
	ret = load_locked(m);
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		goto err;
	for (size_t i = 0; i < m->n_vols; i++)
		n += m->vols[i].n;
	if (n > 0)
		log_notice("cml", "%llu CML record(s) pending reintegration",
			   (unsigned long long)n);
	/* A log or repair area left by an earlier run keeps the index durable;
	 * cml_commit switches back to fast mode once both are empty. */
	if (n > 0 || cml_conflicts(m, NULL, 0) > 0) {
		ret = cache_set_durable(cache, true);
		if (ret < 0)
			goto err;
	}
	*out = m;
	return 0;
err:
	for (size_t i = 0; i < m->n_vols; i++)
		mvol_clear(&m->vols[i]);
	free(m->repair_dir);
	free(m);
	return ret;
}

void cml_close(struct cml *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_vols; i++)
		mvol_clear(&m->vols[i]);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->state_lock);
	free(m->repair_dir);
	free(m);
}

int cml_begin(struct cml *m, struct cml_tx *tx)
{
	int ret;

	memset(tx, 0, sizeof(*tx));
	pthread_mutex_lock(&m->lock);
	/* Whatever this transaction logs must survive a machine crash. */
	ret = cache_set_durable(m->cache, true);
	if (ret < 0) {
		pthread_mutex_unlock(&m->lock);
		return ret;
	}
	ret = cache_txn_begin(m->cache, &tx->ct);
	if (ret < 0) {
		pthread_mutex_unlock(&m->lock);
		return ret;
	}
	tx->m = m;
	return 0;
}

int cml_commit(struct cml_tx *tx)
{
	struct cml *m = tx->m;
	MDB_stat st_cml, st_repair;
	bool empty;
	int ret;

	/* Only the client holds CML records and the repair area: while either
	 * has entries the index stays in durable mode (cache_set_durable). */
	empty = mdb_stat(cache_txn_mdb(tx->ct), m->dbi_cml, &st_cml) == 0 &&
		mdb_stat(cache_txn_mdb(tx->ct), m->dbi_repair, &st_repair) == 0 &&
		st_cml.ms_entries == 0 && st_repair.ms_entries == 0;
	ret = cache_txn_commit(tx->ct);
	if (ret < 0 && tx->dirty_mem) {
		log_err("cml", "CML commit failed: %s; reloading", err_str(ret));
		load_locked(m);
	}
	if (ret == 0 && empty)
		cache_set_durable(m->cache, false); /* failure keeps it durable */
	pthread_mutex_unlock(&m->lock);
	return ret;
}

void cml_abort(struct cml_tx *tx)
{
	struct cml *m = tx->m;

	cache_txn_abort(tx->ct);
	if (tx->dirty_mem) {
		/* load needs a txn of its own: the cache lock is free now. */
		load_locked(m);
	}
	pthread_mutex_unlock(&m->lock);
}

static int put_rec(struct cml_tx *tx, uint32_t vol, uint64_t lsn, const struct cml_rec *r)
{
	uint8_t key[CML_KEY_LEN];
	MDB_val k = { CML_KEY_LEN, key }, v;
	struct wr w;
	int ret;

	key_make(vol, lsn, key);
	wr_init(&w);
	ret = cml_rec_pack(&w, r);
	if (ret == 0) {
		v.mv_size = w.len;
		v.mv_data = w.buf;
		ret = db_err(mdb_put(cache_txn_mdb(tx->ct), tx->m->dbi_cml, &k, &v, 0));
	}
	wr_release(&w);
	tx->dirty_mem = true;
	return ret;
}

static int del_rec(struct cml_tx *tx, uint32_t vol, uint64_t lsn)
{
	uint8_t key[CML_KEY_LEN];
	MDB_val k = { CML_KEY_LEN, key };
	int rc;

	key_make(vol, lsn, key);
	rc = mdb_del(cache_txn_mdb(tx->ct), tx->m->dbi_cml, &k, NULL);
	tx->dirty_mem = true;
	return rc == MDB_NOTFOUND ? 0 : db_err(rc);
}

/* The object a record changes (its StoreId moves): fid, and for a rename
 * the replaced target. */
static bool rec_touches(const struct cml_rec *r, const struct fid *f)
{
	if (fid_eq(&r->fid, f))
		return true;
	return r->op == CML_RENAME && !fid_zero(&r->fid2) && fid_eq(&r->fid2, f);
}

static bool rec_names(const struct cml_rec *r, const struct fid *f)
{
	if (rec_touches(r, f))
		return true;
	if (r->op == CML_CREATE || r->op == CML_REMOVE || r->op == CML_RENAME ||
	    r->op == CML_LINK) {
		if (fid_eq(&r->dir, f))
			return true;
	}
	return r->op == CML_RENAME && fid_eq(&r->dir2, f);
}

/* Index of the last record touching f, or -1. */
static ssize_t last_touching(const struct mvol *v, const struct fid *f)
{
	for (size_t i = v->n; i > 0; i--)
		if (rec_touches(v->recs[i - 1].r, f))
			return (ssize_t)(i - 1);
	return -1;
}

/* A record after index i changes directory dir's entries (folding a
 * rename across it could reorder two uses of one name). */
static bool names_after(const struct mvol *v, size_t i, const struct fid *dir)
{
	for (size_t k = i + 1; k < v->n; k++)
		if (rec_names(v->recs[k].r, dir))
			return true;
	return false;
}

static void sattr_fold(struct sattr *a, const struct sattr *b)
{
	if (b->valid & SA_MODE)
		a->mode = b->mode;
	if (b->valid & SA_UID)
		a->uid = b->uid;
	if (b->valid & SA_GID)
		a->gid = b->gid;
	if (b->valid & SA_SIZE)
		a->size = b->size;
	if (b->valid & SA_ATIME)
		a->atime = b->atime;
	if (b->valid & SA_MTIME)
		a->mtime = b->mtime;
	a->valid |= b->valid;
}

int cml_add(struct cml_tx *tx, struct cml_rec *r, struct storeid *obj_sid)
{
	struct cml *m = tx->m;
	uint32_t vol = r->fid.vol;
	struct mvol *v = vol_get(m, vol);
	ssize_t li;
	int ret;

	if (v == NULL)
		return -ENOSPC;
	li = last_touching(v, &r->fid);
	if (li >= 0 && v->recs[li].lsn > v->sent_lsn) {
		struct mrec *p = &v->recs[li];
		struct cml_rec *o = p->r;

		if (r->op == CML_STORE && o->op == CML_STORE) {
			/* Store after store: only the last one, appended anew (so
			 * that it ages from now) on the basis of the first, which
			 * the servers never see. */
			r->ver = o->ver;
			ret = del_rec(tx, vol, p->lsn);
			if (ret < 0)
				return ret;
			mvol_remove(v, (size_t)li);
		} else if (r->op == CML_SETATTR && o->op == CML_SETATTR) {
			sattr_fold(&o->sattr, &r->sattr);
			*obj_sid = o->sid;
			r->sid = o->sid;
			return put_rec(tx, vol, p->lsn, o);
		} else if (r->op == CML_RENAME && o->op == CML_RENAME && fid_eq(&o->fid, &r->fid) &&
			   fid_zero(&o->fid2) && fid_zero(&r->fid2) && o->flags == 0 &&
			   r->flags == 0 && fid_eq(&o->dir2, &r->dir) &&
			   strcmp(o->name2, r->name) == 0 && !names_after(v, (size_t)li, &r->dir) &&
			   !names_after(v, (size_t)li, &r->dir2)) {
			/* Rename chain: first source, last target. */
			o->dir2 = r->dir2;
			snprintf(o->name2, sizeof(o->name2), "%s", r->name2);
			r->sid = o->sid;
			if (fid_eq(&o->dir, &o->dir2) && strcmp(o->name, o->name2) == 0) {
				/* Back where it was: nothing happened. */
				*obj_sid = o->ver.sid;
				ret = del_rec(tx, vol, p->lsn);
				if (ret == 0)
					mvol_remove(v, (size_t)li);
				return ret;
			}
			*obj_sid = o->sid;
			return put_rec(tx, vol, p->lsn, o);
		}
	}
	conn_next_storeid(m->conn, &r->sid);
	if (log_get_level() >= LOG_DEBUG) {
		char f1[FID_STR_LEN], f2[FID_STR_LEN];

		fid_fmt(&r->fid, f1);
		fid_fmt(&r->dir, f2);
		log_debug("cml", "+%llu %s %s dir %s '%s' -> '%s' seq %llu ver %llu/%llu/%u",
			  (unsigned long long)m->next_lsn, cml_op_name(r->op), f1, f2, r->name,
			  r->name2, (unsigned long long)r->sid.seq, (unsigned long long)r->ver.dv,
			  (unsigned long long)r->ver.sid.seq, r->ver.vv.n);
	}
	ret = put_rec(tx, vol, m->next_lsn, r);
	if (ret < 0)
		return ret;
	{
		struct cml_rec *copy = xmalloc(sizeof(*copy));

		*copy = *r;
		mvol_push(v, m->next_lsn++, copy);
	}
	*obj_sid = r->sid;
	return 0;
}

int cml_cancel_object(struct cml_tx *tx, const struct fid *fid)
{
	struct mvol *v = vol_get(tx->m, fid->vol);
	bool created = false;
	int ret;

	if (v == NULL)
		return 0;
	for (size_t i = 0; i < v->n; i++) {
		const struct cml_rec *r = v->recs[i].r;

		if (!rec_names(r, fid))
			continue;
		if (v->recs[i].lsn <= v->sent_lsn)
			return 0;
		if (!fid_eq(&r->fid, fid))
			return 0; /* a directory or a replaced target of another record */
		switch (r->op) {
		case CML_CREATE:
			created = true;
			break;
		case CML_STORE:
		case CML_SETATTR:
			break;
		case CML_RENAME:
			if (!fid_zero(&r->fid2))
				return 0;
			break;
		default:
			return 0;
		}
	}
	if (!created)
		return 0;
	for (size_t i = v->n; i > 0; i--) {
		if (!fid_eq(&v->recs[i - 1].r->fid, fid))
			continue;
		ret = del_rec(tx, fid->vol, v->recs[i - 1].lsn);
		if (ret < 0)
			return ret;
		mvol_remove(v, i - 1);
	}
	return 1;
}

bool cml_last_sid(struct cml *m, const struct fid *fid, bool dir, struct storeid *sid)
{
	struct mvol *v = vol_get(m, fid->vol);
	bool found = false;

	if (v == NULL)
		return false;
	pthread_mutex_lock(&m->lock);
	for (size_t i = v->n; i > 0 && !found; i--) {
		const struct cml_rec *r = v->recs[i - 1].r;

		if (!dir && (r->op == CML_RENAME || r->op == CML_REMOVE))
			continue;
		if (rec_names(r, fid)) {
			*sid = v->recs[i - 1].r->sid;
			found = true;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return found;
}

bool cml_tx_names(struct cml_tx *tx, const struct fid *fid)
{
	struct mvol *v = vol_get(tx->m, fid->vol);

	for (size_t i = 0; v != NULL && i < v->n; i++)
		if (rec_names(v->recs[i].r, fid))
			return true;
	return false;
}

bool cml_names(struct cml *m, const struct fid *fid)
{
	struct mvol *v = vol_get(m, fid->vol);
	bool found = false;

	if (v == NULL)
		return false;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < v->n && !found; i++)
		found = rec_names(v->recs[i].r, fid);
	pthread_mutex_unlock(&m->lock);
	return found;
}

/* Slot of f in an open-addressing table of size mask + 1 (a power of two):
 * its index + 1 in fids, or 0 where it would go. */
static size_t fidset_slot(const uint32_t *tab, size_t mask, const struct fid *fids,
			  const struct fid *f)
{
	uint64_t h = f->vol;

	for (int i = 0; i < 8; i++)
		h = h * 1099511628211ull ^ f->oid[i]; /* oids are random */
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask)
		if (tab[i] == 0 || fid_eq(&fids[tab[i] - 1], f))
			return i;
}

void cml_names_each(struct cml *m, const struct fid *fids, size_t n, bool *named)
{
	size_t size = 16, mask;
	uint32_t *tab;

	memset(named, 0, n * sizeof(*named));
	if (n == 0)
		return;
	while (size < 2 * n)
		size *= 2;
	mask = size - 1;
	tab = xcalloc(size, sizeof(*tab));
	for (size_t i = 0; i < n; i++) {
		size_t s = fidset_slot(tab, mask, fids, &fids[i]);

		if (tab[s] == 0)
			tab[s] = (uint32_t)i + 1;
	}
	pthread_mutex_lock(&m->lock);
	for (size_t vi = 0; vi < CML_VOLS; vi++) {
		const struct mvol *v = &m->vols[vi];

		for (size_t k = 0; k < v->n; k++) {
			const struct cml_rec *r = v->recs[k].r;
			const struct fid *cand[4] = { &r->fid, NULL, NULL, NULL };

			if (r->op == CML_RENAME && !fid_zero(&r->fid2))
				cand[1] = &r->fid2;
			if (r->op == CML_CREATE || r->op == CML_REMOVE || r->op == CML_RENAME ||
			    r->op == CML_LINK)
				cand[2] = &r->dir;
			if (r->op == CML_RENAME)
				cand[3] = &r->dir2;
			for (int c = 0; c < 4; c++) {
				size_t s;

				if (cand[c] == NULL)
					continue;
				s = fidset_slot(tab, mask, fids, cand[c]);
				if (tab[s] != 0)
					named[tab[s] - 1] = true;
			}
		}
	}
	pthread_mutex_unlock(&m->lock);
	/* Duplicates in fids share the first one's answer. */
	for (size_t i = 0; i < n; i++)
		named[i] = named[tab[fidset_slot(tab, mask, fids, &fids[i])] - 1];
	free(tab);
}

void cml_count(struct cml *m, uint32_t vol, uint64_t *n, uint64_t *bytes)
{
	struct mvol *v = vol_get(m, vol);

	*n = *bytes = 0;
	if (v == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	*n = v->n;
	*bytes = v->bytes;
	pthread_mutex_unlock(&m->lock);
}

/* Bytes of r in a REINTEGRATE batch (w is scratch). */
static size_t rec_wire_len(struct wr *w, const struct cml_rec *r)
{
	wr_reset(w);
	return cml_rec_encode(w, r) == 0 ? w->len : CML_REC_WIRE_MAX;
}

int cml_next_batch(struct cml *m, uint32_t vol, struct cml_item *out, size_t max, size_t max_stores,
		   uint64_t min_age_ns)
{
	struct mvol *v = vol_get(m, vol);
	uint64_t now = mono_ns(), client = 0;
	size_t n = 0, stores = 0, bytes = 0;
	struct cml_tx tx;
	struct wr w;
	int ret;

	if (v == NULL)
		return 0;
	wr_init(&w);
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < v->n && n < max; i++) {
		const struct mrec *p = &v->recs[i];
		size_t len;

		if (min_age_ns > 0 && now - p->t_ns < min_age_ns)
			break;
		if (n > 0 && p->r->sid.client != client)
			break;
		if (p->r->op == CML_STORE && stores == max_stores)
			break;
		/* A store of an object created earlier in the batch goes with
		 * it: the server keeps its upload until the create is in. */
		len = rec_wire_len(&w, p->r);
		if (bytes + len > CHUNK_MAX)
			break;
		client = p->r->sid.client;
		stores += p->r->op == CML_STORE;
		bytes += len;
		out[n].lsn = p->lsn;
		out[n].rec = *p->r;
		n++;
	}
	pthread_mutex_unlock(&m->lock);
	wr_release(&w);
	if (n == 0 || out[n - 1].lsn <= v->sent_lsn)
		return (int)n;
	/* Sent from now on: never optimised again (SEMANTICS). */
	ret = cml_begin(m, &tx);
	if (ret < 0)
		return ret;
	{
		uint8_t key[CML_KEY_LEN], val[8];
		MDB_val k = { CML_KEY_LEN, key }, dv = { 8, val };

		key_make(vol, 0, key);
		le_put_u64(val, out[n - 1].lsn);
		ret = db_err(mdb_put(cache_txn_mdb(tx.ct), m->dbi_cml, &k, &dv, 0));
	}
	if (ret < 0) {
		cml_abort(&tx);
		return ret;
	}
	ret = cml_commit(&tx);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&m->lock);
	if (out[n - 1].lsn > v->sent_lsn)
		v->sent_lsn = out[n - 1].lsn;
	pthread_mutex_unlock(&m->lock);
	return (int)n;
}

int cml_repair_path(struct cml *m, uint32_t vol, uint64_t lsn, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%u-%llu", m->repair_dir, vol, (unsigned long long)lsn);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int copy_container(struct cml *m, const struct fid *fid, const char *to)
{
	char from[4096];
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret = cache_container_path(m->cache, fid, from, sizeof(from));

	if (ret == 0)
		ret = fs_read_file(from, CML_STORE_LEN_MAX, (char **)&buf, &len);
	if (ret == 0)
		ret = fs_write_atomic(to, (const char *)buf, len, 0600);
	free(buf);
	return ret;
}

/* lsn is among gone[0..n) (ascending). */
static bool lsn_in(const uint64_t *gone, size_t n, uint64_t lsn)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (gone[mid] == lsn)
			return true;
		if (gone[mid] < lsn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* A record other than lsn and those in gone[0..n_gone) names fid (caller
 * holds lock). */
static bool named_by_other(const struct mvol *v, uint64_t lsn, const struct fid *fid,
			   const uint64_t *gone, size_t n_gone)
{
	for (size_t k = 0; k < v->n; k++)
		if (v->recs[k].lsn != lsn && rec_names(v->recs[k].r, fid) &&
		    !lsn_in(gone, n_gone, v->recs[k].lsn))
			return true;
	return false;
}

/* Removes the records whose lsns are in gone[0..n) (ascending) in one pass
 * (caller holds lock): a batch's records, not one memmove of the log each. */
static void mvol_remove_all(struct mvol *v, const uint64_t *gone, size_t n)
{
	size_t k = 0, to = 0;

	for (size_t i = 0; i < v->n; i++) {
		struct mrec *p = &v->recs[i];

		while (k < n && gone[k] < p->lsn)
			k++;
		if (k < n && gone[k] == p->lsn) {
			if (p->r->op == CML_STORE)
				v->bytes -= p->r->length < v->bytes ? p->r->length : v->bytes;
			free(p->r);
			continue;
		}
		v->recs[to++] = *p;
	}
	v->n = to;
}

int cml_finish(struct cml *m, uint32_t vol, const struct cml_item *items, size_t n,
	       const bool *drop, const int *status, const char (*paths)[1024])
{
	struct mvol *v = vol_get(m, vol);
	uint64_t *gone;
	size_t n_gone = 0;
	struct cml_tx tx;
	int ret;

	if (v == NULL)
		return -ENOENT;
	ret = cml_begin(m, &tx);
	if (ret < 0)
		return ret;
	gone = xcalloc(n > 0 ? n : 1, sizeof(*gone));
	for (size_t i = 0; i < n && ret == 0; i++) {
		if (!drop[i] && status[i] == 0)
			continue;
		if (!drop[i]) {
			uint8_t key[CML_KEY_LEN];
			MDB_val k = { CML_KEY_LEN, key }, val;
			char cpath[4096];
			bool has_data = false;
			struct cache_ent e;
			struct wr w;
			size_t plen = strnlen(paths[i], 1023);

			const struct cml_rec *r = &items[i].rec;
			bool file = cache_txn_get(tx.ct, &r->fid, &e) == 0 && S_ISREG(e.attr.mode);

			/* The data of a store or create is the local version. */
			if (file && (r->op == CML_STORE || r->op == CML_CREATE) &&
			    (e.has_data || e.dirty) &&
			    cml_repair_path(m, vol, items[i].lsn, cpath, sizeof(cpath)) == 0)
				has_data = copy_container(m, &r->fid, cpath) == 0;
			/* The servers' version is what the file shows now (unless
			 * later records still read the container). */
			if (file && !named_by_other(v, items[i].lsn, &r->fid, gone, n_gone))
				ret = cache_txn_del(tx.ct, &r->fid);
			if (ret < 0)
				break;
			wr_init(&w);
			wr_u32(&w, (uint32_t)status[i]);
			wr_u16(&w, (uint16_t)plen);
			wr_bytes(&w, paths[i], plen);
			wr_u8(&w, has_data);
			cml_rec_pack(&w, &items[i].rec);
			key_make(vol, items[i].lsn, key);
			val.mv_size = w.len;
			val.mv_data = w.buf;
			ret = db_err(mdb_put(cache_txn_mdb(tx.ct), m->dbi_repair, &k, &val, 0));
			wr_release(&w);
			if (ret < 0)
				break;
		}
		ret = del_rec(&tx, vol, items[i].lsn);
		if (ret == 0) {
			/* Kept sorted (items come in log order: no move). */
			size_t k = n_gone++;

			for (; k > 0 && gone[k - 1] > items[i].lsn; k--)
				gone[k] = gone[k - 1];
			gone[k] = items[i].lsn;
		}
	}
	if (ret < 0) {
		free(gone);
		cml_abort(&tx);
		return ret;
	}
	mvol_remove_all(v, gone, n_gone);
	free(gone);
	return cml_commit(&tx);
}

size_t cml_conflicts(struct cml *m, struct cml_conflict *out, size_t max)
{
	struct cache_txn *ct;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	size_t n = 0;

	pthread_mutex_lock(&m->lock);
	if (cache_txn_begin(m->cache, &ct) < 0) {
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	if (mdb_cursor_open(cache_txn_mdb(ct), m->dbi_repair, &cur) == 0) {
		while (mdb_cursor_get(cur, &k, &v, op) == 0) {
			struct rd r;
			struct cml_conflict c;
			uint16_t plen;
			const uint8_t *p;

			op = MDB_NEXT;
			if (k.mv_size != CML_KEY_LEN)
				continue;
			memset(&c, 0, sizeof(c));
			c.vol = be_get_u32(k.mv_data);
			c.lsn = be_get_u64((uint8_t *)k.mv_data + 4);
			rd_init(&r, v.mv_data, v.mv_size);
			c.status = (int)rd_u32(&r);
			plen = rd_u16(&r);
			p = rd_bytes(&r, plen);
			if (p == NULL || plen >= sizeof(c.path))
				continue;
			memcpy(c.path, p, plen);
			c.has_data = rd_u8(&r);
			if (r.err || cml_rec_unpack(r.buf + r.pos, r.len - r.pos, &c.rec) < 0)
				continue;
			if (n < max)
				out[n] = c;
			n++;
		}
		mdb_cursor_close(cur);
	}
	cache_txn_abort(ct);
	pthread_mutex_unlock(&m->lock);
	return n;
}

int cml_repair_drop(struct cml *m, uint32_t vol, uint64_t lsn)
{
	uint8_t key[CML_KEY_LEN];
	MDB_val k = { CML_KEY_LEN, key };
	char path[4096];
	struct cml_tx tx;
	int ret, rc;

	ret = cml_begin(m, &tx);
	if (ret < 0)
		return ret;
	key_make(vol, lsn, key);
	rc = mdb_del(cache_txn_mdb(tx.ct), m->dbi_repair, &k, NULL);
	if (rc != 0) {
		cml_abort(&tx);
		return db_err(rc);
	}
	ret = cml_commit(&tx);
	if (ret == 0 && cml_repair_path(m, vol, lsn, path, sizeof(path)) == 0)
		unlink(path);
	return ret;
}
