/*
 * test_cli_servers_conf.c - unit tests of cli/servers_conf.c (the --peers
 * file DIR/servers.conf and the --vsg list of `encore local up`) and of
 * local_reserve_ports() in cli/local.c. The file is read back with libinih,
 * as encore-server reads it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/local.h"
#include "cli/servers_conf.h"
#include "common/fsutil.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/encore-test-cli-conf.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	return fs_rmtree(tmpdir);
}

static struct local_state *new_state(size_t n, uint32_t first_id, uint16_t first_port)
{
	struct local_state *st = calloc(1, sizeof(*st));

	assert_non_null(st);
	snprintf(st->dir, sizeof(st->dir), "%s", tmpdir);
	st->n_servers = n;
	for (size_t i = 0; i < n; i++) {
		st->servers[i].id = first_id + (uint32_t)i;
		st->servers[i].port = (uint16_t)(first_port + i);
	}
	return st;
}

/* What libinih makes of the file: address per "[server N]" section. */
struct parsed {
	int n_sections;
	int n_other; /* keys or sections that are not ours */
	char addr[LOCAL_SERVERS_MAX + 1][32];
	unsigned id[LOCAL_SERVERS_MAX + 1];
};

static int on_ini(void *arg, const char *section, const char *name, const char *value)
{
	struct parsed *p = arg;
	unsigned id;
	char tail;

	if (sscanf(section, "server %u%c", &id, &tail) != 1 || strcmp(name, "address") != 0 ||
	    p->n_sections > LOCAL_SERVERS_MAX) {
		p->n_other++;
		return 1;
	}
	p->id[p->n_sections] = id;
	snprintf(p->addr[p->n_sections], sizeof(p->addr[0]), "%s", value);
	p->n_sections++;
	return 1;
}

static void test_fmt_three_servers_parses_with_inih(void **state)
{
	struct local_state *st = new_state(3, 1, 40001);
	char buf[SERVERS_CONF_MAX];
	struct parsed p = { 0 };
	int len;

	(void)state;
	len = servers_conf_fmt(st, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(buf));
	assert_non_null(strstr(buf, "[server 1]\naddress = 127.0.0.1:40001\n"
				    "[server 2]\naddress = 127.0.0.1:40002\n"
				    "[server 3]\naddress = 127.0.0.1:40003\n"));
	assert_int_equal(ini_parse_string(buf, on_ini, &p), 0);
	assert_int_equal(p.n_sections, 3);
	assert_int_equal(p.n_other, 0);
	for (int i = 0; i < 3; i++) {
		char want[32];

		snprintf(want, sizeof(want), "127.0.0.1:%d", 40001 + i);
		assert_int_equal(p.id[i], (unsigned)i + 1);
		assert_string_equal(p.addr[i], want);
	}
	free(st);
}

static void test_fmt_every_short_buffer_is_enospc(void **state)
{
	struct local_state *st = new_state(3, 1, 40001);
	char buf[SERVERS_CONF_MAX];
	int len;

	(void)state;
	len = servers_conf_fmt(st, buf, sizeof(buf));
	assert_true(len > 0);
	for (size_t n = 0; n <= (size_t)len; n++) {
		char *small = malloc(n > 0 ? n : 1);

		assert_non_null(small);
		assert_int_equal(servers_conf_fmt(st, small, n), -ENOSPC);
		if (n > 0)
			assert_non_null(memchr(small, '\0', n));
		free(small);
	}
	assert_int_equal(servers_conf_fmt(st, buf, (size_t)len + 1), len);
	free(st);
}

static void test_fmt_largest_realm_fits(void **state)
{
	struct local_state *st = new_state(LOCAL_SERVERS_MAX, UINT32_MAX - LOCAL_SERVERS_MAX + 1,
					   (uint16_t)(65535 - LOCAL_SERVERS_MAX + 1));
	char buf[SERVERS_CONF_MAX], vsg[SERVERS_VSG_MAX];
	struct parsed p = { 0 };

	(void)state;
	assert_true(servers_conf_fmt(st, buf, sizeof(buf)) > 0);
	assert_int_equal(ini_parse_string(buf, on_ini, &p), 0);
	assert_int_equal(p.n_sections, LOCAL_SERVERS_MAX);
	assert_int_equal(p.id[LOCAL_SERVERS_MAX - 1], UINT32_MAX);
	assert_string_equal(p.addr[LOCAL_SERVERS_MAX - 1], "127.0.0.1:65535");
	assert_true(servers_conf_vsg(st, vsg, sizeof(vsg)) > 0);
	free(st);
}

static void test_fmt_rejects_empty_and_unbound(void **state)
{
	struct local_state *st = new_state(0, 1, 40001);
	char buf[SERVERS_CONF_MAX];

	(void)state;
	assert_int_equal(servers_conf_fmt(st, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(servers_conf_vsg(st, buf, sizeof(buf)), -EINVAL);
	free(st);
	st = new_state(2, 1, 40001);
	st->servers[1].port = 0; /* not reserved yet */
	assert_int_equal(servers_conf_fmt(st, buf, sizeof(buf)), -EINVAL);
	free(st);
}

static void test_vsg(void **state)
{
	struct local_state *st = new_state(3, 1, 40001);
	char buf[16];

	(void)state;
	assert_int_equal(servers_conf_vsg(st, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "1,2,3");
	assert_int_equal(servers_conf_vsg(st, buf, 5), -ENOSPC);
	assert_int_equal(servers_conf_vsg(st, buf, 6), 5);
	st->n_servers = 1;
	assert_int_equal(servers_conf_vsg(st, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "1");
	free(st);
}

static void test_write_replaces_file(void **state)
{
	struct local_state *st = new_state(2, 1, 40001);
	char path[PATH_MAX], want[SERVERS_CONF_MAX], *buf = NULL;
	size_t len;

	(void)state;
	assert_int_equal(servers_conf_path(st, path), 0);
	assert_int_equal(servers_conf_write(st), 0);
	st->servers[1].port = 40009; /* a server moved: the file is rewritten */
	assert_int_equal(servers_conf_write(st), 0);
	assert_int_equal(fs_read_file(path, 1 << 16, &buf, &len), 0);
	assert_true(servers_conf_fmt(st, want, sizeof(want)) > 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(buf, want, len);
	assert_non_null(strstr(buf, "127.0.0.1:40009"));
	free(buf);
	free(st);
}

static void test_reserve_ports_distinct(void **state)
{
	uint16_t ports[LOCAL_SERVERS_MAX];

	(void)state;
	memset(ports, 0, sizeof(ports));
	assert_int_equal(local_reserve_ports(LOCAL_SERVERS_MAX, ports), 0);
	for (size_t i = 0; i < LOCAL_SERVERS_MAX; i++) {
		assert_int_not_equal(ports[i], 0);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(ports[i], ports[j]);
	}
	assert_int_equal(local_reserve_ports(LOCAL_SERVERS_MAX + 1, ports), -EINVAL);
	assert_int_equal(local_reserve_ports(0, ports), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt_three_servers_parses_with_inih),
		cmocka_unit_test(test_fmt_every_short_buffer_is_enospc),
		cmocka_unit_test(test_fmt_largest_realm_fits),
		cmocka_unit_test(test_fmt_rejects_empty_and_unbound),
		cmocka_unit_test(test_vsg),
		cmocka_unit_test(test_write_replaces_file),
		cmocka_unit_test(test_reserve_ports_distinct),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
