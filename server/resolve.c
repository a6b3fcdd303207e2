/*
 * resolve.c - the resolver thread of encore-server: resolution of files and
 * directories, volume passes and repair, coordinated over rpc connections to
 * every VSG member (docs/replication.md "Resolution (server side)").
 * Owns:    the thread, its rpc_conns (one per VSG slot; its own slot goes to
 *          this server's listening address), the job queues, the eventfd.
 * Borrows: nothing; the loop hands jobs over and takes them back finished.
 * Locking: lock protects jobs, done and stop; the connections belong to the
 *          thread alone. LMDB is never touched here: every change, local or
 *          remote, is a RES_* request the server loop runs in its batch, so
 *          no write transaction is ever held across network I/O.
 *
 * Every step is idempotent (installing the same vector and StoreId twice
 * changes nothing; replayed log records already present are skipped), so a
 * coordinator killed at any point simply runs again: a volume pass is queued
 * at start and whenever a peer comes back.
 */
#include "server/resolve.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "common/err.h"
#include "common/fid.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/rpc.h"
#include "common/xalloc.h"
#include "server/repl.h"
#include "server/reslogic.h"

/* Connect and HELLO deadline for a peer: a down peer must not stall jobs. */
#define CONNECT_MS 500
/* Deadline of one resolution call: a peer's group commit may fsync a lot. */
#define CALL_MS 30000
/* Peers are probed this often (docs/replication.md: about every second). */
#define PROBE_MS 1000
/* Rounds of a volume pass: each round resolves one more level of new
 * directories; deeper trees finish in the next pass. */
#define PASS_ROUNDS 16
/* Attempts at a client's RESOLVE whose installs were refused (the object
 * changed under it); 20 ms backoff doubling: about 0.6 s in all. */
#define RESOLVE_TRIES 5
/* Longest wait before another pass when the last one left objects
 * different. */
#define RETRY_MAX_MS 30000
/* Objects resolved per job from a directory's new children (a bound on the
 * work list). */
#define WORK_MAX 100000
/* Log records gathered per replica of one directory. */
#define LOG_MAX 200000

struct resolver {
	struct resolver_cfg cfg;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct res_job *jobs, *jobs_tail; /* protected by lock */
	struct res_job *done;		  /* protected by lock */
	bool stop;			  /* protected by lock */
	int efd;
	/* thread only */
	struct rpc_conn *conn[VV_MAX];
	bool up[VV_MAX];
	uint32_t self_slot;
	uint64_t sid_client, sid_seq;
	size_t pass_left;	  /* objects the last volume pass left different */
	int retry_ms;		  /* backoff of the next pass while some are left */
	struct timespec retry_at; /* when to queue it (tv_sec 0: none due) */
};

/* ---- peers and connections -------------------------------------------------- */

struct peers_ctx {
	uint32_t id;
	char *out;
	size_t len;
	bool found;
};

static int peers_fn(void *arg, const char *section, const char *name, const char *value)
{
	struct peers_ctx *c = arg;
	unsigned long id;
	char *end;

	if (strncmp(section, "server ", 7) != 0 || strcmp(name, "address") != 0)
		return 1;
	errno = 0;
	id = strtoul(section + 7, &end, 10);
	if (errno != 0 || *end != '\0' || id != c->id)
		return 1;
	snprintf(c->out, c->len, "%s", value);
	c->found = true;
	return 1;
}

static int peer_addr(struct resolver *r, uint32_t id, char *out, size_t len)
{
	struct peers_ctx c = { .id = id, .out = out, .len = len };
	if (r->cfg.peers == NULL)
		return -ENOENT;
	int ret = ini_parse(r->cfg.peers, peers_fn, &c);
	if (ret != 0) {
		log_warn("resolve", "cannot parse peers file '%s' (line %d)", r->cfg.peers, ret);
		return -EINVAL;
	}
	return c.found ? 0 : -ENOENT;
}

static void conn_drop(struct resolver *r, uint32_t slot)
{
	rpc_close(r->conn[slot]);
	r->conn[slot] = NULL;
}

/* True if the slot's server answers (connecting and saying HELLO if needed). */
static bool conn_ensure(struct resolver *r, uint32_t slot)
{
	char addr[300];
	struct msg req, rep;
	struct rpc_call *call = NULL;
	int ret;

	if (r->conn[slot] != NULL && rpc_alive(r->conn[slot]))
		return true;
	conn_drop(r, slot);
	if (slot == r->self_slot)
		snprintf(addr, sizeof(addr), "%s", r->cfg.self_addr);
	else if (peer_addr(r, r->cfg.vsg.ids[slot], addr, sizeof(addr)) < 0)
		return false;
	ret = rpc_open(addr, CONNECT_MS, NULL, NULL, NULL, &r->conn[slot]);
	if (ret < 0)
		return false;
	msg_init(&req, MSG_HELLO);
	req.version = PROTO_VERSION;
	req.client_id = r->sid_client;
	snprintf(req.realm, sizeof(req.realm), "%s", r->cfg.realm);
	snprintf(req.name, sizeof(req.name), "server:%u", r->cfg.self_id);
	ret = rpc_call(r->conn[slot], &req, &rep, CONNECT_MS * 4, &call);
	if (ret == 0)
		ret = rep.status;
	if (ret == 0 && rep.server_id != r->cfg.vsg.ids[slot]) {
		log_warn("resolve", "'%s' answers as server %u, not %u", addr, rep.server_id,
			 r->cfg.vsg.ids[slot]);
		ret = -EINVAL;
	}
	rpc_call_free(call);
	if (ret < 0) {
		conn_drop(r, slot);
		return false;
	}
	return true;
}

/* One call; returns the transport error or the reply's status. On success
 * *callp holds the reply's data until freed. */
static int call(struct resolver *r, uint32_t slot, struct msg *req, struct msg *rep,
		struct rpc_call **callp)
{
	int ret;

	*callp = NULL;
	if (!conn_ensure(r, slot))
		return -ENOTCONN;
	ret = rpc_call(r->conn[slot], req, rep, CALL_MS, callp);
	if (ret < 0) {
		rpc_call_free(*callp);
		*callp = NULL;
		conn_drop(r, slot);
		return ret;
	}
	if (rep->status < 0) {
		rpc_call_free(*callp);
		*callp = NULL;
	}
	return rep->status;
}

/* call() for replies whose data is not needed. */
static int call1(struct resolver *r, uint32_t slot, struct msg *req, struct msg *rep)
{
	struct rpc_call *c;
	int ret = call(r, slot, req, rep, &c);
	rpc_call_free(c);
	return ret;
}

static void new_sid(struct resolver *r, struct storeid *sid)
{
	sid->client = r->sid_client;
	sid->seq = ++r->sid_seq;
}

/* ---- state of one object on every replica -------------------------------- */

struct objstate {
	uint32_t have; /* slots holding it */
	struct attr a[VV_MAX];
	char target[VV_MAX][TARGET_MAX_LEN + 1];
	uint8_t parent[VV_MAX][OID_LEN];
	char name[VV_MAX][NAME_MAX_LEN + 1];
};

static int gather(struct resolver *r, const struct fid *fid, uint32_t flags, struct objstate *st)
{
	struct msg req, rep;

	memset(st, 0, sizeof(*st));
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!conn_ensure(r, s))
			continue;
		msg_init(&req, MSG_RES_GET);
		req.fid = *fid;
		req.mflags = flags;
		int ret = call1(r, s, &req, &rep);
		if (ret == -ENOENT)
			continue;
		if (ret < 0)
			return ret;
		st->have |= 1u << s;
		st->a[s] = rep.attr;
		memcpy(st->target[s], rep.target, sizeof(st->target[s]));
		memcpy(st->parent[s], rep.fid2.oid, OID_LEN);
		memcpy(st->name[s], rep.name, sizeof(st->name[s]));
	}
	return st->have != 0 ? 0 : -ENOENT;
}

static int mark_all(struct resolver *r, const struct fid *fid, uint32_t have)
{
	struct msg req, rep;
	int ret = 0;

	log_notice("resolve", "marking a conflict in volume %u", fid->vol);
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!(have & (1u << s)))
			continue;
		msg_init(&req, MSG_RES_MARK);
		req.fid = *fid;
		req.mflags = RES_MARK_SET;
		int e = call1(r, s, &req, &rep);
		if (e < 0)
			ret = e;
	}
	return ret;
}

/* Fills the RES_EXPECT part of req: the target must still be in state exp
 * (as the coordinator read it); NULL: no check. */
static void expect(struct msg *req, const struct attr *exp)
{
	if (exp == NULL)
		return;
	req->mflags |= RES_EXPECT;
	req->attr2 = *exp;
}

/* mark_all, unless a replica changed since st was gathered: a decision taken
 * on a stale view is no conflict; -ERR_VERSION, the next round looks again. */
