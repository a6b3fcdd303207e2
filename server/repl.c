/*
 * repl.c - replication records of encore-server in LMDB (pending COP2
 * entries, directory resolution logs, the conflict table) and the packed
 * formats of RES_SCAN, RES_LOG/RES_APPLY and CONFLICTS.
 * Owns:    the encodings of the cop2, reslog and conflicts tables.
 * Borrows: the caller's meta transaction.
 * Locking: the transaction's owner (the server loop).
 * Format:  docs/ondisk.md "Replication tables", docs/protocol.md.
 */
#include "server/repl.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fid.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/xalloc.h"

#define MAGIC_COP2     0x32434e45u /* "ENC2" */
#define MAGIC_RESLOG   0x4c524e45u /* "ENRL" */
#define MAGIC_CONFLICT 0x46434e45u /* "ENCF" */
#define REC_VERSION    1
/* cop2 records: version 2 adds the time of the update (the age bound of
 * repl_cop2_gc); version 1 is still read, as an entry of unknown age. */
#define COP2_VERSION 2
/* Depth bound of a path walk (a cycle means corruption). */
#define PATH_DEPTH_MAX 4096
/* Oids one COP2 entry may hold (several updates may share a StoreId when
 * a client retries). */
#define COP2_OIDS_MAX (REPL_COP2_MAX * 4)

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void head_v(struct wr *w, uint32_t magic, uint16_t version)
{
	wr_u32(w, magic);
	wr_u16(w, version);
	wr_u16(w, 0);
}

static void head(struct wr *w, uint32_t magic)
{
	head_v(w, magic, REC_VERSION);
}

static int check_head(struct rd *r, uint32_t magic, const char *what)
{
	uint32_t mg = rd_u32(r);
	uint16_t ver = rd_u16(r);
	(void)rd_u16(r);
	if (r->err != 0 || mg != magic || ver != REC_VERSION) {
		log_err("repl", "bad %s record: magic %08x version %u", what, mg, ver);
		return -EIO;
	}
	return 0;
}

static void vv_put(struct wr *w, const struct vv *v)
{
	ASSERT(v->n <= VV_MAX);
	wr_u8(w, (uint8_t)v->n);
	for (uint32_t i = 0; i < v->n; i++)
		wr_u32(w, v->slot[i]);
}

static void vv_get(struct rd *r, struct vv *v)
{
	v->n = rd_u8(r);
	if (v->n > VV_MAX) {
		rd_fail(r);
		v->n = 0;
	}
	for (uint32_t i = 0; i < v->n; i++)
		v->slot[i] = rd_u32(r);
}

void rlog_encode(struct wr *w, const struct rlog_rec *r)
{
	size_t n = strlen(r->name);
	ASSERT(n <= NAME_MAX_LEN);
	wr_u8(w, r->op);
	wr_u8(w, (uint8_t)n);
	wr_bytes(w, r->name, n);
	wr_bytes(w, r->child, OID_LEN);
	wr_u32(w, r->mode);
	wr_u32(w, r->uid);
	wr_u32(w, r->gid);
	vv_put(w, &r->vv);
	wr_u64(w, r->sid.client);
	wr_u64(w, r->sid.seq);
}

int rlog_decode(struct rd *r, struct rlog_rec *out)
{
	if (rd_left(r) == 0 && r->err == 0)
		return 0;
	memset(out, 0, sizeof(*out));
	out->op = rd_u8(r);
	uint8_t n = rd_u8(r);
	const uint8_t *p = rd_bytes(r, n);
	if (p != NULL) {
		memcpy(out->name, p, n);
		out->name[n] = '\0';
	}
	p = rd_bytes(r, OID_LEN);
	if (p != NULL)
		memcpy(out->child, p, OID_LEN);
	out->mode = rd_u32(r);
	out->uid = rd_u32(r);
	out->gid = rd_u32(r);
	vv_get(r, &out->vv);
	out->sid.client = rd_u64(r);
	out->sid.seq = rd_u64(r);
	if (r->err != 0 || out->op < RLOG_CREATE || out->op > RLOG_MARK || strlen(out->name) != n ||
	    (out->op != RLOG_SETATTR && out->op != RLOG_MARK && !name_valid(out->name)) ||
	    strchr(out->name, '/') != NULL)
		return -EPROTO;
	return 1;
}

