/*
 * emul.c - emulation of updates while a volume is disconnected or weakly
 *          connected (docs/disconnected.md "Emulation").
 * Owns:    nothing; changes inode state, the cache and the CML.
 * Borrows: cl->itab, cl->cache, cl->cml.
 * Locking: inode locks are taken one at a time and never while the CML
 *          transaction (cml lock + cache lock) is open: the checks run
 *          first, then the transaction, then the in-memory changes.
 */
#include "client/emul.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/cache.h"
#include "client/cstate.h"
#include "client/cml.h"
#include "client/conn.h"
#include "client/inode.h"
#include "client/reint.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/xalloc.h"

static void now_wtime(struct wtime *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	t->sec = ts.tv_sec;
	t->nsec = (uint32_t)ts.tv_nsec;
}

/* The state of vol; a volume disconnected because its AVSG was empty
 * leaves that state as soon as a probe brought a member back, without
 * waiting for the reintegration thread's next look. */
static enum vol_state vol_state(struct client *cl, uint32_t vol)
{
	enum vol_state st = cml_state(cl->cml, vol);
	struct conn_vol_info vi[16];
	uint64_t n, bytes;
	size_t nv;

	if (st != VS_DISCONNECTED || cml_forced(cl->cml, vol) != VF_NONE)
		return st;
	nv = conn_volumes(cl->conn, vi, 16);
	for (size_t i = 0; i < nv; i++) {
		if (vi[i].id != vol || vi[i].avsg.n == 0)
			continue;
		/* No invalidation here (the caller may hold an inode lock):
		 * the connection losses that emptied the AVSG already dropped
		 * every callback, and nothing granted one since. */
		cml_count(cl->cml, vol, &n, &bytes);
		st = n > 0 ? VS_REINTEGRATING : VS_CONNECTED;
		cml_set_state(cl->cml, vol, st);
		reint_kick(cl);
		break;
	}
	return st;
}

bool emul_logging(struct client *cl, uint32_t vol)
{
	return cl->cml != NULL && vol_state(cl, vol) != VS_CONNECTED;
}

bool emul_trust_locked(struct client *cl, struct inode *in)
{
	enum vol_state st;

	if (cl->cml == NULL || in->ino == INODE_TOP)
		return false;
	st = vol_state(cl, in->fid.vol);
	if (st == VS_CONNECTED || !in->have_attr)
		return false;
	if (st == VS_DISCONNECTED)
		return true;
	return cml_names(cl->cml, &in->fid);
}

bool emul_keep_on_break(struct client *cl, struct inode *in)
{
	enum vol_state st;

	if (cl->cml == NULL)
		return false;
	st = cml_state(cl->cml, in->fid.vol);
	if (st == VS_CONNECTED)
		return false;
	return st == VS_DISCONNECTED || cml_names(cl->cml, &in->fid);
}

int emul_gate(void *arg, uint32_t vol, uint16_t type)
{
	struct client *cl = arg;

	(void)type;
	if (cl->cml != NULL && vol_state(cl, vol) == VS_DISCONNECTED)
		return -ETIMEDOUT;
	return 0;
}

struct inode *emul_inode_cached(struct client *cl, struct inode *dir, const struct dirent_w *d)
{
	struct cache_ent e;
	struct inode *in;
	struct attr a;

	if (!emul_logging(cl, dir->fid.vol))
		return NULL;
	/* Forgotten by the kernel: what was known of it then (a directory's
	 * listing, a symlink's target). */
	in = cstate_revive(cl, &d->fid);
	if (in != NULL)
		return in;
	if (cache_get(cl->cache, &d->fid, &e) == 0) {
		a = e.attr;
	} else if (!S_ISREG(d->mode)) {
		pthread_mutex_lock(&dir->lock);
		a = dir->attr;
		pthread_mutex_unlock(&dir->lock);
		a.fid = d->fid;
		a.mode = d->mode;
		a.nlink = S_ISDIR(d->mode) ? 2 : 1;
		a.size = S_ISDIR(d->mode) ? 4096 : 0;
		a.data_version = 0;
		memset(&a.vv, 0, sizeof(a.vv));
		memset(&a.sid, 0, sizeof(a.sid));
		a.flags = 0;
	} else {
		return NULL;
	}
	in = inode_get_or_create(cl->itab, &d->fid);
	pthread_mutex_lock(&in->lock);
	if (!in->have_attr) {
		in->attr = a;
		in->have_attr = true;
	}
	pthread_mutex_unlock(&in->lock);
	return in;
}

