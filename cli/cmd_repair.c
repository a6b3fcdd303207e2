/*
 * cmd_repair.c - `encore repair PATH [--keep SERVER | --keep-all] [--json]`:
 * lists the versions of an object in conflict, or resolves the conflict by
 * keeping one server's version everywhere or every version under a new name
 * (control op "repair" with the inode; docs/replication.md "Conflicts and
 * repair").
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/ctl_client.h"

/* Times in a reply above this are nanoseconds, below it seconds (1e11 s
 * is the year 5138; 1e11 ns is 1970). */
#define SECONDS_MAX 100000000000LL

static void usage(FILE *fp)
{
	fprintf(fp, "usage: encore repair PATH [--keep SERVER | --keep-all] [--json]\n"
		    "\n"
		    "Resolves the conflict on PATH (see 'encore conflicts'). Without an option,\n"
		    "lists each replica's version (server, size, mtime, storeid) and changes\n"
		    "nothing. Nothing is ever thrown away without one of:\n"
		    "\n"
		    "  --keep SERVER  install server SERVER's version on every replica\n"
		    "  --keep-all     keep every version beside the file as\n"
		    "                 NAME.conflict-server<N> and remove NAME\n"
		    "  --json         print the client's reply as one JSON object\n"
		    "  -h, --help     show this help\n"
		    "\n"
		    "A directory in conflict: --keep SERVER makes SERVER's entries every\n"
		    "replica's, keeping objects only other servers hold as\n"
		    "NAME.conflict-server<N>; --keep-all keeps every replica's entries, a name\n"
		    "bound to different objects as NAME.conflict-server<N> for each. Every\n"
		    "server of the volume must be up.\n");
}

/* Prints a time from a reply: seconds or nanoseconds since the epoch as
 * local time, anything else as given. */
static void print_time(json_object *v)
{
	char buf[64];
	struct tm tm;
	time_t t;
	int64_t x;

	if (!json_object_is_type(v, json_type_int)) {
		fputs(v != NULL ? json_object_get_string(v) : "-", stdout);
		return;
	}
	x = json_object_get_int64(v);
	t = (time_t)(x >= SECONDS_MAX ? x / 1000000000LL : x);
	if (localtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%F %T", &tm) == 0) {
		printf("%lld", (long long)x);
		return;
	}
	fputs(buf, stdout);
}

/* True when the reply lists replica versions and none of them is marked in
 * conflict (a local/global conflict's reply lists no replica versions). */
static bool no_replica_in_conflict(json_object *rep)
{
	json_object *list = NULL, *flag = NULL;
	size_t n;

	if (!json_object_object_get_ex(rep, "versions", &list) ||
	    !json_object_is_type(list, json_type_array))
		return false;
	n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		if (!json_object_object_get_ex(json_object_array_get_idx(list, i), "conflict",
					       &flag) ||
		    json_object_get_boolean(flag))
			return false;
	}
	return n > 0;
}

static void print_versions(json_object *rep)
{
	json_object *list = NULL;
	size_t n;

	json_object_object_get_ex(rep, "versions", &list);
	n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
	printf("SERVER\tSIZE\tMTIME\tSTOREID\n");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(list, i), *mtime = NULL;

		json_object_object_get_ex(v, "mtime", &mtime);
		printf("%s\t%s\t", cli_json_str(v, "server", "-"), cli_json_str(v, "size", "-"));
		print_time(mtime);
		printf("\t%s\n", cli_json_str(v, "storeid", "-"));
	}
}

int cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keep", required_argument, NULL, 'k' },
		{ "keep-all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, keep_all = false;
	uint64_t keep = 0;
	json_object *req, *rep;
	const char *path;
	struct stat st;
	int c, ret, held;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (!cli_parse_uint(optarg, 1, UINT32_MAX, &keep))
				return cli_usage("repair",
						 "--keep wants a server id (a number >= 1), not "
						 "'%s'",
						 optarg);
			break;
		case 'a':
			keep_all = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage("repair", "invalid option");
		}
	}
	if (keep != 0 && keep_all)
		return cli_usage("repair", "give --keep SERVER or --keep-all, not both");
	if (argc - optind != 1)
		return cli_usage("repair", "give exactly one PATH");
	path = argv[optind];
	/* lstat: the conflict may be on a symlink itself. A file in conflict
	 * cannot be read, but its status can. */
	held = ctl_hold_path(path, false, &st);
	if (held < 0) {
		cli_err("repair: cannot stat '%s': %s; give a path listed by 'encore conflicts'",
			path, strerror(-held));
		return CLI_FAIL;
	}

	req = json_object_new_object();
	json_object_object_add(req, "ino", ctl_ino_json(st.st_ino));
	if (keep != 0)
		json_object_object_add(req, "keep", json_object_new_int64((int64_t)keep));
	if (keep_all)
		json_object_object_add(req, "keep_all", json_object_new_boolean(true));
	ret = ctl_request("repair", path, "repair", req, &rep);
	json_object_put(req);
	close(held);
	if (ret != CLI_OK) {
		if (S_ISDIR(st.st_mode) && (keep != 0 || keep_all))
			cli_note(
				"a directory is repaired only while every server of its volume is "
				"up (see 'encore status') and holds it (if its parent directory is in "
				"conflict too, repair that first)");
		return ret;
	}
	if (json) {
		ret = cli_print_json(rep);
		json_object_put(rep);
		return ret;
	}
	if (keep != 0 && S_ISDIR(st.st_mode)) {
		cli_note(
			"'%s' repaired: server %u's entries are now on every replica; objects only "
			"other servers held are kept as NAME.conflict-server<N>",
			path, (unsigned)keep);
	} else if (keep != 0) {
		cli_note("'%s' repaired: server %u's version is now on every replica", path,
			 (unsigned)keep);
	} else if (keep_all && S_ISDIR(st.st_mode)) {
		cli_note("'%s' repaired: every server's entries are kept; names bound to different "
			 "objects as NAME.conflict-server<N>",
			 path);
	} else if (keep_all) {
		json_object *names = NULL;
		size_t n;

		json_object_object_get_ex(rep, "names", &names);
		n = json_object_is_type(names, json_type_array) ? json_object_array_length(names)
								: 0;
		for (size_t i = 0; i < n; i++)
			printf("%s\n", json_object_get_string(json_object_array_get_idx(names, i)));
		cli_note("'%s' repaired: every version was kept beside it as "
			 "NAME.conflict-server<N>",
			 path);
	} else if (no_replica_in_conflict(rep)) {
		cli_err("repair: '%s' is not in conflict: nothing to repair (see 'encore conflicts')",
			path);
		json_object_put(rep);
		return CLI_FAIL;
	} else {
		print_versions(rep);
		cli_note("keep one with 'encore repair %s --keep SERVER', or all with "
			 "'--keep-all'",
			 path);
	}
	json_object_put(rep);
	return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}
