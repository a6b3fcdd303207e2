/*
 * test_repl.c - unit tests of server/repl.c on a real LMDB env in a temp
 * dir: pending COP2 entries (add, take, the version-2 record with its time,
 * version-1 records still read) and their garbage collection
 * (repl_cop2_gc: the age bound, bounded steps resumed by key, malformed
 * records). Writes the seeds of tests/fuzz/fuzz_repl.c.
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
#include <time.h>

#include "common/fid.h"
#include "common/fsutil.h"
#include "common/wire.h"
#include "server/meta.h"
#include "server/repl.h"

struct fx {
	char dir[64];
	struct meta *m;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_repl.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/meta", f->dir);
	if (meta_open(path, true, &f->m) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	meta_close(f->m);
	fs_rmtree(f->dir);
	free(f);
	return 0;
}

/* Writes a seed of tests/fuzz/fuzz_repl.c: the decoder's selector byte,
 * then p (when run from the top of the tree, where the corpus is). */
static void write_seed(const char *name, uint8_t which, const void *p, size_t len)
{
	const char *dir = "tests/fuzz/corpus/fuzz_repl";
	char path[512];
	struct stat st;
	FILE *f;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(&which, 1, 1, f), 1);
	assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static struct meta_txn *begin(struct fx *f)
{
	struct meta_txn *t;
	assert_int_equal(meta_begin(f->m, NULL, false, &t), 0);
	return t;
}

static struct fid fid_of(uint8_t tag)
{
	struct fid fid = { .vol = 1 };
	memset(fid.oid, tag, OID_LEN);
	return fid;
}

static struct storeid sid_of(uint64_t seq)
{
	struct storeid s = { .client = 77, .seq = seq };
	return s;
}

/* Adds the entry (vol 1, sid seq) -> fids tag, tag + 1 and commits. */
static void add(struct fx *f, uint64_t seq, uint8_t tag)
{
	struct fid fids[2] = { fid_of(tag), fid_of((uint8_t)(tag + 1)) };
	struct storeid sid = sid_of(seq);
	struct meta_txn *t = begin(f);
	assert_int_equal(repl_cop2_add(t, 1, &sid, fids, 2), 0);
	assert_int_equal(meta_commit(t), 0);
}

/* repl_cop2_take in its own transaction: the number of oids or -errno. */
static int take(struct fx *f, uint64_t seq)
{
	uint8_t oids[REPL_COP2_MAX * 4][OID_LEN];
	struct storeid sid = sid_of(seq);
	struct meta_txn *t = begin(f);
	size_t n = 0;
	int ret = repl_cop2_take(t, 1, &sid, oids, &n);
	if (ret == 0) {
		assert_int_equal(meta_commit(t), 0);
		return (int)n;
	}
	meta_abort(t);
	return ret;
}

static void key_of(uint8_t *k, uint32_t vol, uint64_t seq)
{
	struct wr w;

	/* Big-endian, docs/ondisk.md "Replication tables". */
	wr_init(&w);
	for (int i = 3; i >= 0; i--)
		wr_u8(&w, (uint8_t)(vol >> (8 * i)));
	for (int i = 7; i >= 0; i--)
		wr_u8(&w, (uint8_t)(77ull >> (8 * i)));
	for (int i = 7; i >= 0; i--)
		wr_u8(&w, (uint8_t)(seq >> (8 * i)));
	assert_int_equal(w.len, REPL_COP2_KEY_LEN);
	memcpy(k, w.buf, REPL_COP2_KEY_LEN);
	wr_release(&w);
}

/* Writes a raw cop2 value under (vol 1, seq). */
static void put_raw(struct fx *f, uint64_t seq, const void *val, size_t len)
{
	uint8_t k[REPL_COP2_KEY_LEN];
	struct meta_txn *t = begin(f);

	key_of(k, 1, seq);
	assert_int_equal(meta_kv_put(t, META_KV_COP2, k, sizeof(k), val, len), 0);
	assert_int_equal(meta_commit(t), 0);
}

/* A version-1 record (before the time was added): header, n, oids. */
static void put_v1(struct fx *f, uint64_t seq, uint8_t tag)
{
	struct wr w;
	uint8_t oid[OID_LEN];

	memset(oid, tag, sizeof(oid));
	wr_init(&w);
	wr_u32(&w, 0x32434e45u);
	wr_u16(&w, 1);
	wr_u16(&w, 0);
	wr_u32(&w, 1);
	wr_bytes(&w, oid, OID_LEN);
	put_raw(f, seq, w.buf, w.len);
	wr_release(&w);
}

