/*
 * test_msg.c - unit tests of common/msg.c: round trip of every message type
 * (request and reply), every truncation point, oversized fields, bad values,
 * trailing bytes, statuses, dirents, msg_fmt. Seeds the fuzz_msg and
 * fuzz_dirent corpora when run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/msg.h"
#include "common/msgtab.h"

static const uint16_t all_types[] = {
#define X(type, name, req, rep, states) type,
	MSG_TABLE(X)
#undef X
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

static uint8_t payload[64];

static void fill_attr(struct attr *a, uint32_t base)
{
	a->fid.vol = base + 1;
	for (int i = 0; i < OID_LEN; i++)
		a->fid.oid[i] = (uint8_t)(base + i);
	a->mode = 0100644;
	a->nlink = base + 2;
	a->uid = base + 3;
	a->gid = base + 4;
	a->rdev = base + 5;
	a->size = 0x123456789aull + base;
	a->blocks = base + 6;
	a->atime = (struct wtime){ .sec = -5, .nsec = 999999999 };
	a->mtime = (struct wtime){ .sec = 1700000000 + base, .nsec = 7 };
	a->ctime = (struct wtime){ .sec = INT64_MAX, .nsec = 0 };
	a->data_version = base + 7;
	a->vv.n = 3;
	a->vv.slot[0] = 1;
	a->vv.slot[1] = base;
	a->vv.slot[2] = 3;
	a->sid = (struct storeid){ .client = 0xfeedull + base, .seq = base + 8 };
	a->flags = ATTR_F_CONFLICT;
}

/* Fills every field of m with distinct, non-zero values. */
static void fill_msg(struct msg *m, uint16_t type, bool reply)
{
	msg_init(m, type);
	m->flags = reply ? FRAME_F_REPLY : 0;
	m->reqid = 0xabcd0000u + type;
	m->version = PROTO_VERSION;
	m->client_id = 0x1122334455667788ull;
	m->server_id = 3;
	m->incarnation = 42;
	snprintf(m->realm, sizeof(m->realm), "example.org");
	m->cred.uid = 1000;
	m->cred.gid = 100;
	m->cred.n_groups = 3;
	m->cred.groups[0] = 10;
	m->cred.groups[1] = 20;
	m->cred.groups[2] = 30;
	m->fid.vol = 1;
	memset(m->fid.oid, 0xaa, OID_LEN);
	m->fid2.vol = 2;
	memset(m->fid2.oid, 0x55, OID_LEN);
	snprintf(m->name, sizeof(m->name), "file.txt");
	snprintf(m->name2, sizeof(m->name2), "other name");
	snprintf(m->target, sizeof(m->target), "../some/where");
	m->sattr = (struct sattr){ .valid = SA_MODE | SA_SIZE | SA_MTIME,
				   .mode = 0600,
				   .uid = 5,
				   .gid = 6,
				   .size = 77,
				   .atime = { 1, 2 },
				   .mtime = { 3, 4 } };
	m->mode = 040755;
	m->rdev = 0x0801;
	m->offset = 4096;
	m->length = 8192;
	m->handle = 99;
	m->expect = 12;
	m->mflags = STORE_FIRST | STORE_LAST;
	fill_attr(&m->attr, 10);
	fill_attr(&m->attr2, 20);
	m->fsstat = (struct fsstat){ 4096, 1000, 500, 400, 300, 200, 255 };
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	m->data = payload;
	m->data_len = sizeof(payload);
	m->sid = (struct storeid){ .client = 0x1122334455667788ull, .seq = 17 };
	m->vsg = (struct vsg){ .n = 3, .ids = { 1, 2, 7 } };
	m->stamp = 0x0102030405060708ull;
}

static void assert_attr_eq(const struct attr *a, const struct attr *b)
{
	assert_int_equal(a->fid.vol, b->fid.vol);
	assert_memory_equal(a->fid.oid, b->fid.oid, OID_LEN);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->nlink, b->nlink);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->rdev, b->rdev);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->blocks, b->blocks);
	assert_int_equal(a->atime.sec, b->atime.sec);
	assert_int_equal(a->atime.nsec, b->atime.nsec);
	assert_int_equal(a->mtime.sec, b->mtime.sec);
	assert_int_equal(a->mtime.nsec, b->mtime.nsec);
	assert_int_equal(a->ctime.sec, b->ctime.sec);
	assert_int_equal(a->ctime.nsec, b->ctime.nsec);
	assert_int_equal(a->data_version, b->data_version);
	assert_int_equal(a->vv.n, b->vv.n);
	assert_memory_equal(a->vv.slot, b->vv.slot, a->vv.n * sizeof(uint32_t));
	assert_int_equal(a->sid.client, b->sid.client);
	assert_int_equal(a->sid.seq, b->sid.seq);
	assert_int_equal(a->flags, b->flags);
}

