/*
 * test_cli_local_state.c - unit tests of DIR/local.json handling in
 * cli/local.c: save/load round trip, damaged files, and the pid checks that
 * keep `encore local down` from signalling a recycled pid.
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

#include "cli/local.h"
#include "common/fsutil.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/encore-test-cli-local.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	return fs_rmtree(tmpdir);
}

static void fill(struct local_state *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->dir, sizeof(st->dir), "%s", tmpdir);
	st->cache_size_mib = 64;
	st->replicated = true;
	st->n_servers = 3;
	for (size_t i = 0; i < st->n_servers; i++) {
		struct local_server *s = &st->servers[i];

		s->id = (uint32_t)i + 1;
		s->pid = 1000 + (pid_t)i;
		s->port = (uint16_t)(40000 + i);
		s->frozen = i == 2;
		assert_int_equal(local_path(s->dir, tmpdir, "server%u", s->id), 0);
		assert_int_equal(local_path(s->log, tmpdir, "server%u.log", s->id), 0);
	}
	st->n_clients = 2;
	for (size_t i = 0; i < st->n_clients; i++) {
		struct local_client *c = &st->clients[i];

		c->id = (uint32_t)i + 1;
		c->pid = 2000 + (pid_t)i;
		assert_int_equal(local_path(c->mount, tmpdir, "mnt with space%u", c->id), 0);
		assert_int_equal(local_path(c->cache, tmpdir, "client%u/cache", c->id), 0);
		assert_int_equal(local_path(c->socket, tmpdir, "client%u/cache/ctl.sock", c->id),
				 0);
		assert_int_equal(local_path(c->log, tmpdir, "client%u.log", c->id), 0);
	}
}

static void test_round_trip(void **state)
{
	struct local_state *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	(void)state;
	fill(a);
	assert_int_equal(local_state_save(a), 0);
	assert_int_equal(local_state_load(tmpdir, b), 0);
	assert_memory_equal(a, b, sizeof(*a));
	assert_int_equal(local_state_remove(a), 0);
	assert_int_equal(local_state_load(tmpdir, b), -ENOENT);
	/* Removing twice is fine. */
	assert_int_equal(local_state_remove(a), 0);
	free(a);
	free(b);
}

static void write_state(const char *text)
{
	char path[PATH_MAX];

	assert_int_equal(local_path(path, tmpdir, "%s", LOCAL_STATE_FILE), 0);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644), 0);
}

static void test_damaged(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"{\"version\":1}",
		"{\"version\":2,\"dir\":\"/x\",\"servers\":[],\"clients\":[]}",
		"{\"version\":1,\"dir\":\"rel\",\"servers\":[],\"clients\":[]}",
		"{\"version\":1,\"dir\":\"/x\",\"servers\":{},\"clients\":[]}",
		"{\"version\":1,\"dir\":\"/x\",\"servers\":[1],\"clients\":[]}",
		/* pid out of range */
		"{\"version\":1,\"dir\":\"/x\",\"servers\":[{\"id\":1,\"pid\":-5,\"port\":1,"
		"\"dir\":\"/a\",\"log\":\"/b\"}],\"clients\":[]}",
		/* port out of range */
		"{\"version\":1,\"dir\":\"/x\",\"servers\":[{\"id\":1,\"pid\":5,\"port\":70000,"
		"\"dir\":\"/a\",\"log\":\"/b\"}],\"clients\":[]}",
		/* too many clients */
		"{\"version\":1,\"dir\":\"/x\",\"servers\":[],\"clients\":[{},{},{}]}",
		/* replicated is a boolean */
		"{\"version\":1,\"dir\":\"/x\",\"replicated\":1,\"servers\":[],\"clients\":[]}",
		/* trailing garbage */
		"{\"version\":1,\"dir\":\"/x\",\"servers\":[],\"clients\":[]} x",
	};
	struct local_state *st = calloc(1, sizeof(*st));

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_state(bad[i]);
		if (local_state_load(tmpdir, st) != -EINVAL)
			fail_msg("accepted damaged local.json %zu: %s", i, bad[i]);
	}
	/* Minimal valid one; the dir it names is replaced by the real one. */
	write_state("{\"version\":1,\"dir\":\"/elsewhere\",\"servers\":[],\"clients\":[]}");
	assert_int_equal(local_state_load(tmpdir, st), 0);
	assert_string_equal(st->dir, tmpdir);
	assert_int_equal(st->n_servers, 0);
	/* Written before replication: not replicated. */
	assert_false(st->replicated);
	free(st);
}

static void test_pid_alive(void **state)
{
	char argv0[PATH_MAX] = "";
	FILE *fp = fopen("/proc/self/cmdline", "r");

	(void)state;
	assert_non_null(fp);
	assert_true(fread(argv0, 1, sizeof(argv0) - 1, fp) > 0);
	fclose(fp);
	/* Alive only with a marker among its arguments. */
	assert_true(local_pid_alive(getpid(), argv0));
	assert_false(local_pid_alive(getpid(), "--no-such-argument--"));
	assert_false(local_pid_alive(0, "x"));
	assert_false(local_pid_alive(-1, "x"));
	assert_false(local_pid_alive(1 << 30, "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_pid_alive),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
