/*
 * resolve.h - the resolver of encore-server: a thread that coordinates
 * resolution and repair across the replicas of a volume (docs/replication.md).
 * Owns:    the resolver thread, its rpc connections to every VSG member
 *          (itself included, through its own listening address, so that every
 *          replica, the local one too, changes only through the server loop),
 *          its job queue and its eventfd.
 * Borrows: nothing of the loop; jobs carry copies.
 * Locking: r->lock protects the queues; the loop only submits and takes.
 */
#ifndef SERVER_RESOLVE_H
#define SERVER_RESOLVE_H

#include <stdint.h>

#include "common/proto.h"

enum res_job_kind {
	RES_JOB_RESOLVE, /* RESOLVE from a client (fid, mflags) */
	RES_JOB_REPAIR,	 /* REPAIR from a client (fid, server_id, mflags) */
	RES_JOB_VOLUME,	 /* a volume pass (start, peer back) */
};

/* One job; the loop fills the request part, the resolver the result. */
struct res_job {
	enum res_job_kind kind;
	struct fid fid;
	uint32_t mflags;
	uint32_t server_id;
	/* where the reply goes (RESOLVE, REPAIR) */
	int fd;
	uint64_t conn_id;
	uint16_t type;
	uint32_t reqid;
	/* result */
	int status;
	struct attr attr;
	struct res_job *next;
};

struct resolver_cfg {
	const char *peers; /* peers file (re-read when connecting) */
	char self_addr[300];
	uint32_t self_id;
	char realm[REALM_MAX_LEN + 1];
	uint32_t vol; /* the volume (root volume) */
	struct vsg vsg;
};

struct resolver;

/* Starts the thread; queues a volume pass. *out NULL on failure. */
int resolver_start(const struct resolver_cfg *cfg, struct resolver **out);
/* Stops and joins the thread; unfinished jobs are dropped. NULL is a no-op. */
void resolver_stop(struct resolver *r);
/* eventfd that becomes readable when finished jobs are waiting. */
int resolver_fd(struct resolver *r);
/* Queues a job; the resolver takes ownership (malloc'ed by the caller). */
void resolver_submit(struct resolver *r, struct res_job *job);
/* Finished jobs as a list (caller frees each with free()); clears the eventfd. */
struct res_job *resolver_take_done(struct resolver *r);

#endif /* SERVER_RESOLVE_H */
