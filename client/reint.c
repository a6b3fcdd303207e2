/*
 * reint.c - encore-client's volume states, reintegration and trickle
 *           (docs/disconnected.md "Volume states", "Reintegration", "Weak
 *           connectivity"), and the local/global side of conflicts/repair.
 * Owns:    the reintegration thread.
 * Borrows: cl->cml (log, states), cl->conn (calls to one server at a time),
 *          cl->cache (containers), cl->itab (paths, invalidation).
 * Locking: the thread holds no lock across a network call; everything it
 *          shares lives in cml.c (its own locks). reint.lock guards stop
 *          and the wake-up flag.
 */
#include "client/reint.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "client/cache.h"
#include "client/cml.h"
#include "client/conn.h"
#include "client/fsops.h"
#include "client/hoard.h"
#include "client/inode.h"
#include "common/err.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/wire.h"
#include "common/thread.h"
#include "common/xalloc.h"

/* How often the AVSGs are looked at (probes run every CONN_PROBE_MS). */
#define REINT_POLL_MS 200
/* The uploads a connection may hold (docs/protocol.md): store records per
 * batch, of which at most STORES_FILE_MAX larger than STORE_SMALL_MAX. */
#define REINT_STORES_MAX STORES_MAX
/* Transfers shorter than this say nothing about bandwidth. */
#define BW_MIN_BYTES (64u * 1024u)
#define REINT_VOLS   64

struct reint {
	struct client *cl;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;	  /* protected by lock */
	bool kick;	  /* protected by lock */
	bool forget_weak; /* protected by lock: reconnect lifts measured weakness */
};

static uint64_t mono_ms(void)
{
	return now_ns() / 1000000ull;
}

static bool retryable(uint32_t st)
{
	switch (st) {
	case ST_BADF:
	case ST_AGAIN:
	case ST_IO:
	case ST_NOSPC:
	case ST_DQUOT:
	case ST_NOMEM:
	case ST_BUSY:
	case ST_TIMEDOUT:
		return true;
	default:
		return false;
	}
}

/* AVSG of vol: server ids up now; returns the count, or -1 if the volume
 * is unknown to conn (then any server up will do). */
static int avsg_of(struct client *cl, uint32_t vol, struct vsg *out, struct vsg *vsg)
{
	struct conn_vol_info vi[REINT_VOLS];
	size_t n = conn_volumes(cl->conn, vi, REINT_VOLS);

	memset(out, 0, sizeof(*out));
	memset(vsg, 0, sizeof(*vsg));
	for (size_t i = 0; i < n; i++) {
		if (vi[i].id == vol) {
			*out = vi[i].avsg;
			*vsg = vi[i].vsg;
			return (int)out->n;
		}
	}
	return -1;
}

/* Measured weakness: an AVSG member of vol has a bandwidth estimate
 * (conn_bw_kbps: fetches, fsops.c, and reintegration uploads) below
 * --weak-threshold. */
static bool weak_measured(struct reint *ri, uint32_t vol)
{
	struct vsg avsg, vsg;

	if (ri->cl->weak_kbps == 0 || avsg_of(ri->cl, vol, &avsg, &vsg) <= 0)
		return false;
	for (uint32_t i = 0; i < avsg.n && i < VV_MAX; i++) {
		uint64_t kbps = conn_bw_kbps(ri->cl->conn, avsg.ids[i]);

		if (kbps != 0 && kbps < ri->cl->weak_kbps)
			return true;
	}
	return false;
}

/* An upload of bytes to server took ns: a sample of its bandwidth. */
static void bw_sample(struct reint *ri, uint32_t server, uint64_t bytes, uint64_t ns)
{
	if (bytes >= BW_MIN_BYTES)
		conn_bw_sample(ri->cl->conn, server, bytes, ns);
}

/* ---------- one batch ---------- */

struct batch {
	struct reint *ri;
	uint32_t vol;
	struct cml_item *items; /* borrowed */
	size_t n;
	const uint8_t *blob; /* the encoded records (after uploads fixed handles) */
	size_t blob_len;
	size_t *off; /* owned: offset of record i in blob; off[n] = blob_len */
};

struct member_job {
	struct batch *b;
	uint32_t server;
	pthread_t thread;
	int ret;	   /* transport error or call status; 0: statuses valid */
	uint32_t *st;	   /* owned: one per record */
	uint64_t up_bytes; /* uploaded */
	uint64_t up_ns;	   /* time spent uploading */
};

/* Uploads the container of a store record to one server under handle. */
static int upload(struct member_job *j, const struct cml_rec *r)
{
	struct client *cl = j->b->ri->cl;
	uint8_t *buf = xmalloc(CHUNK_MAX);
	uint64_t off = 0, t0 = now_ns();
	bool first = true;
	int fd, ret = 0;

	fd = cache_open_container(cl->cache, &r->fid, O_RDONLY);
	if (fd < 0) {
		free(buf);
		return fd;
	}
	for (;;) {
		uint64_t len = r->length - off < CHUNK_MAX ? r->length - off : CHUNK_MAX;
		struct msg m, rep;
		struct conn_call cc;
		ssize_t nr = 0;

		if (len > 0) {
			nr = fs_pread_all(fd, buf, len, (off_t)off);
			if (nr < 0) {
				ret = (int)nr;
				break;
			}
		}
		msg_init(&m, MSG_STORE);
		m.fid = r->fid;
		m.offset = off;
		m.handle = r->handle;
		m.sid = r->sid;
		/* STORE_REINT on every chunk: the object may be created by a
		 * record of this very batch (the server keeps the upload). */
		m.mflags = (first ? STORE_FIRST : 0) | STORE_REINT;
		m.data = nr > 0 ? buf : NULL;
		m.data_len = (uint32_t)nr;
		m.length = (uint64_t)nr;
		off += len;
		if (off >= r->length || nr == 0) {
			m.mflags |= STORE_LAST;
			m.length = r->length;
			m.sattr.valid = SA_MTIME;
			m.sattr.mtime = r->mtime;
		}
		ret = conn_call_server(cl->conn, j->server, &m, &rep, &cc);
		if (ret < 0)
			break;
		conn_done(cl->conn, &cc);
		first = false;
		if (m.mflags & STORE_LAST)
			break;
	}
	close(fd);
	free(buf);
	j->up_bytes += off;
	j->up_ns += now_ns() - t0;
	return ret;
}

