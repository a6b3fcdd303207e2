/*
 * reint.c - REINTEGRATE: checks each CML record of a batch against the
 * current objects and applies the ones that pass, in order, in the loop's
 * batch txn (docs/disconnected.md "Reintegration").
 * Owns:    the reint table's records (docs/ondisk.md).
 * Borrows: ops and its batch txn; the connection's partial stores (the
 *          STORE_REINT uploads a store record names).
 * Locking: single-threaded (the server loop).
 *
 * A record that passes runs as the connected update it stands for, through
 * ops_exec: the same permission checks, version vectors, StoreId, COP2 entry,
 * directory resolution log, volume stamp and callback breaks, in a child txn
 * of the batch, so a record that fails leaves nothing behind. The batch
 * commits once (ops_batch_end) with the client's mark, and the loop sends
 * the reply only after that commit.
 *
 * Idempotency: per (volume, client id) the mark holds the highest seq
 * processed and the statuses of the conflicts of the latest batches; a
 * record at or below it answers from the mark (its conflict status, else
 * CML_ST_ALREADY). Past the mark, a record whose object already carries its
 * StoreId, or whose namespace change is already there (the same fid under
 * the name), is CML_ST_ALREADY too (e.g. resolution brought it from
 * another replica).
 */
#include "server/reint.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cml.h"
#include "common/db.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/xalloc.h"

#define MARK_MAGIC   0x544e4952u /* "RINT" */
#define MARK_VERSION 1
#define MARK_KEY_LEN (4 + 8)
#define MARK_VAL_MAX (DB_HDR_LEN + 8 + 2 + CML_BATCH_MAX * 12)

static_assert(STORE_MEM_MAX <= META_INLINE_MAX, "uploads kept in memory are installed inline");

/* ---- the reint table ---- */

static void mark_key(uint8_t k[MARK_KEY_LEN], uint32_t vol, uint64_t client)
{
	/* Big-endian, like the other tables' keys. */
	for (int i = 0; i < 4; i++)
		k[i] = (uint8_t)(vol >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		k[4 + i] = (uint8_t)(client >> (56 - 8 * i));
}

void reint_mark_encode(struct wr *w, const struct reint_mark *m)
{
	ASSERT(m->n <= CML_BATCH_MAX);
	db_hdr_put(w, MARK_MAGIC, MARK_VERSION);
	wr_u64(w, m->hw);
	wr_u16(w, (uint16_t)m->n);
	for (uint32_t i = 0; i < m->n; i++) {
		wr_u64(w, m->conf[i].seq);
		wr_u32(w, m->conf[i].status);
	}
}

int reint_mark_decode(const uint8_t *buf, size_t len, struct reint_mark *out)
{
	struct rd r;
	int ret;

	memset(out, 0, sizeof(*out));
	rd_init(&r, buf, len);
	ret = db_hdr_check(&r, MARK_MAGIC, MARK_VERSION, "reint");
	if (ret < 0)
		return ret;
	out->hw = rd_u64(&r);
	out->n = rd_u16(&r);
	if (out->n > CML_BATCH_MAX) {
		out->n = 0;
		rd_fail(&r);
	}
	for (uint32_t i = 0; i < out->n; i++) {
		out->conf[i].seq = rd_u64(&r);
		out->conf[i].status = rd_u32(&r);
	}
	if (!rd_done(&r)) {
		log_msg(LOG_CRIT, "reint", "malformed reint record (%zu bytes)", len);
		memset(out, 0, sizeof(*out));
		return -EIO;
	}
	return 0;
}

int reint_mark_get(struct meta_txn *t, uint32_t vol, uint64_t client, struct reint_mark *out)
{
	uint8_t k[MARK_KEY_LEN], v[MARK_VAL_MAX];
	size_t len;
	int ret;

	mark_key(k, vol, client);
	ret = meta_kv_get(t, META_KV_REINT, k, sizeof(k), v, sizeof(v), &len);
	if (ret < 0) {
		memset(out, 0, sizeof(*out));
		return ret;
	}
	return reint_mark_decode(v, len, out);
}

int reint_mark_put(struct meta_txn *t, uint32_t vol, uint64_t client, const struct reint_mark *m)
{
	uint8_t k[MARK_KEY_LEN];
	struct wr w;
	int ret;

	mark_key(k, vol, client);
	wr_init(&w);
	reint_mark_encode(&w, m);
	ret = meta_kv_put(t, META_KV_REINT, k, sizeof(k), w.buf, w.len);
	wr_release(&w);
	return ret;
}

/* Appends (seq, status), dropping the oldest entry when full. */
static void mark_push(struct reint_mark *m, uint64_t seq, uint32_t status)
{
	if (m->n == CML_BATCH_MAX) {
		memmove(&m->conf[0], &m->conf[1], (CML_BATCH_MAX - 1) * sizeof(m->conf[0]));
		m->n--;
	}
	m->conf[m->n].seq = seq;
	m->conf[m->n].status = status;
	m->n++;
}

/* The answer for a record at or below the mark. */
static uint32_t mark_status(const struct reint_mark *m, uint64_t seq)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (m->conf[i].seq == seq)
			return m->conf[i].status;
	return CML_ST_ALREADY;
}

