/*
 * main.c - `encore`, the command-line tool: global options and the table of
 * subcommands (STYLE section 10; wireguard-tools wg.c, git git.c).
 * Owns:    the subcommand table; everything else lives in libcli.a.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"

static int cmd_help(int argc, char **argv);

static const struct cli_cmd cmds[] = {
	{ "local", cmd_local, 0, "start, inspect and stop a whole realm on this machine" },
	{ "status", cmd_status, CMD_CTL, "servers, volumes, cache use and per-volume state" },
	{ "check-servers", cmd_check_servers, CMD_CTL, "probe every server: up/down and RTT" },
	{ "flush", cmd_flush, CMD_CTL, "drop cached data of files not open or dirty" },
	{ "whereis", cmd_whereis, CMD_CTL, "fid, volume and the servers holding a path" },
	{ "conflicts", cmd_conflicts, CMD_CTL, "list the objects whose replicas are in conflict" },
	{ "repair", cmd_repair, CMD_CTL, "show a conflict's versions, or keep one or all" },
	{ "hoard", cmd_hoard, CMD_CTL, "add, list, remove hoarded paths; run a hoard walk" },
	{ "disconnect", cmd_disconnect, CMD_CTL, "disconnect a volume (or all) until reconnect" },
	{ "reconnect", cmd_reconnect, CMD_CTL, "end a forced disconnection; reintegrate" },
	{ "write-disconnect", cmd_write_disconnect, CMD_CTL,
	  "weakly connect a volume: log updates, trickle them" },
	{ "help", cmd_help, 0, "show help for encore or one of its subcommands" },
};

static const struct cli_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	}
	return NULL;
}

static void usage(FILE *fp)
{
	fprintf(fp, "usage: encore [-v|-vv] <subcommand> [options] [args]\n"
		    "\n"
		    "Subcommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if ((cmds[i].flags & CMD_HIDDEN) == 0)
			fprintf(fp, "  %-14s %s\n", cmds[i].name, cmds[i].help);
	}
	fprintf(fp,
		"\n"
		"Options:\n"
		"  -v, --verbose  more output on stderr (twice for debug)\n"
		"  -h, --help     show this help\n"
		"\n"
		"status, check-servers, flush, whereis, conflicts, repair, hoard, disconnect,\n"
		"reconnect and write-disconnect talk to the encore-client that serves PATH (or\n"
		"the current directory); ENCORE_SOCKET=PATH names its control socket.\n"
		"Run 'encore <subcommand> --help' for the options of each subcommand.\n");
}

/* `encore help [SUBCOMMAND]`: the subcommand's --help, or the overview. */
static int cmd_help(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	char help_arg[] = "--help";
	char *sub_argv[3];

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	cmd = find_cmd(argv[1]);
	if (cmd == NULL || cmd->fn == cmd_help)
		return cli_usage("help", "unknown subcommand '%s'", argv[1]);
	sub_argv[0] = argv[1];
	sub_argv[1] = help_arg;
	sub_argv[2] = NULL;
	optind = 0;
	return cmd->fn(2, sub_argv);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cli_cmd *cmd;
	int verbose = 0, c;

	/* "+": stop at the subcommand; its options are its own. */
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			fprintf(stderr, "see 'encore --help'\n");
			return CLI_USAGE;
		}
	}
	log_init("encore", verbose >= 2 ? LOG_DEBUG : verbose == 1 ? LOG_INFO : LOG_NOTICE, false);
	if (optind >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	cmd = find_cmd(argv[optind]);
	if (cmd == NULL) {
		fprintf(stderr, "encore: unknown subcommand '%s'; see 'encore --help'\n",
			argv[optind]);
		return CLI_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* full getopt reset for the subcommand */
	return cmd->fn(argc, argv);
}
