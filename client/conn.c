/*
 * conn.c - encore-client's connections to servers.
 * Owns:    one struct conn_server per --server address and its current
 *          rpc_conn (wrapped in a reference-counted struct sconn so that a
 *          replaced connection is closed only after its last call is freed).
 * Borrows: nothing; hands breaks and losses to the owner's callbacks.
 * Locking: conn_server.lock protects cur, last_fail_ns, server_id; it is a
 *          leaf lock and is held during connect + HELLO only (bounded by
 *          CONN_CONNECT_TIMEOUT_MS + CONN_CALL_TIMEOUT_MS). Callbacks from
 *          rpc reader threads take no lock of ours.
 */
#include "client/conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/xalloc.h"

struct conn_server;

struct sconn {
	struct rpc_conn *rpc;
	atomic_int refs;
	struct conn_server *srv;
};

struct conn_server {
	struct conn *c;
	int idx;
	char *addr;
	pthread_mutex_t lock;
	struct sconn *cur;     /* protected by lock; holds one reference */
	uint64_t last_fail_ns; /* protected by lock */
	uint32_t server_id;    /* protected by lock */
	uint64_t incarnation;  /* protected by lock */
	atomic_bool up;
};

struct conn {
	char *realm;
	uint64_t client_id;
	atomic_uint_fast64_t seq;
	atomic_uint_fast64_t cb_gen;
	atomic_uint_fast64_t epoch;
	atomic_int root_server;
	conn_break_fn brk;
	conn_lost_fn lost;
	void *arg;
	size_t n_servers;
	struct conn_server *servers;
};

static void sconn_put(struct sconn *sc)
{
	if (sc != NULL && atomic_fetch_sub(&sc->refs, 1) == 1) {
		rpc_close(sc->rpc);
		free(sc);
	}
}

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
	if (c->brk != NULL)
		c->brk(c->arg, &m->fid);
}

static void on_dead(void *arg, int err)
{
	struct sconn *sc = arg;
	struct conn_server *srv = sc->srv;
	struct conn *c = srv->c;

	atomic_fetch_add(&c->epoch, 1);
	atomic_fetch_add(&c->cb_gen, 1);
	if (atomic_exchange(&srv->up, false))
		log_notice("conn", "server '%s' down: %s", srv->addr, err_str(err));
	if (c->lost != NULL)
		c->lost(c->arg, srv->idx);
}

static int hello_locked(struct conn_server *srv, struct sconn *sc)
{
	struct conn *c = srv->c;
	struct msg req, rep;
	struct rpc_call *call = NULL;
	char host[NAME_MAX_LEN + 1];
	int ret;

	msg_init(&req, MSG_HELLO);
	req.version = PROTO_VERSION;
	req.client_id = c->client_id;
	snprintf(req.realm, sizeof(req.realm), "%s", c->realm);
	if (gethostname(host, sizeof(host)) < 0 || !name_valid(host))
		snprintf(host, sizeof(host), "encore-client");
	host[sizeof(host) - 1] = '\0';
	snprintf(req.name, sizeof(req.name), "%s", host);
	ret = rpc_call(sc->rpc, &req, &rep, CONN_CALL_TIMEOUT_MS, &call);
	if (ret == 0)
		ret = rep.status;
	if (ret == 0) {
		srv->server_id = rep.server_id;
		srv->incarnation = rep.incarnation;
	}
	rpc_call_free(call);
	return ret;
}

/* Returns a new reference to a live, HELLO'd connection to srv. */
static int sconn_get(struct conn_server *srv, bool force, struct sconn **out)
{
	struct sconn *sc;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&srv->lock);
	if (srv->cur != NULL && rpc_alive(srv->cur->rpc)) {
		atomic_fetch_add(&srv->cur->refs, 1);
		*out = srv->cur;
		pthread_mutex_unlock(&srv->lock);
		return 0;
	}
	sconn_put(srv->cur);
	srv->cur = NULL;
	if (!force && srv->last_fail_ns != 0 &&
	    now_ns() - srv->last_fail_ns < CONN_RETRY_MS * 1000000ull) {
		pthread_mutex_unlock(&srv->lock);
		return -ENOTCONN;
	}
	sc = xcalloc(1, sizeof(*sc));
	sc->srv = srv;
	atomic_init(&sc->refs, 1);
	ret = rpc_open(srv->addr, CONN_CONNECT_TIMEOUT_MS, on_push, on_dead, sc, &sc->rpc);
	if (ret < 0) {
		free(sc);
		goto fail;
	}
	ret = hello_locked(srv, sc);
	if (ret < 0) {
		sconn_put(sc);
		goto fail;
	}
	srv->cur = sc;
	srv->last_fail_ns = 0;
	if (!atomic_exchange(&srv->up, true))
		log_notice("conn", "server '%s' up (id %u)", srv->addr, srv->server_id);
	atomic_fetch_add(&sc->refs, 1);
	*out = sc;
	pthread_mutex_unlock(&srv->lock);
	return 0;

