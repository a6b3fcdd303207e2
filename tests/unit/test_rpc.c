/*
 * test_rpc.c - unit tests of common/rpc.c against a tiny in-test server
 * thread on loopback TCP: concurrent calls, out-of-order replies, pushes,
 * timeouts, a peer that hangs up, a peer that sends garbage.
 *
 * Test server behaviour by request type:
 *   PING     reply server_id 7, incarnation = reqid; then any held FETCH
 *   GETATTR  reply attr.fid = fid, attr.size = fid.vol * 3
 *   FETCH    held until the next PING (reply after it: out of order)
 *   STATFS   push CB_BREAK(fid) first, then reply bsize 4096; with fid.vol
 *            43 the push has reqid 77 and the reply (bsize 8192) waits for
 *            its acknowledgement (a CB_BREAK reply frame, reqid 77, ST_OK)
 *   LOOKUP   never answered
 *   READLINK server closes the connection
 *   STATS    server sends a malformed frame
 *   READDIR  reply attr.size = length, data = pattern(length) (sink calls);
 *            fid.vol 98: status -ENOENT; fid.vol 99: half the frame, then
 *            nothing until the client hangs up; fid.vol 97: half the frame,
 *            the rest 200 ms later
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/msg.h"
#include "common/net.h"
#include "common/rpc.h"

struct server {
	int lfd;
	uint16_t port;
	pthread_t thread;
	char addr[64];
};

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static void send_msg(int fd, const struct msg *m)
{
	struct wr w;
	wr_init(&w);
	assert_int_equal(msg_encode(&w, m), 0);
	assert_int_equal(send(fd, w.buf, w.len, MSG_NOSIGNAL), (ssize_t)w.len);
	wr_release(&w);
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 13 + 5);
}

static void serve_readdir(int fd, const struct msg *req)
{
	size_t len = req->length < CHUNK_MAX ? (size_t)req->length : CHUNK_MAX;
	uint8_t *data = malloc(len + 1);
	struct msg rep;
	struct wr w;

	for (size_t i = 0; i < len; i++)
		data[i] = pattern(i);
	msg_init_reply(&rep, req, req->fid.vol == 98 ? -ENOENT : 0);
	rep.attr.size = len;
	rep.data = data;
	rep.data_len = (uint32_t)len;
	wr_init(&w);
	assert_int_equal(msg_encode(&w, &rep), 0);
	if (req->fid.vol == 99) {
		uint8_t b;
		assert_int_equal(send(fd, w.buf, w.len / 2, MSG_NOSIGNAL), (ssize_t)(w.len / 2));
		while (read(fd, &b, 1) > 0)
			;
	} else if (req->fid.vol == 97) {
		size_t half = w.len / 2;
		assert_int_equal(send(fd, w.buf, half, MSG_NOSIGNAL), (ssize_t)half);
		usleep(200000);
		assert_int_equal(send(fd, w.buf + half, w.len - half, MSG_NOSIGNAL),
				 (ssize_t)(w.len - half));
	} else {
		assert_int_equal(send(fd, w.buf, w.len, MSG_NOSIGNAL), (ssize_t)w.len);
	}
	wr_release(&w);
	free(data);
}

static void serve(int fd)
{
	struct msg held;
	bool have_held = false;

	for (;;) {
		uint8_t hdr[FRAME_HDR_LEN];
		uint16_t type, flags;
		uint32_t reqid;
		struct msg req, rep;

		if (read_full(fd, hdr, sizeof(hdr)) < 0)
			return;
		long n = frame_parse_header(hdr, &type, &flags, &reqid);
		assert_true(n >= 0);
		uint8_t *body = malloc((size_t)n + 1);
		assert_int_equal(read_full(fd, body, (size_t)n), 0);
		assert_int_equal(msg_decode(&req, type, flags, reqid, body, (size_t)n), 0);
		free(body);
		switch (req.type) {
		case MSG_PING:
			msg_init_reply(&rep, &req, 0);
			rep.server_id = 7;
			rep.incarnation = req.reqid;
			send_msg(fd, &rep);
			if (have_held) {
				msg_init_reply(&rep, &held, 0);
				rep.attr.size = held.offset;
				send_msg(fd, &rep);
				have_held = false;
			}
			break;
		case MSG_GETATTR:
			msg_init_reply(&rep, &req, 0);
			rep.attr.fid = req.fid;
			rep.attr.size = (uint64_t)req.fid.vol * 3;
			send_msg(fd, &rep);
			break;
		case MSG_FETCH:
			held = req;
			have_held = true;
			break;
		case MSG_STATFS: {
			struct msg push;
			msg_init(&push, MSG_CB_BREAK);
			push.flags = FRAME_F_PUSH;
			push.fid = req.fid;
			if (req.fid.vol == 43)
				push.reqid = 77;
			send_msg(fd, &push);
			msg_init_reply(&rep, &req, 0);
			rep.fsstat.bsize = 4096;
			if (req.fid.vol == 43) {
				struct msg ack;
				uint8_t b[4];
				assert_int_equal(read_full(fd, hdr, sizeof(hdr)), 0);
				assert_int_equal(frame_parse_header(hdr, &type, &flags, &reqid), 4);
				assert_int_equal(type, MSG_CB_BREAK);
				assert_int_equal(flags, FRAME_F_REPLY);
				assert_int_equal(reqid, 77);
				assert_int_equal(read_full(fd, b, sizeof(b)), 0);
				assert_int_equal(msg_decode(&ack, type, flags, reqid, b, 4), 0);
				assert_int_equal(ack.status, 0);
				rep.fsstat.bsize = 8192;
			}
			send_msg(fd, &rep);
			break;
		}
		case MSG_LOOKUP:
			break;
		case MSG_READLINK:
			return;
		case MSG_READDIR:
			serve_readdir(fd, &req);
			if (req.fid.vol == 99)
				return;
			break;
		case MSG_STATS: {
			uint8_t junk[FRAME_HDR_LEN] = { 0 };
			le_put_u16(junk + 4, 200);
			le_put_u16(junk + 6, FRAME_F_REPLY);
			assert_int_equal(send(fd, junk, sizeof(junk), MSG_NOSIGNAL), 12);
			break;
		}
		default:
			msg_init_reply(&rep, &req, -ENOSYS);
			send_msg(fd, &rep);
			break;
		}
	}
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };

	assert_int_equal(poll(&pfd, 1, 10000), 1);
	int fd = accept(s->lfd, NULL, NULL);
	assert_true(fd >= 0);
	assert_int_equal(net_set_nonblock(fd, 0), 0);
	serve(fd);
	close(fd);
	return NULL;
}

static int setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));

	s->lfd = net_listen("127.0.0.1:0", 8, &s->port);
	if (s->lfd < 0 || s->port == 0)
		return -1;
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", (unsigned)s->port);
	if (pthread_create(&s->thread, NULL, server_main, s) != 0)
		return -1;
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct server *s = *state;

	pthread_join(s->thread, NULL);
	close(s->lfd);
	free(s);
	return 0;
}

/* ---- callbacks ---- */