static int mark_changed(struct resolver *r, const struct fid *fid, const struct objstate *st)
{
	struct objstate *now = xmalloc(sizeof(*now));
	int ret = gather(r, fid, 0, now);

	if (ret == 0 && now->have != st->have)
		ret = -ERR_VERSION;
	for (uint32_t s = 0; s < r->cfg.vsg.n && ret == 0; s++)
		if ((st->have & (1u << s)) &&
		    (vv_compare(&now->a[s].vv, &st->a[s].vv) != VV_EQUAL ||
		     !storeid_eq(&now->a[s].sid, &st->a[s].sid)))
			ret = -ERR_VERSION;
	free(now);
	if (ret < 0)
		return ret;
	return mark_all(r, fid, st->have);
}

static int install_status(struct resolver *r, uint32_t slot, const struct attr *a,
			  const char *target, uint32_t extra, const struct attr *exp)
{
	struct msg req, rep;

	msg_init(&req, MSG_RES_INSTALL);
	req.fid = a->fid;
	req.attr = *a;
	req.mflags = RES_INSTALL_STATUS | extra;
	expect(&req, exp);
	snprintf(req.target, sizeof(req.target), "%s", target);
	return call1(r, slot, &req, &rep);
}

/* Copies the data of fid from slot src (version dv, size bytes) to every
 * slot of dst with status *a (vector and StoreId included) under fid a->fid.
 * exp (NULL: no check) holds, per slot, the state each target must still be
 * in. */
static int stream(struct resolver *r, uint32_t src, const struct fid *fid, uint64_t dv,
		  uint64_t size, uint32_t dst, const struct attr *a, uint32_t extra,
		  const struct attr *exp)
{
	struct msg req, rep, frep;
	uint64_t handle[VV_MAX];
	uint64_t off = 0;
	int ret = 0;

	for (uint32_t s = 0; s < VV_MAX; s++)
		randombytes_buf(&handle[s], sizeof(handle[s]));
	for (;;) {
		struct rpc_call *fc = NULL;
		uint64_t len = size - off < CHUNK_MAX ? size - off : CHUNK_MAX;
		memset(&frep, 0, sizeof(frep));
		if (len > 0) {
			msg_init(&req, MSG_FETCH);
			req.fid = *fid;
			req.offset = off;
			req.length = len;
			req.expect = dv;
			ret = call(r, src, &req, &frep, &fc);
			if (ret < 0)
				break;
			if (frep.data_len != len) {
				rpc_call_free(fc);
				ret = -EAGAIN; /* changed under us: the next pass retries */
				break;
			}
		}
		bool last = off + len >= size;
		for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
			if (!(dst & (1u << s)))
				continue;
			msg_init(&req, MSG_RES_INSTALL);
			req.fid = a->fid;
			req.attr = *a;
			req.offset = off;
			req.length = size;
			req.handle = handle[s];
			req.mflags = (off == 0 ? STORE_FIRST : 0) | (last ? STORE_LAST : 0) | extra;
			expect(&req, exp != NULL ? &exp[s] : NULL);
			req.data = frep.data;
			req.data_len = len > 0 ? frep.data_len : 0;
			int e = call1(r, s, &req, &rep);
			if (e < 0 && ret == 0)
				ret = e;
			if (e < 0)
				dst &= ~(1u << s);
		}
		rpc_call_free(fc);
		off += len;
		if (last)
			break;
	}
	return ret;
}

/* ---- files ---------------------------------------------------------------- */

static int resolve_file(struct resolver *r, const struct fid *fid, struct objstate *st)
{
	struct vv vvs[VV_MAX], vv;
	struct storeid sids[VV_MAX];
	uint32_t slots[VV_MAX];
	size_t n = 0, w;
	int ret = 0;

	memset(vvs, 0, sizeof(vvs));
	memset(sids, 0, sizeof(sids));

	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!(st->have & (1u << s)))
			continue;
		slots[n] = s;
		vvs[n] = st->a[s].vv;
		sids[n] = st->a[s].sid;
		n++;
	}
	enum res_action act = res_decide(n, vvs, sids, &w, &vv);
	switch (act) {
	case RES_SAME:
		return 0;
	case RES_CONFLICT: {
		char fs[FID_STR_LEN], vs[VV_STR_LEN];
		fid_fmt(fid, fs);
		for (size_t i = 0; i < n; i++) {
			vv_fmt(&vvs[i], vs);
			log_info("resolve",
				 "file conflict %s: server %u at vector %s by %016llx:%llu", fs,
				 r->cfg.vsg.ids[slots[i]], vs, (unsigned long long)sids[i].client,
				 (unsigned long long)sids[i].seq);
		}
		return mark_changed(r, fid, st);
	}
	case RES_MERGE:
		for (size_t i = 0; i < n; i++) {
			if (vv_compare(&vvs[i], &vv) == VV_EQUAL)
				continue;
			struct attr a = st->a[slots[i]];
			a.vv = vv;
			int e = install_status(r, slots[i], &a, st->target[slots[i]], 0,
					       &st->a[slots[i]]);
			if (e < 0)
				ret = e;
		}
		return ret;
	case RES_DOMINANT:
		break;
	}
	uint32_t ws = slots[w], data_dst = 0;
	struct attr a = st->a[ws];
	a.vv = vv;
	for (size_t i = 0; i < n; i++) {
		uint32_t s = slots[i];
		bool same_sid = storeid_eq(&sids[i], &a.sid);
		if (same_sid && vv_compare(&vvs[i], &vv) == VV_EQUAL)
			continue;
		if (same_sid || !S_ISREG(a.mode)) {
			int e = install_status(r, s, &a, st->target[ws], 0, &st->a[s]);
			if (e < 0)
				ret = e;
		} else {
			data_dst |= 1u << s;
		}
	}
	if (data_dst != 0) {
		int e = stream(r, ws, fid, a.data_version, a.size, data_dst, &a, 0, st->a);
		if (e < 0)
			ret = e;
	}
	return ret;
}

/* ---- directories ---------------------------------------------------------- */

struct dirlog {
	struct rlog_rec *log;
	size_t n_log, cap_log;
	char (*names)[NAME_MAX_LEN + 1];
	uint8_t (*oids)[OID_LEN];
	size_t n_ents, cap_ents;
};

static void dirlog_free(struct dirlog *d)
{
	free(d->log);
	free(d->names);
	free(d->oids);
	memset(d, 0, sizeof(*d));
}

static int fetch_log(struct resolver *r, uint32_t slot, const struct fid *dir, struct dirlog *d)
{
	struct msg req, rep;
	uint64_t cookie = 0;
	int ret;

	for (;;) {
		struct rpc_call *c;
		msg_init(&req, MSG_RES_LOG);
		req.fid = *dir;
		req.offset = cookie;
		ret = call(r, slot, &req, &rep, &c);
		if (ret < 0)
			return ret;
		struct rd rd;
		struct rlog_rec rec;
		rd_init(&rd, rep.data, rep.data_len);
		while ((ret = rlog_decode(&rd, &rec)) == 1) {
			if (d->n_log == LOG_MAX) {
				ret = -EFBIG;
				break;
			}
			if (d->n_log == d->cap_log) {
				d->cap_log = d->cap_log ? d->cap_log * 2 : 64;
				d->log = xrealloc(d->log, d->cap_log * sizeof(*d->log));
			}
			d->log[d->n_log++] = rec;
		}
		bool eof = rep.mflags & RES_EOF;
		cookie = rep.offset;
		rpc_call_free(c);
		if (ret < 0)
			return ret == -EFBIG ? ret : -EPROTO;
		if (eof)
			return 0;
	}
}

static int fetch_ents(struct resolver *r, uint32_t slot, const struct fid *dir, struct dirlog *d)
{
	struct msg req, rep;
	char cookie[NAME_MAX_LEN + 1] = "";
	int ret;

	for (;;) {
		struct rpc_call *c;
		msg_init(&req, MSG_READDIR);
		req.fid = *dir;
		snprintf(req.name, sizeof(req.name), "%s", cookie);
		ret = call(r, slot, &req, &rep, &c);
		if (ret < 0)
			return ret;
		struct rd rd;
		struct dirent_w de;
		rd_init(&rd, rep.data, rep.data_len);
		while ((ret = dirent_decode(&rd, &de)) == 1) {
			if (d->n_ents == d->cap_ents) {
				d->cap_ents = d->cap_ents ? d->cap_ents * 2 : 64;
				d->names = xrealloc(d->names, d->cap_ents * sizeof(*d->names));
				d->oids = xrealloc(d->oids, d->cap_ents * sizeof(*d->oids));
			}
			memcpy(d->names[d->n_ents], de.name, sizeof(de.name));
			memcpy(d->oids[d->n_ents], de.fid.oid, OID_LEN);
			d->n_ents++;
			snprintf(cookie, sizeof(cookie), "%s", de.name);
		}
		bool eof = (rep.mflags & READDIR_EOF) || rep.data_len == 0;
		rpc_call_free(c);
		if (ret < 0)
			return -EPROTO;
		if (eof)
			return 0;
	}
}

struct worklist {
	struct fid *v;
	size_t n, cap;
};

static void work_push(struct worklist *w, const struct fid *f)
{
	if (w->n >= WORK_MAX)
		return;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
	}
	w->v[w->n++] = *f;
}

