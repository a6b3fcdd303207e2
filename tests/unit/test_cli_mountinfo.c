/*
 * test_cli_mountinfo.c - unit tests of the mountinfo parser in
 * cli/ctl_client.c, which `encore` uses to find a client's control socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl_client.h"

static struct ctl_mount m;

static void test_encore_mount(void **state)
{
	(void)state;
	assert_int_equal(
		ctl_mountinfo_parse("53 27 0:45 / /tmp/x/mnt rw,nosuid,nodev,relatime shared:1 - "
				    "fuse.encore encore:/tmp/x/client1/cache/ctl.sock "
				    "rw,user_id=0,group_id=0,default_permissions,allow_other\n",
				    &m),
		0);
	assert_int_equal(m.major, 0);
	assert_int_equal(m.minor, 45);
	assert_string_equal(m.mount_point, "/tmp/x/mnt");
	assert_string_equal(m.fstype, "fuse.encore");
	assert_string_equal(m.source, "encore:/tmp/x/client1/cache/ctl.sock");
	assert_non_null(ctl_mount_socket(&m));
	assert_string_equal(ctl_mount_socket(&m), "/tmp/x/client1/cache/ctl.sock");
}

static void test_escapes(void **state)
{
	(void)state;
	/* Space, tab, newline and backslash are written as octal escapes. */
	assert_int_equal(
		ctl_mountinfo_parse("60 27 0:50 / /tmp/my\\040dir/m\\011nt\\134x rw - "
				    "fuse.encore encore:/tmp/my\\040dir/c\\012/ctl.sock rw",
				    &m),
		0);
	assert_string_equal(m.mount_point, "/tmp/my dir/m\tnt\\x");
	assert_string_equal(ctl_mount_socket(&m), "/tmp/my dir/c\n/ctl.sock");
}

static void test_optional_fields(void **state)
{
	(void)state;
	/* None. */
	assert_int_equal(ctl_mountinfo_parse("42 27 0:39 / /tmp/t1/mnt rw,relatime - tmpfs "
					     "encore:/x rw",
					     &m),
			 0);
	assert_string_equal(m.fstype, "tmpfs");
	/* Not fuse.encore: no socket even with an encore: source. */
	assert_null(ctl_mount_socket(&m));
	/* Several. */
	assert_int_equal(ctl_mountinfo_parse("36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 "
					     "shared:7 propagate_from:2 unbindable - ext3 "
					     "/dev/root rw,errors=continue",
					     &m),
			 0);
	assert_int_equal(m.major, 98);
	assert_int_equal(m.minor, 0);
	assert_string_equal(m.mount_point, "/mnt/parent");
	assert_string_equal(m.source, "/dev/root");
	assert_null(ctl_mount_socket(&m));
}

static void test_not_encore_source(void **state)
{
	(void)state;
	/* Empty source. */
	assert_int_equal(
		ctl_mountinfo_parse("70 27 0:55 / /mnt rw - fuse.encore  rw,user_id=0", &m), 0);
	assert_string_equal(m.source, "");
	assert_null(ctl_mount_socket(&m));
	/* Relative socket path. */
	assert_int_equal(
		ctl_mountinfo_parse("70 27 0:55 / /mnt rw - fuse.encore encore:ctl rw", &m), 0);
	assert_null(ctl_mount_socket(&m));
	/* Another FUSE file system. */
	assert_int_equal(ctl_mountinfo_parse("70 27 0:55 / /mnt rw - fuse.sshfs "
					     "encore:/x/ctl.sock rw",
					     &m),
			 0);
	assert_null(ctl_mount_socket(&m));
	/* No super options at all still parses. */
	assert_int_equal(ctl_mountinfo_parse("70 27 0:55 / /mnt rw - fuse.encore encore:/s", &m),
			 0);
	assert_string_equal(ctl_mount_socket(&m), "/s");
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"53",
		"53 27 0:45 / /mnt rw",				      /* no separator */
		"53 27 0:45 / /mnt rw shared:1",		      /* no separator */
		"53 27 0:45 / /mnt rw -",			      /* no fstype */
		"53 27 0:45 / /mnt rw - ",			      /* empty fstype */
		"53 27 0:45 / /mnt rw - fuse.encore",		      /* no source */
		"53 27 045 / /mnt rw - fuse.encore encore:/s rw",     /* no colon */
		"53 27 :45 / /mnt rw - fuse.encore encore:/s rw",     /* no major */
		"53 27 0: / /mnt rw - fuse.encore encore:/s rw",      /* no minor */
		"53 27 0:4x / /mnt rw - fuse.encore encore:/s rw",    /* junk */
		"53 27 0:45 / mnt rw - fuse.encore encore:/s rw",     /* relative mount point */
		"53 27 0:45 / /m\\04 rw - fuse.encore encore:/s rw",  /* short escape */
		"53 27 0:45 / /m\\04x rw - fuse.encore encore:/s rw", /* bad escape digit */
		"53 27 0:45 / /m\\000 rw - fuse.encore encore:/s rw", /* NUL */
		"53 27 0:45 / /m\\777 rw - fuse.encore encore:/s rw", /* > 255 */
		"53 27 0:45 / /m rw - fuse.encore encore:/s\\9 rw",   /* bad escape in source */
		"53 27 99999999999:45 / /m rw - fuse.encore encore:/s rw",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ctl_mountinfo_parse(bad[i], &m) != -EINVAL)
			fail_msg("accepted malformed line %zu: '%s'", i, bad[i]);
	}
}