static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static int n_push, n_dead, dead_err;
static struct fid push_fid;
static struct rpc_conn *ack_conn; /* acknowledges pushes with a reqid */

static void on_push(void *arg, const struct msg *m)
{
	(void)arg;
	pthread_mutex_lock(&cb_lock);
	assert_int_equal(m->type, MSG_CB_BREAK);
	assert_int_equal(m->flags, FRAME_F_PUSH);
	push_fid = m->fid;
	n_push++;
	if (m->reqid != 0) {
		assert_non_null(ack_conn);
		assert_int_equal(rpc_reply_push(ack_conn, m, 0), 0);
	} else {
		assert_int_equal(rpc_reply_push(ack_conn, m, 0), -EINVAL);
	}
	pthread_mutex_unlock(&cb_lock);
}

static void on_dead(void *arg, int err)
{
	(void)arg;
	pthread_mutex_lock(&cb_lock);
	n_dead++;
	dead_err = err;
	pthread_mutex_unlock(&cb_lock);
}

static void reset_cb(void)
{
	pthread_mutex_lock(&cb_lock);
	n_push = n_dead = dead_err = 0;
	memset(&push_fid, 0, sizeof(push_fid));
	pthread_mutex_unlock(&cb_lock);
}

static struct rpc_conn *open_conn(struct server *s)
{
	struct rpc_conn *c;