static bool transport(int ret)
{
	return ret == -ENOTCONN || ret == -ETIMEDOUT || ret == -EPROTO || ret == -ECONNRESET ||
	       ret == -EPIPE || ret == -ECONNREFUSED || ret == -EHOSTUNREACH || ret == -EIO ||
	       ret == -ENOMEM || ret == -EAGAIN || ret == -EBUSY || ret == -ENOSPC;
}

/* Starts the upload of a store record that fits one chunk (length <=
 * CHUNK_MAX): FIRST | LAST | REINT in one STORE, not waited for. buf is
 * CHUNK_MAX bytes of scratch (the message is sent before this returns). */
static int upload_start(struct member_job *j, const struct cml_rec *r, uint8_t *buf,
			struct conn_call *cc)
{
	struct client *cl = j->b->ri->cl;
	struct msg m;
	ssize_t nr = 0;
	int fd;

	cc->op = NULL;
	fd = cache_open_container(cl->cache, &r->fid, O_RDONLY);
	if (fd < 0)
		return fd;
	if (r->length > 0)
		nr = fs_pread_all(fd, buf, r->length, 0);
	close(fd);
	if (nr < 0)
		return (int)nr;
	msg_init(&m, MSG_STORE);
	m.fid = r->fid;
	m.handle = r->handle;
	m.sid = r->sid;
	m.mflags = STORE_FIRST | STORE_LAST | STORE_REINT;
	m.data = nr > 0 ? buf : NULL;
	m.data_len = (uint32_t)nr;
	m.length = r->length; /* a file that shrank since is extended with zeros */
	m.sattr.valid = SA_MTIME;
	m.sattr.mtime = r->mtime;
	j->up_bytes += (uint64_t)nr;
	return conn_start_server(cl->conn, j->server, &m, cc);
}

/* Record i of the batch got a final refusal at upload (the object refuses
 * it: gone, not a file): that is its answer; the batch stops before it. */
static void upload_refused(struct member_job *j, size_t i, int err, size_t *upto)
{
	if (i >= *upto)
		return;
	j->st[i] = err_to_status(err);
	for (size_t k = i + 1; k < j->b->n; k++)
		j->st[k] = ST_AGAIN;
	*upto = i;
}

/* Uploads in flight per member: one-chunk uploads are pipelined, so a
 * batch of small files costs about one round trip, not one per file. At
 * most UPLOAD_WINDOW_BYTES of data in flight (one chunk's worth, as when
 * uploads went one at a time): on a slow link the last reply must still
 * come within CONN_CALL_TIMEOUT_MS of the wait. */
#define UPLOAD_WINDOW	    64
#define UPLOAD_WINDOW_BYTES CHUNK_MAX

/* Waits for the n uploads in flight (records idx[]). 0, or the transport
 * error that stops this member. */
static int upload_wait(struct member_job *j, struct conn_call *cc, const size_t *idx, size_t n,
		       size_t *upto)
{
	struct client *cl = j->b->ri->cl;
	struct msg rep;
	int ret = 0;

	for (size_t k = 0; k < n; k++) {
		int r = conn_wait(cl->conn, &cc[k], &rep);

		conn_done(cl->conn, &cc[k]);
		if (r < 0 && transport(r))
			ret = ret < 0 ? ret : r;
		else if (r < 0)
			upload_refused(j, idx[k], r, upto);
	}
	return ret;
}

/* Uploads the batch's store records to one member. 0 (records from *upto
 * on are not to be sent) or a transport error. */
static int upload_all(struct member_job *j, size_t *upto)
{
	struct batch *b = j->b;
	struct conn_call *cc = xcalloc(UPLOAD_WINDOW, sizeof(*cc));
	size_t *idx = xcalloc(UPLOAD_WINDOW, sizeof(*idx));
	uint8_t *buf = xmalloc(CHUNK_MAX);
	uint64_t t0 = now_ns(), bytes = 0;
	size_t nf = 0;
	int ret = 0;

	for (size_t i = 0; i < *upto; i++) {
		const struct cml_rec *r = &b->items[i].rec;
		bool big = r->op == CML_STORE && r->length > CHUNK_MAX;

		if (r->op != CML_STORE)
			continue;
		if (nf > 0 &&
		    (big || nf == UPLOAD_WINDOW || bytes + r->length > UPLOAD_WINDOW_BYTES)) {
			ret = upload_wait(j, cc, idx, nf, upto);
			nf = 0;
			bytes = 0;
			if (ret < 0 || i >= *upto)
				break;
		}
		if (big) {
			uint64_t ns = j->up_ns;

			ret = upload(j, r);
			j->up_ns = ns; /* counted below, with the pipelined ones */
		} else {
			ret = upload_start(j, r, buf, &cc[nf]);
			if (ret == 0) {
				idx[nf++] = i;
				bytes += r->length;
			}
		}
		if (ret < 0 && !transport(ret)) {
			upload_refused(j, i, ret, upto);
			ret = 0;
		}
		if (ret < 0)
			break;
	}
	if (nf > 0) {
		int r = upload_wait(j, cc, idx, nf, upto);

		ret = ret < 0 ? ret : r;
	}
	j->up_ns += now_ns() - t0;
	free(buf);
	free(idx);
	free(cc);
	return ret;
}

