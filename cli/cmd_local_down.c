/*
 * cmd_local_down.c - `encore local down`: unmount every client, stop every
 * server, wait until all of them are gone, then remove DIR (only if it
 * holds a local.json, i.e. is really a realm's). Works on a half-dead realm
 * too, and is a no-op where there is none.
 */
#include "cli/cmd_local.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fsutil.h"

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore local down [--dir DIR]\n"
		"\n"
		"Unmounts the clients of the local realm in DIR (default " LOCAL_DEFAULT_DIR "),\n"
		"stops its servers (SIGTERM, SIGKILL after %d s), waits until every process is\n"
		"gone and removes DIR with its state and logs. Nothing to do is not an error.\n"
		"\n"
		"  --dir DIR   the realm's state directory\n"
		"  -h, --help  show this help\n",
		LOCAL_STOP_TIMEOUT_MS / 1000);
}

int cmd_local_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_arg = LOCAL_DEFAULT_DIR;
	char dir[PATH_MAX];
	struct local_state *st;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir_arg = optarg;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage("local down", "invalid option");
		}
	}
	if (optind < argc)
		return cli_usage("local down", "unexpected argument '%s'", argv[optind]);

	ret = local_dir_resolve(dir_arg, false, dir);
	if (ret == -ENOENT) {
		cli_note("no local realm in '%s'; nothing to stop", dir_arg);
		return CLI_OK;
	}
	if (ret < 0) {
		cli_err("cannot use '%s': %s", dir_arg, strerror(-ret));
		return CLI_FAIL;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return CLI_FAIL;
	ret = local_state_load(dir, st);
	if (ret == -ENOENT) {
		/* No realm recorded; still unmount encore mounts a crashed `up`
		 * may have left below DIR, but remove nothing. */
		if (local_sweep_mounts(dir) > 0) {
			ret = CLI_FAIL;
		} else {
			cli_note("no local realm in '%s' (no %s); nothing to stop", dir_arg,
				 LOCAL_STATE_FILE);
			ret = CLI_OK;
		}
		goto out;
	}
	if (ret < 0) {
		cli_err("cannot read '%s/%s': %s; stop its processes by hand and remove '%s'", dir,
			LOCAL_STATE_FILE, ret == -EINVAL ? "it is damaged" : strerror(-ret), dir);
		local_sweep_mounts(dir);
		ret = CLI_FAIL;
		goto out;
	}

	ret = local_teardown(st);
	if (ret == 0 && local_sweep_mounts(dir) > 0)
		ret = -EBUSY;
	if (ret < 0) {
		/* Keep local.json: it is how a second `down` finds the rest. */
		local_state_save(st);
		cli_err("the realm in '%s' is not fully stopped; fix the above and run 'encore "
			"local down --dir %s' again",
			dir, dir);
		ret = CLI_FAIL;
		goto out;
	}
	if (local_mounts_below(dir)) {
		cli_err("something is still mounted below '%s'; not removing it", dir);
		ret = CLI_FAIL;
		goto out;
	}
	ret = fs_rmtree(dir);
	if (ret < 0) {
		cli_err("everything is stopped, but removing '%s' failed: %s", dir, strerror(-ret));
		ret = CLI_FAIL;
		goto out;
	}
	cli_note("local realm in '%s' stopped and removed", dir);
	ret = CLI_OK;
out:
	free(st);
	return ret;
}
