/*
 * wire.c - bounded little-endian reader and growable writer.
 * Owns:    the buffer of a struct wr (freed by wr_release).
 * Borrows: the buffer of a struct rd for the reader's lifetime.
 * Format:  docs/protocol.md "Field encodings".
 */
#include "common/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void rd_init(struct rd *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = buf == NULL ? 0 : len;
	r->pos = 0;
	r->err = 0;
}

void rd_fail(struct rd *r)
{
	r->err = -EPROTO;
}

size_t rd_left(const struct rd *r)
{
	return r->err != 0 ? 0 : r->len - r->pos;
}

bool rd_done(const struct rd *r)
{
	return r->err == 0 && r->pos == r->len;
}

/* Returns a pointer to the next n bytes and advances, or NULL (sticky error). */
static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->err != 0)
		return NULL;
	if (n > r->len - r->pos) {
		r->err = -EPROTO;
		return NULL;
	}
	const uint8_t *p = r->buf + r->pos;
	r->pos += n;
	return p;
}

uint8_t rd_u8(struct rd *r)
{
	const uint8_t *p = take(r, 1);
	return p == NULL ? 0 : p[0];
}

uint16_t rd_u16(struct rd *r)
{
	const uint8_t *p = take(r, 2);
	return p == NULL ? 0 : le_get_u16(p);
}

uint32_t rd_u32(struct rd *r)
{
	const uint8_t *p = take(r, 4);
	return p == NULL ? 0 : le_get_u32(p);
}

uint64_t rd_u64(struct rd *r)
{
	const uint8_t *p = take(r, 8);
	return p == NULL ? 0 : le_get_u64(p);
}

int64_t rd_i64(struct rd *r)
{
	return (int64_t)rd_u64(r);
}

const uint8_t *rd_bytes(struct rd *r, size_t n)
{
	return take(r, n);
}

const uint8_t *rd_blob(struct rd *r, size_t max, uint32_t *len_out)
{
	uint32_t n = rd_u32(r);
	const uint8_t *p;

	*len_out = 0;
	if (r->err != 0)
		return NULL;
	if (n > max) {
		rd_fail(r);
		return NULL;
	}
	p = take(r, n);
	if (p != NULL)
		*len_out = n;
	return p;
}

void rd_str(struct rd *r, char *out, size_t max)
{
	uint16_t n = rd_u16(r);
	const uint8_t *p;

	out[0] = '\0';
	if (r->err != 0)
		return;
	if (n > max) {
		rd_fail(r);
		return;
	}
	p = take(r, n);
	if (p == NULL)
		return;
	if (memchr(p, '\0', n) != NULL) {
		rd_fail(r);
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

void wr_init(struct wr *w)
{
	w->buf = NULL;
	w->len = 0;
	w->cap = 0;
}

void wr_release(struct wr *w)
{
	free(w->buf);
	wr_init(w);
}

void wr_reset(struct wr *w)
{
	w->len = 0;
}

uint8_t *wr_reserve(struct wr *w, size_t n)
{
	size_t need;

	if (__builtin_add_overflow(w->len, n, &need))
		assert_fail("wr_reserve size overflow", __FILE__, __LINE__);
	if (need > w->cap) {
		size_t cap = w->cap < 256 ? 256 : w->cap;
		while (cap < need) {
			if (__builtin_mul_overflow(cap, 2, &cap))
				cap = need;
		}
		w->buf = xrealloc(w->buf, cap);
		w->cap = cap;
	}
	uint8_t *p = w->buf + w->len;
	w->len = need;
	return p;
}

void wr_u8(struct wr *w, uint8_t v)
{
	*wr_reserve(w, 1) = v;
}

void wr_u16(struct wr *w, uint16_t v)
{
	le_put_u16(wr_reserve(w, 2), v);
}

void wr_u32(struct wr *w, uint32_t v)
{
	le_put_u32(wr_reserve(w, 4), v);
}

void wr_u64(struct wr *w, uint64_t v)
{
	le_put_u64(wr_reserve(w, 8), v);
}

void wr_i64(struct wr *w, int64_t v)
{
	wr_u64(w, (uint64_t)v);
}

void wr_bytes(struct wr *w, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(wr_reserve(w, n), p, n);
}

void wr_blob(struct wr *w, const void *p, uint32_t n)
{
	wr_u32(w, n);
	wr_bytes(w, p, n);
}

void wr_str(struct wr *w, const char *s)
{
	size_t n = strlen(s);

	ASSERT(n <= UINT16_MAX);
	wr_u16(w, (uint16_t)n);
	wr_bytes(w, s, n);
}

void wr_put_u32_at(struct wr *w, size_t off, uint32_t v)
{
	ASSERT(off <= w->len && w->len - off >= 4);
	le_put_u32(w->buf + off, v);
}

void le_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void le_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void le_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint16_t le_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t le_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t le_get_u64(const uint8_t *p)
{
	return (uint64_t)le_get_u32(p) | (uint64_t)le_get_u32(p + 4) << 32;
}
