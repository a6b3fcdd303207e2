/*
 * ops.h - every file-system operation of encore-server, with POSIX
 * semantics and errno results, run inside the loop's batch transaction.
 * Owns:    the batch (one LMDB write txn per loop iteration, the container
 *          fds to fsync before its commit, containers to unlink after it),
 *          the statistics counters, the scratch buffers replies borrow.
 * Borrows: meta, store and callback table (owned by the server loop);
 *          per-connection state (promises, partial stores) via struct ops_conn.
 * Locking: single-threaded (the server loop).
 *
 * Use: ops_exec() any number of requests, then ops_batch_end() once; only
 * after it returns may the replies be sent (nothing is acknowledged before
 * its commit).
 */
#ifndef SERVER_OPS_H
#define SERVER_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/msg.h"
#include "server/callback.h"
#include "server/meta.h"
#include "server/store.h"

/* Counters reported by MSG_STATS ("name value\n" lines, in this order). */
#define OPS_STATS(X)         \
	X(fetch_calls)       \
	X(fetch_bytes)       \
	X(store_calls)       \
	X(store_bytes)       \
	X(store_inline)      \
	X(getattr_calls)     \
	X(lookup_calls)      \
	X(readdir_calls)     \
	X(create_calls)      \
	X(remove_calls)      \
	X(rename_calls)      \
	X(link_calls)        \
	X(setattr_calls)     \
	X(readlink_calls)    \
	X(statfs_calls)      \
	X(ping_calls)        \
	X(calls)             \
	X(errors)            \
	X(connections)       \
	X(connections_total) \
	X(cb_breaks)         \
	X(cb_acks)           \
	X(cb_timeouts)       \
	X(cop2_expired)      \
	X(batches)           \
	X(commits)           \
	X(fsyncs)            \
	X(version_refused)

struct ops_stats {
#define OPS_STAT_FIELD(n) uint64_t n;
	OPS_STATS(OPS_STAT_FIELD)
#undef OPS_STAT_FIELD
};

/* What ops needs of the calling connection. */
struct ops_conn {
	struct cb_holder *holder; /* its callback promises */
	struct store_set *stores; /* its partial stores */
	bool server;		  /* a peer server (HELLO "server:<id>"): may read conflicts */
	bool segments;		  /* FETCH data may stay in its container: ops_take_segment */
};

/* Called for every promise an update breaks (owner is the holder's owner). */
typedef void (*ops_break_fn)(void *arg, void *owner, const struct fid *fid);

struct ops;

/* Creates the ops object over an opened meta and store. info is the
 * server record (copied). */
struct ops *ops_new(const char *dir, struct meta *meta, struct store *store, struct cbtab *cb,
		    const struct srvinfo *info, ops_break_fn brk, void *brk_arg);
void ops_free(struct ops *o);
struct ops_stats *ops_stats(struct ops *o);
const struct srvinfo *ops_info(const struct ops *o);

/* Runs one request (already decoded and allowed in the connection's
 * state; HELLO is the loop's) and fills rep (initialised by the caller with
 * msg_init_reply). rep may borrow buffers of o until the next ops_exec.
 * Returns true if the request was an update (its reply must wait for the
 * commit). */
bool ops_exec(struct ops *o, struct ops_conn *oc, const struct msg *req, struct msg *rep);

/* After ops_exec of a request of a connection with oc->segments: if the
 * reply is a FETCH whose data stayed in its container (rep->data NULL,
 * rep->data_len > 0, status 0), returns that container's fd, which the
 * caller then owns and must close, and sets *off: the caller sends the
 * reply with msg_encode_head followed by rep->data_len bytes of the fd from
 * *off (sendfile). Otherwise -1. A segment not taken before the next
 * ops_exec is dropped. */
int ops_take_segment(struct ops *o, uint64_t *off);

/* Ends the batch: with updates, fsyncs the containers written and the
 * volume directories, commits, and unlinks replaced containers; without,
 * aborts the txn. Returns 0, or <0 if the commit failed (every update of
 * the batch failed with it: the caller replies with this error instead). */
int ops_batch_end(struct ops *o);

/* A connection closed: drops its partial stores and promises. */
void ops_conn_release(struct ops *o, struct ops_conn *oc);

/* Initialises an empty server directory: meta env, server record, the
 * root volume and its root directory. -EEXIST if already initialised. */
int ops_format(const char *dir, uint32_t server_id, const char *realm, uint32_t vol,
	       uint32_t root_mode, uint32_t root_uid, uint32_t root_gid, const struct vsg *vsg);

#endif /* SERVER_OPS_H */
