/*
 * conn.c - encore-client's connections to servers.
 * Owns:    one struct conn_server per --server address and its current
 *          rpc_conn (wrapped in a reference-counted struct sconn so that a
 *          replaced connection is closed only after its last call is freed),
 *          up/down state, RTT estimates and deadlines, the prober thread.
 * Borrows: nothing; hands breaks and losses to the owner's callbacks.
 *          Volumes and calls are in conn_repl.c (shared state: conn_i.h).
 * Locking: conn_server.lock protects cur, last_fail_ns, incarnation, RTT;
 *          it is held during connect + HELLO only (bounded by the connect
 *          and HELLO deadlines). Callbacks from rpc reader threads take only
 *          conn_server.lock, never across I/O.
 */
#include "client/conn.h"
#include "client/conn_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/thread.h"
#include "common/xalloc.h"

void sconn_put(struct sconn *sc)
{
	if (sc != NULL && atomic_fetch_sub(&sc->refs, 1) == 1) {
		rpc_close(sc->rpc);
		free(sc);
	}
}

/* A callback break to acknowledge; holds a reference to its connection. */
struct conn_brk {
	struct sconn *sc;
	uint16_t type;	/* of the push */
	uint32_t reqid; /* of the push, non-zero */
};

static void on_push(void *arg, const struct msg *m)
{
	struct sconn *sc = arg;
	struct conn *c = sc->srv->c;

	if (m->type != MSG_CB_BREAK) {
		log_warn("conn", "server '%s' pushed unexpected message %u", sc->srv->addr,
			 m->type);
		return;
	}
	atomic_fetch_add(&c->cb_gen, 1);
	if (c->brk == NULL) {
		if (m->reqid != 0)
			rpc_reply_push(sc->rpc, m, 0);
		return;
	}
	struct conn_brk *brk = NULL;
	if (m->reqid != 0) {
		brk = xmalloc(sizeof(*brk));
		atomic_fetch_add(&sc->refs, 1);
		brk->sc = sc;
		brk->type = m->type;
		brk->reqid = m->reqid;
	}
	c->brk(c->arg, &m->fid, brk);
}

void conn_break_ack(struct conn_brk *brk)
{
	struct msg push;

	if (brk == NULL)
		return;
	msg_init(&push, brk->type);
	push.reqid = brk->reqid;
	rpc_reply_push(brk->sc->rpc, &push, 0);
	sconn_put(brk->sc);
	free(brk);
}

/* Detaches srv->cur (caller holds srv->lock); returns it for the caller
 * to put once the lock is released. */
static struct sconn *detach_locked(struct conn_server *srv)
{
	struct sconn *sc = srv->cur;

	srv->cur = NULL;
	if (sc != NULL)
		atomic_store(&sc->dropped, true);
	return sc;
}

/* Server loss: the caller saw it go (dead socket, missed deadline).
 * Every callback from it is void: bump the epoch. Lock-free (reader
 * threads call it). Returns true if it was up. */
static bool mark_lost(struct conn_server *srv, int err)
{
	struct conn *c = srv->c;

	if (!atomic_exchange(&srv->up, false))
		return false;
	log_notice("conn", "server '%s' (id %u) down: %s", srv->addr, atomic_load(&srv->server_id),
		   err_str(err));
	atomic_fetch_add(&c->epoch, 1);
	atomic_fetch_add(&c->cb_gen, 1);
	return true;
}

static void on_dead(void *arg, int err)
{
	struct sconn *sc = arg;
	struct conn_server *srv = sc->srv;
	struct conn *c = srv->c;

	/* Runs on sc's reader thread: takes no lock that is held while a
	 * connection is closed (closing joins this thread). */
	if (atomic_load(&sc->dropped))
		return; /* a connection we already dropped */
	if (mark_lost(srv, err) && c->lost != NULL)
		c->lost(c->arg, srv->idx);
	pthread_mutex_lock(&c->probe_lock);
	pthread_cond_signal(&c->probe_cond);
	pthread_mutex_unlock(&c->probe_lock);
}

