/*
 * callback.h - callback promises of encore-server: which connection holds
 * a cached copy of which fid, so that an update by anyone else can tell
 * the holders (MSG_CB_BREAK) and drop the promise.
 * Owns:    the promise nodes (one per (holder, fid)).
 * Borrows: holders are embedded in connections; a connection releases its
 *          holder before it is freed.
 * Locking: single-threaded (the server loop).
 */
#ifndef SERVER_CALLBACK_H
#define SERVER_CALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

struct cb_node;
struct cbtab;

/* Per-connection list of promises; embed in the connection. */
struct cb_holder {
	struct cb_node *head; /* owned nodes, also linked in the table */
	size_t n;
	void *owner; /* handed back to the break function */
};

/* Called once per holder whose promise on fid is broken. */
typedef void (*cb_break_fn)(void *arg, void *owner, const struct fid *fid);

struct cbtab *cbtab_new(void);
/* Frees the table; every holder must have been released. NULL is a no-op. */
void cbtab_free(struct cbtab *t);

void cb_holder_init(struct cb_holder *h, void *owner);
/* Records that h caches fid (idempotent). */
void cb_promise(struct cbtab *t, struct cb_holder *h, const struct fid *fid);
/* Breaks every promise on fid except except's (which may be NULL): calls fn
 * for each such holder and drops the promise. Returns the number broken. */
size_t cb_break(struct cbtab *t, const struct fid *fid, const struct cb_holder *except,
		cb_break_fn fn, void *arg);
/* Drops all promises of h (its connection closed). */
void cb_holder_release(struct cbtab *t, struct cb_holder *h);
/* Promises held in the table. */
size_t cbtab_count(const struct cbtab *t);

#endif /* SERVER_CALLBACK_H */
