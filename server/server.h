/*
 * server.h - the encore-server event loop: listening socket, connections,
 * frame reassembly, dispatch by the message table, group commit.
 * Owns:    the epoll fd, every connection (fd, buffers, state), the meta
 *          env, the container store, the callback table and ops.
 * Locking: one thread; nothing is shared.
 */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct server_cfg {
	const char *dir;       /* server directory (init'ed) */
	const char *listen;    /* "HOST:PORT" */
	int ready_fd;	       /* -1 or fd to write "\n" to once serving */
	const char *port_file; /* NULL or file to write the bound port to */
	const char *peers;     /* NULL or the realm's peers file (docs/replication.md) */
	bool trace;	       /* log every message with msg_fmt */
	uint32_t cop2_ttl_s;   /* age of a pending COP2 entry that is dropped; 0: REPL_COP2_TTL_S */
};

/* Opens DIR, bumps the incarnation, listens and serves until *stop becomes
 * non-zero. Returns 0 on a clean stop, <0 on a startup or fatal error
 * (already logged). */
int server_run(const struct server_cfg *cfg, volatile sig_atomic_t *stop);

#endif /* SERVER_SERVER_H */