static void test_too_long(void **state)
{
	size_t n = PATH_MAX + 64;
	char *line = malloc(n + 128);
	char *p;

	(void)state;
	assert_non_null(line);
	p = line + snprintf(line, 64, "53 27 0:45 / /");
	memset(p, 'a', n);
	p += n;
	snprintf(p, 64, " rw - fuse.encore encore:/s rw");
	assert_int_equal(ctl_mountinfo_parse(line, &m), -EINVAL);

	/* A long fstype does not overflow either. */
	p = line + snprintf(line, 64, "53 27 0:45 / /m rw - ");
	memset(p, 'f', 200);
	p += 200;
	snprintf(p, 64, " encore:/s rw");
	assert_int_equal(ctl_mountinfo_parse(line, &m), -EINVAL);
	free(line);
}

static int find_root(void *arg, const struct ctl_mount *mm)
{
	int *n = arg;

	if (strcmp(mm->mount_point, "/") == 0)
		(*n)++;
	return 0;
}

static int stop_at_first(void *arg, const struct ctl_mount *mm)
{
	(void)mm;
	(*(int *)arg)++;
	return 7;
}

static void test_foreach_self(void **state)
{
	int n = 0;

	(void)state;
	/* The real /proc/self/mountinfo parses, and "/" is in it. */
	assert_int_equal(ctl_mounts_foreach(false, find_root, &n), 0);
	assert_true(n >= 1);
	/* A non-zero callback result stops the walk and is returned. */
	n = 0;
	assert_int_equal(ctl_mounts_foreach(false, stop_at_first, &n), 7);
	assert_int_equal(n, 1);
}

static void check_norm(const char *path, const char *cwd, const char *want)
{
	char out[PATH_MAX];

	assert_int_equal(ctl_path_normalize(path, cwd, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_normalize(void **state)
{
	char small[8];

	(void)state;
	check_norm("/a/b", "/cwd", "/a/b");
	check_norm("b/c", "/cwd", "/cwd/b/c");
	check_norm(".", "/cwd/x", "/cwd/x");
	check_norm("..", "/cwd/x", "/cwd");
	check_norm("../..", "/cwd/x", "/");
	check_norm("../../../..", "/cwd", "/");
	check_norm("//a//./b/../c/", "/", "/a/c");
	check_norm("/", "/cwd", "/");
	check_norm("a/./../b", "/", "/b");
	check_norm("...", "/c", "/c/...");
	/* Lexical: ".." of a symlink is the parent of the link, like a shell's cd. */
	check_norm("mnt/local/..", "/tmp/d", "/tmp/d/mnt");
	assert_int_equal(ctl_path_normalize("/abcdefghij", "/", small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(ctl_path_normalize("abc", "/cwdcwd", small, sizeof(small)), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encore_mount),	cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_optional_fields), cmocka_unit_test(test_not_encore_source),
		cmocka_unit_test(test_malformed),	cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_foreach_self),	cmocka_unit_test(test_normalize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
