/*
 * cstate.h - what encore-client needs to start without network
 * (docs/disconnected.md "Starting without network"): the realm root fid
 * and attributes, the volume table (VSG per volume), and the state of the
 * objects it knows (attributes, directory listings, symlink targets), kept
 * in LMDB table "state" of the cache env. File data and its attributes
 * are in the cache index already (cache.h).
 *
 * Checkpoints copy the in-memory state (inode table, conn volumes) to the
 * table: the hoard thread takes one every CSTATE_CHECKPOINT_MS and main.c
 * one at shutdown. At start, if no server answers, cstate_restore rebuilds
 * the root, the volumes and the objects' inodes from it so that every
 * volume starts disconnected with its cache (the emulation serves it).
 * It also keeps the states the user forced on volumes (disconnect,
 * write-disconnect), written at once by cstate_save_forced, so that a
 * restart does not lift them: only `encore reconnect` does.
 *
 * Locking: none of its own; takes inode locks one at a time (never while
 * in a cache transaction) and the cache lock through cache_txn.
 */
#ifndef CLIENT_CSTATE_H
#define CLIENT_CSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "client/client.h"
#include "client/cml.h"
#include "common/msg.h"

/* Period of checkpoints: a crash loses at most this much of the state
 * (never data: containers and the CML have their own records). */
#define CSTATE_CHECKPOINT_MS 5000

struct inode;
struct cstate;
struct wr;

/* Starts recording: installs cl->itab's free hook, so that the state of
 * inodes the kernel forgets is kept for the next checkpoint. */
struct cstate *cstate_new(struct client *cl);
/* Removes the hook and drops what was not saved. NULL is a no-op. */
void cstate_free(struct cstate *cs);

/* Saves the root, the volume table, the objects freed since the last
 * checkpoint and every in-memory object with attributes (records that did
 * not change are not rewritten; objects known removed are dropped).
 * Returns the number of records written, or -errno. Thread-safe. */
int cstate_checkpoint(struct cstate *cs);

/* Rebuilds the state saved by checkpoints: seeds the conn volume table,
 * sets the realm root (cl->have_root) and creates an inode with attributes
 * (untrusted until revalidated: stale, no callback) for every saved
 * object, with its listing or target. *out receives a new reference to
 * each (an owned array; hand it to hoard_adopt or put them). Returns the
 * number of objects, -ENOENT if there is no saved root, or -errno. */
int cstate_restore(struct client *cl, struct inode ***out, size_t *n_out);
/* The state saved for fid when its inode was freed (a snapshot since the
 * last checkpoint, else the checkpoint's record): an inode with it, as
 * cstate_restore makes them (a new reference), or NULL if none is saved.
 * For a volume that is not connected, whose cache is all there is. */
struct inode *cstate_revive(struct client *cl, const struct fid *fid);

/* Saves the states forced by `encore disconnect|write-disconnect|reconnect`
 * (cml_forced, cml_forced_all) so that they survive a restart: one "F"
 * record per forced volume and one for every volume (vol 0), committed
 * before it returns; records of states lifted are deleted. Call after each
 * cml_force of a control op. 0 or -errno. Thread-safe; NULL is a no-op. */
int cstate_save_forced(struct cstate *cs);

/* Start: applies the forced states saved by cstate_save_forced to cl->cml
 * (cml_force; a forced write-disconnection also sets the state weak).
 * Call after cml_open, before the reintegration thread starts. Returns
 * the number of forced states restored (0: none), or -errno; malformed
 * records are skipped with a log. */
int cstate_restore_forced(struct client *cl);

/* Record codec (for tests and fuzzing): decodes a forced-state record into
 * *f (VF_DISCONNECT or VF_WEAK). 0 or -EIO (*f = VF_NONE). */
int cstate_force_decode(const uint8_t *buf, size_t len, enum vol_force *f);
/* Encodes the forced-state record of f (appended to w). */
void cstate_force_encode(struct wr *w, enum vol_force f);

/* Record codec (for tests and fuzzing): decodes an object record into
 * *a, *ents (owned, *n_ents entries) and *target (owned or NULL). 0 or
 * -EIO. */
int cstate_obj_decode(const uint8_t *buf, size_t len, struct attr *a, struct dirent_w **ents,
		      size_t *n_ents, char **target);

#endif /* CLIENT_CSTATE_H */
