/*
 * local.c - state file, process and mount handling for `encore local`.
 * Owns:    DIR/local.json and the processes recorded in it.
 * Borrows: mountinfo parsing from ctl_client.c; fs_* from common/fsutil.h.
 * Format:  docs/architecture.md "encore local"; local.json is this module's
 *          own JSON (see local_state_json), version 1.
 */
#include "cli/local.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/ctl_client.h"
#include "cli/servers_conf.h"
#include "common/fsutil.h"

#define STATE_VERSION 1
/* local.json is small; anything bigger is not ours. */
#define STATE_MAX (64u * 1024u)
/* /proc/<pid>/cmdline of our daemons is a few hundred bytes. */
#define CMDLINE_MAX (64u * 1024u)
/* Poll interval while waiting for processes and mounts. */
#define POLL_MS 20
/* Lines of a daemon log shown when it fails. */
#define LOG_TAIL_LINES 15
#define FUSERMOUNT     "fusermount3"

volatile sig_atomic_t local_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	local_interrupted = 1;
}

void local_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Milliseconds left until deadline (now_ns() based), 0 if passed. */
static int ms_left(uint64_t deadline)
{
	uint64_t now = now_ns();

	return now >= deadline ? 0 : (int)((deadline - now) / 1000000u);
}

int local_dir_resolve(const char *arg, bool create, char out[PATH_MAX])
{
	int ret;

	if (create) {
		ret = fs_mkdirs(arg, 0755);
		if (ret < 0)
			return ret;
	}
	if (realpath(arg, out) == NULL)
		return -errno;
	return 0;
}

int local_path(char out[PATH_MAX], const char *dir, const char *fmt, ...)
{
	char tail[PATH_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tail))
		return -ENAMETOOLONG;
	n = snprintf(out, PATH_MAX, "%s/%s", dir, tail);
	if (n < 0 || n >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- local.json ---- */

json_object *local_state_json(const struct local_state *st, bool live)
{
	json_object *o = json_object_new_object();
	json_object *servers = json_object_new_array();
	json_object *clients = json_object_new_array();
	bool running = false;

	json_object_object_add(o, "version", json_object_new_int(STATE_VERSION));
	json_object_object_add(o, "dir", json_object_new_string(st->dir));
	json_object_object_add(o, "realm", json_object_new_string(LOCAL_REALM));
	if (st->n_clients > 0) {
		json_object_object_add(o, "mount", json_object_new_string(st->clients[0].mount));
		json_object_object_add(o, "client_pid", json_object_new_int64(st->clients[0].pid));
	}
	if (st->replicated)
		json_object_object_add(o, "replicated", json_object_new_boolean(true));
	if (st->cache_size_mib > 0)
		json_object_object_add(o, "cache_size_mib",
				       json_object_new_int64(st->cache_size_mib));
	for (size_t i = 0; i < st->n_clients; i++) {
		const struct local_client *c = &st->clients[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "id", json_object_new_int64(c->id));
		json_object_object_add(j, "mount", json_object_new_string(c->mount));
		json_object_object_add(j, "pid", json_object_new_int64(c->pid));
		json_object_object_add(j, "cache", json_object_new_string(c->cache));
		json_object_object_add(j, "socket", json_object_new_string(c->socket));
		json_object_object_add(j, "log", json_object_new_string(c->log));
		if (live) {
			bool alive = local_client_alive(c);

			running |= alive;
			json_object_object_add(j, "alive", json_object_new_boolean(alive));
			json_object_object_add(j, "mounted",
					       json_object_new_boolean(local_is_mounted(c->mount)));
		}
		json_object_array_add(clients, j);
	}
	for (size_t i = 0; i < st->n_servers; i++) {
		const struct local_server *s = &st->servers[i];
		json_object *j = json_object_new_object();
		char addr[32];

		snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)s->port);
		json_object_object_add(j, "id", json_object_new_int64(s->id));
		json_object_object_add(j, "pid", json_object_new_int64(s->pid));
		json_object_object_add(j, "port", json_object_new_int(s->port));
		json_object_object_add(j, "addr", json_object_new_string(addr));
		json_object_object_add(j, "frozen", json_object_new_boolean(s->frozen));
		json_object_object_add(j, "dir", json_object_new_string(s->dir));
		json_object_object_add(j, "log", json_object_new_string(s->log));
		if (live) {
			bool alive = local_server_alive(s);

			running |= alive;
			json_object_object_add(j, "alive", json_object_new_boolean(alive));
		}
		json_object_array_add(servers, j);
	}
	json_object_object_add(o, "clients", clients);
	json_object_object_add(o, "servers", servers);
	if (live)
		json_object_object_add(o, "running", json_object_new_boolean(running));
	return o;
}

