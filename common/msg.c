/*
 * msg.c - the generic codec of every Encore message, driven by MSG_TABLE.
 * Owns:    nothing; decoded F_DATA borrows the caller's buffer.
 * Format:  docs/protocol.md; proto.h has the bounds.
 *
 * For each bit of a type's field set, in ascending bit order, the field is
 * written or read with its fixed encoding. Every bound is checked here, so
 * the server and client see only values inside proto.h's limits. Names are
 * checked for characters and length only: F_NAME may be empty (READDIR
 * cookie, HELLO hostname); callers use name_valid() where a name is required.
 */
#include "common/msg.h"

#include <errno.h>
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/msgtab.h"
#include "common/xalloc.h"

static_assert(FRAME_HDR_LEN == 4 + 2 + 2 + 4, "frame header layout");
static_assert(sizeof(((struct fid *)0)->oid) == OID_LEN, "oid size");
static_assert(NAME_MAX_LEN <= UINT8_MAX, "dirent name length is a u8");
static_assert(TARGET_MAX_LEN <= UINT16_MAX, "strings have a u16 length");

/* Slack on top of F_DATA's bound for every other field of a MSG_CTL body. */
#define CTL_BODY_MAX (CTL_JSON_MAX + 16384u)
#define NSEC_PER_SEC 1000000000u
#define KNOWN_FLAGS  (FRAME_F_REPLY | FRAME_F_PUSH)

struct msg_desc {
	const char *name;
	uint32_t req;
	uint32_t rep;
	uint32_t states;
};

static const struct msg_desc msg_descs[MSG_TYPE_MAX] = {
#define X(type, name, req, rep, states) [type] = { name, req, rep, states },
	MSG_TABLE(X)
#undef X
};

static const struct msg_desc *desc_of(uint16_t type)
{
	if (type >= MSG_TYPE_MAX || msg_descs[type].name == NULL)
		return NULL;
	return &msg_descs[type];
}

void msg_init(struct msg *m, uint16_t type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
}

void msg_init_reply(struct msg *rep, const struct msg *req, int status)
{
	msg_init(rep, req->type);
	rep->flags = FRAME_F_REPLY;
	rep->reqid = req->reqid;
	rep->status = status;
}

uint32_t msg_fields(uint16_t type, bool reply)
{
	const struct msg_desc *d = desc_of(type);

	if (d == NULL)
		return 0;
	return reply ? d->rep : d->req;
}

uint32_t msg_states(uint16_t type)
{
	const struct msg_desc *d = desc_of(type);

	return d == NULL ? 0 : d->states;
}

const char *msg_name(uint16_t type)
{
	const struct msg_desc *d = desc_of(type);

	return d == NULL ? "unknown" : d->name;
}

static size_t body_max(uint16_t type)
{
	return type == MSG_CTL ? CTL_BODY_MAX : FRAME_BODY_MAX;
}

static uint32_t data_max(uint16_t type)
{
	return type == MSG_CTL ? CTL_JSON_MAX : CHUNK_MAX;
}

bool name_valid(const char *name)
{
	size_t n = strnlen(name, NAME_MAX_LEN + 1);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return memchr(name, '/', n) == NULL;
}

/* ---- encoding ---- */

static void enc_fid(struct wr *w, const struct fid *f)
{
	wr_u32(w, f->vol);
	wr_bytes(w, f->oid, OID_LEN);
}

static int enc_time(struct wr *w, const struct wtime *t)
{
	if (t->nsec >= NSEC_PER_SEC)
		return -EINVAL;
	wr_i64(w, t->sec);
	wr_u32(w, t->nsec);
	return 0;
}

static int enc_vv(struct wr *w, const struct vv *v)
{
	if (v->n > VV_MAX)
		return -EINVAL;
	wr_u8(w, (uint8_t)v->n);
	for (uint32_t i = 0; i < v->n; i++)
		wr_u32(w, v->slot[i]);
	return 0;
}

