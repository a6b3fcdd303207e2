/*
 * conn_i.h - private state of the conn module, shared by conn.c (servers,
 * connections, probes) and conn_repl.c (volumes, multicast updates, read
 * failover, validation, resolution requests). Not for other modules.
 *
 * Lock order: conn.vol_lock -> conn_server.lock; conn.store_lock and
 * conn.probe_lock are leaves. No lock of ours is held across a network
 * wait, except conn_server.lock during connect + HELLO (sconn_get).
 */
#ifndef CLIENT_CONN_I_H
#define CLIENT_CONN_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/conn.h"
#include "common/proto.h"
#include "common/rpc.h"

/* Servers a client can use: members are kept in 64-bit masks. */
#define CONN_SERVERS_MAX 64
/* Volumes whose VSG we remember (one per mounted volume; bounded). */
#define CONN_VOLS_MAX 64
/* Stores in progress whose member set we track (one per file being
 * stored; each FUSE worker stores at most one at a time). */
#define CONN_STORES_MAX 128

struct conn_server;

/* One live connection; reference counted so that a replaced or dropped
 * connection is closed only after its last call is freed. */
struct sconn {
	struct rpc_conn *rpc;
	atomic_int refs;
	struct conn_server *srv;
	atomic_bool dropped; /* no longer srv->cur: its death means nothing */
};

struct conn_server {
	struct conn *c;
	int idx;
	char *addr;
	pthread_mutex_t lock;
	struct sconn *cur; /* protected by lock; holds one reference */
	atomic_uint_fast64_t last_fail_ns;
	uint64_t incarnation;  /* protected by lock */
	uint64_t srtt_us;      /* protected by lock: smoothed RTT of our calls, 0 = none */
	uint64_t rttvar_us;    /* protected by lock: RTT variation (RFC 6298) */
	atomic_uint server_id; /* 0 until the first HELLO answers */
	atomic_bool up;	       /* in the AVSG of every volume it serves */
	atomic_bool ever_up;   /* answered a HELLO at least once */
	/* Rejoined behind the others: left out of calls (avsg) while another
	 * member is up, until then (now_ns clock; 0: not behind), see
	 * repl_rejoined. */
	atomic_uint_fast64_t behind_until_ns;
	/* A read was hedged away from it (or a validation left it out) and it
	 * has not answered since (now_ns clock; 0: not slow): reads go to
	 * other members first. Cleared by conn_rtt_sample and a new
	 * connection. */
	atomic_uint_fast64_t slow_ns;
	/* Smoothed bandwidth of bulk transfers with it, KB/s; 0: not measured
	 * (conn_bw_sample). */
	atomic_uint_fast64_t bw_kbps;
	/* Its rejoin (repl_rejoined) runs on a thread of its own, so that the
	 * prober goes on probing the others meanwhile; again: it rejoined
	 * once more while that ran. Both protected by c->probe_lock. */
	bool rejoin_running, rejoin_again;
};

/* What the client knows of one volume. */
struct cvol {
	uint32_t id;
	char name[NAME_MAX_LEN + 1];
	struct vsg vsg;
	uint32_t missed; /* VSG slots that missed an update of ours while down */
};

/* A store in progress: the servers it started on and those that failed a
 * chunk (they are not part of its update set). */
struct cstore {
	uint64_t handle; /* 0 = free entry */
	uint64_t members;
	uint64_t failed;
	uint64_t t_ns; /* last use, for eviction of abandoned stores */
};

struct repl_watch;

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
	conn_gate_fn gate; /* immutable after start (conn_set_gate) */
	void *gate_arg;
	size_t n_servers;
	struct conn_server *servers;

	pthread_mutex_t vol_lock;
	struct cvol vols[CONN_VOLS_MAX]; /* protected by vol_lock */
	size_t n_vols;			 /* protected by vol_lock */

	pthread_mutex_t store_lock;
	struct cstore stores[CONN_STORES_MAX]; /* protected by store_lock */

	/* Calls of hedged reads left behind, until their deadlines (owned by
	 * conn_repl.c; its own lock, a leaf). */
	struct repl_watch *watch;

	pthread_mutex_t probe_lock;
	pthread_cond_t probe_cond;
	bool probe_stop;       /* protected by probe_lock */
	bool probe_first_done; /* protected by probe_lock: first round finished */
	bool probe_started;
	pthread_t prober;
	unsigned n_rejoins; /* protected by probe_lock: rejoin threads running */
};

/* conn.c */
void sconn_put(struct sconn *sc);
/* Returns a new reference to srv's live connection, connecting (and
 * HELLO) if needed unless the last attempt failed recently and !force. */
int sconn_get(struct conn_server *srv, bool force, struct sconn **out);
/* A new reference to srv's current live connection, never connecting;
 * NULL if it has none or it is marked down. */
struct sconn *sconn_cur(struct conn_server *srv);
/* Marks srv down (out of every AVSG), drops its connection if it is still
 * sc (or any if sc is NULL), breaks every callback from it. err says why. */
void conn_mark_down(struct conn_server *srv, struct sconn *sc, int err);
/* Records an RTT sample of a successful call to srv. */
void conn_rtt_sample(struct conn_server *srv, uint64_t us);
/* Deadline for one call to srv: max(floor, 4 srtt + 4 rttvar), capped. */
int conn_deadline_ms(struct conn_server *srv, bool update);
/* Hedge delay of a read to srv: max(CONN_HEDGE_FLOOR_MS, 3 srtt +
 * 2 rttvar), at most half its read deadline. */
int conn_hedge_ms(struct conn_server *srv);
/* The server with this id, or NULL. */
struct conn_server *conn_server_by_id(struct conn *c, uint32_t id);

/* conn_repl.c */
/* Called by the prober when srv answers again: compares volume stamps and
 * asks it to resolve the volumes it may have missed. */
void repl_rejoined(struct conn *c, struct conn_server *srv);
/* srv is coming back after a loss: left out of calls (behind_until_ns)
 * until repl_rejoined finds it level or has it resolved. */
void repl_rejoin_begin(struct conn_server *srv);
/* True once conn_free began: long waits (repl_rejoined) end early. */
bool conn_stopping(struct conn *c);
void repl_init(struct conn *c);
/* Stops the watcher thread (conn_repl.c) and frees what repl_init made;
 * called before the servers are torn down. */
void repl_release(struct conn *c);

#endif /* CLIENT_CONN_I_H */