static void *member_main(void *arg)
{
	struct member_job *j = arg;
	struct batch *b = j->b;
	struct client *cl = b->ri->cl;
	struct msg m, rep;
	struct conn_call cc;
	struct rd r;
	int ret = 0;

	size_t upto = b->n;

	ret = upload_all(j, &upto);
	if (ret < 0) {
		j->ret = ret;
		return NULL;
	}
	if (upto == 0)
		return NULL;
	msg_init(&m, MSG_REINTEGRATE);
	fid_make_root(&m.fid, b->vol);
	m.data = b->blob;
	m.data_len = (uint32_t)b->off[upto];
	ret = conn_call_server(cl->conn, j->server, &m, &rep, &cc);
	if (ret < 0) {
		j->ret = ret;
		return NULL;
	}
	rd_init(&r, rep.data, rep.data_len);
	if (rep.data_len != 4 * upto) {
		ret = -EPROTO;
	} else {
		for (size_t i = 0; i < upto; i++)
			j->st[i] = rd_u32(&r);
	}
	conn_done(cl->conn, &cc);
	j->ret = ret;
	return NULL;
}

/* The update set as VSG slot bits, from mask over servers[]. */
static uint32_t slot_mask(const struct vsg *vsg, const uint32_t *servers, size_t n_srv,
			  uint32_t mask)
{
	uint32_t slots = 0;

	for (size_t k = 0; k < n_srv; k++) {
		if (!(mask & (1u << k)))
			continue;
		for (uint32_t v = 0; v < vsg->n; v++)
			if (vsg->ids[v] == servers[k])
				slots |= 1u << v;
	}
	return slots;
}

/* One COP2: the update sid was performed by the VSG slots in slots. */
static void cop2(struct client *cl, uint32_t vol, uint32_t server, const struct storeid *sid,
		 uint32_t slots)
{
	struct msg m, rep;
	struct conn_call cc;

	msg_init(&m, MSG_COP2);
	fid_make_root(&m.fid, vol);
	m.sid = *sid;
	m.mflags = slots;
	if (conn_call_server(cl->conn, server, &m, &rep, &cc) == 0)
		conn_done(cl->conn, &cc);
}

/* Phase two of a batch's applied records: one COP2_BATCH per member, for
 * the records it performed (masks[i] over servers[]; 0: record not
 * applied anywhere), so each member commits once for the whole batch. A
 * member that does not know COP2_BATCH gets one COP2 per record. Phase two
 * is advisory (SEMANTICS "Versions"): a lost one leaves equal StoreIds. */
static void cop2_batch(struct client *cl, uint32_t vol, const struct vsg *vsg,
		       const uint32_t *servers, size_t n_srv, const struct cml_item *items,
		       const uint32_t *masks, size_t n)
{
	struct conn_call cc[VV_MAX];
	struct wr w[VV_MAX];
	struct msg m, rep;

	/* Sent to every member before any answer is awaited: the members
	 * commit in parallel. */
	for (size_t s = 0; s < n_srv; s++) {
		size_t cnt = 0;

		cc[s].op = NULL;
		wr_init(&w[s]);
		for (size_t i = 0; i < n && cnt < COP2_BATCH_MAX; i++) {
			struct cml_cop2 e;

			if (!(masks[i] & (1u << s)))
				continue;
			e.sid = items[i].rec.sid;
			e.mask = slot_mask(vsg, servers, n_srv, masks[i]);
			if (e.mask == 0)
				continue; /* the member is not in the VSG: nothing to count */
			cml_cop2_encode(&w[s], &e);
			cnt++;
		}
		if (cnt == 0)
			continue;
		msg_init(&m, MSG_COP2_BATCH);
		fid_make_root(&m.fid, vol);
		m.data = w[s].buf;
		m.data_len = (uint32_t)w[s].len;
		if (conn_start_server(cl->conn, servers[s], &m, &cc[s]) < 0)
			cc[s].op = NULL;
	}
	for (size_t s = 0; s < n_srv; s++) {
		int ret = cc[s].op != NULL ? conn_wait(cl->conn, &cc[s], &rep) : 0;

		conn_done(cl->conn, &cc[s]);
		wr_release(&w[s]);
		if (ret == -ENOSYS) {
			for (size_t i = 0; i < n; i++)
				if (masks[i] & (1u << s))
					cop2(cl, vol, servers[s], &items[i].rec.sid,
					     slot_mask(vsg, servers, n_srv, masks[i]));
		}
	}
}

/* Where the object of r was, for the conflict listing. */
static void rec_path(struct client *cl, const struct cml_rec *r, char *out, size_t len)
{
	struct inode *in = inode_get_fid(cl->itab, &r->fid);
	char fs[FID_STR_LEN];

	out[0] = '\0';
	if (in != NULL) {
		inode_path(cl->itab, in, cl->realm, out, len);
		inode_put(cl->itab, in);
	}
	if (out[0] == '\0' && (r->op == CML_CREATE || r->op == CML_REMOVE || r->op == CML_RENAME ||
			       r->op == CML_LINK)) {
		char dpath[1024] = "";

		in = inode_get_fid(cl->itab, &r->dir);
		if (in != NULL) {
			inode_path(cl->itab, in, cl->realm, dpath, sizeof(dpath));
			inode_put(cl->itab, in);
		}
		if (dpath[0] != '\0')
			snprintf(out, len, "%s/%s", dpath, r->name);
	}
	if (out[0] == '\0') {
		fid_fmt(&r->fid, fs);
		snprintf(out, len, "%s", fs);
	}
}