static void enc_storeid(struct wr *w, const struct storeid *s)
{
	wr_u64(w, s->client);
	wr_u64(w, s->seq);
}

static int enc_attr(struct wr *w, const struct attr *a)
{
	int ret = 0;

	enc_fid(w, &a->fid);
	wr_u32(w, a->mode);
	wr_u32(w, a->nlink);
	wr_u32(w, a->uid);
	wr_u32(w, a->gid);
	wr_u64(w, a->rdev);
	wr_u64(w, a->size);
	wr_u64(w, a->blocks);
	ret |= enc_time(w, &a->atime);
	ret |= enc_time(w, &a->mtime);
	ret |= enc_time(w, &a->ctime);
	wr_u64(w, a->data_version);
	ret |= enc_vv(w, &a->vv);
	enc_storeid(w, &a->sid);
	wr_u32(w, a->flags);
	return ret == 0 ? 0 : -EINVAL;
}

/* Writes a u16-length string of at most max bytes; names may not hold '/'. */
static int enc_str(struct wr *w, const char *s, size_t max, bool is_name)
{
	size_t n = strnlen(s, max + 1);

	if (n > max || (is_name && memchr(s, '/', n) != NULL))
		return -EINVAL;
	wr_u16(w, (uint16_t)n);
	wr_bytes(w, s, n);
	return 0;
}

static int enc_field(struct wr *w, const struct msg *m, uint32_t f)
{
	switch (f) {
	case F_VERSION:
		wr_u32(w, m->version);
		return 0;
	case F_CLIENT_ID:
		wr_u64(w, m->client_id);
		return 0;
	case F_SERVER_ID:
		wr_u32(w, m->server_id);
		return 0;
	case F_INCARNATION:
		wr_u64(w, m->incarnation);
		return 0;
	case F_REALM:
		return enc_str(w, m->realm, REALM_MAX_LEN, false);
	case F_CRED:
		if (m->cred.n_groups > GROUPS_MAX)
			return -EINVAL;
		wr_u32(w, m->cred.uid);
		wr_u32(w, m->cred.gid);
		wr_u32(w, m->cred.n_groups);
		for (uint32_t i = 0; i < m->cred.n_groups; i++)
			wr_u32(w, m->cred.groups[i]);
		return 0;
	case F_FID:
		enc_fid(w, &m->fid);
		return 0;
	case F_FID2:
		enc_fid(w, &m->fid2);
		return 0;
	case F_NAME:
		return enc_str(w, m->name, NAME_MAX_LEN, true);
	case F_NAME2:
		return enc_str(w, m->name2, NAME_MAX_LEN, true);
	case F_TARGET:
		return enc_str(w, m->target, TARGET_MAX_LEN, false);
	case F_SATTR: {
		int ret = 0;
		wr_u32(w, m->sattr.valid);
		wr_u32(w, m->sattr.mode);
		wr_u32(w, m->sattr.uid);
		wr_u32(w, m->sattr.gid);
		wr_u64(w, m->sattr.size);
		ret |= enc_time(w, &m->sattr.atime);
		ret |= enc_time(w, &m->sattr.mtime);
		return ret == 0 ? 0 : -EINVAL;
	}
	case F_MODE:
		wr_u32(w, m->mode);
		return 0;
	case F_RDEV:
		wr_u64(w, m->rdev);
		return 0;
	case F_OFFSET:
		wr_u64(w, m->offset);
		return 0;
	case F_LENGTH:
		wr_u64(w, m->length);
		return 0;
	case F_HANDLE:
		wr_u64(w, m->handle);
		return 0;
	case F_EXPECT:
		wr_u64(w, m->expect);
		return 0;
	case F_MFLAGS:
		wr_u32(w, m->mflags);
		return 0;
	case F_ATTR:
		return enc_attr(w, &m->attr);
	case F_ATTR2:
		return enc_attr(w, &m->attr2);
	case F_FSSTAT:
		wr_u32(w, m->fsstat.bsize);
		wr_u64(w, m->fsstat.blocks);
		wr_u64(w, m->fsstat.bfree);
		wr_u64(w, m->fsstat.bavail);
		wr_u64(w, m->fsstat.files);
		wr_u64(w, m->fsstat.ffree);
		wr_u32(w, m->fsstat.namemax);
		return 0;
	case F_DATA:
		if (m->data_len > data_max(m->type) || (m->data_len > 0 && m->data == NULL))
			return -EINVAL;
		wr_blob(w, m->data, m->data_len);
		return 0;
	case F_STOREID:
		enc_storeid(w, &m->sid);
		return 0;
	case F_VSG:
		if (m->vsg.n == 0 || m->vsg.n > VV_MAX)
			return -EINVAL;
		wr_u8(w, (uint8_t)m->vsg.n);
		for (uint32_t i = 0; i < m->vsg.n; i++)
			wr_u32(w, m->vsg.ids[i]);
		return 0;
	case F_STAMP:
		wr_u64(w, m->stamp);
		return 0;
	case F_XVER:
		for (int i = 0; i < 2; i++) {
			enc_storeid(w, &m->xver[i].sid);
			if (enc_vv(w, &m->xver[i].vv) < 0)
				return -EINVAL;
		}
		return 0;
	default:
		return -EINVAL;
	}
}