/* Asserts that every field in the set equals, and every other field of d is zero. */
static void assert_fields_eq(const struct msg *a, const struct msg *d, uint32_t fields)
{
	struct msg zero;

	msg_init(&zero, d->type);
	assert_int_equal(a->type, d->type);
	assert_int_equal(a->flags, d->flags);
	assert_int_equal(a->reqid, d->reqid);
	assert_int_equal(a->status, d->status);
#define CHK(bit, expr_a, expr_z)             \
	do {                                 \
		if (fields & (bit))          \
			assert_true(expr_a); \
		else                         \
			assert_true(expr_z); \
	} while (0)
	CHK(F_VERSION, a->version == d->version, d->version == 0);
	CHK(F_CLIENT_ID, a->client_id == d->client_id, d->client_id == 0);
	CHK(F_SERVER_ID, a->server_id == d->server_id, d->server_id == 0);
	CHK(F_INCARNATION, a->incarnation == d->incarnation, d->incarnation == 0);
	CHK(F_REALM, strcmp(a->realm, d->realm) == 0, d->realm[0] == '\0');
	CHK(F_CRED,
	    a->cred.uid == d->cred.uid && a->cred.gid == d->cred.gid &&
		    a->cred.n_groups == d->cred.n_groups &&
		    memcmp(a->cred.groups, d->cred.groups, sizeof(a->cred.groups)) == 0,
	    d->cred.n_groups == 0 && d->cred.uid == 0);
	CHK(F_FID, memcmp(&a->fid, &d->fid, sizeof(a->fid)) == 0,
	    memcmp(&zero.fid, &d->fid, sizeof(d->fid)) == 0);
	CHK(F_FID2, memcmp(&a->fid2, &d->fid2, sizeof(a->fid2)) == 0,
	    memcmp(&zero.fid2, &d->fid2, sizeof(d->fid2)) == 0);
	CHK(F_NAME, strcmp(a->name, d->name) == 0, d->name[0] == '\0');
	CHK(F_NAME2, strcmp(a->name2, d->name2) == 0, d->name2[0] == '\0');
	CHK(F_TARGET, strcmp(a->target, d->target) == 0, d->target[0] == '\0');
	CHK(F_SATTR, memcmp(&a->sattr, &d->sattr, sizeof(a->sattr)) == 0, d->sattr.valid == 0);
	CHK(F_MODE, a->mode == d->mode, d->mode == 0);
	CHK(F_RDEV, a->rdev == d->rdev, d->rdev == 0);
	CHK(F_OFFSET, a->offset == d->offset, d->offset == 0);
	CHK(F_LENGTH, a->length == d->length, d->length == 0);
	CHK(F_HANDLE, a->handle == d->handle, d->handle == 0);
	CHK(F_EXPECT, a->expect == d->expect, d->expect == 0);
	CHK(F_MFLAGS, a->mflags == d->mflags, d->mflags == 0);
	CHK(F_FSSTAT, memcmp(&a->fsstat, &d->fsstat, sizeof(a->fsstat)) == 0, d->fsstat.bsize == 0);
	CHK(F_DATA, a->data_len == d->data_len && memcmp(a->data, d->data, a->data_len) == 0,
	    d->data_len == 0 && d->data == NULL);
	CHK(F_VSG, a->vsg.n == d->vsg.n && memcmp(a->vsg.ids, d->vsg.ids, a->vsg.n * 4) == 0,
	    d->vsg.n == 0);
	CHK(F_STAMP, a->stamp == d->stamp, d->stamp == 0);
	CHK(F_STOREID, a->sid.client == d->sid.client && a->sid.seq == d->sid.seq,
	    d->sid.client == 0);
#undef CHK
	if (fields & F_ATTR)
		assert_attr_eq(&a->attr, &d->attr);
	else
		assert_int_equal(d->attr.fid.vol, 0);
	if (fields & F_ATTR2)
		assert_attr_eq(&a->attr2, &d->attr2);
	else
		assert_int_equal(d->attr2.fid.vol, 0);
}

static void encode_ok(struct wr *w, const struct msg *m)
{
	wr_reset(w);
	assert_int_equal(msg_encode(w, m), 0);
	assert_true(w->len >= FRAME_HDR_LEN);
}