fail:
	srv->last_fail_ns = now_ns();
	if (atomic_exchange(&srv->up, false))
		log_notice("conn", "server '%s' down: %s", srv->addr, err_str(ret));
	pthread_mutex_unlock(&srv->lock);
	log_debug("conn", "cannot connect to '%s': %s", srv->addr, err_str(ret));
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
	c->n_servers = n_addrs;
	c->servers = xcalloc(n_addrs ? n_addrs : 1, sizeof(*c->servers));
	for (size_t i = 0; i < n_addrs; i++) {
		struct conn_server *s = &c->servers[i];

		s->c = c;
		s->idx = (int)i;
		s->addr = xstrdup(addrs[i]);
		pthread_mutex_init(&s->lock, NULL);
		atomic_init(&s->up, false);
	}
	return c;
}

void conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_servers; i++) {
		struct conn_server *s = &c->servers[i];

		sconn_put(s->cur);
		pthread_mutex_destroy(&s->lock);
		free(s->addr);
	}
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

static int start_on(struct conn_server *srv, bool force, struct msg *req, struct conn_call *cc)
{
	struct sconn *sc;
	int ret;

	cc->sc = NULL;
	cc->call = NULL;
	ret = sconn_get(srv, force, &sc);
	if (ret < 0)
		return ret;
	ret = rpc_start(sc->rpc, req, &cc->call);
	if (ret < 0) {
		sconn_put(sc);
		cc->call = NULL;
		return ret;
	}
	cc->sc = sc;
	return 0;
}

int conn_start(struct conn *c, struct msg *req, struct conn_call *cc)
{
	if (c->n_servers == 0)
		return -ENOTCONN;
	return start_on(&c->servers[atomic_load(&c->root_server)], false, req, cc);
}

int conn_wait(struct conn *c, struct conn_call *cc, struct msg *rep)
{
	int ret = rpc_wait(cc->call, CONN_CALL_TIMEOUT_MS, rep);

	if (ret == 0)
		ret = rep->status;
	if (ret < 0)
		conn_done(c, cc);
	return ret;
}

void conn_done(struct conn *c, struct conn_call *cc)
{
	(void)c;
	rpc_call_free(cc->call);
	cc->call = NULL;
	sconn_put(cc->sc);
	cc->sc = NULL;
}

int conn_call(struct conn *c, struct msg *req, struct msg *rep, struct conn_call *cc)
{
	int ret = -ENOTCONN;

	if (req->type == MSG_GETROOT) {
		/* Any server of the realm may answer; remember the first that does. */
		for (size_t i = 0; i < c->n_servers; i++) {
			ret = start_on(&c->servers[i], false, req, cc);
			if (ret < 0)
				continue;
			ret = conn_wait(c, cc, rep);
			if (ret == 0) {
				atomic_store(&c->root_server, (int)i);
				return 0;
			}
		}
		return ret;
	}
	ret = conn_start(c, req, cc);
	if (ret < 0)
		return ret;
	return conn_wait(c, cc, rep);
}

size_t conn_check_servers(struct conn *c, struct conn_server_info *out, size_t max, bool ping)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_servers && n < max; i++, n++) {
		struct conn_server *s = &c->servers[i];
		struct conn_server_info *o = &out[n];
		struct conn_call cc;
		struct msg req, rep;
		uint64_t t0;

		memset(o, 0, sizeof(*o));
		snprintf(o->addr, sizeof(o->addr), "%s", s->addr);
		if (ping) {
			msg_init(&req, MSG_PING);
			t0 = now_ns();
			if (start_on(s, true, &req, &cc) == 0 && conn_wait(c, &cc, &rep) == 0) {
				o->rtt_us = (now_ns() - t0) / 1000;
				conn_done(c, &cc);
			}
		}
		pthread_mutex_lock(&s->lock);
		o->id = s->server_id;
		if (!ping && s->cur != NULL)
			o->rtt_us = rpc_rtt_us(s->cur->rpc);
		pthread_mutex_unlock(&s->lock);
		o->up = atomic_load(&s->up);
	}
	return n;
}
