/*
 * loop.c - the event loop of encore-server.
 * Owns:    the epoll fd, the listening socket, every connection (fd, input
 *          buffer, output queue, state, promises, partial stores), the
 *          server's meta env, store, callback table and ops.
 * Borrows: the configuration from main.c.
 * Locking: one thread, level-triggered epoll, non-blocking sockets.
 *
 * One iteration: wait for events; read what is ready; decode every complete
 * frame of every ready connection and run it inside one LMDB write txn (the
 * batch), appending replies and callback breaks to the output queues;
 * fsync the containers written and commit (ops_batch_end); only then write
 * the queues out. Nothing leaves before its commit. The reply to an update
 * that broke callbacks of other connections is held (struct held) until
 * each of them acknowledges its MSG_CB_BREAK (a reply frame with the
 * push's reqid, sent once its client has invalidated its caches and the
 * kernel's) or is closed, at the latest after BREAK_DEADLINE_MS: then
 * close-to-open holds for every client still connected. A connection whose
 * output queue is large, or that sent CALLS_IN_FLIGHT_MAX frames in this
 * iteration, is not read from until it drains.
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/msgtab.h"
#include "common/net.h"
#include "common/xalloc.h"
#include "server/callback.h"
#include "server/meta.h"
#include "server/ops.h"
#include "server/repl.h"
#include "server/resolve.h"
#include "server/store.h"

/* Output bytes queued on a connection above which we stop reading it. */
#define OUT_HIGH (4u << 20)
/* Input buffered per connection: one maximal frame plus a read's worth. */
#define IN_READ (64u << 10)
#define IN_MAX	(FRAME_HDR_LEN + FRAME_BODY_MAX + IN_READ)
/* Bytes read from one connection per iteration, for fairness. */
#define READ_BUDGET    (1u << 20)
#define MAX_EVENTS     256
#define LISTEN_BACKLOG 1024
/* Idle buffers larger than this are freed so 1000s of idle connections stay small. */
#define IDLE_BUF_KEEP (64u << 10)
/* How long an updater's reply waits for a client to acknowledge a callback
 * break before we give up on that client and close its connection (it then
 * treats every callback as broken). A healthy client answers within a
 * round trip plus a few kernel notifications; a client blocked on a
 * directory lock answers after its own bound (200 ms, client/fsops.c).
 * It must stay well under the 1 s floor of a replicated client's update
 * deadline (docs/replication.md): a holder cut off by a partition must not
 * hold an updater's reply past it, or the updater takes this reachable
 * server for down and it misses the update. 600 ms leaves the update
 * itself 400 ms of that second. */
#define BREAK_DEADLINE_MS 600
/* Pending COP2 entries are swept for expiry this often: they expire after
 * minutes (REPL_COP2_TTL_S), so a minute late is no loss, and an idle sweep
 * costs one short read transaction. */
#define COP2_GC_PERIOD_MS 60000

struct conn;

/* A reply held until the callback breaks of its update are acknowledged.
 * The updater is named by fd and id, not by pointer: it may close first. */
struct held {
	int fd;
	uint64_t conn_id;
	unsigned n_wait; /* breaks not yet acknowledged or given up on */
	struct wr frame; /* owned: the encoded reply */
};

/* A MSG_CB_BREAK pushed with reqid, awaiting the holder's acknowledgement.
 * Linked in the server's list (creation order = deadline order) and in the
 * holder connection's list (the order it acknowledges in). */
struct pbrk {
	uint32_t reqid;
	struct conn *holder;
	struct held *h; /* NULL if no reply waits on it */
	uint64_t deadline_ns;
	struct pbrk *sprev, *snext;
	struct pbrk *cprev, *cnext;
};

/* A FETCH reply's data queued as a container segment: sent with sendfile()
 * once the output queue has been sent up to position at, which is where its
 * frame head (msg_encode_head) ends. */
struct oseg {
	size_t at;	   /* position in conn.out */
	int fd;		   /* owned: the container */
	off_t off;	   /* next byte to send */
	size_t len;	   /* bytes left to send */
	struct oseg *next; /* queued after it */
};

struct conn {
	int fd;
	uint64_t id;
	uint32_t state; /* CS_* */
	char peer[64];
	uint8_t *in; /* owned */
	size_t in_len, in_cap;
	struct wr out; /* owned: queued frames, sent from out_off */
	size_t out_off;
	struct oseg *seg_head, *seg_tail; /* owned: segments in out, in order */
	size_t seg_bytes;		  /* their bytes left to send */
	bool closing;			  /* close once the output is sent */
	bool broken;			  /* protocol error: process nothing more */
	bool dead;			  /* close at the end of this iteration */
	bool touched;			  /* on srv->touched this iteration */
	bool listed;			  /* on srv->work this iteration */
	bool pending;			  /* complete frames still buffered */
	uint32_t events;		  /* registered with epoll */
	struct pbrk *brk_head, *brk_tail; /* breaks it has not acknowledged, oldest first */
	struct cb_holder holder;
	struct store_set stores;
	struct ops_conn oc;
};

