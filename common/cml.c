/*
 * cml.c - codec of client modification log records.
 * Owns:    nothing; decoders fill caller structs, encoders append to a wr.
 * Format:  docs/protocol.md "CML records (REINTEGRATE)".
 *
 * Common head: u8 op, u32 flags, storeid. Then the op's fields, in the
 * order of the table in docs/protocol.md. Fields an op does not carry are
 * not on the wire and decode as zero.
 */
#include "common/cml.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/msg.h"
#include "common/xalloc.h"

#define NSEC_PER_SEC 1000000000u
#define SA_ALL                                                                                     \
	(SA_MODE | SA_UID | SA_GID | SA_SIZE | SA_ATIME | SA_MTIME | SA_ATIME_NOW | SA_MTIME_NOW | \
	 SA_CTIME)

const char *cml_op_name(uint8_t op)
{
	switch (op) {
	case CML_CREATE:
		return "create";
	case CML_REMOVE:
		return "remove";
	case CML_RENAME:
		return "rename";
	case CML_LINK:
		return "link";
	case CML_SETATTR:
		return "setattr";
	case CML_STORE:
		return "store";
	default:
		return "unknown";
	}
}

static uint32_t op_flags(uint8_t op)
{
	switch (op) {
	case CML_REMOVE:
		return REMOVE_DIR;
	case CML_RENAME:
		return RENAME_F_NOREPLACE | RENAME_F_EXCHANGE;
	default:
		return 0;
	}
}

static bool oid_zero(const uint8_t *oid)
{
	static const uint8_t zero[OID_LEN];
	return memcmp(oid, zero, OID_LEN) == 0;
}

static bool time_ok(const struct wtime *t)
{
	return t->nsec < NSEC_PER_SEC;
}

static bool mode_ok(uint32_t mode)
{
	if ((mode & ~(uint32_t)(S_IFMT | 07777)) != 0)
		return false;
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		return true;
	default:
		return false;
	}
}

static bool str_ok(const char *s, size_t max)
{
	return strnlen(s, max + 1) <= max;
}

int cml_rec_check(const struct cml_rec *r)
{
	const uint32_t vol = r->fid.vol;

	if ((r->flags & ~op_flags(r->op)) != 0)
		return -EINVAL;
	if (r->sid.client == 0 || r->sid.seq == 0)
		return -EINVAL;
	if (r->ver.vv.n > VV_MAX || r->ver2.vv.n > VV_MAX)
		return -EINVAL;
	switch (r->op) {
	case CML_CREATE:
		if (!mode_ok(r->mode) || !str_ok(r->target, TARGET_MAX_LEN))
			return -EINVAL;
		/* A symlink has a target; nothing else has one. */
		if (((r->mode & S_IFMT) == S_IFLNK) != (r->target[0] != '\0'))
			return -EINVAL;
		if (oid_zero(r->fid.oid))
			return -EINVAL;
		FALLTHROUGH;
	case CML_REMOVE:
	case CML_LINK:
		if (!name_valid(r->name) || r->dir.vol != vol)
			return -EINVAL;
		return 0;
	case CML_RENAME:
		if (!name_valid(r->name) || !name_valid(r->name2))
			return -EINVAL;
		if (r->dir.vol != vol || r->dir2.vol != vol)
			return -EINVAL;
		if (!oid_zero(r->fid2.oid) && r->fid2.vol != vol)
			return -EINVAL;
		return 0;
	case CML_SETATTR:
		if ((r->sattr.valid & ~(uint32_t)SA_ALL) != 0 || !time_ok(&r->sattr.atime) ||
		    !time_ok(&r->sattr.mtime))
			return -EINVAL;
		return 0;
	case CML_STORE:
		if (r->length > CML_STORE_LEN_MAX || !time_ok(&r->mtime))
			return -EINVAL;
		return 0;
	default:
		return -EINVAL;
	}
}

/* ---- encoding ---- */

static void enc_fid(struct wr *w, const struct fid *f)
{
	wr_u32(w, f->vol);
	wr_bytes(w, f->oid, OID_LEN);
}

static void enc_time(struct wr *w, const struct wtime *t)
{
	wr_i64(w, t->sec);
	wr_u32(w, t->nsec);
}

static void enc_ver(struct wr *w, const struct cml_ver *v)
{
	wr_u64(w, v->dv);
	wr_u64(w, v->sid.client);
	wr_u64(w, v->sid.seq);
	wr_u8(w, (uint8_t)v->vv.n);
	for (uint32_t i = 0; i < v->vv.n; i++)
		wr_u32(w, v->vv.slot[i]);
}