/* True if F_DATA is the last field of the set: its payload ends the body. */
static bool data_last(uint32_t fields)
{
	return (fields & F_DATA) != 0 && (fields & ~(F_DATA | (F_DATA - 1))) == 0;
}

/* msg_encode, or with head set msg_encode_head: F_DATA's payload is left out
 * of w but counted in the body length. */
static int encode(struct wr *w, const struct msg *m, bool head)
{
	const struct msg_desc *d = desc_of(m->type);
	size_t start = w->len, body_len;
	bool reply = (m->flags & FRAME_F_REPLY) != 0;
	uint32_t fields;
	uint8_t *hdr;
	int ret = 0;

	if (d == NULL || (m->flags & ~KNOWN_FLAGS) != 0 ||
	    m->flags == (FRAME_F_REPLY | FRAME_F_PUSH) || (reply && m->status > 0))
		return -EINVAL;
	fields = reply ? d->rep : d->req;
	if (head && (!data_last(fields) || (reply && m->status != 0)))
		return -EINVAL;
	hdr = wr_reserve(w, FRAME_HDR_LEN);
	le_put_u16(hdr + 4, m->type);
	le_put_u16(hdr + 6, m->flags);
	le_put_u32(hdr + 8, m->reqid);
	if (reply) {
		wr_u32(w, err_to_status(m->status));
		if (m->status != 0)
			fields = 0;
	}
	for (uint32_t f = 1; f != 0 && f <= fields; f <<= 1) {
		if ((fields & f) == 0)
			continue;
		if (head && f == F_DATA) {
			if (m->data_len > data_max(m->type)) {
				ret = -EINVAL;
				goto err_undo;
			}
			wr_u32(w, m->data_len);
			continue;
		}
		ret = enc_field(w, m, f);
		if (ret < 0)
			goto err_undo;
	}
	body_len = w->len - start - FRAME_HDR_LEN + (head ? m->data_len : 0);
	if (body_len > body_max(m->type)) {
		ret = -EMSGSIZE;
		goto err_undo;
	}
	wr_put_u32_at(w, start, (uint32_t)body_len);
	return 0;

err_undo:
	w->len = start;
	return ret;
}

int msg_encode(struct wr *w, const struct msg *m)
{
	return encode(w, m, false);
}

int msg_encode_head(struct wr *w, const struct msg *m)
{
	return encode(w, m, true);
}

/* ---- decoding ---- */

long frame_parse_header(const uint8_t *hdr, uint16_t *type, uint16_t *flags, uint32_t *reqid)
{
	uint32_t len = le_get_u32(hdr);

	*type = le_get_u16(hdr + 4);
	*flags = le_get_u16(hdr + 6);
	*reqid = le_get_u32(hdr + 8);
	if (len > body_max(*type))
		return -EPROTO;
	return (long)len;
}

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
	if (t->nsec >= NSEC_PER_SEC)
		rd_fail(r);
}