	reset_cb();
	assert_int_equal(rpc_open(s->addr, 2000, on_push, on_dead, NULL, &c), 0);
	assert_non_null(c);
	assert_true(rpc_alive(c));
	return c;
}

/* Closing the connection makes the server thread see EOF and exit. */

static void test_ping(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *call;
	struct msg req, rep;

	assert_int_equal(rpc_rtt_us(c), 0);
	for (int i = 0; i < 3; i++) {
		msg_init(&req, MSG_PING);
		assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), 0);
		assert_non_null(call);
		assert_int_equal(rep.status, 0);
		assert_int_equal(rep.type, MSG_PING);
		assert_int_equal(rep.reqid, req.reqid);
		assert_int_equal(rep.server_id, 7);
		assert_int_equal(rep.incarnation, req.reqid);
		rpc_call_free(call);
	}
	assert_true(rpc_rtt_us(c) > 0);
	rpc_close(c);
	assert_int_equal(n_dead, 0); /* owner close does not report death */
}

struct worker {
	struct rpc_conn *c;
	uint32_t base;
	int ok;
};

#define N_WORKERS 8
#define N_CALLS	  300

static void *worker_main(void *arg)
{
	struct worker *wk = arg;

	for (uint32_t i = 0; i < N_CALLS; i++) {
		struct msg req, rep;
		struct rpc_call *call;
		msg_init(&req, MSG_GETATTR);
		req.fid.vol = wk->base + i;
		req.fid.oid[0] = (uint8_t)i;
		if (rpc_call(wk->c, &req, &rep, 10000, &call) != 0)
			return NULL;
		if (rep.status == 0 && rep.attr.fid.vol == wk->base + i &&
		    rep.attr.fid.oid[0] == (uint8_t)i &&
		    rep.attr.size == (uint64_t)(wk->base + i) * 3)
			wk->ok++;
		rpc_call_free(call);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	pthread_t th[N_WORKERS];
	struct worker wk[N_WORKERS];

	for (int i = 0; i < N_WORKERS; i++) {
		wk[i] = (struct worker){ .c = c, .base = (uint32_t)i * 100000u, .ok = 0 };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &wk[i]), 0);
	}
	for (int i = 0; i < N_WORKERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(wk[i].ok, N_CALLS);
	}
	rpc_close(c);
}

static void test_out_of_order(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *fetch, *ping;
	struct msg freq, preq, rep;

	msg_init(&freq, MSG_FETCH);
	freq.offset = 12345;
	assert_int_equal(rpc_start(c, &freq, &fetch), 0);
	/* The held call is not answered yet. */
	assert_int_equal(rpc_wait(fetch, 50, &rep), -ETIMEDOUT);
	msg_init(&preq, MSG_PING);
	assert_int_equal(rpc_start(c, &preq, &ping), 0);
	assert_int_not_equal(preq.reqid, freq.reqid);
	assert_int_equal(rpc_wait(ping, 5000, &rep), 0);
	assert_int_equal(rep.incarnation, preq.reqid);
	assert_int_equal(rpc_wait(fetch, 5000, &rep), 0);
	assert_int_equal(rep.type, MSG_FETCH);
	assert_int_equal(rep.reqid, freq.reqid);
	assert_int_equal(rep.attr.size, 12345);
	rpc_call_free(fetch);
	rpc_call_free(ping);
	rpc_close(c);
}

static void test_push(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *call;
	struct msg req, rep;

	msg_init(&req, MSG_STATFS);
	req.fid.vol = 42;
	req.fid.oid[5] = 9;
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), 0);
	assert_int_equal(rep.fsstat.bsize, 4096);
	/* The push was sent before the reply, on the same stream. */
	pthread_mutex_lock(&cb_lock);
	assert_int_equal(n_push, 1);
	assert_int_equal(push_fid.vol, 42);
	assert_int_equal(push_fid.oid[5], 9);
	pthread_mutex_unlock(&cb_lock);
	rpc_call_free(call);
	rpc_close(c);
}

/* A push with a reqid is acknowledged with rpc_reply_push (from the push
 * callback), or by rpc.c itself on a connection without one. */
