/*
 * fsops.c - encore-client's FUSE low-level operations.
 * Owns:    the mapping of FUSE requests to server calls and cache state,
 *          the notifier thread (kernel invalidations after callback
 *          breaks), the open-file protocol (fetch on open, store on
 *          flush/fsync/last release).
 * Borrows: cl->conn, cl->cache, cl->itab (struct client, client.h).
 * Locking: see inode.h for the lock order. No inode lock is held across a
 *          network call except io_lock; kernel notifications are sent only
 *          from the notifier thread, holding no lock of ours.
 *
 * Wire usage (our reading of msgtab.h):
 *   LOOKUP   fid=dir name            -> attr=object attr2=dir
 *   CREATE   fid=dir fid2=new name   -> attr=new attr2=dir
 *   REMOVE   fid=dir name            -> attr=object attr2=dir
 *   RENAME   fid=src dir fid2=dst dir name=src name2=dst -> attr=src dir attr2=dst dir
 *   LINK     fid=object fid2=dir name -> attr=object attr2=dir
 *   READDIR  fid=dir name=resume after ("" = start) length=max entries
 *   FETCH    fid offset length expect=data version
 *   STORE    chunks under one handle, FIRST .. LAST (length = final size)
 */
#include "client/fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "client/cache.h"
#include "client/cml.h"
#include "client/conn.h"
#include "client/emul.h"
#include "client/flusher.h"
#include "client/inode.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/thread.h"
#include "common/xalloc.h"

/* Kernel caching while a callback is held: the server will tell us. */
#define CB_TIMEOUT 86400.0
/* Bulk transfers keep this many chunk calls in flight (16 x 512 KiB), enough
 * to cover a LAN round trip at disk speed. */
#define XFER_WINDOW 16
/* Attempts to fetch a file that keeps changing under us. */
#define FETCH_TRIES 3
/* A store that found no member is tried again every STORE_RETRY_MS, for at
 * most STORE_RETRIES times (the update stall bound, 2 s). */
#define STORE_RETRIES  20
#define STORE_RETRY_MS 100
/* Tries of a call refused because a replica is not at the version the
 * client saw (versioned_call); the last goes without expected versions. */
#define VERSIONED_TRIES 4
/* How long a validation that every reachable replica refuses as behind the
 * version this client saw (the replicas that have it are away, or the one
 * back has not been resolved yet) waits for one that has it, asking again
 * every BEHIND_RETRY_MS, before it takes what they have: taking an older
 * state would hand back, or build on, data the client saw replaced. */
#define BEHIND_WAIT_MS	10000
#define BEHIND_RETRY_MS 100

#define CTR_ADD(cl, name, n) atomic_fetch_add_explicit(&(cl)->ctr.name, (n), memory_order_relaxed)

/* ---------- notifier ---------- */

enum note_kind {
	NOTE_INODE, /* invalidate ino (attrs + data), then names */
	NOTE_ALL,   /* a connection was lost: invalidate every inode */
};

/* How long a callback break's acknowledgement waits for the kernel to drop
 * the names under a directory. fuse_lowlevel_notify_inval_entry takes the
 * directory's i_rwsem, which the kernel holds while one of our own updates
 * in that directory waits for its server reply, and the server may hold
 * that reply until another client acknowledges a break that waits on us:
 * past this bound we acknowledge anyway, and the names follow as soon as
 * our update returns (it is concurrent with the breaking one). Well below
 * the server's break deadline (LOOP_BREAK_DEADLINE_MS, 2 s). */
#define NAMES_WAIT_MS 200

struct note {
	struct note *next;
	enum note_kind kind;
	uint64_t ino; /* 0: nothing cached, only acknowledge */
	char **names; /* owned */
	size_t n_names;
	struct conn_brk *brk; /* owned: acknowledged once invalidated; may be NULL */
};

/* Two threads, so that a name invalidation blocked on a directory lock
 * cannot hold up every later acknowledgement: the notifier invalidates
 * attributes and pages (never blocks on a FUSE request of ours that waits
 * for a server), hands names to the names thread, waits for them at most
 * NAMES_WAIT_MS and then acknowledges the break. */
struct fsops_notifier {
	pthread_mutex_t lock;
	pthread_cond_t cond;	  /* signalled when head or names_head gets a note, or stop */
	pthread_cond_t done_cond; /* signalled when names_done moves */
	struct note *head, *tail; /* protected by lock: for the notifier */
	struct note *names_head, *names_tail; /* protected by lock: for the names thread */
	uint64_t names_queued;		      /* protected by lock: notes handed over */
	uint64_t names_done;		      /* protected by lock: notes finished */
	uint64_t names_stuck; /* notifier only: names_queued when a wait timed out */
	bool stop;	      /* protected by lock */
	pthread_t thread;
	pthread_t names_thread;
	bool names_started;
};

static void note_free(struct note *n)
{
	for (size_t i = 0; i < n->n_names; i++)
		free(n->names[i]);
	free(n->names);
	conn_break_ack(n->brk);
	free(n);
}

static void note_push(struct client *cl, struct note *n)
{
	struct fsops_notifier *nt = cl->notifier;

	if (nt == NULL) {
		note_free(n);
		return;
	}
	pthread_mutex_lock(&nt->lock);
	if (nt->tail != NULL)
		nt->tail->next = n;
	else
		nt->head = n;
	nt->tail = n;
	pthread_cond_broadcast(&nt->cond); /* the notifier, not the names thread */
	pthread_mutex_unlock(&nt->lock);
}

/* Marks in stale and takes the names the kernel may cache under it. */
/* drop_cached: the object changed (a break), so its cached listing and
 * target go too; after a connection loss they stay (untrusted while
 * connected, the cache of a disconnected volume). */
static struct note *break_inode(struct client *cl, struct inode *in, bool drop_cached)
{
	struct note *n = xcalloc(1, sizeof(*n));

	(void)cl;
	n->kind = NOTE_INODE;
	n->ino = in->ino;
	pthread_mutex_lock(&in->lock);
	in->cb_valid = false;
	in->stale = true;
	if (drop_cached) {
		free(in->target);
		in->target = NULL;
		inode_drop_listing_locked(in);
	}
	inode_take_knames_locked(in, &n->names, &n->n_names);
	pthread_mutex_unlock(&in->lock);
	return n;
}

/* Attributes and pages: the kernel takes no directory lock for this. */
static void send_inval_inode(struct client *cl, struct note *n)
{
	int ret;

	if (cl->se == NULL || n->ino == 0)
		return;
	ret = fuse_lowlevel_notify_inval_inode(cl->se, n->ino, 0, 0);
	if (ret < 0 && ret != -ENOENT)
		log_debug("fsops", "inval inode %llu: %s", (unsigned long long)n->ino,
			  strerror(-ret));
}

/* Names: each call takes the directory's i_rwsem (names thread only). */
static void send_inval_names(struct client *cl, struct note *n)
{
	if (cl->se == NULL)
		return;
	for (size_t i = 0; i < n->n_names; i++)
		fuse_lowlevel_notify_inval_entry(cl->se, n->ino, n->names[i], strlen(n->names[i]));
}

/* Hands n's names to the names thread (takes ownership of n, whose brk the
 * caller has taken out). Returns its sequence number. */