static void dec_vv(struct rd *r, struct vv *v)
{
	v->n = rd_u8(r);
	if (v->n > VV_MAX) {
		v->n = 0;
		rd_fail(r);
		return;
	}
	for (uint32_t i = 0; i < v->n; i++)
		v->slot[i] = rd_u32(r);
}

static void dec_storeid(struct rd *r, struct storeid *s)
{
	s->client = rd_u64(r);
	s->seq = rd_u64(r);
}

static void dec_attr(struct rd *r, struct attr *a)
{
	dec_fid(r, &a->fid);
	a->mode = rd_u32(r);
	a->nlink = rd_u32(r);
	a->uid = rd_u32(r);
	a->gid = rd_u32(r);
	a->rdev = rd_u64(r);
	a->size = rd_u64(r);
	a->blocks = rd_u64(r);
	dec_time(r, &a->atime);
	dec_time(r, &a->mtime);
	dec_time(r, &a->ctime);
	a->data_version = rd_u64(r);
	dec_vv(r, &a->vv);
	dec_storeid(r, &a->sid);
	a->flags = rd_u32(r);
}

static void dec_name(struct rd *r, char *out)
{
	rd_str(r, out, NAME_MAX_LEN);
	if (r->err == 0 && strchr(out, '/') != NULL)
		rd_fail(r);
}

static void dec_field(struct rd *r, struct msg *m, uint32_t f)
{
	switch (f) {
	case F_VERSION:
		m->version = rd_u32(r);
		break;
	case F_CLIENT_ID:
		m->client_id = rd_u64(r);
		break;
	case F_SERVER_ID:
		m->server_id = rd_u32(r);
		break;
	case F_INCARNATION:
		m->incarnation = rd_u64(r);
		break;
	case F_REALM:
		rd_str(r, m->realm, REALM_MAX_LEN);
		break;
	case F_CRED:
		m->cred.uid = rd_u32(r);
		m->cred.gid = rd_u32(r);
		m->cred.n_groups = rd_u32(r);
		if (m->cred.n_groups > GROUPS_MAX) {
			m->cred.n_groups = 0;
			rd_fail(r);
			break;
		}
		for (uint32_t i = 0; i < m->cred.n_groups; i++)
			m->cred.groups[i] = rd_u32(r);
		break;
	case F_FID:
		dec_fid(r, &m->fid);
		break;
	case F_FID2:
		dec_fid(r, &m->fid2);
		break;
	case F_NAME:
		dec_name(r, m->name);
		break;
	case F_NAME2:
		dec_name(r, m->name2);
		break;
	case F_TARGET:
		rd_str(r, m->target, TARGET_MAX_LEN);
		break;
	case F_SATTR:
		m->sattr.valid = rd_u32(r);
		m->sattr.mode = rd_u32(r);
		m->sattr.uid = rd_u32(r);
		m->sattr.gid = rd_u32(r);
		m->sattr.size = rd_u64(r);
		dec_time(r, &m->sattr.atime);
		dec_time(r, &m->sattr.mtime);
		break;
	case F_MODE:
		m->mode = rd_u32(r);
		break;
	case F_RDEV:
		m->rdev = rd_u64(r);
		break;
	case F_OFFSET:
		m->offset = rd_u64(r);
		break;
	case F_LENGTH:
		m->length = rd_u64(r);
		break;
	case F_HANDLE:
		m->handle = rd_u64(r);
		break;
	case F_EXPECT:
		m->expect = rd_u64(r);
		break;
	case F_MFLAGS:
		m->mflags = rd_u32(r);
		break;
	case F_ATTR:
		dec_attr(r, &m->attr);
		break;
	case F_ATTR2:
		dec_attr(r, &m->attr2);
		break;
	case F_FSSTAT:
		m->fsstat.bsize = rd_u32(r);
		m->fsstat.blocks = rd_u64(r);
		m->fsstat.bfree = rd_u64(r);
		m->fsstat.bavail = rd_u64(r);
		m->fsstat.files = rd_u64(r);
		m->fsstat.ffree = rd_u64(r);
		m->fsstat.namemax = rd_u32(r);
		break;
	case F_DATA: {
		uint32_t n;
		const uint8_t *p = rd_blob(r, data_max(m->type), &n);
		m->data = n == 0 ? NULL : p;
		m->data_len = p == NULL ? 0 : n;
		break;
	}
	case F_STOREID:
		dec_storeid(r, &m->sid);
		break;
	case F_VSG:
		m->vsg.n = rd_u8(r);
		if (m->vsg.n == 0 || m->vsg.n > VV_MAX) {
			m->vsg.n = 0;
			rd_fail(r);
			break;
		}
		for (uint32_t i = 0; i < m->vsg.n; i++)
			m->vsg.ids[i] = rd_u32(r);
		break;
	case F_STAMP:
		m->stamp = rd_u64(r);
		break;
	case F_XVER:
		for (int i = 0; i < 2; i++) {
			dec_storeid(r, &m->xver[i].sid);
			dec_vv(r, &m->xver[i].vv);
		}
		break;
	default:
		rd_fail(r);
		break;
	}
}