/* Sends recs to slot in RES_APPLY frames that fit; the last carries the
 * directory's final vector and flags. exp (NULL: no check): the state the
 * directory must still be in; every frame checks it (only the last one
 * changes the directory's vector), so an update in between stops the replay
 * with -ERR_VERSION. */
static int apply_recs(struct resolver *r, uint32_t slot, const struct fid *dir,
		      const struct rlog_rec *recs, size_t n, const struct attr *fin, uint32_t flags,
		      const struct attr *exp)
{
	struct msg req, rep;
	struct wr w;
	size_t i = 0;
	int ret = 0;

	wr_init(&w);
	do {
		wr_reset(&w);
		while (i < n && w.len + RLOG_WIRE_MAX < CHUNK_MAX)
			rlog_encode(&w, &recs[i++]);
		msg_init(&req, MSG_RES_APPLY);
		req.fid = *dir;
		req.data = w.len > 0 ? w.buf : NULL;
		req.data_len = (uint32_t)w.len;
		if (i == n) {
			req.attr = *fin;
			req.mflags = flags;
		} else {
			/* A repair's replays go into a directory in conflict: every
			 * frame needs the force, only the last sets the vector. */
			req.mflags = flags & RES_APPLY_FORCE;
		}
		expect(&req, exp);
		ret = call1(r, slot, &req, &rep);
	} while (ret == 0 && i < n);
	wr_release(&w);
	return ret;
}

static int resolve_dir(struct resolver *r, const struct fid *fid, struct objstate *st,
		       struct worklist *wl)
{
	struct vv vvs[VV_MAX], vv;
	struct storeid sids[VV_MAX];
	uint32_t slots[VV_MAX];
	struct dirlog dl[VV_MAX];
	struct res_dirview view[VV_MAX];
	struct rlog_rec *out[VV_MAX];
	size_t n_out[VV_MAX];
	size_t n = 0, w, total = 0;
	int ret = 0;

	memset(vvs, 0, sizeof(vvs));
	memset(sids, 0, sizeof(sids));

	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!(st->have & (1u << s)))
			continue;
		slots[n] = s;
		vvs[n] = st->a[s].vv;
		sids[n] = st->a[s].sid;
		n++;
	}
	enum res_action act = res_decide(n, vvs, sids, &w, &vv);
	if (act == RES_SAME)
		return 0;
	if (act == RES_MERGE) {
		for (size_t i = 0; i < n; i++) {
			if (vv_compare(&vvs[i], &vv) == VV_EQUAL)
				continue;
			struct attr a = st->a[slots[i]];
			a.vv = vv;
			int e = install_status(r, slots[i], &a, "", 0, &st->a[slots[i]]);
			if (e < 0)
				ret = e;
		}
		return ret;
	}
	memset(dl, 0, sizeof(dl));
	memset(out, 0, sizeof(out));
	for (size_t i = 0; i < n && ret == 0; i++) {
		ret = fetch_log(r, slots[i], fid, &dl[i]);
		if (ret == 0)
			ret = fetch_ents(r, slots[i], fid, &dl[i]);
		total += dl[i].n_log;
		view[i].log = dl[i].log;
		view[i].n_log = dl[i].n_log;
		view[i].names = (const char(*)[NAME_MAX_LEN + 1]) dl[i].names;
		view[i].oids = (const uint8_t(*)[OID_LEN])dl[i].oids;
		view[i].n_ents = dl[i].n_ents;
	}
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		out[i] = xmalloc((total + 1) * sizeof(struct rlog_rec));
	bool conflict = res_dir_merge(n, view, out, n_out);
	/* Remove/update: the replica changed the child after the other side's
	 * view of it when removing. */
	for (size_t i = 0; i < n && !conflict; i++) {
		for (size_t j = 0; j < n_out[i] && !conflict; j++) {
			const struct rlog_rec *e = &out[i][j];
			struct msg req, rep;
			if (e->op != RLOG_REMOVE)
				continue;
			msg_init(&req, MSG_RES_GET);
			req.fid.vol = fid->vol;
			memcpy(req.fid.oid, e->child, OID_LEN);
			if (call1(r, slots[i], &req, &rep) < 0)
				continue;
			/* A directory: its replay removes it only if it is empty
			 * there, or if everything below it is what the remover
			 * had seen (server/ops.c prune_subtree); otherwise the
			 * replay fails with ENOTEMPTY, a conflict below. */
			if (S_ISDIR(rep.attr.mode))
				continue;
			if (res_remove_update(&rep.attr.vv, &rep.attr.sid, e)) {
				log_info(
					"resolve",
					"directory conflict: '%s' removed on one replica, updated on another",
					e->name);
				conflict = true;
			}
		}
	}
	if (conflict) {
		ret = mark_changed(r, fid, st);
		goto out;
	}
	struct attr fin = st->a[slots[0]];
	fin.vv = vvs[0];
	for (size_t i = 1; i < n; i++)
		vv_merge(&fin.vv, &vvs[i]);
	while (fin.vv.n <= r->self_slot)
		fin.vv.slot[fin.vv.n++] = 0;
	fin.vv.slot[r->self_slot]++;
	new_sid(r, &fin.sid);
	/* Every replica's replays end with the merge's mark (out[i] has room:
	 * total + 1). */
	for (size_t i = 0; i < n; i++) {
		struct rlog_rec *mk = &out[i][n_out[i]++];
		memset(mk, 0, sizeof(*mk));
		mk->op = RLOG_MARK;
		memcpy(mk->child, fid->oid, OID_LEN);
		mk->sid = fin.sid;
	}
	/* Each replica gets its replays only if it is still as read: an update
	 * since (a client's, another coordinator's) refuses them, and the next
	 * round merges again from fresh logs. */
	size_t applied = 0;
	/* This server's own replica first: the merge's vector counts a step
	 * in this server's slot, and only taking it here reserves that value.
	 * If this replica changed since it was read (a client's update here
	 * stepped the same slot), the merge goes nowhere: a replica that took
	 * it would carry the client's vector over the merge's older state
	 * (chaos run: a listing that a rename had changed, answered with the
	 * rename's own vector, the renamed name still in it). */
	size_t order[VV_MAX], k = 0;
	for (size_t i = 0; i < n; i++)
		if (slots[i] == r->self_slot)
			order[k++] = i;
	bool self_first = k > 0;
	for (size_t i = 0; i < n; i++)
		if (slots[i] != r->self_slot)
			order[k++] = i;
	for (size_t pos = 0; pos < n; pos++) {
		size_t i = order[pos];
		int e = apply_recs(r, slots[i], fid, out[i], n_out[i], &fin, 0, &st->a[slots[i]]);
		if (e < 0 && pos == 0 && self_first && e != -EEXIST && e != -ENOTEMPTY) {
			ret = e;
			break;
		}
		if (e == -EEXIST || e == -ENOTEMPTY) {
			/* Checked against a current view (RES_EXPECT): a real one. */
			log_info("resolve", "directory conflict: a replay on server %u: %s",
				 r->cfg.vsg.ids[slots[i]], err_str(e));
			ret = mark_all(r, fid, st->have);
			goto out;
		}
		if (e < 0) {
			ret = e;
			continue;
		}
		applied++;
		for (size_t j = 0; j < n_out[i]; j++) {
			if (out[i][j].op == RLOG_CREATE || out[i][j].op == RLOG_LINK ||
			    out[i][j].op == RLOG_RENAME_IN) {
				struct fid cf = { .vol = fid->vol };
				memcpy(cf.oid, out[i][j].child, OID_LEN);
				work_push(wl, &cf);
			}
		}
	}
	/* Logs may go once every member holds every entry: only after all of
	 * them took the merge, and only where nothing came in since (still
	 * fin). Truncating in the same step as the replay would leave, if a
	 * later replica failed, an empty log next to an unmerged one, whose
	 * old creates the next merge would take for new. */
	if (applied == n && n == r->cfg.vsg.n) {
		struct attr keep = { .vv = { 0 } };
		for (size_t i = 0; i < n; i++)
			(void)apply_recs(r, slots[i], fid, NULL, 0, &keep, RES_APPLY_TRUNCATE,
					 &fin);
	}
out:
	for (size_t i = 0; i < n; i++) {
		dirlog_free(&dl[i]);
		free(out[i]);
	}
	return ret;
}

static bool stopping(struct resolver *r)
{
	return __atomic_load_n(&r->stop, __ATOMIC_RELAXED);
}

static int resolve_one(struct resolver *r, const struct fid *fid, struct worklist *wl)
{
	struct objstate *st = xmalloc(sizeof(*st));
	int ret = gather(r, fid, 0, st);

	if (ret < 0)
		goto out;
	uint32_t flagged = 0;
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++)
		if ((st->have & (1u << s)) && (st->a[s].flags & ATTR_F_CONFLICT))
			flagged |= 1u << s;
	if (flagged != 0) {
		/* Never changed by resolution until repaired; flagged everywhere. */
		if (flagged != st->have)
			ret = mark_all(r, fid, st->have & ~flagged);
		goto out;
	}
	uint32_t any = 0;
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++)
		if (st->have & (1u << s))
			any = s;
	if (S_ISDIR(st->a[any].mode))
		ret = resolve_dir(r, fid, st, wl);
	else
		ret = resolve_file(r, fid, st);