/* Copies string member key of o into out[PATH_MAX]; false if absent or too long. */
static bool get_path(json_object *o, const char *key, char out[PATH_MAX])
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	if (s[0] != '/' || strlen(s) >= PATH_MAX)
		return false;
	memcpy(out, s, strlen(s) + 1);
	return true;
}

/* Integer member key of o in [min, max]; false if absent or out of range. */
static bool get_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return *out >= min && *out <= max;
}

static int parse_state(json_object *o, struct local_state *st)
{
	json_object *arr, *v;
	int64_t n;

	if (!json_object_is_type(o, json_type_object) || !get_int(o, "version", 1, 1, &n) ||
	    !get_path(o, "dir", st->dir))
		return -EINVAL;
	if (json_object_object_get_ex(o, "cache_size_mib", &v)) {
		if (!get_int(o, "cache_size_mib", 1, UINT32_MAX, &n))
			return -EINVAL;
		st->cache_size_mib = (uint32_t)n;
	}
	if (json_object_object_get_ex(o, "replicated", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			return -EINVAL;
		st->replicated = json_object_get_boolean(v);
	}
	if (!json_object_object_get_ex(o, "servers", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) > LOCAL_SERVERS_MAX)
		return -EINVAL;
	st->n_servers = json_object_array_length(arr);
	for (size_t i = 0; i < st->n_servers; i++) {
		struct local_server *s = &st->servers[i];

		v = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(v, json_type_object) || !get_path(v, "dir", s->dir) ||
		    !get_path(v, "log", s->log))
			return -EINVAL;
		if (!get_int(v, "id", 1, UINT32_MAX, &n))
			return -EINVAL;
		s->id = (uint32_t)n;
		if (!get_int(v, "pid", 0, INT32_MAX, &n))
			return -EINVAL;
		s->pid = (pid_t)n;
		if (!get_int(v, "port", 0, 65535, &n))
			return -EINVAL;
		s->port = (uint16_t)n;
		s->frozen = json_object_get_boolean(json_object_object_get(v, "frozen"));
	}
	if (!json_object_object_get_ex(o, "clients", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) > LOCAL_CLIENTS_MAX)
		return -EINVAL;
	st->n_clients = json_object_array_length(arr);
	for (size_t i = 0; i < st->n_clients; i++) {
		struct local_client *c = &st->clients[i];

		v = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(v, json_type_object) || !get_path(v, "mount", c->mount) ||
		    !get_path(v, "cache", c->cache) || !get_path(v, "socket", c->socket) ||
		    !get_path(v, "log", c->log))
			return -EINVAL;
		if (!get_int(v, "id", 1, UINT32_MAX, &n))
			return -EINVAL;
		c->id = (uint32_t)n;
		if (!get_int(v, "pid", 0, INT32_MAX, &n))
			return -EINVAL;
		c->pid = (pid_t)n;
	}
	return 0;
}

int local_state_load(const char *dir, struct local_state *st)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t len;
	json_object *o;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = local_path(path, dir, "%s", LOCAL_STATE_FILE);
	if (ret < 0)
		return ret;
	ret = fs_read_file(path, STATE_MAX, &buf, &len);
	if (ret < 0)
		return ret == -EFBIG ? -EINVAL : ret;
	o = cli_json_parse_object(buf, len);
	ret = o == NULL ? -EINVAL : parse_state(o, st);
	json_object_put(o);
	free(buf);
	/* The file names its own dir; trust the one we were pointed at. */
	if (ret == 0 && strcmp(st->dir, dir) != 0)
		snprintf(st->dir, sizeof(st->dir), "%s", dir);
	if (ret < 0)
		memset(st, 0, sizeof(*st));
	return ret;
}

