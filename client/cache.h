/*
 * cache.h - persistent whole-file cache of encore-client: one container file
 * per cached object (<dir>/containers/<fid>) and an LMDB index of them
 * (<dir>/index) that survives restarts.
 *
 * The index says, per fid, which data version the container holds, its size,
 * the last attributes seen, whether it is dirty (modified locally, not yet
 * stored), when it was last used and its hoard priority. Space accounting
 * (bytes_used) is the sum of the sizes of entries with data. Eviction takes
 * the lowest hoard priority first, then the least recently used, and never
 * touches dirty or pinned (open) entries, nor those the keep hook names.
 *
 * Locking: struct cache has one internal mutex; every function is
 * thread-safe. LMDB transactions are short and never span network I/O.
 */
#ifndef CLIENT_CACHE_H
#define CLIENT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

struct cache;

struct cache_ent {
	struct fid fid;
	uint64_t data_version; /* version the container holds (valid if has_data) */
	uint64_t size;	       /* bytes in the container */
	struct attr attr;      /* last attributes seen from the server */
	bool has_data;	       /* the container holds a complete copy */
	bool dirty;	       /* modified locally, not yet stored */
	uint64_t last_use;     /* wall-clock ns; 0 in cache_put means "now" */
	uint32_t hoard_pri;    /* hoard priority (hoard.c), 0 = not hoarded */
};

struct cache_stats {
	uint64_t bytes_used;
	uint64_t bytes_limit;
	uint64_t files;
	uint64_t dirty;
};

/* Opens (creating if needed) the cache in dir with a size limit in bytes.
 * Runs mdb_reader_check and recomputes space accounting. Returns 0 or
 * -errno; *out is NULL on failure. */
int cache_open(const char *dir, uint64_t limit, struct cache **out);
/* Closes the index. NULL is a no-op. */
void cache_close(struct cache *c);
/* Durable mode (on): every commit of the index is synced, and the env survives
 * a machine crash; required while the env holds anything the servers do not
 * have (CML records, the repair area). Fast mode (off, the state after
 * cache_open): commits are not synced and the index is discarded at the next
 * open after a machine crash. Switching on syncs all earlier commits.
 * Takes the cache lock: never call it inside a cache_txn. Returns 0 or -errno. */
int cache_set_durable(struct cache *c, bool on);

/* Looks fid up; 0 and *ent filled, -ENOENT, or -EIO. */
int cache_get(struct cache *c, const struct fid *fid, struct cache_ent *ent);
/* Inserts or replaces the entry for ent->fid (last_use 0 = now). 0 or -errno. */
int cache_put(struct cache *c, const struct cache_ent *ent);
/* Removes the entry and its container. 0 (also if absent) or -errno. */
int cache_del(struct cache *c, const struct fid *fid);
/* Drops the data of an entry that is neither dirty nor pinned: removes the
 * container and clears has_data. Returns 0, -EBUSY if dirty or pinned,
 * -ENOENT if absent. */
int cache_drop_data(struct cache *c, const struct fid *fid);
/* Sets last_use of an existing entry to now. 0 or -ENOENT. */
int cache_touch(struct cache *c, const struct fid *fid);

/* Pins fid in memory (open files); pinned entries are never evicted. */
void cache_pin(struct cache *c, const struct fid *fid);
void cache_unpin(struct cache *c, const struct fid *fid);
bool cache_pinned(struct cache *c, const struct fid *fid);

/* Evicts least recently used entries (not dirty, not pinned) until
 * bytes_used + need <= limit or nothing evictable is left. Returns the
 * number of entries evicted (>= 0) or -errno. */
int cache_make_room(struct cache *c, uint64_t need);

/* Path of fid's container into out; 0 or -ENAMETOOLONG. */
int cache_container_path(struct cache *c, const struct fid *fid, char *out, size_t len);
/* Opens fid's container with open(2) flags (O_CLOEXEC added, mode 0600).
 * Returns the fd or -errno. */
int cache_open_container(struct cache *c, const struct fid *fid, int flags);

void cache_get_stats(struct cache *c, struct cache_stats *st);

/* One write transaction of the cache env shared with other modules (the
 * CML, cml.c): index changes and other tables commit together. begin takes
 * the cache lock until commit/abort (no other cache_* call meanwhile from
 * that thread). cache_txn_del removes the entry; its container is unlinked
 * after the commit unless pinned. cache_txn_table opens (creating) a named
 * table. commit and abort free t; commit returns 0 or -errno. */
struct cache_txn;
struct MDB_txn;
int cache_txn_begin(struct cache *c, struct cache_txn **out);
struct MDB_txn *cache_txn_mdb(struct cache_txn *t);
int cache_txn_get(struct cache_txn *t, const struct fid *fid, struct cache_ent *ent);
int cache_txn_put(struct cache_txn *t, const struct cache_ent *ent);
int cache_txn_del(struct cache_txn *t, const struct fid *fid);
int cache_txn_table(struct cache_txn *t, const char *name, unsigned int *dbi);
int cache_txn_commit(struct cache_txn *t);
void cache_txn_abort(struct cache_txn *t);
/* The cache directory (valid until cache_close). */
const char *cache_dir(struct cache *c);

/* Asked by eviction about every candidate (cache lock held: must not call
 * back into the cache): true keeps fid (e.g. it has CML records). */
typedef bool (*cache_keep_fn)(void *arg, const struct fid *fid);
/* Installs the keep hook (NULL: none). */
void cache_set_keep(struct cache *c, cache_keep_fn fn, void *arg);

/* Sets the hoard priority of fid's entry (0 = not hoarded). cache_put keeps
 * an entry's priority when given 0, so refetches do not lose it. Returns 0,
 * -ENOENT if fid has no entry, or -errno. */
int cache_set_hoard(struct cache *c, const struct fid *fid, uint32_t pri);
/* Calls fn for every entry with a hoard priority (no lock held during the
 * calls) until fn returns non-zero, which is returned. 0 or -errno. */
typedef int (*cache_hoard_fn)(void *arg, const struct fid *fid);
int cache_hoard_foreach(struct cache *c, cache_hoard_fn fn, void *arg);

#endif /* CLIENT_CACHE_H */