struct server {
	const struct server_cfg *cfg;
	int epfd;
	int lfd;
	struct conn **byfd; /* indexed by fd */
	size_t n_byfd;
	uint64_t next_id;
	struct meta *meta;
	struct store *store;
	struct cbtab *cb;
	struct ops *ops;
	struct msg *req;    /* scratch, owned */
	struct msg *rep;    /* scratch, owned */
	struct conn **work; /* connections to process this iteration */
	size_t n_work, cap_work;
	struct conn **touched; /* connections with new output this iteration */
	size_t n_touched, cap_touched;
	struct resolver *res; /* resolution thread (server/resolve.c) */
	int res_tag;	      /* its eventfd's epoll tag is &res_tag */
	time_t proto_log_at;  /* rate limit of protocol error lines */
	unsigned proto_suppressed;
	struct pbrk *brk_head, *brk_tail; /* unacknowledged breaks, earliest deadline first */
	uint32_t next_brk_reqid;
	struct conn *cur;      /* connection whose request ops_exec runs, or NULL */
	struct held *cur_held; /* the reply of that request, once it breaks a callback */
	/* Collection of pending COP2 entries (cop2_gc): when the next step is
	 * due (CLOCK_MONOTONIC ms), and where a sweep in progress resumes. */
	int64_t cop2_gc_at;
	bool cop2_gc_more;
	uint8_t cop2_gc_next[REPL_COP2_KEY_LEN];
};

static void push_conn(struct conn ***v, size_t *n, size_t *cap, struct conn *c)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = c;
}

static void touch(struct server *s, struct conn *c)
{
	if (!c->touched) {
		c->touched = true;
		push_conn(&s->touched, &s->n_touched, &s->cap_touched, c);
	}
}

static void trace(struct server *s, const char *dir, const struct conn *c, const struct msg *m)
{
	char buf[1024];
	if (!s->cfg->trace)
		return;
	msg_fmt(m, buf, sizeof(buf));
	log_notice("trace", "%s %s %s", dir, c->peer, buf);
}

/* Queues m on c (nothing is sent before the batch commits). */
static void queue_msg(struct server *s, struct conn *c, const struct msg *m)
{
	int ret = msg_encode(&c->out, m);
	if (ret < 0) {
		log_err("loop", "cannot encode %s reply: %s", msg_name(m->type), err_str(ret));
		struct msg e;
		memset(&e, 0, sizeof(e));
		e.type = m->type;
		e.flags = m->flags;
		e.reqid = m->reqid;
		e.status = -EIO;
		if (msg_encode(&c->out, &e) < 0)
			c->dead = true;
	}
	trace(s, "->", c, m);
	touch(s, c);
}

/* Queues rep, a FETCH reply whose data stays in its container fd (taken
 * from ops_take_segment; owned from here): the frame head now, the data
 * with sendfile() when the queue gets there. */
static void queue_seg(struct server *s, struct conn *c, const struct msg *rep, int fd, uint64_t off)
{
	struct oseg *g;
	int ret = msg_encode_head(&c->out, rep);

	if (ret < 0) {
		close(fd);
		log_err("loop", "cannot encode %s reply: %s", msg_name(rep->type), err_str(ret));
		struct msg e;
		msg_init_reply(&e, rep, -EIO);
		queue_msg(s, c, &e);
		return;
	}
	g = xmalloc(sizeof(*g));
	g->at = c->out.len;
	g->fd = fd;
	g->off = (off_t)off;
	g->len = rep->data_len;
	g->next = NULL;
	if (c->seg_tail != NULL)
		c->seg_tail->next = g;
	else
		c->seg_head = g;
	c->seg_tail = g;
	c->seg_bytes += g->len;
	trace(s, "->", c, rep);
	touch(s, c);
}

static void seg_pop(struct conn *c)
{
	struct oseg *g = c->seg_head;

	c->seg_head = g->next;
	if (c->seg_head == NULL)
		c->seg_tail = NULL;
	c->seg_bytes -= g->len;
	close(g->fd);
	free(g);
}

/* A status-only reply for a frame we could not decode (any type). */
static void queue_status(struct server *s, struct conn *c, uint16_t type, uint32_t reqid, int err)
{
	uint8_t *p = wr_reserve(&c->out, FRAME_HDR_LEN + 4);
	le_put_u32(p, 4);
	le_put_u16(p + 4, type);
	le_put_u16(p + 6, FRAME_F_REPLY);
	le_put_u32(p + 8, reqid);
	le_put_u32(p + 12, err_to_status(err));
	touch(s, c);
}