int local_state_save(const struct local_state *st)
{
	char path[PATH_MAX];
	json_object *o;
	const char *s;
	int ret;

	ret = local_path(path, st->dir, "%s", LOCAL_STATE_FILE);
	if (ret < 0)
		return ret;
	o = local_state_json(st, false);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	ret = fs_write_atomic(path, s, strlen(s), 0644);
	json_object_put(o);
	return ret;
}

int local_state_remove(const struct local_state *st)
{
	char path[PATH_MAX];
	int ret;

	ret = local_path(path, st->dir, "%s", LOCAL_STATE_FILE);
	if (ret < 0)
		return ret;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* ---- processes ---- */

/* True if pid exists and is not a zombie (/proc/<pid>/stat state). */
static bool pid_running(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return false;
	/* Reap it if it is our child (local up's teardown); harmless otherwise. */
	waitpid(pid, NULL, WNOHANG);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ')
		return false;
	return p[2] != 'Z' && p[2] != 'X';
}

bool local_pid_alive(pid_t pid, const char *marker)
{
	char path[64], *buf;
	ssize_t n;
	size_t len = 0;
	bool found = false;
	int fd;

	if (!pid_running(pid))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	buf = malloc(CMDLINE_MAX + 1);
	if (buf == NULL) {
		close(fd);
		return false;
	}
	while (len < CMDLINE_MAX && (n = read(fd, buf + len, CMDLINE_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	for (size_t off = 0; off < len; off += strlen(buf + off) + 1) {
		if (strcmp(buf + off, marker) == 0) {
			found = true;
			break;
		}
	}
	free(buf);
	return found;
}

bool local_server_alive(const struct local_server *s)
{
	return local_pid_alive(s->pid, s->dir);
}

bool local_client_alive(const struct local_client *c)
{
	return local_pid_alive(c->pid, c->cache);
}

bool local_any_alive(const struct local_state *st)
{
	for (size_t i = 0; i < st->n_servers; i++) {
		if (local_server_alive(&st->servers[i]))
			return true;
	}
	for (size_t i = 0; i < st->n_clients; i++) {
		if (local_client_alive(&st->clients[i]))
			return true;
	}
	return false;
}

/* Looks for an executable name next to /proc/self/exe (if self) and then
 * in PATH. 0 or -ENOENT; prints nothing. */
static int find_bin(const char *name, bool self, char out[PATH_MAX])
{
	char dir[PATH_MAX], *slash;
	const char *path = getenv("PATH");
	ssize_t n;

	n = self ? readlink("/proc/self/exe", dir, sizeof(dir) - 1) : -1;
	if (n > 0) {
		dir[n] = '\0';
		slash = strrchr(dir, '/');
		if (slash != NULL) {
			*slash = '\0';
			if (local_path(out, dir, "%s", name) == 0 && access(out, X_OK) == 0)
				return 0;
		}
	}
	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	while (path != NULL && *path != '\0') {
		const char *colon = strchr(path, ':');
		size_t len = colon == NULL ? strlen(path) : (size_t)(colon - path);

		if (len > 0 && len < sizeof(dir)) {
			memcpy(dir, path, len);
			dir[len] = '\0';
			if (local_path(out, dir, "%s", name) == 0 && access(out, X_OK) == 0)
				return 0;
		}
		path = colon == NULL ? NULL : colon + 1;
	}
	return -ENOENT;
}

int local_find_bin(const char *name, char out[PATH_MAX])
{
	if (find_bin(name, true, out) == 0)
		return 0;
	cli_err("cannot find %s next to encore or in PATH; build it with 'make' or install it "
		"with 'make install'",
		name);
	return -ENOENT;
}

/* Forks and execs argv in a new session: stdin /dev/null, stdout and stderr
 * appended to log (or /dev/null), and, if ready_rd != NULL, the write end
 * of a new pipe as fd 3 (its read end goes to *ready_rd). Returns 0 or -errno. */
static int spawn(const char *const argv[], const char *log, pid_t *pid_out, int *ready_rd)
{
	int pfd[2] = { -1, -1 };
	int null_fd, log_fd;
	struct sigaction dfl;
	sigset_t none;
	pid_t pid;

	if (ready_rd != NULL && pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	/* Open everything before fork: the child only dup2s and execs. */
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0)
		goto err_errno;
	log_fd = log != NULL ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
			     : fcntl(null_fd, F_DUPFD_CLOEXEC, 0);
	if (log_fd < 0) {
		int e = errno;

		close(null_fd);
		errno = e;
		goto err_errno;
	}
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&none);

	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(null_fd);
		close(log_fd);
		errno = e;
		goto err_errno;
	}
	if (pid == 0) {
		/* Child: async-signal-safe calls only. */
		setsid();
		sigaction(SIGPIPE, &dfl, NULL);
		sigaction(SIGINT, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
		sigaction(SIGHUP, &dfl, NULL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
			_exit(127);
		if (pfd[1] >= 0) {
			if (pfd[1] == 3) {
				if (fcntl(3, F_SETFD, 0) < 0)
					_exit(127);
			} else if (dup2(pfd[1], 3) < 0) {
				_exit(127);
			}
		}
		/* Everything else we hold is O_CLOEXEC or closed here. */
		close_range(pfd[1] >= 0 ? 4 : 3, ~0u, 0);
		execv(argv[0], (char *const *)argv);
		(void)!write(2, "encore: exec failed\n", 20);
		_exit(127);
	}
	close(null_fd);
	close(log_fd);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (ready_rd != NULL)
		*ready_rd = pfd[0];
	*pid_out = pid;
	return 0;

err_errno : {
	int ret = -errno;

	if (pfd[0] >= 0) {
		close(pfd[0]);
		close(pfd[1]);
	}
	return ret;
}
}

/* Waits up to timeout_ms for pid (our child) to exit; returns its status
 * as local_run does, or -ETIMEDOUT / -EINTR. */
static int wait_child(pid_t pid, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (local_interrupted)
			return -EINTR;
		if (ms_left(deadline) == 0)
			return -ETIMEDOUT;
		sleep_ms(POLL_MS);
	}
}

int local_run(const char *const argv[], const char *log, int timeout_ms)
{
	pid_t pid;
	int ret;

	ret = spawn(argv, log, &pid, NULL);
	if (ret < 0)
		return ret;
	ret = wait_child(pid, timeout_ms);
	if (ret < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return ret;
}

/* Waits for "\n" on the ready pipe rd of child pid. Returns 0 once ready,
 * -ECHILD if the child exited or closed the pipe first, -ETIMEDOUT, -EINTR. */
static int wait_ready(pid_t pid, int rd, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	char buf[16];

	(void)pid;
	for (;;) {
		struct pollfd pfd = { .fd = rd, .events = POLLIN };
		int left = ms_left(deadline), r;
		ssize_t n;

		if (local_interrupted)
			return -EINTR;
		if (left == 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, left < 200 ? left : 200);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		n = read(rd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -ECHILD;
		if (memchr(buf, '\n', (size_t)n) != NULL)
			return 0;
	}
}

/* Explains why a daemon did not come up, stops it if it still runs, and
 * shows its log. */
static void start_failed(const char *what, pid_t pid, int ret, const char *log)
{
	int st;

	if (ret == -ECHILD) {
		st = wait_child(pid, 2000);
		if (st >= 128)
			cli_err("%s was killed by signal %d before it was ready", what, st - 128);
		else if (st >= 0)
			cli_err("%s exited with status %d before it was ready", what, st);
		else
			cli_err("%s closed its ready fd without reporting ready", what);
	} else if (ret == -ETIMEDOUT) {
		cli_err("%s did not report ready within %d s", what, LOCAL_READY_TIMEOUT_MS / 1000);
	} else if (ret == -EINTR) {
		cli_err("interrupted while waiting for %s", what);
	} else {
		cli_err("waiting for %s failed: %s", what, strerror(-ret));
	}
	if (pid_running(pid)) {
		kill(pid, SIGKILL);
		wait_child(pid, 2000);
	}
	if (ret != -EINTR)
		local_log_tail(log);
}

/* Reads the decimal port the server wrote to path. 0 or -EINVAL/-errno. */
static int read_port(const char *path, uint16_t *port)
{
	char *buf = NULL;
	size_t len;
	uint64_t v;
	int ret;

	ret = fs_read_file(path, 32, &buf, &len);
	if (ret < 0)
		return ret;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	ret = cli_parse_uint(buf, 1, 65535, &v) ? 0 : -EINVAL;
	free(buf);
	if (ret == 0)
		*port = (uint16_t)v;
	return ret;
}

int local_reserve_ports(size_t n, uint16_t *ports)
{
	int fds[LOCAL_SERVERS_MAX];
	size_t n_open = 0;
	int ret = 0;

	if (n > LOCAL_SERVERS_MAX)
		return -EINVAL;
	/* All sockets stay bound until every port is read, so the ports differ. */
	for (; n_open < n; n_open++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t sl = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			ret = -errno;
			break;
		}
		fds[n_open] = fd;
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
			ret = -errno;
			n_open++;
			break;
		}
		ports[n_open] = ntohs(sa.sin_port);
	}
	for (size_t i = 0; i < n_open; i++)
		close(fds[i]);
	return ret;
}

int local_init_server(const struct local_state *st, const struct local_server *s)
{
	char bin[PATH_MAX], id[16], owner[32], vsg[SERVERS_VSG_MAX];
	const char *argv[14];
	size_t n = 0;
	int ret;

	ret = local_find_bin("encore-server", bin);
	if (ret < 0)
		return ret;
	snprintf(id, sizeof(id), "%u", s->id);
	snprintf(owner, sizeof(owner), "%u:%u", (unsigned)getuid(), (unsigned)getgid());
	argv[n++] = bin;
	argv[n++] = "init";
	argv[n++] = "--dir";
	argv[n++] = s->dir;
	argv[n++] = "--server-id";
	argv[n++] = id;
	argv[n++] = "--realm";
	argv[n++] = LOCAL_REALM;
	argv[n++] = "--root-owner";
	argv[n++] = owner;
	if (st->replicated) {
		ret = servers_conf_vsg(st, vsg, sizeof(vsg));
		if (ret < 0)
			return ret;
		argv[n++] = "--vsg";
		argv[n++] = vsg;
	}
	argv[n] = NULL;

	ret = local_run(argv, s->log, LOCAL_READY_TIMEOUT_MS);
	if (ret == 0)
		return 0;
	if (ret == -EINTR)
		cli_err("interrupted while initialising server %u", s->id);
	else if (ret < 0)
		cli_err("cannot run '%s init': %s", bin, strerror(-ret));
	else
		cli_err("'encore-server init --dir %s' failed (exit status %d)", s->dir, ret);
	if (ret != -EINTR)
		local_log_tail(s->log);
	return ret < 0 ? ret : -EIO;
}

/* Starts server s without waiting: *pid and *rd (its ready pipe) are set on
 * success. Returns 0 or -errno after printing why. */
static int server_spawn(const struct local_state *st, const struct local_server *s, pid_t *pid,
			int *rd)
{
	char bin[PATH_MAX], port_file[PATH_MAX], conf[PATH_MAX], listen[32];
	const char *argv[14];
	size_t n = 0;
	int ret;

	ret = local_find_bin("encore-server", bin);
	if (ret < 0)
		return ret;
	if (local_path(port_file, st->dir, "server%u.port", s->id) < 0 ||
	    servers_conf_path(st, conf) < 0)
		return -ENAMETOOLONG;
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)s->port);
	if (unlink(port_file) < 0 && errno != ENOENT) {
		ret = -errno;
		cli_err("cannot remove stale '%s': %s", port_file, strerror(errno));
		return ret;
	}
	argv[n++] = bin;
	argv[n++] = "--dir";
	argv[n++] = s->dir;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--port-file";
	argv[n++] = port_file;
	argv[n++] = "--ready-fd";
	argv[n++] = "3";
	if (st->replicated) {
		argv[n++] = "--peers";
		argv[n++] = conf;
	}
	argv[n] = NULL;
	ret = spawn(argv, s->log, pid, rd);
	if (ret < 0)
		cli_err("cannot start server %u: %s", s->id, strerror(-ret));
	return ret;
}

/* Waits for server s, spawned as pid with ready pipe rd (closed here), to
 * be ready, and records its pid and port in s. On failure it is stopped and
 * the reason printed; returns -errno. */
static int server_wait(const struct local_state *st, struct local_server *s, pid_t pid, int rd)
{
	char port_file[PATH_MAX], what[32];
	int ret;

	snprintf(what, sizeof(what), "server %u", s->id);
	ret = wait_ready(pid, rd, LOCAL_READY_TIMEOUT_MS);
	close(rd);
	if (ret < 0) {
		start_failed(what, pid, ret, s->log);
		return ret;
	}
	ret = local_path(port_file, st->dir, "server%u.port", s->id);
	if (ret == 0)
		ret = read_port(port_file, &s->port);
	if (ret < 0) {
		cli_err("%s is ready but its port file '%s' is unusable: %s", what, port_file,
			strerror(-ret));
		kill(pid, SIGKILL);
		wait_child(pid, 2000);
		local_log_tail(s->log);
		return ret;
	}
	s->pid = pid;
	s->frozen = false;
	return 0;
}

int local_start_server(const struct local_state *st, struct local_server *s, bool init)
{
	int ret, rd = -1;
	pid_t pid;

	if (init) {
		ret = local_init_server(st, s);
		if (ret < 0)
			return ret;
	}
	ret = server_spawn(st, s, &pid, &rd);
	if (ret < 0)
		return ret;
	return server_wait(st, s, pid, rd);
}

int local_start_servers(struct local_state *st)
{
	pid_t pids[LOCAL_SERVERS_MAX];
	int rds[LOCAL_SERVERS_MAX];
	size_t n_spawned = 0, i;
	int ret = 0;

	for (; n_spawned < st->n_servers; n_spawned++) {
		ret = server_spawn(st, &st->servers[n_spawned], &pids[n_spawned], &rds[n_spawned]);
		if (ret < 0)
			break;
	}
	for (i = 0; i < n_spawned && ret == 0; i++)
		ret = server_wait(st, &st->servers[i], pids[i], rds[i]);
	/* After a failure, the rest were never waited for: stop them. */
	for (; i < n_spawned; i++) {
		close(rds[i]);
		kill(pids[i], SIGKILL);
		wait_child(pids[i], 2000);
	}
	return ret;
}

int local_start_client(const struct local_state *st, struct local_client *c)
{
	/* bin, 6 for mount/cache/realm, 2 per server, cache size, ready fd, NULL */
	const char *argv[1 + 6 + 2 * LOCAL_SERVERS_MAX + 2 + 2 + 1];
	char addrs[LOCAL_SERVERS_MAX][32];
	char bin[PATH_MAX], size[24], what[32], parent[PATH_MAX], *slash;
	struct stat st_m, st_p;
	size_t n = 0;
	int ret, rd = -1;
	pid_t pid;

	snprintf(what, sizeof(what), "client %u", c->id);
	ret = local_find_bin("encore-client", bin);
	if (ret < 0)
		return ret;
	argv[n++] = bin;
	argv[n++] = "--mount";
	argv[n++] = c->mount;
	argv[n++] = "--cache";
	argv[n++] = c->cache;
	argv[n++] = "--realm";
	argv[n++] = LOCAL_REALM;
	for (size_t i = 0; i < st->n_servers; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%u", (unsigned)st->servers[i].port);
		argv[n++] = "--server";
		argv[n++] = addrs[i];
	}
	if (st->cache_size_mib > 0) {
		snprintf(size, sizeof(size), "%u", st->cache_size_mib);
		argv[n++] = "--cache-size";
		argv[n++] = size;
	}
	argv[n++] = "--ready-fd";
	argv[n++] = "3";
	argv[n] = NULL;

	ret = spawn(argv, c->log, &pid, &rd);
	if (ret < 0) {
		cli_err("cannot start %s: %s", what, strerror(-ret));
		return ret;
	}
	ret = wait_ready(pid, rd, LOCAL_READY_TIMEOUT_MS);
	close(rd);
	if (ret < 0) {
		start_failed(what, pid, ret, c->log);
		local_unmount(c->mount, c->log);
		return ret;
	}
	/* Ready means mounted: check that the mount point is a mount now. */
	snprintf(parent, sizeof(parent), "%s", c->mount);
	slash = strrchr(parent, '/');
	if (slash != NULL && slash != parent)
		*slash = '\0';
	if (stat(c->mount, &st_m) < 0 || stat(parent, &st_p) < 0 || st_m.st_dev == st_p.st_dev) {
		cli_err("%s reported ready but '%s' is not mounted", what, c->mount);
		kill(pid, SIGKILL);
		wait_child(pid, 2000);
		local_unmount(c->mount, c->log);
		local_log_tail(c->log);
		return -EIO;
	}
	c->pid = pid;
	return 0;
}

/* Waits up to timeout_ms for pid to exit; true once it has. */
static bool wait_gone(pid_t pid, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (pid_running(pid) && ms_left(deadline) > 0)
		sleep_ms(POLL_MS);
	return !pid_running(pid);
}

int local_stop_pid(pid_t pid, const char *marker, int sig, int timeout_ms)
{
	uint64_t deadline;

	if (!local_pid_alive(pid, marker))
		return 0;
	if (sig != 0) {
		kill(pid, sig);
		/* A frozen (SIGSTOPped) process handles SIGTERM only once continued. */
		if (sig != SIGKILL)
			kill(pid, SIGCONT);
	}
	deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (pid_running(pid) && ms_left(deadline) > 0)
		sleep_ms(POLL_MS);
	if (!pid_running(pid))
		return 0;
	if (local_pid_alive(pid, marker))
		kill(pid, SIGKILL);
	deadline = now_ns() + (uint64_t)LOCAL_STOP_TIMEOUT_MS * 1000000u;
	while (pid_running(pid) && ms_left(deadline) > 0)
		sleep_ms(POLL_MS);
	return pid_running(pid) ? -ETIMEDOUT : 0;
}

/* ---- mounts ---- */

struct mount_match {
	const char *path;
	size_t len;
	bool below; /* match path itself and everything under it */
	int n;
	char first[PATH_MAX]; /* first match (for local_sweep_mounts) */
};

static int match_cb(void *arg, const struct ctl_mount *m)
{
	struct mount_match *mm = arg;
	bool hit;

	if (mm->below)
		hit = strncmp(m->mount_point, mm->path, mm->len) == 0 &&
		      (m->mount_point[mm->len] == '\0' || m->mount_point[mm->len] == '/');
	else
		hit = strcmp(m->mount_point, mm->path) == 0;
	if (hit) {
		if (mm->n == 0)
			snprintf(mm->first, sizeof(mm->first), "%s", m->mount_point);
		mm->n++;
	}
	return 0;
}

static int count_mounts(const char *path, bool below, bool encore_only, char *first)
{
	struct mount_match *mm = calloc(1, sizeof(*mm));
	int n;

	if (mm == NULL)
		return 0;
	mm->path = path;
	mm->len = strlen(path);
	mm->below = below;
	ctl_mounts_foreach(encore_only, match_cb, mm);
	n = mm->n;
	if (first != NULL)
		snprintf(first, PATH_MAX, "%s", mm->first);
	free(mm);
	return n;
}

bool local_is_mounted(const char *path)
{
	return count_mounts(path, false, false, NULL) > 0;
}

bool local_mounts_below(const char *dir)
{
	return count_mounts(dir, true, false, NULL) > 0;
}

int local_unmount(const char *path, const char *log)
{
	char fm[PATH_MAX];
	bool have_fm = find_bin(FUSERMOUNT, false, fm) == 0;

	/* Up to three rounds: a path may have been mounted more than once. */
	for (int round = 0; round < 3 && local_is_mounted(path); round++) {
		if (have_fm) {
			const char *argv[] = { fm, "-u", path, NULL };
			const char *lazy[] = { fm, "-u", "-z", path, NULL };

			if (local_run(argv, log, LOCAL_STOP_TIMEOUT_MS) == 0 &&
			    !local_is_mounted(path))
				continue;
			if (local_run(lazy, log, LOCAL_STOP_TIMEOUT_MS) == 0 &&
			    !local_is_mounted(path))
				continue;
		}
		umount2(path, MNT_DETACH);
	}
	if (local_is_mounted(path)) {
		cli_err("cannot unmount '%s'; try 'fusermount3 -u -z %s' or, as root, "
			"'umount -l %s'",
			path, path, path);
		return -EBUSY;
	}
	return 0;
}

int local_teardown(struct local_state *st)
{
	int ret = 0;

	for (size_t i = 0; i < st->n_clients; i++) {
		struct local_client *c = &st->clients[i];

		/* Unmounting makes the client exit on its own; SIGTERM is the
		 * fallback, SIGKILL the last resort. */
		if (local_unmount(c->mount, c->log) < 0)
			ret = -EBUSY;
		if (local_client_alive(c) && !wait_gone(c->pid, LOCAL_STOP_TIMEOUT_MS / 2) &&
		    local_stop_pid(c->pid, c->cache, SIGTERM, LOCAL_STOP_TIMEOUT_MS) < 0) {
			cli_err("client %u (pid %d) does not exit", c->id, (int)c->pid);
			ret = -EBUSY;
		}
		/* The client is gone; a mount it left behind is now dead: retry. */
		if (local_unmount(c->mount, c->log) < 0)
			ret = -EBUSY;
		else if (!local_client_alive(c))
			c->pid = 0;
	}
	for (size_t i = 0; i < st->n_servers; i++) {
		struct local_server *s = &st->servers[i];

		if (local_stop_pid(s->pid, s->dir, SIGTERM, LOCAL_STOP_TIMEOUT_MS) < 0) {
			cli_err("server %u (pid %d) does not exit", s->id, (int)s->pid);
			ret = -EBUSY;
		} else {
			s->pid = 0;
			s->frozen = false;
		}
	}
	return ret;
}

static int sweep_cb(void *arg, const struct ctl_mount *m)
{
	struct mount_match *mm = arg;

	if (strncmp(m->mount_point, mm->path, mm->len) == 0 &&
	    (m->mount_point[mm->len] == '\0' || m->mount_point[mm->len] == '/')) {
		snprintf(mm->first, sizeof(mm->first), "%s", m->mount_point);
		return 1;
	}
	return 0;
}

int local_sweep_mounts(const char *dir)
{
	struct mount_match *mm = calloc(1, sizeof(*mm));
	int left = 0;

	if (mm == NULL)
		return 0;
	mm->path = dir;
	mm->len = strlen(dir);
	/* Bounded: each round removes one mount or gives up on it. */
	for (int round = 0; round < 16; round++) {
		mm->first[0] = '\0';
		if (ctl_mounts_foreach(true, sweep_cb, mm) <= 0)
			break;
		if (local_unmount(mm->first, NULL) < 0) {
			left = 1;
			break;
		}
	}
	free(mm);
	return left;
}

void local_log_tail(const char *log)
{
	char *buf = NULL;
	size_t len, start;
	int lines = 0;

	if (fs_read_file(log, 16u * 1024u * 1024u, &buf, &len) < 0 || len == 0) {
		free(buf);
		return;
	}
	while (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	start = len;
	while (start > 0 && lines < LOG_TAIL_LINES) {
		start--;
		if (buf[start] == '\n')
			lines++;
	}
	if (buf[start] == '\n')
		start++;
	fprintf(stderr, "encore: last lines of %s:\n", log);
	for (char *line = buf + start, *nl; line != NULL; line = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		fprintf(stderr, "  | %s\n", line);
	}
	free(buf);
}