/* GETATTRs stores_applied keeps in flight at once. */
#define APPLIED_WINDOW 64

struct applied {
	const struct cml_rec *r;
	uint32_t server;  /* a member that applied r */
	bool ok;	  /* attr holds the servers' status after r */
	struct attr attr; /* valid if ok */
};

/* After store records were applied: each container holds the servers' new
 * version; learn its data version so that the next open uses it (else the
 * container is dropped and the next open fetches). Each GETATTR goes to
 * one member that applied the record (masks[i] over servers[]), as a
 * connected store learns its version from one member; they go out
 * APPLIED_WINDOW at a time and the cache index changes in one transaction
 * (synced while the CML is not empty), not one per file. */
static void stores_applied(struct client *cl, const struct cml_item *items, size_t n,
			   const uint32_t *masks, const uint32_t *servers)
{
	struct applied *a = xcalloc(n > 0 ? n : 1, sizeof(*a));
	struct conn_call *cc = xcalloc(APPLIED_WINDOW, sizeof(*cc));
	struct msg *rep = xmalloc(sizeof(*rep));
	struct fid *gone_data = NULL;
	size_t na = 0, n_gone = 0;
	struct cache_txn *ct;
	struct cache_ent e;
	struct fid *fids = xcalloc(n > 0 ? n : 1, sizeof(*fids));
	bool *named = xcalloc(n > 0 ? n : 1, sizeof(*named));

	for (size_t i = 0; i < n; i++) {
		const struct cml_rec *r = &items[i].rec;

		if (masks[i] == 0 || r->op != CML_STORE)
			continue;
		a[na].r = r;
		a[na].server = servers[__builtin_ctz(masks[i])];
		fids[na++] = r->fid;
	}
	/* Later records still need the container of a file they name. */
	cml_names_each(cl->cml, fids, na, named);
	{
		size_t kept = 0;

		for (size_t k = 0; k < na; k++)
			if (!named[k] && cache_get(cl->cache, &a[k].r->fid, &e) == 0)
				a[kept++] = a[k];
		na = kept;
	}
	free(fids);
	free(named);
	for (size_t w0 = 0; w0 < na; w0 += APPLIED_WINDOW) {
		size_t w1 = na - w0 < APPLIED_WINDOW ? na : w0 + APPLIED_WINDOW;
		struct msg m;

		for (size_t k = w0; k < w1; k++) {
			msg_init(&m, MSG_GETATTR);
			m.fid = a[k].r->fid;
			if (conn_start_server(cl->conn, a[k].server, &m, &cc[k - w0]) < 0)
				cc[k - w0].op = NULL;
		}
		for (size_t k = w0; k < w1; k++) {
			if (cc[k - w0].op == NULL)
				continue;
			if (conn_wait(cl->conn, &cc[k - w0], rep) == 0) {
				a[k].ok = true;
				a[k].attr = rep->attr;
			}
			conn_done(cl->conn, &cc[k - w0]);
		}
	}
	if (na > 0 && cache_txn_begin(cl->cache, &ct) == 0) {
		gone_data = xcalloc(na, sizeof(*gone_data));
		for (size_t k = 0; k < na; k++) {
			const struct cml_rec *r = a[k].r;

			if (cache_txn_get(ct, &r->fid, &e) < 0)
				continue;
			e.dirty = false;
			if (a[k].ok && a[k].attr.sid.client == r->sid.client &&
			    a[k].attr.sid.seq == r->sid.seq && a[k].attr.size == e.size) {
				e.data_version = a[k].attr.data_version;
				e.attr = a[k].attr;
			} else {
				e.has_data = false;
				gone_data[n_gone++] = r->fid;
			}
			if (cache_txn_put(ct, &e) < 0) {
				n_gone = 0;
				cache_txn_abort(ct);
				ct = NULL;
				break;
			}
		}
		if (ct != NULL && cache_txn_commit(ct) < 0)
			n_gone = 0;
	}
	for (size_t k = 0; k < n_gone; k++)
		cache_drop_data(cl->cache, &gone_data[k]);
	free(gone_data);
	free(rep);
	free(cc);
	free(a);
}

static bool fid_zero(const struct fid *f)
{
	static const uint8_t zero[OID_LEN];

	return memcmp(f->oid, zero, OID_LEN) == 0;
}

/* Objects removed by the batch's applied records (a remove's object, a
 * rename's replaced target): a removed object's container was kept for its
 * stores; unless a later record names it or a kernel handle still has it
 * open, its cache entry goes (only the servers know if other names remain;
 * a later open fetches). One pass over the log and one transaction of the
 * cache index for the batch, not a scan and a synced commit per record. */
static void objects_gone(struct client *cl, const struct cml_item *items, size_t n,
			 const bool *drop)
{
	struct fid *fids = xcalloc(n > 0 ? n : 1, sizeof(*fids));
	bool *named = xcalloc(n > 0 ? n : 1, sizeof(*named));
	struct cache_txn *ct;
	struct cache_ent e;
	size_t nf = 0, kept = 0;

	for (size_t i = 0; i < n; i++) {
		const struct cml_rec *r = &items[i].rec;

		if (drop[i] && r->op == CML_REMOVE)
			fids[nf++] = r->fid;
		else if (drop[i] && r->op == CML_RENAME && !fid_zero(&r->fid2))
			fids[nf++] = r->fid2;
	}
	cml_names_each(cl->cml, fids, nf, named);
	for (size_t k = 0; k < nf; k++)
		if (!named[k] && !cache_pinned(cl->cache, &fids[k]))
			fids[kept++] = fids[k];
	if (kept > 0 && cache_txn_begin(cl->cache, &ct) == 0) {
		int ret = 0;

		for (size_t k = 0; k < kept && ret == 0; k++)
			if (cache_txn_get(ct, &fids[k], &e) == 0)
				ret = cache_txn_del(ct, &fids[k]);
		if (ret == 0)
			cache_txn_commit(ct);
		else
			cache_txn_abort(ct);
	}
	free(named);
	free(fids);
}

