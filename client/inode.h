/*
 * inode.h - encore-client's FUSE inode table: ino <-> fid, kernel lookup
 * counts, references, and the per-object state fsops.c keeps (attributes,
 * callback, open container, cached directory listing).
 *
 * ino 1 (INODE_TOP) is the synthetic top directory that lists the realm; it
 * has no fid. Every other inode names one fid; inos are never reused while
 * the process lives.
 *
 * Lifetime: an inode lives while the kernel holds lookups on it (nlookup)
 * or anyone holds a reference (refs): inode_get_*() return a new reference,
 * inode_put() drops it; the last drop with nlookup == 0 frees.
 * Lock order: itab lock -> inode.io_lock -> inode.lock. inode.lock is held
 * only for field access, never across network I/O or FUSE notifications.
 * io_lock serialises open/fetch/store/release of one inode and may be held
 * across network calls (each bounded by CONN_CALL_TIMEOUT_MS).
 */
#ifndef CLIENT_INODE_H
#define CLIENT_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"
#include "common/proto.h"

#define INODE_TOP 1
/* Names per directory whose kernel dentries we track (to invalidate them
 * on a callback break); beyond it, lookups get entry timeout 0. */
#define INODE_KNAMES_MAX 4096
/* Names per directory learned from LOOKUPs (inode_learn_locked). */
#define INODE_LEARNED_MAX 1024

struct inode {
	uint64_t ino;		/* immutable */
	struct fid fid;		/* immutable; zero for INODE_TOP */
	uint64_t nlookup;	/* protected by itab lock */
	uint64_t refs;		/* protected by itab lock */
	struct inode *next_ino; /* protected by itab lock */
	struct inode *next_fid; /* protected by itab lock */

	pthread_mutex_t io_lock; /* serialises open/fetch/store/release */
	pthread_mutex_t lock;	 /* protects the fields below */

	struct attr attr; /* last attributes from the server (or local while dirty) */
	bool have_attr;
	bool cb_valid;	   /* a callback is held on the object */
	uint64_t cb_epoch; /* conn_epoch() when the callback was granted */
	bool stale;	   /* attrs must be refetched before use */
	/* Open file state (regular files). */
	int fd;		    /* container fd while n_open > 0, else -1 */
	unsigned n_open;    /* open handles */
	unsigned n_writers; /* open handles with write access */
	bool dirty;	    /* container modified since last store */
	uint64_t wgen;	    /* bumped by every local modification of the container */
	uint64_t kernel_dv; /* data version the kernel's page cache holds; 0 = none */
	uint64_t cdv;	    /* data version the open container (fd) holds */
	bool removed;	    /* the last name is gone on the server (open-unlinked) */
	bool unverified;    /* attrs from one replica's LOOKUP, not compared across replicas */
	struct cred wcred;  /* credentials of the last opener for writing */
	/* Directory listing. */
	struct dirent_w *ents; /* owned; valid if list_valid */
	size_t n_ents;
	bool list_valid;
	/* Names a LOOKUP answered while no listing was cached (owned): what a
	 * disconnected lookup can still find. Dropped with the listing. */
	struct dirent_w *learned;
	size_t n_learned;
	char **knames; /* owned strings: names the kernel may cache under this dir */
	size_t n_knames;
	size_t cap_knames;
	/* Symlink target cache (owned; NULL if none). */
	char *target;
	/* Last name the kernel looked it up by (owned; NULL if none) and the
	 * directory it is in: enough to name it in a log line. */
	char *name;
	uint64_t parent_ino;
	bool conflict_logged; /* "is in conflict" was logged once */
};

struct itab;

struct itab *itab_new(void);
/* Frees every inode (at unmount). NULL is a no-op. */
void itab_free(struct itab *t);

/* Returns a new reference to the inode for ino, or NULL. */
struct inode *inode_get_ino(struct itab *t, uint64_t ino);
/* Returns a new reference to the inode for fid, or NULL. */
struct inode *inode_get_fid(struct itab *t, const struct fid *fid);
/* Returns a new reference to the inode for fid, creating it if needed. */
struct inode *inode_get_or_create(struct itab *t, const struct fid *fid);
/* Adds a reference. */
void inode_ref(struct itab *t, struct inode *in);
/* Drops a reference; NULL is a no-op. */
void inode_put(struct itab *t, struct inode *in);
/* Adds one kernel lookup (fuse_reply_entry/create). */
void inode_lookup_inc(struct itab *t, struct inode *in);
/* Subtracts n kernel lookups of ino (forget). */
void inode_forget(struct itab *t, uint64_t ino, uint64_t n);

/* Called with an inode about to be freed (no reference or lookup left; no
 * lock held; in is the caller's alone): e.g. to save its state. */
typedef void (*itab_free_fn)(void *arg, struct inode *in);
/* Installs the hook (before the table is shared between threads). */
void itab_set_free_hook(struct itab *t, itab_free_fn fn, void *arg);

/* Calls fn(arg, in) for every inode (with a reference held, no lock held).
 * Used after a connection loss. */
void itab_foreach(struct itab *t, void (*fn)(void *arg, struct inode *in), void *arg);
size_t itab_count(struct itab *t);

/* Directory helpers (caller holds in->lock). */
void inode_set_listing_locked(struct inode *in, struct dirent_w *ents, size_t n);
void inode_drop_listing_locked(struct inode *in);
/* Records that the kernel may cache name under in; false if the table is full. */
bool inode_add_kname_locked(struct inode *in, const char *name);
/* Moves the recorded names to the caller (*names, *n; free each and the array). */
void inode_take_knames_locked(struct inode *in, char ***names, size_t *n);
/* Records name and parent_ino as in's last known name (caller holds in->lock). */
void inode_set_name_locked(struct inode *in, uint64_t parent_ino, const char *name);
/* Formats a path for in relative to the mount ("/realm/dir/name") by
 * walking the last known names up to the realm root; "" if unknown.
 * Takes inode locks one at a time (none may be held). */
void inode_path(struct itab *t, struct inode *in, const char *realm, char *out, size_t len);
/* A copy of n listing entries (owned; never NULL, even for n == 0). */
struct dirent_w *inode_ents_dup(const struct dirent_w *ents, size_t n);
/* Finds name in the cached listing; NULL if absent. */
const struct dirent_w *inode_find_ent_locked(struct inode *in, const char *name);
/* Records d as a name LOOKUP answered (at most INODE_LEARNED_MAX; a name
 * already known is replaced). Caller holds in->lock. */
void inode_learn_locked(struct inode *in, const struct dirent_w *d);
/* Finds name among the learned names; NULL if absent. */
const struct dirent_w *inode_find_learned_locked(struct inode *in, const char *name);

#endif /* CLIENT_INODE_H */
