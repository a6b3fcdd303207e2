/*
 * encore-load.c - load generator for encore-server: holds many concurrent
 * connections (default 1000), each doing GETATTR and small FETCH calls
 * back to back on one shared file, and reports throughput and p50/p99
 * latency.
 * Owns:    its sockets and buffers; single-threaded epoll loop.
 *
 * encore-load --server HOST:PORT [--realm R] [--conns N] [--seconds S]
 *             [--depth D] [--size BYTES]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/fid.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/net.h"
#include "common/xalloc.h"

#define DEPTH_MAX 16

struct lconn {
	int fd;
	uint8_t *in;
	size_t in_len, in_cap;
	struct wr out;
	size_t out_off;
	uint32_t next_reqid;
	unsigned inflight;
	uint64_t start[DEPTH_MAX]; /* by reqid % DEPTH_MAX */
	unsigned seq;
};

struct lat {
	uint64_t *v;
	size_t n, cap;
};

static struct fid g_fid;
static uint64_t g_ops, g_errors, g_bytes;
static struct lat g_lat;

static void lat_add(uint64_t ns)
{
	if (g_lat.n == g_lat.cap) {
		g_lat.cap = g_lat.cap ? g_lat.cap * 2 : 1 << 16;
		g_lat.v = xrealloc(g_lat.v, g_lat.cap * sizeof(*g_lat.v));
	}
	g_lat.v[g_lat.n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Blocking call on a fresh socket: send req, read frames until its reply. */
static int sync_call(int fd, struct msg *req, struct msg *rep, uint8_t *buf, size_t cap)
{
	struct wr w;
	int ret;

	wr_init(&w);
	ret = msg_encode(&w, req);
	if (ret == 0 && send(fd, w.buf, w.len, MSG_NOSIGNAL) != (ssize_t)w.len)
		ret = -EIO;
	wr_release(&w);
	if (ret < 0)
		return ret;
	for (;;) {
		size_t got = 0;
		while (got < FRAME_HDR_LEN) {
			ssize_t n = recv(fd, buf + got, FRAME_HDR_LEN - got, 0);
			if (n <= 0)
				return -ECONNRESET;
			got += (size_t)n;
		}
		uint16_t type, flags;
		uint32_t reqid;
		long bl = frame_parse_header(buf, &type, &flags, &reqid);
		if (bl < 0 || (size_t)bl + FRAME_HDR_LEN > cap)
			return -EPROTO;
		while (got < FRAME_HDR_LEN + (size_t)bl) {
			ssize_t n = recv(fd, buf + got, FRAME_HDR_LEN + (size_t)bl - got, 0);
			if (n <= 0)
				return -ECONNRESET;
			got += (size_t)n;
		}
		if (flags & FRAME_F_PUSH)
			continue;
		ret = msg_decode_frame(rep, buf, got);
		if (ret < 0)
			return ret;
		return rep->status;
	}
}

static int hello(int fd, struct msg *req, struct msg *rep, uint8_t *buf, size_t cap,
		 const char *realm)
{
	msg_init(req, MSG_HELLO);
	req->reqid = 1;
	req->version = PROTO_VERSION;
	randombytes_buf(&req->client_id, sizeof(req->client_id));
	snprintf(req->realm, sizeof(req->realm), "%s", realm);
	snprintf(req->name, sizeof(req->name), "encore-load");
	return sync_call(fd, req, rep, buf, cap);
}

static int setup_file(const char *addr, const char *realm, size_t size)
{
	size_t cap = FRAME_HDR_LEN + FRAME_BODY_MAX;
	uint8_t *buf = xmalloc(cap);
	struct msg *req = xmalloc(sizeof(*req)), *rep = xmalloc(sizeof(*rep));
	uint8_t *data = xcalloc(1, size ? size : 1);
	struct fid root;
	int fd, ret;

	fd = net_connect(addr, 5000);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = hello(fd, req, rep, buf, cap, realm);
	if (ret < 0)
		goto out;
	msg_init(req, MSG_GETROOT);
	req->reqid = 2;
	snprintf(req->realm, sizeof(req->realm), "%s", realm);
	ret = sync_call(fd, req, rep, buf, cap);
	if (ret < 0)
		goto out;
	root = rep->attr.fid;
	msg_init(req, MSG_CREATE);
	req->reqid = 3;
	req->fid = root;
	req->fid2.vol = root.vol;
	oid_random(req->fid2.oid);
	snprintf(req->name, sizeof(req->name), "load-%08x", randombytes_random());
	req->mode = S_IFREG | 0644;
	req->mflags = CREATE_EXCL;
	ret = sync_call(fd, req, rep, buf, cap);
	if (ret < 0)
		goto out;
	g_fid = rep->attr.fid;
	randombytes_buf(data, size);
	msg_init(req, MSG_STORE);
	req->reqid = 4;
	req->fid = g_fid;
	req->length = size;
	req->handle = 1;
	req->mflags = STORE_FIRST | STORE_LAST;
	req->data = size ? data : NULL;
	req->data_len = (uint32_t)size;
	ret = sync_call(fd, req, rep, buf, cap);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(req);
	free(rep);
	free(data);
	return ret;
}

static void queue_call(struct lconn *c, size_t size)
{
	struct msg m;
	msg_init(&m, (c->seq++ & 1) ? MSG_FETCH : MSG_GETATTR);
	m.reqid = ++c->next_reqid;
	m.fid = g_fid;
	m.length = size;
	ASSERT(msg_encode(&c->out, &m) == 0);
	c->start[m.reqid % DEPTH_MAX] = now_ns();
	c->inflight++;
}

static int conn_flush(struct lconn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.buf + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		c->out_off += (size_t)n;
	}
	wr_reset(&c->out);
	c->out_off = 0;
	return 0;
}

static int conn_input(struct lconn *c, bool measuring, size_t size)
{
	for (;;) {
		if (c->in_cap - c->in_len < 65536) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 1 << 17;
			c->in = xrealloc(c->in, c->in_cap);
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		c->in_len += (size_t)n;
	}
	size_t pos = 0;
	while (c->in_len - pos >= FRAME_HDR_LEN) {
		uint16_t type, flags;
		uint32_t reqid;
		long bl = frame_parse_header(c->in + pos, &type, &flags, &reqid);
		if (bl < 0)
			return -EPROTO;
		if (c->in_len - pos - FRAME_HDR_LEN < (size_t)bl)
			break;
		if (!(flags & FRAME_F_PUSH)) {
			uint64_t t = now_ns() - c->start[reqid % DEPTH_MAX];
			uint32_t st = bl >= 4 ? le_get_u32(c->in + pos + FRAME_HDR_LEN) : 1;
			if (measuring) {
				lat_add(t);
				g_ops++;
				if (st != 0)
					g_errors++;
				else if (type == MSG_FETCH)
					g_bytes += size;
			}
			c->inflight--;
		}
		pos += FRAME_HDR_LEN + (size_t)bl;
	}
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: encore-load --server HOST:PORT [--realm R] [--conns N] [--seconds S]\n"
		   "                   [--depth D] [--size BYTES]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "realm", required_argument, NULL, 'r' },
		{ "conns", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 't' },
		{ "depth", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = NULL, *realm = "local";
	unsigned long conns = 1000, seconds = 10, depth = 1, size = 4096;
	struct rlimit rl;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			addr = optarg;
			break;
		case 'r':
			realm = optarg;
			break;
		case 'c':
			conns = strtoul(optarg, NULL, 10);
			break;
		case 't':
			seconds = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			depth = strtoul(optarg, NULL, 10);
			break;
		case 'z':
			size = strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (addr == NULL || conns == 0 || conns > 100000 || depth == 0 || depth > DEPTH_MAX ||
	    size > CHUNK_MAX || seconds == 0) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	log_init("encore-load", LOG_NOTICE, false);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ret = setup_file(addr, realm, size);
	if (ret < 0) {
		fprintf(stderr, "encore-load: cannot create the test file: %s\n", err_str(ret));
		return 1;
	}

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct lconn *cs = xcalloc(conns, sizeof(*cs));
	size_t cap = FRAME_HDR_LEN + FRAME_BODY_MAX;
	uint8_t *buf = xmalloc(cap);
	struct msg *req = xmalloc(sizeof(*req)), *rep = xmalloc(sizeof(*rep));
	uint64_t t0 = now_ns();
	for (unsigned long i = 0; i < conns; i++) {
		struct lconn *c = &cs[i];
		c->fd = net_connect(addr, 10000);
		if (c->fd < 0) {
			fprintf(stderr, "encore-load: connection %lu: %s\n", i, err_str(c->fd));
			return 1;
		}
		ret = hello(c->fd, req, rep, buf, cap, realm);
		if (ret < 0) {
			fprintf(stderr, "encore-load: hello %lu: %s\n", i, err_str(ret));
			return 1;
		}
		c->next_reqid = 1;
		wr_init(&c->out);
		net_set_nonblock(c->fd, 1);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	fprintf(stderr, "encore-load: %lu connections up in %.2f s\n", conns,
		(double)(now_ns() - t0) / 1e9);

	uint64_t warm = now_ns() + 1000000000ull, end = warm + seconds * 1000000000ull;
	bool measuring = false;
	uint64_t mstart = 0;
	for (unsigned long i = 0; i < conns; i++) {
		while (cs[i].inflight < depth)
			queue_call(&cs[i], size);
		conn_flush(&cs[i]);
	}
	struct epoll_event evs[512];
	for (;;) {
		uint64_t now = now_ns();
		if (!measuring && now >= warm) {
			measuring = true;
			mstart = now;
		}
		if (now >= end)
			break;
		int n = epoll_wait(ep, evs, 512, 100);
		for (int i = 0; i < n; i++) {
			struct lconn *c = evs[i].data.ptr;
			ret = conn_input(c, measuring, size);
			if (ret < 0) {
				fprintf(stderr, "encore-load: connection failed: %s\n",
					err_str(ret));
				return 1;
			}
			while (c->inflight < depth)
				queue_call(c, size);
			if (conn_flush(c) < 0) {
				fprintf(stderr, "encore-load: send failed\n");
				return 1;
			}
		}
	}
	double secs = (double)(now_ns() - mstart) / 1e9;
	qsort(g_lat.v, g_lat.n, sizeof(*g_lat.v), cmp_u64);
	uint64_t p50 = g_lat.n ? g_lat.v[g_lat.n / 2] : 0;
	uint64_t p99 = g_lat.n ? g_lat.v[g_lat.n * 99 / 100] : 0;
	uint64_t pmax = g_lat.n ? g_lat.v[g_lat.n - 1] : 0;
	printf("conns\t%lu\ndepth\t%lu\nsize\t%lu\nseconds\t%.2f\nops\t%" PRIu64
	       "\nerrors\t%" PRIu64 "\nops_per_sec\t%.0f\nfetch_MiB_per_sec\t%.1f\n"
	       "p50_us\t%.0f\np99_us\t%.0f\nmax_us\t%.0f\n",
	       conns, depth, size, secs, g_ops, g_errors, (double)g_ops / secs,
	       (double)g_bytes / secs / 1048576.0, (double)p50 / 1e3, (double)p99 / 1e3,
	       (double)pmax / 1e3);
	return g_errors == 0 ? 0 : 1;
}
