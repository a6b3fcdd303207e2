/*
 * test_cml.c - the CML record codec (common/cml.c) and the server's reint
 * mark record: round trip of every op, every truncation, bad names, bad
 * values, trailing bytes, batch rules, the on-disk header. Writes the seed
 * corpus of tests/fuzz/fuzz_cml.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cml.h"
#include "common/proto.h"
#include "common/wire.h"
#include "server/reint.h"

#define N_OPS 7 /* samples below */

static void fill_fid(struct fid *f, uint32_t vol, uint8_t b)
{
	f->vol = vol;
	memset(f->oid, b, OID_LEN);
}

static void fill_ver(struct cml_ver *v, uint64_t dv)
{
	v->dv = dv;
	v->sid.client = 0x1111;
	v->sid.seq = dv + 7;
	v->vv.n = 3;
	v->vv.slot[0] = 1;
	v->vv.slot[1] = 2;
	v->vv.slot[2] = (uint32_t)dv;
}

/* Sample i (0..N_OPS-1): one record of every op, a symlink create too. */
static void sample(struct cml_rec *r, int i, uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->sid.client = 0xc0ffee;
	r->sid.seq = seq;
	fill_fid(&r->fid, 7, (uint8_t)(0x10 + i));
	switch (i) {
	case 0:
		r->op = CML_CREATE;
		fill_fid(&r->dir, 7, 0xd1);
		snprintf(r->name, sizeof(r->name), "file.txt");
		r->mode = S_IFREG | 0644;
		break;
	case 1:
		r->op = CML_CREATE;
		fill_fid(&r->dir, 7, 0xd1);
		memset(r->name, 'n', NAME_MAX_LEN);
		r->mode = S_IFLNK | 0777;
		memset(r->target, 't', TARGET_MAX_LEN);
		break;
	case 2:
		r->op = CML_REMOVE;
		r->flags = REMOVE_DIR;
		fill_fid(&r->dir, 7, 0xd1);
		snprintf(r->name, sizeof(r->name), "sub");
		fill_ver(&r->ver, 42);
		break;
	case 3:
		r->op = CML_RENAME;
		r->flags = RENAME_F_NOREPLACE;
		fill_fid(&r->dir, 7, 0xd1);
		fill_fid(&r->dir2, 7, 0xd2);
		snprintf(r->name, sizeof(r->name), "a");
		snprintf(r->name2, sizeof(r->name2), "b");
		fill_fid(&r->fid2, 7, 0xee);
		fill_ver(&r->ver2, 9);
		break;
	case 4:
		r->op = CML_LINK;
		fill_fid(&r->dir, 7, 0xd2);
		snprintf(r->name, sizeof(r->name), "hard");
		break;
	case 5:
		r->op = CML_SETATTR;
		fill_ver(&r->ver, 3);
		r->sattr.valid = SA_MODE | SA_SIZE | SA_MTIME;
		r->sattr.mode = 0600;
		r->sattr.size = 12345;
		r->sattr.mtime.sec = -5;
		r->sattr.mtime.nsec = 999999999;
		break;
	default:
		r->op = CML_STORE;
		fill_ver(&r->ver, 5);
		r->handle = 0xabcdef;
		r->length = 1u << 20;
		r->mtime.sec = 1700000000;
		r->mtime.nsec = 5;
		break;
	}
}

