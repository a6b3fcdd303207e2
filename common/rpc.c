/*
 * rpc.c - client side of an Encore connection: multiplexed blocking calls
 * over one socket, with a reader thread matching replies by reqid.
 * Owns:    the socket, the reader thread, the pending-call list and the
 *          reply buffers (each handed to its call and freed with it).
 * Locking: c->send_lock serialises whole frames on the socket; c->lock
 *          protects the pending list, the sticky error, refs and rtt. Lock
 *          order: send_lock before lock. Callbacks run with no lock held.
 * Lifetime: the connection is reference counted: the owner holds one
 *          reference (dropped by rpc_close) and every call holds one
 *          (dropped by rpc_call_free), so calls may be waited on and freed
 *          while or after the owner closes the connection.
 */
#include "common/rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/net.h"
#include "common/thread.h"
#include "common/xalloc.h"

/* One rpc_wait_any in progress: woken by whichever of its calls is done
 * first. Lives on the waiter's stack; lock order: rpc_conn.lock before
 * waiter.lock. */
struct rpc_waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled with lock when fired is set */
	bool fired;	     /* protected by lock */
};

struct rpc_call {
	struct rpc_conn *c;	      /* holds a reference */
	struct rpc_call *prev, *next; /* in c->pending while listed; protected by c->lock */
	bool listed;		      /* protected by c->lock */
	bool done;		      /* protected by c->lock */
	int err;		      /* protected by c->lock: transport error once done */
	pthread_cond_t cond;	      /* signalled with c->lock when done is set */
	uint32_t reqid;
	uint16_t type;
	uint64_t t_sent; /* now_ns() when the request was sent */
	uint64_t rtt_us; /* protected by c->lock: send to reply, once answered (>= 1) */
	uint8_t *buf;	 /* owned: reply body; rep.data points into it */
	struct msg rep;	 /* valid once done && err == 0 */
	int sink_fd;	 /* borrowed, -1: where the reply's F_DATA payload goes */
	uint64_t sink_off;
	bool sink_busy;		   /* protected by c->lock: the reader writes into the sink */
	bool sink_abandon;	   /* protected by c->lock: freed or dropped, write no more */
	bool sink_writing;	   /* protected by c->lock: the reader is writing fd now */
	struct rpc_waiter *waiter; /* protected by c->lock: rpc_wait_any to wake, or NULL */
};

/* Bytes of a sink call's reply body read before its F_DATA payload: every
 * field ahead of F_DATA must fit (a FETCH reply's take 165). */
#define SINK_HEAD 1024
/* Pipe between the socket and a sink file: the most one splice moves. */
#define SINK_PIPE (1u << 20)
/* Bounce buffer of the reader where splice is not possible. */
#define SINK_SCRATCH (64u << 10)
/* How long rpc_call_free waits for the rest of a reply being received into
 * a freed call's sink (a live server sends it at once) before it kills the
 * connection, which a stalled server would otherwise hold forever. */
#define SINK_DRAIN_MS 1000

struct rpc_conn {
	int fd; /* closed by rpc_close after the reader is joined */
	pthread_t reader;
	rpc_push_fn push;
	rpc_dead_fn dead;
	void *arg;

	pthread_mutex_t send_lock; /* serialises frames on fd */

	pthread_mutex_t lock;
	pthread_cond_t slot_cond; /* signalled when n_pending drops or the conn dies */
	int err;		  /* protected by lock: sticky, 0 while alive */
	bool closing;		  /* protected by lock: rpc_close was called */
	unsigned refs;		  /* protected by lock */
	uint32_t next_reqid;	  /* protected by lock */
	struct rpc_call *pending; /* protected by lock: list of calls awaiting replies */
	unsigned n_pending;	  /* protected by lock */
	uint64_t srtt_us;	  /* protected by lock */

	/* The reader thread's own, for sink calls (closed when it exits). */
	int pipe[2];	  /* -1 until the first sink call */
	size_t pipe_sz;	  /* its capacity */
	bool no_splice;	  /* splice failed with EINVAL: copy */
	uint8_t *scratch; /* SINK_SCRATCH bytes, allocated on first use */
};

/* Sets call done (caller holds its connection's lock) and wakes whoever
 * waits for it. */
