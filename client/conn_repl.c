/*
 * conn_repl.c - the client side of replication (docs/replication.md
 * "Client"): volumes and their VSG, calls to the AVSG.
 * Owns:    the volume table (VSG per volume, slots that missed updates),
 *          the table of stores in progress, every struct conn_op.
 * Borrows: servers and their connections from conn.c (conn_i.h).
 * Locking: conn.vol_lock protects the volume table, conn.store_lock the
 *          store table; both are leaves and never held across a wait.
 *
 * Calls come in four kinds:
 *   single:   HELLO, GETROOT, PING, STATS and the repair messages: one
 *             server, no failover.
 *   read:     LOOKUP READDIR FETCH READLINK STATFS: the preferred AVSG
 *             member (lowest smoothed RTT, not found slow); without an
 *             answer after its hedge delay (conn_hedge_ms) the read also
 *             goes to the next member and the first answer wins; a member
 *             that fails or misses its read deadline while another can
 *             answer is marked down and the call moves on (the request is
 *             kept for that). A loser's call goes to the watcher, which
 *             marks its member down if it misses its deadline.
 *   validate: GETATTR (asked only without a callback): every AVSG member;
 *             once one answered, members silent past their hedge delay are
 *             left out (and watched); replicas that differ in (StoreId; VV)
 *             get RESOLVE(fid) at the preferred member, asked again.
 *   update:   SETATTR CREATE REMOVE RENAME LINK STORE: every AVSG member in
 *             parallel with one deadline, then COP2 to those that did it.
 */
#include "client/conn.h"
#include "client/conn_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/thread.h"
#include "common/xalloc.h"

/* How long a volume resolution or an object resolution may take: the
 * server gathers every replica's state before it answers. */
#define RESOLVE_TIMEOUT_MS 10000
/* Bound on the wait for a rejoined member's volume passes (repl_rejoined):
 * the prober waits that long at most; resolution goes on regardless. */
#define REJOIN_RESOLVE_MS 20000
/* Passes asked for within that bound while they leave objects different. */
#define REJOIN_PASSES 4
/* How often a rejoin's wait looks whether the client is stopping. */
#define REJOIN_SLICE_MS 200
/* Poll step while waiting for the first answer of a multicast past its
 * deadline (nobody answered yet: there is no one to move on to). */
#define POLL_STEP_MS 20
/* Calls the watcher keeps (losers of hedged reads, members a validation
 * did not wait for): one per read in flight is plenty; beyond it a loser
 * is dropped unwatched (its member is then marked down only by a later
 * call that waits for it). */
#define WATCH_MAX 256
/* The watcher looks at its calls at least this often (calls handed to it
 * meanwhile are waited on from then, answered ones freed). */
#define WATCH_STEP_MS 10

enum op_kind {
	OP_SINGLE,
	OP_READ,
	OP_VALIDATE,
	OP_UPDATE,
};

struct member {
	struct conn_server *srv;
	struct sconn *sc;      /* owned reference */
	struct rpc_call *call; /* owned */
	int slot;	       /* VSG slot, -1 if unknown */
	bool answered;	       /* ret is final */
	int ret;	       /* transport error, or the server's status */
	/* now_ns() when sent; a read's hedge delay and deadline count from
	 * here, or from when its caller started waiting if that is later
	 * (pipelined FETCH chunks are waited for one after the other). */
	uint64_t t_ns;
	bool sink; /* its reply's data goes into op->sink_fd (first member only) */
};

struct conn_op {
	enum op_kind kind;
	uint16_t type;
	struct msg *req; /* owned copy for failover (reads), F_DATA not kept */
	struct fid fid;	 /* of the request */
	struct fid fid2; /* RENAME: target directory; LINK: the directory */
	struct storeid sid;
	uint32_t mflags;
	uint64_t handle;
	struct cvol vol; /* snapshot of the volume's VSG */
	uint64_t t0;	 /* now_ns() at start */
	uint64_t tried;	 /* servers (by index) this call was sent to */
	size_t n;
	struct member m[VV_MAX];
	int chosen;  /* member whose reply the caller gets, -1 */
	int sink_fd; /* borrowed, -1: FETCH data goes here (conn_start_sink) */
	uint64_t sink_off;
	bool hedged; /* a read sent to a second member after a hedge delay */
};

/* A call left behind by a hedged read or a validation, kept until its
 * member's deadline (watch_main). */
struct watch_ent {
	struct conn_server *srv;
	struct sconn *sc;      /* owned reference */
	struct rpc_call *call; /* owned */
	uint64_t deadline_ns;
	int ret; /* the call's outcome, once watch_main took it out */
};

/* The watcher: one thread, started at the first call handed to it. */
struct repl_watch {
	pthread_mutex_t lock;
	pthread_cond_t cond;		  /* signalled with lock: an entry added, or stop */
	struct watch_ent ents[WATCH_MAX]; /* protected by lock */
	size_t n;			  /* protected by lock */
	bool stop;			  /* protected by lock */
	bool started;			  /* protected by lock */
	pthread_t thread;
};

static bool is_update(uint16_t type)
{
	switch (type) {
	case MSG_SETATTR:
	case MSG_CREATE:
	case MSG_REMOVE:
	case MSG_RENAME:
	case MSG_LINK:
	case MSG_STORE:
		return true;
	default:
		return false;
	}
}

static bool is_read(uint16_t type)
{
	switch (type) {
	case MSG_LOOKUP:
	case MSG_READDIR:
	case MSG_FETCH:
	case MSG_READLINK:
	case MSG_STATFS:
		return true;
	default:
		return false;
	}
}

static bool transport_err(int ret)
{
	return ret == -ENOTCONN || ret == -EPROTO || ret == -ETIMEDOUT || ret == -ECONNRESET ||
	       ret == -EPIPE || ret == -ECONNREFUSED;
}

/* ---------- volumes ---------- */

void repl_init(struct conn *c)
{
	pthread_mutex_init(&c->vol_lock, NULL);
	pthread_mutex_init(&c->store_lock, NULL);
	c->watch = xcalloc(1, sizeof(*c->watch));
	pthread_mutex_init(&c->watch->lock, NULL);
	pthread_cond_init(&c->watch->cond, NULL);
}

void repl_release(struct conn *c)
{
	struct repl_watch *w = c->watch;

	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	for (size_t i = 0; i < w->n; i++) {
		rpc_call_free(w->ents[i].call);
		sconn_put(w->ents[i].sc);
	}
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
	c->watch = NULL;
	pthread_mutex_destroy(&c->vol_lock);
	pthread_mutex_destroy(&c->store_lock);
}

static struct cvol *vol_find_locked(struct conn *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_vols; i++) {
		if (c->vols[i].id == id)
			return &c->vols[i];
	}
	return NULL;
}

static bool vol_get(struct conn *c, uint32_t id, struct cvol *out)
{
	struct cvol *v;

	pthread_mutex_lock(&c->vol_lock);
	v = vol_find_locked(c, id);
	if (v != NULL)
		*out = *v;
	pthread_mutex_unlock(&c->vol_lock);
	return v != NULL;
}