void scan_ent_encode(struct wr *w, const struct scan_ent *e)
{
	wr_bytes(w, e->oid, OID_LEN);
	wr_u32(w, e->mode);
	wr_u32(w, e->flags);
	vv_put(w, &e->vv);
	wr_u64(w, e->sid.client);
	wr_u64(w, e->sid.seq);
}

int scan_ent_decode(struct rd *r, struct scan_ent *out)
{
	if (rd_left(r) == 0 && r->err == 0)
		return 0;
	memset(out, 0, sizeof(*out));
	const uint8_t *p = rd_bytes(r, OID_LEN);
	if (p != NULL)
		memcpy(out->oid, p, OID_LEN);
	out->mode = rd_u32(r);
	out->flags = rd_u32(r);
	vv_get(r, &out->vv);
	out->sid.client = rd_u64(r);
	out->sid.seq = rd_u64(r);
	return r->err != 0 ? -EPROTO : 1;
}

int repl_vsg(struct meta_txn *t, uint32_t vol, uint32_t self, struct vsg *vsg, uint32_t *slot)
{
	struct volrec vr;
	int ret = meta_volume_get(t, vol, &vr);
	if (ret < 0)
		return ret;
	*slot = 0;
	if (vr.vsg.n == 0) {
		vsg->n = 1;
		vsg->ids[0] = self;
		return 0;
	}
	*vsg = vr.vsg;
	for (uint32_t i = 0; i < vsg->n; i++)
		if (vsg->ids[i] == self)
			*slot = i;
	return 0;
}

/* ---- COP2 ---------------------------------------------------------------- */

#define COP2_KEY_LEN 20

static void cop2_key(uint8_t *k, uint32_t vol, const struct storeid *sid)
{
	put_be32(k, vol);
	put_be64(k + 4, sid->client);
	put_be64(k + 12, sid->seq);
}

int repl_cop2_decode(const uint8_t *buf, size_t len, uint8_t (*oids)[OID_LEN], size_t *n,
		     uint64_t *created)
{
	struct rd r;

	*n = 0;
	*created = 0;
	rd_init(&r, buf, len);
	uint32_t mg = rd_u32(&r);
	uint16_t ver = rd_u16(&r);
	(void)rd_u16(&r);
	if (r.err != 0 || mg != MAGIC_COP2 || ver < 1 || ver > COP2_VERSION) {
		log_err("repl", "bad cop2 record: magic %08x version %u", mg, ver);
		return -EIO;
	}
	if (ver >= 2)
		*created = rd_u64(&r);
	uint32_t cnt = rd_u32(&r);
	if (cnt > COP2_OIDS_MAX)
		rd_fail(&r);
	for (uint32_t i = 0; i < cnt && r.err == 0; i++) {
		const uint8_t *p = rd_bytes(&r, OID_LEN);
		if (p != NULL && oids != NULL)
			memcpy(oids[i], p, OID_LEN);
	}
	if (!rd_done(&r)) {
		log_err("repl", "malformed cop2 record");
		return -EIO;
	}
	*n = cnt;
	return 0;
}

static int cop2_read(struct meta_txn *t, const uint8_t *k, uint8_t (*oids)[OID_LEN], size_t *n)
{
	uint8_t buf[24 + COP2_OIDS_MAX * OID_LEN];
	uint64_t created;
	size_t len;
	int ret;

	*n = 0;
	ret = meta_kv_get(t, META_KV_COP2, k, COP2_KEY_LEN, buf, sizeof(buf), &len);
	if (ret < 0)
		return ret;
	return repl_cop2_decode(buf, len, oids, n, &created);
}