static void call_done_locked(struct rpc_call *call)
{
	call->done = true;
	if (call->waiter != NULL) {
		pthread_mutex_lock(&call->waiter->lock);
		call->waiter->fired = true;
		pthread_cond_signal(&call->waiter->cond);
		pthread_mutex_unlock(&call->waiter->lock);
	}
}

static void unlist_locked(struct rpc_conn *c, struct rpc_call *call)
{
	if (!call->listed)
		return;
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		c->pending = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
	call->listed = false;
	c->n_pending--;
	pthread_cond_signal(&c->slot_cond);
}

/* Poisons the connection: records err (first one wins), fails every pending
 * call and wakes the reader by shutting the socket down. */
static void conn_fail_locked(struct rpc_conn *c, int err)
{
	int call_err;

	if (c->err == 0)
		c->err = err;
	call_err = c->err == -EPROTO ? -EPROTO : -ENOTCONN;
	while (c->pending != NULL) {
		struct rpc_call *call = c->pending;
		unlist_locked(c, call);
		call->err = call_err;
		call_done_locked(call);
		pthread_cond_signal(&call->cond);
	}
	pthread_cond_broadcast(&c->slot_cond);
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
}

static void conn_put(struct rpc_conn *c)
{
	bool last;

	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	pthread_cond_destroy(&c->slot_cond);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	free(c);
}

/* Reads exactly len bytes; -ENOTCONN on EOF, -errno on failure. */
static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = recv(fd, buf + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOTCONN;
		done += (size_t)n;
	}
	return 0;
}