/* One collection step in its own transaction, committed. */
static int gc(struct fx *f, uint64_t before, size_t max, const uint8_t *after,
	      uint8_t next[REPL_COP2_KEY_LEN], size_t *n, bool *more)
{
	struct meta_txn *t = begin(f);
	int ret = repl_cop2_gc(t, before, max, after, next, n, more);
	if (ret == 0)
		assert_int_equal(meta_commit(t), 0);
	else
		meta_abort(t);
	return ret;
}

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

static void test_cop2_add_take(void **state)
{
	struct fx *f = *state;

	add(f, 1, 0x10);
	add(f, 1, 0x11); /* merged: 0x10, 0x11, 0x12 */
	assert_int_equal(take(f, 1), 3);
	assert_int_equal(take(f, 1), -ENOENT); /* taken: a second COP2 does nothing */
	assert_int_equal(take(f, 2), -ENOENT);
}

static void test_cop2_record_has_time(void **state)
{
	struct fx *f = *state;
	uint8_t k[REPL_COP2_KEY_LEN], buf[600];
	uint64_t t0 = now_s();
	size_t len;
	struct rd r;

	add(f, 5, 0x20);
	struct meta_txn *t = begin(f);
	key_of(k, 1, 5);
	assert_int_equal(meta_kv_get(t, META_KV_COP2, k, sizeof(k), buf, sizeof(buf), &len), 0);
	meta_abort(t);
	rd_init(&r, buf, len);
	assert_int_equal(rd_u32(&r), 0x32434e45u);
	assert_int_equal(rd_u16(&r), 2);
	assert_int_equal(rd_u16(&r), 0);
	uint64_t created = rd_u64(&r);
	assert_true(created >= t0 && created <= now_s());
	assert_int_equal(rd_u32(&r), 2);
	assert_non_null(rd_bytes(&r, 2 * OID_LEN));
	assert_true(rd_done(&r));
	/* The seed keeps a fixed time (bytes 8-15, little-endian): the corpus
	 * file stays the same from run to run. */
	uint8_t seed[sizeof(buf)];
	uint64_t fixed = 1795700000u;
	memcpy(seed, buf, len);
	for (int i = 0; i < 8; i++)
		seed[8 + i] = (uint8_t)(fixed >> (8 * i));
	write_seed("cop2_v2", 0, seed, len);
	/* The exported decoder agrees. */
	uint8_t oids[REPL_COP2_MAX * 4][OID_LEN];
	size_t n;
	assert_int_equal(repl_cop2_decode(buf, len, oids, &n, &created), 0);
	assert_int_equal(n, 2);
	assert_true(created >= t0);
	assert_int_equal(repl_cop2_decode(buf, len - 1, oids, &n, &created), -EIO);
	assert_int_equal(repl_cop2_decode(buf, len, NULL, &n, &created), 0);
}

static void test_seeds(void **state)
{
	struct rlog_rec rec = { .op = RLOG_REMOVE, .mode = 0100644, .uid = 1, .gid = 2 };
	struct scan_ent e = { .mode = 040755, .flags = 1 };
	struct wr w;

	(void)state;
	snprintf(rec.name, sizeof(rec.name), "a name");
	memset(rec.child, 7, OID_LEN);
	rec.vv.n = 3;
	rec.vv.slot[1] = 4;
	rec.sid.client = 77;
	rec.sid.seq = 9;
	wr_init(&w);
	rlog_encode(&w, &rec);
	rec.op = RLOG_MARK;
	rec.name[0] = '\0';
	rec.vv.n = 0;
	rlog_encode(&w, &rec);
	write_seed("rlog", 1, w.buf, w.len);
	wr_reset(&w);
	memset(e.oid, 9, OID_LEN);
	e.vv.n = 2;
	e.vv.slot[0] = 1;
	scan_ent_encode(&w, &e);
	scan_ent_encode(&w, &e);
	write_seed("scan", 2, w.buf, w.len);
	wr_reset(&w);
	wr_u32(&w, 0x32434e45u); /* a version-1 cop2 record, one oid */
	wr_u16(&w, 1);
	wr_u16(&w, 0);
	wr_u32(&w, 1);
	wr_bytes(&w, e.oid, OID_LEN);
	write_seed("cop2_v1", 0, w.buf, w.len);
	wr_release(&w);
}