int repl_cop2_add(struct meta_txn *t, uint32_t vol, const struct storeid *sid,
		  const struct fid *fids, size_t n)
{
	uint8_t k[COP2_KEY_LEN];
	uint8_t oids[COP2_OIDS_MAX][OID_LEN];
	size_t cnt = 0;
	struct wr w;
	int ret;

	if (sid->client == 0 && sid->seq == 0)
		return 0;
	cop2_key(k, vol, sid);
	ret = cop2_read(t, k, oids, &cnt);
	if (ret < 0 && ret != -ENOENT)
		return ret;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < cnt && !dup; j++)
			dup = memcmp(oids[j], fids[i].oid, OID_LEN) == 0;
		if (!dup && cnt < COP2_OIDS_MAX)
			memcpy(oids[cnt++], fids[i].oid, OID_LEN);
	}
	/* The time of the latest update with this StoreId: its phase two is
	 * due shortly after (repl_cop2_gc ages entries from here). */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	wr_init(&w);
	head_v(&w, MAGIC_COP2, COP2_VERSION);
	wr_u64(&w, now.tv_sec > 0 ? (uint64_t)now.tv_sec : 0);
	wr_u32(&w, (uint32_t)cnt);
	for (size_t i = 0; i < cnt; i++)
		wr_bytes(&w, oids[i], OID_LEN);
	ret = meta_kv_put(t, META_KV_COP2, k, sizeof(k), w.buf, w.len);
	wr_release(&w);
	return ret;
}

int repl_cop2_take(struct meta_txn *t, uint32_t vol, const struct storeid *sid,
		   uint8_t (*oids)[OID_LEN], size_t *n)
{
	uint8_t k[COP2_KEY_LEN];
	int ret;

	cop2_key(k, vol, sid);
	ret = cop2_read(t, k, oids, n);
	if (ret < 0)
		return ret;
	return meta_kv_del(t, META_KV_COP2, k, sizeof(k));
}

struct cop2_gc_ctx {
	uint64_t before;
	size_t max, seen, n;
	uint8_t (*keys)[COP2_KEY_LEN]; /* the expired ones, max at most */
	uint8_t last[COP2_KEY_LEN];
	int err;
};

static int cop2_gc_fn(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct cop2_gc_ctx *c = arg;
	uint64_t created;
	size_t n;

	if (klen != COP2_KEY_LEN) {
		log_err("repl", "bad cop2 key: %zu bytes", klen);
		return -EIO;
	}
	int ret = repl_cop2_decode(val, vlen, NULL, &n, &created);
	if (ret < 0)
		return ret;
	memcpy(c->last, key, COP2_KEY_LEN);
	if (created < c->before)
		memcpy(c->keys[c->n++], key, COP2_KEY_LEN);
	return ++c->seen == c->max ? 1 : 0;
}

/* Dropping an entry does what a COP2 that never comes does: the vectors of
 * the objects it lists keep only this replica's increment, not the other
 * members' of the update set. That is the lost-phase-two case the protocol
 * already handles (SEMANTICS.md "Versions"): the replicas that performed the
 * update hold the same StoreId, so resolution takes them as equal and merges
 * their vectors slot by slot with max (res_decide RES_MERGE); a replica that
 * missed the update has an older StoreId and a smaller vector, dominated as
 * before. A COP2 arriving after the drop finds no entry and does nothing,
 * as for an update never performed here, which leaves the same safe state. */
