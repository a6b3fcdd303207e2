/*
 * main.c - encore-server: options, the `init` subcommand, signals, and the
 * loop (server/loop.c). Command lines: docs/architecture.md.
 * Owns:    the stop flag (the only mutable global).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/proto.h"
#include "server/ops.h"
#include "server/server.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: encore-server init --dir DIR --server-id N --realm REALM [--volume-id V]\n"
		"                          [--root-mode OCTAL] [--root-owner UID:GID] [--vsg ID,ID,...]\n"
		"       encore-server --dir DIR [--listen ADDR] [--ready-fd N] [--port-file F]\n"
		"                     [--peers FILE] [-v|-vv] [--syslog] [--trace] [--cop2-ttl S]\n"
		"\n"
		"  init creates DIR/meta, DIR/data and the realm's root volume (default 1)\n"
		"  replicated on the servers of --vsg (default: this server alone).\n"
		"  --peers names every server's address (ini: [server N] address = HOST:PORT).\n"
		"  --listen defaults to 0.0.0.0:%d; port 0 picks a free port (see --port-file).\n"
		"  --ready-fd N writes a newline to fd N once serving. SIGTERM stops cleanly.\n"
		"  --cop2-ttl S drops pending phase-two entries older than S seconds (600).\n",
		PROTO_DEFAULT_PORT);
}

/* strtoull with end and range checks. */
static int parse_u(const char *s, int base, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (s[0] == '\0' || s[0] == '-')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, base);
	if (errno != 0 || *end != '\0' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "1,2,3": 1..VV_MAX distinct server ids in slot order. */
static int parse_vsg(const char *s, struct vsg *out)
{
	char buf[256];
	char *save = NULL, *tok;
	unsigned long long v;

	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -EINVAL;
	out->n = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (out->n == VV_MAX || parse_u(tok, 10, UINT32_MAX, &v) < 0)
			return -EINVAL;
		for (uint32_t i = 0; i < out->n; i++)
			if (out->ids[i] == v)
				return -EINVAL;
		out->ids[out->n++] = (uint32_t)v;
	}
	return out->n > 0 ? 0 : -EINVAL;
}

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "server-id", required_argument, NULL, 's' },
		{ "realm", required_argument, NULL, 'r' },
		{ "volume-id", required_argument, NULL, 'V' },
		{ "root-mode", required_argument, NULL, 'm' },
		{ "root-owner", required_argument, NULL, 'o' },
		{ "vsg", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *realm = NULL;
	unsigned long long sid = 0, vol = 1, mode = 0755, uid = 0, gid = 0;
	bool have_sid = false;
	const char *vsg_arg = NULL;
	struct vsg vsg = { 0 };
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			if (parse_u(optarg, 10, UINT32_MAX, &sid) < 0) {
				fprintf(stderr, "encore-server: bad --server-id '%s'\n", optarg);
				return 2;
			}
			have_sid = true;
			break;
		case 'r':
			realm = optarg;
			break;
		case 'V':
			if (parse_u(optarg, 10, UINT32_MAX, &vol) < 0 || vol == 0) {
				fprintf(stderr, "encore-server: bad --volume-id '%s'\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (parse_u(optarg, 8, 07777, &mode) < 0) {
				fprintf(stderr, "encore-server: bad --root-mode '%s' (octal)\n",
					optarg);
				return 2;
			}
			break;
		case 'o': {
			char buf[64];
			char *colon;
			snprintf(buf, sizeof(buf), "%s", optarg);
			colon = strchr(buf, ':');
			if (colon == NULL) {
				fprintf(stderr, "encore-server: --root-owner wants UID:GID\n");
				return 2;
			}
			*colon = '\0';
			if (parse_u(buf, 10, UINT32_MAX - 1, &uid) < 0 ||
			    parse_u(colon + 1, 10, UINT32_MAX - 1, &gid) < 0) {
				fprintf(stderr, "encore-server: bad --root-owner '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'g':
			vsg_arg = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (vsg_arg != NULL && parse_vsg(vsg_arg, &vsg) < 0) {
		fprintf(stderr,
			"encore-server: bad --vsg '%s' (1 to %d distinct ids, comma-separated)\n",
			vsg_arg, VV_MAX);
		return 2;
	}
	if (vsg_arg == NULL) {
		vsg.n = 1;
		vsg.ids[0] = (uint32_t)sid;
	}
	bool member = false;
	for (uint32_t i = 0; i < vsg.n; i++)
		member = member || vsg.ids[i] == sid;
	if (!member) {
		fprintf(stderr, "encore-server: --vsg must contain --server-id %llu\n", sid);
		return 2;
	}
	if (optind != argc || dir == NULL || realm == NULL || !have_sid) {
		fprintf(stderr,
			"encore-server init: --dir, --server-id and --realm are required\n");
		usage(stderr);
		return 2;
	}
	if (realm[0] == '\0' || strlen(realm) > REALM_MAX_LEN) {
		fprintf(stderr, "encore-server: bad realm '%s'\n", realm);
		return 2;
	}
	ret = ops_format(dir, (uint32_t)sid, realm, (uint32_t)vol, (uint32_t)mode, (uint32_t)uid,
			 (uint32_t)gid, &vsg);
	if (ret == -EEXIST) {
		fprintf(stderr, "encore-server: '%s' is already initialised\n", dir);
		return 2;
	}
	if (ret < 0) {
		fprintf(stderr, "encore-server: cannot initialise '%s': %s\n", dir, err_str(ret));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "peers", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "syslog", no_argument, NULL, 'S' },
		{ "trace", no_argument, NULL, 'T' },
		{ "cop2-ttl", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_cfg cfg = { .listen = "0.0.0.0:2432", .ready_fd = -1 };
	char listen_buf[64];
	bool use_syslog = false;
	int verbose = 0, c, ret;
	unsigned long long v;

	if (sodium_init() < 0) {
		fprintf(stderr, "encore-server: cannot initialise libsodium\n");
		return 1;
	}
	snprintf(listen_buf, sizeof(listen_buf), "0.0.0.0:%d", PROTO_DEFAULT_PORT);
	cfg.listen = listen_buf;
	if (argc > 1 && strcmp(argv[1], "init") == 0) {
		log_init("encore-server", LOG_NOTICE, false);
		return cmd_init(argc - 1, argv + 1);
	}
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cfg.dir = optarg;
			break;
		case 'l':
			cfg.listen = optarg;
			break;
		case 'R':
			if (parse_u(optarg, 10, INT_MAX, &v) < 0) {
				fprintf(stderr, "encore-server: bad --ready-fd '%s'\n", optarg);
				return 2;
			}
			cfg.ready_fd = (int)v;
			break;
		case 'P':
			cfg.port_file = optarg;
			break;
		case 'p':
			cfg.peers = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'S':
			use_syslog = true;
			break;
		case 'T':
			cfg.trace = true;
			break;
		case 'C':
			if (parse_u(optarg, 10, UINT32_MAX, &v) < 0 || v == 0) {
				fprintf(stderr,
					"encore-server: bad --cop2-ttl '%s' (seconds, >= 1)\n",
					optarg);
				return 2;
			}
			cfg.cop2_ttl_s = (uint32_t)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || cfg.dir == NULL) {
		fprintf(stderr, "encore-server: --dir is required\n");
		usage(stderr);
		return 2;
	}
	log_init("encore-server",
		 verbose >= 2	? LOG_DEBUG
		 : verbose == 1 ? LOG_INFO
				: LOG_NOTICE,
		 use_syslog);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	ret = server_run(&cfg, &stop_flag);
	return ret < 0 ? 1 : 0;
}
