/*
 * cmd_hoard.c - `encore hoard add|list|remove|walk`: the hoard database of
 * the encore-client serving a path (control ops "hoard-add", "hoard-list",
 * "hoard-remove", "hoard-walk", "hoard-status"; docs/disconnected.md
 * "Hoarding"). Paths are given as ordinary paths under the mount; the
 * client is sent them relative to the mount point (REALM/...).
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/ctl_client.h"

/* How often `hoard walk` asks for progress. */
#define WALK_POLL_MS 200

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore hoard add PATH [PRIORITY] [children|descendants]\n"
		"       encore hoard list [--json] [PATH]\n"
		"       encore hoard remove PATH\n"
		"       encore hoard walk [--json] [PATH]\n"
		"\n"
		"The hoard names files and directories the encore-client keeps cached so that\n"
		"they are there when the servers are not. A hoard walk (every 10 minutes, after\n"
		"a volume reconnects, and on 'encore hoard walk') fetches what is missing or\n"
		"stale; eviction drops objects of the lowest hoard priority first.\n"
		"\n"
		"  add PATH [PRIORITY] [children|descendants]\n"
		"             hoards PATH with PRIORITY 1..1000 (default 10); 'children' adds\n"
		"             a directory's entries, 'descendants' everything below it\n"
		"  list       prints PRIORITY, FLAGS, OWNER UID and PATH of every entry\n"
		"  remove PATH\n"
		"             removes PATH's entry (your own, or any as root)\n"
		"  walk       runs a hoard walk now; progress on stderr (a terminal), the\n"
		"             summary on stdout\n"
		"\n"
		"  --json     print the client's reply as one JSON object\n"
		"  -h, --help show this help\n"
		"\n"
		"PATH without an argument: the current directory's client, else the only mount.\n");
}

int cli_mount_rel(const char *mount_point, const char *abs, char *out, size_t len)
{
	size_t n = strlen(mount_point);
	const char *rest;

	if (strcmp(mount_point, "/") == 0)
		n = 0;
	else if (strncmp(mount_point, abs, n) != 0 || (abs[n] != '\0' && abs[n] != '/'))
		return -EINVAL;
	rest = abs + n;
	while (*rest == '/')
		rest++;
	if (*rest == '\0')
		return -EINVAL; /* the mount's top directory: not in a realm */
	if ((size_t)snprintf(out, len, "%s", rest) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Absolute form of path: realpath of it, or of its directory plus its last
 * name (it may not exist yet, or a server may be down), else lexical. */
static int abs_path(const char *path, char *out, size_t len)
{
	char cwd[PATH_MAX], dbuf[PATH_MAX], bbuf[PATH_MAX], real[PATH_MAX];

	if (realpath(path, real) != NULL) {
		if ((size_t)snprintf(out, len, "%s", real) >= len)
			return -ENAMETOOLONG;
		return 0;
	}
	if (strlen(path) >= sizeof(dbuf))
		return -ENAMETOOLONG;
	snprintf(dbuf, sizeof(dbuf), "%s", path);
	snprintf(bbuf, sizeof(bbuf), "%s", path);
	if (realpath(dirname(dbuf), real) != NULL) {
		const char *b = basename(bbuf);

		if (strcmp(b, ".") != 0 && strcmp(b, "..") != 0 && strcmp(b, "/") != 0) {
			if ((size_t)snprintf(out, len, "%s/%s", strcmp(real, "/") ? real : "", b) >=
			    len)
				return -ENAMETOOLONG;
			return 0;
		}
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -errno;
	return ctl_path_normalize(path, cwd, out, len);
}

struct mp_ctx {
	const char *abs;
	char best[PATH_MAX];
	size_t best_len;
	bool found;
};

static int mp_cb(void *arg, const struct ctl_mount *m)
{
	struct mp_ctx *c = arg;
	size_t n = strlen(m->mount_point);

	if (strcmp(m->mount_point, "/") != 0 &&
	    (strncmp(m->mount_point, c->abs, n) != 0 || (c->abs[n] != '\0' && c->abs[n] != '/')))
		return 0;
	if (!c->found || n >= c->best_len) {
		c->found = true;
		c->best_len = n;
		snprintf(c->best, sizeof(c->best), "%s", m->mount_point);
	}
	return 0;
}

/* path as the client wants it: relative to its mount point. CLI_OK, or an
 * error printed. */
static int rel_path(const char *cmd, const char *path, char *out, size_t len)
{
	struct mp_ctx *c;
	char abs[PATH_MAX];
	int ret;

	ret = abs_path(path, abs, sizeof(abs));
	if (ret < 0) {
		cli_err("%s: cannot resolve '%s': %s", cmd, path, strerror(-ret));
		return CLI_FAIL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		cli_err("%s: out of memory", cmd);
		return CLI_FAIL;
	}
	c->abs = abs;
	ret = ctl_mounts_foreach(true, mp_cb, c);
	if (ret < 0) {
		cli_err("%s: cannot read /proc/self/mountinfo: %s", cmd, strerror(-ret));
		free(c);
		return CLI_FAIL;
	}
	if (!c->found) {
		cli_err("%s: '%s' is not on an encore file system; give a path under an encore "
			"mount (see 'encore status')",
			cmd, path);
		free(c);
		return CLI_FAIL;
	}
	ret = cli_mount_rel(c->best, abs, out, len);
	if (ret < 0) {
		cli_err("%s: '%s' is the top of the mount '%s'; give a path inside a realm, "
			"e.g. '%s/REALM/...'",
			cmd, path, c->best, c->best);
		free(c);
		return CLI_FAIL;
	}
	free(c);
	return CLI_OK;
}

/* Parses [--json] [-h] for a sub-subcommand; returns -1 to go on, else an
 * exit code. */
static int parse_opts(const char *cmd, int argc, char **argv, bool allow_json, bool *json)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			if (!allow_json)
				return cli_usage(cmd, "--json is not an option of this command");
			*json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage(cmd, "invalid option");
		}
	}
	return -1;
}