static void test_push_ack(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *call;
	struct msg req, rep;

	pthread_mutex_lock(&cb_lock);
	ack_conn = c;
	pthread_mutex_unlock(&cb_lock);
	msg_init(&req, MSG_STATFS);
	req.fid.vol = 43;
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), 0);
	assert_int_equal(rep.fsstat.bsize, 8192);
	rpc_call_free(call);
	pthread_mutex_lock(&cb_lock);
	assert_int_equal(n_push, 1);
	ack_conn = NULL;
	pthread_mutex_unlock(&cb_lock);
	rpc_close(c);
}

static void test_push_auto_ack(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c;
	struct rpc_call *call;
	struct msg req, rep;

	assert_int_equal(rpc_open(s->addr, 2000, NULL, NULL, NULL, &c), 0);
	msg_init(&req, MSG_STATFS);
	req.fid.vol = 43;
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), 0);
	assert_int_equal(rep.fsstat.bsize, 8192);
	rpc_call_free(call);
	rpc_close(c);
}

struct waiter {
	struct rpc_call *call;
	int ret;
};

static void *waiter_main(void *arg)
{
	struct waiter *wt = arg;
	struct msg rep;

	wt->ret = rpc_wait(wt->call, 10000, &rep);
	return NULL;
}

static void test_dead_connection(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *hang, *bye, *late;
	struct msg req, rep;
	struct waiter wt;
	pthread_t th;

	/* A call the server never answers, waited on by another thread. */
	msg_init(&req, MSG_LOOKUP);
	snprintf(req.name, sizeof(req.name), "x");
	assert_int_equal(rpc_start(c, &req, &hang), 0);
	wt = (struct waiter){ .call = hang, .ret = 1 };
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &wt), 0);
	/* The server hangs up on READLINK. */
	msg_init(&req, MSG_READLINK);
	assert_int_equal(rpc_start(c, &req, &bye), 0);
	assert_int_equal(rpc_wait(bye, 10000, &rep), -ENOTCONN);
	pthread_join(th, NULL);
	assert_int_equal(wt.ret, -ENOTCONN);
	assert_false(rpc_alive(c));
	/* Sticky: later calls fail at once. */
	msg_init(&req, MSG_PING);
	assert_int_equal(rpc_start(c, &req, &late), -ENOTCONN);
	assert_null(late);
	/* Calls may be freed after the owner closed the connection. rpc_close
	 * joins the reader, so the dead callback has run by then. */
	rpc_close(c);
	rpc_call_free(hang);
	rpc_call_free(bye);
	assert_int_equal(n_dead, 1);
	assert_int_equal(dead_err, -ENOTCONN);
}

struct any_waiter {
	struct rpc_call *calls[2];
	int ret;
};

static void *any_main(void *arg)
{
	struct any_waiter *aw = arg;

	aw->ret = rpc_wait_any(aw->calls, 2, 5000);
	return NULL;
}

/* rpc_wait_any: times out while nothing is done, wakes on the first reply
 * (sent while it waits), reports a done call at once, and a failed call. */
