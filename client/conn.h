/*
 * conn.h - encore-client's connections to its servers: one rpc_conn per
 * server, HELLO with PROTO_VERSION and a random client id, reconnect on
 * failure, callback breaks and connection loss handed to the owner.
 *
 * Every call has a deadline (CONN_CALL_TIMEOUT_MS); a dead server fails fast.
 * Lock order: conn_server.lock is a leaf (never held across a call).
 */
#ifndef CLIENT_CONN_H
#define CLIENT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"

/* A FUSE worker never waits on one call longer than this. */
#define CONN_CALL_TIMEOUT_MS 30000
/* Connecting to a server that does not answer gives up after this. */
#define CONN_CONNECT_TIMEOUT_MS 5000
/* After a failed connect, calls fail at once for this long instead of
 * making every FUSE request wait for another connect timeout. */
#define CONN_RETRY_MS 1000

struct conn;

/* Called on an rpc reader thread: a callback break for fid. Must not block
 * on the network. */
typedef void (*conn_break_fn)(void *arg, const struct fid *fid);
/* Called on an rpc reader thread when the connection to a server dies:
 * every callback from it is broken. */
typedef void (*conn_lost_fn)(void *arg, int server);

/* A call in progress or completed; owns a reference to the connection. */
struct conn_call {
	void *sc;	       /* struct sconn, owned reference */
	struct rpc_call *call; /* owned */
};

struct conn_server_info {
	uint32_t id;
	char addr[256];
	bool up;
	uint64_t rtt_us;
};

/* Creates the connection set for addrs (copied). Connects lazily. */
struct conn *conn_new(const char *realm, const char *const *addrs, size_t n_addrs,
		      conn_break_fn brk, conn_lost_fn lost, void *arg);
/* Closes every connection. NULL is a no-op. */
void conn_free(struct conn *c);

uint64_t conn_client_id(struct conn *c);
/* Next per-client StoreId (client id, seq). */
void conn_next_storeid(struct conn *c, struct storeid *sid);
/* Counter bumped by every callback break and connection loss; a callback
 * is granted by a reply only if it did not move during the call. */
uint64_t conn_cb_gen(struct conn *c);
void conn_cb_gen_bump(struct conn *c);
/* Counter bumped by every connection loss. */
uint64_t conn_epoch(struct conn *c);

/* Sends req (to the server of req->fid's volume; today the root server)
 * and waits up to CONN_CALL_TIMEOUT_MS. Returns the transport error or
 * the server's status; on 0, rep holds the reply (rep->data valid until
 * conn_done(cc)) and the caller must call conn_done(cc). On error cc is
 * already released. */
int conn_call(struct conn *c, struct msg *req, struct msg *rep, struct conn_call *cc);
/* Starts a call without waiting (pipelining). 0 or -errno; on 0 call
 * conn_wait then conn_done. */
int conn_start(struct conn *c, struct msg *req, struct conn_call *cc);
/* Waits for a started call; returns transport error or server status. */
int conn_wait(struct conn *c, struct conn_call *cc, struct msg *rep);
/* Releases a call. Safe on a zeroed or already released cc. */
void conn_done(struct conn *c, struct conn_call *cc);

/* Sends PING to every server; fills up to max infos. Returns the count. */
size_t conn_check_servers(struct conn *c, struct conn_server_info *out, size_t max, bool ping);

#endif /* CLIENT_CONN_H */
