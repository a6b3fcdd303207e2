/*
 * test_store.c - unit tests of a connection's partial stores (server/store.c
 * store_set_*) on a real temp directory: uploads in temp files and kept in
 * memory, their limits (STORE_PARTIAL_MAX, STORE_FILES_MAX, STORE_MEM_MAX),
 * replacing and dropping, and that the slots and counts add up.
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
#include <unistd.h>

#include "common/fsutil.h"
#include "server/store.h"

struct fixture {
	char dir[256];
	struct store *s;
	struct store_set *ss;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/encore-test-store.XXXXXX");
	if (mkdtemp(fx->dir) == NULL || store_open(fx->dir, &fx->s) < 0)
		return -1;
	fx->ss = calloc(1, sizeof(*fx->ss));
	store_set_init(fx->ss);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	store_set_release(fx->s, fx->ss);
	assert_int_equal(fx->ss->n, 0);
	assert_int_equal(fx->ss->n_files, 0);
	store_close(fx->s);
	free(fx->ss);
	fs_rmtree(fx->dir);
	free(fx);
	return 0;
}

static struct fid mkfid(uint8_t b)
{
	struct fid f = { .vol = 1 };

	memset(f.oid, b, OID_LEN);
	return f;
}

static void test_mem_upload(void **state)
{
	struct fixture *fx = *state;
	struct fid f = mkfid(1);
	struct pstore *p;

	assert_true(store_mem_room(fx->s, STORE_MEM_MAX));
	assert_false(store_mem_room(fx->s, STORE_MEM_MAX + 1));
	/* Zero-extended to len; data longer than len is refused. */
	assert_int_equal(store_set_add_mem(fx->s, fx->ss, 7, &f, "abc", 3, 5, &p), 0);
	assert_non_null(p);
	assert_int_equal(p->fd, -1);
	assert_int_equal(p->bytes, 5);
	assert_memory_equal(p->mem, "abc\0\0", 5);
	assert_ptr_equal(store_set_find(fx->ss, 7), p);
	assert_int_equal(store_set_add_mem(fx->s, fx->ss, 7, &f, "x", 1, 1, &p), -EEXIST);
	assert_int_equal(store_set_add_mem(fx->s, fx->ss, 8, &f, "abc", 3, 2, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(store_set_add_mem(fx->s, fx->ss, 8, &f, NULL, 0, STORE_MEM_MAX + 1, &p),
			 -EINVAL);
	/* Complete: no more chunks. */
	p = store_set_find(fx->ss, 7);
	assert_int_equal(store_set_write(fx->s, p, "d", 1, 5), -EINVAL);
	assert_int_equal(fx->ss->n, 1);
	assert_int_equal(fx->ss->n_files, 0);
	store_set_drop(fx->s, fx->ss, p);
	assert_null(store_set_find(fx->ss, 7));
	assert_int_equal(fx->ss->n, 0);
	/* An empty upload. */
	assert_int_equal(store_set_add_mem(fx->s, fx->ss, 9, &f, NULL, 0, 0, &p), 0);
	assert_int_equal(p->bytes, 0);
}

static void test_limits(void **state)
{
	struct fixture *fx = *state;
	struct fid f = mkfid(2);
	struct pstore *p;
	uint64_t h = 1;

	for (; h <= STORE_FILES_MAX; h++)
		assert_int_equal(store_set_add(fx->s, fx->ss, h, &f, &p), 0);
	assert_int_equal(fx->ss->n_files, STORE_FILES_MAX);
	assert_int_equal(store_set_add(fx->s, fx->ss, 1000, &f, &p), -EBUSY);
	assert_int_equal(store_set_add(fx->s, fx->ss, 1, &f, &p), -EEXIST);
	for (; h <= STORE_PARTIAL_MAX; h++)
		assert_int_equal(store_set_add_mem(fx->s, fx->ss, h, &f, "m", 1, 1, &p), 0);
	assert_int_equal(fx->ss->n, STORE_PARTIAL_MAX);
	assert_int_equal(store_set_add_mem(fx->s, fx->ss, 1000, &f, "m", 1, 1, &p), -EBUSY);
	/* Dropping a file upload frees a slot and a file. */
	p = store_set_find(fx->ss, 3);
	assert_non_null(p);
	assert_true(p->fd >= 0);
	assert_int_equal(store_set_write(fx->s, p, "data", 4, 0), 0);
	store_set_drop(fx->s, fx->ss, p);
	assert_int_equal(fx->ss->n_files, STORE_FILES_MAX - 1);
	assert_int_equal(store_set_add(fx->s, fx->ss, 1000, &f, &p), 0);
	assert_int_equal(fx->ss->n_files, STORE_FILES_MAX);
	/* Dropping a memory upload frees a slot, not a file. */
	store_set_drop(fx->s, fx->ss, store_set_find(fx->ss, STORE_PARTIAL_MAX));
	assert_int_equal(store_set_add(fx->s, fx->ss, 1001, &f, &p), -EBUSY);
	assert_int_equal(store_set_add_mem(fx->s, fx->ss, 1001, &f, "m", 1, 1, &p), 0);
	assert_int_equal(fx->ss->n, STORE_PARTIAL_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mem_upload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