/* Sends the next batch of vol. Returns 1 if records were sent and all got
 * a final answer (more may follow), 0 if nothing is ready, -errno to stop
 * for now. */
static int reint_batch(struct reint *ri, uint32_t vol, uint64_t min_age_ns)
{
	struct client *cl = ri->cl;
	struct cml_item *items = xcalloc(CML_BATCH_MAX, sizeof(*items));
	struct member_job jobs[VV_MAX];
	struct vsg avsg, vsg;
	struct batch b;
	struct wr w;
	bool *drop = NULL;
	uint32_t *masks = NULL, srv[VV_MAX];
	int *status = NULL;
	char(*paths)[1024] = NULL;
	size_t n_jobs = 0, stopped_at;
	int n, ret = 0;

	if (avsg_of(cl, vol, &avsg, &vsg) < 0) {
		uint32_t ids[VV_MAX];

		avsg.n = (uint32_t)conn_up_servers(cl->conn, ids, VV_MAX);
		memcpy(avsg.ids, ids, sizeof(ids));
		vsg = avsg;
	}
	if (avsg.n == 0) {
		free(items);
		return -ENOTCONN;
	}
	n = cml_next_batch(cl->cml, vol, items, CML_BATCH_MAX, REINT_STORES_MAX, min_age_ns);
	if (n <= 0) {
		free(items);
		return n;
	}
	wr_init(&w);
	memset(&b, 0, sizeof(b));
	b.off = xcalloc((size_t)n + 1, sizeof(*b.off));
	for (int i = 0, big = 0; i < n; i++) {
		struct cml_rec *r = &items[i].rec;

		if (r->op == CML_STORE) {
			char path[4096];
			struct stat st;

			/* The handle is the record's seq (never 0): an upload left
			 * on the server by a batch that stopped before its record
			 * is replaced when the record is sent again, not kept
			 * until the connection closes (STORE_PARTIAL_MAX).
			 * The latest contents: the size the container has now. */
			r->handle = r->sid.seq;
			if (cache_container_path(cl->cache, &r->fid, path, sizeof(path)) == 0 &&
			    stat(path, &st) == 0)
				r->length = (uint64_t)st.st_size;
			if (r->length > STORE_SMALL_MAX && ++big > STORES_FILE_MAX) {
				n = i; /* the server holds no more such uploads */
				break;
			}
		}
		b.off[i] = w.len;
		cml_rec_encode(&w, r);
	}
	b.off[n] = w.len;
	b.ri = ri;
	b.vol = vol;
	b.items = items;
	b.n = (size_t)n;
	b.blob = w.buf;
	b.blob_len = w.len;
	for (uint32_t s = 0; s < avsg.n && s < VV_MAX; s++) {
		struct member_job *j = &jobs[n_jobs];

		memset(j, 0, sizeof(*j));
		j->b = &b;
		j->server = avsg.ids[s];
		j->st = xcalloc((size_t)n, sizeof(*j->st));
		if (pthread_create(&j->thread, NULL, member_main, j) != 0) {
			free(j->st);
			continue;
		}
		n_jobs++;
	}
	for (size_t s = 0; s < n_jobs; s++)
		pthread_join(jobs[s].thread, NULL);
	drop = xcalloc((size_t)n, sizeof(*drop));
	masks = xcalloc((size_t)n, sizeof(*masks));
	status = xcalloc((size_t)n, sizeof(*status));
	paths = xcalloc((size_t)n, sizeof(*paths));
	stopped_at = (size_t)n;
	for (size_t i = 0; i < (size_t)n; i++) {
		uint32_t mask = 0, conflict_st = 0;
		bool retry = false, any = false;

		for (size_t s = 0; s < n_jobs; s++) {
			uint32_t st;

			if (jobs[s].ret < 0)
				continue;
			any = true;
			st = jobs[s].st[i];
			if (st == CML_ST_APPLIED || st == CML_ST_ALREADY)
				mask |= 1u << s;
			else if (retryable(st))
				retry = true;
			else if (conflict_st == 0)
				conflict_st = st;
		}
		if (log_get_level() >= LOG_DEBUG) {
			char fs[FID_STR_LEN];

			fid_fmt(&items[i].rec.fid, fs);
			log_debug("reint", "lsn %llu %s %s: %u/%u/%u",
				  (unsigned long long)items[i].lsn, cml_op_name(items[i].rec.op),
				  fs, n_jobs > 0 ? jobs[0].st[i] : 99,
				  n_jobs > 1 ? jobs[1].st[i] : 99, n_jobs > 2 ? jobs[2].st[i] : 99);
		}
		if (mask != 0) {
			drop[i] = true;
			masks[i] = mask;
		} else if (!any || retry) {
			stopped_at = i;
			break;
		} else {
			status[i] = (int)conflict_st;
			rec_path(cl, &items[i].rec, paths[i], sizeof(paths[i]));
			log_warn("reint", "local/global conflict: %s of '%s': %s",
				 cml_op_name(items[i].rec.op), paths[i],
				 err_str(status_to_err(conflict_st)));
		}
	}
	for (size_t s = 0; s < n_jobs; s++)
		srv[s] = jobs[s].server;
	cop2_batch(cl, vol, &vsg, srv, n_jobs, items, masks, stopped_at);
	for (size_t s = 0; s < n_jobs; s++) {
		bw_sample(ri, jobs[s].server, jobs[s].up_bytes, jobs[s].up_ns);
		if (jobs[s].ret < 0)
			log_info("reint", "volume %u: server %u: %s", vol, jobs[s].server,
				 err_str(jobs[s].ret));
	}
	ret = cml_finish(cl->cml, vol, items, stopped_at, drop, status, (const char(*)[1024])paths);
	if (ret == 0) {
		stores_applied(cl, items, stopped_at, masks, srv);
		objects_gone(cl, items, stopped_at, drop);
		ret = stopped_at == (size_t)n ? 1 : -EAGAIN;
	}
	for (size_t s = 0; s < n_jobs; s++)
		free(jobs[s].st);
	free(drop);
	free(masks);
	free(status);
	free(paths);
	wr_release(&w);
	free(b.off);
	free(items);
	return ret;
}