static int send_full(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	if (fd < 0)
		return -ENOTCONN;
	while (done < len) {
		ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Completes a listed call with reply m (body buf, owned from here) or with
 * err (a sink that failed). */
static void complete_locked(struct rpc_conn *c, struct rpc_call *call, const struct msg *m,
			    uint8_t *buf, int err)
{
	uint64_t sample = (now_ns() - call->t_sent) / 1000u;

	if (sample == 0)
		sample = 1;
	c->srtt_us = c->srtt_us == 0 ? sample : (7 * c->srtt_us + sample) / 8;
	call->rtt_us = sample;
	unlist_locked(c, call);
	call->rep = *m;
	call->buf = buf;
	call->err = err;
	call_done_locked(call);
	pthread_cond_broadcast(&call->cond);
}

/* The pending sink call a reply with this reqid and type answers, marked
 * busy (rpc_call_free waits until the reader lets go), or NULL. */
static struct rpc_call *sink_claim(struct rpc_conn *c, uint32_t reqid, uint16_t type)
{
	struct rpc_call *call;

	pthread_mutex_lock(&c->lock);
	for (call = c->pending; call != NULL; call = call->next) {
		if (call->reqid == reqid)
			break;
	}
	if (call != NULL && (call->sink_fd < 0 || call->type != type))
		call = NULL;
	if (call != NULL)
		call->sink_busy = true;
	pthread_mutex_unlock(&c->lock);
	return call;
}

/* Before the reader writes into call's sink: false, with *serr set, if the
 * sink was dropped or the call freed meanwhile (or *serr is already set);
 * else call is marked as writing until sink_write_end, and
 * rpc_call_drop_sink waits for that. */
static bool sink_write_begin(struct rpc_conn *c, struct rpc_call *call, int *serr)
{
	pthread_mutex_lock(&c->lock);
	if (call->sink_abandon && *serr == 0)
		*serr = -ECANCELED;
	call->sink_writing = *serr == 0;
	pthread_mutex_unlock(&c->lock);
	return *serr == 0;
}

static void sink_write_end(struct rpc_conn *c, struct rpc_call *call)
{
	pthread_mutex_lock(&c->lock);
	call->sink_writing = false;
	pthread_cond_broadcast(&call->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Copies len bytes from `from` (the socket, or the pipe holding that many)
 * to call's fd at off through the scratch buffer; once *serr is set, or with
 * fd -1, the bytes are only read. Returns 0 or a transport error. */
static int sink_copy(struct rpc_conn *c, struct rpc_call *call, int from, size_t len, int fd,
		     uint64_t off, int *serr)
{
	while (len > 0) {
		ssize_t k = read(from, c->scratch, len < SINK_SCRATCH ? len : SINK_SCRATCH);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return from == c->fd ? -errno : -EIO;
		if (k == 0)
			return -ENOTCONN;
		if (*serr == 0 && fd >= 0 && sink_write_begin(c, call, serr)) {
			*serr = fs_pwrite_all(fd, c->scratch, (size_t)k, (off_t)off);
			sink_write_end(c, call);
		}
		off += (uint64_t)k;
		len -= (size_t)k;
	}
	return 0;
}

/* Moves len payload bytes from the socket to fd at off: spliced through the
 * reader's pipe (the data never enters user space), or copied where splice
 * is not possible. A failure to write fd is recorded in *serr and the rest
 * of the payload is read and dropped, which keeps the stream in frame.
 * Returns 0 or a transport error. */
static int sink_move(struct rpc_conn *c, struct rpc_call *call, size_t len, uint64_t off, int *serr)
{
	int fd = call->sink_fd;

	if (c->scratch == NULL)
		c->scratch = xmalloc(SINK_SCRATCH);
	if (c->pipe[0] < 0 && !c->no_splice) {
		if (pipe2(c->pipe, O_CLOEXEC) < 0) {
			c->pipe[0] = c->pipe[1] = -1;
			c->no_splice = true;
		} else {
			/* Larger moves per call; the default (64 KiB) works too. */
			int sz = fcntl(c->pipe[1], F_SETPIPE_SZ, (int)SINK_PIPE);
			if (sz < 0)
				sz = fcntl(c->pipe[1], F_GETPIPE_SZ);
			c->pipe_sz = sz > 0 ? (size_t)sz : 4096;
		}
	}
	while (len > 0) {
		ssize_t n, k;
		size_t left;
		bool writing;

		if (c->no_splice || *serr != 0)
			return sink_copy(c, call, c->fd, len, fd, off, serr);
		n = splice(c->fd, NULL, c->pipe[1], NULL, len < c->pipe_sz ? len : c->pipe_sz,
			   SPLICE_F_MOVE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL) {
			c->no_splice = true;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOTCONN;
		len -= (size_t)n;
		/* Freed or dropped meanwhile (rpc_call_free, rpc_call_drop_sink
		 * wait while we write): write no more. */
		if (!sink_write_begin(c, call, serr)) {
			if (sink_copy(c, call, c->pipe[0], (size_t)n, fd, off, serr) < 0)
				return -EIO;
			continue;
		}
		writing = true;
		for (left = (size_t)n; left > 0;) {
			loff_t o = (loff_t)off;

			k = splice(c->pipe[0], NULL, fd, &o, left, SPLICE_F_MOVE);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				/* The pipe's bytes still belong to the frame. */
				if (k < 0 && errno == EINVAL)
					c->no_splice = true;
				else
					*serr = k < 0 ? -errno : -EIO;
				sink_write_end(c, call);
				writing = false;
				if (sink_copy(c, call, c->pipe[0], left, fd, off, serr) < 0)
					return -EIO;
				off += left;
				break;
			}
			off += (uint64_t)k;
			left -= (size_t)k;
		}
		if (writing)
			sink_write_end(c, call);
	}
	return 0;
}

/* Receives the body of a reply to sink call `call` (claimed): the fields
 * into a small buffer, F_DATA's payload into the call's sink. Returns 0, or
 * a transport error (the connection dies); a sink that cannot be written
 * fails only its call. */
static int sink_reply(struct rpc_conn *c, struct rpc_call *call, uint16_t type, uint16_t flags,
		      uint32_t reqid, size_t body_len)
{
	uint8_t head[SINK_HEAD];
	size_t head_len = body_len < SINK_HEAD ? body_len : SINK_HEAD, off = 0;
	struct msg m;
	int err, serr = 0;

	err = read_full(c->fd, head, head_len);
	if (err == 0)
		err = msg_decode_head(&m, type, flags, reqid, head, head_len, body_len, &off);
	if (err == 0 && off < body_len) {
		size_t have = head_len > off ? head_len - off : 0;

		if (have > 0 && sink_write_begin(c, call, &serr)) {
			serr = fs_pwrite_all(call->sink_fd, head + off, have,
					     (off_t)call->sink_off);
			sink_write_end(c, call);
		}
		err = sink_move(c, call, body_len - off - have, call->sink_off + have, &serr);
	}
	pthread_mutex_lock(&c->lock);
	call->sink_busy = false;
	if (err == 0 && call->listed)
		complete_locked(c, call, &m, NULL, serr);
	pthread_cond_broadcast(&call->cond);
	pthread_mutex_unlock(&c->lock);
	return err;
}

/* Hands a decoded reply to its call. Returns 0 or -EPROTO. Takes ownership of buf. */
static int deliver_reply(struct rpc_conn *c, struct msg *m, uint8_t *buf)
{
	struct rpc_call *call;

	pthread_mutex_lock(&c->lock);
	for (call = c->pending; call != NULL; call = call->next) {
		if (call->reqid == m->reqid)
			break;
	}
	if (call == NULL) {
		/* Its caller timed out and freed the call: drop the late reply. */
		pthread_mutex_unlock(&c->lock);
		free(buf);
		return 0;
	}
	if (call->type != m->type) {
		pthread_mutex_unlock(&c->lock);
		free(buf);
		return -EPROTO;
	}
	complete_locked(c, call, m, buf, 0);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void *reader_main(void *arg)
{
	struct rpc_conn *c = arg;
	uint8_t hdr[FRAME_HDR_LEN];
	struct rpc_call *call;
	struct msg m;
	bool closing;
	int err;

	for (;;) {
		uint16_t type, flags;
		uint32_t reqid;
		long body_len;
		uint8_t *buf;

		err = read_full(c->fd, hdr, sizeof(hdr));
		if (err < 0)
			break;
		body_len = frame_parse_header(hdr, &type, &flags, &reqid);
		if (body_len < 0) {
			err = -EPROTO;
			break;
		}
		if (flags == FRAME_F_REPLY && (call = sink_claim(c, reqid, type)) != NULL) {
			err = sink_reply(c, call, type, flags, reqid, (size_t)body_len);
			if (err < 0)
				break;
			continue;
		}
		buf = xmalloc((size_t)body_len);
		err = read_full(c->fd, buf, (size_t)body_len);
		if (err == 0)
			err = msg_decode(&m, type, flags, reqid, buf, (size_t)body_len);
		if (err == 0 && (flags & FRAME_F_PUSH) != 0) {
			if (c->push != NULL)
				c->push(c->arg, &m);
			else if (m.reqid != 0) /* nothing cached: nothing to invalidate */
				rpc_reply_push(c, &m, 0);
			free(buf);
			continue;
		}
		if (err == 0 && (flags & FRAME_F_REPLY) == 0)
			err = -EPROTO;
		if (err < 0) {
			free(buf);
			break;
		}
		err = deliver_reply(c, &m, buf);
		if (err < 0)
			break;
	}

	if (c->pipe[0] >= 0) {
		close(c->pipe[0]);
		close(c->pipe[1]);
		c->pipe[0] = c->pipe[1] = -1;
	}
	free(c->scratch);
	c->scratch = NULL;
	pthread_mutex_lock(&c->lock);
	closing = c->closing;
	conn_fail_locked(c, err);
	pthread_mutex_unlock(&c->lock);
	if (!closing) {
		if (err == -EPROTO)
			log_warn("rpc", "protocol error from server, closing connection");
		else
			log_debug("rpc", "connection lost: %s", err_str(err));
		if (c->dead != NULL)
			c->dead(c->arg, err);
	}
	return NULL;
}

int rpc_open(const char *addr, int timeout_ms, rpc_push_fn push, rpc_dead_fn dead, void *arg,
	     struct rpc_conn **out)
{
	struct rpc_conn *c;
	int fd, ret;

	*out = NULL;
	fd = net_connect(addr, timeout_ms);
	if (fd < 0)
		return fd;
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->push = push;
	c->dead = dead;
	c->arg = arg;
	c->refs = 1;
	c->next_reqid = 1;
	c->pipe[0] = c->pipe[1] = -1;
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->slot_cond, NULL);

	ret = thread_start(&c->reader, false, reader_main, c);
	if (ret < 0)
		goto err_free;
	*out = c;
	return 0;

err_free:
	pthread_cond_destroy(&c->slot_cond);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	free(c);
	close(fd);
	return ret;
}

void rpc_close(struct rpc_conn *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	conn_fail_locked(c, -ENOTCONN);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->reader, NULL);

	pthread_mutex_lock(&c->send_lock);
	pthread_mutex_lock(&c->lock);
	close(c->fd);
	c->fd = -1;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->send_lock);
	conn_put(c);
}

bool rpc_alive(struct rpc_conn *c)
{
	bool alive;

	pthread_mutex_lock(&c->lock);
	alive = c->err == 0;
	pthread_mutex_unlock(&c->lock);
	return alive;
}

void rpc_kill(struct rpc_conn *c, int err)
{
	pthread_mutex_lock(&c->lock);
	conn_fail_locked(c, err);
	pthread_mutex_unlock(&c->lock);
}

int rpc_set_send_timeout(struct rpc_conn *c, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	if (c->fd >= 0 && setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		ret = -errno;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int start(struct rpc_conn *c, struct msg *req, int sink_fd, uint64_t sink_off,
		 struct rpc_call **out)
{
	struct rpc_call *call;
	struct wr w;
	int ret;

	*out = NULL;
	call = xcalloc(1, sizeof(*call));
	call->sink_fd = sink_fd;
	call->sink_off = sink_off;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&call->cond, &ca);
	pthread_condattr_destroy(&ca);
	call->c = c;
	call->type = req->type;

	pthread_mutex_lock(&c->lock);
	/* Bound calls in flight: the server stops reading beyond this anyway. */
	while (c->err == 0 && c->n_pending >= CALLS_IN_FLIGHT_MAX)
		pthread_cond_wait(&c->slot_cond, &c->lock);
	if (c->err != 0) {
		pthread_mutex_unlock(&c->lock);
		pthread_cond_destroy(&call->cond);
		free(call);
		return -ENOTCONN;
	}
	call->reqid = c->next_reqid++;
	if (c->next_reqid == 0)
		c->next_reqid = 1;
	c->refs++;
	call->next = c->pending;
	if (c->pending != NULL)
		c->pending->prev = call;
	c->pending = call;
	call->listed = true;
	c->n_pending++;
	pthread_mutex_unlock(&c->lock);

	req->reqid = call->reqid;
	wr_init(&w);
	ret = msg_encode(&w, req);
	if (ret < 0)
		goto err_free;

	pthread_mutex_lock(&c->send_lock);
	call->t_sent = now_ns();
	ret = send_full(c->fd, w.buf, w.len);
	pthread_mutex_unlock(&c->send_lock);
	wr_release(&w);
	if (ret < 0) {
		pthread_mutex_lock(&c->lock);
		conn_fail_locked(c, ret);
		pthread_mutex_unlock(&c->lock);
		ret = -ENOTCONN;
		goto err_free;
	}
	*out = call;
	return 0;

err_free:
	wr_release(&w);
	rpc_call_free(call);
	return ret;
}

int rpc_start(struct rpc_conn *c, struct msg *req, struct rpc_call **out)
{
	return start(c, req, -1, 0, out);
}

int rpc_start_sink(struct rpc_conn *c, struct msg *req, int fd, uint64_t off, struct rpc_call **out)
{
	if (fd < 0) {
		*out = NULL;
		return -EBADF;
	}
	return start(c, req, fd, off, out);
}

int rpc_wait(struct rpc_call *call, int timeout_ms, struct msg *rep)
{
	struct rpc_conn *c = call->c;
	struct timespec ts;
	int ret;

	if (timeout_ms >= 0) {
		deadline_in_ms(&ts, CLOCK_MONOTONIC, (uint64_t)timeout_ms);
	}
	pthread_mutex_lock(&c->lock);
	while (!call->done) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&call->cond, &c->lock);
		} else if (pthread_cond_timedwait(&call->cond, &c->lock, &ts) == ETIMEDOUT &&
			   !call->done) {
			pthread_mutex_unlock(&c->lock);
			return -ETIMEDOUT;
		}
	}
	ret = call->err;
	if (ret == 0)
		*rep = call->rep;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

uint64_t rpc_call_rtt_us(struct rpc_call *call)
{
	struct rpc_conn *c = call->c;
	uint64_t v;

	pthread_mutex_lock(&c->lock);
	v = call->rtt_us;
	pthread_mutex_unlock(&c->lock);
	return v;
}

void rpc_call_drop_sink(struct rpc_call *call)
{
	struct rpc_conn *c = call->c;

	pthread_mutex_lock(&c->lock);
	if (call->sink_fd >= 0) {
		call->sink_abandon = true;
		while (call->sink_writing)
			pthread_cond_wait(&call->cond, &c->lock);
	}
	pthread_mutex_unlock(&c->lock);
}

int rpc_wait_any(struct rpc_call *const *calls, size_t n, int timeout_ms)
{
	struct rpc_waiter w = { .fired = false };
	struct timespec ts;
	int ret = -ETIMEDOUT;

	pthread_mutex_init(&w.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	/* Attach to every call, unless one is done already. */
	for (size_t i = 0; i < n && ret < 0; i++) {
		struct rpc_conn *c = calls[i]->c;

		pthread_mutex_lock(&c->lock);
		ASSERT(calls[i]->waiter == NULL);
		if (calls[i]->done)
			ret = (int)i;
		else
			calls[i]->waiter = &w;
		pthread_mutex_unlock(&c->lock);
	}
	if (ret < 0 && timeout_ms > 0) {
		deadline_in_ms(&ts, CLOCK_MONOTONIC, (uint64_t)timeout_ms);
		pthread_mutex_lock(&w.lock);
		while (!w.fired) {
			if (pthread_cond_timedwait(&w.cond, &w.lock, &ts) == ETIMEDOUT)
				break;
		}
		pthread_mutex_unlock(&w.lock);
	}
	/* Detach under each connection's lock: once done, no completion can
	 * touch w any more. The first call found done is the answer. */
	for (size_t i = 0; i < n; i++) {
		struct rpc_conn *c = calls[i]->c;

		pthread_mutex_lock(&c->lock);
		if (calls[i]->waiter == &w)
			calls[i]->waiter = NULL;
		if (ret < 0 && calls[i]->done)
			ret = (int)i;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return ret;
}

void rpc_call_free(struct rpc_call *call)
{
	struct rpc_conn *c;

	if (call == NULL)
		return;
	c = call->c;
	pthread_mutex_lock(&c->lock);
	if (call->sink_busy) {
		/* The reader is receiving this call's reply into its sink: it
		 * writes no more of it and reads the rest of the frame. A reply
		 * cannot be left half-read, so if the rest does not come in
		 * time the connection dies: the reader's socket calls fail and
		 * it lets go of the sink. */
		struct timespec ts;

		call->sink_abandon = true;
		deadline_in_ms(&ts, CLOCK_MONOTONIC, SINK_DRAIN_MS);
		while (call->sink_busy) {
			if (pthread_cond_timedwait(&call->cond, &c->lock, &ts) == ETIMEDOUT &&
			    call->sink_busy) {
				conn_fail_locked(c, -ETIMEDOUT);
				while (call->sink_busy)
					pthread_cond_wait(&call->cond, &c->lock);
			}
		}
	}
	unlist_locked(c, call);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&call->cond);
	free(call->buf);
	free(call);
	conn_put(c);
}

int rpc_call(struct rpc_conn *c, struct msg *req, struct msg *rep, int timeout_ms,
	     struct rpc_call **callp)
{
	struct rpc_call *call;
	int ret;

	*callp = NULL;
	ret = rpc_start(c, req, &call);
	if (ret < 0)
		return ret;
	ret = rpc_wait(call, timeout_ms, rep);
	if (ret < 0) {
		rpc_call_free(call);
		return ret;
	}
	*callp = call;
	return 0;
}

int rpc_reply_push(struct rpc_conn *c, const struct msg *push, int status)
{
	struct msg rep;
	struct wr w;
	int ret;

	if (push->reqid == 0)
		return -EINVAL;
	msg_init_reply(&rep, push, status);
	wr_init(&w);
	ret = msg_encode(&w, &rep);
	if (ret == 0) {
		pthread_mutex_lock(&c->send_lock);
		ret = send_full(c->fd, w.buf, w.len);
		pthread_mutex_unlock(&c->send_lock);
		if (ret < 0) {
			pthread_mutex_lock(&c->lock);
			conn_fail_locked(c, ret);
			pthread_mutex_unlock(&c->lock);
			ret = -ENOTCONN;
		}
	}
	wr_release(&w);
	return ret;
}

uint64_t rpc_rtt_us(struct rpc_conn *c)
{
	uint64_t v;

	pthread_mutex_lock(&c->lock);
	v = c->srtt_us;
	pthread_mutex_unlock(&c->lock);
	return v;
}