int cml_rec_encode(struct wr *w, const struct cml_rec *r)
{
	if (cml_rec_check(r) < 0)
		return -EINVAL;
	wr_u8(w, r->op);
	wr_u32(w, r->flags);
	wr_u64(w, r->sid.client);
	wr_u64(w, r->sid.seq);
	switch (r->op) {
	case CML_CREATE:
		enc_fid(w, &r->dir);
		wr_str(w, r->name);
		enc_fid(w, &r->fid);
		wr_u32(w, r->mode);
		wr_u64(w, r->rdev);
		wr_str(w, r->target);
		break;
	case CML_REMOVE:
		enc_fid(w, &r->dir);
		wr_str(w, r->name);
		enc_fid(w, &r->fid);
		enc_ver(w, &r->ver);
		break;
	case CML_RENAME:
		enc_fid(w, &r->dir);
		wr_str(w, r->name);
		enc_fid(w, &r->dir2);
		wr_str(w, r->name2);
		enc_fid(w, &r->fid);
		enc_fid(w, &r->fid2);
		enc_ver(w, &r->ver2);
		break;
	case CML_LINK:
		enc_fid(w, &r->dir);
		wr_str(w, r->name);
		enc_fid(w, &r->fid);
		break;
	case CML_SETATTR:
		enc_fid(w, &r->fid);
		enc_ver(w, &r->ver);
		wr_u32(w, r->sattr.valid);
		wr_u32(w, r->sattr.mode);
		wr_u32(w, r->sattr.uid);
		wr_u32(w, r->sattr.gid);
		wr_u64(w, r->sattr.size);
		enc_time(w, &r->sattr.atime);
		enc_time(w, &r->sattr.mtime);
		break;
	case CML_STORE:
		enc_fid(w, &r->fid);
		enc_ver(w, &r->ver);
		wr_u64(w, r->handle);
		wr_u64(w, r->length);
		enc_time(w, &r->mtime);
		break;
	default:
		return -EINVAL; /* cml_rec_check refused it already */
	}
	return 0;
}

/* ---- decoding ---- */

static void dec_fid(struct rd *r, struct fid *f)
{
	const uint8_t *p;

	f->vol = rd_u32(r);
	p = rd_bytes(r, OID_LEN);
	if (p != NULL)
		memcpy(f->oid, p, OID_LEN);
}

static void dec_time(struct rd *r, struct wtime *t)
{
	t->sec = rd_i64(r);
	t->nsec = rd_u32(r);
}

static void dec_ver(struct rd *r, struct cml_ver *v)
{
	v->dv = rd_u64(r);
	v->sid.client = rd_u64(r);
	v->sid.seq = rd_u64(r);
	v->vv.n = rd_u8(r);
	if (v->vv.n > VV_MAX) {
		v->vv.n = 0;
		rd_fail(r);
		return;
	}
	for (uint32_t i = 0; i < v->vv.n; i++)
		v->vv.slot[i] = rd_u32(r);
}

int cml_rec_decode(struct rd *r, struct cml_rec *out)
{
	memset(out, 0, sizeof(*out));
	out->op = rd_u8(r);
	out->flags = rd_u32(r);
	out->sid.client = rd_u64(r);
	out->sid.seq = rd_u64(r);
	switch (out->op) {
	case CML_CREATE:
		dec_fid(r, &out->dir);
		rd_str(r, out->name, NAME_MAX_LEN);
		dec_fid(r, &out->fid);
		out->mode = rd_u32(r);
		out->rdev = rd_u64(r);
		rd_str(r, out->target, TARGET_MAX_LEN);
		break;
	case CML_REMOVE:
		dec_fid(r, &out->dir);
		rd_str(r, out->name, NAME_MAX_LEN);
		dec_fid(r, &out->fid);
		dec_ver(r, &out->ver);
		break;
	case CML_RENAME:
		dec_fid(r, &out->dir);
		rd_str(r, out->name, NAME_MAX_LEN);
		dec_fid(r, &out->dir2);
		rd_str(r, out->name2, NAME_MAX_LEN);
		dec_fid(r, &out->fid);
		dec_fid(r, &out->fid2);
		dec_ver(r, &out->ver2);
		break;
	case CML_LINK:
		dec_fid(r, &out->dir);
		rd_str(r, out->name, NAME_MAX_LEN);
		dec_fid(r, &out->fid);
		break;
	case CML_SETATTR:
		dec_fid(r, &out->fid);
		dec_ver(r, &out->ver);
		out->sattr.valid = rd_u32(r);
		out->sattr.mode = rd_u32(r);
		out->sattr.uid = rd_u32(r);
		out->sattr.gid = rd_u32(r);
		out->sattr.size = rd_u64(r);
		dec_time(r, &out->sattr.atime);
		dec_time(r, &out->sattr.mtime);
		break;
	case CML_STORE:
		dec_fid(r, &out->fid);
		dec_ver(r, &out->ver);
		out->handle = rd_u64(r);
		out->length = rd_u64(r);
		dec_time(r, &out->mtime);
		break;
	default:
		rd_fail(r);
		break;
	}
	if (r->err == 0 && cml_rec_check(out) < 0)
		rd_fail(r);
	return r->err != 0 ? -EPROTO : 0;
}