static void test_cop2_v1_still_read(void **state)
{
	struct fx *f = *state;

	put_v1(f, 9, 0x30);
	assert_int_equal(take(f, 9), 1);
	/* And merged into a version-2 record by a later update. */
	put_v1(f, 9, 0x30);
	add(f, 9, 0x31);
	assert_int_equal(take(f, 9), 3);
}

static void test_cop2_bad_records(void **state)
{
	struct fx *f = *state;
	uint8_t next[REPL_COP2_KEY_LEN];
	uint8_t bad[8] = { 0x45, 0x4e, 0x43, 0x32, 3, 0, 0, 0 }; /* version 3 */
	size_t n;
	bool more;

	put_raw(f, 1, bad, sizeof(bad));
	assert_int_equal(take(f, 1), -EIO);
	assert_int_equal(gc(f, now_s() + 10, 16, NULL, next, &n, &more), -EIO);
	bad[4] = 2; /* version 2 cut short */
	put_raw(f, 1, bad, sizeof(bad));
	assert_int_equal(take(f, 1), -EIO);
	assert_int_equal(gc(f, now_s() + 10, 16, NULL, next, &n, &more), -EIO);
	assert_int_equal(gc(f, now_s() + 10, 0, NULL, next, &n, &more), -EINVAL);
}

static void test_cop2_gc_age(void **state)
{
	struct fx *f = *state;
	uint8_t next[REPL_COP2_KEY_LEN];
	size_t n = 99;
	bool more = true;

	/* Nothing to do in an empty table. */
	assert_int_equal(gc(f, now_s() + 10, 16, NULL, next, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_false(more);
	for (uint64_t i = 1; i <= 3; i++)
		add(f, i, (uint8_t)(i * 2));
	put_v1(f, 4, 0x40);
	/* Young entries stay; a version-1 one (age unknown) counts as old. */
	assert_int_equal(gc(f, now_s() - REPL_COP2_TTL_S, 16, NULL, next, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_int_equal(take(f, 4), -ENOENT);
	assert_int_equal(take(f, 2), 2);
	/* Once older than the bound, they go. */
	assert_int_equal(gc(f, now_s() + 1, 16, NULL, next, &n, &more), 0);
	assert_int_equal(n, 2);
	assert_false(more);
	assert_int_equal(take(f, 1), -ENOENT);
	assert_int_equal(take(f, 3), -ENOENT);
}

static void test_cop2_gc_bounded_steps(void **state)
{
	struct fx *f = *state;
	uint8_t next[REPL_COP2_KEY_LEN], after[REPL_COP2_KEY_LEN];
	size_t n, total = 0, steps = 0;
	bool more = true, first = true;

	for (uint64_t i = 1; i <= 10; i++)
		add(f, i, (uint8_t)i);
	/* Entries of another volume and young ones are looked at, not dropped. */
	struct fid other = fid_of(0x77);
	struct storeid sid = sid_of(3);
	struct meta_txn *t = begin(f);
	assert_int_equal(repl_cop2_add(t, 2, &sid, &other, 1), 0);
	assert_int_equal(meta_commit(t), 0);
	while (more) {
		assert_int_equal(gc(f, now_s() + 1, 4, first ? NULL : after, next, &n, &more), 0);
		assert_true(n <= 4);
		total += n;
		steps++;
		memcpy(after, next, sizeof(after));
		first = false;
		assert_true(steps <= 4);
	}
	assert_int_equal(total, 11);
	assert_int_equal(steps, 3);
	for (uint64_t i = 1; i <= 10; i++)
		assert_int_equal(take(f, i), -ENOENT);
	/* The bound counts entries looked at: a young table is stepped through
	 * without dropping anything. */
	for (uint64_t i = 1; i <= 6; i++)
		add(f, i, (uint8_t)i);
	assert_int_equal(gc(f, now_s() - REPL_COP2_TTL_S, 4, NULL, next, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_true(more);
	memcpy(after, next, sizeof(after));
	assert_int_equal(gc(f, now_s() - REPL_COP2_TTL_S, 4, after, next, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_false(more);
	for (uint64_t i = 1; i <= 6; i++)
		assert_int_equal(take(f, i), 2);
	/* Resuming after the largest key there can be ends at once. */
	memset(after, 0xff, sizeof(after));
	assert_int_equal(gc(f, now_s() + 1, 4, after, next, &n, &more), 0);
	assert_int_equal(n, 0);
	assert_false(more);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cop2_add_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cop2_record_has_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cop2_v1_still_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cop2_bad_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cop2_gc_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cop2_gc_bounded_steps, setup, teardown),
		cmocka_unit_test(test_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
