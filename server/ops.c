/*
 * ops.c - the file-system operations of encore-server and the batch they
 * run in.
 * Owns:    the batch write txn and its side effects (fds to fsync, volume
 *          directories to fsync, containers to unlink after the commit or
 *          after a failed commit), statistics, reply scratch buffers.
 * Borrows: meta, store, callback table from the server; a connection's
 *          promises and partial stores for the duration of one call.
 * Locking: single-threaded (the server loop).
 *
 * Each update runs in a child txn of the batch txn, so a failing update
 * leaves nothing behind while the others of its batch commit together.
 * Permission rules follow Linux: root bypasses read/write/search checks;
 * the sticky bit restricts remove and rename; chmod/utimes need the owner.
 */
#include "server/ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cml.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msgtab.h"
#include "common/xalloc.h"
#include "server/reint.h"
#include "server/repl.h"
#include "server/reslogic.h"

/* Hard links per object and subdirectories per directory, as ext4. */
#define OPS_LINK_MAX 65000
/* Reported size of a directory. */
#define DIR_SIZE 4096
/* Depth bound of the parent walk for rename (a cycle means corruption). */
#define WALK_MAX 65536
/* Volume directories to fsync per batch kept in a set; more are synced at once. */
#define BATCH_VOLS_MAX 16

#define PERM_R 4
#define PERM_W 2
#define PERM_X 1

struct fidv {
	struct fid fid;
	uint64_t dv;
};

/* Growable array of T. */
#define VEC(T)                 \
	struct {               \
		T *v;          \
		size_t n, cap; \
	}
#define VEC_PUSH(vec, x)                                                           \
	do {                                                                       \
		if ((vec).n == (vec).cap) {                                        \
			(vec).cap = (vec).cap ? (vec).cap * 2 : 16;                \
			(vec).v = xrealloc((vec).v, (vec).cap * sizeof(*(vec).v)); \
		}                                                                  \
		(vec).v[(vec).n++] = (x);                                          \
	} while (0)

/* Side effects of one update, applied to the batch only if it succeeds. */
struct fx {
	struct fid changed[6]; /* fids whose promises break */
	size_t n_changed;
	int fd; /* new container to fsync (owned), or -1 */
	struct fidv newc;
	bool has_newc;
	struct fidv oldc[2]; /* containers to unlink after the commit */
	size_t n_oldc;
	int64_t d_objects;
	uint32_t vol;
	struct fid upd[REPL_COP2_MAX]; /* fids whose own VV slot this update bumped */
	size_t n_upd;
	struct dent victim; /* RENAME: the entry the target name held before */
	bool has_victim;
	struct vv victim_vv;
};

struct ops {
	char *dir;
	struct meta *meta;   /* borrowed */
	struct store *store; /* borrowed */
	struct cbtab *cb;    /* borrowed */
	struct srvinfo info;
	struct vsg vsg; /* of the root volume */
	uint32_t slot;	/* this server's slot in vsg */
	struct ops_stats st;
	ops_break_fn brk;
	void *brk_arg;

	struct meta_txn *txn; /* the batch txn, or NULL */
	bool dirty;	      /* the batch has updates */
	VEC(int) fds;
	VEC(struct fidv) newc;
	VEC(struct fidv) oldc;
	VEC(struct fidv) fx_oldc; /* the update's containers beyond fx.oldc (prune) */
	uint32_t vols[BATCH_VOLS_MAX];
	size_t n_vols;

	struct fx fx;
	uint8_t *buf; /* CHUNK_MAX: FETCH replies borrow it */
	int seg_fd;   /* owned, -1: FETCH data left in its container (ops_take_segment) */
	uint64_t seg_off;
	struct wr wr; /* READDIR and STATS replies borrow it */
};

struct ops *ops_new(const char *dir, struct meta *meta, struct store *store, struct cbtab *cb,
		    const struct srvinfo *info, ops_break_fn brk, void *brk_arg)
{
	struct ops *o = xcalloc(1, sizeof(*o));
	o->dir = xstrdup(dir);
	o->meta = meta;
	o->store = store;
	o->cb = cb;
	o->info = *info;
	o->brk = brk;
	o->brk_arg = brk_arg;
	o->buf = xmalloc(CHUNK_MAX);
	o->seg_fd = -1;
	wr_init(&o->wr);
	o->vsg.n = 1;
	o->vsg.ids[0] = info->server_id;
	struct meta_txn *t;
	if (meta_begin(meta, NULL, true, &t) == 0) {
		if (repl_vsg(t, info->root_vol, info->server_id, &o->vsg, &o->slot) < 0)
			log_err("ops", "cannot read the VSG of volume %u", info->root_vol);
		meta_abort(t);
	}
	return o;
}

void ops_free(struct ops *o)
{
	if (o == NULL)
		return;
	if (o->txn != NULL)
		meta_abort(o->txn);
	free(o->fds.v);
	free(o->newc.v);
	free(o->oldc.v);
	free(o->fx_oldc.v);
	wr_release(&o->wr);
	free(o->buf);
	if (o->seg_fd >= 0)
		close(o->seg_fd);
	free(o->dir);
	free(o);
}

struct ops_stats *ops_stats(struct ops *o)
{
	return &o->st;
}

const struct srvinfo *ops_info(const struct ops *o)
{
	return &o->info;
}

static void now_wtime(struct wtime *t)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	t->sec = ts.tv_sec;
	t->nsec = (uint32_t)ts.tv_nsec;
}

static void vnode_to_attr(const struct vnode *v, struct attr *a)
{
	memset(a, 0, sizeof(*a));
	a->fid = v->fid;
	a->mode = v->mode;
	a->nlink = v->nlink;
	a->uid = v->uid;
	a->gid = v->gid;
	a->rdev = v->rdev;
	a->size = v->size;
	/* 512-byte units of whole 4 KiB blocks. */
	a->blocks = (v->size + 4095) / 4096 * 8;
	a->atime = v->atime;
	a->mtime = v->mtime;
	a->ctime = v->ctime;
	a->data_version = v->data_version;
	a->vv = v->vv;
	a->sid = v->sid;
	a->flags = v->flags;
}

static bool in_group(const struct cred *c, uint32_t gid)
{
	if (c->gid == gid)
		return true;
	for (uint32_t i = 0; i < c->n_groups && i < GROUPS_MAX; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

/* Mode-bit check of want (PERM_* bits) for c on v; root passes. */
static int perm(const struct cred *c, const struct vnode *v, unsigned want)
{
	unsigned bits;

	if (c->uid == 0)
		return 0;
	if (c->uid == v->uid)
		bits = (v->mode >> 6) & 7;
	else if (in_group(c, v->gid))
		bits = (v->mode >> 3) & 7;
	else
		bits = v->mode & 7;
	return (bits & want) == want ? 0 : -EACCES;
}

/* The sticky-directory rule for removing or renaming victim out of dir. */
static int sticky_ok(const struct cred *c, const struct vnode *dir, const struct vnode *victim)
{
	if (!(dir->mode & S_ISVTX) || c->uid == 0 || c->uid == dir->uid || c->uid == victim->uid)
		return 0;
	return -EPERM;
}

/* Records an update of v: this server's slot of its version vector (sized
 * to the volume's VSG), the StoreId, and v in the update's COP2 set. */
static void bump(struct ops *o, struct vnode *v, const struct msg *req)
{
	uint32_t n = 1, slot = 0;

	if (v->fid.vol == o->info.root_vol) {
		n = o->vsg.n;
		slot = o->slot;
	}
	while (v->vv.n < n)
		v->vv.slot[v->vv.n++] = 0;
	v->vv.slot[slot]++;
	if (req->sid.client != 0 || req->sid.seq != 0)
		v->sid = req->sid;
	for (size_t i = 0; i < o->fx.n_upd; i++)
		if (fid_eq(&o->fx.upd[i], &v->fid))
			return;
	if (o->fx.n_upd < REPL_COP2_MAX)
		o->fx.upd[o->fx.n_upd++] = v->fid;
}

/* The version step of an object whose links a name update changed
 * (renamed, one of its names removed) without the client naming the version
 * it saw of it (F_XVER names the directories only). A directory takes the
 * update's step and StoreId (its contents resolve from logs). A file or
 * other non-directory takes none: its contents and attributes other than
 * ctime and nlink did not change (nlink follows the directories' replays),
 * and a replica behind on it (it missed a store) performs the rename too.
 * Had the rename's StoreId replaced the file's, the replicas would carry
 * one StoreId over different contents, which resolution takes for equal (a
 * chaos run ended with equal vectors and 0 vs 63243 bytes); had it stepped
 * the vector alone, phase two (which steps only objects still at the
 * update's StoreId) would leave each replica a step in its own slot, and
 * the vectors incomparable: a false conflict. */
static void bump_link(struct ops *o, struct vnode *v, const struct msg *req)
{
	if (S_ISDIR(v->mode))
		bump(o, v, req);
}

/* A directory's entries changed. */
static void dir_changed(struct ops *o, struct vnode *d, const struct wtime *now,
			const struct msg *req)
{
	d->mtime = *now;
	d->ctime = *now;
	d->data_version++;
	bump(o, d, req);
}

static void fx_changed(struct fx *fx, const struct fid *f)
{
	for (size_t i = 0; i < fx->n_changed; i++)
		if (fid_eq(&fx->changed[i], f))
			return;
	ASSERT(fx->n_changed < sizeof(fx->changed) / sizeof(fx->changed[0]));
	fx->changed[fx->n_changed++] = *f;
}

static void fx_oldc(struct fx *fx, const struct fid *f, uint64_t dv)
{
	ASSERT(fx->n_oldc < 2);
	fx->oldc[fx->n_oldc].fid = *f;
	fx->oldc[fx->n_oldc].dv = dv;
	fx->n_oldc++;
}

static int get_dir(struct meta_txn *t, const struct fid *f, struct vnode *v)
{
	int ret = meta_vnode_get(t, f, v);
	if (ret < 0)
		return ret;
	return S_ISDIR(v->mode) ? 0 : -ENOTDIR;
}

/* Drops one link of v (already unlinked from a directory): deletes it at
 * zero (its container after the commit), otherwise updates it. */
static int drop_link(struct ops *o, struct meta_txn *t, struct vnode *v, const struct wtime *now,
		     const struct msg *req)
{
	if (S_ISDIR(v->mode))
		v->nlink = 0;
	else if (v->nlink > 0)
		v->nlink--;
	v->ctime = *now;
	bump_link(o, v, req);
	fx_changed(&o->fx, &v->fid);
	if (v->nlink > 0)
		return meta_vnode_put(t, v);
	o->fx.d_objects--;
	if (S_ISREG(v->mode)) {
		fx_oldc(&o->fx, &v->fid, v->data_version);
		int ret = meta_inline_del(t, &v->fid);
		if (ret < 0)
			return ret;
	}
	return meta_vnode_del(t, &v->fid);
}

static int op_getroot(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct vnode v;
	struct fid f;
	int ret;

	if (strcmp(req->realm, o->info.realm) != 0)
		return -ENOENT;
	fid_make_root(&f, o->info.root_vol);
	ret = meta_vnode_get(t, &f, &v);
	if (ret < 0)
		return ret;
	vnode_to_attr(&v, &rep->attr);
	rep->vsg = o->vsg;
	return 0;
}

/* F_XVER of a read: true if this replica's v is behind the version the
 * client saw: another StoreId and a vector lower in some slot (it lacks an
 * update counted there). A vector at least as high is the same state or a
 * later one (another client's update since): the read goes on. A version
 * without a vector compares by StoreId alone. */
static bool xver_behind(const struct vnode *v, const struct xver *x)
{
	if (storeid_is_zero(&x->sid))
		return false;
	if (storeid_eq(&v->sid, &x->sid))
		return false;
	if (x->vv.n == 0)
		return true;
	for (uint32_t i = 0; i < x->vv.n && i < VV_MAX; i++)
		if ((i < v->vv.n ? v->vv.slot[i] : 0) < x->vv.slot[i])
			return true;
	return false;
}

/* A request refused as behind what the client saw (ST_VERSION): the client
 * asks another replica and has this one resolved. */
static int refuse_behind(struct ops *o)
{
	o->st.version_refused++;
	return -ERR_VERSION;
}

/* err from looking up an object of a request: a missing object that the
 * client has seen (seen: F_XVER names a version of it, or a FETCH expects
 * a data version) was made while this replica was away and resolution has
 * not brought it here yet. Refused as behind (refuse_behind), not ENOENT,
 * which would tell the application that the file is gone. */
static int missing_behind(struct ops *o, int err, bool seen)
{
	return err == -ENOENT && seen ? refuse_behind(o) : err;
}

static int op_getattr(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct vnode v;
	int ret;

	o->st.getattr_calls++;
	/* A missing object stays ENOENT here (not missing_behind): a
	 * validation asks every member and takes the others' answer if they
	 * have it, and when none has it the object is gone (removed by
	 * another client), which a wait for a replica that has it would only
	 * delay. */
	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret < 0)
		return ret;
	if (xver_behind(&v, &req->xver[0])) {
		return refuse_behind(o); /* behind what the client saw: ask another */
	}
	vnode_to_attr(&v, &rep->attr);
	return 0;
}

static int op_lookup(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct vnode d, v;
	struct dent de;
	struct fid cf;
	int ret;

	o->st.lookup_calls++;
	ret = get_dir(t, &req->fid, &d);
	if (ret < 0)
		return missing_behind(o, ret, !storeid_is_zero(&req->xver[0].sid));
	if (xver_behind(&d, &req->xver[0])) {
		return refuse_behind(o); /* behind what the client saw: ask another */
	}
	ret = perm(&req->cred, &d, PERM_X);
	if (ret < 0)
		return ret;
	if (!name_valid(req->name))
		return -EINVAL;
	ret = meta_dirent_get(t, &req->fid, req->name, &de);
	if (ret < 0)
		return ret;
	cf.vol = req->fid.vol;
	memcpy(cf.oid, de.oid, OID_LEN);
	ret = meta_vnode_get(t, &cf, &v);
	if (ret == -ENOENT) {
		log_err("ops", "dangling directory entry '%.128s'", req->name);
		return -EIO;
	}
	if (ret < 0)
		return ret;
	vnode_to_attr(&v, &rep->attr);
	vnode_to_attr(&d, &rep->attr2);
	return 0;
}

static int op_readlink(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct vnode v;
	int ret;

	o->st.readlink_calls++;
	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret < 0)
		return ret;
	if (!S_ISLNK(v.mode))
		return -EINVAL;
	snprintf(rep->target, sizeof(rep->target), "%s", v.target);
	return 0;
}