out:
	free(st);
	return ret;
}

/* Resolves fid, then the objects its directory merge created elsewhere. */
static int resolve_tree(struct resolver *r, const struct fid *fid)
{
	struct worklist wl = { 0 };
	int ret = resolve_one(r, fid, &wl);
	for (size_t i = 0; i < wl.n && !stopping(r); i++) {
		int e = resolve_one(r, &wl.v[i], &wl);
		if (e < 0 && e != -ENOENT)
			log_debug("resolve", "resolving a new object: %s", err_str(e));
	}
	free(wl.v);
	return ret;
}

/* ---- volume pass ---------------------------------------------------------- */

struct scanrow {
	uint8_t oid[OID_LEN];
	uint32_t slot;
	struct scan_ent e;
};

static int row_cmp(const void *a, const void *b)
{
	return memcmp(((const struct scanrow *)a)->oid, ((const struct scanrow *)b)->oid, OID_LEN);
}

static int scan_all(struct resolver *r, uint32_t vol, uint32_t up, struct scanrow **rows,
		    size_t *n_rows)
{
	size_t cap = 0;
	int ret;

	*rows = NULL;
	*n_rows = 0;
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!(up & (1u << s)))
			continue;
		struct fid cookie = { .vol = vol };
		for (;;) {
			struct msg req, rep;
			struct rpc_call *c;
			msg_init(&req, MSG_RES_SCAN);
			req.fid = cookie;
			ret = call(r, s, &req, &rep, &c);
			if (ret < 0)
				return ret;
			struct rd rd;
			struct scan_ent e;
			rd_init(&rd, rep.data, rep.data_len);
			while ((ret = scan_ent_decode(&rd, &e)) == 1) {
				if (*n_rows == cap) {
					cap = cap ? cap * 2 : 1024;
					*rows = xrealloc(*rows, cap * sizeof(**rows));
				}
				struct scanrow *row = &(*rows)[(*n_rows)++];
				memcpy(row->oid, e.oid, OID_LEN);
				row->slot = s;
				row->e = e;
			}
			bool eof = (rep.mflags & RES_EOF) || rep.data_len == 0;
			cookie = rep.fid;
			rpc_call_free(c);
			if (ret < 0)
				return -EPROTO;
			if (eof)
				break;
		}
	}
	qsort(*rows, *n_rows, sizeof(**rows), row_cmp);
	return 0;
}

/* Hands the pass to slot coord: RESOLVE(RESOLVE_VOLUME) there. Waited for
 * when a client waits for ours (a rejoined member's clients read elsewhere
 * until it is level); else fire and forget, so that this thread does not
 * sit out the whole pass. */
static int forward_pass(struct resolver *r, uint32_t coord, uint32_t vol, bool wait)
{
	struct msg req, rep;
	struct rpc_call *c = NULL;

	msg_init(&req, MSG_RESOLVE);
	fid_make_root(&req.fid, vol);
	req.mflags = RESOLVE_VOLUME;
	if (wait)
		return call1(r, coord, &req, &rep);
	int ret = rpc_start(r->conn[coord], &req, &c);
	rpc_call_free(c); /* a late reply is dropped */
	return ret;
}

/* One volume pass. Only the member with the lowest server id among those
 * up coordinates: two coordinators at once would each merge from the
 * other's half-applied state (RES_EXPECT refuses what they would install
 * over each other, so they would mostly undo each other's progress). Any
 * other member hands the pass to it. */
static int volume_pass(struct resolver *r, uint32_t vol, bool wait)
{
	size_t last_diff = SIZE_MAX;
	int ret = 0;

	r->pass_left = 0;
	for (int round = 0; round < PASS_ROUNDS; round++) {
		uint32_t up = 0, n_up = 0, coord = r->self_slot;
		for (uint32_t s = 0; s < r->cfg.vsg.n; s++)
			if (conn_ensure(r, s)) {
				up |= 1u << s;
				n_up++;
				if (r->cfg.vsg.ids[s] < r->cfg.vsg.ids[coord])
					coord = s;
			}
		if (n_up < 2 || !(up & (1u << r->self_slot)))
			return 0;
		if (coord != r->self_slot) {
			ret = forward_pass(r, coord, vol, wait);
			/* The coordinator went away meanwhile (its connection is
			 * gone): look again, this member may coordinate now. */
			if (ret < 0 && wait && r->conn[coord] == NULL && !stopping(r))
				continue;
			return ret;
		}
		struct scanrow *rows;
		size_t n_rows;
		ret = scan_all(r, vol, up, &rows, &n_rows);
		if (ret < 0) {
			free(rows);
			return ret;
		}
		struct fid *dirs = xmalloc((n_rows + 1) * sizeof(*dirs));
		struct fid *files = xmalloc((n_rows + 1) * sizeof(*files));
		size_t n_dirs = 0, n_files = 0;
		for (size_t i = 0; i < n_rows;) {
			size_t j = i;
			uint32_t have = 0, flagged = 0;
			bool differ = false, dir = false;
			while (j < n_rows && memcmp(rows[j].oid, rows[i].oid, OID_LEN) == 0) {
				have |= 1u << rows[j].slot;
				if (rows[j].e.flags & ATTR_F_CONFLICT)
					flagged |= 1u << rows[j].slot;
				if (S_ISDIR(rows[j].e.mode))
					dir = true;
				if (vv_compare(&rows[j].e.vv, &rows[i].e.vv) != VV_EQUAL ||
				    !storeid_eq(&rows[j].e.sid, &rows[i].e.sid))
					differ = true;
				j++;
			}
			if (have != up)
				differ = true;
			if (flagged != 0 && flagged == have)
				differ = false; /* in conflict everywhere: waits for repair */
			if (differ) {
				struct fid f = { .vol = vol };
				memcpy(f.oid, rows[i].oid, OID_LEN);
				if (dir)
					dirs[n_dirs++] = f;
				else
					files[n_files++] = f;
			}
			i = j;
		}
		free(rows);
		size_t diff = n_dirs + n_files;
		if (diff > 0)
			log_info("resolve",
				 "volume %u pass round %d: %zu directories, %zu files differ", vol,
				 round, n_dirs, n_files);
		/* Root first: a directory's merge creates its new children. */
		for (size_t i = 0; i < n_dirs; i++) {
			if (!fid_is_root(&dirs[i]))
				continue;
			struct fid t = dirs[0];
			dirs[0] = dirs[i];
			dirs[i] = t;
		}
		size_t busy = 0;
		for (size_t i = 0; i < n_dirs + n_files && !stopping(r); i++) {
			const struct fid *f = i < n_dirs ? &dirs[i] : &files[i - n_dirs];
			int e = resolve_tree(r, f);
			if (e == -ERR_VERSION || e == -EAGAIN)
				busy++;
			if (e < 0) {
				char fs[FID_STR_LEN];
				fid_fmt(f, fs);
				log_debug("resolve", "volume pass: %s: %s", fs, err_str(e));
			}
		}
		free(dirs);
		free(files);
		/* Left for a later pass: objects whose installs were refused
		 * because they changed meanwhile. Objects only some replicas
		 * hold for good (a name conflict's two files) are not counted. */
		r->pass_left = busy;
		if (diff == 0)
			return 0;
		if (diff >= last_diff && round > 2)
			return 0; /* no progress: objects only some replicas hold */
		last_diff = diff;
	}
	return ret;
}

/* ---- repair of a directory ------------------------------------------------- */

/* One binding of a directory repair's result: name -> oid, with the slot
 * whose copy of the object gives the status for creates elsewhere. */
struct rbind {
	char name[NAME_MAX_LEN + 1];
	uint8_t oid[OID_LEN];
	uint32_t src;
};

/* A list of bindings with two hash indexes (open addressing, linear
 * probing; a slot holds a position + 1, 0 is empty), by name and by oid, so
 * that a repair costs time in proportion to the directory's size, not its
 * square. A name or an oid may occur more than once (a collision, hard
 * links): lookups walk every position whose key hashes alike. */
struct rtarget {
	struct rbind *v;
	size_t n, cap;
	uint32_t *by_name, *by_oid;
	size_t hcap; /* slots of each index: a power of two, at least 2 n */
};

