/*
 * cmd_check_servers.c - `encore check-servers [--json] [PATH]`: has the
 * encore-client serving PATH probe every server; prints up/down and RTT.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>

#include "cli/ctl_client.h"

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore check-servers [--json] [PATH]\n"
		"\n"
		"Asks the encore-client that serves PATH (default: the current directory, else\n"
		"the only encore mount) to probe each of its servers now, and prints each\n"
		"server's state (up/down) and round-trip time, then each volume's VSG and\n"
		"AVSG (the members the client reaches now) when the client reports them.\n"
		"\n"
		"  --json     print the client's reply as one JSON object\n"
		"  -h, --help show this help\n"
		"\n"
		"ENCORE_SOCKET=PATH talks to that control socket instead.\n");
}

int cmd_check_servers(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	json_object *req, *rep, *servers = NULL, *vols = NULL;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage("check-servers", "invalid option");
		}
	}
	if (argc - optind > 1)
		return cli_usage("check-servers", "too many arguments: give at most one PATH");

	req = json_object_new_object();
	ret = ctl_request("check-servers", optind < argc ? argv[optind] : NULL, "check-servers",
			  req, &rep);
	json_object_put(req);
	if (ret != CLI_OK)
		return ret;
	if (json) {
		ret = cli_print_json(rep);
	} else {
		json_object_object_get_ex(rep, "servers", &servers);
		ctl_print_servers(servers);
		/* The AVSG of each volume changes with the probes: show it too. */
		if (json_object_object_get_ex(rep, "volumes", &vols)) {
			printf("\n");
			ctl_print_volumes(vols);
		}
	}
	json_object_put(rep);
	return ret;
}
