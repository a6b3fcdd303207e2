/*
 * wire.h - bounded little-endian reader and growable writer over byte buffers.
 * Owns:    nothing beyond the struct wr buffer it grows.
 *
 * struct rd: every read checks the remaining length; the first short read
 * sets a sticky error, later reads return zero values, and the caller checks
 * rd.err once at the end (STYLE section 6). Lengths are compared, never
 * pointers.
 */
#ifndef COMMON_WIRE_H
#define COMMON_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rd {
	const uint8_t *buf; /* borrowed */
	size_t len;
	size_t pos;
	int err; /* 0 or -EPROTO (short read / bound exceeded), sticky */
};

void rd_init(struct rd *r, const uint8_t *buf, size_t len);
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
int64_t rd_i64(struct rd *r);
/* Returns a pointer into r->buf for n bytes (borrowed), or NULL with r->err set. */
const uint8_t *rd_bytes(struct rd *r, size_t n);
/* Reads u32 len + bytes, len <= max; returns borrowed pointer, *len_out set. */
const uint8_t *rd_blob(struct rd *r, size_t max, uint32_t *len_out);
/* Reads a u16-length string (<= max bytes, no NUL inside) into out[max+1],
 * NUL-terminated. */
void rd_str(struct rd *r, char *out, size_t max);
/* Bytes left unread. */
size_t rd_left(const struct rd *r);
/* True if no error and everything was consumed. */
bool rd_done(const struct rd *r);
/* Marks the reader failed (sticky), e.g. for a field value out of range. */
void rd_fail(struct rd *r);

/* Growable writer. Memory errors abort (xalloc). */
struct wr {
	uint8_t *buf; /* owned, freed by wr_release */
	size_t len;
	size_t cap;
};

void wr_init(struct wr *w);
void wr_release(struct wr *w);
void wr_reset(struct wr *w);
void wr_u8(struct wr *w, uint8_t v);
void wr_u16(struct wr *w, uint16_t v);
void wr_u32(struct wr *w, uint32_t v);
void wr_u64(struct wr *w, uint64_t v);
void wr_i64(struct wr *w, int64_t v);
void wr_bytes(struct wr *w, const void *p, size_t n);
/* u32 len + bytes */
void wr_blob(struct wr *w, const void *p, uint32_t n);
/* u16 len + bytes of a NUL-terminated string */
void wr_str(struct wr *w, const char *s);
/* Reserves n bytes at the end and returns a pointer to them (valid until the next write). */
uint8_t *wr_reserve(struct wr *w, size_t n);
/* Stores a little-endian u32 at offset off (which must already be written). */
void wr_put_u32_at(struct wr *w, size_t off, uint32_t v);

/* Plain little-endian helpers for fixed buffers. */
void le_put_u16(uint8_t *p, uint16_t v);
void le_put_u32(uint8_t *p, uint32_t v);
void le_put_u64(uint8_t *p, uint64_t v);
uint16_t le_get_u16(const uint8_t *p);
uint32_t le_get_u32(const uint8_t *p);
uint64_t le_get_u64(const uint8_t *p);

#endif /* COMMON_WIRE_H */