/* Protocol violation: reply if we can, log one rate-limited line, close. */
static void proto_error(struct server *s, struct conn *c, uint16_t type, uint32_t reqid,
			const char *why, const uint8_t *sample, size_t len)
{
	time_t now = time(NULL);

	queue_status(s, c, type, reqid, -EPROTO);
	c->closing = true;
	c->broken = true;
	if (now == s->proto_log_at) {
		s->proto_suppressed++;
		return;
	}
	char smp[LOG_SAMPLE_LEN];
	log_sample(smp, sample, len > 128 ? 128 : len);
	log_warn("loop", "protocol error from %s: %s (type %u, %u similar suppressed) '%s'",
		 c->peer, why, type, s->proto_suppressed, smp);
	s->proto_log_at = now;
	s->proto_suppressed = 0;
}

/* One waiter of h is done: once none is left, queues the reply on its
 * updater (if still connected) and frees h. */
static void held_put(struct server *s, struct held *h)
{
	struct conn *c = NULL;

	if (h == NULL || --h->n_wait > 0)
		return;
	if ((size_t)h->fd < s->n_byfd)
		c = s->byfd[h->fd];
	if (c != NULL && c->id == h->conn_id && !c->dead) {
		wr_bytes(&c->out, h->frame.buf, h->frame.len);
		touch(s, c);
	}
	wr_release(&h->frame);
	free(h);
}

/* Break b is acknowledged or given up on: unlinks and frees it. */
static void pbrk_done(struct server *s, struct pbrk *b)
{
	struct conn *c = b->holder;

	if (b->sprev != NULL)
		b->sprev->snext = b->snext;
	else
		s->brk_head = b->snext;
	if (b->snext != NULL)
		b->snext->sprev = b->sprev;
	else
		s->brk_tail = b->sprev;
	if (b->cprev != NULL)
		b->cprev->cnext = b->cnext;
	else
		c->brk_head = b->cnext;
	if (b->cnext != NULL)
		b->cnext->cprev = b->cprev;
	else
		c->brk_tail = b->cprev;
	held_put(s, b->h);
	free(b);
}

/* c closes (or is given up on): its breaks count as acknowledged, since
 * its client must treat every callback as broken once it sees the loss. */
static void brk_conn_gone(struct server *s, struct conn *c)
{
	while (c->brk_head != NULL)
		pbrk_done(s, c->brk_head);
}

/* Records a break pushed to c; returns its reqid. The reply of the request
 * running now (s->cur), if any, waits for it. */
static uint32_t brk_new(struct server *s, struct conn *c)
{
	struct pbrk *b = xcalloc(1, sizeof(*b));

	if (s->next_brk_reqid == 0)
		s->next_brk_reqid = 1;
	b->reqid = s->next_brk_reqid++;
	b->holder = c;
	b->deadline_ns = now_ns() + (uint64_t)BREAK_DEADLINE_MS * 1000000u;
	if (s->cur != NULL) {
		if (s->cur_held == NULL) {
			s->cur_held = xcalloc(1, sizeof(*s->cur_held));
			s->cur_held->fd = s->cur->fd;
			s->cur_held->conn_id = s->cur->id;
			wr_init(&s->cur_held->frame);
		}
		b->h = s->cur_held;
		b->h->n_wait++;
	}
	b->sprev = s->brk_tail;
	if (s->brk_tail != NULL)
		s->brk_tail->snext = b;
	else
		s->brk_head = b;
	s->brk_tail = b;
	b->cprev = c->brk_tail;
	if (c->brk_tail != NULL)
		c->brk_tail->cnext = b;
	else
		c->brk_head = b;
	c->brk_tail = b;
	return b->reqid;
}

/* Milliseconds until the earliest break deadline, at most max_ms. */
static int brk_timeout_ms(const struct server *s, int max_ms)
{
	uint64_t now = now_ns(), left;

	if (s->brk_head == NULL)
		return max_ms;
	if (s->brk_head->deadline_ns <= now)
		return 0;
	left = (s->brk_head->deadline_ns - now + 999999u) / 1000000u;
	return left < (uint64_t)max_ms ? (int)left : max_ms;
}