void conn_mark_down(struct conn_server *srv, struct sconn *sc, int err)
{
	struct conn *c = srv->c;
	struct sconn *drop = NULL;
	bool was_up;

	pthread_mutex_lock(&srv->lock);
	if (srv->cur != NULL && (sc == NULL || srv->cur == sc)) {
		drop = detach_locked(srv);
	} else if (sc != NULL && srv->cur != NULL) {
		/* Already replaced by a fresh connection: that one stands. */
		pthread_mutex_unlock(&srv->lock);
		return;
	}
	was_up = mark_lost(srv, err);
	pthread_mutex_unlock(&srv->lock);
	/* Shuts the socket down now so that every call pending on it fails
	 * (an update waiting on a frozen member a hedged read left behind
	 * must not wait out its own deadline); the memory goes with the last
	 * call's reference. Its reader's on_dead sees it dropped. */
	if (drop != NULL)
		rpc_kill(drop->rpc, err);
	sconn_put(drop);
	if (was_up && c->lost != NULL)
		c->lost(c->arg, srv->idx);
}

void conn_rtt_sample(struct conn_server *srv, uint64_t us)
{
	/* It answered: reads need not avoid it any more (repl: pick_read). */
	atomic_store(&srv->slow_ns, 0);
	pthread_mutex_lock(&srv->lock);
	if (srv->srtt_us == 0) {
		srv->srtt_us = us;
		srv->rttvar_us = us / 2;
	} else {
		uint64_t d = us > srv->srtt_us ? us - srv->srtt_us : srv->srtt_us - us;

		srv->rttvar_us = (3 * srv->rttvar_us + d) / 4;
		srv->srtt_us = (7 * srv->srtt_us + us) / 8;
	}
	pthread_mutex_unlock(&srv->lock);
}

void conn_bw_sample(struct conn *c, uint32_t server_id, uint64_t bytes, uint64_t ns)
{
	struct conn_server *srv = conn_server_by_id(c, server_id);
	uint_fast64_t old, est;
	double kbps;

	if (srv == NULL || bytes == 0)
		return;
	/* bytes per ms = KB/s; bounded so that the smoothing cannot overflow. */
	kbps = ns > 0 ? (double)bytes * 1e6 / (double)ns : 1e12;
	if (kbps < 1)
		kbps = 1;
	else if (kbps > 1e12)
		kbps = 1e12;
	old = atomic_load(&srv->bw_kbps);
	do {
		est = old == 0 ? (uint64_t)kbps : old - old / 4 + (uint64_t)kbps / 4;
		if (est == 0)
			est = 1;
	} while (!atomic_compare_exchange_weak(&srv->bw_kbps, &old, est));
	log_debug("conn", "server %u: %llu bytes in %llu us: %.0f KB/s, estimate %llu KB/s",
		  server_id, (unsigned long long)bytes, (unsigned long long)(ns / 1000), kbps,
		  (unsigned long long)est);
}

uint64_t conn_bw_kbps(struct conn *c, uint32_t server_id)
{
	struct conn_server *srv = conn_server_by_id(c, server_id);

	return srv != NULL ? atomic_load(&srv->bw_kbps) : 0;
}

void conn_bw_forget(struct conn *c)
{
	for (size_t i = 0; i < c->n_servers; i++)
		atomic_store(&c->servers[i].bw_kbps, 0);
}

int conn_deadline_ms(struct conn_server *srv, bool update)
{
	uint64_t ms;
	int floor = update ? CONN_UPDATE_FLOOR_MS : CONN_READ_FLOOR_MS;

	pthread_mutex_lock(&srv->lock);
	ms = (4 * srv->srtt_us + 4 * srv->rttvar_us) / 1000;
	pthread_mutex_unlock(&srv->lock);
	if (ms < (uint64_t)floor)
		ms = (uint64_t)floor;
	if (ms > CONN_DEADLINE_CAP_MS)
		ms = CONN_DEADLINE_CAP_MS;
	return (int)ms;
}

int conn_hedge_ms(struct conn_server *srv)
{
	uint64_t ms;
	int cap = conn_deadline_ms(srv, false) / 2;

	pthread_mutex_lock(&srv->lock);
	ms = (3 * srv->srtt_us + 2 * srv->rttvar_us) / 1000;
	pthread_mutex_unlock(&srv->lock);
	if (ms < CONN_HEDGE_FLOOR_MS)
		ms = CONN_HEDGE_FLOOR_MS;
	if (ms > (uint64_t)cap)
		ms = (uint64_t)cap;
	return (int)ms;
}