int msg_decode(struct msg *m, uint16_t type, uint16_t flags, uint32_t reqid, const uint8_t *body,
	       size_t len)
{
	const struct msg_desc *d = desc_of(type);
	bool reply = (flags & FRAME_F_REPLY) != 0;
	uint32_t fields;
	struct rd r;

	msg_init(m, type);
	m->flags = flags;
	m->reqid = reqid;
	if (d == NULL || (flags & ~KNOWN_FLAGS) != 0 || flags == (FRAME_F_REPLY | FRAME_F_PUSH) ||
	    len > body_max(type))
		return -EPROTO;
	fields = reply ? d->rep : d->req;
	rd_init(&r, body, len);
	if (reply) {
		uint32_t st = rd_u32(&r);
		if (r.err != 0)
			return -EPROTO;
		m->status = status_to_err(st);
		/* Only statuses we know round-trip; anything else is garbage. */
		if (err_to_status(m->status) != st)
			return -EPROTO;
		if (st != ST_OK)
			fields = 0;
	}
	for (uint32_t f = 1; f != 0 && f <= fields && r.err == 0; f <<= 1) {
		if ((fields & f) != 0)
			dec_field(&r, m, f);
	}
	if (!rd_done(&r))
		return -EPROTO;
	return 0;
}

int msg_decode_head(struct msg *m, uint16_t type, uint16_t flags, uint32_t reqid,
		    const uint8_t *head, size_t head_len, size_t body_len, size_t *data_off)
{
	const struct msg_desc *d = desc_of(type);
	bool reply = (flags & FRAME_F_REPLY) != 0;
	uint32_t fields, n;
	struct rd r;

	*data_off = body_len;
	if (head_len > body_len)
		return -EPROTO;
	fields = d == NULL ? 0 : reply ? d->rep : d->req;
	if (head_len == body_len || !data_last(fields)) {
		int ret = msg_decode(m, type, flags, reqid, head, head_len);
		if (ret == 0 && data_last(fields) && m->status == 0) {
			*data_off = body_len - m->data_len;
			m->data = NULL;
		}
		return ret;
	}
	if (d == NULL || (flags & ~KNOWN_FLAGS) != 0 || flags == (FRAME_F_REPLY | FRAME_F_PUSH) ||
	    body_len > body_max(type))
		return -EPROTO;
	msg_init(m, type);
	m->flags = flags;
	m->reqid = reqid;
	rd_init(&r, head, head_len);
	if (reply) {
		uint32_t st = rd_u32(&r);
		/* A status other than ST_OK ends the body: it was not all given. */
		if (r.err != 0 || st != ST_OK)
			return -EPROTO;
	}
	for (uint32_t f = 1; f < F_DATA && r.err == 0; f <<= 1) {
		if ((fields & f) != 0)
			dec_field(&r, m, f);
	}
	n = rd_u32(&r);
	if (r.err != 0 || n > data_max(type) || body_len - r.pos != n)
		return -EPROTO;
	m->data = NULL;
	m->data_len = n;
	*data_off = r.pos;
	return 0;
}

