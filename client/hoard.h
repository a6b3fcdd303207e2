/*
 * hoard.h - encore-client's hoard database and hoard walks
 * (docs/disconnected.md "Hoarding").
 *
 * The hoard names paths (relative to the realm root) with a priority
 * 1..HOARD_PRI_MAX and whether their children or all their descendants
 * belong to it. A hoard walk, run by one hoard thread on demand, every
 * --hoard-interval seconds and after a volume comes back, resolves every
 * hoarded path from the realm root, fetches what is missing or stale
 * (files whole, directory listings) and stamps the cached objects with
 * their hoard priority, which eviction (cache.c) honours. The walk keeps a
 * reference on every inode it hoards, so their attributes and listings stay
 * in memory until the next walk.
 *
 * Locking: struct hoard has one mutex for its walk state; the table lives
 * in the cache env (table "hoard") and is written in short transactions.
 * The hoard thread calls fsops/cache/conn functions holding no lock of ours.
 */
#ifndef CLIENT_HOARD_H
#define CLIENT_HOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "client/client.h"

/* Priorities are 1..1000 (Coda's range); 0 means "not hoarded". */
#define HOARD_PRI_MAX 1000
/* Priority of `hoard add` without one. */
#define HOARD_PRI_DEFAULT 10
/* Default period of the background walk, seconds (docs/disconnected.md). */
#define HOARD_INTERVAL_DEFAULT 600
/* LMDB's default maximum key size: a hoard path is a key. */
#define HOARD_PATH_MAX 511
/* Objects one walk visits at most: bounds a "descendants" entry over a
 * huge tree (the walk then stops that entry and says so). */
#define HOARD_WALK_MAX_OBJECTS 200000

enum hoard_flags {
	HOARD_CHILDREN = 1u << 0,    /* the directory's entries too */
	HOARD_DESCENDANTS = 1u << 1, /* everything below the directory */
};

struct hoard;
struct inode;

/* One hoard entry as stored. */
struct hoard_ent {
	char path[HOARD_PATH_MAX + 1]; /* relative to the realm root; "" = the root */
	uint32_t pri;		       /* 1..HOARD_PRI_MAX */
	uint32_t flags;		       /* enum hoard_flags */
	uint32_t uid;		       /* who added it: the walk fetches with this uid */
};

/* Parses a hoard record value (db header, priority, flags, uid). Returns 0
 * or -EIO (bad magic, unknown version, wrong size); for tests and fuzzing. */
int hoard_rec_decode(const uint8_t *buf, size_t len, struct hoard_ent *e);

/* Normalises a path relative to the mount ("REALM/a/b", slashes collapsed;
 * "." components dropped; ".." refused) into out as a path relative to the
 * realm root ("a/b", "" for the root). Returns 0, -EINVAL (not under
 * realm, ".."), or -ENAMETOOLONG. */
int hoard_path_norm(const char *realm, const char *in, char *out, size_t len);

/* Starts the hoard thread of cl (periodic walks every interval_s seconds,
 * 0 = never; a walk after a volume reconnects). 0 or -errno; *out NULL on
 * failure. */
int hoard_start(struct client *cl, unsigned interval_s, struct hoard **out);
/* Stops the thread (an ongoing walk stops between two objects), releases
 * the hoarded inode references. NULL is a no-op. */
void hoard_stop(struct hoard *h);
/* Takes over n inode references (an owned array, e.g. from cstate_restore):
 * kept like the last walk's until the next complete walk replaces them. */
void hoard_adopt(struct hoard *h, struct inode **ins, size_t n);
/* Asks for a walk soon (e.g. after a volume was reconnected). */
void hoard_kick(struct hoard *h);

/* Control ops "hoard-add", "hoard-remove", "hoard-list", "hoard-walk",
 * "hoard-status" (docs/architecture.md). Returns a new reply object
 * without "ok", or NULL with *err set (-EINVAL bad request, -ENOENT no such
 * entry, ...). uid is the caller's. May block until a walk ends
 * ("hoard-walk" with "wait": true). */
json_object *hoard_ctl(struct hoard *h, const char *op, json_object *req, uid_t uid, int *err);

#endif /* CLIENT_HOARD_H */