static void write_seed(const char *name, const void *p, size_t len)
{
	const char *dir = "tests/fuzz/corpus/fuzz_cml";
	char path[512];
	struct stat st;
	FILE *f;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_roundtrip_every_op(void **state)
{
	struct cml_rec r, d;
	struct wr w, w2;
	struct rd rd;
	char seed[64];
	(void)state;

	for (int i = 0; i < N_OPS; i++) {
		sample(&r, i, 100 + (uint64_t)i);
		wr_init(&w);
		wr_init(&w2);
		assert_int_equal(cml_rec_encode(&w, &r), 0);
		assert_true(w.len <= CML_REC_WIRE_MAX);
		rd_init(&rd, w.buf, w.len);
		assert_int_equal(cml_rec_decode(&rd, &d), 0);
		assert_true(rd_done(&rd));
		assert_memory_equal(&r, &d, sizeof(r));
		assert_int_equal(cml_rec_encode(&w2, &d), 0);
		assert_int_equal(w2.len, w.len);
		assert_memory_equal(w2.buf, w.buf, w.len);
		snprintf(seed, sizeof(seed), "%d_%s", i, cml_op_name(r.op));
		write_seed(seed, w.buf, w.len);
		wr_release(&w);
		wr_release(&w2);
	}
}

/* Fields an op does not carry are not encoded and decode as zero. */
static void test_unused_fields_dropped(void **state)
{
	struct cml_rec r, d;
	struct wr w;
	struct rd rd;
	(void)state;

	sample(&r, 5, 1);
	r.handle = 99;
	snprintf(r.name, sizeof(r.name), "ignored");
	wr_init(&w);
	assert_int_equal(cml_rec_encode(&w, &r), 0);
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), 0);
	assert_int_equal(d.handle, 0);
	assert_string_equal(d.name, "");
	wr_release(&w);
}

static void test_truncation_every_point(void **state)
{
	struct cml_rec r, d;
	struct wr w;
	struct rd rd;
	(void)state;

	for (int i = 0; i < N_OPS; i++) {
		sample(&r, i, 1);
		wr_init(&w);
		assert_int_equal(cml_rec_encode(&w, &r), 0);
		for (size_t cut = 0; cut < w.len; cut++) {
			rd_init(&rd, w.buf, cut);
			assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
			size_t n = 99;
			assert_int_not_equal(cml_batch_check(w.buf, cut, 7, CML_BATCH_MAX, &n), 0);
			assert_int_equal(n, 0);
		}
		wr_release(&w);
	}
}

static void test_trailing_bytes(void **state)
{
	struct cml_rec r, d;
	struct wr w;
	size_t n;
	(void)state;

	sample(&r, 0, 1);
	wr_init(&w);
	assert_int_equal(cml_rec_pack(&w, &r), 0);
	assert_int_equal(cml_rec_unpack(w.buf, w.len, &d), 0);
	assert_memory_equal(&r, &d, sizeof(r));
	wr_u8(&w, 0);
	assert_int_equal(cml_rec_unpack(w.buf, w.len, &d), -EIO);
	wr_reset(&w);
	assert_int_equal(cml_rec_encode(&w, &r), 0);
	assert_int_equal(cml_batch_check(w.buf, w.len, 7, CML_BATCH_MAX, &n), 0);
	assert_int_equal(n, 1);
	wr_u8(&w, CML_CREATE); /* a partial second record */
	assert_int_equal(cml_batch_check(w.buf, w.len, 7, CML_BATCH_MAX, &n), -EPROTO);
	wr_release(&w);
}

