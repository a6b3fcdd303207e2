/*
 * test_cli_hoard.c - unit tests of cli_mount_rel (cli/cmd_hoard.c): how
 * `encore hoard` turns a path under a mount into the mount-relative path
 * the client expects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "cli/cli.h"

static void test_mount_rel(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(cli_mount_rel("/mnt", "/mnt/local/a/b", out, sizeof(out)), 0);
	assert_string_equal(out, "local/a/b");
	assert_int_equal(cli_mount_rel("/mnt", "/mnt/local", out, sizeof(out)), 0);
	assert_string_equal(out, "local");
	assert_int_equal(cli_mount_rel("/", "/local/x", out, sizeof(out)), 0);
	assert_string_equal(out, "local/x");
	/* The mount's top directory, a sibling with the same prefix, elsewhere. */
	assert_int_equal(cli_mount_rel("/mnt", "/mnt", out, sizeof(out)), -EINVAL);
	assert_int_equal(cli_mount_rel("/mnt", "/mnt/", out, sizeof(out)), -EINVAL);
	assert_int_equal(cli_mount_rel("/mnt", "/mnt2/local", out, sizeof(out)), -EINVAL);
	assert_int_equal(cli_mount_rel("/mnt", "/tmp/local", out, sizeof(out)), -EINVAL);
	assert_int_equal(cli_mount_rel("/mnt", "/mnt/local/abc", out, 9), -ENAMETOOLONG);
	assert_int_equal(cli_mount_rel("/mnt", "/mnt/local/ab", out, 9), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mount_rel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