struct rdctx {
	struct meta_txn *t;
	struct wr *w;
	uint32_t vol;
	uint64_t n, max;
};

static int readdir_fn(void *arg, const char *name, const struct dent *d)
{
	struct rdctx *c = arg;
	struct dirent_w dw;
	struct vnode v;
	size_t need = 1 + strlen(name) + 20 + 4;

	if (c->n >= c->max || c->w->len + need > CHUNK_MAX)
		return 1;
	memset(&dw, 0, sizeof(dw));
	snprintf(dw.name, sizeof(dw.name), "%s", name);
	dw.fid.vol = c->vol;
	memcpy(dw.fid.oid, d->oid, OID_LEN);
	dw.mode = d->type;
	if (meta_vnode_get(c->t, &dw.fid, &v) == 0)
		dw.mode = v.mode;
	dirent_encode(c->w, &dw);
	c->n++;
	return 0;
}

static int op_readdir(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct rdctx c;
	struct vnode d;
	int ret;

	o->st.readdir_calls++;
	ret = get_dir(t, &req->fid, &d);
	if (ret < 0)
		return missing_behind(o, ret, !storeid_is_zero(&req->xver[0].sid));
	if (xver_behind(&d, &req->xver[0])) {
		return refuse_behind(o); /* behind what the client saw: ask another */
	}
	ret = perm(&req->cred, &d, PERM_R);
	if (ret < 0)
		return ret;
	if (req->name[0] != '\0' && !name_valid(req->name))
		return -EINVAL;
	wr_reset(&o->wr);
	c.t = t;
	c.w = &o->wr;
	c.vol = req->fid.vol;
	c.n = 0;
	c.max = req->length == 0 || req->length > READDIR_MAX_ENTRIES ? READDIR_MAX_ENTRIES
								      : req->length;
	ret = meta_dir_scan(t, &req->fid, req->name, readdir_fn, &c);
	if (ret < 0)
		return ret;
	rep->mflags = ret == 0 ? READDIR_EOF : 0;
	rep->data = o->wr.len > 0 ? o->wr.buf : NULL;
	rep->data_len = (uint32_t)o->wr.len;
	vnode_to_attr(&d, &rep->attr);
	return 0;
}

/* Leaves the len bytes at off of v's container for the loop to send from
 * the file (ops_take_segment), if the container holds them all; a short
 * container (a hole at the end) takes the copying path. */
static bool fetch_segment(struct ops *o, const struct vnode *v, uint64_t off, uint64_t len)
{
	uint64_t size;
	int fd;

	fd = store_open_ro(o->store, &v->fid, v->data_version, &size);
	if (fd < 0)
		return false;
	if (size < off || size - off < len) {
		close(fd);
		return false;
	}
	o->seg_fd = fd;
	o->seg_off = off;
	return true;
}

static int op_fetch(struct ops *o, struct meta_txn *t, const struct ops_conn *oc,
		    const struct msg *req, struct msg *rep)
{
	struct vnode v;
	uint64_t len;
	ssize_t n;
	int ret;

	o->st.fetch_calls++;
	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret < 0)
		return missing_behind(o, ret, req->expect != 0);
	if (S_ISDIR(v.mode))
		return -EISDIR;
	if (!S_ISREG(v.mode))
		return -EINVAL;
	ret = perm(&req->cred, &v, PERM_R);
	if (ret < 0)
		return ret;
	if (req->expect != 0 && req->expect != v.data_version)
		return -ERR_VERSION;
	len = req->length < CHUNK_MAX ? req->length : CHUNK_MAX;
	if (req->offset >= v.size)
		len = 0;
	else if (len > v.size - req->offset)
		len = v.size - req->offset;
	rep->data = len > 0 ? o->buf : NULL;
	if (len > 0) {
		n = -ENOENT;
		if (v.size <= META_INLINE_MAX)
			n = meta_inline_get(t, &v.fid, v.data_version, req->offset, o->buf, len);
		if (n == -ENOENT && oc->segments && fetch_segment(o, &v, req->offset, len)) {
			n = (ssize_t)len;
			rep->data = NULL;
		} else if (n == -ENOENT) {
			n = store_read(o->store, &v.fid, v.data_version, o->buf, len, req->offset);
		}
		if (n < 0)
			return (int)n;
		if ((uint64_t)n < len)
			memset(o->buf + n, 0, len - (uint64_t)n); /* short container: a hole */
	}
	o->st.fetch_bytes += len;
	rep->data_len = (uint32_t)len;
	vnode_to_attr(&v, &rep->attr);
	return 0;
}

static int op_statfs(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct statvfs sv;
	struct volrec vr;
	int ret;

	o->st.statfs_calls++;
	ret = meta_volume_get(t, req->fid.vol, &vr);
	if (ret < 0)
		return ret;
	if (statvfs(o->dir, &sv) < 0)
		return -errno;
	rep->fsstat.bsize = (uint32_t)sv.f_frsize;
	rep->fsstat.blocks = sv.f_blocks;
	rep->fsstat.bfree = sv.f_bfree;
	rep->fsstat.bavail = sv.f_bavail;
	rep->fsstat.files = vr.n_objects + sv.f_favail;
	rep->fsstat.ffree = sv.f_favail;
	rep->fsstat.namemax = NAME_MAX_LEN;
	return 0;
}

static int op_stats(struct ops *o, struct meta_txn *t, struct msg *rep)
{
	char line[96];
	uint64_t objects = 0;
	int ret;

	ret = meta_objects_total(t, &objects);
	if (ret < 0)
		return ret;
	wr_reset(&o->wr);
#define OPS_STAT_LINE(n)                                                            \
	snprintf(line, sizeof(line), "%s %llu\n", #n, (unsigned long long)o->st.n); \
	wr_bytes(&o->wr, line, strlen(line));
	OPS_STATS(OPS_STAT_LINE)
#undef OPS_STAT_LINE
	snprintf(line, sizeof(line), "objects %llu\n", (unsigned long long)objects);
	wr_bytes(&o->wr, line, strlen(line));
	snprintf(line, sizeof(line), "promises %zu\n", cbtab_count(o->cb));
	wr_bytes(&o->wr, line, strlen(line));
	snprintf(line, sizeof(line), "incarnation %llu\n", (unsigned long long)o->info.incarnation);
	wr_bytes(&o->wr, line, strlen(line));
	rep->data = o->wr.buf;
	rep->data_len = (uint32_t)o->wr.len;
	return 0;
}

static int op_create(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	const struct cred *c = &req->cred;
	uint32_t type = req->mode & S_IFMT;
	struct vnode d, v, tmp;
	struct dent de;
	struct wtime now;
	int ret;

	o->st.create_calls++;
	ret = get_dir(t, &req->fid, &d);
	if (ret < 0)
		return ret;
	ret = perm(c, &d, PERM_W | PERM_X);
	if (ret < 0)
		return ret;
	if (!name_valid(req->name))
		return -EINVAL;
	if (req->fid2.vol != req->fid.vol)
		return -EXDEV;
	if (fid_is_root(&req->fid2))
		return -EEXIST;
	static const uint8_t zero[OID_LEN];
	if (memcmp(req->fid2.oid, zero, OID_LEN) == 0)
		return -EINVAL;
	switch (type) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	case S_IFLNK:
		if (req->target[0] == '\0')
			return -ENOENT;
		break;
	default:
		return -EINVAL;
	}
	ret = meta_dirent_get(t, &req->fid, req->name, &de);
	if (ret == 0)
		return -EEXIST;
	if (ret != -ENOENT)
		return ret;
	ret = meta_vnode_get(t, &req->fid2, &tmp);
	if (ret == 0)
		return -EEXIST;
	if (ret != -ENOENT)
		return ret;
	if (type == S_IFDIR && d.nlink >= OPS_LINK_MAX)
		return -EMLINK;

	now_wtime(&now);
	memset(&v, 0, sizeof(v));
	v.fid = req->fid2;
	v.mode = type | (req->mode & 07777);
	v.uid = c->uid;
	v.gid = (d.mode & S_ISGID) ? d.gid : c->gid;
	if (type == S_IFDIR && (d.mode & S_ISGID))
		v.mode |= S_ISGID;
	else if (type != S_IFDIR && (v.mode & S_ISGID) && c->uid != 0 && !in_group(c, v.gid))
		v.mode &= ~(uint32_t)S_ISGID;
	v.nlink = type == S_IFDIR ? 2 : 1;
	if (type == S_IFCHR || type == S_IFBLK)
		v.rdev = req->rdev;
	/* Every object names the directory that binds it (for a file with
	 * hard links, the latest): resolution's prune tells by it that a file
	 * was moved out of a directory removed elsewhere. */
	memcpy(v.parent, req->fid.oid, OID_LEN);
	if (type == S_IFDIR)
		v.size = DIR_SIZE;
	if (type == S_IFLNK) {
		snprintf(v.target, sizeof(v.target), "%s", req->target);
		v.size = strlen(v.target);
	}
	v.atime = v.mtime = v.ctime = now;
	v.data_version = 1;
	bump(o, &v, req);
	ret = meta_vnode_put(t, &v);
	if (ret < 0)
		return ret;
	memcpy(de.oid, v.fid.oid, OID_LEN);
	de.type = type;
	ret = meta_dirent_put(t, &req->fid, req->name, &de);
	if (ret < 0)
		return ret;
	if (type == S_IFDIR)
		d.nlink++;
	dir_changed(o, &d, &now, req);
	ret = meta_vnode_put(t, &d);
	if (ret < 0)
		return ret;
	o->fx.d_objects++;
	fx_changed(&o->fx, &d.fid);
	vnode_to_attr(&v, &rep->attr);
	vnode_to_attr(&d, &rep->attr2);
	return 0;
}