/* ---------- the state machine ---------- */

static void step_vol(struct reint *ri, uint32_t vol)
{
	struct client *cl = ri->cl;
	enum vol_state old = cml_state(cl->cml, vol), st;
	enum vol_force f = cml_forced(cl->cml, vol);
	struct vsg avsg, vsg;
	uint64_t n, bytes;
	int up = avsg_of(cl, vol, &avsg, &vsg);

	if (up < 0) {
		uint32_t ids[VV_MAX];

		up = (int)conn_up_servers(cl->conn, ids, VV_MAX);
	}
	cml_count(cl->cml, vol, &n, &bytes);
	if (f == VF_DISCONNECT || up == 0)
		st = VS_DISCONNECTED;
	else if (f == VF_WEAK || weak_measured(ri, vol))
		st = VS_WEAK;
	else if (n > 0)
		st = VS_REINTEGRATING;
	else
		st = VS_CONNECTED;
	if (st != old) {
		if (st == VS_CONNECTED && old != VS_CONNECTED) {
			/* The servers' state is the truth again: revalidate. */
			cml_set_state(cl->cml, vol, st);
			fsops_inval_all(cl);
			hoard_kick(cl->hoard); /* refresh the hoard (docs/disconnected.md) */
		} else {
			cml_set_state(cl->cml, vol, st);
		}
	}
	if (st == VS_REINTEGRATING || st == VS_WEAK) {
		uint64_t age = st == VS_WEAK ? (uint64_t)cl->aging_sec * 1000000000ull : 0;
		int ret;

		do {
			ret = reint_batch(ri, vol, age);
		} while (ret == 1 && st == VS_REINTEGRATING);
		cml_count(cl->cml, vol, &n, &bytes);
		if (st == VS_REINTEGRATING && n == 0 && ret >= 0) {
			log_notice("reint", "volume %u: reintegration complete", vol);
			cml_set_state(cl->cml, vol, VS_CONNECTED);
			fsops_inval_all(cl);
			hoard_kick(cl->hoard);
		}
	}
}

static void *reint_main(void *arg)
{
	struct reint *ri = arg;
	struct client *cl = ri->cl;

	for (;;) {
		struct conn_vol_info vi[REINT_VOLS];
		uint32_t vols[2 * REINT_VOLS];
		size_t nv = 0, nc;
		struct timespec ts;
		uint64_t until;

		pthread_mutex_lock(&ri->lock);
		until = mono_ms() + REINT_POLL_MS;
		while (!ri->stop && !ri->kick) {
			deadline_in_ms(&ts, CLOCK_REALTIME, REINT_POLL_MS);
			pthread_cond_timedwait(&ri->cond, &ri->lock, &ts);
			if (mono_ms() >= until)
				break;
		}
		ri->kick = false;
		if (ri->forget_weak)
			conn_bw_forget(cl->conn);
		ri->forget_weak = false;
		if (ri->stop) {
			pthread_mutex_unlock(&ri->lock);
			break;
		}
		pthread_mutex_unlock(&ri->lock);
		nc = conn_volumes(cl->conn, vi, REINT_VOLS);
		for (size_t i = 0; i < nc; i++)
			vols[nv++] = vi[i].id;
		{
			uint32_t more[REINT_VOLS];

			nc = cml_volumes(cl->cml, more, REINT_VOLS);
			for (size_t i = 0; i < nc; i++) {
				bool dup = false;

				for (size_t k = 0; k < nv && !dup; k++)
					dup = vols[k] == more[i];
				if (!dup)
					vols[nv++] = more[i];
			}
		}
		for (size_t i = 0; i < nv; i++)
			step_vol(ri, vols[i]);
	}
	return NULL;
}

int reint_start(struct client *cl)
{
	struct reint *ri = xcalloc(1, sizeof(*ri));

	ri->cl = cl;
	pthread_mutex_init(&ri->lock, NULL);
	pthread_cond_init(&ri->cond, NULL);
	if (pthread_create(&ri->thread, NULL, reint_main, ri) != 0) {
		pthread_cond_destroy(&ri->cond);
		pthread_mutex_destroy(&ri->lock);
		free(ri);
		return -EAGAIN;
	}
	cl->reint = ri;
	return 0;
}

void reint_stop(struct client *cl)
{
	struct reint *ri = cl->reint;

	if (ri == NULL)
		return;
	pthread_mutex_lock(&ri->lock);
	ri->stop = true;
	pthread_cond_signal(&ri->cond);
	pthread_mutex_unlock(&ri->lock);
	pthread_join(ri->thread, NULL);
	pthread_cond_destroy(&ri->cond);
	pthread_mutex_destroy(&ri->lock);
	free(ri);
	cl->reint = NULL;
}

void reint_kick(struct client *cl)
{
	struct reint *ri = cl->reint;

	if (ri == NULL)
		return;
	pthread_mutex_lock(&ri->lock);
	ri->kick = true;
	pthread_cond_signal(&ri->cond);
	pthread_mutex_unlock(&ri->lock);
}

/* ---------- ctl ---------- */

