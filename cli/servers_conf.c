/*
 * servers_conf.c - DIR/servers.conf (the --peers file) and the --vsg list
 * of a local realm.
 * Owns:    the text of DIR/servers.conf.
 * Borrows: server ids and ports from struct local_state; fs_write_atomic.
 * Format:  docs/replication.md "Realm configuration: servers and peers".
 */
#include "cli/servers_conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "common/fsutil.h"

/* Appends the formatted text at out[*pos]; -ENOSPC if it does not fit. */
static int append(char *out, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int append(char *out, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return -ENOSPC;
	va_start(ap, fmt);
	n = vsnprintf(out + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *pos)
		return -ENOSPC;
	*pos += (size_t)n;
	return 0;
}

int servers_conf_fmt(const struct local_state *st, char *out, size_t len)
{
	size_t pos = 0;
	int ret;

	if (st->n_servers == 0)
		return -EINVAL;
	if (len > 0)
		out[0] = '\0';
	ret = append(out, len, &pos, "# written by 'encore local up': the servers of realm '%s'\n",
		     LOCAL_REALM);
	for (size_t i = 0; i < st->n_servers && ret == 0; i++) {
		const struct local_server *s = &st->servers[i];

		if (s->port == 0)
			return -EINVAL;
		ret = append(out, len, &pos, "[server %u]\naddress = 127.0.0.1:%u\n", s->id,
			     s->port);
	}
	return ret < 0 ? ret : (int)pos;
}

int servers_conf_vsg(const struct local_state *st, char *out, size_t len)
{
	size_t pos = 0;
	int ret = 0;

	if (st->n_servers == 0)
		return -EINVAL;
	for (size_t i = 0; i < st->n_servers && ret == 0; i++)
		ret = append(out, len, &pos, "%s%u", i == 0 ? "" : ",", st->servers[i].id);
	return ret < 0 ? ret : (int)pos;
}

int servers_conf_path(const struct local_state *st, char out[PATH_MAX])
{
	return local_path(out, st->dir, "%s", SERVERS_CONF_FILE);
}

int servers_conf_write(const struct local_state *st)
{
	char path[PATH_MAX], buf[SERVERS_CONF_MAX];
	int ret;

	ret = servers_conf_path(st, path);
	if (ret < 0)
		return ret;
	ret = servers_conf_fmt(st, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	return fs_write_atomic(path, buf, (size_t)ret, 0644);
}
