/*
 * ctl_client.c - find an encore-client's control socket and call it.
 * Owns:    one short-lived rpc_conn per ctl_call.
 * Borrows: frame codecs (common/msg.h) and the connection (common/rpc.h).
 * Format:  docs/architecture.md "Control protocol"; proc(5) for mountinfo.
 */
#include "cli/ctl_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/msg.h"
#include "common/proto.h"
#include "common/rpc.h"

#define ENCORE_FSTYPE	  "fuse.encore"
#define ENCORE_SRC_PREFIX "encore:"
/* A mountinfo line holds at most three paths plus options; longer lines are
 * not ours and are skipped. */
#define MOUNTINFO_LINE_MAX (4 * PATH_MAX)
/* Unix socket paths must fit sockaddr_un.sun_path (108 bytes with NUL). */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

/* Copies the mountinfo field [s, s+n) to out[len], decoding \ooo escapes.
 * Returns 0 or -EINVAL (bad escape, does not fit). */
static int unescape(const char *s, size_t n, char *out, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			unsigned v = 0;

			if (n - i < 4)
				return -EINVAL;
			for (size_t k = 1; k <= 3; k++) {
				if (s[i + k] < '0' || s[i + k] > '7')
					return -EINVAL;
				v = v * 8 + (unsigned)(s[i + k] - '0');
			}
			if (v == 0 || v > 255)
				return -EINVAL;
			c = (unsigned char)v;
			i += 3;
		}
		if (o + 1 >= len)
			return -EINVAL;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* Splits off the next space-separated field of *p (up to end); returns
 * its start and length, advancing *p past the separator. False at the end. */
static bool next_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *s = *p, *sp;

	if (s >= end)
		return false;
	sp = memchr(s, ' ', (size_t)(end - s));
	if (sp == NULL)
		sp = end;
	*f = s;
	*n = (size_t)(sp - s);
	*p = sp == end ? end : sp + 1;
	return true;
}

int ctl_mountinfo_parse(const char *line, struct ctl_mount *m)
{
	const char *p = line, *end, *f;
	size_t n, len = strlen(line);
	char num[32];
	char *e;
	unsigned long maj, min;
	int field = 0;

	memset(m, 0, sizeof(*m));
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	end = line + len;

	/* 1 mount id, 2 parent id, 3 major:minor, 4 root, 5 mount point,
	 * 6 options, then optional fields up to "-", fstype, source, super options. */
	while (field < 6) {
		if (!next_field(&p, end, &f, &n))
			return -EINVAL;
		field++;
		if (field == 3) {
			if (n == 0 || n >= sizeof(num))
				return -EINVAL;
			memcpy(num, f, n);
			num[n] = '\0';
			errno = 0;
			maj = strtoul(num, &e, 10);
			if (errno != 0 || e == num || *e != ':' || e[1] < '0' || e[1] > '9')
				return -EINVAL;
			min = strtoul(e + 1, &e, 10);
			if (errno != 0 || *e != '\0' || maj > 0xfffff || min > 0xfffff)
				return -EINVAL;
			m->major = (unsigned)maj;
			m->minor = (unsigned)min;
		} else if (field == 5) {
			if (n == 0 || f[0] != '/' ||
			    unescape(f, n, m->mount_point, sizeof(m->mount_point)) < 0)
				return -EINVAL;
		}
	}
	for (;;) {
		if (!next_field(&p, end, &f, &n))
			return -EINVAL;
		if (n == 1 && f[0] == '-')
			break;
	}
	if (!next_field(&p, end, &f, &n) || n == 0 ||
	    unescape(f, n, m->fstype, sizeof(m->fstype)) < 0)
		return -EINVAL;
	/* The source may be empty (two spaces in a row). */
	if (p >= end)
		return -EINVAL;
	e = memchr(p, ' ', (size_t)(end - p));
	n = e == NULL ? (size_t)(end - p) : (size_t)(e - p);
	if (unescape(p, n, m->source, sizeof(m->source)) < 0)
		return -EINVAL;
	return 0;
}

