/*
 * test_meta.c - unit tests of server/meta.c on a real LMDB env in a temp
 * dir: vnode and dirent put/get/delete, directory scans with cookies,
 * nested transactions, record magic/version/length rejection.
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

#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "server/meta.h"

struct fx {
	char dir[64];
	struct meta *m;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_meta.XXXXXX");
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

static void sample_vnode(struct vnode *v, uint32_t vol, uint8_t tag)
{
	memset(v, 0, sizeof(*v));
	v->fid.vol = vol;
	memset(v->fid.oid, tag, OID_LEN);
	v->mode = S_IFLNK | 0777;
	v->nlink = 1;
	v->uid = 1000;
	v->gid = 100;
	v->size = 6;
	v->mtime.sec = 1700000000;
	v->mtime.nsec = 123456789;
	v->data_version = 42;
	v->vv.n = 3;
	v->vv.slot[0] = 7;
	v->vv.slot[2] = 9;
	v->sid.client = 0xabcdef;
	v->sid.seq = 17;
	memset(v->parent, 0x55, OID_LEN);
	snprintf(v->target, sizeof(v->target), "target");
}

static void test_vnode_roundtrip(void **state)
{
	struct fx *f = *state;
	struct meta_txn *t;
	struct vnode v, out;

	sample_vnode(&v, 5, 0x11);
	assert_int_equal(meta_begin(f->m, NULL, false, &t), 0);
	assert_int_equal(meta_vnode_get(t, &v.fid, &out), -ENOENT);
	assert_int_equal(meta_vnode_put(t, &v), 0);
	assert_int_equal(meta_commit(t), 0);

	assert_int_equal(meta_begin(f->m, NULL, true, &t), 0);
	assert_int_equal(meta_vnode_get(t, &v.fid, &out), 0);
	assert_memory_equal(&v, &out, sizeof(v));
	meta_abort(t);

	assert_int_equal(meta_begin(f->m, NULL, false, &t), 0);
	assert_int_equal(meta_vnode_del(t, &v.fid), 0);
	assert_int_equal(meta_vnode_get(t, &v.fid, &out), -ENOENT);
	assert_int_equal(meta_vnode_del(t, &v.fid), -ENOENT);
	meta_abort(t);
}

static void test_nested_abort(void **state)
{
	struct fx *f = *state;
	struct meta_txn *t, *c;
	struct vnode v, out;

	sample_vnode(&v, 1, 0x22);
	assert_int_equal(meta_begin(f->m, NULL, false, &t), 0);
	assert_int_equal(meta_begin(f->m, t, false, &c), 0);
	assert_int_equal(meta_vnode_put(c, &v), 0);
	meta_abort(c);
	assert_int_equal(meta_vnode_get(t, &v.fid, &out), -ENOENT);
	assert_int_equal(meta_begin(f->m, t, false, &c), 0);
	assert_int_equal(meta_vnode_put(c, &v), 0);
	assert_int_equal(meta_commit(c), 0);
	assert_int_equal(meta_vnode_get(t, &v.fid, &out), 0);
	meta_abort(t);
}

struct collect {
	char names[64][NAME_MAX_LEN + 1];
	size_t n, stop_at;
};

static int collect_fn(void *arg, const char *name, const struct dent *d)
{
	struct collect *c = arg;
	(void)d;
	if (c->n == c->stop_at)
		return 1;
	snprintf(c->names[c->n++], NAME_MAX_LEN + 1, "%s", name);
	return 0;
}

static void test_dirents_scan(void **state)
{
	struct fx *f = *state;
	struct meta_txn *t;
	struct fid d1 = { .vol = 1 }, d2 = { .vol = 1 }, d0 = { .vol = 1 };
	struct dent de = { .type = S_IFREG }, out;
	static const char *names[] = { "b", "a", "ab", "z", "\xff\xfe" };
	struct collect c;

	memset(d0.oid, 0x10, OID_LEN);
	memset(d1.oid, 0x11, OID_LEN);
	memset(d2.oid, 0x12, OID_LEN);
	assert_int_equal(meta_begin(f->m, NULL, false, &t), 0);
	assert_int_equal(meta_dir_empty(t, &d1), 1);
	for (size_t i = 0; i < 5; i++) {
		de.oid[0] = (uint8_t)i;
		assert_int_equal(meta_dirent_put(t, &d1, names[i], &de), 0);
	}
	/* Neighbours on both sides must not leak into d1's scan. */
	assert_int_equal(meta_dirent_put(t, &d0, "zz", &de), 0);
	assert_int_equal(meta_dirent_put(t, &d2, "0", &de), 0);
	assert_int_equal(meta_dir_empty(t, &d1), 0);
	assert_int_equal(meta_dirent_get(t, &d1, "ab", &out), 0);
	assert_int_equal(out.oid[0], 2);
	assert_int_equal(out.type, S_IFREG);
	assert_int_equal(meta_dirent_get(t, &d1, "abc", &out), -ENOENT);

	memset(&c, 0, sizeof(c));
	c.stop_at = 100;
	assert_int_equal(meta_dir_scan(t, &d1, "", collect_fn, &c), 0);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.names[0], "a");
	assert_string_equal(c.names[1], "ab");
	assert_string_equal(c.names[2], "b");
	assert_string_equal(c.names[3], "z");
	assert_string_equal(c.names[4], "\xff\xfe");

	/* Resume after a cookie, and after a cookie that no longer exists. */
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	assert_int_equal(meta_dir_scan(t, &d1, "ab", collect_fn, &c), 1);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.names[0], "b");
	assert_string_equal(c.names[1], "z");
	memset(&c, 0, sizeof(c));
	c.stop_at = 100;
	assert_int_equal(meta_dir_scan(t, &d1, "aa", collect_fn, &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.names[0], "ab");

	assert_int_equal(meta_dirent_del(t, &d1, "a"), 0);
	assert_int_equal(meta_dirent_del(t, &d1, "a"), -ENOENT);
	meta_abort(t);
}