static uint64_t names_push(struct fsops_notifier *nt, struct note *n)
{
	uint64_t seq;

	n->next = NULL;
	pthread_mutex_lock(&nt->lock);
	if (nt->names_tail != NULL)
		nt->names_tail->next = n;
	else
		nt->names_head = n;
	nt->names_tail = n;
	seq = ++nt->names_queued;
	pthread_cond_broadcast(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
	return seq;
}

/* Waits until the names thread finished note seq, at most NAMES_WAIT_MS,
 * and not at all while an earlier wait timed out and the names thread has
 * not caught up since (one blocked directory costs one wait, not one per
 * break). */
static void names_wait(struct fsops_notifier *nt, uint64_t seq)
{
	struct timespec ts;

	deadline_in_ms(&ts, CLOCK_MONOTONIC, NAMES_WAIT_MS);
	pthread_mutex_lock(&nt->lock);
	if (nt->names_stuck != 0 && nt->names_done >= nt->names_stuck)
		nt->names_stuck = 0;
	while (nt->names_stuck == 0 && nt->names_done < seq && !nt->stop) {
		if (pthread_cond_timedwait(&nt->done_cond, &nt->lock, &ts) == ETIMEDOUT &&
		    nt->names_done < seq) {
			nt->names_stuck = seq;
			log_debug("fsops", "name invalidation blocked, acknowledging break");
		}
	}
	pthread_mutex_unlock(&nt->lock);
}

/* Invalidates n in the kernel (attributes and pages here, names through
 * the names thread), then acknowledges its break. Takes ownership of n. */
static void note_run(struct client *cl, struct note *n, bool wait)
{
	struct fsops_notifier *nt = cl->notifier;
	struct conn_brk *brk = n->brk;

	n->brk = NULL;
	send_inval_inode(cl, n);
	if (n->n_names > 0) {
		uint64_t seq = names_push(nt, n);
		if (wait && brk != NULL)
			names_wait(nt, seq);
	} else {
		note_free(n);
	}
	if (brk != NULL) {
		conn_break_ack(brk);
		CTR_ADD(cl, cb_acks, 1);
	}
}

static void inval_all_cb(void *arg, struct inode *in)
{
	struct client *cl = arg;

	if (in->ino == INODE_TOP)
		return;
	note_run(cl, break_inode(cl, in, false), false);
}

static void *names_main(void *arg)
{
	struct client *cl = arg;
	struct fsops_notifier *nt = cl->notifier;

	for (;;) {
		struct note *n;

		pthread_mutex_lock(&nt->lock);
		while (nt->names_head == NULL && !nt->stop)
			pthread_cond_wait(&nt->cond, &nt->lock);
		n = nt->names_head;
		if (n == NULL) {
			pthread_mutex_unlock(&nt->lock);
			break;
		}
		nt->names_head = n->next;
		if (nt->names_head == NULL)
			nt->names_tail = NULL;
		pthread_mutex_unlock(&nt->lock);
		send_inval_names(cl, n);
		note_free(n);
		pthread_mutex_lock(&nt->lock);
		nt->names_done++;
		pthread_cond_broadcast(&nt->done_cond);
		pthread_mutex_unlock(&nt->lock);
	}
	return NULL;
}

static void *notifier_main(void *arg)
{
	struct client *cl = arg;
	struct fsops_notifier *nt = cl->notifier;

	for (;;) {
		struct note *n;

		pthread_mutex_lock(&nt->lock);
		while (nt->head == NULL && !nt->stop)
			pthread_cond_wait(&nt->cond, &nt->lock);
		n = nt->head;
		if (n == NULL) {
			pthread_mutex_unlock(&nt->lock);
			break;
		}
		nt->head = n->next;
		if (nt->head == NULL)
			nt->tail = NULL;
		pthread_mutex_unlock(&nt->lock);
		if (n->kind == NOTE_ALL) {
			itab_foreach(cl->itab, inval_all_cb, cl);
			note_free(n);
		} else {
			note_run(cl, n, true);
		}
	}
	return NULL;
}

static void notes_free(struct note *n)
{
	while (n != NULL) {
		struct note *next = n->next;

		note_free(n);
		n = next;
	}
}

static void fsops_stop_threads(struct client *cl, bool notifier_started);

int fsops_start(struct client *cl)
{
	struct fsops_notifier *nt = xcalloc(1, sizeof(*nt));
	pthread_condattr_t ca;
	int ret;

	pthread_mutex_init(&nt->lock, NULL);
	pthread_cond_init(&nt->cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&nt->done_cond, &ca);
	pthread_condattr_destroy(&ca);
	cl->notifier = nt;
	ret = pthread_create(&nt->names_thread, NULL, names_main, cl);
	if (ret == 0) {
		nt->names_started = true;
		ret = pthread_create(&nt->thread, NULL, notifier_main, cl);
	}
	if (ret != 0) {
		fsops_stop_threads(cl, false);
		return -ret;
	}
	return 0;
}

/* Stops the threads that were started and frees the notifier; pending
 * breaks are acknowledged unprocessed (the session is going away). */
static void fsops_stop_threads(struct client *cl, bool notifier_started)
{
	struct fsops_notifier *nt = cl->notifier;

	pthread_mutex_lock(&nt->lock);
	nt->stop = true;
	pthread_cond_broadcast(&nt->cond);
	pthread_cond_broadcast(&nt->done_cond);
	pthread_mutex_unlock(&nt->lock);
	if (notifier_started)
		pthread_join(nt->thread, NULL);
	if (nt->names_started)
		pthread_join(nt->names_thread, NULL);
	notes_free(nt->head);
	notes_free(nt->names_head);
	cl->notifier = NULL;
	pthread_mutex_destroy(&nt->lock);
	pthread_cond_destroy(&nt->cond);
	pthread_cond_destroy(&nt->done_cond);
	free(nt);
}

void fsops_stop(struct client *cl)
{
	if (cl->notifier == NULL)
		return;
	fsops_stop_threads(cl, true);
}

void fsops_on_break(void *arg, const struct fid *fid, struct conn_brk *brk)
{
	struct client *cl = arg;
	struct inode *in;
	struct note *n;

	CTR_ADD(cl, cb_breaks, 1);
	in = inode_get_fid(cl->itab, fid);
	if (in != NULL && emul_keep_on_break(cl, in)) {
		/* Emulated state wins until reintegration (docs/disconnected.md). */
		inode_put(cl->itab, in);
		in = NULL;
	}
	if (in == NULL) {
		if (brk != NULL) {
			/* Nothing cached; acknowledge from the notifier (not here:
			 * the ack may close the connection this thread reads). */
			n = xcalloc(1, sizeof(*n));
			n->kind = NOTE_INODE;
			n->brk = brk;
			note_push(cl, n);
		}
		return;
	}
	n = break_inode(cl, in, true);
	n->brk = brk;
	note_push(cl, n);
	/* Attributes only (offset < 0): the kernel takes no page or directory
	 * lock for this, so it cannot wait on a FUSE worker and is safe on the
	 * reader thread. Doing it here, before the next reply is delivered,
	 * closes most of the window in which a stat() could still see the old
	 * attributes. Pages and names follow from the notifier thread. */
	if (cl->se != NULL)
		fuse_lowlevel_notify_inval_inode(cl->se, in->ino, -1, 0);
	inode_put(cl->itab, in);
}

void fsops_on_lost(void *arg, int server)
{
	struct client *cl = arg;
	struct note *n = xcalloc(1, sizeof(*n));

	(void)server;
	CTR_ADD(cl, conn_losses, 1);
	n->kind = NOTE_ALL;
	note_push(cl, n);
}

/* ---------- helpers ---------- */

/* The only caller of fuse_reply_err (STYLE section 4). */
static void reply_err(fuse_req_t req, int ret)
{
	int e;

	ASSERT(ret < 0);
	e = err_to_errno(ret);
	switch (e) {
	case ENOTCONN:
	case ECONNRESET:
	case ECONNREFUSED:
	case EPIPE:
	case EPROTO:
	case EHOSTUNREACH:
		e = EIO;
		break;
	default:
		break;
	}
	if (e <= 0 || e >= 1000)
		e = EIO;
	fuse_reply_err(req, e);
}

static struct client *req_client(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Credentials of the hoard walk running on this thread (fsops_walk_*):
 * requests built without a FUSE request (req NULL) carry them. */
static __thread const struct cred *walk_cred;

static void req_cred(fuse_req_t req, struct cred *cr)
{
	const struct fuse_ctx *ctx;
	gid_t groups[GROUPS_MAX];
	int n;

	memset(cr, 0, sizeof(*cr));
	if (req == NULL) {
		if (walk_cred != NULL)
			*cr = *walk_cred;
		return;
	}
	ctx = fuse_req_ctx(req);
	cr->uid = ctx->uid;
	cr->gid = ctx->gid;
	n = fuse_req_getgroups(req, GROUPS_MAX, groups);
	if (n > GROUPS_MAX)
		n = GROUPS_MAX;
	for (int i = 0; i < n; i++)
		cr->groups[cr->n_groups++] = groups[i];
}

static struct msg *req_msg(fuse_req_t req, struct msg *m, uint16_t type)
{
	msg_init(m, type);
	req_cred(req, &m->cred);
	return m;
}

static bool cb_ok_locked(struct client *cl, struct inode *in)
{
	return (in->cb_valid && !in->stale && in->cb_epoch == conn_epoch(cl->conn)) ||
	       emul_trust_locked(cl, in);
}

static bool cb_ok(struct client *cl, struct inode *in)
{
	bool ok;

	pthread_mutex_lock(&in->lock);
	ok = cb_ok_locked(cl, in);
	pthread_mutex_unlock(&in->lock);
	return ok;
}

/* Records attrs from a reply; the reply grants a callback unless a break or
 * loss happened since gen was sampled (before the call). An object the CML
 * still names keeps its emulated attributes and listing: the servers do not
 * have the logged updates yet (a LOOKUP of a directory the log created
 * entries in must not make the client forget them, docs/disconnected.md). */
static void grant(struct client *cl, struct inode *in, const struct attr *a, uint64_t gen)
{
	bool local = emul_keep_on_break(cl, in);

	pthread_mutex_lock(&in->lock);
	if (local && in->have_attr) {
		pthread_mutex_unlock(&in->lock);
		return;
	}
	if (in->stale) {
		/* A listing or target kept across a connection loss (for
		 * disconnected operation) is not current: reload it. */
		inode_drop_listing_locked(in);
		free(in->target);
		in->target = NULL;
	}
	if (in->n_open > 0 && in->dirty) {
		/* Local size and times win while the container is modified. */
		struct attr keep = in->attr;

		in->attr = *a;
		in->attr.size = keep.size;
		in->attr.mtime = keep.mtime;
		in->attr.blocks = keep.blocks;
	} else {
		in->attr = *a;
	}
	in->have_attr = true;
	in->unverified = false;
	if (conn_cb_gen(cl->conn) == gen) {
		in->cb_valid = true;
		in->stale = false;
		in->cb_epoch = conn_epoch(cl->conn);
	} else {
		in->cb_valid = false;
	}
	pthread_mutex_unlock(&in->lock);
}

/* True if a (one replica's answer) lacks an update counted in the version
 * of in that this client has seen: another StoreId and a vector lower in
 * some slot. */
static bool attr_behind(struct inode *in, const struct attr *a)
{
	bool behind = false;

	pthread_mutex_lock(&in->lock);
	if (in->have_attr && !storeid_eq(&in->attr.sid, &a->sid)) {
		enum vv_order o = vv_compare(&a->vv, &in->attr.vv);

		behind = o == VV_DOMINATED || o == VV_CONFLICT;
	}
	pthread_mutex_unlock(&in->lock);
	return behind;
}

static void wtime_now(struct wtime *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	t->sec = ts.tv_sec;
	t->nsec = (uint32_t)ts.tv_nsec;
}

static void top_stat(struct client *cl, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = INODE_TOP;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 3;
	st->st_blksize = 4096;
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = cl->start_sec;
}

static void inode_stat_locked(struct inode *in, struct stat *st)
{
	const struct attr *a = &in->attr;

	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = 65536;
	st->st_atim.tv_sec = a->atime.sec;
	st->st_atim.tv_nsec = a->atime.nsec;
	st->st_mtim.tv_sec = a->mtime.sec;
	st->st_mtim.tv_nsec = a->mtime.nsec;
	st->st_ctim.tv_sec = a->ctime.sec;
	st->st_ctim.tv_nsec = a->ctime.nsec;
	if (in->n_open > 0 && in->dirty && in->fd >= 0) {
		struct stat cst;

		if (fstat(in->fd, &cst) == 0) {
			st->st_size = cst.st_size;
			st->st_blocks = cst.st_blocks;
		}
	}
}

/* A call no member took for want of a connection (not a refusal). */
static bool store_transport_err(int ret)
{
	return ret == -ENOTCONN || ret == -ETIMEDOUT || ret == -ECONNRESET || ret == -EPIPE ||
	       ret == -ECONNREFUSED;
}

/* The version of in the client last saw (StoreId, and with vv its vector);
 * zero (any) if the client has no attributes of it. */
static void expect_of(struct inode *in, bool vv, struct xver *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&in->lock);
	if (in->have_attr) {
		out->sid = in->attr.sid;
		if (vv)
			out->vv = in->attr.vv;
	}
	pthread_mutex_unlock(&in->lock);
}

/* Fetches attrs from the server (GETATTR) and records them. If every
 * reachable replica is behind the version this client saw, waits for one
 * that has it until the monotonic time until_ns (now_ns clock). */
static int getattr_until(struct client *cl, fuse_req_t req, struct inode *in, uint64_t until_ns)
{
	struct msg m, rep;
	struct conn_call cc;
	uint64_t gen = conn_cb_gen(cl->conn);
	bool said = false;
	int ret;

	req_msg(req, &m, MSG_GETATTR);
	m.fid = in->fid;
	/* The version this client last saw (F_XVER): a replica behind it
	 * refuses instead of handing back an older state (with which this
	 * client would refetch, or replace, its own newer copy); the
	 * validation takes the others' answers and has it resolved. If every
	 * replica is behind, the client waits (bounded) for one that is not:
	 * a server back from a crash comes up, or resolution brings the
	 * others level; then it takes what they have (a call without
	 * expectations). */
	expect_of(in, true, &m.xver[0]);
	ret = conn_call(cl->conn, &m, &rep, &cc);
	/* No replica reachable has it while some are away: it may have been
	 * made while the reachable ones were away (or removed by another
	 * client): waited for alike. */
	while ((ret == -ERR_VERSION || (ret == -ENOENT && !storeid_is_zero(&m.xver[0].sid) &&
					!conn_vol_complete(cl->conn, in->fid.vol))) &&
	       now_ns() < until_ns && !emul_logging(cl, in->fid.vol)) {
		if (!said)
			log_info("fsops",
				 "getattr of inode %llu: every replica reachable is behind the "
				 "version seen: waiting for one that has it",
				 (unsigned long long)in->ino);
		said = true;
		usleep(BEHIND_RETRY_MS * 1000);
		gen = conn_cb_gen(cl->conn);
		ret = conn_call(cl->conn, &m, &rep, &cc);
	}
	if (ret == -ERR_VERSION) {
		log_info("fsops", "getattr of inode %llu: every replica is behind the version seen",
			 (unsigned long long)in->ino);
		memset(m.xver, 0, sizeof(m.xver));
		ret = conn_call(cl->conn, &m, &rep, &cc);
	} else if (said) {
		log_info("fsops", "getattr of inode %llu: %s after waiting",
			 (unsigned long long)in->ino, ret == 0 ? "a replica has it" : err_str(ret));
	}
	if (ret < 0)
		return ret;
	grant(cl, in, &rep.attr, gen);
	conn_done(cl->conn, &cc);
	return 0;
}

static int do_getattr(struct client *cl, fuse_req_t req, struct inode *in)
{
	return getattr_until(cl, req, in, now_ns() + BEHIND_WAIT_MS * 1000000ull);
}

/* conn_call of a request that carries the versions the client last saw of
 * m->fid (a) and m->fid2 (b), either may be NULL (F_XVER: docs/replication.md
 * "Expected versions"). Updates send StoreIds: a replica not at them
 * refuses; if some replicas performed the update it succeeded (the conn
 * layer has the others resolved). Reads (LOOKUP, READDIR) also send the
 * vectors: a replica behind them refuses, one at or after them answers.
 * When the call is refused (every replica, for an update; the one asked,
 * for a read), the objects are revalidated (GETATTR from every replica,
 * which resolves replicas that differ) and the call tried again (an update
 * with a fresh StoreId). The last try goes without expectations rather than
 * fail a system call that a local file system would perform. */
static int versioned_call(struct client *cl, fuse_req_t req, struct msg *m, struct msg *rep,
			  struct conn_call *cc, struct inode *a, struct inode *b)
{
	bool read = m->type == MSG_LOOKUP || m->type == MSG_READDIR;
	uint64_t until = 0;

	for (int i = 1;; i++) {
		int ret;

		memset(m->xver, 0, sizeof(m->xver));
		if (i < VERSIONED_TRIES && a != NULL)
			expect_of(a, read, &m->xver[0]);
		if (i < VERSIONED_TRIES && b != NULL)
			expect_of(b, read, &m->xver[1]);
		ret = conn_call(cl->conn, m, rep, cc);
		/* A read that found no member (the last reachable one failed
		 * under it) is tried again while servers come back, within the
		 * stall bound; updates are not (one may have been performed). */
		for (int k = 0; read && k < STORE_RETRIES && store_transport_err(ret) &&
				!emul_logging(cl, m->fid.vol);
		     k++) {
			usleep(STORE_RETRY_MS * 1000);
			ret = conn_call(cl->conn, m, rep, cc);
		}
		if (ret != -ERR_VERSION || i >= VERSIONED_TRIES)
			return ret;
		log_info("fsops", "%s refused (a replica is not at the version seen): revalidating",
			 msg_name(m->type));
		/* One bound for the call's waits for a replica that has the
		 * versions seen (getattr_until), however many tries. */
		if (until == 0)
			until = now_ns() + BEHIND_WAIT_MS * 1000000ull;
		if (a != NULL)
			(void)getattr_until(cl, req, a, until);
		if (b != NULL && b != a)
			(void)getattr_until(cl, req, b, until);
		if (!read)
			conn_next_storeid(cl->conn, &m->sid);
	}
}

/* Attributes from one replica's LOOKUP answer (unverified) are validated
 * against every replica before they serve as the version a read of the
 * object expects (F_XVER): the replica that answered may be behind on it,
 * and a READDIR expecting its old version would take its old listing. */
static int verify_attr(struct client *cl, fuse_req_t req, struct inode *in)
{
	bool check;

	if (emul_logging(cl, in->fid.vol))
		return 0; /* disconnected: the cache answers */
	pthread_mutex_lock(&in->lock);
	check = in->unverified && !emul_trust_locked(cl, in);
	pthread_mutex_unlock(&in->lock);
	return check ? do_getattr(cl, req, in) : 0;
}

static int ensure_attr(struct client *cl, fuse_req_t req, struct inode *in)
{
	bool ok;

	pthread_mutex_lock(&in->lock);
	ok = in->have_attr && (cb_ok_locked(cl, in) || in->removed);
	pthread_mutex_unlock(&in->lock);
	return ok ? 0 : do_getattr(cl, req, in);
}

/* Returns the inode of the realm root (new reference), fetching it with
 * GETROOT on first use. */
static int get_root(struct client *cl, fuse_req_t req, struct inode **out)
{
	struct msg m, rep;
	struct conn_call cc;
	struct inode *in;
	uint64_t gen;
	bool have;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&cl->root_lock);
	have = cl->have_root;
	in = have ? inode_get_fid(cl->itab, &cl->root_fid) : NULL;
	pthread_mutex_unlock(&cl->root_lock);
	if (in != NULL) {
		*out = in;
		return 0;
	}
	gen = conn_cb_gen(cl->conn);
	req_msg(req, &m, MSG_GETROOT);
	snprintf(m.realm, sizeof(m.realm), "%s", cl->realm);
	ret = conn_call(cl->conn, &m, &rep, &cc);
	if (ret < 0)
		return ret;
	in = inode_get_or_create(cl->itab, &rep.attr.fid);
	grant(cl, in, &rep.attr, gen);
	conn_done(cl->conn, &cc);
	pthread_mutex_lock(&cl->root_lock);
	if (!cl->have_root) {
		cl->have_root = true;
		cl->root_fid = in->fid;
		cl->root_ino = in->ino;
		inode_ref(cl->itab, in); /* the client keeps the root forever */
	}
	pthread_mutex_unlock(&cl->root_lock);
	*out = in;
	return 0;
}