static void set_body_len(uint8_t *frame, uint32_t n)
{
	le_put_u32(frame, n);
}

static void write_seed(const char *dir, const char *name, const void *p, size_t len)
{
	char path[512];
	FILE *f;
	struct stat st;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_roundtrip_all(void **state)
{
	(void)state;
	struct wr w;
	struct msg m, d;

	wr_init(&w);
	for (size_t i = 0; i < N_TYPES; i++) {
		for (int reply = 0; reply <= 1; reply++) {
			uint16_t t = all_types[i];
			uint32_t fields = msg_fields(t, reply);
			fill_msg(&m, t, reply);
			encode_ok(&w, &m);
			assert_int_equal(le_get_u32(w.buf), w.len - FRAME_HDR_LEN);
			assert_int_equal(le_get_u16(w.buf + 4), t);
			assert_int_equal(le_get_u32(w.buf + 8), m.reqid);
			assert_int_equal(msg_decode_frame(&d, w.buf, w.len), 0);
			assert_fields_eq(&m, &d, fields);
			/* Canonical: re-encoding gives the same bytes. */
			struct wr w2;
			wr_init(&w2);
			encode_ok(&w2, &d);
			assert_int_equal(w2.len, w.len);
			assert_memory_equal(w2.buf, w.buf, w.len);
			wr_release(&w2);

			char seed[64];
			snprintf(seed, sizeof(seed), "%s_%s", msg_name(t), reply ? "rep" : "req");
			write_seed("tests/fuzz/corpus/fuzz_msg", seed, w.buf, w.len);
		}
	}
	wr_release(&w);
}

/* Every truncation of the body (with a header claiming the truncated
 * length, and with the original header) fails with -EPROTO. */
static void test_truncation_all(void **state)
{
	(void)state;
	struct wr w;
	struct msg m, d;

	wr_init(&w);
	for (size_t i = 0; i < N_TYPES; i++) {
		for (int reply = 0; reply <= 1; reply++) {
			fill_msg(&m, all_types[i], reply);
			encode_ok(&w, &m);
			size_t body = w.len - FRAME_HDR_LEN;
			uint8_t *copy = malloc(w.len);
			for (size_t cut = 0; cut < body; cut++) {
				memcpy(copy, w.buf, w.len);
				set_body_len(copy, (uint32_t)cut);
				assert_int_equal(msg_decode_frame(&d, copy, FRAME_HDR_LEN + cut),
						 -EPROTO);
				assert_int_equal(msg_decode(&d, all_types[i], m.flags, 1,
							    w.buf + FRAME_HDR_LEN, cut),
						 -EPROTO);
			}
			for (size_t cut = 0; cut < w.len; cut++)
				assert_int_equal(msg_decode_frame(&d, w.buf, cut), -EPROTO);
			free(copy);
		}
	}
	wr_release(&w);
}

/* msg_encode_head + payload equals msg_encode for every message whose last
 * field is F_DATA; msg_decode_head decodes it from every head length that
 * reaches the payload, and rejects shorter heads, wrong lengths and bodies
 * it must see whole. */
static void test_head_tail(void **state)
{
	(void)state;
	struct wr w, h;
	struct msg m, d;
	size_t off;
	unsigned n_tail = 0;

	wr_init(&w);
	wr_init(&h);
	for (size_t i = 0; i < N_TYPES; i++) {
		for (int reply = 0; reply <= 1; reply++) {
			uint16_t t = all_types[i];
			uint32_t fields = msg_fields(t, reply);
			bool tail = (fields & F_DATA) && (fields & ~(F_DATA | (F_DATA - 1))) == 0;

			fill_msg(&m, t, reply);
			encode_ok(&w, &m);
			size_t body = w.len - FRAME_HDR_LEN;
			const uint8_t *b = w.buf + FRAME_HDR_LEN;
			wr_reset(&h);
			if (!tail) {
				assert_int_equal(msg_encode_head(&h, &m), -EINVAL);
				assert_int_equal(h.len, 0);
				assert_int_equal(msg_decode_head(&d, t, m.flags, m.reqid, b, body,
								 body, &off),
						 0);
				assert_int_equal(off, body);
				if (body > 0)
					assert_int_equal(msg_decode_head(&d, t, m.flags, m.reqid, b,
									 body - 1, body, &off),
							 -EPROTO);
				continue;
			}
			n_tail++;
			m.data = NULL; /* not read */
			assert_int_equal(msg_encode_head(&h, &m), 0);
			assert_int_equal(h.len, w.len - sizeof(payload));
			assert_memory_equal(h.buf, w.buf, h.len);
			size_t doff = h.len - FRAME_HDR_LEN;
			for (size_t hl = 0; hl <= body; hl++) {
				int ret =
					msg_decode_head(&d, t, m.flags, m.reqid, b, hl, body, &off);
				if (hl < doff) {
					assert_int_equal(ret, -EPROTO);
					continue;
				}
				assert_int_equal(ret, 0);
				assert_int_equal(off, doff);
				assert_null(d.data);
				assert_int_equal(d.data_len, sizeof(payload));
				d.data = payload; /* its length was checked above */
				m.data = payload;
				assert_fields_eq(&m, &d, fields);
				m.data = NULL;
			}
			/* The payload must be exactly the rest of the body. */
			assert_int_equal(
				msg_decode_head(&d, t, m.flags, m.reqid, b, doff, body + 1, &off),
				-EPROTO);
			assert_int_equal(
				msg_decode_head(&d, t, m.flags, m.reqid, b, doff, body - 1, &off),
				-EPROTO);
			assert_int_equal(
				msg_decode_head(&d, t, m.flags, m.reqid, b, body, body - 1, &off),
				-EPROTO);
			if (reply) {
				/* An error reply: no payload, whole body only. */
				struct msg e;
				msg_init_reply(&e, &m, -ENOENT);
				encode_ok(&w, &e);
				assert_int_equal(msg_encode_head(&h, &e), -EINVAL);
				assert_int_equal(msg_decode_head(&d, t, e.flags, e.reqid,
								 w.buf + FRAME_HDR_LEN, 4, 4, &off),
						 0);
				assert_int_equal(d.status, -ENOENT);
				assert_int_equal(off, 4);
			}
		}
	}
	assert_true(n_tail >= 3); /* FETCH, READDIR, STATS replies at least */
	/* Oversized payload length. */
	fill_msg(&m, MSG_FETCH, true);
	m.data_len = CHUNK_MAX + 1;
	assert_int_equal(msg_encode_head(&h, &m), -EINVAL);
	wr_release(&h);
	wr_release(&w);
}

static void test_trailing_bytes(void **state)
{
	(void)state;
	struct wr w;
	struct msg m, d;

	wr_init(&w);
	for (size_t i = 0; i < N_TYPES; i++) {
		for (int reply = 0; reply <= 1; reply++) {
			fill_msg(&m, all_types[i], reply);
			encode_ok(&w, &m);
			wr_u8(&w, 0);
			/* Header still says the old length: mismatch. */
			assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
			set_body_len(w.buf, (uint32_t)(w.len - FRAME_HDR_LEN));
			assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
		}
	}
	wr_release(&w);
}

static void test_error_reply_has_no_fields(void **state)
{
	(void)state;
	struct wr w;
	struct msg req, rep, d;

	wr_init(&w);
	fill_msg(&req, MSG_LOOKUP, false);
	req.reqid = 77;
	msg_init_reply(&rep, &req, -ENOENT);
	fill_attr(&rep.attr, 1); /* must not be sent */
	encode_ok(&w, &rep);
	assert_int_equal(w.len, FRAME_HDR_LEN + 4);
	assert_int_equal(le_get_u32(w.buf + FRAME_HDR_LEN), ST_NOENT);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), 0);
	assert_int_equal(d.status, -ENOENT);
	assert_int_equal(d.reqid, 77);
	assert_int_equal(d.type, MSG_LOOKUP);
	assert_int_equal(d.flags, FRAME_F_REPLY);
	assert_int_equal(d.attr.fid.vol, 0);

	/* An error reply followed by fields is malformed. */
	wr_u32(&w, 1);
	set_body_len(w.buf, 8);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);

	/* ERR_* statuses cross the wire too. */
	msg_init_reply(&rep, &req, -ERR_CONFLICT);
	encode_ok(&w, &rep);
	assert_int_equal(le_get_u32(w.buf + FRAME_HDR_LEN), ST_CONFLICT);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), 0);
	assert_int_equal(d.status, -ERR_CONFLICT);

	/* A positive status is a programmer error. */
	rep.status = 5;
	wr_reset(&w);
	assert_int_equal(msg_encode(&w, &rep), -EINVAL);
	assert_int_equal(w.len, 0);
	wr_release(&w);
}

