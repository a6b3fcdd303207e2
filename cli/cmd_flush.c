/*
 * cmd_flush.c - `encore flush [--json] PATH...`: asks the encore-client
 * holding each PATH to drop the cached data of files that are neither open
 * nor dirty (control op "flush" with the path's inode number).
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
	fprintf(fp, "usage: encore flush [--json] PATH...\n"
		    "\n"
		    "Drops the cached data of each PATH (a directory: of the files below it) from\n"
		    "the encore-client cache, except files that are open or have unsaved changes.\n"
		    "Prints, per PATH, how many files were flushed and how many were busy.\n"
		    "\n"
		    "  --json     print one JSON object: totals and a \"paths\" array\n"
		    "  -h, --help show this help\n");
}

/* Flushes one path; adds its entry to paths and its counts to the totals.
 * Returns CLI_OK or CLI_FAIL (error printed). */
static int flush_one(const char *path, json_object *paths, int64_t *flushed, int64_t *busy)
{
	struct stat st;
	json_object *req, *rep, *ent;
	int ret, held;

	held = ctl_hold_path(path, true, &st);
	if (held < 0) {
		cli_err("flush: cannot stat '%s': %s", path, strerror(-held));
		return CLI_FAIL;
	}
	req = json_object_new_object();
	json_object_object_add(req, "ino", ctl_ino_json(st.st_ino));
	ret = ctl_request("flush", path, "flush", req, &rep);
	json_object_put(req);
	close(held);
	if (ret != CLI_OK)
		return ret;
	ent = json_object_new_object();
	json_object_object_add(ent, "path", json_object_new_string(path));
	json_object_object_add(ent, "flushed",
			       json_object_new_int64(cli_json_int(rep, "flushed", 0)));
	json_object_object_add(ent, "busy", json_object_new_int64(cli_json_int(rep, "busy", 0)));
	json_object_array_add(paths, ent);
	*flushed += cli_json_int(rep, "flushed", 0);
	*busy += cli_json_int(rep, "busy", 0);
	json_object_put(rep);
	return CLI_OK;
}

int cmd_flush(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	json_object *out, *paths;
	int64_t flushed = 0, busy = 0;
	int c, ret = CLI_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage("flush", "invalid option");
		}
	}
	if (optind >= argc)
		return cli_usage("flush", "no PATH given: name the files or directories to flush");

	paths = json_object_new_array();
	for (int i = optind; i < argc; i++) {
		if (flush_one(argv[i], paths, &flushed, &busy) != CLI_OK)
			ret = CLI_FAIL;
	}
	if (json) {
		out = json_object_new_object();
		json_object_object_add(out, "ok", json_object_new_boolean(ret == CLI_OK));
		json_object_object_add(out, "flushed", json_object_new_int64(flushed));
		json_object_object_add(out, "busy", json_object_new_int64(busy));
		json_object_object_add(out, "paths", json_object_get(paths));
		if (cli_print_json(out) != CLI_OK)
			ret = CLI_FAIL;
		json_object_put(out);
	} else {
		printf("FLUSHED\tBUSY\tPATH\n");
		for (size_t i = 0; i < json_object_array_length(paths); i++) {
			json_object *e = json_object_array_get_idx(paths, i);

			printf("%s\t%s\t%s\n", cli_json_str(e, "flushed", "0"),
			       cli_json_str(e, "busy", "0"), cli_json_str(e, "path", ""));
		}
	}
	json_object_put(paths);
	return ret;
}