/* ---- STORE_REINT uploads ---- */

int reint_store_done(struct pstore *p, uint64_t length)
{
	if (length > CML_STORE_LEN_MAX)
		return -EFBIG;
	/* No fsync here: the temp file lives only as long as the connection
	 * (DIR/tmp is cleared at start), and the REINTEGRATE batch that
	 * installs it fsyncs it before its commit like every store. */
	if (ftruncate(p->fd, (off_t)length) < 0)
		return -errno;
	return 0;
}

/* ---- checking one record ---- */

/* Statuses that say "not now" rather than "never": the record stays in the
 * client's log and the server does not advance the mark past it. */
static bool status_retry(uint32_t st)
{
	switch (st) {
	case ST_BADF: /* the STORE_REINT handle is unknown: upload again */
	case ST_IO:
	case ST_NOSPC:
	case ST_DQUOT:
	case ST_NOMEM:
	case ST_AGAIN:
	case ST_BUSY:
	case ST_TIMEDOUT:
		return true;
	default:
		return false;
	}
}

static uint32_t rec_status(int err)
{
	uint32_t st = err_to_status(err);

	/* 1 is CML_ST_ALREADY on this reply. */
	return st == ST_PERM ? ST_ACCES : st;
}

static bool ver_unset(const struct cml_ver *e)
{
	return e->dv == 0 && e->vv.n == 0 && e->sid.client == 0 && e->sid.seq == 0;
}

/* The object is still at the version the record was based on. */
static bool ver_ok(const struct cml_ver *e, const struct vnode *v)
{
	if (ver_unset(e))
		return true;
	if ((e->sid.client != 0 || e->sid.seq != 0) && storeid_eq(&e->sid, &v->sid))
		return true; /* equal StoreIds: equal contents, whatever COP2 did */
	if (e->vv.n > 0)
		return vv_compare(&e->vv, &v->vv) == VV_EQUAL;
	return e->dv != 0 && e->dv == v->data_version;
}

static bool oid_zero(const uint8_t *oid)
{
	static const uint8_t zero[OID_LEN];
	return memcmp(oid, zero, OID_LEN) == 0;
}

/* 0 if f is a directory; -ENOENT, -ENOTDIR or another error. */
static int check_dir(struct meta_txn *t, const struct fid *f)
{
	struct vnode d;
	int ret = meta_vnode_get(t, f, &d);

	if (ret < 0)
		return ret;
	return S_ISDIR(d.mode) ? 0 : -ENOTDIR;
}

/* 1 with oid if name is bound in dir, 0 if not (or no such dir), <0 error. */
static int bound(struct meta_txn *t, const struct fid *dir, const char *name, uint8_t oid[OID_LEN])
{
	struct dent de;
	int ret = meta_dirent_get(t, dir, name, &de);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	memcpy(oid, de.oid, OID_LEN);
	return 1;
}

/* Checks r against the current state: 0 to apply it, 1 if it is already
 * applied, or the conflict (a negative errno or -ERR_*). */
