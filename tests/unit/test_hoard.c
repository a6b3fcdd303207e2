/*
 * test_hoard.c - unit tests of hoarding's pure parts: hoard paths and
 * records (client/hoard.c), the client state record decoder
 * (client/cstate.c), and eviction by hoard priority (client/cache.c, on a
 * real LMDB environment in a temp directory).
 */
#include "client/hoard.h"

#include <errno.h>
#include <fcntl.h>
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
#include "client/cstate.h"
#include "common/fsutil.h"
#include "common/wire.h"

#define MIB (1ull << 20)

/* Writes a seed of tests/fuzz/fuzz_client_state.c (when run from the top
 * of the tree, where the corpus directory is). */
static void write_seed(const char *name, const void *p, size_t len)
{
	const char *dir = "tests/fuzz/corpus/fuzz_client_state";
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

static void test_path_norm(void **state)
{
	char out[HOARD_PATH_MAX + 1];

	(void)state;
	assert_int_equal(hoard_path_norm("local", "local/a/b", out, sizeof(out)), 0);
	assert_string_equal(out, "a/b");
	assert_int_equal(hoard_path_norm("local", "//local//a/./b/", out, sizeof(out)), 0);
	assert_string_equal(out, "a/b");
	assert_int_equal(hoard_path_norm("local", "local", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(hoard_path_norm("local", "local/", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(hoard_path_norm("local", "other/a", out, sizeof(out)), -EINVAL);
	assert_int_equal(hoard_path_norm("local", "localx/a", out, sizeof(out)), -EINVAL);
	assert_int_equal(hoard_path_norm("local", "local/a/../b", out, sizeof(out)), -EINVAL);
	assert_int_equal(hoard_path_norm("local", "", out, sizeof(out)), -EINVAL);
	assert_int_equal(hoard_path_norm("local", "/", out, sizeof(out)), -EINVAL);
	assert_int_equal(hoard_path_norm("local", "local/abc", out, 3), -ENAMETOOLONG);
	assert_int_equal(hoard_path_norm("local", "local/ab", out, 3), 0);
	assert_string_equal(out, "ab");
	{
		char longname[300];

		memset(longname, 'n', sizeof(longname));
		memcpy(longname, "local/", 6);
		longname[sizeof(longname) - 1] = '\0';
		assert_int_equal(hoard_path_norm("local", longname, out, sizeof(out)),
				 -ENAMETOOLONG);
	}
}

static void rec(struct wr *w, uint32_t magic, uint16_t version, uint32_t pri, uint32_t flags,
		uint32_t uid)
{
	wr_init(w);
	wr_u32(w, magic);
	wr_u16(w, version);
	wr_u32(w, pri);
	wr_u32(w, flags);
	wr_u32(w, uid);
}

static void test_rec_decode(void **state)
{
	struct hoard_ent e;
	struct wr w;

	(void)state;
	rec(&w, 0x31484345u, 1, 700, HOARD_DESCENDANTS, 1000);
	write_seed("hoard_entry", w.buf, w.len);
	assert_int_equal(hoard_rec_decode(w.buf, w.len, &e), 0);
	assert_int_equal(e.pri, 700);
	assert_int_equal(e.flags, HOARD_DESCENDANTS);
	assert_int_equal(e.uid, 1000);
	/* Every truncation point, and a trailing byte. */
	for (size_t n = 0; n < w.len; n++)
		assert_int_equal(hoard_rec_decode(w.buf, n, &e), -EIO);
	wr_u8(&w, 0);
	assert_int_equal(hoard_rec_decode(w.buf, w.len, &e), -EIO);
	wr_release(&w);
	/* Wrong magic, unknown version, priorities and flags out of range. */
	rec(&w, 0x31484346u, 1, 10, 0, 0);
	assert_int_equal(hoard_rec_decode(w.buf, w.len, &e), -EIO);
	wr_release(&w);
	rec(&w, 0x31484345u, 2, 10, 0, 0);
	assert_int_equal(hoard_rec_decode(w.buf, w.len, &e), -EIO);
	wr_release(&w);
	rec(&w, 0x31484345u, 1, 0, 0, 0);
	assert_int_equal(hoard_rec_decode(w.buf, w.len, &e), -EIO);
	wr_release(&w);
	rec(&w, 0x31484345u, 1, HOARD_PRI_MAX + 1, 0, 0);
	assert_int_equal(hoard_rec_decode(w.buf, w.len, &e), -EIO);
	wr_release(&w);
	rec(&w, 0x31484345u, 1, 5, 4, 0);
	assert_int_equal(hoard_rec_decode(w.buf, w.len, &e), -EIO);
	wr_release(&w);
}

/* A state record for a directory with n entries named e0.. (no target). */
static void obj_rec(struct wr *w, uint32_t n, uint8_t vv_n)
{
	wr_init(w);
	wr_u32(w, 0x31534345u);
	wr_u16(w, 1);
	wr_u32(w, 1); /* vol */
	for (int i = 0; i < OID_LEN; i++)
		wr_u8(w, (uint8_t)i);
	wr_u32(w, S_IFDIR | 0755);
	wr_u32(w, 2);
	wr_u32(w, 0);
	wr_u32(w, 0);
	wr_u64(w, 0);
	wr_u64(w, 4096);
	wr_u64(w, 8);
	for (int i = 0; i < 3; i++) {
		wr_i64(w, 1700000000);
		wr_u32(w, 5);
	}
	wr_u64(w, 42); /* data_version */
	wr_u8(w, vv_n);
	for (uint8_t i = 0; i < vv_n; i++)
		wr_u32(w, 3);
	wr_u64(w, 0x1234);
	wr_u64(w, 9);
	wr_u32(w, 0);
	wr_u8(w, 1); /* listing */
	wr_u32(w, n);
	for (uint32_t i = 0; i < n; i++) {
		struct dirent_w d;

		memset(&d, 0, sizeof(d));
		snprintf(d.name, sizeof(d.name), "e%u", i);
		d.fid.vol = 1;
		d.fid.oid[0] = (uint8_t)i;
		d.mode = S_IFREG | 0644;
		dirent_encode(w, &d);
	}
}

static void test_state_decode(void **state)
{
	struct attr a;
	struct dirent_w *ents;
	size_t n;
	char *target;
	struct wr w;

	(void)state;
	obj_rec(&w, 3, 2);
	write_seed("state_dir", w.buf, w.len);
	assert_int_equal(cstate_obj_decode(w.buf, w.len, &a, &ents, &n, &target), 0);
	assert_int_equal(a.fid.vol, 1);
	assert_int_equal(a.fid.oid[15], 15);
	assert_true(S_ISDIR(a.mode));
	assert_int_equal(a.data_version, 42);
	assert_int_equal(a.vv.n, 2);
	assert_int_equal(a.vv.slot[1], 3);
	assert_int_equal(a.sid.client, 0x1234);
	assert_int_equal(n, 3);
	assert_string_equal(ents[2].name, "e2");
	assert_null(target);
	free(ents);
	for (size_t k = 0; k < w.len; k++) {
		assert_int_equal(cstate_obj_decode(w.buf, k, &a, &ents, &n, &target), -EIO);
		assert_null(ents);
		assert_null(target);
	}
	wr_u8(&w, 0);
	assert_int_equal(cstate_obj_decode(w.buf, w.len, &a, &ents, &n, &target), -EIO);
	wr_release(&w);
	/* A count larger than the bytes, and a vv too long. */
	obj_rec(&w, 0, 2);
	w.buf[w.len - 4] = 0xff;
	assert_int_equal(cstate_obj_decode(w.buf, w.len, &a, &ents, &n, &target), -EIO);
	wr_release(&w);
	obj_rec(&w, 0, VV_MAX + 1);
	assert_int_equal(cstate_obj_decode(w.buf, w.len, &a, &ents, &n, &target), -EIO);
	wr_release(&w);
}

/* The forced-state record (cstate_save_forced): both states round-trip,
 * and a truncated, extended, unknown-state or unknown-version record is
 * refused. */
static void test_force_decode(void **state)
{
	static const enum vol_force fs[] = { VF_DISCONNECT, VF_WEAK };
	enum vol_force f;
	struct wr w;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		wr_init(&w);
		cstate_force_encode(&w, fs[i]);
		write_seed(i == 0 ? "state_force_disconnect" : "state_force_weak", w.buf, w.len);
		assert_int_equal(cstate_force_decode(w.buf, w.len, &f), 0);
		assert_int_equal(f, fs[i]);
		for (size_t k = 0; k < w.len; k++) {
			assert_int_equal(cstate_force_decode(w.buf, k, &f), -EIO);
			assert_int_equal(f, VF_NONE);
		}
		wr_u8(&w, 0);
		assert_int_equal(cstate_force_decode(w.buf, w.len, &f), -EIO);
		wr_release(&w);
	}
	wr_init(&w);
	cstate_force_encode(&w, VF_NONE);
	assert_int_equal(cstate_force_decode(w.buf, w.len, &f), -EIO);
	w.buf[w.len - 1] = 3;
	assert_int_equal(cstate_force_decode(w.buf, w.len, &f), -EIO);
	w.buf[w.len - 1] = VF_WEAK;
	w.buf[4] ^= 0xff; /* the header's version */
	assert_int_equal(cstate_force_decode(w.buf, w.len, &f), -EIO);
	wr_release(&w);
}

struct fixture {
	char dir[64];
	struct cache *c;
};

static struct fid mkfid(uint8_t n)
{
	struct fid f;

	memset(&f, 0, sizeof(f));
	f.vol = 1;
	f.oid[0] = 0x5a;
	f.oid[OID_LEN - 1] = n;
	return f;
}

static void put_file(struct cache *c, const struct fid *f, uint64_t size, uint64_t last_use,
		     uint32_t pri)
{
	struct cache_ent e;
	int fd;

	memset(&e, 0, sizeof(e));
	e.fid = *f;
	e.data_version = 3;
	e.size = size;
	e.has_data = true;
	e.last_use = last_use;
	e.hoard_pri = pri;
	e.attr.mode = S_IFREG | 0644;
	e.attr.size = size;
	fd = cache_open_container(c, f, O_RDWR | O_CREAT | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	assert_int_equal(cache_put(c, &e), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_hoard.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	if (cache_open(fx->dir, 4 * MIB, &fx->c) != 0)
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

static bool cached(struct cache *c, uint8_t n)
{
	struct fid f = mkfid(n);
	struct cache_ent e;

	return cache_get(c, &f, &e) == 0 && e.has_data;
}

static bool keep_3(void *arg, const struct fid *fid)
{
	(void)arg;
	return fid->oid[OID_LEN - 1] == 3;
}

static int count_cb(void *arg, const struct fid *fid)
{
	(void)fid;
	(*(int *)arg)++;
	return 0;
}

static void test_eviction_by_priority(void **state)
{
	struct fixture *fx = *state;
	struct fid f;
	struct cache_ent e;
	int n = 0;

	/* 1: oldest, priority 500; 2: priority 0; 3: priority 0, kept by the
	 * hook; 4: newest, priority 10. */
	f = mkfid(1);
	put_file(fx->c, &f, MIB, 100, 500);
	f = mkfid(2);
	put_file(fx->c, &f, MIB, 300, 0);
	f = mkfid(3);
	put_file(fx->c, &f, MIB, 200, 0);
	f = mkfid(4);
	put_file(fx->c, &f, MIB, 400, 10);
	cache_set_keep(fx->c, keep_3, NULL);
	assert_int_equal(cache_hoard_foreach(fx->c, count_cb, &n), 0);
	assert_int_equal(n, 2);
	/* A put with priority 0 keeps the stored one; only set_hoard changes it. */
	f = mkfid(1);
	assert_int_equal(cache_get(fx->c, &f, &e), 0);
	e.hoard_pri = 0;
	e.last_use = 100;
	assert_int_equal(cache_put(fx->c, &e), 0);
	assert_int_equal(cache_get(fx->c, &f, &e), 0);
	assert_int_equal(e.hoard_pri, 500);

	/* Lowest priority first (2; 3 is kept), then priority 10, never 500. */
	assert_int_equal(cache_make_room(fx->c, MIB), 1);
	assert_false(cached(fx->c, 2));
	assert_true(cached(fx->c, 1) && cached(fx->c, 3) && cached(fx->c, 4));
	assert_int_equal(cache_make_room(fx->c, 2 * MIB), 1);
	assert_false(cached(fx->c, 4));
	assert_true(cached(fx->c, 1) && cached(fx->c, 3));
	/* Clearing the priority makes the last-used order count again. */
	f = mkfid(1);
	assert_int_equal(cache_set_hoard(fx->c, &f, 0), 0);
	assert_int_equal(cache_make_room(fx->c, 3 * MIB), 1);
	assert_false(cached(fx->c, 1));
	assert_true(cached(fx->c, 3));
	f = mkfid(9);
	assert_int_equal(cache_set_hoard(fx->c, &f, 5), -ENOENT);
	cache_set_keep(fx->c, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_norm),
		cmocka_unit_test(test_rec_decode),
		cmocka_unit_test(test_state_decode),
		cmocka_unit_test(test_force_decode),
		cmocka_unit_test_setup_teardown(test_eviction_by_priority, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