/* A client acknowledged break reqid (a MSG_CB_BREAK reply frame). */
static void brk_reply(struct server *s, struct conn *c, uint32_t reqid, const uint8_t *body,
		      size_t len)
{
	struct msg *m = s->req;

	if (msg_decode(m, MSG_CB_BREAK, FRAME_F_REPLY, reqid, body, len) < 0) {
		proto_error(s, c, MSG_CB_BREAK, reqid, "malformed break acknowledgement", body,
			    len);
		return;
	}
	trace(s, "<-", c, m);
	for (struct pbrk *b = c->brk_head; b != NULL; b = b->cnext) {
		if (b->reqid == reqid) {
			ops_stats(s->ops)->cb_acks++;
			pbrk_done(s, b);
			return;
		}
	}
	log_debug("loop", "%s acknowledged unknown break %u", c->peer, reqid);
}

static void on_break(void *arg, void *owner, const struct fid *fid)
{
	struct server *s = arg;
	struct conn *c = owner;
	struct msg m;

	if (c->dead)
		return;
	msg_init(&m, MSG_CB_BREAK);
	m.flags = FRAME_F_PUSH;
	m.fid = *fid;
	/* A connection that stopped reading will never answer: reqid 0. */
	if (!c->closing && !c->broken)
		m.reqid = brk_new(s, c);
	queue_msg(s, c, &m);
}

/* Keeps rep, the reply of an update that broke callbacks, in s->cur_held
 * until they are acknowledged (held_put sends it). */
static void hold_reply(struct server *s, struct conn *c, const struct msg *rep)
{
	struct held *h = s->cur_held;
	int ret;

	s->cur_held = NULL;
	ret = msg_encode(&h->frame, rep);
	if (ret < 0) {
		log_err("loop", "cannot encode %s reply: %s", msg_name(rep->type), err_str(ret));
		struct msg e;
		msg_init_reply(&e, rep, -EIO);
		if (msg_encode(&h->frame, &e) < 0)
			c->dead = true;
	}
	trace(s, "-> (held)", c, rep);
	touch(s, c); /* a failed commit must kill it, reply held or not */
}

static void handle_frame(struct server *s, struct conn *c, uint16_t type, uint16_t flags,
			 uint32_t reqid, const uint8_t *body, size_t len)
{
	struct msg *req = s->req, *rep = s->rep;
	int ret;

	if (flags == FRAME_F_REPLY && type == MSG_CB_BREAK && (c->state & CS_READY) &&
	    !c->oc.server) {
		brk_reply(s, c, reqid, body, len);
		return;
	}
	if (flags != 0) {
		proto_error(s, c, type, reqid, "reply or push flag on a request", body, len);
		return;
	}
	if (msg_states(type) == 0) {
		/* Unknown type: answer, keep the connection (a newer peer). */
		queue_status(s, c, type, reqid, -ENOSYS);
		return;
	}
	ret = msg_decode(req, type, flags, reqid, body, len);
	if (ret < 0) {
		proto_error(s, c, type, reqid, "malformed message", body, len);
		return;
	}
	trace(s, "<-", c, req);
	if (!(msg_states(type) & c->state)) {
		proto_error(s, c, type, reqid, "message not allowed in this state", body, len);
		return;
	}
	msg_init_reply(rep, req, 0);
	switch (type) {
	case MSG_HELLO: {
		const struct srvinfo *info = ops_info(s->ops);
		if (req->version != PROTO_VERSION) {
			rep->status = -ERR_BADVERSION;
			c->closing = true;
			c->broken = true;
			log_info("loop", "%s speaks protocol version %u", c->peer, req->version);
			break;
		}
		c->state = CS_READY;
		if (strncmp(req->name, "server:", 7) == 0) {
			/* A peer's resolver. Authentication comes with the security
			 * work; until then the name is taken at its word. */
			c->state |= CS_SERVER;
			c->oc.server = true;
		}
		rep->version = PROTO_VERSION;
		rep->server_id = info->server_id;
		rep->incarnation = info->incarnation;
		snprintf(rep->realm, sizeof(rep->realm), "%s", info->realm);
		break;
	}
	case MSG_CB_BREAK:
	case MSG_CTL:
		rep->status = -ENOTSUP;
		break;
	case MSG_RESOLVE:
	case MSG_REPAIR: {
		/* The resolver answers later (deliver_resolved); the loop never
		 * waits on the network. */
		struct res_job *j = xcalloc(1, sizeof(*j));
		j->kind = type == MSG_RESOLVE ? RES_JOB_RESOLVE : RES_JOB_REPAIR;
		j->fid = req->fid;
		j->mflags = req->mflags;
		j->server_id = req->server_id;
		j->fd = c->fd;
		j->conn_id = c->id;
		j->type = type;
		j->reqid = reqid;
		resolver_submit(s->res, j);
		return;
	}
	default: {
		uint64_t off;
		int fd;

		s->cur = c;
		ops_exec(s->ops, &c->oc, req, rep);
		s->cur = NULL;
		fd = ops_take_segment(s->ops, &off);
		if (fd < 0)
			break;
		if (rep->status == 0 && s->cur_held == NULL) {
			queue_seg(s, c, rep, fd, off);
			return;
		}
		/* A FETCH breaks no callback, so is never held; if it were, or it
		 * failed after all, its data is not sent from the file. */
		close(fd);
		if (rep->status == 0)
			rep->status = -EIO;
		break;
	}
	}
	if (s->cur_held != NULL)
		hold_reply(s, c, rep);
	else
		queue_msg(s, c, rep);
}

