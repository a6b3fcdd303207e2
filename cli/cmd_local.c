/*
 * cmd_local.c - `encore local <action>`: a whole realm on this machine.
 * Dispatches to up (cmd_local_up.c) and down (cmd_local_down.c) and holds
 * the small actions: status, stop-server, start-server, freeze-server,
 * thaw-server.
 * Borrows: everything about state and processes from local.c.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd_local.h"
#include "cli/local.h"

struct local_action {
	const char *name;
	cli_cmd_fn fn;
	const char *help;
};

static int local_status(int argc, char **argv);
static int local_stop_server(int argc, char **argv);
static int local_start_server_cmd(int argc, char **argv);
static int local_freeze_server(int argc, char **argv);
static int local_thaw_server(int argc, char **argv);

static const struct local_action actions[] = {
	{ "up", cmd_local_up, "start servers and mounted clients" },
	{ "down", cmd_local_down, "unmount, stop everything and remove DIR" },
	{ "status", local_status, "show mounts, processes and ports" },
	{ "stop-server", local_stop_server, "kill -9 server N (to test failover)" },
	{ "start-server", local_start_server_cmd, "restart server N on its old port" },
	{ "freeze-server", local_freeze_server, "SIGSTOP server N (a hung server)" },
	{ "thaw-server", local_thaw_server, "SIGCONT server N" },
};

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore local <action> [--dir DIR] [options]\n"
		"\n"
		"Runs a complete realm named '" LOCAL_REALM "' on this machine: servers on\n"
		"127.0.0.1 and FUSE clients mounted under DIR (default " LOCAL_DEFAULT_DIR ").\n"
		"\n"
		"Actions:\n");
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		fprintf(fp, "  %-14s %s\n", actions[i].name, actions[i].help);
	fprintf(fp, "\nRun 'encore local <action> --help' for the options of each action.\n");
}

int cmd_local(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("local", "no action given");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (strcmp(actions[i].name, argv[1]) == 0) {
			optind = 0;
			return actions[i].fn(argc - 1, argv + 1);
		}
	}
	return cli_usage("local", "unknown action '%s'", argv[1]);
}

int local_open(const char *dir_arg, struct local_state *st)
{
	char dir[PATH_MAX];
	int ret;

	ret = local_dir_resolve(dir_arg, false, dir);
	if (ret == 0)
		ret = local_state_load(dir, st);
	if (ret == -ENOENT || ret == -ENOTDIR) {
		cli_err("no local realm in '%s' (no %s there); start one with "
			"'encore local up --dir %s'",
			dir_arg, LOCAL_STATE_FILE, dir_arg);
		return ret;
	}
	if (ret == -EINVAL) {
		cli_err("'%s/%s' is damaged; stop its processes by hand and remove the directory",
			dir, LOCAL_STATE_FILE);
		return ret;
	}
	if (ret < 0)
		cli_err("cannot read the local realm in '%s': %s", dir_arg, strerror(-ret));
	return ret;
}

/* ---- status ---- */

static void status_usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore local status [--dir DIR] [--json]\n"
		"\n"
		"Shows the mounts, pids and ports of the local realm in DIR (default\n" LOCAL_DEFAULT_DIR
		") and whether each process is alive. Exit status 1 if there is no realm.\n"
		"\n"
		"  --dir DIR   the realm's state directory\n"
		"  --json      print one JSON object\n"
		"  -h, --help  show this help\n");
}

static const char *server_state(const struct local_server *s)
{
	if (!local_server_alive(s))
		return "stopped";
	return s->frozen ? "frozen" : "running";
}

static int local_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = LOCAL_DEFAULT_DIR;
	struct local_state st;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			status_usage(stdout);
			return CLI_OK;
		default:
			return cli_usage("local status", "invalid option");
		}
	}
	if (optind < argc)
		return cli_usage("local status", "unexpected argument '%s'", argv[optind]);
	if (local_open(dir, &st) < 0)
		return CLI_FAIL;

	if (json) {
		json_object *o = local_state_json(&st, true);

		ret = cli_print_json(o);
		json_object_put(o);
		return ret;
	}
	printf("dir\t%s\nrealm\t%s\nmount\t%s\n\n", st.dir, LOCAL_REALM,
	       st.n_clients > 0 ? st.clients[0].mount : "-");
	printf("CLIENT\tPID\tSTATE\tMOUNT\n");
	for (size_t i = 0; i < st.n_clients; i++) {
		const struct local_client *cl = &st.clients[i];

		printf("%u\t%d\t%s\t%s\n", cl->id, (int)cl->pid,
		       local_client_alive(cl) ? "running" : "stopped", cl->mount);
	}
	printf("\nSERVER\tPID\tSTATE\tPORT\tDIR\n");
	for (size_t i = 0; i < st.n_servers; i++) {
		const struct local_server *s = &st.servers[i];

		printf("%u\t%d\t%s\t%u\t%s\n", s->id, (int)s->pid, server_state(s),
		       (unsigned)s->port, s->dir);
	}
	return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- stop/start/freeze/thaw-server N ---- */