int msg_decode_frame(struct msg *m, const uint8_t *buf, size_t len)
{
	uint16_t type, flags;
	uint32_t reqid;
	long body_len;

	if (len < FRAME_HDR_LEN) {
		msg_init(m, 0);
		return -EPROTO;
	}
	body_len = frame_parse_header(buf, &type, &flags, &reqid);
	if (body_len < 0 || (size_t)body_len != len - FRAME_HDR_LEN) {
		msg_init(m, type);
		return -EPROTO;
	}
	return msg_decode(m, type, flags, reqid, buf + FRAME_HDR_LEN, (size_t)body_len);
}

/* ---- dirents ---- */

void dirent_encode(struct wr *w, const struct dirent_w *d)
{
	size_t n = strnlen(d->name, NAME_MAX_LEN + 1);

	ASSERT(n >= 1 && n <= NAME_MAX_LEN);
	wr_u8(w, (uint8_t)n);
	wr_bytes(w, d->name, n);
	enc_fid(w, &d->fid);
	wr_u32(w, d->mode);
}

int dirent_decode(struct rd *r, struct dirent_w *d)
{
	const uint8_t *p;
	uint8_t n;

	if (r->err != 0)
		return -EPROTO;
	if (rd_left(r) == 0)
		return 0;
	n = rd_u8(r);
	p = rd_bytes(r, n);
	if (p == NULL || n == 0 || memchr(p, '\0', n) != NULL || memchr(p, '/', n) != NULL)
		goto err;
	memcpy(d->name, p, n);
	d->name[n] = '\0';
	if (!name_valid(d->name))
		goto err;
	dec_fid(r, &d->fid);
	d->mode = rd_u32(r);
	if (r->err != 0)
		goto err;
	return 1;

err:
	rd_fail(r);
	d->name[0] = '\0';
	return -EPROTO;
}

/* ---- tracing ---- */

struct fmtbuf {
	char *p;
	size_t len;
	size_t pos;
};

