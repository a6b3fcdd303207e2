/*
 * main.c - encore-client: options, wiring of conn/cache/inode/fsops/ctl,
 * the FUSE session and its multi-threaded loop. Everything else lives in
 * libclient.a.
 */
#include <errno.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "client/cache.h"
#include "client/cml.h"
#include "client/client.h"
#include "client/conn.h"
#include "client/ctl.h"
#include "client/emul.h"
#include "client/fsops.h"
#include "client/hoard.h"
#include "client/cstate.h"
#include "client/flusher.h"
#include "client/inode.h"
#include "client/reint.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/xalloc.h"

/* Default --cache-size, MiB (docs/architecture.md). */
#define DEFAULT_CACHE_MIB 1024
/* Upper bound of FUSE worker threads: each may wait on one server call. */
#define MAX_WORKERS 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: encore-client --mount PATH --cache DIR --realm REALM --server ADDR [--server ADDR ...]\n"
		"                     [--cache-size MIB] [--socket PATH] [--ready-fd N] [--hoard-interval SECONDS]\n"
		"                     [-v|-vv] [--syslog] [--trace]\n"
		"\n"
		"Mounts the Encore realm REALM at PATH; PATH/REALM is the realm's root.\n"
		"  --mount PATH       mount point\n"
		"  --cache DIR        cache directory (containers + index); created if missing\n"
		"  --realm REALM      realm name\n"
		"  --server ADDR      server address HOST:PORT (repeatable)\n"
		"  --cache-size MIB   cache size limit (default %d)\n"
		"  --socket PATH      control socket (default DIR/ctl.sock)\n"
		"  --ready-fd N       write a newline to fd N once the mount is usable\n"
		"  --hoard-interval SECONDS  hoard walk period (default %d; 0 = only on demand\n"
		"                     and after a volume reconnects)\n"
		"  --aging SECONDS    weak connectivity: CML records older than this are\n"
		"                     sent in the background (default 30)\n"
		"  --weak-threshold KBPS  below this measured bandwidth a volume is weakly\n"
		"                     connected (default 50; 0 = never)\n"
		"  -v, -vv            more logging\n"
		"  --syslog           log to syslog instead of stderr\n"
		"  --trace            log every message (debug level)\n"
		"  -h, --help         this help\n",
		DEFAULT_CACHE_MIB, HOARD_INTERVAL_DEFAULT);
}

/* libfuse hands us its own printf-style format; the attribute lets the
 * compiler check the forwarding (clang -Wformat-nonliteral). */
