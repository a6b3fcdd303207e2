/*
 * cmd_local_up.c - `encore local up`: initialise and start N servers on
 * 127.0.0.1, start and mount M clients against all of them, record it all
 * in DIR/local.json, and return once the mounts are usable. On any failure
 * (or Ctrl-C), stop what was started and show the relevant log.
 * Replication (docs/replication.md): every server is initialised with
 * --vsg 1,...,N; then N loopback ports are reserved, DIR/servers.conf names
 * them, and all servers start at once with --listen 127.0.0.1:PORT --peers.
 */
#include "cli/cmd_local.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/servers_conf.h"
#include "common/fsutil.h"
#include "common/log.h"

/* The client's --cache-size is in MiB; 1 TiB is more than any test needs. */
#define CACHE_SIZE_MAX_MIB (1024u * 1024u)
#define SUN_PATH_MAX	   (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)
/* A triply replicated root volume, as DESIGN.md section 10 describes. */
#define LOCAL_SERVERS_DEFAULT 3

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: encore local up [--dir DIR] [--servers N] [--clients N] [--mount PATH]\n"
		"                       [--cache-size MIB]\n"
		"\n"
		"Starts a realm named '" LOCAL_REALM
		"' on this machine and prints the mount path of\n"
		"client 1; its files are under <mount>/" LOCAL_REALM ". Stop it with\n"
		"'encore local down --dir DIR'.\n"
		"\n"
		"  --dir DIR         state, logs and mounts (default " LOCAL_DEFAULT_DIR ")\n"
		"  --servers N       servers to start, 1..%d (default 3); every server holds a\n"
		"                    replica of the root volume (VSG 1..N), listed in\n"
		"                    DIR/servers.conf, and every client knows all of them\n"
		"  --clients N       clients to mount, 1..%d (default 1): DIR/mnt, DIR/mnt2\n"
		"  --mount PATH      mount client 1 at PATH instead of DIR/mnt\n"
		"  --cache-size MIB  cache size of each client (default: the client's)\n"
		"  -h, --help        show this help\n",
		LOCAL_SERVERS_MAX, LOCAL_CLIENTS_MAX);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Fills st for a new realm of n_servers and n_clients in dir. Returns 0 or
 * -errno after printing why (names too long, leftovers of another realm). */
static int plan(struct local_state *st, size_t n_servers, size_t n_clients, const char *mount)
{
	for (size_t i = 0; i < n_servers; i++) {
		struct local_server *s = &st->servers[i];

		s->id = (uint32_t)(i + 1);
		if (local_path(s->dir, st->dir, "server%u", s->id) < 0 ||
		    local_path(s->log, st->dir, "server%u.log", s->id) < 0)
			goto too_long;
		if (exists(s->dir)) {
			cli_err("'%s' already exists, left from an earlier realm; remove it or "
				"choose another --dir",
				s->dir);
			return -EEXIST;
		}
	}
	st->n_servers = n_servers;
	for (size_t i = 0; i < n_clients; i++) {
		struct local_client *c = &st->clients[i];
		char top[PATH_MAX];

		c->id = (uint32_t)(i + 1);
		if (local_path(top, st->dir, "client%u", c->id) < 0 ||
		    local_path(c->cache, st->dir, "client%u/cache", c->id) < 0 ||
		    local_path(c->socket, st->dir, "client%u/cache/ctl.sock", c->id) < 0 ||
		    local_path(c->log, st->dir, "client%u.log", c->id) < 0)
			goto too_long;
		if (i == 0 && mount != NULL)
			snprintf(c->mount, sizeof(c->mount), "%s", mount);
		else if (local_path(c->mount, st->dir, i == 0 ? "mnt" : "mnt%u", c->id) < 0)
			goto too_long;
		if (strlen(c->socket) > SUN_PATH_MAX) {
			cli_err("the control socket '%s' would be too long for a Unix socket (max "
				"%zu bytes); choose a shorter --dir",
				c->socket, SUN_PATH_MAX);
			return -ENAMETOOLONG;
		}
		if (exists(top)) {
			cli_err("'%s' already exists, left from an earlier realm; remove it or "
				"choose another --dir",
				top);
			return -EEXIST;
		}
		if (local_is_mounted(c->mount)) {
			cli_err("'%s' is already a mount point; unmount it or choose another "
				"--dir or --mount",
				c->mount);
			return -EBUSY;
		}
	}
	st->n_clients = n_clients;
	return 0;

too_long:
	cli_err("paths under '%s' would be too long; choose a shorter --dir", st->dir);
	return -ENAMETOOLONG;
}