static void work(struct server *s, struct conn *c);

/* Sends the replies of finished RESOLVE and REPAIR jobs. */
static void deliver_resolved(struct server *s)
{
	struct res_job *j = resolver_take_done(s->res);

	while (j != NULL) {
		struct res_job *next = j->next;
		struct conn *c = (size_t)j->fd < s->n_byfd ? s->byfd[j->fd] : NULL;
		if (c != NULL && c->id == j->conn_id && !c->dead) {
			struct msg *rep = s->rep;
			memset(rep, 0, sizeof(*rep));
			rep->type = j->type;
			rep->flags = FRAME_F_REPLY;
			rep->reqid = j->reqid;
			rep->status = j->status;
			rep->attr = j->attr;
			queue_msg(s, c, rep);
			work(s, c);
		}
		free(j);
		j = next;
	}
}

static struct conn *conn_new(struct server *s, int fd)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->id = ++s->next_id;
	c->state = CS_NEW;
	c->oc.segments = true;
	wr_init(&c->out);
	cb_holder_init(&c->holder, c);
	store_set_init(&c->stores);
	c->oc.holder = &c->holder;
	c->oc.stores = &c->stores;
	net_peer_str(fd, c->peer, sizeof(c->peer));
	if ((size_t)fd >= s->n_byfd) {
		size_t n = s->n_byfd ? s->n_byfd : 1024;
		while (n <= (size_t)fd)
			n *= 2;
		s->byfd = xrealloc(s->byfd, n * sizeof(*s->byfd));
		memset(s->byfd + s->n_byfd, 0, (n - s->n_byfd) * sizeof(*s->byfd));
		s->n_byfd = n;
	}
	s->byfd[fd] = c;
	return c;
}

static void conn_free(struct server *s, struct conn *c)
{
	struct ops_stats *st = ops_stats(s->ops);

	ops_conn_release(s->ops, &c->oc);
	brk_conn_gone(s, c);
	s->byfd[c->fd] = NULL;
	close(c->fd);
	free(c->in);
	wr_release(&c->out);
	while (c->seg_head != NULL)
		seg_pop(c);
	st->connections--;
	log_debug("loop", "closed %s", c->peer);
	free(c);
}

static void accept_all(struct server *s)
{
	struct ops_stats *st = ops_stats(s->ops);

	for (int i = 0; i < 256; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("loop", "accept: %s", strerror(errno));
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = conn_new(s, fd);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_warn("loop", "epoll_ctl: %s", strerror(errno));
			c->dead = true;
			st->connections++;
			conn_free(s, c);
			continue;
		}
		c->events = EPOLLIN;
		st->connections++;
		st->connections_total++;
		log_debug("loop", "connection from %s", c->peer);
	}
}

static size_t out_pending(const struct conn *c)
{
	return c->out.len - c->out_off + c->seg_bytes;
}

