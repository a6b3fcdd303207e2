/*
 * cmd_conflicts.c - `encore conflicts [--json] [PATH]`: every object in
 * conflict in every volume the encore-client serving PATH knows (control op
 * "conflicts"; docs/replication.md "Conflicts and repair").
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>

#include "cli/ctl_client.h"

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore conflicts [--json] [PATH]\n"
		"\n"
		"Lists the objects whose replicas disagree (concurrent updates in different\n"
		"partitions), in every volume known to the encore-client that serves PATH\n"
		"(default: the current directory, else the only encore mount). One line per\n"
		"conflict: path, fid, and the servers holding the replicas. Resolve one with\n"
		"'encore repair PATH'.\n"
		"\n"
		"  --json     print the client's reply as one JSON object; \"conflicts\" is a\n"
		"             list of {path, fid, volume, servers} (empty when there are none)\n"
		"  -h, --help show this help\n"
		"\n"
		"ENCORE_SOCKET=PATH talks to that control socket instead.\n");
}

int cmd_conflicts(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	json_object *req, *rep, *list = NULL;
	size_t n;
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
			return cli_usage("conflicts", "invalid option");
		}
	}
	if (argc - optind > 1)
		return cli_usage("conflicts", "too many arguments: give at most one PATH");

	req = json_object_new_object();
	ret = ctl_request("conflicts", optind < argc ? argv[optind] : NULL, "conflicts", req, &rep);
	json_object_put(req);
	if (ret != CLI_OK)
		return ret;
	json_object_object_get_ex(rep, "conflicts", &list);
	if (list != NULL && !json_object_is_type(list, json_type_array)) {
		cli_err("conflicts: the client's reply has no list of conflicts; is encore-client "
			"as new as encore?");
		json_object_put(rep);
		return CLI_FAIL;
	}
	if (json) {
		/* An empty list, not a missing one, when there are no conflicts. */
		if (list == NULL)
			json_object_object_add(rep, "conflicts", json_object_new_array());
		ret = cli_print_json(rep);
		json_object_put(rep);
		return ret;
	}
	n = list != NULL ? json_object_array_length(list) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(list, i), *servers = NULL;

		json_object_object_get_ex(o, "servers", &servers);
		printf("%s\t%s\t", cli_json_str(o, "path", "-"), cli_json_str(o, "fid", "-"));
		ctl_print_ids(servers);
		putchar('\n');
	}
	if (n == 0)
		cli_note("no conflicts");
	else
		cli_note("%zu conflict%s; see 'encore repair PATH' for each", n, n == 1 ? "" : "s");
	json_object_put(rep);
	return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}
