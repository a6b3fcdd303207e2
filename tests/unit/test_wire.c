/*
 * test_wire.c - unit tests of common/wire.c: little-endian reads and writes,
 * sticky errors, bounded blobs and strings, writer growth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/wire.h"

static void test_le_layout(void **state)
{
	(void)state;
	struct wr w;

	wr_init(&w);
	wr_u8(&w, 0x01);
	wr_u16(&w, 0x0302);
	wr_u32(&w, 0x07060504);
	wr_u64(&w, 0x0f0e0d0c0b0a0908ull);
	wr_i64(&w, -2);
	const uint8_t want[] = { 1,  2,	 3,  4,	   5,	 6,    7,    8,	   9,	 10,   11,  12,
				 13, 14, 15, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(w.buf, want, sizeof(want));

	struct rd r;
	rd_init(&r, w.buf, w.len);
	assert_int_equal(rd_u8(&r), 0x01);
	assert_int_equal(rd_u16(&r), 0x0302);
	assert_int_equal(rd_u32(&r), 0x07060504);
	assert_int_equal(rd_u64(&r), 0x0f0e0d0c0b0a0908ull);
	assert_int_equal(rd_i64(&r), -2);
	assert_true(rd_done(&r));
	assert_int_equal(rd_left(&r), 0);
	wr_release(&w);
	assert_null(w.buf);
}

static void test_sticky_error(void **state)
{
	(void)state;
	const uint8_t buf[] = { 1, 2, 3 };
	struct rd r;

	rd_init(&r, buf, sizeof(buf));
	assert_int_equal(rd_u16(&r), 0x0201);
	assert_int_equal(rd_u16(&r), 0); /* short */
	assert_int_equal(r.err, -EPROTO);
	assert_int_equal(rd_u8(&r), 0); /* would fit, but the error is sticky */
	assert_null(rd_bytes(&r, 0));
	assert_false(rd_done(&r));
	assert_int_equal(rd_left(&r), 0);

	rd_init(&r, buf, sizeof(buf));
	assert_non_null(rd_bytes(&r, 3));
	assert_true(rd_done(&r));
	rd_fail(&r);
	assert_false(rd_done(&r));

	rd_init(&r, buf, sizeof(buf));
	assert_null(rd_bytes(&r, SIZE_MAX));
	assert_int_equal(r.err, -EPROTO);

	rd_init(&r, NULL, 10);
	assert_int_equal(rd_u8(&r), 0);
	assert_int_equal(r.err, -EPROTO);
}

static void test_blob(void **state)
{
	(void)state;
	struct wr w;
	struct rd r;
	uint32_t n;
	const uint8_t *p;

	wr_init(&w);
	wr_blob(&w, "hello", 5);
	wr_blob(&w, NULL, 0);
	rd_init(&r, w.buf, w.len);
	p = rd_blob(&r, 5, &n);
	assert_non_null(p);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "hello", 5);
	assert_ptr_equal(p, w.buf + 4);
	p = rd_blob(&r, 5, &n);
	assert_int_equal(n, 0);
	assert_true(rd_done(&r));

	rd_init(&r, w.buf, w.len);
	assert_null(rd_blob(&r, 4, &n)); /* over max */
	assert_int_equal(n, 0);
	assert_int_equal(r.err, -EPROTO);

	rd_init(&r, w.buf, 8); /* declared 5, only 4 present */
	assert_null(rd_blob(&r, 100, &n));
	assert_int_equal(r.err, -EPROTO);
	wr_release(&w);
}

static void test_str(void **state)
{
	(void)state;
	struct wr w;
	struct rd r;
	char out[8];

	wr_init(&w);
	wr_str(&w, "abc");
	assert_int_equal(w.len, 5);
	assert_int_equal(le_get_u16(w.buf), 3);
	rd_init(&r, w.buf, w.len);
	rd_str(&r, out, 7);
	assert_string_equal(out, "abc");
	assert_true(rd_done(&r));

	rd_init(&r, w.buf, w.len);
	rd_str(&r, out, 2); /* too long for max */
	assert_string_equal(out, "");
	assert_int_equal(r.err, -EPROTO);

	const uint8_t nul[] = { 3, 0, 'a', 0, 'b' };
	rd_init(&r, nul, sizeof(nul));
	rd_str(&r, out, 7);
	assert_int_equal(r.err, -EPROTO);

	const uint8_t shortstr[] = { 4, 0, 'a', 'b' };
	rd_init(&r, shortstr, sizeof(shortstr));
	rd_str(&r, out, 7);
	assert_int_equal(r.err, -EPROTO);
	wr_release(&w);
}

static void test_growth_and_patch(void **state)
{
	(void)state;
	struct wr w;

	wr_init(&w);
	wr_u32(&w, 0);
	for (uint32_t i = 0; i < 100000; i++)
		wr_u32(&w, i);
	assert_int_equal(w.len, 400004);
	assert_true(w.cap >= w.len);
	wr_put_u32_at(&w, 0, 0xdeadbeef);
	assert_int_equal(le_get_u32(w.buf), 0xdeadbeef);
	assert_int_equal(le_get_u32(w.buf + 4 + 4 * 99999), 99999);
	uint8_t *p = wr_reserve(&w, 3);
	assert_ptr_equal(p, w.buf + 400004);
	assert_int_equal(w.len, 400007);
	wr_reset(&w);
	assert_int_equal(w.len, 0);
	wr_release(&w);
}

static void test_le_helpers(void **state)
{
	(void)state;
	uint8_t b[8];

	le_put_u16(b, 0xbeef);
	assert_int_equal(b[0], 0xef);
	assert_int_equal(le_get_u16(b), 0xbeef);
	le_put_u32(b, 0x80000001u);
	assert_int_equal(b[3], 0x80);
	assert_int_equal(le_get_u32(b), 0x80000001u);
	le_put_u64(b, 0x8000000000000001ull);
	assert_int_equal(b[7], 0x80);
	assert_int_equal(b[0], 0x01);
	assert_int_equal(le_get_u64(b), 0x8000000000000001ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_le_layout),
		cmocka_unit_test(test_sticky_error),
		cmocka_unit_test(test_blob),
		cmocka_unit_test(test_str),
		cmocka_unit_test(test_growth_and_patch),
		cmocka_unit_test(test_le_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