static void conn_read(struct conn *c)
{
	size_t total = 0;

	while (total < READ_BUDGET && c->in_len < IN_MAX) {
		if (c->in_cap - c->in_len < IN_READ && c->in_cap < IN_MAX) {
			size_t n = c->in_cap ? c->in_cap * 2 : IN_READ;
			if (n > IN_MAX)
				n = IN_MAX;
			c->in = xrealloc(c->in, n);
			c->in_cap = n;
		}
		size_t room = c->in_cap - c->in_len;
		ssize_t n = read(c->fd, c->in + c->in_len, room);
		if (n > 0) {
			c->in_len += (size_t)n;
			total += (size_t)n;
			if ((size_t)n < room)
				return;
			continue;
		}
		if (n == 0) {
			c->closing = true; /* peer finished sending: answer, then close */
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			c->dead = true;
		return;
	}
}

/* Runs the complete frames buffered on c, at most CALLS_IN_FLIGHT_MAX. */
static void conn_process(struct server *s, struct conn *c)
{
	size_t pos = 0;
	unsigned n = 0;

	c->pending = false;
	while (!c->dead && !c->broken && c->in_len - pos >= FRAME_HDR_LEN) {
		uint16_t type, flags;
		uint32_t reqid;
		long bl = frame_parse_header(c->in + pos, &type, &flags, &reqid);
		if (bl < 0) {
			proto_error(s, c, type, reqid, "frame too large", c->in + pos,
				    c->in_len - pos);
			pos = c->in_len;
			break;
		}
		if (c->in_len - pos - FRAME_HDR_LEN < (size_t)bl)
			break;
		if (c->broken)
			break;
		if (n >= CALLS_IN_FLIGHT_MAX || out_pending(c) >= OUT_HIGH) {
			c->pending = true;
			break;
		}
		handle_frame(s, c, type, flags, reqid, c->in + pos + FRAME_HDR_LEN, (size_t)bl);
		pos += FRAME_HDR_LEN + (size_t)bl;
		n++;
	}
	if (pos > 0) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
	if (c->in_len == 0 && c->in_cap > IDLE_BUF_KEEP) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
}

/* Sends the queue: bytes of out up to the next segment, then the segment
 * from its file, and so on; partial sends resume on EPOLLOUT. */
static void conn_flush(struct conn *c)
{
	while (out_pending(c) > 0) {
		struct oseg *g = c->seg_head;
		size_t end = g != NULL ? g->at : c->out.len;
		ssize_t n;

		if (c->out_off < end) {
			/* MSG_MORE: a frame head goes out with its data. */
			n = send(c->fd, c->out.buf + c->out_off, end - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT | (g != NULL ? MSG_MORE : 0));
			if (n > 0) {
				c->out_off += (size_t)n;
				continue;
			}
		} else {
			n = sendfile(c->fd, g->fd, &g->off, g->len);
			if (n > 0) {
				g->len -= (size_t)n;
				c->seg_bytes -= (size_t)n;
				if (g->len == 0)
					seg_pop(c);
				continue;
			}
			if (n == 0) {
				/* The container shrank: it never does once installed. */
				log_err("loop", "container of a FETCH reply to %s ended early",
					c->peer);
				c->dead = true;
				return;
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		c->dead = true;
		return;
	}
	if (out_pending(c) == 0) {
		if (c->out.cap > IDLE_BUF_KEEP) {
			wr_release(&c->out);
			wr_init(&c->out);
		} else {
			wr_reset(&c->out);
		}
		c->out_off = 0;
		if (c->closing)
			c->dead = true;
	}
}

static void conn_arm(struct server *s, struct conn *c)
{
	uint32_t want = 0;
	if (!c->closing && out_pending(c) < OUT_HIGH && !c->pending && c->in_len < IN_MAX)
		want |= EPOLLIN;
	if (out_pending(c) > 0)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = c };
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		c->dead = true;
	c->events = want;
}

static void work(struct server *s, struct conn *c)
{
	if (!c->listed) {
		c->listed = true;
		push_conn(&s->work, &s->n_work, &s->cap_work, c);
	}
}

/* Closes every connection that let a break pass its deadline. */
static void brk_expire(struct server *s)
{
	uint64_t now = now_ns();

	while (s->brk_head != NULL && s->brk_head->deadline_ns <= now) {
		struct conn *c = s->brk_head->holder;

		log_warn("loop", "%s did not acknowledge a callback break in %d ms, closing",
			 c->peer, BREAK_DEADLINE_MS);
		ops_stats(s->ops)->cb_timeouts++;
		c->dead = true;
		brk_conn_gone(s, c);
		work(s, c); /* freed at the end of this iteration */
	}
}

/* Between iterations, with no transaction open: one step of the
 * collection of pending COP2 entries whose phase two never came (older than
 * REPL_COP2_TTL_S or --cop2-ttl; server/repl.c says why dropping them is
 * safe). A step is one transaction over at most REPL_COP2_GC_BATCH entries;
 * a sweep goes on at the next iteration while entries remain, the next one
 * starts COP2_GC_PERIOD_MS (at most half the age bound) later. */
static void cop2_gc(struct server *s)
{
	struct timespec mono, wall;
	struct meta_txn *t;
	uint8_t next[REPL_COP2_KEY_LEN];
	size_t n = 0;
	bool more = false;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	int64_t now = (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;
	if (now < s->cop2_gc_at)
		return;
	/* --cop2-ttl (tests, operators) shortens the age and the period. */
	uint64_t ttl = s->cfg->cop2_ttl_s != 0 ? s->cfg->cop2_ttl_s : REPL_COP2_TTL_S;
	int64_t period =
		(int64_t)ttl * 500 < COP2_GC_PERIOD_MS ? (int64_t)ttl * 500 : COP2_GC_PERIOD_MS;
	clock_gettime(CLOCK_REALTIME, &wall);
	uint64_t before = (uint64_t)wall.tv_sec > ttl ? (uint64_t)wall.tv_sec - ttl : 0;
	ret = meta_begin(s->meta, NULL, false, &t);
	if (ret == 0) {
		ret = repl_cop2_gc(t, before, REPL_COP2_GC_BATCH,
				   s->cop2_gc_more ? s->cop2_gc_next : NULL, next, &n, &more);
		if (ret == 0 && n > 0)
			ret = meta_commit(t);
		else
			meta_abort(t);
	}
	if (ret < 0) {
		log_warn("loop", "cannot collect pending COP2 entries: %s", err_str(ret));
		n = 0;
		more = false;
	}
	if (n > 0) {
		ops_stats(s->ops)->cop2_expired += n;
		log_debug("loop", "dropped %zu pending COP2 entries older than %" PRIu64 " s", n,
			  ttl);
	}
	s->cop2_gc_more = more;
	if (more)
		memcpy(s->cop2_gc_next, next, sizeof(next));
	s->cop2_gc_at = more ? now : now + period;
}

/* One loop iteration after epoll_wait returned n events. */
static void iterate(struct server *s, struct epoll_event *evs, int n, struct conn **carry,
		    size_t n_carry)
{
	brk_expire(s);
	for (size_t i = 0; i < n_carry; i++)
		if (carry[i] != NULL)
			work(s, carry[i]);
	for (int i = 0; i < n; i++) {
		if (evs[i].data.ptr == NULL) {
			accept_all(s);
			continue;
		}
		if (evs[i].data.ptr == &s->res_tag) {
			deliver_resolved(s);
			continue;
		}
		struct conn *c = evs[i].data.ptr;
		if (evs[i].events & EPOLLIN)
			conn_read(c);
		else if (evs[i].events & (EPOLLERR | EPOLLHUP))
			c->dead = true;
		work(s, c);
	}
	for (size_t i = 0; i < s->n_work; i++)
		conn_process(s, s->work[i]);

	if (ops_batch_end(s->ops) < 0) {
		/* The commit failed: no update of this batch may be acknowledged,
		 * and reads may have seen it. Drop every connection that got
		 * output; its clients reconnect and revalidate. */
		for (size_t i = 0; i < s->n_touched; i++)
			s->touched[i]->dead = true;
	}
	for (size_t i = 0; i < s->n_touched; i++) {
		struct conn *c = s->touched[i];
		c->touched = false;
		work(s, c);
	}
	s->n_touched = 0;
	for (size_t i = 0; i < s->n_work; i++) {
		struct conn *c = s->work[i];
		if (!c->dead)
			conn_flush(c);
		if (!c->dead)
			conn_arm(s, c);
	}
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("loop", "cannot raise open file limit: %s", strerror(errno));
	}
}

/* Opens the store and bumps the incarnation. */
static int open_dir(struct server *s, struct srvinfo *info)
{
	char path[4096];
	struct meta_txn *t;
	int ret;

	snprintf(path, sizeof(path), "%s/meta", s->cfg->dir);
	ret = meta_open(path, false, &s->meta);
	if (ret < 0) {
		log_err("loop", "cannot open metadata '%s': %s", path, err_str(ret));
		return ret;
	}
	ret = store_open(s->cfg->dir, &s->store);
	if (ret < 0) {
		log_err("loop", "cannot open containers in '%s': %s", s->cfg->dir, err_str(ret));
		return ret;
	}
	ret = meta_begin(s->meta, NULL, false, &t);
	if (ret < 0)
		return ret;
	ret = meta_info_get(t, info);
	if (ret < 0) {
		meta_abort(t);
		log_err("loop", "'%s' is not an initialised server directory: %s", s->cfg->dir,
			err_str(ret));
		return ret;
	}
	info->incarnation++;
	ret = meta_info_put(t, info);
	if (ret < 0) {
		meta_abort(t);
		return ret;
	}
	return meta_commit(t);
}

static int announce(struct server *s, uint16_t port)
{
	if (s->cfg->port_file != NULL) {
		char buf[16];
		int n = snprintf(buf, sizeof(buf), "%u\n", port);
		int ret = fs_write_atomic(s->cfg->port_file, buf, (size_t)n, 0644);
		if (ret < 0) {
			log_err("loop", "cannot write port file '%s': %s", s->cfg->port_file,
				err_str(ret));
			return ret;
		}
	}
	if (s->cfg->ready_fd >= 0) {
		ssize_t n;
		do
			n = write(s->cfg->ready_fd, "\n", 1);
		while (n < 0 && errno == EINTR);
		close(s->cfg->ready_fd);
	}
	return 0;
}

/* Starts the resolver over the root volume's VSG, reaching this server
 * through its own listening address. */
static int start_resolver(struct server *s, const struct srvinfo *info, uint16_t port)
{
	struct resolver_cfg rc;
	struct meta_txn *t;
	char host[256];
	uint32_t slot;
	int ret;

	memset(&rc, 0, sizeof(rc));
	rc.peers = s->cfg->peers;
	rc.self_id = info->server_id;
	rc.vol = info->root_vol;
	snprintf(rc.realm, sizeof(rc.realm), "%s", info->realm);
	ret = meta_begin(s->meta, NULL, true, &t);
	if (ret < 0)
		return ret;
	ret = repl_vsg(t, info->root_vol, info->server_id, &rc.vsg, &slot);
	meta_abort(t);
	if (ret < 0) {
		log_err("loop", "cannot read the root volume: %s", err_str(ret));
		return ret;
	}
	snprintf(host, sizeof(host), "%s", s->cfg->listen);
	char *colon = strrchr(host, ':');
	if (colon != NULL)
		*colon = '\0';
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strcmp(host, "[::]") == 0)
		snprintf(host, sizeof(host), "[::1]");
	snprintf(rc.self_addr, sizeof(rc.self_addr), "%s:%u", host, port);
	ret = resolver_start(&rc, &s->res);
	if (ret < 0) {
		log_err("loop", "cannot start the resolver: %s", err_str(ret));
		return ret;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &s->res_tag };
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, resolver_fd(s->res), &ev) < 0)
		return -errno;
	return 0;
}

