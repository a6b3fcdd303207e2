/*
 * conn.h - encore-client's connections to its servers and the client side
 * of replication (docs/replication.md "Client"): one rpc_conn per server,
 * HELLO with PROTO_VERSION and a random client id, the VSG of every volume
 * and its AVSG (members up), updates multicast to the AVSG with one
 * deadline and phase two (COP2), reads from the preferred member, hedged
 * to the next one when it is slow and with failover, validation across
 * replicas, background probes of down servers, callback breaks and server
 * losses handed to the owner.
 *
 * Every call has a deadline; a server that misses it while another member
 * can answer is marked down. Lock order: see conn_i.h.
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

/* A callback break the server waits on: the owner acknowledges it with
 * conn_break_ack once it has invalidated its cache and the kernel's. */
struct conn_brk;
/* Called on an rpc reader thread: a callback break for fid. Must not block
 * on the network. brk (NULL if the server waits for no answer) is handed
 * over: pass it to conn_break_ack exactly once, after fid is invalidated,
 * from a thread other than an rpc reader (the ack may close a connection). */
typedef void (*conn_break_fn)(void *arg, const struct fid *fid, struct conn_brk *brk);
/* Called on an rpc reader thread when the connection to a server dies:
 * every callback from it is broken. */
typedef void (*conn_lost_fn)(void *arg, int server);

/* Deadline floors (docs/replication.md): an update waits for a server's
 * fsync, which shares the server's one thread, so its floor is higher. */
#define CONN_UPDATE_FLOOR_MS 1000
#define CONN_READ_FLOOR_MS   300
/* Cap of the adaptive deadline while another member can answer: an update
 * must not stall more than ~2 s behind a frozen server. */
#define CONN_DEADLINE_CAP_MS 1800
/* Read hedging: a read its member has not answered after
 * max(CONN_HEDGE_FLOOR_MS, 3 srtt + 2 rttvar), at most half its read
 * deadline, goes to the next AVSG member too and the first answer wins, so
 * a frozen or cut-off member costs a read this much instead of the whole
 * deadline. The floor keeps scheduling noise on a busy machine (a few ms)
 * from racing every call of a healthy member. */
#define CONN_HEDGE_FLOOR_MS 5
/* Down servers are probed this often, each probe step with this deadline. */
#define CONN_PROBE_MS	      500
#define CONN_PROBE_TIMEOUT_MS 1000

struct conn_op;

/* A call in progress or completed (one or several servers). A zeroed
 * conn_call is "released". */
struct conn_call {
	struct conn_op *op; /* owned; NULL once released */
};

struct conn_server_info {
	uint32_t id;
	char addr[256];
	bool up;
	uint64_t rtt_us;
	uint64_t bw_kbps; /* smoothed bulk-transfer bandwidth, KB/s; 0: not measured */
};

struct conn_vol_info {
	uint32_t id;
	char name[NAME_MAX_LEN + 1];
	struct vsg vsg;
	struct vsg avsg; /* members up now, in VSG order */
};

/* Creates the connection set for addrs (copied). Connects lazily. */
struct conn *conn_new(const char *realm, const char *const *addrs, size_t n_addrs,
		      conn_break_fn brk, conn_lost_fn lost, void *arg);
/* Closes every connection. NULL is a no-op. */
void conn_free(struct conn *c);

/* Acknowledges a callback break (conn_break_fn) to its server, unless its
 * connection died meanwhile (the server then gave up on us anyway), and
 * frees brk. Never waits for the server. NULL is a no-op. Must not be
 * called on an rpc reader thread. */
void conn_break_ack(struct conn_brk *brk);

uint64_t conn_client_id(struct conn *c);
/* Next per-client StoreId (client id, seq). */
void conn_next_storeid(struct conn *c, struct storeid *sid);
/* Counter bumped by every callback break and connection loss; a callback
 * is granted by a reply only if it did not move during the call. */
uint64_t conn_cb_gen(struct conn *c);
void conn_cb_gen_bump(struct conn *c);
/* Counter bumped by every connection loss. */
uint64_t conn_epoch(struct conn *c);