static int hoard_add(int argc, char **argv)
{
	char rel[PATH_MAX];
	json_object *req, *rep;
	uint64_t pri = 0;
	const char *flags = NULL, *path;
	bool json = false;
	int ret = parse_opts("hoard add", argc, argv, true, &json);

	if (ret >= 0)
		return ret;
	if (optind >= argc)
		return cli_usage("hoard add", "no PATH given: name the file or directory to hoard");
	path = argv[optind++];
	for (; optind < argc; optind++) {
		const char *a = argv[optind];

		if (strcmp(a, "children") == 0 || strcmp(a, "descendants") == 0) {
			if (flags != NULL)
				return cli_usage("hoard add", "give children or descendants once");
			flags = a;
		} else if (a[0] >= '0' && a[0] <= '9') {
			if (pri != 0 || !cli_parse_uint(a, 1, 1000, &pri))
				return cli_usage("hoard add",
						 "invalid PRIORITY '%s': expected 1..1000 once", a);
		} else {
			return cli_usage(
				"hoard add",
				"unexpected '%s': expected PRIORITY (1..1000), children or "
				"descendants",
				a);
		}
	}
	if (rel_path("hoard add", path, rel, sizeof(rel)) != CLI_OK)
		return CLI_FAIL;
	req = json_object_new_object();
	json_object_object_add(req, "path", json_object_new_string(rel));
	if (pri != 0)
		json_object_object_add(req, "priority", json_object_new_int64((int64_t)pri));
	json_object_object_add(req, "flags", json_object_new_string(flags ? flags : "none"));
	ret = ctl_request("hoard add", path, "hoard-add", req, &rep);
	json_object_put(req);
	if (ret != CLI_OK)
		return ret;
	if (json)
		ret = cli_print_json(rep);
	else
		printf("%s\t%s\t%s\n", cli_json_str(rep, "priority", "-"),
		       cli_json_str(rep, "flags", "-"), cli_json_str(rep, "path", path));
	json_object_put(rep);
	return ret;
}

static int hoard_remove(int argc, char **argv)
{
	char rel[PATH_MAX];
	json_object *req, *rep;
	bool json = false;
	int ret = parse_opts("hoard remove", argc, argv, false, &json);

	if (ret >= 0)
		return ret;
	if (argc - optind != 1)
		return cli_usage("hoard remove", "give exactly one PATH");
	if (rel_path("hoard remove", argv[optind], rel, sizeof(rel)) != CLI_OK)
		return CLI_FAIL;
	req = json_object_new_object();
	json_object_object_add(req, "path", json_object_new_string(rel));
	ret = ctl_request("hoard remove", argv[optind], "hoard-remove", req, &rep);
	json_object_put(req);
	if (ret != CLI_OK)
		return ret;
	json_object_put(rep);
	return CLI_OK;
}

