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
#include "common/xalloc.h"

/* How often the AVSGs are looked at (probes run every CONN_PROBE_MS). */
#define REINT_POLL_MS 200
/* The uploads a connection may hold (docs/protocol.md). */
#define REINT_STORES_MAX 64
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
		m.mflags = first ? STORE_FIRST : 0;
		m.data = nr > 0 ? buf : NULL;
		m.data_len = (uint32_t)nr;
		m.length = (uint64_t)nr;
		off += len;
		if (off >= r->length || nr == 0) {
			m.mflags |= STORE_LAST | STORE_REINT;
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

	for (size_t i = 0; i < b->n && ret == 0; i++) {
		if (b->items[i].rec.op != CML_STORE)
			continue;
		ret = upload(j, &b->items[i].rec);
		if (ret < 0 && !transport(ret)) {
			/* The object refuses the upload (gone, not a file): that
			 * is this record's answer; the batch stops before it. */
			j->st[i] = err_to_status(ret);
			for (size_t k = i + 1; k < b->n; k++)
				j->st[k] = ST_AGAIN;
			upto = i;
			ret = 0;
			break;
		}
	}
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

static void cop2(struct client *cl, uint32_t vol, const struct vsg *vsg, const uint32_t *servers,
		 size_t n_srv, const struct storeid *sid, uint32_t mask)
{
	for (size_t s = 0; s < n_srv; s++) {
		struct msg m, rep;
		struct conn_call cc;

		if (!(mask & (1u << s)))
			continue;
		msg_init(&m, MSG_COP2);
		fid_make_root(&m.fid, vol);
		m.sid = *sid;
		m.mflags = 0;
		for (size_t k = 0; k < n_srv; k++) {
			if (!(mask & (1u << k)))
				continue;
			for (uint32_t v = 0; v < vsg->n; v++)
				if (vsg->ids[v] == servers[k])
					m.mflags |= 1u << v;
		}
		if (conn_call_server(cl->conn, servers[s], &m, &rep, &cc) == 0)
			conn_done(cl->conn, &cc);
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

/* After a store record was applied: the container holds the servers' new
 * version; learn its data version so that the next open uses it. */
static void store_applied(struct client *cl, const struct cml_rec *r)
{
	struct cache_ent e;
	struct msg m, rep;
	struct conn_call cc;

	if (cml_names(cl->cml, &r->fid) || cache_get(cl->cache, &r->fid, &e) < 0)
		return; /* later records still need the container */
	e.dirty = false;
	msg_init(&m, MSG_GETATTR);
	m.fid = r->fid;
	if (conn_call(cl->conn, &m, &rep, &cc) == 0) {
		if (rep.attr.sid.client == r->sid.client && rep.attr.sid.seq == r->sid.seq &&
		    rep.attr.size == e.size) {
			e.data_version = rep.attr.data_version;
			e.attr = rep.attr;
		} else {
			e.has_data = false;
		}
		conn_done(cl->conn, &cc);
	} else {
		e.has_data = false;
	}
	cache_put(cl->cache, &e);
	if (!e.has_data)
		cache_drop_data(cl->cache, &r->fid);
}

static bool fid_zero(const struct fid *f)
{
	static const uint8_t zero[OID_LEN];

	return memcmp(f->oid, zero, OID_LEN) == 0;
}

/* An object removed by an applied record: unless a kernel handle still
 * has it open, its cache entry goes (only the servers know if other names
 * remain; a later open fetches). */
static void gone(struct client *cl, const struct fid *fid)
{
	struct cache_ent e;

	if (cache_pinned(cl->cache, fid) || cache_get(cl->cache, fid, &e) < 0)
		return;
	cache_del(cl->cache, fid);
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
	for (int i = 0; i < n; i++) {
		struct cml_rec *r = &items[i].rec;

		if (r->op == CML_STORE) {
			char path[4096];
			struct stat st;

			/* The latest contents: the size the container has now. */
			randombytes_buf(&r->handle, sizeof(r->handle));
			if (r->handle == 0)
				r->handle = 1;
			if (cache_container_path(cl->cache, &r->fid, path, sizeof(path)) == 0 &&
			    stat(path, &st) == 0)
				r->length = (uint64_t)st.st_size;
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
			cop2(cl, vol, &vsg, avsg.ids, n_jobs, &items[i].rec.sid, mask);
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
	for (size_t s = 0; s < n_jobs; s++) {
		bw_sample(ri, jobs[s].server, jobs[s].up_bytes, jobs[s].up_ns);
		if (jobs[s].ret < 0)
			log_info("reint", "volume %u: server %u: %s", vol, jobs[s].server,
				 err_str(jobs[s].ret));
	}
	ret = cml_finish(cl->cml, vol, items, stopped_at, drop, status, (const char(*)[1024])paths);
	if (ret == 0) {
		for (size_t i = 0; i < stopped_at; i++) {
			const struct cml_rec *r = &items[i].rec;

			if (drop[i] && r->op == CML_STORE)
				store_applied(cl, r);
			/* A removed object's container was kept for its stores. */
			if (drop[i] && r->op == CML_REMOVE && !cml_names(cl->cml, &r->fid))
				gone(cl, &r->fid);
			if (drop[i] && r->op == CML_RENAME && !fid_zero(&r->fid2) &&
			    !cml_names(cl->cml, &r->fid2))
				gone(cl, &r->fid2);
		}
		ret = stopped_at == (size_t)n ? 1 : -EAGAIN;
	}
	for (size_t s = 0; s < n_jobs; s++)
		free(jobs[s].st);
	free(drop);
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
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += REINT_POLL_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
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