static void vol_set(struct conn *c, uint32_t id, const char *name, const struct vsg *vsg)
{
	struct cvol *v;

	if (vsg->n == 0 || vsg->n > VV_MAX)
		return;
	pthread_mutex_lock(&c->vol_lock);
	v = vol_find_locked(c, id);
	if (v == NULL && c->n_vols < CONN_VOLS_MAX) {
		v = &c->vols[c->n_vols++];
		memset(v, 0, sizeof(*v));
		v->id = id;
	}
	if (v != NULL) {
		if (name != NULL && name[0] != '\0')
			snprintf(v->name, sizeof(v->name), "%s", name);
		if (v->vsg.n != vsg->n ||
		    memcmp(v->vsg.ids, vsg->ids, vsg->n * sizeof(vsg->ids[0])))
			log_info("conn", "volume %u: VSG of %u server(s)", id, vsg->n);
		v->vsg = *vsg;
	}
	pthread_mutex_unlock(&c->vol_lock);
}

static void vol_missed(struct conn *c, uint32_t id, uint32_t slots)
{
	struct cvol *v;

	if (slots == 0)
		return;
	pthread_mutex_lock(&c->vol_lock);
	v = vol_find_locked(c, id);
	if (v != NULL)
		v->missed |= slots;
	pthread_mutex_unlock(&c->vol_lock);
}

static int vsg_slot(const struct vsg *vsg, uint32_t id)
{
	for (uint32_t i = 0; i < vsg->n; i++) {
		if (vsg->ids[i] == id)
			return (int)i;
	}
	return -1;
}

/* The server for calls that belong to no volume (or before its VSG is
 * known): the one that answered GETROOT, else the first up. */
static struct conn_server *any_server(struct conn *c)
{
	int r = atomic_load(&c->root_server);

	if (c->n_servers == 0)
		return NULL;
	if (atomic_load(&c->servers[r].up))
		return &c->servers[r];
	for (size_t i = 0; i < c->n_servers; i++) {
		if (atomic_load(&c->servers[i].up))
			return &c->servers[i];
	}
	return &c->servers[r];
}

/* Fire and forget: the reply, if any, is dropped by rpc.c. */
static void send_async(struct sconn *sc, struct msg *req)
{
	struct rpc_call *call = NULL;

	if (rpc_start(sc->rpc, req, &call) == 0)
		rpc_call_free(call);
}

/* Calls srv once with a deadline; returns transport error or status. The
 * reply is copied to rep without its data. */
static int call_once(struct conn_server *srv, struct msg *req, struct msg *rep, int timeout_ms)
{
	struct rpc_call *call = NULL;
	struct sconn *sc = sconn_cur(srv);
	int ret;

	if (sc == NULL)
		return -ENOTCONN;
	ret = rpc_call(sc->rpc, req, rep, timeout_ms, &call);
	if (ret == 0)
		ret = rep->status;
	else if (ret == -ETIMEDOUT || ret == -ENOTCONN || ret == -EPROTO)
		conn_mark_down(srv, sc, ret);
	rep->data = NULL;
	rep->data_len = 0;
	rpc_call_free(call);
	sconn_put(sc);
	return ret;
}

/* True if a server other than srv is up. */
static bool another_up(struct conn *c, const struct conn_server *srv)
{
	for (size_t i = 0; i < c->n_servers; i++) {
		if (&c->servers[i] != srv && atomic_load(&c->servers[i].up))
			return true;
	}
	return false;
}

/* The VSG of fid's volume: known, or asked with VOLINFO, or (a server
 * without replication) the one server that answers. */
static void vol_for(struct conn *c, const struct fid *fid, struct cvol *out)
{
	struct conn_server *srv;
	struct msg req, rep;
	int ret;

	if (vol_get(c, fid->vol, out))
		return;
	memset(out, 0, sizeof(*out));
	out->id = fid->vol;
	msg_init(&req, MSG_VOLINFO);
	fid_make_root(&req.fid, fid->vol);
	/* A server that does not answer within its read deadline while
	 * another is up is marked down (call_once) and the next one asked. */
	for (size_t t = 0;; t++) {
		srv = any_server(c);
		if (srv == NULL)
			return;
		ret = call_once(srv, &req, &rep,
				another_up(c, srv) ? conn_deadline_ms(srv, false)
						   : CONN_CALL_TIMEOUT_MS);
		if (!transport_err(ret) || t + 1 >= c->n_servers || !another_up(c, srv))
			break;
	}
	if (ret == 0 && rep.vsg.n > 0 && rep.vsg.n <= VV_MAX) {
		vol_set(c, fid->vol, NULL, &rep.vsg);
		vol_get(c, fid->vol, out);
		return;
	}
	if (atomic_load(&srv->server_id) != 0) {
		out->vsg.n = 1;
		out->vsg.ids[0] = atomic_load(&srv->server_id);
	}
}

/* ---------- ops ---------- */

static struct conn_op *op_new(enum op_kind kind, const struct msg *req)
{
	struct conn_op *op = xcalloc(1, sizeof(*op));

	op->kind = kind;
	op->type = req->type;
	op->t0 = now_ns();
	op->chosen = -1;
	op->sink_fd = -1;
	op->fid = req->fid;
	op->fid2 = req->fid2;
	op->sid = req->sid;
	op->mflags = req->mflags;
	op->handle = req->handle;
	if (kind == OP_READ || kind == OP_VALIDATE) {
		op->req = xmalloc(sizeof(*op->req));
		*op->req = *req;
		op->req->data = NULL;
		op->req->data_len = 0;
	}
	return op;
}

static void member_release(struct member *m)
{
	rpc_call_free(m->call);
	m->call = NULL;
	sconn_put(m->sc);
	m->sc = NULL;
}

static void op_free(struct conn_op *op)
{
	if (op == NULL)
		return;
	for (size_t i = 0; i < op->n; i++)
		member_release(&op->m[i]);
	free(op->req);
	free(op);
}

/* Adds srv as a member (takes the reference sc) and sends req to it. */
static int op_send(struct conn_op *op, struct conn_server *srv, struct sconn *sc, struct msg *req)
{
	struct member *m;
	int ret;

	ASSERT(op->n < VV_MAX);
	m = &op->m[op->n++];
	memset(m, 0, sizeof(*m));
	m->srv = srv;
	m->sc = sc;
	m->slot = vsg_slot(&op->vol.vsg, atomic_load(&srv->server_id));
	m->t_ns = now_ns();
	op->tried |= 1ull << srv->idx;
	/* Only the first member writes into the sink: another one (a hedge,
	 * a failover) answers into memory, and wait_read copies the winner's
	 * data once no other call can write there (read_won). */
	m->sink = op->sink_fd >= 0 && op->n == 1;
	if (m->sink)
		ret = rpc_start_sink(sc->rpc, req, op->sink_fd, op->sink_off, &m->call);
	else
		ret = rpc_start(sc->rpc, req, &m->call);
	if (ret < 0) {
		m->answered = true;
		m->ret = ret;
		conn_mark_down(srv, sc, ret);
	}
	return ret;
}

/* The AVSG members of vol not in skip, best (lowest smoothed RTT) first.
 * Members still being brought level after a rejoin (behind_until_ns) count
 * only with all, or when no other member is up: reads would see their old
 * state (updates and validations take them: a replica behind on an object
 * refuses the update, F_XVER, and a validation sees it differ). Fills
 * srvs/scs (new references); returns the count. */
static size_t avsg(struct conn *c, const struct cvol *vol, uint64_t skip, bool all,
		   struct conn_server **srvs, struct sconn **scs)
{
	size_t n = 0;
	uint64_t now = now_ns();