int repl_cop2_gc(struct meta_txn *t, uint64_t before, size_t max, const uint8_t *after,
		 uint8_t next[REPL_COP2_KEY_LEN], size_t *n_dropped, bool *more)
{
	static const uint8_t none[1];
	uint8_t start[COP2_KEY_LEN];
	struct cop2_gc_ctx c = { .before = before, .max = max };
	int ret;

	static_assert(REPL_COP2_KEY_LEN == COP2_KEY_LEN, "cop2 key length");
	*n_dropped = 0;
	*more = false;
	if (max == 0)
		return -EINVAL;
	if (after != NULL) {
		/* Resume just past the last key seen: the key plus one. */
		size_t i = COP2_KEY_LEN;
		memcpy(start, after, COP2_KEY_LEN);
		while (i > 0 && ++start[i - 1] == 0)
			i--;
		if (i == 0)
			return 0; /* after was the largest key there is */
	}
	c.keys = xmalloc(max * sizeof(*c.keys));
	ret = meta_kv_scan(t, META_KV_COP2, none, 0, after != NULL ? start : NULL,
			   after != NULL ? COP2_KEY_LEN : 0, cop2_gc_fn, &c);
	if (ret < 0)
		goto out;
	*more = ret == 1;
	memcpy(next, c.last, COP2_KEY_LEN);
	ret = 0;
	for (size_t i = 0; i < c.n && ret == 0; i++)
		ret = meta_kv_del(t, META_KV_COP2, c.keys[i], COP2_KEY_LEN);
	if (ret == 0)
		*n_dropped = c.n;
out:
	free(c.keys);
	return ret;
}

/* ---- directory resolution logs --------------------------------------------- */

#define LOG_PREFIX_LEN (4 + OID_LEN)
#define LOG_KEY_LEN    (LOG_PREFIX_LEN + 8)

static void log_prefix(uint8_t *k, const struct fid *dir)
{
	put_be32(k, dir->vol);
	memcpy(k + 4, dir->oid, OID_LEN);
}

struct last_ctx {
	uint64_t seq;
};

static int last_fn(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct last_ctx *c = arg;
	(void)val;
	(void)vlen;
	if (klen == LOG_KEY_LEN)
		c->seq = get_be64(key + LOG_PREFIX_LEN);
	return 0;
}

int repl_log_append(struct meta_txn *t, const struct fid *dir, const struct rlog_rec *r)
{
	uint8_t k[LOG_KEY_LEN];
	struct last_ctx c = { 0 };
	struct wr w;
	int ret;

	/* Logs are short between resolutions; a scan finds the last seq. */
	log_prefix(k, dir);
	ret = meta_kv_scan(t, META_KV_RESLOG, k, LOG_PREFIX_LEN, NULL, 0, last_fn, &c);
	if (ret < 0)
		return ret;
	put_be64(k + LOG_PREFIX_LEN, c.seq + 1);
	wr_init(&w);
	head(&w, MAGIC_RESLOG);
	rlog_encode(&w, r);
	ret = meta_kv_put(t, META_KV_RESLOG, k, sizeof(k), w.buf, w.len);
	wr_release(&w);
	if (log_get_level() >= LOG_DEBUG) {
		char ds[FID_STR_LEN], cs[FID_STR_LEN];
		struct fid child = { .vol = dir->vol };

		memcpy(child.oid, r->child, OID_LEN);
		fid_fmt(dir, ds);
		fid_fmt(&child, cs);
		log_debug("rlog", "%s #%llu: op %u '%s' %s sid %llx:%llu (txn may abort)", ds,
			  (unsigned long long)(c.seq + 1), r->op, r->name, cs,
			  (unsigned long long)r->sid.client, (unsigned long long)r->sid.seq);
	}
	return ret;
}

struct logread_ctx {
	struct wr *w;
	size_t max;
	uint64_t last;
	bool full;
	const struct rlog_rec *want; /* repl_log_has */
	bool found;
	struct wr *keys; /* repl_log_truncate */
};