static int hoard_list(int argc, char **argv)
{
	json_object *req, *rep, *ents = NULL;
	bool json = false;
	int ret = parse_opts("hoard list", argc, argv, true, &json);

	if (ret >= 0)
		return ret;
	if (argc - optind > 1)
		return cli_usage("hoard list", "too many arguments: give at most one PATH");
	req = json_object_new_object();
	ret = ctl_request("hoard list", optind < argc ? argv[optind] : NULL, "hoard-list", req,
			  &rep);
	json_object_put(req);
	if (ret != CLI_OK)
		return ret;
	if (json) {
		ret = cli_print_json(rep);
	} else {
		json_object_object_get_ex(rep, "entries", &ents);
		printf("PRIORITY\tFLAGS\tUID\tPATH\n");
		for (size_t i = 0; json_object_is_type(ents, json_type_array) &&
				   i < json_object_array_length(ents);
		     i++) {
			json_object *e = json_object_array_get_idx(ents, i);

			printf("%s\t%s\t%s\t%s\n", cli_json_str(e, "priority", "-"),
			       cli_json_str(e, "flags", "-"), cli_json_str(e, "uid", "-"),
			       cli_json_str(e, "path", "-"));
		}
	}
	json_object_put(rep);
	return ret;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int hoard_walk(int argc, char **argv)
{
	const char *path;
	json_object *req, *rep;
	bool json = false, tty = isatty(STDERR_FILENO), shown = false;
	int64_t walk;
	int ret = parse_opts("hoard walk", argc, argv, true, &json);

	if (ret >= 0)
		return ret;
	if (argc - optind > 1)
		return cli_usage("hoard walk", "too many arguments: give at most one PATH");
	path = optind < argc ? argv[optind] : NULL;
	req = json_object_new_object();
	json_object_object_add(req, "wait", json_object_new_boolean(0));
	ret = ctl_request("hoard walk", path, "hoard-walk", req, &rep);
	json_object_put(req);
	if (ret != CLI_OK)
		return ret;
	walk = cli_json_int(rep, "walk", 0);
	json_object_put(rep);
	/* Poll: the client serves one control call at a time, so the walk runs
	 * in its hoard thread and we ask how far it got. */
	for (;;) {
		req = json_object_new_object();
		ret = ctl_request("hoard walk", path, "hoard-status", req, &rep);
		json_object_put(req);
		if (ret != CLI_OK)
			return ret;
		if (cli_json_int(rep, "done", 0) >= walk)
			break;
		if (tty && cli_json_int(rep, "walk", 0) >= walk) {
			fprintf(stderr,
				"\rencore: hoard walk: %lld checked, %lld fetched, %lld bytes   ",
				(long long)cli_json_int(rep, "checked", 0),
				(long long)cli_json_int(rep, "fetched", 0),
				(long long)cli_json_int(rep, "fetched_bytes", 0));
			shown = true;
		}
		json_object_put(rep);
		sleep_ms(WALK_POLL_MS);
	}
	if (shown)
		fputs("\n", stderr);
	{
		json_object *last = NULL;

		json_object_object_get_ex(rep, "last", &last);
		if (json) {
			ret = cli_print_json(last);
		} else {
			printf("entries\t%s\n", cli_json_str(last, "entries", "-"));
			printf("checked\t%s\n", cli_json_str(last, "checked", "-"));
			printf("fetched\t%s\n", cli_json_str(last, "fetched", "-"));
			printf("fetched_bytes\t%s\n", cli_json_str(last, "fetched_bytes", "-"));
			printf("listings\t%s\n", cli_json_str(last, "listings", "-"));
			printf("missing\t%s\n", cli_json_str(last, "missing", "-"));
			printf("errors\t%s\n", cli_json_str(last, "errors", "-"));
		}
		if (cli_json_int(last, "missing", 0) > 0)
			cli_note("hoard walk: %lld hoarded path(s) do not exist; see 'encore hoard "
				 "list' and remove them with 'encore hoard remove PATH'",
				 (long long)cli_json_int(last, "missing", 0));
		if (json_object_get_boolean(json_object_object_get(last, "aborted"))) {
			cli_err("hoard walk: stopped early: the servers are unreachable; check "
				"'encore check-servers' and try again");
			ret = CLI_FAIL;
		} else if (cli_json_int(last, "errors", 0) > 0) {
			cli_err("hoard walk: %lld object(s) could not be fetched; the client log "
				"says why (run it with -v)",
				(long long)cli_json_int(last, "errors", 0));
			ret = CLI_FAIL;
		}
	}
	json_object_put(rep);
	return ret;
}

int cmd_hoard(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} subs[] = {
		{ "add", hoard_add },
		{ "list", hoard_list },
		{ "remove", hoard_remove },
		{ "walk", hoard_walk },
	};

	if (argc < 2)
		return cli_usage("hoard", "no command given: add, list, remove or walk");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].fn(argc - 1, argv + 1);
		}
	}
	return cli_usage("hoard", "unknown command '%s': expected add, list, remove or walk",
			 argv[1]);
}
