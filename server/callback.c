/*
 * callback.c - callback promise table of encore-server.
 * Owns:    promise nodes, linked twice: in a hash chain keyed by fid (to
 *          find the holders of a fid) and in their holder's list (to drop
 *          them all when a connection closes). Both operations are O(1) per
 *          promise.
 * Locking: single-threaded (the server loop).
 */
#include "server/callback.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/fid.h"
#include "common/xalloc.h"

struct cb_node {
	struct fid fid;
	struct cb_holder *holder;
	struct cb_node *hnext, *hprev; /* hash chain */
	struct cb_node *cnext, *cprev; /* holder's list */
};

struct cbtab {
	struct cb_node **bucket;
	size_t n_buckets; /* power of two */
	size_t n;
};

#define CB_BUCKETS_MIN 1024

static size_t fid_hash(const struct fid *f, size_t n_buckets)
{
	/* Oids are random: their first bytes hash well enough on their own. */
	uint64_t h;
	memcpy(&h, f->oid + 4, sizeof(h));
	h ^= (uint64_t)f->vol * 0x9e3779b97f4a7c15ull;
	h ^= h >> 29;
	return (size_t)h & (n_buckets - 1);
}

struct cbtab *cbtab_new(void)
{
	struct cbtab *t = xcalloc(1, sizeof(*t));
	t->n_buckets = CB_BUCKETS_MIN;
	t->bucket = xcalloc(t->n_buckets, sizeof(*t->bucket));
	return t;
}

void cbtab_free(struct cbtab *t)
{
	if (t == NULL)
		return;
	ASSERT(t->n == 0);
	free(t->bucket);
	free(t);
}

void cb_holder_init(struct cb_holder *h, void *owner)
{
	h->head = NULL;
	h->n = 0;
	h->owner = owner;
}

static void hash_link(struct cbtab *t, struct cb_node *nd)
{
	size_t b = fid_hash(&nd->fid, t->n_buckets);
	nd->hprev = NULL;
	nd->hnext = t->bucket[b];
	if (nd->hnext != NULL)
		nd->hnext->hprev = nd;
	t->bucket[b] = nd;
}

static void grow(struct cbtab *t)
{
	struct cb_node **old = t->bucket;
	size_t n_old = t->n_buckets;

	t->n_buckets *= 2;
	t->bucket = xcalloc(t->n_buckets, sizeof(*t->bucket));
	for (size_t i = 0; i < n_old; i++) {
		struct cb_node *nd = old[i];
		while (nd != NULL) {
			struct cb_node *next = nd->hnext;
			hash_link(t, nd);
			nd = next;
		}
	}
	free(old);
}

static void unlink_node(struct cbtab *t, struct cb_node *nd)
{
	if (nd->hprev != NULL)
		nd->hprev->hnext = nd->hnext;
	else
		t->bucket[fid_hash(&nd->fid, t->n_buckets)] = nd->hnext;
	if (nd->hnext != NULL)
		nd->hnext->hprev = nd->hprev;
	struct cb_holder *h = nd->holder;
	if (nd->cprev != NULL)
		nd->cprev->cnext = nd->cnext;
	else
		h->head = nd->cnext;
	if (nd->cnext != NULL)
		nd->cnext->cprev = nd->cprev;
	h->n--;
	t->n--;
	free(nd);
}

void cb_promise(struct cbtab *t, struct cb_holder *h, const struct fid *fid)
{
	/* Dedupe along the shorter list: a hot fid has one node per holder
	 * in its chain, while most holders hold few promises. */
	if (h->n <= 16) {
		for (struct cb_node *nd = h->head; nd != NULL; nd = nd->cnext)
			if (fid_eq(&nd->fid, fid))
				return;
	} else {
		size_t b = fid_hash(fid, t->n_buckets);
		for (struct cb_node *nd = t->bucket[b]; nd != NULL; nd = nd->hnext)
			if (nd->holder == h && fid_eq(&nd->fid, fid))
				return;
	}
	if (t->n >= t->n_buckets * 2)
		grow(t);
	struct cb_node *nd = xmalloc(sizeof(*nd));
	nd->fid = *fid;
	nd->holder = h;
	hash_link(t, nd);
	nd->cprev = NULL;
	nd->cnext = h->head;
	if (nd->cnext != NULL)
		nd->cnext->cprev = nd;
	h->head = nd;
	h->n++;
	t->n++;
}

size_t cb_break(struct cbtab *t, const struct fid *fid, const struct cb_holder *except,
		cb_break_fn fn, void *arg)
{
	size_t b = fid_hash(fid, t->n_buckets);
	size_t n = 0;
	struct cb_node *nd = t->bucket[b];

	while (nd != NULL) {
		struct cb_node *next = nd->hnext;
		if (nd->holder != except && fid_eq(&nd->fid, fid)) {
			if (fn != NULL)
				fn(arg, nd->holder->owner, fid);
			unlink_node(t, nd);
			n++;
		}
		nd = next;
	}
	return n;
}

void cb_holder_release(struct cbtab *t, struct cb_holder *h)
{
	while (h->head != NULL)
		unlink_node(t, h->head);
}

size_t cbtab_count(const struct cbtab *t)
{
	return t->n;
}