int reint_ctl_force(struct client *cl, const char *op, uint64_t ino)
{
	enum vol_force f;
	uint32_t vol = 0;

	if (strcmp(op, "disconnect") == 0)
		f = VF_DISCONNECT;
	else if (strcmp(op, "write-disconnect") == 0)
		f = VF_WEAK;
	else if (strcmp(op, "reconnect") == 0)
		f = VF_NONE;
	else
		return -EINVAL;
	if (ino != 0) {
		struct fid fid;
		int ret = fsops_ino_fid(cl, ino, &fid);

		if (ret < 0)
			return ret;
		vol = fid.vol;
	} else {
		struct conn_vol_info vi[REINT_VOLS];
		size_t n = conn_volumes(cl->conn, vi, REINT_VOLS);

		for (size_t i = 0; i < n; i++)
			cml_force(cl->cml, vi[i].id, f); /* registers the volume */
	}
	cml_force(cl->cml, vol, f);
	if (f == VF_NONE && cl->reint != NULL) {
		/* Measured weakness is forgotten too: measure again. */
		pthread_mutex_lock(&cl->reint->lock);
		cl->reint->forget_weak = true;
		pthread_mutex_unlock(&cl->reint->lock);
	}
	reint_kick(cl);
	return 0;
}

void reint_vol_json(struct client *cl, uint32_t vol, json_object *v)
{
	uint64_t n, bytes;

	if (cl->cml == NULL)
		return;
	cml_count(cl->cml, vol, &n, &bytes);
	json_object_object_add(v, "state",
			       json_object_new_string(cml_state_name(cml_state(cl->cml, vol))));
	json_object_object_add(v, "cml_records", json_object_new_int64((int64_t)n));
	json_object_object_add(v, "cml_bytes", json_object_new_int64((int64_t)bytes));
}

#define CONFLICTS_MAX 1024

void reint_conflicts_json(struct client *cl, json_object *arr)
{
	struct cml_conflict *cs = xcalloc(CONFLICTS_MAX, sizeof(*cs));
	size_t n = cml_conflicts(cl->cml, cs, CONFLICTS_MAX);

	for (size_t i = 0; i < n && i < CONFLICTS_MAX; i++) {
		json_object *o = json_object_new_object();
		char fs[FID_STR_LEN], id[64], path[1200];

		fid_fmt(&cs[i].rec.fid, fs);
		snprintf(id, sizeof(id), "%u-%llu", cs[i].vol, (unsigned long long)cs[i].lsn);
		if (cs[i].path[0] == '/')
			snprintf(path, sizeof(path), "%s%s", cl->mount, cs[i].path);
		else
			snprintf(path, sizeof(path), "%s", cs[i].path);
		json_object_object_add(o, "path", json_object_new_string(path));
		json_object_object_add(o, "fid", json_object_new_string(fs));
		json_object_object_add(o, "kind", json_object_new_string("local/global"));
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "op", json_object_new_string(cml_op_name(cs[i].rec.op)));
		json_object_object_add(
			o, "error",
			json_object_new_string(err_str(status_to_err((uint32_t)cs[i].status))));
		json_object_object_add(o, "local_data", json_object_new_boolean(cs[i].has_data));
		json_object_array_add(arr, o);
	}
	free(cs);
}

/* Stores the file at path (the local version) into fid with a connected
 * STORE (all chunks under one handle and StoreId). */
static int store_path(struct client *cl, const struct fid *fid, const char *path)
{
	char *data = NULL;
	size_t len = 0, off = 0;
	uint64_t handle;
	struct storeid sid;
	int ret = fs_read_file(path, CML_STORE_LEN_MAX, &data, &len);

	if (ret < 0)
		return ret;
	randombytes_buf(&handle, sizeof(handle));
	conn_next_storeid(cl->conn, &sid);
	do {
		size_t chunk = len - off < CHUNK_MAX ? len - off : CHUNK_MAX;
		struct msg m, rep;
		struct conn_call cc;

		msg_init(&m, MSG_STORE);
		m.fid = *fid;
		m.offset = off;
		m.handle = handle;
		m.sid = sid;
		m.mflags = off == 0 ? STORE_FIRST : 0;
		m.data = chunk ? (const uint8_t *)data + off : NULL;
		m.data_len = (uint32_t)chunk;
		m.length = chunk;
		off += chunk;
		if (off >= len) {
			m.mflags |= STORE_LAST;
			m.length = len;
		}
		ret = conn_call(cl->conn, &m, &rep, &cc);
		if (ret == 0)
			conn_done(cl->conn, &cc);
	} while (ret == 0 && off < len);
	free(data);
	return ret;
}

/* "Keep local" for a record without data: performs it again, connected,
 * without its version check (the local decision wins). */
static int redo(struct client *cl, const struct cml_rec *r)
{
	struct msg m, rep;
	struct conn_call cc;
	int ret;

	switch (r->op) {
	case CML_REMOVE:
		msg_init(&m, MSG_REMOVE);
		m.fid = r->dir;
		snprintf(m.name, sizeof(m.name), "%s", r->name);
		m.mflags = r->flags;
		break;
	case CML_SETATTR:
		msg_init(&m, MSG_SETATTR);
		m.fid = r->fid;
		m.sattr = r->sattr;
		break;
	case CML_RENAME:
		msg_init(&m, MSG_RENAME);
		m.fid = r->dir;
		m.fid2 = r->dir2;
		snprintf(m.name, sizeof(m.name), "%s", r->name);
		snprintf(m.name2, sizeof(m.name2), "%s", r->name2);
		m.mflags = r->flags;
		break;
	case CML_LINK:
		msg_init(&m, MSG_LINK);
		m.fid = r->fid;
		m.fid2 = r->dir;
		snprintf(m.name, sizeof(m.name), "%s", r->name);
		break;
	default:
		return -EINVAL; /* a create without data: keep all */
	}
	conn_next_storeid(cl->conn, &m.sid);
	ret = conn_call(cl->conn, &m, &rep, &cc);
	if (ret == 0)
		conn_done(cl->conn, &cc);
	return ret;
}