static int decode_logval(const uint8_t *val, size_t vlen, struct rlog_rec *rec)
{
	struct rd r;
	int ret;

	rd_init(&r, val, vlen);
	ret = check_head(&r, MAGIC_RESLOG, "reslog");
	if (ret < 0)
		return ret;
	ret = rlog_decode(&r, rec);
	if (ret != 1 || rd_left(&r) != 0) {
		log_err("repl", "malformed resolution log record");
		return -EIO;
	}
	return 0;
}

static int logread_fn(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct logread_ctx *c = arg;
	struct rlog_rec rec;
	int ret;

	if (klen != LOG_KEY_LEN)
		return 0;
	ret = decode_logval(val, vlen, &rec);
	if (ret < 0)
		return ret;
	if (c->want != NULL) {
		if (rec.op == c->want->op && storeid_eq(&rec.sid, &c->want->sid) &&
		    strcmp(rec.name, c->want->name) == 0) {
			c->found = true;
			return 1;
		}
		return 0;
	}
	if (c->w->len + RLOG_WIRE_MAX > c->max) {
		c->full = true;
		return 1;
	}
	rlog_encode(c->w, &rec);
	c->last = get_be64(key + LOG_PREFIX_LEN);
	return 0;
}

int repl_log_read(struct meta_txn *t, const struct fid *dir, uint64_t after, struct wr *w,
		  size_t max_bytes, uint64_t *last, bool *eof)
{
	uint8_t p[LOG_PREFIX_LEN], s[LOG_KEY_LEN];
	struct logread_ctx c = { .w = w, .max = max_bytes, .last = after };
	int ret;

	log_prefix(p, dir);
	memcpy(s, p, LOG_PREFIX_LEN);
	put_be64(s + LOG_PREFIX_LEN, after + 1);
	ret = meta_kv_scan(t, META_KV_RESLOG, p, sizeof(p), s, sizeof(s), logread_fn, &c);
	if (ret < 0)
		return ret;
	*last = c.last;
	*eof = !c.full;
	return 0;
}

int repl_log_has(struct meta_txn *t, const struct fid *dir, const struct rlog_rec *r)
{
	uint8_t p[LOG_PREFIX_LEN];
	struct logread_ctx c = { .want = r };
	int ret;

	log_prefix(p, dir);
	ret = meta_kv_scan(t, META_KV_RESLOG, p, sizeof(p), NULL, 0, logread_fn, &c);
	if (ret < 0)
		return ret;
	return c.found ? 1 : 0;
}

static int keys_fn(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct wr *w = arg;
	(void)val;
	(void)vlen;
	if (klen == LOG_KEY_LEN)
		wr_bytes(w, key, klen);
	return 0;
}

int repl_log_truncate(struct meta_txn *t, const struct fid *dir)
{
	uint8_t p[LOG_PREFIX_LEN];
	struct wr keys;
	int ret;

	log_prefix(p, dir);
	wr_init(&keys);
	ret = meta_kv_scan(t, META_KV_RESLOG, p, sizeof(p), NULL, 0, keys_fn, &keys);
	for (size_t off = 0; ret >= 0 && off < keys.len; off += LOG_KEY_LEN)
		ret = meta_kv_del(t, META_KV_RESLOG, keys.buf + off, LOG_KEY_LEN);
	wr_release(&keys);
	return ret < 0 ? ret : 0;
}

/* ---- conflict table ------------------------------------------------------- */

#define CF_KEY_LEN (4 + OID_LEN)

int repl_conflict_add(struct meta_txn *t, const struct fid *fid, const char *path)
{
	uint8_t k[CF_KEY_LEN];
	struct wr w;
	int ret;
	size_t n = strnlen(path, REPL_PATH_MAX);

	put_be32(k, fid->vol);
	memcpy(k + 4, fid->oid, OID_LEN);
	wr_init(&w);
	head(&w, MAGIC_CONFLICT);
	wr_u16(&w, (uint16_t)n);
	wr_bytes(&w, path, n);
	ret = meta_kv_put(t, META_KV_CONFLICTS, k, sizeof(k), w.buf, w.len);
	wr_release(&w);
	return ret;
}

