/*
 * encore-probe.c - the "normal client" of the load benchmark: one ordinary
 * connection to encore-server that does a GETATTR of the realm root at a
 * steady, low rate and reports its latency (p50/p99/max). Run next to
 * encore-load, it shows whether the server stays responsive to a client
 * that is not part of the load.
 * Owns:    one rpc_conn (common/rpc.h) and its sample array; single thread.
 *
 * encore-probe --server ADDR [--realm R] [--seconds S] [--rate HZ]
 *              [--wait-conns N] [--timeout-ms MS] [--json]
 *
 * With --wait-conns N the probe first polls STATS (every 100 ms, at most
 * WAIT_MAX_S) until the server holds at least N connections, so that its
 * measurement covers the time the load is running rather than its setup.
 * Exit: 0 when every probe call succeeded in time, 1 otherwise, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/rpc.h"
#include "common/xalloc.h"

/* A probe run is a benchmark phase, not a soak test: an hour is plenty. */
#define SECONDS_MAX 3600
/* Above 1000 calls/s the probe would itself be load. */
#define RATE_MAX 1000
/* Longest wait for the load's connections to appear (1000s of connects and
 * HELLOs take about a second on one core). */
#define WAIT_MAX_S	   120
#define CONNECT_TIMEOUT_MS 5000

struct probe_cfg {
	const char *server;
	const char *realm;
	uint64_t seconds;
	uint64_t rate;
	uint64_t wait_conns;
	uint64_t timeout_ms;
	bool json;
};

struct probe_result {
	uint64_t hello_us; /* connect + HELLO */
	uint64_t *lat_us;  /* owned: one sample per successful call */
	size_t n_lat, cap_lat;
	uint64_t calls;
	uint64_t errors;     /* non-OK status */
	uint64_t timeouts;   /* no reply within timeout_ms */
	uint64_t conns_seen; /* server connections when measuring started */
	double elapsed_s;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: encore-probe --server ADDR [--realm R] [--seconds S] [--rate HZ]\n"
		"                    [--wait-conns N] [--timeout-ms MS] [--json]\n"
		"\n"
		"A normal client next to a load: GETATTR of the realm root at HZ calls/s\n"
		"(default 10) for S seconds (default 10) on one connection; prints calls,\n"
		"errors, timeouts and latency p50/p99/max in microseconds.\n"
		"  --wait-conns N   first wait (at most %d s) until the server has N connections\n"
		"  --timeout-ms MS  a call without a reply after MS (default 5000) is a timeout\n"
		"  --realm R        realm given in HELLO and GETROOT (default local)\n",
		WAIT_MAX_S);
}

static bool parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static const char *opt_name(const struct option *opts, int val)
{
	for (; opts->name != NULL; opts++) {
		if (opts->val == val)
			return opts->name;
	}
	return "?";
}

static void cred_self(struct cred *c)
{
	c->uid = (uint32_t)geteuid();
	c->gid = (uint32_t)getegid();
	c->n_groups = 0;
}

/* One blocking call; returns the transport error or the server's status. */
static int call(struct rpc_conn *c, struct msg *req, struct msg *rep, int timeout_ms)
{
	struct rpc_call *rc = NULL;
	int ret;

	ret = rpc_call(c, req, rep, timeout_ms, &rc);
	if (ret == 0)
		ret = rep->status;
	rpc_call_free(rc);
	return ret;
}

/* Reads "connections N" from a STATS reply (untrusted text of data_len bytes). */
static int stats_connections(const struct msg *rep, uint64_t *out)
{
	static const char key[] = "connections ";
	const size_t klen = sizeof(key) - 1;
	size_t pos = 0, len = rep->data_len;
	const char *p = (const char *)rep->data;

	while (pos < len) {
		size_t eol = pos;
		while (eol < len && p[eol] != '\n')
			eol++;
		if (eol - pos > klen && memcmp(p + pos, key, klen) == 0) {
			uint64_t v = 0;
			size_t i = pos + klen;
			if (eol - i > 19)
				return -EPROTO;
			for (; i < eol; i++) {
				if (p[i] < '0' || p[i] > '9')
					return -EPROTO;
				v = v * 10 + (uint64_t)(p[i] - '0');
			}
			*out = v;
			return 0;
		}
		pos = eol + 1;
	}
	return -ENOENT;
}