enum server_op { OP_STOP, OP_START, OP_FREEZE, OP_THAW };

static const char *const op_names[] = {
	[OP_STOP] = "stop-server",
	[OP_START] = "start-server",
	[OP_FREEZE] = "freeze-server",
	[OP_THAW] = "thaw-server",
};

static void server_usage(enum server_op op)
{
	static const char *const what[] = {
		[OP_STOP] = "Kills server N with SIGKILL (a crash), keeping its state and port.",
		[OP_START] = "Restarts server N on the port it had, after stop-server.",
		[OP_FREEZE] = ("Stops server N with SIGSTOP: it keeps its connections but answers\n"
			       "nothing, like a hung machine."),
		[OP_THAW] = "Continues a frozen server N with SIGCONT.",
	};

	printf("usage: encore local %s [--dir DIR] N\n\n%s\n\n"
	       "  --dir DIR   the realm's state directory (default " LOCAL_DEFAULT_DIR ")\n"
	       "  -h, --help  show this help\n",
	       op_names[op], what[op]);
}

static int server_op(enum server_op op, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char cmd[32];
	const char *dir = LOCAL_DEFAULT_DIR;
	struct local_state st;
	struct local_server *s = NULL;
	uint64_t id;
	int c, ret;

	snprintf(cmd, sizeof(cmd), "local %s", op_names[op]);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			server_usage(op);
			return CLI_OK;
		default:
			return cli_usage(cmd, "invalid option");
		}
	}
	if (argc - optind != 1)
		return cli_usage(cmd, "give exactly one server number N");
	if (!cli_parse_uint(argv[optind], 1, LOCAL_SERVERS_MAX, &id))
		return cli_usage(cmd, "'%s' is not a server number (1..%d)", argv[optind],
				 LOCAL_SERVERS_MAX);
	if (local_open(dir, &st) < 0)
		return CLI_FAIL;
	for (size_t i = 0; i < st.n_servers; i++) {
		if (st.servers[i].id == id)
			s = &st.servers[i];
	}
	if (s == NULL) {
		cli_err("the realm in '%s' has no server %u (it has %zu)", st.dir, (unsigned)id,
			st.n_servers);
		return CLI_FAIL;
	}

	switch (op) {
	case OP_STOP:
		if (!local_server_alive(s)) {
			cli_note("server %u is not running", s->id);
			return CLI_OK;
		}
		ret = local_stop_pid(s->pid, s->dir, SIGKILL, LOCAL_STOP_TIMEOUT_MS);
		if (ret < 0) {
			cli_err("server %u (pid %d) does not die", s->id, (int)s->pid);
			return CLI_FAIL;
		}
		cli_note("server %u (pid %d) killed", s->id, (int)s->pid);
		s->pid = 0;
		s->frozen = false;
		break;
	case OP_START:
		if (local_server_alive(s)) {
			cli_err("server %u is already running (pid %d); stop it first with "
				"'encore local stop-server %u'",
				s->id, (int)s->pid, s->id);
			return CLI_FAIL;
		}
		local_catch_signals();
		if (local_start_server(&st, s, false) < 0)
			return CLI_FAIL;
		cli_note("server %u running on 127.0.0.1:%u (pid %d)", s->id, (unsigned)s->port,
			 (int)s->pid);
		break;
	case OP_FREEZE:
	case OP_THAW:
		if (!local_server_alive(s)) {
			cli_err("server %u is not running; start it with 'encore local start-server "
				"%u'",
				s->id, s->id);
			return CLI_FAIL;
		}
		if (kill(s->pid, op == OP_FREEZE ? SIGSTOP : SIGCONT) < 0) {
			cli_err("cannot signal server %u (pid %d): %s", s->id, (int)s->pid,
				strerror(errno));
			return CLI_FAIL;
		}
		s->frozen = op == OP_FREEZE;
		cli_note("server %u (pid %d) %s", s->id, (int)s->pid,
			 op == OP_FREEZE ? "frozen" : "thawed");
		break;
	}
	ret = local_state_save(&st);
	if (ret < 0) {
		cli_err("cannot update '%s/%s': %s", st.dir, LOCAL_STATE_FILE, strerror(-ret));
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int local_stop_server(int argc, char **argv)
{
	return server_op(OP_STOP, argc, argv);
}

static int local_start_server_cmd(int argc, char **argv)
{
	return server_op(OP_START, argc, argv);
}

static int local_freeze_server(int argc, char **argv)
{
	return server_op(OP_FREEZE, argc, argv);
}

static int local_thaw_server(int argc, char **argv)
{
	return server_op(OP_THAW, argc, argv);
}