struct name_find {
	uint64_t parent;
	const char *name;
	struct inode *found; /* a reference */
	struct itab *itab;
};

static void name_find_cb(void *arg, struct inode *in)
{
	struct name_find *f = arg;
	bool hit;

	if (f->found != NULL)
		return;
	pthread_mutex_lock(&in->lock);
	hit = in->parent_ino == f->parent && in->name != NULL && strcmp(in->name, f->name) == 0 &&
	      in->have_attr && !in->removed;
	pthread_mutex_unlock(&in->lock);
	if (hit) {
		inode_ref(f->itab, in);
		f->found = in;
	}
}

struct inode *emul_lookup_name(struct client *cl, struct inode *dir, const char *name)
{
	struct name_find f = { dir->ino, name, NULL, cl->itab };
	const struct dirent_w *d;
	struct dirent_w dent;
	bool have = false;

	if (!emul_logging(cl, dir->fid.vol))
		return NULL;
	itab_foreach(cl->itab, name_find_cb, &f);
	if (f.found != NULL)
		return f.found;
	/* Forgotten by the kernel since: the name a LOOKUP taught dir. */
	pthread_mutex_lock(&dir->lock);
	d = inode_find_learned_locked(dir, name);
	if (d != NULL) {
		dent = *d;
		have = true;
	}
	pthread_mutex_unlock(&dir->lock);
	return have ? emul_inode_cached(cl, dir, &dent) : NULL;
}

/* The basis of a record on in: the version last seen from the servers,
 * with the StoreId of the last record of the log that changes it (the
 * servers match either the StoreId or the VV). */
void emul_renamed(struct client *cl, struct inode *src, const char *name, struct inode *dst,
		  const char *newname, const struct storeid *sid)
{
	struct name_find f = { src->ino, name, NULL, cl->itab };
	const struct dirent_w *d;
	struct fid fid;
	bool have = false;

	pthread_mutex_lock(&src->lock);
	if (src->list_valid && (d = inode_find_ent_locked(src, name)) != NULL) {
		fid = d->fid;
		have = true;
	}
	pthread_mutex_unlock(&src->lock);
	if (have)
		f.found = inode_get_fid(cl->itab, &fid);
	else
		itab_foreach(cl->itab, name_find_cb, &f);
	if (f.found == NULL)
		return;
	pthread_mutex_lock(&f.found->lock);
	if (S_ISDIR(f.found->attr.mode))
		f.found->attr.sid = *sid; /* a file keeps its own (bump_link) */
	inode_set_name_locked(f.found, dst->ino, newname);
	pthread_mutex_unlock(&f.found->lock);
	inode_put(cl->itab, f.found);
}

static void ver_of_locked(struct client *cl, const struct inode *in, struct cml_ver *v)
{
	memset(v, 0, sizeof(*v));
	if (!in->have_attr)
		return;
	v->dv = in->attr.data_version;
	v->sid = in->attr.sid;
	v->vv = in->attr.vv;
	cml_last_sid(cl->cml, &in->fid, S_ISDIR(in->attr.mode), &v->sid);
}

static void ver_of(struct client *cl, struct inode *in, struct cml_ver *v)
{
	pthread_mutex_lock(&in->lock);
	ver_of_locked(cl, in, v);
	pthread_mutex_unlock(&in->lock);
}

/* The listing entry of name in dir (caller holds dir->lock). -ETIMEDOUT if
 * no listing is cached, -ENOENT if absent. */
static int find_locked(struct inode *dir, const char *name, struct dirent_w *out)
{
	const struct dirent_w *d;

	if (!dir->list_valid)
		return -ETIMEDOUT;
	d = inode_find_ent_locked(dir, name);
	if (d == NULL)
		return -ENOENT;
	*out = *d;
	return 0;
}

