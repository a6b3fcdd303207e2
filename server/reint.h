/*
 * reint.h - REINTEGRATE: the server side of reintegration after
 * disconnected operation (docs/disconnected.md).
 * Owns:    the reint table's records (per volume and client: the highest
 *          record seq processed and the statuses of the last conflicts).
 * Borrows: ops (each record runs through ops_exec as an update of the
 *          batch), the batch txn, the connection's partial stores.
 * Locking: single-threaded (the server loop).
 * Format:  docs/protocol.md "CML records (REINTEGRATE)"; the reint table in
 *          docs/ondisk.md.
 */
#ifndef SERVER_REINT_H
#define SERVER_REINT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/msg.h"
#include "common/wire.h"
#include "server/meta.h"
#include "server/ops.h"
#include "server/store.h"

/* The reint table's value for (vol, client). */
struct reint_mark {
	uint64_t hw; /* highest record seq processed (applied or refused for good) */
	uint32_t n;  /* conflicts of the latest batches, ascending seq */
	struct {
		uint64_t seq;
		uint32_t status;
	} conf[CML_BATCH_MAX];
};

/* Runs REINTEGRATE req in the batch txn t: checks and applies its records
 * (each through ops_exec), fills rep (status; F_DATA in out: u32 per
 * record; F_STAMP). Returns true if it wrote to t (the batch must commit). */
bool reint_exec(struct ops *o, struct meta_txn *t, struct ops_conn *oc, const struct msg *req,
		struct msg *rep, struct wr *out);

/* STORE with STORE_LAST | STORE_REINT: the upload under p is complete with
 * length bytes; it stays under its handle for a REINTEGRATE store record. */
int reint_store_done(struct pstore *p, uint64_t length);

/* The mark of (vol, client): -ENOENT if none, -EIO if corrupt. */
int reint_mark_get(struct meta_txn *t, uint32_t vol, uint64_t client, struct reint_mark *out);
int reint_mark_put(struct meta_txn *t, uint32_t vol, uint64_t client, const struct reint_mark *m);
/* Record codec of the table (exposed for tests). */
void reint_mark_encode(struct wr *w, const struct reint_mark *m);
int reint_mark_decode(const uint8_t *buf, size_t len, struct reint_mark *out);

#endif /* SERVER_REINT_H */
