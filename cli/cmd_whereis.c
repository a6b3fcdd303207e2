/*
 * cmd_whereis.c - `encore whereis [--json] PATH`: the fid and volume of
 * PATH and the servers holding it (control op "whereis" with the inode).
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli/ctl_client.h"

static void usage(FILE *fp)
{
	fprintf(fp, "usage: encore whereis [--json] PATH\n"
		    "\n"
		    "Prints the fid and volume of PATH and the servers that hold it.\n"
		    "\n"
		    "  --json     print the client's reply as one JSON object\n"
		    "  -h, --help show this help\n");
}

int cmd_whereis(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	json_object *req, *rep, *servers = NULL;
	struct stat st;
	const char *path;
	size_t n;
	int c, ret, held;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage("whereis", "invalid option");
		}
	}
	if (argc - optind != 1)
		return cli_usage("whereis", "give exactly one PATH");
	path = argv[optind];
	held = ctl_hold_path(path, true, &st);
	if (held < 0) {
		cli_err("whereis: cannot stat '%s': %s", path, strerror(-held));
		return CLI_FAIL;
	}

	req = json_object_new_object();
	json_object_object_add(req, "ino", ctl_ino_json(st.st_ino));
	ret = ctl_request("whereis", path, "whereis", req, &rep);
	json_object_put(req);
	close(held);
	if (ret != CLI_OK)
		return ret;
	if (json) {
		ret = cli_print_json(rep);
	} else {
		printf("fid\t%s\n", cli_json_str(rep, "fid", "-"));
		printf("volume\t%s\n", cli_json_str(rep, "volume", "-"));
		printf("\nSERVER\tADDR\n");
		json_object_object_get_ex(rep, "servers", &servers);
		n = json_object_is_type(servers, json_type_array)
			    ? json_object_array_length(servers)
			    : 0;
		for (size_t i = 0; i < n; i++) {
			json_object *s = json_object_array_get_idx(servers, i);

			printf("%s\t%s\n", cli_json_str(s, "id", "-"),
			       cli_json_str(s, "addr", "-"));
		}
	}
	json_object_put(rep);
	return ret;
}