int server_run(const struct server_cfg *cfg, volatile sig_atomic_t *stop)
{
	struct server s = { .cfg = cfg, .epfd = -1, .lfd = -1 };
	struct epoll_event evs[MAX_EVENTS];
	struct srvinfo info;
	struct conn **carry = NULL;
	size_t n_carry = 0, cap_carry = 0;
	uint16_t port = 0;
	int ret;

	raise_nofile();
	ret = open_dir(&s, &info);
	if (ret < 0)
		goto out;
	s.cb = cbtab_new();
	s.ops = ops_new(cfg->dir, s.meta, s.store, s.cb, &info, on_break, &s);
	s.req = xmalloc(sizeof(*s.req));
	s.rep = xmalloc(sizeof(*s.rep));

	s.lfd = net_listen(cfg->listen, LISTEN_BACKLOG, &port);
	if (s.lfd < 0) {
		ret = s.lfd;
		log_err("loop", "cannot listen on '%s': %s", cfg->listen, err_str(ret));
		goto out;
	}
	s.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s.epfd < 0) {
		ret = -errno;
		goto out;
	}
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.lfd, &lev) < 0) {
		ret = -errno;
		goto out;
	}
	log_notice("loop", "serving '%s' realm '%s' server %u incarnation %" PRIu64 " on port %u",
		   cfg->dir, info.realm, info.server_id, info.incarnation, port);
	ret = start_resolver(&s, &info, port);
	if (ret < 0)
		goto out;
	ret = announce(&s, port);
	if (ret < 0)
		goto out;

	while (!*stop) {
		/* Touched outside an iteration: a held reply released when its
		 * last waiter closed. */
		int tmo = n_carry > 0 || s.n_touched > 0 ? 0 : brk_timeout_ms(&s, 1000);
		int n = epoll_wait(s.epfd, evs, MAX_EVENTS, tmo);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			log_err("loop", "epoll_wait: %s", strerror(errno));
			break;
		}
		iterate(&s, evs, n, carry, n_carry);
		cop2_gc(&s);
		/* Close the dead, carry the connections with frames left over. */
		n_carry = 0;
		for (size_t i = 0; i < s.n_work; i++) {
			struct conn *c = s.work[i];
			c->listed = false;
			if (c->dead)
				conn_free(&s, c);
			else if (c->pending)
				push_conn(&carry, &n_carry, &cap_carry, c);
		}
		s.n_work = 0;
	}
	log_notice("loop", "stopping");
out:
	if (s.lfd >= 0) {
		close(s.lfd); /* the resolver's reconnects fail at once from now on */
		s.lfd = -1;
	}
	for (size_t fd = 0; fd < s.n_byfd; fd++)
		if (s.byfd[fd] != NULL)
			conn_free(&s, s.byfd[fd]);
	resolver_stop(s.res);
	free(s.byfd);
	free(s.work);
	free(s.touched);
	free(carry);
	free(s.req);
	free(s.rep);
	ops_free(s.ops);
	cbtab_free(s.cb);
	if (s.lfd >= 0)
		close(s.lfd);
	if (s.epfd >= 0)
		close(s.epfd);
	store_close(s.store);
	meta_close(s.meta);
	return ret;
}
