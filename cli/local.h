/*
 * local.h - shared machinery of `encore local`: the realm state file
 * DIR/local.json, starting encore-server / encore-client processes with a
 * ready fd, stopping them safely, and unmounting clients.
 * Layout: docs/architecture.md "encore local".
 *
 * Processes are started in their own session (setsid), so they outlive the
 * CLI; later invocations find them through local.json. Before any signal is
 * sent, the pid's command line is checked to still name the state dir of the
 * process we started ("marker"), so a recycled pid is never killed.
 */
#ifndef CLI_LOCAL_H
#define CLI_LOCAL_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "common/proto.h"

#define LOCAL_REALM	  "local"
#define LOCAL_DEFAULT_DIR "./.encore-local"
#define LOCAL_STATE_FILE  "local.json"
/* Replicas per volume bound the useful number of servers. */
#define LOCAL_SERVERS_MAX VV_MAX
/* Client 1 mounts at DIR/mnt (or --mount), client 2 at DIR/mnt2. */
#define LOCAL_CLIENTS_MAX 2
/* How long a daemon may take to report ready: LMDB open and FUSE mount are
 * fast; 15 s leaves room for a loaded CI machine. */
#define LOCAL_READY_TIMEOUT_MS 15000
/* Grace period between SIGTERM (or unmount) and SIGKILL. */
#define LOCAL_STOP_TIMEOUT_MS 5000

struct local_server {
	uint32_t id;	    /* 1-based, also the --server-id */
	pid_t pid;	    /* 0 when stopped */
	uint16_t port;	    /* on 127.0.0.1; kept across restarts */
	bool frozen;	    /* SIGSTOPped by freeze-server */
	char dir[PATH_MAX]; /* DIR/server<id>: its --dir, also the pid marker */
	char log[PATH_MAX];
};

struct local_client {
	uint32_t id;
	pid_t pid; /* 0 when not started */
	char mount[PATH_MAX];
	char cache[PATH_MAX]; /* DIR/client<id>/cache: its --cache, also the pid marker */
	char socket[PATH_MAX];
	char log[PATH_MAX];
};

struct local_state {
	char dir[PATH_MAX];	 /* absolute */
	uint32_t cache_size_mib; /* 0: the client's default */
	/* Replicated realm: servers were initialised with --vsg 1,...,N and run
	 * with --peers DIR/servers.conf (docs/replication.md). */
	bool replicated;
	size_t n_servers;
	struct local_server servers[LOCAL_SERVERS_MAX];
	size_t n_clients;
	struct local_client clients[LOCAL_CLIENTS_MAX];
};

/* Set by the SIGINT/SIGTERM/SIGHUP handler of local_catch_signals(); waits
 * in this module give up with -EINTR once it is set. */
extern volatile sig_atomic_t local_interrupted;
/* Installs the handler that sets local_interrupted (no SA_RESTART). */
void local_catch_signals(void);

/* Makes DIR absolute into out (creating it, mode 0755, if create). Returns
 * 0, -ENOENT if it does not exist and !create, -ENAMETOOLONG, or -errno. */
int local_dir_resolve(const char *arg, bool create, char out[PATH_MAX]);
/* Formats a path under st->dir into out. Returns 0 or -ENAMETOOLONG. */
int local_path(char out[PATH_MAX], const char *dir, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Reads DIR/local.json into st (fully overwritten). Returns 0, -ENOENT if
 * there is none, -EINVAL if it is malformed, or -errno. */
int local_state_load(const char *dir, struct local_state *st);
/* Writes st to st->dir/local.json atomically. 0 or -errno. */
int local_state_save(const struct local_state *st);
/* Removes st->dir/local.json. 0 or -errno (-ENOENT is 0). */
int local_state_remove(const struct local_state *st);
/* st as a new JSON object (json_object_put it). With live, adds "alive"
 * per process and "running" overall, as `local status` prints it. */
json_object *local_state_json(const struct local_state *st, bool live);

/* True if pid runs (not a zombie) and one of its arguments equals marker. */
bool local_pid_alive(pid_t pid, const char *marker);
bool local_server_alive(const struct local_server *s);
bool local_client_alive(const struct local_client *c);
/* True if anything recorded in st still runs. */
bool local_any_alive(const struct local_state *st);

/* Finds program name next to the running executable, else in PATH. Returns
 * 0 or -ENOENT (message printed, saying how to get it). */
int local_find_bin(const char *name, char out[PATH_MAX]);

/* Runs argv to completion with stdout/stderr appended to log (NULL: to
 * /dev/null), within timeout_ms (then SIGKILL). Returns the exit status
 * (>= 0), 128 + signal if killed, or -errno. */
int local_run(const char *const argv[], const char *log, int timeout_ms);

/* Reserves n distinct free TCP ports on 127.0.0.1 (binds n sockets to port
 * 0 at once, reads the ports, closes them) into ports[]. Another process
 * may take a port before the server binds it: keep the window short.
 * Returns 0 or -errno. */
int local_reserve_ports(size_t n, uint16_t *ports);

/* Runs `encore-server init` for server s (whose id, dir and log are set);
 * with st->replicated, with --vsg of every server of st. On failure prints
 * the reason and the log tail and returns -errno (-EIO: init failed). */
int local_init_server(const struct local_state *st, const struct local_server *s);

/* Starts server s (whose id, dir and log are set) on 127.0.0.1:port (0
 * picks one; s->port gets the port), with --peers DIR/servers.conf when
 * st->replicated. init: local_init_server first. On failure prints the
 * reason and the log tail, leaves nothing running, and returns -errno. */
int local_start_server(const struct local_state *st, struct local_server *s, bool init);

/* Starts every server of st at once (already initialised, s->port set or
 * 0) and waits until all are ready, so that ports reserved with
 * local_reserve_ports are bound soon. On failure the servers that became
 * ready have s->pid set (stop them with local_teardown), the others are
 * killed; the reason and the log tail are printed. Returns 0 or -errno. */
int local_start_servers(struct local_state *st);
/* Starts client c (whose fields but pid are set) against every server in
 * st and waits until its mount is usable. Failure as local_start_server. */
int local_start_client(const struct local_state *st, struct local_client *c);

/* Sends sig to pid if it still matches marker, then waits up to timeout_ms
 * for it to go; if it does not, SIGKILLs it and waits again. Returns 0 once
 * gone, -EINTR, or -ETIMEDOUT if even SIGKILL did not help. */
int local_stop_pid(pid_t pid, const char *marker, int sig, int timeout_ms);
/* True if something is mounted exactly at path (per mountinfo). */
bool local_is_mounted(const char *path);
/* Unmounts path if mounted: fusermount3 -u, then lazily, then umount2
 * MNT_DETACH. Returns 0 once it is no longer mounted, else -EBUSY. */
int local_unmount(const char *path, const char *log);
/* Unmounts and stops every client, then every server, of st; marks them
 * stopped in st (does not save). Returns 0 if nothing is left running and
 * mounted, else -EBUSY (reasons printed). */
int local_teardown(struct local_state *st);
/* Unmounts every encore mount at or below dir (left from a crashed run).
 * Returns the number still mounted afterwards. */
int local_sweep_mounts(const char *dir);
/* True if any mount (of any type) is at or below dir. */
bool local_mounts_below(const char *dir);

/* Prints the last lines of log to stderr, indented, to explain a failure. */
void local_log_tail(const char *log);

#endif /* CLI_LOCAL_H */
