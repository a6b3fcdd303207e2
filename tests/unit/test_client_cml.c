/*
 * test_client_cml.c - unit tests of the client's CML (client/cml.c) on a
 * real cache env in a temp directory: appends, the optimisations (store
 * after store, setattr fold, rename chains, create..remove cancel), never
 * across a record already sent, persistence across a reopen, batches and
 * the repair area. The conn is only a StoreId source (no servers).
 */
#include "client/cml.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/cache.h"
#include "client/conn.h"
#include "common/fid.h"
#include "common/fsutil.h"

struct fixture {
	char dir[64];
	struct cache *c;
	struct conn *conn;
	struct cml *m;
};

static struct fid mkfid(uint8_t n)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = 7;
	f.oid[0] = 0x5a;
	f.oid[OID_LEN - 1] = n;
	return f;
}

static void open_all(struct fixture *fx)
{
	assert_int_equal(cache_open(fx->dir, 1ull << 30, &fx->c), 0);
	assert_int_equal(cml_open(fx->c, fx->conn, &fx->m), 0);
}

static void close_all(struct fixture *fx)
{
	cml_close(fx->m);
	cache_close(fx->c);
	fx->m = NULL;
	fx->c = NULL;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/encore-cml-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	fx->conn = conn_new("r", NULL, 0, NULL, NULL, NULL);
	open_all(fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	close_all(fx);
	conn_free(fx->conn);
	fs_rmtree(fx->dir);
	free(fx);
	return 0;
}

/* Appends one record in its own transaction; returns the object's sid. */
static struct storeid add(struct cml *m, struct cml_rec *r)
{
	struct cml_tx tx;
	struct storeid sid;

	assert_int_equal(cml_begin(m, &tx), 0);
	assert_int_equal(cml_add(&tx, r, &sid), 0);
	assert_int_equal(cml_commit(&tx), 0);
	return sid;
}

static struct cml_rec create_rec(const struct fid *dir, const struct fid *f, const char *name)
{
	struct cml_rec r;

	memset(&r, 0, sizeof(r));
	r.op = CML_CREATE;
	r.dir = *dir;
	r.fid = *f;
	r.mode = S_IFREG | 0644;
	snprintf(r.name, sizeof(r.name), "%s", name);
	return r;
}

static struct cml_rec store_rec(const struct fid *f, uint64_t len)
{
	struct cml_rec r;

	memset(&r, 0, sizeof(r));
	r.op = CML_STORE;
	r.fid = *f;
	r.length = len;
	return r;
}

static struct cml_rec rename_rec(const struct fid *f, const struct fid *d1, const char *n1,
				 const struct fid *d2, const char *n2)
{
	struct cml_rec r;

	memset(&r, 0, sizeof(r));
	r.op = CML_RENAME;
	r.fid = *f;
	r.dir = *d1;
	r.dir2 = *d2;
	snprintf(r.name, sizeof(r.name), "%s", n1);
	snprintf(r.name2, sizeof(r.name2), "%s", n2);
	return r;
}

static uint64_t count(struct cml *m, uint64_t *bytes)
{
	uint64_t n, b;

	cml_count(m, 7, &n, &b);
	if (bytes != NULL)
		*bytes = b;
	return n;
}

static void test_store_after_store_keeps_last(void **state)
{
	struct fixture *fx = *state;
	struct fid dir = mkfid(1), f = mkfid(2);
	struct cml_rec r = create_rec(&dir, &f, "a");
	struct storeid s1, s2;
	uint64_t bytes;

	add(fx->m, &r);
	r = store_rec(&f, 10);
	s1 = add(fx->m, &r);
	r = store_rec(&f, 30);
	s2 = add(fx->m, &r);
	assert_int_equal(count(fx->m, &bytes), 2);
	assert_int_equal(bytes, 30);
	/* Appended anew: a fresh StoreId, the first one's basis. */
	assert_true(s2.seq > s1.seq);
}

static void test_setattr_fold(void **state)
{
	struct fixture *fx = *state;
	struct fid f = mkfid(3);
	struct cml_rec r;
	struct storeid a, b;

	memset(&r, 0, sizeof(r));
	r.op = CML_SETATTR;
	r.fid = f;
	r.sattr.valid = SA_MODE;
	r.sattr.mode = 0600;
	a = add(fx->m, &r);
	r.sattr.valid = SA_UID;
	r.sattr.uid = 5;
	b = add(fx->m, &r);
	assert_int_equal(count(fx->m, NULL), 1);
	assert_true(a.seq == b.seq);
}

static void test_create_remove_cancels(void **state)
{
	struct fixture *fx = *state;
	struct fid dir = mkfid(1), f = mkfid(4), g = mkfid(5);
	struct cml_rec r = create_rec(&dir, &f, "tmp");
	struct cml_tx tx;

	add(fx->m, &r);
	r = store_rec(&f, 100);
	add(fx->m, &r);
	r = rename_rec(&f, &dir, "tmp", &dir, "tmp2");
	add(fx->m, &r);
	/* An object of the servers (no create): not cancelled. */
	r = store_rec(&g, 1);
	add(fx->m, &r);
	assert_int_equal(count(fx->m, NULL), 4);
	assert_int_equal(cml_begin(fx->m, &tx), 0);
	assert_int_equal(cml_cancel_object(&tx, &f), 1);
	assert_int_equal(cml_cancel_object(&tx, &g), 0);
	assert_int_equal(cml_commit(&tx), 0);
	assert_int_equal(count(fx->m, NULL), 1);
	assert_false(cml_names(fx->m, &f));
	assert_true(cml_names(fx->m, &g));
}

static void test_directory_with_entries_not_cancelled(void **state)
{
	struct fixture *fx = *state;
	struct fid root = mkfid(1), d = mkfid(6), child = mkfid(7);
	struct cml_rec r = create_rec(&root, &d, "d");
	struct cml_tx tx;

	r.mode = S_IFDIR | 0755;
	add(fx->m, &r);
	r = create_rec(&d, &child, "c");
	add(fx->m, &r);
	assert_int_equal(cml_begin(fx->m, &tx), 0);
	assert_int_equal(cml_cancel_object(&tx, &d), 0);
	assert_int_equal(cml_cancel_object(&tx, &child), 1);
	assert_int_equal(cml_cancel_object(&tx, &d), 1);
	assert_int_equal(cml_commit(&tx), 0);
	assert_int_equal(count(fx->m, NULL), 0);
}

static void test_rename_chain(void **state)
{
	struct fixture *fx = *state;
	struct fid d1 = mkfid(1), d2 = mkfid(8), f = mkfid(9);
	struct cml_rec r = rename_rec(&f, &d1, "a", &d1, "b");
	struct cml_item it[4];

	add(fx->m, &r);
	r = rename_rec(&f, &d1, "b", &d2, "c");
	add(fx->m, &r);
	assert_int_equal(count(fx->m, NULL), 1);
	assert_int_equal(cml_next_batch(fx->m, 7, it, 4, 4, 0), 1);
	assert_string_equal(it[0].rec.name, "a");
	assert_string_equal(it[0].rec.name2, "c");
	assert_memory_equal(&it[0].rec.dir2, &d2, sizeof(d2));
}

static void test_rename_back_vanishes(void **state)
{
	struct fixture *fx = *state;
	struct fid d = mkfid(1), f = mkfid(10);
	struct cml_rec r = rename_rec(&f, &d, "x", &d, "y");

	add(fx->m, &r);
	r = rename_rec(&f, &d, "y", &d, "x");
	add(fx->m, &r);
	assert_int_equal(count(fx->m, NULL), 0);
}

static void test_rename_not_folded_across_directory_use(void **state)
{
	struct fixture *fx = *state;
	struct fid d = mkfid(1), f = mkfid(11), g = mkfid(12);
	struct cml_rec r = rename_rec(&f, &d, "a", &d, "b");

	add(fx->m, &r);
	r = create_rec(&d, &g, "c");
	add(fx->m, &r);
	r = rename_rec(&f, &d, "b", &d, "c2");
	add(fx->m, &r);
	assert_int_equal(count(fx->m, NULL), 3);
}

static void test_never_across_sent_and_persistent(void **state)
{
	struct fixture *fx = *state;
	struct fid dir = mkfid(1), f = mkfid(13);
	struct cml_rec r = create_rec(&dir, &f, "p");
	struct cml_item it[8];
	struct cml_tx tx;

	add(fx->m, &r);
	r = store_rec(&f, 5);
	add(fx->m, &r);
	/* The create goes out alone (a batch of one record): it may not be
	 * optimised any more, the store may. */
	assert_int_equal(cml_next_batch(fx->m, 7, it, 1, 8, 0), 1);
	assert_int_equal(it[0].rec.op, CML_CREATE);
	close_all(fx);
	open_all(fx);
	assert_int_equal(count(fx->m, NULL), 2);
	assert_int_equal(cml_state(fx->m, 7), VS_REINTEGRATING);
	assert_int_equal(cml_begin(fx->m, &tx), 0);
	assert_int_equal(cml_cancel_object(&tx, &f), 0);
	assert_int_equal(cml_commit(&tx), 0);
	r = store_rec(&f, 6);
	add(fx->m, &r); /* the earlier store was not sent: collapses */
	assert_int_equal(count(fx->m, NULL), 2);
	/* A create and the store of its object share a batch. */
	assert_int_equal(cml_next_batch(fx->m, 7, it, 8, 8, 0), 2);
	assert_int_equal(it[0].rec.op, CML_CREATE);
	assert_int_equal(it[1].rec.op, CML_STORE);
}

/* cml_finish drops a batch from the middle of a longer log and keeps the
 * rest in order; cml_names_each answers as cml_names for each fid. */
static void test_finish_batch_and_names_each(void **state)
{
	struct fixture *fx = *state;
	struct fid dir = mkfid(1), a = mkfid(16), b = mkfid(17), x = mkfid(18);
	struct fid q[5] = { a, b, dir, x, b };
	struct cml_rec r = create_rec(&dir, &a, "a");
	struct cml_item it[4];
	bool drop[2] = { true, true }, named[5];
	int st[2] = { 0, 0 };
	char paths[2][1024] = { "", "" };

	add(fx->m, &r);
	r = store_rec(&a, 3);
	add(fx->m, &r);
	r = create_rec(&dir, &b, "b");
	add(fx->m, &r);
	r = store_rec(&b, 4);
	add(fx->m, &r);
	assert_int_equal(cml_next_batch(fx->m, 7, it, 2, 4, 0), 2);
	assert_int_equal(cml_finish(fx->m, 7, it, 2, drop, st, (const char(*)[1024])paths), 0);
	assert_int_equal(count(fx->m, NULL), 2);
	cml_names_each(fx->m, q, 5, named);
	for (int i = 0; i < 5; i++)
		assert_int_equal(named[i], cml_names(fx->m, &q[i]));
	assert_false(named[0]);
	assert_true(named[1] && named[2] && named[4]);
	assert_false(named[3]);
	assert_int_equal(cml_next_batch(fx->m, 7, it, 4, 4, 0), 2);
	assert_int_equal(it[0].rec.op, CML_CREATE);
	assert_true(fid_eq(&it[0].rec.fid, &b));
	assert_int_equal(it[1].rec.op, CML_STORE);
	assert_int_equal(cml_finish(fx->m, 7, it, 2, drop, st, (const char(*)[1024])paths), 0);
	assert_int_equal(count(fx->m, NULL), 0);
	cml_names_each(fx->m, q, 5, named);
	for (int i = 0; i < 5; i++)
		assert_false(named[i]);
}

static void test_finish_drops_and_keeps_conflicts(void **state)
{
	struct fixture *fx = *state;
	struct fid dir = mkfid(1), a = mkfid(14), b = mkfid(15);
	struct cml_rec r = create_rec(&dir, &a, "a");
	struct cml_item it[4];
	struct cml_conflict cs[4];
	bool drop[2] = { true, false };
	int st[2] = { 0, ST_EXIST };
	char paths[2][1024] = { "/r/a", "/r/b" };

	add(fx->m, &r);
	r = create_rec(&dir, &b, "b");
	add(fx->m, &r);
	assert_int_equal(cml_next_batch(fx->m, 7, it, 4, 4, 0), 2);
	assert_int_equal(cml_finish(fx->m, 7, it, 2, drop, st, (const char(*)[1024])paths), 0);
	assert_int_equal(count(fx->m, NULL), 0);
	assert_int_equal(cml_conflicts(fx->m, cs, 4), 1);
	assert_string_equal(cs[0].path, "/r/b");
	assert_int_equal(cs[0].status, ST_EXIST);
	assert_int_equal(cs[0].rec.op, CML_CREATE);
	assert_int_equal(cml_repair_drop(fx->m, cs[0].vol, cs[0].lsn), 0);
	assert_int_equal(cml_conflicts(fx->m, cs, 4), 0);
}

static void test_forced_states(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(cml_state(fx->m, 9), VS_CONNECTED);
	cml_force(fx->m, 0, VF_DISCONNECT);
	assert_int_equal(cml_state(fx->m, 9), VS_DISCONNECTED);
	assert_true(cml_emulating(fx->m, 9));
	cml_force(fx->m, 0, VF_NONE);
	cml_set_state(fx->m, 9, VS_CONNECTED);
	assert_false(cml_logging(fx->m, 9));
	cml_force(fx->m, 9, VF_WEAK);
	assert_int_equal(cml_state(fx->m, 9), VS_WEAK);
	assert_true(cml_logging(fx->m, 9));
	assert_false(cml_emulating(fx->m, 9));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_after_store_keeps_last, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setattr_fold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_remove_cancels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_with_entries_not_cancelled, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rename_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_back_vanishes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_not_folded_across_directory_use, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_never_across_sent_and_persistent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_finish_batch_and_names_each, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_drops_and_keeps_conflicts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forced_states, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