static uint64_t hash_bytes(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t h = 14695981039346656037ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void hash_put(uint32_t *tab, size_t hcap, uint64_t h, size_t pos)
{
	size_t i = h & (hcap - 1);

	while (tab[i] != 0)
		i = (i + 1) & (hcap - 1);
	tab[i] = (uint32_t)pos + 1;
}

static void target_index(struct rtarget *t, size_t pos)
{
	hash_put(t->by_name, t->hcap, hash_bytes(t->v[pos].name, strlen(t->v[pos].name)), pos);
	hash_put(t->by_oid, t->hcap, hash_bytes(t->v[pos].oid, OID_LEN), pos);
}

static void target_add(struct rtarget *t, const char *name, const uint8_t *oid, uint32_t src)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	size_t pos = t->n++;
	struct rbind *b = &t->v[pos];
	snprintf(b->name, sizeof(b->name), "%s", name);
	memcpy(b->oid, oid, OID_LEN);
	b->src = src;
	if (2 * t->n <= t->hcap) {
		target_index(t, pos);
		return;
	}
	free(t->by_name);
	free(t->by_oid);
	t->hcap = t->hcap ? t->hcap * 2 : 128;
	t->by_name = xcalloc(t->hcap, sizeof(*t->by_name));
	t->by_oid = xcalloc(t->hcap, sizeof(*t->by_oid));
	for (size_t i = 0; i < t->n; i++)
		target_index(t, i);
}

static void target_free(struct rtarget *t)
{
	free(t->v);
	free(t->by_name);
	free(t->by_oid);
	memset(t, 0, sizeof(*t));
}

/* The next position of t whose name (oid NULL) or oid hashes like the key;
 * -1 after the last. *i is 0 before the first call. Callers compare keys. */
static ssize_t target_next(const struct rtarget *t, const char *name, const uint8_t *oid, size_t *i)
{
	if (t->hcap == 0 || *i >= t->hcap)
		return -1;
	uint64_t h = oid != NULL ? hash_bytes(oid, OID_LEN) : hash_bytes(name, strlen(name));
	const uint32_t *tab = oid != NULL ? t->by_oid : t->by_name;
	uint32_t at = tab[(h + *i) & (t->hcap - 1)];
	if (at == 0)
		return -1;
	(*i)++;
	return (ssize_t)at - 1;
}

/* Position in t of a binding of name; -1 if none. */
static ssize_t target_name(const struct rtarget *t, const char *name)
{
	size_t i = 0;
	ssize_t p;

	while ((p = target_next(t, name, NULL, &i)) >= 0)
		if (strcmp(t->v[p].name, name) == 0)
			return p;
	return -1;
}

/* True if t binds oid under some name. */
static bool target_has(const struct rtarget *t, const uint8_t *oid)
{
	size_t i = 0;
	ssize_t p;

	while ((p = target_next(t, NULL, oid, &i)) >= 0)
		if (memcmp(t->v[p].oid, oid, OID_LEN) == 0)
			return true;
	return false;
}

/* True if t binds name to oid. */
static bool ents_bind(const struct rtarget *t, const char *name, const uint8_t *oid)
{
	size_t i = 0;
	ssize_t p;

	while ((p = target_next(t, name, NULL, &i)) >= 0)
		if (strcmp(t->v[p].name, name) == 0 && memcmp(t->v[p].oid, oid, OID_LEN) == 0)
			return true;
	return false;
}

/* True if d's log holds a bind (create, link, rename-in) of name to oid. */
static bool log_binds(const struct dirlog *d, const char *name, const uint8_t *oid)
{
	for (size_t i = 0; i < d->n_log; i++) {
		const struct rlog_rec *e = &d->log[i];
		if ((e->op == RLOG_CREATE || e->op == RLOG_LINK || e->op == RLOG_RENAME_IN) &&
		    strcmp(e->name, name) == 0 && memcmp(e->child, oid, OID_LEN) == 0)
			return true;
	}
	return false;
}

/* RES_GET of the object oid of vol at slot: 0, -ENOENT, or another error. */
static int child_get(struct resolver *r, uint32_t slot, uint32_t vol, const uint8_t *oid,
		     struct attr *a)
{
	struct msg req, rep;

	msg_init(&req, MSG_RES_GET);
	req.fid.vol = vol;
	memcpy(req.fid.oid, oid, OID_LEN);
	int ret = call1(r, slot, &req, &rep);
	if (ret == 0)
		*a = rep.attr;
	return ret;
}

/* "NAME.conflict-server<ID>" into out; -ENAMETOOLONG if it does not fit. */
static int conflict_name(char *out, size_t len, const char *name, uint32_t id)
{
	int n = snprintf(out, len, "%s.conflict-server%u", name, id);
	return n < 0 || (size_t)n >= len || (size_t)n > NAME_MAX_LEN ? -ENAMETOOLONG : 0;
}

/* --keep w: w's entries, plus, under NAME.conflict-server<M>, every object
 * another replica M binds here that would otherwise be lost: one w does not
 * hold at all, unless w's log removed it and M has not changed it since (a
 * directory only if M's copy is empty: anything below it is data too). */
static int target_keep_one(struct resolver *r, uint32_t vol, uint32_t w, const struct dirlog *dl,
			   const struct rtarget *ents, struct rtarget *t)
{
	struct rtarget rms = { 0 };
	char nm[NAME_MAX_LEN + 1];
	struct attr a;
	int ret = 0;

	for (size_t i = 0; i < ents[w].n; i++)
		target_add(t, ents[w].v[i].name, ents[w].v[i].oid, w);
	/* w's removals by child, src: the record's index in w's log. */
	for (size_t j = 0; j < dl[w].n_log; j++)
		if (dl[w].log[j].op == RLOG_REMOVE)
			target_add(&rms, dl[w].log[j].name, dl[w].log[j].child, (uint32_t)j);
	for (uint32_t s = 0; s < r->cfg.vsg.n && ret == 0; s++) {
		if (s == w)
			continue;
		for (size_t i = 0; i < ents[s].n && ret == 0; i++) {
			const uint8_t *oid = ents[s].v[i].oid;
			if (target_has(t, oid))
				continue; /* kept (maybe under another name) */
			ret = child_get(r, w, vol, oid, &a);
			if (ret == 0)
				continue; /* w has it elsewhere: moved, not lost */
			if (ret != -ENOENT)
				break;
			ret = child_get(r, s, vol, oid, &a);
			if (ret == -ENOENT) {
				ret = 0;
				continue; /* a dangling entry: nothing to keep */
			}
			if (ret < 0)
				break;
			bool dropped = false;
			size_t it = 0;
			ssize_t p;
			while (!dropped && (p = target_next(&rms, NULL, oid, &it)) >= 0)
				dropped =
					memcmp(rms.v[p].oid, oid, OID_LEN) == 0 &&
					!res_remove_update(&a.vv, &a.sid, &dl[w].log[rms.v[p].src]);
			if (dropped && S_ISDIR(a.mode)) {
				struct dirlog sub = { 0 };
				struct fid sf = { .vol = vol };
				memcpy(sf.oid, oid, OID_LEN);
				ret = fetch_ents(r, s, &sf, &sub);
				dropped = ret == 0 && sub.n_ents == 0;
				dirlog_free(&sub);
				if (ret < 0)
					break;
			}
			if (dropped)
				continue;
			ret = conflict_name(nm, sizeof(nm), ents[s].v[i].name, r->cfg.vsg.ids[s]);
			if (ret == 0 && target_name(t, nm) >= 0)
				ret = -EEXIST; /* the new name is taken */
			if (ret == 0)
				target_add(t, nm, oid, s);
		}
	}
	target_free(&rms);
	return ret;
}

/* --keep-all: the union of every replica's entries. A name bound to
 * different objects becomes NAME.conflict-server<M> for each (M: the first
 * member binding it to that object); an object bound under different names
 * (renamed on one side) keeps one of them, a name some replica's log bound
 * it to (the rename) before the others, so no object gets a second name. */
