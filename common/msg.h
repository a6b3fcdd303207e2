/*
 * msg.h - encode and decode every Encore message (table in msgtab.h).
 * Owns:    nothing; struct msg borrows F_DATA from the receive buffer.
 *
 * One fat struct msg holds every field any message can carry; the type's
 * field set (msgtab.h) says which are on the wire. Strings are copied into
 * fixed, NUL-terminated arrays; F_DATA is borrowed (valid as long as the
 * buffer given to msg_decode).
 */
#ifndef COMMON_MSG_H
#define COMMON_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "common/wire.h"

struct msg {
	/* frame header */
	uint16_t type;	/* MSG_* */
	uint16_t flags; /* FRAME_F_* */
	uint32_t reqid;
	/* replies: a negative errno or -ERR_* (converted from the wire status by
	 * msg_decode; msg_encode converts it back). 0 = success. */
	int status;

	uint32_t version;
	uint64_t client_id;
	uint32_t server_id;
	uint64_t incarnation;
	char realm[REALM_MAX_LEN + 1];
	struct cred cred;
	struct fid fid;
	struct fid fid2;
	char name[NAME_MAX_LEN + 1];
	char name2[NAME_MAX_LEN + 1];
	char target[TARGET_MAX_LEN + 1];
	struct sattr sattr;
	uint32_t mode;
	uint64_t rdev;
	uint64_t offset;
	uint64_t length;
	uint64_t handle;
	uint64_t expect;
	uint32_t mflags;
	struct attr attr;
	struct attr attr2;
	struct fsstat fsstat;
	const uint8_t *data; /* borrowed; NULL when data_len == 0 */
	uint32_t data_len;
	struct storeid sid;
	struct vsg vsg;
	uint64_t stamp;
	struct xver xver[2]; /* F_XVER: expected versions of fid, fid2 */
};

/* Zeroes m and sets type (a request: flags 0). */
void msg_init(struct msg *m, uint16_t type);
/* Turns request req into the head of its reply in rep (type, reqid, REPLY flag, status). */
void msg_init_reply(struct msg *rep, const struct msg *req, int status);

/* Field set of a type's request (reply == false) or reply; 0 for unknown types. */
uint32_t msg_fields(uint16_t type, bool reply);
/* Connection states (CS_*) in which a request of this type is allowed; 0 if unknown. */
uint32_t msg_states(uint16_t type);
/* Name of a type, "unknown" if none. */
const char *msg_name(uint16_t type);

/* Appends one whole frame (header + body) for m to w. Returns 0, or -EINVAL
 * when a field exceeds its bound (a programmer error on our side) or
 * -EMSGSIZE when the body would exceed the maximum for its type. */
int msg_encode(struct wr *w, const struct msg *m);

/* As msg_encode, for a message whose last field is F_DATA (a FETCH reply),
 * without F_DATA's payload: appends the header and every field up to and
 * including F_DATA's length; the frame's body length counts m->data_len
 * more bytes, which the caller must send right after (e.g. with sendfile).
 * m->data is not read. -EINVAL also if F_DATA is not the message's last
 * field or m is a reply with an error status (use msg_encode). */
int msg_encode_head(struct wr *w, const struct msg *m);

/* Parses a frame header (FRAME_HDR_LEN bytes). Returns the body length, or
 * -EPROTO if it exceeds FRAME_BODY_MAX (CTL_JSON_MAX + slack for MSG_CTL). */
long frame_parse_header(const uint8_t *hdr, uint16_t *type, uint16_t *flags, uint32_t *reqid);

/* Decodes a body for the given header into m (m is fully overwritten). The
 * body must be consumed exactly. Returns 0, or -EPROTO for an unknown type,
 * truncated or oversized field, bad value (n_groups > GROUPS_MAX, name with
 * '/' or NUL, nsec >= 1e9, ...) or trailing bytes. m->data borrows body. */
int msg_decode(struct msg *m, uint16_t type, uint16_t flags, uint32_t reqid, const uint8_t *body,
	       size_t len);

/* Decodes a body of body_len bytes of which only the first head_len are
 * given, so that F_DATA's payload can be received elsewhere (a file). For a
 * message whose last field is F_DATA: on 0, m->data is NULL, m->data_len is
 * the payload's length and *data_off its offset in the body; head bytes from
 * *data_off on, if any, are the payload's first bytes and the rest follows
 * in the stream. head must reach past F_DATA's length field. Any other
 * message (F_DATA not last, or a reply with an error status) must be given
 * whole (head_len == body_len) and decodes as with msg_decode, *data_off =
 * body_len. Returns 0 or -EPROTO (as msg_decode). */
int msg_decode_head(struct msg *m, uint16_t type, uint16_t flags, uint32_t reqid,
		    const uint8_t *head, size_t head_len, size_t body_len, size_t *data_off);

/* Convenience: decode a whole frame (header + body) in buf[0..len); len must
 * equal FRAME_HDR_LEN + body_len exactly. */
int msg_decode_frame(struct msg *m, const uint8_t *buf, size_t len);

/* One READDIR entry. */
struct dirent_w {
	char name[NAME_MAX_LEN + 1];
	struct fid fid;
	uint32_t mode;
};
/* Appends one packed dirent to w. */
void dirent_encode(struct wr *w, const struct dirent_w *d);
/* Reads the next packed dirent; returns 1 if one was read, 0 at the end of
 * the buffer, -EPROTO if malformed (bad length, '/' in name, "." or ".."). */
int dirent_decode(struct rd *r, struct dirent_w *d);

/* Formats m for --trace into out (at most len bytes, NUL-terminated). Never
 * prints F_DATA contents, only their length. */
void msg_fmt(const struct msg *m, char *out, size_t len);

/* True if name is a valid path component: 1..NAME_MAX_LEN bytes, no '/', not "." or "..". */
bool name_valid(const char *name);

#endif /* COMMON_MSG_H */