struct conn_server *conn_server_by_id(struct conn *c, uint32_t id)
{
	if (id == 0)
		return NULL;
	for (size_t i = 0; i < c->n_servers; i++) {
		if (atomic_load(&c->servers[i].server_id) == id)
			return &c->servers[i];
	}
	return NULL;
}

static int hello_locked(struct conn_server *srv, struct sconn *sc, int timeout_ms)
{
	struct conn *c = srv->c;
	struct msg req, rep;
	struct rpc_call *call = NULL;
	char host[NAME_MAX_LEN + 1];
	uint64_t t0 = now_ns();
	int ret;

	msg_init(&req, MSG_HELLO);
	req.version = PROTO_VERSION;
	req.client_id = c->client_id;
	snprintf(req.realm, sizeof(req.realm), "%s", c->realm);
	if (gethostname(host, sizeof(host)) < 0 || !name_valid(host))
		snprintf(host, sizeof(host), "encore-client");
	host[sizeof(host) - 1] = '\0';
	snprintf(req.name, sizeof(req.name), "%s", host);
	ret = rpc_call(sc->rpc, &req, &rep, timeout_ms, &call);
	if (ret == 0)
		ret = rep.status;
	if (ret == 0) {
		uint32_t old = atomic_exchange(&srv->server_id, rep.server_id);

		if (old != 0 && old != rep.server_id)
			log_warn("conn", "server '%s' changed its id from %u to %u", srv->addr, old,
				 rep.server_id);
		srv->incarnation = rep.incarnation;
		uint64_t us = (now_ns() - t0) / 1000;
		if (srv->srtt_us == 0) {
			srv->srtt_us = us ? us : 1;
			srv->rttvar_us = srv->srtt_us / 2;
		}
	}
	rpc_call_free(call);
	return ret;
}

/* Connects and says HELLO; installs the connection as srv->cur and marks
 * srv up. Caller holds srv->lock. */
static int connect_locked(struct conn_server *srv, int connect_ms, int hello_ms, bool *rejoined)
{
	struct sconn *sc;
	int ret;

	*rejoined = false;
	log_debug("conn", "connecting to '%s'%s", srv->addr,
		  srv->cur != NULL ? " (replacing)" : "");
	/* Safe under srv->lock: reader threads never take it. */
	sconn_put(detach_locked(srv));
	sc = xcalloc(1, sizeof(*sc));
	sc->srv = srv;
	atomic_init(&sc->refs, 1);
	ret = rpc_open(srv->addr, connect_ms, on_push, on_dead, sc, &sc->rpc);
	if (ret < 0) {
		free(sc);
		return ret;
	}
	ret = hello_locked(srv, sc, hello_ms);
	if (ret < 0) {
		atomic_store(&sc->dropped, true);
		sconn_put(sc);
		return ret;
	}
	srv->cur = sc;
	atomic_store(&srv->last_fail_ns, 0);
	atomic_store(&srv->slow_ns, 0);
	/* Back after a loss: it may have missed updates. Out of our calls
	 * from its first moment up until its rejoin (repl_rejoined, on its
	 * own thread) has compared stamps and had it brought level: a read
	 * answered by it meanwhile could hand back its old state. */
	if (!atomic_load(&srv->up) && atomic_load(&srv->ever_up))
		repl_rejoin_begin(srv);
	if (!atomic_exchange(&srv->up, true)) {
		log_notice("conn", "server '%s' up (id %u)", srv->addr,
			   atomic_load(&srv->server_id));
		*rejoined = atomic_exchange(&srv->ever_up, true);
	}
	return 0;
}

static void rejoin_start(struct conn_server *srv);