static int wait_conns(struct rpc_conn *c, struct msg *req, struct msg *rep,
		      const struct probe_cfg *cfg, uint64_t *seen)
{
	uint64_t deadline = now_ns() + (uint64_t)WAIT_MAX_S * 1000000000u;
	int ret;

	for (;;) {
		msg_init(req, MSG_STATS);
		ret = call(c, req, rep, (int)cfg->timeout_ms);
		if (ret == 0)
			ret = stats_connections(rep, seen);
		if (ret < 0)
			return ret;
		if (*seen >= cfg->wait_conns)
			return 0;
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		nanosleep(&ts, NULL);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n); 0 when empty. */
static uint64_t pct(const uint64_t *v, size_t n, unsigned per_mille)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (n * per_mille + 999) / 1000;
	return v[rank == 0 ? 0 : rank - 1];
}

static int run(const struct probe_cfg *cfg, struct probe_result *res)
{
	struct msg *req = xcalloc(1, sizeof(*req)), *rep = xcalloc(1, sizeof(*rep));
	struct rpc_conn *c = NULL;
	struct fid root;
	uint64_t t0, interval, next, end;
	int ret;

	t0 = now_ns();
	ret = rpc_open(cfg->server, CONNECT_TIMEOUT_MS, NULL, NULL, NULL, &c);
	if (ret < 0) {
		log_err("probe", "cannot connect to '%s': %s", cfg->server, err_str(ret));
		goto out;
	}
	msg_init(req, MSG_HELLO);
	req->version = PROTO_VERSION;
	randombytes_buf(&req->client_id, sizeof(req->client_id));
	snprintf(req->realm, sizeof(req->realm), "%s", cfg->realm);
	snprintf(req->name, sizeof(req->name), "encore-probe");
	ret = call(c, req, rep, (int)cfg->timeout_ms);
	if (ret < 0) {
		log_err("probe", "hello to '%s' failed: %s", cfg->server, err_str(ret));
		goto out;
	}
	res->hello_us = (now_ns() - t0) / 1000;
	msg_init(req, MSG_GETROOT);
	cred_self(&req->cred);
	snprintf(req->realm, sizeof(req->realm), "%s", cfg->realm);
	ret = call(c, req, rep, (int)cfg->timeout_ms);
	if (ret < 0) {
		log_err("probe", "getroot of realm '%s' failed: %s", cfg->realm, err_str(ret));
		goto out;
	}
	root = rep->attr.fid;
	if (cfg->wait_conns > 0) {
		ret = wait_conns(c, req, rep, cfg, &res->conns_seen);
		if (ret < 0) {
			log_err("probe", "waiting for %" PRIu64 " server connections: %s",
				cfg->wait_conns, err_str(ret));
			goto out;
		}
	}

	res->cap_lat = (size_t)(cfg->seconds * cfg->rate) + 1;
	res->lat_us = xcalloc(res->cap_lat, sizeof(*res->lat_us));
	interval = 1000000000u / cfg->rate;
	t0 = now_ns();
	end = t0 + cfg->seconds * 1000000000u;
	for (next = t0; next < end && res->calls < res->cap_lat; next += interval) {
		uint64_t now = now_ns();
		if (next > now) {
			struct timespec ts = { .tv_sec = (time_t)((next - now) / 1000000000u),
					       .tv_nsec = (long)((next - now) % 1000000000u) };
			nanosleep(&ts, NULL);
		} else if (now - next > interval) {
			next = now; /* a slow call: skip the missed ticks, do not burst */
		}
		msg_init(req, MSG_GETATTR);
		cred_self(&req->cred);
		req->fid = root;
		uint64_t t1 = now_ns();
		ret = call(c, req, rep, (int)cfg->timeout_ms);
		uint64_t us = (now_ns() - t1) / 1000;
		res->calls++;
		if (ret == -ETIMEDOUT) {
			res->timeouts++;
		} else if (ret == -ENOTCONN || ret == -EPROTO || !rpc_alive(c)) {
			log_err("probe", "connection to '%s' lost: %s", cfg->server, err_str(ret));
			res->errors++;
			break;
		} else if (ret < 0) {
			res->errors++;
		} else {
			res->lat_us[res->n_lat++] = us;
		}
	}
	res->elapsed_s = (double)(now_ns() - t0) / 1e9;
	ret = 0;
out:
	rpc_close(c);
	free(req);
	free(rep);
	return ret;
}

