/*
 * rpc.h - client side of an Encore connection: one socket, many concurrent
 * calls multiplexed by reqid, a reader thread that matches replies to
 * waiting callers and hands server pushes (MSG_CB_BREAK) to a callback.
 * Used by encore-client (to servers) and encore (to the client's control
 * socket). Thread-safe: any thread may call; sends are serialised by a mutex.
 *
 * Errors are sticky: once the socket fails or a malformed frame arrives, the
 * connection is dead: every waiting and later call fails with -ENOTCONN (or
 * the original error) at once, and the owner reconnects with a new rpc_conn.
 */
#ifndef COMMON_RPC_H
#define COMMON_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include "common/msg.h"

struct rpc_conn;
struct rpc_call;

/* Called on the reader thread for every pushed frame. m and its data are
 * valid only during the call. Must not call rpc_call on the same connection
 * synchronously (it would deadlock the reader). A push with a non-zero reqid
 * (MSG_CB_BREAK) wants an answer: the owner sends it with rpc_reply_push,
 * from this callback or later from any thread (copy m->type and m->reqid).
 * With no push callback, rpc.c answers such pushes itself with ST_OK. */
typedef void (*rpc_push_fn)(void *arg, const struct msg *m);
/* Called once on the reader thread when the connection dies (err < 0: -EPROTO
 * for a malformed frame, -ENOTCONN for EOF, or the socket's -errno). Not
 * called when the owner closes the connection with rpc_close. */
typedef void (*rpc_dead_fn)(void *arg, int err);

/* Connects to addr (net_parse_addr syntax) within timeout_ms and starts the
 * reader thread. Does NOT send HELLO (callers do, with rpc_call). push/dead may
 * be NULL. *out is NULL on failure. Returns 0 or -errno. */
int rpc_open(const char *addr, int timeout_ms, rpc_push_fn push, rpc_dead_fn dead, void *arg,
	     struct rpc_conn **out);
/* Shuts the socket down, fails waiting calls with -ENOTCONN, joins the reader
 * thread and drops the owner's reference. NULL is a no-op. Must not be called
 * from push/dead callbacks. Calls not yet freed keep the connection's memory
 * alive: they may still be waited on (they fail) and must still be freed with
 * rpc_call_free, during or after rpc_close. */
void rpc_close(struct rpc_conn *c);
/* True until the connection has failed. */
bool rpc_alive(struct rpc_conn *c);
/* Poisons the connection now as if the socket had failed with err: every
 * waiting and later call fails at once; the reader thread exits (the dead
 * callback runs). Unlike rpc_close it drops no reference, so other threads
 * may keep using c (their calls fail). */
void rpc_kill(struct rpc_conn *c, int err);
/* Bounds how long one send may block on a full socket buffer (a peer that
 * stopped reading): past it the send fails and the connection dies.
 * 0 = no bound (the default). Returns 0 or -errno. */
int rpc_set_send_timeout(struct rpc_conn *c, int timeout_ms);

/* Starts a call: assigns req->reqid, encodes and sends. Blocks while
 * CALLS_IN_FLIGHT_MAX calls are pending on the connection. *out is the handle to
 * wait on. Returns 0 or -errno (-ENOTCONN if dead, -EMSGSIZE/-EINVAL if the
 * message cannot be encoded). */
int rpc_start(struct rpc_conn *c, struct msg *req, struct rpc_call **out);
/* As rpc_start, for a request whose reply ends with F_DATA (FETCH): the
 * reader thread writes the reply's payload straight into fd at off (splice
 * from the socket through a pipe, so it never enters user space, or a copy
 * where splice cannot), and rpc_wait's reply has data NULL and data_len
 * the bytes written. fd is borrowed and must stay open until rpc_call_free
 * or rpc_call_drop_sink, which wait for the reader to let go of it: freeing
 * a call whose reply is being received waits (without writing fd) for the
 * rest of that reply, up to 1 s, then kills the connection (a reply cannot
 * be left half-read).
 * If writing fd fails, rpc_wait returns that error (-ENOSPC, -EIO, ...)
 * and the connection lives on. Returns as rpc_start, -EBADF if fd < 0. */
int rpc_start_sink(struct rpc_conn *c, struct msg *req, int fd, uint64_t off,
		   struct rpc_call **out);
/* Waits up to timeout_ms for the reply. On 0, *rep is the decoded reply (its
 * data valid until rpc_call_free); rep->status holds the server's answer,
 * which the caller checks. Returns -ETIMEDOUT (call stays pending; free it),
 * -ENOTCONN / -EPROTO if the connection died. */
int rpc_wait(struct rpc_call *call, int timeout_ms, struct msg *rep);
/* The round trip of an answered call, in microseconds (>= 1): from its
 * send to its reply's arrival, however late the caller looks; 0 while it is
 * not answered, or if its connection failed first. */
uint64_t rpc_call_rtt_us(struct rpc_call *call);
/* Stops a sink call (rpc_start_sink) from writing into its fd: returns once
 * the reader is not writing there, and it writes nothing there afterwards
 * (a reply being received, or one still to come, is read and dropped, and
 * the call fails with -ECANCELED). Waits for at most one write to the file,
 * never for the network: once it returns the fd may be closed or reused,
 * while the call lives on until rpc_call_free (which may wait, see
 * rpc_start_sink). No-op for other calls. Used to make sure that the loser
 * of a race between two servers writes nothing into the winner's file. */
void rpc_call_drop_sink(struct rpc_call *call);
/* Waits up to timeout_ms (0: only looks) until one of calls[0..n) is done,
 * answered or failed; the calls may belong to different connections, and
 * one call must not be in two rpc_wait_any at once. Returns the index of a
 * done call, whose outcome rpc_wait(call, 0, rep) then gives, or
 * -ETIMEDOUT. Used to race one request at two servers (read hedging). */
int rpc_wait_any(struct rpc_call *const *calls, size_t n, int timeout_ms);
/* Frees a call (pending or done). NULL is a no-op. */
void rpc_call_free(struct rpc_call *call);

/* rpc_start + rpc_wait. On 0, *rep holds the reply and *callp must be freed
 * with rpc_call_free once the caller is done with rep->data. Returns the
 * transport error, or 0 (then check rep->status). */
int rpc_call(struct rpc_conn *c, struct msg *req, struct msg *rep, int timeout_ms,
	     struct rpc_call **callp);

/* Answers a push that carries a non-zero reqid: sends a reply frame with
 * push->type, push->reqid and status (0 or -errno; the frame carries no
 * fields), e.g. to acknowledge a callback break once the caches are
 * invalidated. Only push->type and push->reqid are read. Any thread, also
 * the push callback; never waits for the server. Returns 0, -EINVAL for a
 * push without a reqid, -ENOTCONN if the connection is dead (then the
 * server treats every break as acknowledged anyway). */
int rpc_reply_push(struct rpc_conn *c, const struct msg *push, int status);

/* Measured smoothed round-trip time in microseconds (0 before the first reply). */
uint64_t rpc_rtt_us(struct rpc_conn *c);

#endif /* COMMON_RPC_H */
