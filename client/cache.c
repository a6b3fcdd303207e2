/*
 * cache.c - persistent whole-file cache of encore-client.
 * Owns:    <cachedir>/containers/, the LMDB index <cachedir>/index, space
 *          accounting and the in-memory pin table of open files.
 * Borrows: fids and attributes from callers; never talks to the network.
 * Locking: cache->lock protects everything below; *_locked callers hold it.
 * Format:  index key = u32 vol + 16-byte oid (LE); value = db record
 *          header (CACHE_MAGIC, CACHE_REC_VERSION), u8 flags, u32
 *          hoard_pri, u64 data_version, u64 size, u64 last_use, attr (as on
 *          the wire, without the vv). Unknown versions are -EIO.
 */
#include "client/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/db.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/xalloc.h"

#define CACHE_MAGIC	  0x31434345u /* "ECC1" */
#define CACHE_REC_VERSION 1
#define CACHE_KEY_LEN	  (4 + OID_LEN)
/* The index holds small records only; 1 GiB of address space is plenty
 * for millions of cached files and costs nothing until used. */
#define CACHE_MAP_SIZE (1ull << 30)
/* Named tables beside the index (the CML, the repair area, hoarding). */
#define CACHE_TABLES_MAX 8

enum cache_rec_flags {
	REC_HAS_DATA = 1u << 0,
	REC_DIRTY = 1u << 1,
};

struct pin {
	struct fid fid;
	unsigned count;
};

struct cache {
	char *dir;
	MDB_env *env;
	MDB_dbi dbi;
	pthread_mutex_t lock;
	uint64_t limit;
	uint64_t bytes_used; /* protected by lock */
	uint64_t n_files;    /* protected by lock */
	uint64_t n_dirty;    /* protected by lock */
	struct pin *pins;    /* protected by lock */
	size_t n_pins;	     /* protected by lock */
	size_t cap_pins;     /* protected by lock */
	cache_keep_fn keep;  /* set once before use; may be NULL */
	void *keep_arg;
	bool durable; /* protected by lock: every commit synced (cache_set_durable) */
};

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void key_make(const struct fid *fid, uint8_t key[CACHE_KEY_LEN])
{
	le_put_u32(key, fid->vol);
	memcpy(key + 4, fid->oid, OID_LEN);
}

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

static void rec_encode(struct wr *w, const struct cache_ent *e)
{
	const struct attr *a = &e->attr;

	db_hdr_put(w, CACHE_MAGIC, CACHE_REC_VERSION);
	wr_u8(w, (uint8_t)((e->has_data ? REC_HAS_DATA : 0) | (e->dirty ? REC_DIRTY : 0)));
	wr_u32(w, e->hoard_pri);
	wr_u64(w, e->data_version);
	wr_u64(w, e->size);
	wr_u64(w, e->last_use);
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
	wr_u32(w, a->flags);
}

static int rec_decode(const struct fid *fid, const uint8_t *buf, size_t len, struct cache_ent *e)
{
	struct rd r;
	struct attr *a = &e->attr;
	uint8_t flags;

	memset(e, 0, sizeof(*e));
	rd_init(&r, buf, len);
	if (db_hdr_check(&r, CACHE_MAGIC, CACHE_REC_VERSION, "cache entry") < 0)
		return -EIO;
	flags = rd_u8(&r);
	e->hoard_pri = rd_u32(&r);
	e->data_version = rd_u64(&r);
	e->size = rd_u64(&r);
	e->last_use = rd_u64(&r);
	a->mode = rd_u32(&r);
	a->nlink = rd_u32(&r);
	a->uid = rd_u32(&r);
	a->gid = rd_u32(&r);
	a->rdev = rd_u64(&r);
	a->size = rd_u64(&r);
	a->blocks = rd_u64(&r);
	rd_wtime(&r, &a->atime);
	rd_wtime(&r, &a->mtime);
	rd_wtime(&r, &a->ctime);
	a->data_version = rd_u64(&r);
	a->flags = rd_u32(&r);
	if (!rd_done(&r)) {
		log_err("cache", "cache index record truncated or too long");
		return -EIO;
	}
	e->fid = *fid;
	a->fid = *fid;
	e->has_data = flags & REC_HAS_DATA;
	e->dirty = flags & REC_DIRTY;
	return 0;
}