static int target_keep_all(struct resolver *r, uint32_t have, const struct dirlog *dl,
			   const struct rtarget *ents, struct rtarget *t)
{
	struct rtarget all = { 0 };
	char nm[NAME_MAX_LEN + 1];
	size_t it;
	ssize_t k;
	int ret = 0;

	/* Every distinct (name, oid), first holder as the source. */
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!(have & (1u << s)))
			continue;
		for (size_t i = 0; i < ents[s].n; i++)
			if (!ents_bind(&all, ents[s].v[i].name, ents[s].v[i].oid))
				target_add(&all, ents[s].v[i].name, ents[s].v[i].oid, s);
	}
	/* One name per object, unless every replica binds all its names (hard
	 * links they share: nothing to change). */
	bool *drop = xcalloc(all.n + 1, sizeof(*drop));
	for (size_t i = 0; i < all.n; i++) {
		size_t best = SIZE_MAX, n_names = 0;
		bool everywhere = true, best_logged = false;
		it = 0;
		while ((k = target_next(&all, NULL, all.v[i].oid, &it)) >= 0)
			n_names += memcmp(all.v[k].oid, all.v[i].oid, OID_LEN) == 0;
		if (n_names < 2)
			continue;
		it = 0;
		while ((k = target_next(&all, NULL, all.v[i].oid, &it)) >= 0) {
			if (memcmp(all.v[k].oid, all.v[i].oid, OID_LEN) != 0)
				continue;
			bool logged = false;
			for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
				if (!(have & (1u << s)))
					continue;
				everywhere = everywhere &&
					     ents_bind(&ents[s], all.v[k].name, all.v[k].oid);
				logged = logged || log_binds(&dl[s], all.v[k].name, all.v[k].oid);
			}
			/* The first one some log binds, else the first one. */
			if (best == SIZE_MAX || (logged && !best_logged) ||
			    (logged == best_logged && (size_t)k < best)) {
				best = (size_t)k;
				best_logged = logged;
			}
		}
		if (!everywhere && best != i)
			drop[i] = true;
	}
	for (size_t i = 0; i < all.n && ret == 0; i++) {
		if (drop[i])
			continue;
		bool collides = false;
		it = 0;
		while (!collides && (k = target_next(&all, all.v[i].name, NULL, &it)) >= 0)
			collides = !drop[k] && strcmp(all.v[k].name, all.v[i].name) == 0 &&
				   memcmp(all.v[k].oid, all.v[i].oid, OID_LEN) != 0;
		if (!collides) {
			target_add(t, all.v[i].name, all.v[i].oid, all.v[i].src);
			continue;
		}
		ret = conflict_name(nm, sizeof(nm), all.v[i].name, r->cfg.vsg.ids[all.v[i].src]);
		if (ret == 0 && target_name(t, nm) >= 0)
			ret = -EEXIST;
		if (ret == 0)
			target_add(t, nm, all.v[i].oid, all.v[i].src);
	}
	/* A conflict name may equal a name some replica already binds. */
	for (size_t i = 0; i < t->n && ret == 0; i++) {
		it = 0;
		while (ret == 0 && (k = target_next(t, t->v[i].name, NULL, &it)) >= 0)
			if ((size_t)k != i && strcmp(t->v[k].name, t->v[i].name) == 0)
				ret = -EEXIST;
	}
	free(drop);
	target_free(&all);
	return ret;
}

/* A directory a repair created empty at dst (it had none): it gets src's
 * entries before it is resolved (sync_fresh). */
struct fresh {
	struct fid fid;
	uint32_t src, dst;
};

struct freshlist {
	struct fresh *v;
	size_t n, cap;
};

static void fresh_push(struct freshlist *l, uint32_t vol, const uint8_t *oid, uint32_t src,
		       uint32_t dst)
{
	if (l->n >= WORK_MAX)
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	struct fresh *f = &l->v[l->n++];
	f->fid.vol = vol;
	memcpy(f->fid.oid, oid, OID_LEN);
	f->src = src;
	f->dst = dst;
}

/* The records that turn slot s's entries (d) into t: unbinds first, then
 * binds, then the directory's status (st) and the mark (sid). An object
 * that stays (bound in t under another name, or kept by w elsewhere) is
 * unbound with a rename-out, so that its vnode lives on; a link of a file
 * with more links is removed. binds[k] is the create record of t->v[k]. */
static int repair_recs(struct resolver *r, uint32_t vol, uint32_t s, uint32_t w,
		       const struct rtarget *d, const struct rtarget *t,
		       const struct rlog_rec *binds, const struct attr *st,
		       const struct storeid *mark, struct rlog_rec *out, size_t *n_out,
		       uint32_t *created, struct freshlist *fl)
{
	size_t k = 0;
	struct attr a;
	int ret;

	for (size_t i = 0; i < d->n; i++) {
		const uint8_t *oid = d->v[i].oid;
		ssize_t at = target_name(t, d->v[i].name);
		if (at >= 0 && memcmp(t->v[at].oid, oid, OID_LEN) == 0)
			continue;
		ret = child_get(r, s, vol, oid, &a);
		if (ret < 0 && ret != -ENOENT)
			return ret;
		bool stays = target_has(t, oid);
		if (!stays && w != VV_MAX) {
			struct attr wa;
			int e = child_get(r, w, vol, oid, &wa);
			if (e < 0 && e != -ENOENT)
				return e;
			stays = e == 0;
		}
		struct rlog_rec *e = &out[k++];
		memset(e, 0, sizeof(*e));
		e->op = stays && (ret < 0 || S_ISDIR(a.mode) || a.nlink <= 1) ? RLOG_RENAME_OUT
									      : RLOG_REMOVE;
		snprintf(e->name, sizeof(e->name), "%s", d->v[i].name);
		memcpy(e->child, oid, OID_LEN);
		if (ret == 0) {
			e->mode = a.mode;
			e->uid = a.uid;
			e->gid = a.gid;
			e->vv = a.vv;
		}
		new_sid(r, &e->sid);
	}
	for (size_t i = 0; i < t->n; i++) {
		if (ents_bind(d, t->v[i].name, t->v[i].oid))
			continue;
		out[k++] = binds[i];
		*created |= 1u << s;
		if (!S_ISDIR(binds[i].mode))
			continue;
		ret = child_get(r, s, vol, t->v[i].oid, &a);
		if (ret == -ENOENT)
			fresh_push(fl, vol, t->v[i].oid, t->v[i].src, s);
		else if (ret < 0)
			return ret;
	}
	struct rlog_rec *e = &out[k++];
	memset(e, 0, sizeof(*e));
	e->op = RLOG_SETATTR;
	memcpy(e->child, st->fid.oid, OID_LEN);
	e->mode = st->mode;
	e->uid = st->uid;
	e->gid = st->gid;
	e->sid = *mark;
	e = &out[k++];
	memset(e, 0, sizeof(*e));
	e->op = RLOG_MARK;
	memcpy(e->child, st->fid.oid, OID_LEN);
	e->sid = *mark;
	*n_out = k;
	return 0;
}

/* Fills the directory f->fid that a repair created empty at f->dst with
 * f->src's entries, vector and StoreId. Resolution alone would not: it
 * replays only src's log, which since src's last merge mark (a truncation)
 * no longer holds the creates of older entries, so the two would end with
 * equal vectors over different entries; and dst may still hold the log of
 * its own earlier copy of the directory (removed there, the log stays),
 * whose removals a merge would replay at src. So dst's log is truncated, dst
 * gets a create of every entry and a copy of src's latest mark (one is
 * added at src if it has none), and later merges of the two compare only
 * what follows that mark. New subdirectories go on fl, every entry on wl
 * (to be resolved). */
static int sync_fresh(struct resolver *r, const struct fresh *f, struct freshlist *fl,
		      struct worklist *wl)
{
	const uint32_t vol = f->fid.vol;
	const struct attr keep = { .vv = { 0 } };
	struct dirlog d = { 0 };
	struct rlog_rec *recs = NULL, mark;
	struct attr sa, da, a;
	size_t k = 0;
	int ret;

	ret = child_get(r, f->src, vol, f->fid.oid, &sa);
	if (ret == 0)
		ret = child_get(r, f->dst, vol, f->fid.oid, &da);
	if (ret < 0)
		return ret;
	if (da.sid.client != 0 || da.sid.seq != 0 || !S_ISDIR(sa.mode))
		return 0; /* changed since it was created: resolution's now */
	ret = fetch_log(r, f->src, &f->fid, &d);
	if (ret == 0)
		ret = fetch_ents(r, f->src, &f->fid, &d);
	if (ret < 0)
		goto out;
	memset(&mark, 0, sizeof(mark));
	for (size_t i = d.n_log; i > 0 && mark.op == 0; i--)
		if (d.log[i - 1].op == RLOG_MARK)
			mark = d.log[i - 1];
	if (mark.op == 0) {
		mark.op = RLOG_MARK;
		memcpy(mark.child, f->fid.oid, OID_LEN);
		new_sid(r, &mark.sid);
		ret = apply_recs(r, f->src, &f->fid, &mark, 1, &keep, 0, &sa);
		if (ret < 0)
			goto out;
	}
	recs = xmalloc((d.n_ents + 1) * sizeof(*recs));
	for (size_t i = 0; i < d.n_ents; i++) {
		struct fid cf = { .vol = vol };
		memcpy(cf.oid, d.oids[i], OID_LEN);
		ret = child_get(r, f->src, vol, d.oids[i], &a);
		if (ret == -ENOENT)
			continue; /* a dangling entry */
		if (ret < 0)
			goto out;
		struct rlog_rec *e = &recs[k++];
		memset(e, 0, sizeof(*e));
		e->op = RLOG_CREATE;
		snprintf(e->name, sizeof(e->name), "%s", d.names[i]);
		memcpy(e->child, d.oids[i], OID_LEN);
		e->mode = a.mode;
		e->uid = a.uid;
		e->gid = a.gid;
		new_sid(r, &e->sid);
		work_push(wl, &cf);
		if (!S_ISDIR(a.mode))
			continue;
		ret = child_get(r, f->dst, vol, d.oids[i], &a);
		if (ret == -ENOENT)
			fresh_push(fl, vol, d.oids[i], f->src, f->dst);
		else if (ret < 0)
			goto out;
	}
	recs[k++] = mark;
	ret = apply_recs(r, f->dst, &f->fid, NULL, 0, &keep, RES_APPLY_TRUNCATE, &da);
	if (ret == 0)
		ret = apply_recs(r, f->dst, &f->fid, recs, k, &sa, 0, &da);
out:
	dirlog_free(&d);
	free(recs);
	return ret;
}