static int check_rec(struct meta_txn *t, struct ops_conn *oc, const struct cml_rec *r)
{
	uint8_t oid[OID_LEN], oid2[OID_LEN];
	struct vnode v, v2;
	bool have;
	int ret, b, b2;

	ret = meta_vnode_get(t, &r->fid, &v);
	if (ret < 0 && ret != -ENOENT)
		return ret;
	have = ret == 0;
	if (have && storeid_eq(&v.sid, &r->sid))
		return 1;

	switch (r->op) {
	case CML_CREATE:
		ret = check_dir(t, &r->dir);
		if (ret < 0)
			return ret;
		b = bound(t, &r->dir, r->name, oid);
		if (b < 0)
			return b;
		if (b == 1)
			return memcmp(oid, r->fid.oid, OID_LEN) == 0 ? 1 : -EEXIST;
		return have ? -EEXIST : 0;

	case CML_REMOVE:
		b = bound(t, &r->dir, r->name, oid);
		if (b < 0)
			return b;
		if (b == 0)
			return have ? -ENOENT : 1; /* gone (perhaps with its directory) */
		if (memcmp(oid, r->fid.oid, OID_LEN) != 0)
			return -ERR_CONFLICT; /* the name now holds another object */
		if (!have)
			return -EIO;
		return ver_ok(&r->ver, &v) ? 0 : -ERR_VERSION;

	case CML_RENAME:
		b = bound(t, &r->dir, r->name, oid);
		if (b < 0)
			return b;
		b2 = bound(t, &r->dir2, r->name2, oid2);
		if (b2 < 0)
			return b2;
		if ((b == 0 || memcmp(oid, r->fid.oid, OID_LEN) != 0) && b2 == 1 &&
		    memcmp(oid2, r->fid.oid, OID_LEN) == 0)
			return 1;
		ret = check_dir(t, &r->dir);
		if (ret == 0)
			ret = check_dir(t, &r->dir2);
		if (ret < 0)
			return ret;
		if (b == 0)
			return -ENOENT;
		if (memcmp(oid, r->fid.oid, OID_LEN) != 0)
			return -ERR_CONFLICT;
		if (b2 == 1 && memcmp(oid2, r->fid.oid, OID_LEN) != 0) {
			/* name2 is taken: only by the object the client saw there,
			 * unchanged since. */
			if (oid_zero(r->fid2.oid) || memcmp(oid2, r->fid2.oid, OID_LEN) != 0)
				return -EEXIST;
			ret = meta_vnode_get(t, &r->fid2, &v2);
			if (ret < 0)
				return ret == -ENOENT ? -EIO : ret;
			if (!ver_ok(&r->ver2, &v2))
				return -ERR_VERSION;
		}
		return 0;

	case CML_LINK:
		if (!have)
			return -ENOENT;
		ret = check_dir(t, &r->dir);
		if (ret < 0)
			return ret;
		b = bound(t, &r->dir, r->name, oid);
		if (b < 0)
			return b;
		if (b == 1)
			return memcmp(oid, r->fid.oid, OID_LEN) == 0 ? 1 : -EEXIST;
		return 0;

	case CML_SETATTR:
		if (!have)
			return -ENOENT;
		return ver_ok(&r->ver, &v) ? 0 : -ERR_VERSION;

	case CML_STORE: {
		const struct pstore *p = store_set_find(oc->stores, r->handle);
		if (!have)
			return -ENOENT;
		if (!ver_ok(&r->ver, &v))
			return -ERR_VERSION;
		if (p == NULL)
			return -EBADF;
		return fid_eq(&p->fid, &r->fid) ? 0 : -EINVAL;
	}

	default:
		return -EINVAL; /* cml_batch_check refused it already */
	}
}

/* ---- applying one record ---- */