	for (int behind = all ? 1 : 0; behind < 2 && n == 0; behind++) {
		for (uint32_t i = 0; i < vol->vsg.n; i++) {
			struct conn_server *srv = conn_server_by_id(c, vol->vsg.ids[i]);
			struct sconn *sc;

			if (srv == NULL || (skip & (1ull << srv->idx)) || !atomic_load(&srv->up) ||
			    (behind == 0 && atomic_load(&srv->behind_until_ns) > now))
				continue;
			sc = sconn_cur(srv);
			if (sc == NULL)
				continue;
			srvs[n] = srv;
			scs[n] = sc;
			n++;
		}
	}
	/* Insertion sort by srtt: n <= VV_MAX. */
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0; j--) {
			uint64_t a, b;

			pthread_mutex_lock(&srvs[j - 1]->lock);
			a = srvs[j - 1]->srtt_us;
			pthread_mutex_unlock(&srvs[j - 1]->lock);
			pthread_mutex_lock(&srvs[j]->lock);
			b = srvs[j]->srtt_us;
			pthread_mutex_unlock(&srvs[j]->lock);
			if (a <= b)
				break;
			struct conn_server *ts = srvs[j];
			struct sconn *tc = scs[j];
			srvs[j] = srvs[j - 1];
			scs[j] = scs[j - 1];
			srvs[j - 1] = ts;
			scs[j - 1] = tc;
		}
	}
	return n;
}

/* No member of the AVSG is up: try to (re)connect to one, with the old
 * single-server backoff, so that a restarted lone server is used at once. */
static int fallback(struct conn *c, const struct cvol *vol, uint64_t skip,
		    struct conn_server **srv_out, struct sconn **sc_out)
{
	int ret = -ENOTCONN;

	for (size_t i = 0; i < c->n_servers; i++) {
		struct conn_server *srv = &c->servers[i];
		uint32_t id = atomic_load(&srv->server_id);
		struct sconn *sc;

		if (skip & (1ull << i))
			continue;
		if (id != 0 && vol->vsg.n > 0 && vsg_slot(&vol->vsg, id) < 0)
			continue;
		ret = sconn_get(srv, false, &sc);
		if (ret < 0)
			continue;
		id = atomic_load(&srv->server_id);
		if (vol->vsg.n > 0 && vsg_slot(&vol->vsg, id) < 0) {
			sconn_put(sc);
			ret = -ENOTCONN;
			continue;
		}
		*srv_out = srv;
		*sc_out = sc;
		return 0;
	}
	return ret;
}

/* ---------- stores in progress ---------- */

static struct cstore *store_find_locked(struct conn *c, uint64_t handle)
{
	for (size_t i = 0; i < CONN_STORES_MAX; i++) {
		if (c->stores[i].handle == handle)
			return &c->stores[i];
	}
	return NULL;
}

static void store_begin(struct conn *c, uint64_t handle, uint64_t members)
{
	struct cstore *s, *old = &c->stores[0];

	pthread_mutex_lock(&c->store_lock);
	s = store_find_locked(c, handle);
	if (s == NULL)
		s = store_find_locked(c, 0);
	if (s == NULL) {
		/* Evict the least recently used: an abandoned store. */
		for (size_t i = 1; i < CONN_STORES_MAX; i++) {
			if (c->stores[i].t_ns < old->t_ns)
				old = &c->stores[i];
		}
		s = old;
	}
	s->handle = handle;
	s->members = members;
	s->failed = 0;
	s->t_ns = now_ns();
	pthread_mutex_unlock(&c->store_lock);
}

/* Members of a store in progress, minus those that failed a chunk. */
static bool store_members(struct conn *c, uint64_t handle, uint64_t *members, uint64_t *failed)
{
	struct cstore *s;

	pthread_mutex_lock(&c->store_lock);
	s = handle != 0 ? store_find_locked(c, handle) : NULL;
	if (s != NULL) {
		*members = s->members;
		*failed = s->failed;
		s->t_ns = now_ns();
	}
	pthread_mutex_unlock(&c->store_lock);
	return s != NULL;
}

static void store_failed(struct conn *c, uint64_t handle, uint64_t failed, bool end)
{
	struct cstore *s;

	pthread_mutex_lock(&c->store_lock);
	s = handle != 0 ? store_find_locked(c, handle) : NULL;
	if (s != NULL) {
		s->failed |= failed;
		if (end)
			memset(s, 0, sizeof(*s));
	}
	pthread_mutex_unlock(&c->store_lock);
}

/* ---------- starting calls ---------- */

static int start_single(struct conn *c, struct msg *req, struct conn_op *op)
{
	struct conn_server *srv = any_server(c);
	struct sconn *sc;
	int ret;

	if (srv == NULL)
		return -ENOTCONN;
	ret = sconn_get(srv, false, &sc);
	if (ret < 0)
		return ret;
	return op_send(op, srv, sc, req);
}

/* The member a read goes to among srvs[0..n) (best first, see avsg): the
 * first one no read was hedged away from since it last answered, so that
 * reads stop paying the hedge delay of a slow or frozen member at once. */
static size_t pick_read(struct conn_server **srvs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (atomic_load(&srvs[i]->slow_ns) == 0)
			return i;
	}
	return 0;
}

static int start_read(struct conn *c, struct msg *req, struct conn_op *op)
{
	struct conn_server *srvs[VV_MAX];
	struct sconn *scs[VV_MAX];
	size_t n, k;
	int ret = -ENOTCONN;

	for (;;) {
		n = avsg(c, &op->vol, op->tried, false, srvs, scs);
		if (n == 0)
			break;
		k = pick_read(srvs, n);
		for (size_t i = 0; i < n; i++) {
			if (i != k)
				sconn_put(scs[i]);
		}
		ret = op_send(op, srvs[k], scs[k], req);
		if (ret == 0)
			return 0;
	}
	if (op->n > 0 && ret < 0)
		return ret;
	ret = fallback(c, &op->vol, op->tried, &srvs[0], &scs[0]);
	if (ret < 0)
		return ret;
	return op_send(op, srvs[0], scs[0], req);
}

/* Sends req to every member given; 0 if at least one send worked. */
static int start_all(struct conn_op *op, struct msg *req, struct conn_server **srvs,
		     struct sconn **scs, size_t n)
{
	int ret = -ENOTCONN;
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		/* A member whose socket stays full (a frozen server) must not
		 * hold the others: bound the send while others can answer. */
		rpc_set_send_timeout(scs[i]->rpc, n > 1 ? CONN_DEADLINE_CAP_MS : 0);
		ret = op_send(op, srvs[i], scs[i], req);
		any |= ret == 0;
	}
	return any ? 0 : ret;
}

static int start_multi(struct conn *c, struct msg *req, struct conn_op *op)
{
	struct conn_server *srvs[VV_MAX];
	struct sconn *scs[VV_MAX];
	size_t n;
	int ret;

	if (req->type == MSG_STORE && !(req->mflags & STORE_FIRST)) {
		uint64_t members, failed;

		/* Later chunks go where the first went, minus failures. */
		if (store_members(c, req->handle, &members, &failed))
			op->tried = ~members | failed;
	}
	/* Members being brought level after a rejoin too: they perform what
	 * they are level for and refuse the rest (expected versions, F_XVER),
	 * so an update is not left on fewer replicas than are up. */
	n = avsg(c, &op->vol, op->tried, true, srvs, scs);
	op->tried = 0;
	if (n == 0) {
		ret = fallback(c, &op->vol, 0, &srvs[0], &scs[0]);
		if (ret < 0)
			return ret;
		n = 1;
	}
	ret = start_all(op, req, srvs, scs, n);
	if (req->type == MSG_STORE && (req->mflags & STORE_FIRST))
		store_begin(c, req->handle, op->tried);
	return ret;
}