static void test_bad_status(void **state)
{
	(void)state;
	struct wr w;
	struct msg req, rep, d;

	wr_init(&w);
	msg_init(&req, MSG_PING);
	msg_init_reply(&rep, &req, -EIO);
	encode_ok(&w, &rep);
	le_put_u32(w.buf + FRAME_HDR_LEN, 999);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	le_put_u32(w.buf + FRAME_HDR_LEN, ST_PROTO);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), 0);
	assert_int_equal(d.status, -EPROTO);
	/* Reply with no status at all. */
	set_body_len(w.buf, 0);
	assert_int_equal(msg_decode_frame(&d, w.buf, FRAME_HDR_LEN), -EPROTO);
	wr_release(&w);
}

static void test_bad_header(void **state)
{
	(void)state;
	struct wr w;
	struct msg m, d;
	uint16_t type, flags;
	uint32_t reqid;

	wr_init(&w);
	msg_init(&m, MSG_PING);
	m.reqid = 5;
	encode_ok(&w, &m);
	assert_int_equal(frame_parse_header(w.buf, &type, &flags, &reqid), 0);
	assert_int_equal(type, MSG_PING);
	assert_int_equal(reqid, 5);
	/* unknown types */
	le_put_u16(w.buf + 4, 0);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	le_put_u16(w.buf + 4, 18);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	le_put_u16(w.buf + 4, MSG_TYPE_MAX);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	le_put_u16(w.buf + 4, 0xffff);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	le_put_u16(w.buf + 4, MSG_PING);
	/* unknown flags, or reply and push together */
	le_put_u16(w.buf + 6, 1u << 5);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	le_put_u16(w.buf + 6, FRAME_F_REPLY | FRAME_F_PUSH);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	/* body length bounds */
	uint8_t hdr[FRAME_HDR_LEN] = { 0 };
	le_put_u16(hdr + 4, MSG_STORE);
	le_put_u32(hdr, FRAME_BODY_MAX);
	assert_int_equal(frame_parse_header(hdr, &type, &flags, &reqid), FRAME_BODY_MAX);
	le_put_u32(hdr, FRAME_BODY_MAX + 1);
	assert_int_equal(frame_parse_header(hdr, &type, &flags, &reqid), -EPROTO);
	le_put_u32(hdr, 0xffffffffu);
	assert_int_equal(frame_parse_header(hdr, &type, &flags, &reqid), -EPROTO);
	le_put_u16(hdr + 4, MSG_CTL);
	le_put_u32(hdr, CTL_JSON_MAX + 8);
	assert_int_equal(frame_parse_header(hdr, &type, &flags, &reqid), CTL_JSON_MAX + 8);
	wr_release(&w);
}