static int op_remove(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	const struct cred *c = &req->cred;
	struct vnode d, v;
	struct dent de;
	struct wtime now;
	struct fid cf;
	int ret;

	o->st.remove_calls++;
	ret = get_dir(t, &req->fid, &d);
	if (ret < 0)
		return ret;
	ret = perm(c, &d, PERM_W | PERM_X);
	if (ret < 0)
		return ret;
	if (!name_valid(req->name))
		return -EINVAL;
	ret = meta_dirent_get(t, &req->fid, req->name, &de);
	if (ret < 0)
		return ret;
	cf.vol = req->fid.vol;
	memcpy(cf.oid, de.oid, OID_LEN);
	ret = meta_vnode_get(t, &cf, &v);
	if (ret < 0)
		return ret == -ENOENT ? -EIO : ret;
	if (req->mflags & REMOVE_DIR) {
		if (!S_ISDIR(v.mode))
			return -ENOTDIR;
		ret = meta_dir_empty(t, &v.fid);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return -ENOTEMPTY;
	} else if (S_ISDIR(v.mode)) {
		return -EISDIR;
	}
	ret = sticky_ok(c, &d, &v);
	if (ret < 0)
		return ret;

	now_wtime(&now);
	ret = meta_dirent_del(t, &req->fid, req->name);
	if (ret < 0)
		return ret;
	if (S_ISDIR(v.mode) && d.nlink > 2)
		d.nlink--;
	ret = drop_link(o, t, &v, &now, req);
	if (ret < 0)
		return ret;
	dir_changed(o, &d, &now, req);
	ret = meta_vnode_put(t, &d);
	if (ret < 0)
		return ret;
	fx_changed(&o->fx, &d.fid);
	vnode_to_attr(&v, &rep->attr);
	vnode_to_attr(&d, &rep->attr2);
	return 0;
}

static int op_link(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	const struct cred *c = &req->cred;
	struct vnode d, v;
	struct dent de;
	struct wtime now;
	int ret;

	o->st.link_calls++;
	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret < 0)
		return ret;
	ret = get_dir(t, &req->fid2, &d);
	if (ret < 0)
		return ret;
	if (req->fid.vol != req->fid2.vol)
		return -EXDEV;
	if (S_ISDIR(v.mode))
		return -EPERM;
	ret = perm(c, &d, PERM_W | PERM_X);
	if (ret < 0)
		return ret;
	if (!name_valid(req->name))
		return -EINVAL;
	ret = meta_dirent_get(t, &req->fid2, req->name, &de);
	if (ret == 0)
		return -EEXIST;
	if (ret != -ENOENT)
		return ret;
	if (v.nlink >= OPS_LINK_MAX)
		return -EMLINK;

	now_wtime(&now);
	memcpy(de.oid, v.fid.oid, OID_LEN);
	de.type = v.mode & S_IFMT;
	ret = meta_dirent_put(t, &req->fid2, req->name, &de);
	if (ret < 0)
		return ret;
	v.nlink++;
	v.ctime = now;
	bump(o, &v, req);
	ret = meta_vnode_put(t, &v);
	if (ret < 0)
		return ret;
	dir_changed(o, &d, &now, req);
	ret = meta_vnode_put(t, &d);
	if (ret < 0)
		return ret;
	fx_changed(&o->fx, &v.fid);
	fx_changed(&o->fx, &d.fid);
	vnode_to_attr(&v, &rep->attr);
	vnode_to_attr(&d, &rep->attr2);
	return 0;
}

/* -EINVAL if the directory `from` is `anc` or lies below it. */
static int check_not_below(struct meta_txn *t, const struct fid *from, const struct fid *anc)
{
	struct fid cur = *from;
	struct vnode v;
	int ret;

	for (int i = 0; i < WALK_MAX; i++) {
		if (fid_eq(&cur, anc))
			return -EINVAL;
		if (fid_is_root(&cur))
			return 0;
		ret = meta_vnode_get(t, &cur, &v);
		if (ret < 0)
			return ret == -ENOENT ? -EIO : ret;
		if (memcmp(v.parent, cur.oid, OID_LEN) == 0)
			return 0;
		memcpy(cur.oid, v.parent, OID_LEN);
	}
	log_err("ops", "parent chain longer than %d: a cycle?", WALK_MAX);
	return -ELOOP;
}

static int op_rename(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	const struct cred *c = &req->cred;
	const uint32_t flags = req->mflags;
	struct vnode sdv, ddv, s, dst;
	struct vnode *sd = &sdv, *dd = &ddv;
	struct dent sde, dde;
	struct wtime now;
	struct fid f;
	bool same, exists, s_dir, d_dir = false;
	int ret;

	o->st.rename_calls++;
	if ((flags & ~(uint32_t)(RENAME_F_NOREPLACE | RENAME_F_EXCHANGE)) != 0 ||
	    ((flags & RENAME_F_NOREPLACE) && (flags & RENAME_F_EXCHANGE)))
		return -EINVAL;
	if (!name_valid(req->name) || !name_valid(req->name2))
		return -EINVAL;
	same = fid_eq(&req->fid, &req->fid2);
	ret = get_dir(t, &req->fid, sd);
	if (ret < 0)
		return ret;
	if (same) {
		dd = sd;
	} else {
		ret = get_dir(t, &req->fid2, dd);
		if (ret < 0)
			return ret;
	}
	if (req->fid.vol != req->fid2.vol)
		return -EXDEV;
	ret = perm(c, sd, PERM_W | PERM_X);
	if (ret == 0)
		ret = perm(c, dd, PERM_W | PERM_X);
	if (ret < 0)
		return ret;
	ret = meta_dirent_get(t, &sd->fid, req->name, &sde);
	if (ret < 0)
		return ret;
	f.vol = sd->fid.vol;
	memcpy(f.oid, sde.oid, OID_LEN);
	ret = meta_vnode_get(t, &f, &s);
	if (ret < 0)
		return ret == -ENOENT ? -EIO : ret;
	ret = meta_dirent_get(t, &dd->fid, req->name2, &dde);
	if (ret < 0 && ret != -ENOENT)
		return ret;
	exists = ret == 0;
	if (exists && (flags & RENAME_F_NOREPLACE))
		return -EEXIST;
	if (!exists && (flags & RENAME_F_EXCHANGE))
		return -ENOENT;
	if (exists && memcmp(dde.oid, sde.oid, OID_LEN) == 0) {
		/* Same object (same name or another hard link): POSIX no-op. */
		vnode_to_attr(sd, &rep->attr);
		vnode_to_attr(dd, &rep->attr2);
		return 0;
	}
	if (exists) {
		f.vol = dd->fid.vol;
		memcpy(f.oid, dde.oid, OID_LEN);
		ret = meta_vnode_get(t, &f, &dst);
		if (ret < 0)
			return ret == -ENOENT ? -EIO : ret;
		d_dir = S_ISDIR(dst.mode);
	}
	s_dir = S_ISDIR(s.mode);
	ret = sticky_ok(c, sd, &s);
	if (ret == 0 && exists)
		ret = sticky_ok(c, dd, &dst);
	if (ret < 0)
		return ret;
	/* Moving a directory to another parent rewrites its "..": Linux
	 * wants write permission on it. */
	if (s_dir && !same) {
		ret = perm(c, &s, PERM_W);
		if (ret < 0)
			return ret;
		ret = check_not_below(t, &dd->fid, &s.fid);
		if (ret < 0)
			return ret;
	}
	if ((flags & RENAME_F_EXCHANGE) && d_dir && !same) {
		ret = perm(c, &dst, PERM_W);
		if (ret < 0)
			return ret;
		ret = check_not_below(t, &sd->fid, &dst.fid);
		if (ret < 0)
			return ret;
	}
	if (exists && !(flags & RENAME_F_EXCHANGE)) {
		if (s_dir && !d_dir)
			return -ENOTDIR;
		if (!s_dir && d_dir)
			return -EISDIR;
		if (d_dir) {
			ret = meta_dir_empty(t, &dst.fid);
			if (ret < 0)
				return ret;
			if (ret == 0)
				return -ENOTEMPTY;
		}
	}

	now_wtime(&now);
	if (flags & RENAME_F_EXCHANGE) {
		struct dent a = { .type = dst.mode & S_IFMT }, b = { .type = s.mode & S_IFMT };
		memcpy(a.oid, dst.fid.oid, OID_LEN);
		memcpy(b.oid, s.fid.oid, OID_LEN);
		ret = meta_dirent_put(t, &sd->fid, req->name, &a);
		if (ret == 0)
			ret = meta_dirent_put(t, &dd->fid, req->name2, &b);
		if (ret < 0)
			return ret;
		if (!same) {
			memcpy(s.parent, dd->fid.oid, OID_LEN);
			memcpy(dst.parent, sd->fid.oid, OID_LEN);
			if (s_dir) {
				sd->nlink--;
				dd->nlink++;
			}
			if (d_dir) {
				dd->nlink--;
				sd->nlink++;
			}
		}
		dst.ctime = now;
		bump_link(o, &dst, req);
		ret = meta_vnode_put(t, &dst);
		if (ret < 0)
			return ret;
		fx_changed(&o->fx, &dst.fid);
	} else {
		if (exists) {
			if (d_dir && dd->nlink > 2)
				dd->nlink--;
			ret = drop_link(o, t, &dst, &now, req);
			if (ret < 0)
				return ret;
		}
		ret = meta_dirent_del(t, &sd->fid, req->name);
		if (ret < 0)
			return ret;
		dde.type = s.mode & S_IFMT;
		memcpy(dde.oid, s.fid.oid, OID_LEN);
		ret = meta_dirent_put(t, &dd->fid, req->name2, &dde);
		if (ret < 0)
			return ret;
		if (!same)
			memcpy(s.parent, dd->fid.oid, OID_LEN);
		if (s_dir && !same) {
			if (sd->nlink > 2)
				sd->nlink--;
			dd->nlink++;
		}
	}
	s.ctime = now;
	bump_link(o, &s, req);
	ret = meta_vnode_put(t, &s);
	if (ret < 0)
		return ret;
	dir_changed(o, sd, &now, req);
	ret = meta_vnode_put(t, sd);
	if (ret < 0)
		return ret;
	if (!same) {
		dir_changed(o, dd, &now, req);
		ret = meta_vnode_put(t, dd);
		if (ret < 0)
			return ret;
	}
	fx_changed(&o->fx, &s.fid);
	fx_changed(&o->fx, &sd->fid);
	fx_changed(&o->fx, &dd->fid);
	vnode_to_attr(sd, &rep->attr);
	vnode_to_attr(dd, &rep->attr2);
	return 0;
}