static void test_wait_any(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *lookup, *fetch, *ping, *bye;
	struct msg req, rep;
	struct any_waiter aw;
	pthread_t th;

	msg_init(&req, MSG_LOOKUP); /* never answered */
	snprintf(req.name, sizeof(req.name), "x");
	assert_int_equal(rpc_start(c, &req, &lookup), 0);
	msg_init(&req, MSG_FETCH); /* held until the next PING */
	req.offset = 777;
	assert_int_equal(rpc_start(c, &req, &fetch), 0);
	aw = (struct any_waiter){ .calls = { lookup, fetch }, .ret = 1000 };
	assert_int_equal(rpc_wait_any(aw.calls, 2, 0), -ETIMEDOUT);
	assert_int_equal(rpc_wait_any(aw.calls, 2, 50), -ETIMEDOUT);
	assert_int_equal(pthread_create(&th, NULL, any_main, &aw), 0);
	usleep(50000);
	msg_init(&req, MSG_PING);
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &ping), 0);
	pthread_join(th, NULL);
	assert_int_equal(aw.ret, 1);
	assert_int_equal(rpc_wait(fetch, 0, &rep), 0);
	assert_int_equal(rep.attr.size, 777);
	/* Its own round trip: held for 100 ms at least, however late we look. */
	assert_true(rpc_call_rtt_us(fetch) >= 100000);
	assert_true(rpc_call_rtt_us(ping) >= 1 && rpc_call_rtt_us(ping) < rpc_call_rtt_us(fetch));
	assert_int_equal(rpc_call_rtt_us(lookup), 0);
	/* Done already: found without waiting; the other one still pending. */
	assert_int_equal(rpc_wait_any(aw.calls, 2, 0), 1);
	assert_int_equal(rpc_wait_any(aw.calls, 1, 0), -ETIMEDOUT);
	/* The server hangs up: the pending call is done, with the error. */
	msg_init(&req, MSG_READLINK);
	assert_int_equal(rpc_start(c, &req, &bye), 0);
	assert_int_equal(rpc_wait_any(aw.calls, 1, 5000), 0);
	assert_int_equal(rpc_wait(lookup, 0, &rep), -ENOTCONN);
	rpc_close(c);
	rpc_call_free(lookup);
	rpc_call_free(fetch);
	rpc_call_free(ping);
	rpc_call_free(bye);
}

static void test_garbage_and_timeout(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *call, *lost;
	struct msg req, rep;

	/* A timed-out call stays pending and can be freed. */
	msg_init(&req, MSG_LOOKUP);
	assert_int_equal(rpc_start(c, &req, &lost), 0);
	assert_int_equal(rpc_wait(lost, 20, &rep), -ETIMEDOUT);
	rpc_call_free(lost);
	assert_true(rpc_alive(c));
	/* Malformed frame from the server poisons the connection with -EPROTO. */
	msg_init(&req, MSG_STATS);
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), -EPROTO);
	assert_null(call);
	assert_false(rpc_alive(c));
	rpc_close(c);
	assert_int_equal(n_dead, 1);
	assert_int_equal(dead_err, -EPROTO);
}

static void test_encode_error(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	struct rpc_call *call;
	struct msg req, rep;

	msg_init(&req, MSG_GETATTR);
	req.cred.n_groups = GROUPS_MAX + 1;
	assert_int_equal(rpc_start(c, &req, &call), -EINVAL);
	assert_null(call);
	assert_true(rpc_alive(c));
	msg_init(&req, MSG_PING);
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), 0);
	assert_int_equal(rep.server_id, 7);
	rpc_call_free(call);
	rpc_close(c);
}

/* A sink call of len bytes at off into fd; returns rpc_wait's result. */
static int sink_call(struct rpc_conn *c, uint32_t vol, size_t len, int fd, uint64_t off,
		     struct msg *rep)
{
	struct rpc_call *call;
	struct msg req;
	int ret;

	msg_init(&req, MSG_READDIR);
	req.fid.vol = vol;
	req.length = len;
	assert_int_equal(rpc_start_sink(c, &req, fd, off, &call), 0);
	ret = rpc_wait(call, 5000, rep);
	rpc_call_free(call);
	return ret;
}