int repl_conflict_del(struct meta_txn *t, const struct fid *fid)
{
	uint8_t k[CF_KEY_LEN];
	put_be32(k, fid->vol);
	memcpy(k + 4, fid->oid, OID_LEN);
	int ret = meta_kv_del(t, META_KV_CONFLICTS, k, sizeof(k));
	return ret == -ENOENT ? 0 : ret;
}

struct cflist_ctx {
	struct wr *w;
	size_t max;
	uint32_t vol;
	const uint8_t *after;
	uint8_t *last;
	bool full;
};

static int cflist_fn(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct cflist_ctx *c = arg;
	struct rd r;
	int ret;

	if (klen != CF_KEY_LEN)
		return 0;
	if (c->after != NULL && memcmp(key + 4, c->after, OID_LEN) == 0)
		return 0;
	rd_init(&r, val, vlen);
	ret = check_head(&r, MAGIC_CONFLICT, "conflict");
	if (ret < 0)
		return ret;
	uint16_t n = rd_u16(&r);
	const uint8_t *p = rd_bytes(&r, n);
	if (!rd_done(&r) || n > REPL_PATH_MAX) {
		log_err("repl", "malformed conflict record");
		return -EIO;
	}
	if (c->w->len + 22 + n > c->max) {
		c->full = true;
		return 1;
	}
	wr_u32(c->w, c->vol);
	wr_bytes(c->w, key + 4, OID_LEN);
	wr_u16(c->w, n);
	wr_bytes(c->w, p, n);
	memcpy(c->last, key + 4, OID_LEN);
	return 0;
}

int repl_conflict_list(struct meta_txn *t, uint32_t vol, const uint8_t *after, struct wr *w,
		       size_t max_bytes, uint8_t last[OID_LEN], bool *eof)
{
	uint8_t p[4], s[CF_KEY_LEN];
	struct cflist_ctx c = {
		.w = w, .max = max_bytes, .vol = vol, .after = after, .last = last
	};
	int ret;

	put_be32(p, vol);
	memcpy(s, p, 4);
	if (after != NULL)
		memcpy(s + 4, after, OID_LEN);
	ret = meta_kv_scan(t, META_KV_CONFLICTS, p, sizeof(p), after != NULL ? s : NULL, sizeof(s),
			   cflist_fn, &c);
	if (ret < 0)
		return ret;
	*eof = !c.full;
	return 0;
}

/* ---- names and paths ------------------------------------------------------- */

struct findname_ctx {
	const uint8_t *oid;
	char *name;
	uint8_t *parent;
	bool found;
};

static int findname_dir_fn(void *arg, const char *name, const struct dent *d)
{
	struct findname_ctx *c = arg;
	if (memcmp(d->oid, c->oid, OID_LEN) != 0)
		return 0;
	snprintf(c->name, NAME_MAX_LEN + 1, "%s", name);
	c->found = true;
	return 1;
}

static int findname_raw_fn(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
			   size_t vlen)
{
	struct findname_ctx *c = arg;
	struct dent d;

	if (klen <= 4 + OID_LEN || klen > 4 + OID_LEN + NAME_MAX_LEN)
		return 0;
	if (dent_decode(val, vlen, &d) < 0)
		return -EIO;
	if (memcmp(d.oid, c->oid, OID_LEN) != 0)
		return 0;
	memcpy(c->parent, key + 4, OID_LEN);
	memcpy(c->name, key + 4 + OID_LEN, klen - 4 - OID_LEN);
	c->name[klen - 4 - OID_LEN] = '\0';
	c->found = true;
	return 1;
}

