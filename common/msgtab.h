/*
 * msgtab.h - X-macro table of every message: type, name, request field set,
 * reply field set (on ST_OK), and the connection states it is allowed in.
 * Owns:    nothing; included by msg.c (codec) and server dispatch.
 *
 * MSGTAB(type, name, request fields, reply fields, states)
 * States: CS_NEW (before HELLO), CS_READY (after HELLO; later: authenticated).
 */
#ifndef COMMON_MSGTAB_H
#define COMMON_MSGTAB_H

#include "common/proto.h"

enum conn_state_bits {
	CS_NEW = 1u << 0,
	CS_READY = 1u << 1,
	CS_SERVER = 1u << 2, /* a peer server (HELLO with F_NAME "server:<id>") */
};

/* clang-format off */
#define MSG_TABLE(X) \
	X(MSG_HELLO,    "hello",    F_VERSION | F_CLIENT_ID | F_REALM | F_NAME, \
	                            F_VERSION | F_SERVER_ID | F_INCARNATION | F_REALM, CS_NEW) \
	X(MSG_GETROOT,  "getroot",  F_CRED | F_REALM, F_ATTR | F_VSG, CS_READY) \
	X(MSG_GETATTR,  "getattr",  F_CRED | F_FID | F_XVER, F_ATTR, CS_READY) \
	X(MSG_LOOKUP,   "lookup",   F_CRED | F_FID | F_NAME | F_XVER, F_ATTR | F_ATTR2, CS_READY) \
	X(MSG_SETATTR,  "setattr",  F_CRED | F_FID | F_SATTR | F_STOREID | F_XVER, F_ATTR, CS_READY) \
	X(MSG_CREATE,   "create",   F_CRED | F_FID | F_FID2 | F_NAME | F_TARGET | F_MODE | F_RDEV | F_MFLAGS | F_STOREID | F_XVER, \
	                            F_ATTR | F_ATTR2, CS_READY) \
	X(MSG_REMOVE,   "remove",   F_CRED | F_FID | F_NAME | F_MFLAGS | F_STOREID | F_XVER, F_ATTR | F_ATTR2, CS_READY) \
	X(MSG_RENAME,   "rename",   F_CRED | F_FID | F_FID2 | F_NAME | F_NAME2 | F_MFLAGS | F_STOREID | F_XVER, \
	                            F_ATTR | F_ATTR2, CS_READY) \
	X(MSG_LINK,     "link",     F_CRED | F_FID | F_FID2 | F_NAME | F_STOREID | F_XVER, F_ATTR | F_ATTR2, CS_READY) \
	X(MSG_READLINK, "readlink", F_CRED | F_FID, F_TARGET, CS_READY) \
	X(MSG_READDIR,  "readdir",  F_CRED | F_FID | F_NAME | F_LENGTH | F_XVER, F_MFLAGS | F_ATTR | F_DATA, CS_READY) \
	X(MSG_FETCH,    "fetch",    F_CRED | F_FID | F_OFFSET | F_LENGTH | F_EXPECT, F_ATTR | F_DATA, CS_READY) \
	X(MSG_STORE,    "store",    F_CRED | F_FID | F_SATTR | F_OFFSET | F_LENGTH | F_HANDLE | F_EXPECT | F_MFLAGS | F_DATA | F_STOREID | F_XVER, \
	                            F_ATTR, CS_READY) \
	X(MSG_STATFS,   "statfs",   F_CRED | F_FID, F_FSSTAT, CS_READY) \
	X(MSG_PING,     "ping",     0, F_SERVER_ID | F_INCARNATION, CS_NEW | CS_READY) \
	X(MSG_STATS,    "stats",    0, F_DATA, CS_READY) \
	X(MSG_CB_BREAK, "cb_break", F_FID, 0, CS_READY) \
	X(MSG_VOLINFO,  "volinfo",  F_CRED | F_FID, F_VSG | F_STAMP, CS_READY) \
	X(MSG_COP2,     "cop2",     F_FID | F_MFLAGS | F_STOREID, 0, CS_READY) \
	X(MSG_RESOLVE,  "resolve",  F_CRED | F_FID | F_MFLAGS, F_ATTR, CS_READY) \
	X(MSG_CONFLICTS, "conflicts", F_CRED | F_FID | F_NAME, F_MFLAGS | F_DATA, CS_READY) \
	X(MSG_REPAIR,   "repair",   F_CRED | F_SERVER_ID | F_FID | F_MFLAGS | F_STOREID, F_ATTR, CS_READY) \
	X(MSG_REINTEGRATE, "reintegrate", F_CRED | F_FID | F_MFLAGS | F_DATA, F_DATA | F_STAMP, CS_READY) \
	X(MSG_COP2_BATCH, "cop2_batch", F_FID | F_DATA, 0, CS_READY) \
	X(MSG_CTL,      "ctl",      F_DATA, F_DATA, CS_NEW | CS_READY) \
	X(MSG_RES_GET,  "res_get",  F_FID | F_MFLAGS, F_FID2 | F_NAME | F_TARGET | F_ATTR, CS_SERVER) \
	X(MSG_RES_SCAN, "res_scan", F_FID, F_FID | F_MFLAGS | F_DATA, CS_SERVER) \
	X(MSG_RES_INSTALL, "res_install", F_FID | F_TARGET | F_OFFSET | F_LENGTH | F_HANDLE | F_MFLAGS | F_ATTR | F_ATTR2 | F_DATA, \
	                            F_ATTR, CS_SERVER) \
	X(MSG_RES_LOG,  "res_log",  F_FID | F_OFFSET, F_OFFSET | F_MFLAGS | F_ATTR | F_DATA, CS_SERVER) \
	X(MSG_RES_APPLY, "res_apply", F_FID | F_MFLAGS | F_ATTR | F_ATTR2 | F_DATA, F_ATTR, CS_SERVER) \
	X(MSG_RES_MARK, "res_mark", F_FID | F_MFLAGS, F_ATTR, CS_SERVER)
/* clang-format on */

#endif /* COMMON_MSGTAB_H */
