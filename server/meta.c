/*
 * meta.c - LMDB metadata store of encore-server.
 * Owns:    the LMDB env at DIR/meta and its four databases (vnodes,
 *          dirents, volumes, info); the encodings of their records.
 * Borrows: nothing; callers pass fids and names and get decoded copies.
 * Locking: single-threaded (the server loop).
 * Format:  docs/ondisk.md "Server metadata".
 */
#include "server/meta.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "common/db.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/wire.h"
#include "common/xalloc.h"

#define MAGIC_VNODE  0x4e564e45u /* "ENVN" */
#define MAGIC_DENT   0x45444e45u /* "ENDE" */
#define MAGIC_VOLUME 0x4f564e45u /* "ENVO" */
#define MAGIC_INFO   0x52534e45u /* "ENSR" */
#define MAGIC_INLINE 0x4c4e4e45u /* "ENNL" */
#define REC_VERSION  1
/* Volume records: version 2 appends the VSG (version 1 has none). */
#define VOLREC_VERSION 2

/* Address space reserved for the env. LMDB only maps it; the file grows
 * as data is written, so a large value costs nothing up front. */
#define META_MAPSIZE (64ull << 30)

struct meta {
	MDB_env *env;
	MDB_dbi vnodes;
	MDB_dbi dirents;
	MDB_dbi volumes;
	MDB_dbi info;
	MDB_dbi inl;	       /* inline data of small files */
	MDB_dbi kv[META_KV_N]; /* replication tables, indexed by enum meta_kv */
};

struct meta_txn {
	struct meta *m;
	MDB_txn *txn;
};

/* Fixed-buffer little-endian writer for records. */
struct fw {
	uint8_t *p;
	size_t len;
	size_t cap;
};