int cache_container_path(struct cache *c, const struct fid *fid, char *out, size_t len)
{
	char s[FID_STR_LEN];
	int n;

	fid_fmt(fid, s);
	n = snprintf(out, len, "%s/containers/%s", c->dir, s);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int cache_open_container(struct cache *c, const struct fid *fid, int flags)
{
	char path[4096];
	int ret = cache_container_path(c, fid, path, sizeof(path));
	int fd;

	if (ret < 0)
		return ret;
	fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	return fd;
}

static void unlink_container(struct cache *c, const struct fid *fid)
{
	char path[4096];

	if (cache_container_path(c, fid, path, sizeof(path)) == 0 && unlink(path) < 0 &&
	    errno != ENOENT)
		log_warn("cache", "cannot remove container '%s': %s", path, strerror(errno));
}

static void account_locked(struct cache *c, const struct cache_ent *e, int sign)
{
	uint64_t bytes = e->has_data || e->dirty ? e->size : 0;

	if (sign > 0) {
		c->bytes_used += bytes;
		c->n_files++;
		c->n_dirty += e->dirty;
	} else {
		c->bytes_used -= bytes < c->bytes_used ? bytes : c->bytes_used;
		c->n_files -= c->n_files > 0;
		c->n_dirty -= e->dirty && c->n_dirty > 0;
	}
}

static int get_locked(struct cache *c, MDB_txn *txn, const struct fid *fid, struct cache_ent *e)
{
	uint8_t key[CACHE_KEY_LEN];
	MDB_val k = { CACHE_KEY_LEN, key }, v;
	int rc;

	key_make(fid, key);
	rc = mdb_get(txn, c->dbi, &k, &v);
	if (rc != 0)
		return db_err(rc);
	return rec_decode(fid, v.mv_data, v.mv_size, e);
}

static int put_txn(struct cache *c, MDB_txn *txn, const struct cache_ent *e)
{
	uint8_t key[CACHE_KEY_LEN];
	MDB_val k = { CACHE_KEY_LEN, key }, v;
	struct wr w;
	int rc;

	key_make(&e->fid, key);
	wr_init(&w);
	rec_encode(&w, e);
	v.mv_size = w.len;
	v.mv_data = w.buf;
	rc = mdb_put(txn, c->dbi, &k, &v, 0);
	wr_release(&w);
	return db_err(rc);
}

static int recount_locked(struct cache *c)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	c->bytes_used = c->n_files = c->n_dirty = 0;
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return db_err(rc);
	rc = mdb_cursor_open(txn, c->dbi, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_err(rc);
	}
	MDB_cursor_op op = MDB_FIRST;

	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct cache_ent e;
		struct fid fid;

		op = MDB_NEXT;
		if (k.mv_size != CACHE_KEY_LEN)
			continue; /* the names of the other tables (cml, repair) */
		fid.vol = le_get_u32(k.mv_data);
		memcpy(fid.oid, (uint8_t *)k.mv_data + 4, OID_LEN);
		if (rec_decode(&fid, v.mv_data, v.mv_size, &e) == 0)
			account_locked(c, &e, 1);
		else
			c->n_files++; /* keep MDB_NEXT going; counted as a file without data */
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : db_err(rc);
}

/*
 * While the index holds only copies of what the servers have, it is written
 * with MDB_NOSYNC: commits cost no fsync. A process crash loses nothing (the
 * page cache has every commit), but a machine crash may leave a torn env. So
 * DIR/index.boot holds the boot id of the session that has the index open in
 * that mode, and a clean close or a switch to durable mode (cache_set_durable)
 * syncs the env and removes it. Found at open with another boot id: the
 * machine went down with the index open in NOSYNC mode, so the index and the
 * containers are discarded (the cache refills from the servers). The env is
 * never in NOSYNC mode while it holds anything only the client has (CML
 * records, the repair area), so nothing acknowledged is discarded.
 */