static void assert_file_pattern(int fd, uint64_t off, size_t len)
{
	uint8_t *b = malloc(len + 1);

	assert_int_equal(pread(fd, b, len, (off_t)off), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(b[i], pattern(i));
	free(b);
}

/* F_DATA of sink calls lands in the file, not in the reply; small and
 * large payloads, error replies; a sink that cannot be written fails only
 * its call; ordinary calls on the same connection are unaffected. */
static void test_sink(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	char path[] = "/tmp/test_rpc_sinkXXXXXX";
	int fd = mkstemp(path), rfd;
	struct rpc_call *call;
	struct msg rep, req;
	static const size_t lens[] = { 0, 1, 10, 900, 1500, 65536, 300001, CHUNK_MAX };
	uint64_t off = 0;

	assert_true(fd >= 0);
	unlink(path);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_int_equal(sink_call(c, 1, lens[i], fd, off, &rep), 0);
		assert_int_equal(rep.status, 0);
		assert_int_equal(rep.type, MSG_READDIR);
		assert_null(rep.data);
		assert_int_equal(rep.data_len, lens[i]);
		assert_int_equal(rep.attr.size, lens[i]);
		assert_file_pattern(fd, off, lens[i]);
		off += lens[i] + 7;
	}
	assert_int_equal(sink_call(c, 98, 100, fd, 0, &rep), 0);
	assert_int_equal(rep.status, -ENOENT);
	assert_int_equal(rpc_start_sink(c, &req, -1, 0, &call), -EBADF);
	assert_null(call);

	/* An fd that cannot be written: the call fails, the stream stays in frame. */
	snprintf(path, sizeof(path), "/tmp/test_rpc_sinkXXXXXX");
	rfd = mkstemp(path);
	assert_true(rfd >= 0);
	close(rfd);
	rfd = open(path, O_RDONLY);
	assert_true(rfd >= 0);
	unlink(path);
	assert_int_equal(sink_call(c, 1, 300000, rfd, 0, &rep), -EBADF);
	assert_int_equal(sink_call(c, 1, 100, rfd, 0, &rep), -EBADF);
	assert_true(rpc_alive(c));
	assert_int_equal(sink_call(c, 1, 200000, fd, 5, &rep), 0);
	assert_file_pattern(fd, 5, 200000);
	msg_init(&req, MSG_PING);
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), 0);
	assert_int_equal(rep.server_id, 7);
	rpc_call_free(call);
	close(rfd);
	close(fd);
	rpc_close(c);
	assert_int_equal(n_dead, 0);
}

/* Freeing a sink call whose reply is half received waits for the rest,
 * writing no more of it; the connection lives on. */
static void test_sink_free_draining(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	char path[] = "/tmp/test_rpc_sinkXXXXXX";
	int fd = mkstemp(path);
	struct rpc_call *call;
	struct msg req, rep;
	struct stat st;

	assert_true(fd >= 0);
	unlink(path);
	msg_init(&req, MSG_READDIR);
	req.fid.vol = 97;
	req.length = 400000;
	assert_int_equal(rpc_start_sink(c, &req, fd, 0, &call), 0);
	assert_int_equal(rpc_wait(call, 50, &rep), -ETIMEDOUT);
	rpc_call_free(call);
	assert_true(rpc_alive(c));
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size <= 200000 + 512); /* nothing of the second half */
	msg_init(&req, MSG_PING);
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &call), 0);
	assert_int_equal(rep.server_id, 7);
	rpc_call_free(call);
	close(fd);
	rpc_close(c);
	assert_int_equal(n_dead, 0);
}

/* Dropping the sink of a call whose reply is half received returns at
 * once; nothing more is written into the file, the rest of the reply is
 * read (the call fails with -ECANCELED) and the connection lives on. A
 * call dropped before its reply writes nothing at all. */
static void test_sink_drop(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	char path[] = "/tmp/test_rpc_sinkXXXXXX", path2[] = "/tmp/test_rpc_sinkXXXXXX";
	int fd = mkstemp(path), fd2 = mkstemp(path2);
	struct rpc_call *call, *held, *ping;
	struct msg req, rep;
	struct stat st;
	uint64_t t0;

	assert_true(fd >= 0 && fd2 >= 0);
	unlink(path);
	unlink(path2);
	msg_init(&req, MSG_READDIR);
	req.fid.vol = 97; /* half the frame, the rest 200 ms later */
	req.length = 400000;
	assert_int_equal(rpc_start_sink(c, &req, fd, 0, &call), 0);
	assert_int_equal(rpc_wait(call, 50, &rep), -ETIMEDOUT);
	t0 = now_ns();
	rpc_call_drop_sink(call);
	assert_true(now_ns() - t0 < 100 * 1000000ull);
	assert_int_equal(fstat(fd, &st), 0);
	off_t size = st.st_size;
	assert_true(size <= 200000 + 512);
	assert_int_equal(rpc_wait(call, 5000, &rep), -ECANCELED);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, size);
	rpc_call_free(call);
	assert_true(rpc_alive(c));
	/* Dropped before its reply comes (the server answers in order, and
	 * the first reply takes 200 ms): nothing written. */
	assert_int_equal(ftruncate(fd, 0), 0);
	msg_init(&req, MSG_READDIR);
	req.fid.vol = 97;
	req.length = 400000;
	assert_int_equal(rpc_start_sink(c, &req, fd, 0, &call), 0);
	msg_init(&req, MSG_READDIR);
	req.fid.vol = 1;
	req.length = 300000;
	assert_int_equal(rpc_start_sink(c, &req, fd2, 0, &held), 0);
	rpc_call_drop_sink(held);
	assert_int_equal(rpc_wait(call, 5000, &rep), 0);
	assert_file_pattern(fd, 0, 400000);
	assert_int_equal(rpc_wait(held, 5000, &rep), -ECANCELED);
	assert_int_equal(fstat(fd2, &st), 0);
	assert_int_equal(st.st_size, 0);
	rpc_call_free(call);
	rpc_call_free(held);
	msg_init(&req, MSG_PING);
	assert_int_equal(rpc_call(c, &req, &rep, 5000, &ping), 0);
	assert_int_equal(rep.server_id, 7);
	rpc_call_free(ping);
	close(fd);
	close(fd2);
	rpc_close(c);
	assert_int_equal(n_dead, 0);
}

