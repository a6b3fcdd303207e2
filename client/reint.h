/*
 * reint.h - encore-client's volume state machine, reintegration and
 * weak-connectivity trickle (docs/disconnected.md): one thread polls the
 * AVSG of every volume, moves volumes between connected, disconnected,
 * weak and reintegrating, and sends the CML in batches (STORE_REINT
 * uploads, REINTEGRATE to every AVSG member, COP2); conflicting records go
 * to the repair area. Also the ctl ops disconnect, reconnect,
 * write-disconnect, and the local/global part of conflicts and repair.
 */
#ifndef CLIENT_REINT_H
#define CLIENT_REINT_H

#include <stdint.h>

#include <json-c/json.h>

#include "client/client.h"

/* Starts the thread (cl->cml, cl->conn set). 0 or -errno. */
int reint_start(struct client *cl);
/* Stops and frees it. */
void reint_stop(struct client *cl);
/* Wakes the thread now (a state change to act on). */
void reint_kick(struct client *cl);

/* ctl ops: "disconnect", "reconnect", "write-disconnect" for the volume of
 * ino, or every volume when ino is 0. 0 or -errno. */
int reint_ctl_force(struct client *cl, const char *op, uint64_t ino);
/* Per-volume fields for status: state, cml_records, cml_bytes. */
void reint_vol_json(struct client *cl, uint32_t vol, json_object *v);
/* Appends the local/global conflicts to arr (conflicts op). */
void reint_conflicts_json(struct client *cl, json_object *arr);
/* repair of a local/global conflict named by req's "id" ("VOL-LSN") or by
 * the fid of ino: keep "local", "server" or "all". Returns 1 if handled
 * (*err set, r filled), 0 if no local/global conflict matches. */
int reint_repair(struct client *cl, json_object *req, uint64_t ino, json_object *r, int *err);

#endif /* CLIENT_REINT_H */