static void fw_bytes(struct fw *w, const void *src, size_t n)
{
	ASSERT(n <= w->cap - w->len);
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void fw_u16(struct fw *w, uint16_t v)
{
	uint8_t b[2];
	le_put_u16(b, v);
	fw_bytes(w, b, 2);
}

static void fw_u32(struct fw *w, uint32_t v)
{
	uint8_t b[4];
	le_put_u32(b, v);
	fw_bytes(w, b, 4);
}

static void fw_u64(struct fw *w, uint64_t v)
{
	uint8_t b[8];
	le_put_u64(b, v);
	fw_bytes(w, b, 8);
}

static void fw_time(struct fw *w, const struct wtime *t)
{
	fw_u64(w, (uint64_t)t->sec);
	fw_u32(w, t->nsec);
}

static void fw_str(struct fw *w, const char *s)
{
	size_t n = strlen(s);
	ASSERT(n <= UINT16_MAX);
	fw_u16(w, (uint16_t)n);
	fw_bytes(w, s, n);
}

static void fw_head(struct fw *w, uint32_t magic)
{
	fw_u32(w, magic);
	fw_u16(w, REC_VERSION);
	fw_u16(w, 0);
}

static void rd_time(struct rd *r, struct wtime *t)
{
	t->sec = rd_i64(r);
	t->nsec = rd_u32(r);
	if (t->nsec >= 1000000000u)
		rd_fail(r);
}

/* Checks magic and version; logs and returns -EIO on mismatch. */
static int rd_head(struct rd *r, uint32_t magic, const char *what)
{
	uint32_t mg = rd_u32(r);
	uint16_t ver = rd_u16(r);
	(void)rd_u16(r);
	if (r->err != 0 || mg != magic) {
		log_err("meta", "bad %s record: magic %08x", what, mg);
		return -EIO;
	}
	if (ver != REC_VERSION) {
		log_err("meta", "unknown %s record version %u", what, ver);
		return -EIO;
	}
	return 0;
}

size_t vnode_encode(const struct vnode *v, uint8_t *buf, size_t cap)
{
	struct fw w = { buf, 0, cap };
	fw_head(&w, MAGIC_VNODE);
	fw_u32(&w, v->mode);
	fw_u32(&w, v->nlink);
	fw_u32(&w, v->uid);
	fw_u32(&w, v->gid);
	fw_u64(&w, v->rdev);
	fw_u64(&w, v->size);
	fw_time(&w, &v->atime);
	fw_time(&w, &v->mtime);
	fw_time(&w, &v->ctime);
	fw_u64(&w, v->data_version);
	ASSERT(v->vv.n <= VV_MAX);
	fw_u32(&w, v->vv.n);
	for (uint32_t i = 0; i < v->vv.n; i++)
		fw_u32(&w, v->vv.slot[i]);
	fw_u64(&w, v->sid.client);
	fw_u64(&w, v->sid.seq);
	fw_u32(&w, v->flags);
	fw_bytes(&w, v->parent, OID_LEN);
	ASSERT(v->n_acl <= VNODE_ACL_MAX);
	fw_u32(&w, v->n_acl);
	for (uint32_t i = 0; i < v->n_acl; i++) {
		fw_u32(&w, v->acl[i].id);
		fw_u32(&w, v->acl[i].rights);
	}
	fw_str(&w, v->target);
	return w.len;
}

int vnode_decode(const uint8_t *buf, size_t len, const struct fid *fid, struct vnode *out)
{
	struct rd r;
	int ret;

	memset(out, 0, sizeof(*out));
	rd_init(&r, buf, len);
	ret = rd_head(&r, MAGIC_VNODE, "vnode");
	if (ret < 0)
		return ret;
	if (fid != NULL)
		out->fid = *fid;
	out->mode = rd_u32(&r);
	out->nlink = rd_u32(&r);
	out->uid = rd_u32(&r);
	out->gid = rd_u32(&r);
	out->rdev = rd_u64(&r);
	out->size = rd_u64(&r);
	rd_time(&r, &out->atime);
	rd_time(&r, &out->mtime);
	rd_time(&r, &out->ctime);
	out->data_version = rd_u64(&r);
	out->vv.n = rd_u32(&r);
	if (out->vv.n > VV_MAX) {
		rd_fail(&r);
		out->vv.n = 0;
	}
	for (uint32_t i = 0; i < out->vv.n; i++)
		out->vv.slot[i] = rd_u32(&r);
	out->sid.client = rd_u64(&r);
	out->sid.seq = rd_u64(&r);
	out->flags = rd_u32(&r);
	const uint8_t *p = rd_bytes(&r, OID_LEN);
	if (p != NULL)
		memcpy(out->parent, p, OID_LEN);
	out->n_acl = rd_u32(&r);
	if (out->n_acl > VNODE_ACL_MAX) {
		rd_fail(&r);
		out->n_acl = 0;
	}
	for (uint32_t i = 0; i < out->n_acl; i++) {
		out->acl[i].id = rd_u32(&r);
		out->acl[i].rights = rd_u32(&r);
	}
	rd_str(&r, out->target, TARGET_MAX_LEN);
	if (!rd_done(&r)) {
		log_err("meta", "malformed vnode record (%zu bytes)", len);
		return -EIO;
	}
	return 0;
}

size_t dent_encode(const struct dent *d, uint8_t *buf, size_t cap)
{
	struct fw w = { buf, 0, cap };
	fw_head(&w, MAGIC_DENT);
	fw_bytes(&w, d->oid, OID_LEN);
	fw_u32(&w, d->type);
	return w.len;
}

int dent_decode(const uint8_t *buf, size_t len, struct dent *out)
{
	struct rd r;
	int ret;

	memset(out, 0, sizeof(*out));
	rd_init(&r, buf, len);
	ret = rd_head(&r, MAGIC_DENT, "dirent");
	if (ret < 0)
		return ret;
	const uint8_t *p = rd_bytes(&r, OID_LEN);
	if (p != NULL)
		memcpy(out->oid, p, OID_LEN);
	out->type = rd_u32(&r);
	if (!rd_done(&r)) {
		log_err("meta", "malformed dirent record (%zu bytes)", len);
		return -EIO;
	}
	return 0;
}

static size_t volrec_encode(const struct volrec *v, uint8_t *buf, size_t cap)
{
	struct fw w = { buf, 0, cap };
	fw_u32(&w, MAGIC_VOLUME);
	fw_u16(&w, VOLREC_VERSION);
	fw_u16(&w, 0);
	fw_u32(&w, v->vol);
	fw_u64(&w, v->stamp);
	fw_u64(&w, v->n_objects);
	fw_u32(&w, v->flags);
	fw_str(&w, v->name);
	ASSERT(v->vsg.n <= VV_MAX);
	fw_u32(&w, v->vsg.n);
	for (uint32_t i = 0; i < v->vsg.n; i++)
		fw_u32(&w, v->vsg.ids[i]);
	return w.len;
}

static int volrec_decode(const uint8_t *buf, size_t len, struct volrec *out)
{
	struct rd r;

	memset(out, 0, sizeof(*out));
	rd_init(&r, buf, len);
	uint32_t mg = rd_u32(&r);
	uint16_t ver = rd_u16(&r);
	(void)rd_u16(&r);
	if (r.err != 0 || mg != MAGIC_VOLUME || (ver != 1 && ver != VOLREC_VERSION)) {
		log_err("meta", "bad volume record: magic %08x version %u", mg, ver);
		return -EIO;
	}
	out->vol = rd_u32(&r);
	out->stamp = rd_u64(&r);
	out->n_objects = rd_u64(&r);
	out->flags = rd_u32(&r);
	rd_str(&r, out->name, NAME_MAX_LEN);
	if (ver >= 2) {
		out->vsg.n = rd_u32(&r);
		if (out->vsg.n > VV_MAX) {
			rd_fail(&r);
			out->vsg.n = 0;
		}
		for (uint32_t i = 0; i < out->vsg.n; i++)
			out->vsg.ids[i] = rd_u32(&r);
	}
	if (!rd_done(&r)) {
		log_err("meta", "malformed volume record");
		return -EIO;
	}
	return 0;
}

static size_t info_encode(const struct srvinfo *s, uint8_t *buf, size_t cap)
{
	struct fw w = { buf, 0, cap };
	fw_head(&w, MAGIC_INFO);
	fw_u32(&w, s->server_id);
	fw_u64(&w, s->incarnation);
	fw_u32(&w, s->root_vol);
	fw_str(&w, s->realm);
	return w.len;
}

static int info_decode(const uint8_t *buf, size_t len, struct srvinfo *out)
{
	struct rd r;
	int ret;

	memset(out, 0, sizeof(*out));
	rd_init(&r, buf, len);
	ret = rd_head(&r, MAGIC_INFO, "server");
	if (ret < 0)
		return ret;
	out->server_id = rd_u32(&r);
	out->incarnation = rd_u64(&r);
	out->root_vol = rd_u32(&r);
	rd_str(&r, out->realm, REALM_MAX_LEN);
	if (!rd_done(&r)) {
		log_err("meta", "malformed server record");
		return -EIO;
	}
	return 0;
}

/* Keys: u32 big-endian volume (so a cursor walks volumes in order), oid,
 * and for dirents the raw name bytes. */
#define FIDKEY_LEN (4 + OID_LEN)

static void key_fid(uint8_t *k, const struct fid *f)
{
	k[0] = (uint8_t)(f->vol >> 24);
	k[1] = (uint8_t)(f->vol >> 16);
	k[2] = (uint8_t)(f->vol >> 8);
	k[3] = (uint8_t)f->vol;
	memcpy(k + 4, f->oid, OID_LEN);
}

static size_t key_dirent(uint8_t *k, const struct fid *dir, const char *name)
{
	size_t n = strlen(name);
	ASSERT(n <= NAME_MAX_LEN);
	key_fid(k, dir);
	memcpy(k + FIDKEY_LEN, name, n);
	return FIDKEY_LEN + n;
}

int meta_open(const char *path, bool create, struct meta **out)
{
	struct meta *m;
	MDB_txn *txn;
	int rc, dead = 0;
	int ret;

	*out = NULL;
	if (create) {
		ret = fs_mkdirs(path, 0700);
		if (ret < 0)
			return ret;
	}
	m = xcalloc(1, sizeof(*m));
	rc = mdb_env_create(&m->env);
	if (rc != 0) {
		ret = db_err(rc);
		goto err_free;
	}
	mdb_env_set_maxdbs(m->env, 16);
	mdb_env_set_mapsize(m->env, META_MAPSIZE);
	rc = mdb_env_open(m->env, path, MDB_NOTLS, 0600);
	if (rc != 0) {
		ret = db_err(rc);
		goto err_env;
	}
	mdb_reader_check(m->env, &dead);
	if (dead > 0)
		log_notice("meta", "cleared %d stale lmdb readers", dead);

	rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc != 0) {
		ret = db_err(rc);
		goto err_env;
	}
	unsigned int fl = create ? MDB_CREATE : 0;
	rc = mdb_dbi_open(txn, "vnodes", fl, &m->vnodes);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "dirents", fl, &m->dirents);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "volumes", fl, &m->volumes);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "info", fl, &m->info);
	/* Added after the first release: created in existing envs too. */
	if (rc == 0)
		rc = mdb_dbi_open(txn, "inline", MDB_CREATE, &m->inl);
	/* Replication tables appeared after the foundation: created on demand. */
	static const char *const kv_names[META_KV_N] = { "cop2", "reslog", "conflicts", "reint" };
	for (int i = 0; i < META_KV_N && rc == 0; i++)
		rc = mdb_dbi_open(txn, kv_names[i], MDB_CREATE, &m->kv[i]);
	if (rc != 0) {
		mdb_txn_abort(txn);
		ret = db_err(rc);
		goto err_env;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		ret = db_err(rc);
		goto err_env;
	}
	*out = m;
	return 0;

