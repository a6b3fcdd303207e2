/*
 * hoard.c - encore-client's hoard database and hoard walks.
 * Owns:    LMDB table "hoard" of the cache env, the hoard thread, the
 *          progress and result of walks, and one reference on every inode
 *          the last walk hoarded.
 * Borrows: struct client: cache (transactions, hoard priorities), conn
 *          (volume states), itab and fsops_walk_* (resolution and fetch).
 * Locking: hoard.lock protects the fields marked so; it is never held
 *          across a call into fsops, cache or conn.
 * Format:  key = path relative to the realm root (no NUL, "" = the root);
 *          value = db header (HOARD_MAGIC, HOARD_REC_VERSION), u32 priority,
 *          u32 flags, u32 uid (docs/ondisk.md "Cache").
 */
#include "client/hoard.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "client/cache.h"
#include "client/cml.h"
#include "client/conn.h"
#include "client/cstate.h"
#include "client/fsops.h"
#include "client/inode.h"
#include "common/db.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/thread.h"
#include "common/xalloc.h"

#define HOARD_MAGIC	  0x31484345u /* "ECH1" */
#define HOARD_REC_VERSION 1
#define HOARD_TABLE	  "hoard"
/* The hoard thread looks at the volumes' AVSGs this often, to walk after a
 * volume comes back. */
#define HOARD_POLL_MS 1000
/* Volumes whose AVSG the thread tracks (as conn.h's CONN_VOLS_MAX). */
#define HOARD_VOLS_MAX 64

/* Counters of one walk. */
struct walk_stats {
	uint64_t checked;	/* objects looked at */
	uint64_t fetched;	/* files fetched */
	uint64_t fetched_bytes; /* their bytes */
	uint64_t listings;	/* directory listings and symlink targets loaded */
	uint64_t missing;	/* hoarded paths that do not exist */
	uint64_t errors;	/* objects that could not be checked or fetched */
	uint64_t entries;	/* hoard entries walked */
	uint64_t ms;		/* duration */
	bool aborted;		/* stopped early: servers unreachable, or shutdown */
};

struct hoard {
	struct client *cl;
	unsigned interval_s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;		  /* wakes the thread (want, stop) */
	pthread_cond_t done_cond;	  /* a walk finished */
	bool stop;			  /* protected by lock */
	bool want;			  /* protected by lock: a walk is asked for */
	bool revalidate;		  /* protected by lock: a volume reconnected */
	bool running;			  /* protected by lock */
	uint64_t started;		  /* protected by lock: walks started */
	uint64_t done;			  /* protected by lock: walks finished */
	struct walk_stats cur;		  /* protected by lock: the running walk's counters */
	struct walk_stats last;		  /* protected by lock: the last finished walk's */
	struct inode **keep;		  /* protected by lock: references kept */
	size_t n_keep;			  /* protected by lock */
	uint32_t vol_ids[HOARD_VOLS_MAX]; /* hoard thread only: volumes seen */
	bool vol_up[HOARD_VOLS_MAX];	  /* hoard thread only: connected when last seen */
	size_t n_vols;
};

/* ---------- records ---------- */

static void rec_encode(struct wr *w, const struct hoard_ent *e)
{
	db_hdr_put(w, HOARD_MAGIC, HOARD_REC_VERSION);
	wr_u32(w, e->pri);
	wr_u32(w, e->flags);
	wr_u32(w, e->uid);
}

int hoard_rec_decode(const uint8_t *buf, size_t len, struct hoard_ent *e)
{
	struct rd r;

	rd_init(&r, buf, len);
	if (db_hdr_check(&r, HOARD_MAGIC, HOARD_REC_VERSION, "hoard entry") < 0)
		return -EIO;
	e->pri = rd_u32(&r);
	e->flags = rd_u32(&r);
	e->uid = rd_u32(&r);
	if (!rd_done(&r) || e->pri == 0 || e->pri > HOARD_PRI_MAX ||
	    (e->flags & ~(uint32_t)(HOARD_CHILDREN | HOARD_DESCENDANTS)) != 0) {
		log_err("hoard", "hoard entry malformed");
		return -EIO;
	}
	return 0;
}

