/*
 * test_db.c - unit tests of common/db.c on a real LMDB env in a temp dir:
 * error mapping, env open (creates the directory), record headers.
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

#include "common/db.h"
#include "common/fsutil.h"

static void test_db_err(void **state)
{
	(void)state;
	assert_int_equal(db_err(MDB_SUCCESS), 0);
	assert_int_equal(db_err(MDB_NOTFOUND), -ENOENT);
	assert_int_equal(db_err(MDB_MAP_FULL), -ENOSPC);
	assert_int_equal(db_err(MDB_KEYEXIST), -EEXIST);
	assert_int_equal(db_err(MDB_CORRUPTED), -EIO);
	assert_int_equal(db_err(MDB_PAGE_NOTFOUND), -EIO);
	assert_int_equal(db_err(MDB_PANIC), -EIO);
	assert_int_equal(db_err(ENOMEM), -ENOMEM);
	assert_int_equal(db_err(EACCES), -EACCES);
	assert_int_equal(db_err(MDB_BAD_TXN), -EIO);
}

static void test_env_open(void **state)
{
	(void)state;
	char dir[128], sub[160];
	MDB_env *env = (MDB_env *)1;
	MDB_txn *txn;
	MDB_dbi dbi;
	char kb[] = "key", vb[] = "value", zb[] = "z";
	MDB_val k = { 3, kb }, v = { 5, vb }, out;

	snprintf(dir, sizeof(dir), "/tmp/encore-test-db.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/meta/x", dir);
	assert_int_equal(db_env_open(sub, 1u << 20, 4, 0, &env), 0);
	assert_non_null(env);
	assert_int_equal(db_err(mdb_txn_begin(env, NULL, 0, &txn)), 0);
	assert_int_equal(db_err(mdb_dbi_open(txn, "t", MDB_CREATE, &dbi)), 0);
	assert_int_equal(db_err(mdb_put(txn, dbi, &k, &v, 0)), 0);
	assert_int_equal(db_err(mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE)), -EEXIST);
	assert_int_equal(db_err(mdb_get(txn, dbi, &k, &out)), 0);
	assert_int_equal(out.mv_size, 5);
	assert_memory_equal(out.mv_data, "value", 5);
	MDB_val missing = { 1, zb };
	assert_int_equal(db_err(mdb_get(txn, dbi, &missing, &out)), -ENOENT);
	assert_int_equal(db_err(mdb_txn_commit(txn)), 0);
	mdb_env_close(env);

	/* A file where the directory should be. */
	snprintf(sub, sizeof(sub), "%s/file", dir);
	assert_int_equal(fs_write_atomic(sub, "x", 1, 0600), 0);
	assert_true(db_env_open(sub, 0, 4, 0, &env) < 0);
	assert_null(env);
	assert_int_equal(fs_rmtree(dir), 0);
}

static void test_hdr(void **state)
{
	(void)state;
	struct wr w;
	struct rd r;

	wr_init(&w);
	db_hdr_put(&w, 0x454e4331, 2);
	wr_u32(&w, 99);
	assert_int_equal(w.len, DB_HDR_LEN + 4);
	rd_init(&r, w.buf, w.len);
	assert_int_equal(db_hdr_check(&r, 0x454e4331, 2, "test"), 0);
	assert_int_equal(rd_u32(&r), 99);
	assert_true(rd_done(&r));
	rd_init(&r, w.buf, w.len);
	assert_int_equal(db_hdr_check(&r, 0x454e4331, 3, "test"), -EIO);
	rd_init(&r, w.buf, w.len);
	assert_int_equal(db_hdr_check(&r, 0x454e4332, 2, "test"), -EIO);
	rd_init(&r, w.buf, 5);
	assert_int_equal(db_hdr_check(&r, 0x454e4331, 2, "test"), -EIO);
	wr_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_db_err),
		cmocka_unit_test(test_env_open),
		cmocka_unit_test(test_hdr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