/* The connected update r stands for, with the batch's credentials. */
static void rec_to_msg(const struct msg *req, const struct cml_rec *r, struct msg *m)
{
	static const uint16_t types[] = {
		[CML_CREATE] = MSG_CREATE, [CML_REMOVE] = MSG_REMOVE,	[CML_RENAME] = MSG_RENAME,
		[CML_LINK] = MSG_LINK,	   [CML_SETATTR] = MSG_SETATTR, [CML_STORE] = MSG_STORE,
	};

	ASSERT(r->op < sizeof(types) / sizeof(types[0]) && types[r->op] != 0);
	msg_init(m, types[r->op]);
	m->reqid = req->reqid;
	m->cred = req->cred;
	m->sid = r->sid;
	switch (r->op) {
	case CML_CREATE:
		m->fid = r->dir;
		m->fid2 = r->fid;
		memcpy(m->name, r->name, sizeof(m->name));
		memcpy(m->target, r->target, sizeof(m->target));
		m->mode = r->mode;
		m->rdev = r->rdev;
		m->mflags = CREATE_EXCL;
		break;
	case CML_REMOVE:
		m->fid = r->dir;
		memcpy(m->name, r->name, sizeof(m->name));
		m->mflags = r->flags;
		break;
	case CML_RENAME:
		m->fid = r->dir;
		m->fid2 = r->dir2;
		memcpy(m->name, r->name, sizeof(m->name));
		memcpy(m->name2, r->name2, sizeof(m->name2));
		m->mflags = r->flags;
		break;
	case CML_LINK:
		m->fid = r->fid;
		m->fid2 = r->dir;
		memcpy(m->name, r->name, sizeof(m->name));
		break;
	case CML_SETATTR:
		m->fid = r->fid;
		m->sattr = r->sattr;
		break;
	case CML_STORE:
		/* The last (empty) chunk of the upload under the handle: op_store
		 * installs it as the new version. */
		m->fid = r->fid;
		m->handle = r->handle;
		m->length = r->length;
		m->mflags = STORE_LAST;
		m->sattr.valid = SA_MTIME;
		m->sattr.mtime = r->mtime;
		break;
	default:
		break;
	}
}

/* Runs m through ops_exec; returns its reply's status. */
static int exec_one(struct ops *o, struct ops_conn *oc, const struct msg *m)
{
	struct msg *rep = xmalloc(sizeof(*rep));
	int ret;

	msg_init_reply(rep, m, 0);
	ops_exec(o, oc, m, rep);
	ret = rep->status;
	free(rep);
	return ret;
}

/* Drops a store record's upload if it is still there (not installed). */
static void drop_upload(struct ops *o, struct ops_conn *oc, const struct msg *req,
			const struct cml_rec *r)
{
	struct msg *m;

	if (r->op != CML_STORE || store_set_find(oc->stores, r->handle) == NULL)
		return;
	m = xmalloc(sizeof(*m));
	msg_init(m, MSG_STORE);
	m->reqid = req->reqid;
	m->cred = req->cred;
	m->fid = r->fid;
	m->handle = r->handle;
	m->mflags = STORE_ABORT;
	(void)exec_one(o, oc, m);
	free(m);
}

/* A store record of a small file: its upload becomes the data of a
 * one-chunk STORE, which op_store keeps inline in the object's record (as
 * a connected store of that size) instead of installing and fsyncing a
 * container per file; the upload is dropped then. 0, or -errno (the upload
 * is unchanged). */
static int inline_store(struct ops_conn *oc, const struct cml_rec *r, struct msg *m, uint8_t **buf)
{
	struct pstore *p = store_set_find(oc->stores, r->handle);
	ssize_t n;

	*buf = NULL;
	if (p == NULL || r->length > META_INLINE_MAX)
		return -EINVAL;
	*buf = xcalloc(r->length > 0 ? r->length : 1, 1);
	if (p->mem != NULL) {
		/* The record's length is the size installed (zeros past the
		 * upload). */
		n = (ssize_t)r->length;
		memcpy(*buf, p->mem, p->bytes < r->length ? p->bytes : r->length);
	} else {
		n = r->length > 0 ? pread(p->fd, *buf, r->length, 0) : 0;
		if (n < 0)
			return -errno;
		if ((uint64_t)n != r->length)
			return -EIO; /* reint_store_done sized it */
	}
	m->mflags = STORE_FIRST | STORE_LAST;
	m->offset = 0;
	m->data = n > 0 ? *buf : NULL;
	m->data_len = (uint32_t)n;
	return 0;
}

