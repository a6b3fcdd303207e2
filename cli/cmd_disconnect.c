/*
 * cmd_disconnect.c - `encore disconnect|reconnect|write-disconnect [PATH]`:
 * force the volume of PATH (default: every volume) of an encore-client into
 * disconnected or weakly connected operation, or lift that (control ops
 * "disconnect", "reconnect", "write-disconnect" with an optional "ino";
 * docs/disconnected.md "Volume states").
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/ctl_client.h"

struct dc_cmd {
	const char *name;
	const char *what;
};

static const struct dc_cmd dc_cmds[] = {
	{ "disconnect",
	  "Disconnects the volume of PATH (default: every volume) until 'encore reconnect':\n"
	  "updates are applied to the cache and logged in the client modification log\n"
	  "(CML); nothing is sent to the servers, reads are served from the cache.\n" },
	{ "reconnect", "Lifts a forced disconnection or write-disconnection of the volume of PATH\n"
		       "(default: every volume): the volume reintegrates its CML when its servers\n"
		       "answer, then is connected again.\n" },
	{ "write-disconnect",
	  "Makes the volume of PATH (default: every volume) weakly connected until\n"
	  "'encore reconnect': updates are logged in the CML and trickled to the servers\n"
	  "in the background after an ageing delay; reads still fetch.\n" },
};

static void usage(FILE *fp, const struct dc_cmd *c)
{
	fprintf(fp,
		"usage: encore %s [--json] [PATH]\n"
		"\n"
		"%s"
		"Prints the volumes and their states afterwards.\n"
		"\n"
		"  --json     print the client's reply as one JSON object\n"
		"  -h, --help show this help\n",
		c->name, c->what);
}

static void print_cml(json_object *vols)
{
	size_t n = json_object_is_type(vols, json_type_array) ? json_object_array_length(vols) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vols, i), *x;

		if (!json_object_object_get_ex(v, "cml_records", &x))
			continue;
		printf("volume %s: %s CML record(s), %s byte(s) pending\n",
		       cli_json_str(v, "id", "-"), cli_json_str(v, "cml_records", "0"),
		       cli_json_str(v, "cml_bytes", "0"));
	}
}

static int run(const struct dc_cmd *dc, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	json_object *req, *rep, *vols = NULL;
	bool json = false;
	struct stat st;
	char sock[PATH_MAX];
	int c, ret, held = -1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout, dc);
			return CLI_OK;
		default:
			return cli_usage(dc->name, "invalid option");
		}
	}
	if (argc - optind > 1)
		return cli_usage(dc->name, "too many arguments: give at most one PATH");
	req = json_object_new_object();
	if (optind < argc) {
		path = argv[optind];
		held = ctl_hold_path(path, true, &st);
		if (held < 0) {
			cli_err("%s: cannot stat '%s': %s; give a path the client has cached, or "
				"no PATH for every volume",
				dc->name, path, strerror(-held));
			json_object_put(req);
			return CLI_FAIL;
		}
		json_object_object_add(req, "ino", ctl_ino_json(st.st_ino));
	}
	/* Find the socket first so that an error names it. */
	if (ctl_find_socket(path, sock, sizeof(sock)) < 0) {
		json_object_put(req);
		if (held >= 0)
			close(held);
		return CLI_FAIL;
	}
	json_object_object_add(req, "op", json_object_new_string(dc->name));
	ret = ctl_call(sock, req, CTL_TIMEOUT_MS, &rep);
	json_object_put(req);
	if (held >= 0)
		close(held);
	if (ret < 0) {
		cli_err("%s: cannot reach encore-client at '%s': %s; is the client running? "
			"(try 'encore status')",
			dc->name, sock, strerror(-ret));
		return CLI_FAIL;
	}
	if (!json_object_get_boolean(json_object_object_get(rep, "ok"))) {
		int64_t e = cli_json_int(rep, "errno", 0);

		if (e == EINVAL)
			cli_err("%s: the client refused '%s' (%s); a client without disconnected "
				"operation does not know it: restart it with a current encore-client",
				dc->name, dc->name, cli_json_str(rep, "error", "invalid request"));
		else
			cli_err("%s: %s", dc->name,
				cli_json_str(rep, "error", "the client reported a failure"));
		json_object_put(rep);
		return CLI_FAIL;
	}
	if (json) {
		ret = cli_print_json(rep);
		json_object_put(rep);
		return ret;
	}
	if (!json_object_object_get_ex(rep, "volumes", &vols)) {
		/* The volumes as the client sees them now (the change itself may
		 * take a moment: reintegration, a probe). */
		json_object_put(rep);
		req = json_object_new_object();
		json_object_object_add(req, "op", json_object_new_string("status"));
		ret = ctl_call(sock, req, CTL_TIMEOUT_MS, &rep);
		json_object_put(req);
		if (ret < 0) {
			printf("%s\tok\n", dc->name);
			return CLI_OK;
		}
		json_object_object_get_ex(rep, "volumes", &vols);
	}
	ctl_print_volumes(vols);
	print_cml(vols);
	json_object_put(rep);
	return CLI_OK;
}

int cmd_disconnect(int argc, char **argv)
{
	return run(&dc_cmds[0], argc, argv);
}

int cmd_reconnect(int argc, char **argv)
{
	return run(&dc_cmds[1], argc, argv);
}

int cmd_write_disconnect(int argc, char **argv)
{
	return run(&dc_cmds[2], argc, argv);
}
