/*
 * test_fid.c - unit tests of common/fid.c: version vector ordering and
 * merge, fid formatting and parsing, random oids, StoreIds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/fid.h"

static struct vv mk(uint32_t n, uint32_t a, uint32_t b, uint32_t c)
{
	struct vv v = { .n = n, .slot = { a, b, c } };
	return v;
}

static void test_vv_compare(void **state)
{
	(void)state;
	struct vv a, b;

	a = mk(3, 1, 1, 1);
	b = mk(3, 1, 1, 1);
	assert_int_equal(vv_compare(&a, &b), VV_EQUAL);
	a = mk(3, 2, 1, 1);
	assert_int_equal(vv_compare(&a, &b), VV_DOMINATES);
	assert_int_equal(vv_compare(&b, &a), VV_DOMINATED);
	a = mk(3, 2, 0, 1);
	assert_int_equal(vv_compare(&a, &b), VV_CONFLICT);
	assert_int_equal(vv_compare(&b, &a), VV_CONFLICT);
	/* Missing slots count as zero. */
	a = mk(2, 1, 1, 0);
	b = mk(3, 1, 1, 0);
	assert_int_equal(vv_compare(&a, &b), VV_EQUAL);
	b = mk(3, 1, 1, 4);
	assert_int_equal(vv_compare(&a, &b), VV_DOMINATED);
	a = mk(0, 0, 0, 0);
	b = mk(0, 0, 0, 0);
	assert_int_equal(vv_compare(&a, &b), VV_EQUAL);
	/* Slots beyond n are ignored even if set. */
	a = mk(1, 5, 9, 9);
	b = mk(1, 5, 0, 0);
	assert_int_equal(vv_compare(&a, &b), VV_EQUAL);
	/* Full width. */
	struct vv x = { .n = VV_MAX }, y = { .n = VV_MAX };
	x.slot[VV_MAX - 1] = 1;
	assert_int_equal(vv_compare(&x, &y), VV_DOMINATES);
	y.slot[0] = 1;
	assert_int_equal(vv_compare(&x, &y), VV_CONFLICT);
}

static void test_vv_merge(void **state)
{
	(void)state;
	struct vv a = mk(2, 3, 0, 0), b = mk(3, 1, 5, 2);

	vv_merge(&a, &b);
	assert_int_equal(a.n, 3);
	assert_int_equal(a.slot[0], 3);
	assert_int_equal(a.slot[1], 5);
	assert_int_equal(a.slot[2], 2);
	assert_int_equal(vv_compare(&a, &b), VV_DOMINATES);
	struct vv c = mk(3, 3, 5, 2);
	assert_int_equal(vv_compare(&a, &c), VV_EQUAL);
}

static void test_vv_fmt(void **state)
{
	struct vv v = { .n = 0 };
	char out[VV_STR_LEN];

	(void)state;
	vv_fmt(&v, out);
	assert_string_equal(out, "[]");
	v = (struct vv){ .n = 3, .slot = { 212, 0, 4294967295u } };
	vv_fmt(&v, out);
	assert_string_equal(out, "[212 0 4294967295]");
	/* Every slot at its widest still fits. */
	v.n = VV_MAX;
	for (int i = 0; i < VV_MAX; i++)
		v.slot[i] = 4294967295u;
	vv_fmt(&v, out);
	assert_int_equal(strlen(out), 2 + VV_MAX * 10 + (VV_MAX - 1));
	/* A count beyond VV_MAX (bad input) prints VV_MAX slots. */
	v.n = VV_MAX + 5;
	vv_fmt(&v, out);
	assert_int_equal(strlen(out), 2 + VV_MAX * 10 + (VV_MAX - 1));
}

static void test_fid_fmt_parse(void **state)
{
	(void)state;
	struct fid f = { .vol = 0x1234abcd }, g;
	char s[FID_STR_LEN];

	for (int i = 0; i < OID_LEN; i++)
		f.oid[i] = (uint8_t)(i * 17);
	fid_fmt(&f, s);
	assert_string_equal(s, "1234abcd.00112233445566778899aabbccddeeff");
	assert_int_equal(fid_parse(s, &g), 0);
	assert_true(fid_eq(&f, &g));
	assert_int_equal(fid_parse("1234ABCD.00112233445566778899AABBCCDDEEFF", &g), 0);
	assert_true(fid_eq(&f, &g));
	assert_int_equal(fid_parse("", &g), -EINVAL);
	assert_int_equal(fid_parse("1234abcd-00112233445566778899aabbccddeeff", &g), -EINVAL);
	assert_int_equal(fid_parse("1234abcd.00112233445566778899aabbccddeef", &g), -EINVAL);
	assert_int_equal(fid_parse("1234abcd.00112233445566778899aabbccddeeff0", &g), -EINVAL);
	assert_int_equal(fid_parse("1234abcg.00112233445566778899aabbccddeeff", &g), -EINVAL);
	assert_true(fid_eq(&f, &g)); /* untouched on failure */
}

static void test_root_and_random(void **state)
{
	(void)state;
	struct fid r, a, b;
	char s[FID_STR_LEN];

	fid_make_root(&r, 7);
	assert_true(fid_is_root(&r));
	assert_int_equal(r.vol, 7);
	fid_fmt(&r, s);
	assert_string_equal(s, "00000007.00000000000000000000000000000001");
	a.vol = b.vol = 7;
	oid_random(a.oid);
	oid_random(b.oid);
	assert_false(fid_is_root(&a));
	assert_false(fid_eq(&a, &b));
	assert_false(fid_eq(&a, &r));
	b = a;
	assert_true(fid_eq(&a, &b));
	b.vol = 8;
	assert_false(fid_eq(&a, &b));

	struct storeid x = { 1, 2 }, y = { 1, 2 }, z = { 1, 3 };
	assert_true(storeid_eq(&x, &y));
	assert_false(storeid_eq(&x, &z));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vv_compare),	cmocka_unit_test(test_vv_merge),
		cmocka_unit_test(test_vv_fmt),		cmocka_unit_test(test_fid_fmt_parse),
		cmocka_unit_test(test_root_and_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
