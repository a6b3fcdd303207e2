/*
 * ctl.h - encore-client's control socket: a Unix socket speaking MSG_CTL
 * frames with JSON bodies (docs/architecture.md "Control protocol"), served
 * by one thread. Ops: status, check-servers, flush, whereis.
 */
#ifndef CLIENT_CTL_H
#define CLIENT_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include "client/client.h"

struct ctl;

/* Binds cl->sock_path (replacing a stale socket) and starts the thread.
 * Returns 0 or -errno; *out is NULL on failure. */
int ctl_start(struct client *cl, struct ctl **out);
/* Stops the thread, closes and removes the socket. NULL is a no-op. */
void ctl_stop(struct ctl *ctl);

/* Handles one JSON request (for tests); returns a new NUL-terminated JSON
 * reply (free with free()). uid is the caller's (SO_PEERCRED). */
char *ctl_handle_json(struct client *cl, const char *req, size_t len, uid_t uid);

#endif /* CLIENT_CTL_H */