static void fill_entry(struct client *cl, struct inode *in, struct fuse_entry_param *e,
		       bool name_tracked, bool dir_cb)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->ino;
	pthread_mutex_lock(&in->lock);
	inode_stat_locked(in, &e->attr);
	e->attr_timeout = cb_ok_locked(cl, in) ? CB_TIMEOUT : 0;
	pthread_mutex_unlock(&in->lock);
	e->entry_timeout = name_tracked && dir_cb ? CB_TIMEOUT : 0;
}

/* Replies an entry for in (adds a kernel lookup). */
static void reply_entry(struct client *cl, fuse_req_t req, struct inode *parent, const char *name,
			struct inode *in)
{
	struct fuse_entry_param e;
	bool tracked = false, dir_cb = false;

	if (parent != NULL && name != NULL) {
		pthread_mutex_lock(&parent->lock);
		dir_cb = cb_ok_locked(cl, parent);
		if (dir_cb)
			tracked = inode_add_kname_locked(parent, name);
		pthread_mutex_unlock(&parent->lock);
		pthread_mutex_lock(&in->lock);
		inode_set_name_locked(in, parent->ino, name);
		pthread_mutex_unlock(&in->lock);
	} else {
		tracked = dir_cb = true; /* the top directory never changes */
	}
	fill_entry(cl, in, &e, tracked, dir_cb);
	inode_lookup_inc(cl->itab, in);
	if (fuse_reply_entry(req, &e) != 0)
		inode_forget(cl->itab, in->ino, 1);
}

static void reply_negative(struct client *cl, fuse_req_t req, struct inode *parent,
			   const char *name)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	if (parent == NULL) {
		e.entry_timeout = CB_TIMEOUT;
	} else {
		pthread_mutex_lock(&parent->lock);
		if (cb_ok_locked(cl, parent) && inode_add_kname_locked(parent, name))
			e.entry_timeout = CB_TIMEOUT;
		pthread_mutex_unlock(&parent->lock);
	}
	fuse_reply_entry(req, &e);
}

static void reply_attr_in(struct client *cl, fuse_req_t req, struct inode *in)
{
	struct stat st;
	double to;

	pthread_mutex_lock(&in->lock);
	inode_stat_locked(in, &st);
	to = cb_ok_locked(cl, in) ? CB_TIMEOUT : 0;
	pthread_mutex_unlock(&in->lock);
	fuse_reply_attr(req, &st, to);
}

/* Debug trace of a directory version a reply gave (-vv): which update
 * (StoreId) and version vector, for following replicas in chaos runs. */
static void log_dir_version(const char *what, const struct inode *dir, const struct attr *a,
			    uint32_t from, size_t n_ents)
{
	char fs[FID_STR_LEN], vs[VV_STR_LEN];

	if (log_get_level() < LOG_DEBUG)
		return;
	fid_fmt(&dir->fid, fs);
	vv_fmt(&a->vv, vs);
	log_debug("fsops", "%s %s (inode %llu): server %u, %zu entries, sid %llx:%llu vv %s", what,
		  fs, (unsigned long long)dir->ino, from, n_ents, (unsigned long long)a->sid.client,
		  (unsigned long long)a->sid.seq, vs);
}

/* A directory we changed: its listing must be reloaded. */
static void dir_changed(struct client *cl, struct inode *dir, const struct attr *a, uint64_t gen)
{
	log_dir_version("changed", dir, a, 0, 0);
	pthread_mutex_lock(&dir->lock);
	inode_drop_listing_locked(dir);
	pthread_mutex_unlock(&dir->lock);
	grant(cl, dir, a, gen);
}

/* A directory we added name (object a) to. If its cached listing was
 * current just before our change (callback held throughout, and the
 * server's data version moved by exactly our update), the listing stays
 * valid with the new entry, so later lookups of new names (each create
 * looks its name up first) are answered locally. Otherwise as dir_changed. */
static void dir_added(struct client *cl, struct inode *dir, const struct attr *da, uint64_t gen,
		      const char *name, const struct attr *a)
{
	log_dir_version("added to", dir, da, 0, 0);
	pthread_mutex_lock(&dir->lock);
	if (dir->list_valid && cb_ok_locked(cl, dir) && conn_cb_gen(cl->conn) == gen &&
	    dir->attr.data_version + 1 == da->data_version &&
	    inode_find_ent_locked(dir, name) == NULL) {
		struct dirent_w *d;

		dir->ents = xrealloc(dir->ents, (dir->n_ents + 1) * sizeof(*dir->ents));
		d = &dir->ents[dir->n_ents++];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", name);
		d->fid = a->fid;
		d->mode = a->mode;
	} else {
		inode_drop_listing_locked(dir);
	}
	pthread_mutex_unlock(&dir->lock);
	grant(cl, dir, da, gen);
}

/* Makes dir's listing current: cached while the callback holds, else
 * fetched whole (all READDIR pages). With copy non-NULL, *copy and *n_copy get the listing it
 * found or fetched (owned), even when a connection loss during the fetch
 * keeps it from being cached: it was the server's at the time. */
static int load_listing_copy(struct client *cl, fuse_req_t req, struct inode *dir,
			     struct dirent_w **copy, size_t *n_copy)
{
	struct dirent_w *ents = NULL;
	size_t n = 0, cap = 0;
	char after[NAME_MAX_LEN + 1] = "";
	uint64_t gen;
	bool ok;
	int ret;

	pthread_mutex_lock(&dir->lock);
	ok = dir->list_valid && cb_ok_locked(cl, dir);
	if (ok && copy != NULL) {
		*copy = inode_ents_dup(dir->ents, dir->n_ents);
		*n_copy = dir->n_ents;
	}
	pthread_mutex_unlock(&dir->lock);
	if (ok)
		return 0;
	ret = verify_attr(cl, req, dir);
	if (ret < 0)
		return ret;
	gen = conn_cb_gen(cl->conn);
	for (;;) {
		struct msg m, rep;
		struct conn_call cc;
		struct rd r;
		struct dirent_w d;
		uint32_t mflags;

		req_msg(req, &m, MSG_READDIR);
		m.fid = dir->fid;
		snprintf(m.name, sizeof(m.name), "%s", after);
		m.length = READDIR_MAX_ENTRIES;
		ret = versioned_call(cl, req, &m, &rep, &cc, dir, NULL);
		if (ret < 0)
			goto err;
		rd_init(&r, rep.data, rep.data_len);
		while ((ret = dirent_decode(&r, &d)) == 1) {
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				ents = xrealloc(ents, cap * sizeof(*ents));
			}
			ents[n++] = d;
		}
		mflags = rep.mflags;
		log_dir_version("listing", dir, &rep.attr, conn_call_answered_by(&cc), n);
		grant(cl, dir, &rep.attr, gen);
		conn_done(cl->conn, &cc);
		if (ret < 0)
			goto err;
		if (mflags & READDIR_EOF)
			break;
		if (n == 0 || strcmp(after, ents[n - 1].name) == 0) {
			ret = -EPROTO; /* no progress: a broken server */
			goto err;
		}
		snprintf(after, sizeof(after), "%s", ents[n - 1].name);
	}
	if (copy != NULL) {
		*copy = inode_ents_dup(ents, n);
		*n_copy = n;
	}
	pthread_mutex_lock(&dir->lock);
	if (conn_cb_gen(cl->conn) == gen) {
		inode_set_listing_locked(dir, ents, n);
		ents = NULL;
	} else {
		/* A listing kept across a connection loss is not current:
		 * callers that find none load again. */
		inode_drop_listing_locked(dir);
	}
	pthread_mutex_unlock(&dir->lock);
	free(ents);
	return 0;
err:
	free(ents);
	return ret;
}

static int load_listing(struct client *cl, fuse_req_t req, struct inode *dir)
{
	return load_listing_copy(cl, req, dir, NULL, NULL);
}