/* Encodes m, then lets patch() corrupt the body at a known offset. */
static void test_oversized_fields_encode(void **state)
{
	(void)state;
	struct wr w;
	struct msg m;
	static uint8_t big[CHUNK_MAX + 1];

	wr_init(&w);
	fill_msg(&m, MSG_LOOKUP, false);
	memset(m.name, 'a', NAME_MAX_LEN);
	m.name[NAME_MAX_LEN] = '\0';
	assert_int_equal(msg_encode(&w, &m), 0);
	wr_reset(&w);
	m.name[2] = '/';
	assert_int_equal(msg_encode(&w, &m), -EINVAL);
	assert_int_equal(w.len, 0);

	fill_msg(&m, MSG_GETATTR, false);
	m.cred.n_groups = GROUPS_MAX + 1;
	assert_int_equal(msg_encode(&w, &m), -EINVAL);

	fill_msg(&m, MSG_GETATTR, true);
	m.attr.vv.n = VV_MAX + 1;
	assert_int_equal(msg_encode(&w, &m), -EINVAL);
	fill_msg(&m, MSG_GETATTR, true);
	m.attr.mtime.nsec = 1000000000u;
	assert_int_equal(msg_encode(&w, &m), -EINVAL);

	fill_msg(&m, MSG_STORE, false);
	m.data = big;
	m.data_len = CHUNK_MAX;
	assert_int_equal(msg_encode(&w, &m), 0);
	wr_reset(&w);
	m.data_len = CHUNK_MAX + 1;
	assert_int_equal(msg_encode(&w, &m), -EINVAL);

	fill_msg(&m, MSG_CTL, false);
	m.data = big;
	m.data_len = CTL_JSON_MAX;
	assert_int_equal(msg_encode(&w, &m), 0);
	struct msg d;
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), 0);
	assert_int_equal(d.data_len, CTL_JSON_MAX);
	wr_reset(&w);
	m.data_len = CTL_JSON_MAX + 1;
	assert_int_equal(msg_encode(&w, &m), -EINVAL);
	assert_int_equal(w.len, 0);
	wr_release(&w);
}