/* Sends req and waits for its reply. Updates (SETATTR CREATE REMOVE
 * RENAME LINK STORE) go to every AVSG member of req->fid.vol in parallel
 * (req->sid must be a fresh StoreId; all chunks of a store share one),
 * followed by COP2 to those that performed it; the reply is a successful
 * member's, with the version vectors of rep->attr/attr2 as they will be
 * after COP2. GETATTR asks every member and resolves differences. Other
 * reads go to the preferred member and fail over. Returns the transport
 * error or the server's status; on 0, rep holds the reply (rep->data valid
 * until conn_done(cc)) and the caller must call conn_done(cc). On error cc
 * is already released. */
int conn_call(struct conn *c, struct msg *req, struct msg *rep, struct conn_call *cc);
/* Starts a call without waiting (pipelining). 0 or -errno; on 0 call
 * conn_wait then conn_done. */
int conn_start(struct conn *c, struct msg *req, struct conn_call *cc);
/* As conn_start, for a FETCH whose data the connection's reader thread
 * writes straight into fd at off (rpc_start_sink): on 0 from conn_wait,
 * rep->data is NULL and rep->data_len the bytes written. fd is borrowed
 * until conn_done. conn_wait may also fail with the error of writing fd.
 * -EINVAL for another message type. */
int conn_start_sink(struct conn *c, struct msg *req, int fd, uint64_t off, struct conn_call *cc);
/* Waits for a started call; returns transport error or server status. */
int conn_wait(struct conn *c, struct conn_call *cc, struct msg *rep);
/* Releases a call. Safe on a zeroed or already released cc. */
void conn_done(struct conn *c, struct conn_call *cc);

/* The id of the server whose reply a completed read (conn_wait returned
 * 0) came from, if it was the only server asked (no failover); 0
 * otherwise, and for updates and multicasts. Call before conn_done. */
uint32_t conn_call_answered_by(const struct conn_call *cc);

/* Bandwidth (docs/disconnected.md "Weak connectivity"). Fetches shorter
 * than this are not measured: their time is mostly round trips. */
#define CONN_BW_FETCH_MIN_BYTES (256u * 1024u)
/* Records a sample of a bulk transfer with the server of this id (bytes
 * moved in ns of wall time): the first sample sets the server's estimate,
 * each later one moves it a quarter of the way. Unknown ids and empty
 * samples are ignored. Thread-safe. */
void conn_bw_sample(struct conn *c, uint32_t server_id, uint64_t bytes, uint64_t ns);
/* The estimate of the server of this id, KB/s (1000 bytes); 0 if none. */
uint64_t conn_bw_kbps(struct conn *c, uint32_t server_id);
/* Forgets every estimate (encore reconnect: measure again). */
void conn_bw_forget(struct conn *c);

/* Sends PING to every server; fills up to max infos. Returns the count. */
size_t conn_check_servers(struct conn *c, struct conn_server_info *out, size_t max, bool ping);

/* Sends req to the server with this id only (no failover), waiting up to
 * CONN_CALL_TIMEOUT_MS. Returns as conn_call; -ENOTCONN if that server is
 * unknown or unreachable. */
int conn_call_server(struct conn *c, uint32_t server_id, struct msg *req, struct msg *rep,
		     struct conn_call *cc);
/* As conn_call_server without waiting (pipelining: calls to one server
 * go out in the order they are started); on 0 call conn_wait then
 * conn_done. */
int conn_start_server(struct conn *c, uint32_t server_id, struct msg *req, struct conn_call *cc);
/* Makes a volume known with its VSG before any server told us (a restart
 * without network, cstate.c); a server's answer later replaces it. */
void conn_seed_volume(struct conn *c, uint32_t id, const char *name, const struct vsg *vsg);
/* Fills up to max volume infos; returns the count. */
size_t conn_volumes(struct conn *c, struct conn_vol_info *out, size_t max);
/* True unless volume vol is known and a member of its VSG is down. */
bool conn_vol_complete(struct conn *c, uint32_t vol);
/* Ids of the servers currently up (at most max); returns the count. */
size_t conn_up_servers(struct conn *c, uint32_t *ids, size_t max);
/* Disconnected operation: gate(arg, vol, type) is asked before every call
 * that belongs to a volume (not the single-server ones); a negative return
 * fails the call at once with it. Set before the first call. */
typedef int (*conn_gate_fn)(void *arg, uint32_t vol, uint16_t type);
void conn_set_gate(struct conn *c, conn_gate_fn gate, void *arg);

/* Starts the background prober (connects to every server at once, then
 * probes down servers every CONN_PROBE_MS). Returns 0 or -errno. */
int conn_start_probes(struct conn *c);

#endif /* CLIENT_CONN_H */
