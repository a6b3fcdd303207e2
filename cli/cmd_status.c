/*
 * cmd_status.c - `encore status [--json] [PATH]`: servers, volumes, cache use
 * and per-volume state of the encore-client serving PATH (control op "status").
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>

#include "cli/ctl_client.h"

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore status [--json] [PATH]\n"
		"\n"
		"Shows the servers, volumes, cache use and per-volume state of the encore-client\n"
		"that serves PATH (default: the current directory, else the only encore mount).\n"
		"Each server has a state (up/down) and a round-trip time; each volume its VSG\n"
		"(the servers holding its replicas) and AVSG (those the client reaches now).\n"
		"\n"
		"  --json     print the client's reply as one JSON object\n"
		"  -h, --help show this help\n"
		"\n"
		"ENCORE_SOCKET=PATH talks to that control socket instead.\n");
}

/* Disconnected operation: per volume, the CML records and bytes pending
 * (a table only if the client reports them). */
static void print_cml(json_object *vols)
{
	size_t n = json_object_is_type(vols, json_type_array) ? json_object_array_length(vols) : 0;
	bool header = false;

	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vols, i), *x;

		if (!json_object_object_get_ex(v, "cml_records", &x))
			continue;
		if (!header) {
			printf("\nVOLUME\tCML_RECORDS\tCML_BYTES\n");
			header = true;
		}
		printf("%s\t%s\t%s\n", cli_json_str(v, "id", "-"),
		       cli_json_str(v, "cml_records", "0"), cli_json_str(v, "cml_bytes", "0"));
	}
}

static void print_text(json_object *r)
{
	json_object *cache = NULL, *vols = NULL, *servers = NULL;

	json_object_object_get_ex(r, "cache", &cache);
	json_object_object_get_ex(r, "volumes", &vols);
	json_object_object_get_ex(r, "servers", &servers);
	printf("realm\t%s\n", cli_json_str(r, "realm", "-"));
	printf("mount\t%s\n", cli_json_str(r, "mount", "-"));
	printf("pid\t%s\n", cli_json_str(r, "pid", "-"));
	printf("cache_bytes_used\t%s\n", cli_json_str(cache, "bytes_used", "-"));
	printf("cache_bytes_limit\t%s\n", cli_json_str(cache, "bytes_limit", "-"));
	printf("cache_files\t%s\n", cli_json_str(cache, "files", "-"));
	printf("cache_dirty\t%s\n", cli_json_str(cache, "dirty", "-"));
	printf("\n");
	ctl_print_servers(servers);
	printf("\n");
	ctl_print_volumes(vols);
	print_cml(vols);
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	json_object *req, *rep;
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
			return cli_usage("status", "invalid option");
		}
	}
	if (argc - optind > 1)
		return cli_usage("status", "too many arguments: give at most one PATH");

	req = json_object_new_object();
	ret = ctl_request("status", optind < argc ? argv[optind] : NULL, "status", req, &rep);
	json_object_put(req);
	if (ret != CLI_OK)
		return ret;
	if (json)
		ret = cli_print_json(rep);
	else
		print_text(rep);
	json_object_put(rep);
	return ret;
}