/* The data version of a regular file's new contents: derived from the
 * StoreId of the update that wrote them, so that every replica performing it
 * names them alike. Clients compare data versions across replicas (cache
 * validity, FETCH and STORE expectations), and per-replica counters drift
 * apart as soon as one replica misses an update. Bit 62 is set so it never
 * equals a counter's value; a counter step only without a StoreId, or if
 * the name would not change (the same update again). Resolution installs
 * keep the source's version (op_res_install). */
static uint64_t file_dv(const struct vnode *v, const struct storeid *sid)
{
	uint64_t x;

	if (storeid_is_zero(sid))
		return v->data_version + 1;
	x = sid->client * 0x9e3779b97f4a7c15ull ^ (sid->seq + 1) * 0xc2b2ae3d27d4eb4full;
	x ^= x >> 31;
	x = (x & ((1ull << 62) - 1)) | (1ull << 62);
	return x == v->data_version ? v->data_version + 1 : x;
}

/* Makes a new container version of v with size bytes (copying what the
 * old one has up to size). Fills o->fx; updates v's size and version. */
static int new_version_sized(struct ops *o, struct meta_txn *t, struct vnode *v, uint64_t size,
			     const struct storeid *sid)
{
	char path[256];
	uint64_t ndv = file_dv(v, sid);
	int fd, ret, n_inl = -ENOENT;

	if (v->size <= META_INLINE_MAX) {
		n_inl = meta_inline_get(t, &v->fid, v->data_version, 0, o->buf, META_INLINE_MAX);
		if (n_inl < 0 && n_inl != -ENOENT)
			return n_inl;
	}
	if (n_inl >= 0) {
		ret = meta_inline_del(t, &v->fid);
		if (ret < 0)
			return ret;
	}
	if (n_inl >= 0 && size <= META_INLINE_MAX) {
		/* Small to small: the new version stays inline. */
		if ((uint64_t)n_inl < size)
			memset(o->buf + n_inl, 0, size - (uint64_t)n_inl);
		if (size > 0) {
			ret = meta_inline_put(t, &v->fid, ndv, o->buf, size);
			if (ret < 0)
				return ret;
		}
	} else if (size > 0) {
		ret = store_tmp_create(o->store, &fd, path, sizeof(path));
		if (ret < 0)
			return ret;
		if (n_inl >= 0)
			ret = fs_pwrite_all(fd, o->buf, (size_t)n_inl, 0);
		else
			ret = store_copy(o->store, &v->fid, v->data_version,
					 v->size < size ? v->size : size, fd);
		if (ret == 0 && ftruncate(fd, (off_t)size) < 0)
			ret = -errno;
		if (ret == 0)
			ret = store_install(o->store, path, &v->fid, ndv);
		if (ret < 0) {
			close(fd);
			unlink(path);
			return ret;
		}
		o->fx.fd = fd;
		o->fx.newc.fid = v->fid;
		o->fx.newc.dv = ndv;
		o->fx.has_newc = true;
	}
	fx_oldc(&o->fx, &v->fid, v->data_version);
	v->data_version = ndv;
	v->size = size;
	return 0;
}

static int op_setattr(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	const struct cred *c = &req->cred;
	const struct sattr *sa = &req->sattr;
	const uint32_t valid = sa->valid;
	struct vnode v;
	struct wtime now;
	bool root = c->uid == 0, owner;
	int ret;

	o->st.setattr_calls++;
	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret < 0)
		return ret;
	owner = c->uid == v.uid;
	if ((valid & SA_MODE) && !root && !owner)
		return -EPERM;
	if ((valid & SA_UID) && !root && !(owner && sa->uid == v.uid))
		return -EPERM;
	if ((valid & SA_GID) && !root && !(owner && (sa->gid == v.gid || in_group(c, sa->gid))))
		return -EPERM;
	if (valid & SA_SIZE) {
		if (S_ISDIR(v.mode))
			return -EISDIR;
		if (!S_ISREG(v.mode))
			return -EINVAL;
		ret = perm(c, &v, PERM_W);
		if (ret < 0)
			return ret;
		if (sa->size > (1ull << 52))
			return -EFBIG;
	}
	if ((valid & (SA_ATIME | SA_MTIME)) && !root && !owner)
		return -EPERM;
	if ((valid & (SA_ATIME_NOW | SA_MTIME_NOW)) && !root && !owner) {
		ret = perm(c, &v, PERM_W);
		if (ret < 0)
			return ret;
	}

	now_wtime(&now);
	if (valid & SA_UID)
		v.uid = sa->uid;
	if (valid & SA_GID)
		v.gid = sa->gid;
	if ((valid & (SA_UID | SA_GID)) && !(valid & SA_MODE) && !S_ISDIR(v.mode)) {
		v.mode &= ~(uint32_t)S_ISUID;
		if (v.mode & S_IXGRP)
			v.mode &= ~(uint32_t)S_ISGID;
	}
	if (valid & SA_MODE) {
		uint32_t m = sa->mode & 07777;
		if (!root && !in_group(c, v.gid))
			m &= ~(uint32_t)S_ISGID;
		v.mode = (v.mode & S_IFMT) | m;
	}
	if (valid & SA_SIZE) {
		ret = new_version_sized(o, t, &v, sa->size, &req->sid);
		if (ret < 0)
			return ret;
		v.mtime = now;
	}
	if (valid & SA_ATIME)
		v.atime = sa->atime;
	else if (valid & SA_ATIME_NOW)
		v.atime = now;
	if (valid & SA_MTIME)
		v.mtime = sa->mtime;
	else if (valid & SA_MTIME_NOW)
		v.mtime = now;
	v.ctime = now;
	bump(o, &v, req);
	ret = meta_vnode_put(t, &v);
	if (ret < 0)
		return ret;
	fx_changed(&o->fx, &v.fid);
	vnode_to_attr(&v, &rep->attr);
	return 0;
}

/* The metadata half of a completed store: v becomes version ndv. */
static int store_finish(struct ops *o, struct meta_txn *t, const struct msg *req, struct vnode *v,
			uint64_t ndv, struct msg *rep)
{
	struct wtime now;
	int ret;

	now_wtime(&now);
	v->data_version = ndv;
	v->size = req->length;
	v->mtime = (req->sattr.valid & SA_MTIME) ? req->sattr.mtime : now;
	v->ctime = now;
	if (req->cred.uid != 0) {
		v->mode &= ~(uint32_t)S_ISUID;
		if (v->mode & S_IXGRP)
			v->mode &= ~(uint32_t)S_ISGID;
	}
	bump(o, v, req);
	ret = meta_vnode_put(t, v);
	if (ret < 0)
		return ret;
	fx_changed(&o->fx, &v->fid);
	vnode_to_attr(v, &rep->attr);
	return 0;
}

/* A whole small STORE_REINT upload in one chunk: kept in memory (if the
 * server's budget for them has room, else in a temp file). */
static bool upload_small(struct ops *o, const struct msg *req)
{
	const uint32_t all = STORE_FIRST | STORE_LAST | STORE_REINT;

	return (req->mflags & (all | STORE_ABORT)) == all && req->offset == 0 &&
	       req->length <= STORE_MEM_MAX && req->data_len <= req->length &&
	       store_mem_room(o->store, (size_t)req->length);
}

static int upload_mem(struct ops *o, struct ops_conn *oc, const struct msg *req)
{
	struct pstore *p = store_set_find(oc->stores, req->handle);

	if (p != NULL)
		store_set_drop(o->store, oc->stores, p);
	o->st.store_bytes += req->data_len;
	return store_set_add_mem(o->store, oc->stores, req->handle, &req->fid, req->data,
				 req->data_len, (size_t)req->length, &p);
}

/* One chunk of a container upload under req->handle: STORE_FIRST starts the
 * connection's partial store afresh (dropping one left under that handle),
 * a later chunk must continue one of the same fid. Returns 0 with *pp set;
 * an error refused before the write (-EBADF, -EINVAL, store_set_add's) with
 * *pp NULL, nothing dropped; or the write's error with *pp set, for the
 * caller to drop. */
static int upload_chunk(struct ops *o, struct ops_conn *oc, const struct msg *req,
			struct pstore **pp)
{
	struct pstore *p = store_set_find(oc->stores, req->handle);
	int ret;

	*pp = NULL;
	if (req->mflags & STORE_FIRST) {
		if (p != NULL)
			store_set_drop(o->store, oc->stores, p);
		ret = store_set_add(o->store, oc->stores, req->handle, &req->fid, &p);
		if (ret < 0)
			return ret;
	} else if (p == NULL) {
		return -EBADF;
	} else if (!fid_eq(&p->fid, &req->fid)) {
		return -EINVAL;
	}
	*pp = p;
	return store_set_write(o->store, p, req->data, req->data_len, req->offset);
}

/* A STORE_REINT upload for an object that does not exist yet: a create
 * record of the REINTEGRATE batch that names the upload makes it first.
 * The chunks are kept under the handle like any upload; nothing about the
 * object is checked now (there is none): the store record's install runs
 * every check of a store (op_store, STORE_LAST) once the object exists,
 * and drops the upload if the record fails. The reply's ATTR names the fid
 * and nothing else. */
static int store_reint_ahead(struct ops *o, struct ops_conn *oc, const struct msg *req,
			     struct msg *rep)
{
	const uint32_t fl = req->mflags;
	struct pstore *p;
	int ret;

	memset(&rep->attr, 0, sizeof(rep->attr));
	rep->attr.fid = req->fid;
	if (upload_small(o, req))
		return upload_mem(o, oc, req);
	ret = upload_chunk(o, oc, req, &p);
	if (ret == 0 && (fl & STORE_LAST))
		ret = reint_store_done(p, req->length);
	if (ret < 0) {
		if (p != NULL)
			store_set_drop(o->store, oc->stores, p);
		return ret;
	}
	o->st.store_bytes += req->data_len;
	return 0;
}

static int op_store(struct ops *o, struct meta_txn *t, struct ops_conn *oc, const struct msg *req,
		    struct msg *rep)
{
	const uint32_t fl = req->mflags;
	struct pstore *p;
	struct vnode v;
	uint64_t ndv;
	int ret;

