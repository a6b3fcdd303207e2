/*
 * test_cache.c - unit tests of the client's persistent cache index
 * (client/cache.c) on a real LMDB environment in a temp directory.
 */
#include "client/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fsutil.h"

#define MIB (1ull << 20)

struct fixture {
	char dir[64];
	struct cache *c;
};

static struct fid mkfid(uint32_t vol, uint8_t n)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = vol;
	f.oid[0] = 0xa5;
	f.oid[OID_LEN - 1] = n;
	return f;
}

/* Puts an entry with data of size bytes (container written too). */
static void put_file(struct cache *c, const struct fid *f, uint64_t size, uint64_t last_use,
		     bool dirty)
{
	struct cache_ent e;
	int fd;

	memset(&e, 0, sizeof(e));
	e.fid = *f;
	e.data_version = 7;
	e.size = size;
	e.has_data = true;
	e.dirty = dirty;
	e.last_use = last_use;
	e.attr.mode = S_IFREG | 0644;
	e.attr.size = size;
	e.attr.mtime.sec = 1234;
	e.attr.mtime.nsec = 5678;
	e.attr.data_version = 7;
	fd = cache_open_container(c, f, O_RDWR | O_CREAT | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	assert_int_equal(cache_put(c, &e), 0);
}

static bool container_exists(struct cache *c, const struct fid *f)
{
	char path[4096];

	assert_int_equal(cache_container_path(c, f, path, sizeof(path)), 0);
	return access(path, F_OK) == 0;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_cache.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	if (cache_open(fx->dir, 10 * MIB, &fx->c) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	cache_close(fx->c);
	fs_rmtree(fx->dir);
	free(fx);
	return 0;
}

static void test_put_get(void **state)
{
	struct fixture *fx = *state;
	struct fid f = mkfid(1, 1), g = mkfid(2, 1);
	struct cache_ent e;
	struct cache_stats st;

	assert_int_equal(cache_get(fx->c, &f, &e), -ENOENT);
	put_file(fx->c, &f, 1000, 42, false);
	assert_int_equal(cache_get(fx->c, &f, &e), 0);
	assert_true(e.has_data);
	assert_false(e.dirty);
	assert_int_equal(e.size, 1000);
	assert_int_equal(e.data_version, 7);
	assert_int_equal(e.last_use, 42);
	assert_int_equal(e.attr.mode, S_IFREG | 0644);
	assert_int_equal(e.attr.mtime.nsec, 5678);
	assert_memory_equal(&e.fid, &f, sizeof(f));
	/* Same oid in another volume is another object. */
	assert_int_equal(cache_get(fx->c, &g, &e), -ENOENT);
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.bytes_used, 1000);
	assert_int_equal(st.bytes_limit, 10 * MIB);
	/* Replacing an entry replaces its accounting. */
	put_file(fx->c, &f, 3000, 43, true);
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.bytes_used, 3000);
	assert_int_equal(st.dirty, 1);
}

static void test_del(void **state)
{
	struct fixture *fx = *state;
	struct fid f = mkfid(1, 2);
	struct cache_ent e;
	struct cache_stats st;

	put_file(fx->c, &f, 500, 1, false);
	assert_true(container_exists(fx->c, &f));
	assert_int_equal(cache_del(fx->c, &f), 0);
	assert_int_equal(cache_get(fx->c, &f, &e), -ENOENT);
	assert_false(container_exists(fx->c, &f));
	assert_int_equal(cache_del(fx->c, &f), 0); /* absent: still fine */
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.files, 0);
	assert_int_equal(st.bytes_used, 0);
}

static void test_evict_lru(void **state)
{
	struct fixture *fx = *state;
	struct fid f[5];
	struct cache_ent e;
	struct cache_stats st;

	/* 5 x 3 MiB with a 10 MiB limit; oldest first. */
	for (uint8_t i = 0; i < 5; i++) {
		f[i] = mkfid(1, (uint8_t)(10 + i));
		put_file(fx->c, &f[i], 3 * MIB, 100 + i, false);
	}
	assert_int_equal(cache_make_room(fx->c, 0), 2);
	cache_get_stats(fx->c, &st);
	assert_true(st.bytes_used <= 10 * MIB);
	assert_int_equal(cache_get(fx->c, &f[0], &e), -ENOENT);
	assert_int_equal(cache_get(fx->c, &f[1], &e), -ENOENT);
	assert_false(container_exists(fx->c, &f[0]));
	for (int i = 2; i < 5; i++)
		assert_int_equal(cache_get(fx->c, &f[i], &e), 0);
	/* Touching makes an entry recent: f[3] survives, f[2] and f[4] go. */
	assert_int_equal(cache_touch(fx->c, &f[3]), 0);
	assert_int_equal(cache_make_room(fx->c, 7 * MIB), 2);
	assert_int_equal(cache_get(fx->c, &f[3], &e), 0);
	assert_int_equal(cache_get(fx->c, &f[2], &e), -ENOENT);
	assert_int_equal(cache_get(fx->c, &f[4], &e), -ENOENT);
}

