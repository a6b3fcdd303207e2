/*
 * test_fsutil.c - unit tests of common/fsutil.c on a real temp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/encore-test-fsutil.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	return fs_rmtree(tmpdir);
}

static void path_of(char *out, size_t len, const char *rel)
{
	snprintf(out, len, "%s/%s", tmpdir, rel);
}

static void test_mkdirs(void **state)
{
	(void)state;
	char p[512];
	struct stat st;

	path_of(p, sizeof(p), "a/b//c/");
	assert_int_equal(fs_mkdirs(p, 0755), 0);
	path_of(p, sizeof(p), "a/b/c");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(fs_mkdirs(p, 0755), 0); /* idempotent */
	assert_int_equal(fs_fsync_dir(p), 0);
	assert_int_equal(fs_fsync_parent(p), 0);

	path_of(p, sizeof(p), "file");
	assert_int_equal(fs_write_atomic(p, "x", 1, 0644), 0);
	path_of(p, sizeof(p), "file/sub");
	assert_int_equal(fs_mkdirs(p, 0755), -ENOTDIR);
	assert_int_equal(fs_mkdirs("", 0755), -EINVAL);
	path_of(p, sizeof(p), "nope");
	assert_int_equal(fs_fsync_dir(p), -ENOENT);
}

static void test_write_read(void **state)
{
	(void)state;
	char p[512];
	char *data;
	size_t len;
	struct stat st;

	path_of(p, sizeof(p), "f1");
	assert_int_equal(fs_write_atomic(p, "hello world", 11, 0600), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(fs_read_file(p, 100, &data, &len), 0);
	assert_int_equal(len, 11);
	assert_string_equal(data, "hello world");
	free(data);
	/* exactly at the limit, and one below */
	assert_int_equal(fs_read_file(p, 11, &data, &len), 0);
	assert_string_equal(data, "hello world");
	free(data);
	assert_int_equal(fs_read_file(p, 10, &data, &len), -EFBIG);
	assert_null(data);
	/* replace */
	assert_int_equal(fs_write_atomic(p, "", 0, 0644), 0);
	assert_int_equal(fs_read_file(p, 0, &data, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);
	/* a large file read grows its buffer */
	size_t big = 100000;
	char *buf = malloc(big);
	for (size_t i = 0; i < big; i++)
		buf[i] = (char)('a' + i % 26);
	assert_int_equal(fs_write_atomic(p, buf, big, 0644), 0);
	assert_int_equal(fs_read_file(p, big, &data, &len), 0);
	assert_int_equal(len, big);
	assert_memory_equal(data, buf, big);
	free(data);
	free(buf);
	/* no temporary files left behind */
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", p, (long)getpid());
	assert_int_equal(access(tmp, F_OK), -1);

	path_of(p, sizeof(p), "missing");
	assert_int_equal(fs_read_file(p, 10, &data, &len), -ENOENT);
	path_of(p, sizeof(p), "nodir/f");
	assert_int_equal(fs_write_atomic(p, "x", 1, 0644), -ENOENT);
}

static void test_pread_pwrite(void **state)
{
	(void)state;
	char p[512], buf[16];
	int fd;

	path_of(p, sizeof(p), "pw");
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fs_pwrite_all(fd, "abcdef", 6, 4), 0);
	memset(buf, 'z', sizeof(buf));
	assert_int_equal(fs_pread_all(fd, buf, sizeof(buf), 0), 10);
	assert_memory_equal(buf, "\0\0\0\0abcdef", 10);
	assert_int_equal(fs_pread_all(fd, buf, 4, 8), 2);
	assert_memory_equal(buf, "ef", 2);
	assert_int_equal(fs_pread_all(fd, buf, 4, 100), 0);
	close(fd);
	assert_int_equal(fs_pwrite_all(fd, "x", 1, 0), -EBADF);
	assert_int_equal(fs_pread_all(fd, buf, 1, 0), -EBADF);
}

static void test_rmtree(void **state)
{
	(void)state;
	char p[512], q[512];

	path_of(p, sizeof(p), "t/x/y");
	assert_int_equal(fs_mkdirs(p, 0755), 0);
	path_of(q, sizeof(q), "t/x/y/f");
	assert_int_equal(fs_write_atomic(q, "1", 1, 0644), 0);
	path_of(q, sizeof(q), "t/link");
	assert_int_equal(symlink(tmpdir, q), 0); /* must not be followed */
	path_of(p, sizeof(p), "t");
	assert_int_equal(fs_rmtree(p), 0);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(access(tmpdir, F_OK), 0);
	assert_int_equal(fs_rmtree(p), 0); /* already gone */
	path_of(p, sizeof(p), "single");
	assert_int_equal(fs_write_atomic(p, "1", 1, 0644), 0);
	assert_int_equal(fs_rmtree(p), 0);
	assert_int_equal(access(p, F_OK), -1);
}

static void test_now(void **state)
{
	(void)state;
	uint64_t a = now_ns(), b = now_ns();
	assert_true(a > 0);
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mkdirs),	     cmocka_unit_test(test_write_read),
		cmocka_unit_test(test_pread_pwrite), cmocka_unit_test(test_rmtree),
		cmocka_unit_test(test_now),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