int cml_batch_next(struct rd *r, struct cml_rec *out)
{
	if (r->err != 0)
		return -EPROTO;
	if (rd_left(r) == 0)
		return 0;
	return cml_rec_decode(r, out) < 0 ? -EPROTO : 1;
}

int cml_batch_check(const uint8_t *buf, size_t len, uint32_t vol, size_t max, size_t *n)
{
	struct cml_rec rec;
	struct rd r;
	uint64_t client = 0, last = 0;
	size_t count = 0;
	int ret;

	*n = 0;
	rd_init(&r, buf, len);
	while ((ret = cml_batch_next(&r, &rec)) == 1) {
		if (count == max)
			return -EINVAL;
		if (count == 0)
			client = rec.sid.client;
		else if (rec.sid.client != client || rec.sid.seq <= last)
			return -EINVAL;
		/* cml_rec_check made every fid of the record agree with fid.vol. */
		if (rec.fid.vol != vol)
			return -EINVAL;
		last = rec.sid.seq;
		count++;
	}
	if (ret < 0)
		return ret;
	if (count == 0)
		return -EINVAL;
	*n = count;
	return 0;
}

/* ---- COP2_BATCH lists ---- */

void cml_cop2_encode(struct wr *w, const struct cml_cop2 *e)
{
	ASSERT(e->sid.client != 0 && e->sid.seq != 0);
	ASSERT(e->mask != 0 && e->mask < (1u << VV_MAX));
	wr_u64(w, e->sid.client);
	wr_u64(w, e->sid.seq);
	wr_u32(w, e->mask);
}

int cml_cop2_next(struct rd *r, struct cml_cop2 *out)
{
	memset(out, 0, sizeof(*out));
	if (r->err != 0)
		return -EPROTO;
	if (rd_left(r) == 0)
		return 0;
	out->sid.client = rd_u64(r);
	out->sid.seq = rd_u64(r);
	out->mask = rd_u32(r);
	if (r->err != 0 || out->sid.client == 0 || out->sid.seq == 0 || out->mask == 0 ||
	    out->mask >= (1u << VV_MAX)) {
		rd_fail(r);
		memset(out, 0, sizeof(*out));
		return -EPROTO;
	}
	return 1;
}

int cml_cop2_check(const uint8_t *buf, size_t len, size_t max, size_t *n)
{
	struct cml_cop2 e;
	struct rd r;
	size_t count = 0;
	int ret;

	*n = 0;
	rd_init(&r, buf, len);
	while ((ret = cml_cop2_next(&r, &e)) == 1) {
		if (count == max)
			return -EINVAL;
		count++;
	}
	if (ret < 0)
		return ret;
	if (count == 0)
		return -EINVAL;
	*n = count;
	return 0;
}

/* ---- on-disk form ---- */

int cml_rec_pack(struct wr *w, const struct cml_rec *r)
{
	size_t start = w->len;
	int ret;

	wr_u32(w, CML_DISK_MAGIC);
	wr_u16(w, CML_DISK_VERSION);
	ret = cml_rec_encode(w, r);
	if (ret < 0)
		w->len = start;
	return ret;
}

int cml_rec_unpack(const uint8_t *buf, size_t len, struct cml_rec *out)
{
	struct rd r;
	uint32_t magic;
	uint16_t version;

	rd_init(&r, buf, len);
	magic = rd_u32(&r);
	version = rd_u16(&r);
	if (r.err != 0 || magic != CML_DISK_MAGIC) {
		memset(out, 0, sizeof(*out));
		log_msg(LOG_CRIT, "cml", "CML record with a bad magic (%zu bytes)", len);
		return -EIO;
	}
	if (version != CML_DISK_VERSION) {
		memset(out, 0, sizeof(*out));
		log_msg(LOG_CRIT, "cml", "CML record of unknown version %u", version);
		return -EIO;
	}
	if (cml_rec_decode(&r, out) < 0 || !rd_done(&r)) {
		log_msg(LOG_CRIT, "cml", "malformed CML record (%zu bytes)", len);
		return -EIO;
	}
	return 0;
}