/* Refuses to start over a realm recorded in dir. 0 if there is none. */
static int check_no_realm(const char *dir)
{
	struct local_state *old = calloc(1, sizeof(*old));
	int ret;

	if (old == NULL)
		return -ENOMEM;
	ret = local_state_load(dir, old);
	if (ret == -ENOENT) {
		ret = 0;
	} else if (ret == 0 && local_any_alive(old)) {
		cli_err("a local realm is already running in '%s' (see 'encore local status --dir "
			"%s'); run 'encore local down --dir %s' first",
			dir, dir, dir);
		ret = -EEXIST;
	} else {
		cli_err("'%s' holds a stopped or damaged local realm; run 'encore local down "
			"--dir %s' to clean it up, then try again",
			dir, dir);
		ret = -EEXIST;
	}
	free(old);
	return ret;
}

/* Empties log (a previous run's) so a failure shows only this run's lines. */
static void truncate_log(const char *log)
{
	FILE *fp = fopen(log, "we");

	if (fp != NULL)
		fclose(fp);
}

/* Records progress in local.json; complains if it cannot. */
static int save(const struct local_state *st)
{
	int ret = local_state_save(st);

	if (ret < 0)
		cli_err("cannot write '%s/%s': %s", st->dir, LOCAL_STATE_FILE, strerror(-ret));
	return ret;
}

/* Undoes a failed up: stops everything, removes what this run created. */
static void undo(struct local_state *st, const bool *made_mount)
{
	char path[PATH_MAX];

	if (local_teardown(st) < 0) {
		local_state_save(st);
		cli_err("could not stop everything; run 'encore local down --dir %s'", st->dir);
		return;
	}
	for (size_t i = 0; i < st->n_servers; i++) {
		fs_rmtree(st->servers[i].dir);
		if (local_path(path, st->dir, "server%u.port", st->servers[i].id) == 0)
			unlink(path);
	}
	if (servers_conf_path(st, path) == 0)
		unlink(path);
	for (size_t i = 0; i < st->n_clients; i++) {
		if (local_path(path, st->dir, "client%u", st->clients[i].id) == 0 &&
		    !local_mounts_below(path))
			fs_rmtree(path);
		if (made_mount[i])
			rmdir(st->clients[i].mount);
	}
	local_state_remove(st);
	cli_err("nothing was left running; logs are in '%s'", st->dir);
}