static void fb_add(struct fmtbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fb_add(struct fmtbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->pos >= b->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->pos, b->len - b->pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	b->pos = (size_t)n >= b->len - b->pos ? b->len : b->pos + (size_t)n;
}

/* Strings are untrusted: print a bounded sample without control characters. */
static void fb_str(struct fmtbuf *b, const char *key, const char *s)
{
	char sample[LOG_SAMPLE_LEN];

	log_sample(sample, s, strlen(s));
	fb_add(b, " %s='%s'", key, sample);
}

static void fb_fid(struct fmtbuf *b, const char *key, const struct fid *f)
{
	char s[FID_STR_LEN];

	fid_fmt(f, s);
	fb_add(b, " %s=%s", key, s);
}

static void fb_attr(struct fmtbuf *b, const char *key, const struct attr *a)
{
	char s[FID_STR_LEN];

	fid_fmt(&a->fid, s);
	fb_add(b,
	       " %s={%s mode=%o nlink=%" PRIu32 " uid=%" PRIu32 " gid=%" PRIu32 " size=%" PRIu64
	       " dv=%" PRIu64 " flags=%#" PRIx32 "}",
	       key, s, (unsigned)a->mode, a->nlink, a->uid, a->gid, a->size, a->data_version,
	       a->flags);
}

void msg_fmt(const struct msg *m, char *out, size_t len)
{
	struct fmtbuf b = { .p = out, .len = len, .pos = 0 };
	bool reply = (m->flags & FRAME_F_REPLY) != 0;
	uint32_t fields = msg_fields(m->type, reply);

	if (len == 0)
		return;
	out[0] = '\0';
	fb_add(&b, "%s%s %s#%" PRIu32, reply ? "R" : "T", (m->flags & FRAME_F_PUSH) ? "push" : "",
	       msg_name(m->type), m->reqid);
	if (reply) {
		fb_add(&b, " status=%s", m->status == 0 ? "ok" : err_str(m->status));
		if (m->status != 0)
			return;
	}
	if (fields & F_VERSION)
		fb_add(&b, " version=%" PRIu32, m->version);
	if (fields & F_CLIENT_ID)
		fb_add(&b, " client=%016" PRIx64, m->client_id);
	if (fields & F_SERVER_ID)
		fb_add(&b, " server=%" PRIu32, m->server_id);
	if (fields & F_INCARNATION)
		fb_add(&b, " incarnation=%" PRIu64, m->incarnation);
	if (fields & F_REALM)
		fb_str(&b, "realm", m->realm);
	if (fields & F_CRED)
		fb_add(&b, " cred=%" PRIu32 ":%" PRIu32 "+%" PRIu32, m->cred.uid, m->cred.gid,
		       m->cred.n_groups);
	if (fields & F_FID)
		fb_fid(&b, "fid", &m->fid);
	if (fields & F_FID2)
		fb_fid(&b, "fid2", &m->fid2);
	if (fields & F_NAME)
		fb_str(&b, "name", m->name);
	if (fields & F_NAME2)
		fb_str(&b, "name2", m->name2);
	if (fields & F_TARGET)
		fb_str(&b, "target", m->target);
	if (fields & F_SATTR)
		fb_add(&b,
		       " sattr={valid=%#" PRIx32 " mode=%o uid=%" PRIu32 " gid=%" PRIu32
		       " size=%" PRIu64 "}",
		       m->sattr.valid, (unsigned)m->sattr.mode, m->sattr.uid, m->sattr.gid,
		       m->sattr.size);
	if (fields & F_MODE)
		fb_add(&b, " mode=%o", (unsigned)m->mode);
	if (fields & F_RDEV)
		fb_add(&b, " rdev=%" PRIu64, m->rdev);
	if (fields & F_OFFSET)
		fb_add(&b, " offset=%" PRIu64, m->offset);
	if (fields & F_LENGTH)
		fb_add(&b, " length=%" PRIu64, m->length);
	if (fields & F_HANDLE)
		fb_add(&b, " handle=%" PRIu64, m->handle);
	if (fields & F_EXPECT)
		fb_add(&b, " expect=%" PRIu64, m->expect);
	if (fields & F_MFLAGS)
		fb_add(&b, " mflags=%#" PRIx32, m->mflags);
	if (fields & F_ATTR)
		fb_attr(&b, "attr", &m->attr);
	if (fields & F_ATTR2)
		fb_attr(&b, "attr2", &m->attr2);
	if (fields & F_FSSTAT)
		fb_add(&b, " fsstat={bsize=%" PRIu32 " blocks=%" PRIu64 " bfree=%" PRIu64 "}",
		       m->fsstat.bsize, m->fsstat.blocks, m->fsstat.bfree);
	if (fields & F_DATA)
		fb_add(&b, " data=%" PRIu32 "B", m->data_len);
	if (fields & F_STOREID)
		fb_add(&b, " sid=%016" PRIx64 ":%" PRIu64, m->sid.client, m->sid.seq);
	if (fields & F_VSG) {
		fb_add(&b, " vsg=");
		for (uint32_t i = 0; i < m->vsg.n && i < VV_MAX; i++)
			fb_add(&b, "%s%" PRIu32, i ? "," : "", m->vsg.ids[i]);
	}
	if (fields & F_STAMP)
		fb_add(&b, " stamp=%" PRIu64, m->stamp);
	if (fields & F_XVER)
		fb_add(&b, " xver=%016" PRIx64 ":%" PRIu64 ",%016" PRIx64 ":%" PRIu64,
		       m->xver[0].sid.client, m->xver[0].sid.seq, m->xver[1].sid.client,
		       m->xver[1].sid.seq);
}