/* Checks and applies one record: its reply status. */
static uint32_t reint_one(struct ops *o, struct meta_txn *t, struct ops_conn *oc,
			  const struct msg *req, const struct cml_rec *r)
{
	uint8_t *buf = NULL;
	struct msg *m;
	int ret = check_rec(t, oc, r);

	if (ret == 1)
		return CML_ST_ALREADY;
	if (ret < 0)
		return rec_status(ret);
	m = xmalloc(sizeof(*m));
	rec_to_msg(req, r, m);
	if (r->op == CML_STORE && r->length <= META_INLINE_MAX) {
		ret = inline_store(oc, r, m, &buf);
		if (ret < 0) {
			free(buf);
			free(m);
			return rec_status(ret);
		}
	}
	ret = exec_one(o, oc, m);
	free(buf);
	free(m);
	return ret == 0 ? CML_ST_APPLIED : rec_status(ret);
}

bool reint_exec(struct ops *o, struct meta_txn *t, struct ops_conn *oc, const struct msg *req,
		struct msg *rep, struct wr *out)
{
	const uint32_t vol = req->fid.vol;
	struct reint_mark *old = NULL, *mark = NULL;
	struct cml_rec *rec = NULL;
	struct volrec vr;
	struct rd r;
	bool stop = false, wrote = false;
	size_t n;
	int ret;

	wr_reset(out);
	if (req->mflags != 0) {
		ret = -EINVAL;
		goto out;
	}
	ret = meta_volume_get(t, vol, &vr);
	if (ret < 0) {
		ret = ret == -ENOENT ? -ESTALE : ret;
		goto out;
	}
	ret = cml_batch_check(req->data, req->data_len, vol, CML_BATCH_MAX, &n);
	if (ret < 0)
		goto out;

	rec = xmalloc(sizeof(*rec));
	old = xmalloc(sizeof(*old));
	mark = xmalloc(sizeof(*mark));
	rd_init(&r, req->data, req->data_len);
	if (cml_batch_next(&r, rec) != 1) {
		ret = -EPROTO; /* cml_batch_check read it */
		goto out;
	}
	ret = reint_mark_get(t, vol, rec->sid.client, old);
	if (ret < 0 && ret != -ENOENT)
		goto out;
	/* Keep the conflicts a re-sent batch may ask about again: the client
	 * sends its log in order, so nothing below this batch comes back. */
	mark->hw = old->hw;
	mark->n = 0;
	for (uint32_t i = 0; i < old->n; i++)
		if (old->conf[i].seq >= rec->sid.seq)
			mark_push(mark, old->conf[i].seq, old->conf[i].status);

	for (size_t i = 0; i < n; i++) {
		uint32_t st;

		if (i > 0 && cml_batch_next(&r, rec) != 1) {
			ret = -EPROTO; /* cml_batch_check read it */
			goto out;
		}
		if (rec->sid.seq <= old->hw) {
			st = mark_status(old, rec->sid.seq);
		} else if (stop) {
			st = ST_AGAIN; /* not looked at: send it again */
		} else {
			st = reint_one(o, t, oc, req, rec);
			if (status_retry(st)) {
				stop = true;
			} else {
				mark->hw = rec->sid.seq;
				if (st != CML_ST_APPLIED && st != CML_ST_ALREADY)
					mark_push(mark, rec->sid.seq, st);
			}
		}
		if (st != CML_ST_APPLIED && st != ST_AGAIN && !status_retry(st))
			drop_upload(o, oc, req, rec);
		if (st != CML_ST_APPLIED && st != CML_ST_ALREADY)
			log_info("reint", "vol %u %s seq %llu: status %u", vol,
				 cml_op_name(rec->op), (unsigned long long)rec->sid.seq, st);
		wr_u32(out, st);
	}
	if (mark->hw != old->hw || mark->n != old->n) {
		/* A failure here leaves the applied records in the batch: a
		 * re-sent batch finds them by their StoreIds. */
		ret = reint_mark_put(t, vol, rec->sid.client, mark);
		if (ret < 0)
			goto out;
		wrote = true;
	}
	ret = meta_volume_get(t, vol, &vr);
	if (ret < 0)
		goto out;
	rep->stamp = vr.stamp;
	rep->data = out->buf;
	rep->data_len = (uint32_t)out->len;

out:
	rep->status = ret;
	if (ret < 0) {
		rep->data = NULL;
		rep->data_len = 0;
	}
	free(rec);
	free(old);
	free(mark);
	return wrote;
}