/* Encodes r by hand (bypassing cml_rec_check) for the create layout. */
static void raw_create(struct wr *w, const char *name, size_t name_len, uint32_t mode,
		       const char *target)
{
	wr_u8(w, CML_CREATE);
	wr_u32(w, 0);
	wr_u64(w, 1);
	wr_u64(w, 1);
	wr_u32(w, 7);
	wr_bytes(w, (uint8_t[OID_LEN]){ 1 }, OID_LEN);
	wr_u16(w, (uint16_t)name_len);
	wr_bytes(w, name, name_len);
	wr_u32(w, 7);
	wr_bytes(w, (uint8_t[OID_LEN]){ 2 }, OID_LEN);
	wr_u32(w, mode);
	wr_u64(w, 0);
	wr_str(w, target);
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = { "", ".", "..", "a/b" };
	char big[NAME_MAX_LEN + 2];
	struct cml_rec r, d;
	struct wr w;
	struct rd rd;
	(void)state;

	memset(big, 'x', sizeof(big));
	wr_init(&w);
	/* The codec's own bound: 256 bytes is too long. */
	raw_create(&w, big, NAME_MAX_LEN + 1, S_IFREG | 0644, "");
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
	wr_reset(&w);
	raw_create(&w, big, NAME_MAX_LEN, S_IFREG | 0644, "");
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr_reset(&w);
		raw_create(&w, bad[i], strlen(bad[i]), S_IFREG | 0644, "");
		rd_init(&rd, w.buf, w.len);
		assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
		sample(&r, 0, 1);
		snprintf(r.name, sizeof(r.name), "%s", bad[i]);
		wr_reset(&w);
		assert_int_equal(cml_rec_encode(&w, &r), -EINVAL);
		assert_int_equal(w.len, 0);
	}
	/* A NUL inside a name. */
	wr_reset(&w);
	raw_create(&w, "a\0b", 3, S_IFREG | 0644, "");
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
	/* A target on a regular file, none on a symlink, a bad type. */
	wr_reset(&w);
	raw_create(&w, "f", 1, S_IFREG | 0644, "t");
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
	wr_reset(&w);
	raw_create(&w, "f", 1, S_IFLNK | 0777, "");
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
	wr_reset(&w);
	raw_create(&w, "f", 1, 0170000 | 0644, "");
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
	wr_release(&w);
}

/* Mutates one byte-range of a valid encoding and expects -EPROTO. */
static void expect_bad(const struct cml_rec *r, size_t off, const void *bytes, size_t n)
{
	struct cml_rec d;
	struct wr w;
	struct rd rd;

	wr_init(&w);
	assert_int_equal(cml_rec_encode(&w, r), 0);
	assert_true(off + n <= w.len);
	memcpy(w.buf + off, bytes, n);
	rd_init(&rd, w.buf, w.len);
	assert_int_equal(cml_rec_decode(&rd, &d), -EPROTO);
	wr_release(&w);
}

static void test_bad_values(void **state)
{
	struct cml_rec r;
	struct wr w;
	(void)state;

	sample(&r, 4, 1);
	expect_bad(&r, 0, (uint8_t[]){ 0 }, 1);		 /* op 0 */
	expect_bad(&r, 0, (uint8_t[]){ 7 }, 1);		 /* unknown op */
	expect_bad(&r, 0, (uint8_t[]){ 0xff }, 1);	 /* unknown op */
	expect_bad(&r, 1, (uint8_t[]){ 1, 0, 0, 0 }, 4); /* flag link does not take */
	expect_bad(&r, 5, (uint8_t[8]){ 0 }, 8);	 /* StoreId client 0 */
	expect_bad(&r, 13, (uint8_t[8]){ 0 }, 8);	 /* StoreId seq 0 */
	expect_bad(&r, 21, (uint8_t[]){ 8 }, 1);	 /* dir in another volume */
	sample(&r, 2, 1);
	expect_bad(&r, 1, (uint8_t[]){ 2, 0, 0, 0 }, 4); /* unknown remove flag */
	/* vv.n of the remove's ver: after head 21, dir 20, name 2+3, fid 20, dv 8, sid 16. */
	expect_bad(&r, 21 + 20 + 5 + 20 + 24, (uint8_t[]){ VV_MAX + 1 }, 1);
	sample(&r, 6, 1);
	/* nsec of the store's mtime (the last 4 bytes). */
	wr_init(&w);
	assert_int_equal(cml_rec_encode(&w, &r), 0);
	expect_bad(&r, w.len - 4, (uint8_t[]){ 0x00, 0xca, 0x9a, 0x3b }, 4);
	r.length = CML_STORE_LEN_MAX + 1;
	assert_int_equal(cml_rec_encode(&w, &r), -EINVAL);
	sample(&r, 5, 1);
	r.sattr.valid = 1u << 9;
	assert_int_equal(cml_rec_encode(&w, &r), -EINVAL);
	sample(&r, 3, 1);
	r.flags = RENAME_F_NOREPLACE | 4;
	assert_int_equal(cml_rec_encode(&w, &r), -EINVAL);
	wr_release(&w);
}

