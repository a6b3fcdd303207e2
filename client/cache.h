/*
 * cache.h - persistent whole-file cache of encore-client: one container file
 * per cached object (<dir>/containers/<fid>) and an LMDB index of them
 * (<dir>/index) that survives restarts.
 *
 * The index says, per fid, which data version the container holds, its size,
 * the last attributes seen, whether it is dirty (modified locally, not yet
 * stored), when it was last used and its hoard priority. Space accounting
 * (bytes_used) is the sum of the sizes of entries with data. Eviction is LRU
 * and never touches dirty or pinned (open) entries.
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
	uint32_t hoard_pri;    /* placeholder for hoarding; 0 today */
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

#endif /* CLIENT_CACHE_H */