static int boot_guard(const char *dir, const char *index)
{
	char mark[4096], cdir[4096], *old = NULL, *cur = NULL;
	size_t old_len = 0, cur_len = 0;
	int ret;

	if (snprintf(mark, sizeof(mark), "%s/index.boot", dir) >= (int)sizeof(mark) ||
	    snprintf(cdir, sizeof(cdir), "%s/containers", dir) >= (int)sizeof(cdir))
		return -ENAMETOOLONG;
	ret = fs_read_file("/proc/sys/kernel/random/boot_id", 64, &cur, &cur_len);
	if (ret < 0)
		return ret;
	ret = fs_read_file(mark, 64, &old, &old_len);
	if (ret == 0 && (old_len != cur_len || memcmp(old, cur, cur_len) != 0)) {
		log_warn("cache", "cache index of '%s' was open across a reboot: discarding it",
			 dir);
		ret = fs_rmtree(index);
		if (ret == 0 || ret == -ENOENT)
			ret = fs_rmtree(cdir);
		if (ret == 0 || ret == -ENOENT)
			ret = fs_mkdirs(index, 0700);
		if (ret == 0)
			ret = fs_mkdirs(cdir, 0700);
		if (ret < 0)
			goto out;
	} else if (ret < 0 && ret != -ENOENT) {
		goto out;
	}
	ret = fs_write_atomic(mark, cur, cur_len, 0600);
out:
	free(old);
	free(cur);
	return ret;
}

int cache_open(const char *dir, uint64_t limit, struct cache **out)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	char path[4096];
	MDB_txn *txn;
	int ret, rc, dead;

	*out = NULL;
	c->dir = xstrdup(dir);
	c->limit = limit;
	pthread_mutex_init(&c->lock, NULL);
	if (snprintf(path, sizeof(path), "%s/containers", dir) >= (int)sizeof(path)) {
		ret = -ENAMETOOLONG;
		goto err_free;
	}
	ret = fs_mkdirs(path, 0700);
	if (ret < 0)
		goto err_free;
	snprintf(path, sizeof(path), "%s/index", dir);
	ret = fs_mkdirs(path, 0700);
	if (ret < 0)
		goto err_free;
	rc = mdb_env_create(&c->env);
	if (rc != 0) {
		ret = db_err(rc);
		goto err_free;
	}
	mdb_env_set_mapsize(c->env, CACHE_MAP_SIZE);
	mdb_env_set_maxdbs(c->env, CACHE_TABLES_MAX);
	ret = boot_guard(dir, path);
	if (ret < 0)
		goto err_env;
	rc = mdb_env_open(c->env, path, MDB_NOTLS | MDB_NOSYNC, 0600);
	if (rc != 0) {
		ret = db_err(rc);
		goto err_env;
	}
	mdb_reader_check(c->env, &dead);
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, NULL, 0, &c->dbi);
		rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
	}
	if (rc != 0) {
		ret = db_err(rc);
		goto err_env;
	}
	ret = recount_locked(c);
	if (ret < 0)
		goto err_env;
	*out = c;
	return 0;

err_env:
	mdb_env_close(c->env);
err_free:
	free(c->dir);
	free(c);
	return ret;
}

static int boot_mark_path(const struct cache *c, char *out, size_t len)
{
	return snprintf(out, len, "%s/index.boot", c->dir) < (int)len ? 0 : -ENAMETOOLONG;
}

int cache_set_durable(struct cache *c, bool on)
{
	char mark[4096], *boot = NULL;
	size_t boot_len = 0;
	int ret, rc;

	ret = boot_mark_path(c, mark, sizeof(mark));
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&c->lock);
	if (c->durable == on)
		goto out;
	if (on) {
		/* Sync first: the NOSYNC commits before this one become durable,
		 * then the env stays intact across a machine crash. */
		rc = mdb_env_set_flags(c->env, MDB_NOSYNC, 0);
		if (rc == 0)
			rc = mdb_env_sync(c->env, 1);
		ret = rc == 0 ? 0 : db_err(rc);
		if (ret == 0 && unlink(mark) < 0 && errno != ENOENT)
			ret = -errno;
		if (ret == 0)
			ret = fs_fsync_dir(c->dir);
	} else {
		ret = fs_read_file("/proc/sys/kernel/random/boot_id", 64, &boot, &boot_len);
		if (ret == 0)
			ret = fs_write_atomic(mark, boot, boot_len, 0600);
		if (ret == 0) {
			rc = mdb_env_set_flags(c->env, MDB_NOSYNC, 1);
			ret = rc == 0 ? 0 : db_err(rc);
		}
	}
	if (ret == 0)
		c->durable = on;
	else
		log_err("cache", "cannot switch the cache index to %s mode: %s",
			on ? "durable" : "fast", err_str(ret));