int sconn_get(struct conn_server *srv, bool force, struct sconn **out)
{
	struct conn *c = srv->c;
	bool rejoined = false;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&srv->lock);
	if (srv->cur != NULL && rpc_alive(srv->cur->rpc) && atomic_load(&srv->up)) {
		atomic_fetch_add(&srv->cur->refs, 1);
		*out = srv->cur;
		pthread_mutex_unlock(&srv->lock);
		return 0;
	}
	uint64_t lf = atomic_load(&srv->last_fail_ns);
	if (!force && lf != 0 && now_ns() - lf < CONN_RETRY_MS * 1000000ull) {
		pthread_mutex_unlock(&srv->lock);
		return -ENOTCONN;
	}
	ret = connect_locked(srv, CONN_CONNECT_TIMEOUT_MS, CONN_CALL_TIMEOUT_MS, &rejoined);
	if (ret < 0) {
		bool was_up = mark_lost(srv, ret);

		atomic_store(&srv->last_fail_ns, now_ns());
		pthread_mutex_unlock(&srv->lock);
		if (was_up && c->lost != NULL)
			c->lost(c->arg, srv->idx);
		log_debug("conn", "cannot connect to '%s': %s", srv->addr, err_str(ret));
		return ret;
	}
	atomic_fetch_add(&srv->cur->refs, 1);
	*out = srv->cur;
	pthread_mutex_unlock(&srv->lock);
	if (rejoined) {
		/* Callbacks it granted before it went away are void. */
		atomic_fetch_add(&c->epoch, 1);
		atomic_fetch_add(&c->cb_gen, 1);
		if (c->lost != NULL)
			c->lost(c->arg, srv->idx);
		rejoin_start(srv); /* as when a probe finds it back */
	}
	return 0;
}

struct sconn *sconn_cur(struct conn_server *srv)
{
	struct sconn *sc = NULL;

	pthread_mutex_lock(&srv->lock);
	if (srv->cur != NULL && atomic_load(&srv->up) && rpc_alive(srv->cur->rpc)) {
		sc = srv->cur;
		atomic_fetch_add(&sc->refs, 1);
	}
	pthread_mutex_unlock(&srv->lock);
	return sc;
}

bool conn_stopping(struct conn *c)
{
	bool stop;

	pthread_mutex_lock(&c->probe_lock);
	stop = c->probe_stop;
	pthread_mutex_unlock(&c->probe_lock);
	return stop;
}

static void *rejoin_main(void *arg)
{
	struct conn_server *srv = arg;
	struct conn *c = srv->c;

	for (;;) {
		repl_rejoined(c, srv);
		pthread_mutex_lock(&c->probe_lock);
		if (!srv->rejoin_again || c->probe_stop) {
			srv->rejoin_running = false;
			srv->rejoin_again = false;
			c->n_rejoins--;
			pthread_cond_broadcast(&c->probe_cond);
			pthread_mutex_unlock(&c->probe_lock);
			return NULL;
		}
		srv->rejoin_again = false;
		pthread_mutex_unlock(&c->probe_lock);
	}
}

/* srv came back after a loss: its rejoin (stamps compared, the volume pass
 * that brings it level waited for, up to 20 s) runs on a thread of its own.
 * Run inline it held up the prober: another server back meanwhile stayed
 * out of every call for the whole wait, and if the one member then up
 * failed, the client had none with its latest versions. */
static void rejoin_start(struct conn_server *srv)
{
	struct conn *c = srv->c;
	pthread_t t;
	int ret;

	pthread_mutex_lock(&c->probe_lock);
	if (c->probe_stop) {
		pthread_mutex_unlock(&c->probe_lock);
		return;
	}
	if (srv->rejoin_running) {
		srv->rejoin_again = true;
		pthread_mutex_unlock(&c->probe_lock);
		return;
	}
	srv->rejoin_running = true;
	c->n_rejoins++;
	pthread_mutex_unlock(&c->probe_lock);
	ret = thread_start(&t, true, rejoin_main, srv);
	if (ret < 0) {
		log_warn("conn", "no thread for the rejoin of '%s': %s", srv->addr, err_str(ret));
		pthread_mutex_lock(&c->probe_lock);
		srv->rejoin_running = false;
		c->n_rejoins--;
		pthread_mutex_unlock(&c->probe_lock);
		repl_rejoined(c, srv);
	}
}

/* One probe of a down server: connect, HELLO, PING, each with a short
 * deadline. On success the server is up again. */
