/*
 * emul.h - emulation of updates on the cache while a volume is not
 * connected (docs/disconnected.md "Emulation"): each update changes the
 * inode state (attributes, cached listings), the cache index and
 * containers, and appends its CML record in one transaction committed
 * before the FUSE reply.
 *
 * Callers (fsops.c) hold no inode lock; directories' listings must have
 * been loaded (fsops load_listing) when the volume is reachable. Every
 * function returns 0 or -errno (ETIMEDOUT when the cache lacks what the
 * update needs).
 */
#ifndef CLIENT_EMUL_H
#define CLIENT_EMUL_H

#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "common/proto.h"

struct inode;

/* True if updates of vol are logged rather than sent. */
bool emul_logging(struct client *cl, uint32_t vol);
/* True if in's cached state may be used without a callback: the volume is
 * disconnected (and attributes are cached), or not connected and the CML
 * still names it. Caller holds in->lock. */
bool emul_trust_locked(struct client *cl, struct inode *in);
/* A callback break for in is not applied, nor are the attributes a server
 * reply carries (fsops grant): its volume is disconnected, or the CML
 * still names it (the servers do not have the logged updates yet, so the
 * cached attributes and listing are newer). Caller holds no inode lock. */
bool emul_keep_on_break(struct client *cl, struct inode *in);
/* conn gate: -ETIMEDOUT for any call to a disconnected volume. */
int emul_gate(void *arg, uint32_t vol, uint16_t type);

/* An inode for listing entry d of dir with attributes from the cache
 * index (files) or made up from the listing and dir (others) when the
 * volume is not connected and the kernel forgot the inode; a new
 * reference, or NULL. */
struct dirent_w;
struct inode *emul_inode_cached(struct client *cl, struct inode *dir, const struct dirent_w *d);

/* When the volume is not connected: the inode last looked up as name in
 * dir, with attributes (a new reference), or NULL. */
struct inode *emul_lookup_name(struct client *cl, struct inode *dir, const char *name);

/* A connected rename of name in src to newname in dst succeeded with
 * StoreId sid: the servers gave the moved object that StoreId, which is
 * the basis of a later record on it (the reply carries no attributes of
 * the object). Also records its new name. */
void emul_renamed(struct client *cl, struct inode *src, const char *name, struct inode *dst,
		  const char *newname, const struct storeid *sid);

/* *out: a new reference to the new inode. */
int emul_create(struct client *cl, const struct cred *cr, struct inode *dir, const char *name,
		uint32_t mode, uint64_t rdev, const char *target, struct inode **out);
int emul_remove(struct client *cl, struct inode *dir, const char *name, bool is_dir);
int emul_rename(struct client *cl, struct inode *src, const char *name, struct inode *dst,
		const char *newname, unsigned int flags);
int emul_link(struct client *cl, struct inode *in, struct inode *dir, const char *name);
/* sa may carry SA_*_NOW (made absolute). Caller holds in->io_lock. */
int emul_setattr(struct client *cl, struct inode *in, const struct sattr *sa);
/* Logs a store of in's open, dirty container. Caller holds in->io_lock. */
int emul_store(struct client *cl, struct inode *in);

#endif /* CLIENT_EMUL_H */