const char *ctl_mount_socket(const struct ctl_mount *m)
{
	size_t plen = strlen(ENCORE_SRC_PREFIX);

	if (strcmp(m->fstype, ENCORE_FSTYPE) != 0 ||
	    strncmp(m->source, ENCORE_SRC_PREFIX, plen) != 0 || m->source[plen] != '/')
		return NULL;
	return m->source + plen;
}

int ctl_mounts_foreach(bool encore_only, ctl_mount_fn fn, void *arg)
{
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;
	struct ctl_mount *m;

	fp = fopen("/proc/self/mountinfo", "re");
	if (fp == NULL)
		return -errno;
	m = malloc(sizeof(*m));
	if (m == NULL) {
		fclose(fp);
		return -ENOMEM;
	}
	while ((n = getline(&line, &cap, fp)) > 0) {
		if ((size_t)n > MOUNTINFO_LINE_MAX || ctl_mountinfo_parse(line, m) < 0)
			continue;
		if (encore_only && ctl_mount_socket(m) == NULL)
			continue;
		ret = fn(arg, m);
		if (ret != 0)
			break;
	}
	free(line);
	free(m);
	fclose(fp);
	return ret;
}

int ctl_path_normalize(const char *path, const char *cwd, char *out, size_t len)
{
	char *buf;
	size_t o = 0, need;
	const char *p, *comp;
	int ret = 0;

	need = strlen(path) + (path[0] == '/' ? 0 : strlen(cwd) + 1) + 1;
	if (need > len || len < 2)
		return -ENAMETOOLONG;
	buf = malloc(need);
	if (buf == NULL)
		return -ENOMEM;
	snprintf(buf, need, "%s%s%s", path[0] == '/' ? "" : cwd, path[0] == '/' ? "" : "/", path);
	out[0] = '\0';
	for (p = buf; *p != '\0';) {
		size_t n;

		while (*p == '/')
			p++;
		comp = p;
		while (*p != '\0' && *p != '/')
			p++;
		n = (size_t)(p - comp);
		if (n == 0 || (n == 1 && comp[0] == '.'))
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash before the removed component */
			out[o] = '\0';
			continue;
		}
		if (o + 1 + n + 1 > len) {
			ret = -ENAMETOOLONG;
			break;
		}
		out[o++] = '/';
		memcpy(out + o, comp, n);
		o += n;
		out[o] = '\0';
	}
	if (ret == 0 && o == 0) {
		out[0] = '/';
		out[1] = '\0';
	}
	free(buf);
	return ret;
}

struct find_ctx {
	dev_t dev;	  /* st_dev of the path looked for, or 0 */
	const char *lex;  /* normalised path, or NULL */
	int n_mounts;	  /* encore mounts seen */
	bool found;	  /* a mount with dev was found */
	size_t best_len;  /* longest mount point that is a prefix of lex */
	bool best_encore; /* ... and it is an encore mount (sock in best) */
	char sock[PATH_MAX];
	char best[PATH_MAX];
	char only[PATH_MAX]; /* socket of the first encore mount seen */
	char list[1024];     /* mount points, for the error message */
};