static void test_batch_rules(void **state)
{
	struct cml_rec r;
	struct wr w;
	size_t n;
	(void)state;

	wr_init(&w);
	for (int i = 0; i < N_OPS; i++) {
		sample(&r, i, 10 + (uint64_t)i);
		assert_int_equal(cml_rec_encode(&w, &r), 0);
	}
	assert_int_equal(cml_batch_check(w.buf, w.len, 7, CML_BATCH_MAX, &n), 0);
	assert_int_equal(n, N_OPS);
	write_seed("batch_every_op", w.buf, w.len);
	assert_int_equal(cml_batch_check(w.buf, w.len, 8, CML_BATCH_MAX, &n), -EINVAL);
	assert_int_equal(cml_batch_check(w.buf, w.len, 7, N_OPS - 1, &n), -EINVAL);
	assert_int_equal(cml_batch_check(w.buf, 0, 7, CML_BATCH_MAX, &n), -EINVAL);
	/* Seqs must increase; one client per batch. */
	sample(&r, 0, 10 + N_OPS - 1);
	assert_int_equal(cml_rec_encode(&w, &r), 0);
	assert_int_equal(cml_batch_check(w.buf, w.len, 7, CML_BATCH_MAX, &n), -EINVAL);
	wr_reset(&w);
	sample(&r, 0, 1);
	assert_int_equal(cml_rec_encode(&w, &r), 0);
	sample(&r, 0, 2);
	r.sid.client++;
	assert_int_equal(cml_rec_encode(&w, &r), 0);
	assert_int_equal(cml_batch_check(w.buf, w.len, 7, CML_BATCH_MAX, &n), -EINVAL);
	/* CML_BATCH_MAX records pass, one more does not. */
	wr_reset(&w);
	for (uint64_t i = 1; i <= CML_BATCH_MAX + 1; i++) {
		sample(&r, 4, i);
		assert_int_equal(cml_rec_encode(&w, &r), 0);
	}
	assert_int_equal(cml_batch_check(w.buf, w.len, 7, CML_BATCH_MAX, &n), -EINVAL);
	assert_true(w.len < CHUNK_MAX);
	wr_release(&w);
}

static void test_disk_header(void **state)
{
	struct cml_rec r, d;
	struct wr w;
	(void)state;

	sample(&r, 6, 3);
	wr_init(&w);
	assert_int_equal(cml_rec_pack(&w, &r), 0);
	write_seed("packed_store", w.buf, w.len);
	assert_int_equal(cml_rec_unpack(w.buf, w.len, &d), 0);
	assert_memory_equal(&r, &d, sizeof(r));
	w.buf[0] ^= 1;
	assert_int_equal(cml_rec_unpack(w.buf, w.len, &d), -EIO);
	w.buf[0] ^= 1;
	w.buf[4] = 2; /* version 2 */
	assert_int_equal(cml_rec_unpack(w.buf, w.len, &d), -EIO);
	assert_int_equal(cml_rec_unpack(w.buf, 3, &d), -EIO);
	r.op = 99;
	wr_reset(&w);
	assert_int_equal(cml_rec_pack(&w, &r), -EINVAL);
	assert_int_equal(w.len, 0);
	wr_release(&w);
}

static void test_reint_mark(void **state)
{
	static struct reint_mark m, d;
	struct wr w;
	(void)state;

	memset(&m, 0, sizeof(m));
	m.hw = 77;
	m.n = CML_BATCH_MAX;
	for (uint32_t i = 0; i < m.n; i++) {
		m.conf[i].seq = i + 1;
		m.conf[i].status = ST_VERSION;
	}
	wr_init(&w);
	reint_mark_encode(&w, &m);
	assert_int_equal(reint_mark_decode(w.buf, w.len, &d), 0);
	assert_memory_equal(&m, &d, sizeof(m));
	assert_int_equal(reint_mark_decode(w.buf, w.len - 1, &d), -EIO);
	w.buf[0] ^= 1;
	assert_int_equal(reint_mark_decode(w.buf, w.len, &d), -EIO);
	w.buf[0] ^= 1;
	w.buf[6 + 8] = 0xff; /* n = 0xffff > CML_BATCH_MAX */
	w.buf[6 + 9] = 0xff;
	assert_int_equal(reint_mark_decode(w.buf, w.len, &d), -EIO);
	wr_release(&w);
}