err_env:
	mdb_env_close(m->env);
err_free:
	free(m);
	return ret;
}

void meta_close(struct meta *m)
{
	if (m == NULL)
		return;
	mdb_env_close(m->env);
	free(m);
}

int meta_begin(struct meta *m, struct meta_txn *parent, bool rdonly, struct meta_txn **out)
{
	struct meta_txn *t = xmalloc(sizeof(*t));
	int rc;

	t->m = m;
	rc = mdb_txn_begin(m->env, parent != NULL ? parent->txn : NULL, rdonly ? MDB_RDONLY : 0,
			   &t->txn);
	if (rc != 0) {
		free(t);
		*out = NULL;
		return db_err(rc);
	}
	*out = t;
	return 0;
}

int meta_commit(struct meta_txn *t)
{
	int rc = mdb_txn_commit(t->txn);
	free(t);
	return db_err(rc);
}

void meta_abort(struct meta_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

int meta_vnode_get(struct meta_txn *t, const struct fid *fid, struct vnode *out)
{
	uint8_t k[FIDKEY_LEN];
	MDB_val key = { sizeof(k), k }, val;
	int rc;

	key_fid(k, fid);
	rc = mdb_get(t->txn, t->m->vnodes, &key, &val);
	if (rc != 0)
		return db_err(rc);
	return vnode_decode(val.mv_data, val.mv_size, fid, out);
}

int meta_vnode_put(struct meta_txn *t, const struct vnode *v)
{
	uint8_t k[FIDKEY_LEN];
	uint8_t buf[VNODE_REC_MAX];
	MDB_val key = { sizeof(k), k }, val;

	key_fid(k, &v->fid);
	val.mv_size = vnode_encode(v, buf, sizeof(buf));
	val.mv_data = buf;
	return db_err(mdb_put(t->txn, t->m->vnodes, &key, &val, 0));
}

int meta_vnode_del(struct meta_txn *t, const struct fid *fid)
{
	uint8_t k[FIDKEY_LEN];
	MDB_val key = { sizeof(k), k };

	key_fid(k, fid);
	return db_err(mdb_del(t->txn, t->m->vnodes, &key, NULL));
}

int meta_dirent_get(struct meta_txn *t, const struct fid *dir, const char *name, struct dent *out)
{
	uint8_t k[FIDKEY_LEN + NAME_MAX_LEN];
	MDB_val key, val;
	int rc;

	key.mv_size = key_dirent(k, dir, name);
	key.mv_data = k;
	rc = mdb_get(t->txn, t->m->dirents, &key, &val);
	if (rc != 0)
		return db_err(rc);
	return dent_decode(val.mv_data, val.mv_size, out);
}

int meta_dirent_put(struct meta_txn *t, const struct fid *dir, const char *name,
		    const struct dent *d)
{
	uint8_t k[FIDKEY_LEN + NAME_MAX_LEN];
	uint8_t buf[64];
	MDB_val key, val;

	key.mv_size = key_dirent(k, dir, name);
	key.mv_data = k;
	val.mv_size = dent_encode(d, buf, sizeof(buf));
	val.mv_data = buf;
	return db_err(mdb_put(t->txn, t->m->dirents, &key, &val, 0));
}

int meta_dirent_del(struct meta_txn *t, const struct fid *dir, const char *name)
{
	uint8_t k[FIDKEY_LEN + NAME_MAX_LEN];
	MDB_val key;

	key.mv_size = key_dirent(k, dir, name);
	key.mv_data = k;
	return db_err(mdb_del(t->txn, t->m->dirents, &key, NULL));
}

int meta_dir_scan(struct meta_txn *t, const struct fid *dir, const char *after, meta_dirent_fn fn,
		  void *arg)
{
	uint8_t k[FIDKEY_LEN + NAME_MAX_LEN];
	char name[NAME_MAX_LEN + 1];
	MDB_cursor *cur;
	MDB_val key, val;
	struct dent d;
	size_t klen;
	int rc, ret = 0;

	klen = key_dirent(k, dir, after);
	key.mv_size = klen;
	key.mv_data = k;
	rc = mdb_cursor_open(t->txn, t->m->dirents, &cur);
	if (rc != 0)
		return db_err(rc);
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	/* Skip the resume cookie itself if it still exists. */
	if (rc == 0 && after[0] != '\0' && key.mv_size == klen && memcmp(key.mv_data, k, klen) == 0)
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	while (rc == 0) {
		if (key.mv_size <= FIDKEY_LEN || key.mv_size > FIDKEY_LEN + NAME_MAX_LEN ||
		    memcmp(key.mv_data, k, FIDKEY_LEN) != 0)
			break;
		size_t n = key.mv_size - FIDKEY_LEN;
		memcpy(name, (const uint8_t *)key.mv_data + FIDKEY_LEN, n);
		name[n] = '\0';
		ret = dent_decode(val.mv_data, val.mv_size, &d);
		if (ret < 0)
			break;
		ret = fn(arg, name, &d);
		if (ret != 0)
			break;
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_err(rc);
	mdb_cursor_close(cur);
	return ret;
}

static int dir_empty_fn(void *arg, const char *name, const struct dent *d)
{
	(void)arg;
	(void)name;
	(void)d;
	return 1;
}

int meta_dir_empty(struct meta_txn *t, const struct fid *dir)
{
	int ret = meta_dir_scan(t, dir, "", dir_empty_fn, NULL);
	if (ret < 0)
		return ret;
	return ret == 0 ? 1 : 0;
}

int meta_volume_get(struct meta_txn *t, uint32_t vol, struct volrec *out)
{
	uint8_t k[4] = { (uint8_t)(vol >> 24), (uint8_t)(vol >> 16), (uint8_t)(vol >> 8),
			 (uint8_t)vol };
	MDB_val key = { sizeof(k), k }, val;
	int rc = mdb_get(t->txn, t->m->volumes, &key, &val);
	if (rc != 0)
		return db_err(rc);
	return volrec_decode(val.mv_data, val.mv_size, out);
}

int meta_volume_put(struct meta_txn *t, const struct volrec *v)
{
	uint8_t k[4] = { (uint8_t)(v->vol >> 24), (uint8_t)(v->vol >> 16), (uint8_t)(v->vol >> 8),
			 (uint8_t)v->vol };
	uint8_t buf[512];
	MDB_val key = { sizeof(k), k }, val;

	val.mv_size = volrec_encode(v, buf, sizeof(buf));
	val.mv_data = buf;
	return db_err(mdb_put(t->txn, t->m->volumes, &key, &val, 0));
}

int meta_objects_total(struct meta_txn *t, uint64_t *out)
{
	MDB_cursor *cur;
	MDB_val key, val;
	struct volrec v;
	int rc, ret = 0;

	*out = 0;
	rc = mdb_cursor_open(t->txn, t->m->volumes, &cur);
	if (rc != 0)
		return db_err(rc);
	rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == 0) {
		ret = volrec_decode(val.mv_data, val.mv_size, &v);
		if (ret < 0)
			break;
		*out += v.n_objects;
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (ret == 0 && rc != MDB_NOTFOUND)
		ret = db_err(rc);
	mdb_cursor_close(cur);
	return ret;
}

int meta_info_get(struct meta_txn *t, struct srvinfo *out)
{
	MDB_val key = { 6, (void *)"server" }, val;
	int rc = mdb_get(t->txn, t->m->info, &key, &val);
	if (rc != 0)
		return db_err(rc);
	return info_decode(val.mv_data, val.mv_size, out);
}

int meta_info_put(struct meta_txn *t, const struct srvinfo *in)
{
	uint8_t buf[512];
	MDB_val key = { 6, (void *)"server" }, val;

	val.mv_size = info_encode(in, buf, sizeof(buf));
	val.mv_data = buf;
	return db_err(mdb_put(t->txn, t->m->info, &key, &val, 0));
}

int meta_kv_get(struct meta_txn *t, enum meta_kv tab, const void *key, size_t klen, void *buf,
		size_t cap, size_t *len)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc = mdb_get(t->txn, t->m->kv[tab], &k, &v);
	if (rc != 0)
		return db_err(rc);
	if (v.mv_size > cap) {
		log_err("meta", "oversized record in table %d (%zu bytes)", (int)tab, v.mv_size);
		return -EIO;
	}
	memcpy(buf, v.mv_data, v.mv_size);
	*len = v.mv_size;
	return 0;
}

int meta_kv_put(struct meta_txn *t, enum meta_kv tab, const void *key, size_t klen, const void *val,
		size_t vlen)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	return db_err(mdb_put(t->txn, t->m->kv[tab], &k, &v, 0));
}

