/*
 * test_conn.c - unit tests of client/conn.c that need no server: the
 * per-server bandwidth estimate of weak connectivity (conn_bw_sample,
 * docs/disconnected.md "Bandwidth"). The connection set connects lazily,
 * so an unreachable address is enough; the server id a HELLO would have
 * taught is set by hand.
 */
#include "client/conn.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/conn_i.h"

#define MS 1000000ull

static void test_bw_estimate(void **state)
{
	const char *addrs[] = { "127.0.0.1:1", "127.0.0.1:2" };
	struct conn *c = conn_new("local", addrs, 2, NULL, NULL, NULL);
	struct conn_server_info si[2];

	(void)state;
	atomic_store(&c->servers[0].server_id, 7);
	atomic_store(&c->servers[1].server_id, 9);
	assert_int_equal(conn_bw_kbps(c, 7), 0);
	/* 1 MB in 1 s: 1000 KB/s; the first sample is the estimate. */
	conn_bw_sample(c, 7, 1000000, 1000 * MS);
	assert_int_equal(conn_bw_kbps(c, 7), 1000);
	assert_int_equal(conn_bw_kbps(c, 9), 0);
	/* Later samples move it a quarter of the way. */
	conn_bw_sample(c, 7, 2000000, 1000 * MS);
	assert_int_equal(conn_bw_kbps(c, 7), 1250);
	conn_bw_sample(c, 7, 10000, 1000 * MS); /* one stalled transfer: 10 KB/s */
	assert_int_equal(conn_bw_kbps(c, 7), 1250 - 312 + 2);
	/* Unknown servers, empty samples: ignored; a zero time is bounded. */
	conn_bw_sample(c, 8, 1000000, 1000 * MS);
	conn_bw_sample(c, 0, 1000000, 1000 * MS);
	conn_bw_sample(c, 9, 0, 1000 * MS);
	assert_int_equal(conn_bw_kbps(c, 8), 0);
	assert_int_equal(conn_bw_kbps(c, 9), 0);
	conn_bw_sample(c, 9, UINT64_MAX, 0);
	assert_true(conn_bw_kbps(c, 9) > 0 && conn_bw_kbps(c, 9) <= 1000000000000ull);
	conn_bw_sample(c, 9, UINT64_MAX, 0);
	assert_true(conn_bw_kbps(c, 9) <= 1000000000000ull);
	/* A very slow transfer still gives a non-zero estimate. */
	conn_bw_forget(c);
	conn_bw_sample(c, 9, 1, 3600000 * MS);
	assert_int_equal(conn_bw_kbps(c, 9), 1);
	/* Shown by conn_check_servers (status, check-servers). */
	assert_int_equal(conn_check_servers(c, si, 2, false), 2);
	assert_int_equal(si[0].bw_kbps, 0);
	assert_int_equal(si[1].bw_kbps, 1);
	conn_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bw_estimate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
