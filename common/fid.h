/*
 * fid.h - fids, object ids, version vectors and StoreIds: compare, format,
 * generate.
 */
#ifndef COMMON_FID_H
#define COMMON_FID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

/* The root directory of every volume has this well-known oid: all zero but
 * the last byte, 1. */
extern const uint8_t FID_ROOT_OID[OID_LEN];

/* 8 + 1 + 32 + NUL: "%08x.%032x" */
#define FID_STR_LEN 42
/* Formats "vvvvvvvv.oooo...": used for container names and logs. */
void fid_fmt(const struct fid *f, char out[FID_STR_LEN]);
/* Parses fid_fmt() output; 0 or -EINVAL. */
int fid_parse(const char *s, struct fid *f);
bool fid_eq(const struct fid *a, const struct fid *b);
bool fid_is_root(const struct fid *f);
/* Fresh random oid (libsodium randombytes_buf), never the root oid or zero. */
void oid_random(uint8_t oid[OID_LEN]);
void fid_make_root(struct fid *f, uint32_t vol);

enum vv_order {
	VV_EQUAL,
	VV_DOMINATES, /* a > b */
	VV_DOMINATED, /* a < b */
	VV_CONFLICT,  /* incomparable */
};
/* Compares two vectors slot by slot (missing slots count as 0). */
enum vv_order vv_compare(const struct vv *a, const struct vv *b);
/* a[i] = max(a[i], b[i]) for every slot. */
void vv_merge(struct vv *a, const struct vv *b);
/* "[s0 s1 ...]": the vector's slots (at most VV_MAX), for logs. */
#define VV_STR_LEN (2 + VV_MAX * 11)
void vv_fmt(const struct vv *v, char out[VV_STR_LEN]);
bool storeid_eq(const struct storeid *a, const struct storeid *b);
/* True for the zero StoreId (no update known; "any" in F_XVER). */
bool storeid_is_zero(const struct storeid *s);

#endif /* COMMON_FID_H */