	o->st.store_calls++;
	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret == -ENOENT && (fl & STORE_REINT) && !(fl & STORE_ABORT))
		return store_reint_ahead(o, oc, req, rep);
	if (ret < 0)
		goto out_drop;
	p = store_set_find(oc->stores, req->handle);
	if (fl & STORE_ABORT) {
		if (p != NULL)
			store_set_drop(o->store, oc->stores, p);
		vnode_to_attr(&v, &rep->attr);
		return 0;
	}
	if (S_ISDIR(v.mode)) {
		ret = -EISDIR;
		goto out_drop;
	}
	if (!S_ISREG(v.mode)) {
		ret = -EINVAL;
		goto out_drop;
	}
	ret = perm(&req->cred, &v, PERM_W);
	if (ret < 0)
		goto out_drop;
	if ((fl & STORE_FIRST) && (fl & STORE_LAST) && !(fl & STORE_REINT) && req->offset == 0 &&
	    req->data_len == req->length && req->length <= META_INLINE_MAX) {
		/* A small file in one chunk: inline, no container. */
		if (p != NULL)
			store_set_drop(o->store, oc->stores, p);
		if (req->expect != 0 && req->expect != v.data_version)
			return -ERR_VERSION;
		ndv = file_dv(&v, &req->sid);
		ret = req->data_len > 0 ? meta_inline_put(t, &v.fid, ndv, req->data, req->data_len)
					: meta_inline_del(t, &v.fid);
		if (ret < 0)
			return ret;
		o->st.store_bytes += req->data_len;
		o->st.store_inline++;
		fx_oldc(&o->fx, &v.fid, v.data_version);
		return store_finish(o, t, req, &v, ndv, rep);
	}
	if (upload_small(o, req)) {
		ret = upload_mem(o, oc, req);
		if (ret < 0)
			return ret;
		vnode_to_attr(&v, &rep->attr);
		return 0;
	}
	ret = upload_chunk(o, oc, req, &p);
	if (ret < 0 && p == NULL)
		return ret; /* refused before any write: nothing to drop */
	if (ret < 0)
		goto out_drop;
	o->st.store_bytes += req->data_len;
	if (!(fl & STORE_LAST)) {
		vnode_to_attr(&v, &rep->attr);
		return 0;
	}
	if (fl & STORE_REINT) {
		/* Complete, kept under the handle for a REINTEGRATE store record
		 * (server/reint.c), which installs it atomically with its batch. */
		ret = reint_store_done(p, req->length);
		if (ret < 0)
			goto out_drop;
		vnode_to_attr(&v, &rep->attr);
		return 0;
	}

	if (req->expect != 0 && req->expect != v.data_version) {
		ret = -ERR_VERSION;
		goto out_drop;
	}
	if (req->length > (1ull << 52)) {
		ret = -EFBIG;
		goto out_drop;
	}
	if (ftruncate(p->fd, (off_t)req->length) < 0) {
		ret = -errno;
		goto out_drop;
	}
	ndv = file_dv(&v, &req->sid);
	ret = store_install(o->store, p->path, &v.fid, ndv);
	if (ret < 0)
		goto out_drop;
	o->fx.fd = p->fd;
	o->fx.newc.fid = v.fid;
	o->fx.newc.dv = ndv;
	o->fx.has_newc = true;
	store_set_detach(o->store, oc->stores, p);
	fx_oldc(&o->fx, &v.fid, v.data_version);
	ret = meta_inline_del(t, &v.fid);
	if (ret < 0)
		return ret;
	return store_finish(o, t, req, &v, ndv, rep);

out_drop:
	/* A failed chunk ends its store: the client restarts with FIRST. */
	p = store_set_find(oc->stores, req->handle);
	if (p != NULL)
		store_set_drop(o->store, oc->stores, p);
	return ret;
}

static bool is_update(const struct msg *req)
{
	switch (req->type) {
	case MSG_SETATTR:
	case MSG_CREATE:
	case MSG_REMOVE:
	case MSG_RENAME:
	case MSG_LINK:
		return true;
	case MSG_STORE:
		return (req->mflags & STORE_LAST) && !(req->mflags & (STORE_ABORT | STORE_REINT));
	case MSG_COP2:
	case MSG_COP2_BATCH:
	case MSG_RES_APPLY:
	case MSG_RES_MARK:
		return true;
	case MSG_RES_INSTALL:
		return (req->mflags & (STORE_LAST | RES_INSTALL_STATUS)) &&
		       !(req->mflags & STORE_ABORT);
	default:
		return false;
	}
}

static int repl_exec(struct ops *o, struct meta_txn *t, struct ops_conn *oc, const struct msg *req,
		     struct msg *rep);

static int run(struct ops *o, struct meta_txn *t, struct ops_conn *oc, const struct msg *req,
	       struct msg *rep)
{
	switch (req->type) {
	case MSG_GETROOT:
		return op_getroot(o, t, req, rep);
	case MSG_GETATTR:
		return op_getattr(o, t, req, rep);
	case MSG_LOOKUP:
		return op_lookup(o, t, req, rep);
	case MSG_SETATTR:
		return op_setattr(o, t, req, rep);
	case MSG_CREATE:
		return op_create(o, t, req, rep);
	case MSG_REMOVE:
		return op_remove(o, t, req, rep);
	case MSG_RENAME:
		return op_rename(o, t, req, rep);
	case MSG_LINK:
		return op_link(o, t, req, rep);
	case MSG_READLINK:
		return op_readlink(o, t, req, rep);
	case MSG_READDIR:
		return op_readdir(o, t, req, rep);
	case MSG_FETCH:
		return op_fetch(o, t, oc, req, rep);
	case MSG_STORE:
		return op_store(o, t, oc, req, rep);
	case MSG_STATFS:
		return op_statfs(o, t, req, rep);
	case MSG_STATS:
		return op_stats(o, t, rep);
	case MSG_VOLINFO:
	case MSG_COP2:
	case MSG_COP2_BATCH:
	case MSG_CONFLICTS:
	case MSG_RES_GET:
	case MSG_RES_SCAN:
	case MSG_RES_INSTALL:
	case MSG_RES_LOG:
	case MSG_RES_APPLY:
	case MSG_RES_MARK:
		return repl_exec(o, t, oc, req, rep);
	case MSG_PING:
		o->st.ping_calls++;
		rep->server_id = o->info.server_id;
		rep->incarnation = o->info.incarnation;
		return 0;
	default:
		return -ENOSYS;
	}
}

/* Applies a successful update's volume accounting inside its txn. */
static int fx_volume(struct ops *o, struct meta_txn *t, uint32_t vol)
{
	struct volrec vr;
	int ret = meta_volume_get(t, vol, &vr);
	if (ret < 0)
		return ret == -ENOENT ? -ESTALE : ret;
	vr.stamp++;
	if (o->fx.d_objects < 0 && (uint64_t)-o->fx.d_objects > vr.n_objects)
		vr.n_objects = 0;
	else
		vr.n_objects = (uint64_t)((int64_t)vr.n_objects + o->fx.d_objects);
	return meta_volume_put(t, &vr);
}

static void batch_sync_vol(struct ops *o, uint32_t vol)
{
	for (size_t i = 0; i < o->n_vols; i++)
		if (o->vols[i] == vol)
			return;
	if (o->n_vols < BATCH_VOLS_MAX) {
		o->vols[o->n_vols++] = vol;
		return;
	}
	int ret = store_sync_vol(o->store, vol); /* rare: many volumes in one batch */
	if (ret < 0)
		log_err("ops", "cannot fsync volume %u directory: %s", vol, err_str(ret));
}

static void promise_attr(struct ops *o, struct ops_conn *oc, const struct attr *a)
{
	if (a->nlink > 0 || S_ISDIR(a->mode))
		cb_promise(o->cb, oc->holder, &a->fid);
}

static int repl_pre(struct ops *o, struct meta_txn *t, const struct ops_conn *oc,
		    const struct msg *req);
static int repl_post(struct ops *o, struct meta_txn *t, const struct msg *req,
		     const struct msg *rep);

bool ops_exec(struct ops *o, struct ops_conn *oc, const struct msg *req, struct msg *rep)
{
	bool upd = is_update(req);
	struct meta_txn *t = NULL;
	int ret;

	o->st.calls++;
	if (o->seg_fd >= 0) {
		/* The previous reply's segment was not taken: drop it. */
		close(o->seg_fd);
		o->seg_fd = -1;
	}
	if (o->txn == NULL) {
		ret = meta_begin(o->meta, NULL, false, &o->txn);
		if (ret < 0) {
			log_err("ops", "cannot begin transaction: %s", err_str(ret));
			rep->status = ret;
			o->st.errors++;
			return upd;
		}
		o->st.batches++;
	}
	if (req->type == MSG_REINTEGRATE) {
		/* server/reint.c: its records run through ops_exec, each an update of
		 * this batch; it also writes the client's mark in the batch txn. */
		if (reint_exec(o, o->txn, oc, req, rep, &o->wr))
			o->dirty = true;
		if (rep->status < 0)
			o->st.errors++;
		return true;
	}
	if (!upd) {
		ret = run(o, o->txn, oc, req, rep);
		goto out;
	}

	memset(&o->fx, 0, sizeof(o->fx));
	o->fx_oldc.n = 0;
	o->fx.fd = -1;
	ret = meta_begin(o->meta, o->txn, false, &t);
	if (ret < 0)
		goto out;
	ret = repl_pre(o, t, oc, req);
	if (ret == 0)
		ret = run(o, t, oc, req, rep);
	if (ret == 0)
		ret = repl_post(o, t, req, rep);
	if (ret == 0 && req->type != MSG_COP2 && req->type != MSG_COP2_BATCH)
		ret = fx_volume(o, t, req->fid.vol);
	if (ret == 0) {
		ret = meta_commit(t);
	} else {
		meta_abort(t);
	}
	if (ret < 0) {
		if (o->fx.fd >= 0)
			close(o->fx.fd);
		if (o->fx.has_newc)
			store_unlink(o->store, &o->fx.newc.fid, o->fx.newc.dv);
		goto out;
	}
	o->dirty = true;
	if (o->fx.fd >= 0)
		VEC_PUSH(o->fds, o->fx.fd);
	if (o->fx.has_newc) {
		VEC_PUSH(o->newc, o->fx.newc);
		batch_sync_vol(o, o->fx.newc.fid.vol);
	}
	for (size_t i = 0; i < o->fx_oldc.n; i++)
		VEC_PUSH(o->oldc, o->fx_oldc.v[i]);
	for (size_t i = 0; i < o->fx.n_oldc; i++)
		VEC_PUSH(o->oldc, o->fx.oldc[i]);
	for (size_t i = 0; i < o->fx.n_changed; i++)
		o->st.cb_breaks +=
			cb_break(o->cb, &o->fx.changed[i], oc->holder, o->brk, o->brk_arg);

out:
	/* Nothing silently reads one side of a conflict; peers resolving it may. */
	if (ret == 0 && req->type == MSG_FETCH && (rep->attr.flags & ATTR_F_CONFLICT) &&
	    !oc->server) {
		rep->data = NULL;
		rep->data_len = 0;
		ret = -ERR_CONFLICT;
	}
	rep->status = ret;
	if (ret < 0) {
		o->st.errors++;
		return upd;
	}
	if (oc->server)
		return upd; /* peers hold no callback promises */
	uint32_t fields = msg_fields(req->type, true);
	if (fields & F_ATTR)
		promise_attr(o, oc, &rep->attr);
	if (fields & F_ATTR2)
		promise_attr(o, oc, &rep->attr2);
	return upd;
}

int ops_take_segment(struct ops *o, uint64_t *off)
{
	int fd = o->seg_fd;

	o->seg_fd = -1;
	*off = o->seg_off;
	return fd;
}

int ops_batch_end(struct ops *o)
{
	int ret = 0;

	if (o->txn == NULL)
		return 0;
	if (!o->dirty) {
		meta_abort(o->txn);
		o->txn = NULL;
		return 0;
	}
	for (size_t i = 0; i < o->fds.n; i++) {
		if (ret == 0 && fsync(o->fds.v[i]) < 0) {
			ret = -errno;
			log_err("ops", "cannot fsync container: %s", strerror(errno));
		}
		o->st.fsyncs++;
		close(o->fds.v[i]);
	}
	for (size_t i = 0; i < o->n_vols && ret == 0; i++) {
		ret = store_sync_vol(o->store, o->vols[i]);
		o->st.fsyncs++;
	}
	if (ret == 0) {
		ret = meta_commit(o->txn);
		if (ret < 0)
			log_err("ops", "cannot commit batch: %s", err_str(ret));
	} else {
		meta_abort(o->txn);
	}
	o->txn = NULL;
	if (ret == 0) {
		o->st.commits++;
		for (size_t i = 0; i < o->oldc.n; i++)
			store_unlink(o->store, &o->oldc.v[i].fid, o->oldc.v[i].dv);
	} else {
		for (size_t i = 0; i < o->newc.n; i++)
			store_unlink(o->store, &o->newc.v[i].fid, o->newc.v[i].dv);
	}
	o->fds.n = 0;
	o->newc.n = 0;
	o->oldc.n = 0;
	o->n_vols = 0;
	o->dirty = false;
	return ret;
}