/* Freeing a sink call whose reply stalls half received kills the
 * connection after a bound (it cannot be left half-read) and returns. */
static void test_sink_free_busy(void **state)
{
	struct server *s = *state;
	struct rpc_conn *c = open_conn(s);
	char path[] = "/tmp/test_rpc_sinkXXXXXX";
	int fd = mkstemp(path);
	struct rpc_call *call;
	struct msg req, rep;

	assert_true(fd >= 0);
	unlink(path);
	msg_init(&req, MSG_READDIR);
	req.fid.vol = 99;
	req.length = 400000;
	assert_int_equal(rpc_start_sink(c, &req, fd, 0, &call), 0);
	assert_int_equal(rpc_wait(call, 300, &rep), -ETIMEDOUT);
	rpc_call_free(call);
	assert_false(rpc_alive(c));
	close(fd);
	/* The reader reports the death unless the owner closes first. */
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&cb_lock);
		int n = n_dead;
		pthread_mutex_unlock(&cb_lock);
		if (n > 0)
			break;
		usleep(10000);
	}
	rpc_close(c);
	assert_int_equal(n_dead, 1);
	assert_int_equal(dead_err, -ENOTCONN); /* the reader saw the socket shut */
}

static void test_connect_refused(void **state)
{
	(void)state;
	struct rpc_conn *c = (struct rpc_conn *)1;
	int fd = net_listen("127.0.0.1:0", 1, NULL);
	uint16_t port;
	char addr[64];

	/* Find a free port, then close it so nobody listens there. */
	close(fd);
	fd = net_listen("127.0.0.1:0", 1, &port);
	close(fd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
	assert_int_equal(rpc_open(addr, 1000, NULL, NULL, NULL, &c), -ECONNREFUSED);
	assert_null(c);
	assert_int_equal(rpc_open("not an address", 1000, NULL, NULL, NULL, &c), -EINVAL);
	rpc_close(NULL);
	rpc_call_free(NULL);
}

static void test_unix_socket(void **state)
{
	(void)state;
	char path[128], addr[160];
	struct sockaddr_storage ss;
	socklen_t len;

	snprintf(path, sizeof(path), "/tmp/encore-test-rpc-%ld.sock", (long)getpid());
	snprintf(addr, sizeof(addr), "unix:%s", path);
	assert_int_equal(net_parse_addr(addr, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_UNIX);
	int lfd = net_listen(addr, 4, NULL);
	assert_true(lfd >= 0);
	int cfd = net_connect(addr, 1000);
	assert_true(cfd >= 0);
	close(cfd);
	close(lfd);
	/* A stale socket file is replaced. */
	lfd = net_listen(addr, 4, NULL);
	assert_true(lfd >= 0);
	close(lfd);
	unlink(path);
	assert_int_equal(net_parse_addr("[::1]:80", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(net_parse_addr("1.2.3.4:99999", &ss, &len), -EINVAL);
	assert_int_equal(net_parse_addr("1.2.3.4", &ss, &len), -EINVAL);
	assert_int_equal(net_parse_addr("unix:", &ss, &len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_auto_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_any, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encode_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_free_draining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_free_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_drop, setup, teardown),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_unix_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