/* ---------- lookup, attrs ---------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

/* A name LOOKUP found in dir (attrs a; dir's attrs da) while no listing is
 * cached: kept, so that a disconnection soon after can still find it
 * (emul_lookup_name) even once the kernel has forgotten the object. Not
 * if dir changed since (a break, or our own update: either drops the
 * learned names with the listing). */
static void learn_name(struct client *cl, struct inode *dir, const char *name, const struct attr *a,
		       const struct attr *da, uint64_t gen)
{
	struct dirent_w d;

	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "%s", name);
	d.fid = a->fid;
	d.mode = a->mode;
	pthread_mutex_lock(&dir->lock);
	if (!dir->list_valid && conn_cb_gen(cl->conn) == gen &&
	    dir->attr.data_version == da->data_version)
		inode_learn_locked(dir, &d);
	pthread_mutex_unlock(&dir->lock);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct client *cl = req_client(req);
	struct inode *dir, *in = NULL;
	struct msg m, rep;
	struct conn_call cc;
	uint64_t gen;
	int ret;

	if (strlen(name) > NAME_MAX_LEN) {
		reply_err(req, -ENAMETOOLONG);
		return;
	}
	if (parent == INODE_TOP) {
		if (strcmp(name, cl->realm) != 0) {
			reply_negative(cl, req, NULL, name);
			return;
		}
		ret = get_root(cl, req, &in);
		if (ret < 0) {
			reply_err(req, ret);
			return;
		}
		ret = ensure_attr(cl, req, in);
		if (ret < 0)
			reply_err(req, ret);
		else
			reply_entry(cl, req, NULL, NULL, in);
		inode_put(cl->itab, in);
		return;
	}
	dir = inode_get_ino(cl->itab, parent);
	if (dir == NULL) {
		reply_err(req, -ESTALE);
		return;
	}
	/* Answer from the cached listing while the callback holds. */
	pthread_mutex_lock(&dir->lock);
	if (dir->list_valid && cb_ok_locked(cl, dir)) {
		const struct dirent_w *d = inode_find_ent_locked(dir, name);

		if (d == NULL) {
			pthread_mutex_unlock(&dir->lock);
			CTR_ADD(cl, lookup_hits, 1);
			reply_negative(cl, req, dir, name);
			goto out;
		}
		struct dirent_w dent = *d;

		in = inode_get_fid(cl->itab, &d->fid);
		pthread_mutex_unlock(&dir->lock);
		if (in != NULL && cb_ok(cl, in)) {
			pthread_mutex_lock(&in->lock);
			ret = in->have_attr;
			pthread_mutex_unlock(&in->lock);
			if (ret) {
				CTR_ADD(cl, lookup_hits, 1);
				reply_entry(cl, req, dir, name, in);
				goto out;
			}
		}
		inode_put(cl->itab, in);
		/* Not connected: the cache index may know the object. */
		in = emul_inode_cached(cl, dir, &dent);
		if (in != NULL) {
			reply_entry(cl, req, dir, name, in);
			goto out;
		}
	} else {
		pthread_mutex_unlock(&dir->lock);
		/* Not connected and no listing: an inode known by this name. */
		in = emul_lookup_name(cl, dir, name);
		if (in != NULL) {
			reply_entry(cl, req, dir, name, in);
			goto out;
		}
	}
	ret = verify_attr(cl, req, dir);
	if (ret < 0) {
		reply_err(req, ret);
		goto out;
	}
	gen = conn_cb_gen(cl->conn);
	req_msg(req, &m, MSG_LOOKUP);
	m.fid = dir->fid;
	snprintf(m.name, sizeof(m.name), "%s", name);
	ret = versioned_call(cl, req, &m, &rep, &cc, dir, NULL);
	if (ret == -ENOENT) {
		reply_negative(cl, req, dir, name);
		goto out;
	}
	if (ret < 0) {
		reply_err(req, ret);
		goto out;
	}
	grant(cl, dir, &rep.attr2, gen);
	learn_name(cl, dir, name, &rep.attr, &rep.attr2, gen);
	in = inode_get_or_create(cl->itab, &rep.attr.fid);
	/* The object's attributes come from the one replica that answered,
	 * which may be behind on it (F_XVER checked the directory only): the
	 * first open validates them against every replica (open_data). They
	 * never replace a version this client has seen that they lack (a
	 * later store would expect that older version: only the lagging
	 * replica would take it, a conflict). */
	if (!attr_behind(in, &rep.attr))
		grant(cl, in, &rep.attr, gen);
	pthread_mutex_lock(&in->lock);
	in->unverified = true;
	pthread_mutex_unlock(&in->lock);
	conn_done(cl->conn, &cc);
	reply_entry(cl, req, dir, name, in);
out:
	inode_put(cl->itab, in);
	inode_put(cl->itab, dir);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(req_client(req)->itab, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct client *cl = req_client(req);

	for (size_t i = 0; i < count; i++)
		inode_forget(cl->itab, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct inode *in;
	int ret;

	(void)fi;
	if (ino == INODE_TOP) {
		struct stat st;

		top_stat(cl, &st);
		fuse_reply_attr(req, &st, CB_TIMEOUT);
		return;
	}
	in = inode_get_ino(cl->itab, ino);
	if (in == NULL) {
		reply_err(req, -ESTALE);
		return;
	}
	ret = ensure_attr(cl, req, in);
	if (ret < 0)
		reply_err(req, ret);
	else
		reply_attr_in(cl, req, in);
	inode_put(cl->itab, in);
}

static void ts_to_wtime(const struct timespec *ts, struct wtime *w)
{
	w->sec = ts->tv_sec;
	w->nsec = (uint32_t)ts->tv_nsec;
}

static void mark_dirty(struct client *cl, struct inode *in);

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct inode *in;
	struct msg m, rep;
	struct conn_call cc;
	struct sattr *sa = &m.sattr;
	uint64_t gen;
	bool local_size = false;
	int ret = 0;

	(void)fi;
	if (ino == INODE_TOP) {
		reply_err(req, -EPERM);
		return;
	}
	in = inode_get_ino(cl->itab, ino);
	if (in == NULL) {
		reply_err(req, -ESTALE);
		return;
	}
	req_msg(req, &m, MSG_SETATTR);
	m.fid = in->fid;
	conn_next_storeid(cl->conn, &m.sid);
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa->valid |= SA_MODE;
		sa->mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa->valid |= SA_UID;
		sa->uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa->valid |= SA_GID;
		sa->gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		sa->valid |= SA_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		sa->valid |= SA_ATIME;
		ts_to_wtime(&attr->st_atim, &sa->atime);
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		sa->valid |= SA_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		sa->valid |= SA_MTIME;
		ts_to_wtime(&attr->st_mtim, &sa->mtime);
	}
	pthread_mutex_lock(&in->io_lock);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		pthread_mutex_lock(&in->lock);
		local_size = in->n_open > 0 && in->fd >= 0;
		if (local_size && ftruncate(in->fd, attr->st_size) < 0)
			ret = -errno;
		if (local_size)
			log_debug("fsops", "inode %llu: truncated locally to %lld",
				  (unsigned long long)in->ino, (long long)attr->st_size);
		if (local_size && ret == 0) {
			in->attr.size = (uint64_t)attr->st_size;
			wtime_now(&in->attr.mtime);
			in->attr.ctime = in->attr.mtime;
		}
		pthread_mutex_unlock(&in->lock);
		if (ret < 0)
			goto out_unlock;
		if (local_size) {
			mark_dirty(cl, in);
		} else {
			sa->valid |= SA_SIZE;
			sa->size = (uint64_t)attr->st_size;
		}
	}
	/* Times set on a modified open file are sent again with the store. */
	pthread_mutex_lock(&in->lock);
	if (in->n_open > 0 && in->dirty && (sa->valid & (SA_MTIME | SA_MTIME_NOW))) {
		if (sa->valid & SA_MTIME)
			in->attr.mtime = sa->mtime;
		else
			wtime_now(&in->attr.mtime);
	}
	pthread_mutex_unlock(&in->lock);
	if (sa->valid != 0 && emul_logging(cl, in->fid.vol)) {
		ret = emul_setattr(cl, in, sa);
	} else if (sa->valid != 0) {
		gen = conn_cb_gen(cl->conn);
		ret = versioned_call(cl, req, &m, &rep, &cc, in, NULL);
		if (ret == 0) {
			grant(cl, in, &rep.attr, gen);
			conn_done(cl->conn, &cc);
		}
	} else if (!local_size) {
		ret = ensure_attr(cl, req, in);
	}
out_unlock:
	pthread_mutex_unlock(&in->io_lock);
	if (ret < 0)
		reply_err(req, ret);
	else
		reply_attr_in(cl, req, in);
	inode_put(cl->itab, in);
}

/* ---------- namespace ---------- */

static struct inode *dir_get(struct client *cl, fuse_req_t req, fuse_ino_t ino)
{
	struct inode *in;

	if (ino == INODE_TOP) {
		reply_err(req, -EACCES);
		return NULL;
	}
	in = inode_get_ino(cl->itab, ino);
	if (in == NULL)
		reply_err(req, -ESTALE);
	return in;
}