int hoard_path_norm(const char *realm, const char *in, char *out, size_t len)
{
	size_t o = 0, rl = strlen(realm);
	const char *p = in;
	bool first = true;

	if (len == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';
	while (*p != '\0') {
		const char *s;
		size_t n;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		s = p;
		while (*p != '\0' && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (n == 1 && s[0] == '.')
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return -EINVAL;
		if (first) {
			/* The first component names the realm. */
			if (n != rl || memcmp(s, realm, n) != 0)
				return -EINVAL;
			first = false;
			continue;
		}
		if (n > NAME_MAX_LEN)
			return -ENAMETOOLONG;
		if (o + (o > 0) + n + 1 > len)
			return -ENAMETOOLONG;
		if (o > 0)
			out[o++] = '/';
		memcpy(out + o, s, n);
		o += n;
		out[o] = '\0';
	}
	return first ? -EINVAL : 0;
}

/* ---------- table ---------- */

static int db_put(struct hoard *h, const struct hoard_ent *e)
{
	struct cache_txn *t;
	unsigned int dbi;
	MDB_val k = { strlen(e->path), (void *)e->path }, v;
	struct wr w;
	int ret;

	ret = cache_txn_begin(h->cl->cache, &t);
	if (ret < 0)
		return ret;
	ret = cache_txn_table(t, HOARD_TABLE, &dbi);
	if (ret < 0) {
		cache_txn_abort(t);
		return ret;
	}
	wr_init(&w);
	rec_encode(&w, e);
	v.mv_size = w.len;
	v.mv_data = w.buf;
	/* LMDB keys cannot be empty: the realm root is stored as "/". */
	if (k.mv_size == 0) {
		k.mv_size = 1;
		k.mv_data = (void *)"/";
	}
	ret = db_err(mdb_put(cache_txn_mdb(t), dbi, &k, &v, 0));
	wr_release(&w);
	if (ret < 0) {
		cache_txn_abort(t);
		return ret;
	}
	return cache_txn_commit(t);
}

static int db_del(struct hoard *h, const char *path, uid_t uid)
{
	struct cache_txn *t;
	unsigned int dbi;
	MDB_val k = { strlen(path), (void *)path }, v;
	struct hoard_ent e;
	int ret;

	if (k.mv_size == 0) {
		k.mv_size = 1;
		k.mv_data = (void *)"/";
	}
	ret = cache_txn_begin(h->cl->cache, &t);
	if (ret < 0)
		return ret;
	ret = cache_txn_table(t, HOARD_TABLE, &dbi);
	if (ret == 0)
		ret = db_err(mdb_get(cache_txn_mdb(t), dbi, &k, &v));
	if (ret == 0)
		ret = hoard_rec_decode(v.mv_data, v.mv_size, &e);
	if (ret == 0 && uid != 0 && e.uid != uid)
		ret = -EPERM; /* only its owner or root removes an entry */
	if (ret == 0)
		ret = db_err(mdb_del(cache_txn_mdb(t), dbi, &k, NULL));
	if (ret < 0) {
		cache_txn_abort(t);
		return ret;
	}
	return cache_txn_commit(t);
}

static int ent_cmp_pri(const void *a, const void *b)
{
	const struct hoard_ent *x = a, *y = b;

	if (x->pri != y->pri)
		return x->pri > y->pri ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Reads every entry, highest priority first. *out is owned by the caller. */
static int db_list(struct hoard *h, struct hoard_ent **out, size_t *n_out)
{
	struct cache_txn *t;
	unsigned int dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	struct hoard_ent *ents = NULL;
	size_t n = 0, cap = 0;
	int ret, rc;

	*out = NULL;
	*n_out = 0;
	ret = cache_txn_begin(h->cl->cache, &t);
	if (ret < 0)
		return ret;
	ret = cache_txn_table(t, HOARD_TABLE, &dbi);
	if (ret < 0)
		goto out;
	rc = mdb_cursor_open(cache_txn_mdb(t), dbi, &cur);
	if (rc != 0) {
		ret = db_err(rc);
		goto out;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct hoard_ent e;

		op = MDB_NEXT;
		memset(&e, 0, sizeof(e));
		if (k.mv_size == 0 || k.mv_size > HOARD_PATH_MAX ||
		    hoard_rec_decode(v.mv_data, v.mv_size, &e) < 0)
			continue; /* logged by the decoder; skip, never guess */
		if (!(k.mv_size == 1 && ((const char *)k.mv_data)[0] == '/'))
			memcpy(e.path, k.mv_data, k.mv_size);
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			ents = xrealloc(ents, cap * sizeof(*ents));
		}
		ents[n++] = e;
	}
	mdb_cursor_close(cur);
	ret = rc == MDB_NOTFOUND ? 0 : db_err(rc);
out:
	/* Read only, but the table may have just been created: keep it. */
	if (ret == 0)
		ret = cache_txn_commit(t);
	else
		cache_txn_abort(t);
	if (ret < 0) {
		free(ents);
		return ret;
	}
	if (n > 1)
		qsort(ents, n, sizeof(*ents), ent_cmp_pri);
	*out = ents;
	*n_out = n;
	return 0;
}

/* ---------- walk ---------- */

/* fid -> priority stamped by this walk (open addressing, grows at 1/2). */
struct pri_slot {
	struct fid fid;
	uint32_t pri; /* 0 = empty */
};

struct walk {
	struct hoard *h;
	struct cred cr;
	struct pri_slot *slots;
	size_t cap, n;
	struct inode **keep; /* owned references */
	size_t n_keep, cap_keep;
	uint64_t visited;
};

struct qent {
	struct inode *in; /* owned reference */
	uint32_t depth;	  /* levels below it that belong to the hoard */
};

static size_t fid_hash(const struct fid *f)
{
	uint64_t x = f->vol * 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < OID_LEN; i++)
		x = (x ^ f->oid[i]) * 1099511628211ull;
	return (size_t)x;
}

static struct pri_slot *slot_find(struct pri_slot *slots, size_t cap, const struct fid *f)
{
	size_t i = fid_hash(f) & (cap - 1);

	while (slots[i].pri != 0 && !fid_eq(&slots[i].fid, f))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

/* Records fid at pri; true if pri is higher than what this walk gave it. */
static bool pri_set(struct walk *w, const struct fid *f, uint32_t pri)
{
	struct pri_slot *s;

	if (2 * (w->n + 1) > w->cap) {
		size_t ncap = w->cap ? 2 * w->cap : 256;
		struct pri_slot *ns = xcalloc(ncap, sizeof(*ns));

		for (size_t i = 0; i < w->cap; i++) {
			if (w->slots[i].pri != 0)
				*slot_find(ns, ncap, &w->slots[i].fid) = w->slots[i];
		}
		free(w->slots);
		w->slots = ns;
		w->cap = ncap;
	}
	s = slot_find(w->slots, w->cap, f);
	if (s->pri >= pri)
		return false;
	if (s->pri == 0)
		w->n++;
	s->fid = *f;
	s->pri = pri;
	return true;
}

static uint32_t pri_get(const struct walk *w, const struct fid *f)
{
	return w->cap ? slot_find(w->slots, w->cap, f)->pri : 0;
}

static void stat_add(struct hoard *h, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&h->lock);
	*field += n;
	pthread_mutex_unlock(&h->lock);
}

#define STAT_ADD(h, name, n) stat_add((h), &(h)->cur.name, (n))

static bool stopping(struct hoard *h)
{
	bool s;

	pthread_mutex_lock(&h->lock);
	s = h->stop;
	pthread_mutex_unlock(&h->lock);
	return s;
}

/* Errors that mean the servers are out of reach: the walk stops rather
 * than wait on each remaining object. */
static bool unreachable(int ret)
{
	return ret == -ENOTCONN || ret == -ETIMEDOUT || ret == -ECONNREFUSED ||
	       ret == -EHOSTUNREACH || ret == -ECONNRESET || ret == -EPIPE;
}

static void keep_ref(struct walk *w, struct inode *in)
{
	if (w->n_keep == w->cap_keep) {
		w->cap_keep = w->cap_keep ? 2 * w->cap_keep : 64;
		w->keep = xrealloc(w->keep, w->cap_keep * sizeof(*w->keep));
	}
	inode_ref(w->h->cl->itab, in);
	w->keep[w->n_keep++] = in;
}

/* A child of dir from its listing: a new reference, with its name recorded. */
static struct inode *child_get(struct walk *w, struct inode *dir, const struct dirent_w *d)
{
	struct inode *in = inode_get_or_create(w->h->cl->itab, &d->fid);

	pthread_mutex_lock(&in->lock);
	if (in->name == NULL)
		inode_set_name_locked(in, dir->ino, d->name);
	pthread_mutex_unlock(&in->lock);
	return in;
}

/* Visits one object of the hoard: fetches a file, loads a directory's
 * listing and queues its entries while depth allows. Returns 0, or an
 * error that stops the walk. */
static int visit(struct walk *w, const struct qent *qp, uint32_t pri, struct qent **queue,
		 size_t *qn, size_t *qcap)
{
	struct hoard *h = w->h;
	struct client *cl = h->cl;
	struct attr a;
	struct dirent_w *ents = NULL;
	size_t n = 0;
	uint64_t bytes;
	bool loaded;
	int ret;
	/* A copy: growing the queue below moves *qp. */
	const struct qent qc = *qp, *q = &qc;

	STAT_ADD(h, checked, 1);
	w->visited++;
	keep_ref(w, q->in);
	ret = fsops_walk_attr(cl, &w->cr, q->in, &a);
	if (ret < 0)
		goto fail;
	if (S_ISREG(a.mode)) {
		ret = fsops_walk_fetch(cl, &w->cr, q->in, &bytes);
		if (ret < 0)
			goto fail;
		if (ret == 1) {
			STAT_ADD(h, fetched, 1);
			STAT_ADD(h, fetched_bytes, bytes);
		}
		if (pri_set(w, &q->in->fid, pri))
			cache_set_hoard(cl->cache, &q->in->fid, pri);
		return 0;
	}
	if (S_ISLNK(a.mode)) {
		ret = fsops_walk_readlink(cl, &w->cr, q->in, &loaded);
		if (ret < 0)
			goto fail;
		if (loaded)
			STAT_ADD(h, listings, 1);
		return 0;
	}
	if (!S_ISDIR(a.mode))
		return 0; /* devices and fifos: their attributes are all there is */
	ret = fsops_walk_listing(cl, &w->cr, q->in, &ents, &n, &loaded);
	if (ret < 0)
		goto fail;
	if (loaded)
		STAT_ADD(h, listings, 1);
	for (size_t i = 0; q->depth > 0 && i < n; i++) {
		if (w->visited + *qn >= HOARD_WALK_MAX_OBJECTS) {
			log_warn("hoard", "hoard walk stops at %d objects", HOARD_WALK_MAX_OBJECTS);
			break;
		}
		if (*qn == *qcap) {
			*qcap = *qcap ? 2 * *qcap : 64;
			*queue = xrealloc(*queue, *qcap * sizeof(**queue));
		}
		(*queue)[*qn].in = child_get(w, q->in, &ents[i]);
		(*queue)[*qn].depth = q->depth == UINT32_MAX ? UINT32_MAX : q->depth - 1;
		(*qn)++;
	}
	free(ents);
	return 0;
fail:
	free(ents);
	if (unreachable(ret))
		return ret;
	if (ret == -ENOENT || ret == -ESTALE)
		STAT_ADD(h, missing, 1);
	else
		STAT_ADD(h, errors, 1);
	log_debug("hoard", "hoard walk: inode %llu: %s", (unsigned long long)q->in->ino,
		  err_str(ret));
	return 0;
}

static void cred_for(uint32_t uid, struct cred *cr)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	memset(cr, 0, sizeof(*cr));
	cr->uid = uid;
	cr->gid = uid;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		cr->gid = pw.pw_gid;
}

