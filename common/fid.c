/*
 * fid.c - fids, object ids, version vectors and StoreIds.
 * Owns:    nothing; pure functions over proto.h structs.
 */
#include "common/fid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

const uint8_t FID_ROOT_OID[OID_LEN] = { [OID_LEN - 1] = 1 };

void fid_fmt(const struct fid *f, char out[FID_STR_LEN])
{
	static const char hex[] = "0123456789abcdef";

	snprintf(out, FID_STR_LEN, "%08x.", (unsigned)f->vol);
	for (size_t i = 0; i < OID_LEN; i++) {
		out[9 + 2 * i] = hex[f->oid[i] >> 4];
		out[10 + 2 * i] = hex[f->oid[i] & 0xf];
	}
	out[FID_STR_LEN - 1] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int fid_parse(const char *s, struct fid *f)
{
	uint32_t vol = 0;
	struct fid tmp;

	if (strnlen(s, FID_STR_LEN) != FID_STR_LEN - 1 || s[8] != '.')
		return -EINVAL;
	for (size_t i = 0; i < 8; i++) {
		int v = hexval(s[i]);
		if (v < 0)
			return -EINVAL;
		vol = vol << 4 | (uint32_t)v;
	}
	for (size_t i = 0; i < OID_LEN; i++) {
		int hi = hexval(s[9 + 2 * i]);
		int lo = hexval(s[10 + 2 * i]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		tmp.oid[i] = (uint8_t)(hi << 4 | lo);
	}
	tmp.vol = vol;
	*f = tmp;
	return 0;
}

bool fid_eq(const struct fid *a, const struct fid *b)
{
	return a->vol == b->vol && memcmp(a->oid, b->oid, OID_LEN) == 0;
}

bool fid_is_root(const struct fid *f)
{
	return memcmp(f->oid, FID_ROOT_OID, OID_LEN) == 0;
}

void oid_random(uint8_t oid[OID_LEN])
{
	static const uint8_t zero[OID_LEN];

	do {
		randombytes_buf(oid, OID_LEN);
	} while (memcmp(oid, zero, OID_LEN) == 0 || memcmp(oid, FID_ROOT_OID, OID_LEN) == 0);
}

void fid_make_root(struct fid *f, uint32_t vol)
{
	f->vol = vol;
	memcpy(f->oid, FID_ROOT_OID, OID_LEN);
}

static uint32_t vv_slot(const struct vv *v, uint32_t i)
{
	return i < v->n && i < VV_MAX ? v->slot[i] : 0;
}

void vv_fmt(const struct vv *v, char out[VV_STR_LEN])
{
	uint32_t n = v->n < VV_MAX ? v->n : VV_MAX;
	size_t len = 0;

	out[len++] = '[';
	for (uint32_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, VV_STR_LEN - len, i ? " %u" : "%u", v->slot[i]);
	snprintf(out + len, VV_STR_LEN - len, "]");
}

enum vv_order vv_compare(const struct vv *a, const struct vv *b)
{
	bool a_more = false, b_more = false;
	uint32_t n = a->n > b->n ? a->n : b->n;

	if (n > VV_MAX)
		n = VV_MAX;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = vv_slot(a, i), y = vv_slot(b, i);
		if (x > y)
			a_more = true;
		else if (x < y)
			b_more = true;
	}
	if (a_more && b_more)
		return VV_CONFLICT;
	if (a_more)
		return VV_DOMINATES;
	if (b_more)
		return VV_DOMINATED;
	return VV_EQUAL;
}

void vv_merge(struct vv *a, const struct vv *b)
{
	uint32_t n = a->n > b->n ? a->n : b->n;

	if (n > VV_MAX)
		n = VV_MAX;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = vv_slot(a, i), y = vv_slot(b, i);
		a->slot[i] = x > y ? x : y;
	}
	a->n = n;
}

bool storeid_eq(const struct storeid *a, const struct storeid *b)
{
	return a->client == b->client && a->seq == b->seq;
}

bool storeid_is_zero(const struct storeid *s)
{
	return s->client == 0 && s->seq == 0;
}