static void test_info_volume(void **state)
{
	struct fx *f = *state;
	struct meta_txn *t;
	struct srvinfo si = { .server_id = 3, .incarnation = 9, .root_vol = 1 }, so;
	struct volrec vr = { .vol = 1, .stamp = 5, .n_objects = 10 }, vo;
	uint64_t total;

	snprintf(si.realm, sizeof(si.realm), "example.org");
	snprintf(vr.name, sizeof(vr.name), "root");
	assert_int_equal(meta_begin(f->m, NULL, false, &t), 0);
	assert_int_equal(meta_info_get(t, &so), -ENOENT);
	assert_int_equal(meta_info_put(t, &si), 0);
	assert_int_equal(meta_info_get(t, &so), 0);
	assert_memory_equal(&si, &so, sizeof(si));
	assert_int_equal(meta_volume_put(t, &vr), 0);
	vr.vol = 2;
	vr.n_objects = 5;
	assert_int_equal(meta_volume_put(t, &vr), 0);
	assert_int_equal(meta_volume_get(t, 2, &vo), 0);
	assert_memory_equal(&vr, &vo, sizeof(vr));
	assert_int_equal(meta_volume_get(t, 3, &vo), -ENOENT);
	assert_int_equal(meta_objects_total(t, &total), 0);
	assert_int_equal(total, 15);
	meta_abort(t);
}

static void test_record_rejection(void **state)
{
	struct vnode v, out;
	struct dent d = { .type = S_IFDIR }, dout;
	uint8_t buf[VNODE_REC_MAX];
	size_t len;

	(void)state;
	sample_vnode(&v, 1, 0x33);
	len = vnode_encode(&v, buf, sizeof(buf));
	assert_int_equal(vnode_decode(buf, len, &v.fid, &out), 0);
	/* Every truncation fails. */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(vnode_decode(buf, i, &v.fid, &out), -EIO);
	/* Trailing bytes fail. */
	buf[len] = 0;
	assert_int_equal(vnode_decode(buf, len + 1, &v.fid, &out), -EIO);
	/* Wrong magic, unknown version. */
	buf[0] ^= 1;
	assert_int_equal(vnode_decode(buf, len, &v.fid, &out), -EIO);
	buf[0] ^= 1;
	buf[4] = 2;
	assert_int_equal(vnode_decode(buf, len, &v.fid, &out), -EIO);
	buf[4] = 1;
	/* vv.n beyond VV_MAX. */
	buf[84] = VV_MAX + 1;
	assert_int_equal(vnode_decode(buf, len, &v.fid, &out), -EIO);

	len = dent_encode(&d, buf, sizeof(buf));
	assert_int_equal(dent_decode(buf, len, &dout), 0);
	assert_int_equal(dout.type, S_IFDIR);
	assert_int_equal(dent_decode(buf, len - 1, &dout), -EIO);
	buf[5] = 7; /* version high byte */
	assert_int_equal(dent_decode(buf, len, &dout), -EIO);
	/* A vnode record is not a dirent. */
	len = vnode_encode(&v, buf, sizeof(buf));
	assert_int_equal(dent_decode(buf, len, &dout), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vnode_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirents_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_info_volume, setup, teardown),
		cmocka_unit_test(test_record_rejection),
	};
	log_init("test_meta", LOG_CRIT, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