static int print_result(const struct probe_cfg *cfg, const struct probe_result *res)
{
	const uint64_t *v = res->lat_us;
	size_t n = res->n_lat;
	uint64_t p50 = pct(v, n, 500), p99 = pct(v, n, 990), max = n ? v[n - 1] : 0;
	int ret = 0;

	if (cfg->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "server", json_object_new_string(cfg->server));
		json_object_object_add(o, "rate_hz", json_object_new_int64((int64_t)cfg->rate));
		char secs[32];
		snprintf(secs, sizeof(secs), "%.3f", res->elapsed_s);
		json_object_object_add(o, "seconds",
				       json_object_new_double_s(res->elapsed_s, secs));
		json_object_object_add(o, "server_connections",
				       json_object_new_int64((int64_t)res->conns_seen));
		json_object_object_add(o, "hello_us",
				       json_object_new_int64((int64_t)res->hello_us));
		json_object_object_add(o, "calls", json_object_new_int64((int64_t)res->calls));
		json_object_object_add(o, "errors", json_object_new_int64((int64_t)res->errors));
		json_object_object_add(o, "timeouts",
				       json_object_new_int64((int64_t)res->timeouts));
		json_object_object_add(o, "p50_us", json_object_new_int64((int64_t)p50));
		json_object_object_add(o, "p99_us", json_object_new_int64((int64_t)p99));
		json_object_object_add(o, "max_us", json_object_new_int64((int64_t)max));
		if (puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY)) == EOF)
			ret = -EIO;
		json_object_put(o);
	} else {
		if (printf("server_connections\t%" PRIu64 "\nhello_us\t%" PRIu64
			   "\nseconds\t%.2f\ncalls\t%" PRIu64 "\nerrors\t%" PRIu64
			   "\ntimeouts\t%" PRIu64 "\np50_us\t%" PRIu64 "\np99_us\t%" PRIu64
			   "\nmax_us\t%" PRIu64 "\n",
			   res->conns_seen, res->hello_us, res->elapsed_s, res->calls, res->errors,
			   res->timeouts, p50, p99, max) < 0)
			ret = -EIO;
	}
	if (fflush(stdout) == EOF)
		ret = -EIO;
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "realm", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'R' },
		{ "wait-conns", required_argument, NULL, 'w' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct probe_cfg cfg = {
		.realm = "local",
		.seconds = 10,
		.rate = 10,
		.timeout_ms = 5000,
	};
	struct probe_result res = { 0 };
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		bool ok = true;
		switch (opt) {
		case 's':
			cfg.server = optarg;
			break;
		case 'r':
			cfg.realm = optarg;
			ok = strlen(optarg) > 0 && strlen(optarg) <= REALM_MAX_LEN;
			break;
		case 't':
			ok = parse_uint(optarg, 1, SECONDS_MAX, &cfg.seconds);
			break;
		case 'R':
			ok = parse_uint(optarg, 1, RATE_MAX, &cfg.rate);
			break;
		case 'w':
			ok = parse_uint(optarg, 0, 1000000, &cfg.wait_conns);
			break;
		case 'T':
			ok = parse_uint(optarg, 1, 600000, &cfg.timeout_ms);
			break;
		case 'j':
			cfg.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (!ok) {
			fprintf(stderr, "encore-probe: bad value '%s' for --%s\n", optarg,
				opt_name(opts, opt));
			return 2;
		}
	}
	if (cfg.server == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "encore-probe: cannot initialise libsodium\n");
		return 1;
	}
	log_init("encore-probe", LOG_NOTICE, false);
	ret = run(&cfg, &res);
	if (ret == 0) {
		qsort(res.lat_us, res.n_lat, sizeof(*res.lat_us), cmp_u64);
		ret = print_result(&cfg, &res);
	}
	free(res.lat_us);
	if (ret < 0)
		return 1;
	return res.errors == 0 && res.timeouts == 0 ? 0 : 1;
}
