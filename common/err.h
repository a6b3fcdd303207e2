/*
 * err.h - Encore's error space: negative errno values plus ERR_* constants
 * (>= 4096) for conditions errno cannot express, and conversion to and from
 * wire status codes.
 */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

#include <stdint.h>

enum encore_err {
	ERR_BASE = 4096,
	ERR_CONFLICT = 4096,   /* object in conflict */
	ERR_VERSION = 4097,    /* expected version did not match */
	ERR_BADVERSION = 4098, /* peer speaks another protocol version */
};

/* Message for a negative errno or -ERR_*; never NULL. */
const char *err_str(int err);
/* Maps a negative errno/-ERR_* to a wire status (unknown errors become ST_IO). 0 -> ST_OK. */
uint32_t err_to_status(int err);
/* Maps a wire status to 0 or a negative errno/-ERR_*; unknown -> -EPROTO. */
int status_to_err(uint32_t st);
/* Maps -ERR_* to the errno a POSIX caller should see (ERR_CONFLICT -> EIO, ...);
 * other values pass through. Returns a positive errno. */
int err_to_errno(int err);

#endif /* COMMON_ERR_H */