/* Builds a raw frame for type/flags with the body in b. */
static int decode_raw(uint16_t type, uint16_t flags, struct wr *b, struct msg *d)
{
	return msg_decode(d, type, flags, 1, b->buf, b->len);
}

static void put_cred(struct wr *b, uint32_t n_groups)
{
	wr_u32(b, 1);
	wr_u32(b, 2);
	wr_u32(b, n_groups);
	for (uint32_t i = 0; i < n_groups; i++)
		wr_u32(b, i);
}

static void put_fid(struct wr *b)
{
	wr_u32(b, 1);
	for (int i = 0; i < OID_LEN; i++)
		wr_u8(b, 0);
}

/* F_XVER: two (storeid, vv) pairs, the first with a vector of n slots. */
static void put_xver(struct wr *b, uint32_t n)
{
	for (int i = 0; i < 2; i++) {
		wr_u64(b, 9);
		wr_u64(b, 1);
		wr_u8(b, (uint8_t)(i == 0 ? n : 0));
		for (uint32_t j = 0; i == 0 && j < n; j++)
			wr_u32(b, j + 1);
	}
}

static void test_oversized_fields_decode(void **state)
{
	(void)state;
	struct wr b;
	struct msg d;
	char name[NAME_MAX_LEN + 2];

	wr_init(&b);
	/* LOOKUP: cred fid name */
	put_cred(&b, GROUPS_MAX);
	put_fid(&b);
	wr_str(&b, "ok");
	put_xver(&b, 0);
	assert_int_equal(decode_raw(MSG_LOOKUP, 0, &b, &d), 0);
	assert_int_equal(d.cred.n_groups, GROUPS_MAX);
	assert_int_equal(d.cred.groups[GROUPS_MAX - 1], GROUPS_MAX - 1);
	assert_string_equal(d.name, "ok");

	wr_reset(&b);
	put_cred(&b, GROUPS_MAX + 1);
	put_fid(&b);
	wr_str(&b, "ok");
	put_xver(&b, 0);
	assert_int_equal(decode_raw(MSG_LOOKUP, 0, &b, &d), -EPROTO);

	memset(name, 'x', sizeof(name));
	name[NAME_MAX_LEN] = '\0';
	wr_reset(&b);
	put_cred(&b, 0);
	put_fid(&b);
	wr_str(&b, name);
	put_xver(&b, 0);
	assert_int_equal(decode_raw(MSG_LOOKUP, 0, &b, &d), 0);
	assert_int_equal(strlen(d.name), NAME_MAX_LEN);
	name[NAME_MAX_LEN] = 'x';
	name[NAME_MAX_LEN + 1] = '\0';
	wr_reset(&b);
	put_cred(&b, 0);
	put_fid(&b);
	wr_str(&b, name);
	put_xver(&b, 0);
	assert_int_equal(decode_raw(MSG_LOOKUP, 0, &b, &d), -EPROTO);

	/* F_XVER vectors: VV_MAX slots decode, one more does not. */
	wr_reset(&b);
	put_cred(&b, 0);
	put_fid(&b);
	wr_str(&b, "ok");
	put_xver(&b, VV_MAX);
	assert_int_equal(decode_raw(MSG_LOOKUP, 0, &b, &d), 0);
	assert_int_equal(d.xver[0].vv.n, VV_MAX);
	assert_int_equal(d.xver[0].vv.slot[VV_MAX - 1], VV_MAX);
	assert_int_equal(d.xver[0].sid.client, 9);
	wr_reset(&b);
	put_cred(&b, 0);
	put_fid(&b);
	wr_str(&b, "ok");
	put_xver(&b, VV_MAX + 1);
	assert_int_equal(decode_raw(MSG_LOOKUP, 0, &b, &d), -EPROTO);

	/* '/' and NUL inside names */
	const char bad_slash[] = { 0x03, 0x00, 'a', '/', 'b' };
	const char bad_nul[] = { 0x03, 0x00, 'a', 0, 'b' };
	const char *bads[] = { bad_slash, bad_nul };
	for (int i = 0; i < 2; i++) {
		wr_reset(&b);
		put_cred(&b, 0);
		put_fid(&b);
		wr_bytes(&b, bads[i], 5);
		assert_int_equal(decode_raw(MSG_LOOKUP, 0, &b, &d), -EPROTO);
	}
	/* An empty name is fine for the codec (READDIR cookie). */
	wr_reset(&b);
	put_cred(&b, 0);
	put_fid(&b);
	wr_str(&b, "");
	wr_u64(&b, 100);
	put_xver(&b, 0);
	assert_int_equal(decode_raw(MSG_READDIR, 0, &b, &d), 0);
	assert_string_equal(d.name, "");
	assert_int_equal(d.length, 100);

	/* F_DATA over CHUNK_MAX in a STATS reply (status, data) */
	wr_reset(&b);
	wr_u32(&b, ST_OK);
	wr_u32(&b, CHUNK_MAX + 1);
	assert_int_equal(decode_raw(MSG_STATS, FRAME_F_REPLY, &b, &d), -EPROTO);
	/* data length past the end */
	wr_reset(&b);
	wr_u32(&b, ST_OK);
	wr_u32(&b, 10);
	wr_bytes(&b, "abc", 3);
	assert_int_equal(decode_raw(MSG_STATS, FRAME_F_REPLY, &b, &d), -EPROTO);
	wr_reset(&b);
	wr_u32(&b, ST_OK);
	wr_u32(&b, 3);
	wr_bytes(&b, "abc", 3);
	assert_int_equal(decode_raw(MSG_STATS, FRAME_F_REPLY, &b, &d), 0);
	assert_int_equal(d.data_len, 3);
	assert_memory_equal(d.data, "abc", 3);
	assert_ptr_equal(d.data, b.buf + 8);

	/* GETATTR reply: vv.n and nsec bounds at known offsets */
	struct wr w;
	struct msg m;
	wr_init(&w);
	fill_msg(&m, MSG_GETATTR, true);
	encode_ok(&w, &m);
	/* body: status(4) fid(20) mode nlink uid gid(16) rdev size blocks(24) atime(12)... */
	size_t atime_nsec = FRAME_HDR_LEN + 4 + 20 + 16 + 24 + 8;
	size_t vv_n = FRAME_HDR_LEN + 4 + 20 + 16 + 24 + 36 + 8;
	assert_int_equal(le_get_u32(w.buf + atime_nsec), 999999999);
	assert_int_equal(w.buf[vv_n], 3);
	le_put_u32(w.buf + atime_nsec, 1000000000u);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	le_put_u32(w.buf + atime_nsec, 0);
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), 0);
	w.buf[vv_n] = VV_MAX + 1;
	assert_int_equal(msg_decode_frame(&d, w.buf, w.len), -EPROTO);
	wr_release(&w);

	/* realm and target bounds */
	wr_reset(&b);
	put_cred(&b, 0);
	char realm[REALM_MAX_LEN + 2];
	memset(realm, 'r', sizeof(realm));
	realm[REALM_MAX_LEN + 1] = '\0';
	wr_str(&b, realm);
	assert_int_equal(decode_raw(MSG_GETROOT, 0, &b, &d), -EPROTO);
	wr_reset(&b);
	wr_u32(&b, ST_OK);
	wr_u16(&b, TARGET_MAX_LEN + 1);
	for (int i = 0; i < TARGET_MAX_LEN + 1; i++)
		wr_u8(&b, 't');
	assert_int_equal(decode_raw(MSG_READLINK, FRAME_F_REPLY, &b, &d), -EPROTO);
	wr_release(&b);
}