void ops_conn_release(struct ops *o, struct ops_conn *oc)
{
	store_set_release(o->store, oc->stores);
	cb_holder_release(o->cb, oc->holder);
}

int ops_format(const char *dir, uint32_t server_id, const char *realm, uint32_t vol,
	       uint32_t root_mode, uint32_t root_uid, uint32_t root_gid, const struct vsg *vsg)
{
	char path[4096];
	struct meta *m = NULL;
	struct meta_txn *t = NULL;
	struct store *st = NULL;
	struct srvinfo info;
	struct volrec vr;
	struct vnode v;
	int ret;

	if (snprintf(path, sizeof(path), "%s/meta", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (access(path, F_OK) == 0)
		return -EEXIST;
	ret = meta_open(path, true, &m);
	if (ret < 0)
		return ret;
	ret = store_open(dir, &st);
	if (ret < 0)
		goto out;
	ret = meta_begin(m, NULL, false, &t);
	if (ret < 0)
		goto out;
	ret = meta_info_get(t, &info);
	if (ret == 0) {
		ret = -EEXIST;
		goto out;
	}
	memset(&info, 0, sizeof(info));
	info.server_id = server_id;
	info.root_vol = vol;
	snprintf(info.realm, sizeof(info.realm), "%s", realm);
	ret = meta_info_put(t, &info);
	if (ret < 0)
		goto out;
	memset(&vr, 0, sizeof(vr));
	vr.vol = vol;
	vr.n_objects = 1;
	snprintf(vr.name, sizeof(vr.name), "%s.root", realm);
	vr.vsg = *vsg;
	ret = meta_volume_put(t, &vr);
	if (ret < 0)
		goto out;
	memset(&v, 0, sizeof(v));
	fid_make_root(&v.fid, vol);
	v.mode = S_IFDIR | (root_mode & 07777);
	v.nlink = 2;
	v.uid = root_uid;
	v.gid = root_gid;
	v.size = DIR_SIZE;
	now_wtime(&v.mtime);
	v.atime = v.ctime = v.mtime;
	v.data_version = 1;
	/* Every member creates the same root: all-zero vectors compare equal. */
	v.vv.n = vsg->n;
	memcpy(v.parent, v.fid.oid, OID_LEN);
	ret = meta_vnode_put(t, &v);
	if (ret < 0)
		goto out;
	ret = meta_commit(t);
	t = NULL;
out:
	meta_abort(t);
	store_close(st);
	meta_close(m);
	return ret;
}

/* ---- replication (docs/replication.md) ------------------------------------ */

static bool is_client_update(uint16_t type)
{
	switch (type) {
	case MSG_SETATTR:
	case MSG_CREATE:
	case MSG_REMOVE:
	case MSG_RENAME:
	case MSG_LINK:
	case MSG_STORE:
		return true;
	default:
		return false;
	}
}

/* F_XVER of an update: false if the client saw v at another StoreId (a
 * zero StoreId: any). Exact, so that an update never lands on a replica
 * that lacks one the client saw (docs/replication.md "Expected versions"). */
static bool xver_same(const struct vnode *v, const struct xver *x)
{
	return storeid_is_zero(&x->sid) || storeid_eq(&v->sid, &x->sid);
}

/* Before a client update: refuses changes to objects in conflict or at
 * another version than the client saw (missing here included), and
 * remembers what the directory log needs of the state before. */
static int repl_pre(struct ops *o, struct meta_txn *t, const struct ops_conn *oc,
		    const struct msg *req)
{
	struct vnode v;
	int ret;

	if (!is_client_update(req->type))
		return 0;
	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret == -ENOENT && !storeid_is_zero(&req->xver[0].sid))
		return refuse_behind(o); /* seen by the client: missing_behind */
	if (ret == 0 && (v.flags & ATTR_F_CONFLICT) && !oc->server)
		return -ERR_CONFLICT;
	/* Expected versions (F_XVER): this replica's object is not at the
	 * StoreId the client last saw: it missed an update (it is behind,
	 * e.g. back from a crash before resolution reached this object), or
	 * another client's update came first. Either way applying the update
	 * here would act on state the client never saw (and a name-based
	 * update would then carry one StoreId over different states): refuse;
	 * the client revalidates, and resolution brings a lagging replica
	 * level (the client asks for it when replicas answered differently). */
	if (ret == 0 && !xver_same(&v, &req->xver[0]))
		return refuse_behind(o);
	if (req->type == MSG_RENAME || req->type == MSG_LINK) {
		ret = meta_vnode_get(t, &req->fid2, &v);
		if (ret == -ENOENT && !storeid_is_zero(&req->xver[1].sid))
			return refuse_behind(o);
		if (ret == 0 && (v.flags & ATTR_F_CONFLICT))
			return -ERR_CONFLICT;
		if (ret == 0 && !xver_same(&v, &req->xver[1]))
			return refuse_behind(o);
	}
	if (req->type == MSG_RENAME && name_valid(req->name2) &&
	    meta_dirent_get(t, &req->fid2, req->name2, &o->fx.victim) == 0) {
		struct fid vf = { .vol = req->fid2.vol };
		memcpy(vf.oid, o->fx.victim.oid, OID_LEN);
		o->fx.has_victim = true;
		if (meta_vnode_get(t, &vf, &v) == 0) {
			o->fx.victim_vv = v.vv;
			if (o->slot < v.vv.n)
				o->fx.victim_vv.slot[o->slot]++;
		}
	}
	return 0;
}

static int log_rec(struct meta_txn *t, const struct fid *dir, uint8_t op, const char *name,
		   const uint8_t *child, const struct attr *ca, const struct msg *req)
{
	struct rlog_rec r;

	memset(&r, 0, sizeof(r));
	r.op = op;
	snprintf(r.name, sizeof(r.name), "%s", name);
	memcpy(r.child, child, OID_LEN);
	if (ca != NULL) {
		r.mode = ca->mode;
		r.uid = ca->uid;
		r.gid = ca->gid;
		if (op == RLOG_REMOVE || op == RLOG_RENAME_OUT)
			r.vv = ca->vv;
	}
	r.sid = req->sid;
	return repl_log_append(t, dir, &r);
}

/* After a client update: directory resolution log and pending COP2 entry. */
static int repl_post(struct ops *o, struct meta_txn *t, const struct msg *req,
		     const struct msg *rep)
{
	struct attr ca;
	struct vnode v;
	struct dent de;
	struct fid cf;
	int ret = 0;

	if (!is_client_update(req->type))
		return 0;
	switch (req->type) {
	case MSG_CREATE:
		ret = log_rec(t, &req->fid, RLOG_CREATE, req->name, req->fid2.oid, &rep->attr, req);
		break;
	case MSG_LINK:
		ret = log_rec(t, &req->fid2, RLOG_LINK, req->name, req->fid.oid, &rep->attr, req);
		break;
	case MSG_REMOVE:
		ret = log_rec(t, &req->fid, RLOG_REMOVE, req->name, rep->attr.fid.oid, &rep->attr,
			      req);
		break;
	case MSG_SETATTR:
		if (S_ISDIR(rep->attr.mode))
			ret = log_rec(t, &req->fid, RLOG_SETATTR, "", req->fid.oid, &rep->attr,
				      req);
		break;
	case MSG_RENAME:
		ret = meta_dirent_get(t, &req->fid2, req->name2, &de);
		if (ret < 0)
			return ret;
		cf.vol = req->fid.vol;
		memcpy(cf.oid, de.oid, OID_LEN);
		ret = meta_vnode_get(t, &cf, &v);
		if (ret < 0)
			return ret;
		vnode_to_attr(&v, &ca);
		if (o->fx.has_victim && memcmp(o->fx.victim.oid, de.oid, OID_LEN) == 0)
			break; /* a no-op rename of one object onto itself */
		if (req->mflags & RENAME_F_EXCHANGE) {
			struct attr xa = ca;
			ret = log_rec(t, &req->fid2, RLOG_RENAME_IN, req->name2, de.oid, &ca, req);
			if (ret == 0 && meta_dirent_get(t, &req->fid, req->name, &de) == 0) {
				cf.vol = req->fid.vol;
				memcpy(cf.oid, de.oid, OID_LEN);
				if (meta_vnode_get(t, &cf, &v) == 0)
					vnode_to_attr(&v, &xa);
				ret = log_rec(t, &req->fid, RLOG_RENAME_IN, req->name, de.oid, &xa,
					      req);
			}
			break;
		}
		if (o->fx.has_victim) {
			struct attr va = { .vv = o->fx.victim_vv, .mode = o->fx.victim.type };
			ret = log_rec(t, &req->fid2, RLOG_REMOVE, req->name2, o->fx.victim.oid, &va,
				      req);
			if (ret < 0)
				return ret;
		}
		ret = log_rec(t, &req->fid, RLOG_RENAME_OUT, req->name, ca.fid.oid, &ca, req);
		if (ret == 0)
			ret = log_rec(t, &req->fid2, RLOG_RENAME_IN, req->name2, ca.fid.oid, &ca,
				      req);
		break;
	default:
		break;
	}
	if (ret < 0)
		return ret;
	if (storeid_is_zero(&req->sid) || o->fx.n_upd == 0)
		return 0;
	return repl_cop2_add(t, req->fid.vol, &req->sid, o->fx.upd, o->fx.n_upd);
}

static int op_volinfo(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct volrec vr;
	uint32_t slot;
	int ret = meta_volume_get(t, req->fid.vol, &vr);
	if (ret < 0)
		return ret;
	rep->stamp = vr.stamp;
	return repl_vsg(t, req->fid.vol, o->info.server_id, &rep->vsg, &slot);
}

/* Phase two: the members of the update set (mflags: slot mask) performed
 * the update with this StoreId; count their increments here too. */
static int op_cop2(struct ops *o, struct meta_txn *t, const struct msg *req)
{
	uint8_t oids[REPL_COP2_MAX * 4][OID_LEN];
	struct vsg vsg;
	struct vnode v;
	uint32_t slot;
	size_t n;
	int ret;

	ret = repl_vsg(t, req->fid.vol, o->info.server_id, &vsg, &slot);
	if (ret < 0)
		return ret;
	ret = repl_cop2_take(t, req->fid.vol, &req->sid, oids, &n);
	if (ret == -ENOENT)
		return 0; /* never performed here, or phase two already done */
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct fid f = { .vol = req->fid.vol };
		memcpy(f.oid, oids[i], OID_LEN);
		ret = meta_vnode_get(t, &f, &v);
		if (ret == -ENOENT)
			continue; /* removed since */
		if (ret < 0)
			return ret;
		if (!storeid_eq(&v.sid, &req->sid))
			continue; /* updated again since: its vector moved on */
		while (v.vv.n < vsg.n)
			v.vv.slot[v.vv.n++] = 0;
		for (uint32_t s = 0; s < vsg.n; s++)
			if (s != slot && (req->mflags & (1u << s)))
				v.vv.slot[s]++;
		ret = meta_vnode_put(t, &v);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Phase two of many updates at once (a reintegration batch's records):
 * each entry as the COP2 it stands for, all in this update's child txn, so
 * the list costs one commit. A malformed list changes nothing. */
static int op_cop2_batch(struct ops *o, struct meta_txn *t, const struct msg *req)
{
	struct cml_cop2 e;
	struct msg *m;
	struct rd r;
	size_t n;
	int ret = cml_cop2_check(req->data, req->data_len, COP2_BATCH_MAX, &n);

	if (ret < 0)
		return ret;
	m = xmalloc(sizeof(*m));
	msg_init(m, MSG_COP2);
	m->fid = req->fid;
	rd_init(&r, req->data, req->data_len);
	while (ret == 0 && cml_cop2_next(&r, &e) == 1) {
		m->sid = e.sid;
		m->mflags = e.mask;
		ret = op_cop2(o, t, m);
	}
	free(m);
	return ret;
}

static int op_conflicts(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	uint8_t after[OID_LEN], last[OID_LEN];
	bool eof;
	int ret;

	if (req->name[0] != '\0') {
		struct fid f;
		char buf[FID_STR_LEN + 16];
		if (strlen(req->name) != 2 * OID_LEN)
			return -EINVAL;
		snprintf(buf, sizeof(buf), "00000000.%.32s", req->name);
		if (fid_parse(buf, &f) < 0)
			return -EINVAL;
		memcpy(after, f.oid, OID_LEN);
	}
	wr_reset(&o->wr);
	ret = repl_conflict_list(t, req->fid.vol, req->name[0] != '\0' ? after : NULL, &o->wr,
				 CHUNK_MAX, last, &eof);
	if (ret < 0)
		return ret;
	rep->mflags = eof ? RES_EOF : 0;
	rep->data = o->wr.len > 0 ? o->wr.buf : NULL;
	rep->data_len = (uint32_t)o->wr.len;
	return 0;
}

static int op_res_get(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct vnode v;
	int ret = meta_vnode_get(t, &req->fid, &v);
	(void)o;
	if (ret < 0)
		return ret;
	vnode_to_attr(&v, &rep->attr);
	snprintf(rep->target, sizeof(rep->target), "%s", v.target);
	rep->fid2.vol = req->fid.vol;
	if ((req->mflags & RES_GET_PATH) &&
	    repl_find_name(t, &req->fid, rep->fid2.oid, rep->name) < 0)
		rep->name[0] = '\0';
	return 0;
}

static int op_res_scan(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	static const uint8_t zero[OID_LEN];
	bool start = memcmp(req->fid.oid, zero, OID_LEN) == 0, eof;
	int ret;

	wr_reset(&o->wr);
	rep->fid = req->fid;
	ret = repl_scan(t, req->fid.vol, start ? NULL : req->fid.oid, &o->wr, CHUNK_MAX,
			rep->fid.oid, &eof);
	if (ret < 0)
		return ret;
	rep->mflags = eof ? RES_EOF : 0;
	rep->data = o->wr.len > 0 ? o->wr.buf : NULL;
	rep->data_len = (uint32_t)o->wr.len;
	return 0;
}

static int op_res_log(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct vnode d;
	bool eof;
	int ret = get_dir(t, &req->fid, &d);
	if (ret < 0)
		return ret;
	wr_reset(&o->wr);
	ret = repl_log_read(t, &req->fid, req->offset, &o->wr, CHUNK_MAX, &rep->offset, &eof);
	if (ret < 0)
		return ret;
	rep->mflags = eof ? RES_EOF : 0;
	rep->data = o->wr.len > 0 ? o->wr.buf : NULL;
	rep->data_len = (uint32_t)o->wr.len;
	vnode_to_attr(&d, &rep->attr);
	return 0;
}

static int mark_conflict(struct ops *o, struct meta_txn *t, struct vnode *v)
{
	char path[REPL_PATH_MAX];
	int ret;

	if (v->flags & ATTR_F_CONFLICT)
		return 0;
	v->flags |= ATTR_F_CONFLICT;
	ret = meta_vnode_put(t, v);
	if (ret < 0)
		return ret;
	ret = repl_path(t, &v->fid, path, sizeof(path));
	if (ret < 0)
		return ret;
	log_notice("ops", "'%.128s' is in conflict", path);
	fx_changed(&o->fx, &v->fid);
	return repl_conflict_add(t, &v->fid, path);
}

static int op_res_mark(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct vnode v;
	int ret = meta_vnode_get(t, &req->fid, &v);
	if (ret < 0)
		return ret;
	if (req->mflags & RES_MARK_SET) {
		ret = mark_conflict(o, t, &v);
	} else if (v.flags & ATTR_F_CONFLICT) {
		v.flags &= ~(uint32_t)ATTR_F_CONFLICT;
		ret = meta_vnode_put(t, &v);
		if (ret == 0)
			ret = repl_conflict_del(t, &v.fid);
		fx_changed(&o->fx, &v.fid);
	}
	if (ret < 0)
		return ret;
	vnode_to_attr(&v, &rep->attr);
	return 0;
}

/* False if the request carries RES_EXPECT and v no longer has the VV and
 * StoreId of F_ATTR2: an update the coordinator did not see came in since it
 * read v, so what it would install may be older than what is there. */
static bool res_expected(const struct vnode *v, const struct msg *req)
{
	if (!(req->mflags & RES_EXPECT))
		return true;
	return vv_compare(&v->vv, &req->attr2.vv) == VV_EQUAL &&
	       storeid_eq(&v->sid, &req->attr2.sid);
}

/* Installs a dominant replica's status (and, with chunks, data) with its
 * vector and StoreId. Idempotent: the same vector and StoreId twice change
 * nothing. */
static int op_res_install(struct ops *o, struct meta_txn *t, struct ops_conn *oc,
			  const struct msg *req, struct msg *rep)
{
	const uint32_t fl = req->mflags;
	const struct attr *a = &req->attr;
	struct pstore *p = NULL;
	struct vnode v;
	int ret;

	ret = meta_vnode_get(t, &req->fid, &v);
	if (ret < 0)
		goto out_drop;
	if (!res_expected(&v, req)) {
		ret = -ERR_VERSION; /* changed since the coordinator looked */
		goto out_drop;
	}
	if (!(fl & RES_INSTALL_STATUS)) {
		p = store_set_find(oc->stores, req->handle);
		if (fl & STORE_ABORT) {
			if (p != NULL)
				store_set_drop(o->store, oc->stores, p);
			vnode_to_attr(&v, &rep->attr);
			return 0;
		}
		if (!S_ISREG(v.mode)) {
			ret = -EINVAL;
			goto out_drop;
		}
		/* As a client's upload: a later chunk must name the fid its
		 * first one did (upload_chunk). Errors before the write drop
		 * nothing (no upload, or another fid's). */
		ret = upload_chunk(o, oc, req, &p);
		if (ret < 0 && p == NULL)
			return ret;
		if (ret < 0)
			goto out_drop;
		if (!(fl & STORE_LAST)) {
			vnode_to_attr(&v, &rep->attr);
			return 0;
		}
	}
	if ((v.mode & S_IFMT) != (a->mode & S_IFMT) || !fid_eq(&a->fid, &req->fid)) {
		ret = -EINVAL;
		goto out_drop;
	}
	if ((v.flags & ATTR_F_CONFLICT) && !(fl & RES_INSTALL_CLEAR)) {
		ret = -ERR_CONFLICT;
		goto out_drop;
	}
	if (vv_compare(&v.vv, &a->vv) == VV_EQUAL && storeid_eq(&v.sid, &a->sid) &&
	    !(fl & RES_INSTALL_CLEAR) && !(fl & RES_INSTALL_STATUS)) {
		ret = 0; /* installed already */
		goto out_drop_ok;
	}
	if (p != NULL) {
		/* The installed contents keep the source's name for them. */
		uint64_t ndv = a->data_version != v.data_version && a->data_version != 0
				       ? a->data_version
				       : v.data_version + 1;
		if (a->size > (1ull << 52)) {
			ret = -EFBIG;
			goto out_drop;
		}
		if (ftruncate(p->fd, (off_t)a->size) < 0) {
			ret = -errno;
			goto out_drop;
		}
		ret = store_install(o->store, p->path, &v.fid, ndv);
		if (ret < 0)
			goto out_drop;
		o->fx.fd = p->fd;
		o->fx.newc.fid = v.fid;
		o->fx.newc.dv = ndv;
		o->fx.has_newc = true;
		store_set_detach(o->store, oc->stores, p);
		p = NULL;
		fx_oldc(&o->fx, &v.fid, v.data_version);
		v.data_version = ndv;
		v.size = a->size;
	}
	if (!(fl & RES_INSTALL_STATUS) || !S_ISREG(v.mode) || v.size == a->size) {
		v.mode = a->mode;
		v.uid = a->uid;
		v.gid = a->gid;
		v.rdev = a->rdev;
		v.atime = a->atime;
		v.mtime = a->mtime;
		v.ctime = a->ctime;
		if (S_ISLNK(v.mode)) {
			snprintf(v.target, sizeof(v.target), "%s", req->target);
			v.size = strlen(v.target);
		}
	}
	if (fl & RES_INSTALL_STATUS)
		vv_merge(&v.vv, &a->vv);
	else
		v.vv = a->vv;
	v.sid = a->sid;
	if (fl & RES_INSTALL_CLEAR) {
		v.vv = a->vv;
		v.flags &= ~(uint32_t)ATTR_F_CONFLICT;
		ret = repl_conflict_del(t, &v.fid);
		if (ret < 0)
			return ret;
	}
	ret = meta_vnode_put(t, &v);
	if (ret < 0)
		return ret;
	fx_changed(&o->fx, &v.fid);
	vnode_to_attr(&v, &rep->attr);
	return 0;

out_drop_ok:
	vnode_to_attr(&v, &rep->attr);
out_drop:
	p = store_set_find(oc->stores, req->handle);
	if (p != NULL && !(fl & RES_INSTALL_STATUS))
		store_set_drop(o->store, oc->stores, p);
	return ret;
}

/* Objects one subtree removal of resolution may take (prune). */
#define PRUNE_MAX 4096

/* One entry below a directory that resolution removes. */
struct prune_ent {
	struct fid dir;
	char name[NAME_MAX_LEN + 1];
	struct fid fid;
	bool moved; /* lives on elsewhere: only the entry goes */
};

struct prune {
	struct meta_txn *t;
	const struct fid *dir; /* being scanned */
	VEC(struct prune_ent) ents;
	bool full;
};

static int prune_fn(void *arg, const char *name, const struct dent *d)
{
	struct prune *p = arg;
	struct prune_ent e;

	if (p->ents.n >= PRUNE_MAX) {
		p->full = true;
		return 1;
	}
	memset(&e, 0, sizeof(e));
	e.dir = *p->dir;
	snprintf(e.name, sizeof(e.name), "%s", name);
	e.fid.vol = p->dir->vol;
	memcpy(e.fid.oid, d->oid, OID_LEN);
	VEC_PUSH(p->ents, e);
	return 0;
}

/* What becomes of v, found below a directory that the update rm removed
 * elsewhere: PRUNE_DROP, it goes (its last update is the remover's own
 * earlier one, or a resolution's -- StoreIds with the top bit,
 * server/resolve.c -- or none); PRUNE_MOVED, the remover's client updated it
 * after the remove, so it was moved out first and lives on elsewhere: its
 * entry here goes, the object stays for the replay that binds it where it
 * is now; PRUNE_KEEP, another client's update the remover may not have
 * seen: a remove/update conflict. */
enum prune_fate { PRUNE_DROP, PRUNE_MOVED, PRUNE_KEEP };

static enum prune_fate prune_fate(const struct vnode *v, const struct storeid *rm)
{
	if (v->flags & ATTR_F_CONFLICT)
		return PRUNE_KEEP;
	if (storeid_is_zero(&v->sid) || (v->sid.client & (1ull << 63)))
		return PRUNE_DROP;
	if (v->sid.client != rm->client)
		return PRUNE_KEEP;
	return v->sid.seq < rm->seq ? PRUNE_DROP : PRUNE_MOVED;
}

/* Resolution replays the remove (record r) of directory c, which still has
 * entries here: this replica missed their removal too (it was away while a
 * client emptied the directory and removed it). Removes everything below c
 * if that is safe: c and every object below were last updated by the
 * remover's client (or by resolution; see prune_fate). Otherwise
 * -ENOTEMPTY: a remove/update conflict, nothing lost. Bounded (PRUNE_MAX
 * objects). */
static int prune_subtree(struct ops *o, struct meta_txn *t, const struct vnode *c,
			 const struct rlog_rec *r)
{
	struct prune p = { .t = t };
	int ret = 0;

	/* c itself: its vector may exceed the remover's (an update here whose
	 * phase two was lost, a merge's own slot), so who updated it last
	 * tells, as for everything below it. */
	if (prune_fate(c, &r->sid) == PRUNE_KEEP) {
		log_info("ops", "'%s' removed elsewhere keeps entries here: changed since",
			 r->name);
		return -ENOTEMPTY;
	}
	p.dir = &c->fid;
	ret = meta_dir_scan(t, &c->fid, "", prune_fn, &p);
	/* Breadth first: ents grows while it is walked. */
	for (size_t i = 0; ret >= 0 && !p.full && i < p.ents.n; i++) {
		struct vnode v;
		struct fid f = p.ents.v[i].fid;

		ret = meta_vnode_get(t, &f, &v);
		if (ret == -ENOENT) {
			ret = 0;
			continue;
		}
		if (ret < 0)
			break;
		enum prune_fate fate = prune_fate(&v, &r->sid);
		static const uint8_t no_parent[OID_LEN];

		/* Bound elsewhere on this replica by now (a replay of its
		 * move, whose RENAME_OUT from here has not come yet): only its
		 * entry here goes, whoever updated it last. */
		if (!S_ISDIR(v.mode) && v.nlink <= 1 && memcmp(v.parent, no_parent, OID_LEN) != 0 &&
		    memcmp(v.parent, p.ents.v[i].dir.oid, OID_LEN) != 0)
			fate = PRUNE_MOVED;
		if (fate == PRUNE_MOVED) {
			p.ents.v[i].moved = true;
			continue;
		}
		if (fate == PRUNE_KEEP) {
			log_info(
				"ops",
				"'%s' removed elsewhere keeps '%s' here: last updated by %016llx:%llu, "
				"not seen by the remover %016llx:%llu",
				r->name, p.ents.v[i].name, (unsigned long long)v.sid.client,
				(unsigned long long)v.sid.seq, (unsigned long long)r->sid.client,
				(unsigned long long)r->sid.seq);
			ret = -ENOTEMPTY;
			break;
		}
		if (S_ISDIR(v.mode)) {
			p.dir = &f;
			ret = meta_dir_scan(t, &f, "", prune_fn, &p);
		}
	}
	if (ret >= 0 && p.full)
		ret = -ENOTEMPTY;
	/* Children first (the reverse of the walk), then nothing is left. */
	for (size_t i = p.ents.n; ret >= 0 && i-- > 0;) {
		const struct prune_ent *e = &p.ents.v[i];
		struct vnode v;

		ret = meta_dirent_del(t, &e->dir, e->name);
		if (ret == -ENOENT)
			ret = 0;
		if (ret < 0 || e->moved || meta_vnode_get(t, &e->fid, &v) != 0)
			continue;
		o->st.cb_breaks += cb_break(o->cb, &e->fid, NULL, o->brk, o->brk_arg);
		if (!S_ISDIR(v.mode) && v.nlink > 1) {
			v.nlink--;
			ret = meta_vnode_put(t, &v);
			continue;
		}
		o->fx.d_objects--;
		if (S_ISREG(v.mode)) {
			struct fidv old = { .fid = v.fid, .dv = v.data_version };
			VEC_PUSH(o->fx_oldc, old);
		}
		(void)repl_conflict_del(t, &v.fid);
		ret = meta_vnode_del(t, &v.fid);
	}
	if (ret >= 0 && p.ents.n > 0)
		log_info("ops",
			 "resolution removed %zu objects below a directory removed elsewhere",
			 p.ents.n);
	free(p.ents.v);
	return ret < 0 ? ret : 0;
}

/* Replays one log record in directory d (RES_APPLY). Already-applied
 * records change nothing. */
static int apply_rec(struct ops *o, struct meta_txn *t, struct vnode *d, const struct rlog_rec *r,
		     const struct wtime *now)
{
	struct dent de;
	struct vnode c;
	struct fid cf = { .vol = d->fid.vol };
	int ret;

	memcpy(cf.oid, r->child, OID_LEN);
	switch (r->op) {
	case RLOG_MARK:
		return 0;
	case RLOG_SETATTR:
		d->mode = (d->mode & S_IFMT) | (r->mode & 07777);
		d->uid = r->uid;
		d->gid = r->gid;
		return 0;
	case RLOG_CREATE:
	case RLOG_LINK:
	case RLOG_RENAME_IN:
		ret = meta_dirent_get(t, &d->fid, r->name, &de);
		if (ret == 0)
			return memcmp(de.oid, r->child, OID_LEN) == 0 ? 0 : -EEXIST;
		if (ret != -ENOENT)
			return ret;
		ret = meta_vnode_get(t, &cf, &c);
		if (ret == -ENOENT) {
			/* New here: created empty (zero vector), then resolved as a file. */
			memset(&c, 0, sizeof(c));
			c.fid = cf;
			c.mode = r->mode;
			c.uid = r->uid;
			c.gid = r->gid;
			c.nlink = S_ISDIR(c.mode) ? 2 : 1;
			c.size = S_ISDIR(c.mode) ? DIR_SIZE : 0;
			c.atime = c.mtime = c.ctime = *now;
			c.data_version = 1;
			c.vv.n = d->vv.n;
			memcpy(c.parent, d->fid.oid, OID_LEN);
			o->fx.d_objects++;
		} else if (ret < 0) {
			return ret;
		} else if (r->op == RLOG_LINK) {
			c.nlink++;
		} else {
			/* Moved here (its RENAME_OUT elsewhere may come later):
			 * a prune of its old directory must not take it. */
			memcpy(c.parent, d->fid.oid, OID_LEN);
		}
		if (S_ISDIR(c.mode)) {
			memcpy(c.parent, d->fid.oid, OID_LEN);
			d->nlink++;
		}
		ret = meta_vnode_put(t, &c);
		if (ret < 0)
			return ret;
		de.type = c.mode & S_IFMT;
		memcpy(de.oid, c.fid.oid, OID_LEN);
		return meta_dirent_put(t, &d->fid, r->name, &de);
	case RLOG_REMOVE:
	case RLOG_RENAME_OUT:
		ret = meta_dirent_get(t, &d->fid, r->name, &de);
		if (ret == -ENOENT || (ret == 0 && memcmp(de.oid, r->child, OID_LEN) != 0))
			return 0;
		if (ret < 0)
			return ret;
		ret = meta_vnode_get(t, &cf, &c);
		if (ret < 0 && ret != -ENOENT)
			return ret;
		if (ret == 0 && S_ISDIR(c.mode) && r->op == RLOG_REMOVE) {
			ret = meta_dir_empty(t, &cf);
			if (ret < 0)
				return ret;
			if (ret == 0) {
				ret = prune_subtree(o, t, &c, r);
				if (ret < 0)
					return ret;
			}
		}
		ret = meta_dirent_del(t, &d->fid, r->name);
		if (ret < 0)
			return ret;
		if (meta_vnode_get(t, &cf, &c) != 0)
			return 0;
		if (S_ISDIR(c.mode) && d->nlink > 2)
			d->nlink--;
		if (r->op == RLOG_RENAME_OUT)
			return 0;
		o->st.cb_breaks += cb_break(o->cb, &cf, NULL, o->brk, o->brk_arg);
		if (S_ISDIR(c.mode))
			c.nlink = 0;
		else if (c.nlink > 0)
			c.nlink--;
		if (c.nlink > 0)
			return meta_vnode_put(t, &c);
		o->fx.d_objects--;
		if (S_ISREG(c.mode) && o->fx.n_oldc < 2)
			fx_oldc(&o->fx, &c.fid, c.data_version);
		(void)repl_conflict_del(t, &c.fid);
		return meta_vnode_del(t, &c.fid);
	default:
		return -EINVAL;
	}
}

static int op_res_apply(struct ops *o, struct meta_txn *t, const struct msg *req, struct msg *rep)
{
	struct rlog_rec r;
	struct vnode d;
	struct wtime now;
	struct rd rd;
	int ret, n;

	ret = get_dir(t, &req->fid, &d);
	if (ret < 0)
		return ret;
	if ((d.flags & ATTR_F_CONFLICT) && !(req->mflags & RES_APPLY_FORCE))
		return -ERR_CONFLICT;
	if (!res_expected(&d, req))
		return -ERR_VERSION;
	now_wtime(&now);
	rd_init(&rd, req->data, req->data_len);
	while ((n = rlog_decode(&rd, &r)) == 1) {
		ret = apply_rec(o, t, &d, &r, &now);
		if (ret < 0)
			return ret;
		if (req->mflags & RES_APPLY_TRUNCATE)
			continue;
		ret = repl_log_has(t, &d.fid, &r);
		if (ret == 0)
			ret = repl_log_append(t, &d.fid, &r);
		if (ret < 0)
			return ret;
	}
	if (n < 0)
		return -EPROTO;
	if (req->mflags & RES_APPLY_TRUNCATE) {
		ret = repl_log_truncate(t, &d.fid);
		if (ret < 0)
			return ret;
		if (req->mflags & RES_EXPECT) {
			/* Only at the merged state (checked above): keep its mark,
			 * so that replicas whose truncation did not happen still
			 * share a starting point with this one. */
			memset(&r, 0, sizeof(r));
			r.op = RLOG_MARK;
			memcpy(r.child, d.fid.oid, OID_LEN);
			r.sid = req->attr2.sid;
			ret = repl_log_append(t, &d.fid, &r);
			if (ret < 0)
				return ret;
		}
	}
	if (req->attr.vv.n > 0) {
		d.vv = req->attr.vv;
		d.sid = req->attr.sid;
	}
	if (req->mflags & RES_APPLY_FORCE) {
		d.flags &= ~(uint32_t)ATTR_F_CONFLICT;
		ret = repl_conflict_del(t, &d.fid);
		if (ret < 0)
			return ret;
	}
	d.mtime = d.ctime = now;
	d.data_version++;
	ret = meta_vnode_put(t, &d);
	if (ret < 0)
		return ret;
	fx_changed(&o->fx, &d.fid);
	vnode_to_attr(&d, &rep->attr);
	return 0;
}

static int repl_exec(struct ops *o, struct meta_txn *t, struct ops_conn *oc, const struct msg *req,
		     struct msg *rep)
{
	switch (req->type) {
	case MSG_VOLINFO:
		return op_volinfo(o, t, req, rep);
	case MSG_COP2:
		return op_cop2(o, t, req);
	case MSG_COP2_BATCH:
		return op_cop2_batch(o, t, req);
	case MSG_CONFLICTS:
		return op_conflicts(o, t, req, rep);
	case MSG_RES_GET:
		return op_res_get(o, t, req, rep);
	case MSG_RES_SCAN:
		return op_res_scan(o, t, req, rep);
	case MSG_RES_INSTALL:
		return op_res_install(o, t, oc, req, rep);
	case MSG_RES_LOG:
		return op_res_log(o, t, req, rep);
	case MSG_RES_APPLY:
		return op_res_apply(o, t, req, rep);
	case MSG_RES_MARK:
		return op_res_mark(o, t, req, rep);
	default:
		return -ENOSYS;
	}
}