int meta_kv_del(struct meta_txn *t, enum meta_kv tab, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	return db_err(mdb_del(t->txn, t->m->kv[tab], &k, NULL));
}

/* Cursor walk of keys starting with prefix, from start (inclusive; a key
 * with the prefix) or the prefix itself. Shared by the kv tables and the
 * dirents scan of a volume. */
static int scan_dbi(struct meta_txn *t, MDB_dbi dbi, const void *prefix, size_t plen,
		    const void *start, size_t slen, meta_kv_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, ret = 0;

	rc = mdb_cursor_open(t->txn, dbi, &cur);
	if (rc != 0)
		return db_err(rc);
	k.mv_data = (void *)(start != NULL ? start : prefix);
	k.mv_size = start != NULL ? slen : plen;
	if (k.mv_size == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	else
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		ret = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		if (ret != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		ret = db_err(rc);
	mdb_cursor_close(cur);
	return ret;
}

int meta_kv_scan(struct meta_txn *t, enum meta_kv tab, const void *prefix, size_t plen,
		 const void *start, size_t slen, meta_kv_fn fn, void *arg)
{
	return scan_dbi(t, t->m->kv[tab], prefix, plen, start, slen, fn, arg);
}

int meta_raw_scan(struct meta_txn *t, bool dirents, const void *prefix, size_t plen,
		  const void *start, size_t slen, meta_kv_fn fn, void *arg)
{
	return scan_dbi(t, dirents ? t->m->dirents : t->m->vnodes, prefix, plen, start, slen, fn,
			arg);
}

int meta_inline_get(struct meta_txn *t, const struct fid *fid, uint64_t dv, uint64_t off, void *buf,
		    size_t len)
{
	uint8_t k[FIDKEY_LEN];
	MDB_val key = { sizeof(k), k }, val;
	struct rd r;
	uint64_t rdv;
	size_t n;
	int rc, ret;

	key_fid(k, fid);
	rc = mdb_get(t->txn, t->m->inl, &key, &val);
	if (rc != 0)
		return db_err(rc);
	rd_init(&r, val.mv_data, val.mv_size);
	ret = rd_head(&r, MAGIC_INLINE, "inline");
	if (ret < 0)
		return ret;
	rdv = rd_u64(&r);
	if (r.err != 0 || rd_left(&r) > META_INLINE_MAX) {
		log_err("meta", "bad inline record: %zu bytes", (size_t)val.mv_size);
		return -EIO;
	}
	if (rdv != dv)
		return -ENOENT;
	n = rd_left(&r);
	if (off >= n)
		return 0;
	n -= (size_t)off;
	if (n > len)
		n = len;
	memcpy(buf, rd_bytes(&r, rd_left(&r)) + off, n);
	return (int)n;
}

int meta_inline_put(struct meta_txn *t, const struct fid *fid, uint64_t dv, const void *data,
		    size_t len)
{
	uint8_t k[FIDKEY_LEN];
	MDB_val key = { sizeof(k), k }, val;
	uint8_t hdr[16];
	struct fw w = { hdr, 0, sizeof(hdr) };
	int rc;

	ASSERT(len <= META_INLINE_MAX);
	key_fid(k, fid);
	fw_head(&w, MAGIC_INLINE);
	fw_u64(&w, dv);
	/* Reserve the value and fill it in place: no staging copy. */
	val.mv_size = sizeof(hdr) + len;
	val.mv_data = NULL;
	rc = mdb_put(t->txn, t->m->inl, &key, &val, MDB_RESERVE);
	if (rc != 0)
		return db_err(rc);
	memcpy(val.mv_data, hdr, sizeof(hdr));
	if (len > 0)
		memcpy((uint8_t *)val.mv_data + sizeof(hdr), data, len);
	return 0;
}

int meta_inline_del(struct meta_txn *t, const struct fid *fid)
{
	uint8_t k[FIDKEY_LEN];
	MDB_val key = { sizeof(k), k };
	int rc;

	key_fid(k, fid);
	rc = mdb_del(t->txn, t->m->inl, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : db_err(rc);
}