static int find(struct inode *dir, const char *name, struct dirent_w *out)
{
	int ret;

	pthread_mutex_lock(&dir->lock);
	ret = find_locked(dir, name, out);
	pthread_mutex_unlock(&dir->lock);
	return ret;
}

static void list_del_locked(struct inode *dir, const char *name)
{
	const struct dirent_w *d;
	size_t i;

	if (!dir->list_valid)
		return;
	d = inode_find_ent_locked(dir, name);
	if (d == NULL)
		return;
	i = (size_t)(d - dir->ents);
	memmove(&dir->ents[i], &dir->ents[i + 1], (dir->n_ents - i - 1) * sizeof(dir->ents[0]));
	dir->n_ents--;
}

static void list_add_locked(struct inode *dir, const char *name, const struct fid *fid,
			    uint32_t mode)
{
	struct dirent_w *d;

	if (!dir->list_valid)
		return;
	list_del_locked(dir, name);
	dir->ents = xrealloc(dir->ents, (dir->n_ents + 1) * sizeof(*dir->ents));
	d = &dir->ents[dir->n_ents++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->fid = *fid;
	d->mode = mode;
}

/* The directory's contents changed: times now, nlink by dlink; the
 * servers will give it the record's StoreId. */
static void dir_touch(struct inode *dir, int dlink, const struct storeid *sid)
{
	pthread_mutex_lock(&dir->lock);
	if (sid != NULL && (sid->client != 0 || sid->seq != 0))
		dir->attr.sid = *sid;
	now_wtime(&dir->attr.mtime);
	dir->attr.ctime = dir->attr.mtime;
	if (dlink < 0 && dir->attr.nlink > 2)
		dir->attr.nlink--;
	else if (dlink > 0)
		dir->attr.nlink++;
	pthread_mutex_unlock(&dir->lock);
}

/* Known to hold entries: -ENOTEMPTY; unknown (no listing): 0. */
static int dir_empty_check(struct client *cl, const struct fid *fid)
{
	struct inode *in = inode_get_fid(cl->itab, fid);
	int ret = 0;

	if (in == NULL)
		return 0;
	pthread_mutex_lock(&in->lock);
	if (in->list_valid && in->n_ents > 0)
		ret = -ENOTEMPTY;
	pthread_mutex_unlock(&in->lock);
	inode_put(cl->itab, in);
	return ret;
}

int emul_create(struct client *cl, const struct cred *cr, struct inode *dir, const char *name,
		uint32_t mode, uint64_t rdev, const char *target, struct inode **out)
{
	struct cml_rec *r = xcalloc(1, sizeof(*r));
	struct dirent_w d;
	struct storeid sid;
	struct cml_tx tx;
	struct attr a;
	struct inode *in;
	int ret, fd;

	*out = NULL;
	if (strlen(name) > NAME_MAX_LEN || (target && strlen(target) > TARGET_MAX_LEN)) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	ret = find(dir, name, &d);
	if (ret == 0) {
		ret = -EEXIST;
		goto out;
	}
	if (ret != -ENOENT)
		goto out;
	r->op = CML_CREATE;
	r->dir = dir->fid;
	r->fid.vol = dir->fid.vol;
	oid_random(r->fid.oid);
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (target != NULL)
		snprintf(r->target, sizeof(r->target), "%s", target);
	r->mode = mode;
	r->rdev = S_ISCHR(mode) || S_ISBLK(mode) ? rdev : 0;
	memset(&a, 0, sizeof(a));
	a.fid = r->fid;
	a.mode = mode;
	a.nlink = S_ISDIR(mode) ? 2 : 1;
	a.uid = cr->uid;
	a.gid = cr->gid;
	a.rdev = r->rdev;
	a.size = target != NULL ? strlen(target) : 0;
	now_wtime(&a.mtime);
	a.atime = a.ctime = a.mtime;
	if (S_ISREG(mode)) {
		/* The container exists before the record that names it. */
		fd = cache_open_container(cl->cache, &r->fid, O_RDWR | O_CREAT | O_TRUNC);
		if (fd < 0) {
			ret = fd;
			goto out;
		}
		close(fd);
	}
	ret = cml_begin(cl->cml, &tx);
	if (ret < 0)
		goto out;
	ret = cml_add(&tx, r, &sid);
	if (ret == 0 && S_ISREG(mode)) {
		struct cache_ent e;

		memset(&e, 0, sizeof(e));
		e.fid = r->fid;
		e.attr = a;
		e.has_data = true;
		ret = cache_txn_put(tx.ct, &e);
	}
	if (ret < 0) {
		cml_abort(&tx);
		goto out;
	}
	ret = cml_commit(&tx);
	if (ret < 0)
		goto out;
	a.sid = sid;
	in = inode_get_or_create(cl->itab, &r->fid);
	pthread_mutex_lock(&in->lock);
	in->attr = a;
	in->have_attr = true;
	in->stale = false;
	if (S_ISDIR(mode) && !in->list_valid)
		inode_set_listing_locked(in, xcalloc(1, sizeof(*in->ents)), 0);
	if (target != NULL) {
		free(in->target);
		in->target = xstrdup(target);
	}
	inode_set_name_locked(in, dir->ino, name);
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_lock(&dir->lock);
	list_add_locked(dir, name, &r->fid, mode);
	pthread_mutex_unlock(&dir->lock);
	dir_touch(dir, S_ISDIR(mode) ? 1 : 0, &sid);
	*out = in;
out:
	free(r);
	return ret;
}

/* Drops the object's cache entry within tx if it lost its last name,
 * unless records still to be sent need it (a store's data is read from the
 * container at reintegration; reint.c drops it once the removal is in). */
static int drop_if_gone(struct cml_tx *tx, const struct fid *fid, uint32_t mode, bool last)
{
	if (!last || S_ISDIR(mode) || cml_tx_names(tx, fid))
		return 0;
	return cache_txn_del(tx->ct, fid);
}

int emul_remove(struct client *cl, struct inode *dir, const char *name, bool is_dir)
{
	struct cml_rec *r = xcalloc(1, sizeof(*r));
	struct inode *child = NULL;
	struct dirent_w d;
	struct storeid sid = { 0, 0 };
	struct cml_tx tx;
	bool last = true;
	int ret, cancelled = 0;

	ret = find(dir, name, &d);
	if (ret < 0)
		goto out;
	if (is_dir && !S_ISDIR(d.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (!is_dir && S_ISDIR(d.mode)) {
		ret = -EISDIR;
		goto out;
	}
	if (is_dir) {
		ret = dir_empty_check(cl, &d.fid);
		if (ret < 0)
			goto out;
	}
	child = inode_get_fid(cl->itab, &d.fid);
	r->op = CML_REMOVE;
	r->flags = is_dir ? REMOVE_DIR : 0;
	r->dir = dir->fid;
	r->fid = d.fid;
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (child != NULL) {
		ver_of(cl, child, &r->ver);
		pthread_mutex_lock(&child->lock);
		if (!is_dir && child->have_attr && child->attr.nlink > 1)
			last = false;
		pthread_mutex_unlock(&child->lock);
	}
	ret = cml_begin(cl->cml, &tx);
	if (ret < 0)
		goto out;
	if (last)
		cancelled = cml_cancel_object(&tx, &d.fid);
	if (cancelled < 0)
		ret = cancelled;
	else if (cancelled == 0)
		ret = cml_add(&tx, r, &sid);
	if (ret == 0)
		ret = drop_if_gone(&tx, &d.fid, d.mode, last);
	if (ret < 0) {
		cml_abort(&tx);
		goto out;
	}
	ret = cml_commit(&tx);
	if (ret < 0)
		goto out;
	pthread_mutex_lock(&dir->lock);
	list_del_locked(dir, name);
	pthread_mutex_unlock(&dir->lock);
	dir_touch(dir, is_dir ? -1 : 0, cancelled ? NULL : &sid);
	if (child != NULL) {
		pthread_mutex_lock(&child->lock);
		if (!cancelled)
			child->attr.sid = sid;
		if (child->attr.nlink > 0)
			child->attr.nlink--;
		now_wtime(&child->attr.ctime);
		if (last) {
			child->removed = true;
			child->stale = true;
		}
		pthread_mutex_unlock(&child->lock);
	}
out:
	inode_put(cl->itab, child);
	free(r);
	return ret;
}

int emul_rename(struct client *cl, struct inode *src, const char *name, struct inode *dst,
		const char *newname, unsigned int flags)
{
	struct cml_rec *r = xcalloc(1, sizeof(*r));
	struct inode *obj = NULL, *victim = NULL;
	struct dirent_w d, t;
	struct storeid sid = { 0, 0 };
	struct cml_tx tx;
	bool replace = false, vlast = true;
	int ret, cancelled = 0;

	if (flags & RENAME_F_EXCHANGE) {
		ret = -ENOTSUP;
		goto out;
	}
	if (strlen(newname) > NAME_MAX_LEN) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	ret = find(src, name, &d);
	if (ret < 0)
		goto out;
	ret = find(dst, newname, &t);
	if (ret == 0) {
		if (fid_eq(&t.fid, &d.fid)) {
			ret = 0; /* the same object: nothing to do */
			goto out;
		}
		if (flags & RENAME_F_NOREPLACE) {
			ret = -EEXIST;
			goto out;
		}
		if (S_ISDIR(d.mode) && !S_ISDIR(t.mode)) {
			ret = -ENOTDIR;
			goto out;
		}
		if (!S_ISDIR(d.mode) && S_ISDIR(t.mode)) {
			ret = -EISDIR;
			goto out;
		}
		if (S_ISDIR(t.mode)) {
			ret = dir_empty_check(cl, &t.fid);
			if (ret < 0)
				goto out;
		}
		replace = true;
	} else if (ret != -ENOENT) {
		goto out;
	}
	obj = inode_get_fid(cl->itab, &d.fid);
	r->op = CML_RENAME;
	r->flags = flags & RENAME_F_NOREPLACE;
	r->dir = src->fid;
	r->dir2 = dst->fid;
	r->fid = d.fid;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->name2, sizeof(r->name2), "%s", newname);
	if (replace) {
		r->fid2 = t.fid;
		victim = inode_get_fid(cl->itab, &t.fid);
		if (victim != NULL) {
			ver_of(cl, victim, &r->ver2);
			pthread_mutex_lock(&victim->lock);
			if (!S_ISDIR(t.mode) && victim->have_attr && victim->attr.nlink > 1)
				vlast = false;
			pthread_mutex_unlock(&victim->lock);
		}
	}
	ret = cml_begin(cl->cml, &tx);
	if (ret < 0)
		goto out;
	if (replace && vlast) {
		cancelled = cml_cancel_object(&tx, &t.fid);
		if (cancelled == 1) {
			/* Never reached the servers: the name is free there. */
			memset(&r->fid2, 0, sizeof(r->fid2));
			memset(&r->ver2, 0, sizeof(r->ver2));
		}
	}
	if (cancelled < 0)
		ret = cancelled;
	else
		ret = cml_add(&tx, r, &sid);
	if (ret == 0 && replace)
		ret = drop_if_gone(&tx, &t.fid, t.mode, vlast);
	if (ret < 0) {
		cml_abort(&tx);
		goto out;
	}
	ret = cml_commit(&tx);
	if (ret < 0)
		goto out;
	pthread_mutex_lock(&src->lock);
	list_del_locked(src, name);
	pthread_mutex_unlock(&src->lock);
	pthread_mutex_lock(&dst->lock);
	list_add_locked(dst, newname, &d.fid, d.mode);
	pthread_mutex_unlock(&dst->lock);
	if (src != dst && S_ISDIR(d.mode)) {
		dir_touch(src, -1, &sid);
		dir_touch(dst, replace ? 0 : 1, &sid);
	} else {
		dir_touch(src, 0, &sid);
		if (dst != src)
			dir_touch(dst, replace && S_ISDIR(t.mode) ? -1 : 0, &sid);
	}
	if (obj != NULL) {
		pthread_mutex_lock(&obj->lock);
		/* The servers give a renamed directory the rename's StoreId, a
		 * file keeps its own (server/ops.c bump_link). */
		if (S_ISDIR(obj->attr.mode))
			obj->attr.sid = sid;
		now_wtime(&obj->attr.ctime);
		inode_set_name_locked(obj, dst->ino, newname);
		pthread_mutex_unlock(&obj->lock);
	}
	if (victim != NULL) {
		pthread_mutex_lock(&victim->lock);
		if (victim->attr.nlink > 0)
			victim->attr.nlink--;
		if (vlast) {
			victim->removed = true;
			victim->stale = true;
		}
		pthread_mutex_unlock(&victim->lock);
	}
out:
	inode_put(cl->itab, obj);
	inode_put(cl->itab, victim);
	free(r);
	return ret;
}

int emul_link(struct client *cl, struct inode *in, struct inode *dir, const char *name)
{
	struct cml_rec *r = xcalloc(1, sizeof(*r));
	struct dirent_w d;
	struct storeid sid;
	struct cml_tx tx;
	uint32_t mode;
	int ret;

	pthread_mutex_lock(&in->lock);
	mode = in->attr.mode;
	ret = in->have_attr ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&in->lock);
	if (ret < 0)
		goto out;
	if (S_ISDIR(mode)) {
		ret = -EPERM;
		goto out;
	}
	if (strlen(name) > NAME_MAX_LEN) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	ret = find(dir, name, &d);
	if (ret == 0) {
		ret = -EEXIST;
		goto out;
	}
	if (ret != -ENOENT)
		goto out;
	r->op = CML_LINK;
	r->dir = dir->fid;
	r->fid = in->fid;
	snprintf(r->name, sizeof(r->name), "%s", name);
	ret = cml_begin(cl->cml, &tx);
	if (ret < 0)
		goto out;
	ret = cml_add(&tx, r, &sid);
	if (ret < 0) {
		cml_abort(&tx);
		goto out;
	}
	ret = cml_commit(&tx);
	if (ret < 0)
		goto out;
	pthread_mutex_lock(&dir->lock);
	list_add_locked(dir, name, &in->fid, mode);
	pthread_mutex_unlock(&dir->lock);
	dir_touch(dir, 0, &sid);
	pthread_mutex_lock(&in->lock);
	in->attr.nlink++;
	in->attr.sid = sid;
	now_wtime(&in->attr.ctime);
	pthread_mutex_unlock(&in->lock);
out:
	free(r);
	return ret;
}

int emul_setattr(struct client *cl, struct inode *in, const struct sattr *sa)
{
	struct cml_rec *r = xcalloc(1, sizeof(*r));
	struct cache_ent e;
	struct storeid sid;
	struct cml_tx tx;
	bool have_data = false;
	struct wtime now;
	int ret;

	now_wtime(&now);
	r->op = CML_SETATTR;
	r->fid = in->fid;
	r->sattr = *sa;
	r->sattr.valid &= ~(uint32_t)(SA_ATIME_NOW | SA_MTIME_NOW);
	if (sa->valid & SA_ATIME_NOW) {
		r->sattr.valid |= SA_ATIME;
		r->sattr.atime = now;
	}
	if (sa->valid & SA_MTIME_NOW) {
		r->sattr.valid |= SA_MTIME;
		r->sattr.mtime = now;
	}
	if (sa->valid & SA_SIZE) {
		/* Truncation changes the cached copy too. */
		pthread_mutex_lock(&in->lock);
		ret = in->have_attr ? 0 : -ETIMEDOUT;
		e.data_version = in->attr.data_version;
		pthread_mutex_unlock(&in->lock);
		if (ret < 0)
			goto out;
		if (cache_get(cl->cache, &in->fid, &e) == 0 && (e.dirty || e.has_data))
			have_data = true;
		if (!have_data && sa->size != 0 && cml_emulating(cl->cml, in->fid.vol)) {
			ret = -ETIMEDOUT;
			goto out;
		}
		if (have_data) {
			char path[4096];

			ret = cache_container_path(cl->cache, &in->fid, path, sizeof(path));
			if (ret == 0 && truncate(path, (off_t)sa->size) < 0)
				ret = -errno;
			if (ret < 0)
				goto out;
			/* Only the new record makes this reach the servers:
			 * the entry stays until it is reintegrated. */
			e.size = sa->size;
			e.dirty = true;
		}
	}
	ver_of(cl, in, &r->ver);
	ret = cml_begin(cl->cml, &tx);
	if (ret < 0)
		goto out;
	ret = cml_add(&tx, r, &sid);
	if (ret == 0 && have_data)
		ret = cache_txn_put(tx.ct, &e);
	if (ret < 0) {
		cml_abort(&tx);
		goto out;
	}
	ret = cml_commit(&tx);
	if (ret < 0)
		goto out;
	pthread_mutex_lock(&in->lock);
	if (r->sattr.valid & SA_MODE)
		in->attr.mode = (in->attr.mode & ~07777u) | (r->sattr.mode & 07777);
	if (r->sattr.valid & SA_UID)
		in->attr.uid = r->sattr.uid;
	if (r->sattr.valid & SA_GID)
		in->attr.gid = r->sattr.gid;
	if (r->sattr.valid & SA_SIZE) {
		in->attr.size = r->sattr.size;
		in->attr.mtime = now;
	}
	if (r->sattr.valid & SA_ATIME)
		in->attr.atime = r->sattr.atime;
	if (r->sattr.valid & SA_MTIME)
		in->attr.mtime = r->sattr.mtime;
	in->attr.ctime = now;
	in->attr.sid = sid;
	pthread_mutex_unlock(&in->lock);
out:
	free(r);
	return ret;
}

/* fsync of the directory holding fid's container, so that the container's
 * name is as durable as its data. */
static int sync_container_name(struct client *cl, const struct fid *fid)
{
	char path[4096];
	int ret = cache_container_path(cl->cache, fid, path, sizeof(path));

	return ret < 0 ? ret : fs_fsync_parent(path);
}

int emul_store(struct client *cl, struct inode *in)
{
	struct cml_rec *r = xcalloc(1, sizeof(*r));
	struct cache_ent e;
	struct storeid sid;
	struct cml_tx tx;
	struct stat st;
	uint64_t wgen;
	int ret, fd;

	pthread_mutex_lock(&in->lock);
	fd = in->fd;
	wgen = in->wgen;
	r->mtime = in->attr.mtime;
	ver_of_locked(cl, in, &r->ver);
	memset(&e, 0, sizeof(e));
	e.attr = in->attr;
	pthread_mutex_unlock(&in->lock);
	/* The container is the only copy of this data until reintegration: it
	 * must be on disk before the record that names it. */
	if (fd < 0 || fstat(fd, &st) < 0 || fsync(fd) < 0) {
		ret = fd < 0 ? -EBADF : -errno;
		goto out;
	}
	ret = sync_container_name(cl, &in->fid);
	if (ret < 0)
		goto out;
	r->op = CML_STORE;
	r->fid = in->fid;
	r->length = (uint64_t)st.st_size;
	e.fid = in->fid;
	e.attr.size = r->length;
	e.size = r->length;
	e.has_data = true;
	e.dirty = true; /* kept (never evicted) until reintegrated */
	e.data_version = e.attr.data_version;
	ret = cml_begin(cl->cml, &tx);
	if (ret < 0)
		goto out;
	ret = cml_add(&tx, r, &sid);
	if (ret == 0)
		ret = cache_txn_put(tx.ct, &e);
	if (ret < 0) {
		cml_abort(&tx);
		goto out;
	}
	ret = cml_commit(&tx);
	if (ret < 0)
		goto out;
	pthread_mutex_lock(&in->lock);
	if (in->wgen == wgen)
		in->dirty = false;
	in->attr.size = r->length;
	in->attr.sid = sid;
	pthread_mutex_unlock(&in->lock);
out:
	if (ret < 0)
		log_warn("emul", "cannot log a store of inode %llu: %s",
			 (unsigned long long)in->ino, strerror(-ret));
	free(r);
	return ret;
}