static void probe_one(struct conn_server *srv)
{
	struct conn *c = srv->c;
	struct msg req, rep;
	struct rpc_call *call = NULL;
	bool rejoined = false;
	int ret;

	pthread_mutex_lock(&srv->lock);
	if (atomic_load(&srv->up) && srv->cur != NULL && rpc_alive(srv->cur->rpc)) {
		pthread_mutex_unlock(&srv->lock);
		return;
	}
	ret = connect_locked(srv, CONN_PROBE_TIMEOUT_MS, CONN_PROBE_TIMEOUT_MS, &rejoined);
	if (ret == 0) {
		msg_init(&req, MSG_PING);
		uint64_t t0 = now_ns();
		ret = rpc_call(srv->cur->rpc, &req, &rep, CONN_PROBE_TIMEOUT_MS, &call);
		if (ret == 0)
			ret = rep.status;
		rpc_call_free(call);
		if (ret == 0) {
			uint64_t us = (now_ns() - t0) / 1000;

			srv->srtt_us = us ? us : 1;
			srv->rttvar_us = srv->srtt_us / 2;
		} else {
			atomic_store(&srv->up, false);
			sconn_put(detach_locked(srv));
		}
	}
	if (ret < 0) {
		/* Not last_fail_ns: that backs off callers' own connects, and a
		 * caller must be able to try a server that just came back. */
		atomic_store(&srv->up, false);
		pthread_mutex_unlock(&srv->lock);
		log_debug("conn", "probe of '%s' failed: %s", srv->addr, err_str(ret));
		return;
	}
	pthread_mutex_unlock(&srv->lock);
	if (rejoined) {
		atomic_fetch_add(&c->epoch, 1);
		atomic_fetch_add(&c->cb_gen, 1);
		if (c->lost != NULL)
			c->lost(c->arg, srv->idx);
		rejoin_start(srv);
	}
}

static void *prober_main(void *arg)
{
	struct conn *c = arg;

	for (;;) {
		struct timespec ts;

		for (size_t i = 0; i < c->n_servers; i++) {
			struct conn_server *srv = &c->servers[i];

			if (!atomic_load(&srv->up))
				probe_one(srv);
		}
		pthread_mutex_lock(&c->probe_lock);
		if (!c->probe_first_done) {
			c->probe_first_done = true;
			pthread_cond_broadcast(&c->probe_cond);
		}
		if (c->probe_stop) {
			pthread_mutex_unlock(&c->probe_lock);
			break;
		}
		deadline_in_ms(&ts, CLOCK_MONOTONIC, CONN_PROBE_MS);
		pthread_cond_timedwait(&c->probe_cond, &c->probe_lock, &ts);
		if (c->probe_stop) {
			pthread_mutex_unlock(&c->probe_lock);
			break;
		}
		pthread_mutex_unlock(&c->probe_lock);
	}
	return NULL;
}

int conn_start_probes(struct conn *c)
{
	int ret = thread_start(&c->prober, false, prober_main, c);

	if (ret == 0)
		c->probe_started = true;
	return ret;
}

struct conn *conn_new(const char *realm, const char *const *addrs, size_t n_addrs,
		      conn_break_fn brk, conn_lost_fn lost, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->realm = xstrdup(realm);
	do {
		randombytes_buf(&c->client_id, sizeof(c->client_id));
	} while (c->client_id == 0);
	atomic_init(&c->seq, 0);
	atomic_init(&c->cb_gen, 1);
	atomic_init(&c->epoch, 1);
	atomic_init(&c->root_server, 0);
	c->brk = brk;
	c->lost = lost;
	c->arg = arg;
	if (n_addrs > CONN_SERVERS_MAX) {
		log_warn("conn", "using the first %d of %zu servers", CONN_SERVERS_MAX, n_addrs);
		n_addrs = CONN_SERVERS_MAX;
	}
	c->n_servers = n_addrs;
	c->servers = xcalloc(n_addrs ? n_addrs : 1, sizeof(*c->servers));
	for (size_t i = 0; i < n_addrs; i++) {
		struct conn_server *s = &c->servers[i];

		s->c = c;
		s->idx = (int)i;
		s->addr = xstrdup(addrs[i]);
		pthread_mutex_init(&s->lock, NULL);
		atomic_init(&s->up, false);
		atomic_init(&s->ever_up, false);
		atomic_init(&s->server_id, 0);
		atomic_init(&s->last_fail_ns, 0);
		atomic_init(&s->slow_ns, 0);
		atomic_init(&s->bw_kbps, 0);
	}
	pthread_mutex_init(&c->probe_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->probe_cond, &ca);
	pthread_condattr_destroy(&ca);
	repl_init(c);
	return c;
}

void conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->probe_started) {
		pthread_mutex_lock(&c->probe_lock);
		c->probe_stop = true;
		pthread_cond_broadcast(&c->probe_cond);
		pthread_mutex_unlock(&c->probe_lock);
		pthread_join(c->prober, NULL);
		/* Rejoin threads use the servers: they see probe_stop within
		 * a slice of their waits. */
		pthread_mutex_lock(&c->probe_lock);
		while (c->n_rejoins > 0)
			pthread_cond_wait(&c->probe_cond, &c->probe_lock);
		pthread_mutex_unlock(&c->probe_lock);
	}
	/* Before the servers go: its watcher thread uses them. */
	repl_release(c);
	for (size_t i = 0; i < c->n_servers; i++) {
		struct conn_server *s = &c->servers[i];

		pthread_mutex_lock(&s->lock);
		struct sconn *sc = detach_locked(s);
		pthread_mutex_unlock(&s->lock);
		sconn_put(sc);
		pthread_mutex_destroy(&s->lock);
		free(s->addr);
	}
	pthread_cond_destroy(&c->probe_cond);
	pthread_mutex_destroy(&c->probe_lock);
	free(c->servers);
	free(c->realm);
	free(c);
}

uint64_t conn_client_id(struct conn *c)
{
	return c->client_id;
}

void conn_next_storeid(struct conn *c, struct storeid *sid)
{
	sid->client = c->client_id;
	sid->seq = atomic_fetch_add(&c->seq, 1) + 1;
}

uint64_t conn_cb_gen(struct conn *c)
{
	return atomic_load(&c->cb_gen);
}

void conn_cb_gen_bump(struct conn *c)
{
	atomic_fetch_add(&c->cb_gen, 1);
}

uint64_t conn_epoch(struct conn *c)
{
	return atomic_load(&c->epoch);
}

size_t conn_check_servers(struct conn *c, struct conn_server_info *out, size_t max, bool ping)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_servers && n < max; i++, n++) {
		struct conn_server *s = &c->servers[i];
		struct conn_server_info *o = &out[n];
		struct rpc_call *call = NULL;
		struct sconn *sc;
		struct msg req, rep;
		uint64_t t0;

		memset(o, 0, sizeof(*o));
		snprintf(o->addr, sizeof(o->addr), "%s", s->addr);
		if (ping) {
			/* A forced probe: a down server is tried now, not at the
			 * next probe round, with the probe's short deadlines. */
			pthread_mutex_lock(&s->lock);
			bool have = atomic_load(&s->up) && s->cur != NULL && rpc_alive(s->cur->rpc);
			pthread_mutex_unlock(&s->lock);
			if (!have)
				probe_one(s);
			sc = sconn_cur(s);
			if (sc != NULL) {
				int ret;

				msg_init(&req, MSG_PING);
				t0 = now_ns();
				ret = rpc_call(sc->rpc, &req, &rep, conn_deadline_ms(s, false),
					       &call);
				if (ret == 0 && rep.status == 0) {
					o->rtt_us = (now_ns() - t0) / 1000;
					conn_rtt_sample(s, o->rtt_us ? o->rtt_us : 1);
				} else if (ret == -ETIMEDOUT || ret == -ENOTCONN ||
					   ret == -EPROTO) {
					conn_mark_down(s, sc, ret);
				}
				rpc_call_free(call);
				sconn_put(sc);
			}
		}
		pthread_mutex_lock(&s->lock);
		if (!ping)
			o->rtt_us = s->srtt_us;
		pthread_mutex_unlock(&s->lock);
		o->id = atomic_load(&s->server_id);
		o->up = atomic_load(&s->up);
		o->bw_kbps = atomic_load(&s->bw_kbps);
	}
	return n;
}

size_t conn_up_servers(struct conn *c, uint32_t *ids, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_servers && n < max; i++) {
		struct conn_server *s = &c->servers[i];
		uint32_t id = atomic_load(&s->server_id);

		if (atomic_load(&s->up) && id != 0)
			ids[n++] = id;
	}
	return n;
}