/* CREATE of any type; on success *out is the new inode (reference). */
static int do_create(struct client *cl, fuse_req_t req, struct inode *dir, const char *name,
		     uint32_t mode, uint64_t rdev, const char *target, struct inode **out)
{
	struct msg m, rep;
	struct conn_call cc;
	uint64_t gen = conn_cb_gen(cl->conn);
	struct inode *in;
	int ret;

	*out = NULL;
	if (strlen(name) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	if (emul_logging(cl, dir->fid.vol)) {
		ret = load_listing(cl, req, dir);
		if (ret < 0)
			return ret;
		req_cred(req, &m.cred);
		return emul_create(cl, &m.cred, dir, name, mode, rdev, target, out);
	}
	req_msg(req, &m, MSG_CREATE);
	m.fid = dir->fid;
	m.fid2.vol = dir->fid.vol;
	oid_random(m.fid2.oid);
	snprintf(m.name, sizeof(m.name), "%s", name);
	if (target != NULL) {
		if (strlen(target) > TARGET_MAX_LEN)
			return -ENAMETOOLONG;
		snprintf(m.target, sizeof(m.target), "%s", target);
	}
	m.mode = mode;
	m.rdev = rdev;
	m.mflags = CREATE_EXCL;
	conn_next_storeid(cl->conn, &m.sid);
	ret = versioned_call(cl, req, &m, &rep, &cc, dir, NULL);
	if (ret < 0)
		return ret;
	dir_added(cl, dir, &rep.attr2, gen, name, &rep.attr);
	in = inode_get_or_create(cl->itab, &rep.attr.fid);
	grant(cl, in, &rep.attr, gen);
	if (S_ISDIR(rep.attr.mode)) {
		/* A new directory is empty: its listing is known while the
		 * callback holds. */
		pthread_mutex_lock(&in->lock);
		if (cb_ok_locked(cl, in) && !in->list_valid)
			inode_set_listing_locked(in, xcalloc(1, sizeof(*in->ents)), 0);
		pthread_mutex_unlock(&in->lock);
	}
	conn_done(cl->conn, &cc);
	*out = in;
	return 0;
}

static void mk_common(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t mode,
		      uint64_t rdev, const char *target)
{
	struct client *cl = req_client(req);
	struct inode *dir = dir_get(cl, req, parent), *in;
	int ret;

	if (dir == NULL)
		return;
	ret = do_create(cl, req, dir, name, mode, rdev, target, &in);
	if (ret < 0) {
		reply_err(req, ret);
	} else {
		reply_entry(cl, req, dir, name, in);
		inode_put(cl->itab, in);
	}
	inode_put(cl->itab, dir);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	mk_common(req, parent, name, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	mk_common(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	mk_common(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void do_remove(fuse_req_t req, fuse_ino_t parent, const char *name, bool is_dir)
{
	struct client *cl = req_client(req);
	struct inode *dir = dir_get(cl, req, parent), *in;
	struct msg m, rep;
	struct conn_call cc;
	uint64_t gen = conn_cb_gen(cl->conn);
	int ret;

	if (dir == NULL)
		return;
	if (emul_logging(cl, dir->fid.vol)) {
		ret = load_listing(cl, req, dir);
		if (ret == 0)
			ret = emul_remove(cl, dir, name, is_dir);
		if (ret < 0)
			reply_err(req, ret);
		else
			fuse_reply_err(req, 0);
		goto out;
	}
	req_msg(req, &m, MSG_REMOVE);
	m.fid = dir->fid;
	snprintf(m.name, sizeof(m.name), "%s", name);
	m.mflags = is_dir ? REMOVE_DIR : 0;
	conn_next_storeid(cl->conn, &m.sid);
	ret = versioned_call(cl, req, &m, &rep, &cc, dir, NULL);
	if (ret < 0) {
		reply_err(req, ret);
		goto out;
	}
	dir_changed(cl, dir, &rep.attr2, gen);
	in = inode_get_fid(cl->itab, &rep.attr.fid);
	if (in != NULL) {
		grant(cl, in, &rep.attr, gen);
		pthread_mutex_lock(&in->lock);
		if (rep.attr.nlink == 0 || is_dir) {
			in->stale = true; /* gone: never trust it again */
			in->removed = true;
		}
		pthread_mutex_unlock(&in->lock);
		inode_put(cl->itab, in);
	}
	if (rep.attr.nlink == 0 && !is_dir)
		cache_drop_data(cl->cache, &rep.attr.fid);
	conn_done(cl->conn, &cc);
	fuse_reply_err(req, 0);
out:
	inode_put(cl->itab, dir);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, true);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct client *cl = req_client(req);
	struct inode *src, *dst = NULL;
	struct msg m, rep;
	struct conn_call cc;
	uint64_t gen = conn_cb_gen(cl->conn);
	int ret;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		reply_err(req, -EINVAL);
		return;
	}
	if (strlen(newname) > NAME_MAX_LEN) {
		reply_err(req, -ENAMETOOLONG);
		return;
	}
	src = dir_get(cl, req, parent);
	if (src == NULL)
		return;
	dst = dir_get(cl, req, newparent);
	if (dst == NULL)
		goto out;
	if (emul_logging(cl, src->fid.vol)) {
		ret = load_listing(cl, req, src);
		if (ret == 0)
			ret = load_listing(cl, req, dst);
		m.mflags = (flags & RENAME_NOREPLACE ? RENAME_F_NOREPLACE : 0) |
			   (flags & RENAME_EXCHANGE ? RENAME_F_EXCHANGE : 0);
		if (ret == 0)
			ret = emul_rename(cl, src, name, dst, newname, m.mflags);
		if (ret < 0)
			reply_err(req, ret);
		else
			fuse_reply_err(req, 0);
		goto out;
	}
	req_msg(req, &m, MSG_RENAME);
	m.fid = src->fid;
	m.fid2 = dst->fid;
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.name2, sizeof(m.name2), "%s", newname);
	m.mflags = (flags & RENAME_NOREPLACE ? RENAME_F_NOREPLACE : 0) |
		   (flags & RENAME_EXCHANGE ? RENAME_F_EXCHANGE : 0);
	conn_next_storeid(cl->conn, &m.sid);
	ret = versioned_call(cl, req, &m, &rep, &cc, src, dst);
	if (ret < 0) {
		reply_err(req, ret);
		goto out;
	}
	emul_renamed(cl, src, name, dst, newname, &m.sid); /* before the listings go */
	dir_changed(cl, src, &rep.attr, gen);
	if (dst != src)
		dir_changed(cl, dst, &rep.attr2, gen);
	conn_done(cl->conn, &cc);
	fuse_reply_err(req, 0);
out:
	inode_put(cl->itab, dst);
	inode_put(cl->itab, src);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct client *cl = req_client(req);
	struct inode *in, *dir;
	struct msg m, rep;
	struct conn_call cc;
	uint64_t gen = conn_cb_gen(cl->conn);
	int ret;

	if (strlen(newname) > NAME_MAX_LEN) {
		reply_err(req, -ENAMETOOLONG);
		return;
	}
	dir = dir_get(cl, req, newparent);
	if (dir == NULL)
		return;
	in = inode_get_ino(cl->itab, ino);
	if (in == NULL || ino == INODE_TOP) {
		reply_err(req, -EPERM);
		goto out;
	}
	if (emul_logging(cl, dir->fid.vol)) {
		ret = load_listing(cl, req, dir);
		if (ret == 0)
			ret = emul_link(cl, in, dir, newname);
		if (ret < 0)
			reply_err(req, ret);
		else
			reply_entry(cl, req, dir, newname, in);
		goto out;
	}
	req_msg(req, &m, MSG_LINK);
	m.fid = in->fid;
	m.fid2 = dir->fid;
	snprintf(m.name, sizeof(m.name), "%s", newname);
	conn_next_storeid(cl->conn, &m.sid);
	ret = versioned_call(cl, req, &m, &rep, &cc, in, dir);
	if (ret < 0) {
		reply_err(req, ret);
		goto out;
	}
	dir_changed(cl, dir, &rep.attr2, gen);
	grant(cl, in, &rep.attr, gen);
	conn_done(cl->conn, &cc);
	reply_entry(cl, req, dir, newname, in);
out:
	inode_put(cl->itab, in);
	inode_put(cl->itab, dir);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct client *cl = req_client(req);
	struct inode *in = inode_get_ino(cl->itab, ino);
	struct msg m, rep;
	struct conn_call cc;
	char *t = NULL;
	int ret;

	if (in == NULL) {
		reply_err(req, -ESTALE);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (in->target != NULL && cb_ok_locked(cl, in))
		t = xstrdup(in->target);
	pthread_mutex_unlock(&in->lock);
	if (t == NULL) {
		req_msg(req, &m, MSG_READLINK);
		m.fid = in->fid;
		ret = conn_call(cl->conn, &m, &rep, &cc);
		if (ret < 0) {
			reply_err(req, ret);
			goto out;
		}
		t = xstrdup(rep.target);
		conn_done(cl->conn, &cc);
		pthread_mutex_lock(&in->lock);
		free(in->target);
		in->target = xstrdup(t);
		pthread_mutex_unlock(&in->lock);
	}
	fuse_reply_readlink(req, t);
	free(t);
out:
	inode_put(cl->itab, in);
}

/* ---------- directories ---------- */

struct dirh {
	struct dirent_w *ents; /* snapshot, owned */
	size_t n;
	uint64_t parent_ino;
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct dirh *h = xcalloc(1, sizeof(*h));

	(void)cl;
	h->parent_ino = INODE_TOP;
	fi->fh = (uintptr_t)h;
	(void)ino;
	if (fuse_reply_open(req, fi) != 0)
		free(h);
}

static uint64_t dent_ino(struct client *cl, const struct fid *fid)
{
	struct inode *in = inode_get_fid(cl->itab, fid);
	uint64_t ino;
	uint64_t h = fid->vol;

	if (in != NULL) {
		ino = in->ino;
		inode_put(cl->itab, in);
		return ino;
	}
	for (size_t i = 0; i < OID_LEN; i++)
		h = h * 1099511628211ull ^ fid->oid[i];
	return h | (1ull << 63); /* never collides with our counter-allocated inos */
}

static int dirh_fill(struct client *cl, fuse_req_t req, fuse_ino_t ino, struct dirh *h)
{
	struct inode *in, *root;
	int ret;

	free(h->ents);
	h->ents = NULL;
	h->n = 0;
	if (ino == INODE_TOP) {
		ret = get_root(cl, req, &root);
		if (ret < 0)
			return ret;
		h->ents = xcalloc(1, sizeof(*h->ents));
		snprintf(h->ents[0].name, sizeof(h->ents[0].name), "%s", cl->realm);
		h->ents[0].fid = root->fid;
		h->ents[0].mode = S_IFDIR;
		h->n = 1;
		inode_put(cl->itab, root);
		return 0;
	}
	in = inode_get_ino(cl->itab, ino);
	if (in == NULL)
		return -ESTALE;
	ret = load_listing_copy(cl, req, in, &h->ents, &h->n);
	inode_put(cl->itab, in);
	return ret;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	char *buf;
	size_t pos = 0;
	int ret;

	if (off == 0 || h->ents == NULL) {
		ret = dirh_fill(cl, req, ino, h);
		if (ret < 0) {
			reply_err(req, ret);
			return;
		}
	}
	buf = xmalloc(size);
	for (size_t i = (size_t)off; i < h->n + 2; i++) {
		struct stat st;
		const char *name;
		size_t len;

		memset(&st, 0, sizeof(st));
		if (i == 0) {
			name = ".";
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
		} else if (i == 1) {
			name = "..";
			st.st_ino = INODE_TOP;
			st.st_mode = S_IFDIR;
		} else {
			name = h->ents[i - 2].name;
			st.st_ino = dent_ino(cl, &h->ents[i - 2].fid);
			st.st_mode = h->ents[i - 2].mode & S_IFMT;
		}
		len = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)(i + 1));
		if (len > size - pos)
			break;
		pos += len;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;

	(void)ino;
	if (h != NULL) {
		free(h->ents);
		free(h);
	}
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0); /* directory updates are durable when acknowledged */
}

/* ---------- files ---------- */

/* One open file handle (fi->fh): owns a reference to in and its own fd on
 * the container version it opened (a later refetch replaces the container
 * by rename, so this handle keeps reading what it opened). */
struct fh {
	struct inode *in;
	int fd;
	int flags;
};

static void mark_dirty(struct client *cl, struct inode *in)
{
	struct cache_ent e;
	bool first;

	pthread_mutex_lock(&in->lock);
	first = !in->dirty;
	in->dirty = true;
	in->wgen++;
	pthread_mutex_unlock(&in->lock);
	if (first && cache_get(cl->cache, &in->fid, &e) == 0 && !e.dirty) {
		e.dirty = true;
		e.last_use = 0;
		cache_put(cl->cache, &e);
	}
}

/* Fetches the whole file into a new container (tmp + rename); returns the
 * open fd and the attributes it matches. Caller holds in->io_lock. */
static int fetch_file(struct client *cl, fuse_req_t req, struct inode *in, struct attr *out)
{
	struct conn_call win[XFER_WINDOW];
	uint32_t lens[XFER_WINDOW];
	char path[4096], tmp[4200];
	struct cache_ent e;
	struct cred cr;
	struct attr a;
	int ret = 0, fd = -1;

	ret = cache_container_path(cl->cache, &in->fid, path, sizeof(path));
	if (ret < 0)
		return ret;
	snprintf(tmp, sizeof(tmp), "%s.fetch", path);
	/* Once, not per chunk: libfuse reads /proc for the caller's groups. */
	req_cred(req, &cr);
	for (int tries = 0; tries < FETCH_TRIES; tries++) {
		uint64_t size, sent = 0, total = 0, t0;
		size_t head = 0, n_pend = 0;
		/* The one server every chunk came from without failover, for
		 * the bandwidth estimate (!bw_one: several, do not measure). */
		uint32_t bw_srv = 0;
		bool bw_one = true;

		if (tries > 0 || !cb_ok(cl, in)) {
			ret = do_getattr(cl, req, in);
			if (ret < 0)
				return ret;
		}
		pthread_mutex_lock(&in->lock);
		a = in->attr;
		pthread_mutex_unlock(&in->lock);
		size = a.size;
		cache_make_room(cl->cache, size);
		if (fd >= 0)
			close(fd);
		fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		/* Allocated up front, the chunks' writes skip ext4's per-block
		 * delayed allocation (a third of their cost); best effort. */
		if (size > 0)
			(void)fallocate(fd, 0, 0, (off_t)size);
		ret = 0;
		t0 = now_ns();
		while (ret == 0 && (sent < size || n_pend > 0)) {
			struct msg rep;
			int r;

			while (sent < size && n_pend < XFER_WINDOW) {
				size_t slot = (head + n_pend) % XFER_WINDOW;
				struct msg m;

				msg_init(&m, MSG_FETCH);
				m.cred = cr;
				m.fid = in->fid;
				m.offset = sent;
				m.length = size - sent < CHUNK_MAX ? size - sent : CHUNK_MAX;
				m.expect = a.data_version;
				/* The reply's data goes straight into fd. */
				ret = conn_start_sink(cl->conn, &m, fd, sent, &win[slot]);
				if (ret < 0)
					break;
				lens[slot] = (uint32_t)m.length;
				sent += m.length;
				n_pend++;
			}
			if (n_pend == 0)
				break;
			r = conn_wait(cl->conn, &win[head], &rep);
			if (r == 0) {
				uint32_t srv = conn_call_answered_by(&win[head]);

				/* Another version than the attributes say: the file
				 * changed, or this replica is behind (a StoreId of
				 * its own tells, data versions are per replica). */
				if (rep.data_len != lens[head] ||
				    rep.attr.data_version != a.data_version ||
				    (!storeid_is_zero(&a.sid) &&
				     !storeid_eq(&rep.attr.sid, &a.sid)))
					r = -ERR_VERSION;
				total += rep.data_len;
				if (srv == 0 || (bw_srv != 0 && srv != bw_srv))
					bw_one = false;
				bw_srv = srv;
				conn_done(cl->conn, &win[head]);
			}
			if (r < 0 && ret == 0)
				ret = r;
			head = (head + 1) % XFER_WINDOW;
			n_pend--;
		}
		/* Drop anything still in flight after an error. */
		while (n_pend > 0) {
			conn_done(cl->conn, &win[head]);
			head = (head + 1) % XFER_WINDOW;
			n_pend--;
		}
		if (ret == -ERR_VERSION)
			continue;
		if (ret < 0)
			break;
		if (rename(tmp, path) < 0) {
			ret = -errno;
			break;
		}
		CTR_ADD(cl, fetches, 1);
		log_debug("fsops",
			  "fetched inode %llu from server %u: %llu bytes, dv %llu, sid %llx:%llu",
			  (unsigned long long)in->ino, bw_srv, (unsigned long long)total,
			  (unsigned long long)a.data_version, (unsigned long long)a.sid.client,
			  (unsigned long long)a.sid.seq);
		CTR_ADD(cl, fetch_bytes, total);
		/* Weak connectivity: the bandwidth of whole-file fetches large
		 * enough not to be mere round trips (docs/disconnected.md). */
		if (total >= CONN_BW_FETCH_MIN_BYTES && bw_one && bw_srv != 0)
			conn_bw_sample(cl->conn, bw_srv, total, now_ns() - t0);
		memset(&e, 0, sizeof(e));
		e.fid = in->fid;
		e.attr = a;
		e.has_data = true;
		e.data_version = a.data_version;
		e.size = size;
		ret = cache_put(cl->cache, &e);
		if (ret < 0)
			break;
		*out = a;
		return fd;
	}
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret < 0 ? ret : -EIO;
}

static int store_once(struct client *cl, struct inode *in, const struct cred *cr, int fd,
		      struct wtime mtime, bool expect, struct attr *out, uint64_t *stored)
{
	struct conn_call win[XFER_WINDOW];
	struct storeid sid;
	struct xver xv;
	struct stat st;
	uint64_t handle, off = 0, total;
	size_t head = 0, n_pend = 0;
	uint8_t *buf;
	bool first = true, last_sent = false;
	int ret = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	total = (uint64_t)st.st_size;
	randombytes_buf(&handle, sizeof(handle));
	conn_next_storeid(cl->conn, &sid);
	/* The version the contents replace (F_XVER): a replica not at it (it
	 * missed an update of this file, even one of its attributes) refuses,
	 * and resolution brings it level, instead of taking the contents over
	 * a state the client never saw. */
	memset(&xv, 0, sizeof(xv));
	if (expect)
		expect_of(in, false, &xv);
	buf = xmalloc(CHUNK_MAX);
	while (ret == 0 && (!last_sent || n_pend > 0)) {
		struct msg rep;
		int r;

		while (!last_sent && n_pend < XFER_WINDOW) {
			size_t slot = (head + n_pend) % XFER_WINDOW;
			uint64_t len = total - off < CHUNK_MAX ? total - off : CHUNK_MAX;
			struct msg m;
			ssize_t nr;

			if (len > 0) {
				nr = fs_pread_all(fd, buf, len, (off_t)off);
				if (nr < 0) {
					ret = (int)nr;
					break;
				}
				len = (uint64_t)nr; /* shrank under us: store what is there */
			}
			msg_init(&m, MSG_STORE);
			m.cred = *cr;
			m.fid = in->fid;
			m.offset = off;
			m.handle = handle;
			m.sid = sid;
			m.xver[0] = xv;
			m.mflags = first ? STORE_FIRST : 0;
			m.data = len ? buf : NULL;
			m.data_len = (uint32_t)len;
			m.length = len;
			off += len;
			if (off >= total || len == 0) {
				m.mflags |= STORE_LAST;
				m.length = off;
				m.sattr.valid = SA_MTIME;
				m.sattr.mtime = mtime;
				last_sent = true;
			}
			ret = conn_start(cl->conn, &m, &win[slot]);
			if (ret < 0)
				break;
			first = false;
			n_pend++;
		}
		if (n_pend == 0)
			break;
		r = conn_wait(cl->conn, &win[head], &rep);
		if (r == 0) {
			*out = rep.attr;
			conn_done(cl->conn, &win[head]);
		}
		if (r < 0 && ret == 0)
			ret = r;
		head = (head + 1) % XFER_WINDOW;
		n_pend--;
	}
	while (n_pend > 0) {
		conn_done(cl->conn, &win[head]);
		head = (head + 1) % XFER_WINDOW;
		n_pend--;
	}
	free(buf);
	if (ret == 0 && !last_sent)
		ret = -EIO;
	*stored = off;
	return ret;
}

/* One store of the container (store_file): with the version last seen
 * expected, tried again while no member can take it, revalidated and tried
 * again when refused, then stored over. *logged: the volume went
 * disconnected meanwhile and the store became a CML record (the result is
 * emul_store's). */
static int store_tries(struct client *cl, struct inode *in, const struct cred *cr, int fd,
		       struct wtime mtime, struct attr *a, uint64_t *stored, bool *logged)
{
	int ret;

	*logged = false;
	ret = store_once(cl, in, cr, fd, mtime, true, a, stored);
	/* No member could take it (the last one reachable failed under it):
	 * try again while servers come back, within the update stall bound;
	 * if the volume is disconnected meanwhile, the store is logged (CML). */
	for (int i = 0; i < STORE_RETRIES && store_transport_err(ret); i++) {
		if (emul_logging(cl, in->fid.vol)) {
			*logged = true;
			return emul_store(cl, in);
		}
		usleep(STORE_RETRY_MS * 1000);
		log_debug("fsops", "store of inode %llu: %s, trying again",
			  (unsigned long long)in->ino, err_str(ret));
		ret = store_once(cl, in, cr, fd, mtime, true, a, stored);
	}
	if (ret == -ERR_VERSION) {
		/* No replica is at the version this client last saw: they are
		 * behind it (the ones that have it are away: revalidation
		 * waits, bounded, for one) or moved on (another client's
		 * update: revalidation takes it). Then once more with the new
		 * expectation; refused again, the last close wins, as
		 * documented. */
		(void)do_getattr(cl, NULL, in);
		ret = store_once(cl, in, cr, fd, mtime, true, a, stored);
	}
	if (ret == -ERR_VERSION) {
		log_info("fsops", "store of inode %llu: every replica moved on, storing over it",
			 (unsigned long long)in->ino);
		ret = store_once(cl, in, cr, fd, mtime, false, a, stored);
	}
	if (ret == -EACCES && cr->uid != 0 && cr->uid == in->attr.uid) {
		/* The kernel allowed the open for writing (default_permissions);
		 * the owner of a file created read-only (git objects, cp of a
		 * 0444 file) still completes its store. TODO: server-side owner
		 * rule for STORE; until then we vouch as root for the owner. */
		struct cred root = { 0 };

		ret = store_once(cl, in, &root, fd, mtime, false, a, stored);
	}
	return ret;
}

/* Stores the whole container to the server if dirty. Caller holds io_lock. */
static int store_file(struct client *cl, struct inode *in, const struct cred *caller)
{
	struct cache_ent e;
	struct attr a;
	struct wtime mtime;
	struct cred cr;
	uint64_t wgen, stored = 0, until = 0;
	bool logged;
	int fd, ret;

	pthread_mutex_lock(&in->lock);
	if (!in->dirty || in->fd < 0 || in->removed) {
		if (in->removed)
			in->dirty = false; /* nobody can open it again: nothing to keep */
		pthread_mutex_unlock(&in->lock);
		return 0;
	}
	wgen = in->wgen;
	fd = in->fd;
	mtime = in->attr.mtime;
	cr = in->wcred.uid != 0 || in->wcred.gid != 0 ? in->wcred : *caller;
	pthread_mutex_unlock(&in->lock);
	if (emul_logging(cl, in->fid.vol))
		return emul_store(cl, in); /* a CML store record */
	memset(&a, 0, sizeof(a));
	ret = store_tries(cl, in, &cr, fd, mtime, &a, &stored, &logged);
	/* No replica reachable has the file: another client removed it (or
	 * renamed over it) -- or it was made while the replicas that have it
	 * were away, and they are still (not every VSG member is up). Then
	 * wait for them, bounded, as for replicas behind (BEHIND_WAIT_MS);
	 * after that the store fails with the data kept (dirty), never
	 * dropped as if the file were gone. */
	while (!logged && (ret == -ENOENT || ret == -ESTALE) &&
	       !conn_vol_complete(cl->conn, in->fid.vol)) {
		if (until == 0) {
			until = now_ns() + BEHIND_WAIT_MS * 1000000ull;
			log_info("fsops",
				 "store of inode %llu: no replica reachable has it: waiting for "
				 "the others",
				 (unsigned long long)in->ino);
		}
		if (now_ns() >= until) {
			log_warn("fsops",
				 "store of inode %llu: the replicas that have it stay away: kept "
				 "locally",
				 (unsigned long long)in->ino);
			ret = -EIO;
			break;
		}
		usleep(BEHIND_RETRY_MS * 1000);
		ret = store_tries(cl, in, &cr, fd, mtime, &a, &stored, &logged);
	}
	if (logged)
		return ret;
	if (ret == -ENOENT || ret == -ESTALE) {
		/* Removed on the server meanwhile (renamed over, unlinked). */
		log_debug("fsops", "store of inode %llu: removed on the servers, dropped",
			  (unsigned long long)in->ino);
		pthread_mutex_lock(&in->lock);
		in->removed = true;
		in->dirty = false;
		pthread_mutex_unlock(&in->lock);
		return 0;
	}
	if (ret < 0) {
		log_debug("fsops", "store of inode %llu failed: %s", (unsigned long long)in->ino,
			  err_str(ret));
		return ret;
	}
	CTR_ADD(cl, stores, 1);
	log_debug("fsops", "stored inode %llu: %llu bytes, dv %llu, sid %llx:%llu",
		  (unsigned long long)in->ino, (unsigned long long)stored,
		  (unsigned long long)a.data_version, (unsigned long long)a.sid.client,
		  (unsigned long long)a.sid.seq);
	CTR_ADD(cl, store_bytes, stored);
	pthread_mutex_lock(&in->lock);
	if (in->wgen == wgen)
		in->dirty = false;
	in->kernel_dv = a.data_version;
	in->cdv = a.data_version;
	pthread_mutex_unlock(&in->lock);
	/* The server keeps our callback: we made the change. */
	grant(cl, in, &a, conn_cb_gen(cl->conn));
	memset(&e, 0, sizeof(e));
	e.fid = in->fid;
	e.attr = a;
	e.has_data = true;
	e.data_version = a.data_version;
	e.size = stored;
	pthread_mutex_lock(&in->lock);
	e.dirty = in->dirty;
	pthread_mutex_unlock(&in->lock);
	cache_put(cl->cache, &e);
	return 0;
}

/* True if a cached container (not one held open: that is this client's own
 * copy) of data version dv written by the update sid holds the data the
 * attributes a describe. Data versions are counters of each
 * replica, so another replica may give the same number to other contents:
 * the StoreId of the update names the version realm-wide. (An attribute
 * change after the data's also moves the StoreId: a refetch, never a stale
 * copy.) A zero StoreId on either side (unreplicated volumes before any
 * update, old cache entries) compares by data version alone. */
static bool same_data(uint64_t dv, const struct storeid *sid, const struct attr *a)
{
	if (dv != a->data_version)
		return false;
	return storeid_is_zero(sid) || storeid_is_zero(&a->sid) || storeid_eq(sid, &a->sid);
}

static void set_container_fd(struct client *cl, struct inode *in, int fd, uint64_t cdv)
{
	int old;

	pthread_mutex_lock(&in->lock);
	old = in->fd;
	in->fd = fd;
	in->cdv = cdv;
	pthread_mutex_unlock(&in->lock);
	log_debug("fsops", "inode %llu: container fd %d -> %d, dv %llu",
		  (unsigned long long)in->ino, old, fd, (unsigned long long)cdv);
	if (old >= 0)
		close(old);
	else
		cache_pin(cl->cache, &in->fid);
}

/* An object in conflict (replicas disagree, docs/replication.md): reading it
 * fails with EIO until `encore repair`; says so once per object. */
static int conflict_eio(struct client *cl, struct inode *in)
{
	char path[1024], fs[FID_STR_LEN];
	bool first;

	pthread_mutex_lock(&in->lock);
	first = !in->conflict_logged;
	in->conflict_logged = true;
	pthread_mutex_unlock(&in->lock);
	if (first) {
		inode_path(cl->itab, in, cl->realm, path, sizeof(path));
		if (path[0] != '\0') {
			log_warn("fsops", "'%s%s' is in conflict: run 'encore repair %s%s'",
				 cl->mount, path, cl->mount, path);
		} else {
			fid_fmt(&in->fid, fs);
			log_warn("fsops", "'%s' is in conflict: run 'encore repair PATH'", fs);
		}
	}
	return -EIO;
}

/* Makes in->fd the current container for a new handle, fetching if needed.
 * Caller holds io_lock. Sets *keep if the kernel's page cache is valid. */
static int open_data(struct client *cl, fuse_req_t req, struct inode *in, int flags, bool *keep)
{
	struct cache_ent e;
	struct attr a;
	bool trunc = flags & O_TRUNC, shared = false;
	int ret, fd = -1;

	*keep = false;
	pthread_mutex_lock(&in->lock);
	/* Local changes win until stored; and while a handle open for
	 * writing exists the container stays: each handle writes and reads
	 * its own descriptor of it, so a fetched replacement would split the
	 * file in two (writes through the old handle lost at the last close).
	 * A new open then sees the version that writer has, as in a session
	 * of AFS. Handles open only for reading keep the version they opened
	 * and a new open sees the new one (close-to-open). */
	if (in->fd >= 0 && (in->dirty || in->removed || in->n_writers > 0))
		shared = true;
	else if (in->have_attr && cb_ok_locked(cl, in) &&
		 (!in->unverified || emul_trust_locked(cl, in)))
		ret = 0;
	else
		ret = 1;
	pthread_mutex_unlock(&in->lock);
	if (!shared && ret == 1) {
		ret = do_getattr(cl, req, in);
		if (ret < 0)
			return ret;
	}
	pthread_mutex_lock(&in->lock);
	a = in->attr;
	if (!shared && in->fd >= 0 && in->cdv == a.data_version)
		shared = true;
	if (shared)
		*keep = in->kernel_dv == in->cdv || in->dirty;
	pthread_mutex_unlock(&in->lock);
	if (!S_ISREG(a.mode))
		return -EINVAL;
	if ((a.flags & ATTR_F_CONFLICT) && !shared)
		return conflict_eio(cl, in);
	if (!shared) {
		ret = cache_get(cl->cache, &in->fid, &e);
		if (ret == 0 &&
		    (e.dirty || (e.has_data && same_data(e.data_version, &e.attr.sid, &a)))) {
			fd = cache_open_container(cl->cache, &in->fid, O_RDWR);
			if (fd >= 0) {
				CTR_ADD(cl, cache_hits, 1);
				log_debug(
					"fsops",
					"inode %llu from the cache: dv %llu sid %llx:%llu, size %llu",
					(unsigned long long)in->ino,
					(unsigned long long)a.data_version,
					(unsigned long long)a.sid.client,
					(unsigned long long)a.sid.seq, (unsigned long long)a.size);
				cache_touch(cl->cache, &in->fid);
				pthread_mutex_lock(&in->lock);
				*keep = in->kernel_dv == a.data_version && !e.dirty;
				in->kernel_dv = a.data_version;
				if (e.dirty) {
					/* Left dirty by a crash or a failed store: keep it. */
					in->dirty = true;
					in->wgen++;
				}
				pthread_mutex_unlock(&in->lock);
			}
		}
		if (fd < 0 && trunc) {
			/* O_TRUNC: nothing to fetch. */
			memset(&e, 0, sizeof(e));
			e.fid = in->fid;
			e.attr = a;
			e.has_data = true;
			e.data_version = a.data_version;
			cache_put(cl->cache, &e);
			fd = cache_open_container(cl->cache, &in->fid, O_RDWR | O_CREAT | O_TRUNC);
			if (fd < 0)
				return fd;
			if (a.size != 0) {
				set_container_fd(cl, in, fd, a.data_version);
				mark_dirty(cl, in);
				fd = -2;
			}
		}
		if (fd == -1) {
			CTR_ADD(cl, cache_misses, 1);
			fd = fetch_file(cl, req, in, &a);
			if (fd < 0)
				return fd;
			pthread_mutex_lock(&in->lock);
			in->kernel_dv = a.data_version;
			pthread_mutex_unlock(&in->lock);
		}
		if (fd >= 0)
			set_container_fd(cl, in, fd, a.data_version);
	}
	if (trunc) {
		struct stat st;

		if (fstat(in->fd, &st) == 0 && st.st_size != 0) {
			if (ftruncate(in->fd, 0) < 0)
				return -errno;
			mark_dirty(cl, in);
		}
		pthread_mutex_lock(&in->lock);
		if (in->attr.size != 0 || in->dirty) {
			in->attr.size = 0;
			wtime_now(&in->attr.mtime);
			in->attr.ctime = in->attr.mtime;
		}
		pthread_mutex_unlock(&in->lock);
		*keep = false;
	}
	return 0;
}

/* Registers a new handle on in (caller holds io_lock, in->fd valid). */
static struct fh *handle_new(struct client *cl, fuse_req_t req, struct inode *in, int flags)
{
	struct fh *h = xcalloc(1, sizeof(*h));

	h->in = in;
	h->flags = flags;
	pthread_mutex_lock(&in->lock);
	h->fd = dup(in->fd);
	in->n_open++;
	if ((flags & O_ACCMODE) != O_RDONLY) {
		in->n_writers++;
		req_cred(req, &in->wcred);
	}
	pthread_mutex_unlock(&in->lock);
	(void)cl;
	if (h->fd < 0) {
		free(h);
		return NULL;
	}
	return h;
}

/* Closes in's container after the last handle or a background store
 * (caller holds io_lock); drops the cache entry of a file removed
 * meanwhile. */
static void close_container(struct client *cl, struct inode *in)
{
	bool removed;
	int fd;

	pthread_mutex_lock(&in->lock);
	fd = in->fd;
	in->fd = -1;
	removed = in->removed;
	pthread_mutex_unlock(&in->lock);
	if (fd >= 0) {
		close(fd);
		cache_unpin(cl->cache, &in->fid);
	}
	if (removed)
		cache_del(cl->cache, &in->fid);
}

int fsops_store_closed(struct client *cl, struct inode *in)
{
	char path[4096];
	struct cred cr;
	uint64_t cdv;
	bool idle;
	int fd = -1, ret = 0;

	pthread_mutex_lock(&in->io_lock);
	pthread_mutex_lock(&in->lock);
	idle = in->n_open == 0 && in->fd < 0 && in->dirty && !in->removed;
	cr = in->wcred;
	cdv = in->cdv;
	pthread_mutex_unlock(&in->lock);
	if (!idle)
		goto out;
	ret = cache_container_path(cl->cache, &in->fid, path, sizeof(path));
	if (ret == 0) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		ret = fd < 0 ? -errno : 0;
	}
	if (ret < 0) {
		log_warn("fsops", "inode %llu: the container of its unstored data is gone: %s",
			 (unsigned long long)in->ino, err_str(ret));
		goto out;
	}
	set_container_fd(cl, in, fd, cdv);
	ret = store_file(cl, in, &cr);
	close_container(cl, in);
	if (ret == -EIO || store_transport_err(ret))
		ret = -EAGAIN;
	else if (ret == 0)
		ret = 1;
out:
	pthread_mutex_unlock(&in->io_lock);
	return ret;
}