static int start_call(struct conn *c, struct msg *req, int sink_fd, uint64_t sink_off,
		      struct conn_call *cc)
{
	enum op_kind kind = OP_SINGLE;
	struct conn_op *op;
	int ret;

	cc->op = NULL;
	if (c->n_servers == 0)
		return -ENOTCONN;
	if (is_update(req->type))
		kind = OP_UPDATE;
	else if (req->type == MSG_GETATTR)
		kind = OP_VALIDATE;
	else if (is_read(req->type))
		kind = OP_READ;
	if (kind != OP_SINGLE && c->gate != NULL) {
		ret = c->gate(c->gate_arg, req->fid.vol, req->type);
		if (ret < 0)
			return ret;
	}
	op = op_new(kind, req);
	op->sink_fd = sink_fd;
	op->sink_off = sink_off;
	if (kind != OP_SINGLE)
		vol_for(c, &req->fid, &op->vol);
	switch (kind) {
	case OP_SINGLE:
		ret = start_single(c, req, op);
		break;
	case OP_READ:
		ret = start_read(c, req, op);
		break;
	case OP_VALIDATE:
	case OP_UPDATE:
		ret = start_multi(c, req, op);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (ret < 0) {
		op_free(op);
		return ret;
	}
	cc->op = op;
	return 0;
}

int conn_start(struct conn *c, struct msg *req, struct conn_call *cc)
{
	return start_call(c, req, -1, 0, cc);
}

int conn_start_sink(struct conn *c, struct msg *req, int fd, uint64_t off, struct conn_call *cc)
{
	cc->op = NULL;
	if (req->type != MSG_FETCH || fd < 0)
		return -EINVAL;
	return start_call(c, req, fd, off, cc);
}

void conn_set_gate(struct conn *c, conn_gate_fn gate, void *arg)
{
	c->gate = gate;
	c->gate_arg = arg;
}

/* ---------- waiting ---------- */

static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = now_ns();

	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

/* Waits for m until deadline_ns; records the outcome. The RTT sample is
 * the call's own round trip: members are waited for one after another, and
 * the time since the op began would charge a member that answered at once
 * with the wait for a frozen one before it (its deadlines then grew). */
static void member_wait(struct member *m, uint64_t deadline_ns)
{
	struct msg rep;
	int ret;

	if (m->answered)
		return;
	ret = rpc_wait(m->call, ms_left(deadline_ns), &rep);
	if (ret == -ETIMEDOUT)
		return;
	m->answered = true;
	m->ret = ret == 0 ? rep.status : ret;
	if (ret == 0)
		conn_rtt_sample(m->srv, rpc_call_rtt_us(m->call));
}

/* Multicast wait: every member until the common deadline; if nobody has
 * answered by then, until the first answer (or CONN_CALL_TIMEOUT_MS).
 * Members still silent then, or whose connection failed, are marked down. */
static void wait_all(struct conn *c, struct conn_op *op, bool update)
{
	uint64_t deadline = op->t0, hard = op->t0 + CONN_CALL_TIMEOUT_MS * 1000000ull;
	bool any = false;

	(void)c;
	for (size_t i = 0; i < op->n; i++) {
		uint64_t d = op->t0 + (uint64_t)conn_deadline_ms(op->m[i].srv, update) * 1000000ull;

		if (d > deadline)
			deadline = d;
	}
	for (size_t i = 0; i < op->n; i++) {
		member_wait(&op->m[i], deadline);
		any |= op->m[i].answered && !transport_err(op->m[i].ret);
	}
	while (!any && now_ns() < hard) {
		bool pending = false;

		for (size_t i = 0; i < op->n && !any; i++) {
			struct member *m = &op->m[i];

			if (m->answered)
				continue;
			pending = true;
			member_wait(m, now_ns() + POLL_STEP_MS * 1000000ull);
			any |= m->answered && !transport_err(m->ret);
		}
		if (!pending)
			break;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct member *m = &op->m[i];

		if (!m->answered) {
			m->answered = true;
			m->ret = -ETIMEDOUT;
		}
		if (transport_err(m->ret))
			conn_mark_down(m->srv, m->sc, m->ret);
	}
}

/* The vector a replica of the update set will hold after COP2: the
 * chosen reply's plus one in every other member's slot. */
static void vv_after_cop2(struct attr *a, const struct cvol *vol, uint32_t mask, int own)
{
	static const uint8_t zero[OID_LEN];

	if (memcmp(a->fid.oid, zero, OID_LEN) == 0 || a->vv.n != vol->vsg.n)
		return;
	for (uint32_t j = 0; j < a->vv.n; j++) {
		if ((mask & (1u << j)) && (int)j != own)
			a->vv.slot[j]++;
	}
}

static void request_resolve(struct conn_server *srv, struct sconn *sc, const struct fid *fid,
			    uint32_t flags)
{
	struct msg req;
	char s[FID_STR_LEN];

	fid_fmt(fid, s);
	log_info("conn", "replicas of %s differ: asking server %u to resolve", s,
		 atomic_load(&srv->server_id));
	msg_init(&req, MSG_RESOLVE);
	req.fid = *fid;
	req.mflags = flags;
	send_async(sc, &req);
}

static int wait_update(struct conn *c, struct conn_op *op, struct msg *rep)
{
	const struct fid *fid = &op->fid;
	const struct storeid *sid = &op->sid;
	uint32_t mflags = op->mflags;
	uint64_t handle = op->handle;
	uint64_t failed = 0;
	uint32_t mask;
	int ret = 0, err = 0;
	bool mixed = false, store = op->type == MSG_STORE, last = !store || (mflags & STORE_LAST);

	wait_all(c, op, true);
	for (size_t i = 0; i < op->n; i++) {
		struct member *m = &op->m[i];

		if (m->ret == 0) {
			if (op->chosen < 0)
				op->chosen = (int)i;
			continue;
		}
		failed |= 1ull << m->srv->idx;
		if (err == 0 || (transport_err(err) && !transport_err(m->ret)))
			err = m->ret;
		if (!transport_err(m->ret))
			mixed = true;
	}
	if (store) {
		uint64_t members = 0, before = 0;

		if (store_members(c, handle, &members, &before))
			failed |= before;
		store_failed(c, handle, failed, last);
	}
	if (op->chosen < 0) {
		if (store && !last)
			store_failed(c, handle, 0, true);
		return err != 0 ? err : -EIO;
	}
	mask = 0;
	for (size_t i = 0; i < op->n; i++) {
		struct member *m = &op->m[i];

		if (m->ret == 0 && m->slot >= 0 && !(failed & (1ull << m->srv->idx)))
			mask |= 1u << m->slot;
	}
	if (mixed && last) {
		struct member *m = &op->m[op->chosen];

		request_resolve(m->srv, m->sc, fid, 0);
		/* A refusal may have been for the second directory's version. */
		if ((op->type == MSG_RENAME || op->type == MSG_LINK) && !fid_eq(&op->fid2, fid))
			request_resolve(m->srv, m->sc, &op->fid2, 0);
	}
	if (last && op->vol.vsg.n > 1 && mask != 0) {
		struct msg cop2;

		msg_init(&cop2, MSG_COP2);
		cop2.fid = *fid;
		cop2.mflags = mask;
		cop2.sid = *sid;
		for (size_t i = 0; i < op->n; i++) {
			struct member *m = &op->m[i];

			if (m->slot >= 0 && (mask & (1u << m->slot)))
				send_async(m->sc, &cop2);
		}
	}
	if (last && op->vol.vsg.n > 0) {
		uint32_t all = op->vol.vsg.n >= 32 ? ~0u : (1u << op->vol.vsg.n) - 1;

		vol_missed(c, op->vol.id, all & ~mask);
	}
	ret = rpc_wait(op->m[op->chosen].call, 0, rep);
	if (ret < 0)
		return ret;
	if (last && mask != 0) {
		int own = op->m[op->chosen].slot;

		vv_after_cop2(&rep->attr, &op->vol, mask, own);
		vv_after_cop2(&rep->attr2, &op->vol, mask, own);
	}
	return rep->status;
}

/* Sends a read to the next AVSG member (pick_read); 0 if it was sent
 * somewhere. A hedge goes only to a member that is not being brought level
 * after a rejoin: its answer, maybe old, would race a good one. */
static int read_next(struct conn *c, struct conn_op *op, bool hedge)
{
	struct conn_server *srvs[VV_MAX];
	struct sconn *scs[VV_MAX];
	size_t n, k;

	for (;;) {
		if (op->n >= VV_MAX)
			return -ENOTCONN;
		n = avsg(c, &op->vol, op->tried, false, srvs, scs);
		if (n == 0)
			return -ENOTCONN;
		k = pick_read(srvs, n);
		for (size_t i = 0; i < n; i++) {
			if (i != k)
				sconn_put(scs[i]);
		}
		if (hedge && atomic_load(&srvs[k]->behind_until_ns) > now_ns()) {
			sconn_put(scs[k]);
			return -ENOTCONN;
		}
		if (op_send(op, srvs[k], scs[k], op->req) == 0)
			return 0;
	}
}

/* ---------- the watcher ---------- */

/* Waits for the calls handed to it until their deadlines: a call still
 * unanswered then marks its member down, as the read would have had it
 * waited (connection dropped, callbacks void). An answer only ends the
 * watch: it is no RTT sample, as a late answer after a passing fault (a
 * partition healed, TCP retransmitting) would raise the member's deadlines
 * for a while; the member's slow mark goes with its next answer to a call
 * that waits for it (conn_rtt_sample). */
static void *watch_main(void *arg)
{
	struct conn *c = arg;
	struct repl_watch *w = c->watch;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct rpc_call *calls[WATCH_MAX];
		struct watch_ent done[WATCH_MAX];
		size_t n = w->n, n_done = 0;
		uint64_t next = UINT64_MAX, now;
		int ms;

		if (n == 0) {
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			calls[i] = w->ents[i].call;
			if (w->ents[i].deadline_ns < next)
				next = w->ents[i].deadline_ns;
		}
		pthread_mutex_unlock(&w->lock);
		ms = ms_left(next);
		(void)rpc_wait_any(calls, n, ms < WATCH_STEP_MS ? ms : WATCH_STEP_MS);
		now = now_ns();
		pthread_mutex_lock(&w->lock);
		/* Entries [0, n) are the ones waited on: only this thread takes
		 * entries out, others only append. */
		for (size_t i = n; i-- > 0;) {
			struct watch_ent *e = &w->ents[i];
			struct msg rep;
			int ret = rpc_wait(e->call, 0, &rep);

			if (ret == -ETIMEDOUT && now < e->deadline_ns)
				continue;
			done[n_done] = *e;
			done[n_done++].ret = ret == 0 ? rep.status : ret;
			*e = w->ents[--w->n];
		}
		pthread_mutex_unlock(&w->lock);
		for (size_t i = 0; i < n_done; i++) {
			struct watch_ent *e = &done[i];

			if (e->ret == -ETIMEDOUT) {
				log_debug("conn", "server %u missed its deadline (hedged)",
					  atomic_load(&e->srv->server_id));
				conn_mark_down(e->srv, e->sc, -ETIMEDOUT);
			}
			rpc_call_free(e->call);
			sconn_put(e->sc);
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Hands call (to srv over sc) to the watcher until deadline_ns; takes
 * ownership of call and of the reference sc. */
static void watch_add(struct conn *c, struct conn_server *srv, struct sconn *sc,
		      struct rpc_call *call, uint64_t deadline_ns)
{
	struct repl_watch *w = c->watch;
	bool kept = false;

	pthread_mutex_lock(&w->lock);
	if (!w->started && !w->stop)
		w->started = thread_start(&w->thread, false, watch_main, c) == 0;
	if (w->started && !w->stop && w->n < WATCH_MAX) {
		w->ents[w->n++] = (struct watch_ent){
			.srv = srv, .sc = sc, .call = call, .deadline_ns = deadline_ns
		};
		pthread_cond_signal(&w->cond);
		kept = true;
	}
	pthread_mutex_unlock(&w->lock);
	if (!kept) {
		rpc_call_free(call);
		sconn_put(sc);
	}
}

/* Marks srv as one a call was hedged away from (pick_read avoids it) until
 * it answers again (conn_rtt_sample clears the mark). */
static void mark_slow(struct conn_server *srv)
{
	uint_fast64_t zero = 0;

	atomic_compare_exchange_strong(&srv->slow_ns, &zero, now_ns());
}

/* Deadline of member m of a read or validation. */
static uint64_t member_deadline(const struct member *m)
{
	return m->t_ns + (uint64_t)conn_deadline_ms(m->srv, false) * 1000000ull;
}

/* When a hedge leaves member m behind: its hedge delay after it was sent,
 * at once if a read was already hedged away from it. */
static uint64_t member_hedge_at(const struct member *m)
{
	if (atomic_load(&m->srv->slow_ns) != 0)
		return m->t_ns;
	return m->t_ns + (uint64_t)conn_hedge_ms(m->srv) * 1000000ull;
}

/* Leaves member m's unanswered call to the watcher (its deadline still
 * holds) and out of the op. A call into the caller's sink first lets go of
 * it (rpc_call_drop_sink: nothing more is written there, and the caller
 * may close it), without waiting for the network. */
static void member_leave(struct conn *c, struct member *m)
{
	m->answered = true;
	m->ret = -ECANCELED;
	if (m->sink)
		rpc_call_drop_sink(m->call);
	watch_add(c, m->srv, m->sc, m->call, member_deadline(m));
	m->call = NULL;
	m->sc = NULL;
}

/* A read's member answered (op->chosen; rep holds its reply): the others
 * still waited for go to the watcher. Every other call into the sink lets
 * go of it first; then a winner that answered into memory has its data
 * copied into the sink, so the caller's file holds exactly its data. */
static int read_won(struct conn *c, struct conn_op *op, struct msg *rep)
{
	struct member *w = &op->m[op->chosen];
	int ret;

	for (size_t i = 0; i < op->n; i++) {
		struct member *m = &op->m[i];

		if (m == w || m->call == NULL)
			continue;
		if (!m->answered)
			member_leave(c, m);
		else if (m->sink)
			rpc_call_drop_sink(m->call); /* past its deadline, maybe still coming */
	}
	if (op->sink_fd < 0 || w->sink || rep->status != 0)
		return rep->status;
	if (rep->data_len > 0) {
		ret = fs_pwrite_all(op->sink_fd, rep->data, rep->data_len, (off_t)op->sink_off);
		if (ret < 0)
			return ret;
	}
	rep->data = NULL;
	return 0;
}

static bool others_up(struct conn *c, const struct conn_op *op)
{
	for (uint32_t i = 0; i < op->vol.vsg.n; i++) {
		struct conn_server *srv = conn_server_by_id(c, op->vol.vsg.ids[i]);

		if (srv != NULL && !(op->tried & (1ull << srv->idx)) && atomic_load(&srv->up))
			return true;
	}
	return false;
}

/* Waits for a read: the first answer of any member it was sent to wins.
 * While another member can answer, a read (OP_READ) still unanswered after
 * its member's hedge delay is also sent to the next member (once), and a
 * member that misses its deadline or fails is marked down and the read
 * moves on; the last member is waited for up to CONN_CALL_TIMEOUT_MS. */
static int wait_read(struct conn *c, struct conn_op *op, struct msg *rep)
{
	uint64_t t_wait = now_ns();
	int ret = -ENOTCONN;

	for (size_t i = 0; i < op->n; i++) {
		if (op->m[i].t_ns < t_wait)
			op->m[i].t_ns = t_wait;
	}
	for (;;) {
		struct rpc_call *calls[VV_MAX];
		size_t idx[VV_MAX], np = 0;
		bool others = op->kind != OP_SINGLE && others_up(c, op), bounded;
		uint64_t wake = UINT64_MAX, hedge_at = UINT64_MAX, now;
		int k;

		for (size_t i = 0; i < op->n; i++) {
			if (!op->m[i].answered) {
				calls[np] = op->m[i].call;
				idx[np++] = i;
			}
		}
		if (np == 0) {
			/* Every member asked so far failed: the next one. */
			struct member *m;

			ASSERT(op->n > 0);
			m = &op->m[op->n - 1];
			if (op->kind == OP_SINGLE || read_next(c, op, false) < 0)
				return m->ret;
			log_debug("conn", "%s moved from server %u after %s", msg_name(op->type),
				  atomic_load(&m->srv->server_id), err_str(m->ret));
			continue;
		}
		/* A deadline applies only while another member can answer. */
		bounded = others || np > 1;
		for (size_t j = 0; j < np; j++) {
			struct member *m = &op->m[idx[j]];
			uint64_t d = bounded ? member_deadline(m)
					     : m->t_ns + CONN_CALL_TIMEOUT_MS * 1000000ull;

			if (d < wake)
				wake = d;
		}
		if (op->kind == OP_READ && !op->hedged && np == 1 && others) {
			hedge_at = member_hedge_at(&op->m[idx[0]]);
			if (hedge_at < wake)
				wake = hedge_at;
		}
		k = rpc_wait_any(calls, np, ms_left(wake));
		if (k >= 0) {
			struct member *m = &op->m[idx[k]];

			ret = rpc_wait(m->call, 0, rep);
			m->answered = true;
			m->ret = ret == 0 ? rep->status : ret;
			if (ret == 0 && rep->status == -ERR_VERSION && op->kind == OP_READ &&
			    op->req != NULL &&
			    (!storeid_is_zero(&op->req->xver[0].sid) ||
			     (op->type == MSG_FETCH && op->req->expect != 0))) {
				/* Behind the version the client saw (F_XVER), or
				 * without the data version a FETCH expects: it
				 * missed updates (or made one since: the others
				 * then have what the client validated). Read
				 * elsewhere; have it resolved. */
				log_info("conn", "%s: server %u is behind: reading elsewhere",
					 msg_name(op->type), atomic_load(&m->srv->server_id));
				request_resolve(m->srv, m->sc, &op->fid, 0);
				continue;
			}
			if (ret == 0) {
				op->chosen = (int)idx[k];
				conn_rtt_sample(m->srv, (now_ns() - m->t_ns) / 1000 + 1);
				return read_won(c, op, rep);
			}
			if (!transport_err(ret))
				return ret; /* the sink could not be written */
			conn_mark_down(m->srv, m->sc, ret);
			continue;
		}
		now = now_ns();
		for (size_t j = 0; j < np; j++) {
			struct member *m = &op->m[idx[j]];

			if (now < (bounded ? member_deadline(m)
					   : m->t_ns + CONN_CALL_TIMEOUT_MS * 1000000ull))
				continue;
			m->answered = true;
			m->ret = -ETIMEDOUT;
			if (!bounded)
				return -ETIMEDOUT;
			conn_mark_down(m->srv, m->sc, -ETIMEDOUT);
		}
		if (hedge_at != UINT64_MAX && now >= hedge_at && !op->m[idx[0]].answered) {
			struct member *m = &op->m[idx[0]];

			op->hedged = true;
			mark_slow(m->srv);
			if (read_next(c, op, true) == 0)
				log_debug("conn", "%s hedged from server %u to %u after %llu us",
					  msg_name(op->type), atomic_load(&m->srv->server_id),
					  atomic_load(&op->m[op->n - 1].srv->server_id),
					  (unsigned long long)((now - m->t_ns) / 1000));
		}
	}
}

/* Validation wait: every member, until all answered or, once one has
 * answered, until each silent one's hedge delay, and at least twice as
 * long as the first answer took (a loaded machine slows every member): a
 * member still silent then is left out of this comparison (member_leave:
 * the watcher marks it down if it misses its deadline) and reads move away
 * from it. Until the first answer, as
 * wait_all: nobody is left out, members past their deadline are marked
 * down once another answered, and the wait ends after
 * CONN_CALL_TIMEOUT_MS. Members left out or failed have a transport error
 * in ret. */
static void wait_validate_all(struct conn *c, struct conn_op *op)
{
	uint64_t hard = op->t0 + CONN_CALL_TIMEOUT_MS * 1000000ull, grace = 0;

	for (;;) {
		struct rpc_call *calls[VV_MAX];
		size_t idx[VV_MAX], np = 0;
		uint64_t wake = hard, now;
		bool any = false;
		int k;

		for (size_t i = 0; i < op->n; i++) {
			struct member *m = &op->m[i];

			if (!m->answered) {
				calls[np] = m->call;
				idx[np++] = i;
			} else if (!transport_err(m->ret)) {
				any = true;
			}
		}
		if (np == 0)
			return;
		for (size_t j = 0; j < np && any; j++) {
			uint64_t h = member_hedge_at(&op->m[idx[j]]);

			if (h < grace)
				h = grace;
			if (h < wake)
				wake = h;
		}
		k = rpc_wait_any(calls, np, ms_left(wake));
		if (k >= 0) {
			struct member *m = &op->m[idx[k]];
			struct msg rep;
			int ret = rpc_wait(m->call, 0, &rep);

			now = now_ns();
			m->answered = true;
			m->ret = ret == 0 ? rep.status : ret;
			if (ret == 0)
				conn_rtt_sample(m->srv, (now - m->t_ns) / 1000 + 1);
			else if (transport_err(ret))
				conn_mark_down(m->srv, m->sc, ret);
			if (!any && !transport_err(m->ret))
				grace = now + (now - op->t0);
			continue;
		}
		now = now_ns();
		for (size_t j = 0; j < np; j++) {
			struct member *m = &op->m[idx[j]];

			if (now >= hard) {
				m->answered = true;
				m->ret = -ETIMEDOUT;
				conn_mark_down(m->srv, m->sc, -ETIMEDOUT);
			} else if (any && now >= grace && now >= member_hedge_at(m)) {
				mark_slow(m->srv);
				member_leave(c, m);
				m->ret = -ETIMEDOUT;
			}
		}
	}
}

static bool attr_same(const struct attr *a, const struct attr *b)
{
	/* Equal StoreIds mean equal contents even if a COP2 was lost. */
	if (storeid_eq(&a->sid, &b->sid))
		return true;
	return vv_compare(&a->vv, &b->vv) == VV_EQUAL;
}

static int wait_validate(struct conn *c, struct conn_op *op, struct msg *rep)
{
	struct msg r;
	struct attr first, top;
	bool differ = false, have = false;
	int ret = 0, err = 0, top_i = -1;

	if (op->n == 1)
		return wait_read(c, op, rep);
	wait_validate_all(c, op);
	for (size_t i = 0; i < op->n; i++) {
		struct member *m = &op->m[i];

		if (transport_err(m->ret))
			continue;
		if (m->ret != 0) {
			if (err == 0)
				err = m->ret;
			differ |= have;
			continue;
		}
		if (rpc_wait(m->call, 0, &r) < 0)
			continue;
		if (op->chosen < 0)
			op->chosen = (int)i;
		/* The replica with the newest state: the others' vectors do
		 * not exceed its own (the first such one). */
		if (top_i < 0 || (!storeid_eq(&top.sid, &r.attr.sid) &&
				  vv_compare(&r.attr.vv, &top.vv) == VV_DOMINATES)) {
			top = r.attr;
			top_i = (int)i;
		}
		if (!have) {
			first = r.attr;
			have = true;
			differ |= err != 0;
		} else if (!attr_same(&first, &r.attr)) {
			differ = true;
		}
		if (r.attr.flags & ATTR_F_CONFLICT)
			differ = false; /* resolution leaves it alone: repair does */
	}
	if (op->chosen < 0)
		return err != 0 ? err : -ETIMEDOUT;
	if (differ) {
		struct member *m;
		struct msg req, rr;

		/* Resolve at, and ask again, the replica with the newest state:
		 * the preferred one may be the one behind (back from a crash),
		 * and its answer would then be the old state again if the
		 * resolution has not reached it. */
		if (top_i >= 0)
			op->chosen = top_i;
		m = &op->m[op->chosen];
		/* Its answer before the resolution: the newest state seen, the
		 * answer if it cannot be asked again (it went away meanwhile).
		 * Validations are GETATTRs: no data to keep. */
		struct msg first_rep;
		bool have_first = rpc_wait(m->call, 0, &first_rep) == 0 && first_rep.status == 0 &&
				  first_rep.data_len == 0;

		first_rep.data = NULL;
		msg_init(&req, MSG_RESOLVE);
		req.fid = op->req->fid;
		char s[FID_STR_LEN];
		fid_fmt(&req.fid, s);
		log_info("conn", "replicas of %s differ: resolving at server %u", s,
			 atomic_load(&m->srv->server_id));
		ret = call_once(m->srv, &req, &rr, RESOLVE_TIMEOUT_MS);
		if (ret < 0)
			log_debug("conn", "resolve of %s: %s", s, err_str(ret));
		/* Ask again: the preferred member's answer after resolution. */
		member_release(m);
		m->answered = false;
		m->ret = 0;
		m->sc = sconn_cur(m->srv);
		if (m->sc != NULL && rpc_start(m->sc->rpc, op->req, &m->call) == 0) {
			ret = rpc_wait(m->call, CONN_CALL_TIMEOUT_MS, rep);
			if (ret == 0)
				return rep->status;
		}
		/* Fall back to what it said before, or another member's. */
		if (have_first) {
			*rep = first_rep;
			return 0;
		}
		for (size_t i = 0; i < op->n; i++) {
			if (i != (size_t)op->chosen && op->m[i].ret == 0 && op->m[i].call != NULL) {
				op->chosen = (int)i;
				ret = rpc_wait(op->m[i].call, 0, rep);
				return ret < 0 ? ret : rep->status;
			}
		}
		return ret < 0 ? ret : -EIO;
	}
	ret = rpc_wait(op->m[op->chosen].call, 0, rep);
	return ret < 0 ? ret : rep->status;
}

int conn_wait(struct conn *c, struct conn_call *cc, struct msg *rep)
{
	struct conn_op *op = cc->op;
	int ret;

	if (op == NULL)
		return -ENOTCONN;
	switch (op->kind) {
	case OP_UPDATE:
		ret = wait_update(c, op, rep);
		break;
	case OP_VALIDATE:
		ret = wait_validate(c, op, rep);
		break;
	default:
		ret = wait_read(c, op, rep);
		break;
	}
	if (ret < 0)
		conn_done(c, cc);
	return ret;
}

void conn_done(struct conn *c, struct conn_call *cc)
{
	(void)c;
	op_free(cc->op);
	cc->op = NULL;
}

uint32_t conn_call_answered_by(const struct conn_call *cc)
{
	const struct conn_op *op = cc->op;

	/* A read that moved (failover) waited on a silent member first: its
	 * time says nothing about the one that answered. */
	if (op == NULL || op->kind != OP_READ || op->n != 1 || op->chosen != 0)
		return 0;
	return atomic_load(&op->m[0].srv->server_id);
}

int conn_call(struct conn *c, struct msg *req, struct msg *rep, struct conn_call *cc)
{
	int ret = -ENOTCONN;

	cc->op = NULL;
	if (req->type == MSG_GETROOT) {
		struct timespec ts;

		/* Let the first probe round learn every server's id, so that the
		 * first update already reaches the whole AVSG. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (2 * CONN_PROBE_TIMEOUT_MS + 1000) / 1000;
		pthread_mutex_lock(&c->probe_lock);
		while (c->probe_started && !c->probe_first_done) {
			if (pthread_cond_timedwait(&c->probe_cond, &c->probe_lock, &ts) != 0)
				break;
		}
		pthread_mutex_unlock(&c->probe_lock);
		/* Any server of the realm may answer: up ones first. */
		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < c->n_servers; i++) {
				struct conn_server *srv = &c->servers[i];
				struct conn_op *op;
				struct sconn *sc;

				if (atomic_load(&srv->up) != (pass == 0))
					continue;
				ret = sconn_get(srv, false, &sc);
				if (ret < 0)
					continue;
				op = op_new(OP_SINGLE, req);
				if (op_send(op, srv, sc, req) < 0) {
					ret = op->m[0].ret;
					op_free(op);
					continue;
				}
				cc->op = op;
				ret = wait_read(c, op, rep);
				if (ret == 0) {
					struct vsg v = rep->vsg;

					atomic_store(&c->root_server, (int)i);
					if (v.n == 0) {
						v.n = 1;
						v.ids[0] = atomic_load(&srv->server_id);
					}
					vol_set(c, rep->attr.fid.vol, c->realm, &v);
					return 0;
				}
				conn_done(c, cc);
			}
		}
		return ret;
	}
	ret = conn_start(c, req, cc);
	if (ret < 0)
		return ret;
	return conn_wait(c, cc, rep);
}

int conn_start_server(struct conn *c, uint32_t server_id, struct msg *req, struct conn_call *cc)
{
	struct conn_server *srv = conn_server_by_id(c, server_id);
	struct conn_op *op;
	struct sconn *sc;
	int ret;

	cc->op = NULL;
	if (srv == NULL)
		return -ENOTCONN;
	ret = sconn_get(srv, false, &sc);
	if (ret < 0)
		return ret;
	op = op_new(OP_SINGLE, req);
	ret = op_send(op, srv, sc, req);
	if (ret < 0) {
		op_free(op);
		return ret;
	}
	cc->op = op;
	return 0;
}

int conn_call_server(struct conn *c, uint32_t server_id, struct msg *req, struct msg *rep,
		     struct conn_call *cc)
{
	struct conn_op *op;
	int ret;

