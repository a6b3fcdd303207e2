/*
 * servers_conf.h - the realm's peers file DIR/servers.conf that `encore
 * local up` writes and every encore-server reads with --peers, and the
 * --vsg list given to `encore-server init`. Format: docs/replication.md
 * "Realm configuration: servers and peers" (ini, read with libinih):
 *
 *     [server 1]
 *     address = 127.0.0.1:40001
 *
 * Pure formatting plus one atomic write; no processes, no sockets.
 */
#ifndef CLI_SERVERS_CONF_H
#define CLI_SERVERS_CONF_H

#include <stddef.h>

#include "cli/local.h"

#define SERVERS_CONF_FILE "servers.conf"
/* A section is "[server 4294967295]\naddress = 127.0.0.1:65535\n" (53 bytes)
 * plus a comment line at the top: enough for LOCAL_SERVERS_MAX servers. */
#define SERVERS_CONF_MAX (256 + 64 * LOCAL_SERVERS_MAX)
/* "4294967295," per server. */
#define SERVERS_VSG_MAX (11 * LOCAL_SERVERS_MAX + 1)

/* Formats the peers file for the servers of st (ids and ports; every
 * address is 127.0.0.1:port) into out[len], NUL-terminated. Returns the
 * length without the NUL, -EINVAL if a server has no port or st has no
 * servers, or -ENOSPC if out is too small. */
int servers_conf_fmt(const struct local_state *st, char *out, size_t len);

/* Formats the VSG of st, its server ids in order joined by commas
 * ("1,2,3"), into out[len]. Returns the length, -EINVAL without servers, or
 * -ENOSPC. */
int servers_conf_vsg(const struct local_state *st, char *out, size_t len);

/* Path of st->dir/servers.conf into out. Returns 0 or -ENAMETOOLONG. */
int servers_conf_path(const struct local_state *st, char out[PATH_MAX]);

/* Writes the peers file of st to st->dir/servers.conf atomically (temp
 * file, fsync, rename: servers may re-read it at any moment). Returns 0 or
 * -errno (as servers_conf_fmt, or from the write). */
int servers_conf_write(const struct local_state *st);

#endif /* CLI_SERVERS_CONF_H */
