/*
 * client.h - the encore-client daemon object shared by its modules: config,
 * the connection set, the cache, the inode table, counters, and the FUSE
 * session (opaque here; only main.c and fsops.c know its type).
 * Lock order: client.root_lock is a leaf.
 */
#ifndef CLIENT_CLIENT_H
#define CLIENT_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/proto.h"

struct conn;
struct cache;
struct itab;
struct fuse_session;
struct fsops_notifier;
struct cml;
struct reint;
struct hoard;
struct cstate;
struct flusher;

/* Counters exposed by the status control op. Updated with relaxed atomics. */
struct client_counters {
	atomic_uint_fast64_t fetches;	   /* whole-file fetches */
	atomic_uint_fast64_t fetch_bytes;  /* bytes fetched */
	atomic_uint_fast64_t stores;	   /* whole-file stores */
	atomic_uint_fast64_t store_bytes;  /* bytes stored */
	atomic_uint_fast64_t cache_hits;   /* opens served from a valid container */
	atomic_uint_fast64_t cache_misses; /* opens that had to fetch */
	atomic_uint_fast64_t lookup_hits;  /* lookups answered from a cached listing */
	atomic_uint_fast64_t cb_breaks;	   /* callback breaks received */
	atomic_uint_fast64_t cb_acks;	   /* breaks acknowledged after invalidation */
	atomic_uint_fast64_t conn_losses;  /* server connections lost */
};

struct client {
	/* Configuration (owned strings, immutable after start). */
	char *realm;
	char *mount;
	char *cache_dir;
	char *sock_path;
	char **servers; /* owned array of owned strings */
	size_t n_servers;
	uint64_t cache_limit; /* bytes */

	struct conn *conn;		 /* owned */
	struct cache *cache;		 /* owned */
	struct itab *itab;		 /* owned */
	struct fuse_session *se;	 /* owned by main.c */
	struct fsops_notifier *notifier; /* owned by fsops.c */
	struct cml *cml;		 /* owned: the CML and volume states (cml.c) */
	struct reint *reint;		 /* owned: reintegration thread (reint.c) */
	uint32_t aging_sec;		 /* weak connectivity: ageing delay (--aging) */
	uint32_t weak_kbps;		 /* below this bandwidth a volume is weak */
	struct hoard *hoard;		 /* owned by main.c (hoard.c) */
	struct cstate *cstate;		 /* owned by main.c (cstate.c) */
	struct flusher *flusher;	 /* owned by main.c (flusher.c) */
	unsigned hoard_interval;	 /* seconds between hoard walks, 0 = none */

	pthread_mutex_t root_lock;
	bool have_root;	     /* protected by root_lock */
	struct fid root_fid; /* protected by root_lock */
	uint64_t root_ino;   /* protected by root_lock */

	int64_t start_sec; /* wall clock at start: times of the top directory */
	struct client_counters ctr;
};

#endif /* CLIENT_CLIENT_H */