__attribute__((format(printf, 2, 0))) static void fuse_log_to_ours(enum fuse_log_level level,
								   const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_msg((int)level, "fuse", "%s", buf);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

/* True if a volume has CML records left by an earlier run. */
static bool cml_pending(struct cml *m)
{
	uint32_t vols[64]; /* as many as the CML keeps */
	size_t nv = cml_volumes(m, vols, 64);
	uint64_t n, bytes;

	for (size_t i = 0; i < nv; i++) {
		cml_count(m, vols[i], &n, &bytes);
		if (n > 0)
			return true;
	}
	return false;
}

/* No server answers at start, or the user forced a volume disconnected
 * (n_forced states restored, cstate_restore_forced) before a restart, or
 * the CML is not empty: the state cstate.c saved lets the client mount
 * anyway and serve its cache to the volumes that are disconnected, and
 * shows what the log changed (listings of the directories it names) until
 * the log is reintegrated: the servers do not have it yet. *restored gets
 * the inodes it made (references for hoard_adopt). */
static void start_offline(struct client *cl, int n_forced, struct inode ***restored, size_t *n)
{
	struct conn_server_info si[64];
	size_t ns = conn_check_servers(cl->conn, si, 64, true);
	bool pending = cml_pending(cl->cml);
	int ret;

	*restored = NULL;
	*n = 0;
	for (size_t i = 0; i < ns && n_forced <= 0 && !pending; i++) {
		if (si[i].up)
			return;
	}
	ret = cstate_restore(cl, restored, n);
	if (ret >= 0 && n_forced > 0)
		log_notice("client", "forced states restored: %d object(s) cached", ret);
	else if (ret >= 0 && pending)
		log_notice("client", "CML not empty: %d object(s) cached", ret);
	else if (ret >= 0)
		log_notice("client",
			   "no server answers: starting disconnected, %d object(s) cached", ret);
	else if (ret != -ENOENT)
		log_warn("client", "cannot restore the saved client state: %s", err_str(ret));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mount", required_argument, NULL, 'm' },
		{ "cache", required_argument, NULL, 'c' },
		{ "realm", required_argument, NULL, 'r' },
		{ "server", required_argument, NULL, 's' },
		{ "cache-size", required_argument, NULL, 'S' },
		{ "socket", required_argument, NULL, 'k' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "hoard-interval", required_argument, NULL, 'H' },
		{ "aging", required_argument, NULL, 'A' },
		{ "weak-threshold", required_argument, NULL, 'W' },
		{ "syslog", no_argument, NULL, 'L' },
		{ "trace", no_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct client cl;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lcfg;
	struct ctl *ctl = NULL;
	struct inode **restored;
	size_t n_restored;
	char sock_buf[PATH_MAX], optbuf[PATH_MAX + 128], mnt_real[PATH_MAX];
	uint64_t mib = DEFAULT_CACHE_MIB, ready_fd = UINT64_MAX, v64;
	int verbose = 0, use_syslog = 0, trace = 0, c, ret, rc = 1, n_forced;

	/* Every bulk frame is a CHUNK_MAX buffer: keep them on the heap instead
	 * of an mmap + page-zeroing + munmap per chunk. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	memset(&cl, 0, sizeof(cl));
	cl.hoard_interval = HOARD_INTERVAL_DEFAULT;
	cl.servers = xcalloc((size_t)argc + 1, sizeof(*cl.servers));
	cl.aging_sec = 30;
	cl.weak_kbps = 50;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			cl.mount = optarg;
			break;
		case 'c':
			cl.cache_dir = optarg;
			break;
		case 'r':
			cl.realm = optarg;
			break;
		case 's':
			cl.servers[cl.n_servers++] = optarg;
			break;
		case 'S':
			if (parse_u64(optarg, 1ull << 30, &mib) < 0 || mib == 0)
				fatal(2, "invalid --cache-size '%s': expected MiB, 1..2^30",
				      optarg);
			break;
		case 'k':
			cl.sock_path = optarg;
			break;
		case 'R':
			if (parse_u64(optarg, INT_MAX, &v64) < 0)
				fatal(2, "invalid --ready-fd '%s'", optarg);
			ready_fd = v64;
			break;
		case 'H':
			if (parse_u64(optarg, 86400 * 365, &v64) < 0)
				fatal(2, "invalid --hoard-interval '%s': expected seconds", optarg);
			cl.hoard_interval = (unsigned)v64;
			break;
		case 'A':
			if (parse_u64(optarg, 86400, &v64) < 0)
				fatal(2, "invalid --aging '%s': expected seconds", optarg);
			cl.aging_sec = (uint32_t)v64;
			break;
		case 'W':
			if (parse_u64(optarg, 1u << 30, &v64) < 0)
				fatal(2, "invalid --weak-threshold '%s': expected KB/s", optarg);
			cl.weak_kbps = (uint32_t)v64;
			break;
		case 'L':
			use_syslog = 1;
			break;
		case 'T':
			trace = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || cl.mount == NULL || cl.cache_dir == NULL || cl.realm == NULL ||
	    cl.n_servers == 0) {
		usage(stderr);
		return 2;
	}
	log_init("encore-client",
		 trace || verbose >= 2 ? LOG_DEBUG
		 : verbose	       ? LOG_INFO
				       : LOG_NOTICE,
		 use_syslog);
	fuse_set_log_func(fuse_log_to_ours);
	if (sodium_init() < 0)
		fatal(1, "cannot initialise libsodium");
	if (strlen(cl.realm) == 0 || strlen(cl.realm) > REALM_MAX_LEN || strchr(cl.realm, '/'))
		fatal(2, "invalid --realm '%s'", cl.realm);
	ret = fs_mkdirs(cl.cache_dir, 0700);
	if (ret < 0)
		fatal(1, "cannot create cache directory '%s': %s", cl.cache_dir, err_str(ret));
	if (realpath(cl.cache_dir, sock_buf) == NULL)
		fatal(1, "cannot resolve '%s': %s", cl.cache_dir, strerror(errno));
	cl.cache_dir = xstrdup(sock_buf);
	if (cl.sock_path == NULL) {
		if (snprintf(sock_buf, sizeof(sock_buf), "%s/ctl.sock", cl.cache_dir) >=
		    (int)sizeof(sock_buf))
			fatal(2, "cache path too long");
		cl.sock_path = xstrdup(sock_buf);
	} else {
		cl.sock_path = xstrdup(cl.sock_path);
	}
	if (realpath(cl.mount, mnt_real) == NULL)
		fatal(2, "cannot resolve mount point '%s': %s", cl.mount, strerror(errno));
	cl.mount = mnt_real;
	cl.cache_limit = mib << 20;
	cl.start_sec = time(NULL);
	pthread_mutex_init(&cl.root_lock, NULL);

	ret = cache_open(cl.cache_dir, cl.cache_limit, &cl.cache);
	if (ret < 0)
		fatal(1, "cannot open cache '%s': %s", cl.cache_dir, err_str(ret));
	cl.itab = itab_new();
	cl.conn = conn_new(cl.realm, (const char *const *)cl.servers, cl.n_servers, fsops_on_break,
			   fsops_on_lost, &cl);
	ret = cml_open(cl.cache, cl.conn, &cl.cml);
	if (ret < 0)
		fatal(1, "cannot open the CML in '%s': %s", cl.cache_dir, err_str(ret));
	/* A disconnection the user forced outlives a restart. */
	n_forced = cstate_restore_forced(&cl);
	if (n_forced < 0)
		log_warn("client", "cannot restore the forced volume states: %s",
			 err_str(n_forced));
	conn_set_gate(cl.conn, emul_gate, &cl);
	ret = conn_start_probes(cl.conn);
	if (ret < 0)
		fatal(1, "cannot start server probes: %s", err_str(ret));
	cl.cstate = cstate_new(&cl);
	start_offline(&cl, n_forced, &restored, &n_restored);

	if (snprintf(optbuf, sizeof(optbuf),
		     "-oallow_other,default_permissions,fsname=encore:%s,subtype=encore",
		     cl.sock_path) >= (int)sizeof(optbuf))
		fatal(2, "socket path too long");
	if (fuse_opt_add_arg(&args, "encore-client") != 0 || fuse_opt_add_arg(&args, optbuf) != 0)
		fatal(1, "out of memory");
	cl.se = fuse_session_new(&args, fsops_ops(), sizeof(struct fuse_lowlevel_ops), &cl);
	if (cl.se == NULL)
		fatal(1, "cannot create FUSE session");
	if (fuse_set_signal_handlers(cl.se) != 0)
		fatal(1, "cannot install signal handlers");
	ret = fsops_start(&cl);
	if (ret < 0)
		fatal(1, "cannot start notifier: %s", err_str(ret));
	ret = flusher_start(&cl, &cl.flusher);
	if (ret < 0)
		fatal(1, "cannot start the store retry thread: %s", err_str(ret));
	ret = hoard_start(&cl, cl.hoard_interval, &cl.hoard);
	if (ret < 0)
		fatal(1, "cannot start the hoard thread: %s", err_str(ret));
	hoard_adopt(cl.hoard, restored, n_restored);
	ret = reint_start(&cl);
	if (ret < 0)
		fatal(1, "cannot start the reintegration thread: %s", err_str(ret));
	ret = ctl_start(&cl, &ctl);
	if (ret < 0)
		fatal(1, "cannot listen on control socket '%s': %s", cl.sock_path, err_str(ret));
	if (fuse_session_mount(cl.se, cl.mount) != 0)
		fatal(1, "cannot mount '%s'", cl.mount);
	log_notice("client", "mounted realm '%s' at '%s'", cl.realm, cl.mount);
	if (ready_fd != UINT64_MAX) {
		if (write((int)ready_fd, "\n", 1) != 1)
			log_warn("client", "cannot write ready fd: %s", strerror(errno));
		close((int)ready_fd);
	}
	lcfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lcfg, 0);
	fuse_loop_cfg_set_max_threads(lcfg, MAX_WORKERS);
	ret = fuse_session_loop_mt(cl.se, lcfg);
	fuse_loop_cfg_destroy(lcfg);
	rc = ret < 0 ? 1 : 0;
	fuse_session_unmount(cl.se);
	fuse_remove_signal_handlers(cl.se);
	ctl_stop(ctl);
	reint_stop(&cl);
	flusher_stop(cl.flusher);
	cl.flusher = NULL;
	/* Before the hoard's references go: what the kernel and the hoard
	 * hold is what the next start without network can serve. */
	ret = cstate_checkpoint(cl.cstate);
	if (ret < 0)
		log_warn("client", "cannot save the client state: %s", err_str(ret));
	hoard_stop(cl.hoard);
	cl.hoard = NULL;
	fsops_stop(&cl);
	fuse_session_destroy(cl.se);
	cl.se = NULL;
	conn_free(cl.conn);
	cml_close(cl.cml);
	cstate_free(cl.cstate);
	itab_free(cl.itab);
	cache_close(cl.cache);
	fuse_opt_free_args(&args);
	log_notice("client", "stopped");
	free(cl.sock_path);
	free(cl.cache_dir);
	free(cl.servers);
	pthread_mutex_destroy(&cl.root_lock);
	return rc;
}