/* Repairs a directory in conflict (docs/replication.md "Conflicts and
 * repair"): every replica's entries become the target (w's, or the union for
 * keep-all), with one vector, StoreId and status, the flag cleared and the
 * logs truncated to the repair's mark; then the objects bound anew are
 * resolved like a merge's new children. Every member must be up: one left
 * out would mark the conflict again when it comes back. */
static int repair_dir(struct resolver *r, struct res_job *job, struct objstate *st, uint32_t w)
{
	const uint32_t all = (r->cfg.vsg.n >= 32 ? 0 : 1u << r->cfg.vsg.n) - 1;
	const uint32_t vol = job->fid.vol;
	struct dirlog dl[VV_MAX];
	struct rtarget ents[VV_MAX], t = { 0 };
	struct rlog_rec *binds = NULL, *recs = NULL;
	struct worklist wl = { 0 };
	struct freshlist fl = { 0 };
	uint32_t created = 0;
	size_t applied = 0;
	int ret = 0;

	if (st->have != all) {
		/* Down, or without it: a directory whose parent is in conflict
		 * too may exist on one side only until the parent is repaired. */
		log_notice(
			"resolve",
			"repair of a directory in volume %u needs every member up and holding it",
			vol);
		return -EAGAIN;
	}
	memset(dl, 0, sizeof(dl));
	memset(ents, 0, sizeof(ents));
	for (uint32_t s = 0; s < r->cfg.vsg.n && ret == 0; s++) {
		ret = fetch_log(r, s, &job->fid, &dl[s]);
		if (ret == 0)
			ret = fetch_ents(r, s, &job->fid, &dl[s]);
		for (size_t i = 0; i < dl[s].n_ents; i++)
			target_add(&ents[s], dl[s].names[i], dl[s].oids[i], s);
	}
	if (ret < 0)
		goto out;
	if (w != VV_MAX)
		ret = target_keep_one(r, vol, w, dl, ents, &t);
	else
		ret = target_keep_all(r, st->have, dl, ents, &t);
	if (ret < 0)
		goto out;
	/* The create record of each binding, shared by every replica that
	 * lacks it (same StoreId everywhere). */
	binds = xmalloc((t.n + 1) * sizeof(*binds));
	for (size_t i = 0; i < t.n; i++) {
		struct rlog_rec *e = &binds[i];
		struct attr a;
		ret = child_get(r, t.v[i].src, vol, t.v[i].oid, &a);
		if (ret < 0)
			goto out;
		memset(e, 0, sizeof(*e));
		e->op = RLOG_CREATE;
		snprintf(e->name, sizeof(e->name), "%s", t.v[i].name);
		memcpy(e->child, t.v[i].oid, OID_LEN);
		e->mode = a.mode;
		e->uid = a.uid;
		e->gid = a.gid;
		new_sid(r, &e->sid);
	}
	/* One final state for every replica: above all of their vectors. */
	uint32_t base = w != VV_MAX ? w : 0;
	struct attr fin = st->a[base];
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++)
		vv_merge(&fin.vv, &st->a[s].vv);
	while (fin.vv.n <= r->self_slot)
		fin.vv.slot[fin.vv.n++] = 0;
	fin.vv.slot[r->self_slot]++;
	new_sid(r, &fin.sid);
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		size_t n;
		free(recs);
		recs = xmalloc((ents[s].n + t.n + 2) * sizeof(*recs));
		ret = repair_recs(r, vol, s, w, &ents[s], &t, binds, &st->a[base], &fin.sid, recs,
				  &n, &created, &fl);
		if (ret == 0)
			ret = apply_recs(r, s, &job->fid, recs, n, &fin, RES_APPLY_FORCE,
					 &st->a[s]);
		if (ret < 0)
			goto out;
		applied++;
	}
	/* Every member took it: the logs go, down to the repair's mark, so
	 * that the next merge starts from the repaired state. */
	if (applied == r->cfg.vsg.n) {
		struct attr keep = { .vv = { 0 } };
		for (uint32_t s = 0; s < r->cfg.vsg.n; s++)
			(void)apply_recs(r, s, &job->fid, NULL, 0, &keep, RES_APPLY_TRUNCATE, &fin);
	}
	log_notice("resolve", "repaired a directory in volume %u: %zu entries", vol, t.n);
	/* Objects bound where they were missing come over as a merge's new
	 * children do: created empty there, then resolved. */
	for (size_t i = 0; i < fl.n && !stopping(r); i++) {
		int e = sync_fresh(r, &fl.v[i], &fl, &wl);
		if (e < 0)
			log_debug("resolve", "repair: filling a directory: %s", err_str(e));
	}
	if (created != 0) {
		for (size_t i = 0; i < t.n; i++) {
			struct fid cf = { .vol = vol };
			memcpy(cf.oid, t.v[i].oid, OID_LEN);
			work_push(&wl, &cf);
		}
		for (size_t i = 0; i < wl.n && !stopping(r); i++) {
			int e = resolve_one(r, &wl.v[i], &wl);
			if (e < 0 && e != -ENOENT)
				log_debug("resolve", "repair: resolving an entry: %s", err_str(e));
		}
	}
out:
	for (uint32_t s = 0; s < VV_MAX; s++) {
		dirlog_free(&dl[s]);
		target_free(&ents[s]);
	}
	free(fl.v);
	free(wl.v);
	free(binds);
	free(recs);
	target_free(&t);
	return ret;
}

/* ---- repair --------------------------------------------------------------- */

static int repair(struct resolver *r, struct res_job *job)
{
	struct objstate *st = xmalloc(sizeof(*st));
	uint32_t w = VV_MAX;
	struct vv top;
	int ret;

	ret = gather(r, &job->fid, RES_GET_PATH, st);
	if (ret < 0)
		goto out;
	memset(&top, 0, sizeof(top));
	top.n = r->cfg.vsg.n;
	uint32_t any = 0;
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!(st->have & (1u << s)))
			continue;
		any = s;
		vv_merge(&top, &st->a[s].vv);
		if (r->cfg.vsg.ids[s] == job->server_id)
			w = s;
	}
	top.slot[r->self_slot]++;
	struct storeid sid;
	new_sid(r, &sid);
	if (job->mflags & REPAIR_KEEP_ONE) {
		if (w == VV_MAX) {
			ret = -ENOENT; /* that server is down or has no version */
			goto out;
		}
		if (S_ISDIR(st->a[w].mode)) {
			ret = repair_dir(r, job, st, w);
			goto out;
		}
		struct attr a = st->a[w];
		a.vv = top;
		a.sid = sid;
		uint32_t others = st->have & ~(1u << w);
		if (S_ISREG(a.mode) && others != 0) {
			/* The kept server too gets the data anew: every replica
			 * then has a data version none of them had, so a client
			 * that cached another side's version under the kept one's
			 * old data version (both sides wrote once: equal numbers)
			 * cannot take it for current. */
			ret = stream(r, w, &job->fid, st->a[w].data_version, a.size, st->have, &a,
				     RES_INSTALL_CLEAR, NULL);
			goto out;
		}
		for (uint32_t s = 0; s < r->cfg.vsg.n && ret == 0; s++)
			if (others & (1u << s))
				ret = install_status(r, s, &a, st->target[w], RES_INSTALL_CLEAR,
						     NULL);
		if (ret == 0)
			ret = install_status(r, w, &a, st->target[w], RES_INSTALL_CLEAR, NULL);
		goto out;
	}
	if (!(job->mflags & REPAIR_KEEP_ALL)) {
		ret = -EINVAL;
		goto out;
	}
	if (S_ISDIR(st->a[any].mode)) {
		ret = repair_dir(r, job, st, VV_MAX);
		goto out;
	}
	if (st->name[any][0] == '\0') {
		ret = -EOPNOTSUPP;
		goto out;
	}
	struct fid dir = { .vol = job->fid.vol };
	memcpy(dir.oid, st->parent[any], OID_LEN);
	struct rlog_rec recs[VV_MAX];
	struct fid nf[VV_MAX];
	uint32_t slot_of[VV_MAX];
	size_t n = 0;
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (!(st->have & (1u << s)))
			continue;
		struct rlog_rec *e = &recs[n];
		memset(e, 0, sizeof(*e));
		e->op = RLOG_CREATE;
		int len = snprintf(e->name, sizeof(e->name), "%s.conflict-server%u", st->name[any],
				   r->cfg.vsg.ids[s]);
		if (len < 0 || (size_t)len >= sizeof(e->name)) {
			ret = -ENAMETOOLONG;
			goto out;
		}
		nf[n].vol = job->fid.vol;
		oid_random(nf[n].oid);
		memcpy(e->child, nf[n].oid, OID_LEN);
		e->mode = st->a[s].mode;
		e->uid = st->a[s].uid;
		e->gid = st->a[s].gid;
		new_sid(r, &e->sid);
		slot_of[n] = s;
		n++;
	}
	struct attr keep = { .vv = { 0 } };
	for (uint32_t s = 0; s < r->cfg.vsg.n && ret == 0; s++)
		if (st->have & (1u << s))
			ret = apply_recs(r, s, &dir, recs, n, &keep, 0, NULL);
	for (size_t i = 0; i < n && ret == 0; i++) {
		uint32_t s = slot_of[i];
		struct attr a = st->a[s];
		a.fid = nf[i];
		memset(&a.vv, 0, sizeof(a.vv));
		a.vv.n = r->cfg.vsg.n;
		a.vv.slot[r->self_slot] = 1;
		a.sid = recs[i].sid;
		a.flags = 0;
		if (S_ISREG(a.mode))
			ret = stream(r, s, &job->fid, st->a[s].data_version, a.size, st->have, &a,
				     0, NULL);
		else
			for (uint32_t d = 0; d < r->cfg.vsg.n && ret == 0; d++)
				if (st->have & (1u << d))
					ret = install_status(r, d, &a, st->target[s], 0, NULL);
	}
	if (ret < 0)
		goto out;
	struct rlog_rec rm;
	memset(&rm, 0, sizeof(rm));
	rm.op = RLOG_REMOVE;
	snprintf(rm.name, sizeof(rm.name), "%s", st->name[any]);
	memcpy(rm.child, job->fid.oid, OID_LEN);
	rm.vv = top;
	rm.sid = sid;
	for (uint32_t s = 0; s < r->cfg.vsg.n && ret == 0; s++)
		if (st->have & (1u << s))
			ret = apply_recs(r, s, &dir, &rm, 1, &keep, RES_APPLY_FORCE, NULL);
	if (ret == 0) {
		/* Every replica of the directory changed alike: resolve it so that
		 * their vectors match again. */
		ret = resolve_tree(r, &dir);
		job->fid = dir;
	}
