/*
 * err.c - error strings and the one conversion between Encore errors
 * (negative errno or -ERR_*) and wire status codes (ST_*).
 * Owns:    the status table below.
 */
#include "common/err.h"

#include <errno.h>
#include <string.h>

#include "common/proto.h"

/* Each status maps to exactly one error and back. */
static const struct {
	uint32_t st;
	int err; /* positive errno or ERR_* */
} status_map[] = {
	{ ST_PERM, EPERM },
	{ ST_NOENT, ENOENT },
	{ ST_IO, EIO },
	{ ST_ACCES, EACCES },
	{ ST_EXIST, EEXIST },
	{ ST_XDEV, EXDEV },
	{ ST_NOTDIR, ENOTDIR },
	{ ST_ISDIR, EISDIR },
	{ ST_INVAL, EINVAL },
	{ ST_FBIG, EFBIG },
	{ ST_NOSPC, ENOSPC },
	{ ST_ROFS, EROFS },
	{ ST_MLINK, EMLINK },
	{ ST_NAMETOOLONG, ENAMETOOLONG },
	{ ST_NOTEMPTY, ENOTEMPTY },
	{ ST_STALE, ESTALE },
	{ ST_NOTSUP, EOPNOTSUPP },
	{ ST_PROTO, EPROTO },
	{ ST_BUSY, EBUSY },
	{ ST_LOOP, ELOOP },
	{ ST_AGAIN, EAGAIN },
	{ ST_NOMEM, ENOMEM },
	{ ST_TIMEDOUT, ETIMEDOUT },
	{ ST_DQUOT, EDQUOT },
	{ ST_OVERFLOW, EOVERFLOW },
	{ ST_NOSYS, ENOSYS },
	{ ST_RANGE, ERANGE },
	{ ST_BADF, EBADF },
	{ ST_CONFLICT, ERR_CONFLICT },
	{ ST_VERSION, ERR_VERSION },
	{ ST_BADVERSION, ERR_BADVERSION },
};

const char *err_str(int err)
{
	const char *s;

	switch (-err) {
	case 0:
		return "success";
	case ERR_CONFLICT:
		return "object in conflict";
	case ERR_VERSION:
		return "version mismatch";
	case ERR_BADVERSION:
		return "unsupported protocol version";
	default:
		break;
	}
	if (err >= 0 || err <= -ERR_BASE)
		return "unknown error";
	/* strerrordesc_np is thread-safe and never allocates (glibc >= 2.32). */
	s = strerrordesc_np(-err);
	return s == NULL ? "unknown error" : s;
}

uint32_t err_to_status(int err)
{
	if (err == 0)
		return ST_OK;
	if (err == -EWOULDBLOCK)
		err = -EAGAIN;
	if (err == -ENOTSUP)
		err = -EOPNOTSUPP;
	for (size_t i = 0; i < sizeof(status_map) / sizeof(status_map[0]); i++) {
		if (status_map[i].err == -err)
			return status_map[i].st;
	}
	return ST_IO;
}

int status_to_err(uint32_t st)
{
	if (st == ST_OK)
		return 0;
	for (size_t i = 0; i < sizeof(status_map) / sizeof(status_map[0]); i++) {
		if (status_map[i].st == st)
			return -status_map[i].err;
	}
	return -EPROTO;
}

int err_to_errno(int err)
{
	switch (-err) {
	case 0:
		return 0;
	case ERR_CONFLICT:
		return EIO;
	case ERR_VERSION:
		return ESTALE;
	case ERR_BADVERSION:
		return EPROTO;
	default:
		break;
	}
	if (err > 0 || err <= -ERR_BASE)
		return EIO;
	return -err;
}