/* COP2_BATCH lists: round trip, every truncation, bad values, the bound. */
static void test_cop2_list(void **state)
{
	struct cml_cop2 e, d;
	struct wr w;
	struct rd r;
	size_t n;
	(void)state;

	wr_init(&w);
	for (uint32_t i = 0; i < 3; i++) {
		e.sid.client = 0x1122334455667788ull;
		e.sid.seq = 10 + i;
		e.mask = (1u << VV_MAX) - 1 - i;
		cml_cop2_encode(&w, &e);
	}
	assert_int_equal(w.len, 3 * CML_COP2_WIRE);
	write_seed("cop2_batch", w.buf, w.len);
	assert_int_equal(cml_cop2_check(w.buf, w.len, COP2_BATCH_MAX, &n), 0);
	assert_int_equal(n, 3);
	rd_init(&r, w.buf, w.len);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(cml_cop2_next(&r, &d), 1);
		assert_int_equal(d.sid.client, 0x1122334455667788ull);
		assert_int_equal(d.sid.seq, 10 + i);
		assert_int_equal(d.mask, (1u << VV_MAX) - 1 - i);
	}
	assert_int_equal(cml_cop2_next(&r, &d), 0);
	for (size_t cut = 0; cut < w.len; cut++) {
		int ret = cml_cop2_check(w.buf, cut, COP2_BATCH_MAX, &n);

		assert_int_equal(ret, cut == 0 ? -EINVAL : (cut % CML_COP2_WIRE ? -EPROTO : 0));
		assert_int_equal(n, ret == 0 ? cut / CML_COP2_WIRE : 0);
	}
	assert_int_equal(cml_cop2_check(w.buf, w.len, 2, &n), -EINVAL);
	assert_int_equal(n, 0);
	/* Zero client, zero seq, empty mask, a slot past VV_MAX. */
	for (int k = 0; k < 4; k++) {
		uint8_t b[CML_COP2_WIRE];

		memcpy(b, w.buf, sizeof(b));
		if (k < 2)
			memset(b + 8 * k, 0, 8);
		else
			le_put_u32(b + 16, k == 2 ? 0 : 1u << VV_MAX);
		assert_int_equal(cml_cop2_check(b, sizeof(b), COP2_BATCH_MAX, &n), -EPROTO);
		rd_init(&r, b, sizeof(b));
		assert_int_equal(cml_cop2_next(&r, &d), -EPROTO);
		assert_int_not_equal(r.err, 0);
		assert_int_equal(d.sid.client, 0);
	}
	/* COP2_BATCH_MAX entries pass and fit a message, one more does not. */
	wr_reset(&w);
	for (uint64_t i = 1; i <= COP2_BATCH_MAX + 1; i++) {
		e.sid.client = 1;
		e.sid.seq = i;
		e.mask = 1;
		cml_cop2_encode(&w, &e);
	}
	assert_int_equal(cml_cop2_check(w.buf, w.len - CML_COP2_WIRE, COP2_BATCH_MAX, &n), 0);
	assert_int_equal(n, COP2_BATCH_MAX);
	assert_int_equal(cml_cop2_check(w.buf, w.len, COP2_BATCH_MAX, &n), -EINVAL);
	assert_true(w.len < CHUNK_MAX);
	wr_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_every_op),
		cmocka_unit_test(test_unused_fields_dropped),
		cmocka_unit_test(test_truncation_every_point),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_batch_rules),
		cmocka_unit_test(test_disk_header),
		cmocka_unit_test(test_reint_mark),
		cmocka_unit_test(test_cop2_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