/* Drops a handle; the last one stores (if dirty) and closes the container. */
static void handle_release(struct client *cl, struct fh *h, const struct cred *cr)
{
	struct inode *in = h->in;
	bool last;

	pthread_mutex_lock(&in->io_lock);
	pthread_mutex_lock(&in->lock);
	in->n_open--;
	if ((h->flags & O_ACCMODE) != O_RDONLY)
		in->n_writers--;
	last = in->n_open == 0;
	pthread_mutex_unlock(&in->lock);
	close(h->fd);
	if (last) {
		/* Writes through a shared mapping may land after the last flush. */
		if (store_file(cl, in, cr) < 0) {
			log_warn("fsops",
				 "cannot store inode %llu at release; kept dirty in cache, "
				 "retried in the background",
				 (unsigned long long)in->ino);
			flusher_add(cl->flusher, in);
		}
		close_container(cl, in);
	}
	pthread_mutex_unlock(&in->io_lock);
	inode_put(cl->itab, in);
	free(h);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct inode *in = inode_get_ino(cl->itab, ino);
	struct fh *h = NULL;
	struct cred cr;
	bool keep;
	int ret;

	if (in == NULL) {
		reply_err(req, -ESTALE);
		return;
	}
	pthread_mutex_lock(&in->io_lock);
	ret = open_data(cl, req, in, fi->flags, &keep);
	if (ret == -ERR_CONFLICT)
		ret = conflict_eio(cl, in);
	if (ret == 0) {
		h = handle_new(cl, req, in, fi->flags);
		if (h == NULL)
			ret = -EMFILE;
	}
	pthread_mutex_unlock(&in->io_lock);
	if (ret < 0) {
		reply_err(req, ret);
		inode_put(cl->itab, in);
		return;
	}
	fi->fh = (uintptr_t)h; /* owns the reference to in */
	fi->keep_cache = keep;
	fi->direct_io = 0;
	if (fuse_reply_open(req, fi) != 0) {
		/* Interrupted: the kernel will not send release. */
		req_cred(req, &cr);
		handle_release(cl, h, &cr);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct inode *dir = dir_get(cl, req, parent), *in = NULL;
	struct fuse_entry_param e;
	struct cache_ent ce;
	struct fh *h;
	struct cred cr;
	bool tracked = false, dir_cb;
	int ret, fd;

	if (dir == NULL)
		return;
	ret = do_create(cl, req, dir, name, S_IFREG | (mode & 07777), 0, NULL, &in);
	if (ret < 0) {
		reply_err(req, ret);
		goto out;
	}
	pthread_mutex_lock(&in->lock);
	inode_set_name_locked(in, dir->ino, name); /* names it in logs and conflicts */
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_lock(&in->io_lock);
	memset(&ce, 0, sizeof(ce));
	ce.fid = in->fid;
	pthread_mutex_lock(&in->lock);
	ce.attr = in->attr;
	pthread_mutex_unlock(&in->lock);
	ce.has_data = true;
	ce.data_version = ce.attr.data_version;
	cache_put(cl->cache, &ce);
	fd = cache_open_container(cl->cache, &in->fid, O_RDWR | O_CREAT | O_TRUNC);
	if (fd < 0) {
		pthread_mutex_unlock(&in->io_lock);
		reply_err(req, fd);
		goto out;
	}
	set_container_fd(cl, in, fd, ce.data_version);
	pthread_mutex_lock(&in->lock);
	in->kernel_dv = ce.data_version;
	pthread_mutex_unlock(&in->lock);
	h = handle_new(cl, req, in, fi->flags);
	pthread_mutex_unlock(&in->io_lock);
	if (h == NULL) {
		reply_err(req, -EMFILE);
		goto out;
	}

	pthread_mutex_lock(&dir->lock);
	dir_cb = cb_ok_locked(cl, dir);
	if (dir_cb)
		tracked = inode_add_kname_locked(dir, name);
	pthread_mutex_unlock(&dir->lock);
	fill_entry(cl, in, &e, tracked, dir_cb);
	inode_lookup_inc(cl->itab, in);
	inode_ref(cl->itab, in); /* for the handle */
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 0;
	if (fuse_reply_create(req, &e, fi) != 0) {
		inode_forget(cl->itab, in->ino, 1);
		req_cred(req, &cr);
		handle_release(cl, h, &cr);
	}
out:
	inode_put(cl->itab, in);
	inode_put(cl->itab, dir);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	struct inode *in = h->in;
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(bufv));
	ssize_t res;

	(void)ino;
	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	dst.buf[0].fd = h->fd;
	dst.buf[0].pos = off;
	mark_dirty(cl, in);
	res = fuse_buf_copy(&dst, bufv, 0);
	if (res < 0) {
		reply_err(req, (int)res);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if ((uint64_t)off + (uint64_t)res > in->attr.size)
		in->attr.size = (uint64_t)off + (uint64_t)res;
	wtime_now(&in->attr.mtime);
	in->attr.ctime = in->attr.mtime;
	in->wgen++;
	pthread_mutex_unlock(&in->lock);
	fuse_reply_write(req, (size_t)res);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	struct cred cr;
	int ret;

	(void)ino;
	req_cred(req, &cr);
	pthread_mutex_lock(&h->in->io_lock);
	ret = store_file(cl, h->in, &cr);
	pthread_mutex_unlock(&h->in->io_lock);
	if (ret < 0)
		reply_err(req, ret);
	else
		fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	op_flush(req, ino, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct cred cr;

	(void)ino;
	req_cred(req, &cr);
	handle_release(cl, (struct fh *)(uintptr_t)fi->fh, &cr);
	fuse_reply_err(req, 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	struct client *cl = req_client(req);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	int ret;

	(void)ino;
	if (mode != 0) {
		reply_err(req, -EOPNOTSUPP);
		return;
	}
	ret = posix_fallocate(h->fd, offset, length);
	if (ret != 0) {
		reply_err(req, -ret);
		return;
	}
	mark_dirty(cl, h->in);
	pthread_mutex_lock(&h->in->lock);
	if ((uint64_t)(offset + length) > h->in->attr.size)
		h->in->attr.size = (uint64_t)(offset + length);
	pthread_mutex_unlock(&h->in->lock);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct client *cl = req_client(req);
	struct inode *in = NULL, *root = NULL;
	struct statvfs sv;
	struct msg m, rep;
	struct conn_call cc;
	int ret;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = NAME_MAX_LEN;
	if (ino != INODE_TOP)
		in = inode_get_ino(cl->itab, ino);
	if (in == NULL) {
		ret = get_root(cl, req, &root);
		if (ret < 0) {
			fuse_reply_statfs(req, &sv);
			return;
		}
		in = root;
	}
	req_msg(req, &m, MSG_STATFS);
	m.fid = in->fid;
	ret = conn_call(cl->conn, &m, &rep, &cc);
	inode_put(cl->itab, in);
	if (ret < 0) {
		reply_err(req, ret);
		return;
	}
	sv.f_bsize = sv.f_frsize = rep.fsstat.bsize ? rep.fsstat.bsize : 4096;
	sv.f_blocks = rep.fsstat.blocks;
	sv.f_bfree = rep.fsstat.bfree;
	sv.f_bavail = rep.fsstat.bavail;
	sv.f_files = rep.fsstat.files;
	sv.f_ffree = rep.fsstat.ffree;
	sv.f_favail = rep.fsstat.ffree;
	sv.f_namemax = rep.fsstat.namemax ? rep.fsstat.namemax : NAME_MAX_LEN;
	conn_done(cl->conn, &cc);
	fuse_reply_statfs(req, &sv);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	reply_err(req, -ENOTSUP);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	reply_err(req, -ENOTSUP);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	(void)size;
	reply_err(req, -ENOTSUP);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	reply_err(req, -ENOTSUP);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
};

const struct fuse_lowlevel_ops *fsops_ops(void)
{
	return &ops;
}

int fsops_flush_ino(struct client *cl, uint64_t ino)
{
	struct inode *in = inode_get_ino(cl->itab, ino);
	bool busy;
	int ret;

	if (in == NULL || ino == INODE_TOP) {
		inode_put(cl->itab, in);
		return -ENOENT;
	}
	pthread_mutex_lock(&in->io_lock);
	pthread_mutex_lock(&in->lock);
	busy = in->n_open > 0 || in->dirty;
	if (!busy) {
		in->kernel_dv = 0;
		inode_drop_listing_locked(in);
	}
	pthread_mutex_unlock(&in->lock);
	ret = busy ? 0 : cache_drop_data(cl->cache, &in->fid);
	pthread_mutex_unlock(&in->io_lock);
	if (!busy)
		note_push(cl, break_inode(cl, in, true));
	inode_put(cl->itab, in);
	if (busy || ret == -EBUSY)
		return 0;
	return 1;
}

int fsops_ino_fid(struct client *cl, uint64_t ino, struct fid *fid)
{
	struct inode *in = inode_get_ino(cl->itab, ino);

	if (in == NULL || ino == INODE_TOP) {
		inode_put(cl->itab, in);
		return -ENOENT;
	}
	*fid = in->fid;
	inode_put(cl->itab, in);
	return 0;
}

int fsops_ino_name(struct client *cl, uint64_t ino, char *out, size_t len)
{
	struct inode *in = inode_get_ino(cl->itab, ino);
	int ret = -ENOENT;

	if (in == NULL)
		return ret;
	pthread_mutex_lock(&in->lock);
	if (in->name != NULL && len > 0) {
		snprintf(out, len, "%s", in->name);
		ret = 0;
	}
	pthread_mutex_unlock(&in->lock);
	inode_put(cl->itab, in);
	return ret;
}

/* ---------- hoard walk (hoard.c) ---------- */

int fsops_walk_root(struct client *cl, const struct cred *cr, struct inode **out)
{
	int ret;

	walk_cred = cr;
	ret = get_root(cl, NULL, out);
	if (ret == 0) {
		ret = ensure_attr(cl, NULL, *out);
		if (ret < 0) {
			inode_put(cl->itab, *out);
			*out = NULL;
		}
	}
	walk_cred = NULL;
	return ret;
}

int fsops_walk_attr(struct client *cl, const struct cred *cr, struct inode *in, struct attr *a)
{
	int ret;

	walk_cred = cr;
	ret = ensure_attr(cl, NULL, in);
	walk_cred = NULL;
	if (ret == 0) {
		pthread_mutex_lock(&in->lock);
		*a = in->attr;
		pthread_mutex_unlock(&in->lock);
	}
	return ret;
}

int fsops_walk_listing(struct client *cl, const struct cred *cr, struct inode *dir,
		       struct dirent_w **ents, size_t *n, bool *loaded)
{
	int ret = -EAGAIN;

	*ents = NULL;
	*n = 0;
	*loaded = false;
	walk_cred = cr;
	for (int tries = 0; tries < 3 && ret == -EAGAIN; tries++) {
		bool ok;

		pthread_mutex_lock(&dir->lock);
		ok = dir->list_valid && cb_ok_locked(cl, dir);
		pthread_mutex_unlock(&dir->lock);
		if (!ok) {
			*loaded = true;
			ret = load_listing(cl, NULL, dir);
			if (ret < 0)
				break;
		}
		pthread_mutex_lock(&dir->lock);
		if (dir->list_valid) {
			*n = dir->n_ents;
			*ents = inode_ents_dup(dir->ents, dir->n_ents);
			ret = 0;
		} else {
			ret = -EAGAIN; /* broken while loading */
		}
		pthread_mutex_unlock(&dir->lock);
	}
	walk_cred = NULL;
	return ret;
}

int fsops_walk_fetch(struct client *cl, const struct cred *cr, struct inode *in, uint64_t *bytes)
{
	struct cache_ent e;
	struct attr a;
	bool cached;
	int ret, fd;

	*bytes = 0;
	walk_cred = cr;
	pthread_mutex_lock(&in->io_lock);
	ret = ensure_attr(cl, NULL, in);
	if (ret < 0)
		goto out;
	pthread_mutex_lock(&in->lock);
	a = in->attr;
	cached = in->fd >= 0 && (in->dirty || in->removed || in->cdv == a.data_version);
	pthread_mutex_unlock(&in->lock);
	if (!S_ISREG(a.mode)) {
		ret = -EINVAL;
		goto out;
	}
	if (!cached && cache_get(cl->cache, &in->fid, &e) == 0 &&
	    (e.dirty || (e.has_data && same_data(e.data_version, &e.attr.sid, &a))))
		cached = true;
	if (!cached && (a.flags & ATTR_F_CONFLICT)) {
		ret = -ERR_CONFLICT;
		goto out;
	}
	if (!cached) {
		fd = fetch_file(cl, NULL, in, &a);
		if (fd < 0) {
			ret = fd;
			goto out;
		}
		close(fd);
		*bytes = a.size;
		ret = 1;
	}
out:
	pthread_mutex_unlock(&in->io_lock);
	walk_cred = NULL;
	return ret;
}

static void drop_cb_cb(void *arg, struct inode *in)
{
	(void)arg;
	if (in->ino == INODE_TOP)
		return;
	pthread_mutex_lock(&in->lock);
	in->cb_valid = false;
	in->stale = true;
	pthread_mutex_unlock(&in->lock);
}

void fsops_inval_all(struct client *cl)
{
	struct note *n = xcalloc(1, sizeof(*n));

	n->kind = NOTE_ALL;
	note_push(cl, n);
}

void fsops_drop_callbacks(struct client *cl)
{
	itab_foreach(cl->itab, drop_cb_cb, NULL);
}

int fsops_walk_readlink(struct client *cl, const struct cred *cr, struct inode *in, bool *loaded)
{
	struct msg m, rep;
	struct conn_call cc;
	bool ok;
	int ret;

	*loaded = false;
	pthread_mutex_lock(&in->lock);
	ok = in->target != NULL && cb_ok_locked(cl, in);
	pthread_mutex_unlock(&in->lock);
	if (ok)
		return 0;
	walk_cred = cr;
	req_msg(NULL, &m, MSG_READLINK);
	walk_cred = NULL;
	m.fid = in->fid;
	ret = conn_call(cl->conn, &m, &rep, &cc);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&in->lock);
	free(in->target);
	in->target = xstrdup(rep.target);
	pthread_mutex_unlock(&in->lock);
	conn_done(cl->conn, &cc);
	*loaded = true;
	return 0;
}