static void test_names_and_meta(void **state)
{
	(void)state;
	char longname[NAME_MAX_LEN + 2];

	assert_true(name_valid("a"));
	assert_true(name_valid("..."));
	assert_true(name_valid(".hidden"));
	assert_false(name_valid(""));
	assert_false(name_valid("."));
	assert_false(name_valid(".."));
	assert_false(name_valid("a/b"));
	memset(longname, 'n', sizeof(longname));
	longname[NAME_MAX_LEN] = '\0';
	assert_true(name_valid(longname));
	longname[NAME_MAX_LEN] = 'n';
	longname[NAME_MAX_LEN + 1] = '\0';
	assert_false(name_valid(longname));

	assert_string_equal(msg_name(MSG_HELLO), "hello");
	assert_string_equal(msg_name(MSG_CTL), "ctl");
	assert_string_equal(msg_name(0), "unknown");
	assert_string_equal(msg_name(200), "unknown");
	assert_int_equal(msg_fields(MSG_PING, false), 0);
	assert_int_equal(msg_fields(MSG_PING, true), F_SERVER_ID | F_INCARNATION);
	assert_int_equal(msg_fields(99, true), 0);
	assert_int_equal(msg_states(MSG_HELLO), CS_NEW);
	assert_int_equal(msg_states(MSG_PING), CS_NEW | CS_READY);
	assert_int_equal(msg_states(MSG_TYPE_MAX), 0);
}