out:
	pthread_mutex_unlock(&c->lock);
	free(boot);
	return ret;
}

void cache_close(struct cache *c)
{
	char path[4096];

	if (c == NULL)
		return;
	/* A clean close makes the index durable and clears the boot mark. */
	if (mdb_env_sync(c->env, 1) == 0 &&
	    snprintf(path, sizeof(path), "%s/index.boot", c->dir) < (int)sizeof(path))
		unlink(path);
	mdb_env_close(c->env);
	pthread_mutex_destroy(&c->lock);
	free(c->pins);
	free(c->dir);
	free(c);
}

int cache_get(struct cache *c, const struct fid *fid, struct cache_ent *ent)
{
	MDB_txn *txn;
	int ret, rc;

	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return db_err(rc);
	ret = get_locked(c, txn, fid, ent);
	mdb_txn_abort(txn);
	return ret;
}

int cache_put(struct cache *c, const struct cache_ent *ent)
{
	struct cache_ent e = *ent, old;
	bool had_old;
	MDB_txn *txn;
	int ret, rc;

	if (e.last_use == 0)
		e.last_use = wall_ns();
	pthread_mutex_lock(&c->lock);
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0) {
		ret = db_err(rc);
		goto out;
	}
	had_old = get_locked(c, txn, &e.fid, &old) == 0;
	if (had_old && e.hoard_pri == 0)
		e.hoard_pri = old.hoard_pri; /* only cache_set_hoard changes it */
	ret = put_txn(c, txn, &e);
	if (ret == 0)
		ret = db_err(mdb_txn_commit(txn));
	else
		mdb_txn_abort(txn);
	if (ret == 0) {
		if (had_old)
			account_locked(c, &old, -1);
		account_locked(c, &e, 1);
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int del_locked(struct cache *c, const struct fid *fid)
{
	uint8_t key[CACHE_KEY_LEN];
	MDB_val k = { CACHE_KEY_LEN, key };
	struct cache_ent old;
	MDB_txn *txn;
	int ret, rc;

	key_make(fid, key);
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0)
		return db_err(rc);
	ret = get_locked(c, txn, fid, &old);
	if (ret == -ENOENT) {
		mdb_txn_abort(txn);
		unlink_container(c, fid);
		return 0;
	}
	rc = mdb_del(txn, c->dbi, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return db_err(rc);
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		return db_err(rc);
	if (ret == 0)
		account_locked(c, &old, -1);
	unlink_container(c, fid);
	return 0;
}

int cache_del(struct cache *c, const struct fid *fid)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = del_locked(c, fid);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static struct pin *pin_find_locked(struct cache *c, const struct fid *fid)
{
	for (size_t i = 0; i < c->n_pins; i++)
		if (fid_eq(&c->pins[i].fid, fid))
			return &c->pins[i];
	return NULL;
}

void cache_pin(struct cache *c, const struct fid *fid)
{
	struct pin *p;

	pthread_mutex_lock(&c->lock);
	p = pin_find_locked(c, fid);
	if (p == NULL) {
		if (c->n_pins == c->cap_pins) {
			c->cap_pins = c->cap_pins ? 2 * c->cap_pins : 16;
			c->pins = xrealloc(c->pins, c->cap_pins * sizeof(*c->pins));
		}
		p = &c->pins[c->n_pins++];
		p->fid = *fid;
		p->count = 0;
	}
	p->count++;
	pthread_mutex_unlock(&c->lock);
}

void cache_unpin(struct cache *c, const struct fid *fid)
{
	struct pin *p;

	pthread_mutex_lock(&c->lock);
	p = pin_find_locked(c, fid);
	if (p != NULL && --p->count == 0)
		*p = c->pins[--c->n_pins];
	pthread_mutex_unlock(&c->lock);
}

bool cache_pinned(struct cache *c, const struct fid *fid)
{
	bool ret;

	pthread_mutex_lock(&c->lock);
	ret = pin_find_locked(c, fid) != NULL;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int drop_data_locked(struct cache *c, const struct fid *fid)
{
	struct cache_ent e;
	int ret;

	if (pin_find_locked(c, fid) != NULL)
		return -EBUSY;
	ret = cache_get(c, fid, &e);
	if (ret < 0)
		return ret;
	if (e.dirty)
		return -EBUSY;
	/* Drop the whole entry: the attributes are revalidated on next use. */
	return del_locked(c, fid);
}

int cache_drop_data(struct cache *c, const struct fid *fid)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = drop_data_locked(c, fid);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_touch(struct cache *c, const struct fid *fid)
{
	struct cache_ent e;
	int ret = cache_get(c, fid, &e);

	if (ret < 0)
		return ret;
	e.last_use = 0;
	return cache_put(c, &e);
}

/* Finds the evictable entry with data that goes first: the lowest hoard
 * priority, then the least recently used. 0 and *victim, -ENOENT if none. */
static int lru_victim_locked(struct cache *c, struct fid *victim)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	uint64_t best = UINT64_MAX;
	uint32_t best_pri = UINT32_MAX;
	bool found = false;
	int rc;

	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return db_err(rc);
	rc = mdb_cursor_open(txn, c->dbi, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_err(rc);
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct cache_ent e;
		struct fid fid;

		op = MDB_NEXT;
		if (k.mv_size != CACHE_KEY_LEN)
			continue;
		fid.vol = le_get_u32(k.mv_data);
		memcpy(fid.oid, (uint8_t *)k.mv_data + 4, OID_LEN);
		if (rec_decode(&fid, v.mv_data, v.mv_size, &e) < 0)
			continue;
		if (e.dirty || !e.has_data || e.size == 0 || pin_find_locked(c, &fid) != NULL)
			continue;
		if (c->keep != NULL && c->keep(c->keep_arg, &fid))
			continue;
		if (e.hoard_pri < best_pri || (e.hoard_pri == best_pri && e.last_use < best)) {
			best_pri = e.hoard_pri;
			best = e.last_use;
			*victim = fid;
			found = true;
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return db_err(rc);
	return found ? 0 : -ENOENT;
}

int cache_make_room(struct cache *c, uint64_t need)
{
	int n = 0, ret = 0;

	pthread_mutex_lock(&c->lock);
	while (c->bytes_used + need > c->limit) {
		struct fid victim;

		ret = lru_victim_locked(c, &victim);
		if (ret == -ENOENT) {
			ret = 0;
			break;
		}
		if (ret < 0)
			break;
		ret = del_locked(c, &victim);
		if (ret < 0)
			break;
		n++;
	}
	pthread_mutex_unlock(&c->lock);
	return ret < 0 ? ret : n;
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	st->bytes_used = c->bytes_used;
	st->bytes_limit = c->limit;
	st->files = c->n_files;
	st->dirty = c->n_dirty;
	pthread_mutex_unlock(&c->lock);
}

void cache_set_keep(struct cache *c, cache_keep_fn fn, void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->keep = fn;
	c->keep_arg = arg;
	pthread_mutex_unlock(&c->lock);
}

int cache_set_hoard(struct cache *c, const struct fid *fid, uint32_t pri)
{
	struct cache_ent e;
	MDB_txn *txn;
	int ret, rc;

	pthread_mutex_lock(&c->lock);
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0) {
		ret = db_err(rc);
		goto out;
	}
	ret = get_locked(c, txn, fid, &e);
	if (ret == 0 && e.hoard_pri == pri) {
		mdb_txn_abort(txn);
		goto out;
	}
	if (ret == 0) {
		e.hoard_pri = pri;
		ret = put_txn(c, txn, &e);
	}
	if (ret == 0)
		ret = db_err(mdb_txn_commit(txn));
	else
		mdb_txn_abort(txn);
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_hoard_foreach(struct cache *c, cache_hoard_fn fn, void *arg)
{
	struct fid *fids = NULL;
	size_t n = 0, cap = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int ret = 0, rc;

	/* Collect first: fn may write the index. */
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return db_err(rc);
	rc = mdb_cursor_open(txn, c->dbi, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_err(rc);
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct cache_ent e;
		struct fid fid;

		op = MDB_NEXT;
		if (k.mv_size != CACHE_KEY_LEN)
			continue;
		fid.vol = le_get_u32(k.mv_data);
		memcpy(fid.oid, (uint8_t *)k.mv_data + 4, OID_LEN);
		if (rec_decode(&fid, v.mv_data, v.mv_size, &e) < 0 || e.hoard_pri == 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			fids = xrealloc(fids, cap * sizeof(*fids));
		}
		fids[n++] = fid;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		ret = db_err(rc);
	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = fn(arg, &fids[i]);
	free(fids);
	return ret;
}

/* ---------- transactions shared with other modules (cml.c) ---------- */

struct cache_txn {
	struct cache *c;
	MDB_txn *txn;
	uint64_t bytes_used, n_files, n_dirty; /* accounting before the txn */
	struct fid *dels;		       /* owned: containers to unlink after commit */
	size_t n_dels;
};

int cache_txn_begin(struct cache *c, struct cache_txn **out)
{
	struct cache_txn *t = xcalloc(1, sizeof(*t));
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = mdb_txn_begin(c->env, NULL, 0, &t->txn);
	if (rc != 0) {
		pthread_mutex_unlock(&c->lock);
		free(t);
		*out = NULL;
		return db_err(rc);
	}
	t->c = c;
	t->bytes_used = c->bytes_used;
	t->n_files = c->n_files;
	t->n_dirty = c->n_dirty;
	*out = t;
	return 0;
}

struct MDB_txn *cache_txn_mdb(struct cache_txn *t)
{
	return t->txn;
}

int cache_txn_get(struct cache_txn *t, const struct fid *fid, struct cache_ent *ent)
{
	return get_locked(t->c, t->txn, fid, ent);
}

int cache_txn_put(struct cache_txn *t, const struct cache_ent *ent)
{
	struct cache_ent e = *ent, old;
	bool had_old;
	int ret;

	if (e.last_use == 0)
		e.last_use = wall_ns();
	had_old = get_locked(t->c, t->txn, &e.fid, &old) == 0;
	ret = put_txn(t->c, t->txn, &e);
	if (ret == 0) {
		if (had_old)
			account_locked(t->c, &old, -1);
		account_locked(t->c, &e, 1);
	}
	return ret;
}

int cache_txn_del(struct cache_txn *t, const struct fid *fid)
{
	uint8_t key[CACHE_KEY_LEN];
	MDB_val k = { CACHE_KEY_LEN, key };
	struct cache_ent old;
	int ret, rc;

	key_make(fid, key);
	ret = get_locked(t->c, t->txn, fid, &old);
	if (ret == 0) {
		rc = mdb_del(t->txn, t->c->dbi, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return db_err(rc);
		account_locked(t->c, &old, -1);
	}
	t->dels = xrealloc(t->dels, (t->n_dels + 1) * sizeof(*t->dels));
	t->dels[t->n_dels++] = *fid;
	return 0;
}

int cache_txn_table(struct cache_txn *t, const char *name, unsigned int *dbi)
{
	MDB_dbi d;
	int rc = mdb_dbi_open(t->txn, name, MDB_CREATE, &d);

	if (rc != 0)
		return db_err(rc);
	*dbi = d;
	return 0;
}

int cache_txn_commit(struct cache_txn *t)
{
	struct cache *c;
	int ret;

	if (t == NULL)
		return 0;
	c = t->c;
	ret = db_err(mdb_txn_commit(t->txn));
	if (ret < 0) {
		c->bytes_used = t->bytes_used;
		c->n_files = t->n_files;
		c->n_dirty = t->n_dirty;
	} else {
		for (size_t i = 0; i < t->n_dels; i++)
			if (pin_find_locked(c, &t->dels[i]) == NULL)
				unlink_container(c, &t->dels[i]);
	}
	pthread_mutex_unlock(&c->lock);
	free(t->dels);
	free(t);
	return ret;
}

void cache_txn_abort(struct cache_txn *t)
{
	struct cache *c;

	if (t == NULL)
		return;
	c = t->c;
	mdb_txn_abort(t->txn);
	c->bytes_used = t->bytes_used;
	c->n_files = t->n_files;
	c->n_dirty = t->n_dirty;
	pthread_mutex_unlock(&c->lock);
	free(t->dels);
	free(t);
}

const char *cache_dir(struct cache *c)
{
	return c->dir;
}