/* True if mount point mp is path or one of its ancestors. */
static bool is_prefix(const char *mp, const char *path)
{
	size_t n = strlen(mp);

	if (strcmp(mp, "/") == 0)
		return true;
	return strncmp(mp, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int find_cb(void *arg, const struct ctl_mount *m)
{
	struct find_ctx *c = arg;
	const char *sock = ctl_mount_socket(m);
	size_t used = strlen(c->list);

	/* Later lines stack on top of earlier ones at the same point: ">=". */
	if (c->lex != NULL && is_prefix(m->mount_point, c->lex) &&
	    strlen(m->mount_point) >= c->best_len) {
		c->best_len = strlen(m->mount_point);
		c->best_encore = sock != NULL;
		if (sock != NULL)
			snprintf(c->best, sizeof(c->best), "%s", sock);
	}
	if (sock == NULL)
		return 0;
	if (c->n_mounts == 0)
		snprintf(c->only, sizeof(c->only), "%s", sock);
	c->n_mounts++;
	/* The list only feeds an error message: truncating it is fine. */
	if (used < sizeof(c->list) - 1 && snprintf(c->list + used, sizeof(c->list) - used, "%s%s",
						   used > 0 ? ", " : "", m->mount_point) < 0)
		c->list[used] = '\0';
	if (c->dev != 0 && makedev(m->major, m->minor) == c->dev) {
		c->found = true;
		snprintf(c->sock, sizeof(c->sock), "%s", sock);
	}
	return 0;
}

static int copy_sock(const char *sock, char *out, size_t len)
{
	if (strlen(sock) > SUN_PATH_MAX || strlen(sock) >= len) {
		cli_err("control socket path '%s' is too long for a Unix socket", sock);
		return -ENAMETOOLONG;
	}
	snprintf(out, len, "%s", sock);
	return 0;
}

int ctl_find_socket(const char *path, char *out, size_t len)
{
	struct find_ctx *c;
	const char *env = getenv("ENCORE_SOCKET");
	char cwd[PATH_MAX], *lex = NULL;
	struct stat st;
	int ret, stat_err = 0;

	if (env != NULL && *env != '\0')
		return copy_sock(env, out, len);

	c = calloc(1, sizeof(*c));
	lex = malloc(PATH_MAX);
	if (c == NULL || lex == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	if (stat(path != NULL ? path : ".", &st) < 0)
		stat_err = errno;
	else
		c->dev = st.st_dev;
	if (getcwd(cwd, sizeof(cwd)) != NULL &&
	    ctl_path_normalize(path != NULL ? path : ".", cwd, lex, PATH_MAX) == 0)
		c->lex = lex;
	ret = ctl_mounts_foreach(false, find_cb, c);
	if (ret < 0) {
		cli_err("cannot read /proc/self/mountinfo: %s", strerror(-ret));
		goto out;
	}
	if (c->found) {
		ret = copy_sock(c->sock, out, len);
	} else if (stat_err != 0 && c->best_encore) {
		ret = copy_sock(c->best, out, len);
	} else if (stat_err != 0 && path != NULL) {
		cli_err("cannot stat '%s': %s", path, strerror(stat_err));
		ret = -stat_err;
	} else if (path == NULL && c->n_mounts == 1) {
		ret = copy_sock(c->only, out, len);
	} else if (c->n_mounts == 0) {
		cli_err("no encore file system is mounted; start one with 'encore local up' "
			"or set ENCORE_SOCKET to a client's control socket");
		ret = -ENOENT;
	} else {
		cli_err("%s%s%s is not on an encore file system; encore mounts: %s",
			path == NULL ? "the current directory" : "'", path == NULL ? "" : path,
			path == NULL ? "" : "'", c->list);
		ret = -ENOENT;
	}
out:
	free(lex);
	free(c);
	return ret;
}

int ctl_call(const char *sock, json_object *req, int timeout_ms, json_object **reply)
{
	char addr[PATH_MAX + 8];
	struct rpc_conn *conn = NULL;
	struct rpc_call *call = NULL;
	struct msg m, rep;
	const char *s;
	size_t slen;
	int ret;

	*reply = NULL;
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	slen = strlen(s);
	if (slen > CTL_JSON_MAX)
		return -EMSGSIZE;
	if ((size_t)snprintf(addr, sizeof(addr), "unix:%s", sock) >= sizeof(addr))
		return -ENAMETOOLONG;
	ret = rpc_open(addr, timeout_ms < 5000 ? timeout_ms : 5000, NULL, NULL, NULL, &conn);
	if (ret < 0)
		return ret;
	msg_init(&m, MSG_CTL);
	m.data = (const uint8_t *)s;
	m.data_len = (uint32_t)slen;
	ret = rpc_call(conn, &m, &rep, timeout_ms, &call);
	if (ret < 0)
		goto out;
	if (rep.status != 0) {
		ret = rep.status;
		goto out;
	}
	if (rep.data_len == 0 || rep.data_len > CTL_JSON_MAX) {
		ret = -EPROTO;
		goto out;
	}
	*reply = cli_json_parse_object((const char *)rep.data, rep.data_len);
	if (*reply == NULL)
		ret = -EPROTO;
out:
	rpc_call_free(call);
	rpc_close(conn);
	return ret;
}

int ctl_request(const char *cmd, const char *path, const char *op, json_object *req,
		json_object **reply)
{
	char sock[PATH_MAX];
	json_object *rep = NULL;
	int ret;

	*reply = NULL;
	if (ctl_find_socket(path, sock, sizeof(sock)) < 0)
		return CLI_FAIL;
	json_object_object_add(req, "op", json_object_new_string(op));
	ret = ctl_call(sock, req, CTL_TIMEOUT_MS, &rep);
	if (ret == -ENOENT || ret == -ECONNREFUSED) {
		cli_err("%s: cannot connect to encore-client at '%s': %s; is the client running? "
			"(try 'encore local status')",
			cmd, sock, err_str(ret));
		return CLI_FAIL;
	}
	if (ret == -EACCES || ret == -EPERM) {
		cli_err("%s: no permission to use the control socket '%s'; run as its owner or "
			"as root",
			cmd, sock);
		return CLI_FAIL;
	}
	if (ret == -ETIMEDOUT) {
		cli_err("%s: encore-client at '%s' did not answer within %d s; check its log", cmd,
			sock, CTL_TIMEOUT_MS / 1000);
		return CLI_FAIL;
	}
	if (ret < 0) {
		cli_err("%s: control call to '%s' failed: %s", cmd, sock, err_str(ret));
		return CLI_FAIL;
	}
	if (!json_object_get_boolean(json_object_object_get(rep, "ok"))) {
		cli_err("%s: %s", cmd, cli_json_str(rep, "error", "the client reported a failure"));
		json_object_put(rep);
		return CLI_FAIL;
	}
	*reply = rep;
	return CLI_OK;
}

void ctl_print_servers(json_object *servers)
{
	size_t n = json_object_is_type(servers, json_type_array) ? json_object_array_length(servers)
								 : 0;

	printf("SERVER\tADDR\tSTATE\tRTT_US\n");
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(servers, i);

		const char *state = cli_json_str(s, "state", "-");

		/* A down server's last RTT says nothing about it now. */
		printf("%s\t%s\t%s\t%s\n", cli_json_str(s, "id", "-"), cli_json_str(s, "addr", "-"),
		       state, strcmp(state, "down") == 0 ? "-" : cli_json_str(s, "rtt_us", "-"));
	}
}

void ctl_print_ids(json_object *arr)
{
	size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;

	if (n == 0)
		fputs("-", stdout);
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		const char *s = json_object_is_type(v, json_type_object)
					? cli_json_str(v, "id", "?")
					: json_object_get_string(v);

		printf("%s%s", i > 0 ? "," : "", s);
	}
}

void ctl_print_volumes(json_object *vols)
{
	size_t n = json_object_is_type(vols, json_type_array) ? json_object_array_length(vols) : 0;

	printf("VOLUME\tNAME\tSTATE\tVSG\tAVSG\n");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vols, i), *vsg = NULL, *avsg = NULL;

		if (!json_object_object_get_ex(v, "vsg", &vsg))
			json_object_object_get_ex(v, "servers", &vsg);
		json_object_object_get_ex(v, "avsg", &avsg);
		printf("%s\t%s\t%s\t", cli_json_str(v, "id", "-"), cli_json_str(v, "name", "-"),
		       cli_json_str(v, "state", "-"));
		ctl_print_ids(vsg);
		putchar('\t');
		if (avsg != NULL)
			ctl_print_ids(avsg);
		else
			fputs("-", stdout);
		putchar('\n');
	}
}

json_object *ctl_ino_json(ino_t ino)
{
	if ((uint64_t)ino > INT64_MAX)
		return json_object_new_uint64((uint64_t)ino);
	return json_object_new_int64((int64_t)ino);
}

int ctl_hold_path(const char *path, bool follow, struct stat *st)
{
	int fd = open(path, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}