/* Walks one hoard entry: resolves its path from the realm root, then
 * visits the object and (per flags) what is below it, breadth first. */
static int walk_entry(struct walk *w, const struct hoard_ent *e)
{
	struct hoard *h = w->h;
	struct client *cl = h->cl;
	struct inode *cur = NULL;
	struct qent *queue = NULL;
	size_t qn = 0, qcap = 0, head = 0;
	const char *p = e->path;
	int ret;

	cred_for(e->uid, &w->cr);
	ret = fsops_walk_root(cl, &w->cr, &cur);
	if (ret < 0)
		goto fail;
	while (*p != '\0') {
		char name[NAME_MAX_LEN + 1];
		const char *s = p;
		struct dirent_w *ents = NULL, *d = NULL;
		size_t n, len;
		bool loaded;

		while (*p != '\0' && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (*p == '/')
			p++;
		if (len == 0 || len > NAME_MAX_LEN)
			continue;
		memcpy(name, s, len);
		name[len] = '\0';
		STAT_ADD(h, checked, 1);
		keep_ref(w, cur);
		ret = fsops_walk_listing(cl, &w->cr, cur, &ents, &n, &loaded);
		if (ret == -ENOTDIR || ret == -EINVAL)
			ret = -ENOENT;
		if (ret < 0)
			goto fail;
		if (loaded)
			STAT_ADD(h, listings, 1);
		for (size_t i = 0; i < n && d == NULL; i++) {
			if (strcmp(ents[i].name, name) == 0)
				d = &ents[i];
		}
		if (d == NULL) {
			free(ents);
			ret = -ENOENT;
			goto fail;
		}
		{
			struct inode *next = child_get(w, cur, d);

			inode_put(cl->itab, cur);
			cur = next;
		}
		free(ents);
	}
	qcap = 64;
	queue = xmalloc(qcap * sizeof(*queue));
	queue[qn].in = cur;
	queue[qn].depth = e->flags & HOARD_DESCENDANTS ? UINT32_MAX
			  : e->flags & HOARD_CHILDREN  ? 1
						       : 0;
	qn++;
	cur = NULL;
	ret = 0;
	while (head < qn && ret == 0) {
		if (stopping(h)) {
			ret = -ECANCELED;
			break;
		}
		ret = visit(w, &queue[head], e->pri, &queue, &qn, &qcap);
		inode_put(cl->itab, queue[head].in);
		head++;
	}
	for (; head < qn; head++)
		inode_put(cl->itab, queue[head].in);
	free(queue);
	return ret;
fail:
	inode_put(cl->itab, cur);
	if (unreachable(ret))
		return ret;
	if (ret == -ENOENT)
		STAT_ADD(h, missing, 1);
	else
		STAT_ADD(h, errors, 1);
	log_debug("hoard", "hoard walk: '%s': %s", e->path, err_str(ret));
	return 0;
}

/* cache_hoard_fn: clears the priority of objects the walk did not hoard. */
static int clear_cb(void *arg, const struct fid *fid)
{
	struct walk *w = arg;

	if (pri_get(w, fid) == 0)
		cache_set_hoard(w->h->cl->cache, fid, 0);
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void run_walk(struct hoard *h)
{
	struct client *cl = h->cl;
	struct walk w;
	struct hoard_ent *ents;
	size_t n;
	uint64_t t0 = mono_ms();
	int ret;

	memset(&w, 0, sizeof(w));
	w.h = h;
	ret = db_list(h, &ents, &n);
	if (ret < 0) {
		log_warn("hoard", "cannot read the hoard database: %s", err_str(ret));
		STAT_ADD(h, errors, 1);
		return;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		STAT_ADD(h, entries, 1);
		ret = walk_entry(&w, &ents[i]);
	}
	free(ents);
	pthread_mutex_lock(&h->lock);
	h->cur.aborted = ret < 0;
	if (ret < 0 && ret != -ECANCELED)
		h->cur.errors++;
	h->cur.ms = mono_ms() - t0;
	pthread_mutex_unlock(&h->lock);
	if (ret == 0) {
		/* Complete: what the hoard no longer names loses its priority. */
		cache_hoard_foreach(cl->cache, clear_cb, &w);
	} else if (ret != -ECANCELED) {
		log_info("hoard", "hoard walk stopped: %s", err_str(ret));
	}
	/* The new references replace the last walk's (a stopped walk adds). */
	if (ret == 0) {
		struct inode **old;
		size_t n_old;

		pthread_mutex_lock(&h->lock);
		old = h->keep;
		n_old = h->n_keep;
		h->keep = w.keep;
		h->n_keep = w.n_keep;
		pthread_mutex_unlock(&h->lock);
		for (size_t i = 0; i < n_old; i++)
			inode_put(cl->itab, old[i]);
		free(old);
	} else {
		for (size_t i = 0; i < w.n_keep; i++)
			inode_put(cl->itab, w.keep[i]);
		free(w.keep);
	}
	free(w.slots);
}

/* True if the volume is connected: its CML reintegrated (or, without
 * disconnected operation, some VSG member up). */
static bool vol_connected(struct hoard *h, const struct conn_vol_info *v)
{
	if (h->cl->cml != NULL)
		return cml_state(h->cl->cml, v->id) == VS_CONNECTED && v->avsg.n > 0;
	return v->avsg.n > 0;
}

/* True if a volume became connected again since the last call (after a
 * disconnection and its reintegration): a walk refreshes what it hoards. */
static bool volume_came_back(struct hoard *h)
{
	struct conn_vol_info vi[HOARD_VOLS_MAX];
	size_t nv = conn_volumes(h->cl->conn, vi, HOARD_VOLS_MAX);
	bool back = false;

	for (size_t i = 0; i < nv; i++) {
		bool up = vol_connected(h, &vi[i]);
		size_t k;

		for (k = 0; k < h->n_vols && h->vol_ids[k] != vi[i].id; k++)
			;
		if (k == h->n_vols) {
			if (h->n_vols == HOARD_VOLS_MAX)
				continue;
			h->n_vols++;
			h->vol_ids[k] = vi[i].id;
			h->vol_up[k] = up;
			continue;
		}
		if (!h->vol_up[k] && up)
			back = true;
		h->vol_up[k] = up;
	}
	return back;
}

static void *hoard_main(void *arg)
{
	struct hoard *h = arg;
	uint64_t next = h->interval_s ? mono_ms() + (uint64_t)h->interval_s * 1000 : UINT64_MAX;
	uint64_t ckpt = mono_ms() + CSTATE_CHECKPOINT_MS;

	for (;;) {
		struct timespec ts;
		bool back, revalidate;

		pthread_mutex_lock(&h->lock);
		if (!h->want && !h->stop) {
			deadline_in_ms(&ts, CLOCK_MONOTONIC, HOARD_POLL_MS);
			pthread_cond_timedwait(&h->cond, &h->lock, &ts);
		}
		if (h->stop) {
			pthread_mutex_unlock(&h->lock);
			break;
		}
		pthread_mutex_unlock(&h->lock);
		back = volume_came_back(h);
		if (mono_ms() >= ckpt && h->cl->cstate != NULL) {
			int r = cstate_checkpoint(h->cl->cstate);

			if (r < 0)
				log_warn("hoard", "cannot save the client state: %s", err_str(r));
			ckpt = mono_ms() + CSTATE_CHECKPOINT_MS;
		}
		pthread_mutex_lock(&h->lock);
		if (back || mono_ms() >= next)
			h->want = true;
		if (!h->want) {
			pthread_mutex_unlock(&h->lock);
			continue;
		}
		revalidate = h->revalidate || back;
		h->revalidate = false;
		h->want = false;
		h->running = true;
		h->started++;
		memset(&h->cur, 0, sizeof(h->cur));
		pthread_mutex_unlock(&h->lock);
		if (revalidate) {
			/* What we cached before the disconnection is checked again,
			 * even before the notifier dropped its callbacks. */
			log_info("hoard", "a volume is connected again: hoard walk");
			fsops_drop_callbacks(h->cl);
		}
		run_walk(h);
		pthread_mutex_lock(&h->lock);
		h->running = false;
		h->done = h->started;
		h->last = h->cur;
		pthread_cond_broadcast(&h->done_cond);
		pthread_mutex_unlock(&h->lock);
		if (h->interval_s)
			next = mono_ms() + (uint64_t)h->interval_s * 1000;
	}
	return NULL;
}

int hoard_start(struct client *cl, unsigned interval_s, struct hoard **out)
{
	struct hoard *h = xcalloc(1, sizeof(*h));
	pthread_condattr_t ca;
	int ret;

	*out = NULL;
	h->cl = cl;
	h->interval_s = interval_s;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_cond_init(&h->done_cond, &ca);
	pthread_condattr_destroy(&ca);
	ret = pthread_create(&h->thread, NULL, hoard_main, h);
	if (ret != 0) {
		pthread_cond_destroy(&h->cond);
		pthread_cond_destroy(&h->done_cond);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return -ret;
	}
	*out = h;
	return 0;
}

void hoard_stop(struct hoard *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_broadcast(&h->cond);
	pthread_cond_broadcast(&h->done_cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	for (size_t i = 0; i < h->n_keep; i++)
		inode_put(h->cl->itab, h->keep[i]);
	free(h->keep);
	pthread_cond_destroy(&h->cond);
	pthread_cond_destroy(&h->done_cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void hoard_adopt(struct hoard *h, struct inode **ins, size_t n)
{
	if (h == NULL || n == 0) {
		free(ins);
		return;
	}
	pthread_mutex_lock(&h->lock);
	h->keep = xrealloc(h->keep, (h->n_keep + n) * sizeof(*h->keep));
	memcpy(h->keep + h->n_keep, ins, n * sizeof(*ins));
	h->n_keep += n;
	pthread_mutex_unlock(&h->lock);
	free(ins);
}

void hoard_kick(struct hoard *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	h->want = true;
	h->revalidate = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* ---------- control ops ---------- */

static const char *flags_name(uint32_t flags)
{
	if (flags & HOARD_DESCENDANTS)
		return "descendants";
	if (flags & HOARD_CHILDREN)
		return "children";
	return "none";
}

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static json_object *ent_json(struct hoard *h, const struct hoard_ent *e)
{
	json_object *o = json_object_new_object();
	char abs[PATH_MAX + HOARD_PATH_MAX + 300];

	snprintf(abs, sizeof(abs), "%s/%s%s%s", h->cl->mount, h->cl->realm,
		 e->path[0] != '\0' ? "/" : "", e->path);
	json_object_object_add(o, "path", json_object_new_string(abs));
	json_object_object_add(o, "rel", json_object_new_string(e->path));
	add_u64(o, "priority", e->pri);
	json_object_object_add(o, "flags", json_object_new_string(flags_name(e->flags)));
	add_u64(o, "uid", e->uid);
	return o;
}

static json_object *stats_json(const struct walk_stats *s)
{
	json_object *o = json_object_new_object();

	add_u64(o, "entries", s->entries);
	add_u64(o, "checked", s->checked);
	add_u64(o, "fetched", s->fetched);
	add_u64(o, "fetched_bytes", s->fetched_bytes);
	add_u64(o, "listings", s->listings);
	add_u64(o, "missing", s->missing);
	add_u64(o, "errors", s->errors);
	add_u64(o, "ms", s->ms);
	json_object_object_add(o, "aborted", json_object_new_boolean(s->aborted));
	return o;
}

/* "path" of a request: relative to the mount (REALM/...), made relative to
 * the realm root. */
static int req_path(struct hoard *h, json_object *req, char *out, size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(req, "path", &v) ||
	    !json_object_is_type(v, json_type_string))
		return -EINVAL;
	return hoard_path_norm(h->cl->realm, json_object_get_string(v), out, len);
}

static json_object *op_add(struct hoard *h, json_object *req, uid_t uid, int *err)
{
	struct hoard_ent e;
	json_object *v;

	memset(&e, 0, sizeof(e));
	*err = req_path(h, req, e.path, sizeof(e.path));
	if (*err < 0)
		return NULL;
	e.pri = HOARD_PRI_DEFAULT;
	if (json_object_object_get_ex(req, "priority", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		int64_t p = json_object_get_int64(v);

		if (!json_object_is_type(v, json_type_int) || p < 1 || p > HOARD_PRI_MAX) {
			*err = -EINVAL;
			return NULL;
		}
		e.pri = (uint32_t)p;
	}
	if (json_object_object_get_ex(req, "flags", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		const char *f = json_object_get_string(v);

		if (!json_object_is_type(v, json_type_string)) {
			*err = -EINVAL;
			return NULL;
		}
		if (strcmp(f, "children") == 0)
			e.flags = HOARD_CHILDREN;
		else if (strcmp(f, "descendants") == 0)
			e.flags = HOARD_DESCENDANTS;
		else if (strcmp(f, "none") != 0 && f[0] != '\0') {
			*err = -EINVAL;
			return NULL;
		}
	}
	e.uid = (uint32_t)uid;
	*err = db_put(h, &e);
	if (*err < 0)
		return NULL;
	return ent_json(h, &e);
}

static json_object *op_list(struct hoard *h, int *err)
{
	struct hoard_ent *ents;
	size_t n;
	json_object *r, *arr;

	*err = db_list(h, &ents, &n);
	if (*err < 0)
		return NULL;
	r = json_object_new_object();
	arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, ent_json(h, &ents[i]));
	json_object_object_add(r, "entries", arr);
	free(ents);
	return r;
}

/* Status of walks: the running one's counters (or the last one's). Caller
 * holds h->lock. */
static json_object *status_json_locked(struct hoard *h)
{
	json_object *r = stats_json(h->running ? &h->cur : &h->last);

	json_object_object_add(r, "running", json_object_new_boolean(h->running));
	add_u64(r, "walk", h->started);
	add_u64(r, "done", h->done);
	add_u64(r, "interval", h->interval_s);
	json_object_object_add(r, "last", stats_json(&h->last));
	return r;
}

static json_object *op_walk(struct hoard *h, json_object *req, int *err)
{
	json_object *v, *r;
	bool wait = true;
	uint64_t target;

	if (json_object_object_get_ex(req, "wait", &v) && json_object_is_type(v, json_type_boolean))
		wait = json_object_get_boolean(v);
	pthread_mutex_lock(&h->lock);
	target = h->started + 1;
	h->want = true;
	pthread_cond_broadcast(&h->cond);
	while (wait && h->done < target && !h->stop)
		pthread_cond_wait(&h->done_cond, &h->lock);
	if (h->stop && wait && h->done < target) {
		pthread_mutex_unlock(&h->lock);
		*err = -ECANCELED;
		return NULL;
	}
	r = wait ? stats_json(&h->last) : status_json_locked(h);
	add_u64(r, "walk", target);
	pthread_mutex_unlock(&h->lock);
	*err = 0;
	return r;
}

json_object *hoard_ctl(struct hoard *h, const char *op, json_object *req, uid_t uid, int *err)
{
	json_object *r;
	char path[HOARD_PATH_MAX + 1];

	*err = 0;
	if (h == NULL) {
		*err = -ENOTSUP;
		return NULL;
	}
	if (strcmp(op, "hoard-add") == 0)
		return op_add(h, req, uid, err);
	if (strcmp(op, "hoard-list") == 0)
		return op_list(h, err);
	if (strcmp(op, "hoard-remove") == 0) {
		*err = req_path(h, req, path, sizeof(path));
		if (*err == 0)
			*err = db_del(h, path, uid);
		if (*err < 0)
			return NULL;
		r = json_object_new_object();
		json_object_object_add(r, "rel", json_object_new_string(path));
		return r;
	}
	if (strcmp(op, "hoard-walk") == 0)
		return op_walk(h, req, err);
	if (strcmp(op, "hoard-status") == 0) {
		pthread_mutex_lock(&h->lock);
		r = status_json_locked(h);
		pthread_mutex_unlock(&h->lock);
		return r;
	}
	*err = -EINVAL;
	return NULL;
}