static void test_never_evict_dirty_or_pinned(void **state)
{
	struct fixture *fx = *state;
	struct fid dirty = mkfid(1, 20), pinned = mkfid(1, 21), plain = mkfid(1, 22);
	struct cache_ent e;

	put_file(fx->c, &dirty, 4 * MIB, 1, true);
	put_file(fx->c, &pinned, 4 * MIB, 2, false);
	put_file(fx->c, &plain, 4 * MIB, 3, false);
	cache_pin(fx->c, &pinned);
	cache_pin(fx->c, &pinned);
	assert_true(cache_pinned(fx->c, &pinned));
	/* Ask for far more than can be freed: only the plain one goes. */
	assert_int_equal(cache_make_room(fx->c, 100 * MIB), 1);
	assert_int_equal(cache_get(fx->c, &plain, &e), -ENOENT);
	assert_int_equal(cache_get(fx->c, &dirty, &e), 0);
	assert_int_equal(cache_get(fx->c, &pinned, &e), 0);
	assert_true(container_exists(fx->c, &dirty));
	assert_true(container_exists(fx->c, &pinned));
	assert_int_equal(cache_drop_data(fx->c, &dirty), -EBUSY);
	assert_int_equal(cache_drop_data(fx->c, &pinned), -EBUSY);
	/* Still pinned after one unpin of two. */
	cache_unpin(fx->c, &pinned);
	assert_int_equal(cache_make_room(fx->c, 100 * MIB), 0);
	cache_unpin(fx->c, &pinned);
	assert_false(cache_pinned(fx->c, &pinned));
	assert_int_equal(cache_make_room(fx->c, 100 * MIB), 1);
	assert_int_equal(cache_get(fx->c, &pinned, &e), -ENOENT);
	assert_int_equal(cache_get(fx->c, &dirty, &e), 0);
}

static void test_persistence(void **state)
{
	struct fixture *fx = *state;
	struct fid a = mkfid(3, 1), b = mkfid(3, 2);
	struct cache_ent e;
	struct cache_stats st;

	put_file(fx->c, &a, 2 * MIB, 5, false);
	put_file(fx->c, &b, 1 * MIB, 6, true);
	cache_close(fx->c);
	fx->c = NULL;
	assert_int_equal(cache_open(fx->dir, 10 * MIB, &fx->c), 0);
	assert_int_equal(cache_get(fx->c, &a, &e), 0);
	assert_int_equal(e.size, 2 * MIB);
	assert_int_equal(e.data_version, 7);
	assert_false(e.dirty);
	assert_int_equal(cache_get(fx->c, &b, &e), 0);
	assert_true(e.dirty);
	assert_true(container_exists(fx->c, &a));
	/* Accounting is rebuilt from the index. */
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.dirty, 1);
	assert_int_equal(st.bytes_used, 3 * MIB);
	/* Pins are in memory only and do not survive. */
	assert_false(cache_pinned(fx->c, &a));
}

/* A child opens the cache, writes an entry in the given mode and dies
 * without closing (a crash); then a "reboot" is simulated by giving a boot
 * mark left behind another boot id. Returns whether the entry survived the
 * next open. */
static bool survives_crash_and_reboot(const char *dir, bool durable)
{
	struct fid f = mkfid(9, 9);
	struct cache_ent e;
	struct cache *c;
	char mark[4096];
	bool kept;
	pid_t pid;
	int st;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (cache_open(dir, 10 * MIB, &c) != 0 || cache_set_durable(c, durable) != 0)
			_exit(1);
		put_file(c, &f, 100, 1, true);
		_exit(0); /* no cache_close: the process dies with the env open */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(mark, sizeof(mark), "%s/index.boot", dir);
	/* Fast mode leaves the mark; durable mode must not. */
	assert_int_equal(access(mark, F_OK) == 0, !durable);
	if (!durable)
		assert_int_equal(fs_write_atomic(mark, "another-boot", 12, 0600), 0);
	assert_int_equal(cache_open(dir, 10 * MIB, &c), 0);
	kept = cache_get(c, &f, &e) == 0 && e.dirty;
	cache_close(c);
	return kept;
}

static void test_durable_mode_survives_reboot(void **state)
{
	struct fixture *fx = *state;

	cache_close(fx->c);
	fx->c = NULL;
	/* Durable mode: what the client alone holds is still there. */
	assert_true(survives_crash_and_reboot(fx->dir, true));
	/* Fast mode: a possibly torn index is discarded after a reboot. */
	assert_false(survives_crash_and_reboot(fx->dir, false));
	assert_int_equal(cache_open(fx->dir, 10 * MIB, &fx->c), 0);
}

static void test_entry_without_data_not_counted(void **state)
{
	struct fixture *fx = *state;
	struct fid f = mkfid(1, 30);
	struct cache_ent e;
	struct cache_stats st;

	memset(&e, 0, sizeof(e));
	e.fid = f;
	e.size = 5 * MIB; /* a fetch in progress: no data yet */
	assert_int_equal(cache_put(fx->c, &e), 0);
	cache_get_stats(fx->c, &st);
	assert_int_equal(st.bytes_used, 0);
	assert_int_equal(st.files, 1);
	assert_int_equal(cache_make_room(fx->c, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_lru, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_evict_dirty_or_pinned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_durable_mode_survives_reboot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_without_data_not_counted, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