int repl_find_name(struct meta_txn *t, const struct fid *fid, uint8_t parent[OID_LEN],
		   char name[NAME_MAX_LEN + 1])
{
	struct findname_ctx c = { .oid = fid->oid, .name = name, .parent = parent };
	struct vnode v;
	struct fid pf;
	int ret;

	name[0] = '\0';
	if (fid_is_root(fid))
		return -ENOENT;
	ret = meta_vnode_get(t, fid, &v);
	if (ret < 0)
		return ret;
	static const uint8_t zero[OID_LEN];
	if (memcmp(v.parent, zero, OID_LEN) != 0) {
		pf.vol = fid->vol;
		memcpy(pf.oid, v.parent, OID_LEN);
		ret = meta_dir_scan(t, &pf, "", findname_dir_fn, &c);
		if (ret < 0)
			return ret;
		if (c.found) {
			memcpy(parent, v.parent, OID_LEN);
			return 0;
		}
	}
	/* Files keep no parent: scan the volume's entries (rare: marking). */
	uint8_t p[4];
	put_be32(p, fid->vol);
	ret = meta_raw_scan(t, true, p, sizeof(p), NULL, 0, findname_raw_fn, &c);
	if (ret < 0)
		return ret;
	return c.found ? 0 : -ENOENT;
}

int repl_path(struct meta_txn *t, const struct fid *fid, char *out, size_t len)
{
	char name[NAME_MAX_LEN + 1];
	char *tmp = xmalloc(len);
	struct fid cur = *fid;
	uint8_t parent[OID_LEN];
	int ret = 0;

	ASSERT(len > 1);
	out[0] = '\0';
	for (int i = 0; i < PATH_DEPTH_MAX && !fid_is_root(&cur); i++) {
		ret = repl_find_name(t, &cur, parent, name);
		if (ret < 0)
			break;
		int n = snprintf(tmp, len, "/%s%s", name, out);
		if (n < 0 || (size_t)n >= len)
			break; /* too long: keep the tail we have */
		memcpy(out, tmp, (size_t)n + 1);
		memcpy(cur.oid, parent, OID_LEN);
	}
	if (out[0] == '\0')
		snprintf(out, len, "/");
	free(tmp);
	return ret == -ENOENT ? 0 : ret;
}

/* ---- RES_SCAN -------------------------------------------------------------- */

struct scan_ctx {
	struct wr *w;
	size_t max;
	const uint8_t *after;
	uint8_t *last;
	bool full;
	uint32_t vol;
};

static int scan_fn(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct scan_ctx *c = arg;
	struct scan_ent e;
	struct vnode v;
	int ret;

	if (klen != 4 + OID_LEN)
		return 0;
	if (c->after != NULL && memcmp(key + 4, c->after, OID_LEN) == 0)
		return 0;
	ret = vnode_decode(val, vlen, NULL, &v);
	if (ret < 0)
		return ret;
	if (c->w->len + 64 + 4 * VV_MAX > c->max) {
		c->full = true;
		return 1;
	}
	memcpy(e.oid, key + 4, OID_LEN);
	e.mode = v.mode;
	e.flags = v.flags;
	e.vv = v.vv;
	e.sid = v.sid;
	scan_ent_encode(c->w, &e);
	memcpy(c->last, key + 4, OID_LEN);
	return 0;
}

int repl_scan(struct meta_txn *t, uint32_t vol, const uint8_t *after, struct wr *w,
	      size_t max_bytes, uint8_t last[OID_LEN], bool *eof)
{
	uint8_t p[4], s[4 + OID_LEN];
	struct scan_ctx c = { .w = w, .max = max_bytes, .after = after, .last = last, .vol = vol };
	int ret;

	put_be32(p, vol);
	memcpy(s, p, 4);
	if (after != NULL)
		memcpy(s + 4, after, OID_LEN);
	ret = meta_raw_scan(t, false, p, sizeof(p), after != NULL ? s : NULL, sizeof(s), scan_fn,
			    &c);
	if (ret < 0)
		return ret;
	*eof = !c.full;
	return 0;
}
