/*
 * fsops.h - encore-client's FUSE low-level operations, and the notifier
 * thread that forwards callback breaks to the kernel.
 * Only fsops.c and main.c include <fuse_lowlevel.h>.
 */
#ifndef CLIENT_FSOPS_H
#define CLIENT_FSOPS_H

#include "client/client.h"

struct fuse_lowlevel_ops;
struct conn_brk;
struct inode;

/* The operations table; the session's userdata must be the struct client. */
const struct fuse_lowlevel_ops *fsops_ops(void);

/* Starts the notifier threads (after cl->se is set). 0 or -errno. */
int fsops_start(struct client *cl);
/* Stops and joins the notifier threads; breaks still queued are
 * acknowledged without invalidation (the session is going away). */
void fsops_stop(struct client *cl);

/* conn_break_fn / conn_lost_fn for conn_new (arg is the struct client). */
void fsops_on_break(void *arg, const struct fid *fid, struct conn_brk *brk);
void fsops_on_lost(void *arg, int server);

/* Drops cached data of the object with this inode number if it is neither
 * open nor dirty. Returns 1 if dropped, 0 if busy, -ENOENT. */
int fsops_flush_ino(struct client *cl, uint64_t ino);
/* Stores in's data kept dirty by a failed store at close (flusher.c):
 * opens its container as an open would, stores, closes. 1 if stored, 0
 * if nothing is left to do (not dirty, removed, or open again: that close
 * stores); -EAGAIN if the store failed in a way worth retrying (replicas
 * away, network); another -errno if it failed for good. */
int fsops_store_closed(struct client *cl, struct inode *in);
/* Fid of an inode number; 0 or -ENOENT. */
int fsops_ino_fid(struct client *cl, uint64_t ino, struct fid *fid);
/* Copies the last name ino was looked up by (len bytes at most, NUL
 * included). 0, or -ENOENT if ino or its name is unknown. */
int fsops_ino_name(struct client *cl, uint64_t ino, char *out, size_t len);

/* Hoard walk (hoard.c): the paths FUSE requests take, on the calling
 * thread, with cr as the credentials of every server call. */
struct inode;
struct dirent_w;
/* The realm root (GETROOT on first use) with valid attributes; a new
 * reference. 0 or -errno. */
int fsops_walk_root(struct client *cl, const struct cred *cr, struct inode **out);
/* Makes in's attributes valid (GETATTR unless a callback holds them) and
 * copies them to *a. 0 or -errno. */
int fsops_walk_attr(struct client *cl, const struct cred *cr, struct inode *in, struct attr *a);
/* Copies dir's listing (READDIR unless a valid one is cached; *loaded says
 * whether it was loaded) to *ents (free() it), *n entries. 0 or -errno. */
int fsops_walk_listing(struct client *cl, const struct cred *cr, struct inode *dir,
		       struct dirent_w **ents, size_t *n, bool *loaded);
/* Makes the cache hold the current version of regular file in (fetching
 * it whole unless cached, open locally or dirty). Returns 0 if it was
 * there, 1 if fetched (*bytes its size), -EINVAL if not a regular file,
 * -ERR_CONFLICT, or another -errno. */
int fsops_walk_fetch(struct client *cl, const struct cred *cr, struct inode *in, uint64_t *bytes);
/* Makes symlink in's target cached (READLINK unless a callback holds it);
 * *loaded says whether it was asked. 0 or -errno. */
int fsops_walk_readlink(struct client *cl, const struct cred *cr, struct inode *in, bool *loaded);
/* Drops every callback now (fsops_inval_all tells the kernel later, from
 * the notifier): a walk right after a reintegration must not trust them.
 * The caller holds no inode lock. */
void fsops_drop_callbacks(struct client *cl);

/* Disconnected operation (reint.c): every inode's callback is dropped (the
 * kernel's caches too, from the notifier thread), as after a connection
 * loss, so the servers' state is fetched again. */
void fsops_inval_all(struct client *cl);

#endif /* CLIENT_FSOPS_H */