out:
	free(st);
	return ret;
}

/* ---- the thread ------------------------------------------------------------ */

static void finish(struct resolver *r, struct res_job *job)
{
	uint64_t one = 1;

	if (job->kind == RES_JOB_VOLUME) {
		free(job);
		return;
	}
	if (job->status == 0 && conn_ensure(r, r->self_slot)) {
		struct msg req, rep;
		msg_init(&req, MSG_RES_GET);
		req.fid = job->fid;
		int ret = call1(r, r->self_slot, &req, &rep);
		if (ret == 0)
			job->attr = rep.attr;
		else
			job->status = ret;
	}
	pthread_mutex_lock(&r->lock);
	job->next = r->done;
	r->done = job;
	pthread_mutex_unlock(&r->lock);
	if (write(r->efd, &one, sizeof(one)) < 0)
		log_err("resolve", "cannot signal the loop: %s", strerror(errno));
}

static void queue_pass(struct resolver *r)
{
	struct res_job *j = xcalloc(1, sizeof(*j));
	j->kind = RES_JOB_VOLUME;
	j->fid.vol = r->cfg.vol;
	resolver_submit(r, j);
}

static void probe(struct resolver *r)
{
	for (uint32_t s = 0; s < r->cfg.vsg.n; s++) {
		if (s == r->self_slot)
			continue;
		bool up = conn_ensure(r, s);
		if (up && !r->up[s]) {
			log_notice("resolve", "server %u is up", r->cfg.vsg.ids[s]);
			queue_pass(r);
		} else if (!up && r->up[s]) {
			log_notice("resolve", "server %u is down", r->cfg.vsg.ids[s]);
		}
		r->up[s] = up;
	}
}

static int64_t ts_ms(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* After a pass: if it left objects different (updates kept coming in and
 * refused its installs, or a member went away midway), another one follows,
 * with a backoff (1 s doubling to RETRY_MAX_MS) so that objects that cannot
 * converge cost a scan now and then, not a busy loop. */
static void retry_later(struct resolver *r)
{
	if (r->pass_left == 0) {
		r->retry_ms = 0;
		return;
	}
	r->retry_ms = r->retry_ms == 0 ? 1000 : r->retry_ms * 2;
	if (r->retry_ms > RETRY_MAX_MS)
		r->retry_ms = RETRY_MAX_MS;
	clock_gettime(CLOCK_MONOTONIC, &r->retry_at);
	int64_t at = ts_ms(&r->retry_at) + r->retry_ms;
	r->retry_at.tv_sec = at / 1000;
	r->retry_at.tv_nsec = (at % 1000) * 1000000;
}

static void *thread_main(void *arg)
{
	struct resolver *r = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec ||
		    (now.tv_sec == next.tv_sec && now.tv_nsec >= next.tv_nsec)) {
			probe(r);
			clock_gettime(CLOCK_MONOTONIC, &next);
			next.tv_sec += PROBE_MS / 1000;
		}
		if (r->retry_at.tv_sec != 0 && ts_ms(&now) >= ts_ms(&r->retry_at)) {
			r->retry_at.tv_sec = 0;
			queue_pass(r);
		}
		pthread_mutex_lock(&r->lock);
		while (!r->stop && r->jobs == NULL) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += 1;
			if (pthread_cond_timedwait(&r->cond, &r->lock, &dl) != 0)
				break;
		}
		if (r->stop) {
			pthread_mutex_unlock(&r->lock);
			break;
		}
		struct res_job *job = r->jobs;
		if (job != NULL) {
			r->jobs = job->next;
			if (r->jobs == NULL)
				r->jobs_tail = NULL;
		}
		pthread_mutex_unlock(&r->lock);
		if (job == NULL)
			continue;
		switch (job->kind) {
		case RES_JOB_VOLUME:
			job->status = volume_pass(r, job->fid.vol, false);
			retry_later(r);
			break;
		case RES_JOB_RESOLVE:
			if (job->mflags & RESOLVE_VOLUME) {
				job->status = volume_pass(r, job->fid.vol, true);
				/* The client keeps the member out of its calls
				 * until a pass leaves nothing different. */
				if (job->status == 0 && r->pass_left > 0)
					job->status = -EAGAIN;
				retry_later(r);
				fid_make_root(&job->fid, job->fid.vol);
			} else {
				/* A client waits and then reads: an install refused
				 * because the object changed meanwhile (another
				 * coordinator, an update) is redone from fresh
				 * state rather than leaving it a stale replica. */
				for (int i = 0; i < RESOLVE_TRIES; i++) {
					job->status = resolve_tree(r, &job->fid);
					if ((job->status != -ERR_VERSION &&
					     job->status != -EAGAIN) ||
					    stopping(r))
						break;
					struct timespec ts = { 0, 20 * 1000000L << i };
					nanosleep(&ts, NULL);
				}
			}
			break;
		case RES_JOB_REPAIR:
			job->status = repair(r, job);
			break;
		}
		if (job->status < 0)
			log_debug("resolve", "job %d: %s", (int)job->kind, err_str(job->status));
		finish(r, job);
	}
	return NULL;
}

int resolver_start(const struct resolver_cfg *cfg, struct resolver **out)
{
	struct resolver *r = xcalloc(1, sizeof(*r));
	int ret;

	*out = NULL;
	r->cfg = *cfg;
	for (uint32_t s = 0; s < cfg->vsg.n; s++)
		if (cfg->vsg.ids[s] == cfg->self_id)
			r->self_slot = s;
	r->sid_client = (1ull << 63) | cfg->self_id;
	/* StoreIds of resolution: unique within one run (a counter) and across
	 * restarts: the counter starts at the wall clock in nanoseconds, which
	 * a run never catches up with. Seconds (the clock << 24) repeated the
	 * StoreIds of a run that restarted within the same second: two merges
	 * gave their different results the same StoreId, and equal StoreIds
	 * count as equal contents (test_server_crash_in_the_middle_of_resolution). */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	r->sid_seq = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		ret = -errno;
		free(r);
		return ret;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	queue_pass(r);
	ret = -pthread_create(&r->th, NULL, thread_main, r);
	if (ret < 0) {
		close(r->efd);
		free(r->jobs);
		free(r);
		return ret;
	}
	*out = r;
	return 0;
}

void resolver_stop(struct resolver *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	__atomic_store_n(&r->stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* Calls in flight end when their connections close. */
	pthread_join(r->th, NULL);
	for (uint32_t s = 0; s < VV_MAX; s++)
		conn_drop(r, s);
	while (r->jobs != NULL) {
		struct res_job *j = r->jobs;
		r->jobs = j->next;
		free(j);
	}
	while (r->done != NULL) {
		struct res_job *j = r->done;
		r->done = j->next;
		free(j);
	}
	close(r->efd);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

int resolver_fd(struct resolver *r)
{
	return r->efd;
}

void resolver_submit(struct resolver *r, struct res_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&r->lock);
	if (r->jobs_tail != NULL)
		r->jobs_tail->next = job;
	else
		r->jobs = job;
	r->jobs_tail = job;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

struct res_job *resolver_take_done(struct resolver *r)
{
	uint64_t v;
	struct res_job *list;

	if (read(r->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_err("resolve", "cannot read eventfd: %s", strerror(errno));
	pthread_mutex_lock(&r->lock);
	list = r->done;
	r->done = NULL;
	pthread_mutex_unlock(&r->lock);
	return list;
}