/* Creates NAME.conflict-local beside the original (or at the volume root)
 * holding the local version. */
static int keep_beside(struct client *cl, const struct cml_conflict *c, const char *copy)
{
	const struct cml_rec *r = &c->rec;
	struct msg m, rep;
	struct conn_call cc;
	struct fid newfid;
	const char *base = r->name;
	int ret;

	if (r->op != CML_CREATE && r->op != CML_LINK && r->op != CML_RENAME) {
		/* store/setattr/remove: the name is the last path component. */
		base = strrchr(c->path, '/') ? strrchr(c->path, '/') + 1 : c->path;
	}
	msg_init(&m, MSG_CREATE);
	m.fid = r->dir;
	if (r->op != CML_CREATE && r->op != CML_LINK && r->op != CML_RENAME) {
		struct inode *in = inode_get_fid(cl->itab, &r->fid);

		fid_make_root(&m.fid, r->fid.vol);
		if (in != NULL) {
			struct inode *p;
			uint64_t pino;

			pthread_mutex_lock(&in->lock);
			pino = in->parent_ino;
			pthread_mutex_unlock(&in->lock);
			p = inode_get_ino(cl->itab, pino);
			if (p != NULL) {
				m.fid = p->fid;
				inode_put(cl->itab, p);
			}
			inode_put(cl->itab, in);
		}
	}
	m.fid2.vol = r->fid.vol;
	oid_random(m.fid2.oid);
	newfid = m.fid2;
	if (snprintf(m.name, sizeof(m.name), "%s.conflict-local", base) >= (int)sizeof(m.name))
		return -ENAMETOOLONG;
	m.mode = r->op == CML_CREATE ? r->mode : (S_IFREG | 0644);
	if (S_ISLNK(m.mode))
		snprintf(m.target, sizeof(m.target), "%s", r->target);
	m.mflags = CREATE_EXCL;
	conn_next_storeid(cl->conn, &m.sid);
	ret = conn_call(cl->conn, &m, &rep, &cc);
	if (ret == -ENOENT || ret == -ESTALE) {
		/* The directory is gone: the volume root. */
		fid_make_root(&m.fid, r->fid.vol);
		conn_next_storeid(cl->conn, &m.sid);
		ret = conn_call(cl->conn, &m, &rep, &cc);
	}
	if (ret < 0)
		return ret;
	conn_done(cl->conn, &cc);
	if (c->has_data && S_ISREG(m.mode))
		ret = store_path(cl, &newfid, copy);
	return ret;
}

int reint_repair(struct client *cl, json_object *req, uint64_t ino, json_object *r, int *err)
{
	struct cml_conflict *cs = xcalloc(CONFLICTS_MAX, sizeof(*cs));
	size_t n = cml_conflicts(cl->cml, cs, CONFLICTS_MAX);
	json_object *jid, *jkeep;
	const char *keep = "", *id = NULL;
	struct fid fid;
	bool have_fid = false;
	size_t hit = SIZE_MAX;
	char copy[4096];
	int ret = 0;

	*err = 0;
	if (json_object_object_get_ex(req, "id", &jid) &&
	    json_object_is_type(jid, json_type_string))
		id = json_object_get_string(jid);
	if (json_object_object_get_ex(req, "keep", &jkeep) &&
	    json_object_is_type(jkeep, json_type_string))
		keep = json_object_get_string(jkeep);
	if (id == NULL && keep[0] == '\0') {
		free(cs);
		return 0; /* showing versions: the replicas' repair */
	}
	if (id == NULL && ino != 0 && fsops_ino_fid(cl, ino, &fid) == 0)
		have_fid = true;
	for (size_t i = 0; i < n && i < CONFLICTS_MAX && hit == SIZE_MAX; i++) {
		char s[64];

		snprintf(s, sizeof(s), "%u-%llu", cs[i].vol, (unsigned long long)cs[i].lsn);
		if ((id != NULL && strcmp(id, s) == 0) ||
		    (have_fid && fid_eq(&fid, &cs[i].rec.fid)))
			hit = i;
	}
	if (hit == SIZE_MAX) {
		free(cs);
		if (id != NULL) {
			*err = -ENOENT;
			return 1;
		}
		return 0;
	}
	cml_repair_path(cl->cml, cs[hit].vol, cs[hit].lsn, copy, sizeof(copy));
	if (strcmp(keep, "server") == 0) {
		ret = 0;
	} else if (strcmp(keep, "local") == 0) {
		if (cs[hit].rec.op == CML_STORE || cs[hit].rec.op == CML_CREATE)
			ret = cs[hit].has_data ? store_path(cl, &cs[hit].rec.fid, copy) : -EINVAL;
		else
			ret = redo(cl, &cs[hit].rec);
		if (cs[hit].has_data && (ret == -ENOENT || ret == -ESTALE))
			ret = keep_beside(cl, &cs[hit], copy);
	} else if (strcmp(keep, "all") == 0) {
		ret = keep_beside(cl, &cs[hit], copy);
	} else {
		ret = -EINVAL;
	}
	if (ret == 0)
		ret = cml_repair_drop(cl->cml, cs[hit].vol, cs[hit].lsn);
	if (ret == 0) {
		json_object_object_add(r, "kind", json_object_new_string("local/global"));
		json_object_object_add(r, "kept", json_object_new_string(keep));
		fsops_inval_all(cl);
	}
	*err = ret;
	free(cs);
	return 1;
}