	ret = conn_start_server(c, server_id, req, cc);
	if (ret < 0)
		return ret;
	op = cc->op;
	ret = rpc_wait(op->m[0].call, CONN_CALL_TIMEOUT_MS, rep);
	if (ret == 0)
		ret = rep->status;
	else if (transport_err(ret))
		conn_mark_down(op->m[0].srv, op->m[0].sc, ret);
	if (ret < 0)
		conn_done(c, cc);
	return ret;
}

size_t conn_volumes(struct conn *c, struct conn_vol_info *out, size_t max)
{
	struct cvol vols[CONN_VOLS_MAX];
	size_t n;

	pthread_mutex_lock(&c->vol_lock);
	n = c->n_vols < max ? c->n_vols : max;
	memcpy(vols, c->vols, n * sizeof(vols[0]));
	pthread_mutex_unlock(&c->vol_lock);
	for (size_t i = 0; i < n; i++) {
		struct conn_vol_info *o = &out[i];

		memset(o, 0, sizeof(*o));
		o->id = vols[i].id;
		snprintf(o->name, sizeof(o->name), "%s", vols[i].name);
		o->vsg = vols[i].vsg;
		for (uint32_t j = 0; j < vols[i].vsg.n; j++) {
			struct conn_server *srv = conn_server_by_id(c, vols[i].vsg.ids[j]);

			if (srv != NULL && atomic_load(&srv->up))
				o->avsg.ids[o->avsg.n++] = vols[i].vsg.ids[j];
		}
	}
	return n;
}

bool conn_vol_complete(struct conn *c, uint32_t vol)
{
	struct vsg vsg;
	bool known = false;

	pthread_mutex_lock(&c->vol_lock);
	struct cvol *v = vol_find_locked(c, vol);
	if (v != NULL) {
		vsg = v->vsg;
		known = true;
	}
	pthread_mutex_unlock(&c->vol_lock);
	for (uint32_t j = 0; known && j < vsg.n; j++) {
		struct conn_server *srv = conn_server_by_id(c, vsg.ids[j]);

		if (srv == NULL || !atomic_load(&srv->up))
			return false;
	}
	return true;
}

/* Stamp of vol at srv; 0 with *ok false if it cannot say. */
static uint64_t stamp_of(struct conn_server *srv, uint32_t vol, bool *ok)
{
	struct msg req, rep;

	msg_init(&req, MSG_VOLINFO);
	fid_make_root(&req.fid, vol);
	*ok = call_once(srv, &req, &rep, CONN_PROBE_TIMEOUT_MS) == 0;
	return *ok ? rep.stamp : 0;
}

void repl_rejoin_begin(struct conn_server *srv)
{
	atomic_store(&srv->behind_until_ns, now_ns() + (uint64_t)REJOIN_RESOLVE_MS * 1000000u);
}

void repl_rejoined(struct conn *c, struct conn_server *srv)
{
	struct cvol vols[CONN_VOLS_MAX];
	uint32_t id = atomic_load(&srv->server_id);
	bool any_need = false;
	size_t n;

	pthread_mutex_lock(&c->vol_lock);
	n = c->n_vols;
	memcpy(vols, c->vols, n * sizeof(vols[0]));
	pthread_mutex_unlock(&c->vol_lock);
	for (size_t i = 0; i < n; i++) {
		struct cvol *v = &vols[i];
		int slot = vsg_slot(&v->vsg, id);
		bool need, ok, ok2 = false;
		uint64_t mine, other = 0;
		struct sconn *sc;

		if (slot < 0 || v->vsg.n < 2)
			continue;
		need = (v->missed & (1u << slot)) != 0;
		mine = stamp_of(srv, v->id, &ok);
		for (uint32_t j = 0; j < v->vsg.n && !ok2; j++) {
			struct conn_server *o = conn_server_by_id(c, v->vsg.ids[j]);

			if (o != NULL && o != srv && atomic_load(&o->up))
				other = stamp_of(o, v->id, &ok2);
		}
		if (ok && ok2 && mine != other)
			need = true;
		log_info("conn", "server %u rejoined volume %u: stamps %llu/%llu%s", id, v->id,
			 (unsigned long long)mine, (unsigned long long)other,
			 need ? ", resolving" : "");
		if (!need)
			continue;
		any_need = true;
		sc = sconn_cur(srv);
		if (sc != NULL) {
			/* It missed updates: until the volume pass that brings it
			 * level is done, it stays out of our calls (avsg) unless
			 * it is the only member up, or reads would see its old
			 * state and name-based updates would apply to it. The
			 * pass answers when done, -EAGAIN if it left objects
			 * different (updates came in meanwhile): then another,
			 * shorter one. Bounded: a slow pass only ends the wait. */
			uint64_t until = now_ns() + (uint64_t)REJOIN_RESOLVE_MS * 1000000u;
			int ret = -EAGAIN;

			atomic_store(&srv->behind_until_ns, until);
			log_info("conn", "asking server %u to resolve volume %u", id, v->id);
			for (int k = 0; k < REJOIN_PASSES && ret == -EAGAIN && now_ns() < until;
			     k++) {
				struct msg req, rep;
				struct rpc_call *call = NULL;

				msg_init(&req, MSG_RESOLVE);
				fid_make_root(&req.fid, v->id);
				req.mflags = RESOLVE_VOLUME;
				ret = rpc_start(sc->rpc, &req, &call);
				/* In slices: an unmount does not wait the pass out. */
				while (ret == 0) {
					ret = rpc_wait(call, REJOIN_SLICE_MS, &rep);
					if (ret != -ETIMEDOUT)
						break;
					if (conn_stopping(c) || now_ns() >= until)
						break;
					ret = 0;
				}
				if (ret == 0)
					ret = rep.status;
				rpc_call_free(call);
			}
			/* Failed (not just -EAGAIN): it stays out of our calls
			 * until the bound, while the servers' own passes go on. */
			if (ret == 0 || ret == -EAGAIN)
				atomic_store(&srv->behind_until_ns, 0);
			if (ret < 0)
				log_debug("conn", "volume %u resolution at server %u: %s", v->id,
					  id, err_str(ret));
			sconn_put(sc);
		}
		pthread_mutex_lock(&c->vol_lock);
		struct cvol *cv = vol_find_locked(c, v->id);
		if (cv != NULL)
			cv->missed &= ~(1u << slot);
		pthread_mutex_unlock(&c->vol_lock);
	}
	/* Level everywhere (stamps alike, nothing missed): it takes calls
	 * again (repl_rejoin_begin left it out meanwhile). */
	if (!any_need)
		atomic_store(&srv->behind_until_ns, 0);
}

void conn_seed_volume(struct conn *c, uint32_t id, const char *name, const struct vsg *vsg)
{
	vol_set(c, id, name, vsg);
}