static void test_status_mapping(void **state)
{
	(void)state;
	for (uint32_t st = 0; st < 200; st++) {
		int e = status_to_err(st);
		if (e == -EPROTO && st != ST_PROTO)
			continue;
		assert_int_equal(err_to_status(e), st);
	}
	assert_int_equal(status_to_err(ST_NOENT), -ENOENT);
	assert_int_equal(status_to_err(12345), -EPROTO);
	assert_int_equal(err_to_status(-EHOSTUNREACH), ST_IO);
	assert_int_equal(err_to_status(-ERR_VERSION), ST_VERSION);
	assert_int_equal(err_to_errno(-ERR_CONFLICT), EIO);
	assert_int_equal(err_to_errno(-ENOENT), ENOENT);
	assert_string_equal(err_str(-ERR_CONFLICT), "object in conflict");
	assert_string_equal(err_str(-ENOENT), "No such file or directory");
	assert_non_null(err_str(-99999));
}

static void test_dirents(void **state)
{
	(void)state;
	struct wr w;
	struct rd r;
	struct dirent_w d = { 0 }, out;

	wr_init(&w);
	for (int i = 0; i < 5; i++) {
		snprintf(d.name, sizeof(d.name), "entry%d", i);
		d.fid.vol = (uint32_t)i;
		memset(d.fid.oid, i, OID_LEN);
		d.mode = 0100600u + (uint32_t)i;
		dirent_encode(&w, &d);
	}
	write_seed("tests/fuzz/corpus/fuzz_dirent", "five_entries", w.buf, w.len);
	rd_init(&r, w.buf, w.len);
	for (int i = 0; i < 5; i++) {
		char want[16];
		snprintf(want, sizeof(want), "entry%d", i);
		assert_int_equal(dirent_decode(&r, &out), 1);
		assert_string_equal(out.name, want);
		assert_int_equal(out.fid.vol, i);
		assert_int_equal(out.fid.oid[OID_LEN - 1], i);
		assert_int_equal(out.mode, 0100600u + (uint32_t)i);
	}
	assert_int_equal(dirent_decode(&r, &out), 0);
	assert_int_equal(dirent_decode(&r, &out), 0);

	/* Truncations of the last entry are errors. */
	for (size_t cut = 1; cut < DIRENT_WIRE_MIN + 5; cut++) {
		rd_init(&r, w.buf, w.len - cut);
		int ret;
		int n = 0;
		while ((ret = dirent_decode(&r, &out)) == 1)
			n++;
		assert_int_equal(n, 4);
		assert_int_equal(ret, -EPROTO);
		assert_int_equal(dirent_decode(&r, &out), -EPROTO);
	}

	/* Bad names: empty, ".", "..", '/', NUL. */
	static const uint8_t names[][4] = {
		{ 0 }, { 1, '.' }, { 2, '.', '.' }, { 2, 'a', '/' }, { 2, 'a', '\0' }
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		wr_reset(&w);
		wr_bytes(&w, names[i], 1 + names[i][0]);
		for (int k = 0; k < 24; k++)
			wr_u8(&w, 0);
		rd_init(&r, w.buf, w.len);
		assert_int_equal(dirent_decode(&r, &out), -EPROTO);
	}
	wr_release(&w);
}

static void test_fmt(void **state)
{
	(void)state;
	struct msg m;
	char out[1024];
	char tiny[8];

	fill_msg(&m, MSG_LOOKUP, false);
	snprintf(m.name, sizeof(m.name), "bad\x01name");
	msg_fmt(&m, out, sizeof(out));
	assert_non_null(strstr(out, "lookup"));
	assert_non_null(strstr(out, "name='bad.name'"));
	assert_non_null(strstr(out, "fid=00000001.aaaaaaaa"));
	fill_msg(&m, MSG_FETCH, true);
	msg_fmt(&m, out, sizeof(out));
	assert_non_null(strstr(out, "data=64B"));
	msg_fmt(&m, tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_truncation_all),
		cmocka_unit_test(test_head_tail),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_error_reply_has_no_fields),
		cmocka_unit_test(test_bad_status),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_oversized_fields_encode),
		cmocka_unit_test(test_oversized_fields_decode),
		cmocka_unit_test(test_names_and_meta),
		cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_dirents),
		cmocka_unit_test(test_fmt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