int cmd_local_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "servers", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "mount", required_argument, NULL, 'm' },
		{ "cache-size", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_arg = LOCAL_DEFAULT_DIR, *mount_arg = NULL;
	uint64_t n_servers = LOCAL_SERVERS_DEFAULT, n_clients = 1, cache_mib = 0;
	bool made_mount[LOCAL_CLIENTS_MAX] = { false };
	char mount[PATH_MAX];
	struct local_state *st;
	int c, ret, rc = CLI_FAIL;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir_arg = optarg;
			break;
		case 's':
			if (!cli_parse_uint(optarg, 1, LOCAL_SERVERS_MAX, &n_servers))
				return cli_usage("local up", "--servers wants 1..%d, not '%s'",
						 LOCAL_SERVERS_MAX, optarg);
			break;
		case 'c':
			if (!cli_parse_uint(optarg, 1, LOCAL_CLIENTS_MAX, &n_clients))
				return cli_usage("local up", "--clients wants 1..%d, not '%s'",
						 LOCAL_CLIENTS_MAX, optarg);
			break;
		case 'm':
			mount_arg = optarg;
			break;
		case 'C':
			if (!cli_parse_uint(optarg, 1, CACHE_SIZE_MAX_MIB, &cache_mib))
				return cli_usage("local up",
						 "--cache-size wants MiB, 1..%u, not '%s'",
						 CACHE_SIZE_MAX_MIB, optarg);
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			return cli_usage("local up", "invalid option");
		}
	}
	if (optind < argc)
		return cli_usage("local up", "unexpected argument '%s'", argv[optind]);

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return CLI_FAIL;
	st->cache_size_mib = (uint32_t)cache_mib;
	ret = local_dir_resolve(dir_arg, true, st->dir);
	if (ret < 0) {
		cli_err("cannot create '%s': %s", dir_arg, strerror(-ret));
		goto out;
	}
	if (check_no_realm(st->dir) < 0)
		goto out;
	if (mount_arg != NULL) {
		ret = local_dir_resolve(mount_arg, true, mount);
		if (ret < 0) {
			cli_err("cannot create the mount point '%s': %s", mount_arg,
				strerror(-ret));
			goto out;
		}
	}
	/* Find both programs before starting anything. */
	{
		char bin[PATH_MAX];

		if (local_find_bin("encore-server", bin) < 0 ||
		    local_find_bin("encore-client", bin) < 0)
			goto out;
	}
	st->replicated = true;

	if (plan(st, n_servers, n_clients, mount_arg != NULL ? mount : NULL) < 0)
		goto out;
	local_catch_signals();
	/* Record the realm before starting anything, so that `local down`
	 * can clean up even if this process dies half-way. */
	if (save(st) < 0)
		goto out;
	for (size_t i = 0; i < st->n_servers; i++) {
		truncate_log(st->servers[i].log);
		log_info("local", "initialising server %u", st->servers[i].id);
		if (local_init_server(st, &st->servers[i]) < 0)
			goto fail;
	}
	/* Reserve the ports only now, just before the servers bind them. */
	{
		uint16_t ports[LOCAL_SERVERS_MAX];

		ret = local_reserve_ports(st->n_servers, ports);
		if (ret < 0) {
			cli_err("cannot reserve %zu loopback ports: %s", st->n_servers,
				strerror(-ret));
			goto fail;
		}
		for (size_t i = 0; i < st->n_servers; i++)
			st->servers[i].port = ports[i];
	}
	ret = servers_conf_write(st);
	if (ret < 0) {
		cli_err("cannot write '%s/%s': %s", st->dir, SERVERS_CONF_FILE, strerror(-ret));
		goto fail;
	}
	if (save(st) < 0)
		goto fail;
	ret = local_start_servers(st);
	save(st);
	if (ret < 0)
		goto fail;
	for (size_t i = 0; i < st->n_servers; i++) {
		const struct local_server *s = &st->servers[i];

		cli_note("server %u running on 127.0.0.1:%u (pid %d)", s->id, (unsigned)s->port,
			 (int)s->pid);
	}
	for (size_t i = 0; i < st->n_clients; i++) {
		struct local_client *cl = &st->clients[i];

		truncate_log(cl->log);
		made_mount[i] = !exists(cl->mount);
		ret = fs_mkdirs(cl->mount, 0755);
		if (ret == 0)
			ret = fs_mkdirs(cl->cache, 0700);
		if (ret < 0) {
			cli_err("cannot create the directories of client %u: %s", cl->id,
				strerror(-ret));
			goto fail;
		}
		if (local_start_client(st, cl) < 0 || save(st) < 0)
			goto fail;
		cli_note("client %u mounted at %s (pid %d)", cl->id, cl->mount, (int)cl->pid);
	}

	printf("%s\n", st->clients[0].mount);
	if (fflush(stdout) != 0)
		goto fail;
	cli_note("realm '%s' is up: files are under %s/%s", LOCAL_REALM, st->clients[0].mount,
		 LOCAL_REALM);
	cli_note("stop it with: encore local down --dir %s", st->dir);
	rc = CLI_OK;
	goto out;

fail:
	undo(st, made_mount);
out:
	free(st);
	return rc;
}
